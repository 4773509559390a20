/*
** test_event.c: event parsing: tailor's own format, Segment and GA4 (both
** Measurement Protocol and dataLayer) onto the internal types; every error
** class; amounts; message ids; timestamps; UTF-8; and the store's round
** trip: the normalized text parsed again.
*/
#include <stdlib.h>

#include "check.h"
#include "core/event.h"

#define NOW 1700000000000LL /* the limits' "now", for events without a time */

static const ev_limits lim = {0, 0, NOW, 0, 0, 0};

static int parse(const char *json, ev *e, tailor_error *err) {
  return ev_parse(json, strlen(json), &lim, e, err);
}

/* lines[i], or an impossible line when there is none (so checks fail, not crash). */
static ev_line line(const ev *e, size_t i) {
  static const ev_line none = {"(no line)", -1, -1, NULL, 0, 0};
  return i < e->n_lines ? e->lines[i] : none;
}

static const char *prop(ev *e, const char *key) {
  return json_string_value(json_object_get(json_object_get(ev_doc(e), "props"), key));
}

#define SAME_STR(a, b) CHECK((!(a) && !(b)) || ((a) && (b) && !strcmp((a), (b))))

static void check_same(const ev *a, const ev *b) {
  CHECK_INT(a->type, b->type);
  CHECK_INT(a->ts, b->ts);
  SAME_STR(a->customer, b->customer);
  SAME_STR(a->anon, b->anon);
  SAME_STR(a->session, b->session);
  SAME_STR(a->order_id, b->order_id);
  SAME_STR(a->query, b->query);
  SAME_STR(a->name, b->name);
  SAME_STR(a->currency, b->currency);
  CHECK_NEAR(a->revenue, b->revenue, 1e-9);
  CHECK_INT(a->n_lines, b->n_lines);
  for (size_t i = 0; i < a->n_lines && i < b->n_lines; i++) {
    CHECK_STR(a->lines[i].item, b->lines[i].item);
    CHECK_NEAR(a->lines[i].price, b->lines[i].price, 1e-9);
    CHECK_NEAR(a->lines[i].quantity, b->lines[i].quantity, 1e-9);
  }
}

/*
** What the store does: keep the event's normalized text, and on start
** parse it again with the same parser at its stored time.  The text parses
** back into the same event, and writes the same text again.
*/
static void roundtrip(ev *a) {
  size_t n = 0;
  const char *text = ev_body(a, &n);
  ev c;
  tailor_error err;
  ev_limits at = {0, 0, a->ts + 12345, 0, 0, 0}; /* the text carries its own time */
  CHECK(text != NULL && n == strlen(text));
  if (!text) return;
  CHECK_INT(ev_parse(text, n, &at, &c, &err), TAILOR_OK);
  check_same(a, &c);
  CHECK(json_equal(ev_doc(&c), ev_doc(a)));
  CHECK_STR(ev_body(&c, NULL), text);
  ev_clear(&c);
}

/* Parse `json`, expect it valid, round trip it; the caller checks fields
   and calls ev_clear. */
static void ok(const char *json, ev *e) {
  tailor_error err;
  int rc = parse(json, e, &err);
  if (rc != TAILOR_OK) fprintf(stderr, "rejected: %s\n  %s\n", json, err.message);
  CHECK_INT(rc, TAILOR_OK);
  if (rc == TAILOR_OK) roundtrip(e);
}

#define EXPECT_ERR(json, code, field, msg) expect_err(__LINE__, json, code, field, msg)

static void expect_err(int line, const char *json, int code, const char *field,
                       const char *msg) {
  int before = check_failures_;
  tailor_error err = {0};
  ev e;
  err.line = 7;
  CHECK_INT(parse(json, &e, &err), code);
  CHECK_INT(err.code, code);
  CHECK_STR(err.field, field);
  CHECK_CONTAINS(err.message, msg);
  CHECK_INT(err.line, 7); /* the caller's to set */
  CHECK(!strchr(err.message, '\n'));
  CHECK(e.doc == NULL && e.lines == NULL && e.n_lines == 0);
  if (check_failures_ != before)
    fprintf(stderr, "  (from line %d: %s -> %s)\n", line, json, err.message);
}

/* ** tailor's own format */

static void test_native_view(void) {
  ev e;
  ok("{\"type\":\"view\",\"item\":\"sku1\",\"customer\":\"c1\",\"anon\":\"a1\","
     "\"session\":\"s1\",\"ts\":1700000001000,\"price\":12.5,\"device\":\"mobile\"}", &e);
  CHECK_INT(e.type, EV_VIEW);
  CHECK_INT(e.ts, 1700000001000LL);
  CHECK_STR(e.customer, "c1");
  CHECK_STR(e.anon, "a1");
  CHECK_STR(e.session, "s1");
  CHECK(e.name == NULL && e.order_id == NULL && e.query == NULL);
  CHECK_INT(e.n_lines, 1);
  CHECK_STR(line(&e, 0).item, "sku1");
  CHECK_NEAR(line(&e, 0).price, 12.5, 1e-9);
  CHECK_NEAR(line(&e, 0).quantity, 1, 0);
  /* strings point into the document */
  CHECK_STR(e.customer, json_string_value(json_object_get(ev_doc(&e), "customer")));
  CHECK_STR(line(&e, 0).item, json_string_value(json_object_get(ev_doc(&e), "item")));
  CHECK_STR(json_string_value(json_object_get(ev_doc(&e), "type")), "view");
  CHECK(json_object_get(ev_doc(&e), "items") == NULL);
  CHECK(json_object_get(ev_doc(&e), "quantity") == NULL); /* not given, not invented */
  CHECK_STR(prop(&e, "device"), "mobile");
  ev_clear(&e);
  CHECK(e.doc == NULL && e.lines == NULL);
}

