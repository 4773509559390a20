/*
** index.c: the index's bookkeeping: interning, the catalog mirror, people
** and their carts, recent views and purchases.  Kernels live in their own
** files and read these arrays.
*/
#include "index/index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const reason_names[] = {
#define IDX_REASON_NAME_(e, s) s,
    IDX_REASON_MAP(IDX_REASON_NAME_)
#undef IDX_REASON_NAME_
};

const char *idx_reason_name(idx_reason r) {
  return (unsigned)r < IDX_REASON_COUNT ? reason_names[r] : "none";
}

idx *idx_new(const idx_config *cfg) {
  idx *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->cfg.recent_max = IDX_DEFAULT_RECENT;
  if (cfg && cfg->recent_max) x->cfg.recent_max = cfg->recent_max;
  if (x->cfg.recent_max > 255) x->cfg.recent_max = 255;
  intern_init(&x->items);
  intern_init(&x->people);
  intern_init(&x->sessions);
  intern_init(&x->categories);
  intern_init(&x->brands);
  return x;
}

static void ids_free(idx_ids *a) { free(a->v); }

void idx_free(idx *x) {
  if (!x) return;
  for (uint32_t i = 0; i < x->items.n; i++) free(x->item[i].doc);
  for (uint32_t i = 0; i < x->people.n; i++) {
    ids_free(&x->person[i].recent);
    ids_free(&x->person[i].cart);
    ids_free(&x->person[i].bought);
  }
  free(x->item);
  free(x->person);
  intern_free(&x->items);
  intern_free(&x->people);
  intern_free(&x->sessions);
  intern_free(&x->categories);
  intern_free(&x->brands);
  free(x);
}

int idx_ids_has(const uint32_t *v, size_t n, uint32_t id) {
  for (size_t i = 0; i < n; i++)
    if (v[i] == id) return 1;
  return 0;
}

