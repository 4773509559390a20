/*
** tailor.h: the public API of tailor, a personalization engine for shops.
**
** An engine (`tailor`) owns a store (SQLite), in-memory indexes rebuilt from
** the store on open, and Lua strategies loaded from a folder.  Events go in
** as JSON text; decisions come out as JSON text.
**
** Threads: every function may be called from any thread.  Decisions run in
** parallel (each calling thread gets its own Lua state, created on first use
** and released when the thread exits or the engine closes); ingestion is
** serialized inside the engine.  tailor_close() must not race with other
** calls on the same engine.
**
** Errors: functions return TAILOR_OK (0) or a negative tailor_code; when the
** caller passes a tailor_error, it is filled with the code, the line of a
** batch and the field at fault where they apply, and a message that says
** what is wrong and where.  Pass NULL to ignore the details.
**
** Ownership: strings returned through an out-parameter are allocated by
** tailor and freed by the caller with tailor_free().  Strings passed in are
** borrowed for the duration of the call only.
*/
#ifndef TAILOR_H
#define TAILOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TAILOR_BUILDING) && defined(__GNUC__)
#define TAILOR_EXTERN __attribute__((visibility("default")))
#else
#define TAILOR_EXTERN
#endif

#define TAILOR_VERSION_MAJOR 0
#define TAILOR_VERSION_MINOR 1
#define TAILOR_VERSION_PATCH 0
#define TAILOR_VERSION_STRING "0.1.0"
/* One number that orders versions: 0x00MMmmpp. */
#define TAILOR_VERSION_HEX \
  ((TAILOR_VERSION_MAJOR << 16) | (TAILOR_VERSION_MINOR << 8) | TAILOR_VERSION_PATCH)

/*
** Error codes: name, value, message.  One table, so the enum, the names and
** the messages never drift apart.
*/
#define TAILOR_ERRNO_MAP(X)                                             \
  X(OK, 0, "ok")                                                        \
  X(EINVAL, -1, "invalid argument")                                     \
  X(EPARSE, -2, "malformed JSON")                                       \
  X(EFIELD, -3, "missing or mistyped field")                            \
  X(ETYPE, -4, "unknown event type")                                    \
  X(ETOOBIG, -5, "input too large")                                     \
  X(EUTF8, -6, "invalid UTF-8")                                         \
  X(ETIME, -7, "unparseable timestamp")                                 \
  X(ESTORE, -8, "store error")                                          \
  X(ESTRATEGY, -9, "strategy error")                                    \
  X(ENOMEM, -10, "out of memory")                                       \
  X(EIO, -11, "input/output error")                                     \
  X(ECONFIG, -12, "bad configuration")                                  \
  X(ENOTFOUND, -13, "not found")                                        \
  X(EDENIED, -14, "permission denied")                                  \
  X(EBUDGET, -15, "strategy ran out of its instruction budget")         \
  X(ELUAMEM, -16, "strategy ran out of memory")                         \
  X(EUNSUPPORTED, -17, "not supported")

typedef enum tailor_code {
#define TAILOR_ENUM_(name, value, msg) TAILOR_##name = (value),
  TAILOR_ERRNO_MAP(TAILOR_ENUM_)
#undef TAILOR_ENUM_
  TAILOR_CODE_MIN_ = -17
} tailor_code;

/* Details of a failure; filled by the function that failed. */
typedef struct tailor_error {
  int code;           /* a tailor_code; TAILOR_OK when nothing failed */
  long line;          /* 1-based line of an NDJSON batch; 0 when not a batch */
  char field[64];     /* the field at fault ("items[2].price"), or "" */
  char message[512];  /* what is wrong and where, one line, no newline */
} tailor_error;

typedef struct tailor tailor; /* an engine; opaque */

/* The library's version string ("0.1.0"); static, never freed. */
TAILOR_EXTERN const char *tailor_version(void);

/* The message of a tailor_code ("malformed JSON"); static, never freed. */
TAILOR_EXTERN const char *tailor_strerror(int code);

