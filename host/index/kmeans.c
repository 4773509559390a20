/*
** kmeans.c: automatic customer segments.  Customers (people with an
** order) are described by their RFM figures, visits and how their interest
** spreads over the shop's main categories, standardized, and grouped with
** k-means (k-means++ seeding from a fixed seed, then Lloyd's iterations),
** so the same history always gives the same clusters.  Centroids are kept
** in the features' own units, so a merchant can read and name them
** ("big spenders in Home", "one-time sport buyers").
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/index.h"

#define KM_MAX_ITER 50
#define KM_SEED 0x6b6d65616e73ull

static const char *const base_features[] = {"recency_days", "orders", "avg_order",
                                            "visits"};
#define KM_BASE 4

static uint64_t rng(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* The top-level category of a category id ("Home" of "Home/Decor/Wall"). */
static uint32_t top_level(const idx *x, uint32_t cat) {
  const char *path = intern_name(&x->categories, cat);
  if (!path) return INTERN_NONE;
  char buf[256];
  size_t n = strcspn(path, "/");
  if (n >= sizeof buf) return INTERN_NONE;
  memcpy(buf, path, n);
  buf[n] = '\0';
  return intern_get(&x->categories, buf);
}

int idx_cluster_features(const idx *x, int64_t now, idx_km_data *d) {
  memset(d, 0, sizeof *d);
  /* The shop's main top-level categories: those with the most items. */
  for (uint32_t c = 0; c < x->categories.n && c < x->members_cap; c++) {
    const char *name = intern_name(&x->categories, c);
    if (!name || strchr(name, '/')) continue;
    uint32_t size = x->members[c].n, at = d->ncats;
    if (d->ncats < IDX_KMEANS_CATEGORIES) d->ncats++;
    else if (size <= x->members[d->cats[at - 1]].n) continue;
    else at--;
    while (at > 0 && x->members[d->cats[at - 1]].n < size) {
      d->cats[at] = d->cats[at - 1];
      at--;
    }
    d->cats[at] = c;
  }
  d->dims = KM_BASE + d->ncats;
  for (uint32_t i = 0; i < x->people.n; i++) {
    const idx_person *p = &x->person[i];
    if (p->canon != i || !p->orders) continue;
    if (d->n % 1024 == 0) {
      double *f = realloc(d->f, (d->n + 1024) * d->dims * sizeof *f);
      uint32_t *who = realloc(d->person, (d->n + 1024) * sizeof *who);
      if (f) d->f = f;
      if (who) d->person = who;
      if (!f || !who) return -1;
    }
    double *row = d->f + (size_t)d->n * d->dims;
    row[0] = (double)(now - p->last_order) / 86400e3;
    row[1] = p->orders;
    row[2] = p->revenue / p->orders;
    row[3] = p->visits;
    double total = 0;
    for (uint32_t c = 0; c < d->ncats; c++) row[KM_BASE + c] = 0;
    for (uint8_t a = 0; a < p->naff; a++) {
      if (p->aff[a].key & IDX_AFF_BRAND) continue;
      uint32_t top = top_level(x, p->aff[a].key);
      total += p->aff[a].w;
      for (uint32_t c = 0; c < d->ncats; c++)
        if (d->cats[c] == top) row[KM_BASE + c] += p->aff[a].w;
    }
    for (uint32_t c = 0; c < d->ncats; c++) row[KM_BASE + c] = total > 0 ? row[KM_BASE + c] / total : 0;
    d->person[d->n++] = i;
  }
  return 0;
}

void idx_km_data_free(idx_km_data *d) {
  free(d->f);
  free(d->person);
  memset(d, 0, sizeof *d);
}

static double dist2(const double *a, const double *b, uint32_t dims) {
  double s = 0;
  for (uint32_t j = 0; j < dims; j++) s += (a[j] - b[j]) * (a[j] - b[j]);
  return s;
}