static void test_native_cart_and_purchase(void) {
  ev e;
  ok("{\"type\":\"add_to_cart\",\"item\":77,\"session\":12345,\"quantity\":2,\"price\":5}", &e);
  CHECK_INT(e.type, EV_ADD_TO_CART);
  CHECK_INT(e.ts, NOW); /* no time given */
  CHECK_STR(e.session, "12345");
  CHECK_STR(line(&e, 0).item, "77");
  CHECK_NEAR(line(&e, 0).quantity, 2, 0);
  ev_clear(&e);

  ok("{\"type\":\"purchase\",\"customer\":\"c1\",\"order_id\":1001,\"currency\":\"EUR\","
     "\"items\":[{\"id\":\"sku1\",\"price\":10,\"quantity\":2},{\"id\":\"sku2\",\"price\":5,"
     "\"color\":\"red\"}]}", &e);
  CHECK_INT(e.type, EV_PURCHASE);
  CHECK_STR(e.order_id, "1001");
  CHECK_STR(e.currency, "EUR");
  CHECK_NEAR(e.revenue, 25, 1e-9); /* 10*2 + 5*1 */
  CHECK_NEAR(json_number_value(json_object_get(ev_doc(&e), "revenue")), 25, 1e-9);
  CHECK_INT(e.n_lines, 2);
  CHECK_STR(line(&e, 1).item, "sku2");
  CHECK_NEAR(line(&e, 1).quantity, 1, 0);
  CHECK(json_object_get(ev_doc(&e), "item") == NULL);
  CHECK_STR(json_string_value(json_object_get(
                json_array_get(json_object_get(ev_doc(&e), "items"), 1), "color")), "red");
  ev_clear(&e);

  /* a one-line purchase given as "item" is still a purchase with items */
  ok("{\"type\":\"purchase\",\"anon\":\"a\",\"order_id\":\"o\",\"item\":\"x\",\"price\":3,"
     "\"quantity\":3,\"revenue\":8}", &e);
  CHECK_INT(e.n_lines, 1);
  CHECK_NEAR(e.revenue, 8, 1e-9); /* given wins over the sum */
  CHECK_INT(json_array_size(json_object_get(ev_doc(&e), "items")), 1);
  ev_clear(&e);
}

/* props' non-empty string values, in order, as e->attrs; an event
   without any has none. */
static void test_attrs(void) {
  ev e;
  ok("{\"type\":\"view\",\"item\":\"p1\",\"anon\":\"a1\",\"props\":{\"country\":\"DE\","
     "\"n\":3,\"empty\":\"\",\"deep\":{\"medium\":\"cpc\"},\"medium\":\"email\"}}", &e);
  CHECK_INT(e.n_attrs, 2);
  if (e.n_attrs == 2) {
    CHECK_STR(e.attrs[0].key, "country");
    CHECK_STR(e.attrs[0].value, "DE");
    CHECK_STR(e.attrs[1].key, "medium");
    CHECK_STR(e.attrs[1].value, "email");
  }
  CHECK_STR(ev_attr_get(&e, "medium"), "email");
  CHECK(ev_attr_get(&e, "empty") == NULL && ev_attr_get(&e, "n") == NULL);
  ev_clear(&e);
  ok("{\"type\":\"view\",\"item\":\"p1\",\"anon\":\"a1\"}", &e);
  CHECK(e.n_attrs == 0 && e.attrs == NULL && ev_attr_get(&e, "country") == NULL);
  ev_clear(&e);
}

static void test_native_others(void) {
  ev e;
  ok("{\"type\":\"search\",\"anon\":\"a1\",\"query\":\"red shoes\"}", &e);
  CHECK_INT(e.type, EV_SEARCH);
  CHECK_STR(e.query, "red shoes");
  CHECK_INT(e.n_lines, 0);
  ev_clear(&e);

  ok("{\"type\":\"identify\",\"customer\":\"c1\",\"anon\":\"a1\"}", &e);
  CHECK_INT(e.type, EV_IDENTIFY);
  CHECK_STR(e.customer, "c1");
  CHECK_STR(e.anon, "a1");
  ev_clear(&e);

  ok("{\"type\":\"item_upsert\",\"item\":{\"id\":42,\"name\":\"Runner\",\"price\":19.9,"
     "\"category\":\"Women/Shoes/Running\",\"tags\":[\"a\"],\"in_stock\":true}}", &e);
  CHECK_INT(e.type, EV_ITEM_UPSERT);
  CHECK_INT(e.n_lines, 1);
  CHECK_STR(line(&e, 0).item, "42"); /* integer ids become strings */
  CHECK_NEAR(line(&e, 0).price, 19.9, 1e-9);
  CHECK(json_is_object(json_object_get(ev_doc(&e), "item")));
  CHECK_STR(json_string_value(json_object_get(json_object_get(ev_doc(&e), "item"), "category")),
            "Women/Shoes/Running");
  CHECK(e.customer == NULL);
  ev_clear(&e);

  ok("{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c1\",\"email\":\"a@b.c\","
     "\"consent\":{\"email\":true},\"attrs\":{\"tier\":\"gold\"}}}", &e);
  CHECK_INT(e.type, EV_CUSTOMER_UPSERT);
  CHECK_STR(e.customer, "c1");
  CHECK_STR(e.customer,
            json_string_value(json_object_get(json_object_get(ev_doc(&e), "customer"), "id")));
  CHECK_INT(e.n_lines, 0);
  ev_clear(&e);

  ok("{\"type\":\"popup_shown\",\"anon\":\"a1\",\"popup\":\"welcome10\"}", &e);
  CHECK_INT(e.type, EV_POPUP_SHOWN);
  CHECK_STR(e.name, "welcome10");
  ev_clear(&e);

  ok("{\"type\":\"rec_shown\",\"session\":\"s\",\"widget\":\"pdp-similar\","
     "\"items\":[\"a\",7]}", &e);
  CHECK_INT(e.type, EV_REC_SHOWN);
  CHECK_STR(e.name, "pdp-similar");
  CHECK_INT(e.n_lines, 2);
  CHECK_STR(line(&e, 1).item, "7");
  ev_clear(&e);

  ok("{\"type\":\"item_delete\",\"item\":\"sku9\"}", &e);
  CHECK_INT(e.type, EV_ITEM_DELETE);
  CHECK_STR(line(&e, 0).item, "sku9");
  ev_clear(&e);
}

/* ** Segment */

