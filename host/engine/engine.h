/*
** engine.h: the inside of a `tailor` handle, shared by the engine's files
** (engine.c: open and close; ingest.c: the event path; decide.c:
** decisions; vm.c: per-thread Lua states; admin.c: stats, profiles,
** erasure; lapi.c: the strategies' API).
**
** Locking model.  Ingesting callers meet in a group commit (commit_mu): one
** of them writes every queued event in one transaction.  `write_mu` serializes everything that writes: the store
** append and then the index update, so events reach the index in the order
** of their sequence numbers.  `lock` is a reader/writer lock over the index:
** decisions hold it shared for the whole strategy call, ingestion holds it
** exclusive only while applying already-durable events.  The store handle is
** used under `write_mu` only.  Lua states are per thread (pthread key), so
** decisions never contend on Lua.
*/
#ifndef TAILOR_ENGINE_H
#define TAILOR_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "engine/config.h"
#include "core/buf.h"
#include "core/event.h"
#include "core/request.h"
#include "index/index.h"
#include "index/sknn_rerank.h"
#include "lua/lvm.h"
#include "store/store.h"
#include "tailor.h"

typedef struct vm_slot vm_slot;       /* one thread's Lua state */
typedef struct eng_plugins eng_plugins; /* loaded plugins (engine/plugin.c) */
typedef struct commit_req commit_req; /* events waiting for a group commit */

#define ENG_LAG_MAX_MS 2000
/* After a commit the store failed, events are refused this long before
   the store is tried again (ingest.c). */
#define ENG_COMMIT_BACKOFF_MS 1000
#define ENG_EXPOSED_SLOTS 16384 /* pairs remembered as recorded (a power of 2) */

/* Exposures buffered in C: each row's three names NUL-ended in `text`, at
   the offsets it keeps (text moves as it grows). */
typedef struct eng_expo_row {
  size_t experiment, variant, unit;
  int64_t ts;
} eng_expo_row;
typedef struct eng_expo {
  eng_expo_row *row;
  size_t n, cap;
  strbuf text;
} eng_expo;

struct tailor {
  config cfg;
  store *st;
  store *st_read;          /* the store's reader (store_open_reader), which
                              reads while the writer commits; or NULL */
  pthread_mutex_t read_mu; /* serializes st_read */

  /* A shared store's log, followed (follow.c): the follower's own handle
     and thread; follow_at_ms when it last read the log. */
  store *st_follow;
  pthread_t follow_thread;
  int following;
  _Atomic int follow_stop;
  _Atomic int64_t follow_at_ms;
  _Atomic uint64_t follow_scan_ns; /* when a scan of the log last began */
  _Atomic uint64_t n_followed; /* events applied from the log */
  _Atomic int triggers_ready;  /* strategies loaded: owed triggers may run */
  int64_t triggers_checked_ms; /* when the follower last looked for them */
  /* The log's lag: events applied from it, by milliseconds from their
     receipt (ts, the server's clock) to their application, the last
     bucket holding ENG_LAG_MAX_MS and more. */
  _Atomic uint32_t lag_ms[ENG_LAG_MAX_MS + 1];
  /* The shared store as the follower last found it: unreachable since
     store_down_ms (0: reachable), for the reason in store_error (under
     read_mu). */
  _Atomic int64_t store_down_ms;
  char store_error[256];
  idx *ix;
  pthread_mutex_t write_mu;
  pthread_rwlock_t lock;

  /* Group commit (engine.c): callers queue, one leader writes them all. */
  pthread_mutex_t commit_mu;
  pthread_cond_t commit_cv;
  commit_req *commit_queue;
  int committing;

  /* Per-thread Lua states, all listed so tailor_close() can free them
     (the list under vm.c's process-wide slots_mu); vm_mu guards the
     strategy snapshots (snaps). */
  pthread_key_t vm_key;
  pthread_mutex_t vm_mu;
  vm_slot *vms;

