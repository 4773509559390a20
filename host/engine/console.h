/*
** console.h: what the merchant console shows that the engine computes
** (engine/console.c), as JSON objects for the server's admin API
** (docs/server.md, "The console's API").  Each returns a new reference, or
** NULL with `err` filled.  They read the store through eng_read_begin()
** and the index under its read lock; none writes.
*/
#ifndef TAILOR_ENG_CONSOLE_H
#define TAILOR_ENG_CONSOLE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tailor.h"

/*
** Revenue attribution: each order (purchase event at or after `since_ms`,
** rounded down to the start of its UTC day) goes to the last click on a
** recommendation (rec_clicked), a popup (popup_clicked) or an email
** (email_clicked) by the same person (the customer, with the anonymous
** ids merged into it on login, or the anonymous id, or the session of an
** event that names nothing else) within `window_ms` before it, by source,
** strategy (the event's props.strategy) and widget (its name); the others
** are the rest.  With the impressions (rec_shown, popup_shown) and clicks
** of each from that day on, and the share of sessions active since then
** that saw personalization (a rec_shown, popup_shown or click in them).
** Kept by the index as events are applied (index.h, "Revenue
** attribution"): no read of the event log.
*/
json_t *eng_console_revenue(tailor *t, int64_t window_ms, int64_t since_ms,
                            tailor_error *err);

/* The outbox by trigger (template) and state (scheduled: pending not yet
   tried; failed: pending after a failed try; sending, sent, cancelled,
   dead), with the newest rows (of `state` when not NULL; without their
   variables unless `pii`). */
json_t *eng_console_outbox(tailor *t, const char *state, int pii, tailor_error *err);

/* One outbox row by key, with the catalog entries of the items its
   variables name and, as `rendered`, the message as its channel would
   send it now (eng_deliver_preview: subject, text and HTML of an email),
   for a preview. */
json_t *eng_console_message(tailor *t, const char *key, tailor_error *err);

/*
** What tailor would decide for a visitor (a customer or anonymous id, or
** nobody: a new visitor) on each page type and for each other handler,
** with the explanations: the decisions as `decide` answers them, made
** with context.source = `source` and context.segment = `segment` when
** given, and the cart page for `cart` (comma-separated ids) when given.
*/
json_t *eng_console_preview(tailor *t, const char *customer, const char *anon,
                            const char *cart, const char *source, const char *segment,
                            tailor_error *err);

/*
** Audiences and segments: every recency audience (buyers, cart abandoners,
** the visitor bands of index.audience_days) with its size now, the
** automatic segments with their names and sizes at the last fit, and
** `history`: the snapshots eng_console_snapshot kept, then the sizes now
** ({at, sizes: {"buyers/14": n, "segment/1": n, ...}, live: true}).
*/
json_t *eng_console_audiences(tailor *t, tailor_error *err);

/*
** Keep a snapshot of the sizes at `now` in the store (meta), unless the
** newest kept one is less than `min_gap_ms` old; every snapshot of the
** last DEF_CONSOLE_SIZES_FINE_DAYS days is kept, the first of each day
** before that, none past DEF_CONSOLE_SIZES_KEEP_DAYS.  *taken (may be NULL)
** says whether one was written.
*/
int eng_console_snapshot(tailor *t, int64_t now, int64_t min_gap_ms, int *taken,
                         tailor_error *err);

/*
** A sample of an audience (`audience` and `days`, as
** tailor_audience_members takes them) or of segment `segment` (> 0: its
** id; then `audience` is ignored): {size, members: the `limit` (at most
** DEF_CONSOLE_MEMBERS_MAX) last seen, each {customer or anon, last_seen,
** orders, revenue} and with `pii` the customer's email and whether they
** consented to email}.  NULL with `err` (TAILOR_EINVAL) for an unknown one.
*/
json_t *eng_console_members(tailor *t, const char *audience, int days, int segment,
                            size_t limit, int pii, tailor_error *err);

/*
** The strategies: the folder (and its base), each file with its size,
** time and a version (a hash of its text), the handlers and the files that
** define them, the reload generation, compile errors with file:line; with
** `sample` > 0, also the dry run of `tailor check --sample` over that many
** visitors.
*/
json_t *eng_console_strategies(tailor *t, size_t sample, tailor_error *err);

#endif /* TAILOR_ENG_CONSOLE_H */
