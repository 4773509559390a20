/*
** eval.c: `tailor eval`: offline evaluation of next-item recommendations
** on recorded sessions (docs/evaluation.md).  The session kernels are
** scored the way the literature scores them (eval/evaluate.h: the SR-GNN
** protocol on a fixed index of the training sessions); a strategy is
** backtested through the real engine, which learns from the test sessions
** as they are replayed, as it would in production.
*/
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/util.h"
#include "eval/evaluate.h"
#include "index/sknn_rerank.h"

#define MAX_PARAMS 64
/* Backtest: views are sent in batches of this many (one transaction each). */
#define BACKTEST_BATCH 50000
/* Backtest timestamps: a fixed origin (2021-01-01T00:00:00Z) so runs are
** deterministic and no trigger fires (every event is older than
** triggers.max_event_age_s); sessions a minute apart, views a second. */
#define BACKTEST_EPOCH_MS 1609459200000LL
#define BACKTEST_SESSION_GAP_MS 60000LL
#define BACKTEST_VIEW_GAP_MS 1000LL
/* Strategy errors printed as they come; the rest are counted. */
#define BACKTEST_ERRORS_SHOWN 3

/* The Diginetica rows of the literature, P@20 and MRR@20 in percent: SR-GNN
** (Wu et al., AAAI 2019, table 2, which also reports the baselines) and
** GCE-GNN (Wang et al., SIGIR 2020). */
static const struct {
  const char *name;
  double p20, mrr20;
} published[] = {
    {"POP", 0.89, 0.20},      {"S-POP", 21.06, 13.68}, {"Item-KNN", 35.75, 11.57},
    {"GRU4Rec", 29.45, 8.33}, {"NARM", 49.70, 16.17},  {"STAMP", 45.64, 14.32},
    {"SR-GNN", 50.73, 17.59}, {"GCE-GNN", 54.22, 19.04},
};

static const char eval_help[] =
    "usage: tailor eval --train FILE --test FILE [--kernel NAME ... | --strategy PATH]\n"
    "                   [--param key=value ...] [--validate] [--json] [OPTIONS]\n\n"
    "Score next-item recommendations on recorded sessions: for each test pair\n"
    "(the views of a session so far, and the item viewed next) rank the whole\n"
    "catalog and find the next item.  P@k (= HR@k), MRR@k and NDCG@k for k = 10\n"
    "and 20 in percent, item coverage of the top-20 lists, the share of listed\n"
    "items among the most viewed 1%, and the latency of one query.\n\n"
    "Inputs (told apart by their first character; '{' is NDJSON):\n"
    "  plain    training sessions one a line, item ids separated by spaces;\n"
    "           test pairs one a line, 'prefix<TAB>target' (the format of the\n"
    "           Diginetica data of SR-GNN and GCE-GNN)\n"
    "  NDJSON   event logs in any format 'tailor ingest' reads, in time order:\n"
    "           views grouped into sessions by their session id; a test log is\n"
    "           cut into pairs the SR-GNN way (items unknown to training\n"
    "           dropped, then sessions shorter than 2)\n\n"
    "  --train FILE       the training sessions\n"
    "  --test FILE        the test pairs (or sessions); not read with --validate\n"
    "  --kernel NAME      a session kernel: pop spop itemknn sknn vsknn stan tailor\n"
    "                     (repeatable; default: every kernel)\n"
    "  --strategy PATH    backtest a strategy's recommend handler instead: a .lua\n"
    "                     file, or a strategy folder; the engine learns from the\n"
    "                     test sessions as they are replayed (online)\n"
    "  --param key=value  a kernel parameter, for every kernel run (repeatable):\n"
    "                     k sample window lambda1 lambda2 lambda3 before idf repeat\n"
    "                     repeat_decay trans trans_decay trans_window trans_gap\n"
    "                     trans_sample multi pop_exp shrink alpha fill\n"
    "                     (host/index/sknn.h says what each one does)\n"
    "  --tuned FILE       also score the parameters 'tailor tune' wrote (a\n"
    "                     tailor/tuned row) and its re-ranker (tailor/reranked)\n"
    "  --validate         score on the last 10% of the training sessions instead,\n"
    "                     learning from the rest: choose parameters here, never on\n"
    "                     the test pairs\n"
    "  --val-share F      the share --validate holds out (default 0.1)\n"
    "  --every N          score every Nth query only (a quick look)\n"
    "  --repeat N         run the kernels' queries N times and keep each query's\n"
    "                     fastest time (latency on a busy machine)\n"
    "  --json             one JSON row per kernel or strategy instead of the table\n"
    "  --config FILE      engine configuration for --strategy\n"
    "  --quiet            no progress output\n"
    "  -h, --help         this help\n\n"
    "Example (docs/evaluation.md):\n"
    "  tailor eval --train ../shared/data/diginetica/train.sessions \\\n"
    "              --test ../shared/data/diginetica/test.pairs\n";

