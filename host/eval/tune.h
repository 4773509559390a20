/*
** tune.h: `tailor tune`: choosing a shop's kernel parameters and training
** its re-ranker on a validation split of its own training sessions.
**
** The split is eval/evaluate.h's --validate: the last val_share of the
** training sessions (time order) become validation sessions, expanded into
** queries the SR-GNN way, and only the sessions before them are indexed.
** No test data is read: tune takes an eval_data loaded with val_share > 0.
**
** The search: tailor's defaults, adjusted to the shop's repeat profile
** (sknn_params_adapt), are the start; coordinate ascent then tries each
** parameter of TUNE_SPACE one step up and one down, keeps a step that
** raises P@20 + MRR@20 on the validation queries (every Nth of them) and
** goes on in that direction while it helps; after a pass without a gain
** the steps shrink; it stops when they are small, after max_passes, or
** when the time budget is spent.  Queries are scored on `threads` threads.
**
** The re-ranker (index/sknn_rerank.h): the validation sessions are cut in
** two, in time order; the candidates and features of the earlier part's
** queries (at most rank_queries of them) train an XGBoost model with
** objective rank:pairwise, and the later part stops the boosting when its
** MAP@20 (= MRR@20 over the queries whose target is a candidate) stops
** rising; the kept model is scored on the later part with and without
** re-ranking.
**
** Ownership: a tune_result holds no pointers.  Errors are negative
** tailor_codes with err filled.
*/
#ifndef TAILOR_TUNE_H
#define TAILOR_TUNE_H

#include <stddef.h>

#include "eval/evaluate.h"
#include "eval/metrics.h"
#include "index/sknn.h"

/* Validation queries the search scores per evaluation, about. */
#define TUNE_DEFAULT_QUERIES 20000
#define TUNE_DEFAULT_MAX_PASSES 6
/* Seconds the search may take before it stops where it is. */
#define TUNE_DEFAULT_BUDGET_S 420
/*
** The re-ranker's training: queries, boosting rounds at most, patience.
** The rounds are the query's budget too: every candidate walks every tree,
** and on Diginetica the 88 trees early stopping kept with no cap made the
** re-ranked query about 40 us slower at p50 than the 45 it keeps within
** 50, for 0.1-0.2 of held-out P@20 (docs/evaluation.md).
*/
#define TUNE_DEFAULT_RANK_QUERIES 30000
#define TUNE_DEFAULT_TREES 50
#define TUNE_EARLY_STOP 25
/* Share of the validation sessions (the later ones) that stop the
** boosting and score the re-ranker. */
#define TUNE_RANK_HOLDOUT 0.3

typedef struct tune_opts {
  size_t queries;         /* scored per evaluation, about; 0 = all */
  unsigned max_passes;
  double budget_s;
  unsigned threads;       /* 1 or more */
  int rerank;             /* train the re-ranker */
  const char *model_path; /* where it goes (required with rerank) */
  size_t rank_queries;
  unsigned trees;
  /* A line of progress (no newline), or NULL. */
  void (*progress)(void *ud, const char *line);
  void *ud;
} tune_opts;

void tune_opts_default(tune_opts *o);

/* Figures on the validation queries: P@20, MRR@20 (fractions). */
typedef struct tune_score {
  double p20, mrr20;
  size_t queries;
} tune_score;

typedef struct tune_result {
  sknn_repeat_profile profile;
  sknn_params defaults;   /* tailor's shipped defaults */
  sknn_params adapted;    /* after the repeat rule: the search's start */
  sknn_params tuned;
  tune_score s_defaults, s_adapted, s_tuned; /* on the search's queries */
  unsigned evaluations, passes; /* passes whole; budget_cut: one more begun */
  int budget_cut;                /* the time budget ended the search */
  double search_s;
  int reranked;           /* a model was trained and saved */
  unsigned trees;         /* its boosting rounds */
  size_t rank_train_queries, rank_rows;
  tune_score h_tuned, h_reranked; /* on the held-out part */
  double rerank_s;
} tune_result;

/* Tune on d (loaded with a validation split).  Returns 0 or a negative
** tailor_code with err filled. */
int tune_run(const eval_data *d, const tune_opts *o, tune_result *r,
             tailor_error *err);

/*
** Write the result as JSON to `path`: {"kernel": "tailor", "params": {...},
** "model": <file name of the model, when one was trained>, "validation":
** {...figures...}, "repeat_profile": {...}, "search": {...}}.  `model` is
** the model's path, written relative to path's folder when it is in it.
*/
int tune_write(const char *path, const tune_result *r, const char *model,
               const eval_data *d, tailor_error *err);

/* Score parameters p on d's validation queries (every Nth) against x with
** `threads` threads. */
int tune_score_params(const eval_data *d, const sknn_index *x,
                      const sknn_params *p, size_t every, unsigned threads,
                      tune_score *s);

#endif /* TAILOR_TUNE_H */
