/*
** postgres.c: the PostgreSQL store (not yet: see issue 18).
*/
#include "store/store_impl.h"

#include "core/util.h"

store *store_pg_open(const char *url, const store_options *opt, tailor_error *err) {
  (void)url, (void)opt;
  util_fail(err, TAILOR_EUNSUPPORTED, "db", "store: PostgreSQL is not supported by this build");
  return NULL;
}
