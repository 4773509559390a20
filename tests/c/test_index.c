/*
** test_index.c: the co-occurrence and trending kernels against small cases
** computed by hand: exact scores, decay, the neighbour cap and its
** eviction, filters, several anchors, segments.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "index/index.h"

#define DAY 86400000LL
#define T0 1700000000000LL

static void test_cooc_measures_exact(void) {
  cooc c;
  cooc_init(&c, 8, 0); /* no decay: counts are plain */
  /* a: 3 occurrences, b: 2, c: 1; a-b twice, a-c once. */
  for (int i = 0; i < 3; i++) cooc_add_item(&c, 0, T0, 1);
  for (int i = 0; i < 2; i++) cooc_add_item(&c, 1, T0, 1);
  cooc_add_item(&c, 2, T0, 1);
  cooc_add_pair(&c, 0, 1, T0, 1);
  cooc_add_pair(&c, 0, 1, T0, 1);
  cooc_add_pair(&c, 0, 2, T0, 1);
  CHECK_NEAR(cooc_count(&c, 0, 1, T0), 2, 1e-9);
  CHECK_NEAR(cooc_count(&c, 1, 0, T0), 2, 1e-9); /* symmetric */
  cooc_params p;
  cooc_params_default(&p, COOC_COSINE);
  CHECK_NEAR(cooc_score(&c, &p, 0, 1, 2, T0), 2 / sqrt(6.0), 1e-9);
  CHECK_NEAR(cooc_score(&c, &p, 0, 2, 1, T0), 1 / sqrt(3.0), 1e-9);
  cooc_params_default(&p, COOC_JACCARD);
  CHECK_NEAR(cooc_score(&c, &p, 0, 1, 2, T0), 2.0 / 3.0, 1e-9);
  cooc_params_default(&p, COOC_ALSO); /* shrink 2, damping 0.3 */
  CHECK_NEAR(cooc_score(&c, &p, 0, 1, 2, T0), 2.0 / 5.0 / pow(2, 0.3), 1e-9);
  CHECK_NEAR(cooc_score(&c, &p, 0, 2, 1, T0), 1.0 / 5.0, 1e-9);

  topk_entry out[4];
  cooc_params_default(&p, COOC_COSINE);
  uint32_t a = 0;
  size_t n = cooc_top_k(&c, &p, &a, 1, NULL, NULL, T0, 4, out);
  CHECK_INT(n, 2);
  CHECK_INT(out[0].id, 1);
  CHECK_INT(out[0].aux, 0); /* because of the anchor */
  CHECK_NEAR(out[0].score, 2 / sqrt(6.0), 1e-9);
  CHECK_INT(out[1].id, 2);
  cooc_free(&c);
}

static void test_cooc_decay(void) {
  cooc c;
  cooc_init(&c, 8, 1.0); /* half-life one day */
  cooc_add_pair(&c, 0, 1, T0, 1);
  cooc_add_pair(&c, 0, 1, T0 + DAY, 1);
  CHECK_NEAR(cooc_count(&c, 0, 1, T0 + DAY), 1.5, 1e-6);
  CHECK_NEAR(cooc_count(&c, 0, 1, T0 + 3 * DAY), 0.375, 1e-6);
  /* Rebasing after many half-lives keeps the values. */
  cooc_add_pair(&c, 0, 1, T0 + 50 * DAY, 1);
  CHECK(c.d.t0 == T0 + 50 * DAY);
  CHECK_NEAR(cooc_count(&c, 0, 1, T0 + 50 * DAY), 1.0 + 1.5 / pow(2, 49), 1e-6);
  cooc_free(&c);
}

static void test_cooc_cap_space_saving(void) {
  cooc c;
  cooc_init(&c, 2, 0);
  for (int i = 0; i < 3; i++) cooc_add_pair(&c, 0, 1, T0, 1);
  cooc_add_pair(&c, 0, 2, T0, 1);
  cooc_add_pair(&c, 0, 3, T0, 1); /* full: 3 replaces 2 (lightest) */
  CHECK_INT(c.lists[0].n, 2);
  CHECK_NEAR(cooc_count(&c, 0, 1, T0), 3, 1e-9);
  CHECK_NEAR(cooc_count(&c, 0, 2, T0), 0, 1e-9);
  CHECK_NEAR(cooc_count(&c, 0, 3, T0), 2, 1e-9); /* inherits 1, adds 1 */
  cooc_free(&c);
}

/* A list past 8 neighbours (the vector path): the first of the lightest
   gives its place, wherever it stands. */
static void test_cooc_cap_weakest_wide(void) {
  cooc c;
  cooc_init(&c, 11, 0);
  for (uint32_t b = 1; b <= 11; b++) /* weights 3 but for 6 and 9: 1 */
    for (int k = 0; k < (b == 6 || b == 9 ? 1 : 3); k++) cooc_add_pair(&c, 0, b, T0, 1);
  cooc_add_pair(&c, 0, 20, T0, 1); /* takes 6's place: first of the two */
  CHECK_NEAR(cooc_count(&c, 0, 6, T0), 0, 1e-9);
  CHECK_NEAR(cooc_count(&c, 0, 9, T0), 1, 1e-9);
  CHECK_NEAR(cooc_count(&c, 0, 20, T0), 2, 1e-9);
  cooc_add_pair(&c, 0, 21, T0, 1); /* now 9 is the lightest */
  CHECK_NEAR(cooc_count(&c, 0, 9, T0), 0, 1e-9);
  CHECK_NEAR(cooc_count(&c, 0, 21, T0), 2, 1e-9);
  CHECK_INT(c.lists[0].n, 11);
  cooc_free(&c);
}

static void test_cooc_several_anchors(void) {
  cooc c;
  cooc_init(&c, 8, 0);
  for (uint32_t i = 0; i < 4; i++) cooc_add_item(&c, i, T0, 1);
  cooc_add_pair(&c, 0, 2, T0, 1); /* 2 relates to both anchors */
  cooc_add_pair(&c, 1, 2, T0, 1);
  cooc_add_pair(&c, 1, 2, T0, 1);
  cooc_add_pair(&c, 0, 3, T0, 1);
  cooc_params p;
  cooc_params_default(&p, COOC_JACCARD);
  uint32_t anchors[2] = {0, 1};
  topk_entry out[4];
  size_t n = cooc_top_k(&c, &p, anchors, 2, NULL, NULL, T0, 4, out);
  CHECK_INT(n, 2); /* anchors are never returned */
  CHECK_INT(out[0].id, 2);
  /* jaccard(0,2) = 1/(1+1-1) = 1; jaccard(1,2) = 2/(1+1-2) -> u = 0: 0 */
  CHECK_NEAR(out[0].score, 1.0, 1e-9);
  CHECK_INT(out[0].aux, 0);
  CHECK_INT(out[1].id, 3);
  cooc_free(&c);
}

static void test_trend_exact_top(void) {
  trend t;
  trend_init(&t, 0, 3, 0); /* no decay, top list of 3 */
  /* weights: item5=4, item1=3, item2=3, item3=1, item4=2 */
  const uint32_t seq[] = {3, 1, 2, 5, 5, 4, 1, 2, 5, 4, 1, 2, 5};
  for (size_t i = 0; i < sizeof seq / sizeof *seq; i++)
    CHECK_INT(trend_bump(&t, "", "", seq[i], T0, 1), 0);
  const trend_table *tb = trend_find(&t, "", "");
  CHECK(tb != NULL);
  topk_entry out[5];
  size_t n = trend_top_k(&t, tb, NULL, NULL, T0, 3, out);
  CHECK_INT(n, 3);
  CHECK_INT(out[0].id, 5);
  CHECK_NEAR(out[0].score, 4, 1e-9);
  CHECK_INT(out[1].id, 1); /* tie 3 = 3: smaller id first */
  CHECK_INT(out[2].id, 2);
  /* Asking for more than the list holds ranks the whole table. */
  n = trend_top_k(&t, tb, NULL, NULL, T0, 5, out);
  CHECK_INT(n, 5);
  CHECK_INT(out[3].id, 4);
  CHECK_INT(out[4].id, 3);
  CHECK(trend_find(&t, "country", "DE") == NULL);
  trend_free(&t);
}

