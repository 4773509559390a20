/*
** store_impl.h: the table of functions behind store.h, for the files that
** implement a store (store.c: SQLite, postgres.c) and the dispatcher
** (dispatch.c).
** Every handle starts with a `struct store` whose `ops` names its
** implementation; an implementation's own handle puts it first, so a
** `store *` converts to it.  Each entry has the meaning of the store.h or
** outbox.h function of the same name.
*/
#ifndef TAILOR_STORE_IMPL_H
#define TAILOR_STORE_IMPL_H

#include "store/outbox.h"
#include "store/store.h"

typedef struct store_ops {
  const char *kind;
  void (*close)(store *s);
  int (*schema_version)(store *s);
  char *(*checkpoint_path)(store *s);
  store *(*open_reader)(store *s);
  int shared;
  int (*wait)(store *s, int timeout_ms, tailor_error *err);
  int (*has_seq)(store *s, int64_t seq);
  int (*seq_token)(store *s, int64_t seq, uint64_t *token, tailor_error *err); /* NULL: 0 */
  int (*has_msg)(store *s, const char *msg_id);
  int64_t (*log_behind)(store *s, int64_t after); /* NULL: never behind */
  int (*begin)(store *s, tailor_error *err);
  int (*commit)(store *s, tailor_error *err);
  void (*rollback)(store *s);
  int (*append_rows)(store *s, ev *const *evs, size_t n, int64_t *seqs,
                     tailor_error *err);
  /* NULL: append_rows, then commit. */
  int (*append_commit)(store *s, ev *const *evs, size_t n, int64_t *seqs,
                       tailor_error *err);
  int64_t (*last_seq)(store *s);
  /* known may be NULL (store_scan); a store may ignore it and parse. */
  int (*scan)(store *s, int64_t after, store_event_fn fn, void *ud, store_known_fn known,
              tailor_error *err);
  json_t *(*event_counts)(store *s);
  int64_t (*count)(store *s, const char *table);
  json_t *(*item)(store *s, const char *id);
  json_t *(*customer)(store *s, const char *id);
  char *(*identity)(store *s, const char *anon);
  int (*forget)(store *s, const char *customer, int64_t *events, json_t **sessions,
                tailor_error *err);
  json_t *(*export_customer)(store *s, const char *customer, tailor_error *err);
  int (*outbox_add)(store *s, const store_outbox_row *row, int *added, tailor_error *err);
  int (*outbox_cancel)(store *s, const char *key, int *cancelled, tailor_error *err);
  int (*outbox_cancel_prefix)(store *s, const char *prefix, int *cancelled,
                              tailor_error *err);
  int64_t (*outbox_due)(store *s, const char *customer, const char *channel, int64_t from,
                        int64_t to, const char *except);
  json_t *(*outbox_list)(store *s, const char *state, const char *customer, int limit);
  int (*exposures_add)(store *s, const store_exposure *rows, size_t n, tailor_error *err);
  json_t *(*exposure_outcomes)(store *s, int64_t window_ms, tailor_error *err);
  int (*exec)(store *s, const char *sql, tailor_error *err);
  char *(*meta_get)(store *s, const char *key);
  int (*meta_set)(store *s, const char *key, const char *value, tailor_error *err);
  /* channels and serial as JSON text (store_outbox_claim writes them) */
  json_t *(*outbox_claim)(store *s, const char *channels, const char *serial, int64_t now,
                          int max, int64_t lease_until, tailor_error *err);
  int (*outbox_mark_sent)(store *s, int64_t id, const char *key, const char *channel,
                          const char *customer, const char *vars, int64_t now,
                          tailor_error *err);
  int (*outbox_settle)(store *s, int64_t id, int attempt, const char *state, int64_t next_at,
                       const char *error, int64_t now, tailor_error *err);
  int64_t (*outbox_sent_since)(store *s, const char *customer, const char *channel,
                               int64_t since);
  int (*outbox_retry)(store *s, const char *key, int64_t now, int *changed,
                      tailor_error *err);
  const char *(*outbox_state)(store *s, const char *key);
  int (*outbox_purge)(store *s, const char *state, int64_t before, int64_t *purged,
                      tailor_error *err);
  int (*outbox_renew)(store *s, int64_t id, int attempt, int64_t now, int64_t lease_until,
                      tailor_error *err);
  int (*outbox_release)(store *s, int64_t id, int attempt, int64_t now, tailor_error *err);
  /* The operator's view (outbox.h); outbox_get answers NULL with `err`
     untouched when there is no such row. */
  json_t *(*outbox_tally)(store *s, tailor_error *err);
  json_t *(*outbox_view)(store *s, const char *state, int limit, tailor_error *err);
  json_t *(*outbox_get)(store *s, const char *key, tailor_error *err);
  /* Coupons and contacts (store.h); coupon_mark is the conditional UPDATE
     of store_coupon_redeem, whose checks are the dispatcher's. */
  int (*coupons_add)(store *s, json_t *rows, tailor_error *err);
  json_t *(*coupon_get)(store *s, const char *code, tailor_error *err);
  int (*coupon_mark)(store *s, const char *code, int64_t now, const char *order_id,
                     tailor_error *err);
  json_t *(*coupon_report)(store *s, int64_t now);
  int (*contact_add)(store *s, const char *customer, const char *anon, const char *channel,
                     const char *campaign, int64_t ts, tailor_error *err);
  int64_t (*contacts_between)(store *s, const char *customer, const char *anon,
                              const char *campaign, int64_t from, int64_t to,
                              const char *replacing);
  /* NULL: one writer (SQLite; write_mu serializes the caps' check and
     write). */
  int (*lock_people)(store *s, const char *const *customers, const char *const *anons,
                     size_t n, tailor_error *err);
  /* Consents (store.h); consent_mark is the conditional UPDATE of
     store_consent_confirm, whose checks are the dispatcher's.  A
     consent_get that finds no row fills `err` with TAILOR_ENOTFOUND and
     STORE_CONSENT_GONE. */
  int (*consent_add)(store *s, json_t *row, tailor_error *err);
  json_t *(*consent_get)(store *s, const char *id, tailor_error *err);
  int (*consent_mark)(store *s, const char *id, int64_t now, tailor_error *err);
  int64_t (*consents_since)(store *s, const char *email, int64_t since);
  /* A shared log's triggers owed (store.h); NULL on a store whose events
     and triggers commit together. */
  void (*triggers_owed)(store *s, int on);
  int (*triggers_done)(store *s, const int64_t *seqs, size_t n, tailor_error *err);
  int (*triggers_flush)(store *s, int older_ms, tailor_error *err);
  int (*triggers_overdue)(store *s, int after_s, int max, store_event_fn fn, void *ud,
                          tailor_error *err);
} store_ops;

