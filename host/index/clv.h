/*
** clv.h: customer-value models fitted on the shop's own orders: how likely a
** customer is still active (churn risk), how many orders to expect from
** them, and what they are worth over a horizon.
**
** Models, with the formulas of the Python `lifetimes` package:
**   BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy
**   Way"): while active a customer orders as a Poisson process of rate
**   lambda ~ Gamma(shape r, rate alpha); after each repeat order they drop
**   out for good with probability p ~ Beta(a, b).
**   Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"): the value of each
**   order is Gamma(shape p, rate nu) with nu ~ Gamma(shape q, rate v) per
**   customer, independent of how often they order.
** A fit needs CLV_MIN_REPEAT_CUSTOMERS repeat customers by default (the
** engine's index.value_min_repeat_customers); the simple estimator at the
** end stands in when a fit fails.
**
** Per customer the input is x = repeat orders (orders - 1), t_x = days from
** the first to the last order, T = days from the first order to now, and
** the mean value of the repeat orders.  Times are in days throughout (any
** unit works if used consistently: alpha takes the unit of the input).
**
** Every function is pure: no globals, no allocation except where said, safe
** to call from any number of threads at once.  Models are plain structs the
** caller owns; their parameters must be positive.  Functions returning a
** double return NAN for invalid input (negative or non-finite times,
** t_x > T).
*/
#ifndef TAILOR_CLV_H
#define TAILOR_CLV_H

#include <stddef.h>
#include <stdint.h>

#include "core/defaults.h"

/* Error codes: name, value, message. */
#define CLV_ERRNO_MAP(X)                                         \
  X(OK, 0, "ok")                                                 \
  X(EINVAL, -1, "invalid customer data")                         \
  X(ETOOFEW, -2, "too few repeat customers to fit the model")    \
  X(ENOCONV, -3, "the fit did not converge")                     \
  X(EDEGENERATE, -4, "the fitted model has no finite mean")      \
  X(ENOMEM, -5, "out of memory")

typedef enum clv_code {
#define CLV_ENUM_(name, value, msg) CLV_##name = (value),
  CLV_ERRNO_MAP(CLV_ENUM_)
#undef CLV_ENUM_
  CLV_CODE_MIN_ = -5
} clv_code;

/* The message of a clv_code; never NULL. */
const char *clv_strerror(int code);

#define CLV_MIN_REPEAT_CUSTOMERS DEF_INDEX_VALUE_MIN_REPEAT_CUSTOMERS /* x > 0 */
#define CLV_DEFAULT_PENALIZER 0.0   /* L2 on the parameters (lifetimes' penalizer_coef) */
#define CLV_DEFAULT_MAX_ITER 5000   /* Nelder-Mead iterations, all restarts together */
#define CLV_DEFAULT_TOL 1e-10       /* objective spread of the final simplex */
#define CLV_DEFAULT_HORIZON_DAYS 365.0
#define CLV_DAYS_PER_MONTH 30.0     /* discounting steps */
#define CLV_SIMPLE_DEFAULT_GAP_DAYS 90.0 /* when fewer than CLV_SIMPLE_MIN_GAPS */
#define CLV_SIMPLE_MIN_GAPS 5       /* repeat customers the median gap needs */
#define CLV_SIMPLE_MIN_GAP_DAYS 1.0 /* floor: same-day reorders are not a rate */

typedef struct clv_customer {
  uint32_t x;        /* repeat orders: orders - 1 */
  double t_x;        /* days from first to last order; ignored when x == 0 */
  double T;          /* days from first order to now; t_x <= T */
  double mean_value; /* mean value of the repeat orders; used when x > 0 */
} clv_customer;

typedef struct clv_fit_opts {
  double penalizer;     /* >= 0; added as penalizer * sum(params^2) to the mean
                           negative log-likelihood, params on the fit's scale */
  unsigned max_iter;    /* cap on Nelder-Mead iterations */
  double tol;           /* convergence: spread of the simplex's objective */
  size_t min_repeat;    /* customers with x > 0 required */
} clv_fit_opts;

/* Fill `o` with the CLV_DEFAULT_* values. */
void clv_fit_opts_default(clv_fit_opts *o);

/*
** The BG/NBD model.  alpha is in days.  A fit also sets loglik (summed over
** the customers, in the input's units, without the penalty) and iters.
*/
typedef struct clv_bgnbd {
  double r, alpha, a, b;
  double loglik;
  unsigned iters;
} clv_bgnbd;

/*
** Maximum-likelihood fit of the BG/NBD model on n customers (opts NULL for
** the defaults).  Nelder-Mead on the log-parameters from r = alpha = a = b =
** 1 with times scaled so the oldest customer is 10 units old (as lifetimes
** does), restarted from the best point until a restart gains nothing;
** deterministic.  Returns CLV_OK; CLV_EINVAL when a customer has a negative
** or non-finite time or t_x > T (x > 0); CLV_ETOOFEW when fewer than
** opts->min_repeat customers have x > 0 (use clv_fit_simple); CLV_ENOCONV
** when max_iter ran out first ( *out then holds the best point found).
*/
int clv_fit_bgnbd(const clv_customer *c, size_t n, const clv_fit_opts *opts,
                  clv_bgnbd *out);

