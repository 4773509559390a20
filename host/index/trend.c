/*
** trend.c: per-segment decayed counters with an exact, incrementally kept
** top list.
*/
#include "index/trend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void trend_init(trend *t, double half_life_days, uint32_t top_max,
                uint32_t max_tables) {
  memset(t, 0, sizeof *t);
  intern_init(&t->names);
  t->top_max = top_max ? top_max : TREND_DEFAULT_TOP;
  t->max_tables = max_tables ? max_tables : TREND_DEFAULT_MAX_TABLES;
  t->d.half_life_ms = half_life_days > 0 ? half_life_days * 86400e3 : 0;
}

static void table_free(trend_table *tb) {
  free(tb->slot);
  free(tb->top);
  free(tb->top_w);
}

void trend_free(trend *t) {
  /* A checkpoint read that failed part way may leave names without their
     tables (none, or fewer than the names): only the tables there are. */
  for (uint32_t i = 0; t->tables && i < t->names.n && i < t->cap; i++)
    table_free(&t->tables[i]);
  free(t->tables);
  intern_free(&t->names);
  memset(t, 0, sizeof *t);
}

static uint32_t slot_of(const trend_table *tb, uint32_t item) {
  uint32_t mask = tb->size - 1, s = trend_home(tb, item);
  while (tb->slot[s].key && TREND_KEY(tb->slot[s].key) != item + 1) s = (s + 1) & mask;
  return s;
}

static int table_grow(trend_table *tb) {
  uint32_t size = tb->size ? tb->size * 2 : 64;
  trend_slot *slot = calloc(size, sizeof *slot);
  if (!slot) return -1;
  trend_table n = *tb;
  n.size = size;
  n.slot = slot;
  for (uint32_t i = 0; i < tb->size; i++) /* marks move with their slots */
    if (tb->slot[i].key) n.slot[slot_of(&n, TREND_KEY(tb->slot[i].key) - 1)] = tb->slot[i];
  free(tb->slot);
  *tb = n;
  return 0;
}

int trend_table_index(trend_table *tb) {
  for (uint32_t j = 0; j < tb->ntop; j++) {
    trend_slot *sl = &tb->slot[slot_of(tb, tb->top[j])];
    if (!sl->key) return -1;
    sl->key |= TREND_LISTED;
  }
  return 0;
}

/* The place of listed `item`, of weight w, in the top list: found by its
   weight (the list is sorted by weight, then id), or by its id where
   rescaled weights have come to tie out of id order. */
static uint32_t top_place(const trend_table *tb, uint32_t item, float w) {
  uint32_t lo = 0, hi = tb->ntop;
  while (lo < hi) { /* the first place not ahead of (w, item) */
    uint32_t mid = (lo + hi) / 2;
    if (tb->top_w[mid] > w || (tb->top_w[mid] == w && tb->top[mid] < item)) lo = mid + 1;
    else hi = mid;
  }
  if (lo < tb->ntop && tb->top[lo] == item) return lo;
  for (lo = 0; lo < tb->ntop && tb->top[lo] != item; lo++) continue;
  return lo;
}

/* Whether an item of weight w goes ahead of entry j of the top list. */
static int outweighs(const trend_table *tb, uint32_t j, float w, uint32_t item) {
  return tb->top_w[j] < w || (tb->top_w[j] == w && tb->top[j] > item);
}

/* Places walked up before a binary search (top_update). */
#define TREND_WALK 8

/*
** Keep the top list exact: the item of slot sl rose from weight `was` to
** its slot's weight.  A slot is marked while its item is listed, so a bump
** knows without a search whether the item is in the list, and the list is
** two arrays that shift with memmove.
*/
static void top_update(trend *t, trend_table *tb, trend_slot *sl, uint32_t item, float was) {
  float w = sl->w;
  /* A listed item weighs at least the list's last entry, so a lighter one
     is not listed and stays out: the common case for the long tail, O(1). */
  if (tb->ntop == t->top_max && w < tb->top_w[tb->ntop - 1]) return;
  uint32_t i;
  if (sl->key & TREND_LISTED) {
    i = top_place(tb, item, was);
  } else if (tb->ntop == t->top_max) { /* enter past the weakest, if heavier */
    if (w <= tb->top_w[tb->ntop - 1]) return;
    i = tb->ntop - 1;
    tb->slot[slot_of(tb, tb->top[i])].key &= ~TREND_LISTED;
    sl->key |= TREND_LISTED;
  } else {
    i = tb->ntop++;
    sl->key |= TREND_LISTED;
  }
  /* Its new place: past every entry above it that it now outweighs (ties
     keep the smaller id first, as topk does); the entries between shift
     down one.  Most bumps move an item a place or none, so a few places
     are walked up from i (reading the lines the shift then writes); an
     item that climbs further, as one new to the list does (forward decay:
     a view now outweighs a view of yesterday), finds the rest by binary
     search, the list above being in order. */
  uint32_t lo = i, walked = 0;
  while (lo > 0 && walked < TREND_WALK && outweighs(tb, lo - 1, w, item)) lo--, walked++;
  if (walked == TREND_WALK && lo > 0 && outweighs(tb, lo - 1, w, item)) {
    uint32_t top = 0; /* the first place in [top, lo) it outweighs */
    while (top < lo) {
      uint32_t mid = (top + lo) / 2;
      if (outweighs(tb, mid, w, item)) lo = mid;
      else top = mid + 1;
    }
  }
  if (lo < i) {
    memmove(tb->top + lo + 1, tb->top + lo, (i - lo) * sizeof *tb->top);
    memmove(tb->top_w + lo + 1, tb->top_w + lo, (i - lo) * sizeof *tb->top_w);
  }
  tb->top[lo] = item;
  tb->top_w[lo] = w;
}

