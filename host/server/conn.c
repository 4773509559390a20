/*
** conn.c: one client connection, on the event loop: reading, telling
** NDJSON from HTTP by the first bytes, cutting requests, authorizing them,
** running or queueing them, and writing the responses back in request
** order.
**
** Flow control.  A connection reads only while it has fewer than
** max_inflight requests in progress and fewer than max_output_bytes of
** responses the peer has not taken; past either, reading stops and what is
** already buffered waits (at most one line plus one read), unparsed.  A
** static file is read one at a time per connection.  So a client
** that pipelines without reading answers, or sends faster than the engine
** decides, is slowed down instead of growing the server's memory, and the
** loop keeps serving the others.
**
** Ordering.  Responses leave in request order (a finished request waits for
** the ones before it).  Writes go to the one writer thread in arrival
** order; a read (decide, customer.get, stats) waits until the writes sent
** before it on the same connection are stored, so a client sees its own
** events in the decisions it asks for next.
**
** Slow clients.  Besides the idle timeout, a request head has a deadline
** of its own (header_timeout_ms): an HTTP request line and headers, from
** their first byte (the first request's from the accept), and the first
** NDJSON line of a connection.  So a client that dribbles bytes without
** ever finishing a request holds a connection seconds, not a minute.  The
** clock runs only while the connection is read: a head that waits because
** we paused the reads is not the client's slowness.  Later NDJSON lines
** and HTTP bodies, which may be large, have the idle timeout only; the
** connections one address may hold are bounded too (max_conns_per_peer).
**
** Refusals.  A connection past max_connections or max_conns_per_peer is
** answered `overloaded` and closed, in its own protocol: its first bytes
** are read to tell (an HTTP client gets a 503 with a JSON body), and one
** that sends nothing for SRV_REFUSED_WAIT_MS gets the NDJSON line.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/util.h"
#include "server/internal.h"
#include "server/request.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* How often a connection re-reads the idle timeout when it is 0 (off). */
#define SRV_IDLE_RECHECK_MS 60000
/* How long a refused connection may take to show its protocol. */
#define SRV_REFUSED_WAIT_MS DEF_SERVER_REFUSED_WAIT_MS

/* Why a connection was refused at accept (conn.refused). */
enum { REFUSED_NONE, REFUSED_CONNECTIONS, REFUSED_PEER };

typedef struct wreq {
  uv_write_t req;
  size_t len;
  char data[];
} wreq;

static void pump_reads(conn *c);
static void on_timer(uv_timer_t *t);

#define SRV_SPARE_JOBS 512

job *srv_job_new(conn *c) {
  srv *s = c->s;
  job *j = s->spare_jobs;
  if (j) {
    s->spare_jobs = j->next;
    s->n_spare_jobs--;
    memset(j, 0, sizeof *j);
  } else if (!(j = calloc(1, sizeof *j))) {
    return NULL;
  }
  j->c = c;
  j->t0 = uv_hrtime();
  j->req.op = -1;
  return j;
}

static void job_free(job *j) {
  srv_request_clear(&j->req);
  free(j->origin);
  free(j->headers);
  if (j->body_tailor)
    tailor_free(j->body);
  else
    free(j->body);
  free(j->out);
  srv *s = j->c->s;
  if (s->n_spare_jobs < SRV_SPARE_JOBS) {
    j->next = s->spare_jobs;
    s->spare_jobs = j;
    s->n_spare_jobs++;
  } else {
    free(j);
  }
}

void srv_spare_jobs_free(srv *s) {
  while (s->spare_jobs) {
    job *j = s->spare_jobs;
    s->spare_jobs = j->next;
    free(j);
  }
  s->n_spare_jobs = 0;
}

/*
** Responses.
*/
char *srv_error_json(const tailor_error *e) {
  json_t *o = json_pack("{ss ss ss?}", "code", srv_err_code(e->code), "message",
                        e->message, "field", e->field[0] ? e->field : NULL);
  /* util_fail keeps messages valid UTF-8; should one not be, it is not a
     JSON string: say less. */
  if (!o)
    o = json_pack("{ss ss sn}", "code", srv_err_code(e->code), "message",
                  "(message not valid UTF-8)", "field");
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return s;
}

/* {"id":ID,"result":BODY}\n or {"id":ID,"error":{...}}\n */
static char *ndjson_response(job *j, size_t *len) {
  const char *id = j->req.id ? j->req.id : "null";
  char *err = j->err.code ? srv_error_json(&j->err) : NULL;
  const char *key = j->err.code ? "error" : "result";
  const char *body = j->err.code ? err : j->body ? j->body : "null";
  size_t blen = j->err.code || !j->body ? strlen(body) : j->body_len;
  size_t n = strlen(id) + blen + 32;
  char *out = body ? malloc(n) : NULL;
  if (out) {
    int k = snprintf(out, n, "{\"id\":%s,\"%s\":", id, key);
    memcpy(out + k, body, blen);
    memcpy(out + k + blen, "}\n", 3);
    *len = (size_t)k + blen + 2;
  }
  free(err);
  return out;
}

