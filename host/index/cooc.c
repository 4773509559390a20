/*
** cooc.c: decayed co-occurrence lists with Space-Saving eviction, and the
** similarity top-k over them.
*/
#include "index/cooc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* A new neighbour list starts with room for this many: most items that
   co-occur at all gather a handful of neighbours quickly. */
#define COOC_FIRST_CAP 8

void cooc_params_default(cooc_params *p, cooc_measure measure) {
  p->measure = measure;
  p->shrink = COOC_DEFAULT_SHRINK;
  p->damping = COOC_DEFAULT_DAMPING;
  p->min_count = COOC_DEFAULT_MIN_COUNT;
  p->min_lift = 0;
  p->min_both = 0;
  p->orders = 0;
}

void cooc_init(cooc *c, uint16_t max_neighbors, double half_life_days) {
  memset(c, 0, sizeof *c);
  c->max_neighbors = max_neighbors ? max_neighbors : COOC_DEFAULT_MAX_NEIGHBORS;
  c->d.half_life_ms = half_life_days > 0 ? half_life_days * 86400e3 : 0;
}

void cooc_free(cooc *c) {
  for (uint32_t i = 0; i < c->nitems; i++) {
    free(c->lists[i].id);
  }
  free(c->lists);
  free(c->total);
  memset(c, 0, sizeof *c);
}

static int ensure_item(cooc *c, uint32_t item) {
  if (item < c->nitems) return 0;
  uint32_t n = c->nitems ? c->nitems : 1024;
  while (n <= item) n *= 2;
  cooc_list *lists = realloc(c->lists, n * sizeof *lists);
  if (!lists) return -1;
  c->lists = lists;
  double *total = realloc(c->total, n * sizeof *total);
  if (!total) return -1;
  c->total = total;
  memset(c->lists + c->nitems, 0, (n - c->nitems) * sizeof *lists);
  memset(c->total + c->nitems, 0, (n - c->nitems) * sizeof *total);
  c->nitems = n;
  return 0;
}

/* Move the decay origin to `ts`, scaling every stored weight. */
static void rebase(cooc *c, int64_t ts) {
  double s = decay_scale(&c->d, ts);
  for (uint32_t i = 0; i < c->nitems; i++) {
    c->total[i] *= s;
    float *w = cooc_w(&c->lists[i]);
    for (uint16_t j = 0; j < c->lists[i].n; j++) w[j] *= (float)s;
  }
  c->sum *= s;
  c->d.t0 = ts;
}

double cooc_event_weight(cooc *c, int64_t ts) {
  if (decay_should_rebase(&c->d, ts)) rebase(c, ts);
  return decay_weight(&c->d, ts);
}

int cooc_add_item_w(cooc *c, uint32_t item, double w) {
  if (ensure_item(c, item)) return -1;
  c->total[item] += w;
  c->sum += w;
  return 0;
}

int cooc_add_item(cooc *c, uint32_t item, int64_t ts, double w) {
  return cooc_add_item_w(c, item, w * cooc_event_weight(c, ts));
}

/* The place of neighbour b in l, or -1. */
static int find(const cooc_list *l, uint32_t b) {
  uint16_t i = 0;
#ifdef __SSE2__
  /* ids are unique in a list: the first equal lane is the one */
  __m128i key = _mm_set1_epi32((int)b);
  for (; i + 4 <= l->n; i += 4) {
    __m128i v = _mm_loadu_si128((const __m128i *)(l->id + i));
    int m = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(v, key)));
    if (m) return i + __builtin_ctz((unsigned)m);
  }
#endif
  for (; i < l->n; i++)
    if (l->id[i] == b) return i;
  return -1;
}

/* Room for `cap` neighbours: ids and weights move to a new block. */
static int resize(cooc_list *l, uint16_t cap) {
  uint32_t *id = malloc(COOC_LIST_BYTES(cap));
  if (!id) return -1;
  if (l->n) {
    memcpy(id, l->id, l->n * sizeof *id);
    memcpy(id + cap, cooc_w(l), l->n * sizeof(float));
  }
  free(l->id);
  l->id = id;
  l->cap = cap;
  return 0;
}

/* The first of the lightest of n > 0 weights: with SSE2, the least weight
   four lanes at a time, then the first lane that holds it. */
