/*
** test_evaluate.c: the offline evaluation (eval/evaluate.h) on tiny
** hand-made inputs: the plain and NDJSON formats, test pairs joined back
** into sessions, the SR-GNN expansion of logs and of the validation split,
** errors that name file and line, --param by name, the figures of a
** kernel against hand-computed ranks, and the replay order a strategy
** backtest relies on; plus the metrics' edge cases.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "eval/evaluate.h"
#include "tailor.h"

#define EPS 1e-9

static int load(eval_data *d, const char *train, const char *test,
                double val_share, tailor_error *err) {
  return eval_load_text(d, train, strlen(train), test, test ? strlen(test) : 0,
                        val_share, err);
}

/* The items of test session s as "a b c" (names, or numbers). */
static const char *session_text(const eval_data *d, size_t s) {
  static char buf[256];
  const uint32_t *items;
  size_t n = eval_seq(&d->test, s, &items), at = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n && at < sizeof buf - 20; i++) {
    char num[16];
    at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", i ? " " : "",
                           eval_item_name(d, items[i], num));
  }
  return buf;
}

static void test_plain(void) {
  eval_data d;
  tailor_error err = {0};
  /* SR-GNN writes a session's pairs longest first; the last two pairs do
     not continue a chain, so each is a session of its own. */
  const char *train = "1 2 3\n\n2 3 4\n5 5\n";
  const char *test = "1 2 2\t3\n1 2\t2\n1\t2\n7\t8\n1 2\t2\n";
  CHECK_INT(load(&d, train, test, 0, &err), 0);
  CHECK_INT(d.named, 0);
  CHECK_INT(d.test_plain, 1);
  CHECK_INT(d.train.n, 3);
  CHECK_INT(d.ntrain, 3);
  CHECK_INT(d.nitems, 9);
  CHECK_INT(d.test.n, 3);
  CHECK_STR(session_text(&d, 0), "1 2 2 3");
  CHECK_STR(session_text(&d, 1), "7 8");
  CHECK_STR(session_text(&d, 2), "1 2 2");
  CHECK_INT(d.nqueries, 5);
  /* Queries keep the file's order. */
  CHECK_INT(d.queries[0].session, 0);
  CHECK_INT(d.queries[0].pos, 3);
  CHECK_INT(d.queries[2].pos, 1);
  CHECK_INT(d.queries[3].session, 1);
  CHECK_INT(d.queries[4].session, 2);
  CHECK_INT(d.queries[4].pos, 2);
  static const uint8_t ask0[] = {0, 1, 1, 1};
  CHECK(memcmp(d.ask, ask0, 4) == 0);
  CHECK_INT(d.ask[d.test.start[2] + 1], 0);
  /* The catalog: items with training views, most viewed first. */
  CHECK_INT(d.ncatalog, 5);
  CHECK_INT(d.catalog[0], 2); /* 2 views; ties go to the smaller id */
  CHECK_INT(d.catalog[1], 3);
  CHECK_INT(d.catalog[2], 5);
  CHECK_INT(d.npopular, 1);
  CHECK_INT(eval_item_id(&d, "4"), 4);
  CHECK_INT(eval_item_id(&d, "44"), UINT32_MAX);
  CHECK_INT(eval_item_id(&d, "x"), UINT32_MAX);
  eval_data_free(&d);
}

