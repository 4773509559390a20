/*
** person.c: people.  An anonymous visitor folded into the customer they
** log in as, attributes, RFM figures and lifecycle, recency audiences,
** the customers watching an item, and erasure.
**
** The index owns every person's record and the arrays in it (recent, cart,
** bought, attrs, aff); index.c grows the table and interns the ids.  A
** merge moves what the visitor did into the customer and frees the
** visitor's arrays; erasure frees them and the ids stop resolving.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/internal.h"

/* Free what a person's record owns and zero it. */
static void person_clear(idx_person *p) {
  idx_ids_free(&p->recent);
  idx_ids_free(&p->cart);
  idx_ids_free(&p->bought);
  free(p->bought_at);
  free(p->attrs);
  free(p->prefs);
  free(p->aff);
  memset(p, 0, sizeof *p);
}

/* Fold what an anonymous visitor did into the customer it turned out to be. */
int idx_person_merge(idx *x, uint32_t from, uint32_t into) {
  if (from == into) return 0;
  idx_person *a = &x->person[from], *b = &x->person[into];
  for (uint32_t i = 0; i < a->recent.n; i++) {
    ids_remove(&b->recent, a->recent.v[i]);
    if (ids_push(&b->recent, a->recent.v[i])) return -1;
  }
  for (uint32_t i = 0; i < a->cart.n; i++)
    if (!ids_has(b->cart.v, b->cart.n, a->cart.v[i]) &&
        ids_push(&b->cart, a->cart.v[i]))
      return -1;
  for (uint32_t i = 0; i < a->bought.n; i++)
    if (!ids_has(b->bought.v, b->bought.n, a->bought.v[i]) &&
        ids_push(&b->bought, a->bought.v[i]))
      return -1;
  if (idx_bought_merge(b, a)) return -1;
  if (!b->first_seen || (a->first_seen && a->first_seen < b->first_seen))
    b->first_seen = a->first_seen;
  if (a->last_seen > b->last_seen) b->last_seen = a->last_seen;
  if (a->last_order > b->last_order) b->last_order = a->last_order;
  if (a->first_order && (!b->first_order || a->first_order < b->first_order))
    b->first_order = a->first_order;
  b->orders += a->orders;
  b->visits += a->visits;
  b->revenue += a->revenue;
  for (uint8_t i = 0; i < a->nattrs; i++)
    if (!idx_person_attr(x, into, intern_name(&x->attrs, a->attrs[i].key)) &&
        b->nattrs < IDX_MAX_ATTRS) {
      idx_attr *more = realloc(b->attrs, (b->nattrs + 1u) * sizeof *more);
      if (!more) return -1;
      b->attrs = more;
      b->attrs[b->nattrs++] = a->attrs[i];
    }
  for (uint8_t i = 0; i < a->naff; i++)
    if (idx_affinity_add(b, a->aff[i].key, a->aff[i].w)) return -1;
  /* Preferences: the later answer to the same key wins. */
  for (uint8_t i = 0; i < a->nprefs; i++)
    if (idx_pref_set(b, &a->prefs[i])) return -1;
  b->emails += a->emails;
  if (a->last_email > b->last_email) b->last_email = a->last_email;
  /* What the visitor declined before logging in holds for the customer
     (until a consent event of theirs says otherwise): dropped, they were
     in ad audiences and got emails after the login. */
  b->flags |= a->flags & (IDX_NO_ANALYTICS | IDX_NO_PERSONALIZATION | IDX_NO_MARKETING |
                          IDX_UNSUBSCRIBED);
  if (a->click_ts > b->click_ts) { /* the later click is the last one */
    b->click_ts = a->click_ts;
    b->click_group = a->click_group;
  }
  /* The searches and reads before a login lead to what follows it. */
  if (search_merge_person(x->search, from, into) || search_merge_person(x->reads, from, into))
    return -1;
  person_clear(a);
  /* Only anonymous people are merged, and only into customers, so chains
     are one link long and nobody else points at `from`. */
  a->canon = into;
  return 0;
}

