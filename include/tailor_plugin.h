/*
** tailor_plugin.h: the plugin ABI of tailor.  A plugin is a shared object
** that tailor loads with dlopen() when the configuration names it
** ("plugins": [{"path": "...", "config": {...}}]).  docs/plugins.md is the
** guide; this header is the contract.
**
** One symbol is exported: tailor_plugin_init (TAILOR_PLUGIN_INIT).  The
** host calls it once per loading with the API version it speaks and a
** table of function pointers (tailor_plugin_api); the plugin keeps the
** table and returns its descriptor (tailor_plugin_desc), which says the API
** version the plugin was built for.  The host refuses, with a message and
** before calling anything else of the plugin, a descriptor built for an API
** it does not provide.  It then calls desc->start() with the plugin's
** "config" object; start() registers what the plugin provides:
**   - Lua functions strategies call as tailor.plugins.<name>.<function>
**   - a subscription to events, called once they are durable
**   - delivery channels ("email", "webhook", ...) for outbox rows
** Registration is open only during start(): afterwards the host's tables
** are fixed, so it reads them without locks.
**
** Compatibility: the API table and the structs below only ever grow at the
** end, and TAILOR_PLUGIN_API_VERSION grows with them.  A host runs plugins
** built for its version or an older one down to TAILOR_PLUGIN_API_MIN; a
** plugin built for a newer API than the host's is refused.  A plugin that
** wants a function added in a later version checks api->version (or
** api->size) before calling it.
**
** Threads: every callback a plugin registers may be called from several
** threads at once (decisions run in parallel; an embedder may deliver from
** several threads); a plugin protects its own shared state.  Errors:
** functions of the table return 0 or a negative tailor_code.  Strings the
** host passes are borrowed for the duration of the call.
*/
#ifndef TAILOR_PLUGIN_H
#define TAILOR_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The API this header describes, and the oldest one a host still runs.
   2: channel_render (a channel shows a row as it would send it). */
#define TAILOR_PLUGIN_API_VERSION 2
#define TAILOR_PLUGIN_API_MIN 1

/* The name of the one symbol a plugin exports. */
#define TAILOR_PLUGIN_INIT "tailor_plugin_init"

#if defined(__GNUC__)
#define TAILOR_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define TAILOR_PLUGIN_EXPORT
#endif

struct lua_State;              /* Lua 5.4, from <lua.h> */
typedef struct tailor_plugin tailor_plugin; /* one loaded plugin; opaque */

/* A Lua C function (the same type as lua_CFunction). */
typedef int (*tailor_plugin_lua_fn)(struct lua_State *L);

/*
** An event once durable in the store: its type ("purchase") and its
** normalized JSON document (docs/events.md), `len` bytes, NUL-terminated.
** Called on the thread that ingested it, after the store commit and the
** index update; keep it short (queue slow work on a thread of your own).
*/
typedef void (*tailor_plugin_event_fn)(void *ud, const char *type,
                                       const char *json, size_t len);

/*
** One outbox row to deliver.  The host fills `size` with sizeof of its own
** struct; fields are only ever added at the end.
*/
typedef struct tailor_delivery {
  size_t size;
  int64_t id;               /* the outbox row */
  const char *key;          /* idempotency key: the same message, never
                               another, is behind the same key */
  const char *channel;      /* the channel's name */
  const char *customer;     /* customer id, or NULL */
  const char *email;        /* the customer's address when they consented
                               to email, else NULL */
  const char *template_name;/* what to send ("abandoned_cart") */
  const char *vars;         /* the template's variables: a JSON object */
  const char *json;         /* the whole row as a JSON object: id, key,
                               channel, customer, email (only when set
                               above), template, vars, due, created,
                               attempt */
  int attempt;              /* 1 on the first try */
  int64_t due, created;     /* ms since the epoch */
} tailor_delivery;

/* What a channel's send returns. */
enum {
  TAILOR_SEND_OK = 0,    /* delivered: never sent again */
  TAILOR_SEND_RETRY = 1, /* a temporary failure: retried with backoff */
  TAILOR_SEND_FAIL = 2   /* a permanent failure: the row goes dead now */
};

/*
** Deliver one row; blocking is fine (the host calls it off any event
** loop) but bound it with timeouts shorter than delivery.lease_ms.  On
** failure write a one-line reason into `err` (`errlen` bytes), which the
** outbox keeps as the row's last_error.
*/
typedef int (*tailor_plugin_send_fn)(void *ud, const tailor_delivery *d,
                                     char *err, size_t errlen);

/*
** Since API 2: render a row as the channel would send it, without sending
** (the console's preview of a message).  Call `part` once for each part of
** the message, in order, with its name and `len` bytes of UTF-8 (borrowed
** for the call): an email's "from", "to", "subject", "text" and "html"; a
** channel of another kind names its own ("body").  The same code as the
** send must make them, so what is shown is what goes out.  Never touch the
** network.  Returns 0, or nonzero with a one-line reason in `err`.
*/
typedef void (*tailor_render_part_fn)(void *ctx, const char *part, const char *text,
                                      size_t len);
