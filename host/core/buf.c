/*
** buf.c: the growable text buffer (see buf.h).
*/
#include "core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The buffer at `cap` bytes: 0, or -1 (and oom set) when out of memory. */
static int resize(strbuf *b, size_t cap) {
  char *s2 = realloc(b->s, cap);
  if (!s2) {
    b->oom = 1;
    return -1;
  }
  b->s = s2;
  b->cap = cap;
  return 0;
}

void buf_grow_put(strbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    if (resize(b, cap)) return;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = '\0';
}

void buf_reserve(strbuf *b, size_t cap) {
  if (!b->oom && cap > b->cap) resize(b, cap);
}

void buf_puts(strbuf *b, const char *s) { buf_put(b, s, strlen(s)); }

/* Whether any of the 8 bytes in w is below 0x20, '"' or '\\' (the bytes a
   JSON string escapes): the word tests of "Bit Twiddling Hacks" (haszero,
   hasless), exact as to whether there is one. */
static inline int json_special8(uint64_t w) {
  const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
  uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
  return ((((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs) != 0;
}

void buf_json_str(strbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const char *run = s, *end = s + n;
  buf_putc(b, '"');
  while (s < end) {
    uint64_t w;
    if (end - s >= 8 && (memcpy(&w, s, 8), !json_special8(w))) { /* most text */
      s += 8;
      continue;
    }
    unsigned char c = (unsigned char)*s++;
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    s--;
    buf_put(b, run, (size_t)(s - run));
    char esc[6] = {'\\', (char)c};
    if (c == '\n') esc[1] = 'n', buf_put(b, esc, 2);
    else if (c == '\t') esc[1] = 't', buf_put(b, esc, 2);
    else if (c == '\r') esc[1] = 'r', buf_put(b, esc, 2);
    else if (c < 0x20)
      esc[1] = 'u', esc[2] = esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15],
      buf_put(b, esc, 6);
    else buf_put(b, esc, 2);
    run = ++s;
  }
  buf_put(b, run, (size_t)(end - run));
  buf_putc(b, '"');
}

void buf_json_int(strbuf *b, long long v) {
  char tmp[24], *p = tmp + sizeof tmp;
  /* digits from the end, on the magnitude as unsigned (LLONG_MIN has none
     as a long long) */
  unsigned long long m = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
  do *--p = (char)('0' + m % 10);
  while (m /= 10);
  if (v < 0) *--p = '-';
  buf_put(b, p, (size_t)(tmp + sizeof tmp - p));
}

/*
** "%.6g" without printf, for the common case of a decision's scores: six
** significant digits of a number between 1e-4 and 1e6 (what printf would
** write without an exponent), trailing zeros dropped.  Returns the length,
** or 0 when the number is outside that range (the caller uses printf).
*/
static int six_digits(double v, char *out) {
  static const double pow10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
  double a = v < 0 ? -v : v;
  if (!(a >= 1e-4 && a < 999999.5)) return 0;
  int e = 0; /* the decimal exponent: 10^e <= a < 10^(e+1) */
  while (e < 5 && a >= pow10[e + 1]) e++;
  while (e > -4 && a < (e > 0 ? pow10[e] : 1.0 / pow10[-e])) e--;
  /* six digits: m = round(a * 10^(5-e)), in [100000, 1000000] */
  double scaled = 5 - e >= 0 ? a * pow10[5 - e] : a / pow10[e - 5];
  long long m = (long long)(scaled + 0.5);
  /* Near a tie the product above may have rounded the wrong way: printf
     decides those from the exact binary value. */
  double frac = scaled - (double)(long long)scaled;
  if (frac > 0.4999 && frac < 0.5001) return 0;
  if (m >= 1000000) { /* 9.999995 rounds up a decade */
    m /= 10;
    if (++e > 5) return 0;
  }
  char digs[7];
  for (int i = 5; i >= 0; i--, m /= 10) digs[i] = (char)('0' + m % 10);
  int nd = 6;
  while (nd > 1 && digs[nd - 1] == '0') nd--; /* %g drops trailing zeros */
  int n = 0;
  if (v < 0) out[n++] = '-';
  if (e >= 0) {
    for (int i = 0; i <= e; i++) out[n++] = i < nd ? digs[i] : '0';
    if (nd > e + 1) {
      out[n++] = '.';
      for (int i = e + 1; i < nd; i++) out[n++] = digs[i];
    }
  } else {
    out[n++] = '0';
    out[n++] = '.';
    for (int i = -1; i > e; i--) out[n++] = '0';
    for (int i = 0; i < nd; i++) out[n++] = digs[i];
  }
  return n;
}

void buf_json_num(strbuf *b, double v, int digits) {
  char tmp[40];
  int n = digits == 6 ? six_digits(v, tmp) : 0;
  if (!n) n = snprintf(tmp, sizeof tmp, "%.*g", digits, v);
  tmp[n] = '\0';
  buf_put(b, tmp, (size_t)n);
  if (!strpbrk(tmp, ".eni")) buf_put(b, ".0", 2);
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
