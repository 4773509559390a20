/*
** test_console.c: the merchant console's figures that the engine works
** out (engine/console.h).
**
** Revenue attribution is kept by the index as events are applied; it must
** give what a scan of the event log gives.  The reference here is that
** scan, the SQL the console ran before (one pass over the touches and
** orders sorted by person, with anonymous ids resolved through the
** identities table as they are now): on a generated shop of anonymous
** visitors, customers, visitors who log in halfway and visitors known only
** by their session, with several strategies and widgets, for several
** windows and periods; then again after a restart from the checkpoint,
** after a rebuild from the log, and past the cap on groups.
*/
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "engine/console.h"
#include "engine/engine.h"

static char tmp[512];

/* An engine of config `cfg`, or NULL (a failed check, with the reason). */
static tailor *open_config(const char *cfg) {
  tailor_error err = {0};
  tailor *t = tailor_open(cfg, &err);
  CHECK(t != NULL);
  if (!t) fprintf(stderr, "open failed: %s\n", err.message);
  return t;
}

static tailor *open_engine(const char *db) {
  char cfg[1200];
  snprintf(cfg, sizeof cfg,
           "{\"db\":\"%s\",\"strategies\":\"\",\"store\":{\"synchronous_full\":false}}", db);
  return open_config(cfg);
}

static int ingest(tailor *t, const char *json) {
  tailor_error err = {0};
  int rc = tailor_ingest(t, json, strlen(json), &err);
  if (rc) fprintf(stderr, "ingest failed: %s: %s\n", err.message, json);
  return rc;
}

/* A small deterministic generator. */
static uint64_t rng = 88172645463325252ull;
static unsigned pick(unsigned n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (unsigned)(rng % n);
}

#define PEOPLE 48
#define DAY 86400000LL

/* Who a generated person is: 0 anonymous, 1 a customer, 2 an anonymous
   visitor who logs in as a customer halfway, 3 known by the session only. */
static void who(char *out, size_t n, int p, int half) {
  int kind = p % 4;
  if (kind == 0) snprintf(out, n, "\"anon\":\"a%d\",\"session\":\"s%d-%d\"", p, p, half);
  else if (kind == 1) snprintf(out, n, "\"customer\":\"c%d\",\"session\":\"s%d-%d\"", p, p, half);
  else if (kind == 2 && !half) snprintf(out, n, "\"anon\":\"a%d\",\"session\":\"s%d-0\"", p, p);
  else if (kind == 2) snprintf(out, n, "\"customer\":\"c%d\",\"anon\":\"a%d\",\"session\":\"s%d-1\"", p, p, p);
  else snprintf(out, n, "\"session\":\"s%d-only\"", p);
}