static uint16_t weakest(const float *w, uint16_t n) {
  uint16_t i = 0;
  float least = w[0];
#ifdef __SSE2__
  if (n >= 8) {
    __m128 m = _mm_loadu_ps(w);
    for (i = 4; i + 4 <= n; i += 4) m = _mm_min_ps(m, _mm_loadu_ps(w + i));
    m = _mm_min_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
    m = _mm_min_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
    least = _mm_cvtss_f32(m);
    for (; i < n; i++)
      if (w[i] < least) least = w[i];
    __m128 key = _mm_set1_ps(least);
    for (i = 0; i + 4 <= n; i += 4) {
      int hit = _mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(w + i), key));
      if (hit) return (uint16_t)(i + __builtin_ctz((unsigned)hit));
    }
    for (; i < n; i++)
      if (w[i] == least) return i;
    return 0;
  }
#endif
  uint16_t min = 0;
  for (i = 1; i < n; i++)
    if (w[i] < w[min]) min = i;
  return min;
}

/* Add `w` to neighbour b of a's list.  A full list (a popular item's,
   most of the bumps) gives the weakest entry's place to b, with its weight
   plus w (space-saving: no weight is lost); among equal weights, the
   first. */
static int bump(cooc *c, uint32_t a, uint32_t b, float w) {
  cooc_list *l = &c->lists[a];
  int at = find(l, b);
  if (at >= 0) {
    cooc_w(l)[at] += w;
    return 0;
  }
  if (l->n >= c->max_neighbors) {
    uint16_t min = weakest(cooc_w(l), l->n);
    l->id[min] = b;
    cooc_w(l)[min] += w;
    return 0;
  }
  if (l->n == l->cap) { /* doubled in 32 bits: 2 x 32768 does not fit a uint16 */
    uint32_t cap = l->cap ? 2u * l->cap : COOC_FIRST_CAP;
    if (cap > c->max_neighbors) cap = c->max_neighbors;
    if (cap <= l->n || resize(l, (uint16_t)cap)) return -1;
  }
  l->id[l->n] = b;
  cooc_w(l)[l->n++] = w;
  c->pairs++;
  return 0;
}

int cooc_add_pair_w(cooc *c, uint32_t a, uint32_t b, double w) {
  if (a == b) return 0;
  if (ensure_item(c, a > b ? a : b)) return -1;
  return bump(c, a, b, (float)w) || bump(c, b, a, (float)w) ? -1 : 0;
}

int cooc_add_pair(cooc *c, uint32_t a, uint32_t b, int64_t ts, double w) {
  return cooc_add_pair_w(c, a, b, w * cooc_event_weight(c, ts));
}

double cooc_count(const cooc *c, uint32_t a, uint32_t b, int64_t now) {
  if (a >= c->nitems) return 0;
  int at = find(&c->lists[a], b);
  return at >= 0 ? cooc_w(&c->lists[a])[at] * decay_scale(&c->d, now) : 0;
}

double cooc_total(const cooc *c, uint32_t item, int64_t now) {
  return item < c->nitems ? c->total[item] * decay_scale(&c->d, now) : 0;
}

/* The complement thresholds (min_lift, min_both): lift against chance, or
   a large share of the sales of both items. */
static int enough_evidence(const cooc_params *p, double c_ij, double n_i, double n_j) {
  if (p->min_lift <= 0) return 1;
  if (n_i <= 0 || n_j <= 0) return 0;
  if (c_ij * p->orders / (n_i * n_j) >= p->min_lift) return 1;
  return p->min_both > 0 && c_ij >= p->min_both * (n_i > n_j ? n_i : n_j);
}

/* Scores work on counts in "events at now" units, so shrinkage and
   thresholds mean the same thing whatever the decay origin. */
static double score_scaled(const cooc_params *p, double c_ij, double n_i,
                           double n_j) {
  if (c_ij <= p->min_count || c_ij <= 0) return 0;
  if (!enough_evidence(p, c_ij, n_i, n_j)) return 0;
  switch (p->measure) {
    case COOC_COSINE:
      return n_i > 0 && n_j > 0 ? c_ij / sqrt(n_i * n_j) : 0;
    case COOC_JACCARD: {
      double u = n_i + n_j - c_ij;
      return u > 0 ? c_ij / u : 0;
    }
    case COOC_COUNT:
      return c_ij;
    default:
      return c_ij / (n_i + p->shrink) / pow(n_j > 1 ? n_j : 1, p->damping);
  }
}