static void test_trend_decay(void) {
  trend t;
  trend_init(&t, 1.0, 0, 0);
  trend_bump(&t, "", "", 1, T0, 1);
  trend_bump(&t, "", "", 1, T0, 1);
  trend_bump(&t, "", "", 2, T0 + DAY, 1.5);
  const trend_table *tb = trend_find(&t, "", "");
  topk_entry out[2];
  /* At T0 + 1 day: item1 = 2 * 0.5 = 1, item2 = 1.5. */
  CHECK_INT(trend_top_k(&t, tb, NULL, NULL, T0 + DAY, 2, out), 2);
  CHECK_INT(out[0].id, 2);
  CHECK_NEAR(out[0].score, 1.5, 1e-6);
  CHECK_NEAR(out[1].score, 1.0, 1e-6);
  trend_free(&t);
}

/* Build an index from JSON events. */
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

/* A file in the tests' scratch folder. */
static void scratch(char *path, size_t size, const char *name) {
  const char *tmp = getenv("TAILOR_TEST_TMP");
  snprintf(path, size, "%s/%s", tmp ? tmp : "/tmp", name);
}

/* x saved as a checkpoint at `seq` and loaded back (NULL when either
   fails); *loaded_seq (may be NULL) gets the sequence read back. */
static idx *reload(const idx *x, int64_t seq, int64_t *loaded_seq) {
  char path[512];
  scratch(path, sizeof path, "test_index_reload.ckpt");
  tailor_error err = {0};
  int64_t got = 0;
  CHECK_INT(idx_save(x, path, idx_fingerprint(x), seq, &err), TAILOR_OK);
  idx *y = idx_load(path, &x->cfg, idx_fingerprint(x), &got, &err);
  if (!y) fprintf(stderr, "reload: %s\n", err.message);
  if (loaded_seq) *loaded_seq = got;
  remove(path);
  return y;
}

/* The checkpoints of two indexes, byte for byte: their size when the
   same, else 0. */
static size_t same_checkpoint(const idx *one, const idx *many) {
  tailor_error err = {0};
  char a[512], b[512];
  scratch(a, sizeof a, "test_index_one.ckpt");
  scratch(b, sizeof b, "test_index_many.ckpt");
  CHECK_INT(idx_save(one, a, idx_fingerprint(one), 1, &err), TAILOR_OK);
  CHECK_INT(idx_save(many, b, idx_fingerprint(many), 1, &err), TAILOR_OK);
  size_t na = 0, nb = 0;
  char *da = util_read_file(a, &na), *db = util_read_file(b, &nb);
  size_t same = da && db && na == nb && memcmp(da, db, na) == 0 ? na : 0;
  free(da);
  free(db);
  remove(a);
  remove(b);
  return same;
}

/* Events applied in batches (idx_apply_batch, which looks ahead) leave
   the index byte for byte as one at a time does: same checkpoint. */
static void test_batch_same_as_one_by_one(void) {
  enum { N = 600 };
  static ev evs[N];
  tailor_error err = {0};
  ev_limits lim = {0, 0, T0, 0, 0, 0};
  char json[512];
  for (int i = 0; i < N; i++) {
    int s = i / 5, item = (i * 7) % 37;
    if (i % 50 == 0)
      snprintf(json, sizeof json, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"i%d\","
               "\"price\":%d,\"category\":\"C%d/S%d\"}}", item, 10 + item, item % 3, item % 5);
    else if (i % 5 == 4)
      snprintf(json, sizeof json, "{\"type\":\"purchase\",\"customer\":\"c%d\",\"anon\":\"a%d\","
               "\"order_id\":\"o%d\",\"ts\":%lld,\"items\":[{\"id\":\"i%d\",\"price\":5},"
               "{\"id\":\"i%d\",\"price\":7}]}", s % 9, s, i, (long long)(T0 + i * 1000),
               item, (item + 1) % 37);
    else
      snprintf(json, sizeof json, "{\"type\":\"%s\",\"item\":\"i%d\",\"anon\":\"a%d\","
               "\"session\":\"s%d\",\"ts\":%lld,\"props\":{\"country\":\"%s\","
               "\"medium\":\"cpc\",\"source\":\"x\"}}", i % 3 ? "view" : "add_to_cart",
               item, s, s, (long long)(T0 + i * 1000), s % 2 ? "DE" : "FR");
    int rc = ev_parse(json, strlen(json), &lim, &evs[i], &err);
    if (rc) fprintf(stderr, "%s: %s\n", json, err.message);
    CHECK_INT(rc, TAILOR_OK);
  }
  idx_config cfg = {.trend_keys = "country"};
  idx *one = idx_new(&cfg), *many = idx_new(&cfg);
  for (int i = 0; i < N; i++) CHECK_INT(idx_apply(one, &evs[i]), TAILOR_OK);
  const ev *p[N];
  int rcs[N];
  for (int i = 0; i < N; i++) p[i] = &evs[i];
  for (int i = 0; i < N; i += 7) /* batches of 7, the last one short */
    CHECK_INT(idx_apply_batch(many, p + i, i + 7 <= N ? 7 : (size_t)(N - i), rcs + i), TAILOR_OK);
  CHECK_INT(rcs[N - 1], TAILOR_OK);
  CHECK(same_checkpoint(one, many) > 1000);
  topk_entry out[4];
  CHECK_INT(idx_trending(many, "country", "DE", NULL, T0, 4, out), 4);
  CHECK(many->session[intern_get(&many->sessions, "s3")].source[0] != 0); /* medium */
  idx_free(one);
  idx_free(many);
  for (int i = 0; i < N; i++) ev_clear(&evs[i]);
}

/* A batch looks its events' people, sessions and items up ahead and keeps
   the ids for their turn; an erase applied meanwhile forgets some, and the
   events after it must not land on the forgotten ids: the batch leaves
   the index as one event at a time does. */
static void test_batch_erase_between(void) {
  char hex_c[65], hex_s[65], json[512];
  util_sha256_hex("c1", 2, hex_c);
  util_sha256_hex("s1", 2, hex_s);
  enum { N = 8 };
  static ev evs[N];
  ev_limits lim = {0, 0, T0, 0, 0, 0};
  lim.internal = 1; /* the erase is the log's own event */
  for (int i = 0; i < N; i++) {
    if (i == 2)
      snprintf(json, sizeof json, "{\"type\":\"erase\",\"customer_sha256\":\"%s\","
               "\"sessions_sha256\":[\"%s\"]}", hex_c, hex_s);
    else
      snprintf(json, sizeof json, "{\"type\":\"view\",\"item\":\"i%d\",\"customer\":\"c1\","
               "\"anon\":\"a1\",\"session\":\"s1\",\"ts\":%lld}", i % 3,
               (long long)(T0 + i * 1000));
    tailor_error err = {0};
    CHECK_INT(ev_parse(json, strlen(json), &lim, &evs[i], &err), TAILOR_OK);
  }
  idx *one = idx_new(NULL), *many = idx_new(NULL);
  for (int i = 0; i < N; i++) CHECK_INT(idx_apply(one, &evs[i]), TAILOR_OK);
  const ev *p[N];
  for (int i = 0; i < N; i++) p[i] = &evs[i];
  CHECK_INT(idx_apply_batch(many, p, N, NULL), TAILOR_OK);
  CHECK(one->people.forgets > 0 && many->people.forgets == one->people.forgets);
  CHECK_INT(many->people.n, one->people.n);
  CHECK(same_checkpoint(one, many) > 0);
  idx_free(one);
  idx_free(many);
  for (int i = 0; i < N; i++) ev_clear(&evs[i]);
}

/* A neighbour list may hold more than 32,768 neighbours (index.max_neighbors
   up to 65,535): its room doubles past what a 16-bit count holds without
   wrapping to nothing. */
static void test_cooc_long_list(void) {
  cooc c;
  cooc_init(&c, 40000, 0);
  enum { N = 32800 };
  for (uint32_t b = 1; b <= N; b++) CHECK_INT(cooc_add_pair_w(&c, 0, b, 1.0), 0);
  CHECK_INT(c.lists[0].n, N);
  CHECK(c.lists[0].cap >= N);
  CHECK_NEAR(cooc_count(&c, 0, N, T0), 1.0, 1e-9);
  CHECK_NEAR(cooc_count(&c, N, 0, T0), 1.0, 1e-9);
  cooc_free(&c);
}

/* A session's 16-bit counts stop at their top: the 65,536th popup shown in
   one session does not make it a session without popups. */