/* The name of a tailor_code ("EPARSE"); static, never freed. */
TAILOR_EXTERN const char *tailor_errname(int code);

/*
** Open an engine.  `config_json` is a JSON object (NULL or "" for the
** defaults) whose keys are documented in docs/configuration.md, e.g.
**   {"db": "shop.db", "strategies": "strategies",
**    "lua": {"instruction_budget": 1000000, "memory_limit_mb": 32}}
** "db": ":memory:" keeps everything in memory (tests, evaluation).
** Opening creates or migrates the store, then rebuilds the indexes from it.
** Returns the engine, or NULL with `err` filled (an unknown config key, a
** store that cannot be opened, a strategy folder that does not compile).
** The caller owns the engine and releases it with tailor_close().
*/
TAILOR_EXTERN tailor *tailor_open(const char *config_json, tailor_error *err);

/* Close an engine: flush and close the store, free every Lua state. */
TAILOR_EXTERN void tailor_close(tailor *t);

/*
** Ingest one event given as a JSON object (tailor's own event format, or a
** Segment or GA4 e-commerce event).  Returns TAILOR_OK once the event is
** durable in the store and applied to the indexes; otherwise nothing was
** stored and `err` says why (the field at fault in err->field).
*/
TAILOR_EXTERN int tailor_ingest(tailor *t, const char *json, size_t len,
                                tailor_error *err);

/*
** Called once per rejected line of a batch, in line order.  `err` is
** borrowed for the duration of the call.
*/
typedef void (*tailor_reject_fn)(void *ud, const tailor_error *err);

/*
** Ingest a batch of NDJSON events (one JSON object a line; blank lines are
** skipped).  Valid events are kept and committed together (one transaction,
** durable when the call returns), except events the engine may refuse for
** what they say (a coupon redemption, a quiz answer, a pref_removed), each
** committed alone; each invalid line, and each such event refused (a spent
** coupon), is reported to `on_reject` (may be NULL) with its line number.
** `accepted` and `rejected` (may be NULL) receive the counts.  Returns
** TAILOR_OK when the batch was processed, even with rejected lines; a
** negative code when the store failed, in which case `accepted` events
** (those before the failing transaction) are stored and the rest are not.
*/
TAILOR_EXTERN int tailor_ingest_batch(tailor *t, const char *ndjson, size_t len,
                                      tailor_reject_fn on_reject, void *ud,
                                      size_t *accepted, size_t *rejected);

/*
** Make a decision.  `request_json` is a JSON object:
**   {"kind": "recommend", "customer": "c42", "session": "s1",
**    "page": {"type": "product", "item": "sku-1"}, "k": 8}
** `kind` names the strategy handler (recommend, popup, discount, audiences,
** rank).  On success `*response` receives a NUL-terminated JSON object the
** caller frees with tailor_free(), and `*response_len` (may be NULL) its
** length.  A strategy that fails or runs out of budget is not an error for
** the caller: the response carries the configured fallback with
** "fallback": true and the strategy's error; the error is counted and
** logged.  A malformed request is an error (TAILOR_EPARSE, TAILOR_EFIELD).
*/
TAILOR_EXTERN int tailor_decide(tailor *t, const char *request_json, size_t len,
                                char **response, size_t *response_len,
                                tailor_error *err);

/* Flags for tailor_customer(). */
enum { TAILOR_PII = 1 /* include email and phone (admin use only) */ };

/*
** What tailor knows of a customer (or anonymous id) as a JSON object: the
** stored profile (consent, attributes; email and phone only with
** TAILOR_PII) and the index's figures (orders, revenue, lifecycle, recent
** views, cart, purchases, the preferences they gave as tailor_prefs()
** lists them).  `*json` is freed with tailor_free().  Returns
** TAILOR_ENOTFOUND when the id is unknown.
*/
TAILOR_EXTERN int tailor_customer(tailor *t, const char *id, int flags,
                                  char **json, tailor_error *err);

