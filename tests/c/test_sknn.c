/*
** test_sknn.c: the session kernels (index/sknn.h) and the evaluation
** metrics (eval/metrics.h) on tiny hand-computed cases: exact scores for
** every kernel, the caps and their eviction, incremental sessions,
** determinism, parameters by name, and P@k / MRR@k / NDCG@k.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "eval/metrics.h"
#include "index/sknn.h"
#include "tailor.h"

#define EPS 1e-9
#define ROWS 16

/*
** The toy index most cases use (time = order):
**   s0 [1 2 3]   s1 [2 4]   s2 [1 2 4 2]   s3 [5]
** views: 1:2  2:4  3:1  4:2  5:1; latest time 3.
*/
static sknn_index *toy(void) {
  static const uint32_t s0[] = {1, 2, 3}, s1[] = {2, 4}, s2[] = {1, 2, 4, 2},
                        s3[] = {5};
  sknn_index *x = sknn_new(NULL);
  CHECK(x != NULL);
  CHECK_INT(sknn_add_session(x, s0, 3, 0), 0);
  CHECK_INT(sknn_add_session(x, s1, 2, 1), 0);
  CHECK_INT(sknn_add_session(x, s2, 4, 2), 0);
  CHECK_INT(sknn_add_session(x, s3, 1, 3), 0);
  return x;
}

/* Run kernel `k` with extra "key=value" settings (NULL-terminated). */
static int run(const sknn_index *x, sknn_kernel kern, const uint32_t *prefix,
               size_t n, topk_entry *out, size_t k, const char *const *set) {
  sknn_params p;
  sknn_params_default(&p, kern);
  for (; set && *set; set++) CHECK_INT(sknn_params_set(&p, *set), 0);
  sknn_work *w = sknn_work_new();
  int got = sknn_query(x, prefix, n, &p, w, out, k);
  sknn_work_free(w);
  return got;
}

static double score_of(const topk_entry *out, int n, uint32_t id) {
  for (int i = 0; i < n; i++)
    if (out[i].id == id) return out[i].score;
  return -1;
}

static void test_pop(void) {
  sknn_index *x = toy();
  topk_entry out[ROWS];
  uint32_t pre[] = {3};
  CHECK_INT(run(x, SKNN_POP, pre, 1, out, 3, NULL), 3);
  CHECK_INT(out[0].id, 2);
  CHECK_NEAR(out[0].score, 4, EPS);
  CHECK_INT(out[1].id, 1); /* 1 and 4 tie on 2 views: smaller id first */
  CHECK_INT(out[2].id, 4);
  CHECK_INT(out[2].aux, SKNN_NONE);
  /* More rows than items: every viewed item once. */
  CHECK_INT(run(x, SKNN_POP, pre, 1, out, ROWS, NULL), 5);
  sknn_free(x);
}

static void test_spop(void) {
  sknn_index *x = toy();
  topk_entry out[ROWS];
  uint32_t pre[] = {4, 3, 4};
  CHECK_INT(run(x, SKNN_SPOP, pre, 3, out, 5, NULL), 5);
  /* count + views / (1 + most views) */
  CHECK_INT(out[0].id, 4);
  CHECK_NEAR(out[0].score, 2 + 2.0 / 5, EPS);
  CHECK_INT(out[0].aux, 4);
  CHECK_INT(out[1].id, 3);
  CHECK_NEAR(out[1].score, 1 + 1.0 / 5, EPS);
  /* then the popular rest, score 0, no anchor */
  CHECK_INT(out[2].id, 2);
  CHECK_INT(out[3].id, 1);
  CHECK_INT(out[4].id, 5);
  CHECK_NEAR(out[4].score, 0, EPS);
  CHECK_INT(out[4].aux, SKNN_NONE);
  sknn_free(x);
}

