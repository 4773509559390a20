/*
** apply.c: one event into the index (idx_apply).  A catalog event updates
** the item's mirror; a profile updates the customer's consent flags and
** attributes; every other event finds its person (merging a visitor into
** the customer on login, person.c), counts the visit and the session, and
** for each line: the item's counters, co-views within the session's
** window, trending in every segment table it counts in, the person's
** affinities, recent views, cart and watch list; an order adds its
** co-purchases and the customer's RFM figures.  Impressions, clicks and
** orders also go to revenue attribution (attrib.c).
**
** Everything written here is owned by the index.  The caches of segment
** tables (idx.trend_all, trend_key_attr, trend_value_table,
** trend_join_attr, trend_join_table, cat_tables) are derivable and never
** checkpointed.  The event is only read: what is
** kept of it is copied (interned strings, the catalog document).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/internal.h"
#include "index/reads.h"

/*
** The strings an event is looked up by: its customer and visitor (one
** table), its session and the items of its first lines.  Each is measured
** and hashed once and its slot prefetched before the first lookup, so the
** three tables' cache misses overlap (see intern_key).
*/
#define KEYED_LINES 8

typedef struct event_keys {
  char cbuf[300], abuf[300];
  intern_key c, a, s, item[KEYED_LINES];
  /* In a batch, the ids found while fetching ahead (ahead_records):
     INTERN_NONE for a string not there yet.  An id found stays right while
     its table has forgotten nothing since (intern.forgets), so the event's
     turn takes it without a second lookup (known_id). */
  int ahead;
  uint32_t cid, aid, sid, iid[KEYED_LINES];
  uint32_t people_forgets, sessions_forgets, items_forgets;
} event_keys;

static void event_keys_of(const idx *x, const ev *e, event_keys *k) {
  k->ahead = 0;
  if (e->customer) {
    k->c = idx_person_key_of(k->cbuf, sizeof k->cbuf, 'c', e->customer);
    intern_prefetch(&x->people, &k->c);
  }
  if (e->anon) {
    k->a = idx_person_key_of(k->abuf, sizeof k->abuf, 'a', e->anon);
    intern_prefetch(&x->people, &k->a);
  }
  if (e->session) {
    k->s = intern_key_of(e->session);
    intern_prefetch(&x->sessions, &k->s);
  }
  for (size_t l = 0; l < e->n_lines && l < KEYED_LINES; l++) {
    k->item[l] = intern_key_of(e->lines[l].item);
    intern_prefetch(&x->items, &k->item[l]);
  }
}

/* The id found ahead for a string of table t, or INTERN_NONE when it must
   be looked up (or added) now. */
static uint32_t known_id(const event_keys *k, const intern *t, uint32_t id, uint32_t forgets) {
  return k->ahead && t->forgets == forgets ? id : INTERN_NONE;
}

/* The person of people id p (found ahead), or of key pk, added when new.
   (An id without its record, left by running out of memory between the
   two, is put again: that makes the record.) */
static uint32_t person_put(idx *x, char kind, const event_keys *k, const intern_key *pk,
                           uint32_t p) {
  p = known_id(k, &x->people, p, k->people_forgets);
  return p < x->person_cap ? x->person[p].canon : idx_person_put_key(x, kind, pk);
}

/* The person an event is about, created when new; links anon to customer. */
static uint32_t event_person(idx *x, const ev *e, const event_keys *k) {
  uint32_t c = e->customer ? person_put(x, 'c', k, &k->c, k->cid) : INTERN_NONE;
  uint32_t a = e->anon ? person_put(x, 'a', k, &k->a, k->aid) : INTERN_NONE;
  if (c != INTERN_NONE && a != INTERN_NONE && a != c &&
      !x->person[a].is_customer && idx_person_merge(x, a, c))
    return INTERN_NONE;
  return c != INTERN_NONE ? c : a;
}

static void recent_push(idx *x, idx_person *p, uint32_t item) {
  if (!p->recent.cap) { /* one allocation of the final size, not four */
    uint32_t *v = malloc(x->cfg.recent_max * sizeof *v);
    if (v) {
      p->recent.v = v;
      p->recent.cap = x->cfg.recent_max;
    }
  }
  ids_remove(&p->recent, item);
  if (p->recent.n >= x->cfg.recent_max) {
    memmove(p->recent.v, p->recent.v + 1, (p->recent.n - 1) * sizeof *p->recent.v);
    p->recent.n--;
  }
  ids_push(&p->recent, item);
}

static int apply_catalog(idx *x, const ev *e) {
  json_t *item = e->object;
  const char *id = e->type == EV_ITEM_UPSERT
                       ? json_string_value(json_object_get(item, "id"))
                       : (e->n_lines ? e->lines[0].item : NULL);
  if (!id) return TAILOR_OK;
  uint32_t i = idx_item_put(x, id);
  if (i == INTERN_NONE) return TAILOR_ENOMEM;
  idx_item *it = &x->item[i];
  if (e->type == EV_ITEM_DELETE) {
    it->deleted = 1;
    return TAILOR_OK;
  }
  char *doc = json_dumps(item, JSON_COMPACT);
  if (!doc) return TAILOR_ENOMEM;
  it->prev_price = it->price;
  it->prev = (uint8_t)((it->doc && !it->deleted ? IDX_PREV_LISTED : 0) |
                       (it->in_stock && !it->deleted && it->doc ? IDX_PREV_IN_STOCK : 0));
  if (!it->doc && x->uncataloged) x->uncataloged--;
  free(it->doc);
  it->doc = doc;
  it->deleted = 0;
  /* The upsert replaces the catalog object: a price left out is gone, as
     tailor.item and the store show it, not the last one kept for the
     kernels' price filters (and announced by the next drop). */
  json_t *v = json_object_get(item, "price");
  it->price = json_is_number(v) ? json_number_value(v) : 0;
  v = json_object_get(item, "cost");
  it->cost = json_is_number(v) ? json_number_value(v) : 0;
  v = json_object_get(item, "in_stock");
  json_t *stock = json_object_get(item, "stock");
  it->in_stock = v ? !json_is_false(v)
                   : (json_is_number(stock) ? json_number_value(stock) > 0 : 1);
  const char *kind = json_string_value(json_object_get(item, "kind"));
  it->content = kind && !strcmp(kind, "content");
  uint32_t old_category = it->category;
  const char *s = json_string_value(json_object_get(item, "category"));
  it->category = s ? intern_put(&x->categories, s) : INTERN_NONE;
  s = json_string_value(json_object_get(item, "brand"));
  it->brand = s ? intern_put(&x->brands, s) : INTERN_NONE;
  it->ntags = 0;
  json_t *tags = json_object_get(item, "tags");
  for (size_t t = 0; t < json_array_size(tags) && it->ntags < IDX_MAX_TAGS; t++) {
    const char *tag = json_string_value(json_array_get(tags, t));
    uint32_t tid = tag ? intern_put(&x->tags, tag) : INTERN_NONE;
    if (tid != INTERN_NONE && !ids_has(it->tags, it->ntags, tid))
      it->tags[it->ntags++] = tid;
  }
  if (old_category != it->category && idx_content_update(x, i, old_category))
    return TAILOR_ENOMEM;
  return TAILOR_OK;
}

