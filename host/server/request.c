/*
** request.c: one NDJSON request line to a validated srv_request: the
** envelope (id, op, token), then one validator per operation, which
** route.c uses too (request.h).  Events are parsed here into typed events
** (core/event.c), once.  No sockets and no engine here, so tests/fuzz can
** feed it any bytes.
**
** Requests are strict: a field an operation does not know is an error that
** names it, the same policy as the engine's configuration, so a typo
** ("costumer") shows at once instead of as a silently generic decision.
*/
#include "server/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/event.h"
#include "core/flat.h"
#include "core/util.h"
#include "server/proto.h"

void srv_request_clear(srv_request *r) {
  if (!r) return;
  free(r->id);
  free(r->token);
  free(r->customer_token);
  free(r->customer);
  free(r->text);
  for (size_t i = 0; i < r->n_events; i++) ev_clear(&r->evs[i]);
  free(r->evs);
  free(r->rejects);
  free(r->at);
  for (size_t i = 0; i < r->n_msg_ids; i++) free(r->msg_ids[i]);
  free(r->msg_ids);
  req_clear(&r->dq);
  memset(r, 0, sizeof *r);
}

/*
** Field helpers.  Each names the op and the field in its message.
*/
const char *srv_type_word(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
  }
}

int srv_oom(tailor_error *err, const char *op) {
  return util_fail(err, SRV_EINTERNAL, NULL, "%s: out of memory", op);
}

static int mistyped(tailor_error *err, const char *op, const char *field,
                    const char *want, const json_t *v) {
  return util_fail(err, SRV_EBAD_FIELD, field, "%s: field '%s' must be %s, found %s",
                   op, field, want, srv_type_word(v));
}

static int missing(tailor_error *err, const char *op, const char *field,
                   const char *what) {
  return util_fail(err, SRV_EBAD_FIELD, field, "%s: missing field '%s' (%s)", op,
                   field, what);
}

/* An id: a non-empty string of at most SRV_MAX_ID_BYTES, or an integer
   (taken as its decimal text).  Writes a NUL-terminated copy to `out`. */
static int id_value(const json_t *v, const char *op, const char *field,
                    char out[SRV_MAX_ID_BYTES + 1], tailor_error *err) {
  if (json_is_integer(v)) {
    snprintf(out, SRV_MAX_ID_BYTES + 1, "%lld", (long long)json_integer_value(v));
    return SRV_OK;
  }
  if (!json_is_string(v)) return mistyped(err, op, field, "a string or an integer", v);
  size_t n = json_string_length(v);
  const char *s = json_string_value(v);
  if (n == 0 || n > SRV_MAX_ID_BYTES || memchr(s, '\0', n))
    return util_fail(err, SRV_EBAD_FIELD, field,
                     "%s: field '%s' must be 1 to %d bytes without NUL", op, field,
                     SRV_MAX_ID_BYTES);
  memcpy(out, s, n + 1);
  return SRV_OK;
}

/* obj[key] as an id; `field` names it in messages ("item.id"). */
static int get_id_as(json_t *obj, const char *key, const char *op, const char *field,
                     int required, char out[SRV_MAX_ID_BYTES + 1], tailor_error *err) {
  json_t *v = json_object_get(obj, key);
  out[0] = '\0';
  if (!v || json_is_null(v))
    return required ? missing(err, op, field, "a string or an integer") : SRV_OK;
  return id_value(v, op, field, out, err);
}

static int get_id(json_t *obj, const char *op, const char *field, int required,
                  char out[SRV_MAX_ID_BYTES + 1], tailor_error *err) {
  return get_id_as(obj, field, op, field, required, out, err);
}

/* Every key of `obj` must be in `allowed` (NULL-terminated) or be one of
   the envelope's keys, which srv_parse_line has already taken. */
static int only_keys(json_t *obj, const char *op, const char *const *allowed,
                     tailor_error *err) {
  static const char *const envelope[] = {"id", "op", "token", "customer_token", NULL};
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    int ok = 0;
    for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, key);
    for (const char *const *a = envelope; *a && !ok; a++) ok = !strcmp(*a, key);
    if (ok) continue;
    char list[160] = "";
    size_t at = 0;
    for (const char *const *a = allowed; *a && at < sizeof list; a++)
      at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", at ? ", " : "", *a);
    return util_fail(err, SRV_EBAD_FIELD, key, "%s: unknown field '%.64s' (allowed: %s)",
                     op, key, at ? list : "none");
  }
  return SRV_OK;
}

