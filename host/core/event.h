/*
** event.h: tailor's one internal set of events, and the mapping from the
** names storefronts already emit (Segment e-commerce spec, GA4) onto it.
**
** Every change is parsed once, at the edge where it enters (a socket
** request, a line of a file, the embedding API), and leaves ev_parse() or
** ev_from_json() as an `ev`: typed fields (what the store's columns, the
** indexes and the triggers read) plus the normalized JSON document they
** point into (what the store keeps as the event's payload, for replay).
** Nothing downstream parses the event's text again.
*/
#ifndef TAILOR_EVENT_H
#define TAILOR_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/defaults.h"
#include "core/util.h"
#include "tailor.h"

/*
** Field requirements, as bits.  EV_WHO is satisfied by any of customer, anon
** or session.
*/
enum {
  EVF_WHO = 1u << 0,      /* customer, anon or session */
  EVF_CUSTOMER = 1u << 1, /* "customer" (a known customer id) */
  EVF_ANON = 1u << 2,     /* "anon" (anonymous visitor id) */
  EVF_ITEM = 1u << 3,     /* one item: "item" (lines[0]) */
  EVF_ITEMS = 1u << 4,    /* one or more lines: "items" */
  EVF_ORDER = 1u << 5,    /* "order_id" */
  EVF_QUERY = 1u << 6,    /* "query" */
  EVF_NAME = 1u << 7,     /* "name": the popup, email template or widget */
  EVF_ITEMDOC = 1u << 8,  /* "item": a catalog object with an "id" */
  EVF_CUSTDOC = 1u << 9,  /* "customer": a profile object with an "id" */
  EVF_INTERNAL = 1u << 10, /* tailor's own, in the log only: refused from senders */
};

/*
** The event types: X(ENUM, "wire name", required fields).  Aliases from
** Segment and GA4 are in event.c, next to the property mapping.  `other`
** is a sender's event tailor has no type for (a Segment track or a GA4
** event it does not know, through ev_from_json_any): kept and counted under
** its own name, which no index reads.
*/
#define EV_TYPE_MAP(X)                                   \
  X(VIEW, "view", EVF_WHO | EVF_ITEM)                    \
  X(SEARCH, "search", EVF_WHO | EVF_QUERY)               \
  X(ADD_TO_CART, "add_to_cart", EVF_WHO | EVF_ITEM)      \
  X(REMOVE_FROM_CART, "remove_from_cart", EVF_WHO | EVF_ITEM) \
  X(CHECKOUT, "checkout", EVF_WHO)                       \
  X(PURCHASE, "purchase", EVF_WHO | EVF_ORDER | EVF_ITEMS) \
  X(REFUND, "refund", EVF_WHO | EVF_ORDER)               \
  X(COUPON_REDEEMED, "coupon_redeemed", 0)               \
  X(SIGNUP, "signup", EVF_CUSTOMER)                      \
  X(IDENTIFY, "identify", EVF_CUSTOMER | EVF_ANON)       \
  X(PAGE_VIEW, "page_view", EVF_WHO)                     \
  X(EXIT_INTENT, "exit_intent", EVF_WHO)                 \
  X(PAGE_HIDDEN, "page_hidden", EVF_WHO)                 \
  X(POPUP_SHOWN, "popup_shown", EVF_WHO | EVF_NAME)      \
  X(POPUP_CLICKED, "popup_clicked", EVF_WHO | EVF_NAME)  \
  X(POPUP_DISMISSED, "popup_dismissed", EVF_WHO | EVF_NAME) \
  X(EMAIL_SENT, "email_sent", EVF_CUSTOMER | EVF_NAME)   \
  X(EMAIL_OPENED, "email_opened", EVF_CUSTOMER | EVF_NAME) \
  X(EMAIL_CLICKED, "email_clicked", EVF_CUSTOMER | EVF_NAME) \
  X(REC_SHOWN, "rec_shown", EVF_WHO | EVF_ITEMS)         \
  X(REC_CLICKED, "rec_clicked", EVF_WHO | EVF_ITEM)      \
  X(ITEM_UPSERT, "item_upsert", EVF_ITEMDOC)             \
  X(ITEM_DELETE, "item_delete", EVF_ITEM)                \
  X(CUSTOMER_UPSERT, "customer_upsert", EVF_CUSTDOC)         \
  X(CONSENT, "consent", EVF_WHO)                         \
  X(QUIZ_ANSWER, "quiz_answer", EVF_WHO)                 \
  X(PREF_REMOVED, "pref_removed", EVF_WHO)               \
  X(ERASE, "erase", EVF_INTERNAL)                        \
  X(OTHER, "other", EVF_WHO | EVF_NAME)

