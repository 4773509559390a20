/*
** clv.c: BG/NBD and Gamma-Gamma, fitted by Nelder-Mead on log-parameters,
** and the simple estimator for small shops.  Formulas as in clv.h.
*/
#include "index/clv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CLV_NM_STEP 0.5          /* first simplex: this far along each log-parameter */
#define CLV_NM_XTOL 1e-7         /* convergence: simplex size in log-parameters */
#define CLV_NM_MAX_RUNS 10       /* restarts from the best point, at most */
#define CLV_NM_FLAT_ITERS 200    /* iterations without gain that make a run flat */
#define CLV_LOG_PARAM_MAX 30.0   /* |log param| past which the objective is +inf */
#define CLV_FIT_SCALE_T 10.0     /* times are scaled so the oldest customer is this old */
#define CLV_X_CACHE 64           /* repeat counts whose Gamma terms are tabled */
#define CLV_HYP_MAX_TERMS 200000 /* series terms before giving up */
#define CLV_HYP_EPS 1e-16        /* bound on the series' neglected tail, relative */
#define CLV_HYP_RESCALE 1e250    /* the running sum is divided by this when past it */
#define CLV_POLE_EPS 1e-4        /* distance from a removable singularity to bridge */
#define CLV_QUAD_TAU_MAX 20.0    /* tanh-sinh: the farthest node, in its variable */
#define CLV_QUAD_LEVELS 9        /* tanh-sinh: halvings of the step 1/2 */
#define CLV_QUAD_EPS 1e-12       /* tanh-sinh: relative change that ends the halving */
#define CLV_QUAD_LOG_TINY -750.0 /* tanh-sinh: ln of a weight past which a side ends */
#define CLV_MAX_DISCOUNT_STEPS 1200 /* 100 years of months */

const char *clv_strerror(int code) {
  switch (code) {
#define CLV_MSG_(name, value, msg) \
  case value:                      \
    return msg;
    CLV_ERRNO_MAP(CLV_MSG_)
#undef CLV_MSG_
  }
  return "unknown error";
}

void clv_fit_opts_default(clv_fit_opts *o) {
  o->penalizer = CLV_DEFAULT_PENALIZER;
  o->max_iter = CLV_DEFAULT_MAX_ITER;
  o->tol = CLV_DEFAULT_TOL;
  o->min_repeat = CLV_MIN_REPEAT_CUSTOMERS;
}

/*
** ln Gamma(z) for z > 0: Stirling's series after shifting z past 10, good
** to about 1e-15.  Ours rather than lgamma(), which writes the global
** `signgam` and so is not safe to call from several threads.
*/
static double stirling_series(double z) {
  double iz = 1 / z, iz2 = iz * iz;
  return iz * (1.0 / 12 -
               iz2 * (1.0 / 360 - iz2 * (1.0 / 1260 - iz2 * (1.0 / 1680 - iz2 / 1188))));
}

static double log_gamma(double z) {
  double shift = 1;
  while (z < 10) shift *= z++;
  return (z - 0.5) * log(z) - z + 0.91893853320467274178 + stirling_series(z) - log(shift);
}

/* ln Gamma(y+x) - ln Gamma(y), x >= 0, without the cancellation of two
   huge ln Gamma when y is large. */
static double log_gamma_ratio(double y, double x) {
  if (y < 10) return log_gamma(y + x) - log_gamma(y);
  double z = y + x;
  return (y - 0.5) * log1p(x / y) + x * log(z) - x + stirling_series(z) - stirling_series(y);
}

static int history_ok(uint32_t x, double t_x, double T) {
  return isfinite(T) && T >= 0 &&
         (x == 0 || (isfinite(t_x) && t_x >= 0 && t_x <= T));
}

/* log(e^u + e^v) without overflow. */
static double log_add(double u, double v) {
  double hi = u > v ? u : v, lo = u > v ? v : u;
  return hi + log1p(exp(lo - hi));
}

