/*
** index.c: the index as a structure: new and free, the configuration it
** keeps (trend keys, audience windows, coupon pools), the growable id
** arrays, and interning: items and people get dense ids here, and their
** records grow with them.  What fills the records is apply.c; what reads
** them is person.c, affinity.c, value.c, query.c and the kernels.
**
** The index owns everything it points to; idx_free releases it all.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/internal.h"

/* Split the comma-separated trend keys into x->trend_keys. */
static void parse_trend_keys(idx *x, const char *list) {
  x->ntrend_keys = 0;
  while (list && *list && x->ntrend_keys < IDX_MAX_TREND_KEYS) {
    size_t n = strcspn(list, ",");
    while (n && *list == ' ') list++, n--;
    if (n && n < sizeof x->trend_keys[0]) {
      char *key = x->trend_keys[x->ntrend_keys];
      memcpy(key, list, n);
      key[n] = '\0';
      x->trend_key_kind[x->ntrend_keys++] = !strcmp(key, "category") ? IDX_KEY_CATEGORY
                                            : strchr(key, '+')      ? IDX_KEY_JOINED
                                                                    : IDX_KEY_SIMPLE;
    }
    list += n + (list[n] == ',');
  }
}

idx *idx_new(const idx_config *cfg) {
  idx *x = calloc(1, sizeof *x);
  idx_config c = {0};
  if (!x) return NULL;
  if (cfg) c = *cfg;
  if (!c.recent_max) c.recent_max = IDX_DEFAULT_RECENT;
  if (c.recent_max > 255) c.recent_max = 255;
  if (!c.coview_window) c.coview_window = IDX_DEFAULT_COVIEW_WINDOW;
  if (c.coview_window > IDX_MAX_COVIEW_WINDOW) c.coview_window = IDX_MAX_COVIEW_WINDOW;
  if (c.cooc_half_life_days == 0) c.cooc_half_life_days = COOC_DEFAULT_HALF_LIFE_DAYS;
  if (c.trend_half_life_days == 0) c.trend_half_life_days = TREND_DEFAULT_HALF_LIFE_DAYS;
  if (c.cross_order_weight < 0) c.cross_order_weight = IDX_DEFAULT_CROSS_ORDER;
  if (!c.lapsed_days) c.lapsed_days = IDX_DEFAULT_LAPSED_DAYS;
  if (!c.trend_keys) c.trend_keys = IDX_DEFAULT_TREND_KEYS;
  parse_trend_keys(x, c.trend_keys);
  c.trend_keys = NULL; /* not kept: the caller's string */
  const char *days = c.audience_days ? c.audience_days : IDX_DEFAULT_AUDIENCE_DAYS;
  while (*days && x->naudiences < IDX_MAX_AUDIENCES) {
    char *end;
    unsigned long d = strtoul(days, &end, 10);
    if (end == days) break;
    if (d > 0) x->audience_days[x->naudiences++] = (uint32_t)d;
    days = *end == ',' ? end + 1 : end;
  }
  c.audience_days = NULL;
  intern_init(&x->coupons);
  for (const char *cp = c.coupons; cp && *cp;) {
    size_t n = strcspn(cp, ",");
    char pool[128];
    snprintf(pool, sizeof pool, "%.*s", (int)n, cp);
    char *eq = strchr(pool, '=');
    if (eq) {
      *eq = '\0';
      uint32_t id = intern_put(&x->coupons, pool);
      if (id != INTERN_NONE && id == x->coupon_size.n) {
        ids_push(&x->coupon_size, (uint32_t)strtoul(eq + 1, NULL, 10));
        ids_push(&x->coupon_used, 0);
      }
    }
    cp += n + (cp[n] == ',');
  }
  c.coupons = NULL;
  x->cfg = c;
  intern_init(&x->items);
  intern_init(&x->people);
  intern_init(&x->sessions);
  intern_init(&x->categories);
  intern_init(&x->brands);
  intern_init(&x->attrs);
  intern_init(&x->tags);
  intern_init(&x->attrib.names);
  cooc_init(&x->coview, c.max_neighbors, c.cooc_half_life_days);
  cooc_init(&x->copurchase, c.max_neighbors, c.cooc_half_life_days);
  trend_init(&x->trend, c.trend_half_life_days, 0, 0);
  if (!(x->sknn = sknn_new(NULL)) || !(x->search = search_new()) || !(x->reads = search_new())) {
    sknn_free(x->sknn);
    free(x);
    return NULL;
  }
  x->aff_decay.half_life_ms = IDX_AFFINITY_HALF_LIFE_DAYS * 86400e3;
  return x;
}

void idx_ids_free(idx_ids *a) { free(a->v); }

