/*
** metrics.c: accumulate ranks, lists and latencies; report the figures.
*/
#include "eval/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tailor.h"

int metrics_init(metrics *m, uint32_t id_bound, uint32_t catalog) {
  memset(m, 0, sizeof *m);
  m->id_bound = id_bound;
  m->catalog = catalog;
  if (id_bound) {
    m->shown = calloc(id_bound, 1);
    m->popular = calloc(id_bound, 1);
    if (!m->shown || !m->popular) {
      metrics_free(m);
      return TAILOR_ENOMEM;
    }
  }
  return 0;
}

void metrics_free(metrics *m) {
  free(m->shown);
  free(m->popular);
  free(m->lat_ns);
  memset(m, 0, sizeof *m);
}

void metrics_set_popular(metrics *m, const uint32_t *ids, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (ids[i] < m->id_bound) m->popular[ids[i]] = 1;
}

void metrics_add_rank(metrics *m, uint32_t rank) {
  m->queries++;
  if (rank == 0 || rank > METRICS_CUTOFF) return;
  double rr = 1.0 / rank, g = 1.0 / log2(rank + 1.0);
  if (rank <= 10) {
    m->hit10++;
    m->rr10 += rr;
    m->dcg10 += g;
  }
  m->hit20++;
  m->rr20 += rr;
  m->dcg20 += g;
}

void metrics_add(metrics *m, const uint32_t *list, size_t n, uint32_t target) {
  uint32_t rank = 0;
  if (n > METRICS_CUTOFF) n = METRICS_CUTOFF;
  for (size_t i = 0; i < n; i++) {
    uint32_t e = list[i];
    if (!rank && e == target) rank = (uint32_t)i + 1;
    m->slots++;
    if (e >= m->id_bound) continue;
    if (!m->shown[e]) {
      m->shown[e] = 1;
      m->nshown++;
    }
    m->popular_slots += m->popular[e];
  }
  metrics_add_rank(m, rank);
}

int metrics_add_latency(metrics *m, uint64_t ns) {
  if (m->nlat == m->lat_cap) {
    size_t ncap = m->lat_cap ? m->lat_cap * 2 : 4096;
    uint64_t *t = realloc(m->lat_ns, ncap * sizeof *t);
    if (!t) return TAILOR_ENOMEM;
    m->lat_ns = t;
    m->lat_cap = ncap;
  }
  m->lat_ns[m->nlat++] = ns;
  return 0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

uint64_t metrics_percentile(const uint64_t *sorted, size_t n, double p) {
  if (n == 0) return 0;
  double r = ceil(p / 100.0 * (double)n);
  size_t i = r < 1 ? 0 : (size_t)r - 1;
  return sorted[i < n ? i : n - 1];
}

void metrics_report_get(metrics *m, metrics_report *r) {
  memset(r, 0, sizeof *r);
  r->queries = m->queries;
  if (m->queries) {
    double q = (double)m->queries;
    r->p10 = m->hit10 / q;
    r->mrr10 = m->rr10 / q;
    r->ndcg10 = m->dcg10 / q;
    r->p20 = m->hit20 / q;
    r->mrr20 = m->rr20 / q;
    r->ndcg20 = m->dcg20 / q;
  }
  if (m->catalog) r->coverage = (double)m->nshown / m->catalog;
  if (m->slots) r->popular_share = (double)m->popular_slots / m->slots;
  if (m->nlat) {
    qsort(m->lat_ns, m->nlat, sizeof *m->lat_ns, cmp_u64);
    r->us_p50 = metrics_percentile(m->lat_ns, m->nlat, 50) / 1e3;
    r->us_p99 = metrics_percentile(m->lat_ns, m->nlat, 99) / 1e3;
  }
}
