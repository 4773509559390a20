/*
** request.h: a decision request, typed once where it arrives.
**
** A storefront asks for a decision (recommendations for a product page, a
** popup, a discount, the order of a list it already has) with one JSON
** object.  Whatever carried it (an NDJSON line, an HTTP body, `tailor
** decide`, tailor_decide()), it is parsed here into a `dreq` and checked by
** one table of fields (REQ_FIELD_MAP), so every door applies the same
** rules and the same limits, and the engine never reads JSON text again.
*/
#ifndef TAILOR_REQUEST_H
#define TAILOR_REQUEST_H

#include <jansson.h>
#include <stddef.h>

#include "tailor.h"

/* The fields of a decision request: X(ENUM, "name", "what it must be"). */
#define REQ_FIELD_MAP(X)                                                         \
  X(KIND, "kind", "the handler to ask: recommend, popup, discount, rank, ...") \
  X(CUSTOMER, "customer", "a customer id")                                     \
  X(ANON, "anon", "an anonymous visitor id")                                   \
  X(SESSION, "session", "a session id")                                        \
  X(PAGE, "page", "an object: what the visitor is looking at")                 \
  X(CONTEXT, "context", "an object: anything else the strategy reads")         \
  X(K, "k", "how many items, from 1 to decide.max_k")                          \
  X(ITEMS, "items", "rank: the item ids to re-order")                          \
  X(EXCLUDE, "exclude", "item ids the page already shows: never recommended")  \
  X(FILTER, "filter", "an object: brand (a name or a list), min_price, "      \
    "max_price, in_stock (false lets sold-out items through)")                 \
  X(PIN, "pin", "a list of {item, slot}: that item at that place, 1 first")    \
  X(BOOST, "boost", "item ids or \"brand:<name>\": moved ahead of the rest")    \
  X(BURY, "bury", "item ids or \"brand:<name>\": moved behind the rest")

enum {
#define REQ_ENUM_(e, name, doc) REQ_F_##e,
  REQ_FIELD_MAP(REQ_ENUM_)
#undef REQ_ENUM_
  REQ_F_COUNT
};

/* The longest handler name, the most ids `rank` re-orders, the most
   brands a filter names and the most pins. */
#define REQ_MAX_KIND 31
#define REQ_MAX_ITEMS 1000
#define REQ_MAX_BRANDS 50
#define REQ_MAX_PINS 20

/* A pinned item: `item` (borrowed from the request) at `slot` (1 first). */
typedef struct req_pin {
  const char *item;
  long slot;
} req_pin;

/*
** The merchandising controls of a recommend request (docs/server.md).
** The host applies them to whatever the strategy returns (engine/decide.c)
** and hands them to the strategy as ctx.filter, ctx.pin, ctx.boost and
** ctx.bury.  All zero: no controls, and sold-out items are left out.
*/
typedef struct req_controls {
  const char **brands;   /* filter.brand: only these brands (owned array of
                            borrowed names), n_brands of them; NULL: any */
  size_t n_brands;
  double min_price;      /* filter.min_price; 0: no lower bound */
  double max_price;      /* filter.max_price; 0: no upper bound */
  int any_stock;         /* filter.in_stock = false: sold-out items allowed */
  req_pin *pins;         /* owned, n_pins of them, in the request's order */
  size_t n_pins;
  const char **boost;    /* ids or "brand:<name>" (owned array, borrowed */
  size_t n_boost;        /* strings) */
  const char **bury;
  size_t n_bury;
} req_controls;

typedef struct dreq {
  char kind[REQ_MAX_KIND + 1];
  long k;                 /* 0: not given (the engine's decide.default_k) */
  const char *customer;   /* these point into `src`, or are NULL */
  const char *anon;
  const char *session;
  json_t *page;           /* borrowed from `src`, or NULL */
  json_t *context;        /* borrowed from `src`, or NULL */
  json_t *items;          /* rank: the array of ids (borrowed), or NULL */
  const char **ids;       /* rank: the ids, n_ids of them; owned array */
  size_t n_ids;
  json_t *exclude;        /* the ids the page already shows (borrowed), or NULL */
  const char **ex_ids;    /* those ids, n_ex of them; owned array */
  size_t n_ex;
  req_controls ctl;       /* filter, pin, boost, bury */
  json_t *src;            /* owned reference to the request object */
} dreq;

/* What a request may ask.  max_k: the one limit on k (decide.max_k). */
typedef struct req_limits {
  long max_k;
  const char *const *envelope; /* keys a transport adds (NULL-terminated:
                                  "id", "op", "token"), skipped; may be NULL */
} req_limits;

/*
** A request from a JSON object already parsed (the server's line); takes a
** reference to `obj`.  Unknown fields are errors that name them, so a typo
** ("costumer") shows at once.  Returns TAILOR_OK with *out filled (release
** it with req_clear()), or an error code with `err` naming the field.
*/
int req_from_json(json_t *obj, const req_limits *lim, dreq *out, tailor_error *err);

/* The same from JSON text of `len` bytes (at most `max_bytes`). */
int req_parse(const char *text, size_t len, size_t max_bytes, const req_limits *lim,
              dreq *out, tailor_error *err);

void req_clear(dreq *r);

/* The name of field `f` (REQ_F_*). */
const char *req_field_name(int f);

#endif /* TAILOR_REQUEST_H */
