/*
** index_bench.c: figures for the native indexes on the public Diginetica
** sessions (../shared/data/diginetica/train.sessions):
**   - ingest into the indexes, single thread, events/s (events parsed
**     beforehand: this measures the index, not JSON);
**   - full rebuild from the SQLite store, and restart from a checkpoint;
**   - each kernel's query latency, p50 and p99 in microseconds (the session
**     kernel: tailor's, on a view and up to two before it in its session);
**   - with --tuned FILE (`tailor tune --out`, tuned on the same data), the
**     session kernel with the tuned parameters, and with its learned
**     re-ranker as tailor.session_next runs it, split into the candidates'
**     features and the model's scoring (native tree walking);
**   - memory per item, per person, per stored co-occurrence pair;
**   - item-item top-20 by co-view count, native against a straightforward
**     SQL query on the same data in the same SQLite file, as a ratio.
**
** The data has views only; to exercise the purchase paths every 5th session
** ends with an order of its last two items, and items get a synthetic
** catalog (category, brand, price) derived from their id.  Usage:
**   index_bench [DATA_DIR] [--sessions N] [--queries N] [--tuned FILE]
*/
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "cli/malloc_conf.h"
#include "index/index.h"
#include "index/internal.h" /* idx_affinity_cap: a person's room for affinities */
#include "index/sknn_rerank.h"
#include "store/store.h"

#define BENCH_T0 1600000000000LL
#define SESSION_GAP_MS 60000 /* sessions one minute apart */
#define VIEW_GAP_MS 5000
#define PURCHASE_EVERY 5

typedef struct evs {
  ev *v;
  size_t n, cap;
} evs;

static void add_event(evs *a, const char *json) {
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 1 << 16;
    a->v = realloc(a->v, a->cap * sizeof *a->v);
    if (!a->v) abort();
  }
  tailor_error err = {0};
  ev_limits lim = {0, 0, BENCH_T0, 0, 0, 0};
  if (ev_parse(json, strlen(json), &lim, &a->v[a->n], &err) != TAILOR_OK) {
    fprintf(stderr, "bench: bad event %s: %s\n", json, err.message);
    exit(1);
  }
  a->n++;
}

/* Events for the first `max` sessions of the file, plus a catalog. */
static evs load(const char *dir, size_t max, size_t *nsessions, uint32_t *max_item) {
  char path[1024], line[1 << 16], json[1024];
  snprintf(path, sizeof path, "%s/train.sessions", dir);
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "bench: cannot open %s\n", path);
    exit(1);
  }
  evs a = {0};
  int64_t ts = BENCH_T0;
  size_t s = 0;
  *max_item = 0;
  while (s < max && fgets(line, sizeof line, f)) {
    uint32_t items[512];
    size_t n = 0;
    for (char *tok = strtok(line, " \n"); tok && n < 512; tok = strtok(NULL, " \n"))
      items[n++] = (uint32_t)strtoul(tok, NULL, 10);
    for (size_t i = 0; i < n; i++) {
      if (items[i] > *max_item) *max_item = items[i];
      snprintf(json, sizeof json,
               "{\"type\":\"view\",\"item\":\"%u\",\"anon\":\"v%zu\",\"session\":\"s%zu\","
               "\"ts\":%lld,\"props\":{\"country\":\"%s\"}}",
               items[i], s, s, (long long)(ts + (int64_t)i * VIEW_GAP_MS),
               s % 3 ? "DE" : "FR");
      add_event(&a, json);
    }
    if (s % PURCHASE_EVERY == 0 && n >= 2) {
      snprintf(json, sizeof json,
               "{\"type\":\"purchase\",\"customer\":\"c%zu\",\"anon\":\"v%zu\","
               "\"order_id\":\"o%zu\",\"ts\":%lld,\"items\":[{\"id\":\"%u\",\"price\":10},"
               "{\"id\":\"%u\",\"price\":20}]}",
               s % 20000, s, s, (long long)(ts + (int64_t)n * VIEW_GAP_MS),
               items[n - 1], items[n - 2]);
      add_event(&a, json);
    }
    ts += SESSION_GAP_MS;
    s++;
  }
  fclose(f);
  *nsessions = s;
  return a;
}

