/*
** sknn_knn.c: the neighbour-session kernels: sknn, vsknn and stan, and the
** neighbour part of tailor.  A query finds the sessions that share items
** with its prefix, keeps the k most similar, and scores their items.
*/
#include "index/sknn_internal.h"

#include <math.h>

/* The weight of prefix item e in the similarity, per kernel. */
static double prefix_weight(const query *q, uint32_t e) {
  uint32_t pos = q->w->pi[e].ppos;
  switch (q->p->kernel) {
  case SKNN_VSKNN: /* linear: the last item 1, the first 1/len */
    return (double)pos / q->len;
  case SKNN_STAN:
  case SKNN_TAILOR:
    return decay(q->len - pos, q->p->lambda1);
  default:
    return 1.0;
  }
}

/*
** Neighbours: the sessions that share an item with the prefix, among the
** `sample` most recent sessions of each of the `window` latest distinct
** prefix items.  Each candidate's overlap is summed while walking those
** lists (one visit per shared item, so no session is read item by item):
**   sknn          |P n N| / sqrt(|P| |N|)
**   vsknn         sum_{i in P n N} pos(i)/len / |P|
**   stan, tailor  sum_{i in P n N} exp(-(len-pos(i))/l1) / sqrt(|P| |N|)
**                 * exp(-(latest - time(N))/l2)
** An item outside the window (or a session outside an item's sample) adds
** nothing to the overlap: with the position decays the window is chosen
** for, those weights are negligible.  The k best go to w->nbr, each with
** the prefix position of its latest shared item in aux (ties: the newer
** session first).
*/
uint32_t sknn_find_neighbours(const query *q) {
  const sknn_index *x = q->x;
  const sknn_params *p = q->p;
  sknn_work *w = q->w;
  uint32_t nwin = p->window && p->window < w->npitems ? p->window
                                                      : w->npitems;
  for (uint32_t a = 0; a < w->npitems; a++)
    w->pi[w->pitems[a]].pw = prefix_weight(q, w->pitems[a]);
  for (uint32_t a = 0; a < nwin; a++) {
    uint32_t e = w->pitems[a], pos = w->pi[e].ppos;
    const item *it = &x->item[e];
    double wt = w->pi[e].pw;
    uint32_t m = it->n < p->sample ? it->n : p->sample;
    for (uint32_t r = 0; r < m; r++) {
      uint32_t seq = post_recent(it, r);
      if (!seq_live(x, seq) || seq + 1 == p->held_out) continue;
      if (p->self != SKNN_NONE) {
        const sess *s = sess_get(x, seq);
        if (s->key != SKNN_NONE && s->key == p->self) continue;
      }
      int fresh;
      wsess *c = wsess_get(w, seq, &fresh);
      if (!c) {
        w->oom = 1;
        return 0;
      }
      if (fresh) {
        c->acc = 0;
        c->match = pos;
      }
      c->acc += wt;
      if (pos > c->match) c->match = pos;
    }
  }
  topk h;
  topk_init(&h, w->nbr, p->k);
  double plen = (double)w->npitems, inv_sqrt_plen = 1 / sqrt(plen);
  int timed = (p->kernel == SKNN_STAN || p->kernel == SKNN_TAILOR) &&
              p->lambda2 > 0;
  for (uint32_t i = 0; i < w->nst; i++) {
    if (i + PREFETCH_AHEAD < w->nst) {
      uint32_t ps = slot_of(x, w->st[w->stouched[i + PREFETCH_AHEAD]].seq);
      __builtin_prefetch(&x->sdist[ps]);
      if (timed) __builtin_prefetch(&x->stime[ps]);
    }
    const wsess *c = &w->st[w->stouched[i]];
    uint32_t slot = slot_of(x, c->seq);
    double sim = p->kernel == SKNN_VSKNN
                     ? c->acc / plen
                     : c->acc * inv_sqrt_plen * inv_sqrt(w, x->sdist[slot]);
    /* The recency decay is at most 1: skip its exp (and the read of the
    ** session's time) when even the undecayed similarity cannot enter. */
    if (sim <= 0 || sim < topk_floor(&h)) continue;
    if (timed) {
      sim *= exp(-(double)(x->latest - x->stime[slot]) / p->lambda2);
      if (sim < topk_floor(&h)) continue;
    }
    topk_push(&h, ~c->seq, c->match, sim);
  }
  /* Heap order, not sorted: scoring does not need the order, only a fixed
  ** one. */
  return (uint32_t)h.n;
}

