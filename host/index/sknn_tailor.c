/*
** sknn_tailor.c: the "tailor" kernel, the one the shipped strategies use:
** stan-like neighbours (sknn_knn.c) damped by popularity, blended with
** item-to-item transitions and a boost for the prefix's own items.
*/
#include "index/sknn_internal.h"

#include <math.h>
#include <string.h>

/*
** Sequential transitions for tailor, into aux: for each of the latest
** trans_window distinct prefix items i (weight exp(-(len-pos)/trans_decay)),
** the share of the views that followed i (up to trans_gap ahead, weighted
** 1/gap, in its trans_sample most recent sessions) that went to each item:
** an estimate of P(next | i).
*/
static void score_transitions(const query *q) {
  const sknn_index *x = q->x;
  const sknn_params *p = q->p;
  sknn_work *w = q->w;
  uint32_t nwin = p->trans_window < w->npitems ? p->trans_window
                                               : w->npitems;
  for (uint32_t a = 0; a < nwin; a++) {
    uint32_t src = w->pitems[a];
    const item *it = &x->item[src];
    double ws = decay(q->len - w->pi[src].ppos, p->trans_decay);
    uint32_t m = it->n < p->trans_sample ? it->n : p->trans_sample;
    work_next_local(w);
    double total = 0;
    for (uint32_t r = 0; r < m; r++) {
      if (r + PREFETCH_AHEAD < m)
        __builtin_prefetch(
            &x->ring[slot_of(x, post_recent(it, r + PREFETCH_AHEAD))]);
      uint32_t seq = post_recent(it, r);
      const sess *s = seq + 1 != p->held_out ? sess_get(x, seq) : NULL;
      if (!s) continue;
      const uint32_t *items = sess_items(s);
      for (uint32_t i = 0; i < s->n; i++) {
        if (items[i] != src) continue;
        for (uint32_t g = 1; g <= p->trans_gap && i + g < s->n; g++) {
          int first;
          cand *c = local_get(w, items[i + g], &first);
          c->lw += 1.0f / (float)g;
          total += 1.0 / g;
        }
      }
    }
    if (total <= 0) continue;
    for (uint32_t i = 0; i < w->nltouched; i++) {
      uint32_t e = w->ltouched[i];
      cand *c = cand_find(w, e);
      if (a == 0) c->trans_last = (float)(c->lw / total);
      add_aux(w, e, ws * c->lw / total, src);
    }
  }
}

/* views^pop_exp of an item, from the workspace's table when it can. */
static double pop_factor(sknn_work *w, const sknn_index *x, double pop_exp, uint32_t e) {
  uint32_t v = x->views32[e];
  if (v >= POP_TABLE) return exp(pop_exp * log((double)v));
  if (w->popf_exp != pop_exp) {
    memset(w->popf, 0, sizeof w->popf);
    w->popf_exp = pop_exp;
  }
  if (w->popf[v] == 0) w->popf[v] = exp(pop_exp * log((double)v));
  return w->popf[v];
}

/*
** tailor = neighbours (stan-like, see sknn_score_neighbours), each item's
**          score times views^pop_exp, normalised to a best of 1
**        + trans * transitions, normalised to a best of 1
**        + repeat * sum over the item's prefix positions of
**          exp(-(len-pos)/repeat_decay)          (the repeat-aware boost)
*/
void sknn_score_tailor(const query *q) {
  const sknn_params *p = q->p;
  sknn_work *w = q->w;
  w->nneighbours = sknn_find_neighbours(q);
  sknn_score_neighbours(q, w->nneighbours);
  if (p->trans > 0) score_transitions(q);
  double mk = 0, mt = 0;
  for (uint32_t i = 0; i < w->ntouched; i++) {
    cand *c = &w->tab[w->touched[i]];
    if (p->pop_exp != 0 && c->score > 0)
      c->score *= pop_factor(w, q->x, p->pop_exp, c->item);
    if (c->score > mk) mk = c->score;
    if (c->aux > mt) mt = c->aux;
  }
  double fk = mk > 0 ? 1 / mk : 0, ft = mt > 0 ? p->trans / mt : 0;
  w->trans_scale = ft;
  w->nbr_scale = fk;
  for (uint32_t i = 0; i < w->ntouched; i++) {
    cand *c = &w->tab[w->touched[i]];
    c->score = c->score * fk + c->aux * ft;
    if (c->anchor == SKNN_NONE) c->anchor = c->anchor2;
  }
  if (p->repeat > 0) {
    for (uint32_t i = 0; i < q->len; i++) {
      uint32_t e = q->prefix[i];
      if (!in_prefix(w, e)) continue;
      cand *c = cand_get(w, e);
      c->score += p->repeat * decay(q->len - 1 - i, p->repeat_decay);
      if (c->anchor == SKNN_NONE) c->anchor = e;
    }
  }
}

/* The repeat boost of item e after prefix[0..n). */
static double repeat_boost(const sknn_params *p, const uint32_t *prefix,
                           size_t n, uint32_t e) {
  double b = 0;
  for (size_t i = 0; i < n; i++)
    if (prefix[i] == e) b += p->repeat * decay((double)(n - 1 - i), p->repeat_decay);
  return b;
}

void sknn_tailor_parts(sknn_work *w, const sknn_index *x, const sknn_params *p,
                       const uint32_t *prefix, size_t n, uint32_t e,
                       sknn_tailor_part *out) {
  memset(out, 0, sizeof *out);
  const cand *c = w->tab ? cand_find(w, e) : NULL;
  if (!c) return;
  out->transitions = c->aux * w->trans_scale;
  if (p->repeat > 0 && in_prefix(w, e)) out->repeat = repeat_boost(p, prefix, n, e);
  out->neighbours = c->score - out->transitions - out->repeat;
  if (out->neighbours < 0) out->neighbours = 0; /* rounding */
  out->support = c->support;
  if (c->support) {
    double pf = p->pop_exp != 0 ? pop_factor(w, x, p->pop_exp, e) : 1;
    out->best = c->best * pf * w->nbr_scale;
  }
  out->trans_last = c->trans_last;
}

uint32_t sknn_tailor_neighbours(const sknn_work *w) { return w->nneighbours; }
