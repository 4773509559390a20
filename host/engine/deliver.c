/*
** deliver.c: the scheduler's one step, tailor_deliver_due(): claim the
** outbox rows that are due, ask the strategy that scheduled them whether
** they still apply, check consent and the weekly cap again, hand each to
** its channel (a plugin), and record the outcome: sent, tried again later
** with backoff, dead after delivery.max_attempts, or cancelled.
**
** The library starts no thread for this: a host calls tailor_deliver_due()
** when it likes (`tailor serve` does from a thread of its own, so a slow
** SMTP server never holds up a decision).  No engine lock is held while a
** channel sends; the store is touched under write_mu for a claim and for
** each outcome only.
**
** Exactly-once, as far as it goes: a claim is one transaction, so two
** senders (threads, processes or nodes) never take the same row; before
** each row of its batch a sender checks that its claim still holds the row
** and extends the lease (store_outbox_renew), so a batch that outlasts its
** lease does not go out twice; a delivery and its ledger entry are one
** transaction, so a key that reached a channel is never sent to it again,
** even after a purge.  The gaps, where a message is sent twice (at least
** once, never lost): a crash after a channel accepted a message and before
** that commit, a failed commit, or one send longer than the lease
** (delivery.lease_ms must stay above the channel's timeout).  The copy
** carries the same idempotency key (the SMTP Message-ID, the webhook's
** Idempotency-Key), for the receiver to drop.
*/
#include "engine/deliver.h"

#include <lauxlib.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/plugin.h"
#include "core/util.h"
#include "lua/ljson.h"
#include "store/outbox.h"

int64_t deliver_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms,
                           uint64_t random) {
  if (attempt < 1) attempt = 1;
  if (base_ms < 1) base_ms = 1;
  if (max_ms < base_ms) max_ms = base_ms;
  int64_t d = base_ms;
  for (int i = 1; i < attempt && d < max_ms; i++) d = d > max_ms / 2 ? max_ms : d * 2;
  int64_t half = d / 2;
  return d - half + (int64_t)(random % (uint64_t)(half + 1));
}

/* Jitter: splitmix64 over a shared counter, safe from any thread. */
static _Atomic uint64_t jitter_state;

static uint64_t jitter(void) {
  uint64_t z = atomic_fetch_add(&jitter_state, 0x9E3779B97F4A7C15ull);
  if (!z) z = util_mono_ns(); /* first use: a seed from the clock */
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* One claimed row on its way out. */
typedef struct delivery {
  json_t *row;         /* borrowed: the claim's entry */
  int64_t id;
  const char *key, *customer, *channel, *tmpl;
  int attempt;
  json_t *vars;        /* new vars from on_due (owned), or NULL */
} delivery;

/*
** Asking the strategy again: on_due(ctx, row) returns nil or true (send),
** false (cancel), or {vars = {...}} (send with these variables instead,
** e.g. today's prices).
*/
typedef struct due_run {
  tailor *t;
  delivery *d;
  int send;           /* the verdict */
  const char *file;
} due_run;

static int run_on_due(lua_State *L) {
  due_run *r = lvm_ud(L);
  r->send = 1;
  if (!lvm_push_handler(lvm_of(L), "on_due", &r->file)) return 0;
  lapi_ctx c = {"on_due", r->t->cfg.default_k, r->d->customer, NULL, NULL, NULL, NULL, NULL, NULL, 0};
  lapi_push_ctx(L, r->t, &c);
  json_t *row = json_pack("{ss ss? ss ss sO sO sO si}", "key", r->d->key, "customer",
                          r->d->customer, "channel", r->d->channel, "template", r->d->tmpl,
                          "vars", json_object_get(r->d->row, "vars"), "due",
                          json_object_get(r->d->row, "due"), "created",
                          json_object_get(r->d->row, "created"), "attempt", r->d->attempt);
  ljson_push(L, row);
  json_decref(row);
  lua_call(L, 2, 1);
  if (lua_isnil(L, -1)) return 0;
  if (lua_isboolean(L, -1)) {
    r->send = lua_toboolean(L, -1);
    return 0;
  }
  if (!lua_istable(L, -1))
    return luaL_error(L, "%s: on_due returned something other than a boolean, nil or "
                         "{vars = ...}", r->file ? r->file : "?");
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "vars"))
      return luaL_error(L, "%s: on_due returned a table with a field other than 'vars'",
                        r->file ? r->file : "?");
    lua_pop(L, 1);
  }
  lua_getfield(L, -1, "vars");
  char why[300];
  json_t *vars = ljson_to(L, -1, "on_due.vars", why, sizeof why);
  if (!vars || !json_is_object(vars)) {
    json_decref(vars);
    return luaL_error(L, "%s: on_due returned vars that are not a table of fields (%s)",
                      r->file ? r->file : "?", vars ? "not an object" : why);
  }
  r->d->vars = vars;
  return 0;
}

