/*
** pairs.c: complements and substitutes, learned from the shop's own data,
** and how long a bought item keeps its substitutes away.
**
**   complements  bought together: the co-purchase count of the pair is
**                more than IDX_COMPLEMENT_MIN_SUPPORT, and either its lift
**                (how much more often than chance) is at least
**                IDX_COMPLEMENT_MIN_LIFT or it reaches
**                IDX_COMPLEMENT_MIN_BOTH of the purchases of the more
**                bought of the two (in a small shop where one item is in
**                most orders, lift cannot reach 2: "most jackets sell with
**                a hat" is the evidence then).  Pairs across one
**                customer's orders count at IDX_DEFAULT_CROSS_ORDER (half
**                an order; not a config key) each, so customers who bought a jacket and,
**                months later, a sofa reach neither: their pair is about
**                as frequent as chance, and half an order a customer is
**                never half of the jackets' sales unless every jacket
**                buyer came back for a sofa.  A sofa does not turn up on
**                a jacket page.
**   substitutes  looked at instead of each other: viewed in the same
**                sessions (co-view count more than
**                IDX_SUBSTITUTE_MIN_COVIEW) and rarely bought together
**                (co-purchase lift below IDX_SUBSTITUTE_MAX_LIFT, chance);
**                and, where nobody compared them yet, items of the same
**                category, priced within IDX_SUBSTITUTE_PRICE_RATIO of
**                each other, that the data does not show to be complements
**                (the prior: a second sofa is a substitute of the first;
**                a cushion filed with the sofas is not).
**   replacement  when a customer buys in a category they bought in before
**                (another item, or the same again a day or more later),
**                the gap is learned for the category; with
**                IDX_REPLACE_MIN_REPEATS gaps its mean is the category's
**                replacement interval, else DEF_REPLACEMENT_DAYS.
**
** The purchase times (idx_person.bought_at) and the gaps (idx.repeat) are
** state: applied here, checkpointed by checkpoint.c.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/defaults.h"
#include "index/internal.h"

#define DAY_MS 86400000.0

/* ---- Purchase times and replacement intervals ------------------------- */

static int64_t bought_at(const idx_person *p, uint32_t pos) {
  return pos < p->bought_at_n ? p->bought_at[pos] : 0;
}

static int set_bought_at(idx_person *p, uint32_t pos, int64_t ts) {
  if (pos >= p->bought_at_n) {
    int64_t *v = realloc(p->bought_at, (pos + 1) * sizeof *v);
    if (!v) return -1;
    memset(v + p->bought_at_n, 0, (pos + 1 - p->bought_at_n) * sizeof *v);
    p->bought_at = v;
    p->bought_at_n = pos + 1;
  }
  p->bought_at[pos] = ts;
  return 0;
}

static uint32_t bought_pos(const idx_person *p, uint32_t item) {
  for (uint32_t i = 0; i < p->bought.n; i++)
    if (p->bought.v[i] == item) return i;
  return UINT32_MAX;
}

int idx_bought_stamp(idx *x, uint32_t person, uint32_t item, int64_t ts) {
  idx_person *p = &x->person[person];
  uint32_t pos = bought_pos(p, item);
  if (pos == UINT32_MAX) return 0;
  uint32_t cat = x->item[item].category;
  if (cat != INTERN_NONE) {
    /* The latest earlier purchase in the same category, a day or more ago
       (two colours of one sock in one order are not a replacement). */
    int64_t prev = 0;
    for (uint32_t i = 0; i < p->bought.n; i++) {
      int64_t t = bought_at(p, i);
      if (t && t > prev && ts - t >= (int64_t)DAY_MS && x->item[p->bought.v[i]].category == cat)
        prev = t;
    }
    if (prev) {
      if (cat >= x->repeat_cap) {
        uint32_t n = x->repeat_cap ? x->repeat_cap : 64;
        while (n <= cat) n *= 2;
        idx_repeat *r = realloc(x->repeat, n * sizeof *r);
        if (!r) return -1;
        memset(r + x->repeat_cap, 0, (n - x->repeat_cap) * sizeof *r);
        x->repeat = r;
        x->repeat_cap = n;
      }
      x->repeat[cat].days += (double)(ts - prev) / DAY_MS;
      x->repeat[cat].n++;
    }
  }
  return bought_at(p, pos) > ts ? 0 : set_bought_at(p, pos, ts);
}

int idx_bought_merge(idx_person *into, const idx_person *from) {
  for (uint32_t i = 0; i < from->bought.n; i++) {
    int64_t t = bought_at(from, i);
    uint32_t pos = bought_pos(into, from->bought.v[i]);
    if (t && pos != UINT32_MAX && t > bought_at(into, pos) && set_bought_at(into, pos, t))
      return -1;
  }
  return 0;
}

int64_t idx_bought_time(const idx_person *p, uint32_t item) {
  uint32_t pos = bought_pos(p, item);
  return pos == UINT32_MAX ? 0 : bought_at(p, pos);
}

double idx_replacement_days(const idx *x, uint32_t item, int *learned) {
  uint32_t cat = item < x->items.n ? x->item[item].category : INTERN_NONE;
  const idx_repeat *r = cat != INTERN_NONE && cat < x->repeat_cap ? &x->repeat[cat] : NULL;
  int ok = r && r->n >= IDX_REPLACE_MIN_REPEATS;
  if (learned) *learned = ok;
  return ok ? r->days / r->n : DEF_REPLACEMENT_DAYS;
}

/* ---- Complements and substitutes -------------------------------------- */

