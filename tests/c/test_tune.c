/*
** test_tune.c: `tailor tune`'s work on generated shops: the search raises
** the validation score over the defaults and reads no test data; a
** repeat-heavy shop is detected and its adjusted defaults do not lose to
** S-POP; a sequential shop gets the transition weight that ranks its
** held-out sessions better; the re-ranker trains, is saved, loads and scores; its native
** scores are XGBoost's predictions; a malformed model is a clear error;
** the tuned file reads back.
*/
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xgboost/c_api.h>

#include "check.h"
#include "core/buf.h"
#include "eval/tune.h"
#include "index/sknn_rerank.h"

/* A deterministic generator (xorshift). */
static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng % n);
}

#define CLUSTERS 30

/*
** A shop's sessions in the plain format: each session browses one cluster
** of items, along a fixed path (item j followed by j+1) `path` percent of
** the steps, else jumping anywhere inside the cluster; with probability `repeat` (in
** percent) a step goes back to an item already viewed, picked in
** proportion to how often it was (the "repeated consumption" of
** marketplaces and of long sessions).
*/
static char *gen_shop(unsigned sessions, unsigned repeat, unsigned path,
                      uint32_t per_cluster, uint32_t long_tail, uint64_t seed) {
  rng = seed;
  strbuf b = {0};
  for (unsigned s = 0; s < sessions; s++) {
    uint32_t c = rnd(CLUSTERS), len = 3 + rnd(long_tail), seq[64];
    uint32_t at = rnd(per_cluster);
    for (uint32_t i = 0; i < len; i++) {
      uint32_t item;
      if (i > 1 && rnd(100) < repeat) {
        item = seq[rnd(i)]; /* by count: a uniform pick of a past view */
      } else {
        at = rnd(100) < path ? (at + 1) % per_cluster : rnd(per_cluster);
        item = 1 + c * per_cluster + at;
      }
      seq[i] = item;
      char num[16];
      snprintf(num, sizeof num, i ? " %u" : "%u", item);
      buf_puts(&b, num);
    }
    buf_putc(&b, '\n');
  }
  return b.s;
}

/* Load sessions with a validation split; the test text is not a valid
** test file, so reading it would fail the load. */
static int load_val(eval_data *d, const char *train) {
  static const char poison[] = "this is not a test pair\n";
  tailor_error err = {0};
  int rc = eval_load_text(d, train, strlen(train), poison, sizeof poison - 1, 0.2, &err);
  if (rc) fprintf(stderr, "load: %s\n", err.message);
  return rc;
}

static void quiet_opts(tune_opts *o) {
  tune_opts_default(o);
  o->queries = 0;
  o->max_passes = 2;
  o->budget_s = 60;
  o->rerank = 0;
}

static void test_search_improves(void) {
  char *train = gen_shop(2500, 10, 75, 10, 6, 7);
  eval_data d;
  CHECK_INT(load_val(&d, train), 0);
  CHECK(d.validating);
  CHECK(d.nqueries > 500);
  tune_opts o;
  quiet_opts(&o);
  tune_result r;
  tailor_error err = {0};
  CHECK_INT(tune_run(&d, &o, &r, &err), 0);
  CHECK(r.evaluations > 10);
  CHECK(r.profile.share < SKNN_REPEAT_HEAVY);
  /* Not repeat-heavy: the defaults are the shipped ones, but for the
     transition weight when the transition check took one. */
  sknn_params expect = r.defaults;
  if (r.profile.trans > 0) expect.trans = r.profile.trans;
  CHECK(memcmp(&r.adapted, &expect, sizeof r.adapted) == 0);
  CHECK(r.s_tuned.p20 + r.s_tuned.mrr20 > r.s_defaults.p20 + r.s_defaults.mrr20);
  /* The tuned figures are what those parameters score. */
  sknn_index *x = eval_index(&d);
  tune_score s;
  CHECK_INT(tune_score_params(&d, x, &r.tuned, 1, 1, &s), 0);
  CHECK_NEAR(s.p20, r.s_tuned.p20, 1e-12);
  CHECK_NEAR(s.mrr20, r.s_tuned.mrr20, 1e-12);
  sknn_free(x);
  eval_data_free(&d);
  free(train);
}

