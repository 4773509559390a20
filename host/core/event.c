/*
** event.c: from the JSON that storefronts send to tailor's normalized events.
**
** ev_parse() works in two steps.  build() maps the input (tailor's own
** format, a Segment call, a GA4 Measurement Protocol or dataLayer event)
** onto the normalized document, checking the type of every field it takes;
** fill() reads the typed fields of an `ev` out of that document and checks
** the requirements of its type.  ev_from_doc() is fill() alone, so an event
** replayed from the store is read by the very code that accepted it.
**
** Policies: JSON null is the same as absent; integer ids become strings;
** input keys that map to nothing are kept under "props", never dropped.
*/
#include "core/event.h"
#include "core/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The longest id (item, customer, order, session, ...) accepted, in bytes. */
#define EV_MAX_ID_BYTES 256
#define EV_STR_(x) #x
#define EV_STR(x) EV_STR_(x)

/* Timestamps are kept within years 0000-9999: the first ms of year 10000. */
#define EV_MAX_MS 253402300800000.0

static const char *const type_names[] = {
#define EV_NAME_(e, name, req) name,
    EV_TYPE_MAP(EV_NAME_)
#undef EV_NAME_
};

static const unsigned type_req[] = {
#define EV_REQ_(e, name, req) req,
    EV_TYPE_MAP(EV_REQ_)
#undef EV_REQ_
};

/*
** Names other tools give to tailor's types.  Matched without regard to
** ASCII case, like the wire names.
**
** Left out on purpose: Segment's "Product Clicked" and "Product List
** Viewed", GA4's "select_item" and "view_item_list".  They describe any
** product list on a site (a category page, a search result), not tailor's
** recommendation widgets; counting them as rec_clicked/rec_shown would skew
** the click-through rates strategies learn from.  tailor's widgets send
** rec_shown/rec_clicked themselves.
*/
static const struct alias {
  const char *name;
  ev_type type;
} aliases[] = {
    /* Segment e-commerce spec v2, and Segment's page and screen calls. */
    {"Product Viewed", EV_VIEW},
    {"Product Added", EV_ADD_TO_CART},
    {"Product Removed", EV_REMOVE_FROM_CART},
    {"Checkout Started", EV_CHECKOUT},
    {"Order Completed", EV_PURCHASE},
    {"Order Refunded", EV_REFUND},
    {"Products Searched", EV_SEARCH},
    {"Signed Up", EV_SIGNUP},
    {"page", EV_PAGE_VIEW},
    {"screen", EV_PAGE_VIEW},
    /* GA4 recommended events (add_to_cart, purchase, ... are wire names). */
    {"view_item", EV_VIEW},
    {"begin_checkout", EV_CHECKOUT},
    {"sign_up", EV_SIGNUP},
    {"login", EV_IDENTIFY}, /* valid only with both user_id and client_id */
};

/*
** Where each normalized field comes from: its input names in order of
** preference.  A name is looked up at the top level first, then inside the
** objects of nest_names.  A leading '.' means inside those objects only (a
** top-level "id" is a message id, not a product).
*/
enum { K_ID, K_TEXT, K_NUM, K_COUNT, K_OBJ, K_ARRAY, K_TIME };

enum {
  F_CUSTOMER, F_ANON, F_SESSION, F_ORDER, F_REVENUE, F_CURRENCY, F_QUERY,
  F_NAME, F_ITEM, F_ITEMS, F_LINE_ID, F_PRICE, F_QUANTITY, F_TS, F_MSG, F_COUNT_
};

