/*
** test_request.c: the server's reading of a request line.  A plain event
** line ({"id", "op": "event", "token", "event": {...}} with tailor's own
** fields) is read directly, without a JSON tree; every other line goes
** through the tree.  Both must give the same request, or the same error:
** each line here is read both ways and compared field by field (and by
** the event's stored text), and the fast reading must take the lines it
** is meant for.
*/
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "core/flat.h"
#include "core/request.h"
#include "core/util.h"
#include "request_same.h"
#include "server/proto.h"

/* Read `line` both ways; returns whether they agree.  *fast is set when
   the direct reading took it (the request holds no JSON tree then). */
static int both_ways(const char *line, int *fast) {
  srv_limits lim = {16, 0};
  srv_request a, b;
  tailor_error ea = {0}, eb = {0};
  int rca = srv_parse_line(line, strlen(line), &lim, &a, &ea);
  int rcb = srv_parse_line_json(line, strlen(line), &lim, &b, &eb);
  int same = same_request(rca, &a, &ea, rcb, &b, &eb);
  if (!same)
    fprintf(stderr, "differ (%d: %s | %d: %s): %s\n", rca, ea.message, rcb, eb.message, line);
  if (fast) *fast = !rca && a.n_events == 1 && a.evs[0].text != NULL;
  srv_request_clear(&a);
  srv_request_clear(&b);
  return same;
}

static void test_plain_events_are_read_directly(void) {
  static const char *const lines[] = {
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"12\",\"anon\":\"a1\","
      "\"session\":\"a1\",\"ts\":1700000000000}}",
      "{\"id\":\"r-7\",\"op\":\"event\",\"token\":\"tok\",\"event\":{\"type\":\"add_to_cart\","
      "\"item\":\"sku1\",\"customer\":\"c1\",\"price\":29.95,\"quantity\":2}}",
      " { \"op\" : \"event\" , \"id\" : 3 , \"event\" : { \"type\" : \"page_view\" , "
      "\"session\" : \"s\" } } \r",
      "{\"id\":4,\"op\":\"event\",\"event\":{\"type\":\"remove_from_cart\",\"item\":\"x\","
      "\"anon\":\"a\",\"message_id\":\"m-1\",\"ts\":1700000000}}", /* seconds */
      "{\"id\":5,\"op\":\"event\",\"event\":{\"type\":\"checkout\",\"customer\":\"c\","
      "\"item\":\"i\",\"price\":0,\"quantity\":0.5},\"customer_token\":\"ct\"}",
      "{\"id\":6,\"op\":\"event\",\"event\":{\"type\":\"exit_intent\",\"anon\":\"\xc3\xa9t\xc3\xa9\"}}",
      "{\"id\":7,\"op\":\"event\",\"event\":{\"type\":\"page_hidden\",\"anon\":\"a\","
      "\"price\":100000000}}", /* a price without an item: props, the tree's */
  };
  for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
    int fast = 0;
    CHECK(both_ways(lines[i], &fast));
    CHECK_INT(fast, i < 6);
  }
}

/* Near misses: each goes to the JSON tree, which accepts it or says
   what is wrong, and the answer is the tree's. */
static void test_everything_else_is_the_trees(void) {
  static const char *const lines[] = {
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\"}}",   /* no who */
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"anon\":\"a\"}}",   /* no item */
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"View\",\"item\":\"1\",\"anon\":\"a\"}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"purchase\",\"item\":\"1\",\"anon\":\"a\"}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"\",\"anon\":\"a\"}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":12,\"anon\":\"a\"}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\","
      "\"price\":-1}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\","
      "\"price\":1e9}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\","
      "\"price\":1000000001}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\","
      "\"quantity\":1000001}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\","
      "\"ts\":-5}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\","
      "\"ts\":1.5}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\","
      "\"ts\":\"2026-01-01T00:00:00Z\"}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\","
      "\"ts\":99999999999999999999}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\","
      "\"color\":\"red\"}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\","
      "\"anon\":\"b\"}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\\u0041\"}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"\xff\"}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":null}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"erase\",\"customer\":\"c\"}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\"}} x",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\"},"
      "\"extra\":1}",
      "{\"id\":-1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\"}}",
      "{\"id\":1.5,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\"}}",
      "{\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\"}}",
      "{\"id\":1,\"op\":\"events\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\"}}",
      "{\"id\":1,\"op\":\"event\",\"token\":7,\"event\":{\"type\":\"view\",\"item\":\"1\","
      "\"anon\":\"a\"}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\","
      "\"props\":{\"x\":\"y\"}}}",
      "{\"id\":1,\"op\":\"event\",\"event\":{\"type\":\"view\",\"item\":\"1\",\"anon\":\"a\"",
      "{\"id\":1,\"op\":\"event\",\"event\":[]}",
      "{}",
      "",
  };
  for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
    int fast = 1;
    CHECK(both_ways(lines[i], &fast));
    CHECK_INT(fast, 0);
  }
}

