/*
** dryrun.c: `tailor check --sample N`.  Every handler of every strategy
** runs against N sample visitors: people from the store with some history,
** picked deterministically (spread evenly over the index, so customers
** and anonymous visitors both come up), or, when the store holds nobody,
** N generated ones.  What it finds: errors (with the file and line the
** strategy gave), reads of ctx.segments.<name> that no predicate defines
** (through lapi's segment hook, with where the strategy read it), and
** handlers that answered nothing for every visitor.
**
** Nothing is written.  Decisions go through eng_decide as a server makes
** them, so answers are checked as they are in production; the experiment
** exposures they record are dropped after each one.  on_event runs on one
** sample event of every type per visitor, and on_due on the rows those
** calls scheduled; their answers are checked here and thrown away.
*/
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "engine/dryrun.h"
#include "engine/engine.h"
#include "lua/ljson.h"

#define DRY_K 4              /* items asked of a recommend handler */
#define DRY_RANK_ITEMS 8     /* the list a rank handler orders */
#define DRY_MAX_DUE_ROWS 64  /* rows of on_event kept to try on_due with */

typedef struct visitor {
  char *customer, *anon, *session; /* any may be NULL, not all */
  char *item;                      /* an item they know, for pages and events */
  char *label;                     /* "customer c17" */
} visitor;

typedef struct dry {
  tailor *t;
  lvm *vm;
  eng_dry_report *rep;
  visitor *v;
  size_t nv;
  char **popular;         /* most viewed items, for rank and fallbacks */
  size_t npopular;
  const visitor *who;     /* the visitor of the running call */
  const char *label;      /* the running call: "recommend page=cart" */
  int hooked;             /* the running call read an undefined segment */
  json_t *due_rows;       /* rows on_event scheduled */
} dry;

/*
** ** The report
*/
static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static eng_dry_handler *tally(dry *d, const char *name, const char *where) {
  eng_dry_report *r = d->rep;
  for (size_t i = 0; i < r->n_handlers; i++)
    if (!strcmp(r->handlers[i].name, name)) return &r->handlers[i];
  eng_dry_handler *grown = realloc(r->handlers, (r->n_handlers + 1) * sizeof *grown);
  if (!grown) return NULL;
  r->handlers = grown;
  eng_dry_handler *h = &r->handlers[r->n_handlers++];
  memset(h, 0, sizeof *h);
  h->name = strdup(name);
  h->where = dup_or_null(where);
  return h;
}

/* One problem, counted once per distinct text and call. */
static void problem(dry *d, int kind, const char *text) {
  eng_dry_report *r = d->rep;
  for (size_t i = 0; i < r->n_problems; i++) {
    eng_dry_problem *p = &r->problems[i];
    if (p->kind == kind && !strcmp(p->text, text) && !strcmp(p->call, d->label)) {
      p->count++;
      return;
    }
  }
  eng_dry_problem *grown = realloc(r->problems, (r->n_problems + 1) * sizeof *grown);
  if (!grown) return;
  r->problems = grown;
  r->problems[r->n_problems++] = (eng_dry_problem){
      kind, strdup(d->label), strdup(text), strdup(d->who ? d->who->label : "-"), 1};
}

/* lapi's hook: a read of a segment no predicate defines. */
static void on_unknown_segment(void *ud, const char *name, const char *where) {
  dry *d = ud;
  char text[600];
  size_t n = strlen(where);
  while (n && (where[n - 1] == ' ' || where[n - 1] == ':')) n--;
  snprintf(text, sizeof text, "%.*s%sctx.segments.%s: no segment of that name "
           "(the segments table defines them)", (int)n, where, n ? ": " : "", name);
  problem(d, ENG_DRY_UNKNOWN_SEGMENT, text);
  d->hooked = 1;
}

/* A failed call: an error, unless it was the read of an undefined segment
   the hook already reported. */
static void failed(dry *d, eng_dry_handler *h, const char *message) {
  if (h) h->errors++;
  if (!d->hooked) problem(d, ENG_DRY_ERROR, message);
}

