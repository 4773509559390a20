/*
** follow.c: an engine on a shared store (PostgreSQL) follows the log.
** Several nodes append to one log; each applies all of it to its own
** index, in the log's order (store_scan), its own events included: a node
** never applies what it wrote ahead of what others wrote before it in the
** order, so every node that has applied the same log holds the same index.
**
** Two paths apply the log, both under write_mu:
**   - the follower thread, woken by the store's notifications (store_wait)
**     or every ENG_FOLLOW_POLL_MS, applies whatever is there;
**   - a node's own commit (eng_commit_shared) waits until the log has
**     reached its events and applied them, so a decision asked after an
**     event on the same connection sees it, as on SQLite.
** The strategies' on_event runs on the node that wrote the events, once
** they are applied, and schedules its outbox rows in a transaction of its
** own (their idempotency keys make a second scheduling a no-op).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "engine/engine.h"

#define ENG_FOLLOW_POLL_MS 100
#define ENG_OWN_EVENTS_WAIT_MS 30000

/* One of the caller's events: where the log put it. */
typedef struct own_ev {
  int64_t seq;
  const ev *e;
} own_ev;

typedef struct follow_run {
  tailor *t;
  const own_ev *own; /* the caller's events by seq, or NULL */
  size_t n_own, found;
  size_t applied;
  int erased; /* an erasure was applied: the checkpoint is written again */
} follow_run;

static int cmp_own(const void *a, const void *b) {
  int64_t x = ((const own_ev *)a)->seq, y = ((const own_ev *)b)->seq;
  return (x > y) - (x < y);
}

/* The caller's own events are applied as they are, not parsed again from
   the log (store_scan_known). */
static const ev *own_known(void *ud, int64_t seq) {
  follow_run *r = ud;
  own_ev key = {seq, NULL};
  const own_ev *o = r->own ? bsearch(&key, r->own, r->n_own, sizeof *r->own, cmp_own) : NULL;
  return o ? o->e : NULL;
}

/*
** An event's lag: from its receipt (ts; the server's clock for a
** storefront's events) to now, when this node applies it.  Events older
** than ENG_LAG_HISTORY_MS when applied are history sent late (a trusted
** sender's import), not the log's lag, and are not counted.
*/
#define ENG_LAG_HISTORY_MS (10 * 60 * 1000)

static void note_lag(tailor *t, const ev *e) {
  int64_t lag = util_now_ms() - e->ts;
  if (lag > ENG_LAG_HISTORY_MS) return;
  if (lag < 0) lag = 0;
  if (lag > ENG_LAG_MAX_MS) lag = ENG_LAG_MAX_MS;
  atomic_fetch_add_explicit(&t->lag_ms[lag], 1, memory_order_relaxed);
}

static int follow_one(void *ud, int64_t seq, const ev *e) {
  follow_run *r = ud;
  tailor *t = r->t;
  if (!e) { /* one of this node's events, erased by another before we read it,
               or a row today's checks refuse, passed over (eng_unreadable) */
    t->applied_seq = seq;
    if (own_known(r, seq)) r->found++;
    return 0;
  }
  note_lag(t, e);
  pthread_rwlock_wrlock(&t->lock);
  int rc = idx_apply(t->ix, e);
  pthread_rwlock_unlock(&t->lock);
  if (e->type == EV_ERASE) { /* erased by another node */
    eng_exposures_reset(t);
    r->erased = 1;
  }
  if (rc != TAILOR_OK) {
    t->ix_incomplete = 1;
    eng_log(t, TAILOR_LOG_ERROR, "index: out of memory applying event %lld", (long long)seq);
  }
  t->applied_seq = seq;
  atomic_fetch_add(&t->n_followed, 1);
  r->applied++;
  if (own_known(r, seq)) r->found++;
  /* A crossing: the scan stops right after this event for the refit, so
     the models see the log up to here, however the log was batched. */
  return e->type == EV_PURCHASE && eng_refit_due(t) ? ENG_REFIT_DUE : 0;
}

