/*
** attrib.c: revenue attribution kept as events are applied (index.h,
** "Revenue attribution"): impressions and clicks by group and day, each
** person's last click, each order with the click before it, and what
** idx_attribution_report sums from them for the console's revenue page.
**
** The groups and the orders are owned by idx.attrib; the last clicks live
** in the people's and the sessions' records.  Everything here is cheap
** per event (a few comparisons, an append) and a report is one pass over
** the orders, the groups' days and the sessions, without the event log.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "index/internal.h"

static const char *const source_names[IDX_ATTRIB_SOURCES] = {"recommendation", "popup",
                                                             "email"};

const char *idx_attrib_source_name(idx_attrib_source s) {
  return (unsigned)s < IDX_ATTRIB_SOURCES ? source_names[s] : "?";
}

void idx_attrib_free(idx_attrib *a) {
  for (uint32_t i = 0; a->groups && i < a->ngroups; i++) free(a->groups[i].days);
  free(a->groups);
  free(a->orders);
  intern_free(&a->names);
  memset(a, 0, sizeof *a);
}

/* What an event is to attribution: 0 nothing, 1 an impression, 2 a click,
   3 an order; *src the source of a touch. */
static int kind_of(ev_type type, idx_attrib_source *src) {
  switch (type) {
    case EV_REC_SHOWN: *src = IDX_ATTRIB_RECOMMENDATION; return 1;
    case EV_POPUP_SHOWN: *src = IDX_ATTRIB_POPUP; return 1;
    case EV_REC_CLICKED: *src = IDX_ATTRIB_RECOMMENDATION; return 2;
    case EV_POPUP_CLICKED: *src = IDX_ATTRIB_POPUP; return 2;
    case EV_EMAIL_CLICKED: *src = IDX_ATTRIB_EMAIL; return 2;
    case EV_PURCHASE: return 3;
    default: return 0;
  }
}

/* A name ("-" for none) into buf, cut where the log scan cut it and, a
   character cut there, before it: the console prints the names as JSON
   strings, which must be UTF-8 (a name that is not was a group missing
   from the page, its orders still in the totals). */
static const char *name_cut(char buf[64], const char *s) {
  snprintf(buf, 64, "%s", s && *s ? s : "-");
  return util_utf8_cut(buf);
}

static uint32_t find_group(const idx_attrib *a, uint8_t source, uint32_t strategy,
                           uint32_t widget) {
  for (uint32_t i = 0; i < a->ngroups; i++)
    if (a->groups[i].source == source && a->groups[i].strategy == strategy &&
        a->groups[i].widget == widget)
      return i;
  return INTERN_NONE;
}

/* The group of (source, strategy, widget), made when new; past
   IDX_ATTRIB_MAX_GROUPS less one per source, the source's "(other)"
   group.  Names are kept only for the groups made: past the cap, a shop
   that puts an id in its widgets' names would otherwise add one to
   idx_attrib.names (and the checkpoint) per event.  INTERN_NONE when out
   of memory. */
static uint32_t group_of(idx_attrib *a, idx_attrib_source source, const char *strategy,
                         const char *widget) {
  char sb[64], wb[64];
  const char *sn = name_cut(sb, strategy), *wn = name_cut(wb, widget);
  uint32_t s = intern_get(&a->names, sn), w = intern_get(&a->names, wn);
  uint32_t g = s != INTERN_NONE && w != INTERN_NONE ? find_group(a, (uint8_t)source, s, w)
                                                   : INTERN_NONE;
  if (g != INTERN_NONE) return g;
  if (!a->groups && !(a->groups = calloc(IDX_ATTRIB_MAX_GROUPS, sizeof *a->groups)))
    return INTERN_NONE;
  if (a->ngroups >= IDX_ATTRIB_MAX_GROUPS - IDX_ATTRIB_SOURCES) {
    s = w = intern_put(&a->names, "(other)");
    if (s == INTERN_NONE) return INTERN_NONE;
    g = find_group(a, (uint8_t)source, s, w);
    if (g != INTERN_NONE) return g;
  } else {
    s = intern_put(&a->names, sn);
    w = intern_put(&a->names, wn);
    if (s == INTERN_NONE || w == INTERN_NONE) return INTERN_NONE;
  }
  idx_attrib_group *n = &a->groups[a->ngroups];
  memset(n, 0, sizeof *n);
  n->source = (uint8_t)source;
  n->strategy = s;
  n->widget = w;
  return a->ngroups++;
}

/* The group's counters of `day`, made when new (days are kept ascending:
   events mostly arrive in time order, so this is nearly always the last
   one).  NULL when out of memory. */
