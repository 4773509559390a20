/*
** sknn_work.c: a querying thread's scratch space (sknn_work): the
** candidate and neighbour tables, cleared by stamps, grown on demand, and
** the per-item prefix arrays sized to the index.  The structure and the
** hot lookups are in sknn_internal.h.
*/
#include "index/sknn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tailor.h"

sknn_work *sknn_work_new(void) { return calloc(1, sizeof(sknn_work)); }

void sknn_work_free(sknn_work *w) {
  if (!w) return;
  free(w->tab);
  free(w->touched);
  free(w->ltouched);
  free(w->pbits);
  free(w->pi);
  free(w->pitems);
  free(w->st);
  free(w->stouched);
  free(w->ref_w);
  free(w->pos_w);
  free(w->nbr);
  free(w);
}

#define GROW_(ptr, n)                                                   \
  do {                                                                  \
    void *t_ = realloc((ptr), (size_t)(n) * sizeof *(ptr));             \
    if (!t_) return TAILOR_ENOMEM;                                      \
    (ptr) = t_;                                                         \
  } while (0)

/* A candidate table of 2^bits slots, with lists for half as many. */
static int table_alloc(sknn_work *w, uint32_t bits) {
  uint32_t cap = 1u << bits;
  cand *t = calloc(cap, sizeof *t);
  uint32_t *a = malloc((size_t)(cap / 2 + 1) * sizeof *a);
  uint32_t *b = malloc((size_t)(cap / 2 + 1) * sizeof *b);
  if (!t || !a || !b) {
    free(t);
    free(a);
    free(b);
    return TAILOR_ENOMEM;
  }
  if (w->tab) memcpy(b, w->ltouched, (size_t)w->nltouched * sizeof *b);
  free(w->touched);
  free(w->ltouched);
  w->touched = a;
  w->ltouched = b;
  cand *old = w->tab;
  uint32_t ocap = w->tcap;
  w->tab = t;
  w->tcap = cap;
  w->tbits = bits;
  uint32_t n = 0;
  for (uint32_t i = 0; i < ocap; i++) { /* rehash this query's entries */
    if (old[i].stamp != w->stamp || !w->stamp) continue;
    uint32_t j = (old[i].item * 0x9e3779b1u) >> (32 - bits);
    while (t[j].stamp == w->stamp) j = (j + 1) & (cap - 1);
    t[j] = old[i];
    a[n++] = j;
  }
  w->ntouched = n;
  free(old);
  return 0;
}

/* A neighbour table of 2^bits slots; this query's entries move over. */
int sknn_work_grow_neighbours(sknn_work *w, uint32_t bits) {
  uint32_t cap = 1u << bits;
  wsess *t = calloc(cap, sizeof *t);
  uint32_t *a = malloc((size_t)(cap / 2 + 1) * sizeof *a);
  if (!t || !a) {
    free(t);
    free(a);
    return TAILOR_ENOMEM;
  }
  uint32_t n = 0;
  for (uint32_t i = 0; w->stamp && i < w->stcap; i++) {
    if (w->st[i].stamp != w->stamp) continue;
    uint32_t j = (w->st[i].seq * 0x9e3779b1u) >> (32 - bits);
    while (t[j].stamp == w->stamp) j = (j + 1) & (cap - 1);
    t[j] = w->st[i];
    a[n++] = j;
  }
  w->nst = n;
  free(w->st);
  free(w->stouched);
  w->st = t;
  w->stouched = a;
  w->stcap = cap;
  w->stbits = bits;
  return 0;
}

/* Size the arrays to the index; new entries start invalid. */
int sknn_work_fit(sknn_work *w, const sknn_index *x, uint32_t k) {
  if (!w->tab) {
    for (uint32_t i = 1; i < INV_SQRT_TABLE; i++) w->isq[i] = 1 / sqrt(i);
    for (uint32_t i = 1; i < LOG_TABLE; i++) w->logt[i] = log((double)i);
    uint32_t bits = 0;
    while ((1u << bits) < WORK_MIN_SLOTS) bits++;
    int rc = table_alloc(w, bits);
    if (rc) return rc;
  }
  if (w->nitem < x->nitems) {
    uint32_t n = x->nitems + x->nitems / 4 + 64, o = w->nitem;
    uint32_t ow = (o + 63) / 64, nw = (n + 63) / 64;
    GROW_(w->pbits, nw);
    memset(w->pbits + ow, 0, (size_t)(nw - ow) * sizeof *w->pbits);
    GROW_(w->pi, n);
    w->nitem = n;
  }
  if (!w->st) {
    uint32_t bits = 0;
    while ((1u << bits) < WORK_MIN_SLOTS) bits++;
    int rc = sknn_work_grow_neighbours(w, bits);
    if (rc) return rc;
  }
  if (w->len_cap < x->cfg.max_len) {
    GROW_(w->ref_w, x->cfg.max_len);
    GROW_(w->pos_w, x->cfg.max_len);
    w->len_cap = x->cfg.max_len;
  }
  if (w->nbr_cap < k) {
    GROW_(w->nbr, k);
    w->nbr_cap = k;
  }
  return 0;
}

/* Start a query: a fresh stamp (on wrap every stamp is cleared) and the
** last query's prefix bits cleared. */
void sknn_work_begin(sknn_work *w) {
  if (++w->stamp == 0) {
    for (uint32_t i = 0; i < w->tcap; i++) w->tab[i].stamp = 0;
    for (uint32_t i = 0; i < w->stcap; i++) w->st[i].stamp = 0;
    w->stamp = 1;
  }
  for (uint32_t i = 0; i < w->npitems; i++)
    w->pbits[w->pitems[i] / 64] &= ~(1ull << (w->pitems[i] % 64));
  w->ntouched = 0;
  w->nltouched = 0;
  w->nst = 0;
  w->npitems = 0;
  w->oom = 0;
}

/* Make room in a full table, then look again (the slow path). */
cand *sknn_cand_grow(sknn_work *w, uint32_t e) {
  if (w->oom || table_alloc(w, w->tbits + 1)) {
    w->oom = 1;
    return &w->sink;
  }
  return cand_get(w, e);
}
