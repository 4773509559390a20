/*
** lapi.c: the `tailor` global that strategies call: read-only views of the
** engine's indexes.  Every function runs inside a decision, which holds the
** index read lock, so none of them locks.  Reference: docs/lua-api.md.
*/
#include <lauxlib.h>
#include <string.h>

#include "core/defaults.h"
#include "engine/config.h"
#include "engine/dryrun.h"
#include "engine/engine.h"
#include "engine/plugin.h"
#include "index/reads.h"
#include "core/util.h"
#include "lua/ljson.h"
#include "lua/lvm.h"

#define LAPI_DEFAULT_K DEF_LUA_DEFAULT_K
#define LAPI_MAX_K DEF_LUA_MAX_K

static tailor *engine_of(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

/* A coupon's longest life: its expiry in ms stays far from overflow. */
#define LAPI_MAX_COUPON_TTL_S (10 * 365 * 86400)

/* Lists handed to tailor.* are read up to this many entries (docs/lua-api.md). */
#define LAPI_MAX_LIST 10000

/* The length of the list at `at`, from 0 to LAPI_MAX_LIST: a strategy's
   own __len may claim any length, and the loops over a list run in C,
   where the instruction budget cannot stop them. */
static lua_Integer list_len(lua_State *L, int at) {
  lua_Integer n = luaL_len(L, at);
  return n < 0 ? 0 : n > LAPI_MAX_LIST ? LAPI_MAX_LIST : n;
}

/* Push a list of item ids as a Lua array of external id strings. */
static void push_ids(lua_State *L, const idx *x, const uint32_t *v, uint32_t n) {
  lua_createtable(L, (int)n, 0);
  for (uint32_t i = 0; i < n; i++) {
    lua_pushstring(L, intern_name(&x->items, v[i]));
    lua_rawseti(L, -2, i + 1);
  }
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void set_num(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

/*
** ctx.customer and tailor.customer(id): a table whose fields are made when
** first read, a group at a time (the figures; the value model's three;
** each list; attrs; prefs; ...), by a metatable that every such table of
** the state shares.  A product page reads the cart and what was bought and
** does not pay for the affinities, the consent or the preferences; a
** buyer's value figures (a hypergeometric series: tens of microseconds,
** for some customers milliseconds) are worked out only when read.  The
** table holds, under a light userdata key no strategy can make, a userdata
** with the engine and the ids (copied); a group is made
** from the person those ids name when it is first read.  Handlers hold the
** index read lock, so the groups a call reads are of one moment; a table
** kept for a later call reads that later moment, as ctx.customer does.  A
** field the strategy set itself is left as it set it.  pairs(), JSON and
** the sandbox's raw reads (__totable: ljson, lvm_whole) make every group
** first; the table is then plain, with no metatable and no key.
** ctx.session is made the same way (its items, its figures, its source,
** the visitor's searches), by the same metatable.
*/
enum {
  CG_FIGURES, CG_VALUE, CG_RECENT, CG_CART, CG_BOUGHT, CG_BOUGHT_AT, CG_ATTRS,
  CG_PREFS, CG_PREF_SOURCES, CG_CONSENT, CG_CATEGORIES, CG_BRANDS, CG_N
};

static const struct cust_key {
  const char *name;
  int group;
} cust_keys[] = {
    {"seen", CG_FIGURES},         {"lifecycle", CG_FIGURES},
    {"orders", CG_FIGURES},       {"visits", CG_FIGURES},
    {"revenue", CG_FIGURES},      {"avg_order", CG_FIGURES},
    {"days_since_visit", CG_FIGURES}, {"days_since_order", CG_FIGURES},
    {"first_seen", CG_FIGURES},   {"last_seen", CG_FIGURES},
    {"last_order", CG_FIGURES},   {"has_email", CG_FIGURES},
    {"emails_sent", CG_FIGURES},  {"cluster", CG_FIGURES},
    {"cluster_name", CG_FIGURES}, {"last_email", CG_FIGURES},
    {"p_alive", CG_VALUE},        {"expected_orders", CG_VALUE},
    {"predicted_value", CG_VALUE}, {"recent", CG_RECENT},
    {"cart", CG_CART},            {"bought", CG_BOUGHT},
    {"bought_at", CG_BOUGHT_AT},  {"attrs", CG_ATTRS},
    {"prefs", CG_PREFS},          {"pref_sources", CG_PREF_SOURCES},
    {"consent", CG_CONSENT},      {"categories", CG_CATEGORIES},
    {"brands", CG_BRANDS},
};

/* ctx.session: its id at once; the rest in groups, as the customer's. */
enum { SG_ITEMS, SG_FIGURES, SG_SOURCE, SG_SEARCHES, SG_N };

static const struct cust_key sess_keys[] = {
    {"items", SG_ITEMS},           {"views", SG_FIGURES},      {"pages", SG_FIGURES},
    {"carts", SG_FIGURES},         {"exit_intents", SG_FIGURES}, {"page_hidden", SG_FIGURES},
    {"popups_shown", SG_FIGURES},  {"purchased", SG_FIGURES},  {"started", SG_FIGURES},
    {"last", SG_FIGURES},          {"propensity", SG_FIGURES}, {"source", SG_SOURCE},
    {"searches", SG_SEARCHES},
};

enum { LAZY_CUSTOMER, LAZY_SESSION };

typedef struct lazy_src {
  tailor *t;
  int kind;             /* LAZY_* */
  unsigned made;        /* groups made, a bit each */
  const char *customer; /* into text, or NULL */
  const char *anon;
  const char *session;
  char text[];
} lazy_src;

static const char lazy_key = 'C';      /* a lazy table: its lazy_src */
static const char lazy_meta_key = 'M'; /* registry: their metatable */
static const char lazy_src_key = 'U';  /* registry: the metatable of a lazy_src */

static lazy_src *lazy_src_of(lua_State *L, int tbl) {
  lazy_src *src = NULL;
  if (lua_rawgetp(L, tbl, &lazy_key) == LUA_TUSERDATA && lua_getmetatable(L, -1)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &lazy_src_key);
    if (lua_rawequal(L, -1, -2)) src = lua_touserdata(L, -3);
    lua_pop(L, 2);
  }
  lua_pop(L, 1); /* the table holds it */
  return src;
}

/* The value on top into tbl[k], raw, unless the strategy has set that
   field; popped. */
static void put(lua_State *L, int tbl, const char *k) {
  lua_pushstring(L, k);
  lua_pushvalue(L, -1);
  if (lua_rawget(L, tbl) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_insert(L, -2);
    lua_rawset(L, tbl);
  } else {
    lua_pop(L, 3);
  }
}

static void put_int(lua_State *L, int tbl, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  put(L, tbl, k);
}

static void put_num(lua_State *L, int tbl, const char *k, double v) {
  lua_pushnumber(L, v);
  put(L, tbl, k);
}

static void put_bool(lua_State *L, int tbl, const char *k, int v) {
  lua_pushboolean(L, v);
  put(L, tbl, k);
}

static void cust_group(lua_State *L, int tbl, lazy_src *src, int g) {
  const idx *x = src->t->ix;
  uint32_t p = idx_person_of(x, src->customer, src->anon);
  idx_figures f;
  int64_t now = util_now_ms(); /* a table kept for a later call: then */
  idx_person_counts(x, p, now, &f);
  const idx_person *ps = f.seen ? &x->person[p] : NULL;
  luaL_checkstack(L, 8, "ctx.customer");
  switch (g) {
    case CG_FIGURES:
      put_bool(L, tbl, "seen", f.seen);
      lua_pushstring(L, idx_lifecycle_name(f.lifecycle));
      put(L, tbl, "lifecycle");
      put_int(L, tbl, "orders", f.orders);
      put_int(L, tbl, "visits", f.visits);
      put_num(L, tbl, "revenue", f.revenue);
      put_num(L, tbl, "avg_order", f.avg_order);
      put_num(L, tbl, "days_since_visit", f.days_since_visit);
      put_num(L, tbl, "days_since_order", f.days_since_order);
      if (f.first_seen) put_int(L, tbl, "first_seen", f.first_seen);
      if (f.last_seen) put_int(L, tbl, "last_seen", f.last_seen);
      if (f.last_order) put_int(L, tbl, "last_order", f.last_order);
      put_bool(L, tbl, "has_email", ps && (ps->flags & IDX_HAS_EMAIL));
      put_int(L, tbl, "emails_sent", ps ? ps->emails : 0);
      if (ps && ps->cluster) put_int(L, tbl, "cluster", ps->cluster);
      if (ps && ps->cluster && ps->cluster <= x->clusters.k) {
        lua_pushstring(L, x->clusters.name[ps->cluster - 1]);
        put(L, tbl, "cluster_name");
      }
      if (ps && ps->last_email) put_int(L, tbl, "last_email", ps->last_email);
      return;
    case CG_VALUE: /* -1: no model, or no orders */
      if (f.orders > 0 && x->value.kind != IDX_VALUE_NONE) idx_person_value(x, p, now, &f);
      put_num(L, tbl, "p_alive", f.p_alive);
      put_num(L, tbl, "expected_orders", f.expected_orders);
      put_num(L, tbl, "predicted_value", f.predicted_value);
      return;
    case CG_RECENT:
      push_ids(L, x, ps ? ps->recent.v : NULL, ps ? ps->recent.n : 0);
      put(L, tbl, "recent");
      return;
    case CG_CART:
      push_ids(L, x, ps ? ps->cart.v : NULL, ps ? ps->cart.n : 0);
      put(L, tbl, "cart");
      return;
    case CG_BOUGHT:
      push_ids(L, x, ps ? ps->bought.v : NULL, ps ? ps->bought.n : 0);
      put(L, tbl, "bought");
      return;
    case CG_BOUGHT_AT: /* {[id] = ms}, when each was last bought (where known) */
      lua_createtable(L, 0, ps ? (int)ps->bought_at_n : 0);
      for (uint32_t i = 0; ps && i < ps->bought_at_n; i++) {
        if (!ps->bought_at[i]) continue;
        lua_pushinteger(L, ps->bought_at[i]);
        lua_setfield(L, -2, intern_name(&x->items, ps->bought.v[i]));
      }
      put(L, tbl, "bought_at");
      return;
    case CG_ATTRS:
      lua_createtable(L, 0, ps ? ps->nattrs : 0);
      for (uint8_t i = 0; ps && i < ps->nattrs; i++) {
        lua_pushstring(L, intern_name(&x->attrs, ps->attrs[i].value));
        lua_setfield(L, -2, intern_name(&x->attrs, ps->attrs[i].key));
      }
      put(L, tbl, "attrs");
      return;
    case CG_PREFS: /* prefs: {size = "M", ...} */
      lua_createtable(L, 0, ps ? ps->nprefs : 0);
      for (uint8_t i = 0; ps && i < ps->nprefs; i++) {
        lua_pushstring(L, intern_name(&x->attrs, ps->prefs[i].value));
        lua_setfield(L, -2, intern_name(&x->attrs, ps->prefs[i].key));
      }
      put(L, tbl, "prefs");
      return;
    case CG_PREF_SOURCES: /* {size = {source =, time =}} */
      lua_createtable(L, 0, ps ? ps->nprefs : 0);
      for (uint8_t i = 0; ps && i < ps->nprefs; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, intern_name(&x->attrs, ps->prefs[i].source));
        lua_setfield(L, -2, "source");
        lua_pushinteger(L, ps->prefs[i].ts);
        lua_setfield(L, -2, "time");
        lua_setfield(L, -2, intern_name(&x->attrs, ps->prefs[i].key));
      }
      put(L, tbl, "pref_sources");
      return;
    case CG_CONSENT:
      lua_createtable(L, 0, 5);
      lua_pushboolean(L, ps && (ps->flags & IDX_CONSENT_EMAIL));
      lua_setfield(L, -2, "email");
      lua_pushboolean(L, ps && (ps->flags & IDX_CONSENT_SMS));
      lua_setfield(L, -2, "sms");
      /* The storefront's purposes: true unless declined (a consent event). */
      lua_pushboolean(L, !ps || !(ps->flags & IDX_NO_ANALYTICS));
      lua_setfield(L, -2, "analytics");
      lua_pushboolean(L, !ps || !(ps->flags & IDX_NO_PERSONALIZATION));
      lua_setfield(L, -2, "personalization");
      lua_pushboolean(L, !ps || !(ps->flags & IDX_NO_MARKETING));
      lua_setfield(L, -2, "marketing");
      put(L, tbl, "consent");
      return;
    default: { /* affinities, strongest first: {{name = "Home/Decor", weight = 2.5}, ...} */
      int brands = g == CG_BRANDS;
      idx_affinity aff[IDX_MAX_AFFINITIES];
      size_t n = f.seen ? idx_person_affinities(x, p, brands, now, aff) : 0;
      lua_createtable(L, (int)n, 0);
      for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, intern_name(brands ? &x->brands : &x->categories, aff[i].key));
        lua_setfield(L, -2, "name");
        lua_pushnumber(L, aff[i].w);
        lua_setfield(L, -2, "weight");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
      }
      put(L, tbl, brands ? "brands" : "categories");
    }
  }
}

