/*
** plugin.c: loading plugins (dlopen), checking that they speak an API
** this host provides, and the registry of what they register.  The ABI is
** include/tailor_plugin.h; the guide for authors docs/plugins.md.
**
** Why the checks come in this order: nothing of a plugin runs before its
** init symbol is found, and nothing but that symbol runs before its
** descriptor says which API it was built for, so a plugin built against
** another ABI is refused with a message instead of being called with a
** table it does not understand.
*/
#include "engine/plugin.h"

#include <ctype.h>
#include <dlfcn.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "core/util.h"

#ifndef TAILOR_PLUGIN_DIR
#define TAILOR_PLUGIN_DIR "/usr/local/lib/tailor/plugins"
#endif

/* A Lua function a plugin registered. */
typedef struct plugin_fn {
  char *name;
  tailor_plugin_lua_fn fn;
  void *ud;
} plugin_fn;

/* One event subscription. */
typedef struct plugin_sub {
  tailor_plugin_event_fn fn;
  void *ud;
} plugin_sub;

struct tailor_plugin {
  tailor *t;
  void *dl;                       /* dlopen handle */
  const tailor_plugin_desc *desc; /* the plugin's, valid while dl is open */
  void *state;                    /* what start() gave */
  int started;                    /* start() succeeded: stop() is owed */
  int registering;                /* inside start(): registration open */
  plugin_fn *fns;
  size_t n_fns;
};

struct eng_plugins {
  tailor_plugin **list;
  size_t n;
  eng_channel *channels;
  size_t n_channels;
  plugin_sub *subs;
  size_t n_subs;
};

static eng_plugins *registry(tailor *t) {
  if (!t->plugins) t->plugins = calloc(1, sizeof *t->plugins);
  return t->plugins;
}

/* [a-z_][a-z0-9_]*, at most ENG_PLUGIN_MAX_NAME bytes. */
static int valid_name(const char *s) {
  if (!s || !*s || strlen(s) > ENG_PLUGIN_MAX_NAME || (*s >= '0' && *s <= '9'))
    return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return 0;
  return 1;
}

/* Grow `*v` (of `n` elements of `size` bytes) by one zeroed element. */
static void *grow(void **v, size_t n, size_t size) {
  void *more = realloc(*v, (n + 1) * size);
  if (!more) return NULL;
  *v = more;
  memset((char *)more + n * size, 0, size);
  return (char *)more + n * size;
}

/*
** The host's functions, as the API table hands them to plugins.
*/
static const char *plugin_name(const tailor_plugin *p) {
  return p && p->desc && p->desc->name ? p->desc->name : "plugin";
}

static void api_log(tailor_plugin *p, int level, const char *message) {
  if (!p) {
    fprintf(stderr, "tailor: plugin: %s\n", message ? message : "");
    return;
  }
  eng_log(p->t, level, "%s: %s", plugin_name(p), message ? message : "");
}

static int api_lua_function(tailor_plugin *p, const char *name,
                            tailor_plugin_lua_fn fn, void *ud) {
  if (!p || !p->registering || !valid_name(name) || !fn) return TAILOR_EINVAL;
  eng_plugins *r = p->t->plugins;
  for (size_t i = 0; i < p->n_fns; i++)
    if (!strcmp(p->fns[i].name, name)) return TAILOR_EINVAL;
  /* Two instances of one plugin would share tailor.plugins.<name>. */
  for (size_t i = 0; r && i < r->n; i++)
    if (r->list[i] != p && r->list[i]->n_fns &&
        !strcmp(plugin_name(r->list[i]), plugin_name(p)))
      return TAILOR_EINVAL;
  plugin_fn *f = grow((void **)&p->fns, p->n_fns, sizeof *p->fns);
  if (!f || !(f->name = strdup(name))) return TAILOR_ENOMEM;
  f->fn = fn;
  f->ud = ud;
  p->n_fns++;
  return TAILOR_OK;
}

static int api_subscribe(tailor_plugin *p, tailor_plugin_event_fn fn, void *ud) {
  if (!p || !p->registering || !fn) return TAILOR_EINVAL;
  eng_plugins *r = registry(p->t);
  plugin_sub *s = r ? grow((void **)&r->subs, r->n_subs, sizeof *r->subs) : NULL;
  if (!s) return TAILOR_ENOMEM;
  s->fn = fn;
  s->ud = ud;
  r->n_subs++;
  return TAILOR_OK;
}