/* 1: send, 0: the strategy cancelled it, -1: it failed (message in err). */
static int ask_strategy(tailor *t, delivery *d, tailor_error *err) {
  if (!t->cfg.strategies || !*t->cfg.strategies) return 1;
  lvm *vm = eng_thread_vm(t, err);
  if (!vm) return -1;
  if (!lvm_has_handler(vm, "on_due")) return 1;
  due_run r = {t, d, 1, NULL};
  pthread_rwlock_rdlock(&t->lock);
  int rc = lvm_pcall(vm, run_on_due, &r, err);
  pthread_rwlock_unlock(&t->lock);
  if (rc) {
    atomic_fetch_add(&t->n_strategy_errors, 1);
    return -1;
  }
  return r.send;
}

static void keep_unsent(tailor *t, int64_t id, int attempt);

static void settle(tailor *t, delivery *d, const char *state, int64_t next_at,
                   const char *why) {
  tailor_error e = {0};
  pthread_mutex_lock(&t->write_mu);
  int rc = store_outbox_settle(t->st, d->id, d->attempt, state, next_at, why, util_now_ms(), &e);
  pthread_mutex_unlock(&t->write_mu);
  if (rc) eng_log(t, TAILOR_LOG_ERROR, "delivery: %s; the row is due again once the store "
                  "answers", e.message);
  if (rc == TAILOR_ESTORE) keep_unsent(t, d->id, d->attempt); /* not its whole lease */
}

/* A try failed for a reason that may pass: again later, or dead. */
static void try_later(tailor *t, delivery *d, const char *why) {
  char msg[600];
  if (d->attempt >= t->cfg.deliver_max_attempts) {
    snprintf(msg, sizeof msg, "gave up after %d attempts: %s", d->attempt, why);
    eng_log(t, TAILOR_LOG_WARN, "delivery: %s to %s is dead: %s", d->key, d->channel, msg);
    settle(t, d, "dead", 0, msg);
    return;
  }
  int64_t wait = deliver_backoff_ms(d->attempt, t->cfg.deliver_backoff_ms,
                                    t->cfg.deliver_backoff_max_ms, jitter());
  eng_log(t, TAILOR_LOG_INFO, "delivery: %s to %s, attempt %d failed (%s); again in %lld ms",
          d->key, d->channel, d->attempt, why, (long long)wait);
  settle(t, d, "pending", util_now_ms() + wait, why);
}

/* Names of the channels that reach an inbox, which the cap counts. */
static json_t *email_channels(tailor *t) {
  json_t *out = json_array();
  for (size_t i = 0; i < eng_channel_count(t); i++)
    if (eng_channel_at(t, i)->flags & TAILOR_CHANNEL_EMAIL)
      json_array_append_new(out, json_string(eng_channel_at(t, i)->name));
  return out;
}

