/*
** tune.c: `tailor tune`'s work (eval/tune.h): the coordinate search over
** tailor's parameters, the re-ranker's training through XGBoost's C API,
** and the JSON file both go to.
*/
#include "eval/tune.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

#include "core/util.h"
#include "index/sknn_rerank.h"

void tune_opts_default(tune_opts *o) {
  memset(o, 0, sizeof *o);
  o->queries = TUNE_DEFAULT_QUERIES;
  o->max_passes = TUNE_DEFAULT_MAX_PASSES;
  o->budget_s = TUNE_DEFAULT_BUDGET_S;
  o->threads = 2;
  o->rerank = 1;
  o->rank_queries = TUNE_DEFAULT_RANK_QUERIES;
  o->trees = TUNE_DEFAULT_TREES;
}

static void say(const tune_opts *o, const char *fmt, ...) {
  if (!o->progress) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  o->progress(o->ud, line);
}

static double objective(const tune_score *s) { return s->p20 + s->mrr20; }

/* ** Scoring on threads ------------------------------------------------------- */

typedef struct score_job {
  const eval_data *d;
  const sknn_index *x;
  const sknn_params *p;
  size_t first, stride, lo, hi; /* queries lo + first + i*stride < hi */
  uint64_t hits, n;
  double rr;
  int rc;
} score_job;

static void *score_worker(void *arg) {
  score_job *j = arg;
  sknn_work *w = sknn_work_new();
  topk_entry out[EVAL_LIST_LEN];
  if (!w) {
    j->rc = TAILOR_ENOMEM;
    return NULL;
  }
  for (size_t q = j->lo + j->first; q < j->hi; q += j->stride) {
    const eval_query *Q = &j->d->queries[q];
    const uint32_t *prefix = j->d->test.items + j->d->test.start[Q->session];
    int n = sknn_query(j->x, prefix, Q->pos, j->p, w, out, EVAL_LIST_LEN);
    if (n < 0) {
      j->rc = n;
      break;
    }
    j->n++;
    for (int i = 0; i < n; i++)
      if (out[i].id == prefix[Q->pos]) {
        j->hits++;
        j->rr += 1.0 / (i + 1);
        break;
      }
  }
  sknn_work_free(w);
  return NULL;
}

/* Queries [lo, hi), every Nth, on `threads` threads. */
static int score_range(const eval_data *d, const sknn_index *x,
                       const sknn_params *p, size_t lo, size_t hi,
                       size_t every, unsigned threads, tune_score *s) {
  if (threads < 1) threads = 1;
  if (threads > 16) threads = 16;
  score_job jobs[16];
  pthread_t tid[16];
  unsigned started = 0;
  for (unsigned t = 0; t < threads; t++) {
    jobs[t] = (score_job){d, x, p, t * every, every * threads, lo, hi, 0, 0, 0, 0};
    if (t == 0 || pthread_create(&tid[t], NULL, score_worker, &jobs[t]) == 0)
      started = t + 1;
    else
      break;
  }
  if (started < threads) { /* a thread could not start: its share here */
    for (unsigned t = started; t < threads; t++) {
      jobs[t].first = t * every;
      score_worker(&jobs[t]);
    }
  }
  score_worker(&jobs[0]);
  for (unsigned t = 1; t < started; t++) pthread_join(tid[t], NULL);
  uint64_t hits = 0, n = 0;
  double rr = 0;
  for (unsigned t = 0; t < threads; t++) {
    if (jobs[t].rc) return jobs[t].rc;
    hits += jobs[t].hits;
    n += jobs[t].n;
    rr += jobs[t].rr;
  }
  s->queries = n;
  s->p20 = n ? (double)hits / (double)n : 0;
  s->mrr20 = n ? rr / (double)n : 0;
  return 0;
}

int tune_score_params(const eval_data *d, const sknn_index *x,
                      const sknn_params *p, size_t every, unsigned threads,
                      tune_score *s) {
  return score_range(d, x, p, 0, d->nqueries, every ? every : 1, threads, s);
}

/* ** The search space ---------------------------------------------------------- */

/*
** Each tunable parameter: how a step moves it (MUL: times or over the
** factor; ADD: plus or minus the step), its first step, its range and
** whether it is a count.  The ranges keep a query's cost bounded (k and the
** samples) and the search inside what the kernel accepts.
*/
typedef enum { MUL, ADD } step_kind;
typedef struct dim {
  const char *name;
  step_kind kind;
  double step, lo, hi;
  int whole;
} dim;

