/*
** decay.h: exponential time decay without touching stored counters.
**
** "Forward decay": an event at time t adds 2^((t - t0) / half_life) instead
** of 1, so a counter never needs to be decayed as time passes; reading it at
** time `now` divides by 2^((now - t0) / half_life).  Ratios of counters
** (cosine, conditional probabilities, rankings) do not even need that
** division.  When the exponent grows large the owner rescales every counter
** once and moves t0 forward (decay_should_rebase), which happens once per
** DECAY_REBASE_HALF_LIVES half-lives: years, for the usual settings.
*/
#ifndef TAILOR_DECAY_H
#define TAILOR_DECAY_H

#include <math.h>
#include <stdint.h>

#define DECAY_REBASE_HALF_LIVES 40.0 /* float counters stay far from overflow */

typedef struct decay {
  double half_life_ms; /* <= 0: no decay, every event weighs 1 */
  int64_t t0;          /* origin of the exponent; set by the first event */
} decay;

/* The weight of an event at `ts`. */
static inline double decay_weight(decay *d, int64_t ts) {
  if (d->half_life_ms <= 0) return 1.0;
  if (d->t0 == 0) d->t0 = ts;
  return exp2((double)(ts - d->t0) / d->half_life_ms);
}

/* What a counter read at `now` must be multiplied by to be in units of
   "events now" (an event at `now` counts 1). */
static inline double decay_scale(const decay *d, int64_t now) {
  if (d->half_life_ms <= 0 || d->t0 == 0) return 1.0;
  return exp2(-(double)(now - d->t0) / d->half_life_ms);
}

/* Whether counters should be rescaled before adding an event at `ts`; if so
   the owner multiplies every counter by decay_scale(d, ts) and sets t0. */
static inline int decay_should_rebase(const decay *d, int64_t ts) {
  return d->half_life_ms > 0 && d->t0 != 0 &&
         (double)(ts - d->t0) / d->half_life_ms > DECAY_REBASE_HALF_LIVES;
}

#endif /* TAILOR_DECAY_H */