/*
** Events are parsed here, once: each event object of the request becomes a
** typed `ev` (core/event.h) that the writer hands to the engine as it is.
*/
static unsigned event_perms(int type) {
  if (type == EV_ITEM_UPSERT || type == EV_ITEM_DELETE) return SRV_PERM_CATALOG;
  if (type == EV_CUSTOMER_UPSERT) return SRV_PERM_PROFILES;
  /* Redeeming a coupon is the shop's checkout's, never a browser's. */
  if (type == EV_COUPON_REDEEMED) return SRV_PERM_EVENTS | SRV_PERM_CUSTOMERS;
  return SRV_PERM_EVENTS;
}

int srv_events_alloc(srv_request *out, size_t n, const char *op, tailor_error *err) {
  out->evs = calloc(n, sizeof *out->evs);
  out->at = calloc(n, sizeof *out->at);
  out->rejects = calloc(n, sizeof *out->rejects);
  return out->evs && out->at && out->rejects ? SRV_OK : srv_oom(err, op);
}

/*
** One event object; `index` is its place in the request.  A bad event of
** an `events` batch is a rejection of that event alone (the others go
** on); of any other op it is the request's error.
*/
srv_reject *srv_reject_at(srv_request *out, size_t index) {
  srv_reject *r = &out->rejects[out->n_rejects++];
  r->index = index;
  return r;
}

void srv_reject_event(srv_request *r, size_t i, const tailor_error *why) {
  size_t at = r->n_rejects;
  while (at > 0 && r->rejects[at - 1].index > r->at[i]) at--;
  memmove(&r->rejects[at + 1], &r->rejects[at], (r->n_rejects - at) * sizeof *r->rejects);
  r->rejects[at] = (srv_reject){r->at[i], *why};
  r->n_rejects++;
  ev_clear(&r->evs[i]);
}

int srv_add_event(json_t *event, size_t index, int any, srv_request *out,
                  tailor_error *err) {
  tailor_error te = {0};
  ev *e = &out->evs[out->n_events];
  if ((any ? ev_from_json_any(event, NULL, e, &te) : ev_from_json(event, NULL, e, &te)) ==
      TAILOR_OK) {
    int type = out->evs[out->n_events].type;
    /* Segment's identify traits are a profile the server screens event by
       event (conn.c), so that one identify does not refuse a batch. */
    out->need |= out->op == SRV_OP_SEGMENT && type == EV_CUSTOMER_UPSERT ? SRV_PERM_EVENTS
                                                                        : event_perms(type);
    out->at[out->n_events++] = index;
    return SRV_OK;
  }
  srv_reject *r = srv_reject_at(out, index);
  r->err = te; /* the parser's field and message, the server's code */
  r->err.code = srv_err_of_tailor(te.code);
  if (srv_op_batch(out->op)) return SRV_OK;
  *err = r->err;
  return r->err.code;
}

/*
** One validator per operation: the request object in, out->text and
** out->need filled.
*/
typedef int (*op_fn)(json_t *req, const srv_limits *lim, srv_request *out,
                     tailor_error *err);

static int op_plain(json_t *req, const srv_limits *lim, srv_request *out,
                    tailor_error *err) {
  static const char *const allowed[] = {NULL};
  return only_keys(req, srv_op_name(out->op), allowed, err);
}

static int op_auth(json_t *req, const srv_limits *lim, srv_request *out,
                   tailor_error *err) {
  static const char *const allowed[] = {NULL};
  if (!out->token) return missing(err, "auth", "token", "a string");
  return only_keys(req, "auth", allowed, err);
}

static int op_event(json_t *req, const srv_limits *lim, srv_request *out,
                    tailor_error *err) {
  static const char *const allowed[] = {"event", NULL};
  int rc;
  if ((rc = only_keys(req, "event", allowed, err))) return rc;
  json_t *event = json_object_get(req, "event");
  if (!event) return missing(err, "event", "event", "an event object");
  if (!json_is_object(event)) return mistyped(err, "event", "event", "an object", event);
  if ((rc = srv_events_alloc(out, 1, "event", err))) return rc;
  return srv_add_event(event, 0, 0, out, err);
}

