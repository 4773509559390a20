/*
** cooc.h: co-occurrence counts between items, with exponential time decay
** and a fixed cap of neighbours per item, and the item-item similarities
** computed from them (cosine, Jaccard, "also bought").
**
** One cooc holds one relation: the index keeps one for co-views (items seen
** in the same session, within a window) and one for co-purchases (items of
** the same order, and of the same customer's orders).
**
** Memory is bounded: each item keeps at most `max_neighbors` neighbours.
** Eviction follows Space-Saving (Metwally et al. 2005): a new neighbour of a
** full list replaces the one with the smallest weight and inherits that
** weight plus its own increment.  Counts of the heavy neighbours, the ones
** that get recommended, stay exact while they are heavier than the evicted
** tail; the weights of recent arrivals may be overestimated by at most the
** minimum of the list.
**
** Not thread-safe: written under the engine's write lock, read under its
** read lock.
*/
#ifndef TAILOR_COOC_H
#define TAILOR_COOC_H

#include <stddef.h>
#include <stdint.h>

#include "index/decay.h"
#include "index/topk.h"

#define COOC_DEFAULT_MAX_NEIGHBORS 64
#define COOC_DEFAULT_HALF_LIFE_DAYS 60.0

/*
** An item's neighbours: `cap` ids, then `cap` decayed weights in the same
** block (cooc_w).  Ids apart from weights, a search for one neighbour reads
** half the memory and compares four ids at a time; weight i is neighbour
** id[i]'s.
*/
typedef struct cooc_list {
  uint32_t *id;
  uint16_t n, cap;
} cooc_list;

static inline float *cooc_w(const cooc_list *l) { return (float *)(l->id + l->cap); }

/* Bytes of a list's block with room for `cap` neighbours. */
#define COOC_LIST_BYTES(cap) ((size_t)(cap) * (sizeof(uint32_t) + sizeof(float)))

typedef struct cooc {
  cooc_list *lists; /* by item id */
  double *total;    /* decayed occurrences of each item in this relation */
  double sum;       /* of total[], kept as they grow (rebased with them) */
  uint32_t nitems;  /* items with room in lists/total */
  uint16_t max_neighbors;
  decay d;
  uint64_t pairs;   /* stored (item, neighbour) entries */
} cooc;

/* Similarity measures over the counts (see cooc_score). */
typedef enum cooc_measure {
  COOC_COSINE,  /* c_ij / sqrt(n_i n_j) */
  COOC_JACCARD, /* c_ij / (n_i + n_j - c_ij) */
  COOC_ALSO,    /* c_ij / (n_i + shrink) / n_j^damping: P(j | i), shrunk
                   towards 0 for rarely seen anchors and damped for items
                   that are everywhere anyway */
  COOC_COUNT,   /* c_ij itself: the plain "most often together" */
} cooc_measure;

typedef struct cooc_params {
  cooc_measure measure;
  double shrink;  /* COOC_ALSO: pseudo-count added to the anchor's total */
  double damping; /* COOC_ALSO: exponent on the candidate's popularity */
  double min_count; /* ignore pairs seen this often or less (decayed) */
  double min_lift;  /* > 0: ignore pairs whose lift, c_ij * orders / (n_i
                       n_j), is below it, unless c_ij reaches min_both of
                       the larger of n_i and n_j (idx_complement_params) */
  double min_both;
  double orders;    /* what the counts were counted over, for the lift */
} cooc_params;

#define COOC_DEFAULT_SHRINK 2.0
#define COOC_DEFAULT_DAMPING 0.3
#define COOC_DEFAULT_MIN_COUNT 0.0

/* A cooc with the given cap (0: default) and half-life in days (<= 0: no
   decay). */
void cooc_init(cooc *c, uint16_t max_neighbors, double half_life_days);
void cooc_free(cooc *c);

/* Count one occurrence of `item` at `ts` with weight `w`.  Returns 0, or -1
   when out of memory. */
int cooc_add_item(cooc *c, uint32_t item, int64_t ts, double w);

/* Count one co-occurrence of a and b (both directions).  Returns 0 or -1. */
int cooc_add_pair(cooc *c, uint32_t a, uint32_t b, int64_t ts, double w);

/* The same in steps, for callers that add several counts per event: the
   decayed weight of one event at `ts` (computed once per event; may rescale
   the stored counts), then adds already multiplied by it. */
double cooc_event_weight(cooc *c, int64_t ts);
int cooc_add_item_w(cooc *c, uint32_t item, double w);
int cooc_add_pair_w(cooc *c, uint32_t a, uint32_t b, double w);

/* A hint that pairs of `item` are about to be added: fetch its list's
   entries into the cache, so the first scan of them does not wait for each
   line in turn. */
static inline void cooc_prefetch(const cooc *c, uint32_t item) {
  if (item >= c->nitems) return;
  const cooc_list *l = &c->lists[item];
  for (uint32_t i = 0; i < l->n; i += 64 / sizeof *l->id) __builtin_prefetch(&l->id[i], 1);
}

/* The stored weight of the pair (a -> b) in units of events at `now`
   (0 when not stored), and the decayed total of an item. */
double cooc_count(const cooc *c, uint32_t a, uint32_t b, int64_t now);
double cooc_total(const cooc *c, uint32_t item, int64_t now);

/* The similarity of candidate j to anchor i, for counts read at `now`. */
double cooc_score(const cooc *c, const cooc_params *p, uint32_t i, uint32_t j,
                  double c_ij, int64_t now);

/* Initialise params with the defaults for `measure`. */
void cooc_params_default(cooc_params *p, cooc_measure measure);

/* Whether a candidate may be returned (filters: stock, price, category,
   exclusions); `ud` is the caller's. */
typedef int (*cooc_keep_fn)(void *ud, uint32_t item);

#define COOC_MAX_ANCHORS 64

/*
** The k items most similar to the anchors, best first.  With several anchors
** (a cart, a purchase history) a candidate's score is the sum over anchors;
** each result's `aux` is the anchor that contributed most (the "because").
** Anchors themselves are never returned.  `keep` (may be NULL) filters
** candidates inside the kernel, before the heap.  Anchors past
** COOC_MAX_ANCHORS are ignored.  Writes up to k entries to `out`; returns
** how many.  Safe for concurrent readers.
*/
size_t cooc_top_k(const cooc *c, const cooc_params *p, const uint32_t *anchors,
                  size_t nanchors, cooc_keep_fn keep, void *ud, int64_t now,
                  size_t k, topk_entry *out);

/* Bytes held by the relation. */
size_t cooc_bytes(const cooc *c);

#endif /* TAILOR_COOC_H */
