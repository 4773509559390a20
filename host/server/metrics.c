/*
** metrics.c: the server's counters and GET /metrics in the Prometheus text
** format (version 0.0.4): requests by protocol and op, latency histograms
** by op, errors by code, connections, events accepted by type, and the
** engine's figures (decisions, strategy errors, index and store sizes).
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/util.h"
#include "engine/engine.h"
#include "server/internal.h"

/* Upper bounds of the latency buckets, in seconds (then +Inf). */
static const double bounds[SRV_LATENCY_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};

/* Figures of tailor_stats() shown as gauges. */
static const char *const index_kinds[] = {"items", "people", "sessions", NULL};
static const char *const store_tables[] = {"events_total", "items", "customers",
                                           "identities", "outbox", NULL};

static int op_slot(int op) { return op >= 0 && op < SRV_OP_COUNT ? op : SRV_OP_COUNT; }
static const char *slot_name(int slot) {
  return slot < SRV_OP_COUNT ? srv_op_name(slot) : "invalid";
}

void srv_metrics_observe(srv *s, const job *j) {
  srv_metrics *m = &s->m;
  int slot = op_slot(j->req.op);
  double sec = (double)(uv_hrtime() - j->t0) / 1e9;
  m->requests[j->http ? SRV_PROTO_HTTP : SRV_PROTO_NDJSON][slot]++;
  if (j->err.code > 0 && j->err.code < SRV_ERR_COUNT) m->errors[j->err.code]++;
  int b = 0;
  while (b < SRV_LATENCY_BUCKETS && sec > bounds[b]) b++;
  m->latency[slot][b]++;
  m->latency_sum[slot] += sec;
  /* The console's overview: this minute's counts, decision latencies and
     the strategy errors that made a decision serve its fallback. */
  int64_t minute = util_now_ms() / 60000;
  __typeof__(m->per_minute[0]) *pm = &m->per_minute[minute % SRV_MINUTES];
  if (pm->minute != minute) memset(pm, 0, sizeof *pm), pm->minute = minute;
  if (j->err.code) pm->errors++;
  else if (srv_op_run(j->req.op) == SRV_RUN_WRITE) pm->events += j->req.n_events;
  if (j->req.op == SRV_OP_DECIDE && !j->err.code) {
    pm->decisions++;
    uint64_t us = (uv_hrtime() - j->t0) / 1000;
    m->decide_us[m->decide_seen++ % SRV_LATENCY_SAMPLES] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    static const char mark[] = ",\"fallback\":true,\"error\":";
    const char *f = j->body ? memmem(j->body, j->body_len, mark, sizeof mark - 1) : NULL;
    if (f) {
      pm->fallbacks++;
      srv_console_fallback(s, j->req.dq.kind, f + sizeof mark - 1,
                           j->body_len - (size_t)(f + sizeof mark - 1 - j->body));
    }
  }
}

/* A growing text buffer; on out of memory it turns NULL and stays so. */
typedef struct sbuf {
  char *p;
  size_t len, cap;
} sbuf;