static int op_events(json_t *req, const srv_limits *lim, srv_request *out,
                     tailor_error *err) {
  static const char *const allowed[] = {"events", NULL};
  int rc;
  if ((rc = only_keys(req, "events", allowed, err))) return rc;
  json_t *evs = json_object_get(req, "events");
  if (!evs) return missing(err, "events", "events", "an array of events");
  if (!json_is_array(evs)) return mistyped(err, "events", "events", "an array", evs);
  size_t n = json_array_size(evs), max = lim && lim->max_batch ? lim->max_batch
                                                               : SRV_DEFAULT_MAX_BATCH;
  if (n == 0)
    return util_fail(err, SRV_EBAD_FIELD, "events", "events: 'events' is empty");
  if (n > max)
    return util_fail(err, SRV_ETOO_LARGE, "events",
                     "events: %zu events in one request, more than the limit of %zu",
                     n, max);
  if ((rc = srv_events_alloc(out, n, "events", err))) return rc;
  for (size_t i = 0; i < n; i++)
    if ((rc = srv_add_event(json_array_get(evs, i), i, 0, out, err))) return rc;
  return SRV_OK;
}

/* An event built from fields of the request (consumed). */
static int one_event(json_t *doc, const char *op, srv_request *out, tailor_error *err) {
  int rc = doc ? srv_events_alloc(out, 1, op, err) : srv_oom(err, op);
  if (!rc) rc = srv_add_event(doc, 0, 0, out, err);
  json_decref(doc);
  return rc;
}

/* item.upsert / customer.upsert: an object with an "id". */
static int op_upsert(json_t *req, const srv_limits *lim, srv_request *out,
                     tailor_error *err) {
  int item = out->op == SRV_OP_ITEM_UPSERT;
  const char *op = srv_op_name(out->op), *key = item ? "item" : "customer";
  const char *allowed[] = {key, NULL};
  char id[SRV_MAX_ID_BYTES + 1];
  int rc;
  if ((rc = only_keys(req, op, allowed, err))) return rc;
  json_t *obj = json_object_get(req, key);
  if (!obj) return missing(err, op, key, "an object with an 'id'");
  if (!json_is_object(obj)) return mistyped(err, op, key, "an object", obj);
  char field[16];
  snprintf(field, sizeof field, "%s.id", key);
  if ((rc = get_id_as(obj, "id", op, field, 1, id, err))) return rc;
  return one_event(json_pack("{ss sO}", "type", item ? "item_upsert" : "customer_upsert",
                             key, obj),
                   op, out, err);
}

static int op_item_delete(json_t *req, const srv_limits *lim, srv_request *out,
                          tailor_error *err) {
  static const char *const allowed[] = {"item", NULL};
  char id[SRV_MAX_ID_BYTES + 1];
  int rc;
  if ((rc = only_keys(req, "item.delete", allowed, err)) ||
      (rc = get_id(req, "item.delete", "item", 1, id, err)))
    return rc;
  return one_event(json_pack("{ss ss}", "type", "item_delete", "item", id), "item.delete",
                   out, err);
}

static int op_identify(json_t *req, const srv_limits *lim, srv_request *out,
                       tailor_error *err) {
  static const char *const allowed[] = {"customer", "anon", "ts", NULL};
  char customer[SRV_MAX_ID_BYTES + 1], anon[SRV_MAX_ID_BYTES + 1];
  int rc;
  if ((rc = only_keys(req, "identify", allowed, err)) ||
      (rc = get_id(req, "identify", "customer", 1, customer, err)) ||
      (rc = get_id(req, "identify", "anon", 1, anon, err)))
    return rc;
  json_t *doc = json_pack("{ss ss ss}", "type", "identify", "customer", customer,
                          "anon", anon);
  json_t *ts = json_object_get(req, "ts");
  if (doc && ts && !json_is_null(ts)) {
    if (!json_is_number(ts) && !json_is_string(ts)) {
      json_decref(doc);
      return mistyped(err, "identify", "ts", "a number or a date string", ts);
    }
    json_object_set(doc, "ts", ts);
  }
  return one_event(doc, "identify", out, err);
}

