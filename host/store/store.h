/*
** store.h: the store, tailor's truth: the append-only event log, and the
** current state of the catalog, customers, identities and the outbox, all
** written in the same transaction as the events that changed them.  The
** in-memory indexes are a cache rebuilt from here.
**
** One interface, two implementations chosen by where the store is
** (store_open): a path is an SQLite file in WAL mode (store.c, the
** embedded default; ":memory:" a private one), a "postgresql://" URL a
** PostgreSQL database that several tailor nodes share (postgres.c).  Each
** function here dispatches through the handle's table of functions
** (store_impl.h); the engine never learns which one it has.
**
** A store handle is not thread-safe: the engine serializes writers, and
** readers open their own handle with store_open_reader().
*/
#ifndef TAILOR_STORE_H
#define TAILOR_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "tailor.h"

typedef struct store store;

/* The schema version this build writes; older stores are migrated. */
#define STORE_SCHEMA_VERSION 10

typedef struct store_options {
  int synchronous_full;  /* 1: PRAGMA synchronous=FULL (survives power loss);
                            0: NORMAL (survives a crash of the process) */
  int busy_timeout_ms;   /* how long to wait for another writer */
  int readonly;          /* open without writing (no migration) */
  int no_lock;           /* SQLite: without <db>.lock (a reader beside the
                            process that writes; store.c, sq_lock) */
} store_options;

#define STORE_DEFAULT_BUSY_TIMEOUT_MS 5000

/*
** Open (creating and migrating as needed) the store at `where`: a
** "postgresql://" (or "postgres://") URL for PostgreSQL, any other string
** a SQLite file (":memory:" for a private in-memory store).  Returns NULL
** with `err` filled when it cannot be opened, is not a tailor store, or
** comes from a newer build.
*/
store *store_open(const char *where, const store_options *opt, tailor_error *err);

/* Whether `where` names a PostgreSQL database rather than a SQLite file. */
int store_is_url(const char *where);

/* Whether there is a store at `where` to read (a SQLite file that exists;
   a URL is assumed to). */
int store_exists(const char *where);

/* The name of the implementation: "sqlite" or "postgresql". */
const char *store_kind(store *s);

/*
** Where the index checkpoint of this store goes when the configuration
** says "auto", as a new string the caller frees; NULL when there is none
** (an in-memory store; a shared store, where each node names its own).
*/
char *store_checkpoint_path(store *s);

/*
** A second handle for reads that must not wait for the writer's commit
** (stats, profiles, the outbox), or NULL when the store has none (an
** in-memory SQLite store).  The caller closes it.
*/
store *store_open_reader(store *s);

/*
** Whether other processes append to this log (PostgreSQL): then the index
** follows the log with store_scan() and store_wait() instead of applying
** its own appends directly.
*/
int store_shared(store *s);

/*
** Wait up to `timeout_ms` for other writers' events (a shared store's
** notifications).  Returns 1 when woken by one, 0 on timeout, a negative
** code when the connection failed.  A store that is not shared returns 0
** at once.
*/
int store_wait(store *s, int timeout_ms, tailor_error *err);

/* Whether `seq` is a position this log has reached (0 always is): a
   checkpoint past it comes from another database or a newer backup. */
int store_has_seq(store *s, int64_t seq);

/* What tells the event at position `seq` from one that took the same seq
   in another history of the log, mixed into a checkpoint's fingerprint:
   on PostgreSQL a hash of its transaction id, time and type (after a
   restore, the events written in place of the lost ones take their seqs
   again).  0 for SQLite (its one writer removes a checkpoint ahead of a
   restored store at start, engine.c) and for seq 0.  TAILOR_OK, or a
   code with `err` filled. */
int store_seq_token(store *s, int64_t seq, uint64_t *token, tailor_error *err);

/* Whether an event with message id `msg_id` is stored (a retry of it is a
   duplicate): 1, 0, or -1 when the store cannot say. */
int store_has_msg(store *s, const char *msg_id);

