/*
** test_trend.c: the trending tables' kept top list against brute force
** (random bumps into small tables, with evictions, table growth and
** decay, then a checkpoint round trip), and the trend tables of a joined
** key ("country+gender") as a person's attributes change.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "index/index.h"
#include "index/trend.h"

#define T0 1700000000000LL
#define DAY 86400000LL

/* The table's heaviest items by brute force over every slot, as topk
   orders them (heavier first, ties by the smaller id). */
static int heavier(const void *pa, const void *pb) {
  const topk_entry *a = pa, *b = pb;
  if (a->score != b->score) return a->score < b->score ? 1 : -1;
  return a->id < b->id ? -1 : a->id > b->id;
}

static size_t brute_top(const trend *t, const trend_table *tb, size_t k, topk_entry *out) {
  size_t n = 0;
  topk_entry *all = calloc(tb->size, sizeof *all);
  for (uint32_t s = 0; s < tb->size; s++)
    if (tb->slot[s].key) {
      uint32_t item = TREND_KEY(tb->slot[s].key) - 1;
      all[n++] = (topk_entry){item, 0, trend_weight(t, tb, item, T0)};
    }
  qsort(all, n, sizeof *all, heavier);
  if (n > k) n = k;
  memcpy(out, all, n * sizeof *out);
  free(all);
  return n;
}

/* The list is the exact top, and its items' slots know they are listed. */
static void check_table(const trend *t, const trend_table *tb) {
  topk_entry *got = calloc(t->top_max, sizeof *got), *want = calloc(t->top_max, sizeof *want);
  size_t n = trend_top_k(t, tb, NULL, NULL, T0, t->top_max, got);
  CHECK_INT(n, brute_top(t, tb, t->top_max, want));
  for (size_t i = 0; i < n; i++) {
    CHECK_INT(got[i].id, want[i].id);
    CHECK_NEAR(got[i].score, want[i].score, 1e-3);
  }
  /* Exactly the listed items' slots are marked, and each mark's item is
     in the list with its slot's weight. */
  uint32_t listed = 0;
  for (uint32_t s = 0; s < tb->size; s++) {
    if (!(tb->slot[s].key & TREND_LISTED)) continue;
    listed++;
    uint32_t j = 0;
    while (j < tb->ntop && tb->top[j] != TREND_KEY(tb->slot[s].key) - 1) j++;
    CHECK(j < tb->ntop && tb->top_w[j] == tb->slot[s].w);
  }
  CHECK_INT(listed, tb->ntop);
  free(got);
  free(want);
}

/* 3 tables of `top` listed items out of `items`, with a skewed popularity,
   time moving on so later bumps weigh more (forward decay) and the list
   reorders: an item new to a long list climbs past the places walked and
   finds the rest by binary search. */
static void check_exact(uint32_t top, int items) {
  trend t;
  trend_init(&t, 7, top, 0);
  srand(7);
  for (int i = 0; i < 20000; i++) {
    char value[8];
    snprintf(value, sizeof value, "%d", i % 3);
    uint32_t item = (uint32_t)(rand() % items);
    if (rand() % 2) item %= (uint32_t)items / 10;
    int64_t ts = T0 - 30 * DAY + (int64_t)i * (30 * DAY / 20000);
    CHECK_INT(trend_bump(&t, "k", value, item, ts, 1 + rand() % 3), 0);
  }
  for (int v = 0; v < 3; v++) {
    char value[8];
    snprintf(value, sizeof value, "%d", v);
    const trend_table *tb = trend_find(&t, "k", value);
    CHECK(tb != NULL);
    if (!tb) continue;
    CHECK_INT(tb->ntop, top);
    check_table(&t, tb);
  }
  trend_free(&t);
}

static void test_top_list_is_exact(void) {
  check_exact(12, 200);
  check_exact(64, 2000);
  check_exact(256, 5000);
}

/* The same after a checkpoint: the places are rebuilt on load, and bumps
   after the load keep the list exact. */
static void test_top_list_after_load(void) {
  const char *dir = getenv("TAILOR_TEST_TMP");
  char path[512];
  snprintf(path, sizeof path, "%s/test_trend.ckpt", dir ? dir : "/tmp");
  idx_config cfg = {.trend_half_life_days = 7};
  idx *x = idx_new(&cfg);
  char line[256];
  srand(11);
  for (int i = 0; i < 3000; i++) {
    snprintf(line, sizeof line,
             "{\"type\":\"view\",\"item\":\"i%d\",\"anon\":\"v%d\",\"session\":\"s%d\",\"ts\":%lld}",
             rand() % 400, i % 50, i % 50, (long long)(T0 - DAY + i * 1000));
    ev e;
    tailor_error err = {0};
    ev_limits lim = {0, 0, T0, 0, 0, 0};
    CHECK_INT(ev_parse(line, strlen(line), &lim, &e, &err), TAILOR_OK);
    CHECK_INT(idx_apply(x, &e), TAILOR_OK);
    ev_clear(&e);
  }
  tailor_error err = {0};
  int64_t seq = 0;
  CHECK_INT(idx_save(x, path, idx_fingerprint(x), 3000, &err), 0);
  idx *y = idx_load(path, &cfg, idx_fingerprint(x), &seq, &err);
  if (!y) fprintf(stderr, "%s\n", err.message);
  CHECK(y != NULL);
  if (y) {
    const trend_table *tb = trend_find(&y->trend, "", "");
    CHECK(tb != NULL);
    if (tb) {
      for (int i = 0; i < 500; i++)
        CHECK_INT(trend_add(&y->trend, (uint32_t)(tb - y->trend.tables), (uint32_t)(rand() % 400), 1 + i % 7), 0);
      check_table(&y->trend, tb);
    }
    idx_free(y);
  }
  idx_free(x);
  remove(path);
}