typedef int (*tailor_plugin_render_fn)(void *ud, const tailor_delivery *d,
                                       tailor_render_part_fn part, void *ctx,
                                       char *err, size_t errlen);

/* Flags of a channel. */
enum {
  /* The channel reaches the customer's inbox (an SMTP server, an email
     service behind a webhook): the host checks email consent and address
     and the weekly email cap again at send time, and records an
     email_sent event after a delivery. */
  TAILOR_CHANNEL_EMAIL = 1
};

/* Log levels (as TAILOR_LOG_* in tailor.h). */
enum { TAILOR_PLUGIN_LOG_ERROR = 0, TAILOR_PLUGIN_LOG_WARN = 1,
       TAILOR_PLUGIN_LOG_INFO = 2, TAILOR_PLUGIN_LOG_DEBUG = 3 };

/*
** The host's functions.  `size` is sizeof the table the host filled and
** `version` its TAILOR_PLUGIN_API_VERSION.  Only ever grows at the end.
*/
typedef struct tailor_plugin_api {
  size_t size;
  int version;
  const char *host_version; /* tailor's version string, "0.1.0" */

  /* Write a line to the engine's log, prefixed with the plugin's name
     (`p` may be NULL inside tailor_plugin_init, before there is one). */
  void (*log)(tailor_plugin *p, int level, const char *message);

  /*
  ** During start only: make `fn` callable by strategies as
  ** tailor.plugins.<plugin name>.<name>.  `name` is [a-z_][a-z0-9_]*.
  ** `ud` is the function's first upvalue (lua_upvalueindex(1), a light
  ** userdata).  The function runs inside a strategy call: in the sandbox's
  ** budget, on any deciding thread, with the engine's index read lock
  ** held, so it must not call back into the engine.  TAILOR_EINVAL for a
  ** bad or duplicate name or outside start.
  */
  int (*lua_function)(tailor_plugin *p, const char *name,
                      tailor_plugin_lua_fn fn, void *ud);

  /* During start only: call `fn` for every durable event. */
  int (*subscribe)(tailor_plugin *p, tailor_plugin_event_fn fn, void *ud);

  /*
  ** During start only: deliver outbox rows whose channel is `name`
  ** ([a-z_][a-z0-9_]*) with `send`.  `flags`: TAILOR_CHANNEL_*.
  ** TAILOR_EINVAL when another plugin already provides that channel.
  */
  int (*channel)(tailor_plugin *p, const char *name, int flags,
                 tailor_plugin_send_fn send, void *ud);

  /*
  ** Since API 2 (check api->version first).  During start only: show rows
  ** of channel `name`, one this plugin registered, with `render` (called
  ** with `ud`; from any thread, like send).  TAILOR_EINVAL for a channel
  ** this plugin does not provide or outside start.
  */
  int (*channel_render)(tailor_plugin *p, const char *name,
                        tailor_plugin_render_fn render, void *ud);
} tailor_plugin_api;

/*
** What a plugin is: returned by tailor_plugin_init, and read by the host
** until the plugin is unloaded (a static struct is the usual home).
*/
typedef struct tailor_plugin_desc {
  int api_version;     /* TAILOR_PLUGIN_API_VERSION the plugin was built for */
  size_t size;         /* sizeof(tailor_plugin_desc) as the plugin saw it */
  const char *name;    /* [a-z_][a-z0-9_]*: log prefix, Lua table name */
  const char *version; /* the plugin's own version, "1.0.0" */
  const char *summary; /* one line: what it does */
  /*
  ** Start one instance: `config_json` is the entry's "config" object as
  ** JSON text ("{}" when absent).  Registers what the plugin provides
  ** through the api with `p`, and stores its instance state in *state
  ** (given back to stop).  Returns 0, or nonzero with a one-line reason in
  ** `err`, which refuses the engine's start.
  */
  int (*start)(tailor_plugin *p, const char *config_json, void **state,
               char *err, size_t errlen);
  /* Release an instance (may be NULL); no callback runs after it. */
  void (*stop)(void *state);
} tailor_plugin_desc;

/*
** The one symbol: called once per loading with the host's API version and
** table (valid until the plugin is unloaded).  Returns the descriptor, or
** NULL to refuse the host (say why with api->log first, if the table is
** recent enough to have it).
*/
typedef const tailor_plugin_desc *(*tailor_plugin_init_fn)(
    int host_api_version, const tailor_plugin_api *api);

TAILOR_PLUGIN_EXPORT const tailor_plugin_desc *tailor_plugin_init(
    int host_api_version, const tailor_plugin_api *api);

#ifdef __cplusplus
}
#endif
#endif /* TAILOR_PLUGIN_H */
