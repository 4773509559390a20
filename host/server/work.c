/*
** work.c: the server's threads.  Decision workers take read jobs (decide,
** customer.get, stats, metrics) from one queue, as many at once as there
** are workers; the writer takes every queued write job at once and commits
** runs of them as one engine batch (one transaction, one fsync), in the
** order they arrived.  Finished jobs go back to the event loop through
** done_async.  No thread but the loop touches a connection.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/util.h"
#include "core/buf.h"
#include "engine/engine.h"
#include "index/intern.h"
#include "server/internal.h"
#include "server/request.h"

/* A decision's answer is allocated this big at once (a product page of ten
   explained items is about 2 KiB); a longer one grows as any buffer. */
#define DECIDE_ANSWER_BYTES 4096

static void push(job **head, job **tail, job *j) {
  j->qnext = NULL;
  if (*tail)
    (*tail)->qnext = j;
  else
    *head = j;
  *tail = j;
}

void srv_queue_read(srv *s, job *j) {
  uv_mutex_lock(&s->mu);
  push(&s->rq_head, &s->rq_tail, j);
  /* A busy worker looks at the queue before it waits: under load most
     jobs need no wake-up (a signal each, and the switches it caused, were
     about a tenth of the server's CPU). */
  if (s->read_idle) uv_cond_signal(&s->read_cv);
  uv_mutex_unlock(&s->mu);
}

/*
** Whether the loop runs a decision itself instead of queueing it.  Handing
** a job to a worker costs a wake-up of the worker and one of the loop for
** the answer (futexes, an eventfd, two context switches): for a decision
** of a few microseconds that was a quarter of the server's CPU, more than
** the decision.  So when every worker waits (the work would not run in
** parallel with anything anyway), the writer waits too (it holds the
** index's write lock while it applies a batch, and the loop must never
** wait for that) and decisions have lately taken less than
** SRV_INLINE_DECIDE_NS on average (a slow strategy would hold up every
** other connection's reads), the loop runs it.  Under load the workers
** are busy and decisions go to them as before.  And at most
** SRV_INLINE_PER_TURN a loop iteration: an iteration that reads many
** requests (pipelined, or many connections) is a loop with no time to
** spare, and the idle workers should take the rest (without the limit the
** loop ran every decision of a pipelined load itself, at 100% of its core,
** while the workers waited).
*/
int srv_decide_inline(srv *s) {
  if (atomic_load_explicit(&s->decide_ns, memory_order_relaxed) >= SRV_INLINE_DECIDE_NS)
    return 0;
  if (s->turn_on && s->inline_turn >= SRV_INLINE_PER_TURN) return 0;
  uv_mutex_lock(&s->mu);
  int idle = !s->rq_head && s->read_idle == s->n_workers && !s->wq_head &&
             s->write_idle == s->writer_on;
  uv_mutex_unlock(&s->mu);
  s->inline_turn += (unsigned)idle;
  return idle;
}

static void turn_end(uv_check_t *h) {
  srv *s = h->data;
  s->inline_turn = 0;
}

int srv_turn_start(srv *s) {
  s->turn.data = s;
  if (uv_check_init(s->loop, &s->turn) || uv_check_start(&s->turn, turn_end)) return -1;
  uv_unref((uv_handle_t *)&s->turn); /* it keeps no loop alive */
  s->turn_on = 1;
  return 0;
}

/* The decisions' moving average (1/8 of each new one), updated by every
   thread that runs one; a lost update between two of them is harmless. */
static void note_decide_ns(srv *s, uint64_t ns) {
  uint64_t avg = atomic_load_explicit(&s->decide_ns, memory_order_relaxed);
  atomic_store_explicit(&s->decide_ns, avg - avg / 8 + ns / 8, memory_order_relaxed);
}

void srv_queue_write(srv *s, job *j) {
  uv_mutex_lock(&s->mu);
  push(&s->wq_head, &s->wq_tail, j);
  if (s->write_idle) uv_cond_signal(&s->write_cv);
  uv_mutex_unlock(&s->mu);
}

