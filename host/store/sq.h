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
** The events of the person ?1, as the index counts them: those naming the
** customer, and those naming no customer but one of their anonymous ids,
** or no one at all in one of `sessions` (an SQL list).  An event naming
** another customer is theirs, though it carries an anonymous id of this
** one (a second customer signed in on the same browser), and one naming
** another visitor is that visitor's, though it carries a session id of
** this one's (ids a sender chose, such as GA4's session start times).
** What erasure deletes and an export lists.
*/
#define SQ_PERSON_ANONS "(SELECT anon FROM identities WHERE customer=?1)"
#define SQ_EVENTS_OF(sessions)                                                  \
  "(customer=?1 OR customer IS NULL AND (anon IN " SQ_PERSON_ANONS              \
  " OR anon IS NULL AND session IN " sessions "))"
/* The person ?1's popup contacts, each read as the kind of id it was
   written as (contacts.is_anon). */
#define SQ_CONTACTS_OF                                                          \
  "(NOT is_anon AND unit=?1 OR is_anon AND unit IN " SQ_PERSON_ANONS ")"
/* The sessions of the person's events that name them. */
#define SQ_SESSIONS_OF                                                          \
  "(SELECT DISTINCT session FROM events WHERE session IS NOT NULL AND "         \
  "(customer=?1 OR customer IS NULL AND anon IN " SQ_PERSON_ANONS "))"

/*
** The current row of `st` as an object keyed by its column names:
** integers, reals, nulls and text as they are; a text column named "vars"
** or "body" (JSON the store keeps as text) parsed, or kept as text when it
** does not parse.  (store.c)
*/
struct json_t;
struct json_t *sq_row_json(sqlite3_stmt *st);

#endif /* TAILOR_STORE_SQ_H */
