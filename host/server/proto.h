/*
** proto.h: the server's protocol, apart from sockets.  What a request is
** (an operation, its id, the permission it needs, the text the engine gets),
** how NDJSON lines are cut out of a byte stream, and how an NDJSON line or
** an HTTP request becomes a request or an error.  Events are parsed here
** into typed events (core/event.c), once.  Nothing here touches libuv or
** the engine, so the fuzz target (tests/fuzz) drives it directly.
**
** One header, four files: proto.c has the tables (roles, operations, error
** codes) and their lookups, request.c parses an NDJSON line, route.c an
** HTTP request, inbuf.c frames lines and sniffs the protocol.
*/
#ifndef TAILOR_SRV_PROTO_H
#define TAILOR_SRV_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "core/request.h"
#include "tailor.h"

/*
** Permissions, as bits; a role is a set of them (SRV_ROLE_MAP).
*/
enum {
  SRV_PERM_EVENTS = 1u << 0,   /* send behavioural events, identify */
  SRV_PERM_DECIDE = 1u << 1,   /* ask for decisions */
  SRV_PERM_CATALOG = 1u << 2,  /* item upserts and deletes */
  SRV_PERM_PROFILES = 1u << 3, /* customer profiles, with email and phone */
  SRV_PERM_ERASE = 1u << 4,    /* erase a customer (GDPR) */
  SRV_PERM_STATS = 1u << 5,    /* stats and metrics */
  SRV_PERM_CLOCK = 1u << 6,    /* events may carry their own time, at most
                                  limits.max_future_ms ahead; without it
                                  the server's clock stamps them */
  SRV_PERM_CUSTOMERS = 1u << 7, /* may name any customer; without it a
                                  request speaks for a customer only with
                                  a customer token (docs/server.md) */
  SRV_PERM_ALL = (1u << 8) - 1
};

/* X(ENUM, "name", permissions, "what it is for") */
#define SRV_ROLE_MAP(X)                                                    \
  X(STOREFRONT, "storefront", SRV_PERM_EVENTS | SRV_PERM_DECIDE,          \
    "events and decisions; never sees email or phone")                    \
  X(ADMIN, "admin", SRV_PERM_ALL,                                         \
    "everything: catalog, profiles with PII, erasure, stats")             \
  X(INGEST, "ingest", SRV_PERM_EVENTS | SRV_PERM_CLOCK | SRV_PERM_CUSTOMERS, \
    "a shop backend's events (Segment, RudderStack, GA4 server clients): " \
    "names customers, keeps its clock, writes traits; reads nothing")      \
  X(METRICS, "metrics", SRV_PERM_STATS, "stats and /metrics only")

typedef enum srv_role {
#define SRV_ROLE_ENUM_(e, name, perms, doc) SRV_ROLE_##e,
  SRV_ROLE_MAP(SRV_ROLE_ENUM_)
#undef SRV_ROLE_ENUM_
  SRV_ROLE_COUNT
} srv_role;

/* The role named `name`, or -1. */
int srv_role_lookup(const char *name);
const char *srv_role_name(int role);
unsigned srv_role_perms(int role);

/*
** How an operation runs: on the event loop at once (INLINE), on a decision
** worker (READ), or on the one writer thread, in arrival order (WRITE).
*/
enum { SRV_RUN_INLINE, SRV_RUN_READ, SRV_RUN_WRITE };

