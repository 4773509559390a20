/*
** dispatch.c: the store's front door.  store_open() picks the implementation
** by where the store is (a path: SQLite; a postgresql:// URL: PostgreSQL);
** every other function passes the call to the handle's table (store_impl.h).
*/
#include "store/store_impl.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"

int store_is_url(const char *where) {
  return where && (!strncmp(where, "postgresql://", 13) || !strncmp(where, "postgres://", 11));
}

int store_exists(const char *where) {
  return store_is_url(where) || (where && !strcmp(where, ":memory:")) ||
         (where && access(where, F_OK) == 0);
}

store *store_open(const char *where, const store_options *opt, tailor_error *err) {
  return store_is_url(where) ? store_pg_open(where, opt, err)
                             : store_sqlite_open(where, opt, err);
}

void store_close(store *s) {
  if (s) s->ops->close(s);
}

const char *store_kind(store *s) { return s->ops->kind; }
int store_schema_version(store *s) { return s->ops->schema_version(s); }
char *store_checkpoint_path(store *s) { return s->ops->checkpoint_path(s); }
store *store_open_reader(store *s) { return s->ops->open_reader(s); }
int store_shared(store *s) { return s->ops->shared; }
int store_wait(store *s, int timeout_ms, tailor_error *err) {
  return s->ops->wait ? s->ops->wait(s, timeout_ms, err) : 0;
}
int store_has_seq(store *s, int64_t seq) { return s->ops->has_seq(s, seq); }
int store_seq_token(store *s, int64_t seq, uint64_t *token, tailor_error *err) {
  *token = 0;
  return s->ops->seq_token && seq ? s->ops->seq_token(s, seq, token, err) : TAILOR_OK;
}
int store_has_msg(store *s, const char *msg_id) { return s->ops->has_msg(s, msg_id); }
int64_t store_log_behind(store *s, int64_t after) {
  return s->ops->log_behind ? s->ops->log_behind(s, after) : 0;
}

int store_begin(store *s, tailor_error *err) { return s->ops->begin(s, err); }
int store_commit(store *s, tailor_error *err) { return s->ops->commit(s, err); }
void store_rollback(store *s) { s->ops->rollback(s); }

int store_append_rows(store *s, ev *const *evs, size_t n, int64_t *seqs,
                      tailor_error *err) {
  return s->ops->append_rows(s, evs, n, seqs, err);
}

int store_append_commit(store *s, ev *const *evs, size_t n, int64_t *seqs,
                        tailor_error *err) {
  if (s->ops->append_commit) return s->ops->append_commit(s, evs, n, seqs, err);
  int rc = store_append_rows(s, evs, n, seqs, err);
  if (rc) {
    store_rollback(s);
    return rc;
  }
  return store_commit(s, err);
}

int store_append(store *s, ev *const *evs, size_t n, int64_t *seqs, tailor_error *err) {
  if (n == 0) return TAILOR_OK;
  int rc = store_begin(s, err);
  if (rc) return rc;
  if ((rc = store_append_rows(s, evs, n, seqs, err))) {
    store_rollback(s);
    return rc;
  }
  return store_commit(s, err);
}

int64_t store_last_seq(store *s) { return s->ops->last_seq(s); }

int store_scan(store *s, int64_t after, store_event_fn fn, void *ud, tailor_error *err) {
  return s->ops->scan(s, after, fn, ud, NULL, err);
}

int store_scan_known(store *s, int64_t after, store_event_fn fn, void *ud,
                     store_known_fn known, tailor_error *err) {
  return s->ops->scan(s, after, fn, ud, known, err);
}

json_t *store_event_counts(store *s) { return s->ops->event_counts(s); }
int64_t store_count(store *s, const char *table) { return s->ops->count(s, table); }
json_t *store_item(store *s, const char *id) { return s->ops->item(s, id); }
json_t *store_customer(store *s, const char *id) { return s->ops->customer(s, id); }
char *store_identity(store *s, const char *anon) { return s->ops->identity(s, anon); }

int store_forget(store *s, const char *customer, int64_t *events, json_t **sessions,
                 tailor_error *err) {
  return s->ops->forget(s, customer, events, sessions, err);
}

json_t *store_export_customer(store *s, const char *customer, tailor_error *err) {
  return s->ops->export_customer(s, customer, err);
}

int store_outbox_add(store *s, const store_outbox_row *row, int *added, tailor_error *err) {
  return s->ops->outbox_add(s, row, added, err);
}

int store_outbox_cancel(store *s, const char *key, int *cancelled, tailor_error *err) {
  return s->ops->outbox_cancel(s, key, cancelled, err);
}

int store_outbox_cancel_prefix(store *s, const char *prefix, int *cancelled,
                               tailor_error *err) {
  return s->ops->outbox_cancel_prefix(s, prefix, cancelled, err);
}

int64_t store_outbox_due(store *s, const char *customer, const char *channel, int64_t from,
                         int64_t to, const char *except) {
  return s->ops->outbox_due(s, customer, channel, from, to, except);
}

json_t *store_outbox_list(store *s, const char *state, const char *customer, int limit) {
  return s->ops->outbox_list(s, state, customer, limit);
}

