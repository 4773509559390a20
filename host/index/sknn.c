/*
** sknn.c: the session index: a ring of the most recent sessions, for each
** item a capped ring of the sessions it appeared in, the open sessions by
** the caller's id, and popularity (every item's views, and an exact list of
** the most viewed).  Writes, figures, and what checkpoints save and
** restore.  The kernels that read it live in sknn_*.c (sknn_internal.h
** lists them); see sknn.h for the API.
*/
#include "index/sknn_internal.h"

#include <stdlib.h>
#include <string.h>

#include "tailor.h"

void sknn_config_default(sknn_config *c) {
  c->item_cap = SKNN_DEFAULT_ITEM_CAP;
  c->max_sessions = SKNN_DEFAULT_MAX_SESSIONS;
  c->max_len = SKNN_DEFAULT_MAX_LEN;
}

sknn_index *sknn_new(const sknn_config *c) {
  sknn_config d;
  sknn_config_default(&d);
  if (c) d = *c;
  if (d.item_cap == 0 || d.max_len == 0 || d.max_len > SKNN_MAX_LEN)
    return NULL;
  sknn_index *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->cfg = d;
  x->ring_mask = UINT32_MAX;
  if (d.max_sessions) {
    uint32_t size = 1;
    while (size < d.max_sessions && size < (1u << 31)) size *= 2;
    x->cfg.max_sessions = size;
    x->ring_mask = size - 1;
  }
  return x;
}

static void open_clear(sknn_index *x) {
  free(x->open);
  x->open = NULL;
  x->open_cap = x->open_n = 0;
}

void sknn_free(sknn_index *x) {
  if (!x) return;
  for (uint32_t i = 0; i < x->nitems; i++) free(x->item[i].post);
  for (uint32_t i = 0; i < x->ring_alloc; i++)
    if (x->ring[i].cap) free(x->ring[i].u.heap);
  free(x->item);
  free(x->views32);
  free(x->ring);
  free(x->sdist);
  free(x->stime);
  free(x->srep);
  open_clear(x);
  free(x);
}

/* ** Open sessions: caller id -> seq (linear probing, backward-shift
** deletion so no tombstones pile up). */

static uint32_t open_hash(uint32_t key) {
  uint32_t h = key * 0x9e3779b1u;
  return h ^ (h >> 15);
}

static open_slot *open_find(const sknn_index *x, uint32_t key) {
  if (!x->open_cap) return NULL;
  uint32_t mask = x->open_cap - 1;
  for (uint32_t i = open_hash(key) & mask;; i = (i + 1) & mask) {
    if (x->open[i].key == key) return &x->open[i];
    if (x->open[i].key == SKNN_NONE) return NULL;
  }
}

static int open_put(sknn_index *x, uint32_t key, uint32_t seq) {
  if ((x->open_n + 1) * 2 > x->open_cap) {
    uint32_t ncap = x->open_cap ? x->open_cap * 2 : 64;
    open_slot *t = malloc((size_t)ncap * sizeof *t);
    if (!t) return TAILOR_ENOMEM;
    for (uint32_t i = 0; i < ncap; i++) t[i].key = SKNN_NONE;
    for (uint32_t i = 0; i < x->open_cap; i++) {
      if (x->open[i].key == SKNN_NONE) continue;
      uint32_t j = open_hash(x->open[i].key) & (ncap - 1);
      while (t[j].key != SKNN_NONE) j = (j + 1) & (ncap - 1);
      t[j] = x->open[i];
    }
    free(x->open);
    x->open = t;
    x->open_cap = ncap;
  }
  uint32_t mask = x->open_cap - 1, i = open_hash(key) & mask;
  while (x->open[i].key != SKNN_NONE && x->open[i].key != key)
    i = (i + 1) & mask;
  if (x->open[i].key == SKNN_NONE) x->open_n++;
  x->open[i].key = key;
  x->open[i].seq = seq;
  return 0;
}