static int set_attr_id(idx *x, idx_person *p, uint32_t k, const char *value) {
  for (uint8_t i = 0; i < p->nattrs; i++) {
    if (p->attrs[i].key != k) continue;
    if (strcmp(intern_name(&x->attrs, p->attrs[i].value), value) != 0) {
      uint32_t v = intern_put(&x->attrs, value);
      if (v == INTERN_NONE) return -1;
      p->attrs[i].value = v;
    }
    return 0;
  }
  if (p->nattrs >= IDX_MAX_ATTRS) return 0; /* full: the profile's first
                                                attributes win */
  uint32_t v = intern_put(&x->attrs, value);
  if (v == INTERN_NONE) return -1;
  idx_attr *more = realloc(p->attrs, (p->nattrs + 1u) * sizeof *more);
  if (!more) return -1;
  p->attrs = more;
  p->attrs[p->nattrs++] = (idx_attr){k, v};
  return 0;
}

static int set_attr(idx *x, idx_person *p, const char *key, const char *value) {
  uint32_t k = intern_put(&x->attrs, key);
  return k == INTERN_NONE ? -1 : set_attr_id(x, p, k, value);
}

/* The attribute id of trend key i, interned once. */
static uint32_t trend_key_attr(idx *x, uint32_t i) {
  if (!x->trend_key_attr[i]) {
    uint32_t a = intern_put(&x->attrs, x->trend_keys[i]);
    if (a == INTERN_NONE) return INTERN_NONE;
    x->trend_key_attr[i] = a + 1;
  }
  return x->trend_key_attr[i] - 1;
}

/*
** quiz_answer: the attributes the answer sets, as the host checked them
** against the strategy's quiz and wrote them into the event (props.sets),
** with their source ("quiz:<id>") and the event's time.
*/
static int apply_quiz(idx *x, idx_person *p, const ev *e) {
  json_t *sets = json_object_get(e->props, "sets");
  json_t *q = json_object_get(e->props, "quiz");
  char src[160];
  if (json_is_integer(q)) /* stored before ids were written as text */
    snprintf(src, sizeof src, "quiz:%lld", (long long)json_integer_value(q));
  else
    snprintf(src, sizeof src, "quiz:%.120s", json_is_string(q) ? json_string_value(q) : "");
  const char *k;
  json_t *v;
  json_object_foreach(sets, k, v) {
    const char *val = json_string_value(v);
    if (!val || strlen(k) > IDX_MAX_PREF_BYTES || strlen(val) > IDX_MAX_PREF_BYTES) continue;
    idx_pref pr = {intern_put(&x->attrs, k), intern_put(&x->attrs, val),
                   intern_put(&x->attrs, src), e->ts};
    if (pr.key == INTERN_NONE || pr.value == INTERN_NONE || pr.source == INTERN_NONE ||
        idx_pref_set(p, &pr))
      return -1;
  }
  return 0;
}

/* pref_removed: the visitor takes back the preference props.key (checked
   at ingest); one given after the removal (a later time) stays. */
static void apply_pref_removed(idx *x, idx_person *p, const ev *e) {
  const char *key = ev_attr_get(e, "key");
  uint32_t k = key ? intern_get(&x->attrs, key) : INTERN_NONE;
  if (k != INTERN_NONE) idx_pref_remove(p, k, e->ts);
}

/* The purposes `purposes` names (analytics, personalization, marketing:
   true or false; one left out is unchanged) set or clear the person's
   IDX_NO_* flags: a consent event's props, or a profile's consent. */
static void apply_purposes(idx_person *p, const json_t *purposes, int profile) {
  static const struct { const char *purpose; uint8_t declined; } f[] = {
      {"analytics", IDX_NO_ANALYTICS}, {"personalization", IDX_NO_PERSONALIZATION},
      {"marketing", IDX_NO_MARKETING}};
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
    json_t *v = json_object_get(purposes, f[i].purpose);
    if (!json_is_boolean(v)) continue;
    uint8_t declined = f[i].declined;
    if (declined == IDX_NO_MARKETING) {
      /* An unsubscribe link's decline (IDX_UNSUBSCRIBED, index.h) holds
         against a profile; the customer's own consent lifts it. */
      if (json_is_true(v) && profile && (p->flags & IDX_UNSUBSCRIBED)) continue;
      const char *source = json_string_value(json_object_get(purposes, "source"));
      if (json_is_true(v) || (!profile && source && !strcmp(source, "unsubscribe")))
        declined |= IDX_UNSUBSCRIBED;
    }
    p->flags = (uint8_t)(json_is_true(v) ? p->flags & ~declined : p->flags | declined);
  }
}

