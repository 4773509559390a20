/*
** decide.c: one decision.  The request arrives typed (core/request.h); the
** handler runs in the thread's sandbox with a lazy ctx; what it returns is
** checked and written straight into the answer's text, with no JSON tree in
** between.  A strategy that fails yields the fallback (bestsellers, or for
** rank the storefront's own order), counted and logged; the caller still
** gets an answer.
*/
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"
#include "engine/engine.h"
#include "lua/ljson.h"

/* Scores rank, they are not money: six significant digits (printing
   doubles in full was a fifth of a decision once). */
#define DECIDE_DIGITS 6

/* One decision, shared with the function that runs inside Lua. */
typedef struct request {
  tailor *t;
  const dreq *q;
  long k;
  const char *file; /* strategy file of the handler */
  int line;         /* line where the handler is defined */
  strbuf *out;      /* the answer being written */
  int no_handler;   /* no strategy defines `kind` */
} request;

static void push_ctx(lua_State *L, request *r) {
  lapi_ctx c = {r->q->kind, r->k, r->q->customer, r->q->anon, r->q->session,
                r->q->page, r->q->context, r->q->items, r->q->exclude};
  lapi_push_ctx(L, r->t, &c);
}

/* luaL_error with the handler's file and line in front. */
static int handler_error(lua_State *L, request *r, const char *fmt, const char *detail) {
  return luaL_error(L, "%s:%d: %s returned %s: %s", r->file ? r->file : "?", r->line,
                    r->q->kind, fmt, detail);
}

/* Write the value at `idx` as JSON, or fail the handler with where. */
static void write_value(lua_State *L, request *r, int at, const char *path) {
  char why[300];
  if (ljson_write(L, at, r->out, DECIDE_DIGITS, path, why, sizeof why))
    handler_error(L, r, "a value that is not JSON", why);
}

/*
** A recommend (or rank) handler returns a list of entries ({id=, score=,
** reason=, because=, explain=}), or a table with that list under `items`.
** Ids must name items the engine knows (for rank: items of the request's
** list; a plain id string is an entry too); unknown fields are errors, so a
** typo in a strategy shows up at once instead of as a missing explanation.
** The entries are written with their fields in a fixed order.
*/
/* Whether the entry table at `entry` names an id of the request's exclude. */
static int excluded(lua_State *L, const dreq *q, int entry) {
  int hit = 0;
  if (!q->n_ex) return 0;
  if (lua_getfield(L, entry, "id") == LUA_TSTRING) {
    const char *id = lua_tostring(L, -1);
    for (size_t i = 0; i < q->n_ex && !hit; i++) hit = !strcmp(q->ex_ids[i], id);
  }
  lua_pop(L, 1);
  return hit;
}