int store_exposures_add(store *s, const store_exposure *rows, size_t n, tailor_error *err) {
  return s->ops->exposures_add(s, rows, n, err);
}

json_t *store_exposure_outcomes(store *s, int64_t window_ms, tailor_error *err) {
  return s->ops->exposure_outcomes(s, window_ms, err);
}

char *store_meta_get(store *s, const char *key) { return s->ops->meta_get(s, key); }

int store_meta_set(store *s, const char *key, const char *value, tailor_error *err) {
  return s->ops->meta_set(s, key, value, err);
}

int store_exec(store *s, const char *sql, tailor_error *err) {
  return s->ops->exec(s, sql, err);
}

json_t *store_outbox_claim(store *s, json_t *channels, json_t *serial, int64_t now, int max,
                           int64_t lease_until, tailor_error *err) {
  /* Both stores bind the lists as JSON text (json_each, jsonb). */
  char *names = json_dumps(channels, JSON_COMPACT);
  char *one_each = serial ? json_dumps(serial, JSON_COMPACT) : strdup("[]");
  json_t *rows = names && one_each
                     ? s->ops->outbox_claim(s, names, one_each, now, max, lease_until, err)
                     : NULL;
  if (!names || !one_each) util_fail(err, TAILOR_ENOMEM, NULL, "store: outbox claim: out of memory");
  free(names);
  free(one_each);
  return rows;
}

int store_outbox_mark_sent(store *s, int64_t id, const char *key, const char *channel,
                           const char *customer, const char *vars, int64_t now,
                           tailor_error *err) {
  return s->ops->outbox_mark_sent(s, id, key, channel, customer, vars, now, err);
}

const char *store_outbox_state_name(const char *text) {
  static const char *const states[] = {"pending", "sending", "sent", "cancelled", "dead"};
  for (size_t i = 0; text && i < sizeof states / sizeof *states; i++)
    if (!strcmp(states[i], text)) return states[i];
  return NULL;
}

int store_outbox_settle(store *s, int64_t id, int attempt, const char *state, int64_t next_at,
                        const char *error, int64_t now, tailor_error *err) {
  return s->ops->outbox_settle(s, id, attempt, state, next_at, error, now, err);
}

int64_t store_outbox_sent_since(store *s, const char *customer, const char *channel,
                                int64_t since) {
  return s->ops->outbox_sent_since(s, customer, channel, since);
}

int store_outbox_retry(store *s, const char *key, int64_t now, int *changed,
                       tailor_error *err) {
  return s->ops->outbox_retry(s, key, now, changed, err);
}

const char *store_outbox_state(store *s, const char *key) {
  return s->ops->outbox_state(s, key);
}

int store_outbox_purge(store *s, const char *state, int64_t before, int64_t *purged,
                       tailor_error *err) {
  return s->ops->outbox_purge(s, state, before, purged, err);
}

int store_outbox_renew(store *s, int64_t id, int attempt, int64_t now, int64_t lease_until,
                       tailor_error *err) {
  return s->ops->outbox_renew(s, id, attempt, now, lease_until, err);
}

int store_outbox_release(store *s, int64_t id, int attempt, int64_t now, tailor_error *err) {
  return s->ops->outbox_release(s, id, attempt, now, err);
}

json_t *store_outbox_tally(store *s, tailor_error *err) { return s->ops->outbox_tally(s, err); }

json_t *store_outbox_view(store *s, const char *state, int limit, tailor_error *err) {
  return s->ops->outbox_view(s, state, limit, err);
}

json_t *store_outbox_get(store *s, const char *key, tailor_error *err) {
  tailor_error e = {0};
  json_t *row = s->ops->outbox_get(s, key, &e);
  if (!row && !e.code) util_fail(&e, TAILOR_ENOTFOUND, "key", "no outbox row with key '%.200s'", key);
  if (!row && err) *err = e;
  return row;
}

/* Coupons and contacts: the checks of a redemption are the same on every
   store; the UPDATE that spends the code is conditional, so two checkouts
   racing for it cannot both win. */
int store_coupons_add(store *s, json_t *rows, tailor_error *err) {
  return s->ops->coupons_add(s, rows, err);
}

json_t *store_coupon_get(store *s, const char *code, tailor_error *err) {
  return s->ops->coupon_get(s, code, err);
}

int store_coupon_redeem(store *s, const char *code, int64_t now, const char *order_id,
                        tailor_error *err) {
  json_t *c = store_coupon_get(s, code, err);
  if (!c) return err ? err->code : TAILOR_ENOTFOUND;
  int rc = TAILOR_OK;
  json_t *redeemed = json_object_get(c, "redeemed");
  int64_t expires = json_integer_value(json_object_get(c, "expires"));
  char when[40]; /* ISO 8601, as the opt-in's messages say times */
  if (json_is_integer(redeemed)) {
    const char *by = json_string_value(json_object_get(c, "order_id"));
    rc = util_fail(err, TAILOR_EINVAL, "code",
                   "coupon '%.64s' was already redeemed at %s%s%.64s", code,
                   util_iso_time(json_integer_value(redeemed), when, sizeof when),
                   by ? " by order " : "", by ? by : "");
  } else if (expires <= now) {
    rc = util_fail(err, TAILOR_EINVAL, "code", "coupon '%.64s' expired at %s", code,
                   util_iso_time(expires, when, sizeof when));
  }
  json_decref(c);
  return rc ? rc : s->ops->coupon_mark(s, code, now, order_id, err);
}

