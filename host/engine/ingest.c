/*
** ingest.c: the one way events come in.  Whatever brought them (the
** server's writer, tailor_ingest, an NDJSON batch), typed events meet in a
** group commit: one transaction with their state changes and the outbox
** rows their triggers schedule, one fsync, then the plugins.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "core/util.h"
#include "engine/engine.h"
#include "engine/plugin.h"
#include "index/intern.h"

_Thread_local tailor *eng_writing;
_Thread_local tailor *eng_serial;

/*
** Events are appended to the store before they touch the index, and both
** happen under write_mu, so the index sees events in the store's order.
*/
static ev_limits limits_of(tailor *t) {
  ev_limits lim = {(size_t)t->cfg.max_event_bytes, 0, util_now_ms(), 0, t->cfg.max_future_ms, 0};
  return lim;
}

/* One caller's events waiting for the group commit. */
struct commit_req {
  ev **evs;
  size_t n;
  const char *consent; /* a double opt-in these events confirm, or NULL */
  int rc;
  int done;
  tailor_error err;
  commit_req *next;
};

/* An index built again beside the one decisions read (reload_index). */
typedef struct rebuild {
  idx *x;
  int64_t seq; /* the last event applied to it */
} rebuild;

static int rebuild_apply(void *ud, int64_t seq, const ev *e) {
  rebuild *r = ud;
  r->seq = seq;
  return !e || idx_apply(r->x, e) == TAILOR_OK ? 0 : TAILOR_ENOMEM;
}

/*
** The index was changed by events whose transaction did not commit (a full
** disk, an I/O error): it no longer matches the store, so it is built
** again from the checkpoint and the log.  It is built beside the old one,
** which decisions go on reading meanwhile (events that did not commit
** included, for the second or so a large shop's build takes), and swapped
** in when done: a full disk refuses events, it does not hold up the shop's
** recommendations.  The caller holds write_mu, so no event comes in, and
** the store is the writer's alone, meanwhile.
*/
static void reload_index(tailor *t, int say) {
  idx_config ic = t->ix->cfg;
  tailor_error e = {0};
  rebuild r = {NULL, 0};
  uint64_t fp;
  if (t->ckpt_path && access(t->ckpt_path, F_OK) == 0 &&
      idx_checkpoint_seq(t->ckpt_path, &r.seq) == TAILOR_OK &&
      eng_checkpoint_fp(t, r.seq, &fp, &e) == TAILOR_OK)
    r.x = idx_load(t->ckpt_path, &ic, fp, &r.seq, &e);
  if (!r.x) {
    r.x = idx_new(&ic);
    r.seq = 0;
  }
  if (!r.x) {
    t->ix_incomplete = 1;
    return;
  }
  int incomplete = store_scan(t->st, r.seq, rebuild_apply, &r, &e) != TAILOR_OK;
  pthread_rwlock_wrlock(&t->lock);
  idx *old = t->ix;
  t->ix = r.x;
  atomic_fetch_add(&t->ix_gen, 1);
  atomic_fetch_add(&t->ix_swaps, 1);
  t->applied_seq = r.seq;
  if (incomplete) t->ix_incomplete = 1;
  pthread_rwlock_unlock(&t->lock);
  idx_free(old);
  if (say) eng_log(t, TAILOR_LOG_WARN, "index rebuilt from the store after a failed commit");
}

/*
** Write one group: the events, their state changes and the outbox rows
** their triggers schedule, in one transaction.  Between the append and the
** commit the index applies the events (the triggers' ctx sees them) and
** on_event runs; so a crash at any point leaves either all of it or none,
** and nothing was acknowledged that is not durable with its emails.
*/
/*
** A caller whose events redeem a coupon that cannot be redeemed (unknown,
** redeemed before, expired) is refused whole, with its own error, and the
** rest of the group goes on: each caller's redemptions are a savepoint.
** Returns a store error, which fails the group.
*/
static int redeem_coupons(tailor *t, commit_req *group, tailor_error *err) {
  for (commit_req *r = group; r; r = r->next) {
    size_t i = 0;
    while (i < r->n && r->evs[i]->type != EV_COUPON_REDEEMED) i++;
    if (i == r->n) continue;
    if (store_exec(t->st, "SAVEPOINT redeem", err)) return TAILOR_ESTORE;
    int rc = eng_coupons_redeem(t, r->evs, r->n, &r->err);
    if (rc == TAILOR_ESTORE) {
      *err = r->err;
      return rc;
    }
    if (rc) {
      r->rc = rc;
      if (store_exec(t->st, "ROLLBACK TO redeem", err)) return TAILOR_ESTORE;
    }
    if (store_exec(t->st, "RELEASE redeem", err)) return TAILOR_ESTORE;
  }
  return TAILOR_OK;
}