static evs catalog(uint32_t max_item) {
  evs a = {0};
  char json[512];
  for (uint32_t i = 1; i <= max_item; i++) {
    snprintf(json, sizeof json,
             "{\"type\":\"item_upsert\",\"ts\":%lld,\"item\":{\"id\":\"%u\","
             "\"category\":\"C%u/S%u\",\"brand\":\"B%u\",\"price\":%u,"
             "\"tags\":[\"t%u\",\"t%u\"]}}",
             (long long)BENCH_T0, i, i % 40, i % 400, i % 300, 5 + i % 200,
             i % 50, i % 70);
    add_event(&a, json);
  }
  return a;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Print p50/p99 of `n` latencies in microseconds. */
static void report(const char *name, double *us, size_t n) {
  qsort(us, n, sizeof *us, cmp_double);
  printf("  %-34s p50 %7.2f us   p99 %7.2f us   (%zu queries)\n", name,
         us[n / 2], us[(size_t)((double)n * 0.99)], n);
}

static size_t rss_bytes(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
  }
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

typedef enum { Q_COVIEW, Q_COPURCHASE, Q_CART, Q_TREND, Q_TREND_SEG, Q_SIMILAR,
               Q_SUBSTITUTES, Q_FIGURES, Q_SESSION, Q_KINDS } qkind;

static const char *const qnames[] = {
    "viewed_together (cosine, 1 anchor)", "also_bought (1 anchor)",
    "bought_together (5-item cart)", "trending (everyone)",
    "trending (country=DE, in stock)", "similar (content)",
    "substitutes (1 item, k = 50)",
    "customer figures", "session next (tailor, 3 views)"};

/* The session query of event e: the drawn view and up to two before it in
   its session (an order has no session: its first item alone). */
static size_t session_prefix(const idx *x, const evs *events, const ev *e,
                             uint32_t prefix[3], uint32_t *sid) {
  size_t at = (size_t)(e - events->v), from = at;
  while (e->session && from > 0 && at - from < 2 && events->v[from - 1].session &&
         !strcmp(events->v[from - 1].session, e->session))
    from--;
  size_t n = 0;
  for (size_t j = from; j <= at; j++)
    prefix[n++] = idx_item_id(x, events->v[j].lines[0].item);
  *sid = e->session ? intern_get(&x->sessions, e->session) : INTERN_NONE;
  return n;
}

/* Apply events [from, to) one at a time or in batches. */
#define BATCH 1000
#define BATCH_NAME "1000"
static void ingest(idx *x, const evs *a, size_t from, size_t to, int batched) {
  if (!batched) {
    for (size_t i = from; i < to; i++) idx_apply(x, &a->v[i]);
    return;
  }
  const ev *p[BATCH];
  for (size_t i = from; i < to; i += BATCH) {
    size_t n = to - i < BATCH ? to - i : BATCH;
    for (size_t j = 0; j < n; j++) p[j] = &a->v[i + j];
    idx_apply_batch(x, p, n, NULL);
  }
}

static int apply_cb(void *ud, int64_t seq, const ev *e) {
  (void)seq;
  return idx_apply(ud, e) != TAILOR_OK;
}

int main(int argc, char **argv) {
  const char *dir = "../shared/data/diginetica";
  size_t max_sessions = (size_t)-1, queries = 200000;
  int ingest_only = 0; /* for profiling the ingest path alone */
  const char *tuned_path = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--sessions") && i + 1 < argc) max_sessions = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--queries") && i + 1 < argc) queries = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--ingest-only")) ingest_only = 1;
    else if (!strcmp(argv[i], "--tuned") && i + 1 < argc) tuned_path = argv[++i];
    else dir = argv[i];
  }
  printf("tailor index benchmark on %s\nallocator: %s\n", dir, tailor_allocator());
  size_t nsessions;
  uint32_t max_item;
  uint64_t t0 = util_mono_ns();
  evs events = load(dir, max_sessions, &nsessions, &max_item);
  evs items = catalog(max_item);
  printf("  prepared %zu events from %zu sessions and %u catalog items in %.1f s\n",
         events.n, nsessions, max_item, (double)(util_mono_ns() - t0) / 1e9);

  /* Ingest into the indexes: one event at a time (idx_apply), then in
     batches as the engine's writer applies a group commit
     (idx_apply_batch), each into a fresh index.  Cold: the index grows
     from empty (first touch of every page counts).  Warm: the last fifth
     of the events, into an index that has the rest. */
  size_t warm_from = events.n / 5 * 4;
  printf("\ningest into the indexes (1 thread):\n");
  idx *x = NULL;
  size_t rss0 = 0, rss1 = 0;
  for (int batched = 0; batched <= 1; batched++) {
    idx_free(x);
    rss0 = rss_bytes();
    x = idx_new(NULL);
    for (size_t i = 0; i < items.n; i++) idx_apply(x, &items.v[i]);
    t0 = util_mono_ns();
    ingest(x, &events, 0, warm_from, batched);
    uint64_t t1 = util_mono_ns();
    ingest(x, &events, warm_from, events.n, batched);
    uint64_t t2 = util_mono_ns();
    rss1 = rss_bytes();
    double secs = (double)(t2 - t0) / 1e9, warm = (double)(t2 - t1) / 1e9;
    printf("  %s\n"
           "    all events from empty    %9.0f events/s (%zu events in %.3f s)\n"
           "    last fifth, warm index   %9.0f events/s (%zu events in %.3f s)\n",
           batched ? "in batches of " BATCH_NAME " (idx_apply_batch, as the writer applies)"
                   : "one at a time (idx_apply)",
           (double)events.n / secs, events.n, secs,
           (double)(events.n - warm_from) / warm, events.n - warm_from, warm);
  }
  if (ingest_only) { /* repeat so a profiler sees mostly the index */
    for (int r = 0; r < 4; r++) {
      idx *again = idx_new(NULL);
      for (size_t i = 0; i < items.n; i++) idx_apply(again, &items.v[i]);
      ingest(again, &events, 0, events.n, 1);
      idx_free(again);
    }
    return 0;
  }

  /* Memory. */
  size_t item_bytes = x->item_cap * sizeof *x->item + intern_bytes(&x->items);
  size_t person_bytes = x->person_cap * sizeof *x->person + intern_bytes(&x->people);
  for (uint32_t p = 0; p < x->people.n; p++)
    person_bytes += (x->person[p].recent.cap + x->person[p].cart.cap +
                     x->person[p].bought.cap) * sizeof(uint32_t) +
                    x->person[p].nattrs * sizeof(idx_attr) +
                    idx_affinity_cap(x->person[p].naff) * sizeof(idx_affinity);
  uint64_t pairs = x->coview.pairs + x->copurchase.pairs;
  size_t pair_bytes = cooc_bytes(&x->coview) + cooc_bytes(&x->copurchase);
  printf("\nmemory (index resident set grew by %.1f MiB):\n",
         (double)(rss1 - rss0) / (1 << 20));
  printf("  per item                %7.1f bytes (%u items, catalog JSON excluded)\n",
         (double)item_bytes / x->items.n, x->items.n);
  printf("  per person              %7.1f bytes (%u people)\n",
         (double)person_bytes / x->people.n, x->people.n);
  printf("  per co-occurrence pair  %7.1f bytes (%llu pairs stored, lists and totals)\n",
         (double)pair_bytes / (double)pairs, (unsigned long long)pairs);
  printf("  trending tables         %7.1f MiB (%u segment tables)\n",
         (double)trend_bytes(&x->trend) / (1 << 20), x->trend.names.n);

  /* Kernel latencies, anchors drawn from the data. */
  printf("\nkernel latency (1 thread, k = 20):\n");
  double *us = malloc(queries * sizeof *us);
  topk_entry out[20], subst[50];
  cooc_params cos, also;
  cooc_params_default(&cos, COOC_COSINE);
  cooc_params_default(&also, COOC_ALSO);
  idx_filter stock = {.in_stock = 1};
  int64_t now = x->last_ts;
  volatile size_t sink = 0;
  uint64_t seed = 42;
  sknn_params tailor_kernel;
  sknn_params_default(&tailor_kernel, SKNN_TAILOR);
  sknn_work *work = sknn_work_new();
  for (int q = 0; q < Q_KINDS; q++) {
    for (size_t i = 0; i < queries; i++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      const ev *e = &events.v[(seed >> 33) % events.n];
      uint32_t anchor = idx_item_id(x, e->lines[0].item);
      uint32_t cart[5];
      for (int c = 0; c < 5; c++) cart[c] = (anchor + (uint32_t)c * 977) % x->items.n;
      uint64_t s = util_mono_ns();
      switch ((qkind)q) {
        case Q_COVIEW: sink += idx_related(x, IDX_COVIEW, &cos, &anchor, 1, &stock, now, 20, out); break;
        case Q_COPURCHASE: sink += idx_related(x, IDX_COPURCHASE, &also, &anchor, 1, &stock, now, 20, out); break;
        case Q_CART: sink += idx_related(x, IDX_COPURCHASE, &cos, cart, 5, &stock, now, 20, out); break;
        case Q_TREND: sink += idx_trending(x, "", "", &stock, now, 20, out); break;
        case Q_TREND_SEG: sink += idx_trending(x, "country", "DE", &stock, now, 20, out); break;
        case Q_SIMILAR: sink += idx_similar(x, anchor, &stock, 20, out); break;
        case Q_SUBSTITUTES: /* as the shipped strategies hide a bought item's */
          sink += idx_substitutes(x, anchor, NULL, now, 50, subst);
          break;
        case Q_SESSION: {
          uint32_t prefix[3], sid;
          size_t n = session_prefix(x, &events, e, prefix, &sid);
          sink += idx_session_next(x, prefix, n, sid, &tailor_kernel, work, &stock, 20, out);
          break;
        }
        default: {
          idx_figures f;
          idx_person_figures(x, idx_person_of(x, NULL, e->anon), now, &f);
          sink += f.visits;
        }
      }
      us[i] = (double)(util_mono_ns() - s) / 1e3;
    }
    report(qnames[q], us, queries);
  }
  sknn_work_free(work);

  /* The tuned kernel and its re-ranker, on the same kind of queries. */
  if (tuned_path) {
    sknn_tuned tu;
    tailor_error te = {0};
    if (sknn_tuned_load(tuned_path, &tu, &te) || !tu.ranker) {
      fprintf(stderr, "bench: %s\n", te.code ? te.message : "the tuned file has no model");
      return 1;
    }
    printf("\ntuned session kernel and re-ranker (%s, 1 thread, k = 20):\n", tuned_path);
    sknn_work *tw = sknn_work_new();
    sknn_rerank_work *rw = sknn_rerank_work_new();
    double *cand = malloc(queries * sizeof *cand), *xgb = malloc(queries * sizeof *xgb);
    float scores[SKNN_RERANK_MAX];
    size_t ncand = 0;
    for (int c = 0; c < 3; c++) {
      seed = 42;
      for (size_t i = 0; i < queries; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        const ev *e = &events.v[(seed >> 33) % events.n];
        uint32_t prefix[3], sid;
        size_t n = session_prefix(x, &events, e, prefix, &sid);
        uint64_t s = util_mono_ns();
        if (c == 0) {
          sink += idx_session_next(x, prefix, n, sid, &tu.params, tw, &stock, 20, out);
        } else if (c == 1) {
          int got = idx_session_next_reranked(x, tu.ranker, prefix, n, sid, &tu.params, rw,
                                              &stock, 20, out);
          if (got < 0) return 1;
          sink += (size_t)got;
        } else {
          /* The same work in its two parts. */
          sknn_params q = tu.params;
          q.self = sid == INTERN_NONE ? SKNN_NONE : sid;
          q.fill = 0;
          const uint32_t *ids, *anchors;
          const float *f;
          int m = sknn_rerank_candidates(x->sknn, &q, prefix, n, rw, &ids, &anchors, &f);
          uint64_t s2 = util_mono_ns();
          if (m < 0 || sknn_ranker_score(tu.ranker, f, (size_t)m, scores)) return 1;
          ncand += (size_t)m;
          cand[i] = (double)(s2 - s) / 1e3;
          xgb[i] = (double)(util_mono_ns() - s2) / 1e3;
          continue;
        }
        us[i] = (double)(util_mono_ns() - s) / 1e3;
      }
      if (c == 0) report("session, tuned kernel", us, queries);
      if (c == 1) report("session, tuned + re-rank", us, queries);
    }
    report("  of which candidates + features", cand, queries);
    report("  of which model scoring (native)", xgb, queries);
    printf("  %.1f candidates a query, %zu trees\n", (double)ncand / (double)queries,
           sknn_ranker_trees(tu.ranker));
    free(cand);
    free(xgb);
    sknn_rerank_work_free(rw);
    sknn_work_free(tw);
    sknn_tuned_free(&tu);
  }

  /* The store: write everything, then time a full rebuild and a restart
     from a checkpoint. */
  char db[] = "/tmp/tailor-bench-XXXXXX";
  int fd = mkstemp(db);
  if (fd < 0) return 1;
  close(fd);
  char ckpt[64];
  snprintf(ckpt, sizeof ckpt, "%s.ckpt", db);
  store_options so = {0, 0, 0, 0};
  tailor_error err = {0};
  store *st = store_open(db, &so, &err);
  if (!st) {
    fprintf(stderr, "bench: %s\n", err.message);
    return 1;
  }
  t0 = util_mono_ns();
  for (size_t i = 0; i < items.n; i += 10000) {
    ev *ptrs[10000];
    size_t n = items.n - i < 10000 ? items.n - i : 10000;
    for (size_t j = 0; j < n; j++) ptrs[j] = &items.v[i + j];
    store_append(st, ptrs, n, NULL, &err);
  }
  for (size_t i = 0; i < events.n; i += 10000) {
    ev *ptrs[10000];
    size_t n = events.n - i < 10000 ? events.n - i : 10000;
    for (size_t j = 0; j < n; j++) ptrs[j] = &events.v[i + j];
    store_append(st, ptrs, n, NULL, &err);
  }
  printf("\nstore: appended %zu events in batches of 10,000 in %.2f s\n",
         items.n + events.n, (double)(util_mono_ns() - t0) / 1e9);
  idx *y = idx_new(NULL);
  t0 = util_mono_ns();
  store_scan(st, 0, apply_cb, y, &err);
  double rebuild = (double)(util_mono_ns() - t0) / 1e9;
  printf("full rebuild from the store: %.2f s\n", rebuild);
  t0 = util_mono_ns();
  idx_save(y, ckpt, idx_fingerprint(y), store_last_seq(st), &err);
  double save = (double)(util_mono_ns() - t0) / 1e9;
  int64_t seq;
  t0 = util_mono_ns();
  idx *z = idx_load(ckpt, NULL, idx_fingerprint(y), &seq, &err);
  printf("checkpoint: written in %.2f s, loaded in %.2f s%s\n", save,
         (double)(util_mono_ns() - t0) / 1e9, z ? "" : " (FAILED)");
  idx_free(z);
  idx_free(y);

  /* Item-item top-20 by co-view count: native against SQL on the same
     SQLite data.  The native window is widened so both count every pair of
     a session. */
  idx_config wide = {.coview_window = IDX_MAX_COVIEW_WINDOW, .cooc_half_life_days = -1,
                     .max_neighbors = 1024};
  idx *w = idx_new(&wide);
  for (size_t i = 0; i < events.n; i++) idx_apply(w, &events.v[i]);
  sqlite3 *db3 = store_db(st);
  sqlite3_exec(db3,
               "CREATE TABLE views AS SELECT session, json_extract(body,'$.item') AS item "
               "FROM events WHERE type='view';"
               "CREATE INDEX views_item ON views(item);"
               "CREATE INDEX views_session ON views(session, item);",
               NULL, NULL, NULL);
  sqlite3_stmt *q;
  sqlite3_prepare_v2(db3,
                     "SELECT b.item, count(DISTINCT a.session) AS c FROM views a "
                     "JOIN views b ON b.session = a.session AND b.item != a.item "
                     "WHERE a.item = ? GROUP BY b.item ORDER BY c DESC, b.item LIMIT 20",
                     -1, &q, NULL);
  size_t nsql = queries < 2000 ? queries : 2000, agree = 0;
  double sql_total = 0, native_total = 0;
  cooc_params count;
  cooc_params_default(&count, COOC_COUNT);
  for (size_t i = 0; i < nsql; i++) {
    const ev *e = &events.v[(i * 7919) % events.n];
    uint32_t anchor = idx_item_id(w, e->lines[0].item);
    uint64_t s = util_mono_ns();
    size_t n = idx_related(w, IDX_COVIEW, &count, &anchor, 1, NULL, now, 20, out);
    native_total += (double)(util_mono_ns() - s);
    s = util_mono_ns();
    sqlite3_bind_text(q, 1, e->lines[0].item, -1, SQLITE_STATIC);
    size_t rows = 0;
    int top_match = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
      if (rows == 0 && n > 0)
        top_match = sqlite3_column_int(q, 1) == (int)out[0].score;
      rows++;
    }
    sqlite3_reset(q);
    sql_total += (double)(util_mono_ns() - s);
    agree += top_match || (n == 0 && rows == 0);
  }
  sqlite3_finalize(q);
  printf("\nitem-item top-20 by co-view count, %zu queries on the same data:\n", nsql);
  printf("  native  %9.2f us/query\n  SQLite  %9.2f us/query\n  ratio   %9.0fx  "
         "(top count agrees on %zu of %zu)\n",
         native_total / nsql / 1e3, sql_total / nsql / 1e3, sql_total / native_total,
         agree, nsql);
  idx_free(w);
  store_close(st);
  unlink(db);
  unlink(ckpt);
  char wal[64];
  snprintf(wal, sizeof wal, "%s-wal", db);
  unlink(wal);
  snprintf(wal, sizeof wal, "%s-shm", db);
  unlink(wal);
  for (size_t i = 0; i < events.n; i++) ev_clear(&events.v[i]);
  for (size_t i = 0; i < items.n; i++) ev_clear(&items.v[i]);
  free(events.v);
  free(items.v);
  free(us);
  idx_free(x);
  return sink == (size_t)-1;
}
