/*
** test_engine.c: the public API end to end: ingest (single and batch, good
** and bad lines), decisions through a real strategy, the fallback when a
** strategy misbehaves, hot reload, rebuild on open, and durability of
** acknowledged events across a SIGKILL of a real child process.
*/
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "index/index.h"
#include "tailor.h"

static char tmp[512];

static void write_file(const char *dir, const char *name, const char *text) {
  char path[700];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

/* A fresh folder under the test tmp dir. */
static void make_dir(char *out, size_t size, const char *name) {
  snprintf(out, size, "%s/%sXXXXXX", tmp, name);
  if (!mkdtemp(out)) abort();
}

static tailor *open_engine(const char *db, const char *strategies) {
  char cfg[1200];
  snprintf(cfg, sizeof cfg,
           "{\"db\":\"%s\",\"strategies\":\"%s\",\"store\":{\"synchronous_full\":"
           "false},\"lua\":{\"instruction_budget\":200000,\"memory_limit_mb\":8,"
           "\"reload_interval_ms\":0},\"optin\":{\"secret\":\"test-optin-secret-0123\","
           "\"confirm_url\":\"https://shop.example/confirm\"}}",
           db, strategies);
  tailor_error err = {0};
  tailor *t = tailor_open(cfg, &err);
  if (!t) fprintf(stderr, "open failed: %s\n", err.message);
  return t;
}

static int ingest(tailor *t, const char *json) {
  tailor_error err = {0};
  return tailor_ingest(t, json, strlen(json), &err);
}

/* Decide and return the response (caller frees). */
static char *decide(tailor *t, const char *req) {
  char *resp = NULL;
  tailor_error err = {0};
  int rc = tailor_decide(t, req, strlen(req), &resp, NULL, &err);
  if (rc) fprintf(stderr, "decide failed: %s\n", err.message);
  return resp;
}

/* A count from stats: "key":N, -1 when absent. */
static long stat_of(tailor *t, const char *key) {
  char *s = NULL, pat[80];
  long v = -1;
  snprintf(pat, sizeof pat, "\"%s\":", key);
  tailor_stats(t, &s, NULL);
  const char *p = s ? strstr(s, pat) : NULL;
  if (p) v = strtol(p + strlen(pat), NULL, 10);
  tailor_free(s);
  return v;
}

static void seed(tailor *t) {
  CHECK_INT(ingest(t, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"a\",\"price\":5}}"), 0);
  CHECK_INT(ingest(t, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"b\",\"price\":6}}"), 0);
  CHECK_INT(ingest(t, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"c\",\"price\":7}}"), 0);
  for (int i = 0; i < 3; i++)
    CHECK_INT(ingest(t, "{\"type\":\"view\",\"item\":\"b\",\"anon\":\"v1\"}"), 0);
  for (int i = 0; i < 2; i++)
    CHECK_INT(ingest(t, "{\"type\":\"view\",\"item\":\"c\",\"anon\":\"v2\"}"), 0);
  CHECK_INT(ingest(t, "{\"type\":\"view\",\"item\":\"a\",\"anon\":\"v2\"}"), 0);
}

static const char most_viewed_lua[] =
    "return { recommend = function(ctx)\n"
    "  local r = tailor.most_viewed(ctx.k, {exclude = ctx.customer.cart})\n"
    "  for _, x in ipairs(r) do x.explain = 'popular' end\n"
    "  return r\n"
    "end }\n";

static void test_decide_through_strategy(void) {
  char dir[600];
  make_dir(dir, sizeof dir, "strat");
  write_file(dir, "recommend.lua", most_viewed_lua);
  tailor *t = open_engine(":memory:", dir);
  CHECK(t != NULL);
  if (!t) return;
  seed(t);
  char *r = decide(t, "{\"kind\":\"recommend\",\"anon\":\"v9\",\"k\":2}");
  CHECK_CONTAINS(r, "\"items\":[{\"id\":\"b\"");
  CHECK_CONTAINS(r, "{\"id\":\"c\"");
  CHECK(r && !strstr(r, "\"id\":\"a\"")); /* k = 2 */
  CHECK_CONTAINS(r, "\"explain\":\"popular\"");
  CHECK_CONTAINS(r, "\"strategy\":\"recommend.lua\"");
  CHECK(r && !strstr(r, "fallback"));
  tailor_free(r);
  /* The cart is excluded. */
  CHECK_INT(ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"b\",\"anon\":\"v9\"}"), 0);
  r = decide(t, "{\"kind\":\"recommend\",\"anon\":\"v9\",\"k\":2}");
  CHECK_CONTAINS(r, "\"items\":[{\"id\":\"c\"");
  CHECK(r && !strstr(r, "\"id\":\"b\""));
  tailor_free(r);
  tailor_close(t);
}