/* Turn a finished job's outcome into the bytes of its response. */
static void job_finalize(srv *s, job *j) {
  if (j->req.op == SRV_OP_METRICS && !j->err.code) {
    size_t len = 0;
    char *text = srv_metrics_render(s, j->body, &len);
    free(j->body);
    j->body = text;
    j->body_len = len;
    j->ctype = "text/plain; version=0.0.4; charset=utf-8";
    if (!text) util_fail(&j->err, SRV_EINTERNAL, NULL, "metrics: out of memory");
  }
  if (j->req.op == SRV_OP_CONSOLE_READ && !j->err.code) srv_console_finalize(s, j);
  /* The connection's last answer when it reads no more (SIGTERM, a bad
     request) says so: a client told "keep-alive" sent its next request
     on it, which was dropped unanswered, and could not tell whether it
     was stored. */
  if (j->http && j->c->no_more_input && !j->next) j->keep_alive = 0;
  if (j->framed && !j->err.code) { /* the decision wrote its own line */
    j->out = j->body, j->out_len = j->body_len;
    j->body = NULL;
  } else {
    j->out = j->http ? srv_http_response(j, &j->out_len) : ndjson_response(j, &j->out_len);
  }
  j->state = J_DONE;
}

/*
** Authorization.
*/

/* Equality that takes as long whatever the first differing byte. */
static int same_secret(const char *given, const char *known) {
  size_t a = strlen(given), b = strlen(known);
  unsigned char diff = (unsigned char)(a != b);
  for (size_t i = 0; i < b; i++)
    diff |= (unsigned char)((i < a ? given[i] : 0) ^ known[i]);
  return diff == 0;
}

static int role_of(const srv_conf *cf, const char *token) {
  int role = -1;
  for (size_t i = 0; i < cf->n_tokens; i++)
    if (same_secret(token, cf->tokens[i].token)) role = cf->tokens[i].role;
  return role;
}

int srv_token_role(const srv_conf *cf, const char *token) { return role_of(cf, token); }

/* What each permission lets a role do, for refusals.  What needs every
   permission (the console's changes) is said as such: a metrics token's
   outbox retry was refused as "may not change the catalog". */
static const char *perm_verb(unsigned need, unsigned missing) {
  if (need == SRV_PERM_ALL) return "make the console's changes (outbox retry and purge)";
  if (missing & SRV_PERM_CATALOG) return "change the catalog (item_upsert, item_delete)";
  if (missing & SRV_PERM_PROFILES) return "read or write customer profiles";
  if (missing & SRV_PERM_ERASE) return "erase customers";
  if (missing & SRV_PERM_STATS) return "read stats and metrics";
  if (missing & SRV_PERM_DECIDE) return "ask for decisions";
  return "send events";
}

/* 0 when the caller may run the job (j->perms set), else the job fails. */
static int authorize(conn *c, job *j) {
  srv *s = c->s;
  const srv_conf *cf = s->conf;
  const char *op = srv_op_name(j->req.op);
  const char *token = j->req.token ? j->req.token : c->token;
  unsigned need = j->req.need;
  if (j->req.op == SRV_OP_AUTH) {
    int role = role_of(cf, j->req.token);
    if (role < 0) {
      util_fail(&j->err, SRV_EUNAUTHORIZED, "token", "auth: unknown token");
      return -1;
    }
    char *copy = strdup(j->req.token);
    if (!copy) {
      util_fail(&j->err, SRV_EINTERNAL, NULL, "auth: out of memory");
      return -1;
    }
    free(c->token);
    c->token = copy;
    j->role = role;
    j->perms = srv_role_perms(role);
    return 0;
  }
  if (!need) return 0;
  if (!cf->n_tokens && s->opts.insecure) {
    j->perms = SRV_PERM_ALL;
    return 0;
  }
  if (!token) {
    util_fail(&j->err, SRV_EUNAUTHORIZED, "token",
              j->http ? "%s needs a token: send 'Authorization: Bearer TOKEN'"
                      : "%s needs a token: send {\"op\":\"auth\",\"token\":...} "
                        "first, or a \"token\" field",
              op);
    return -1;
  }
  int role = role_of(cf, token);
  if (role < 0) {
    util_fail(&j->err, SRV_EUNAUTHORIZED, "token", "%s: unknown token", op);
    return -1;
  }
  unsigned perms = srv_role_perms(role);
  if ((perms & need) != need) {
    char may[96] = ""; /* the roles that may, so the message says which token to use */
    size_t at = 0;
    for (int r = 0; r < SRV_ROLE_COUNT && at < sizeof may; r++)
      if ((srv_role_perms(r) & need) == need)
        at += (size_t)snprintf(may + at, sizeof may - at, "%s%s", at ? " or " : "",
                               srv_role_name(r));
    util_fail(&j->err, SRV_EFORBIDDEN, NULL, "%s: the %s role may not %s%s%s%s", op,
              srv_role_name(role), perm_verb(need, need & ~perms), at ? " (a token of role " : "",
              may, at ? " may)" : "");
    return -1;
  }
  j->perms = perms;
  return 0;
}