/* Events in the log after position `after` (committed, applied or not yet
   safe to apply): how far a follower is behind; 0 for a store that is not
   shared, -1 when the store cannot say. */
int64_t store_log_behind(store *s, int64_t after);

/* Close the store; NULL is a no-op. */
void store_close(store *s);

/* The schema version of the open store. */
int store_schema_version(store *s);

/*
** Transactions.  store_begin() opens the write transaction that
** store_append_rows(), the outbox writes and anything else join;
** store_commit() makes it durable (and rolls back when it cannot);
** store_rollback() drops it.  An event, its state changes and the outbox
** rows its triggers schedule commit together or not at all.
*/
int store_begin(store *s, tailor_error *err);
int store_commit(store *s, tailor_error *err);
void store_rollback(store *s);

/*
** Inside a transaction: append `n` events and apply their effects on the
** items, customers and identities tables.  `seqs` (may be NULL) receives
** their sequence numbers.  An event whose message id is already stored is
** not appended again: its `dup` is set and its seq is 0.  On failure the
** caller rolls back.
*/
int store_append_rows(store *s, ev *const *evs, size_t n, int64_t *seqs,
                      tailor_error *err);

/*
** store_append_rows() and store_commit() of the transaction store_begin()
** opened, in as few round trips as the store can (on PostgreSQL one, for
** a batch that writes nothing beside the log).  TAILOR_OK: durable;
** otherwise the transaction is ended and nothing of it kept, except on
** TAILOR_EIO (the store may have committed it).
*/
int store_append_commit(store *s, ev *const *evs, size_t n, int64_t *seqs,
                        tailor_error *err);

/* store_append_rows() in a transaction of its own: durable on TAILOR_OK,
   nothing of the batch kept otherwise. */
int store_append(store *s, ev *const *evs, size_t n, int64_t *seqs,
                 tailor_error *err);

/* The highest sequence number in the log; 0 when empty. */
int64_t store_last_seq(store *s);

/*
** Call `fn` for every event after position `after` (the seq of the last
** event applied; 0 for the start), in log order.  SQLite's log order is seq
** order.  PostgreSQL's is (transaction id, seq) of the rows whose
** transactions can no longer change (below the oldest one running), so an
** event arrives only once every event before it in the order is there; a
** seq there is a position, not a count.  The `ev` is valid during the call
** only.  `fn` returns 0 to go on, nonzero to stop
** (that value is returned).  Returns TAILOR_OK, the callback's value, or a
** negative code with `err` filled.
*/
typedef int (*store_event_fn)(void *ud, int64_t seq, const ev *e);

/*
** A stored event that today's parser refuses: written by an older build
** before a check existed (a price past the bound it has now).  By default
** a scan stops there with the error, which leaves every command unable to
** open the store; with a skip function the row is handed to it (its seq
** and why) and the scan goes on without it.  The row stays in the store
** (an export or erasure still sees it); only the index passes it over.
*/
typedef void (*store_skip_fn)(void *ud, int64_t seq, const char *why);
/* (The scan's store_event_fn then gets the row's seq with a NULL event, so
   its position moves past it; only a store with a skip function does so.) */
void store_on_unreadable(store *s, store_skip_fn fn, void *ud);
int store_scan(store *s, int64_t after, store_event_fn fn, void *ud,
               tailor_error *err);

/*
** store_scan for a writer that holds some of the events it reads: `known`
** answers the typed event of a seq it wrote (NULL for the others), which
** is handed to `fn` as it is instead of being parsed again from the
** stored text.  `known` is asked with seqs in log order.  One of the
** writer's own events that another node erased before the scan reached it
** is handed to `fn` with a NULL event: nothing to apply, but reached.
*/
typedef const ev *(*store_known_fn)(void *ud, int64_t seq);
int store_scan_known(store *s, int64_t after, store_event_fn fn, void *ud,
                     store_known_fn known, tailor_error *err);

