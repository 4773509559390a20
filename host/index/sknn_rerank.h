/*
** sknn_rerank.h: tuned session kernels and the learned re-ranker.
**
** A shop's tuned parameters (`tailor tune`, host/eval/tune.h) are a JSON
** file: tailor's kernel parameters, the validation figures they were
** chosen on, and optionally a re-ranker model saved beside it.  The
** re-ranker ranks the union of what the kernels find:
**   - tailor's best SKNN_RERANK_TAILOR items (with the tuned parameters),
**   - itemknn's best SKNN_RERANK_ITEMKNN items after the last item,
**   - the session's own items (its latest SKNN_RERANK_SESSION distinct),
** each described by the features of SKNN_RERANK_FEATURES, and scored by a
** gradient-boosted ranking model (XGBoost, objective rank:pairwise)
** trained by `tailor tune` on the shop's validation split and scored here
** by walking its trees (XGBoost is needed only to train).  A re-ranked
** row keeps its strongest source as its explanation: tailor's anchor (the
** prefix item most responsible), else the last item (itemknn), else the
** item itself (viewed in this session).
**
** Ownership: an sknn_ranker and an sknn_rerank_work are owned by the
** caller and freed with their _free.  A ranker is read-only once loaded:
** any number of threads may score with it, each with its own work.
** Errors are negative tailor_codes; loaders fill a tailor_error.
*/
#ifndef TAILOR_SKNN_RERANK_H
#define TAILOR_SKNN_RERANK_H

#include <stddef.h>
#include <stdint.h>

#include "index/sknn.h"
#include "tailor.h"

/*
** Candidates from each source.  Chosen on the validation split (tailor
** tune's held-out part, Diginetica): 50 + 15 re-ranked as well as 100 + 30
** (P@20 / MRR@20 53.87 / 20.00 against 53.86 / 20.04) in about two thirds
** of the time; 30 + 10 no faster at p99 (the tuned kernel's own query is
** most of it).
*/
#define SKNN_RERANK_TAILOR 50
#define SKNN_RERANK_ITEMKNN 15
#define SKNN_RERANK_SESSION 20
#define SKNN_RERANK_MAX (SKNN_RERANK_TAILOR + SKNN_RERANK_ITEMKNN + SKNN_RERANK_SESSION)
/* "Recent" for an item's trend: the last this many sessions. */
#define SKNN_RERANK_RECENT 5000

/*
** The features of a candidate, in the model's column order (a model
** records how many it was trained with, and the tuned file their names: a
** different count or list is refused, naming the first difference).
** Missing values (not in the session, not listed by a kernel) are NaN.
*/
#define SKNN_RERANK_FEATURES(X)                                          \
  X(tailor, "tailor's score (tuned parameters)")                         \
  X(tailor_rank, "its rank in tailor's list (NaN past the list)")         \
  X(neighbours, "the neighbour sessions' part of tailor's score")        \
  X(transitions, "the transitions' part")                                 \
  X(repeat, "the repeat boost's part")                                   \
  X(itemknn, "itemknn's score after the last item (0: not co-viewed)")    \
  X(itemknn_rank, "its rank in itemknn's list")                          \
  X(count, "times viewed in the session")                                 \
  X(since, "views since its last view in the session (0 = the last one)") \
  X(first, "its first position in the session, from the start")          \
  X(anchor_since, "views since tailor's anchor item was viewed")          \
  X(length, "the session's length")                                       \
  X(distinct, "distinct items in the session")                            \
  X(views, "log of its views")                                            \
  X(sessions, "log of the sessions it was in")                            \
  X(age, "log of the sessions since it was last seen")                    \
  X(recent, "its sessions among the last SKNN_RERANK_RECENT")             \
  X(trend, "recent sessions over all its remembered ones")              \
  X(support, "neighbour sessions that hold it")                           \
  X(support_share, "their share of the neighbour sessions found")         \
  X(best_share, "the best single neighbour's share of its neighbours part") \
  X(trans_last, "share of the views after the last item that went to it") \
  X(tailor_ratio, "tailor's score over its best item's")                  \
  X(itemknn_ratio, "itemknn's score over its best item's")                \
  X(last_views, "log of the last item's views")