static void test_repeat_heavy_default(void) {
  char *train = gen_shop(2500, 60, 0, 300, 40, 11);
  eval_data d;
  CHECK_INT(load_val(&d, train), 0);
  sknn_index *x = eval_index(&d);
  sknn_repeat_profile prof;
  CHECK_INT(sknn_repeat_profile_get(x, SKNN_PROFILE_SESSIONS, &prof), 0);
  CHECK(prof.share >= SKNN_REPEAT_HEAVY);
  sknn_params def, adapted, spop;
  sknn_params_default(&def, SKNN_TAILOR);
  adapted = def;
  CHECK(sknn_params_adapt(&adapted, &prof) & SKNN_ADAPTED_REPEAT);
  sknn_params_default(&spop, SKNN_SPOP);
  tune_score sd, sa, ss;
  CHECK_INT(tune_score_params(&d, x, &def, 1, 2, &sd), 0);
  CHECK_INT(tune_score_params(&d, x, &adapted, 1, 2, &sa), 0);
  CHECK_INT(tune_score_params(&d, x, &spop, 1, 2, &ss), 0);
  printf("repeat-heavy shop (%.0f%% repeats, decay %g): S-POP %.2f/%.2f, "
         "defaults %.2f/%.2f, adapted %.2f/%.2f\n", 100 * prof.share, prof.decay,
         100 * ss.p20, 100 * ss.mrr20, 100 * sd.p20, 100 * sd.mrr20, 100 * sa.p20,
         100 * sa.mrr20);
  /* The shipped defaults lose to S-POP here (old, often viewed items of
  ** the session fall behind the neighbours' picks); adjusted, they do not
  ** lose on either figure. */
  CHECK(sd.p20 < ss.p20);
  CHECK(sa.p20 >= ss.p20);
  CHECK(sa.mrr20 >= ss.mrr20);
  CHECK(sa.p20 + sa.mrr20 >= sd.p20 + sd.mrr20);
  /* And a shop that is not repeat-heavy keeps the defaults. */
  sknn_repeat_profile low = prof;
  low.share = 0.19;
  low.trans = 0;
  sknn_params kept = def;
  CHECK_INT(sknn_params_adapt(&kept, &low), 0);
  CHECK(memcmp(&kept, &def, sizeof kept) == 0);
  sknn_free(x);
  eval_data_free(&d);
  free(train);
}


/*
** The transition check.  A shop whose visitors walk its items in order
** (each step to the next item of a path, 95% of the time) gets a higher
** transition weight, and it ranks the validation split's next items
** better: the split's sessions are not in the index, so this is the
** held-out figure the leave-one-out check estimated.  A shop whose
** visitors jump about their cluster keeps the default weight.
*/
static void test_sequential_default(void) {
  char *train = gen_shop(4000, 0, 95, 200, 10, 23);
  eval_data d;
  CHECK_INT(load_val(&d, train), 0);
  sknn_index *x = eval_index(&d);
  sknn_repeat_profile prof;
  CHECK_INT(sknn_repeat_profile_get(x, SKNN_PROFILE_SESSIONS, &prof), 0);
  CHECK_INT(prof.trans_queries, SKNN_TRANS_QUERIES);
  CHECK(prof.trans > 0);
  sknn_params def, adapted;
  sknn_params_default(&def, SKNN_TAILOR);
  adapted = def;
  CHECK_INT(sknn_params_adapt(&adapted, &prof), SKNN_ADAPTED_TRANS);
  CHECK(adapted.trans == prof.trans && adapted.held_out == 0);
  tune_score sd, sa;
  CHECK_INT(tune_score_params(&d, x, &def, 1, 2, &sd), 0);
  CHECK_INT(tune_score_params(&d, x, &adapted, 1, 2, &sa), 0);
  printf("sequential shop: check MRR@20 %.2f at the default, %.2f/%.2f at the choices; "
         "validation defaults %.2f/%.2f, adapted (trans=%g) %.2f/%.2f\n",
         100 * prof.trans_mrr[0], 100 * prof.trans_mrr[1], 100 * prof.trans_mrr[2],
         100 * sd.p20, 100 * sd.mrr20, adapted.trans, 100 * sa.p20, 100 * sa.mrr20);
  CHECK(sa.mrr20 > 1.05 * sd.mrr20);
  CHECK(sa.p20 >= sd.p20);
  sknn_free(x);
  eval_data_free(&d);
  free(train);

  train = gen_shop(4000, 0, 0, 20, 10, 29);
  CHECK_INT(load_val(&d, train), 0);
  x = eval_index(&d);
  CHECK_INT(sknn_repeat_profile_get(x, SKNN_PROFILE_SESSIONS, &prof), 0);
  printf("jumping shop: check MRR@20 %.2f at the default, %.2f/%.2f at the choices\n",
         100 * prof.trans_mrr[0], 100 * prof.trans_mrr[1], 100 * prof.trans_mrr[2]);
  CHECK(prof.trans_queries >= SKNN_TRANS_MIN_QUERIES);
  CHECK(prof.trans == 0);
  adapted = def;
  CHECK_INT(sknn_params_adapt(&adapted, &prof), 0);
  sknn_free(x);
  eval_data_free(&d);
  free(train);
}

