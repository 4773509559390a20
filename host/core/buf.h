/*
** buf.h: a growable byte buffer for text that is written once and handed
** on (an event's stored text, a decision's answer).  Appends never fail
** loudly: the first allocation failure sets `oom`, later appends do
** nothing, and the writer checks `oom` once at the end.  The text is kept
** NUL-terminated.  The buffer owns `s`; buf_take() hands it over.
*/
#ifndef TAILOR_BUF_H
#define TAILOR_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct strbuf {
  char *s;
  size_t n, cap;
  int oom;
} strbuf;

/* Appends `n` bytes.  The common case, room already there, is inline;
   buf_grow_put() grows the buffer first. */
void buf_grow_put(strbuf *b, const char *s, size_t n);
static inline void buf_put(strbuf *b, const char *s, size_t n) {
  if (b->oom || b->n + n + 1 > b->cap) {
    buf_grow_put(b, s, n);
    return;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = '\0';
}

/* Room for `cap` bytes in all, so that a writer who knows its size
   allocates once instead of growing by doubling. */
void buf_reserve(strbuf *b, size_t cap);
void buf_puts(strbuf *b, const char *s);
static inline void buf_putc(strbuf *b, char c) { buf_put(b, &c, 1); }

/* `s` (`n` bytes) as a JSON string, quoted and escaped. */
void buf_json_str(strbuf *b, const char *s, size_t n);

/* A number as JSON: integers in full, other values with `digits`
   significant digits (17 round-trips a double), always with a '.' or an
   exponent so that it reads back as a real. */
void buf_json_int(strbuf *b, long long v);
void buf_json_num(strbuf *b, double v, int digits);

/* The text (NULL when out of memory or empty), now the caller's; the
   buffer is empty again. */
char *buf_take(strbuf *b, size_t *len);

void buf_free(strbuf *b);

#endif /* TAILOR_BUF_H */
