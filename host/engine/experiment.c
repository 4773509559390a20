/*
** experiment.c: A/B tests.  A unit (customer or anonymous visitor) gets a
** variant from a hash of the unit and the experiment's name, so the same
** visitor always sees the same variant on every server without any state.
** Exposures are buffered in memory and written with the next commit (they
** are logs: a crash may lose the last few, never an event).  The report
** joins exposures with the events that followed them within an attribution
** window and tests each variant against control.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "core/util.h"
#include "index/intern.h"

#define EXPOSURE_FLUSH_AT 256 /* buffered exposures that make a decision flush */

int eng_experiment_pick(const char *name, const char *unit,
                        const char *const *variants, const double *weights,
                        size_t n) {
  double total = 0;
  for (size_t i = 0; i < n; i++) total += weights[i] > 0 ? weights[i] : 0;
  if (n == 0 || total <= 0) return -1;
  char key[600];
  snprintf(key, sizeof key, "%s\x1f%s", name, unit);
  /* 53 high bits of the hash as a uniform number in [0, 1). */
  double u = (double)(intern_hash(key, strlen(key)) >> 11) / 9007199254740992.0;
  double at = 0;
  for (size_t i = 0; i < n; i++) {
    at += (weights[i] > 0 ? weights[i] : 0) / total;
    if (u < at) return (int)i;
  }
  (void)variants;
  return (int)n - 1;
}

/*
** The store keeps a unit's first exposure to an experiment and ignores the
** rest, and a visitor sees the same experiment on page after page: a pair
** recorded lately (its hash in t->exposed, one slot per hash, the newer
** pair taking a shared slot) is not buffered and written again.  A pair
** pushed out of its slot is written again, and ignored by the store.
*/
uint64_t eng_exposure_hash(const char *experiment, const char *unit) {
  return (intern_hash(experiment, strlen(experiment)) * 0x100000001b3ULL ^
          intern_hash(unit, strlen(unit))) | 1; /* never 0: an empty slot */
}

/* A row into b: 0, or -1 out of memory (b as it was). */
static int expo_push(eng_expo *b, const char *experiment, const char *variant,
                     const char *unit, int64_t ts) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    eng_expo_row *row = realloc(b->row, cap * sizeof *row);
    if (!row) return -1;
    b->row = row;
    b->cap = cap;
  }
  size_t at = b->text.n;
  const char *name[] = {experiment, variant, unit};
  size_t off[3];
  for (int i = 0; i < 3; i++) {
    off[i] = b->text.n;
    buf_put(&b->text, name[i], strlen(name[i]) + 1);
  }
  if (b->text.oom) { /* the text before this row is whole; drop the row's */
    b->text.oom = 0;
    b->text.n = at;
    return -1;
  }
  b->row[b->n++] = (eng_expo_row){off[0], off[1], off[2], ts};
  return 0;
}

void eng_expose(tailor *t, const char *experiment, const char *variant,
                const char *unit, uint64_t h) {
  if (eng_dry_running) return; /* a dry run exposes nobody */
  pthread_mutex_lock(&t->expo_mu);
  uint64_t *slot = t->exposed ? &t->exposed[h & (ENG_EXPOSED_SLOTS - 1)] : NULL;
  /* Names that are not UTF-8 are not kept: PostgreSQL would refuse the
     row, and with it every exposure of the flush. */
  int fresh = (!slot || *slot != h) && util_utf8_valid(experiment, strlen(experiment), NULL) &&
              util_utf8_valid(variant, strlen(variant), NULL) &&
              util_utf8_valid(unit, strlen(unit), NULL);
  if (fresh && !expo_push(&t->expo, experiment, variant, unit, util_now_ms()) && slot) *slot = h;
  pthread_mutex_unlock(&t->expo_mu);
}

void eng_exposures_reset(tailor *t) {
  pthread_mutex_lock(&t->expo_mu);
  if (t->exposed) memset(t->exposed, 0, ENG_EXPOSED_SLOTS * sizeof *t->exposed);
  pthread_mutex_unlock(&t->expo_mu);
}

void eng_flush_exposures(tailor *t) {
  pthread_mutex_lock(&t->expo_mu);
  eng_expo b = t->expo;
  memset(&t->expo, 0, sizeof t->expo);
  pthread_mutex_unlock(&t->expo_mu);
  store_exposure *rows = b.n ? malloc(b.n * sizeof *rows) : NULL;
  for (size_t i = 0; rows && i < b.n; i++)
    rows[i] = (store_exposure){b.text.s + b.row[i].experiment, b.text.s + b.row[i].variant,
                               b.text.s + b.row[i].unit, b.row[i].ts};
  tailor_error err = {0};
  if (b.n && (!rows || store_exposures_add(t->st, rows, b.n, &err)))
    eng_log(t, TAILOR_LOG_ERROR, "experiments: %s", rows ? err.message : "out of memory");
  free(rows);
  free(b.row);
  buf_free(&b.text);
}

