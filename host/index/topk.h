/*
** topk.h: keep the k best (id, score) pairs of a stream with a min-heap, in
** O(n log k).  Ties break on the smaller id so results are deterministic.
*/
#ifndef TAILOR_TOPK_H
#define TAILOR_TOPK_H

#include <stddef.h>
#include <stdint.h>

typedef struct topk_entry {
  uint32_t id;
  uint32_t aux;  /* caller's data carried along (an anchor item, a reason) */
  double score;
} topk_entry;

typedef struct topk {
  topk_entry *e;  /* caller-provided storage for k entries */
  size_t n, k;
} topk;

static inline void topk_init(topk *h, topk_entry *storage, size_t k) {
  h->e = storage;
  h->n = 0;
  h->k = k;
}

/* Whether a beats b: higher score, then smaller id. */
static inline int topk_better(const topk_entry *a, const topk_entry *b) {
  return a->score > b->score || (a->score == b->score && a->id < b->id);
}

static inline void topk_sift_down(topk *h, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && topk_better(&h->e[m], &h->e[l])) m = l;
    if (r < h->n && topk_better(&h->e[m], &h->e[r])) m = r;
    if (m == i) return;
    topk_entry t = h->e[i];
    h->e[i] = h->e[m];
    h->e[m] = t;
    i = m;
  }
}

/* Offer a candidate; kept when among the k best so far. */
static inline void topk_push(topk *h, uint32_t id, uint32_t aux, double score) {
  topk_entry c = {id, aux, score};
  if (h->k == 0) return;
  if (h->n < h->k) {
    size_t i = h->n++;
    h->e[i] = c;
    while (i > 0) { /* sift up: the root is the worst kept */
      size_t p = (i - 1) / 2;
      if (!topk_better(&h->e[p], &h->e[i])) break;
      topk_entry t = h->e[i];
      h->e[i] = h->e[p];
      h->e[p] = t;
      i = p;
    }
  } else if (topk_better(&c, &h->e[0])) {
    h->e[0] = c;
    topk_sift_down(h, 0);
  }
}

/* The lowest score that still gets in, or -inf-like when not full. */
static inline double topk_floor(const topk *h) {
  return h->n < h->k ? -1e300 : h->e[0].score;
}

/* Sort the kept entries best first, in place; returns their count. */
static inline size_t topk_sorted(topk *h) {
  size_t n = h->n;
  while (h->n > 1) { /* heap sort: move the worst to the end */
    topk_entry t = h->e[0];
    h->e[0] = h->e[h->n - 1];
    h->e[h->n - 1] = t;
    h->n--;
    topk_sift_down(h, 0);
  }
  h->n = n;
  return n;
}

#endif /* TAILOR_TOPK_H */
