/*
** outbox.c: moving outbox rows through delivery (see outbox.h for the
** states).  Written against the store's SQLite handle; the schema (the
** next_at column, the outbox_sent ledger) comes from store.c's migrations.
*/
#include "store/store_impl.h"
#include "store/sq.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char *col_text(sqlite3_stmt *st, int i) {
  return (const char *)sqlite3_column_text(st, i);
}

static void rollback(sqlite3 *db) { sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL); }

/* Each branch can use the outbox_due (state, due) index.  A row on a
   `serial` channel (?4) waits while another of its customer's rows on
   one is being sent under a live lease (outbox.h); BEGIN IMMEDIATE
   already puts claims one after the other.  The customers with a row in
   flight are one list, made once for the claim (NOT IN a subquery that
   names no column of `o`): as a correlated EXISTS it scanned the rows in
   flight again for every candidate, 820 ms for a claim with 500 rows in
   flight before 20,000 due rows of their customers, 14 ms as a list. */
#define CLAIM_COLUMNS                                                         \
  "SELECT id, key, customer, channel, template, vars, due, created, attempts, " \
  "EXISTS(SELECT 1 FROM outbox_sent s WHERE s.key = o.key AND s.channel = o.channel) " \
  "FROM outbox o WHERE channel IN (SELECT value FROM json_each(?1)) AND "         \
  "(o.customer IS NULL OR o.channel NOT IN (SELECT value FROM json_each(?4)) OR " \
  "o.customer NOT IN (SELECT b.customer FROM outbox b WHERE b.state = 'sending' AND " \
  "b.next_at > ?2 AND b.customer IS NOT NULL AND " \
  "b.channel IN (SELECT value FROM json_each(?4)))) AND "

json_t *sq_outbox_claim(store *s, const char *names, const char *one_each, int64_t now,
                        int max, int64_t lease_until, tailor_error *err) {
  static const char pick[] =
      CLAIM_COLUMNS "state = 'pending' AND due <= ?2 AND next_at <= ?2 "
      "UNION ALL " CLAIM_COLUMNS "state = 'sending' AND next_at <= ?2 "
      "ORDER BY 7 LIMIT ?3";
  sqlite3 *db = store_db(s);
  sqlite3_stmt *sel = NULL, *upd = NULL;
  json_t *out = NULL;
  /* IMMEDIATE: the write lock from the start, so the rows read are still
     claimable when they are updated, in this process or another. */
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
    store_fail(err, TAILOR_ESTORE, db, "store: outbox claim");
    return NULL;
  }
  if (sqlite3_prepare_v2(db, pick, -1, &sel, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "UPDATE outbox SET state = 'sending', attempts = attempts + 1, "
                         "next_at = ?2, updated = ?3 WHERE id = ?1",
                         -1, &upd, NULL) != SQLITE_OK) {
    store_fail(err, TAILOR_ESTORE, db, "store: outbox claim");
    goto done;
  }
  sqlite3_bind_text(sel, 1, names, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(sel, 2, now);
  sqlite3_bind_int(sel, 3, max);
  sqlite3_bind_text(sel, 4, one_each, -1, SQLITE_TRANSIENT);
  out = json_array();
  int rc;
  while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
    json_t *vars = json_loads(col_text(sel, 5) ? col_text(sel, 5) : "{}", 0, NULL);
    json_t *row = json_pack(
        "{sI ss ss? ss ss so sI sI si sb}", "id", (json_int_t)sqlite3_column_int64(sel, 0),
        "key", col_text(sel, 1), "customer", col_text(sel, 2), "channel", col_text(sel, 3),
        "template", col_text(sel, 4), "vars", json_is_object(vars) ? vars : json_object(),
        "due", (json_int_t)sqlite3_column_int64(sel, 6), "created",
        (json_int_t)sqlite3_column_int64(sel, 7), "attempts",
        sqlite3_column_int(sel, 8) + 1, "already_sent", sqlite3_column_int(sel, 9));
    if (vars && !json_is_object(vars)) json_decref(vars);
    if (row) json_array_append_new(out, row);
  }
  /* Leased once all are read: a row leased while the query still ran
     would keep the customer's next row on a serial channel out of this
     very claim, which sends them one after the other anyway. */
  size_t i;
  json_t *row;
  json_array_foreach(out, i, row) {
    if (rc != SQLITE_DONE) break;
    sqlite3_bind_int64(upd, 1, json_integer_value(json_object_get(row, "id")));
    sqlite3_bind_int64(upd, 2, lease_until);
    sqlite3_bind_int64(upd, 3, now);
    rc = sqlite3_step(upd);
    sqlite3_reset(upd);
  }
  if (rc != SQLITE_DONE) {
    store_fail(err, TAILOR_ESTORE, db, "store: outbox claim");
    json_decref(out);
    out = NULL;
  }
