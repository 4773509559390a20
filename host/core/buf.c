/*
** buf.c: the growable text buffer (see buf.h).
*/
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_put(strbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *s2 = realloc(b->s, cap);
    if (!s2) {
      b->oom = 1;
      return;
    }
    b->s = s2;
    b->cap = cap;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = '\0';
}

void buf_puts(strbuf *b, const char *s) { buf_put(b, s, strlen(s)); }

void buf_putc(strbuf *b, char c) { buf_put(b, &c, 1); }

void buf_json_str(strbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const char *run = s, *end = s + n;
  buf_putc(b, '"');
  for (; s < end; s++) {
    unsigned char c = (unsigned char)*s;
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    buf_put(b, run, (size_t)(s - run));
    char esc[6] = {'\\', (char)c};
    if (c == '\n') esc[1] = 'n', buf_put(b, esc, 2);
    else if (c == '\t') esc[1] = 't', buf_put(b, esc, 2);
    else if (c == '\r') esc[1] = 'r', buf_put(b, esc, 2);
    else if (c < 0x20)
      esc[1] = 'u', esc[2] = esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15],
      buf_put(b, esc, 6);
    else buf_put(b, esc, 2);
    run = s + 1;
  }
  buf_put(b, run, (size_t)(end - run));
  buf_putc(b, '"');
}

void buf_json_int(strbuf *b, long long v) {
  char tmp[24];
  buf_put(b, tmp, (size_t)snprintf(tmp, sizeof tmp, "%lld", v));
}

void buf_json_num(strbuf *b, double v, int digits) {
  char tmp[40];
  int n = snprintf(tmp, sizeof tmp, "%.*g", digits, v);
  buf_put(b, tmp, (size_t)n);
  if (!strpbrk(tmp, ".e")) buf_put(b, ".0", 2);
}

char *buf_take(strbuf *b, size_t *len) {
  char *s = b->oom ? NULL : b->s;
  if (len) *len = s ? b->n : 0;
  if (!s) free(b->s);
  b->s = NULL;
  b->n = b->cap = 0;
  b->oom = 0;
  return s;
}

void buf_free(strbuf *b) {
  free(b->s);
  b->s = NULL;
  b->n = b->cap = 0;
  b->oom = 0;
}