/* Hand finished jobs (a list linked by qnext) back to the loop. */
static void finish(srv *s, job *first, job *last) {
  uv_mutex_lock(&s->done_mu);
  if (s->done_tail)
    s->done_tail->qnext = first;
  else
    s->done_head = first;
  s->done_tail = last;
  uv_mutex_unlock(&s->done_mu);
  uv_async_send(&s->done_async);
}

static void fail_tailor(job *j, int code, const tailor_error *e) {
  util_fail(&j->err, srv_err_of_tailor(code), e->field, "%s",
            e->message[0] ? e->message : tailor_strerror(code));
}

/* The engine's stats, at most SRV_STATS_TTL_MS old: they count the store's
   tables, which takes time on a large store and holds its writer lock. */
char *srv_cached_stats(srv *s, tailor_error *e) {
  uint64_t now = util_mono_ns() / 1000000;
  char *copy = NULL;
  uv_mutex_lock(&s->stats_mu);
  if (s->stats_cache && now - s->stats_at < SRV_STATS_TTL_MS)
    copy = strdup(s->stats_cache);
  uv_mutex_unlock(&s->stats_mu);
  if (copy) return copy;
  char *fresh = NULL;
  if (tailor_stats(s->t, &fresh, e)) return NULL;
  copy = strdup(fresh);
  uv_mutex_lock(&s->stats_mu);
  free(s->stats_cache);
  s->stats_cache = strdup(fresh);
  s->stats_at = now;
  uv_mutex_unlock(&s->stats_mu);
  tailor_free(fresh);
  return copy;
}

long srv_max_future_ms(srv *s) { return s->t->cfg.max_future_ms; }

long srv_max_k(srv *s) {
  req_limits rl;
  eng_request_limits(s->t, &rl);
  return rl.max_k;
}

void srv_run_read(srv *s, job *j) {
  tailor_error e = {0};
  int rc = TAILOR_OK;
  char *out = NULL;
  size_t len = 0;
  switch (j->req.op) {
    case SRV_OP_DECIDE: {
      /* The typed request, straight to the engine; the answer is written
         into `b` and becomes the body as it is.  Over NDJSON the line's
         frame goes around it here, so the answer is not copied again
         (job_finalize sends a framed body as it is). */
      strbuf b = {0};
      buf_reserve(&b, DECIDE_ANSWER_BYTES);
      int framed = !j->http;
      if (framed) {
        buf_puts(&b, "{\"id\":");
        buf_puts(&b, j->req.id ? j->req.id : "null");
        buf_puts(&b, ",\"result\":");
      }
      uint64_t t0 = util_mono_ns();
      rc = eng_decide(s->t, &j->req.dq, &b, &e);
      if (framed) buf_put(&b, "}\n", 2);
      note_decide_ns(s, util_mono_ns() - t0);
      if (!rc && !(out = buf_take(&b, &len))) rc = util_fail(&e, TAILOR_ENOMEM, NULL, "out of memory");
      buf_free(&b);
      if (!rc) {
        j->body = out;
        j->body_len = len;
        j->framed = framed;
        return;
      }
      break;
    }
    case SRV_OP_CUSTOMER_GET:
      rc = tailor_customer(s->t, j->req.text,
                           (j->perms & SRV_PERM_PROFILES) ? TAILOR_PII : 0, &out, &e);
      break;
    case SRV_OP_CUSTOMER_EXPORT:
      rc = tailor_export_customer(s->t, j->req.text, &out, &e);
      break;
    case SRV_OP_STATS:
      rc = tailor_stats(s->t, &out, &e);
      break;
    case SRV_OP_COUPON_CHECK:
      rc = tailor_coupon_check(s->t, j->req.text, &out, &e);
      break;
    case SRV_OP_SUBSCRIBE:
      rc = tailor_subscribe(s->t, j->req.text, j->req.text_len, &out, &e);
      break;
    case SRV_OP_CONFIRM:
      /* The link's GET (or HEAD: a mail client's preview, a link checker)
         confirms nothing: it shows the button, or why the link is broken;
         the button's POST, a person's click, confirms. */
      rc = j->head_only || j->req.html == 1 ? eng_confirm_check(s->t, j->req.text, &e)
                                            : tailor_confirm(s->t, j->req.text, &out, &e);
      if (j->req.html) {
        srv_confirm_page(j, rc, out, &e);
        tailor_free(out);
        return;
      }
      break;
    case SRV_OP_UNSUBSCRIBE: {
      /* A GET (or HEAD: a link checker) shows the button; a POST acts. */
      const char *t = j->req.text;
      char sig[65];
      memcpy(sig, t + 1, 64);
      sig[64] = '\0';
      int post = t[0] == 'P' && !j->head_only;
      rc = post ? tailor_unsubscribe(s->t, t + 65, sig, &e)
                : eng_unsubscribe_check(s->t, t + 65, sig, &e); /* a broken link says so */
      srv_unsubscribe_page(j, rc, post, &e);
      return;
    }
    case SRV_OP_PREFS:
      if (!j->req.dq.customer && !j->req.dq.anon) { /* a customer nobody proved */
        if (!(out = strdup("{\"prefs\":{}}"))) rc = util_fail(&e, TAILOR_ENOMEM, NULL, "out of memory");
      } else {
        rc = tailor_prefs(s->t, j->req.dq.customer, j->req.dq.anon, &out, &e);
      }
      break;
    case SRV_OP_METRICS:
      /* Rendered on the loop, which owns the request counters. */
      if ((j->body = srv_cached_stats(s, &e))) {
        j->body_len = strlen(j->body);
        return;
      }
      rc = e.code ? e.code : TAILOR_ENOMEM;
      break;
    case SRV_OP_STATIC:
      srv_static_read(j);
      return;
    case SRV_OP_CONSOLE_READ:
    case SRV_OP_CONSOLE_WRITE:
      srv_console_run(s, j);
      return;
    default:
      util_fail(&j->err, SRV_EINTERNAL, NULL, "%s is not a read", srv_op_name(j->req.op));
      return;
  }
  if (rc) {
    fail_tailor(j, rc, &e);
    tailor_free(out);
    return;
  }
  j->body = out;
  j->body_len = len ? len : strlen(out);
  j->body_tailor = 1;
}

