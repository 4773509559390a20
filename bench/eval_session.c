/*
** eval_session.c: offline next-item evaluation of the session kernels on
** data in the plain session format of ../shared/data/diginetica (training
** sessions one a line; test pairs "prefix<TAB>target").  The protocol is
** SR-GNN's: rank the full item set, one target per pair, prefix items not
** excluded.  Used while developing the kernels; `tailor eval` reuses the
** same kernels and metrics.
**
**   eval_session --train FILE [--test FILE] [--kernel NAME ...]
**                [--param key=value ...] [--validate [--val-share F]
**                [--val-range A,B]] [--every N] [--repeat N] [--json]
**
** --validate ignores the test file: the last F (default 0.1) of the training
** sessions become prefix->next pairs the way the test pairs were made
** (items unknown to the rest dropped, sessions left shorter than 2 dropped)
** and the kernels learn from the rest.  Parameters are chosen there; the
** test pairs are for the final figures only.  --val-range A,B keeps the
** validation sessions between fractions A and B of them (e.g. fit on
** 0,0.5 and check on 0.5,1).  --every N evaluates every Nth pair only.
**
** Latency is each query's wall time on one thread.  --repeat N runs the
** queries N times and keeps each query's fastest run, which takes the
** noise of a shared machine out of comparisons between versions; the
** figures of record are measured with N = 1.
*/
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/metrics.h"
#include "index/sknn.h"

#define DEFAULT_VAL_SHARE 0.1
#define POPULAR_SHARE 0.01 /* "popular" = the top 1% of items by views */
#define MAX_PARAMS 64

typedef struct ids {
  uint32_t *v;
  size_t n, cap;
} ids;

static void ids_push(ids *a, uint32_t x) {
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 1024;
    a->v = realloc(a->v, a->cap * sizeof *a->v);
    if (!a->v) {
      perror("realloc");
      exit(1);
    }
  }
  a->v[a->n++] = x;
}

/* Sessions (or prefixes): items in one array, offsets of each start. */
typedef struct seqs {
  ids items, start; /* start has n+1 entries once closed */
  ids target;       /* pairs only */
} seqs;

static size_t seqs_n(const seqs *s) { return s->start.n ? s->start.n - 1 : 0; }

static void die(const char *what) {
  fprintf(stderr, "eval_session: %s\n", what);
  exit(2);
}

/* Parse a line of ids separated by spaces into a; returns the count. */
static size_t parse_ids(char *p, char *end, ids *a) {
  size_t n = 0;
  while (p < end) {
    while (p < end && (*p == ' ' || *p == '\r')) p++;
    if (p >= end) break;
    char *q;
    errno = 0;
    unsigned long v = strtoul(p, &q, 10);
    if (q == p || errno || v > SKNN_MAX_ITEM) die("bad item id in input");
    ids_push(a, (uint32_t)v);
    n++;
    p = q;
  }
  return n;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)sz + 1);
  if (!b || fread(b, 1, (size_t)sz, f) != (size_t)sz) die("cannot read input");
  b[sz] = '\0';
  fclose(f);
  *len = (size_t)sz;
  return b;
}

static void read_sessions(const char *path, seqs *s) {
  size_t len;
  char *b = slurp(path, &len), *p = b, *end = b + len;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) nl = end;
    size_t at = s->items.n;
    if (parse_ids(p, nl, &s->items)) ids_push(&s->start, (uint32_t)at);
    p = nl + 1;
  }
  ids_push(&s->start, (uint32_t)s->items.n);
  free(b);
}

static void read_pairs(const char *path, seqs *s) {
  size_t len;
  char *b = slurp(path, &len), *p = b, *end = b + len;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) nl = end;
    char *tab = memchr(p, '\t', (size_t)(nl - p));
    if (tab) {
      size_t at = s->items.n;
      ids t = {0};
      if (parse_ids(tab + 1, nl, &t) != 1) die("a test pair needs 1 target");
      if (parse_ids(p, tab, &s->items)) {
        ids_push(&s->start, (uint32_t)at);
        ids_push(&s->target, t.v[0]);
      }
      free(t.v);
    }
    p = nl + 1;
  }
  ids_push(&s->start, (uint32_t)s->items.n);
  free(b);
}

