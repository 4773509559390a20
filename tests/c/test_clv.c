/*
** test_clv.c: the customer-value models.  Closed forms are pinned against
** values computed independently at 40 digits (mpmath: its hyp2f1, and the
** expectation as a direct integral over p); fits are checked by recovering
** known parameters from simulated customers.
*/
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "index/clv.h"

/* The CDNOW estimates of the BG/NBD paper, in weeks. */
static const clv_bgnbd CDNOW = {0.243, 4.414, 0.793, 2.426, 0, 0};
/* The CDNOW estimates of the Gamma-Gamma paper, in dollars. */
static const clv_gamma_gamma CDNOW_GG = {6.25, 3.74, 15.44, 0, 0};

/* CDNOW customers (x, t_x, T in weeks) with the reference P(alive) and
   expected purchases in the next 39 weeks. */
static const struct {
  uint32_t x;
  double t_x, T, p_alive, e39;
} PINS[] = {
    {2, 30.43, 38.86, 0.72657857008067291, 1.2260281747671444},
    {1, 1.71, 38.86, 0.21210098537737908, 0.20318698707975406},
    {0, 0, 38.86, 1.0, 0.19509805201126264},
    {7, 29.43, 38.86, 0.64175634594610725, 3.3370532748514165},
    {10, 34.14, 38.86, 0.81530215397830627, 5.9333825476563704},
    {1, 38.43, 38.43, 0.753650201926064, 0.72826307315339347}, /* t_x = T */
    {29, 37.71, 38.00, 0.96912951815933952, 20.05294898649679},
};
#define NPINS (sizeof PINS / sizeof PINS[0])

static void test_bgnbd_closed_forms(void) {
  clv_customer c[NPINS];
  for (size_t i = 0; i < NPINS; i++) {
    c[i] = (clv_customer){PINS[i].x, PINS[i].t_x, PINS[i].T, 0};
    CHECK_NEAR(clv_p_alive(&CDNOW, PINS[i].x, PINS[i].t_x, PINS[i].T),
               PINS[i].p_alive, 1e-12);
    CHECK_NEAR(clv_expected_purchases(&CDNOW, 39, PINS[i].x, PINS[i].t_x,
                                      PINS[i].T),
               PINS[i].e39, 1e-10 * PINS[i].e39);
  }
  CHECK_NEAR(clv_bgnbd_loglik(&CDNOW, c, NPINS), -113.25294883977031, 1e-10);
  /* The paper's table: customer 1 is expected to buy 1.226 times. */
  CHECK_NEAR(clv_expected_purchases(&CDNOW, 39, 2, 30.43, 38.86), 1.226, 5e-4);
}

