/*
** checkpoint.c: the whole index in one file, so a restart loads it and
** replays only the events after it instead of the whole log.
**
** Layout (little-endian, as the machine writes it; a checkpoint is a cache
** for the machine that wrote it, not an exchange format):
**   "TAILORCK" | u32 format | u64 config fingerprint | i64 last seq |
**   payload ... | u64 FNV-1a of everything before it
** Written to "<path>.tmp", fsynced, then renamed over <path>: a crash leaves
** the old checkpoint or the new one, never half of one.  A file with another
** format, fingerprint or checksum is refused and the caller rebuilds from
** the store.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "index/internal.h"

#define CKPT_MAGIC "TAILORCK"
#define CKPT_FORMAT 21 /* 21: an order's id hash and refund */

/*
** Writing: a FILE with a running hash.
*/
typedef struct ckw {
  FILE *f;
  uint64_t h;
  int err;
} ckw;

static void put(ckw *w, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    w->h ^= b[i];
    w->h *= 1099511628211ull;
  }
  if (n && fwrite(p, 1, n, w->f) != n) w->err = 1;
}

#define PUT(w, v) put((w), &(v), sizeof(v))

static void put_u32(ckw *w, uint32_t v) { PUT(w, v); }

static void put_str(ckw *w, const char *s) {
  uint32_t n = s ? (uint32_t)strlen(s) : 0;
  put_u32(w, n);
  put(w, s, n);
}

static void put_ids(ckw *w, const idx_ids *a) {
  put_u32(w, a->n);
  put(w, a->v, a->n * sizeof *a->v);
}

static void put_intern(ckw *w, const intern *t) {
  put_u32(w, t->n);
  for (uint32_t i = 0; i < t->n; i++) put_str(w, t->names[i]);
}

static void put_cooc(ckw *w, const cooc *c, uint32_t nitems) {
  PUT(w, c->d.t0);
  PUT(w, c->pairs);
  for (uint32_t i = 0; i < nitems; i++) {
    int has = i < c->nitems;
    double total = has ? c->total[i] : 0;
    uint16_t n = has ? c->lists[i].n : 0;
    PUT(w, total);
    PUT(w, n);
    /* The format keeps each neighbour beside its weight, as it did when
       memory did too: (id, weight) pairs. */
    const float *lw = n ? cooc_w(&c->lists[i]) : NULL;
    uint32_t pairs[2 * 64];
    for (uint16_t e = 0; e < n;) {
      size_t m = 0;
      for (; m < 64 && e < n; m++, e++) {
        pairs[2 * m] = c->lists[i].id[e];
        memcpy(&pairs[2 * m + 1], &lw[e], sizeof pairs[0]);
      }
      put(w, pairs, 2 * m * sizeof pairs[0]);
    }
  }
}

/* A table's slots as the format has them: every key, then every weight. */
static void put_slots(ckw *w, const trend_table *tb, int weights) {
  uint32_t chunk[1024];
  for (uint32_t i = 0; i < tb->size;) {
    uint32_t n = 0;
    for (; n < 1024 && i < tb->size; n++, i++) {
      if (weights) memcpy(&chunk[n], &tb->slot[i].w, sizeof chunk[n]);
      else chunk[n] = TREND_KEY(tb->slot[i].key); /* marks are rebuilt on load */
    }
    put(w, chunk, n * sizeof *chunk);
  }
}

static void put_trend(ckw *w, const trend *t) {
  PUT(w, t->d.t0);
  put_intern(w, &t->names);
  for (uint32_t i = 0; i < t->names.n; i++) {
    const trend_table *tb = &t->tables[i];
    PUT(w, tb->size);
    PUT(w, tb->used);
    put_slots(w, tb, 0);
    put_slots(w, tb, 1);
    PUT(w, tb->ntop);
    put(w, tb->top, tb->ntop * sizeof *tb->top);
    put(w, tb->top_w, tb->ntop * sizeof *tb->top_w);
  }
}

/* The session kernels' index, logically: its sessions oldest first, then
   every item's lifetime counts (sknn.h says why that is enough). */
#define CKPT_SESSIONS_END UINT32_MAX

static int put_session(void *ud, const uint32_t *items, size_t n, int64_t time,
                       uint32_t key) {
  ckw *w = ud;
  put_u32(w, (uint32_t)n);
  put(w, items, n * sizeof *items);
  PUT(w, time);
  PUT(w, key);
  return 0;
}

