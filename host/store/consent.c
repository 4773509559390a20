/*
** consent.c: the SQLite store's side of email capture with double opt-in
** (engine/optin.c; postgres.c has the same on PostgreSQL).  A request is a
** row of its own, pending until the link of its confirmation email is
** followed; the confirmation is a conditional UPDATE inside the
** transaction that also stores the address on the customer, so a link
** works once even when clicked twice at the same moment (its checks are
** the dispatcher's, store_consent_confirm).  A pending row holds the
** address only as long as its link lives: adding a request deletes those
** whose links have expired.
*/
#include <sqlite3.h>
#include <string.h>

#include "core/util.h"
#include "store/sq.h"
#include "store/store_impl.h"

int sq_consent_add(store *s, json_t *row, tailor_error *err) {
  sqlite3 *db = store_db(s);
  sqlite3_stmt *st;
  int64_t requested = json_integer_value(json_object_get(row, "requested"));
  if (sqlite3_prepare_v2(db, "DELETE FROM consents WHERE state='pending' AND expires<=?1", -1,
                         &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, db, "store: consents");
  sqlite3_bind_int64(st, 1, requested);
  int step = sqlite3_step(st);
  sqlite3_finalize(st);
  if (step != SQLITE_DONE) return store_fail(err, TAILOR_ESTORE, db, "store: consents");
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO consents(id,customer,anon,email,purpose,text,source,"
                         "requested,expires) VALUES(?,?,?,?,?,?,?,?,?)",
                         -1, &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, db, "store: consents");
  static const char *const text[] = {"id", "customer", "anon", "email",
                                     "purpose", "text", "source"};
  for (int i = 0; i < 7; i++)
    sq_bind_text(st, i + 1, json_string_value(json_object_get(row, text[i])));
  sqlite3_bind_int64(st, 8, requested);
  sqlite3_bind_int64(st, 9, json_integer_value(json_object_get(row, "expires")));
  step = sqlite3_step(st);
  sqlite3_finalize(st);
  return step == SQLITE_DONE ? TAILOR_OK : store_fail(err, TAILOR_ESTORE, db, "store: consents");
}

json_t *sq_consent_get(store *s, const char *id, tailor_error *err) {
  sqlite3 *db = store_db(s);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT id,customer,anon,email,purpose,text,source,requested,"
                         "expires,state,confirmed FROM consents WHERE id=?",
                         -1, &st, NULL) != SQLITE_OK) {
    store_fail(err, TAILOR_ESTORE, db, "store: consents");
    return NULL;
  }
  sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
  json_t *out = NULL;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    out = sq_row_json(st);
  } else if (rc == SQLITE_DONE) {
    util_fail(err, TAILOR_ENOTFOUND, "token", STORE_CONSENT_GONE);
  } else {
    store_fail(err, TAILOR_ESTORE, db, "store: consents");
  }
  sqlite3_finalize(st);
  return out;
}

int sq_consent_mark(store *s, const char *id, int64_t now, tailor_error *err) {
  sqlite3 *db = store_db(s);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "UPDATE consents SET state='confirmed', confirmed=?2 "
                         "WHERE id=?1 AND state='pending'",
                         -1, &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, db, "store: consents");
  sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, now);
  int step = sqlite3_step(st);
  sqlite3_finalize(st);
  if (step != SQLITE_DONE) return store_fail(err, TAILOR_ESTORE, db, "store: consents");
  return sqlite3_changes(db) ? TAILOR_OK
                             : util_fail(err, TAILOR_EINVAL, "token", "this link was used already");
}

int64_t sq_consents_since(store *s, const char *email, int64_t since) {
  sqlite3 *db = store_db(s);
  sqlite3_stmt *st;
  int64_t n = 0;
  /* By mailbox (store.h; email is lower-case). */
  if (sqlite3_prepare_v2(db,
                         "SELECT count(*) FROM (SELECT CASE WHEN instr(l,'+') > 0 THEN "
                         "substr(l,1,instr(l,'+')-1) ELSE l END AS b, d FROM (SELECT "
                         "substr(email,1,instr(email,'@')-1) AS l, substr(email,instr(email,'@')+1) "
                         "AS d FROM consents WHERE requested>=?2)) WHERE CASE WHEN d IN "
                         "('gmail.com','googlemail.com') THEN replace(b,'.','') || '@gmail.com' "
                         "ELSE b || '@' || d END = ?1",
                         -1, &st, NULL) != SQLITE_OK)
    return 0;
  sqlite3_bind_text(st, 1, email, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, since);
  if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}