static const dim space[] = {
    {"k", MUL, 1.5, 20, 400, 1},
    {"sample", MUL, 1.5, 10, 500, 1},
    {"window", ADD, 2, 1, 30, 1},
    {"lambda1", MUL, 2, 0.25, 100, 0},
    {"lambda2", MUL, 4, 100, 1e12, 0},
    {"lambda3", MUL, 2, 0.25, 100, 0},
    {"before", ADD, 0.2, 0, 2, 0},
    {"idf", ADD, 0.5, 0, 10, 0},
    {"repeat", MUL, 2, 0.05, 50, 0},
    {"repeat_decay", MUL, 2, 0.25, 1000, 0},
    {"trans", MUL, 2, 0.001, 10, 0},
    {"trans_decay", MUL, 2, 0.25, 100, 0},
    {"trans_window", ADD, 1, 1, 10, 1},
    {"trans_gap", ADD, 1, 1, 10, 1},
    {"pop_exp", ADD, 0.1, -1, 1, 0},
};
#define NDIMS (sizeof space / sizeof *space)

/* The value of parameter `name` in p, through the "k=v" text. */
static double param_get(const sknn_params *p, const char *name) {
  char buf[1024];
  sknn_params_format(p, buf, sizeof buf);
  size_t n = strlen(name);
  for (const char *s = buf; (s = strstr(s, name)) != NULL; s += n)
    if ((s == buf || s[-1] == ' ') && s[n] == '=') return strtod(s + n + 1, NULL);
  return NAN;
}

static int param_put(sknn_params *p, const dim *dm, double v) {
  char kv[96];
  if (dm->whole) snprintf(kv, sizeof kv, "%s=%.0f", dm->name, round(v));
  else snprintf(kv, sizeof kv, "%s=%.6g", dm->name, v);
  return sknn_params_set(p, kv);
}

/* One step of dm from v in direction dir (+1/-1) with step s; the value is
** clamped; returns v itself when the step goes nowhere. */
static double step_value(const dim *dm, double v, int dir, double s) {
  double nv;
  if (dm->kind == MUL) {
    if (v <= 0) nv = dir > 0 ? dm->lo : 0; /* 0 = off: a MUL step starts it */
    else nv = dir > 0 ? v * s : v / s;
  } else {
    nv = v + dir * s;
  }
  if (nv < dm->lo) nv = dm->lo;
  if (nv > dm->hi) nv = dm->hi;
  if (dm->whole) {
    nv = round(nv);
    if (nv == round(v)) nv = v + dir; /* a whole step at least */
    if (nv < dm->lo || nv > dm->hi) return v;
  }
  return nv;
}

static int search(const eval_data *d, const sknn_index *x, const tune_opts *o,
                  size_t every, tune_result *r) {
  sknn_params best = r->adapted;
  tune_score bs = r->s_adapted;
  double steps[NDIMS];
  for (size_t i = 0; i < NDIMS; i++) steps[i] = space[i].step;
  uint64_t t0 = util_mono_ns();
  int rc = 0;
  for (unsigned pass = 0; pass < o->max_passes; pass++) {
    int gained = 0;
    for (size_t i = 0; i < NDIMS; i++) {
      const dim *dm = &space[i];
      for (int dir = 1; dir >= -1; dir -= 2) {
        int moved = 0;
        for (;;) {
          if ((double)(util_mono_ns() - t0) / 1e9 > o->budget_s) {
            r->budget_cut = 1; /* pass + 1 begun, r->passes whole */
            goto out;
          }
          double v = param_get(&best, dm->name), nv = step_value(dm, v, dir, steps[i]);
          if (nv == v) break;
          sknn_params cand = best;
          if (param_put(&cand, dm, nv)) break;
          tune_score s;
          if ((rc = score_range(d, x, &cand, 0, d->nqueries, every, o->threads, &s)))
            return rc;
          r->evaluations++;
          if (objective(&s) <= objective(&bs) + 1e-5) break;
          best = cand;
          bs = s;
          gained = moved = 1;
          say(o, "tune: pass %u, %s=%.4g: P@20 %.2f MRR@20 %.2f (best so far; %u runs, %.0f s)",
              pass + 1, dm->name, nv, 100 * s.p20, 100 * s.mrr20, r->evaluations,
              (double)(util_mono_ns() - t0) / 1e9);
        }
        if (moved) break; /* up helped: no need to try down */
      }
    }
    r->passes = pass + 1;
    say(o, "tune: pass %u done: P@20 %.2f MRR@20 %.2f (%u runs, %.0f s)", pass + 1,
        100 * bs.p20, 100 * bs.mrr20, r->evaluations,
        (double)(util_mono_ns() - t0) / 1e9);
    if (!gained) {
      /* Smaller steps; stop once they are fine. */
      int fine = 1;
      for (size_t i = 0; i < NDIMS; i++) {
        steps[i] = space[i].kind == MUL ? sqrt(steps[i]) : steps[i] / 2;
        if (space[i].kind == MUL ? steps[i] > 1.2 : steps[i] > space[i].step / 3) fine = 0;
      }
      if (fine) break;
    }
  }
out:
  r->tuned = best;
  r->s_tuned = bs;
  r->search_s = (double)(util_mono_ns() - t0) / 1e9;
  return 0;
}