  /* Strategy reloads: a new generation once an edited folder compiles. */
  pthread_mutex_t scan_mu;
  _Atomic uint64_t strat_gen;
  uint64_t strat_sig;          /* the folder's files when last scanned */
  _Atomic uint64_t serving_sig; /* ... when last loaded: what serves */
  char *_Atomic strat_dir;  /* the snapshot states load from (vm.c), or NULL */
  struct eng_snap {         /* every snapshot taken, removed at close: */
    char *path;
    int owner;              /* its .owner, locked (vm.c), or -1 */
  } *snaps;
  size_t n_snaps;
  _Atomic int64_t last_scan_ms;

  /* Counters for stats and metrics. */
  _Atomic uint64_t n_decisions, n_strategy_errors, n_accepted, n_rejected;
  _Atomic uint64_t n_triggers, n_trigger_capped, n_trigger_no_consent;

  /* Checkpoints of the index (index/checkpoint.c). */
  char *ckpt_path;         /* NULL: none */
  uint64_t ckpt_fp;        /* fingerprint of the index configuration and store
                              (eng_checkpoint_fp adds the position's) */
  int64_t applied_seq;     /* last event applied to the index */
  int64_t ckpt_seq;        /* last event in the checkpoint on disk */
  int ix_incomplete;       /* an event failed to apply (out of memory) */
  /* A commit the store failed (ingest.c, under write_mu): when
     (util_mono_ns; 0: the last one committed) and why. */
  _Atomic uint64_t commit_failed_ns;
  char commit_error[160];
  int commit_failing; /* since the last failed commit, none worked */
  /* Claimed outbox rows that a failing store left unsent (deliver.c),
     with the attempt of their claim: given back, their leases ended, once
     the store answers again, instead of waiting out the lease.  Under
     write_mu. */
  struct eng_unsent {
    int64_t id;
    int attempt;
  } *unsent;
  size_t n_unsent;
  /* Rows sent whose `sent` the failing store did not take (deliver.c):
     recorded once it answers, not sent again when their leases end.
     Under write_mu. */
  struct eng_unrecorded *unrecorded;
  /* Closing (eng_deliver_quit): a delivery pass sends no further row of
     its batch. */
  _Atomic int deliver_quit;
  /* A pass over owed triggers locked its events' people up front
     (follow.c): eng_run_triggers takes no lock of its own.  Under
     write_mu. */
  int people_locked;
  _Atomic uint64_t value_orders; /* orders_seen when the value model was fitted */
  /* Refits beside the writer (index.background_refits, engine.c): the
     writer asks (fit_busy set until the fit is in), the fitter fits. */
  pthread_t fitter;
  int fitter_on;
  pthread_mutex_t fit_mu;
  pthread_cond_t fit_cv;
  int fit_asked;           /* under fit_mu */
  int64_t fit_seq;         /* under fit_mu: the log position it asked at */
  _Atomic int fit_busy;
  _Atomic int fit_quit;    /* closing: the fitter ends, a fit under way at
                              its next step (set under fit_mu) */
  /* Bumped when the index is replaced (a rebuild after a failed commit)
     or people are erased: a fit read before installs nothing per person. */
  _Atomic uint64_t ix_gen;
  /* Bumped when the index is replaced only: the repeat profile's check,
     which lets go of the lock between sessions, stops reading the old
     one (an erasure leaves the sessions it reads alone). */
  _Atomic uint64_t ix_swaps;
  /* Replaying a shared log on open: crossings from refit_from orders on
     refit (engine.c, replay_plan); how many did. */
  int replay_refits;
  uint64_t refit_from;
  unsigned n_replay_refits;
  atomic_llong n_unreadable; /* stored events today's checks refuse, passed
                               over by the index (eng_unreadable) */
  int64_t n_replayed;       /* events the open replayed, in replay_ms, */
  double replay_ms, replay_refit_ms; /* of which refitting */
  int no_default_strategies; /* the default folder was not found: nothing
                                loaded (said once at open, and in the
                                error of a decision without a handler) */
  uint64_t replay_said;     /* util_mono_ns() of the replay's last progress
                               line; 0 when no replay runs */