/*
** Triggers on a shared log (PostgreSQL), where the events commit before
** their triggers run (they run once the events are applied in the log's
** order): with store_triggers_owed(s, 1), the events a node appends are
** marked as owing their triggers, and the transaction that writes the
** triggers' outbox rows clears the mark (store_triggers_done).  A node that
** dies between the two leaves the mark, and any node finds those events
** with store_triggers_overdue (marked more than after_s seconds ago, at
** most max, locked against the other nodes until the caller's transaction
** ends) to run their triggers again; the outbox rows' idempotency keys
** keep a second run from scheduling anything twice.  store_triggers_done
** clears the mark with the transaction's commit, which then need not wait
** for the disk (losing it leaves the events owed), or with the next
** transaction's when this one wrote nothing; a transaction that is rolled
** back or whose commit fails clears nothing.  store_triggers_flush clears
** marks that waited older_ms or more for one.  On SQLite the triggers are
** in the events' transaction: these do nothing.
*/
void store_triggers_owed(store *s, int on);
int store_triggers_done(store *s, const int64_t *seqs, size_t n, tailor_error *err);
int store_triggers_flush(store *s, int older_ms, tailor_error *err);
int store_triggers_overdue(store *s, int after_s, int max, store_event_fn fn, void *ud,
                           tailor_error *err);

/* Event counts by type, as a JSON object {"view": 10, ...}; new reference. */
json_t *store_event_counts(store *s);

/* Number of rows in `table` ("items", "customers", "identities",
   "outbox", "events"); -1 for an unknown table. */
int64_t store_count(store *s, const char *table);

/* The current catalog object of an item, or NULL; new reference. */
json_t *store_item(store *s, const char *id);

/* The customer profile (email, phone, consent, attrs), or NULL; new ref. */
json_t *store_customer(store *s, const char *id);

/* The customer an anonymous id is linked to, as a new string the caller
   frees, or NULL. */
char *store_identity(store *s, const char *anon);

/*
** Erase a customer (the right to erasure): their events, those of the
** anonymous ids linked to them that name no other customer and those of
** their sessions that name no one (sq.h's SQ_EVENTS_OF), their experiment exposures, coupons, contacts
** (frequency caps), consent records (asked for them, one of those ids or
** their address), profile, identities, outbox rows and delivery ledger,
** in one transaction; then the WAL is
** checkpointed and truncated, so no copy of the erased rows is left in the
** database or its WAL (secure_delete zeroes freed space).  *events (may be
** NULL) receives the events deleted, *sessions (may be NULL) a new JSON
** array of the session ids erased, for the index.  Returns TAILOR_OK (also
** when nothing was known of them).
*/
int store_forget(store *s, const char *customer, int64_t *events, json_t **sessions,
                 tailor_error *err);

/*
** All the store holds on one customer (the right of access), as a new JSON
** object: "profile" (the customers row: email, phone, consent, attributes),
** "identities" (anonymous ids linked to them), "events" (every event of
** theirs, of those ids and of their sessions, as stored, with "seq"),
** "outbox" (scheduled messages), "deliveries" (the ledger of what was
** sent), "exposures" (experiments they were in), "coupons" and "contacts"
** (what frequency caps count), "consents" (email capture's records, pending
** and confirmed).  NULL with `err` on
** failure.  The rows are the same that store_forget() deletes.
*/
json_t *store_export_customer(store *s, const char *customer, tailor_error *err);

/*
** Outbox: side effects decided by strategies (emails, webhooks).  A row is
** unique by its idempotency key; adding an existing key is a no-op that
** returns TAILOR_OK with *added = 0.
*/
typedef struct store_outbox_row {
  const char *key;       /* idempotency key */
  const char *customer;  /* or NULL */
  const char *channel;   /* "email", "webhook", ... */
  const char *template_; /* template or trigger name */
  const char *vars;      /* JSON object text, or NULL */
  int64_t due;           /* ms since epoch */
} store_outbox_row;

int store_outbox_add(store *s, const store_outbox_row *row, int *added,
                     tailor_error *err);

