/*
** sknn.c: the session index (a ring of sessions, a capped list of recent
** sessions per item, popularity), the kernels' parameters, and the kernels.
** See sknn.h for the API and the list of kernels.
*/
#include "index/sknn.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tailor.h"

/*
** Items kept in the popularity list maintained on every view, in order; pop
** and the fill of short lists read it without sorting 40k items per query.
** Asking for more rows than this falls back to a scan of every item.
*/
#define POP_KEEP 256

/* ** Index ------------------------------------------------------------- */

/* Positions of a session whose repeats are flagged in srep. */
#define REP_BITS 64

/*
** Items a session record holds inline: a record is one 64-byte cache line
** and most shop sessions are short, so the kernels read a neighbour's items
** without chasing a pointer.  Longer sessions move to the heap.
*/
#define SESS_INLINE 10

typedef struct sess {
  uint32_t seq;       /* arrival number; its slot is slot_of(seq) */
  uint32_t key;       /* caller's id while open, else SKNN_NONE */
  int64_t time;       /* time of its last view */
  uint16_t n;         /* items held (view order), at most cfg.max_len */
  uint16_t cap;       /* heap capacity; 0 while inline */
  uint16_t distinct;  /* distinct items among them */
  uint8_t live;       /* holds a session (slots start empty) */
  union {
    uint32_t *heap;   /* owned, when cap > 0 */
    uint32_t inl[SESS_INLINE];
  } u;
} sess;

static const uint32_t *sess_items(const sess *s) {
  return s->cap ? s->u.heap : s->u.inl;
}

typedef struct item {
  uint32_t *post;     /* ring of session seqs, in the order added */
  uint32_t n, cap;    /* entries held; allocated (grows to item_cap) */
  uint32_t head;      /* the oldest entry once the ring has wrapped */
  uint32_t top;       /* position in the popularity list, or SKNN_NONE */
  uint64_t views;     /* every view ever added */
  uint64_t df;        /* sessions it appeared in, ever */
} item;

typedef struct open_slot {
  uint32_t key, seq;  /* key SKNN_NONE = empty */
} open_slot;

struct sknn_index {
  sknn_config cfg;
  item *item;
  uint32_t *views32;  /* by item: views (saturating), a dense copy read per
                         candidate by tailor's popularity factor */
  uint32_t nitems, item_alloc;
  sess *ring;
  uint16_t *sdist;    /* by slot: copies of ring[].distinct and .time, */
  int64_t *stime;     /* dense, for the neighbour search: a 64-byte record
                         read per candidate cost a cache miss each */
  uint64_t *srep;     /* by slot: bit i set when item i of the session
                         repeats an earlier one (i < 64) */
  uint32_t ring_alloc;
  uint32_t ring_mask; /* ring size - 1 (a power of two), or all ones */
  uint32_t next_seq;
  uint64_t sessions;  /* ever added */
  uint32_t live;
  uint64_t views, postings;
  int64_t latest;     /* largest session time seen */
  uint32_t top[POP_KEEP];
  uint32_t ntop;
  open_slot *open;    /* open sessions by caller id: linear probing */
  uint32_t open_cap, open_n;
};

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

/* The ring slot of session seq: a mask, not a division, since this runs
** for every list entry a query walks. */
static uint32_t slot_of(const sknn_index *x, uint32_t seq) {
  return seq & x->ring_mask;
}

/*
** Whether session seq is still held, without reading the ring: sessions
** leave strictly in arrival order, so seq is held exactly when fewer than a
** ring's worth of sessions came after it.  (Session numbers are 32-bit; a
** list entry 2^32 sessions old would be taken for a new one.)
*/
static int seq_live(const sknn_index *x, uint32_t seq) {
  return x->cfg.max_sessions == 0 || x->next_seq - seq <= x->cfg.max_sessions;
}

