/*
** event.c: from the JSON that storefronts send to tailor's normalized events.
**
** One pass over the input's keys (the top level, then Segment's
** properties, GA4's params or ecommerce) sorts each into the field it
** names or into props; the fields are then checked and typed in a fixed
** order, so the first error is always the same one.  No document is built
** on the way: ev_body() writes the normalized text from the fields when
** the store asks, and a replay reads that text with this same parser.
**
** Policies: JSON null is the same as absent; integer ids become strings;
** input keys that map to nothing are kept under "props", never dropped,
** but a "customer_token": a credential (server.md), the request's and
** never an event's, so never stored.
*/
#include "core/event.h"
#include "core/buf.h"
#include "core/flat.h"
#include "core/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The longest id (item, customer, order, session, ...) accepted, in bytes. */
#define EV_MAX_ID_BYTES DEF_MAX_ID_BYTES

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
** Every event of Segment's e-commerce spec v2 and every GA4 recommended
** e-commerce event is here.  Those tailor has no type for are `other`
** events under the name they were sent with: kept, counted by name and
** handed to on_event, read by no index.  In particular "Product Clicked"
** and "Product List Viewed" (GA4's select_item and view_item_list) are not
** rec_clicked/rec_shown: they describe any product list on a site (a
** category page, a search result), not tailor's recommendation widgets,
** and counting them so would skew the click-through rates strategies
** learn from.  tailor's widgets send rec_shown/rec_clicked themselves.
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
    {"Product List Viewed", EV_OTHER},
    {"Product List Filtered", EV_OTHER},
    {"Product Clicked", EV_OTHER},
    {"Product Shared", EV_OTHER},
    {"Product Reviewed", EV_OTHER},
    {"Product Added to Wishlist", EV_OTHER},
    {"Product Removed from Wishlist", EV_OTHER},
    {"Wishlist Product Added to Cart", EV_OTHER},
    {"Cart Viewed", EV_OTHER},
    {"Cart Shared", EV_OTHER},
    {"Checkout Step Viewed", EV_OTHER},
    {"Checkout Step Completed", EV_OTHER},
    {"Payment Info Entered", EV_OTHER},
    {"Order Updated", EV_OTHER},
    {"Order Cancelled", EV_OTHER},
    {"Coupon Entered", EV_OTHER},
    {"Coupon Applied", EV_OTHER},
    {"Coupon Denied", EV_OTHER},
    {"Coupon Removed", EV_OTHER},
    {"Promotion Viewed", EV_OTHER},
    {"Promotion Clicked", EV_OTHER},
    /* GA4 recommended events (add_to_cart, purchase, refund, search, ... are
       wire names). */
    {"view_item", EV_VIEW},
    {"begin_checkout", EV_CHECKOUT},
    {"sign_up", EV_SIGNUP},
    {"login", EV_IDENTIFY}, /* valid only with both user_id and client_id */
    {"view_item_list", EV_OTHER},
    {"select_item", EV_OTHER},
    {"view_cart", EV_OTHER},
    {"add_to_wishlist", EV_OTHER},
    {"add_shipping_info", EV_OTHER},
    {"add_payment_info", EV_OTHER},
    {"view_promotion", EV_OTHER},
    {"select_promotion", EV_OTHER},
};

/*
** Where each field comes from: its input names in order of preference.  A
** name is looked for at the top level first, then inside the objects of
** nest_names.  `where`: 0 anywhere, 1 nested only (a top-level "id" is a
** message id, not a product), 2 top level only.
*/
enum { K_ID, K_TEXT, K_AMOUNT, K_COUNT, K_OBJ, K_ARRAY, K_TIME };

enum {
  F_CUSTOMER, F_ANON, F_SESSION, F_ORDER, F_REVENUE, F_CURRENCY, F_QUERY,
  F_NAME, F_ITEM, F_ITEMS, F_PRICE, F_QUANTITY, F_TS, F_MSG, F_COUNT_
};

static const struct field {
  const char *key; /* the name in the normalized text, and in messages */
  int kind;        /* K_*: what its value must be */
} fields[F_COUNT_] = {
    [F_CUSTOMER] = {"customer", K_ID}, [F_ANON] = {"anon", K_ID},
    [F_SESSION] = {"session", K_ID},   [F_ORDER] = {"order_id", K_ID},
    [F_REVENUE] = {"revenue", K_AMOUNT}, [F_CURRENCY] = {"currency", K_TEXT},
    [F_QUERY] = {"query", K_TEXT},     [F_NAME] = {"name", K_ID},
    [F_ITEM] = {"item", K_ID},         [F_ITEMS] = {"items", K_ARRAY},
    [F_PRICE] = {"price", K_AMOUNT},   [F_QUANTITY] = {"quantity", K_COUNT},
    [F_TS] = {"ts", K_TIME},           [F_MSG] = {"message_id", K_ID},
};