static int ids_push(idx_ids *a, uint32_t id) {
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

static void ids_remove(idx_ids *a, uint32_t id) {
  for (uint32_t i = 0; i < a->n; i++) {
    if (a->v[i] == id) {
      memmove(a->v + i, a->v + i + 1, (a->n - i - 1) * sizeof *a->v);
      a->n--;
      return;
    }
  }
}

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

static uint32_t item_put(idx *x, const char *id) {
  uint32_t before = x->items.n;
  uint32_t i = intern_put(&x->items, id);
  if (i == INTERN_NONE) return i;
  if (grow((void **)&x->item, &x->item_cap, x->items.n, sizeof *x->item))
    return INTERN_NONE;
  if (i >= before) {
    x->item[i].category = x->item[i].brand = INTERN_NONE;
    x->item[i].in_stock = 1;
  }
  return i;
}

uint32_t idx_item_id(const idx *x, const char *id) {
  return id ? intern_get(&x->items, id) : INTERN_NONE;
}

/* People are keyed "c:<customer id>" or "a:<anonymous id>" in one table. */
static void person_key(char *buf, size_t size, char kind, const char *id) {
  snprintf(buf, size, "%c:%s", kind, id);
}

static uint32_t person_lookup(const idx *x, char kind, const char *id) {
  char key[300];
  if (!id) return INTERN_NONE;
  person_key(key, sizeof key, kind, id);
  uint32_t p = intern_get(&x->people, key);
  return p == INTERN_NONE ? p : x->person[p].canon;
}

uint32_t idx_person_of(const idx *x, const char *customer, const char *anon) {
  uint32_t p = person_lookup(x, 'c', customer);
  return p != INTERN_NONE ? p : person_lookup(x, 'a', anon);
}

static uint32_t person_put(idx *x, char kind, const char *id) {
  char key[300];
  person_key(key, sizeof key, kind, id);
  uint32_t before = x->people.n;
  uint32_t p = intern_put(&x->people, key);
  if (p == INTERN_NONE) return p;
  if (grow((void **)&x->person, &x->person_cap, x->people.n, sizeof *x->person))
    return INTERN_NONE;
  if (p >= before) {
    x->person[p].canon = p;
    x->person[p].is_customer = kind == 'c';
  }
  return x->person[p].canon;
}

/* Fold what an anonymous visitor did into the customer it turned out to be. */
static int person_merge(idx *x, uint32_t from, uint32_t into) {
  if (from == into) return 0;
  idx_person *a = &x->person[from], *b = &x->person[into];
  for (uint32_t i = 0; i < a->recent.n; i++) {
    ids_remove(&b->recent, a->recent.v[i]);
    if (ids_push(&b->recent, a->recent.v[i])) return -1;
  }
  for (uint32_t i = 0; i < a->cart.n; i++)
    if (!idx_ids_has(b->cart.v, b->cart.n, a->cart.v[i]) &&
        ids_push(&b->cart, a->cart.v[i]))
      return -1;
  for (uint32_t i = 0; i < a->bought.n; i++)
    if (!idx_ids_has(b->bought.v, b->bought.n, a->bought.v[i]) &&
        ids_push(&b->bought, a->bought.v[i]))
      return -1;
  if (!b->first_seen || (a->first_seen && a->first_seen < b->first_seen))
    b->first_seen = a->first_seen;
  if (a->last_seen > b->last_seen) b->last_seen = a->last_seen;
  if (a->last_order > b->last_order) b->last_order = a->last_order;
  b->orders += a->orders;
  b->revenue += a->revenue;
  ids_free(&a->recent);
  ids_free(&a->cart);
  ids_free(&a->bought);
  memset(a, 0, sizeof *a);
  /* Only anonymous people are merged, and only into customers, so chains
     are one link long and nobody else points at `from`. */
  a->canon = into;
  return 0;
}

/* The person an event is about, created when new; links anon to customer. */
static uint32_t event_person(idx *x, const ev *e) {
  uint32_t c = e->customer ? person_put(x, 'c', e->customer) : INTERN_NONE;
  uint32_t a = e->anon ? person_put(x, 'a', e->anon) : INTERN_NONE;
  if (c != INTERN_NONE && a != INTERN_NONE && a != c &&
      !x->person[a].is_customer && person_merge(x, a, c))
    return INTERN_NONE;
  return c != INTERN_NONE ? c : a;
}

static void recent_push(idx *x, idx_person *p, uint32_t item) {
  ids_remove(&p->recent, item);
  if (p->recent.n >= x->cfg.recent_max) {
    memmove(p->recent.v, p->recent.v + 1, (p->recent.n - 1) * sizeof *p->recent.v);
    p->recent.n--;
  }
  ids_push(&p->recent, item);
}

static int apply_catalog(idx *x, const ev *e) {
  json_t *item = json_object_get(e->doc, "item");
  const char *id = e->type == EV_ITEM_UPSERT
                       ? json_string_value(json_object_get(item, "id"))
                       : (e->n_lines ? e->lines[0].item : NULL);
  if (!id) return TAILOR_OK;
  uint32_t i = item_put(x, id);
  if (i == INTERN_NONE) return TAILOR_ENOMEM;
  idx_item *it = &x->item[i];
  if (e->type == EV_ITEM_DELETE) {
    it->deleted = 1;
    return TAILOR_OK;
  }
  char *doc = json_dumps(item, JSON_COMPACT);
  if (!doc) return TAILOR_ENOMEM;
  free(it->doc);
  it->doc = doc;
  it->deleted = 0;
  json_t *v = json_object_get(item, "price");
  if (json_is_number(v)) it->price = json_number_value(v);
  v = json_object_get(item, "in_stock");
  json_t *stock = json_object_get(item, "stock");
  it->in_stock = v ? !json_is_false(v)
                   : (json_is_integer(stock) ? json_integer_value(stock) > 0 : 1);
  const char *s = json_string_value(json_object_get(item, "category"));
  it->category = s ? intern_put(&x->categories, s) : INTERN_NONE;
  s = json_string_value(json_object_get(item, "brand"));
  it->brand = s ? intern_put(&x->brands, s) : INTERN_NONE;
  return TAILOR_OK;
}

int idx_apply(idx *x, const ev *e) {
  x->applied++;
  if (e->ts > x->last_ts) x->last_ts = e->ts;
  if (e->type == EV_ITEM_UPSERT || e->type == EV_ITEM_DELETE)
    return apply_catalog(x, e);
  if (e->type == EV_CUSTOMER_UPSERT) {
    return person_put(x, 'c', e->customer) == INTERN_NONE ? TAILOR_ENOMEM
                                                           : TAILOR_OK;
  }
  uint32_t pid = event_person(x, e);
  idx_person *p = pid == INTERN_NONE ? NULL : &x->person[pid];
  if (p) {
    if (!p->first_seen || e->ts < p->first_seen) p->first_seen = e->ts;
    if (e->ts > p->last_seen) p->last_seen = e->ts;
  }
  if (e->session && intern_put(&x->sessions, e->session) == INTERN_NONE)
    return TAILOR_ENOMEM;
  for (size_t l = 0; l < e->n_lines; l++) {
    uint32_t i = item_put(x, e->lines[l].item);
    if (i == INTERN_NONE) return TAILOR_ENOMEM;
    idx_item *it = &x->item[i];
    if (!it->doc && e->lines[l].price > 0) it->price = e->lines[l].price;
    switch (e->type) {
      case EV_VIEW:
        it->views++;
        if (p) recent_push(x, p, i);
        break;
      case EV_ADD_TO_CART:
        it->carts++;
        if (p && !idx_ids_has(p->cart.v, p->cart.n, i) && ids_push(&p->cart, i))
          return TAILOR_ENOMEM;
        break;
      case EV_REMOVE_FROM_CART:
        if (p) ids_remove(&p->cart, i);
        break;
      case EV_PURCHASE:
        it->purchases++;
        if (p) {
          ids_remove(&p->cart, i);
          if (!idx_ids_has(p->bought.v, p->bought.n, i) && ids_push(&p->bought, i))
            return TAILOR_ENOMEM;
        }
        break;
      default:
        break;
    }
  }
  if (e->type == EV_PURCHASE && p) {
    p->orders++;
    p->revenue += e->revenue;
    p->last_order = e->ts;
  }
  return TAILOR_OK;
}

int idx_item_available(const idx *x, uint32_t item) {
  return item < x->items.n && !x->item[item].deleted && x->item[item].in_stock;
}

size_t idx_most_viewed(const idx *x, size_t k, const uint32_t *exclude,
                       size_t nex, topk_entry *out) {
  topk h;
  topk_init(&h, out, k);
  for (uint32_t i = 0; i < x->items.n; i++) {
    if (!x->item[i].views || !idx_item_available(x, i)) continue;
    if ((double)x->item[i].views < topk_floor(&h)) continue;
    if (idx_ids_has(exclude, nex, i)) continue;
    topk_push(&h, i, IDX_REASON_POPULAR, (double)x->item[i].views);
  }
  return topk_sorted(&h);
}