  /* tailor.session_next's tailor kernel (engine.c, eng_session_params):
     the parameters of index.tuned when set, else tailor's defaults
     adjusted to the shop's repeat profile (recomputed with the value
     model, under the write lock); the tuned file's re-ranker, or NULL. */
  sknn_params sess_params;
  sknn_tuned *tuned;
  int sess_adapted;        /* what the shop's profile changed in the defaults:
                              SKNN_ADAPTED_* bits */

  /* Experiment exposures waiting for the next commit (experiment.c), and
     the pairs recorded lately (hashes, ENG_EXPOSED_SLOTS of them). */
  pthread_mutex_t expo_mu;
  eng_expo expo;
  uint64_t *exposed;
  /* Set by a server with a writer thread: called by a decision that left
     enough exposures buffered, instead of writing them itself. */
  void (*expo_due)(void *ud);
  void *expo_due_ud;

  /* Plugins and what they registered; fixed once tailor_open returns. */
  eng_plugins *plugins;

  tailor_log_fn log;
  void *log_ud;
  tailor_metric_fn metric;
  void *metric_ud;
};

/* A store handle for reads that must not wait for writers (stats, profiles,
   the outbox): the read-only connection when there is one, else the
   writer's.  Pair with eng_read_end. */
store *eng_read_begin(tailor *t);
void eng_read_end(tailor *t);

/* The members of an audience (admin.c) as a JSON array of [customer id or
   "", anonymous id or null], copied under the index read lock; NULL with
   `err` (TAILOR_EINVAL, the audiences listed) for an unknown audience. */
json_t *eng_audience_ids(tailor *t, const char *audience, int days, tailor_error *err);

/*
** Shared between the engine's files (engine.c, ingest.c, vm.c, admin.c).
** eng_writing: the engine whose write_mu this thread holds while it
** commits (its triggers read the store through eng_read_begin() without
** taking the lock again).  The caller of eng_save_checkpoint and
** eng_refit_value holds write_mu; eng_rebuild_one is the store_scan
** callback that applies the log to the index.
** eng_serial: the engine whose write_mu this thread holds while it
** decides on a store without a reader of its own (":memory:"): such a
** decision reads the store it writes, so it takes write_mu before the
** index lock, in the writer's order (write_mu, then the index lock), and
** its reads and coupon writes do not take write_mu again.
*/
extern _Thread_local tailor *eng_writing;
extern _Thread_local tailor *eng_serial;
/* Write the checkpoint when index.checkpoint_every events passed since
   the last one; the caller holds write_mu.  The SQLite writer and a shared
   log's paths (follow.c) call it. */
void eng_checkpoint_due(tailor *t);
/* An erasure's first step: the checkpoint on disk, which holds the person,
   removed (its folder synced) before anything else; 0, or the errno of a
   removal that failed.  Either way none counts as written. */
int eng_drop_checkpoint(tailor *t);
void eng_save_checkpoint(tailor *t);
/* The fingerprint of a checkpoint at position `seq`: ckpt_fp and the
   store's token for the event there (store_seq_token).  TAILOR_OK, or the
   code with `err` filled (fp is then one no checkpoint has). */
int eng_checkpoint_fp(tailor *t, int64_t seq, uint64_t *fp, tailor_error *err);
void eng_refit_value(tailor *t);
/* The same on the fitter thread (index.background_refits): the writer
   asks and goes on; nothing when a fit is already on its way. */
void eng_refit_ask(tailor *t);
/* The fitter stopped, a fit under way finished (tailor_close; a server
   before it takes away what its logger writes to). */
void eng_refits_stop(tailor *t);
/* A stored event today's parser refuses, passed over by the index (the
   store's skip function: store_on_unreadable); ud is the engine. */
void eng_unreadable(void *ud, int64_t seq, const char *why);
int eng_rebuild_one(void *ud, int64_t seq, const ev *e);

