/*
** sknn.h: session-based next-item kernels.  Given the items a visitor viewed
** so far in this session, in order, which item comes next?
**
** An sknn_index remembers past sessions (bounded: a ring of the most recent
** sessions, and for each item the most recent sessions it appeared in) and
** answers with one of several kernels of the same shape:
**
**   pop      global popularity (views counted over everything ingested)
**   spop     session popularity: the prefix's items by count in the prefix,
**            ties and the rest by global popularity
**   itemknn  cosine of the last item with every item on session
**            co-occurrence (the GRU4Rec paper's Item-KNN baseline)
**   sknn     session-kNN: cosine on item sets (Jannach & Ludewig 2017)
**   vsknn    V-SKNN: linearly decayed positions, neighbour weight by the
**            position of the match, IDF (Ludewig & Jannach 2018)
**   stan     STAN: exponential position decay in the session, recency of the
**            neighbour, distance to the match inside the neighbour
**            (Garg et al., SIGIR 2019)
**   tailor   STAN where every shared item is a reference point inside the
**            neighbour (items before it slightly discounted), damped by
**            popularity, blended with item-to-item sequential transitions
**            and a repeat-aware boost for the prefix's own (recent) items;
**            the kernel of the shipped strategies.  On Diginetica (SR-GNN
**            protocol, parameters chosen on validation) it scores P@20
**            53.36 / MRR@20 19.10 against SR-GNN's 50.73 / 17.59.
**
** Items are dense uint32 ids interned elsewhere (index/intern.h); the index
** grows to the largest id it sees, up to SKNN_MAX_ITEM.
**
** Memory: per item 44 bytes plus 4 per remembered session (at most
** item_cap); per remembered session 82 bytes, plus 4 per item past the
** tenth.  Diginetica's 186,670 sessions and 43,097 items take 28 MB.  A
** workspace takes about 300 KB plus 20 bytes per item.
**
** Threads: writes (sknn_add_*, sknn_end_session) need exclusive access.
** Queries only read the index and keep every scratch array in a caller-owned
** sknn_work, so any number of threads may query at once, each with its own
** work.  Results are deterministic: equal scores rank the smaller item id
** first (popularity fill rows, score 0, follow in popularity order).
**
** Errors: functions that can fail return 0 or a negative tailor_code
** (TAILOR_EINVAL, TAILOR_ENOMEM; include/tailor.h).
**
** Where it lives: sknn.c (the index), sknn_params.c (names, parameters,
** defaults), sknn_work.c (the workspace), sknn_query.c (sknn_query), and a
** file per kernel family: sknn_pop.c, sknn_itemknn.c, sknn_knn.c,
** sknn_tailor.c; sknn_internal.h is what they share.
*/
#ifndef TAILOR_SKNN_H
#define TAILOR_SKNN_H

#include <stddef.h>
#include <stdint.h>

#include "index/topk.h"

/* ** Index ------------------------------------------------------------- */

/* Sessions remembered per item: the most recent ones, older ones evicted. */
#define SKNN_DEFAULT_ITEM_CAP 1000
/* Sessions remembered in all (a ring; the oldest whole session goes). */
#define SKNN_DEFAULT_MAX_SESSIONS (1u << 20)
/* Items kept per session; views past this are counted in popularity only
** (a crawler's thousand-item session says little about the next item). */
#define SKNN_DEFAULT_MAX_LEN 200
/* The largest max_len accepted. */
#define SKNN_MAX_LEN 65535
/* Largest item id accepted, so one bad id cannot allocate gigabytes. */
#define SKNN_MAX_ITEM ((1u << 28) - 1)
/* Marks "no item", e.g. the anchor of a popularity fill row. */
#define SKNN_NONE UINT32_MAX

typedef struct sknn_config {
  uint32_t item_cap;     /* sessions remembered per item, >= 1 */
  uint32_t max_sessions; /* sessions remembered in all, rounded up to a
                            power of two; 0 = no limit */
  uint32_t max_len;      /* items kept per session, 1..SKNN_MAX_LEN */
} sknn_config;

/* The defaults above. */
void sknn_config_default(sknn_config *c);

typedef struct sknn_index sknn_index;

/* A new empty index (NULL config = defaults); NULL when out of memory or the
** config is invalid.  Free with sknn_free. */
sknn_index *sknn_new(const sknn_config *c);
void sknn_free(sknn_index *x);

