/*
** ga4.c: Google Analytics 4's Measurement Protocol on the server's port:
** POST /mp/collect?measurement_id=...&api_secret=... (the api_secret is a
** tailor token, of role storefront or ingest) and /debug/mp/collect, which
** stores nothing and answers GA4's validation messages:
**   {"validationMessages": [{"fieldPath": "events", "description": "...",
**                            "validationCode": "NAME_INVALID"}]}
**
** The body is GA4's: {"client_id", "user_id", "timestamp_micros",
** "user_properties", "events": [{"name", "params"}]}.  Each event becomes
** one event object ({"name", "client_id", "user_id", "params", ...}) that
** goes through the one event path (srv_add_event, the parser of
** /v1/events), which reads GA4's names (view_item, purchase, ...) and its
** params (items, transaction_id, value, search_term, session_id, which is
** made the client's: "client_id:session_id"); events
** tailor has no type for are `other` events under their name, kept and
** counted.  GA4's own rules (event and parameter names and counts) are
** checked here, so that a payload GA4 would refuse is refused here too,
** in GA4's terms.
**
** /mp/collect answers 204 No Content when every event was stored, as GA4
** does; when some were refused, 200 with tailor's counts and the refused
** events named (GA4 would drop them silently).
*/
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/event.h"
#include "core/util.h"
#include "server/request.h"

/* GA4's limits (the Measurement Protocol reference); the protocol's
   numbers, not tailor's to tune. */
#define GA4_MAX_BODY_BYTES (130 * 1024)
#define GA4_MAX_EVENTS 25
#define GA4_MAX_PARAMS 25
#define GA4_MAX_NAME 40
#define GA4_MAX_PARAM_VALUE 100
#define GA4_MAX_ITEMS 200

/* Names GA4 keeps for itself. */
static const char *const reserved_names[] = {
    "ad_activeview", "ad_click", "ad_exposure", "ad_query", "ad_reward", "adunit_exposure",
    "app_background", "app_clear_data", "app_exception", "app_install", "app_remove",
    "app_store_refund", "app_store_subscription_cancel", "app_store_subscription_convert",
    "app_store_subscription_renew", "app_update", "app_upgrade", "dynamic_link_app_open",
    "dynamic_link_app_update", "dynamic_link_first_open", "error", "first_open",
    "first_visit", "in_app_purchase", "notification_dismiss", "notification_foreground",
    "notification_open", "notification_receive", "os_update", "session_start",
    "session_start_with_rollout", "user_engagement"};
static const char *const reserved_prefixes[] = {"_", "firebase_", "ga_", "google_", "gtag."};

/* Validation messages, and the refusals they stand for. */
typedef struct checks {
  json_t *msgs;      /* the validationMessages array */
  srv_request *out;
} checks;

static void note(checks *c, const char *path, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void note(checks *c, const char *path, const char *code, const char *fmt, ...) {
  char text[512], where[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  snprintf(where, sizeof where, "%s", path);
  /* A name cut at %.64s may end inside a character; JSON takes UTF-8 only. */
  json_array_append_new(c->msgs, json_pack("{ss ss ss}", "fieldPath", util_utf8_cut(where),
                                           "description", util_utf8_cut(text), "validationCode",
                                           code));
}

/* A string's length in characters, as GA4 counts its limits (the parser
   has checked it is UTF-8): bytes that do not continue a character. */
static size_t chars(const json_t *v) {
  const unsigned char *p = (const unsigned char *)json_string_value(v);
  size_t n = 0, len = json_string_length(v);
  for (size_t i = 0; i < len; i++) n += (p[i] & 0xC0) != 0x80;
  return n;
}

/* Why `name` may not name an event or a parameter (GA4's rules), or NULL. */
static const char *bad_name(const char *name, int event, const char **code) {
  size_t n = strlen(name);
  *code = "NAME_INVALID";
  if (!n) return "is empty";
  if (n > GA4_MAX_NAME) return "is longer than 40 characters";
  for (size_t i = 0; i < sizeof reserved_prefixes / sizeof *reserved_prefixes; i++)
    if (!strncmp(name, reserved_prefixes[i], strlen(reserved_prefixes[i]))) {
      *code = "NAME_RESERVED";
      return "starts with a prefix GA4 reserves (_, firebase_, ga_, google_, gtag.)";
    }
  if (!isalpha((unsigned char)name[0])) return "must start with an alphabetic character";
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)name[i]) && name[i] != '_')
      return "may hold only alphanumeric characters and underscores";
  for (size_t i = 0; event && i < sizeof reserved_names / sizeof *reserved_names; i++)
    if (!strcmp(name, reserved_names[i])) {
      *code = "NAME_RESERVED";
      return "is reserved by GA4";
    }
  return NULL;
}

