/*
** content.c: content similarity for items without interactions: the same
** category (widening to its parents), brand, tags and price band.  Every
** category level keeps the list of its items, so candidates come from a
** few arrays instead of a scan of the catalog.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/internal.h"

static int members_grow(idx *x, uint32_t cat) {
  if (cat < x->members_cap) return 0;
  uint32_t n = x->members_cap ? x->members_cap : 64;
  while (n <= cat) n *= 2;
  idx_ids *m = realloc(x->members, n * sizeof *m);
  if (!m) return -1;
  memset(m + x->members_cap, 0, (n - x->members_cap) * sizeof *m);
  x->members = m;
  x->members_cap = n;
  return 0;
}

/* Call fn for the category and each of its ancestors ("A/B/C", "A/B",
   "A"), deepest first, with the id of each level (interned on the way when
   `create`).  Stops early when fn returns nonzero. */
static int each_level(idx *x, uint32_t cat, int create,
                      int (*fn)(idx *x, uint32_t level, void *ud), void *ud) {
  const char *path = intern_name(&x->categories, cat);
  if (!path) return 0;
  char buf[512];
  snprintf(buf, sizeof buf, "%s", path);
  for (;;) {
    uint32_t id = create ? intern_put(&x->categories, buf)
                         : intern_get(&x->categories, buf);
    if (id == INTERN_NONE && create) return -1;
    if (id != INTERN_NONE) {
      int rc = fn(x, id, ud);
      if (rc) return rc;
    }
    char *slash = strrchr(buf, '/');
    if (!slash) return 0;
    *slash = '\0';
  }
}

static int add_member(idx *x, uint32_t level, void *ud) {
  uint32_t item = *(uint32_t *)ud;
  if (members_grow(x, level)) return -1;
  return idx_ids_push(&x->members[level], item);
}

static int remove_member(idx *x, uint32_t level, void *ud) {
  if (level < x->members_cap) idx_ids_remove(&x->members[level], *(uint32_t *)ud);
  return 0;
}

int idx_content_update(idx *x, uint32_t item, uint32_t old_category) {
  if (old_category != INTERN_NONE)
    each_level(x, old_category, 0, remove_member, &item);
  uint32_t cat = x->item[item].category;
  return cat == INTERN_NONE ? 0 : each_level(x, cat, 1, add_member, &item);
}

/* Depth of a path: 1 + the number of '/'. */
static int depth_of(const char *p) {
  int d = 1;
  for (; *p; p++) d += *p == '/';
  return d;
}

/* Levels two paths share ("A/B/C" and "A/B/D" share 2). */
static int shared_depth(const char *a, const char *b) {
  int d = 0;
  for (;;) {
    size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
    if (la != lb || strncmp(a, b, la) != 0) return d;
    d++;
    if (!a[la] || !b[lb]) return d;
    a += la + 1;
    b += lb + 1;
  }
}

void idx_content_anchor_init(idx_content_anchor *a, const idx *x, uint32_t i) {
  a->it = &x->item[i];
  a->path = intern_name(&x->categories, a->it->category);
  a->depth = a->path ? depth_of(a->path) : 0;
  memset(a->memo, 0, sizeof a->memo);
}

static double category_term(idx_content_anchor *a, const idx *x, uint32_t cat) {
  if (!a->path || cat == INTERN_NONE) return 0;
  uint32_t slot = (cat * 2654435761u) >> (32 - IDX_CAT_MEMO_BITS);
  if (a->memo[slot].cat == cat + 1) return a->memo[slot].term;
  const char *cb = intern_name(&x->categories, cat);
  double term = 0;
  if (cb) {
    int db = depth_of(cb);
    term = IDX_CONTENT_W_CATEGORY * shared_depth(a->path, cb) / (a->depth > db ? a->depth : db);
  }
  a->memo[slot].cat = cat + 1;
  a->memo[slot].term = term;
  return term;
}