/* ** The re-ranker ------------------------------------------------------------- */

typedef struct rows {
  float *f, *label;
  size_t n, cap;
  unsigned *group;
  size_t ngroup, gcap;
} rows;

static void rows_free(rows *r) {
  free(r->f);
  free(r->label);
  free(r->group);
}

/* The candidates of the queries of sessions [s0, s1) (every Nth query),
** those whose target is a candidate. */
static int collect(const eval_data *d, const sknn_index *x, const sknn_params *p,
                   size_t q0, size_t q1, size_t every, sknn_rerank_work *w,
                   rows *out) {
  for (size_t q = q0; q < q1; q += every) {
    const eval_query *Q = &d->queries[q];
    const uint32_t *prefix = d->test.items + d->test.start[Q->session];
    const uint32_t *ids, *anchors;
    const float *f;
    int m = sknn_rerank_candidates(x, p, prefix, Q->pos, w, &ids, &anchors, &f);
    if (m < 0) return m;
    int hit = -1;
    for (int i = 0; i < m && hit < 0; i++)
      if (ids[i] == prefix[Q->pos]) hit = i;
    if (hit < 0) continue;
    if (out->n + (size_t)m > out->cap) {
      size_t nc = out->cap ? out->cap * 2 : 65536;
      while (nc < out->n + (size_t)m) nc *= 2;
      float *nf = realloc(out->f, nc * SKNN_RERANK_NFEATURES * sizeof *nf);
      if (nf) out->f = nf;
      float *nl = realloc(out->label, nc * sizeof *nl);
      if (nl) out->label = nl;
      if (!nf || !nl) return TAILOR_ENOMEM;
      out->cap = nc;
    }
    if (out->ngroup == out->gcap) {
      size_t nc = out->gcap ? out->gcap * 2 : 4096;
      unsigned *ng = realloc(out->group, nc * sizeof *ng);
      if (!ng) return TAILOR_ENOMEM;
      out->group = ng;
      out->gcap = nc;
    }
    memcpy(out->f + out->n * SKNN_RERANK_NFEATURES, f,
           (size_t)m * SKNN_RERANK_NFEATURES * sizeof *f);
    for (int i = 0; i < m; i++) out->label[out->n + (size_t)i] = i == hit;
    out->n += (size_t)m;
    out->group[out->ngroup++] = (unsigned)m;
  }
  return 0;
}

static int xgb_matrix(const rows *r, DMatrixHandle *h) {
  if (XGDMatrixCreateFromMat(r->f, r->n, SKNN_RERANK_NFEATURES, NAN, h)) return -1;
  if (XGDMatrixSetFloatInfo(*h, "label", r->label, r->n) ||
      XGDMatrixSetUIntInfo(*h, "group", r->group, r->ngroup))
    return -1;
  return 0;
}

/* MAP@20 out of XGBoost's "[i]\tname-map@20:0.123" line. */
static double eval_value(const char *s) {
  const char *c = s ? strrchr(s, ':') : NULL;
  return c ? strtod(c + 1, NULL) : 0;
}