static int add_channel(tailor *t, const char *name, int flags,
                       tailor_plugin_send_fn send, void *ud, const void *owner) {
  if (!valid_name(name) || !send) return TAILOR_EINVAL;
  if (eng_channel_find(t, name)) return TAILOR_EINVAL;
  eng_plugins *r = registry(t);
  eng_channel *c = r ? grow((void **)&r->channels, r->n_channels, sizeof *r->channels)
                     : NULL;
  if (!c || !(c->name = strdup(name))) return TAILOR_ENOMEM;
  c->flags = flags;
  c->send = send;
  c->ud = ud;
  c->render = NULL;
  c->render_ud = NULL;
  c->owner = owner;
  r->n_channels++;
  return TAILOR_OK;
}

static int api_channel(tailor_plugin *p, const char *name, int flags,
                       tailor_plugin_send_fn send, void *ud) {
  if (!p || !p->registering) return TAILOR_EINVAL;
  int rc = add_channel(p->t, name, flags, send, ud, p);
  if (rc == TAILOR_EINVAL && valid_name(name) && eng_channel_find(p->t, name))
    eng_log(p->t, TAILOR_LOG_ERROR, "%s: channel '%s' is provided by another plugin",
            plugin_name(p), name);
  return rc;
}

static int api_channel_render(tailor_plugin *p, const char *name,
                              tailor_plugin_render_fn render, void *ud) {
  if (!p || !p->registering || !render) return TAILOR_EINVAL;
  eng_channel *c = (eng_channel *)eng_channel_find(p->t, name);
  if (!c || c->owner != p) return TAILOR_EINVAL; /* only its own channels */
  c->render = render;
  c->render_ud = ud;
  return TAILOR_OK;
}

/* The table every plugin gets; it only ever grows at the end. */
static const tailor_plugin_api host_api = {
    sizeof(tailor_plugin_api), TAILOR_PLUGIN_API_VERSION, TAILOR_VERSION_STRING,
    api_log, api_lua_function, api_subscribe, api_channel, api_channel_render,
};

/*
** Loading.
*/

/* Where an entry's shared object is: "path" as given, or "name" in the
   plugin folder.  Returns a new string, or NULL with `err` filled. */
static char *entry_path(tailor *t, json_t *entry, size_t i, tailor_error *err) {
  const char *key;
  json_t *v;
  json_object_foreach(entry, key, v) {
    if (strcmp(key, "path") && strcmp(key, "name") && strcmp(key, "config")) {
      util_fail(err, TAILOR_ECONFIG, "plugins",
                "plugins[%zu]: unknown key '%s' (path, name, config)", i, key);
      return NULL;
    }
  }
  const char *path = json_string_value(json_object_get(entry, "path"));
  const char *name = json_string_value(json_object_get(entry, "name"));
  json_t *section = json_object_get(entry, "config");
  if (!!path == !!name || (path && !*path) || (section && !json_is_object(section))) {
    util_fail(err, TAILOR_ECONFIG, "plugins",
              "plugins[%zu]: give either \"path\" (a file) or \"name\" (found in "
              "plugin_dir), and \"config\" as an object",
              i);
    return NULL;
  }
  if (path) return strdup(path);
  if (!valid_name(name)) {
    util_fail(err, TAILOR_ECONFIG, "plugins",
              "plugins[%zu]: name '%s' is not [a-z_][a-z0-9_]*", i, name);
    return NULL;
  }
  const char *dir = *t->cfg.plugin_dir ? t->cfg.plugin_dir : TAILOR_PLUGIN_DIR;
  size_t n = strlen(dir) + strlen(name) + 5;
  char *out = malloc(n);
  if (out) snprintf(out, n, "%s/%s.so", dir, name);
  return out;
}

/* Check a descriptor before anything of it is used. */
static int check_desc(const tailor_plugin_desc *d, const char *path, size_t i,
                      tailor_error *err) {
  if (d->api_version > TAILOR_PLUGIN_API_VERSION)
    return util_fail(err, TAILOR_ECONFIG, "plugins",
                     "plugins[%zu]: %s was built for plugin API %d, but this tailor "
                     "(%s) provides plugin API %d: rebuild the plugin against this "
                     "tailor's tailor_plugin.h, or upgrade tailor",
                     i, path, d->api_version, TAILOR_VERSION_STRING,
                     TAILOR_PLUGIN_API_VERSION);
  if (d->api_version < TAILOR_PLUGIN_API_MIN)
    return util_fail(err, TAILOR_ECONFIG, "plugins",
                     "plugins[%zu]: %s was built for plugin API %d, older than the "
                     "oldest this tailor (%s) runs (%d): rebuild the plugin",
                     i, path, d->api_version, TAILOR_VERSION_STRING,
                     TAILOR_PLUGIN_API_MIN);
  if (d->size < sizeof(tailor_plugin_desc) || !d->start)
    return util_fail(err, TAILOR_ECONFIG, "plugins",
                     "plugins[%zu]: %s has a descriptor that is too short or has "
                     "no start function",
                     i, path);
  if (!valid_name(d->name))
    return util_fail(err, TAILOR_ECONFIG, "plugins",
                     "plugins[%zu]: %s names itself '%s', not [a-z_][a-z0-9_]*", i,
                     path, d->name ? d->name : "(null)");
  return TAILOR_OK;
}

