/*
** segment.c: Segment's HTTP Tracking API on the server's port, which
** RudderStack's clients speak too: POST /v1/batch, and one call at a time
** /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/alias, /v1/group.
** The write key is the HTTP Basic user (http.c), or the body's "writeKey".
**
** Each message becomes one or two event objects that go through the one
** event path (srv_add_event, the parser of /v1/events), as
** ev_from_json_any: a track call tailor has no type for is an `other` event
** under its name, kept and counted, never refused.  What is Segment's
** alone is settled here, before the parser sees the message:
**
**  - time: Segment's clock-skew correction, timestamp + (receivedAt -
**    sentAt), with originalTimestamp in place of timestamp when given;
**    then the server screens it like any event's (conn.c: a storefront's
**    events take the server's clock, a trusted sender's may run ahead by
**    limits.max_future_ms);
**  - identify: the traits go to the customer's profile (a customer_upsert:
**    email and phone are its PII columns, the rest its attrs), never into
**    the event log, and an anonymousId beside the userId links the two;
**  - alias: previousId becomes the anonymous id linked to userId;
**  - group: an `other` event named "group";
**  - sizes: Segment's 32 KB a message and 500 KB a batch, answered 400 as
**    Segment does; a message over its limit in a batch is refused alone.
**
** The answer (work.c) is Segment's {"success": true} with tailor's counts,
** and each refused message named by its index and messageId.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/event.h"
#include "core/util.h"
#include "server/request.h"

/* Segment's limits (its documentation: "32KB per call, 500KB per batch");
   the protocol's numbers, not tailor's to tune. */
#define SEGMENT_MAX_MESSAGE_BYTES (32 * 1024)
#define SEGMENT_MAX_BATCH_BYTES (500 * 1024)

/* Events one message may become (identify: the traits and the link). */
#define SEGMENT_EVENTS_PER_MESSAGE 2

/* A JSON string or integer id as text in `buf`, or NULL. */
static const char *id_text(json_t *v, char *buf, size_t n) {
  if (json_is_string(v) && json_string_length(v)) return json_string_value(v);
  if (json_is_integer(v)) {
    snprintf(buf, n, "%lld", (long long)json_integer_value(v));
    return buf;
  }
  return NULL;
}

/*
** Segment's time: the message's timestamp (originalTimestamp when the
** client sent one: the time of the call on a device whose clock may be
** off), moved by how far the sender's clock is from ours, measured by its
** sentAt against when we received it.  The result replaces the message's
** time keys as "ts"; a time that does not parse is left for the parser to
** name.
*/
static void correct_time(json_t *msg, json_t *batch_sent, int64_t now_ms) {
  json_t *base = json_object_get(msg, "originalTimestamp");
  if (!base || json_is_null(base)) base = json_object_get(msg, "timestamp");
  json_t *sent = json_object_get(msg, "sentAt");
  if (!sent || json_is_null(sent)) sent = batch_sent;
  int64_t ts, at;
  if (!base || json_is_null(base) || ev_parse_time(base, &ts)) return;
  if (sent && !json_is_null(sent) && !ev_parse_time(sent, &at)) ts += now_ms - at;
  json_object_del(msg, "originalTimestamp");
  json_object_del(msg, "timestamp");
  json_object_del(msg, "sentAt");
  json_object_del(msg, "receivedAt");
  json_object_set_new(msg, "ts", json_integer(ts));
}

/* Add `doc` (consumed) as an event of message `index`. */
static int add(json_t *doc, size_t index, srv_request *out, tailor_error *err) {
  if (!doc) return srv_oom(err, "segment");
  int rc = srv_add_event(doc, index, 1, out, err);
  json_decref(doc);
  return rc;
}

/* The personal data of traits: the profile's PII columns. */
static int is_pii(const char *key) { return !strcmp(key, "email") || !strcmp(key, "phone"); }

static void strip_pii(json_t *traits) {
  json_object_del(traits, "email");
  json_object_del(traits, "phone");
}

