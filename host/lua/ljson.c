/*
** ljson.c: JSON <-> Lua for requests, contexts and strategy results.
*/
#include "lua/ljson.h"

#include "core/buf.h"
#include "core/util.h"
#include "lua/lvm.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define LJSON_MAX_DEPTH 32

void ljson_push(lua_State *L, json_t *v) {
  luaL_checkstack(L, 4, "ljson");
  switch (json_typeof(v)) {
    case JSON_OBJECT: {
      const char *k;
      json_t *m;
      lua_createtable(L, 0, (int)json_object_size(v));
      json_object_foreach(v, k, m) {
        ljson_push(L, m);
        lua_setfield(L, -2, k);
      }
      break;
    }
    case JSON_ARRAY: {
      size_t i;
      json_t *m;
      lua_createtable(L, (int)json_array_size(v), 0);
      json_array_foreach(v, i, m) {
        ljson_push(L, m);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
      }
      break;
    }
    case JSON_STRING:
      lua_pushlstring(L, json_string_value(v), json_string_length(v));
      break;
    case JSON_INTEGER:
      lua_pushinteger(L, (lua_Integer)json_integer_value(v));
      break;
    case JSON_REAL:
      lua_pushnumber(L, json_real_value(v));
      break;
    case JSON_TRUE:
      lua_pushboolean(L, 1);
      break;
    case JSON_FALSE:
      lua_pushboolean(L, 0);
      break;
    default:
      lua_pushnil(L);
  }
}

/* The number of entries if the table at idx is a sequence 1..n, else -1. */
static lua_Integer array_length(lua_State *L, int idx) {
  lua_Integer n = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1)) {
      lua_pop(L, 1);
      return -1;
    }
    lua_Integer k = lua_tointeger(L, -1);
    if (k < 1) {
      lua_pop(L, 1);
      return -1;
    }
    if (k > max) max = k;
    n++;
  }
  return n == max ? n : -1;
}

/*
** The work of turning a value into JSON is the strategy's: each value is
** charged LJSON_STEP instructions and each string a step per 16 bytes
** more, so that a table that holds one subtable many times (written once
** per path: {t, t} twenty levels deep is a million copies) runs out of
** budget instead of out of the host's memory.  And what one write makes
** is at most LJSON_MAX_WRITE bytes.
*/
#define LJSON_STEP 4

static long cost_of(lua_State *L, int idx) {
  size_t len = 0;
  if (lua_type(L, idx) == LUA_TSTRING) lua_tolstring(L, idx, &len);
  return LJSON_STEP + (long)(len / 16);
}

static json_t *to_json(lua_State *L, int idx, char *path, size_t plen,
                       int depth, char *why, size_t why_len) {
  idx = lua_absindex(L, idx);
  if (lvm_spend(L, cost_of(L, idx))) {
    snprintf(why, why_len, "%s: %s", path, lvm_budget_message(L));
    return NULL;
  }
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      return json_null();
    case LUA_TBOOLEAN:
      return json_boolean(lua_toboolean(L, idx));
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      json_t *j = json_stringn(s, len);
      if (!j) snprintf(why, why_len, "%s: string is not valid UTF-8", path);
      return j;
    }
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) return json_integer(lua_tointeger(L, idx));
      if (!isfinite(lua_tonumber(L, idx))) {
        snprintf(why, why_len, "%s: number is not finite", path);
        return NULL;
      }
      return json_real(lua_tonumber(L, idx));
    case LUA_TTABLE:
      break;
    case LUA_TUSERDATA:
      if (lvm_totable(L, idx)) { /* on_event's event stands for a table */
        json_t *j = to_json(L, -1, path, plen, depth, why, why_len);
        lua_pop(L, 1);
        return j;
      }
      /* fall through */
    default:
      snprintf(why, why_len, "%s: a %s cannot be turned into JSON", path,
               luaL_typename(L, idx));
      return NULL;
  }
  if (depth >= LJSON_MAX_DEPTH) {
    snprintf(why, why_len, "%s: nested deeper than %d (a cycle?)", path,
             LJSON_MAX_DEPTH);
    return NULL;
  }
  luaL_checkstack(L, 6, "ljson");
  size_t base = strlen(path);
  if (lvm_totable(L, idx)) lua_pop(L, 1); /* made whole in place */
  lua_Integer n = array_length(L, idx);
  if (n >= 0) {
    json_t *a = json_array();
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, idx, i);
      snprintf(path + base, plen - base, "[%lld]", (long long)i);
      json_t *m = to_json(L, -1, path, plen, depth + 1, why, why_len);
      lua_pop(L, 1);
      if (!m) {
        json_decref(a);
        return NULL;
      }
      json_array_append_new(a, m);
    }
    path[base] = '\0';
    return a;
  }
  json_t *o = json_object();
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      path[base] = '\0';
      snprintf(why, why_len, "%s: table mixes list entries and named fields",
               path);
      lua_pop(L, 2);
      json_decref(o);
      return NULL;
    }
    size_t klen;
    const char *k = lua_tolstring(L, -2, &klen);
    if (!util_utf8_valid(k, klen, NULL) || strlen(k) != klen) {
      path[base] = '\0';
      snprintf(why, why_len, "%s: a field name is not valid UTF-8 text", path);
      lua_pop(L, 2);
      json_decref(o);
      return NULL;
    }
    snprintf(path + base, plen - base, "%s%s", base ? "." : "", k);
    json_t *m = to_json(L, -1, path, plen, depth + 1, why, why_len);
    lua_pop(L, 1);
    if (!m) {
      lua_pop(L, 1);
      json_decref(o);
      return NULL;
    }
    json_object_set_new(o, k, m);
  }
  path[base] = '\0';
  return o;
}