static void test_bad_requests(void) {
  tailor *t = open_engine(":memory:", "");
  CHECK(t != NULL);
  if (!t) return;
  char *resp = NULL;
  tailor_error err = {0};
  const char *bad[][2] = {
      {"{\"kind\":", "EPARSE"},
      {"[1,2]", "EPARSE"},
      {"{}", "kind"},
      {"{\"kind\":\"recommend\",\"k\":0}", "k"},
      {"{\"kind\":\"recommend\",\"k\":\"5\"}", "k"},
      {"{\"kind\":\"recommend\",\"customer\":{}}", "customer"},
      {"{\"kind\":\"recommend\",\"costumer\":\"c1\"}", "costumer"},
      {"{\"kind\":\"rank\"}", "items"},
      {"{\"kind\":\"on_event\"}", "kind"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    memset(&err, 0, sizeof err);
    int rc = tailor_decide(t, bad[i][0], strlen(bad[i][0]), &resp, NULL, &err);
    CHECK(rc != TAILOR_OK);
    CHECK(resp == NULL);
    if (strcmp(bad[i][1], "EPARSE") == 0)
      CHECK_INT(rc, TAILOR_EPARSE);
    else
      CHECK_STR(err.field, bad[i][1]);
  }
  tailor_close(t);
}

/* Each misbehaving strategy gets the fallback and a counted error, and the
   engine keeps serving the next request. */
static void test_sandbox_failures_fall_back(void) {
  static const char *const bodies[] = {
      "while true do end",
      "local t = {} while true do t[#t + 1] = string.rep('x', 4096) .. #t end",
      "os.execute('touch /tmp/tailor-pwned')",
      "io.open('/etc/passwd')",
      "return {{id = 'no-such-item'}}",
      "return {{id = 'a', scroe = 1}}",
      "error('boom')",
      "return {{id = 'a', score = 'high'}}",
      "return {{id = 'a', explain = 'caf\\xC3'}}",
      "return {{id = 'a', score = 1/0}}",
      "return {'a'}",
      "return {{score = 1}}",
      "return {{id = 'a', because = {print}}}",
      "return {{id = 'a'}, {id = 'b', 1}}",
  };
  static const char *const expect[] = {
      "instruction budget", "memory", "os.execute", "io",
      "unknown id", "unknown field 'scroe'", "boom",
      "item 1: 'score' must be a number", "item 1: explain: string is not valid UTF-8",
      "item 1: score: number is not finite", "item 1: must be a table with an id",
      "item 1: 'id' must be a string", "because[1]: a function cannot be turned into JSON",
      "item 2 with unknown field '?'",
  };
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
    char dir[600], text[400];
    make_dir(dir, sizeof dir, "bad");
    snprintf(text, sizeof text,
             "return { recommend = function(ctx)\n  %s\nend }\n", bodies[i]);
    write_file(dir, "recommend.lua", text);
    tailor *t = open_engine(":memory:", dir);
    CHECK(t != NULL);
    if (!t) continue;
    tailor_set_logger(t, NULL, NULL);
    seed(t);
    for (int round = 0; round < 2; round++) {
      char *r = decide(t, "{\"kind\":\"recommend\",\"anon\":\"v1\",\"k\":3}");
      CHECK_CONTAINS(r, "\"fallback\":true");
      CHECK_CONTAINS(r, expect[i]);
      CHECK_CONTAINS(r, "recommend.lua:");
      CHECK_CONTAINS(r, "\"items\":[{\"id\":\"b\""); /* most viewed */
      tailor_free(r);
    }
    char *s = NULL;
    CHECK_INT(tailor_stats(t, &s, NULL), TAILOR_OK);
    CHECK_CONTAINS(s, "\"strategy_errors\":2");
    tailor_free(s);
    tailor_close(t);
  }
  CHECK(access("/tmp/tailor-pwned", F_OK) != 0);
}

/* An entry's fields are written in one order, whatever order the table
   keeps them in: integers as integers, `because` as a list, strings
   escaped; a strategy's own __totable is not run (no strategy code runs
   while the answer is written). */
static void test_entries_written(void) {
  char dir[600];
  make_dir(dir, sizeof dir, "entries");
  write_file(dir, "recommend.lua",
             "return { recommend = function(ctx)\n"
             "  return {{explain = 'say \"hi\"', because = 'b', reason = 'r', score = 2, id = 'a'},\n"
             "          {because = {'a', 'c'}, id = 'b', score = 0.5},\n"
             "          {id = 'c', explain = 'caf\\u{E9}\\n',\n"
             "           because = setmetatable({'a'}, {__totable = function() error('ran') end})}}\n"
             "end }\n");
  tailor *t = open_engine(":memory:", dir);
  CHECK(t != NULL);
  if (!t) return;
  seed(t);
  char *r = decide(t, "{\"kind\":\"recommend\",\"anon\":\"v9\",\"k\":3}");
  CHECK_CONTAINS(r, "\"items\":[{\"id\":\"a\",\"score\":2,\"reason\":\"r\",\"because\":[\"b\"],"
                    "\"explain\":\"say \\\"hi\\\"\"},{\"id\":\"b\",\"score\":0.5,\"because\":[\"a\",\"c\"]},"
                    "{\"id\":\"c\",\"because\":[\"a\"],\"explain\":\"caf\u00e9\\n\"}]");
  tailor_free(r);
  tailor_close(t);
}

/* lua.watchdog: a strategy of 210,000 instructions, over the test
   budget of 200,000 but over in a millisecond or two, runs whole when the
   watchdog counts only long calls (three tries, in case the thread stalls
   5 ms at its start), and ends in the budget error when every instruction
   counts. */
static void test_watchdog_key(void) {
  char dir[600], db[700], cfg[1400];
  make_dir(dir, sizeof dir, "watch");
  write_file(dir, "recommend.lua",
             "return { recommend = function(ctx)\n"
             "  local n = 0 for i = 1, 105000 do n = n + i end\n"
             "  return {}\n"
             "end }\n");
  for (int watchdog = 1; watchdog >= 0; watchdog--) {
    snprintf(db, sizeof db, "%s/w%d.db", dir, watchdog);
    snprintf(cfg, sizeof cfg,
             "{\"db\":\"%s\",\"strategies\":\"%s\",\"lua\":{\"instruction_budget\":"
             "200000,\"watchdog\":%s}}",
             db, dir, watchdog ? "true" : "false");
    tailor_error err = {0};
    tailor *t = tailor_open(cfg, &err);
    CHECK(t != NULL);
    if (!t) continue;
    tailor_set_logger(t, NULL, NULL);
    char *r = decide(t, "{\"kind\":\"recommend\",\"anon\":\"v1\",\"k\":3}");
    for (int try = 1; watchdog && try < 3 && r && strstr(r, "\"fallback\":true"); try++) {
      tailor_free(r);
      r = decide(t, "{\"kind\":\"recommend\",\"anon\":\"v1\",\"k\":3}");
    }
    if (watchdog) {
      CHECK_CONTAINS(r, "\"items\":[]");
    } else {
      CHECK_CONTAINS(r, "\"fallback\":true");
      CHECK_CONTAINS(r, "instruction budget");
    }
    tailor_free(r);
    tailor_close(t);
  }
}

static void *decide_in_thread(void *t) {
  return decide(t, "{\"kind\":\"recommend\"}");
}