static void worker_main(void *arg) {
  srv *s = arg;
  for (;;) {
    uv_mutex_lock(&s->mu);
    while (!s->rq_head && !s->stop_threads) {
      s->read_idle++;
      uv_cond_wait(&s->read_cv, &s->mu);
      s->read_idle--;
    }
    job *j = s->rq_head;
    if (!j) {
      uv_mutex_unlock(&s->mu);
      return;
    }
    if (!(s->rq_head = j->qnext)) s->rq_tail = NULL;
    uv_mutex_unlock(&s->mu);
    srv_run_read(s, j);
    j->qnext = NULL;
    finish(s, j, j);
  }
}

/*
** Writes.  A group is a run of queued jobs that carry events: their typed
** events (parsed once, on the loop) go to the engine as one batch, which
** is one transaction and one fsync.  This is the only batching layer.
*/
static void set_body(job *j, json_t *o) {
  j->body = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (j->body)
    j->body_len = strlen(j->body);
  else
    util_fail(&j->err, SRV_EINTERNAL, NULL, "out of memory");
}

/* The answer to `events` (and to Segment's and GA4's batches): counts, and
   the first rejections with where; Segment's messages by their messageId
   too, beside its own {"success": true}. */
/*
** The answer to a batch counts messages, each once: one message may make
** several events (Segment's identify: the traits and the link), and the
** events and rejections of one message share its index (in order, so a
** message's are side by side).  Its first rejection names it.
*/
static json_t *events_answer(const srv_request *r) {
  size_t dups = 0, accepted = 0, rejected = 0;
  for (size_t k = 0; k < r->n_events; k++) {
    dups += r->evs[k].dup && (!k || r->at[k] != r->at[k - 1]);
    accepted += !k || r->at[k] != r->at[k - 1];
  }
  for (size_t k = 0; k < r->n_rejects; k++)
    rejected += !k || r->rejects[k].index != r->rejects[k - 1].index;
  json_t *o = json_pack("{sI sI}", "accepted", (json_int_t)accepted, "rejected",
                        (json_int_t)rejected);
  if (o && dups) json_object_set_new(o, "duplicates", json_integer((json_int_t)dups));
  if (o && r->n_rejects) {
    json_t *errors = json_array();
    size_t shown = 0;
    for (size_t k = 0; k < r->n_rejects && shown < SRV_MAX_REPORTED_ERRORS; k++) {
      const srv_reject *x = &r->rejects[k];
      if (k && x->index == r->rejects[k - 1].index) continue;
      shown++;
      json_t *one = json_pack("{sI ss ss ss?}", "index", (json_int_t)x->index, "code",
                              srv_err_code(x->err.code), "message", x->err.message, "field",
                              x->err.field[0] ? x->err.field : NULL);
      if (one && x->index < r->n_msg_ids && r->msg_ids[x->index])
        json_object_set_new(one, "messageId", json_string(r->msg_ids[x->index]));
      json_array_append_new(errors, one);
    }
    json_object_set_new(o, "errors", errors);
  }
  if (o && r->op == SRV_OP_SEGMENT) json_object_set_new(o, "success", json_true());
  return o;
}