/* GA4's rules for event `i`; 0 when it may go on to the parser. */
static int ga4_rules(checks *c, json_t *e, size_t i) {
  const char *code, *why;
  if (!json_is_object(e)) {
    note(c, "events", "VALUE_INVALID", "Event at index: [%zu] must be an object.", i);
    return -1;
  }
  json_t *name = json_object_get(e, "name");
  if (!json_is_string(name)) {
    note(c, "events.name", "VALUE_REQUIRED", "Event at index: [%zu] has no name.", i);
    return -1;
  }
  if ((why = bad_name(json_string_value(name), 1, &code))) {
    note(c, "events", code, "Event at index: [%zu] has invalid name [%.64s]: it %s.", i,
         json_string_value(name), why);
    return -1;
  }
  json_t *params = json_object_get(e, "params");
  if (params && !json_is_null(params) && !json_is_object(params)) {
    note(c, "events.params", "VALUE_INVALID", "Event at index: [%zu]: params must be an object.",
         i);
    return -1;
  }
  if (json_object_size(params) > GA4_MAX_PARAMS) {
    note(c, "events.params", "EXCEEDED_MAX_ENTITIES",
         "Event at index: [%zu] has %zu params, more than the 25 allowed.", i,
         json_object_size(params));
    return -1;
  }
  const char *k;
  json_t *v;
  json_object_foreach(params, k, v) {
    if (!strcmp(k, "items")) {
      if (!json_is_array(v)) {
        note(c, "events.params.items", "VALUE_INVALID",
             "Event at index: [%zu]: items must be an array.", i);
        return -1;
      }
      if (json_array_size(v) > GA4_MAX_ITEMS) {
        note(c, "events.params.items", "EXCEEDED_MAX_ENTITIES",
             "Event at index: [%zu] has %zu items, more than the 200 allowed.", i,
             json_array_size(v));
        return -1;
      }
      size_t j;
      json_t *item;
      json_array_foreach(v, j, item) {
        if (!json_is_object(item) ||
            (!json_object_get(item, "item_id") && !json_object_get(item, "item_name"))) {
          note(c, "events.params.items", "VALUE_REQUIRED",
               "Event at index: [%zu]: item at index [%zu] needs item_id or item_name.", i, j);
          return -1;
        }
      }
      continue;
    }
    if ((why = bad_name(k, 0, &code))) {
      note(c, "events.params", code, "Event at index: [%zu] has invalid param [%.64s]: it %s.",
           i, k, why);
      return -1;
    }
    if (json_is_string(v) && chars(v) > GA4_MAX_PARAM_VALUE) {
      char field[96];
      snprintf(field, sizeof field, "events.params.%.64s", k);
      note(c, field, "VALUE_INVALID",
           "Event at index: [%zu] has param [%.64s] longer than 100 characters.", i, k);
      return -1;
    }
  }
  return 0;
}

/* The envelope's keys each event carries to the parser. */
static const char *const carried[] = {"client_id", "app_instance_id", "user_id",
                                      "timestamp_micros", "user_properties"};