static void test_plain_errors(void) {
  eval_data d;
  tailor_error err = {0};
  CHECK_INT(load(&d, "1 2\n1 x 3\n", "1\t2\n", 0, &err), TAILOR_EPARSE);
  CHECK_CONTAINS(err.message, "train:2: bad item id 'x'");
  eval_data_free(&d);
  CHECK_INT(load(&d, "1 2\n1\t2\n", "1\t2\n", 0, &err), TAILOR_EPARSE);
  CHECK_CONTAINS(err.message, "train:2: a tab");
  eval_data_free(&d);
  CHECK_INT(load(&d, "1 2\n", "1\t2\n1 2\n", 0, &err), TAILOR_EPARSE);
  CHECK_CONTAINS(err.message, "test:2: expected a test pair");
  eval_data_free(&d);
  CHECK_INT(load(&d, "1 2\n", "1\t2 3\n", 0, &err), TAILOR_EPARSE);
  CHECK_CONTAINS(err.message, "test:1: a test pair has exactly one target");
  eval_data_free(&d);
  CHECK_INT(load(&d, "1 2\n", "\t2\n", 0, &err), TAILOR_EPARSE);
  CHECK_CONTAINS(err.message, "test:1: a test pair needs a prefix");
  eval_data_free(&d);
  CHECK_INT(load(&d, "1 2\n", "1\t2\n", 1.5, &err), TAILOR_EINVAL);
  eval_data_free(&d);
  CHECK_INT(eval_load(&d, "/nonexistent/train", "/nonexistent/test", 0, &err), TAILOR_EIO);
  CHECK_CONTAINS(err.message, "/nonexistent/train: ");
  eval_data_free(&d);
}

static void test_ndjson(void) {
  eval_data d;
  tailor_error err = {0};
  const char *train =
      "\n{\"type\":\"view\",\"item\":\"a\",\"session\":\"s1\"}\n"
      "{\"type\":\"view\",\"item\":\"b\",\"session\":\"s2\",\"ts\":\"2026-11-02T10:00:00Z\"}\n"
      "{\"type\":\"add_to_cart\",\"item\":\"a\",\"session\":\"s1\"}\n"
      "{\"event\":\"Product Viewed\",\"properties\":{\"product_id\":\"b\",\"session_id\":\"s1\"}}\n"
      "{\"type\":\"view\",\"item\":\"c\",\"anon\":\"v9\"}\n"
      "{\"type\":\"teleport\",\"session\":\"s3\"}\n"
      "{\"type\":\"view\",\"item\":\"c\",\"session\":\"s2\"}\n";
  const char *test =
      "{\"type\":\"view\",\"item\":\"a\",\"session\":\"x\"}\n"
      "{\"type\":\"view\",\"item\":\"b\",\"session\":\"y\"}\n"
      "{\"type\":\"view\",\"item\":\"zz\",\"session\":\"x\"}\n"
      "{\"type\":\"view\",\"item\":\"c\",\"session\":\"x\"}\n"
      "{\"type\":\"view\",\"item\":\"a\",\"session\":\"x\"}\n";
  CHECK_INT(load(&d, train, test, 0, &err), 0);
  CHECK_INT(d.named, 1);
  CHECK_INT(d.test_plain, 0);
  CHECK_INT(d.train.n, 2);
  const uint32_t *items;
  CHECK_INT(eval_seq(&d.train, 0, &items), 2); /* s1: a b */
  char num[16];
  CHECK_STR(eval_item_name(&d, items[0], num), "a");
  CHECK_STR(eval_item_name(&d, items[1], num), "b");
  CHECK_INT(eval_seq(&d.train, 1, &items), 2); /* s2: b c */
  CHECK_STR(eval_item_name(&d, items[1], num), "c");
  CHECK_INT(d.counts.events, 12); /* both files */
  CHECK_INT(d.counts.not_views, 2);
  CHECK_INT(d.counts.no_session, 1);
  /* x: a (zz dropped) c a -> two queries; y is too short. */
  CHECK_INT(d.test.n, 1);
  CHECK_STR(session_text(&d, 0), "a c a");
  CHECK_INT(d.nqueries, 2);
  CHECK_INT(d.queries[0].pos, 1);
  CHECK_INT(d.queries[1].pos, 2);
  CHECK_INT(d.counts.dropped_items, 1);
  CHECK_INT(d.counts.dropped_sessions, 1);
  CHECK_INT(d.ncatalog, 3);
  CHECK_INT(eval_item_id(&d, "b"), d.catalog[0]); /* b: 2 views */
  CHECK_INT(eval_item_id(&d, "nope"), UINT32_MAX);
  eval_data_free(&d);

  /* Two visitors' sessions of one id (GA4's ga_session_id is unique per
     user only) are two sessions; a login inside a session keeps it one. */
  CHECK_INT(load(&d,
                 "{\"type\":\"view\",\"item\":\"a\",\"anon\":\"u1\",\"session\":\"17\"}\n"
                 "{\"type\":\"view\",\"item\":\"b\",\"anon\":\"u2\",\"session\":\"17\"}\n"
                 "{\"type\":\"view\",\"item\":\"c\",\"anon\":\"u1\",\"session\":\"17\"}\n"
                 "{\"type\":\"view\",\"item\":\"d\",\"anon\":\"u2\",\"session\":\"17\"}\n"
                 "{\"type\":\"view\",\"item\":\"e\",\"anon\":\"u1\",\"customer\":\"c1\","
                 "\"session\":\"17\"}\n",
                 test, 0, &err),
            0);
  CHECK_INT(d.train.n, 2);
  CHECK_INT(eval_seq(&d.train, 0, &items), 3); /* u1: a c e */
  CHECK_STR(eval_item_name(&d, items[2], num), "e");
  CHECK_INT(eval_seq(&d.train, 1, &items), 2); /* u2: b d */
  eval_data_free(&d);

  /* A line that is not a valid event names its line and field. */
  CHECK_INT(load(&d, "{\"type\":\"view\",\"session\":\"s\",\"item\":\"a\"}\n"
                     "{\"type\":\"view\",\"session\":\"s\"}\n", test, 0, &err),
            TAILOR_EFIELD);
  CHECK_CONTAINS(err.message, "train:2: view: missing field 'item'");
  eval_data_free(&d);
  CHECK_INT(load(&d, train, "{\"type\":\"view\",\n", 0, &err), TAILOR_EPARSE);
  CHECK_CONTAINS(err.message, "test:1: ");
  eval_data_free(&d);

  /* A plain file beside an NDJSON one: every id is a name. */
  CHECK_INT(load(&d, "10 11\n11 12\n",
                 "{\"type\":\"view\",\"item\":\"10\",\"session\":\"x\"}\n"
                 "{\"type\":\"view\",\"item\":12,\"session\":\"x\"}\n", 0, &err), 0);
  CHECK_INT(d.named, 1);
  CHECK_INT(d.nqueries, 1);
  CHECK_STR(session_text(&d, 0), "10 12");
  CHECK_INT(eval_item_id(&d, "11"), 1);
  eval_data_free(&d);
}