/* Every input name, its field, its rank among the field's names. */
static const struct name {
  const char *name;
  unsigned char field, rank, where;
} names[] = {
    {"customer", F_CUSTOMER, 0, 0}, {"userId", F_CUSTOMER, 1, 0},
    {"user_id", F_CUSTOMER, 2, 0}, {"customer_id", F_CUSTOMER, 3, 0},
    {"anon", F_ANON, 0, 0}, {"anonymousId", F_ANON, 1, 0}, {"anonymous_id", F_ANON, 2, 0},
    {"client_id", F_ANON, 3, 0},
    {"session", F_SESSION, 0, 0}, {"session_id", F_SESSION, 1, 0}, {"sessionId", F_SESSION, 2, 0},
    {"ga_session_id", F_SESSION, 3, 0},
    {"order_id", F_ORDER, 0, 0}, {"transaction_id", F_ORDER, 1, 0}, {"orderId", F_ORDER, 2, 0},
    {"revenue", F_REVENUE, 0, 0}, {"value", F_REVENUE, 1, 0}, {"total", F_REVENUE, 2, 0},
    {"currency", F_CURRENCY, 0, 0},
    {"query", F_QUERY, 0, 0}, {"search_term", F_QUERY, 1, 0},
    {"name", F_NAME, 0, 0}, {"popup", F_NAME, 1, 0}, {"template", F_NAME, 2, 0},
    {"widget", F_NAME, 3, 0},
    {"item", F_ITEM, 0, 0}, {"product_id", F_ITEM, 1, 0}, {"item_id", F_ITEM, 2, 0},
    {"sku", F_ITEM, 3, 0}, {"id", F_ITEM, 4, 1},
    {"items", F_ITEMS, 0, 0}, {"products", F_ITEMS, 1, 0},
    {"price", F_PRICE, 0, 0}, {"quantity", F_QUANTITY, 0, 0},
    {"ts", F_TS, 0, 0}, {"timestamp", F_TS, 1, 0}, {"originalTimestamp", F_TS, 2, 0},
    {"sentAt", F_TS, 3, 0}, {"timestamp_micros", F_TS, 4, 0},
    {"message_id", F_MSG, 0, 2}, {"messageId", F_MSG, 1, 2}, {"id", F_MSG, 2, 2},
};

/* The names of a line's id, in order of preference. */
static const char *const line_id_names[] = {"id", "item_id", "product_id", "sku"};

/* Segment's properties, GA4's params and ecommerce.  And tailor's own
   "props", so that a normalized text parses back into itself: its keys
   stay props, never fields (a stored event's fields are all at its top
   level; a key that lost to another name of its field, or that the
   server's screening of a storefront's customer left behind, must not
   become that field when the log is read again). */
static const char *const nest_names[] = {"properties", "params", "ecommerce", "props"};
#define EV_BOXES (1 + sizeof nest_names / sizeof *nest_names)

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
  return util_fail(err, TAILOR_EFIELD, field, "%s: field '%s': expected %s, found %s", tname, field,
                   want, describe(v, buf, sizeof buf));
}

/* A consent's purposes (props), and a profile's consent, are true or false:
   "false" as a string would be acknowledged and then mean nothing. */
static int check_purposes(const ev *e, tailor_error *err) {
  static const char *const purposes[] = {"analytics", "personalization", "marketing",
                                         "email", "sms"};
  const json_t *box = e->type == EV_CONSENT ? e->props
                      : e->type == EV_CUSTOMER_UPSERT ? json_object_get(e->object, "consent")
                                                      : NULL;
  if (!box) return TAILOR_OK;
  const char *tname = type_names[e->type];
  const char *in = e->type == EV_CONSENT ? "props" : "consent";
  if (!json_is_object(box)) return mistyped(err, tname, in, "an object", box);
  /* A consent event's own email (the double opt-in's) is a flag as well. */
  for (size_t i = 0; i < sizeof purposes / sizeof *purposes; i++) {
    const json_t *v = json_object_get(box, purposes[i]);
    if (v && !json_is_boolean(v)) {
      char field[32];
      snprintf(field, sizeof field, "%s.%s", in, purposes[i]);
      return mistyped(err, tname, field, "true or false", v);
    }
  }
  return TAILOR_OK;
}

/* A catalog item's stock says sold out only as `"in_stock": false` or a
   `stock` of 0 or less: "false" as a string, or 0, would list the item as
   in stock, so a sender's are refused.  The log's reader takes what was
   accepted before this check, as it was applied then. */
static int check_stock(const ev *e, const ev_limits *lim, tailor_error *err) {
  if (e->type != EV_ITEM_UPSERT || lim->internal) return TAILOR_OK;
  const json_t *v = json_object_get(e->object, "in_stock");
  if (v && !json_is_boolean(v))
    return mistyped(err, type_names[e->type], "item.in_stock", "true or false", v);
  v = json_object_get(e->object, "stock");
  if (v && !json_is_number(v))
    return mistyped(err, type_names[e->type], "item.stock", "a number", v);
  return TAILOR_OK;
}

/*
** Check `v` against `kind`.  An integer id becomes a string in its parent
** (`obj` under `key`, or `arr` at `at`), so that ids are always text and
** point into the input; *v is then the new string.
*/
static int norm(json_t **v, int kind, json_t *obj, const char *key, json_t *arr, size_t at,
                const char *tname, const char *field, tailor_error *err) {
  char range[48];
  json_t *x = *v;
  const char *want = NULL;
  char buf[32];
  switch (kind) {
    case K_ID:
      if (json_is_integer(x)) {
        if (!(*v = util_id_text(arr ? arr : obj, arr ? NULL : key, at, x)))
          return util_fail(err, TAILOR_ENOMEM, field, "%s: out of memory", tname);
        return TAILOR_OK;
      }
      if (!json_is_string(x) || !json_string_length(x))
        want = "a non-empty string or integer id";
      else if (json_string_length(x) > EV_MAX_ID_BYTES) {
        snprintf(buf, sizeof buf, "an id of at most %d bytes", EV_MAX_ID_BYTES);
        want = buf;
      }
      break;
    case K_TEXT: if (!json_is_string(x) || !json_string_length(x)) want = "a non-empty string"; break;
    /* Money: a price or a revenue is a number from 0 up, never -1 or inf. */
    /* Every number has a sane range (core/defaults.h): an order of 1e300
       or a price of -1 is a mistake or an attack, never a sale. */
    case K_AMOUNT:
      if (!json_is_number(x) || !(json_number_value(x) >= 0) || json_number_value(x) > DEF_MAX_AMOUNT)
        snprintf(range, sizeof range, "a number from 0 to %ld", (long)DEF_MAX_AMOUNT), want = range;
      break;
    case K_COUNT:
      if (!json_is_number(x) || !(json_number_value(x) >= 0) || json_number_value(x) > DEF_MAX_QUANTITY)
        snprintf(range, sizeof range, "a number from 0 to %ld", (long)DEF_MAX_QUANTITY), want = range;
      break;
    case K_OBJ: if (!json_is_object(x)) want = "an object"; break;
    case K_ARRAY: if (!json_is_array(x)) want = "an array"; break;
  }
  return want ? mistyped(err, tname, field, want, x) : TAILOR_OK;
}