/* `n` events over the 12 days before `end`, in time order. */
static void shop(tailor *t, int n, int64_t end, int strategies) {
  static const char *const widgets[] = {"home", "product", "cart"};
  int64_t step = 12 * DAY / n;
  for (int k = 0; k < n; k++) {
    int64_t ts = end - (n - k) * step + pick((unsigned)step / 2);
    int p = (int)pick(PEOPLE), half = k > n / 2;
    char w[160], line[600];
    who(w, sizeof w, p, half);
    if (p % 4 == 2 && k == n / 2 + 1) { /* the login */
      snprintf(line, sizeof line,
               "{\"type\":\"identify\",\"customer\":\"c%d\",\"anon\":\"a%d\",\"ts\":%lld}", p, p,
               (long long)ts);
      CHECK_INT(ingest(t, line), 0);
      continue;
    }
    int customer = p % 4 == 1 || (p % 4 == 2 && half);
    unsigned kind = pick(customer ? 8 : 7);
    char strategy[40];
    snprintf(strategy, sizeof strategy, "s%u.lua", pick((unsigned)strategies));
    const char *widget = widgets[pick(3)];
    switch (kind) {
      case 0: case 1:
        snprintf(line, sizeof line,
                 "{\"type\":\"rec_shown\",%s,\"ts\":%lld,\"name\":\"%s\",\"items\":[{\"id\":\"x\"}],"
                 "\"props\":{\"strategy\":\"%s\"}}", w, (long long)ts, widget, strategy);
        break;
      case 2:
        snprintf(line, sizeof line,
                 "{\"type\":\"rec_clicked\",%s,\"ts\":%lld,\"name\":\"%s\",\"item\":\"x\","
                 "\"props\":{\"strategy\":\"%s\"}}", w, (long long)ts, widget, strategy);
        break;
      case 3:
        snprintf(line, sizeof line,
                 "{\"type\":\"%s\",%s,\"ts\":%lld,\"name\":\"free_shipping\"%s}",
                 pick(2) ? "popup_shown" : "popup_clicked", w, (long long)ts,
                 pick(2) ? ",\"props\":{\"strategy\":\"popup.lua\"}" : "");
        break;
      case 4:
        snprintf(line, sizeof line, "{\"type\":\"view\",%s,\"ts\":%lld,\"item\":\"x\"}", w,
                 (long long)ts);
        break;
      case 5: case 6:
        snprintf(line, sizeof line,
                 "{\"type\":\"purchase\",%s,\"ts\":%lld,\"order_id\":\"o%d\",\"items\":"
                 "[{\"id\":\"x\",\"price\":%u.%02u}]}", w, (long long)ts, k, 1 + pick(200),
                 pick(100));
        break;
      default:
        snprintf(line, sizeof line,
                 "{\"type\":\"email_clicked\",%s,\"ts\":%lld,\"name\":\"win_back\"}", w,
                 (long long)ts);
    }
    CHECK_INT(ingest(t, line), 0);
  }
}

/*
** The reference: the log scan.
*/
typedef struct ref_group {
  char key[200];
  long long shown, clicks, orders;
  double revenue;
} ref_group;

typedef struct reference {
  long long orders, attributed, sessions, personalized;
  double revenue, attributed_revenue;
  ref_group g[600];
  int ng;
} reference;

static const char *source_of(const char *type) {
  return !strncmp(type, "rec_", 4) ? "recommendation" : !strncmp(type, "popup_", 6) ? "popup"
                                                                                    : "email";
}

static ref_group *ref_group_of(reference *r, const char *source, const char *strategy,
                               const char *widget) {
  char key[200];
  snprintf(key, sizeof key, "%s|%s|%s", source, strategy && *strategy ? strategy : "-",
           widget && *widget ? widget : "-");
  for (int i = 0; i < r->ng; i++)
    if (!strcmp(r->g[i].key, key)) return &r->g[i];
  ref_group *g = &r->g[r->ng++];
  memset(g, 0, sizeof *g);
  snprintf(g->key, sizeof g->key, "%s", key);
  return g;
}