static void test_validate(void) {
  eval_data d;
  tailor_error err = {0};
  /* Ten sessions; the last two are validation sessions. */
  const char *train = "1 2\n2 3\n3 4\n4 5\n1 3\n2 4\n3 5\n1 5\n1 2 3\n4 99 5 5\n";
  CHECK_INT(load(&d, train, NULL, 0.2, &err), 0);
  CHECK_INT(d.validating, 1);
  CHECK_INT(d.test_plain, 0);
  CHECK_INT(d.ntrain, 8);
  CHECK_INT(d.test.n, 2);
  CHECK_STR(session_text(&d, 0), "1 2 3");
  CHECK_STR(session_text(&d, 1), "4 5 5"); /* 99 is unknown to the first 8 */
  CHECK_INT(d.nqueries, 4);
  CHECK_INT(d.counts.dropped_items, 1);
  /* Only the indexed sessions count for the catalog. */
  CHECK_INT(d.ncatalog, 5);
  sknn_index *x = eval_index(&d);
  sknn_stats st;
  sknn_stats_get(x, &st);
  CHECK_INT(st.sessions, 8);
  sknn_free(x);
  eval_data_free(&d);
}

static void test_params(void) {
  sknn_params p;
  tailor_error err = {0};
  sknn_params_default(&p, SKNN_TAILOR);
  CHECK_INT(eval_param(&p, "k=50", &err), 0);
  CHECK_INT(p.k, 50);
  CHECK_INT(eval_param(&p, "lambda2=1e5", &err), 0);
  CHECK_NEAR(p.lambda2, 1e5, EPS);
  CHECK_INT(eval_param(&p, "nope=1", &err), TAILOR_EINVAL);
  CHECK_CONTAINS(err.message, "unknown key 'nope'");
  CHECK_INT(eval_param(&p, "lambda=1", &err), TAILOR_EINVAL); /* a prefix of a key */
  CHECK_CONTAINS(err.message, "unknown key 'lambda'");
  CHECK_INT(eval_param(&p, "k=abc", &err), TAILOR_EINVAL);
  CHECK_CONTAINS(err.message, "bad value 'abc' for key 'k'");
  CHECK_INT(eval_param(&p, "k=0", &err), TAILOR_EINVAL);
  CHECK_CONTAINS(err.message, "key 'k'");
  CHECK_INT(eval_param(&p, "k", &err), TAILOR_EINVAL);
  CHECK_CONTAINS(err.message, "expected key=value");
  CHECK_INT(eval_param(&p, "kernel=pop", &err), TAILOR_EINVAL);
  CHECK_CONTAINS(err.message, "--kernel");
  CHECK_INT(p.k, 50);
  CHECK_INT(p.kernel, SKNN_TAILOR);
}