/* One row of the output. */
typedef struct row {
  char name[64];
  const char *strategy; /* the strategy's path, or NULL for a kernel */
  sknn_params p;        /* a kernel's parameters */
  const char *tuned;    /* the tuned-parameters file the row uses, or NULL */
  const char *model;    /* the re-ranker's model, or NULL */
  int adapted;          /* tailor's defaults adjusted: SKNN_ADAPTED_* bits */
  const sknn_repeat_profile *prof; /* the profile that adjusted them, or NULL */
  metrics_report r;
  size_t fallbacks;     /* strategy answers that were the fallback */
  size_t errors;        /* strategy errors logged */
} row;

typedef struct progress {
  int on;
  const char *what;
} progress;

static void show_progress(void *ud, size_t done, size_t total) {
  progress *pr = ud;
  if (pr->on)
    fprintf(stderr, "\rtailor eval: %s %zu/%zu   ", pr->what, done, total);
}

static void end_progress(progress *pr) {
  if (pr->on) fprintf(stderr, "\r%70s\r", "");
}

static int bad_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "tailor eval: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see --help)\n");
  return EXIT_BADINPUT;
}

/* ** Strategy backtest ------------------------------------------------------ */

/* A growing text buffer. */
typedef struct text {
  char *s;
  size_t n, cap;
} text;

static int text_put(text *t, const char *s, size_t n) {
  if (t->n + n + 1 > t->cap) {
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->n + n + 1) cap *= 2;
    char *ns = realloc(t->s, cap);
    if (!ns) return TAILOR_ENOMEM;
    t->s = ns;
    t->cap = cap;
  }
  memcpy(t->s + t->n, s, n);
  t->n += n;
  t->s[t->n] = '\0';
  return 0;
}