typedef enum ev_type {
#define EV_ENUM_(e, name, req) EV_##e,
  EV_TYPE_MAP(EV_ENUM_)
#undef EV_ENUM_
  EV_TYPE_COUNT
} ev_type;

/* One product line of an event: an item, its unit price and quantity. */
typedef struct ev_line {
  const char *item;  /* the item id; never NULL */
  double price;      /* unit price; 0 when not given */
  double quantity;   /* 1 when not given */
  json_t *extra;     /* the line's other keys (name, brand, ...), or NULL; owned */
  unsigned char has_price, has_quantity; /* given, not defaulted */
} ev_line;

/* A prop whose value is a non-empty string (props.country = "DE"), as
   the indexes read props: typed once by the parser. */
typedef struct ev_attr {
  const char *key, *value;
} ev_attr;

/*
** A typed event.  Strings point into `src`, the JSON the event was parsed
** from (the ev holds a reference), and live as long as the ev does.  What
** the sender sent beyond tailor's fields is kept, never dropped: under
** `props`, in a line's `extra`, or as the catalog or profile `object`.
**
** The store keeps the event as its normalized JSON text (ev_body()):
**   {"type": "purchase", "ts": 1700000000000, "message_id": "m1",
**    "customer": "c1", "anon": "a1", "session": "s1", "order_id": "o1",
**    "revenue": 59.9, "currency": "EUR", "items": [{"id": "sku1",
**    "price": 29.95, "quantity": 2}], "props": {...anything else...}}
** For view/add_to_cart/... the single item is "item": "sku1" with "price"
** and "quantity" beside it.  For item_upsert "item" is the catalog object;
** for customer_upsert "customer" is the profile object and `customer` is
** its id.  That text parses back (ev_parse) into the same event, which is
** how a replay reads the log.
*/
typedef struct ev {
  ev_type type;
  int64_t ts;            /* milliseconds since the epoch, UTC */
  const char *customer;  /* known customer id, or NULL */
  const char *anon;      /* anonymous visitor id, or NULL */
  const char *session;   /* session id, or NULL */
  const char *order_id;  /* purchase/refund, or NULL */
  const char *query;     /* search, or NULL */
  const char *name;      /* popup, template or widget name, or NULL */
  const char *currency;  /* or NULL */
  const char *msg_id;    /* the sender's message id ("messageId", or a
                            top-level "id"), or NULL: a retry carrying the
                            same id is acknowledged and applied once */
  const char *item;      /* an event with several lines that also names
                            one item ("item" beside "items"), or NULL */
  double revenue;        /* purchase: given, or the sum of the lines */
  int has_revenue;       /* given, or derived for an order with lines */
  ev_line *lines;        /* owned; n_lines entries */
  size_t n_lines;
  int one_line;          /* the line is "item"/"price"/"quantity" in the text */
  json_t *object;        /* item_upsert: the catalog object; customer_upsert:
                            the profile; else NULL.  Owned reference */
  json_t *props;         /* everything else the sender sent, or NULL; owned */
  ev_attr *attrs;        /* props' non-empty string values in their order,
                            their texts copied after the array: one block,
                            owned (NULL when none) */
  size_t n_attrs;
  json_t *src;           /* owned reference to the parsed input */
  char *text;            /* ev_from_flat: the strings, copied; owned */
  char *body;            /* ev_body()'s text, made once; owned */
  size_t body_len;
  json_t *doc;           /* ev_doc()'s document, made once; owned */
  int dup;               /* set by the store: the message id was already
                            stored, so the event was not applied again */
} ev;

/* Limits and defaults that ev_parse() applies. */
typedef struct ev_limits {
  size_t max_bytes;  /* largest accepted event text */
  size_t max_lines;  /* most product lines in one event */
  int64_t now_ms;    /* timestamp given to events without one */
  int max_depth;     /* deepest nesting of the text; 0: UTIL_MAX_JSON_DEPTH */
  int64_t max_future_ms; /* a given time may be at most this far past now_ms
                            (limits.max_future_ms); 0: no check */
  int internal;      /* accept tailor's own types (EVF_INTERNAL): the log's
                        reader sets it, a sender's input never does */
} ev_limits;