/* "file:line" where handler `name` is defined (line 0 for a table). */
typedef struct where_call {
  const char *name, *file;
  int line;
  char src[LUA_IDSIZE];
} where_call;

static int find_where(lua_State *L) {
  where_call *w = lvm_ud(L);
  lua_Debug ar;
  if (!lvm_push_handler(lvm_of(L), w->name, &w->file)) return 0;
  /* A handler may come from a module (recommend.lua returns lib/recs.lua's
     function): where it is defined is the module's line. */
  if (lua_isfunction(L, -1) && lua_getinfo(L, ">S", &ar) && ar.linedefined > 0) {
    w->line = ar.linedefined;
    snprintf(w->src, sizeof w->src, "%s", ar.short_src);
  }
  return 0;
}

static void handler_where(dry *d, const char *name, char *out, size_t n) {
  where_call w = {name, NULL, 0, ""};
  tailor_error e = {0};
  lvm_pcall(d->vm, find_where, &w, &e);
  if (w.line) snprintf(out, n, "%s:%d", w.src, w.line);
  else snprintf(out, n, "%s", w.file ? w.file : "?");
}

/*
** ** Sample visitors
*/
static void visitor_free(visitor *v) {
  free(v->customer);
  free(v->anon);
  free(v->session);
  free(v->item);
  free(v->label);
}

static const char *popular_item(dry *d, size_t i) {
  return d->npopular ? d->popular[i % d->npopular] : "dry-run-item";
}

static int has_history(const idx_person *p) {
  return p->recent.n || p->cart.n || p->bought.n || p->orders;
}

/* Up to n people with history, evenly spread over the index's order (the
   order they were first seen in the log: the same store, the same ones). */
static size_t pick_stored(dry *d, size_t n) {
  const idx *x = d->t->ix;
  size_t cand = 0, got = 0;
  for (uint32_t p = 0; p < x->people.n; p++)
    cand += x->person[p].canon == p && has_history(&x->person[p]);
  if (!cand) return 0;
  if (n > cand) n = cand;
  size_t seen = 0, next = 0;
  for (uint32_t p = 0; p < x->people.n && got < n; p++) {
    const idx_person *ps = &x->person[p];
    if (ps->canon != p || !has_history(ps)) continue;
    if (seen++ != next) continue;
    next = (got + 1) * cand / n;
    const char *key = intern_name(&x->people, p);
    visitor *v = &d->v[got++];
    char label[320];
    if (key[0] == 'c') v->customer = strdup(key + 2);
    else v->anon = strdup(key + 2);
    snprintf(label, sizeof label, "%s %s", key[0] == 'c' ? "customer" : "visitor", key + 2);
    v->label = strdup(label);
    if (ps->last_session)
      v->session = dup_or_null(intern_name(&x->sessions, ps->last_session - 1));
    const idx_ids *known = ps->recent.n ? &ps->recent : ps->cart.n ? &ps->cart : &ps->bought;
    v->item = known->n ? dup_or_null(intern_name(&x->items, known->v[known->n - 1])) : NULL;
    if (!v->item) v->item = strdup(popular_item(d, got));
  }
  return got;
}

/* n visitors nobody knows: every other one a customer. */
static size_t make_visitors(dry *d, size_t n) {
  for (size_t i = 0; i < n; i++) {
    visitor *v = &d->v[i];
    char id[64];
    snprintf(id, sizeof id, "dry-run-visitor-%zu", i + 1);
    v->anon = strdup(id);
    if (i % 2) {
      snprintf(id, sizeof id, "dry-run-customer-%zu", i + 1);
      v->customer = strdup(id);
    }
    v->label = strdup(v->customer ? v->customer : v->anon);
    v->item = strdup(popular_item(d, i));
  }
  return n;
}

/*
** ** Decisions, as served
*/
static const char *const triggers[] = {"exit_intent", "page_hidden", "time_on_page",
                                       "inactivity", "cart_value"};