static void test_itemknn(void) {
  sknn_index *x = toy();
  topk_entry out[ROWS];
  uint32_t pre[] = {3, 1};
  /* Last item 1 (2 views) in s0 and s2: co(2)=1+2, co(3)=1, co(4)=1. */
  CHECK_INT(run(x, SKNN_ITEMKNN, pre, 2, out, 4, NULL), 4);
  CHECK_INT(out[0].id, 2);
  CHECK_NEAR(out[0].score, 3 / sqrt(22.0 * 24), EPS);
  CHECK_INT(out[1].id, 3);
  CHECK_NEAR(out[1].score, 1 / sqrt(22.0 * 21), EPS);
  CHECK_INT(out[2].id, 4);
  CHECK_NEAR(out[2].score, 1 / sqrt(22.0 * 22), EPS);
  CHECK_INT(out[2].aux, 1);
  CHECK_INT(out[3].id, 1); /* itself only as popularity fill */
  CHECK_NEAR(out[3].score, 0, EPS);
  sknn_free(x);
}

static void test_sknn(void) {
  sknn_index *x = toy();
  topk_entry out[ROWS];
  uint32_t pre[] = {1, 2};
  const char *k3[] = {"k=3", "fill=0", NULL};
  /* sim: s0 2/sqrt(6), s1 1/2, s2 2/sqrt(6) */
  double a = 2 / sqrt(6.0);
  CHECK_INT(run(x, SKNN_SKNN, pre, 2, out, ROWS, k3), 4);
  CHECK_INT(out[0].id, 2);
  CHECK_NEAR(out[0].score, 2 * a + 0.5, EPS);
  CHECK_INT(out[0].aux, 2);
  CHECK_INT(out[1].id, 1);
  CHECK_NEAR(out[1].score, 2 * a, EPS);
  CHECK_INT(out[2].id, 4);
  CHECK_NEAR(out[2].score, a + 0.5, EPS);
  CHECK_INT(out[3].id, 3);
  CHECK_NEAR(out[3].score, a, EPS);
  /* k=2: s0 and s2 tie, both kept over s1. */
  const char *k2[] = {"k=2", "fill=0", NULL};
  CHECK_INT(run(x, SKNN_SKNN, pre, 2, out, ROWS, k2), 4);
  CHECK_NEAR(score_of(out, 4, 2), 2 * a, EPS);
  CHECK_NEAR(score_of(out, 4, 4), a, EPS);
  /* k=1: of the tied s0 and s2 the newer, s2, wins. */
  const char *k1[] = {"k=1", "fill=0", NULL};
  CHECK_INT(run(x, SKNN_SKNN, pre, 2, out, ROWS, k1), 3);
  CHECK_NEAR(score_of(out, 3, 4), a, EPS);
  CHECK_NEAR(score_of(out, 3, 3), -1, EPS);
  sknn_free(x);
}

static void test_vsknn(void) {
  sknn_index *x = toy();
  topk_entry out[ROWS];
  uint32_t pre[] = {1, 2};
  /* weights 1: 1/2, 2: 2/2; sim = sum / |P|: s0 .75, s1 .5, s2 .75; the
  ** latest shared item is the last one for all, so step 1. */
  const char *set[] = {"k=3", "idf=0", "fill=0", NULL};
  CHECK_INT(run(x, SKNN_VSKNN, pre, 2, out, ROWS, set), 4);
  CHECK_INT(out[0].id, 2);
  CHECK_NEAR(out[0].score, 2.0, EPS);
  CHECK_NEAR(score_of(out, 4, 1), 1.5, EPS);
  CHECK_NEAR(score_of(out, 4, 4), 1.25, EPS);
  CHECK_NEAR(score_of(out, 4, 3), 0.75, EPS);
  /* idf: item 3 is in 1 of 4 sessions. */
  const char *idf[] = {"k=3", "idf=1", "fill=0", NULL};
  CHECK_INT(run(x, SKNN_VSKNN, pre, 2, out, ROWS, idf), 4);
  CHECK_NEAR(score_of(out, 4, 3), 0.75 * (1 + log(4.0)), EPS);
  /* prefix [2 3]: weights 2: 1/2, 3: 1; the best neighbour is s0 (sim
  ** 1.5/2), whose latest shared item is the last one (step 1). */
  uint32_t pre2[] = {2, 3};
  const char *st[] = {"k=1", "idf=0", "fill=0", NULL};
  CHECK_INT(run(x, SKNN_VSKNN, pre2, 2, out, ROWS, st), 3);
  CHECK_NEAR(score_of(out, 3, 1), 0.75, EPS);
  sknn_free(x);
}