/*
** Append one finished session: its items in view order (repeats kept, they
** matter for positions) and its time.  Time is in the caller's unit (ms, or
** simply the session's order number); it should not decrease from one
** session to the next, since "recent" means "added later" for the per-item
** cap and "larger time" for the recency weight.  Empty sessions are ignored.
** When the ring is full the oldest session is forgotten: its items leave
** every per-item list the next time those lists are walked or overwritten.
*/
int sknn_add_session(sknn_index *x, const uint32_t *items, size_t n,
                     int64_t time);

/*
** Append one view to the open session `session` (the caller's dense session
** id), opening it when new.  The session's time becomes `time`.  A session
** stays open until sknn_end_session or until it is evicted from the ring;
** a later view with the same id then opens a new session.
*/
int sknn_add_item(sknn_index *x, uint32_t session, uint32_t item,
                  int64_t time);

/* A hint that sknn_add_item(x, session, item, ...) follows soon: fetch
** where the session and the item are kept into the cache, so those reads
** overlap the caller's other work.  Changes nothing. */
void sknn_prefetch(const sknn_index *x, uint32_t session, uint32_t item);

/* Close an open session (its items stay in the index; only the id is
** forgotten).  Unknown ids are ignored. */
void sknn_end_session(sknn_index *x, uint32_t session);

/* Figures about an index, for benchmarks and `tailor stats`. */
typedef struct sknn_stats {
  uint32_t items;        /* item ids in use (largest id + 1) */
  uint32_t items_seen;   /* items with at least one view */
  uint64_t sessions;     /* sessions ever added */
  uint32_t live;         /* sessions remembered now */
  uint64_t views;        /* views ever added */
  uint64_t postings;     /* (item, session) entries held */
  size_t bytes;          /* heap bytes held by the index */
} sknn_stats;

void sknn_stats_get(const sknn_index *x, sknn_stats *s);

/* Lifetime views of an item (0 for unknown ids), and the sessions it
** appeared in. */
uint64_t sknn_item_views(const sknn_index *x, uint32_t item);
uint64_t sknn_item_df(const sknn_index *x, uint32_t item);

/* The items of the open session `session` (view order; borrowed until the
** next write), or 0 when it is not open. */
size_t sknn_session_items(const sknn_index *x, uint32_t session,
                          const uint32_t **items);

/*
** Saving and restoring (checkpoints): sknn_each_session calls fn for every
** session the index remembers, oldest first, with its items, time and the
** caller's id when it is still open (else SKNN_NONE); a nonzero return
** stops.  A new index fed the same sessions in the same order (open ones
** with sknn_add_item, the others with sknn_add_session), then given every
** item's lifetime views and session count, and the number of sessions
** ever added (idf weighs against it, and the sessions fed back are only the
** ones remembered), with sknn_restore_counts, answers every query as the
** original did.
*/
typedef int (*sknn_session_fn)(void *ud, const uint32_t *items, size_t n,
                               int64_t time, uint32_t key);
int sknn_each_session(const sknn_index *x, sknn_session_fn fn, void *ud);
int sknn_restore_counts(sknn_index *x, uint32_t nitems, const uint64_t *views,
                        const uint64_t *df, uint64_t sessions);

/* ** Kernels and their parameters --------------------------------------- */

#define SKNN_KERNEL_MAP(X)  \
  X(POP, "pop")             \
  X(SPOP, "spop")           \
  X(ITEMKNN, "itemknn")     \
  X(SKNN, "sknn")           \
  X(VSKNN, "vsknn")         \
  X(STAN, "stan")           \
  X(TAILOR, "tailor")

typedef enum sknn_kernel {
#define SKNN_KERNEL_ENUM_(e, s) SKNN_##e,
  SKNN_KERNEL_MAP(SKNN_KERNEL_ENUM_)
#undef SKNN_KERNEL_ENUM_
  SKNN_KERNEL_COUNT
} sknn_kernel;

/* The kernel's name ("stan"), or NULL. */
const char *sknn_kernel_name(sknn_kernel k);
/* The kernel named `name`, or -1. */
int sknn_kernel_find(const char *name);