/* The request of decision `kind` for visitor i, with `page` (may be NULL). */
static json_t *request_for(dry *d, size_t i, const char *kind, json_t *page) {
  const visitor *v = &d->v[i];
  json_t *q = json_pack("{ss si}", "kind", kind, "k", DRY_K);
  if (v->customer) json_object_set_new(q, "customer", json_string(v->customer));
  if (v->anon) json_object_set_new(q, "anon", json_string(v->anon));
  if (v->session) json_object_set_new(q, "session", json_string(v->session));
  /* Devices and popup triggers take turns over the visitors. */
  json_t *ctx = json_pack("{ss ss si si si}", "device", i % 3 == 1 ? "mobile" : "desktop",
                          "trigger", triggers[i % (sizeof triggers / sizeof *triggers)],
                          "hidden_seconds", 30, "seconds", 120, "cart_value", 500);
  json_object_set_new(q, "context", ctx);
  if (page) json_object_set_new(q, "page", page);
  if (!strcmp(kind, "rank")) {
    json_t *items = json_array();
    for (size_t k = 0; k < DRY_RANK_ITEMS && k < (d->npopular ? d->npopular : 1); k++)
      json_array_append_new(items, json_string(popular_item(d, k)));
    json_object_set_new(q, "items", items);
  }
  return q;
}

/* Whether an answer says nothing: null, [], {}, or an object of those. */
static int empty_value(json_t *v) {
  if (!v || json_is_null(v)) return 1;
  if (json_is_array(v)) return json_array_size(v) == 0;
  if (!json_is_object(v)) return 0;
  const char *k;
  json_t *m;
  json_object_foreach(v, k, m) if (!(json_is_array(m) || json_is_object(m)) || !empty_value(m)) return 0;
  return 1;
}

static void decide_one(dry *d, size_t i, const char *kind, const char *label, json_t *page,
                       eng_dry_handler *h) {
  json_t *q = request_for(d, i, kind, page);
  char *text = json_dumps(q, JSON_COMPACT);
  json_decref(q);
  char *resp = NULL;
  tailor_error e = {0};
  d->who = &d->v[i];
  d->label = label;
  d->hooked = 0;
  h->calls++;
  int rc = text ? tailor_decide(d->t, text, strlen(text), &resp, NULL, &e) : TAILOR_ENOMEM;
  json_t *a = rc == TAILOR_OK ? json_loads(resp, 0, NULL) : NULL;
  if (rc != TAILOR_OK) {
    failed(d, h, e.message);
  } else if (json_is_true(json_object_get(a, "fallback"))) {
    failed(d, h, json_string_value(json_object_get(a, "error")));
  } else if (empty_value(json_object_get(a, json_object_get(a, "items") ? "items" : "result"))) {
    h->empty++;
  }
  json_decref(a);
  tailor_free(resp);
  free(text);
}

/* The pages a recommend handler is asked about (the shipped ones know these). */
static void run_recommend(dry *d, const char *where) {
  static const char *const pages[] = {"home", "product", "cart", "category", "email"};
  for (size_t p = 0; p < sizeof pages / sizeof *pages; p++) {
    char label[64];
    snprintf(label, sizeof label, "recommend page=%s", pages[p]);
    eng_dry_handler *h = tally(d, label, where);
    for (size_t i = 0; h && i < d->nv; i++) {
      json_t *page = json_pack("{ss}", "type", pages[p]);
      const char *item = d->v[i].item;
      if (!strcmp(pages[p], "product")) json_object_set_new(page, "item", json_string(item));
      if (!strcmp(pages[p], "category")) {
        uint32_t id = idx_item_id(d->t->ix, item);
        const char *c = id == INTERN_NONE ? NULL
                                          : intern_name(&d->t->ix->categories,
                                                        d->t->ix->item[id].category);
        if (c) json_object_set_new(page, "category", json_string(c));
      }
      decide_one(d, i, "recommend", label, page, h);
    }
  }
}

/*
** ** Segments, on_event and on_due, run here
*/
typedef struct call {
  dry *d;
  const visitor *v;
  const char *name;  /* segment name */
  const char *file;  /* of the handler */
  int line;
  json_t *event;     /* on_event's event, on_due's row */
  json_t *names;     /* segment names, collected */
  int empty;
} call;