/* customer.get / customer.forget: the id alone, as text. */
static int op_customer_id(json_t *req, const srv_limits *lim, srv_request *out,
                          tailor_error *err) {
  static const char *const allowed[] = {"customer", NULL};
  const char *op = srv_op_name(out->op);
  char id[SRV_MAX_ID_BYTES + 1];
  int rc;
  if ((rc = only_keys(req, op, allowed, err)) ||
      (rc = get_id(req, op, "customer", 1, id, err)))
    return rc;
  if (!(out->text = strdup(id))) return srv_oom(err, op);
  out->text_len = strlen(id);
  return SRV_OK;
}

/* coupon.check: {code} (the checkout's; POST /v1/coupons/check). */
static int op_coupon_check(json_t *req, const srv_limits *lim, srv_request *out,
                           tailor_error *err) {
  (void)lim;
  static const char *const allowed[] = {"code", NULL};
  const char *op = srv_op_name(out->op);
  char code[SRV_MAX_ID_BYTES + 1];
  int rc;
  if ((rc = only_keys(req, op, allowed, err)) || (rc = get_id(req, op, "code", 1, code, err)))
    return rc;
  if (!(out->text = strdup(code))) return srv_oom(err, op);
  out->text_len = strlen(code);
  return SRV_OK;
}

/* prefs: {customer, anon}, at least one (POST /v1/prefs): the visitor's
   own preferences, for a preference centre.  The ids go in `dq`, so that
   a customer nobody proved is dropped as for a decision (conn.c). */
static int op_prefs(json_t *req, const srv_limits *lim, srv_request *out,
                    tailor_error *err) {
  (void)lim;
  static const char *const allowed[] = {"customer", "anon", "session", NULL};
  char id[SRV_MAX_ID_BYTES + 1];
  int rc;
  if ((rc = only_keys(req, "prefs", allowed, err))) return rc;
  static const char *const who[] = {"customer", "anon", "session"};
  for (size_t i = 0; i < 3; i++) {
    json_t *v = json_object_get(req, who[i]);
    if (v && !json_is_null(v) && !json_is_string(v))
      return mistyped(err, "prefs", who[i], "a string", v);
    if ((rc = get_id(req, "prefs", who[i], 0, id, err))) return rc;
  }
  json_t *c = json_object_get(req, "customer"), *a = json_object_get(req, "anon");
  if (!json_is_string(c) && !json_is_string(a))
    return util_fail(err, SRV_EBAD_FIELD, "anon",
                     "prefs: name the visitor: 'anon' (or 'customer' with a customer token)");
  out->dq.src = json_incref(req);
  out->dq.customer = json_string_value(c);
  out->dq.anon = json_string_value(a);
  return SRV_OK;
}

/*
** subscribe: {email, anon or customer, purpose, text, source} for
** tailor_subscribe, which checks each field (engine/optin.c); here only
** that nothing else came, and the customer it names, whose proof the
** connection checks (a storefront's needs a customer token).
*/
static int op_subscribe(json_t *req, const srv_limits *lim, srv_request *out,
                        tailor_error *err) {
  (void)lim;
  static const char *const allowed[] = {"email", "customer", "anon", "purpose",
                                        "text", "source", NULL};
  char customer[SRV_MAX_ID_BYTES + 1];
  int rc;
  if ((rc = only_keys(req, "subscribe", allowed, err)) ||
      (rc = get_id(req, "subscribe", "customer", 0, customer, err)))
    return rc;
  if (*customer && !(out->customer = strdup(customer))) return srv_oom(err, "subscribe");
  json_t *fields = json_object();
  const char *key;
  json_t *v;
  json_object_foreach(req, key, v) {
    int envelope = !strcmp(key, "id") || !strcmp(key, "op") || !strcmp(key, "token") ||
                   !strcmp(key, "customer_token");
    if (!envelope) json_object_set(fields, key, v);
  }
  out->text = json_dumps(fields, JSON_COMPACT);
  json_decref(fields);
  if (!out->text) return srv_oom(err, "subscribe");
  out->text_len = strlen(out->text);
  return SRV_OK;
}

