/*
** server.c: `tailor serve`: listeners, signals, configuration reload and
** shutdown around one engine.  Protocol in docs/server.md.
**
** Threading model
** ---------------
** - One event loop thread (libuv) owns every socket, connection, job list,
**   counter and the configuration.  It reads, cuts requests (NDJSON lines,
**   or HTTP through http_parser), parses and validates them (request.c,
**   route.c), checks tokens, answers what needs no engine (ping, auth,
**   healthz, CORS preflights, every error), and writes responses back in
**   request order.
** - `threads` decision workers (default: one per CPU) take reads from one
**   queue: decide, customer.get, stats, metrics.  They call the engine in
**   parallel; each worker thread gets its own Lua state inside the engine
**   (tailor_decide keys it by thread), and the index is shared under the
**   engine's reader/writer lock.  When they and the writer are all idle,
**   a decision the strategies answer quickly runs on the loop instead
**   (srv_decide_inline, work.c).
** - One writer thread takes every queued write (event, events, item.*,
**   customer.upsert, identify, customer.forget) at once and commits runs of
**   them as one tailor_ingest_batch: one transaction and one fsync for many
**   requests, in arrival order, so events are stored and applied in one
**   order.  A write is answered only after the batch returns, when it is
**   durable; an error answers every request of a batch that failed.
** - One delivery thread (deliver.c) calls tailor_deliver_due() every
**   deliver_interval_ms: outbox rows go out through the plugins' channels
**   there, so a slow SMTP server or webhook never holds up the loop or a
**   decision.
** - One thread (sizes.c) keeps the console's audience and segment sizes
**   every console_snapshot_ms, for its chart over time.
** - Threads hand finished jobs back through a uv_async_t; the loop never
**   waits on the engine, and no other thread touches a connection.  Per
**   connection a read waits for the writes sent before it (read your own
**   writes); different connections are not ordered against each other.
**
** Signals: SIGTERM/SIGINT stop accepting, stop reading, let every parsed
** request finish and its response go out (up to shutdown_grace_ms), stop
** delivery after the send under way (deliver.c), then return so the CLI
** closes the engine (which writes the index checkpoint).
** A second signal closes connections at once.  SIGHUP re-reads the config
** file's "server" section: tokens, CORS origins and limits apply at once;
** listen addresses and threads need a restart.  Strategies reload by
** themselves inside the engine.
*/
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "server/internal.h"

/*
** Logging: one line per message on stderr with a UTC timestamp, from any
** thread.  A strategy failing on every request writes a line per request,
** so lines are rationed by kind: past SRV_LOG_PER_KIND lines of one kind in
** a second the rest of that kind are counted and reported, and the flood
** fills neither the disk nor the budget of the other lines.  (With one
** budget for every line, a failing strategy's errors crowded out the line
** of a refused SIGHUP and the line saying the fixed strategy was loaded.)
** A kind is the text before the first ':' or '(', digits aside:
** "recommend.lua:5: ...", "SIGHUP: ...".  SRV_LOG_KINDS kinds are told
** apart a second; lines of any further kind share one budget.
*/
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static time_t log_second;
static int log_dropped, log_n_kinds;
static struct {
  uint64_t key;
  int lines;
} log_kinds[SRV_LOG_KINDS + 1]; /* the last: every kind past the table */

static uint64_t log_kind(const char *msg) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int i = 0; msg[i] && msg[i] != ':' && msg[i] != '(' && i < 48; i++)
    if (msg[i] < '0' || msg[i] > '9') h = (h ^ (unsigned char)msg[i]) * 0x100000001b3ull;
  return h;
}

/* Whether a line of this kind may go out this second (under log_mu). */
static int log_allowed(uint64_t key) {
  int k = 0;
  while (k < log_n_kinds && log_kinds[k].key != key) k++;
  if (k == log_n_kinds && log_n_kinds < SRV_LOG_KINDS) {
    log_kinds[k].key = key;
    log_kinds[k].lines = 0;
    log_n_kinds++;
  }
  int limit = k < SRV_LOG_KINDS ? SRV_LOG_PER_KIND : SRV_LOG_PER_SEC;
  return log_kinds[k].lines++ < limit;
}

