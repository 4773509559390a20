/*
** test_experiment.c: deterministic assignment (stable, split within
** tolerance of the weights on 10,000 units), the statistics of the report
** against values computed independently (published ones for the
** conversion interval), and the bound on the exposures one handler call
** can buffer.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/defaults.h"
#include "engine/dryrun.h"
#include "engine/engine.h"

#define MAX_EXPOSURES DEF_LUA_MAX_EXPOSURES /* what engine/lapi.c caps at */

static void test_assignment_stable_and_weighted(void) {
  const char *names[3] = {"control", "blend", "session"};
  double weights[3] = {50, 30, 20};
  int counts[3] = {0, 0, 0};
  char unit[32];
  for (int i = 0; i < 10000; i++) {
    snprintf(unit, sizeof unit, "visitor-%d", i);
    int v = eng_experiment_pick("recs", unit, names, weights, 3);
    CHECK(v >= 0 && v < 3);
    if (v < 0 || v > 2) continue;
    counts[v]++;
    /* Same unit, same experiment: same variant, every time. */
    CHECK_INT(eng_experiment_pick("recs", unit, names, weights, 3), v);
  }
  /* Within 1.5 points of the weights (3 standard deviations is ~1.5%). */
  CHECK_NEAR(counts[0] / 10000.0, 0.50, 0.015);
  CHECK_NEAR(counts[1] / 10000.0, 0.30, 0.015);
  CHECK_NEAR(counts[2] / 10000.0, 0.20, 0.015);
  /* Another experiment splits the same units independently. */
  int same = 0;
  double half[2] = {1, 1};
  const char *ab[2] = {"a", "b"};
  for (int i = 0; i < 10000; i++) {
    snprintf(unit, sizeof unit, "visitor-%d", i);
    same += eng_experiment_pick("x", unit, ab, half, 2) ==
            eng_experiment_pick("y", unit, ab, half, 2);
  }
  CHECK_NEAR(same / 10000.0, 0.5, 0.03);
  double zero[2] = {0, 0};
  CHECK_INT(eng_experiment_pick("z", "u", ab, zero, 2), -1);
}

static void test_t_distribution(void) {
  /* Two-sided p-values of Student's t (from tables / scipy.stats.t.sf*2). */
  CHECK_NEAR(eng_t_pvalue(2.0, 10), 0.073388, 1e-5);
  CHECK_NEAR(eng_t_pvalue(1.0, 1), 0.5, 1e-9);
  CHECK_NEAR(eng_t_pvalue(2.576, 1e6), 0.01, 1e-4); /* -> normal */
  CHECK_NEAR(eng_t_pvalue(0.0, 5), 1.0, 1e-12);
  CHECK_NEAR(eng_t_pvalue(-3.0, 20), 0.0070759, 1e-6); /* by quadrature */
  /* Its 97.5% quantiles (tables), which the revenue interval uses: at a
     few visitors an arm they are far from the normal's 1.96. */
  CHECK_NEAR(eng_t_quantile(0.05, 10), 2.228139, 1e-5);
  CHECK_NEAR(eng_t_quantile(0.05, 1), 12.706205, 1e-4);
  CHECK_NEAR(eng_t_quantile(0.05, 6), 2.446912, 1e-5);
  CHECK_NEAR(eng_t_quantile(0.05, 7), 2.364624, 1e-5);
  CHECK_NEAR(eng_t_quantile(0.05, 1e7), 1.959964, 1e-4);
  CHECK(isnan(eng_t_quantile(0.05, 0)));
}

static void test_conversion_interval(void) {
  /* Newcombe (1998), Statistics in Medicine 17:873, method 10: 56/70 less
     48/80 is 0.175 in [0.0524, 0.3339]; 9/10 less 3/10 in [0.1705, 0.8090]. */
  double lo, hi;
  eng_conversion_ci95(56, 70, 48, 80, &lo, &hi);
  CHECK_NEAR(lo, 0.0524, 1e-4);
  CHECK_NEAR(hi, 0.3339, 1e-4);
  eng_conversion_ci95(9, 10, 3, 10, &lo, &hi);
  CHECK_NEAR(lo, 0.1705, 1e-4);
  CHECK_NEAR(hi, 0.8090, 1e-4);
  /* No order yet in either arm is no evidence of no difference: the
     normal interval was [0, 0] here. */
  eng_conversion_ci95(0, 10, 0, 20, &lo, &hi);
  CHECK_NEAR(lo, -0.1611, 1e-4);
  CHECK_NEAR(hi, 0.2775, 1e-4);
  /* One buyer out of one visitor proves little (the normal interval was
     [+0.69, +0.90] against 12 of 59). */
  eng_conversion_ci95(1, 1, 12, 59, &lo, &hi);
  CHECK(lo < 0);
}

typedef struct warnings {
  int n;
  char last[512];
} warnings;

static void count_warnings(void *ud, int level, const char *msg) {
  warnings *w = ud;
  if (level != TAILOR_LOG_WARN) return;
  w->n++;
  snprintf(w->last, sizeof w->last, "%s", msg);
}

static size_t buffered(tailor *t) {
  pthread_mutex_lock(&t->expo_mu);
  size_t n = t->expo.n;
  pthread_mutex_unlock(&t->expo_mu);
  return n;
}

/* Decide with context {n =, units =, tag =}: the strategy below exposes
   units u<i % units><tag> for i = 1..n; fails the test on a fallback. */