struct store {
  const store_ops *ops;
  store_skip_fn skip; /* store_on_unreadable: NULL, a scan stops there */
  void *skip_ud;
};

/* A scan's row that does not parse (`why`): handed to the store's skip
   function and passed over, or, without one, the scan's error. */
int store_unreadable(store *s, int64_t seq, const char *why, tailor_error *err);

/* The implementations' openers (store_open picks one). */
store *store_sqlite_open(const char *path, const store_options *opt, tailor_error *err);
store *store_pg_open(const char *url, const store_options *opt, tailor_error *err);

/* outbox.c: the outbox's delivery side on SQLite. */
json_t *sq_outbox_claim(store *s, const char *names, const char *one_each, int64_t now,
                        int max, int64_t lease_until, tailor_error *err);
int sq_outbox_mark_sent(store *s, int64_t id, const char *key, const char *channel,
                        const char *customer, const char *vars, int64_t now,
                        tailor_error *err);
int sq_outbox_settle(store *s, int64_t id, int attempt, const char *state, int64_t next_at,
                     const char *error, int64_t now, tailor_error *err);
int64_t sq_outbox_sent_since(store *s, const char *customer, const char *channel,
                             int64_t since);
int sq_outbox_retry(store *s, const char *key, int64_t now, int *changed,
                    tailor_error *err);
