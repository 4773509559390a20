/*
** decide_bench.c: the engine's decision path in-process, one thread:
** decisions per second and latency percentiles for the shipped strategies
** (product pages for visitors, buyers and newcomers, cart and home pages) and for
** a one-line trending strategy, on the Diginetica sessions (views; every
** 5th session ends with an order).
** Where the time goes, without sockets in the way.
**   decide_bench [DATA_DIR] [--sessions N] [--decisions N] [--only NAME]
** --only runs the cases whose names contain NAME ("product", "trending"),
** for a profile of them alone; "=NAME" the one case named exactly NAME
** ("=shipped: product page", without the buyer case).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/malloc_conf.h"
#include "core/util.h"
#include "tailor.h"

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Ingest the first `max` sessions as views (and some orders) in batches. */
static size_t load(tailor *t, const char *dir, size_t max, char ***items_out, size_t *nitems) {
  char path[1024], line[1 << 16];
  snprintf(path, sizeof path, "%s/train.sessions", dir);
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "decide_bench: cannot open %s\n", path);
    exit(1);
  }
  size_t cap = 1 << 22, len = 0, s = 0, nev = 0;
  char *batch = malloc(cap);
  char **items = malloc(sizeof *items * 1000000);
  *nitems = 0;
  while (s < max && fgets(line, sizeof line, f)) {
    char *ids[256];
    size_t n = 0;
    for (char *tok = strtok(line, " \n"); tok && n < 256; tok = strtok(NULL, " \n")) ids[n++] = tok;
    for (size_t i = 0; i < n; i++) {
      len += (size_t)snprintf(batch + len, cap - len,
                              "{\"type\":\"view\",\"item\":\"%s\",\"anon\":\"v%zu\",\"session\":\"s%zu\"}\n",
                              ids[i], s, s);
      if (*nitems < 1000000) items[(*nitems)++] = strdup(ids[i]);
      nev++;
    }
    if (s % 5 == 0 && n >= 2)
      len += (size_t)snprintf(batch + len, cap - len,
                              "{\"type\":\"purchase\",\"customer\":\"c%zu\",\"order_id\":\"o%zu\","
                              "\"items\":[{\"id\":\"%s\"},{\"id\":\"%s\"}]}\n",
                              s % 5000, s, ids[n - 1], ids[n - 2]);
    if (len > cap - 70000) {
      tailor_ingest_batch(t, batch, len, NULL, NULL, NULL, NULL);
      len = 0;
    }
    s++;
  }
  tailor_ingest_batch(t, batch, len, NULL, NULL, NULL, NULL);
  free(batch);
  fclose(f);
  *items_out = items;
  return nev;
}

static const char *only;

/* Who asks: an anonymous visitor of the ingested sessions (v<i>, in
   session s<i>); a customer of the orders (c0..c4999, about four items
   bought each), whose bought items and their substitutes are kept out; or
   a first-time visitor (n<i>, no history, no session), as serve_bench's
   product pages mostly are: the session kernel has nothing to go on. */
enum { VISITOR, BUYER, NEWCOMER };