static void run_inline(conn *c, job *j) {
  const char *body = NULL;
  char buf[96];
  switch (j->req.op) {
    case SRV_OP_PING:
      body = "{\"pong\":true,\"version\":\"" TAILOR_VERSION_STRING "\"}";
      break;
    case SRV_OP_AUTH:
      snprintf(buf, sizeof buf, "{\"role\":\"%s\"}", srv_role_name(j->role));
      body = buf;
      break;
    case SRV_OP_HEALTH:
      body = c->s->stopping ? "{\"status\":\"stopping\"}" : "{\"status\":\"ok\"}";
      if (c->s->stopping) j->status = 503;
      break;
    case SRV_OP_GA4_DEBUG:
      /* The validation messages, made by the parser; nothing is stored. */
      body = j->req.text ? j->req.text : "{\"validationMessages\":[]}";
      break;
    case SRV_OP_CONSOLE_FILE:
    case SRV_OP_CONSOLE_LOGIN:
    case SRV_OP_CONSOLE_LOGOUT:
      srv_console_inline(c->s, j);
      return;
    case SRV_OP_PREFLIGHT:
      if (!j->origin) {
        util_fail(&j->err, SRV_EFORBIDDEN, "Origin",
                  "preflight: origin not allowed (server.cors_origins)");
        return;
      }
      j->status = 204;
      body = "";
      break;
    default:
      util_fail(&j->err, SRV_EINTERNAL, NULL, "%s does not run inline",
                srv_op_name(j->req.op));
      return;
  }
  if (!(j->body = strdup(body))) util_fail(&j->err, SRV_EINTERNAL, NULL, "out of memory");
  j->body_len = strlen(body);
}

static void queue_read(conn *c, job *j) {
  j->state = J_QUEUED;
  c->queued++;
  srv_queue_read(c->s, j);
}

/*
** Who a request may speak for.  A storefront token is public, so a request
** made with it names a customer only with a customer token from the shop's
** backend: "<customer>.<expiry, unix seconds>.<hex HMAC-SHA256 of
** customer.expiry with server.customer_secret>", as the NDJSON field
** customer_token or the HTTP header X-Tailor-Customer.  Returns the
** customer the token proves (in `out`), or NULL: no token, no secret, a
** wrong signature (compared in constant time) or an expired one.
*/
static const char *proven_customer(const srv *s, const char *token, char *out, size_t n) {
  const char *secret = s->conf->customer_secret;
  if (!token || !secret) return NULL;
  const char *sig = strrchr(token, '.');
  if (!sig || sig == token) return NULL;
  const char *exp = sig - 1;
  while (exp > token && *exp != '.') exp--;
  if (exp == token || (size_t)(exp - token) >= n || strlen(sig + 1) != 64) return NULL;
  char *end;
  long long expiry = strtoll(exp + 1, &end, 10);
  /* In seconds: a made-up expiry in milliseconds would overflow. */
  if (end != sig || expiry < 0 || expiry < util_now_ms() / 1000) return NULL;
  unsigned char mac[EVP_MAX_MD_SIZE], given[32];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)token,
            (size_t)(sig - token), mac, &len) || len != 32)
    return NULL;
  for (int i = 0; i < 32; i++) {
    unsigned hi, lo;
    if (sscanf(sig + 1 + 2 * i, "%1x%1x", &hi, &lo) != 2) return NULL;
    given[i] = (unsigned char)(hi << 4 | lo);
  }
  if (CRYPTO_memcmp(mac, given, 32)) return NULL;
  memcpy(out, token, (size_t)(exp - token));
  out[exp - token] = '\0';
  return out;
}