/* How many items of `e` are new: in neither the index nor `fresh` (the
   items this screen already counted), each counted once. */
static size_t new_items(const idx *x, const intern *fresh, const ev *e) {
  size_t n = 0;
  for (size_t i = 0; i < e->n_lines; i++) {
    const char *id = e->lines[i].item;
    if (idx_item_id(x, id) != INTERN_NONE || intern_get(fresh, id) != INTERN_NONE) continue;
    size_t k = 0;
    while (k < i && strcmp(e->lines[k].item, id)) k++;
    n += k == i; /* not an earlier line of the same event */
  }
  return n;
}

/*
** limits.max_unknown_items, counted where the count is exact: on the
** writer, just before the group commits, against the index as it is then
** and in the order of the events, each new item once.  An event from a
** token without the catalog permission that would take the items known
** only from events past the limit is refused: alone in a batch (the others
** go on), the whole request otherwise.  The events of trusted senders
** count too, never refused.  (An item.upsert in the same group is not
** counted as a catalog item until it commits: conservative.)
*/
static void screen_unknown(srv *s, job **jobs, size_t n) {
  tailor *t = s->t;
  size_t lines = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < jobs[i]->req.n_events; k++) lines += jobs[i]->req.evs[k].n_lines;
  pthread_rwlock_rdlock(&t->lock);
  long long room = (long long)t->cfg.max_unknown_items - (long long)t->ix->uncataloged;
  if (!lines || (long long)lines <= room) { /* the usual case: no count needed */
    pthread_rwlock_unlock(&t->lock);
    return;
  }
  intern fresh;
  intern_init(&fresh);
  for (size_t i = 0; i < n; i++) {
    job *j = jobs[i];
    srv_request *r = &j->req;
    int trusted = (j->perms & SRV_PERM_CATALOG) != 0;
    size_t kept = 0;
    for (size_t k = 0; k < r->n_events; k++) {
      ev *e = &r->evs[k];
      size_t more = new_items(t->ix, &fresh, e);
      if (more && !trusted && (long long)more > room) {
        tailor_error why = {0};
        size_t l = 0;
        while (idx_item_id(t->ix, e->lines[l].item) != INTERN_NONE ||
               intern_get(&fresh, e->lines[l].item) != INTERN_NONE)
          l++;
        util_fail(&why, SRV_EBAD_FIELD, "item",
                  "%s: item '%.64s' is not in the catalog, and a storefront may add no more "
                  "unknown items (limits.max_unknown_items)",
                  ev_type_name(e->type), e->lines[l].item);
        if (!srv_op_batch(r->op)) { /* the request whole */
          j->err = why;
          for (size_t m = 0; m < r->n_events; m++) ev_clear(&r->evs[m]);
          r->n_events = kept = 0;
          break;
        }
        srv_reject_event(r, k, &why);
        continue;
      }
      for (size_t l = 0; more && l < e->n_lines; l++)
        if (idx_item_id(t->ix, e->lines[l].item) == INTERN_NONE)
          intern_put(&fresh, e->lines[l].item);
      room -= (long long)more;
      if (kept != k) r->evs[kept] = *e, r->at[kept] = r->at[k];
      kept++;
    }
    if (!j->err.code) r->n_events = kept;
  }
  pthread_rwlock_unlock(&t->lock);
  intern_free(&fresh);
}