/*
** The events of a confirmed double opt-in (engine/optin.c) are stored only
** if their request is still pending, in the transaction that marks it
** confirmed: a link clicked twice at once works once, and the other caller
** is refused alone, like a coupon redeemed twice.
*/
static int confirm_consents(tailor *t, commit_req *group, tailor_error *err) {
  for (commit_req *r = group; r; r = r->next) {
    if (!r->consent || r->rc) continue;
    if (store_exec(t->st, "SAVEPOINT optin", err)) return TAILOR_ESTORE;
    int rc = store_consent_confirm(t->st, r->consent, util_now_ms(), &r->err);
    if (rc == TAILOR_ESTORE) {
      *err = r->err;
      return rc;
    }
    if (rc) {
      r->rc = rc;
      if (store_exec(t->st, "ROLLBACK TO optin", err)) return TAILOR_ESTORE;
    }
    if (store_exec(t->st, "RELEASE optin", err)) return TAILOR_ESTORE;
  }
  return TAILOR_OK;
}

/* Apply events to the index, as one batch. */
static void apply_run(tailor *t, const ev **evs, size_t n, int *rcs) {
  pthread_rwlock_wrlock(&t->lock);
  if (idx_apply_batch(t->ix, evs, n, rcs) != TAILOR_OK) {
    t->ix_incomplete = 1;
    for (size_t i = 0; i < n; i++)
      if (rcs[i] != TAILOR_OK)
        eng_log(t, TAILOR_LOG_ERROR,
                "index: out of memory applying a %s event; it is stored and "
                "will be applied on the next start",
                ev_type_name(evs[i]->type));
  }
  pthread_rwlock_unlock(&t->lock);
}

/* The item a catalog event changes, or NULL. */
static const char *catalog_item(const ev *e) {
  if (e->type == EV_ITEM_UPSERT) return json_string_value(json_object_get(e->object, "id"));
  if (e->type == EV_ITEM_DELETE && e->n_lines) return e->lines[0].item;
  return NULL;
}

/* For each event, whether it is a catalog event whose item a later one of
   the batch changes again (NULL: none is, or out of memory, when the batch
   is applied whole as before). */
static unsigned char *catalog_cuts(ev *const *evs, size_t n) {
  size_t catalog = 0;
  for (size_t i = 0; i < n && catalog < 2; i++) catalog += catalog_item(evs[i]) != NULL;
  if (catalog < 2) return NULL;
  unsigned char *cut = calloc(n, 1);
  intern later;
  intern_init(&later);
  int any = 0;
  for (size_t i = n; cut && i-- > 0;) {
    const char *id = catalog_item(evs[i]);
    if (!id || evs[i]->dup) continue;
    if (intern_get(&later, id) != INTERN_NONE) cut[i] = any = 1;
    else if (intern_put(&later, id) == INTERN_NONE) break;
  }
  intern_free(&later);
  if (!any) {
    free(cut);
    return NULL;
  }
  return cut;
}