/* The customer's address when they consented to email, or NULL (owned). */
static char *consented_email(tailor *t, const char *customer) {
  if (!customer) return NULL;
  json_t *profile = store_customer(eng_read_begin(t), customer);
  eng_read_end(t);
  const char *addr = json_string_value(json_object_get(profile, "email"));
  int consent = json_is_true(json_object_get(json_object_get(profile, "consent"), "email"));
  char *out = consent && addr && *addr ? strdup(addr) : NULL;
  json_decref(profile);
  return out;
}

/* Whether the customer declined marketing (a consent event with
   props.marketing false); called without the index lock. */
static int declined_marketing(tailor *t, const char *customer) {
  pthread_rwlock_rdlock(&t->lock);
  uint32_t p = idx_person_of(t->ix, customer, NULL);
  int no = p != INTERN_NONE && (t->ix->person[p].flags & IDX_NO_MARKETING);
  pthread_rwlock_unlock(&t->lock);
  return no;
}

/*
** Consent and the cap, again at send time: the customer may have
** withdrawn consent, or other emails may have gone out, since the row was
** scheduled.  Returns NULL to go on (with *email set, owned, when there is
** an address to use), or why the row is cancelled.
*/
static const char *recheck(tailor *t, delivery *d, const eng_channel *ch, char **email,
                           char *buf, size_t buflen) {
  *email = NULL;
  if (!d->customer) return ch->flags & TAILOR_CHANNEL_EMAIL ? "no customer to email" : NULL;
  *email = consented_email(t, d->customer);
  if (!(ch->flags & TAILOR_CHANNEL_EMAIL)) return NULL;
  if (!*email) return "no email consent or address at send time";
  if (declined_marketing(t, d->customer)) /* from the moment it is stored */
    return "marketing declined since it was scheduled";
  if (t->cfg.email_cap_per_week <= 0) return NULL;
  int64_t recent = 0;
  json_t *names = email_channels(t);
  store *st = eng_read_begin(t);
  for (size_t i = 0; i < json_array_size(names); i++)
    recent += store_outbox_sent_since(st, d->customer,
                                      json_string_value(json_array_get(names, i)),
                                      util_now_ms() - DELIVER_CAP_WINDOW_MS);
  eng_read_end(t);
  json_decref(names);
  if (recent >= t->cfg.email_cap_per_week) {
    snprintf(buf, buflen, "weekly email cap (%ld) reached at send time",
             t->cfg.email_cap_per_week);
    return buf;
  }
  return NULL;
}

/* After an email went out: an email_sent event, so strategies see
   ctx.customer.emails_sent and last_email. */
static void record_email(tailor *t, delivery *d) {
  json_t *doc = json_pack("{ss ss ss s{ss ss}}", "type", "email_sent", "customer",
                         d->customer, "name", d->tmpl, "props", "key", d->key, "channel",
                         d->channel);
  char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  tailor_error e = {0};
  if (text && tailor_ingest(t, text, strlen(text), &e))
    eng_log(t, TAILOR_LOG_WARN, "delivery: email_sent event for %s not recorded: %s",
            d->key, e.message);
  free(text);
  json_decref(doc);
}

/*
** What a channel is handed for row `d` (to send, or to render for a
** preview): the struct, and the two JSON texts it points to, which the
** caller frees.  0, or -1 when out of memory.
*/
static int handed(const delivery *d, const char *email, tailor_delivery *td,
                  char **vars_text, char **json_text) {
  json_t *vars = d->vars ? d->vars : json_object_get(d->row, "vars");
  json_t *whole = json_pack("{sO sO ss ss? ss? ss sO sO sO si}", "id",
                            json_object_get(d->row, "id"), "key",
                            json_object_get(d->row, "key"), "channel", d->channel,
                            "customer", d->customer, "email", email, "template", d->tmpl,
                            "vars", vars, "due", json_object_get(d->row, "due"), "created",
                            json_object_get(d->row, "created"), "attempt", d->attempt);
  if (whole && !email) json_object_del(whole, "email"); /* only with consent */
  *vars_text = json_dumps(vars, JSON_COMPACT);
  *json_text = whole ? json_dumps(whole, JSON_COMPACT) : NULL;
  json_decref(whole);
  if (!*vars_text || !*json_text) {
    free(*vars_text);
    free(*json_text);
    *vars_text = *json_text = NULL;
    return -1;
  }
  *td = (tailor_delivery){
      sizeof *td, d->id, d->key, d->channel, d->customer, email, d->tmpl, *vars_text,
      *json_text, d->attempt,
      (int64_t)json_integer_value(json_object_get(d->row, "due")),
      (int64_t)json_integer_value(json_object_get(d->row, "created"))};
  return 0;
}

