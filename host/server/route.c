/*
** route.c: an HTTP request (method, target, body) to the same validated
** srv_request as an NDJSON line: the route picks the operation and builds
** its request object from the path and body, then request.c's validators
** check it.  No sockets here; http.c has the connection's side.
*/
#include "server/proto.h"

#include <stdio.h>
#include <string.h>

#include "core/event.h"
#include "core/util.h"
#include "server/request.h"

/* Percent-decode a path segment into `out` (NUL-terminated); -1 when it is
   malformed, too long, holds a control character or is not UTF-8. */
static int decode_segment(const char *s, size_t n, char out[SRV_MAX_ID_BYTES + 1]) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)s[i];
    if (c == '%') {
      if (i + 2 >= n) return -1;
      int hi = util_hex_digit(s[i + 1]), lo = util_hex_digit(s[i + 2]);
      if (hi < 0 || lo < 0) return -1;
      c = hi * 16 + lo;
      i += 2;
    }
    if (c < 0x20 || c == 0x7f || o == SRV_MAX_ID_BYTES) return -1;
    out[o++] = (char)c;
  }
  out[o] = '\0';
  size_t bad;
  return o && util_utf8_valid(out, o, &bad) ? 0 : -1;
}

/* A query parameter (request.h); "" when absent, malformed (a control
   character) or too long, and whoever reads it says what is wrong with
   it.  A '%' without two hex digits after it, inside the parameter, stays
   as it is. */
void srv_query_value(const char *q, size_t n, const char *name, char *out, size_t cap) {
  size_t k = strlen(name);
  out[0] = '\0';
  for (size_t i = 0; i < n;) {
    size_t end = i;
    while (end < n && q[end] != '&') end++;
    if (end - i > k && !memcmp(q + i, name, k) && q[i + k] == '=') {
      size_t o = 0;
      for (size_t j = i + k + 1; j < end; j++) {
        int c = (unsigned char)q[j];
        if (c == '%' && j + 2 < end && util_hex_digit(q[j + 1]) >= 0 &&
            util_hex_digit(q[j + 2]) >= 0) { /* else the '%' stays */
          c = util_hex_digit(q[j + 1]) * 16 + util_hex_digit(q[j + 2]);
          j += 2;
        } else if (c == '+') {
          c = ' ';
        }
        if (c < 0x20 || o + 1 >= cap) {
          out[0] = '\0';
          return;
        }
        out[o++] = (char)c;
      }
      out[o] = '\0';
      return;
    }
    i = end + 1;
  }
}


/* A body's customer_token (a field of its own, or of an event of
   /v1/events), given to the request as NDJSON's envelope field is, and
   taken out of the body, so that an event never keeps it: it is a
   credential.  The events of one body name one customer token. */
static int take_one_token(json_t *o, srv_request *out, const char *path, tailor_error *err) {
  json_t *v = json_object_get(o, "customer_token");
  if (!v || json_is_null(v)) return json_object_del(o, "customer_token"), SRV_OK;
  if (!json_is_string(v) || json_string_length(v) > SRV_MAX_CUSTOMER_TOKEN_BYTES)
    return util_fail(err, SRV_EBAD_FIELD, "customer_token",
                     "%s: 'customer_token' must be a string of at most 512 bytes, found %s",
                     path, srv_type_word(v));
  if (out->customer_token && strcmp(out->customer_token, json_string_value(v)))
    return util_fail(err, SRV_EBAD_FIELD, "customer_token",
                     "%s: the events carry different customer tokens; send each customer's "
                     "events in a request of their own", path);
  if (!out->customer_token && !(out->customer_token = strdup(json_string_value(v))))
    return util_fail(err, SRV_EINTERNAL, NULL, "%s: out of memory", path);
  json_object_del(o, "customer_token");
  return SRV_OK;
}

static int take_customer_token(json_t *req, srv_request *out, const char *path,
                               tailor_error *err) {
  json_t *in = out->op == SRV_OP_EVENT    ? json_object_get(req, "event")
               : out->op == SRV_OP_EVENTS ? json_object_get(req, "events")
                                          : req;
  if (!json_is_array(in)) return json_is_object(in) ? take_one_token(in, out, path, err) : SRV_OK;
  size_t i;
  json_t *e;
  json_array_foreach(in, i, e) {
    int rc = json_is_object(e) ? take_one_token(e, out, path, err) : SRV_OK;
    if (rc) return rc;
  }
  return SRV_OK;
}