static void test_session_counts_saturate(void) {
  idx *x = idx_new(NULL);
  const char *json = "{\"type\":\"popup_shown\",\"name\":\"p\",\"anon\":\"v\","
                     "\"session\":\"s\"}";
  ev e;
  ev_limits lim = {0, 0, T0, 0, 0, 0};
  CHECK_INT(ev_parse(json, strlen(json), &lim, &e, NULL), TAILOR_OK);
  for (int i = 0; i < UINT16_MAX + 2; i++) idx_apply(x, &e);
  ev_clear(&e);
  uint32_t sid = intern_get(&x->sessions, "s");
  CHECK(sid != INTERN_NONE);
  if (sid != INTERN_NONE) CHECK_INT(x->session[sid].popups_shown, UINT16_MAX);
  idx_free(x);
}

/* A person's affinities loaded from a checkpoint keep growing there (the
   list's room is known from its length); categories and brands are told
   apart (items without a brand: no brand affinities). */
static void test_affinities_grow_after_load(void) {
  idx *x = idx_new(NULL);
  char json[256];
  for (int c = 0; c < 5; c++) {
    snprintf(json, sizeof json, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"i%d\","
             "\"category\":\"C%d\"}}", c, c);
    apply(x, json);
  }
  for (int c = 0; c < 3; c++) {
    snprintf(json, sizeof json, "{\"type\":\"view\",\"item\":\"i%d\",\"customer\":\"c1\"}", c);
    apply(x, json);
  }
  idx *y = reload(x, 1, NULL);
  CHECK(y != NULL);
  if (y) {
    for (int c = 3; c < 5; c++) {
      snprintf(json, sizeof json, "{\"type\":\"view\",\"item\":\"i%d\",\"customer\":\"c1\"}", c);
      apply(y, json);
    }
    idx_affinity aff[IDX_MAX_AFFINITIES];
    uint32_t c1 = idx_person_of(y, "c1", NULL);
    CHECK_INT(idx_person_affinities(y, c1, 0, T0, aff), 5); /* categories */
    CHECK_INT(idx_person_affinities(y, c1, 1, T0, aff), 0); /* no brands */
    idx_free(y);
  }
  idx_free(x);
}

static void test_index_relations_and_filters(void) {
  idx_config cfg = {.cooc_half_life_days = -1, .trend_half_life_days = -1,
                    .cross_order_weight = -1};
  idx *x = idx_new(&cfg);
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"jacket\",\"price\":150,\"category\":\"Women/Outerwear\"}}");
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"hat\",\"price\":20,\"category\":\"Accessories/Hats\"}}");
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"gloves\",\"price\":40,\"category\":\"Accessories/Gloves\"}}");
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"scarf\",\"price\":30,\"category\":\"Accessoriesx\",\"in_stock\":false}}");
  /* Two orders with jacket + hat, one with jacket + gloves + scarf. */
  apply(x, "{\"type\":\"purchase\",\"customer\":\"c1\",\"order_id\":\"o1\",\"items\":[{\"id\":\"jacket\"},{\"id\":\"hat\"}]}");
  apply(x, "{\"type\":\"purchase\",\"customer\":\"c2\",\"order_id\":\"o2\",\"items\":[{\"id\":\"jacket\"},{\"id\":\"hat\"}]}");
  apply(x, "{\"type\":\"purchase\",\"customer\":\"c3\",\"order_id\":\"o3\",\"items\":[{\"id\":\"jacket\"},{\"id\":\"gloves\"},{\"id\":\"scarf\"}]}");
  uint32_t jacket = idx_item_id(x, "jacket"), hat = idx_item_id(x, "hat"),
           gloves = idx_item_id(x, "gloves");
  cooc_params p;
  cooc_params_default(&p, COOC_COSINE);
  topk_entry out[8];
  idx_filter none = {0};
  size_t n = idx_related(x, IDX_COPURCHASE, &p, &jacket, 1, &none, T0, 8, out);
  CHECK_INT(n, 3);
  CHECK_INT(out[0].id, hat); /* 2 / sqrt(3 * 2) */
  CHECK_NEAR(out[0].score, 2 / sqrt(6.0), 1e-6);
  CHECK_INT(out[1].id, gloves); /* 1 / sqrt(3): ties with scarf, smaller id */
  idx_filter stock = {.in_stock = 1};
  CHECK_INT(idx_related(x, IDX_COPURCHASE, &p, &jacket, 1, &stock, T0, 8, out), 2);
  /* A stock of 0 sells out, written 0 or 0.0 (a float from the shop's
     backend); back in stock with some. */
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"gloves\",\"price\":40,\"stock\":0.0}}");
  CHECK_INT(idx_related(x, IDX_COPURCHASE, &p, &jacket, 1, &stock, T0, 8, out), 1);
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"gloves\",\"price\":40,\"stock\":2.0,"
           "\"category\":\"Accessories/Gloves\"}}");
  CHECK_INT(idx_related(x, IDX_COPURCHASE, &p, &jacket, 1, &stock, T0, 8, out), 2);
  idx_filter cat = {.category = "Accessories"}; /* not "Accessoriesx" */
  n = idx_related(x, IDX_COPURCHASE, &p, &jacket, 1, &cat, T0, 8, out);
  CHECK_INT(n, 2);
  idx_filter price = {.min_price = 25, .max_price = 100};
  n = idx_related(x, IDX_COPURCHASE, &p, &jacket, 1, &price, T0, 8, out);
  CHECK_INT(n, 2); /* gloves 40, scarf 30; hat 20 out */
  CHECK_INT(out[0].id, gloves);
  idx_filter ex = {.exclude = &hat, .nex = 1};
  n = idx_related(x, IDX_COPURCHASE, &p, &jacket, 1, &ex, T0, 8, out);
  CHECK(n == 2 && out[0].id != hat && out[1].id != hat);
  /* Trending: purchases weigh IDX_TREND_PURCHASE each; by category level. */
  n = idx_trending(x, "", "", &none, T0, 8, out);
  CHECK_INT(n, 4);
  CHECK_INT(out[0].id, jacket);
  CHECK_NEAR(out[0].score, 3 * IDX_TREND_PURCHASE, 1e-6);
  n = idx_trending(x, "category", "Accessories", &none, T0, 8, out);
  CHECK_INT(n, 2);
  CHECK_INT(out[0].id, hat);
  idx_free(x);
}

static void test_index_coview_window_and_segments(void) {
  idx_config cfg = {.coview_window = 2, .cooc_half_life_days = -1,
                    .trend_half_life_days = -1, .cross_order_weight = -1};
  idx *x = idx_new(&cfg);
  apply(x, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c1\",\"attrs\":{\"country\":\"DE\",\"gender\":\"female\"}}}");
  /* Session s1: a b c a — with a window of 2, c pairs with a and b; the
     second view of a is already in the window and adds nothing. */
  apply(x, "{\"type\":\"view\",\"item\":\"a\",\"customer\":\"c1\",\"session\":\"s1\"}");
  apply(x, "{\"type\":\"view\",\"item\":\"b\",\"customer\":\"c1\",\"session\":\"s1\"}");
  apply(x, "{\"type\":\"view\",\"item\":\"c\",\"customer\":\"c1\",\"session\":\"s1\"}");
  apply(x, "{\"type\":\"view\",\"item\":\"d\",\"customer\":\"c1\",\"session\":\"s1\"}");
  apply(x, "{\"type\":\"view\",\"item\":\"z\",\"anon\":\"v9\",\"session\":\"s2\",\"props\":{\"country\":\"FR\"}}");
  uint32_t a = idx_item_id(x, "a"), b = idx_item_id(x, "b"),
           c = idx_item_id(x, "c"), d = idx_item_id(x, "d");
  CHECK_NEAR(cooc_count(&x->coview, a, b, T0), 1, 1e-9);
  CHECK_NEAR(cooc_count(&x->coview, a, c, T0), 1, 1e-9);
  CHECK_NEAR(cooc_count(&x->coview, a, d, T0), 0, 1e-9); /* out of window */
  CHECK_NEAR(cooc_count(&x->coview, c, d, T0), 1, 1e-9);
  topk_entry out[8];
  CHECK_INT(idx_trending(x, "country", "DE", NULL, T0, 8, out), 4);
  CHECK_INT(idx_trending(x, "country", "FR", NULL, T0, 8, out), 1);
  CHECK_INT(out[0].id, idx_item_id(x, "z"));
  CHECK_STR(idx_person_attr(x, idx_person_of(x, NULL, "v9"), "country"), "FR");
  CHECK_INT(idx_trending(x, "gender", "female", NULL, T0, 8, out), 4);
  CHECK_INT(idx_trending(x, "", "", NULL, T0, 8, out), 5);
  idx_free(x);
}