/* The row's vars with its customer's unsubscribe link (optin.
   unsubscribe_url), as `unsubscribe_url`: every email but a double opt-in
   confirmation, whose recipient is not a customer yet. */
static void with_unsubscribe(tailor *t, delivery *d) {
  if (!d->customer || !strncmp(d->key, ENG_OPTIN_KEY, sizeof ENG_OPTIN_KEY - 1)) return;
  char *url = eng_unsubscribe_link(t, d->customer);
  if (!url) return;
  json_t *v = json_deep_copy(d->vars ? d->vars : json_object_get(d->row, "vars"));
  if (!json_is_object(v)) {
    json_decref(v);
    v = json_object();
  }
  json_object_set_new(v, "unsubscribe_url", json_string(url));
  free(url);
  json_decref(d->vars);
  d->vars = v;
}

/* Whether this claim still holds the row (its lease extended): 1, 0, or
   -1 when the store failed (e filled). */
static int still_held(tailor *t, delivery *d, tailor_error *e) {
  int64_t now = util_now_ms();
  pthread_mutex_lock(&t->write_mu);
  int held = store_outbox_renew(t->st, d->id, d->attempt, now, now + t->cfg.deliver_lease_ms, e);
  pthread_mutex_unlock(&t->write_mu);
  if (!held)
    eng_log(t, TAILOR_LOG_INFO, "delivery: %s: the lease ran out and the row was claimed again "
            "or settled meanwhile; left to its new holder", d->key);
  return held < 0 ? -1 : held;
}

/*
** A batch's rows after a store failure are not sent (the store cannot
** record them), and each would wait out its lease (delivery.lease_ms,
** minutes) though the store may be back in a second.  They are kept here
** and given back, their leases ended (the renewal of the claim's own
** attempt, to now), by the first pass that finds the store answering.
*/
static void keep_unsent(tailor *t, int64_t id, int attempt) {
  pthread_mutex_lock(&t->write_mu);
  struct eng_unsent *more = realloc(t->unsent, (t->n_unsent + 1) * sizeof *more);
  if (more) {
    t->unsent = more;
    t->unsent[t->n_unsent++] = (struct eng_unsent){id, attempt};
  }
  pthread_mutex_unlock(&t->write_mu);
}

/* A row that went out while the store failed to record it. */
struct eng_unrecorded {
  struct eng_unrecorded *next;
  int64_t id, at;
  char *key, *channel, *customer, *vars;
};

static void unrecorded_free(struct eng_unrecorded *u) {
  free(u->key);
  free(u->channel);
  free(u->customer);
  free(u->vars);
  free(u);
}

void eng_unrecorded_free(tailor *t) {
  while (t->unrecorded) {
    struct eng_unrecorded *u = t->unrecorded;
    t->unrecorded = u->next;
    unrecorded_free(u);
  }
}

/* Kept to record later (caller holds write_mu); out of memory, the row
   goes again when its lease ends, as a send in flight at a crash does. */
static void keep_unrecorded(tailor *t, const delivery *d, const char *vars, int64_t at) {
  struct eng_unrecorded *u = calloc(1, sizeof *u);
  if (!u) return;
  *u = (struct eng_unrecorded){t->unrecorded, d->id, at, strdup(d->key), strdup(d->channel),
                               d->customer ? strdup(d->customer) : NULL,
                               vars ? strdup(vars) : NULL};
  if (!u->key || !u->channel || (d->customer && !u->customer) || (vars && !u->vars)) {
    unrecorded_free(u);
    return;
  }
  t->unrecorded = u;
}