/*
** Every parameter of every kernel; each kernel reads the ones it needs (see
** sknn_params_default and the table in sknn_params.c).  Decays are e-folding
** lengths: a weight exp(-d / lambda); lambda <= 0 turns that decay off.
*/
typedef struct sknn_params {
  sknn_kernel kernel;
  uint32_t k;         /* neighbour sessions kept */
  uint32_t sample;    /* most recent sessions looked at per prefix item */
  uint32_t window;    /* most recent distinct prefix items that look for
                         neighbours; 0 = all */
  double lambda1;     /* position decay in the current session, in items */
  double lambda2;     /* neighbour recency decay, in time units */
  double lambda3;     /* distance to the match inside a neighbour, items */
  double before;      /* weight of neighbour items before the match,
                         relative to those after it (1 = symmetric STAN) */
  double idf;         /* IDF weight: score * (1 + idf * log(N / df)) */
  double repeat;      /* tailor: boost of the prefix's own items */
  double repeat_decay;/* tailor: position decay of that boost, in items */
  double trans;       /* tailor: weight of the transition scores */
  double trans_decay; /* tailor: position decay of transition sources */
  uint32_t trans_window; /* tailor: prefix items used as sources */
  uint32_t trans_gap; /* tailor: successors counted up to this far ahead */
  uint32_t trans_sample; /* tailor: most recent sessions per source item */
  double pop_exp;     /* tailor: neighbour scores times views^pop_exp */
  uint32_t multi;     /* tailor: 1 = every shared item is a reference point
                         in a neighbour (weighted by its own position
                         weight); 0 = only the latest one, as in STAN */
  double shrink;      /* itemknn: support added in the cosine denominator */
  double alpha;       /* itemknn: exponent of the last item's support */
  uint32_t fill;      /* pad short lists with popular items (score 0) */
  uint32_t self;      /* the visitor's own open session (its id in
                         sknn_add_item), never its own neighbour; not a
                         tunable, SKNN_NONE by default */
  uint32_t held_out;  /* a session left out of its own query, neighbours
                         and transitions alike: its seq + 1, 0 = none (the
                         transition check's leave-one-out); not a tunable */
} sknn_params;

/* The validated defaults of kernel `k` (sknn_params.c lists them and why). */
void sknn_params_default(sknn_params *p, sknn_kernel k);

/*
** Set one parameter from "key=value" text (`tailor eval --param`); the key
** is a field name above, or "kernel" with a kernel name (which does not
** reset the other fields).  Returns 0, or TAILOR_EINVAL for an unknown key
** or a value that does not parse or is out of range; *p is unchanged then.
*/
int sknn_params_set(sknn_params *p, const char *kv);

/* Print the parameters the kernel reads as "key=value key=value" into buf
** (NUL-terminated, truncated to cap); returns the length it wanted. */
size_t sknn_params_format(const sknn_params *p, char *buf, size_t cap);

/* ** Queries ------------------------------------------------------------- */

/*
** The scratch space of one querying thread: arrays sized to the index,
** grown on demand by sknn_query.  Owned by the caller; one per thread.
*/
typedef struct sknn_work sknn_work;

sknn_work *sknn_work_new(void);
void sknn_work_free(sknn_work *w);

/*
** The k best next items after `prefix` (n items, oldest first), best first,
** into out[0..k): out[i].id is the item, out[i].score its score, and
** out[i].aux the prefix item most responsible for it ("because you viewed
** X"; SKNN_NONE for popularity fill rows, which have score 0).  Items of the
** prefix are not excluded (a visitor often goes back to one).  Prefix ids
** the index has never seen are ignored.  Returns the number of rows (< k
** when the index knows fewer items, or with fill=0 fewer candidates), or
** TAILOR_EINVAL / TAILOR_ENOMEM.  The index is only read: concurrent
** queries are safe as long as each has its own workspace and no write runs.
*/
int sknn_query(const sknn_index *x, const uint32_t *prefix, size_t n,
               const sknn_params *p, sknn_work *w, topk_entry *out, size_t k);

/* ** What the tuner and the re-ranker read ---------------------------------- */

/*
** After a tailor query on w (sknn_query with p, prefix[0..n)), what made
** item e's score.  neighbours + transitions + repeat add up to its score;
** all zeros for an item that was not a candidate (which includes items
** past the k rows asked for: every item the query scored has its parts,
** listed or not).
*/
typedef struct sknn_tailor_part {
  double neighbours;   /* the neighbour sessions' part */
  double transitions;  /* the transitions' part */
  double repeat;       /* the repeat boost's part */
  double best;         /* the best single neighbour's contribution to it,
                          in the units of neighbours */
  double trans_last;   /* share of the views after the latest prefix item
                          that went to e (that transition source alone) */
  uint32_t support;    /* neighbour sessions that hold e */
} sknn_tailor_part;

void sknn_tailor_parts(sknn_work *w, const sknn_index *x, const sknn_params *p,
                       const uint32_t *prefix, size_t n, uint32_t e,
                       sknn_tailor_part *out);

/* After any query on w: the score its kernel gave item e before the k best
** were taken (0 when it scored no such item). */
double sknn_work_score(const sknn_work *w, uint32_t e);

/* The neighbour sessions the last tailor query on w found. */
uint32_t sknn_tailor_neighbours(const sknn_work *w);

