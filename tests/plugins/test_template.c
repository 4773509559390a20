/*
** test_template.c: the smtp plugin's template language (plugins/smtp/
** template.h): values, paths, sections over lists and objects, inverted
** sections, filters, the escaping of each output (HTML, header, text),
** standalone lines, and compile errors that name the line.
*/
#include <stdlib.h>

#include "../c/check.h"
#include "template.h"

/* Render `src` with the JSON `vars` in `mode`; the caller frees. */
static char *render(const char *src, const char *vars, tpl_mode mode) {
  char err[300] = "";
  tpl *t = tpl_compile(src, strlen(src), "t", err, sizeof err);
  if (!t) {
    fprintf(stderr, "compile failed: %s\n", err);
    return NULL;
  }
  json_t *scope = json_loads(vars, 0, NULL);
  char *out = tpl_render(t, scope, mode, NULL, err, sizeof err);
  if (!out) fprintf(stderr, "render failed: %s\n", err);
  json_decref(scope);
  tpl_free(t);
  return out;
}

#define CHECK_RENDER(src, vars, mode, want)   \
  do {                                        \
    char *got_ = render(src, vars, mode);     \
    CHECK_STR(got_, want);                    \
    free(got_);                               \
  } while (0)

/* The compile error of `src` ("" when it compiles). */
static const char *error_of(const char *src) {
  static char err[300];
  err[0] = '\0';
  tpl *t = tpl_compile(src, strlen(src), "mail.html", err, sizeof err);
  tpl_free(t);
  return err;
}

static void test_values(void) {
  const char *v = "{\"name\": \"Ada\", \"n\": 3, \"x\": 2.5, \"yes\": true, \"none\": null,"
                  " \"item\": {\"name\": \"Hat\", \"brand\": {\"name\": \"Wool Co\"}}}";
  CHECK_RENDER("Hi {{name}}!", v, TPL_TEXT, "Hi Ada!");
  CHECK_RENDER("{{ name }} {{n}} {{x}} {{yes}} [{{none}}] [{{missing}}]", v, TPL_TEXT,
               "Ada 3 2.5 true [] []");
  CHECK_RENDER("{{item.name}} by {{item.brand.name}} [{{item.nope.name}}]", v, TPL_TEXT,
               "Hat by Wool Co []");
  CHECK_RENDER("no tags at all", v, TPL_TEXT, "no tags at all");
  CHECK_RENDER("", v, TPL_TEXT, "");
  CHECK_RENDER("{{! a comment }}x", v, TPL_TEXT, "x");
}

static void test_escaping(void) {
  const char *v = "{\"name\": \"<script>alert('x')</script> & \\\"co\\\"\","
                  " \"subject\": \"Hello\\r\\nBcc: evil@example.com\"}";
  CHECK_RENDER("<p>{{name}}</p>", v, TPL_HTML,
               "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;</p>");
  /* The template's own markup is kept; only values are escaped. */
  CHECK_RENDER("<b title=\"{{name}}\">", "{\"name\": \"a\\\" onmouseover=\\\"x\"}", TPL_HTML,
               "<b title=\"a&quot; onmouseover=&quot;x\">");
  /* A header value cannot start a header of its own. */
  CHECK_RENDER("Subject: {{subject}}", v, TPL_HEADER,
               "Subject: Hello  Bcc: evil@example.com");
  /* The text part is text: nothing to escape. */
  CHECK_RENDER("{{name}}", v, TPL_TEXT, "<script>alert('x')</script> & \"co\"");
  CHECK(strstr(error_of("{{{name}}}"), "raw output") != NULL);
}

static void test_filters(void) {
  const char *v = "{\"p\": 59.9, \"i\": 12, \"s\": \"7.5\", \"word\": \"free\","
                  " \"good\": \"https://shop.example/p?a=1&b=2\", \"rel\": \"/p/hat\","
                  " \"bad\": \"javascript:alert(1)\", \"bad2\": \" JavaScript:x\","
                  " \"data\": \"data:text/html,x\", \"mail\": \"mailto:help@shop.example\"}";
  CHECK_RENDER("{{p | money}} {{i|money}} {{s | money}} {{word | money}}", v, TPL_TEXT,
               "59.90 12.00 7.50 free");
  CHECK_RENDER("<a href=\"{{good | url}}\">", v, TPL_HTML,
               "<a href=\"https://shop.example/p?a=1&amp;b=2\">");
  CHECK_RENDER("[{{rel|url}}][{{bad|url}}][{{bad2|url}}][{{data|url}}][{{mail|url}}][{{i|url}}]",
               v, TPL_HTML, "[/p/hat][][][][mailto:help@shop.example][]");
  /* A /path is no link in a mailbox: made absolute with the shop's URL. */
  CHECK_RENDER("<a href=\"{{#items}}{{url | url}}{{/items}}\"> {{url | url}}",
               "{\"shop\": {\"url\": \"https://trail.example/\"}, \"url\": \"/p/hat?a&b\","
               " \"items\": [{\"url\": \"/p/scarf\"}]}",
               TPL_HTML, "<a href=\"https://trail.example/p/scarf\"> https://trail.example/p/hat?a&amp;b");
  CHECK_RENDER("{{url | url}}", "{\"shop\": {\"url\": \"javascript:x\"}, \"url\": \"/p/hat\"}",
               TPL_TEXT, "/p/hat");
  CHECK(strstr(error_of("{{p | shout}}"), "unknown filter 'shout'") != NULL);
}