static void test_bgnbd_edges(void) {
  /* No repeat order: the model cannot have lost the customer yet. */
  CHECK_NEAR(clv_p_alive(&CDNOW, 0, 0, 38.86), 1, 0);
  CHECK_NEAR(clv_p_alive(&CDNOW, 0, 12, 38.86), 1, 0); /* t_x ignored */
  CHECK_NEAR(clv_expected_purchases(&CDNOW, 0, 3, 10, 20), 0, 0);
  /* Silent for ages. */
  CHECK_NEAR(clv_p_alive(&CDNOW, 3, 10, 1e6), 1.1134486588787295e-15, 1e-24);
  CHECK_NEAR(clv_expected_purchases(&CDNOW, 39, 3, 10, 1e6),
             1.4082353872831681e-19, 1e-28);
  CHECK_NEAR(clv_expected_purchases(&CDNOW, 39, 0, 0, 1e6),
             9.4769015813228564e-6, 1e-15);
  CHECK(clv_p_alive(&CDNOW, 3, 10, 1e300) == 0);
  /* Where the closed form is 0/0: a = 1, and a + b = 1 with x = 0. */
  clv_bgnbd m = CDNOW;
  m.a = 1;
  CHECK_NEAR(clv_expected_purchases(&m, 39, 2, 30.43, 38.86),
             1.1021367860399558, 1e-7);
  m.a = 0.3, m.b = 0.7;
  CHECK_NEAR(clv_expected_purchases(&m, 39, 0, 0, 38.86),
             0.19271487629100326, 1e-7);
  /* Many orders over a long horizon: the series' terms grow huge. */
  clv_bgnbd d = {0.5, 20, 0.7, 3, 0, 0};
  CHECK_NEAR(clv_expected_purchases(&d, 365, 200, 300, 310),
             63.134182331938291, 1e-8);
  clv_bgnbd tiny = d;
  tiny.alpha = 0.1; /* z = 0.9997: slow series */
  CHECK_NEAR(clv_expected_purchases(&tiny, 365, 0, 0, 0), 44.714640310211467,
             1e-8);
  /* A customer of the last minutes under a small alpha (one fitted on a
     burst of orders): z = t/(alpha+T+t) within 1e-5 of 1, where both
     series gave up and the expectation was NAN.  References: mpmath's
     hyp2f1 and the integral over p, which agree to 20 digits. */
  clv_bgnbd burst = {0.8, 0.0048, 0.5, 2.0, 0, 0};
  CHECK_NEAR(clv_expected_purchases(&burst, 365, 0, 0, 0), 562.17499813566660,
             1e-8 * 562);
  CHECK_NEAR(clv_expected_purchases(&burst, 365, 0, 0, 0.01), 318.87846476968952,
             1e-8 * 319);
  CHECK_NEAR(clv_expected_purchases(&burst, 365, 3, 0.02, 0.03), 573.86191123094453,
             1e-8 * 574);
  burst.a = 1; /* and at the pole a = 1 (reference: the integral) */
  CHECK_NEAR(clv_expected_purchases(&burst, 365, 2, 0.01, 0.02), 15.210198729921404,
             1e-6 * 15.2);
  /* Invalid histories. */
  CHECK(isnan(clv_p_alive(&CDNOW, 2, 40, 38)));
  CHECK(isnan(clv_p_alive(&CDNOW, 2, -1, 38)));
  CHECK(isnan(clv_expected_purchases(&CDNOW, -1, 2, 1, 38)));
  CHECK(isnan(clv_expected_purchases(&CDNOW, 39, 2, 1, INFINITY)));
}

static void test_gamma_gamma_closed_forms(void) {
  const clv_gamma_gamma *g = &CDNOW_GG;
  double pop = g->v * g->p / (g->q - 1); /* 35.2189781 */
  CHECK_NEAR(clv_expected_spend(g, 0, 99), pop, 1e-12);
  static const struct {
    uint32_t x;
    double m, e, ll;
  } gg[] = {{1, 40, 38.542825361512792, -4.4253014841657113},
            {2, 12.5, 16.584645669291339, -3.7890021198241679},
            {5, 60.2, 58.186231244483672, -5.3996341863575723}};
  for (size_t i = 0; i < 3; i++) {
    double w = g->p * gg[i].x / (g->p * gg[i].x + g->q - 1);
    double e = clv_expected_spend(g, gg[i].x, gg[i].m);
    CHECK_NEAR(e, (1 - w) * pop + w * gg[i].m, 1e-12); /* lifetimes' form */
    CHECK_NEAR(e, gg[i].e, 1e-12);
    clv_customer c = {gg[i].x, 1, 2, gg[i].m};
    CHECK_NEAR(clv_gamma_gamma_loglik(g, &c, 1), gg[i].ll, 1e-11);
  }
  clv_gamma_gamma heavy = {2, 0.5, 10, 0, 0}; /* q < 1: infinite mean */
  CHECK(isnan(clv_expected_spend(&heavy, 0, 0)));
  CHECK_NEAR(clv_expected_spend(&heavy, 1, 30), 2 * 40 / 1.5, 1e-12);
}

