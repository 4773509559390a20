/*
** example.c: a small tailor plugin, the starting point for your own
** (docs/plugins.md walks through it).  It registers two Lua functions and
** subscribes to events:
**
**   tailor.plugins.example.blend(a, b, weight)
**       merges two lists of rows ({id =, score =, ...}, as the kernels
**       return them) into one: score = weight * a + (1 - weight) * b, an
**       item in both lists counted once, best first.  A native kernel of
**       the kind a strategy would otherwise write in Lua.
**   tailor.plugins.example.seen(type)
**       how many events of that type this plugin saw since the start.
**
** Build:  cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags tailor lua5.4) \
**            example.c -o example.so
** Load:   {"plugins": [{"path": "./example.so", "config": {"types": ["purchase"]}}]}
*/
#include <lauxlib.h>
#include <lua.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tailor_plugin.h"

/* Event types the counters know; the config's "types" picks among them. */
#define EXAMPLE_MAX_TYPES 8
#define EXAMPLE_MAX_ROWS 1000 /* rows blend takes from each list */

static const tailor_plugin_api *api;

/* One instance's state: handed to every callback, freed by stop. */
typedef struct example {
  char types[EXAMPLE_MAX_TYPES][32];
  int n_types;
  _Atomic long counts[EXAMPLE_MAX_TYPES]; /* events come from any thread */
} example;

/* The subscription: count the events of the configured types. */
static void on_event(void *ud, const char *type, const char *json, size_t len) {
  example *x = ud;
  for (int i = 0; i < x->n_types; i++)
    if (!strcmp(x->types[i], type)) atomic_fetch_add(&x->counts[i], 1);
}

/* tailor.plugins.example.seen(type) -> count */
static int l_seen(lua_State *L) {
  example *x = lua_touserdata(L, lua_upvalueindex(1));
  const char *type = luaL_checkstring(L, 1);
  for (int i = 0; i < x->n_types; i++)
    if (!strcmp(x->types[i], type)) {
      lua_pushinteger(L, atomic_load(&x->counts[i]));
      return 1;
    }
  return luaL_error(L, "example.seen: '%s' is not one of the types this plugin counts", type);
}

/* Add weight * row.score to out[row.id] for every row of the list at `arg`. */
static void add_list(lua_State *L, int arg, int out, double weight) {
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_Integer n = luaL_len(L, arg);
  if (n > EXAMPLE_MAX_ROWS) n = EXAMPLE_MAX_ROWS;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, arg, i);
    if (lua_getfield(L, -1, "id") == LUA_TSTRING) {
      lua_getfield(L, -2, "score");
      double score = lua_tonumber(L, -1);
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_gettable(L, out);
      double sum = lua_tonumber(L, -1) + weight * score;
      lua_pop(L, 1);
      lua_pushnumber(L, sum);
      lua_settable(L, out); /* out[id] = sum (pops the id) */
    } else {
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
}

typedef struct scored {
  const char *id;
  double score;
} scored;

static int by_score(const void *a, const void *b) {
  double x = ((const scored *)a)->score, y = ((const scored *)b)->score;
  return x < y ? 1 : x > y ? -1 : strcmp(((const scored *)a)->id, ((const scored *)b)->id);
}

/* tailor.plugins.example.blend(a, b, weight) -> rows, best first */
static int l_blend(lua_State *L) {
  double w = luaL_optnumber(L, 3, 0.5);
  luaL_argcheck(L, w >= 0 && w <= 1, 3, "weight must be between 0 and 1");
  lua_settop(L, 3);
  lua_newtable(L); /* 4: id -> blended score */
  add_list(L, 1, 4, w);
  add_list(L, 2, 4, 1 - w);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, 4)) n++, lua_pop(L, 1);
  /* The scratch array is a Lua userdata, so a Lua error frees it too. */
  scored *v = lua_newuserdatauv(L, (n ? n : 1) * sizeof *v, 0);
  size_t k = 0;
  lua_pushnil(L);
  while (lua_next(L, 4)) {
    v[k].id = lua_tostring(L, -2); /* kept alive by table 4 */
    v[k++].score = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  qsort(v, n, sizeof *v, by_score);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, v[i].id);
    lua_setfield(L, -2, "id");
    lua_pushnumber(L, v[i].score);
    lua_setfield(L, -2, "score");
    lua_pushliteral(L, "blended");
    lua_setfield(L, -2, "reason");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* The config: {"types": ["purchase", "view"]} (default: purchase). */
static int start(tailor_plugin *p, const char *config_json, void **state, char *err,
                 size_t errlen) {
  example *x = calloc(1, sizeof *x);
  if (!x) return snprintf(err, errlen, "out of memory"), -1;
  /* A tiny parser is enough for one list of names; a real plugin would
     link a JSON library (tailor uses jansson). */
  const char *at = strstr(config_json, "\"types\"");
  if (at && (at = strchr(at, '['))) {
    for (at++; *at && *at != ']' && x->n_types < EXAMPLE_MAX_TYPES;) {
      const char *q = strchr(at, '"');
      const char *end = q ? strchr(q + 1, '"') : NULL;
      if (!end || (size_t)(end - q - 1) >= sizeof x->types[0]) break;
      memcpy(x->types[x->n_types], q + 1, (size_t)(end - q - 1));
      x->n_types++;
      at = end + 1;
      while (*at == ',' || *at == ' ') at++;
    }
  } else {
    strcpy(x->types[x->n_types++], "purchase");
  }
  if (api->lua_function(p, "blend", l_blend, x) ||
      api->lua_function(p, "seen", l_seen, x) || api->subscribe(p, on_event, x)) {
    free(x);
    snprintf(err, errlen, "cannot register with the host");
    return -1;
  }
  *state = x;
  api->log(p, TAILOR_PLUGIN_LOG_INFO, "ready: tailor.plugins.example.blend and .seen");
  return 0;
}

static void stop(void *state) { free(state); }

static const tailor_plugin_desc desc = {
    TAILOR_PLUGIN_API_VERSION, sizeof(tailor_plugin_desc), "example", "1.0.0",
    "blend two lists of rows; count events", start, stop,
};

/* The one exported symbol.  Refuse a host older than this header: its
   table may lack what this plugin calls. */
TAILOR_PLUGIN_EXPORT const tailor_plugin_desc *tailor_plugin_init(
    int host_api_version, const tailor_plugin_api *host) {
  if (host_api_version < TAILOR_PLUGIN_API_VERSION) return NULL;
  api = host;
  return &desc;
}