/* Cancel the pending (or sending) outbox row with this key; *cancelled (may be NULL)
   receives 1 when there was one. */
int store_outbox_cancel(store *s, const char *key, int *cancelled,
                        tailor_error *err);

/* Cancel every pending or sending outbox row whose key starts with `prefix`;
   *cancelled (may be NULL) receives how many. */
int store_outbox_cancel_prefix(store *s, const char *prefix, int *cancelled,
                               tailor_error *err);

/* Outbox rows of a customer's channel due in [from, to] (ms) that are
   pending, sending or sent, leaving out pending rows whose key starts with
   `except` (NULL: none), the ones a superseding row replaces: what the
   weekly cap counts. */
int64_t store_outbox_due(store *s, const char *customer, const char *channel, int64_t from,
                         int64_t to, const char *except);

/* Outbox rows as a JSON array, newest first; `state` and `customer` filter
   when not NULL; at most `limit`.  New reference.  Delivery's side of the
   outbox (claims, retries, the ledger) is in store/outbox.h. */
json_t *store_outbox_list(store *s, const char *state, const char *customer,
                          int limit);

/* Record experiment exposures; a unit's first exposure to an experiment is
   kept, later ones ignored.  One transaction. */
typedef struct store_exposure {
  const char *experiment, *variant, *unit;
  int64_t ts;
} store_exposure;
int store_exposures_add(store *s, const store_exposure *rows, size_t n, tailor_error *err);

/*
** Each exposed unit's outcomes within `window_ms` after its first exposure:
** a JSON array of [experiment, variant, orders, revenue, rec_clicks,
** add_to_carts], sorted by experiment and variant.  A unit matches events
** by customer or anonymous id.  New reference, NULL on failure.
*/
json_t *store_exposure_outcomes(store *s, int64_t window_ms, tailor_error *err);

/* The value stored under `key` in the meta table (small state that modules
   keep between runs, such as what an audience sync last pushed), or NULL
   when there is none; the caller frees it. */
char *store_meta_get(store *s, const char *key);

/* Store `value` under `key` (replacing it); NULL deletes the key. */
int store_meta_set(store *s, const char *key, const char *value, tailor_error *err);

/*
** Coupons (store/coupon.c): unique single-use codes with an expiry, issued
** by strategies (tailor.coupon) and redeemed once by the shop's checkout.
*/
/* Add issued coupons (a JSON array of {code, tier, percent, customer,
   anon, issued, expires}), inside the caller's transaction. */
int store_coupons_add(store *s, json_t *rows, tailor_error *err);

/*
** The coupon `code` as a new JSON object {code, tier, percent, customer,
** anon, issued, expires, redeemed, order_id}, or NULL with `err`:
** TAILOR_ENOTFOUND for an unknown code.  No state is checked here.
*/
json_t *store_coupon_get(store *s, const char *code, tailor_error *err);

/*
** Inside the caller's transaction: mark `code` redeemed at `now` by
** `order_id` (may be NULL).  TAILOR_ENOTFOUND for an unknown code,
** TAILOR_EINVAL for one already redeemed or expired at `now` (the message
** says which and when); nothing is changed then.
*/
int store_coupon_redeem(store *s, const char *code, int64_t now, const char *order_id,
                        tailor_error *err);

/* Issued, redeemed and expired (unredeemed) coupons at `now`, by tier, and
   by tier within each experiment variant the coupon's holder was exposed
   to (a coupon once per experiment, in its holder's first arm): {"tiers": {tier: {issued, redeemed, expired}}, "experiments":
   {experiment: {variant: {tier: {issued, redeemed}}}}}.  New reference. */
json_t *store_coupon_report(store *s, int64_t now);

/*
** Contacts a frequency cap counts (engine/coupon.c): a popup shown to the
** customer, or without one to the anonymous id, under a campaign; emails
** and coupons are counted from the outbox and the coupons tables.  The
** row keeps which of the two it names: an anonymous id is whatever a
** browser sends, so one equal to a customer's id is not that customer.
** Inside the caller's transaction.
*/
int store_contact_add(store *s, const char *customer, const char *anon, const char *channel,
                      const char *campaign, int64_t ts, tailor_error *err);

