/*
** request.c: decision requests from JSON to a typed `dreq` (request.h).
*/
#include "core/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/defaults.h"
#include "core/util.h"

static const struct {
  const char *name, *doc;
} fields[REQ_F_COUNT] = {
#define REQ_ROW_(e, name, doc) {name, doc},
    REQ_FIELD_MAP(REQ_ROW_)
#undef REQ_ROW_
};

const char *req_field_name(int f) { return f >= 0 && f < REQ_F_COUNT ? fields[f].name : "?"; }

static int bad(tailor_error *err, int f, const char *what) {
  return util_fail(err, TAILOR_EFIELD, fields[f].name, "decide: '%s' %s", fields[f].name, what);
}

/* An id field: a non-empty string of at most DEF_MAX_ID_BYTES, or an
   integer. */
static int id_field(json_t *obj, int f, const char **out, tailor_error *err) {
  json_t *v = json_object_get(obj, fields[f].name);
  *out = NULL;
  if (!v || json_is_null(v)) return TAILOR_OK;
  if (!(v = util_id_text(obj, fields[f].name, 0, v)))
    return util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
  if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > DEF_MAX_ID_BYTES) {
    char what[96];
    snprintf(what, sizeof what,
             "must be an id: a non-empty string of at most %d bytes, or an integer",
             DEF_MAX_ID_BYTES);
    return bad(err, f, what);
  }
  *out = json_string_value(v);
  return TAILOR_OK;
}

/* A list of item ids under `key` (integers become strings), at most
   REQ_MAX_ITEMS; *arr borrowed, *ids owned. */
static int id_list(json_t *obj, const char *key, json_t **arr, const char ***ids, size_t *n,
                   tailor_error *err) {
  json_t *v = json_object_get(obj, key);
  *arr = NULL;
  if (!v || json_is_null(v)) return TAILOR_OK;
  if (!json_is_array(v))
    return util_fail(err, TAILOR_EFIELD, key, "decide: '%s' must be a list of item ids", key);
  size_t m = json_array_size(v);
  if (m > REQ_MAX_ITEMS)
    return util_fail(err, TAILOR_ETOOBIG, key, "decide: '%s' has %zu ids, more than the limit of %d",
                     key, m, REQ_MAX_ITEMS);
  if (m && !(*ids = malloc(m * sizeof **ids)))
    return util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
  for (size_t i = 0; i < m; i++) {
    json_t *id = util_id_text(v, NULL, i, json_array_get(v, i));
    if (!json_is_string(id) || !json_string_length(id))
      return util_fail(err, TAILOR_EFIELD, key, "decide: '%s[%zu]' must be an item id", key, i);
    (*ids)[(*n)++] = json_string_value(id);
  }
  *arr = v;
  return TAILOR_OK;
}

static int known_key(const char *key, const req_limits *lim) {
  for (int f = 0; f < REQ_F_COUNT; f++)
    if (!strcmp(key, fields[f].name)) return 1;
  for (const char *const *e = lim ? lim->envelope : NULL; e && *e; e++)
    if (!strcmp(key, *e)) return 1;
  return 0;
}