/*
** The preferences a visitor gave on purpose (quiz answers), for a
** preference centre: {"prefs": {"<key>": {"value": ..., "source":
** "quiz:<id>", "time": <ms>}, ...}} of the visitor a decision with these
** ids is about (the customer when tailor knows them, else the anonymous
** visitor; either may be NULL); no keys for a visitor tailor does not
** know or who gave none.  A quiz_answer event changes one, a
** pref_removed event ({"key": ...}) takes it back (docs/events.md).  `*json` is freed with tailor_free().  TAILOR_EINVAL
** when both ids are NULL.
*/
TAILOR_EXTERN int tailor_prefs(tailor *t, const char *customer, const char *anon,
                               char **json, tailor_error *err);

/*
** The coupon `code` as the shop's checkout needs it, a JSON object: code,
** tier, percent (when the strategy announced one), customer (when issued
** to a known customer), issued, expires, redeemed and order_id (once
** redeemed), and "valid": true, or false with "reason" ("redeemed",
** "expired").  TAILOR_ENOTFOUND for a code never issued.  Checking
** changes nothing; a coupon_redeemed event ({"type": "coupon_redeemed",
** "code": ..., "order_id": ...}) redeems it, once.
*/
TAILOR_EXTERN int tailor_coupon_check(tailor *t, const char *code, char **json,
                                      tailor_error *err);

/*
** Email capture with double opt-in.  tailor_subscribe() records a pending
** request for an address and schedules its confirmation email (template
** "confirm_email" on the optin.channel channel, delivered as any outbox
** row, tailor_deliver_due) with a link to optin.confirm_url signed with
** optin.secret; the address is stored on no profile yet.  `request_json`:
**   {"email": "ada@example.com", "anon": "v1" or "customer": "c1",
**    "purpose": "newsletter", "text": "the consent text the visitor saw",
**    "source": "popup:newsletter_10"}
** (source optional, "api" by default).  `*json`: {"status": "pending",
** "expires": ms}.  Errors: TAILOR_EFIELD for a missing, mistyped or
** unknown field, TAILOR_EINVAL for an address that is none (the message
** says why) or one sent DEF_OPTIN_MAX_PER_ADDRESS (3) confirmations within
** a day, TAILOR_EUNSUPPORTED when email capture is off (no optin.secret or
** optin.confirm_url) or the store is not SQLite; nothing is stored then.
**
** tailor_confirm() takes the link's token ("<id>.<expiry>.<signature>")
** and, only if it is signed with optin.secret, not expired and its request
** still pending, stores the address on the customer with consent to email
** (for an anonymous visitor, on the customer "sub-<24 hex digits>" linked
** to the visitor), records the consent (purpose, text, source, times; kept
** until tailor_forget) and hands on_event a consent event with
** props.double_opt_in, in one transaction.  `*json`: {"confirmed": true,
** "customer", "email", "purpose", "source", "at"}.  A forged, malformed,
** expired or used link is TAILOR_EINVAL with a message that says which, a
** request that is gone TAILOR_ENOTFOUND; nothing changes then.
*/
TAILOR_EXTERN int tailor_subscribe(tailor *t, const char *request_json, size_t len,
                                   char **json, tailor_error *err);
TAILOR_EXTERN int tailor_confirm(tailor *t, const char *token, char **json,
                                 tailor_error *err);

/*
** Every email but a double opt-in confirmation carries an unsubscribe link
** when optin.unsubscribe_url is set: the variable `unsubscribe_url`,
** <optin.unsubscribe_url>?c=<customer>&s=<signature>, signed with
** optin.secret (the smtp plugin also puts it in List-Unsubscribe, with
** List-Unsubscribe-Post for one-click).  tailor_unsubscribe() takes the
** link's customer (decoded) and signature and, if the signature is the
** secret's, records a consent event for the customer with marketing false
** (props.source "unsubscribe"): no retargeting audience and no email but a
** confirmation from then on.  A forged or cut link is TAILOR_EINVAL,
** links that are off TAILOR_EUNSUPPORTED; nothing changes then.
*/
TAILOR_EXTERN int tailor_unsubscribe(tailor *t, const char *customer, const char *signature,
                                     tailor_error *err);

