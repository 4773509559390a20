/*
** http.c: HTTP/1.1 on a connection, with Debian's http-parser (nodejs's
** http_parser.c) doing the parsing: keep-alive and pipelining, bodies up
** to max_body_bytes (`Content-Encoding: gzip` inflated, to as much),
** `Authorization: Bearer`, and `Basic` whose user is the token (Segment's
** write key), CORS from server.cors_origins, `Expect: 100-continue`.  A request becomes a job through srv_parse_http()
** and then travels exactly like an NDJSON one; this file only frames it,
** and marks where a request head begins and ends (conn.head_at: the
** header_timeout_ms deadline, kept in conn.c).
*/
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "server/internal.h"

/* Headers we keep. */
enum { H_NONE, H_AUTH, H_ORIGIN, H_EXPECT, H_CUSTOMER, H_ENCODING, H_COOKIE, H_CSRF, H_HOST };

static http_state *state_of(http_parser *p) { return ((conn *)p->data)->http; }

static void append(char *dst, size_t cap, size_t *len, const char *at, size_t n) {
  /* Past the buffer the length keeps counting, so an overlong value is
     recognized as such (len >= cap) and never used cut short. */
  if (*len < cap) memcpy(dst + *len, at, *len + n <= cap ? n : cap - *len);
  *len += n;
}

static int on_message_begin(http_parser *p) {
  conn *c = p->data;
  http_state *h = c->http;
  /* header_timeout_ms runs from here (or from the bytes before it, see
     conn.c) to the end of the headers. */
  if (!c->head_at) c->head_at = uv_now(c->s->loop);
  h->in_message = 1;
  h->url_len = h->field_len = h->auth_len = h->origin_len = h->expect_len = 0;
  h->customer_len = h->encoding_len = h->cookie_len = h->csrf_len = h->host_len = 0;
  h->url_long = h->in_value = h->body_long = 0;
  h->capture = H_NONE;
  h->body_len = 0;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  http_state *h = state_of(p);
  append(h->url, sizeof h->url, &h->url_len, at, n);
  if (h->url_len > sizeof h->url) h->url_long = 1;
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  http_state *h = state_of(p);
  /* No space or tab in a field name, nor before its colon (RFC 7230
     3.2.4): "Content-Length : 26" is refused, not taken as a length that
     a proxy in front may not have seen (request smuggling). */
  for (size_t i = 0; i < n; i++)
    if (at[i] == ' ' || at[i] == '\t') return -1;
  if (h->in_value) {
    h->in_value = 0;
    h->field_len = 0;
  }
  append(h->field, sizeof h->field, &h->field_len, at, n);
  return 0;
}