/* The validation pairs of sessions [from, n) given what [0, from) knows. */
static void expand_pairs(const seqs *tr, size_t from, const uint8_t *known,
                         uint32_t bound, seqs *out) {
  ids kept = {0};
  for (size_t s = from; s < seqs_n(tr); s++) {
    kept.n = 0;
    for (uint32_t i = tr->start.v[s]; i < tr->start.v[s + 1]; i++) {
      uint32_t e = tr->items.v[i];
      if (e < bound && known[e]) ids_push(&kept, e);
    }
    for (size_t k = 1; k < kept.n; k++) {
      ids_push(&out->start, (uint32_t)out->items.n);
      for (size_t i = 0; i < k; i++) ids_push(&out->items, kept.v[i]);
      ids_push(&out->target, kept.v[k]);
    }
  }
  ids_push(&out->start, (uint32_t)out->items.n);
  free(kept.v);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp_views_desc(const void *a, const void *b, void *ctx) {
  const sknn_index *x = ctx;
  uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
  uint64_t vi = sknn_item_views(x, i), vj = sknn_item_views(x, j);
  if (vi != vj) return vi > vj ? -1 : 1;
  return (i > j) - (i < j);
}

static void usage(void) {
  fprintf(stderr,
          "usage: eval_session --train FILE [--test FILE] [--kernel NAME ...]\n"
          "         [--param key=value ...] [--validate [--val-share F]\n"
          "         [--val-range A,B]] [--every N] [--repeat N] [--json]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *train = NULL, *test = NULL;
  const char *params[MAX_PARAMS];
  int nparams = 0, validate = 0, json = 0, kernels[SKNN_KERNEL_COUNT];
  int nkernels = 0;
  double val_share = DEFAULT_VAL_SHARE, vr0 = 0, vr1 = 1;
  unsigned long every = 1, repeat = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--train") && i + 1 < argc) train = argv[++i];
    else if (!strcmp(a, "--test") && i + 1 < argc) test = argv[++i];
    else if (!strcmp(a, "--kernel") && i + 1 < argc) {
      int k = sknn_kernel_find(argv[++i]);
      if (k < 0 || nkernels == SKNN_KERNEL_COUNT) die("unknown kernel");
      kernels[nkernels++] = k;
    } else if (!strcmp(a, "--param") && i + 1 < argc) {
      if (nparams == MAX_PARAMS) die("too many --param");
      params[nparams++] = argv[++i];
    } else if (!strcmp(a, "--validate")) validate = 1;
    else if (!strcmp(a, "--val-share") && i + 1 < argc)
      val_share = atof(argv[++i]);
    else if (!strcmp(a, "--every") && i + 1 < argc)
      every = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--repeat") && i + 1 < argc)
      repeat = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--val-range") && i + 1 < argc) {
      if (sscanf(argv[++i], "%lf,%lf", &vr0, &vr1) != 2) usage();
    } else if (!strcmp(a, "--json")) json = 1;
    else usage();
  }
  if (!train || (!validate && !test) || every == 0 || repeat == 0 ||
      val_share <= 0 ||
      val_share >= 1)
    usage();
  if (!nkernels)
    for (int k = 0; k < SKNN_KERNEL_COUNT; k++) kernels[nkernels++] = k;

  seqs tr = {0}, te = {0};
  read_sessions(train, &tr);
  size_t ntrain = seqs_n(&tr);
  if (validate) ntrain -= (size_t)(val_share * (double)ntrain);
  else read_pairs(test, &te);

  uint64_t t0 = now_ns();
  sknn_index *x = sknn_new(NULL);
  if (!x) die("out of memory");
  for (size_t s = 0; s < ntrain; s++) {
    uint32_t a = tr.start.v[s], b = tr.start.v[s + 1];
    if (sknn_add_session(x, tr.items.v + a, b - a, (int64_t)s)) die("add");
  }
  double train_s = (now_ns() - t0) / 1e9;
  sknn_stats st;
  sknn_stats_get(x, &st);

  if (validate) {
    uint8_t *known = calloc(st.items + 1, 1);
    for (uint32_t e = 0; e < st.items; e++) known[e] = sknn_item_views(x, e) > 0;
    size_t nv = seqs_n(&tr) - ntrain;
    size_t from = ntrain + (size_t)(vr0 * (double)nv);
    size_t to = ntrain + (size_t)(vr1 * (double)nv);
    size_t saved = tr.start.n;
    tr.start.n = to + 1;
    expand_pairs(&tr, from, known, st.items, &te);
    tr.start.n = saved;
    free(known);
  }

  /* The catalog and its most popular 1%. */
  uint32_t *cat = malloc((size_t)st.items * sizeof *cat);
  uint32_t ncat = 0;
  for (uint32_t e = 0; e < st.items; e++)
    if (sknn_item_views(x, e)) cat[ncat++] = e;
  qsort_r(cat, ncat, sizeof *cat, cmp_views_desc, x);
  size_t npop = (size_t)(POPULAR_SHARE * ncat + 0.999999);

  if (!json)
    fprintf(stderr,
            "%s: %zu training sessions (%.2f s to index, %.1f MB, %llu "
            "postings), %u items, %zu %s pairs%s\n",
            validate ? "validation" : "test", ntrain, train_s,
            st.bytes / 1048576.0, (unsigned long long)st.postings, ncat,
            seqs_n(&te), validate ? "validation" : "test",
            every > 1 ? " (a sample)" : "");
  if (json) printf("[\n");
  else
    printf("%-8s %6s %6s %7s %6s %6s %7s %6s %6s %7s %7s %7s  %s\n", "kernel",
           "P@10", "MRR@10", "NDCG@10", "P@20", "MRR@20", "NDCG@20", "cov",
           "pop1%", "queries", "p50us", "p99us", "params");

  sknn_work *w = sknn_work_new();
  topk_entry out[METRICS_CUTOFF];
  uint32_t list[METRICS_CUTOFF];
  for (int ki = 0; ki < nkernels; ki++) {
    sknn_params p;
    sknn_params_default(&p, (sknn_kernel)kernels[ki]);
    for (int i = 0; i < nparams; i++)
      if (sknn_params_set(&p, params[i])) {
        fprintf(stderr, "eval_session: bad --param %s\n", params[i]);
        return 2;
      }
    p.kernel = (sknn_kernel)kernels[ki];
    metrics m;
    if (metrics_init(&m, st.items, ncat)) die("out of memory");
    metrics_set_popular(&m, cat, npop);
    size_t nq = (seqs_n(&te) + every - 1) / every;
    uint64_t *lat = malloc((nq ? nq : 1) * sizeof *lat);
    if (!lat) die("out of memory");
    for (unsigned long pass = 0; pass < repeat; pass++) {
      for (size_t q = 0, qi = 0; q < seqs_n(&te); q += every, qi++) {
        uint32_t a = te.start.v[q], b = te.start.v[q + 1];
        uint64_t q0 = now_ns();
        int n = sknn_query(x, te.items.v + a, b - a, &p, w, out,
                           METRICS_CUTOFF);
        uint64_t dt = now_ns() - q0;
        if (n < 0) die("query failed");
        if (pass == 0 || dt < lat[qi]) lat[qi] = dt;
        if (pass) continue;
        for (int i = 0; i < n; i++) list[i] = out[i].id;
        metrics_add(&m, list, (size_t)n, te.target.v[q]);
      }
    }
    for (size_t qi = 0; qi < nq; qi++)
      if (metrics_add_latency(&m, lat[qi])) die("out of memory");
    free(lat);
    metrics_report r;
    metrics_report_get(&m, &r);
    char ps[512];
    sknn_params_format(&p, ps, sizeof ps);
    const char *name = sknn_kernel_name(p.kernel);
    if (json)
      printf("  {\"kernel\": \"%s\", \"P@10\": %.4f, \"MRR@10\": %.4f, "
             "\"NDCG@10\": %.4f, \"P@20\": %.4f, \"MRR@20\": %.4f, "
             "\"NDCG@20\": %.4f, \"coverage\": %.4f, \"popular_share\": %.4f, "
             "\"queries\": %llu, \"us_per_query_p50\": %.2f, "
             "\"us_per_query_p99\": %.2f, \"params\": \"%s\"}%s\n",
             name, 100 * r.p10, 100 * r.mrr10, 100 * r.ndcg10, 100 * r.p20,
             100 * r.mrr20, 100 * r.ndcg20, r.coverage, r.popular_share,
             (unsigned long long)r.queries, r.us_p50, r.us_p99, ps,
             ki + 1 < nkernels ? "," : "");
    else
      printf("%-8s %6.2f %6.2f %7.2f %6.2f %6.2f %7.2f %6.3f %6.3f %7llu "
             "%7.2f %7.2f  %s\n",
             name, 100 * r.p10, 100 * r.mrr10, 100 * r.ndcg10, 100 * r.p20,
             100 * r.mrr20, 100 * r.ndcg20, r.coverage, r.popular_share,
             (unsigned long long)r.queries, r.us_p50, r.us_p99, ps);
    fflush(stdout);
    metrics_free(&m);
  }
  if (json) printf("]\n");
  sknn_work_free(w);
  sknn_free(x);
  free(cat);
  free(tr.items.v);
  free(tr.start.v);
  free(te.items.v);
  free(te.start.v);
  free(te.target.v);
  return 0;
}