/*
** What the caller's role may not say in its events, undone or refused
** before they reach the writer.  The server owns time: a storefront token
** is public (it is in the shop's pages) and a visitor's clock is anyone's
** guess, so its events take the server's clock.  Senders whose role may carry a clock (SRV_PERM_CLOCK:
** the shop's backend, imports) keep theirs, if it is at most
** limits.max_future_ms ahead; an event further ahead is refused, with the
** others of its batch kept.  A token without the customers permission may
** not name a customer without proof (proven_customer).  (Its unknown items
** are counted on the writer, work.c's screen_unknown, where the count is
** exact.)  0 when the job goes on.
*/
static int screen_events(conn *c, job *j) {
  srv_request *r = &j->req;
  int64_t now = util_now_ms(), window = srv_max_future_ms(c->s);
  size_t kept = 0;
  char proof[SRV_MAX_ID_BYTES + 1];
  const char *proven = (j->perms & SRV_PERM_CUSTOMERS)
                           ? NULL
                           : proven_customer(c->s, r->customer_token, proof, sizeof proof);
  for (size_t i = 0; i < r->n_events; i++) {
    ev *e = &r->evs[i];
    tailor_error why = {0};
    if (!(j->perms & SRV_PERM_CLOCK)) e->ts = now;
    /* A customer named without proof: the event is the visitor's alone,
       or refused when it is about the customer (identify, signup). */
    if (!(j->perms & SRV_PERM_CUSTOMERS) && e->customer && e->type != EV_CUSTOMER_UPSERT &&
        (!proven || strcmp(proven, e->customer))) {
      e->customer = NULL;
      if ((ev_type_needs(e->type) & EVF_CUSTOMER) || !(e->anon || e->session))
        util_fail(&why, SRV_EBAD_FIELD, "customer",
                  "%s: a storefront names a customer only with a valid customer token "
                  "(customer_token, or the X-Tailor-Customer header; docs/server.md)",
                  ev_type_name(e->type));
    }
    /* A profile from a sender that may not write profiles: Segment's
       identify traits, from a token that names customers (ingest) or for
       the customer a customer token proves. */
    if (e->type == EV_CUSTOMER_UPSERT && !(j->perms & SRV_PERM_PROFILES) &&
        !(j->perms & SRV_PERM_CUSTOMERS) && (!proven || strcmp(proven, e->customer)))
      util_fail(&why, SRV_EBAD_FIELD, "userId",
                "identify: a storefront writes a customer's traits only with a valid "
                "customer token (the X-Tailor-Customer header; docs/server.md)");
    /* A consent event that says it comes from a confirmed double opt-in is
       tailor's own (engine/optin.c, on the link's click): from a sender it
       would be a welcome and its incentive without a confirmation. */
    if (!why.code && e->type == EV_CONSENT && json_object_get(e->props, "double_opt_in"))
      util_fail(&why, SRV_EBAD_FIELD, "props.double_opt_in",
                "consent: 'double_opt_in' is written by tailor itself when a confirmation "
                "link is followed (POST /v1/subscribe, GET /v1/confirm)");
    if (!why.code && (j->perms & SRV_PERM_CLOCK) && window > 0 && e->ts > now + window)
      util_fail(&why, SRV_EBAD_FIELD, "ts",
                "%s: 'ts' is %lld s ahead of the server's clock, more than the %lld s "
                "allowed (limits.max_future_ms)",
                ev_type_name(e->type), (long long)((e->ts - now) / 1000),
                (long long)(window / 1000));
    if (why.code) {
      if (!srv_op_batch(r->op)) {
        j->err = why;
        return -1;
      }
      srv_reject_event(r, i, &why); /* in the order of the request */
      continue;
    }
    /* Its stored text, made here, where the loop has time to spare, not
       on the writer, which every write waits for (ev_body keeps it). */
    ev_body(e, NULL);
    if (kept != i) r->evs[kept] = *e, r->at[kept] = r->at[i];
    kept++;
  }
  r->n_events = kept;
  return 0;
}

/* What the caller's role may not do, undone or refused before the job runs:
   a decision (or the prefs read) for a customer nobody proved is the
   visitor's alone; events
   go through screen_events().  0 when the job goes on. */
static int screen(conn *c, job *j) {
  if ((j->req.op == SRV_OP_DECIDE || j->req.op == SRV_OP_PREFS) && j->req.dq.customer &&
      !(j->perms & SRV_PERM_CUSTOMERS)) {
    char proof[SRV_MAX_ID_BYTES + 1];
    const char *proven = proven_customer(c->s, j->req.customer_token, proof, sizeof proof);
    if (!proven || strcmp(proven, j->req.dq.customer)) j->req.dq.customer = NULL;
  }
  /* An address goes on a customer's profile only for a visitor proven to
     be that customer: anyone else would change who gets their emails. */
  if (j->req.op == SRV_OP_SUBSCRIBE && j->req.customer && !(j->perms & SRV_PERM_CUSTOMERS)) {
    char proof[SRV_MAX_ID_BYTES + 1];
    const char *proven = proven_customer(c->s, j->req.customer_token, proof, sizeof proof);
    if (!proven || strcmp(proven, j->req.customer)) {
      util_fail(&j->err, SRV_EBAD_FIELD, "customer",
                "subscribe: a storefront names a customer only with a valid customer token "
                "(customer_token, or the X-Tailor-Customer header; docs/server.md); send "
                "'anon' alone for a visitor");
      return -1;
    }
  }
  return srv_op_run(j->req.op) == SRV_RUN_WRITE ? screen_events(c, j) : 0;
}

