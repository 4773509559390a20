/*
** engine.c: opening an engine (store, then index rebuilt from it), the one
** event path (validate, append durably, apply to the index), statistics,
** logging, and the per-thread Lua states with hot reload.
*/
#include "engine/engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/plugin.h"
#include "core/util.h"

/* The engine whose write_mu this thread holds while it commits: its
   triggers may read the store through eng_read_begin() without taking the
   lock again. */
static _Thread_local tailor *eng_writing;

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
** Per-thread Lua states.
*/
struct vm_slot {
  tailor *t;
  lvm *vm;
  sknn_work *work; /* the session kernels' scratch space, made on first use */
  uint64_t gen;
  vm_slot *prev, *next;
};

static void slot_unlink(tailor *t, vm_slot *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    t->vms = s->next;
  if (s->next) s->next->prev = s->prev;
}

/* Runs when a thread that decided exits: its Lua state goes with it. */
static void slot_destroy(void *p) {
  vm_slot *s = p;
  pthread_mutex_lock(&s->t->vm_mu);
  slot_unlink(s->t, s);
  pthread_mutex_unlock(&s->t->vm_mu);
  lvm_free(s->vm);
  sknn_work_free(s->work);
  free(s);
}

sknn_work *eng_thread_work(tailor *t) {
  vm_slot *s = pthread_getspecific(t->vm_key);
  if (s && !s->work) s->work = sknn_work_new();
  return s ? s->work : NULL;
}

static void vm_log(void *ud, int level, const char *msg) {
  eng_log(ud, level, "%s", msg);
}

void eng_vm_config(tailor *t, lvm_config *c) {
  memset(c, 0, sizeof *c);
  c->dir = t->cfg.strategies;
  c->budget = t->cfg.lua_budget;
  c->memory_limit = (size_t)t->cfg.lua_memory_mb << 20;
  c->open_api = lapi_open;
  c->api_ud = t;
  c->log = vm_log;
  c->log_ud = t;
}

/*
** Look for edited strategy files at most every reload_interval_ms.  An edit
** that does not compile is refused once (and logged); the states keep the
** version they have until the folder changes again.
*/
static void scan_strategies(tailor *t) {
  if (!t->cfg.strategies || !*t->cfg.strategies) return;
  int64_t now = util_now_ms();
  if (now - atomic_load(&t->last_scan_ms) < t->cfg.reload_ms) return;
  if (pthread_mutex_trylock(&t->scan_mu)) return; /* another thread scans */
  atomic_store(&t->last_scan_ms, now);
  uint64_t sig = lvm_dir_signature(t->cfg.strategies);
  if (sig != t->strat_sig) {
    t->strat_sig = sig;
    lvm_config c;
    tailor_error e = {0};
    eng_vm_config(t, &c);
    lvm *probe = lvm_new(&c, &e);
    if (probe) {
      lvm_free(probe);
      atomic_fetch_add(&t->strat_gen, 1);
      eng_log(t, TAILOR_LOG_INFO, "strategies reloaded from %s",
              t->cfg.strategies);
    } else {
      eng_log(t, TAILOR_LOG_ERROR,
              "strategy edit refused, the previous version keeps serving: %s",
              e.message);
    }
  }
  pthread_mutex_unlock(&t->scan_mu);
}

lvm *eng_thread_vm(tailor *t, tailor_error *err) {
  scan_strategies(t);
  vm_slot *s = pthread_getspecific(t->vm_key);
  uint64_t gen = atomic_load(&t->strat_gen);
  if (s && s->gen == gen) return s->vm;
  lvm_config c;
  eng_vm_config(t, &c);
  lvm *vm = lvm_new(&c, err);
  if (!vm) return s ? s->vm : NULL; /* keep serving the old version */
  if (s) {
    lvm_free(s->vm);
    s->vm = vm;
    s->gen = gen;
    return vm;
  }
  if (!(s = calloc(1, sizeof *s))) {
    lvm_free(vm);
    util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
    return NULL;
  }
  s->t = t;
  s->vm = vm;
  s->gen = gen;
  pthread_mutex_lock(&t->vm_mu);
  s->next = t->vms;
  if (t->vms) t->vms->prev = s;
  t->vms = s;
  pthread_mutex_unlock(&t->vm_mu);
  pthread_setspecific(t->vm_key, s);
  return vm;
}

