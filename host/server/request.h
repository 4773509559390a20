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

/* The word a message uses for v's type ("an object", "a string"); static. */
const char *srv_type_word(const json_t *v);

/* Fill `err` with SRV_EINTERNAL, "<what>: out of memory"; returns it. */
int srv_oom(tailor_error *err, const char *what);

/* Give out->id the text "null" unless it has an id; SRV_OK, or
   SRV_EINTERNAL with `err` filled when out of memory. */
int srv_id_null(srv_request *out, tailor_error *err);

#endif /* TAILOR_SRV_REQUEST_H */