static int commit_group(tailor *t, commit_req *group, tailor_error *err) {
  size_t n = 0;
  for (commit_req *r = group; r; r = r->next) n += r->n;
  ev **all = malloc((n ? n : 1) * sizeof *all);
  if (!all) return util_fail(err, TAILOR_ENOMEM, NULL, "ingest: out of memory");
  pthread_mutex_lock(&t->write_mu);
  eng_writing = t;
  if (store_shared(t->st)) {
    /* A shared log (follow.c): the group in one transaction there, its
       coupons redeemed and double opt-ins confirmed in it as here. */
    int rc = store_begin(t->st, err);
    if (rc == TAILOR_OK && ((rc = redeem_coupons(t, group, err)) != TAILOR_OK ||
                            (rc = confirm_consents(t, group, err)) != TAILOR_OK))
      store_rollback(t->st);
    n = 0;
    for (commit_req *r = group; r; r = r->next)
      for (size_t i = 0; !r->rc && i < r->n; i++) all[n++] = r->evs[i];
    if (rc == TAILOR_OK && (rc = eng_commit_shared(t, all, n, err)) == TAILOR_OK) {
      atomic_fetch_add(&t->n_accepted, n);
      eng_flush_exposures(t);
    }
    eng_writing = NULL;
    pthread_mutex_unlock(&t->write_mu);
    free(all);
    return rc;
  }
  /* A store that just failed a commit (a full disk) is given a second
     before it is tried again: each failure after the index applied the
     group costs a rebuild of the index, and a shop sending events as
     fast as they are refused would have the writer do nothing else. */
  if (eng_commit_backoff(t)) {
    uint64_t now = util_mono_ns();
    eng_writing = NULL;
    pthread_mutex_unlock(&t->write_mu);
    free(all);
    return util_fail(err, TAILOR_ESTORE, NULL,
                     "ingest: the store failed a commit %llu ms ago (%s); events are refused "
                     "for %d ms after that, then the store is tried again",
                     (unsigned long long)((now - t->commit_failed_ns) / 1000000), t->commit_error,
                     ENG_COMMIT_BACKOFF_MS);
  }
  int64_t *seqs = malloc((n ? n : 1) * sizeof *seqs), last = 0;
  const ev **fresh = malloc((n ? n : 1) * sizeof *fresh);
  int *rcs = malloc((n ? n : 1) * sizeof *rcs);
  int began = seqs && fresh && rcs;
  int applied = 0, rc = began ? store_begin(t->st, err)
                             : util_fail(err, TAILOR_ENOMEM, NULL, "ingest: out of memory");
  if (rc == TAILOR_OK) rc = redeem_coupons(t, group, err);
  if (rc == TAILOR_OK) rc = confirm_consents(t, group, err);
  n = 0; /* the events of the callers not refused */
  for (commit_req *r = group; r; r = r->next)
    for (size_t i = 0; !r->rc && i < r->n; i++) all[n++] = r->evs[i];
  if (rc == TAILOR_OK) rc = store_append_rows(t->st, all, n, seqs, err);
  if (rc == TAILOR_OK) {
    applied = 1;
    /* The events not already stored (retries), applied as one batch, then
       their triggers; but a catalog event whose item the batch changes
       again ends a run: its triggers see the item as that event left it
       (what the price was before it, whether it was in stock), not as
       the batch's last change of it left it. */
    unsigned char *cut = catalog_cuts(all, n);
    size_t k = 0, from = 0, done = 0;
    for (size_t i = 0; i < n && rc == TAILOR_OK; i++) {
      if (!all[i]->dup) {
        last = seqs[i];
        fresh[k++] = all[i];
      }
      if (i + 1 < n && !(cut && cut[i])) continue;
      apply_run(t, fresh + from, k - from, rcs + from);
      rc = eng_run_triggers(t, all + done, i + 1 - done, err);
      from = k;
      done = i + 1;
    }
    free(cut);
  }
  if (rc == TAILOR_OK) rc = store_commit(t->st, err);
  else if (began) store_rollback(t->st);
  /* A failing store is said once, when it starts, and once when it takes
     events again: not at each try in between (a full disk may last). */
  int first = !t->commit_failing;
  if (rc == TAILOR_ESTORE) {
    if (first)
      eng_log(t, TAILOR_LOG_ERROR, "ingest: %s; events are refused for %d ms at a time, the "
              "store tried again after each, until it takes them (said when it does)",
              err->message, ENG_COMMIT_BACKOFF_MS);
    snprintf(t->commit_error, sizeof t->commit_error, "%s", err->message);
    t->commit_failing = 1;
    /* Stamped before the rebuild too: a decision that would write (a
       popup's contact, a coupon) fails at once instead of waiting for
       write_mu. */
    t->commit_failed_ns = util_mono_ns();
  }
  if (rc != TAILOR_OK && applied) reload_index(t, first);
  if (rc == TAILOR_ESTORE) t->commit_failed_ns = util_mono_ns(); /* from the rebuild's end */
  if (rc == TAILOR_OK) {
    if (t->commit_failing)
      eng_log(t, TAILOR_LOG_WARN, "ingest: the store takes events again");
    t->commit_failing = 0;
    t->commit_failed_ns = 0;
    if (last) t->applied_seq = last;
    atomic_fetch_add(&t->n_accepted, n);
    eng_checkpoint_due(t);
    eng_flush_exposures(t);
    if (t->cfg.value_refit_orders > 0 &&
        t->ix->orders_seen - atomic_load(&t->value_orders) >=
            (uint64_t)t->cfg.value_refit_orders) {
      if (t->cfg.refit_background && !store_shared(t->st))
        eng_refit_ask(t);
      else
        eng_refit_value(t);
    }
  }
  eng_writing = NULL;
  pthread_mutex_unlock(&t->write_mu);
  free(seqs);
  free(fresh);
  free(rcs);
  free(all);
  return rc;
}

