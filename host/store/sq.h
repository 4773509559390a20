/*
** sq.h: what the SQLite store's files (store.c, outbox.c, coupon.c,
** consent.c) share.
*/
#ifndef TAILOR_STORE_SQ_H
#define TAILOR_STORE_SQ_H

#include <sqlite3.h>

/* Bind a string, or NULL when there is none (copied: SQLITE_TRANSIENT). */
static inline void sq_bind_text(sqlite3_stmt *st, int i, const char *v) {
  if (v)
    sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null(st, i);
}

/*
** Outbox rows the host schedules itself: the confirmation emails of double
** opt-in (engine/optin.c, keys "optin:<id>").  A visitor asked for each, so
** neither a frequency cap nor the weekly email cap counts them.
*/
#define SQ_NOT_OPTIN "key NOT LIKE 'optin:%'"

/*
** The consent records (store/consent.c) of the person ?1: asked for them,
** for one of their anonymous ids, or for the address their profile holds.
** What erasure deletes and an export lists.
*/
#define CONSENTS_OF                                                    \
  "(customer=?1 OR anon IN (SELECT anon FROM identities WHERE customer=?1) " \
  "OR email IN (SELECT email FROM customers WHERE id=?1))"

/*
** The current row of `st` as an object keyed by its column names:
** integers, reals, nulls and text as they are; a text column named "vars"
** or "body" (JSON the store keeps as text) parsed, or kept as text when it
** does not parse.  (store.c)
*/
struct json_t;
struct json_t *sq_row_json(sqlite3_stmt *st);

#endif /* TAILOR_STORE_SQ_H */
