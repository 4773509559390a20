/*
** trend.h: trending items (decayed bestsellers) per segment: one table per
** (key, value) pair such as ("country", "DE") or ("", "") for everyone, each
** counting decayed interest per item and answering top-k fast.
**
** Why top-k is cheap: with forward decay (decay.h) a counter only ever
** grows, and every counter of a table is divided by the same factor when
** read, so the order of items changes only when one is bumped.  Each table
** keeps its best `top_max` items sorted; a bump moves the bumped item up the
** list or lets it in past the weakest.  The list is exactly the table's top
** `top_max` at all times, and a query reads it in O(k) (scanning the whole
** table only when filters leave too few).
**
** Not thread-safe: written under the engine's write lock, read under its
** read lock.
*/
#ifndef TAILOR_TREND_H
#define TAILOR_TREND_H

#include <stddef.h>
#include <stdint.h>

#include "index/decay.h"
#include "index/intern.h"
#include "index/topk.h"

#define TREND_DEFAULT_HALF_LIFE_DAYS 7.0
#define TREND_DEFAULT_TOP 256       /* items kept sorted per table */
#define TREND_DEFAULT_MAX_TABLES 4096 /* (key, value) pairs tracked */

/* A slot of a table: the item and its weight side by side, so a bump
   misses the cache once, not once per array. */
typedef struct trend_slot {
  uint32_t key; /* open addressing: item id + 1, 0 = empty; TREND_LISTED
                   set while the item is in the table's top list */
  float w;      /* decayed weight of the slot's item */
} trend_slot;

#define TREND_LISTED 0x80000000u /* item ids stay below 2^31 - 1 */
#define TREND_KEY(k) ((k) & ~TREND_LISTED)

typedef struct trend_table {
  trend_slot *slot;
  uint32_t size, used; /* slots (power of two), items */
  uint32_t *top;   /* item ids, heaviest first (ties: smaller id first) */
  float *top_w;    /* their weights, equal to their slots' */
  uint32_t ntop;
} trend_table;

typedef struct trend {
  intern names;       /* "key=value" -> table index */
  trend_table *tables;
  uint32_t cap;
  uint32_t top_max, max_tables;
  decay d;
} trend;

void trend_init(trend *t, double half_life_days, uint32_t top_max,
                uint32_t max_tables);
void trend_free(trend *t);

/*
** Add `w` (decayed from `ts`) to `item` in the table of (key, value); the
** table is created on first use unless max_tables is reached (then the bump
** is dropped and 1 returned).  Returns 0, 1, or -1 when out of memory.
*/
int trend_bump(trend *t, const char *key, const char *value, uint32_t item,
               int64_t ts, double w);

/*
** The same in steps, for callers that bump several tables per event: the
** id of the table of (key, value) (created when `create` and there is
** room; INTERN_NONE otherwise), the decayed weight of one event at `ts`
** (computed once per event), and adding that weight times the event's own
** weight to an item of a table.  trend_add returns 0 or -1 (out of memory).
*/
uint32_t trend_table_id(trend *t, const char *key, const char *value, int create);
double trend_event_weight(trend *t, int64_t ts);
int trend_add(trend *t, uint32_t table, uint32_t item, double w);

/* The slot where a table starts looking for `item` (open addressing). */
static inline uint32_t trend_home(const trend_table *tb, uint32_t item) {
  return (item * 2654435761u) & (tb->size - 1);
}

/* A hint that `item` of `table` is about to be added to: fetch its slot
   into the cache, so the adds of one event wait for memory together. */
static inline void trend_prefetch(const trend *t, uint32_t table, uint32_t item) {
  const trend_table *tb = &t->tables[table];
  __builtin_prefetch(&tb->slot[trend_home(tb, item)], 1);
}

/* Mark the slots of a table's listed items (after a load, whose keys
   carry no marks).  -1 when a listed item has no slot. */
int trend_table_index(trend_table *tb);

/* The table of (key, value), or NULL when nothing was counted for it. */
const trend_table *trend_find(const trend *t, const char *key,
                              const char *value);

/* Whether an item may be returned; see cooc_keep_fn. */
typedef int (*trend_keep_fn)(void *ud, uint32_t item);

/*
** The k heaviest items of a table that `keep` accepts (may be NULL), best
** first, scores in "events at now" units.  Writes up to k entries to `out`
** (aux = 0); returns how many.  Safe for concurrent readers.
*/
size_t trend_top_k(const trend *t, const trend_table *tb, trend_keep_fn keep,
                   void *ud, int64_t now, size_t k, topk_entry *out);

/* The decayed weight of one item in a table, in "events at now" units. */
double trend_weight(const trend *t, const trend_table *tb, uint32_t item,
                    int64_t now);

size_t trend_bytes(const trend *t);

#endif /* TAILOR_TREND_H */