int srv_parse_ga4(int debug, const char *query, size_t query_len, const char *body,
                  size_t body_len, int64_t now_ms, srv_request *out, tailor_error *err) {
  (void)now_ms;
  out->op = debug ? SRV_OP_GA4_DEBUG : SRV_OP_GA4;
  out->need = srv_op_perms(out->op);
  char secret[SRV_MAX_ID_BYTES + 1];
  srv_query_value(query, query_len, "api_secret", secret, sizeof secret);
  if (*secret && !(out->token = strdup(secret))) return srv_oom(err, "ga4");
  checks c = {json_array(), out};
  json_t *root = NULL;
  int rc = c.msgs ? SRV_OK : srv_oom(err, "ga4");
  char mid[64];
  if (!rc) srv_query_value(query, query_len, "measurement_id", mid, sizeof mid);
  if (!rc && !*mid) srv_query_value(query, query_len, "firebase_app_id", mid, sizeof mid);
  if (!rc && !*mid)
    note(&c, "measurement_id", "VALUE_REQUIRED",
         "Measurement_id (or firebase_app_id) is required in the query string.");
  if (!rc && body_len > GA4_MAX_BODY_BYTES) {
    note(&c, "", "VALUE_INVALID", "The body is %zu bytes, more than GA4's limit of 130 KB.",
         body_len);
    rc = util_fail(err, SRV_ETOO_LARGE, NULL,
                   "/mp/collect: the body is %zu bytes, more than GA4's limit of 130 KB",
                   body_len);
  }
  json_error_t je;
  if (!rc && !(root = util_json_parse(body, body_len, &je))) {
    note(&c, "", "VALUE_INVALID", "Unable to parse the payload as JSON: %s (line %d, column %d).",
         je.text, je.line, je.column);
    rc = util_fail(err, SRV_EBAD_JSON, NULL,
                   "malformed JSON body at line %d, column %d: %s", je.line, je.column,
                   je.text);
  } else if (!rc && !json_is_object(root)) {
    note(&c, "", "VALUE_INVALID", "The payload must be a JSON object.");
    rc = util_fail(err, SRV_EBAD_JSON, NULL, "/mp/collect: the body must be a JSON object");
  }
  json_t *events = rc ? NULL : json_object_get(root, "events");
  if (!rc && !json_is_string(json_object_get(root, "client_id")) &&
      !json_is_string(json_object_get(root, "app_instance_id"))) {
    note(&c, "client_id", "VALUE_REQUIRED", "Client_id (or app_instance_id) is required.");
    rc = util_fail(err, SRV_EBAD_FIELD, "client_id",
                   "/mp/collect: missing field 'client_id' (a string)");
  } else if (!rc && (!json_is_array(events) || !json_array_size(events))) {
    note(&c, "events", "VALUE_REQUIRED", "Events is required: an array of 1 to 25 events.");
    rc = util_fail(err, SRV_EBAD_FIELD, "events",
                   "/mp/collect: missing field 'events' (an array of 1 to 25 events)");
  } else if (!rc && json_array_size(events) > GA4_MAX_EVENTS) {
    note(&c, "events", "EXCEEDED_MAX_ENTITIES", "Events has %zu entries, more than the 25 allowed.",
         json_array_size(events));
    rc = util_fail(err, SRV_ETOO_LARGE, "events",
                   "/mp/collect: %zu events, more than GA4's limit of 25",
                   json_array_size(events));
  }
  size_t n = json_array_size(events);
  if (!rc) rc = srv_events_alloc(out, n, "ga4", err);
  for (size_t i = 0; !rc && i < n; i++) {
    json_t *e = json_array_get(events, i);
    size_t noted = json_array_size(c.msgs);
    if (ga4_rules(&c, e, i)) {
      srv_reject *r = srv_reject_at(out, i);
      /* This event's own note (none when it could not be made). */
      json_t *last = json_array_size(c.msgs) > noted
                         ? json_array_get(c.msgs, json_array_size(c.msgs) - 1) : NULL;
      const char *why = json_string_value(json_object_get(last, "description"));
      util_fail(&r->err, SRV_EBAD_FIELD, json_string_value(json_object_get(last, "fieldPath")),
                "%s", why ? why : "the event breaks GA4's rules");
      continue;
    }
    json_t *doc = json_pack("{sO}", "name", json_object_get(e, "name"));
    json_t *params = json_object_get(e, "params");
    if (doc && json_is_object(params)) json_object_set(doc, "params", params);
    for (size_t k = 0; doc && k < sizeof carried / sizeof *carried; k++) {
      json_t *v = json_object_get(root, carried[k]);
      if (v && !json_is_null(v))
        json_object_set(doc, !strcmp(carried[k], "app_instance_id") ? "client_id" : carried[k],
                        v);
    }
    /* GA4's session_id is the second the session began (gtag's), so
       visitors who began in the same second share it, and a busy shop has
       several a second: their views would make one session (its items,
       its popups shown).  A GA4 session is its client's: the event's
       session is "client_id:session_id". */
    json_t *sid = json_is_object(params) ? json_object_get(params, "session_id") : NULL;
    const char *cid = doc ? json_string_value(json_object_get(doc, "client_id")) : NULL;
    if (cid && (json_is_string(sid) || json_is_integer(sid))) {
      char key[512];
      if (json_is_string(sid))
        snprintf(key, sizeof key, "%s:%s", cid, json_string_value(sid));
      else
        snprintf(key, sizeof key, "%s:%lld", cid, (long long)json_integer_value(sid));
      json_t *own = json_copy(params);
      if (own) json_object_set_new(own, "session_id", json_string(key));
      if (own) json_object_set_new(doc, "params", own);
    }
    size_t before = out->n_rejects;
    rc = doc ? srv_add_event(doc, i, 1, out, err) : srv_oom(err, "ga4");
    json_decref(doc);
    if (!rc && out->n_rejects > before) {
      const srv_reject *r = &out->rejects[out->n_rejects - 1];
      char path[96];
      snprintf(path, sizeof path, "events.params%s%s", r->err.field[0] ? "." : "",
               r->err.field);
      note(&c, path, strstr(r->err.message, "missing") ? "VALUE_REQUIRED" : "VALUE_INVALID",
           "Event at index: [%zu]: %s.", i, r->err.message);
    }
  }
  if (debug) {
    /* Validation only: nothing is stored, every finding is the answer. */
    for (size_t i = 0; i < out->n_events; i++) ev_clear(&out->evs[i]);
    out->n_events = out->n_rejects = 0;
    if (rc && rc != SRV_EINTERNAL) rc = SRV_OK, memset(err, 0, sizeof *err);
    json_t *answer = json_pack("{sO}", "validationMessages", c.msgs);
    out->text = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
    json_decref(answer);
    if (!rc && !out->text) rc = srv_oom(err, "ga4");
    out->text_len = out->text ? strlen(out->text) : 0;
  }
  json_decref(c.msgs);
  json_decref(root);
  return rc;
}