static void test_predict(void) {
  clv_customer c = {2, 30.43 * 7, 38.86 * 7, 40};
  clv_bgnbd m = CDNOW;
  m.alpha *= 7; /* weeks to days */
  double e = clv_expected_purchases(&m, 273, c.x, c.t_x, c.T);
  CHECK_NEAR(e, 1.2260281747671444, 1e-10);
  double s = clv_expected_spend(&CDNOW_GG, 2, 40);
  CHECK_NEAR(clv_predict(&m, &CDNOW_GG, &c, 273, 0), e * s, 1e-9);
  /* Discounting: month by month by hand, the last month a partial one. */
  double want = 0, before = 0;
  for (int k = 1; k <= 10; k++) {
    double end = k < 10 ? 30.0 * k : 273;
    double upto = clv_expected_purchases(&m, end, c.x, c.t_x, c.T);
    want += (upto - before) / pow(1.01, end / 30);
    before = upto;
  }
  double got = clv_predict(&m, &CDNOW_GG, &c, 273, 0.01);
  CHECK_NEAR(got, want * s, 1e-9);
  CHECK(got < e * s && got > e * s / pow(1.01, 273 / 30.0));
  CHECK(isnan(clv_predict(&m, &CDNOW_GG, &c, 273, -0.1)));
}

/*
** Simulation: splitmix64, Marsaglia-Tsang gamma variates.
*/
static uint64_t rng_state;

static double uniform(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return ((z >> 11) + 0.5) * 0x1.0p-53; /* in (0, 1) */
}

static double normal(void) {
  return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
}

static double gamma_variate(double shape) { /* scale 1 */
  if (shape < 1) return gamma_variate(shape + 1) * pow(uniform(), 1 / shape);
  double d = shape - 1.0 / 3, c = 1 / sqrt(9 * d);
  for (;;) {
    double z = normal(), v = 1 + c * z;
    if (v <= 0) continue;
    v = v * v * v;
    double u = uniform();
    if (log(u) < 0.5 * z * z + d - d * v + d * log(v)) return d * v;
  }
}

#define NSIM 5000
#define HOLDOUT_DAYS 180.0

typedef struct sim_customer {
  clv_customer c;
  int alive;      /* still active at T */
  int holdout;    /* orders in the HOLDOUT_DAYS after T */
  double spend;   /* true expected order value, p / nu */
} sim_customer;

/* BG/NBD customers first seen over two years, followed for T + holdout. */
static void simulate_bgnbd(const clv_bgnbd *m, sim_customer *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double T = 30 + 700 * uniform(), t = 0, tx = 0;
    double lambda = gamma_variate(m->r) / m->alpha;
    double gx = gamma_variate(m->a), p = gx / (gx + gamma_variate(m->b));
    uint32_t x = 0;
    int hold = 0, alive = 1;
    for (;;) {
      t += -log(uniform()) / lambda;
      if (t > T + HOLDOUT_DAYS) break;
      if (t <= T) x++, tx = t;
      else hold++;
      if (uniform() < p) {
        if (t <= T) alive = 0;
        break;
      }
    }
    s[i] = (sim_customer){{x, tx, T, 0}, alive, hold, 0};
  }
}