/* customer_upsert: string attributes of the profile ("attrs"). */
static int apply_profile(idx *x, const ev *e) {
  uint32_t pid = idx_person_put(x, 'c', e->customer);
  if (pid == INTERN_NONE) return TAILOR_ENOMEM;
  json_t *doc = e->object;
  json_t *consent = json_object_get(doc, "consent");
  idx_person *p = &x->person[pid];
  /* Consent is given for an address: another email (phone) without its
     own consent in the same profile has none, as the store keeps it. */
  static const struct { const char *addr, *consent; uint8_t has, flag; int shift; } a[] = {
      {"email", "email", IDX_HAS_EMAIL, IDX_CONSENT_EMAIL, 0},
      {"phone", "sms", IDX_HAS_PHONE, IDX_CONSENT_SMS, 16}};
  for (size_t i = 0; i < sizeof a / sizeof *a; i++) {
    const char *addr = json_string_value(json_object_get(doc, a[i].addr));
    if (!addr || !*addr) continue;
    uint32_t h = (uint32_t)(intern_hash(addr, strlen(addr)) & 0xffff) << a[i].shift;
    uint32_t mask = 0xffffu << a[i].shift;
    if ((p->flags & a[i].has) && (p->contact & mask) != h && !json_object_get(consent, a[i].consent))
      p->flags = (uint8_t)(p->flags & ~a[i].flag);
    p->contact = (p->contact & ~mask) | h;
  }
  /* An upsert changes what it names and keeps the rest, as the store does
     for email and phone. */
  static const struct { const char *key; int in_consent; uint8_t flag; } f[] = {
      {"email", 1, IDX_CONSENT_EMAIL}, {"sms", 1, IDX_CONSENT_SMS},
      {"email", 0, IDX_HAS_EMAIL}, {"phone", 0, IDX_HAS_PHONE}};
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
    json_t *v = json_object_get(f[i].in_consent ? consent : doc, f[i].key);
    if (!v) continue;
    int on = f[i].in_consent ? json_is_true(v) : json_string_length(v) > 0;
    p->flags = (uint8_t)(on ? p->flags | f[i].flag : p->flags & ~f[i].flag);
  }
  /* The shop's record of the purposes is the customer's choice as a
     consent event gives it: "marketing": false keeps them out of every
     audience and email, as docs/strategies.md says. */
  apply_purposes(p, consent, 1);
  json_t *attrs = json_object_get(doc, "attrs");
  const char *k;
  json_t *v;
  json_object_foreach(attrs, k, v) {
    /* Zero-party answers may be lists ("interests": ["running", "yoga"]):
       kept as one comma-separated value, matched with string.find. */
    char joined[512] = "";
    const char *value = json_string_value(v);
    if (json_is_array(v)) {
      size_t i, n = 0;
      json_t *one;
      json_array_foreach(v, i, one) {
        if (json_is_string(one) && n < sizeof joined - 1)
          n += (size_t)snprintf(joined + n, sizeof joined - n, "%s%s", n ? "," : "",
                                json_string_value(one));
      }
      value = joined;
    } else if (json_is_number(v)) {
      snprintf(joined, sizeof joined, "%g", json_number_value(v));
      value = joined;
    }
    if (value && *value && *k && set_attr(x, &x->person[pid], k, value))
      return TAILOR_ENOMEM;
  }
  return TAILOR_OK;
}

/* What an event says about the visit for the segment keys (props.country,
   props.device, ...) becomes the person's latest value. */
static int apply_visit_attrs(idx *x, idx_person *p, const ev *e) {
  /* Events carry few props: walk them rather than look up every key. */
  for (size_t j = 0; j < e->n_attrs; j++) {
    for (uint32_t i = 0; i < x->ntrend_keys; i++) {
      const char *key = e->attrs[j].key; /* first letters first: most differ */
      if (key[0] != x->trend_keys[i][0] || strcmp(key, x->trend_keys[i]) != 0) continue;
      uint32_t a = trend_key_attr(x, i);
      if (a == INTERN_NONE || set_attr_id(x, p, a, e->attrs[j].value)) return -1;
    }
  }
  return 0;
}

/* The attribute id of one side (0: left, 1: right) of joined key k. */
static uint32_t join_attr(idx *x, uint32_t k, int side) {
  if (!x->trend_join_attr[k][side]) {
    const char *key = x->trend_keys[k], *plus = strchr(key, '+');
    char part[64];
    if (side == 0)
      snprintf(part, sizeof part, "%.*s", (int)(plus - key), key);
    else
      snprintf(part, sizeof part, "%s", plus + 1);
    uint32_t a = intern_put(&x->attrs, part);
    if (a == INTERN_NONE) return INTERN_NONE;
    x->trend_join_attr[k][side] = a + 1;
  }
  return x->trend_join_attr[k][side] - 1;
}

static uint32_t attr_value(const idx_person *p, uint32_t key) {
  uint32_t value = INTERN_NONE;
  for (uint8_t i = 0; i < p->nattrs; i++)
    if (p->attrs[i].key == key) value = p->attrs[i].value;
  return value;
}

static int pair_cache_grow(idx_pair_cache *c) {
  uint32_t size = c->size ? c->size * 2 : 16;
  struct idx_pair_slot *slot = calloc(size, sizeof *slot);
  if (!slot) return -1;
  for (uint32_t i = 0; i < c->size; i++) {
    if (!c->slot[i].table) continue;
    uint32_t j = (c->slot[i].a * 2654435761u ^ c->slot[i].b * 0x9e3779b1u) & (size - 1);
    while (slot[j].table) j = (j + 1) & (size - 1);
    slot[j] = c->slot[i];
  }
  free(c->slot);
  c->slot = slot;
  c->size = size;
  return 0;
}

/* The table of joined key k ("country+gender") for a person: its two
   attribute values, as "DE|f", looked up by their ids after the first
   time (the name is built only for a pair not seen before). */