void eng_write_exposures(tailor *t) {
  pthread_mutex_lock(&t->write_mu);
  eng_flush_exposures(t);
  pthread_mutex_unlock(&t->write_mu);
}

int eng_exposures_pending(tailor *t) {
  pthread_mutex_lock(&t->expo_mu);
  size_t n = t->expo.n;
  pthread_mutex_unlock(&t->expo_mu);
  return n >= EXPOSURE_FLUSH_AT;
}

/*
** Statistics.  Student's t distribution through the regularized incomplete
** beta function (continued fraction, as in Numerical Recipes' betacf).
*/
static double betacf(double a, double b, double x) {
  const double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 300; m++) {
    double m2 = 2 * m, aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (fabs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (fabs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (fabs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (fabs(c) < tiny) c = tiny;
    d = 1 / d;
    double del = d * c;
    h *= del;
    if (fabs(del - 1) < 1e-14) break;
  }
  return h;
}

static double betai(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  int sign; /* lgamma_r: lgamma writes the global signgam */
  double lbt = lgamma_r(a + b, &sign) - lgamma_r(a, &sign) - lgamma_r(b, &sign) +
               a * log(x) + b * log(1 - x);
  return x < (a + 1) / (a + b + 2) ? exp(lbt) * betacf(a, b, x) / a
                                   : 1 - exp(lbt) * betacf(b, a, 1 - x) / b;
}

/* Two-sided p-value of a t statistic with df degrees of freedom. */
double eng_t_pvalue(double t, double df) {
  if (!isfinite(t) || df <= 0) return NAN;
  return betai(df / 2, 0.5, df / (df + t * t));
}

/* The t with two-sided p-value `p` at df degrees of freedom (2.228 for
   0.05 at 10), by bisection on eng_t_pvalue, which falls as t grows. */
double eng_t_quantile(double p, double df) {
  if (!(p > 0 && p < 1) || !(df > 0)) return NAN;
  double lo = 0, hi = 1;
  while (eng_t_pvalue(hi, df) > p && hi < 1e12) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    double mid = (lo + hi) / 2;
    if (eng_t_pvalue(mid, df) > p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/* Two-sided p-value of a standard normal statistic. */
static double z_pvalue(double z) { return erfc(fabs(z) / sqrt(2.0)); }

typedef struct arm {
  const char *name;
  double n, conv, sum, sumsq, clicks, carts;
} arm;

/* Wilson's 95% interval for k successes in n. */
static void wilson95(double k, double n, double *lo, double *hi) {
  const double z = 1.959964;
  double p = k / n, d = 1 + z * z / n;
  double mid = (p + z * z / (2 * n)) / d;
  double half = z / d * sqrt(p * (1 - p) / n + z * z / (4 * n * n));
  *lo = fmax(0, mid - half);
  *hi = fmin(1, mid + half);
}

/*
** The 95% interval of the difference of two conversion rates (a's less
** c's): Newcombe's hybrid score interval (method 10), from each rate's
** Wilson interval.  The normal (Wald) interval p +- 1.96 se has width 0
** when both rates are 0 or 1 (two arms with no order yet read as "no
** difference, certainly") and is far too narrow for small arms.
*/
void eng_conversion_ci95(double ka, double na, double kc, double nc, double *lo, double *hi) {
  double pa = ka / na, pc = kc / nc, la, ua, lc, uc;
  wilson95(ka, na, &la, &ua);
  wilson95(kc, nc, &lc, &uc);
  *lo = pa - pc - sqrt((pa - la) * (pa - la) + (uc - pc) * (uc - pc));
  *hi = pa - pc + sqrt((ua - pa) * (ua - pa) + (pc - lc) * (pc - lc));
}

/* One variant's row of the report, compared with control. */
static json_t *arm_row(const arm *a, const arm *c) {
  double p = a->n ? a->conv / a->n : 0, mean = a->n ? a->sum / a->n : 0;
  double var = a->n > 1 ? (a->sumsq - a->n * mean * mean) / (a->n - 1) : 0;
  json_t *o = json_pack("{ss sI sf sf sf sf}", "variant", a->name, "exposures",
                        (json_int_t)a->n, "conversion", p, "revenue_per_visitor", mean,
                        "click_rate", a->n ? a->clicks / a->n : 0, "cart_rate",
                        a->n ? a->carts / a->n : 0);
  if (!c || c == a || !c->n || !a->n) return o;
  double pc = c->conv / c->n, mc = c->sum / c->n;
  double vc = c->n > 1 ? (c->sumsq - c->n * mc * mc) / (c->n - 1) : 0;
  /* Conversion: difference with Newcombe's interval; pooled z-test. */
  double lo, hi;
  eng_conversion_ci95(a->conv, a->n, c->conv, c->n, &lo, &hi);
  double pool = (a->conv + c->conv) / (a->n + c->n);
  double sez = sqrt(pool * (1 - pool) * (1 / a->n + 1 / c->n));
  /* Two readings, each with an interval in its own units: the difference
     (in conversion, 0.02 = 2 points) and the uplift relative to control
     (0.25 = +25%, its interval the difference's over control's rate). */
  json_object_set_new(o, "conversion_diff", json_real(p - pc));
  json_object_set_new(o, "conversion_diff_ci95", json_pack("[ff]", lo, hi));
  json_object_set_new(o, "conversion_uplift", json_real(pc > 0 ? (p - pc) / pc : 0));
  if (pc > 0)
    json_object_set_new(o, "conversion_uplift_ci95", json_pack("[ff]", lo / pc, hi / pc));
  json_object_set_new(o, "conversion_p_value", json_real(sez > 0 ? z_pvalue((p - pc) / sez) : 1));
  /* Revenue per visitor: Welch's t-test. */
  double sv = var / a->n + vc / c->n;
  double t = sv > 0 ? (mean - mc) / sqrt(sv) : 0;
  double df = sv > 0 ? sv * sv / ((var / a->n) * (var / a->n) / (a->n - 1) +
                                  (vc / c->n) * (vc / c->n) / (c->n - 1))
                     : 0;
  json_object_set_new(o, "revenue_diff", json_real(mean - mc));
  json_object_set_new(o, "revenue_uplift", json_real(mc > 0 ? (mean - mc) / mc : 0));
  /* Welch's t needs two visitors an arm, and revenue that is not the same
     for every visitor of both (none bought yet): otherwise no interval
     and no p-value, rather than an interval of width 0 beside p = 1. */
  if (a->n < 2 || c->n < 2 || !(sv > 0 && df > 0)) return o;
  /* The interval at Welch's df, as the p-value: 1.96 (the normal's) made
     small samples look significant that the p-value says are not. */
  double half = eng_t_quantile(0.05, df) * sqrt(sv);
  json_object_set_new(o, "revenue_diff_ci95",
                      json_pack("[ff]", mean - mc - half, mean - mc + half));
  if (mc > 0)
    json_object_set_new(o, "revenue_uplift_ci95",
                        json_pack("[ff]", (mean - mc - half) / mc, (mean - mc + half) / mc));
  json_object_set_new(o, "revenue_p_value", json_real(eng_t_pvalue(t, df)));
  return o;
}

int tailor_report_experiments(tailor *t, int window_days, char **json,
                              tailor_error *err) {
  if (!t || !json) return util_fail(err, TAILOR_EINVAL, NULL, "report: missing argument");
  if (window_days < 1 || window_days > 36500)
    return util_fail(err, TAILOR_EINVAL, "window_days",
                     "report: window_days must be from 1 to 36500, not %d", window_days);
  pthread_mutex_lock(&t->write_mu);
  eng_flush_exposures(t);
  json_t *units = store_exposure_outcomes(t->st, (int64_t)window_days * 86400000LL, err);
  pthread_mutex_unlock(&t->write_mu);
  if (!units) return err ? err->code : TAILOR_ESTORE;
  /* units: [[experiment, variant, orders, revenue, clicks, carts], ...]
     sorted by experiment, variant. */
  json_t *out = json_array();
  size_t i = 0, n = json_array_size(units);
  while (i < n) {
    const char *exp = json_string_value(json_array_get(json_array_get(units, i), 0));
    arm arms[32];
    size_t na = 0;
    for (; i < n; i++) {
      json_t *u = json_array_get(units, i);
      if (strcmp(json_string_value(json_array_get(u, 0)), exp)) break;
      const char *v = json_string_value(json_array_get(u, 1));
      if (!na || strcmp(arms[na - 1].name, v)) {
        if (na == 32) continue; /* more variants than a test should have */
        arms[na++] = (arm){v, 0, 0, 0, 0, 0, 0};
      }
      arm *a = &arms[na - 1];
      double rev = json_number_value(json_array_get(u, 3));
      a->n++;
      a->conv += json_integer_value(json_array_get(u, 2)) > 0;
      a->sum += rev;
      a->sumsq += rev * rev;
      a->clicks += json_integer_value(json_array_get(u, 4)) > 0;
      a->carts += json_integer_value(json_array_get(u, 5)) > 0;
    }
    /* The arm named "control", else the first by name (strategies.md):
       the report names the one it took. */
    const arm *control = na ? &arms[0] : NULL;
    for (size_t a = 0; a < na; a++)
      if (!strcmp(arms[a].name, "control")) control = &arms[a];
    json_t *rows = json_array();
    for (size_t a = 0; a < na; a++) json_array_append_new(rows, arm_row(&arms[a], control));
    json_array_append_new(out, json_pack("{ss ss si so}", "experiment", exp, "control",
                                         control ? control->name : "", "window_days",
                                         window_days, "variants", rows));
  }
  json_decref(units);
  *json = json_dumps(out, JSON_COMPACT);
  json_decref(out);
  return *json ? TAILOR_OK : util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
}
