/*
** internal.h: what the index's own files share, and nothing outside
** host/index/ includes.  The public API is index.h; the files are
**   index.c   the structure: new/free, the configuration, interning of
**             items and people, the growable id arrays
**   person.c  people: who an event is about (merge on login), figures,
**             lifecycle, audiences, watchers, erasure
**   affinity.c  a person's decayed interests in categories and brands
**   value.c   the customer-value model: collect, fit, predict
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

/*
** index.c: people are keyed "c:<customer id>" or "a:<anonymous id>" in one
** intern table.  idx_person_key writes that key (cut to the buffer, which
** 300 bytes always holds); idx_person_lookup gives the canonical person of
** an id or INTERN_NONE; idx_person_put creates the person when new and
** returns its canonical id, or INTERN_NONE when out of memory.
*/
void idx_person_key(char *buf, size_t size, char kind, const char *id);
uint32_t idx_person_lookup(const idx *x, char kind, const char *id);
uint32_t idx_person_put(idx *x, char kind, const char *id);

/* person.c: the person an event is about, created when new; an anonymous
   visitor seen with a customer id is merged into that customer.
   INTERN_NONE when the event names nobody or memory ran out. */
uint32_t idx_event_person(idx *x, const ev *e);

/* affinity.c: the decayed weight of an interest at `ts` (rescaling every
   person's affinities first when the origin is far behind), and adding it
   to a person: 0, or -1 when out of memory. */
double idx_affinity_weight(idx *x, int64_t ts);
int idx_affinity_add(idx_person *p, uint32_t key, float w);

/* value.c: a person's p_alive, expected orders and predicted value from
   the installed model; -1 each without a model or without orders. */
void idx_value_predict(const idx *x, const idx_person *p, int64_t now,
                       idx_figures *f);

#endif /* TAILOR_INDEX_INTERNAL_H */