static void push_strings(lua_State *L, const char *const *v, size_t n);

static void sess_group(lua_State *L, int tbl, lazy_src *src, int g) {
  tailor *t = src->t;
  const idx_session *s = idx_session_of(t->ix, src->session);
  uint32_t sid = src->session ? intern_get(&t->ix->sessions, src->session) : INTERN_NONE;
  luaL_checkstack(L, 8, "ctx.session");
  if (g == SG_ITEMS) { /* the items viewed in this session so far, oldest first */
    const uint32_t *items = NULL;
    size_t n = sid == INTERN_NONE ? 0 : sknn_session_items(t->ix->sknn, sid, &items);
    push_ids(L, t->ix, items, (uint32_t)n);
    put(L, tbl, "items");
  } else if (g == SG_FIGURES) {
    put_int(L, tbl, "views", s ? s->views : 0);
    put_int(L, tbl, "pages", s ? s->pages : 0);
    put_int(L, tbl, "carts", s ? s->carts : 0);
    put_int(L, tbl, "exit_intents", s ? s->exit_intents : 0);
    put_int(L, tbl, "page_hidden", s ? s->hidden : 0);
    put_int(L, tbl, "popups_shown", s ? s->popups_shown : 0);
    put_bool(L, tbl, "purchased", s && s->purchased);
    if (s) {
      put_int(L, tbl, "started", s->first_ts);
      put_int(L, tbl, "last", s->last_ts);
      /* The calibrated chance that it ends in a purchase (propensity.c); nil
         while no model is fitted. */
      double pr = idx_propensity_score(t->ix, sid);
      if (pr >= 0) put_num(L, tbl, "propensity", pr);
    }
  } else if (g == SG_SOURCE) {
    /* Where the session came from, as the storefront parsed it: {medium =,
       source =, campaign =, device =}; nil when its events named none. */
    if (s && s->source[0]) {
      lua_createtable(L, 0, IDX_SOURCE_FIELDS);
      for (int f = 0; f < IDX_SOURCE_FIELDS; f++) {
        const char *v = s->source[f] ? intern_name(&t->ix->attrs, s->source[f] - 1) : NULL;
        if (!v) continue;
        lua_pushstring(L, v);
        lua_setfield(L, -2, idx_source_fields[f]);
      }
      put(L, tbl, "source");
    }
  } else { /* searches: the visitor's terms of this session (without a
              session id, of the last SEARCH_WINDOW_MS), normalized, newest
              first */
    const char *terms[SEARCH_RECENT];
    size_t n = search_terms_of(t->ix->search, idx_person_of(t->ix, src->customer, src->anon),
                               sid, util_now_ms(), terms, SEARCH_RECENT);
    push_strings(L, terms, n);
    put(L, tbl, "searches");
  }
}

/* Group g made into tbl; marked made only once whole (a memory error
   midway leaves it to be made again, put() keeping what is there). */
static void make_group(lua_State *L, int tbl, lazy_src *src, int g) {
  if (src->kind == LAZY_CUSTOMER) cust_group(L, tbl, src, g);
  else sess_group(L, tbl, src, g);
  src->made |= 1u << g;
}

/* The group of the key at 2 of the lazy table at 1, when not made yet;
   else -1. */
static int lazy_group(lua_State *L, lazy_src **srcp) {
  lazy_src *src = *srcp = lazy_src_of(L, 1);
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  if (!src || !k) return -1;
  const struct cust_key *keys = src->kind == LAZY_CUSTOMER ? cust_keys : sess_keys;
  size_t n = src->kind == LAZY_CUSTOMER ? sizeof cust_keys / sizeof *cust_keys
                                        : sizeof sess_keys / sizeof *sess_keys;
  for (size_t i = 0; i < n; i++)
    if (k[0] == keys[i].name[0] && !strcmp(k, keys[i].name))
      return src->made & (1u << keys[i].group) ? -1 : keys[i].group;
  return -1;
}

static int lazy_index(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  lazy_src *src;
  int g = lazy_group(L, &src);
  if (g < 0) return 0; /* an absent field */
  make_group(L, 1, src, g);
  lua_rawget(L, 1);
  return 1;
}

/* A field set before its group was read: the group made first, so the
   value set (nil too) is what later reads see, as in a plain table. */
static int lazy_newindex(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 3);
  lazy_src *src;
  int g = lazy_group(L, &src);
  if (g >= 0) make_group(L, 1, src, g);
  lua_rawset(L, 1);
  return 0;
}

/* __totable: every group made, and the table plain. */
static int lazy_totable(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lazy_src *src = lazy_src_of(L, 1);
  if (src) {
    int groups = src->kind == LAZY_CUSTOMER ? CG_N : SG_N;
    for (int g = 0; g < groups; g++)
      if (!(src->made & (1u << g))) make_group(L, 1, src, g);
    lua_pushnil(L);
    lua_rawsetp(L, 1, &lazy_key);
    lua_pushnil(L);
    lua_setmetatable(L, 1);
  }
  return 1;
}

static void open_lazy(lua_State *L) {
  static const luaL_Reg meta[] = {{"__index", lazy_index},
                                  {"__newindex", lazy_newindex},
                                  {"__pairs", lvm_pairs_whole},
                                  {"__totable", lazy_totable},
                                  {NULL, NULL}};
  lua_createtable(L, 0, 4);
  luaL_setfuncs(L, meta, 0);
  lvm_mark_totable(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lazy_meta_key);
  lua_createtable(L, 0, 1); /* the sources' own: no forgery */
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lazy_src_key);
}

/* A lazy table of `kind` for those ids (copied), its eager fields set. */
static void push_lazy(lua_State *L, tailor *t, int kind, const char *customer, const char *anon,
                      const char *session) {
  const char *id[] = {customer, anon, session};
  size_t len[3], all = 0;
  for (int i = 0; i < 3; i++) all += len[i] = id[i] ? strlen(id[i]) + 1 : 0;
  lua_createtable(L, 0, 8); /* room for the ids, the key and a few groups */
  if (kind == LAZY_CUSTOMER && customer) {
    lua_pushstring(L, customer);
    lua_setfield(L, -2, "id");
  }
  if (kind == LAZY_CUSTOMER && anon) {
    lua_pushstring(L, anon);
    lua_setfield(L, -2, "anon");
  }
  if (kind == LAZY_SESSION && session) {
    lua_pushstring(L, session);
    lua_setfield(L, -2, "id");
  }
  lazy_src *src = lua_newuserdatauv(L, sizeof *src + all, 0);
  src->t = t;
  src->kind = kind;
  src->made = 0;
  char *at = src->text;
  const char **to[] = {&src->customer, &src->anon, &src->session};
  for (int i = 0; i < 3; i++) {
    *to[i] = id[i] ? memcpy(at, id[i], len[i]) : NULL;
    at += len[i];
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lazy_src_key);
  lua_setmetatable(L, -2);
  lua_rawsetp(L, -2, &lazy_key);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lazy_meta_key);
  lua_setmetatable(L, -2);
}

void lapi_push_customer(lua_State *L, tailor *t, const char *customer,
                        const char *anon) {
  push_lazy(L, t, LAZY_CUSTOMER, customer, anon, NULL);
}

/* Push obj as a table (an empty one when NULL). */
static void push_object(lua_State *L, json_t *obj) {
  if (obj)
    ljson_push(L, obj);
  else
    lua_newtable(L);
}

/* The thread's hook for reads of undefined segments (lapi_set_segment_hook). */
static _Thread_local lapi_segment_fn segment_hook;
static _Thread_local void *segment_hook_ud;

void lapi_set_segment_hook(lapi_segment_fn fn, void *ud) {
  segment_hook = fn;
  segment_hook_ud = ud;
}

/* __index of ctx.segments: upvalue 1 the predicates, 2 the ctx. */
static int segment_index(lua_State *L) {
  const char *name = luaL_checkstring(L, 2);
  if (lua_getfield(L, lua_upvalueindex(1), name) != LUA_TFUNCTION) {
    if (segment_hook) { /* where the strategy read it: "file:line: " */
      luaL_where(L, 1);
      segment_hook(segment_hook_ud, name, lua_tostring(L, -1));
      lua_pop(L, 1);
    }
    return luaL_error(L, "no segment named '%s' (segments.lua defines them)", name);
  }
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_call(L, 1, 1);
  lua_pushboolean(L, lua_toboolean(L, -1));
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1); /* keep the answer for the rest of the decision */
  return 1;
}