static void test_hot_reload(void) {
  char dir[600];
  make_dir(dir, sizeof dir, "reload");
  write_file(dir, "recommend.lua",
             "return { recommend = function(ctx) return {{id = 'a'}} end }\n");
  tailor *t = open_engine(":memory:", dir);
  CHECK(t != NULL);
  if (!t) return;
  tailor_set_logger(t, NULL, NULL);
  seed(t);
  char *r = decide(t, "{\"kind\":\"recommend\"}");
  CHECK_CONTAINS(r, "\"items\":[{\"id\":\"a\"}]");
  tailor_free(r);
  /* An edit changes the next decision (the file grows, so its signature
     changes even within one mtime tick). */
  write_file(dir, "recommend.lua",
             "return { recommend = function(ctx) return {{id = 'c', reason = 'x'}} end }\n");
  r = decide(t, "{\"kind\":\"recommend\"}");
  CHECK_CONTAINS(r, "\"items\":[{\"id\":\"c\",\"reason\":\"x\"}]");
  tailor_free(r);
  /* A broken edit is refused: the previous version keeps serving. */
  write_file(dir, "recommend.lua", "return { recommend = function(ctx) return {{id = \n");
  r = decide(t, "{\"kind\":\"recommend\"}");
  CHECK_CONTAINS(r, "\"items\":[{\"id\":\"c\",\"reason\":\"x\"}]");
  CHECK(r && !strstr(r, "fallback"));
  tailor_free(r);
  /* A thread that makes its first state after the broken edit gets the
     last good version too, and so does a require inside a handler. */
  pthread_t th;
  char *other = NULL;
  CHECK_INT(pthread_create(&th, NULL, decide_in_thread, t), 0);
  pthread_join(th, (void **)&other);
  CHECK_CONTAINS(other, "\"items\":[{\"id\":\"c\",\"reason\":\"x\"}]");
  CHECK(other && !strstr(other, "fallback"));
  tailor_free(other);
  /* A good edit after the broken one is taken by every thread. */
  write_file(dir, "recommend.lua",
             "return { recommend = function(ctx) return {{id = 'b', reason = 'fixed'}} end }\n");
  r = decide(t, "{\"kind\":\"recommend\"}");
  CHECK_CONTAINS(r, "\"reason\":\"fixed\"");
  tailor_free(r);
  CHECK_INT(pthread_create(&th, NULL, decide_in_thread, t), 0);
  pthread_join(th, (void **)&other);
  CHECK_CONTAINS(other, "\"reason\":\"fixed\"");
  tailor_free(other);
  tailor_close(t);
}

static void reject_cb(void *ud, const tailor_error *e) {
  char *log = ud;
  size_t n = strlen(log);
  snprintf(log + n, 4096 - n, "%ld:%s:%s|", e->line, e->field, e->message);
}

static void test_batch_keeps_good_lines(void) {
  tailor *t = open_engine(":memory:", "");
  CHECK(t != NULL);
  if (!t) return;
  const char batch[] =
      "{\"type\":\"view\",\"item\":\"a\",\"anon\":\"v1\"}\n"
      "{\"type\":\"purchase\",\"anon\":\"v1\",\"items\":[{\"id\":\"a\"}]}\n"
      "\n"
      "not json\n"
      "{\"type\":\"teleport\",\"anon\":\"v1\"}\n"
      "{\"event\":\"Product Viewed\",\"anonymousId\":\"v2\",\"properties\":{\"product_id\":\"b\"}}\n";
  char log[4096] = "";
  size_t acc = 0, rej = 0;
  CHECK_INT(tailor_ingest_batch(t, batch, strlen(batch), reject_cb, log, &acc, &rej),
            TAILOR_OK);
  CHECK_INT(acc, 2);
  CHECK_INT(rej, 3);
  CHECK_CONTAINS(log, "2:order_id:");
  CHECK_CONTAINS(log, "4::");
  CHECK_CONTAINS(log, "5:");
  CHECK_CONTAINS(log, "teleport");
  char *s = NULL;
  CHECK_INT(tailor_stats(t, &s, NULL), TAILOR_OK);
  CHECK_CONTAINS(s, "\"events_total\":2");
  CHECK_CONTAINS(s, "\"view\":2");
  tailor_free(s);
  tailor_close(t);
}

static void test_rebuild_on_open(void) {
  char db[700], dir[600];
  make_dir(dir, sizeof dir, "rebuild");
  write_file(dir, "recommend.lua", most_viewed_lua);
  snprintf(db, sizeof db, "%s/shop.db", dir);
  tailor *t = open_engine(db, dir);
  CHECK(t != NULL);
  if (!t) return;
  seed(t);
  tailor_close(t);
  t = open_engine(db, dir);
  CHECK(t != NULL);
  if (!t) return;
  char *r = decide(t, "{\"kind\":\"recommend\",\"k\":3}");
  CHECK_CONTAINS(r, "\"items\":[{\"id\":\"b\",\"score\":3");
  tailor_free(r);
  tailor_close(t);
}

/*
** Durability: a child ingests events one at a time and reports each id on a
** pipe only after tailor_ingest() returned OK (the acknowledgement).  The
** parent kills it with SIGKILL mid-stream and checks that every
** acknowledged event is in the store.
*/
static void test_sigkill_loses_no_acknowledged_event(void) {
  char db[700], dir[600];
  make_dir(dir, sizeof dir, "kill");
  snprintf(db, sizeof db, "%s/shop.db", dir);
  int fds[2];
  CHECK_INT(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    char cfg[800];
    snprintf(cfg, sizeof cfg, "{\"db\":\"%s\",\"strategies\":\"\"}", db);
    tailor *t = tailor_open(cfg, NULL);
    if (!t) _exit(3);
    for (int i = 0;; i++) {
      char line[200];
      snprintf(line, sizeof line,
               "{\"type\":\"view\",\"item\":\"i%d\",\"anon\":\"v\"}", i);
      if (tailor_ingest(t, line, strlen(line), NULL) != TAILOR_OK) _exit(4);
      if (write(fds[1], &i, sizeof i) != sizeof i) _exit(5);
    }
  }
  close(fds[1]);
  int last = -1, v;
  while (last < 40 && read(fds[0], &v, sizeof v) == sizeof v) last = v;
  kill(pid, SIGKILL);
  /* Acknowledgements already in the pipe count too. */
  while (read(fds[0], &v, sizeof v) == sizeof v) last = v;
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status));
  CHECK(last >= 40);
  char cfg[800];
  snprintf(cfg, sizeof cfg, "{\"db\":\"%s\",\"strategies\":\"\"}", db);
  tailor *t = tailor_open(cfg, NULL);
  CHECK(t != NULL);
  if (!t) return;
  CHECK(stat_of(t, "events_total") >= last + 1);
  tailor_close(t);
}

/* Group commit: concurrent callers all get their events durable, none lost,
   and an event carrying both ids links the visitor to the customer. */
typedef struct writer_arg {
  tailor *t;
  int id;
  int failures;
} writer_arg;

