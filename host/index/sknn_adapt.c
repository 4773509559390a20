/*
** sknn_adapt.c: what the index can tell about its own shop, for defaults
** that fit a shop that never tuned and for the re-ranker's features: how
** often a session's next item is one it already viewed (the repeat
** profile and the transition check) and how recently an item was seen.
*/
#include "index/sknn_internal.h"

#include <stdio.h>
#include <string.h>

#include "tailor.h"

/* Decays of the repeat boost the profile tries, in items; the last one is
** "no decay" (the boost is then the item's count in the prefix, S-POP's
** order). */
static const double profile_decays[] = {1, 2, 4, 8, 16, 32, 64, 0};
#define NDECAYS (sizeof profile_decays / sizeof *profile_decays)
/* Prefix items the profile looks back over, per position. */
#define PROFILE_WINDOW 32

/*
** For position i of a session (items[0..i) the prefix, items[i] the next,
** already in the prefix): the reciprocal rank of the next item among the
** prefix's distinct items (the last PROFILE_WINDOW of them) ordered by
** their repeat boost under decay d; ties share the worse rank.
*/
static double repeat_rr(const uint32_t *items, uint32_t i, double d) {
  uint32_t from = i > PROFILE_WINDOW ? i - PROFILE_WINDOW : 0;
  double boost[PROFILE_WINDOW], target = 0;
  uint32_t ids[PROFILE_WINDOW], n = 0;
  for (uint32_t j = from; j < i; j++) {
    double b = decay((double)(i - 1 - j), d);
    uint32_t k = 0;
    while (k < n && ids[k] != items[j]) k++;
    if (k == n) {
      ids[n] = items[j];
      boost[n++] = 0;
    }
    boost[k] += b;
    if (items[j] == items[i]) target += b;
  }
  if (target <= 0) return 0;
  uint32_t rank = 0;
  for (uint32_t k = 0; k < n; k++) rank += boost[k] >= target;
  return rank ? 1.0 / rank : 0;
}

/*
** The transition check (sknn.h): how well tailor's defaults, adjusted by
** the repeat rule, rank each next item of the latest sessions at the
** default transition weight and at each choice.  Each session is left out
** of its own queries (params.held_out), so what it did itself counts
** neither as a neighbour nor as a transition: the figures are those of a
** visitor the index has not seen, as on a validation split.  Up to 4
** positions a session, spread over its first SKNN_TRANS_PREFIX items,
** newest sessions first, until SKNN_TRANS_QUERIES.  Deterministic (no
** clock, no randomness), so every node of a shared log that fitted at one
** position picks alike.
*/
static int trans_check(const sknn_index *x, uint32_t live, sknn_repeat_profile *r,
                       int (*pause)(void *), void *ud) {
  static const double choices[] = SKNN_TRANS_CHOICES;
  enum { NCHOICES = sizeof choices / sizeof *choices, K = 20, POSITIONS = 4 };
  sknn_params p[1 + NCHOICES];
  sknn_params_default(&p[0], SKNN_TAILOR);
  sknn_params_adapt(&p[0], r); /* the repeat rule only: r->trans is 0 */
  for (int c = 1; c <= NCHOICES; c++) {
    p[c] = p[0];
    p[c].trans = choices[c - 1];
  }
  sknn_work *w = sknn_work_new();
  if (!w) return TAILOR_ENOMEM;
  double mrr[1 + NCHOICES] = {0}, hit[1 + NCHOICES] = {0};
  uint32_t queries = 0, newest = x->next_seq;
  for (uint32_t back = 1; back <= live && queries < SKNN_TRANS_QUERIES; back++) {
    /* Between sessions (all of a session's queries ask every weight, so
       the weights still see the same queries). */
    if (pause && back > 1 && pause(ud)) {
      sknn_work_free(w);
      return TAILOR_EINVAL;
    }
    uint32_t seq = newest - back;
    const sess *s = sess_get(x, seq);
    if (!s) break;
    if (s->n < 2) continue;
    const uint32_t *items = sess_items(s);
    /* Long sessions are asked within their first items: a query's cost
       grows with its prefix, and the check runs at every refit. */
    uint32_t len = s->n < SKNN_TRANS_PREFIX ? s->n : SKNN_TRANS_PREFIX;
    uint32_t npos = len - 1 < POSITIONS ? len - 1 : POSITIONS;
    for (uint32_t j = 0; j < npos && queries < SKNN_TRANS_QUERIES; j++) {
      uint32_t at = 1 + j * (len - 1) / npos; /* prefix items[0..at), next items[at] */
      queries++;
      for (int c = 0; c <= NCHOICES; c++) {
        topk_entry out[K];
        p[c].held_out = seq + 1;
        int got = sknn_query(x, items, at, &p[c], w, out, K);
        if (got < 0) {
          sknn_work_free(w);
          return got;
        }
        for (int i = 0; i < got; i++)
          if (out[i].id == items[at]) {
            mrr[c] += 1.0 / (i + 1);
            hit[c] += 1;
            break;
          }
      }
    }
  }
  sknn_work_free(w);
  r->trans_queries = queries;
  int best = 0;
  for (int c = 0; c <= NCHOICES; c++) {
    r->trans_mrr[c] = queries ? mrr[c] / queries : 0;
    r->trans_hit[c] = queries ? hit[c] / queries : 0;
    if (mrr[c] > mrr[best]) best = c;
  }
  r->trans = 0;
  if (best && queries >= SKNN_TRANS_MIN_QUERIES && mrr[best] >= SKNN_TRANS_GAIN * mrr[0] &&
      hit[best] >= hit[0])
    r->trans = choices[best - 1];
  return 0;
}

