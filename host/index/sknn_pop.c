/*
** sknn_pop.c: the popularity kernels (pop, spop) and the popularity fill
** of short lists, read from the index's list of the most viewed items.
*/
#include "index/sknn_internal.h"

/* S-POP: count in the prefix, ties by global popularity. */
void sknn_score_spop(const query *q) {
  const sknn_index *x = q->x;
  sknn_work *w = q->w;
  double top = x->ntop ? (double)x->item[x->top[0]].views : 0;
  for (uint32_t i = 0; i < w->npitems; i++) {
    uint32_t e = w->pitems[i];
    add_score(w, e, w->pi[e].pcnt + (double)x->item[e].views / (1 + top), e);
  }
}

static int listed(const sknn_work *w, uint32_t e) {
  const cand *c = cand_find(w, e);
  return c && c->score > 0;
}

/* Rows k0.. filled with the most viewed items not already listed, in
** order, no anchor, score 0 (or their views for pop).  Returns the new row
** count. */
size_t sknn_fill_popular(const query *q, topk_entry *out, size_t k0,
                         size_t k, int pop_scores) {
  const sknn_index *x = q->x;
  const sknn_work *w = q->w;
  size_t n = k0;
  for (uint32_t i = 0; i < x->ntop && n < k; i++) {
    uint32_t e = x->top[i];
    if (listed(w, e)) continue;
    out[n].id = e;
    out[n].aux = SKNN_NONE;
    out[n].score = pop_scores ? (double)x->item[e].views : 0;
    n++;
  }
  if (n < k && x->ntop == POP_KEEP) {
    /* Past the kept list: rank every other viewed item by views. */
    topk h;
    topk_init(&h, out + n, k - n);
    for (uint32_t e = 0; e < x->nitems; e++) {
      if (x->item[e].views == 0 || x->item[e].top != SKNN_NONE) continue;
      if (listed(w, e)) continue;
      topk_push(&h, e, SKNN_NONE, (double)x->item[e].views);
    }
    size_t m = topk_sorted(&h);
    for (size_t i = 0; i < m; i++)
      if (!pop_scores) out[n + i].score = 0;
    n += m;
  }
  return n;
}
