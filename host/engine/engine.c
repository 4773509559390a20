/*
** engine.c: an engine's life: opening (config, store, the index rebuilt
** from a checkpoint and the log, plugins, strategies checked) and closing,
** checkpoints, the customer-value refit, error names and logging.  The
** event path is ingest.c, decisions decide.c, the per-thread Lua states
** vm.c, the admin's reads and erasure admin.c.
*/
#include "engine/engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/plugin.h"
#include "core/util.h"

static const char *const code_names[] = {
#define TAILOR_NAME_(name, value, msg) #name,
    TAILOR_ERRNO_MAP(TAILOR_NAME_)
#undef TAILOR_NAME_
};
static const char *const code_msgs[] = {
#define TAILOR_MSG_(name, value, msg) msg,
    TAILOR_ERRNO_MAP(TAILOR_MSG_)
#undef TAILOR_MSG_
};
#define NCODES (sizeof code_names / sizeof *code_names)

const char *tailor_version(void) { return TAILOR_VERSION_STRING; }

/* Codes are 0, -1, -2, ... in table order. */
const char *tailor_strerror(int code) {
  return code <= 0 && (size_t)-code < NCODES ? code_msgs[-code] : "unknown error";
}

const char *tailor_errname(int code) {
  return code <= 0 && (size_t)-code < NCODES ? code_names[-code] : "EUNKNOWN";
}

void tailor_free(void *p) { free(p); }

static void log_stderr(void *ud, int level, const char *msg) {
  static const char *const names[] = {"error", "warning", "info", "debug"};
  if (level <= TAILOR_LOG_WARN)
    fprintf(stderr, "tailor: %s: %s\n", names[level], msg);
}

void tailor_set_logger(tailor *t, tailor_log_fn fn, void *ud) {
  t->log = fn;
  t->log_ud = ud;
}

void tailor_set_metrics(tailor *t, tailor_metric_fn fn, void *ud) {
  t->metric = fn;
  t->metric_ud = ud;
}

void eng_log(tailor *t, int level, const char *fmt, ...) {
  if (!t->log) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  t->log(t->log_ud, level, buf);
}

/*
** Opening: config, store, index rebuilt from the log, strategies checked.
*/
int eng_rebuild_one(void *ud, int64_t seq, const ev *e) {
  tailor *t = ud;
  t->applied_seq = seq;
  if (idx_apply(t->ix, e) != TAILOR_OK) {
    eng_log(t, TAILOR_LOG_ERROR, "rebuild: out of memory at event %lld",
            (long long)seq);
    return TAILOR_ENOMEM;
  }
  return 0;
}

/*
** Checkpoints: loaded on open when they match the store and the index
** configuration, written on close (and every index.checkpoint_every events).
*/
static int load_checkpoint(tailor *t, const idx_config *ic) {
  const char *path = t->cfg.checkpoint;
  if (!strcmp(path, "auto")) {
    /* The store knows its place: a file's checkpoint is beside it. */
    if (!(t->ckpt_path = store_checkpoint_path(t->st))) return TAILOR_OK;
  } else if (*path) {
    if (!(t->ckpt_path = strdup(path))) return TAILOR_ENOMEM;
  } else {
    return TAILOR_OK;
  }
  t->ckpt_fp = idx_fingerprint(t->ix);
  if (access(t->ckpt_path, F_OK) != 0) return TAILOR_OK;
  tailor_error e = {0};
  int64_t seq = 0;
  idx *x = idx_load(t->ckpt_path, ic, t->ckpt_fp, &seq, &e);
  if (x && !store_has_seq(t->st, seq)) {
    /* Refused as idx_load refuses a checkpoint it cannot use. */
    util_fail(&e, TAILOR_EIO, NULL,
              "checkpoint %s ignored: it has events up to %lld, the store only "
              "to %lld (a store restored from backup?)",
              t->ckpt_path, (long long)seq, (long long)store_last_seq(t->st));
    idx_free(x);
    x = NULL;
  }
  if (!x) {
    eng_log(t, TAILOR_LOG_WARN, "%s; rebuilding from the store", e.message);
    return TAILOR_OK;
  }
  idx_free(t->ix);
  t->ix = x;
  t->applied_seq = t->ckpt_seq = seq;
  return TAILOR_OK;
}