/* The scanner itself: what it takes and what it leaves. */
static void test_flat_scanner(void) {
  flat_member m[FLAT_MAX_MEMBERS];
  size_t n;
  const char *s = "{\"a\":\"x\",\"b\":-1.5e3,\"c\":{\"d\":1}} rest";
  CHECK_INT(flat_object(s, strlen(s), 1, m, &n), strlen(s) - 5);
  CHECK_INT(n, 3);
  CHECK(flat_key_is(&m[0], "a") && m[0].kind == 's' && m[0].val_len == 1);
  CHECK(m[1].kind == 'n' && m[1].val_len == 6 && m[2].kind == 'o' && m[2].val_len == 7);
  CHECK_INT(flat_object(s, strlen(s), 0, m, &n), 0); /* nested, not allowed */
  static const char *const refused[] = {"{\"a\":true}", "{\"a\":null}", "{\"a\":[1]}",
                                        "{\"a\":01}",   "{\"a\":1.}",   "{\"a\":\"\\n\"}",
                                        "{\"a\":1,}",   "{\"a\" 1}",    "[1]",
                                        "{\"a\":1,\"a\":2}", "{\"a\":\"x"};
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
    CHECK_INT(flat_object(refused[i], strlen(refused[i]), 1, m, &n), 0);
  double x;
  int whole;
  flat_member num = {"k", 1, "29.95", 5, 'n'};
  CHECK(!flat_number(&num, &x, &whole) && x == 29.95 && !whole);
  num.val = "1234567890123456"; /* 16 digits: not every reader agrees */
  num.val_len = 16;
  CHECK(flat_number(&num, &x, &whole));
}

/* A decision request's tree without the JSON parser: the flat ones are
   read there, the same as the parser reads them; the rest are left to it. */
static void test_decide_requests_flat(void) {
  static const char *const flat[] = {
      "{\"kind\":\"recommend\",\"anon\":\"v1\",\"session\":\"s1\",\"k\":10,"
      "\"page\":{\"type\":\"product\",\"item\":\"123\"}}",
      " {\"kind\":\"popup\",\"customer\":\"c1\",\"context\":{\"trigger\":\"exit_intent\","
      "\"cart_value\":29.95,\"n\":3}} \n",
      "{\"kind\":\"recommend\",\"page\":{}}",
      "{\"kind\":\"discount\",\"anon\":\"\xc3\xa9t\xc3\xa9\",\"k\":1.0,\"x\":0.1}",
      "{}",
  };
  static const char *const other[] = {
      "{\"kind\":\"rank\",\"items\":[\"a\",\"b\"]}",           /* an array */
      "{\"kind\":\"recommend\",\"anon\":\"a\\u0041\"}",        /* an escape */
      "{\"kind\":\"recommend\",\"anon\":\"\xff\"}",             /* not UTF-8 */
      "{\"kind\":\"recommend\",\"k\":-1}",                     /* a sign */
      "{\"kind\":\"recommend\",\"k\":1e1}",                    /* an exponent */
      "{\"kind\":\"recommend\",\"k\":12345678901234567}",      /* many digits */
      "{\"kind\":\"recommend\",\"k\":1,\"k\":2}",              /* a repeated key */
      "{\"kind\":\"recommend\",\"page\":{\"a\":{\"b\":1}}}",   /* two levels */
      "{\"kind\":\"recommend\",\"anon\":null}",
      "{\"kind\":\"recommend\"} x",                           /* after the object */
      "{\"kind\":\"recommend\"",
      "[1]",
      "",
  };
  for (size_t i = 0; i < sizeof flat / sizeof *flat; i++) {
    int took = 0;
    CHECK(same_tree(flat[i], strlen(flat[i]), &took));
    CHECK_INT(took, 1);
  }
  for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
    int took = 1;
    CHECK(same_tree(other[i], strlen(other[i]), &took));
    CHECK_INT(took, 0);
  }
  /* And the typed request is the same either way (req_parse reads flat
     text without a parser). */
  const char *text = flat[0];
  dreq a, b;
  tailor_error ea = {0}, eb = {0};
  json_error_t je;
  CHECK_INT(req_parse(text, strlen(text), 0, NULL, &a, &ea), TAILOR_OK);
  CHECK_INT(req_from_json(json_loadb(text, strlen(text), 0, &je), NULL, &b, &eb), TAILOR_OK);
  CHECK(!strcmp(a.kind, b.kind) && a.k == b.k && !strcmp(a.anon, b.anon) &&
        !strcmp(a.session, b.session) && json_equal(a.page, b.page) && !a.customer && !b.customer);
  json_decref(b.src); /* req_from_json took its own reference */
  req_clear(&a);
  req_clear(&b);
}

/* The GA4 endpoint's query string, percent-decoded within the URL it was
   given: the server's URL buffer is reused, so the bytes after url_len
   are an earlier request's and must not be read (a '%' at the end stays
   as it is). */
