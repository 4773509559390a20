/*
** test_threads.c: the embedding API under concurrency: 8 threads decide
** while 1 thread ingests, for a bounded time, and the answers stay
** consistent with what was ingested; threads that exit release their Lua
** state.  Half the deciders ask for popups, which read the store and
** write coupons while the writer commits: on ":memory:" (no reader of
** its own) that once crossed the writer's locks and hung; a watchdog
** fails the test instead of waiting forever.  Detached threads that
** decide once are still exiting when their engine closes.  Built twice: with ASan/UBSan like every test, and with
** ThreadSanitizer (make test, build/tsan).
*/
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tailor.h"

#define DECIDERS 8
#define RUN_MS 2500
#define ITEMS 50

static tailor *engine;
static atomic_int stop;
static atomic_long decisions, popups, bad_answers, ingested;

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Views follow a fixed pattern: in each round item i is viewed ceil(i/10)
   times, so items 41..50 lead, tied (ties rank the smaller id first).
   Rounds are never cut short, so the pattern holds whenever it stops. */
static void *ingester(void *arg) {
  char line[256];
  for (long round = 0; !atomic_load(&stop); round++) {
    for (int i = 1; i <= ITEMS; i++) {
      for (int v = 0; v < i; v += 10) {
        snprintf(line, sizeof line,
                 "{\"type\":\"view\",\"item\":\"i%d\",\"anon\":\"w%ld\",\"session\":\"s%ld\"}",
                 i, round % 97, round);
        if (tailor_ingest(engine, line, strlen(line), NULL) == TAILOR_OK)
          atomic_fetch_add(&ingested, 1);
      }
    }
  }
  return arg;
}

/* A popup on the cart page at exit intent: the strategy reads the
   visitor's profile from the store and may issue a coupon. */
static int ask_popup(long id, long n) {
  char req[256];
  snprintf(req, sizeof req,
           "{\"kind\":\"popup\",\"anon\":\"p%ld-%ld\",\"session\":\"ps%ld-%ld\","
           "\"page\":{\"type\":\"cart\"},\"context\":{\"trigger\":\"exit_intent\","
           "\"cart_value\":40}}",
           id, n, id, n);
  char *resp = NULL;
  int ok = tailor_decide(engine, req, strlen(req), &resp, NULL, NULL) == TAILOR_OK && resp &&
           !strstr(resp, "\"fallback\"") && strstr(resp, "\"kind\":\"popup\"");
  tailor_free(resp);
  return ok;
}

static void *decider(void *arg) {
  long id = (long)(intptr_t)arg;
  char req[256];
  for (long n = 0; !atomic_load(&stop); n++) {
    if (id % 2) {
      if (!ask_popup(id, n)) atomic_fetch_add(&bad_answers, 1);
      atomic_fetch_add(&popups, 1);
      atomic_fetch_add(&decisions, 1);
      continue;
    }
    snprintf(req, sizeof req,
             "{\"kind\":\"recommend\",\"anon\":\"d%ld-%ld\",\"k\":5,\"page\":{\"type\":\"home\"}}",
             id, n % 50);
    char *resp = NULL;
    if (tailor_decide(engine, req, strlen(req), &resp, NULL, NULL) != TAILOR_OK || !resp ||
        strstr(resp, "\"fallback\"") || !strstr(resp, "\"id\":\"i"))
      atomic_fetch_add(&bad_answers, 1);
    tailor_free(resp);
    atomic_fetch_add(&decisions, 1);
  }
  return NULL;
}

/* The watchdog: a lock cycle between deciders and the writer would hang
   the joins below; exit with a message instead. */
static void hung(int sig) {
  (void)sig;
  static const char msg[] = "test_threads: no progress in 60 s (a lock cycle?)\n";
  (void)!write(2, msg, sizeof msg - 1);
  _exit(2);
}

static long stat_of(const char *key) {
  char *s = NULL;
  long v = -1;
  if (tailor_stats(engine, &s, NULL) == TAILOR_OK) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(s, pat);
    if (p) v = strtol(p + strlen(pat), NULL, 10);
  }
  tailor_free(s);
  return v;
}

