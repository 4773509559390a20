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
  RUN(test_numbers);
  return CHECK_DONE();
}
