/*
** lapi.c: the `tailor` global that strategies call: read-only views of the
** engine's indexes.  Every function runs inside a decision, which holds the
** index read lock, so none of them locks.  Reference: docs/lua-api.md.
*/
#include <lauxlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/util.h"
#include "lua/ljson.h"

#define LAPI_MAX_K 1000

static tailor *engine_of(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

/* k from argument `arg` (default `def`), bounded. */
static size_t check_k(lua_State *L, int arg, lua_Integer def) {
  lua_Integer k = luaL_optinteger(L, arg, def);
  luaL_argcheck(L, k >= 1 && k <= LAPI_MAX_K, arg, "k must be from 1 to 1000");
  return (size_t)k;
}

/* The ids listed under opts.exclude (a list of external ids), interned.
   Unknown ids are skipped: they cannot be recommended anyway. */
static size_t opt_exclude(lua_State *L, int opts, const idx *x, uint32_t *out,
                          size_t cap) {
  size_t n = 0;
  if (lua_isnoneornil(L, opts)) return 0;
  luaL_checktype(L, opts, LUA_TTABLE);
  if (lua_getfield(L, opts, "exclude") == LUA_TTABLE) {
    lua_Integer len = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= len && n < cap; i++) {
      lua_rawgeti(L, -1, i);
      const char *id = lua_tostring(L, -1);
      uint32_t iid = id ? idx_item_id(x, id) : INTERN_NONE;
      if (iid != INTERN_NONE) out[n++] = iid;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return n;
}

/* Push result rows {id=, score=, reason=} as a Lua list. */
static void push_rows(lua_State *L, const idx *x, const topk_entry *rows,
                      size_t n) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, intern_name(&x->items, rows[i].id));
    lua_setfield(L, -2, "id");
    lua_pushnumber(L, rows[i].score);
    lua_setfield(L, -2, "score");
    lua_pushstring(L, idx_reason_name((idx_reason)rows[i].aux));
    lua_setfield(L, -2, "reason");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* tailor.most_viewed([k [, {exclude = {ids}}]]) -> rows */
static int l_most_viewed(lua_State *L) {
  tailor *t = engine_of(L);
  size_t k = check_k(L, 1, 10);
  uint32_t ex[256];
  size_t nex = opt_exclude(L, 2, t->ix, ex, 256);
  topk_entry *rows = lua_newuserdatauv(L, k * sizeof *rows, 0);
  size_t n = idx_most_viewed(t->ix, k, ex, nex, rows);
  push_rows(L, t->ix, rows, n);
  return 1;
}

/* tailor.item(id) -> the catalog table plus views/in_stock, or nil */
static int l_item(lua_State *L) {
  tailor *t = engine_of(L);
  const char *id = luaL_checkstring(L, 1);
  uint32_t i = idx_item_id(t->ix, id);
  if (i == INTERN_NONE || t->ix->item[i].deleted) {
    lua_pushnil(L);
    return 1;
  }
  const idx_item *it = &t->ix->item[i];
  json_t *doc = it->doc ? json_loads(it->doc, 0, NULL) : NULL;
  if (doc)
    ljson_push(L, doc);
  else
    lua_newtable(L);
  json_decref(doc);
  lua_pushstring(L, id);
  lua_setfield(L, -2, "id");
  lua_pushboolean(L, it->in_stock);
  lua_setfield(L, -2, "in_stock");
  lua_pushinteger(L, (lua_Integer)it->views);
  lua_setfield(L, -2, "views");
  lua_pushinteger(L, (lua_Integer)it->purchases);
  lua_setfield(L, -2, "purchases");
  if (!doc) {
    lua_pushnumber(L, it->price);
    lua_setfield(L, -2, "price");
  }
  return 1;
}

/* tailor.now() -> milliseconds since the epoch */
static int l_now(lua_State *L) {
  lua_pushinteger(L, util_now_ms());
  return 1;
}

void lapi_open(lua_State *L, void *engine) {
  static const luaL_Reg fns[] = {
      {"most_viewed", l_most_viewed},
      {"item", l_item},
      {"now", l_now},
      {NULL, NULL},
  };
  luaL_newlibtable(L, fns);
  lua_pushlightuserdata(L, engine);
  luaL_setfuncs(L, fns, 1);
  lua_pushstring(L, TAILOR_VERSION_STRING);
  lua_setfield(L, -2, "version");
  lua_setglobal(L, "tailor");
}
