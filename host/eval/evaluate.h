/*
** evaluate.h: offline next-item evaluation, the part of `tailor eval` that
** does not need an engine: reading recorded sessions, carving the
** validation split, and scoring the session kernels on them.
**
** The protocol is the SR-GNN paper's (AAAI 2019): every test pair is a
** prefix of a session and the item viewed next; a kernel ranks the full
** item set after the prefix, items of the prefix are not excluded, and the
** rank of the one target gives P@k, MRR@k and NDCG@k (eval/metrics.h).
**
** Two input formats, told apart by the first non-blank character of a file
** ('{' is NDJSON):
**   plain   the literature's format (../shared/data/diginetica): training
**           sessions one a line, item ids separated by spaces; test pairs
**           one a line, "prefix<TAB>target"
**   NDJSON  event logs in any format `tailor ingest` reads, in time order;
**           views are grouped by their session id into sessions (in order
**           of each session's first view), every other event is skipped.
**           A test log is expanded into pairs the SR-GNN way: items unknown
**           to training are dropped, sessions left shorter than 2 are
**           dropped, and [s1..sn] gives [s1] -> s2, ..., [s1..sn-1] -> sn.
** When both files are plain, item ids are the numbers in the files (so the
** literature's ids are the kernels' ids); otherwise every id is interned
** (index/intern.h) into dense ids in order of first appearance.
**
** The test side is kept as sessions: test pairs in the plain format are
** joined back into the sessions they were cut from (SR-GNN writes a
** session's pairs longest first; a pair that does not continue the chain
** starts a session of its own), so that a strategy can be replayed view by
** view.  Each query is then one position of a test session: the prefix is
** what comes before it, the target is the item there.
**
** --validate: the last `val_share` of the training sessions become the test
** sessions, expanded like a test log, and only the sessions before them are
** indexed.  Parameters are chosen there; the test pairs are for the final
** figures only.
**
** Ownership: an eval_data owns everything in it; eval_data_free releases
** it.  Errors are negative tailor_codes with a tailor_error naming the file
** and line at fault.
*/
#ifndef TAILOR_EVALUATE_H
#define TAILOR_EVALUATE_H

#include <stddef.h>
#include <stdint.h>

#include "index/intern.h"
#include "eval/metrics.h"
#include "index/sknn.h"
#include "tailor.h"

/* Share of the training sessions held out by --validate. */
#define EVAL_DEFAULT_VAL_SHARE 0.1
/* "Popular" items: the most viewed 1% of the catalog (popular_share). */
#define EVAL_POPULAR_SHARE 0.01
/* How many items each query asks for (the largest k reported). */
#define EVAL_LIST_LEN METRICS_CUTOFF

/* Sequences (sessions): their items one after another, and where each
** starts; start[n] is the end of the last one. */
typedef struct eval_seqs {
  uint32_t *items;
  size_t nitems, items_cap;
  size_t *start;   /* n + 1 entries once a sequence exists */
  size_t n, start_cap;
} eval_seqs;

/* One query: position `pos` (>= 1) of test session `session`. */
typedef struct eval_query {
  uint32_t session;
  uint32_t pos;
} eval_query;

/* What was read, and what of it was left out. */
typedef struct eval_counts {
  uint64_t events;      /* NDJSON lines read */
  uint64_t not_views;   /* events of other types (or unknown ones) */
  uint64_t no_session;  /* views without a session id */
  uint64_t dropped_items;    /* test views of items unknown to training */
  uint64_t dropped_sessions; /* test sessions left shorter than 2 */
  uint64_t unknown_targets;  /* plain test pairs (kept as written) whose
                                target training never showed: misses */
} eval_counts;

typedef struct eval_data {
  eval_seqs train;        /* training sessions, oldest first */
  size_t ntrain;          /* the first ntrain are indexed (all, unless
                             validating) */
  eval_seqs test;         /* test sessions, views in order */
  uint8_t *ask;           /* by test view: 1 when a query targets it */
  eval_query *queries;    /* in the order of the input's pairs */
  size_t nqueries, queries_cap;
  int validating;         /* the test sessions are the validation split */
  int test_plain;         /* the test file is in the plain pair format */
  int named;              /* ids are interned names (else the numbers) */
  intern names;           /* when named: id -> the external item id */
  uint32_t nitems;        /* every id is below this */
  uint64_t *views;        /* by id: views in the indexed sessions */
  uint32_t *catalog;      /* ids with views, most viewed first (ties: the
                             smaller id), ncatalog of them */
  uint32_t ncatalog, npopular; /* the first npopular are "popular" */
  eval_counts counts;
} eval_data;