void idx_free(idx *x) {
  if (!x) return;
  for (uint32_t i = 0; x->item && i < x->items.n; i++) free(x->item[i].doc);
  for (uint32_t i = 0; x->person && i < x->people.n; i++) {
    idx_ids_free(&x->person[i].recent);
    idx_ids_free(&x->person[i].cart);
    idx_ids_free(&x->person[i].bought);
    free(x->person[i].bought_at);
    free(x->person[i].attrs);
    free(x->person[i].prefs);
    free(x->person[i].aff);
  }
  free(x->repeat);
  free(x->orders);
  cooc_free(&x->coview);
  cooc_free(&x->copurchase);
  trend_free(&x->trend);
  sknn_free(x->sknn);
  search_free(x->search);
  search_free(x->reads);
  free(x->window);
  free(x->window_n);
  free(x->session);
  free(x->propensity);
  free(x->clusters.assign);
  idx_attrib_free(&x->attrib);
  intern_free(&x->attrs);
  intern_free(&x->tags);
  intern_free(&x->coupons);
  idx_ids_free(&x->coupon_size);
  idx_ids_free(&x->coupon_used);
  for (uint32_t i = 0; i < IDX_MAX_TREND_KEYS; i++) {
    idx_ids_free(&x->trend_value_table[i]);
    free(x->trend_join_table[i].slot);
  }
  free(x->cat_tables);
  for (uint32_t i = 0; x->members && i < x->members_cap; i++)
    idx_ids_free(&x->members[i]);
  for (uint32_t i = 0; x->watchers && i < x->watchers_cap; i++)
    idx_ids_free(&x->watchers[i]);
  free(x->watchers);
  free(x->members);
  free(x->item);
  free(x->person);
  intern_free(&x->items);
  intern_free(&x->people);
  intern_free(&x->sessions);
  intern_free(&x->categories);
  intern_free(&x->brands);
  free(x);
}

/* The same code as the inline helpers of internal.h, for the engine. */
int idx_ids_has(const uint32_t *v, size_t n, uint32_t id) {
  return ids_has(v, n, id);
}

int idx_ids_push(idx_ids *a, uint32_t id) { return ids_push(a, id); }

void idx_ids_remove(idx_ids *a, uint32_t id) { ids_remove(a, id); }

/* Grow a parallel array to hold `need` entries, zeroing the new ones. */
static int grow(void **arr, uint32_t *cap, uint32_t need, size_t size) {
  if (need <= *cap) return 0;
  uint32_t n = *cap ? *cap : 1024;
  while (n < need) n *= 2;
  void *p = realloc(*arr, (size_t)n * size);
  if (!p) return -1;
  memset((char *)p + (size_t)*cap * size, 0, (size_t)(n - *cap) * size);
  *arr = p;
  *cap = n;
  return 0;
}

uint32_t idx_item_put(idx *x, const char *id) {
  intern_key k = intern_key_of(id);
  return idx_item_put_key(x, &k);
}

uint32_t idx_item_put_key(idx *x, const intern_key *k) {
  uint32_t before = x->items.n;
  uint32_t i = intern_put_key(&x->items, k);
  if (i == INTERN_NONE) return i;
  if (grow((void **)&x->item, &x->item_cap, x->items.n, sizeof *x->item))
    return INTERN_NONE;
  if (i >= before) {
    x->item[i].category = x->item[i].brand = INTERN_NONE;
    x->item[i].in_stock = 1;
    x->uncataloged++; /* until its catalog object arrives */
  }
  return i;
}

uint32_t idx_item_id(const idx *x, const char *id) {
  return id ? intern_get(&x->items, id) : INTERN_NONE;
}

/* People are keyed "c:<customer id>" or "a:<anonymous id>" in one table. */
static size_t person_key(char *buf, size_t size, char kind, const char *id) {
  size_t n = strlen(id);
  if (n + 3 > size) n = size - 3; /* ids are at most 256 bytes anyway */
  buf[0] = kind;
  buf[1] = ':';
  memcpy(buf + 2, id, n);
  buf[n + 2] = '\0';
  return n + 2;
}

void idx_person_key(char *buf, size_t size, char kind, const char *id) {
  person_key(buf, size, kind, id);
}

intern_key idx_person_key_of(char *buf, size_t size, char kind, const char *id) {
  size_t len = person_key(buf, size, kind, id);
  return (intern_key){buf, len, (uint32_t)intern_hash(buf, len)};
}

uint32_t idx_person_lookup(const idx *x, char kind, const char *id) {
  char key[300];
  if (!id) return INTERN_NONE;
  idx_person_key(key, sizeof key, kind, id);
  uint32_t p = intern_get(&x->people, key);
  return p == INTERN_NONE ? p : x->person[p].canon;
}

uint32_t idx_person_of(const idx *x, const char *customer, const char *anon) {
  uint32_t p = idx_person_lookup(x, 'c', customer);
  return p != INTERN_NONE ? p : idx_person_lookup(x, 'a', anon);
}

uint32_t idx_person_put(idx *x, char kind, const char *id) {
  char key[300];
  intern_key k = idx_person_key_of(key, sizeof key, kind, id);
  return idx_person_put_key(x, kind, &k);
}

uint32_t idx_person_put_key(idx *x, char kind, const intern_key *k) {
  uint32_t before = x->people.n;
  uint32_t p = intern_put_key(&x->people, k);
  if (p == INTERN_NONE) return p;
  if (grow((void **)&x->person, &x->person_cap, x->people.n, sizeof *x->person))
    return INTERN_NONE;
  if (p >= before) {
    x->person[p].canon = p;
    x->person[p].is_customer = kind == 'c';
  }
  return x->person[p].canon;
}

const char *idx_customer_id(const idx *x, uint32_t person) {
  const char *key = intern_name(&x->people, person);
  return key && key[0] == 'c' && key[1] == ':' ? key + 2 : NULL;
}