static void test_segment(void) {
  ev e;
  ok("{\"type\":\"track\",\"event\":\"Product Viewed\",\"userId\":null,\"anonymousId\":\"a1\","
     "\"messageId\":\"m1\",\"timestamp\":\"2024-05-01T10:00:00.000Z\","
     "\"sentAt\":\"2024-05-01T10:00:01Z\",\"properties\":{\"product_id\":\"p1\",\"sku\":\"S-1\","
     "\"name\":\"Shoe\",\"price\":59.9,\"category\":\"Women/Shoes\"},"
     "\"context\":{\"locale\":\"de-DE\",\"campaign\":{\"source\":\"google\"}}}", &e);
  CHECK_INT(e.type, EV_VIEW);
  CHECK_INT(e.ts, 1714557600000LL);
  CHECK(e.customer == NULL);
  CHECK_STR(e.anon, "a1");
  CHECK_STR(line(&e, 0).item, "p1");
  CHECK_NEAR(line(&e, 0).price, 59.9, 1e-9);
  CHECK(e.name == NULL); /* the product's name is not a widget name */
  CHECK_STR(prop(&e, "name"), "Shoe");
  CHECK_STR(prop(&e, "sku"), "S-1");
  CHECK_STR(prop(&e, "category"), "Women/Shoes");
  CHECK_STR(e.msg_id, "m1"); /* typed: a retry with it is applied once */
  CHECK(prop(&e, "messageId") == NULL);
  CHECK_STR(prop(&e, "sentAt"), "2024-05-01T10:00:01Z");
  CHECK(json_is_object(json_object_get(json_object_get(ev_doc(&e), "props"), "context")));
  CHECK(json_object_get(json_object_get(ev_doc(&e), "props"), "userId") == NULL);
  /* The string props, typed for the indexes: the nested context and the
     number are not among them. */
  CHECK_STR(ev_attr_get(&e, "category"), "Women/Shoes");
  CHECK_STR(ev_attr_get(&e, "sku"), "S-1");
  CHECK(ev_attr_get(&e, "context") == NULL && ev_attr_get(&e, "price") == NULL);
  ev_clear(&e);

  ok("{\"type\":\"track\",\"event\":\"Product Added\",\"userId\":\"c1\","
     "\"properties\":{\"product_id\":\"p2\",\"price\":10,\"quantity\":3}}", &e);
  CHECK_INT(e.type, EV_ADD_TO_CART);
  CHECK_STR(e.customer, "c1");
  CHECK_NEAR(line(&e, 0).quantity, 3, 0);
  ev_clear(&e);

  ok("{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"c1\","
     "\"properties\":{\"order_id\":\"o1\",\"total\":40,\"currency\":\"USD\",\"coupon\":\"X\","
     "\"products\":[{\"product_id\":\"p1\",\"sku\":\"S-1\",\"price\":10,\"quantity\":2},"
     "{\"sku\":\"S-2\",\"price\":15},{\"id\":\"p3\",\"price\":0}]}}", &e);
  CHECK_INT(e.type, EV_PURCHASE);
  CHECK_STR(e.order_id, "o1");
  CHECK_NEAR(e.revenue, 40, 1e-9); /* "total" when no "revenue" */
  CHECK_STR(e.currency, "USD");
  CHECK_INT(e.n_lines, 3);
  CHECK_STR(line(&e, 0).item, "p1");
  CHECK_STR(line(&e, 1).item, "S-2");
  CHECK_STR(line(&e, 2).item, "p3");
  CHECK_STR(prop(&e, "coupon"), "X");
  ev_clear(&e);

  ok("{\"type\":\"track\",\"event\":\"Order Completed\",\"anonymousId\":\"a\","
     "\"properties\":{\"order_id\":\"o2\",\"revenue\":35,\"total\":40,"
     "\"products\":[{\"product_id\":\"p1\",\"price\":40}]}}", &e);
  CHECK_NEAR(e.revenue, 35, 1e-9);
  CHECK_NEAR(json_number_value(json_object_get(json_object_get(ev_doc(&e), "props"), "total")), 40,
             1e-9);
  ev_clear(&e);

  ok("{\"type\":\"track\",\"event\":\"Products Searched\",\"anonymousId\":\"a\","
     "\"properties\":{\"query\":\"blue hat\"}}", &e);
  CHECK_INT(e.type, EV_SEARCH);
  CHECK_STR(e.query, "blue hat");
  ev_clear(&e);

  ok("{\"type\":\"identify\",\"userId\":\"c1\",\"anonymousId\":\"a1\","
     "\"traits\":{\"email\":\"x@y.z\"}}", &e);
  CHECK_INT(e.type, EV_IDENTIFY);
  CHECK_STR(e.customer, "c1");
  CHECK_STR(e.anon, "a1");
  CHECK_STR(json_string_value(json_object_get(
                json_object_get(json_object_get(ev_doc(&e), "props"), "traits"), "email")), "x@y.z");
  ev_clear(&e);

  ok("{\"type\":\"page\",\"name\":\"Home\",\"anonymousId\":\"a1\","
     "\"properties\":{\"url\":\"https://shop/\"}}", &e);
  CHECK_INT(e.type, EV_PAGE_VIEW);
  CHECK(e.name == NULL);
  CHECK_STR(prop(&e, "name"), "Home");
  CHECK_STR(prop(&e, "url"), "https://shop/");
  ev_clear(&e);

  ok("{\"type\":\"track\",\"event\":\"Signed Up\",\"userId\":\"c9\"}", &e);
  CHECK_INT(e.type, EV_SIGNUP);
  CHECK_STR(e.customer, "c9");
  ev_clear(&e);
}

/* ** GA4: Measurement Protocol (name + params) and dataLayer (event + ecommerce) */

static void test_ga4_mp(void) {
  ev e;
  ok("{\"name\":\"view_item\",\"client_id\":\"a1\",\"user_id\":\"c1\","
     "\"timestamp_micros\":1700000000123456,\"params\":{\"session_id\":1699999,"
     "\"engagement_time_msec\":100,\"items\":[{\"item_id\":\"sku1\",\"item_name\":\"Shoe\","
     "\"price\":10}]}}", &e);
  CHECK_INT(e.type, EV_VIEW);
  CHECK_INT(e.ts, 1700000000123LL);
  CHECK_STR(e.anon, "a1");
  CHECK_STR(e.customer, "c1");
  CHECK_STR(e.session, "1699999");
  CHECK_INT(e.n_lines, 1);
  CHECK_STR(line(&e, 0).item, "sku1");
  CHECK_NEAR(line(&e, 0).price, 10, 1e-9);
  CHECK_STR(json_string_value(json_object_get(ev_doc(&e), "item")), "sku1");
  CHECK(json_object_get(ev_doc(&e), "items") == NULL); /* one line: "item" + "price" */
  CHECK_STR(prop(&e, "item_name"), "Shoe");
  CHECK(json_object_get(json_object_get(ev_doc(&e), "props"), "engagement_time_msec") != NULL);
  ev_clear(&e);

  ok("{\"name\":\"add_to_cart\",\"client_id\":\"a1\",\"params\":{\"items\":["
     "{\"item_id\":\"sku1\",\"quantity\":2,\"price\":3},{\"item_id\":\"sku2\"}]}}", &e);
  CHECK_INT(e.type, EV_ADD_TO_CART);
  CHECK_INT(e.n_lines, 2);
  CHECK_STR(json_string_value(json_object_get(ev_doc(&e), "item")), "sku1");
  CHECK_INT(json_array_size(json_object_get(ev_doc(&e), "items")), 2);
  ev_clear(&e);

  ok("{\"name\":\"purchase\",\"client_id\":\"a1\",\"params\":{\"transaction_id\":\"T9\","
     "\"value\":30,\"currency\":\"EUR\",\"tax\":2,\"items\":[{\"item_id\":\"sku1\","
     "\"price\":10,\"quantity\":3}]}}", &e);
  CHECK_INT(e.type, EV_PURCHASE);
  CHECK_STR(e.order_id, "T9");
  CHECK_NEAR(e.revenue, 30, 1e-9);
  CHECK_INT(e.n_lines, 1);
  CHECK_INT(json_array_size(json_object_get(ev_doc(&e), "items")), 1);
  ev_clear(&e);

  ok("{\"name\":\"search\",\"client_id\":\"a1\",\"params\":{\"search_term\":\"socks\"}}", &e);
  CHECK_INT(e.type, EV_SEARCH);
  CHECK_STR(e.query, "socks");
  ev_clear(&e);

  ok("{\"name\":\"login\",\"client_id\":\"a1\",\"user_id\":\"c1\"}", &e);
  CHECK_INT(e.type, EV_IDENTIFY);
  CHECK_STR(e.customer, "c1");
  CHECK_STR(e.anon, "a1");
  ev_clear(&e);
  EXPECT_ERR("{\"name\":\"login\",\"user_id\":\"c1\"}", TAILOR_EFIELD, "anon",
             "identify: missing field 'anon' (or 'anonymousId', 'client_id')");
}

