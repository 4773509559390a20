/*
** outbox.h: the outbox as delivery sees it.  store.h adds, cancels and
** lists rows; these functions move them through their states:
**
**   pending --claim--> sending --sent--> sent
**      ^                  |  \--retry--> pending (next_at = now + backoff)
**      |                  |   \--give up--> dead (last_error)
**      +---- retry -------+    \--cancel (on_due, consent, cap)--> cancelled
**   (an operator: dead/cancelled -> pending)
**
** A claim is a lease: a row stays `sending` until `next_at`; a sender that
** died mid-send leaves it to be claimed again once the lease is over.
** outbox_sent is the ledger of what reached a channel: one row per key and
** channel, written in the same transaction as the row's `sent` state, and
** kept when rows are purged, so a key is never sent twice to a channel that
** took it.  Same threading rule as store.h: one thread at a time per handle.
*/
#ifndef TAILOR_STORE_OUTBOX_H
#define TAILOR_STORE_OUTBOX_H

#include <jansson.h>
#include <stdint.h>

#include "store/store.h"

/*
** Claim up to `max` rows due at `now` (pending with due and next_at
** passed, or sending with an expired lease) whose channel is in
** `channels` (a JSON array of names), oldest due first: each becomes
** `sending` until `lease_until`, its attempts counted up.  One
** transaction, so two senders never claim the same row.  Returns a new
** JSON array of {id, key, customer, channel, template, vars (object), due,
** created, attempts, already_sent (the ledger has the key for the
** channel)}, or NULL with `err` filled.
**
** `serial` (a JSON array of channel names, or NULL for none): a
** customer's rows on these channels go out one at a time across senders.
** Such a row is not claimed while another of the customer's rows on them
** is `sending` under a lease that has not run out, and claims that pass
** `serial` are serialized (one after the other, across processes and
** nodes), so of two claims at once the second sees the first's rows.
** Why: the weekly email cap is counted at send time from the ledger; two
** senders each holding one of a customer's emails would both count the
** ledger before either email was recorded, and both send.
*/
json_t *store_outbox_claim(store *s, json_t *channels, json_t *serial, int64_t now, int max,
                           int64_t lease_until, tailor_error *err);

/*
** Hold on to a claimed row before acting on it: if this claim still has it
** (`sending`, its attempts still `attempt`: nobody claimed it again after
** its lease ran out), the lease is extended to `lease_until`.  Returns 1
** when held, 0 when the row is no longer this claim's (the sender leaves
** it alone: another one has it, or it was cancelled or settled
** meanwhile), or a negative code with `err` filled.
**
** Why: a claim leases a batch at once, and a batch sent one row after the
** other to a slow channel can outlast the lease; without this check the
** batch's last rows would go out from two senders.
*/
int store_outbox_renew(store *s, int64_t id, int attempt, int64_t now, int64_t lease_until,
                       tailor_error *err);

/*
** Give back a claimed row that was not tried (its sender is stopping): if
** this claim still has it (as store_outbox_renew), it is `pending` again,
** due at once, with the attempts it had before the claim.  Returns 1 when
** given back, 0 when the row is no longer this claim's, or a negative
** code with `err` filled.
**
** Why: a claim counts an attempt, as a lease that runs out may be a send
** that happened; a row the channel never saw was counted once for every
** stop that gave it back, told the channel and on_due a later attempt
** than its first, and went dead that many real failures early
** (delivery.max_attempts).
*/
int store_outbox_release(store *s, int64_t id, int attempt, int64_t now, tailor_error *err);

/*
** Record a delivery: the row becomes `sent` (whatever it was meanwhile:
** it did go out) with `vars` (NULL: unchanged) and the ledger gets
** (key, channel, customer, now); one transaction.  A row that is gone (its
** customer was erased while the send was in flight) leaves no trace:
** TAILOR_ENOTFOUND, nothing written.
*/
int store_outbox_mark_sent(store *s, int64_t id, const char *key,
                           const char *channel, const char *customer,
                           const char *vars, int64_t now, tailor_error *err);

/*
** Settle a row this sender claimed (as try `attempt`) and did not deliver:
** `state` "pending" (tried again from `next_at`), "dead" or "cancelled",
** with `error` as its last_error.  A row cancelled meanwhile stays
** cancelled, and one claimed again since (its lease ran out: another try
** holds it) is its new holder's to settle.
*/
int store_outbox_settle(store *s, int64_t id, int attempt, const char *state, int64_t next_at,
                        const char *error, int64_t now, tailor_error *err);

/* Deliveries to a customer's channel since `since` (ms), from the ledger:
   what the weekly cap counts at send time. */
int64_t store_outbox_sent_since(store *s, const char *customer, const char *channel,
                                int64_t since);

/*
** An operator's retry: the row with `key` (NULL: every dead row), if dead,
** cancelled or failed (pending after a failed try), becomes pending and
** due now with its attempts reset.  A sent or sending row is left alone,
** and so is one still scheduled (pending, never tried): a retry made the
** abandoned-cart email due at once instead of after its delay.  *changed (may be NULL)
** receives the number of rows changed.
*/
int store_outbox_retry(store *s, const char *key, int64_t now, int *changed,
                       tailor_error *err);

/* The state of the row with `key` ("sent", ...), a static string, or NULL
   when there is none. */
const char *store_outbox_state(store *s, const char *key);

/* The outbox's own name of a row state ("pending", "sending", "sent",
   "cancelled", "dead": a static string), or NULL for any other text. */
const char *store_outbox_state_name(const char *text);

/*
** Delete rows in a final state (`state` "sent", "cancelled" or "dead";
** NULL: all three) last changed before `before` (ms).  Pending and sending
** rows are never purged; the ledger stays.  *purged (may be NULL) receives
** the count.
*/
int store_outbox_purge(store *s, const char *state, int64_t before, int64_t *purged,
                       tailor_error *err);

/*
** The operator's view (the merchant console, engine/console.c): rows in the
** states an operator reads, "scheduled" (pending, not tried yet), "failed"
** (pending after a failed try), "sending", "sent", "cancelled", "dead".
** A row is a JSON object {id, key, customer, channel, template, vars (the
** object; its text when it does not parse), due, state (as above),
** attempts, last_error, created, next_at, updated}.
*/
/* Rows counted by template, channel and state: a new JSON array of
   {template, channel, state, n} sorted by the three (bytewise), or NULL
   with `err` filled. */
json_t *store_outbox_tally(store *s, tailor_error *err);

/* The newest `limit` rows, only those in `state` when not NULL: a new JSON
   array, newest first, or NULL with `err` filled. */
json_t *store_outbox_view(store *s, const char *state, int limit, tailor_error *err);

/* The row with `key` as a new object, or NULL with `err` filled:
   TAILOR_ENOTFOUND (field "key") when there is none. */
json_t *store_outbox_get(store *s, const char *key, tailor_error *err);

#endif /* TAILOR_STORE_OUTBOX_H */
