/*
** internal.h: what the server's files share: the server, its connections
** and the jobs (one per request) that travel between the event loop and
** the worker threads.  The threading model is described in server.c.
**
** Ownership: the server owns its connections; a connection owns the jobs
** of its requests (its list, in request order) until each response has
** been handed to the socket.  A job on a thread's queue is still in its
** connection's list; the thread only borrows it, and a connection is freed
** only once none of its jobs is on a thread (conn.queued == 0).
*/
#ifndef TAILOR_SRV_INTERNAL_H
#define TAILOR_SRV_INTERNAL_H

#include <http_parser.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "core/defaults.h"
#include "core/event.h"
#include "server/peer.h"
#include "server/proto.h"
#include "server/server.h"

/* Numbers that matter, in one place (the configurable ones are in
   SRV_CONF_INTS in server.h; those the docs tell in core/defaults.h). */
#define SRV_READ_CHUNK DEF_SERVER_READ_CHUNK_BYTES /* bytes asked of each read */
#define SRV_BACKLOG 511              /* listen(2) backlog */
#define SRV_LINGER_MS DEF_SERVER_LINGER_MS /* reading after our FIN, so an
                                        error response is not lost to a RST */
#define SRV_MAX_URL_BYTES 8192       /* HTTP request target */
#define SRV_MAX_HEADER_BYTES 1024    /* a header value we keep */
#define SRV_STATS_TTL_MS DEF_SERVER_STATS_TTL_MS /* /metrics reuses engine stats */
/* A decision runs on the loop itself when every thread is idle and
   decisions have lately taken less than this on average (work.c). */
#define SRV_INLINE_DECIDE_NS 50000
/* Decisions the loop runs itself per iteration (work.c): more, and a
   loaded loop does every decision while the workers wait; measured with
   the trending strategy, pipelined 16: 1 per turn 104k/s, 4 about 100k/s,
   unlimited 73k/s; at 36k/s open loop, p99 0.8 ms with 1, 0.5 ms with 4. */
#define SRV_INLINE_PER_TURN 4
#define SRV_MAX_REPORTED_ERRORS DEF_SERVER_MAX_REPORTED_ERRORS /* per request */
#define SRV_WRITE_GROUP_EVENTS 20000 /* events in one store transaction */
#define SRV_LOG_PER_KIND 5           /* log lines of one kind a second (server.c) */
#define SRV_LOG_KINDS 32             /* kinds told apart a second */
#define SRV_LOG_PER_SEC 20           /* lines a second of the kinds past those */
#define SRV_CORS_MAX_AGE DEF_SERVER_CORS_MAX_AGE_S /* a browser caches a preflight */

enum { SRV_MODE_SNIFF, SRV_MODE_NDJSON, SRV_MODE_HTTP };
enum { SRV_PROTO_NDJSON, SRV_PROTO_HTTP };
enum { J_HELD, J_QUEUED, J_DONE };

typedef struct srv srv;
typedef struct conn conn;
typedef struct job job;

/* One request, from parsing to its response. */
struct job {
  conn *c;
  job *next;         /* the connection's list */
  job *qnext;        /* a thread's queue, or the done list */
  srv_request req;   /* owned */
  int state;         /* J_* */
  unsigned perms;    /* of the caller (customer.get: PII or not) */
  int role;          /* auth: the role its token grants */
  int http;          /* answer as HTTP */
  int keep_alive;    /* HTTP: keep the connection after this response */
  int http_minor;    /* HTTP/1.x */
  int head_only;     /* HTTP HEAD: headers without the body */
  char *origin;      /* CORS: the allowed Origin to echo; owned or NULL */
  uint64_t t0;       /* uv_hrtime() when the request was complete */
  tailor_error err;  /* err.code: SRV_OK, or the srv_err that failed */
  char *body;        /* the result (JSON, or text for /metrics); owned */
  size_t body_len;
  int body_tailor;   /* body came from the engine: tailor_free() it */
  int status;        /* HTTP status when not derived (204 for preflight) */
  const char *ctype; /* HTTP content type of body; NULL: JSON */
  char *headers;     /* more HTTP header lines ("Name: value\r\n"...); owned */
  int framed;        /* body is already the whole NDJSON response line */
  char *out;         /* the response bytes once done; owned */
  size_t out_len;
};