static void test_ga4_datalayer(void) {
  ev e;
  ok("{\"event\":\"purchase\",\"user_id\":\"c1\",\"ecommerce\":{\"transaction_id\":\"T1\","
     "\"value\":20,\"currency\":\"EUR\",\"items\":[{\"item_id\":\"sku1\",\"price\":10,"
     "\"quantity\":2}]},\"gtm.uniqueEventId\":12}", &e);
  CHECK_INT(e.type, EV_PURCHASE);
  CHECK_STR(e.customer, "c1");
  CHECK_STR(e.order_id, "T1");
  CHECK_NEAR(e.revenue, 20, 1e-9);
  CHECK_STR(e.currency, "EUR");
  CHECK_NEAR(line(&e, 0).quantity, 2, 0);
  CHECK(json_object_get(json_object_get(ev_doc(&e), "props"), "gtm.uniqueEventId") != NULL);
  ev_clear(&e);

  ok("{\"event\":\"purchase\",\"user_id\":\"c1\",\"ecommerce\":{\"transaction_id\":\"T2\","
     "\"items\":[{\"item_id\":\"a\",\"price\":2.5,\"quantity\":2},{\"item_id\":\"b\","
     "\"price\":1}]}}", &e);
  CHECK_NEAR(e.revenue, 6, 1e-9); /* no value: the sum of the lines */
  ev_clear(&e);

  ok("{\"event\":\"view_item\",\"client_id\":\"a1\",\"ecommerce\":{\"items\":[{\"item_id\":"
     "\"sku3\",\"price\":7}]}}", &e);
  CHECK_INT(e.type, EV_VIEW);
  CHECK_STR(line(&e, 0).item, "sku3");
  ev_clear(&e);

  ok("{\"event\":\"add_to_cart\",\"client_id\":\"a1\",\"ecommerce\":{\"currency\":\"EUR\","
     "\"value\":20,\"items\":[{\"item_id\":\"sku1\",\"price\":10,\"quantity\":2}]}}", &e);
  CHECK_INT(e.type, EV_ADD_TO_CART);
  CHECK_NEAR(line(&e, 0).quantity, 2, 0);
  CHECK_NEAR(e.revenue, 20, 1e-9);
  ev_clear(&e);
}

static void test_aliases(void) {
  CHECK_INT(ev_type_lookup("Order Completed"), EV_PURCHASE);
  CHECK_INT(ev_type_lookup("order completed"), EV_PURCHASE);
  CHECK_INT(ev_type_lookup("Product Viewed"), EV_VIEW);
  CHECK_INT(ev_type_lookup("Product Added"), EV_ADD_TO_CART);
  CHECK_INT(ev_type_lookup("Product Removed"), EV_REMOVE_FROM_CART);
  CHECK_INT(ev_type_lookup("Checkout Started"), EV_CHECKOUT);
  CHECK_INT(ev_type_lookup("Order Refunded"), EV_REFUND);
  CHECK_INT(ev_type_lookup("Products Searched"), EV_SEARCH);
  CHECK_INT(ev_type_lookup("Signed Up"), EV_SIGNUP);
  CHECK_INT(ev_type_lookup("page"), EV_PAGE_VIEW);
  CHECK_INT(ev_type_lookup("view_item"), EV_VIEW);
  CHECK_INT(ev_type_lookup("begin_checkout"), EV_CHECKOUT);
  CHECK_INT(ev_type_lookup("refund"), EV_REFUND);
  CHECK_INT(ev_type_lookup("sign_up"), EV_SIGNUP);
  CHECK_INT(ev_type_lookup("login"), EV_IDENTIFY);
  /* Known, but tailor has no type for them: `other` events, not rec_*. */
  CHECK_INT(ev_type_lookup("Product Clicked"), EV_OTHER);
  CHECK_INT(ev_type_lookup("select_item"), EV_OTHER);
  CHECK_INT(ev_type_lookup("view_item_list"), EV_OTHER);
  CHECK_INT(ev_type_lookup("Cart Viewed"), EV_OTHER);
  CHECK_INT(ev_type_lookup("Order"), -1);
  CHECK_INT(ev_type_lookup(""), -1);
  CHECK_INT(ev_type_lookup(NULL), -1);
  for (int t = 0; t < EV_TYPE_COUNT; t++) CHECK_INT(ev_type_lookup(ev_type_name((ev_type)t)), t);
  CHECK_STR(ev_type_name(EV_ADD_TO_CART), "add_to_cart");
  CHECK(ev_type_name(EV_TYPE_COUNT) == NULL);
  CHECK(ev_type_name((ev_type)-1) == NULL);
}

/* ** errors */