int req_from_json(json_t *obj, const req_limits *lim, dreq *out, tailor_error *err) {
  long max_k = lim && lim->max_k > 0 ? lim->max_k : DEF_DECIDE_MAX_K;
  const char *key;
  json_t *v;
  int rc;
  memset(out, 0, sizeof *out);
  if (!json_is_object(obj))
    return util_fail(err, TAILOR_EPARSE, NULL, "decide: the request must be a JSON object");
  json_object_foreach(obj, key, v) {
    if (known_key(key, lim)) continue;
    char list[200] = "";
    size_t at = 0;
    for (int f = 0; f < REQ_F_COUNT; f++)
      at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", f ? ", " : "", fields[f].name);
    return util_fail(err, TAILOR_EFIELD, key, "decide: unknown field '%.64s' (allowed: %s)", key,
                     list);
  }
  out->src = json_incref(obj);
  v = json_object_get(obj, "kind");
  if (!json_is_string(v)) {
    rc = bad(err, REQ_F_KIND, "is required: recommend, popup, discount, audiences or rank");
    goto fail;
  }
  const char *kind = json_string_value(v);
  size_t n = json_string_length(v);
  int ok = n > 0 && n <= REQ_MAX_KIND;
  for (size_t i = 0; ok && i < n; i++) ok = kind[i] == '_' || (kind[i] >= 'a' && kind[i] <= 'z');
  if (!ok) {
    char what[80];
    snprintf(what, sizeof what, "must be a handler name of 1 to %d lowercase letters or '_'",
             REQ_MAX_KIND);
    rc = bad(err, REQ_F_KIND, what);
    goto fail;
  }
  if (!strcmp(kind, "on_event") || !strcmp(kind, "on_due") || !strcmp(kind, "segments")) {
    rc = bad(err, REQ_F_KIND, "is not a decision kind");
    goto fail;
  }
  memcpy(out->kind, kind, n + 1);
  if ((rc = id_field(obj, REQ_F_CUSTOMER, &out->customer, err)) ||
      (rc = id_field(obj, REQ_F_ANON, &out->anon, err)) ||
      (rc = id_field(obj, REQ_F_SESSION, &out->session, err)))
    goto fail;
  for (int f = REQ_F_PAGE; f <= REQ_F_CONTEXT; f++) {
    v = json_object_get(obj, fields[f].name);
    if (v && !json_is_null(v) && !json_is_object(v)) {
      rc = bad(err, f, "must be an object");
      goto fail;
    }
    if (json_is_object(v)) *(f == REQ_F_PAGE ? &out->page : &out->context) = v;
  }
  v = json_object_get(obj, "k");
  if (v && !json_is_null(v)) {
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max_k) {
      rc = util_fail(err, TAILOR_EFIELD, "k", "decide: 'k' must be an integer from 1 to %ld",
                     max_k);
      goto fail;
    }
    out->k = (long)json_integer_value(v);
  }
  if ((rc = id_list(obj, "exclude", &out->exclude, &out->ex_ids, &out->n_ex, err))) goto fail;
  if ((rc = id_list(obj, "items", &out->items, &out->ids, &out->n_ids, err))) goto fail;
  if (!strcmp(out->kind, "rank") && !out->items) {
    rc = bad(err, REQ_F_ITEMS, "is required for rank: the list to re-order");
    goto fail;
  }
  return TAILOR_OK;
fail:
  req_clear(out);
  return rc;
}

int req_parse(const char *text, size_t len, size_t max_bytes, const req_limits *lim,
              dreq *out, tailor_error *err) {
  json_error_t je;
  memset(out, 0, sizeof *out);
  if (!text) return util_fail(err, TAILOR_EINVAL, NULL, "decide: no request");
  if (max_bytes && len > max_bytes)
    return util_fail(err, TAILOR_ETOOBIG, NULL,
                     "decide: request of %zu bytes exceeds the limit of %zu", len, max_bytes);
  if (util_json_depth(text, len) > UTIL_MAX_JSON_DEPTH)
    return util_fail(err, TAILOR_EPARSE, NULL, "decide: JSON nested deeper than %d levels",
                     UTIL_MAX_JSON_DEPTH);
  json_t *obj = json_loadb(text, len, 0, &je);
  if (!obj)
    return util_fail(err, TAILOR_EPARSE, NULL, "decide: line %d column %d: %s", je.line,
                     je.column, je.text);
  int rc = req_from_json(obj, lim, out, err);
  json_decref(obj);
  return rc;
}

void req_clear(dreq *r) {
  if (!r) return;
  free(r->ids);
  free(r->ex_ids);
  json_decref(r->src);
  memset(r, 0, sizeof *r);
}