static void open_del(sknn_index *x, uint32_t key) {
  open_slot *e = open_find(x, key);
  if (!e) return;
  uint32_t mask = x->open_cap - 1, i = (uint32_t)(e - x->open);
  x->open[i].key = SKNN_NONE;
  x->open_n--;
  /* Move later members of the run back so every key stays reachable. */
  for (uint32_t j = (i + 1) & mask; x->open[j].key != SKNN_NONE;
       j = (j + 1) & mask) {
    uint32_t h = open_hash(x->open[j].key) & mask;
    int between = i <= j ? (i < h && h <= j) : (i < h || h <= j);
    if (between) continue;
    x->open[i] = x->open[j];
    x->open[j].key = SKNN_NONE;
    i = j;
  }
}

/* ** Items: growth, popularity list, posting rings. */

static int items_reserve(sknn_index *x, uint32_t id) {
  if (id > SKNN_MAX_ITEM) return TAILOR_EINVAL;
  if (id < x->nitems) return 0;
  if (id >= x->item_alloc) {
    uint32_t ncap = x->item_alloc ? x->item_alloc : 1024;
    while (ncap <= id) ncap *= 2;
    item *t = realloc(x->item, (size_t)ncap * sizeof *t);
    if (!t) return TAILOR_ENOMEM;
    x->item = t;
    uint32_t *v = realloc(x->views32, (size_t)ncap * sizeof *v);
    if (!v) return TAILOR_ENOMEM;
    x->views32 = v;
    x->item_alloc = ncap;
  }
  for (uint32_t i = x->nitems; i <= id; i++) {
    memset(&x->item[i], 0, sizeof x->item[i]);
    x->item[i].top = SKNN_NONE;
    x->views32[i] = 0;
  }
  x->nitems = id + 1;
  return 0;
}

static int pop_better(const sknn_index *x, uint32_t a, uint32_t b) {
  uint64_t va = x->item[a].views, vb = x->item[b].views;
  return va > vb || (va == vb && a < b);
}

/*
** One more view of `it`: keep x->top the exact POP_KEEP most viewed items in
** order.  Counts only grow and only this item's changed, so it is the only
** one that can enter the list or move up in it.
*/
static void pop_bump(sknn_index *x, uint32_t it) {
  uint32_t pos = x->item[it].top;
  if (pos == SKNN_NONE) {
    if (x->ntop < POP_KEEP) {
      pos = x->ntop++;
    } else if (pop_better(x, it, x->top[POP_KEEP - 1])) {
      pos = POP_KEEP - 1;
      x->item[x->top[pos]].top = SKNN_NONE;
    } else {
      return;
    }
    x->top[pos] = it;
    x->item[it].top = pos;
  }
  while (pos > 0 && pop_better(x, it, x->top[pos - 1])) {
    uint32_t o = x->top[pos - 1];
    x->top[pos] = o;
    x->item[o].top = pos;
    x->top[--pos] = it;
    x->item[it].top = pos;
  }
}

/* Add session seq to the item's ring; when full at item_cap the oldest
** entry is overwritten (the eviction policy: most recent sessions win). */
static int post_push(sknn_index *x, item *it, uint32_t seq) {
  if (it->n == it->cap && it->cap < x->cfg.item_cap) {
    /* Still growing: the ring has not wrapped, so head is 0. */
    uint32_t ncap = it->cap ? it->cap * 2 : 4;
    if (ncap > x->cfg.item_cap) ncap = x->cfg.item_cap;
    uint32_t *t = realloc(it->post, (size_t)ncap * sizeof *t);
    if (!t) return TAILOR_ENOMEM;
    it->post = t;
    it->cap = ncap;
  }
  if (it->n < it->cap) {
    it->post[it->n] = seq; /* not wrapped yet: head is 0 */
    it->n++;
    x->postings++;
  } else {
    it->post[it->head] = seq;
    if (++it->head == it->cap) it->head = 0;
  }
  return 0;
}

/* ** Sessions. */

static void sess_evict(sknn_index *x, sess *s) {
  if (s->key != SKNN_NONE) open_del(x, s->key);
  if (s->cap) free(s->u.heap);
  memset(s, 0, sizeof *s);
  x->live--;
}

