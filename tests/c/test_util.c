/*
** test_util.c: the host's ground helpers: util_fail, the one way an error
** is filled (one line, valid UTF-8, the line left to the caller), and the
** UTF-8 check, and the JSON parser against jansson's.
*/
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/util.h"

static void test_fail(void) {
  tailor_error e = {.line = 7};
  CHECK_INT(util_fail(&e, TAILOR_EFIELD, "price", "bad %s", "price"), TAILOR_EFIELD);
  CHECK_INT(e.code, TAILOR_EFIELD);
  CHECK_INT(e.line, 7); /* the batch reader's to set */
  CHECK_STR(e.field, "price");
  CHECK_STR(e.message, "bad price");
  CHECK_INT(util_fail(&e, TAILOR_EINVAL, NULL, "x"), TAILOR_EINVAL);
  CHECK_STR(e.field, "");
  CHECK_INT(util_fail(NULL, TAILOR_ENOMEM, NULL, "out of memory"), TAILOR_ENOMEM);
  /* echoed input cannot make a message two lines */
  util_fail(&e, TAILOR_EPARSE, NULL, "near '%s'", "a\nb\r\tc");
  CHECK_STR(e.message, "near 'a b  c'");
  /* a cut inside a character drops the partial character */
  char long_text[sizeof e.message + 8];
  memset(long_text, 'a', sizeof long_text);
  memcpy(long_text + sizeof e.message - 3, "\xE2\x82\xAC", 3); /* U+20AC across the cut */
  long_text[sizeof long_text - 1] = '\0';
  util_fail(&e, TAILOR_EPARSE, NULL, "%s", long_text);
  CHECK_INT(strlen(e.message), sizeof e.message - 3);
  CHECK(util_utf8_valid(e.message, strlen(e.message), NULL));
}

static void test_utf8(void) {
  static const struct {
    const char *s;
    long bad; /* -1: valid */
  } cases[] = {
      {"", -1},
      {"abc", -1},
      {"caf\xC3\xA9", -1},
      {"\xE2\x82\xAC", -1},         /* U+20AC */
      {"\xF0\x9F\x98\x80", -1},     /* U+1F600 */
      {"\xF4\x8F\xBF\xBF", -1},     /* U+10FFFF */
      {"\xED\x9F\xBF\xEE\x80\x80", -1}, /* U+D7FF, U+E000 around the surrogates */
      {"\xC0\x80", 0},              /* overlong NUL */
      {"\xC1\xBF", 0},              /* overlong */
      {"ab\xE0\x80\x80", 2},        /* overlong 3-byte */
      {"\xF0\x80\x80\x80", 0},      /* overlong 4-byte */
      {"x\xED\xA0\x80", 1},         /* surrogate U+D800 */
      {"\xF4\x90\x80\x80", 0},      /* past U+10FFFF */
      {"\xF5\x80\x80\x80", 0},
      {"\x80", 0},                  /* lone continuation */
      {"x\xE2\x82", 1},             /* truncated */
      {"\xC3\x28", 0},
      {"ok\xE2\x82\x28", 2},
      {"\xFF", 0},
      /* past words of ASCII, which are checked eight bytes at a time */
      {"abcdefgh\xC3\x28", 8},
      {"abcdefghijklmnopq\x80", 17},
      {"1234567\xC3\xA9", -1},     /* a character across two words */
      {"abcdefghijk\xE2\x82\xACxyz12345678", -1},
      {"abcdefghijklmno\xED\xA0\x80", 15},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    size_t at = 12345;
    int valid = util_utf8_valid(cases[i].s, strlen(cases[i].s), &at);
    CHECK_INT(valid, cases[i].bad < 0);
    if (cases[i].bad >= 0) CHECK_INT(at, cases[i].bad);
  }
  CHECK(util_utf8_valid("a\0b", 3, NULL)); /* NUL is valid UTF-8; JSON rejects it */
  CHECK(!util_utf8_valid("\xC3", 1, NULL));
}

/* util_json_parse takes and refuses what json_loadb(.., 0, ..) does, and
   builds the same tree. */
static void test_json_parse(void) {
  static const char *const texts[] = {
      "{}", "[]", " {\"a\" : [1, -2, 3.5, -0.25e2, 1E3, true, false, null]}\n",
      "{\"type\":\"view\",\"item\":\"sku 1\",\"ts\":1700000000000,\"props\":{\"x\":{\"y\":[[]]}}}",
      "{\"s\":\"tab\\t quote\\\" slash\\/ \\u00e9 \\ud83d\\ude00 caf\xc3\xa9\"}",
      "{\"a\":1,\"a\":2}", /* the last wins */
      "{\"a-key-longer-than-the-buffer-on-the-stack-0123456789-0123456789-0123456789-0123456789"
      "-0123456789-0123456789\":1,\"b\":2}",
      "[9223372036854775807, -9223372036854775808]",
      /* refused by both */
      "", "42", "\"text\"", "null", "{", "{\"type\":\"view\"", "{\"a\":1} x", "[1,]",
      "{\"a\":01}", "{'a':1}", "{\"a\":\"\\u0000\"}", "{\"\\u0000\":1}", "{\"a\":\"\xff\"}",
      "[99999999999999999999]", "[1e400]", "{\"a\" 1}", "[1] [2]", "/* c */ {}",
      "[\"\\ud800\"]", "[\"\\udc00\"]", "[\"\\ud800x\"]", "[\"\\ud800\\u0041\"]", "[\"\\x\"]",
      "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]", "[1.]", "[.5]", "[-]", "[+1]", "[0x10]", "[NaN]",
      "[\"a\nb\"]", "[tru]",
  };
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
    const char *t = texts[i];
    json_error_t a, b;
    json_t *want = json_loadb(t, strlen(t), 0, &a), *got = util_json_parse(t, strlen(t), &b);
    if (!want != !got || (want && !json_equal(want, got)))
      fprintf(stderr, "util_json_parse differs from jansson on: %s (%s)\n", t,
              got ? "parsed" : b.text);
    CHECK(!want == !got);
    CHECK(!want || json_equal(want, got));
    if (!got) CHECK(b.text[0] != '\0'); /* jansson says what is wrong */
    json_decref(want);
    json_decref(got);
  }
  /* Where: the line and column of the failure. */
  json_error_t e;
  CHECK(util_json_parse("{\"a\":1,\n \"b\": x}", 16, &e) == NULL);
  CHECK_INT(e.line, 2);
  CHECK(util_json_parse("{\"a\":\"\\u0000\"}", 14, &e) == NULL);
  CHECK_CONTAINS(e.text, "\\u0000"); /* jansson's own words */
}

int main(void) {
  RUN(test_fail);
  RUN(test_utf8);
  RUN(test_json_parse);
  return CHECK_DONE();
}