/*
** Score the neighbours' items into the main score:
**   sknn    sim
**   vsknn   sim / step * (1 + idf * log(N/df)), step = how far back in the
**           prefix the latest shared item is (1 = the last item)
**   stan    sim * exp(-|d| / l3), d = distance inside the neighbour from
**           the latest shared item (its last occurrence) to the item (its
**           nearest occurrence)
**   tailor  as stan, items before the shared item weighted by `before`;
**           with multi, every shared item is a reference point, scaled by
**           its position weight relative to the latest one, and the item
**           takes its best; then (1 + idf * log(N/df))
** The anchor of a contribution is the latest shared item.
*/
void sknn_score_neighbours(const query *q, uint32_t nn) {
  const sknn_index *x = q->x;
  const sknn_params *p = q->p;
  sknn_work *w = q->w;
  int is_tailor = p->kernel == SKNN_TAILOR;
  int seq_aware = p->kernel == SKNN_STAN || is_tailor;
  int multi = is_tailor && p->multi;
  double idf = p->kernel == SKNN_VSKNN || is_tailor ? p->idf : 0;
  double before = is_tailor ? p->before : 1;
  w->step = decay(1, p->lambda3);
  w->logn = x->sessions ? log((double)x->sessions) : 0;
  /* The neighbours are known now: ask for their records a few ahead, so
  ** the memory system fetches them while earlier ones are scored instead
  ** of one miss at a time (most of a query's time went to waiting). */
  for (uint32_t r = 0; r < nn && r < PREFETCH_AHEAD; r++)
    __builtin_prefetch(&x->ring[slot_of(x, ~w->nbr[r].id)]);
  for (uint32_t r = 0; r < nn; r++) {
    if (r + PREFETCH_AHEAD < nn)
      __builtin_prefetch(&x->ring[slot_of(x, ~w->nbr[r + PREFETCH_AHEAD].id)]);
    if (r + 2 < nn) { /* its record was asked for a while ago */
      const sess *nx = &x->ring[slot_of(x, ~w->nbr[r + 2].id)];
      if (nx->cap) __builtin_prefetch(nx->u.heap);
    }
    const sess *s = sess_get(x, ~w->nbr[r].id);
    const uint32_t *items = sess_items(s);
    double sim = w->nbr[r].score;
    uint32_t mpos = w->nbr[r].aux, m = q->prefix[mpos - 1];
    if (p->kernel == SKNN_VSKNN) sim /= (double)(q->len - mpos + 1);
    /* Each position's weight; an item takes its best occurrence. */
    double *pw = w->pos_w;
    if (seq_aware) {
      /* The reference points (the shared items) and their weights. */
      /* max over references of ref * exp(-|i - a| / l3), times `before`
      ** for references after i: since exp(-(d+1)/l) = exp(-d/l) r, one
      ** sweep each way does it in O(n). */
      double *ref = w->ref_w, wm = w->pi[m].pw, f = 0, b = 0;
      uint32_t last = 0;
      for (uint32_t i = 0; i < s->n; i++) {
        uint32_t e = items[i];
        double v = 0;
        if (e == m) {
          v = 1;
          last = i;
        } else if (multi && in_prefix(w, e)) {
          v = w->pi[e].pw / wm;
        }
        ref[i] = v;
        f *= w->step;
        if (v > f) f = v;
        pw[i] = f;
      }
      if (!multi) { /* STAN: only the last occurrence of the match */
        f = 0;
        for (uint32_t i = 0; i < s->n; i++) {
          if (i < last) ref[i] = 0;
          f = i == last ? 1 : f * w->step;
          pw[i] = f;
        }
      }
      for (uint32_t i = s->n; i-- > 0;) {
        if (before * b > pw[i]) pw[i] = before * b;
        if (ref[i] > b) b = ref[i];
        b *= w->step;
      }
    } else {
      for (uint32_t i = 0; i < s->n; i++) pw[i] = 1;
    }
    if (s->distinct == s->n) {
      /* No repeats (most sessions): each position is its item. */
      for (uint32_t i = 0; i < s->n; i++) {
        double v = sim * pw[i];
        if (idf > 0) v *= 1 + idf * idf_of(x, w, items[i]);
        if (v > 0) add_neighbour_score(w, items[i], v, m);
      }
      continue;
    }
    if (s->n <= REP_BITS) {
      /* Repeats flagged: an item is credited at its first occurrence with
      ** the best weight among its flagged later ones. */
      uint64_t rep = x->srep[slot_of(x, s->seq)];
      for (uint32_t i = 0; i < s->n; i++) {
        if (rep >> i & 1) continue;
        uint32_t e = items[i];
        double wt = pw[i];
        for (uint64_t later = i + 1 < 64 ? rep >> (i + 1) << (i + 1) : 0;
             later; later &= later - 1) {
          uint32_t j = (uint32_t)__builtin_ctzll(later);
          if (items[j] == e && pw[j] > wt) wt = pw[j];
        }
        double v = sim * wt;
        if (idf > 0) v *= 1 + idf * idf_of(x, w, e);
        if (v > 0) add_neighbour_score(w, e, v, m);
      }
      continue;
    }
    work_next_local(w);
    for (uint32_t i = 0; i < s->n; i++) {
      int first;
      cand *c = local_get(w, items[i], &first);
      if (first || pw[i] > c->lw) c->lw = (float)pw[i];
    }
    for (uint32_t i = 0; i < w->nltouched; i++) {
      uint32_t e = w->ltouched[i];
      double v = sim * cand_find(w, e)->lw;
      if (idf > 0) v *= 1 + idf * idf_of(x, w, e);
      if (v > 0) add_neighbour_score(w, e, v, m);
    }
  }
}
