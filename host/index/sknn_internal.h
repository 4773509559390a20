/*
** sknn_internal.h: what the session kernels' files share, and nothing
** outside them includes.  The public API is sknn.h; the files are
**   sknn.c          the session index: the ring of sessions, each item's
**                   ring of recent sessions, the open sessions, popularity;
**                   writes, figures and what checkpoints save and restore
**   sknn_params.c   kernel names, the parameter table and its defaults
**   sknn_work.c     a query's scratch space: candidate and neighbour tables
**   sknn_query.c    sknn_query: the prefix, the kernel, the k best rows
**   sknn_pop.c      pop, spop, and the popularity fill of short lists
**   sknn_itemknn.c  itemknn
**   sknn_knn.c      neighbour sessions: sknn, vsknn and stan, and the
**                   neighbour part of tailor
**   sknn_tailor.c   tailor: neighbours, transitions, the repeat boost
**
** The structures are here because the kernels walk them directly.  The
** helpers are static inline because a query calls them for every list
** entry, neighbour item or candidate it meets; a call into another file
** there would cost speed.  What runs once per query is a plain function,
** named sknn_* with the file it lives in.
*/
#ifndef TAILOR_SKNN_INTERNAL_H
#define TAILOR_SKNN_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "index/sknn.h"
#include "index/topk.h"

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

static inline const uint32_t *sess_items(const sess *s) {
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

/* The ring slot of session seq: a mask, not a division, since this runs
** for every list entry a query walks. */
static inline uint32_t slot_of(const sknn_index *x, uint32_t seq) {
  return seq & x->ring_mask;
}

/*
** Whether session seq is still held, without reading the ring: sessions
** leave strictly in arrival order, so seq is held exactly when fewer than a
** ring's worth of sessions came after it.  (Session numbers are 32-bit; a
** list entry 2^32 sessions old would be taken for a new one.)
*/
static inline int seq_live(const sknn_index *x, uint32_t seq) {
  return x->cfg.max_sessions == 0 || x->next_seq - seq <= x->cfg.max_sessions;
}

/* The live session numbered seq, or NULL when it was evicted. */
static inline const sess *sess_get(const sknn_index *x, uint32_t seq) {
  uint32_t s = slot_of(x, seq);
  if (s >= x->ring_alloc) return NULL;
  const sess *r = &x->ring[s];
  return r->live && r->seq == seq ? r : NULL;
}

/* The i-th most recent entry of an item's ring (i < n). */
static inline uint32_t post_recent(const item *it, uint32_t i) {
  uint32_t at = it->head + it->n - 1 - i; /* < 2 cap: no division */
  return it->post[at < it->cap ? at : at - it->cap];
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
/* Session counts (an item's df) whose log a workspace keeps in a table:
** the idf of a neighbour's item is then a lookup, not a log per item met. */
#define LOG_TABLE 4096
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
  uint32_t support;      /* neighbour sessions that scored it */
  float trans_last;      /* tailor: its share of the views after the
                            latest prefix item (that source alone) */
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
  double logt[LOG_TABLE];     /* log(n) */
  double logn;           /* log(sessions) for this query's idf */
  double popf[POP_TABLE];     /* views^popf_exp, 0 = not computed yet */
  double popf_exp;
  double trans_scale;    /* tailor: what the last query multiplied the
                            transition scores by (sknn_tailor_parts) */
  double nbr_scale;      /* and the neighbours' scores (times views^pop_exp) */
  uint32_t nneighbours;  /* the neighbour sessions the last query found */
};

/* sknn_work.c: size the workspace to the index and to k neighbours (0, or
** TAILOR_ENOMEM); start a query (a fresh stamp, the last prefix cleared). */
int sknn_work_fit(sknn_work *w, const sknn_index *x, uint32_t k);
void sknn_work_begin(sknn_work *w);

/* sknn_work.c: the neighbour table at 2^bits slots, this query's entries
** moved over (0, or TAILOR_ENOMEM). */
int sknn_work_grow_neighbours(sknn_work *w, uint32_t bits);

/* sknn_work.c: the slow path of cand_get, out of line: make room in a full
** candidate table and look again; the sink when growing fails. */
cand *sknn_cand_grow(sknn_work *w, uint32_t e);

/* The entry of candidate neighbour seq, added when new (*fresh set). */
static inline wsess *wsess_get(sknn_work *w, uint32_t seq, int *fresh) {
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
      if (sknn_work_grow_neighbours(w, w->stbits + 1)) return NULL;
      return wsess_get(w, seq, fresh);
    }
    e->seq = seq;
    e->stamp = w->stamp;
    w->stouched[w->nst++] = i;
    *fresh = 1;
    return e;
  }
}