static void test_bgnbd_recovery(void) {
  static sim_customer s[NSIM];
  static clv_customer c[NSIM];
  const clv_bgnbd truth = {0.5, 20, 0.7, 3, 0, 0};
  rng_state = 42;
  simulate_bgnbd(&truth, s, NSIM);
  for (size_t i = 0; i < NSIM; i++) c[i] = s[i].c;
  clv_bgnbd fit;
  CHECK_INT(clv_fit_bgnbd(c, NSIM, NULL, &fit), CLV_OK);
  printf("bgnbd fit: r %.4f alpha %.3f a %.4f b %.4f ll %.2f iters %u"
         " (truth 0.5 20 0.7 3, ll %.2f)\n",
         fit.r, fit.alpha, fit.a, fit.b, fit.loglik, fit.iters,
         clv_bgnbd_loglik(&truth, c, NSIM));
  CHECK(fit.loglik >= clv_bgnbd_loglik(&truth, c, NSIM)); /* it is the max */
  CHECK_NEAR(fit.r, truth.r, 0.1 * truth.r);
  CHECK_NEAR(fit.alpha, truth.alpha, 0.15 * truth.alpha);
  CHECK_NEAR(fit.a, truth.a, 0.2 * truth.a);
  CHECK_NEAR(fit.b, truth.b, 0.25 * truth.b);

  double pred = 0, pred_truth = 0, actual = 0, alive = 0, p_alive = 0;
  for (size_t i = 0; i < NSIM; i++) {
    const clv_customer *ci = &c[i];
    pred += clv_expected_purchases(&fit, HOLDOUT_DAYS, ci->x, ci->t_x, ci->T);
    pred_truth +=
        clv_expected_purchases(&truth, HOLDOUT_DAYS, ci->x, ci->t_x, ci->T);
    actual += s[i].holdout;
    alive += s[i].alive;
    p_alive += clv_p_alive(&fit, ci->x, ci->t_x, ci->T);
  }
  printf("bgnbd holdout %.0f days: predicted %.3f, with true params %.3f,"
         " simulated %.3f orders per customer; P(alive) %.3f, alive %.3f\n",
         HOLDOUT_DAYS, pred / NSIM, pred_truth / NSIM, actual / NSIM,
         p_alive / NSIM, alive / NSIM);
  /* Over 12 seeds the fit's prediction was within 6% of what was simulated. */
  CHECK_NEAR(pred, pred_truth, 0.05 * pred_truth);
  CHECK_NEAR(pred, actual, 0.08 * actual);
  CHECK_NEAR(p_alive / NSIM, alive / NSIM, 0.03);

  /* Deterministic: the same data gives the same fit, bit for bit. */
  clv_bgnbd again;
  clv_fit_bgnbd(c, NSIM, NULL, &again);
  CHECK(again.r == fit.r && again.b == fit.b && again.iters == fit.iters);

  /* A penalizer pulls the parameters (on the fit's scale) towards 0. */
  clv_fit_opts o;
  clv_fit_opts_default(&o);
  o.penalizer = 0.1;
  clv_bgnbd pen;
  CHECK_INT(clv_fit_bgnbd(c, NSIM, &o, &pen), CLV_OK);
  CHECK(pen.b < fit.b && pen.loglik < fit.loglik);
}

static void test_gamma_gamma_recovery(void) {
  static sim_customer s[NSIM];
  static clv_customer c[NSIM];
  const clv_gamma_gamma truth = {6, 4, 15, 0, 0};
  rng_state = 7;
  for (size_t i = 0; i < NSIM; i++) {
    uint32_t x = (uint32_t)(uniform() * 8); /* 0..7, a seventh have none */
    double nu = gamma_variate(truth.q) / truth.v;
    double m = x ? gamma_variate(truth.p * x) / nu / x : 0;
    s[i] = (sim_customer){{x, x, 10, m}, 1, 0, truth.p / nu};
    c[i] = s[i].c;
  }
  clv_gamma_gamma fit;
  CHECK_INT(clv_fit_gamma_gamma(c, NSIM, NULL, &fit), CLV_OK);
  printf("gamma-gamma fit: p %.3f q %.3f v %.3f iters %u (truth 6 4 15)\n",
         fit.p, fit.q, fit.v, fit.iters);
  CHECK(fit.loglik >= clv_gamma_gamma_loglik(&truth, c, NSIM));
  /* p and v trade off against each other (over 12 seeds p ranged 5.1 to
     7.9); q and the population mean p v / (q - 1) are pinned down well. */
  CHECK_NEAR(fit.p, truth.p, 0.35 * truth.p);
  CHECK_NEAR(fit.v, truth.v, 0.35 * truth.v);
  CHECK_NEAR(fit.q, truth.q, 0.1 * truth.q);
  double pred = 0, real = 0, naive = 0;
  size_t n = 0;
  for (size_t i = 0; i < NSIM; i++) {
    if (!c[i].x) continue;
    double e = clv_expected_spend(&fit, c[i].x, c[i].mean_value);
    pred += fabs(e - s[i].spend);
    naive += fabs(c[i].mean_value - s[i].spend);
    real += s[i].spend;
    n++;
  }
  printf("gamma-gamma: mean |error| of expected spend %.3f vs %.3f for the"
         " customer's own mean (true mean spend %.3f)\n",
         pred / n, naive / n, real / n);
  CHECK(pred < naive); /* shrinkage helps */
  CHECK_NEAR(clv_expected_spend(&fit, 0, 0), truth.p * truth.v / (truth.q - 1),
             0.03 * 30);
}