static void write_recommend(lua_State *L, request *r, int res) {
  static const char *const allowed[] = {"id", "score", "reason", "because", "explain"};
  enum { NALLOWED = sizeof allowed / sizeof *allowed };
  int rank = !strcmp(r->q->kind, "rank");
  char what[160];
  int list = res;
  if (lua_type(L, res) == LUA_TTABLE && lua_getfield(L, res, "items") == LUA_TTABLE)
    list = lua_gettop(L);
  else if (lua_type(L, res) == LUA_TTABLE)
    lua_pop(L, 1);
  if (lua_type(L, list) != LUA_TTABLE)
    handler_error(L, r, "no list of items", "return a list or {items = {...}}");
  lua_Integer n = (lua_Integer)lua_rawlen(L, list);
  /* A ranking may reorder the storefront's list, never add to it. */
  for (lua_Integer i = 1; rank && i <= n; i++) {
    int t = lua_rawgeti(L, list, i);
    if (t == LUA_TTABLE) lua_getfield(L, -1, "id");
    const char *id = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int found = 0;
    for (size_t g = 0; id && g < r->q->n_ids && !found; g++) found = !strcmp(r->q->ids[g], id);
    if (!found) {
      snprintf(what, sizeof what, "item %lld not in the request's list", (long long)i);
      handler_error(L, r, what, id ? id : "(no id)");
    }
    lua_pop(L, t == LUA_TTABLE ? 2 : 1);
  }
  buf_putc(r->out, '[');
  long written = 0;
  for (lua_Integer i = 1; i <= n && (rank || written < r->k); i++) {
    int entry = lua_gettop(L) + 1;
    int t = lua_rawgeti(L, list, i);
    /* What the page already shows is never recommended twice, whatever
       the strategy returned (the request's exclude). */
    if (!rank && t == LUA_TTABLE && excluded(L, r->q, entry)) {
      lua_pop(L, 1);
      continue;
    }
    if (written++) buf_putc(r->out, ',');
    if (rank && t == LUA_TSTRING) {
      size_t len;
      const char *id = lua_tolstring(L, entry, &len);
      buf_puts(r->out, "{\"id\":");
      buf_json_str(r->out, id, len);
      buf_putc(r->out, '}');
      lua_pop(L, 1);
      continue;
    }
    if (t != LUA_TTABLE) {
      snprintf(what, sizeof what, "item %lld", (long long)i);
      handler_error(L, r, what, "must be a table with an id");
    }
    lua_pushnil(L);
    while (lua_next(L, entry)) {
      const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
      size_t a = 0;
      while (a < NALLOWED && strcmp(allowed[a], key)) a++;
      if (a == NALLOWED) {
        snprintf(what, sizeof what, "item %lld with unknown field '%s'", (long long)i, key);
        handler_error(L, r, what, "allowed: id, score, reason, because, explain");
      }
      lua_pop(L, 1);
    }
    if (lua_getfield(L, entry, "id") != LUA_TSTRING) {
      snprintf(what, sizeof what, "item %lld", (long long)i);
      handler_error(L, r, what, "'id' must be a string");
    }
    size_t len;
    const char *id = lua_tolstring(L, -1, &len);
    uint32_t iid = idx_item_id(r->t->ix, id);
    if (!rank && (iid == INTERN_NONE || r->t->ix->item[iid].deleted)) {
      snprintf(what, sizeof what, "item %lld with unknown id", (long long)i);
      handler_error(L, r, what, id);
    }
    buf_puts(r->out, "{\"id\":");
    buf_json_str(r->out, id, len);
    lua_pop(L, 1);
    for (size_t a = 1; a < NALLOWED; a++) {
      int vt = lua_getfield(L, entry, allowed[a]);
      if (vt == LUA_TNIL) {
        lua_pop(L, 1);
        continue;
      }
      if (a == 1 && vt != LUA_TNUMBER) {
        snprintf(what, sizeof what, "item %lld", (long long)i);
        handler_error(L, r, what, "'score' must be a number");
      }
      buf_putc(r->out, ',');
      buf_json_str(r->out, allowed[a], strlen(allowed[a]));
      buf_putc(r->out, ':');
      /* because: an item id, or a list of them */
      int one = a == 3 && vt == LUA_TSTRING;
      if (one) buf_putc(r->out, '[');
      char why[300];
      if (ljson_write(L, -1, r->out, DECIDE_DIGITS, allowed[a], why, sizeof why)) {
        snprintf(what, sizeof what, "item %lld", (long long)i);
        handler_error(L, r, what, why);
      }
      if (one) buf_putc(r->out, ']');
      lua_pop(L, 1);
    }
    buf_putc(r->out, '}');
    lua_pop(L, 1);
  }
  buf_putc(r->out, ']');
}