/* Start a new session; returns it, or NULL when out of memory. */
static sess *sess_open(sknn_index *x, uint32_t key, int64_t time) {
  uint32_t seq = x->next_seq, slot = slot_of(x, seq);
  if (slot >= x->ring_alloc) {
    uint32_t ncap = x->ring_alloc ? x->ring_alloc * 2 : 1024;
    if (x->cfg.max_sessions && ncap > x->cfg.max_sessions)
      ncap = x->cfg.max_sessions;
    if (ncap <= slot) return NULL;
    sess *t = realloc(x->ring, (size_t)ncap * sizeof *t);
    if (!t) return NULL;
    memset(t + x->ring_alloc, 0, (size_t)(ncap - x->ring_alloc) * sizeof *t);
    x->ring = t;
    uint16_t *d = realloc(x->sdist, (size_t)ncap * sizeof *d);
    if (!d) return NULL;
    memset(d + x->ring_alloc, 0, (size_t)(ncap - x->ring_alloc) * sizeof *d);
    x->sdist = d;
    int64_t *tm = realloc(x->stime, (size_t)ncap * sizeof *tm);
    if (!tm) return NULL;
    memset(tm + x->ring_alloc, 0, (size_t)(ncap - x->ring_alloc) * sizeof *tm);
    x->stime = tm;
    uint64_t *rp = realloc(x->srep, (size_t)ncap * sizeof *rp);
    if (!rp) return NULL;
    memset(rp + x->ring_alloc, 0, (size_t)(ncap - x->ring_alloc) * sizeof *rp);
    x->srep = rp;
    x->ring_alloc = ncap;
  }
  sess *s = &x->ring[slot];
  if (s->live) sess_evict(x, s);
  s->seq = seq;
  s->key = key;
  s->time = time;
  s->live = 1;
  x->sdist[slot] = 0;
  x->stime[slot] = time;
  x->srep[slot] = 0;
  x->next_seq++;
  x->sessions++;
  x->live++;
  if (time > x->latest) x->latest = time;
  return s;
}

/* Append one view to a live session. */
static int sess_push(sknn_index *x, sess *s, uint32_t id, int64_t time) {
  int rc = items_reserve(x, id);
  if (rc) return rc;
  item *it = &x->item[id];
  it->views++;
  if (x->views32[id] < UINT32_MAX) x->views32[id]++;
  x->views++;
  pop_bump(x, id);
  if (time > s->time) {
    s->time = time;
    x->stime[slot_of(x, s->seq)] = time;
  }
  if (time > x->latest) x->latest = time;
  if (s->n >= x->cfg.max_len) return 0;
  if (s->cap ? s->n == s->cap : s->n == SESS_INLINE) {
    uint32_t ncap = s->cap ? 2u * s->cap : 2u * SESS_INLINE;
    if (ncap > x->cfg.max_len) ncap = x->cfg.max_len;
    uint32_t *t = s->cap ? realloc(s->u.heap, (size_t)ncap * sizeof *t)
                         : malloc((size_t)ncap * sizeof *t);
    if (!t) return TAILOR_ENOMEM;
    if (!s->cap) memcpy(t, s->u.inl, sizeof s->u.inl);
    s->u.heap = t;
    s->cap = (uint16_t)ncap;
  }
  uint32_t *items = s->cap ? s->u.heap : s->u.inl;
  int seen = 0;
  for (uint32_t i = 0; i < s->n && !seen; i++) seen = items[i] == id;
  if (seen && s->n < REP_BITS) x->srep[slot_of(x, s->seq)] |= 1ull << s->n;
  items[s->n++] = id;
  if (!seen) {
    s->distinct++;
    x->sdist[slot_of(x, s->seq)] = s->distinct;
    it->df++;
    rc = post_push(x, it, s->seq);
    if (rc) return rc;
  }
  return 0;
}

int sknn_add_session(sknn_index *x, const uint32_t *items, size_t n,
                     int64_t time) {
  if (!x || (!items && n)) return TAILOR_EINVAL;
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (items[i] > SKNN_MAX_ITEM) return TAILOR_EINVAL;
  sess *s = sess_open(x, SKNN_NONE, time);
  if (!s) return TAILOR_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    int rc = sess_push(x, s, items[i], time);
    if (rc) return rc;
  }
  return 0;
}

