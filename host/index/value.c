/*
** value.c: the customer-value model (index.h, idx_value_model): every
** customer's order history collected under the read lock, the fit with no
** lock (BG/NBD and Gamma-Gamma from clv.h; no model below the minimum of
** repeat customers; clv.h's simple estimator when the BG/NBD fit fails),
** a person's predicted value for their figures, and the holdout check
** that says how well the model ranks customers by what they spend next.
** The engine installs a fitted model in idx.value.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/internal.h"

/* A customer's history at `now` in the model's terms (days). */
static clv_customer history(const idx_person *p, int64_t now) {
  clv_customer c = {p->orders - 1, (double)(p->last_order - p->first_order) / 86400e3,
                    (double)(now - p->first_order) / 86400e3, p->revenue / p->orders};
  if (c.T < c.t_x) c.T = c.t_x; /* events stamped after `now` */
  return c;
}

int idx_value_customers(const idx *x, int64_t now, clv_customer **out,
                        size_t *n) {
  size_t cap = 0;
  *out = NULL;
  *n = 0;
  for (uint32_t i = 0; i < x->people.n; i++) {
    const idx_person *p = &x->person[i];
    if (p->canon != i || !p->orders) continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 1024;
      clv_customer *more = realloc(*out, cap * sizeof *more);
      if (!more) {
        free(*out);
        *out = NULL;
        return -1;
      }
      *out = more;
    }
    (*out)[(*n)++] = history(p, now);
  }
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/*
** The highest order value the fit takes as it is: Tukey's far-out fence
** (Q3 + 3 IQR), or 10 times the median when most orders are alike.  One
** customer's absurd order (a test, a typo, an attack) would otherwise
** move a model fitted on everyone, and with it every customer's tier.
*/
double idx_value_cap(const clv_customer *c, size_t n) {
  double *v = malloc(n * sizeof *v), cap = INFINITY;
  if (!v || n < 4) {
    free(v);
    return cap;
  }
  for (size_t i = 0; i < n; i++) v[i] = c[i].mean_value;
  qsort(v, n, sizeof *v, cmp_double);
  double q1 = v[n / 4], med = v[n / 2], q3 = v[(3 * n) / 4];
  cap = q3 > q1 ? q3 + 3 * (q3 - q1) : 10 * med;
  if (!(cap > 0)) cap = INFINITY;
  free(v);
  return cap;
}

const char *idx_value_kind_name(idx_value_kind k) {
  switch (k) {
#define IDX_VALUE_KIND_NAME_(e, name) \
  case IDX_VALUE_##e:                 \
    return name;
    IDX_VALUE_KIND_MAP(IDX_VALUE_KIND_NAME_)
#undef IDX_VALUE_KIND_NAME_
  }
  return "none";
}

const char *idx_value_reason(const idx_value_model *m, char *buf, size_t len) {
  if (m->kind == IDX_VALUE_NONE && !m->customers)
    snprintf(buf, len, "no orders yet");
  else if (m->kind == IDX_VALUE_NONE)
    snprintf(buf, len,
             "too few repeat customers: %zu of %zu customers have two or more "
             "orders, the model needs %zu (index.value_min_repeat_customers); "
             "no predicted values, no value tiers",
             m->repeat_customers, m->customers, m->min_repeat);
  else if (m->kind == IDX_VALUE_SIMPLE)
    snprintf(buf, len, "BG/NBD: %s; the simple estimator stands in",
             clv_strerror(m->bg_rc));
  else if (!m->gg_ok)
    snprintf(buf, len,
             "BG/NBD fitted; Gamma-Gamma: %s, so order values are each "
             "customer's mean shrunk to the shop's",
             clv_strerror(m->gg_rc));
  else
    snprintf(buf, len, "BG/NBD and Gamma-Gamma fitted on %zu customers, %zu of "
             "them repeat customers", m->customers, m->repeat_customers);
  return buf;
}

