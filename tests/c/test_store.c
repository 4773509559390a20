/*
** test_store.c: the SQLite store: schema and migrations, appends in one
** transaction, replay in order, state tables, reopen; the counts and
** outcomes kept in the write path equal what the log says.
*/
#include <sqlite3.h>
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

/* A process beside the writer (no_lock: tailor stats with store.lock
   false) does not upgrade an older store: the engine writing it may be an
   older build, without <db>.lock, that would keep no counts of its later
   events.  The writer of this build upgrades it. */
static void test_older_schema_beside_writer(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/older.db", dir);
  tailor_error err = {0};
  store *s = store_open(path, NULL, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(store_exec(s, "DROP TABLE consents; ALTER TABLE contacts DROP COLUMN is_anon;"
                          "PRAGMA user_version=7", &err), TAILOR_OK);
  store_close(s);
  store_options beside = {0, STORE_DEFAULT_BUSY_TIMEOUT_MS, 0, 1};
  s = store_open(path, &beside, &err);
  CHECK(s == NULL);
  CHECK_INT(err.code, TAILOR_ESTORE);
  CHECK_CONTAINS(err.message, "schema version 7 is older than this build");
  store_close(s);
  s = store_open(path, NULL, &err); /* the writer */
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(store_schema_version(s), STORE_SCHEMA_VERSION);
  store *r = store_open(path, &beside, &err); /* and now beside it */
  CHECK(r != NULL);
  store_close(r);
  store_close(s);
  /* A new store is created beside nothing: no_lock makes its schema. */
  snprintf(path, sizeof path, "%s/new-beside.db", dir);
  s = store_open(path, &beside, &err);
  CHECK(s != NULL);
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

/* One engine writes a store (store.c, sq_lock): a second writing open, in
   this process too, is refused by name; a reader, and an open without the
   lock (store.lock false), go beside it; once closed, the store is free. */
static void test_one_writer(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/locked.db", dir);
  tailor_error err = {0};
  store *a = store_open(path, NULL, &err);
  CHECK(a != NULL);
  store *b = store_open(path, NULL, &err);
  CHECK(b == NULL);
  CHECK_CONTAINS(err.message, "in use by another tailor engine (this process");
  store_options ro = {0, 0, 1, 0}, beside = {1, 0, 0, 1};
  store *r = store_open(path, &ro, &err), *c = store_open(path, &beside, &err);
  CHECK(r != NULL);
  CHECK(c != NULL);
  store_close(r);
  store_close(c);
  CHECK((b = store_open(path, NULL, &err)) == NULL);
  store_close(a);
  CHECK((b = store_open(path, NULL, &err)) != NULL);
  store_close(b);
}

/* A "file:" URI is a file SQLite resolves itself, past the lock on
   <path>.lock: a writer on file:PATH went beside a writer on PATH.  A
   writer is refused such a name; a reader may use it. */
static void test_uri_writer_refused(void) {
  char path[600], uri[620];
  snprintf(path, sizeof path, "%s/uri.db", dir);
  snprintf(uri, sizeof uri, "file:%s", path);
  tailor_error err = {0};
  store *a = store_open(path, NULL, &err);
  CHECK(a != NULL);
  store *b = store_open(uri, NULL, &err);
  CHECK(b == NULL);
  CHECK_INT(err.code, TAILOR_ECONFIG);
  CHECK_CONTAINS(err.message, "SQLite URI");
  store_close(b);
  store_options ro = {0, 0, 1, 0};
  store *r = store_open(uri, &ro, &err);
  CHECK(r != NULL);
  store_close(r);
  store_close(a);
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

/* The rows of `sql` as one string ("a|1;b|2;"), for comparing queries. */
static char *rows_of(store *s, const char *sql) {
  sqlite3_stmt *st = NULL;
  size_t cap = 1 << 16, n = 0;
  char *out = calloc(1, cap);
  CHECK_INT(sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL), SQLITE_OK);
  while (st && sqlite3_step(st) == SQLITE_ROW) {
    for (int c = 0; c < sqlite3_column_count(st); c++) {
      const char *v = (const char *)sqlite3_column_text(st, c);
      n += (size_t)snprintf(out + n, cap - n, "%s%s", v ? v : "NULL", c ? "|" : "|");
      if (n >= cap - 256) break;
    }
    n += (size_t)snprintf(out + n, cap - n, ";");
    if (n >= cap - 256) break;
  }
  sqlite3_finalize(st);
  return out;
}

static void same_rows(store *s, const char *a, const char *b) {
  char *x = rows_of(s, a), *y = rows_of(s, b);
  CHECK(*x);
  CHECK_STR(x, y);
  free(x);
  free(y);
}

/* What the log says: counts by type, and the outcome rows of each id. */
#define LOG_COUNTS "SELECT type, count(*) FROM events GROUP BY type ORDER BY type"
#define KEPT_COUNTS "SELECT type, n FROM event_counts WHERE n > 0 ORDER BY type"
#define LOG_OUTCOMES                                                              \
  "SELECT seq, unit, ts, type, rev FROM (SELECT seq, customer AS unit, ts, type," \
  " CASE WHEN type = 'purchase' THEN json_extract(body, '$.revenue') ELSE 0.0 END AS rev" \
  " FROM events WHERE customer IS NOT NULL UNION ALL SELECT seq, anon, ts, type,"  \
  " CASE WHEN type = 'purchase' THEN json_extract(body, '$.revenue') ELSE 0.0 END" \
  " FROM events WHERE anon IS NOT NULL AND anon IS NOT customer)"                    \
  " WHERE type IN ('purchase', 'rec_clicked', 'add_to_cart') ORDER BY seq, unit"
#define KEPT_OUTCOMES "SELECT seq, unit, ts, type, revenue FROM outcomes ORDER BY seq, unit"
/* The experiment report's join as it was, over the log. */
/* The report as a person-level join over the log (not the outcomes
   table): a customer with the anon ids linked to them is one person, in
   the arm of their first exposure, each event once. */
#define LOG_REPORT                                                                 \
  "WITH f AS (SELECT experiment, person, variant, min(ts) AS ts FROM ("            \
  "  SELECT x.experiment, x.variant, x.ts, coalesce(i.customer, x.unit) AS person" \
  "  FROM exposures x LEFT JOIN identities i ON i.anon = x.unit)"                   \
  "  GROUP BY experiment, person),"                                                 \
  " ids AS (SELECT person, person AS id FROM f UNION"                               \
  "  SELECT f.person, i.anon FROM f JOIN identities i ON i.customer = f.person),"    \
  " o AS (SELECT DISTINCT f.experiment, f.person, e.seq, e.type,"                   \
  "  coalesce(json_extract(e.body, '$.revenue'), 0) AS rev"                         \
  "  FROM f JOIN ids ON ids.person = f.person"                                      \
  "  JOIN events e ON (e.customer = ids.id OR e.anon = ids.id)"                     \
  "  WHERE e.ts >= f.ts AND e.ts < f.ts + 3600000"                                  \
  "    AND e.type IN ('purchase', 'rec_clicked', 'add_to_cart'))"                   \
  " SELECT f.experiment, f.variant, f.person, coalesce(sum(o.type = 'purchase'), 0)," \
  "  coalesce(sum(CASE WHEN o.type = 'purchase' THEN o.rev END), 0),"                \
  "  coalesce(sum(o.type = 'rec_clicked'), 0), coalesce(sum(o.type = 'add_to_cart'), 0)" \
  " FROM f LEFT JOIN o ON o.experiment = f.experiment AND o.person = f.person"       \
  " GROUP BY f.experiment, f.person ORDER BY f.experiment, f.person"

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The report's rows (store_exposure_outcomes, or the join over the log
   when `rows` is NULL) as sorted text: units of a variant come in no
   particular order. */
static const char *report_text(store *s, json_t *rows) {
  static char out[2][4096];
  static int which;
  char *lines[64];
  size_t n = 0;
  if (rows) {
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) {
      if (n == 64) break;
      lines[n] = malloc(200);
      snprintf(lines[n++], 200, "%s|%s|%lld|%.6f|%lld|%lld",
               json_string_value(json_array_get(r, 0)), json_string_value(json_array_get(r, 1)),
               (long long)json_integer_value(json_array_get(r, 2)),
               json_number_value(json_array_get(r, 3)),
               (long long)json_integer_value(json_array_get(r, 4)),
               (long long)json_integer_value(json_array_get(r, 5)));
    }
  } else {
    sqlite3_stmt *st = NULL;
    CHECK_INT(sqlite3_prepare_v2(store_db(s), LOG_REPORT, -1, &st, NULL), SQLITE_OK);
    while (st && sqlite3_step(st) == SQLITE_ROW && n < 64) {
      lines[n] = malloc(200);
      snprintf(lines[n++], 200, "%s|%s|%lld|%.6f|%lld|%lld", sqlite3_column_text(st, 0),
               sqlite3_column_text(st, 1), sqlite3_column_int64(st, 3),
               sqlite3_column_double(st, 4), sqlite3_column_int64(st, 5),
               sqlite3_column_int64(st, 6));
    }
    sqlite3_finalize(st);
  }
  qsort(lines, n, sizeof *lines, cmp_str);
  char *o = out[which++ % 2];
  size_t len = 0;
  o[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    len += (size_t)snprintf(o + len, sizeof out[0] - len, "%s;", lines[i]);
    free(lines[i]);
    if (len >= sizeof out[0]) break;
  }
  return o;
}