/*
** Nelder-Mead on at most 4 parameters.  One run starts from a simplex of
** side CLV_NM_STEP around theta and stops when the simplex's values lie
** within tol and its points within CLV_NM_XTOL (NM_CONVERGED), when its
** values have lain within tol for CLV_NM_FLAT_ITERS iterations in which
** the best gained no more than tol (NM_FLAT: a ridge of equal values, along
** which the points never close up), or when the budget is spent (0).
*/
enum { NM_CONVERGED = 1, NM_FLAT = 2 };

typedef double (*objective_fn)(const double *theta, void *ud);

enum { NM_MAX_DIM = 4 };

static void nm_sort(int dim, double s[][NM_MAX_DIM], double *fs) {
  for (int i = 1; i <= dim; i++)
    for (int j = i; j > 0 && fs[j] < fs[j - 1]; j--) {
      double t = fs[j];
      fs[j] = fs[j - 1];
      fs[j - 1] = t;
      for (int k = 0; k < dim; k++) {
        t = s[j][k];
        s[j][k] = s[j - 1][k];
        s[j - 1][k] = t;
      }
    }
}

/* p = c + coef * (c - w): reflection (1), expansion (2), contraction (+-1/2). */
static double nm_try(objective_fn f, void *ud, int dim, const double *c,
                     const double *w, double coef, double *p) {
  for (int k = 0; k < dim; k++) p[k] = c[k] + coef * (c[k] - w[k]);
  return f(p, ud);
}

static int nm_run(objective_fn f, void *ud, int dim, double *theta,
                  double *fbest, unsigned budget, double tol, unsigned *used) {
  double s[NM_MAX_DIM + 1][NM_MAX_DIM], fs[NM_MAX_DIM + 1];
  for (int i = 0; i <= dim; i++) {
    memcpy(s[i], theta, dim * sizeof *theta);
    if (i) s[i][i - 1] += CLV_NM_STEP;
    fs[i] = i ? f(s[i], ud) : *fbest;
  }
  int converged = 0;
  double mark = *fbest; /* the best when the values last gained */
  unsigned mark_it = 0;
  for (unsigned it = 0;; it++) {
    nm_sort(dim, s, fs);
    double size = 0;
    for (int i = 1; i <= dim; i++)
      for (int k = 0; k < dim; k++) size = fmax(size, fabs(s[i][k] - s[0][k]));
    if (mark - fs[0] > tol || fs[dim] - fs[0] > tol) mark = fs[0], mark_it = it;
    if (fs[dim] - fs[0] <= tol && size <= CLV_NM_XTOL) converged = NM_CONVERGED;
    else if (it - mark_it >= CLV_NM_FLAT_ITERS) converged = NM_FLAT;
    if (converged || it >= budget) {
      *used += it;
      break;
    }
    double c[NM_MAX_DIM] = {0}, r[NM_MAX_DIM], t[NM_MAX_DIM];
    for (int i = 0; i < dim; i++)
      for (int k = 0; k < dim; k++) c[k] += s[i][k] / dim;
    double fr = nm_try(f, ud, dim, c, s[dim], 1, r), ft;
    if (fr < fs[0]) {
      ft = nm_try(f, ud, dim, c, s[dim], 2, t);
      if (ft < fr) memcpy(r, t, dim * sizeof *t), fr = ft;
    } else if (!(fr < fs[dim - 1])) {
      /* Contract outside when the reflection beat the worst, else inside. */
      double coef = fr < fs[dim] ? 0.5 : -0.5;
      ft = nm_try(f, ud, dim, c, s[dim], coef, t);
      if (ft <= fmin(fr, fs[dim])) {
        memcpy(r, t, dim * sizeof *t), fr = ft;
      } else {
        for (int i = 1; i <= dim; i++) {
          for (int k = 0; k < dim; k++) s[i][k] = 0.5 * (s[0][k] + s[i][k]);
          fs[i] = f(s[i], ud);
        }
        continue;
      }
    }
    memcpy(s[dim], r, dim * sizeof *r);
    fs[dim] = fr;
  }
  memcpy(theta, s[0], dim * sizeof *theta);
  *fbest = fs[0];
  return converged;
}

