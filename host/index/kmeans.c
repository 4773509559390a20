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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
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

/* A cluster Lloyd's iterations left without customers is no group at all:
   listed, it would read as a segment of 0 customers with made-up figures.
   The others close up, their customers renumbered. */
static void drop_empty(idx_clusters *c) {
  uint8_t to[IDX_KMEANS_MAX_K];
  uint32_t kept = 0;
  for (uint32_t m = 0; m < c->k; m++) {
    to[m] = (uint8_t)kept;
    if (!c->size[m]) continue;
    c->size[kept] = c->size[m];
    memmove(c->centroid[kept], c->centroid[m], sizeof c->centroid[m]);
    memmove(c->name[kept], c->name[m], sizeof c->name[m]);
    memmove(c->description[kept], c->description[m], sizeof c->description[m]);
    kept++;
  }
  for (size_t i = 0; kept < c->k && i < c->n; i++) c->assign[i] = to[c->assign[i]];
  c->k = kept;
}

/* c's sizes and centroids, in the features' own units, from its
   assignment of d's c->n customers; then the empty clusters dropped. */
static void centroids(const idx_km_data *d, idx_clusters *c) {
  for (uint32_t m = 0; m < c->k; m++) {
    c->size[m] = 0;
    for (uint32_t j = 0; j < c->dims; j++) c->centroid[m][j] = 0;
  }
  for (size_t i = 0; i < c->n; i++) {
    c->size[c->assign[i]]++;
    for (uint32_t j = 0; j < c->dims; j++) c->centroid[c->assign[i]][j] += d->f[i * d->dims + j];
  }
  for (uint32_t m = 0; m < c->k; m++)
    for (uint32_t j = 0; c->size[m] && j < c->dims; j++) c->centroid[m][j] /= c->size[m];
  drop_empty(c);
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
    if (total <= 0) { /* every customer is on a centre: no more groups */
      k = m;
      break;
    }
    double r = (double)(rng(&seed) >> 11) / 9007199254740992.0 * total;
    size_t pick = d->n - 1;
    for (size_t i = 0; i < d->n; i++) {
      if (near[i] > 0 && (r -= near[i]) <= 0) {
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
  out->k = k;
  out->dims = dims;
  out->n = d->n;
  centroids(d, out);
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

/* Each feature's standard deviation over the customers (1 where they all
   agree): the unit in which a refit tells drift from a new cluster. */
static void spread(const idx_km_data *d, double *sd) {
  for (uint32_t j = 0; j < d->dims; j++) {
    double mean = 0, var = 0;
    for (size_t i = 0; i < d->n; i++) mean += d->f[i * d->dims + j] / d->n;
    for (size_t i = 0; i < d->n; i++) {
      double v = d->f[i * d->dims + j] - mean;
      var += v * v / d->n;
    }
    sd[j] = var > 0 ? sqrt(var) : 1;
  }
}

void idx_cluster_install(idx *x, const idx_km_data *d, idx_clusters *c) {
  double sd[IDX_KMEANS_MAX_DIMS];
  spread(d, sd);
  idx_cluster_name(x, &x->clusters, c, sd);
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

static int same_features(const idx_clusters *a, const idx_clusters *b);

/* The clusters' customers (d's rows in c's assignment, the others left
   out), summed up into c's sizes and centroids. */
static void resum(const idx *x, idx_km_data *d, idx_clusters *c) {
  size_t kept = 0;
  for (size_t i = 0; i < d->n; i++) {
    uint8_t m = x->person[d->person[i]].cluster;
    if (!m || m > c->k) continue; /* a customer since the fit */
    memmove(d->f + kept * d->dims, d->f + i * d->dims, d->dims * sizeof *d->f);
    d->person[kept] = d->person[i];
    c->assign[kept++] = (uint8_t)(m - 1);
  }
  d->n = c->n = kept;
  centroids(d, c);
}

/*
** An erasure.  The erased customer's figures are in their cluster's size,
** centroid and description until the next refit, and for a cluster of
** one they are that customer's own (one big spender's orders and average
** order, in tailor stats and in the checkpoint written after the
** erasure).  So the clusters are summed up again from the customers they
** still hold, on the same assignment and at the time of their fit, and
** keep their numbers and names; a cluster left with no one goes (the
** others close up).  When the shop's main categories changed since the
** fit, the figures no longer line up with the centroids: the clusters are
** fitted again.  Called with the erased people already cleared; -1 when
** out of memory (the clusters are then dropped rather than left holding
** the customer).
*/
int idx_cluster_forget(idx *x) {
  if (!x->clusters.k) return 0;
  idx_km_data d;
  idx_clusters c = x->clusters;
  int rc = idx_cluster_features(x, c.fitted_at, &d);
  if (rc == 0) {
    idx_clusters now = {.dims = d.dims};
    for (uint32_t j = 0; j < d.dims; j++) now.cats[j] = j < KM_BASE ? INTERN_NONE : d.cats[j - KM_BASE];
    if (same_features(&c, &now)) {
      c.assign = malloc(d.n ? d.n : 1);
      rc = c.assign ? 0 : -1;
      if (rc == 0) {
        resum(x, &d, &c);
        x->clusters = c; /* named after themselves: numbers and names stay */
        x->clusters.assign = NULL;
      }
    } else {
      rc = idx_cluster_fit(&d, c.k, &c);
      c.fitted_at = x->clusters.fitted_at;
    }
  }
  if (rc == 0) idx_cluster_install(x, &d, &c);
  else x->clusters.k = 0;
  idx_km_data_free(&d);
  return rc;
}

/*
** Names.  A cluster is told apart by how its centroid differs from the
** average customer (the size-weighted mean of the centroids): the main
** category whose share of interest is well above the shop's, the price
** band of its average order, and its rhythm (repeat or one-time buyers,
** recent or lapsed).  A refit moves the centroids a little and may number
** the clusters differently, so before naming, each new cluster is matched
** to the nearest old one (greedily, closest pair first, in units of each
** feature's spread over the customers) and takes its number and name:
** "repeat Sport buyers" stays what merchants know it as.  Only a cluster
** that drifted is matched: one that moved by a whole spread or more on any
** feature is another group of customers (the Kitchen buyers' cluster
** taken over by one big Home spender), and an old name would say
** something untrue of it.
*/
#define KM_MATCH_MAX 1.0 /* largest move on any feature, in spreads */

static void population(const idx_clusters *c, double *mean) {
  for (uint32_t j = 0; j < c->dims; j++) {
    mean[j] = 0;
    for (uint32_t m = 0; m < c->k; m++)
      mean[j] += c->n ? c->centroid[m][j] * (double)c->size[m] / (double)c->n : 0;
  }
}

/* Moves cluster `from` of c to `to` (a swap, so nothing is lost). */
static void swap_clusters(idx_clusters *c, size_t n, uint32_t a, uint32_t b) {
  if (a == b) return;
  size_t sz = c->size[a];
  c->size[a] = c->size[b];
  c->size[b] = sz;
  for (uint32_t j = 0; j < c->dims; j++) {
    double v = c->centroid[a][j];
    c->centroid[a][j] = c->centroid[b][j];
    c->centroid[b][j] = v;
  }
  for (size_t i = 0; c->assign && i < n; i++)
    if (c->assign[i] == a) c->assign[i] = (uint8_t)b;
    else if (c->assign[i] == b) c->assign[i] = (uint8_t)a;
}

static int same_features(const idx_clusters *a, const idx_clusters *b) {
  if (a->dims != b->dims) return 0;
  for (uint32_t j = KM_BASE; j < a->dims; j++)
    if (a->cats[j] != b->cats[j]) return 0;
  return 1;
}

/* The mean squared distance of two centroids in spreads, or INFINITY when
   they are too far apart on some feature to be one cluster drifting. */
static double drift(const double *a, const double *b, const double *sd, uint32_t dims) {
  double dd = 0;
  for (uint32_t j = 0; j < dims; j++) {
    double v = (a[j] - b[j]) / sd[j];
    if (fabs(v) >= KM_MATCH_MAX) return INFINITY;
    dd += v * v / dims;
  }
  return dd;
}

/* Matches c's clusters to prev's (sd: each feature's spread over the
   customers); matched[m] is 1 for a cluster that took an old number (and
   name). */
static void match(const idx_clusters *prev, idx_clusters *c, const double *sd, int *matched) {
  for (uint32_t m = 0; m < c->k; m++) matched[m] = 0;
  if (!prev->k || !c->k || !same_features(prev, c)) return;
  /* new cluster -> old number, closest pairs first */
  int to[IDX_KMEANS_MAX_K], taken[IDX_KMEANS_MAX_K] = {0};
  for (uint32_t m = 0; m < c->k; m++) to[m] = -1;
  for (;;) {
    double best = INFINITY;
    int bm = -1, bo = -1;
    for (uint32_t m = 0; m < c->k; m++) {
      if (to[m] >= 0) continue;
      for (uint32_t o = 0; o < prev->k; o++) {
        if (taken[o] || o >= c->k) continue;
        double dd = drift(c->centroid[m], prev->centroid[o], sd, c->dims);
        if (dd < best) best = dd, bm = (int)m, bo = (int)o;
      }
    }
    if (bm < 0) break;
    to[bm] = bo;
    taken[bo] = 1;
  }
  /* Renumber: each matched cluster moves to its old number. */
  for (uint32_t m = 0; m < c->k; m++) {
    while (to[m] >= 0 && (uint32_t)to[m] != m) {
      uint32_t o = (uint32_t)to[m];
      swap_clusters(c, c->n, m, o);
      int t = to[o];
      to[o] = to[m];
      to[m] = t;
    }
  }
  for (uint32_t m = 0; m < c->k; m++) {
    if (to[m] < 0) continue;
    matched[m] = 1;
    snprintf(c->name[m], sizeof c->name[m], "%s", prev->name[m]);
  }
}

/* The main category whose share is well above the shop's, or -1. */
static int main_category(const idx_clusters *c, const double *mean, uint32_t m) {
  int best = -1;
  double lift = 1.25;
  for (uint32_t j = KM_BASE; j < c->dims; j++) {
    double share = c->centroid[m][j];
    if (share < 0.2) continue;
    double l = share / (mean[j] > 0.01 ? mean[j] : 0.01);
    if (l > lift) lift = l, best = (int)j;
  }
  if (best < 0) { /* none stands out: its largest share, when a clear one */
    double top = 0.5;
    for (uint32_t j = KM_BASE; j < c->dims; j++)
      if (c->centroid[m][j] > top) top = c->centroid[m][j], best = (int)j;
  }
  return best;
}

static const char *price_band(double avg_order, double mean) {
  if (mean <= 0) return "mid-price";
  if (avg_order < 0.75 * mean) return "budget";
  if (avg_order > 1.33 * mean) return "premium";
  return "mid-price";
}

static const char *rhythm(const double *f, const double *mean) {
  if (mean[0] > 0 && f[0] > 1.5 * mean[0] && f[0] > 90) return "lapsed";
  if (f[1] >= 2 && f[1] >= 1.3 * mean[1]) return "repeat";
  if (f[1] < 1.5) return "one-time";
  if (mean[0] > 0 && f[0] < 0.5 * mean[0]) return "recent";
  return "occasional";
}

void idx_cluster_name(const idx *x, const idx_clusters *prev, idx_clusters *c,
                      const double *sd) {
  int matched[IDX_KMEANS_MAX_K];
  match(prev, c, sd, matched);
  double mean[IDX_KMEANS_MAX_DIMS];
  population(c, mean);
  for (uint32_t m = 0; m < c->k; m++) {
    const double *f = c->centroid[m];
    int cat = main_category(c, mean, m);
    const char *cname = cat >= 0 ? intern_name(&x->categories, c->cats[cat]) : NULL;
    const char *band = price_band(f[2], mean[2]);
    if (!matched[m]) {
      snprintf(c->name[m], sizeof c->name[m], "%s %s buyers, %s", rhythm(f, mean),
               cname ? cname : "all-round", band);
      util_utf8_cut(c->name[m]); /* whole characters: a name is JSON text */
    }
    char share[96] = "interest spread over the shop";
    if (cname)
      snprintf(share, sizeof share, "%.0f%% of interest in %s (all customers: %.0f%%)",
               100 * f[cat], cname, 100 * mean[cat]);
    util_utf8_cut(share);
    snprintf(c->description[m], sizeof c->description[m],
             "%zu customers; %.1f orders (all: %.1f), average order %.2f (%s; all: %.2f), "
             "last order %.0f days ago (all: %.0f), %.1f visits; %s",
             c->size[m], f[1], mean[1], f[2], band, mean[2], f[0], mean[0], f[3], share);
    util_utf8_cut(c->description[m]);
  }
  /* Two clusters of one name read as one: one of them gets its number,
     the one named just now (a kept name is what merchants know the
     cluster by), else the later. */
  for (uint32_t m = 1; m < c->k; m++)
    for (uint32_t o = 0; o < m; o++)
      if (!strcmp(c->name[m], c->name[o])) {
        uint32_t r = matched[m] && !matched[o] ? o : m;
        size_t len = strlen(c->name[r]);
        if (len + 4 < sizeof c->name[r]) snprintf(c->name[r] + len, 5, " #%u", r + 1);
        break;
      }
}