/* STAN on [1 2], l1 = l3 = 1: the hand computation of the header. */
static void test_stan(void) {
  sknn_index *x = toy();
  topk_entry out[ROWS];
  uint32_t pre[] = {1, 2};
  const char *set[] = {"k=3", "lambda1=1", "lambda2=0", "lambda3=1",
                       "window=0", "fill=0", NULL};
  double e1 = exp(-1.0), e3 = exp(-3.0);
  double a = (1 + e1) / sqrt(6.0); /* s0 and s2; s1: 1/sqrt(4) */
  CHECK_INT(run(x, SKNN_STAN, pre, 2, out, ROWS, set), 4);
  /* s0 [1 2 3] match 2 at 1; s1 [2 4] at 0; s2 [1 2 4 2] at 3 */
  CHECK_INT(out[0].id, 2);
  CHECK_NEAR(out[0].score, 2 * a + 0.5, EPS);
  CHECK_INT(out[1].id, 4);
  CHECK_NEAR(out[1].score, 0.5 * e1 + a * e1, EPS);
  CHECK_INT(out[2].id, 1);
  CHECK_NEAR(out[2].score, a * e1 + a * e3, EPS);
  CHECK_INT(out[3].id, 3);
  CHECK_NEAR(out[3].score, a * e1, EPS);
  CHECK_INT(out[3].aux, 2);
  /* lambda2 = 2: s0 is 3 time units older than the latest session. */
  const char *rec[] = {"k=3", "lambda1=1", "lambda2=2", "lambda3=1",
                       "window=0", "fill=0", NULL};
  CHECK_INT(run(x, SKNN_STAN, pre, 2, out, ROWS, rec), 4);
  CHECK_NEAR(score_of(out, 4, 3), a * exp(-1.5) * e1, EPS);
  sknn_free(x);
}

static const char *const tailor_base[] = {
    "k=3", "lambda1=1", "lambda2=0", "lambda3=1", "window=0", "before=1",
    "multi=0", "pop_exp=0", "repeat=0", "trans=0", "idf=0", "fill=0", NULL};