static int same_name(const char *a, const char *b);

/* The types that are tailor's records rather than something a visitor
   did: the catalog, profiles, links of identities, erasure. */
static int own_record(int type) {
  return type == EV_ITEM_UPSERT || type == EV_ITEM_DELETE || type == EV_CUSTOMER_UPSERT ||
         type == EV_IDENTIFY || type == EV_ERASE;
}

/*
** The event's type: tailor's (and Segment's) "type", for a Segment "track"
** call its "event", the dataLayer's "event", or GA4's "name".  *consumed
** receives the keys that said it.
*/
static int take_type(json_t *top, int keep_unknown, int *type, json_t **named,
                     const char *consumed[2], tailor_error *err) {
  const char *key = "type";
  json_t *v = json_object_get(top, "type");
  consumed[0] = consumed[1] = NULL;
  if (json_is_string(v) && !strcmp(json_string_value(v), "track")) {
    consumed[1] = "type";
    key = "event";
  } else if (!v) {
    key = json_object_get(top, "event") ? "event" : "name";
  }
  if (!(v = json_object_get(top, key)))
    return strcmp(key, "name")
               ? util_fail(err, TAILOR_EFIELD, "event", "track: missing field 'event'")
               : util_fail(err, TAILOR_EFIELD, "type", "missing field 'type' (or 'event', 'name')");
  if (!json_is_string(v)) return mistyped(err, "event", key, "a string", v);
  *named = NULL;
  if ((*type = ev_type_lookup(json_string_value(v))) < 0 && !keep_unknown)
    return util_fail(err, TAILOR_ETYPE, key, "unknown event type '%s'", json_string_value(v));
  /* A client's event (Segment's track, GA4's name) named as one of
     tailor's own records is the client's name, not that record: a track
     call "customer_upsert" writes no profile, whatever its properties.
     (Their aliases, GA4's "login" for identify, still map.) */
  if (keep_unknown && strcmp(key, "type") && *type >= 0 && own_record(*type) &&
      same_name(json_string_value(v), type_names[*type]))
    *type = -1;
  /* An `other` event is named by what the sender called it, unless it
     says "other" itself (then "name" names it, as in the stored text). */
  if (*type < 0 || (*type == EV_OTHER && !same_name(json_string_value(v), "other"))) {
    *type = EV_OTHER;
    *named = v;
  }
  consumed[0] = key;
  return TAILOR_OK;
}

/* "name" is the popup, template or widget.  On other events a "name" is
   something else (Segment's product or page name) and stays in props. */
static int wants_name(int type) {
  return (type_req[type] & EVF_NAME) || type == EV_REC_SHOWN || type == EV_REC_CLICKED;
}

/* The entry of `key` in names[] for box `b`, or NULL. */
static const struct name *name_of(const char *key, size_t b) {
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (names[i].name[0] == key[0] && !strcmp(names[i].name, key) &&
        !(names[i].where == 1 && b == 0) && !(names[i].where == 2 && b != 0))
      return &names[i];
  return NULL;
}

/* The input being mapped: the boxes that hold fields, and for each field
   the value that wins (first box, then first name). */
typedef struct pick {
  json_t *v;       /* NULL: not given */
  json_t *box;
  const char *key; /* the input's name for it */
  size_t b, rank;
  int used;        /* taken into the event (else it goes to props) */
} pick;

typedef struct input {
  json_t *box[EV_BOXES];
  size_t n;
  size_t props_box;        /* the index of tailor's "props" among box, or 0 */
  const char *consumed[2]; /* the type's keys */
  pick p[F_COUNT_];
  size_t left;     /* keys that will not be taken: props to build */
  int type;
  json_t *named;   /* an `other` event's name, given as its type; its
                      "name" keys are then the sender's, kept in props */
} input;

/* Whether a top-level key holds one of the nested objects read as boxes. */
static int is_box(const char *key, const json_t *v) {
  if (!json_is_object(v)) return 0;
  for (size_t i = 0; i < sizeof nest_names / sizeof *nest_names; i++)
    if (!strcmp(key, nest_names[i])) return 1;
  return 0;
}

/* Sort every key of every box: a field's best value, or a leftover. */
static void scan(input *in) {
  for (size_t b = 0; b < in->n; b++) {
    const char *k;
    json_t *v;
    json_object_foreach(in->box[b], k, v) {
      if (!b && ((in->consumed[0] && !strcmp(k, in->consumed[0])) ||
                 (in->consumed[1] && !strcmp(k, in->consumed[1]))))
        continue;
      if (!b && is_box(k, v)) continue;
      const struct name *nm = b && b == in->props_box ? NULL : name_of(k, b);
      if (nm && nm->field == F_NAME && (!wants_name(in->type) || in->named)) nm = NULL;
      if (!nm) {
        in->left++;
        continue;
      }
      if (json_is_null(v)) continue; /* null is absent (Segment's "userId": null) */
      pick *p = &in->p[nm->field];
      if (p->v && (p->b < b || (p->b == b && p->rank <= nm->rank))) {
        in->left++;
        continue;
      }
      if (p->v) in->left++;
      *p = (pick){v, in->box[b], k, b, nm->rank, 0};
    }
  }
}