/* Write the checkpoint; the caller holds write_mu (no event can slip in). */
void eng_save_checkpoint(tailor *t) {
  /* An index that missed part of an event must not be saved as if it had
     it: the next start replays from the store instead. */
  if (!t->ckpt_path || t->applied_seq == t->ckpt_seq || t->ix_incomplete) return;
  tailor_error e = {0};
  pthread_rwlock_rdlock(&t->lock);
  int rc = idx_save(t->ix, t->ckpt_path, t->ckpt_fp, t->applied_seq, &e);
  pthread_rwlock_unlock(&t->lock);
  if (rc)
    eng_log(t, TAILOR_LOG_ERROR, "%s", e.message);
  else
    t->ckpt_seq = t->applied_seq;
}

/* The shop's orders, read back from the store for the value model's check. */
typedef struct order_scan {
  tailor *t;
  idx_value_order *o;
  size_t n, cap;
} order_scan;

static int scan_order(void *ud, int64_t seq, const ev *e) {
  (void)seq;
  order_scan *s = ud;
  if (e->type != EV_PURCHASE) return 0;
  pthread_rwlock_rdlock(&s->t->lock);
  uint32_t person = idx_person_of(s->t->ix, e->customer, e->anon);
  pthread_rwlock_unlock(&s->t->lock);
  if (person == INTERN_NONE) return 0; /* erased since */
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 4096;
    idx_value_order *more = realloc(s->o, cap * sizeof *more);
    if (!more) return TAILOR_ENOMEM;
    s->o = more, s->cap = cap;
  }
  s->o[s->n++] = (idx_value_order){person, e->ts, e->revenue};
  return 0;
}

/*
** The check of a fit (index.h, idx_value_check): the orders come from the
** store, since the index keeps totals per person, not orders.  One pass
** over the log, on start and at each refit; index.value_holdout_days = 0
** turns it off for a shop whose log is too long to read that often.
*/
static void value_check(tailor *t, idx_value_check *chk) {
  memset(chk, 0, sizeof *chk);
  if (t->cfg.value_holdout_days <= 0) return;
  order_scan s = {t, NULL, 0, 0};
  tailor_error e = {0};
  if (store_scan(t->st, 0, scan_order, &s, &e) == TAILOR_OK &&
      idx_value_check_orders(s.o, s.n, (double)t->cfg.value_holdout_days,
                             (size_t)t->cfg.value_min_repeat, chk) == 0) {
    free(s.o);
    return;
  }
  free(s.o);
  memset(chk, 0, sizeof *chk);
  eng_log(t, TAILOR_LOG_ERROR, "value model check: %s",
          e.code ? e.message : "out of memory");
}