done:
  sqlite3_finalize(sel);
  sqlite3_finalize(upd);
  if (!out || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    if (out) store_fail(err, TAILOR_ESTORE, db, "store: outbox claim");
    rollback(db);
    json_decref(out);
    return NULL;
  }
  return out;
}

/* An update of a row this claim still holds (`sending`, its attempts
   still `attempt`), with ?3 and ?4 bound to a and b (a statement may leave
   ?3 out: parameters are numbered up to the largest): 1 when it held it,
   0 when not, or a store error (`what` names it). */
static int held_update(store *s, const char *sql, int64_t id, int attempt, int64_t a,
                       int64_t b, const char *what, tailor_error *err) {
  sqlite3 *db = store_db(s);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, db, what);
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int(st, 2, attempt);
  sqlite3_bind_int64(st, 3, a);
  sqlite3_bind_int64(st, 4, b);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return store_fail(err, TAILOR_ESTORE, db, what);
  return sqlite3_changes(db) == 1;
}

int sq_outbox_renew(store *s, int64_t id, int attempt, int64_t now, int64_t lease_until,
                    tailor_error *err) {
  return held_update(s,
                     "UPDATE outbox SET next_at = ?3, updated = ?4 "
                     "WHERE id = ?1 AND state = 'sending' AND attempts = ?2",
                     id, attempt, lease_until, now, "store: outbox lease", err);
}

int sq_outbox_release(store *s, int64_t id, int attempt, int64_t now, tailor_error *err) {
  return held_update(s,
                     "UPDATE outbox SET state = 'pending', attempts = attempts - 1, "
                     "next_at = 0, updated = ?4 "
                     "WHERE id = ?1 AND state = 'sending' AND attempts = ?2",
                     id, attempt, now, now, "store: outbox give back", err);
}

int sq_outbox_mark_sent(store *s, int64_t id, const char *key,
                           const char *channel, const char *customer,
                           const char *vars, int64_t now, tailor_error *err) {
  sqlite3 *db = store_db(s);
  sqlite3_stmt *up = NULL, *led = NULL;
  int gone = 0;
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, db, "store: outbox");
  int ok =
      sqlite3_prepare_v2(db,
                         "UPDATE outbox SET state = 'sent', next_at = 0, last_error = NULL, "
                         "vars = coalesce(?2, vars), updated = ?3 WHERE id = ?1",
                         -1, &up, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db,
                         "INSERT OR IGNORE INTO outbox_sent(key, channel, customer, sent) "
                         "VALUES (?1, ?2, ?3, ?4)",
                         -1, &led, NULL) == SQLITE_OK;
  if (ok) {
    sqlite3_bind_int64(up, 1, id);
    sq_bind_text(up, 2, vars);
    sqlite3_bind_int64(up, 3, now);
    sq_bind_text(led, 1, key);
    sq_bind_text(led, 2, channel);
    sq_bind_text(led, 3, customer);
    sqlite3_bind_int64(led, 4, now);
    ok = sqlite3_step(up) == SQLITE_DONE;
    gone = ok && sqlite3_changes(db) == 0;
    ok = ok && (gone || sqlite3_step(led) == SQLITE_DONE);
  }
  sqlite3_finalize(up);
  sqlite3_finalize(led);
  if (!ok || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    store_fail(err, TAILOR_ESTORE, db, "store: outbox");
    rollback(db);
    return TAILOR_ESTORE;
  }
  return gone ? util_fail(err, TAILOR_ENOTFOUND, NULL, "outbox row %lld is gone (erased)",
                          (long long)id)
              : TAILOR_OK;
}

int sq_outbox_settle(store *s, int64_t id, int attempt, const char *state, int64_t next_at,
                        const char *error, int64_t now, tailor_error *err) {
  sqlite3 *db = store_db(s);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "UPDATE outbox SET state = ?2, next_at = ?3, last_error = ?4, "
                         "updated = ?5 WHERE id = ?1 AND state = 'sending' AND attempts = ?6",
                         -1, &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, db, "store: outbox");
  sqlite3_bind_int64(st, 1, id);
  sq_bind_text(st, 2, state);
  sqlite3_bind_int64(st, 3, next_at);
  sq_bind_text(st, 4, error);
  sqlite3_bind_int64(st, 5, now);
  sqlite3_bind_int(st, 6, attempt);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? TAILOR_OK
                           : store_fail(err, TAILOR_ESTORE, db, "store: outbox");
}