/* Whether `v` (a value under `key` in box `b`) went into the event. */
static int taken(const input *in, size_t b, const char *key, json_t *v) {
  if (!b && ((in->consumed[0] && !strcmp(key, in->consumed[0])) ||
             (in->consumed[1] && !strcmp(key, in->consumed[1]))))
    return 1;
  if (!b && is_box(key, v)) return 1;
  if (json_is_null(v)) {
    const struct name *nm = name_of(key, b);
    return nm && !(nm->field == F_NAME && (!wants_name(in->type) || in->named));
  }
  for (int f = 0; f < F_COUNT_; f++)
    if (in->p[f].used && in->p[f].v == v) return 1;
  return 0;
}

/* Take field `f`: check it and mark it used; NULL when not given. */
static int take(input *in, int f, const char *field, json_t **out, tailor_error *err) {
  pick *p = &in->p[f];
  *out = NULL;
  if (!p->v) return TAILOR_OK;
  int rc = norm(&p->v, fields[f].kind, p->box, p->key, NULL, 0, type_names[in->type], field, err);
  if (rc) return rc;
  p->used = 1;
  *out = p->v;
  return TAILOR_OK;
}

static int take_str(input *in, int f, const char **out, tailor_error *err) {
  json_t *v;
  int rc = take(in, f, fields[f].key, &v, err);
  if (!rc && v) *out = json_string_value(v);
  return rc;
}

static int64_t clock_ms(void);
static int micros_time(json_t *v, int64_t *ms);

/* The line at index i of "items": {id, price, quantity} and whatever else
   the line carried (name, brand, category, variant...).  A bare id is a
   line. */
static int take_line(json_t *arr, size_t i, ev_line *l, const char *tname, tailor_error *err) {
  char path[48];
  json_t *src = json_array_get(arr, i), *id = NULL;
  const char *id_key = NULL;
  size_t id_rank = 0, rest = 0;
  int rc;
  l->quantity = 1;
  snprintf(path, sizeof path, "items[%zu]", i);
  if (json_is_string(src) || json_is_integer(src)) {
    if ((rc = norm(&src, K_ID, NULL, NULL, arr, i, tname, path, err))) return rc;
    l->item = json_string_value(src);
    return TAILOR_OK;
  }
  if (!json_is_object(src)) return mistyped(err, tname, path, "an object", src);
  const char *k;
  json_t *v, *price = NULL, *qty = NULL;
  json_object_foreach(src, k, v) {
    size_t r = 0;
    while (r < 4 && strcmp(k, line_id_names[r])) r++;
    if (r < 4 && !json_is_null(v)) {
      if (id) rest++;
      if (!id || r < id_rank) id = v, id_key = k, id_rank = r;
      else if (id != v) continue;
    } else if (!strcmp(k, "price") && !json_is_null(v)) {
      price = v;
    } else if (!strcmp(k, "quantity") && !json_is_null(v)) {
      qty = v;
    } else if (r == 4) {
      rest++;
    }
  }
  snprintf(path, sizeof path, "items[%zu].id", i);
  if (!id)
    return util_fail(err, TAILOR_EFIELD, path,
                     "%s: missing field '%s' (or 'item_id', 'product_id', 'sku')", tname, path);
  if ((rc = norm(&id, K_ID, src, id_key, NULL, 0, tname, path, err))) return rc;
  l->item = json_string_value(id);
  snprintf(path, sizeof path, "items[%zu].price", i);
  if (price && (rc = norm(&price, K_AMOUNT, NULL, NULL, NULL, 0, tname, path, err))) return rc;
  snprintf(path, sizeof path, "items[%zu].quantity", i);
  if (qty && (rc = norm(&qty, K_COUNT, NULL, NULL, NULL, 0, tname, path, err))) return rc;
  if (price) l->price = json_number_value(price), l->has_price = 1;
  if (qty) l->quantity = json_number_value(qty), l->has_quantity = 1;
  if (!rest) return TAILOR_OK;
  if (!(l->extra = json_object()))
    return util_fail(err, TAILOR_ENOMEM, "items", "%s: out of memory", tname);
  json_object_foreach(src, k, v)
    if (v != id && v != price && v != qty && !json_is_null(v)) json_object_set(l->extra, k, v);
  return TAILOR_OK;
}

