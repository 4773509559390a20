/*
** check.h: the small assertion kit of tailor's C tests.  A test file defines
** `static void test_x(void)` functions and a main() that RUNs them; CHECK*
** record failures with file and line and go on, so one run shows them all.
*/
#ifndef TAILOR_CHECK_H
#define TAILOR_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_failures_;
static int check_passed_;
static int check_failed_;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,     \
              #cond);                                                      \
      check_failures_++;                                                   \
    }                                                                      \
  } while (0)

#define CHECK_INT(a, b)                                                    \
  do {                                                                     \
    long long a_ = (long long)(a), b_ = (long long)(b);                    \
    if (a_ != b_) {                                                        \
      fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n",          \
              __FILE__, __LINE__, #a, a_, #b, b_);                         \
      check_failures_++;                                                   \
    }                                                                      \
  } while (0)

#define CHECK_STR(a, b)                                                    \
  do {                                                                     \
    const char *a_ = (a), *b_ = (b);                                       \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) {                               \
      fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__,  \
              __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)");       \
      check_failures_++;                                                   \
    }                                                                      \
  } while (0)

#define CHECK_CONTAINS(hay, needle)                                        \
  do {                                                                     \
    const char *h_ = (hay), *n_ = (needle);                                \
    if (!h_ || !strstr(h_, n_)) {                                          \
      fprintf(stderr, "%s:%d: %s == \"%s\" lacks \"%s\"\n", __FILE__,      \
              __LINE__, #hay, h_ ? h_ : "(null)", n_);                     \
      check_failures_++;                                                   \
    }                                                                      \
  } while (0)

#define CHECK_NEAR(a, b, eps)                                              \
  do {                                                                     \
    double a_ = (a), b_ = (b);                                             \
    if (!(fabs(a_ - b_) <= (eps))) {                                       \
      fprintf(stderr, "%s:%d: %s == %.9g, expected %.9g (+-%g)\n",         \
              __FILE__, __LINE__, #a, a_, b_, (double)(eps));              \
      check_failures_++;                                                   \
    }                                                                      \
  } while (0)

#define RUN(test)                                                          \
  do {                                                                     \
    int before_ = check_failures_;                                         \
    test();                                                                \
    if (check_failures_ == before_) {                                      \
      check_passed_++;                                                     \
    } else {                                                               \
      check_failed_++;                                                     \
      fprintf(stderr, "FAIL %s\n", #test);                                 \
    }                                                                      \
  } while (0)

/* Print the closing line and return main's exit code. */
#define CHECK_DONE()                                                       \
  (printf("%d passed, %d failed\n", check_passed_, check_failed_),         \
   check_failed_ ? 1 : 0)

#endif /* TAILOR_CHECK_H */
