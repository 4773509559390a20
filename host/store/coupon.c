/*
** coupon.c: the store's side of coupons and frequency caps.  A coupon is a
** row of its own (code, tier, who it was issued to, expiry), redeemed once
** by a conditional UPDATE inside the transaction of the coupon_redeemed
** event that redeems it, so two checkouts racing for one code cannot both
** win.  Contacts are what a frequency cap counts beside the outbox (emails)
** and the coupons (issued): the popups a decision answered.
*/
#include <sqlite3.h>
#include <string.h>

#include "core/util.h"
#include "store/sq.h"
#include "store/store_impl.h"


int sq_coupons_add(store *s, json_t *rows, tailor_error *err) {
  sqlite3 *db = store_db(s);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO coupons(code,tier,percent,customer,anon,issued,expires) "
                         "VALUES(?,?,?,?,?,?,?)",
                         -1, &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, db, "store: coupons");
  size_t i;
  json_t *r;
  int rc = TAILOR_OK;
  json_array_foreach(rows, i, r) {
    sq_bind_text(st, 1, json_string_value(json_object_get(r, "code")));
    sq_bind_text(st, 2, json_string_value(json_object_get(r, "tier")));
    json_t *pct = json_object_get(r, "percent");
    if (json_is_number(pct))
      sqlite3_bind_double(st, 3, json_number_value(pct));
    else
      sqlite3_bind_null(st, 3);
    sq_bind_text(st, 4, json_string_value(json_object_get(r, "customer")));
    sq_bind_text(st, 5, json_string_value(json_object_get(r, "anon")));
    sqlite3_bind_int64(st, 6, json_integer_value(json_object_get(r, "issued")));
    sqlite3_bind_int64(st, 7, json_integer_value(json_object_get(r, "expires")));
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    if (step != SQLITE_DONE) {
      rc = store_fail(err, TAILOR_ESTORE, db, "store: coupons");
      break;
    }
  }
  sqlite3_finalize(st);
  return rc;
}

json_t *sq_coupon_get(store *s, const char *code, tailor_error *err) {
  sqlite3 *db = store_db(s);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT code,tier,percent,customer,anon,issued,expires,redeemed,"
                         "order_id FROM coupons WHERE code=?",
                         -1, &st, NULL) != SQLITE_OK) {
    store_fail(err, TAILOR_ESTORE, db, "store: coupon");
    return NULL;
  }
  sqlite3_bind_text(st, 1, code, -1, SQLITE_TRANSIENT);
  json_t *out = NULL;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    out = sq_row_json(st);
  } else if (rc == SQLITE_DONE) {
    util_fail(err, TAILOR_ENOTFOUND, "code", "coupon '%.64s' does not exist", code);
  } else {
    store_fail(err, TAILOR_ESTORE, db, "store: coupon");
  }
  sqlite3_finalize(st);
  return out;
}

int sq_coupon_mark(store *s, const char *code, int64_t now, const char *order_id,
                   tailor_error *err) {
  sqlite3 *db = store_db(s);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "UPDATE coupons SET redeemed=?2, order_id=?3 "
                         "WHERE code=?1 AND redeemed IS NULL",
                         -1, &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, db, "store: coupon");
  sqlite3_bind_text(st, 1, code, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, now);
  sq_bind_text(st, 3, order_id);
  int step = sqlite3_step(st);
  sqlite3_finalize(st);
  if (step != SQLITE_DONE) return store_fail(err, TAILOR_ESTORE, db, "store: coupon");
  return sqlite3_changes(db) ? TAILOR_OK
                             : util_fail(err, TAILOR_EINVAL, "code",
                                         "coupon '%.64s' was already redeemed", code);
}

void store_json_bump(json_t *obj, const char *const *path, const char *field, json_int_t n) {
  for (; *path; path++) {
    json_t *next = json_object_get(obj, *path);
    if (!next) {
      next = json_object();
      json_object_set_new(obj, *path, next);
    }
    obj = next;
  }
  json_t *v = json_object_get(obj, field);
  json_object_set_new(obj, field, json_integer((v ? json_integer_value(v) : 0) + n));
}