/*
** Runs from the best point so far until one gains no more than tol: a
** single Nelder-Mead run can stall on a collapsed simplex far from the
** optimum, a fresh simplex cannot.  A run that ends flat counts as one
** that converged: where a fresh simplex around the best point finds
** nothing better by more than tol, the objective is flat to tolerance
** there.  BG/NBD's likelihood is often such a ridge (a, b -> infinity at
** a fixed a/b: a dropout probability the same for every customer), along
** which the predictions no longer change; the fit was refused on
** ordinary shops for it.
*/
static int minimise(objective_fn f, void *ud, int dim, double *theta,
                    const clv_fit_opts *o, unsigned *iters) {
  double fx = f(theta, ud);
  *iters = 0;
  for (int run = 0; run < CLV_NM_MAX_RUNS; run++) {
    double before = fx;
    if (!nm_run(f, ud, dim, theta, &fx, o->max_iter - *iters, o->tol, iters))
      return CLV_ENOCONV;
    if (run > 0 && before - fx <= o->tol) break;
  }
  return isfinite(fx) && fx < HUGE_VAL ? CLV_OK : CLV_ENOCONV;
}

/* exp of log-parameters, or 0 when one is out of bounds. */
static int unlog(const double *theta, int dim, double *p) {
  for (int k = 0; k < dim; k++) {
    if (!(fabs(theta[k]) <= CLV_LOG_PARAM_MAX)) return 0;
    p[k] = exp(theta[k]);
  }
  return 1;
}

/*
** ** BG/NBD
*/

/*
** Sum of the log-likelihood (lifetimes' A_1 .. A_4) with times multiplied
** by `scale`.  The Gamma-function terms depend on x alone and most
** customers have few repeat orders, so those are tabled per call.
** B(a, b+x) / B(a, b) is the product of (b+j)/(a+b+j) over j < x, summed
** as logs below CLV_X_CACHE and as two ratios of Gamma functions above: as
** four ln Gamma of a + b near 1e7 (the likelihood's ridge, at minimise)
** it cancelled to noise of 1e-8, more than the fit's tolerance, and the
** fit never settled.
*/
static double bg_loglik(double r, double alpha, double a, double b,
                        const clv_customer *c, size_t n, double scale) {
  double g[CLV_X_CACHE], h[CLV_X_CACHE];
  uint64_t have = 0;
  double k = -log_gamma(r) + r * log(alpha);
  double la = log(a), ll = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t x = c[i].x;
    double gx, hx;
    if (x < CLV_X_CACHE && ((have >> x) & 1)) {
      gx = g[x], hx = h[x];
    } else {
      gx = log_gamma(r + x);
      if (x < CLV_X_CACHE)
        for (uint32_t j = 0; j < x; j++) gx += log((b + j) / (a + b + j));
      else
        gx += log_gamma_ratio(b, x) - log_gamma_ratio(a + b, x);
      hx = x ? log(b + x - 1) : 0;
      if (x < CLV_X_CACHE) g[x] = gx, h[x] = hx, have |= (uint64_t)1 << x;
    }
    double a3 = -(r + x) * log(alpha + c[i].T * scale);
    if (x)
      a3 = log_add(a3, la - hx - (r + x) * log(alpha + c[i].t_x * scale));
    ll += k + gx + a3;
  }
  return ll;
}

typedef struct fit_data {
  const clv_customer *c;
  size_t n, used; /* customers, and those the model uses */
  double scale, penalizer;
} fit_data;

static double bg_objective(const double *theta, void *ud) {
  const fit_data *d = ud;
  double p[4];
  if (!unlog(theta, 4, p)) return HUGE_VAL;
  double v = -bg_loglik(p[0], p[1], p[2], p[3], d->c, d->n, d->scale) / d->n +
             d->penalizer * (p[0] * p[0] + p[1] * p[1] + p[2] * p[2] + p[3] * p[3]);
  return isnan(v) ? HUGE_VAL : v;
}