/*
** A discount handler returns {percent =, tier =, reason =, code =, item =
** or items = {...}} or nil.  The margin guard is the host's: the percent is
** lowered to what keeps every concerned item (the named ones, else the
** customer's cart) at discounts.min_margin_pct over its cost, and the
** answer says so ("capped": true, "max_percent").
*/
static void check_discount(lua_State *L, request *r, int res) {
  if (lua_isnil(L, res)) return;
  int pt = lua_type(L, res) == LUA_TTABLE ? lua_getfield(L, res, "percent") : LUA_TNONE;
  if (pt == LUA_TNONE || (pt != LUA_TNIL && (pt != LUA_TNUMBER || !(lua_tonumber(L, -1) >= 0) ||
                                             lua_tonumber(L, -1) > 100)))
    handler_error(L, r, "a discount", "'percent' must be a number from 0 to 100");
  double pct = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (pt == LUA_TNIL) return;
  const idx *x = r->t->ix;
  uint32_t ids[256];
  size_t n = 0;
  int named = 0;
  if (lua_getfield(L, res, "item") == LUA_TSTRING) {
    uint32_t id = idx_item_id(x, lua_tostring(L, -1));
    if (id != INTERN_NONE) ids[n++] = id;
    named = 1;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, res, "items") == LUA_TTABLE) {
    named = 1;
    lua_Integer m = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= m && n < 256; i++) {
      if (lua_rawgeti(L, -1, i) == LUA_TSTRING) {
        uint32_t id = idx_item_id(x, lua_tostring(L, -1));
        if (id != INTERN_NONE) ids[n++] = id;
      }
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    named = 1;
  }
  lua_pop(L, 1);
  if (!named) { /* the whole cart */
    uint32_t p = idx_person_of(x, r->q->customer, r->q->anon);
    for (uint32_t c = 0; p != INTERN_NONE && c < x->person[p].cart.n && n < 256; c++)
      ids[n++] = x->person[p].cart.v[c];
  }
  double max = 100;
  for (size_t i = 0; i < n; i++) {
    double m = idx_max_discount(x, ids[i], (double)r->t->cfg.min_margin_pct);
    if (m < max) max = m;
  }
  max = floor(max); /* whole percents: what a shop prints */
  if (pct > max) {
    lua_pushnumber(L, max);
    lua_setfield(L, res, "percent");
    lua_pushboolean(L, 1);
    lua_setfield(L, res, "capped");
    lua_pushnumber(L, max);
    lua_setfield(L, res, "max_percent");
  }
}

/* Runs inside lvm_pcall: everything that touches Lua is protected. */
static int run_handler(lua_State *L) {
  request *r = lvm_ud(L);
  lvm *vm = lvm_of(L);
  if (!lvm_push_handler(vm, r->q->kind, &r->file)) {
    r->no_handler = 1;
    return luaL_error(L, "no strategy defines a '%s' handler", r->q->kind);
  }
  lua_Debug ar;
  lua_pushvalue(L, -1);
  if (lua_getinfo(L, ">S", &ar)) r->line = ar.linedefined;
  push_ctx(L, r);
  lua_call(L, 1, 1);
  int res = lua_gettop(L);
  if (!strcmp(r->q->kind, "recommend") || !strcmp(r->q->kind, "rank")) {
    write_recommend(L, r, res);
    return 0;
  }
  if (!strcmp(r->q->kind, "discount")) check_discount(L, r, res);
  write_value(L, r, res, "result");
  return 0;
}

/* The fallback: today's bestsellers for everyone (trending), or the most
   viewed items while nothing has trended yet. */
static void write_fallback_items(request *r) {
  topk_entry top[256];
  size_t k = (size_t)r->k < 256 ? (size_t)r->k : 256;
  idx_filter f = {.in_stock = 1};
  idx_reason reason = IDX_REASON_TRENDING;
  size_t n = idx_trending(r->t->ix, "", "", &f, util_now_ms(), k, top);
  if (n == 0) {
    n = idx_most_viewed(r->t->ix, k, NULL, 0, top);
    reason = IDX_REASON_POPULAR;
  }
  buf_putc(r->out, '[');
  for (size_t i = 0; i < n; i++) {
    const char *id = intern_name(&r->t->ix->items, top[i].id);
    buf_puts(r->out, i ? ",{\"id\":" : "{\"id\":");
    buf_json_str(r->out, id, strlen(id));
    buf_puts(r->out, ",\"score\":");
    buf_json_num(r->out, top[i].score, DECIDE_DIGITS);
    buf_puts(r->out, ",\"reason\":");
    buf_json_str(r->out, idx_reason_name(reason), strlen(idx_reason_name(reason)));
    buf_putc(r->out, '}');
  }
  buf_putc(r->out, ']');
}