int idx_cluster_fit(const idx_km_data *d, uint32_t k, idx_clusters *out) {
  memset(out, 0, sizeof *out);
  if (k > IDX_KMEANS_MAX_K) k = IDX_KMEANS_MAX_K;
  if (!d->n || k == 0) return 0;
  if (k > d->n) k = d->n;
  uint32_t dims = d->dims;
  /* Standardize, so dollars do not drown out shares. */
  double mean[IDX_KMEANS_MAX_DIMS] = {0}, sd[IDX_KMEANS_MAX_DIMS] = {0};
  for (size_t i = 0; i < d->n; i++)
    for (uint32_t j = 0; j < dims; j++) mean[j] += d->f[i * dims + j] / d->n;
  for (size_t i = 0; i < d->n; i++)
    for (uint32_t j = 0; j < dims; j++)
      sd[j] += (d->f[i * dims + j] - mean[j]) * (d->f[i * dims + j] - mean[j]) / d->n;
  for (uint32_t j = 0; j < dims; j++) sd[j] = sd[j] > 0 ? sqrt(sd[j]) : 1;
  double *z = malloc(d->n * dims * sizeof *z), *near = malloc(d->n * sizeof *near);
  out->assign = malloc(d->n * sizeof *out->assign);
  if (!z || !near || !out->assign) {
    free(z);
    free(near);
    free(out->assign);
    out->assign = NULL;
    return -1;
  }
  for (size_t i = 0; i < d->n; i++)
    for (uint32_t j = 0; j < dims; j++) z[i * dims + j] = (d->f[i * dims + j] - mean[j]) / sd[j];
  /* k-means++: each next centre drawn with probability ~ squared distance. */
  double c[IDX_KMEANS_MAX_K][IDX_KMEANS_MAX_DIMS];
  uint64_t seed = KM_SEED;
  memcpy(c[0], z + (rng(&seed) % d->n) * dims, dims * sizeof(double));
  for (size_t i = 0; i < d->n; i++) near[i] = dist2(z + i * dims, c[0], dims);
  for (uint32_t m = 1; m < k; m++) {
    double total = 0;
    for (size_t i = 0; i < d->n; i++) total += near[i];
    double r = (double)(rng(&seed) >> 11) / 9007199254740992.0 * total;
    size_t pick = d->n - 1;
    for (size_t i = 0; i < d->n; i++) {
      if ((r -= near[i]) <= 0) {
        pick = i;
        break;
      }
    }
    memcpy(c[m], z + pick * dims, dims * sizeof(double));
    for (size_t i = 0; i < d->n; i++) {
      double dd = dist2(z + i * dims, c[m], dims);
      if (dd < near[i]) near[i] = dd;
    }
  }
  /* Lloyd's iterations until no customer changes cluster. */
  for (size_t i = 0; i < d->n; i++) out->assign[i] = UINT8_MAX;
  for (int it = 0; it < KM_MAX_ITER; it++) {
    size_t moved = 0;
    for (size_t i = 0; i < d->n; i++) {
      uint8_t best = 0;
      double bd = dist2(z + i * dims, c[0], dims);
      for (uint32_t m = 1; m < k; m++) {
        double dd = dist2(z + i * dims, c[m], dims);
        if (dd < bd) bd = dd, best = (uint8_t)m;
      }
      moved += out->assign[i] != best;
      out->assign[i] = best;
    }
    if (!moved) break;
    double sum[IDX_KMEANS_MAX_K][IDX_KMEANS_MAX_DIMS] = {{0}};
    size_t count[IDX_KMEANS_MAX_K] = {0};
    for (size_t i = 0; i < d->n; i++) {
      count[out->assign[i]]++;
      for (uint32_t j = 0; j < dims; j++) sum[out->assign[i]][j] += z[i * dims + j];
    }
    for (uint32_t m = 0; m < k; m++)
      for (uint32_t j = 0; count[m] && j < dims; j++) c[m][j] = sum[m][j] / count[m];
  }
  /* Centroids and sizes in the features' own units. */
  out->k = k;
  out->dims = dims;
  out->n = d->n;
  for (uint32_t m = 0; m < k; m++) {
    out->size[m] = 0;
    for (uint32_t j = 0; j < dims; j++) out->centroid[m][j] = 0;
  }
  for (size_t i = 0; i < d->n; i++) {
    out->size[out->assign[i]]++;
    for (uint32_t j = 0; j < dims; j++) out->centroid[out->assign[i]][j] += d->f[i * dims + j];
  }
  for (uint32_t m = 0; m < k; m++)
    for (uint32_t j = 0; out->size[m] && j < dims; j++) out->centroid[m][j] /= out->size[m];
  for (uint32_t j = 0; j < dims; j++) out->cats[j] = j < KM_BASE ? INTERN_NONE : d->cats[j - KM_BASE];
  free(z);
  free(near);
  return 0;
}

const char *idx_cluster_feature_name(const idx *x, const idx_clusters *c,
                                     uint32_t j, char *buf, size_t size) {
  if (j < KM_BASE) return base_features[j];
  snprintf(buf, size, "share:%s", intern_name(&x->categories, c->cats[j]));
  return buf;
}

void idx_cluster_install(idx *x, const idx_km_data *d, idx_clusters *c) {
  free(x->clusters.assign);
  x->clusters = *c;
  for (uint32_t i = 0; i < x->people.n; i++) x->person[i].cluster = 0;
  for (size_t i = 0; c->assign && i < d->n; i++)
    if (d->person[i] < x->people.n) x->person[d->person[i]].cluster = (uint8_t)(c->assign[i] + 1);
  /* The per-customer assignment now lives in the people. */
  free(x->clusters.assign);
  x->clusters.assign = NULL;
  c->assign = NULL;
}