void srv_log(int level, const char *fmt, ...) {
  static const char *const names[] = {"error", "warning", "info", "debug"};
  if (level > TAILOR_LOG_INFO) return;
  char msg[1024], stamp[32];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  pthread_mutex_lock(&log_mu);
  if (now != log_second) {
    if (log_dropped)
      fprintf(stderr,
              "%s tailor: warning: %d log lines dropped (more than %d of a kind a second)\n",
              stamp, log_dropped, SRV_LOG_PER_KIND);
    log_second = now;
    log_dropped = log_n_kinds = 0;
    log_kinds[SRV_LOG_KINDS].lines = 0;
  }
  if (log_allowed(log_kind(msg)))
    fprintf(stderr, "%s tailor: %s: %s\n", stamp, names[level < 0 ? 0 : level], msg);
  else
    log_dropped++;
  pthread_mutex_unlock(&log_mu);
}

static void engine_log(void *ud, int level, const char *message) {
  srv_console_log(ud, level, message);
  srv_log(level, "%s", message);
}

/* The engine's lines once the server (and its console) is gone. */
static void closing_log(void *ud, int level, const char *message) {
  (void)ud;
  srv_log(level, "%s", message);
}

/*
** Shutdown.
*/
static void on_handle_closed(uv_handle_t *h) {
  srv *s = h->data;
  if (h == (uv_handle_t *)&s->tcp) s->tcp_on = 0;
  if (h == (uv_handle_t *)&s->pipe) s->pipe_on = 0;
  srv_maybe_stopped(s);
}

/* Once stopping and no connection is left: close the rest, and uv_run
   returns. */
void srv_maybe_stopped(srv *s) {
  if (!s->stopping || s->alive || s->tcp_on || s->pipe_on || s->handles_closed) return;
  s->handles_closed = 1;
  uv_close((uv_handle_t *)&s->done_async, NULL);
  if (s->turn_on) uv_close((uv_handle_t *)&s->turn, NULL);
  uv_close((uv_handle_t *)&s->sig_term, NULL);
  uv_close((uv_handle_t *)&s->sig_int, NULL);
  uv_close((uv_handle_t *)&s->sig_hup, NULL);
  uv_close((uv_handle_t *)&s->grace, NULL);
}

static void close_listeners(srv *s) {
  if (s->tcp_on && !uv_is_closing((uv_handle_t *)&s->tcp))
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
  if (s->pipe_on && !uv_is_closing((uv_handle_t *)&s->pipe)) {
    uv_close((uv_handle_t *)&s->pipe, on_handle_closed);
    /* The path bound at start: a reload may have changed the config's. */
    if (s->pipe_path) unlink(s->pipe_path);
  }
}

static void close_all(srv *s) {
  for (conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    srv_conn_close(c);
  }
}

static void on_grace(uv_timer_t *t) {
  srv *s = t->data;
  srv_log(TAILOR_LOG_WARN, "shutdown: %d connections still busy after %ld ms; closing them",
          s->alive, s->conf->shutdown_grace_ms);
  close_all(s);
}

static void begin_stop(srv *s, const char *why) {
  s->stopping = 1;
  srv_log(TAILOR_LOG_INFO,
          "%s: stopping: no new connections; in-flight requests finish (connections "
          "open: %d)",
          why, s->alive);
  close_listeners(s);
  srv_deliver_quit(s);
  for (conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    srv_conn_finish(c);
  }
  if (s->conf->shutdown_grace_ms)
    uv_timer_start(&s->grace, on_grace, (uint64_t)s->conf->shutdown_grace_ms, 0);
  else
    close_all(s);
  srv_maybe_stopped(s);
}