/* A shared log's refits (engine.c): eng_refit_due says whether the
   purchase just applied brought the orders to a crossing; a store_scan
   callback then returns ENG_REFIT_DUE (stopping the scan right after that
   event) and its caller runs eng_refit_at(t, that event's seq) before
   scanning on.  The caller holds write_mu or is tailor_open. */
#define ENG_REFIT_DUE 1
/* eng_call_write: a cap another decision's or node's contact filled
   meanwhile holds (call->capped says which); nothing was written. */
#define ENG_CAPPED 2
int eng_refit_due(const tailor *t);
void eng_refit_at(tailor *t, int64_t seq);

/* follow.c: a shared store's log.  eng_follow_start starts the follower
   (nothing on a store that is not shared); eng_commit_shared is the event
   path there: durable, then applied in the log's order, then triggers.
   Its caller holds write_mu and has begun the transaction, which it
   commits or rolls back. */
int eng_follow_start(tailor *t, tailor_error *err);
void eng_follow_stop(tailor *t);
int eng_commit_shared(tailor *t, ev **all, size_t n, tailor_error *err);

/* The log as stats show it: {store, position, behind (events committed
   after the position), read_age_ms (since the log was last read),
   applied_from_log, reachable, and while it is not unreachable_ms and
   error}; only {store} for a store that is not shared. */
json_t *eng_log_json(tailor *t);

/* How long the follower has found the shared store unreachable, in ms;
   0 while it reaches it (and on a store that is not shared). */
int64_t eng_store_down_ms(tailor *t);
int eng_vms_init(tailor *t);
/* A new temporary folder holding the *.lua files of `base` (if any) with
   those of `dir` over them, as strategies are loaded (`require` reaches
   inside one folder); NULL with `err`.  eng_strategies_discard removes
   and frees it. */
char *eng_strategies_merged(const char *base, const char *dir, tailor_error *err);
void eng_strategies_discard(char *copy);
int eng_strategies_load(tailor *t, tailor_error *err);
uint64_t eng_strategies_signature(tailor *t);
void eng_strategies_free(tailor *t);
void eng_vms_free(tailor *t);
size_t eng_count_states(tailor *t);

/* Report a measurement to the host's metrics callback, if any. */
#define eng_metric(t, name, label, value) \
  ((t)->metric ? (t)->metric((t)->metric_ud, (name), (label), (value)) : (void)0)