/* tailor's parts one by one, against the STAN numbers above. */
static void test_tailor(void) {
  sknn_index *x = toy();
  topk_entry out[ROWS];
  uint32_t pre[] = {1, 2};
  double e1 = exp(-1.0), e3 = exp(-3.0), a = (1 + e1) / sqrt(6.0);
  double top = 2 * a + 0.5;
  sknn_params p;
  sknn_work *w = sknn_work_new();
  const char *const *s;

  /* All extras off: STAN normalised to a best of 1. */
  sknn_params_default(&p, SKNN_TAILOR);
  for (s = tailor_base; *s; s++) CHECK_INT(sknn_params_set(&p, *s), 0);
  CHECK_INT(sknn_query(x, pre, 2, &p, w, out, ROWS), 4);
  CHECK_NEAR(out[0].score, 1, EPS);
  CHECK_NEAR(score_of(out, 4, 3), a * e1 / top, EPS);

  /* before = 0.5: in s0 item 1 sits before the match (2). */
  CHECK_INT(sknn_params_set(&p, "before=0.5"), 0);
  CHECK_INT(sknn_query(x, pre, 2, &p, w, out, ROWS), 4);
  CHECK_NEAR(score_of(out, 4, 1), (a * e1 + a * e3) * 0.5 / top, EPS);
  CHECK_INT(sknn_params_set(&p, "before=1"), 0);

  /* multi: in s2 [1 2 4 2] item 1 is its own reference (weight
  ** e^-(2-1)/1 relative to item 2's), not 3 away from the match. */
  CHECK_INT(sknn_params_set(&p, "multi=1"), 0);
  CHECK_INT(sknn_query(x, pre, 2, &p, w, out, ROWS), 4);
  CHECK_NEAR(score_of(out, 4, 1), (a * e1 + a * e1) / top, EPS);
  CHECK_INT(sknn_params_set(&p, "multi=0"), 0);

  /* repeat: 2 is last (+1), 1 one back (+e^-1). */
  CHECK_INT(sknn_params_set(&p, "repeat=1"), 0);
  CHECK_INT(sknn_params_set(&p, "repeat_decay=1"), 0);
  CHECK_INT(sknn_query(x, pre, 2, &p, w, out, ROWS), 4);
  CHECK_NEAR(score_of(out, 4, 2), 1 + 1, EPS);
  CHECK_NEAR(score_of(out, 4, 1), (a * e1 + a * e3) / top + e1, EPS);
  CHECK_INT(sknn_params_set(&p, "repeat=0"), 0);

  /* transitions from 2: next views 3 (s0), 4 (s1), 4 (s2): P(4|2) = 2/3
  ** is the best, so 4 gets +1 and 3 gets +1/2. */
  CHECK_INT(sknn_params_set(&p, "trans=1"), 0);
  CHECK_INT(sknn_params_set(&p, "trans_gap=1"), 0);
  CHECK_INT(sknn_params_set(&p, "trans_window=1"), 0);
  CHECK_INT(sknn_query(x, pre, 2, &p, w, out, ROWS), 4);
  CHECK_NEAR(score_of(out, 4, 4), (0.5 * e1 + a * e1) / top + 1, EPS);
  CHECK_NEAR(score_of(out, 4, 3), a * e1 / top + 0.5, EPS);
  /* gap 2: in s2 [1 2 4 2] the first 2 also reaches the second one, at
  ** distance 2 (weight 1/2): shares 3: 1, 4: 2, 2: 1/2 of 3.5; best 4. */
  CHECK_INT(sknn_params_set(&p, "trans_gap=2"), 0);
  CHECK_INT(sknn_query(x, pre, 2, &p, w, out, ROWS), 4);
  CHECK_NEAR(score_of(out, 4, 2), 1 + 0.25, EPS);
  CHECK_INT(sknn_params_set(&p, "trans=0"), 0);

  /* popularity damping: views^-1 on the neighbour part. */
  CHECK_INT(sknn_params_set(&p, "pop_exp=-1"), 0);
  CHECK_INT(sknn_query(x, pre, 2, &p, w, out, ROWS), 4);
  {
    double s2 = top / 4, s3 = a * e1 / 1, s4 = (0.5 * e1 + a * e1) / 2,
           s1 = (a * e1 + a * e3) / 2;
    double m = fmax(fmax(s1, s2), fmax(s3, s4));
    CHECK_NEAR(score_of(out, 4, 3), s3 / m, 1e-6);
    CHECK_NEAR(score_of(out, 4, 2), s2 / m, 1e-6);
  }
  sknn_work_free(w);
  sknn_free(x);
}

/* Each item keeps only its item_cap most recent sessions. */
static void test_item_cap(void) {
  sknn_config c;
  sknn_config_default(&c);
  c.item_cap = 2;
  sknn_index *x = sknn_new(&c);
  uint32_t a[] = {7, 1}, b[] = {7, 2}, d[] = {7, 3};
  CHECK_INT(sknn_add_session(x, a, 2, 0), 0);
  CHECK_INT(sknn_add_session(x, b, 2, 1), 0);
  CHECK_INT(sknn_add_session(x, d, 2, 2), 0);
  sknn_stats st;
  sknn_stats_get(x, &st);
  CHECK_INT(st.postings, 5); /* 7 holds 2 of its 3 sessions */
  topk_entry out[ROWS];
  uint32_t pre[] = {7};
  const char *set[] = {"fill=0", NULL};
  CHECK_INT(run(x, SKNN_SKNN, pre, 1, out, ROWS, set), 3);
  CHECK_NEAR(score_of(out, 3, 1), -1, EPS); /* its session was evicted */
  CHECK(score_of(out, 3, 2) > 0);
  CHECK(score_of(out, 3, 3) > 0);
  CHECK_INT(sknn_item_views(x, 1), 1); /* popularity keeps everything */
  sknn_free(x);
}

