/*
** decide.c: one decision.  Parse the request, build the strategy's `ctx`
** from the index, run the handler in the thread's sandbox, validate what it
** returns and turn it into JSON.  A strategy that fails yields the fallback
** (the most viewed items), counted and logged; the caller still gets an
** answer.
*/
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "core/util.h"
#include "lua/ljson.h"

/* The parsed request, shared with the function that runs inside Lua. */
typedef struct request {
  tailor *t;
  json_t *req;          /* the request object */
  const char *kind;
  long k;
  const char *customer, *anon, *session;
  const char *file;     /* strategy file of the handler */
  int line;             /* line where the handler is defined */
  json_t *result;       /* what the handler decided, as JSON */
  int no_handler;       /* no strategy defines `kind` */
} request;

static int bad_field(tailor_error *err, const char *field, const char *what) {
  return util_fail(err, TAILOR_EFIELD, field, "decide: '%s' %s", field, what);
}

static int opt_string(json_t *req, const char *name, const char **out,
                      tailor_error *err) {
  json_t *v = json_object_get(req, name);
  *out = NULL;
  if (!v || json_is_null(v)) return TAILOR_OK;
  if (!json_is_string(v) || !json_string_length(v))
    return bad_field(err, name, "must be a non-empty string");
  *out = json_string_value(v);
  return TAILOR_OK;
}

static int parse_request(tailor *t, request *r, const char *text, size_t len,
                         tailor_error *err) {
  json_error_t jerr;
  if (len > (size_t)t->cfg.max_request_bytes)
    return util_fail(err, TAILOR_ETOOBIG, NULL,
                     "decide: request of %zu bytes exceeds the limit of %ld",
                     len, t->cfg.max_request_bytes);
  if (!(r->req = json_loadb(text, len, 0, &jerr)))
    return util_fail(err, TAILOR_EPARSE, NULL,
                     "decide: line %d column %d: %s", jerr.line, jerr.column,
                     jerr.text);
  if (!json_is_object(r->req))
    return util_fail(err, TAILOR_EPARSE, NULL,
                     "decide: the request must be a JSON object");
  json_t *kind = json_object_get(r->req, "kind");
  if (!json_is_string(kind))
    return bad_field(err, "kind", "is required: recommend, popup, discount, "
                                  "audiences or rank");
  r->kind = json_string_value(kind);
  size_t n = strlen(r->kind);
  for (size_t i = 0; i < n; i++)
    if (!(r->kind[i] == '_' || (r->kind[i] >= 'a' && r->kind[i] <= 'z')))
      return bad_field(err, "kind", "must be a lowercase handler name");
  if (!n || !strcmp(r->kind, "on_event") || !strcmp(r->kind, "segments"))
    return bad_field(err, "kind", "is not a decision kind");
  json_t *k = json_object_get(r->req, "k");
  r->k = t->cfg.default_k;
  if (k) {
    if (!json_is_integer(k) || json_integer_value(k) < 1 ||
        json_integer_value(k) > t->cfg.max_k)
      return util_fail(err, TAILOR_EFIELD, "k",
                       "decide: 'k' must be an integer from 1 to %ld",
                       t->cfg.max_k);
    r->k = (long)json_integer_value(k);
  }
  json_t *page = json_object_get(r->req, "page");
  if (page && !json_is_object(page))
    return bad_field(err, "page", "must be an object");
  json_t *ctx = json_object_get(r->req, "context");
  if (ctx && !json_is_object(ctx))
    return bad_field(err, "context", "must be an object");
  json_t *items = json_object_get(r->req, "items");
  if (items && !json_is_array(items))
    return bad_field(err, "items", "must be a list of item ids");
  if (!strcmp(r->kind, "rank") && !items)
    return bad_field(err, "items", "is required for rank: the list to re-order");
  int rc;
  if ((rc = opt_string(r->req, "customer", &r->customer, err)) ||
      (rc = opt_string(r->req, "anon", &r->anon, err)) ||
      (rc = opt_string(r->req, "session", &r->session, err)))
    return rc;
  return TAILOR_OK;
}

static void push_ctx(lua_State *L, request *r) {
  lapi_ctx c = {r->kind, r->k, r->customer, r->anon, r->session,
                json_object_get(r->req, "page"), json_object_get(r->req, "context"),
                json_object_get(r->req, "items")};
  lapi_push_ctx(L, r->t, &c);
}

/* luaL_error with the handler's file and line in front. */
static int handler_error(lua_State *L, request *r, const char *fmt,
                         const char *detail) {
  return luaL_error(L, "%s:%d: %s returned %s: %s", r->file ? r->file : "?",
                    r->line, r->kind, fmt, detail);
}