/* The rank fallback: the storefront's own order. */
static void write_given_order(request *r) {
  buf_putc(r->out, '[');
  for (size_t i = 0; i < r->q->n_ids; i++) {
    buf_puts(r->out, i ? ",{\"id\":" : "{\"id\":");
    buf_json_str(r->out, r->q->ids[i], strlen(r->q->ids[i]));
    buf_putc(r->out, '}');
  }
  buf_putc(r->out, ']');
}

int eng_decide(tailor *t, const dreq *q, strbuf *out, tailor_error *err) {
  request r = {t, q, q->k ? q->k : t->cfg.default_k, NULL, 0, out, 0};
  atomic_fetch_add(&t->n_decisions, 1);
  uint64_t started = util_mono_ns();
  int recommend = !strcmp(q->kind, "recommend") || !strcmp(q->kind, "rank");
  buf_puts(out, "{\"kind\":");
  buf_json_str(out, q->kind, strlen(q->kind));
  buf_puts(out, recommend ? ",\"items\":" : ",\"result\":");
  size_t mark = out->n;
  tailor_error serr = {0};
  lvm *vm = eng_thread_vm(t, &serr);
  pthread_rwlock_rdlock(&t->lock);
  int rc = vm ? lvm_pcall(vm, run_handler, &r, &serr) : serr.code;
  if (rc == TAILOR_OK) {
    buf_puts(out, ",\"strategy\":");
    buf_json_str(out, r.file ? r.file : "", r.file ? strlen(r.file) : 0);
  } else {
    if (!r.no_handler) {
      atomic_fetch_add(&t->n_strategy_errors, 1);
      eng_log(t, TAILOR_LOG_ERROR, "%s (%s), served the fallback", serr.message,
              tailor_errname(rc));
    }
    out->n = mark; /* drop what the handler had written */
    if (!recommend) buf_puts(out, "null");
    else if (strcmp(q->kind, "rank")) write_fallback_items(&r);
    else write_given_order(&r);
    buf_puts(out, ",\"fallback\":true,\"error\":");
    buf_json_str(out, serr.message, strlen(serr.message));
  }
  pthread_rwlock_unlock(&t->lock);
  buf_putc(out, '}');
  if (eng_exposures_pending(t)) { /* decisions only: exposures still land */
    pthread_mutex_lock(&t->write_mu);
    eng_flush_exposures(t);
    pthread_mutex_unlock(&t->write_mu);
  }
  eng_metric(t, "decide_us", q->kind, (double)(util_mono_ns() - started) / 1e3);
  if (rc != TAILOR_OK) eng_metric(t, "decide_fallback", q->kind, 1);
  return out->oom ? util_fail(err, TAILOR_ENOMEM, NULL, "out of memory") : TAILOR_OK;
}

void eng_request_limits(tailor *t, req_limits *lim) {
  lim->max_k = t->cfg.max_k;
  lim->envelope = NULL;
}

int tailor_decide(tailor *t, const char *text, size_t len, char **response,
                  size_t *response_len, tailor_error *err) {
  if (!t || !text || !response)
    return util_fail(err, TAILOR_EINVAL, NULL, "decide: missing argument");
  *response = NULL;
  req_limits lim;
  dreq q;
  eng_request_limits(t, &lim);
  int rc = req_parse(text, len, (size_t)t->cfg.max_request_bytes, &lim, &q, err);
  if (rc) return rc;
  strbuf out = {0};
  rc = eng_decide(t, &q, &out, err);
  req_clear(&q);
  if (rc) {
    buf_free(&out);
    return rc;
  }
  if (!(*response = buf_take(&out, response_len)))
    return util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
  return TAILOR_OK;
}