/*
** confirm: {link}, a confirmation link as the email has it, or just its
** token (the value of its "token=" parameter).  The token's shape and
** signature are the engine's to judge (tailor_confirm), which says what is
** wrong with a link in words a visitor reads.  ("token" is the envelope's:
** the caller's credentials.)
*/
static int op_confirm(json_t *req, const srv_limits *lim, srv_request *out,
                      tailor_error *err) {
  (void)lim;
  static const char *const allowed[] = {"link", NULL};
  json_t *link = json_object_get(req, "link");
  int rc = only_keys(req, "confirm", allowed, err);
  if (rc) return rc;
  if (!link) return missing(err, "confirm", "link", "the confirmation link, or its token");
  if (!json_is_string(link) || json_string_length(link) > 2048)
    return mistyped(err, "confirm", "link", "a string of at most 2048 bytes", link);
  const char *text = json_string_value(link), *at = strstr(text, "token=");
  size_t n = strlen(text);
  if (at) {
    text = at + 6;
    n = strcspn(text, "&#");
  }
  if (!(out->text = strndup(text, n))) return srv_oom(err, "confirm");
  out->text_len = n;
  return SRV_OK;
}

/* unsubscribe (route.c): the link's customer and signature, kept in text
   as "<G|P><64 hex digits><customer>" (P: a POST, which unsubscribes). */
static int op_unsubscribe(json_t *req, const srv_limits *lim, srv_request *out,
                          tailor_error *err) {
  (void)lim;
  const char *customer = json_string_value(json_object_get(req, "customer"));
  const char *sig = json_string_value(json_object_get(req, "signature"));
  /* A cut link is the page's error (the engine's check refuses it), not
     a JSON answer to a person. */
  if (!customer || strlen(customer) > SRV_MAX_ID_BYTES) customer = "";
  if (!sig || strlen(sig) != 64)
    sig = "----------------------------------------------------------------";
  size_t n = strlen(customer);
  if (!(out->text = malloc(66 + n))) return srv_oom(err, "unsubscribe");
  out->text[0] = json_is_true(json_object_get(req, "post")) ? 'P' : 'G';
  memcpy(out->text + 1, sig, 64);
  memcpy(out->text + 65, customer, n + 1);
  out->text_len = 65 + n;
  return SRV_OK;
}

/* decide: the fields tailor_decide reads, checked here so that a wrong
   type is answered before a worker is bothered; the engine checks again. */
/* decide: the engine's own request parser (core/request.h), so that the
   server, the CLI and the embedding API check the same fields with the same
   limits; the envelope's keys are the transport's. */
static int op_decide(json_t *req, const srv_limits *lim, srv_request *out,
                     tailor_error *err) {
  static const char *const envelope[] = {"id", "op", "token", "customer_token", NULL};
  req_limits rl = {lim ? lim->max_k : 0, envelope};
  int rc = req_from_json(req, &rl, &out->dq, err);
  if (rc) return err->code = srv_err_of_tailor(rc);
  snprintf(out->kind, sizeof out->kind, "%s", out->dq.kind);
  return SRV_OK;
}

static const op_fn validators[SRV_OP_COUNT] = {
    [SRV_OP_PING] = op_plain,
    [SRV_OP_AUTH] = op_auth,
    [SRV_OP_EVENT] = op_event,
    [SRV_OP_EVENTS] = op_events,
    [SRV_OP_ITEM_UPSERT] = op_upsert,
    [SRV_OP_ITEM_DELETE] = op_item_delete,
    [SRV_OP_CUSTOMER_UPSERT] = op_upsert,
    [SRV_OP_IDENTIFY] = op_identify,
    [SRV_OP_CUSTOMER_FORGET] = op_customer_id,
    [SRV_OP_CUSTOMER_GET] = op_customer_id,
    [SRV_OP_CUSTOMER_EXPORT] = op_customer_id,
    [SRV_OP_DECIDE] = op_decide,
    [SRV_OP_COUPON_CHECK] = op_coupon_check,
    [SRV_OP_PREFS] = op_prefs,
    [SRV_OP_SUBSCRIBE] = op_subscribe,
    [SRV_OP_CONFIRM] = op_confirm,
    [SRV_OP_UNSUBSCRIBE] = op_unsubscribe,
    [SRV_OP_STATS] = op_plain,
    [SRV_OP_METRICS] = op_plain,
    [SRV_OP_HEALTH] = op_plain,
    [SRV_OP_PREFLIGHT] = op_plain,
};