void srv_job_submit(conn *c, job *j) {
  srv *s = c->s;
  j->c = c;
  if (c->tail)
    c->tail->next = j;
  else
    c->head = j;
  c->tail = j;
  c->inflight++;
  c->last_active = uv_now(s->loop);
  if (j->err.code || authorize(c, j) || screen(c, j)) {
    job_finalize(s, j);
    return;
  }
  c->statics += j->req.op == SRV_OP_STATIC; /* until srv_on_done */
  switch (srv_op_run(j->req.op)) {
    case SRV_RUN_INLINE:
      run_inline(c, j);
      job_finalize(s, j);
      break;
    case SRV_RUN_READ:
      /* Writes queued now were all sent before this read. */
      if (c->writes_queued) {
        j->state = J_HELD;
        c->held++;
      } else if (j->req.op == SRV_OP_DECIDE && srv_decide_inline(s)) {
        srv_run_read(s, j);
        job_finalize(s, j);
      } else {
        queue_read(c, j);
      }
      break;
    default:
      j->state = J_QUEUED;
      c->queued++;
      c->writes_queued++;
      srv_queue_write(s, j);
  }
}

/* Reads held for earlier writes go once no write before them is pending. */
static void release_held(conn *c) {
  int write_before = 0;
  for (job *j = c->head; j && c->held; j = j->next) {
    if (j->state == J_QUEUED && srv_op_run(j->req.op) == SRV_RUN_WRITE)
      write_before = 1;
    else if (j->state == J_HELD && !write_before) {
      c->held--;
      queue_read(c, j);
    }
  }
}

/*
** Freeing and closing.
*/
static void conn_free_if_unused(conn *c) {
  if (c->handles || c->queued) return;
  srv *s = c->s;
  for (job *j = c->head, *next; j; j = next) {
    next = j->next;
    /* A request that ran (its event stored, its decision made) counts in
       /metrics though its client left before the answer went out: else
       tailor_requests_total fell short of tailor_events_total. */
    if (j->state == J_DONE) srv_metrics_observe(s, j);
    job_free(j);
  }
  srv_in_free(&c->in);
  srv_http_free(c);
  free(c->token);
  free(c);
  s->alive--;
  srv_maybe_stopped(s);
}

static void on_close(uv_handle_t *h) {
  conn *c = h->data;
  c->handles--;
  conn_free_if_unused(c);
}

void srv_conn_close(conn *c) {
  if (c->closing) return;
  srv *s = c->s;
  c->closing = 1;
  if (c->counted) s->n_open--;
  if (c->peer_counted) srv_peers_remove(s->peers, c->peer);
  c->counted = c->peer_counted = 0;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  uv_close(&c->h.handle, on_close);
  uv_close((uv_handle_t *)&c->timer, on_close);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  conn *c = req->data;
  if (c->closing) return;
  if (status < 0 || c->eof || c->no_linger) {
    srv_conn_close(c);
    return;
  }
  /* Read (and drop) what the peer still sends until it closes too, so
     closing with unread bytes does not reset the connection before it has
     read our last response. */
  c->lingering = 1;
  uv_timer_start(&c->timer, on_timer, SRV_LINGER_MS, 0);
  pump_reads(c);
}

/* Once nothing is left to answer: FIN, then close. */
static void begin_shutdown(conn *c) {
  if (c->shutting || c->closing) return;
  c->shutting = 1;
  c->shut.data = c;
  if (uv_shutdown(&c->shut, &c->h.stream, on_shutdown)) srv_conn_close(c);
}

void srv_conn_finish(conn *c) {
  c->no_more_input = 1;
  c->close_after_flush = 1;
  srv_conn_pump(c);
}

/*
** Deadlines.  One timer a connection: the idle timeout and the request
** head's deadline, then the wait of a lingering close or of a refusal.
*/

/* Milliseconds until `c` is due to close (0: now); *slow when it is for
   its request head. */
static uint64_t time_left(const conn *c, int *slow) {
  const srv_conf *cf = c->s->conf;
  uint64_t now = uv_now(c->s->loop), left = SRV_IDLE_RECHECK_MS;
  uint64_t idle = (uint64_t)cf->idle_timeout_ms, head = (uint64_t)cf->header_timeout_ms;
  *slow = 0;
  if (idle) {
    /* Work of ours in progress is not the client's idleness. */
    if (c->queued)
      left = idle;
    else if (now - c->last_active >= idle)
      return 0;
    else
      left = idle - (now - c->last_active);
  }
  if (head && c->head_at && c->reading) {
    if (now - c->head_at >= head) {
      *slow = 1;
      return 0;
    }
    if (head - (now - c->head_at) < left) left = head - (now - c->head_at);
  }
  return left;
}

/* A timer already due no later than the deadline stays as it is: on_timer
   looks again and waits for what is left.  Deadlines mostly move later
   (each request), so the timer is not taken out and put back in the
   loop's heap for every one. */
static void arm_timer(conn *c) {
  int slow;
  uint64_t left = time_left(c, &slow);
  if (!left) left = 1;
  if (uv_is_active((uv_handle_t *)&c->timer) && uv_timer_get_due_in(&c->timer) <= left) return;
  uv_timer_start(&c->timer, on_timer, left, 0);
}

static void answer_refusal(conn *c, int http);