static idx_attrib_day *day_of(idx_attrib_group *g, int32_t day) {
  uint32_t at = g->ndays;
  while (at && g->days[at - 1].day > day) at--;
  if (at && g->days[at - 1].day == day) return &g->days[at - 1];
  if (g->ndays == g->cap) {
    uint32_t cap = g->cap ? g->cap * 2 : 8;
    idx_attrib_day *more = realloc(g->days, cap * sizeof *more);
    if (!more) return NULL;
    g->days = more;
    g->cap = cap;
  }
  memmove(g->days + at + 1, g->days + at, (g->ndays - at) * sizeof *g->days);
  g->ndays++;
  g->days[at] = (idx_attrib_day){day, 0, 0};
  return &g->days[at];
}

static int32_t utc_day(int64_t ts) {
  return (int32_t)(ts >= 0 ? ts / IDX_DAY_MS : (ts - IDX_DAY_MS + 1) / IDX_DAY_MS);
}

int idx_attrib_apply(idx *x, uint32_t pid, uint32_t sid, const ev *e) {
  idx_attrib_source src = IDX_ATTRIB_RECOMMENDATION;
  int kind = kind_of(e->type, &src);
  if (!kind) return 0;
  idx_attrib *a = &x->attrib;
  idx_person *p = pid == INTERN_NONE ? NULL : &x->person[pid];
  idx_session *s = sid == INTERN_NONE || sid >= x->session_cap ? NULL : &x->session[sid];
  /* The last click is the person's; an event naming only a session keeps
     it in the session. */
  int64_t *click_ts = p ? &p->click_ts : s ? &s->click_ts : NULL;
  uint32_t *click_group = p ? &p->click_group : s ? &s->click_group : NULL;
  if (kind == 3) {
    double r = e->has_revenue && isfinite(e->revenue) && e->revenue > 0 ? e->revenue : 0;
    if (a->norders == a->orders_cap) {
      uint64_t cap = a->orders_cap ? a->orders_cap * 2 : 1024;
      idx_attrib_order *more = realloc(a->orders, cap * sizeof *more);
      if (!more) return -1;
      a->orders = more;
      a->orders_cap = cap;
    }
    int clicked = click_ts && *click_ts && *click_ts <= e->ts;
    a->orders[a->norders++] = (idx_attrib_order){
        e->ts, clicked ? e->ts - *click_ts : -1, r, clicked ? *click_group : 0};
    return 0;
  }
  if (s && e->ts > s->touched) s->touched = e->ts;
  const char *strategy = ev_attr_get(e, "strategy");
  uint32_t g = group_of(a, src, strategy, e->name);
  if (g == INTERN_NONE) return -1;
  idx_attrib_day *d = day_of(&a->groups[g], utc_day(e->ts));
  if (!d) return -1;
  if (kind == 1) {
    d->shown++;
    return 0;
  }
  d->clicks++;
  if (click_ts && e->ts >= *click_ts) {
    *click_ts = e->ts;
    *click_group = g;
  }
  return 0;
}

void idx_attribution_report(const idx *x, int64_t window_ms, int64_t since,
                            idx_attribution *out) {
  memset(out, 0, sizeof *out);
  const idx_attrib *a = &x->attrib;
  int32_t first = utc_day(since);
  since = (int64_t)first * IDX_DAY_MS;
  uint64_t orders[IDX_ATTRIB_MAX_GROUPS] = {0};
  double revenue[IDX_ATTRIB_MAX_GROUPS] = {0};
  for (uint64_t i = 0; i < a->norders; i++) {
    const idx_attrib_order *o = &a->orders[i];
    if (o->ts < since) continue;
    out->orders++;
    out->revenue += o->revenue;
    if (o->gap < 0 || o->gap > window_ms || o->group >= a->ngroups) continue;
    out->attributed_orders++;
    out->attributed_revenue += o->revenue;
    orders[o->group]++;
    revenue[o->group] += o->revenue;
  }
  for (uint32_t g = 0; g < a->ngroups; g++) {
    const idx_attrib_group *gr = &a->groups[g];
    uint64_t shown = 0, clicks = 0;
    for (uint32_t d = gr->ndays; d-- > 0 && gr->days[d].day >= first;) {
      shown += gr->days[d].shown;
      clicks += gr->days[d].clicks;
    }
    if (!shown && !clicks && !orders[g]) continue;
    out->rows[out->nrows++] = (idx_attrib_row){
        (idx_attrib_source)gr->source, intern_name(&a->names, gr->strategy),
        intern_name(&a->names, gr->widget), shown, clicks, orders[g], revenue[g]};
  }
  /* Sessions with an event in the period: their latest is in it.  An
     erased session's record is zeroed. */
  for (uint32_t i = 0; i < x->sessions.n && i < x->session_cap; i++) {
    const idx_session *s = &x->session[i];
    if (!s->last_ts || s->last_ts < since) continue;
    out->sessions++;
    if (s->touched && s->touched >= since) out->personalized_sessions++;
  }
}