static void on_stop(uv_signal_t *sig, int signum) {
  srv *s = sig->data;
  if (s->stopping) {
    srv_log(TAILOR_LOG_WARN, "%s again: closing every connection now", strsignal(signum));
    close_all(s);
    return;
  }
  begin_stop(s, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/*
** Reload.
*/
static void on_reload(uv_signal_t *sig, int signum) {
  srv *s = sig->data;
  const char *path = s->opts.config_path;
  if (!path) {
    srv_log(TAILOR_LOG_WARN, "SIGHUP: started without --config, nothing to reload");
    return;
  }
  tailor_error err = {0};
  json_t *engine = NULL;
  srv_conf *nc = calloc(1, sizeof *nc);
  if (!nc || srv_conf_load(path, nc, &engine, &err) ||
      srv_conf_override(nc, s->opts.listen, s->opts.unix_path, &err) ||
      srv_conf_check(nc, s->opts.insecure, &err)) {
    srv_conf_free(nc);
    free(nc);
    json_decref(engine);
    srv_log(TAILOR_LOG_ERROR, "SIGHUP: reload refused, the running configuration stays: %s",
            nc ? err.message : "out of memory");
    return;
  }
  const srv_conf *old = s->conf;
  if (strcmp(nc->listen, old->listen) || nc->threads != old->threads ||
      !!nc->unix_path != !!old->unix_path ||
      (nc->unix_path && strcmp(nc->unix_path, old->unix_path)))
    srv_log(TAILOR_LOG_WARN,
            "SIGHUP: server.listen, server.unix and server.threads take effect on restart");
  if (s->opts.engine && !json_equal(engine, (json_t *)s->opts.engine))
    srv_log(TAILOR_LOG_WARN,
            "SIGHUP: engine settings changed; they take effect on restart (strategy "
            "files reload by themselves)");
  json_decref(engine);
  srv_conf_free(s->conf);
  free(s->conf);
  s->conf = nc;
  s->conf_gen++;
  srv_log(TAILOR_LOG_INFO, "SIGHUP: configuration reloaded from %s (%zu tokens, %zu CORS origins)",
          path, nc->n_tokens, nc->n_cors);
}

/*
** Listening.
*/
static int listen_tcp(srv *s) {
  const srv_conf *cf = s->conf;
  struct sockaddr_storage sa;
  int rc = strchr(cf->host, ':') ? uv_ip6_addr(cf->host, cf->port, (struct sockaddr_in6 *)&sa)
                                 : uv_ip4_addr(cf->host, cf->port, (struct sockaddr_in *)&sa);
  if (!rc && !(rc = uv_tcp_init(s->loop, &s->tcp))) {
    s->tcp_on = 1;
    s->tcp.data = s;
    if (!(rc = uv_tcp_bind(&s->tcp, (const struct sockaddr *)&sa, 0)))
      rc = uv_listen((uv_stream_t *)&s->tcp, SRV_BACKLOG, srv_on_connection);
  }
  if (rc) {
    srv_log(TAILOR_LOG_ERROR, "cannot listen on %s: %s", cf->listen, uv_strerror(rc));
    return -1;
  }
  struct sockaddr_storage bound;
  int len = sizeof bound;
  char host[64] = "?";
  int port = cf->port;
  if (!uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&bound, &len)) {
    if (bound.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&bound, host, sizeof host);
      port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&bound, host, sizeof host);
      port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    }
  }
  srv_log(TAILOR_LOG_INFO, "listening on %s%s%s:%d (NDJSON and HTTP)",
          bound.ss_family == AF_INET6 ? "[" : "", host,
          bound.ss_family == AF_INET6 ? "]" : "", port);
  return 0;
}

/* Whether a server answers on the Unix socket at `path`. */
static int unix_alive(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) return 0;
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  int alive = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  if (fd >= 0) close(fd);
  return alive;
}

static int listen_unix(srv *s) {
  const char *path = s->conf->unix_path;
  struct stat st;
  /* A socket file left by a server that died is ours to replace; one that
     a live server answers on, or anything else at the path, is not. */
  if (!lstat(path, &st) && S_ISSOCK(st.st_mode)) {
    if (unix_alive(path)) {
      srv_log(TAILOR_LOG_ERROR, "cannot listen on unix:%s: another server is listening there",
              path);
      return -1;
    }
    unlink(path);
  }
  int rc = uv_pipe_init(s->loop, &s->pipe, 0);
  if (!rc) {
    s->pipe_on = 1;
    s->pipe.data = s;
    if (!(rc = uv_pipe_bind(&s->pipe, path))) {
      if (!(s->pipe_path = strdup(path))) rc = UV_ENOMEM;
      if (!rc) rc = uv_listen((uv_stream_t *)&s->pipe, SRV_BACKLOG, srv_on_connection);
    }
  }
  if (rc) {
    srv_log(TAILOR_LOG_ERROR, "cannot listen on unix:%s: %s", path, uv_strerror(rc));
    return -1;
  }
  srv_log(TAILOR_LOG_INFO, "listening on unix:%s (NDJSON and HTTP)", path);
  return 0;
}

/* 0 when serving; -1 after a failure (handles are open, the loop must run
   to close them); -2 when nothing was opened. */
