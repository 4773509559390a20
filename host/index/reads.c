/*
** reads.c: what readers of content go on to (reads.h says what is counted).
*/
#include <stdio.h>
#include <stdlib.h>

#include "index/reads.h"

static void term_of(uint32_t item, char buf[16]) { snprintf(buf, 16, "%u", item); }

int reads_view(idx *x, uint32_t person, uint32_t session, uint32_t item, int64_t ts) {
  if (search_credit(x->reads, person, session, item, IDX_TREND_VIEW, ts)) return -1;
  if (item >= x->items.n || !x->item[item].content) return 0;
  char t[16];
  term_of(item, t);
  return search_note(x->reads, person, session, t, ts);
}

int reads_credit(idx *x, uint32_t person, uint32_t session, uint32_t item, double w,
                 int64_t ts) {
  return search_credit(x->reads, person, session, item, w, ts);
}

typedef struct kind_keep {
  const idx *x;
  uint32_t self;
  int want_content;
  int (*keep)(void *ud, uint32_t item);
  void *ud;
} kind_keep;

static int keep_kind(void *ud, uint32_t item) {
  kind_keep *k = ud;
  if (item == k->self || item >= k->x->items.n) return 0;
  if (!k->x->item[item].content != !k->want_content) return 0;
  return !k->keep || k->keep(k->ud, item);
}

size_t reads_after(const idx *x, uint32_t content, int want_content,
                   int (*keep)(void *ud, uint32_t item), void *ud, size_t k,
                   topk_entry *out) {
  char t[16];
  term_of(content, t);
  kind_keep kk = {x, content, want_content, keep, ud};
  size_t n = search_top_k(x->reads, t, keep_kind, &kk, k, out);
  for (size_t i = 0; i < n; i++) out[i].aux = content;
  return n;
}

size_t reads_before(const idx *x, uint32_t item, int (*keep)(void *ud, uint32_t item),
                    void *ud, size_t k, topk_entry *out) {
  const search_index *s = x->reads;
  topk h;
  topk_init(&h, out, k);
  for (uint32_t t = 0; t < s->terms.n && t < s->term_cap; t++) {
    uint32_t content = (uint32_t)strtoul(intern_name(&s->terms, t), NULL, 10);
    if (content == item || content >= x->items.n || x->item[content].deleted) continue;
    if (keep && !keep(ud, content)) continue;
    const search_term *st = &s->term[t];
    for (uint32_t i = 0; i < st->n; i++)
      if (st->hit[i].item == item) {
        topk_push(&h, content, item, st->hit[i].w);
        break;
      }
  }
  return topk_sorted(&h);
}