int srv_validate(json_t *req, const srv_limits *lim, srv_request *out,
                 tailor_error *err) {
  /* Events add what their types need: an `events` request carrying an
     item_upsert needs the catalog permission as well. */
  out->need = srv_op_perms(out->op);
  return validators[out->op](req, lim, out, err);
}

int srv_id_null(srv_request *out, tailor_error *err) {
  if (!out->id && !(out->id = strdup("null")))
    return util_fail(err, SRV_EINTERNAL, NULL, "out of memory");
  return SRV_OK;
}

/*
** The line most writes are, read without a JSON tree: {"id": .., "op":
** "event", "token": .., "event": {..}} with an event ev_from_flat takes,
** strings without escapes, nothing else.  Returns 1 with *out filled as
** the full reading below would fill it, 0 (and *out as it was) for any
** other line, which the full reading takes, with its errors.
*/
static int flat_event_line(const flat_member *m, size_t n, srv_request *out) {
  flat_member em[FLAT_MAX_MEMBERS];
  size_t en;
  const flat_member *id = NULL, *op = NULL, *token = NULL, *ctoken = NULL, *event = NULL;
  for (size_t i = 0; i < n; i++) {
    const flat_member *x = &m[i];
    if (flat_key_is(x, "id")) id = x;
    else if (flat_key_is(x, "op")) op = x;
    else if (flat_key_is(x, "token")) token = x;
    else if (flat_key_is(x, "customer_token")) ctoken = x;
    else if (flat_key_is(x, "event")) event = x;
    else return 0;
  }
  if (!id || !op || !event || event->kind != 'o' || op->kind != 's' || op->val_len != 5 ||
      memcmp(op->val, "event", 5) || (token && (token->kind != 's' || token->val_len > SRV_MAX_ID_BYTES)) ||
      (ctoken && (ctoken->kind != 's' || ctoken->val_len > SRV_MAX_CUSTOMER_TOKEN_BYTES)))
    return 0;
  /* the id: a short string, or an integer as the parser reads it */
  double x;
  int integral;
  if (id->kind == 's' ? id->val_len > SRV_MAX_ID_BYTES
                      : flat_number(id, &x, &integral) || !integral)
    return 0;
  if (!flat_object(event->val, event->val_len, 0, em, &en)) return 0;
  ev e;
  if (!ev_from_flat(em, en, NULL, &e)) return 0;
  srv_request r = {.op = SRV_OP_EVENT};
  strbuf idb = {0};
  if (id->kind == 's') buf_json_str(&idb, id->val, id->val_len);
  else buf_json_int(&idb, (long long)x);
  r.id = buf_take(&idb, NULL);
  r.token = token ? strndup(token->val, token->val_len) : NULL;
  r.customer_token = ctoken ? strndup(ctoken->val, ctoken->val_len) : NULL;
  r.evs = malloc(sizeof *r.evs);
  r.at = calloc(1, sizeof *r.at);
  r.rejects = calloc(1, sizeof *r.rejects);
  if (!r.id || (token && !r.token) || (ctoken && !r.customer_token) || !r.evs || !r.at ||
      !r.rejects) { /* out of memory: the full reading says so */
    ev_clear(&e);
    srv_request_clear(&r);
    return 0;
  }
  r.evs[0] = e;
  r.n_events = 1;
  r.need = srv_op_perms(SRV_OP_EVENT) | event_perms(e.type);
  *out = r;
  return 1;
}

static int parse_tree(json_t *req, const srv_limits *lim, srv_request *out, tailor_error *err);

/*
** A flat line (core/flat.h: the usual one) is scanned once: a plain event
** is read from the scan directly, any other flat request gets its tree from
** the same scan (no depth check: it has two levels at most; no parser);
** every other line is the full reading's.
*/
int srv_parse_line(const char *buf, size_t len, const srv_limits *lim,
                   srv_request *out, tailor_error *err) {
  flat_member m[FLAT_MAX_MEMBERS];
  size_t n;
  if (flat_text(buf, len, m, &n)) {
    if (flat_event_line(m, n, out)) return SRV_OK;
    json_t *req = flat_tree_of(m, n);
    if (req) return parse_tree(req, lim, out, err);
  }
  return srv_parse_line_json(buf, len, lim, out, err);
}