/*
** A recommend (or rank) handler returns a list of entries ({id=, score=,
** reason=, because=, explain=}), or a table with that list under `items`.
** Ids must name items the engine knows (for rank: items of the request's
** list; a plain id string is an entry too); unknown fields are errors, so a
** typo in a strategy shows up at once instead of as a missing explanation.
*/
static void validate_recommend(lua_State *L, request *r, json_t *res) {
  static const char *const allowed[] = {"id", "score", "reason", "because",
                                        "explain"};
  int rank = strcmp(r->kind, "rank") == 0;
  json_t *items = json_is_array(res) ? res : json_object_get(res, "items");
  if (!json_is_array(items))
    handler_error(L, r, "no list of items", "return a list or {items = {...}}");
  size_t i;
  json_t *it;
  char what[160];
  json_array_foreach(items, i, it) {
    if (rank && json_is_string(it)) json_array_set_new(items, i, json_pack("{sO}", "id", it));
  }
  /* A ranking may reorder the storefront's list, never add to it. */
  json_t *given = rank ? json_object_get(r->req, "items") : NULL;
  json_array_foreach(items, i, it) {
    const char *id = json_string_value(json_object_get(it, "id"));
    size_t g;
    json_t *gv;
    int found = !rank;
    json_array_foreach(given, g, gv) found |= id && json_is_string(gv) &&
                                              !strcmp(json_string_value(gv), id);
    if (!found) {
      snprintf(what, sizeof what, "item %zu not in the request's list", i + 1);
      handler_error(L, r, what, id ? id : "(no id)");
    }
  }
  if (!rank)
    while (json_array_size(items) > (size_t)r->k)
      json_array_remove(items, json_array_size(items) - 1);
  json_array_foreach(items, i, it) {
    if (!json_is_object(it)) {
      snprintf(what, sizeof what, "item %zu", i + 1);
      handler_error(L, r, what, "must be a table with an id");
    }
    const char *key;
    json_t *v;
    json_object_foreach(it, key, v) {
      size_t a = 0;
      while (a < sizeof allowed / sizeof *allowed && strcmp(allowed[a], key)) a++;
      if (a == sizeof allowed / sizeof *allowed) {
        snprintf(what, sizeof what, "item %zu with unknown field '%s'", i + 1, key);
        handler_error(L, r, what, "allowed: id, score, reason, because, explain");
      }
    }
    const char *id = json_string_value(json_object_get(it, "id"));
    if (!id) {
      snprintf(what, sizeof what, "item %zu", i + 1);
      handler_error(L, r, what, "'id' must be a string");
    }
    uint32_t iid = idx_item_id(r->t->ix, id);
    if (!rank && (iid == INTERN_NONE || r->t->ix->item[iid].deleted)) {
      snprintf(what, sizeof what, "item %zu with unknown id", i + 1);
      handler_error(L, r, what, id);
    }
    json_t *score = json_object_get(it, "score");
    if (score && !json_is_number(score)) {
      snprintf(what, sizeof what, "item %zu", i + 1);
      handler_error(L, r, what, "'score' must be a number");
    }
    json_t *because = json_object_get(it, "because");
    if (json_is_string(because))
      json_object_set_new(it, "because", json_pack("[O]", because));
  }
  /* Lua tables have no order; answer with the fields in a fixed one. */
  json_t *ordered = json_array();
  json_array_foreach(items, i, it) {
    json_t *o = json_object();
    for (size_t a = 0; a < sizeof allowed / sizeof *allowed; a++) {
      json_t *v = json_object_get(it, allowed[a]);
      if (v) json_object_set(o, allowed[a], v);
    }
    json_array_append_new(ordered, o);
  }
  json_t *out = json_object();
  json_object_set_new(out, "items", ordered);
  json_decref(r->result);
  r->result = out;
}

/*
** A discount handler returns {percent =, tier =, reason =, code =, item =
** or items = {...}} or nil.  The margin guard is the host's: the percent is
** lowered to what keeps every concerned item (the named ones, else the
** customer's cart) at discounts.min_margin_pct over its cost, and the
** answer says so ("capped": true, "max_percent").
*/
static void validate_discount(lua_State *L, request *r, json_t *res) {
  if (json_is_null(res)) return;
  json_t *pct = json_object_get(res, "percent");
  if (!json_is_object(res) || (pct && (!json_is_number(pct) || json_number_value(pct) < 0 ||
                                       json_number_value(pct) > 100)))
    handler_error(L, r, "a discount", "'percent' must be a number from 0 to 100");
  if (!pct) return;
  const idx *x = r->t->ix;
  uint32_t ids[256];
  size_t n = 0;
  json_t *items = json_object_get(res, "items"), *one = json_object_get(res, "item");
  if (json_is_string(one)) {
    uint32_t id = idx_item_id(x, json_string_value(one));
    if (id != INTERN_NONE) ids[n++] = id;
  }
  size_t i;
  json_t *v;
  json_array_foreach(items, i, v) {
    uint32_t id = json_is_string(v) ? idx_item_id(x, json_string_value(v)) : INTERN_NONE;
    if (id != INTERN_NONE && n < 256) ids[n++] = id;
  }
  if (!one && !items) { /* the whole cart */
    uint32_t p = idx_person_of(x, r->customer, r->anon);
    for (uint32_t c = 0; p != INTERN_NONE && c < x->person[p].cart.n && n < 256; c++)
      ids[n++] = x->person[p].cart.v[c];
  }
  double max = 100;
  for (size_t k = 0; k < n; k++) {
    double m = idx_max_discount(x, ids[k], (double)r->t->cfg.min_margin_pct);
    if (m < max) max = m;
  }
  max = floor(max); /* whole percents: what a shop prints */
  if (json_number_value(pct) > max) {
    json_object_set_new(res, "percent", json_real(max));
    json_object_set_new(res, "capped", json_true());
    json_object_set_new(res, "max_percent", json_real(max));
  }
}