static void test_missing_fields(void) {
  EXPECT_ERR("{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"c1\","
             "\"properties\":{\"products\":[{\"product_id\":\"p\"}]}}",
             TAILOR_EFIELD, "order_id", "purchase: missing field 'order_id' (or 'transaction_id')");
  EXPECT_ERR("{\"name\":\"purchase\",\"client_id\":\"a\",\"params\":{\"items\":[{\"item_id\":1}]}}",
             TAILOR_EFIELD, "order_id", "missing field 'order_id'");
  EXPECT_ERR("{\"type\":\"purchase\",\"customer\":\"c\",\"order_id\":\"o\",\"items\":[]}",
             TAILOR_EFIELD, "items", "purchase: missing field 'items'");
  EXPECT_ERR("{\"type\":\"view\",\"item\":\"x\"}", TAILOR_EFIELD, "customer",
             "view: missing field 'customer', 'anon' or 'session'");
  EXPECT_ERR("{\"type\":\"view\",\"anon\":\"a\"}", TAILOR_EFIELD, "item",
             "view: missing field 'item'");
  EXPECT_ERR("{\"type\":\"search\",\"anon\":\"a\"}", TAILOR_EFIELD, "query", "'query'");
  EXPECT_ERR("{\"type\":\"popup_shown\",\"anon\":\"a\"}", TAILOR_EFIELD, "name", "'name'");
  EXPECT_ERR("{\"type\":\"email_sent\",\"anon\":\"a\",\"template\":\"t\"}", TAILOR_EFIELD,
             "customer", "email_sent: missing field 'customer'");
  EXPECT_ERR("{\"type\":\"item_upsert\"}", TAILOR_EFIELD, "item", "a catalog object");
  EXPECT_ERR("{\"type\":\"customer_upsert\",\"customer\":{\"email\":\"x\"}}", TAILOR_EFIELD,
             "customer.id", "missing field 'customer.id'");
  EXPECT_ERR("{\"type\":\"item_upsert\",\"item\":{\"name\":\"x\"}}", TAILOR_EFIELD, "item.id",
             "missing field 'item.id'");
  EXPECT_ERR("{\"anon\":\"a\"}", TAILOR_EFIELD, "type", "missing field 'type'");
  EXPECT_ERR("{\"type\":\"track\",\"anonymousId\":\"a\"}", TAILOR_EFIELD, "event",
             "missing field 'event'");
  /* A revenue summed from the lines is bounded as a given one is: it was
     stored past the bound, then refused when the log was read back. */
  EXPECT_ERR("{\"type\":\"purchase\",\"customer\":\"c\",\"order_id\":\"o\","
             "\"items\":[{\"id\":\"a\",\"price\":1e9,\"quantity\":2}]}",
             TAILOR_EFIELD, "items", "sum to more than 1000000000");
}

static void test_mistyped_fields(void) {
  /* A consent's purposes and a profile's consent are true or false. */
  EXPECT_ERR("{\"type\":\"consent\",\"anon\":\"a\",\"props\":{\"analytics\":\"false\"}}",
             TAILOR_EFIELD, "props.analytics", "expected true or false, found 'false'");
  EXPECT_ERR("{\"type\":\"consent\",\"anon\":\"a\",\"marketing\":0}", TAILOR_EFIELD,
             "props.marketing", "expected true or false, found 0");
  EXPECT_ERR("{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c\",\"consent\":"
             "{\"email\":\"yes\"}}}", TAILOR_EFIELD, "consent.email",
             "expected true or false, found 'yes'");
  EXPECT_ERR("{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c\",\"consent\":true}}",
             TAILOR_EFIELD, "consent", "expected an object, found true");
  EXPECT_ERR("{\"type\":\"purchase\",\"customer\":\"c\",\"order_id\":\"o\",\"items\":["
             "{\"id\":\"a\",\"price\":1},{\"id\":\"b\",\"price\":\"ten\"}]}",
             TAILOR_EFIELD, "items[1].price", "expected a number from 0 to 1000000000, found 'ten'");
  EXPECT_ERR("{\"type\":\"purchase\",\"customer\":\"c\",\"order_id\":\"o\",\"items\":["
             "{\"id\":\"a\",\"quantity\":-2}]}",
             TAILOR_EFIELD, "items[0].quantity", "expected a number from 0 to 1000000, found -2");
  EXPECT_ERR("{\"type\":\"purchase\",\"customer\":\"c\",\"order_id\":\"o\",\"items\":{}}",
             TAILOR_EFIELD, "items", "expected an array, found an object");
  EXPECT_ERR("{\"type\":\"purchase\",\"customer\":\"c\",\"order_id\":\"o\",\"items\":["
             "{\"id\":\"a\"},{\"price\":3}]}",
             TAILOR_EFIELD, "items[1].id", "missing field 'items[1].id'");
  EXPECT_ERR("{\"type\":\"rec_shown\",\"anon\":\"a\",\"items\":[true]}", TAILOR_EFIELD,
             "items[0]", "expected an object, found true");
  EXPECT_ERR("{\"type\":\"view\",\"item\":\"x\",\"customer\":1.5}", TAILOR_EFIELD, "customer",
             "found 1.5");
  EXPECT_ERR("{\"type\":\"view\",\"item\":\"x\",\"anon\":{}}", TAILOR_EFIELD, "anon",
             "found an object");
  EXPECT_ERR("{\"type\":\"view\",\"item\":\"x\",\"session\":true}", TAILOR_EFIELD, "session",
             "found true");
  EXPECT_ERR("{\"type\":\"view\",\"item\":\"\",\"anon\":\"a\"}", TAILOR_EFIELD, "item",
             "found an empty string");
  EXPECT_ERR("{\"type\":\"view\",\"anon\":\"a\",\"price\":\"1\",\"item\":\"x\"}", TAILOR_EFIELD,
             "price", "view: field 'price': expected a number");
  EXPECT_ERR("{\"type\":\"item_upsert\",\"item\":\"sku1\"}", TAILOR_EFIELD, "item",
             "expected an object, found 'sku1'");
  EXPECT_ERR("{\"type\":\"item_upsert\",\"item\":{\"id\":\"a\",\"price\":\"9\"}}", TAILOR_EFIELD,
             "item.price", "expected a number");
  EXPECT_ERR("{\"type\":\"item_upsert\",\"item\":{\"id\":false}}", TAILOR_EFIELD, "item.id",
             "found false");
  /* Stock as a string or a 0/1 would list a sold-out item as in stock. */
  EXPECT_ERR("{\"type\":\"item_upsert\",\"item\":{\"id\":\"a\",\"in_stock\":\"false\"}}",
             TAILOR_EFIELD, "item.in_stock", "expected true or false, found 'false'");
  EXPECT_ERR("{\"type\":\"item_upsert\",\"item\":{\"id\":\"a\",\"in_stock\":0}}",
             TAILOR_EFIELD, "item.in_stock", "expected true or false, found 0");
  EXPECT_ERR("{\"type\":\"item_upsert\",\"item\":{\"id\":\"a\",\"stock\":\"0\"}}",
             TAILOR_EFIELD, "item.stock", "expected a number, found '0'");
  EXPECT_ERR("{\"type\":17}", TAILOR_EFIELD, "type", "expected a string, found 17");

  char big[400];
  snprintf(big, sizeof big, "{\"type\":\"view\",\"anon\":\"a\",\"item\":\"%0300d\"}", 0);
  EXPECT_ERR(big, TAILOR_EFIELD, "item", "at most 256 bytes, found a string of 300 bytes");
  snprintf(big, sizeof big, "{\"type\":\"view\",\"anon\":\"a\",\"item\":\"%0256d\"}", 0);
  ev e;
  CHECK_INT(parse(big, &e, NULL), TAILOR_OK); /* exactly the limit */
  ev_clear(&e);
}