double idx_content_anchor_score(idx_content_anchor *a, const idx *x, uint32_t j) {
  const idx_item *ai = a->it, *b = &x->item[j];
  double s = category_term(a, x, b->category);
  if (ai->brand != INTERN_NONE && ai->brand == b->brand) s += IDX_CONTENT_W_BRAND;
  if (ai->ntags && b->ntags) {
    int common = 0;
    for (uint8_t t = 0; t < ai->ntags; t++) common += idx_ids_has(b->tags, b->ntags, ai->tags[t]);
    s += IDX_CONTENT_W_TAGS * common / (ai->ntags + b->ntags - common);
  }
  /* Within a factor of two (the log only then; a margin keeps the edge's
     rounding the formula's). */
  if (ai->price > 0 && b->price > 0 && ai->price < 2.01 * b->price && b->price < 2.01 * ai->price) {
    double r = fabs(log(ai->price / b->price)) / log(2.0);
    if (r < 1) s += IDX_CONTENT_W_PRICE * (1 - r);
  }
  return s;
}

double idx_content_score(const idx *x, uint32_t i, uint32_t j) {
  idx_content_anchor a;
  idx_content_anchor_init(&a, x, i);
  return idx_content_anchor_score(&a, x, j);
}

#define SEEN_SLOTS 1024 /* > 2 x IDX_CONTENT_CANDIDATES: a half-full set */

typedef struct similar_run {
  uint32_t anchor;
  idx_content_anchor a;
  const idx_filter *f;
  topk *h;
  size_t scored, examined;
  uint32_t seen[SEEN_SLOTS]; /* item + 1, 0 = empty */
} similar_run;

/* Items looked at, kept or not, before the widening stops: a category of
   sold-out items costs a bounded walk. */
#define SIMILAR_EXAMINED_MAX (20 * IDX_CONTENT_CANDIDATES)

/* Add an item to the set of scored ones; 0 when it was there already. */
static int seen_add(similar_run *r, uint32_t item) {
  uint32_t i = (item * 2654435761u) & (SEEN_SLOTS - 1);
  while (r->seen[i]) {
    if (r->seen[i] == item + 1) return 0;
    i = (i + 1) & (SEEN_SLOTS - 1);
  }
  r->seen[i] = item + 1;
  return 1;
}

/* Score the items of one category level; stop widening once enough were
   scored.  A parent level lists the deeper level's items again: the seen
   set skips them. */
static int score_level(idx *x, uint32_t level, void *ud) {
  similar_run *r = ud;
  if (level >= x->members_cap) return 0;
  const idx_ids *m = &x->members[level];
  for (uint32_t e = 0; e < m->n && r->scored < IDX_CONTENT_CANDIDATES &&
                      r->examined < SIMILAR_EXAMINED_MAX;
       e++) {
    if (e + 8 < m->n) idx_item_prefetch(x, m->v[e + 8]);
    uint32_t j = m->v[e];
    r->examined++;
    /* The filter first: the seen set holds scored items only (at most
       IDX_CONTENT_CANDIDATES, under half its slots), never the rejected,
       which filled it and left its probe looping for ever. */
    if (j == r->anchor || x->item[j].deleted || !idx_keep(x, r->f, j) || !seen_add(r, j))
      continue;
    r->scored++;
    topk_push(r->h, j, r->anchor, idx_content_anchor_score(&r->a, x, j));
  }
  return r->scored >= IDX_CONTENT_CANDIDATES || r->examined >= SIMILAR_EXAMINED_MAX;
}

size_t idx_similar(const idx *x, uint32_t anchor, const idx_filter *f,
                   size_t k, topk_entry *out) {
  if (anchor >= x->items.n || x->item[anchor].category == INTERN_NONE) return 0;
  topk h;
  topk_init(&h, out, k);
  similar_run r = {.anchor = anchor, .f = f, .h = &h};
  idx_content_anchor_init(&r.a, x, anchor);
  /* Reading only: levels are looked up, never created. */
  each_level((idx *)x, x->item[anchor].category, 0, score_level, &r);
  return topk_sorted(&h);
}
