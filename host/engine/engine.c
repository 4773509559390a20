/*
** engine.c: an engine's life: opening (config, store, the index rebuilt
** from a checkpoint and the log, plugins, strategies checked) and closing,
** checkpoints, the customer-value refit, error names and logging.  The
** event path is ingest.c, decisions decide.c, the per-thread Lua states
** vm.c, the admin's reads and erasure admin.c.
*/
#include "engine/deliver.h"
#include "engine/engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <errno.h>
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
  /* -(long long): negating INT_MIN as an int overflows */
  return code <= 0 && -(long long)code < (long long)NCODES ? code_msgs[-code] : "unknown error";
}

const char *tailor_errname(int code) {
  return code <= 0 && -(long long)code < (long long)NCODES ? code_names[-code] : "EUNKNOWN";
}

void tailor_free(void *p) { free(p); }

static void log_stderr(void *ud, int level, const char *msg) {
  static const char *const names[] = {"error", "warning", "info", "debug"};
  if (level <= TAILOR_LOG_WARN)
    fprintf(stderr, "tailor: %s: %s\n", names[level], msg);
}

void tailor_set_logger(tailor *t, tailor_log_fn fn, void *ud) {
  if (!t) return;
  t->log = fn;
  t->log_ud = ud;
}

void tailor_set_metrics(tailor *t, tailor_metric_fn fn, void *ud) {
  if (!t) return;
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
/* A replay that takes long says how far it is, every 5 s: a start without
   a checkpoint that covers the store reads the whole log. */
#define REPLAY_SAY_NS 5000000000ull

/* A stored event today's parser refuses (store.h, store_on_unreadable):
   an older build wrote it before a check existed.  Said and counted; the
   index goes on without it rather than every command failing to open. */
void eng_unreadable(void *ud, int64_t seq, const char *why) {
  tailor *t = ud;
  atomic_fetch_add(&t->n_unreadable, 1);
  eng_log(t, TAILOR_LOG_WARN,
          "index: stored event %lld is refused by today's checks (%s); the index passes "
          "over it, the store keeps it (an export lists it, an erasure removes it)",
          (long long)seq, why);
}

int eng_rebuild_one(void *ud, int64_t seq, const ev *e) {
  tailor *t = ud;
  t->applied_seq = seq;
  if (!e) return 0; /* a row passed over (eng_unreadable) */
  if (!(t->ix->applied & 16383) && t->replay_said &&
      util_mono_ns() - t->replay_said >= REPLAY_SAY_NS) {
    t->replay_said = util_mono_ns();
    eng_log(t, TAILOR_LOG_WARN,
            "index: replaying the store, at event %lld of %lld (no checkpoint covered them; "
            "index.checkpoint_every or `tailor checkpoint` makes the next start quick)",
            (long long)seq, (long long)store_last_seq(t->st));
  }
  if (idx_apply(t->ix, e) != TAILOR_OK) {
    eng_log(t, TAILOR_LOG_ERROR, "rebuild: out of memory at event %lld",
            (long long)seq);
    return TAILOR_ENOMEM;
  }
  /* Replaying a shared log: only the crossings from the planned one on
     (tailor_open) refit; the earlier ones are history a later fit covers. */
  if (t->replay_refits && e->type == EV_PURCHASE && t->ix->orders_seen >= t->refit_from &&
      eng_refit_due(t))
    return ENG_REFIT_DUE;
  return 0;
}

/*
** Refits on a shared log happen at log positions: after the event that
** brings the count of purchase events applied (idx.orders_seen) to a
** crossing.  The crossings are the multiples of index.value_refit_orders
** (R) and, so that a young shop is not left without models until its R-th
** order, the powers of two below R (1, 2, 4, ... orders): about log2(R)
** extra fits, each on a small history.  With R = 0 the powers of two go on
** (1, 2, 4, ... 1024, 2048, ...): ever rarer refits, never none.
*/
static int is_crossing(uint64_t c, long r) {
  if (!c) return 0;
  if (r > 0 && c % (uint64_t)r == 0) return 1;
  return (r <= 0 || c < (uint64_t)r) && (c & (c - 1)) == 0;
}

int eng_refit_due(const tailor *t) {
  return is_crossing(t->ix->orders_seen, t->cfg.value_refit_orders);
}

/* The crossing before crossing c (0: none). */
static uint64_t prev_crossing(uint64_t c, long r) {
  if (r > 0 && c > (uint64_t)r) return c - (uint64_t)r;
  uint64_t p = c - 1;
  while (p && !is_crossing(p, r)) p--;
  return p;
}

/* The last crossing at or below c (0: none). */
static uint64_t last_crossing(uint64_t c, long r) {
  if (r > 0 && c >= (uint64_t)r) return c - c % (uint64_t)r;
  while (c && !is_crossing(c, r)) c--;
  return c;
}

/*
** Checkpoints: loaded on open when they match the store and the index
** configuration, written on close (and every index.checkpoint_every events).
*/
/*
** The store's identity, a random number kept in its meta table from its
** first open on, mixed into the checkpoint's fingerprint: a checkpoint
** copied beside another store (or a store swapped under its checkpoint)
** is refused like one of another index configuration, not trusted (its
** sequence numbers say nothing about another store's events).  0 when the
** store can neither tell nor keep one (read-only): the configuration alone.
*/
static uint64_t store_id_of(tailor *t) {
  char *id = store_meta_get(t->st, "store_id");
  uint64_t v = 0;
  if (id) {
    v = strtoull(id, NULL, 16);
    free(id);
    return v;
  }
  char hex[17];
  if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) return 0;
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)v);
  return store_meta_set(t->st, "store_id", hex, NULL) == TAILOR_OK ? v : 0;
}

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
  t->ckpt_fp = idx_fingerprint(t->ix) ^ store_id_of(t);
  if (access(t->ckpt_path, F_OK) != 0) return TAILOR_OK;
  tailor_error e = {0};
  int64_t seq = 0;
  uint64_t fp = 0;
  idx *x = NULL;
  if (idx_checkpoint_seq(t->ckpt_path, &seq) == TAILOR_OK && !store_has_seq(t->st, seq)) {
    /* Refused as idx_load refuses a checkpoint it cannot use, and removed
       by the writer: once the restored store's new events pass its
       position it would fit again, and a stop before the next checkpoint
       (a crash) would bring back events this store never had. */
    int gone = t->cfg.store_lock ? eng_drop_checkpoint(t) : 0;
    util_fail(&e, TAILOR_EIO, NULL,
              "checkpoint %s ignored: it has events up to %lld, the store only "
              "to %lld (a store restored from backup?)%s%s",
              t->ckpt_path, (long long)seq, (long long)store_last_seq(t->st),
              !t->cfg.store_lock ? "" : gone ? "; cannot remove it: " : "; removed",
              gone ? strerror(gone) : "");
  } else if (eng_checkpoint_fp(t, seq, &fp, &e) == TAILOR_OK) {
    /* On PostgreSQL a position the restored log reached again with other
       events (another node wrote them first) has another token: refused
       as a checkpoint of another store, and it never fits again. */
    x = idx_load(t->ckpt_path, ic, fp, &seq, &e);
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

int eng_checkpoint_fp(tailor *t, int64_t seq, uint64_t *fp, tailor_error *err) {
  uint64_t token;
  int rc = store_seq_token(t->st, seq, &token, err);
  *fp = t->ckpt_fp ^ token;
  return rc;
}

/* Write the checkpoint; the caller holds write_mu (no event can slip in). */
int eng_drop_checkpoint(tailor *t) {
  if (!t->ckpt_path) return 0;
  t->ckpt_seq = -1; /* none written: the next save writes one */
  if (unlink(t->ckpt_path) && errno != ENOENT) return errno;
  util_sync_dir_of(t->ckpt_path);
  return 0;
}

void eng_checkpoint_due(tailor *t) {
  if (t->cfg.checkpoint_every > 0 && t->applied_seq - t->ckpt_seq >= t->cfg.checkpoint_every)
    eng_save_checkpoint(t);
}

void eng_save_checkpoint(tailor *t) {
  /* An index that missed part of an event must not be saved as if it had
     it: the next start replays from the store instead. */
  if (!t->ckpt_path || t->applied_seq == t->ckpt_seq || t->ix_incomplete) return;
  if (!t->cfg.store_lock) return; /* a reader beside the writer: its checkpoint is the writer's */
  tailor_error e = {0};
  uint64_t fp;
  int rc = eng_checkpoint_fp(t, t->applied_seq, &fp, &e);
  if (!rc) {
    pthread_rwlock_rdlock(&t->lock);
    rc = idx_save(t->ix, t->ckpt_path, fp, t->applied_seq, &e);
    pthread_rwlock_unlock(&t->lock);
  }
  if (rc)
    eng_log(t, TAILOR_LOG_ERROR, "%s", e.message);
  else
    t->ckpt_seq = t->applied_seq;
}

/*
** The check of a fit (index.h, idx_value_check), on the orders the index
** holds; index.value_holdout_days = 0 turns it off.
*/
static void value_check(tailor *t, idx_value_check *chk) {
  memset(chk, 0, sizeof *chk);
  if (t->cfg.value_holdout_days <= 0) return;
  idx_value_order *o;
  size_t n;
  pthread_rwlock_rdlock(&t->lock); /* the orders copied; checked without the lock */
  int rc = idx_value_orders_held(t->ix, &o, &n);
  pthread_rwlock_unlock(&t->lock);
  if (!rc) {
    rc = idx_value_check_orders(o, n, (double)t->cfg.value_holdout_days,
                                (size_t)t->cfg.value_min_repeat, chk);
    free(o);
  }
  if (rc) {
    memset(chk, 0, sizeof *chk);
    eng_log(t, TAILOR_LOG_ERROR, "value model check: out of memory");
  }
}

/* Tailor's defaults adjusted to a profile (none: the defaults). */
static void session_params_set(tailor *t, const sknn_repeat_profile *prof, int ok) {
  sknn_params p;
  sknn_params_default(&p, SKNN_TAILOR);
  int adapted = ok ? sknn_params_adapt(&p, prof) : 0;
  pthread_rwlock_wrlock(&t->lock);
  int was = t->sess_adapted;
  t->sess_params = p;
  t->sess_adapted = adapted;
  pthread_rwlock_unlock(&t->lock);
  if (adapted != was) {
    char line[300] = "no profile";
    if (ok) sknn_repeat_profile_format(prof, line, sizeof line);
    eng_log(t, TAILOR_LOG_INFO, "session kernel: %s%s (%s): repeat=%g repeat_decay=%g trans=%g",
            adapted ? sknn_adapted_name(adapted) : "shipped defaults", adapted ? " shop" : "",
            line, p.repeat, p.repeat_decay, p.trans);
  }
}

/* Between the transition check's sessions on the fitter (below): the read
   lock let go and taken again, so that the writer (preferred) gets in;
   nonzero when the index was replaced meanwhile (an erasure is no reason
   to stop: it leaves the sessions the check reads alone). */
typedef struct fit_pause {
  tailor *t;
  uint64_t swaps;
  int gone;
} fit_pause;

static int fit_pause_fn(void *ud) {
  fit_pause *p = ud;
  pthread_rwlock_unlock(&p->t->lock);
  pthread_rwlock_rdlock(&p->t->lock);
  p->gone = atomic_load(&p->t->ix_swaps) != p->swaps || atomic_load(&p->t->fit_quit);
  return p->gone;
}

/* The repeat profile of the latest sessions in the index; 1 when there is
   one, 0 when none, -1 when the index was replaced during the check.
   `bg`: on the fitter, letting the writer in between sessions. */
static int repeat_profile(tailor *t, sknn_repeat_profile *prof, int bg) {
  pthread_rwlock_rdlock(&t->lock);
  fit_pause p = {t, atomic_load(&t->ix_swaps), 0};
  int rc = sknn_repeat_profile_paused(t->ix->sknn, SKNN_PROFILE_SESSIONS, prof,
                                      bg ? fit_pause_fn : NULL, &p);
  pthread_rwlock_unlock(&t->lock);
  return p.gone ? -1 : rc == 0;
}

/*
** tailor.session_next's tailor kernel.  With index.tuned, the file's
** parameters and re-ranker, read once on open (a file that cannot be used
** stops the open, naming the key and the file).  Without it, tailor's
** defaults adjusted to the shop's repeat profile (sknn_params_adapt, the
** rule `tailor eval` and `tailor tune` start from), read again from the
** latest sessions at each value refit; on a shared log the profile of the
** last fit (idx.fit), so that it too moves at log positions only.  The
** caller holds write_mu or is tailor_open.
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
  if (store_shared(t->st)) {
    session_params_set(t, &t->ix->fit.repeat, t->ix->fit.repeat_ok);
    return TAILOR_OK;
  }
  sknn_repeat_profile prof;
  int ok = repeat_profile(t, &prof, 0);
  session_params_set(t, &prof, ok);
  return TAILOR_OK;
}

/*
** The lineage of the clusters on a shared log.  A refit names each new
** cluster after the one of the previous fit it matches (kmeans.c), so the
** clusters at a crossing depend on every fit before it.  A node that
** skipped fits (a replay refits only at the last crossing it reaches, a
** checkpoint may be older than the last crossing) takes the previous
** crossing's clusters from the store's meta table, where every node that
** fits at a crossing leaves them (the same text from each node); a ring
** of ENG_CLUSTER_RING crossings, since only a recent one is ever asked for.
*/
#define ENG_CLUSTER_RING 64

static void cluster_key(const tailor *t, uint64_t crossing, char *buf, size_t n) {
  long r = t->cfg.value_refit_orders;
  uint64_t slot = r > 0 && crossing >= (uint64_t)r ? crossing % ((uint64_t)r * ENG_CLUSTER_RING)
                                                   : crossing;
  snprintf(buf, n, "clusters:%llu", (unsigned long long)slot);
}

static void clusters_publish(tailor *t, uint64_t crossing, int64_t seq, const idx_clusters *c) {
  json_t *o = json_pack("{sI sI sI sI sI}", "orders", (json_int_t)crossing, "seq",
                        (json_int_t)seq, "k", (json_int_t)c->k, "dims", (json_int_t)c->dims,
                        "n", (json_int_t)c->n);
  json_t *size = json_array(), *cats = json_array(), *cen = json_array(), *name = json_array();
  for (uint32_t j = 0; j < c->dims; j++) json_array_append_new(cats, json_integer(c->cats[j]));
  for (uint32_t m = 0; m < c->k; m++) {
    json_t *row = json_array();
    for (uint32_t j = 0; j < c->dims; j++) json_array_append_new(row, json_real(c->centroid[m][j]));
    json_array_append_new(cen, row);
    json_array_append_new(size, json_integer((json_int_t)c->size[m]));
    json_array_append_new(name, json_string(c->name[m]));
  }
  json_object_set_new(o, "size", size);
  json_object_set_new(o, "cats", cats);
  json_object_set_new(o, "centroid", cen);
  json_object_set_new(o, "name", name);
  char key[64], *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
  json_decref(o);
  cluster_key(t, crossing, key, sizeof key);
  tailor_error e = {0};
  if (!text || store_meta_set(t->st, key, text, &e))
    eng_log(t, TAILOR_LOG_WARN, "clusters of crossing %llu not left in the store (%s); a node "
            "that starts without a checkpoint may name them afresh",
            (unsigned long long)crossing, text ? e.message : "out of memory");
  free(text);
}

/* The clusters fitted at `crossing`, from the store; 0 when found. */
static int clusters_recall(tailor *t, uint64_t crossing, idx_clusters *c) {
  char key[64];
  cluster_key(t, crossing, key, sizeof key);
  char *text = store_meta_get(t->st, key);
  json_t *o = text ? json_loads(text, 0, NULL) : NULL;
  free(text);
  memset(c, 0, sizeof *c);
  int ok = o && json_integer_value(json_object_get(o, "orders")) == (json_int_t)crossing;
  if (ok) {
    c->k = (uint32_t)json_integer_value(json_object_get(o, "k"));
    c->dims = (uint32_t)json_integer_value(json_object_get(o, "dims"));
    c->n = (size_t)json_integer_value(json_object_get(o, "n"));
    json_t *size = json_object_get(o, "size"), *cats = json_object_get(o, "cats"),
           *cen = json_object_get(o, "centroid"), *name = json_object_get(o, "name");
    ok = c->k <= IDX_KMEANS_MAX_K && c->dims <= IDX_KMEANS_MAX_DIMS &&
         json_array_size(size) == c->k && json_array_size(cen) == c->k &&
         json_array_size(name) == c->k && json_array_size(cats) == c->dims;
    for (uint32_t j = 0; ok && j < c->dims; j++)
      c->cats[j] = (uint32_t)json_integer_value(json_array_get(cats, j));
    for (uint32_t m = 0; ok && m < c->k; m++) {
      json_t *row = json_array_get(cen, m);
      ok = json_array_size(row) == c->dims && json_is_string(json_array_get(name, m));
      for (uint32_t j = 0; ok && j < c->dims; j++)
        c->centroid[m][j] = json_number_value(json_array_get(row, j));
      c->size[m] = (size_t)json_integer_value(json_array_get(size, m));
      if (ok) snprintf(c->name[m], sizeof c->name[m], "%s", json_string_value(json_array_get(name, m)));
    }
  }
  json_decref(o);
  if (!ok) memset(c, 0, sizeof *c);
  return ok ? 0 : -1;
}

/* A fit beside the writer of an engine that is closing stops at its next
   step, installing nothing more: the next start refits anyway, and a stop
   (SIGTERM) then waits for one step, not for a whole fit (seconds). */
static int quitting(tailor *t, int bg) {
  if (!bg || !atomic_load(&t->fit_quit)) return 0;
  eng_log(t, TAILOR_LOG_INFO, "model refit stopped: the engine is closing (the next start "
          "refits)");
  return 1;
}

/*
** The models (customer value: BG/NBD + Gamma-Gamma; the automatic
** segments; the in-session purchase propensity; the session kernel's
** repeat profile), fitted on the index as it is at log position `seq`
** with `now` as their time.  The fits hold no index lock, so decisions go
** on meanwhile.  The caller holds write_mu, or is the fitter (`bg`, below),
** which reads and installs under the index lock alone.
*/
static void refit(tailor *t, int64_t now, int64_t seq, int shared, int bg) {
  clv_customer *c;
  size_t n;
  pthread_rwlock_rdlock(&t->lock);
  int rc = idx_value_customers(t->ix, now, &c, &n);
  uint64_t orders = t->ix->orders_seen, gen = atomic_load(&t->ix_gen);
  pthread_rwlock_unlock(&t->lock);
  if (rc) return;
  idx_value_model m;
  uint64_t t0 = util_mono_ns();
  idx_value_fit(c, n, now, (size_t)t->cfg.value_min_repeat, &m);
  free(c);
  if (quitting(t, bg)) return;
  if (n) value_check(t, &m.check);
  if (quitting(t, bg)) return;
  pthread_rwlock_wrlock(&t->lock);
  t->ix->value = m;
  pthread_rwlock_unlock(&t->lock);
  atomic_store(&t->value_orders, orders);
  /* The repeat profile moves too. */
  sknn_repeat_profile prof = {0};
  int prof_ok = repeat_profile(t, &prof, bg);
  if (quitting(t, bg)) return;
  if (prof_ok < 0) { /* no profile read: the kernel keeps the one it has */
    pthread_rwlock_rdlock(&t->lock);
    prof = t->ix->fit.repeat;
    prof_ok = t->ix->fit.repeat_ok;
    pthread_rwlock_unlock(&t->lock);
  } else if (!t->tuned) {
    session_params_set(t, &prof, prof_ok);
  }
  /* The automatic segments move with the same history; on a shared log
     named after the previous crossing's (the lineage above). */
  idx_km_data d;
  idx_clusters cl;
  pthread_rwlock_rdlock(&t->lock);
  rc = t->cfg.clusters > 0 ? idx_cluster_features(t->ix, now, &d) : -1;
  uint64_t prev = shared ? prev_crossing(orders, t->cfg.value_refit_orders) : 0;
  int held = t->ix->fit.seq && t->ix->fit.orders == prev;
  pthread_rwlock_unlock(&t->lock);
  if (rc == 0 && quitting(t, bg)) {
    idx_km_data_free(&d);
    return;
  }
  if (rc == 0 && idx_cluster_fit(&d, (uint32_t)t->cfg.clusters, &cl) == 0) {
    cl.fitted_at = now;
    idx_clusters before;
    int recalled = shared && prev && !held && clusters_recall(t, prev, &before) == 0;
    if (shared && prev && !held && !recalled)
      eng_log(t, TAILOR_LOG_WARN, "clusters at log position %lld: the store has no clusters of "
              "the crossing at %llu orders, so they are named afresh", (long long)seq,
              (unsigned long long)prev);
    pthread_rwlock_wrlock(&t->lock);
    if (recalled) t->ix->clusters = before;
    else if (shared && !held) t->ix->clusters.k = 0; /* the first of a lineage */
    /* Read before the index was replaced or someone erased (a fit beside
       the writer): its people are not this index's; the next fit's are. */
    if (atomic_load(&t->ix_gen) == gen) idx_cluster_install(t->ix, &d, &cl);
    else free(cl.assign);
    pthread_rwlock_unlock(&t->lock);
    if (shared) clusters_publish(t, orders, seq, &t->ix->clusters);
  }
  if (rc == 0) idx_km_data_free(&d);
  if (quitting(t, bg)) return;
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
  pthread_rwlock_wrlock(&t->lock);
  t->ix->fit = (idx_fit){seq, orders, now, prof, prof_ok};
  pthread_rwlock_unlock(&t->lock);
  if (n) {
    char why[256];
    eng_log(t, TAILOR_LOG_INFO, "value model: %s (%s) in %.2f s, at log position %lld",
            idx_value_kind_name(m.kind), idx_value_reason(&m, why, sizeof why),
            (double)(util_mono_ns() - t0) / 1e9, (long long)seq);
  }
}

/*
** On SQLite (one node): refitted on start and every
** index.value_refit_orders orders, counted from the last fit, by the
** thread that commits, at the wall clock's time, on the whole log.
*/
void eng_refit_value(tailor *t) {
  refit(t, util_now_ms(), t->applied_seq, 0, 0);
}

/*
** Refits beside the writer (index.background_refits; SQLite, where no
** other node needs them at a log position).  At Diginetica's size with
** 20,000 returning customers a refit (value model and its check, repeat
** profile, clusters, propensity) took 0.4 to 1.1 s, and the writer, which
** ran it under write_mu, took no event meanwhile: every 1,000 orders the
** events of every client waited that long.  The fitter thread reads the
** index in short read-locked copies (the repeat profile's queries let go
** of the lock between sessions), fits without it and installs the results
** under the write lock; the writer only asks (eng_refit_ask) and goes on.
*/
static void *fitter_main(void *arg) {
  tailor *t = arg;
  pthread_mutex_lock(&t->fit_mu);
  for (;;) {
    while (!t->fit_asked && !atomic_load(&t->fit_quit))
      pthread_cond_wait(&t->fit_cv, &t->fit_mu);
    if (atomic_load(&t->fit_quit)) break;
    t->fit_asked = 0;
    int64_t seq = t->fit_seq;
    pthread_mutex_unlock(&t->fit_mu);
    refit(t, util_now_ms(), seq, 0, 1);
    atomic_store(&t->fit_busy, 0);
    pthread_mutex_lock(&t->fit_mu);
  }
  pthread_mutex_unlock(&t->fit_mu);
  return NULL;
}

void eng_refit_ask(tailor *t) {
  if (atomic_exchange(&t->fit_busy, 1)) return; /* one is on its way */
  pthread_mutex_lock(&t->fit_mu);
  if (!t->fitter_on && !atomic_load(&t->fit_quit))
    t->fitter_on = pthread_create(&t->fitter, NULL, fitter_main, t) == 0;
  if (!t->fitter_on) { /* no thread: fit here, as without the option */
    pthread_mutex_unlock(&t->fit_mu);
    eng_refit_value(t);
    atomic_store(&t->fit_busy, 0);
    return;
  }
  t->fit_asked = 1;
  t->fit_seq = t->applied_seq;
  pthread_cond_signal(&t->fit_cv);
  pthread_mutex_unlock(&t->fit_mu);
}

/* Before the engine goes, or its logger: a fit under way ends first (it
   writes the index and logs).  Fits asked after run in the asking thread. */
void eng_refits_stop(tailor *t) {
  pthread_mutex_lock(&t->fit_mu);
  atomic_store(&t->fit_quit, 1);
  pthread_cond_signal(&t->fit_cv);
  int on = t->fitter_on;
  pthread_mutex_unlock(&t->fit_mu);
  if (on) pthread_join(t->fitter, NULL);
  pthread_mutex_lock(&t->fit_mu);
  t->fitter_on = 0;
  pthread_mutex_unlock(&t->fit_mu);
}

/*
** On a shared log: at the crossing the event at `seq` (just applied)
** reached, with the log's time there, on the log up to it.
*/
void eng_refit_at(tailor *t, int64_t seq) {
  pthread_rwlock_rdlock(&t->lock);
  int64_t now = t->ix->last_ts;
  pthread_rwlock_unlock(&t->lock);
  refit(t, now, seq, 1, 0);
}

int tailor_checkpoint(tailor *t, tailor_error *err) {
  if (!t) return util_fail(err, TAILOR_EINVAL, NULL, "checkpoint: no engine");
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

/*
** Before replaying a shared log: the crossing the replay refits from, the
** last one the log's purchase events reach (counted up front, so that a
** long log costs one refit, not one per crossing).  Events that arrive
** during the replay only add crossings past it, each refitted; an order
** erased meanwhile may leave the count short of the plan, and the follower
** refits at the next crossing.
*/
static void replay_plan(tailor *t) {
  json_t *counts = store_event_counts(t->st);
  uint64_t total = (uint64_t)json_integer_value(json_object_get(counts, ev_type_name(EV_PURCHASE)));
  json_decref(counts);
  if (total < t->ix->orders_seen) total = t->ix->orders_seen;
  uint64_t last = last_crossing(total, t->cfg.value_refit_orders);
  t->replay_refits = 1;
  /* A checkpoint fitted at the last crossing needs no refit: the next one. */
  t->refit_from = last && t->ix->fit.orders != last ? last : total + 1;
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
  t->exposed = calloc(ENG_EXPOSED_SLOTS, sizeof *t->exposed);
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
  pthread_mutex_init(&t->fit_mu, NULL);
  pthread_cond_init(&t->fit_cv, NULL);
  if (eng_vms_init(t)) {
    util_fail(err, TAILOR_ENOMEM, NULL, "cannot create a thread key");
    config_free(&t->cfg);
    free(t);
    return NULL;
  }
  store_options so = {t->cfg.durable_full, 0, 0, !t->cfg.store_lock};
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
  store_on_unreadable(t->st, eng_unreadable, t);
  t->st_read = store_open_reader(t->st); /* optional: NULL is fine */
  if (!(t->ix = idx_new(&ic))) {
    util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
    goto fail;
  }
  if (load_checkpoint(t, &ic)) goto fail;
  /* Replay what the checkpoint does not have (everything, without one). */
  uint64_t t0 = util_mono_ns();
  t->replay_said = t0;
  int64_t from = t->applied_seq;
  uint64_t applied0 = t->ix->applied;
  int shared = store_shared(t->st);
  if (shared) replay_plan(t);
  for (;;) {
    int rc = store_scan(t->st, t->applied_seq, eng_rebuild_one, t, err);
    if (rc == ENG_REFIT_DUE) {
      uint64_t r0 = util_mono_ns();
      eng_refit_at(t, t->applied_seq);
      t->n_replay_refits++;
      t->replay_refit_ms += (double)(util_mono_ns() - r0) / 1e6;
      continue;
    }
    if (rc) goto fail;
    break;
  }
  t->replay_refits = 0;
  t->replay_said = 0; /* later scans (a shared log's follow) say nothing */
  t->n_replayed = (int64_t)(t->ix->applied - applied0);
  t->replay_ms = (double)(util_mono_ns() - t0) / 1e6;
  if (t->applied_seq > from)
    eng_log(t, TAILOR_LOG_INFO, "index: replayed %lld events in %.2f s (%u refits)",
            (long long)(t->applied_seq - from), (double)(util_mono_ns() - t0) / 1e9,
            t->n_replay_refits);
  sknn_params_default(&t->sess_params, SKNN_TAILOR);
  if (eng_session_params(t, err)) goto fail;
  /* On a shared log the models are those of the last crossing, from the
     checkpoint or the replay: a node's start is no log position. */
  if (!shared) eng_refit_value(t);
  if (eng_follow_start(t, err)) goto fail;
  /* Plugins before strategies: a strategy may call their Lua functions. */
  if (eng_plugins_load(t, err)) goto fail;
  /* Emails a reader cannot leave: the law and bulk senders' rules (Gmail's
     and Yahoo's one-click unsubscribe) ask for a way out, which tailor
     gives only with optin.unsubscribe_url. */
  if (eng_channel_find(t, "email") && !(t->cfg.unsubscribe_url && *t->cfg.unsubscribe_url))
    eng_log(t, TAILOR_LOG_WARN,
            "email: no optin.unsubscribe_url, so emails go out without an unsubscribe link "
            "or List-Unsubscribe header (Gmail and Yahoo want one-click unsubscribe from bulk "
            "senders); set it, with optin.secret (server.md, Unsubscribe links)");
  if (t->cfg.strategies && *t->cfg.strategies &&
      access(t->cfg.strategies, F_OK) != 0) {
    /* The default folder may simply not exist where tailor runs (ingest,
       stats); a folder the config names must exist. */
    if (config_is_default(&t->cfg, "strategies")) {
      char cwd[512];
      eng_log(t, TAILOR_LOG_WARN,
              "strategies: no folder '%s' in %s: no strategy is loaded, so decisions answer "
              "fallbacks and events schedule no emails (--strategies DIR or \"strategies\" "
              "in the config names one)",
              t->cfg.strategies, getcwd(cwd, sizeof cwd) ? cwd : "the working directory");
      t->cfg.strategies[0] = '\0';
      t->no_default_strategies = 1;
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
    atomic_store(&t->serving_sig, t->strat_sig);
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
  eng_refits_stop(t);
  eng_follow_stop(t);
  if (t->st && t->ix) eng_save_checkpoint(t);
  if (t->st) eng_write_exposures(t);
  free(t->ckpt_path);
  free(t->unsent);
  eng_unrecorded_free(t);
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
  free(t->expo.row);
  buf_free(&t->expo.text);
  free(t->exposed);
  pthread_cond_destroy(&t->commit_cv);
  pthread_rwlock_destroy(&t->lock);
  pthread_mutex_destroy(&t->vm_mu);
  pthread_mutex_destroy(&t->scan_mu);
  pthread_mutex_destroy(&t->fit_mu);
  pthread_cond_destroy(&t->fit_cv);
  free(t);
}