static uint32_t joined_table(idx *x, uint32_t k, const idx_person *p) {
  uint32_t ka = join_attr(x, k, 0), kb = join_attr(x, k, 1);
  if (ka == INTERN_NONE || kb == INTERN_NONE) return INTERN_NONE;
  uint32_t a = attr_value(p, ka), b = attr_value(p, kb);
  if (a == INTERN_NONE || b == INTERN_NONE) return INTERN_NONE;
  idx_pair_cache *c = &x->trend_join_table[k];
  if ((c->used + 1) * 2 > c->size && pair_cache_grow(c)) return INTERN_NONE;
  uint32_t mask = c->size - 1, j = (a * 2654435761u ^ b * 0x9e3779b1u) & mask;
  for (; c->slot[j].table; j = (j + 1) & mask)
    if (c->slot[j].a == a && c->slot[j].b == b) return c->slot[j].table - 1;
  char value[256];
  snprintf(value, sizeof value, "%s|%s", intern_name(&x->attrs, a), intern_name(&x->attrs, b));
  uint32_t t = trend_table_id(&x->trend, x->trend_keys[k], value, 1);
  if (t == INTERN_NONE) return INTERN_NONE; /* no room for tables: not cached */
  c->slot[j] = (struct idx_pair_slot){a, b, t + 1};
  c->used++;
  return t;
}

/* The trend tables of a category's levels ("Women", "Women/Shoes", ...),
   looked up once per category. */
#define CAT_PARTIAL 0x80000000u /* cat_tables[c][0]: a level had no table */

static const uint32_t *category_tables(idx *x, uint32_t cat) {
  if (cat >= x->cat_tables_cap) {
    uint32_t n = x->cat_tables_cap ? x->cat_tables_cap : 64;
    while (n <= cat) n *= 2;
    void *p = realloc(x->cat_tables, n * sizeof *x->cat_tables);
    if (!p) return NULL;
    x->cat_tables = p;
    memset(x->cat_tables + x->cat_tables_cap, 0,
           (n - x->cat_tables_cap) * sizeof *x->cat_tables);
    x->cat_tables_cap = n;
  }
  uint32_t *c = x->cat_tables[cat];
  if (c[0] && !(c[0] & CAT_PARTIAL)) return c;
  const char *path = intern_name(&x->categories, cat);
  char value[256];
  uint32_t n = 0;
  int missing = 0;
  for (const char *p = path; p; p++) {
    if ((*p == '/' || *p == '\0') && p > path) {
      snprintf(value, sizeof value, "%.*s", (int)(p - path), path);
      uint32_t t = trend_table_id(&x->trend, "category", value, 1);
      if (t != INTERN_NONE) c[1 + n++] = t;
      else missing = 1;
      if (n == IDX_MAX_CATEGORY_DEPTH) break;
    }
    if (!*p) break;
  }
  /* Kept once every level has its table; a level refused (no table left)
     is asked for again next time (CAT_PARTIAL), not left out for good. */
  c[0] = (n + 1) | (missing ? CAT_PARTIAL : 0);
  return c;
}

/* The table of a simple trend key's value for a person, or INTERN_NONE. */
static uint32_t key_table(idx *x, uint32_t k, const idx_person *p) {
  const char *key = x->trend_keys[k];
  uint32_t value = attr_value(p, trend_key_attr(x, k));
  if (value == INTERN_NONE) return INTERN_NONE;
  idx_ids *cache = &x->trend_value_table[k];
  while (cache->n <= value)
    if (ids_push(cache, 0)) return INTERN_NONE;
  if (!cache->v[value]) {
    uint32_t t = trend_table_id(&x->trend, key, intern_name(&x->attrs, value), 1);
    if (t == INTERN_NONE) return INTERN_NONE;
    cache->v[value] = t + 1;
  }
  return cache->v[value] - 1;
}

/*
** Every trend table a line of an event counts in: everyone's, the item's
** category levels and the person's segment values, in the order of the
** keys.  Their slots for the item are far apart in memory, so they are
** asked for here, before the line's other work, and added to after it
** (bump_trending) without waiting for each in turn.  -1 when out of memory.
*/
#define TREND_TABLES_MAX (1 + IDX_MAX_TREND_KEYS * IDX_MAX_CATEGORY_DEPTH)

static int trending_tables(idx *x, uint32_t pid, uint32_t item, uint32_t *tables) {
  if (!x->trend_all) {
    uint32_t t = trend_table_id(&x->trend, "", "", 1);
    if (t == INTERN_NONE) return -1;
    x->trend_all = t + 1;
  }
  int n = 0;
  tables[n++] = x->trend_all - 1;
  const idx_person *p = pid == INTERN_NONE ? NULL : &x->person[pid];
  for (uint32_t i = 0; i < x->ntrend_keys; i++) {
    if (x->trend_key_kind[i] == IDX_KEY_CATEGORY) {
      uint32_t cat = x->item[item].category;
      const uint32_t *levels = cat == INTERN_NONE ? NULL : category_tables(x, cat);
      for (uint32_t l = 1; levels && l < (levels[0] & ~CAT_PARTIAL); l++) tables[n++] = levels[l];
    } else if (p) {
      uint32_t t = x->trend_key_kind[i] == IDX_KEY_JOINED ? joined_table(x, i, p)
                                                          : key_table(x, i, p);
      if (t != INTERN_NONE) tables[n++] = t;
    }
  }
  for (int i = 0; i < n; i++) trend_prefetch(&x->trend, tables[i], item);
  return n;
}

static int bump_trending(idx *x, const uint32_t *tables, int n, uint32_t item,
                         int64_t ts, double w) {
  w *= trend_event_weight(&x->trend, ts);
  for (int i = 0; i < n; i++)
    if (trend_add(&x->trend, tables[i], item, w)) return -1;
  return 0;
}

static int window_of(idx *x, uint32_t sid) {
  if (sid < x->window_cap) return 0;
  uint32_t n = x->window_cap ? x->window_cap : 1024;
  while (n <= sid) n *= 2;
  void *w = realloc(x->window, n * sizeof *x->window);
  if (!w) return -1;
  x->window = w;
  uint8_t *wn = realloc(x->window_n, n);
  if (!wn) return -1;
  x->window_n = wn;
  memset(x->window_n + x->window_cap, 0, n - x->window_cap);
  x->window_cap = n;
  return 0;
}