static void put_sknn(ckw *w, const sknn_index *s, uint32_t nitems) {
  sknn_each_session(s, put_session, w);
  put_u32(w, CKPT_SESSIONS_END);
  for (uint32_t i = 0; i < nitems; i++) {
    uint64_t v = sknn_item_views(s, i), df = sknn_item_df(s, i);
    PUT(w, v);
    PUT(w, df);
  }
  sknn_stats st;
  sknn_stats_get(s, &st);
  PUT(w, st.sessions); /* ever added: the remembered ones are fewer */
}

/* What searches lead to: its own byte string (search_save), length first. */
static void put_search(ckw *w, const search_index *s) {
  size_t n = 0;
  void *bytes = search_save(s, &n);
  uint64_t len = n;
  if (!bytes) w->err = 1;
  PUT(w, len);
  put(w, bytes, n);
  free(bytes);
}

/* Revenue attribution: names, groups with their days, orders. */
static void put_attrib(ckw *w, const idx_attrib *a) {
  put_intern(w, &a->names);
  PUT(w, a->ngroups);
  for (uint32_t g = 0; g < a->ngroups; g++) {
    const idx_attrib_group *gr = &a->groups[g];
    PUT(w, gr->source);
    PUT(w, gr->strategy);
    PUT(w, gr->widget);
    PUT(w, gr->ndays);
    put(w, gr->days, gr->ndays * sizeof *gr->days);
  }
  PUT(w, a->norders);
  put(w, a->orders, a->norders * sizeof *a->orders);
}

/*
** The fitted models and where they were fitted, so a restart holds the
** models a node that ran all along holds (on a shared log they are fitted
** at log positions only, never on start).  Plain structs: the clusters'
** per-fit assignment is not kept (it lives in the people).
*/
static void put_models(ckw *w, const idx *x) {
  PUT(w, x->fit);
  PUT(w, x->value);
  idx_clusters c = x->clusters;
  c.assign = NULL;
  PUT(w, c);
  uint8_t has = x->propensity != NULL;
  PUT(w, has);
  if (has) put(w, x->propensity, sizeof *x->propensity);
}