/*
** The product lines: "items" (or "products"), or else the one "item" with
** its "price" and "quantity".  One line of an event that is not multi-line
** is written as "item", "price", "quantity" (its other keys go to props);
** otherwise "items" holds the lines, and single-item types also name
** "item".
*/
static int take_lines(input *in, ev *e, size_t max_lines, tailor_error *err) {
  const char *tname = type_names[in->type];
  unsigned req = type_req[in->type];
  json_t *item, *arr;
  int rc;
  if ((rc = take(in, F_ITEM, "item", &item, err)) || (rc = take(in, F_ITEMS, "items", &arr, err)))
    return rc;
  size_t n = json_array_size(arr);
  if (n > max_lines)
    return util_fail(err, TAILOR_ETOOBIG, "items", "%s: %zu product lines, more than the limit of %zu",
                     tname, n, max_lines);
  if (!n && !item) return TAILOR_OK;
  if (!(e->lines = calloc(n ? n : 1, sizeof *e->lines)))
    return util_fail(err, TAILOR_ENOMEM, "items", "%s: out of memory for %zu lines", tname, n);
  for (size_t i = 0; i < n; i++, e->n_lines++)
    if ((rc = take_line(arr, i, &e->lines[i], tname, err))) return rc;
  if (!n) {
    json_t *price, *qty;
    ev_line *l = &e->lines[e->n_lines++];
    *l = (ev_line){json_string_value(item), 0, 1, NULL, 0, 0};
    if ((rc = take(in, F_PRICE, "price", &price, err)) ||
        (rc = take(in, F_QUANTITY, "quantity", &qty, err)))
      return rc;
    if (price) l->price = json_number_value(price), l->has_price = 1;
    if (qty) l->quantity = json_number_value(qty), l->has_quantity = 1;
  }
  if (e->n_lines == 1 && !(req & EVF_ITEMS) && !(n && item)) {
    e->one_line = 1;
    /* The line's other keys join props, before anything else there. */
    if (e->lines[0].extra) {
      e->props = e->lines[0].extra;
      e->lines[0].extra = NULL;
    }
  } else if (n && item) {
    e->item = json_string_value(item);
  } else if (req & EVF_ITEM) {
    e->item = e->lines[0].item;
  }
  return TAILOR_OK;
}

/* item_upsert's catalog object or customer_upsert's profile: an object
   keyed by its "id".  Its one line (a catalog item) is its id and price. */
static int take_object(input *in, ev *e, tailor_error *err) {
  int catalog = (type_req[in->type] & EVF_ITEMDOC) != 0, f = catalog ? F_ITEM : F_CUSTOMER;
  const char *tname = type_names[in->type], *key = fields[f].key;
  pick *p = &in->p[f];
  char path[16];
  int rc;
  if (!p->v) return TAILOR_OK; /* the needs check says it is missing */
  if (!json_is_object(p->v)) return mistyped(err, tname, key, "an object", p->v);
  p->used = 1;
  snprintf(path, sizeof path, "%s.id", key);
  json_t *id = json_object_get(p->v, "id"), *price = json_object_get(p->v, "price");
  if (!id) return util_fail(err, TAILOR_EFIELD, path, "%s: missing field '%s'", tname, path);
  if ((rc = norm(&id, K_ID, p->v, "id", NULL, 0, tname, path, err))) return rc;
  if (price && (rc = norm(&price, K_AMOUNT, NULL, NULL, NULL, 0, tname, "item.price", err)) &&
      catalog)
    return rc;
  e->object = json_incref(p->v);
  if (!catalog) {
    e->customer = json_string_value(id);
    return TAILOR_OK;
  }
  if (!(e->lines = calloc(1, sizeof *e->lines)))
    return util_fail(err, TAILOR_ENOMEM, "item", "%s: out of memory", tname);
  e->lines[0] = (ev_line){json_string_value(id), json_number_value(price), 1, NULL, price != NULL, 0};
  e->n_lines = 1;
  return TAILOR_OK;
}

/* props' string values as e->attrs, in one block: the array, then each
   key and value with its NUL. */
static int take_attrs(ev *e, tailor_error *err) {
  size_t n = 0, bytes = 0;
  const char *k;
  json_t *v;
  json_object_foreach(e->props, k, v) {
    if (!json_is_string(v) || !json_string_length(v)) continue;
    n++;
    bytes += strlen(k) + json_string_length(v) + 2;
  }
  if (!n) return TAILOR_OK;
  e->attrs = malloc(n * sizeof *e->attrs + bytes);
  if (!e->attrs) return util_fail(err, TAILOR_ENOMEM, "props", "%s: out of memory", type_names[e->type]);
  char *at = (char *)(e->attrs + n);
  json_object_foreach(e->props, k, v) {
    if (!json_is_string(v) || !json_string_length(v)) continue;
    size_t kl = strlen(k) + 1, vl = json_string_length(v) + 1;
    ev_attr *a = &e->attrs[e->n_attrs++];
    a->key = memcpy(at, k, kl);
    a->value = memcpy(at + kl, json_string_value(v), vl);
    at += kl + vl;
  }
  return TAILOR_OK;
}

const char *ev_attr_get(const ev *e, const char *key) {
  for (size_t i = 0; i < e->n_attrs; i++)
    if (!strcmp(e->attrs[i].key, key)) return e->attrs[i].value;
  return NULL;
}

/* A customer_token anywhere in what the event keeps (its props, traits,
   the customer object of a customer_upsert): taken out, never stored. */
static void drop_credentials(json_t *v) {
  /* No depth bound of its own: the parser refused anything deeper than
     its limit (MAX_JSON_DEPTH), so the walk ends, and a bound here would
     keep a token nested past it. */
  if (json_is_array(v)) {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) drop_credentials(x);
    return;
  }
  if (!json_is_object(v)) return;
  json_object_del(v, "customer_token");
  const char *k;
  json_t *x;
  json_object_foreach(v, k, x) if (json_is_object(x) || json_is_array(x))
    drop_credentials(x);
}

/* Whatever the event carried that is not a field, under props: a line's
   extras first, then the top level, then the nested objects in order. */