static int start(srv *s) {
  const srv_conf *cf = s->conf;
  s->done_async.data = s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
  s->grace.data = s;
  if (uv_async_init(s->loop, &s->done_async, srv_on_done)) return -2;
  if (srv_turn_start(s))
    srv_log(TAILOR_LOG_WARN, "cannot start the loop's turn handle: decisions run on the "
                             "loop whenever the threads are idle");
  uv_signal_init(s->loop, &s->sig_term);
  uv_signal_init(s->loop, &s->sig_int);
  uv_signal_init(s->loop, &s->sig_hup);
  uv_timer_init(s->loop, &s->grace);
  if (uv_signal_start(&s->sig_term, on_stop, SIGTERM) ||
      uv_signal_start(&s->sig_int, on_stop, SIGINT) ||
      uv_signal_start(&s->sig_hup, on_reload, SIGHUP))
    return -1;
  int workers = cf->threads ? (int)cf->threads : (int)uv_available_parallelism();
  if (srv_threads_start(s, workers)) {
    srv_log(TAILOR_LOG_ERROR, "cannot start %d worker threads", workers);
    return -1;
  }
  if (srv_deliver_start(s)) return -1;
  if (srv_sizes_start(s)) return -1;
  if (!*cf->listen && !cf->unix_path) {
    srv_log(TAILOR_LOG_ERROR, "nothing to listen on: server.listen is \"\" and no server.unix");
    return -1;
  }
  if (*cf->listen && listen_tcp(s)) return -1;
  if (cf->unix_path && listen_unix(s)) return -1;
  if (cf->static_dir)
    srv_log(TAILOR_LOG_INFO, "serving the files of %s (server.static_dir)", cf->static_dir);
  if (!cf->n_tokens)
    srv_log(TAILOR_LOG_WARN, "--insecure: no tokens, every client acts as admin");
  srv_log(TAILOR_LOG_INFO, "ready: %d decision threads, 1 writer thread, pid %d", workers,
          (int)getpid());
  return 0;
}

int srv_run(tailor *t, srv_conf *conf, const srv_opts *o) {
  srv *s = calloc(1, sizeof *s);
  if (!s || !(s->peers = srv_peers_new())) {
    free(s);
    srv_conf_free(conf);
    free(conf);
    return 1;
  }
  s->loop = uv_default_loop();
  s->t = t;
  s->conf = conf;
  s->opts = *o;
  /* A peer that closes while we write must cost an error code, not the
     process. */
  signal(SIGPIPE, SIG_IGN);
  /* A store file past the process's size limit (ulimit -f) must fail its
     write, as a full disk does (the commit is refused, nothing is lost),
     not end the process. */
  signal(SIGXFSZ, SIG_IGN);
  if (srv_console_init(s)) {
    srv_log(TAILOR_LOG_ERROR, "out of memory");
    srv_peers_free(s->peers);
    srv_conf_free(conf);
    free(conf);
    free(s);
    return 1;
  }
  tailor_set_logger(t, engine_log, s);
  uv_mutex_init(&s->mu);
  uv_mutex_init(&s->done_mu);
  uv_mutex_init(&s->stats_mu);
  uv_cond_init(&s->read_cv);
  uv_cond_init(&s->write_cv);
  int failed = start(s);
  if (failed == -1) {
    s->stopping = 1;
    close_listeners(s);
    srv_maybe_stopped(s);
  }
  if (failed != -2) uv_run(s->loop, UV_RUN_DEFAULT);
  srv_deliver_stop(s);
  srv_sizes_stop(s);
  srv_threads_stop(s);
  if (uv_loop_close(s->loop)) srv_log(TAILOR_LOG_WARN, "shutdown: handles left open");
  /* The fitter (index.background_refits) and a shared log's follower log
     through engine_log into the console, freed below: a fit under way
     ends here, its lines logged, and the follower stops.  What the
     engine's close says (srv_close_engine) goes to the server's log. */
  eng_refits_stop(t);
  eng_follow_stop(t);
  tailor_set_logger(t, closing_log, NULL);
  uv_mutex_destroy(&s->mu);
  uv_mutex_destroy(&s->done_mu);
  uv_mutex_destroy(&s->stats_mu);
  uv_cond_destroy(&s->read_cv);
  uv_cond_destroy(&s->write_cv);
  free(s->stats_cache);
  free(s->pipe_path);
  srv_spare_jobs_free(s);
  srv_peers_free(s->peers);
  srv_console_free(s);
  srv_conf_free(s->conf);
  free(s->conf);
  free(s);
  return failed ? 1 : 0;
}

/*
** Closing the engine can take seconds (the index checkpoint is written;
** srv_run already stopped a refit under way) and can fail: logged, and
** "stopped" only once it is done.  Before, the engine's lines went nowhere
** once srv_run returned, so a checkpoint that could not be written was not
** said, and "stopped" came while the process still worked.
*/
void srv_close_engine(tailor *t, int served) {
  if (served) srv_log(TAILOR_LOG_INFO, "closing the engine: writing the index checkpoint");
  tailor_close(t);
  if (served) srv_log(TAILOR_LOG_INFO, "stopped");
}