/* The answer to a write request whose events are stored (those the
   request still holds; the refused ones are its rejects). */
static void answer_stored(srv *s, job *j) {
  for (size_t k = 0; k < j->req.n_events; k++)
    atomic_fetch_add(&s->ev_accepted[j->req.evs[k].type], 1);
  atomic_fetch_add(&s->ev_rejected, j->req.n_rejects);
  if (j->req.op == SRV_OP_GA4 && !j->req.n_rejects) {
    /* GA4's answer to a hit: 204, no body. */
    j->status = 204;
    if ((j->body = strdup("")))
      j->body_len = 0;
    else
      util_fail(&j->err, SRV_EINTERNAL, NULL, "out of memory");
  } else if (srv_op_batch(j->req.op)) {
    set_body(j, events_answer(&j->req));
  } else if ((j->body = strdup("{\"ok\":true}"))) {
    j->body_len = strlen(j->body);
  } else {
    util_fail(&j->err, SRV_EINTERNAL, NULL, "out of memory");
  }
}

/* A store known to be unreachable (follow.c), or failing its commits
   (engine/ingest.c), was logged once; a line for each refused request
   would flood the log and, past its rate limit, drop the line that says
   the store is back. */
static void log_ingest_failure(srv *s, const tailor_error *e) {
  if (!eng_store_down_ms(s->t) && !eng_commit_backoff(s->t))
    eng_log(s->t, TAILOR_LOG_ERROR, "ingest: %s", e->message);
}

static void commit_jobs(srv *s, job **jobs, size_t n) {
  size_t total = 0, at = 0;
  screen_unknown(s, jobs, n);
  for (size_t i = 0; i < n; i++) total += jobs[i]->req.n_events;
  ev **all = total ? malloc(total * sizeof *all) : NULL;
  tailor_error e = {0};
  int rc = total && !all ? TAILOR_ENOMEM : TAILOR_OK;
  for (size_t i = 0; all && i < n; i++)
    for (size_t k = 0; k < jobs[i]->req.n_events; k++) all[at++] = &jobs[i]->req.evs[k];
  if (!rc && total) rc = eng_ingest(s->t, all, total, &e);
  free(all);
  /* A refused coupon redemption (engine/coupon.c) or quiz answer
     (engine/ingest.c) is the request's own error, with its code and
     message: it comes alone (commit_group). */
  int refused = eng_refused(rc);
  if (rc && !refused) log_ingest_failure(s, &e);
  for (size_t i = 0; i < n; i++) {
    job *j = jobs[i];
    if (j->err.code) continue; /* refused whole by screen_unknown */
    if (rc && refused) {
      util_fail(&j->err, srv_err_of_tailor(rc), e.field[0] ? e.field : NULL, "%s: %s",
                srv_op_name(j->req.op), e.message);
      continue;
    }
    if (rc == TAILOR_EIO) {
      /* The store's connection broke with the commit sent (postgres.c). */
      util_fail(&j->err, SRV_ESTORE, NULL,
                "%s: store error; the store did not confirm the commit, so this request may "
                "be stored: send it again with the same message ids (see the server log)",
                srv_op_name(j->req.op));
      continue;
    }
    if (rc) {
      util_fail(&j->err, rc == TAILOR_ENOMEM ? SRV_EINTERNAL : SRV_ESTORE, NULL,
                "%s: %s; nothing of this request was stored (see the server log)",
                srv_op_name(j->req.op), tailor_strerror(rc));
      continue;
    }
    answer_stored(s, j);
  }
}

/* Whether the engine may refuse the request's events (ev_refusable). */
static int refusable(const job *j) {
  for (size_t k = 0; k < j->req.n_events; k++)
    if (ev_refusable(j->req.evs[k].type)) return 1;
  return 0;
}