#define EV_DEFAULT_MAX_BYTES DEF_MAX_EVENT_BYTES
#define EV_DEFAULT_MAX_LINES DEF_EVENT_MAX_LINES

/*
** Parse and validate one event from JSON text (`len` bytes, not necessarily
** NUL-terminated).  Accepts tailor's format (`type`), Segment track/identify
** calls (`event`/`type`, `properties`, `userId`, `anonymousId`, `traits`),
** and GA4 events (`name` + `params`, or `event` + `ecommerce`).
** On success fills *out (caller releases it with ev_clear()) and returns
** TAILOR_OK.  On failure returns a tailor_code and fills err->field and
** err->message ("purchase: missing field 'order_id' (or 'transaction_id')").
** err->line is left alone: the caller knows the line.
*/
int ev_parse(const char *text, size_t len, const ev_limits *lim, ev *out,
             tailor_error *err);

/*
** The same from a JSON value already parsed (a request that carried the
** event): the one parse of an event that came in a larger document.  The
** ev takes a reference to `root` (integer ids in it are turned into
** strings in place); the caller still releases its own.  Returns as
** ev_parse().
*/
int ev_from_json(json_t *root, const ev_limits *lim, ev *out, tailor_error *err);

/*
** As ev_from_json(), but a type name tailor does not know is not an error:
** the event is an `other` event under that name.  For the clients' own
** protocols (Segment, GA4), whose senders name events freely.
*/
int ev_from_json_any(json_t *root, const ev_limits *lim, ev *out, tailor_error *err);

/*
** The common event read without a JSON tree: the members of a flat object
** (core/flat.h) of tailor's own format with nothing but type, ts (ms),
** customer, anon, session, item, price, quantity and message_id, and of a
** type those make whole (view, add_to_cart, remove_from_cart, page_view,
** checkout, exit_intent, page_hidden).  The caller has checked that the
** text is valid UTF-8.  Returns 1 with *out filled as ev_from_json() would
** fill it (its strings copied into out->text; no out->src), or 0 with *out
** cleared for anything else, valid or not, which the caller reads with
** ev_from_json() (that one says what is wrong).
*/
struct flat_member;
int ev_from_flat(const struct flat_member *m, size_t n, const ev_limits *lim, ev *out);

/*
** The normalized JSON text of an event (see `ev`), written from its fields
** once and kept in the ev: what the store keeps and plugins receive.
** *len (may be NULL) receives its length.  NULL when out of memory.
*/
const char *ev_body(ev *e, size_t *len);

/*
** The normalized document, parsed from ev_body() once and kept in the ev
** (borrowed): for readers off the hot path (tests, tools).
*/
json_t *ev_doc(ev *e);

/* The string value of props[key] (from e->attrs), or NULL. */
const char *ev_attr_get(const ev *e, const char *key);

/* Release what an `ev` owns; leaves it zeroed. */
void ev_clear(ev *e);

/* The fields a type requires (EVF_* bits), 0 when out of range. */
unsigned ev_type_needs(ev_type t);

/* Whether the engine may refuse an event of this type for what it says,
   past parsing: a coupon redemption (redeemed before, expired), a quiz
   answer the strategy does not offer, a pref_removed without its key.
   Such an event is committed alone, so that its refusal is its own. */
int ev_refusable(ev_type t);

/* The wire name of a type ("add_to_cart"), or NULL when out of range. */
const char *ev_type_name(ev_type t);

/* The type whose wire name, Segment name or GA4 name is `name`; -1 if none. */
int ev_type_lookup(const char *name);

/*
** Parse a timestamp: a JSON number of milliseconds since the epoch (numbers
** below 1e11 are taken as seconds), or an ISO 8601 / RFC 3339 string
** ("2024-05-01T10:00:00Z", "2024-05-01T12:00:00.250+02:00", "2024-05-01").
** Returns 0 and sets *ms, or -1.
*/
int ev_parse_time(json_t *v, int64_t *ms);

#endif /* TAILOR_EVENT_H */