static inline uint32_t cand_slot(const sknn_work *w, uint32_t e) {
  return (e * 0x9e3779b1u) >> (32 - w->tbits);
}

/* The candidate entry of item e, or NULL. */
static inline cand *cand_find(const sknn_work *w, uint32_t e) {
  uint32_t mask = w->tcap - 1;
  for (uint32_t i = cand_slot(w, e);; i = (i + 1) & mask) {
    cand *c = &w->tab[i];
    if (c->stamp != w->stamp) return NULL;
    if (c->item == e) return c;
  }
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
    if ((w->ntouched + 1) * 2 > w->tcap) return sknn_cand_grow(w, e);
    c->item = e;
    c->stamp = w->stamp;
    c->lmark = 0;
    c->anchor = c->anchor2 = SKNN_NONE;
    c->best = c->best2 = c->lw = 0;
    c->support = 0;
    c->trans_last = 0;
    c->score = c->aux = 0;
    w->touched[w->ntouched++] = i;
    return c;
  }
}

/* Add to the main score, remembering which prefix item gave the most;
** the candidate's entry. */
static inline cand *add_score(sknn_work *w, uint32_t e, double v,
                              uint32_t anchor) {
  cand *c = cand_get(w, e);
  c->score += v;
  if (v > c->best) {
    c->best = (float)v;
    c->anchor = anchor;
  }
  return c;
}

/* add_score for a neighbour session's item, counting the neighbours that
** hold it (the re-ranker reads the count). */
static inline void add_neighbour_score(sknn_work *w, uint32_t e, double v,
                                       uint32_t anchor) {
  add_score(w, e, v, anchor)->support++;
}

static inline void add_aux(sknn_work *w, uint32_t e, double v,
                           uint32_t anchor) {
  cand *c = cand_get(w, e);
  c->aux += v;
  if (v > c->best2) {
    c->best2 = (float)v;
    c->anchor2 = anchor;
  }
}

/* Start a neighbour (or a transition source): items met afresh. */
static inline void work_next_local(sknn_work *w) {
  if (++w->lstamp == 0) {
    for (uint32_t i = 0; i < w->tcap; i++) w->tab[i].lmark = 0;
    w->lstamp = 1;
  }
  w->nltouched = 0;
}

/* The entry of e in the current neighbour; lw is reset when first met. */
static inline cand *local_get(sknn_work *w, uint32_t e, int *first) {
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

static inline int in_prefix(const sknn_work *w, uint32_t e) {
  return e < w->nitem && (w->pbits[e / 64] >> (e % 64) & 1);
}

static inline double decay(double d, double lambda) {
  return lambda > 0 ? exp(-d / lambda) : 1.0;
}

static inline double idf_of(const sknn_index *x, const sknn_work *w,
                            uint32_t e) {
  uint64_t df = x->item[e].df;
  if (!df) return 0;
  return w->logn - (df < LOG_TABLE ? w->logt[df] : log((double)df));
}

/* 1/sqrt(n) for a session's distinct item count, from a table. */
static inline double inv_sqrt(const sknn_work *w, uint32_t n) {
  return n < INV_SQRT_TABLE ? w->isq[n] : 1 / sqrt((double)n);
}

/*
** The kernels: each scores the candidates of q->w (score, anchor) for
** sknn_query to rank; their formulas are above their definitions.
*/

/* sknn_knn.c: the k best neighbour sessions into w->nbr (returns their
** count), then their items scored into the candidates. */
uint32_t sknn_find_neighbours(const query *q);
void sknn_score_neighbours(const query *q, uint32_t nn);

/* sknn_tailor.c: tailor's neighbours, transitions and repeat boost. */
void sknn_score_tailor(const query *q);

/* sknn_itemknn.c: the last known prefix item's co-viewed items. */
void sknn_score_itemknn(const query *q);

/* sknn_pop.c: spop's scores, and rows k0.. of out filled with popular
** items (pop's answer, and the fill of short lists). */
void sknn_score_spop(const query *q);
size_t sknn_fill_popular(const query *q, topk_entry *out, size_t k0, size_t k,
                         int pop_scores);

#endif /* TAILOR_SKNN_INTERNAL_H */