static void scan(const char *db, int64_t window_ms, int64_t since, reference *r) {
  static const char touches[] =
      "SELECT COALESCE(e.customer, i.customer, e.anon, e.session) AS who, e.ts, e.type,"
      " json_extract(e.body, '$.name'), json_extract(e.body, '$.props.strategy'),"
      " json_extract(e.body, '$.revenue')"
      " FROM events e LEFT JOIN identities i ON i.anon = e.anon"
      " WHERE e.type IN ('purchase', 'rec_clicked', 'popup_clicked', 'email_clicked',"
      " 'rec_shown', 'popup_shown') AND e.ts >= ?1"
      " ORDER BY who, e.ts, e.seq";
  static const char sessions[] =
      "SELECT count(DISTINCT session), count(DISTINCT CASE WHEN type IN ('rec_shown',"
      " 'popup_shown', 'rec_clicked', 'popup_clicked', 'email_clicked') THEN session END)"
      " FROM events WHERE session IS NOT NULL AND ts >= ?1";
  memset(r, 0, sizeof *r);
  sqlite3 *h = NULL;
  CHECK_INT(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *q = NULL;
  CHECK_INT(sqlite3_prepare_v2(h, touches, -1, &q, NULL), SQLITE_OK);
  sqlite3_bind_int64(q, 1, since - window_ms);
  char person[256] = "", src[16] = "", strategy[64] = "", widget[64] = "";
  int64_t click = INT64_MIN;
  while (sqlite3_step(q) == SQLITE_ROW) {
    const char *w = (const char *)sqlite3_column_text(q, 0);
    const char *type = (const char *)sqlite3_column_text(q, 2);
    const char *name = (const char *)sqlite3_column_text(q, 3);
    const char *strat = (const char *)sqlite3_column_text(q, 4);
    int64_t ts = sqlite3_column_int64(q, 1);
    if (strcmp(w, person)) {
      snprintf(person, sizeof person, "%s", w);
      click = INT64_MIN;
    }
    int purchase = !strcmp(type, "purchase");
    if (!purchase && strstr(type, "_clicked")) {
      click = ts;
      snprintf(src, sizeof src, "%s", source_of(type));
      snprintf(strategy, sizeof strategy, "%s", strat ? strat : "");
      snprintf(widget, sizeof widget, "%s", name ? name : "");
    }
    if (ts < since) continue;
    if (!purchase) {
      ref_group *g = ref_group_of(r, source_of(type), strat, name);
      if (strstr(type, "_clicked")) g->clicks++;
      else g->shown++;
      continue;
    }
    double rev = sqlite3_column_double(q, 5);
    r->orders++;
    r->revenue += rev;
    if (click != INT64_MIN && ts - click <= window_ms) {
      ref_group *g = ref_group_of(r, src, strategy, widget);
      g->orders++;
      g->revenue += rev;
      r->attributed++;
      r->attributed_revenue += rev;
    }
  }
  sqlite3_finalize(q);
  CHECK_INT(sqlite3_prepare_v2(h, sessions, -1, &q, NULL), SQLITE_OK);
  sqlite3_bind_int64(q, 1, since);
  if (sqlite3_step(q) == SQLITE_ROW) {
    r->sessions = sqlite3_column_int64(q, 0);
    r->personalized = sqlite3_column_int64(q, 1);
  }
  sqlite3_finalize(q);
  sqlite3_close(h);
}

/* eng_console_revenue against the scan; returns the number of groups. */
static size_t same_as_scan(tailor *t, const char *db, int64_t window_ms, int64_t since) {
  reference r;
  scan(db, window_ms, since, &r);
  tailor_error err = {0};
  json_t *o = eng_console_revenue(t, window_ms, since, &err);
  CHECK(o != NULL);
  if (!o) return 0;
  CHECK(r.orders > 0);
  CHECK_INT(json_integer_value(json_object_get(json_object_get(o, "total"), "orders")), r.orders);
  CHECK_NEAR(json_real_value(json_object_get(json_object_get(o, "total"), "revenue")), r.revenue,
             1e-6);
  json_t *att = json_object_get(o, "attributed");
  CHECK_INT(json_integer_value(json_object_get(att, "orders")), r.attributed);
  CHECK_NEAR(json_real_value(json_object_get(att, "revenue")), r.attributed_revenue, 1e-6);
  json_t *ses = json_object_get(o, "sessions");
  CHECK_INT(json_integer_value(json_object_get(ses, "total")), r.sessions);
  CHECK_INT(json_integer_value(json_object_get(ses, "personalized")), r.personalized);
  json_t *groups = json_object_get(o, "groups");
  CHECK_INT(json_array_size(groups), r.ng);
  size_t i;
  json_t *g;
  json_array_foreach(groups, i, g) {
    char key[200];
    snprintf(key, sizeof key, "%s|%s|%s", json_string_value(json_object_get(g, "source")),
             json_string_value(json_object_get(g, "strategy")),
             json_string_value(json_object_get(g, "widget")));
    ref_group *want = NULL;
    for (int k = 0; k < r.ng; k++)
      if (!strcmp(r.g[k].key, key)) want = &r.g[k];
    CHECK(want != NULL);
    if (!want) {
      fprintf(stderr, "  unexpected group %s\n", key);
      continue;
    }
    CHECK_INT(json_integer_value(json_object_get(g, "shown")), want->shown);
    CHECK_INT(json_integer_value(json_object_get(g, "clicks")), want->clicks);
    CHECK_INT(json_integer_value(json_object_get(g, "orders")), want->orders);
    CHECK_NEAR(json_real_value(json_object_get(g, "revenue")), want->revenue, 1e-6);
  }
  json_decref(o);
  return (size_t)r.ng;
}

static void every_window(tailor *t, const char *db, int64_t today) {
  static const int hours[] = {1, 24, 72, 24 * 30};
  for (size_t h = 0; h < sizeof hours / sizeof *hours; h++) {
    same_as_scan(t, db, hours[h] * 3600000LL, 0);
    same_as_scan(t, db, hours[h] * 3600000LL, today - 3 * DAY);
  }
}

static void test_revenue_as_the_log_scan(void) {
  char dir[600], db[700], ckpt[800];
  snprintf(dir, sizeof dir, "%s/consoleXXXXXX", tmp);
  if (!mkdtemp(dir)) abort();
  snprintf(db, sizeof db, "%s/shop.db", dir);
  snprintf(ckpt, sizeof ckpt, "%s.ckpt", db);
  int64_t today = util_now_ms() / DAY * DAY;
  tailor *t = open_engine(db);
  CHECK(t != NULL);
  if (!t) return;
  shop(t, 1500, util_now_ms() - 60000, 3);
  size_t groups = same_as_scan(t, db, 24 * 3600000LL, 0);
  CHECK(groups >= 12); /* 3 strategies x 3 widgets, popups with and without, emails */
  static reference r; /* a shop where the window matters */
  scan(db, 24 * 3600000LL, 0, &r);
  CHECK(r.attributed > 0 && r.attributed < r.orders);
  every_window(t, db, today);
  tailor_close(t); /* writes the checkpoint */
  CHECK(access(ckpt, F_OK) == 0);

  /* From the checkpoint, then from the log alone. */
  t = open_engine(db);
  CHECK(t != NULL);
  if (!t) return;
  every_window(t, db, today);
  tailor_close(t);
  CHECK(unlink(ckpt) == 0);
  t = open_engine(db);
  CHECK(t != NULL);
  if (!t) return;
  every_window(t, db, today);
  tailor_close(t);
}

/* Past IDX_ATTRIB_MAX_GROUPS groups, a source's new ones are "(other)";
   the totals stay whole. */
static void test_groups_capped(void) {
  char dir[600], db[700];
  snprintf(dir, sizeof dir, "%s/consolecapXXXXXX", tmp);
  if (!mkdtemp(dir)) abort();
  snprintf(db, sizeof db, "%s/shop.db", dir);
  tailor *t = open_engine(db);
  CHECK(t != NULL);
  if (!t) return;
  shop(t, 2500, util_now_ms() - 60000, 120); /* 120 strategies x 3 widgets */
  reference r;
  scan(db, 24 * 3600000LL, 0, &r);
  CHECK(r.ng > IDX_ATTRIB_MAX_GROUPS);
  tailor_error err = {0};
  json_t *o = eng_console_revenue(t, 24 * 3600000LL, 0, &err);
  CHECK(o != NULL);
  json_t *groups = json_object_get(o, "groups");
  CHECK(json_array_size(groups) <= IDX_ATTRIB_MAX_GROUPS);
  long long shown = 0, clicks = 0, orders = 0, others = 0, want_shown = 0, want_clicks = 0;
  size_t i;
  json_t *g;
  json_array_foreach(groups, i, g) {
    shown += json_integer_value(json_object_get(g, "shown"));
    clicks += json_integer_value(json_object_get(g, "clicks"));
    orders += json_integer_value(json_object_get(g, "orders"));
    others += !strcmp(json_string_value(json_object_get(g, "strategy")), "(other)");
  }
  for (int k = 0; k < r.ng; k++) want_shown += r.g[k].shown, want_clicks += r.g[k].clicks;
  CHECK(others >= 1);
  CHECK_INT(shown, want_shown);
  CHECK_INT(clicks, want_clicks);
  CHECK_INT(orders, r.attributed);
  CHECK_INT(json_integer_value(json_object_get(json_object_get(o, "attributed"), "orders")),
            r.attributed);
  json_decref(o);
  tailor_close(t);
}

/* An engine on a new store in a directory of its own. */
static tailor *fresh(const char *name) {
  char dir[600], db[700];
  snprintf(dir, sizeof dir, "%s/%sXXXXXX", tmp, name);
  if (!mkdtemp(dir)) abort();
  snprintf(db, sizeof db, "%s/shop.db", dir);
  return open_engine(db);
}

/* A widget's name past what a group keeps (63 bytes) is cut at a
   character, not inside one: the group is listed, with the order its
   click led to. */
static void test_long_name_cut_at_a_character(void) {
  tailor *t = fresh("consolecut");
  CHECK(t != NULL);
  if (!t) return;
  char name[80], line[400];
  memset(name, 'a', 62);
  snprintf(name + 62, sizeof name - 62, "\xc3\xa9-more"); /* an e-acute across byte 63 */
  snprintf(line, sizeof line,
           "{\"type\":\"rec_clicked\",\"customer\":\"c1\",\"ts\":1700000000000,"
           "\"name\":\"%s\",\"item\":\"x\",\"props\":{\"strategy\":\"h.lua\"}}", name);
  CHECK_INT(ingest(t, line), 0);
  CHECK_INT(ingest(t, "{\"type\":\"purchase\",\"customer\":\"c1\",\"ts\":1700003600000,"
                      "\"order_id\":\"o1\",\"items\":[{\"id\":\"x\",\"price\":10}]}"),
            0);
  tailor_error err = {0};
  json_t *o = eng_console_revenue(t, 24 * 3600000LL, 0, &err);
  CHECK(o != NULL);
  json_t *groups = json_object_get(o, "groups");
  CHECK_INT(json_array_size(groups), 1);
  json_t *g = json_array_get(groups, 0);
  name[62] = '\0'; /* the whole characters that fit */
  CHECK(g && !strcmp(json_string_value(json_object_get(g, "widget")), name));
  CHECK_INT(json_integer_value(json_object_get(g, "orders")), 1);
  CHECK_NEAR(json_real_value(json_object_get(g, "revenue")), 10.0, 1e-9);
  json_decref(o);
  tailor_close(t);
}

/* Past the cap, new names go to "(other)" and are not kept: a shop that
   puts an id in every popup's name does not grow the index by a name per
   event. */
static void test_names_past_the_cap(void) {
  tailor *t = fresh("consolenames");
  CHECK(t != NULL);
  if (!t) return;
  char line[300];
  for (int k = 0; k < IDX_ATTRIB_MAX_GROUPS + 500; k++) {
    snprintf(line, sizeof line,
             "{\"type\":\"popup_shown\",\"anon\":\"a1\",\"ts\":%lld,\"name\":\"offer-%d\"}",
             1700000000000LL + k * 1000LL, k);
    CHECK_INT(ingest(t, line), 0);
  }
  /* The groups' names and "-" and "(other)". */
  CHECK(t->ix->attrib.names.n <= IDX_ATTRIB_MAX_GROUPS + 2);
  tailor_error err = {0};
  json_t *o = eng_console_revenue(t, 24 * 3600000LL, 0, &err);
  CHECK(o != NULL);
  long long shown = 0, others = 0;
  size_t i;
  json_t *g;
  json_array_foreach(json_object_get(o, "groups"), i, g) {
    shown += json_integer_value(json_object_get(g, "shown"));
    if (!strcmp(json_string_value(json_object_get(g, "widget")), "(other)"))
      others = json_integer_value(json_object_get(g, "shown"));
  }
  CHECK_INT(shown, IDX_ATTRIB_MAX_GROUPS + 500);
  CHECK_INT(others, 500 + IDX_ATTRIB_SOURCES);
  json_decref(o);
  tailor_close(t);
}

/* The console's strategy check compiles a folder that extends a base as
   the engine loads it: over the base, whose lib.settings its files require;
   a real syntax error is still reported. */
static void put_file(const char *dir, const char *name, const char *text) {
  char path[800];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

static void test_strategies_over_a_base(void) {
  const char *root = getenv("TAILOR_ROOT");
  char dir[700], cfg[2000], path[800];
  snprintf(dir, sizeof dir, "%s/console_extend", tmp);
  mkdir(dir, 0700);
  put_file(dir, "mine.lua", "local settings = require 'lib.settings'\n"
                            "return { probe = function(ctx) return { ok = settings ~= nil } end }\n");
  snprintf(cfg, sizeof cfg, "{\"db\":\":memory:\",\"strategies\":\"%s\","
           "\"lua\":{\"reload_interval_ms\":0},"
           "\"strategies_base\":\"%s/strategies\"}", dir, root ? root : ".");
  tailor_error err = {0};
  tailor *t = open_config(cfg);
  if (!t) return;
  json_t *o = eng_console_strategies(t, 0, &err);
  json_t *errs = json_object_get(o, "compile_errors");
  CHECK_INT((long)json_array_size(errs), 0);
  char serving[17];
  snprintf(serving, sizeof serving, "%s", json_string_value(json_object_get(o, "version")));
  CHECK(json_object_get(o, "on_disk") == NULL);
  if (json_array_size(errs))
    fprintf(stderr, "%s\n", json_string_value(json_object_get(json_array_get(errs, 0), "message")));
  json_decref(o);
  /* A file of the folder broken by an edit: said, with its name. */
  put_file(dir, "broken.lua", "return { popup = function(ctx) return ( end }\n");
  o = eng_console_strategies(t, 0, &err);
  errs = json_object_get(o, "compile_errors");
  CHECK_INT((long)json_array_size(errs), 1);
  CHECK_CONTAINS(json_string_value(json_object_get(json_array_get(errs, 0), "file")), "broken.lua");
  /* The version is the one that serves, not the refused files'. */
  CHECK_STR(json_string_value(json_object_get(o, "version")), serving);
  CHECK(json_string_value(json_object_get(o, "on_disk")) != NULL);
  json_decref(o);
  tailor_close(t);
  snprintf(path, sizeof path, "%s/broken.lua", dir);
  remove(path);
  snprintf(path, sizeof path, "%s/mine.lua", dir);
  remove(path);
}

/* The console's Check (a dry run in the server's own engine) decides for
   nobody: a handler that fails for every sample visitor is in its report,
   not in the engine's counts of decisions and strategy errors (/metrics)
   nor in its error log, once per visitor, as if a shopper had been served
   the fallback. */
static int errors_logged;
static void count_errors(void *ud, int level, const char *message) {
  (void)ud, (void)message;
  if (level == TAILOR_LOG_ERROR) errors_logged++;
}

static void test_check_decides_for_nobody(void) {
  char dir[700], cfg[1000], path[800];
  snprintf(dir, sizeof dir, "%s/console_check", tmp);
  mkdir(dir, 0700);
  put_file(dir, "popup.lua", "return { popup = function(ctx) error('broken') end }\n");
  snprintf(cfg, sizeof cfg, "{\"db\":\":memory:\",\"strategies\":\"%s\"}", dir);
  tailor_error err = {0};
  tailor *t = open_config(cfg);
  if (!t) return;
  tailor_set_logger(t, count_errors, NULL);
  json_t *o = eng_console_strategies(t, 5, &err);
  json_t *check = json_object_get(o, "check");
  CHECK_INT((long)json_integer_value(json_object_get(check, "visitors")), 5);
  CHECK(json_integer_value(json_object_get(check, "errors")) >= 1);
  json_decref(o);
  CHECK_INT((long)atomic_load(&t->n_decisions), 0);
  CHECK_INT((long)atomic_load(&t->n_strategy_errors), 0);
  CHECK_INT(errors_logged, 0);
  /* A real decision still counts, fails and is logged. */
  char *resp = NULL;
  static const char req[] = "{\"kind\":\"popup\",\"anon\":\"v1\"}";
  CHECK_INT(tailor_decide(t, req, strlen(req), &resp, NULL, &err), TAILOR_OK);
  CHECK_CONTAINS(resp, "\"fallback\":true");
  tailor_free(resp);
  CHECK_INT((long)atomic_load(&t->n_decisions), 1);
  CHECK_INT((long)atomic_load(&t->n_strategy_errors), 1);
  CHECK_INT(errors_logged, 1);
  tailor_close(t);
  snprintf(path, sizeof path, "%s/popup.lua", dir);
  remove(path);
}

/* The visitor preview decides for nobody too: a handler that issues a
   coupon and exposes the visitor to an experiment shows its answer, with
   a made-up code, and nothing is kept: no coupon (which, as a contact,
   held back the previewed customer's cart email under the day's cap), no
   exposure, no decision counted. */
static void test_preview_acts_for_nobody(void) {
  char dir[700], cfg[1000], path[800];
  snprintf(dir, sizeof dir, "%s/console_preview", tmp);
  mkdir(dir, 0700);
  put_file(dir, "discount.lua",
           "return { discount = function(ctx)\n"
           "  local arm = tailor.experiment('offer', { 'a', 'b' }, ctx.customer.id)\n"
           "  local c = tailor.coupon('vip', { percent = 10 })\n"
           "  return c and { tier = 'vip', percent = 10, code = c.code, arm = arm }\n"
           "end }\n");
  snprintf(cfg, sizeof cfg, "{\"db\":\":memory:\",\"strategies\":\"%s\"}", dir);
  tailor_error err = {0};
  tailor *t = open_config(cfg);
  if (!t) return;
  json_t *o = eng_console_preview(t, "c1", NULL, NULL, NULL, NULL, &err);
  json_t *d, *answer = NULL;
  size_t i;
  json_array_foreach(json_object_get(o, "decisions"), i, d)
    if (!strcmp(json_string_value(json_object_get(json_object_get(d, "request"), "kind")), "discount"))
      answer = json_object_get(json_object_get(d, "answer"), "result");
  CHECK_STR(json_string_value(json_object_get(answer, "code")), "DRYRUN");
  json_decref(o);
  pthread_mutex_lock(&t->expo_mu);
  CHECK_INT((long)t->expo.n, 0);
  pthread_mutex_unlock(&t->expo_mu);
  CHECK_INT((long)atomic_load(&t->n_decisions), 0);
  char *stats = NULL;
  CHECK_INT(tailor_stats(t, &stats, &err), TAILOR_OK);
  json_t *s = stats ? json_loads(stats, 0, NULL) : NULL;
  CHECK_INT((long)json_object_size(json_object_get(json_object_get(s, "coupons"), "tiers")), 0);
  json_decref(s);
  tailor_free(stats);
  /* The same decision made for the customer issues and exposes. */
  char *resp = NULL;
  static const char req[] = "{\"kind\":\"discount\",\"customer\":\"c1\"}";
  CHECK_INT(tailor_decide(t, req, strlen(req), &resp, NULL, &err), TAILOR_OK);
  CHECK(resp && !strstr(resp, "DRYRUN") && strstr(resp, "\"code\":\"VIP-"));
  tailor_free(resp);
  tailor_close(t);
  snprintf(path, sizeof path, "%s/discount.lua", dir);
  remove(path);
}

int main(void) {
  const char *t = getenv("TAILOR_TEST_TMP");
  snprintf(tmp, sizeof tmp, "%s", t ? t : "/tmp");
  RUN(test_revenue_as_the_log_scan);
  RUN(test_groups_capped);
  RUN(test_long_name_cut_at_a_character);
  RUN(test_names_past_the_cap);
  RUN(test_strategies_over_a_base);
  RUN(test_check_decides_for_nobody);
  RUN(test_preview_acts_for_nobody);
  return CHECK_DONE();
}
