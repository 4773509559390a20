/*
** sknn_rerank.c: the learned re-ranker's query side: the union of the
** kernels' candidates, their features, and the model's scores (XGBoost's
** trees, read from its JSON model and walked natively: XGBoost itself is
** used only to train, in host/eval/tune.c).
*/
#include "index/sknn_rerank.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "core/util.h"

const char *sknn_rerank_feature_name(int i) {
  static const char *const names[] = {
#define SKNN_RERANK_NAME_(f, what) #f,
      SKNN_RERANK_FEATURES(SKNN_RERANK_NAME_)
#undef SKNN_RERANK_NAME_
  };
  return i >= 0 && i < SKNN_RERANK_NFEATURES ? names[i] : NULL;
}

/* Slots of the union's small hash (a power of two, over twice the most
** candidates). */
#define UNION_SLOTS 512

struct sknn_rerank_work {
  sknn_work *wt, *wi;                    /* tailor's, itemknn's */
  topk_entry tl[SKNN_RERANK_TAILOR], il[SKNN_RERANK_ITEMKNN];
  uint32_t ids[SKNN_RERANK_MAX], anchors[SKNN_RERANK_MAX];
  uint32_t slot_id[UNION_SLOTS];         /* item + 1, 0 = empty */
  uint16_t slot_at[UNION_SLOTS];
  uint16_t used[SKNN_RERANK_MAX];
  uint32_t m;
  float f[SKNN_RERANK_MAX * SKNN_RERANK_NFEATURES];
  float score[SKNN_RERANK_MAX];
  sknn_params ip;                        /* itemknn's defaults */
};

sknn_rerank_work *sknn_rerank_work_new(void) {
  sknn_rerank_work *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->wt = sknn_work_new();
  w->wi = sknn_work_new();
  if (!w->wt || !w->wi) {
    sknn_rerank_work_free(w);
    return NULL;
  }
  sknn_params_default(&w->ip, SKNN_ITEMKNN);
  w->ip.fill = 0;
  return w;
}

void sknn_rerank_work_free(sknn_rerank_work *w) {
  if (!w) return;
  sknn_work_free(w->wt);
  sknn_work_free(w->wi);
  free(w);
}

/* The union's row of item e, added (features all NaN) when new; -1 when
** full. */
static int union_row(sknn_rerank_work *w, uint32_t e, uint32_t anchor) {
  uint32_t i = (e * 0x9e3779b1u) >> (32 - 9);
  for (;; i = (i + 1) & (UNION_SLOTS - 1)) {
    if (w->slot_id[i] == e + 1) return w->slot_at[i];
    if (w->slot_id[i] == 0) break;
  }
  if (w->m == SKNN_RERANK_MAX) return -1;
  uint32_t r = w->m++;
  w->slot_id[i] = e + 1;
  w->slot_at[i] = (uint16_t)r;
  w->used[r] = (uint16_t)i;
  w->ids[r] = e;
  w->anchors[r] = anchor;
  float *f = &w->f[r * SKNN_RERANK_NFEATURES];
  for (int j = 0; j < SKNN_RERANK_NFEATURES; j++) f[j] = NAN;
  return (int)r;
}

static float lg(double v) { return (float)log1p(v); }