/*
** Everything tailor holds on one customer (GDPR right of access) as a JSON
** object: the stored profile with email and phone, linked anonymous ids,
** every event of theirs (and of those ids and sessions) as stored, the
** outbox and delivery ledger, experiment exposures, coupons and the
** contacts frequency caps count, email capture's consent records, and the
** index's
** figures ("index": what tailor_customer() gives, or null).  What
** tailor_forget() erases is exactly what this lists.  `*json` is freed with
** tailor_free().  An unknown customer gives an empty export, not an error.
*/
TAILOR_EXTERN int tailor_export_customer(tailor *t, const char *customer, char **json,
                                         tailor_error *err);

/*
** Erase a customer (GDPR right to erasure): their events, those of the
** anonymous ids linked to them and of their sessions, their profile,
** identities, outbox rows, delivery ledger, experiment exposures and
** consent records (also those that name their address) are
** deleted from the store (securely, in one transaction, the WAL truncated
** after), their in-memory profile and session ids are cleared and the
** checkpoint is written again, so that no copy of them is left once the
** call returns.  Anonymous aggregates they
** contributed to (co-occurrence counts, trending) are kept.  `*erased`
** (may be NULL) receives the number of events deleted.  Erasing an unknown
** customer is not an error.
*/
TAILOR_EXTERN int tailor_forget(tailor *t, const char *customer,
                                int64_t *erased, tailor_error *err);

/*
** The outbox: side effects strategies scheduled (emails, webhooks), newest
** first, as a JSON array of {id, key, customer, channel, template, vars,
** due, state, attempts, last_error, created, next_at, updated}; `state`
** ("pending", "sending", "sent", "cancelled", "dead") and `customer` filter
** when not NULL; at most 1000 rows.  `next_at` is when a row that failed is
** tried again (0: as soon as due).  `*json` is freed with tailor_free().
*/
TAILOR_EXTERN int tailor_outbox_list(tailor *t, const char *state,
                                     const char *customer, char **json,
                                     tailor_error *err);

/*
** Deliver what is due: claim up to `max` (1 to 10000) outbox rows whose
** time has come and whose channel a loaded plugin provides, ask the
** strategies' on_due(ctx, row) handler whether each still applies, check
** email consent and the weekly cap again, and hand each to its channel.
** A row that fails is tried again with exponential backoff and jitter
** (delivery.backoff_base_ms, delivery.backoff_max_ms) and goes "dead" with
** its last error after delivery.max_attempts tries; a key that reached a
** channel is never sent to it again.  Rows of channels no plugin provides
** stay pending.  `*sent` (may be NULL) receives how many went out.
**
** The library starts no thread for this: call it periodically from a
** thread of yours (`tailor serve` does, every server.deliver_interval_ms).
** It blocks while channels send (each bounded by its plugin's timeouts),
** holding no engine lock meanwhile, so decisions and ingestion go on.
** Calls from several threads or processes never take the same row.
** Returns TAILOR_OK, or a negative code when the store failed.
*/
TAILOR_EXTERN int tailor_deliver_due(tailor *t, int max, int *sent,
                                     tailor_error *err);

/* How many delivery channels the loaded plugins provide (0: tailor has
   nothing to send through; rows wait in the outbox). */
TAILOR_EXTERN int tailor_delivery_channels(tailor *t);

/*
** An operator's retry: the row with `key` becomes pending and due now,
** its attempts reset (from dead or cancelled, or a pending row waiting for
** its next try); `key` NULL retries every dead row.  `*changed` (may be
** NULL) receives how many rows changed.  TAILOR_ENOTFOUND for an unknown
** key; TAILOR_EDENIED for a row already sent (never twice) or being sent.
*/
TAILOR_EXTERN int tailor_outbox_retry(tailor *t, const char *key, int *changed,
                                      tailor_error *err);

