/*
** deliver.h: what delivery (engine/deliver.c) shares with its tests: the
** retry schedule.  The public side is tailor_deliver_due() and the outbox
** calls in tailor.h.
*/
#ifndef TAILOR_ENG_DELIVER_H
#define TAILOR_ENG_DELIVER_H

#include <jansson.h>
#include <stdint.h>

#include "core/defaults.h"
#include "tailor.h"

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

/*
** An outbox row (an object with the store's columns: id, key, customer,
** channel, template, vars, due, created, attempts, state) shown as it would
** go out, without sending: a row still to go is put to the strategy's
** on_due and to the send-time checks of consent and the weekly cap, as
** delivery does; then the channel's renderer (channel_render of its
** plugin) makes the parts from what its send would be handed.  A new
** object {channel, to, verdict ("send", "cancel"; null for a row already
** settled), why, vars (those it renders with: on_due's when it gave new
** ones), parts ({from, to, subject, text, html} for email; null when it
** cannot render), render_error}, or NULL with `err` for a row without a
** key, channel or template.  Never sends, never writes the store.
*/
json_t *eng_deliver_preview(tailor *t, json_t *row, tailor_error *err);

/*
** A host that is stopping (tailor serve on SIGTERM): a delivery pass under
** way finishes the send in progress and sends no further row of its
** batch; those rows are given back, due again at once, for the next start
** or another sender (else each waited out its lease, delivery.lease_ms).
** Later passes claim nothing.  A batch to a channel that times out sent
** one row after the other, each up to the channel's timeout: a stop
** waited for all of them, minutes for 50 rows.
*/
void eng_deliver_quit(tailor *t);

/* The sends a failing store did not record, forgotten (tailor_close). */
void eng_unrecorded_free(tailor *t);

#endif /* TAILOR_ENG_DELIVER_H */