int idx_pref_set(idx_person *p, const idx_pref *v) {
  for (uint8_t i = 0; i < p->nprefs; i++) {
    if (p->prefs[i].key != v->key) continue;
    if (v->ts >= p->prefs[i].ts) p->prefs[i] = *v;
    return 0;
  }
  if (p->nprefs >= IDX_MAX_PREFS) return 0; /* full: the first keys win */
  idx_pref *more = realloc(p->prefs, (p->nprefs + 1u) * sizeof *more);
  if (!more) return -1;
  p->prefs = more;
  p->prefs[p->nprefs++] = *v;
  return 0;
}

void idx_pref_remove(idx_person *p, uint32_t key, int64_t ts) {
  for (uint8_t i = 0; i < p->nprefs; i++) {
    if (p->prefs[i].key != key) continue;
    if (p->prefs[i].ts > ts) return;
    memmove(&p->prefs[i], &p->prefs[i + 1], (size_t)(p->nprefs - i - 1) * sizeof *p->prefs);
    p->nprefs--;
    return;
  }
}

/*
** Attributes: a person's segment values (country, gender, ...), from the
** profile and from what events say about the visit.
*/
const char *idx_person_attr(const idx *x, uint32_t person, const char *key) {
  uint32_t k = intern_get(&x->attrs, key);
  if (k == INTERN_NONE || person >= x->people.n) return NULL;
  const idx_person *p = &x->person[person];
  for (uint8_t i = 0; i < p->nattrs; i++)
    if (p->attrs[i].key == k) return intern_name(&x->attrs, p->attrs[i].value);
  return NULL;
}

static const char *const lifecycle_names[] = {
#define IDX_LIFECYCLE_NAME_(e, s) s,
    IDX_LIFECYCLE_MAP(IDX_LIFECYCLE_NAME_)
#undef IDX_LIFECYCLE_NAME_
};

const char *idx_lifecycle_name(idx_lifecycle l) {
  return (unsigned)l <= IDX_LAPSED ? lifecycle_names[l] : "new_visitor";
}

void idx_person_figures(const idx *x, uint32_t person, int64_t now,
                        idx_figures *f) {
  idx_person_counts(x, person, now, f);
  idx_person_value(x, person, now, f);
}

void idx_person_value(const idx *x, uint32_t person, int64_t now, idx_figures *f) {
  f->p_alive = f->expected_orders = f->predicted_value = -1;
  if (person < x->people.n) idx_value_predict(x, &x->person[person], now, f);
}

void idx_person_counts(const idx *x, uint32_t person, int64_t now, idx_figures *f) {
  memset(f, 0, sizeof *f);
  f->p_alive = f->expected_orders = f->predicted_value = -1;
  f->days_since_visit = f->days_since_order = -1;
  f->lifecycle = IDX_NEW_VISITOR;
  if (person >= x->people.n) return;
  const idx_person *p = &x->person[person];
  f->seen = 1;
  f->orders = p->orders;
  f->visits = p->visits;
  f->revenue = p->revenue;
  f->avg_order = p->orders ? p->revenue / p->orders : 0;
  f->first_seen = p->first_seen;
  f->last_seen = p->last_seen;
  f->last_order = p->last_order;
  if (p->last_seen) f->days_since_visit = (double)(now - p->last_seen) / 86400e3;
  if (p->last_order) f->days_since_order = (double)(now - p->last_order) / 86400e3;
  if (p->orders)
    f->lifecycle = f->days_since_order > x->cfg.lapsed_days ? IDX_LAPSED : IDX_CUSTOMER;
  else if (p->visits > 1)
    f->lifecycle = IDX_RETURNING_VISITOR;
}