/*
** pop on a catalog where item i has 26 - i views: the ranks are the ids.
** Targets at ranks 1, 3, 10, 20 and 25 (a miss).
*/
static void test_kernel_figures(void) {
  char train[4096] = "", line[128];
  for (int i = 1; i <= 25; i++) {
    line[0] = '\0';
    for (int v = 0; v < 26 - i; v++)
      snprintf(line + strlen(line), sizeof line - strlen(line), "%s%d", v ? " " : "", i);
    strcat(train, line);
    strcat(train, "\n");
  }
  eval_data d;
  tailor_error err = {0};
  CHECK_INT(load(&d, train, "5\t1\n5\t3\n5\t10\n5\t20\n5\t25\n", 0, &err), 0);
  sknn_index *x = eval_index(&d);
  sknn_params p;
  sknn_params_default(&p, SKNN_POP);
  metrics_report r;
  eval_opts o = {.every = 1, .repeat = 2};
  CHECK_INT(eval_kernel(&d, x, &p, &o, &r), 0);
  CHECK_INT(r.queries, 5);
  CHECK_NEAR(r.p10, 3.0 / 5, EPS);
  CHECK_NEAR(r.p20, 4.0 / 5, EPS);
  CHECK_NEAR(r.mrr10, (1 + 1.0 / 3 + 1.0 / 10) / 5, EPS);
  CHECK_NEAR(r.mrr20, (1 + 1.0 / 3 + 1.0 / 10 + 1.0 / 20) / 5, EPS);
  CHECK_NEAR(r.ndcg10, (1 + 1 / log2(4.0) + 1 / log2(11.0)) / 5, EPS);
  CHECK_NEAR(r.ndcg20, (1 + 1 / log2(4.0) + 1 / log2(11.0) + 1 / log2(21.0)) / 5, EPS);
  CHECK_NEAR(r.coverage, 20.0 / 25, EPS);      /* items 1..20 are ever listed */
  CHECK_NEAR(r.popular_share, 1.0 / 20, EPS);  /* the top 1% is item 1 */
  CHECK(r.us_p99 >= r.us_p50);
  /* Every other query: ranks 1, 10 and 25. */
  o.every = 2;
  CHECK_INT(eval_kernel(&d, x, &p, &o, &r), 0);
  CHECK_INT(r.queries, 3);
  CHECK_NEAR(r.p20, 2.0 / 3, EPS);
  sknn_free(x);
  eval_data_free(&d);
}

/* A fake recommender that checks the replay's order: it is asked before
** the view it is scored on, after every earlier view of the session. */
typedef struct fake {
  size_t session, seen; /* views of `session` delivered so far */
  int order_ok, calls, views;
} fake;

static int fake_recommend(void *ud, size_t s, const uint32_t *prefix, size_t n,
                          uint32_t *out, size_t k) {
  fake *f = ud;
  f->calls++;
  if (s != f->session || n != f->seen) f->order_ok = 0;
  out[0] = prefix[n - 1]; /* "the same again" */
  out[1] = UINT32_MAX;    /* an item the data does not know */
  return k >= 2 ? 2 : 1;
}