int eng_commit_backoff(tailor *t) {
  uint64_t at = t->commit_failed_ns;
  return at && util_mono_ns() - at < ENG_COMMIT_BACKOFF_MS * 1000000ull;
}

/*
** Group commit: callers queue their events; whoever finds no commit running
** becomes the leader and writes everything queued so far in one
** transaction (one fsync), while the others wait for the outcome.  Under
** concurrent ingestion this turns N fsyncs into one, and every caller still
** returns only once its events are durable.
*/
static int commit_events(tailor *t, ev **evs, size_t n, const char *consent,
                         tailor_error *err) {
  commit_req me = {evs, n, consent, 0, 0, {0}, NULL};
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
      if (!r->rc || rc) { /* a caller refused alone keeps its own error */
        r->rc = rc;
        r->err = gerr;
      }
      r->done = 1;
    }
    t->committing = 0;
    pthread_cond_broadcast(&t->commit_cv);
  }
  pthread_mutex_unlock(&t->commit_mu);
  if (me.rc && err) *err = me.err;
  return me.rc;
}

/*
** Whether an event is of a visitor who declined analytics (a consent event
** with analytics false): it is acknowledged and neither stored nor
** applied.  Consent, identity, catalog and profile writes are kept, and so
** is a coupon redemption: it is the checkout's record that a single-use
** code was spent, not tracking, and dropping it would let the code be
** spent again.
**
** Quiz answers are kept too (decision for issue 20, zero-party data): an
** answer is what the visitor chose to tell the shop, on purpose, to get
** better suggestions; it is not a record of their behaviour, which is what
** declining analytics refuses.  Its use stays under the personalization
** purpose (a visitor who declined that is answered as anyone whatever their
** prefs), and erasure removes it with the rest of the person.
** Taking a preference back (pref_removed) is kept for the same reason.
*/
static int declined_analytics(const idx *x, const ev *e) {
  if (e->type == EV_CONSENT || e->type == EV_IDENTIFY || e->type == EV_ITEM_UPSERT ||
      e->type == EV_ITEM_DELETE || e->type == EV_CUSTOMER_UPSERT ||
      e->type == EV_COUPON_REDEEMED || e->type == EV_QUIZ_ANSWER || e->type == EV_PREF_REMOVED)
    return 0;
  uint32_t p = idx_person_of(x, e->customer, e->anon);
  return p != INTERN_NONE && (x->person[p].flags & IDX_NO_ANALYTICS);
}

/*
** A quiz answer is checked against the quiz the strategy offers (its
** `quiz` handler, asked with ctx.context.quiz): the question and the answer
** must be among those it returns, and the attributes the answer sets are
** written into the event (props.sets, whatever the sender put there), so
** a replay needs no strategy.  An answer not offered refuses the request,
** with the field named.
*/
typedef struct quiz_check {
  tailor *t;
  ev *e;
  json_t *context, *sets;
  tailor_error *err;
  int rc;
} quiz_check;

/* Ids are strings or integers, and 1 is "1": the page sends back the ids
   the quiz decision gave it, as JSON turned them. */
static int lua_str_eq(lua_State *L, int at, const char *k, const char *want) {
  lua_getfield(L, at, k);
  int eq = (lua_type(L, -1) == LUA_TSTRING || lua_isinteger(L, -1)) &&
           !strcmp(lua_tostring(L, -1), want);
  lua_pop(L, 1);
  return eq;
}

/* A quiz answer's id field as text, into buf: a string or an integer;
   else an error naming the field. */