/* Runs inside lvm_pcall: everything that touches Lua is protected. */
static int run_handler(lua_State *L) {
  request *r = lvm_ud(L);
  lvm *vm = lvm_of(L);
  if (!lvm_push_handler(vm, r->kind, &r->file)) {
    r->no_handler = 1;
    return luaL_error(L, "no strategy defines a '%s' handler", r->kind);
  }
  lua_Debug ar;
  lua_pushvalue(L, -1);
  if (lua_getinfo(L, ">S", &ar)) r->line = ar.linedefined;
  push_ctx(L, r);
  lua_call(L, 1, 1);
  char why[300];
  json_t *res = ljson_to(L, -1, "result", why, sizeof why);
  if (!res) return handler_error(L, r, "a value that is not JSON", why);
  r->result = res;
  if (!strcmp(r->kind, "recommend") || !strcmp(r->kind, "rank"))
    validate_recommend(L, r, res);
  else if (strcmp(r->kind, "discount") == 0) validate_discount(L, r, res);
  return 0;
}

/* The fallback: today's bestsellers for everyone (trending), or the most
   viewed items while nothing has trended yet. */
static json_t *fallback_items(request *r) {
  topk_entry top[256];
  size_t k = (size_t)r->k < 256 ? (size_t)r->k : 256;
  idx_filter f = {.in_stock = 1};
  idx_reason reason = IDX_REASON_TRENDING;
  size_t n = idx_trending(r->t->ix, "", "", &f, util_now_ms(), k, top);
  if (n == 0) {
    n = idx_most_viewed(r->t->ix, k, NULL, 0, top);
    reason = IDX_REASON_POPULAR;
  }
  json_t *items = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(
        items, json_pack("{ss sf ss}", "id", intern_name(&r->t->ix->items, top[i].id),
                         "score", top[i].score, "reason", idx_reason_name(reason)));
  return items;
}

/* The rank fallback: the storefront's own order. */
static json_t *given_order(request *r) {
  json_t *out = json_array(), *v;
  size_t i;
  json_array_foreach(json_object_get(r->req, "items"), i, v)
    if (json_is_string(v)) json_array_append_new(out, json_pack("{sO}", "id", v));
  return out;
}

int tailor_decide(tailor *t, const char *text, size_t len, char **response,
                  size_t *response_len, tailor_error *err) {
  request r = {0};
  r.t = t;
  if (!t || !text || !response)
    return util_fail(err, TAILOR_EINVAL, NULL, "decide: missing argument");
  *response = NULL;
  int rc = parse_request(t, &r, text, len, err);
  if (rc) {
    json_decref(r.req);
    return rc;
  }
  atomic_fetch_add(&t->n_decisions, 1);
  uint64_t started = util_mono_ns();
  int recommend = !strcmp(r.kind, "recommend") || !strcmp(r.kind, "rank");
  tailor_error serr = {0};
  lvm *vm = eng_thread_vm(t, &serr);
  pthread_rwlock_rdlock(&t->lock);
  rc = vm ? lvm_pcall(vm, run_handler, &r, &serr) : serr.code;
  json_t *out = json_pack("{ss}", "kind", r.kind);
  if (rc == TAILOR_OK) {
    json_object_set(out, recommend ? "items" : "result",
                    recommend ? json_object_get(r.result, "items") : r.result);
    json_object_set_new(out, "strategy", json_string(r.file));
  } else {
    if (!r.no_handler) {
      atomic_fetch_add(&t->n_strategy_errors, 1);
      eng_log(t, TAILOR_LOG_ERROR, "%s (%s), served the fallback", serr.message,
              tailor_errname(rc));
    }
    json_object_set_new(out, recommend ? "items" : "result",
                        !recommend ? json_null()
                        : strcmp(r.kind, "rank") ? fallback_items(&r)
                                                 : given_order(&r));
    json_object_set_new(out, "fallback", json_true());
    json_object_set_new(out, "error", json_string(serr.message));
  }
  pthread_rwlock_unlock(&t->lock);
  if (eng_exposures_pending(t)) { /* decisions only: exposures still land */
    pthread_mutex_lock(&t->write_mu);
    eng_flush_exposures(t);
    pthread_mutex_unlock(&t->write_mu);
  }
  json_decref(r.result);
  eng_metric(t, "decide_us", r.kind, (double)(util_mono_ns() - started) / 1e3);
  if (rc != TAILOR_OK) eng_metric(t, "decide_fallback", r.kind, 1);
  /* Six significant digits: scores rank, they are not money; printing
     doubles in full was a fifth of a decision. */
  *response = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(6));
  json_decref(out);
  json_decref(r.req);
  if (!*response) return util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
  if (response_len) *response_len = strlen(*response);
  return TAILOR_OK;
}