static const struct field {
  const char *key;      /* the name in the normalized document */
  int kind;             /* K_*: what its value must be */
  const char *names[6]; /* NULL-terminated */
} fields[F_COUNT_] = {
    [F_CUSTOMER] = {"customer", K_ID, {"customer", "userId", "user_id", "customer_id"}},
    [F_ANON] = {"anon", K_ID, {"anon", "anonymousId", "anonymous_id", "client_id"}},
    [F_SESSION] = {"session", K_ID, {"session", "session_id", "sessionId", "ga_session_id"}},
    [F_ORDER] = {"order_id", K_ID, {"order_id", "transaction_id", "orderId"}},
    [F_REVENUE] = {"revenue", K_NUM, {"revenue", "value", "total"}},
    [F_CURRENCY] = {"currency", K_TEXT, {"currency"}},
    [F_QUERY] = {"query", K_TEXT, {"query", "search_term"}},
    [F_NAME] = {"name", K_ID, {"name", "popup", "template", "widget"}},
    [F_ITEM] = {"item", K_ID, {"item", "product_id", "item_id", "sku", ".id"}},
    [F_ITEMS] = {"items", K_ARRAY, {"items", "products"}},
    [F_LINE_ID] = {"id", K_ID, {"id", "item_id", "product_id", "sku"}},
    [F_PRICE] = {"price", K_NUM, {"price"}},
    [F_QUANTITY] = {"quantity", K_COUNT, {"quantity"}},
    [F_TS] = {"ts", K_TIME, {"ts", "timestamp", "originalTimestamp", "sentAt", "timestamp_micros"}},
    /* Top level only (see take_msg_id): a retried event carries the same. */
    [F_MSG] = {"message_id", K_ID, {"message_id", "messageId", "id"}},
};

/* Segment's properties, GA4's params and ecommerce.  And tailor's own
   "props", so that a normalized document parses back into itself (an
   export imported again). */
static const char *const nest_names[] = {"properties", "params", "ecommerce", "props"};

/* What each requirement bit needs, for the "missing field" message. */
static const struct need {
  unsigned bit;
  const char *field; /* err->field */
  const char *what;  /* the message after "missing field " */
} needs[] = {
    {EVF_WHO, "customer", "'customer', 'anon' or 'session' (or 'userId', 'anonymousId', 'client_id')"},
    {EVF_CUSTOMER, "customer", "'customer' (or 'userId', 'user_id')"},
    {EVF_ANON, "anon", "'anon' (or 'anonymousId', 'client_id')"},
    {EVF_ITEM, "item", "'item' (or 'product_id', 'item_id', 'sku', 'items')"},
    {EVF_ITEMS, "items", "'items' (or 'products')"},
    {EVF_ORDER, "order_id", "'order_id' (or 'transaction_id')"},
    {EVF_QUERY, "query", "'query' (or 'search_term')"},
    {EVF_NAME, "name", "'name' (or 'popup', 'template', 'widget')"},
    {EVF_ITEMDOC, "item", "'item' (a catalog object with an 'id')"},
    {EVF_CUSTDOC, "customer", "'customer' (a profile object with an 'id')"},
};

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int fail(tailor_error *err, int code, const char *field, const char *fmt, ...) {
  va_list ap;
  size_t bad;
  if (!err) return code;
  err->code = code;
  snprintf(err->field, sizeof err->field, "%s", field);
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  /* Messages echo input: keep them one line, and valid UTF-8 even when the
     cut at sizeof message fell inside a character. */
  for (char *p = err->message; *p; p++)
    if ((unsigned char)*p < 0x20) *p = ' ';
  if (!ev_utf8_valid(err->message, strlen(err->message), &bad)) err->message[bad] = '\0';
  return code;
}

static void reset(tailor_error *err) {
  if (!err) return;
  err->code = TAILOR_OK;
  err->field[0] = err->message[0] = '\0';
}

/* A mistyped value, for messages: "an object", "-2", "'ten'". */
static const char *describe(const json_t *v, char *buf, size_t n) {
  switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    case JSON_INTEGER: snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); return buf;
    case JSON_REAL: snprintf(buf, n, "%g", json_real_value(v)); return buf;
    case JSON_STRING: break;
  }
  if (!json_string_length(v)) return "an empty string";
  if (json_string_length(v) > 40) snprintf(buf, n, "a string of %zu bytes", json_string_length(v));
  else snprintf(buf, n, "'%s'", json_string_value(v));
  return buf;
}

static int mistyped(tailor_error *err, const char *tname, const char *field, const char *want,
                    const json_t *v) {
  char buf[64];
  return fail(err, TAILOR_EFIELD, field, "%s: field '%s': expected %s, found %s", tname, field,
              want, describe(v, buf, sizeof buf));
}