int idx_save(const idx *x, const char *path, uint64_t fingerprint,
             int64_t seq, tailor_error *err) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  ckw w = {fopen(tmp, "wb"), 1469598103934665603ull, 0};
  if (!w.f)
    return util_fail(err, TAILOR_EIO, NULL, "checkpoint: cannot write %s: %s",
                     tmp, strerror(errno));
  uint32_t format = CKPT_FORMAT;
  put(&w, CKPT_MAGIC, 8);
  PUT(&w, format);
  PUT(&w, fingerprint);
  PUT(&w, seq);
  PUT(&w, x->applied);
  PUT(&w, x->orders_seen);
  PUT(&w, x->last_ts);
  put_intern(&w, &x->items);
  put_intern(&w, &x->people);
  put_intern(&w, &x->sessions);
  put_intern(&w, &x->categories);
  put_intern(&w, &x->brands);
  put_intern(&w, &x->attrs);
  put_intern(&w, &x->tags);
  for (uint32_t i = 0; i < x->items.n; i++) {
    const idx_item *it = &x->item[i];
    put_str(&w, it->doc);
    PUT(&w, it->price);
    PUT(&w, it->cost);
    PUT(&w, it->prev_price);
    PUT(&w, it->prev);
    PUT(&w, it->category);
    PUT(&w, it->brand);
    PUT(&w, it->ntags);
    put(&w, it->tags, it->ntags * sizeof *it->tags);
    PUT(&w, it->in_stock);
    PUT(&w, it->deleted);
    PUT(&w, it->views);
    PUT(&w, it->carts);
    PUT(&w, it->purchases);
    PUT(&w, it->content);
  }
  for (uint32_t c = 0; c < x->categories.n; c++) {
    idx_ids none = {0};
    idx_repeat never = {0};
    put_ids(&w, c < x->members_cap ? &x->members[c] : &none);
    put(&w, c < x->repeat_cap ? &x->repeat[c] : &never, sizeof never);
  }
  for (uint32_t i = 0; i < x->items.n; i++) {
    idx_ids none = {0};
    put_ids(&w, i < x->watchers_cap ? &x->watchers[i] : &none);
  }
  for (uint32_t i = 0; i < x->people.n; i++) {
    const idx_person *p = &x->person[i];
    PUT(&w, p->canon);
    PUT(&w, p->is_customer);
    PUT(&w, p->first_seen);
    PUT(&w, p->last_seen);
    PUT(&w, p->last_order);
    PUT(&w, p->first_order);
    PUT(&w, p->orders);
    PUT(&w, p->visits);
    PUT(&w, p->last_session);
    PUT(&w, p->revenue);
    put_ids(&w, &p->recent);
    put_ids(&w, &p->cart);
    put_ids(&w, &p->bought);
    PUT(&w, p->bought_at_n);
    put(&w, p->bought_at, p->bought_at_n * sizeof *p->bought_at);
    PUT(&w, p->nattrs);
    put(&w, p->attrs, p->nattrs * sizeof *p->attrs);
    PUT(&w, p->flags);
    PUT(&w, p->cluster);
    PUT(&w, p->emails);
    PUT(&w, p->contact);
    PUT(&w, p->last_email);
    PUT(&w, p->naff);
    put(&w, p->aff, p->naff * sizeof *p->aff);
    PUT(&w, p->nprefs);
    put(&w, p->prefs, p->nprefs * sizeof *p->prefs);
    PUT(&w, p->click_ts);
    PUT(&w, p->click_group);
  }
  PUT(&w, x->aff_decay.t0);
  put_ids(&w, &x->coupon_used);
  uint64_t norders = x->norders;
  PUT(&w, norders);
  for (size_t i = 0; i < x->norders; i++) { /* field by field: no padding bytes */
    PUT(&w, x->orders[i].person);
    PUT(&w, x->orders[i].ts);
    PUT(&w, x->orders[i].revenue);
    PUT(&w, x->orders[i].key);
    PUT(&w, x->orders[i].refunded);
  }
  for (uint32_t s = 0; s < x->sessions.n; s++) {
    uint8_t n = s < x->window_cap ? x->window_n[s] : 0;
    PUT(&w, n);
    if (n) put(&w, x->window[s], n * sizeof(uint32_t));
    idx_session none = {0};
    put(&w, s < x->session_cap ? &x->session[s] : &none, sizeof none);
  }
  put_cooc(&w, &x->coview, x->items.n);
  put_cooc(&w, &x->copurchase, x->items.n);
  put_trend(&w, &x->trend);
  put_sknn(&w, x->sknn, x->items.n);
  put_search(&w, x->search);
  put_search(&w, x->reads);
  put_attrib(&w, &x->attrib);
  put_models(&w, x);
  uint64_t sum = w.h;
  if (fwrite(&sum, sizeof sum, 1, w.f) != 1) w.err = 1;
  if (fflush(w.f) || fsync(fileno(w.f))) w.err = 1;
  if (fclose(w.f)) w.err = 1;
  if (w.err || rename(tmp, path)) {
    int e = errno;
    unlink(tmp);
    return util_fail(err, TAILOR_EIO, NULL, "checkpoint: cannot write %s: %s",
                     path, strerror(e));
  }
  util_sync_dir_of(path); /* the rename, kept (else a start replays more) */
  return TAILOR_OK;
}

/*
** Reading: a cursor over the whole file in memory; any overrun marks the
** reader failed and every later read returns zeros.
*/
typedef struct ckr {
  const unsigned char *p, *end;
  int err;
} ckr;

static void get(ckr *r, void *out, size_t n) {
  if (r->err || (size_t)(r->end - r->p) < n) {
    r->err = 1;
    memset(out, 0, n);
    return;
  }
  memcpy(out, r->p, n);
  r->p += n;
}

#define GET(r, v) get((r), &(v), sizeof(v))

static uint32_t get_u32(ckr *r) {
  uint32_t v;
  GET(r, v);
  return v;
}

/* A new string, or NULL for an empty one. */
static char *get_str(ckr *r) {
  uint32_t n = get_u32(r);
  if (!n || r->err || (size_t)(r->end - r->p) < n) {
    if (n) r->err = 1;
    return NULL;
  }
  char *s = malloc(n + 1);
  if (!s) {
    r->err = 1;
    return NULL;
  }
  memcpy(s, r->p, n);
  s[n] = '\0';
  r->p += n;
  return s;
}