/* The ring keeps max_sessions sessions; the oldest goes first. */
static void test_ring(void) {
  sknn_config c;
  sknn_config_default(&c);
  c.max_sessions = 2;
  sknn_index *x = sknn_new(&c);
  uint32_t a[] = {1, 2}, b[] = {3, 4}, d[] = {1, 5};
  CHECK_INT(sknn_add_session(x, a, 2, 0), 0);
  CHECK_INT(sknn_add_session(x, b, 2, 1), 0);
  CHECK_INT(sknn_add_session(x, d, 2, 2), 0);
  sknn_stats st;
  sknn_stats_get(x, &st);
  CHECK_INT(st.sessions, 3);
  CHECK_INT(st.live, 2);
  topk_entry out[ROWS];
  uint32_t pre[] = {1};
  const char *set[] = {"fill=0", NULL};
  CHECK_INT(run(x, SKNN_SKNN, pre, 1, out, ROWS, set), 2);
  CHECK_INT(out[0].id, 1);
  CHECK_INT(out[1].id, 5);
  /* a non-power-of-two size is rounded up: 3 -> 4 sessions kept */
  c.max_sessions = 3;
  sknn_index *y = sknn_new(&c);
  for (int i = 0; i < 6; i++) CHECK_INT(sknn_add_session(y, a, 2, i), 0);
  sknn_stats_get(y, &st);
  CHECK_INT(st.live, 4);
  sknn_free(y);
  sknn_free(x);
}

/* A restore fed the remembered sessions and the counts answers as the
   original did, also once the ring has dropped sessions: idf weighs df
   against the sessions ever added, which the restore is given (it counted
   only the ones fed back, and a vsknn order flipped after a checkpoint). */
static int feed(void *ud, const uint32_t *items, size_t n, int64_t time, uint32_t key) {
  (void)key;
  return sknn_add_session(ud, items, n, time);
}

static void test_restore_after_ring(void) {
  sknn_config c;
  sknn_config_default(&c);
  c.max_sessions = 4;
  sknn_index *x = sknn_new(&c), *y = sknn_new(&c);
  for (uint32_t i = 0; i < 40; i++) {
    uint32_t s[] = {1, 2 + (i % 3), 10 + i};
    CHECK_INT(sknn_add_session(x, s, 3, (int64_t)i), 0);
  }
  CHECK_INT(sknn_each_session(x, feed, y), 0);
  enum { N = 60 };
  uint64_t views[N], df[N];
  for (uint32_t i = 0; i < N; i++) views[i] = sknn_item_views(x, i), df[i] = sknn_item_df(x, i);
  sknn_stats st;
  sknn_stats_get(x, &st);
  CHECK_INT(sknn_restore_counts(y, N, views, df, st.sessions), 0);
  sknn_stats sy;
  sknn_stats_get(y, &sy);
  CHECK_INT((int)sy.sessions, 40);
  topk_entry a[ROWS], b[ROWS];
  uint32_t pre[] = {1};
  const char *set[] = {"fill=0", "idf=1", NULL};
  int na = run(x, SKNN_VSKNN, pre, 1, a, ROWS, set), nb = run(y, SKNN_VSKNN, pre, 1, b, ROWS, set);
  CHECK_INT(nb, na);
  for (int i = 0; i < na && i < nb; i++) {
    CHECK_INT(b[i].id, a[i].id);
    CHECK_NEAR(b[i].score, a[i].score, 1e-9);
  }
  sknn_free(x);
  sknn_free(y);
}

/* Sessions longer than max_len keep their first max_len items. */
static void test_max_len(void) {
  sknn_config c;
  sknn_config_default(&c);
  c.max_len = 2;
  sknn_index *x = sknn_new(&c);
  uint32_t a[] = {1, 2, 3};
  CHECK_INT(sknn_add_session(x, a, 3, 0), 0);
  CHECK_INT(sknn_item_views(x, 3), 1);
  topk_entry out[ROWS];
  uint32_t pre[] = {1};
  const char *set[] = {"fill=0", NULL};
  CHECK_INT(run(x, SKNN_SKNN, pre, 1, out, ROWS, set), 2);
  CHECK_NEAR(score_of(out, 2, 3), -1, EPS);
  sknn_free(x);
}