/* HTTP request being received (http_parser callbacks fill it). */
typedef struct http_state {
  http_parser p;
  char url[SRV_MAX_URL_BYTES];
  size_t url_len;
  int url_long;
  char field[32];    /* the header name being read (lowercase, cut) */
  size_t field_len;
  int in_value;      /* the last callback was a header value */
  int capture;       /* which header the value belongs to (H_*) */
  char auth[SRV_MAX_HEADER_BYTES];
  size_t auth_len;
  char origin[SRV_MAX_HEADER_BYTES];
  size_t origin_len;
  char customer[SRV_MAX_HEADER_BYTES]; /* X-Tailor-Customer */
  size_t customer_len;
  char expect[32];
  size_t expect_len;
  char encoding[32]; /* Content-Encoding */
  size_t encoding_len;
  char cookie[SRV_MAX_HEADER_BYTES]; /* the console's session (console.c) */
  size_t cookie_len;
  char csrf[128];    /* X-CSRF-Token */
  size_t csrf_len;
  char host[256];    /* Host, for the Origin of a console change */
  size_t host_len;
  char *body;
  size_t body_len, body_cap;
  int body_long;
  int in_message;    /* from a message's first byte to its end */
} http_state;

struct conn {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
  uv_timer_t timer;     /* idle timeout, then lingering close */
  uv_shutdown_t shut;
  srv *s;
  conn *prev, *next;    /* the server's list */
  conn *dirty_next;     /* connections to pump after completions */
  int mode;             /* SRV_MODE_* */
  srv_inbuf in;
  http_state *http;     /* HTTP connections only; owned */
  job *head, *tail;     /* requests in order, until their responses go out */
  int inflight;         /* jobs in the list */
  int queued;           /* of them, on a thread */
  int writes_queued;    /* of them, writes on the writer thread */
  int held;             /* reads waiting for earlier writes */
  int statics;          /* static files being read (at most one: a file
                           may be megabytes, so none is parsed meanwhile) */
  size_t out_bytes;     /* handed to uv_write, not yet written */
  uint64_t lines;       /* NDJSON lines read, for messages */
  uint64_t last_active; /* uv_now() of the last request or written reply */
  uint64_t head_at;     /* uv_now() when the request head (HTTP request line
                           and headers, first NDJSON line) we wait for
                           began; 0: none (header_timeout_ms) */
  unsigned char peer[SRV_PEER_KEY_BYTES]; /* client address, when counted */
  int refused;          /* past a limit at accept: which one (conn.c) */
  char *token;          /* from the `auth` op; owned */
  int handles;          /* libuv handles still open (stream, timer) */
  unsigned reading : 1, eof : 1, no_more_input : 1, close_after_flush : 1,
      closing : 1, shutting : 1, lingering : 1, no_linger : 1, dirty : 1,
      counted : 1, peer_counted : 1;
};

/* Counters of the event loop thread (only it writes them). */
#define SRV_LATENCY_BUCKETS 14
#define SRV_MINUTES 60            /* the console's per-minute counters */
#define SRV_LATENCY_SAMPLES 2048  /* latest decisions kept for percentiles */
typedef struct srv_metrics {
  uint64_t requests[2][SRV_OP_COUNT + 1]; /* by protocol and op; last:
                                             requests that named none */
  uint64_t errors[SRV_ERR_COUNT];     /* responses by error code */
  uint64_t latency[SRV_OP_COUNT + 1][SRV_LATENCY_BUCKETS + 1];
  double latency_sum[SRV_OP_COUNT + 1];
  uint64_t conns_total, conns_refused, conns_head_timeouts, bytes_in, bytes_out;
  /* The console's overview: the last SRV_MINUTES minutes, by wall-clock
     minute (a slot is reused once its minute is past), and the latest
     decisions' latencies for percentiles. */
  struct {
    int64_t minute; /* unix minute the counts are of */
    uint64_t events, decisions, errors, fallbacks;
  } per_minute[SRV_MINUTES];
  uint32_t decide_us[SRV_LATENCY_SAMPLES];
  uint64_t decide_seen;
} srv_metrics;