/* Array of `n` elements of `size` bytes, owned by the caller (NULL if 0). */
static void *get_array(ckr *r, size_t n, size_t size) {
  if (!n) return NULL;
  if (r->err || (size_t)(r->end - r->p) / size < n) {
    r->err = 1;
    return NULL;
  }
  void *a = malloc(n * size);
  if (!a) {
    r->err = 1;
    return NULL;
  }
  get(r, a, n * size);
  return a;
}

static void get_ids(ckr *r, idx_ids *a) {
  a->n = a->cap = get_u32(r);
  a->v = get_array(r, a->n, sizeof *a->v);
  if (!a->v) a->n = a->cap = 0;
}

static void get_intern(ckr *r, intern *t) {
  uint32_t n = get_u32(r);
  for (uint32_t i = 0; i < n && !r->err; i++) {
    char *s = get_str(r);
    uint32_t id = s ? intern_put(t, s) : intern_put_erased(t);
    if (id != i) r->err = 1; /* duplicates or out of memory */
    free(s);
  }
}

static void get_cooc(ckr *r, cooc *c, uint32_t nitems) {
  GET(r, c->d.t0);
  GET(r, c->pairs);
  if (!nitems) return;
  c->lists = calloc(nitems, sizeof *c->lists);
  c->total = calloc(nitems, sizeof *c->total);
  if (!c->lists || !c->total) {
    r->err = 1;
    return;
  }
  c->nitems = nitems;
  for (uint32_t i = 0; i < nitems && !r->err; i++) {
    uint16_t n;
    GET(r, c->total[i]);
    c->sum += c->total[i];
    GET(r, n);
    if (n > c->max_neighbors) r->err = 1;
    cooc_list *l = &c->lists[i];
    if (!n) continue;
    if ((size_t)(r->end - r->p) < COOC_LIST_BYTES(n) || !(l->id = malloc(COOC_LIST_BYTES(n)))) {
      r->err = 1;
      break;
    }
    l->n = l->cap = n;
    float *lw = cooc_w(l);
    for (uint16_t e = 0; e < n; e++) {
      GET(r, l->id[e]);
      GET(r, lw[e]);
      if (l->id[e] >= nitems) r->err = 1;
    }
  }
}

static void get_trend(ckr *r, trend *t, uint32_t nitems) {
  GET(r, t->d.t0);
  get_intern(r, &t->names);
  uint32_t n = t->names.n;
  if (!n || r->err) return;
  if (!(t->tables = calloc(n, sizeof *t->tables))) {
    r->err = 1;
    return;
  }
  t->cap = n;
  for (uint32_t i = 0; i < n && !r->err; i++) {
    trend_table *tb = &t->tables[i];
    GET(r, tb->size);
    GET(r, tb->used);
    if (!tb->size || (tb->size & (tb->size - 1)) || tb->used >= tb->size) {
      r->err = 1;
      break;
    }
    uint32_t *keys = get_array(r, tb->size, sizeof *keys);
    float *weights = get_array(r, tb->size, sizeof *weights);
    tb->slot = r->err ? NULL : malloc(tb->size * sizeof *tb->slot);
    if (!r->err && !tb->slot) r->err = 1;
    for (uint32_t j = 0; j < tb->size && !r->err; j++)
      tb->slot[j] = (trend_slot){keys[j], weights[j]};
    free(keys);
    free(weights);
    GET(r, tb->ntop);
    if (tb->ntop > t->top_max) r->err = 1;
    tb->top = malloc(t->top_max * sizeof *tb->top);
    tb->top_w = malloc(t->top_max * sizeof *tb->top_w);
    if (!tb->top || !tb->top_w) r->err = 1;
    if (!r->err) {
      get(r, tb->top, tb->ntop * sizeof *tb->top);
      get(r, tb->top_w, tb->ntop * sizeof *tb->top_w);
    }
    for (uint32_t j = 0; j < tb->size && !r->err; j++)
      if (TREND_KEY(tb->slot[j].key) > nitems || (tb->slot[j].key & TREND_LISTED)) r->err = 1;
    for (uint32_t j = 0; j < tb->ntop && !r->err; j++)
      if (tb->top[j] >= nitems) r->err = 1;
    if (!r->err && trend_table_index(tb)) r->err = 1;
  }
}