int clv_fit_bgnbd(const clv_customer *c, size_t n, const clv_fit_opts *opts,
                  clv_bgnbd *out) {
  clv_fit_opts dflt;
  if (!opts) clv_fit_opts_default(&dflt), opts = &dflt;
  memset(out, 0, sizeof *out);
  size_t repeat = 0;
  double max_t = 0;
  for (size_t i = 0; i < n; i++) {
    if (!history_ok(c[i].x, c[i].t_x, c[i].T)) return CLV_EINVAL;
    repeat += c[i].x > 0;
    max_t = fmax(max_t, c[i].T);
  }
  if (repeat == 0 || repeat < opts->min_repeat || max_t <= 0) return CLV_ETOOFEW;
  /* Scaled as lifetimes does, so that alpha starts near its optimum and the
     penalizer means the same as there. */
  fit_data d = {c, n, n, CLV_FIT_SCALE_T / max_t, opts->penalizer};
  double theta[4] = {0, 0, 0, 0};
  int rc = minimise(bg_objective, &d, 4, theta, opts, &out->iters);
  out->r = exp(theta[0]);
  out->alpha = exp(theta[1]) / d.scale;
  out->a = exp(theta[2]);
  out->b = exp(theta[3]);
  out->loglik = clv_bgnbd_loglik(out, c, n);
  return rc == CLV_OK && !isfinite(out->loglik) ? CLV_ENOCONV : rc;
}

double clv_bgnbd_loglik(const clv_bgnbd *m, const clv_customer *c, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!history_ok(c[i].x, c[i].t_x, c[i].T)) return NAN;
  return bg_loglik(m->r, m->alpha, m->a, m->b, c, n, 1);
}

double clv_p_alive(const clv_bgnbd *m, uint32_t x, double t_x, double T) {
  if (!history_ok(x, t_x, T)) return NAN;
  if (x == 0) return 1;
  double odds = (m->r + x) * log((m->alpha + T) / (m->alpha + t_x)) +
                log(m->a / (m->b + x - 1));
  return 1 / (1 + exp(odds));
}

/*
** ln |2F1(a, b; c; z)| for 0 <= z < 1 by its power series, its sign in
** *sign; NAN when the series does not settle within CLV_HYP_MAX_TERMS
** terms.  The sum is kept as sum * e^lscale so that the huge values of
** large x do not overflow.
*/
static double log_hyp2f1(double a, double b, double c, double z, int *sign) {
  double term = 1, sum = 1, lscale = 0;
  for (long k = 0; k < CLV_HYP_MAX_TERMS; k++) {
    if (c + k == 0) return NAN;
    double ratio = (a + k) * (b + k) / ((c + k) * (k + 1)) * z;
    term *= ratio;
    sum += term;
    if (fabs(sum) > CLV_HYP_RESCALE) {
      sum /= CLV_HYP_RESCALE, term /= CLV_HYP_RESCALE;
      lscale += log(CLV_HYP_RESCALE);
    }
    /* Once every parameter is past zero the ratios tend to z; the tail
       after this term is then about term * q / (1 - q). */
    double q = fmax(fabs(ratio), z);
    if ((a + k > 0 && b + k > 0 && c + k > 0 && q < 1 &&
         fabs(term) * q <= CLV_HYP_EPS * (1 - q) * fabs(sum)) ||
        term == 0) {
      *sign = sum < 0 ? -1 : 1;
      return log(fabs(sum)) + lscale;
    }
  }
  return NAN;
}

/*
** The numerator of equation (10):
**   (a+b+x-1)/(a-1) * [1 - (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)],
**   z = t / (alpha + T + t).
** When the series does not settle, Euler's transformation
** 2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z) (as lifetimes falls back
** to) gives a series whose parameters no longer grow with x.
*/
static double numerator_integral(double r, double alpha, double a, double b,
                                 double t, double x, double T);