static void test_content_similarity(void) {
  idx *x = idx_new(NULL);
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"trail\",\"price\":100,\"category\":\"Sport/Running/Shoes\",\"brand\":\"Velo\",\"tags\":[\"trail\",\"waterproof\"]}}");
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"road\",\"price\":100,\"category\":\"Sport/Running/Shoes\",\"brand\":\"Velo\",\"tags\":[\"road\"]}}");
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"sock\",\"price\":150,\"category\":\"Sport/Running/Socks\",\"brand\":\"Other\",\"tags\":[\"trail\"]}}");
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"sofa\",\"price\":100,\"category\":\"Home/Sofas\",\"brand\":\"Velo\"}}");
  uint32_t trail = idx_item_id(x, "trail"), road = idx_item_id(x, "road"),
           sock = idx_item_id(x, "sock");
  /* road: same category (0.5 * 3/3), brand (0.2), no common tag, same price (0.1) */
  CHECK_NEAR(idx_content_score(x, trail, road), 0.5 + 0.2 + 0.1, 1e-9);
  /* sock: 2 of 3 levels, other brand, tags 1/2 in common, price 1.5x */
  CHECK_NEAR(idx_content_score(x, trail, sock),
             0.5 * 2 / 3 + 0.2 * 1 / 2 + 0.1 * (1 - log(1.5) / log(2)), 1e-9);
  topk_entry out[4];
  size_t n = idx_similar(x, trail, NULL, 4, out);
  CHECK_INT(n, 2); /* the sofa shares no category level */
  CHECK_INT(out[0].id, road);
  CHECK_INT(out[1].id, sock);
  CHECK_INT(out[0].aux, trail);
  /* Moving an item to another category updates the lists. */
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"road\",\"price\":100,\"category\":\"Home/Sofas\"}}");
  n = idx_similar(x, trail, NULL, 4, out);
  CHECK_INT(n, 1);
  CHECK_INT(out[0].id, sock);
  idx_free(x);
}

/* A category of more items than the seen set's slots, all refused by the
   filter (sold out), and a few in stock: the query ends, with those few.
   (Refused items filled the set and its probe looped for ever.) */
static void test_similar_many_refused(void) {
  idx *x = idx_new(NULL);
  char line[256];
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"anchor\",\"price\":10,"
           "\"category\":\"Shoes\"}}");
  for (int i = 0; i < 1100; i++) {
    snprintf(line, sizeof line,
             "{\"type\":\"item_upsert\",\"item\":{\"id\":\"s%d\",\"price\":10,"
             "\"category\":\"Shoes\",\"in_stock\":false}}",
             i);
    apply(x, line);
  }
  for (int i = 0; i < 3; i++) {
    snprintf(line, sizeof line,
             "{\"type\":\"item_upsert\",\"item\":{\"id\":\"ok%d\",\"price\":10,"
             "\"category\":\"Shoes\"}}",
             i);
    apply(x, line);
  }
  idx_filter stock = {.in_stock = 1};
  topk_entry out[5];
  size_t n = idx_similar(x, idx_item_id(x, "anchor"), &stock, 5, out);
  CHECK_INT(n, 3);
  for (size_t i = 0; i < n; i++) CHECK_CONTAINS(intern_name(&x->items, out[i].id), "ok");
  idx_free(x);
}

/* A query scores its anchor's side once (category terms per category,
   prices within a factor of two): the same scores and the same top as
   idx_content_score over every item, prices on the factor-two edge too. */
static void test_similar_same_as_pairwise(void) {
  idx *x = idx_new(NULL);
  char line[400];
  for (int i = 0; i < 200; i++) {
    snprintf(line, sizeof line,
             "{\"type\":\"item_upsert\",\"item\":{\"id\":\"i%d\",\"price\":%d,"
             "\"category\":\"A/B%d/C%d\",\"brand\":\"b%d\",\"tags\":[\"t%d\",\"t%d\"]}}",
             i, i % 4 == 0 ? 50 : i % 4 == 1 ? 100 : 25 + i % 190, i % 3, i % 5, i % 7,
             i % 4, i % 6);
    apply(x, line);
  }
  enum { K = 30 };
  for (int a = 0; a < 200; a += 37) {
    snprintf(line, sizeof line, "i%d", a);
    uint32_t anchor = idx_item_id(x, line);
    topk_entry got[K], want[K];
    size_t n = idx_similar(x, anchor, NULL, K, got);
    CHECK_INT(n, K);
    topk h;
    topk_init(&h, want, K);
    for (uint32_t j = 0; j < x->items.n; j++)
      if (j != anchor) topk_push(&h, j, anchor, idx_content_score(x, anchor, j));
    CHECK_INT(topk_sorted(&h), K);
    for (size_t r = 0; r < K; r++) {
      CHECK_INT(got[r].id, want[r].id);
      CHECK(got[r].score == want[r].score);
    }
  }
  idx_free(x);
}

static void test_lifecycle_and_audiences(void) {
  idx_config cfg = {.lapsed_days = 30, .audience_days = "2,7,14"};
  idx *x = idx_new(&cfg);
  char line[300];
  /* v1: one visit now; v2: two visits; c1: ordered 40 days ago; c2 ordered
     a day ago and was seen 5 days before. */
  snprintf(line, sizeof line, "{\"type\":\"view\",\"item\":\"a\",\"anon\":\"v1\",\"session\":\"s1\",\"ts\":%lld}", T0);
  apply(x, line);
  snprintf(line, sizeof line, "{\"type\":\"view\",\"item\":\"a\",\"anon\":\"v2\",\"session\":\"s2\",\"ts\":%lld}", T0 - 3 * DAY);
  apply(x, line);
  snprintf(line, sizeof line, "{\"type\":\"view\",\"item\":\"a\",\"anon\":\"v2\",\"session\":\"s3\",\"ts\":%lld}", T0 - 3 * DAY + 1000);
  apply(x, line);
  snprintf(line, sizeof line, "{\"type\":\"purchase\",\"customer\":\"c1\",\"order_id\":\"o1\",\"items\":[{\"id\":\"a\",\"price\":10}],\"ts\":%lld}", T0 - 40 * DAY);
  apply(x, line);
  snprintf(line, sizeof line, "{\"type\":\"purchase\",\"customer\":\"c2\",\"order_id\":\"o2\",\"items\":[{\"id\":\"a\",\"price\":30}],\"ts\":%lld}", T0 - DAY);
  apply(x, line);
  idx_figures f;
  idx_person_figures(x, idx_person_of(x, NULL, "v1"), T0, &f);
  CHECK_INT(f.lifecycle, IDX_NEW_VISITOR);
  idx_person_figures(x, idx_person_of(x, NULL, "v2"), T0, &f);
  CHECK_INT(f.lifecycle, IDX_RETURNING_VISITOR);
  CHECK_INT(f.visits, 2);
  CHECK_NEAR(f.days_since_visit, 3, 1e-3);
  idx_person_figures(x, idx_person_of(x, "c1", NULL), T0, &f);
  CHECK_INT(f.lifecycle, IDX_LAPSED);
  CHECK_NEAR(f.days_since_order, 40, 1e-9);
  idx_person_figures(x, idx_person_of(x, "c2", NULL), T0, &f);
  CHECK_INT(f.lifecycle, IDX_CUSTOMER);
  CHECK_NEAR(f.avg_order, 30, 1e-9);
  idx_person_figures(x, INTERN_NONE, T0, &f);
  CHECK_INT(f.seen, 0);
  CHECK_INT(f.lifecycle, IDX_NEW_VISITOR);

  /* One audience each: v1 in the 2-day band, v2 in the 7-day band only,
     c2 a buyer only; c1 was seen too long ago. */
  idx_audience a;
  CHECK_INT(idx_person_audience(x, idx_person_of(x, NULL, "v1"), T0, &a), 1);
  CHECK_INT(a.kind, IDX_AUD_VISITORS);
  CHECK_INT(a.days, 2);
  CHECK_INT(idx_person_audience(x, idx_person_of(x, NULL, "v2"), T0, &a), 1);
  CHECK_INT(a.kind, IDX_AUD_VISITORS);
  CHECK_INT(a.days, 7);
  CHECK_INT(idx_person_audience(x, idx_person_of(x, "c2", NULL), T0, &a), 1);
  CHECK_INT(a.kind, IDX_AUD_BUYERS);
  CHECK_INT(a.days, 14);
  CHECK_INT(idx_person_audience(x, idx_person_of(x, "c1", NULL), T0, &a), 0);
  CHECK_INT(idx_audience_members(x, (idx_audience){IDX_AUD_VISITORS, 2}, T0, NULL, NULL), 1);
  CHECK_INT(idx_audience_members(x, (idx_audience){IDX_AUD_VISITORS, 7}, T0, NULL, NULL), 1);
  CHECK_INT(idx_audience_members(x, (idx_audience){IDX_AUD_VISITORS, 14}, T0, NULL, NULL), 0);
  CHECK_INT(idx_audience_members(x, (idx_audience){IDX_AUD_BUYERS, 14}, T0, NULL, NULL), 1);
  CHECK_INT(idx_audience_members(x, (idx_audience){IDX_AUD_CART_ABANDONERS, 2}, T0, NULL, NULL), 0);
  CHECK(idx_audience_exists(x, (idx_audience){IDX_AUD_VISITORS, 7}));
  CHECK(!idx_audience_exists(x, (idx_audience){IDX_AUD_VISITORS, 3}));
  CHECK(!idx_audience_exists(x, (idx_audience){IDX_AUD_BUYERS, 2}));
  CHECK(!idx_audience_exists(x, (idx_audience){IDX_AUD_CART_ABANDONERS, 14}));
  idx_free(x);
}