static void apply(idx *x, const char *json) {
  ev e;
  tailor_error err = {0};
  ev_limits lim = {0, 0, T0, 0, 0, 0};
  int rc = ev_parse(json, strlen(json), &lim, &e, &err);
  if (rc) fprintf(stderr, "%s\n", err.message);
  CHECK_INT(rc, TAILOR_OK);
  if (rc) return;
  CHECK_INT(idx_apply(x, &e), TAILOR_OK);
  ev_clear(&e);
}

/* "country+gender": each view counts in the table of the person's pair of
   values at the time, found again by name ("DE|female"). */
static void test_joined_key(void) {
  idx_config cfg = {.trend_half_life_days = -1, .trend_keys = "country,country+gender"};
  idx *x = idx_new(&cfg);
  apply(x, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c1\",\"attrs\":{\"country\":\"DE\",\"gender\":\"female\"}}}");
  apply(x, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c2\",\"attrs\":{\"country\":\"DE\",\"gender\":\"male\"}}}");
  apply(x, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c3\",\"attrs\":{\"country\":\"FR\"}}}");
  apply(x, "{\"type\":\"view\",\"item\":\"a\",\"customer\":\"c1\"}");
  apply(x, "{\"type\":\"view\",\"item\":\"b\",\"customer\":\"c1\"}");
  apply(x, "{\"type\":\"view\",\"item\":\"c\",\"customer\":\"c2\"}");
  apply(x, "{\"type\":\"view\",\"item\":\"d\",\"customer\":\"c3\"}"); /* no gender: no pair */
  topk_entry out[8];
  CHECK_INT(idx_trending(x, "country+gender", "DE|female", NULL, T0, 8, out), 2);
  CHECK_INT(idx_trending(x, "country+gender", "DE|male", NULL, T0, 8, out), 1);
  CHECK_INT(out[0].id, idx_item_id(x, "c"));
  CHECK_INT(idx_trending(x, "country", "FR", NULL, T0, 8, out), 1);
  /* c1 moves to France: later views go to FR|female. */
  apply(x, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c1\",\"attrs\":{\"country\":\"FR\",\"gender\":\"female\"}}}");
  apply(x, "{\"type\":\"view\",\"item\":\"e\",\"customer\":\"c1\"}");
  CHECK_INT(idx_trending(x, "country+gender", "FR|female", NULL, T0, 8, out), 1);
  CHECK_INT(out[0].id, idx_item_id(x, "e"));
  CHECK_INT(idx_trending(x, "country+gender", "DE|female", NULL, T0, 8, out), 2);
  /* Many pairs: the cache grows and every pair keeps its own table. */
  char line[256];
  for (int i = 0; i < 40; i++) {
    snprintf(line, sizeof line,
             "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"p%d\",\"attrs\":{\"country\":\"C%d\",\"gender\":\"g%d\"}}}",
             i, i % 8, i % 5);
    apply(x, line);
    snprintf(line, sizeof line, "{\"type\":\"view\",\"item\":\"x%d\",\"customer\":\"p%d\"}", i, i);
    apply(x, line);
  }
  for (int i = 0; i < 40; i++) {
    char value[32];
    snprintf(value, sizeof value, "C%d|g%d", i % 8, i % 5);
    CHECK_INT(idx_trending(x, "country+gender", value, NULL, T0, 8, out), 1); /* 40 = lcm(8, 5) pairs */
  }
  idx_free(x);
}

/* What a checkpoint read that failed part way leaves: table names read,
   their tables not (yet) allocated.  Freeing it read through a NULL table
   (a crafted checkpoint crashed `tailor stats` instead of being refused). */
static void test_free_names_without_tables(void) {
  trend t;
  trend_init(&t, 7, 10, 0);
  CHECK(intern_put(&t.names, "country=DE") != INTERN_NONE);
  CHECK(intern_put(&t.names, "country=FR") != INTERN_NONE);
  CHECK(t.tables == NULL);
  trend_free(&t);
  CHECK_INT((int)t.names.n, 0);
}

/* A person's attributes (anyone's to make up: a referrer's host, a country)
   take at most three quarters of the tables: the shop's categories keep a
   quarter (storefront props used them all up, and a new category had no
   trending). */
static void test_categories_keep_room(void) {
  trend t;
  trend_init(&t, 7, 10, 8);
  char v[16];
  int made = 0;
  for (int i = 0; i < 20; i++) {
    snprintf(v, sizeof v, "X%d", i);
    made += trend_table_id(&t, "country", v, 1) != INTERN_NONE;
  }
  CHECK_INT(made, 6);
  CHECK(trend_table_id(&t, "category", "Outdoor", 1) != INTERN_NONE);
  CHECK(trend_table_id(&t, "category", "Outdoor/Tents", 1) != INTERN_NONE);
  CHECK(trend_table_id(&t, "category", "Garden", 1) == INTERN_NONE); /* all 8 taken */
  trend_free(&t);
}

int main(void) {
  RUN(test_top_list_is_exact);
  RUN(test_categories_keep_room);
  RUN(test_free_names_without_tables);
  RUN(test_top_list_after_load);
  RUN(test_joined_key);
  return CHECK_DONE();
}