static int take_props(input *in, ev *e, tailor_error *err) {
  for (size_t b = 0; b < in->n; b++) {
    const char *k;
    json_t *v;
    json_object_foreach(in->box[b], k, v) {
      if (taken(in, b, k, v) || (e->props && json_object_get(e->props, k)) ||
          !strcmp(k, "customer_token"))
        continue;
      if (!e->props && !(e->props = json_object()))
        return util_fail(err, TAILOR_ENOMEM, "props", "%s: out of memory", type_names[in->type]);
      json_object_set(e->props, k, v);
    }
  }
  if (e->props && !json_object_size(e->props)) {
    json_decref(e->props);
    e->props = NULL;
  }
  return take_attrs(e, err);
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

/* Map the input object `root` onto *e. */
static int build(json_t *root, const ev_limits *lim, int keep_unknown, ev *e,
                 tailor_error *err) {
  input in = {{root}, 1, 0, {NULL, NULL}, {{0}}, 0, 0, NULL};
  const char *tname;
  json_t *v;
  int rc;
  unsigned req;

  if ((rc = take_type(root, keep_unknown, &in.type, &in.named, in.consumed, err)))
    return rc;
  e->type = (ev_type)in.type;
  tname = type_names[in.type];
  req = type_req[in.type];
  if ((req & EVF_INTERNAL) && !lim->internal)
    return util_fail(err, TAILOR_ETYPE, "type",
                     "'%s' is tailor's own log event, not one a sender may send "
                     "(to erase a customer: `tailor erase`, or the erase request)", tname);
  for (size_t i = 0; i < sizeof nest_names / sizeof *nest_names; i++)
    if (json_is_object(v = json_object_get(root, nest_names[i]))) {
      if (!strcmp(nest_names[i], "props")) in.props_box = in.n;
      in.box[in.n++] = v;
    }
  scan(&in);

  e->ts = lim->now_ms;
  pick *ts = &in.p[F_TS];
  if (ts->v) {
    char buf[64];
    if (strcmp(ts->key, "timestamp_micros") ? ev_parse_time(ts->v, &e->ts)
                                            : micros_time(ts->v, &e->ts))
      return util_fail(err, TAILOR_ETIME, "ts",
                       "%s: field '%s': cannot read %s as a timestamp (ms since the epoch, or ISO 8601)",
                       tname, ts->key, describe(ts->v, buf, sizeof buf));
    ts->used = 1;
    /* A time from the future would outweigh every real event in the decayed
       counters (and, far enough ahead, zero them): a trusted sender's clock
       may run ahead by the window, no more.  Storefronts never get here with
       their own time (the server stamps theirs). */
    if (lim->max_future_ms > 0 && e->ts > lim->now_ms + lim->max_future_ms)
      return util_fail(err, TAILOR_ETIME, "ts",
                       "%s: field '%s': %lld s ahead of the server's clock, more than the "
                       "%lld s allowed (limits.max_future_ms)",
                       tname, ts->key, (long long)((e->ts - lim->now_ms) / 1000),
                       (long long)(lim->max_future_ms / 1000));
  }
  if ((rc = take_str(&in, F_MSG, &e->msg_id, err))) return rc;
  if (!(req & EVF_CUSTDOC) && (rc = take_str(&in, F_CUSTOMER, &e->customer, err))) return rc;
  if ((rc = take_str(&in, F_ANON, &e->anon, err)) ||
      (rc = take_str(&in, F_SESSION, &e->session, err)) ||
      (rc = take_str(&in, F_ORDER, &e->order_id, err)))
    return rc;
  if ((rc = take(&in, F_REVENUE, "revenue", &v, err))) return rc;
  if (v) e->revenue = json_number_value(v), e->has_revenue = 1;
  if ((rc = take_str(&in, F_CURRENCY, &e->currency, err)) ||
      (rc = take_str(&in, F_QUERY, &e->query, err)) ||
      (rc = take_str(&in, F_NAME, &e->name, err)))
    return rc;
  if (in.named) {
    json_t *named = in.named;
    if ((rc = norm(&named, K_ID, NULL, NULL, NULL, 0, tname, "name", err))) return rc;
    e->name = json_string_value(named);
  }
  rc = (req & (EVF_ITEMDOC | EVF_CUSTDOC)) ? take_object(&in, e, err)
                                           : take_lines(&in, e, lim->max_lines, err);
  if (rc || (rc = take_props(&in, e, err)) || (rc = check_purposes(e, err)) ||
      (rc = check_stock(e, lim, err)))
    return rc;
  drop_credentials(e->props);
  drop_credentials(e->object);
  for (size_t i = 0; i < e->n_lines; i++) drop_credentials(e->lines[i].extra);

  if (!e->has_revenue && (req & EVF_ORDER) && e->n_lines) {
    for (size_t i = 0; i < e->n_lines; i++) e->revenue += e->lines[i].price * e->lines[i].quantity;
    e->has_revenue = 1;
    /* The sum is the revenue the event is stored with, bounded as a given
       one is (it was stored past the bound and then refused on replay). */
    if (!(e->revenue <= DEF_MAX_AMOUNT))
      return util_fail(err, TAILOR_EFIELD, "items",
                       "%s: the lines' prices times quantities sum to more than %ld, the "
                       "largest revenue",
                       tname, (long)DEF_MAX_AMOUNT);
  }
  for (size_t i = 0; i < sizeof needs / sizeof *needs; i++)
    if ((req & needs[i].bit) && !has(e, needs[i].bit))
      return util_fail(err, TAILOR_EFIELD, needs[i].field, "%s: missing field %s", tname, needs[i].what);
  return TAILOR_OK;
}

static int64_t clock_ms(void) {
  struct timespec now;
  if (timespec_get(&now, TIME_UTC) != TIME_UTC) return 0;
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void limits_fill(const ev_limits *lim, ev_limits *l) {
  *l = lim ? *lim : (ev_limits){0, 0, 0, 0, 0, 0};
  if (!l->max_bytes) l->max_bytes = EV_DEFAULT_MAX_BYTES;
  if (!l->max_lines) l->max_lines = EV_DEFAULT_MAX_LINES;
  if (!l->max_depth) l->max_depth = UTIL_MAX_JSON_DEPTH;
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
  if (!text) return util_fail(err, TAILOR_EINVAL, NULL, "no event text");
  if (len > l.max_bytes)
    return util_fail(err, TAILOR_ETOOBIG, NULL, "event is %zu bytes, more than the limit of %zu bytes",
                     len, l.max_bytes);
  int deep = util_json_depth(text, len) > l.max_depth;
  if (!deep && (root = util_json_parse(text, len, &je))) { /* it checked the UTF-8 */
    rc = ev_from_json(root, &l, out, err);
    json_decref(root);
    return rc;
  }
  /* What is wrong, bad UTF-8 first: said here with its byte, which the
     parser cannot say. */
  if (!util_utf8_valid(text, len, &bad))
    return util_fail(err, TAILOR_EUTF8, NULL, "invalid UTF-8 at byte %zu", bad);
  if (deep)
    return util_fail(err, TAILOR_EPARSE, NULL, "JSON nested deeper than %d levels", l.max_depth);
  return util_fail(err, TAILOR_EPARSE, NULL, "malformed JSON at line %d, column %d: %s", je.line,
                   je.column, je.text);
}

static int from_json(json_t *root, const ev_limits *lim, int keep_unknown, ev *out,
                     tailor_error *err);

int ev_from_json(json_t *root, const ev_limits *lim, ev *out, tailor_error *err) {
  return from_json(root, lim, 0, out, err);
}

int ev_from_json_any(json_t *root, const ev_limits *lim, ev *out, tailor_error *err) {
  return from_json(root, lim, 1, out, err);
}

static int from_json(json_t *root, const ev_limits *lim, int keep_unknown, ev *out,
                     tailor_error *err) {
  ev_limits l;
  int rc;
  memset(out, 0, sizeof *out);
  reset(err);
  limits_fill(lim, &l);
  if (!json_is_object(root)) {
    char buf[64];
    return util_fail(err, TAILOR_EPARSE, NULL, "an event must be a JSON object, found %s",
                     describe(root, buf, sizeof buf));
  }
  out->src = json_incref(root);
  if ((rc = build(root, &l, keep_unknown, out, err))) ev_clear(out);
  return rc;
}

/* The members ev_from_flat reads, and the types it makes whole. */
enum { FL_TYPE, FL_TS, FL_CUSTOMER, FL_ANON, FL_SESSION, FL_ITEM, FL_MSG, FL_PRICE, FL_QTY, FL_N };
static const char *const flat_names[FL_N] = {"type", "ts", "customer", "anon", "session",
                                             "item", "message_id", "price", "quantity"};
static const ev_type flat_types[] = {EV_VIEW,     EV_ADD_TO_CART, EV_REMOVE_FROM_CART,
                                     EV_PAGE_VIEW, EV_CHECKOUT,   EV_EXIT_INTENT,
                                     EV_PAGE_HIDDEN};

static int time_from_number(double x, int64_t *ms);

int ev_from_flat(const flat_member *m, size_t n, const ev_limits *lim, ev *out) {
  const flat_member *at[FL_N] = {0};
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < n; i++) {
    int f = 0;
    while (f < FL_N && !flat_key_is(&m[i], flat_names[f])) f++;
    if (f == FL_N) return 0; /* anything else goes to props, or is an alias */
    /* ids and the type are non-empty strings; ts, price and quantity numbers */
    if ((f == FL_TS || f == FL_PRICE || f == FL_QTY) != (m[i].kind == 'n') ||
        (m[i].kind == 's' && (!m[i].val_len || m[i].val_len > EV_MAX_ID_BYTES)))
      return 0;
    at[f] = &m[i];
  }
  if (!at[FL_TYPE]) return 0;
  int type = -1;
  for (size_t i = 0; i < sizeof flat_types / sizeof *flat_types && type < 0; i++) {
    const char *name = type_names[flat_types[i]];
    if (at[FL_TYPE]->val_len == strlen(name) && !memcmp(at[FL_TYPE]->val, name, at[FL_TYPE]->val_len))
      type = (int)flat_types[i];
  }
  if (type < 0) return 0;
  unsigned req = type_req[type];
  if (!at[FL_CUSTOMER] && !at[FL_ANON] && !at[FL_SESSION]) return 0;
  /* a line needs its item; a price without one goes to props */
  if (!at[FL_ITEM] && ((req & EVF_ITEM) || at[FL_PRICE] || at[FL_QTY])) return 0;
  ev_limits l;
  limits_fill(lim, &l);
  int64_t ts = l.now_ms;
  double price = 0, qty = 1, x;
  int integral;
  if (at[FL_TS] && (flat_number(at[FL_TS], &x, &integral) || !integral ||
                    time_from_number(x, &ts) ||
                    (l.max_future_ms > 0 && ts > l.now_ms + l.max_future_ms)))
    return 0;
  if (at[FL_PRICE] && (flat_number(at[FL_PRICE], &price, NULL) || price > DEF_MAX_AMOUNT))
    return 0;
  if (at[FL_QTY] && (flat_number(at[FL_QTY], &qty, NULL) || qty > DEF_MAX_QUANTITY)) return 0;
  /* The strings, copied and ended, in one block. */
  size_t bytes = 0;
  for (int f = FL_CUSTOMER; f <= FL_MSG; f++) bytes += at[f] ? at[f]->val_len + 1 : 0;
  if (!(out->text = malloc(bytes ? bytes : 1))) return 0;
  char *p = out->text;
  const char *str[FL_N] = {0};
  for (int f = FL_CUSTOMER; f <= FL_MSG; f++) {
    if (!at[f]) continue;
    str[f] = memcpy(p, at[f]->val, at[f]->val_len);
    p += at[f]->val_len;
    *p++ = '\0';
  }
  if (str[FL_ITEM]) {
    if (!(out->lines = malloc(sizeof *out->lines))) {
      ev_clear(out);
      return 0;
    }
    out->lines[0] = (ev_line){str[FL_ITEM], price, qty, NULL, at[FL_PRICE] != NULL,
                              at[FL_QTY] != NULL};
    out->n_lines = 1;
    out->one_line = 1;
  }
  out->type = (ev_type)type;
  out->ts = ts;
  out->customer = str[FL_CUSTOMER];
  out->anon = str[FL_ANON];
  out->session = str[FL_SESSION];
  out->msg_id = str[FL_MSG];
  return 1;
}

void ev_clear(ev *e) {
  if (!e) return;
  for (size_t i = 0; i < e->n_lines; i++) json_decref(e->lines[i].extra);
  free(e->lines);
  json_decref(e->object);
  json_decref(e->props);
  free(e->attrs);
  json_decref(e->src);
  free(e->text);
  json_decref(e->doc);
  free(e->body);
  memset(e, 0, sizeof *e);
}

/*
** The normalized text, written from the fields.  Strings are escaped here;
** the sender's own values (props, extras, objects) are written by jansson.
*/
static void put_str(strbuf *t, const char *s) { buf_json_str(t, s, strlen(s)); }

static void put_key(strbuf *t, const char *k) {
  buf_putc(t, ',');
  put_str(t, k);
  buf_putc(t, ':');
}

/* All 17 digits: the stored text must read back to the same double. */
static void put_num(strbuf *t, double x) { buf_json_num(t, x, 17); }

static void put_json(strbuf *t, const json_t *v) {
  char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!s) {
    t->oom = 1;
    return;
  }
  buf_puts(t, s);
  free(s);
}

