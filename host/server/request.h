/*
** request.h: what request.c lends route.c, so that a request that came
** over HTTP is checked by the same validators, with the same messages, as
** an NDJSON line.  Private to the two parsers (it needs jansson); the rest
** of the server includes proto.h.
*/
#ifndef TAILOR_SRV_REQUEST_H
#define TAILOR_SRV_REQUEST_H

#include <jansson.h>

#include "server/proto.h"

/* Run out->op's validator on the request object `req` (borrowed): fills
   out->need, out->text and the events.  Returns SRV_OK or an srv_err with
   `err` filled. */
int srv_validate(json_t *req, const srv_limits *lim, srv_request *out,
                 tailor_error *err);

/* Room for `n` events and as many rejections in `out`. */
int srv_events_alloc(srv_request *out, size_t n, const char *op, tailor_error *err);

/* The next rejection of `out`, of the event at `index` (the request goes
   on without it); the caller fills its error.  Room is srv_events_alloc's. */
srv_reject *srv_reject_at(srv_request *out, size_t index);
/* Event i of a parsed batch refused after parsing (a screen: conn.c,
   work.c): its rejection joins the others in the order of the request and
   the event is cleared; the caller drops it from r->evs. */
void srv_reject_event(srv_request *r, size_t i, const tailor_error *why);

/*
** One event object (borrowed; the event takes a reference) parsed into
** out's next event; `index` is its place in the request; with `any`, a
** type name tailor does not know is an `other` event (ev_from_json_any).  A bad event of a batch op
** (srv_op_batch) is a rejection of that event alone and SRV_OK; of any
** other op it is the request's error.
*/
int srv_add_event(json_t *event, size_t index, int any, srv_request *out,
                  tailor_error *err);

/*
** The clients' own protocols on the HTTP port (segment.c, ga4.c), routed
** from srv_parse_http; `now_ms` is when the request was received.
**
** srv_parse_segment: Segment's HTTP Tracking API (RudderStack speaks it
** too) at `path`: /v1/batch, or one call of /v1/track, /v1/identify,
** /v1/page, /v1/screen, /v1/alias, /v1/group.  `doc` is the body already
** parsed (borrowed), or NULL to parse `body`.
** srv_parse_ga4: the Measurement Protocol's /mp/collect, or with `debug`
** /debug/mp/collect, whose answer (out->text) is GA4's validation
** messages; `query` is the target's query string (without '?').
** Both return as srv_parse_http.
*/
int srv_parse_segment(const char *path, const char *body, size_t body_len, json_t *doc,
                      int64_t now_ms, const srv_limits *lim, srv_request *out,
                      tailor_error *err);
int srv_parse_ga4(int debug, const char *query, size_t query_len, const char *body,
                  size_t body_len, int64_t now_ms, srv_request *out, tailor_error *err);

/*
** The merchant console's routes (admin_route.c): `path` (n bytes) is
** /admin or under it, `query` the target's query string (without '?').
** out->text holds "endpoint\0query\0body" for the admin API, the body
** for login and logout, the file's name for the console's files.
** Returns as srv_parse_http.
*/
int srv_parse_admin(int method, const char *path, size_t n, const char *query,
                    size_t query_len, const char *body, size_t body_len,
                    srv_request *out, tailor_error *err);

/* The value of parameter `name` in a query string of `n` bytes (without
   '?', not NUL-terminated), percent-decoded into `out`; "" when it is
   absent, malformed or too long (route.c). */
void srv_query_value(const char *q, size_t n, const char *name, char *out, size_t cap);

/* The word a message uses for v's type ("an object", "a string"); static. */
const char *srv_type_word(const json_t *v);

/* Fill `err` with SRV_EINTERNAL, "<what>: out of memory"; returns it. */
int srv_oom(tailor_error *err, const char *what);

/* Give out->id the text "null" unless it has an id; SRV_OK, or
   SRV_EINTERNAL with `err` filled when out of memory. */
int srv_id_null(srv_request *out, tailor_error *err);

#endif /* TAILOR_SRV_REQUEST_H */
