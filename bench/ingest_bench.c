/*
** ingest_bench.c: the event path in-process, one thread, without sockets:
** where an event's time goes between its bytes and its commit.
**
**   ingest_bench [DATA_DIR] [--events N] [--strategies DIR]
**
** Events are the Diginetica sessions as view events (session i is visitor
** a<i>, every 5th session ends with an order), as NDJSON text.  Printed:
**   parse       ev_parse() alone: JSON text to a typed event;
**   index       idx_apply() alone on the typed events;
**   commit N    tailor_ingest_batch() in batches of N events (parse,
**               one transaction with its fsync, index, triggers), first
**               without strategies, then with the shipped ones (on_event
**               runs for every event), on a file store with
**               synchronous=FULL as `tailor serve` runs it.
**   refits      the same commits in batches of 200 with the shipped
**               strategies, the sessions' visitors now returning customers
**               (c<i mod 20000>, so the value model has repeat buyers to
**               fit every index.value_refit_orders orders): the latency
**               of each batch, with the refits run by the writer and
**               beside it (index.background_refits, as tailor serve runs).
*/
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/event.h"
#include "core/util.h"
#include "cli/malloc_conf.h"
#include "index/index.h"
#include "tailor.h"

typedef struct text {
  char *buf;
  size_t len, cap, n;
  size_t *starts; /* line starts; starts[n] = len */
} text;

static void add_line(text *t, const char *line) {
  size_t n = strlen(line);
  if (t->len + n + 1 > t->cap) {
    t->cap = (t->len + n + 1) * 2;
    t->buf = realloc(t->buf, t->cap);
  }
  if (!(t->n % 4096)) t->starts = realloc(t->starts, (t->n + 4097) * sizeof *t->starts);
  t->starts[t->n++] = t->len;
  memcpy(t->buf + t->len, line, n);
  t->len += n;
  t->buf[t->len++] = '\n';
  t->starts[t->n] = t->len;
}

/* customers 0: session i is anonymous visitor a<i>; else customer
   c<i mod customers>, who comes back. */
static text load(const char *dir, size_t max, size_t customers) {
  char path[1024], line[1 << 16], doc[1024];
  text t = {0};
  snprintf(path, sizeof path, "%s/train.sessions", dir);
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "ingest_bench: cannot open %s\n", path);
    exit(1);
  }
  int64_t ts = util_now_ms() - 86400000LL;
  for (size_t s = 1; t.n < max && fgets(line, sizeof line, f); s++) {
    char *last[2] = {NULL, NULL}, *save = NULL, who[64];
    if (customers)
      snprintf(who, sizeof who, "\"customer\":\"c%zu\"", s % customers);
    else
      snprintf(who, sizeof who, "\"anon\":\"a%zu\"", s);
    for (char *item = strtok_r(line, " \t\r\n", &save); item && t.n < max;
         item = strtok_r(NULL, " \t\r\n", &save)) {
      snprintf(doc, sizeof doc,
               "{\"type\":\"view\",\"item\":\"%s\",%s,\"session\":\"a%zu\","
               "\"ts\":%lld}",
               item, who, s, (long long)(ts += 10));
      add_line(&t, doc);
      last[0] = last[1];
      last[1] = item;
    }
    if (s % 5 == 0 && last[0] && t.n < max) {
      snprintf(doc, sizeof doc,
               "{\"type\":\"purchase\",%s,\"order_id\":\"o%zu\",\"ts\":%lld,"
               "\"items\":[{\"id\":\"%s\",\"price\":%zu},{\"id\":\"%s\",\"price\":20}]}",
               who, s, (long long)(ts += 10), last[0], customers ? 10 + s % 50 : 10, last[1]);
      add_line(&t, doc);
    }
  }
  fclose(f);
  return t;
}

static double secs_since(uint64_t t0) { return (double)(util_mono_ns() - t0) / 1e9; }