static double numerator(double r, double alpha, double a, double b, double t,
                        double x, double T) {
  double ha = r + x, hb = b + x, hc = a + b + x - 1, z = t / (alpha + T + t);
  int sign = 1;
  double lh = log_hyp2f1(ha, hb, hc, z, &sign);
  if (!isfinite(lh))
    lh = log_hyp2f1(hc - ha, hc - hb, hc, z, &sign) + (hc - ha - hb) * log1p(-z);
  if (!isfinite(lh)) /* z near 1: both series crawl */
    return numerator_integral(r, alpha, a, b, t, x, T);
  double y = lh + ha * log1p(-z); /* ln |(1-z)^(r+x) 2F1| */
  return hc / (a - 1) * (sign > 0 ? -expm1(y) : 1 + exp(y));
}

/* ln(1 / (1 + e^-u)) without overflow. */
static double log_sigmoid(double u) {
  return u > 0 ? -log1p(exp(-u)) : u - log1p(exp(u));
}

/*
** The same numerator as an integral, for z so near 1 (a customer of the
** last hour, with a small alpha) that neither series settles: given alive,
** lambda ~ Gamma(r+x, alpha+T) and p ~ Beta(a, b+x), and the expected
** orders in t are (1 - e^(-lambda p t)) / p; over lambda that is
**   E_p[(1 - (1 + p t/(alpha+T))^-(r+x)) / p],
** a smooth integrand against the Beta density, whose endpoint
** singularities tanh-sinh quadrature (p = 1/(1 + e^(-pi sinh tau)))
** absorbs.  It has no pole at a = 1 either.  NAN when the step halvings
** do not agree.
*/
static double numerator_integral(double r, double alpha, double a, double b,
                                 double t, double x, double T) {
  double s = r + x, k = t / (alpha + T), bx = b + x;
  double lbeta = log_gamma(a) + log_gamma(bx) - log_gamma(a + bx);
  double sum = 0, prev = NAN, h = 1;
  for (int level = 0; level <= CLV_QUAD_LEVELS; level++) {
    h /= 2;
    /* Each halving adds the odd multiples of the new step, out from 0 on
       each side until the weights have died off. */
    for (int side = -1; side <= 1; side += 2) {
      long j = level ? 1 : side > 0 ? 0 : 1;
      for (;; j += level ? 2 : 1) {
        double tau = side * j * h, u = M_PI * sinh(tau);
        double lw = log(M_PI * cosh(tau)) + a * log_sigmoid(u) + bx * log_sigmoid(-u) - lbeta;
        if (j * h > 1 && lw < CLV_QUAD_LOG_TINY) break;
        /* Weights alive this far out (a or b+x near 0): mass is missed. */
        if (j * h > CLV_QUAD_TAU_MAX) return NAN;
        double p = 1 / (1 + exp(-u));
        double g = p > 0 ? -expm1(-s * log1p(p * k)) / p : s * k;
        sum += exp(lw) * g;
      }
    }
    double est = sum * h;
    if (level && fabs(est - prev) <= CLV_QUAD_EPS * fabs(est)) return est;
    prev = est;
  }
  return NAN;
}

/*
** The expectation is smooth in a, but the closed form divides 0 by 0 at a
** = 1, and at a + b = 1 when x = 0 (where 2F1's c is 0).  Near those it is
** interpolated between points CLV_POLE_EPS either side: error O(eps^2).
*/
static double numerator_safe(const clv_bgnbd *m, double t, uint32_t x,
                             double T) {
  double pole = 1;
  if (x == 0 && fabs(m->a + m->b - 1) < CLV_POLE_EPS) pole = 1 - m->b;
  if (fabs(m->a - pole) >= CLV_POLE_EPS)
    return numerator(m->r, m->alpha, m->a, m->b, t, x, T);
  double lo = pole - CLV_POLE_EPS, hi = pole + CLV_POLE_EPS;
  double flo = numerator(m->r, m->alpha, lo, m->b, t, x, T);
  double fhi = numerator(m->r, m->alpha, hi, m->b, t, x, T);
  return flo + (m->a - lo) / (hi - lo) * (fhi - flo);
}