json_t *ljson_to(lua_State *L, int idx, const char *path, char *why,
                 size_t why_len) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  why[0] = '\0';
  return to_json(L, idx, buf, sizeof buf, 0, why, why_len);
}

/*
** The path to the value being written, kept as a stack of keys and
** indexes and printed only when there is an error to report: building it
** as text for every value was most of the writer's time.
*/
typedef struct wpath {
  const char *root;
  const char *key[LJSON_MAX_DEPTH + 1]; /* NULL: an array entry */
  lua_Integer index[LJSON_MAX_DEPTH + 1];
  int n;
} wpath;

static void path_text(const wpath *p, char *out, size_t len) {
  size_t at = (size_t)snprintf(out, len, "%s", p->root);
  for (int i = 0; i < p->n && at < len; i++)
    at += p->key[i] ? (size_t)snprintf(out + at, len - at, "%s%s", at ? "." : "", p->key[i])
                    : (size_t)snprintf(out + at, len - at, "[%lld]", (long long)p->index[i]);
}

static int write_fail(const wpath *p, char *why, size_t why_len, const char *what) {
  char path[256];
  path_text(p, path, sizeof path);
  snprintf(why, why_len, "%s: %s", path, what);
  return -1;
}

static int write_json(lua_State *L, int idx, strbuf *out, int digits, wpath *p, char *why,
                      size_t why_len) {
  char what[64];
  idx = lua_absindex(L, idx);
  if (lvm_spend(L, cost_of(L, idx))) return write_fail(p, why, why_len, lvm_budget_message(L));
  if (out->n > LJSON_MAX_WRITE) {
    snprintf(what, sizeof what, "larger than %zu MiB as JSON", LJSON_MAX_WRITE >> 20);
    return write_fail(p, why, why_len, what);
  }
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      buf_puts(out, "null");
      return 0;
    case LUA_TBOOLEAN:
      buf_puts(out, lua_toboolean(L, idx) ? "true" : "false");
      return 0;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      if (!util_utf8_valid(s, len, NULL))
        return write_fail(p, why, why_len, "string is not valid UTF-8");
      buf_json_str(out, s, len);
      return 0;
    }
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        buf_json_int(out, (long long)lua_tointeger(L, idx));
        return 0;
      }
      if (!isfinite(lua_tonumber(L, idx))) return write_fail(p, why, why_len, "number is not finite");
      buf_json_num(out, lua_tonumber(L, idx), digits);
      return 0;
    case LUA_TTABLE:
      break;
    default:
      snprintf(what, sizeof what, "a %s cannot be turned into JSON", luaL_typename(L, idx));
      return write_fail(p, why, why_len, what);
  }
  if (p->n >= LJSON_MAX_DEPTH) {
    snprintf(what, sizeof what, "nested deeper than %d (a cycle?)", LJSON_MAX_DEPTH);
    return write_fail(p, why, why_len, what);
  }
  luaL_checkstack(L, 6, "ljson");
  if (lvm_totable(L, idx)) lua_pop(L, 1); /* made whole in place */
  lua_Integer n = array_length(L, idx);
  int depth = p->n++;
  if (n >= 0) {
    buf_putc(out, '[');
    for (lua_Integer i = 1; i <= n; i++) {
      if (i > 1) buf_putc(out, ',');
      lua_rawgeti(L, idx, i);
      p->key[depth] = NULL;
      p->index[depth] = i;
      int rc = write_json(L, -1, out, digits, p, why, why_len);
      lua_pop(L, 1);
      if (rc) return -1;
    }
    p->n = depth;
    buf_putc(out, ']');
    return 0;
  }
  int first = 1;
  buf_putc(out, '{');
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      p->n = depth;
      lua_pop(L, 2);
      return write_fail(p, why, why_len, "table mixes list entries and named fields");
    }
    size_t klen;
    const char *k = lua_tolstring(L, -2, &klen);
    p->key[depth] = k;
    if (!util_utf8_valid(k, klen, NULL)) {
      p->n = depth;
      lua_pop(L, 2);
      return write_fail(p, why, why_len, "a field name is not valid UTF-8");
    }
    if (!first) buf_putc(out, ',');
    first = 0;
    buf_json_str(out, k, klen);
    buf_putc(out, ':');
    int rc = write_json(L, -1, out, digits, p, why, why_len);
    lua_pop(L, 1);
    if (rc) {
      lua_pop(L, 1);
      return -1;
    }
  }
  p->n = depth;
  buf_putc(out, '}');
  return 0;
}

int ljson_write(lua_State *L, int idx, strbuf *out, int digits, const char *path, char *why,
                size_t why_len) {
  wpath p; /* key[] and index[] are read only below n, where set */
  p.root = path;
  p.n = 0;
  why[0] = '\0';
  return write_json(L, idx, out, digits, &p, why, why_len);
}
