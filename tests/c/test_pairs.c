/*
** test_pairs.c: complements, substitutes and replacement intervals
** (index/pairs.c), and the co-purchase kernel's lift threshold (cooc.c).
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/defaults.h"
#include "index/index.h"

#define T0 1700000000000LL
#define DAY 86400000LL

static void apply(idx *x, const char *json) {
  ev e;
  tailor_error err = {0};
  ev_limits lim = {.now_ms = T0};
  int rc = ev_parse(json, strlen(json), &lim, &e, &err);
  if (rc) fprintf(stderr, "%s: %s\n", json, err.message);
  CHECK_INT(rc, TAILOR_OK);
  if (rc) return;
  CHECK_INT(idx_apply(x, &e), TAILOR_OK);
  ev_clear(&e);
}

static void applyf(idx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void applyf(idx *x, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  apply(x, buf);
}

/* An ISO time `days` after T0 (2023-11-14T22:13:20Z). */
static const char *at(long days) {
  static char buf[4][32];
  static int n;
  char *b = buf[n++ % 4];
  time_t t = (time_t)(T0 / 1000 + days * 86400);
  strftime(b, 32, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
  return b;
}

/* Lift in the kernel: a pair about as frequent as chance is dropped, a pair
   far above it kept, and "most of the sales of both" keeps a pair in a
   small shop where lift cannot reach the threshold. */
static void test_kernel_lift(void) {
  cooc c;
  cooc_init(&c, 8, 0);
  /* 10 orders: item 0 in 5, item 1 in 2 (both with 0), item 2 in 4 (1 with 0). */
  for (int i = 0; i < 5; i++) cooc_add_item(&c, 0, T0, 1);
  for (int i = 0; i < 2; i++) cooc_add_item(&c, 1, T0, 1);
  for (int i = 0; i < 4; i++) cooc_add_item(&c, 2, T0, 1);
  cooc_add_pair(&c, 0, 1, T0, 1);
  cooc_add_pair(&c, 0, 1, T0, 1);
  cooc_add_pair(&c, 0, 2, T0, 1);
  cooc_add_pair(&c, 0, 2, T0, 1); /* lift 2 * 10 / 20 = 1: chance */
  cooc_params p;
  cooc_params_default(&p, COOC_ALSO);
  topk_entry out[4];
  uint32_t a = 0;
  CHECK_INT(cooc_top_k(&c, &p, &a, 1, NULL, NULL, T0, 4, out), 2);
  p.min_count = 1.0;
  p.min_lift = 2.0;
  p.orders = 10;
  size_t n = cooc_top_k(&c, &p, &a, 1, NULL, NULL, T0, 4, out);
  CHECK_INT(n, 1); /* 0-1: lift 2 * 10 / 10 = 2 */
  CHECK_INT(out[0].id, 1);
  /* In a shop of 6 orders lift is at most 6/5; half the sales of both keep
     the pair, a third do not. */
  p.orders = 6;
  CHECK_INT(cooc_top_k(&c, &p, &a, 1, NULL, NULL, T0, 4, out), 0);
  p.min_both = 0.4;
  n = cooc_top_k(&c, &p, &a, 1, NULL, NULL, T0, 4, out);
  CHECK_INT(n, 2); /* 0-1: 2 >= 0.4 * 5; 0-2: 2 >= 0.4 * 5 */
  p.min_both = 0.5;
  CHECK_INT(cooc_top_k(&c, &p, &a, 1, NULL, NULL, T0, 4, out), 0);
  cooc_free(&c);
}

/* A shop: sofas compared and bought with their own cushion, jackets with
   hats, some jacket buyers back months later for a sofa, filler orders. */
static idx *shop(void) {
  idx_config cfg = {.cooc_half_life_days = -1, .trend_half_life_days = -1,
                    .cross_order_weight = -1};
  idx *x = idx_new(&cfg);
  for (int i = 1; i <= 3; i++) {
    applyf(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"sofa%d\",\"price\":%d,\"category\":\"Home/Living\"}}", i, 700 + 50 * i);
    applyf(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"cushion%d\",\"price\":30,\"category\":\"Home/Living\"}}", i);
  }
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"jacket\",\"price\":150,\"category\":\"Clothing/Jackets\"}}");
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"hat\",\"price\":25,\"category\":\"Clothing/Hats\"}}");
  for (int i = 1; i <= 2; i++)
    applyf(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"shoe%d\",\"price\":120,\"category\":\"Sport/Running\"}}", i);
  apply(x, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"tee\",\"price\":20,\"category\":\"Clothing/Tees\"}}");
  int o = 0;
  for (int i = 0; i < 12; i++) { /* compare two sofas, buy one with its cushion */
    int a = i % 3 + 1, b = (i + 1) % 3 + 1;
    applyf(x, "{\"type\":\"view\",\"anon\":\"s%d\",\"session\":\"ss%d\",\"item\":\"sofa%d\",\"ts\":\"%s\"}", i, i, a, at(1));
    applyf(x, "{\"type\":\"view\",\"anon\":\"s%d\",\"session\":\"ss%d\",\"item\":\"sofa%d\",\"ts\":\"%s\"}", i, i, b, at(1));
    applyf(x, "{\"type\":\"purchase\",\"customer\":\"s%d\",\"order_id\":\"o%d\",\"ts\":\"%s\",\"items\":[{\"id\":\"sofa%d\"},{\"id\":\"cushion%d\"}]}", i, ++o, at(1), a, a);
  }
  for (int i = 0; i < 10; i++) /* jackets with hats */
    applyf(x, "{\"type\":\"purchase\",\"customer\":\"j%d\",\"order_id\":\"o%d\",\"ts\":\"%s\",\"items\":[{\"id\":\"jacket\"},{\"id\":\"hat\"}]}", i, ++o, at(0));
  for (int i = 0; i < 3; i++) /* ... three of them back for a sofa */
    applyf(x, "{\"type\":\"purchase\",\"customer\":\"j%d\",\"order_id\":\"o%d\",\"ts\":\"%s\",\"items\":[{\"id\":\"sofa1\"}]}", i, ++o, at(90));
  for (int i = 0; i < 20; i++)
    applyf(x, "{\"type\":\"purchase\",\"customer\":\"f%d\",\"order_id\":\"o%d\",\"ts\":\"%s\",\"items\":[{\"id\":\"tee\"}]}", i, ++o, at(1));
  return x;
}