static int load_one(tailor *t, json_t *entry, size_t i, tailor_error *err) {
  if (!json_is_object(entry))
    return util_fail(err, TAILOR_ECONFIG, "plugins",
                     "plugins[%zu]: expected {\"path\": ..., \"config\": {...}}", i);
  char *path = entry_path(t, entry, i, err);
  if (!path) return err && err->code ? err->code : TAILOR_ENOMEM;
  int rc = TAILOR_ECONFIG;
  eng_plugins *r = registry(t);
  tailor_plugin *p = calloc(1, sizeof *p);
  if (!r || !p || !grow((void **)&r->list, r->n, sizeof *r->list)) {
    free(p);
    free(path);
    return util_fail(err, TAILOR_ENOMEM, "plugins", "plugins: out of memory");
  }
  p->t = t;
  /* RTLD_NODELETE: a plugin's code stays mapped after dlclose, so an exit
     handler or thread its libraries left behind (libcurl, OpenSSL) never
     runs into unmapped code. */
  p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!p->dl) {
    const char *why = dlerror();
    util_fail(err, TAILOR_ECONFIG, "plugins", "plugins[%zu]: cannot load %s: %s", i,
              path, why ? why : "unknown error");
    goto fail;
  }
  tailor_plugin_init_fn init;
  *(void **)&init = dlsym(p->dl, TAILOR_PLUGIN_INIT);
  if (!init) {
    util_fail(err, TAILOR_ECONFIG, "plugins",
              "plugins[%zu]: %s is not a tailor plugin: it exports no %s symbol", i,
              path, TAILOR_PLUGIN_INIT);
    goto fail;
  }
  if (!(p->desc = init(TAILOR_PLUGIN_API_VERSION, &host_api))) {
    util_fail(err, TAILOR_ECONFIG, "plugins",
              "plugins[%zu]: %s refused to initialize with plugin API %d (tailor %s)",
              i, path, TAILOR_PLUGIN_API_VERSION, TAILOR_VERSION_STRING);
    goto fail;
  }
  if ((rc = check_desc(p->desc, path, i, err))) {
    p->desc = NULL;
    goto fail;
  }
  /* The plugin is in the list from here on, so a failure below still
     unloads it with the others. */
  r->list[r->n++] = p;
  json_t *section = json_object_get(entry, "config");
  char *conf_text = section ? json_dumps(section, JSON_COMPACT) : strdup("{}");
  char why[400] = "";
  p->registering = 1;
  int started = conf_text ? p->desc->start(p, conf_text, &p->state, why, sizeof why) : -1;
  p->registering = 0;
  free(conf_text);
  if (started != 0) {
    rc = util_fail(err, TAILOR_ECONFIG, "plugins",
                   "plugins[%zu]: %s (%s %s) failed to start: %s", i,
                   p->desc->name, path, p->desc->version ? p->desc->version : "",
                   *why ? why : "no reason given");
    free(path);
    return rc;
  }
  p->started = 1;
  eng_log(t, TAILOR_LOG_INFO, "plugin %s %s loaded from %s", p->desc->name,
          p->desc->version ? p->desc->version : "", path);
  free(path);
  return TAILOR_OK;
fail:
  if (p->dl) dlclose(p->dl);
  free(p);
  free(path);
  return rc;
}

int eng_plugins_load(tailor *t, tailor_error *err) {
  json_t *list = t->cfg.plugins;
  size_t i;
  json_t *entry;
  json_array_foreach(list, i, entry) {
    int rc = load_one(t, entry, i, err);
    if (rc) return rc;
  }
  return TAILOR_OK;
}

void eng_plugins_unload(tailor *t) {
  eng_plugins *r = t->plugins;
  if (!r) return;
  for (size_t i = r->n; i-- > 0;) {
    tailor_plugin *p = r->list[i];
    if (p->started && p->desc->stop) p->desc->stop(p->state);
    for (size_t j = 0; j < p->n_fns; j++) free(p->fns[j].name);
    free(p->fns);
    dlclose(p->dl);
    free(p);
  }
  for (size_t i = 0; i < r->n_channels; i++) free(r->channels[i].name);
  free(r->channels);
  free(r->subs);
  free(r->list);
  free(r);
  t->plugins = NULL;
}