static int quiz_id(json_t *props, const char *field, char *buf, size_t size,
                   tailor_error *err) {
  json_t *v = json_object_get(props, field);
  if (json_is_string(v)) {
    snprintf(buf, size, "%s", json_string_value(v));
    return TAILOR_OK;
  }
  if (json_is_integer(v)) {
    snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    return TAILOR_OK;
  }
  if (!v || json_is_null(v))
    return util_fail(err, TAILOR_EINVAL, field, "quiz_answer: missing field '%s' (in props)",
                     field);
  return util_fail(err, TAILOR_EINVAL, field,
                   "quiz_answer: field '%s' must be a string or an integer (an id the quiz "
                   "decision gave), found %s", field,
                   json_is_array(v) ? "an array" : json_is_object(v) ? "an object"
                   : json_is_boolean(v) ? "a boolean" : "a number with a fraction");
}

/* The entry of list at `at` whose id is `id`, pushed; 0 and nothing pushed. */
static int find_by_id(lua_State *L, int at, const char *id) {
  for (lua_Integer i = 1;; i++) {
    if (lua_geti(L, at, i) != LUA_TTABLE) {
      lua_pop(L, 1);
      return 0;
    }
    if (lua_str_eq(L, lua_gettop(L), "id", id)) return 1;
    lua_pop(L, 1);
  }
}

static int check_quiz(lua_State *L) {
  quiz_check *q = lvm_ud(L);
  json_t *p = q->e->props;
  char quiz[256], question[256], answer[256];
  if ((q->rc = quiz_id(p, "quiz", quiz, sizeof quiz, q->err)) ||
      (q->rc = quiz_id(p, "question", question, sizeof question, q->err)) ||
      (q->rc = quiz_id(p, "answer", answer, sizeof answer, q->err)))
    return 0;
  /* Stored as text, as the index reads them (the source "quiz:<id>"). */
  json_object_set_new(p, "quiz", json_string(quiz));
  json_object_set_new(p, "question", json_string(question));
  json_object_set_new(p, "answer", json_string(answer));
  if (!lvm_push_handler(lvm_of(L), "quiz", NULL)) {
    q->rc = util_fail(q->err, TAILOR_EINVAL, "quiz",
                      "quiz_answer: no strategy defines a 'quiz' handler");
    return 0;
  }
  lapi_ctx c = {"quiz", 0, q->e->customer, q->e->anon, q->e->session,
                NULL, q->context, NULL, NULL, 0};
  lapi_push_ctx(L, q->t, &c);
  lua_call(L, 1, 1);
  int res = lua_gettop(L);
  if (!lua_istable(L, res)) {
    q->rc = util_fail(q->err, TAILOR_EINVAL, "quiz", "quiz_answer: quiz '%.64s' is not offered",
                      quiz);
    return 0;
  }
  if (lua_getfield(L, res, "questions") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_pushvalue(L, res); /* the handler returned the list itself */
  }
  int qs = lua_gettop(L);
  if (!find_by_id(L, qs, question)) {
    q->rc = util_fail(q->err, TAILOR_EINVAL, "question",
                      "quiz_answer: quiz '%.64s' has no question '%.64s'", quiz, question);
    return 0;
  }
  int qn = lua_gettop(L);
  if (lua_getfield(L, qn, "answers") != LUA_TTABLE || !find_by_id(L, lua_gettop(L), answer)) {
    q->rc = util_fail(q->err, TAILOR_EINVAL, "answer",
                      "quiz_answer: question '%.64s' of quiz '%.64s' offers no answer '%.64s'",
                      question, quiz, answer);
    return 0;
  }
  /* What the answer sets: names and values the index keeps (strings, or
     numbers kept as strings, of at most IDX_MAX_PREF_BYTES).  Anything
     else is the strategy's mistake, said here, rather than an answer
     acknowledged and then kept without its preference. */
  if (lua_getfield(L, -1, "sets") == LUA_TTABLE) {
    int st = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, st)) {
      int kt = lua_type(L, -2), vt = lua_type(L, -1);
      const char *key = kt == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      const char *val = vt == LUA_TSTRING || vt == LUA_TNUMBER ? luaL_tolstring(L, -1, NULL) : NULL;
      if (!key || !val || strlen(key) > IDX_MAX_PREF_BYTES || strlen(val) > IDX_MAX_PREF_BYTES) {
        q->rc = util_fail(q->err, TAILOR_ESTRATEGY, "answer",
                          "quiz_answer: answer '%.64s' of question '%.64s' (quiz '%.64s') sets "
                          "%s%.40s%s: the quiz handler's sets must be names and values, strings "
                          "or numbers, of at most %d bytes", answer, question, quiz,
                          key ? "'" : "a key of type ", key ? key : lua_typename(L, kt),
                          key ? "'" : "", IDX_MAX_PREF_BYTES);
        return 0;
      }
      json_object_set_new(q->sets, key, json_string(val));
      lua_settop(L, st + 1);
    }
  }
  return 0;
}