json_t *store_coupon_report(store *s, int64_t now) { return s->ops->coupon_report(s, now); }

int store_contact_add(store *s, const char *customer, const char *anon, const char *channel,
                      const char *campaign, int64_t ts, tailor_error *err) {
  if (!customer && !anon) return TAILOR_OK; /* nobody to count it for */
  return s->ops->contact_add(s, customer, anon, channel, campaign, ts, err);
}

int64_t store_contacts_between(store *s, const char *customer, const char *anon,
                               const char *campaign, int64_t from, int64_t to,
                               const char *replacing) {
  if (!customer && !anon) return 0;
  return s->ops->contacts_between(s, customer, anon, campaign, from, to, replacing);
}

/* Consents: the checks of a confirmation are the same on every store; the
   UPDATE that marks the request is conditional, so a link followed twice
   at once, on one node or two, confirms once. */
int store_consent_add(store *s, json_t *row, tailor_error *err) {
  return s->ops->consent_add(s, row, err);
}

json_t *store_consent_get(store *s, const char *id, tailor_error *err) {
  return s->ops->consent_get(s, id, err);
}

int store_consent_confirm(store *s, const char *id, int64_t now, tailor_error *err) {
  json_t *c = store_consent_get(s, id, err);
  if (!c) return err ? err->code : TAILOR_ENOTFOUND;
  int rc = TAILOR_OK;
  json_t *confirmed = json_object_get(c, "confirmed");
  int64_t expires = json_integer_value(json_object_get(c, "expires"));
  char when[32];
  if (json_is_integer(confirmed))
    rc = util_fail(err, TAILOR_EINVAL, "token",
                   "this link was used already: the address was confirmed at %s",
                   util_iso_time(json_integer_value(confirmed), when, sizeof when));
  else if (expires <= now)
    rc = util_fail(err, TAILOR_EINVAL, "token", "this link expired at %s; ask for a new one",
                   util_iso_time(expires, when, sizeof when));
  json_decref(c);
  return rc ? rc : s->ops->consent_mark(s, id, now, err);
}

int64_t store_consents_since(store *s, const char *email, int64_t since) {
  return s->ops->consents_since(s, email, since);
}

void store_triggers_owed(store *s, int on) {
  if (s->ops->triggers_owed) s->ops->triggers_owed(s, on);
}

int store_triggers_done(store *s, const int64_t *seqs, size_t n, tailor_error *err) {
  return s->ops->triggers_done && n ? s->ops->triggers_done(s, seqs, n, err) : TAILOR_OK;
}

int store_triggers_flush(store *s, int older_ms, tailor_error *err) {
  return s->ops->triggers_flush ? s->ops->triggers_flush(s, older_ms, err) : TAILOR_OK;
}

int store_triggers_overdue(store *s, int after_s, int max, store_event_fn fn, void *ud,
                           tailor_error *err) {
  return s->ops->triggers_overdue ? s->ops->triggers_overdue(s, after_s, max, fn, ud, err)
                                  : TAILOR_OK;
}

json_t *store_export_parts(store *s, const store_export_part *parts, size_t n,
                           const char *customer, store_rows_fn rows_of, tailor_error *err) {
  json_t *out = json_pack("{ss}", "customer", customer);
  for (size_t i = 0; out && i < n; i++) {
    json_t *rows = json_array();
    if (rows_of(s, parts[i].sql, customer, rows, err)) {
      json_decref(rows);
      json_decref(out);
      return NULL;
    }
    if (i == 0) { /* the profile: one object, or null */
      json_t *one = json_incref(json_array_get(rows, 0));
      json_decref(rows);
      rows = one ? one : json_null();
    }
    json_object_set_new(out, parts[i].key, rows);
  }
  return out;
}

void store_on_unreadable(store *s, store_skip_fn fn, void *ud) {
  s->skip = fn;
  s->skip_ud = ud;
}

int store_unreadable(store *s, int64_t seq, const char *why, tailor_error *err) {
  if (s->skip) {
    s->skip(s->skip_ud, seq, why);
    return TAILOR_OK;
  }
  return util_fail(err, TAILOR_ESTORE, NULL, "store: event %lld is not a valid event: %s",
                   (long long)seq, why);
}

int store_lock_people(store *s, const char *const *customers, const char *const *anons,
                      size_t n, tailor_error *err) {
  size_t who = 0;
  for (size_t i = 0; i < n; i++) who += customers[i] || anons[i];
  if (!s->ops->lock_people || !who) return 0;
  int rc = s->ops->lock_people(s, customers, anons, n, err);
  return rc ? rc : 1;
}

int store_lock_person(store *s, const char *customer, const char *anon, tailor_error *err) {
  return store_lock_people(s, &customer, &anon, 1, err);
}