/*
** Operations: X(ENUM, "NDJSON name" or NULL for HTTP only, how it runs,
** permissions it needs).
*/
#define SRV_OP_MAP(X)                                                      \
  X(PING, "ping", SRV_RUN_INLINE, 0)                                       \
  X(AUTH, "auth", SRV_RUN_INLINE, 0)                                       \
  X(EVENT, "event", SRV_RUN_WRITE, SRV_PERM_EVENTS)                        \
  X(EVENTS, "events", SRV_RUN_WRITE, SRV_PERM_EVENTS)                      \
  X(ITEM_UPSERT, "item.upsert", SRV_RUN_WRITE, SRV_PERM_CATALOG)           \
  X(ITEM_DELETE, "item.delete", SRV_RUN_WRITE, SRV_PERM_CATALOG)           \
  X(CUSTOMER_UPSERT, "customer.upsert", SRV_RUN_WRITE, SRV_PERM_PROFILES)  \
  X(IDENTIFY, "identify", SRV_RUN_WRITE, SRV_PERM_EVENTS)                  \
  X(CUSTOMER_FORGET, "customer.forget", SRV_RUN_WRITE, SRV_PERM_ERASE)     \
  X(CUSTOMER_GET, "customer.get", SRV_RUN_READ, SRV_PERM_PROFILES)         \
  X(CUSTOMER_EXPORT, "customer.export", SRV_RUN_READ, SRV_PERM_PROFILES)   \
  X(DECIDE, "decide", SRV_RUN_READ, SRV_PERM_DECIDE)                       \
  X(STATS, "stats", SRV_RUN_READ, SRV_PERM_STATS)                          \
  X(METRICS, NULL, SRV_RUN_READ, SRV_PERM_STATS)                           \
  X(HEALTH, NULL, SRV_RUN_INLINE, 0)                                       \
  X(PREFLIGHT, NULL, SRV_RUN_INLINE, 0)                                    \
  X(STATIC, NULL, SRV_RUN_READ, 0)                                         \
  X(SEGMENT, NULL, SRV_RUN_WRITE, SRV_PERM_EVENTS)                         \
  X(GA4, NULL, SRV_RUN_WRITE, SRV_PERM_EVENTS)                             \
  X(GA4_DEBUG, NULL, SRV_RUN_INLINE, SRV_PERM_EVENTS)                     \
  X(CONSOLE_FILE, NULL, SRV_RUN_INLINE, 0)                                 \
  X(CONSOLE_LOGIN, NULL, SRV_RUN_INLINE, 0)                                \
  X(CONSOLE_LOGOUT, NULL, SRV_RUN_INLINE, 0)                               \
  X(CONSOLE_READ, NULL, SRV_RUN_READ, SRV_PERM_STATS)                      \
  X(CONSOLE_WRITE, NULL, SRV_RUN_READ, SRV_PERM_ALL)                       \
  X(COUPON_CHECK, "coupon.check", SRV_RUN_READ, SRV_PERM_CUSTOMERS)       \
  X(PREFS, "prefs", SRV_RUN_READ, SRV_PERM_DECIDE)                         \
  X(SUBSCRIBE, "subscribe", SRV_RUN_READ, SRV_PERM_EVENTS)                 \
  X(CONFIRM, "confirm", SRV_RUN_READ, 0)                                   \
  X(UNSUBSCRIBE, NULL, SRV_RUN_READ, 0)

typedef enum srv_op {
#define SRV_OP_ENUM_(e, name, run, perms) SRV_OP_##e,
  SRV_OP_MAP(SRV_OP_ENUM_)
#undef SRV_OP_ENUM_
  SRV_OP_COUNT
} srv_op;

/* The op's wire name ("item.upsert"; "metrics" etc. for HTTP-only ones). */
const char *srv_op_name(int op);
/* The op whose NDJSON name is `name`, or -1 (HTTP-only ops have none). */
int srv_op_lookup(const char *name);
/* Whether the op has an NDJSON name (the HTTP-only ones have none). */
int srv_op_ndjson(int op);
int srv_op_run(int op);
unsigned srv_op_perms(int op);