int sknn_rerank_candidates(const sknn_index *x, const sknn_params *p,
                           const uint32_t *prefix, size_t n,
                           sknn_rerank_work *w, const uint32_t **ids,
                           const uint32_t **anchors, const float **features) {
  for (uint32_t r = 0; r < w->m; r++) w->slot_id[w->used[r]] = 0;
  w->m = 0;
  /* itemknn first: tailor's table must be the last query on its work,
  ** since the parts of every candidate are read from it. */
  int ni = sknn_query(x, prefix, n, &w->ip, w->wi, w->il, SKNN_RERANK_ITEMKNN);
  if (ni < 0) return ni;
  sknn_params tp = *p;
  tp.fill = 0;
  int nt = sknn_query(x, prefix, n, &tp, w->wt, w->tl, SKNN_RERANK_TAILOR);
  if (nt < 0) return nt;
  uint32_t last = n ? prefix[n - 1] : SKNN_NONE;
  for (int i = 0; i < nt; i++) {
    int r = union_row(w, w->tl[i].id, w->tl[i].aux);
    w->f[r * SKNN_RERANK_NFEATURES + SKNN_F_tailor_rank] = (float)(i + 1);
  }
  for (int i = 0; i < ni; i++) {
    int r = union_row(w, w->il[i].id, last);
    if (r < 0) break;
    w->f[r * SKNN_RERANK_NFEATURES + SKNN_F_itemknn_rank] = (float)(i + 1);
  }
  /* The session's items, latest first; their counts and positions. */
  uint32_t distinct = 0;
  for (size_t i = n; i-- > 0;) {
    uint32_t e = prefix[i];
    if (sknn_item_views(x, e) == 0) continue;
    int r = -1;
    for (uint32_t j = 0; j < w->m; j++)
      if (w->ids[j] == e) {
        r = (int)j;
        break;
      }
    float *f;
    if (r < 0) {
      if (distinct >= SKNN_RERANK_SESSION) continue;
      if ((r = union_row(w, e, e)) < 0) continue;
    }
    f = &w->f[r * SKNN_RERANK_NFEATURES];
    if (isnan(f[SKNN_F_count])) {
      distinct++;
      f[SKNN_F_count] = 0;
      f[SKNN_F_since] = (float)(n - 1 - i);
    }
    f[SKNN_F_count] += 1;
    f[SKNN_F_first] = (float)i;
  }
  /* The rest of every row.  Ratios to the best of each list, since a
  ** score's scale changes from query to query. */
  double top_tailor = nt > 0 ? w->tl[0].score : 0, top_item = ni > 0 ? w->il[0].score : 0;
  uint32_t found = sknn_tailor_neighbours(w->wt);
  float last_views = n ? lg((double)sknn_item_views(x, prefix[n - 1])) : NAN;
  uint32_t ndist = 0;
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    while (j < i && prefix[j] != prefix[i]) j++;
    ndist += j == i;
  }
  for (uint32_t r = 0; r < w->m; r++) {
    float *f = &w->f[r * SKNN_RERANK_NFEATURES];
    uint32_t e = w->ids[r];
    sknn_tailor_part pt;
    sknn_tailor_parts(w->wt, x, &tp, prefix, n, e, &pt);
    double score = pt.neighbours + pt.transitions + pt.repeat;
    f[SKNN_F_tailor] = (float)score;
    f[SKNN_F_neighbours] = (float)pt.neighbours;
    f[SKNN_F_transitions] = (float)pt.transitions;
    f[SKNN_F_repeat] = (float)pt.repeat;
    f[SKNN_F_support] = (float)pt.support;
    f[SKNN_F_support_share] = found ? (float)pt.support / (float)found : 0;
    if (pt.neighbours > 0) f[SKNN_F_best_share] = (float)(pt.best / pt.neighbours);
    f[SKNN_F_trans_last] = (float)pt.trans_last;
    if (top_tailor > 0) f[SKNN_F_tailor_ratio] = (float)(score / top_tailor);
    if (ni > 0) {
      /* Every candidate's itemknn score, listed or not: itemknn scored all
      ** the items co-viewed with the last one (0: none was). */
      double v = sknn_work_score(w->wi, e);
      f[SKNN_F_itemknn] = (float)v;
      if (top_item > 0) f[SKNN_F_itemknn_ratio] = (float)(v / top_item);
    }
    f[SKNN_F_last_views] = last_views;
    uint32_t a = w->anchors[r];
    if (a != SKNN_NONE && a != e)
      for (size_t i = n; i-- > 0;)
        if (prefix[i] == a) {
          f[SKNN_F_anchor_since] = (float)(n - 1 - i);
          break;
        }
    f[SKNN_F_length] = (float)n;
    f[SKNN_F_distinct] = (float)ndist;
    uint64_t views = sknn_item_views(x, e), df = sknn_item_df(x, e);
    f[SKNN_F_views] = lg((double)views);
    f[SKNN_F_sessions] = lg((double)df);
    uint32_t age, recent, held;
    sknn_item_recency(x, e, SKNN_RERANK_RECENT, &age, &recent);
    held = sknn_item_held(x, e);
    if (age != UINT32_MAX) f[SKNN_F_age] = lg(age);
    f[SKNN_F_recent] = (float)recent;
    f[SKNN_F_trend] = held ? (float)recent / (float)held : 0;
  }
  *ids = w->ids;
  *anchors = w->anchors;
  *features = w->f;
  return (int)w->m;
}