/* The live session numbered seq, or NULL when it was evicted. */
static const sess *sess_get(const sknn_index *x, uint32_t seq) {
  uint32_t s = slot_of(x, seq);
  if (s >= x->ring_alloc) return NULL;
  const sess *r = &x->ring[s];
  return r->live && r->seq == seq ? r : NULL;
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

/* The i-th most recent entry of an item's ring (i < n). */
static uint32_t post_recent(const item *it, uint32_t i) {
  uint32_t at = it->head + it->n - 1 - i; /* < 2 cap: no division */
  return it->post[at < it->cap ? at : at - it->cap];
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
                        const uint64_t *df) {
  if (nitems && items_reserve(x, nitems - 1)) return TAILOR_ENOMEM;
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

/* ** Parameters ---------------------------------------------------------- */

const char *sknn_kernel_name(sknn_kernel k) {
  static const char *const names[] = {
#define SKNN_KERNEL_NAME_(e, s) s,
      SKNN_KERNEL_MAP(SKNN_KERNEL_NAME_)
#undef SKNN_KERNEL_NAME_
  };
  return (unsigned)k < SKNN_KERNEL_COUNT ? names[k] : NULL;
}

int sknn_kernel_find(const char *name) {
  for (int k = 0; k < SKNN_KERNEL_COUNT; k++)
    if (strcmp(sknn_kernel_name((sknn_kernel)k), name) == 0) return k;
  return -1;
}

/* Which kernels read a parameter. */
#define K_(e) (1u << SKNN_##e)
#define K_NEIGH (K_(SKNN) | K_(VSKNN) | K_(STAN) | K_(TAILOR))
#define K_SEQ (K_(STAN) | K_(TAILOR))
#define K_ALL ((1u << SKNN_KERNEL_COUNT) - 1)

/* X(field, type U32|DBL, min, max, kernels reading it) */
#define SKNN_PARAM_MAP(X)                                  \
  X(k, U32, 1, 100000, K_NEIGH)                            \
  X(sample, U32, 1, 10000000, K_NEIGH | K_(ITEMKNN) | K_(TAILOR)) \
  X(window, U32, 0, 100000, K_NEIGH)                       \
  X(lambda1, DBL, 0, 1e9, K_SEQ)                           \
  X(lambda2, DBL, 0, 1e18, K_SEQ)                          \
  X(lambda3, DBL, 0, 1e9, K_SEQ)                           \
  X(before, DBL, 0, 1e9, K_(TAILOR))                       \
  X(idf, DBL, 0, 1e9, K_(VSKNN) | K_(TAILOR))              \
  X(repeat, DBL, 0, 1e9, K_(TAILOR))                       \
  X(repeat_decay, DBL, 0, 1e9, K_(TAILOR))                 \
  X(trans, DBL, 0, 1e9, K_(TAILOR))                        \
  X(trans_decay, DBL, 0, 1e9, K_(TAILOR))                  \
  X(trans_window, U32, 0, 100000, K_(TAILOR))              \
  X(trans_gap, U32, 1, 1000, K_(TAILOR))                   \
  X(trans_sample, U32, 1, 10000000, K_(TAILOR))            \
  X(multi, U32, 0, 1, K_(TAILOR))                          \
  X(pop_exp, DBL, -10, 10, K_(TAILOR))                     \
  X(shrink, DBL, 0, 1e12, K_(ITEMKNN))                     \
  X(alpha, DBL, 0, 1, K_(ITEMKNN))                         \
  X(fill, U32, 0, 1, K_ALL)

/*
** The defaults.  The neighbourhood kernels' values were chosen on the
** validation split of the Diginetica data (the last 10% of the training
** sessions turned into prefix->next pairs, the first 90% indexed; never
** the test pairs) by a coordinate search on P@20 + MRR@20, with time = the
** session's order number (about 1,300 sessions a day there, so lambda2 =
** 200000 is a mild decay of several months; rescale it for other time
** units).  The runs are listed in /work/scratch/sknn-report.md.  Item-KNN
** keeps the GRU4Rec paper's settings, since it is there to reproduce a
** published row.
**
** What validation said, briefly: a small per-item sample (the 50 most
** recent sessions of each item) beats 500 for every neighbourhood kernel,
** since recent sessions say more about what comes next; STAN's decays are
** wider than the paper's; and tailor's additions each add a little (the
** repeat boost, transitions, every shared item as a reference point, a
** mild popularity damping): 51.9 / 18.6 against STAN's 50.9 / 18.1.
*/
#define SKNN_DEFAULT_K 100
#define SKNN_DEFAULT_SAMPLE 50
#define SKNN_DEFAULT_ITEMKNN_SHRINK 20.0 /* GRU4Rec's lambda */
#define SKNN_DEFAULT_ITEMKNN_ALPHA 0.5   /* plain cosine */

void sknn_params_default(sknn_params *p, sknn_kernel k) {
  memset(p, 0, sizeof *p);
  p->kernel = k;
  p->k = SKNN_DEFAULT_K;
  p->sample = SKNN_DEFAULT_SAMPLE;
  p->before = 1;
  p->trans_gap = 1;
  p->trans_sample = SKNN_DEFAULT_SAMPLE;
  p->shrink = SKNN_DEFAULT_ITEMKNN_SHRINK;
  p->alpha = SKNN_DEFAULT_ITEMKNN_ALPHA;
  p->fill = 1;
  p->self = SKNN_NONE;
  switch (k) {
  case SKNN_ITEMKNN:
    p->sample = SKNN_DEFAULT_ITEM_CAP; /* every remembered session */
    break;
  case SKNN_SKNN:
    p->k = 200;
    break;
  case SKNN_VSKNN:
    p->k = 200;
    p->idf = 5;
    break;
  case SKNN_STAN:
    p->lambda1 = 2;
    p->lambda2 = 200000;
    p->lambda3 = 4;
    break;
  case SKNN_TAILOR:
    p->window = 5;      /* weight e^-2.5 at 5 back; more adds nothing */
    p->lambda1 = 2;
    p->lambda2 = 200000;
    p->lambda3 = 6;
    p->before = 0.9;
    p->multi = 1;
    p->pop_exp = -0.2;
    p->repeat = 2;
    p->repeat_decay = 2;
    p->trans = 0.05;
    p->trans_decay = 1;
    p->trans_window = 1;
    p->trans_gap = 3;
    p->trans_sample = 100;
    break;
  default:
    break;
  }
}

static int parse_u32(const char *s, uint32_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || v > UINT32_MAX || *s == '-') return -1;
  *out = (uint32_t)v;
  return 0;
}

static int parse_dbl(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v)) return -1;
  *out = v;
  return 0;
}