static int text_printf(text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int text_printf(text *t, const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return n < 0 || (size_t)n >= sizeof buf ? TAILOR_EINVAL : text_put(t, buf, (size_t)n);
}

/* s as a JSON string, quotes included. */
static int text_json_string(text *t, const char *s) {
  int rc = text_put(t, "\"", 1);
  for (; !rc && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') rc = text_printf(t, "\\%c", c);
    else if (c < 0x20) rc = text_printf(t, "\\u%04x", c);
    else rc = text_put(t, s, 1);
  }
  return rc ? rc : text_put(t, "\"", 1);
}

typedef struct backtest {
  tailor *t;
  const eval_data *d;
  text buf;
  size_t fallbacks, errors, rejected;
  char failure[600];    /* why the replay stopped */
} backtest;

static void backtest_log(void *ud, int level, const char *msg) {
  backtest *b = ud;
  if (level > TAILOR_LOG_ERROR) return;
  if (b->errors++ < BACKTEST_ERRORS_SHOWN) fprintf(stderr, "tailor eval: strategy: %s\n", msg);
}

static void backtest_reject(void *ud, const tailor_error *e) {
  backtest *b = ud;
  if (b->rejected++ == 0) fprintf(stderr, "tailor eval: a view was rejected: %s\n", e->message);
}

/* One view event of training ("train-N") or test ("test-N") session s. */
static int put_view(backtest *b, const char *kind, size_t s, int64_t ts, uint32_t item) {
  char num[16];
  int rc = text_printf(&b->buf, "{\"type\":\"view\",\"session\":\"%s-%zu\",\"anon\":\"%s-%zu\","
                       "\"ts\":%lld,\"item\":", kind, s, kind, s, (long long)ts);
  if (!rc) rc = text_json_string(&b->buf, eval_item_name(b->d, item, num));
  return rc ? rc : text_put(&b->buf, "}\n", 2);
}

static int64_t view_time(size_t session, size_t pos) {
  return BACKTEST_EPOCH_MS + (int64_t)session * BACKTEST_SESSION_GAP_MS +
         (int64_t)pos * BACKTEST_VIEW_GAP_MS;
}

static int backtest_view(void *ud, size_t s, size_t pos, uint32_t item) {
  backtest *b = ud;
  b->buf.n = 0;
  int rc = put_view(b, "test", s, view_time(b->d->ntrain + s, pos), item);
  tailor_error err = {0};
  if (!rc && (rc = tailor_ingest(b->t, b->buf.s, b->buf.n - 1, &err))) {
    if (rc == TAILOR_ESTORE || rc == TAILOR_ENOMEM) {
      snprintf(b->failure, sizeof b->failure, "ingest: %s", err.message);
      return rc;
    }
    backtest_reject(b, &err);
    rc = 0;
  }
  return rc;
}

static int backtest_recommend(void *ud, size_t s, const uint32_t *prefix,
                              size_t n, uint32_t *out, size_t k) {
  backtest *b = ud;
  char num[16];
  b->buf.n = 0;
  int rc = text_printf(&b->buf, "{\"kind\":\"recommend\",\"anon\":\"test-%zu\",\"session\":"
                       "\"test-%zu\",\"k\":%zu,\"page\":{\"type\":\"product\",\"item\":",
                       s, s, k);
  if (!rc) rc = text_json_string(&b->buf, eval_item_name(b->d, prefix[n - 1], num));
  if (!rc) rc = text_put(&b->buf, "}}", 2);
  if (rc) return rc;
  char *resp = NULL;
  tailor_error err = {0};
  if ((rc = tailor_decide(b->t, b->buf.s, b->buf.n, &resp, NULL, &err))) {
    snprintf(b->failure, sizeof b->failure, "decide: %s", err.message);
    return rc;
  }
  json_t *j = json_loads(resp, 0, NULL);
  tailor_free(resp);
  size_t i, got = 0;
  json_t *entry;
  if (json_is_true(json_object_get(j, "fallback"))) b->fallbacks++;
  json_array_foreach(json_object_get(j, "items"), i, entry) {
    const char *id = json_string_value(json_object_get(entry, "id"));
    if (got < k) out[got++] = id ? eval_item_id(b->d, id) : UINT32_MAX;
  }
  json_decref(j);
  return (int)got;
}

/* The folder to load: PATH itself, or a new temporary folder holding a copy
** of the file PATH (*tmp receives it, for backtest_cleanup). */
static int strategy_folder(const char *path, char *dir, size_t cap, char *file,
                           size_t fcap) {
  struct stat st;
  file[0] = '\0';
  if (stat(path, &st)) {
    fprintf(stderr, "tailor eval: %s: %s\n", path, strerror(errno));
    return EXIT_FAIL;
  }
  if (S_ISDIR(st.st_mode)) {
    snprintf(dir, cap, "%s", path);
    return EXIT_OK;
  }
  size_t len;
  char *src = util_read_file(path, &len);
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, cap, "%s/tailor-eval-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!src || !mkdtemp(dir)) {
    fprintf(stderr, "tailor eval: %s: %s\n", src ? dir : path, strerror(errno));
    free(src);
    return EXIT_FAIL;
  }
  char copy[4096];
  snprintf(copy, sizeof copy, "%s", path);
  snprintf(file, fcap, "%s/%s", dir, basename(copy));
  FILE *f = fopen(file, "wb");
  int ok = f && fwrite(src, 1, len, f) == len;
  if (f && fclose(f)) ok = 0;
  free(src);
  if (!ok) {
    fprintf(stderr, "tailor eval: %s: %s\n", file, strerror(errno));
    unlink(file);
    rmdir(dir);
    return EXIT_FAIL;
  }
  return EXIT_OK;
}

