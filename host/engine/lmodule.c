/*
** lmodule.c: the engine as a Lua C module, `require "tailor"`, so busted
** specs drive the real engine from Lua:
**
**   local tailor = require "tailor"
**   local e = tailor.open{db = ":memory:", strategies = "strategies"}
**   assert(e:ingest{type = "view", item = "sku1", anon = "v1"})
**   local d = e:decide{kind = "recommend", anon = "v1", k = 5}
**
** Tables are turned into JSON and back with the same code the engine uses,
** so a spec sees exactly what a storefront would.
*/
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "lua/ljson.h"
#include "tailor.h"

#define ENGINE_MT "tailor.engine"

static tailor **check_engine(lua_State *L) {
  tailor **t = luaL_checkudata(L, 1, ENGINE_MT);
  luaL_argcheck(L, *t != NULL, 1, "engine is closed");
  return t;
}

/* Argument `arg` as JSON text: a string as is, a table encoded.  The text
   is left on the stack (a new string) so it lives as long as the call. */
static const char *json_arg(lua_State *L, int arg, size_t *len) {
  if (lua_type(L, arg) == LUA_TSTRING) return lua_tolstring(L, arg, len);
  luaL_checktype(L, arg, LUA_TTABLE);
  char why[300];
  json_t *j = ljson_to(L, arg, "argument", why, sizeof why);
  if (!j) luaL_error(L, "%s", why);
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!s) luaL_error(L, "out of memory");
  lua_pushstring(L, s);
  free(s);
  return lua_tolstring(L, -1, len);
}

/* Push nil, message, code-name: the Lua way to return an error. */
static int push_error(lua_State *L, const tailor_error *err) {
  lua_pushnil(L);
  lua_pushstring(L, err->message);
  lua_pushstring(L, tailor_errname(err->code));
  return 3;
}

/* Decode JSON text returned by the engine and free it. */
static int push_decoded(lua_State *L, char *text) {
  json_t *j = json_loads(text, JSON_ALLOW_NUL, NULL); /* "\u0000" is valid JSON */
  tailor_free(text);
  if (!j) return luaL_error(L, "engine returned invalid JSON");
  ljson_push(L, j);
  json_decref(j);
  return 1;
}

/* tailor.open([config]) -> engine | nil, message, code */
static int l_open(lua_State *L) {
  const char *cfg = lua_isnoneornil(L, 1) ? NULL : json_arg(L, 1, NULL);
  tailor_error err = {0};
  tailor *t = tailor_open(cfg, &err);
  if (!t) return push_error(L, &err);
  tailor **ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = t;
  luaL_setmetatable(L, ENGINE_MT);
  return 1;
}

