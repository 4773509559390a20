/*
** server.h: `tailor serve`, the socket server for storefronts (libuv):
** NDJSON and HTTP/1.1 on one TCP port, optionally a Unix socket too.
** The protocol is in docs/server.md; the threading model at the top of
** server.c.  The CLI (host/cli/serve.c) reads the config file, takes the
** "server" section out for srv_conf_parse(), opens the engine with the
** rest, and calls srv_run().
*/
#ifndef TAILOR_SRV_SERVER_H
#define TAILOR_SRV_SERVER_H

#include <jansson.h>
#include <stddef.h>

#include "core/defaults.h"
#include "tailor.h"

/*
** The server's numeric settings: X(field, NAME, min, max).  The key
** ("server.max_line_bytes" is "max_line_bytes" in the section), default
** and meaning are the row NAME of DEFAULTS_MAP in core/defaults.h; this
** table adds the range a value must be in.  One table for the parser, the
** defaults, `tailor serve --help` and the docs.
*/
#define SRV_CONF_INTS(X)                                                     \
  X(max_line_bytes, SERVER_MAX_LINE_BYTES, 256, 64L << 20)                   \
  X(max_body_bytes, SERVER_MAX_BODY_BYTES, 256, 64L << 20)                   \
  X(max_batch_events, SERVER_MAX_BATCH_EVENTS, 1, 100000)                    \
  X(max_connections, SERVER_MAX_CONNECTIONS, 1, 1000000)                     \
  X(max_conns_per_peer, SERVER_MAX_CONNS_PER_PEER, 0, 1000000)               \
  X(max_inflight, SERVER_MAX_INFLIGHT, 1, 65536)                             \
  X(max_output_bytes, SERVER_MAX_OUTPUT_BYTES, 4096, 1L << 30)               \
  X(idle_timeout_ms, SERVER_IDLE_TIMEOUT_MS, 0, 86400000L)                   \
  X(header_timeout_ms, SERVER_HEADER_TIMEOUT_MS, 0, 86400000L)               \
  X(threads, SERVER_THREADS, 0, 256)                                         \
  X(shutdown_grace_ms, SERVER_SHUTDOWN_GRACE_MS, 0, 3600000L)                \
  X(deliver_interval_ms, SERVER_DELIVER_INTERVAL_MS, 0, 3600000L)            \
  X(deliver_batch, SERVER_DELIVER_BATCH, 1, DEF_DELIVER_MAX_BATCH)           \
  X(console_session_ms, SERVER_CONSOLE_SESSION_MS, 1000, 30L * 86400000L)  \
  X(console_snapshot_ms, SERVER_CONSOLE_SNAPSHOT_MS, 0, 30L * 86400000L)

#define SRV_DEFAULT_LISTEN "127.0.0.1:7300"

/* A token and the role (srv_role) it grants. */
typedef struct srv_token {
  char *token;
  int role;
} srv_token;

/* The "server" section of the config.  Owns every pointer. */
typedef struct srv_conf {
  char *listen;          /* "host:port" ("[::1]:7300" for IPv6); "" for none */
  char host[64];         /* numeric address */
  int port;              /* 0: any free port, printed at start */
  char *unix_path;       /* Unix socket path, or NULL */
  srv_token *tokens;
  size_t n_tokens;
  char **cors;           /* allowed origins; "*" allows any */
  size_t n_cors;
  char *static_dir;      /* folder served for GET of other paths, or NULL */
  char *customer_secret; /* signs customer tokens (HMAC-SHA256), or NULL */
#define SRV_CONF_FIELD_(f, name, lo, hi) long f;
  SRV_CONF_INTS(SRV_CONF_FIELD_)
#undef SRV_CONF_FIELD_
} srv_conf;

/*
** Parse the "server" section (NULL for the defaults) into `c`.  Unknown
** keys and wrong types are errors naming the key, in `err` (its field is
** the key).  Returns 0, or a negative tailor_code with `c` holding nothing
** to free.
*/
int srv_conf_parse(const json_t *section, srv_conf *c, tailor_error *err);
void srv_conf_free(srv_conf *c);

/*
** Read a config file: the "server" section into `c`, and the rest (the
** engine's keys) into *engine (a new reference the caller releases).
** `path` NULL gives the defaults and an empty engine object.
*/
int srv_conf_load(const char *path, srv_conf *c, json_t **engine, tailor_error *err);

/*
** Whether `c` may be served: tokens configured, or `insecure` with only
** loopback TCP addresses.  0, or TAILOR_EINVAL with the reason in `err`.
*/
int srv_conf_check(const srv_conf *c, int insecure, tailor_error *err);

/* Replace the listen address and/or the Unix socket path (NULL: keep),
   as --listen and --unix do.  0, or a negative tailor_code with the reason
   in `err`. */
int srv_conf_override(srv_conf *c, const char *listen, const char *unix_path,
                      tailor_error *err);

/* Call `fn` for each numeric key: name, default, doc (for --help, docs). */
void srv_conf_each(void (*fn)(void *ud, const char *key, long def, const char *doc),
                   void *ud);

/* What the command line adds to the config. */
typedef struct srv_opts {
  const char *config_path; /* re-read on SIGHUP; NULL: nothing to reload */
  const char *listen;      /* --listen, kept over reloads; or NULL */
  const char *unix_path;   /* --unix, kept over reloads; or NULL */
  const json_t *engine;    /* the file's engine keys at start (borrowed), to
                              warn when a reload changes them */
  int insecure;            /* --insecure: without tokens everyone is admin */
} srv_opts;

/*
** Serve `t` until SIGTERM or SIGINT.  Takes over `conf` (it frees it, and
** replaces it on SIGHUP).  Returns 0 after a clean shutdown, 1 when the
** server could not start (the reason is printed).
*/
int srv_run(tailor *t, srv_conf *conf, const srv_opts *o);

/*
** After srv_run: tailor_close(t), its lines (a refit finishing, a
** checkpoint that cannot be written) in the server's log, then "stopped"
** when `served` (srv_run returned 0).
*/
void srv_close_engine(tailor *t, int served);

#endif /* TAILOR_SRV_SERVER_H */