int64_t sq_outbox_sent_since(store *s, const char *customer, const char *channel,
                                int64_t since) {
  sqlite3_stmt *st;
  int64_t n = 0;
  if (!customer ||
      sqlite3_prepare_v2(store_db(s),
                         "SELECT count(*) FROM outbox_sent WHERE customer = ? AND "
                         "channel = ? AND sent >= ? AND " SQ_NOT_OPTIN,
                         -1, &st, NULL) != SQLITE_OK)
    return 0;
  sq_bind_text(st, 1, customer);
  sq_bind_text(st, 2, channel);
  sqlite3_bind_int64(st, 3, since);
  if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

int sq_outbox_retry(store *s, const char *key, int64_t now, int *changed,
                       tailor_error *err) {
  sqlite3 *db = store_db(s);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "UPDATE outbox SET state = 'pending', attempts = 0, next_at = 0, "
                         "due = min(due, ?2), last_error = NULL, updated = ?2 WHERE "
                         "(?1 IS NULL AND state = 'dead') OR "
                         "(key = ?1 AND (state IN ('dead', 'cancelled') OR (state = 'pending' AND attempts > 0)))",
                         -1, &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, db, "store: outbox retry");
  sq_bind_text(st, 1, key);
  sqlite3_bind_int64(st, 2, now);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return store_fail(err, TAILOR_ESTORE, db, "store: outbox retry");
  if (changed) *changed = sqlite3_changes(db);
  return TAILOR_OK;
}

const char *sq_outbox_state(store *s, const char *key) {
  sqlite3_stmt *st;
  const char *out = NULL;
  if (sqlite3_prepare_v2(store_db(s), "SELECT state FROM outbox WHERE key = ?", -1, &st,
                         NULL) != SQLITE_OK)
    return NULL;
  sq_bind_text(st, 1, key);
  if (sqlite3_step(st) == SQLITE_ROW) out = store_outbox_state_name(col_text(st, 0));
  sqlite3_finalize(st);
  return out;
}

int sq_outbox_purge(store *s, const char *state, int64_t before, int64_t *purged,
                       tailor_error *err) {
  sqlite3 *db = store_db(s);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "DELETE FROM outbox WHERE state IN ('sent', 'cancelled', 'dead') "
                         "AND (?1 IS NULL OR state = ?1) AND updated < ?2",
                         -1, &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, db, "store: outbox purge");
  sq_bind_text(st, 1, state);
  sqlite3_bind_int64(st, 2, before);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return store_fail(err, TAILOR_ESTORE, db, "store: outbox purge");
  if (purged) *purged = sqlite3_changes(db);
  return TAILOR_OK;
}

/*
** The operator's view (outbox.h).
*/

#define VIEW_COLUMNS                                                                  \
  "SELECT id, key, customer, channel, template, vars, due, " STORE_OUTBOX_VIEW_STATE \
  " AS state, attempts, last_error, created, next_at, updated FROM outbox"

static json_t *tally_row(sqlite3_stmt *q) {
  return json_pack("{ss ss ss sI}", "template", col_text(q, 0), "channel", col_text(q, 1),
                   "state", col_text(q, 2), "n", (json_int_t)sqlite3_column_int64(q, 3));
}

/* Every row of `q` (prepared, bound) made an object by `row`, as a JSON
   array; NULL with err filled when the statement fails.  Finalizes q. */
static json_t *rows_of(sqlite3 *db, sqlite3_stmt *q, json_t *(*row)(sqlite3_stmt *),
                       tailor_error *err) {
  json_t *out = json_array();
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) json_array_append_new(out, row(q));
  sqlite3_finalize(q);
  if (rc != SQLITE_DONE) {
    store_fail(err, TAILOR_ESTORE, db, "outbox");
    json_decref(out);
    return NULL;
  }
  return out;
}

json_t *sq_outbox_tally(store *s, tailor_error *err) {
  static const char sql[] = "SELECT template, channel, " STORE_OUTBOX_VIEW_STATE
                            ", count(*) FROM outbox GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
  sqlite3 *db = store_db(s);
  sqlite3_stmt *q;
  if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
    store_fail(err, TAILOR_ESTORE, db, "outbox");
    return NULL;
  }
  return rows_of(db, q, tally_row, err);
}

json_t *sq_outbox_view(store *s, const char *state, int limit, tailor_error *err) {
  static const char sql[] = VIEW_COLUMNS " WHERE ?1 IS NULL OR " STORE_OUTBOX_VIEW_STATE
                            " = ?1 ORDER BY id DESC LIMIT ?2";
  sqlite3 *db = store_db(s);
  sqlite3_stmt *q;
  if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
    store_fail(err, TAILOR_ESTORE, db, "outbox");
    return NULL;
  }
  sq_bind_text(q, 1, state);
  sqlite3_bind_int(q, 2, limit);
  return rows_of(db, q, sq_row_json, err);
}

json_t *sq_outbox_get(store *s, const char *key, tailor_error *err) {
  sqlite3 *db = store_db(s);
  sqlite3_stmt *q;
  json_t *row = NULL;
  int rc = sqlite3_prepare_v2(db, VIEW_COLUMNS " WHERE key = ?1", -1, &q, NULL);
  if (rc == SQLITE_OK) {
    sq_bind_text(q, 1, key);
    if ((rc = sqlite3_step(q)) == SQLITE_ROW) row = sq_row_json(q);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
  }
  sqlite3_finalize(q);
  if (rc != SQLITE_OK) store_fail(err, TAILOR_ESTORE, db, "outbox message");
  return row;
}