void sknn_prefetch(const sknn_index *x, uint32_t session, uint32_t id) {
  if (x->open_cap) __builtin_prefetch(&x->open[open_hash(session) & (x->open_cap - 1)]);
  if (id < x->nitems) {
    __builtin_prefetch(&x->item[id], 1);
    __builtin_prefetch(&x->views32[id], 1);
  }
}

int sknn_add_item(sknn_index *x, uint32_t session, uint32_t id, int64_t time) {
  if (!x || session == SKNN_NONE || id > SKNN_MAX_ITEM) return TAILOR_EINVAL;
  open_slot *e = open_find(x, session);
  sess *s = NULL;
  if (e && sess_get(x, e->seq)) s = &x->ring[slot_of(x, e->seq)];
  if (!s) {
    s = sess_open(x, session, time);
    if (!s) return TAILOR_ENOMEM;
    int rc = open_put(x, session, s->seq);
    if (rc) {
      s->key = SKNN_NONE;
      return rc;
    }
  }
  return sess_push(x, s, id, time);
}

void sknn_end_session(sknn_index *x, uint32_t session) {
  if (!x) return;
  open_slot *e = open_find(x, session);
  if (!e) return;
  uint32_t slot = slot_of(x, e->seq);
  if (slot < x->ring_alloc && x->ring[slot].seq == e->seq)
    x->ring[slot].key = SKNN_NONE;
  open_del(x, session);
}

void sknn_stats_get(const sknn_index *x, sknn_stats *st) {
  memset(st, 0, sizeof *st);
  st->items = x->nitems;
  st->sessions = x->sessions;
  st->live = x->live;
  st->views = x->views;
  st->postings = x->postings;
  size_t b = sizeof *x +
             (size_t)x->item_alloc * (sizeof(item) + sizeof(uint32_t)) +
             (size_t)x->ring_alloc *
                 (sizeof(sess) + sizeof(uint16_t) + sizeof(int64_t) +
                  sizeof(uint64_t)) +
             (size_t)x->open_cap * sizeof(open_slot);
  for (uint32_t i = 0; i < x->nitems; i++) {
    b += (size_t)x->item[i].cap * sizeof(uint32_t);
    st->items_seen += x->item[i].views > 0;
  }
  for (uint32_t i = 0; i < x->ring_alloc; i++)
    b += (size_t)x->ring[i].cap * sizeof(uint32_t);
  st->bytes = b;
}

uint64_t sknn_item_views(const sknn_index *x, uint32_t id) {
  return id < x->nitems ? x->item[id].views : 0;
}

size_t sknn_session_items(const sknn_index *x, uint32_t session,
                          const uint32_t **items) {
  open_slot *e = x ? open_find(x, session) : NULL;
  const sess *s = e ? sess_get(x, e->seq) : NULL;
  *items = s ? sess_items(s) : NULL;
  return s ? s->n : 0;
}

int sknn_each_session(const sknn_index *x, sknn_session_fn fn, void *ud) {
  /* Live sessions are the latest ones: at most a ring's worth back. */
  uint32_t back = x->live, from = x->next_seq - back;
  for (uint32_t i = 0; i < back; i++) {
    const sess *s = sess_get(x, from + i);
    if (!s) continue;
    int rc = fn(ud, sess_items(s), s->n, s->time, s->key);
    if (rc) return rc;
  }
  return 0;
}

uint64_t sknn_item_df(const sknn_index *x, uint32_t id) {
  return id < x->nitems ? x->item[id].df : 0;
}

int sknn_restore_counts(sknn_index *x, uint32_t nitems, const uint64_t *views,
                        const uint64_t *df, uint64_t sessions) {
  if (nitems && items_reserve(x, nitems - 1)) return TAILOR_ENOMEM;
  if (sessions > x->sessions) x->sessions = sessions;
  x->views = 0;
  x->ntop = 0;
  for (uint32_t i = 0; i < x->nitems; i++) x->item[i].top = SKNN_NONE;
  for (uint32_t i = 0; i < nitems; i++) {
    x->item[i].views = views[i];
    x->item[i].df = df[i];
    x->views32[i] = views[i] < UINT32_MAX ? (uint32_t)views[i] : UINT32_MAX;
    x->views += views[i];
    if (views[i]) pop_bump(x, i); /* counts are final: each enters once */
  }
  return 0;
}