double idx_decayed_orders(const idx *x, int64_t now) {
  /* Both sums are kept as events arrive: a decision must not walk the
     catalog (this runs for every co-purchase kernel call). */
  const cooc *c = &x->copurchase;
  double lines = c->sum, bought = (double)x->order_lines;
  if (!x->orders_seen || bought <= 0) return 0;
  /* Decayed order lines over the mean lines per order (lifetime). */
  double basket = bought / (double)x->orders_seen;
  return lines * decay_scale(&c->d, now) / (basket > 1 ? basket : 1);
}

/* The lift of a pair of count c and totals ni, nj; `orders` from above. */
static double lift_from(double c, double orders, double ni, double nj) {
  return c > 0 && ni > 0 && nj > 0 ? c * orders / (ni * nj) : 0;
}

/* The co-purchase count and lift of a pair. */
static double lift_of(const idx *x, uint32_t i, uint32_t j, double orders, int64_t now,
                      double *count) {
  double c = cooc_count(&x->copurchase, i, j, now);
  if (count) *count = c;
  return lift_from(c, orders, cooc_total(&x->copurchase, i, now),
                   cooc_total(&x->copurchase, j, now));
}

void idx_complement_params(const idx *x, int64_t now, cooc_params *p) {
  p->min_count = IDX_COMPLEMENT_MIN_SUPPORT;
  p->min_lift = IDX_COMPLEMENT_MIN_LIFT;
  p->min_both = IDX_COMPLEMENT_MIN_BOTH;
  p->orders = idx_decayed_orders(x, now);
}

/* The complement test of a pair of totals ni and nj whose count and lift
   are known. */
static int complement_of(double c, double lift, double ni, double nj) {
  return c > IDX_COMPLEMENT_MIN_SUPPORT &&
         (lift >= IDX_COMPLEMENT_MIN_LIFT || c >= IDX_COMPLEMENT_MIN_BOTH * (ni > nj ? ni : nj));
}

static int complement(const idx *x, uint32_t i, uint32_t j, double c, double lift, int64_t now) {
  return complement_of(c, lift, cooc_total(&x->copurchase, i, now),
                       cooc_total(&x->copurchase, j, now));
}

int idx_complementary(const idx *x, uint32_t i, uint32_t j, int64_t now) {
  double c, lift = lift_of(x, i, j, idx_decayed_orders(x, now), now, &c);
  return complement(x, i, j, c, lift, now);
}

size_t idx_substitutes(const idx *x, uint32_t anchor, const idx_filter *f, int64_t now,
                       size_t k, topk_entry *out) {
  topk h;
  topk_init(&h, out, k);
  if (anchor >= x->items.n) return 0;
  double orders = idx_decayed_orders(x, now);
  /* Learned: viewed in the same sessions, rarely bought together. */
  const cooc *v = &x->coview;
  if (anchor < v->nitems) {
    const cooc_list *l = &v->lists[anchor];
    double s = decay_scale(&v->d, now), ni = v->total[anchor] * s;
    const float *lw = cooc_w(l);
    for (uint16_t e = 0; e < l->n; e++) {
      uint32_t j = l->id[e];
      double c = lw[e] * s, nj = v->total[j] * s;
      if (c <= IDX_SUBSTITUTE_MIN_COVIEW || ni <= 0 || nj <= 0) continue;
      double bought, lift = lift_of(x, anchor, j, orders, now, &bought);
      if ((lift >= IDX_SUBSTITUTE_MAX_LIFT && bought > IDX_COMPLEMENT_MIN_SUPPORT) ||
          complement(x, anchor, j, bought, lift, now))
        continue;
      if (!idx_keep(x, f, j)) continue;
      topk_push(&h, j, anchor, 1 + c / sqrt(ni * nj)); /* above every prior */
    }
  }
  /* The prior: the same category, unless the data says complement.  A
     category may list thousands: the anchor's side (its totals, the
     decay, its content) is worked out once, and the members are fetched
     ahead. */
  uint32_t cat = x->item[anchor].category;
  const idx_ids *m = cat != INTERN_NONE && cat < x->members_cap ? &x->members[cat] : NULL;
  const cooc *cp = &x->copurchase;
  double sp = decay_scale(&cp->d, now), ni = cooc_total(cp, anchor, now);
  double pa = x->item[anchor].price;
  idx_content_anchor content;
  if (m) idx_content_anchor_init(&content, x, anchor);
  for (uint32_t e = 0; m && e < m->n; e++) {
    if (e + 8 < m->n) idx_item_prefetch(x, m->v[e + 8]);
    uint32_t j = m->v[e];
    if (j == anchor || x->item[j].category != cat || !idx_keep(x, f, j)) continue;
    double pj = x->item[j].price;
    if (pa > 0 && pj > 0 && (pa > pj * IDX_SUBSTITUTE_PRICE_RATIO ||
                             pj > pa * IDX_SUBSTITUTE_PRICE_RATIO))
      continue; /* a cushion does not replace a sofa */
    /* lift_of and complement, with the scale and the anchor's total read
       once: the same products. */
    double c = cooc_count(cp, anchor, j, now);
    double nj = j < cp->nitems ? cp->total[j] * sp : 0;
    if (complement_of(c, lift_from(c, orders, ni, nj), ni, nj)) continue;
    int dup = 0;
    for (size_t r = 0; r < h.n && !dup; r++) dup = h.e[r].id == j;
    if (!dup) topk_push(&h, j, anchor, idx_content_anchor_score(&content, x, j));
  }
  return topk_sorted(&h);
}