static void on_timer(uv_timer_t *t) {
  conn *c = t->data;
  if (c->closing) return;
  if (c->lingering || c->no_linger) {
    srv_conn_close(c);
    return;
  }
  if (c->refused) {
    if (c->no_more_input) { /* answered, and the answer is not taken */
      srv_conn_close(c);
      return;
    }
    /* Nothing told the protocol: NDJSON, whose clients may wait to be
       spoken to; then close without lingering, it has waited enough. */
    c->no_linger = 1;
    uv_timer_start(t, on_timer, SRV_LINGER_MS, 0);
    answer_refusal(c, 0);
    srv_conn_pump(c);
    return;
  }
  int slow;
  uint64_t left = time_left(c, &slow);
  if (left) {
    uv_timer_start(t, on_timer, left, 0);
    return;
  }
  if (slow) c->s->m.conns_head_timeouts++;
  srv_conn_close(c);
}

/*
** Writing.
*/
static void on_write(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  conn *c = req->handle->data;
  c->out_bytes -= w->len;
  free(w);
  if (c->closing) return;
  if (status < 0) {
    srv_conn_close(c);
    return;
  }
  c->last_active = uv_now(c->s->loop);
  srv_conn_pump(c);
}

/*
** Bytes to the socket; closes the connection when it cannot.  With nothing
** queued before them they go out at once (uv_try_write, one writev of the
** parts): a uv_write would leave a completion to run and, when it drains,
** an epoll_ctl for every response.  What the socket does not take now is
** copied and queued.
*/
static int conn_write(conn *c, const char *const *parts, const size_t *lens, int n) {
  enum { MAX_PARTS = 64 };
  uv_buf_t bufs[MAX_PARTS];
  size_t total = 0, sent = 0;
  for (int i = 0; i < n; i++) {
    if (i < MAX_PARTS) bufs[i] = uv_buf_init((char *)parts[i], (unsigned)lens[i]);
    total += lens[i];
  }
  if (!c->out_bytes && n <= MAX_PARTS) {
    int r = uv_try_write(&c->h.stream, bufs, (unsigned)n);
    if (r < 0 && r != UV_EAGAIN) {
      srv_conn_close(c);
      return -1;
    }
    if (r > 0) sent = (size_t)r;
  }
  c->s->m.bytes_out += total;
  if (sent == total) {
    c->last_active = uv_now(c->s->loop);
    return 0;
  }
  wreq *w = malloc(sizeof *w + (total - sent));
  if (!w) {
    srv_conn_close(c);
    return -1;
  }
  w->len = 0;
  for (int i = 0; i < n; i++) { /* the parts past what was sent */
    size_t skip = sent < lens[i] ? sent : lens[i];
    sent -= skip;
    memcpy(w->data + w->len, parts[i] + skip, lens[i] - skip);
    w->len += lens[i] - skip;
  }
  uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->len);
  if (uv_write(&w->req, &c->h.stream, &buf, 1, on_write)) {
    free(w);
    srv_conn_close(c);
    return -1;
  }
  c->out_bytes += w->len;
  return 0;
}

void srv_conn_write_raw(conn *c, const char *data, size_t len) {
  conn_write(c, &data, &len, 1);
}

/* Send the finished responses at the head of the list, in one write. */
static int conn_flush(conn *c) {
  enum { BATCH = 64 };
  const char *parts[BATCH];
  size_t lens[BATCH];
  int n = 0;
  for (job *j = c->head; j && j->state == J_DONE && n < BATCH; j = j->next) {
    /* A response that could not be built (out of memory) ends the
       connection: the client would otherwise wait for it forever. */
    if (!j->out) {
      srv_conn_close(c);
      return 0;
    }
    parts[n] = j->out;
    lens[n++] = j->out_len;
  }
  if (!n) return 0;
  if (conn_write(c, parts, lens, n)) return 0;
  for (int i = 0; i < n; i++) {
    job *j = c->head;
    srv_metrics_observe(c->s, j);
    if (!(c->head = j->next)) c->tail = NULL;
    c->inflight--;
    job_free(j);
  }
  return 1;
}

/*
** Reading.
*/
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  char *p;
  size_t n;
  if (srv_in_space(&c->in, SRV_READ_CHUNK, &p, &n)) {
    *buf = uv_buf_init(NULL, 0); /* the read reports UV_ENOBUFS */
    return;
  }
  *buf = uv_buf_init(p, (unsigned)(n < SRV_READ_CHUNK ? n : SRV_READ_CHUNK));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  conn *c = st->data;
  if (nread > 0) {
    c->s->m.bytes_in += (uint64_t)nread;
    srv_in_commit(&c->in, (size_t)nread);
    if (c->lingering || c->no_more_input) {
      srv_in_consume(&c->in, srv_in_pending(&c->in));
      return;
    }
    srv_conn_pump(c);
    return;
  }
  if (nread == 0) return;
  if (nread == UV_EOF && !c->lingering) {
    /* The peer is done sending: answer what came whole, then close. */
    c->eof = 1;
    c->close_after_flush = 1;
    srv_conn_pump(c);
    return;
  }
  srv_conn_close(c);
}