static void push_visitor_ctx(lua_State *L, call *c, const char *kind, json_t *context) {
  lapi_ctx x = {kind, DRY_K, c->v->customer, c->v->anon, c->v->session,
                NULL, context, NULL, NULL, 0};
  lapi_push_ctx(L, c->d->t, &x);
}

static int segment_names(lua_State *L) {
  call *c = lvm_ud(L);
  if (!lvm_push_handler(lvm_of(L), "segments", &c->file) || !lua_istable(L, -1)) return 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_isfunction(L, -1))
      json_array_append_new(c->names, json_string(lua_tostring(L, -2)));
    lua_pop(L, 1);
  }
  return 0;
}

static int segment_one(lua_State *L) {
  call *c = lvm_ud(L);
  push_visitor_ctx(L, c, "segments", NULL);
  lua_getfield(L, -1, "segments");
  lua_getfield(L, -1, c->name); /* runs the predicate */
  return 0;
}

static int names_cmp(const void *a, const void *b) {
  return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

/* Each predicate on its own, so one that fails does not hide the others. */
static void run_segments(dry *d, const char *where) {
  call c = {d, NULL, NULL, NULL, 0, NULL, json_array(), 0};
  tailor_error e = {0};
  lvm_pcall(d->vm, segment_names, &c, &e);
  size_t n = json_array_size(c.names);
  json_t **sorted = calloc(n ? n : 1, sizeof *sorted);
  for (size_t k = 0; sorted && k < n; k++) sorted[k] = json_array_get(c.names, k);
  if (sorted) qsort(sorted, n, sizeof *sorted, names_cmp);
  for (size_t k = 0; sorted && k < n; k++) {
    char label[300];
    snprintf(label, sizeof label, "segments.%s", json_string_value(sorted[k]));
    eng_dry_handler *h = tally(d, label, where);
    for (size_t i = 0; h && i < d->nv; i++) {
      c.v = d->who = &d->v[i];
      c.name = json_string_value(sorted[k]);
      d->label = label;
      d->hooked = 0;
      h->calls++;
      tailor_error se = {0};
      pthread_rwlock_rdlock(&d->t->lock);
      int rc = lvm_pcall(d->vm, segment_one, &c, &se);
      pthread_rwlock_unlock(&d->t->lock);
      if (rc) failed(d, h, se.message);
    }
  }
  free(sorted);
  json_decref(c.names);
}

static int check_fail(lua_State *L, call *c, const char *what) {
  return luaL_error(L, "%s:%d: %s returned %s", c->file ? c->file : "?", c->line,
                    c->name, what);
}

static void handler_line(lua_State *L, call *c) {
  lua_Debug ar;
  lua_pushvalue(L, -1);
  if (lua_getinfo(L, ">S", &ar)) c->line = ar.linedefined;
}

/* on_event(ctx, ev): nil, or {schedule = {{key =, template =, ...}}, cancel = {keys}}. */
static int on_event_one(lua_State *L) {
  call *c = lvm_ud(L);
  if (!lvm_push_handler(lvm_of(L), "on_event", &c->file)) return 0;
  handler_line(L, c);
  push_visitor_ctx(L, c, "on_event", json_object_get(c->event, "props"));
  ljson_push(L, c->event);
  lua_call(L, 2, 1);
  c->empty = lua_isnil(L, -1);
  if (c->empty) return 0;
  if (!lua_istable(L, -1)) check_fail(L, c, "something other than nil or a table");
  int res = lua_gettop(L);
  if (lua_getfield(L, res, "schedule") == LUA_TTABLE) {
    for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -1); i++) {
      lua_rawgeti(L, -1, i);
      if (!lua_istable(L, -1) || lua_getfield(L, -1, "key") != LUA_TSTRING ||
          lua_getfield(L, -2, "template") != LUA_TSTRING)
        check_fail(L, c, "a schedule entry without a 'key' and a 'template' string");
      char why[300];
      json_t *row = ljson_to(L, -3, "schedule", why, sizeof why);
      if (!row) check_fail(L, c, why);
      if (!json_object_get(row, "customer") && c->v->customer)
        json_object_set_new(row, "customer", json_string(c->v->customer));
      if (json_array_size(c->d->due_rows) < DRY_MAX_DUE_ROWS)
        json_array_append_new(c->d->due_rows, row);
      else
        json_decref(row);
      lua_pop(L, 3);
    }
  } else if (!lua_isnil(L, -1)) {
    check_fail(L, c, "a 'schedule' that is not a list");
  }
  if (lua_getfield(L, res, "cancel") == LUA_TTABLE) {
    for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -1); i++) {
      if (lua_rawgeti(L, -1, i) != LUA_TSTRING) check_fail(L, c, "a 'cancel' entry that is not a key");
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    check_fail(L, c, "a 'cancel' that is not a list of keys");
  }
  return 0;
}