/* Item by item gives the same index as whole sessions; `self` keeps the
** visitor's own open session out of its neighbours. */
static void test_incremental(void) {
  sknn_index *x = toy(), *y = sknn_new(NULL);
  static const uint32_t s[4][4] = {{1, 2, 3}, {2, 4}, {1, 2, 4, 2}, {5}};
  static const int len[4] = {3, 2, 4, 1};
  /* interleaved: sessions 10 and 11 open at once */
  for (int i = 0; i < 4; i++) CHECK_INT(sknn_add_item(y, 10 + (uint32_t)i, s[i][0], i), 0);
  for (int j = 1; j < 4; j++)
    for (int i = 0; i < 4; i++)
      if (j < len[i]) CHECK_INT(sknn_add_item(y, 10 + (uint32_t)i, s[i][j], i), 0);
  topk_entry o1[ROWS], o2[ROWS];
  uint32_t pre[] = {1, 2};
  for (int k = 0; k < SKNN_KERNEL_COUNT; k++) {
    int n1 = run(x, (sknn_kernel)k, pre, 2, o1, ROWS, NULL);
    int n2 = run(y, (sknn_kernel)k, pre, 2, o2, ROWS, NULL);
    CHECK_INT(n1, n2);
    for (int i = 0; i < n1 && i < n2; i++) {
      CHECK_INT(o1[i].id, o2[i].id);
      CHECK_NEAR(o1[i].score, o2[i].score, 1e-12);
    }
  }
  /* The visitor of session 12 ([1 2 4 2]) asks about its own prefix
  ** [1 2 4]: its own session would be the best neighbour (it shares all
  ** three); left out, s1 [2 4] is. */
  sknn_params p;
  sknn_params_default(&p, SKNN_STAN);
  CHECK_INT(sknn_params_set(&p, "fill=0"), 0);
  CHECK_INT(sknn_params_set(&p, "k=1"), 0);
  sknn_work *w = sknn_work_new();
  uint32_t own[] = {1, 2, 4};
  CHECK_INT(sknn_query(y, own, 3, &p, w, o1, ROWS), 3);
  p.self = 12;
  CHECK_INT(sknn_query(y, own, 3, &p, w, o1, ROWS), 2);
  CHECK_NEAR(score_of(o1, 2, 1), -1, EPS);
  /* Ending a session forgets its id: the next view opens a new one. */
  sknn_end_session(y, 12);
  CHECK_INT(sknn_add_item(y, 12, 9, 5), 0);
  sknn_stats st;
  sknn_stats_get(y, &st);
  CHECK_INT(st.sessions, 5);
  CHECK_INT(sknn_add_item(y, SKNN_NONE, 1, 5), TAILOR_EINVAL);
  CHECK_INT(sknn_add_item(y, 1, SKNN_MAX_ITEM + 1, 5), TAILOR_EINVAL);
  sknn_work_free(w);
  sknn_free(x);
  sknn_free(y);
}

/* Same input, same output; one workspace serves many queries and indexes. */
static void test_determinism(void) {
  sknn_index *x = toy(), *y = toy();
  sknn_work *w = sknn_work_new();
  topk_entry a[ROWS], b[ROWS];
  uint32_t pre[] = {2, 1, 2};
  for (int k = 0; k < SKNN_KERNEL_COUNT; k++) {
    sknn_params p;
    sknn_params_default(&p, (sknn_kernel)k);
    int n1 = sknn_query(x, pre, 3, &p, w, a, ROWS);
    int n2 = sknn_query(y, pre, 3, &p, w, b, ROWS);
    CHECK_INT(n1, n2);
    CHECK(n1 > 0 && memcmp(a, b, (size_t)n1 * sizeof *a) == 0);
    for (int i = 1; i < n1; i++) { /* best first, ties by smaller id; */
      if (a[i].score == 0 && a[i].aux == SKNN_NONE) continue; /* fill */
      CHECK(a[i - 1].score > a[i].score ||
            (a[i - 1].score == a[i].score && a[i - 1].id < a[i].id));
    }
  }
  /* Unknown prefix items are ignored; an empty prefix is popularity. */
  uint32_t unknown[] = {999};
  sknn_params p;
  sknn_params_default(&p, SKNN_TAILOR);
  CHECK_INT(sknn_query(x, unknown, 1, &p, w, a, 2), 2);
  CHECK_INT(a[0].id, 2);
  CHECK_INT(sknn_query(x, NULL, 0, &p, w, a, 2), 2);
  CHECK_INT(a[0].aux, SKNN_NONE);
  CHECK_INT(sknn_query(x, pre, 3, &p, w, NULL, 1), TAILOR_EINVAL);
  sknn_work_free(w);
  sknn_free(x);
  sknn_free(y);
}