/* ** The model ---------------------------------------------------------------- */

/*
** A model saved by `tailor tune` is XGBoost's JSON model (1.7's format:
** learner.gradient_booster.model.trees[], learner.learner_model_param's
** base_score), read once into flat arrays and scored by walking the trees
** here: no XGBoost call at query time.  A node is a split (feature,
** threshold, children, where a missing value goes) or a leaf (its value,
** in split_conditions as XGBoost keeps it).  As XGBoost does: a value goes
** left when value < threshold (both floats), NaN goes its default way, and
** a row's score is base_score plus its leaves, summed in float tree by tree.
*/

typedef struct rk_node {
  int32_t left;   /* node index within the tree; -1 for a leaf */
  int32_t right;
  uint32_t feat;  /* feature, | RK_DEFAULT_LEFT */
  float cond;     /* the threshold, or the leaf's value */
} rk_node;

#define RK_DEFAULT_LEFT 0x80000000u

/*
** For scoring, trees of depth <= RK_HEAP_MAX_DEPTH are laid out again as
** complete trees of the model's depth D, in heap order: node i's children
** are 2i+1 (left) and 2i+2, the 2^D leaves follow the 2^D - 1 splits.  A
** leaf above depth D fills its whole subtree's leaves, so whichever way
** the padding splits send a row, it lands on that value.  Every row then
** takes exactly D steps with no branch on the data, rows interleaved:
** this is the walk of the reference layout (rk_node) without its
** mispredicted branches.  Deeper models are walked the reference way.
*/
#define RK_HEAP_MAX_DEPTH 10

typedef struct rk_split {
  float cond;
  uint16_t feat;
  uint16_t dleft; /* 1 when a missing value goes left */
} rk_split;

struct sknn_ranker {
  float base;         /* base_score */
  uint32_t ntrees;
  uint32_t *root;     /* ntrees + 1 offsets into nodes */
  rk_node *nodes;
  size_t nnodes;
  uint32_t depth;     /* D of the heap layout; 0 when there is none */
  rk_split *splits;   /* ntrees x (2^D - 1) */
  float *leaves;      /* ntrees x 2^D */
};

static int rk_fail(tailor_error *err, int code, const char *path, const char *what,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int rk_fail(tailor_error *err, int code, const char *path, const char *what,
                   const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return util_fail(err, code, "model", "%s: not an XGBoost JSON model: %s%s%s", path,
                   what, *what ? " " : "", msg);
}

/* A JSON number, or a number in a string (XGBoost writes its params as
** strings: "5E-1"); NaN when neither. */
static double rk_number(const json_t *v) {
  if (json_is_number(v)) return json_number_value(v);
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end != s && *end == 0 && !errno) return d;
  }
  return NAN;
}

