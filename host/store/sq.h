/*
** sq.h: what the SQLite store's files (store.c, outbox.c, coupon.c) share.
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

#endif /* TAILOR_STORE_SQ_H */
