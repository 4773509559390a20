/*
** test_store.c: the SQLite store: schema and migrations, appends in one
** transaction, replay in order, state tables, reopen.
*/
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "core/event.h"
#include "store/store.h"

static char dir[512];

static void parse(ev *e, const char *json) {
  tailor_error err = {0};
  ev_limits lim = {0, 0, 1700000000000, 0, 0, 0};
  int rc = ev_parse(json, strlen(json), &lim, e, &err);
  if (rc) fprintf(stderr, "parse failed: %s\n", err.message);
  CHECK_INT(rc, TAILOR_OK);
}

static int count_cb(void *ud, int64_t seq, const ev *e) {
  int64_t *last = ud;
  CHECK(seq > *last); /* strictly increasing */
  *last = seq;
  return 0;
}

static void test_append_scan_reopen(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/a.db", dir);
  tailor_error err = {0};
  store *s = store_open(path, NULL, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(store_schema_version(s), STORE_SCHEMA_VERSION);
  ev e[3];
  parse(&e[0], "{\"type\":\"item_upsert\",\"item\":{\"id\":\"sku1\",\"price\":10}}");
  parse(&e[1], "{\"type\":\"view\",\"item\":\"sku1\",\"anon\":\"a1\"}");
  parse(&e[2], "{\"type\":\"identify\",\"customer\":\"c1\",\"anon\":\"a1\"}");
  ev *ptrs[3] = {&e[0], &e[1], &e[2]};
  int64_t seqs[3];
  CHECK_INT(store_append(s, ptrs, 3, seqs, &err), TAILOR_OK);
  CHECK(seqs[0] < seqs[1] && seqs[1] < seqs[2]);
  CHECK_INT(store_last_seq(s), seqs[2]);
  CHECK_INT(store_count(s, "events"), 3);
  CHECK_INT(store_count(s, "items"), 1);
  CHECK_INT(store_count(s, "nope"), -1);
  char *c = store_identity(s, "a1");
  CHECK_STR(c, "c1");
  free(c);
  json_t *item = store_item(s, "sku1");
  CHECK(json_is_object(item));
  CHECK_INT((long)json_number_value(json_object_get(item, "price")), 10);
  json_decref(item);
  for (int i = 0; i < 3; i++) ev_clear(&e[i]);
  store_close(s);

  /* Reopen: the events are there, in order, and parse back. */
  s = store_open(path, NULL, &err);
  CHECK(s != NULL);
  if (!s) return;
  int64_t last = 0;
  CHECK_INT(store_scan(s, 0, count_cb, &last, &err), TAILOR_OK);
  CHECK_INT(last, seqs[2]);
  json_t *counts = store_event_counts(s);
  CHECK_INT(json_integer_value(json_object_get(counts, "view")), 1);
  json_decref(counts);
  store_close(s);
}

static void test_newer_schema_refused(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/newer.db", dir);
  tailor_error err = {0};
  store *s = store_open(path, NULL, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(store_exec(s, "PRAGMA user_version=99", &err), TAILOR_OK);
  store_close(s);
  s = store_open(path, NULL, &err);
  CHECK(s == NULL);
  CHECK_INT(err.code, TAILOR_ESTORE);
  CHECK_CONTAINS(err.message, "newer than this build");
  store_close(s);
}

static void test_not_a_database(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/garbage.db", dir);
  FILE *f = fopen(path, "w");
  fputs("this is not sqlite, just some text that is long enough to matter\n", f);
  fclose(f);
  tailor_error err = {0};
  store *s = store_open(path, NULL, &err);
  CHECK(s == NULL);
  CHECK_INT(err.code, TAILOR_ESTORE);
  CHECK_CONTAINS(err.message, "garbage.db");
}

static void test_outbox_idempotent(void) {
  tailor_error err = {0};
  store *s = store_open(":memory:", NULL, &err);
  CHECK(s != NULL);
  if (!s) return;
  store_outbox_row row = {"cart:c1:o1", "c1", "email", "abandoned_cart",
                          "{\"items\":[]}", 1700000000000};
  int added = -1;
  CHECK_INT(store_outbox_add(s, &row, &added, &err), TAILOR_OK);
  CHECK_INT(added, 1);
  CHECK_INT(store_outbox_add(s, &row, &added, &err), TAILOR_OK);
  CHECK_INT(added, 0);
  CHECK_INT(store_count(s, "outbox"), 1);
  store_close(s);
}

int main(void) {
  const char *tmp = getenv("TAILOR_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/storeXXXXXX", tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) return 1;
  RUN(test_append_scan_reopen);
  RUN(test_newer_schema_refused);
  RUN(test_not_a_database);
  RUN(test_outbox_idempotent);
  return CHECK_DONE();
}