/* Read tree t's arrays into r->nodes from r->root[t]; 0 or an error. */
static int rk_tree(sknn_ranker *r, uint32_t t, const json_t *tree, const char *path,
                   tailor_error *err) {
  static const char *const keys[] = {"left_children", "right_children", "split_indices",
                                     "split_conditions", "default_left"};
  const json_t *a[5];
  char where[64];
  snprintf(where, sizeof where, "trees[%u]", t);
  if (!json_is_object(tree)) return rk_fail(err, TAILOR_EPARSE, path, where, "is not an object");
  size_t n = 0;
  for (int k = 0; k < 5; k++) {
    a[k] = json_object_get(tree, keys[k]);
    if (!json_is_array(a[k]))
      return rk_fail(err, TAILOR_EPARSE, path, where, "has no array %s", keys[k]);
    if (k == 0) n = json_array_size(a[k]);
    else if (json_array_size(a[k]) != n)
      return rk_fail(err, TAILOR_EPARSE, path, where, "%s has %zu entries, left_children %zu",
                     keys[k], json_array_size(a[k]), n);
  }
  if (n == 0 || n > INT32_MAX) return rk_fail(err, TAILOR_EPARSE, path, where, "has no nodes");
  const json_t *st = json_object_get(tree, "split_type");
  const json_t *cats = json_object_get(tree, "categories");
  if (json_is_array(cats) && json_array_size(cats) > 0)
    return rk_fail(err, TAILOR_EINVAL, path, where, "has categorical splits (not supported)");
  rk_node *nodes = &r->nodes[r->root[t]];
  for (size_t i = 0; i < n; i++) {
    double l = rk_number(json_array_get(a[0], i)), rt = rk_number(json_array_get(a[1], i));
    double f = rk_number(json_array_get(a[2], i)), c = rk_number(json_array_get(a[3], i));
    const json_t *dl = json_array_get(a[4], i);
    if (json_is_array(st) && rk_number(json_array_get(st, i)) != 0)
      return rk_fail(err, TAILOR_EINVAL, path, where, "node %zu: a categorical split", i);
    if (isnan(l) || isnan(rt) || isnan(f) || isnan(c) ||
        !(json_is_boolean(dl) || json_is_number(dl)))
      return rk_fail(err, TAILOR_EPARSE, path, where, "node %zu: not a number", i);
    rk_node *nd = &nodes[i];
    nd->cond = (float)c;
    if (l == -1) {
      nd->left = nd->right = -1;
      nd->feat = 0;
      continue;
    }
    if (l != (double)(int64_t)l || rt != (double)(int64_t)rt || l <= 0 || rt <= 0 ||
        l >= (double)n || rt >= (double)n)
      return rk_fail(err, TAILOR_EPARSE, path, where, "node %zu: children %g and %g out of range",
                     i, l, rt);
    if (f < 0 || f >= SKNN_RERANK_NFEATURES || f != (double)(int64_t)f)
      return rk_fail(err, TAILOR_EINVAL, path, where, "node %zu: feature %g of %d", i, f,
                     SKNN_RERANK_NFEATURES);
    nd->left = (int32_t)l;
    nd->right = (int32_t)rt;
    int left = json_is_boolean(dl) ? json_is_true(dl) : json_number_value(dl) != 0;
    nd->feat = (uint32_t)f | (left ? RK_DEFAULT_LEFT : 0);
  }
  /* Every node reachable from the root once: each walk ends at a leaf. */
  uint32_t *stack = malloc(n * sizeof *stack);
  uint8_t *seen = calloc(n, 1);
  int rc = stack && seen ? 0 : util_fail(err, TAILOR_ENOMEM, "model", "out of memory");
  size_t top = 0;
  if (!rc) stack[top++] = 0;
  while (!rc && top) {
    uint32_t i = stack[--top];
    if (seen[i]++) {
      rc = rk_fail(err, TAILOR_EPARSE, path, where, "node %u is reached twice", i);
      break;
    }
    if (nodes[i].left < 0) continue;
    if (top + 2 > n) {
      rc = rk_fail(err, TAILOR_EPARSE, path, where, "its nodes do not form a tree");
      break;
    }
    stack[top++] = (uint32_t)nodes[i].left;
    stack[top++] = (uint32_t)nodes[i].right;
  }
  free(stack);
  free(seen);
  if (rc) return rc;
  r->root[t + 1] = r->root[t] + (uint32_t)n;
  return 0;
}

/* The depth of a tree of n nodes (a lone leaf: 0), or UINT32_MAX when
   it is deeper than RK_HEAP_MAX_DEPTH; without recursion, since a model
   file may hold a chain of any length. */
