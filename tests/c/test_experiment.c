/*
** test_experiment.c: deterministic assignment (stable, split within
** tolerance of the weights on 10,000 units) and the statistics of the
** report against values computed independently.
*/
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "engine/engine.h"

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
}

int main(void) {
  RUN(test_assignment_stable_and_weighted);
  RUN(test_t_distribution);
  return CHECK_DONE();
}
