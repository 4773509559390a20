/*
** inbuf.c: a connection's input buffer, NDJSON line framing, and telling
** HTTP from NDJSON by a connection's first bytes; and what an HTTP body
** and its credentials may come wrapped in (gzip, HTTP Basic), undone here
** without sockets so that tests/fuzz can feed them anything.
*/
#include "server/proto.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "core/util.h"

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
    /* A line of max_line bytes whose CR has come without its LF yet is
       not too long: the CR is not the line's. */
    int cr = b->scanned && b->buf[b->len - 1] == '\r';
    if (b->scanned - (size_t)cr > max_line) {
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

/*
** Content-Encoding: gzip.  Inflated in steps into a buffer that grows up to
** `max`, so that a small body that inflates to gigabytes (a zip bomb)
** costs `max` bytes and is refused.  zlib's automatic header detection
** (windowBits 15 + 32) also takes the zlib format some clients send as
** "deflate".
*/
int srv_gunzip(const char *in, size_t in_len, size_t max, char **out, size_t *out_len,
               tailor_error *err) {
  z_stream z;
  memset(&z, 0, sizeof z);
  *out = NULL;
  *out_len = 0;
  if (inflateInit2(&z, 15 + 32) != Z_OK)
    return util_fail(err, SRV_EINTERNAL, NULL, "gzip: out of memory");
  size_t cap = in_len * 4 + 1024 < max + 1 ? in_len * 4 + 1024 : max + 1, len = 0;
  char *buf = malloc(cap);
  int rc = buf ? SRV_OK : util_fail(err, SRV_EINTERNAL, NULL, "gzip: out of memory");
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)in_len;
  while (!rc) {
    if (len == cap) {
      if (cap > max) {
        rc = util_fail(err, SRV_ETOO_LARGE, NULL,
                       "the gzip body inflates to more than %zu bytes", max);
        break;
      }
      size_t ncap = cap * 2 < max + 1 ? cap * 2 : max + 1;
      char *nb = realloc(buf, ncap);
      if (!nb) {
        rc = util_fail(err, SRV_EINTERNAL, NULL, "gzip: out of memory");
        break;
      }
      buf = nb;
      cap = ncap;
    }
    z.next_out = (Bytef *)buf + len;
    z.avail_out = (uInt)(cap - len);
    int zr = inflate(&z, Z_NO_FLUSH);
    len = cap - z.avail_out;
    if (zr == Z_STREAM_END) {
      if (z.avail_in)
        rc = util_fail(err, SRV_EBAD_REQUEST, NULL,
                       "invalid gzip body: %u bytes after the end of the stream",
                       z.avail_in);
      else if (len > max)
        rc = util_fail(err, SRV_ETOO_LARGE, NULL,
                       "the gzip body inflates to more than %zu bytes", max);
      break;
    }
    if (zr == Z_OK) continue;
    if (zr == Z_BUF_ERROR && len == cap) continue; /* room, then go on */
    rc = util_fail(err, SRV_EBAD_REQUEST, NULL,
                   "invalid gzip body (Content-Encoding: gzip): %s",
                   zr == Z_BUF_ERROR ? "it ends before the stream does"
                   : z.msg           ? z.msg
                                     : "not gzip data");
  }
  inflateEnd(&z);
  if (rc) {
    free(buf);
    return rc;
  }
  *out = buf;
  *out_len = len;
  return SRV_OK;
}

static int b64val(int c) {
  return c >= 'A' && c <= 'Z'   ? c - 'A'
         : c >= 'a' && c <= 'z' ? c - 'a' + 26
         : c >= '0' && c <= '9' ? c - '0' + 52
         : c == '+' || c == '-' ? 62
         : c == '/' || c == '_' ? 63
                                : -1;
}

int srv_basic_user(const char *value, size_t len, char *out, size_t cap) {
  if (len < 6 || strncasecmp(value, "Basic ", 6) || !cap) return -1;
  size_t i = 6, o = 0;
  while (i < len && value[i] == ' ') i++;
  unsigned acc = 0;
  int bits = 0;
  for (; i < len && value[i] != '='; i++) {
    int v = b64val((unsigned char)value[i]);
    if (v < 0) return -1;
    acc = (acc << 6 | (unsigned)v) & 0xffffff;
    if ((bits += 6) >= 8) {
      bits -= 8;
      char c = (char)(acc >> bits & 0xff);
      if (c == ':') break; /* the user ends at the first colon */
      if (c == '\0' || o + 1 >= cap) return -1;
      out[o++] = c;
    }
  }
  out[o] = '\0';
  return o ? 0 : -1;
}