static void get_search(ckr *r, idx *x, search_index *s) {
  uint64_t len;
  GET(r, len);
  if (r->err || len > (uint64_t)(r->end - r->p) ||
      search_load(s, r->p, (size_t)len, x->items.n, x->people.n, x->sessions.n))
    r->err = 1;
  else
    r->p += len;
}

static void get_sknn(ckr *r, sknn_index *s, uint32_t nitems) {
  uint32_t buf[SKNN_MAX_LEN];
  for (;;) {
    uint32_t n = get_u32(r);
    if (r->err || n == CKPT_SESSIONS_END) break;
    if (n > SKNN_MAX_LEN) {
      r->err = 1;
      break;
    }
    get(r, buf, n * sizeof *buf);
    int64_t time;
    uint32_t key;
    GET(r, time);
    GET(r, key);
    for (uint32_t i = 0; i < n && !r->err; i++)
      if (buf[i] >= nitems) r->err = 1;
    if (r->err) break;
    int rc = 0;
    if (key == SKNN_NONE)
      rc = sknn_add_session(s, buf, n, time);
    else
      for (uint32_t i = 0; i < n && !rc; i++) rc = sknn_add_item(s, key, buf[i], time);
    if (rc) r->err = 1;
  }
  uint64_t *views = calloc(nitems ? nitems : 1, sizeof *views);
  uint64_t *df = calloc(nitems ? nitems : 1, sizeof *df);
  if (!views || !df) r->err = 1;
  for (uint32_t i = 0; i < nitems && !r->err; i++) {
    GET(r, views[i]);
    GET(r, df[i]);
  }
  uint64_t sessions = 0;
  GET(r, sessions);
  if (!r->err && sknn_restore_counts(s, nitems, views, df, sessions)) r->err = 1;
  free(views);
  free(df);
}

/* Revenue attribution, and the last clicks' groups checked against it. */
static void get_attrib(ckr *r, idx *x) {
  idx_attrib *a = &x->attrib;
  get_intern(r, &a->names);
  uint32_t n;
  GET(r, n);
  if (n > IDX_ATTRIB_MAX_GROUPS) r->err = 1;
  if (n && !r->err && !(a->groups = calloc(IDX_ATTRIB_MAX_GROUPS, sizeof *a->groups)))
    r->err = 1;
  for (uint32_t g = 0; g < n && !r->err; g++) {
    idx_attrib_group *gr = &a->groups[g];
    GET(r, gr->source);
    GET(r, gr->strategy);
    GET(r, gr->widget);
    GET(r, gr->ndays);
    gr->days = get_array(r, gr->ndays, sizeof *gr->days);
    gr->cap = gr->days ? gr->ndays : 0;
    if (!gr->days) gr->ndays = 0;
    a->ngroups = g + 1;
    if (gr->source >= IDX_ATTRIB_SOURCES || gr->strategy >= a->names.n ||
        gr->widget >= a->names.n)
      r->err = 1;
  }
  GET(r, a->norders);
  if (!r->err && a->norders > (uint64_t)(r->end - r->p) / sizeof *a->orders) r->err = 1;
  if (!r->err) {
    a->orders = get_array(r, (size_t)a->norders, sizeof *a->orders);
    a->orders_cap = a->orders ? a->norders : 0;
    if (!a->orders) a->norders = 0;
  }
  for (uint64_t i = 0; i < a->norders && !r->err; i++)
    if (a->orders[i].gap >= 0 && a->orders[i].group >= a->ngroups) r->err = 1;
  for (uint32_t i = 0; i < x->people.n && !r->err; i++)
    if (x->person[i].click_ts && x->person[i].click_group >= a->ngroups) r->err = 1;
  for (uint32_t i = 0; i < x->session_cap && !r->err; i++)
    if (x->session[i].click_ts && x->session[i].click_group >= a->ngroups) r->err = 1;
}