/*
** Audiences recomputed from the events: a generated history (known times,
** views, carts, removals, orders, logins that merge a visitor into a
** customer) goes into the index; the test keeps its own account of each
** person (last seen, last order, cart) and puts them in their audience by
** the rules of index.h, then compares with idx_person_audience and with
** idx_audience_members.  The windows are given out of order on purpose.
*/
#define AUD_PEOPLE 150
#define AUD_ITEMS 4

typedef struct aud_model {
  int64_t last_seen, last_order;
  int cart[AUD_ITEMS];
  int merged_into; /* a visitor who logged in: the customer's slot; else -1 */
} aud_model;

static uint32_t aud_rand(uint32_t *s) {
  *s = *s * 1103515245u + 12345u;
  return (*s >> 8) & 0xffffff;
}

static void aud_member(void *ud, uint32_t person) {
  idx_ids_push(ud, person);
}

typedef struct aud_event {
  int64_t ts;
  int person, item, roll;
} aud_event;

static int aud_by_time(const void *a, const void *b) {
  int64_t x = ((const aud_event *)a)->ts, y = ((const aud_event *)b)->ts;
  return (x > y) - (x < y);
}

static void test_audiences_recomputed(void) {
  idx_config cfg = {.audience_days = "7,2,14"};
  idx *x = idx_new(&cfg);
  /* Slots 0..149 are visitors "v<i>"; a visitor i with i % 3 == 2 logs in as
     "c<i>" from 10 days ago on; slots 150.. are those customers. */
  aud_model m[2 * AUD_PEOPLE];
  memset(m, 0, sizeof m);
  for (int i = 0; i < 2 * AUD_PEOPLE; i++) m[i].merged_into = -1;
  /* Each visitor is last active 0 to 18 days ago and has 1 to 8 events in
     the 5 days before; all of them in time order.  Times stay an hour clear
     of the windows' edges, so that nothing rides on a second. */
  aud_event evs[AUD_PEOPLE * 8];
  size_t nev = 0;
  uint32_t seed = 15;
  for (int i = 0; i < AUD_PEOPLE; i++) {
    int64_t end = T0 - (int64_t)(aud_rand(&seed) % (18 * 24)) * 3600000;
    int n = 1 + (int)(aud_rand(&seed) % 8);
    for (int k = 0; k < n; k++) {
      int64_t ts = end - (k ? (int64_t)(aud_rand(&seed) % (5 * 86400)) * 1000 : 0);
      int64_t age = T0 - ts;
      int item = (int)(aud_rand(&seed) % AUD_ITEMS), roll = (int)(aud_rand(&seed) % 100);
      if (llabs(age - 2 * DAY) < 3600000 || llabs(age - 7 * DAY) < 3600000 ||
          llabs(age - 14 * DAY) < 3600000)
        continue;
      evs[nev++] = (aud_event){ts, i, item, roll};
    }
  }
  qsort(evs, nev, sizeof *evs, aud_by_time);
  char line[300];
  for (size_t e = 0; e < nev; e++) {
    int64_t ts = evs[e].ts;
    int i = evs[e].person, item = evs[e].item, roll = evs[e].roll;
    const char *type = roll < 50 ? "view" : roll < 80 ? "add_to_cart"
                     : roll < 92 ? "remove_from_cart" : "purchase";
    int login = i % 3 == 2 && ts > T0 - 10 * DAY;
    char who[64];
    if (login) snprintf(who, sizeof who, "\"anon\":\"v%d\",\"customer\":\"c%d\"", i, i);
    else snprintf(who, sizeof who, "\"anon\":\"v%d\"", i);
    if (!strcmp(type, "purchase"))
      snprintf(line, sizeof line, "{\"type\":\"purchase\",%s,\"order_id\":\"o%zu\","
               "\"items\":[{\"id\":\"i%d\",\"price\":10}],\"ts\":%lld}", who, e, item,
               (long long)ts);
    else
      snprintf(line, sizeof line, "{\"type\":\"%s\",\"item\":\"i%d\",%s,\"ts\":%lld}",
               type, item, who, (long long)ts);
    apply(x, line);
    /* The test's own account. */
    aud_model *p = &m[i];
    if (login) {
      aud_model *c = &m[AUD_PEOPLE + i];
      if (p->merged_into < 0) { /* the login: the visitor's past moves over */
        p->merged_into = AUD_PEOPLE + i;
        c->last_seen = p->last_seen;
        c->last_order = p->last_order;
        memcpy(c->cart, p->cart, sizeof c->cart);
      }
      p = c;
    }
    p->last_seen = ts;
    if (!strcmp(type, "add_to_cart")) p->cart[item] = 1;
    if (!strcmp(type, "remove_from_cart") || !strcmp(type, "purchase")) p->cart[item] = 0;
    if (!strcmp(type, "purchase")) p->last_order = ts;
  }
  /* Each person's audience by the rules, counted per audience. */
  idx_audience all[] = {{IDX_AUD_BUYERS, 14}, {IDX_AUD_CART_ABANDONERS, 2},
                        {IDX_AUD_VISITORS, 2}, {IDX_AUD_VISITORS, 7},
                        {IDX_AUD_VISITORS, 14}};
  size_t expect[5] = {0}, seen_14 = 0;
  for (int s = 0; s < 2 * AUD_PEOPLE; s++) {
    const aud_model *p = &m[s];
    if (!p->last_seen || p->merged_into >= 0) continue;
    char id[16];
    snprintf(id, sizeof id, "%c%d", s < AUD_PEOPLE ? 'v' : 'c', s % AUD_PEOPLE);
    uint32_t person = s < AUD_PEOPLE ? idx_person_of(x, NULL, id) : idx_person_of(x, id, NULL);
    int64_t seen = T0 - p->last_seen;
    int carted = 0;
    for (int k = 0; k < AUD_ITEMS; k++) carted |= p->cart[k];
    int want = p->last_order && T0 - p->last_order <= 14 * DAY ? 0
             : carted && seen <= 2 * DAY ? 1
             : seen <= 2 * DAY ? 2 : seen <= 7 * DAY ? 3 : seen <= 14 * DAY ? 4 : -1;
    idx_audience got;
    int in = idx_person_audience(x, person, T0, &got);
    CHECK_INT(in, want >= 0);
    if (want < 0) continue;
    seen_14++;
    expect[want]++;
    if (in && (got.kind != all[want].kind || got.days != all[want].days))
      fprintf(stderr, "%s: in %s %u, expected %s %u\n", id, idx_audience_name(got.kind),
              got.days, idx_audience_name(all[want].kind), all[want].days);
    CHECK(in && got.kind == all[want].kind && got.days == all[want].days);
  }
  /* The members of each, and together everyone seen within 14 days once. */
  size_t total = 0;
  for (int k = 0; k < 5; k++) {
    idx_ids members = {0};
    CHECK_INT(idx_audience_members(x, all[k], T0, aud_member, &members), expect[k]);
    CHECK(expect[k] > 0); /* the history reaches every audience */
    for (uint32_t j = 0; j < members.n; j++) {
      idx_audience got;
      CHECK(idx_person_audience(x, members.v[j], T0, &got) && got.kind == all[k].kind &&
            got.days == all[k].days);
    }
    total += members.n;
    idx_ids_free(&members);
  }
  CHECK_INT(total, seen_14);
  idx_free(x);
}

