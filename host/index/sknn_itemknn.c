/*
** sknn_itemknn.c: the item-to-item kernel (itemknn), GRU4Rec's Item-KNN
** baseline on the sessions the index remembers.
*/
#include "index/sknn_internal.h"

#include <math.h>

/*
** Item-KNN (GRU4Rec's baseline): for the last known prefix item i, every
** item j co-viewed with it in i's remembered sessions, scored
**   co(i,j) / ((views_i + shrink)^alpha * (views_j + shrink)^(1-alpha))
** where co counts pairs of views (i's views times j's in a session).  The
** item itself is left out, as in the original.
*/
void sknn_score_itemknn(const query *q) {
  const sknn_index *x = q->x;
  const sknn_params *p = q->p;
  sknn_work *w = q->w;
  if (!w->npitems) return;
  uint32_t src = w->pitems[0]; /* the latest known item */
  const item *it = &x->item[src];
  uint32_t m = it->n < p->sample ? it->n : p->sample;
  /* The sessions are scattered over the ring: ask for them a few ahead
  ** (as the neighbour kernels do), not one cache miss at a time. */
  for (uint32_t r = 0; r < m && r < PREFETCH_AHEAD; r++)
    __builtin_prefetch(&x->ring[slot_of(x, post_recent(it, r))]);
  for (uint32_t r = 0; r < m; r++) {
    if (r + PREFETCH_AHEAD < m)
      __builtin_prefetch(&x->ring[slot_of(x, post_recent(it, r + PREFETCH_AHEAD))]);
    const sess *s = sess_get(x, post_recent(it, r));
    if (!s) continue;
    const uint32_t *items = sess_items(s);
    uint32_t ci = 0;
    for (uint32_t i = 0; i < s->n; i++) ci += items[i] == src;
    for (uint32_t i = 0; i < s->n; i++)
      if (items[i] != src) add_score(w, items[i], ci, src);
  }
  double ni = pow((double)it->views + p->shrink, p->alpha);
  /* alpha = 0.5 (GRU4Rec's, the re-ranker's) is a square root: a pow per
  ** touched item was a tenth of the re-ranked query's time. */
  int half = p->alpha == 0.5;
  for (uint32_t i = 0; i < w->ntouched; i++) {
    cand *c = &w->tab[w->touched[i]];
    double vj = (double)x->item[c->item].views + p->shrink;
    double norm = ni * (half ? sqrt(vj) : pow(vj, 1 - p->alpha));
    c->score = norm > 0 ? c->score / norm : 0;
  }
}