/*
** Apply what the log has past applied_seq, refitting the models at each
** crossing on the way (engine.c, eng_refit_due); the caller holds
** write_mu.
*/
static int follow_step(tailor *t, store *st, follow_run *r, tailor_error *err) {
  atomic_store(&t->follow_scan_ns, util_mono_ns());
  int rc;
  while ((rc = store_scan_known(st, t->applied_seq, follow_one, r, r->own ? own_known : NULL,
                                err)) == ENG_REFIT_DUE)
    eng_refit_at(t, t->applied_seq);
  atomic_store(&t->follow_at_ms, util_now_ms());
  /* This node's checkpoint held the erased person (in plain bytes, until
     its next clean stop): it goes, and one without them is written. */
  if (r->erased && t->ckpt_path) {
    r->erased = 0;
    int gone = eng_drop_checkpoint(t);
    if (gone)
      eng_log(t, TAILOR_LOG_ERROR, "erasure: cannot remove the checkpoint %s (%s)",
              t->ckpt_path, strerror(gone));
    eng_save_checkpoint(t); /* replaces it, when it could not be removed */
  } else {
    eng_checkpoint_due(t);
  }
  return rc;
}

/*
** The event path on a shared store, in the transaction ingest.c's group
** commit has begun (its coupon redemptions already in it), under
** write_mu: the events appended and committed, then the log applied up to
** them, then their triggers.
*/
int eng_commit_shared(tailor *t, ev **all, size_t n, tailor_error *err) {
  int64_t *seqs = malloc((n ? n : 1) * sizeof *seqs);
  own_ev *mine = malloc((n ? n : 1) * sizeof *mine);
  if (!seqs || !mine) {
    free(seqs);
    free(mine);
    store_rollback(t->st);
    return util_fail(err, TAILOR_ENOMEM, NULL, "ingest: out of memory");
  }
  int rc = store_append_commit(t->st, all, n, seqs, err);
  if (rc != TAILOR_OK) {
    free(seqs);
    free(mine);
    return rc;
  }
  /* Acknowledged from here: the events are durable.  Now the log. */
  size_t own = 0;
  for (size_t i = 0; i < n; i++)
    if (!all[i]->dup) mine[own++] = (own_ev){seqs[i], all[i]};
  free(seqs);
  qsort(mine, own, sizeof *mine, cmp_own);
  follow_run r = {t, mine, own, 0, 0, 0};
  int64_t deadline = util_now_ms() + ENG_OWN_EVENTS_WAIT_MS;
  tailor_error ferr = {0};
  while (r.found < own) {
    if (follow_step(t, t->st, &r, &ferr)) break;
    if (r.found >= own || util_now_ms() > deadline) break;
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (r.found < own)
    eng_log(t, TAILOR_LOG_WARN,
            "log: %zu of this node's %zu events not applied yet (%s); they are stored "
            "and the follower applies them",
            own - r.found, own, ferr.code ? ferr.message : "an older transaction is open");
  if (t->cfg.strategies && *t->cfg.strategies) {
    /* The outbox rows and the events' "triggers done", together; a crash
       before this commits leaves the events owing, for triggers_step. */
    int64_t *done = malloc((own ? own : 1) * sizeof *done);
    for (size_t i = 0; done && i < own; i++) done[i] = mine[i].seq;
    tailor_error terr = {0};
    if (!done) {
      util_fail(&terr, TAILOR_ENOMEM, NULL, "out of memory");
    } else if (store_begin(t->st, &terr) == TAILOR_OK) {
      if (eng_run_triggers(t, all, n, &terr) == TAILOR_OK &&
          store_triggers_done(t->st, done, own, &terr) == TAILOR_OK)
        store_commit(t->st, &terr);
      else
        store_rollback(t->st);
    }
    free(done);
    if (terr.code)
      eng_log(t, TAILOR_LOG_ERROR, "triggers: %s; the events are kept, their triggers are "
              "run again later", terr.message);
  }
  free(mine);
  return TAILOR_OK;
}

/*
** Triggers owed by events whose node died (or failed) between their commit
** and their triggers' (store_triggers_overdue): run again by whichever node
** looks first, each in a savepoint of its own; a trigger that fails again
** is logged and given up, so one bad event does not come back forever.
** The caller holds write_mu.
*/
#define ENG_TRIGGERS_CHECK_MS 5000
#define ENG_TRIGGERS_OVERDUE_S 30
#define ENG_TRIGGERS_BATCH 200
#define ENG_TRIGGERS_FLUSH_MS 1000

/* Every event handed on is marked done, not only the first
   ENG_TRIGGERS_BATCH: the pass takes whole batches until they hold that
   many events or more, so the last may go past it, and a batch none of
   whose events was marked stayed owed and ran its triggers again. */
typedef struct owed_run {
  tailor *t;
  int64_t *seqs;
  size_t n, cap, failed;
  int oom;
  const int64_t *locked; /* the events whose people the pass locked */
  size_t nlocked;
} owed_run;

static int run_owed(void *ud, int64_t seq, const ev *e) {
  owed_run *o = ud;
  tailor *t = o->t;
  /* A batch that came due after the people were locked is left, unmarked,
     to the next pass: run unlocked, it could race another node. */
  size_t k = 0;
  while (k < o->nlocked && o->locked[k] != seq) k++;
  if (k == o->nlocked) return 0;
  tailor_error terr = {0};
  ev *one = (ev *)e;
  if (store_exec(t->st, "SAVEPOINT owed", &terr)) return TAILOR_ESTORE;
  if (eng_run_triggers(t, &one, 1, &terr) != TAILOR_OK) {
    o->failed++;
    eng_log(t, TAILOR_LOG_ERROR, "triggers of event %lld failed again (%s); given up",
            (long long)seq, terr.message);
    tailor_error rerr = {0};
    if (store_exec(t->st, "ROLLBACK TO owed", &rerr)) return TAILOR_ESTORE;
  }
  if (o->n == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : ENG_TRIGGERS_BATCH;
    int64_t *more = realloc(o->seqs, cap * sizeof *more);
    if (!more) {
      o->oom = 1; /* the pass is rolled back and tried again later */
      return TAILOR_ENOMEM;
    }
    o->seqs = more;
    o->cap = cap;
  }
  o->seqs[o->n++] = seq;
  return store_exec(t->st, "RELEASE owed", &terr) ? TAILOR_ESTORE : 0;
}

/* The people of the owed events, copied (a pass's events do not outlive
   its callback), for one lock of them all before the events run. */
typedef struct owed_people {
  char **customer, **anon;
  size_t n, cap;
  int64_t *seq; /* every event of the pass, with or without a person */
  size_t nseq, capseq;
  int oom;
} owed_people;

static int collect_people(void *ud, int64_t seq, const ev *e) {
  owed_people *o = ud;
  if (o->nseq == o->capseq) {
    size_t cap = o->capseq ? o->capseq * 2 : ENG_TRIGGERS_BATCH;
    int64_t *more = realloc(o->seq, cap * sizeof *more);
    if (!more) return o->oom = 1, TAILOR_ENOMEM;
    o->seq = more;
    o->capseq = cap;
  }
  o->seq[o->nseq++] = seq;
  if (!e || (!e->customer && !e->anon)) return 0;
  if (o->n == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : ENG_TRIGGERS_BATCH;
    char **c = realloc(o->customer, cap * sizeof *c);
    if (c) o->customer = c;
    char **a = c ? realloc(o->anon, cap * sizeof *a) : NULL;
    if (a) o->anon = a;
    if (!a) return o->oom = 1, TAILOR_ENOMEM;
    o->cap = cap;
  }
  o->customer[o->n] = e->customer ? strdup(e->customer) : NULL;
  o->anon[o->n] = e->anon ? strdup(e->anon) : NULL;
  if ((e->customer && !o->customer[o->n]) || (e->anon && !o->anon[o->n])) {
    free(o->customer[o->n]);
    free(o->anon[o->n]);
    return o->oom = 1, TAILOR_ENOMEM;
  }
  o->n++;
  return 0;
}

/*
** Several nodes: the owed events' people are locked first, all at once in
** the locks' order (store_lock_people), as a batch's triggers lock theirs;
** locked one event after the other, in the log's order, a pass and another
** node's batch could each hold a person the other waits for, and the
** database would end one of them (a deadlock).
*/
static int lock_owed_people(tailor *t, owed_people *o, tailor_error *err) {
  int rc = store_triggers_overdue(t->st, ENG_TRIGGERS_OVERDUE_S, ENG_TRIGGERS_BATCH,
                                  collect_people, o, err);
  if (rc && o->oom) rc = util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
  if (!rc && o->n)
    rc = store_lock_people(t->st, (const char *const *)o->customer,
                           (const char *const *)o->anon, o->n, err) < 0 ? TAILOR_ESTORE : 0;
  return rc;
}

static void owed_people_free(owed_people *o) {
  for (size_t i = 0; i < o->n; i++) {
    free(o->customer[i]);
    free(o->anon[i]);
  }
  free(o->customer);
  free(o->anon);
  free(o->seq);
}

static void triggers_step(tailor *t) {
  int64_t now = util_now_ms();
  if (!atomic_load(&t->triggers_ready) || now - t->triggers_checked_ms < ENG_TRIGGERS_CHECK_MS)
    return;
  t->triggers_checked_ms = now;
  owed_run *o = calloc(1, sizeof *o);
  if (!o) return;
  o->t = t;
  tailor_error err = {0};
  eng_writing = t;
  owed_people people = {0};
  int rc = store_begin(t->st, &err);
  if (!rc) rc = lock_owed_people(t, &people, &err);
  /* The events run without a lock of their own (eng_run_triggers reads
     people_locked), and only those whose people are locked (run_owed). */
  o->locked = people.seq;
  o->nlocked = people.nseq;
  t->people_locked = 1;
  if (!rc) rc = store_triggers_overdue(t->st, ENG_TRIGGERS_OVERDUE_S, ENG_TRIGGERS_BATCH,
                                       run_owed, o, &err);
  t->people_locked = 0;
  owed_people_free(&people);
  if (rc && o->oom) util_fail(&err, TAILOR_ENOMEM, NULL, "out of memory");
  if (!rc) rc = store_triggers_done(t->st, o->seqs, o->n, &err);
  if (!rc) rc = store_commit(t->st, &err);
  else store_rollback(t->st);
  eng_writing = NULL;
  if (rc)
    eng_log(t, TAILOR_LOG_ERROR, "triggers owed by earlier events: %s; tried again later",
            err.message);
  else if (o->n)
    eng_log(t, TAILOR_LOG_WARN, "triggers run again for %zu events a node committed without "
            "them (%zu failed)", o->n, o->failed);
  free(o->seqs);
  free(o);
}

/*
** The follower reads the store at least every ENG_FOLLOW_POLL_MS, so it is
** the one that says whether the store is reachable (stats' log.reachable,
** /metrics' tailor_store_up): lost on its first failure, back on its
** first read that works.
*/
static void store_lost(tailor *t, const char *why) {
  if (!eng_store_down_ms(t))
    eng_log(t, TAILOR_LOG_ERROR, "log: the store is unreachable: %s; writes are refused until "
            "it is back, retrying", why);
  pthread_mutex_lock(&t->read_mu);
  snprintf(t->store_error, sizeof t->store_error, "%s", why);
  pthread_mutex_unlock(&t->read_mu);
  int64_t up = 0;
  atomic_compare_exchange_strong(&t->store_down_ms, &up, util_now_ms());
}

static void store_back(tailor *t) {
  int64_t down = eng_store_down_ms(t);
  if (!down) return;
  atomic_store(&t->store_down_ms, 0);
  eng_log(t, TAILOR_LOG_WARN, "log: the store is back after %lld ms; following again at %lld",
          (long long)down, (long long)t->applied_seq);
}

int64_t eng_store_down_ms(tailor *t) {
  int64_t since = atomic_load(&t->store_down_ms);
  return since ? util_now_ms() - since + 1 : 0;
}

static void *follow_main(void *arg) {
  tailor *t = arg;
  while (!atomic_load(&t->follow_stop)) {
    tailor_error e = {0};
    int w = store_wait(t->st_follow, ENG_FOLLOW_POLL_MS, &e);
    if (w < 0) {
      store_lost(t, e.message);
      struct timespec ts = {0, ENG_FOLLOW_POLL_MS * 1000 * 1000};
      nanosleep(&ts, NULL);
      continue;
    }
    /* Woken by another node's commit (the node's own do not wake it,
       store_wait): when the writer's follow has begun a scan since, that
       scan read everything the commit made readable, and this one would
       find nothing; skipped, so that it does not hold write_mu for a
       round trip between the writer's groups. */
    uint64_t woke = util_mono_ns();
    pthread_mutex_lock(&t->write_mu);
    follow_run r = {t, NULL, 0, 0, 0, 0};
    int rc = w > 0 && atomic_load(&t->follow_scan_ns) > woke
                 ? TAILOR_OK
                 : follow_step(t, t->st_follow, &r, &e);
    triggers_step(t);
    /* Done marks of triggers that scheduled nothing wait for the next
       commit; on a quiet node, not longer than this. */
    tailor_error fe = {0};
    if (store_triggers_flush(t->st, ENG_TRIGGERS_FLUSH_MS, &fe))
      eng_log(t, TAILOR_LOG_WARN, "triggers: %s; tried again later", fe.message);
    pthread_mutex_unlock(&t->write_mu);
    if (rc) store_lost(t, e.message);
    else store_back(t);
  }
  return NULL;
}

int eng_follow_start(tailor *t, tailor_error *err) {
  if (!store_shared(t->st)) return TAILOR_OK;
  if (!(t->st_follow = store_open_reader(t->st)))
    return util_fail(err, TAILOR_ESTORE, "db", "log: cannot open the follower's connection");
  store_on_unreadable(t->st_follow, eng_unreadable, t); /* as the writer's store */
  if (pthread_create(&t->follow_thread, NULL, follow_main, t)) {
    store_close(t->st_follow);
    t->st_follow = NULL;
    return util_fail(err, TAILOR_ENOMEM, NULL, "log: cannot start the follower");
  }
  t->following = 1;
  eng_log(t, TAILOR_LOG_INFO, "log: following the shared log from position %lld (%lld events behind)",
          (long long)t->applied_seq, (long long)store_log_behind(t->st, t->applied_seq));
  return TAILOR_OK;
}

void eng_follow_stop(tailor *t) {
  if (t->following) {
    atomic_store(&t->follow_stop, 1);
    pthread_join(t->follow_thread, NULL);
    t->following = 0;
  }
  store_close(t->st_follow);
  t->st_follow = NULL;
}

json_t *eng_log_json(tailor *t) {
  if (!store_shared(t->st)) return json_pack("{ss}", "store", store_kind(t->st));
  int64_t at = atomic_load(&t->follow_at_ms);
  pthread_mutex_lock(&t->read_mu);
  int64_t behind = t->st_read ? store_log_behind(t->st_read, t->applied_seq) : -1;
  pthread_mutex_unlock(&t->read_mu);
  /* The lag's percentiles, from the histogram: the bucket where the
     count passes the share (ENG_LAG_MAX_MS: that much or more). */
  uint64_t total = 0, seen = 0;
  for (int i = 0; i <= ENG_LAG_MAX_MS; i++)
    total += atomic_load_explicit(&t->lag_ms[i], memory_order_relaxed);
  json_t *lag = json_pack("{sI}", "count", (json_int_t)total);
  static const struct { const char *name; double q; } qs[] = {{"p50", .5}, {"p90", .9}, {"p99", .99}};
  for (size_t k = 0, i = 0; total && k < sizeof qs / sizeof *qs; k++) {
    while (i <= ENG_LAG_MAX_MS && (double)seen < qs[k].q * (double)total)
      seen += atomic_load_explicit(&t->lag_ms[i++], memory_order_relaxed);
    json_object_set_new(lag, qs[k].name, json_integer(i ? (json_int_t)i - 1 : 0));
  }
  json_t *out = json_pack("{ss sI sI sI sI so}", "store", store_kind(t->st), "position",
                           (json_int_t)t->applied_seq, "behind", (json_int_t)behind,
                           "read_age_ms", (json_int_t)(at ? util_now_ms() - at : -1),
                           "applied_from_log", (json_int_t)atomic_load(&t->n_followed),
                           "lag_ms", lag);
  /* What this node's open replayed (its checkpoint's tail, or all). */
  json_object_set_new(out, "replayed",
                      json_pack("{sI sf sI sf}", "events", (json_int_t)t->n_replayed, "seconds",
                                t->replay_ms / 1e3, "refits", (json_int_t)t->n_replay_refits,
                                "refit_seconds", t->replay_refit_ms / 1e3));
  int64_t down = eng_store_down_ms(t);
  json_object_set_new(out, "reachable", json_boolean(!down));
  if (down) {
    json_object_set_new(out, "unreachable_ms", json_integer(down));
    pthread_mutex_lock(&t->read_mu);
    json_object_set_new(out, "error", json_string(t->store_error));
    pthread_mutex_unlock(&t->read_mu);
  }
  return out;
}