static void commit_run(const text *t, const char *strategies, size_t batch, const char *label) {
  char dir[] = "/tmp/tailor-ingest-XXXXXX", cfg[1400];
  if (!mkdtemp(dir)) exit(1);
  snprintf(cfg, sizeof cfg, "{\"db\":\"%s/shop.db\",\"strategies\":\"%s\",\"store\":{\"synchronous_full\":true}}",
           dir, strategies);
  tailor_error err = {0};
  tailor *e = tailor_open(cfg, &err);
  if (!e) {
    fprintf(stderr, "ingest_bench: %s\n", err.message);
    exit(1);
  }
  size_t acc = 0, rej = 0, total = 0;
  uint64_t t0 = util_mono_ns();
  for (size_t i = 0; i < t->n; i += batch) {
    size_t end = i + batch < t->n ? i + batch : t->n;
    tailor_ingest_batch(e, t->buf + t->starts[i], t->starts[end] - t->starts[i], NULL, NULL,
                        &acc, &rej);
    total += acc;
  }
  double s = secs_since(t0);
  printf("  %-34s %9.0f events/s  (%zu events, %.2f s, %.1f us/event)\n", label, total / s,
         total, s, s * 1e6 / (double)total);
  tailor_close(e);
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd)) {
  }
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Batches of `batch` with the shipped strategies; each batch's latency. */
static void refit_run(const text *t, const char *strategies, size_t batch, int background) {
  char dir[] = "/tmp/tailor-ingest-XXXXXX", cfg[1400];
  if (!mkdtemp(dir)) exit(1);
  snprintf(cfg, sizeof cfg,
           "{\"db\":\"%s/shop.db\",\"strategies\":\"%s\",\"store\":{\"synchronous_full\":true},"
           "\"index\":{\"background_refits\":%s}}",
           dir, strategies, background ? "true" : "false");
  tailor_error err = {0};
  tailor *e = tailor_open(cfg, &err);
  if (!e) {
    fprintf(stderr, "ingest_bench: %s\n", err.message);
    exit(1);
  }
  size_t nb = (t->n + batch - 1) / batch, k = 0, total = 0;
  double *lat = calloc(nb ? nb : 1, sizeof *lat);
  uint64_t t0 = util_mono_ns();
  for (size_t i = 0; i < t->n; i += batch) {
    size_t end = i + batch < t->n ? i + batch : t->n, acc = 0, rej = 0;
    uint64_t b0 = util_mono_ns();
    tailor_ingest_batch(e, t->buf + t->starts[i], t->starts[end] - t->starts[i], NULL, NULL,
                        &acc, &rej);
    lat[k++] = (double)(util_mono_ns() - b0) / 1e6;
    total += acc;
  }
  double s = secs_since(t0);
  qsort(lat, k, sizeof *lat, by_value);
  printf("  %-34s %9.0f events/s  batches of %zu: p50 %.1f ms, p99 %.1f ms, max %.0f ms\n",
         background ? "refits beside the writer" : "refits in the writer", total / s, batch,
         lat[k / 2], lat[k * 99 / 100], lat[k - 1]);
  free(lat);
  tailor_close(e);
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd)) {
  }
}

int main(int argc, char **argv) {
  const char *dir = "../shared/data/diginetica", *strategies = "strategies";
  size_t max = 200000;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--events") && i + 1 < argc) max = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--strategies") && i + 1 < argc) strategies = argv[++i];
    else dir = argv[i];
  }
  if (access(strategies, F_OK)) {
    fprintf(stderr, "ingest_bench: strategies folder '%s' not found (run from the repo root)\n",
            strategies);
    return 1;
  }
  text t = load(dir, max, 0);
  printf("tailor ingest benchmark: %zu events (views, every 5th session an order)\n"
         "allocator: %s\n\n", t.n, tailor_allocator());

  /* jansson alone, for scale: the tree that ev_parse maps from. */
  uint64_t t0 = util_mono_ns();
  for (size_t i = 0; i < t.n; i++)
    json_decref(json_loadb(t.buf + t.starts[i], t.starts[i + 1] - t.starts[i] - 1, 0, NULL));
  double s = secs_since(t0);
  printf("  %-34s %9.0f events/s  (%.2f us/event)\n", "  of which: JSON to a jansson tree",
         t.n / s, s * 1e6 / (double)t.n);

  /* Parsed and released one by one, as the server does. */
  ev_limits lim = {0, 0, util_now_ms(), 0, 0, 0};
  t0 = util_mono_ns();
  for (size_t i = 0; i < t.n; i++) {
    ev one;
    if (ev_parse(t.buf + t.starts[i], t.starts[i + 1] - t.starts[i] - 1, &lim, &one, NULL))
      return 1;
    ev_clear(&one);
  }
  s = secs_since(t0);
  printf("  %-34s %9.0f events/s  (%.2f us/event)\n", "parse (JSON text to typed event)",
         t.n / s, s * 1e6 / (double)t.n);
  ev *evs = calloc(t.n, sizeof *evs);
  for (size_t i = 0; i < t.n; i++)
    if (ev_parse(t.buf + t.starts[i], t.starts[i + 1] - t.starts[i] - 1, &lim, &evs[i], NULL))
      return 1;
  t0 = util_mono_ns();
  for (size_t i = 0; i < t.n; i++) ev_body(&evs[i], NULL);
  s = secs_since(t0);
  printf("  %-34s %9.0f events/s  (%.2f us/event)\n", "stored text (written from the fields)",
         t.n / s, s * 1e6 / (double)t.n);
  idx_config ic = {0};
  idx *x = idx_new(&ic);
  t0 = util_mono_ns();
  for (size_t i = 0; i < t.n; i++) idx_apply(x, &evs[i]);
  s = secs_since(t0);
  printf("  %-34s %9.0f events/s  (%.2f us/event)\n", "index (apply typed events)", t.n / s,
         s * 1e6 / (double)t.n);
  idx_free(x);
  for (size_t i = 0; i < t.n; i++) ev_clear(&evs[i]);
  free(evs);

  static const size_t batches[] = {1, 16, 800};
  for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
    char label[64];
    snprintf(label, sizeof label, "commit, batches of %zu, no strategy", batches[b]);
    /* Batches of 1 fsync each event: a tenth of the events is enough. */
    text part = t;
    if (batches[b] == 1 && part.n > 5000) part.n = 5000;
    commit_run(&part, "", batches[b], label);
  }
  commit_run(&t, strategies, 800, "commit, batches of 800, shipped");
  free(t.buf);
  free(t.starts);

  /* The same sessions as 20,000 returning customers' (their orders refit
     the models every 1,000): what a refit costs the writer's clients. */
  text r = load(dir, max, 20000);
  printf("\nrefits: the same %zu events from 20,000 returning customers\n", r.n);
  refit_run(&r, strategies, 200, 0);
  refit_run(&r, strategies, 200, 1);
  free(r.buf);
  free(r.starts);
  return 0;
}