static void decide_loop(tailor *t, int n, int units, const char *tag) {
  char req[300], *resp = NULL;
  tailor_error err = {0};
  snprintf(req, sizeof req,
           "{\"kind\":\"recommend\",\"anon\":\"v\",\"context\":"
           "{\"n\":%d,\"units\":%d,\"tag\":\"%s\"}}",
           n, units, tag);
  CHECK_INT(tailor_decide(t, req, strlen(req), &resp, NULL, &err), TAILOR_OK);
  CHECK(resp && !strstr(resp, "fallback"));
  if (resp && strstr(resp, "fallback")) fprintf(stderr, "  %s\n", resp);
  tailor_free(resp);
}

/* Exposures wait in C, outside the Lua memory cap, for the next commit: a
   handler calling tailor.experiment 300,000 times once buffered 300,000
   rows (~180 MB).  Now a call records at most MAX_EXPOSURES distinct ones
   and warns once; the next call has its own allowance.  A pair recorded
   lately is not recorded again until an erasure. */
static void test_exposures_bounded_per_call(void) {
  static const char strategy[] =
      "local variants = { 'a', 'b' }\n"
      "return { recommend = function(ctx)\n"
      "  local c = ctx.context\n"
      "  if not c.n then tailor.experiment('loop', variants, 'dry-run visitor') return {} end\n"
      "  for i = 1, c.n do\n"
      "    tailor.experiment('loop', variants, 'u' .. (i % c.units) .. c.tag)\n"
      "  end\n"
      "  return {}\n"
      "end }\n";
  const char *root = getenv("TAILOR_TEST_TMP");
  char dir[512], path[600], cfg[900];
  warnings w = {0};
  tailor_error err = {0};
  snprintf(dir, sizeof dir, "%s/expoXXXXXX", root && *root ? root : "/tmp");
  if (!mkdtemp(dir)) abort();
  snprintf(path, sizeof path, "%s/recommend.lua", dir);
  FILE *f = fopen(path, "w");
  if (!f) abort();
  fputs(strategy, f);
  fclose(f);
  snprintf(cfg, sizeof cfg,
           "{\"db\":\":memory:\",\"strategies\":\"%s\",\"lua\":"
           "{\"instruction_budget\":100000000,\"reload_interval_ms\":0}}",
           dir);
  tailor *t = tailor_open(cfg, &err);
  CHECK(t != NULL);
  if (!t) {
    fprintf(stderr, "  %s\n", err.message);
    goto out;
  }
  tailor_set_logger(t, count_warnings, &w);

  decide_loop(t, 300000, 300000, "x");
  CHECK_INT(buffered(t), MAX_EXPOSURES);
  CHECK_INT(w.n, 1);
  CHECK_CONTAINS(w.last, "recommend.lua:6: tailor.experiment: more than 64 "
                         "exposures in one call");
  /* A new call, a new allowance (and one more warning). */
  decide_loop(t, 300000, 300000, "y");
  CHECK_INT(buffered(t), 2 * MAX_EXPOSURES);
  CHECK_INT(w.n, 2);
  /* The same few units again and again are a few exposures, no warning. */
  decide_loop(t, 10000, 3, "z");
  CHECK_INT(buffered(t), 2 * MAX_EXPOSURES + 3);
  CHECK_INT(w.n, 2);
  /* A pair recorded lately is not buffered again in a later call (the
     store keeps a unit's first exposure anyway)... */
  decide_loop(t, 10000, 3, "z");
  CHECK_INT(buffered(t), 2 * MAX_EXPOSURES + 3);
  /* ...until an erasure, which first writes what waits to the store (where
     it deletes the erased person's: kept in memory, they were written back
     after it), after which a unit may be exposed anew. */
  CHECK_INT(tailor_forget(t, "nobody", NULL, &err), TAILOR_OK);
  CHECK_INT(buffered(t), 0);
  decide_loop(t, 3, 3, "z");
  CHECK_INT(buffered(t), 3);
  /* A dry run (the console's Check, `tailor check --sample`) exposes
     nobody, and keeps what real visitors' decisions left waiting. */
  eng_dry_report rep;
  CHECK_INT(eng_dry_run(t, 3, &rep, &err), TAILOR_OK);
  eng_dry_report_free(&rep);
  CHECK_INT(buffered(t), 3);
  /* A unit that is not UTF-8 is not kept (PostgreSQL would refuse the
     whole flush). */
  eng_expose(t, "loop", "a", "u\xff", eng_exposure_hash("loop", "u\xff"));
  CHECK_INT(buffered(t), 3);

  /* The report sees exactly those. */
  char *report = NULL;
  CHECK_INT(tailor_report_experiments(t, 7, &report, &err), TAILOR_OK);
  json_t *rows = report ? json_loads(report, 0, NULL) : NULL;
  json_t *variants = json_object_get(json_array_get(rows, 0), "variants");
  json_int_t total = 0;
  for (size_t i = 0; i < json_array_size(variants); i++)
    total += json_integer_value(json_object_get(json_array_get(variants, i), "exposures"));
  CHECK_INT(total, 2 * MAX_EXPOSURES + 3);
  json_decref(rows);
  tailor_free(report);
  tailor_close(t);
out:
  unlink(path);
  rmdir(dir);
}

int main(void) {
  RUN(test_assignment_stable_and_weighted);
  RUN(test_t_distribution);
  RUN(test_conversion_interval);
  RUN(test_exposures_bounded_per_call);
  return CHECK_DONE();
}