int sknn_params_set(sknn_params *p, const char *kv) {
  const char *eq = kv ? strchr(kv, '=') : NULL;
  if (!eq) return TAILOR_EINVAL;
  size_t klen = (size_t)(eq - kv);
  const char *val = eq + 1;
  if (klen == 6 && memcmp(kv, "kernel", 6) == 0) {
    int k = sknn_kernel_find(val);
    if (k < 0) return TAILOR_EINVAL;
    p->kernel = (sknn_kernel)k;
    return 0;
  }
#define SKNN_PARAM_SET_(f, T, lo, hi, ks)                               \
  if (klen == sizeof #f - 1 && memcmp(kv, #f, klen) == 0) {             \
    T##_t_ v;                                                           \
    if (parse_##T(val, &v) || (double)v < (lo) || (double)v > (hi))    \
      return TAILOR_EINVAL;                                             \
    p->f = v;                                                           \
    return 0;                                                           \
  }
  typedef uint32_t U32_t_;
  typedef double DBL_t_;
#define parse_U32 parse_u32
#define parse_DBL parse_dbl
  SKNN_PARAM_MAP(SKNN_PARAM_SET_)
#undef parse_U32
#undef parse_DBL
#undef SKNN_PARAM_SET_
  return TAILOR_EINVAL;
}

size_t sknn_params_format(const sknn_params *p, char *buf, size_t cap) {
  size_t len = 0;
  char tmp[64];
  unsigned bit = 1u << p->kernel;
#define SKNN_PARAM_FMT_(f, T, lo, hi, ks)                                 \
  if ((ks) & bit) {                                                       \
    int m = snprintf(tmp, sizeof tmp, "%s%s=%.6g", len ? " " : "", #f,    \
                     (double)p->f);                                       \
    if (m > 0) {                                                          \
      if (cap && len < cap - 1) {                                         \
        size_t room = cap - 1 - len, c = (size_t)m < room ? (size_t)m : room; \
        memcpy(buf + len, tmp, c);                                        \
      }                                                                   \
      len += (size_t)m;                                                   \
    }                                                                     \
  }
  SKNN_PARAM_MAP(SKNN_PARAM_FMT_)
#undef SKNN_PARAM_FMT_
  if (cap) buf[len < cap ? len : cap - 1] = '\0';
  return len;
}

/* ** Workspace ----------------------------------------------------------- */

/*
** A query's per-candidate state lives in a small open-addressing table keyed
** by item id, not in arrays as long as the catalog: a query meets a few
** hundred to a few thousand items, and a table that size stays in the
** core's cache from one query to the next, where a catalog-long array
** misses on nearly every touch (this halved the latency on Diginetica).
** Entries are "cleared" by stamps: an entry belongs to this query when its
** stamp equals w->stamp, so nothing is wiped between queries.
*/
#define WORK_MIN_SLOTS 4096
/* View counts whose views^pop_exp a workspace keeps in a table (kept from
** query to query while pop_exp stays the same). */
#define POP_TABLE 4096
/* Distinct counts whose 1/sqrt a workspace keeps in a table. */
#define INV_SQRT_TABLE 256
/* How far ahead in an item's session list to prefetch session records. */
#define PREFETCH_AHEAD 8

typedef struct cand {
  uint32_t item;
  uint32_t stamp;        /* in use by this query */
  uint32_t lmark;        /* lw valid: met in the current neighbour/source */
  uint32_t anchor;       /* prefix item of the best score contribution */
  uint32_t anchor2;      /* source item of the best transition share */
  float best, best2;     /* those contributions */
  float lw;              /* weight in the current neighbour or source */
  double score;          /* the kernel's score */
  double aux;            /* tailor's transition score */
} cand;

/* What a query keeps per prefix item (by item id; only prefix items). */
typedef struct pinfo {
  uint32_t ppos;         /* last position in the prefix, 1-based */
  uint32_t pcnt;         /* times in the prefix */
  double pw;             /* weight in the similarity */
} pinfo;

/* What a query keeps per candidate neighbour, in a second small table. */
typedef struct wsess {
  uint32_t seq;
  uint32_t stamp;        /* in use by this query */
  uint32_t match;        /* latest prefix position the session shares */
  double acc;            /* summed weight of the shared prefix items */
} wsess;

struct sknn_work {
  uint32_t stamp;        /* this query's stamp; 0 is never valid */
  uint32_t lstamp;       /* the current neighbour's or source's stamp */
  cand *tab;             /* candidates: open addressing, linear probing */
  uint32_t tcap, tbits;  /* slots (a power of two) and their log2 */
  uint32_t *touched, ntouched;    /* table slots of the candidates */
  uint32_t *ltouched, nltouched;  /* items of the current neighbour */
  int oom;               /* a table growth failed in this query */
  cand sink;             /* where touches go after that */
  uint64_t *pbits;       /* prefix membership, by item id */
  pinfo *pi;             /* by item id */
  uint32_t nitem;        /* item ids pbits and pi cover */
  uint32_t *pitems, npitems, pcap; /* distinct prefix items, latest first */
  wsess *st;             /* candidate neighbours: open addressing */
  uint32_t stcap, stbits;
  uint32_t *stouched, nst;  /* their table slots */
  double *ref_w;         /* a neighbour's reference weight per position */
  double *pos_w;         /* a neighbour's weight per position */
  double step;           /* exp(-1 / lambda3) */
  uint32_t len_cap;      /* ref_w and pos_w hold this many */
  topk_entry *nbr;       /* the neighbours */
  uint32_t nbr_cap;
  double isq[INV_SQRT_TABLE]; /* 1/sqrt(n) */
  double popf[POP_TABLE];     /* views^popf_exp, 0 = not computed yet */
  double popf_exp;
};

sknn_work *sknn_work_new(void) { return calloc(1, sizeof(sknn_work)); }

void sknn_work_free(sknn_work *w) {
  if (!w) return;
  free(w->tab);
  free(w->touched);
  free(w->ltouched);
  free(w->pbits);
  free(w->pi);
  free(w->pitems);
  free(w->st);
  free(w->stouched);
  free(w->ref_w);
  free(w->pos_w);
  free(w->nbr);
  free(w);
}

#define GROW_(ptr, n)                                                   \
  do {                                                                  \
    void *t_ = realloc((ptr), (size_t)(n) * sizeof *(ptr));             \
    if (!t_) return TAILOR_ENOMEM;                                      \
    (ptr) = t_;                                                         \
  } while (0)

/* A candidate table of 2^bits slots, with lists for half as many. */
static int table_alloc(sknn_work *w, uint32_t bits) {
  uint32_t cap = 1u << bits;
  cand *t = calloc(cap, sizeof *t);
  uint32_t *a = malloc((size_t)(cap / 2 + 1) * sizeof *a);
  uint32_t *b = malloc((size_t)(cap / 2 + 1) * sizeof *b);
  if (!t || !a || !b) {
    free(t);
    free(a);
    free(b);
    return TAILOR_ENOMEM;
  }
  if (w->tab) memcpy(b, w->ltouched, (size_t)w->nltouched * sizeof *b);
  free(w->touched);
  free(w->ltouched);
  w->touched = a;
  w->ltouched = b;
  cand *old = w->tab;
  uint32_t ocap = w->tcap;
  w->tab = t;
  w->tcap = cap;
  w->tbits = bits;
  uint32_t n = 0;
  for (uint32_t i = 0; i < ocap; i++) { /* rehash this query's entries */
    if (old[i].stamp != w->stamp || !w->stamp) continue;
    uint32_t j = (old[i].item * 0x9e3779b1u) >> (32 - bits);
    while (t[j].stamp == w->stamp) j = (j + 1) & (cap - 1);
    t[j] = old[i];
    a[n++] = j;
  }
  w->ntouched = n;
  free(old);
  return 0;
}

/* A neighbour table of 2^bits slots; this query's entries move over. */
static int stable_alloc(sknn_work *w, uint32_t bits) {
  uint32_t cap = 1u << bits;
  wsess *t = calloc(cap, sizeof *t);
  uint32_t *a = malloc((size_t)(cap / 2 + 1) * sizeof *a);
  if (!t || !a) {
    free(t);
    free(a);
    return TAILOR_ENOMEM;
  }
  uint32_t n = 0;
  for (uint32_t i = 0; w->stamp && i < w->stcap; i++) {
    if (w->st[i].stamp != w->stamp) continue;
    uint32_t j = (w->st[i].seq * 0x9e3779b1u) >> (32 - bits);
    while (t[j].stamp == w->stamp) j = (j + 1) & (cap - 1);
    t[j] = w->st[i];
    a[n++] = j;
  }
  w->nst = n;
  free(w->st);
  free(w->stouched);
  w->st = t;
  w->stouched = a;
  w->stcap = cap;
  w->stbits = bits;
  return 0;
}

/* The entry of candidate neighbour seq, added when new (*fresh set). */
static wsess *wsess_get(sknn_work *w, uint32_t seq, int *fresh) {
  uint32_t mask = w->stcap - 1;
  for (uint32_t i = (seq * 0x9e3779b1u) >> (32 - w->stbits);;
       i = (i + 1) & mask) {
    wsess *e = &w->st[i];
    if (e->stamp == w->stamp) {
      if (e->seq == seq) {
        *fresh = 0;
        return e;
      }
      continue;
    }
    if ((w->nst + 1) * 2 > w->stcap) {
      if (stable_alloc(w, w->stbits + 1)) return NULL;
      return wsess_get(w, seq, fresh);
    }
    e->seq = seq;
    e->stamp = w->stamp;
    w->stouched[w->nst++] = i;
    *fresh = 1;
    return e;
  }
}

/* Size the arrays to the index; new entries start invalid. */
static int work_fit(sknn_work *w, const sknn_index *x, uint32_t k) {
  if (!w->tab) {
    for (uint32_t i = 1; i < INV_SQRT_TABLE; i++) w->isq[i] = 1 / sqrt(i);
    uint32_t bits = 0;
    while ((1u << bits) < WORK_MIN_SLOTS) bits++;
    int rc = table_alloc(w, bits);
    if (rc) return rc;
  }
  if (w->nitem < x->nitems) {
    uint32_t n = x->nitems + x->nitems / 4 + 64, o = w->nitem;
    uint32_t ow = (o + 63) / 64, nw = (n + 63) / 64;
    GROW_(w->pbits, nw);
    memset(w->pbits + ow, 0, (size_t)(nw - ow) * sizeof *w->pbits);
    GROW_(w->pi, n);
    w->nitem = n;
  }
  if (!w->st) {
    uint32_t bits = 0;
    while ((1u << bits) < WORK_MIN_SLOTS) bits++;
    int rc = stable_alloc(w, bits);
    if (rc) return rc;
  }
  if (w->len_cap < x->cfg.max_len) {
    GROW_(w->ref_w, x->cfg.max_len);
    GROW_(w->pos_w, x->cfg.max_len);
    w->len_cap = x->cfg.max_len;
  }
  if (w->nbr_cap < k) {
    GROW_(w->nbr, k);
    w->nbr_cap = k;
  }
  return 0;
}

/* Start a query: a fresh stamp (on wrap every stamp is cleared) and the
** last query's prefix bits cleared. */
static void work_begin(sknn_work *w) {
  if (++w->stamp == 0) {
    for (uint32_t i = 0; i < w->tcap; i++) w->tab[i].stamp = 0;
    for (uint32_t i = 0; i < w->stcap; i++) w->st[i].stamp = 0;
    w->stamp = 1;
  }
  for (uint32_t i = 0; i < w->npitems; i++)
    w->pbits[w->pitems[i] / 64] &= ~(1ull << (w->pitems[i] % 64));
  w->ntouched = 0;
  w->nltouched = 0;
  w->nst = 0;
  w->npitems = 0;
  w->oom = 0;
}

static uint32_t cand_slot(const sknn_work *w, uint32_t e) {
  return (e * 0x9e3779b1u) >> (32 - w->tbits);
}

/* The candidate entry of item e, or NULL. */
static cand *cand_find(const sknn_work *w, uint32_t e) {
  uint32_t mask = w->tcap - 1;
  for (uint32_t i = cand_slot(w, e);; i = (i + 1) & mask) {
    cand *c = &w->tab[i];
    if (c->stamp != w->stamp) return NULL;
    if (c->item == e) return c;
  }
}

static cand *cand_get(sknn_work *w, uint32_t e);

/* Make room in a full table, then look again (the slow path). */
static __attribute__((noinline)) cand *cand_grow(sknn_work *w, uint32_t e) {
  if (w->oom || table_alloc(w, w->tbits + 1)) {
    w->oom = 1;
    return &w->sink;
  }
  return cand_get(w, e);
}

/* The candidate entry of item e, added (score 0) when new.  The table
** stays at most half full; if growing it fails the query is spoiled
** (w->oom) and touches land in a sink. */
static inline cand *cand_get(sknn_work *w, uint32_t e) {
  uint32_t mask = w->tcap - 1;
  for (uint32_t i = cand_slot(w, e);; i = (i + 1) & mask) {
    cand *c = &w->tab[i];
    if (c->stamp == w->stamp) {
      if (c->item == e) return c;
      continue;
    }
    if ((w->ntouched + 1) * 2 > w->tcap) return cand_grow(w, e);
    c->item = e;
    c->stamp = w->stamp;
    c->lmark = 0;
    c->anchor = c->anchor2 = SKNN_NONE;
    c->best = c->best2 = c->lw = 0;
    c->score = c->aux = 0;
    w->touched[w->ntouched++] = i;
    return c;
  }
}

/* Add to the main score, remembering which prefix item gave the most. */
static void add_score(sknn_work *w, uint32_t e, double v, uint32_t anchor) {
  cand *c = cand_get(w, e);
  c->score += v;
  if (v > c->best) {
    c->best = (float)v;
    c->anchor = anchor;
  }
}

static void add_aux(sknn_work *w, uint32_t e, double v, uint32_t anchor) {
  cand *c = cand_get(w, e);
  c->aux += v;
  if (v > c->best2) {
    c->best2 = (float)v;
    c->anchor2 = anchor;
  }
}

/* Start a neighbour (or a transition source): items met afresh. */
static void work_next_local(sknn_work *w) {
  if (++w->lstamp == 0) {
    for (uint32_t i = 0; i < w->tcap; i++) w->tab[i].lmark = 0;
    w->lstamp = 1;
  }
  w->nltouched = 0;
}

/* The entry of e in the current neighbour; lw is reset when first met. */
static cand *local_get(sknn_work *w, uint32_t e, int *first) {
  cand *c = cand_get(w, e);
  *first = c->lmark != w->lstamp;
  if (*first && c != &w->sink) {
    c->lmark = w->lstamp;
    c->lw = 0;
    w->ltouched[w->nltouched++] = e;
  }
  return c;
}

/* ** Kernels ------------------------------------------------------------- */

/* What a query knows about its prefix. */
typedef struct query {
  const sknn_index *x;
  const sknn_params *p;
  sknn_work *w;
  const uint32_t *prefix;
  uint32_t len;           /* prefix length, unknown ids included */
} query;

static int in_prefix(const sknn_work *w, uint32_t e) {
  return e < w->nitem && (w->pbits[e / 64] >> (e % 64) & 1);
}

static double decay(double d, double lambda) {
  return lambda > 0 ? exp(-d / lambda) : 1.0;
}

static double idf_of(const sknn_index *x, uint32_t e) {
  uint64_t df = x->item[e].df;
  return df ? log((double)x->sessions / (double)df) : 0;
}

/* 1/sqrt(n) for a session's distinct item count, from a table. */
static double inv_sqrt(const sknn_work *w, uint32_t n) {
  return n < INV_SQRT_TABLE ? w->isq[n] : 1 / sqrt((double)n);
}

/* The weight of prefix item e in the similarity, per kernel. */
static double prefix_weight(const query *q, uint32_t e) {
  uint32_t pos = q->w->pi[e].ppos;
  switch (q->p->kernel) {
  case SKNN_VSKNN: /* linear: the last item 1, the first 1/len */
    return (double)pos / q->len;
  case SKNN_STAN:
  case SKNN_TAILOR:
    return decay(q->len - pos, q->p->lambda1);
  default:
    return 1.0;
  }
}

/*
** Neighbours: the sessions that share an item with the prefix, among the
** `sample` most recent sessions of each of the `window` latest distinct
** prefix items.  Each candidate's overlap is summed while walking those
** lists (one visit per shared item, so no session is read item by item):
**   sknn          |P n N| / sqrt(|P| |N|)
**   vsknn         sum_{i in P n N} pos(i)/len / |P|
**   stan, tailor  sum_{i in P n N} exp(-(len-pos(i))/l1) / sqrt(|P| |N|)
**                 * exp(-(latest - time(N))/l2)
** An item outside the window (or a session outside an item's sample) adds
** nothing to the overlap: with the position decays the window is chosen
** for, those weights are negligible.  The k best go to w->nbr, each with
** the prefix position of its latest shared item in aux (ties: the newer
** session first).
*/
static uint32_t find_neighbours(const query *q) {
  const sknn_index *x = q->x;
  const sknn_params *p = q->p;
  sknn_work *w = q->w;
  uint32_t nwin = p->window && p->window < w->npitems ? p->window
                                                      : w->npitems;
  for (uint32_t a = 0; a < w->npitems; a++)
    w->pi[w->pitems[a]].pw = prefix_weight(q, w->pitems[a]);
  for (uint32_t a = 0; a < nwin; a++) {
    uint32_t e = w->pitems[a], pos = w->pi[e].ppos;
    const item *it = &x->item[e];
    double wt = w->pi[e].pw;
    uint32_t m = it->n < p->sample ? it->n : p->sample;
    for (uint32_t r = 0; r < m; r++) {
      uint32_t seq = post_recent(it, r);
      if (!seq_live(x, seq)) continue;
      if (p->self != SKNN_NONE) {
        const sess *s = sess_get(x, seq);
        if (s->key != SKNN_NONE && s->key == p->self) continue;
      }
      int fresh;
      wsess *c = wsess_get(w, seq, &fresh);
      if (!c) {
        w->oom = 1;
        return 0;
      }
      if (fresh) {
        c->acc = 0;
        c->match = pos;
      }
      c->acc += wt;
      if (pos > c->match) c->match = pos;
    }
  }
  topk h;
  topk_init(&h, w->nbr, p->k);
  double plen = (double)w->npitems, inv_sqrt_plen = 1 / sqrt(plen);
  int timed = (p->kernel == SKNN_STAN || p->kernel == SKNN_TAILOR) &&
              p->lambda2 > 0;
  for (uint32_t i = 0; i < w->nst; i++) {
    if (i + PREFETCH_AHEAD < w->nst) {
      uint32_t ps = slot_of(x, w->st[w->stouched[i + PREFETCH_AHEAD]].seq);
      __builtin_prefetch(&x->sdist[ps]);
      if (timed) __builtin_prefetch(&x->stime[ps]);
    }
    const wsess *c = &w->st[w->stouched[i]];
    uint32_t slot = slot_of(x, c->seq);
    double sim = p->kernel == SKNN_VSKNN
                     ? c->acc / plen
                     : c->acc * inv_sqrt_plen * inv_sqrt(w, x->sdist[slot]);
    /* The recency decay is at most 1: skip its exp (and the read of the
    ** session's time) when even the undecayed similarity cannot enter. */
    if (sim <= 0 || sim < topk_floor(&h)) continue;
    if (timed) {
      sim *= exp(-(double)(x->latest - x->stime[slot]) / p->lambda2);
      if (sim < topk_floor(&h)) continue;
    }
    topk_push(&h, ~c->seq, c->match, sim);
  }
  /* Heap order, not sorted: scoring does not need the order, only a fixed
  ** one. */
  return (uint32_t)h.n;
}

/*
** Score the neighbours' items into the main score:
**   sknn    sim
**   vsknn   sim / step * (1 + idf * log(N/df)), step = how far back in the
**           prefix the latest shared item is (1 = the last item)
**   stan    sim * exp(-|d| / l3), d = distance inside the neighbour from
**           the latest shared item (its last occurrence) to the item (its
**           nearest occurrence)
**   tailor  as stan, items before the shared item weighted by `before`;
**           with multi, every shared item is a reference point, scaled by
**           its position weight relative to the latest one, and the item
**           takes its best; then (1 + idf * log(N/df))
** The anchor of a contribution is the latest shared item.
*/
static void score_neighbours(const query *q, uint32_t nn) {
  const sknn_index *x = q->x;
  const sknn_params *p = q->p;
  sknn_work *w = q->w;
  int is_tailor = p->kernel == SKNN_TAILOR;
  int seq_aware = p->kernel == SKNN_STAN || is_tailor;
  int multi = is_tailor && p->multi;
  double idf = p->kernel == SKNN_VSKNN || is_tailor ? p->idf : 0;
  double before = is_tailor ? p->before : 1;
  w->step = decay(1, p->lambda3);
  /* The neighbours are known now: ask for their records a few ahead, so
  ** the memory system fetches them while earlier ones are scored instead
  ** of one miss at a time (most of a query's time went to waiting). */
  for (uint32_t r = 0; r < nn && r < PREFETCH_AHEAD; r++)
    __builtin_prefetch(&x->ring[slot_of(x, ~w->nbr[r].id)]);
  for (uint32_t r = 0; r < nn; r++) {
    if (r + PREFETCH_AHEAD < nn)
      __builtin_prefetch(&x->ring[slot_of(x, ~w->nbr[r + PREFETCH_AHEAD].id)]);
    if (r + 2 < nn) { /* its record was asked for a while ago */
      const sess *nx = &x->ring[slot_of(x, ~w->nbr[r + 2].id)];
      if (nx->cap) __builtin_prefetch(nx->u.heap);
    }
    const sess *s = sess_get(x, ~w->nbr[r].id);
    const uint32_t *items = sess_items(s);
    double sim = w->nbr[r].score;
    uint32_t mpos = w->nbr[r].aux, m = q->prefix[mpos - 1];
    if (p->kernel == SKNN_VSKNN) sim /= (double)(q->len - mpos + 1);
    /* Each position's weight; an item takes its best occurrence. */
    double *pw = w->pos_w;
    if (seq_aware) {
      /* The reference points (the shared items) and their weights. */
      /* max over references of ref * exp(-|i - a| / l3), times `before`
      ** for references after i: since exp(-(d+1)/l) = exp(-d/l) r, one
      ** sweep each way does it in O(n). */
      double *ref = w->ref_w, wm = w->pi[m].pw, f = 0, b = 0;
      uint32_t last = 0;
      for (uint32_t i = 0; i < s->n; i++) {
        uint32_t e = items[i];
        double v = 0;
        if (e == m) {
          v = 1;
          last = i;
        } else if (multi && in_prefix(w, e)) {
          v = w->pi[e].pw / wm;
        }
        ref[i] = v;
        f *= w->step;
        if (v > f) f = v;
        pw[i] = f;
      }
      if (!multi) { /* STAN: only the last occurrence of the match */
        f = 0;
        for (uint32_t i = 0; i < s->n; i++) {
          if (i < last) ref[i] = 0;
          f = i == last ? 1 : f * w->step;
          pw[i] = f;
        }
      }
      for (uint32_t i = s->n; i-- > 0;) {
        if (before * b > pw[i]) pw[i] = before * b;
        if (ref[i] > b) b = ref[i];
        b *= w->step;
      }
    } else {
      for (uint32_t i = 0; i < s->n; i++) pw[i] = 1;
    }
    if (s->distinct == s->n) {
      /* No repeats (most sessions): each position is its item. */
      for (uint32_t i = 0; i < s->n; i++) {
        double v = sim * pw[i];
        if (idf > 0) v *= 1 + idf * idf_of(x, items[i]);
        if (v > 0) add_score(w, items[i], v, m);
      }
      continue;
    }
    if (s->n <= REP_BITS) {
      /* Repeats flagged: an item is credited at its first occurrence with
      ** the best weight among its flagged later ones. */
      uint64_t rep = x->srep[slot_of(x, s->seq)];
      for (uint32_t i = 0; i < s->n; i++) {
        if (rep >> i & 1) continue;
        uint32_t e = items[i];
        double wt = pw[i];
        for (uint64_t later = i + 1 < 64 ? rep >> (i + 1) << (i + 1) : 0;
             later; later &= later - 1) {
          uint32_t j = (uint32_t)__builtin_ctzll(later);
          if (items[j] == e && pw[j] > wt) wt = pw[j];
        }
        double v = sim * wt;
        if (idf > 0) v *= 1 + idf * idf_of(x, e);
        if (v > 0) add_score(w, e, v, m);
      }
      continue;
    }
    work_next_local(w);
    for (uint32_t i = 0; i < s->n; i++) {
      int first;
      cand *c = local_get(w, items[i], &first);
      if (first || pw[i] > c->lw) c->lw = (float)pw[i];
    }
    for (uint32_t i = 0; i < w->nltouched; i++) {
      uint32_t e = w->ltouched[i];
      double v = sim * cand_find(w, e)->lw;
      if (idf > 0) v *= 1 + idf * idf_of(x, e);
      if (v > 0) add_score(w, e, v, m);
    }
  }
}

/*
** Sequential transitions for tailor, into aux: for each of the latest
** trans_window distinct prefix items i (weight exp(-(len-pos)/trans_decay)),
** the share of the views that followed i (up to trans_gap ahead, weighted
** 1/gap, in its trans_sample most recent sessions) that went to each item:
** an estimate of P(next | i).
*/
static void score_transitions(const query *q) {
  const sknn_index *x = q->x;
  const sknn_params *p = q->p;
  sknn_work *w = q->w;
  uint32_t nwin = p->trans_window < w->npitems ? p->trans_window
                                               : w->npitems;
  for (uint32_t a = 0; a < nwin; a++) {
    uint32_t src = w->pitems[a];
    const item *it = &x->item[src];
    double ws = decay(q->len - w->pi[src].ppos, p->trans_decay);
    uint32_t m = it->n < p->trans_sample ? it->n : p->trans_sample;
    work_next_local(w);
    double total = 0;
    for (uint32_t r = 0; r < m; r++) {
      if (r + PREFETCH_AHEAD < m)
        __builtin_prefetch(
            &x->ring[slot_of(x, post_recent(it, r + PREFETCH_AHEAD))]);
      const sess *s = sess_get(x, post_recent(it, r));
      if (!s) continue;
      const uint32_t *items = sess_items(s);
      for (uint32_t i = 0; i < s->n; i++) {
        if (items[i] != src) continue;
        for (uint32_t g = 1; g <= p->trans_gap && i + g < s->n; g++) {
          int first;
          cand *c = local_get(w, items[i + g], &first);
          c->lw += 1.0f / (float)g;
          total += 1.0 / g;
        }
      }
    }
    if (total <= 0) continue;
    for (uint32_t i = 0; i < w->nltouched; i++) {
      uint32_t e = w->ltouched[i];
      add_aux(w, e, ws * cand_find(w, e)->lw / total, src);
    }
  }
}

/* views^pop_exp of an item, from the workspace's table when it can. */
static double pop_factor(const query *q, uint32_t e) {
  sknn_work *w = q->w;
  uint32_t v = q->x->views32[e];
  if (v >= POP_TABLE) return exp(q->p->pop_exp * log((double)v));
  if (w->popf_exp != q->p->pop_exp) {
    memset(w->popf, 0, sizeof w->popf);
    w->popf_exp = q->p->pop_exp;
  }
  if (w->popf[v] == 0) w->popf[v] = exp(q->p->pop_exp * log((double)v));
  return w->popf[v];
}

/*
** tailor = neighbours (stan-like, see score_neighbours), each item's score
**          times views^pop_exp, normalised to a best of 1
**        + trans * transitions, normalised to a best of 1
**        + repeat * sum over the item's prefix positions of
**          exp(-(len-pos)/repeat_decay)          (the repeat-aware boost)
*/
static void score_tailor(const query *q) {
  const sknn_params *p = q->p;
  sknn_work *w = q->w;
  score_neighbours(q, find_neighbours(q));
  if (p->trans > 0) score_transitions(q);
  double mk = 0, mt = 0;
  for (uint32_t i = 0; i < w->ntouched; i++) {
    cand *c = &w->tab[w->touched[i]];
    if (p->pop_exp != 0 && c->score > 0)
      c->score *= pop_factor(q, c->item);
    if (c->score > mk) mk = c->score;
    if (c->aux > mt) mt = c->aux;
  }
  double fk = mk > 0 ? 1 / mk : 0, ft = mt > 0 ? p->trans / mt : 0;
  for (uint32_t i = 0; i < w->ntouched; i++) {
    cand *c = &w->tab[w->touched[i]];
    c->score = c->score * fk + c->aux * ft;
    if (c->anchor == SKNN_NONE) c->anchor = c->anchor2;
  }
  if (p->repeat > 0) {
    for (uint32_t i = 0; i < q->len; i++) {
      uint32_t e = q->prefix[i];
      if (!in_prefix(w, e)) continue;
      cand *c = cand_get(w, e);
      c->score += p->repeat * decay(q->len - 1 - i, p->repeat_decay);
      if (c->anchor == SKNN_NONE) c->anchor = e;
    }
  }
}

/*
** Item-KNN (GRU4Rec's baseline): for the last known prefix item i, every
** item j co-viewed with it in i's remembered sessions, scored
**   co(i,j) / ((views_i + shrink)^alpha * (views_j + shrink)^(1-alpha))
** where co counts pairs of views (i's views times j's in a session).  The
** item itself is left out, as in the original.
*/
static void score_itemknn(const query *q) {
  const sknn_index *x = q->x;
  const sknn_params *p = q->p;
  sknn_work *w = q->w;
  if (!w->npitems) return;
  uint32_t src = w->pitems[0]; /* the latest known item */
  const item *it = &x->item[src];
  uint32_t m = it->n < p->sample ? it->n : p->sample;
  for (uint32_t r = 0; r < m; r++) {
    const sess *s = sess_get(x, post_recent(it, r));
    if (!s) continue;
    const uint32_t *items = sess_items(s);
    uint32_t ci = 0;
    for (uint32_t i = 0; i < s->n; i++) ci += items[i] == src;
    for (uint32_t i = 0; i < s->n; i++)
      if (items[i] != src) add_score(w, items[i], ci, src);
  }
  double ni = pow((double)it->views + p->shrink, p->alpha);
  for (uint32_t i = 0; i < w->ntouched; i++) {
    cand *c = &w->tab[w->touched[i]];
    double norm =
        ni * pow((double)x->item[c->item].views + p->shrink, 1 - p->alpha);
    c->score = norm > 0 ? c->score / norm : 0;
  }
}

/* S-POP: count in the prefix, ties by global popularity. */
static void score_spop(const query *q) {
  const sknn_index *x = q->x;
  sknn_work *w = q->w;
  double top = x->ntop ? (double)x->item[x->top[0]].views : 0;
  for (uint32_t i = 0; i < w->npitems; i++) {
    uint32_t e = w->pitems[i];
    add_score(w, e, w->pi[e].pcnt + (double)x->item[e].views / (1 + top), e);
  }
}

static int listed(const sknn_work *w, uint32_t e) {
  const cand *c = cand_find(w, e);
  return c && c->score > 0;
}

/* Rows k0.. filled with the most viewed items not already listed, in
** order, no anchor, score 0 (or their views for pop).  Returns the new row
** count. */
static size_t fill_popular(const query *q, topk_entry *out, size_t k0,
                           size_t k, int pop_scores) {
  const sknn_index *x = q->x;
  const sknn_work *w = q->w;
  size_t n = k0;
  for (uint32_t i = 0; i < x->ntop && n < k; i++) {
    uint32_t e = x->top[i];
    if (listed(w, e)) continue;
    out[n].id = e;
    out[n].aux = SKNN_NONE;
    out[n].score = pop_scores ? (double)x->item[e].views : 0;
    n++;
  }
  if (n < k && x->ntop == POP_KEEP) {
    /* Past the kept list: rank every other viewed item by views. */
    topk h;
    topk_init(&h, out + n, k - n);
    for (uint32_t e = 0; e < x->nitems; e++) {
      if (x->item[e].views == 0 || x->item[e].top != SKNN_NONE) continue;
      if (listed(w, e)) continue;
      topk_push(&h, e, SKNN_NONE, (double)x->item[e].views);
    }
    size_t m = topk_sorted(&h);
    for (size_t i = 0; i < m; i++)
      if (!pop_scores) out[n + i].score = 0;
    n += m;
  }
  return n;
}

int sknn_query(const sknn_index *x, const uint32_t *prefix, size_t n,
               const sknn_params *p, sknn_work *w, topk_entry *out,
               size_t k) {
  if (!x || !p || !w || (!prefix && n) || (!out && k)) return TAILOR_EINVAL;
  if ((unsigned)p->kernel >= SKNN_KERNEL_COUNT || p->k == 0 ||
      n > UINT32_MAX / 2 || k > INT32_MAX)
    return TAILOR_EINVAL;
  if (k == 0) return 0;
  int rc = work_fit(w, x, p->k);
  if (rc) return rc;
  work_begin(w);
  query q = {x, p, w, prefix, (uint32_t)n};

  /* The prefix: distinct known items, their last positions and counts. */
  for (uint32_t i = 0; i < q.len; i++) {
    uint32_t e = prefix[i];
    if (e >= x->nitems || x->item[e].views == 0) continue;
    if (!in_prefix(w, e)) {
      w->pbits[e / 64] |= 1ull << (e % 64);
      w->pi[e].pcnt = 0;
      if (w->npitems == w->pcap) {
        uint32_t ncap = w->pcap ? 2 * w->pcap : 64;
        uint32_t *t = realloc(w->pitems, (size_t)ncap * sizeof *t);
        if (!t) return TAILOR_ENOMEM;
        w->pitems = t;
        w->pcap = ncap;
      }
      w->pitems[w->npitems++] = e;
    }
    w->pi[e].ppos = i + 1;
    w->pi[e].pcnt++;
  }
  /* Latest first (insertion sort: prefixes are short and nearly sorted). */
  for (uint32_t i = 1; i < w->npitems; i++) {
    uint32_t e = w->pitems[i], j = i;
    for (; j > 0 && w->pi[w->pitems[j - 1]].ppos < w->pi[e].ppos; j--)
      w->pitems[j] = w->pitems[j - 1];
    w->pitems[j] = e;
  }

  switch (p->kernel) {
  case SKNN_POP:
    return (int)fill_popular(&q, out, 0, k, 1);
  case SKNN_SPOP:
    score_spop(&q);
    break;
  case SKNN_ITEMKNN:
    score_itemknn(&q);
    break;
  case SKNN_TAILOR:
    score_tailor(&q);
    break;
  default:
    score_neighbours(&q, find_neighbours(&q));
    break;
  }
  if (w->oom) return TAILOR_ENOMEM;

  topk h;
  topk_init(&h, out, k);
  for (uint32_t i = 0; i < w->ntouched; i++) {
    const cand *c = &w->tab[w->touched[i]];
    if (c->score > 0 && c->score >= topk_floor(&h))
      topk_push(&h, c->item, c->anchor, c->score);
  }
  size_t got = topk_sorted(&h);
  if (got < k && p->fill) got = fill_popular(&q, out, got, k, 0);
  return (int)got;
}