/*
** Check `*v` against `kind` and replace it by its normalized form (integer
** ids become strings).  Owns *v: on failure releases it and sets it NULL.
*/
static int norm(json_t **v, int kind, const char *tname, const char *field, tailor_error *err) {
  json_t *x = *v;
  const char *want = NULL;
  char buf[32];
  int rc;
  switch (kind) {
    case K_ID:
      if (json_is_integer(x)) {
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(x));
        json_decref(x);
        *v = json_string(buf);
        return TAILOR_OK;
      }
      if (!json_is_string(x) || !json_string_length(x))
        want = "a non-empty string or integer id";
      else if (json_string_length(x) > EV_MAX_ID_BYTES)
        want = "an id of at most " EV_STR(EV_MAX_ID_BYTES) " bytes";
      break;
    case K_TEXT: if (!json_is_string(x) || !json_string_length(x)) want = "a non-empty string"; break;
    case K_NUM: if (!json_is_number(x)) want = "a number"; break;
    case K_COUNT: if (!json_is_number(x) || json_number_value(x) < 0) want = "a number >= 0"; break;
    case K_OBJ: if (!json_is_object(x)) want = "an object"; break;
    case K_ARRAY: if (!json_is_array(x)) want = "an array"; break;
  }
  if (!want) return TAILOR_OK;
  rc = mistyped(err, tname, field, want, x);
  json_decref(x);
  *v = NULL;
  return rc;
}

/*
** The input being mapped: the top-level object and the nested objects that
** hold fields.  Keys are deleted as they are taken; what is left becomes
** "props", so nothing the storefront sent is lost.
*/
typedef struct input {
  json_t *box[5]; /* box[0] is the top level (borrowed); the others owned */
  size_t n;
} input;

/* Take the first of `names` out of the input: a new reference, or NULL.
   JSON null counts as absent (Segment sends "userId": null). */
static json_t *take(input *in, const char *const *names, const char **which) {
  for (size_t b = 0; b < in->n; b++) {
    for (const char *const *p = names; *p; p++) {
      const char *k = *p;
      json_t *v;
      if (*k == '.' && !b) continue;
      k += *k == '.';
      if (!(v = json_incref(json_object_get(in->box[b], k)))) continue;
      json_object_del(in->box[b], k);
      if (json_is_null(v)) {
        json_decref(v);
        continue;
      }
      if (which) *which = k;
      return v;
    }
  }
  return NULL;
}

/* Take field `f`, check it, and set it in `dst` under its normalized key. */
static int take_into(input *in, int f, json_t *dst, const char *path, const char *tname,
                     tailor_error *err) {
  json_t *v = take(in, fields[f].names, NULL);
  int rc;
  if (!v) return TAILOR_OK;
  if ((rc = norm(&v, fields[f].kind, tname, path, err))) return rc;
  json_object_set_new(dst, fields[f].key, v);
  return TAILOR_OK;
}

/* Normalize obj[key] in place when it is there. */
static int norm_in(json_t *obj, const char *key, int kind, const char *path, const char *tname,
                   tailor_error *err) {
  json_t *v = json_incref(json_object_get(obj, key));
  int rc;
  if (!v) return TAILOR_OK;
  if ((rc = norm(&v, kind, tname, path, err))) return rc;
  json_object_set_new(obj, key, v);
  return TAILOR_OK;
}

/*
** The event's type: tailor's (and Segment's) "type", for a Segment "track"
** call its "event", the dataLayer's "event", or GA4's "name".
*/
static int take_type(json_t *top, int *type, tailor_error *err) {
  const char *key = "type";
  json_t *v = json_object_get(top, "type");
  if (json_is_string(v) && !strcmp(json_string_value(v), "track")) {
    json_object_del(top, "type");
    key = "event";
  } else if (!v) {
    key = json_object_get(top, "event") ? "event" : "name";
  }
  if (!(v = json_object_get(top, key)))
    return strcmp(key, "name")
               ? fail(err, TAILOR_EFIELD, "event", "track: missing field 'event'")
               : fail(err, TAILOR_EFIELD, "type", "missing field 'type' (or 'event', 'name')");
  if (!json_is_string(v)) return mistyped(err, "event", key, "a string", v);
  if ((*type = ev_type_lookup(json_string_value(v))) < 0)
    return fail(err, TAILOR_ETYPE, key, "unknown event type '%s'", json_string_value(v));
  json_object_del(top, key);
  return TAILOR_OK;
}