/* Give the kept rows back, and record the sends the store did not take;
   0, or a store error (the rest kept for the next pass). */
static int give_back_unsent(tailor *t, tailor_error *err) {
  int rc = TAILOR_OK;
  pthread_mutex_lock(&t->write_mu);
  while (t->unrecorded) {
    struct eng_unrecorded *u = t->unrecorded;
    rc = store_outbox_mark_sent(t->st, u->id, u->key, u->channel, u->customer, u->vars, u->at,
                                err);
    if (rc && rc != TAILOR_ENOTFOUND) break;
    eng_log(t, TAILOR_LOG_INFO, "delivery: %s, sent while the store failed, is recorded sent",
            u->key);
    t->unrecorded = u->next;
    unrecorded_free(u);
    rc = TAILOR_OK;
  }
  if (rc) {
    pthread_mutex_unlock(&t->write_mu);
    return rc;
  }
  int64_t now = util_now_ms();
  size_t given = 0;
  while (given < t->n_unsent &&
         (rc = store_outbox_renew(t->st, t->unsent[given].id, t->unsent[given].attempt, now, now,
                                  err)) >= 0)
    given++;
  if (given) {
    memmove(t->unsent, t->unsent + given, (t->n_unsent - given) * sizeof *t->unsent);
    t->n_unsent -= given;
  }
  pthread_mutex_unlock(&t->write_mu);
  if (given)
    eng_log(t, TAILOR_LOG_INFO, "delivery: the store answers again: %zu rows a failure left "
            "unsent are due again", given);
  return rc < 0 ? rc : TAILOR_OK;
}

/* Deliver one claimed row; returns 1 when it went out, -1 when the store
   failed before it was sent (e filled). */
static int deliver_one(tailor *t, delivery *d, tailor_error *held_err) {
  const eng_channel *ch = eng_channel_find(t, d->channel);
  tailor_error e = {0};
  char why[512] = "";
  int held = still_held(t, d, held_err);
  if (held <= 0) return held;
  if (!ch) { /* cannot happen: rows are claimed by channel */
    settle(t, d, "pending", 0, "no plugin provides this channel");
    return 0;
  }
  if (json_is_true(json_object_get(d->row, "already_sent"))) {
    pthread_mutex_lock(&t->write_mu);
    int rc = store_outbox_mark_sent(t->st, d->id, d->key, d->channel, d->customer, NULL,
                                    util_now_ms(), &e);
    pthread_mutex_unlock(&t->write_mu);
    if (rc && rc != TAILOR_ENOTFOUND) eng_log(t, TAILOR_LOG_ERROR, "delivery: %s", e.message);
    eng_log(t, TAILOR_LOG_INFO, "delivery: %s already went to %s once; not sent again",
            d->key, d->channel);
    return 0;
  }
  /* A double opt-in confirmation is the host's own row (engine/optin.c):
     no strategy is asked, and it goes to the address of the pending
     request, which has no consent to check yet and counts against no cap. */
  int optin = !strncmp(d->key, ENG_OPTIN_KEY, sizeof ENG_OPTIN_KEY - 1);
  int verdict = optin ? 1 : ask_strategy(t, d, &e);
  if (verdict < 0) {
    /* Not sent unasked: a strategy that cannot answer now may after a fix
       (strategies reload by themselves). */
    snprintf(why, sizeof why, "on_due failed: %s", e.message);
    eng_log(t, TAILOR_LOG_ERROR, "delivery: %s: %s", d->key, why);
    try_later(t, d, why);
    return 0;
  }
  if (!verdict) {
    settle(t, d, "cancelled", 0, "on_due: the strategy says it no longer applies");
    return 0;
  }
  char *email = NULL;
  const char *stop = NULL;
  if (!optin)
    stop = recheck(t, d, ch, &email, why, sizeof why);
  else if (!(email = eng_optin_recipient(t, json_object_get(d->row, "vars"), why, sizeof why)))
    stop = why;
  if (stop) {
    settle(t, d, "cancelled", 0, stop);
    free(email);
    return 0;
  }
  tailor_delivery td;
  char *vars_text = NULL, *json_text = NULL;
  int sent = 0;
  if (!optin) with_unsubscribe(t, d);
  if (handed(d, email, &td, &vars_text, &json_text)) {
    try_later(t, d, "out of memory");
  } else {
    int rc = ch->send(ch->ud, &td, why, sizeof why);
    if (!*why) snprintf(why, sizeof why, "the channel gave no reason");
    if (rc == TAILOR_SEND_OK) {
      int64_t at = util_now_ms();
      pthread_mutex_lock(&t->write_mu);
      int src = store_outbox_mark_sent(t->st, d->id, d->key, d->channel, d->customer,
                                       d->vars ? vars_text : NULL, at, &e);
      if (src && src != TAILOR_ENOTFOUND) keep_unrecorded(t, d, d->vars ? vars_text : NULL, at);
      pthread_mutex_unlock(&t->write_mu);
      if (src == TAILOR_ENOTFOUND) /* erased meanwhile: nothing of them comes back */
        eng_log(t, TAILOR_LOG_INFO, "delivery: sent %s, whose customer was erased meanwhile",
                d->key);
      else if (src)
        eng_log(t, TAILOR_LOG_ERROR, "delivery: sent %s but %s; recorded once the store "
                "answers", d->key, e.message);
      sent = 1;
      if ((ch->flags & TAILOR_CHANNEL_EMAIL) && d->customer && !optin && src != TAILOR_ENOTFOUND)
        record_email(t, d);
    } else if (rc == TAILOR_SEND_FAIL) {
      eng_log(t, TAILOR_LOG_WARN, "delivery: %s to %s is dead: %s", d->key, d->channel, why);
      settle(t, d, "dead", 0, why);
    } else {
      try_later(t, d, why);
    }
  }
  free(vars_text);
  free(json_text);
  free(email);
  return sent;
}

