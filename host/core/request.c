/*
** request.c: decision requests from JSON to a typed `dreq` (request.h).
*/
#include "core/request.h"

#include <math.h>
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
static int id_field(json_t *obj, int f, json_t *v, const char **out, tailor_error *err) {
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

/* A list of item ids `v` under `key` (integers become strings), at most
   REQ_MAX_ITEMS; *arr borrowed, *ids owned. */
static int id_list(json_t *v, const char *key, json_t **arr, const char ***ids, size_t *n,
                   tailor_error *err) {
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

/* A price bound of the filter: a finite number >= 0 (max: > 0). */
static int price_bound(json_t *filter, const char *key, double *out, tailor_error *err) {
  json_t *v = json_object_get(filter, key);
  *out = 0;
  if (!v || json_is_null(v)) return TAILOR_OK;
  double d = json_is_number(v) ? json_number_value(v) : NAN;
  int is_max = !strcmp(key, "max_price");
  if (!isfinite(d) || d < 0 || (is_max && d == 0))
    return util_fail(err, TAILOR_EFIELD, is_max ? "filter.max_price" : "filter.min_price", "decide: 'filter.%s' must be a %s number", key,
                     is_max ? "positive" : "non-negative");
  *out = d;
  return TAILOR_OK;
}

/* filter: {brand: "Acme" | ["Acme", ...], min_price, max_price, in_stock}. */
static int parse_filter(json_t *f, req_controls *c, tailor_error *err) {
  static const char *const keys[] = {"brand", "min_price", "max_price", "in_stock", NULL};
  json_t *v;
  const char *key;
  if (!f || json_is_null(f)) return TAILOR_OK;
  if (!json_is_object(f)) return bad(err, REQ_F_FILTER, "must be an object");
  json_object_foreach(f, key, v) {
    const char *const *k = keys;
    while (*k && strcmp(*k, key)) k++;
    if (!*k)
      return util_fail(err, TAILOR_EFIELD, "filter",
                       "decide: unknown field 'filter.%.64s' (allowed: brand, min_price, "
                       "max_price, in_stock)", key);
  }
  int rc;
  if ((rc = price_bound(f, "min_price", &c->min_price, err)) ||
      (rc = price_bound(f, "max_price", &c->max_price, err)))
    return rc;
  if (c->max_price > 0 && c->min_price > c->max_price)
    return util_fail(err, TAILOR_EFIELD, "filter.max_price",
                     "decide: 'filter.max_price' is below 'filter.min_price'");
  v = json_object_get(f, "in_stock");
  if (v && !json_is_null(v) && !json_is_boolean(v))
    return util_fail(err, TAILOR_EFIELD, "filter.in_stock", "decide: 'filter.in_stock' must be true or false");
  c->any_stock = json_is_false(v);
  v = json_object_get(f, "brand");
  if (!v || json_is_null(v)) return TAILOR_OK;
  size_t m = json_is_array(v) ? json_array_size(v) : 1;
  if ((!json_is_array(v) && !json_is_string(v)) || m == 0 || m > REQ_MAX_BRANDS)
    return util_fail(err, TAILOR_EFIELD, "filter.brand",
                     "decide: 'filter.brand' must be a brand name or a list of 1 to %d names",
                     REQ_MAX_BRANDS);
  if (!(c->brands = malloc(m * sizeof *c->brands)))
    return util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
  for (size_t i = 0; i < m; i++) {
    json_t *b = json_is_array(v) ? json_array_get(v, i) : v;
    if (!json_is_string(b) || !json_string_length(b))
      return util_fail(err, TAILOR_EFIELD, "filter.brand",
                       "decide: 'filter.brand' must hold non-empty brand names");
    c->brands[c->n_brands++] = json_string_value(b);
  }
  return TAILOR_OK;
}

/* pin: [{item: id, slot: 1..max_k}, ...], at most REQ_MAX_PINS; errors
   name the entry ("pin[1].slot"). */
static int parse_pins(json_t *v, long max_k, req_controls *c, tailor_error *err) {
  char at[64];
  if (!v || json_is_null(v)) return TAILOR_OK;
  if (!json_is_array(v)) return bad(err, REQ_F_PIN, "must be a list of {item, slot}");
  size_t m = json_array_size(v);
  if (m > REQ_MAX_PINS)
    return util_fail(err, TAILOR_ETOOBIG, "pin", "decide: 'pin' has %zu entries, more than %d",
                     m, REQ_MAX_PINS);
  if (m && !(c->pins = malloc(m * sizeof *c->pins)))
    return util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
  for (size_t i = 0; i < m; i++) {
    json_t *p = json_array_get(v, i), *any;
    const char *k;
    snprintf(at, sizeof at, "pin[%zu]", i);
    if (!json_is_object(p))
      return util_fail(err, TAILOR_EFIELD, at, "decide: '%s' must be an object {item, slot}", at);
    json_object_foreach(p, k, any) {
      if (strcmp(k, "item") && strcmp(k, "slot"))
        return util_fail(err, TAILOR_EFIELD, at,
                         "decide: unknown field '%s.%.64s' (allowed: item, slot)", at, k);
    }
    json_t *item = json_object_get(p, "item");
    if (item && !(item = util_id_text(p, "item", 0, item)))
      return util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
    snprintf(at, sizeof at, "pin[%zu].item", i);
    if (!json_is_string(item) || !json_string_length(item))
      return util_fail(err, TAILOR_EFIELD, at, "decide: '%s' must be an item id", at);
    json_t *slot = json_object_get(p, "slot");
    snprintf(at, sizeof at, "pin[%zu].slot", i);
    if (!json_is_integer(slot) || json_integer_value(slot) < 1 ||
        json_integer_value(slot) > max_k)
      return util_fail(err, TAILOR_EFIELD, at, "decide: '%s' must be an integer from 1 to %ld",
                       at, max_k);
    snprintf(at, sizeof at, "pin[%zu]", i);
    for (size_t j = 0; j < c->n_pins; j++)
      if (c->pins[j].slot == json_integer_value(slot) ||
          !strcmp(c->pins[j].item, json_string_value(item)))
        return util_fail(err, TAILOR_EFIELD, at,
                         "decide: '%s' repeats the item or the slot of 'pin[%zu]'", at, j);
    c->pins[c->n_pins++] = (req_pin){json_string_value(item), (long)json_integer_value(slot)};
  }
  return TAILOR_OK;
}

#define ENVELOPE_KEY (-1)
#define UNKNOWN_KEY (-2)

/* The field a request's key names, ENVELOPE_KEY or UNKNOWN_KEY. */
static int field_of(const char *key, const req_limits *lim) {
  for (int f = 0; f < REQ_F_COUNT; f++)
    if (!strcmp(key, fields[f].name)) return f;
  for (const char *const *e = lim ? lim->envelope : NULL; e && *e; e++)
    if (!strcmp(key, *e)) return ENVELOPE_KEY;
  return UNKNOWN_KEY;
}

int req_from_json(json_t *obj, const req_limits *lim, dreq *out, tailor_error *err) {
  long max_k = lim && lim->max_k > 0 ? lim->max_k : DEF_DECIDE_MAX_K;
  const char *key;
  json_t *v;
  int rc;
  memset(out, 0, sizeof *out);
  if (!json_is_object(obj))
    return util_fail(err, TAILOR_EPARSE, NULL, "decide: the request must be a JSON object");
  /* One pass over the keys: each field's value, by the table's order. */
  json_t *val[REQ_F_COUNT] = {0};
  json_object_foreach(obj, key, v) {
    int f = field_of(key, lim);
    if (f >= 0) val[f] = v;
    if (f != UNKNOWN_KEY) continue;
    char list[200] = "";
    size_t at = 0;
    for (int g = 0; g < REQ_F_COUNT; g++)
      at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", g ? ", " : "", fields[g].name);
    return util_fail(err, TAILOR_EFIELD, key, "decide: unknown field '%.64s' (allowed: %s)", key,
                     list);
  }
  out->src = json_incref(obj);
  v = val[REQ_F_KIND];
  if (!json_is_string(v)) {
    rc = bad(err, REQ_F_KIND,
             "is required: the handler to ask (recommend, popup, discount, rank, landing, "
             "visitor, quiz, audiences, or a strategy's own)");
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
  if ((rc = id_field(obj, REQ_F_CUSTOMER, val[REQ_F_CUSTOMER], &out->customer, err)) ||
      (rc = id_field(obj, REQ_F_ANON, val[REQ_F_ANON], &out->anon, err)) ||
      (rc = id_field(obj, REQ_F_SESSION, val[REQ_F_SESSION], &out->session, err)))
    goto fail;
  for (int f = REQ_F_PAGE; f <= REQ_F_CONTEXT; f++) {
    v = val[f];
    if (v && !json_is_null(v) && !json_is_object(v)) {
      rc = bad(err, f, "must be an object");
      goto fail;
    }
    if (json_is_object(v)) *(f == REQ_F_PAGE ? &out->page : &out->context) = v;
  }
  v = val[REQ_F_K];
  if (v && !json_is_null(v)) {
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max_k) {
      rc = util_fail(err, TAILOR_EFIELD, "k", "decide: 'k' must be an integer from 1 to %ld",
                     max_k);
      goto fail;
    }
    out->k = (long)json_integer_value(v);
  }
  if ((rc = id_list(val[REQ_F_EXCLUDE], "exclude", &out->exclude, &out->ex_ids, &out->n_ex,
                    err)) ||
      (rc = id_list(val[REQ_F_ITEMS], "items", &out->items, &out->ids, &out->n_ids, err)))
    goto fail;
  json_t *unused;
  if ((rc = parse_filter(val[REQ_F_FILTER], &out->ctl, err)) ||
      (rc = parse_pins(val[REQ_F_PIN], max_k, &out->ctl, err)) ||
      (rc = id_list(val[REQ_F_BOOST], "boost", &unused, &out->ctl.boost, &out->ctl.n_boost, err)) ||
      (rc = id_list(val[REQ_F_BURY], "bury", &unused, &out->ctl.bury, &out->ctl.n_bury, err)))
    goto fail;
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
  json_t *obj = util_json_parse(text, len, &je);
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
  free(r->ctl.brands);
  free(r->ctl.pins);
  free(r->ctl.boost);
  free(r->ctl.bury);
  json_decref(r->src);
  memset(r, 0, sizeof *r);
}
