/*
** In-session purchase propensity: a logistic regression on a session's
** features, fitted by Newton's method (ridge-penalized, on standardized
** features) on the closed sessions of the history, Platt-scaled on a
** held-out fifth of them, where its AUC and expected calibration error
** (10 equal-width bins) are measured.  See index.h.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/index.h"

#define NF IDX_PROP_FEATURES
#define RIDGE 1.0

static uint32_t mix(uint32_t v) {
  v ^= v >> 16;
  v *= 0x7feb352dU;
  v ^= v >> 15;
  v *= 0x846ca68bU;
  v ^= v >> 16;
  return v;
}

void idx_propensity_features(const idx *x, const idx_session *s,
                             const uint32_t media[IDX_PROP_MEDIA], double *f) {
  (void)x;
  double minutes = s->last_ts > s->first_ts ? (double)(s->last_ts - s->first_ts) / 60000.0 : 0;
  f[0] = log1p(s->views);
  f[1] = log1p(s->carts);
  f[2] = log1p(s->distinct);
  f[3] = log1p(minutes);
  f[4] = log1p(s->pages);
  f[5] = s->returning ? 1 : 0;
  for (int k = 0; k < IDX_PROP_MEDIA; k++)
    f[6 + k] = media[k] && s->source[0] == media[k] ? 1 : 0;
}

void idx_prop_data_free(idx_prop_data *d) {
  free(d->f);
  free(d->y);
  free(d->held);
  memset(d, 0, sizeof *d);
}

int idx_propensity_data(const idx *x, idx_prop_data *d) {
  memset(d, 0, sizeof *d);
  uint32_t ns = x->sessions.n < x->session_cap ? x->sessions.n : x->session_cap;
  /* The most frequent mediums among the sessions. */
  uint32_t top[IDX_PROP_MEDIA] = {0}, topn[IDX_PROP_MEDIA] = {0};
  uint32_t *cnt = calloc(x->attrs.n + 1, sizeof *cnt);
  if (!cnt) return -1;
  for (uint32_t s = 0; s < ns; s++)
    if (x->session[s].source[0] <= x->attrs.n) cnt[x->session[s].source[0]]++;
  for (uint32_t a = 1; a <= x->attrs.n; a++) {
    if (!cnt[a]) continue;
    for (int k = 0; k < IDX_PROP_MEDIA; k++)
      if (cnt[a] > topn[k]) {
        memmove(top + k + 1, top + k, (IDX_PROP_MEDIA - 1 - k) * sizeof *top);
        memmove(topn + k + 1, topn + k, (IDX_PROP_MEDIA - 1 - k) * sizeof *topn);
        top[k] = a;
        topn[k] = cnt[a];
        break;
      }
  }
  free(cnt);
  memcpy(d->media, top, sizeof top);
  d->f = malloc((ns ? ns : 1) * NF * sizeof *d->f);
  d->y = malloc(ns ? ns : 1);
  d->held = malloc(ns ? ns : 1);
  if (!d->f || !d->y || !d->held) {
    idx_prop_data_free(d);
    return -1;
  }
  for (uint32_t s = 0; s < ns; s++) {
    const idx_session *ss = &x->session[s];
    /* Erased, or possibly still going. */
    if (!ss->first_ts || ss->last_ts > x->last_ts - IDX_PROP_CLOSED_MS) continue;
    idx_propensity_features(x, ss, d->media, d->f + d->n * NF);
    d->y[d->n] = ss->purchased ? 1 : 0;
    d->held[d->n] = mix(s * 2654435761U + 0x9e3779b9U) % 5 == 0;
    d->n++;
  }
  return 0;
}

/* Solve a (n x n, row-major, destroyed) * x = b by Gaussian elimination
   with partial pivoting; -1 when singular. */