/* e:ingest(event) -> true | nil, message, code */
static int l_ingest(lua_State *L) {
  tailor **t = check_engine(L);
  size_t len;
  const char *text = json_arg(L, 2, &len);
  tailor_error err = {0};
  if (tailor_ingest(*t, text, len, &err) != TAILOR_OK) return push_error(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* The rejections of a batch, kept in C while the engine runs (a Lua error
   raised inside it would unwind past its locks and buffers), turned into
   a table after. */
typedef struct rejects {
  tailor_error *v;
  size_t n, cap;
  int oom;
} rejects;

static void collect_reject(void *ud, const tailor_error *e) {
  rejects *r = ud;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    tailor_error *v = realloc(r->v, cap * sizeof *v);
    if (!v) {
      r->oom = 1;
      return;
    }
    r->v = v;
    r->cap = cap;
  }
  r->v[r->n++] = *e;
}

/* e:ingest_batch(ndjson) -> accepted, rejected, {{line=, field=, message=}} */
static int l_ingest_batch(lua_State *L) {
  tailor **t = check_engine(L);
  size_t len, acc = 0, rej = 0;
  const char *text = luaL_checklstring(L, 2, &len);
  rejects r = {NULL, 0, 0, 0};
  int rc = tailor_ingest_batch(*t, text, len, collect_reject, &r, &acc, &rej);
  if (rc != TAILOR_OK || r.oom) {
    free(r.v);
    return luaL_error(L, "ingest_batch: %s", tailor_strerror(rc ? rc : TAILOR_ENOMEM));
  }
  lua_pushinteger(L, (lua_Integer)acc);
  lua_pushinteger(L, (lua_Integer)rej);
  lua_createtable(L, (int)r.n, 0);
  for (size_t i = 0; i < r.n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, r.v[i].line);
    lua_setfield(L, -2, "line");
    lua_pushstring(L, r.v[i].field);
    lua_setfield(L, -2, "field");
    lua_pushstring(L, r.v[i].message);
    lua_setfield(L, -2, "message");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  free(r.v); /* a Lua memory error above leaks it: nothing else is held */
  return 3;
}

/* e:decide(request) -> response table | nil, message, code */
static int l_decide(lua_State *L) {
  tailor **t = check_engine(L);
  size_t len;
  const char *text = json_arg(L, 2, &len);
  char *resp = NULL;
  tailor_error err = {0};
  if (tailor_decide(*t, text, len, &resp, NULL, &err) != TAILOR_OK)
    return push_error(L, &err);
  return push_decoded(L, resp);
}

/* e:stats() -> table */
static int l_stats(lua_State *L) {
  tailor **t = check_engine(L);
  char *s = NULL;
  tailor_error err = {0};
  if (tailor_stats(*t, &s, &err) != TAILOR_OK) return push_error(L, &err);
  return push_decoded(L, s);
}

/* e:customer(id [, pii]) -> table | nil, message, code */
static int l_customer(lua_State *L) {
  tailor **t = check_engine(L);
  const char *id = luaL_checkstring(L, 2);
  char *s = NULL;
  tailor_error err = {0};
  if (tailor_customer(*t, id, lua_toboolean(L, 3) ? TAILOR_PII : 0, &s, &err))
    return push_error(L, &err);
  return push_decoded(L, s);
}

/* e:coupon_check(code) -> {code, tier, valid, reason, ...} | nil, message, code */
static int l_coupon_check(lua_State *L) {
  tailor **t = check_engine(L);
  char *s = NULL;
  tailor_error err = {0};
  if (tailor_coupon_check(*t, luaL_checkstring(L, 2), &s, &err)) return push_error(L, &err);
  return push_decoded(L, s);
}

/* e:prefs{customer =, anon =} -> {prefs = {key = {value, source, time}}} */
static int l_prefs(lua_State *L) {
  tailor **t = check_engine(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 2, "customer");
  lua_getfield(L, 2, "anon");
  const char *customer = lua_tostring(L, -2), *anon = lua_tostring(L, -1);
  char *s = NULL;
  tailor_error err = {0};
  if (tailor_prefs(*t, customer, anon, &s, &err)) return push_error(L, &err);
  return push_decoded(L, s);
}

/* e:subscribe{email =, anon = or customer =, purpose =, text =, source =}
   -> {status = "pending", expires} | nil, message, code */
static int l_subscribe(lua_State *L) {
  tailor **t = check_engine(L);
  size_t len;
  const char *req = json_arg(L, 2, &len);
  char *s = NULL;
  tailor_error err = {0};
  if (tailor_subscribe(*t, req, len, &s, &err)) return push_error(L, &err);
  return push_decoded(L, s);
}

/* e:confirm(token) -> {confirmed = true, customer, email, ...} | nil, message, code */
static int l_confirm(lua_State *L) {
  tailor **t = check_engine(L);
  char *s = NULL;
  tailor_error err = {0};
  if (tailor_confirm(*t, luaL_checkstring(L, 2), &s, &err)) return push_error(L, &err);
  return push_decoded(L, s);
}

/* e:export_customer(id) -> everything held on them */
static int l_export(lua_State *L) {
  tailor **t = check_engine(L);
  char *s = NULL;
  tailor_error err = {0};
  if (tailor_export_customer(*t, luaL_checkstring(L, 2), &s, &err)) return push_error(L, &err);
  return push_decoded(L, s);
}

/* e:forget(customer) -> events erased | nil, message, code */
static int l_forget(lua_State *L) {
  tailor **t = check_engine(L);
  int64_t n = 0;
  tailor_error err = {0};
  if (tailor_forget(*t, luaL_checkstring(L, 2), &n, &err)) return push_error(L, &err);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* e:outbox([state [, customer]]) -> list of rows */
static int l_outbox(lua_State *L) {
  tailor **t = check_engine(L);
  char *s = NULL;
  tailor_error err = {0};
  if (tailor_outbox_list(*t, luaL_optstring(L, 2, NULL), luaL_optstring(L, 3, NULL),
                         &s, &err))
    return push_error(L, &err);
  return push_decoded(L, s);
}

/* e:report_experiments([window_days]) -> list */
static int l_report(lua_State *L) {
  tailor **t = check_engine(L);
  char *s = NULL;
  tailor_error err = {0};
  lua_Integer days = luaL_optinteger(L, 2, 7);
  luaL_argcheck(L, days >= 1 && days <= 36500, 2, "window_days must be from 1 to 36500");
  if (tailor_report_experiments(*t, (int)days, &s, &err))
    return push_error(L, &err);
  return push_decoded(L, s);
}

/* e:close(); also run by the garbage collector. */
static int l_close(lua_State *L) {
  tailor **t = luaL_checkudata(L, 1, ENGINE_MT);
  tailor_close(*t);
  *t = NULL;
  return 0;
}

/* The module's one entry point; visible although the engine's objects are
   built with hidden visibility. */
__attribute__((visibility("default"))) int luaopen_tailor(lua_State *L);
int luaopen_tailor(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"ingest", l_ingest}, {"ingest_batch", l_ingest_batch},
      {"decide", l_decide}, {"stats", l_stats},
      {"customer", l_customer}, {"forget", l_forget},
      {"coupon_check", l_coupon_check}, {"export_customer", l_export},
      {"outbox", l_outbox}, {"report_experiments", l_report},
      {"prefs", l_prefs},   {"subscribe", l_subscribe}, {"confirm", l_confirm},
      {"close", l_close},   {NULL, NULL},
  };
  static const luaL_Reg fns[] = {{"open", l_open}, {NULL, NULL}};
  luaL_newmetatable(L, ENGINE_MT);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  luaL_newlib(L, fns);
  lua_pushstring(L, tailor_version());
  lua_setfield(L, -2, "version");
  return 1;
}