/*
** Error codes of responses: X(ENUM, "code", HTTP status, "message").
*/
#define SRV_ERR_MAP(X)                                                     \
  X(BAD_JSON, "bad_json", 400, "malformed JSON")                           \
  X(BAD_REQUEST, "bad_request", 400, "malformed HTTP request")             \
  X(BAD_FIELD, "bad_field", 400, "missing or mistyped field")              \
  X(UNKNOWN_OP, "unknown_op", 400, "unknown operation")                    \
  X(TOO_LARGE, "too_large", 413, "request too large")                      \
  X(UNAUTHORIZED, "unauthorized", 401, "missing or unknown token")         \
  X(FORBIDDEN, "forbidden", 403, "the token's role does not allow this")   \
  X(NOT_FOUND, "not_found", 404, "not found")                              \
  X(BAD_METHOD, "method_not_allowed", 405, "method not allowed")           \
  X(OVERLOADED, "overloaded", 503, "server overloaded")                    \
  X(SHUTTING_DOWN, "shutting_down", 503, "server shutting down")           \
  X(STORE, "store_error", 500, "store error")                              \
  X(INTERNAL, "internal", 500, "internal error")

typedef enum srv_err {
  SRV_OK = 0,
#define SRV_ERR_ENUM_(e, code, status, msg) SRV_E##e,
  SRV_ERR_MAP(SRV_ERR_ENUM_)
#undef SRV_ERR_ENUM_
  SRV_ERR_COUNT
} srv_err;

const char *srv_err_code(int err);   /* "bad_field" */
int srv_err_status(int err);         /* 400 */

/* The srv_err for a tailor_code from the engine. */
int srv_err_of_tailor(int code);

/*
** Errors are tailor_error (include/tailor.h), filled with util_fail
** (core/util.h) like everywhere else in the host; in the server, the code
** field holds an srv_err, never a tailor_code (srv_err_of_tailor converts
** the engine's).  The line field is not used.
*/

/* An event of an `events` request refused by the parser: its place in
   the request and why. */
typedef struct srv_reject {
  size_t index;
  tailor_error err; /* err.code: an srv_err */
} srv_reject;

/*
** A parsed request.  Every pointer is owned by the request and released by
** srv_request_clear().
*/
typedef struct srv_request {
  int op;          /* srv_op */
  unsigned need;   /* permissions it needs (events may raise the op's) */
  char *id;        /* the id as JSON text ("7", "\"a\""); "null" if none */
  char *token;     /* the "token" field, or NULL */
  char *customer_token; /* "customer_token" (NDJSON) or X-Tailor-Customer
                           (HTTP): the shop's proof of who the visitor is */
  char *text;      /* for the engine: the customer id (customer ops) */
  size_t text_len;
  ev *evs;         /* writes: the typed events, parsed once, in order */
  size_t n_events;
  size_t *at;      /* each event's place in the request */
  srv_reject *rejects; /* `events`: the events refused, in order */
  size_t n_rejects;
  dreq dq;         /* decide: the typed request, parsed once */
  int http_status; /* an HTTP status the protocol prescribes for this
                      request's error (Segment's 400 for a message too
                      large), or 0: the error code's */
  char **msg_ids;  /* Segment: each message's messageId (by its place in
                      the batch, NULL when none), for the answer; owned */
  size_t n_msg_ids;
  char kind[32];   /* decide: the decision kind, for metrics */
  char *customer;  /* subscribe: the customer it names, whose proof the
                      connection checks; owned, or NULL */
  int html;        /* confirm: answer with an HTML page (GET /v1/confirm,
                      the link a visitor follows from the email) */
} srv_request;

/* Limits the parser applies. */
typedef struct srv_limits {
  size_t max_batch; /* most events in one `events` request */
  long max_k;       /* the engine's decide.max_k; 0: the request parser's default */
} srv_limits;

#define SRV_DEFAULT_MAX_BATCH DEF_SERVER_MAX_BATCH_EVENTS /* core/defaults.h */
#define SRV_MAX_ID_BYTES DEF_MAX_ID_BYTES /* request ids, customer and item ids */
#define SRV_MAX_CUSTOMER_TOKEN_BYTES 512 /* customer_token: an id, its expiry, an HMAC */

/*
** Parse and validate one NDJSON request line (`len` bytes, no newline,
** not NUL-terminated).  Returns SRV_OK with *out filled, or an srv_err with
** `err` filled; either way out->id holds the request's id when it could be
** read ("null" otherwise), and the caller releases *out with
** srv_request_clear().
*/
int srv_parse_line(const char *buf, size_t len, const srv_limits *lim,
                   srv_request *out, tailor_error *err);