/* Push ctx.segments for the ctx at absolute index `ctx`: ctx.segments.<name>
   asks the predicate on first use and keeps the answer, so a decision pays
   only for the segments it reads; a name no predicate defines is an error
   (a typo, not a silent "no"). */
static void push_segments(lua_State *L, int ctx) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  if (!lvm_push_handler(lvm_of(L), "segments", NULL)) lua_newtable(L);
  lua_pushvalue(L, ctx);
  lua_pushcclosure(L, segment_index, 2);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
}

static void push_strings(lua_State *L, const char *const *v, size_t n);

/*
** ctx is read-only and lazy: a userdata of one metatable shared by every
** call (made once per Lua state), whose __index makes each field when
** first read and keeps it in the userdata's one user value (a table, made
** on the first field kept), and whose __newindex refuses, so one handler
** (or a segment predicate) cannot change what the next one reads.  kind,
** k and now, customer, session and segments come from the index, and
** page, context, items, exclude, filter, pin, boost and bury from the
** caller's request.  The ids and the kind are copied into the userdata
** (no Lua string is made for them unless read); the rest of the request
** lives only as long as the call ctx was given to: read later, those fail
** with an error that says so (a handler keeps values, not ctx).  Most
** handlers read a few fields: an on_event call for an anonymous view
** reads none, and a ctx costs it one allocation.  Handlers run with the
** index read lock held, so the figures are those of the moment they are
** read.
*/
typedef struct ctx_src {
  tailor *t;
  lapi_ctx c;              /* kind and the ids point into text; the other
                              pointers are the caller's */
  const req_controls *ctl; /* or NULL */
  uint64_t serial;         /* lvm_call_serial of the call */
  int64_t now;             /* ctx.now: when the call began */
  char text[];             /* kind, customer, anon, session, each ended */
} ctx_src;

static void push_controls(lua_State *L, const req_controls *c);

/*
** The ctx last given to a call on this state (registry), so that a lookup
** by one id string knows the running call's visitor.  Strategies pass
** `ctx.customer.id or ctx.customer.anon` (the shipped ones did): a
** customer id is one the request proved (customer_token), an anonymous id
** is whatever the browser sent.  Looked up as a customer's id first, a
** storefront request with "anon": "c42" read c42's history, interests and
** audience.  who_of reads a string that is the running call's anonymous id
** (and not its customer id) as an anonymous id only; any other string
** (an email strategy naming a customer) as before, customer id first.
*/
static const char visitor_key = 'V';

static void who_of(lua_State *L, int arg, const char **customer, const char **anon) {
  const char *s = luaL_checkstring(L, arg);
  *customer = *anon = s;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &visitor_key);
  const ctx_src *v = lua_touserdata(L, -1);
  if (v && v->serial == lvm_call_serial(L) && v->c.anon && !strcmp(v->c.anon, s) &&
      !(v->c.customer && !strcmp(v->c.customer, s)))
    *customer = NULL;
  lua_pop(L, 1); /* the registry keeps it; s is the argument's */
}

/* A field made from the request, onto the stack and kept; 0 when `k` is
   none of them. */
static int ctx_request_field(lua_State *L, const ctx_src *src, const char *k) {
  static const char *const names[] = {"page", "context", "items", "exclude",
                                      "filter", "pin",   "boost", "bury"};
  int which = -1;
  for (int i = 0; i < (int)(sizeof names / sizeof *names) && which < 0; i++)
    if (!strcmp(k, names[i])) which = i;
  if (which < 0) return 0;
  const lapi_ctx *c = &src->c;
  if (which == 2 && !c->items) { /* only a rank request has items */
    lua_pushnil(L);
    return 1;
  }
  if (src->serial != lvm_call_serial(L))
    return luaL_error(L, "ctx.%s read after the call ctx was given to had ended; keep the "
                      "values a later call needs, not ctx", k);
  if (which >= 4) { /* filter, pin, boost and bury are made together */
    int fields = lvm_view_kept(L, 1);
    push_controls(L, src->ctl);
    lua_pushvalue(L, 2);
    lua_rawget(L, fields);
    return 1;
  }
  if (which == 0) push_object(L, c->page);
  else if (which == 1) push_object(L, c->context);
  else if (which == 2) ljson_push(L, c->items);
  else push_object(L, c->exclude);
  lvm_view_keep(L);
  return 1;
}

static int ctx_index(lua_State *L) {
  const ctx_src *src = lua_touserdata(L, 1);
  const char *k = lua_tostring(L, 2);
  const lapi_ctx *c = &src->c;
  if (lvm_view_get(L)) return 1;
  if (!k) {
    lua_pushnil(L);
    return 1;
  }
  if (!strcmp(k, "kind")) {
    lua_pushstring(L, c->kind);
  } else if (!strcmp(k, "k")) {
    lua_pushinteger(L, c->k);
    return 1;
  } else if (!strcmp(k, "now")) {
    lua_pushinteger(L, src->now);
    return 1;
  } else if (!strcmp(k, "customer")) {
    lapi_push_customer(L, src->t, c->customer, c->anon);
  } else if (!strcmp(k, "session")) {
    push_lazy(L, src->t, LAZY_SESSION, c->customer, c->anon, c->session);
  } else if (!strcmp(k, "segments")) {
    push_segments(L, 1);
  } else {
    return ctx_request_field(L, src, k);
  }
  lvm_view_keep(L);
  return 1;
}

/* pairs(ctx) lists nothing: the fields are read by name. */
static int ctx_next_none(lua_State *L) {
  lua_pushnil(L);
  return 1;
}

static int ctx_pairs(lua_State *L) {
  lua_pushcfunction(L, ctx_next_none);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

static int ctx_newindex(lua_State *L) {
  return luaL_error(L, "ctx is read-only (assignment to ctx.%s)", luaL_tolstring(L, 2, NULL));
}

/* A list of strings as a Lua array. */
static void push_strings(lua_State *L, const char *const *v, size_t n) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, v[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* ctx.filter ({brand = {names}, min_price =, max_price =, in_stock =}, the
   shape tailor.*'s kernel options take), ctx.pin ({{item =, slot =}}),
   ctx.boost and ctx.bury (ids or "brand:<name>"), into the table on top;
   empty when `c` is NULL. */
static void push_controls(lua_State *L, const req_controls *c) {
  static const req_controls none;
  if (!c) c = &none;
  lua_createtable(L, 0, 4);
  if (c->n_brands) {
    push_strings(L, c->brands, c->n_brands);
    lua_setfield(L, -2, "brand");
  }
  if (c->min_price > 0) set_num(L, "min_price", c->min_price);
  if (c->max_price > 0) set_num(L, "max_price", c->max_price);
  lua_pushboolean(L, !c->any_stock);
  lua_setfield(L, -2, "in_stock");
  lua_setfield(L, -2, "filter");
  lua_createtable(L, (int)c->n_pins, 0);
  for (size_t i = 0; i < c->n_pins; i++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, c->pins[i].item);
    lua_setfield(L, -2, "item");
    set_int(L, "slot", c->pins[i].slot);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "pin");
  push_strings(L, c->boost, c->n_boost);
  lua_setfield(L, -2, "boost");
  push_strings(L, c->bury, c->n_bury);
  lua_setfield(L, -2, "bury");
}

void lapi_push_ctx(lua_State *L, tailor *t, const lapi_ctx *c) {
  lapi_push_decide_ctx(L, t, c, NULL);
}

/* A copy of `s` (may be NULL) at *at, which moves past it. */
static const char *keep_text(char **at, const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *copy = memcpy(*at, s, n);
  *at += n;
  return copy;
}

void lapi_push_decide_ctx(lua_State *L, tailor *t, const lapi_ctx *c, const req_controls *ctl) {
  const char *kept[] = {c->kind, c->customer, c->anon, c->session};
  size_t text = 0;
  for (size_t i = 0; i < sizeof kept / sizeof *kept; i++) text += kept[i] ? strlen(kept[i]) + 1 : 0;
  ctx_src *src = lua_newuserdatauv(L, sizeof *src + text, 1);
  src->t = t;
  src->c = *c;
  char *at = src->text;
  src->c.kind = keep_text(&at, c->kind);
  src->c.customer = keep_text(&at, c->customer);
  src->c.anon = keep_text(&at, c->anon);
  src->c.session = keep_text(&at, c->session);
  src->ctl = ctl;
  src->serial = lvm_call_serial(L);
  src->now = c->now ? c->now : util_now_ms();
  lua_pushvalue(L, -1); /* the call's visitor, for who_of */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &visitor_key);
  static const luaL_Reg meta[] = {{"__index", ctx_index},
                                  {"__newindex", ctx_newindex},
                                  {"__pairs", ctx_pairs},
                                  {NULL, NULL}};
  lvm_set_view_meta(L, "tailor.ctx", meta, "ctx");
}

/* k from argument `arg` (LAPI_DEFAULT_K when absent), bounded. */
static size_t check_k(lua_State *L, int arg) {
  lua_Integer k = luaL_optinteger(L, arg, LAPI_DEFAULT_K);
  if (k < 1 || k > LAPI_MAX_K)
    return (size_t)luaL_argerror(
        L, arg, lua_pushfstring(L, "k must be from 1 to %d", LAPI_MAX_K));
  return (size_t)k;
}

/* The ids listed under opts.exclude (a list of external ids), interned.
   Unknown ids are skipped: they cannot be recommended anyway. */
/* opts.exclude, read whole (up to LAPI_MAX_LIST ids), into this state's
   buffer (a userdata the registry keeps; a state runs on one thread at a
   time): one kernel call's list, used before the call returns (the call
   runs no strategy code after reading it, so no other call reuses it
   meanwhile).  Sorted, repeats dropped (idx_ids_sort). */
static const char exclude_key = 'X';

static uint32_t *exclude_buf(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &exclude_key) != LUA_TUSERDATA) {
    lua_pop(L, 1);
    lua_newuserdatauv(L, LAPI_MAX_LIST * sizeof(uint32_t), 0);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &exclude_key);
  }
  uint32_t *buf = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return buf;
}