/* Contacts of the person (customer and/or anon id) from `from` to `to`
   (ms): popups recorded and coupons issued then, and email rows pending,
   sending or sent that are due then (an email reaches the visitor when it
   is sent, not when it is scheduled); only those of `campaign` (a popup's
   name, a coupon's tier, an email's template) when it is not NULL.
   Pending rows whose key starts with `replacing` are left out: the rows a
   superseding email moves (NULL: none). */
int64_t store_contacts_between(store *s, const char *customer, const char *anon,
                               const char *campaign, int64_t from, int64_t to,
                               const char *replacing);

/* Inside the caller's transaction on a shared store: wait for, and hold
   until it ends, the person's lock (the customer the ids link to, else the
   anonymous id), so that two nodes' caps are checked and written one after
   the other.  Returns 1 when it locked (a shared store), 0 when there is
   nothing to lock (one writer), or a negative code with err. */
int store_lock_person(store *s, const char *customer, const char *anon, tailor_error *err);

/* The same for the people of n pairs of ids (customers[i] or anons[i]
   may be NULL), locked in the order of their locks' keys, so that two
   nodes locking overlapping sets wait for each other instead of
   deadlocking: the triggers of a batch of events (engine/trigger.c). */
int store_lock_people(store *s, const char *const *customers, const char *const *anons,
                      size_t n, tailor_error *err);

/*
** Consents (store/consent.c): an address asked for with double opt-in
** (engine/optin.c).  A row is pending until its confirmation link is
** followed, then confirmed and kept as the record of the consent (purpose,
** the text the visitor was shown, where, when) until the person is erased.
** On PostgreSQL the records are shared: a link sent by one node is
** confirmed on any.
*/
/* Inside the caller's transaction: add a pending request, a JSON object
   {id, customer, anon, email, purpose, text, source, requested, expires}
   (ms), and delete the pending requests that expired before it: an
   unconfirmed address is kept no longer than its link lives. */
int store_consent_add(store *s, json_t *row, tailor_error *err);

/* The request `id` as a new JSON object (the row's columns; confirmed is
   null while pending), or NULL with `err`: TAILOR_ENOTFOUND when there is
   none (never made, expired and deleted, or erased). */
json_t *store_consent_get(store *s, const char *id, tailor_error *err);

/* Inside the caller's transaction: mark the pending request `id`
   confirmed at `now`.  TAILOR_ENOTFOUND when there is none, TAILOR_EINVAL
   when it was confirmed before or has expired (the message says which
   and when); nothing changes then. */
int store_consent_confirm(store *s, const char *id, int64_t now, tailor_error *err);

/* Requests made for a mailbox since `since` (ms): what a day's limit
   counts.  A mailbox is a lower-case address without its "+tag", and at
   Gmail (gmail.com, googlemail.com) without the local part's dots, as
   "ada@gmail.com": the addresses that reach one inbox.
   Called inside the transaction that adds the next request, a store
   shared by nodes (PostgreSQL) also locks the address until that
   transaction ends, so two nodes cannot both count under the limit. */
int64_t store_consents_since(store *s, const char *mailbox, int64_t since);

/* Run SQL with no result in the store's own dialect (migrations,
   maintenance, tests). */
int store_exec(store *s, const char *sql, tailor_error *err);

/*
** SQLite only, for the files that work on its handle (store.c,
** outbox.c, coupon.c, consent.c),
** benchmarks and tests.  store_db is NULL for any other store: a caller
** says the feature needs SQLite rather than crash.  store_fail fills `err`
** with `code` and "<what>: <SQLite's message for the last call on db>"
** ("cannot allocate" when db is NULL) and returns `code`.
*/
struct sqlite3 *store_db(store *s);
int store_fail(tailor_error *err, int code, struct sqlite3 *db, const char *what);

#endif /* TAILOR_STORE_H */