/*
** tailor.session_next's tailor kernel.  With index.tuned, the file's
** parameters and re-ranker, read once on open (a file that cannot be used
** stops the open, naming the key and the file).  Without it, tailor's
** defaults adjusted to the shop's repeat profile (sknn_params_adapt, the
** rule `tailor eval` and `tailor tune` start from), read again from the
** latest sessions at each value refit.  The caller holds write_mu or is
** tailor_open.
*/
int eng_session_params(tailor *t, tailor_error *err) {
  if (t->cfg.tuned && *t->cfg.tuned) {
    if (t->tuned) return TAILOR_OK;
    sknn_tuned *tu = calloc(1, sizeof *tu);
    if (!tu) return util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
    tailor_error e = {0};
    if (sknn_tuned_load(t->cfg.tuned, tu, &e)) {
      sknn_tuned_free(tu);
      free(tu);
      return util_fail(err, TAILOR_ECONFIG, "index.tuned",
                       "index.tuned: cannot use '%s': %.400s", t->cfg.tuned,
                       e.message);
    }
    t->tuned = tu;
    t->sess_params = tu->params;
    eng_log(t, TAILOR_LOG_INFO, "session kernel: tuned parameters from %s%s%s",
            t->cfg.tuned, tu->ranker ? ", re-ranked by " : " (no re-ranker)",
            tu->ranker ? tu->model : "");
    return TAILOR_OK;
  }
  sknn_params p;
  sknn_params_default(&p, SKNN_TAILOR);
  sknn_repeat_profile prof;
  pthread_rwlock_rdlock(&t->lock);
  int rc = sknn_repeat_profile_get(t->ix->sknn, SKNN_PROFILE_SESSIONS, &prof);
  pthread_rwlock_unlock(&t->lock);
  int adapted = rc == 0 && sknn_params_adapt(&p, &prof);
  pthread_rwlock_wrlock(&t->lock);
  int was = t->sess_adapted;
  t->sess_params = p;
  t->sess_adapted = adapted;
  pthread_rwlock_unlock(&t->lock);
  if (adapted != was)
    eng_log(t, TAILOR_LOG_INFO,
            "session kernel: %s (%.0f%% of next views repeat the session): "
            "repeat=%g repeat_decay=%g",
            adapted ? "repeat-heavy shop" : "shipped defaults", 100 * prof.share,
            p.repeat, p.repeat_decay);
  return TAILOR_OK;
}

/*
** The customer-value model (BG/NBD + Gamma-Gamma) is refitted on start and
** every index.value_refit_orders orders, by the thread that commits; the
** fit itself holds no index lock, so decisions go on meanwhile.  The
** caller holds write_mu.
*/
void eng_refit_value(tailor *t) {
  clv_customer *c;
  size_t n;
  int64_t now = util_now_ms();
  pthread_rwlock_rdlock(&t->lock);
  int rc = idx_value_customers(t->ix, now, &c, &n);
  uint64_t orders = t->ix->orders_seen;
  pthread_rwlock_unlock(&t->lock);
  if (rc) return;
  idx_value_model m;
  uint64_t t0 = util_mono_ns();
  idx_value_fit(c, n, now, (size_t)t->cfg.value_min_repeat, &m);
  free(c);
  if (n) value_check(t, &m.check);
  pthread_rwlock_wrlock(&t->lock);
  t->ix->value = m;
  pthread_rwlock_unlock(&t->lock);
  t->value_orders = orders;
  eng_session_params(t, NULL); /* the repeat profile moves too */
  /* The automatic segments move with the same history. */
  idx_km_data d;
  idx_clusters cl;
  pthread_rwlock_rdlock(&t->lock);
  rc = t->cfg.clusters > 0 ? idx_cluster_features(t->ix, now, &d) : -1;
  pthread_rwlock_unlock(&t->lock);
  if (rc == 0 && idx_cluster_fit(&d, (uint32_t)t->cfg.clusters, &cl) == 0) {
    cl.fitted_at = now;
    pthread_rwlock_wrlock(&t->lock);
    idx_cluster_install(t->ix, &d, &cl);
    pthread_rwlock_unlock(&t->lock);
  }
  if (rc == 0) idx_km_data_free(&d);
  /* The in-session purchase propensity, on the same history. */
  idx_prop_data pd;
  pthread_rwlock_rdlock(&t->lock);
  rc = idx_propensity_data(t->ix, &pd);
  pthread_rwlock_unlock(&t->lock);
  idx_propensity *pm = rc == 0 ? malloc(sizeof *pm) : NULL;
  if (pm && idx_propensity_fit(&pd, pm) == 0) {
    pm->fitted_at = now;
    pthread_rwlock_wrlock(&t->lock);
    idx_propensity *old = t->ix->propensity;
    t->ix->propensity = pm;
    pthread_rwlock_unlock(&t->lock);
    free(old);
    eng_log(t, TAILOR_LOG_INFO,
            "propensity: AUC %.3f, calibration error %.3f on %u held-out sessions "
            "(%u trained on)", pm->auc, pm->ece, pm->n_holdout, pm->n_train);
  } else {
    free(pm);
  }
  if (rc == 0) idx_prop_data_free(&pd);
  if (n) {
    char why[256];
    eng_log(t, TAILOR_LOG_INFO, "value model: %s (%s) in %.2f s",
            idx_value_kind_name(m.kind), idx_value_reason(&m, why, sizeof why),
            (double)(util_mono_ns() - t0) / 1e9);
  }
}