static size_t opt_exclude(lua_State *L, int opts, const idx *x, uint32_t *out,
                          size_t cap) {
  size_t n = 0;
  if (lua_isnoneornil(L, opts)) return 0;
  luaL_checktype(L, opts, LUA_TTABLE);
  int type = lua_getfield(L, opts, "exclude");
  /* a single id (`exclude = ctx.page.item`) would otherwise be ignored */
  if (type != LUA_TNIL && type != LUA_TTABLE)
    luaL_argerror(L, opts, lua_pushfstring(L, "opts.exclude: a list of item ids expected, got %s",
                                           luaL_typename(L, -1)));
  if (type == LUA_TTABLE) {
    lua_Integer len = list_len(L, -1);
    for (lua_Integer i = 1; i <= len && n < cap; i++) {
      lua_rawgeti(L, -1, i);
      const char *id = lua_tostring(L, -1);
      uint32_t iid = id ? idx_item_id(x, id) : INTERN_NONE;
      if (iid != INTERN_NONE) out[n++] = iid;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return idx_ids_sort(out, n);
}

/*
** Kernel rows: a list of {id=, score=, reason=, because=} (`because`, the
** anchor item, for anchored kernels).  In a recommend or rank decision
** (lapi_lazy_rows) the list starts as an empty table whose rows wait in C,
** in a snapshot (lapi_rows: ids, scores, the reason, anchor names copied,
** so a list kept past its call still reads right) that the table holds
** under a light userdata key no strategy can make; the snapshot is a
** userdata of a private, protected metatable, so one cannot be forged
** either.  Rows are made as they are read, from the front: reading row i
** (indexing, ipairs, a numeric for) makes the rows up to i and a few more,
** so a strategy that takes the first k of 3k rows makes about k.  Any
** other read makes every row: a key that is not a row's place, assignment
** of a row not made yet, JSON and every raw read (__totable, which the
** sandbox's pairs, next, rawget, rawlen, rawset, getmetatable and
** setmetatable call first: lvm_whole), so none of them sees the key or the
** list's metatable.  Once every row is made the metatable is removed and
** the list is plain.  `#` answers the snapshot's count until then (a
** border of the list either way: its last row is there).  A strategy that
** hands the list back untouched (`return tailor.trending(...)`) has it
** written from the snapshot (decide.c), with no Lua table per row.
*/
static const char rows_meta_key = 'R'; /* registry: the metatable of lazy lists */
static const char rows_of_key = 'S';   /* a lazy list: its snapshot */
static const char snapshot_key = 'P';  /* registry: the metatable of snapshots */
static const char lazy_call_key = 'L'; /* registry: serial of the call with lazy lists */

/* Rows made at once past the one read: fewer calls, a few rows more.  Of
   0 to 4, 3 did the shipped pages with the fewest instructions (k = 10;
   0 the most: a call per row costs a fifth of the row). */
enum { ROWS_AHEAD = 3 };

/* Make rows r->made + 1 to `upto` of snapshot `r` into the list at `list`,
   whose array part has room for them.  Every row is made on the stack
   before the first is stored, so a memory error leaves the list as it
   was.  The four keys and the reason are pushed once and copied into each
   row.  Each row has room for one key more (strategies add `explain`). */
static void make_rows(lua_State *L, int list, lapi_rows *r, size_t upto) {
  list = lua_absindex(L, list);
  size_t from = r->made;
  if (upto <= from) return;
  luaL_checkstack(L, (int)(upto - from) + 10, "rows");
  int keys = lua_gettop(L) + 1;
  lua_pushliteral(L, "id");
  lua_pushliteral(L, "score");
  lua_pushliteral(L, "reason");
  lua_pushliteral(L, "because");
  lua_pushstring(L, r->reason);
  for (size_t i = from; i < upto; i++) {
    const lapi_row *w = &r->row[i];
    lua_createtable(L, 0, r->anchored ? 5 : 4);
    lua_pushvalue(L, keys);
    if (w->id) lua_pushlstring(L, w->id, w->id_len);
    else lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pushvalue(L, keys + 1);
    lua_pushnumber(L, w->score);
    lua_rawset(L, -3);
    lua_pushvalue(L, keys + 2);
    lua_pushvalue(L, keys + 4);
    lua_rawset(L, -3);
    if (w->because) {
      lua_pushvalue(L, keys + 3);
      lua_pushlstring(L, w->because, w->because_len);
      lua_rawset(L, -3);
    }
  }
  for (size_t i = upto; i > from; i--) lua_rawseti(L, list, (lua_Integer)i);
  r->made = upto;
  lua_settop(L, keys - 1);
}

/* The snapshot of the lazy list at `list`, pushed, or nothing pushed. */
static lapi_rows *push_snapshot(lua_State *L, int list) {
  if (lua_type(L, list) != LUA_TTABLE) return NULL;
  if (lua_rawgetp(L, list, &rows_of_key) == LUA_TUSERDATA && lua_getmetatable(L, -1)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &snapshot_key);
    int ours = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (ours) return lua_touserdata(L, -1);
  }
  lua_pop(L, 1);
  return NULL;
}

const lapi_rows *lapi_rows_of(lua_State *L, int list) {
  const lapi_rows *r = push_snapshot(L, list);
  if (r) lua_pop(L, 1); /* the list holds it */
  return r && !r->made ? r : NULL;
}

/* Rows of the lazy list at 1 (the snapshot `r` on top) made up to `upto`;
   when that is all of them, the list is made plain.  Pops the snapshot. */
static void rows_upto(lua_State *L, lapi_rows *r, size_t upto) {
  make_rows(L, 1, r, upto); /* the snapshot is kept on the stack meanwhile */
  if (r->made == r->n) {
    lua_pushnil(L);
    lua_setmetatable(L, 1);
    lua_pushnil(L);
    lua_rawsetp(L, 1, &rows_of_key);
  }
  lua_pop(L, 1);
}

/* The list at 1 made whole (when still waiting) and plain. */
static void rows_whole(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lapi_rows *r = push_snapshot(L, 1);
  if (r) rows_upto(L, r, r->n);
}

/* A row's place read: the rows up to it (and ROWS_AHEAD more) made; any
   other key, every row. */
static int rows_index(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lapi_rows *r = push_snapshot(L, 1);
  if (r) {
    int exact = 0;
    lua_Integer i = lua_type(L, 2) == LUA_TNUMBER ? lua_tointegerx(L, 2, &exact) : 0;
    size_t upto = r->n;
    if (exact && i > (lua_Integer)r->made && i <= (lua_Integer)r->n)
      upto = (size_t)i + ROWS_AHEAD < r->n ? (size_t)i + ROWS_AHEAD : r->n;
    rows_upto(L, r, upto);
  }
  lua_settop(L, 2);
  lua_rawget(L, 1);
  return 1;
}

static int rows_newindex(lua_State *L) {
  rows_whole(L);
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 0;
}

static int rows_len(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const lapi_rows *r = push_snapshot(L, 1);
  lua_pushinteger(L, r ? (lua_Integer)r->n : (lua_Integer)lua_rawlen(L, 1));
  return 1;
}

static int rows_totable(lua_State *L) {
  rows_whole(L);
  lua_settop(L, 1);
  return 1;
}

/* The registry's metatable of lazy lists. */
static void open_rows(lua_State *L) {
  static const luaL_Reg meta[] = {{"__index", rows_index}, {"__newindex", rows_newindex},
                                  {"__len", rows_len},     {"__pairs", lvm_pairs_whole},
                                  {"__totable", rows_totable}, {NULL, NULL}};
  lua_createtable(L, 0, 5);
  luaL_setfuncs(L, meta, 0);
  lvm_mark_totable(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &rows_meta_key);
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &snapshot_key);
}

void lapi_lazy_rows(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lvm_call_serial(L));
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lazy_call_key);
}

/* Push result rows as a list (see above); `aux` of a row is its anchor
   item when `anchored`. */
static void push_rows(lua_State *L, const idx *x, const topk_entry *rows,
                      size_t n, idx_reason reason, int anchored) {
  int lazy = lua_rawgetp(L, LUA_REGISTRYINDEX, &lazy_call_key) == LUA_TNUMBER &&
             (uint64_t)lua_tointeger(L, -1) == lvm_call_serial(L);
  lua_pop(L, 1);
  size_t bytes = sizeof(lapi_rows) + n * sizeof(lapi_row);
  for (size_t i = 0; i < n; i++) {
    const char *id = intern_name(&x->items, rows[i].id);
    const char *because = anchored ? intern_name(&x->items, rows[i].aux) : NULL;
    bytes += (id ? strlen(id) + 1 : 0) + (because ? strlen(because) + 1 : 0);
  }
  lapi_rows *r = lua_newuserdatauv(L, bytes, 0);
  char *names = (char *)&r->row[n];
  r->n = n;
  r->reason = idx_reason_name(reason);
  r->anchored = anchored;
  for (size_t i = 0; i < n; i++) {
    const char *id = intern_name(&x->items, rows[i].id);
    const char *because = anchored ? intern_name(&x->items, rows[i].aux) : NULL;
    lapi_row *w = &r->row[i];
    *w = (lapi_row){rows[i].score, NULL, NULL, 0, 0};
    if (id) {
      w->id_len = (uint32_t)strlen(id);
      w->id = memcpy(names, id, w->id_len + 1);
      names += w->id_len + 1;
    }
    if (because) {
      w->because_len = (uint32_t)strlen(because);
      w->because = memcpy(names, because, w->because_len + 1);
      names += w->because_len + 1;
    }
  }
  lua_createtable(L, (int)n, lazy);
  r->made = 0;
  if (!lazy) { /* the snapshot, made to be read at once, is garbage after */
    make_rows(L, -1, r, n);
    lua_remove(L, -2);
    return;
  }
  lua_insert(L, -2);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &snapshot_key);
  lua_setmetatable(L, -2); /* the snapshot: ours, no forgery */
  lua_rawsetp(L, -2, &rows_of_key);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &rows_meta_key);
  lua_setmetatable(L, -2);
}

/*
** Options every kernel takes: {k =, exclude = {ids}, in_stock = bool
** (default true), category = "prefix", min_price =, max_price =, brand =
** "name" or {names}} (ctx.filter has this shape).
*/
typedef struct kernel_opts {
  size_t k;
  uint32_t *exclude; /* exclude_buf */
  uint32_t brands[REQ_MAX_BRANDS];
  char category[512]; /* opts.category, copied: what getfield returned may
                         be a string only an __index made, collected once
                         popped (later getfields run strategy code) */
  idx_filter f;
} kernel_opts;

/* The error for option `name` of the options at `arg`, whose value is at
   the top of the stack: it names the option, as a strategy wrote it,
   never a stack position. */
static int opt_error(lua_State *L, int arg, const char *name, const char *expected) {
  return luaL_argerror(L, arg, lua_pushfstring(L, "opts.%s: %s expected, got %s", name, expected,
                                               luaL_typename(L, -1)));
}

/* The value of option `name`, at the top of the stack, as a number: a
   number, not text that reads as one ("10" from a form is a strategy's
   slip to show, as a string `k` is). */
static lua_Number opt_number(lua_State *L, int arg, const char *name) {
  if (lua_type(L, -1) != LUA_TNUMBER) opt_error(L, arg, name, "number");
  return lua_tonumber(L, -1);
}

/* The options every kernel takes (kernel_opts). */
static const char *const common_opts[] = {"k",         "exclude",   "in_stock", "category",
                                          "min_price", "max_price", "brand",    NULL};

static int opt_listed(const char *const *names, const char *key) {
  for (; names && *names; names++)
    if (!strcmp(*names, key)) return 1;
  return 0;
}