void idx_value_fit(const clv_customer *c, size_t n, int64_t now,
                   size_t min_repeat, idx_value_model *m) {
  memset(m, 0, sizeof *m);
  m->customers = n;
  m->fitted_at = now;
  m->min_repeat = min_repeat;
  m->bg_rc = m->gg_rc = CLV_ETOOFEW;
  for (size_t i = 0; i < n; i++) m->repeat_customers += c[i].x > 0;
  /* Below the minimum a fit would be a guess, and a guess hands out tiers:
     the simple estimator once made 39 of 40 customers VIP. */
  if (!m->repeat_customers || m->repeat_customers < min_repeat) return;
  clv_customer *w = malloc(n * sizeof *w);
  if (!w) return;
  double cap = idx_value_cap(c, n), total = 0;
  for (size_t i = 0; i < n; i++) {
    w[i] = c[i];
    if (w[i].mean_value > cap) w[i].mean_value = cap;
    total += w[i].mean_value;
  }
  clv_fit_opts o;
  clv_fit_opts_default(&o);
  o.min_repeat = min_repeat;
  if (clv_fit_simple(w, n, total / (double)n, &m->simple) == CLV_OK) {
    m->kind = IDX_VALUE_SIMPLE;
    m->bg_rc = clv_fit_bgnbd(w, n, &o, &m->bg);
    if (m->bg_rc == CLV_OK) {
      m->kind = IDX_VALUE_BGNBD;
      m->gg_rc = clv_fit_gamma_gamma(w, n, &o, &m->gg);
      m->gg_ok = m->gg_rc == CLV_OK;
    }
  }
  free(w);
}

/*
** Without Gamma-Gamma, a customer's order value: their own mean with the
** weight of their orders, the shop's with the weight of one order, so one
** big first order does not count as a habit.  A mean of 0 (free orders)
** is a mean: taken as none, it made such customers worth the shop's
** average order and VIP above customers who paid.
*/
static double order_value(const idx_value_model *m, const clv_customer *c) {
  double own = isfinite(c->mean_value) && c->mean_value >= 0 ? c->mean_value
                                                             : m->simple.order_value;
  return ((c->x + 1.0) * own + m->simple.order_value) / (c->x + 2.0);
}

/* A customer's figures under a fitted model over the next horizon days. */
static void value_of(const idx_value_model *m, const clv_customer *c,
                     double horizon, double *p_alive, double *orders,
                     double *value) {
  if (m->kind == IDX_VALUE_BGNBD) {
    *p_alive = clv_p_alive(&m->bg, c->x, c->t_x, c->T);
    *orders = clv_expected_purchases(&m->bg, horizon, c->x, c->t_x, c->T);
    *value = m->gg_ok ? clv_predict(&m->bg, &m->gg, c, horizon, 0)
                      : *orders * order_value(m, c);
  } else {
    *p_alive = clv_simple_p_alive(&m->simple, c->x, c->t_x, c->T);
    *orders = clv_simple_expected_purchases(&m->simple, horizon, c->x, c->t_x, c->T);
    *value = *orders * order_value(m, c);
  }
}

void idx_value_predict(const idx *x, const idx_person *p, int64_t now,
                       idx_figures *f) {
  f->p_alive = f->expected_orders = f->predicted_value = -1;
  if (!p->orders || x->value.kind == IDX_VALUE_NONE) return;
  clv_customer c = history(p, now);
  value_of(&x->value, &c, IDX_VALUE_HORIZON_DAYS, &f->p_alive,
           &f->expected_orders, &f->predicted_value);
  /* A figure the formulas could not give is no figure: a NaN would reach
     ctx.customer, where a strategy's answer holding it is not JSON. */
  if (!isfinite(f->p_alive)) f->p_alive = -1;
  if (!isfinite(f->expected_orders)) f->expected_orders = -1;
  if (!isfinite(f->predicted_value)) f->predicted_value = -1;
}

/*
** ** The holdout check
*/

typedef struct ranked {
  double v;
  size_t i;
} ranked;

static int cmp_ranked(const void *a, const void *b) {
  double x = ((const ranked *)a)->v, y = ((const ranked *)b)->v;
  return (x > y) - (x < y);
}

/* Ranks 1..n of v into r, ties at their mean rank; -1 out of memory. */
static int ranks(const double *v, size_t n, double *r) {
  ranked *s = malloc(n * sizeof *s);
  if (!s) return -1;
  for (size_t i = 0; i < n; i++) s[i] = (ranked){v[i], i};
  qsort(s, n, sizeof *s, cmp_ranked);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && s[j + 1].v == s[i].v) j++;
    for (size_t k = i; k <= j; k++) r[s[k].i] = 0.5 * (double)(i + j) + 1;
    i = j + 1;
  }
  free(s);
  return 0;
}

double idx_spearman(const double *x, const double *y, size_t n) {
  if (n < 2) return NAN;
  double *rx = malloc(2 * n * sizeof *rx), res = NAN;
  if (!rx) return NAN;
  double *ry = rx + n;
  if (ranks(x, n, rx) == 0 && ranks(y, n, ry) == 0) {
    double mean = (n + 1) / 2.0, sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
      double a = rx[i] - mean, b = ry[i] - mean;
      sxy += a * b, sxx += a * a, syy += b * b;
    }
    if (sxx > 0 && syy > 0) res = sxy / sqrt(sxx * syy);
  }
  free(rx);
  return res;
}

