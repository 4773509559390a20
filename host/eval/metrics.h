/*
** metrics.h: the figures of an offline next-item evaluation (`tailor
** eval`, eval/evaluate.h).  One target per query, as in the
** SR-GNN protocol:
**   P@k     share of queries whose target ranks k or better (= HR@k, and
**           Recall@k with one target)
**   MRR@k   mean of 1/rank, 0 past k
**   NDCG@k  mean of 1/log2(rank + 1), 0 past k (one relevant item, so the
**           ideal DCG is 1)
** for k = 10 and 20; item coverage (share of the catalog that appears in
** at least one top-20 list), the share of listed items that are among the
** most popular ones, and latency percentiles.
**
** Ownership: a metrics owns its arrays; metrics_free releases them.  Not
** thread-safe: one accumulator per thread, or a lock around metrics_add.
*/
#ifndef TAILOR_METRICS_H
#define TAILOR_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Longest list the figures look at (the largest k reported). */
#define METRICS_CUTOFF 20

typedef struct metrics {
  uint64_t queries;
  uint64_t hit10, hit20;
  double rr10, rr20, dcg10, dcg20;
  uint32_t id_bound;      /* item ids below this are tracked */
  uint32_t catalog;       /* items that could be recommended */
  uint8_t *shown;         /* by item: in some top-20 list */
  uint8_t *popular;       /* by item: among the most popular */
  uint32_t nshown;
  uint64_t slots, popular_slots;
  uint64_t *lat_ns;       /* one per query timed */
  size_t nlat, lat_cap;
} metrics;

typedef struct metrics_report {
  uint64_t queries;
  double p10, mrr10, ndcg10;  /* fractions, not percent */
  double p20, mrr20, ndcg20;
  double coverage;            /* shown items / catalog */
  double popular_share;       /* listed popular items / listed items */
  double us_p50, us_p99;      /* per query, 0 when nothing was timed */
} metrics_report;

/* Start empty for item ids below id_bound and a catalog of `catalog`
** items.  Returns 0 or TAILOR_ENOMEM. */
int metrics_init(metrics *m, uint32_t id_bound, uint32_t catalog);
void metrics_free(metrics *m);

/* Mark the popular items (their ids; ids past id_bound are ignored). */
void metrics_set_popular(metrics *m, const uint32_t *ids, size_t n);

/* One query's rank of its target: 1 = first, 0 = not listed.  Accuracy
** only; metrics_add also does coverage and popularity. */
void metrics_add_rank(metrics *m, uint32_t rank);

/* One query's list (best first, n items, only the first METRICS_CUTOFF
** count) and its target: the rank, coverage and popularity. */
void metrics_add(metrics *m, const uint32_t *list, size_t n, uint32_t target);

/* One query's latency, in nanoseconds.  Returns 0 or TAILOR_ENOMEM. */
int metrics_add_latency(metrics *m, uint64_t ns);

/* The figures so far (sorts the latencies in place). */
void metrics_report_get(metrics *m, metrics_report *r);

/* The p-th percentile (0 < p <= 100, nearest rank) of n sorted values. */
uint64_t metrics_percentile(const uint64_t *sorted, size_t n, double p);

#endif /* TAILOR_METRICS_H */