struct srv {
  uv_loop_t *loop;
  tailor *t;
  srv_conf *conf;        /* owned; replaced on SIGHUP */
  uint64_t conf_gen;
  srv_opts opts;
  uv_tcp_t tcp;
  uv_pipe_t pipe;
  int tcp_on, pipe_on;
  char *pipe_path;       /* the socket file we bound (ours to remove) */
  uv_signal_t sig_term, sig_int, sig_hup;
  uv_async_t done_async;
  uv_timer_t grace;
 conn *conns;
  int n_open;            /* connections counted against max_connections */
  srv_peers *peers;      /* the same, by client address (peer.c) */
  int alive;             /* connection structs not yet freed */
  int stopping;
  int handles_closed;    /* the loop's own handles are closing */

  /* Work queues (work.c): reads for the workers, writes for the writer. */
  uv_mutex_t mu;
  uv_cond_t read_cv, write_cv;
  job *rq_head, *rq_tail, *wq_head, *wq_tail;
  int read_idle, write_idle; /* threads waiting on read_cv, write_cv: a
                                queued job signals only when one waits */
  int stop_threads;
  int expo_due;              /* the engine has exposures to write (work.c) */
  uv_check_t turn;           /* after each loop iteration: resets inline_turn */
  int turn_on;               /* the handle is open */
  unsigned inline_turn;      /* decisions the loop ran itself this iteration */
  uv_thread_t *workers;
  int n_workers;
  uv_thread_t writer;
  int writer_on;

  /* Finished jobs, handed back to the loop through done_async. */
  uv_mutex_t done_mu;
  job *done_head, *done_tail;

  /* Freed jobs kept for the next requests (loop-owned, linked by next):
     a job is over 1 KiB, a size glibc's malloc serves only after merging
     its small free chunks, which under load took a tenth of the loop. */
  job *spare_jobs;
  size_t n_spare_jobs;

  /* Engine stats kept for /metrics (SRV_STATS_TTL_MS). */
  uv_mutex_t stats_mu;
  char *stats_cache;
  uint64_t stats_at;

  /* The merchant console's sessions and health (console.c); loop-owned
     but for its log, which has its own lock. */
  struct srv_console *console;

  /* The delivery thread (deliver.c); NULL when not running. */
  struct srv_deliver *deliver;
  struct srv_sizes *sizes; /* the console's size snapshots (sizes.c) */

  srv_metrics m;
  _Atomic uint64_t ev_accepted[EV_TYPE_COUNT + 1]; /* last: unknown type */
  _Atomic uint64_t ev_rejected;
  _Atomic uint64_t decide_ns; /* decisions' recent mean time (moving average) */
};

/* Log a line to stderr (thread-safe, rate-limited). */
void srv_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* conn.c */
void srv_on_connection(uv_stream_t *server, int status);
void srv_on_done(uv_async_t *a);
void srv_conn_pump(conn *c);
void srv_conn_close(conn *c);
void srv_conn_finish(conn *c); /* answer what is in flight, then close */
void srv_job_submit(conn *c, job *j); /* authorize, then run or queue */
void srv_conn_write_raw(conn *c, const char *data, size_t len);
/* {"code":..,"message":..,"field":..} of an error; malloc'd, NULL when out
   of memory. */
char *srv_error_json(const tailor_error *e);
job *srv_job_new(conn *c);
/* The loop's spare jobs (srv_job_new keeps freed ones), freed at the end. */
void srv_spare_jobs_free(srv *s);
void srv_maybe_stopped(srv *s);