/* XGBoost's own predictions for m rows (NaN = missing), as training sees
** the model. */
static int xgb_predict(const char *model, const float *f, size_t m, float *out) {
  BoosterHandle h;
  DMatrixHandle d;
  bst_ulong len;
  const float *res;
  if (XGBoosterCreate(NULL, 0, &h)) return -1;
  int rc = XGBoosterLoadModel(h, model) ||
           XGDMatrixCreateFromMat(f, m, SKNN_RERANK_NFEATURES, NAN, &d);
  if (!rc) {
    rc = XGBoosterPredict(h, d, 0, 0, 0, &len, &res) || len != m;
    if (!rc) memcpy(out, res, m * sizeof *out);
    XGDMatrixFree(d);
  }
  XGBoosterFree(h);
  return rc ? -1 : 0;
}

/* The split thresholds of each feature in the model's JSON. */
typedef struct {
  float v[SKNN_RERANK_NFEATURES][256];
  int n[SKNN_RERANK_NFEATURES];
} splits;

static void model_splits(const char *model, splits *sp) {
  memset(sp, 0, sizeof *sp);
  json_t *j = json_load_file(model, 0, NULL);
  json_t *trees = json_object_get(
      json_object_get(json_object_get(json_object_get(j, "learner"), "gradient_booster"), "model"),
      "trees");
  for (size_t t = 0; t < json_array_size(trees); t++) {
    json_t *tr = json_array_get(trees, t);
    json_t *l = json_object_get(tr, "left_children"), *fi = json_object_get(tr, "split_indices"),
           *c = json_object_get(tr, "split_conditions");
    for (size_t i = 0; i < json_array_size(l); i++) {
      if (json_integer_value(json_array_get(l, i)) < 0) continue;
      int f = (int)json_integer_value(json_array_get(fi, i));
      if (sp->n[f] < 256) sp->v[f][sp->n[f]++] = (float)json_number_value(json_array_get(c, i));
    }
  }
  json_decref(j);
}