static void test_value_model(void) {
  idx *x = idx_new(NULL);
  char line[400];
  /* 60 customers: customer i orders every 10 + (i % 6) * 8 days, from a
     start in the first month until day 360, 200 or 60 (by i % 3); "now" is
     day 365.  Frequent, recent buyers should look more alive and more
     valuable than ones who went quiet long ago. */
  for (int i = 0; i < 60; i++) {
    int gap = 10 + (i % 6) * 8, stop = i % 3 == 0 ? 360 : i % 3 == 1 ? 200 : 60;
    int order = 0;
    for (int d = (i * 7) % 30; d <= stop; d += gap, order++) {
      snprintf(line, sizeof line,
               "{\"type\":\"purchase\",\"customer\":\"c%d\",\"order_id\":\"o%d-%d\","
               "\"items\":[{\"id\":\"a\",\"price\":%d}],\"ts\":%lld}",
               i, i, order, 20 + i, T0 + (long long)d * DAY);
      apply(x, line);
    }
  }
  int64_t now = T0 + 365 * DAY;
  clv_customer *c;
  size_t n;
  CHECK_INT(idx_value_customers(x, now, &c, &n), 0);
  CHECK_INT(n, 60);
  idx_value_fit(c, n, now, CLV_MIN_REPEAT_CUSTOMERS, &x->value);
  free(c);
  CHECK_INT(x->value.kind, IDX_VALUE_BGNBD);
  idx_figures a, b;
  idx_person_figures(x, idx_person_of(x, "c0", NULL), now, &a); /* every 10 d to 360 */
  idx_person_figures(x, idx_person_of(x, "c2", NULL), now, &b); /* every 26 d to 60 */
  CHECK(a.p_alive > b.p_alive);
  CHECK(a.expected_orders > b.expected_orders);
  CHECK(a.predicted_value > 0 && a.predicted_value > b.predicted_value);
  CHECK(a.p_alive > 0 && a.p_alive <= 1);
  /* A visitor who never ordered has no value figures. */
  apply(x, "{\"type\":\"view\",\"item\":\"a\",\"anon\":\"v1\"}");
  idx_person_figures(x, idx_person_of(x, NULL, "v1"), now, &a);
  CHECK_NEAR(a.p_alive, -1, 0);
  /* Too few repeat customers for a fit: no model, no predicted values. */
  idx_value_model m;
  clv_customer one = {1, 10, 20, 30};
  idx_value_fit(&one, 1, now, CLV_MIN_REPEAT_CUSTOMERS, &m);
  CHECK_INT(m.kind, IDX_VALUE_NONE);
  idx_free(x);
}

/* The session features of the purchase propensity: distinct items and a
   returning visitor. */
static void test_session_returning_distinct(void) {
  idx *x = idx_new(NULL);
  apply(x, "{\"type\":\"view\",\"item\":\"lamp\",\"anon\":\"v\",\"session\":\"s1\"}");
  apply(x, "{\"type\":\"view\",\"item\":\"art\",\"anon\":\"v\",\"session\":\"s1\"}");
  apply(x, "{\"type\":\"view\",\"item\":\"lamp\",\"anon\":\"v\",\"session\":\"s1\"}");
  apply(x, "{\"type\":\"view\",\"item\":\"shoe\",\"anon\":\"v\",\"session\":\"s2\"}");
  const idx_session *s = idx_session_of(x, "s1");
  CHECK(s && s->distinct == 2 && s->views == 3 && !s->returning);
  s = idx_session_of(x, "s2");
  CHECK(s && s->distinct == 1 && s->returning == 1);
  idx_free(x);
}

/* The propensity fit on data with a known signal: a purchase is likelier
   with carts; the held-out AUC is well above a coin's and the calibrated
   score is a probability.  A history with no purchase gives no model. */
static void test_propensity_fit(void) {
  enum { N = 2000 };
  idx_prop_data d = {0};
  d.f = calloc(N * IDX_PROP_FEATURES, sizeof *d.f);
  d.y = calloc(N, 1);
  d.held = calloc(N, 1);
  d.n = N;
  uint64_t r = 42;
  for (size_t i = 0; i < N; i++) {
    double *f = d.f + i * IDX_PROP_FEATURES;
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    int carts = (int)((r >> 33) % 4), views = 1 + (int)((r >> 40) % 8);
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    double u = (double)(r >> 11) / 9007199254740992.0;
    f[0] = log1p(views);
    f[1] = log1p(carts);
    f[5] = (r >> 7) & 1; /* noise */
    d.y[i] = u < 1 / (1 + exp(-(-3 + 1.5 * carts)));
    d.held[i] = i % 5 == 0;
  }
  idx_propensity m;
  CHECK_INT(idx_propensity_fit(&d, &m), 0);
  printf("  propensity fit: AUC %.3f, calibration error %.3f\n", m.auc, m.ece);
  CHECK(m.auc > 0.75 && m.auc <= 1);
  CHECK(m.ece < 0.1);
  CHECK(m.w[1] > 0); /* carts raise it */
  CHECK_INT(m.n_holdout, N / 5);
  memset(d.y, 0, N);
  CHECK_INT(idx_propensity_fit(&d, &m), -1);
  idx_prop_data_free(&d);
}

static void test_sessions_affinities_consent(void) {
  idx_config cfg = {.cooc_half_life_days = -1, .trend_half_life_days = -1};
  idx *x = idx_new(&cfg);
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"lamp\",\"category\":\"Home/Decor/Lamps\",\"brand\":\"Hem\"}}");
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"art\",\"category\":\"Home/Decor/Wall\",\"brand\":\"Other\"}}");
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"shoe\",\"category\":\"Sport/Shoes\",\"brand\":\"Velo\"}}");
  apply(x, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c1\",\"email\":\"a@b.c\",\"consent\":{\"email\":true}}}");
  apply(x, "{\"type\":\"view\",\"item\":\"lamp\",\"customer\":\"c1\",\"session\":\"s1\"}");
  apply(x, "{\"type\":\"add_to_cart\",\"item\":\"lamp\",\"customer\":\"c1\",\"session\":\"s1\"}");
  apply(x, "{\"type\":\"exit_intent\",\"customer\":\"c1\",\"session\":\"s1\"}");
  apply(x, "{\"type\":\"popup_shown\",\"name\":\"free_shipping\",\"customer\":\"c1\",\"session\":\"s1\"}");
  const idx_session *s = idx_session_of(x, "s1");
  CHECK(s != NULL);
  if (s) {
    CHECK_INT(s->views, 1);
    CHECK_INT(s->carts, 1);
    CHECK_INT(s->exit_intents, 1);
    CHECK_INT(s->popups_shown, 1);
    CHECK_INT(s->purchased, 0);
    CHECK_INT(s->distinct, 1);
    CHECK_INT(s->returning, 0); /* c1's first visit */
  }
  CHECK(idx_session_of(x, "nope") == NULL);
  uint32_t c1 = idx_person_of(x, "c1", NULL);
  CHECK_INT(x->person[c1].flags, IDX_CONSENT_EMAIL | IDX_HAS_EMAIL);
  /* Consent withdrawn; the email stays (not named in the upsert). */
  apply(x, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c1\",\"consent\":{\"email\":false}}}");
  CHECK_INT(x->person[c1].flags, IDX_HAS_EMAIL);
  /* Affinities: view 1 + cart 3 on Home/Decor/Lamps and on brand Hem. */
  idx_affinity a[IDX_MAX_AFFINITIES];
  CHECK_INT(idx_person_affinities(x, c1, 0, T0, a), 1);
  CHECK_STR(intern_name(&x->categories, a[0].key), "Home/Decor/Lamps");
  CHECK_NEAR(a[0].w, 4.0, 1e-3);
  CHECK_INT(idx_person_affinities(x, c1, 1, T0, a), 1);
  CHECK_STR(intern_name(&x->brands, a[0].key), "Hem");
  /* The lamp matches fully (4 + brand 4); wall art shares 2 of 3 levels
     (4 / 2); shoes nothing. */
  CHECK_NEAR(idx_item_affinity(x, c1, idx_item_id(x, "lamp"), T0), 8.0, 1e-3);
  CHECK_NEAR(idx_item_affinity(x, c1, idx_item_id(x, "art"), T0), 2.0, 1e-3);
  CHECK_NEAR(idx_item_affinity(x, c1, idx_item_id(x, "shoe"), T0), 0.0, 1e-9);
  /* An interest 40 levels deep that shares one level with the lamp: halved
     39 times, a small number, not a shift past the width of an int. */
  char deep[400] = "Home", line[600];
  for (int l = 1; l < 40; l++) snprintf(deep + strlen(deep), sizeof deep - strlen(deep), "/L%d", l);
  snprintf(line, sizeof line,
           "{\"type\":\"item_upsert\",\"item\":{\"id\":\"deep\",\"category\":\"%s\"}}", deep);
  apply(x, line);
  apply(x, "{\"type\":\"view\",\"item\":\"deep\",\"customer\":\"c2\",\"session\":\"s2\"}");
  uint32_t c2 = idx_person_of(x, "c2", NULL);
  double w = idx_item_affinity(x, c2, idx_item_id(x, "lamp"), T0);
  CHECK_NEAR(w, ldexp(1.0, -39), 1e-15);
  CHECK(w > 0);
  idx_free(x);
}