double cooc_score(const cooc *c, const cooc_params *p, uint32_t i, uint32_t j,
                  double c_ij, int64_t now) {
  return score_scaled(p, c_ij, cooc_total(c, i, now), cooc_total(c, j, now));
}

/* Accumulating candidates over several anchors. */
typedef struct cand {
  uint32_t id;     /* UINT32_MAX: empty */
  uint32_t anchor; /* the anchor with the largest contribution */
  double score, best;
} cand;

#define CAND_STACK 1024

size_t cooc_top_k(const cooc *c, const cooc_params *p, const uint32_t *anchors,
                  size_t nanchors, cooc_keep_fn keep, void *ud, int64_t now,
                  size_t k, topk_entry *out) {
  topk h;
  topk_init(&h, out, k);
  if (nanchors > COOC_MAX_ANCHORS) nanchors = COOC_MAX_ANCHORS;
  double s = decay_scale(&c->d, now);
  size_t total = 0;
  for (size_t a = 0; a < nanchors; a++)
    if (anchors[a] < c->nitems) total += c->lists[anchors[a]].n;
  if (total == 0) return 0;

  /* One anchor: its list has each candidate once, so straight to the heap. */
  if (nanchors == 1) {
    const cooc_list *l = &c->lists[anchors[0]];
    const float *lw = cooc_w(l);
    double n_i = c->total[anchors[0]] * s;
    for (uint16_t e = 0; e < l->n; e++) {
      uint32_t j = l->id[e];
      double sc = score_scaled(p, lw[e] * s, n_i, c->total[j] * s);
      if (sc <= 0 || sc < topk_floor(&h) || (keep && !keep(ud, j))) continue;
      topk_push(&h, j, anchors[0], sc);
    }
    return topk_sorted(&h);
  }

  /* An open-addressing table of candidates, at most half full. */
  size_t size = 16;
  while (size < total * 2) size *= 2;
  cand stack[CAND_STACK];
  cand *t = size <= CAND_STACK ? stack : malloc(size * sizeof *t);
  if (!t) return 0;
  for (size_t i = 0; i < size; i++) t[i].id = UINT32_MAX;

  for (size_t a = 0; a < nanchors; a++) {
    uint32_t i = anchors[a];
    if (i >= c->nitems) continue;
    const cooc_list *l = &c->lists[i];
    const float *lw = cooc_w(l);
    double n_i = c->total[i] * s;
    for (uint16_t e = 0; e < l->n; e++) {
      uint32_t j = l->id[e];
      double sc = score_scaled(p, lw[e] * s, n_i, c->total[j] * s);
      if (sc <= 0) continue;
      size_t slot = (j * 2654435761u) & (size - 1);
      while (t[slot].id != UINT32_MAX && t[slot].id != j)
        slot = (slot + 1) & (size - 1);
      if (t[slot].id == UINT32_MAX) {
        t[slot] = (cand){j, i, 0, 0};
      }
      t[slot].score += sc;
      if (sc > t[slot].best || (sc == t[slot].best && i < t[slot].anchor)) {
        t[slot].best = sc;
        t[slot].anchor = i;
      }
    }
  }
  for (size_t e = 0; e < size; e++) {
    if (t[e].id == UINT32_MAX || t[e].score < topk_floor(&h)) continue;
    int is_anchor = 0;
    for (size_t a = 0; a < nanchors && !is_anchor; a++)
      is_anchor = anchors[a] == t[e].id;
    if (is_anchor || (keep && !keep(ud, t[e].id))) continue;
    topk_push(&h, t[e].id, t[e].anchor, t[e].score);
  }
  if (t != stack) free(t);
  return topk_sorted(&h);
}

size_t cooc_bytes(const cooc *c) {
  size_t b = c->nitems * (sizeof *c->lists + sizeof *c->total);
  for (uint32_t i = 0; i < c->nitems; i++)
    b += COOC_LIST_BYTES(c->lists[i].cap);
  return b;
}