static void get_models(ckr *r, idx *x) {
  GET(r, x->fit);
  GET(r, x->value);
  GET(r, x->clusters);
  x->clusters.assign = NULL;
  if (x->clusters.k > IDX_KMEANS_MAX_K || x->clusters.dims > IDX_KMEANS_MAX_DIMS) r->err = 1;
  for (uint32_t m = 0; m < IDX_KMEANS_MAX_K; m++) { /* names are read as strings */
    x->clusters.name[m][IDX_CLUSTER_NAME - 1] = '\0';
    x->clusters.description[m][IDX_CLUSTER_DESCRIPTION - 1] = '\0';
  }
  for (uint32_t j = IDX_KMEANS_MAX_DIMS - IDX_KMEANS_CATEGORIES; j < x->clusters.dims && !r->err; j++)
    if (x->clusters.cats[j] >= x->categories.n) r->err = 1;
  uint8_t has;
  GET(r, has);
  if (has && !r->err) {
    if (!(x->propensity = malloc(sizeof *x->propensity))) r->err = 1;
    else get(r, x->propensity, sizeof *x->propensity);
    for (int i = 0; i < IDX_PROP_MEDIA && !r->err; i++)
      if (x->propensity->media[i] > x->attrs.n) r->err = 1;
  }
}

/* Ids read from the file must point inside the tables they index. */
static int ids_ok(const idx_ids *a, uint32_t bound) {
  for (uint32_t i = 0; i < a->n; i++)
    if (a->v[i] >= bound) return 0;
  return 1;
}

int idx_checkpoint_seq(const char *path, int64_t *seq) {
  unsigned char head[8 + 4 + 8 + 8];
  FILE *f = fopen(path, "rb");
  if (!f) return TAILOR_ENOTFOUND;
  size_t got = fread(head, 1, sizeof head, f);
  fclose(f);
  uint32_t format;
  if (got != sizeof head || memcmp(head, CKPT_MAGIC, 8) != 0) return TAILOR_EINVAL;
  memcpy(&format, head + 8, 4);
  if (format != CKPT_FORMAT) return TAILOR_EINVAL;
  memcpy(seq, head + 8 + 4 + 8, 8);
  return TAILOR_OK;
}