/*
** Delete outbox rows in a final state ("sent", "cancelled" or "dead"; NULL
** for all three) last changed more than `older_than_ms` ago.  Pending rows
** are never purged, and the record of what was sent is kept, so a purged
** key is still never sent twice.  `*purged` (may be NULL) receives the
** count.
*/
TAILOR_EXTERN int tailor_outbox_purge(tailor *t, const char *state,
                                      int64_t older_than_ms, int64_t *purged,
                                      tailor_error *err);

/*
** The experiments report as a JSON array, one entry per experiment:
** {experiment, control, window_days, variants: [{variant, exposures,
** conversion, revenue_per_visitor, click_rate, cart_rate, and against
** control: conversion_uplift, conversion_diff_ci95, conversion_p_value
** (two-proportion z-test), revenue_uplift, revenue_diff_ci95,
** revenue_p_value (Welch's t-test)}]}.  Outcomes count within
** `window_days` after a unit's first exposure.  `*json` is freed with
** tailor_free().
*/
TAILOR_EXTERN int tailor_report_experiments(tailor *t, int window_days,
                                            char **json, tailor_error *err);

/*
** Members of a recency audience.  The audiences partition the people seen
** within the longest window of index.audience_days ("2,7,14"), so nobody
** is in two: "buyers" ordered within the longest window (`days` 14);
** "cart_abandoners" did not, were seen within the shortest window (`days`
** 2) and have items in the cart; "visitors" are everyone else by when they
** were last seen, in the bands between the windows ((0,2], (2,7], (7,14]
** days), `days` naming a band's upper end.  Another audience or `days` is
** TAILOR_EINVAL with the audiences listed.  `fn` is called once per member
** with the customer id (NULL for an anonymous visitor), the anonymous id
** (NULL when unknown), and, when `with_email` is set, the customer's email
** if they consented to email (else NULL).  The strings are borrowed for the
** call.  `*count` (may be NULL) receives the number of members.
*/
typedef void (*tailor_member_fn)(void *ud, const char *customer,
                                 const char *anon, const char *email);
TAILOR_EXTERN int tailor_audience_members(tailor *t, const char *audience, int days,
                                          int with_email, tailor_member_fn fn,
                                          void *ud, size_t *count,
                                          tailor_error *err);

/*
** An audience's members as text, what `tailor audiences export` writes and
** the console downloads: one member a line, NDJSON ({"customer", "anon",
** "email_sha256"}, the keys it has) or with TAILOR_EXPORT_CSV a header
** "customer,anon,email_sha256" and CSV rows; with
** TAILOR_EXPORT_HASHED_EMAILS the SHA-256 (64 hex digits) of the email,
** trimmed and lower case, of customers who consented to email (addresses
** themselves are never written).  `write` gets the text in pieces of
** whole lines (borrowed for the call) and returns 0, or nonzero to stop:
** TAILOR_EIO then.  TAILOR_EINVAL for an unknown audience, before anything
** is written.  *count and *with_email (each may be NULL) receive the
** members and those with a hashed email.
*/
#define TAILOR_EXPORT_CSV 1
#define TAILOR_EXPORT_HASHED_EMAILS 2
typedef int (*tailor_write_fn)(void *ud, const char *text, size_t len);
TAILOR_EXTERN int tailor_audience_export(tailor *t, const char *audience, int days,
                                         int flags, tailor_write_fn write, void *ud,
                                         size_t *count, size_t *with_email,
                                         tailor_error *err);