static void test_params(void) {
  sknn_params p;
  sknn_params_default(&p, SKNN_STAN);
  CHECK_INT(sknn_params_set(&p, "k=5"), 0);
  CHECK_INT(p.k, 5);
  CHECK_INT(sknn_params_set(&p, "lambda1=0.25"), 0);
  CHECK_NEAR(p.lambda1, 0.25, 0);
  CHECK_INT(sknn_params_set(&p, "kernel=vsknn"), 0);
  CHECK_INT(p.kernel, SKNN_VSKNN);
  CHECK_INT(p.k, 5); /* the others stay */
  CHECK_INT(sknn_params_set(&p, "bogus=1"), TAILOR_EINVAL);
  CHECK_INT(sknn_params_set(&p, "k=abc"), TAILOR_EINVAL);
  CHECK_INT(sknn_params_set(&p, "k=-1"), TAILOR_EINVAL);
  CHECK_INT(sknn_params_set(&p, "k=0"), TAILOR_EINVAL);
  CHECK_INT(sknn_params_set(&p, "fill=2"), TAILOR_EINVAL);
  CHECK_INT(sknn_params_set(&p, "kernel=nope"), TAILOR_EINVAL);
  CHECK_INT(sknn_params_set(&p, "k"), TAILOR_EINVAL);
  CHECK_INT(p.k, 5);
  char buf[256];
  sknn_params_format(&p, buf, sizeof buf);
  CHECK_CONTAINS(buf, "k=5");
  CHECK_CONTAINS(buf, "idf=0"); /* stan's, kept by kernel= */
  CHECK(strstr(buf, "lambda1") == NULL); /* vsknn does not read it */
  char small[8];
  size_t want = sknn_params_format(&p, small, sizeof small);
  CHECK(want > sizeof small);
  CHECK_INT(strlen(small), sizeof small - 1);
  CHECK_STR(sknn_kernel_name(SKNN_TAILOR), "tailor");
  CHECK_INT(sknn_kernel_find("itemknn"), SKNN_ITEMKNN);
  CHECK_INT(sknn_kernel_find("nope"), -1);
}

static void test_metrics(void) {
  metrics m;
  CHECK_INT(metrics_init(&m, 10, 10), 0);
  uint32_t ranks[] = {1, 2, 0, 11, 20, 21};
  for (int i = 0; i < 6; i++) metrics_add_rank(&m, ranks[i]);
  metrics_report r;
  metrics_report_get(&m, &r);
  CHECK_INT(r.queries, 6);
  CHECK_NEAR(r.p10, 2.0 / 6, EPS);
  CHECK_NEAR(r.p20, 4.0 / 6, EPS);
  CHECK_NEAR(r.mrr10, (1 + 0.5) / 6, EPS);
  CHECK_NEAR(r.mrr20, (1 + 0.5 + 1.0 / 11 + 1.0 / 20) / 6, EPS);
  CHECK_NEAR(r.ndcg10, (1 + 1 / log2(3.0)) / 6, EPS);
  CHECK_NEAR(r.ndcg20,
             (1 + 1 / log2(3.0) + 1 / log2(12.0) + 1 / log2(21.0)) / 6, EPS);
  metrics_free(&m);

  /* Lists: coverage and the popular share. */
  CHECK_INT(metrics_init(&m, 10, 10), 0);
  uint32_t pop[] = {1};
  metrics_set_popular(&m, pop, 1);
  uint32_t l1[] = {1, 2, 3}, l2[] = {1, 4};
  metrics_add(&m, l1, 3, 2);
  metrics_add(&m, l2, 2, 9);
  CHECK_INT(metrics_add_latency(&m, 40), 0);
  CHECK_INT(metrics_add_latency(&m, 10), 0);
  CHECK_INT(metrics_add_latency(&m, 30), 0);
  CHECK_INT(metrics_add_latency(&m, 20), 0);
  metrics_report_get(&m, &r);
  CHECK_NEAR(r.p20, 0.5, EPS);
  CHECK_NEAR(r.mrr20, 0.25, EPS);
  CHECK_NEAR(r.coverage, 0.4, EPS);
  CHECK_NEAR(r.popular_share, 0.4, EPS);
  CHECK_NEAR(r.us_p50, 0.020, EPS);
  CHECK_NEAR(r.us_p99, 0.040, EPS);
  metrics_free(&m);
}