/* One sample event of type `type` for visitor v. */
static json_t *sample_event(dry *d, size_t i, int type) {
  const visitor *v = &d->v[i];
  const char *name = ev_type_name(type);
  const char *item = v->item;
  uint32_t id = idx_item_id(d->t->ix, item);
  double price = id == INTERN_NONE ? 10 : d->t->ix->item[id].price;
  json_t *e = json_pack("{ss sI s{ss}}", "type", name, "ts", (json_int_t)util_now_ms(), "props",
                        "device", i % 3 == 1 ? "mobile" : "desktop");
  if (v->anon) json_object_set_new(e, "anon", json_string(v->anon));
  if (v->session) json_object_set_new(e, "session", json_string(v->session));
  if (v->customer) json_object_set_new(e, "customer", json_string(v->customer));
  switch (type) {
    case EV_ITEM_UPSERT: {
      const char *doc = id == INTERN_NONE ? NULL : d->t->ix->item[id].doc;
      json_t *o = doc ? json_loads(doc, 0, NULL) : NULL;
      if (!json_is_object(o)) json_decref(o), o = json_pack("{sf}", "price", price);
      json_object_set_new(o, "id", json_string(item));
      json_object_set_new(e, "item", o);
      break;
    }
    case EV_CUSTOMER_UPSERT:
      json_object_set_new(e, "customer", json_pack("{ss}", "id", v->customer ? v->customer : v->anon));
      break;
    case EV_PURCHASE:
    case EV_REC_SHOWN:
      json_object_set_new(e, "order_id", json_string("dry-run-order"));
      json_object_set_new(e, "revenue", json_real(price));
      json_object_set_new(e, "item", json_string(item));
      json_object_set_new(e, "items", json_pack("[{ss sf si}]", "id", item, "price", price,
                                                "quantity", 1));
      break;
    case EV_REFUND:
      json_object_set_new(e, "order_id", json_string("dry-run-order"));
      break;
    case EV_SEARCH:
      json_object_set_new(e, "query", json_string("jacket"));
      break;
    default:
      if (ev_type_needs(type) & EVF_ITEM) {
        json_object_set_new(e, "item", json_string(item));
        json_object_set_new(e, "price", json_real(price));
        json_object_set_new(e, "quantity", json_integer(1));
      }
      if (ev_type_needs(type) & EVF_NAME) json_object_set_new(e, "name", json_string("dry_run"));
  }
  return e;
}

/* on_event with the sample events the host would call it for: those of
   the types on_event_for names (for "customers", a customer's only), as
   eng_run_triggers skips the others.  Called with the rest, a handler
   that relies on on_event_for would fail the dry run for events it
   never sees. */
static void run_on_event(dry *d, const char *where) {
  eng_dry_handler *h = tally(d, "on_event", where);
  unsigned char wants[EV_TYPE_COUNT];
  eng_wants_of(d->vm, wants);
  for (int type = 0; h && type < EV_TYPE_COUNT; type++) {
    char label[64];
    snprintf(label, sizeof label, "on_event(%s)", ev_type_name(type));
    for (size_t i = 0; i < d->nv && wants[type]; i++) {
      if (wants[type] == 1 && !d->v[i].customer && type != EV_CUSTOMER_UPSERT) continue;
      call c = {d, &d->v[i], "on_event", NULL, 0, sample_event(d, i, type), NULL, 0};
      tailor_error e = {0};
      d->who = c.v;
      d->label = label;
      d->hooked = 0;
      h->calls++;
      pthread_rwlock_rdlock(&d->t->lock);
      int rc = lvm_pcall(d->vm, on_event_one, &c, &e);
      pthread_rwlock_unlock(&d->t->lock);
      if (rc) failed(d, h, e.message);
      else h->empty += c.empty;
      json_decref(c.event);
    }
  }
}