/*
** Backtest the strategy at `path`: an in-memory engine learns the training
** sessions (views in batches), then each test session is replayed view by
** view, asking `recommend` for the product page of the last view before
** every view a query targets.
*/
static int run_strategy(const eval_data *d, const char *path, const cli_opts *co,
                        const eval_opts *o, progress *pr, row *out) {
  char dir[4096], file[4096];
  int code = strategy_folder(path, dir, sizeof dir, file, sizeof file);
  if (code) return code;
  cli_opts eo = *co;
  eo.db = ":memory:";
  eo.strategies = dir;
  backtest b = {.d = d};
  b.t = cli_open(&eo, NULL);
  if (!b.t) {
    code = EXIT_BADINPUT;
    goto cleanup;
  }
  tailor_set_logger(b.t, backtest_log, &b);
  /* The training sessions, in batches. */
  pr->what = "strategy: ingesting training sessions";
  int rc = 0;
  size_t lines = 0;
  for (size_t s = 0; !rc && s < d->ntrain; s++) {
    const uint32_t *items;
    size_t n = eval_seq(&d->train, s, &items);
    for (size_t pos = 0; !rc && pos < n; pos++, lines++)
      rc = put_view(&b, "train", s, view_time(s, pos), items[pos]);
    if (!rc && (lines >= BACKTEST_BATCH || s + 1 == d->ntrain)) {
      rc = tailor_ingest_batch(b.t, b.buf.s, b.buf.n, backtest_reject, &b, NULL, NULL);
      if (rc) snprintf(b.failure, sizeof b.failure, "ingest: %s", tailor_strerror(rc));
      b.buf.n = lines = 0;
      show_progress(pr, s + 1, d->ntrain);
    }
  }
  end_progress(pr);
  if (!rc) {
    pr->what = "strategy: replaying test sessions";
    eval_replayer r = {backtest_recommend, backtest_view, &b};
    eval_opts ro = *o;
    ro.progress_ud = pr;
    rc = eval_replay(d, &r, &ro, &out->r);
    end_progress(pr);
  }
  if (rc) {
    fprintf(stderr, "tailor eval: %s: %s\n", path,
            b.failure[0] ? b.failure : tailor_strerror(rc));
    code = EXIT_FAIL;
  } else {
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    snprintf(out->name, sizeof out->name, "%s", basename(copy));
    out->strategy = path;
    out->fallbacks = b.fallbacks;
    out->errors = b.errors;
    if (b.fallbacks)
      fprintf(stderr, "tailor eval: %zu of %llu answers were the fallback (strategy errors: %zu)\n",
              b.fallbacks, (unsigned long long)out->r.queries, b.errors);
    if (b.rejected) fprintf(stderr, "tailor eval: %zu views rejected\n", b.rejected);
  }
  tailor_close(b.t);
cleanup:
  free(b.buf.s);
  if (file[0]) {
    unlink(file);
    rmdir(dir);
  }
  return code;
}

/* ** Output ------------------------------------------------------------------- */

static double pct(double x) { return round(x * 1e6) / 1e4; }
static double frac(double x) { return round(x * 1e4) / 1e4; }
static double us(double x) { return round(x * 100) / 100; }

/* A kernel's parameters as a JSON object, from the "k=v k=v" text. */
static json_t *params_json(const sknn_params *p) {
  char buf[1024];
  sknn_params_format(p, buf, sizeof buf);
  json_t *o = json_object();
  for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
    char *eq = strchr(tok, '=');
    if (!eq) continue;
    *eq = '\0';
    double v = strtod(eq + 1, NULL);
    json_object_set_new(o, tok, v == floor(v) && fabs(v) < 1e15 ? json_integer((json_int_t)v)
                                                                  : json_real(v));
  }
  return o;
}

