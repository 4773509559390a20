/*
** sknn_rerank.c: the learned re-ranker's query side: the union of the
** kernels' candidates, their features, and the model's scores (XGBoost's C
** API, predicting in place from a dense matrix, one thread per call).
*/
#include "index/sknn_rerank.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

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
    float *f = &w->f[r * SKNN_RERANK_NFEATURES];
    f[SKNN_F_itemknn] = (float)w->il[i].score;
    f[SKNN_F_itemknn_rank] = (float)(i + 1);
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
  /* The rest of every row. */
  uint32_t ndist = 0;
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    while (j < i && prefix[j] != prefix[i]) j++;
    ndist += j == i;
  }
  for (uint32_t r = 0; r < w->m; r++) {
    float *f = &w->f[r * SKNN_RERANK_NFEATURES];
    uint32_t e = w->ids[r];
    double parts[3];
    sknn_tailor_parts(w->wt, &tp, prefix, n, e, parts);
    f[SKNN_F_tailor] = (float)(parts[0] + parts[1] + parts[2]);
    f[SKNN_F_neighbours] = (float)parts[0];
    f[SKNN_F_transitions] = (float)parts[1];
    f[SKNN_F_repeat] = (float)parts[2];
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

struct sknn_ranker {
  BoosterHandle h;
};

sknn_ranker *sknn_ranker_load(const char *path, tailor_error *err) {
  sknn_ranker *r = calloc(1, sizeof *r);
  if (!r) {
    util_fail(err, TAILOR_ENOMEM, "model", "out of memory");
    return NULL;
  }
  bst_ulong nf = 0;
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    util_fail(err, TAILOR_EIO, "model", "%s: %s", path, strerror(errno));
    sknn_ranker_free(r);
    return NULL;
  }
  fclose(fp);
  if (XGBoosterCreate(NULL, 0, &r->h) || XGBoosterLoadModel(r->h, path) ||
      XGBoosterSetParam(r->h, "nthread", "1") ||
      XGBoosterGetNumFeature(r->h, &nf)) {
    /* XGBoost's message, without the stack trace it appends. */
    const char *msg = XGBGetLastError();
    const char *trace = strstr(msg, "Stack trace:");
    util_fail(err, TAILOR_EIO, "model", "%s: %.*s", path,
              trace ? (int)(trace - msg) : (int)strlen(msg), msg);
    sknn_ranker_free(r);
    return NULL;
  }
  if (nf != SKNN_RERANK_NFEATURES) {
    util_fail(err, TAILOR_EINVAL, "model",
              "%s: a model of %llu features; this build has %d (tune again)",
              path, (unsigned long long)nf, SKNN_RERANK_NFEATURES);
    sknn_ranker_free(r);
    return NULL;
  }
  return r;
}

void sknn_ranker_free(sknn_ranker *r) {
  if (!r) return;
  if (r->h) XGBoosterFree(r->h);
  free(r);
}

int sknn_ranker_score(const sknn_ranker *r, const float *features, size_t m,
                      float *out) {
  if (m == 0) return 0;
  char values[160];
  snprintf(values, sizeof values,
           "{\"data\":[%llu,true],\"shape\":[%zu,%d],\"typestr\":\"<f4\","
           "\"version\":3}",
           (unsigned long long)(uintptr_t)features, m, SKNN_RERANK_NFEATURES);
  static const char config[] =
      "{\"type\":0,\"training\":false,\"iteration_begin\":0,"
      "\"iteration_end\":0,\"strict_shape\":false,\"missing\":NaN,"
      "\"cache_id\":0}";
  const bst_ulong *shape;
  bst_ulong dim;
  const float *res;
  if (XGBoosterPredictFromDense(r->h, values, config, NULL, &shape, &dim, &res))
    return TAILOR_EINVAL;
  memcpy(out, res, m * sizeof *out);
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