/*
** Recency audiences (defined in index.h): buyers first, then cart
** abandoners, then the visitor bands, so that each person is in one at most
** and an ad platform bids on them once.  The windows may be configured in
** any order.
*/
static const char *const audience_names[] = {
#define IDX_AUDIENCE_NAME_(e, s) s,
    IDX_AUDIENCE_MAP(IDX_AUDIENCE_NAME_)
#undef IDX_AUDIENCE_NAME_
};

const char *idx_audience_name(idx_audience_kind k) {
  return (unsigned)k < IDX_AUDIENCE_COUNT ? audience_names[k] : "unknown";
}

int idx_audience_kind_of(const char *name) {
  for (int k = 0; name && k < IDX_AUDIENCE_COUNT; k++)
    if (!strcmp(name, audience_names[k])) return k;
  return -1;
}

uint32_t idx_audience_window(const idx *x, idx_audience_kind kind) {
  uint32_t w = 0;
  for (uint32_t i = 0; i < x->naudiences; i++) {
    uint32_t d = x->audience_days[i];
    if (!w || (kind == IDX_AUD_CART_ABANDONERS ? d < w : d > w)) w = d;
  }
  return w;
}

int idx_person_audience(const idx *x, uint32_t person, int64_t now,
                        idx_audience *out) {
  if (person >= x->people.n || !x->person[person].last_seen || !x->naudiences ||
      (x->person[person].flags & IDX_NO_MARKETING)) /* declined: in no audience */
    return 0;
  const idx_person *p = &x->person[person];
  int64_t seen = now - p->last_seen; /* ms since last seen */
  uint32_t longest = idx_audience_window(x, IDX_AUD_BUYERS);
  uint32_t shortest = idx_audience_window(x, IDX_AUD_CART_ABANDONERS);
  if (p->last_order && now - p->last_order <= (int64_t)longest * 86400000) {
    *out = (idx_audience){IDX_AUD_BUYERS, longest};
    return 1;
  }
  if (p->cart.n && seen <= (int64_t)shortest * 86400000) {
    *out = (idx_audience){IDX_AUD_CART_ABANDONERS, shortest};
    return 1;
  }
  /* The visitor band: the shortest window that still covers `seen`. */
  uint32_t band = 0;
  for (uint32_t i = 0; i < x->naudiences; i++) {
    uint32_t d = x->audience_days[i];
    if (seen <= (int64_t)d * 86400000 && (!band || d < band)) band = d;
  }
  if (!band) return 0;
  *out = (idx_audience){IDX_AUD_VISITORS, band};
  return 1;
}

int idx_audience_exists(const idx *x, idx_audience a) {
  if (a.kind != IDX_AUD_VISITORS)
    return (unsigned)a.kind < IDX_AUDIENCE_COUNT && a.days &&
           a.days == idx_audience_window(x, a.kind);
  for (uint32_t i = 0; i < x->naudiences; i++)
    if (x->audience_days[i] == a.days) return 1;
  return 0;
}

void idx_audience_sizes(const idx *x, int64_t now, idx_audience_counts *out) {
  memset(out, 0, sizeof *out);
  for (uint32_t i = 0; i < x->people.n; i++) {
    idx_audience in;
    if (x->person[i].canon != i || !idx_person_audience(x, i, now, &in)) continue;
    if (in.kind == IDX_AUD_BUYERS) out->buyers++;
    else if (in.kind == IDX_AUD_CART_ABANDONERS) out->cart_abandoners++;
    else
      for (uint32_t b = 0; b < x->naudiences; b++)
        if (x->audience_days[b] == in.days) out->visitors[b]++;
  }
}

size_t idx_audience_members(const idx *x, idx_audience a, int64_t now,
                            void (*fn)(void *ud, uint32_t person), void *ud) {
  size_t n = 0;
  for (uint32_t i = 0; i < x->people.n; i++) {
    idx_audience in;
    if (x->person[i].canon != i || !idx_person_audience(x, i, now, &in) ||
        in.kind != a.kind || in.days != a.days)
      continue;
    if (fn) fn(ud, i);
    n++;
  }
  return n;
}