/* The body as a JSON value; an empty body is NULL without an error. */
static int body_json(const char *body, size_t len, json_t **out, tailor_error *err) {
  *out = NULL;
  size_t i = 0;
  while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' ||
                     body[i] == '\n'))
    i++;
  if (i == len) return SRV_OK;
  if (util_json_depth(body, len) > UTIL_MAX_JSON_DEPTH)
    return util_fail(err, SRV_EBAD_JSON, NULL, "JSON body nested deeper than %d levels",
                     UTIL_MAX_JSON_DEPTH);
  json_error_t je;
  if (!(*out = util_json_parse(body, len, &je)))
    return util_fail(err, SRV_EBAD_JSON, NULL,
                     "malformed JSON body at line %d, column %d: %s", je.line,
                     je.column, je.text);
  return SRV_OK;
}

static int body_object(const char *body, size_t len, const char *what, json_t **out,
                       tailor_error *err) {
  int rc = body_json(body, len, out, err);
  if (rc) return rc;
  if (!*out) return util_fail(err, SRV_EBAD_JSON, NULL, "%s: the body is empty", what);
  if (!json_is_object(*out)) {
    rc = util_fail(err, SRV_EBAD_JSON, NULL, "%s: the body must be a JSON object, found %s",
                   what, srv_type_word(*out));
    json_decref(*out);
    *out = NULL;
  }
  return rc;
}

static const char *method_name(int m) {
  static const char *const names[] = {"GET", "POST", "DELETE", "OPTIONS", "this method"};
  return names[m >= 0 && m <= SRV_OTHER_METHOD ? m : SRV_OTHER_METHOD];
}

static int wrong_method(tailor_error *err, int method, const char *path, const char *use) {
  return util_fail(err, SRV_EBAD_METHOD, NULL, "%s is not allowed on %s; use %s",
                   method_name(method), path, use);
}

int srv_parse_http(int method, const char *url, size_t url_len, const char *body,
                   size_t body_len, const srv_limits *lim, srv_request *out,
                   tailor_error *err) {
  memset(out, 0, sizeof *out);
  out->op = -1;
  int rc = SRV_OK;
  json_t *req = NULL, *b = NULL;
  char seg[SRV_MAX_ID_BYTES + 1] = "";
  char path[128];
  /* The path: the target up to '?' or '#'; an absolute-form target
     ("http://host/path") starts at its first '/' after the host. */
  size_t start = 0, end = 0;
  if (url_len > 7 && (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))) {
    start = url[4] == 's' ? 8 : 7;
    while (start < url_len && url[start] != '/') start++;
  }
  end = start;
  while (end < url_len && url[end] != '?' && url[end] != '#') end++;
  const char *p = url + start;
  size_t n = end - start;
  snprintf(path, sizeof path, "%.*s", (int)(n < 100 ? n : 100), p);

  if (method == SRV_OPTIONS) {
    out->op = SRV_OP_PREFLIGHT;
    goto route_done;
  }
