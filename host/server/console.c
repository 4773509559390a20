/*
** console.c: the merchant console at /admin (docs/console.md): its files,
** its logins, and the admin API it reads (the JSON is the engine's, from
** engine/console.c, or the loop's own counters for the overview).
**
** Files.  The console's pages (console/ in the source tree) are compiled
** into the binary (cmake/embed.cmake), so `tailor serve` serves them with
** nothing installed beside it and no configuration; they hold no data.
**
** Logins.  POST /admin/login with an admin token (or a metrics token: a
** console without PII and without changes) opens a session: a random id
** in a cookie (HttpOnly, SameSite=Strict, Path=/admin) that lasts
** server.console_session_ms, and a random CSRF token the page gets from
** /admin/api/session.  A request with the cookie acts with the session's
** token, so a reload that removes the token ends its sessions too; a
** change (POST) must also carry X-CSRF-Token and, when the browser sends
** an Origin, come from the server's own origin.  Storefront and ingest
** tokens cannot log in.  Sessions live in memory on the event loop:
** a restart logs everyone out.  A Bearer token works on the API as on
** the rest of the server (no cookie, no CSRF: it is not ambient).
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/buf.h"
#include "core/util.h"
#include "engine/console.h"
#include "server/console.h"
#include "server/internal.h"
#include "server/request.h"

#define SRV_CONSOLE_COOKIE "tailor_session"
#define SRV_CONSOLE_MAX_SESSIONS DEF_SERVER_CONSOLE_MAX_SESSIONS
#define SRV_CONSOLE_LOG 32      /* strategy errors and reloads kept */
#define SRV_CONSOLE_FALLBACKS 64 /* (handler, strategy) pairs counted */

typedef struct session {
  char id[65], csrf[65]; /* hex of 32 random bytes each; id "" when free */
  char *token;           /* the token it logged in with; owned */
  int64_t expires;       /* unix ms */
} session;

typedef struct console_line {
  int64_t at;
  int level;
  char text[480];
} console_line;

struct srv_console {
  session sessions[SRV_CONSOLE_MAX_SESSIONS];
  int64_t started;
  /* Decisions that served their fallback, by handler and strategy (loop). */
  struct {
    char kind[32], where[96], last[320];
    uint64_t count;
    int64_t at;
  } fallbacks[SRV_CONSOLE_FALLBACKS];
  /* The engine's log (any thread): reloads and strategy errors. */
  pthread_mutex_t mu;
  console_line log[SRV_CONSOLE_LOG];
  uint64_t n_log;
  int64_t reload_at;
  int reload_ok;
  char reload_text[480];
};

int srv_console_init(srv *s) {
  struct srv_console *k = calloc(1, sizeof *k);
  if (!k) return -1;
  pthread_mutex_init(&k->mu, NULL);
  k->started = k->reload_at = util_now_ms();
  k->reload_ok = 1;
  snprintf(k->reload_text, sizeof k->reload_text, "strategies loaded at start");
  s->console = k;
  return 0;
}

void srv_console_free(srv *s) {
  struct srv_console *k = s->console;
  if (!k) return;
  for (int i = 0; i < SRV_CONSOLE_MAX_SESSIONS; i++) free(k->sessions[i].token);
  pthread_mutex_destroy(&k->mu);
  free(k);
  s->console = NULL;
}

void srv_console_log(srv *s, int level, const char *message) {
  struct srv_console *k = s ? s->console : NULL;
  if (!k || level > TAILOR_LOG_WARN) {
    if (!k || !strstr(message, "strategies reloaded")) return;
  }
  int reloaded = !!strstr(message, "strategies reloaded"),
      refused = !!strstr(message, "strategy edit refused");
  pthread_mutex_lock(&k->mu);
  if (reloaded || refused) {
    k->reload_at = util_now_ms();
    k->reload_ok = reloaded;
    /* Cut at a whole character: a split one made the page's JSON fail. */
    snprintf(k->reload_text, sizeof k->reload_text, "%s", message);
    util_utf8_cut(k->reload_text);
  }
  if (level <= TAILOR_LOG_WARN) {
    console_line *l = &k->log[k->n_log++ % SRV_CONSOLE_LOG];
    l->at = util_now_ms();
    l->level = level;
    snprintf(l->text, sizeof l->text, "%s", message);
    util_utf8_cut(l->text);
  }
  pthread_mutex_unlock(&k->mu);
}

