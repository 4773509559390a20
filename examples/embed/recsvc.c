/*
** recsvc.c: an existing C service that embeds tailor instead of running
** another daemon.  libmicrohttpd serves HTTP from its own pool of worker
** threads, and each thread calls libtailor directly: decisions run in
** parallel (tailor gives every calling thread its own Lua state), events
** are serialized inside the library.
**
**   recsvc --port 8080 --db shop.db --strategies strategies
**   POST /events             NDJSON events -> {"accepted": n, "rejected": m}
**   GET  /recommend?visitor=V&item=I&k=N   -> tailor's decision
**   GET  /health                            -> {"ok": true, "tailor": "0.1.0"}
**
** Build it against the installed library:
**   cc -o recsvc recsvc.c $(pkg-config --cflags --libs tailor libmicrohttpd)
*/
#include <arpa/inet.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tailor.h>
#include <unistd.h>

#define WORKER_THREADS 4
#define MAX_BODY (1 << 20)

typedef struct body {
  char *data;
  size_t len;
  int too_big;
} body;

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { stopping = sig; }

/* Route the library's log lines into this service's own log. */
static void log_line(void *ud, int level, const char *msg) {
  (void)ud;
  fprintf(stderr, "recsvc: tailor[%d]: %s\n", level, msg);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
                             const char *json) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(r, "Content-Type", "application/json");
  enum MHD_Result ok = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ok;
}

static enum MHD_Result recommend(tailor *t, struct MHD_Connection *c) {
  const char *visitor = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "visitor");
  const char *item = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "item");
  const char *k = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "k");
  if (!visitor || strpbrk(visitor, "\"\\") || (item && strpbrk(item, "\"\\")))
    return reply(c, 400, "{\"error\":\"visitor is required (no quotes)\"}");
  char req[1024];
  snprintf(req, sizeof req,
           "{\"kind\":\"recommend\",\"anon\":\"%s\",\"k\":%d,\"page\":%s%s%s}", visitor,
           k ? atoi(k) : 5, item ? "{\"type\":\"product\",\"item\":\"" : "{\"type\":\"home\"",
           item ? item : "", item ? "\"}" : "}");
  char *resp = NULL;
  tailor_error err = {0};
  if (tailor_decide(t, req, strlen(req), &resp, NULL, &err) != TAILOR_OK) {
    char msg[700];
    snprintf(msg, sizeof msg, "{\"error\":\"%s\"}", tailor_errname(err.code));
    return reply(c, 400, msg);
  }
  enum MHD_Result ok = reply(c, 200, resp);
  tailor_free(resp); /* responses are the caller's to free */
  return ok;
}

static enum MHD_Result events(tailor *t, struct MHD_Connection *c, body *b) {
  if (b->too_big) return reply(c, 413, "{\"error\":\"body too large\"}");
  size_t accepted = 0, rejected = 0;
  if (tailor_ingest_batch(t, b->data ? b->data : "", b->len, NULL, NULL, &accepted,
                          &rejected) != TAILOR_OK)
    return reply(c, 500, "{\"error\":\"store\"}");
  char msg[128];
  snprintf(msg, sizeof msg, "{\"accepted\":%zu,\"rejected\":%zu}", accepted, rejected);
  return reply(c, 200, msg);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version,
                              const char *upload, size_t *upload_size, void **state) {
  tailor *t = cls;
  (void)version;
  if (!strcmp(method, "POST")) {
    body *b = *state;
    if (!b) { /* first call: headers only */
      *state = calloc(1, sizeof *b);
      return *state ? MHD_YES : MHD_NO;
    }
    if (*upload_size) { /* more of the body */
      if (b->len + *upload_size > MAX_BODY) {
        b->too_big = 1;
      } else {
        char *more = realloc(b->data, b->len + *upload_size + 1);
        if (!more) return MHD_NO;
        memcpy(more + b->len, upload, *upload_size);
        b->data = more;
        b->len += *upload_size;
      }
      *upload_size = 0;
      return MHD_YES;
    }
    return strcmp(url, "/events") ? reply(c, 404, "{\"error\":\"not found\"}")
                                  : events(t, c, b);
  }
  if (!strcmp(url, "/recommend")) return recommend(t, c);
  if (!strcmp(url, "/health")) {
    char msg[80];
    snprintf(msg, sizeof msg, "{\"ok\":true,\"tailor\":\"%s\"}", tailor_version());
    return reply(c, 200, msg);
  }
  return reply(c, 404, "{\"error\":\"not found\"}");
}

static void done(void *cls, struct MHD_Connection *c, void **state,
                 enum MHD_RequestTerminationCode why) {
  body *b = *state;
  (void)cls, (void)c, (void)why;
  if (b) free(b->data);
  free(b);
  *state = NULL;
}

int main(int argc, char **argv) {
  int port = 8080;
  const char *db = "recsvc.db", *strategies = "strategies";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--db")) db = argv[i + 1];
    else if (!strcmp(argv[i], "--strategies")) strategies = argv[i + 1];
  }
  char cfg[2048];
  snprintf(cfg, sizeof cfg, "{\"db\":\"%s\",\"strategies\":\"%s\"}", db, strategies);
  tailor_error err = {0};
  tailor *t = tailor_open(cfg, &err);
  if (!t) {
    fprintf(stderr, "recsvc: %s (%s)\n", err.message, tailor_errname(err.code));
    return 1;
  }
  tailor_set_logger(t, log_line, NULL);
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, handle, t,
      MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)WORKER_THREADS,
      MHD_OPTION_NOTIFY_COMPLETED, done, NULL, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "recsvc: cannot listen on 127.0.0.1:%d\n", port);
    tailor_close(t);
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  printf("recsvc: listening on http://127.0.0.1:%d (tailor %s)\n", port, tailor_version());
  fflush(stdout);
  while (!stopping) pause();
  MHD_stop_daemon(d); /* joins the worker threads: their Lua states go too */
  tailor_close(t);
  return 0;
}