static void test_unknown_type(void) {
  EXPECT_ERR("{\"type\":\"track\",\"event\":\"Foo Bar\",\"userId\":\"c\"}", TAILOR_ETYPE, "event",
             "unknown event type 'Foo Bar'");
  EXPECT_ERR("{\"type\":\"bogus\"}", TAILOR_ETYPE, "type", "unknown event type 'bogus'");
  /* echoed input cannot break the one-line message */
  EXPECT_ERR("{\"type\":\"a\\nb\"}", TAILOR_ETYPE, "type", "unknown event type 'a b'");
  /* tailor's own log event is not a sender's, under any spelling of the
     envelope; the log's reader (internal) takes it. */
  static const char erase[] = "{\"type\":\"erase\",\"customer_sha256\":\"ab\"}";
  EXPECT_ERR(erase, TAILOR_ETYPE, "type", "'erase' is tailor's own log event");
  EXPECT_ERR("{\"type\":\"track\",\"event\":\"erase\",\"userId\":\"c\"}", TAILOR_ETYPE, "type",
             "'erase' is tailor's own log event");
  ev_limits log = lim;
  log.internal = 1;
  ev e;
  CHECK_INT(ev_parse(erase, strlen(erase), &log, &e, NULL), TAILOR_OK);
  CHECK_INT(e.type, EV_ERASE);
  CHECK_STR(json_string_value(json_object_get(e.props, "customer_sha256")), "ab");
  ev_clear(&e);
  /* A catalog item stored before its stock was checked reads back. */
  static const char item[] = "{\"type\":\"item_upsert\",\"item\":{\"id\":\"a\",\"in_stock\":\"no\"}}";
  CHECK_INT(ev_parse(item, strlen(item), &log, &e, NULL), TAILOR_OK);
  ev_clear(&e);
}

/* Spec events without a tailor type are `other` events under their name
   (the sender's own "name" stays in props), and read back so; any name is
   one through ev_from_json_any (the Segment and GA4 endpoints). */
static void test_other(void) {
  ev e;
  ok("{\"type\":\"track\",\"event\":\"Product Clicked\",\"anonymousId\":\"a\","
     "\"properties\":{\"product_id\":\"p1\",\"name\":\"Wool Hat\"}}", &e);
  CHECK_INT(e.type, EV_OTHER);
  CHECK_STR(e.name, "Product Clicked");
  CHECK_STR(line(&e, 0).item, "p1");
  CHECK_STR(prop(&e, "name"), "Wool Hat");
  roundtrip(&e);
  ev_clear(&e);
  ok("{\"name\":\"select_item\",\"client_id\":\"a\",\"params\":{\"items\":[{\"item_id\":\"p\"}]}}",
     &e);
  CHECK_INT(e.type, EV_OTHER);
  CHECK_STR(e.name, "select_item");
  ev_clear(&e);
  json_t *j = json_loads("{\"type\":\"track\",\"event\":\"Foo Bar\",\"userId\":\"c\"}", 0, NULL);
  CHECK_INT(ev_from_json_any(j, NULL, &e, NULL), TAILOR_OK);
  CHECK_INT(e.type, EV_OTHER);
  CHECK_STR(e.name, "Foo Bar");
  ev_clear(&e);
  CHECK_INT(ev_from_json(j, NULL, &e, NULL), TAILOR_ETYPE);
  json_decref(j);
}

/* ** Nesting: 32 levels are fine, 2,000 are refused before jansson sees
   them (brackets inside strings do not count). */

static void test_nesting(void) {
  char deep[8192];
  int n = snprintf(deep, sizeof deep, "{\"type\":\"view\",\"anon\":\"a\",\"item\":\"x\",\"props\":");
  for (int i = 0; i < 2000; i++) deep[n++] = '[';
  for (int i = 0; i < 2000; i++) deep[n++] = ']';
  deep[n++] = '}';
  deep[n] = '\0';
  EXPECT_ERR(deep, TAILOR_EPARSE, "", "nested deeper than 32 levels");
  n = snprintf(deep, sizeof deep, "{\"type\":\"view\",\"anon\":\"[[[[\",\"item\":\"x\",\"n\":");
  for (int i = 0; i < 30; i++) deep[n++] = '[';
  for (int i = 0; i < 30; i++) deep[n++] = ']';
  deep[n++] = '}';
  deep[n] = '\0';
  ev shallow;
  CHECK_INT(parse(deep, &shallow, NULL), TAILOR_OK);
  ev_clear(&shallow);
}

static void test_bad_input(void) {
  const char *bad = "{\"type\":\"view\",\"item\":\"a\xC3\x28\"}";
  char want[32];
  snprintf(want, sizeof want, "at byte %d", (int)(strchr(bad, '\xC3') - bad));
  EXPECT_ERR(bad, TAILOR_EUTF8, "", want);
  EXPECT_ERR("{\"type\":\"view\",\"item\":\"\xED\xA0\x80\"}", TAILOR_EUTF8, "", "at byte 23");

  EXPECT_ERR("[1,2]", TAILOR_EPARSE, "", "found an array");
  EXPECT_ERR("42", TAILOR_EPARSE, "", "malformed JSON");
  EXPECT_ERR("{\"type\":\"view\"", TAILOR_EPARSE, "", "malformed JSON at line 1");
  EXPECT_ERR("{\"type\":\"view\"}\n{}", TAILOR_EPARSE, "", "line 2");
  EXPECT_ERR("", TAILOR_EPARSE, "", "malformed JSON");


  /* too big: the configured limit, then the default */
  ev e;
  tailor_error err;
  ev_limits small = {32, 0, NOW, 0, 0, 0};
  const char *view = "{\"type\":\"view\",\"anon\":\"a\",\"item\":\"x\"}";
  CHECK_INT(ev_parse(view, strlen(view), &small, &e, &err), TAILOR_ETOOBIG);
  CHECK_CONTAINS(err.message, "event is 37 bytes, more than the limit of 32 bytes");
  size_t n = EV_DEFAULT_MAX_BYTES + 1;
  char *huge = malloc(n);
  memset(huge, ' ', n);
  memcpy(huge, view, strlen(view));
  CHECK_INT(ev_parse(huge, n, NULL, &e, &err), TAILOR_ETOOBIG);
  CHECK_CONTAINS(err.message, "limit of 65536");
  CHECK_INT(ev_parse(huge, n - 1, NULL, &e, &err), TAILOR_OK); /* trailing blanks are fine */
  ev_clear(&e);
  free(huge);

  /* too many lines */
  ev_limits two = {0, 2, NOW, 0, 0, 0};
  const char *three = "{\"type\":\"rec_shown\",\"anon\":\"a\",\"items\":[\"x\",\"y\",\"z\"]}";
  CHECK_INT(ev_parse(three, strlen(three), &two, &e, &err), TAILOR_ETOOBIG);
  CHECK_STR(err.field, "items");
  CHECK_CONTAINS(err.message, "3 product lines, more than the limit of 2");
  CHECK_INT(ev_parse(three, strlen(three), &lim, &e, &err), TAILOR_OK);
  ev_clear(&e);

  /* not NUL-terminated: only `len` bytes are read */
  const char *page = "{\"type\":\"page_view\",\"anon\":\"a\"}garbage";
  CHECK_INT(ev_parse(page, strlen(page) - 7, &lim, &e, &err), TAILOR_OK);
  ev_clear(&e);
  CHECK_INT(ev_parse(NULL, 0, &lim, &e, NULL), TAILOR_EINVAL);
}