/*
** A shop whose customers all drop out alike: the likelihood has no maximum
** at finite a, b but rises ever more slowly along a/b = const to the
** limit of a fixed dropout probability, where the predictions settle.
** The fit was refused there ("did not converge": four ln Gamma near 1e7
** cancelled to noise above the tolerance), and the simple estimator stood
** in on an ordinary shop.
*/
static void test_bgnbd_ridge(void) {
  clv_customer c[80];
  for (int i = 1; i <= 80; i++) {
    int gap = 10 + (i % 7) * 9, stop = i % 3 == 0 ? 150 - (i % 50) * 2 : 0;
    int first = 300 - (i % 40) * 3, last = first, k = 0;
    for (int d = first; d >= 1; d -= gap) {
      if (d < stop) break;
      last = d, k++;
      if (i % 4 == 0) break;
    }
    c[i - 1] = (clv_customer){(uint32_t)(k - 1), first - last, first, 40};
  }
  clv_bgnbd m;
  CHECK_INT(clv_fit_bgnbd(c, 80, NULL, &m), CLV_OK);
  CHECK(m.a > 1e3 && m.b > 1e3);
  CHECK_NEAR(m.a / (m.a + m.b), 0.0163, 0.001);
  /* As good as the ridge's points, and predicting as they do. */
  const clv_bgnbd ridge = {0.706427, 27.1882, 408934, 2.46538e7, 0, 0};
  CHECK(m.loglik >= clv_bgnbd_loglik(&ridge, c, 80) - 1e-6);
  CHECK_NEAR(clv_p_alive(&m, 3, 60, 200), clv_p_alive(&ridge, 3, 60, 200), 1e-3);
  CHECK_NEAR(clv_expected_purchases(&m, 365, 3, 60, 200),
             clv_expected_purchases(&ridge, 365, 3, 60, 200), 1e-3 * 3.55);
}

static void test_fit_refuses(void) {
  clv_customer c[40];
  for (int i = 0; i < 40; i++) c[i] = (clv_customer){i % 3 == 0, 5, 50, 20};
  clv_bgnbd m;
  clv_gamma_gamma g;
  CHECK_INT(clv_fit_bgnbd(c, 40, NULL, &m), CLV_ETOOFEW); /* 14 repeaters */
  CHECK_INT(clv_fit_gamma_gamma(c, 40, NULL, &g), CLV_ETOOFEW);
  CHECK_INT(clv_fit_bgnbd(c, 0, NULL, &m), CLV_ETOOFEW);
  c[3].t_x = 60; /* after T */
  CHECK_INT(clv_fit_bgnbd(c, 40, NULL, &m), CLV_EINVAL);
  c[3].t_x = 5;
  c[3].mean_value = NAN;
  CHECK_INT(clv_fit_gamma_gamma(c, 40, NULL, &g), CLV_EINVAL);
  /* An iteration cap too small to converge in. */
  static sim_customer s[500];
  static clv_customer d[500];
  const clv_bgnbd truth = {0.5, 20, 0.7, 3, 0, 0};
  rng_state = 1;
  simulate_bgnbd(&truth, s, 500);
  for (int i = 0; i < 500; i++) d[i] = s[i].c;
  clv_fit_opts o;
  clv_fit_opts_default(&o);
  o.max_iter = 10;
  CHECK_INT(clv_fit_bgnbd(d, 500, &o, &m), CLV_ENOCONV);
  CHECK(m.iters <= 10 && m.r > 0); /* the best point so far */
  CHECK_CONTAINS(clv_strerror(CLV_ETOOFEW), "too few");
  CHECK_CONTAINS(clv_strerror(12345), "unknown");
}

