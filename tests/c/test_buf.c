/*
** test_buf.c: the text buffer decisions and stored events are written
** into: JSON strings escaped as JSON wants, numbers exactly as printf's
** "%.6g" would write them (the fast path is checked against printf on
** random values and the edges of its range), and ownership on take.
*/
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "core/buf.h"

static void test_strings(void) {
  strbuf b = {0};
  const char s[] = "a\"b\\c\n\t\x01\x1f/é";
  buf_json_str(&b, s, sizeof s - 1);
  CHECK_STR(b.s, "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f/é\"");
  buf_free(&b);
  buf_json_str(&b, "a\0b", 3); /* an embedded NUL is escaped, not the end */
  CHECK_STR(b.s, "\"a\\u0000b\"");
  size_t n = 0;
  char *t = buf_take(&b, &n);
  CHECK_INT(n, 10);
  CHECK(b.s == NULL && b.n == 0);
  free(t);
  CHECK(buf_take(&b, &n) == NULL && n == 0);
}

/* The escaping a byte at a time, as JSON has it: what buf_json_str's word
   at a time path must write. */
static void escape_bytes(const unsigned char *s, size_t n, char *out) {
  *out++ = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned c = s[i];
    if (c == '"' || c == '\\') *out++ = '\\', *out++ = (char)c;
    else if (c == '\n') *out++ = '\\', *out++ = 'n';
    else if (c == '\t') *out++ = '\\', *out++ = 't';
    else if (c == '\r') *out++ = '\\', *out++ = 'r';
    else if (c < 0x20) out += sprintf(out, "\\u%04x", c);
    else *out++ = (char)c;
  }
  *out++ = '"';
  *out = '\0';
}

/* Every length up to 40 with each byte that needs escaping (and the bytes
   next to them, and high bytes) at every place of an 8-byte word, and
   random strings of such bytes. */
static void test_strings_by_word(void) {
  static const unsigned char odd[] = {0x00, 0x01, 0x1f, 0x20, 0x21, '"', '#', '[', '\\', ']',
                                      '\n', 0x7f, 0x80, 0xa2, 0xdc, 0xff};
  unsigned char s[40];
  char want[40 * 6 + 3];
  int bad = 0;
  unsigned x = 12345;
  for (size_t n = 0; n <= sizeof s; n++)
    for (size_t at = 0; at < n || (at == 0 && n == 0); at++)
      for (size_t o = 0; o < sizeof odd; o++) {
        for (size_t i = 0; i < n; i++) s[i] = (unsigned char)('a' + i % 26);
        if (n) s[at] = odd[o];
        for (int r = 0; r < 2; r++) {
          if (r) /* random bytes from `odd` and letters */
            for (size_t i = 0; i < n; i++)
              x = x * 1103515245u + 12345u,
              s[i] = (x >> 16) % 3 ? (unsigned char)('a' + (x >> 8) % 26) : odd[(x >> 20) % sizeof odd];
          strbuf b = {0};
          buf_json_str(&b, (const char *)s, n);
          escape_bytes(s, n, want);
          if (!b.s || strcmp(b.s, want)) bad++;
          buf_free(&b);
        }
      }
  CHECK_INT(bad, 0);
}

/* buf_json_num against printf: "%.6g", and ".0" after a bare integer. */
static int same_as_printf(double v) {
  strbuf b = {0};
  char want[64];
  buf_json_num(&b, v, 6);
  snprintf(want, sizeof want, "%.6g", v);
  if (!strpbrk(want, ".eni")) strcat(want, ".0");
  int ok = b.s && !strcmp(b.s, want);
  if (!ok) fprintf(stderr, "%.17g: wrote %s, printf %s\n", v, b.s ? b.s : "(null)", want);
  buf_free(&b);
  return ok;
}

static void test_numbers(void) {
  static const double edges[] = {0, 1, -1, 10, 0.5, 123456, 999999.4, 999999.5, 1e6, 9.999995,
                                 0.0001, 0.00009999, 12.5, -3.25, 100000, 0.1, 0.3, 2.675,
                                 1.0000005, 99999.95, 0.00123456789, 1e-300, 1e300, 5e-324};
  for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) CHECK(same_as_printf(edges[i]));
  srand(20261204);
  int bad = 0;
  for (int i = 0; i < 200000; i++) {
    double v = (rand() / (double)RAND_MAX - 0.3) * pow(10, rand() % 14 - 6);
    bad += !same_as_printf(v);
    if (bad > 5) break;
  }
  CHECK_INT(bad, 0);
  strbuf b = {0};
  buf_json_num(&b, 42, 17); /* other precisions go through printf */
  CHECK_STR(b.s, "42.0");
  buf_free(&b);
  buf_json_int(&b, -9007199254740993LL);
  CHECK_STR(b.s, "-9007199254740993");
  buf_free(&b);
  /* integers are written without printf: its answer at the edges */
  const long long ends[] = {0, 7, -1, 10, LLONG_MAX, LLONG_MIN, LLONG_MIN + 1};
  for (size_t i = 0; i < sizeof ends / sizeof *ends; i++) {
    char want[32];
    snprintf(want, sizeof want, "%lld", ends[i]);
    buf_json_int(&b, ends[i]);
    CHECK_STR(b.s, want);
    buf_free(&b);
  }
}

int main(void) {
  RUN(test_strings);
  RUN(test_strings_by_word);
  RUN(test_numbers);
  return CHECK_DONE();
}