static int has(const topk_entry *rows, size_t n, uint32_t id) {
  for (size_t i = 0; i < n; i++)
    if (rows[i].id == id) return 1;
  return 0;
}

static void test_complements_and_substitutes(void) {
  idx *x = shop();
  int64_t now = T0 + 91 * DAY;
  uint32_t sofa1 = idx_item_id(x, "sofa1"), sofa2 = idx_item_id(x, "sofa2"),
           sofa3 = idx_item_id(x, "sofa3"), cushion1 = idx_item_id(x, "cushion1"),
           cushion2 = idx_item_id(x, "cushion2"), jacket = idx_item_id(x, "jacket"),
           hat = idx_item_id(x, "hat");
  CHECK(idx_complementary(x, jacket, hat, now));
  CHECK(idx_complementary(x, sofa1, cushion1, now));
  /* Three cross-order pairs (1.5 orders) with a jacket bought ten times
     and a sofa seven: neither the lift nor half the sales of both. */
  CHECK(cooc_count(&x->copurchase, jacket, sofa1, now) > 1.0);
  CHECK(!idx_complementary(x, jacket, sofa1, now));
  CHECK(!idx_complementary(x, sofa1, sofa2, now));
  /* Through the kernel, as tailor.complements asks it. */
  cooc_params p;
  cooc_params_default(&p, COOC_ALSO);
  topk_entry rows[16];
  size_t n = idx_related(x, IDX_COPURCHASE, &p, &jacket, 1, NULL, now, 16, rows);
  CHECK(has(rows, n, sofa1)); /* plain also_bought: the sofa is there */
  idx_complement_params(x, now, &p);
  n = idx_related(x, IDX_COPURCHASE, &p, &jacket, 1, NULL, now, 16, rows);
  CHECK_INT(n, 1);
  CHECK(has(rows, n, hat));
  /* Substitutes of sofa1: the sofas compared with it, never its cushion,
     nor another sofa's cushion (a tenth of the price), nor the jacket. */
  n = idx_substitutes(x, sofa1, NULL, now, 16, rows);
  CHECK(has(rows, n, sofa2));
  CHECK(has(rows, n, sofa3));
  CHECK(!has(rows, n, cushion1));
  CHECK(!has(rows, n, cushion2));
  CHECK(!has(rows, n, jacket));
  CHECK(rows[0].score > 1); /* learned from sessions: ahead of the prior */
  /* Nobody compared the shoes: the prior alone, scored as
     idx_content_score scores the pair. */
  uint32_t shoe1 = idx_item_id(x, "shoe1"), shoe2 = idx_item_id(x, "shoe2");
  n = idx_substitutes(x, shoe1, NULL, now, 16, rows);
  CHECK_INT(n, 1);
  CHECK_INT(rows[0].id, shoe2);
  CHECK(rows[0].score == idx_content_score(x, shoe1, shoe2));
  CHECK_NEAR(rows[0].score, 0.5 + 0.1, 1e-9); /* both levels, the same price */
  idx_free(x);
}