/* http.c */
int srv_http_start(conn *c);         /* 0, or -1 out of memory */
int srv_http_feed(conn *c);          /* requests made from buffered bytes */
void srv_http_free(conn *c);
char *srv_http_response(job *j, size_t *len); /* malloc'd status+headers+body */

/* work.c */
int srv_threads_start(srv *s, int workers);
void srv_threads_stop(srv *s);
/* The engine's decide.max_k: the one limit on k, for the request parser. */
long srv_max_k(srv *s);
/* The engine's limits.max_future_ms: how far ahead a trusted clock may run. */
long srv_max_future_ms(srv *s);

/* The engine's stats JSON, at most SRV_STATS_TTL_MS old (malloc'd; NULL
   with `e` filled). */
char *srv_cached_stats(srv *s, tailor_error *e);

void srv_queue_read(srv *s, job *j);
/* Run a read job on the calling thread (the workers' body). */
void srv_run_read(srv *s, job *j);
/* Whether a decision may run on the loop now (work.c). */
int srv_decide_inline(srv *s);
int srv_turn_start(srv *s);
void srv_queue_write(srv *s, job *j);

/* static.c: files under server.static_dir (GET and HEAD of paths outside
   the API).  srv_static_route returns 1 when the request is for a file
   (req holds an SRV_OP_STATIC request, or err says why not), else 0. */
int srv_static_route(const srv_conf *cf, int get, const char *url, size_t url_len,
                     srv_request *req, tailor_error *err);
void srv_static_read(job *j); /* on a worker: the file into j->body */

/*
** console.c: the merchant console (docs/console.md).  srv_console_http
** (loop, as a console request is made) turns a session cookie into the
** session's token and refuses changes without the session's CSRF token or
** from another origin; srv_console_inline answers the files, login and
** logout on the loop; srv_console_run answers the admin API on a worker;
** srv_console_finalize adds the loop's counters to the overview;
** srv_console_log keeps the engine's strategy errors and reloads (any
** thread); srv_console_free at exit.
*/
void srv_console_http(srv *s, job *j, const char *cookie, const char *csrf,
                      const char *origin, const char *host);
void srv_console_inline(srv *s, job *j);
void srv_console_run(srv *s, job *j);
void srv_console_finalize(srv *s, job *j);
void srv_console_log(srv *s, int level, const char *message);
void srv_console_free(srv *s);
int srv_console_init(srv *s); /* 0, or -1 out of memory */
/* A decision of `kind` served its fallback; `error` is the JSON string
   (quoted, `n` bytes or more) of the strategy's error.  Loop only. */
void srv_console_fallback(srv *s, const char *kind, const char *error, size_t n);
/* The role a configured token grants, or -1 (constant time; conn.c). */
int srv_token_role(const srv_conf *cf, const char *token);

/* page.c: the page GET /v1/confirm answers a visitor with: the outcome of
   tailor_confirm (rc, its answer `json` or its error `e`) as HTML in
   j->body, with its status.  Nothing at all happened for a HEAD. */
void srv_confirm_page(job *j, int rc, const char *json, const tailor_error *e);
void srv_unsubscribe_page(job *j, int rc, int done, const tailor_error *e);

/* deliver.c: the thread that calls tailor_deliver_due() every
   deliver_interval_ms; started after the workers, told to stop when the
   server begins to (srv_deliver_quit: no further send), joined after the
   loop (srv_deliver_stop). */
int srv_deliver_start(srv *s);
void srv_deliver_quit(srv *s);
void srv_deliver_stop(srv *s);

/* sizes.c: a thread that keeps the console's audience and segment sizes
   every console_snapshot_ms (off at 0). */
int srv_sizes_start(srv *s);
void srv_sizes_stop(srv *s);

/* metrics.c */
void srv_metrics_observe(srv *s, const job *j);
/* Prometheus text from the loop's counters and the engine's stats JSON. */
char *srv_metrics_render(srv *s, const char *stats_json, size_t *len);

#endif /* TAILOR_SRV_INTERNAL_H */