static int check_quiz_answers(tailor *t, ev *const *evs, size_t n, tailor_error *err) {
  lvm *vm = NULL;
  for (size_t i = 0; i < n; i++) {
    ev *e = evs[i];
    if (e->type != EV_QUIZ_ANSWER) continue;
    tailor_error lerr = {0};
    if (!vm && !(vm = eng_thread_vm(t, &lerr)))
      return util_fail(err, TAILOR_ESTRATEGY, "quiz", "quiz_answer: no strategies: %s",
                       lerr.message);
    if (!e->props && !(e->props = json_object()))
      return util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
    quiz_check q = {t, e, json_object(), json_object(), err, 0};
    json_object_set(q.context, "quiz", json_object_get(e->props, "quiz"));
    pthread_rwlock_rdlock(&t->lock);
    int rc = lvm_pcall(vm, check_quiz, &q, &lerr);
    pthread_rwlock_unlock(&t->lock);
    json_decref(q.context);
    if (!rc && !q.rc) {
      json_object_set_new(e->props, "sets", q.sets);
      free(e->body); /* written again with the checked sets */
      e->body = NULL;
      json_decref(e->doc);
      e->doc = NULL;
      continue;
    }
    json_decref(q.sets);
    if (!q.rc)
      return util_fail(err, TAILOR_ESTRATEGY, "quiz", "quiz_answer: the quiz handler failed: %s",
                       lerr.message);
    return q.rc;
  }
  return TAILOR_OK;
}

/* A pref_removed event names the preference it takes back: props.key, the
   attribute a quiz answer set (at most 127 bytes, as apply_quiz keeps). */
static int check_pref_removals(ev *const *evs, size_t n, tailor_error *err) {
  for (size_t i = 0; i < n; i++) {
    if (evs[i]->type != EV_PREF_REMOVED) continue;
    json_t *key = json_object_get(evs[i]->props, "key");
    if (!key)
      return util_fail(err, TAILOR_EFIELD, "key",
                       "pref_removed: missing field 'key' (the preference to remove)");
    if (!json_is_string(key) || !json_string_length(key) ||
        json_string_length(key) > IDX_MAX_PREF_BYTES)
      return util_fail(err, TAILOR_EFIELD, "key",
                       "pref_removed: field 'key' must be a string of 1 to %d bytes",
                       IDX_MAX_PREF_BYTES);
  }
  return TAILOR_OK;
}

static int ingest(tailor *t, ev *const *evs, size_t n, const char *consent,
                  tailor_error *err);

int eng_ingest(tailor *t, ev *const *evs, size_t n, tailor_error *err) {
  return ingest(t, evs, n, NULL, err);
}

int eng_ingest_confirmed(tailor *t, ev *const *evs, size_t n, const char *consent,
                         tailor_error *err) {
  return ingest(t, evs, n, consent, err);
}