size_t idx_watchers(const idx *x, uint32_t item, int64_t now, uint32_t days,
                    uint32_t *out, size_t cap) {
  if (item >= x->watchers_cap) return 0;
  const idx_ids *w = &x->watchers[item];
  int64_t from = now - (int64_t)days * 86400000;
  size_t n = 0;
  for (uint32_t i = w->n; i > 0 && n < cap; i--) {
    uint32_t id = x->person[w->v[i - 1]].canon;
    const idx_person *p = &x->person[id];
    /* A buyer of the item wants no price drop on it, nor a "back in stock". */
    if (p->is_customer && p->last_seen >= from &&
        !ids_has(p->bought.v, p->bought.n, item) && !ids_has(out, n, id))
      out[n++] = id;
  }
  return n;
}

size_t idx_forget(idx *x, const char *customer) {
  uint32_t p = idx_person_lookup(x, 'c', customer);
  if (p == INTERN_NONE) return 0;
  int clustered = x->person[p].cluster != 0;
  size_t kept = 0; /* their orders go too, while canon still names them */
  for (size_t i = 0; i < x->norders; i++)
    if (x->person[x->orders[i].person].canon != p) x->orders[kept++] = x->orders[i];
  x->norders = kept;
  size_t n = 0;
  for (uint32_t q = 0; q < x->people.n; q++) {
    if (x->person[q].canon != p || q == p) continue;
    char key[300];
    snprintf(key, sizeof key, "%s", intern_name(&x->people, q));
    intern_forget(&x->people, key);
    person_clear(&x->person[q]);
    search_forget_person(x->search, q);
    search_forget_person(x->reads, q);
    x->person[q].canon = q;
    n++;
  }
  char key[300];
  idx_person_key(key, sizeof key, 'c', customer);
  intern_forget(&x->people, key);
  person_clear(&x->person[p]);
  search_forget_person(x->search, p);
  search_forget_person(x->reads, p);
  x->person[p].canon = p;
  if (clustered) idx_cluster_forget(x); /* their figures leave the clusters */
  return n + 1;
}

/*
** An erase read from a shared log (EV_ERASE): the customer and sessions are
** named by the SHA-256 of their ids, so the log keeps no byte of them; the
** names this index holds are hashed to find them.  One hash a person and a
** session: erasure is rare, and this keeps nothing more per person.
*/
static int hex_listed(const char *hex, const char *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(hex, list[i])) return 1;
  return 0;
}

size_t idx_forget_hashed(idx *x, const char *customer_hex, const char *const *session_hex,
                         size_t nsessions) {
  char hex[65], name[300];
  size_t n = 0;
  for (uint32_t q = 0; customer_hex && q < x->people.n; q++) {
    const char *key = intern_name(&x->people, q);
    if (!key || key[0] != 'c' || key[1] != ':') continue;
    util_sha256_hex(key + 2, strlen(key + 2), hex);
    if (strcmp(hex, customer_hex)) continue;
    snprintf(name, sizeof name, "%s", key + 2); /* forgetting zeroes the key */
    n += idx_forget(x, name);
    break;
  }
  for (uint32_t q = 0; nsessions && q < x->sessions.n; q++) {
    const char *key = intern_name(&x->sessions, q);
    if (!key || !*key) continue;
    util_sha256_hex(key, strlen(key), hex);
    if (!hex_listed(hex, session_hex, nsessions)) continue;
    snprintf(name, sizeof name, "%s", key);
    idx_forget_session(x, name);
  }
  return n;
}

int idx_forget_session(idx *x, const char *session) {
  uint32_t sid = session ? intern_forget(&x->sessions, session) : INTERN_NONE;
  if (sid == INTERN_NONE) return 0;
  if (sid < x->session_cap) memset(&x->session[sid], 0, sizeof *x->session);
  return 1;
}