static void test_clusters(void) {
  idx *x = idx_new(NULL);
  char line[400];
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"sofa\",\"price\":900,\"category\":\"Home/Sofas\"}}");
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"sock\",\"price\":10,\"category\":\"Sport/Socks\"}}");
  /* 20 big Home spenders with many orders; 20 one-time Sport buyers. */
  for (int i = 0; i < 40; i++) {
    int home = i < 20;
    for (int o = 0; o < (home ? 6 : 1); o++) {
      snprintf(line, sizeof line,
               "{\"type\":\"purchase\",\"customer\":\"c%d\",\"order_id\":\"o%d-%d\","
               "\"items\":[{\"id\":\"%s\",\"price\":%d}],\"ts\":%lld}",
               i, i, o, home ? "sofa" : "sock", home ? 900 : 10, T0 + (long long)o * DAY);
      apply(x, line);
    }
  }
  idx_km_data d;
  idx_clusters c;
  CHECK_INT(idx_cluster_features(x, T0 + 10 * DAY, &d), 0);
  CHECK_INT(d.n, 40);
  CHECK_INT(d.ncats, 2);
  CHECK_INT(idx_cluster_fit(&d, 2, &c), 0);
  CHECK_INT(c.k, 2);
  /* Deterministic: the same fit twice gives the same assignment. */
  idx_clusters again;
  CHECK_INT(idx_cluster_fit(&d, 2, &again), 0);
  CHECK(c.assign && again.assign && memcmp(c.assign, again.assign, d.n) == 0);
  free(again.assign);
  idx_cluster_install(x, &d, &c);
  uint8_t home = x->person[idx_person_of(x, "c0", NULL)].cluster;
  uint8_t sport = x->person[idx_person_of(x, "c39", NULL)].cluster;
  CHECK(home != 0 && sport != 0 && home != sport);
  for (int i = 0; i < 40; i++) {
    char id[16];
    snprintf(id, sizeof id, "c%d", i);
    CHECK_INT(x->person[idx_person_of(x, id, NULL)].cluster, i < 20 ? home : sport);
  }
  /* Centroids read in the features' units. */
  CHECK_NEAR(x->clusters.centroid[home - 1][1], 6, 1e-9);   /* orders */
  CHECK_NEAR(x->clusters.centroid[sport - 1][2], 10, 1e-9); /* avg order */
  CHECK_INT(x->clusters.size[home - 1], 20);
  char buf[64];
  CHECK_STR(idx_cluster_feature_name(x, &x->clusters, 1, buf, sizeof buf), "orders");
  CHECK_CONTAINS(idx_cluster_feature_name(x, &x->clusters, 4, buf, sizeof buf), "share:");
  /* Named by what sets them apart, with the figures behind the name. */
  CHECK_STR(x->clusters.name[home - 1], "repeat Home buyers, premium");
  CHECK_STR(x->clusters.name[sport - 1], "one-time Sport buyers, budget");
  CHECK_CONTAINS(x->clusters.description[home - 1], "20 customers; 6.0 orders");
  CHECK_CONTAINS(x->clusters.description[sport - 1], "100% of interest in Sport");
  idx_km_data_free(&d);
  /* A refit on more history that happens to number the clusters the other
     way round: matched to the old ones by centroid, the numbers and names
     stay, even a name a merchant's strategy copied in. */
  snprintf(x->clusters.name[home - 1], sizeof x->clusters.name[0], "sofa lovers");
  for (int i = 40; i < 46; i++) {
    int h = i < 43;
    for (int o = 0; o < (h ? 5 : 1); o++) {
      snprintf(line, sizeof line,
               "{\"type\":\"purchase\",\"customer\":\"c%d\",\"order_id\":\"o%d-%d\","
               "\"items\":[{\"id\":\"%s\",\"price\":%d}],\"ts\":%lld}",
               i, i, o, h ? "sofa" : "sock", h ? 880 : 12, T0 + (long long)o * DAY);
      apply(x, line);
    }
  }
  CHECK_INT(idx_cluster_features(x, T0 + 12 * DAY, &d), 0);
  CHECK_INT(idx_cluster_fit(&d, 2, &c), 0);
  for (uint32_t j = 0; j < c.dims; j++) {
    double v = c.centroid[0][j];
    c.centroid[0][j] = c.centroid[1][j];
    c.centroid[1][j] = v;
  }
  size_t sz = c.size[0];
  c.size[0] = c.size[1];
  c.size[1] = sz;
  for (size_t i = 0; i < d.n; i++) c.assign[i] = (uint8_t)(1 - c.assign[i]);
  idx_cluster_install(x, &d, &c);
  CHECK_INT(x->person[idx_person_of(x, "c0", NULL)].cluster, home);
  CHECK_INT(x->person[idx_person_of(x, "c41", NULL)].cluster, home);
  CHECK_INT(x->person[idx_person_of(x, "c45", NULL)].cluster, sport);
  CHECK_INT(x->clusters.size[home - 1], 23);
  CHECK_STR(x->clusters.name[home - 1], "sofa lovers");
  CHECK_STR(x->clusters.name[sport - 1], "one-time Sport buyers, budget");
  CHECK_CONTAINS(x->clusters.description[home - 1], "23 customers");
  idx_km_data_free(&d);
  /* The checkpoint carries the models and where they were fitted (a
     restart on a shared log must hold what a node that ran on holds). */
  x->fit = (idx_fit){42, 46, T0 + 12 * DAY, {100, 40, 0.4, 0.7, 1500, 0.5, {0.1, 0.2, 0.15}, {0.3, 0.4, 0.35}}, 1};
  x->value.kind = IDX_VALUE_BGNBD;
  x->value.bg = (clv_bgnbd){0.5, 12.25, 0.75, 2.5, -100, 7};
  x->value.fitted_at = T0 + 12 * DAY;
  x->propensity = calloc(1, sizeof *x->propensity);
  x->propensity->w[3] = 1.5;
  x->propensity->auc = 0.875;
  x->propensity->fitted_at = T0 + 12 * DAY;
  int64_t seq = 0;
  idx *y = reload(x, 42, &seq);
  CHECK(y != NULL);
  if (y) {
    CHECK_INT(seq, 42);
    CHECK_INT(y->fit.seq, 42);
    CHECK_INT(y->fit.orders, 46);
    CHECK_INT(y->fit.at, T0 + 12 * DAY);
    CHECK(y->fit.repeat_ok && y->fit.repeat.share == 0.4);
    CHECK(y->fit.repeat.trans == 0.5 && y->fit.repeat.trans_queries == 1500);
    CHECK_INT(y->value.kind, IDX_VALUE_BGNBD);
    CHECK(y->value.bg.alpha == 12.25 && y->value.fitted_at == T0 + 12 * DAY);
    CHECK_INT(y->clusters.k, 2);
    CHECK(y->clusters.assign == NULL);
    CHECK(memcmp(y->clusters.centroid, x->clusters.centroid, sizeof x->clusters.centroid) == 0);
    CHECK_STR(y->clusters.name[home - 1], "sofa lovers");
    CHECK(y->propensity && y->propensity->w[3] == 1.5 && y->propensity->auc == 0.875);
    CHECK_INT(y->person[idx_person_of(y, "c41", NULL)].cluster, home);
    idx_free(y);
  }
  /* Without a propensity model: none after the load either. */
  free(x->propensity);
  x->propensity = NULL;
  y = reload(x, 43, &seq);
  CHECK(y && seq == 43 && !y->propensity && y->clusters.k == 2);
  idx_free(y);
  idx_free(x);
}