/* on_due(ctx, row): nil, a boolean, or {vars = {...}}. */
static int on_due_one(lua_State *L) {
  call *c = lvm_ud(L);
  if (!lvm_push_handler(lvm_of(L), "on_due", &c->file)) return 0;
  handler_line(L, c);
  push_visitor_ctx(L, c, "on_due", NULL);
  ljson_push(L, c->event);
  lua_call(L, 2, 1);
  if (lua_isnil(L, -1) || lua_isboolean(L, -1)) {
    c->empty = lua_isnil(L, -1);
    return 0;
  }
  if (!lua_istable(L, -1)) check_fail(L, c, "something other than a boolean, nil or {vars = ...}");
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "vars") || !lua_istable(L, -1))
      check_fail(L, c, "a table with something other than 'vars' (a table of fields)");
    lua_pop(L, 1);
  }
  return 0;
}

static void run_on_due(dry *d, const char *where) {
  eng_dry_handler *h = tally(d, "on_due", where);
  int64_t now = util_now_ms();
  if (!json_array_size(d->due_rows)) /* nothing scheduled: a made-up row each */
    for (size_t i = 0; i < d->nv; i++)
      json_array_append_new(d->due_rows, json_pack("{ss ss? ss s{}}", "key", "dry_run:1",
                                                   "customer", d->v[i].customer,
                                                   "template", "dry_run", "vars"));
  size_t k;
  json_t *row;
  json_array_foreach(d->due_rows, k, row) {
    if (!h) break;
    visitor v = {0};
    v.customer = (char *)json_string_value(json_object_get(row, "customer"));
    const visitor *owner = NULL;
    for (size_t i = 0; i < d->nv && !owner; i++)
      if (v.customer && d->v[i].customer && !strcmp(v.customer, d->v[i].customer)) owner = &d->v[i];
    json_t *r = json_pack("{sO ss? ss sO sI sI si}", "key", json_object_get(row, "key"),
                          "customer", v.customer, "channel", "email", "template",
                          json_object_get(row, "template"), "due", (json_int_t)now, "created",
                          (json_int_t)now, "attempt", 1);
    json_object_set(r, "vars", json_object_get(row, "vars") ? json_object_get(row, "vars")
                                                            : json_object());
    call c = {d, owner ? owner : &v, "on_due", NULL, 0, r, NULL, 0};
    char label[300];
    snprintf(label, sizeof label, "on_due(%s)", json_string_value(json_object_get(row, "template")));
    tailor_error e = {0};
    d->who = owner;
    d->label = label;
    d->hooked = 0;
    h->calls++;
    pthread_rwlock_rdlock(&d->t->lock);
    int rc = lvm_pcall(d->vm, on_due_one, &c, &e);
    pthread_rwlock_unlock(&d->t->lock);
    if (rc) failed(d, h, e.message);
    else h->empty += c.empty;
    json_decref(r);
  }
}

/*
** ** The run
*/
static int is_decision(const char *name) {
  return strcmp(name, "segments") && strcmp(name, "caps") && strcmp(name, "on_event") &&
         strcmp(name, "on_event_for") && strcmp(name, "on_due");
}