static void test_simple_estimator(void) {
  /* Repeat customers with gaps of 10, 20, 30, 40, 50 days; two one-timers. */
  clv_customer c[7] = {{1, 10, 100, 30}, {2, 40, 100, 30}, {1, 30, 100, 60},
                       {3, 120, 200, 60}, {2, 100, 100, 90}, {0, 0, 5, 0},
                       {0, 0, 60, 0}};
  clv_simple s;
  CHECK_INT(clv_fit_simple(c, 7, 0, &s), CLV_OK);
  CHECK_NEAR(s.gap_days, 30, 1e-12);
  /* Repeat orders: 9, worth 30 + 60 + 60 + 180 + 180. */
  CHECK_NEAR(s.order_value, 510.0 / 9, 1e-12);
  CHECK_INT(clv_fit_simple(c, 7, 45, &s), CLV_OK);
  CHECK_NEAR(s.order_value, 45, 0);
  /* Silent for one median gap: half as likely to be active. */
  CHECK_NEAR(clv_simple_p_alive(&s, 1, 70, 100), 0.5, 1e-15);
  CHECK_NEAR(clv_simple_p_alive(&s, 0, 0, 60), 0.25, 1e-15);
  CHECK_NEAR(clv_simple_p_alive(&s, 2, 100, 100), 1, 0);
  /* Without a repeat order, the shop's rate ln 2 / gap; with x of them
     over t_x days, their own rate shrunk to it: (x+1) / (t_x + gap/ln 2). */
  CHECK_NEAR(clv_simple_expected_purchases(&s, 365, 0, 0, 60),
             0.25 * 365 * log(2.0) / 30, 1e-12);
  double e = clv_simple_expected_purchases(&s, 365, 1, 70, 100);
  CHECK_NEAR(e, 0.5 * 365 * 2 / (70 + 30 / log(2.0)), 1e-12);
  CHECK_NEAR(clv_simple_predict(&s, &c[0], 365),
             clv_simple_p_alive(&s, 1, 10, 100) * 365 * 2 / (10 + 30 / log(2.0)) * 45,
             1e-12);
  /* More orders at the same recency never mean fewer expected: the rate
     once ignored them, and a one-time buyer of yesterday outranked a
     customer of ten orders ten days apart whose last was yesterday too. */
  for (uint32_t x = 1; x < 20; x++)
    CHECK(clv_simple_expected_purchases(&s, 365, x + 1, 90, 100) >
          clv_simple_expected_purchases(&s, 365, x, 90, 100));
  CHECK(clv_simple_expected_purchases(&s, 365, 9, 90, 91) >
        2 * clv_simple_expected_purchases(&s, 365, 0, 0, 1));
  /* Too few repeaters for a median; same-day reorders floor the gap. */
  CHECK_INT(clv_fit_simple(c, 4, 45, &s), CLV_OK);
  CHECK_NEAR(s.gap_days, CLV_SIMPLE_DEFAULT_GAP_DAYS, 0);
  clv_customer same[5];
  for (int i = 0; i < 5; i++) same[i] = (clv_customer){1, 0, 10, 20};
  CHECK_INT(clv_fit_simple(same, 5, 0, &s), CLV_OK);
  CHECK_NEAR(s.gap_days, CLV_SIMPLE_MIN_GAP_DAYS, 0);
  CHECK_NEAR(s.order_value, 20, 1e-12);
  same[0].t_x = 11;
  CHECK_INT(clv_fit_simple(same, 5, 0, &s), CLV_EINVAL);
}

int main(void) {
  RUN(test_bgnbd_closed_forms);
  RUN(test_bgnbd_edges);
  RUN(test_gamma_gamma_closed_forms);
  RUN(test_predict);
  RUN(test_bgnbd_recovery);
  RUN(test_gamma_gamma_recovery);
  RUN(test_bgnbd_ridge);
  RUN(test_fit_refuses);
  RUN(test_simple_estimator);
  return CHECK_DONE();
}