static int solve(double *a, double *b, int n) {
  for (int c = 0; c < n; c++) {
    int piv = c;
    for (int r = c + 1; r < n; r++)
      if (fabs(a[r * n + c]) > fabs(a[piv * n + c])) piv = r;
    if (fabs(a[piv * n + c]) < 1e-12) return -1;
    if (piv != c) {
      for (int k = 0; k < n; k++) {
        double t = a[c * n + k];
        a[c * n + k] = a[piv * n + k];
        a[piv * n + k] = t;
      }
      double t = b[c];
      b[c] = b[piv];
      b[piv] = t;
    }
    for (int r = c + 1; r < n; r++) {
      double m = a[r * n + c] / a[c * n + c];
      for (int k = c; k < n; k++) a[r * n + k] -= m * a[c * n + k];
      b[r] -= m * b[c];
    }
  }
  for (int c = n - 1; c >= 0; c--) {
    double v = b[c];
    for (int k = c + 1; k < n; k++) v -= a[c * n + k] * b[k];
    b[c] = v / a[c * n + c];
  }
  return 0;
}

static double sigmoid(double z) {
  return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
}

/* The linear score of standardized features. */
static double linear(const idx_propensity *m, const double *f) {
  double z = m->b;
  for (int j = 0; j < NF; j++) z += m->w[j] * (f[j] - m->mean[j]) / m->sd[j];
  return z;
}

/* Newton's method for a logistic regression on rows `use` of X (dim p,
   via get), intercept last in beta (p + 1 values), ridge on the weights
   only; targets t in [0, 1]. */
typedef void (*row_fn)(const void *ctx, size_t i, double *row);
static int newton(const void *ctx, row_fn get, const double *t, const size_t *use, size_t n,
                  int p, double ridge, double *beta) {
  int q = p + 1;
  double H[(NF + 1) * (NF + 1)], g[NF + 1], row[NF + 1];
  memset(beta, 0, q * sizeof *beta);
  for (int it = 0; it < 50; it++) {
    memset(H, 0, sizeof H);
    memset(g, 0, sizeof g);
    for (size_t r = 0; r < n; r++) {
      get(ctx, use[r], row);
      row[p] = 1;
      double z = 0;
      for (int j = 0; j < q; j++) z += beta[j] * row[j];
      double pr = sigmoid(z), wt = pr * (1 - pr) + 1e-9;
      for (int j = 0; j < q; j++) {
        g[j] += (t[use[r]] - pr) * row[j];
        for (int k = 0; k < q; k++) H[j * q + k] += wt * row[j] * row[k];
      }
    }
    for (int j = 0; j < p; j++) {
      g[j] -= ridge * beta[j];
      H[j * q + j] += ridge;
    }
    if (solve(H, g, q)) return -1;
    double step = 0;
    for (int j = 0; j < q; j++) {
      beta[j] += g[j];
      step += fabs(g[j]);
    }
    if (!isfinite(step)) return -1;
    if (step < 1e-8) break;
  }
  return 0;
}

typedef struct std_ctx {
  const idx_prop_data *d;
  const idx_propensity *m;
} std_ctx;

static void std_row(const void *c, size_t i, double *row) {
  const std_ctx *s = c;
  for (int j = 0; j < NF; j++)
    row[j] = (s->d->f[i * NF + j] - s->m->mean[j]) / s->m->sd[j];
}

static void z_row(const void *c, size_t i, double *row) { row[0] = ((const double *)c)[i]; }

typedef struct ranked {
  double s;
  uint8_t y;
} ranked;

static int by_score(const void *a, const void *b) {
  double x = ((const ranked *)a)->s, y = ((const ranked *)b)->s;
  return (x > y) - (x < y);
}