/* The store `name` in the test folder (its path into `path`), or NULL
   (a failed check, with the reason). */
static store *open_named(const char *name, char *path, size_t n) {
  snprintf(path, n, "%s/%s", dir, name);
  tailor_error err = {0};
  store *s = store_open(path, NULL, &err);
  CHECK(s != NULL);
  if (!s) fprintf(stderr, "%s: %s\n", name, err.message);
  return s;
}

static void append_all(store *s, const char *const *lines, size_t n) {
  ev e[16];
  ev *ptrs[16];
  tailor_error err = {0};
  for (size_t i = 0; i < n; i++) {
    parse(&e[i], lines[i]);
    ptrs[i] = &e[i];
  }
  CHECK_INT(store_append(s, ptrs, n, NULL, &err), TAILOR_OK);
  for (size_t i = 0; i < n; i++) ev_clear(&e[i]);
}

/* Migration 6 -> 7 fills the counts and outcomes from the log; appends and
   erasure keep them equal to it; the experiment report through them
   equals the join over the log. */
static void test_counts_and_outcomes(void) {
  static const char *const first[] = {
      "{\"type\":\"view\",\"item\":\"i1\",\"anon\":\"a1\",\"ts\":1700000000000}",
      "{\"type\":\"rec_clicked\",\"item\":\"i1\",\"anon\":\"a1\",\"ts\":1700000001000}",
      "{\"type\":\"add_to_cart\",\"item\":\"i1\",\"customer\":\"c1\",\"anon\":\"a1\",\"ts\":1700000002000}",
      "{\"type\":\"purchase\",\"order_id\":\"o1\",\"customer\":\"c1\",\"anon\":\"a1\",\"ts\":1700000003000,"
      "\"items\":[{\"id\":\"i1\",\"price\":12.5,\"quantity\":2}]}",
      "{\"type\":\"purchase\",\"order_id\":\"o2\",\"anon\":\"a2\",\"ts\":1700000004000,\"revenue\":7,"
      "\"items\":[{\"id\":\"i1\"}]}",
      "{\"type\":\"add_to_cart\",\"item\":\"i1\",\"customer\":\"same\",\"anon\":\"same\",\"ts\":1700000005000}",
  };
  static const char *const later[] = {
      "{\"type\":\"rec_clicked\",\"item\":\"i1\",\"customer\":\"c2\",\"ts\":1700000006000}",
      "{\"type\":\"purchase\",\"order_id\":\"o3\",\"customer\":\"c2\",\"ts\":1700000007000,"
      "\"items\":[{\"id\":\"i1\",\"price\":3}]}",
      "{\"type\":\"purchase\",\"order_id\":\"o4\",\"anon\":\"a1\",\"session\":\"s1\",\"ts\":1700000008000,"
      "\"items\":[{\"id\":\"i1\",\"price\":4}]}",
      "{\"type\":\"rec_shown\",\"items\":[{\"id\":\"i1\"}],\"anon\":\"a3\",\"ts\":1700000009000}",
  };
  char path[600];
  snprintf(path, sizeof path, "%s/counts.db", dir);
  tailor_error err = {0};
  store *s = store_open(path, NULL, &err);
  CHECK(s != NULL);
  if (!s) return;
  append_all(s, first, sizeof first / sizeof *first);
  /* Back to version 6, as a store written before these tables (and the
     later ones). */
  CHECK_INT(store_exec(s, "DROP TRIGGER events_deleted; DROP TABLE event_counts;"
                          "DROP TABLE outcomes; DROP TABLE consents;"
                          "ALTER TABLE contacts DROP COLUMN is_anon; PRAGMA user_version=6",
                       &err), TAILOR_OK);
  store_close(s);
  s = store_open(path, NULL, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(store_schema_version(s), STORE_SCHEMA_VERSION);
  same_rows(s, LOG_COUNTS, KEPT_COUNTS);
  same_rows(s, LOG_OUTCOMES, KEPT_OUTCOMES);
  char *kept = rows_of(s, KEPT_OUTCOMES);
  CHECK_CONTAINS(kept, "|same|"); /* one row for an event naming one id twice */
  CHECK(!strstr(strstr(kept, "|same|") + 1, "|same|"));
  free(kept);

  append_all(s, later, sizeof later / sizeof *later);
  same_rows(s, LOG_COUNTS, KEPT_COUNTS);
  same_rows(s, LOG_OUTCOMES, KEPT_OUTCOMES);
  CHECK_INT(store_count(s, "events"), 10);
  json_t *counts = store_event_counts(s);
  CHECK_INT(json_integer_value(json_object_get(counts, "purchase")), 4);
  CHECK_INT(json_integer_value(json_object_get(counts, "rec_shown")), 1);
  json_decref(counts);

  /* The report through the outcomes equals the join over the log. */
  static const store_exposure expo[] = {
      {"e", "control", "a1", 1700000000500},
      {"e", "b", "c1", 1700000000000},
      {"e", "b", "a2", 1700000004000},
      {"e", "control", "nobody", 1700000000000},
  };
  CHECK_INT(store_exposures_add(s, expo, 4, &err), TAILOR_OK);
  json_t *got = store_exposure_outcomes(s, 3600000, &err);
  CHECK_STR(report_text(s, got), report_text(s, NULL));
  /* c1 and a1 (linked by an order naming both) are one person, in b (c1's
     exposure came first), with o1 and o4 once each. */
  CHECK_CONTAINS(report_text(s, got), "e|b|2|29.000000|1|1;");
  CHECK(!strstr(report_text(s, got), "e|control|2|"));
  json_decref(got);

  /* Erasure: the customer's rows leave the counts and the outcomes. */
  CHECK_INT(store_forget(s, "c1", NULL, NULL, &err), TAILOR_OK);
  same_rows(s, LOG_COUNTS, KEPT_COUNTS);
  same_rows(s, LOG_OUTCOMES, KEPT_OUTCOMES);
  CHECK_INT(store_count(s, "events"), 5); /* a1 was linked to c1 */
  store_close(s);
}

/* What a scan reads back: each event's seq and its item. */
typedef struct seen {
  int64_t seq[64];
  char item[64][16];
  size_t n;
} seen;

static int seen_cb(void *ud, int64_t seq, const ev *e) {
  seen *v = ud;
  if (v->n < 64) {
    v->seq[v->n] = seq;
    snprintf(v->item[v->n], sizeof v->item[v->n], "%s", e->n_lines ? e->lines[0].item : "");
    v->n++;
  }
  return 0;
}

/* A batch long enough for the multi-row INSERT (runs of events without
   message ids), with message ids between the runs, one a repeat: every
   event gets the seq of its own row, in order, and the repeat none. */
static void test_long_batch_seqs(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/runs.db", dir);
  tailor_error err = {0};
  store *s = store_open(path, NULL, &err);
  CHECK(s != NULL);
  if (!s) return;
  enum { N = 50 };
  ev e[N];
  ev *ptrs[N];
  for (int i = 0; i < N; i++) {
    char json[160];
    /* ids at 20 and 41 (the same id: 41 repeats 20) */
    const char *msg = i == 20 || i == 41 ? ",\"message_id\":\"m20\"" : i == 37 ? ",\"message_id\":\"m37\"" : "";
    snprintf(json, sizeof json, "{\"type\":\"view\",\"item\":\"i%d\",\"anon\":\"a%d\"%s}", i, i % 7, msg);
    parse(&e[i], json);
    ptrs[i] = &e[i];
  }
  int64_t seqs[N];
  CHECK_INT(store_append(s, ptrs, N, seqs, &err), TAILOR_OK);
  CHECK(!e[20].dup && e[41].dup && !e[37].dup);
  CHECK_INT(seqs[41], 0);
  CHECK_INT(store_count(s, "events"), N - 1);
  seen v = {{0}, {{0}}, 0};
  CHECK_INT(store_scan(s, 0, seen_cb, &v, &err), TAILOR_OK);
  CHECK_INT(v.n, N - 1);
  for (size_t i = 0, k = 0; i < N && k < v.n; i++) {
    if (i == 41) continue;
    char want[16];
    snprintf(want, sizeof want, "i%zu", i);
    CHECK_INT(seqs[i], v.seq[k]); /* the seq handed back is the row's */
    CHECK_STR(v.item[k], want);
    k++;
  }
  json_t *counts = store_event_counts(s);
  CHECK_INT(json_integer_value(json_object_get(counts, "view")), N - 1);
  json_decref(counts);
  for (int i = 0; i < N; i++) ev_clear(&e[i]);
  store_close(s);
}

/* A popup's contact keeps which kind of id it names: a stranger's
   anonymous id "c1" is not customer c1 (their contacts capped c1's emails).
   A store of version 8 reads its rows as a customer's when the id is one
   (a profile, a login, or an event naming it as the customer: c4), as an
   anonymous id's otherwise. */
static void test_contacts_kind(void) {
  char path[600];
  tailor_error err = {0};
  store *s = open_named("contacts.db", path, sizeof path);
  if (!s) return;
  CHECK_INT(store_exec(s, "BEGIN", &err), TAILOR_OK);
  CHECK_INT(store_contact_add(s, NULL, "c1", "popup", "ask", 1000, &err), TAILOR_OK);
  CHECK_INT(store_exec(s, "COMMIT", &err), TAILOR_OK);
  CHECK_INT(store_contacts_between(s, "c1", NULL, NULL, 0, 2000, NULL), 0);
  CHECK_INT(store_contacts_between(s, NULL, "c1", NULL, 0, 2000, NULL), 1);
  /* Back to version 8, with rows of each kind. */
  CHECK_INT(store_exec(s, "DELETE FROM contacts; ALTER TABLE contacts DROP COLUMN is_anon;"
                          "INSERT INTO customers(id, body, created, updated) VALUES ('c1', '{}', 0, 0);"
                          "INSERT INTO identities(anon, customer, linked) VALUES ('v2', 'c2', 0);"
                          "INSERT INTO events(ts, type, customer, body) VALUES (1, 'view', 'c4', '{}');"
                          "INSERT INTO contacts VALUES ('c1', 'popup', 'ask', 1000),"
                          " ('c2', 'popup', 'ask', 1000), ('v3', 'popup', 'ask', 1000),"
                          " ('c4', 'popup', 'ask', 1000);"
                          "PRAGMA user_version=8",
                       &err), TAILOR_OK);
  store_close(s);
  s = store_open(path, NULL, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(store_schema_version(s), STORE_SCHEMA_VERSION);
  char *kinds = rows_of(s, "SELECT unit, is_anon FROM contacts ORDER BY unit");
  CHECK_STR(kinds, "c1|0|;c2|0|;c4|0|;v3|1|;");
  free(kinds);
  store_close(s);
}

/* An anonymous id stays with the first customer it was linked to, as in the
   index: a second customer signing in on the same browser (a shared
   computer) took it over in the store alone, and their export then held
   the first one's events, which their erasure deleted. */
static void test_identity_first_link(void) {
  char path[600];
  tailor_error err = {0};
  store *s = open_named("identity.db", path, sizeof path);
  if (!s) return;
  const char *lines[] = {
      "{\"type\":\"view\",\"item\":\"i1\",\"anon\":\"v1\"}",
      "{\"type\":\"identify\",\"customer\":\"c1\",\"anon\":\"v1\"}",
      "{\"type\":\"identify\",\"customer\":\"c2\",\"anon\":\"v1\"}",
      "{\"type\":\"view\",\"item\":\"i2\",\"customer\":\"c2\",\"anon\":\"v1\"}",
  };
  append_all(s, lines, sizeof lines / sizeof *lines);
  char *links = rows_of(s, "SELECT anon, customer FROM identities");
  CHECK_STR(links, "v1|c1|;");
  free(links);
  json_t *x = store_export_customer(s, "c2", &err);
  CHECK(x != NULL);
  CHECK_INT((long)json_array_size(json_object_get(x, "identities")), 0);
  json_decref(x);
  /* A store of version 9 written by an older build, which moved the link
     to c2: its upgrade takes the link again from the log. */
  CHECK_INT(store_exec(s, "UPDATE identities SET customer = 'c2', linked = 3;"
                          "PRAGMA user_version=9", &err), TAILOR_OK);
  store_close(s);
  s = store_open(path, NULL, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(store_schema_version(s), STORE_SCHEMA_VERSION);
  links = rows_of(s, "SELECT anon, customer FROM identities");
  CHECK_STR(links, "v1|c1|;");
  free(links);
  x = store_export_customer(s, "c2", &err); /* c1's view before login is not c2's */
  char *text = x ? json_dumps(json_object_get(x, "events"), JSON_COMPACT) : NULL;
  CHECK(text && !strstr(text, "\"i1\"") && strstr(text, "\"i2\""));
  free(text);
  json_decref(x);
  int64_t erased = 0;
  CHECK_INT(store_forget(s, "c1", &erased, NULL, &err), TAILOR_OK);
  CHECK_INT(erased, 2); /* their view before login goes with their login */
  store_close(s);
}

/* A customer's export and erasure take the events the index counts as
   theirs: not a second customer's that carry the anonymous id they shared
   (one browser), nor another visitor's that carry one of their session ids
   (ids a sender chose: GA4's are the session's start time in seconds). */
static void test_person_events(void) {
  char path[600];
  tailor_error err = {0};
  store *s = open_named("person.db", path, sizeof path);
  if (!s) return;
  const char *lines[] = {
      "{\"type\":\"view\",\"item\":\"i1\",\"anon\":\"v1\",\"session\":\"s1\"}",
      "{\"type\":\"identify\",\"customer\":\"c1\",\"anon\":\"v1\"}",
      "{\"type\":\"page_view\",\"session\":\"s1\"}",
      "{\"type\":\"search\",\"query\":\"other\",\"anon\":\"v9\",\"session\":\"s1\"}",
      "{\"type\":\"search\",\"query\":\"second\",\"customer\":\"c2\",\"anon\":\"v1\","
      "\"session\":\"s2\"}",
      "{\"type\":\"page_view\",\"session\":\"s2\"}",
  };
  append_all(s, lines, sizeof lines / sizeof *lines);
  json_t *x = store_export_customer(s, "c1", &err);
  CHECK(x != NULL);
  char *text = x ? json_dumps(json_object_get(x, "events"), JSON_COMPACT) : NULL;
  CHECK(text && strstr(text, "\"i1\"") && strstr(text, "page_view"));
  CHECK(text && !strstr(text, "other") && !strstr(text, "second"));
  free(text);
  json_decref(x);
  int64_t erased = 0;
  json_t *sessions = NULL;
  CHECK_INT(store_forget(s, "c1", &erased, &sessions, &err), TAILOR_OK);
  CHECK_INT(erased, 3); /* the view, the login, the page of s1 */
  text = json_dumps(sessions, JSON_COMPACT);
  CHECK_STR(text, "[\"s1\"]");
  free(text);
  json_decref(sessions);
  CHECK_INT(store_count(s, "events"), 3);
  store_close(s);
}

int main(void) {
  const char *tmp = getenv("TAILOR_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/storeXXXXXX", tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) return 1;
  RUN(test_append_scan_reopen);
  RUN(test_newer_schema_refused);
  RUN(test_older_schema_beside_writer);
  RUN(test_not_a_database);
  RUN(test_one_writer);
  RUN(test_uri_writer_refused);
  RUN(test_outbox_idempotent);
  RUN(test_counts_and_outcomes);
  RUN(test_long_batch_seqs);
  RUN(test_contacts_kind);
  RUN(test_identity_first_link);
  RUN(test_person_events);
  return CHECK_DONE();
}