/* A trusted sender's clock may run ahead by limits.max_future_ms, no more. */
static void test_future_times(void) {
  ev_limits window = {0, 0, NOW, 0, 300000, 0};
  ev e;
  tailor_error err = {0};
  CHECK_INT(ev_parse("{\"type\":\"view\",\"anon\":\"a\",\"item\":\"x\",\"ts\":1700000290000}",
                     56, &window, &e, &err), TAILOR_OK);
  ev_clear(&e);
  const char *far = "{\"type\":\"view\",\"anon\":\"a\",\"item\":\"x\",\"ts\":\"2099-01-01\"}";
  CHECK_INT(ev_parse(far, strlen(far), &window, &e, &err), TAILOR_ETIME);
  CHECK_STR(err.field, "ts");
  CHECK_CONTAINS(err.message, "ahead of the server's clock, more than the 300 s allowed");
  CHECK_INT(ev_parse(far, strlen(far), &lim, &e, &err), TAILOR_OK); /* no window, no check */
  ev_clear(&e);
}

static void test_bad_timestamps(void) {
  EXPECT_ERR("{\"type\":\"view\",\"anon\":\"a\",\"item\":\"x\",\"ts\":\"2024-13-01\"}", TAILOR_ETIME,
             "ts", "view: field 'ts': cannot read '2024-13-01' as a timestamp");
  EXPECT_ERR("{\"type\":\"track\",\"event\":\"Product Viewed\",\"anonymousId\":\"a\","
             "\"timestamp\":true,\"properties\":{\"product_id\":\"p\"}}",
             TAILOR_ETIME, "ts", "field 'timestamp': cannot read true");
  EXPECT_ERR("{\"name\":\"page_view\",\"client_id\":\"a\",\"timestamp_micros\":\"soon\"}",
             TAILOR_ETIME, "ts", "'timestamp_micros'");
}

/* ** timestamps */

static int64_t ts_of(json_t *v) {
  int64_t ms = -42;
  int rc = ev_parse_time(v, &ms);
  json_decref(v);
  return rc ? -999 : ms;
}

static int64_t ts_str(const char *s) { return ts_of(json_string(s)); }

static void test_timestamps(void) {
  CHECK_INT(ts_str("2024-05-01T10:00:00Z"), 1714557600000LL);
  CHECK_INT(ts_str("2024-05-01t10:00:00z"), 1714557600000LL);
  CHECK_INT(ts_str("2024-05-01 10:00:00"), 1714557600000LL); /* no zone: UTC */
  CHECK_INT(ts_str("2024-05-01T10:00Z"), 1714557600000LL);
  CHECK_INT(ts_str("2024-05-01T12:00:00.250+02:00"), 1714557600250LL);
  CHECK_INT(ts_str("2024-05-01T12:00:00+0200"), 1714557600000LL);
  CHECK_INT(ts_str("2024-05-01T12:00:00+02"), 1714557600000LL);
  CHECK_INT(ts_str("2024-05-01T05:30:00-04:30"), 1714557600000LL);
  CHECK_INT(ts_str("2024-05-01T10:00:00.5Z"), 1714557600500LL);
  CHECK_INT(ts_str("2024-05-01T10:00:00.123456789Z"), 1714557600123LL);
  CHECK_INT(ts_str("2024-05-01"), 1714521600000LL);
  CHECK_INT(ts_str("2024-02-29"), 1709164800000LL);
  CHECK_INT(ts_str("2000-03-01"), 951868800000LL);
  CHECK_INT(ts_str("1969-12-31T23:59:59Z"), -1000);
  CHECK_INT(ts_str("9999-12-31T23:59:59Z"), 253402300799000LL);
  CHECK_INT(ts_str("1700000000000"), 1700000000000LL);
  CHECK_INT(ts_str("1700000000"), 1700000000000LL); /* seconds */
  CHECK_INT(ts_of(json_integer(1700000000)), 1700000000000LL);
  CHECK_INT(ts_of(json_integer(1700000000123LL)), 1700000000123LL);
  CHECK_INT(ts_of(json_real(1700000000.5)), 1700000000500LL);
  CHECK_INT(ts_of(json_real(1700000000123.0)), 1700000000123LL);

  static const char *const bad[] = {
      "2024-13-01", "2024-00-10", "2024-04-31", "2023-02-29", "2024-05-01T24:00:00Z",
      "2024-05-01T10:60:00Z", "2024-05-01T10:00:61Z", "2024-05-01T10:00:00+24:00",
      "2024-05-01T10:00:00+02:", "2024-05-01T10:00:00+2", "2024-05-01T10:00:00Zjunk",
      "2024-05-01T10:00:00.Z", "2024-05-01T", "2024-5-1", "2024-05-01Z", "yesterday", "",
      "12a", "-1700000000000", "99999999999999999999",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int64_t ms = ts_str(bad[i]);
    if (ms != -999) fprintf(stderr, "accepted '%s' as %lld\n", bad[i], (long long)ms);
    CHECK_INT(ms, -999);
  }
  CHECK_INT(ts_of(json_true()), -999);
  CHECK_INT(ts_of(json_null()), -999);
  CHECK_INT(ts_of(json_object()), -999);
  CHECK_INT(ts_of(json_real(1e300)), -999);
  CHECK_INT(ts_of(json_integer(INT64_MAX)), -999);

  /* micros and preference order through ev_parse */
  ev e;
  ok("{\"name\":\"page_view\",\"client_id\":\"a\",\"timestamp_micros\":\"1700000000999999\"}",
     &e);
  CHECK_INT(e.ts, 1700000000999LL);
  ev_clear(&e);
  ok("{\"type\":\"page_view\",\"anon\":\"a\",\"originalTimestamp\":\"2024-05-01T10:00:00Z\","
     "\"sentAt\":\"2024-05-01T10:00:05Z\"}", &e);
  CHECK_INT(e.ts, 1714557600000LL);
  ev_clear(&e);
  /* zeroed limits: the clock gives the time */
  CHECK_INT(ev_parse("{\"type\":\"page_view\",\"anon\":\"a\"}", 31, NULL, &e, NULL), TAILOR_OK);
  CHECK(e.ts > 1700000000000LL);
  ev_clear(&e);
}

