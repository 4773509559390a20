/*
** query.c: the reads strategies ask of the index about items: whether an
** item can be recommended, the filters every kernel applies before its
** heap, and the entry points that run a kernel (co-occurrence, trending,
** session kNN) with those filters inside; plus the small reads of session
** counters, coupon pools and margins.  Nothing here changes the index.
**
** Results are written to the caller's topk_entry arrays; nothing returned
** is owned by the caller except those rows.
*/
#include "index/internal.h"

#include <math.h>

#include "index/sknn_rerank.h"

static const char *const reason_names[] = {
#define IDX_REASON_NAME_(e, s) s,
    IDX_REASON_MAP(IDX_REASON_NAME_)
#undef IDX_REASON_NAME_
};

const char *idx_reason_name(idx_reason r) {
  return (unsigned)r < IDX_REASON_COUNT ? reason_names[r] : "none";
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

size_t idx_ids_sort(uint32_t *v, size_t n) {
  if (n < 2) return n;
  qsort(v, n, sizeof *v, cmp_u32);
  size_t k = 1;
  for (size_t i = 1; i < n; i++)
    if (v[i] != v[k - 1]) v[k++] = v[i];
  return k;
}

int idx_item_available(const idx *x, uint32_t item) {
  return item < x->items.n && !x->item[item].deleted && x->item[item].in_stock;
}

size_t idx_most_viewed(const idx *x, size_t k, const uint32_t *exclude,
                       size_t nex, topk_entry *out) {
  topk h;
  topk_init(&h, out, k);
  for (uint32_t i = 0; i < x->items.n; i++) {
    if (!x->item[i].views || !idx_item_available(x, i)) continue;
    if ((double)x->item[i].views < topk_floor(&h)) continue;
    if (nex && ids_sorted_has(exclude, nex, i)) continue;
    topk_push(&h, i, IDX_REASON_POPULAR, (double)x->item[i].views);
  }
  return topk_sorted(&h);
}

int idx_keep(const idx *x, const idx_filter *f, uint32_t item) {
  if (!f) return 1;
  /* A deleted item is no longer sold: letting sold-out items through does
     not bring it back, and a row of it would be dropped from the answer
     after it took the place of one that could be shown. */
  if (f->in_stock ? !idx_item_available(x, item) : item >= x->items.n || x->item[item].deleted)
    return 0;
  if (f->nex && ids_sorted_has(f->exclude, f->nex, item)) return 0;
  const idx_item *it = &x->item[item];
  if (f->min_price > 0 && it->price < f->min_price) return 0;
  if (f->max_price > 0 && it->price > f->max_price) return 0;
  if (f->by_brand && !ids_has(f->brands, f->nbrands, it->brand)) return 0;
  if (f->category) {
    const char *c = intern_name(&x->categories, it->category);
    size_t n = strlen(f->category);
    if (!c || strncmp(c, f->category, n) != 0 || (c[n] != '\0' && c[n] != '/'))
      return 0;
  }
  return 1;
}

typedef struct keep_ctx {
  const idx *x;
  const idx_filter *f;
} keep_ctx;

static int keep_cb(void *ud, uint32_t item) {
  keep_ctx *k = ud;
  return idx_keep(k->x, k->f, item);
}

size_t idx_related(const idx *x, idx_relation rel, const cooc_params *p,
                   const uint32_t *anchors, size_t n, const idx_filter *f,
                   int64_t now, size_t k, topk_entry *out) {
  keep_ctx kc = {x, f};
  const cooc *c = rel == IDX_COPURCHASE ? &x->copurchase : &x->coview;
  return cooc_top_k(c, p, anchors, n, f ? keep_cb : NULL, &kc, now, k, out);
}

size_t idx_trending(const idx *x, const char *key, const char *value,
                    const idx_filter *f, int64_t now, size_t k,
                    topk_entry *out) {
  keep_ctx kc = {x, f};
  const trend_table *tb = trend_find(&x->trend, key ? key : "", value ? value : "");
  return trend_top_k(&x->trend, tb, f ? keep_cb : NULL, &kc, now, k, out);
}

size_t idx_session_next(const idx *x, const uint32_t *items, size_t n,
                        uint32_t session, const sknn_params *p, sknn_work *work,
                        const idx_filter *f, size_t k, topk_entry *out) {
  /* Ask for more than k: filters (stock, the cart, opts.exclude) run after
     the kernel.  When they leave fewer than k and the kernel had more to
     give, ask again for four times as many (up to MAX_WANT): k rows
     whenever that many candidates pass. */
  enum { OVERFETCH = 3, MAX_ROWS = 300, MAX_WANT = 4800 };
  topk_entry stack_rows[MAX_ROWS], *rows = stack_rows;
  size_t want = k * OVERFETCH < MAX_ROWS ? k * OVERFETCH : MAX_ROWS;
  sknn_params q = *p;
  q.self = session == INTERN_NONE ? SKNN_NONE : session;
  q.fill = 0; /* popularity padding belongs to the strategy, with a reason */
  size_t m = 0;
  for (;;) {
    int got = sknn_query(x->sknn, items, n, &q, work, rows, want);
    m = 0;
    for (int i = 0; i < got && m < k; i++)
      if (rows[i].id < x->items.n && rows[i].score > 0 && idx_keep(x, f, rows[i].id))
        out[m++] = rows[i];
    if (m >= k || got < (int)want || want >= MAX_WANT) break;
    want = want * 4 < MAX_WANT ? want * 4 : MAX_WANT;
    topk_entry *more = realloc(rows == stack_rows ? NULL : rows, want * sizeof *rows);
    if (!more) break; /* out of memory: what passed so far */
    rows = more;
  }
  if (rows != stack_rows) free(rows);
  return m;
}

int idx_session_next_reranked(const idx *x, const sknn_ranker *r,
                              const uint32_t *items, size_t n, uint32_t session,
                              const sknn_params *p, sknn_rerank_work *rwork,
                              const idx_filter *f, size_t k, topk_entry *out) {
  /* The candidates are at most SKNN_RERANK_MAX: ask for all of them, since
     filters (stock, the cart) run after the model. */
  topk_entry rows[SKNN_RERANK_MAX];
  sknn_params q = *p;
  q.self = session == INTERN_NONE ? SKNN_NONE : session;
  q.fill = 0;
  int got = sknn_rerank_query(x->sknn, r, &q, items, n, rwork, rows, SKNN_RERANK_MAX);
  if (got < 0) return got;
  size_t m = 0;
  for (int i = 0; i < got && m < k; i++)
    if (rows[i].id < x->items.n && idx_keep(x, f, rows[i].id)) {
      out[m] = rows[i];
      out[m++].score = 1 / (1 + exp(-rows[i].score));
    }
  return (int)m;
}

const idx_session *idx_session_of(const idx *x, const char *session) {
  uint32_t sid = session ? intern_get(&x->sessions, session) : INTERN_NONE;
  return sid < x->session_cap ? &x->session[sid] : NULL;
}

long idx_coupons_left(const idx *x, const char *pool) {
  uint32_t id = intern_get(&x->coupons, pool);
  if (id == INTERN_NONE) return -1;
  long left = (long)x->coupon_size.v[id] - (long)x->coupon_used.v[id];
  return left > 0 ? left : 0;
}

double idx_max_discount(const idx *x, uint32_t item, double min_margin_pct) {
  if (item >= x->items.n) return 0;
  const idx_item *it = &x->item[item];
  if (it->cost <= 0 || it->price <= 0) return 100;
  double d = 100 * (1 - it->cost / (it->price * (1 - min_margin_pct / 100)));
  return d < 0 ? 0 : d > 100 ? 100 : d;
}