/*
** An audience as an ad platform's customer list: `format` "google"
** (Customer Match) or "meta" (Custom Audiences).  `fn` is called once per
** member who can be listed: a customer who has not declined marketing,
** with the SHA-256 (64 hex digits) of the email normalized as the platform
** documents it when they consented to email, of the phone in E.164 when
** they consented to SMS (NULL otherwise; never both NULL), and the bid
** multiplier the strategy's audiences handler gives them (1 without one).
** `phone_country` is the calling code ("44") for numbers stored without
** one, or NULL to leave those out.  The strings are borrowed for the call;
** `*count` (may be NULL) receives the number of calls.  TAILOR_EINVAL for
** an unknown format or audience, or a phone_country that is not 1 to 3
** digits (an optional "+" in front).
*/
typedef void (*tailor_upload_fn)(void *ud, const char *email_sha256,
                                 const char *phone_sha256, double bid);
TAILOR_EXTERN int tailor_audience_upload(tailor *t, const char *audience, int days,
                                         const char *format, const char *phone_country,
                                         tailor_upload_fn fn, void *ud, size_t *count,
                                         tailor_error *err);

/*
** Push what changed in an audience's list (tailor_audience_upload) since
** the last sync of the same audience, format and channel: one outbox row
** on `channel` (NULL: "webhook") with template "audience_sync" and vars
** {audience, format, days, added: [{email_sha256, phone_sha256,
** bid_multiplier}], removed: [{email_sha256, phone_sha256}]}, delivered as
** any row is (tailor_deliver_due).  The synced set is kept in the store,
** written in the row's transaction; no change, no row.  `*added` and
** `*removed` (may be NULL) receive the counts.
*/
TAILOR_EXTERN int tailor_audience_sync(tailor *t, const char *audience, int days,
                                       const char *format, const char *phone_country,
                                       const char *channel, size_t *added,
                                       size_t *removed, tailor_error *err);

/*
** Write the checkpoint of the indexes now (it is also written on close and,
** when configured, every index.checkpoint_every events), so the next open
** replays only later events.  TAILOR_EUNSUPPORTED for an in-memory store.
*/
TAILOR_EXTERN int tailor_checkpoint(tailor *t, tailor_error *err);

/*
** Statistics as a JSON object (events by type, items, customers, strategy
** errors, index sizes).  The caller frees `*json` with tailor_free().
*/
TAILOR_EXTERN int tailor_stats(tailor *t, char **json, tailor_error *err);

/* Free memory returned by tailor (responses, statistics). NULL is a no-op. */
TAILOR_EXTERN void tailor_free(void *p);

/* Log levels for tailor_log_fn. */
enum { TAILOR_LOG_ERROR = 0, TAILOR_LOG_WARN = 1, TAILOR_LOG_INFO = 2,
       TAILOR_LOG_DEBUG = 3 };

/*
** Receives the engine's log lines (strategy errors, reloads, warnings).  The
** message is borrowed for the call.  May be called from any thread that
** calls into the engine, and from the engine's own threads (the fitter of
** index.background_refits, until tailor_close), so it must be thread-safe.
** By default an engine logs warnings and errors to stderr.
*/
typedef void (*tailor_log_fn)(void *ud, int level, const char *message);

/* Route the engine's logs to `fn` (NULL silences them). Not thread-safe
** with other calls: set it right after tailor_open(). */
TAILOR_EXTERN void tailor_set_logger(tailor *t, tailor_log_fn fn, void *ud);

/*
** Receives the engine's measurements as they happen, so a host server can
** feed them to its own metrics: `name` is one of
**   "decide_us"       a decision's latency in microseconds (label: kind)
**   "decide_fallback" 1 when a decision served the fallback (label: kind)
**   "events"          events acknowledged by one ingest call (label: NULL)
**   "events_rejected" events rejected by one ingest call (label: NULL)
** Strings are borrowed for the call; called from the thread that made the
** call, so it must be thread-safe.  Set it right after tailor_open().
*/
typedef void (*tailor_metric_fn)(void *ud, const char *name, const char *label,
                                 double value);
TAILOR_EXTERN void tailor_set_metrics(tailor *t, tailor_metric_fn fn, void *ud);

#ifdef __cplusplus
}
#endif
#endif /* TAILOR_H */