static uint32_t rk_depth(const rk_node *tree, size_t n, uint32_t *stack) {
  uint32_t deepest = 0;
  size_t top = 0;
  if (n >= 1u << 24) return UINT32_MAX;
  stack[top++] = 0; /* node << 8 | its depth */
  while (top) {
    uint32_t e = stack[--top], i = e >> 8, d = e & 0xff;
    if (d > deepest) deepest = d;
    if (tree[i].left < 0) continue;
    if (d == RK_HEAP_MAX_DEPTH || top + 2 > n) return UINT32_MAX;
    stack[top++] = (uint32_t)tree[i].left << 8 | (d + 1);
    stack[top++] = (uint32_t)tree[i].right << 8 | (d + 1);
  }
  return deepest;
}

/* Copy the subtree at node i into heap slot h at depth d of D. */
static void rk_fill(sknn_ranker *r, const rk_node *tree, int32_t i, uint32_t h, uint32_t d,
                    rk_split *sp, float *lv) {
  uint32_t nsplit = (1u << r->depth) - 1;
  if (tree[i].left < 0) {
    /* Every leaf under slot h: the first is at depth D below it. */
    uint32_t first = h, span = 1;
    for (uint32_t k = d; k < r->depth; k++) first = 2 * first + 1, span *= 2;
    for (uint32_t k = 0; k < span; k++) lv[first - nsplit + k] = tree[i].cond;
    for (uint32_t k = d, f = h, n = 1; k < r->depth; k++, f = 2 * f + 1, n *= 2)
      for (uint32_t j = 0; j < n; j++) sp[f + j] = (rk_split){0, 0, 1};
    return;
  }
  sp[h] = (rk_split){tree[i].cond, (uint16_t)(tree[i].feat & ~RK_DEFAULT_LEFT),
                     (tree[i].feat & RK_DEFAULT_LEFT) != 0};
  rk_fill(r, tree, tree[i].left, 2 * h + 1, d + 1, sp, lv);
  rk_fill(r, tree, tree[i].right, 2 * h + 2, d + 1, sp, lv);
}

/* The heap layout of r's trees, when they are shallow enough. */
static int rk_heap(sknn_ranker *r, const char *path, tailor_error *err) {
  uint32_t depth = 0, *stack = malloc((r->nnodes + 1) * sizeof *stack);
  if (!stack) return util_fail(err, TAILOR_ENOMEM, "model", "%s: out of memory", path);
  for (uint32_t t = 0; t < r->ntrees && depth != UINT32_MAX; t++) {
    uint32_t d = rk_depth(&r->nodes[r->root[t]], r->root[t + 1] - r->root[t], stack);
    if (d > depth) depth = d;
  }
  free(stack);
  if (depth == 0 || depth == UINT32_MAX) return 0;
  r->depth = depth;
  size_t nsplit = ((size_t)1 << depth) - 1, nleaf = (size_t)1 << depth;
  r->splits = malloc(r->ntrees * nsplit * sizeof *r->splits);
  r->leaves = malloc(r->ntrees * nleaf * sizeof *r->leaves);
  if (!r->splits || !r->leaves) return util_fail(err, TAILOR_ENOMEM, "model", "%s: out of memory", path);
  for (uint32_t t = 0; t < r->ntrees; t++)
    rk_fill(r, &r->nodes[r->root[t]], 0, 0, 0, &r->splits[t * nsplit], &r->leaves[t * nleaf]);
  return 0;
}