int sknn_repeat_profile_get(const sknn_index *x, uint32_t sessions,
                            sknn_repeat_profile *r) {
  return sknn_repeat_profile_paused(x, sessions, r, NULL, NULL);
}

int sknn_repeat_profile_paused(const sknn_index *x, uint32_t sessions, sknn_repeat_profile *r,
                               int (*pause)(void *ud), void *ud) {
  if (!x || !r) return TAILOR_EINVAL;
  memset(r, 0, sizeof *r);
  double rr[NDECAYS] = {0};
  uint32_t live = x->next_seq < sessions ? x->next_seq : sessions;
  for (uint32_t back = 1; back <= live; back++) {
    const sess *s = sess_get(x, x->next_seq - back);
    if (!s) break;
    const uint32_t *items = sess_items(s);
    for (uint32_t i = 1; i < s->n; i++) {
      r->pairs++;
      uint32_t from = i > PROFILE_WINDOW ? i - PROFILE_WINDOW : 0, j = from;
      while (j < i && items[j] != items[i]) j++;
      if (j == i) continue;
      r->repeats++;
      for (size_t k = 0; k < NDECAYS; k++)
        rr[k] += repeat_rr(items, i, profile_decays[k]);
    }
  }
  r->share = r->pairs ? (double)r->repeats / (double)r->pairs : 0;
  size_t best = 0;
  for (size_t k = 1; k < NDECAYS; k++)
    if (rr[k] > rr[best]) best = k;
  r->decay = profile_decays[best];
  return trans_check(x, live, r, pause, ud);
}

/*
** The rule (docs/evaluation.md, "Defaults that fit the shop"): the
** defaults were chosen where about a fifth of the next items were already
** in the session.  Where at least SKNN_REPEAT_HEAVY of them are, the
** session's own items are the best guess, and the order among them is
** what matters: the repeat boost takes the decay that ordered the past
** repeats best (0, no decay, is S-POP's order by count), never a shorter
** one than the default, and a weight of at least SKNN_REPEAT_HEAVY_BOOST,
** which puts the session's items ahead of the neighbours' (neighbour
** scores are at most 1) the way S-POP does, while items outside the
** session still come from the neighbours, not from global popularity.
** tests/c/test_tune.c shows it on a generated shop with 58% repeats: the
** shipped defaults lose to S-POP by 7 points of P@20, the adjusted ones
** beat it on P@20 and MRR@20.
**
** The second rule: the transition weight the transition check picked
** (above), when a choice ranked the held-out next items at least
** SKNN_TRANS_GAIN times better by MRR@20 and no worse by HR@20 than the
** default's weight.  Where visitors walk on in order (the next item
** follows the last one as it followed it for others: a catalogue browsed
** page by page, a series) the transitions know more than the neighbours;
** on Diginetica they do not, and the default stays.
*/
int sknn_params_adapt(sknn_params *p, const sknn_repeat_profile *r) {
  if (!p || !r || p->kernel != SKNN_TAILOR) return 0;
  int changed = 0;
  if (r->pairs >= SKNN_ADAPT_MIN_PAIRS && r->share >= SKNN_REPEAT_HEAVY) {
    if (r->decay <= 0 || r->decay > p->repeat_decay) p->repeat_decay = r->decay;
    if (p->repeat < SKNN_REPEAT_HEAVY_BOOST) p->repeat = SKNN_REPEAT_HEAVY_BOOST;
    changed |= SKNN_ADAPTED_REPEAT;
  }
  /* The transition check's pick (sknn_repeat_profile_get), made at these
     adjusted defaults. */
  if (r->trans > 0 && r->trans != p->trans) {
    p->trans = r->trans;
    changed |= SKNN_ADAPTED_TRANS;
  }
  return changed;
}

const char *sknn_adapted_name(int adapted) {
  switch (adapted) {
  case SKNN_ADAPTED_REPEAT: return "repeat-heavy";
  case SKNN_ADAPTED_TRANS: return "sequential";
  case SKNN_ADAPTED_REPEAT | SKNN_ADAPTED_TRANS: return "repeat-heavy, sequential";
  default: return "";
  }
}

size_t sknn_repeat_profile_format(const sknn_repeat_profile *r, char *buf, size_t cap) {
  static const double choices[] = SKNN_TRANS_CHOICES;
  int n = snprintf(buf, cap,
                   "%.0f%% of next items repeat the session; transition check, MRR@20 over %u "
                   "held-out queries: %.2f at the default weight, %.2f at %g, %.2f at %g",
                   100 * r->share, r->trans_queries, 100 * r->trans_mrr[0],
                   100 * r->trans_mrr[1], choices[0], 100 * r->trans_mrr[2], choices[1]);
  return n < 0 ? 0 : (size_t)n;
}

void sknn_item_recency(const sknn_index *x, uint32_t e, uint32_t window,
                       uint32_t *age, uint32_t *recent) {
  *age = UINT32_MAX;
  *recent = 0;
  if (e >= x->nitems || x->item[e].n == 0) return;
  const item *it = &x->item[e];
  *age = x->next_seq - post_recent(it, 0);
  /* Entries are in arrival order: the count within the window by a
  ** binary search on the ring. */
  uint32_t lo = 0, hi = it->n; /* entries [0, lo) are within the window */
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (x->next_seq - post_recent(it, mid) <= window) lo = mid + 1;
    else hi = mid;
  }
  *recent = lo;
}

uint32_t sknn_item_held(const sknn_index *x, uint32_t e) {
  return e < x->nitems ? x->item[e].n : 0;
}