/*
** Co-view: a viewed item pairs with the latest distinct items of the same
** session (or, without a session id, of the person's recent views).
*/
static int apply_coview(idx *x, idx_person *p, uint32_t sid, uint32_t item,
                        int64_t ts) {
  uint32_t *win, wn, W = x->cfg.coview_window;
  if (sid != INTERN_NONE) {
    if (window_of(x, sid)) return -1;
    win = x->window[sid];
    wn = x->window_n[sid];
  } else if (p) {
    wn = p->recent.n > W ? W : p->recent.n;
    win = p->recent.v + (p->recent.n - wn);
  } else {
    return 0;
  }
  if (ids_has(win, wn, item)) return 0; /* a re-view adds nothing */
  if (sid != INTERN_NONE && sid < x->session_cap && x->session[sid].distinct < UINT16_MAX)
    x->session[sid].distinct++;
  double w = cooc_event_weight(&x->coview, ts);
  if (cooc_add_item_w(&x->coview, item, w)) return -1;
  for (uint32_t j = 0; j < wn; j++)
    if (cooc_add_pair_w(&x->coview, item, win[j], w)) return -1;
  if (sid != INTERN_NONE) { /* newest last, oldest dropped */
    if (wn == W) {
      memmove(win, win + 1, (W - 1) * sizeof *win);
      wn--;
    }
    win[wn++] = item;
    x->window_n[sid] = (uint8_t)wn;
  }
  return 0;
}

/* Co-purchase: the lines of an order pair with each other, and with the
   customer's earlier purchases at a lower weight. */
static int apply_copurchase(idx *x, idx_person *p, const ev *e,
                            const uint32_t *items, size_t n) {
  double w = cooc_event_weight(&x->copurchase, e->ts);
  for (size_t a = 0; a < n; a++) {
    if (cooc_add_item_w(&x->copurchase, items[a], w)) return -1;
    for (size_t b = a + 1; b < n; b++)
      if (cooc_add_pair_w(&x->copurchase, items[a], items[b], w)) return -1;
    if (!p || x->cfg.cross_order_weight <= 0) continue;
    uint32_t from = p->bought.n > IDX_CROSS_ORDER_ITEMS
                        ? p->bought.n - IDX_CROSS_ORDER_ITEMS : 0;
    for (uint32_t b = from; b < p->bought.n; b++)
      if (!ids_has(items, n, p->bought.v[b]) &&
          cooc_add_pair_w(&x->copurchase, items[a], p->bought.v[b],
                          w * x->cfg.cross_order_weight))
        return -1;
  }
  return 0;
}

/* Remember a customer as interested in an item (latest last, no repeats,
   the oldest dropped past IDX_MAX_WATCHERS). */
static int watch(idx *x, uint32_t item, uint32_t person) {
  if (item >= x->watchers_cap) {
    uint32_t n = x->watchers_cap ? x->watchers_cap : 1024;
    while (n <= item) n *= 2;
    idx_ids *w = realloc(x->watchers, n * sizeof *w);
    if (!w) return -1;
    memset(w + x->watchers_cap, 0, (n - x->watchers_cap) * sizeof *w);
    x->watchers = w;
    x->watchers_cap = n;
  }
  idx_ids *w = &x->watchers[item];
  ids_remove(w, person);
  if (w->n >= IDX_MAX_WATCHERS) {
    memmove(w->v, w->v + 1, (w->n - 1) * sizeof *w->v);
    w->n--;
  }
  return ids_push(w, person);
}

static int session_grow(idx *x, uint32_t sid) {
  if (sid < x->session_cap) return 0;
  uint32_t n = x->session_cap ? x->session_cap : 1024;
  while (n <= sid) n *= 2;
  idx_session *ss = realloc(x->session, n * sizeof *ss);
  if (!ss) return -1;
  memset(ss + x->session_cap, 0, (n - x->session_cap) * sizeof *ss);
  x->session = ss;
  x->session_cap = n;
  return 0;
}

const char *const idx_source_fields[IDX_SOURCE_FIELDS] = {"medium", "source", "campaign",
                                                           "device"};

/* The session's traffic source: from the first of its events whose props
   name a medium (the storefront parses it once a session). */
static int apply_source(idx *x, idx_session *s, const ev *e) {
  if (s->source[0] || !e->n_attrs || !ev_attr_get(e, "medium")) return 0;
  for (int f = 0; f < IDX_SOURCE_FIELDS; f++) {
    const char *v = ev_attr_get(e, idx_source_fields[f]);
    uint32_t id = v && strlen(v) < 128 ? intern_put(&x->attrs, v) : INTERN_NONE;
    if (v && strlen(v) < 128 && id == INTERN_NONE) return -1;
    s->source[f] = id == INTERN_NONE ? 0 : id + 1;
  }
  return 0;
}

/* Counters of the session an event belongs to. */
static int apply_session(idx *x, uint32_t sid, const ev *e) {
  if (session_grow(x, sid)) return -1;
  idx_session *s = &x->session[sid];
  if (apply_source(x, s, e)) return -1;
  if (!s->first_ts || e->ts < s->first_ts) s->first_ts = e->ts;
  if (e->ts > s->last_ts) s->last_ts = e->ts;
  switch (e->type) {
    /* 16-bit counts stop at their top rather than wrap to 0 (a popup
       shown 65,536 times in one session is still shown). */
    case EV_VIEW: s->views += s->views < UINT16_MAX; break;
    case EV_PAGE_VIEW: s->pages += s->pages < UINT16_MAX; break;
    case EV_ADD_TO_CART: s->carts += s->carts < UINT16_MAX; break;
    case EV_EXIT_INTENT: s->exit_intents += s->exit_intents < UINT16_MAX; break;
    case EV_PAGE_HIDDEN: s->hidden += s->hidden < UINT16_MAX; break;
    case EV_POPUP_SHOWN: s->popups_shown += s->popups_shown < UINT16_MAX; break;
    case EV_PURCHASE: s->purchased = 1; break;
    default: break;
  }
  return 0;
}

/* The decayed weight of an interest at `ts`, rescaling every person's
   affinities first when the origin is far behind (see decay.h). */