/* Rows of the model's kind: real candidates' features, then random ones
** around its thresholds (exactly on one, just under or over, far away, or
** missing). */
static size_t random_rows(const splits *sp, const float *real, size_t nreal, float *f,
                          size_t m) {
  size_t i = 0;
  for (; i < nreal && i < m / 2; i++)
    memcpy(&f[i * SKNN_RERANK_NFEATURES], &real[i * SKNN_RERANK_NFEATURES],
           SKNN_RERANK_NFEATURES * sizeof *f);
  for (; i < m; i++)
    for (int j = 0; j < SKNN_RERANK_NFEATURES; j++) {
      float *v = &f[i * SKNN_RERANK_NFEATURES + j];
      uint32_t how = rnd(10);
      float at = sp->n[j] ? sp->v[j][rnd((uint32_t)sp->n[j])] : 0;
      if (how < 2) *v = NAN;
      else if (how < 4) *v = at;
      else if (how < 5) *v = nextafterf(at, -INFINITY);
      else if (how < 6) *v = nextafterf(at, INFINITY);
      else if (how < 7) *v = (float)rnd(2000) - 1000;
      else *v = at + ((float)rnd(2001) - 1000) / 1000.0f * (fabsf(at) + 1);
    }
  return m;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

/* The model's JSON, changed by `edit`, written to `out`. */
static void write_edited(const char *model, const char *out, void (*edit)(json_t *)) {
  json_t *j = json_load_file(model, 0, NULL);
  edit(j);
  json_dump_file(j, out, JSON_COMPACT);
  json_decref(j);
}

static json_t *learner_of(json_t *j) { return json_object_get(j, "learner"); }
static json_t *tree0(json_t *j) {
  return json_array_get(
      json_object_get(json_object_get(json_object_get(learner_of(j), "gradient_booster"), "model"),
                      "trees"),
      0);
}
static void edit_features(json_t *j) {
  json_object_set_new(json_object_get(learner_of(j), "learner_model_param"), "num_feature",
                      json_string("17"));
}
static void edit_child(json_t *j) {
  json_array_set_new(json_object_get(tree0(j), "left_children"), 0, json_integer(100000));
}
static void edit_cycle(json_t *j) {
  /* The root's right child points back at its left one. */
  json_t *l = json_object_get(tree0(j), "left_children");
  json_t *r = json_object_get(tree0(j), "right_children");
  json_array_set(r, 0, json_array_get(l, 0));
}
static void edit_short(json_t *j) {
  json_t *c = json_object_get(tree0(j), "split_conditions");
  json_array_remove(c, json_array_size(c) - 1);
}
static void edit_booster(json_t *j) {
  json_object_set_new(json_object_get(learner_of(j), "gradient_booster"), "name",
                      json_string("gblinear"));
}
static void edit_no_trees(json_t *j) {
  json_object_del(
      json_object_get(json_object_get(learner_of(j), "gradient_booster"), "model"), "trees");
}
static void edit_base(json_t *j) {
  json_object_set_new(json_object_get(learner_of(j), "learner_model_param"), "base_score",
                      json_string("half"));
}

/* The tuned file's feature list as an older build wrote it: one column
** fewer, or one renamed. */
static void edit_list_short(json_t *j) {
  json_t *f = json_object_get(j, "features");
  json_array_remove(f, json_array_size(f) - 1);
}
static void edit_list_renamed(json_t *j) {
  json_array_set_new(json_object_get(j, "features"), SKNN_F_support, json_string("supp"));
}
static void edit_list_gone(json_t *j) { json_object_del(j, "features"); }

/* A malformed model: refused, naming the file and what is wrong. */
static void check_bad_model(const char *path, const char *what) {
  tailor_error err = {0};
  sknn_ranker *r = sknn_ranker_load(path, &err);
  CHECK(r == NULL);
  CHECK(err.code != 0);
  CHECK_CONTAINS(err.message, path);
  CHECK_CONTAINS(err.message, what);
  sknn_ranker_free(r);
}

static void test_bad_models(const char *model, const char *dir) {
  char bad[600];
  snprintf(bad, sizeof bad, "%s/bad-%d.model.json", dir, (int)getpid());
  write_file(bad, "{\"learner\": ");
  check_bad_model(bad, "not an XGBoost JSON model");
  write_file(bad, "binary\x01\x02");
  check_bad_model(bad, "not an XGBoost JSON model");
  write_file(bad, "{\"version\": [1, 7, 4]}");
  check_bad_model(bad, "learner.learner_model_param");
  write_edited(model, bad, edit_features);
  char what[64];
  snprintf(what, sizeof what, "a model of 17 features; this build has %d",
           SKNN_RERANK_NFEATURES);
  check_bad_model(bad, what);
  write_edited(model, bad, edit_child);
  check_bad_model(bad, "trees[0] node 0: children 100000");
  write_edited(model, bad, edit_cycle);
  check_bad_model(bad, "trees[0]");
  write_edited(model, bad, edit_short);
  check_bad_model(bad, "trees[0] split_conditions has");
  write_edited(model, bad, edit_booster);
  check_bad_model(bad, "booster 'gblinear'");
  write_edited(model, bad, edit_no_trees);
  check_bad_model(bad, "no learner.gradient_booster.model.trees");
  write_edited(model, bad, edit_base);
  check_bad_model(bad, "no base_score");
  unlink(bad);
  check_bad_model(bad, "No such file");
}

static void test_rerank(void) {
  char *train = gen_shop(3000, 25, 75, 10, 6, 5);
  eval_data d;
  CHECK_INT(load_val(&d, train), 0);
  const char *tmp = getenv("TAILOR_TEST_TMP");
  char out[512], model[512];
  snprintf(out, sizeof out, "%s/tune-%d.json", tmp && *tmp ? tmp : "/tmp", (int)getpid());
  snprintf(model, sizeof model, "%s/tune-%d.model.json", tmp && *tmp ? tmp : "/tmp",
           (int)getpid());
  tune_opts o;
  quiet_opts(&o);
  o.max_passes = 1;
  o.rerank = 1;
  o.model_path = model;
  o.trees = 30;
  tune_result r;
  tailor_error err = {0};
  int rc = tune_run(&d, &o, &r, &err);
  if (rc) fprintf(stderr, "tune: %s\n", err.message);
  CHECK_INT(rc, 0);
  CHECK(r.reranked);
  CHECK(r.trees >= 1);
  CHECK(r.h_reranked.queries > 0);
  CHECK(r.h_reranked.queries == r.h_tuned.queries);
  CHECK_INT(tune_write(out, &r, model, &d, &err), 0);
  /* A file that cannot be written says why (it said "cannot write"). */
  CHECK(tune_write("/nonexistent-tailor-dir/t.json", &r, model, &d, &err) != 0);
  CHECK_CONTAINS(err.message, "cannot write: No such file or directory");

  /* It reads back: the parameters, and the model beside them. */
  sknn_tuned t;
  rc = sknn_tuned_load(out, &t, &err);
  if (rc) fprintf(stderr, "load: %s\n", err.message);
  CHECK_INT(rc, 0);
  CHECK(t.ranker != NULL);
  CHECK_STR(t.model, model);
  char a[1024], b[1024];
  sknn_params_format(&t.params, a, sizeof a);
  sknn_params_format(&r.tuned, b, sizeof b);
  CHECK_STR(a, b);
  sknn_tuned t2;

  /* A feature list other than this build's is refused by name (the model
  ** beside it would score the wrong columns); a file without the list is
  ** checked by the model's feature count alone. */
  char edited[600];
  snprintf(edited, sizeof edited, "%s.edited.json", out);
  write_edited(out, edited, edit_list_short);
  CHECK(sknn_tuned_load(edited, &t2, &err) == TAILOR_EINVAL);
  CHECK_CONTAINS(err.message, edited);
  CHECK_CONTAINS(err.message, "is '-' there, 'last_views' here");
  CHECK_CONTAINS(err.message, "tune again");
  sknn_tuned_free(&t2);
  write_edited(out, edited, edit_list_renamed);
  CHECK(sknn_tuned_load(edited, &t2, &err) == TAILOR_EINVAL);
  CHECK_CONTAINS(err.message, "is 'supp' there, 'support' here");
  CHECK(t2.ranker == NULL);
  sknn_tuned_free(&t2);
  write_edited(out, edited, edit_list_gone);
  CHECK_INT(sknn_tuned_load(edited, &t2, &err), 0);
  CHECK(t2.ranker != NULL);
  sknn_tuned_free(&t2);
  unlink(edited);

  /* It scores: k rows, no duplicates, each explained by a prefix item or
  ** the item itself. */
  sknn_index *x = eval_index(&d);
  sknn_rerank_work *w = sknn_rerank_work_new();
  const eval_query *Q = &d.queries[d.nqueries / 2];
  const uint32_t *prefix = d.test.items + d.test.start[Q->session];
  topk_entry rows[20];
  int n = sknn_rerank_query(x, t.ranker, &t.params, prefix, Q->pos, w, rows, 20);
  CHECK_INT(n, 20);
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < i; j++) CHECK(rows[i].id != rows[j].id);
    if (rows[i].aux == SKNN_NONE) continue; /* popularity fill */
    int found = 0;
    for (uint32_t p = 0; p < Q->pos; p++) found |= prefix[p] == rows[i].aux;
    CHECK(found);
  }
  /* Native scores are XGBoost's own predictions: on real candidates and on
  ** random rows around the model's thresholds. */
  CHECK(sknn_ranker_trees(t.ranker) == r.trees);
  {
    enum { M = 4000 };
    float *real = malloc((size_t)M * SKNN_RERANK_NFEATURES * sizeof *real);
    float *f = malloc((size_t)M * SKNN_RERANK_NFEATURES * sizeof *f);
    float *mine = malloc(M * sizeof *mine), *theirs = malloc(M * sizeof *theirs);
    size_t nreal = 0;
    for (size_t q = 0; q < d.nqueries && nreal + SKNN_RERANK_MAX <= M / 2; q += 7) {
      const eval_query *P = &d.queries[q];
      const uint32_t *pre = d.test.items + d.test.start[P->session];
      const uint32_t *ids, *anchors;
      const float *cf;
      int m = sknn_rerank_candidates(x, &t.params, pre, P->pos, w, &ids, &anchors, &cf);
      CHECK(m >= 0);
      memcpy(&real[nreal * SKNN_RERANK_NFEATURES], cf,
             (size_t)m * SKNN_RERANK_NFEATURES * sizeof *cf);
      nreal += (size_t)m;
    }
    CHECK(nreal > 500);
    /* The features that describe a candidate's support keep their ranges;
    ** tailor's and itemknn's first rows have ratio 1; itemknn scores items
    ** past its own list too (0 when never co-viewed with the last item). */
    size_t supported = 0, unlisted_ik = 0;
    for (size_t i = 0; i < nreal; i++) {
      const float *row = &real[i * SKNN_RERANK_NFEATURES];
      float share = row[SKNN_F_support_share], best = row[SKNN_F_best_share];
      CHECK(share >= 0 && share <= 1);
      CHECK(isnan(best) || (best > 0 && best <= 1 + 1e-5));
      CHECK(row[SKNN_F_trans_last] >= 0 && row[SKNN_F_trans_last] <= 1 + 1e-5);
      CHECK(isnan(row[SKNN_F_tailor_ratio]) || row[SKNN_F_tailor_ratio] <= 1 + 1e-5);
      if (row[SKNN_F_tailor_rank] == 1) CHECK(fabsf(row[SKNN_F_tailor_ratio] - 1) < 1e-5);
      if (row[SKNN_F_itemknn_rank] == 1) CHECK(fabsf(row[SKNN_F_itemknn_ratio] - 1) < 1e-5);
      supported += row[SKNN_F_support] > 0 && row[SKNN_F_neighbours] > 0;
      unlisted_ik += isnan(row[SKNN_F_itemknn_rank]) && row[SKNN_F_itemknn] >= 0;
    }
    CHECK(supported > nreal / 4);
    CHECK(unlisted_ik > 0);
    static splits sp;
    model_splits(model, &sp);
    int nsplits = 0;
    for (int j = 0; j < SKNN_RERANK_NFEATURES; j++) nsplits += sp.n[j];
    CHECK(nsplits > 30);
    rng = 99;
    size_t m = random_rows(&sp, real, nreal, f, M);
    CHECK_INT(sknn_ranker_score(t.ranker, f, m, mine), 0);
    CHECK_INT(xgb_predict(model, f, m, theirs), 0);
    double worst = 0;
    size_t distinct = 0;
    for (size_t i = 0; i < m; i++) {
      double e = fabs((double)mine[i] - (double)theirs[i]);
      if (e > worst) worst = e;
      distinct += i == 0 || theirs[i] != theirs[i - 1];
    }
    printf("native vs XGBoost: %zu rows (%zu real), %d trees, worst |diff| %.3g\n", m,
           nreal, (int)r.trees, worst);
    CHECK(worst <= 1e-5);
    CHECK(distinct > m / 10); /* the rows are not all the same leaf */
    free(real);
    free(f);
    free(mine);
    free(theirs);
  }
  test_bad_models(model, tmp && *tmp ? tmp : "/tmp");

  /* Features have names; a whole evaluation runs re-ranked. */
  CHECK_STR(sknn_rerank_feature_name(SKNN_F_tailor_rank), "tailor_rank");
  CHECK(sknn_rerank_feature_name(SKNN_RERANK_NFEATURES) == NULL);
  eval_opts eo = {.every = 1, .repeat = 1};
  metrics_report rep;
  CHECK_INT(eval_rerank(&d, x, &t.params, t.ranker, &eo, &rep), 0);
  CHECK(rep.queries == d.nqueries);
  CHECK(rep.p20 > 0.3);
  sknn_rerank_work_free(w);
  sknn_free(x);
  sknn_tuned_free(&t);

  /* A tuned file whose model is malformed names the model. */
  write_file(model, "{\"learner\": {}}");
  CHECK(sknn_tuned_load(out, &t, &err) != 0);
  CHECK_CONTAINS(err.message, model);
  sknn_tuned_free(&t);

  /* A broken file names itself. */
  FILE *f = fopen(out, "w");
  fputs("{\"params\": {\"nope\": 1}}", f);
  fclose(f);
  CHECK(sknn_tuned_load(out, &t, &err) != 0);
  CHECK_CONTAINS(err.message, "params.nope");
  sknn_tuned_free(&t);
  unlink(out);
  unlink(model);
  eval_data_free(&d);
  free(train);
}

int main(void) {
  RUN(test_search_improves);
  RUN(test_repeat_heavy_default);
  RUN(test_sequential_default);
  RUN(test_rerank);
  return CHECK_DONE();
}