/* Score the queries [q0, q1) re-ranked by the model at `path`. */
static int score_reranked(const eval_data *d, const sknn_index *x,
                          const sknn_params *p, const char *path, size_t q0,
                          size_t q1, tune_score *s, tailor_error *err) {
  sknn_ranker *rk = sknn_ranker_load(path, err);
  sknn_rerank_work *w = sknn_rerank_work_new();
  int rc = rk && w ? 0 : rk ? TAILOR_ENOMEM : err->code;
  topk_entry out[EVAL_LIST_LEN];
  uint64_t hits = 0, n = 0;
  double rr = 0;
  for (size_t q = q0; !rc && q < q1; q++) {
    const eval_query *Q = &d->queries[q];
    const uint32_t *prefix = d->test.items + d->test.start[Q->session];
    int m = sknn_rerank_query(x, rk, p, prefix, Q->pos, w, out, EVAL_LIST_LEN);
    if (m < 0) {
      rc = util_fail(err, m, "rerank", "scoring: %s", tailor_strerror(m));
      break;
    }
    n++;
    for (int i = 0; i < m; i++)
      if (out[i].id == prefix[Q->pos]) {
        hits++;
        rr += 1.0 / (i + 1);
        break;
      }
  }
  s->queries = n;
  s->p20 = n ? (double)hits / (double)n : 0;
  s->mrr20 = n ? rr / (double)n : 0;
  sknn_rerank_work_free(w);
  sknn_ranker_free(rk);
  return rc;
}

static int train_ranker(const eval_data *d, const sknn_index *x,
                        const tune_opts *o, tune_result *r, tailor_error *err) {
  uint64_t t0 = util_mono_ns();
  /* The first query of the held-out sessions. */
  size_t first_held = (size_t)((1 - TUNE_RANK_HOLDOUT) * (double)d->test.n), qh = 0;
  while (qh < d->nqueries && d->queries[qh].session < first_held) qh++;
  size_t every = o->rank_queries && qh > o->rank_queries
                     ? (qh + o->rank_queries - 1) / o->rank_queries : 1;
  size_t held_every = every; /* the same density for early stopping */
  rows tr = {0}, va = {0};
  DMatrixHandle mt = NULL, mv = NULL;
  BoosterHandle b = NULL, best = NULL;
  sknn_rerank_work *w = sknn_rerank_work_new();
  int rc = w ? 0 : TAILOR_ENOMEM;
  say(o, "rerank: features of %zu training queries...", qh / every);
  if (!rc) rc = collect(d, x, &r->tuned, 0, qh, every, w, &tr);
  if (!rc) rc = collect(d, x, &r->tuned, qh, d->nqueries, held_every, w, &va);
  sknn_rerank_work_free(w);
  if (rc) goto done;
  if (tr.ngroup < 10 || va.ngroup < 1) {
    rc = util_fail(err, TAILOR_EINVAL, "rerank",
                   "too few validation queries to train a re-ranker (%zu)", tr.ngroup);
    goto done;
  }
  r->rank_train_queries = tr.ngroup;
  r->rank_rows = tr.n;
  char threads[16];
  snprintf(threads, sizeof threads, "%u", o->threads ? o->threads : 1);
  if (xgb_matrix(&tr, &mt) || xgb_matrix(&va, &mv)) goto xgb_fail;
  DMatrixHandle both[2] = {mt, mv};
  if (XGBoosterCreate(both, 2, &b)) goto xgb_fail;
  static const char *const params[][2] = {
      {"objective", "rank:pairwise"}, {"eval_metric", "map@20"},
      {"eta", "0.1"},                 {"max_depth", "6"},
      {"min_child_weight", "0.1"},    {"subsample", "0.8"},
      {"tree_method", "hist"},        {"seed", "1"},
      {"verbosity", "0"},
  };
  for (size_t i = 0; i < sizeof params / sizeof *params; i++)
    if (XGBoosterSetParam(b, params[i][0], params[i][1])) goto xgb_fail;
  if (XGBoosterSetParam(b, "nthread", threads)) goto xgb_fail;
  const char *names[2] = {"train", "held"};
  double best_map = -1;
  int best_iter = 0;
  for (int it = 0; it < (int)o->trees; it++) {
    const char *res;
    if (XGBoosterUpdateOneIter(b, it, mt) ||
        XGBoosterEvalOneIter(b, it, &mv, &names[1], 1, &res))
      goto xgb_fail;
    double map = eval_value(res);
    if (map > best_map + 1e-6) {
      best_map = map;
      best_iter = it + 1;
    }
    if (it % 10 == 0 || it + 1 == (int)o->trees)
      say(o, "rerank: tree %d: held-out MAP@20 %.4f (best %.4f at %d)", it + 1, map,
          best_map, best_iter);
    if (it + 1 - best_iter >= TUNE_EARLY_STOP) break;
  }
  if (XGBoosterSlice(b, 0, best_iter, 1, &best)) goto xgb_fail;
  if (XGBoosterSaveModel(best, o->model_path)) {
    /* The output's fault, not the data's: xgboost's first line says why
       (a C++ backtrace follows it). */
    const char *why = XGBGetLastError();
    rc = util_fail(err, TAILOR_EIO, "out", "%s: cannot write the re-ranker's model: %.*s",
                   o->model_path, (int)strcspn(why, "\n"), why);
    goto done;
  }
  r->trees = (unsigned)best_iter;
  say(o, "rerank: %d trees kept; scoring the held-out queries...", best_iter);
  if ((rc = score_range(d, x, &r->tuned, qh, d->nqueries, 1, o->threads, &r->h_tuned)) ||
      (rc = score_reranked(d, x, &r->tuned, o->model_path, qh, d->nqueries,
                           &r->h_reranked, err)))
    goto done;
  r->reranked = 1;
  goto done;
xgb_fail:
  rc = util_fail(err, TAILOR_EINVAL, "rerank", "xgboost: %s", XGBGetLastError());
done:
  if (best) XGBoosterFree(best);
  if (b) XGBoosterFree(b);
  if (mt) XGDMatrixFree(mt);
  if (mv) XGDMatrixFree(mv);
  rows_free(&tr);
  rows_free(&va);
  r->rerank_s = (double)(util_mono_ns() - t0) / 1e9;
  return rc;
}