/* item_upsert's catalog object or customer_upsert's profile: an object
   keyed by its "id". */
static int take_object(input *in, int f, json_t *doc, const char *tname, tailor_error *err) {
  const char *key = fields[f].key;
  json_t *o = take(in, fields[f].names, NULL);
  char path[16];
  int rc;
  if (!o) return TAILOR_OK; /* fill() says it is missing */
  if ((rc = norm(&o, K_OBJ, tname, key, err))) return rc;
  snprintf(path, sizeof path, "%s.id", key);
  if (!json_object_get(o, "id"))
    rc = fail(err, TAILOR_EFIELD, path, "%s: missing field '%s'", tname, path);
  else if (!(rc = norm_in(o, "id", K_ID, path, tname, err)) && f == F_ITEM)
    rc = norm_in(o, "price", K_NUM, "item.price", tname, err);
  if (!rc) json_object_set(doc, key, o);
  json_decref(o);
  return rc;
}

/* One line of "items": {id, price, quantity} first, then whatever else the
   line carried (name, brand, category, variant...).  A bare id is a line. */
static int take_line(json_t *src, size_t i, json_t *lines, const char *tname,
                     tailor_error *err) {
  char path[48];
  json_t *l = json_object();
  input li = {{src}, 1};
  int rc;
  json_array_append_new(lines, l);
  snprintf(path, sizeof path, "items[%zu]", i);
  if (json_is_string(src) || json_is_integer(src)) {
    json_incref(src);
    if (!(rc = norm(&src, K_ID, tname, path, err))) json_object_set_new(l, "id", src);
    return rc;
  }
  if (!json_is_object(src)) return mistyped(err, tname, path, "an object", src);
  snprintf(path, sizeof path, "items[%zu].id", i);
  if ((rc = take_into(&li, F_LINE_ID, l, path, tname, err))) return rc;
  if (!json_object_get(l, "id"))
    return fail(err, TAILOR_EFIELD, path, "%s: missing field '%s' (or 'item_id', 'product_id', 'sku')",
                tname, path);
  snprintf(path, sizeof path, "items[%zu].price", i);
  if ((rc = take_into(&li, F_PRICE, l, path, tname, err))) return rc;
  snprintf(path, sizeof path, "items[%zu].quantity", i);
  if ((rc = take_into(&li, F_QUANTITY, l, path, tname, err))) return rc;
  json_object_update_missing(l, src);
  return TAILOR_OK;
}

/*
** The product lines: "items" (or "products"), or else the one "item" with
** its "price" and "quantity".  One line of an event that is not multi-line
** becomes "item", "price", "quantity" (the line's other keys go to props);
** otherwise "items" holds the lines, and single-item types also get "item".
*/
static int take_lines(input *in, unsigned req, json_t *doc, json_t *props, size_t max_lines,
                      const char *tname, tailor_error *err) {
  json_t *item = take(in, fields[F_ITEM].names, NULL);
  json_t *arr = take(in, fields[F_ITEMS].names, NULL);
  json_t *lines = json_array(), *l;
  size_t n = json_array_size(arr);
  int rc = TAILOR_OK, from_items = n > 0;

  if (item) rc = norm(&item, K_ID, tname, "item", err);
  if (!rc && arr) rc = norm(&arr, K_ARRAY, tname, "items", err);
  if (!rc && n > max_lines)
    rc = fail(err, TAILOR_ETOOBIG, "items", "%s: %zu product lines, more than the limit of %zu",
              tname, n, max_lines);
  for (size_t i = 0; !rc && i < n; i++) rc = take_line(json_array_get(arr, i), i, lines, tname, err);
  if (!rc && !n && item) {
    json_array_append_new(lines, l = json_object());
    json_object_set(l, "id", item);
    if (!(rc = take_into(in, F_PRICE, l, "price", tname, err)))
      rc = take_into(in, F_QUANTITY, l, "quantity", tname, err);
  }
  n = json_array_size(lines);
  if (!rc && n == 1 && !(req & EVF_ITEMS) && !(from_items && item)) {
    static const char *const moved[] = {"id", "price", "quantity"};
    l = json_copy(json_array_get(lines, 0));
    for (size_t i = 0; i < 3; i++) {
      json_t *x = json_object_get(l, moved[i]);
      if (!x) continue;
      json_object_set(doc, i ? moved[i] : "item", x);
      json_object_del(l, moved[i]);
    }
    json_object_update_missing(props, l);
    json_decref(l);
  } else if (!rc && n) {
    if (from_items && item) json_object_set(doc, "item", item);
    else if (req & EVF_ITEM) json_object_set(doc, "item", json_object_get(json_array_get(lines, 0), "id"));
    json_object_set(doc, "items", lines);
  }
  json_decref(item);
  json_decref(arr);
  json_decref(lines);
  return rc;
}

