/*
** internal.h: what the index's own files share, and nothing outside
** host/index/ includes.  The public API is index.h; the files are
**   index.c   the structure: new/free, the configuration, interning of
**             items and people, the growable id arrays
**   apply.c   idx_apply: one event into the index
**   person.c  people: merge on login, attributes, figures, lifecycle,
**             audiences, watchers, erasure
**   affinity.c  a person's decayed interests in categories and brands
**   value.c   the customer-value model: collect, fit, predict
**   query.c   the reads strategies ask for: filters, availability and the
**             kernel entry points (related, trending, session next, ...)
** The kernels (cooc.c, trend.c, kmeans.c) and checkpoint.c have files of
** their own and need only index.h; content.c shares its anchor's scoring
** below with pairs.c (substitutes); the session kernels (sknn*.c) share
** sknn_internal.h.
**
** The id-array helpers below are static inline because the event path
** calls them for every line of every event; idx_ids_* in index.h are the
** same code for the rest of the engine.
*/
#ifndef TAILOR_INDEX_INTERNAL_H
#define TAILOR_INDEX_INTERNAL_H

#include <stdlib.h>
#include <string.h>

#include "index/index.h"

/* What a trend key is, decided once when the keys are configured:
   "category" counts at every level of the item's category, "a+b" joins
   two attributes, anything else is one attribute of the person. */
enum { IDX_KEY_SIMPLE, IDX_KEY_CATEGORY, IDX_KEY_JOINED };

/* Whether `id` is among the n ids of `v`. */
static inline int ids_has(const uint32_t *v, size_t n, uint32_t id) {
  for (size_t i = 0; i < n; i++)
    if (v[i] == id) return 1;
  return 0;
}

/* Whether `id` is among the n ids of `v`, sorted ascending. */
static inline int ids_sorted_has(const uint32_t *v, size_t n, uint32_t id) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && v[lo] == id;
}

/* Append: 0, or -1 when out of memory. */
static inline int ids_push(idx_ids *a, uint32_t id) {
  if (a->n == a->cap) {
    uint32_t cap = a->cap ? a->cap * 2 : 4;
    uint32_t *v = realloc(a->v, cap * sizeof *v);
    if (!v) return -1;
    a->v = v;
    a->cap = cap;
  }
  a->v[a->n++] = id;
  return 0;
}

/* Remove the first occurrence of `id`, keeping the order of the rest. */
static inline void ids_remove(idx_ids *a, uint32_t id) {
  for (uint32_t i = 0; i < a->n; i++) {
    if (a->v[i] == id) {
      memmove(a->v + i, a->v + i + 1, (a->n - i - 1) * sizeof *a->v);
      a->n--;
      return;
    }
  }
}

/* index.c: the item id of an external id, created (in stock, without
   category or brand) when new; INTERN_NONE when out of memory.  May move
   x->item. */
uint32_t idx_item_put(idx *x, const char *id);
uint32_t idx_item_put_key(idx *x, const intern_key *k); /* k: intern_key_of(id) */

/*
** index.c: people are keyed "c:<customer id>" or "a:<anonymous id>" in one
** intern table.  idx_person_key writes that key (cut to the buffer, which
** 300 bytes always holds); idx_person_lookup gives the canonical person of
** an id or INTERN_NONE; idx_person_put creates the person when new and
** returns its canonical id, or INTERN_NONE when out of memory.
** idx_person_key_of writes the key into buf and measures and hashes it
** (see intern_key), for idx_person_put_key.
*/
void idx_person_key(char *buf, size_t size, char kind, const char *id);
intern_key idx_person_key_of(char *buf, size_t size, char kind, const char *id);
uint32_t idx_person_lookup(const idx *x, char kind, const char *id);
uint32_t idx_person_put(idx *x, char kind, const char *id);
uint32_t idx_person_put_key(idx *x, char kind, const intern_key *k);

/* person.c: fold an anonymous visitor (`from`) into the customer they
   logged in as (`into`): views, cart, purchases, figures, attributes and
   affinities move; `from` is emptied and points at `into`.  0, or -1 when
   out of memory. */
int idx_person_merge(idx *x, uint32_t from, uint32_t into);

/* affinity.c: add a decayed weight (apply.c's affinity_weight) to a
   person's interest in a category or a brand: 0, or -1 when out of
   memory. */
int idx_affinity_add(idx_person *p, uint32_t key, float w);
/* Room a person's list of n affinities has: it grows by doubling (2, 4,
   8, 16), so its capacity is known from its length. */
size_t idx_affinity_cap(uint8_t n);

/* value.c: a person's p_alive, expected orders and predicted value from
   the installed model; -1 each without a model or without orders. */
void idx_value_predict(const idx *x, const idx_person *p, int64_t now,
                       idx_figures *f);

/*
** One anchor's side of the content score (content.c), worked out once for
** all the candidates of a query: its category path and depth, and per
** candidate category the category term (a query's candidates come from a
** few categories, so the paths are compared once per category, not once
** per item).  idx_content_anchor_score(a, x, j) equals
** idx_content_score(x, anchor, j).
*/
#define IDX_CAT_MEMO_BITS 6

typedef struct idx_content_anchor {
  const idx_item *it;
  const char *path;
  int depth;
  struct { uint32_t cat; double term; } memo[1u << IDX_CAT_MEMO_BITS]; /* cat + 1, 0 = empty */
} idx_content_anchor;

/* A hint that item j's record is read soon (a category's members are
   scattered over the item array; its tags sit at the end of it). */
static inline void idx_item_prefetch(const idx *x, uint32_t j) {
  const char *rec = (const char *)&x->item[j];
  __builtin_prefetch(rec);
  __builtin_prefetch(rec + sizeof(idx_item) - 1);
}

void idx_content_anchor_init(idx_content_anchor *a, const idx *x, uint32_t anchor);
double idx_content_anchor_score(idx_content_anchor *a, const idx *x, uint32_t j);

#endif /* TAILOR_INDEX_INTERNAL_H */