static int fake_view(void *ud, size_t s, size_t pos, uint32_t item) {
  fake *f = ud;
  f->views++;
  if (s != f->session) {
    f->session = s;
    f->seen = 0;
  }
  if (pos != f->seen) f->order_ok = 0;
  f->seen++;
  return 0;
}

static void test_replay(void) {
  eval_data d;
  tailor_error err = {0};
  CHECK_INT(load(&d, "1 2 3\n2 2\n", "1 2 2\t3\n1 2\t2\n1\t2\n3\t3\n", 0, &err), 0);
  CHECK_INT(d.test.n, 2);
  fake f = {.session = 0, .order_ok = 1};
  eval_replayer r = {fake_recommend, fake_view, &f};
  metrics_report rep;
  CHECK_INT(eval_replay(&d, &r, NULL, &rep), 0);
  CHECK(f.order_ok);
  CHECK_INT(f.calls, 4);
  CHECK_INT(f.views, 6);
  /* Hits: [1 2] -> 2 and [3] -> 3, both at rank 1. */
  CHECK_INT(rep.queries, 4);
  CHECK_NEAR(rep.p20, 0.5, EPS);
  CHECK_NEAR(rep.mrr20, 0.5, EPS);
  eval_data_free(&d);
}

/* Metrics cases test_sknn.c leaves out: the rank boundaries, lists longer
** than the cutoff, ids past the bound, the first occurrence of a target. */
static void test_metrics_edges(void) {
  metrics m;
  metrics_report r;
  CHECK_INT(metrics_init(&m, 30, 25), 0);
  uint32_t list[25];
  for (uint32_t i = 0; i < 25; i++) list[i] = i;
  metrics_add(&m, list, 25, 9);   /* rank 10: counts at both cutoffs */
  metrics_add(&m, list, 25, 19);  /* rank 20: only at 20 */
  metrics_add(&m, list, 25, 20);  /* rank 21: past the cutoff, a miss */
  uint32_t twice[] = {4, 4, 99};
  metrics_add(&m, twice, 3, 4);   /* the first occurrence is the rank */
  metrics_report_get(&m, &r);
  CHECK_INT(r.queries, 4);
  CHECK_NEAR(r.p10, 2.0 / 4, EPS);
  CHECK_NEAR(r.p20, 3.0 / 4, EPS);
  CHECK_NEAR(r.mrr10, (0.1 + 1) / 4, EPS);
  CHECK_NEAR(r.mrr20, (0.1 + 0.05 + 1) / 4, EPS);
  CHECK_NEAR(r.ndcg10, (1 / log2(11.0) + 1) / 4, EPS);
  CHECK_NEAR(r.ndcg20, (1 / log2(11.0) + 1 / log2(21.0) + 1) / 4, EPS);
  /* Only the first 20 of a list count; 99 is past the id bound. */
  CHECK_NEAR(r.coverage, 20.0 / 25, EPS);
  CHECK_INT(m.slots, 63);
  CHECK_NEAR(r.us_p50, 0, EPS); /* nothing timed */
  metrics_free(&m);
  uint64_t one[] = {7}, many[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  CHECK_INT(metrics_percentile(one, 1, 50), 7);
  CHECK_INT(metrics_percentile(one, 1, 99), 7);
  CHECK_INT(metrics_percentile(many, 10, 50), 5);
  CHECK_INT(metrics_percentile(many, 10, 99), 10);
  CHECK_INT(metrics_percentile(many, 10, 100), 10);
  CHECK_INT(metrics_percentile(many, 0, 50), 0);
}

int main(void) {
  RUN(test_plain);
  RUN(test_plain_errors);
  RUN(test_ndjson);
  RUN(test_validate);
  RUN(test_params);
  RUN(test_kernel_figures);
  RUN(test_replay);
  RUN(test_metrics_edges);
  return CHECK_DONE();
}