/* "name" is the popup, template or widget.  On other events a "name" is
   something else (Segment's product or page name) and stays in props. */
static int wants_name(int type) {
  return (type_req[type] & EVF_NAME) || type == EV_REC_SHOWN || type == EV_REC_CLICKED;
}

static int micros_time(json_t *v, int64_t *ms);

/* The message id: at the top level only, where Segment puts "messageId"
   and tailor's own format "id" (inside properties an "id" is a product). */
static int take_msg_id(json_t *top, json_t *doc, const char *tname, tailor_error *err) {
  input in = {{top}, 1};
  return take_into(&in, F_MSG, doc, fields[F_MSG].key, tname, err);
}

/* Map the parsed input `root` (which it consumes keys of) onto *out. */
static int build(json_t *root, const ev_limits *lim, json_t **out, tailor_error *err) {
  input in = {{root}, 1};
  json_t *doc = json_object(), *props = json_object(), *v;
  const char *tname, *which = "";
  int type = 0, rc;
  unsigned req;
  int64_t ts = lim->now_ms;

  for (size_t i = 0; i < sizeof nest_names / sizeof *nest_names; i++)
    if (json_is_object(v = json_object_get(root, nest_names[i]))) {
      in.box[in.n++] = json_incref(v);
      json_object_del(root, nest_names[i]);
    }
  if ((rc = take_type(root, &type, err))) goto done;
  tname = type_names[type];
  req = type_req[type];

  if ((v = take(&in, fields[F_TS].names, &which))) {
    char buf[64];
    if (strcmp(which, "timestamp_micros") ? ev_parse_time(v, &ts) : micros_time(v, &ts))
      rc = fail(err, TAILOR_ETIME, "ts",
                "%s: field '%s': cannot read %s as a timestamp (ms since the epoch, or ISO 8601)",
                tname, which, describe(v, buf, sizeof buf));
    json_decref(v);
    if (rc) goto done;
  }
  json_object_set_new(doc, "type", json_string(tname));
  json_object_set_new(doc, "ts", json_integer(ts));
  if ((rc = take_msg_id(root, doc, tname, err))) goto done;
  for (int f = F_CUSTOMER; !rc && f <= F_NAME; f++)
    if (!(f == F_CUSTOMER && (req & EVF_CUSTDOC)) && !(f == F_NAME && !wants_name(type)))
      rc = take_into(&in, f, doc, fields[f].key, tname, err);
  if (!rc && (req & (EVF_ITEMDOC | EVF_CUSTDOC)))
    rc = take_object(&in, req & EVF_ITEMDOC ? F_ITEM : F_CUSTOMER, doc, tname, err);
  else if (!rc)
    rc = take_lines(&in, req, doc, props, lim->max_lines, tname, err);
  for (size_t i = 0; !rc && i < in.n; i++) json_object_update_missing(props, in.box[i]);
  if (!rc && json_object_size(props)) json_object_set(doc, "props", props);
done:
  for (size_t i = 1; i < in.n; i++) json_decref(in.box[i]);
  json_decref(props);
  if (rc) json_decref(doc);
  else *out = doc;
  return rc;
}

