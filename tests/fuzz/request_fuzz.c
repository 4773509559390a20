/*
** request_fuzz.c: libFuzzer target for the server's request parser
** (host/server/request.c, route.c, inbuf.c), the code that meets every
** byte a client sends.
**
** The first byte picks what the rest is fed to:
**   0  one NDJSON line to srv_parse_line()
**   1  a byte stream cut into lines by the input buffer (read sizes taken
**      from the data itself), each line parsed
**   2  an HTTP request: method (next byte), target up to '\n', then body,
**      to srv_parse_http()
**   3  protocol sniffing of the first bytes
** and checks what callers rely on: an id is always set, the direct reading
** of a plain event line agrees with the JSON tree's (and a flat text's tree
** made without a parser with the parser's), a valid request's
** op is known, and every event of a write is a typed event with what its
** type needs, or a rejection with a message.  A broken promise aborts, so the fuzzer reports it.
*/
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request_same.h"
#include "server/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond) \
  do {                \
    if (!(cond)) abort(); \
  } while (0)

static void check_request(int rc, srv_request *r, const tailor_error *e) {
  REQUIRE(r->id != NULL);
  if (rc != SRV_OK) {
    REQUIRE(e->code == rc && rc > 0 && rc < SRV_ERR_COUNT);
    REQUIRE(memchr(e->message, '\0', sizeof e->message));
    return;
  }
  REQUIRE(r->op >= 0 && r->op < SRV_OP_COUNT);
  REQUIRE((r->need & ~(unsigned)SRV_PERM_ALL) == 0);
  if (srv_op_run(r->op) == SRV_RUN_WRITE && r->op != SRV_OP_CUSTOMER_FORGET) {
    /* Every event of the request is either a typed event or a rejection,
       and a typed event has its type and what its type needs. */
    REQUIRE(r->n_events + r->n_rejects >= 1);
    REQUIRE(srv_op_batch(r->op) || (r->n_events == 1 && !r->n_rejects));
    for (size_t i = 0; i < r->n_events; i++) {
      REQUIRE(r->evs[i].type >= 0 && r->evs[i].type < EV_TYPE_COUNT);
      /* Its stored text parses back into the same kind of event. */
      size_t n;
      const char *body = ev_body(&r->evs[i], &n);
      ev back;
      REQUIRE(body && ev_parse(body, n, NULL, &back, NULL) == 0 && back.type == r->evs[i].type &&
              back.n_lines == r->evs[i].n_lines);
      ev_clear(&back);
      /* What its type needs (ev_type_needs): coupon_redeemed needs no one. */
      unsigned need = ev_type_needs(r->evs[i].type);
      const ev *x = &r->evs[i];
      REQUIRE(!(need & EVF_WHO) || x->customer || x->anon || x->session);
      REQUIRE(!(need & (EVF_CUSTOMER | EVF_CUSTDOC)) || x->customer);
      REQUIRE(!(need & EVF_ANON) || x->anon);
      REQUIRE(!(need & (EVF_ITEM | EVF_ITEMS | EVF_ITEMDOC)) || x->n_lines);
      REQUIRE(!(need & EVF_ORDER) || x->order_id);
      REQUIRE(!(need & EVF_QUERY) || x->query);
      REQUIRE(!(need & EVF_NAME) || x->name);
      REQUIRE(!(need & EVF_INTERNAL));
    }
    for (size_t i = 0; i < r->n_rejects; i++)
      REQUIRE(r->rejects[i].err.code > 0 && memchr(r->rejects[i].err.message, '\0',
                                                   sizeof r->rejects[i].err.message));
  }
  if (r->op == SRV_OP_DECIDE) {
    /* A typed request: a handler name, k within the limit, rank's ids. */
    REQUIRE(r->dq.kind[0] && json_is_object(r->dq.src) && strlen(r->dq.kind) <= REQ_MAX_KIND);
    REQUIRE(r->dq.k >= 0 && r->dq.k <= 100);
    REQUIRE(strcmp(r->dq.kind, "rank") || r->dq.items);
    for (size_t i = 0; i < r->dq.n_ids; i++) REQUIRE(r->dq.ids[i] && r->dq.ids[i][0]);
  }
  if (r->op == SRV_OP_CUSTOMER_GET || r->op == SRV_OP_CUSTOMER_FORGET)
    REQUIRE(r->text && r->text_len > 0 && strlen(r->text) == r->text_len);
}

static void one_line(const char *p, size_t n) {
  srv_limits lim = {16};
  srv_request r, full;
  tailor_error e = {0}, fe = {0};
  int rc = srv_parse_line(p, n, &lim, &r, &e);
  check_request(rc, &r, &e);
  /* The direct reading of a plain event and the JSON tree's agree. */
  int frc = srv_parse_line_json(p, n, &lim, &full, &fe);
  REQUIRE(same_request(rc, &r, &e, frc, &full, &fe));
  /* A flat text's tree made without a parser agrees with the parser's. */
  int flat;
  REQUIRE(same_tree(p, n, &flat));
  srv_request_clear(&full);
  srv_request_clear(&r);
}

static void stream(const uint8_t *data, size_t size) {
  srv_inbuf b = {0};
  size_t at = 0, max_line = 200;
  while (at < size) {
    /* The next read's size comes from the data: reads of 1 to 64 bytes. */
    size_t want = (size_t)(data[at] % 64) + 1, n;
    char *space;
    at++;
    if (want > size - at) want = size - at;
    REQUIRE(srv_in_space(&b, 64, &space, &n) == 0 && n >= 64);
    memcpy(space, data + at, want);
    srv_in_commit(&b, want);
    at += want;
    const char *line;
    size_t len;
    int k;
    while ((k = srv_in_line(&b, max_line, &line, &len)) != SRV_LINE_NONE) {
      if (k == SRV_LINE_OK) {
        REQUIRE(len <= max_line && !memchr(line, '\n', len));
        one_line(line, len);
      }
    }
    /* The buffer never holds more than a line and a read. */
    REQUIRE(srv_in_pending(&b) <= max_line + 64);
  }
  srv_in_free(&b);
}

static void http(const uint8_t *data, size_t size) {
  if (size < 1) return;
  int method = data[0] % (SRV_OTHER_METHOD + 1);
  const char *p = (const char *)data + 1;
  size_t n = size - 1;
  const char *nl = memchr(p, '\n', n);
  size_t url_len = nl ? (size_t)(nl - p) : n;
  const char *body = nl ? nl + 1 : p + n;
  size_t body_len = nl ? n - url_len - 1 : 0;
  srv_limits lim = {16};
  srv_request r;
  tailor_error e = {0};
  int rc = srv_parse_http(method, p, url_len, body, body_len, &lim, &r, &e);
  check_request(rc, &r, &e);
  REQUIRE(!strcmp(r.id, "null"));
  srv_request_clear(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *rest = (const char *)data + 1;
  switch (data[0] % 4) {
    case 0: one_line(rest, size - 1); break;
    case 1: stream(data + 1, size - 1); break;
    case 2: http(data + 1, size - 1); break;
    default: {
      int k = srv_sniff(rest, size - 1);
      REQUIRE(k == SRV_SNIFF_MORE || k == SRV_SNIFF_NDJSON || k == SRV_SNIFF_HTTP);
      REQUIRE(size - 1 > 0 || k == SRV_SNIFF_MORE);
    }
  }
  return 0;
}