__attribute__((format(printf, 2, 3))) static void put(sbuf *b, const char *fmt, ...) {
  if (!b->p && b->cap) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (b->p && b->len + (size_t)n < b->cap) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap ? b->cap * 2 : 8192;
    while (cap < b->len + (size_t)n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      free(b->p);
      b->p = NULL;
      b->cap = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
}

static void head(sbuf *b, const char *name, const char *type, const char *help) {
  put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static json_int_t num(json_t *o, const char *path1, const char *path2) {
  json_t *v = json_object_get(o, path1);
  if (path2) v = json_object_get(v, path2);
  return json_integer_value(v);
}

static long resident_bytes(void) {
  long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
  fclose(f);
  return rss * sysconf(_SC_PAGESIZE);
}

char *srv_metrics_render(srv *s, const char *stats_json, size_t *len) {
  const srv_metrics *m = &s->m;
  static const char *const proto[] = {"ndjson", "http"};
  sbuf b = {0};
  json_t *st = json_loads(stats_json ? stats_json : "{}", 0, NULL);

  head(&b, "tailor_requests_total", "counter", "Requests answered, by protocol and op.");
  for (int p = 0; p < 2; p++)
    for (int op = 0; op <= SRV_OP_COUNT; op++)
      if (m->requests[p][op])
        put(&b, "tailor_requests_total{proto=\"%s\",op=\"%s\"} %llu\n", proto[p],
            slot_name(op), (unsigned long long)m->requests[p][op]);

  head(&b, "tailor_request_duration_seconds", "histogram",
       "From a request's last byte to its response handed to the socket.");
  for (int op = 0; op <= SRV_OP_COUNT; op++) {
    uint64_t n = 0;
    for (int k = 0; k <= SRV_LATENCY_BUCKETS; k++) n += m->latency[op][k];
    if (!n) continue;
    uint64_t cum = 0;
    for (int k = 0; k < SRV_LATENCY_BUCKETS; k++) {
      cum += m->latency[op][k];
      put(&b, "tailor_request_duration_seconds_bucket{op=\"%s\",le=\"%g\"} %llu\n",
          slot_name(op), bounds[k], (unsigned long long)cum);
    }
    put(&b, "tailor_request_duration_seconds_bucket{op=\"%s\",le=\"+Inf\"} %llu\n",
        slot_name(op), (unsigned long long)n);
    put(&b, "tailor_request_duration_seconds_sum{op=\"%s\"} %.6f\n", slot_name(op),
        m->latency_sum[op]);
    put(&b, "tailor_request_duration_seconds_count{op=\"%s\"} %llu\n", slot_name(op),
        (unsigned long long)n);
  }

  head(&b, "tailor_request_errors_total", "counter", "Error responses, by code.");
  for (int e = 1; e < SRV_ERR_COUNT; e++)
    put(&b, "tailor_request_errors_total{code=\"%s\"} %llu\n", srv_err_code(e),
        (unsigned long long)m->errors[e]);

  /* Not "tailor_connections": that is the family name of the counter
     tailor_connections_total, and one name must not be two metrics. */
  head(&b, "tailor_open_connections", "gauge", "Open connections.");
  put(&b, "tailor_open_connections %d\n", s->n_open);
  head(&b, "tailor_connections_total", "counter", "Connections accepted.");
  put(&b, "tailor_connections_total %llu\n", (unsigned long long)m->conns_total);
  head(&b, "tailor_connections_refused_total", "counter",
       "Connections refused past max_connections or max_conns_per_peer.");
  put(&b, "tailor_connections_refused_total %llu\n", (unsigned long long)m->conns_refused);
  head(&b, "tailor_connections_head_timeouts_total", "counter",
       "Connections closed for a request head not whole within header_timeout_ms.");
  put(&b, "tailor_connections_head_timeouts_total %llu\n",
      (unsigned long long)m->conns_head_timeouts);
  head(&b, "tailor_received_bytes_total", "counter", "Bytes read from clients.");
  put(&b, "tailor_received_bytes_total %llu\n", (unsigned long long)m->bytes_in);
  head(&b, "tailor_sent_bytes_total", "counter", "Bytes written to clients.");
  put(&b, "tailor_sent_bytes_total %llu\n", (unsigned long long)m->bytes_out);

  head(&b, "tailor_events_total", "counter",
       "Events stored through this server, by type.");
  for (int t = 0; t <= EV_TYPE_COUNT; t++) {
    uint64_t n = atomic_load(&s->ev_accepted[t]);
    const char *name = t < EV_TYPE_COUNT ? ev_type_name((ev_type)t) : NULL;
    if (n || name)
      put(&b, "tailor_events_total{type=\"%s\"} %llu\n", name ? name : "other",
          (unsigned long long)n);
  }
  head(&b, "tailor_events_rejected_total", "counter", "Events refused as invalid.");
  put(&b, "tailor_events_rejected_total %llu\n",
      (unsigned long long)atomic_load(&s->ev_rejected));

  /* The engine's own counters (this process) and sizes (may be up to
     SRV_STATS_TTL_MS old). */
  head(&b, "tailor_decisions_total", "counter", "Decisions made by the engine.");
  put(&b, "tailor_decisions_total %lld\n", (long long)num(st, "process", "decisions"));
  head(&b, "tailor_strategy_errors_total", "counter",
       "Strategy calls that failed and served the fallback.");
  put(&b, "tailor_strategy_errors_total %lld\n",
      (long long)num(st, "process", "strategy_errors"));
  head(&b, "tailor_index_entries", "gauge", "Entries in the in-memory index, by kind.");
  for (const char *const *k = index_kinds; *k; k++)
    put(&b, "tailor_index_entries{kind=\"%s\"} %lld\n", *k, (long long)num(st, "index", *k));
  head(&b, "tailor_index_events_applied_total", "counter",
       "Events applied to the in-memory index since it was built.");
  put(&b, "tailor_index_events_applied_total %lld\n",
      (long long)num(st, "index", "events_applied"));
  head(&b, "tailor_events_unreadable_total", "counter",
       "Stored events today's checks refuse, passed over by this process's index "
       "(written by an older build; the log names each).");
  put(&b, "tailor_events_unreadable_total %lld\n",
      (long long)num(st, "process", "events_unreadable"));
  if (json_object_get(json_object_get(st, "log"), "position")) {
    /* A node on a shared store (docs/scale-out.md): where it is in the
       log and how far behind. */
    head(&b, "tailor_log_position", "gauge", "Sequence number of the last log event applied.");
    put(&b, "tailor_log_position %lld\n", (long long)num(st, "log", "position"));
    head(&b, "tailor_log_behind_events", "gauge",
         "Events committed to the shared log and not yet applied by this node.");
    put(&b, "tailor_log_behind_events %lld\n", (long long)num(st, "log", "behind"));
    head(&b, "tailor_log_read_age_seconds", "gauge",
         "Time since this node last read the shared log.");
    put(&b, "tailor_log_read_age_seconds %.3f\n", (double)num(st, "log", "read_age_ms") / 1e3);
    json_t *lag = json_object_get(json_object_get(st, "log"), "lag_ms");
    head(&b, "tailor_log_lag_seconds", "gauge",
         "From an event's receipt to this node applying it from the log, by quantile since "
         "the start (capped at 2 s).");
    for (const char *const *q = (const char *const[]){"p50", "p90", "p99", NULL}; *q; q++)
      if (json_object_get(lag, *q))
        put(&b, "tailor_log_lag_seconds{quantile=\"0.%s\"} %.3f\n", *q + 1,
            (double)json_integer_value(json_object_get(lag, *q)) / 1e3);
    head(&b, "tailor_log_lag_events_total", "counter", "Events counted in tailor_log_lag_seconds.");
    put(&b, "tailor_log_lag_events_total %lld\n", (long long)num(lag, "count", NULL));
    /* Now, not from the cached stats: an outage shows at once. */
    int64_t down = eng_store_down_ms(s->t);
    head(&b, "tailor_store_up", "gauge",
         "1 while this node reaches the shared store, 0 while it does not (writes are refused).");
    put(&b, "tailor_store_up %d\n", !down);
    head(&b, "tailor_store_unreachable_seconds", "gauge",
         "How long this node has not reached the shared store; 0 while it does.");
    put(&b, "tailor_store_unreachable_seconds %.3f\n", (double)down / 1e3);
  }
  head(&b, "tailor_store_rows", "gauge", "Rows in the store, by table.");
  for (const char *const *k = store_tables; *k; k++)
    put(&b, "tailor_store_rows{table=\"%s\"} %lld\n",
        strcmp(*k, "events_total") ? *k : "events", (long long)num(st, *k, NULL));
  head(&b, "tailor_store_events", "gauge", "Events in the store, by type.");
  const char *key;
  json_t *v;
  json_object_foreach(json_object_get(st, "events"), key, v)
      put(&b, "tailor_store_events{type=\"%s\"} %lld\n", key,
          (long long)json_integer_value(v));

  head(&b, "process_resident_memory_bytes", "gauge", "Resident memory of the server.");
  put(&b, "process_resident_memory_bytes %ld\n", resident_bytes());
  head(&b, "tailor_build_info", "gauge", "The running version.");
  put(&b, "tailor_build_info{version=\"%s\"} 1\n", tailor_version());
  json_decref(st);
  if (b.p) *len = b.len;
  return b.p;
}