/* Every key of the options at `arg` must name an option of the function
   (`common`, the kernels' common_opts, else its own, `own`): a misspelt
   one (`excldue`, `max_prize`) would otherwise be ignored and the kernel
   answer rows the strategy meant to leave out.  Read raw (lua_next): no
   strategy code runs, and a proxy table such as ctx.filter shows no keys
   to refuse. */
static void check_opt_names(lua_State *L, int arg, const char *const *common,
                            const char *const *own) {
  lua_pushnil(L);
  while (lua_next(L, arg)) {
    lua_pop(L, 1);
    const char *key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (!key) luaL_argerror(L, arg, "opts: option names are strings (a list is no options table)");
    if (!opt_listed(common, key) && !opt_listed(own, key)) {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      const char *sep = "";
      for (const char *const *n = common; n && *n; n++, sep = ", ") {
        luaL_addstring(&b, sep);
        luaL_addstring(&b, *n);
      }
      for (const char *const *n = own; n && *n; n++, sep = ", ") {
        luaL_addstring(&b, sep);
        luaL_addstring(&b, *n);
      }
      luaL_pushresult(&b);
      luaL_argerror(L, arg, lua_pushfstring(L, "opts.%s: unknown option (the options: %s)", key,
                                            lua_tostring(L, -1)));
    }
  }
}

/* opts.brand at the top of the stack: one name or a list; names the
   catalog never had match nothing. */
static void opt_brands(lua_State *L, int arg, const idx *x, kernel_opts *o) {
  o->f.by_brand = 1;
  o->f.brands = o->brands;
  if (lua_type(L, -1) == LUA_TSTRING) {
    uint32_t b = intern_get(&x->brands, lua_tostring(L, -1));
    if (b != INTERN_NONE) o->brands[o->f.nbrands++] = b;
    return;
  }
  if (lua_type(L, -1) != LUA_TTABLE) opt_error(L, arg, "brand", "a name or a list of names");
  lua_Integer n = list_len(L, -1);
  for (lua_Integer i = 1; i <= n && o->f.nbrands < REQ_MAX_BRANDS; i++) {
    lua_rawgeti(L, -1, i);
    const char *name = lua_tostring(L, -1);
    uint32_t b = name ? intern_get(&x->brands, name) : INTERN_NONE;
    if (b != INTERN_NONE) o->brands[o->f.nbrands++] = b;
    lua_pop(L, 1);
  }
}

/* Called last before the kernel runs: o->exclude is this state's
   exclude_buf, which strategy code (an __index of a later getfield) could
   reuse through a kernel call of its own. */
static void check_opts(lua_State *L, int arg, const idx *x, kernel_opts *o,
                       const char *const *own) {
  memset(o, 0, sizeof *o);
  o->k = LAPI_DEFAULT_K;
  o->f.in_stock = 1;
  o->f.exclude = o->exclude = exclude_buf(L);
  if (lua_isnoneornil(L, arg)) return;
  luaL_checktype(L, arg, LUA_TTABLE);
  check_opt_names(L, arg, common_opts, own);
  if (lua_getfield(L, arg, "k") != LUA_TNIL) {
    int isint;
    lua_Integer k = lua_tointegerx(L, -1, &isint);
    if (!isint) opt_error(L, arg, "k", "a whole number");
    if (k < 1 || k > LAPI_MAX_K)
      luaL_argerror(L, arg, lua_pushfstring(L, "opts.k: must be from 1 to %d", LAPI_MAX_K));
    o->k = (size_t)k;
  }
  /* a boolean only: in_stock = "false" would read as true */
  if (lua_getfield(L, arg, "in_stock") != LUA_TNIL) {
    if (!lua_isboolean(L, -1)) opt_error(L, arg, "in_stock", "true or false");
    o->f.in_stock = lua_toboolean(L, -1);
  }
  if (lua_getfield(L, arg, "category") != LUA_TNIL) {
    size_t len;
    if (!lua_isstring(L, -1)) opt_error(L, arg, "category", "a category path");
    const char *c = lua_tolstring(L, -1, &len);
    if (len >= sizeof o->category) luaL_argerror(L, arg, "opts.category: at most 511 bytes");
    o->f.category = memcpy(o->category, c, len + 1);
  }
  if (lua_getfield(L, arg, "min_price") != LUA_TNIL) o->f.min_price = opt_number(L, arg, "min_price");
  if (lua_getfield(L, arg, "max_price") != LUA_TNIL) o->f.max_price = opt_number(L, arg, "max_price");
  lua_pop(L, 5);
  if (lua_getfield(L, arg, "brand") != LUA_TNIL) opt_brands(L, arg, x, o);
  lua_pop(L, 1);
  o->f.nex = opt_exclude(L, arg, x, o->exclude, LAPI_MAX_LIST);
}

/* Anchor item ids from a string or a list of strings at `arg`. */
static size_t check_anchors(lua_State *L, int arg, const idx *x, uint32_t *out,
                            size_t cap) {
  size_t n = 0;
  if (lua_type(L, arg) == LUA_TSTRING) {
    uint32_t id = idx_item_id(x, lua_tostring(L, arg));
    if (id != INTERN_NONE) out[n++] = id;
    return n;
  }
  luaL_argexpected(L, lua_type(L, arg) == LUA_TTABLE, arg, "an item id or a list of item ids");
  lua_Integer len = list_len(L, arg);
  for (lua_Integer i = 1; i <= len && n < cap; i++) {
    lua_rawgeti(L, arg, i);
    const char *s = lua_tostring(L, -1);
    uint32_t id = s ? idx_item_id(x, s) : INTERN_NONE;
    if (id != INTERN_NONE && !idx_ids_has(out, n, id)) out[n++] = id;
    lua_pop(L, 1);
  }
  return n;
}

static const char *const related_opts[] = {"measure", "shrink", "damping", NULL};

/* opts.measure, at the top of the stack, of the co-occurrence kernels. */
static cooc_measure opt_measure(lua_State *L, int arg) {
  static const char *const names[] = {"cosine", "jaccard", "also", "count", NULL};
  if (lua_type(L, -1) != LUA_TSTRING) opt_error(L, arg, "measure", "a string");
  for (int i = 0; names[i]; i++)
    if (!strcmp(names[i], lua_tostring(L, -1))) return (cooc_measure)i;
  return (cooc_measure)luaL_argerror(
      L, arg, lua_pushfstring(L, "opts.measure: '%s' is none of cosine, jaccard, also, count",
                              lua_tostring(L, -1)));
}

/* The co-occurrence kernels: relation, measure and whether only
   complements count from the upvalues. */
static int l_related(lua_State *L) {
  tailor *t = engine_of(L);
  idx_relation rel = (idx_relation)lua_tointeger(L, lua_upvalueindex(2));
  cooc_params p;
  cooc_params_default(&p, (cooc_measure)lua_tointeger(L, lua_upvalueindex(3)));
  uint32_t anchors[COOC_MAX_ANCHORS];
  size_t na = check_anchors(L, 1, t->ix, anchors, COOC_MAX_ANCHORS);
  /* tailor.complements: only pairs with the support and lift of items
     bought together (index/pairs.c) */
  if (lua_toboolean(L, lua_upvalueindex(4))) idx_complement_params(t->ix, util_now_ms(), &p);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_getfield(L, 2, "measure") != LUA_TNIL) p.measure = opt_measure(L, 2);
    if (lua_getfield(L, 2, "shrink") != LUA_TNIL) p.shrink = opt_number(L, 2, "shrink");
    if (lua_getfield(L, 2, "damping") != LUA_TNIL) p.damping = opt_number(L, 2, "damping");
    lua_pop(L, 3);
  }
  kernel_opts o;
  check_opts(L, 2, t->ix, &o, related_opts); /* last before the kernel (check_opts) */
  topk_entry *rows = lua_newuserdatauv(L, o.k * sizeof *rows, 0);
  size_t n = idx_related(t->ix, rel, &p, anchors, na, &o.f, util_now_ms(), o.k, rows);
  push_rows(L, t->ix, rows, n,
            rel == IDX_COPURCHASE ? IDX_REASON_BOUGHT_TOGETHER
                                  : IDX_REASON_VIEWED_TOGETHER, 1);
  return 1;
}

/*
** tailor.session_next(items, opts) -> rows: the items most likely viewed
** next after `items` (this session's views, oldest first), by the session
** kernel opts.kernel ("tailor" by default; also stan, vsknn, sknn, itemknn,
** spop, pop) with its validated parameters; opts.session names the
** visitor's own session so it is not its own neighbour.  Items of the
** session are not excluded (visitors go back to them) unless opts.exclude
** says so.  tailor's kernel is the shop's (engine.c, eng_session_params):
** the parameters of index.tuned and its re-ranker when configured
** (opts.rerank = false for the kernel alone), else the defaults adjusted
** to a repeat-heavy shop.  A re-ranked row's because is its strongest
** source (tailor's anchor, else the last view, else the item itself).
*/
static const char *const session_opts[] = {"kernel", "session", "rerank", NULL};

static int l_session_next(lua_State *L) {
  tailor *t = engine_of(L);
  uint32_t items[256];
  size_t n = 0;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer len = list_len(L, 1);
  for (lua_Integer i = len > 256 ? len - 255 : 1; i <= len; i++) {
    lua_rawgeti(L, 1, i);
    const char *id = lua_tostring(L, -1);
    uint32_t iid = id ? idx_item_id(t->ix, id) : INTERN_NONE;
    if (iid != INTERN_NONE) items[n++] = iid; /* repeats kept: positions matter */
    lua_pop(L, 1);
  }
  sknn_params p = t->sess_params;
  uint32_t sid = INTERN_NONE;
  int rerank = 1;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_getfield(L, 2, "kernel") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TSTRING) opt_error(L, 2, "kernel", "a kernel's name");
      int k = sknn_kernel_find(lua_tostring(L, -1));
      if (k < 0) return luaL_error(L, "session_next: unknown kernel '%s'", lua_tostring(L, -1));
      if (k != SKNN_TAILOR) sknn_params_default(&p, (sknn_kernel)k);
    }
    /* a session id may be a number in the request: read it as text */
    if (lua_getfield(L, 2, "session") != LUA_TNIL) {
      if (!lua_isstring(L, -1)) opt_error(L, 2, "session", "a session id");
      sid = intern_get(&t->ix->sessions, lua_tostring(L, -1));
    }
    if (lua_getfield(L, 2, "rerank") != LUA_TNIL) rerank = lua_toboolean(L, -1);
    lua_pop(L, 3);
  }
  kernel_opts o;
  check_opts(L, 2, t->ix, &o, session_opts); /* last before the kernel (check_opts) */
  topk_entry *rows = lua_newuserdatauv(L, o.k * sizeof *rows, 0);
  size_t m;
  if (p.kernel == SKNN_TAILOR && rerank && t->tuned && t->tuned->ranker) {
    sknn_rerank_work *rw = eng_thread_rerank_work(t);
    if (!rw) return luaL_error(L, "session_next: out of memory");
    int got = idx_session_next_reranked(t->ix, t->tuned->ranker, items, n, sid, &p,
                                        rw, &o.f, o.k, rows);
    if (got < 0) return luaL_error(L, "session_next: the re-ranker failed (%s)", t->tuned->model);
    m = (size_t)got;
  } else {
    sknn_work *w = eng_thread_work(t);
    if (!w) return luaL_error(L, "session_next: out of memory");
    m = idx_session_next(t->ix, items, n, sid, &p, w, &o.f, o.k, rows);
  }
  push_rows(L, t->ix, rows, m, IDX_REASON_SESSION, 1);
  return 1;
}