/* Read while the connection has room (see flow control above). */
static void pump_reads(conn *c) {
  const srv_conf *cf = c->s->conf;
  int want = c->lingering ||
             (!c->eof && !c->no_more_input && !c->shutting && !c->s->stopping &&
              c->inflight < cf->max_inflight && c->out_bytes < (size_t)cf->max_output_bytes);
  if (want && !c->reading) {
    if (uv_read_start(&c->h.stream, on_alloc, on_read)) {
      srv_conn_close(c);
      return;
    }
    c->reading = 1;
    /* Time we did not read is not the client's: a head's clock starts again. */
    if (c->head_at) c->head_at = uv_now(c->s->loop);
  } else if (!want && c->reading) {
    uv_read_stop(&c->h.stream);
    c->reading = 0;
  }
}

static int blank(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') return 0;
  return 1;
}

static void ndjson_request(conn *c, const char *line, size_t len) {
  job *j = srv_job_new(c);
  if (!j) {
    srv_conn_close(c);
    return;
  }
  srv_limits lim = {(size_t)c->s->conf->max_batch_events, srv_max_k(c->s)};
  if (srv_parse_line(line, len, &lim, &j->req, &j->err) == SRV_EBAD_JSON) {
    /* Nothing names such a request but its place on the connection. */
    size_t at = strlen(j->err.message);
    snprintf(j->err.message + at, sizeof j->err.message - at,
             " (line %llu of this connection)", (unsigned long long)c->lines);
  }
  srv_job_submit(c, j);
}

static void too_long(conn *c) {
  job *j = srv_job_new(c);
  if (!j) {
    srv_conn_close(c);
    return;
  }
  util_fail(&j->err, SRV_ETOO_LARGE, NULL,
            "line %llu of this connection is longer than max_line_bytes (%ld); "
            "it was dropped",
            (unsigned long long)c->lines, c->s->conf->max_line_bytes);
  srv_job_submit(c, j);
}

/* Make requests of buffered bytes while there is room; whether any was. */
static int conn_parse(conn *c) {
  const srv_conf *cf = c->s->conf;
  int made = 0;
  /* While a static file is read, or the client has not taken
     max_output_bytes of answers, no other request is made: pipelined
     requests for large files would each hold one whole in memory. */
  while (!c->no_more_input && !c->closing && c->inflight < cf->max_inflight && !c->statics &&
         c->out_bytes < (size_t)cf->max_output_bytes) {
    if (c->mode == SRV_MODE_SNIFF) {
      int k = srv_sniff(c->in.buf + c->in.start, srv_in_pending(&c->in));
      if (k == SRV_SNIFF_MORE && !c->eof) break;
      if (c->refused) {
        answer_refusal(c, k == SRV_SNIFF_HTTP);
        if (!c->closing) uv_timer_start(&c->timer, on_timer, SRV_LINGER_MS, 0);
        made++;
        break;
      }
      if (k == SRV_SNIFF_HTTP) {
        if (srv_http_start(c)) {
          srv_conn_close(c);
          break;
        }
        c->mode = SRV_MODE_HTTP;
      } else {
        c->mode = SRV_MODE_NDJSON;
      }
    }
    if (c->mode == SRV_MODE_HTTP) {
      /* Bytes between requests start the next head's clock, also when
         they are line ends that http_parser skips. */
      if (!c->head_at && !c->http->in_message && srv_in_pending(&c->in))
        c->head_at = uv_now(c->s->loop);
      int k = srv_http_feed(c);
      if (k <= 0) break;
      made += k;
      continue;
    }
    const char *line;
    size_t len;
    int r = srv_in_line(&c->in, (size_t)cf->max_line_bytes, &line, &len);
    if (r == SRV_LINE_NONE) break;
    made++;
    c->lines++;
    if (r == SRV_LINE_TOO_LONG)
      too_long(c);
    else if (!blank(line, len))
      ndjson_request(c, line, len);
    else
      continue;
    c->head_at = 0; /* a request came whole: no head deadline from now on */
  }
  return made > 0;
}

void srv_conn_pump(conn *c) {
  int progress;
  do {
    if (c->closing) return;
    progress = conn_parse(c);
    if (c->closing) return;
    progress |= conn_flush(c);
  } while (progress);
  if (c->closing) return;
  pump_reads(c);
  if (c->closing) return;
  if (c->close_after_flush && !c->head) begin_shutdown(c);
  /* Deadlines follow what just happened (a head begun or ended, reads
     paused or resumed); the timer is another's while lingering or
     refusing. */
  if (!c->closing && !c->lingering && !c->no_linger && !c->refused) arm_timer(c);
}

/*
** Accepting and refusing.
*/

/* Count `c` against its address (max_conns_per_peer): 0 when counted, 1
   past the limit, -1 when it cannot be (the peer is gone already, or out
   of memory). */