sknn_ranker *sknn_ranker_load(const char *path, tailor_error *err) {
  sknn_ranker *r = calloc(1, sizeof *r);
  if (!r) {
    util_fail(err, TAILOR_ENOMEM, "model", "out of memory");
    return NULL;
  }
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    util_fail(err, TAILOR_EIO, "model", "%s: %s", path, strerror(errno));
    sknn_ranker_free(r);
    return NULL;
  }
  json_error_t je;
  json_t *root = json_loadf(fp, 0, &je);
  fclose(fp);
  int rc = 0;
  const json_t *learner = NULL, *mp = NULL, *gb = NULL, *model = NULL, *trees = NULL;
  if (!root) {
    rc = rk_fail(err, TAILOR_EPARSE, path, "", "line %d: %s", je.line, je.text);
    goto out;
  }
  learner = json_object_get(root, "learner");
  mp = json_object_get(learner, "learner_model_param");
  gb = json_object_get(learner, "gradient_booster");
  if (!json_is_object(learner) || !json_is_object(mp) || !json_is_object(gb)) {
    rc = rk_fail(err, TAILOR_EPARSE, path, "",
                 "no learner.learner_model_param or learner.gradient_booster");
    goto out;
  }
  const char *name = json_string_value(json_object_get(gb, "name"));
  if (!name || strcmp(name, "gbtree") != 0) {
    rc = rk_fail(err, TAILOR_EINVAL, path, "", "booster '%s' (only gbtree is scored)",
                 name ? name : "?");
    goto out;
  }
  double base = rk_number(json_object_get(mp, "base_score"));
  double nf = rk_number(json_object_get(mp, "num_feature"));
  double nc = rk_number(json_object_get(mp, "num_class"));
  if (isnan(base) || isnan(nf)) {
    rc = rk_fail(err, TAILOR_EPARSE, path, "", "no base_score or num_feature");
    goto out;
  }
  if (!isnan(nc) && nc > 1) {
    rc = rk_fail(err, TAILOR_EINVAL, path, "", "%g classes (a ranking model has one)", nc);
    goto out;
  }
  if (nf != SKNN_RERANK_NFEATURES) {
    rc = util_fail(err, TAILOR_EINVAL, "model",
                   "%s: a model of %g features; this build has %d (tune again)", path, nf,
                   SKNN_RERANK_NFEATURES);
    goto out;
  }
  model = json_object_get(gb, "model");
  trees = json_object_get(model, "trees");
  if (!json_is_array(trees)) {
    rc = rk_fail(err, TAILOR_EPARSE, path, "", "no learner.gradient_booster.model.trees");
    goto out;
  }
  r->base = (float)base;
  r->ntrees = (uint32_t)json_array_size(trees);
  size_t total = 0;
  for (uint32_t t = 0; t < r->ntrees; t++)
    total += json_array_size(json_object_get(json_array_get(trees, t), "left_children"));
  r->root = calloc(r->ntrees + 1, sizeof *r->root);
  r->nodes = calloc(total ? total : 1, sizeof *r->nodes);
  if (!r->root || !r->nodes || total > UINT32_MAX) {
    rc = util_fail(err, TAILOR_ENOMEM, "model", "%s: out of memory", path);
    goto out;
  }
  r->nnodes = total;
  for (uint32_t t = 0; !rc && t < r->ntrees; t++)
    rc = rk_tree(r, t, json_array_get(trees, t), path, err);
  if (!rc) rc = rk_heap(r, path, err);
out:
  json_decref(root);
  if (rc) {
    sknn_ranker_free(r);
    return NULL;
  }
  return r;
}

void sknn_ranker_free(sknn_ranker *r) {
  if (!r) return;
  free(r->root);
  free(r->nodes);
  free(r->splits);
  free(r->leaves);
  free(r);
}

size_t sknn_ranker_trees(const sknn_ranker *r) { return r ? r->ntrees : 0; }

/* RK_LANES rows through one heap-laid tree, step by step, so that their
** walks overlap; a constant count, so the positions stay in registers. */
enum { RK_LANES = 8 };
static inline void rk_walk(const rk_split *sp, const float *lv, uint32_t D,
                           const float *rows, float *out) {
  uint32_t at[RK_LANES] = {0};
  for (uint32_t d = 0; d < D; d++)
    for (int k = 0; k < RK_LANES; k++) {
      const rk_split *s = &sp[at[k]];
      float v = rows[k * SKNN_RERANK_NFEATURES + s->feat];
      uint32_t left = (v < s->cond) | ((isnan(v) != 0) & s->dleft);
      at[k] = 2 * at[k] + 2 - left;
    }
  uint32_t nsplit = (1u << D) - 1;
  for (int k = 0; k < RK_LANES; k++) out[k] += lv[at[k] - nsplit];
}