/* Log a formatted line through the engine's logger. */
void eng_log(tailor *t, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The calling thread's Lua state for `t`, created or reloaded as needed;
   NULL (with `err`) when the strategies cannot be loaded. */
lvm *eng_thread_vm(tailor *t, tailor_error *err);

/* The calling thread's scratch space for the session kernels (lives with
   its Lua state); NULL outside a decision or when out of memory. */
sknn_work *eng_thread_work(tailor *t);
/* The re-ranker's scratch space of the calling thread (vm.c), or NULL. */
sknn_rerank_work *eng_thread_rerank_work(tailor *t);
/* Set t->sess_params: the tuned file's on first call (a bad file is an
   error naming index.tuned), else the repeat-adapted defaults. */
int eng_session_params(tailor *t, tailor_error *err);

/* The lvm_config an engine uses for its states (borrowed strings). */
void eng_vm_config(tailor *t, lvm_config *cfg);

/* Push the table strategies see as ctx.customer and tailor.customer():
   figures, lifecycle, attributes, recent/cart/bought ids (engine/lapi.c).
   Needs the index read lock. */
void lapi_push_customer(lua_State *L, tailor *t, const char *customer,
                        const char *anon);

/*
** The one way in for events, whatever brought them (the server's writer,
** tailor_ingest, an NDJSON batch): typed events, parsed once at the edge,
** committed by a group commit in one transaction with their state changes
** and the outbox rows their triggers schedule, then handed to plugins.
** Returns TAILOR_OK once all are durable; an event whose message id was
** seen before comes back with `dup` set (acknowledged, applied once).
*/
int eng_ingest(tailor *t, ev *const *evs, size_t n, tailor_error *err);

/* Whether events are being refused after a commit the store failed
   (ENG_COMMIT_BACKOFF_MS): the failure was logged once, by the engine. */
int eng_commit_backoff(tailor *t);

/* Whether eng_ingest's code is a refusal of an event for what it says (a
   spent coupon, an unknown quiz answer: ev_refusable), the request's own
   error, as against a store or memory failure.  A quiz answer whose
   handler failed (ESTRATEGY) is refused too: it comes alone, and a batch
   went no further than it. */
static inline int eng_refused(int rc) {
  return rc == TAILOR_EINVAL || rc == TAILOR_ENOTFOUND || rc == TAILOR_EFIELD ||
         rc == TAILOR_ESTRATEGY;
}

/*
** A batch of which an event may be refused for what it says: the runs
** between such events (ev_refusable) go in together and each of them
** alone, so that a refusal (eng_refused) is that event's, handed to
** refused(ud, i, e), and the batch's other events are stored.  Returns
** TAILOR_OK, or the first other failure, filled in `err`, with *failed_at
** the index of the first event of the call it stopped at (those before it
** are stored, but the refused ones); *stored counts the events stored
** either way.  tailor_ingest_batch and the server's batches.
*/
typedef void (*eng_refused_fn)(void *ud, size_t i, const tailor_error *e);
int eng_ingest_runs(tailor *t, ev *const *evs, size_t n, eng_refused_fn refused, void *ud,
                    size_t *stored, size_t *failed_at, tailor_error *err);

/*
** The same for the events that store a confirmed address (engine/optin.c):
** committed only if the double opt-in request `consent` is still pending,
** in the transaction that marks it confirmed; otherwise refused with the
** store's reason (TAILOR_EINVAL: used or expired; TAILOR_ENOTFOUND),
** nothing stored.
*/
int eng_ingest_confirmed(tailor *t, ev *const *evs, size_t n, const char *consent,
                         tailor_error *err);

/* The outbox keys of double opt-in confirmation emails ("optin:<id>"):
   the host's own rows, which delivery sends to the address of the pending
   request (eng_optin_recipient) without asking a strategy. */
#define ENG_OPTIN_KEY "optin:"
/* A bad optin.secret (too short) or optin.confirm_url (not http(s)) at
   open: TAILOR_ECONFIG naming the key. */
int eng_optin_check_config(const config *c, tailor_error *err);
/* The customer's unsubscribe link (optin.unsubscribe_url, signed), a new
   string, or NULL when links are off. */
char *eng_unsubscribe_link(tailor *t, const char *customer);
/* Whether a confirmation link's token is one to show the confirm button
   for (signed, not expired), as tailor_confirm says it; nothing changes. */
int eng_confirm_check(tailor *t, const char *token, tailor_error *err);
/* Whether `sig` is the signature of the customer's link: TAILOR_OK, or
   why not (links off, forged, cut), as tailor_unsubscribe says it. */
int eng_unsubscribe_check(tailor *t, const char *customer, const char *sig, tailor_error *err);
/* The address a confirmation row goes to, as a new string, or NULL with
   why in `why` (the request was confirmed, expired or erased since). */
char *eng_optin_recipient(tailor *t, json_t *vars, char *why, size_t n);

/*
** Run the strategies' on_event handler on events just appended and
** applied (not duplicates), and write what it schedules or cancels to the
** outbox, inside the caller's open transaction (engine/trigger.c).  A
** strategy error is logged and counted, never fails the events; a store
** error does (TAILOR_ESTORE, the caller rolls back).  The caller holds
** write_mu.
*/
int eng_run_triggers(tailor *t, ev *const *evs, size_t n, tailor_error *err);

/*
** The events on_event wants, from the strategies' `on_event_for` table
** ({view = "customers", item_upsert = "all", ...}: an event type, and
** "all" or "customers" for events that name a customer); wants[type] is
** 0 (not called), 1 (events naming a customer) or 2 (all).  Without the
** table every type is 2.  Must run inside lvm_pcall; a table that names
** an unknown type or another value is a Lua error that says which.
*/
void eng_on_event_for(struct lua_State *L, unsigned char wants[EV_TYPE_COUNT]);
/* The same, read from a state outside lvm_pcall; a table that fails (it
   was checked when the folder loaded) reads as every type wanted. */
void eng_wants_of(lvm *vm, unsigned char wants[EV_TYPE_COUNT]);

/* Check what the host reads of a loaded folder beyond compiling it (its
   on_event_for and caps); TAILOR_OK, or an error that names the file and what is
   wrong.  For loading and `tailor check`. */
int eng_strategies_check(lvm *vm, tailor_error *err);

/*
** Experiments (engine/experiment.c): the variant of `unit` among n weighted
** variants (an index, -1 when no weight is positive), deterministic;
** recording an exposure (h: eng_exposure_hash of the pair); writing
** buffered exposures to the store (eng_flush_exposures: the caller holds
** write_mu; eng_write_exposures takes it); whether enough are buffered to
** flush now.
*/
int eng_experiment_pick(const char *name, const char *unit,
                        const char *const *variants, const double *weights,
                        size_t n);
uint64_t eng_exposure_hash(const char *experiment, const char *unit);
void eng_expose(tailor *t, const char *experiment, const char *variant,
                const char *unit, uint64_t h);
void eng_flush_exposures(tailor *t);
void eng_write_exposures(tailor *t);
int eng_exposures_pending(tailor *t);
/* Forget which pairs were recorded (after an erasure, whose unit may be
   exposed again).  A dry run (eng_dry_running) records none. */
void eng_exposures_reset(tailor *t);
double eng_t_pvalue(double t, double df);
/* The t whose two-sided p-value at df is p (NAN outside (0, 1), df <= 0). */
double eng_t_quantile(double p, double df);
/* The 95% interval [*lo, *hi] of ka/na less kc/nc (Newcombe's, from Wilson
   intervals); na, nc > 0. */
void eng_conversion_ci95(double ka, double na, double kc, double nc, double *lo, double *hi);

/*
** A decision (engine/decide.c): run the handler of q->kind and write the
** answer, {"kind", "items" or "result", "strategy"} (or the fallback with
** "fallback" and "error"), as JSON text at the end of `out`.  Returns
** TAILOR_OK (a failing strategy still answers, with the fallback) or
** TAILOR_ENOMEM.  eng_request_limits() gives the limits requests to this
** engine are parsed with (its decide.max_k).
*/
struct strbuf;
int eng_decide(tailor *t, const dreq *q, struct strbuf *out, tailor_error *err);
void eng_request_limits(tailor *t, req_limits *lim);

/*
** Coupons and frequency caps (engine/coupon.c).  eng_caps is a strategy's
** `caps` table (per_day, per_campaign: contacts a visitor may get in the
** window, 0 for none; window_hours), read by eng_caps_read inside a call.
** eng_caps_over says whether one more contact of `campaign` (NULL: any)
** at time `at` (ms: now, or an email's due time) is over a cap
** ("per_day", "per_campaign") or NULL, counting the contacts within the
** window either side of `at`; `pending` contacts of this call are not in
** the store yet; pending emails whose key starts with `replacing` (NULL:
** none) are about to be replaced and do not count.  A campaign among the
** caps' `exempt` is never over a cap.
**
** eng_call is what one strategy call (a decision, an on_event) issued:
** eng_current points at it while the call runs, for tailor.coupon.
** eng_call_write stores its coupons, and for a popup the popup itself as
** a contact (unless a coupon of the call stands for it): in a transaction
** of its own, or in the committing thread's.  eng_coupons_redeem redeems
** the coupon_redeemed events of a batch in the caller's transaction
** (TAILOR_ENOTFOUND, TAILOR_EINVAL, TAILOR_EFIELD: the caller's batch is
** refused).
*/
#define ENG_CAPS_MAX_EXEMPT 8 /* campaigns a caps table may exempt */
typedef struct eng_caps {
  long per_day, per_campaign;
  int64_t window_ms;
  char exempt[ENG_CAPS_MAX_EXEMPT][64]; /* never held back (they count) */
  int n_exempt;
} eng_caps;

typedef struct eng_call {
  const char *customer, *anon;
  json_t *coupons; /* issued in the call: [{code, tier, ...}], or NULL */
  eng_caps caps;
  int caps_read;
  const char *capped; /* the cap that made tailor.coupon answer nil, or NULL */
} eng_call;

extern _Thread_local eng_call *eng_current;
/* Set on the thread of a dry run (engine/dryrun.c): tailor.coupon answers
   a made-up code and nothing is stored. */
extern _Thread_local int eng_dry_running;

#define ENG_COUPON_RANDOM 10 /* random characters of a code: 50 bits */

struct lua_State;
void eng_caps_read(struct lua_State *L, eng_caps *c);
/* The strategies' caps table as the folder loads: a field eng_caps_read
   does not read, or a value it would skip, is a Lua error that names the
   file and the field.  Must run inside lvm_pcall. */
void eng_caps_check(struct lua_State *L);
const char *eng_caps_over(tailor *t, const eng_caps *c, const char *customer,
                          const char *anon, const char *campaign, long pending, int64_t at,
                          const char *replacing);
int eng_coupon_issue(tailor *t, eng_call *call, const char *tier, double percent,
                     int64_t ttl_ms, char *code, size_t cap, int64_t *expires,
                     tailor_error *err);
int eng_call_write(tailor *t, eng_call *call, const char *popup, tailor_error *err);
void eng_call_clear(eng_call *call);
int eng_coupons_redeem(tailor *t, ev *const *evs, size_t n, tailor_error *err);

/* What a handler's ctx is built from. */
typedef struct lapi_ctx {
  const char *kind;       /* decision kind, or "on_event" */
  long k;
  const char *customer, *anon, *session;
  json_t *page, *context; /* borrowed; may be NULL */
  json_t *items;          /* the list to rank (kind rank), or NULL */
  json_t *exclude;        /* ids the page already shows, or NULL */
  int64_t now;            /* ctx.now (ms); 0: the time of the push */
} lapi_ctx;

/*
** Push the ctx a handler receives: kind, k, now, customer, session, page,
** context, and segments: ctx.segments.<name> runs the predicate of that
** name from the strategy's `segments` table on first use (true or false).
** Must be called inside lvm_pcall with the index read lock held.
*/
void lapi_push_ctx(lua_State *L, tailor *t, const lapi_ctx *c);

/* The same for a decision request, with its merchandising controls
   (core/request.h) as ctx.filter, ctx.pin, ctx.boost and ctx.bury;
   lapi_push_ctx gives those fields their empty defaults. */
void lapi_push_decide_ctx(lua_State *L, tailor *t, const lapi_ctx *c, const req_controls *ctl);

/* Installs the `tailor` global of the strategies' API (engine/lapi.c). */
void lapi_open(lua_State *L, void *engine);

/*
** Kernel rows kept in C until a strategy reads them (engine/lapi.c).  After
** lapi_lazy_rows, the kernels called in this call return such lists; the
** snapshot of the list at `idx` while it is untouched (no row made), else
** NULL.  Valid while the list lives.
*/
typedef struct lapi_row {
  double score;
  const char *id, *because; /* NULL: none (an id always, from a kernel) */
  uint32_t id_len, because_len;
} lapi_row;
typedef struct lapi_rows {
  size_t n;
  const char *reason; /* idx_reason_name: one for the list */
  int anchored;       /* a kernel whose rows may have `because` */
  size_t made;        /* rows 1..made are in the list (read from the front) */
  lapi_row row[];     /* then the names they point to */
} lapi_rows;
void lapi_lazy_rows(lua_State *L);
const lapi_rows *lapi_rows_of(lua_State *L, int idx);

#endif /* TAILOR_ENGINE_H */
