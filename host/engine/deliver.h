/*
** deliver.h: what delivery (engine/deliver.c) shares with its tests: the
** retry schedule.  The public side is tailor_deliver_due() and the outbox
** calls in tailor.h.
*/
#ifndef TAILOR_ENG_DELIVER_H
#define TAILOR_ENG_DELIVER_H

#include <stdint.h>

#include "core/defaults.h"

/* The window of the weekly email cap, at scheduling and at sending. */
#define DELIVER_CAP_WINDOW_MS (DEF_EMAIL_CAP_WINDOW_DAYS * 86400000LL)

/* Most rows one tailor_deliver_due() call may take. */
#define DELIVER_MAX_BATCH DEF_DELIVER_MAX_BATCH

/*
** How long to wait before trying a row again after its `attempt`-th try
** (1-based) failed: base_ms * 2^(attempt-1), at most max_ms, with "equal
** jitter": the upper half of that wait is drawn from `random`, so rows
** that failed together (an SMTP server down) spread out instead of
** returning all at once, and none comes back sooner than half its
** schedule.  The result is in [ceil(d/2), d] for the capped wait d.
*/
int64_t deliver_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms,
                           uint64_t random);

#endif /* TAILOR_ENG_DELIVER_H */