static int count_peer(conn *c) {
  srv *s = c->s;
  struct sockaddr_storage sa;
  int len = sizeof sa;
  if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&sa, &len) ||
      srv_peer_key((const struct sockaddr *)&sa, c->peer))
    return -1;
  int rc = srv_peers_add(s->peers, c->peer, s->conf->max_conns_per_peer);
  if (rc < 0) srv_log(TAILOR_LOG_ERROR, "accept: out of memory");
  c->peer_counted = rc == 0;
  return rc;
}

/* Past a limit: wait for the first bytes to answer in their protocol. */
static void refuse(conn *c, int why) {
  c->s->m.conns_refused++;
  c->refused = why;
  uv_timer_start(&c->timer, on_timer, SRV_REFUSED_WAIT_MS, 0);
  srv_conn_pump(c);
}

/* The `overloaded` error, as HTTP or NDJSON; nothing is read after it. */
static void answer_refusal(conn *c, int http) {
  const srv_conf *cf = c->s->conf;
  c->no_more_input = c->close_after_flush = 1;
  job *j = srv_job_new(c);
  if (!j) {
    srv_conn_close(c);
    return;
  }
  j->http = http;
  j->http_minor = 1; /* keep_alive 0: "Connection: close" */
  j->head_only = http && srv_in_pending(&c->in) >= 5 &&
                 !memcmp(c->in.buf + c->in.start, "HEAD ", 5);
  if (c->refused == REFUSED_PEER)
    util_fail(&j->err, SRV_EOVERLOADED, NULL,
              "too many connections from your address (max_conns_per_peer is %ld); "
              "try again later",
              cf->max_conns_per_peer);
  else
    util_fail(&j->err, SRV_EOVERLOADED, NULL,
              "too many connections (max_connections is %ld); try again later",
              cf->max_connections);
  srv_job_submit(c, j);
}

void srv_on_connection(uv_stream_t *server, int status) {
  srv *s = server->data;
  if (status < 0) {
    srv_log(TAILOR_LOG_WARN, "accept: %s", uv_strerror(status));
    return;
  }
  conn *c = calloc(1, sizeof *c);
  if (!c) {
    srv_log(TAILOR_LOG_ERROR, "accept: out of memory");
    return;
  }
  c->s = s;
  int tcp = server == (uv_stream_t *)&s->tcp;
  int rc = tcp ? uv_tcp_init(s->loop, &c->h.tcp) : uv_pipe_init(s->loop, &c->h.pipe, 0);
  if (rc) {
    free(c);
    srv_log(TAILOR_LOG_ERROR, "accept: %s", uv_strerror(rc));
    return;
  }
  c->h.handle.data = c;
  c->timer.data = c;
  uv_timer_init(s->loop, &c->timer);
  c->handles = 2;
  s->alive++;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  if ((rc = uv_accept(server, &c->h.stream))) {
    srv_log(TAILOR_LOG_WARN, "accept: %s", uv_strerror(rc));
    srv_conn_close(c);
    return;
  }
  s->m.conns_total++;
  c->last_active = c->head_at = uv_now(s->loop);
  /* Responses are whole when written; no reason to wait for more. */
  if (tcp) uv_tcp_nodelay(&c->h.tcp, 1);
  if (s->n_open >= s->conf->max_connections) {
    refuse(c, REFUSED_CONNECTIONS);
    return;
  }
  int peer = tcp ? count_peer(c) : 0;
  if (peer) {
    if (peer > 0)
      refuse(c, REFUSED_PEER);
    else
      srv_conn_close(c);
    return;
  }
  c->counted = 1;
  s->n_open++;
  srv_conn_pump(c);
}

/*
** Jobs back from the threads.
*/
void srv_on_done(uv_async_t *a) {
  srv *s = a->data;
  uv_mutex_lock(&s->done_mu);
  job *list = s->done_head;
  s->done_head = s->done_tail = NULL;
  uv_mutex_unlock(&s->done_mu);
  conn *dirty = NULL;
  for (job *j = list, *next; j; j = next) {
    next = j->qnext;
    conn *c = j->c;
    int write = srv_op_run(j->req.op) == SRV_RUN_WRITE;
    c->queued--;
    c->statics -= j->req.op == SRV_OP_STATIC;
    if (write) c->writes_queued--;
    if (c->closing) {
      /* Its connection is gone; no later job of the list is c's once
         c->queued is 0, so freeing c here is safe. */
      j->state = J_DONE;
      conn_free_if_unused(c);
      continue;
    }
    job_finalize(s, j);
    if (write && c->held) release_held(c);
    if (!c->dirty) {
      c->dirty = 1;
      c->dirty_next = dirty;
      dirty = c;
    }
  }
  for (conn *c = dirty, *next; c; c = next) {
    next = c->dirty_next;
    c->dirty = 0;
    srv_conn_pump(c);
  }
}
