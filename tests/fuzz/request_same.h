/*
** request_same.h: whether two readings of one request line agree: the
** direct reading of a plain event (srv_parse_line) and the JSON tree's
** (srv_parse_line_json); and the tree of a flat text made without a
** parser (flat_tree) and json_loadb's.  Shared by the fuzz target and
** test_request.
*/
#ifndef TAILOR_REQUEST_SAME_H
#define TAILOR_REQUEST_SAME_H

#include <stdlib.h>
#include <string.h>

#include "core/flat.h"
#include "server/proto.h"

static int same_str(const char *a, const char *b) {
  return (!a && !b) || (a && b && !strcmp(a, b));
}

/* An event without a time gets the clock's: two readings a moment apart
   may differ by that moment. */
static int same_event(ev *a, ev *b) {
  long long dt = (long long)(a->ts - b->ts);
  if (a->type != b->type || dt > 1000 || dt < -1000 || !same_str(a->customer, b->customer) ||
      !same_str(a->anon, b->anon) || !same_str(a->session, b->session) ||
      !same_str(a->msg_id, b->msg_id) || !same_str(a->item, b->item) ||
      a->n_lines != b->n_lines || a->one_line != b->one_line ||
      a->has_revenue != b->has_revenue || a->n_attrs != b->n_attrs ||
      (a->props == NULL) != (b->props == NULL))
    return 0;
  for (size_t i = 0; i < a->n_lines; i++) {
    const ev_line *x = &a->lines[i], *y = &b->lines[i];
    if (strcmp(x->item, y->item) || x->price != y->price || x->quantity != y->quantity ||
        x->has_price != y->has_price || x->has_quantity != y->has_quantity)
      return 0;
  }
  if (dt) return 1;
  size_t na, nb;
  const char *ba = ev_body(a, &na), *bb = ev_body(b, &nb);
  return ba && bb && na == nb && !memcmp(ba, bb, na);
}

static int same_request(int rca, srv_request *a, const tailor_error *ea, int rcb,
                        srv_request *b, const tailor_error *eb) {
  if (rca != rcb || !same_str(a->id, b->id)) return 0;
  if (rca) return !strcmp(ea->message, eb->message) && !strcmp(ea->field, eb->field);
  if (a->op != b->op || a->need != b->need || !same_str(a->token, b->token) ||
      !same_str(a->customer_token, b->customer_token) || a->n_events != b->n_events ||
      a->n_rejects != b->n_rejects)
    return 0;
  for (size_t i = 0; i < a->n_events; i++)
    if (a->at[i] != b->at[i] || !same_event(&a->evs[i], &b->evs[i])) return 0;
  return 1;
}

/* Whether flat_tree's reading of text agrees with json_loadb's: the
   same members in the same order, integers and reals alike (their compact
   texts are equal).  *flat is set when the flat reading took the text. */
static int same_tree(const char *text, size_t len, int *flat) {
  json_t *a = flat_tree(text, len);
  *flat = a != NULL;
  if (!a) return 1; /* the parser's alone */
  json_error_t je;
  json_t *b = json_loadb(text, len, 0, &je);
  char *x = json_dumps(a, JSON_COMPACT), *y = b ? json_dumps(b, JSON_COMPACT) : NULL;
  int same = x && y && !strcmp(x, y) && json_equal(a, b);
  free(x);
  free(y);
  json_decref(a);
  json_decref(b);
  return same;
}

#endif /* TAILOR_REQUEST_SAME_H */