/*
** What the index tells about its shop, from the `sessions` most recent
** sessions it holds:
** - how repeat-heavy it is: of every (prefix, next item) pair in them, the
**   share whose next item is already in the prefix, and the repeat decay
**   (in items; 0 = none, order by count) that ranked those items best
**   among the prefix's;
** - how sequential it is (the transition check): tailor's defaults (after
**   the repeat rule) queried with prefixes of those sessions, each session
**   left out of its own query, at each transition weight of
**   SKNN_TRANS_CHOICES; the weight whose next items ranked best.
*/
typedef struct sknn_repeat_profile {
  uint64_t pairs;    /* pairs looked at */
  uint64_t repeats;  /* of them, next item already in the prefix */
  double share;      /* repeats / pairs */
  double decay;      /* the best repeat_decay for them */
  uint32_t trans_queries; /* queries of the transition check */
  double trans;      /* the weight it picked; 0: keep the default's */
  double trans_mrr[3]; /* MRR@20 at the default's weight, then each choice */
  double trans_hit[3]; /* HR@20 likewise */
} sknn_repeat_profile;

/* Sessions the profile reads by default. */
#define SKNN_PROFILE_SESSIONS 20000
/* A shop is repeat-heavy from this share of repeats on (the defaults were
** chosen on data with 0.19). */
#define SKNN_REPEAT_HEAVY 0.3
/* The repeat weight a repeat-heavy shop gets at least: neighbour scores
** are at most 1, so a session item keeps ahead of them until it is about
** 2.3 decays back (10 e^-2.3 = 1). */
#define SKNN_REPEAT_HEAVY_BOOST 10.0
/* Fewer pairs than this say nothing: the defaults stay. */
#define SKNN_ADAPT_MIN_PAIRS 500
/* The transition check: the weights it tries besides the default's, the
** queries it asks at most (4 positions a session at most, among its first
** SKNN_TRANS_PREFIX items, newest sessions first) and at least (fewer say
** nothing), and how much better (relative MRR@20, with HR@20 no lower) a
** weight must rank to be taken.  The same queries for every weight, so
** their difference is not the queries'. */
#define SKNN_TRANS_CHOICES {0.5, 2.0}
#define SKNN_TRANS_QUERIES 1000
#define SKNN_TRANS_MIN_QUERIES 500
#define SKNN_TRANS_PREFIX 50
#define SKNN_TRANS_GAIN 1.05

int sknn_repeat_profile_get(const sknn_index *x, uint32_t sessions,
                            sknn_repeat_profile *r);
/* The same, calling pause(ud) between the transition check's sessions
   (its queries take seconds on long sessions): a caller that reads the
   index under a lock lets the writer in there, and pause returns nonzero
   when `x` is no longer the index to read (the profile is then abandoned:
   TAILOR_EINVAL).  Sessions are asked by their place from the newest at
   the start, so sessions added meanwhile are not asked. */
int sknn_repeat_profile_paused(const sknn_index *x, uint32_t sessions, sknn_repeat_profile *r,
                               int (*pause)(void *ud), void *ud);

/* Adjust tailor's defaults to the profile (the rules are in sknn_adapt.c
** and docs/evaluation.md); returns what changed: SKNN_ADAPTED_REPEAT (a
** repeat-heavy shop), SKNN_ADAPTED_TRANS (a sequential one), or 0.  Other
** kernels keep their defaults. */
enum { SKNN_ADAPTED_REPEAT = 1, SKNN_ADAPTED_TRANS = 2 };
int sknn_params_adapt(sknn_params *p, const sknn_repeat_profile *r);

/* What sknn_params_adapt's answer makes of a shop: "repeat-heavy",
   "sequential", both comma-separated, or "" (eval's rows, the server's
   log). */
const char *sknn_adapted_name(int adapted);

/* The profile as one line of text into buf (NUL-terminated, truncated to
   cap): "19% of next items repeat the session; transition check, MRR@20
   over 1000 held-out queries: 22.41 at the default weight, 21.91 at 0.5,
   21.02 at 2"; returns the length it wanted. */
size_t sknn_repeat_profile_format(const sknn_repeat_profile *r, char *buf, size_t cap);

/* Item e's recency: sessions since the latest one it was in (*age;
** UINT32_MAX when none is remembered), and how many of its remembered
** sessions are among the last `window` (*recent). */
void sknn_item_recency(const sknn_index *x, uint32_t e, uint32_t window,
                       uint32_t *age, uint32_t *recent);
/* The sessions of item e the index remembers (at most item_cap). */
uint32_t sknn_item_held(const sknn_index *x, uint32_t e);

#endif /* TAILOR_SKNN_H */