void eng_deliver_quit(tailor *t) { atomic_store(&t->deliver_quit, 1); }

/* A number of a claimed row (its id, its attempts). */
static int64_t row_num(const json_t *row, const char *key) {
  return (int64_t)json_integer_value(json_object_get(row, key));
}

/* The rows of a batch from `from` on, not sent since the host is
   stopping: pending again and due at once, their claim not counted as a
   try (store_outbox_release), since no channel saw them. */
static void give_back_rest(tailor *t, json_t *rows, size_t from) {
  int64_t now = util_now_ms();
  size_t given = 0, n = json_array_size(rows) - from;
  tailor_error e = {0};
  pthread_mutex_lock(&t->write_mu);
  for (size_t k = from; k < json_array_size(rows); k++) {
    json_t *row = json_array_get(rows, k);
    int64_t id = row_num(row, "id");
    if (store_outbox_release(t->st, id, (int)row_num(row, "attempts"), now, &e) > 0) given++;
  }
  pthread_mutex_unlock(&t->write_mu);
  eng_log(t, TAILOR_LOG_INFO, "delivery: stopping: %zu claimed rows not sent, due again at "
          "the next start%s", n, given < n ? " (some once their leases end)" : "");
}

int tailor_deliver_due(tailor *t, int max, int *sent, tailor_error *err) {
  if (sent) *sent = 0;
  if (!t || max < 1 || max > DELIVER_MAX_BATCH)
    return util_fail(err, TAILOR_EINVAL, "max", "deliver: max must be 1 to %d",
                     DELIVER_MAX_BATCH);
  size_t nch = eng_channel_count(t);
  if (!nch) return TAILOR_OK; /* rows wait for a plugin that delivers them */
  if (atomic_load(&t->deliver_quit)) return TAILOR_OK;
  json_t *names = json_array();
  for (size_t i = 0; i < nch; i++)
    json_array_append_new(names, json_string(eng_channel_at(t, i)->name));
  if (give_back_unsent(t, err)) {
    json_decref(names);
    return TAILOR_ESTORE;
  }
  /* Under a weekly cap a customer's emails go one at a time, whichever
     sender (thread, process, node) holds them: the cap is counted at send
     time from the sends recorded, and two emails in flight at once would
     each count without the other. */
  json_t *serial = t->cfg.email_cap_per_week > 0 ? email_channels(t) : NULL;
  int64_t now = util_now_ms();
  pthread_mutex_lock(&t->write_mu);
  json_t *rows = store_outbox_claim(t->st, names, serial, now, max,
                                    now + t->cfg.deliver_lease_ms, err);
  pthread_mutex_unlock(&t->write_mu);
  json_decref(serial);
  json_decref(names);
  if (!rows) return TAILOR_ESTORE;
  size_t i;
  json_t *row;
  int n = 0;
  json_array_foreach(rows, i, row) {
    if (atomic_load(&t->deliver_quit)) {
      give_back_rest(t, rows, i);
      break;
    }
    delivery d = {row,
                  row_num(row, "id"),
                  json_string_value(json_object_get(row, "key")),
                  json_string_value(json_object_get(row, "customer")),
                  json_string_value(json_object_get(row, "channel")),
                  json_string_value(json_object_get(row, "template")),
                  (int)row_num(row, "attempts"),
                  NULL};
    tailor_error held_err = {0};
    int r = deliver_one(t, &d, &held_err);
    json_decref(d.vars);
    if (r < 0) {
      for (size_t k = i; k < json_array_size(rows); k++) {
        json_t *kept = json_array_get(rows, k);
        keep_unsent(t, row_num(kept, "id"), (int)row_num(kept, "attempts"));
      }
      eng_log(t, TAILOR_LOG_ERROR, "delivery: %s: %zu claimed rows not sent; due again once "
              "the store answers", held_err.message, json_array_size(rows) - i);
      break;
    }
    n += r;
  }
  json_decref(rows);
  if (sent) *sent = n;
  return TAILOR_OK;
}