int sknn_ranker_score(const sknn_ranker *r, const float *features, size_t m,
                      float *out) {
  for (size_t i = 0; i < m; i++) out[i] = r->base;
  if (r->depth) {
    /* Tree by tree, so a tree stays in cache over the rows; the last rows
    ** padded to a full group of lanes (rows of NaN, scores dropped). */
    const uint32_t D = r->depth, nsplit = (1u << D) - 1;
    size_t full = m - m % RK_LANES;
    float tail[RK_LANES * SKNN_RERANK_NFEATURES], tail_out[RK_LANES];
    for (int k = 0; k < RK_LANES; k++) tail_out[k] = r->base;
    if (full < m) {
      for (size_t j = 0; j < RK_LANES * SKNN_RERANK_NFEATURES; j++) tail[j] = NAN;
      memcpy(tail, &features[full * SKNN_RERANK_NFEATURES],
             (m - full) * SKNN_RERANK_NFEATURES * sizeof *tail);
    }
    for (uint32_t t = 0; t < r->ntrees; t++) {
      const rk_split *sp = &r->splits[(size_t)t * nsplit];
      const float *lv = &r->leaves[(size_t)t * (nsplit + 1)];
      for (size_t i0 = 0; i0 < full; i0 += RK_LANES)
        rk_walk(sp, lv, D, &features[i0 * SKNN_RERANK_NFEATURES], &out[i0]);
      if (full < m) rk_walk(sp, lv, D, tail, tail_out);
    }
    for (size_t i = full; i < m; i++) out[i] = tail_out[i - full];
    return 0;
  }
  /* Tree by tree, so a tree's nodes stay in cache over the rows. */
  for (uint32_t t = 0; t < r->ntrees; t++) {
    const rk_node *tree = &r->nodes[r->root[t]];
    for (size_t i = 0; i < m; i++) {
      const float *f = &features[i * SKNN_RERANK_NFEATURES];
      const rk_node *nd = tree;
      while (nd->left >= 0) {
        float v = f[nd->feat & ~RK_DEFAULT_LEFT];
        int left = isnan(v) ? (nd->feat & RK_DEFAULT_LEFT) != 0 : v < nd->cond;
        nd = &tree[left ? nd->left : nd->right];
      }
      out[i] += nd->cond;
    }
  }
  return 0;
}

int sknn_rerank_query(const sknn_index *x, const sknn_ranker *r,
                      const sknn_params *p, const uint32_t *prefix, size_t n,
                      sknn_rerank_work *w, topk_entry *out, size_t k) {
  const uint32_t *ids, *anchors;
  const float *f;
  int m = sknn_rerank_candidates(x, p, prefix, n, w, &ids, &anchors, &f);
  if (m < 0) return m;
  int rc = sknn_ranker_score(r, f, (size_t)m, w->score);
  if (rc) return rc;
  topk h;
  topk_init(&h, out, k);
  for (int i = 0; i < m; i++) topk_push(&h, ids[i], anchors[i], w->score[i]);
  size_t got = topk_sorted(&h);
  if (got < k && p->fill) {
    /* Popular items after the candidates: tailor's own fill rows. */
    topk_entry fill[SKNN_RERANK_MAX + 256];
    size_t want = k - got + (size_t)m;
    if (want > sizeof fill / sizeof *fill) want = sizeof fill / sizeof *fill;
    sknn_params pp;
    sknn_params_default(&pp, SKNN_POP);
    int nf = sknn_query(x, prefix, n, &pp, w->wi, fill, want);
    for (int i = 0; nf > 0 && i < nf && got < k; i++) {
      int dup = 0;
      for (size_t j = 0; j < got && !dup; j++) dup = out[j].id == fill[i].id;
      if (dup) continue;
      out[got].id = fill[i].id;
      out[got].aux = SKNN_NONE;
      out[got].score = -1e30;
      got++;
    }
  }
  return (int)got;
}