json_t *sq_coupon_report(store *s, int64_t now) {
  sqlite3 *db = store_db(s);
  json_t *out = json_pack("{s{}s{}}", "tiers", "experiments");
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT tier, count(*), count(redeemed),"
                         " sum(redeemed IS NULL AND expires <= ?1) FROM coupons GROUP BY tier",
                         -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, now);
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *path[] = {"tiers", (const char *)sqlite3_column_text(st, 0), NULL};
      store_json_bump(out, path, "issued", sqlite3_column_int64(st, 1));
      store_json_bump(out, path, "redeemed", sqlite3_column_int64(st, 2));
      store_json_bump(out, path, "expired", sqlite3_column_int64(st, 3));
    }
    sqlite3_finalize(st);
  }
  /* The arm a coupon counts for in each experiment: its holder's first
     exposure, as the experiment report counts a visitor once.  The holder
     is the coupon's customer (or the one its anonymous id is linked to),
     its anonymous id and the ids linked to that customer; joining each
     of those ids' exposures counted a coupon once per id, in both arms
     of a visitor exposed as anon and again after login. */
  if (sqlite3_prepare_v2(db,
                         STORE_COUPON_HOLDERS
                         " a AS ("
                         "  SELECT h.tier, h.redeemed, x.experiment, x.variant, min(x.ts)"
                         "  FROM h JOIN u ON u.code = h.code JOIN exposures x ON x.unit = u.unit"
                         "  GROUP BY h.code, x.experiment)"
                         "SELECT experiment, variant, tier, count(*), count(redeemed) "
                         "FROM a GROUP BY 1, 2, 3",
                         -1, &st, NULL) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *path[] = {"experiments", (const char *)sqlite3_column_text(st, 0),
                            (const char *)sqlite3_column_text(st, 1),
                            (const char *)sqlite3_column_text(st, 2), NULL};
      store_json_bump(out, path, "issued", sqlite3_column_int64(st, 3));
      store_json_bump(out, path, "redeemed", sqlite3_column_int64(st, 4));
    }
    sqlite3_finalize(st);
  }
  return out;
}

int sq_contact_add(store *s, const char *customer, const char *anon, const char *channel,
                   const char *campaign, int64_t ts, tailor_error *err) {
  sqlite3 *db = store_db(s);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO contacts(unit,channel,campaign,ts,is_anon) "
                         "VALUES(?,?,?,?,?)",
                         -1, &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, db, "store: contacts");
  sqlite3_bind_text(st, 1, customer ? customer : anon, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 5, !customer);
  sqlite3_bind_text(st, 2, channel, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, campaign ? campaign : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 4, ts);
  int step = sqlite3_step(st);
  sqlite3_finalize(st);
  return step == SQLITE_DONE ? TAILOR_OK : store_fail(err, TAILOR_ESTORE, db, "store: contacts");
}

int64_t sq_contacts_between(store *s, const char *customer, const char *anon,
                            const char *campaign, int64_t from, int64_t to,
                            const char *replacing) {
  /* The person is the customer, the anonymous id, and every id the
     identities link to either: a coupon taken before login counts after
     it (the caps saw only the ids of the request).  A contact's unit is
     read as the kind of id it was written as (is_anon): a stranger whose
     anonymous id is "c42" neither caps customer c42 nor sees their count. */
#define SQ_CUSTOMERS "(?1, (SELECT customer FROM identities WHERE anon=?2))"
#define SQ_ANONS                                                                  \
  "(SELECT ?2 UNION SELECT anon FROM identities WHERE customer IN " SQ_CUSTOMERS ")"
  static const char sql[] =
      "SELECT (SELECT count(*) FROM contacts WHERE (NOT is_anon AND unit IN " SQ_CUSTOMERS
      "         OR is_anon AND unit IN " SQ_ANONS ")"
      "         AND ts BETWEEN ?3 AND ?5 AND (?4 IS NULL OR campaign=?4))"
      "     + (SELECT count(*) FROM coupons WHERE (customer IN " SQ_CUSTOMERS " OR anon IN "
      SQ_ANONS ") AND issued BETWEEN ?3 AND ?5 AND (?4 IS NULL OR tier=?4))"
      "     + (SELECT count(*) FROM outbox WHERE customer IN " SQ_CUSTOMERS
      "         AND due BETWEEN ?3 AND ?5"
      "         AND state IN ('pending','sending','sent') AND (?4 IS NULL OR template=?4)"
      "         AND NOT (?6 IS NOT NULL AND state='pending'"
      "                  AND substr(key,1,length(?6))=?6)"
      "         AND " SQ_NOT_OPTIN ")";
  sqlite3 *db = store_db(s);
  sqlite3_stmt *st;
  int64_t n = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return 0;
  sq_bind_text(st, 1, customer);
  sq_bind_text(st, 2, anon);
  sqlite3_bind_int64(st, 3, from);
  sq_bind_text(st, 4, campaign);
  sqlite3_bind_int64(st, 5, to);
  sq_bind_text(st, 6, replacing);
  if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}