/*
** Read `train` and either `test` (val_share <= 0) or the validation split
** (the last val_share of the training sessions, 0 < val_share < 1; `test`
** is not read and may be NULL).  Fills *d (free it with eval_data_free,
** also after an error).  Returns 0; TAILOR_EIO when a file cannot be read;
** TAILOR_EPARSE / TAILOR_EFIELD for bad content, err->message naming file
** and line; TAILOR_EINVAL for a bad val_share; TAILOR_ENOMEM.
*/
int eval_load(eval_data *d, const char *train, const char *test,
              double val_share, tailor_error *err);
void eval_data_free(eval_data *d);

/* The same from text in memory (tests); `test` is ignored when
** val_share > 0.  The texts are not modified. */
int eval_load_text(eval_data *d, const char *train, size_t train_len,
                   const char *test, size_t test_len, double val_share,
                   tailor_error *err);

/* Sequence i of s: *items and the count. */
static inline size_t eval_seq(const eval_seqs *s, size_t i,
                              const uint32_t **items) {
  *items = s->items + s->start[i];
  return s->start[i + 1] - s->start[i];
}

/* The external id of item `id` (its name, or its number written into buf,
** which must hold 16 bytes). */
const char *eval_item_name(const eval_data *d, uint32_t id, char *buf);

/* The id of an external item id, or UINT32_MAX when it is unknown. */
uint32_t eval_item_id(const eval_data *d, const char *name);

/* A session index of the training sessions [0, ntrain), time = the
** session's number (the unit of lambda2).  NULL when out of memory. */
sknn_index *eval_index(const eval_data *d);

/* An accumulator for d's catalog and popular items; metrics_free it. */
int eval_metrics_init(const eval_data *d, metrics *m);

/* Called now and then while queries run: done of total. */
typedef void (*eval_progress_fn)(void *ud, size_t done, size_t total);

typedef struct eval_opts {
  size_t every;        /* evaluate every Nth query (1 = all) */
  unsigned repeat;     /* run the queries this many times and keep each
                          query's fastest latency (1 = one pass) */
  eval_progress_fn progress;
  void *progress_ud;
} eval_opts;

/*
** Score a kernel with parameters p on every query (every Nth) against the
** index x (built by eval_index); the figures go to *r.  Returns 0,
** TAILOR_ENOMEM, or TAILOR_EINVAL when a query fails.
*/
int eval_kernel(const eval_data *d, const sknn_index *x, const sknn_params *p,
                const eval_opts *o, metrics_report *r);

/*
** The same for the re-ranker (index/sknn_rerank.h): tailor with parameters
** p finds the candidates, model `r` orders them.  Latency is the whole
** re-ranked query (both kernels, the features, the model).
*/
struct sknn_ranker;
int eval_rerank(const eval_data *d, const sknn_index *x, const sknn_params *p,
                const struct sknn_ranker *r, const eval_opts *o,
                metrics_report *rep);

/*
** Replaying test sessions through something that learns as it goes (a
** strategy on the real engine, `tailor eval --strategy`): for each test
** session in order and each of its views in order, `recommend` is asked
** first when a query targets that view (with the session so far), then
** `view` is told the view happened.  Queries are scored like a kernel's;
** latency is the time `recommend` takes.
*/
typedef struct eval_replayer {
  /* Up to k items into out, best first (ids of d; UINT32_MAX for an item
     d does not know); returns the count or a negative tailor_code, which
     stops the replay. */
  int (*recommend)(void *ud, size_t session, const uint32_t *prefix,
                   size_t n, uint32_t *out, size_t k);
  /* View `pos` of test session `session` (item `item`) happened; 0 or a
     negative tailor_code, which stops the replay. */
  int (*view)(void *ud, size_t session, size_t pos, uint32_t item);
  void *ud;
} eval_replayer;

/* Replay d's test sessions through r (o->repeat is ignored: a replay
** changes what it replays into); the figures go to *rep.  Returns 0 or the
** first negative code of a callback, or TAILOR_ENOMEM. */
int eval_replay(const eval_data *d, const eval_replayer *r, const eval_opts *o,
                metrics_report *rep);

/*
** Apply one --param "key=value" to p.  Returns 0, or TAILOR_EINVAL with
** err->message naming the key: not a parameter of any kernel, a value that
** does not parse or is out of range, or "kernel" (chosen with --kernel).
*/
int eval_param(sknn_params *p, const char *kv, tailor_error *err);

#endif /* TAILOR_EVALUATE_H */