int eng_dry_run(tailor *t, size_t n, eng_dry_report *rep, tailor_error *err) {
  memset(rep, 0, sizeof *rep);
  if (!t || n == 0) return util_fail(err, TAILOR_EINVAL, "sample", "dry run: no visitors asked");
  dry d = {0};
  d.t = t;
  d.rep = rep;
  if (!(d.vm = eng_thread_vm(t, err))) return err && err->code ? err->code : TAILOR_ESTRATEGY;
  d.v = calloc(n, sizeof *d.v);
  d.due_rows = json_array();
  topk_entry top[DRY_RANK_ITEMS * 2];
  pthread_rwlock_rdlock(&t->lock);
  size_t ntop = idx_most_viewed(t->ix, DRY_RANK_ITEMS * 2, NULL, 0, top);
  d.popular = calloc(ntop ? ntop : 1, sizeof *d.popular);
  for (size_t i = 0; d.popular && i < ntop; i++)
    if ((d.popular[d.npopular] = dup_or_null(intern_name(&t->ix->items, top[i].id)))) d.npopular++;
  d.nv = d.v ? pick_stored(&d, n) : 0;
  rep->generated = d.nv == 0;
  if (d.v && !d.nv) d.nv = make_visitors(&d, n);
  pthread_rwlock_unlock(&t->lock);
  rep->visitors = d.nv;
  for (size_t i = 0; i < d.nv; i++) rep->customers += d.v[i].customer != NULL;

  /* Handlers in the order the files define them; segments first, since
     the others read them, and on_due after on_event, whose rows it gets. */
  lapi_set_segment_hook(on_unknown_segment, &d);
  eng_dry_running = 1; /* tailor.coupon issues nothing, caps record nothing */
  const char *name, *file;
  char where[300];
  if (lvm_has_handler(d.vm, "segments")) {
    handler_where(&d, "segments", where, sizeof where);
    run_segments(&d, where);
  }
  for (size_t k = 0; (name = lvm_handler_name(d.vm, k, &file)); k++) {
    if (!is_decision(name)) continue;
    handler_where(&d, name, where, sizeof where);
    if (!strcmp(name, "recommend")) {
      run_recommend(&d, where);
      continue;
    }
    eng_dry_handler *h = tally(&d, name, where);
    for (size_t i = 0; h && i < d.nv; i++)
      decide_one(&d, i, name, name, json_pack("{ss}", "type", "home"), h);
  }
  if (lvm_has_handler(d.vm, "on_event")) {
    handler_where(&d, "on_event", where, sizeof where);
    run_on_event(&d, where);
  }
  if (lvm_has_handler(d.vm, "on_due")) {
    handler_where(&d, "on_due", where, sizeof where);
    run_on_due(&d, where);
  }
  lapi_set_segment_hook(NULL, NULL);
  eng_dry_running = 0;

  /* A decision that answered nothing to anybody is a warning. */
  for (size_t k = 0; k < rep->n_handlers; k++) {
    eng_dry_handler *h = &rep->handlers[k];
    if (h->empty && h->empty == h->calls && strncmp(h->name, "on_", 3) &&
        strncmp(h->name, "segments.", 9)) {
      char text[400];
      snprintf(text, sizeof text, "%s: %s answered nothing for all %zu visitors",
               h->where ? h->where : "?", h->name, h->calls);
      d.label = h->name;
      d.who = NULL;
      problem(&d, ENG_DRY_EMPTY, text);
    }
  }
  for (size_t k = 0; k < rep->n_problems; k++) {
    rep->errors += rep->problems[k].kind == ENG_DRY_ERROR;
    rep->unknown_segments += rep->problems[k].kind == ENG_DRY_UNKNOWN_SEGMENT;
    rep->empty += rep->problems[k].kind == ENG_DRY_EMPTY;
  }
  for (size_t i = 0; d.v && i < d.nv; i++) visitor_free(&d.v[i]);
  for (size_t i = 0; i < d.npopular; i++) free(d.popular[i]);
  free(d.popular);
  free(d.v);
  json_decref(d.due_rows);
  return TAILOR_OK;
}

void eng_dry_report_free(eng_dry_report *rep) {
  for (size_t i = 0; i < rep->n_handlers; i++) {
    free(rep->handlers[i].name);
    free(rep->handlers[i].where);
  }
  for (size_t i = 0; i < rep->n_problems; i++) {
    free(rep->problems[i].call);
    free(rep->problems[i].text);
    free(rep->problems[i].visitor);
  }
  free(rep->handlers);
  free(rep->problems);
  memset(rep, 0, sizeof *rep);
}