/*
** identify: the traits to the profile of userId, and userId linked to
** anonymousId.  Without a userId there is no profile to hold the traits:
** the call is kept as an `other` event named "identify", without the PII.
*/
static int identify(json_t *msg, size_t index, const char *msg_id, srv_request *out,
                    tailor_error *err) {
  char ubuf[32], abuf[32];
  const char *user = id_text(json_object_get(msg, "userId"), ubuf, sizeof ubuf);
  const char *anon = id_text(json_object_get(msg, "anonymousId"), abuf, sizeof abuf);
  json_t *traits = json_object_get(msg, "traits");
  if (!json_is_object(traits)) traits = NULL;
  /* RudderStack (and analytics.js) send the traits in context.traits too,
     or only there. */
  json_t *context = json_object_get(msg, "context");
  json_t *ctraits = json_object_get(context, "traits");
  if (json_is_object(ctraits)) {
    if (traits)
      json_object_update_missing(traits, ctraits);
    else
      traits = ctraits;
  }
  int rc = SRV_OK;
  if (user && traits && json_object_size(traits)) {
    json_t *profile = json_pack("{ss}", "id", user), *attrs = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(traits, k, v) {
      if (json_is_null(v)) continue;
      json_object_set(is_pii(k) ? profile : attrs, k, v);
    }
    if (profile && attrs && json_object_size(attrs)) json_object_set(profile, "attrs", attrs);
    json_decref(attrs);
    json_t *doc = profile ? json_pack("{ss sO}", "type", "customer_upsert", "customer", profile)
                          : NULL;
    json_decref(profile);
    json_t *ts = json_object_get(msg, "ts");
    if (doc && ts) json_object_set(doc, "ts", ts);
    if (doc && msg_id) {
      /* Its own id, so that a retry of the call is one of the traits too. */
      char id[DEF_MAX_ID_BYTES + 16];
      snprintf(id, sizeof id, "%s%s", msg_id, anon ? "#traits" : "");
      /* An id that the suffix takes past the longest one: the same for
         every retry, and of a length that fits. */
      if (strlen(id) > DEF_MAX_ID_BYTES) {
        char hex[65];
        util_sha256_hex(msg_id, strlen(msg_id), hex);
        snprintf(id, sizeof id, "traits:%s", hex);
      }
      json_object_set_new(doc, "message_id", json_string(id));
    }
    if ((rc = add(doc, index, out, err))) return rc;
    if (!anon) return SRV_OK;
  }
  /* The call itself: the link (identify), or kept as it came. */
  json_t *doc = json_deep_copy(msg);
  if (!doc) return srv_oom(err, "segment");
  json_object_del(doc, "traits");
  json_object_del(json_object_get(doc, "context"), "traits");
  if (user && anon) {
    json_object_set_new(doc, "type", json_string("identify"));
  } else {
    json_object_set_new(doc, "type", json_string("track"));
    json_object_set_new(doc, "event", json_string("identify"));
    if (traits && !user) {
      json_t *kept = json_object();
      const char *k;
      json_t *v;
      json_object_foreach(traits, k, v)
        if (!is_pii(k)) json_object_set(kept, k, v);
      if (kept && json_object_size(kept)) json_object_set(doc, "traits", kept);
      json_decref(kept);
    }
  }
  return add(doc, index, out, err);
}

/* One message, its place `index` in the request. */
static int message(json_t *msg, size_t index, const char *call, json_t *batch_sent,
                   int64_t now_ms, int single, srv_request *out, tailor_error *err) {
  char where[48];
  snprintf(where, sizeof where, single ? "message" : "batch[%zu]", index);
  if (!json_is_object(msg)) {
    util_fail(&srv_reject_at(out, index)->err, SRV_EBAD_FIELD, where,
              "%s: a message must be a JSON object, found %s", where, srv_type_word(msg));
    return SRV_OK;
  }
  /* The message id, for the answer. */
  char mbuf[32];
  const char *msg_id = id_text(json_object_get(msg, "messageId"), mbuf, sizeof mbuf);
  if (msg_id && !(out->msg_ids[index] = strndup(msg_id, SRV_MAX_ID_BYTES)))
    return srv_oom(err, "segment");
  size_t bytes = json_dumpb(msg, NULL, 0, JSON_COMPACT);
  if (bytes > SEGMENT_MAX_MESSAGE_BYTES) {
    util_fail(&srv_reject_at(out, index)->err, SRV_ETOO_LARGE, where,
              "%s: the message is %zu bytes, more than Segment's limit of 32 KB", where, bytes);
    return SRV_OK;
  }
  /* A credential is never stored; the client's own bookkeeping neither. */
  json_object_del(msg, "writeKey");
  json_object_del(msg, "_metadata");
  correct_time(msg, batch_sent, now_ms);

  json_t *t = json_object_get(msg, "type");
  const char *type = call ? call : json_string_value(t);
  if (!type) {
    util_fail(&srv_reject_at(out, index)->err, SRV_EBAD_FIELD, "type",
              "%s: missing field 'type' (track, identify, page, screen, alias, group)", where);
    return SRV_OK;
  }
  if (call) json_object_set_new(msg, "type", json_string(call));
  /* The user's traits that clients copy into every call's context: their
     PII belongs to the profile (identify), never to the event log. */
  json_t *ctraits = json_object_get(json_object_get(msg, "context"), "traits");
  if (json_is_object(ctraits) && strcmp(type, "identify")) strip_pii(ctraits);
  if (!strcmp(type, "track") || !strcmp(type, "page") || !strcmp(type, "screen"))
    return add(json_incref(msg), index, out, err);
  if (!strcmp(type, "identify")) return identify(msg, index, msg_id, out, err);
  if (!strcmp(type, "alias")) {
    char buf[32];
    const char *prev = id_text(json_object_get(msg, "previousId"), buf, sizeof buf);
    if (!prev) {
      util_fail(&srv_reject_at(out, index)->err, SRV_EBAD_FIELD, "previousId",
                "%s: alias: missing field 'previousId' (the id to merge into userId)", where);
      return SRV_OK;
    }
    json_t *doc = json_deep_copy(msg);
    if (doc) {
      json_object_del(doc, "previousId");
      json_object_del(doc, "anonymousId");
      json_object_set_new(doc, "type", json_string("identify"));
      json_object_set_new(doc, "anonymousId", json_string(prev));
    }
    return add(doc, index, out, err);
  }
  if (!strcmp(type, "group")) {
    json_object_set_new(msg, "type", json_string("track"));
    json_object_set_new(msg, "event", json_string("group"));
    return add(json_incref(msg), index, out, err);
  }
  util_fail(&srv_reject_at(out, index)->err, SRV_EBAD_FIELD, "type",
            "%s: type '%.64s' is not a Segment call (track, identify, page, screen, alias, "
            "group)",
            where, type);
  return SRV_OK;
}