/* ** Money and counts: nothing below zero or past the finite */

static void test_amounts(void) {
  EXPECT_ERR("{\"type\":\"view\",\"anon\":\"a\",\"item\":\"x\",\"price\":-1}", TAILOR_EFIELD,
             "price", "expected a number from 0 to 1000000000, found -1");
  EXPECT_ERR("{\"type\":\"purchase\",\"anon\":\"a\",\"order_id\":\"o\",\"revenue\":-5,"
             "\"items\":[\"x\"]}", TAILOR_EFIELD, "revenue", "found -5");
  EXPECT_ERR("{\"type\":\"purchase\",\"anon\":\"a\",\"order_id\":\"o\",\"items\":["
             "{\"id\":\"x\",\"price\":-2}]}", TAILOR_EFIELD, "items[0].price", "found -2");
  EXPECT_ERR("{\"type\":\"purchase\",\"anon\":\"a\",\"order_id\":\"o\",\"items\":["
             "{\"id\":\"x\",\"price\":1e308,\"quantity\":10}]}", TAILOR_EFIELD, "items[0].price",
             "from 0 to 1000000000, found 1e+308");
  EXPECT_ERR("{\"type\":\"purchase\",\"anon\":\"a\",\"order_id\":\"o\",\"revenue\":1e300,"
             "\"items\":[\"x\"]}", TAILOR_EFIELD, "revenue", "from 0 to 1000000000");
  EXPECT_ERR("{\"type\":\"add_to_cart\",\"anon\":\"a\",\"item\":\"x\",\"quantity\":1e7}",
             TAILOR_EFIELD, "quantity", "from 0 to 1000000");
  EXPECT_ERR("{\"type\":\"add_to_cart\",\"anon\":\"a\",\"item\":\"x\",\"quantity\":-3}",
             TAILOR_EFIELD, "quantity", "found -3");
  EXPECT_ERR("{\"type\":\"item_upsert\",\"item\":{\"id\":\"a\",\"price\":-9}}", TAILOR_EFIELD,
             "item.price", "found -9");
}

/* ** Message ids: at the top level only */

static void test_message_ids(void) {
  ev e;
  ok("{\"type\":\"view\",\"id\":77,\"anon\":\"a\",\"item\":\"x\"}", &e);
  CHECK_STR(e.msg_id, "77");
  ev_clear(&e);
  ok("{\"type\":\"view\",\"message_id\":\"m\",\"messageId\":\"n\",\"anon\":\"a\","
     "\"properties\":{\"id\":\"x\"}}", &e);
  CHECK_STR(e.msg_id, "m");
  CHECK_STR(line(&e, 0).item, "x"); /* inside properties an id is the product */
  CHECK_STR(prop(&e, "messageId"), "n");
  ev_clear(&e);
  EXPECT_ERR("{\"type\":\"view\",\"id\":{},\"anon\":\"a\",\"item\":\"x\"}", TAILOR_EFIELD,
             "message_id", "expected a non-empty string or integer id");
}

/* ** The stored text read again: its time is the text's, nothing else */

static void test_replay(void) {
  ev e, r;
  ok("{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"c1\",\"messageId\":\"m1\","
     "\"properties\":{\"order_id\":\"o1\",\"coupon\":\"X\",\"products\":[{\"product_id\":\"p1\","
     "\"price\":10,\"quantity\":2,\"brand\":\"B\"}]},\"context\":{\"ip\":\"1.2.3.4\"}}", &e);
  size_t n;
  const char *body = ev_body(&e, &n);
  ev_limits later = {0, 0, NOW + 86400000, 0, 0, 0};
  CHECK_INT(ev_parse(body, n, &later, &r, NULL), TAILOR_OK);
  CHECK_INT(r.ts, NOW);
  CHECK_STR(r.msg_id, "m1");
  CHECK_NEAR(r.revenue, 20, 1e-9);
  CHECK_STR(json_string_value(json_object_get(r.lines[0].extra, "brand")), "B");
  CHECK_STR(prop(&r, "coupon"), "X");
  CHECK(json_is_object(json_object_get(json_object_get(ev_doc(&r), "props"), "context")));
  ev_clear(&r);
  ev_clear(&e);
  ev_clear(NULL);
  /* A stored event's props stay props when the log is read again: an
     alias that lost to another name, or a line's extra key, never becomes
     the customer (the server screens a storefront's customer out of the
     fields, not out of props), and a top-level id beside a message id
     does not become an item. */
  ok("{\"type\":\"view\",\"anon\":\"atk\",\"item\":\"a\",\"props\":{\"userId\":\"victim\","
     "\"customer\":\"victim\",\"id\":\"x\",\"session\":\"s\"}}", &e);
  CHECK(e.customer == NULL && e.session == NULL && e.n_lines == 1);
  CHECK_STR(prop(&e, "userId"), "victim");
  CHECK_STR(prop(&e, "customer"), "victim");
  ev_clear(&e);
  ok("{\"type\":\"add_to_cart\",\"anon\":\"atk\",\"items\":[{\"id\":\"b\",\"customer\":\"victim\"}]}",
     &e);
  body = ev_body(&e, &n);
  CHECK_INT(ev_parse(body, n, &later, &r, NULL), TAILOR_OK);
  CHECK(e.customer == NULL && r.customer == NULL);
  ev_clear(&r);
  ev_clear(&e);
  ok("{\"type\":\"checkout\",\"anon\":\"a\",\"message_id\":\"m\",\"id\":\"x\"}", &e);
  body = ev_body(&e, &n);
  CHECK_INT(ev_parse(body, n, &later, &r, NULL), TAILOR_OK);
  CHECK_INT(e.n_lines, 0);
  CHECK_INT(r.n_lines, 0);
  CHECK_STR(r.msg_id, "m");
  ev_clear(&r);
  ev_clear(&e);
}

int main(void) {
  RUN(test_native_view);
  RUN(test_native_cart_and_purchase);
  RUN(test_attrs);
  RUN(test_native_others);
  RUN(test_segment);
  RUN(test_ga4_mp);
  RUN(test_ga4_datalayer);
  RUN(test_aliases);
  RUN(test_missing_fields);
  RUN(test_mistyped_fields);
  RUN(test_unknown_type);
  RUN(test_other);
  RUN(test_bad_input);
  RUN(test_nesting);
  RUN(test_bad_timestamps);
  RUN(test_future_times);
  RUN(test_timestamps);
  RUN(test_amounts);
  RUN(test_message_ids);
  RUN(test_replay);
  return CHECK_DONE();
}