static void put_opt(strbuf *t, const char *k, const char *v) {
  if (!v) return;
  put_key(t, k);
  put_str(t, v);
}

const char *ev_body(ev *e, size_t *len) {
  if (!e->body) {
    strbuf t = {0};
    char ts[32];
    buf_puts(&t, "{\"type\":");
    put_str(&t, type_names[e->type]);
    buf_put(&t, ts, (size_t)snprintf(ts, sizeof ts, ",\"ts\":%lld", (long long)e->ts));
    put_opt(&t, "message_id", e->msg_id);
    if (type_req[e->type] & EVF_CUSTDOC) {
      put_key(&t, "customer");
      put_json(&t, e->object);
    } else {
      put_opt(&t, "customer", e->customer);
    }
    put_opt(&t, "anon", e->anon);
    put_opt(&t, "session", e->session);
    put_opt(&t, "order_id", e->order_id);
    if (e->has_revenue) {
      put_key(&t, "revenue");
      put_num(&t, e->revenue);
    }
    put_opt(&t, "currency", e->currency);
    put_opt(&t, "query", e->query);
    put_opt(&t, "name", e->name);
    if (type_req[e->type] & EVF_ITEMDOC) {
      put_key(&t, "item");
      put_json(&t, e->object);
    } else if (e->one_line) {
      put_opt(&t, "item", e->lines[0].item);
      if (e->lines[0].has_price) put_key(&t, "price"), put_num(&t, e->lines[0].price);
      if (e->lines[0].has_quantity) put_key(&t, "quantity"), put_num(&t, e->lines[0].quantity);
    } else if (e->n_lines) {
      put_opt(&t, "item", e->item);
      put_key(&t, "items");
      for (size_t i = 0; i < e->n_lines; i++) {
        const ev_line *l = &e->lines[i];
        buf_puts(&t, i ? ",{\"id\":" : "[{\"id\":");
        put_str(&t, l->item);
        if (l->has_price) put_key(&t, "price"), put_num(&t, l->price);
        if (l->has_quantity) put_key(&t, "quantity"), put_num(&t, l->quantity);
        if (l->extra && json_object_size(l->extra)) {
          /* The extras' own object text, less its braces. */
          char *s = json_dumps(l->extra, JSON_COMPACT);
          if (!s) t.oom = 1;
          else buf_put(&t, ",", 1), buf_put(&t, s + 1, strlen(s) - 2);
          free(s);
        }
        buf_put(&t, "}", 1);
      }
      buf_put(&t, "]", 1);
    }
    if (e->props) {
      put_key(&t, "props");
      put_json(&t, e->props);
    }
    buf_put(&t, "}", 1);
    if (!(e->body = buf_take(&t, &e->body_len))) return NULL;
  }
  if (len) *len = e->body_len;
  return e->body;
}

json_t *ev_doc(ev *e) {
  size_t n;
  const char *body;
  if (!e->doc && (body = ev_body(e, &n))) e->doc = json_loadb(body, n, 0, NULL);
  return e->doc;
}

unsigned ev_type_needs(ev_type t) { return (unsigned)t < EV_TYPE_COUNT ? type_req[t] : 0; }

int ev_refusable(ev_type t) {
  return t == EV_COUPON_REDEEMED || t == EV_QUIZ_ANSWER || t == EV_PREF_REMOVED;
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

/* A number as a time: seconds below 1e11, milliseconds from there. */
static int time_from_number(double x, int64_t *ms) {
  return ms_from(fabs(x) < 1e11 ? x * 1000 : x, ms);
}

int ev_parse_time(json_t *v, int64_t *ms) {
  double x;
  if (!time_number(v, &x)) return time_from_number(x, ms);
  return json_is_string(v) ? iso_time(json_string_value(v), ms) : -1;
}