static void test_decide_while_ingesting(void) {
  /* Seed one view each so the first decisions have items. */
  char line[128];
  for (int i = 1; i <= ITEMS; i++) {
    snprintf(line, sizeof line, "{\"type\":\"view\",\"item\":\"i%d\",\"anon\":\"seed\"}", i);
    CHECK_INT(tailor_ingest(engine, line, strlen(line), NULL), TAILOR_OK);
  }
  signal(SIGALRM, hung);
  alarm(60);
  pthread_t in, out[DECIDERS];
  pthread_create(&in, NULL, ingester, NULL);
  for (long i = 0; i < DECIDERS; i++) pthread_create(&out[i], NULL, decider, (void *)(intptr_t)i);
  long until = now_ms() + RUN_MS;
  while (now_ms() < until) usleep(20000);
  atomic_store(&stop, 1);
  pthread_join(in, NULL);
  for (int i = 0; i < DECIDERS; i++) pthread_join(out[i], NULL);
  alarm(0);
  printf("%ld decisions (%ld popups) and %ld events in %d ms\n", (long)decisions, (long)popups,
         (long)ingested, RUN_MS);
  CHECK(atomic_load(&decisions) > DECIDERS);
  CHECK(atomic_load(&popups) > 0);
  CHECK(atomic_load(&ingested) > 0);
  CHECK_INT(atomic_load(&bad_answers), 0);
  /* Consistent with the data: every view counted, and the bestsellers are
     the most viewed items of the pattern. */
  CHECK_INT(stat_of("view"), ITEMS + atomic_load(&ingested));
  char *resp = NULL;
  const char *req = "{\"kind\":\"recommend\",\"anon\":\"fresh\",\"k\":1,\"page\":{\"type\":\"home\"}}";
  CHECK_INT(tailor_decide(engine, req, strlen(req), &resp, NULL, NULL), TAILOR_OK);
  CHECK_CONTAINS(resp, "\"items\":[{\"id\":\"i41\"");
  tailor_free(resp);
  /* The deciding threads have exited: their Lua states went with them;
     only this thread's remains. */
  CHECK_INT(stat_of("lua_states"), 1);
}

/*
** Detached threads decide once each and exit on their own; the engine is
** closed as soon as their calls have returned, while their exits (which
** free their Lua states) may still be running.  Close and those exits
** crossed: a race ThreadSanitizer reported, and a slot freed twice.
*/
static atomic_int returned;

static void *decide_once(void *arg) {
  tailor *t = arg;
  char *resp = NULL;
  const char *req = "{\"kind\":\"recommend\",\"anon\":\"d1\",\"k\":1}";
  if (tailor_decide(t, req, strlen(req), &resp, NULL, NULL) != TAILOR_OK)
    atomic_fetch_add(&bad_answers, 1);
  tailor_free(resp);
  atomic_fetch_add(&returned, 1);
  return NULL;
}

static void test_close_while_threads_exit(const char *cfg) {
  for (int round = 0; round < 20; round++) {
    tailor_error err = {0};
    tailor *t = tailor_open(cfg, &err);
    CHECK(t != NULL);
    if (!t) return;
    atomic_store(&returned, 0);
    for (int i = 0; i < 16; i++) {
      pthread_t th;
      pthread_attr_t a;
      pthread_attr_init(&a);
      pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
      CHECK_INT(pthread_create(&th, &a, decide_once, t), 0);
      pthread_attr_destroy(&a);
    }
    while (atomic_load(&returned) < 16) usleep(100);
    tailor_close(t); /* the threads are exiting, or about to */
  }
  usleep(200000); /* the last exits end before the process does */
  CHECK_INT(atomic_load(&bad_answers), 0);
}

/*
** Refits beside the writer (index.background_refits): a buyer's orders
** cross index.value_refit_orders again and again while deciders read
** customers' figures (value, tier, segment) and the index the fitter
** reads and writes; the fits come in (the models' orders move) and the
** engine closes with one under way.
*/
static atomic_long orders_in;

static void *buyer(void *arg) {
  char line[300];
  for (long n = 0; !atomic_load(&stop); n++) {
    snprintf(line, sizeof line,
             "{\"type\":\"purchase\",\"customer\":\"c%ld\",\"order_id\":\"o%ld\","
             "\"session\":\"b%ld\",\"items\":[{\"id\":\"i%ld\",\"price\":%ld}]}",
             n % 40, n, n / 3, 1 + n % ITEMS, 5 + n % 30);
    if (tailor_ingest(engine, line, strlen(line), NULL) == TAILOR_OK)
      atomic_fetch_add(&orders_in, 1);
  }
  return arg;
}

static void *customer_decider(void *arg) {
  long id = (long)(intptr_t)arg;
  char req[256];
  for (long n = 0; !atomic_load(&stop); n++) {
    snprintf(req, sizeof req,
             "{\"kind\":\"%s\",\"customer\":\"c%ld\",\"k\":3,\"page\":{\"type\":\"home\"}}",
             n % 2 ? "recommend" : "discount", (id * 7 + n) % 40);
    char *resp = NULL;
    if (tailor_decide(engine, req, strlen(req), &resp, NULL, NULL) != TAILOR_OK || !resp)
      atomic_fetch_add(&bad_answers, 1);
    tailor_free(resp);
    atomic_fetch_add(&decisions, 1);
  }
  return NULL;
}

/* The models' "orders" in tailor_stats: the orders of the last fit. */
static long fitted_orders(void) {
  char *s = NULL;
  long v = -1;
  if (tailor_stats(engine, &s, NULL) == TAILOR_OK) {
    const char *p = strstr(s, "\"models\":{");
    p = p ? strstr(p, "\"orders\":") : NULL;
    if (p) v = strtol(p + strlen("\"orders\":"), NULL, 10);
  }
  tailor_free(s);
  return v;
}