static double affinity_weight(idx *x, int64_t ts) {
  if (decay_should_rebase(&x->aff_decay, ts)) {
    float sc = (float)decay_scale(&x->aff_decay, ts);
    for (uint32_t i = 0; i < x->people.n; i++)
      for (uint8_t a = 0; a < x->person[i].naff; a++) x->person[i].aff[a].w *= sc;
    x->aff_decay.t0 = ts;
  }
  return decay_weight(&x->aff_decay, ts);
}

/* An erase from a shared log: {"customer_sha256": HEX, "sessions_sha256": [HEX...]}. */
static int apply_erase(idx *x, const ev *e) {
  json_t *ss = json_object_get(e->props, "sessions_sha256");
  size_t n = json_array_size(ss), k = 0;
  const char **hex = malloc((n ? n : 1) * sizeof *hex);
  if (!hex) return TAILOR_ENOMEM;
  for (size_t i = 0; i < n; i++)
    if (json_is_string(json_array_get(ss, i))) hex[k++] = json_string_value(json_array_get(ss, i));
  idx_forget_hashed(x, json_string_value(json_object_get(e->props, "customer_sha256")), hex, k);
  free(hex);
  return TAILOR_OK;
}

/* Whether an event is the person on the site: not an email tailor sent or
   one they opened, a refund the shop's backend made, or a consent that a
   confirmation link or the backend recorded.  The others count as a visit
   and move last_seen (the audiences' recency, days_since_visit); these
   would put a lapsed customer back among yesterday's visitors with every
   win-back email. */
static int on_site(ev_type t) {
  return t != EV_EMAIL_SENT && t != EV_EMAIL_OPENED && t != EV_REFUND && t != EV_CONSENT;
}

/*
** ** Refunds
**
** A refund names the order by its id.  The person's orders are found by
** a chain through idx.orders (prev, from order_head), so a refund costs
** the person's orders, not the shop's; orders placed before an anonymous
** visitor signed in hang off the visitor's id, and only when the chain
** holds fewer orders than the person has are all orders searched.
*/

static uint64_t order_key(const char *order_id) {
  uint64_t k = intern_hash(order_id, strlen(order_id));
  return k ? k : 1;
}

/* The chains, built when first needed and again after a forget. */
static void order_chains(idx *x) {
  if (x->order_chains && x->order_chains_forgets == x->people.forgets) return;
  for (uint32_t i = 0; i < x->people.n; i++) x->person[i].order_head = 0;
  for (size_t i = 0; i < x->norders; i++) {
    idx_person *p = &x->person[x->orders[i].person];
    x->orders[i].prev = p->order_head;
    p->order_head = (uint32_t)(i + 1);
  }
  x->order_chains = 1;
  x->order_chains_forgets = x->people.forgets;
}

/* Calls fn on each of person pid's orders not refunded in full, newest
   first along the chain; the whole table when the chain misses some.
   Stops when fn returns nonzero. */
static void each_order(idx *x, uint32_t pid, int (*fn)(idx_value_order *, void *),
                       void *ud) {
  uint32_t live = 0;
  for (uint32_t i = x->person[pid].order_head; i; i = x->orders[i - 1].prev) {
    idx_value_order *o = &x->orders[i - 1];
    if (o->refunded) continue;
    live++;
    if (fn(o, ud)) return;
  }
  if (live >= x->person[pid].orders) return;
  for (size_t i = x->norders; i > 0; i--) {
    idx_value_order *o = &x->orders[i - 1];
    if (!o->refunded && o->person != pid && x->person[o->person].canon == pid && fn(o, ud))
      return;
  }
}

typedef struct refund_find {
  uint64_t key;
  idx_value_order *found;
} refund_find;

static int find_order(idx_value_order *o, void *ud) {
  refund_find *f = ud;
  if (o->key != f->key) return 0;
  f->found = o;
  return 1;
}

static int span_order(idx_value_order *o, void *ud) {
  idx_person *p = ud;
  if (!p->first_order || o->ts < p->first_order) p->first_order = o->ts;
  if (o->ts > p->last_order) p->last_order = o->ts;
  return 0;
}

/*
** A refund of one of the person's orders: its revenue, or the refund's
** when that is given and smaller (a partial refund), comes off the
** person's and the order's; a full refund also takes the order out of
** their count and history (first and last order, the value model's and
** its check's) as if it had not been placed.  A refund of an order
** refunded in full, or of one not theirs or unknown, changes nothing.
*/
static void apply_refund(idx *x, uint32_t pid, const ev *e) {
  order_chains(x);
  refund_find f = {order_key(e->order_id), NULL};
  each_order(x, pid, find_order, &f);
  idx_value_order *o = f.found;
  if (!o) return;
  idx_person *p = &x->person[pid];
  int full = !e->has_revenue || !(e->revenue < o->revenue);
  double amount = full ? o->revenue : e->revenue;
  o->revenue -= amount;
  p->revenue = p->revenue > amount ? p->revenue - amount : 0;
  if (!full) return;
  o->refunded = 1;
  o->revenue = 0;
  if (p->orders) p->orders--;
  p->first_order = p->last_order = 0;
  if (p->orders) each_order(x, pid, span_order, p);
}

/* Catalog, profile and erase events are applied without keys. */
static int keyed(const ev *e) {
  return e->type != EV_ITEM_UPSERT && e->type != EV_ITEM_DELETE &&
         e->type != EV_CUSTOMER_UPSERT && e->type != EV_ERASE;
}

static int apply_keyed(idx *x, const ev *e, const event_keys *k);

int idx_apply(idx *x, const ev *e) {
  event_keys keys;
  if (keyed(e)) event_keys_of(x, e, &keys);
  return apply_keyed(x, e, &keys);
}

/*
** Many events, each fetched ahead while earlier ones are applied, in
** stages: three events ahead an event's strings are hashed and their
** slots asked for (event_keys_of); two ahead, the strings the slots refer
** to; one ahead, its person, session and items are looked up (without
** adding them) and their records asked for.  By its turn much of what it
** touches is in the cache.  What is fetched ahead is only a hint: an
** event applied meanwhile may move the tables, and the event is then
** looked up again as usual.  (Fetching the trend tables' slots one event
** earlier as well measured no faster.)
*/
#define AHEAD 3

