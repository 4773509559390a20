/*
** plugin.h: the host side of the plugin ABI (include/tailor_plugin.h):
** loading the plugins the configuration names, and the three things they
** register: Lua functions, event subscriptions, delivery channels (and
** how a channel renders a row, for a preview).
**
** Everything is registered while tailor_open() loads the plugins and is
** fixed afterwards, so readers (decisions, ingestion, delivery) need no
** lock.  The engine owns the registry (t->plugins); tailor_close() stops
** the plugins after every Lua state that could call into them is gone.
*/
#ifndef TAILOR_ENG_PLUGIN_H
#define TAILOR_ENG_PLUGIN_H

#include <lua.h>
#include <stddef.h>

#include "core/event.h"
#include "tailor.h"
#include "tailor_plugin.h"

/* A delivery channel a plugin provides. */
typedef struct eng_channel {
  char *name;                  /* owned */
  int flags;                   /* TAILOR_CHANNEL_* */
  tailor_plugin_send_fn send;
  void *ud;
  tailor_plugin_render_fn render; /* NULL: the channel cannot show a row */
  void *render_ud;
  const void *owner;           /* the plugin that registered it (NULL: the host) */
} eng_channel;

/* Longest plugin, channel or Lua function name. */
#define ENG_PLUGIN_MAX_NAME 64

/*
** Load every plugin of the config's "plugins" list, in order, and start
** each.  Returns TAILOR_OK, or TAILOR_ECONFIG with `err` naming the entry
** and what went wrong (a file that does not load, no init symbol, an API
** version this host does not provide, a start that failed).  Nothing a
** plugin does at load can crash the host short of a crash in its own code.
*/
int eng_plugins_load(tailor *t, tailor_error *err);

/* Stop every plugin (last loaded first) and free the registry.  The caller
   has freed every Lua state. */
void eng_plugins_unload(tailor *t);

/* Set field "plugins" of the table at the top of the stack (the `tailor`
   global being built): one table per plugin with Lua functions. */
void eng_plugins_open_lua(lua_State *L, tailor *t);

/* Hand events just made durable to the plugins that subscribed. */
void eng_plugins_events(tailor *t, ev *const *evs, size_t n);

/* The channel named `name`, or NULL when no plugin provides it. */
const eng_channel *eng_channel_find(tailor *t, const char *name);

/* The number of channels, and the i-th one (0 <= i < count). */
size_t eng_channel_count(tailor *t);
const eng_channel *eng_channel_at(tailor *t, size_t i);

/*
** Add a channel outside a plugin (tests, and hosts built into one
** binary).  Not thread-safe against delivery: call it before the first
** tailor_deliver_due().  TAILOR_EINVAL for a bad or taken name.
*/
int eng_channel_add(tailor *t, const char *name, int flags,
                    tailor_plugin_send_fn send, void *ud, tailor_error *err);

/* Give a channel added with eng_channel_add a renderer for previews (as a
   plugin's channel_render does).  TAILOR_EINVAL for an unknown channel or
   a plugin's. */
int eng_channel_render_set(tailor *t, const char *name, tailor_plugin_render_fn render,
                           void *ud, tailor_error *err);

#endif /* TAILOR_ENG_PLUGIN_H */