const char *sq_outbox_state(store *s, const char *key);
int sq_outbox_purge(store *s, const char *state, int64_t before, int64_t *purged,
                    tailor_error *err);
int sq_outbox_renew(store *s, int64_t id, int attempt, int64_t now, int64_t lease_until,
                    tailor_error *err);
int sq_outbox_release(store *s, int64_t id, int attempt, int64_t now, tailor_error *err);
json_t *sq_outbox_tally(store *s, tailor_error *err);
json_t *sq_outbox_view(store *s, const char *state, int limit, tailor_error *err);
json_t *sq_outbox_get(store *s, const char *key, tailor_error *err);

/* coupon.c: coupons and contacts on SQLite. */
int sq_coupons_add(store *s, json_t *rows, tailor_error *err);
json_t *sq_coupon_get(store *s, const char *code, tailor_error *err);
int sq_coupon_mark(store *s, const char *code, int64_t now, const char *order_id,
                   tailor_error *err);
json_t *sq_coupon_report(store *s, int64_t now);
int sq_contact_add(store *s, const char *customer, const char *anon, const char *channel,
                   const char *campaign, int64_t ts, tailor_error *err);
int64_t sq_contacts_between(store *s, const char *customer, const char *anon,
                            const char *campaign, int64_t from, int64_t to,
                            const char *replacing);

/* consent.c: consents on SQLite. */
int sq_consent_add(store *s, json_t *row, tailor_error *err);
json_t *sq_consent_get(store *s, const char *id, tailor_error *err);
int sq_consent_mark(store *s, const char *id, int64_t now, tailor_error *err);
int64_t sq_consents_since(store *s, const char *email, int64_t since);

/* An outbox row's state as an operator reads it (outbox.h), in SQL that
   SQLite and PostgreSQL both take. */
#define STORE_OUTBOX_VIEW_STATE                                          \
  "CASE WHEN state = 'pending' AND attempts > 0 THEN 'failed'"          \
  " WHEN state = 'pending' THEN 'scheduled' ELSE state END"

/* The coupons' holders for the report of coupons by experiment arm, the
   same SQL on every store: h, each coupon with its customer (its own, or
   the one its anonymous id is linked to); u, each coupon's ids (that
   customer, its anonymous id and the ids linked to the customer).  Each
   store then takes, per coupon and experiment, the first exposure by any
   of those ids (coupon.c, postgres.c). */
#define STORE_COUPON_HOLDERS                                                   \
  "WITH h AS ("                                                                \
  "  SELECT c.code, c.tier, c.redeemed, c.anon,"                               \
  "         coalesce(c.customer, i.customer) AS customer"                      \
  "  FROM coupons c LEFT JOIN identities i ON i.anon = c.anon),"               \
  " u AS ("                                                                    \
  "  SELECT code, customer AS unit FROM h WHERE customer IS NOT NULL"          \
  "  UNION SELECT code, anon FROM h WHERE anon IS NOT NULL"                    \
  "  UNION SELECT h.code, i.anon FROM h JOIN identities i ON i.customer = h.customer),"

/* Why a consent request cannot be found, the same on every store. */
#define STORE_CONSENT_GONE                                                          \
  "no pending request for this link: it was never made, expired unconfirmed, or " \
  "its address was erased"

/* Add n to obj[path...][field] (path: keys, NULL-terminated), making the
   objects on the way: the coupon report's counters (coupon.c). */
void store_json_bump(json_t *obj, const char *const *path, const char *field, json_int_t n);

/*
** A customer's export (store.h's store_export_customer) from a store's own
** queries, one a part, each bound to the customer as its only parameter:
** `rows` adds the rows of `sql` to `out` as objects (0, or -1 with err).
** The first part (the profile) is one object, or null; the others lists.
*/
typedef struct store_export_part {
  const char *key, *sql;
} store_export_part;
typedef int (*store_rows_fn)(store *s, const char *sql, const char *customer, json_t *out,
                             tailor_error *err);
json_t *store_export_parts(store *s, const store_export_part *parts, size_t n,
                           const char *customer, store_rows_fn rows, tailor_error *err);

#endif /* TAILOR_STORE_IMPL_H */