/* Whether msg starts "where:line:" (a position Lua added). */
static int has_position(const char *msg) {
  const char *c = strchr(msg, ':');
  if (!c || c == msg || !isdigit((unsigned char)c[1])) return 0;
  for (c++; isdigit((unsigned char)*c); c++) continue;
  return *c == ':';
}

/*
** A plugin's Lua function (upvalue 1, named upvalue 2) called with its
** table arguments made whole, and the tables within them (lvm_whole_deep):
** a kernel's list reaches C code as its rows, a ctx.customer inside a
** table with all its fields.  Its error reads as if the strategy had
** called it directly: the strategy's line in front, the function's name
** for luaL_argerror's '?' (called from C, Lua cannot tell it).
*/
static int plugin_call(lua_State *L) {
  int n = lua_gettop(L);
  for (int i = 1; i <= n; i++) lvm_whole_deep(L, i);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  if (lua_pcall(L, n, LUA_MULTRET, 0) == LUA_OK) return lua_gettop(L);
  if (lua_type(L, -1) == LUA_TSTRING) {
    const char *msg = lua_tostring(L, -1);
    int where = !has_position(msg);
    lua_pushfstring(L, "to '%s'", lua_tostring(L, lua_upvalueindex(2)));
    luaL_gsub(L, msg, "to '?'", lua_tostring(L, -1));
    if (where) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
  }
  return lua_error(L);
}

/*
** What the registry serves.
*/
void eng_plugins_open_lua(lua_State *L, tailor *t) {
  eng_plugins *r = t ? t->plugins : NULL;
  lua_newtable(L);
  for (size_t i = 0; r && i < r->n; i++) {
    tailor_plugin *p = r->list[i];
    if (!p->n_fns) continue;
    lua_createtable(L, 0, (int)p->n_fns);
    for (size_t j = 0; j < p->n_fns; j++) {
      lua_pushlightuserdata(L, p->fns[j].ud);
      lua_pushcclosure(L, (lua_CFunction)p->fns[j].fn, 1);
      lua_pushstring(L, p->fns[j].name);
      lua_pushcclosure(L, plugin_call, 2);
      lua_setfield(L, -2, p->fns[j].name);
    }
    lua_setfield(L, -2, p->desc->name);
  }
  lua_setfield(L, -2, "plugins");
}

void eng_plugins_events(tailor *t, ev *const *evs, size_t n) {
  eng_plugins *r = t->plugins;
  if (!r || !r->n_subs) return;
  for (size_t i = 0; i < n; i++) {
    if (evs[i]->dup) continue; /* delivered when it was first stored */
    size_t len;
    const char *json = ev_body(evs[i], &len);
    if (!json) continue;
    for (size_t j = 0; j < r->n_subs; j++)
      r->subs[j].fn(r->subs[j].ud, ev_type_name(evs[i]->type), json, len);
  }
}

const eng_channel *eng_channel_find(tailor *t, const char *name) {
  eng_plugins *r = t->plugins;
  for (size_t i = 0; r && name && i < r->n_channels; i++)
    if (!strcmp(r->channels[i].name, name)) return &r->channels[i];
  return NULL;
}

size_t eng_channel_count(tailor *t) { return t->plugins ? t->plugins->n_channels : 0; }

const eng_channel *eng_channel_at(tailor *t, size_t i) {
  return &t->plugins->channels[i];
}

int eng_channel_add(tailor *t, const char *name, int flags,
                    tailor_plugin_send_fn send, void *ud, tailor_error *err) {
  int rc = add_channel(t, name, flags, send, ud, NULL);
  if (rc)
    util_fail(err, rc, "channel", "channel '%s': %s", name ? name : "(null)",
              rc == TAILOR_ENOMEM ? "out of memory" : "bad or taken name");
  return rc;
}

int eng_channel_render_set(tailor *t, const char *name, tailor_plugin_render_fn render,
                           void *ud, tailor_error *err) {
  eng_channel *c = (eng_channel *)eng_channel_find(t, name);
  if (!c || c->owner || !render)
    return util_fail(err, TAILOR_EINVAL, "channel", "channel '%s': %s", name ? name : "(null)",
                     !c ? "no such channel" : c->owner ? "a plugin's channel" : "no renderer");
  c->render = render;
  c->render_ud = ud;
  return TAILOR_OK;
}