static const char *ga4_token(const char *url, const char *after, char *buf, size_t cap) {
  char whole[256] = {0};
  size_t n = strlen(url);
  memcpy(whole, url, n);
  memcpy(whole + n, after, strlen(after));
  srv_limits lim = {16, 0};
  srv_request r;
  tailor_error e = {0};
  CHECK_INT(srv_parse_http(SRV_POST, whole, n, "{}", 2, &lim, &r, &e) < 0, 0);
  snprintf(buf, cap, "%s", r.token ? r.token : "(none)");
  srv_request_clear(&r);
  return buf;
}

static void test_ga4_query(void) {
  char t[64];
  CHECK_STR(ga4_token("/mp/collect?measurement_id=G-1&api_secret=tok%41", "", t, sizeof t),
            "tokA");
  CHECK_STR(ga4_token("/mp/collect?measurement_id=G-1&api_secret=tok%4", "1", t, sizeof t),
            "tok%4");
  CHECK_STR(ga4_token("/mp/collect?api_secret=a%2Bb%-1&measurement_id=G-1", "", t, sizeof t),
            "a+b%-1");
  CHECK_STR(ga4_token("/mp/collect?measurement_id=G-1", "&api_secret=x", t, sizeof t), "(none)");
}

/* A GA4 event refused for a name its note cuts inside a character (63
   bytes, then an é): the note is cut before the character, and the
   rejection says what is wrong with this event. */
static void test_ga4_note_cut(void) {
  char body[256], name[80];
  memset(name, 'a', 63);
  memcpy(name + 63, "\xc3\xa9", 3);
  snprintf(body, sizeof body, "{\"client_id\":\"1\",\"events\":[{\"name\":\"%s\"}]}", name);
  const char *url = "/mp/collect?measurement_id=G-1&api_secret=x";
  srv_limits lim = {16, 0};
  srv_request r;
  tailor_error e = {0};
  CHECK_INT(srv_parse_http(SRV_POST, url, strlen(url), body, strlen(body), &lim, &r, &e), 0);
  CHECK_INT((int)r.n_rejects, 1);
  if (r.n_rejects == 1) {
    const char *m = r.rejects[0].err.message;
    CHECK(strstr(m, "aaaa") != NULL && !strstr(m, "(null)"));
    CHECK(util_utf8_valid(m, strlen(m), NULL));
  }
  srv_request_clear(&r);
}

/* GA4's 100-character limit on a param's value counts characters, not
   bytes: 67 Cyrillic letters (134 bytes) pass, 101 do not, and the
   rejection names the param. */
static void test_ga4_value_chars(void) {
  const char *url = "/mp/collect?measurement_id=G-1&api_secret=x";
  srv_limits lim = {16, 0};
  for (int n = 67; n <= 101; n += 34) {
    char term[256] = "", body[512];
    for (int i = 0; i < n; i++) strcat(term, "\xd0\xb6");
    snprintf(body, sizeof body, "{\"client_id\":\"1\",\"events\":[{\"name\":\"search\","
             "\"params\":{\"search_term\":\"%s\"}}]}", term);
    srv_request r;
    tailor_error e = {0};
    CHECK_INT(srv_parse_http(SRV_POST, url, strlen(url), body, strlen(body), &lim, &r, &e), 0);
    CHECK_INT((int)r.n_rejects, n > 100);
    if (r.n_rejects == 1) CHECK_STR(r.rejects[0].err.field, "events.params.search_term");
    srv_request_clear(&r);
  }
}

/* Bytes into the input buffer, as one read. */
static void feed(srv_inbuf *b, const char *s) {
  char *p;
  size_t n;
  CHECK_INT(srv_in_space(b, strlen(s), &p, &n), 0);
  memcpy(p, s, strlen(s));
  srv_in_commit(b, strlen(s));
}

/* A line of exactly max_line bytes is a line however TCP splits its CRLF;
   one byte more is too long. */
static void test_line_limit_crlf(void) {
  srv_inbuf b = {0};
  const char *line;
  size_t len;
  feed(&b, "12345678\r");
  CHECK_INT(srv_in_line(&b, 8, &line, &len), SRV_LINE_NONE);
  feed(&b, "\n");
  CHECK_INT(srv_in_line(&b, 8, &line, &len), SRV_LINE_OK);
  CHECK_INT((int)len, 8);
  feed(&b, "123456789");
  CHECK_INT(srv_in_line(&b, 8, &line, &len), SRV_LINE_TOO_LONG);
  srv_in_free(&b);
}

int main(void) {
  RUN(test_line_limit_crlf);
  RUN(test_ga4_value_chars);
  RUN(test_plain_events_are_read_directly);
  RUN(test_decide_requests_flat);
  RUN(test_everything_else_is_the_trees);
  RUN(test_flat_scanner);
  RUN(test_ga4_query);
  RUN(test_ga4_note_cut);
  return CHECK_DONE();
}