static int ingest(tailor *t, ev *const *evs, size_t n, const char *consent,
                  tailor_error *err) {
  if (!n) return TAILOR_OK;
  int qrc = check_pref_removals(evs, n, err);
  if (!qrc) qrc = check_quiz_answers(t, evs, n, err);
  if (qrc) return qrc;
  /* One pass: the events before the first declined one are copied when
     it is found, the others kept in order after it. */
  ev **kept = NULL;
  size_t m = 0, at = 0;
  int oom = 0;
  pthread_rwlock_rdlock(&t->lock);
  for (size_t i = 0; i < n && !oom; i++) {
    if (!declined_analytics(t->ix, evs[i])) {
      if (kept) kept[at++] = evs[i];
      continue;
    }
    if (!kept && !(kept = malloc(n * sizeof *kept))) {
      oom = 1;
      break;
    }
    if (!m) memcpy(kept, evs, i * sizeof *kept), at = i;
    m++;
  }
  pthread_rwlock_unlock(&t->lock);
  if (oom) return util_fail(err, TAILOR_ENOMEM, NULL, "ingest: out of memory");
  if (m) {
    eng_metric(t, "events_no_consent", NULL, (double)m);
    evs = kept;
    n -= m;
  }
  int rc = n ? commit_events(t, (ev **)evs, n, consent, err) : TAILOR_OK;
  if (rc != TAILOR_OK || !n) {
    free(kept);
    return rc;
  }
  eng_plugins_events(t, evs, n);
  eng_metric(t, "events", NULL, (double)n);
  /* The stored text stays with the event (ev_clear frees it): the server
     makes it on its loop thread, which frees it there. */
  free(kept);
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

int eng_ingest_runs(tailor *t, ev *const *evs, size_t n, eng_refused_fn refused, void *ud,
                    size_t *stored, size_t *failed_at, tailor_error *err) {
  *stored = *failed_at = 0;
  for (size_t i = 0, from = 0; i <= n; i++) {
    if (i < n && !ev_refusable(evs[i]->type)) continue;
    int rc = i > from ? eng_ingest(t, evs + from, i - from, err) : TAILOR_OK;
    if (rc) {
      *failed_at = from;
      return rc;
    }
    *stored += i - from;
    from = i + 1;
    if (i == n) break;
    tailor_error e = {0};
    if ((rc = eng_ingest(t, evs + i, 1, &e)) == TAILOR_OK) {
      (*stored)++;
    } else if (eng_refused(rc)) {
      e.code = rc;
      refused(ud, i, &e);
    } else {
      *err = e;
      *failed_at = i;
      return rc;
    }
  }
  return TAILOR_OK;
}

/* tailor_ingest_batch's refusals: the line's rejection. */
typedef struct batch_refusals {
  const long *lines;
  tailor_reject_fn on_reject;
  void *ud;
  size_t n;
} batch_refusals;

static void batch_refused(void *ud, size_t i, const tailor_error *e) {
  batch_refusals *b = ud;
  tailor_error one = *e;
  one.line = b->lines[i];
  b->n++;
  if (b->on_reject) b->on_reject(b->ud, &one);
}

int tailor_ingest_batch(tailor *t, const char *ndjson, size_t len,
                        tailor_reject_fn on_reject, void *ud, size_t *accepted,
                        size_t *rejected) {
  size_t nacc = 0, nrej = 0, cap = 0, stored = 0;
  ev *evs = NULL, **ptrs = NULL;
  long *lines = NULL; /* each parsed event's line */
  ev_limits lim = limits_of(t);
  int rc = TAILOR_OK;
  long line = 0;
  if (accepted) *accepted = 0;
  if (rejected) *rejected = 0;
  if (!t || (!ndjson && len)) return TAILOR_EINVAL;
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
      long *more_lines = more ? realloc(lines, ncap * sizeof *lines) : NULL;
      if (more) evs = more;
      if (!more || !more_lines) {
        rc = TAILOR_ENOMEM;
        goto done;
      }
      lines = more_lines;
      cap = ncap;
    }
    tailor_error e = {0};
    if (ev_parse(start, n, &lim, &evs[nacc], &e) == TAILOR_OK) {
      lines[nacc++] = line;
    } else {
      nrej++;
      e.line = line;
      if (on_reject) on_reject(ud, &e);
    }
  }
  if (nacc && !(ptrs = malloc(nacc * sizeof *ptrs))) {
    rc = TAILOR_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < nacc; i++) ptrs[i] = &evs[i];
  /* A spent coupon is that line's rejection, not the batch's. */
  batch_refusals br = {lines, on_reject, ud, 0};
  size_t failed_at = 0;
  tailor_error e = {0};
  if ((rc = eng_ingest_runs(t, ptrs, nacc, batch_refused, &br, &stored, &failed_at, &e)))
    eng_log(t, TAILOR_LOG_ERROR, "ingest: %s", e.message);
  nrej += br.n;
done:
  /* What was stored before an error stays stored: counted as accepted. */
  if (accepted) *accepted = stored;
  atomic_fetch_add(&t->n_rejected, nrej);
  if (nrej) eng_metric(t, "events_rejected", NULL, (double)nrej);
  if (rejected) *rejected = nrej;
  for (size_t i = 0; i < nacc; i++) ev_clear(&evs[i]);
  free(evs);
  free(lines);
  free(ptrs);
  return rc;
}