/* Log-likelihood of the BG/NBD model over n customers (no penalty). */
double clv_bgnbd_loglik(const clv_bgnbd *m, const clv_customer *c, size_t n);

/*
** Probability that a customer with history (x, t_x, T) is still active:
** 1 when x == 0 (the model lets customers drop out only after a repeat
** order), else 1 / (1 + a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)).
*/
double clv_p_alive(const clv_bgnbd *m, uint32_t x, double t_x, double T);

/*
** Expected number of orders in the next `horizon_days` of a customer with
** history (x, t_x, T): equation (10) of the BG/NBD paper.  Its Gauss
** hypergeometric function is summed as a series to full precision, with
** Euler's transformation when that series will not converge, and the
** expectation integrated over p (tanh-sinh) when neither settles (z =
** t/(alpha+T+t) near 1: a customer of the last hour under a small alpha);
** at the removable singularities of the closed form (a = 1, or a + b = 1
** when x == 0) the mean of two close neighbours is returned.  NAN when
** all of them fail (parameters at the fit's bounds).
*/
double clv_expected_purchases(const clv_bgnbd *m, double horizon_days,
                              uint32_t x, double t_x, double T);

/*
** The Gamma-Gamma model of order value; a fit also sets loglik and iters.
*/
typedef struct clv_gamma_gamma {
  double p, q, v;
  double loglik;
  unsigned iters;
} clv_gamma_gamma;

/*
** Maximum-likelihood fit of Gamma-Gamma on the customers with x > 0 and
** mean_value > 0 (the others are skipped), values scaled by their mean
** while fitting.  Returns as clv_fit_bgnbd, and CLV_EDEGENERATE when the
** fitted q <= 1: the population's mean order value is then infinite and
** expected spend is only defined for customers with x > 0.
*/
int clv_fit_gamma_gamma(const clv_customer *c, size_t n,
                        const clv_fit_opts *opts, clv_gamma_gamma *out);

/* Log-likelihood of Gamma-Gamma over the customers it uses (no penalty). */
double clv_gamma_gamma_loglik(const clv_gamma_gamma *m, const clv_customer *c,
                              size_t n);

/*
** Expected value of a customer's future orders given x repeat orders of
** mean value mean_value: p (v + x m) / (p x + q - 1), the weighted mean of
** the population mean p v / (q - 1) and the customer's own m.  When x == 0
** mean_value is ignored.  NAN when p x + q - 1 <= 0.
*/
double clv_expected_spend(const clv_gamma_gamma *m, uint32_t x,
                          double mean_value);

/*
** Predicted value of a customer over the next horizon_days: expected
** orders (BG/NBD, from c's x, t_x and T) times expected value per order
** (Gamma-Gamma, from c's x and mean_value).  With
** monthly_discount > 0 the orders expected in each 30-day step k = 1, 2,
** ... (the last one partial) are divided by (1 + monthly_discount)^(end of
** the step in months), as lifetimes' customer_lifetime_value does.
*/
double clv_predict(const clv_bgnbd *bg, const clv_gamma_gamma *gg,
                   const clv_customer *c, double horizon_days,
                   double monthly_discount);

/*
** The simple estimator, for shops with too few repeat customers.  It takes
** an active customer's gaps between orders as exponential with the shop's
** median gap g (the median over repeat customers of t_x / x, floored at
** CLV_SIMPLE_MIN_GAP_DAYS; CLV_SIMPLE_DEFAULT_GAP_DAYS with fewer than
** CLV_SIMPLE_MIN_GAPS repeat customers):
**   p_alive   = 2^(-(T - t_x) / g), the chance a gap lasts as long as the
**               customer's silence so far (t_x = 0 when x == 0);
**   purchases = p_alive * horizon * (x + 1) / (t_x + g / ln 2): the
**               customer's own rate (x repeat orders in t_x days) with the
**               shop's (ln 2 / g) as one more gap, so the shop's without a
**               repeat order, and more orders over the same days never
**               fewer (a customer slower than the shop's gap gets fewer
**               than a one-time buyer; churn within the horizon is not
**               modelled, so this errs high over long horizons);
**   value     = purchases * order_value.
*/
typedef struct clv_simple {
  double gap_days;    /* median gap between an active customer's orders */
  double order_value; /* mean value of an order */
} clv_simple;

/*
** Fill `out` from n customers.  mean_order_value is the shop's mean order
** value over all orders; when it is not > 0 the mean of the customers'
** repeat orders is used.  Returns CLV_OK, CLV_EINVAL, or CLV_ENOMEM (the
** median takes a temporary copy of the gaps, freed before returning).
*/
int clv_fit_simple(const clv_customer *c, size_t n, double mean_order_value,
                   clv_simple *out);

double clv_simple_p_alive(const clv_simple *s, uint32_t x, double t_x,
                          double T);
double clv_simple_expected_purchases(const clv_simple *s, double horizon_days,
                                     uint32_t x, double t_x, double T);
double clv_simple_predict(const clv_simple *s, const clv_customer *c,
                          double horizon_days);

#endif /* TAILOR_CLV_H */