static void run(tailor *t, const char *name, const char *page, int who_asks, char **items,
                size_t nitems, size_t count) {
  if (only && (only[0] == '=' ? strcmp(name, only + 1) : !strstr(name, only))) return;
  uint64_t *lat = malloc(count * sizeof *lat);
  char req[512];
  size_t fallbacks = 0;
  uint64_t start = util_mono_ns();
  for (size_t i = 0; i < count; i++) {
    const char *item = items[(i * 7919) % nitems];
    char who[64];
    if (who_asks == BUYER)
      snprintf(who, sizeof who, "\"customer\":\"c%zu\",\"session\":\"s%zu\"", i % 5000, i % 50000);
    else if (who_asks == NEWCOMER) snprintf(who, sizeof who, "\"anon\":\"n%zu\"", i);
    else snprintf(who, sizeof who, "\"anon\":\"v%zu\",\"session\":\"s%zu\"", i % 50000, i % 50000);
    snprintf(req, sizeof req,
             "{\"kind\":\"recommend\",%s,\"k\":10,"
             "\"page\":{\"type\":\"%s\",\"item\":\"%s\"}}",
             who, page, item);
    char *resp = NULL;
    uint64_t t0 = util_mono_ns();
    tailor_decide(t, req, strlen(req), &resp, NULL, NULL);
    lat[i] = util_mono_ns() - t0;
    fallbacks += resp && strstr(resp, "\"fallback\"");
    tailor_free(resp);
  }
  double secs = (double)(util_mono_ns() - start) / 1e9;
  qsort(lat, count, sizeof *lat, cmp_u64);
  printf("  %-28s %8.0f decisions/s   p50 %7.1f us   p99 %7.1f us%s\n", name, count / secs,
         lat[count / 2] / 1e3, lat[(size_t)(count * 0.99)] / 1e3,
         fallbacks ? "   (FALLBACKS!)" : "");
  free(lat);
}

int main(int argc, char **argv) {
  const char *dir = "../shared/data/diginetica";
  size_t sessions = 50000, count = 20000;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--sessions") && i + 1 < argc) sessions = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--decisions") && i + 1 < argc) count = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else dir = argv[i];
  }
  char trend_dir[] = "/tmp/tailor-decide-XXXXXX";
  if (!mkdtemp(trend_dir)) return 1;
  char path[128];
  snprintf(path, sizeof path, "%s/recommend.lua", trend_dir);
  FILE *f = fopen(path, "w");
  /* The equivalent of ZREVRANGE, and on page "empty" nothing at all: the
     fixed cost of a decision (request, ctx, the Lua call, the answer). */
  fputs("return { recommend = function(ctx)\n"
        "  if ctx.page.type == 'empty' then return {} end\n"
        "  return tailor.trending(nil, nil, {k = ctx.k})\n"
        "end }\n", f);
  fclose(f);
  const char *root = getenv("TAILOR_ROOT") ? getenv("TAILOR_ROOT") : ".";
  char cfg[1024];
  for (int pass = 0; pass < 2; pass++) {
    snprintf(cfg, sizeof cfg, "{\"db\":\":memory:\",\"strategies\":\"%s%s\"}",
             pass ? trend_dir : root, pass ? "" : "/strategies");
    tailor_error err = {0};
    tailor *t = tailor_open(cfg, &err);
    if (!t) {
      fprintf(stderr, "decide_bench: %s\n", err.message);
      return 1;
    }
    tailor_set_logger(t, NULL, NULL);
    char **items;
    size_t nitems;
    uint64_t t0 = util_mono_ns();
    size_t nev = load(t, dir, sessions, &items, &nitems);
    if (pass == 0)
      printf("decide benchmark: %zu sessions, %zu views ingested in %.1f s (JSON, store, index)\n"
             "allocator: %s\n",
             sessions, nev, (double)(util_mono_ns() - t0) / 1e9, tailor_allocator());
    if (pass == 0) {
      run(t, "shipped: product page", "product", VISITOR, items, nitems, count);
      run(t, "shipped: product page, buyer", "product", BUYER, items, nitems, count);
      run(t, "shipped: product page, newcomer", "product", NEWCOMER, items, nitems, count);
      run(t, "shipped: cart page", "cart", VISITOR, items, nitems, count);
      run(t, "shipped: home page", "home", VISITOR, items, nitems, count);
    } else {
      run(t, "one-line trending strategy", "home", VISITOR, items, nitems, count);
      run(t, "strategy returning {}", "empty", VISITOR, items, nitems, count);
    }
    for (size_t i = 0; i < nitems; i++) free(items[i]);
    free(items);
    tailor_close(t);
  }
  unlink(path);
  rmdir(trend_dir);
  return 0;
}