static void test_sections(void) {
  const char *v =
      "{\"shop\": \"Trail Co\", \"items\": ["
      "{\"name\": \"Hat\", \"price\": 20},"
      "{\"name\": \"Gloves\", \"price\": 35.5, \"shop\": \"Outlet\"},"
      "{\"name\": \"Scarf\", \"price\": 15}],"
      " \"empty\": [], \"no\": false, \"blank\": \"\", \"zero\": 0,"
      " \"customer\": {\"first\": \"Ada\"}, \"tags\": [\"a\", \"b\"]}";
  CHECK_RENDER("{{#items}}{{@number}}. {{name}} {{price|money}} at {{shop}}{{^@last}}; {{/@last}}{{/items}}",
               v, TPL_TEXT,
               "1. Hat 20.00 at Trail Co; 2. Gloves 35.50 at Outlet; 3. Scarf 15.00 at Trail Co");
  CHECK_RENDER("{{#tags}}{{#@first}}[{{/@first}}{{.}}{{/tags}}]", v, TPL_TEXT, "[ab]");
  CHECK_RENDER("{{#empty}}x{{/empty}}{{^empty}}none{{/empty}}", v, TPL_TEXT, "none");
  CHECK_RENDER("{{#no}}x{{/no}}{{#blank}}y{{/blank}}{{#missing}}z{{/missing}}{{#zero}}0 is "
               "there{{/zero}}",
               v, TPL_TEXT, "0 is there");
  CHECK_RENDER("{{#customer}}Hi {{first}} from {{shop}}{{/customer}}", v, TPL_TEXT,
               "Hi Ada from Trail Co");
  CHECK_RENDER("{{^customer}}anonymous{{/customer}}{{^no}}not no{{/no}}", v, TPL_TEXT, "not no");
  /* Nested: an inner list sees the outer element's names. */
  CHECK_RENDER("{{#rows}}{{label}}:{{#cells}}{{.}}{{label}}{{/cells}} {{/rows}}",
               "{\"rows\": [{\"label\": \"a\", \"cells\": [1, 2]}, {\"label\": \"b\", "
               "\"cells\": [3]}]}",
               TPL_TEXT, "a:1a2a b:3b ");
}

static void test_standalone_lines(void) {
  const char *v = "{\"items\": [{\"name\": \"Hat\"}, {\"name\": \"Gloves\"}]}";
  CHECK_RENDER("Your cart:\n{{#items}}\n  - {{name}}\n{{/items}}\n{{! done }}\nBye\n", v,
               TPL_TEXT, "Your cart:\n  - Hat\n  - Gloves\nBye\n");
  CHECK_RENDER("  {{#items}}  \r\n{{name}},\n  {{/items}}\nend", v, TPL_TEXT,
               "Hat,\nGloves,\nend");
  /* A tag that shares its line with text keeps the line. */
  CHECK_RENDER("a {{#items}}{{name}} {{/items}}b\n", v, TPL_TEXT, "a Hat Gloves b\n");
}

static void test_errors(void) {
  CHECK_STR(error_of("line one\n{{#items}}\n{{name}}\n"),
            "mail.html:2: section 'items' is never closed");
  CHECK_STR(error_of("{{#a}}\n{{#b}}\n{{/a}}\n"),
            "mail.html:3: {{/a}} closes 'b' (opened on line 2)");
  CHECK_STR(error_of("x\ny {{/a}}"), "mail.html:2: {{/a}} closes no section");
  CHECK_STR(error_of("a\nb\nc {{name"), "mail.html:3: '{{' without its '}}'");
  CHECK_STR(error_of("{{}}"), "mail.html:1: an empty tag");
  CHECK_STR(error_of("{{na me}}"), "mail.html:1: 'na me' is not a name");
  CHECK_STR(error_of("{{a..b}}"), "mail.html:1: 'a..b' is not a name");
  char deep[400] = "";
  for (int i = 0; i <= TPL_MAX_DEPTH; i++) strcat(deep, "{{#a}}");
  CHECK(strstr(error_of(deep), "nested deeper than") != NULL);
  CHECK_STR(error_of("{{#a}}{{/a}} {{b|money}} {{c | url}}"), "");
}

static void test_output_limit(void) {
  char err[300] = "";
  const char *src = "{{#a}}{{#a}}{{#a}}{{x}}{{/a}}{{/a}}{{/a}}";
  tpl *t = tpl_compile(src, strlen(src), "big", err, sizeof err);
  CHECK(t != NULL);
  /* 200^3 copies of a 100-byte value: far past the limit. */
  json_t *row = json_array();
  for (int i = 0; i < 200; i++) json_array_append_new(row, json_integer(i));
  char x[101];
  memset(x, 'x', 100);
  x[100] = '\0';
  json_t *scope = json_pack("{so ss}", "a", row, "x", x);
  char *out = tpl_render(t, scope, TPL_TEXT, NULL, err, sizeof err);
  CHECK(out == NULL);
  CHECK_CONTAINS(err, "over");
  free(out);
  json_decref(scope);
  tpl_free(t);
}

int main(void) {
  RUN(test_values);
  RUN(test_escaping);
  RUN(test_filters);
  RUN(test_sections);
  RUN(test_standalone_lines);
  RUN(test_errors);
  RUN(test_output_limit);
  return CHECK_DONE();
}