int idx_propensity_fit(const idx_prop_data *d, idx_propensity *m) {
  memset(m, 0, sizeof *m);
  memcpy(m->media, d->media, sizeof m->media);
  size_t ntr = 0, nho = 0, pos_tr = 0, pos_ho = 0;
  for (size_t i = 0; i < d->n; i++) {
    if (d->held[i]) {
      nho++;
      pos_ho += d->y[i];
    } else {
      ntr++;
      pos_tr += d->y[i];
    }
  }
  if (ntr < 40 || nho < 10 || !pos_tr || pos_tr == ntr || !pos_ho || pos_ho == nho) return -1;
  size_t *tr = malloc(ntr * sizeof *tr), *ho = malloc(nho * sizeof *ho);
  double *t = malloc(d->n * sizeof *t), *z = malloc(d->n * sizeof *z);
  ranked *rk = malloc(nho * sizeof *rk);
  int rc = -1;
  if (!tr || !ho || !t || !z || !rk) goto out;
  ntr = nho = 0;
  for (size_t i = 0; i < d->n; i++) {
    if (d->held[i]) ho[nho++] = i;
    else tr[ntr++] = i;
    t[i] = d->y[i];
  }
  /* Standardize on the training part. */
  for (int j = 0; j < NF; j++) {
    double s = 0, ss = 0;
    for (size_t r = 0; r < ntr; r++) s += d->f[tr[r] * NF + j];
    double mean = s / (double)ntr;
    for (size_t r = 0; r < ntr; r++) {
      double v = d->f[tr[r] * NF + j] - mean;
      ss += v * v;
    }
    double sd = sqrt(ss / (double)ntr);
    m->mean[j] = mean;
    m->sd[j] = sd > 1e-9 ? sd : 1; /* a constant feature: its weight stays 0 */
  }
  double beta[NF + 1];
  std_ctx c = {d, m};
  if (newton(&c, std_row, t, tr, ntr, NF, RIDGE, beta)) goto out;
  memcpy(m->w, beta, NF * sizeof *m->w);
  m->b = beta[NF];
  /* Platt scaling on the held-out part, with Platt's smoothed targets. */
  double tp = ((double)pos_ho + 1) / ((double)pos_ho + 2), tn = 1 / ((double)(nho - pos_ho) + 2);
  for (size_t r = 0; r < nho; r++) {
    z[ho[r]] = linear(m, d->f + ho[r] * NF);
    t[ho[r]] = d->y[ho[r]] ? tp : tn;
  }
  double ab[2];
  if (newton(z, z_row, t, ho, nho, 1, 1e-6, ab)) goto out;
  m->platt_a = ab[0];
  m->platt_b = ab[1];
  /* AUC (ties count half) and calibration error on the held-out part. */
  for (size_t r = 0; r < nho; r++) rk[r] = (ranked){z[ho[r]], d->y[ho[r]]};
  qsort(rk, nho, sizeof *rk, by_score);
  double rank_sum = 0;
  for (size_t i = 0; i < nho;) {
    size_t j = i;
    while (j < nho && rk[j].s == rk[i].s) j++;
    double avg = ((double)i + 1 + (double)j) / 2; /* ranks i+1 .. j */
    for (size_t k = i; k < j; k++)
      if (rk[k].y) rank_sum += avg;
    i = j;
  }
  double np = (double)pos_ho, nn = (double)(nho - pos_ho);
  m->auc = (rank_sum - np * (np + 1) / 2) / (np * nn);
  double bin_p[10] = {0}, bin_y[10] = {0}, bin_n[10] = {0};
  for (size_t r = 0; r < nho; r++) {
    double p = sigmoid(m->platt_a * z[ho[r]] + m->platt_b);
    int b = p >= 1 ? 9 : (int)(p * 10);
    bin_p[b] += p;
    bin_y[b] += d->y[ho[r]];
    bin_n[b]++;
  }
  for (int b = 0; b < 10; b++)
    if (bin_n[b]) m->ece += fabs(bin_p[b] - bin_y[b]) / (double)nho;
  m->n_train = (uint32_t)ntr;
  m->n_holdout = (uint32_t)nho;
  m->purchases = (uint32_t)(pos_tr + pos_ho);
  rc = 0;
out:
  free(tr);
  free(ho);
  free(t);
  free(z);
  free(rk);
  return rc;
}

double idx_propensity_score(const idx *x, uint32_t sid) {
  const idx_propensity *m = x->propensity;
  if (!m || sid >= x->session_cap || sid >= x->sessions.n || !x->session[sid].first_ts) return -1;
  double f[NF];
  idx_propensity_features(x, &x->session[sid], m->media, f);
  return sigmoid(m->platt_a * linear(m, f) + m->platt_b);
}