double clv_expected_purchases(const clv_bgnbd *m, double horizon_days,
                              uint32_t x, double t_x, double T) {
  if (!history_ok(x, t_x, T) || !isfinite(horizon_days) || horizon_days < 0)
    return NAN;
  if (horizon_days == 0) return 0;
  /* Equation (10)'s denominator is 1 / P(alive). */
  return numerator_safe(m, horizon_days, x, T) * clv_p_alive(m, x, t_x, T);
}

/*
** ** Gamma-Gamma
*/

static int gg_uses(const clv_customer *c) {
  return c->x > 0 && c->mean_value > 0;
}

/* Sum of the log-likelihood of the mean order values (values times scale). */
static double gg_loglik(double p, double q, double v, const clv_customer *c,
                        size_t n, double scale) {
  double g[CLV_X_CACHE];
  uint64_t have = 0;
  double k = -log_gamma(q) + q * log(v), ll = 0;
  for (size_t i = 0; i < n; i++) {
    if (!gg_uses(&c[i])) continue;
    uint32_t x = c[i].x;
    double px = p * x, m = c[i].mean_value * scale, gx;
    if (x < CLV_X_CACHE && ((have >> x) & 1)) {
      gx = g[x];
    } else {
      gx = log_gamma(px + q) - log_gamma(px) + px * log((double)x);
      if (x < CLV_X_CACHE) g[x] = gx, have |= (uint64_t)1 << x;
    }
    ll += k + gx + (px - 1) * log(m) - (px + q) * log(x * m + v);
  }
  return ll;
}

static double gg_objective(const double *theta, void *ud) {
  const fit_data *d = ud;
  double p[3];
  if (!unlog(theta, 3, p)) return HUGE_VAL;
  double v = -gg_loglik(p[0], p[1], p[2], d->c, d->n, d->scale) / d->used +
             d->penalizer * (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]);
  return isnan(v) ? HUGE_VAL : v;
}

int clv_fit_gamma_gamma(const clv_customer *c, size_t n,
                        const clv_fit_opts *opts, clv_gamma_gamma *out) {
  clv_fit_opts dflt;
  if (!opts) clv_fit_opts_default(&dflt), opts = &dflt;
  memset(out, 0, sizeof *out);
  size_t used = 0;
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    if (c[i].x > 0 && !isfinite(c[i].mean_value)) return CLV_EINVAL;
    if (gg_uses(&c[i])) used++, sum += c[i].mean_value;
  }
  if (used == 0 || used < opts->min_repeat) return CLV_ETOOFEW;
  /* v is in money: fitting on values divided by their mean starts it near
     its optimum whatever the currency. */
  fit_data d = {c, n, used, used / sum, opts->penalizer};
  double theta[3] = {0, 0, 0};
  int rc = minimise(gg_objective, &d, 3, theta, opts, &out->iters);
  out->p = exp(theta[0]);
  out->q = exp(theta[1]);
  out->v = exp(theta[2]) / d.scale;
  out->loglik = clv_gamma_gamma_loglik(out, c, n);
  if (rc == CLV_OK && !isfinite(out->loglik)) rc = CLV_ENOCONV;
  return rc == CLV_OK && out->q <= 1 ? CLV_EDEGENERATE : rc;
}

double clv_gamma_gamma_loglik(const clv_gamma_gamma *m, const clv_customer *c,
                              size_t n) {
  return gg_loglik(m->p, m->q, m->v, c, n, 1);
}

double clv_expected_spend(const clv_gamma_gamma *m, uint32_t x,
                          double mean_value) {
  double d = m->p * x + m->q - 1;
  if (!(d > 0) || (x > 0 && !isfinite(mean_value))) return NAN;
  return m->p * (m->v + (x > 0 ? x * mean_value : 0)) / d;
}