/* A refused event of a split batch: its rejection, by index. */
static void split_refused(void *ud, size_t i, const tailor_error *e) {
  srv_request *r = ud;
  tailor_error why = *e;
  why.code = srv_err_of_tailor(e->code);
  srv_reject_event(r, i, &why);
  r->evs[i].type = EV_TYPE_COUNT; /* gone: left out below */
}

/*
** A batch (`events`, Segment's batch, GA4's hits) with an event the engine
** may refuse for what it says (a spent coupon, a quiz answer its handler
** fails): eng_ingest_runs, as for tailor_ingest_batch: the runs between
** such events commit together and each of them alone, so a refusal is that event's rejection,
** listed by its index, and the batch's other events are stored.  Refusing
** the batch whole left a Segment client retrying it, refused, for ever.
*/
static void commit_split(srv *s, job *j) {
  screen_unknown(s, &j, 1);
  if (j->err.code) return;
  srv_request *r = &j->req;
  size_t n = r->n_events, kept = 0, stored = 0, failed_at = 0;
  ev **ptrs = malloc((n ? n : 1) * sizeof *ptrs);
  if (!ptrs) {
    util_fail(&j->err, SRV_EINTERNAL, NULL, "%s: out of memory; nothing of this request was "
              "stored", srv_op_name(r->op));
    return;
  }
  for (size_t k = 0; k < n; k++) ptrs[k] = &r->evs[k];
  tailor_error e = {0};
  int rc = eng_ingest_runs(s->t, ptrs, n, split_refused, r, &stored, &failed_at, &e);
  free(ptrs);
  if (rc) {
    log_ingest_failure(s, &e);
    util_fail(&j->err, rc == TAILOR_ENOMEM ? SRV_EINTERNAL : SRV_ESTORE, NULL,
              "%s: %s; the events before index %zu were stored, that one and the rest "
              "not: send those again (see the server log)",
              srv_op_name(r->op), tailor_strerror(rc), r->at[failed_at]);
    return;
  }
  for (size_t k = 0; k < n; k++) {
    if (r->evs[k].type == EV_TYPE_COUNT) continue;
    if (kept != k) r->evs[kept] = r->evs[k], r->at[kept] = r->at[k];
    kept++;
  }
  r->n_events = kept;
  answer_stored(s, j);
}

/* The writer's group: one commit for all, but a request the engine may
   refuse on its own (refusable) commits alone, so that no other request
   shares its refusal; the runs between such requests commit as groups, in
   the order the requests came; a batch of several events is split
   (commit_split). */
static void commit_group(srv *s, job **jobs, size_t n) {
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    if (!refusable(jobs[i])) continue;
    if (i > start) commit_jobs(s, &jobs[start], i - start);
    if (srv_op_batch(jobs[i]->req.op) && jobs[i]->req.n_events > 1) commit_split(s, jobs[i]);
    else commit_jobs(s, &jobs[i], 1);
    start = i + 1;
  }
  if (n > start) commit_jobs(s, &jobs[start], n - start);
}

static void run_forget(srv *s, job *j) {
  tailor_error e = {0};
  int64_t erased = 0;
  int rc = tailor_forget(s->t, j->req.text, &erased, &e);
  if (rc)
    fail_tailor(j, rc, &e);
  else
    set_body(j, json_pack("{sI}", "erased", (json_int_t)erased));
}

/*
** Commit queued writes in order: runs of event lines as groups (up to
** SRV_WRITE_GROUP_EVENTS events each), erasures one by one between them.
** Everything queued goes in as few groups as that allows: each group
** pays a commit (and on PostgreSQL its round trips) whatever its size,
** and the list is answered only once all of it is written.
*/
static void run_writes(srv *s, job *list) {
  size_t cap = 0;
  for (job *j = list; j; j = j->qnext) cap++;
  job *small[256], **run = cap > 256 ? malloc(cap * sizeof *run) : small;
  if (!run) {
    run = small;
    cap = 256;
  }
  size_t n = 0, events = 0;
  for (job *j = list; j; j = j->qnext) {
    int lines = j->req.op != SRV_OP_CUSTOMER_FORGET;
    if (n && (!lines || n == cap || events + j->req.n_events > SRV_WRITE_GROUP_EVENTS)) {
      commit_group(s, run, n);
      n = events = 0;
    }
    if (lines) {
      run[n++] = j;
      events += j->req.n_events;
    } else {
      run_forget(s, j);
    }
  }
  if (n) commit_group(s, run, n);
  if (run != small) free(run);
}