int srv_parse_line_json(const char *buf, size_t len, const srv_limits *lim,
                        srv_request *out, tailor_error *err) {
  json_error_t je;
  int deep = util_json_depth(buf, len) > UTIL_MAX_JSON_DEPTH;
  json_t *req = deep ? NULL : util_json_parse(buf, len, &je);
  if (req) return parse_tree(req, lim, out, err);
  memset(out, 0, sizeof *out);
  out->op = -1;
  int rc = deep ? util_fail(err, SRV_EBAD_JSON, NULL, "JSON nested deeper than %d levels",
                            UTIL_MAX_JSON_DEPTH)
                : util_fail(err, SRV_EBAD_JSON, NULL, "malformed JSON at column %d: %s",
                            je.column, je.text);
  return srv_id_null(out, err) ? SRV_EINTERNAL : rc;
}

/* A request line's tree (taken) into *out. */
static int parse_tree(json_t *req, const srv_limits *lim, srv_request *out, tailor_error *err) {
  memset(out, 0, sizeof *out);
  out->op = -1;
  int rc = SRV_OK;
  if (!json_is_object(req)) {
    rc = util_fail(err, SRV_EBAD_JSON, NULL, "a request must be a JSON object, found %s",
                   srv_type_word(req));
    goto done;
  }
  /* The id first, so that every later error can carry it. */
  json_t *id = json_object_get(req, "id");
  if (!id) {
    rc = missing(err, "request", "id", "a string or an integer that the response repeats");
    goto done;
  }
  if (!json_is_integer(id) &&
      !(json_is_string(id) && json_string_length(id) <= SRV_MAX_ID_BYTES)) {
    rc = json_is_string(id)
             ? util_fail(err, SRV_EBAD_FIELD, "id", "request: 'id' is longer than %d bytes",
                         SRV_MAX_ID_BYTES)
             : mistyped(err, "request", "id", "a string or an integer", id);
    goto done;
  }
  /* The id as the response repeats it: JSON text, written directly. */
  strbuf idb = {0};
  if (json_is_integer(id)) buf_json_int(&idb, (long long)json_integer_value(id));
  else buf_json_str(&idb, json_string_value(id), json_string_length(id));
  if (!(out->id = buf_take(&idb, NULL))) {
    rc = srv_oom(err, "request");
    goto done;
  }
  json_t *op = json_object_get(req, "op");
  if (!op) {
    rc = missing(err, "request", "op", "event, events, decide, ...");
    goto done;
  }
  if (!json_is_string(op)) {
    rc = mistyped(err, "request", "op", "a string", op);
    goto done;
  }
  out->op = srv_op_lookup(json_string_value(op));
  if (out->op < 0) {
    char known[300] = "";
    size_t at = 0;
    for (int i = 0; i < SRV_OP_COUNT && at < sizeof known; i++)
      if (srv_op_ndjson(i))
        at += (size_t)snprintf(known + at, sizeof known - at, "%s%s", at ? ", " : "",
                               srv_op_name(i));
    rc = util_fail(err, SRV_EUNKNOWN_OP, "op", "unknown op '%.64s' (known: %s)",
                   json_string_value(op), known);
    goto done;
  }
  json_t *token = json_object_get(req, "token");
  if (token && !json_is_null(token)) {
    if (!json_is_string(token) || json_string_length(token) > SRV_MAX_ID_BYTES) {
      rc = json_is_string(token)
               ? util_fail(err, SRV_EBAD_FIELD, "token", "request: 'token' is too long")
               : mistyped(err, "request", "token", "a string", token);
      goto done;
    }
    if (!(out->token = strdup(json_string_value(token)))) {
      rc = srv_oom(err, "request");
      goto done;
    }
  }
  json_t *ctoken = json_object_get(req, "customer_token");
  if (ctoken && !json_is_null(ctoken)) {
    if (!json_is_string(ctoken) || json_string_length(ctoken) > SRV_MAX_CUSTOMER_TOKEN_BYTES) {
      rc = mistyped(err, "request", "customer_token", "a string of at most 512 bytes", ctoken);
      goto done;
    }
    if (!(out->customer_token = strdup(json_string_value(ctoken)))) {
      rc = srv_oom(err, "request");
      goto done;
    }
  }
  rc = srv_validate(req, lim, out, err);
done:
  json_decref(req);
  if (srv_id_null(out, err)) rc = SRV_EINTERNAL;
  return rc;
}