static void test_refits_beside_the_writer(const char *root) {
  char cfg[1024];
  snprintf(cfg, sizeof cfg,
           "{\"db\":\":memory:\",\"strategies\":\"%s/strategies\",\"index\":"
           "{\"background_refits\":true,\"value_refit_orders\":50,\"clusters\":3}}",
           root);
  tailor_error err = {0};
  engine = tailor_open(cfg, &err);
  CHECK(engine != NULL);
  if (!engine) return;
  atomic_store(&stop, 0);
  atomic_store(&bad_answers, 0);
  signal(SIGALRM, hung);
  alarm(60);
  pthread_t in, out[4];
  pthread_create(&in, NULL, buyer, NULL);
  for (long i = 0; i < 4; i++) pthread_create(&out[i], NULL, customer_decider, (void *)(intptr_t)i);
  long until = now_ms() + RUN_MS, first = -1;
  while (now_ms() < until) {
    usleep(20000);
    long f = fitted_orders();
    if (first < 0 && f > 0) first = f;
  }
  atomic_store(&stop, 1);
  pthread_join(in, NULL);
  for (int i = 0; i < 4; i++) pthread_join(out[i], NULL);
  alarm(0);
  long last = fitted_orders();
  printf("%ld orders, fits at %ld then %ld orders\n", (long)atomic_load(&orders_in), first, last);
  CHECK_INT(atomic_load(&bad_answers), 0);
  CHECK(atomic_load(&orders_in) > 200);
  CHECK(first > 0);       /* a fit came in while the writer went on */
  CHECK(last > first);    /* and more after it */
  tailor_close(engine);   /* perhaps with a fit under way */
  engine = NULL;
}

/*
** An erasure while the fitter checks the session kernel's repeat profile
** (it lets go of the index lock between sessions) leaves the shop's
** profile as it was: the erasure does not touch the sessions the check
** reads.  It once ended the check, and every fit that met an erasure put
** a repeat-heavy shop's kernel back to the defaults until the next fit.
*/
static int repeat_heavy(void) {
  char *s = NULL;
  int v = -1;
  if (tailor_stats(engine, &s, NULL) == TAILOR_OK) {
    const char *p = strstr(s, "\"repeat_heavy\":");
    if (p) v = !strncmp(p + strlen("\"repeat_heavy\":"), "true", 4);
  }
  tailor_free(s);
  return v;
}

static void buy(int round, int orders) {
  char line[256];
  for (int o = 0; o < orders; o++) {
    snprintf(line, sizeof line,
             "{\"type\":\"purchase\",\"customer\":\"c%d\",\"order_id\":\"o%d_%d\","
             "\"items\":[{\"id\":\"i%d\",\"price\":10}]}", o, round, o, 1 + o);
    tailor_ingest(engine, line, strlen(line), NULL);
  }
}

static void test_erasure_during_a_fit(const char *root) {
  char cfg[1024];
  snprintf(cfg, sizeof cfg,
           "{\"db\":\":memory:\",\"strategies\":\"%s/strategies\",\"index\":"
           "{\"background_refits\":true,\"value_refit_orders\":20,\"clusters\":0}}",
           root);
  tailor_error err = {0};
  engine = tailor_open(cfg, &err);
  CHECK(engine != NULL);
  if (!engine) return;
  /* A repeat-heavy shop: sessions go a b a c b a ... */
  size_t cap = 1 << 21, len = 0;
  char *nd = malloc(cap);
  for (long s = 0; s < 1500; s++)
    for (int i = 0; i < 8; i++)
      len += (size_t)snprintf(nd + len, cap - len,
                              "{\"type\":\"view\",\"item\":\"i%ld\",\"anon\":\"a%ld\","
                              "\"session\":\"s%ld\"}\n",
                              1 + (s * 3 + i % 3) % 200, s % 500, s);
  tailor_ingest_batch(engine, nd, len, NULL, NULL, NULL, NULL);
  free(nd);
  signal(SIGALRM, hung);
  alarm(120);
  buy(0, 20);
  while (fitted_orders() < 20) usleep(10000);
  CHECK_INT(repeat_heavy(), 1);
  buy(1, 20);
  long erasures = 0;
  while (fitted_orders() < 40) { /* erasures meet the fit */
    tailor_forget(engine, "nobody", NULL, NULL);
    erasures++;
  }
  alarm(0);
  printf("%ld erasures during the fit\n", erasures);
  CHECK_INT(repeat_heavy(), 1);
  tailor_close(engine);
  engine = NULL;
}

int main(void) {
  char cfg[1024];
  snprintf(cfg, sizeof cfg,
           "{\"db\":\":memory:\",\"strategies\":\"%s/strategies\","
           "\"index\":{\"trend_half_life_days\":0}}",
           getenv("TAILOR_ROOT") ? getenv("TAILOR_ROOT") : ".");
  tailor_error err = {0};
  engine = tailor_open(cfg, &err);
  if (!engine) {
    fprintf(stderr, "open: %s\n", err.message);
    return 1;
  }
  RUN(test_decide_while_ingesting);
  tailor_close(engine);
  test_close_while_threads_exit(cfg);
  test_refits_beside_the_writer(getenv("TAILOR_ROOT") ? getenv("TAILOR_ROOT") : ".");
  test_erasure_during_a_fit(getenv("TAILOR_ROOT") ? getenv("TAILOR_ROOT") : ".");
  return CHECK_DONE();
}