/* A decision left enough exposures buffered (engine.h, expo_due): the
   writer writes them, so that no decision waits for that transaction. */
static void exposures_due(void *ud) {
  srv *s = ud;
  uv_mutex_lock(&s->mu);
  s->expo_due = 1;
  if (s->write_idle) uv_cond_signal(&s->write_cv);
  uv_mutex_unlock(&s->mu);
}

/*
** The writer takes whatever is queued, commits it (one fsync) and answers
** it, then takes what queued meanwhile.  Two other shapes were built and
** measured against this one (2 cores, 50 connections; the disk's
** fdatasync about 200 us) and not kept:
** - Waiting before a commit for the writes of the clients the last commit
**   answered, so that clients which wait for each answer share one fsync
**   instead of settling into groups of about 20: groups grew to about 44
**   and unpipelined events went from 32.9k/s to 34.0k/s on average of
**   seven alternating runs, within the runs' spread, while an open-loop
**   client would pay the wait on every commit.  The round trip between
**   answer and next write (the loop and the client, about 15 us of system
**   calls a write each) is as long as the commit it would save.
** - Committing without fsync (synchronous=NORMAL for the group) and
**   answering from a second thread after one fdatasync of the WAL: the
**   writer no longer waits for the disk, but unpipelined events were
**   unchanged (the fsync thread was busy a quarter of the time: the disk
**   was not the limit) and pipelined ones 10% slower (smaller groups, more
**   pages written per event, one more thread on two cores).
*/
static void writer_main(void *arg) {
  srv *s = arg;
  for (;;) {
    uv_mutex_lock(&s->mu);
    while (!s->wq_head && !s->expo_due && !s->stop_threads) {
      s->write_idle++;
      uv_cond_wait(&s->write_cv, &s->mu);
      s->write_idle--;
    }
    job *list = s->wq_head, *last = s->wq_tail;
    s->wq_head = s->wq_tail = NULL;
    int expo = s->expo_due;
    s->expo_due = 0;
    int stop = s->stop_threads;
    uv_mutex_unlock(&s->mu);
    if (list) {
      run_writes(s, list);
      finish(s, list, last);
    }
    if (expo) eng_write_exposures(s->t); /* a commit above may have already */
    if (!list && !expo && stop) return;
  }
}

int srv_threads_start(srv *s, int workers) {
  if (!(s->workers = calloc((size_t)workers, sizeof *s->workers))) return -1;
  for (int i = 0; i < workers; i++) {
    if (uv_thread_create(&s->workers[i], worker_main, s)) break;
    s->n_workers++;
  }
  if (s->n_workers && !uv_thread_create(&s->writer, writer_main, s)) s->writer_on = 1;
  if (s->writer_on) {
    s->t->expo_due_ud = s;
    s->t->expo_due = exposures_due;
  }
  return s->n_workers == workers && s->writer_on ? 0 : -1;
}

/* Called once the loop has no connection left, so the queues are empty. */
void srv_threads_stop(srv *s) {
  uv_mutex_lock(&s->mu);
  s->stop_threads = 1;
  uv_cond_broadcast(&s->read_cv);
  uv_cond_broadcast(&s->write_cv);
  uv_mutex_unlock(&s->mu);
  for (int i = 0; i < s->n_workers; i++) uv_thread_join(&s->workers[i]);
  if (s->writer_on) uv_thread_join(&s->writer);
  s->t->expo_due = NULL; /* decisions after this (none) write their own */
  free(s->workers);
  s->workers = NULL;
  s->n_workers = s->writer_on = 0;
}