/*
** The preview: a row as delivery would hand it to its channel now, given
** to the channel's renderer instead of its send.
*/
static void add_part(void *ctx, const char *part, const char *text, size_t len) {
  json_t *v = text ? json_stringn(text, len) : NULL;
  if (part && *part) json_object_set_new(ctx, part, v ? v : json_string("(not UTF-8)"));
  else json_decref(v);
}

json_t *eng_deliver_preview(tailor *t, json_t *row, tailor_error *err) {
  const char *state = json_string_value(json_object_get(row, "state"));
  int pending = state && (!strcmp(state, "pending") || !strcmp(state, "scheduled") ||
                          !strcmp(state, "failed"));
  int attempts = (int)json_integer_value(json_object_get(row, "attempts"));
  delivery d = {row,
                (int64_t)json_integer_value(json_object_get(row, "id")),
                json_string_value(json_object_get(row, "key")),
                json_string_value(json_object_get(row, "customer")),
                json_string_value(json_object_get(row, "channel")),
                json_string_value(json_object_get(row, "template")),
                pending ? attempts + 1 : attempts > 0 ? attempts : 1,
                NULL};
  if (!d.key || !d.channel || !d.tmpl)
    return util_fail(err, TAILOR_EINVAL, "key", "preview: not an outbox row"), NULL;
  json_t *o = json_pack("{ss sn sn sn sn sn}", "channel", d.channel, "to", "verdict", "why",
                        "parts", "render_error");
  const eng_channel *ch = eng_channel_find(t, d.channel);
  char why[512] = "", *email = NULL;
  if (!ch) {
    json_object_set_new(o, "why", json_sprintf("no plugin provides channel '%s' on this "
                                               "server: nothing would send it", d.channel));
    json_object_set(o, "vars", json_object_get(row, "vars"));
    return o;
  }
  /* A row still to go: the strategy and the send-time checks, as
     delivery asks them (engine/deliver.c, deliver_one). */
  const char *stop = NULL;
  if (pending) {
    tailor_error e = {0};
    int verdict = ask_strategy(t, &d, &e);
    if (verdict < 0) snprintf(why, sizeof why, "on_due failed: %s", e.message), stop = why;
    else if (!verdict) stop = "on_due: the strategy says it no longer applies";
    else stop = recheck(t, &d, ch, &email, why, sizeof why);
    json_object_set_new(o, "verdict", json_string(stop ? "cancel" : "send"));
    if (stop) json_object_set_new(o, "why", json_string(stop));
    else with_unsubscribe(t, &d);
  }
  if (!email) email = consented_email(t, d.customer);
  if (email) json_object_set_new(o, "to", json_string(email));
  json_object_set(o, "vars", d.vars ? d.vars : json_object_get(row, "vars"));
  tailor_delivery td;
  char *vars_text = NULL, *json_text = NULL;
  if (!ch->render) {
    json_object_set_new(o, "render_error",
                        json_sprintf("channel '%s' cannot show a row (its plugin has no "
                                     "channel_render, plugin API 2)", d.channel));
  } else if (handed(&d, email, &td, &vars_text, &json_text)) {
    json_object_set_new(o, "render_error", json_string("out of memory"));
  } else {
    json_t *parts = json_object();
    char rerr[512] = "";
    if (ch->render(ch->render_ud, &td, add_part, parts, rerr, sizeof rerr)) {
      json_object_set_new(o, "render_error",
                          json_string(rerr[0] ? rerr : "the channel gave no reason"));
      json_decref(parts);
    } else {
      json_object_set_new(o, "parts", parts);
    }
  }
  free(vars_text);
  free(json_text);
  free(email);
  json_decref(d.vars);
  return o;
}

