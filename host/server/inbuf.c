/*
** inbuf.c: a connection's input buffer, NDJSON line framing, and telling
** HTTP from NDJSON by a connection's first bytes.
*/
#include "server/proto.h"

#include <stdlib.h>
#include <string.h>

int srv_in_space(srv_inbuf *b, size_t want, char **p, size_t *n) {
  if (b->start == b->len) {
    b->start = b->len = b->scanned = 0;
    /* An idle connection gives back what a large line made it take. */
    if (b->cap > 2 * want) {
      free(b->buf);
      b->buf = NULL;
      b->cap = 0;
    }
  }
  if (b->cap - b->len < want && b->start) {
    memmove(b->buf, b->buf + b->start, b->len - b->start);
    b->len -= b->start;
    b->start = 0;
  }
  if (b->cap - b->len < want) {
    size_t cap = b->len + want;
    char *nb = realloc(b->buf, cap);
    if (!nb) return -1;
    b->buf = nb;
    b->cap = cap;
  }
  *p = b->buf + b->len;
  *n = b->cap - b->len;
  return 0;
}

void srv_in_commit(srv_inbuf *b, size_t n) { b->len += n; }

int srv_in_line(srv_inbuf *b, size_t max_line, const char **line, size_t *len) {
  while (b->skipping) {
    char *nl = b->start < b->len ? memchr(b->buf + b->start, '\n', b->len - b->start)
                                 : NULL;
    if (!nl) {
      b->start = b->len;
      b->scanned = 0;
      return SRV_LINE_NONE;
    }
    b->start = (size_t)(nl - b->buf) + 1;
    b->scanned = 0;
    b->skipping = 0;
  }
  size_t from = b->start + b->scanned;
  char *nl = from < b->len ? memchr(b->buf + from, '\n', b->len - from) : NULL;
  if (!nl) {
    b->scanned = b->len - b->start;
    if (b->scanned > max_line) {
      /* Drop what there is and the rest of the line as it comes. */
      b->skipping = 1;
      b->start = b->len;
      b->scanned = 0;
      return SRV_LINE_TOO_LONG;
    }
    return SRV_LINE_NONE;
  }
  size_t at = b->start, l = (size_t)(nl - (b->buf + at));
  b->start = at + l + 1;
  b->scanned = 0;
  if (l && b->buf[at + l - 1] == '\r') l--;
  if (l > max_line) return SRV_LINE_TOO_LONG;
  *line = b->buf + at;
  *len = l;
  return SRV_LINE_OK;
}

size_t srv_in_pending(const srv_inbuf *b) { return b->len - b->start; }

void srv_in_consume(srv_inbuf *b, size_t n) {
  b->start += n < b->len - b->start ? n : b->len - b->start;
  b->scanned = 0;
}

void srv_in_free(srv_inbuf *b) {
  free(b->buf);
  memset(b, 0, sizeof *b);
}

int srv_sniff(const char *p, size_t n) {
  static const char *const methods[] = {"GET ",  "POST ",  "PUT ",     "DELETE ",
                                        "HEAD ", "PATCH ", "OPTIONS ", "CONNECT ",
                                        "TRACE "};
  if (n == 0) return SRV_SNIFF_MORE;
  int prefix = 0;
  for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
    size_t m = strlen(methods[i]);
    if (n >= m && !memcmp(p, methods[i], m)) return SRV_SNIFF_HTTP;
    if (n < m && !memcmp(p, methods[i], n)) prefix = 1;
  }
  return prefix ? SRV_SNIFF_MORE : SRV_SNIFF_NDJSON;
}