static void ahead_entries(const idx *x, const ev *e, const event_keys *k) {
  if (e->customer) intern_prefetch_entry(&x->people, &k->c);
  if (e->anon) intern_prefetch_entry(&x->people, &k->a);
  if (e->session) intern_prefetch_entry(&x->sessions, &k->s);
  for (size_t l = 0; l < e->n_lines && l < KEYED_LINES; l++)
    intern_prefetch_entry(&x->items, &k->item[l]);
}

static void prefetch_lines(const void *p, size_t bytes) {
  for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch((const char *)p + o, 1);
}

static void ahead_records(const idx *x, const ev *e, event_keys *k) {
  k->ahead = 1;
  k->people_forgets = x->people.forgets;
  k->sessions_forgets = x->sessions.forgets;
  k->items_forgets = x->items.forgets;
  k->cid = e->customer ? intern_get_key(&x->people, &k->c) : INTERN_NONE;
  k->aid = e->anon ? intern_get_key(&x->people, &k->a) : INTERN_NONE;
  uint32_t pid = k->cid != INTERN_NONE ? k->cid : k->aid, sid = INTERN_NONE;
  if (pid < x->person_cap) prefetch_lines(&x->person[pid], sizeof *x->person);
  if (e->session) sid = intern_get_key(&x->sessions, &k->s);
  k->sid = sid;
  if (sid < x->session_cap) __builtin_prefetch(&x->session[sid], 1);
  if (sid < x->window_cap) __builtin_prefetch(&x->window[sid], 1);
  for (size_t l = 0; l < e->n_lines && l < KEYED_LINES; l++) {
    uint32_t i = k->iid[l] = intern_get_key(&x->items, &k->item[l]);
    if (i >= x->item_cap) continue;
    __builtin_prefetch(&x->item[i], 1);
    if (x->trend_all) trend_prefetch(&x->trend, x->trend_all - 1, i);
    if (e->type == EV_VIEW) {
      if (i < x->coview.nitems) __builtin_prefetch(&x->coview.lists[i], 1);
      if (sid != INTERN_NONE) sknn_prefetch(x->sknn, sid, i);
    }
  }
}

int idx_apply_batch(idx *x, const ev *const *evs, size_t n, int *rcs) {
  event_keys keys[AHEAD + 1];
  int rc = TAILOR_OK;
  for (size_t i = 0; i < n + AHEAD; i++) {
    if (i < n && keyed(evs[i])) event_keys_of(x, evs[i], &keys[i % (AHEAD + 1)]);
    if (i >= 1 && i - 1 < n && keyed(evs[i - 1]))
      ahead_entries(x, evs[i - 1], &keys[(i - 1) % (AHEAD + 1)]);
    if (i >= 2 && i - 2 < n && keyed(evs[i - 2]))
      ahead_records(x, evs[i - 2], &keys[(i - 2) % (AHEAD + 1)]);
    if (i < AHEAD) continue;
    size_t j = i - AHEAD;
    int one = apply_keyed(x, evs[j], &keys[j % (AHEAD + 1)]);
    if (rcs) rcs[j] = one;
    if (one != TAILOR_OK && rc == TAILOR_OK) rc = one;
  }
  return rc;
}