static void *writer(void *p) {
  writer_arg *a = p;
  for (int i = 0; i < 50; i++) {
    char line[200];
    snprintf(line, sizeof line,
             "{\"type\":\"view\",\"item\":\"i%d\",\"anon\":\"w%d\",\"customer\":\"c%d\"}",
             i, a->id, a->id);
    if (tailor_ingest(a->t, line, strlen(line), NULL) != TAILOR_OK) a->failures++;
  }
  return NULL;
}

static void test_concurrent_ingest_group_commit(void) {
  char db[700], dir[600];
  make_dir(dir, sizeof dir, "group");
  snprintf(db, sizeof db, "%s/shop.db", dir);
  char cfg[800];
  snprintf(cfg, sizeof cfg, "{\"db\":\"%s\",\"strategies\":\"\"}", db);
  tailor *t = tailor_open(cfg, NULL);
  CHECK(t != NULL);
  if (!t) return;
  pthread_t th[4];
  writer_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (writer_arg){t, i, 0};
    pthread_create(&th[i], NULL, writer, &args[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    CHECK_INT(args[i].failures, 0);
  }
  tailor_close(t);
  t = tailor_open(cfg, NULL);
  CHECK(t != NULL);
  if (!t) return;
  char *s = NULL;
  CHECK_INT(tailor_stats(t, &s, NULL), TAILOR_OK);
  CHECK_CONTAINS(s, "\"events_total\":200");
  CHECK_CONTAINS(s, "\"identities\":4");
  CHECK_CONTAINS(s, "\"people\":8"); /* 4 customers + 4 merged visitors */
  tailor_free(s);
  tailor_close(t);
}

static void test_customer_and_forget(void) {
  char db[700], dir[600];
  make_dir(dir, sizeof dir, "forget");
  snprintf(db, sizeof db, "%s/shop.db", dir);
  tailor *t = open_engine(db, "");
  CHECK(t != NULL);
  if (!t) return;
  CHECK_INT(ingest(t, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c1\","
                      "\"email\":\"ada@example.com\",\"consent\":{\"email\":true},"
                      "\"attrs\":{\"country\":\"DE\"}}}"), 0);
  /* A category gives the visitor affinities, which erasure must free too
     (LeakSanitizer caught that once). */
  CHECK_INT(ingest(t, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"a\",\"category\":\"Home/Decor\"}}"), 0);
  CHECK_INT(ingest(t, "{\"type\":\"view\",\"item\":\"a\",\"anon\":\"v1\",\"session\":\"s1\"}"), 0);
  CHECK_INT(ingest(t, "{\"type\":\"identify\",\"customer\":\"c1\",\"anon\":\"v1\"}"), 0);
  CHECK_INT(ingest(t, "{\"type\":\"purchase\",\"customer\":\"c1\",\"order_id\":\"o1\","
                      "\"items\":[{\"id\":\"a\",\"price\":10}]}"), 0);
  CHECK_INT(ingest(t, "{\"type\":\"view\",\"item\":\"a\",\"anon\":\"v2\"}"), 0);
  char *j = NULL;
  CHECK_INT(tailor_customer(t, "c1", 0, &j, NULL), TAILOR_OK);
  CHECK_CONTAINS(j, "\"country\":\"DE\"");
  CHECK_CONTAINS(j, "\"lifecycle\":\"customer\"");
  CHECK_CONTAINS(j, "\"recent\":[\"a\"]"); /* the anonymous view, merged */
  CHECK(j && !strstr(j, "ada@example.com")); /* no PII without the flag */
  tailor_free(j);
  CHECK_INT(tailor_customer(t, "c1", TAILOR_PII, &j, NULL), TAILOR_OK);
  CHECK_CONTAINS(j, "ada@example.com");
  tailor_free(j);
  int64_t erased = -1;
  CHECK_INT(tailor_forget(t, "c1", &erased, NULL), TAILOR_OK);
  CHECK_INT(erased, 4); /* profile, the anonymous view, identify, purchase */
  tailor_error err = {0};
  CHECK_INT(tailor_customer(t, "c1", 0, &j, &err), TAILOR_ENOTFOUND);
  CHECK_INT(tailor_customer(t, "v1", 0, &j, &err), TAILOR_ENOTFOUND);
  CHECK_INT(tailor_customer(t, "v2", 0, &j, &err), TAILOR_OK); /* others stay */
  tailor_free(j);
  tailor_close(t);
  /* After a restart (rebuild from the store) they are still gone. */
  t = open_engine(db, "");
  CHECK(t != NULL);
  if (!t) return;
  CHECK_INT(tailor_customer(t, "c1", 0, &j, &err), TAILOR_ENOTFOUND);
  char *s = NULL;
  CHECK_INT(tailor_stats(t, &s, NULL), TAILOR_OK);
  CHECK_CONTAINS(s, "\"customers\":0");
  CHECK_CONTAINS(s, "\"identities\":0");
  tailor_free(s);
  tailor_close(t);
}

/* A decision and a profile as one string to compare engines by, without
   what moves with the clock (decayed scores are rounded, ages dropped). */
static char *snapshot(tailor *t) {
  static char buf[8192];
  char *r = decide(t, "{\"kind\":\"recommend\",\"anon\":\"v1\",\"k\":5}");
  char *c = NULL;
  tailor_customer(t, "c1", 0, &c, NULL);
  json_t *rj = r ? json_loads(r, 0, NULL) : NULL, *cj = c ? json_loads(c, 0, NULL) : NULL;
  size_t n = 0, i;
  json_t *it;
  json_array_foreach(json_object_get(rj, "items"), i, it) {
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s:%s:%.3f,",
                          json_string_value(json_object_get(it, "id")),
                          json_string_value(json_object_get(it, "reason")),
                          json_number_value(json_object_get(it, "score")));
  }
  json_t *fig = json_object_get(cj, "figures");
  /* Ages, and the value model (refitted on start, with the clock). */
  static const char *const moving[] = {"days_since_visit", "days_since_order",
                                       "p_alive", "expected_orders", "predicted_value"};
  for (size_t m = 0; m < sizeof moving / sizeof *moving; m++)
    json_object_del(fig, moving[m]);
  char *cs = cj ? json_dumps(cj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  snprintf(buf + n, sizeof buf - n, "|%s", cs ? cs : "");
  free(cs);
  json_decref(rj);
  json_decref(cj);
  tailor_free(r);
  tailor_free(c);
  return buf;
}

static void test_checkpoint_restart(void) {
  char db[700], dir[600], strat[600], ckpt[800];
  make_dir(dir, sizeof dir, "ckpt");
  make_dir(strat, sizeof strat, "ckptstrat");
  write_file(strat, "recommend.lua",
             "return { recommend = function(ctx)\n"
             "  local r = tailor.also_bought(ctx.customer.recent, {k = ctx.k})\n"
             "  for _, x in ipairs(tailor.session_next(ctx.customer.recent, {k = 2})) do r[#r + 1] = x end\n"
             "  for _, x in ipairs(tailor.trending(nil, nil, {k = ctx.k})) do r[#r + 1] = x end\n"
             "  while #r > ctx.k do table.remove(r) end\n"
             "  return r\n"
             "end }\n");
  snprintf(db, sizeof db, "%s/shop.db", dir);
  snprintf(ckpt, sizeof ckpt, "%s.ckpt", db);
  tailor *t = open_engine(db, strat);
  CHECK(t != NULL);
  if (!t) return;
  seed(t);
  /* Two sessions where c follows b, for the session kernel. */
  for (int k = 0; k < 2; k++) {
    char line[200];
    snprintf(line, sizeof line, "{\"type\":\"view\",\"item\":\"b\",\"anon\":\"w%d\",\"session\":\"k%d\"}", k, k);
    CHECK_INT(ingest(t, line), 0);
    snprintf(line, sizeof line, "{\"type\":\"view\",\"item\":\"c\",\"anon\":\"w%d\",\"session\":\"k%d\"}", k, k);
    CHECK_INT(ingest(t, line), 0);
  }
  CHECK_INT(ingest(t, "{\"type\":\"purchase\",\"customer\":\"c1\",\"anon\":\"v1\",\"order_id\":\"o1\",\"items\":[{\"id\":\"a\",\"price\":5},{\"id\":\"b\",\"price\":6}]}"), 0);
  CHECK_INT(ingest(t, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c1\",\"attrs\":{\"country\":\"DE\"}}}"), 0);
  char before[8192];
  snprintf(before, sizeof before, "%s", snapshot(t));
  CHECK_CONTAINS(before, "a:bought_together:0.333");
  CHECK_CONTAINS(before, ":session:"); /* the session kernel is in the snapshot */
  tailor_close(t); /* writes the checkpoint */
  CHECK(access(ckpt, F_OK) == 0);

  /* Reopen from the checkpoint: the same answers. */
  t = open_engine(db, strat);
  CHECK(t != NULL);
  if (!t) return;
  CHECK_STR(snapshot(t), before);
  /* More events after the checkpoint, then a crash-like close: the
     checkpoint is older than the store and the tail is replayed. */
  CHECK_INT(ingest(t, "{\"type\":\"view\",\"item\":\"c\",\"anon\":\"v1\"}"), 0);
  char after[8192];
  snprintf(after, sizeof after, "%s", snapshot(t));
  CHECK(strcmp(after, before) != 0);
  tailor_close(t);

  /* A damaged checkpoint is ignored with a warning; the answers stay. */
  FILE *f = fopen(ckpt, "r+b");
  CHECK(f != NULL);
  if (f) {
    fseek(f, 64, SEEK_SET);
    fputc('X', f);
    fclose(f);
  }
  char cfg[1200];
  snprintf(cfg, sizeof cfg, "{\"db\":\"%s\",\"strategies\":\"%s\"}", db, strat);
  tailor_error err = {0};
  t = tailor_open(cfg, &err);
  CHECK(t != NULL);
  if (!t) return;
  CHECK_STR(snapshot(t), after);
  tailor_close(t);

  /* Another index configuration: the checkpoint no longer fits. */
  snprintf(cfg, sizeof cfg,
           "{\"db\":\"%s\",\"strategies\":\"%s\",\"index\":{\"coview_window\":3}}", db, strat);
  int64_t seq;
  idx_config ic = {.coview_window = 3};
  idx *probe = idx_new(&ic);
  idx *x = idx_load(ckpt, &ic, idx_fingerprint(probe), &seq, &err);
  CHECK(x == NULL);
  CHECK_CONTAINS(err.message, "another store or index configuration");
  idx_free(probe);
  t = tailor_open(cfg, &err);
  CHECK(t != NULL);
  if (t) {
    CHECK_STR(snapshot(t), after);
    tailor_close(t);
  }
}

/* A retried event (same message id) is acknowledged and counted once: in
   the store, in the index and by the triggers; also within one batch. */
static void test_message_id_applied_once(void) {
  char db[700], dir[600];
  make_dir(dir, sizeof dir, "msgid");
  snprintf(db, sizeof db, "%s/shop.db", dir);
  tailor *t = open_engine(db, "");
  CHECK(t != NULL);
  if (!t) return;
  const char *order = "{\"type\":\"purchase\",\"messageId\":\"m-1\",\"customer\":\"c1\","
                      "\"order_id\":\"o1\",\"items\":[{\"id\":\"a\",\"price\":10}]}";
  CHECK_INT(ingest(t, order), TAILOR_OK);
  CHECK_INT(ingest(t, order), TAILOR_OK); /* the client's retry */
  const char batch[] =
      "{\"type\":\"view\",\"id\":\"m-2\",\"item\":\"a\",\"customer\":\"c1\"}\n"
      "{\"type\":\"view\",\"id\":\"m-2\",\"item\":\"a\",\"customer\":\"c1\"}\n"
      "{\"type\":\"view\",\"item\":\"a\",\"customer\":\"c1\"}\n"
      "{\"type\":\"view\",\"item\":\"a\",\"customer\":\"c1\"}\n";
  size_t acc = 0, rej = 0;
  CHECK_INT(tailor_ingest_batch(t, batch, strlen(batch), NULL, NULL, &acc, &rej), TAILOR_OK);
  CHECK_INT(acc, 4);
  CHECK_INT(rej, 0);
  CHECK_INT(stat_of(t, "events_total"), 4); /* purchase, m-2, two without ids */
  char *j = NULL;
  CHECK_INT(tailor_customer(t, "c1", 0, &j, NULL), TAILOR_OK);
  CHECK_CONTAINS(j, "\"orders\":1,");
  CHECK_CONTAINS(j, "\"revenue\":10.0");
  tailor_free(j);
  tailor_close(t);
  /* And after a restart, the log replays to the same. */
  t = open_engine(db, "");
  CHECK(t != NULL);
  if (!t) return;
  CHECK_INT(ingest(t, order), TAILOR_OK);
  CHECK_INT(stat_of(t, "events_total"), 4);
  CHECK_INT(tailor_customer(t, "c1", 0, &j, NULL), TAILOR_OK);
  CHECK_CONTAINS(j, "\"orders\":1,");
  tailor_free(j);
  tailor_close(t);
}

static const char cart_email_lua[] =
    "return { on_event = function(ctx, ev)\n"
    "  if ev.type ~= 'add_to_cart' then return nil end\n"
    "  return { schedule = { { key = 'cart:' .. ev.customer, template = 'cart',\n"
    "                          delay = 3600 } } }\n"
    "end,\n"
    "popup = function(ctx)\n"
    "  local c = tailor.coupon('welcome')\n"
    "  return { name = 'welcome', coupon = c and c.code }\n"
    "end }\n";

/* The event and the outbox row its trigger schedules commit together: when
   the outbox write fails, the event is not stored, the caller hears it,
   and the index forgets what it applied; when it works, both are there. */
static void test_outbox_in_the_events_transaction(void) {
  char db[700], dir[600], strat[600];
  make_dir(dir, sizeof dir, "outboxtx");
  make_dir(strat, sizeof strat, "outboxstrat");
  write_file(strat, "triggers.lua", cart_email_lua);
  snprintf(db, sizeof db, "%s/shop.db", dir);
  tailor *t = open_engine(db, strat);
  CHECK(t != NULL);
  if (!t) return;
  CHECK_INT(ingest(t, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c1\","
                      "\"email\":\"ada@example.com\",\"consent\":{\"email\":true}}}"), 0);
  /* A disk that refuses the outbox row, from another connection. */
  sqlite3 *db2 = NULL;
  CHECK_INT(sqlite3_open(db, &db2), SQLITE_OK);
  CHECK_INT(sqlite3_exec(db2, "CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN "
                              "SELECT RAISE(ABORT, 'no room'); END;", NULL, NULL, NULL),
            SQLITE_OK);
  long before = stat_of(t, "events_total");
  tailor_error err = {0};
  const char *cart = "{\"type\":\"add_to_cart\",\"id\":\"m-9\",\"item\":\"hat\",\"customer\":\"c1\"}";
  CHECK_INT(tailor_ingest(t, cart, strlen(cart), &err), TAILOR_ESTORE);
  CHECK_CONTAINS(err.message, "no room");
  CHECK_INT(stat_of(t, "events_total"), before);
  char *j = NULL;
  CHECK_INT(tailor_customer(t, "c1", 0, &j, NULL), TAILOR_OK);
  CHECK_CONTAINS(j, "\"cart\":[]"); /* the index let go of the cart too */
  tailor_free(j);
  /* The client retries once the disk has room: one event, one email.  For
     a second after the failure the store is not tried again. */
  CHECK_INT(sqlite3_exec(db2, "DROP TRIGGER refuse", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db2);
  CHECK_INT(tailor_ingest(t, cart, strlen(cart), &err), TAILOR_ESTORE);
  CHECK_CONTAINS(err.message, "events are refused for 1000 ms");
  CHECK_INT(stat_of(t, "events_total"), before);
  /* A decision that would write (a coupon) does not wait for the store
     meanwhile: no popup, at once. */
  char *p = decide(t, "{\"kind\":\"popup\",\"customer\":\"c1\"}");
  CHECK_CONTAINS(p, "\"fallback\":true");
  CHECK_CONTAINS(p, "the store failed a commit a moment ago");
  tailor_free(p);
  usleep(1100 * 1000);
  CHECK_INT(tailor_ingest(t, cart, strlen(cart), &err), TAILOR_OK);
  CHECK_INT(tailor_ingest(t, cart, strlen(cart), &err), TAILOR_OK);
  CHECK_INT(stat_of(t, "events_total"), before + 1);
  CHECK_INT(stat_of(t, "outbox"), 1);
  CHECK_INT(tailor_customer(t, "c1", 0, &j, NULL), TAILOR_OK);
  CHECK_CONTAINS(j, "\"cart\":[\"hat\"]");
  tailor_free(j);
  p = decide(t, "{\"kind\":\"popup\",\"customer\":\"c1\"}");
  CHECK_CONTAINS(p, "WELCOME");
  tailor_free(p);
  tailor_close(t);
}

static void keep_log(void *ud, int level, const char *message) {
  (void)level;
  snprintf(ud, 512, "%s", message);
}

/* on_event returning something malformed: the event is kept, and the log
   names the file and the line that defines the handler. */
static void test_on_event_error_names_line(void) {
  char db[700], dir[600], strat[600], logged[512] = "";
  make_dir(dir, sizeof dir, "badtrigger");
  make_dir(strat, sizeof strat, "badtriggerstrat");
  write_file(strat, "triggers.lua", "-- line 1\n\nreturn { on_event = function(ctx, ev)\n"
                                    "  return { schedule = 'soon' }\nend }\n");
  snprintf(db, sizeof db, "%s/shop.db", dir);
  tailor *t = open_engine(db, strat);
  CHECK(t != NULL);
  if (!t) return;
  tailor_set_logger(t, keep_log, logged);
  CHECK_INT(ingest(t, "{\"type\":\"view\",\"item\":\"hat\",\"anon\":\"a1\"}"), TAILOR_OK);
  CHECK_INT(stat_of(t, "events_total"), 1);
  CHECK_CONTAINS(logged, "triggers.lua:3: on_event returned a 'schedule' that is not a list");
  tailor_close(t);
}

/* Whether the file at `path` holds the bytes of `needle`. */
static int file_has(const char *path, const char *needle) {
  size_t n = 0, m = strlen(needle);
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  char *buf = malloc(1 << 24);
  n = fread(buf, 1, 1 << 24, f);
  fclose(f);
  int found = 0;
  for (size_t i = 0; !found && i + m <= n; i++) found = !memcmp(buf + i, needle, m);
  free(buf);
  return found;
}

static void copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
  char buf[65536];
  size_t n;
  while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
  if (a) fclose(a);
  if (b) fclose(b);
}

/* The WAL file of a SQLite store (a static buffer). */
static const char *wal_of(const char *db) {
  static char wal[800];
  snprintf(wal, sizeof wal, "%s-wal", db);
  return wal;
}

/* Erasure sticks: after tailor_forget no byte of the customer's email, id or
   session is left in the store, its WAL or the checkpoint, and neither a
   clean restart nor a crash right after the erase brings them back. */
static void test_erasure_sticks(void) {
  char db[700], dir[600], ckpt[800];
  make_dir(dir, sizeof dir, "erase");
  snprintf(db, sizeof db, "%s/shop.db", dir);
  snprintf(ckpt, sizeof ckpt, "%s.ckpt", db);
  tailor *t = open_engine(db, "");
  CHECK(t != NULL);
  if (!t) return;
  CHECK_INT(ingest(t, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"cust-erase-7731\","
                      "\"email\":\"ada-unique@example.com\",\"consent\":{\"email\":true}}}"), 0);
  CHECK_INT(ingest(t, "{\"type\":\"view\",\"item\":\"a\",\"anon\":\"anon-erase-88\","
                      "\"session\":\"sess-erase-42\"}"), 0);
  CHECK_INT(ingest(t, "{\"type\":\"page_view\",\"session\":\"sess-erase-42\"}"), 0);
  CHECK_INT(ingest(t, "{\"type\":\"identify\",\"customer\":\"cust-erase-7731\","
                      "\"anon\":\"anon-erase-88\"}"), 0);
  CHECK_INT(ingest(t, "{\"type\":\"purchase\",\"customer\":\"cust-erase-7731\",\"order_id\":\"o1\","
                      "\"items\":[{\"id\":\"a\",\"price\":10}]}"), 0);
  CHECK_INT(ingest(t, "{\"type\":\"view\",\"item\":\"a\",\"anon\":\"someone-else\"}"), 0);
  /* Email capture: an address they confirmed (its consent record), and one
     their visitor asked for and never confirmed (pending, with the text). */
  static const char sub_customer[] =
      "{\"email\":\"ada-optin-91@example.com\",\"customer\":\"cust-erase-7731\","
      "\"purpose\":\"newsletter\",\"text\":\"consent-text-3317\"}";
  static const char sub_visitor[] =
      "{\"email\":\"ada-pending-55@example.com\",\"anon\":\"anon-erase-88\","
      "\"purpose\":\"newsletter\",\"text\":\"consent-text-3317\"}";
  char *answer = NULL, *rows = NULL;
  CHECK_INT(tailor_subscribe(t, sub_customer, strlen(sub_customer), &answer, NULL), TAILOR_OK);
  tailor_free(answer);
  CHECK_INT(tailor_outbox_list(t, NULL, "cust-erase-7731", &rows, NULL), TAILOR_OK);
  const char *tok = rows ? strstr(rows, "token=") : NULL;
  char token[200] = "";
  if (tok) snprintf(token, sizeof token, "%.*s", (int)strcspn(tok + 6, "\""), tok + 6);
  tailor_free(rows);
  CHECK_INT(tailor_confirm(t, token, &answer, NULL), TAILOR_OK);
  tailor_free(answer);
  CHECK_INT(tailor_subscribe(t, sub_visitor, strlen(sub_visitor), &answer, NULL), TAILOR_OK);
  tailor_free(answer);
  sqlite3 *raw = NULL;
  CHECK_INT(sqlite3_open(db, &raw), SQLITE_OK);
  CHECK_INT(sqlite3_exec(raw, "INSERT INTO exposures VALUES('exp','cust-erase-7731','a',1)", NULL,
                         NULL, NULL), SQLITE_OK);
  sqlite3_close(raw);
  CHECK(file_has(db, "ada-pending-55@example.com") || file_has(wal_of(db), "ada-pending-55@example.com"));
  CHECK_INT(tailor_checkpoint(t, NULL), TAILOR_OK);
  CHECK(file_has(ckpt, "cust-erase-7731")); /* the test can see them before */
  int64_t erased = 0;
  CHECK_INT(tailor_forget(t, "cust-erase-7731", &erased, NULL), TAILOR_OK);
  /* profile, view, the session's page view, identify, purchase; the
     confirmed address's profile and consent */
  CHECK_INT(erased, 7);
  static const char *const traces[] = {"cust-erase-7731", "ada-unique@example.com",
                                       "anon-erase-88", "sess-erase-42",
                                       "ada-optin-91@example.com", "ada-pending-55@example.com",
                                       "consent-text-3317"};
  char wal[800], copy[700], copy_ckpt[800];
  snprintf(wal, sizeof wal, "%s-wal", db);
  for (size_t i = 0; i < sizeof traces / sizeof *traces; i++) {
    CHECK(!file_has(db, traces[i]));
    CHECK(!file_has(wal, traces[i]));
    CHECK(!file_has(ckpt, traces[i]));
  }
  /* A crash right after the erase: the files as they are now. */
  snprintf(copy, sizeof copy, "%s/crash.db", dir);
  snprintf(copy_ckpt, sizeof copy_ckpt, "%s.ckpt", copy);
  copy_file(db, copy);
  copy_file(ckpt, copy_ckpt);
  tailor *c = open_engine(copy, "");
  CHECK(c != NULL);
  char *j = NULL;
  tailor_error err = {0};
  if (c) {
    CHECK_INT(tailor_customer(c, "cust-erase-7731", 0, &j, &err), TAILOR_ENOTFOUND);
    CHECK_INT(tailor_customer(c, "anon-erase-88", 0, &j, &err), TAILOR_ENOTFOUND);
    CHECK_INT(tailor_customer(c, "someone-else", 0, &j, &err), TAILOR_OK);
    tailor_free(j);
    tailor_close(c);
  }
  tailor_close(t);
  /* And a clean restart, from the checkpoint written at close. */
  t = open_engine(db, "");
  CHECK(t != NULL);
  if (!t) return;
  CHECK_INT(tailor_customer(t, "cust-erase-7731", 0, &j, &err), TAILOR_ENOTFOUND);
  CHECK_INT(stat_of(t, "customers"), 0);
  raw = NULL;
  CHECK_INT(sqlite3_open(db, &raw), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  sqlite3_prepare_v2(raw, "SELECT count(*) FROM exposures", -1, &st, NULL);
  CHECK(st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0);
  sqlite3_finalize(st);
  sqlite3_close(raw);
  tailor_close(t);
}

static void test_errors_named(void) {
  CHECK_STR(tailor_strerror(TAILOR_EPARSE), "malformed JSON");
  CHECK_STR(tailor_errname(TAILOR_EFIELD), "EFIELD");
  CHECK_STR(tailor_strerror(12345), "unknown error");
  tailor_error err = {0};
  CHECK(tailor_open("{\"lua\":{\"budget\":1}}", &err) == NULL);
  CHECK_CONTAINS(err.message, "unknown key 'lua.budget'");
  CHECK(tailor_open("{\"strategies\":\"/no/such/folder\"}", &err) == NULL);
  CHECK_CONTAINS(err.message, "/no/such/folder");
}

/* A store restored from a backup older than its checkpoint: the checkpoint
   is refused, and removed, so that once the restored store's own events
   pass its position a crash does not bring back the events only the
   checkpoint had. */
static void test_checkpoint_of_restored_store(void) {
  char db[700], dir[600], ckpt[800], backup[800];
  make_dir(dir, sizeof dir, "restore");
  snprintf(db, sizeof db, "%s/shop.db", dir);
  snprintf(ckpt, sizeof ckpt, "%s.ckpt", db);
  snprintf(backup, sizeof backup, "%s/backup.db", dir);
  tailor *t = open_engine(db, "");
  CHECK(t != NULL);
  if (!t) return;
  CHECK_INT(ingest(t, "{\"type\":\"view\",\"item\":\"a\",\"anon\":\"v0\"}"), 0);
  tailor_close(t);
  copy_file(db, backup); /* closed: the WAL is in the file */
  t = open_engine(db, "");
  CHECK(t != NULL);
  if (!t) return;
  for (int i = 0; i < 3; i++) {
    char line[200];
    snprintf(line, sizeof line,
             "{\"type\":\"purchase\",\"customer\":\"gone\",\"order_id\":\"o%d\","
             "\"items\":[{\"id\":\"a\",\"price\":5}]}", i);
    CHECK_INT(ingest(t, line), 0);
  }
  tailor_close(t); /* a checkpoint at event 4 */
  copy_file(backup, db); /* the restore: the store has event 1 only */
  unlink(wal_of(db));
  pid_t pid = fork();
  if (pid == 0) { /* the restored store's server, killed before its checkpoint */
    tailor *c = open_engine(db, "");
    for (int i = 0; c && i < 5; i++)
      if (ingest(c, "{\"type\":\"view\",\"item\":\"a\",\"anon\":\"v1\"}")) _exit(4);
    _exit(c ? 0 : 3);
  }
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(access(ckpt, F_OK) != 0);
  t = open_engine(db, "");
  CHECK(t != NULL);
  if (!t) return;
  char *j = NULL;
  CHECK_INT(tailor_customer(t, "gone", 0, &j, NULL), TAILOR_ENOTFOUND);
  tailor_free(j);
  CHECK_INT(stat_of(t, "events_applied"), 6);
  tailor_close(t);
}

/* Strategy snapshots a killed engine left in TMPDIR are removed when an
   engine takes its first one: those whose .owner nobody holds.  One whose
   owner lives (here this test holds its lock) and one without .owner (a
   `tailor check` copy) stay; the engine's own goes when it closes. */
static int exists(const char *dir, const char *name) {
  char path[800];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return access(path, F_OK) == 0;
}

static void test_stale_snapshots_swept(void) {
  char dir[600], snaps[600], path[800];
  make_dir(dir, sizeof dir, "sweep");
  write_file(dir, "recommend.lua", "return { recommend = function(ctx) return {} end }\n");
  make_dir(snaps, sizeof snaps, "snaps");
  const char *names[] = {"tailor-strategies-dead", "tailor-strategies-live",
                         "tailor-strategies-check"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/%s", snaps, names[i]);
    mkdir(path, 0700);
    write_file(path, "recommend.lua", "return {}\n");
    if (i < 2) write_file(path, ".owner", "");
  }
  snprintf(path, sizeof path, "%s/%s/.owner", snaps, names[1]);
  int held = open(path, O_RDONLY);
  CHECK(held >= 0 && flock(held, LOCK_SH) == 0);
  const char *was = getenv("TMPDIR");
  char *saved = was ? strdup(was) : NULL;
  setenv("TMPDIR", snaps, 1);
  tailor *t = open_engine(":memory:", dir);
  CHECK(t != NULL);
  CHECK(!exists(snaps, names[0]));
  CHECK(exists(snaps, names[1]));
  CHECK(exists(snaps, names[2]));
  int own = 0; /* the engine's own snapshot, with its mark */
  DIR *d = opendir(snaps);
  for (struct dirent *de; d && (de = readdir(d));) {
    char mark[800];
    snprintf(mark, sizeof mark, "%s/.owner", de->d_name);
    if (!strncmp(de->d_name, "tailor-strategies-", 18) && strcmp(de->d_name, names[1]) &&
        exists(snaps, mark))
      own++;
  }
  if (d) closedir(d);
  CHECK_INT(own, 1);
  tailor_close(t);
  d = opendir(snaps);
  int left = 0;
  for (struct dirent *de; d && (de = readdir(d));) left += de->d_name[0] != '.';
  if (d) closedir(d);
  CHECK_INT(left, 2); /* live and check */
  close(held);
  if (saved) setenv("TMPDIR", saved, 1);
  else unsetenv("TMPDIR");
  free(saved);
}

int main(void) {
  const char *t = getenv("TAILOR_TEST_TMP");
  snprintf(tmp, sizeof tmp, "%s", t ? t : "/tmp");
  RUN(test_errors_named);
  RUN(test_decide_through_strategy);
  RUN(test_bad_requests);
  RUN(test_sandbox_failures_fall_back);
  RUN(test_entries_written);
  RUN(test_watchdog_key);
  RUN(test_hot_reload);
  RUN(test_stale_snapshots_swept);
  RUN(test_batch_keeps_good_lines);
  RUN(test_rebuild_on_open);
  RUN(test_sigkill_loses_no_acknowledged_event);
  RUN(test_concurrent_ingest_group_commit);
  RUN(test_customer_and_forget);
  RUN(test_checkpoint_restart);
  RUN(test_checkpoint_of_restored_store);
  RUN(test_message_id_applied_once);
  RUN(test_outbox_in_the_events_transaction);
  RUN(test_on_event_error_names_line);
  RUN(test_erasure_sticks);
  return CHECK_DONE();
}
