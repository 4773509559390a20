/*
** affinity.c: a person's interests in categories and brands.  Each person
** keeps at most IDX_MAX_AFFINITIES decayed weights (idx_person.aff, owned
** by the person's record); interest added now weighs more than the same
** interest a month ago (IDX_AFFINITY_HALF_LIFE_DAYS, forward decay as in
** decay.h, one origin for everyone in idx.aff_decay).  The event path adds
** to them; strategies read them as lists or as a match with an item or a
** category tab.
*/
#include <math.h>
#include <stdlib.h>

#include "index/internal.h"

/* Room for n affinities: 8 at first, doubled.  A visitor who views a few
   items gains a category and a brand each, and growing from 2 moved the
   list three times for most of them (a fifth of an event's allocator
   work in index_bench). */
size_t idx_affinity_cap(uint8_t n) {
  size_t cap = n ? 8 : 0;
  while (cap < n) cap *= 2;
  return cap;
}

/* Add decayed weight to an affinity; a full list replaces its lightest
   entry, which the newcomer inherits (Space-Saving, as in cooc.h). */
int idx_affinity_add(idx_person *p, uint32_t key, float w) {
  for (uint8_t i = 0; i < p->naff; i++) {
    if (p->aff[i].key == key) {
      p->aff[i].w += w;
      return 0;
    }
  }
  if (p->naff < IDX_MAX_AFFINITIES) {
    if (p->naff == idx_affinity_cap(p->naff)) { /* full: double */
      idx_affinity *more = realloc(p->aff, idx_affinity_cap(p->naff + 1) * sizeof *more);
      if (!more) return -1;
      p->aff = more;
    }
    p->aff[p->naff++] = (idx_affinity){key, w};
    return 0;
  }
  uint8_t min = 0;
  for (uint8_t i = 1; i < p->naff; i++)
    if (p->aff[i].w < p->aff[min].w) min = i;
  p->aff[min].key = key;
  p->aff[min].w += w;
  return 0;
}

static int by_weight(const void *a, const void *b) {
  const idx_affinity *x = a, *y = b;
  return (x->w < y->w) - (x->w > y->w);
}

size_t idx_person_affinities(const idx *x, uint32_t person, int brands,
                             int64_t now, idx_affinity *out) {
  if (person >= x->people.n) return 0;
  const idx_person *p = &x->person[person];
  float sc = (float)decay_scale(&x->aff_decay, now);
  size_t n = 0;
  for (uint8_t i = 0; i < p->naff; i++) {
    if (!(p->aff[i].key & IDX_AFF_BRAND) == !brands) { /* a category, or a brand */
      out[n].key = p->aff[i].key & ~IDX_AFF_BRAND;
      out[n++].w = p->aff[i].w * sc;
    }
  }
  qsort(out, n, sizeof *out, by_weight);
  return n;
}

/*
** How much an interest in category path `interest` counts towards `target`:
** fully when they are the same (or, for a category tab, when the interest
** lies inside it), else halved for each level of `interest` the two paths
** do not share ("Home/Decor/Wall" gives "Home/Decor/Lamps" half).
*/
static double path_weight(const char *target, const char *interest, int inside_counts) {
  int shared = 0, depth = 1;
  const char *a = target, *b = interest;
  while (*a && *a == *b) {
    if (*a == '/') shared++;
    a++, b++;
  }
  int a_end = *a == '/' || !*a, b_end = *b == '/' || !*b;
  if (a_end && b_end) shared++;
  if (!*a && (!*b || (*b == '/' && inside_counts))) return 1; /* same, or inside */
  if (!shared) return 0;
  for (const char *c = interest; *c; c++) depth += *c == '/';
  return ldexp(1.0, -(depth - shared)); /* 2^-(levels apart); a shift of 32 or more was UB */
}

/* Sum of a person's interests weighted towards a category (and a brand). */
static double affinity_towards(const idx *x, uint32_t person, const char *cat,
                               uint32_t brand, int inside_counts, int64_t now) {
  if (person >= x->people.n) return 0;
  const idx_person *p = &x->person[person];
  double sum = 0;
  for (uint8_t i = 0; i < p->naff; i++) {
    uint32_t key = p->aff[i].key;
    if (key & IDX_AFF_BRAND) {
      if (brand != INTERN_NONE && (key & ~IDX_AFF_BRAND) == brand) sum += p->aff[i].w;
      continue;
    }
    const char *other = intern_name(&x->categories, key);
    if (cat && other) sum += p->aff[i].w * path_weight(cat, other, inside_counts);
  }
  return sum * decay_scale(&x->aff_decay, now);
}

double idx_item_affinity(const idx *x, uint32_t person, uint32_t item,
                         int64_t now) {
  if (item >= x->items.n) return 0;
  const idx_item *it = &x->item[item];
  return affinity_towards(x, person, intern_name(&x->categories, it->category),
                          it->brand, 0, now);
}

double idx_category_affinity(const idx *x, uint32_t person, const char *path,
                             int64_t now) {
  return affinity_towards(x, person, path, INTERN_NONE, 1, now);
}