static void test_replacement_interval(void) {
  idx *x = shop();
  uint32_t shoe1 = idx_item_id(x, "shoe1"), sofa1 = idx_item_id(x, "sofa1");
  int learned = 1;
  CHECK_NEAR(idx_replacement_days(x, sofa1, &learned), DEF_REPLACEMENT_DAYS, 1e-9);
  CHECK(!learned);
  /* Five runners buy shoes again after 100 days (another model or the same
     one), a sixth after 130; two socks of one order are no repeat. */
  for (int i = 0; i < 6; i++) {
    applyf(x, "{\"type\":\"purchase\",\"customer\":\"r%d\",\"order_id\":\"r%da\",\"ts\":\"%s\",\"items\":[{\"id\":\"shoe1\"}]}", i, i, at(0));
    applyf(x, "{\"type\":\"purchase\",\"customer\":\"r%d\",\"order_id\":\"r%db\",\"ts\":\"%s\",\"items\":[{\"id\":\"shoe%d\"}]}", i, i, at(i < 5 ? 100 : 130), i % 2 + 1);
    if (i == 4) {
      CHECK_NEAR(idx_replacement_days(x, shoe1, &learned), 100, 1e-9);
      CHECK(learned);
    }
  }
  CHECK_NEAR(idx_replacement_days(x, shoe1, &learned), 105, 1e-9);
  uint32_t p = idx_person_of(x, "r1", NULL);
  CHECK_INT(idx_bought_time(&x->person[p], shoe1), T0);
  p = idx_person_of(x, "r0", NULL);
  CHECK_INT(idx_bought_time(&x->person[p], shoe1), T0 + 100 * DAY); /* again */
  /* A visitor's purchase times follow them into the customer on login. */
  applyf(x, "{\"type\":\"purchase\",\"anon\":\"v1\",\"order_id\":\"v1a\",\"ts\":\"%s\",\"items\":[{\"id\":\"sofa2\"}]}", at(5));
  applyf(x, "{\"type\":\"view\",\"anon\":\"v1\",\"customer\":\"c1\",\"item\":\"tee\",\"ts\":\"%s\"}", at(6));
  p = idx_person_of(x, "c1", NULL);
  CHECK_INT(idx_bought_time(&x->person[p], idx_item_id(x, "sofa2")), T0 + 5 * DAY);
  /* And survive a checkpoint. */
  char path[] = "/tmp/test_pairs_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  tailor_error err = {0};
  uint64_t fp = idx_fingerprint(x);
  CHECK_INT(idx_save(x, path, fp, 7, &err), TAILOR_OK);
  int64_t seq = 0;
  idx *y = idx_load(path, &x->cfg, fp, &seq, &err);
  CHECK(y != NULL);
  if (y) {
    CHECK_NEAR(idx_replacement_days(y, shoe1, &learned), 105, 1e-9);
    CHECK(learned);
    p = idx_person_of(y, "c1", NULL);
    CHECK_INT(idx_bought_time(&y->person[p], idx_item_id(y, "sofa2")), T0 + 5 * DAY);
    idx_free(y);
  }
  unlink(path);
  idx_free(x);
}

int main(void) {
  RUN(test_kernel_lift);
  RUN(test_complements_and_substitutes);
  RUN(test_replacement_interval);
  return CHECK_DONE();
}