/*
** Opening: config, store, index rebuilt from the log, strategies checked.
*/
static int rebuild_one(void *ud, int64_t seq, const ev *e) {
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
    if (!strcmp(t->cfg.db, ":memory:") || !*t->cfg.db) return TAILOR_OK;
    size_t n = strlen(t->cfg.db) + 6;
    if (!(t->ckpt_path = malloc(n))) return TAILOR_ENOMEM;
    snprintf(t->ckpt_path, n, "%s.ckpt", t->cfg.db);
  } else if (*path) {
    if (!(t->ckpt_path = strdup(path))) return TAILOR_ENOMEM;
  } else {
    return TAILOR_OK;
  }
  t->ckpt_fp = idx_fingerprint(t->ix);
  if (access(t->ckpt_path, F_OK) != 0) return TAILOR_OK;
  tailor_error e = {0};
  int64_t seq = 0, last = store_last_seq(t->st);
  idx *x = idx_load(t->ckpt_path, ic, t->ckpt_fp, &seq, &e);
  if (x && seq > last) {
    snprintf(e.message, sizeof e.message,
             "checkpoint %s ignored: it has events up to %lld, the store only "
             "to %lld (a store restored from backup?)",
             t->ckpt_path, (long long)seq, (long long)last);
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
static void save_checkpoint(tailor *t) {
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

/*
** The customer-value model (BG/NBD + Gamma-Gamma) is refitted on start and
** every index.value_refit_orders orders, by the thread that commits; the
** fit itself holds no index lock, so decisions go on meanwhile.  The
** caller holds write_mu.
*/
static void refit_value(tailor *t) {
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
  idx_value_fit(c, n, now, &m);
  free(c);
  pthread_rwlock_wrlock(&t->lock);
  t->ix->value = m;
  pthread_rwlock_unlock(&t->lock);
  t->value_orders = orders;
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
  if (n)
    eng_log(t, TAILOR_LOG_INFO, "value model: %s on %zu customers in %.2f s",
            m.kind == IDX_VALUE_BGNBD ? "BG/NBD" : "simple estimator", n,
            (double)(util_mono_ns() - t0) / 1e9);
}

int tailor_checkpoint(tailor *t, tailor_error *err) {
  if (!t->ckpt_path)
    return util_fail(err, TAILOR_EUNSUPPORTED, "index.checkpoint",
                     "checkpoint: none configured (in-memory store?)");
  pthread_mutex_lock(&t->write_mu);
  t->ckpt_seq = -1; /* write even when nothing changed */
  save_checkpoint(t);
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
  if (config_parse(&t->cfg, config_json, err)) {
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
  if (pthread_key_create(&t->vm_key, slot_destroy)) {
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
  if (strcmp(t->cfg.db, ":memory:") != 0) {
    store_options ro = {0, 0, 1};
    t->st_read = store_open(t->cfg.db, &ro, NULL); /* optional: NULL is fine */
  }
  if (!(t->ix = idx_new(&ic))) {
    util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
    goto fail;
  }
  if (load_checkpoint(t, &ic)) goto fail;
  /* Replay what the checkpoint does not have (everything, without one). */
  uint64_t t0 = util_mono_ns();
  int64_t from = t->applied_seq;
  if (store_scan(t->st, from, rebuild_one, t, err)) goto fail;
  if (t->applied_seq > from)
    eng_log(t, TAILOR_LOG_INFO, "index: replayed %lld events in %.2f s",
            (long long)(t->applied_seq - from), (double)(util_mono_ns() - t0) / 1e9);
  refit_value(t);
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
       on the first visitor. */
    lvm_config c;
    eng_vm_config(t, &c);
    lvm *probe = lvm_new(&c, err);
    if (!probe) goto fail;
    lvm_free(probe);
    t->strat_sig = lvm_dir_signature(t->cfg.strategies);
    atomic_store(&t->last_scan_ms, util_now_ms());
  }
  return t;
fail:
  tailor_close(t);
  return NULL;
}

void tailor_close(tailor *t) {
  if (!t) return;
  if (t->st && t->ix) save_checkpoint(t);
  if (t->st && t->expo) {
    pthread_mutex_lock(&t->write_mu);
    eng_flush_exposures(t);
    pthread_mutex_unlock(&t->write_mu);
  }
  free(t->ckpt_path);
  /* After the key is deleted no thread-exit destructor runs for it, so the
     list below is ours alone. */
  pthread_key_delete(t->vm_key);
  for (vm_slot *s = t->vms, *next; s; s = next) {
    next = s->next;
    lvm_free(s->vm);
    sknn_work_free(s->work);
    free(s);
  }
  /* After the Lua states: their tables hold the plugins' functions. */
  eng_plugins_unload(t);
  store_close(t->st_read);
  store_close(t->st);
  idx_free(t->ix);
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

/*
** The event path.  Events are durable in the store before they touch the
** index, and both happen under write_mu, so the index sees events in the
** store's order.
*/
static ev_limits limits_of(tailor *t) {
  ev_limits lim = {(size_t)t->cfg.max_event_bytes, 0, util_now_ms(), 0};
  return lim;
}

/* One caller's events waiting for the group commit. */
struct commit_req {
  ev **evs;
  size_t n;
  int rc;
  int done;
  tailor_error err;
  commit_req *next;
};

/*
** The index was changed by events whose transaction did not commit (a full
** disk, an I/O error): it no longer matches the store, so it is built
** again from the checkpoint and the log.  Rare, and correct over fast.
** The caller holds write_mu.
*/
static void reload_index(tailor *t) {
  idx_config ic = t->ix->cfg;
  idx *fresh = idx_new(&ic);
  tailor_error e = {0};
  if (!fresh) {
    t->ix_incomplete = 1;
    return;
  }
  pthread_rwlock_wrlock(&t->lock);
  idx *old = t->ix;
  t->ix = fresh;
  t->applied_seq = 0;
  if (t->ckpt_path && access(t->ckpt_path, F_OK) == 0) {
    int64_t seq = 0;
    idx *x = idx_load(t->ckpt_path, &ic, t->ckpt_fp, &seq, &e);
    if (x) {
      idx_free(t->ix);
      t->ix = x;
      t->applied_seq = seq;
    }
  }
  if (store_scan(t->st, t->applied_seq, rebuild_one, t, &e)) t->ix_incomplete = 1;
  pthread_rwlock_unlock(&t->lock);
  idx_free(old);
  eng_log(t, TAILOR_LOG_WARN, "index rebuilt from the store after a failed commit");
}

/*
** Write one group: the events, their state changes and the outbox rows
** their triggers schedule, in one transaction.  Between the append and the
** commit the index applies the events (the triggers' ctx sees them) and
** on_event runs; so a crash at any point leaves either all of it or none,
** and nothing was acknowledged that is not durable with its emails.
*/
static int commit_group(tailor *t, commit_req *group, tailor_error *err) {
  size_t n = 0, at = 0;
  for (commit_req *r = group; r; r = r->next) n += r->n;
  ev **all = group->next ? malloc(n * sizeof *all) : group->evs;
  if (!all) return util_fail(err, TAILOR_ENOMEM, NULL, "ingest: out of memory");
  if (group->next)
    for (commit_req *r = group; r; r = r->next)
      for (size_t i = 0; i < r->n; i++) all[at++] = r->evs[i];
  pthread_mutex_lock(&t->write_mu);
  eng_writing = t;
  int64_t *seqs = malloc(n * sizeof *seqs), last = 0;
  int applied = 0, rc = seqs ? store_begin(t->st, err)
                             : util_fail(err, TAILOR_ENOMEM, NULL, "ingest: out of memory");
  if (rc == TAILOR_OK) rc = store_append_rows(t->st, all, n, seqs, err);
  if (rc == TAILOR_OK) {
    applied = 1;
    pthread_rwlock_wrlock(&t->lock);
    for (size_t i = 0; i < n; i++) {
      if (all[i]->dup) continue;
      last = seqs[i];
      if (idx_apply(t->ix, all[i]) != TAILOR_OK && (t->ix_incomplete = 1))
        eng_log(t, TAILOR_LOG_ERROR,
                "index: out of memory applying a %s event; it is stored and "
                "will be applied on the next start",
                ev_type_name(all[i]->type));
    }
    pthread_rwlock_unlock(&t->lock);
    rc = eng_run_triggers(t, all, n, err);
  }
  if (rc == TAILOR_OK) rc = store_commit(t->st, err);
  else if (seqs) store_rollback(t->st);
  if (rc != TAILOR_OK && applied) reload_index(t);
  if (rc == TAILOR_OK) {
    if (last) t->applied_seq = last;
    atomic_fetch_add(&t->n_accepted, n);
    if (t->cfg.checkpoint_every > 0 &&
        t->applied_seq - t->ckpt_seq >= t->cfg.checkpoint_every)
      save_checkpoint(t);
    eng_flush_exposures(t);
    if (t->cfg.value_refit_orders > 0 &&
        t->ix->orders_seen - t->value_orders >= (uint64_t)t->cfg.value_refit_orders)
      refit_value(t);
  }
  eng_writing = NULL;
  pthread_mutex_unlock(&t->write_mu);
  free(seqs);
  if (all != group->evs) free(all);
  return rc;
}

/*
** Group commit: callers queue their events; whoever finds no commit running
** becomes the leader and writes everything queued so far in one
** transaction (one fsync), while the others wait for the outcome.  Under
** concurrent ingestion this turns N fsyncs into one, and every caller still
** returns only once its events are durable.
*/
static int commit_events(tailor *t, ev **evs, size_t n, tailor_error *err) {
  commit_req me = {evs, n, 0, 0, {0}, NULL};
  pthread_mutex_lock(&t->commit_mu);
  commit_req **tail = &t->commit_queue;
  while (*tail) tail = &(*tail)->next;
  *tail = &me;
  while (!me.done && t->committing) pthread_cond_wait(&t->commit_cv, &t->commit_mu);
  if (!me.done) {
    commit_req *group = t->commit_queue;
    t->commit_queue = NULL;
    t->committing = 1;
    pthread_mutex_unlock(&t->commit_mu);
    tailor_error gerr = {0};
    int rc = commit_group(t, group, &gerr);
    pthread_mutex_lock(&t->commit_mu);
    for (commit_req *r = group; r; r = r->next) {
      r->rc = rc;
      r->err = gerr;
      r->done = 1;
    }
    t->committing = 0;
    pthread_cond_broadcast(&t->commit_cv);
  }
  pthread_mutex_unlock(&t->commit_mu);
  if (me.rc && err) *err = me.err;
  return me.rc;
}

int eng_ingest(tailor *t, ev *const *evs, size_t n, tailor_error *err) {
  if (!n) return TAILOR_OK;
  int rc = commit_events(t, (ev **)evs, n, err);
  if (rc != TAILOR_OK) return rc;
  eng_plugins_events(t, evs, n);
  eng_metric(t, "events", NULL, (double)n);
  /* The stored text is not needed past here: free it on the thread that
     made it (a free from another thread contends for malloc's arena). */
  for (size_t i = 0; i < n; i++) {
    free(evs[i]->body);
    evs[i]->body = NULL;
  }
  return TAILOR_OK;
}

int tailor_ingest(tailor *t, const char *json, size_t len, tailor_error *err) {
  ev e;
  if (!t || !json)
    return util_fail(err, TAILOR_EINVAL, NULL, "ingest: no engine or no event");
  ev_limits lim = limits_of(t);
  if (err) err->line = 0;
  int rc = ev_parse(json, len, &lim, &e, err);
  if (rc) {
    atomic_fetch_add(&t->n_rejected, 1);
    eng_metric(t, "events_rejected", NULL, 1);
    return rc;
  }
  ev *one = &e;
  rc = eng_ingest(t, &one, 1, err);
  ev_clear(&e);
  return rc;
}

int tailor_ingest_batch(tailor *t, const char *ndjson, size_t len,
                        tailor_reject_fn on_reject, void *ud, size_t *accepted,
                        size_t *rejected) {
  size_t nacc = 0, nrej = 0, cap = 0;
  ev *evs = NULL, **ptrs = NULL;
  ev_limits lim = limits_of(t);
  int rc = TAILOR_OK;
  long line = 0;
  if (accepted) *accepted = 0;
  if (rejected) *rejected = 0;
  for (size_t pos = 0; pos < len;) {
    const char *start = ndjson + pos;
    const char *nl = memchr(start, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - start) : len - pos;
    pos += n + (nl ? 1 : 0);
    line++;
    size_t skip = 0;
    while (skip < n && (start[skip] == ' ' || start[skip] == '\t' ||
                        start[skip] == '\r'))
      skip++;
    if (skip == n) continue; /* blank line */
    if (nacc == cap) {
      size_t ncap = cap ? cap * 2 : 256;
      ev *more = realloc(evs, ncap * sizeof *evs);
      if (!more) {
        rc = TAILOR_ENOMEM;
        goto done;
      }
      evs = more;
      cap = ncap;
    }
    tailor_error e = {0};
    if (ev_parse(start, n, &lim, &evs[nacc], &e) == TAILOR_OK) {
      nacc++;
    } else {
      nrej++;
      e.line = line;
      if (on_reject) on_reject(ud, &e);
    }
  }
  if (nacc) {
    if (!(ptrs = malloc(nacc * sizeof *ptrs))) {
      rc = TAILOR_ENOMEM;
      goto done;
    }
    for (size_t i = 0; i < nacc; i++) ptrs[i] = &evs[i];
    tailor_error e = {0};
    if ((rc = eng_ingest(t, ptrs, nacc, &e)) != TAILOR_OK) {
      eng_log(t, TAILOR_LOG_ERROR, "ingest: %s", e.message);
      goto done;
    }
  }
  if (accepted) *accepted = nacc;
done:
  atomic_fetch_add(&t->n_rejected, nrej);
  if (nrej) eng_metric(t, "events_rejected", NULL, (double)nrej);
  if (rejected) *rejected = nrej;
  for (size_t i = 0; i < nacc; i++) ev_clear(&evs[i]);
  free(evs);
  free(ptrs);
  return rc;
}

/* Lua states alive: one per thread that decided and has not exited. */
static size_t count_states(tailor *t) {
  size_t n = 0;
  pthread_mutex_lock(&t->vm_mu);
  for (vm_slot *s = t->vms; s; s = s->next) n++;
  pthread_mutex_unlock(&t->vm_mu);
  return n;
}

store *eng_read_begin(tailor *t) {
  if (eng_writing == t) return t->st; /* the committing thread: lock held */
  if (t->st_read) {
    pthread_mutex_lock(&t->read_mu);
    return t->st_read;
  }
  pthread_mutex_lock(&t->write_mu);
  return t->st;
}

void eng_read_end(tailor *t) {
  if (eng_writing == t) return;
  pthread_mutex_unlock(t->st_read ? &t->read_mu : &t->write_mu);
}

int tailor_stats(tailor *t, char **out, tailor_error *err) {
  json_t *o = json_object();
  store *st = eng_read_begin(t);
  json_object_set_new(o, "events", store_event_counts(st));
  json_object_set_new(o, "events_total", json_integer(store_count(st, "events")));
  json_object_set_new(o, "items", json_integer(store_count(st, "items")));
  json_object_set_new(o, "customers", json_integer(store_count(st, "customers")));
  json_object_set_new(o, "identities", json_integer(store_count(st, "identities")));
  json_object_set_new(o, "outbox", json_integer(store_count(st, "outbox")));
  eng_read_end(t);
  pthread_rwlock_rdlock(&t->lock);
  json_object_set_new(o, "index",
                      json_pack("{sI sI sI sI}", "items", (json_int_t)t->ix->items.n,
                                "people", (json_int_t)t->ix->people.n,
                                "sessions", (json_int_t)t->ix->sessions.n,
                                "events_applied", (json_int_t)t->ix->applied));
  const idx_value_model *vm = &t->ix->value;
  json_t *model = json_pack("{ss sI}", "kind",
                            vm->kind == IDX_VALUE_BGNBD   ? "bgnbd"
                            : vm->kind == IDX_VALUE_SIMPLE ? "simple"
                                                           : "none",
                            "customers", (json_int_t)vm->customers);
  if (vm->kind == IDX_VALUE_BGNBD)
    json_object_set_new(model, "bgnbd", json_pack("{sf sf sf sf}", "r", vm->bg.r,
                                                  "alpha", vm->bg.alpha, "a", vm->bg.a,
                                                  "b", vm->bg.b));
  if (vm->kind == IDX_VALUE_BGNBD && vm->gg_ok)
    json_object_set_new(model, "gamma_gamma", json_pack("{sf sf sf}", "p", vm->gg.p,
                                                        "q", vm->gg.q, "v", vm->gg.v));
  if (vm->kind != IDX_VALUE_NONE)
    json_object_set_new(model, "simple", json_pack("{sf sf}", "gap_days",
                                                   vm->simple.gap_days, "order_value",
                                                   vm->simple.order_value));
  json_object_set_new(o, "value_model", model);
  pthread_rwlock_unlock(&t->lock);
  /* Counters of this process since the engine opened. */
  json_object_set_new(
      o, "process",
      json_pack("{sI sI sI sI sI sI sI sI}", "lua_states", (json_int_t)count_states(t),
                "decisions",
                (json_int_t)atomic_load(&t->n_decisions), "strategy_errors",
                (json_int_t)atomic_load(&t->n_strategy_errors), "events_accepted",
                (json_int_t)atomic_load(&t->n_accepted), "events_rejected",
                (json_int_t)atomic_load(&t->n_rejected), "triggers_scheduled",
                (json_int_t)atomic_load(&t->n_triggers), "triggers_capped",
                (json_int_t)atomic_load(&t->n_trigger_capped), "triggers_without_consent",
                (json_int_t)atomic_load(&t->n_trigger_no_consent)));
  *out = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return *out ? TAILOR_OK : util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
}

int tailor_forget(tailor *t, const char *customer, int64_t *erased,
                  tailor_error *err) {
  if (!t || !customer || !*customer)
    return util_fail(err, TAILOR_EINVAL, "customer", "forget: no customer id");
  /* Under write_mu so no event of theirs can slip in between the store and
     the index. */
  pthread_mutex_lock(&t->write_mu);
  int rc = store_forget(t->st, customer, erased, err);
  if (rc == TAILOR_OK) {
    pthread_rwlock_wrlock(&t->lock);
    idx_forget(t->ix, customer);
    pthread_rwlock_unlock(&t->lock);
  }
  pthread_mutex_unlock(&t->write_mu);
  if (rc == TAILOR_OK) eng_log(t, TAILOR_LOG_INFO, "erased a customer");
  return rc;
}

static json_t *ids_json(const idx *x, const idx_ids *a) {
  json_t *out = json_array();
  for (uint32_t i = 0; a && i < a->n; i++)
    json_array_append_new(out, json_string(intern_name(&x->items, a->v[i])));
  return out;
}

int tailor_customer(tailor *t, const char *id, int flags, char **out,
                    tailor_error *err) {
  if (!t || !id || !out)
    return util_fail(err, TAILOR_EINVAL, NULL, "customer: missing argument");
  *out = NULL;
  json_t *profile = store_customer(eng_read_begin(t), id);
  eng_read_end(t);
  pthread_rwlock_rdlock(&t->lock);
  const idx *x = t->ix;
  uint32_t p = idx_person_of(x, id, id);
  if (p == INTERN_NONE && !profile) {
    pthread_rwlock_unlock(&t->lock);
    return util_fail(err, TAILOR_ENOTFOUND, "id", "customer '%s' not found", id);
  }
  idx_figures f;
  idx_person_figures(x, p, util_now_ms(), &f);
  json_t *o = json_pack("{ss}", "id", id);
  if (profile) {
    if (!(flags & TAILOR_PII)) {
      json_object_del(profile, "email");
      json_object_del(profile, "phone");
    }
    json_object_del(profile, "id");
    json_object_update(o, profile);
    json_decref(profile);
  }
  const idx_person *ps = f.seen ? &x->person[p] : NULL;
  json_object_set_new(
      o, "figures",
      json_pack("{si si sf sf sI sI sI sf sf ss sf sf sf so so so}", "orders", (int)f.orders,
                "visits", (int)f.visits, "revenue", f.revenue, "avg_order",
                f.avg_order, "first_seen", (json_int_t)f.first_seen, "last_seen",
                (json_int_t)f.last_seen, "last_order", (json_int_t)f.last_order,
                "days_since_visit", f.days_since_visit, "days_since_order",
                f.days_since_order, "lifecycle", idx_lifecycle_name(f.lifecycle),
                "p_alive", f.p_alive, "expected_orders", f.expected_orders,
                "predicted_value", f.predicted_value,
                "recent", ids_json(x, ps ? &ps->recent : NULL), "cart",
                ids_json(x, ps ? &ps->cart : NULL), "bought",
                ids_json(x, ps ? &ps->bought : NULL)));
  pthread_rwlock_unlock(&t->lock);
  *out = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return *out ? TAILOR_OK : util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
}

int tailor_outbox_list(tailor *t, const char *state, const char *customer,
                       char **json, tailor_error *err) {
  if (!t || !json) return util_fail(err, TAILOR_EINVAL, NULL, "outbox: missing argument");
  json_t *rows = store_outbox_list(eng_read_begin(t), state, customer, 1000);
  eng_read_end(t);
  *json = json_dumps(rows, JSON_COMPACT);
  json_decref(rows);
  return *json ? TAILOR_OK : util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
}

static void collect_member(void *ud, uint32_t person) {
  idx_ids *ids = ud;
  idx_ids_push(ids, person);
}

int tailor_audience_members(tailor *t, int days, int purchased, int with_email,
                            tailor_member_fn fn, void *ud, size_t *count,
                            tailor_error *err) {
  if (!t || !fn || days < 1 || days > 365 || purchased < -1 || purchased > 1)
    return util_fail(err, TAILOR_EINVAL, "days",
                     "audience: days must be 1 to 365 and purchased -1, 0 or 1");
  /* Ids are copied under the read lock; emails come from the store after. */
  idx_ids people = {0};
  json_t *ids = json_array();
  pthread_rwlock_rdlock(&t->lock);
  idx_audience_members(t->ix, (uint32_t)days, purchased, util_now_ms(), collect_member,
                       &people);
  for (uint32_t i = 0; i < people.n; i++) {
    const char *cust = idx_customer_id(t->ix, people.v[i]);
    const char *key = intern_name(&t->ix->people, people.v[i]);
    json_array_append_new(ids, json_pack("[ss?]", cust ? cust : "",
                                         !cust && key ? key + 2 : NULL));
  }
  pthread_rwlock_unlock(&t->lock);
  idx_ids_free(&people);
  size_t i;
  json_t *row;
  json_array_foreach(ids, i, row) {
    const char *cust = json_string_value(json_array_get(row, 0));
    const char *anon = json_string_value(json_array_get(row, 1));
    json_t *profile = NULL;
    if (with_email && *cust) {
      profile = store_customer(eng_read_begin(t), cust);
      eng_read_end(t);
    }
    const char *email = json_string_value(json_object_get(profile, "email"));
    if (!json_is_true(json_object_get(json_object_get(profile, "consent"), "email")))
      email = NULL;
    fn(ud, *cust ? cust : NULL, anon, email);
    json_decref(profile);
  }
  if (count) *count = json_array_size(ids);
  json_decref(ids);
  return TAILOR_OK;
}