void srv_console_fallback(srv *s, const char *kind, const char *error, size_t n) {
  struct srv_console *k = s->console;
  if (!k) return;
  /* The error is a JSON string; its text up to the second ':' is where
     ("popup.lua:12"). */
  char text[320] = "", where[96] = "";
  json_t *v = json_loadb(error, n, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, NULL);
  if (json_is_string(v)) snprintf(text, sizeof text, "%s", json_string_value(v));
  util_utf8_cut(text);
  json_decref(v);
  const char *c1 = strchr(text, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  if (c1 && c2 && c2 - text < (long)sizeof where)
    snprintf(where, sizeof where, "%.*s", (int)(c2 - text), text);
  else
    snprintf(where, sizeof where, "-");
  int free_slot = -1, oldest = 0;
  for (int i = 0; i < SRV_CONSOLE_FALLBACKS; i++) {
    if (!k->fallbacks[i].count) {
      if (free_slot < 0) free_slot = i;
      continue;
    }
    if (!strcmp(k->fallbacks[i].kind, kind) && !strcmp(k->fallbacks[i].where, where)) {
      free_slot = i;
      break;
    }
    if (k->fallbacks[i].at < k->fallbacks[oldest].at) oldest = i;
  }
  int i = free_slot >= 0 ? free_slot : oldest;
  if (strcmp(k->fallbacks[i].kind, kind) || strcmp(k->fallbacks[i].where, where)) {
    memset(&k->fallbacks[i], 0, sizeof k->fallbacks[i]);
    snprintf(k->fallbacks[i].kind, sizeof k->fallbacks[i].kind, "%s", kind);
    snprintf(k->fallbacks[i].where, sizeof k->fallbacks[i].where, "%s", where);
  }
  k->fallbacks[i].count++;
  k->fallbacks[i].at = util_now_ms();
  snprintf(k->fallbacks[i].last, sizeof k->fallbacks[i].last, "%s", text);
  util_utf8_cut(k->fallbacks[i].last);
}

/*
** Sessions.
*/
static void hex_random(char out[65]) {
  unsigned char b[32];
  if (RAND_bytes(b, sizeof b) != 1) abort(); /* no randomness: no sessions */
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static int same(const char *a, const char *b) {
  size_t n = strlen(b);
  return strlen(a) == n && !CRYPTO_memcmp(a, b, n);
}

/* The live session whose id the Cookie header carries, or NULL. */
static session *session_of(struct srv_console *k, const char *cookie) {
  static const char name[] = SRV_CONSOLE_COOKIE "=";
  const char *p = cookie;
  char id[65] = "";
  while (p && *p) {
    while (*p == ' ' || *p == ';') p++;
    if (!strncmp(p, name, sizeof name - 1)) {
      p += sizeof name - 1;
      size_t n = strcspn(p, "; ");
      if (n == 64) memcpy(id, p, 64), id[64] = '\0';
      break;
    }
    p = strchr(p, ';');
  }
  if (!*id) return NULL;
  int64_t now = util_now_ms();
  for (int i = 0; i < SRV_CONSOLE_MAX_SESSIONS; i++) {
    session *x = &k->sessions[i];
    if (!x->id[0]) continue;
    if (x->expires <= now) { /* expired: gone */
      free(x->token);
      memset(x, 0, sizeof *x);
      continue;
    }
    if (same(id, x->id)) return x;
  }
  return NULL;
}

/* Whether `origin` is this server as the browser reached it (Host). */
static int same_origin(const char *origin, const char *host) {
  if (!origin) return 1; /* not a browser's cross-site request */
  const char *o = !strncmp(origin, "http://", 7) ? origin + 7 : !strncmp(origin, "https://", 8) ? origin + 8 : NULL;
  return o && *host && !strcasecmp(o, host);
}

void srv_console_http(srv *s, job *j, const char *cookie, const char *csrf,
                      const char *origin, const char *host) {
  struct srv_console *k = s->console;
  int op = j->req.op;
  if (op == SRV_OP_CONSOLE_FILE) return;
  int change = op != SRV_OP_CONSOLE_READ;
  if (change && !same_origin(origin, host)) {
    util_fail(&j->err, SRV_EFORBIDDEN, "Origin",
              "%s: a change to the console must come from its own pages (Origin %.200s)",
              srv_op_name(op), origin);
    return;
  }
  if (op == SRV_OP_CONSOLE_LOGIN || j->req.token) return; /* Bearer: as any API call */
  session *x = session_of(k, cookie);
  if (!x) {
    if (op == SRV_OP_CONSOLE_LOGOUT) return; /* nothing to end */
    util_fail(&j->err, SRV_EUNAUTHORIZED, "token",
              "the console needs a login (POST /admin/login) or 'Authorization: Bearer TOKEN'");
    return;
  }
  if (change && !same(csrf, x->csrf)) {
    util_fail(&j->err, SRV_EFORBIDDEN, "X-CSRF-Token",
              "%s: missing or wrong X-CSRF-Token (the console's pages send it)",
              srv_op_name(op));
    return;
  }
  if (op == SRV_OP_CONSOLE_LOGOUT) {
    free(x->token);
    memset(x, 0, sizeof *x);
    return;
  }
  if (!(j->req.token = strdup(x->token))) {
    util_fail(&j->err, SRV_EINTERNAL, NULL, "out of memory");
    return;
  }
  /* /admin/api/session answers with the session's CSRF token and expiry:
     they go to the worker in the request's body part. */
  const char *name = j->req.text;
  if (!strcmp(name, "session")) {
    char extra[160];
    int n = snprintf(extra, sizeof extra, "%s %lld", x->csrf, (long long)x->expires);
    size_t nl = strlen(name);
    char *t = malloc(nl + 3 + (size_t)n);
    if (!t) {
      util_fail(&j->err, SRV_EINTERNAL, NULL, "out of memory");
      return;
    }
    memcpy(t, name, nl + 1);
    t[nl + 1] = '\0'; /* no query */
    memcpy(t + nl + 2, extra, (size_t)n + 1);
    free(j->req.text);
    j->req.text = t;
    j->req.text_len = nl + 2 + (size_t)n;
  }
}

/* The token of a login body: "token=..." (a form) or {"token": "..."}. */
static char *login_token(const char *body) {
  json_t *o = json_loads(body, 0, NULL);
  if (o) {
    json_t *v = json_object_get(o, "token");
    char *t = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
    json_decref(o);
    return t;
  }
  /* A form: decoded as a query string is (srv_query_value), in one pass
     over the body; a control character or an overlong value is no token. */
  char t[SRV_MAX_ID_BYTES + 1];
  srv_query_value(body, strlen(body), "token", t, sizeof t);
  return *t ? strdup(t) : NULL;
}

static void set_json(job *j, json_t *o) {
  j->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (j->body) j->body_len = strlen(j->body);
  else util_fail(&j->err, SRV_EINTERNAL, NULL, "out of memory");
}

/* tailor_audience_export's text into a buffer. */
static int to_buf(void *ud, const char *text, size_t len) {
  buf_put(ud, text, len);
  return ((strbuf *)ud)->oom;
}

/* A body that is not JSON (a page, a CSV file), with its type and headers. */
static void set_text(job *j, const char *text, size_t n, const char *ctype,
                     const char *headers) {
  if (!(j->body = malloc(n ? n : 1)) || !(j->headers = strdup(headers))) {
    free(j->body);
    j->body = NULL;
    util_fail(&j->err, SRV_EINTERNAL, NULL, "out of memory");
    return;
  }
  memcpy(j->body, text, n);
  j->body_len = n;
  j->ctype = ctype;
}

static void login(srv *s, job *j) {
  struct srv_console *k = s->console;
  char *token = login_token(j->req.text);
  int role = token ? srv_token_role(s->conf, token) : -1;
  if (role < 0 || !(srv_role_perms(role) & SRV_PERM_STATS)) {
    free(token);
    util_fail(&j->err, role < 0 ? SRV_EUNAUTHORIZED : SRV_EFORBIDDEN, "token",
              role < 0 ? "login: unknown token"
                       : "login: the console takes an admin (or metrics) token, not a %s one",
              srv_role_name(role));
    return;
  }
  /* A free slot or an expired one; else the one closest to expiry among
     this token's own sessions, then among the others a login of this role
     may push out: a metrics token never an admin's (64 metrics logins
     ended every admin's session). */
  int64_t now = util_now_ms();
  session *x = NULL, *own = NULL, *other = NULL;
  for (int i = 0; i < SRV_CONSOLE_MAX_SESSIONS; i++) {
    session *y = &k->sessions[i];
    if (!y->id[0] || y->expires <= now) {
      x = y;
      break;
    }
    if (!strcmp(y->token, token)) {
      if (!own || y->expires < own->expires) own = y;
    } else if (role == SRV_ROLE_ADMIN || srv_token_role(s->conf, y->token) != SRV_ROLE_ADMIN) {
      if (!other || y->expires < other->expires) other = y;
    }
  }
  if (!x) x = own ? own : other;
  if (!x) {
    free(token);
    util_fail(&j->err, SRV_EOVERLOADED, NULL,
              "login: every console session is an admin's; try again when one ends");
    return;
  }
  free(x->token);
  x->token = token;
  hex_random(x->id);
  hex_random(x->csrf);
  x->expires = now + s->conf->console_session_ms;
  char h[256];
  snprintf(h, sizeof h,
           "Set-Cookie: " SRV_CONSOLE_COOKIE "=%s; Path=/admin; Max-Age=%ld; HttpOnly; "
           "SameSite=Strict\r\n",
           x->id, s->conf->console_session_ms / 1000);
  if (!(j->headers = strdup(h))) {
    util_fail(&j->err, SRV_EINTERNAL, NULL, "out of memory");
    return;
  }
  set_json(j, json_pack("{ss ss sI}", "role", srv_role_name(role), "csrf", x->csrf, "expires",
                        (json_int_t)x->expires));
}

static const char *file_type(const char *name) {
  const char *dot = strrchr(name, '.');
  if (!dot) return "application/octet-stream";
  if (!strcmp(dot, ".html")) return "text/html; charset=utf-8";
  if (!strcmp(dot, ".css")) return "text/css; charset=utf-8";
  if (!strcmp(dot, ".js")) return "text/javascript; charset=utf-8";
  if (!strcmp(dot, ".svg")) return "image/svg+xml";
  if (!strcmp(dot, ".txt") || !strcmp(dot, ".md")) return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

void srv_console_inline(srv *s, job *j) {
  if (j->req.op == SRV_OP_CONSOLE_LOGIN) {
    login(s, j);
    return;
  }
  if (j->req.op == SRV_OP_CONSOLE_LOGOUT) {
    if (!(j->headers = strdup("Set-Cookie: " SRV_CONSOLE_COOKIE
                              "=; Path=/admin; Max-Age=0; HttpOnly; SameSite=Strict\r\n")))
      util_fail(&j->err, SRV_EINTERNAL, NULL, "out of memory");
    else
      set_json(j, json_pack("{sb}", "ok", 1));
    return;
  }
  const char *name = j->req.text;
  for (const srv_console_file *f = srv_console_files; f->path; f++) {
    if (strcmp(f->path, name)) continue;
    if (!(j->body = malloc(f->len ? f->len : 1))) {
      util_fail(&j->err, SRV_EINTERNAL, NULL, "out of memory");
      return;
    }
    memcpy(j->body, f->data, f->len);
    j->body_len = f->len;
    j->ctype = file_type(name);
    if (!(j->headers = strdup("X-Frame-Options: DENY\r\nX-Content-Type-Options: nosniff\r\n"
                              "Content-Security-Policy: default-src 'self'; style-src 'self' "
                              "'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'\r\n")))
      util_fail(&j->err, SRV_EINTERNAL, NULL, "out of memory");
    return;
  }
  util_fail(&j->err, SRV_ENOT_FOUND, NULL, "no console file /admin/%.200s", name);
}

/*
** The admin API, on a worker.  Query parameters are read with param().
*/
/* The decoded value of `key` in the query string `q`, in `out` (n bytes);
   NULL when absent, empty, malformed or too long (srv_query_value). */
static const char *param(const char *q, const char *key, char *out, size_t n) {
  srv_query_value(q, q ? strlen(q) : 0, key, out, n);
  return *out ? out : NULL;
}

static long num_param(const char *q, const char *key, long dflt, long lo, long hi) {
  char v[32];
  if (!param(q, key, v, sizeof v)) return dflt;
  char *end;
  long x = strtol(v, &end, 10);
  if (*end || end == v) return dflt;
  return x < lo ? lo : x > hi ? hi : x;
}

static void fail_engine(job *j, int rc, const tailor_error *e) {
  util_fail(&j->err, srv_err_of_tailor(rc), e->field[0] ? e->field : NULL, "%s",
            e->message[0] ? e->message : tailor_strerror(rc));
}

/* A tailor_* answer (JSON text from the engine) as the body. */
static void engine_text(job *j, int rc, char *out, const tailor_error *e) {
  if (rc) {
    fail_engine(j, rc, e);
    tailor_free(out);
    return;
  }
  j->body = out;
  j->body_len = strlen(out);
  j->body_tailor = 1;
}

void srv_console_run(srv *s, job *j) {
  const char *name = j->req.text, *query = name + strlen(name) + 1,
             *body = query + strlen(query) + 1;
  tailor_error e = {0};
  tailor *t = s->t;
  int pii = (j->perms & SRV_PERM_PROFILES) != 0;
  char a[512], b[64];
  json_t *o = NULL;
  if (!strcmp(name, "session")) {
    char csrf[65] = "";
    long long expires = 0;
    sscanf(body, "%64s %lld", csrf, &expires);
    o = json_pack("{ss sb sb sI}", "role", pii ? "admin" : "metrics", "pii", pii, "act",
                  (j->perms & SRV_PERM_ALL) == SRV_PERM_ALL, "expires", (json_int_t)expires);
    if (o && *csrf) json_object_set_new(o, "csrf", json_string(csrf));
    set_json(j, o);
  } else if (!strcmp(name, "overview")) {
    char *stats = srv_cached_stats(s, &e);
    if (!stats) {
      fail_engine(j, e.code ? e.code : TAILOR_ENOMEM, &e);
      return;
    }
    j->body = stats; /* the loop adds its counters (srv_console_finalize) */
    j->body_len = strlen(stats);
  } else if (!strcmp(name, "revenue")) {
    long hours = num_param(query, "window_hours", DEF_CONSOLE_ATTRIBUTION_HOURS, 1, 24 * 90);
    long days = num_param(query, "days", 0, 0, 3650);
    /* days=N: today (UTC) and the N-1 days before it; impressions are
       counted by day. */
    int64_t since = days ? (util_now_ms() / 86400000 - (days - 1)) * 86400000 : 0;
    o = eng_console_revenue(t, (int64_t)hours * 3600000, since, &e);
    if (!o) fail_engine(j, e.code ? e.code : TAILOR_ENOMEM, &e);
    else set_json(j, o);
  } else if (!strcmp(name, "experiments")) {
    char *out = NULL;
    int rc = tailor_report_experiments(t, (int)num_param(query, "window_days", DEF_REPORT_WINDOW_DAYS, 1, 365), &out, &e);
    engine_text(j, rc, out, &e);
  } else if (!strcmp(name, "outbox")) {
    o = eng_console_outbox(t, param(query, "state", b, sizeof b), pii, &e);
    if (!o) fail_engine(j, e.code ? e.code : TAILOR_ENOMEM, &e);
    else set_json(j, o);
  } else if (!strcmp(name, "outbox/message")) {
    o = param(query, "key", a, sizeof a) ? eng_console_message(t, a, &e) : NULL;
    if (!o && !e.code) util_fail(&e, TAILOR_EFIELD, "key", "outbox/message: give ?key=");
    if (!o) fail_engine(j, e.code ? e.code : TAILOR_ENOMEM, &e);
    else set_json(j, o);
  } else if (!strcmp(name, "outbox/message.html")) {
    /* The HTML part alone, for the preview's frame: a page of its own in a
       sandbox (no script, an opaque origin), framed by the console only. */
    o = param(query, "key", a, sizeof a) ? eng_console_message(t, a, &e) : NULL;
    if (!o && !e.code) util_fail(&e, TAILOR_EFIELD, "key", "outbox/message.html: give ?key=");
    if (!o) {
      fail_engine(j, e.code ? e.code : TAILOR_ENOMEM, &e);
      return;
    }
    const char *html = json_string_value(
        json_object_get(json_object_get(json_object_get(o, "rendered"), "parts"), "html"));
    if (!html) util_fail(&j->err, SRV_ENOT_FOUND, "key", "outbox/message.html: '%.200s' has no "
                         "HTML part (see outbox/message)", a);
    else set_text(j, html, strlen(html), "text/html; charset=utf-8",
                  "X-Content-Type-Options: nosniff\r\n"
                  "Content-Security-Policy: sandbox; default-src 'none'; style-src "
                  "'unsafe-inline'; img-src https: data:; frame-ancestors 'self'\r\n");
    json_decref(o);
  } else if (!strcmp(name, "outbox/retry") || !strcmp(name, "outbox/purge")) {
    json_t *in = *body ? json_loads(body, 0, NULL) : json_object();
    if (!json_is_object(in)) {
      json_decref(in);
      util_fail(&j->err, SRV_EBAD_JSON, NULL, "%s: the body must be a JSON object", name);
      return;
    }
    /* A field of another type is refused, not read as absent: a "key": 3
       read as NULL retried every dead row, an "older_than_ms" as a string
       read as 0 purged rows of any age. */
    json_t *jk = json_object_get(in, "key"), *js = json_object_get(in, "state"),
           *jo = json_object_get(in, "older_than_ms");
    const char *bad = jk && !json_is_null(jk) && !json_is_string(jk)   ? "key"
                      : js && !json_is_null(js) && !json_is_string(js) ? "state"
                      : jo && !json_is_null(jo) && (!json_is_integer(jo) || json_integer_value(jo) < 0)
                          ? "older_than_ms"
                          : NULL;
    if (bad) {
      json_decref(in);
      util_fail(&j->err, SRV_EBAD_FIELD, bad, "%s: '%s' must be %s", name, bad,
                strcmp(bad, "older_than_ms") ? "a string" : "a whole number of ms, 0 or more");
      return;
    }
    const char *key = json_string_value(jk);
    const char *state = json_string_value(js);
    json_int_t older = json_integer_value(jo);
    int rc;
    if (!strcmp(name, "outbox/retry")) {
      int changed = 0;
      rc = tailor_outbox_retry(t, key, &changed, &e);
      if (!rc) o = json_pack("{si}", "changed", changed);
    } else {
      int64_t purged = 0;
      rc = tailor_outbox_purge(t, state, older, &purged, &e);
      if (!rc) o = json_pack("{sI}", "purged", (json_int_t)purged);
    }
    json_decref(in);
    if (rc) fail_engine(j, rc, &e);
    else set_json(j, o);
  } else if (!strcmp(name, "audiences")) {
    o = eng_console_audiences(t, &e);
    if (o) json_object_set_new(o, "snapshot_every_ms", json_integer(s->conf->console_snapshot_ms));
    if (!o) fail_engine(j, e.code ? e.code : TAILOR_ENOMEM, &e);
    else set_json(j, o);
  } else if (!strcmp(name, "audiences/members")) {
    /* ?audience=buyers&days=14, or ?segment=2; emails only with PII. */
    o = eng_console_members(t, param(query, "audience", b, sizeof b) ? b : "",
                            (int)num_param(query, "days", 0, 0, 3650),
                            (int)num_param(query, "segment", 0, 0, 255),
                            (size_t)num_param(query, "limit", 20, 1, DEF_CONSOLE_MEMBERS_MAX),
                            pii, &e);
    if (!o) fail_engine(j, e.code ? e.code : TAILOR_ENOMEM, &e);
    else set_json(j, o);
  } else if (!strcmp(name, "audiences/export")) {
    /* The CSV of `tailor audiences export --csv --hashed-emails`, as a
       download. */
    const char *aud = param(query, "audience", b, sizeof b);
    long days = num_param(query, "days", 0, 0, 3650);
    strbuf out = {0};
    int rc = tailor_audience_export(t, aud ? aud : "", (int)days,
                                    TAILOR_EXPORT_CSV | TAILOR_EXPORT_HASHED_EMAILS, to_buf,
                                    &out, NULL, NULL, &e);
    if (!rc && out.oom) rc = util_fail(&e, TAILOR_ENOMEM, NULL, "audience export: out of memory");
    if (rc) {
      fail_engine(j, rc, &e);
    } else {
      char h[300];
      snprintf(h, sizeof h,
               "Content-Disposition: attachment; filename=\"%s-%ld-days.csv\"\r\n"
               "X-Content-Type-Options: nosniff\r\n",
               aud, days); /* a known audience: letters and underscores */
      set_text(j, out.s ? out.s : "", out.n, "text/csv; charset=utf-8", h);
    }
    buf_free(&out);
  } else if (!strcmp(name, "preview")) {
    char customer[256], anon[256], cart[1024], source[64], segment[64];
    o = eng_console_preview(t, param(query, "customer", customer, sizeof customer),
                            param(query, "anon", anon, sizeof anon),
                            param(query, "cart", cart, sizeof cart),
                            param(query, "source", source, sizeof source),
                            param(query, "segment", segment, sizeof segment), &e);
    if (!o) fail_engine(j, e.code ? e.code : TAILOR_ENOMEM, &e);
    else set_json(j, o);
  } else if (!strcmp(name, "strategies") || !strcmp(name, "strategies/check")) {
    o = eng_console_strategies(t, !strcmp(name, "strategies/check")
                                      ? (size_t)num_param(query, "sample", 50, 1, 1000) : 0, &e);
    if (!o) {
      fail_engine(j, e.code ? e.code : TAILOR_ENOMEM, &e);
      return;
    }
    /* The engine's log lines the console kept: strategy errors, reloads. */
    struct srv_console *k = s->console;
    json_t *log = json_array();
    pthread_mutex_lock(&k->mu);
    for (uint64_t i = k->n_log > SRV_CONSOLE_LOG ? k->n_log - SRV_CONSOLE_LOG : 0; i < k->n_log; i++) {
      console_line *l = &k->log[i % SRV_CONSOLE_LOG];
      json_array_append_new(log, json_pack("{sI ss ss}", "at", (json_int_t)l->at, "level",
                                           l->level == TAILOR_LOG_ERROR ? "error" : "warning",
                                           "text", l->text));
    }
    json_object_set_new(o, "reload", json_pack("{sI sb ss}", "at", (json_int_t)k->reload_at, "ok",
                                               k->reload_ok, "text", k->reload_text));
    pthread_mutex_unlock(&k->mu);
    json_object_set_new(o, "log", log);
    set_json(j, o);
  } else {
    util_fail(&j->err, SRV_ENOT_FOUND, NULL, "no admin endpoint %.100s", name);
  }
}

/* Percentile `p` (0..1) of the sorted `v` (n > 0). */
static double pct(const uint32_t *v, size_t n, double p) {
  size_t i = (size_t)(p * (double)(n - 1) + 0.5);
  return v[i < n ? i : n - 1] / 1000.0;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* The overview: the engine's stats (from the worker) with the loop's
   counters. */
void srv_console_finalize(srv *s, job *j) {
  if (strcmp(j->req.text, "overview")) return;
  struct srv_console *k = s->console;
  const srv_metrics *m = &s->m;
  json_t *stats = json_loadb(j->body, j->body_len, 0, NULL);
  json_t *o = json_object();
  json_t *store = json_object();
  const char *keys[] = {"events_total", "items", "customers", "identities", "outbox"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
    json_object_set(store, keys[i], json_object_get(stats, keys[i]));
  json_object_set_new(o, "store", store);
  json_object_set(o, "index", json_object_get(stats, "index"));
  json_object_set(o, "process", json_object_get(stats, "process"));
  json_decref(stats);
  /* Per minute, oldest first, the current minute last. */
  int64_t now = util_now_ms() / 60000;
  json_t *mins = json_array();
  for (int64_t t = now - SRV_MINUTES + 1; t <= now; t++) {
    const __typeof__(m->per_minute[0]) *pm = &m->per_minute[t % SRV_MINUTES];
    int here = pm->minute == t;
    json_array_append_new(mins, json_pack("{sI sI sI sI sI}", "t", (json_int_t)(t * 60), "events",
                                          (json_int_t)(here ? pm->events : 0), "decisions",
                                          (json_int_t)(here ? pm->decisions : 0), "errors",
                                          (json_int_t)(here ? pm->errors : 0), "fallbacks",
                                          (json_int_t)(here ? pm->fallbacks : 0)));
  }
  json_object_set_new(o, "minutes", mins);
  size_t n = m->decide_seen < SRV_LATENCY_SAMPLES ? (size_t)m->decide_seen : SRV_LATENCY_SAMPLES;
  uint32_t sorted[SRV_LATENCY_SAMPLES];
  memcpy(sorted, m->decide_us, n * sizeof *sorted);
  qsort(sorted, n, sizeof *sorted, cmp_u32);
  json_object_set_new(o, "latency_ms",
                      n ? json_pack("{sI sf sf sf sf}", "samples", (json_int_t)n, "p50",
                                    pct(sorted, n, 0.5), "p90", pct(sorted, n, 0.9), "p99",
                                    pct(sorted, n, 0.99), "max", sorted[n - 1] / 1000.0)
                        : json_pack("{si}", "samples", 0));
  json_t *errs = json_array();
  for (int i = 0; i < SRV_CONSOLE_FALLBACKS; i++)
    if (k->fallbacks[i].count)
      json_array_append_new(errs, json_pack("{ss ss sI sI ss}", "handler", k->fallbacks[i].kind,
                                            "strategy", k->fallbacks[i].where, "count",
                                            (json_int_t)k->fallbacks[i].count, "at",
                                            (json_int_t)k->fallbacks[i].at, "last",
                                            k->fallbacks[i].last));
  json_object_set_new(o, "errors", errs);
  pthread_mutex_lock(&k->mu);
  json_object_set_new(o, "reload", json_pack("{sI sb ss}", "at", (json_int_t)k->reload_at, "ok",
                                             k->reload_ok, "text", k->reload_text));
  pthread_mutex_unlock(&k->mu);
  json_object_set_new(o, "started", json_integer((json_int_t)k->started));
  json_object_set_new(o, "now", json_integer((json_int_t)util_now_ms()));
  free(j->body);
  j->body = NULL;
  set_json(j, o);
}