/* A slice of the real data, when present: two runs agree exactly. */
static void test_real_slice(void) {
  const char *dir = getenv("TAILOR_DATA");
  char path[1024];
  snprintf(path, sizeof path, "%s/diginetica/train.sessions",
           dir ? dir : "../shared/data");
  FILE *f = fopen(path, "r");
  if (!f) return; /* no data here: nothing to check */
  enum { SESSIONS = 3000, QUERIES = 500 };
  static uint32_t items[SESSIONS * 80];
  static uint32_t start[SESSIONS + 1];
  size_t n = 0, ns = 0;
  char line[8192];
  while (ns < SESSIONS && fgets(line, sizeof line, f)) {
    start[ns++] = (uint32_t)n;
    for (char *p = line, *q;; p = q) {
      unsigned long v = strtoul(p, &q, 10);
      if (q == p || n == sizeof items / sizeof *items) break;
      items[n++] = (uint32_t)v;
    }
  }
  start[ns] = (uint32_t)n;
  fclose(f);
  size_t ntrain = ns - QUERIES;
  sknn_index *x = sknn_new(NULL), *y = sknn_new(NULL);
  for (size_t s = 0; s < ntrain; s++) {
    CHECK_INT(sknn_add_session(x, items + start[s], start[s + 1] - start[s], (int64_t)s), 0);
    CHECK_INT(sknn_add_session(y, items + start[s], start[s + 1] - start[s], (int64_t)s), 0);
  }
  sknn_work *w1 = sknn_work_new(), *w2 = sknn_work_new();
  topk_entry a[20], b[20];
  int same = 1, queries = 0;
  for (int k = 0; k < SKNN_KERNEL_COUNT; k++) {
    sknn_params p;
    sknn_params_default(&p, (sknn_kernel)k);
    for (size_t s = ntrain; s < ns; s++)
      for (uint32_t len = 1; len < start[s + 1] - start[s]; len++) {
        int n1 = sknn_query(x, items + start[s], len, &p, w1, a, 20);
        int n2 = sknn_query(y, items + start[s], len, &p, w2, b, 20);
        same &= n1 == n2 && n1 > 0 &&
                memcmp(a, b, (size_t)n1 * sizeof *a) == 0;
        queries++;
      }
  }
  CHECK(same);
  CHECK(queries > 1000);
  sknn_work_free(w1);
  sknn_work_free(w2);
  sknn_free(x);
  sknn_free(y);
}

int main(void) {
  RUN(test_pop);
  RUN(test_spop);
  RUN(test_itemknn);
  RUN(test_sknn);
  RUN(test_vsknn);
  RUN(test_stan);
  RUN(test_tailor);
  RUN(test_item_cap);
  RUN(test_ring);
  RUN(test_restore_after_ring);
  RUN(test_max_len);
  RUN(test_incremental);
  RUN(test_determinism);
  RUN(test_params);
  RUN(test_metrics);
  RUN(test_real_slice);
  return CHECK_DONE();
}