static int apply_keyed(idx *x, const ev *e, const event_keys *k) {
  x->applied++;
  if (e->ts > x->last_ts) x->last_ts = e->ts;
  if (e->type == EV_ITEM_UPSERT || e->type == EV_ITEM_DELETE)
    return apply_catalog(x, e);
  if (e->type == EV_CUSTOMER_UPSERT) return apply_profile(x, e);
  if (e->type == EV_ERASE) return apply_erase(x, e);
  uint32_t pid = event_person(x, e, k);
  idx_person *p = pid == INTERN_NONE ? NULL : &x->person[pid];
  uint32_t sid = INTERN_NONE;
  if (e->session && (sid = known_id(k, &x->sessions, k->sid, k->sessions_forgets)) == INTERN_NONE &&
      (sid = intern_put_key(&x->sessions, &k->s)) == INTERN_NONE)
    return TAILOR_ENOMEM;
  /* The session is a returning visitor's when it starts a visit of someone
     seen before. */
  int returning = p && sid != INTERN_NONE && p->last_session != sid + 1 && p->visits > 0;
  if (p && on_site(e->type)) {
    /* A visit: a new session id, or activity after a long pause. */
    if (sid != INTERN_NONE ? p->last_session != sid + 1
                           : (!p->last_seen || e->ts - p->last_seen > IDX_VISIT_GAP_MS))
      p->visits++;
    if (sid != INTERN_NONE) p->last_session = sid + 1;
    if (!p->first_seen || e->ts < p->first_seen) p->first_seen = e->ts;
    if (e->ts > p->last_seen) p->last_seen = e->ts;
    if (apply_visit_attrs(x, p, e)) return TAILOR_ENOMEM;
  }
  if (sid != INTERN_NONE && apply_session(x, sid, e)) return TAILOR_ENOMEM;
  if (sid != INTERN_NONE && returning) x->session[sid].returning = 1;
  if (idx_attrib_apply(x, pid, sid, e)) return TAILOR_ENOMEM;
  if (p && e->type == EV_SEARCH && search_note(x->search, pid, sid, e->query, e->ts))
    return TAILOR_ENOMEM;
  if (e->type == EV_POPUP_SHOWN) {
    const char *pool = ev_attr_get(e, "coupon");
    uint32_t id = pool ? intern_get(&x->coupons, pool) : INTERN_NONE;
    if (id != INTERN_NONE) x->coupon_used.v[id]++;
  }
  if (p && e->type == EV_CONSENT) apply_purposes(p, e->props, 0);
  if (p && e->type == EV_REFUND && e->order_id) apply_refund(x, pid, e);
  if (p && e->type == EV_QUIZ_ANSWER && apply_quiz(x, p, e)) return TAILOR_ENOMEM;
  if (p && e->type == EV_PREF_REMOVED) apply_pref_removed(x, p, e);
  if (p && e->type == EV_EMAIL_SENT) {
    p->emails++;
    if (e->ts > p->last_email) p->last_email = e->ts;
  }
  double aff_w = 0;
  if (p && (e->type == EV_VIEW || e->type == EV_ADD_TO_CART || e->type == EV_PURCHASE))
    aff_w = affinity_weight(x, e->ts) *
            (e->type == EV_VIEW ? IDX_TREND_VIEW
             : e->type == EV_ADD_TO_CART ? IDX_TREND_CART : IDX_TREND_PURCHASE);
  uint32_t order[IDX_MAX_ORDER_LINES];
  size_t norder = 0;
  for (size_t l = 0; l < e->n_lines; l++) {
    uint32_t i = l < KEYED_LINES ? known_id(k, &x->items, k->iid[l], k->items_forgets)
                                 : INTERN_NONE;
    if (i >= x->item_cap) /* not found ahead (or without its record, as above) */
      i = l < KEYED_LINES ? idx_item_put_key(x, &k->item[l]) : idx_item_put(x, e->lines[l].item);
    if (i == INTERN_NONE) return TAILOR_ENOMEM;
    p = pid == INTERN_NONE ? NULL : &x->person[pid]; /* idx_item_put may move */
    idx_item *it = &x->item[i];
    if (!it->doc && e->lines[l].price > 0) it->price = e->lines[l].price;
    int rc = 0;
    uint32_t tables[TREND_TABLES_MAX];
    int ntables = 0;
    if (e->type == EV_VIEW && sid != INTERN_NONE) sknn_prefetch(x->sknn, sid, i);
    if (e->type == EV_VIEW) cooc_prefetch(&x->coview, i);
    if (e->type == EV_VIEW || e->type == EV_ADD_TO_CART || e->type == EV_PURCHASE)
      if ((ntables = trending_tables(x, pid, i, tables)) < 0) return TAILOR_ENOMEM;
    if (p && p->is_customer && (e->type == EV_VIEW || e->type == EV_ADD_TO_CART) &&
        watch(x, i, pid))
      return TAILOR_ENOMEM;
    if (aff_w > 0 && p &&
        ((it->category != INTERN_NONE && idx_affinity_add(p, it->category, (float)aff_w)) ||
         (it->brand != INTERN_NONE && idx_affinity_add(p, it->brand | IDX_AFF_BRAND, (float)aff_w))))
      return TAILOR_ENOMEM;
    switch (e->type) {
      case EV_VIEW:
        it->views++;
        if (sid != INTERN_NONE && sknn_add_item(x->sknn, sid, i, (int64_t)sid) == TAILOR_ENOMEM)
          return TAILOR_ENOMEM;
        rc = apply_coview(x, p, sid, i, e->ts) ||
             bump_trending(x, tables, ntables, i, e->ts, IDX_TREND_VIEW);
        if (!rc && p) rc = reads_view(x, pid, sid, i, e->ts);
        if (p) recent_push(x, p, i);
        break;
      case EV_ADD_TO_CART:
        it->carts++;
        rc = bump_trending(x, tables, ntables, i, e->ts, IDX_TREND_CART) ||
             (p && !ids_has(p->cart.v, p->cart.n, i) && ids_push(&p->cart, i));
        break;
      case EV_REMOVE_FROM_CART:
        if (p) ids_remove(&p->cart, i);
        break;
      case EV_PURCHASE:
        it->purchases++;
        x->order_lines++;
        rc = bump_trending(x, tables, ntables, i, e->ts, IDX_TREND_PURCHASE);
        if (norder < IDX_MAX_ORDER_LINES && !ids_has(order, norder, i))
          order[norder++] = i;
        break;
      default:
        break;
    }
    if (!rc && aff_w > 0) /* what a search led to (search.h) */
      rc = search_credit(x->search, pid, sid, i,
                         e->type == EV_VIEW ? IDX_TREND_VIEW
                         : e->type == EV_ADD_TO_CART ? IDX_TREND_CART : IDX_TREND_PURCHASE,
                         e->ts);
    if (!rc && p && e->type != EV_VIEW && aff_w > 0) /* what a read led to (reads.h) */
      rc = reads_credit(x, pid, sid, i,
                        e->type == EV_ADD_TO_CART ? IDX_TREND_CART : IDX_TREND_PURCHASE, e->ts);
    if (rc) return TAILOR_ENOMEM;
  }
  if (e->type == EV_PURCHASE) {
    x->orders_seen++;
    if (pid != INTERN_NONE) { /* the value check's history (index.h) */
      if (x->norders == x->orders_cap) {
        size_t cap = x->orders_cap ? 2 * x->orders_cap : 1024;
        idx_value_order *more = realloc(x->orders, cap * sizeof *more);
        if (!more) return TAILOR_ENOMEM;
        x->orders = more, x->orders_cap = cap;
      }
      idx_value_order *o = &x->orders[x->norders++];
      *o = (idx_value_order){pid, e->ts, e->revenue, e->order_id ? order_key(e->order_id) : 0,
                             0, 0};
      if (x->order_chains) { /* kept up once built (apply_refund) */
        o->prev = x->person[pid].order_head;
        x->person[pid].order_head = (uint32_t)x->norders;
      }
    }
    if (apply_copurchase(x, p, e, order, norder)) return TAILOR_ENOMEM;
    if (p) {
      for (size_t i = 0; i < norder; i++) {
        ids_remove(&p->cart, order[i]);
        if ((!ids_has(p->bought.v, p->bought.n, order[i]) &&
             ids_push(&p->bought, order[i])) ||
            idx_bought_stamp(x, pid, order[i], e->ts))
          return TAILOR_ENOMEM;
      }
      p->orders++;
      p->revenue += e->revenue;
      if (!p->first_order || e->ts < p->first_order) p->first_order = e->ts;
      if (e->ts > p->last_order) p->last_order = e->ts;
    }
  }
  return TAILOR_OK;
}