static int has(const ev *e, unsigned bit) {
  switch (bit) {
    case EVF_WHO: return e->customer || e->anon || e->session;
    case EVF_CUSTOMER: case EVF_CUSTDOC: return e->customer != NULL;
    case EVF_ANON: return e->anon != NULL;
    case EVF_ORDER: return e->order_id != NULL;
    case EVF_QUERY: return e->query != NULL;
    case EVF_NAME: return e->name != NULL;
    default: return e->n_lines > 0; /* EVF_ITEM, EVF_ITEMS, EVF_ITEMDOC */
  }
}

/*
** The lines of a normalized document: "items", else the single "item"
** (a string with "price"/"quantity" beside it, or item_upsert's catalog
** object, which counts as one line of its own id and price).
*/
static int fill_lines(ev *e, unsigned req, tailor_error *err) {
  json_t *items = json_object_get(e->doc, "items"), *item = json_object_get(e->doc, "item");
  json_t *at = e->doc;
  int catalog = (req & EVF_ITEMDOC) != 0, many = !catalog && json_is_array(items);
  size_t n = many ? json_array_size(items) : 1;
  if (catalog) at = item, item = json_object_get(item, "id"); /* NULL unless an object */
  if (!n || (!many && !json_is_string(item))) return TAILOR_OK;
  if (!(e->lines = calloc(n, sizeof *e->lines)))
    return fail(err, TAILOR_ENOMEM, "", "%s: out of memory for %zu lines", type_names[e->type], n);
  for (size_t i = 0; i < n; i++) {
    json_t *l = many ? json_array_get(items, i) : at;
    json_t *q = catalog ? NULL : json_object_get(l, "quantity");
    const char *id = json_string_value(many ? json_object_get(l, "id") : item);
    if (!id)
      return fail(err, TAILOR_EFIELD, "items", "%s: line %zu of 'items' has no string 'id'",
                  type_names[e->type], i);
    e->lines[i] = (ev_line){id, json_number_value(json_object_get(l, "price")),
                            q ? json_number_value(q) : 1};
    e->n_lines++;
  }
  return TAILOR_OK;
}

/* Set the typed fields of `e` from e->doc and check its type's needs. */
static int fill(ev *e, tailor_error *err) {
  json_t *d = e->doc, *v;
  const char *t = json_string_value(json_object_get(d, "type"));
  int type = -1, rc;
  unsigned req;
  for (int i = 0; t && i < EV_TYPE_COUNT; i++)
    if (!strcmp(t, type_names[i])) type = i;
  if (type < 0) return fail(err, TAILOR_EFIELD, "type", "not a normalized event: no tailor 'type'");
  e->type = (ev_type)type;
  req = type_req[type];
  if (!json_is_integer(v = json_object_get(d, "ts")))
    return fail(err, TAILOR_EFIELD, "ts", "%s: not a normalized event: no integer 'ts'", t);
  e->ts = json_integer_value(v);

  struct { const char *key; const char **dst; } strs[] = {
      {"customer", &e->customer}, {"anon", &e->anon},   {"session", &e->session},
      {"order_id", &e->order_id}, {"query", &e->query}, {"name", &e->name},
      {"currency", &e->currency}, {"message_id", &e->msg_id},
  };
  for (size_t i = (req & EVF_CUSTDOC) ? 1 : 0; i < sizeof strs / sizeof *strs; i++) {
    if (!(v = json_object_get(d, strs[i].key))) continue;
    if (!json_is_string(v)) return mistyped(err, t, strs[i].key, "a string", v);
    *strs[i].dst = json_string_value(v);
  }
  if (req & EVF_CUSTDOC)
    e->customer = json_string_value(json_object_get(json_object_get(d, "customer"), "id"));
  if ((rc = fill_lines(e, req, err))) return rc;
  if ((v = json_object_get(d, "revenue")) && !json_is_number(v))
    return mistyped(err, t, "revenue", "a number", v);
  e->revenue = json_number_value(v);
  for (size_t i = 0; !v && (req & EVF_ORDER) && i < e->n_lines; i++)
    e->revenue += e->lines[i].price * e->lines[i].quantity;

  for (size_t i = 0; i < sizeof needs / sizeof *needs; i++)
    if ((req & needs[i].bit) && !has(e, needs[i].bit))
      return fail(err, TAILOR_EFIELD, needs[i].field, "%s: missing field %s", t, needs[i].what);
  return TAILOR_OK;
}