/* ** The run --------------------------------------------------------------- */

int tune_run(const eval_data *d, const tune_opts *o, tune_result *r,
             tailor_error *err) {
  memset(r, 0, sizeof *r);
  if (!d->validating)
    return util_fail(err, TAILOR_EINVAL, "tune", "tune needs a validation split");
  if (d->nqueries == 0)
    return util_fail(err, TAILOR_EINVAL, "tune",
                     "the validation split has no queries (too few sessions?)");
  if (o->rerank && !o->model_path)
    return util_fail(err, TAILOR_EINVAL, "tune", "no path for the re-ranker's model");
  sknn_index *x = eval_index(d);
  if (!x) return util_fail(err, TAILOR_ENOMEM, "tune", "out of memory");
  int rc = sknn_repeat_profile_get(x, SKNN_PROFILE_SESSIONS, &r->profile);
  sknn_params_default(&r->defaults, SKNN_TAILOR);
  r->adapted = r->defaults;
  sknn_params_adapt(&r->adapted, &r->profile);
  size_t every = o->queries && d->nqueries > o->queries
                     ? (d->nqueries + o->queries - 1) / o->queries : 1;
  say(o, "tune: %zu validation queries, scoring every %zu; %.0f%% of next items "
      "were already in the session%s%s", d->nqueries, every, 100 * r->profile.share,
      r->profile.share >= SKNN_REPEAT_HEAVY ? " (repeat-heavy: defaults adjusted)" : "",
      r->profile.trans > 0 ? "; the transition check took trans for a sequential shop" : "");
  if (!rc) rc = score_range(d, x, &r->defaults, 0, d->nqueries, every, o->threads,
                            &r->s_defaults);
  r->s_adapted = r->s_defaults;
  if (!rc && memcmp(&r->adapted, &r->defaults, sizeof r->adapted))
    rc = score_range(d, x, &r->adapted, 0, d->nqueries, every, o->threads, &r->s_adapted);
  if (!rc)
    say(o, "tune: defaults: P@20 %.2f MRR@20 %.2f", 100 * r->s_adapted.p20,
        100 * r->s_adapted.mrr20);
  if (!rc) rc = search(d, x, o, every, r);
  if (rc) util_fail(err, rc, "tune", "%s", tailor_strerror(rc));
  if (!rc && o->rerank) rc = train_ranker(d, x, o, r, err);
  sknn_free(x);
  return rc;
}

/* ** The file -------------------------------------------------------------------- */

static json_t *score_json(const tune_score *s) {
  json_t *o = json_object();
  json_object_set_new(o, "P@20", json_real(round(s->p20 * 1e6) / 1e4));
  json_object_set_new(o, "MRR@20", json_real(round(s->mrr20 * 1e6) / 1e4));
  json_object_set_new(o, "queries", json_integer((json_int_t)s->queries));
  return o;
}