/* tailor.trending([key, value [, opts]]) -> rows; no key: everyone. */
static int l_trending(lua_State *L) {
  tailor *t = engine_of(L);
  const char *key = luaL_optstring(L, 1, "");
  const char *value = luaL_optstring(L, 2, "");
  kernel_opts o;
  check_opts(L, 3, t->ix, &o, NULL);
  topk_entry *rows = lua_newuserdatauv(L, o.k * sizeof *rows, 0);
  size_t n = idx_trending(t->ix, key, value, &o.f, util_now_ms(), o.k, rows);
  push_rows(L, t->ix, rows, n, IDX_REASON_TRENDING, 0);
  return 1;
}

/* tailor.recently_viewed(customer_or_anon [, k]) -> item ids, newest first */
static int l_recently_viewed(lua_State *L) {
  tailor *t = engine_of(L);
  const char *customer, *anon;
  who_of(L, 1, &customer, &anon);
  size_t k = check_k(L, 2);
  uint32_t p = idx_person_of(t->ix, customer, anon);
  lua_newtable(L);
  if (p == INTERN_NONE) return 1;
  const idx_ids *r = &t->ix->person[p].recent;
  lua_Integer out = 0;
  for (uint32_t i = r->n; i > 0 && (size_t)out < k; i--) {
    lua_pushstring(L, intern_name(&t->ix->items, r->v[i - 1]));
    lua_rawseti(L, -2, ++out);
  }
  return 1;
}

/* tailor.most_viewed([k [, {exclude = {ids}}]]) -> rows */
static int l_most_viewed(lua_State *L) {
  tailor *t = engine_of(L);
  size_t k = check_k(L, 1);
  uint32_t *ex = exclude_buf(L);
  size_t nex = opt_exclude(L, 2, t->ix, ex, LAPI_MAX_LIST);
  topk_entry *rows = lua_newuserdatauv(L, k * sizeof *rows, 0);
  size_t n = idx_most_viewed(t->ix, k, ex, nex, rows);
  push_rows(L, t->ix, rows, n, IDX_REASON_POPULAR, 0);
  return 1;
}

/* tailor.item(id [, field]) -> the catalog table plus views/in_stock, or
   nil; with a field name, that field alone */
/*
** tailor.item: the catalog object of an item as a table, with its live
** figures.  The catalog part is parsed once per catalog version of the item
** and kept in this state's cache (the registry's item_cache: id ->
** {doc pointer, doc text, table}); each call hands out a copy, so a
** strategy that changes its table changes nothing for the next call.
*/
static const char item_cache_key = 'i';
#define LAPI_ITEM_CACHE_MAX 4096 /* items cached per Lua state, then it starts over */

/* A deep copy of the table at `src` (catalog objects nest a level or two). */
static void copy_table(lua_State *L, int src, int depth) {
  src = lua_absindex(L, src);
  luaL_checkstack(L, 4, "tailor.item");
  lua_createtable(L, (int)lua_rawlen(L, src), 8);
  lua_pushnil(L);
  while (lua_next(L, src)) {
    if (lua_type(L, -1) == LUA_TTABLE && depth < 8) {
      copy_table(L, -1, depth + 1);
      lua_replace(L, -2);
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
}

/* Push the cached catalog table of item `id` (doc `doc`), parsing it on a
   miss or when the catalog changed. */
static void push_catalog(lua_State *L, const char *id, const char *doc) {
  size_t len = strlen(doc);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &item_cache_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 64);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &item_cache_key);
  }
  int cache = lua_gettop(L);
  if (lua_getfield(L, cache, id) == LUA_TTABLE) {
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    size_t clen;
    const char *ctext = lua_tolstring(L, -1, &clen);
    int hit = lua_touserdata(L, -2) == (void *)doc && ctext && clen == len && !memcmp(ctext, doc, len);
    lua_pop(L, 2);
    if (hit) {
      lua_rawgeti(L, -1, 3);
      lua_replace(L, cache);
      lua_pop(L, 1);
      return;
    }
  }
  lua_pop(L, 1);
  /* The number of entries is kept at cache[0]; a full cache starts over. */
  lua_rawgeti(L, cache, 0);
  lua_Integer n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (n >= LAPI_ITEM_CACHE_MAX) {
    lua_createtable(L, 0, 64);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &item_cache_key);
    lua_replace(L, cache);
    n = 0;
  }
  lua_pushinteger(L, n + 1);
  lua_rawseti(L, cache, 0);
  json_t *parsed = json_loads(doc, 0, NULL);
  lua_createtable(L, 3, 0);
  lua_pushlightuserdata(L, (void *)doc);
  lua_rawseti(L, -2, 1);
  lua_pushlstring(L, doc, len);
  lua_rawseti(L, -2, 2);
  if (parsed) ljson_push(L, parsed);
  else lua_newtable(L);
  json_decref(parsed);
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, 3); /* entry[3] = the table; it stays on the stack */
  lua_insert(L, -2);
  lua_setfield(L, cache, id); /* cache[id] = entry */
  lua_replace(L, cache);
}

/* The item's live figures, over its catalog fields of the same name. */
static const char *const live_fields[] = {"id",           "in_stock",       "views",
                                          "purchases",    "price",          "previous_price",
                                          "was_in_stock", "was_listed"};

/* Push live figure `field` of the item: 1, or 0 when it is none (the
   price is live only for an item never upserted). */
static int push_live(lua_State *L, const char *id, const idx_item *it, const char *field) {
  if (!strchr("ivpw", field[0])) return 0; /* none of them: most reads (name, kind, brand) */
  if (!strcmp(field, "id")) lua_pushstring(L, id);
  else if (!strcmp(field, "in_stock")) lua_pushboolean(L, it->in_stock);
  else if (!strcmp(field, "views")) lua_pushinteger(L, (lua_Integer)it->views);
  else if (!strcmp(field, "purchases")) lua_pushinteger(L, (lua_Integer)it->purchases);
  else if (!strcmp(field, "previous_price")) lua_pushnumber(L, it->prev_price);
  else if (!strcmp(field, "was_in_stock")) lua_pushboolean(L, (it->prev & IDX_PREV_IN_STOCK) != 0);
  else if (!strcmp(field, "was_listed")) lua_pushboolean(L, (it->prev & IDX_PREV_LISTED) != 0);
  else if (!it->doc && !strcmp(field, "price")) lua_pushnumber(L, it->price);
  else return 0;
  return 1;
}

/*
** tailor.item(id, field): the one field, as tailor.item(id)[field] would
** give it, without building the item's table: the live figures from the
** index, the rest from the cached catalog table (a nested table copied).
*/
static int item_field(lua_State *L, const char *id, const idx_item *it, const char *field) {
  if (push_live(L, id, it, field)) return 1;
  if (!it->doc) lua_pushnil(L);
  else {
    push_catalog(L, id, it->doc);
    if (lua_getfield(L, -1, field) == LUA_TTABLE) {
      copy_table(L, -1, 0);
      lua_remove(L, -2);
    }
    lua_remove(L, -2);
  }
  return 1;
}

static int l_item(lua_State *L) {
  tailor *t = engine_of(L);
  const char *id = luaL_checkstring(L, 1);
  const char *field = luaL_optstring(L, 2, NULL);
  uint32_t i = idx_item_id(t->ix, id);
  if (i == INTERN_NONE || t->ix->item[i].deleted) {
    lua_pushnil(L);
    return 1;
  }
  const idx_item *it = &t->ix->item[i];
  if (field) return item_field(L, id, it, field);
  if (it->doc) {
    push_catalog(L, id, it->doc);
    copy_table(L, -1, 0);
    lua_remove(L, -2);
  } else {
    lua_newtable(L);
  }
  for (size_t f = 0; f < sizeof live_fields / sizeof *live_fields; f++)
    if (push_live(L, id, it, live_fields[f])) lua_setfield(L, -2, live_fields[f]);
  return 1;
}

/* tailor.watchers(item [, days]) -> customer ids who viewed or carted the
   item and were seen within `days` (LUA_WATCHERS_DAYS), latest first. */
static int l_watchers(lua_State *L) {
  tailor *t = engine_of(L);
  uint32_t item = idx_item_id(t->ix, luaL_checkstring(L, 1));
  lua_Integer days = luaL_optinteger(L, 2, DEF_LUA_WATCHERS_DAYS);
  uint32_t people[IDX_MAX_WATCHERS];
  size_t n = item == INTERN_NONE ? 0
                                 : idx_watchers(t->ix, item, util_now_ms(), (uint32_t)days,
                                                people, IDX_MAX_WATCHERS);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, idx_customer_id(t->ix, people[i]));
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* tailor.similar(item, opts) -> rows: content similarity (category,
   brand, tags, price band), for items nobody has interacted with yet. */
static int l_similar(lua_State *L) {
  tailor *t = engine_of(L);
  uint32_t anchor = idx_item_id(t->ix, luaL_checkstring(L, 1));
  kernel_opts o;
  check_opts(L, 2, t->ix, &o, NULL);
  topk_entry *rows = lua_newuserdatauv(L, o.k * sizeof *rows, 0);
  size_t n = anchor == INTERN_NONE ? 0 : idx_similar(t->ix, anchor, &o.f, o.k, rows);
  push_rows(L, t->ix, rows, n, IDX_REASON_SIMILAR, 1);
  return 1;
}

/* tailor.substitutes(item, opts) -> rows: items looked at instead of it
   and rarely bought with it, then items of its category that are not its
   complements (index/pairs.c); for hiding a second sofa after the first. */
static int l_substitutes(lua_State *L) {
  tailor *t = engine_of(L);
  uint32_t anchor = idx_item_id(t->ix, luaL_checkstring(L, 1));
  kernel_opts o;
  check_opts(L, 2, t->ix, &o, NULL);
  topk_entry *rows = lua_newuserdatauv(L, o.k * sizeof *rows, 0);
  size_t n = anchor == INTERN_NONE ? 0
                                   : idx_substitutes(t->ix, anchor, &o.f, util_now_ms(), o.k, rows);
  push_rows(L, t->ix, rows, n, IDX_REASON_SIMILAR, 1);
  return 1;
}