static int cmp_order(const void *a, const void *b) {
  const idx_value_order *x = a, *y = b;
  if (x->person != y->person) return x->person < y->person ? -1 : 1;
  return (x->ts > y->ts) - (x->ts < y->ts);
}

/* Customers with two or more of the orders (sorted by person) at or
   before the cutoff. */
static size_t repeat_before(const idx_value_order *o, size_t n, int64_t cutoff) {
  size_t repeat = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i, before = 0;
    for (; j < n && o[j].person == o[i].person; j++) before += o[j].ts <= cutoff;
    repeat += before > 1;
    i = j;
  }
  return repeat;
}

int idx_value_check_orders(idx_value_order *o, size_t n, double holdout_days,
                           size_t min_repeat, idx_value_check *out) {
  memset(out, 0, sizeof *out);
  out->spearman_predicted = out->spearman_past_spend = NAN;
  if (!n || !(holdout_days > 0)) return 0;
  qsort(o, n, sizeof *o, cmp_order);
  int64_t end = o[0].ts;
  for (size_t i = 1; i < n; i++)
    if (o[i].ts > end) end = o[i].ts;
  /* A young shop has few repeat customers before a long holdout: halve it
     until the orders before it give the model its minimum, so the check
     tests a model, not its absence. */
  double days = holdout_days;
  while (days / 2 >= DEF_VALUE_HOLDOUT_MIN_DAYS &&
         repeat_before(o, n, end - (int64_t)(days * 86400e3)) < min_repeat)
    days /= 2;
  out->ran = 1;
  out->end = end;
  out->holdout_days = days;
  out->cutoff = end - (int64_t)(days * 86400e3);
  /* One row per customer with an order before the cutoff: their history
     at the cutoff, what they had spent, and what they spent after. */
  clv_customer *c = malloc(n * sizeof *c);
  double *past = malloc(3 * n * sizeof *past);
  if (!c || !past) {
    free(c);
    free(past);
    return -1;
  }
  double *next = past + n, *pred = next + n;
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i, before = 0;
    double spent = 0, after = 0;
    int64_t last = o[i].ts;
    for (; j < n && o[j].person == o[i].person; j++) {
      if (o[j].ts <= out->cutoff)
        before++, spent += o[j].revenue, last = o[j].ts;
      else
        after += o[j].revenue;
    }
    if (before) {
      c[k] = (clv_customer){(uint32_t)(before - 1), (double)(last - o[i].ts) / 86400e3,
                            (double)(out->cutoff - o[i].ts) / 86400e3, spent / before};
      past[k] = spent;
      next[k] = after;
      out->repeat_customers += before > 1;
      out->spenders += after > 0;
      k++;
    }
    i = j;
  }
  out->customers = k;
  idx_value_model m;
  idx_value_fit(c, k, out->cutoff, min_repeat, &m);
  out->kind = m.kind;
  if (m.kind != IDX_VALUE_NONE) {
    for (size_t i = 0; i < k; i++) {
      double alive, orders;
      value_of(&m, &c[i], days, &alive, &orders, &pred[i]);
      if (!isfinite(pred[i])) pred[i] = 0;
    }
    out->spearman_predicted = idx_spearman(pred, next, k);
  }
  out->spearman_past_spend = idx_spearman(past, next, k);
  free(c);
  free(past);
  return 0;
}

int idx_value_orders_held(const idx *x, idx_value_order **out, size_t *nout) {
  idx_value_order *o = malloc((x->norders ? x->norders : 1) * sizeof *o);
  if (!o) return -1;
  size_t n = 0;
  for (size_t i = 0; i < x->norders; i++) {
    if (x->orders[i].refunded) continue; /* refunded in full: not an order */
    o[n] = x->orders[i];
    o[n++].person = x->person[x->orders[i].person].canon;
  }
  *out = o;
  *nout = n;
  return 0;
}

int idx_value_check_held(const idx *x, double holdout_days, size_t min_repeat,
                         idx_value_check *out) {
  idx_value_order *o;
  size_t n;
  if (idx_value_orders_held(x, &o, &n)) return -1;
  int rc = idx_value_check_orders(o, n, holdout_days, min_repeat, out);
  free(o);
  return rc;
}