idx *idx_load(const char *path, const idx_config *cfg, uint64_t fingerprint,
              int64_t *seq, tailor_error *err) {
  size_t len;
  char *data = util_read_file(path, &len);
  if (!data) {
    util_fail(err, TAILOR_ENOTFOUND, NULL, "checkpoint: cannot read %s: %s",
              path, strerror(errno));
    return NULL;
  }
  const char *why = NULL;
  uint64_t sum = 1469598103934665603ull, stored;
  if (len < 8 + 4 + 8 + 8 + 8 || memcmp(data, CKPT_MAGIC, 8) != 0) {
    why = "not a tailor checkpoint";
  } else {
    for (size_t i = 0; i < len - 8; i++) {
      sum ^= (unsigned char)data[i];
      sum *= 1099511628211ull;
    }
    memcpy(&stored, data + len - 8, 8);
    if (sum != stored) why = "checksum mismatch (damaged file)";
  }
  ckr r = {(const unsigned char *)data + 8, (const unsigned char *)data + len - 8, 0};
  uint32_t format = 0;
  uint64_t fp = 0;
  if (!why) {
    GET(&r, format);
    GET(&r, fp);
    GET(&r, *seq);
    if (format != CKPT_FORMAT) why = "written by another format version";
    else if (fp != fingerprint) why = "written for another store or index configuration";
  }
  idx *x = why ? NULL : idx_new(cfg);
  if (!why && !x) why = "out of memory";
  if (!why) {
    GET(&r, x->applied);
    GET(&r, x->orders_seen);
    GET(&r, x->last_ts);
    get_intern(&r, &x->items);
    get_intern(&r, &x->people);
    get_intern(&r, &x->sessions);
    get_intern(&r, &x->categories);
    get_intern(&r, &x->brands);
    get_intern(&r, &x->attrs);
    get_intern(&r, &x->tags);
    uint32_t ni = x->items.n, np = x->people.n, nc = x->categories.n;
    x->item = calloc(ni ? ni : 1, sizeof *x->item);
    x->person = calloc(np ? np : 1, sizeof *x->person);
    x->members = calloc(nc ? nc : 1, sizeof *x->members);
    if (!x->item || !x->person || !x->members) r.err = 1;
    x->item_cap = ni;
    x->person_cap = np;
    x->members_cap = nc;
    for (uint32_t i = 0; i < ni && !r.err; i++) {
      idx_item *it = &x->item[i];
      it->doc = get_str(&r);
      GET(&r, it->price);
      GET(&r, it->cost);
      GET(&r, it->prev_price);
      GET(&r, it->prev);
      if (it->prev & IDX_PREV_IN_STOCK) it->prev |= IDX_PREV_LISTED; /* older checkpoints */
      GET(&r, it->category);
      GET(&r, it->brand);
      GET(&r, it->ntags);
      if (it->ntags > IDX_MAX_TAGS) r.err = 1;
      else get(&r, it->tags, it->ntags * sizeof *it->tags);
      GET(&r, it->in_stock);
      GET(&r, it->deleted);
      GET(&r, it->views);
      GET(&r, it->carts);
      GET(&r, it->purchases);
      GET(&r, it->content);
      x->order_lines += it->purchases;
      x->uncataloged += !it->doc;
      if ((it->category != INTERN_NONE && it->category >= nc) ||
          (it->brand != INTERN_NONE && it->brand >= x->brands.n))
        r.err = 1;
    }
    if (nc && !(x->repeat = calloc(nc, sizeof *x->repeat))) r.err = 1;
    x->repeat_cap = x->repeat ? nc : 0;
    for (uint32_t c = 0; c < nc && !r.err; c++) {
      get_ids(&r, &x->members[c]);
      if (!ids_ok(&x->members[c], ni)) r.err = 1;
      get(&r, &x->repeat[c], sizeof *x->repeat);
    }
    if (!r.err && ni && !(x->watchers = calloc(ni, sizeof *x->watchers))) r.err = 1;
    x->watchers_cap = x->watchers ? ni : 0;
    for (uint32_t i = 0; i < ni && !r.err; i++) {
      get_ids(&r, &x->watchers[i]);
      if (!ids_ok(&x->watchers[i], np)) r.err = 1;
    }
    for (uint32_t i = 0; i < np && !r.err; i++) {
      idx_person *p = &x->person[i];
      GET(&r, p->canon);
      GET(&r, p->is_customer);
      GET(&r, p->first_seen);
      GET(&r, p->last_seen);
      GET(&r, p->last_order);
      GET(&r, p->first_order);
      GET(&r, p->orders);
      GET(&r, p->visits);
      GET(&r, p->last_session);
      GET(&r, p->revenue);
      get_ids(&r, &p->recent);
      get_ids(&r, &p->cart);
      get_ids(&r, &p->bought);
      GET(&r, p->bought_at_n);
      if (p->bought_at_n > p->bought.n) r.err = 1;
      p->bought_at = get_array(&r, p->bought_at_n, sizeof *p->bought_at);
      if (!p->bought_at) p->bought_at_n = 0;
      GET(&r, p->nattrs);
      p->attrs = get_array(&r, p->nattrs, sizeof *p->attrs);
      if (!p->attrs) p->nattrs = 0;
      GET(&r, p->flags);
      GET(&r, p->cluster);
      GET(&r, p->emails);
      GET(&r, p->contact);
      GET(&r, p->last_email);
      GET(&r, p->naff);
      if (p->naff > IDX_MAX_AFFINITIES) r.err = 1;
      p->aff = get_array(&r, p->naff, sizeof *p->aff);
      if (p->aff) { /* with the room idx_affinity_add expects */
        idx_affinity *room = realloc(p->aff, idx_affinity_cap(p->naff) * sizeof *room);
        if (room) p->aff = room;
        else r.err = 1;
      }
      if (!p->aff) p->naff = 0;
      GET(&r, p->nprefs);
      if (p->nprefs > IDX_MAX_PREFS) r.err = 1;
      p->prefs = get_array(&r, p->nprefs, sizeof *p->prefs);
      if (!p->prefs) p->nprefs = 0;
      GET(&r, p->click_ts);
      GET(&r, p->click_group);
      for (uint8_t q = 0; q < p->nprefs && !r.err; q++)
        if (p->prefs[q].key >= x->attrs.n || p->prefs[q].value >= x->attrs.n ||
            p->prefs[q].source >= x->attrs.n)
          r.err = 1;
      if (p->canon >= np || !ids_ok(&p->recent, ni) || !ids_ok(&p->cart, ni) ||
          !ids_ok(&p->bought, ni))
        r.err = 1;
    }
    GET(&r, x->aff_decay.t0);
    {
      idx_ids used;
      get_ids(&r, &used);
      /* Pools come from the configuration (and the fingerprint): same count. */
      if (used.n != x->coupon_used.n) r.err = 1;
      else if (used.n) memcpy(x->coupon_used.v, used.v, used.n * sizeof *used.v);
      idx_ids_free(&used);
    }
    {
      uint64_t n = 0;
      GET(&r, n);
      /* A count beyond what the bytes left can hold is damage. */
      const size_t order_bytes = sizeof x->orders->person + sizeof x->orders->ts +
                                 sizeof x->orders->revenue + sizeof x->orders->key +
                                 sizeof x->orders->refunded;
      if (n > (uint64_t)(r.end - r.p) / order_bytes) r.err = 1;
      else if (n && !(x->orders = malloc(n * sizeof *x->orders))) r.err = 1;
      else x->norders = x->orders_cap = n;
      for (size_t i = 0; i < x->norders && !r.err; i++) {
        GET(&r, x->orders[i].person);
        GET(&r, x->orders[i].ts);
        GET(&r, x->orders[i].revenue);
        GET(&r, x->orders[i].key);
        GET(&r, x->orders[i].refunded);
        x->orders[i].prev = 0; /* the chains are built again when needed */
        if (x->orders[i].person >= np) r.err = 1;
      }
    }
    uint32_t ns = x->sessions.n;
    if (ns && !r.err) {
      x->window = calloc(ns, sizeof *x->window);
      x->window_n = calloc(ns, 1);
      x->session = calloc(ns, sizeof *x->session);
      if (!x->window || !x->window_n || !x->session) r.err = 1;
      x->window_cap = x->session_cap = ns;
    }
    for (uint32_t s = 0; s < ns && !r.err; s++) {
      GET(&r, x->window_n[s]);
      if (x->window_n[s] > IDX_MAX_COVIEW_WINDOW) r.err = 1;
      else get(&r, x->window[s], x->window_n[s] * sizeof(uint32_t));
      for (uint8_t e = 0; e < x->window_n[s] && !r.err; e++)
        if (x->window[s][e] >= ni) r.err = 1;
      GET(&r, x->session[s]);
      for (int f = 0; f < IDX_SOURCE_FIELDS && !r.err; f++)
        if (x->session[s].source[f] > x->attrs.n) r.err = 1;
    }
    if (!r.err) get_cooc(&r, &x->coview, ni);
    if (!r.err) get_cooc(&r, &x->copurchase, ni);
    if (!r.err) get_trend(&r, &x->trend, ni);
    if (!r.err) get_sknn(&r, x->sknn, ni);
    if (!r.err) get_search(&r, x, x->search);
    if (!r.err) get_search(&r, x, x->reads);
    if (!r.err) get_attrib(&r, x);
    if (!r.err) get_models(&r, x);
    if (r.err || r.p != r.end) why = "truncated or inconsistent contents";
  }
  free(data);
  if (why) {
    idx_free(x);
    util_fail(err, TAILOR_EIO, NULL, "checkpoint %s ignored: %s", path, why);
    return NULL;
  }
  return x;
}

uint64_t idx_fingerprint(const idx *x) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "%u|%u|%u|%.17g|%.17g|%.17g|%u|%u",
                   x->cfg.recent_max, x->cfg.coview_window, x->coview.max_neighbors,
                   x->coview.d.half_life_ms, x->trend.d.half_life_ms,
                   x->cfg.cross_order_weight, x->cfg.lapsed_days, x->trend.top_max);
  for (uint32_t i = 0; i < x->ntrend_keys && n < (int)sizeof buf; i++)
    n += snprintf(buf + n, sizeof buf - (size_t)n, "|%s", x->trend_keys[i]);
  for (uint32_t i = 0; i < x->coupons.n && n < (int)sizeof buf; i++)
    n += snprintf(buf + n, sizeof buf - (size_t)n, "|%s=%u", x->coupons.names[i],
                  x->coupon_size.v[i]);
  for (uint32_t i = 0; i < x->naudiences && n < (int)sizeof buf; i++)
    n += snprintf(buf + n, sizeof buf - (size_t)n, "|%u", x->audience_days[i]);
  return intern_hash(buf, strlen(buf)) ^ CKPT_FORMAT;
}