static int field_is(http_state *h, const char *name) {
  size_t n = strlen(name);
  return h->field_len == n && !strncasecmp(h->field, name, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  http_state *h = state_of(p);
  int fresh = !h->in_value; /* the first piece of this header's value */
  if (fresh) {
    h->in_value = 1;
    h->capture = field_is(h, "authorization") ? H_AUTH
                 : field_is(h, "origin")      ? H_ORIGIN
                 : field_is(h, "x-tailor-customer") ? H_CUSTOMER
                 : field_is(h, "expect")      ? H_EXPECT
                 : field_is(h, "content-encoding") ? H_ENCODING
                 : field_is(h, "cookie")      ? H_COOKIE
                 : field_is(h, "x-csrf-token") ? H_CSRF
                 : field_is(h, "host")        ? H_HOST
                                              : H_NONE;
  }
  if (h->capture == H_AUTH) append(h->auth, sizeof h->auth, &h->auth_len, at, n);
  if (h->capture == H_ORIGIN) append(h->origin, sizeof h->origin, &h->origin_len, at, n);
  if (h->capture == H_EXPECT) append(h->expect, sizeof h->expect, &h->expect_len, at, n);
  if (h->capture == H_ENCODING)
    append(h->encoding, sizeof h->encoding, &h->encoding_len, at, n);
  if (h->capture == H_CUSTOMER)
    append(h->customer, sizeof h->customer, &h->customer_len, at, n);
  if (h->capture == H_COOKIE) {
    /* Several Cookie headers are one list (a value may come in pieces). */
    if (h->cookie_len && fresh) append(h->cookie, sizeof h->cookie, &h->cookie_len, "; ", 2);
    append(h->cookie, sizeof h->cookie, &h->cookie_len, at, n);
  }
  if (h->capture == H_CSRF) append(h->csrf, sizeof h->csrf, &h->csrf_len, at, n);
  if (h->capture == H_HOST) append(h->host, sizeof h->host, &h->host_len, at, n);
  return 0;
}

static void make_request(conn *c);

static int on_headers_complete(http_parser *p) {
  conn *c = p->data;
  http_state *h = c->http;
  c->head_at = 0;
  size_t max = (size_t)c->s->conf->max_body_bytes;
  if (p->content_length != ULLONG_MAX && p->content_length > max) {
    /* Refuse before the body arrives; the connection cannot go on. */
    h->body_long = 1;
    make_request(c);
    return -1;
  }
  if (h->expect_len == 12 && !strncasecmp(h->expect, "100-continue", 12) && !c->head) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    srv_conn_write_raw(c, cont, sizeof cont - 1);
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  conn *c = p->data;
  http_state *h = c->http;
  size_t max = (size_t)c->s->conf->max_body_bytes;
  if (h->body_long) return 0;
  if (h->body_len + n > max) {
    h->body_long = 1;
    return 0;
  }
  if (h->body_len + n > h->body_cap) {
    size_t cap = h->body_cap ? h->body_cap : 1024;
    while (cap < h->body_len + n) cap *= 2;
    char *b = realloc(h->body, cap);
    if (!b) {
      h->body_long = 1; /* answered as too large: the truth, for us */
      return 0;
    }
    h->body = b;
    h->body_cap = cap;
  }
  memcpy(h->body + h->body_len, at, n);
  h->body_len += n;
  return 0;
}

static int on_message_complete(http_parser *p) {
  conn *c = p->data;
  c->http->in_message = 0;
  make_request(c);
  /* Stop after this message when the connection is full, ends here or
     reads a static file (conn.c, conn_parse); srv_http_feed resumes later
     from the same byte. */
  if (c->inflight >= c->s->conf->max_inflight || c->no_more_input || c->statics ||
      c->out_bytes >= (size_t)c->s->conf->max_output_bytes)
    http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* The Origin to echo when server.cors_origins allows it, else NULL. */
static const char *cors_match(const srv_conf *cf, const char *origin) {
  for (size_t i = 0; i < cf->n_cors; i++) {
    if (!strcmp(cf->cors[i], "*")) return "*";
    if (!strcmp(cf->cors[i], origin)) return origin;
  }
  return NULL;
}

static int method_of(int m) {
  switch (m) {
    case HTTP_GET:
    case HTTP_HEAD: return SRV_GET; /* answered without the body */
    case HTTP_POST: return SRV_POST;
    case HTTP_DELETE: return SRV_DELETE;
    case HTTP_OPTIONS: return SRV_OPTIONS;
    default: return SRV_OTHER_METHOD;
  }
}

static void make_request(conn *c) {
  http_state *h = c->http;
  srv *s = c->s;
  job *j = srv_job_new(c);
  if (!j) {
    srv_conn_close(c);
    return;
  }
  j->http = 1;
  j->http_minor = h->p.http_minor;
  j->head_only = h->p.method == HTTP_HEAD;
  j->keep_alive = !h->body_long && http_should_keep_alive(&h->p);
  if (!j->keep_alive) c->no_more_input = c->close_after_flush = 1;
  if (h->origin_len && h->origin_len < sizeof h->origin) {
    h->origin[h->origin_len] = '\0';
    const char *o = cors_match(s->conf, h->origin);
    if (o && !(j->origin = strdup(o)))
      util_fail(&j->err, SRV_EINTERNAL, NULL, "out of memory");
  }
  srv_limits lim = {(size_t)s->conf->max_batch_events, srv_max_k(s)};
  /* A compressed body, inflated to at most max_body_bytes. */
  char *plain = NULL;
  const char *body = h->body;
  size_t body_len = h->body_len;
  int gzip = (h->encoding_len == 4 && !strncasecmp(h->encoding, "gzip", 4)) ||
             (h->encoding_len == 6 && !strncasecmp(h->encoding, "x-gzip", 6)) ||
             (h->encoding_len == 7 && !strncasecmp(h->encoding, "deflate", 7));
  if (j->err.code || h->url_long || h->body_long) {
    /* answered below */
  } else if (gzip && body_len) {
    if (!srv_gunzip(h->body, h->body_len, (size_t)s->conf->max_body_bytes, &plain, &body_len,
                    &j->err))
      body = plain;
  } else if (h->encoding_len && !gzip &&
             !(h->encoding_len == 8 && !strncasecmp(h->encoding, "identity", 8))) {
    util_fail(&j->err, SRV_EBAD_REQUEST, "Content-Encoding",
              "Content-Encoding '%.*s' is not supported (gzip is)",
              (int)(h->encoding_len < sizeof h->encoding ? h->encoding_len : sizeof h->encoding),
              h->encoding);
  }
  if (j->err.code) {
    /* out of memory above: answered as such */
  } else if (h->url_long) {
    util_fail(&j->err, SRV_ETOO_LARGE, NULL, "the request target is longer than %d bytes",
              SRV_MAX_URL_BYTES);
    j->req.http_status = 414; /* RFC 9110 15.5.15 */
  } else if (h->body_long) {
    util_fail(&j->err, SRV_ETOO_LARGE, NULL, "the body is larger than max_body_bytes (%ld)",
              s->conf->max_body_bytes);
  } else if (!srv_static_route(s->conf, method_of(h->p.method) == SRV_GET, h->url,
                               h->url_len, &j->req, &j->err)) {
    srv_parse_http(method_of(h->p.method), h->url, h->url_len, body, body_len, &lim,
                   &j->req, &j->err);
  }
  free(plain);
  /* The customer token from "X-Tailor-Customer: TOKEN". */
  if (!j->req.customer_token && h->customer_len && h->customer_len < sizeof h->customer)
    j->req.customer_token = strndup(h->customer, h->customer_len);
  /* The token from "Authorization: Bearer TOKEN". */
  if (!j->req.token && h->auth_len > 7 && h->auth_len < sizeof h->auth &&
      !strncasecmp(h->auth, "Bearer ", 7)) {
    size_t a = 7;
    while (a < h->auth_len && h->auth[a] == ' ') a++;
    j->req.token = strndup(h->auth + a, h->auth_len - a);
  }
  /* "Authorization: Basic base64(TOKEN:)": Segment's and RudderStack's
     clients send their write key so. */
  char user[SRV_MAX_ID_BYTES + 1];
  if (!j->req.token && h->auth_len < sizeof h->auth &&
      !srv_basic_user(h->auth, h->auth_len, user, sizeof user))
    j->req.token = strdup(user);
  if (h->body_cap > SRV_READ_CHUNK) {
    free(h->body);
    h->body = NULL;
    h->body_cap = 0;
  }
  h->body_len = 0;
  /* The console's session cookie and CSRF token (console.c). */
  if (!j->err.code && j->req.op >= SRV_OP_CONSOLE_FILE && j->req.op <= SRV_OP_CONSOLE_WRITE) {
    h->origin[h->origin_len < sizeof h->origin ? h->origin_len : 0] = '\0';
    h->cookie[h->cookie_len < sizeof h->cookie ? h->cookie_len : 0] = '\0';
    h->csrf[h->csrf_len < sizeof h->csrf ? h->csrf_len : 0] = '\0';
    h->host[h->host_len < sizeof h->host ? h->host_len : 0] = '\0';
    srv_console_http(s, j, h->cookie, h->csrf, h->origin_len ? h->origin : NULL, h->host);
  }
  srv_job_submit(c, j);
}

int srv_http_start(conn *c) {
  if (!(c->http = calloc(1, sizeof *c->http))) return -1;
  http_parser_init(&c->http->p, HTTP_REQUEST);
  c->http->p.data = c;
  return 0;
}

void srv_http_free(conn *c) {
  if (!c->http) return;
  free(c->http->body);
  free(c->http);
  c->http = NULL;
}

int srv_http_feed(conn *c) {
  http_state *h = c->http;
  size_t n = srv_in_pending(&c->in);
  if (!n) return 0;
  int before = c->inflight;
  size_t used = http_parser_execute(&h->p, &settings, c->in.buf + c->in.start, n);
  srv_in_consume(&c->in, used);
  enum http_errno e = HTTP_PARSER_ERRNO(&h->p);
  if (e == HPE_PAUSED) {
    http_parser_pause(&h->p, 0);
  } else if (e != HPE_OK || h->p.upgrade) {
    /* The stream cannot be trusted past this point. */
    if (!c->no_more_input && e != HPE_OK) {
      job *j = srv_job_new(c);
      if (!j) {
        srv_conn_close(c);
        return 0;
      }
      j->http = 1;
      util_fail(&j->err, SRV_EBAD_REQUEST, NULL, "bad HTTP request: %s",
                http_errno_description(e));
      srv_job_submit(c, j);
    }
    c->no_more_input = c->close_after_flush = 1;
    srv_in_consume(&c->in, srv_in_pending(&c->in));
  }
  return c->inflight - before;
}

static const char *reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 303: return "See Other";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "Error";
  }
}

