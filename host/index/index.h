/*
** index.h: the in-memory state the engine decides from, rebuilt from the
** store's event log and updated on every event.  Items, people (customers
** and anonymous visitors, merged on login) and sessions are interned to
** dense ids; everything below works on those ids.
**
** Not thread-safe by itself: the engine applies events under its write lock
** and reads under its read lock.
*/
#ifndef TAILOR_INDEX_H
#define TAILOR_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "engine/event.h"
#include "index/intern.h"
#include "index/topk.h"

/* Why an item was recommended: X(ENUM, "code"). */
#define IDX_REASON_MAP(X)              \
  X(NONE, "none")                      \
  X(BOUGHT_TOGETHER, "bought_together") \
  X(VIEWED_TOGETHER, "viewed_together") \
  X(SIMILAR, "similar")                \
  X(SESSION, "session")                \
  X(TRENDING, "trending")              \
  X(POPULAR, "popular")                \
  X(RECENTLY_VIEWED, "recently_viewed") \
  X(IN_CART, "in_cart")                \
  X(PURCHASED, "purchased")

typedef enum idx_reason {
#define IDX_REASON_ENUM_(e, s) IDX_REASON_##e,
  IDX_REASON_MAP(IDX_REASON_ENUM_)
#undef IDX_REASON_ENUM_
  IDX_REASON_COUNT
} idx_reason;

const char *idx_reason_name(idx_reason r);

#define IDX_DEFAULT_RECENT 20 /* recently viewed items kept per person */

typedef struct idx_config {
  uint32_t recent_max; /* recently viewed kept per person, <= 255 */
} idx_config;

typedef struct idx_item {
  char *doc;          /* compact catalog JSON (owned), NULL if never upserted */
  double price;       /* from the catalog, else the last price seen */
  uint32_t category;  /* id in idx.categories, or INTERN_NONE */
  uint32_t brand;     /* id in idx.brands, or INTERN_NONE */
  uint8_t in_stock;   /* 1 unless the catalog says otherwise */
  uint8_t deleted;    /* removed from the catalog */
  uint64_t views, carts, purchases; /* lifetime counts */
} idx_item;

/* A growable array of item ids. */
typedef struct idx_ids {
  uint32_t *v;
  uint32_t n, cap;
} idx_ids;

typedef struct idx_person {
  uint32_t canon;      /* itself, or the person it was merged into on login */
  uint8_t is_customer; /* a known customer id (not only an anonymous one) */
  int64_t first_seen, last_seen, last_order; /* ms; 0 = never */
  uint32_t orders;
  double revenue;
  idx_ids recent;      /* recently viewed, oldest first, deduplicated */
  idx_ids cart;        /* current cart */
  idx_ids bought;      /* distinct items ever bought */
} idx_person;

typedef struct idx {
  idx_config cfg;
  intern items, people, sessions, categories, brands;
  idx_item *item;      /* by item id */
  idx_person *person;  /* by person id */
  uint32_t item_cap, person_cap;
  uint64_t applied;    /* events applied */
  int64_t last_ts;     /* newest event time seen */
} idx;

/* A new, empty index; NULL when out of memory.  `cfg` may be NULL. */
idx *idx_new(const idx_config *cfg);
void idx_free(idx *x);

/*
** Apply one event.  Returns TAILOR_OK, or TAILOR_ENOMEM (the index may then
** miss part of this event; the store still has it).
*/
int idx_apply(idx *x, const ev *e);

/* The item id of an external id, or INTERN_NONE. */
uint32_t idx_item_id(const idx *x, const char *id);

/* The canonical person of a customer id or an anonymous id (either may be
   NULL; the customer wins), or INTERN_NONE when never seen. */
uint32_t idx_person_of(const idx *x, const char *customer, const char *anon);

/* Whether an item can be recommended: known, not deleted, in stock. */
int idx_item_available(const idx *x, uint32_t item);

/*
** The k most viewed available items, best first, skipping the `nex` ids in
** `exclude`.  Writes up to k entries to `out`; returns how many.
*/
size_t idx_most_viewed(const idx *x, size_t k, const uint32_t *exclude,
                       size_t nex, topk_entry *out);

/* Whether `id` is among the n ids of `v`. */
int idx_ids_has(const uint32_t *v, size_t n, uint32_t id);

#endif /* TAILOR_INDEX_H */