/* tailor.replacement_days(item) -> days, learned: how long after buying
   the item its substitutes stay hidden: its category's interval between
   repeat purchases, or DEF_REPLACEMENT_DAYS (learned false). */
static int l_replacement_days(lua_State *L) {
  tailor *t = engine_of(L);
  uint32_t item = idx_item_id(t->ix, luaL_checkstring(L, 1));
  int learned = 0;
  lua_pushnumber(L, item == INTERN_NONE ? DEF_REPLACEMENT_DAYS
                                        : idx_replacement_days(t->ix, item, &learned));
  lua_pushboolean(L, learned);
  return 2;
}

/* tailor.customer(id) -> the same table as ctx.customer, for any customer
   or anonymous id (an email strategy deciding for someone not on the site). */
static int l_customer(lua_State *L) {
  const char *customer, *anon;
  who_of(L, 1, &customer, &anon);
  lapi_push_customer(L, engine_of(L), customer, anon);
  return 1;
}

/* tailor.audiences(id) -> {{kind = "visitors", days = 2}} or {}: the
   recency audience the customer is in now (one at most: they partition).
   tailor.audiences(customer, anon), a visitor's two ids as ctx.customer
   has them (either nil), reads the anonymous id as one only: anyone can
   send "anon": "c42", and c42's audience (a recent order) is not theirs. */
static int l_audiences(lua_State *L) {
  tailor *t = engine_of(L);
  const char *customer, *anon;
  if (lua_gettop(L) >= 2) {
    customer = luaL_optstring(L, 1, NULL);
    anon = luaL_optstring(L, 2, NULL);
  } else {
    who_of(L, 1, &customer, &anon);
  }
  idx_audience a;
  int n = idx_person_audience(t->ix, idx_person_of(t->ix, customer, anon), util_now_ms(), &a);
  lua_createtable(L, n, 0);
  if (n) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, idx_audience_name(a.kind));
    lua_setfield(L, -2, "kind");
    set_int(L, "days", a.days);
    lua_rawseti(L, -2, 1);
  }
  return 1;
}

/* tailor.affinity(customer, ids) -> {[id] = score}: how well each item (or
   category path, for navigation tabs) matches the customer's interests;
   for re-ranking lists the storefront already has. */
static int l_affinity(lua_State *L) {
  tailor *t = engine_of(L);
  const char *customer, *anon;
  who_of(L, 1, &customer, &anon);
  luaL_checktype(L, 2, LUA_TTABLE);
  uint32_t p = idx_person_of(t->ix, customer, anon);
  int64_t now = util_now_ms();
  lua_Integer n = list_len(L, 2);
  lua_createtable(L, 0, (int)n);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 2, i) != LUA_TSTRING && !lua_isnumber(L, -1)) { /* a hole */
      lua_pop(L, 1);
      continue;
    }
    const char *id = lua_tostring(L, -1);
    uint32_t item = id ? idx_item_id(t->ix, id) : INTERN_NONE;
    /* Entries that are not items are categories (navigation tabs). */
    lua_pushnumber(L, item != INTERN_NONE ? idx_item_affinity(t->ix, p, item, now)
                      : id ? idx_category_affinity(t->ix, p, id, now) : 0);
    lua_settable(L, -3); /* result[id] = score (the id is popped with it) */
  }
  return 1;
}

/*
** Exposures recorded per call.  Each exposure is buffered in C, outside the
** Lua memory cap, until the next commit: a strategy calling
** tailor.experiment in a loop buffered one row a call (300,000 calls were
** ~180 MB).  So one call of a handler records at most LAPI_MAX_EXPOSURES
** distinct (experiment, unit) pairs; a pair seen again in the same call is
** not recorded twice (the store keeps a unit's first exposure anyway), and
** past the cap exposures are not recorded, with one warning per call.  The
** bookkeeping is a userdata in the registry, inside the cap.
*/
#define LAPI_MAX_EXPOSURES DEF_LUA_MAX_EXPOSURES

typedef struct call_exposures {
  uint64_t call;  /* lvm_call_serial of the call these belong to */
  size_t n;       /* pairs recorded in it */
  int warned;     /* the cap was hit and logged */
  uint64_t seen[LAPI_MAX_EXPOSURES]; /* hashes of the pairs */
} call_exposures;

static const char exposures_key = 'x'; /* registry: the call_exposures */

/* The running call's exposures, reset when a new call began. */
static call_exposures *exposures_of(lua_State *L) {
  call_exposures *x;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &exposures_key) == LUA_TUSERDATA) {
    x = lua_touserdata(L, -1);
  } else {
    x = lua_newuserdatauv(L, sizeof *x, 0);
    x->call = lvm_call_serial(L) - 1;
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &exposures_key);
  }
  lua_pop(L, 1); /* the registry holds it */
  if (x->call != lvm_call_serial(L)) {
    x->call = lvm_call_serial(L);
    x->n = 0;
    x->warned = 0;
  }
  return x;
}

/* Whether the exposure of hash h (eng_exposure_hash) should be recorded now. */
static int exposure_admitted(lua_State *L, tailor *t, uint64_t h) {
  call_exposures *x = exposures_of(L);
  for (size_t i = 0; i < x->n; i++)
    if (x->seen[i] == h) return 0;
  if (x->n < LAPI_MAX_EXPOSURES) {
    x->seen[x->n++] = h;
    return 1;
  }
  if (!x->warned) {
    x->warned = 1;
    luaL_where(L, 1);
    eng_log(t, TAILOR_LOG_WARN,
            "%stailor.experiment: more than %d exposures in one call; the "
            "rest of this call's are not recorded",
            lua_tostring(L, -1), LAPI_MAX_EXPOSURES);
    lua_pop(L, 1);
  }
  return 0;
}

/*
** tailor.experiment(name, variants, unit) -> variant name.
** variants: {control = 50, blend = 50} (weights) or {"a", "b"} (equal).
** The same unit always gets the same variant; the exposure is recorded
** (within LAPI_MAX_EXPOSURES a call).
*/
#define LAPI_MAX_VARIANTS 16

/* More variants than LAPI_MAX_VARIANTS are refused, not cut: the first 16
   of a weights table are in its iteration order, which differs from one
   Lua state to the next (a server's workers, a restart), so a unit's
   variant did too, and the rest were never shown. */
static int too_many_variants(lua_State *L) {
  return luaL_argerror(L, 2, lua_pushfstring(L, "more than %d variants", LAPI_MAX_VARIANTS));
}

static int l_experiment(lua_State *L) {
  tailor *t = engine_of(L);
  const char *name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *unit = luaL_checkstring(L, 3);
  const char *names[LAPI_MAX_VARIANTS];
  double weights[LAPI_MAX_VARIANTS];
  size_t n = 0;
  lua_Integer len = list_len(L, 2);
  if (len > LAPI_MAX_VARIANTS) return too_many_variants(L);
  if (len > 0) {
    for (lua_Integer i = 1; i <= len; i++) {
      /* Strings only: a number's string would be made on the stack and
         collected once popped (the table holds the number). */
      if (lua_rawgeti(L, 2, i) != LUA_TSTRING)
        return luaL_argerror(L, 2, "variant names must be strings");
      names[n] = lua_tostring(L, -1); /* kept alive by the table */
      weights[n++] = 1;
      lua_pop(L, 1);
    }
  } else {
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      /* A key is not converted: that would confuse lua_next. */
      if (lua_type(L, -2) != LUA_TSTRING)
        return luaL_argerror(L, 2, "variant names must be strings");
      if (n == LAPI_MAX_VARIANTS) return too_many_variants(L);
      names[n] = lua_tostring(L, -2);
      /* Named: luaL_checknumber's "bad argument #-1" said neither which
         argument nor which variant. */
      int isnum;
      weights[n] = lua_tonumberx(L, -1, &isnum);
      if (!isnum)
        return luaL_argerror(L, 2,
                             lua_pushfstring(L, "the weight of variant '%s' is %s, not a number",
                                             names[n], luaL_typename(L, -1)));
      n++;
      lua_pop(L, 1);
    }
    /* Table order is arbitrary: sort by name so the split never moves. */
    for (size_t i = 1; i < n; i++)
      for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
        const char *tn = names[j];
        names[j] = names[j - 1];
        names[j - 1] = tn;
        double tw = weights[j];
        weights[j] = weights[j - 1];
        weights[j - 1] = tw;
      }
  }
  int v = eng_experiment_pick(name, unit, names, weights, n);
  if (v < 0) return luaL_error(L, "experiment '%s': no variant with a positive weight", name);
  uint64_t h = eng_exposure_hash(name, unit);
  if (exposure_admitted(L, t, h)) eng_expose(t, name, names[v], unit, h);
  lua_pushstring(L, names[v]);
  return 1;
}

/* tailor.coupons_left(pool) -> remaining, or nil for a pool that is not
   configured (config "coupons"). */
static int l_coupons_left(lua_State *L) {
  long left = idx_coupons_left(engine_of(L)->ix, luaL_checkstring(L, 1));
  if (left < 0)
    lua_pushnil(L);
  else
    lua_pushinteger(L, left);
  return 1;
}

/* tailor.max_discount(item) -> percent: the margin guard's ceiling. */
static int l_max_discount(lua_State *L) {
  tailor *t = engine_of(L);
  uint32_t item = idx_item_id(t->ix, luaL_checkstring(L, 1));
  lua_pushnumber(L, item == INTERN_NONE ? 0
                                        : idx_max_discount(t->ix, item, (double)t->cfg.min_margin_pct));
  return 1;
}

/* tailor.category(id) -> the item's category path, or nil; cheaper than
   tailor.item for filters that only need the category. */
static int l_category(lua_State *L) {
  tailor *t = engine_of(L);
  uint32_t item = idx_item_id(t->ix, luaL_checkstring(L, 1));
  const char *c = item == INTERN_NONE ? NULL
                                      : intern_name(&t->ix->categories, t->ix->item[item].category);
  if (c)
    lua_pushstring(L, c);
  else
    lua_pushnil(L);
  return 1;
}

/* tailor.clusters() -> {{id =, name =, description =, size =, centroid =
   {orders =, ...}}, ...}: the automatic segments, named by what sets them
   apart (kmeans.c); ctx.customer.cluster is the id, cluster_name the name. */