#define IS(lit) (n == sizeof(lit) - 1 && !memcmp(p, lit, n))
#define UNDER(lit) (n > sizeof(lit) - 1 && !memcmp(p, lit, sizeof(lit) - 1))
  if (IS("/admin") || (n >= 7 && !memcmp(p, "/admin/", 7))) {
    /* The merchant console and its API (admin_route.c). */
    size_t q = end < url_len && url[end] == '?' ? end + 1 : end, qe = q;
    while (qe < url_len && url[qe] != '#') qe++;
    rc = srv_parse_admin(method, p, n, url + q, qe - q, body, body_len, out, err);
    goto parsed;
  } else if (IS("/healthz")) {
    if (method != SRV_GET) rc = wrong_method(err, method, path, "GET");
    out->op = SRV_OP_HEALTH;
  } else if (IS("/metrics")) {
    if (method != SRV_GET) rc = wrong_method(err, method, path, "GET");
    out->op = SRV_OP_METRICS;
  } else if (IS("/v1/stats")) {
    if (method != SRV_GET) rc = wrong_method(err, method, path, "GET");
    out->op = SRV_OP_STATS;
  } else if (IS("/v1/events")) {
    if (method != SRV_POST) {
      rc = wrong_method(err, method, path, "POST");
    } else if (!(rc = body_json(body, body_len, &b, err))) {
      /* One event object, or an array of them. */
      if (json_is_array(b)) {
        out->op = SRV_OP_EVENTS;
        req = json_pack("{sO}", "events", b);
      } else if (json_is_object(b)) {
        out->op = SRV_OP_EVENT;
        req = json_pack("{sO}", "event", b);
      } else {
        rc = util_fail(err, SRV_EBAD_JSON, NULL,
                       "/v1/events: the body must be an event object or an array of "
                       "them, found %s",
                       b ? srv_type_word(b) : "nothing");
      }
    }
  } else if (UNDER("/v1/decide/")) {
    size_t k = sizeof("/v1/decide/") - 1;
    if (method != SRV_POST) {
      rc = wrong_method(err, method, path, "POST");
    } else if (decode_segment(p + k, n - k, seg) || strchr(seg, '/')) {
      rc = util_fail(err, SRV_ENOT_FOUND, NULL, "no decision kind in %s", path);
    } else if (!(rc = body_json(body, body_len, &b, err))) {
      if (b && !json_is_object(b)) {
        rc = util_fail(err, SRV_EBAD_JSON, NULL,
                       "%s: the body must be a JSON object, found %s", path,
                       srv_type_word(b));
      } else {
        req = b ? json_incref(b) : json_object();
        json_t *kind = json_object_get(req, "kind");
        if (kind && !(json_is_string(kind) && !strcmp(json_string_value(kind), seg)))
          rc = util_fail(err, SRV_EBAD_FIELD, "kind",
                         "decide: the body's 'kind' differs from the path's '%s'", seg);
        else
          json_object_set_new(req, "kind", json_string(seg));
        out->op = SRV_OP_DECIDE;
      }
    }
  } else if (IS("/v1/batch") || IS("/v1/track") || IS("/v1/page") || IS("/v1/screen") ||
             IS("/v1/alias") || IS("/v1/group") || IS("/v1/b") || IS("/v1/t") || IS("/v1/p") ||
             IS("/v1/s") || IS("/v1/a") || IS("/v1/g") || IS("/v1/i")) {
    /* Segment's HTTP Tracking API (segment.c). */
    if (method != SRV_POST) {
      out->op = SRV_OP_SEGMENT;
      rc = wrong_method(err, method, path, "POST");
    } else {
      rc = srv_parse_segment(path, body, body_len, NULL, util_now_ms(), lim, out, err);
    }
    goto parsed;
  } else if (IS("/mp/collect") || IS("/debug/mp/collect")) {
    /* GA4's Measurement Protocol (ga4.c); its credential is in the query. */
    int debug = IS("/debug/mp/collect");
    if (method != SRV_POST) {
      out->op = debug ? SRV_OP_GA4_DEBUG : SRV_OP_GA4;
      rc = wrong_method(err, method, path, "POST");
    } else {
      size_t q = end < url_len && url[end] == '?' ? end + 1 : end, qe = q;
      while (qe < url_len && url[qe] != '#') qe++;
      rc = srv_parse_ga4(debug, url + q, qe - q, body, body_len, util_now_ms(), out, err);
    }
    goto parsed;
  } else if (IS("/v1/customers") || IS("/v1/items") || IS("/v1/identify")) {
    int items = IS("/v1/items"), identify = IS("/v1/identify");
    if (method != SRV_POST) {
      rc = wrong_method(err, method, path, "POST");
    } else if (!(rc = body_object(body, body_len, path, &b, err)) && identify &&
               !json_object_get(b, "customer") &&
               (json_object_get(b, "userId") || json_object_get(b, "anonymousId"))) {
      /* Segment's identify call shares tailor's path: its ids tell it. */
      rc = srv_parse_segment(path, body, body_len, b, util_now_ms(), lim, out, err);
      goto parsed;
    } else if (!rc) {
      out->op = identify ? SRV_OP_IDENTIFY
                : items  ? SRV_OP_ITEM_UPSERT
                         : SRV_OP_CUSTOMER_UPSERT;
      req = identify ? json_incref(b) : json_pack("{sO}", items ? "item" : "customer", b);
    }
  } else if (IS("/v1/coupons/check")) {
    /* The shop's checkout: is this code good, and for what? */
    if (method != SRV_POST) rc = wrong_method(err, method, path, "POST");
    else if (!(rc = body_object(body, body_len, path, &b, err))) req = json_incref(b);
    out->op = SRV_OP_COUPON_CHECK;
  } else if (IS("/v1/prefs")) {
    /* The visitor's preferences, for a preference centre (storefront). */
    if (method != SRV_POST) rc = wrong_method(err, method, path, "POST");
    else if (!(rc = body_object(body, body_len, path, &b, err))) req = json_incref(b);
    out->op = SRV_OP_PREFS;
  } else if (IS("/v1/subscribe")) {
    /* Email capture (engine/optin.c): a storefront's form. */
    if (method != SRV_POST) rc = wrong_method(err, method, path, "POST");
    else if (!(rc = body_object(body, body_len, path, &b, err))) req = json_incref(b);
    out->op = SRV_OP_SUBSCRIBE;
  } else if (IS("/v1/confirm")) {
    /* The link of a confirmation email: a GET shows a page with a button
       and confirms nothing (mail scanners follow links); the button posts
       back to the link, which confirms (html 2), answered with a page.  A
       shop's own page that passes the link on: POST {"link"}, answered
       JSON. */
    out->op = SRV_OP_CONFIRM;
    char token[600];
    size_t q = end < url_len && url[end] == '?' ? end + 1 : end, qe = q;
    while (qe < url_len && url[qe] != '#') qe++;
    srv_query_value(url + q, qe - q, "token", token, sizeof token);
    if (method == SRV_GET || (method == SRV_POST && *token)) {
      out->html = method == SRV_GET ? 1 : 2;
      req = json_pack("{ss}", "link", token);
    } else if (method != SRV_POST) {
      rc = wrong_method(err, method, path, "GET or POST");
    } else if (!(rc = body_object(body, body_len, path, &b, err))) {
      req = json_incref(b);
    }
  } else if (IS("/v1/unsubscribe")) {
    /* The unsubscribe link of an email (engine/optin.c): GET shows a
       button, POST (the button, a mail client's one-click) unsubscribes;
       both answered with a page. */
    out->op = SRV_OP_UNSUBSCRIBE;
    out->html = 1;
    if (method != SRV_GET && method != SRV_POST) {
      rc = wrong_method(err, method, path, "GET or POST");
    } else {
      char customer[SRV_MAX_ID_BYTES * 3 + 1], sig[80];
      size_t q = end < url_len && url[end] == '?' ? end + 1 : end, qe = q;
      while (qe < url_len && url[qe] != '#') qe++;
      srv_query_value(url + q, qe - q, "c", customer, sizeof customer);
      srv_query_value(url + q, qe - q, "s", sig, sizeof sig);
      req = json_pack("{ss ss sb}", "customer", customer, "signature", sig, "post",
                      method == SRV_POST);
    }
  } else if (UNDER("/v1/customers/") && n > sizeof("/v1/customers//export") - 1 &&
             !memcmp(p + n - 7, "/export", 7)) {
    /* GET /v1/customers/<id>/export: the right of access (admin). */
    size_t k = sizeof("/v1/customers/") - 1;
    if (decode_segment(p + k, n - k - 7, seg))
      rc = util_fail(err, SRV_ENOT_FOUND, "id",
                     "%s: the id must be 1 to %d bytes of percent-encoded UTF-8", path,
                     SRV_MAX_ID_BYTES);
    else if (method != SRV_GET)
      rc = wrong_method(err, method, path, "GET");
    out->op = SRV_OP_CUSTOMER_EXPORT;
    if (!rc) req = json_pack("{ss}", "customer", seg);
  } else if (UNDER("/v1/customers/") || UNDER("/v1/items/")) {
    int items = UNDER("/v1/items/");
    size_t k = items ? sizeof("/v1/items/") - 1 : sizeof("/v1/customers/") - 1;
    if (decode_segment(p + k, n - k, seg)) {
      rc = util_fail(err, SRV_ENOT_FOUND, "id",
                     "%s: the id must be 1 to %d bytes of percent-encoded UTF-8", path,
                     SRV_MAX_ID_BYTES);
    } else if (items) {
      if (method != SRV_DELETE) rc = wrong_method(err, method, path, "DELETE");
      out->op = SRV_OP_ITEM_DELETE;
      req = json_pack("{ss}", "item", seg);
    } else if (method == SRV_GET || method == SRV_DELETE) {
      out->op = method == SRV_GET ? SRV_OP_CUSTOMER_GET : SRV_OP_CUSTOMER_FORGET;
      req = json_pack("{ss}", "customer", seg);
    } else {
      rc = wrong_method(err, method, path, "GET or DELETE");
    }
  } else {
    rc = util_fail(err, SRV_ENOT_FOUND, NULL, "no route for %s %s", method_name(method),
                   path);
  }
#undef IS
#undef UNDER
route_done:
  if (!rc && out->op >= 0 && req) rc = take_customer_token(req, out, path, err);
  if (!rc && out->op >= 0) {
    if (!req) req = json_object();
    rc = req ? srv_validate(req, lim, out, err) : srv_oom(err, path);
  }
parsed:
  json_decref(req);
  json_decref(b);
  if (srv_id_null(out, err)) rc = SRV_EINTERNAL;
  return rc;
}