char *srv_http_response(job *j, size_t *len) {
  int status = j->status           ? j->status
               : !j->err.code        ? 200
               : j->req.http_status ? j->req.http_status
                                     : srv_err_status(j->err.code);
  char *err = NULL;
  const char *body = j->body ? j->body : "";
  size_t blen = j->body ? j->body_len : 0;
  if (j->err.code) {
    char *e = srv_error_json(&j->err);
    size_t n = e ? strlen(e) + 16 : 0;
    if (e && (err = malloc(n))) blen = (size_t)snprintf(err, n, "{\"error\":%s}", e);
    free(e);
    if (!err) return NULL;
    body = err;
  }
  char head[1024];
  int k = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", status, reason(status));
  if (status != 204)
    k += snprintf(head + k, sizeof head - (size_t)k,
                  "Content-Type: %s\r\nContent-Length: %zu\r\n",
                  j->ctype ? j->ctype : "application/json", blen);
  k += snprintf(head + k, sizeof head - (size_t)k, "Cache-Control: no-store\r\n");
  if (!j->keep_alive)
    k += snprintf(head + k, sizeof head - (size_t)k, "Connection: close\r\n");
  else if (j->http_minor == 0)
    k += snprintf(head + k, sizeof head - (size_t)k, "Connection: keep-alive\r\n");
  if (j->origin) {
    k += snprintf(head + k, sizeof head - (size_t)k,
                  "Access-Control-Allow-Origin: %.300s\r\n%s", j->origin,
                  strcmp(j->origin, "*") ? "Vary: Origin\r\n" : "");
    if (j->req.op == SRV_OP_PREFLIGHT)
      k += snprintf(head + k, sizeof head - (size_t)k,
                    "Access-Control-Allow-Methods: GET, POST, DELETE, OPTIONS\r\n"
                    "Access-Control-Allow-Headers: Authorization, Content-Type, X-Tailor-Customer\r\n"
                    "Access-Control-Max-Age: %d\r\n",
                    SRV_CORS_MAX_AGE);
  }
  if (j->headers) k += snprintf(head + k, sizeof head - (size_t)k, "%s", j->headers);
  if (status == 401)
    k += snprintf(head + k, sizeof head - (size_t)k, "WWW-Authenticate: %s\r\n",
                  j->req.op == SRV_OP_SEGMENT ? "Basic realm=\"tailor\"" : "Bearer");
  k += snprintf(head + k, sizeof head - (size_t)k, "\r\n");
  if (j->head_only) blen = 0;
  char *out = malloc((size_t)k + blen);
  if (out) {
    memcpy(out, head, (size_t)k);
    memcpy(out + k, body, blen);
    *len = (size_t)k + blen;
  }
  free(err);
  return out;
}