enum {
#define SKNN_RERANK_ENUM_(f, what) SKNN_F_##f,
  SKNN_RERANK_FEATURES(SKNN_RERANK_ENUM_)
#undef SKNN_RERANK_ENUM_
  SKNN_RERANK_NFEATURES
};

/* The name of feature i ("tailor_rank"), or NULL. */
const char *sknn_rerank_feature_name(int i);

/* ** Candidates and features ----------------------------------------------- */

typedef struct sknn_rerank_work sknn_rerank_work;

sknn_rerank_work *sknn_rerank_work_new(void);
void sknn_rerank_work_free(sknn_rerank_work *w);

/*
** The candidates after prefix[0..n) with tailor parameters p: their count
** (or a negative tailor_code); *ids, *anchors (the explanation of each)
** and *features (count x SKNN_RERANK_NFEATURES floats, row-major) are
** borrowed from w until its next use.
*/
int sknn_rerank_candidates(const sknn_index *x, const sknn_params *p,
                           const uint32_t *prefix, size_t n,
                           sknn_rerank_work *w, const uint32_t **ids,
                           const uint32_t **anchors, const float **features);

/* ** The model ---------------------------------------------------------------- */

typedef struct sknn_ranker sknn_ranker;

/*
** Load a model saved by `tailor tune`: XGBoost's JSON model (1.7's format;
** a gbtree booster, numeric splits), read into flat arrays that are scored
** natively, without XGBoost.  NULL with err filled (naming the file and
** what is wrong) when the file cannot be read, is not such a model, or
** has the wrong feature count.
*/
sknn_ranker *sknn_ranker_load(const char *path, tailor_error *err);
void sknn_ranker_free(sknn_ranker *r);

/* The number of trees in r. */
size_t sknn_ranker_trees(const sknn_ranker *r);

/* Score m candidates' features (m x SKNN_RERANK_NFEATURES, NaN = missing)
** into out[0..m): base_score plus a leaf of every tree, as XGBoost predicts
** (the raw margin; rank:pairwise applies no transform).  Returns 0. */
int sknn_ranker_score(const sknn_ranker *r, const float *features, size_t m,
                      float *out);

/*
** The k best next items after prefix[0..n), re-ranked: the candidates
** (tailor with parameters p, itemknn, the session's items) ordered by the
** model; out[i].aux is the strongest source (see above), out[i].score the
** model's score.  Short lists are padded with tailor's own popularity
** fill (score 0 is not used: those rows rank after every candidate).
** Returns the rows or a negative tailor_code.
*/
int sknn_rerank_query(const sknn_index *x, const sknn_ranker *r,
                      const sknn_params *p, const uint32_t *prefix, size_t n,
                      sknn_rerank_work *w, topk_entry *out, size_t k);

/* ** Tuned parameters ---------------------------------------------------------- */

/* What a tuned-parameters file holds. */
typedef struct sknn_tuned {
  sknn_params params;     /* tailor's */
  sknn_ranker *ranker;    /* owned; NULL when the file names no model */
  char model[1024];       /* the model's path as resolved, "" when none */
} sknn_tuned;

/*
** Read a tuned-parameters file (`tailor tune --out`): its "params" over
** tailor's defaults, and the model its "model" key names (a path relative
** to the file's folder), loaded, after its "features" list is checked
** against this build's.  Returns 0, or TAILOR_EIO / TAILOR_EPARSE /
** TAILOR_EINVAL with err naming the file and the key at fault.  Free
** with sknn_tuned_free (also after an error).
*/
int sknn_tuned_load(const char *path, sknn_tuned *t, tailor_error *err);
void sknn_tuned_free(sknn_tuned *t);

#endif /* TAILOR_SKNN_RERANK_H */