/* The same, always through the JSON tree: what srv_parse_line does for
   every line but the plain single event it reads directly (the tests and
   the fuzz target hold the two to the same answers). */
int srv_parse_line_json(const char *buf, size_t len, const srv_limits *lim,
                        srv_request *out, tailor_error *err);

/* HTTP methods the routes know (the values do not matter to callers). */
enum { SRV_GET, SRV_POST, SRV_DELETE, SRV_OPTIONS, SRV_OTHER_METHOD };

/*
** Route an HTTP request (method, the request target as sent, the body) to
** a request, with the same validation as NDJSON.  Returns as
** srv_parse_line(); out->id is always "null".
*/
int srv_parse_http(int method, const char *url, size_t url_len,
                   const char *body, size_t body_len, const srv_limits *lim,
                   srv_request *out, tailor_error *err);

void srv_request_clear(srv_request *r);

/* Whether the op takes a batch of events whose bad ones are refused one by
   one while the others are kept (events, Segment, GA4). */
int srv_op_batch(int op);

/*
** HTTP bodies and credentials (inbuf.c).
**
** srv_gunzip: inflate a gzip (or zlib) body into a new buffer (*out,
** malloc'd, *out_len), at most `max` bytes of it.  SRV_OK, SRV_ETOO_LARGE
** past `max`, SRV_EBAD_REQUEST when it is not valid gzip; `err` says which.
** srv_basic_user: the user of an "Authorization: Basic base64(user:pass)"
** value (Segment's write key), NUL-terminated in `out` (`cap` bytes); 0,
** or -1 when the value is not Basic or does not decode.
*/
int srv_gunzip(const char *in, size_t in_len, size_t max, char **out, size_t *out_len,
               tailor_error *err);
int srv_basic_user(const char *value, size_t len, char *out, size_t cap);

/*
** Input buffer and NDJSON framing.  Bytes are read straight into the
** buffer's free space (srv_in_space, srv_in_commit); srv_in_line cuts the
** next complete line.  A line longer than `max_line` is dropped as it
** arrives (the buffer never holds more than max_line plus one read) and
** reported once as SRV_LINE_TOO_LONG.
*/
typedef struct srv_inbuf {
  char *buf;
  size_t start;    /* first unconsumed byte */
  size_t len;      /* end of the data */
  size_t cap;
  size_t scanned;  /* bytes after start known to hold no newline */
  int skipping;    /* dropping the rest of an oversized line */
} srv_inbuf;

enum { SRV_LINE_NONE, SRV_LINE_OK, SRV_LINE_TOO_LONG };

/* Free space of at least `want` bytes at *p (*n receives its size); 0, or
   -1 when out of memory. */
int srv_in_space(srv_inbuf *b, size_t want, char **p, size_t *n);
void srv_in_commit(srv_inbuf *b, size_t n);

/* The next line (without its "\n" or "\r\n"): SRV_LINE_OK with *line and
   *len pointing into the buffer (valid until the next call), SRV_LINE_NONE
   when no complete line is buffered, or SRV_LINE_TOO_LONG. */
int srv_in_line(srv_inbuf *b, size_t max_line, const char **line, size_t *len);

/* Bytes buffered and not yet consumed. */
size_t srv_in_pending(const srv_inbuf *b);
/* Consume `n` bytes (HTTP parsing consumes what its parser took). */
void srv_in_consume(srv_inbuf *b, size_t n);
void srv_in_free(srv_inbuf *b);

/*
** Which protocol a connection speaks, from its first bytes: SRV_SNIFF_HTTP
** when they start an HTTP request line ("GET ", "POST ", ...),
** SRV_SNIFF_NDJSON otherwise, SRV_SNIFF_MORE when too few bytes to tell.
*/
enum { SRV_SNIFF_MORE, SRV_SNIFF_NDJSON, SRV_SNIFF_HTTP };
int srv_sniff(const char *p, size_t n);

#endif /* TAILOR_SRV_PROTO_H */