double clv_predict(const clv_bgnbd *bg, const clv_gamma_gamma *gg,
                   const clv_customer *c, double horizon_days,
                   double monthly_discount) {
  double spend = clv_expected_spend(gg, c->x, c->mean_value);
  if (!(monthly_discount >= 0)) return NAN;
  if (monthly_discount == 0)
    return clv_expected_purchases(bg, horizon_days, c->x, c->t_x, c->T) * spend;
  if (!(horizon_days >= 0)) return NAN;
  double total = 0, before = 0;
  for (int k = 1; k <= CLV_MAX_DISCOUNT_STEPS; k++) {
    double end = fmin(k * CLV_DAYS_PER_MONTH, horizon_days);
    double upto = clv_expected_purchases(bg, end, c->x, c->t_x, c->T);
    total += (upto - before) / pow(1 + monthly_discount, end / CLV_DAYS_PER_MONTH);
    before = upto;
    if (end >= horizon_days) break;
  }
  return total * spend;
}

/*
** ** The simple estimator
*/

static int cmp_double(const void *pa, const void *pb) {
  double a = *(const double *)pa, b = *(const double *)pb;
  return (a > b) - (a < b);
}

int clv_fit_simple(const clv_customer *c, size_t n, double mean_order_value,
                   clv_simple *out) {
  size_t repeat = 0;
  double value = 0, orders = 0;
  for (size_t i = 0; i < n; i++) {
    if (!history_ok(c[i].x, c[i].t_x, c[i].T)) return CLV_EINVAL;
    if (!c[i].x) continue;
    repeat++;
    if (c[i].mean_value > 0 && isfinite(c[i].mean_value))
      value += c[i].x * c[i].mean_value, orders += c[i].x;
  }
  out->order_value = mean_order_value > 0 && isfinite(mean_order_value)
                         ? mean_order_value
                         : orders > 0 ? value / orders : 0;
  out->gap_days = CLV_SIMPLE_DEFAULT_GAP_DAYS;
  if (repeat < CLV_SIMPLE_MIN_GAPS) return CLV_OK;
  double *gap = malloc(repeat * sizeof *gap);
  if (!gap) return CLV_ENOMEM;
  size_t j = 0;
  for (size_t i = 0; i < n; i++)
    if (c[i].x) gap[j++] = c[i].t_x / c[i].x;
  qsort(gap, repeat, sizeof *gap, cmp_double);
  double median = repeat % 2 ? gap[repeat / 2]
                             : 0.5 * (gap[repeat / 2 - 1] + gap[repeat / 2]);
  free(gap);
  out->gap_days = fmax(median, CLV_SIMPLE_MIN_GAP_DAYS);
  return CLV_OK;
}

double clv_simple_p_alive(const clv_simple *s, uint32_t x, double t_x,
                          double T) {
  if (!history_ok(x, t_x, T) || !(s->gap_days > 0)) return NAN;
  return exp2(-(T - (x ? t_x : 0)) / s->gap_days);
}

/*
** The rate is the customer's own, x repeat orders in t_x days, with the
** shop's as one more gap of its mean length g / ln 2: the shop's rate
** without a repeat order, the customer's as they accumulate.  The shop's
** alone ranked a one-time buyer of yesterday above a customer with ten
** monthly orders; this way more orders over the same days never give
** fewer.  A customer whose orders come further apart than the shop's
** usual gap gets fewer than a one-time buyer, who is given the shop's
** rate: that is what their own gaps say.
*/
double clv_simple_expected_purchases(const clv_simple *s, double horizon_days,
                                     uint32_t x, double t_x, double T) {
  if (!isfinite(horizon_days) || horizon_days < 0) return NAN;
  const double ln2 = 0.69314718055994530942;
  double rate = (x + 1.0) / ((x ? t_x : 0) + s->gap_days / ln2);
  return clv_simple_p_alive(s, x, t_x, T) * horizon_days * rate;
}

double clv_simple_predict(const clv_simple *s, const clv_customer *c,
                          double horizon_days) {
  return clv_simple_expected_purchases(s, horizon_days, c->x, c->t_x, c->T) *
         s->order_value;
}