int tailor_outbox_retry(tailor *t, const char *key, int *changed, tailor_error *err) {
  int n = 0;
  if (changed) *changed = 0;
  if (!t) return util_fail(err, TAILOR_EINVAL, NULL, "outbox retry: no engine");
  pthread_mutex_lock(&t->write_mu);
  int rc = store_outbox_retry(t->st, key, util_now_ms(), &n, err);
  const char *state = !rc && key && !n ? store_outbox_state(t->st, key) : NULL;
  pthread_mutex_unlock(&t->write_mu);
  if (rc) return rc;
  if (key && !n) {
    if (!state)
      return util_fail(err, TAILOR_ENOTFOUND, "key", "outbox retry: no row with key '%s'",
                       key);
    return util_fail(err, TAILOR_EDENIED, "key", "outbox retry: '%s' is %s%s", key,
                     !strcmp(state, "pending") ? "scheduled" : state,
                     !strcmp(state, "sent")      ? ": a key is never sent twice"
                     : !strcmp(state, "pending") ? ": it has not been tried yet and goes at "
                                                   "its due time (a retry is for a failed, "
                                                   "dead or cancelled row)"
                                                 : ": it is being sent right now");
  }
  if (changed) *changed = n;
  return TAILOR_OK;
}

int tailor_outbox_purge(tailor *t, const char *state, int64_t older_than_ms,
                        int64_t *purged, tailor_error *err) {
  if (purged) *purged = 0;
  if (!t || older_than_ms < 0 ||
      (state && strcmp(state, "sent") && strcmp(state, "cancelled") && strcmp(state, "dead")))
    return util_fail(err, TAILOR_EINVAL, "state",
                     "outbox purge: state must be sent, cancelled or dead (or none for "
                     "all three), and the age not negative");
  pthread_mutex_lock(&t->write_mu);
  int rc = store_outbox_purge(t->st, state, util_now_ms() - older_than_ms, purged, err);
  pthread_mutex_unlock(&t->write_mu);
  return rc;
}

int tailor_delivery_channels(tailor *t) { return t ? (int)eng_channel_count(t) : 0; }