static int l_clusters(lua_State *L) {
  tailor *t = engine_of(L);
  const idx_clusters *c = &t->ix->clusters;
  lua_createtable(L, (int)c->k, 0);
  for (uint32_t m = 0; m < c->k; m++) {
    lua_createtable(L, 0, 3);
    set_int(L, "id", m + 1);
    set_int(L, "size", (lua_Integer)c->size[m]);
    lua_pushstring(L, c->name[m]);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, c->description[m]);
    lua_setfield(L, -2, "description");
    lua_createtable(L, 0, (int)c->dims);
    for (uint32_t j = 0; j < c->dims; j++) {
      char buf[300];
      lua_pushnumber(L, c->centroid[m][j]);
      lua_setfield(L, -2, idx_cluster_feature_name(t->ix, c, j, buf, sizeof buf));
    }
    lua_setfield(L, -2, "centroid");
    lua_rawseti(L, -2, m + 1);
  }
  return 1;
}

/* tailor.now() -> milliseconds since the epoch */
static int l_now(lua_State *L) {
  lua_pushinteger(L, util_now_ms());
  return 1;
}

typedef struct search_keep {
  const idx *x;
  const idx_filter *f;
} search_keep;

static int search_keep_cb(void *ud, uint32_t item) {
  search_keep *k = ud;
  return idx_keep(k->x, k->f, item);
}

/*
** Content (catalog kind "content": guides, blog posts) and what its readers
** go on to (index/reads.h), through the options every kernel takes:
**   tailor.products_for(content, opts)  products readers went on to view,
**                                       cart and buy; reason "after_reading"
**   tailor.read_next(content, opts)     content read after it; "read_next"
**   tailor.content_for(item, opts)      content whose readers went on to
**                                       the item; reason "guide"
** Rows {id, score, reason, because}, heaviest first; `because` the anchor.
*/
static int push_anchor_rows(lua_State *L, tailor *t, const topk_entry *rows, size_t n,
                            const char *reason, const char *because) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 4);
    lua_pushstring(L, intern_name(&t->ix->items, rows[i].id));
    lua_setfield(L, -2, "id");
    lua_pushnumber(L, rows[i].score);
    lua_setfield(L, -2, "score");
    lua_pushstring(L, reason);
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, because);
    lua_setfield(L, -2, "because");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int read_rows(lua_State *L, int mode) {
  tailor *t = engine_of(L);
  const char *id = luaL_checkstring(L, 1);
  uint32_t anchor = idx_item_id(t->ix, id);
  kernel_opts o;
  check_opts(L, 2, t->ix, &o, NULL);
  topk_entry rows[SEARCH_TOP];
  search_keep kc = {t->ix, &o.f};
  size_t k = o.k < SEARCH_TOP ? o.k : SEARCH_TOP, n = 0;
  if (anchor != INTERN_NONE)
    n = mode == 2 ? reads_before(t->ix, anchor, search_keep_cb, &kc, k, rows)
                  : reads_after(t->ix, anchor, mode, search_keep_cb, &kc, k, rows);
  return push_anchor_rows(L, t, rows, n, mode == 2 ? "guide" : mode ? "read_next" : "after_reading",
                        id);
}

static int l_products_for(lua_State *L) { return read_rows(L, 0); }
static int l_read_next(lua_State *L) { return read_rows(L, 1); }
static int l_content_for(lua_State *L) { return read_rows(L, 2); }

/*
** tailor.searched(term, opts) -> rows: the items visitors went on to view,
** cart and buy after searching `term` (normalized as the index keeps it),
** heaviest first, through the options every kernel takes; reason
** "searched", because the normalized term.
*/
static int l_searched(lua_State *L) {
  tailor *t = engine_of(L);
  char term[SEARCH_MAX_TERM];
  search_normalize(luaL_checkstring(L, 1), term, sizeof term);
  kernel_opts o;
  check_opts(L, 2, t->ix, &o, NULL);
  topk_entry rows[SEARCH_TOP];
  search_keep kc = {t->ix, &o.f};
  size_t n = search_top_k(t->ix->search, term, search_keep_cb, &kc,
                          o.k < SEARCH_TOP ? o.k : SEARCH_TOP, rows);
  return push_anchor_rows(L, t, rows, n, "searched", term);
}

/*
** tailor.coupon(tier [, {ttl =, percent =}]) -> {code =, tier =, expires
** =, percent =}, or nil, "capped" when the visitor's frequency caps (the
** strategy's `caps`) allow no more contacts.  A unique single-use code for
** the visitor of the call (a decision or on_event), stored before the
** answer leaves; ttl in seconds (DEF_COUPON_TTL_S by default).
*/
static const char *const coupon_opts[] = {"ttl", "percent", NULL};

static int l_coupon(lua_State *L) {
  tailor *t = engine_of(L);
  const char *tier = luaL_checkstring(L, 1);
  lua_Integer ttl = DEF_COUPON_TTL_S;
  double percent = -1;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    /* A misspelt option (`percnt`) would issue a code without its percent,
       and a ttl of "3600" or "3 days" reads as a number or fails naming
       no option: each is named instead. */
    check_opt_names(L, 2, coupon_opts, NULL);
    if (lua_getfield(L, 2, "ttl") != LUA_TNIL) {
      int isint = 0;
      if (lua_type(L, -1) == LUA_TNUMBER) ttl = lua_tointegerx(L, -1, &isint);
      if (!isint) opt_error(L, 2, "ttl", "a whole number of seconds");
      if (ttl <= 0 || ttl > LAPI_MAX_COUPON_TTL_S)
        return luaL_error(L, "tailor.coupon: ttl must be from 1 to %d seconds (ten years)",
                          LAPI_MAX_COUPON_TTL_S);
    }
    if (lua_getfield(L, 2, "percent") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TNUMBER) opt_error(L, 2, "percent", "a number");
      percent = lua_tonumber(L, -1);
      if (!(percent >= 0 && percent <= 100))
        return luaL_error(L, "tailor.coupon: percent must be from 0 to 100");
    }
    lua_pop(L, 2);
  }
  if (!*tier || strlen(tier) > 64) return luaL_error(L, "tailor.coupon: tier must be 1 to 64 bytes");
  eng_call *call = eng_current;
  if (eng_dry_running) { /* tailor check --sample: a made-up code, nothing kept */
    lua_createtable(L, 0, 4);
    lua_pushstring(L, "DRYRUN");
    lua_setfield(L, -2, "code");
    lua_pushstring(L, tier);
    lua_setfield(L, -2, "tier");
    set_int(L, "expires", util_now_ms() + (int64_t)ttl * 1000);
    if (percent >= 0) set_num(L, "percent", percent);
    return 1;
  }
  if (!call || (!call->customer && !call->anon))
    return luaL_error(L, "tailor.coupon: only for a visitor, in a decision or on_event");
  /* Each is a row of the call's transaction, kept in C until it commits. */
  if (json_array_size(call->coupons) >= DEF_LUA_MAX_COUPONS)
    return luaL_error(L, "tailor.coupon: at most %d coupons in one call", DEF_LUA_MAX_COUPONS);
  if (!call->caps_read) {
    eng_caps_read(L, &call->caps);
    call->caps_read = 1;
  }
  const char *why = eng_caps_over(t, &call->caps, call->customer, call->anon, tier,
                                  (long)json_array_size(call->coupons), util_now_ms(), NULL);
  if (why) {
    call->capped = why; /* a popup that gives up for it says which cap held */
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
  }
  char code[96];
  int64_t expires;
  tailor_error err = {0};
  if (eng_coupon_issue(t, call, tier, percent, (int64_t)ttl * 1000, code, sizeof code, &expires,
                       &err))
    return luaL_error(L, "%s", err.message);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, tier);
  lua_setfield(L, -2, "tier");
  set_int(L, "expires", expires);
  if (percent >= 0) set_num(L, "percent", percent);
  return 1;
}

/* One key of tailor.config, into the table on top: "index.lapsed_days"
   becomes config.index.lapsed_days, as the config file nests it. */
static void set_config_key(void *ud, const char *key, long value, int is_bool) {
  lua_State *L = ud;
  int levels = 0;
  for (const char *dot; (dot = strchr(key, '.')); key = dot + 1, levels++) {
    lua_pushlstring(L, key, (size_t)(dot - key));
    if (lua_rawget(L, -2) != LUA_TTABLE) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushlstring(L, key, (size_t)(dot - key));
      lua_pushvalue(L, -2);
      lua_rawset(L, -4);
    }
  }
  if (is_bool)
    lua_pushboolean(L, (int)value);
  else
    lua_pushinteger(L, (lua_Integer)value);
  lua_setfield(L, -2, key);
  lua_pop(L, levels);
}

void lapi_open(lua_State *L, void *engine) {
  static const luaL_Reg fns[] = {
      {"most_viewed", l_most_viewed},
      {"trending", l_trending},
      {"session_next", l_session_next},
      {"recently_viewed", l_recently_viewed},
      {"similar", l_similar},
      {"searched", l_searched},
      {"products_for", l_products_for},
      {"read_next", l_read_next},
      {"content_for", l_content_for},
      {"substitutes", l_substitutes},
      {"replacement_days", l_replacement_days},
      {"customer", l_customer},
      {"audiences", l_audiences},
      {"affinity", l_affinity},
      {"experiment", l_experiment},
      {"clusters", l_clusters},
      {"coupons_left", l_coupons_left},
      {"coupon", l_coupon},
      {"max_discount", l_max_discount},
      {"item", l_item},
      {"category", l_category},
      {"watchers", l_watchers},
      {"now", l_now},
      {NULL, NULL},
  };
  /* The co-occurrence kernels share one function, told apart by upvalues. */
  static const struct {
    const char *name;
    idx_relation rel;
    cooc_measure measure;
    int complements;
  } related[] = {
      {"also_bought", IDX_COPURCHASE, COOC_ALSO, 0},
      {"bought_together", IDX_COPURCHASE, COOC_COSINE, 0},
      {"complements", IDX_COPURCHASE, COOC_ALSO, 1},
      {"viewed_together", IDX_COVIEW, COOC_COSINE, 0},
  };
  open_rows(L);
  open_lazy(L);
  luaL_newlibtable(L, fns);
  lua_pushlightuserdata(L, engine);
  luaL_setfuncs(L, fns, 1);
  for (size_t i = 0; i < sizeof related / sizeof *related; i++) {
    lua_pushlightuserdata(L, engine);
    lua_pushinteger(L, related[i].rel);
    lua_pushinteger(L, related[i].measure);
    lua_pushboolean(L, related[i].complements);
    lua_pushcclosure(L, l_related, 4);
    lua_setfield(L, -2, related[i].name);
  }
  lua_pushstring(L, TAILOR_VERSION_STRING);
  lua_setfield(L, -2, "version");
  /* The engine's numbers, defaults or as configured, for strategies that
     need the same figure (settings.lua's lapsed_days); read-only like the
     rest of `tailor` (lvm.c freezes it). */
  lua_newtable(L);
  config_each_number(&((tailor *)engine)->cfg, set_config_key, L);
  lua_setfield(L, -2, "config");
  eng_plugins_open_lua(L, engine); /* tailor.plugins.<name>.<function> */
  lua_setglobal(L, "tailor");
}
