/*
** sknn_query.c: sknn_query, the one entry of every session kernel: the
** prefix's distinct items in the workspace, the kernel asked for, and its
** k best candidates (padded with popular items when asked).
*/
#include "index/sknn_internal.h"

#include <stdlib.h>

#include "tailor.h"

int sknn_query(const sknn_index *x, const uint32_t *prefix, size_t n,
               const sknn_params *p, sknn_work *w, topk_entry *out,
               size_t k) {
  if (!x || !p || !w || (!prefix && n) || (!out && k)) return TAILOR_EINVAL;
  if ((unsigned)p->kernel >= SKNN_KERNEL_COUNT || p->k == 0 ||
      n > UINT32_MAX / 2 || k > INT32_MAX)
    return TAILOR_EINVAL;
  if (k == 0) return 0;
  int rc = sknn_work_fit(w, x, p->k);
  if (rc) return rc;
  sknn_work_begin(w);
  query q = {x, p, w, prefix, (uint32_t)n};

  /* The prefix: distinct known items, their last positions and counts. */
  for (uint32_t i = 0; i < q.len; i++) {
    uint32_t e = prefix[i];
    if (e >= x->nitems || x->item[e].views == 0) continue;
    if (!in_prefix(w, e)) {
      w->pbits[e / 64] |= 1ull << (e % 64);
      w->pi[e].pcnt = 0;
      if (w->npitems == w->pcap) {
        uint32_t ncap = w->pcap ? 2 * w->pcap : 64;
        uint32_t *t = realloc(w->pitems, (size_t)ncap * sizeof *t);
        if (!t) return TAILOR_ENOMEM;
        w->pitems = t;
        w->pcap = ncap;
      }
      w->pitems[w->npitems++] = e;
    }
    w->pi[e].ppos = i + 1;
    w->pi[e].pcnt++;
  }
  /* Latest first (insertion sort: prefixes are short and nearly sorted). */
  for (uint32_t i = 1; i < w->npitems; i++) {
    uint32_t e = w->pitems[i], j = i;
    for (; j > 0 && w->pi[w->pitems[j - 1]].ppos < w->pi[e].ppos; j--)
      w->pitems[j] = w->pitems[j - 1];
    w->pitems[j] = e;
  }

  switch (p->kernel) {
  case SKNN_POP:
    return (int)sknn_fill_popular(&q, out, 0, k, 1);
  case SKNN_SPOP:
    sknn_score_spop(&q);
    break;
  case SKNN_ITEMKNN:
    sknn_score_itemknn(&q);
    break;
  case SKNN_TAILOR:
    sknn_score_tailor(&q);
    break;
  default:
    sknn_score_neighbours(&q, sknn_find_neighbours(&q));
    break;
  }
  if (w->oom) return TAILOR_ENOMEM;

  topk h;
  topk_init(&h, out, k);
  for (uint32_t i = 0; i < w->ntouched; i++) {
    const cand *c = &w->tab[w->touched[i]];
    if (c->score > 0 && c->score >= topk_floor(&h))
      topk_push(&h, c->item, c->anchor, c->score);
  }
  size_t got = topk_sorted(&h);
  if (got < k && p->fill) got = sknn_fill_popular(&q, out, got, k, 0);
  return (int)got;
}

double sknn_work_score(const sknn_work *w, uint32_t e) {
  const cand *c = w->tab ? cand_find(w, e) : NULL;
  return c ? c->score : 0;
}