/* A refit whose new cluster comes out with the name a cluster kept from
   before: the new one is told apart by its number, and the one merchants
   know keeps its name as it was, whichever number is lower. */
static void test_cluster_name_clash(void) {
  idx *x = idx_new(NULL);
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"sofa\",\"category\":\"Home/Sofas\"}}");
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"sock\",\"category\":\"Sport/Socks\"}}");
  /* recency_days, orders, avg_order, visits, share:Home, share:Sport */
  static const double gone[6] = {20, 6, 900, 6, 1, 0}, sport[6] = {30, 1, 10, 1, 0, 1},
                      home[6] = {60, 2, 400, 2, 1, 0}, lapsing[6] = {40, 1, 12, 5, 0, 1};
  idx_clusters prev = {.k = 3, .dims = 6, .n = 30};
  prev.cats[4] = intern_get(&x->categories, "Home");
  prev.cats[5] = intern_get(&x->categories, "Sport");
  for (uint32_t j = 0; j < 4; j++) prev.cats[j] = INTERN_NONE;
  memcpy(prev.centroid[0], gone, sizeof gone);
  memcpy(prev.centroid[1], sport, sizeof sport);
  memcpy(prev.centroid[2], home, sizeof home);
  prev.size[0] = prev.size[1] = prev.size[2] = 10;
  snprintf(prev.name[0], sizeof prev.name[0], "repeat Home buyers, premium");
  snprintf(prev.name[1], sizeof prev.name[1], "one-time Sport buyers, budget");
  snprintf(prev.name[2], sizeof prev.name[2], "occasional Home buyers, mid-price");
  /* The big Home spenders are gone; one-time Sport buyers who come back
     to look (5 visits, 4 spreads from the others) are a cluster of their
     own, and it takes the free number 1. */
  idx_clusters c = prev;
  memcpy(c.centroid[0], lapsing, sizeof lapsing);
  const double sd[6] = {1, 1, 1, 1, 1, 1};
  idx_cluster_name(x, &prev, &c, sd);
  CHECK_STR(c.name[1], "one-time Sport buyers, budget");
  CHECK_STR(c.name[0], "one-time Sport buyers, budget #1");
  CHECK_STR(c.name[2], "occasional Home buyers, mid-price");
  idx_free(x);
}

/* One absurd order cannot move the model fitted on everyone: the fence
   caps it, and the value predicted for an ordinary customer stays put. */
static void test_value_outlier_capped(void) {
  enum { N = 120 };
  clv_customer c[N + 1];
  for (int i = 0; i < N; i++)
    c[i] = (clv_customer){i % 4, (double)(i % 4) * 40, 200, 30 + (i % 7) * 8};
  c[N] = (clv_customer){1, 20, 200, 1e9};
  double cap = idx_value_cap(c, N + 1);
  CHECK(cap > 78 && cap < 1000); /* far above the ordinary, far below 1e9 */
  idx_value_model with, without;
  idx_value_fit(c, N + 1, 0, CLV_MIN_REPEAT_CUSTOMERS, &with);
  idx_value_fit(c, N, 0, CLV_MIN_REPEAT_CUSTOMERS, &without);
  CHECK(with.kind != IDX_VALUE_NONE && without.kind == with.kind);
  clv_customer typical = {2, 80, 200, 54};
  double a = with.gg_ok ? clv_predict(&with.bg, &with.gg, &typical, 365, 0) : with.simple.order_value,
         b = without.gg_ok ? clv_predict(&without.bg, &without.gg, &typical, 365, 0)
                           : without.simple.order_value;
  CHECK(a > 0 && b > 0 && a / b < 1.5 && b / a < 1.5);
}

/* Interning compares lengths first: prefixes of one another are distinct
   ids, a forgotten string no longer resolves and comes back as a new id,
   and the two-step put (intern_key) finds what intern_put stored. */
/* Erasure takes a person's recent search terms too (they stayed, and went
   into the next checkpoint). */
static void test_forget_takes_searches(void) {
  idx *x = idx_new(NULL);
  apply(x, "{\"type\":\"search\",\"query\":\"red wool coat\",\"customer\":\"c1\","
           "\"anon\":\"a1\",\"session\":\"s1\"}");
  apply(x, "{\"type\":\"search\",\"query\":\"garden gnome\",\"anon\":\"a1\","
           "\"session\":\"s1\"}");
  uint32_t p = idx_person_of(x, "c1", NULL);
  CHECK(p != INTERN_NONE);
  const char *terms[8];
  CHECK(search_terms_of(x->search, p, INTERN_NONE, T0, terms, 8) >= 1);
  CHECK(idx_forget(x, "c1") >= 1);
  for (uint32_t q = 0; q < x->search->person_cap; q++)
    CHECK_INT((int)search_terms_of(x->search, q, INTERN_NONE, T0, terms, 8), 0);
  idx_free(x);
}

static void test_intern_prefixes_and_forget(void) {
  intern t;
  intern_init(&t);
  uint32_t a = intern_put(&t, "ab"), b = intern_put(&t, "abc"), c = intern_put(&t, "a");
  CHECK(a != b && b != c && a != c);
  CHECK_INT(intern_get(&t, "ab"), a);
  CHECK_INT(intern_get(&t, "abc"), b);
  CHECK_INT(intern_get(&t, "a"), c);
  CHECK_INT(intern_get(&t, "abcd"), INTERN_NONE);
  CHECK_INT(intern_put(&t, ""), INTERN_NONE);
  char s[32];
  for (int i = 0; i < 5000; i++) { /* grows the slots and the arena */
    snprintf(s, sizeof s, "id%d", i);
    CHECK_INT(intern_put(&t, s), (uint32_t)i + 3);
  }
  for (int i = 0; i < 5000; i++) {
    snprintf(s, sizeof s, "id%d", i);
    intern_key k = intern_key_of(s);
    CHECK_INT(intern_put_key(&t, &k), (uint32_t)i + 3);
    CHECK_STR(intern_name(&t, (uint32_t)i + 3), s);
  }
  CHECK_INT(intern_forget(&t, "abc"), b);
  CHECK_INT(intern_get(&t, "abc"), INTERN_NONE);
  CHECK_STR(intern_name(&t, b), "");
  CHECK_INT(intern_get(&t, "ab"), a);
  CHECK_INT(intern_put(&t, "abc"), t.n - 1);
  CHECK(intern_get(&t, "abc") != b);
  CHECK_INT(intern_put_erased(&t), t.n - 1);
  CHECK_STR(intern_name(&t, t.n - 1), "");
  /* A string longer than an arena block gets a block of its own; the
     strings after it still resolve (slots refer to arena entries). */
  size_t big_len = 70000;
  char *big = malloc(big_len + 1);
  CHECK(big != NULL);
  memset(big, 'x', big_len);
  big[big_len] = '\0';
  uint32_t bid = intern_put(&t, big);
  for (int i = 0; i < 100; i++) {
    snprintf(s, sizeof s, "after%d", i);
    CHECK_INT(intern_put(&t, s), bid + 1 + (uint32_t)i);
  }
  CHECK_INT(intern_get(&t, big), bid);
  CHECK_INT(intern_get(&t, "after99"), bid + 100);
  CHECK_INT(intern_get(&t, "id4999"), 5002);
  free(big);
  intern_free(&t);
}

int main(void) {
  RUN(test_intern_prefixes_and_forget);
  RUN(test_forget_takes_searches);
  RUN(test_similar_many_refused);
  RUN(test_cooc_measures_exact);
  RUN(test_cooc_decay);
  RUN(test_cooc_cap_space_saving);
  RUN(test_cooc_cap_weakest_wide);
  RUN(test_cooc_several_anchors);
  RUN(test_batch_same_as_one_by_one);
  RUN(test_batch_erase_between);
  RUN(test_cooc_long_list);
  RUN(test_session_counts_saturate);
  RUN(test_affinities_grow_after_load);
  RUN(test_trend_exact_top);
  RUN(test_trend_decay);
  RUN(test_index_relations_and_filters);
  RUN(test_index_coview_window_and_segments);
  RUN(test_content_similarity);
  RUN(test_similar_same_as_pairwise);
  RUN(test_lifecycle_and_audiences);
  RUN(test_audiences_recomputed);
  RUN(test_value_model);
  RUN(test_value_outlier_capped);
  RUN(test_sessions_affinities_consent);
  RUN(test_propensity_fit);
  RUN(test_session_returning_distinct);
  RUN(test_clusters);
  RUN(test_cluster_name_clash);
  return CHECK_DONE();
}
