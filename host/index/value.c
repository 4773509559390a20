/*
** value.c: the customer-value model (index.h, idx_value_model): every
** customer's order history collected under the read lock, the fit with no
** lock (BG/NBD and Gamma-Gamma from clv.h, or clv.h's simple estimator when
** the shop has too few repeat customers), and a person's predicted value
** for their figures.  The engine installs a fitted model in idx.value.
*/
#include <math.h>
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

void idx_value_fit(const clv_customer *c, size_t n, int64_t now,
                   idx_value_model *m) {
  memset(m, 0, sizeof *m);
  m->customers = n;
  m->fitted_at = now;
  if (!n) return;
  clv_customer *w = malloc(n * sizeof *w);
  if (!w) return;
  double cap = idx_value_cap(c, n), total = 0;
  for (size_t i = 0; i < n; i++) {
    w[i] = c[i];
    if (w[i].mean_value > cap) w[i].mean_value = cap;
    total += w[i].mean_value;
  }
  if (clv_fit_simple(w, n, total / (double)n, &m->simple) == CLV_OK) {
    m->kind = IDX_VALUE_SIMPLE;
    if (clv_fit_bgnbd(w, n, NULL, &m->bg) == CLV_OK) {
      m->kind = IDX_VALUE_BGNBD;
      m->gg_ok = clv_fit_gamma_gamma(w, n, NULL, &m->gg) == CLV_OK;
    }
  }
  free(w);
}

void idx_value_predict(const idx *x, const idx_person *p, int64_t now,
                       idx_figures *f) {
  f->p_alive = f->expected_orders = f->predicted_value = -1;
  if (!p->orders || x->value.kind == IDX_VALUE_NONE) return;
  clv_customer c = history(p, now);
  const idx_value_model *m = &x->value;
  if (m->kind == IDX_VALUE_BGNBD) {
    f->p_alive = clv_p_alive(&m->bg, c.x, c.t_x, c.T);
    f->expected_orders = clv_expected_purchases(&m->bg, IDX_VALUE_HORIZON_DAYS, c.x, c.t_x, c.T);
    f->predicted_value = m->gg_ok ? clv_predict(&m->bg, &m->gg, &c, IDX_VALUE_HORIZON_DAYS, 0)
                                  : f->expected_orders * m->simple.order_value;
  } else {
    f->p_alive = clv_simple_p_alive(&m->simple, c.x, c.t_x, c.T);
    f->expected_orders = clv_simple_expected_purchases(&m->simple, IDX_VALUE_HORIZON_DAYS,
                                                       c.x, c.t_x, c.T);
    f->predicted_value = clv_simple_predict(&m->simple, &c, IDX_VALUE_HORIZON_DAYS);
  }
}