int tailor_checkpoint(tailor *t, tailor_error *err) {
  if (!t->ckpt_path)
    return util_fail(err, TAILOR_EUNSUPPORTED, "index.checkpoint",
                     "checkpoint: none configured (in-memory store?)");
  pthread_mutex_lock(&t->write_mu);
  t->ckpt_seq = -1; /* write even when nothing changed */
  eng_save_checkpoint(t);
  int ok = t->ckpt_seq == t->applied_seq;
  pthread_mutex_unlock(&t->write_mu);
  return ok ? TAILOR_OK
            : util_fail(err, TAILOR_EIO, NULL, "checkpoint: cannot write %s",
                        t->ckpt_path);
}

tailor *tailor_open(const char *config_json, tailor_error *err) {
  tailor *t = calloc(1, sizeof *t);
  if (!t) {
    util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
    return NULL;
  }
  t->log = log_stderr;
  if (config_parse(&t->cfg, config_json, err) || eng_optin_check_config(&t->cfg, err)) {
    config_free(&t->cfg);
    free(t);
    return NULL;
  }
  pthread_mutex_init(&t->write_mu, NULL);
  pthread_mutex_init(&t->commit_mu, NULL);
  pthread_mutex_init(&t->expo_mu, NULL);
  pthread_mutex_init(&t->read_mu, NULL);
  t->expo = json_array();
  pthread_cond_init(&t->commit_cv, NULL);
  /* Writers first: with glibc's default (readers first) a steady stream of
     decisions would starve ingestion forever.  No thread ever takes the read
     lock twice, which writer preference requires. */
  pthread_rwlockattr_t rwa;
  pthread_rwlockattr_init(&rwa);
  pthread_rwlockattr_setkind_np(&rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&t->lock, &rwa);
  pthread_rwlockattr_destroy(&rwa);
  pthread_mutex_init(&t->vm_mu, NULL);
  pthread_mutex_init(&t->scan_mu, NULL);
  if (eng_vms_init(t)) {
    util_fail(err, TAILOR_ENOMEM, NULL, "cannot create a thread key");
    config_free(&t->cfg);
    free(t);
    return NULL;
  }
  store_options so = {t->cfg.durable_full, 0, 0};
  idx_config ic = {
      .recent_max = (uint32_t)t->cfg.recent_max,
      .coview_window = (uint32_t)t->cfg.coview_window,
      .max_neighbors = (uint16_t)(t->cfg.max_neighbors > 65535 ? 65535
                                                               : t->cfg.max_neighbors),
      /* 0 in the config means no decay; the index takes < 0 for that. */
      .cooc_half_life_days =
          t->cfg.cooc_half_life_days ? (double)t->cfg.cooc_half_life_days : -1,
      .trend_half_life_days =
          t->cfg.trend_half_life_days ? (double)t->cfg.trend_half_life_days : -1,
      .cross_order_weight = -1,
      .lapsed_days = (uint32_t)t->cfg.lapsed_days,
      .audience_days = t->cfg.audience_days,
      .coupons = t->cfg.coupons,
      .trend_keys = t->cfg.trend_keys,
  };
  if (!(t->st = store_open(t->cfg.db, &so, err))) goto fail;
  t->st_read = store_open_reader(t->st); /* optional: NULL is fine */
  if (!(t->ix = idx_new(&ic))) {
    util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
    goto fail;
  }
  if (load_checkpoint(t, &ic)) goto fail;
  /* Replay what the checkpoint does not have (everything, without one). */
  uint64_t t0 = util_mono_ns();
  int64_t from = t->applied_seq;
  if (store_scan(t->st, from, eng_rebuild_one, t, err)) goto fail;
  if (t->applied_seq > from)
    eng_log(t, TAILOR_LOG_INFO, "index: replayed %lld events in %.2f s",
            (long long)(t->applied_seq - from), (double)(util_mono_ns() - t0) / 1e9);
  sknn_params_default(&t->sess_params, SKNN_TAILOR);
  if (eng_session_params(t, err)) goto fail;
  eng_refit_value(t);
  if (eng_follow_start(t, err)) goto fail;
  /* Plugins before strategies: a strategy may call their Lua functions. */
  if (eng_plugins_load(t, err)) goto fail;
  if (t->cfg.strategies && *t->cfg.strategies &&
      access(t->cfg.strategies, F_OK) != 0) {
    /* The default folder may simply not exist where tailor runs (ingest,
       stats); a folder the config names must exist. */
    if (config_is_default(&t->cfg, "strategies")) {
      t->cfg.strategies[0] = '\0';
    } else {
      util_fail(err, TAILOR_ECONFIG, "strategies",
                "strategies folder '%s' not found", t->cfg.strategies);
      goto fail;
    }
  }
  if (t->cfg.strategies && *t->cfg.strategies) {
    /* Refuse to start on a folder that does not compile: better now than
       on the first visitor.  The signature first: an edit made while the
       snapshot is taken is seen by the next scan. */
    if (t->cfg.strategies_base && *t->cfg.strategies_base &&
        access(t->cfg.strategies_base, F_OK) != 0) {
      util_fail(err, TAILOR_ECONFIG, "strategies_base", "strategies_base folder '%s' not found",
                t->cfg.strategies_base);
      goto fail;
    }
    t->strat_sig = eng_strategies_signature(t);
    if (eng_strategies_load(t, err)) goto fail;
    atomic_store(&t->last_scan_ms, util_now_ms());
    /* On a shared log, this node's events owe their triggers until they
       run, and the follower takes over those a dead node owed (follow.c). */
    if (store_shared(t->st)) {
      pthread_mutex_lock(&t->write_mu);
      store_triggers_owed(t->st, 1);
      pthread_mutex_unlock(&t->write_mu);
      atomic_store(&t->triggers_ready, 1);
    }
  }
  return t;
fail:
  tailor_close(t);
  return NULL;
}

void tailor_close(tailor *t) {
  if (!t) return;
  eng_follow_stop(t);
  if (t->st && t->ix) eng_save_checkpoint(t);
  if (t->st && t->expo) {
    pthread_mutex_lock(&t->write_mu);
    eng_flush_exposures(t);
    pthread_mutex_unlock(&t->write_mu);
  }
  free(t->ckpt_path);
  eng_vms_free(t);
  eng_strategies_free(t);
  /* After the Lua states: their tables hold the plugins' functions. */
  eng_plugins_unload(t);
  store_close(t->st_read);
  store_close(t->st);
  idx_free(t->ix);
  sknn_tuned_free(t->tuned);
  free(t->tuned);
  config_free(&t->cfg);
  pthread_mutex_destroy(&t->write_mu);
  pthread_mutex_destroy(&t->commit_mu);
  pthread_mutex_destroy(&t->expo_mu);
  pthread_mutex_destroy(&t->read_mu);
  json_decref(t->expo);
  pthread_cond_destroy(&t->commit_cv);
  pthread_rwlock_destroy(&t->lock);
  pthread_mutex_destroy(&t->vm_mu);
  pthread_mutex_destroy(&t->scan_mu);
  free(t);
}