static json_t *params_json(const sknn_params *p) {
  char buf[1024];
  sknn_params_format(p, buf, sizeof buf);
  json_t *o = json_object();
  for (char *save, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
    char *eq = strchr(tok, '=');
    if (!eq) continue;
    *eq = '\0';
    double v = strtod(eq + 1, NULL);
    json_object_set_new(o, tok, v == floor(v) && fabs(v) < 1e15 ? json_integer((json_int_t)v)
                                                                  : json_real(v));
  }
  return o;
}

int tune_write(const char *path, const tune_result *r, const char *model,
               const eval_data *d, tailor_error *err) {
  json_t *o = json_object();
  json_object_set_new(o, "kernel", json_string("tailor"));
  json_object_set_new(o, "params", params_json(&r->tuned));
  if (r->reranked && model) {
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path + 1) : 0;
    const char *rel = dir && !strncmp(model, path, dir) && !strchr(model + dir, '/')
                          ? model + dir : model;
    json_object_set_new(o, "model", json_string(rel));
    json_t *f = json_array();
    for (int i = 0; i < SKNN_RERANK_NFEATURES; i++)
      json_array_append_new(f, json_string(sknn_rerank_feature_name(i)));
    json_object_set_new(o, "features", f);
  }
  json_t *v = json_object();
  json_object_set_new(v, "sessions", json_integer((json_int_t)(d->train.n - d->ntrain)));
  json_object_set_new(v, "learning_from", json_integer((json_int_t)d->ntrain));
  json_object_set_new(v, "queries", json_integer((json_int_t)d->nqueries));
  json_object_set_new(v, "defaults", score_json(&r->s_defaults));
  json_object_set_new(v, "adapted", score_json(&r->s_adapted));
  json_object_set_new(v, "tuned", score_json(&r->s_tuned));
  if (r->reranked) {
    json_t *h = json_object();
    json_object_set_new(h, "tuned", score_json(&r->h_tuned));
    json_object_set_new(h, "reranked", score_json(&r->h_reranked));
    json_object_set_new(v, "held_out", h);
  }
  json_object_set_new(o, "validation", v);
  json_t *p = json_object();
  json_object_set_new(p, "pairs", json_integer((json_int_t)r->profile.pairs));
  json_object_set_new(p, "repeat_share", json_real(round(r->profile.share * 1e4) / 1e4));
  json_object_set_new(p, "best_decay", json_real(r->profile.decay));
  json_object_set_new(p, "repeat_heavy", json_boolean(r->profile.share >= SKNN_REPEAT_HEAVY));
  json_object_set_new(p, "trans_queries", json_integer(r->profile.trans_queries));
  json_object_set_new(p, "trans_mrr20", json_pack("[fff]", round(r->profile.trans_mrr[0] * 1e4) / 1e4,
                                                  round(r->profile.trans_mrr[1] * 1e4) / 1e4,
                                                  round(r->profile.trans_mrr[2] * 1e4) / 1e4));
  json_object_set_new(p, "trans", json_real(r->profile.trans));
  json_object_set_new(o, "repeat_profile", p);
  json_t *s = json_object();
  json_object_set_new(s, "evaluations", json_integer(r->evaluations));
  json_object_set_new(s, "passes", json_integer(r->passes));
  json_object_set_new(s, "budget_cut", json_boolean(r->budget_cut));
  json_object_set_new(s, "search_seconds", json_real(round(r->search_s * 10) / 10));
  if (r->reranked) {
    json_object_set_new(s, "rerank_seconds", json_real(round(r->rerank_s * 10) / 10));
    json_object_set_new(s, "rerank_queries", json_integer((json_int_t)r->rank_train_queries));
    json_object_set_new(s, "rerank_rows", json_integer((json_int_t)r->rank_rows));
    json_object_set_new(s, "trees", json_integer(r->trees));
  }
  json_object_set_new(o, "search", s);
  errno = 0;
  int rc = json_dump_file(o, path, JSON_INDENT(2) | JSON_REAL_PRECISION(8));
  int e = errno;
  json_decref(o);
  return rc ? util_fail(err, TAILOR_EIO, "out", "%s: cannot write: %s", path,
                        e ? strerror(e) : "the write failed")
            : 0;
}
