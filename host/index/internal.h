/*
** internal.h: what the index's own files share, and nothing outside
** host/index/ includes.  The public API is index.h; the files are
**   index.c   the structure: new/free, the configuration, interning of
**             items and people, the growable id arrays
**   query.c   the reads strategies ask for: filters, availability and the
**             kernel entry points (related, trending, session next, ...)
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

/* Whether `id` is among the n ids of `v`. */
static inline int ids_has(const uint32_t *v, size_t n, uint32_t id) {
  for (size_t i = 0; i < n; i++)
    if (v[i] == id) return 1;
  return 0;
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

#endif /* TAILOR_INDEX_INTERNAL_H */