int srv_parse_segment(const char *path, const char *body, size_t body_len, json_t *doc,
                      int64_t now_ms, const srv_limits *lim, srv_request *out,
                      tailor_error *err) {
  static const char *const calls[] = {"track", "identify", "page", "screen", "alias",
                                      "group"};
  out->op = SRV_OP_SEGMENT;
  out->need = srv_op_perms(out->op);
  const char *call = NULL;
  /* analytics.js (analytics-next) posts to the calls' first letters
     (/v1/t, /v1/p, ...) and batches to /v1/b, as api.segment.io takes them. */
  for (size_t i = 0; i < sizeof calls / sizeof *calls; i++)
    if (!strcmp(path + 4, calls[i]) || (path[4] == calls[i][0] && !path[5])) call = calls[i];
  int single = call != NULL;
  size_t limit = single ? SEGMENT_MAX_MESSAGE_BYTES : SEGMENT_MAX_BATCH_BYTES;
  if (body_len > limit) {
    out->http_status = 400; /* Segment's answer to a call over its limits */
    return util_fail(err, SRV_ETOO_LARGE, NULL,
                     "%s: the body is %zu bytes, more than Segment's limit of %s", path,
                     body_len, single ? "32 KB a message" : "500 KB a batch");
  }
  json_t *root = doc ? json_incref(doc) : NULL;
  int rc = SRV_OK;
  if (!root) {
    json_error_t je;
    if (util_json_depth(body, body_len) > UTIL_MAX_JSON_DEPTH)
      return util_fail(err, SRV_EBAD_JSON, NULL, "JSON body nested deeper than %d levels",
                       UTIL_MAX_JSON_DEPTH);
    if (!(root = util_json_parse(body, body_len, &je)))
      return util_fail(err, SRV_EBAD_JSON, NULL,
                       "malformed JSON body at line %d, column %d: %s", je.line, je.column,
                       je.text);
  }
  if (!json_is_object(root)) {
    rc = util_fail(err, SRV_EBAD_JSON, NULL, "%s: the body must be a JSON object, found %s",
                   path, srv_type_word(root));
    goto done;
  }
  json_t *key = json_object_get(root, "writeKey");
  if (json_is_string(key) && json_string_length(key) <= SRV_MAX_ID_BYTES &&
      !(out->token = strdup(json_string_value(key)))) {
    rc = srv_oom(err, "segment");
    goto done;
  }
  json_t *batch = single ? NULL : json_object_get(root, "batch");
  if (!single && !json_is_array(batch)) {
    rc = batch ? util_fail(err, SRV_EBAD_FIELD, "batch",
                           "/v1/batch: field 'batch' must be an array of messages, found %s",
                           srv_type_word(batch))
               : util_fail(err, SRV_EBAD_FIELD, "batch",
                           "/v1/batch: missing field 'batch' (an array of messages)");
    goto done;
  }
  size_t n = single ? 1 : json_array_size(batch);
  if (!n) {
    rc = util_fail(err, SRV_EBAD_FIELD, "batch", "/v1/batch: 'batch' is empty");
    goto done;
  }
  /* The same limit as an `events` request (a gzip body of 1 KB inflates
     to 500 KB of small messages). */
  size_t max = lim && lim->max_batch ? lim->max_batch : SRV_DEFAULT_MAX_BATCH;
  if (n > max) {
    out->http_status = 400; /* Segment's answer to a call over its limits */
    rc = util_fail(err, SRV_ETOO_LARGE, "batch",
                   "/v1/batch: %zu messages in one request, more than the limit of %zu "
                   "(server.max_batch_events)", n, max);
    goto done;
  }
  if ((rc = srv_events_alloc(out, n * SEGMENT_EVENTS_PER_MESSAGE, "segment", err))) goto done;
  if (!(out->msg_ids = calloc(n, sizeof *out->msg_ids))) {
    rc = srv_oom(err, "segment");
    goto done;
  }
  out->n_msg_ids = n;
  json_t *sent = single ? NULL : json_object_get(root, "sentAt");
  for (size_t i = 0; i < n && !rc; i++)
    rc = message(single ? root : json_array_get(batch, i), i, call, sent, now_ms, single, out,
                 err);
  /* One call refused is the request's error, as for /v1/events. */
  if (!rc && single && out->n_rejects) {
    *err = out->rejects[0].err;
    if (err->code == SRV_ETOO_LARGE) out->http_status = 400;
    rc = err->code;
  }
done:
  json_decref(root);
  return rc;
}