static int64_t clock_ms(void) {
  struct timespec now;
  if (timespec_get(&now, TIME_UTC) != TIME_UTC) return 0;
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void limits_fill(const ev_limits *lim, ev_limits *l) {
  *l = lim ? *lim : (ev_limits){0, 0, 0};
  if (!l->max_bytes) l->max_bytes = EV_DEFAULT_MAX_BYTES;
  if (!l->max_lines) l->max_lines = EV_DEFAULT_MAX_LINES;
  if (!l->now_ms) l->now_ms = clock_ms(); /* zeroed limits: now is now */
}

int ev_parse(const char *text, size_t len, const ev_limits *lim, ev *out, tailor_error *err) {
  ev_limits l;
  json_error_t je;
  json_t *root;
  size_t bad;
  int rc;

  memset(out, 0, sizeof *out);
  reset(err);
  limits_fill(lim, &l);
  if (!text) return fail(err, TAILOR_EINVAL, "", "no event text");
  if (len > l.max_bytes)
    return fail(err, TAILOR_ETOOBIG, "", "event is %zu bytes, more than the limit of %zu bytes",
                len, l.max_bytes);
  /* jansson checks UTF-8 too, but cannot say where the bad byte is. */
  if (!ev_utf8_valid(text, len, &bad))
    return fail(err, TAILOR_EUTF8, "", "invalid UTF-8 at byte %zu", bad);
  if (util_json_depth(text, len) > UTIL_MAX_JSON_DEPTH)
    return fail(err, TAILOR_EPARSE, "", "JSON nested deeper than %d levels",
                UTIL_MAX_JSON_DEPTH);
  if (!(root = json_loadb(text, len, 0, &je)))
    return fail(err, TAILOR_EPARSE, "", "malformed JSON at line %d, column %d: %s", je.line,
                je.column, je.text);
  rc = ev_from_json(root, &l, out, err);
  json_decref(root);
  return rc;
}

int ev_from_json(json_t *root, const ev_limits *lim, ev *out, tailor_error *err) {
  ev_limits l;
  json_t *doc = NULL;
  int rc;

  memset(out, 0, sizeof *out);
  reset(err);
  limits_fill(lim, &l);
  if (!json_is_object(root)) {
    char buf[64];
    return fail(err, TAILOR_EPARSE, "", "an event must be a JSON object, found %s",
                describe(root, buf, sizeof buf));
  }
  if ((rc = build(root, &l, &doc, err))) return rc;
  rc = ev_from_doc(doc, out, err);
  json_decref(doc);
  /* Keep an order's derived revenue in the stored document, for readers of
     the store that do not go through fill(). */
  if (!rc && (type_req[out->type] & EVF_ORDER) && out->n_lines &&
      !json_object_get(out->doc, "revenue"))
    json_object_set_new(out->doc, "revenue", json_real(out->revenue));
  return rc;
}

int ev_from_doc(json_t *doc, ev *out, tailor_error *err) {
  int rc;
  memset(out, 0, sizeof *out);
  reset(err);
  if (!json_is_object(doc))
    return fail(err, TAILOR_EFIELD, "", "not a normalized event: not a JSON object");
  out->doc = json_incref(doc);
  if ((rc = fill(out, err))) ev_clear(out);
  return rc;
}

void ev_clear(ev *e) {
  if (!e) return;
  free(e->lines);
  json_decref(e->doc);
  memset(e, 0, sizeof *e);
}

const char *ev_type_name(ev_type t) {
  return (unsigned)t < EV_TYPE_COUNT ? type_names[t] : NULL;
}

/* ASCII case-insensitive equality: storefronts are loose with case. */
static int same_name(const char *a, const char *b) {
  for (; *a && *b; a++, b++) {
    int x = *a >= 'A' && *a <= 'Z' ? *a + 32 : *a, y = *b >= 'A' && *b <= 'Z' ? *b + 32 : *b;
    if (x != y) return 0;
  }
  return *a == *b;
}

int ev_type_lookup(const char *name) {
  if (!name) return -1;
  for (int i = 0; i < EV_TYPE_COUNT; i++)
    if (same_name(name, type_names[i])) return i;
  for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
    if (same_name(name, aliases[i].name)) return (int)aliases[i].type;
  return -1;
}

/*
** Timestamps.  UTC is computed here, not with timegm()/mktime(), so the
** result does not depend on the process's TZ or locale.
*/

/* A JSON number, or a string of digits only. */
static int time_number(const json_t *v, double *x) {
  const char *s = json_string_value(v);
  size_t n = s ? strlen(s) : 0;
  if (json_is_number(v)) {
    *x = json_number_value(v);
    return 0;
  }
  if (!n || n > 18 || strspn(s, "0123456789") != n) return -1;
  *x = strtod(s, NULL);
  return 0;
}

static int ms_from(double x, int64_t *ms) {
  if (!(x > -EV_MAX_MS && x < EV_MAX_MS)) return -1; /* also NaN */
  *ms = (int64_t)floor(x);
  return 0;
}

/* GA4's timestamp_micros: always microseconds, whatever the size. */
static int micros_time(json_t *v, int64_t *ms) {
  double x;
  return time_number(v, &x) ? -1 : ms_from(x / 1000, ms);
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian): H. Hinnant's
   days_from_civil. */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* Read exactly `n` digits. */
static int digits(const char **s, int n, int *out) {
  *out = 0;
  for (int i = 0; i < n; i++, (*s)++) {
    if (**s < '0' || **s > '9') return -1;
    *out = *out * 10 + (**s - '0');
  }
  return 0;
}

/* ISO 8601 / RFC 3339: YYYY-MM-DD[(T| )HH:MM[:SS[.frac]][Z|+HH:MM|+HHMM|+HH]].
   Without a zone the time is taken as UTC. */
static int iso_time(const char *s, int64_t *ms) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, off = 0;
  if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' || digits(&s, 2, &d))
    return -1;
  if (mo < 1 || mo > 12 || d < 1 ||
      d > mdays[mo - 1] + (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
    return -1;
  if (*s == 'T' || *s == 't' || *s == ' ') {
    s++;
    if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi)) return -1;
    if (*s == ':') {
      s++;
      if (digits(&s, 2, &sec)) return -1;
    }
    if (*s == '.' || *s == ',') {
      int n = 0, scale = 1000;
      for (s++; *s >= '0' && *s <= '9'; s++, n++)
        if (n < 3) frac = frac * 10 + (*s - '0'), scale /= 10;
      if (!n) return -1;
      frac *= scale; /* milliseconds; further digits are truncated */
    }
    if (h > 23 || mi > 59 || sec > 60) return -1; /* 60: a leap second */
    if (*s == 'Z' || *s == 'z') {
      s++;
    } else if (*s == '+' || *s == '-') {
      int sign = *s++ == '-' ? -1 : 1, oh, om = 0;
      if (digits(&s, 2, &oh)) return -1;
      if (*s == ':') {
        s++;
        if (digits(&s, 2, &om)) return -1;
      } else if (*s && digits(&s, 2, &om)) {
        return -1;
      }
      if (oh > 23 || om > 59) return -1;
      off = sign * (oh * 60 + om);
    }
  }
  if (*s) return -1;
  *ms = (((days_from_civil(y, mo, d) * 24 + h) * 60 + mi - off) * 60 + sec) * 1000 + frac;
  return 0;
}

int ev_parse_time(json_t *v, int64_t *ms) {
  double x;
  if (!time_number(v, &x)) return ms_from(fabs(x) < 1e11 ? x * 1000 : x, ms);
  return json_is_string(v) ? iso_time(json_string_value(v), ms) : -1;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
   U+10FFFF.  The ranges of the second byte do all three. */
int ev_utf8_valid(const char *s, size_t len, size_t *bad_at) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    unsigned c = p[i], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c >= 0xE0 && c <= 0xEF) n = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) n = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else break;
    if (len - i <= n || p[i + 1] < lo || p[i + 1] > hi) break;
    if ((n > 1 && (p[i + 2] & 0xC0) != 0x80) || (n > 2 && (p[i + 3] & 0xC0) != 0x80)) break;
    i += n + 1;
  }
  if (i < len && bad_at) *bad_at = i;
  return i == len;
}