static void rebase(trend *t, int64_t ts) {
  float s = (float)decay_scale(&t->d, ts);
  for (uint32_t i = 0; i < t->names.n; i++) {
    trend_table *tb = &t->tables[i];
    for (uint32_t j = 0; j < tb->size; j++) tb->slot[j].w *= s;
    for (uint32_t j = 0; j < tb->ntop; j++) tb->top_w[j] *= s;
  }
  t->d.t0 = ts;
}

uint32_t trend_table_id(trend *t, const char *key, const char *value,
                        int create) {
  char name[512];
  size_t kl = strlen(key), vl = strlen(value);
  if (kl + vl + 2 > sizeof name) return INTERN_NONE;
  memcpy(name, key, kl);
  name[kl] = '=';
  memcpy(name + kl + 1, value, vl + 1);
  uint32_t id = intern_get(&t->names, name);
  if (id != INTERN_NONE || !create || t->names.n >= t->max_tables) return id;
  /* A person's attributes (country, device, the referrer's host: any
     visitor's to make up) take at most three quarters of the tables, so
     that the shop's own categories always find room. */
  if (*key && strcmp(key, "category") && t->names.n >= t->max_tables - t->max_tables / 4)
    return INTERN_NONE;
  if (t->names.n == t->cap) {
    uint32_t cap = t->cap ? t->cap * 2 : 16;
    trend_table *tables = realloc(t->tables, cap * sizeof *tables);
    if (!tables) return INTERN_NONE;
    t->tables = tables;
    t->cap = cap;
  }
  trend_table *tb = &t->tables[t->names.n];
  memset(tb, 0, sizeof *tb);
  tb->top = malloc(t->top_max * sizeof *tb->top);
  tb->top_w = malloc(t->top_max * sizeof *tb->top_w);
  if (!tb->top || !tb->top_w || table_grow(tb)) {
    table_free(tb);
    return INTERN_NONE;
  }
  id = intern_put(&t->names, name);
  if (id == INTERN_NONE) table_free(tb);
  return id;
}

double trend_event_weight(trend *t, int64_t ts) {
  if (decay_should_rebase(&t->d, ts)) rebase(t, ts);
  return decay_weight(&t->d, ts);
}

int trend_add(trend *t, uint32_t table, uint32_t item, double w) {
  trend_table *tb = &t->tables[table];
  if ((tb->used + 1) * 2 > tb->size && table_grow(tb)) return -1;
  trend_slot *sl = &tb->slot[slot_of(tb, item)];
  if (!sl->key) {
    sl->key = item + 1;
    tb->used++;
  }
  float was = sl->w;
  sl->w += (float)w;
  top_update(t, tb, sl, item, was);
  return 0;
}

int trend_bump(trend *t, const char *key, const char *value, uint32_t item,
               int64_t ts, double w) {
  uint32_t id = trend_table_id(t, key, value, 1);
  if (id == INTERN_NONE) return t->names.n >= t->max_tables ? 1 : -1;
  return trend_add(t, id, item, w * trend_event_weight(t, ts));
}

const trend_table *trend_find(const trend *t, const char *key,
                              const char *value) {
  uint32_t id = trend_table_id((trend *)t, key, value, 0);
  return id == INTERN_NONE ? NULL : &t->tables[id];
}

double trend_weight(const trend *t, const trend_table *tb, uint32_t item,
                    int64_t now) {
  if (!tb) return 0;
  uint32_t s = slot_of(tb, item);
  return tb->slot[s].key ? tb->slot[s].w * decay_scale(&t->d, now) : 0;
}

size_t trend_top_k(const trend *t, const trend_table *tb, trend_keep_fn keep,
                   void *ud, int64_t now, size_t k, topk_entry *out) {
  if (!tb || k == 0) return 0;
  double s = decay_scale(&t->d, now);
  size_t n = 0;
  for (uint32_t i = 0; i < tb->ntop && n < k; i++) {
    if (keep && !keep(ud, tb->top[i])) continue;
    out[n++] = (topk_entry){tb->top[i], 0, tb->top_w[i] * s};
  }
  if (n == k || tb->ntop == tb->used) return n;
  /* Filters left too few in the list: rank the whole table. */
  topk h;
  topk_init(&h, out, k);
  for (uint32_t i = 0; i < tb->size; i++) {
    if (!tb->slot[i].key) continue;
    uint32_t item = TREND_KEY(tb->slot[i].key) - 1;
    if (tb->slot[i].w * s < topk_floor(&h) || (keep && !keep(ud, item))) continue;
    topk_push(&h, item, 0, tb->slot[i].w * s);
  }
  return topk_sorted(&h);
}

size_t trend_bytes(const trend *t) {
  size_t b = intern_bytes(&t->names) + t->cap * sizeof *t->tables;
  for (uint32_t i = 0; i < t->names.n; i++)
    b += t->tables[i].size * sizeof(trend_slot) +
         t->top_max * (sizeof(uint32_t) + sizeof(float));
  return b;
}