static void print_json(const eval_data *d, const row *rows, size_t n) {
  json_t *all = json_array();
  for (size_t i = 0; i < n; i++) {
    const row *w = &rows[i];
    const metrics_report *r = &w->r;
    json_t *o = json_object();
    json_object_set_new(o, "kernel", json_string(w->name));
    json_object_set_new(o, "P@10", json_real(pct(r->p10)));
    json_object_set_new(o, "MRR@10", json_real(pct(r->mrr10)));
    json_object_set_new(o, "NDCG@10", json_real(pct(r->ndcg10)));
    json_object_set_new(o, "P@20", json_real(pct(r->p20)));
    json_object_set_new(o, "MRR@20", json_real(pct(r->mrr20)));
    json_object_set_new(o, "NDCG@20", json_real(pct(r->ndcg20)));
    json_object_set_new(o, "coverage", json_real(frac(r->coverage)));
    json_object_set_new(o, "popular_share", json_real(frac(r->popular_share)));
    json_object_set_new(o, "queries", json_integer((json_int_t)r->queries));
    json_object_set_new(o, "us_per_query_p50", json_real(us(r->us_p50)));
    json_object_set_new(o, "us_per_query_p99", json_real(us(r->us_p99)));
    json_object_set_new(o, "split", json_string(d->validating ? "validation" : "test"));
    if (w->strategy) {
      json_object_set_new(o, "strategy", json_string(w->strategy));
      json_object_set_new(o, "protocol", json_string("online"));
      json_t *p = json_object();
      json_object_set_new(p, "k", json_integer(EVAL_LIST_LEN));
      json_object_set_new(p, "page", json_string("product"));
      json_object_set_new(o, "params", p);
      json_object_set_new(o, "fallbacks", json_integer((json_int_t)w->fallbacks));
      json_object_set_new(o, "strategy_errors", json_integer((json_int_t)w->errors));
    } else {
      json_object_set_new(o, "protocol", json_string("sr-gnn"));
      json_object_set_new(o, "params", params_json(&w->p));
      if (w->tuned) json_object_set_new(o, "tuned", json_string(w->tuned));
      if (w->model) json_object_set_new(o, "model", json_string(w->model));
      if (w->adapted) json_object_set_new(o, "adapted", json_string(sknn_adapted_name(w->adapted)));
    }
    json_array_append_new(all, o);
  }
  char *s = json_dumps(all, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
  printf("%s\n", s);
  free(s);
  json_decref(all);
}

static void print_table(const eval_data *d, const char *test, const row *rows,
                        size_t n) {
  if (d->validating)
    printf("validation: the last %zu of %zu training sessions, learning from the "
           "first %zu\n", d->train.n - d->ntrain, d->train.n, d->ntrain);
  else
    printf("test: %s, learning from %zu training sessions\n", test, d->ntrain);
  printf("%u items, %zu test sessions, %zu queries; P, MRR and NDCG in percent\n\n",
         d->ncatalog, d->test.n, d->nqueries);
  printf("%-18s %6s %6s %7s %6s %6s %7s %6s %6s %8s %8s\n", "method", "P@10",
         "MRR@10", "NDCG@10", "P@20", "MRR@20", "NDCG@20", "cover", "top1%",
         "p50 us", "p99 us");
  for (size_t i = 0; i < n; i++) {
    const metrics_report *r = &rows[i].r;
    printf("%-18s %6.2f %6.2f %7.2f %6.2f %6.2f %7.2f %6.3f %6.3f %8.1f %8.1f\n",
           rows[i].name, 100 * r->p10, 100 * r->mrr10, 100 * r->ndcg10,
           100 * r->p20, 100 * r->mrr20, 100 * r->ndcg20, r->coverage,
           r->popular_share, r->us_p50, r->us_p99);
  }
  if (d->test_plain) {
    printf("\npublished on Diginetica (SR-GNN protocol):\n");
    for (size_t i = 0; i < sizeof published / sizeof *published; i++)
      printf("%-18s %6s %6s %7s %6.2f %6.2f\n", published[i].name, "", "", "",
             published[i].p20, published[i].mrr20);
  }
  printf("\nparameters:\n");
  for (size_t i = 0; i < n; i++) {
    char buf[1024];
    if (rows[i].strategy)
      snprintf(buf, sizeof buf, "strategy %s, recommend for the product page of "
               "the last view, k=%d; online: the engine learns from the test "
               "sessions as they are replayed", rows[i].strategy, EVAL_LIST_LEN);
    else
      sknn_params_format(&rows[i].p, buf, sizeof buf);
    printf("  %s: %s%s%s%s\n", rows[i].name, buf,
           rows[i].adapted ? " (defaults adjusted: a " : "", sknn_adapted_name(rows[i].adapted),
           rows[i].adapted ? " shop)" : "");
    if (rows[i].model) printf("    re-ranked by %s\n", rows[i].model);
    if (rows[i].prof && rows[i].prof->trans_queries) {
      sknn_repeat_profile_format(rows[i].prof, buf, sizeof buf);
      printf("    profile: %s\n", buf);
    }
  }
}

/* ** The command ------------------------------------------------------------ */

int cmd_eval(int argc, char **argv) {
  cli_opts co = {0};
  const char *train = NULL, *test = NULL, *strategy = NULL, *tuned_path = NULL;
  const char *params[MAX_PARAMS];
  int kernels[SKNN_KERNEL_COUNT], nkernels = 0, nparams = 0, json = 0;
  double val_share = 0;
  eval_opts o = {.every = 1, .repeat = 1, .progress = show_progress};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(eval_help, stdout);
      return EXIT_OK;
    }
    if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--validate")) val_share = val_share > 0 ? val_share : EVAL_DEFAULT_VAL_SHARE;
    else if (!strcmp(a, "--train") || !strcmp(a, "--test") || !strcmp(a, "--kernel") ||
             !strcmp(a, "--strategy") || !strcmp(a, "--param") || !strcmp(a, "--tuned") ||
             !strcmp(a, "--val-share") || !strcmp(a, "--every") || !strcmp(a, "--repeat")) {
      if (!v) return bad_usage("%s needs a value", a);
      i++;
      char *end;
      if (!strcmp(a, "--train")) train = v;
      else if (!strcmp(a, "--test")) test = v;
      else if (!strcmp(a, "--strategy")) strategy = v;
      else if (!strcmp(a, "--tuned")) tuned_path = v;
      else if (!strcmp(a, "--kernel")) {
        int k = sknn_kernel_find(v);
        if (k < 0) return bad_usage("unknown kernel '%s'", v);
        if (nkernels < SKNN_KERNEL_COUNT) kernels[nkernels++] = k;
      } else if (!strcmp(a, "--param")) {
        if (nparams == MAX_PARAMS) return bad_usage("more than %s --param", "64");
        params[nparams++] = v;
      } else if (!strcmp(a, "--val-share")) {
        val_share = strtod(v, &end);
        if (*end || !(val_share > 0 && val_share < 1))
          return bad_usage("--val-share '%s': a share between 0 and 1", v);
      } else {
        long x;
        if (cli_number("eval", a, v, 1, 1000000, &x)) return EXIT_BADINPUT;
        if (!strcmp(a, "--every")) o.every = (size_t)x;
        else o.repeat = (unsigned)x;
      }
    } else if (cli_common_opt(&co, argc, argv, &i)) {
      if (co.db || co.strategies)
        return bad_usage("%s does not apply: the backtest runs in memory; "
                         "name the strategy with --strategy", a);
    } else {
      return bad_usage("unexpected argument '%s'", a);
    }
  }
  if (!train) return bad_usage("%s", "--train FILE is required");
  if (!test && !(val_share > 0)) return bad_usage("%s", "--test FILE (or --validate) is required");
  /* The validation split is the one tune searched its parameters on and
     trained its re-ranker on: tuned rows there would be in-sample figures. */
  if (tuned_path && val_share > 0)
    return bad_usage("%s", "--tuned scores held-out test data: with --validate its rows would "
                           "be the queries tune chose them on; give --test FILE instead");
  if (strategy && nkernels) return bad_usage("%s", "--kernel and --strategy exclude each other");
  if (strategy && tuned_path) return bad_usage("%s", "--tuned and --strategy exclude each other");
  if (strategy && nparams)
    return bad_usage("%s", "--param sets kernel parameters; a strategy picks its own");
  if (!strategy && !nkernels)
    for (int k = 0; k < SKNN_KERNEL_COUNT; k++) kernels[nkernels++] = k;

  /* Every kernel's parameters, checked before any work. */
  row rows[SKNN_KERNEL_COUNT + 3];
  memset(rows, 0, sizeof rows);
  tailor_error err = {0};
  for (int k = 0; k < nkernels; k++) {
    sknn_params_default(&rows[k].p, (sknn_kernel)kernels[k]);
    for (int i = 0; i < nparams; i++)
      if (eval_param(&rows[k].p, params[i], &err)) {
        fprintf(stderr, "tailor eval: %s\n", err.message);
        return EXIT_BADINPUT;
      }
    snprintf(rows[k].name, sizeof rows[k].name, "%s", sknn_kernel_name(rows[k].p.kernel));
  }
  sknn_tuned tuned = {0};
  if (tuned_path && sknn_tuned_load(tuned_path, &tuned, &err)) {
    fprintf(stderr, "tailor eval: %s\n", err.message);
    sknn_tuned_free(&tuned);
    return err.code == TAILOR_EIO ? EXIT_FAIL : EXIT_BADINPUT;
  }

  progress pr = {cli_progress_on(&co), "reading"};
  if (pr.on) fprintf(stderr, "tailor eval: reading the sessions...");
  eval_data d;
  int rc = eval_load(&d, train, test, val_share, &err);
  end_progress(&pr);
  if (rc) {
    fprintf(stderr, "tailor eval: %s\n", err.message);
    eval_data_free(&d);
    sknn_tuned_free(&tuned);
    return rc == TAILOR_EIO || rc == TAILOR_ENOMEM ? EXIT_FAIL : EXIT_BADINPUT;
  }
  if (val_share > 0 && test && !co.quiet)
    fprintf(stderr, "tailor eval: --validate: %s is not read\n", test);
  /* Plain pairs are scored as written (the published protocol's files are
     filtered already); an NDJSON log drops unknown items first.  The
     kernels index the training sessions only, so such a target is a miss;
     a strategy's engine learns the test sessions as they are replayed, so
     it may list one (the count is no bound on its misses). */
  if (d.counts.unknown_targets && !co.quiet)
    fprintf(stderr, "tailor eval: %llu of %zu test pairs target an item the training sessions "
            "never show: %s (an NDJSON test log leaves such items out)\n",
            (unsigned long long)d.counts.unknown_targets, d.nqueries,
            strategy ? "the backtest may still list it, having learned it from the test "
                       "sessions replayed before"
                     : "scored as misses");
  /* Nothing to score is an error, not a table of zeros. */
  if (!d.ntrain || !d.nqueries) {
    fprintf(stderr, "tailor eval: %s\n",
            !d.ntrain ? "no training sessions to index (is the training file empty?)"
            : val_share > 0 ? "the validation split has no queries (too few sessions?)"
                            : "no test queries (is the test file empty, or are its targets "
                              "unknown to the training sessions?)");
    eval_data_free(&d);
    sknn_tuned_free(&tuned);
    return EXIT_BADINPUT;
  }
  if (d.counts.not_views + d.counts.no_session && !co.quiet)
    fprintf(stderr, "tailor eval: skipped %llu events that are not views and %llu "
            "views without a session id\n", (unsigned long long)d.counts.not_views,
            (unsigned long long)d.counts.no_session);
  o.progress_ud = &pr;

  int code = EXIT_OK;
  size_t nrows = 0;
  sknn_repeat_profile prof; /* the tailor row's, read while the rows print */
  if (strategy) {
    code = run_strategy(&d, strategy, &co, &o, &pr, &rows[0]);
    nrows = code ? 0 : 1;
  } else {
    if (pr.on) fprintf(stderr, "tailor eval: indexing %zu sessions...", d.ntrain);
    sknn_index *x = eval_index(&d);
    end_progress(&pr);
    /* tailor's defaults as a shop that never tuned gets them: adjusted
    ** when the sessions are repeat-heavy or sequential (then --param on
    ** top). */
    if (x && !sknn_repeat_profile_get(x, SKNN_PROFILE_SESSIONS, &prof))
      for (int k = 0; k < nkernels; k++) {
        if (rows[k].p.kernel != SKNN_TAILOR) continue;
        sknn_params_default(&rows[k].p, SKNN_TAILOR);
        rows[k].adapted = sknn_params_adapt(&rows[k].p, &prof);
        rows[k].prof = &prof;
        for (int i = 0; i < nparams; i++) eval_param(&rows[k].p, params[i], NULL);
      }
    int nk = nkernels;
    if (tuned_path) {
      rows[nk].p = tuned.params;
      rows[nk].tuned = tuned_path;
      snprintf(rows[nk].name, sizeof rows[nk].name, "tailor/tuned");
      nk++;
      if (tuned.ranker) {
        rows[nk].p = tuned.params;
        rows[nk].tuned = tuned_path;
        rows[nk].model = tuned.model;
        snprintf(rows[nk].name, sizeof rows[nk].name, "tailor/reranked");
        nk++;
      }
    }
    for (int k = 0; x && k < nk; k++, nrows++) {
      pr.what = rows[k].name;
      if ((rc = rows[k].model ? eval_rerank(&d, x, &rows[k].p, tuned.ranker, &o, &rows[k].r)
                              : eval_kernel(&d, x, &rows[k].p, &o, &rows[k].r)))
        break;
      end_progress(&pr);
    }
    if (!x || rc) {
      fprintf(stderr, "tailor eval: %s\n", tailor_strerror(x ? rc : TAILOR_ENOMEM));
      code = EXIT_FAIL;
    }
    sknn_free(x);
  }
  if (!code) {
    if (json) print_json(&d, rows, nrows);
    else print_table(&d, test, rows, nrows);
  }
  eval_data_free(&d);
  sknn_tuned_free(&tuned);
  return code;
}
