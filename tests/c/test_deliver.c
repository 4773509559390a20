/*
** test_deliver.c: the outbox's delivery through tailor_deliver_due() with
** an in-process channel: sending, the retry schedule (backoff with jitter),
** dead rows and operator retries, on_due cancelling or refreshing a row,
** consent and the weekly cap checked again at send time, rows of unknown
** channels left alone, never twice for a key (also after a purge), a
** sender's lease running out after a crash, erasure, the shipped
** triggers.lua answering on_due, and the preview (eng_deliver_preview):
** the channel renders what its send would be handed, nothing is sent.
*/
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "engine/console.h"
#include "engine/deliver.h"
#include "engine/plugin.h"
#include "store/outbox.h"
#include "store/store.h"
#include "tailor.h"

static char tmp[512];

/* Triggers of the test's own: a cart schedules an email due now; on_due
   cancels rows whose vars say so and refreshes others. */
static const char TRIGGERS[] =
    "local function on_event(ctx, ev)\n"
    "  if ev.type == 'add_to_cart' then\n"
    "    return { schedule = { { key = 'cart:' .. ev.customer .. ':' .. ev.item,\n"
    "      template = 'abandoned_cart', delay = ev.item == 'later' and 3600 or 0,\n"
    "      vars = { item = ev.item, cancel = ev.item == 'nope' } } } }\n"
    "  elseif ev.type == 'view' then\n"
    "    return { schedule = { { key = 'sms:' .. ev.customer, template = 'hello',\n"
    "      channel = 'sms', delay = 0 } } }\n"
    "  elseif ev.type == 'checkout' then\n"
    "    return { schedule = { { key = 'co:' .. ev.customer, supersede = 'co:',\n"
    "      template = 'checkout', delay = 0 } } }\n"
    "  end\n"
    "end\n"
    "local function on_due(ctx, row)\n"
    "  if row.vars.cancel then return false end\n"
    "  if row.vars.item == 'fresh' then\n"
    "    return { vars = { item = 'fresh', sent_to = ctx.customer.id } }\n"
    "  end\n"
    "  return true\n"
    "end\n"
    "return { on_event = on_event, on_due = on_due }\n";

/* A channel that records what it is given and fails as told. */
typedef struct fake {
  int calls, sent;
  int retry_first;   /* answer RETRY to this many calls first */
  int fail_hard;     /* answer FAIL */
  tailor *forget;    /* erase the customer while "sending" */
  tailor *quit;      /* the host stops while "sending" (eng_deliver_quit) */
  char key[256], email[256], vars[2048], json[4096];
} fake;

static int fake_send(void *ud, const tailor_delivery *d, char *err, size_t n) {
  fake *f = ud;
  f->calls++;
  CHECK(d->size == sizeof *d);
  snprintf(f->key, sizeof f->key, "%s", d->key);
  snprintf(f->email, sizeof f->email, "%s", d->email ? d->email : "");
  snprintf(f->vars, sizeof f->vars, "%s", d->vars);
  snprintf(f->json, sizeof f->json, "%s", d->json);
  if (f->forget && d->customer) {
    int64_t erased = 0;
    CHECK_INT(tailor_forget(f->forget, d->customer, &erased, NULL), TAILOR_OK);
  }
  if (f->quit) eng_deliver_quit(f->quit);
  if (f->fail_hard) {
    snprintf(err, n, "550 no such mailbox");
    return TAILOR_SEND_FAIL;
  }
  if (f->retry_first > 0) {
    f->retry_first--;
    snprintf(err, n, "connection refused");
    return TAILOR_SEND_RETRY;
  }
  f->sent++;
  return TAILOR_SEND_OK;
}

/* A renderer that shows what it was handed. */
static char rendered_vars[2048];
static int fake_render(void *ud, const tailor_delivery *d, tailor_render_part_fn part,
                       void *ctx, char *err, size_t n) {
  (void)ud, (void)err, (void)n;
  char subject[600];
  snprintf(subject, sizeof subject, "for %s, try %d", d->email ? d->email : "nobody",
           d->attempt);
  snprintf(rendered_vars, sizeof rendered_vars, "%s", d->vars);
  part(ctx, "subject", subject, strlen(subject));
  part(ctx, "text", d->vars, strlen(d->vars));
  return 0;
}

static void write_file(const char *dir, const char *name, const char *text) {
  char path[700];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

static void make_dir(char *out, size_t size, const char *name) {
  snprintf(out, size, "%s/%sXXXXXX", tmp, name);
  if (!mkdtemp(out)) abort();
}

static tailor *open_engine(const char *db, const char *strategies, int cap, int attempts,
                           fake *email, fake *other) {
  char cfg[1500];
  snprintf(cfg, sizeof cfg,
           "{\"db\":\"%s\",\"strategies\":\"%s\",\"store\":{\"synchronous_full\":false},"
           "\"lua\":{\"reload_interval_ms\":0},\"triggers\":{\"email_cap_per_week\":%d},"
           "\"delivery\":{\"max_attempts\":%d,\"backoff_base_ms\":1,\"backoff_max_ms\":4}}",
           db, strategies, cap, attempts);
  tailor_error err = {0};
  tailor *t = tailor_open(cfg, &err);
  if (!t) {
    fprintf(stderr, "open failed: %s\n", err.message);
    return NULL;
  }
  tailor_set_logger(t, NULL, NULL);
  if (email) CHECK_INT(eng_channel_add(t, "email", TAILOR_CHANNEL_EMAIL, fake_send, email, &err), 0);
  if (other) CHECK_INT(eng_channel_add(t, "sms", 0, fake_send, other, &err), 0);
  return t;
}

static void ingest(tailor *t, const char *json) {
  tailor_error err = {0};
  int rc = tailor_ingest(t, json, strlen(json), &err);
  if (rc) fprintf(stderr, "ingest failed: %s\n", err.message);
  CHECK_INT(rc, TAILOR_OK);
}

static int deliver(tailor *t) {
  int sent = -1;
  tailor_error err = {0};
  CHECK_INT(tailor_deliver_due(t, 10, &sent, &err), TAILOR_OK);
  return sent;
}

/* The outbox row with `key` (a new reference), or NULL. */
static json_t *row_of(tailor *t, const char *key) {
  char *text = NULL;
  tailor_error err = {0};
  if (tailor_outbox_list(t, NULL, NULL, &text, &err)) return NULL;
  json_t *rows = json_loads(text, 0, NULL), *out = NULL, *r;
  tailor_free(text);
  size_t i;
  json_array_foreach(rows, i, r) {
    if (!strcmp(json_string_value(json_object_get(r, "key")), key)) out = json_incref(r);
  }
  json_decref(rows);
  return out;
}

static const char *state_of(tailor *t, const char *key) {
  static char buf[32];
  json_t *r = row_of(t, key);
  snprintf(buf, sizeof buf, "%s", r ? json_string_value(json_object_get(r, "state")) : "none");
  json_decref(r);
  return buf;
}

static long attempts_of(tailor *t, const char *key) {
  json_t *r = row_of(t, key);
  long n = r ? (long)json_integer_value(json_object_get(r, "attempts")) : -1;
  json_decref(r);
  return n;
}

static const char *error_of(tailor *t, const char *key) {
  static char buf[600];
  json_t *r = row_of(t, key);
  const char *e = r ? json_string_value(json_object_get(r, "last_error")) : NULL;
  snprintf(buf, sizeof buf, "%s", e ? e : "");
  json_decref(r);
  return buf;
}

/* A store with its strategies, and customer c1 who agreed to email. */
static void shop(char *db, size_t dbn, char *dir, size_t dirn) {
  char base[600];
  make_dir(base, sizeof base, "deliver");
  snprintf(dir, dirn, "%s/strategies", base);
  mkdir(dir, 0700);
  write_file(dir, "triggers.lua", TRIGGERS);
  snprintf(db, dbn, "%s/shop.db", base);
}

static void customers(tailor *t) {
  ingest(t, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c1\",\"email\":"
            "\"ada@example.com\",\"consent\":{\"email\":true}}}");
}

/* shop() and open_engine(), with customer c1 in: how most tests start
   (db and dir hold 700 bytes each). */
static tailor *shop_open(char *db, char *dir, int cap, int attempts, fake *email, fake *other) {
  shop(db, 700, dir, 700);
  tailor *t = open_engine(db, dir, cap, attempts, email, other);
  if (t) customers(t);
  return t;
}

static void test_backoff(void) {
  const int64_t base = 1000, max = 60000;
  int64_t prev_low = 0;
  for (int a = 1; a <= 12; a++) {
    int64_t d = base;
    for (int i = 1; i < a; i++) d = d * 2 > max ? max : d * 2;
    int64_t lo = d - d / 2;
    CHECK_INT(deliver_backoff_ms(a, base, max, 0), lo);
    CHECK_INT(deliver_backoff_ms(a, base, max, (uint64_t)(d / 2)), d);
    CHECK(lo >= prev_low); /* never sooner than the try before */
    prev_low = lo;
    int64_t seen_lo = INT64_MAX, seen_hi = 0;
    for (uint64_t r = 0; r < 2000; r++) {
      int64_t w = deliver_backoff_ms(a, base, max, r * 0x9E3779B97F4A7C15ull);
      CHECK(w >= lo && w <= d);
      if (w < seen_lo) seen_lo = w;
      if (w > seen_hi) seen_hi = w;
    }
    /* The jitter spreads over the whole upper half. */
    CHECK(seen_lo - lo <= d / 20 + 1);
    CHECK(d - seen_hi <= d / 20 + 1);
  }
  CHECK_INT(deliver_backoff_ms(1, 1000, 60000, 0), 500);
  CHECK_INT(deliver_backoff_ms(7, 1000, 60000, 0), 30000); /* capped: 60 s */
  CHECK_INT(deliver_backoff_ms(40, 1000, 60000, 0), 30000);
  CHECK(deliver_backoff_ms(0, 0, 0, 12345) >= 1); /* nonsense in, a wait out */
}

static void test_send_once(void) {
  char db[700], dir[700];
  fake mail = {0};
  tailor *t = shop_open(db, dir, 3, 5, &mail, NULL);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  CHECK_STR(state_of(t, "cart:c1:hat"), "pending");
  CHECK_INT(deliver(t), 1);
  CHECK_INT(mail.calls, 1);
  CHECK_STR(mail.key, "cart:c1:hat");
  CHECK_STR(mail.email, "ada@example.com");
  CHECK_CONTAINS(mail.vars, "\"item\":\"hat\"");
  CHECK_CONTAINS(mail.json, "\"attempt\":1");
  CHECK_CONTAINS(mail.json, "\"template\":\"abandoned_cart\"");
  CHECK_STR(state_of(t, "cart:c1:hat"), "sent");
  CHECK_INT(deliver(t), 0);
  CHECK_INT(mail.calls, 1);
  /* The delivery is an email_sent event strategies can see. */
  char *stats = NULL;
  tailor_error err = {0};
  CHECK_INT(tailor_stats(t, &stats, &err), TAILOR_OK);
  CHECK_CONTAINS(stats, "\"email_sent\":1");
  tailor_free(stats);
  char *who = NULL;
  CHECK_INT(tailor_customer(t, "c1", 0, &who, &err), TAILOR_OK);
  tailor_free(who);
  tailor_close(t);
}

static void test_retry_then_sent(void) {
  char db[700], dir[700];
  fake mail = {.retry_first = 2};
  tailor *t = shop_open(db, dir, 3, 5, &mail, NULL);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  CHECK_INT(deliver(t), 0);
  CHECK_STR(state_of(t, "cart:c1:hat"), "pending");
  CHECK_INT(attempts_of(t, "cart:c1:hat"), 1);
  CHECK_STR(error_of(t, "cart:c1:hat"), "connection refused");
  json_t *r = row_of(t, "cart:c1:hat");
  CHECK(json_integer_value(json_object_get(r, "next_at")) > 0);
  json_decref(r);
  /* The backoff here is at most 4 ms: a few rounds finish it. */
  for (int round = 0; round < 200 && mail.sent == 0; round++) {
    usleep(5000);
    deliver(t);
  }
  CHECK_INT(mail.calls, 3);
  CHECK_INT(mail.sent, 1);
  CHECK_STR(state_of(t, "cart:c1:hat"), "sent");
  CHECK_INT(attempts_of(t, "cart:c1:hat"), 3);
  tailor_close(t);
}

static void test_dead_and_operator_retry(void) {
  char db[700], dir[700];
  fake mail = {.retry_first = 1000};
  tailor *t = shop_open(db, dir, 3, 3, &mail, NULL);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  for (int round = 0; round < 200 && strcmp(state_of(t, "cart:c1:hat"), "dead"); round++) {
    usleep(5000);
    deliver(t);
  }
  CHECK_STR(state_of(t, "cart:c1:hat"), "dead");
  CHECK_INT(mail.calls, 3);
  CHECK_STR(error_of(t, "cart:c1:hat"), "gave up after 3 attempts: connection refused");
  deliver(t);
  CHECK_INT(mail.calls, 3); /* dead stays dead */
  /* A permanent failure is dead at once. */
  fake *m = &mail;
  m->retry_first = 0;
  m->fail_hard = 1;
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"sock\",\"customer\":\"c1\"}");
  deliver(t);
  CHECK_STR(state_of(t, "cart:c1:sock"), "dead");
  CHECK_STR(error_of(t, "cart:c1:sock"), "550 no such mailbox");
  /* The operator retries every dead row once the server is fixed. */
  m->fail_hard = 0;
  int changed = 0;
  tailor_error err = {0};
  CHECK_INT(tailor_outbox_retry(t, NULL, &changed, &err), TAILOR_OK);
  CHECK_INT(changed, 2);
  CHECK_STR(state_of(t, "cart:c1:hat"), "pending");
  CHECK_INT(attempts_of(t, "cart:c1:hat"), 0);
  CHECK_INT(deliver(t), 2);
  CHECK_STR(state_of(t, "cart:c1:hat"), "sent");
  /* A row still scheduled is not tried early: it goes at its due time. */
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"later\",\"customer\":\"c1\"}");
  CHECK_STR(state_of(t, "cart:c1:later"), "pending");
  CHECK_INT(tailor_outbox_retry(t, "cart:c1:later", &changed, &err), TAILOR_EDENIED);
  CHECK_CONTAINS(err.message, "'cart:c1:later' is scheduled: it has not been tried yet");
  CHECK_INT(deliver(t), 0);
  CHECK_STR(state_of(t, "cart:c1:later"), "pending");
  /* A sent key is never sent again, and an unknown key is named. */
  CHECK_INT(tailor_outbox_retry(t, "cart:c1:hat", &changed, &err), TAILOR_EDENIED);
  CHECK_CONTAINS(err.message, "never sent twice");
  CHECK_INT(tailor_outbox_retry(t, "nope", &changed, &err), TAILOR_ENOTFOUND);
  tailor_close(t);
}

static void test_on_due(void) {
  char db[700], dir[700];
  fake mail = {0};
  tailor *t = shop_open(db, dir, 10, 3, &mail, NULL);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"nope\",\"customer\":\"c1\"}");
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"fresh\",\"customer\":\"c1\"}");
  CHECK_INT(deliver(t), 1);
  CHECK_STR(state_of(t, "cart:c1:nope"), "cancelled");
  CHECK_CONTAINS(error_of(t, "cart:c1:nope"), "on_due");
  CHECK_INT(mail.calls, 1);
  CHECK_STR(mail.key, "cart:c1:fresh");
  CHECK_CONTAINS(mail.vars, "\"sent_to\":\"c1\"");
  /* What went out is what the outbox keeps. */
  json_t *r = row_of(t, "cart:c1:fresh");
  CHECK_STR(json_string_value(json_object_get(json_object_get(r, "vars"), "sent_to")), "c1");
  json_decref(r);
  tailor_close(t);
}

static void test_consent_and_cap_at_send(void) {
  char db[700], dir[700];
  fake mail = {0};
  tailor *t = shop_open(db, dir, 3, 3, &mail, NULL);
  ingest(t, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c2\",\"email\":"
            "\"bo@example.com\",\"consent\":{\"email\":true}}}");
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c2\"}");
  /* c2 withdraws consent before the email is due. */
  ingest(t, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c2\",\"consent\":"
            "{\"email\":false}}}");
  /* c1 gets two scheduled within the cap of 3 ... */
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"sock\",\"customer\":\"c1\"}");
  CHECK_INT(deliver(t), 2);
  CHECK_STR(state_of(t, "cart:c2:hat"), "cancelled");
  CHECK_STR(error_of(t, "cart:c2:hat"), "no email consent or address at send time");
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"scarf\",\"customer\":\"c1\"}");
  tailor_close(t);
  /* ... and with a cap of 2 by the time the third is due, it is not sent. */
  t = open_engine(db, dir, 2, 3, &mail, NULL);
  CHECK_INT(deliver(t), 0);
  CHECK_STR(state_of(t, "cart:c1:scarf"), "cancelled");
  CHECK_CONTAINS(error_of(t, "cart:c1:scarf"), "weekly email cap (2)");
  CHECK_INT(mail.sent, 2);
  tailor_close(t);
}

/* A decline of marketing counts from the moment it is stored: an email
   scheduled before it is not sent. */
static void test_marketing_declined_at_send(void) {
  char db[700], dir[700];
  fake mail = {0};
  tailor *t = shop_open(db, dir, 3, 3, &mail, NULL);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  CHECK_STR(state_of(t, "cart:c1:hat"), "pending");
  ingest(t, "{\"type\":\"consent\",\"customer\":\"c1\",\"props\":{\"marketing\":false}}");
  CHECK_INT(deliver(t), 0);
  CHECK_INT(mail.calls, 0);
  CHECK_STR(state_of(t, "cart:c1:hat"), "cancelled");
  CHECK_CONTAINS(error_of(t, "cart:c1:hat"), "marketing declined");
  tailor_close(t);
}

/* A key scheduled again (the same trigger run twice, two events with one
   timestamp) with a supersede of its own prefix: the row stays and goes
   out once (the supersede cancelled the very row the add then kept). */
static void test_same_key_supersede(void) {
  char db[700], dir[700];
  fake mail = {0};
  tailor *t = shop_open(db, dir, 3, 3, &mail, NULL);
  ingest(t, "{\"type\":\"checkout\",\"customer\":\"c1\"}");
  ingest(t, "{\"type\":\"checkout\",\"customer\":\"c1\"}");
  CHECK_STR(state_of(t, "co:c1"), "pending");
  CHECK_INT(deliver(t), 1);
  CHECK_STR(state_of(t, "co:c1"), "sent");
  tailor_close(t);
}

/* A customer erased while their email is in flight: it went out, but
   nothing of them comes back (no ledger row, no email_sent event). */
/* The store as another sender opens it beside the engine, which holds its
   lock (store.c, sq_lock): outbox rows only, no events (store.lock false). */
static store *open_beside(const char *db, tailor_error *err) {
  store_options o = {1, STORE_DEFAULT_BUSY_TIMEOUT_MS, 0, 1};
  return store_open(db, &o, err);
}

static void test_forget_in_flight(void) {
  char db[700], dir[700];
  shop(db, sizeof db, dir, sizeof dir);
  fake mail = {0};
  tailor *t = open_engine(db, dir, 3, 3, &mail, NULL);
  mail.forget = t;
  customers(t);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  CHECK_INT(deliver(t), 1);
  CHECK_INT(mail.calls, 1);
  char *who = NULL;
  tailor_error err = {0};
  CHECK_INT(tailor_customer(t, "c1", 0, &who, &err), TAILOR_ENOTFOUND);
  tailor_free(who);
  tailor_close(t);
  store *st = open_beside(db, &err);
  CHECK(st != NULL);
  if (st) CHECK_INT((int)store_outbox_sent_since(st, "c1", "email", 0), 0);
  store_close(st);
}

/* An email channel by another name (the smtp plugin's `channel` setting):
   the strategy's caps and a decline of marketing hold for it as for
   "email", at schedule time too. */
static const char MAIL_TRIGGERS[] =
    "local function on_event(ctx, ev)\n"
    "  if ev.type == 'view' then\n"
    "    return { schedule = { { key = 'v:' .. ev.customer .. ':' .. ev.item,\n"
    "      channel = 'mail', template = 'browse', delay = 0 } } }\n"
    "  end\n"
    "end\n"
    "return { on_event = on_event, caps = { per_day = 1, window_hours = 24 } }\n";

static void test_email_channel_by_flag(void) {
  char db[700], dir[700];
  shop(db, sizeof db, dir, sizeof dir);
  write_file(dir, "triggers.lua", MAIL_TRIGGERS);
  fake mail = {0};
  tailor *t = open_engine(db, dir, 3, 3, NULL, NULL);
  tailor_error err = {0};
  CHECK_INT(eng_channel_add(t, "mail", TAILOR_CHANNEL_EMAIL, fake_send, &mail, &err), 0);
  customers(t);
  ingest(t, "{\"type\":\"view\",\"item\":\"a\",\"customer\":\"c1\"}");
  ingest(t, "{\"type\":\"view\",\"item\":\"b\",\"customer\":\"c1\"}");
  CHECK_STR(state_of(t, "v:c1:a"), "pending");
  CHECK_STR(state_of(t, "v:c1:b"), "none"); /* per_day = 1 */
  CHECK_INT(deliver(t), 1);
  ingest(t, "{\"type\":\"consent\",\"customer\":\"c1\",\"props\":{\"marketing\":false}}");
  ingest(t, "{\"type\":\"view\",\"item\":\"c\",\"customer\":\"c1\"}");
  CHECK_STR(state_of(t, "v:c1:c"), "none"); /* declined: not scheduled */
  CHECK_INT(mail.calls, 1);
  char *stats = NULL;
  CHECK_INT(tailor_stats(t, &stats, &err), TAILOR_OK);
  CHECK_CONTAINS(stats, "\"triggers_capped\":1,");
  CHECK_CONTAINS(stats, "\"triggers_without_consent\":1");
  tailor_free(stats);
  tailor_close(t);
}

static void test_unknown_channel_waits(void) {
  char db[700], dir[700];
  fake mail = {0}, sms = {0};
  tailor *t = shop_open(db, dir, 3, 3, &mail, NULL);
  ingest(t, "{\"type\":\"view\",\"item\":\"hat\",\"customer\":\"c1\"}");
  CHECK_INT(deliver(t), 0);
  CHECK_STR(state_of(t, "sms:c1"), "pending");
  CHECK_INT(attempts_of(t, "sms:c1"), 0);
  tailor_close(t);
  /* A later start with a plugin for it delivers it; no consent needed for
     a channel that does not email. */
  t = open_engine(db, dir, 3, 3, &mail, &sms);
  CHECK_INT(deliver(t), 1);
  CHECK_INT(sms.sent, 1);
  CHECK_STR(sms.email, "ada@example.com");
  CHECK_STR(state_of(t, "sms:c1"), "sent");
  tailor_close(t);
}

static void test_never_twice_after_purge(void) {
  char db[700], dir[700];
  fake mail = {0};
  tailor *t = shop_open(db, dir, 10, 3, &mail, NULL);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  CHECK_INT(deliver(t), 1);
  int64_t purged = 0;
  tailor_error err = {0};
  CHECK_INT(tailor_outbox_purge(t, "pending", 0, &purged, &err), TAILOR_EINVAL);
  usleep(3000); /* purged: rows last changed before now */
  CHECK_INT(tailor_outbox_purge(t, NULL, 0, &purged, &err), TAILOR_OK);
  CHECK_INT(purged, 1);
  CHECK_STR(state_of(t, "cart:c1:hat"), "none");
  /* The same key scheduled again is recognized and not sent. */
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  CHECK_STR(state_of(t, "cart:c1:hat"), "pending");
  CHECK_INT(deliver(t), 0);
  CHECK_INT(mail.calls, 1);
  CHECK_STR(state_of(t, "cart:c1:hat"), "sent");
  tailor_close(t);
}

static void test_lease_after_crash(void) {
  char db[700], dir[700];
  fake mail = {0};
  tailor *t = shop_open(db, dir, 10, 3, &mail, NULL);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  /* Another sender claims the row and dies before it settles it. */
  tailor_error err = {0};
  store *other = open_beside(db, &err);
  json_t *names = json_pack("[s]", "email");
  int64_t now = (int64_t)time(NULL) * 1000;
  json_t *claimed = store_outbox_claim(other, names, NULL, now + 1000, 10, now + 60000, &err);
  CHECK_INT(json_array_size(claimed), 1);
  json_decref(claimed);
  CHECK_STR(state_of(t, "cart:c1:hat"), "sending");
  CHECK_INT(deliver(t), 0); /* its lease holds */
  /* Once the lease is over, the row is this sender's again. */
  CHECK_INT(store_exec(other, "UPDATE outbox SET next_at = 1", &err), TAILOR_OK);
  CHECK_INT(deliver(t), 1);
  CHECK_INT(attempts_of(t, "cart:c1:hat"), 2);
  /* Erasure takes the rows and the ledger. */
  int64_t erased = 0;
  CHECK_INT(tailor_forget(t, "c1", &erased, &err), TAILOR_OK);
  CHECK_STR(state_of(t, "cart:c1:hat"), "none");
  CHECK_INT(store_outbox_sent_since(other, "c1", "email", 0), 0);
  json_decref(names);
  store_close(other);
  tailor_close(t);
}

/* Under the weekly cap a customer's emails go one at a time, whichever
   sender holds them: while another sender (a second node, `tailor outbox
   deliver` beside a server) is sending one of c1's emails, c1's next one
   is not claimed, since the cap counts the sends recorded and that one is
   not yet; once it is, the cap holds and the next one is cancelled. */
static void test_cap_one_sender_at_a_time(void) {
  char db[700], dir[700];
  fake mail = {0};
  tailor *t = shop_open(db, dir, 3, 3, &mail, NULL);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"sock\",\"customer\":\"c1\"}");
  tailor_close(t);
  t = open_engine(db, dir, 1, 3, &mail, NULL);
  tailor_error err = {0};
  store *other = open_beside(db, &err);
  json_t *names = json_pack("[s]", "email");
  int64_t now = (int64_t)time(NULL) * 1000;
  json_t *held = store_outbox_claim(other, names, names, now + 1000, 1, now + 60000, &err);
  CHECK_INT(json_array_size(held), 1);
  json_t *h = json_array_get(held, 0);
  const char *key = json_string_value(json_object_get(h, "key"));
  const char *next = key && !strcmp(key, "cart:c1:hat") ? "cart:c1:sock" : "cart:c1:hat";
  CHECK_INT(deliver(t), 0);
  CHECK_INT(mail.calls, 0);
  CHECK_STR(state_of(t, next), "pending");
  CHECK_INT(store_outbox_mark_sent(other, json_integer_value(json_object_get(h, "id")), key,
                                   "email", "c1", NULL, now, &err),
            TAILOR_OK);
  CHECK_INT(deliver(t), 0);
  CHECK_INT(mail.calls, 0);
  CHECK_STR(state_of(t, next), "cancelled");
  CHECK_CONTAINS(error_of(t, next), "weekly email cap (1)");
  json_decref(held);
  json_decref(names);
  store_close(other);
  tailor_close(t);
}

/* A host that stops during a batch gives the rest back untried: their
   claim is not a try (the channel never saw them), so the next start
   sends them as their first attempt (which the channel and on_due are
   told), and a row given back does not go dead one real failure early. */
static void test_stop_gives_back_untried(void) {
  char db[700], dir[700];
  fake mail = {0};
  tailor *t = shop_open(db, dir, 3, 2, &mail, NULL);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"sock\",\"customer\":\"c1\"}");
  mail.quit = t;
  CHECK_INT(deliver(t), 1);
  const char *rest = !strcmp(mail.key, "cart:c1:hat") ? "cart:c1:sock" : "cart:c1:hat";
  CHECK_STR(state_of(t, rest), "pending");
  CHECK_INT(attempts_of(t, rest), 0);
  tailor_close(t);
  /* The next start: a channel that fails once. */
  mail = (fake){0};
  mail.retry_first = 1;
  t = open_engine(db, dir, 3, 2, &mail, NULL);
  CHECK_INT(deliver(t), 0);
  CHECK_INT(mail.calls, 1);
  CHECK_CONTAINS(mail.json, "\"attempt\":1");
  CHECK_STR(state_of(t, rest), "pending"); /* tried again, not dead */
  CHECK_INT(attempts_of(t, rest), 1);
  tailor_close(t);
}

/* A sender whose lease ran out settles nothing: the row was claimed again
   and is its new holder's (a stale "pending" would have it sent twice). */
static void test_stale_holder_settles_nothing(void) {
  char db[700], dir[700];
  shop(db, sizeof db, dir, sizeof dir);
  tailor *t = open_engine(db, dir, 10, 3, NULL, NULL);
  customers(t);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  tailor_error err = {0};
  store *a = open_beside(db, &err), *b = open_beside(db, &err);
  json_t *names = json_pack("[s]", "email");
  int64_t now = (int64_t)time(NULL) * 1000;
  json_t *first = store_outbox_claim(a, names, NULL, now + 1000, 10, now + 60000, &err);
  CHECK_INT(json_array_size(first), 1);
  int64_t id = json_integer_value(json_object_get(json_array_get(first, 0), "id"));
  int try1 = (int)json_integer_value(json_object_get(json_array_get(first, 0), "attempts"));
  CHECK_INT(store_exec(a, "UPDATE outbox SET next_at = 1", &err), TAILOR_OK); /* lease over */
  json_t *second = store_outbox_claim(b, names, NULL, now + 1000, 10, now + 60000, &err);
  CHECK_INT(json_array_size(second), 1);
  int try2 = (int)json_integer_value(json_object_get(json_array_get(second, 0), "attempts"));
  CHECK_INT(try2, try1 + 1);
  CHECK_INT(store_outbox_settle(a, id, try1, "pending", 0, "stale", now, &err), TAILOR_OK);
  CHECK_STR(state_of(t, "cart:c1:hat"), "sending");
  CHECK_INT(store_outbox_settle(b, id, try2, "dead", 0, "550", now, &err), TAILOR_OK);
  CHECK_STR(state_of(t, "cart:c1:hat"), "dead");
  json_decref(first);
  json_decref(second);
  json_decref(names);
  store_close(a);
  store_close(b);
  tailor_close(t);
}

/* The shipped triggers.lua: on_due keeps, refreshes or cancels. */
static json_t *preview(tailor *t, const char *key) {
  json_t *row = row_of(t, key);
  tailor_error err = {0};
  json_t *p = row ? eng_deliver_preview(t, row, &err) : NULL;
  CHECK(p != NULL);
  json_decref(row);
  return p ? p : json_object();
}

static const char *field(json_t *o, const char *a, const char *b) {
  json_t *v = json_object_get(o, a);
  if (b) v = json_object_get(v, b);
  return json_is_string(v) ? json_string_value(v) : "(none)";
}

static void test_preview(void) {
  char db[700], dir[700];
  shop(db, sizeof db, dir, sizeof dir);
  fake mail = {0}, sms = {0};
  tailor *t = open_engine(db, dir, 10, 3, &mail, NULL);
  tailor_error err = {0};
  CHECK_INT(eng_channel_render_set(t, "email", fake_render, NULL, &err), TAILOR_OK);
  CHECK(eng_channel_render_set(t, "nope", fake_render, NULL, &err) == TAILOR_EINVAL);
  customers(t);
  ingest(t, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c2\",\"email\":"
            "\"bo@example.com\",\"consent\":{\"email\":true}}}");
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"fresh\",\"customer\":\"c1\"}");
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"nope\",\"customer\":\"c1\"}");
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c2\"}");
  ingest(t, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c2\",\"consent\":"
            "{\"email\":false}}}"); /* withdrawn before it is due */
  ingest(t, "{\"type\":\"view\",\"item\":\"hat\",\"customer\":\"c1\"}"); /* an sms row */

  /* To go: on_due's fresh vars, the consenting address, the next try. */
  json_t *p = preview(t, "cart:c1:fresh");
  CHECK_STR(field(p, "verdict", NULL), "send");
  CHECK_STR(field(p, "to", NULL), "ada@example.com");
  CHECK_STR(field(p, "parts", "subject"), "for ada@example.com, try 1");
  CHECK_CONTAINS(field(p, "parts", "text"), "\"sent_to\":\"c1\"");
  CHECK_STR(field(p, "vars", "sent_to"), "c1");
  json_decref(p);
  /* Cancelled by the strategy, or by consent, at send time. */
  p = preview(t, "cart:c1:nope");
  CHECK_STR(field(p, "verdict", NULL), "cancel");
  CHECK_CONTAINS(field(p, "why", NULL), "on_due");
  json_decref(p);
  p = preview(t, "cart:c2:hat");
  CHECK_STR(field(p, "verdict", NULL), "cancel");
  CHECK_STR(field(p, "why", NULL), "no email consent or address at send time");
  CHECK_STR(field(p, "parts", "subject"), "for nobody, try 1");
  json_decref(p);
  /* A channel no plugin provides here. */
  p = preview(t, "sms:c1");
  CHECK_CONTAINS(field(p, "why", NULL), "no plugin provides channel 'sms'");
  CHECK(json_is_null(json_object_get(p, "parts")));
  json_decref(p);
  /* Nothing went out, nothing changed. */
  CHECK_INT(mail.calls, 0);
  CHECK_STR(state_of(t, "cart:c1:fresh"), "pending");
  CHECK_STR(state_of(t, "cart:c1:nope"), "pending");

  /* Sent: the preview renders what the send was handed. */
  CHECK_INT(deliver(t), 1);
  CHECK_STR(state_of(t, "cart:c1:fresh"), "sent");
  p = preview(t, "cart:c1:fresh");
  CHECK(json_is_null(json_object_get(p, "verdict")));
  CHECK_STR(rendered_vars, mail.vars);
  CHECK_STR(field(p, "parts", "subject"), "for ada@example.com, try 1");
  json_decref(p);
  tailor_close(t);

  /* A channel without a renderer says so. */
  t = open_engine(db, dir, 10, 3, &mail, &sms);
  p = preview(t, "sms:c1");
  CHECK_CONTAINS(field(p, "render_error", NULL), "cannot show a row");
  CHECK_STR(field(p, "verdict", NULL), "send");
  json_decref(p);
  CHECK_INT(sms.calls, 0);
  tailor_close(t);
}

/* An engine on a fresh shop (its path in db) with the shipped strategies
   and the catalog's jacket (120) and, unless `jacket_only`, hat (20). */
static tailor *open_shipped(char *db, size_t cap, fake *mail, int jacket_only) {
  const char *root = getenv("TAILOR_ROOT");
  char dir[700], strategies[700];
  shop(db, cap, dir, sizeof dir);
  snprintf(strategies, sizeof strategies, "%s/strategies", root ? root : ".");
  tailor *t = open_engine(db, strategies, 10, 3, mail, NULL);
  ingest(t, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"jacket\",\"name\":\"Winter Jacket\","
            "\"price\":120,\"category\":\"Outdoor/Jackets\"}}");
  if (!jacket_only)
    ingest(t, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"hat\",\"name\":\"Wool Hat\","
              "\"price\":20,\"category\":\"Outdoor/Hats\"}}");
  return t;
}

static void test_shipped_on_due(void) {
  char db[700];
  fake mail = {0};
  tailor *t = open_shipped(db, sizeof db, &mail, 0);
  tailor_error err = {0};
  store *st = open_beside(db, &err);
  customers(t);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"jacket\",\"customer\":\"c1\"}");
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  /* The cart email is due an hour later: make it due now. */
  CHECK_INT(store_exec(st, "UPDATE outbox SET due = 0 WHERE key LIKE 'abandoned_cart:%' "
                           "AND state = 'pending'", &err), TAILOR_OK);
  CHECK_INT(deliver(t), 1);
  CHECK_CONTAINS(mail.key, "abandoned_cart:c1:");
  /* on_due sent the cart as it is at send time: both items. */
  CHECK_CONTAINS(mail.vars, "Winter Jacket");
  CHECK_CONTAINS(mail.vars, "Wool Hat");
  /* An emptied cart cancels the next one. */
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"jacket\",\"customer\":\"c1\"}");
  ingest(t, "{\"type\":\"remove_from_cart\",\"item\":\"jacket\",\"customer\":\"c1\"}");
  ingest(t, "{\"type\":\"remove_from_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  CHECK_INT(store_exec(st, "UPDATE outbox SET due = 0 WHERE key LIKE 'abandoned_cart:%' "
                           "AND state = 'pending'", &err), TAILOR_OK);
  CHECK_INT(deliver(t), 0);
  CHECK_INT(mail.calls, 1);
  /* A purchase since cancels it too, even if the cancel on_event sent
     were lost (the row is put back to pending by hand). */
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"jacket\",\"customer\":\"c1\"}");
  usleep(3000); /* the order comes after the cart, to the millisecond */
  ingest(t, "{\"type\":\"purchase\",\"customer\":\"c1\",\"order_id\":\"o1\","
            "\"items\":[{\"id\":\"hat\",\"price\":20}]}");
  CHECK_INT(store_exec(st, "UPDATE outbox SET state = 'pending', due = 0 WHERE key LIKE "
                           "'abandoned_cart:%' AND state = 'cancelled'", &err), TAILOR_OK);
  CHECK_INT(deliver(t), 0);
  CHECK_INT(mail.calls, 1);
  char *text = NULL;
  CHECK_INT(tailor_outbox_list(t, "cancelled", "c1", &text, &err), TAILOR_OK);
  CHECK_CONTAINS(text, "on_due: the strategy says it no longer applies");
  tailor_free(text);
  /* The win-back and the follow-up are sent with the items of their day:
     the win-back's picks made again at today's price, without what sold
     out since.  (The jacket leaves the cart: what is in it is not picked.) */
  ingest(t, "{\"type\":\"remove_from_cart\",\"item\":\"jacket\",\"customer\":\"c1\"}");
  ingest(t, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"jacket\",\"name\":\"Winter Jacket\","
            "\"price\":99,\"in_stock\":true,\"category\":\"Outdoor/Jackets\"}}");
  json_t *p = preview(t, "win_back:c1:o1");
  char *vars = json_dumps(json_object_get(p, "vars"), JSON_COMPACT | JSON_SORT_KEYS);
  CHECK_CONTAINS(vars, "{\"id\":\"jacket\",\"name\":\"Winter Jacket\",\"price\":99");
  free(vars);
  json_decref(p);
  ingest(t, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"jacket\",\"name\":\"Winter Jacket\","
            "\"price\":99,\"in_stock\":false,\"category\":\"Outdoor/Jackets\"}}");
  p = preview(t, "win_back:c1:o1");
  vars = json_dumps(json_object_get(p, "vars"), JSON_COMPACT | JSON_SORT_KEYS);
  CHECK(vars && !strstr(vars, "Winter Jacket"));
  free(vars);
  json_decref(p);
  p = preview(t, "post_purchase:o1");
  CHECK_STR(field(p, "verdict", NULL), "send");
  vars = json_dumps(json_object_get(p, "vars"), JSON_COMPACT | JSON_SORT_KEYS);
  CHECK_CONTAINS(vars, "\"order_id\":\"o1\"");
  CHECK(vars && !strstr(vars, "Winter Jacket"));
  free(vars);
  json_decref(p);
  store_close(st);
  tailor_close(t);
}

/* The shipped browse-abandonment email, hours after the view: its items at
   today's names, without what sold out or left the catalog since; with
   the viewed item itself gone, it no longer applies. */
static void test_shipped_browse_on_due(void) {
  char db[700];
  fake mail = {0};
  tailor *t = open_shipped(db, sizeof db, &mail, 0);
  ingest(t, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"boot\",\"name\":\"Snow Boot\","
            "\"price\":90,\"category\":\"Outdoor/Boots\"}}");
  /* Others' orders make the jacket and the boot the picks. */
  ingest(t, "{\"type\":\"purchase\",\"customer\":\"o1\",\"order_id\":\"x1\","
            "\"items\":[{\"id\":\"jacket\"},{\"id\":\"boot\"}]}");
  customers(t);
  ingest(t, "{\"type\":\"view\",\"item\":\"hat\",\"customer\":\"c1\"}");
  json_t *p = preview(t, "browse:c1:hat");
  char *vars = json_dumps(json_object_get(p, "vars"), JSON_COMPACT | JSON_SORT_KEYS);
  CHECK_STR(field(p, "verdict", NULL), "send");
  CHECK_CONTAINS(vars, "Winter Jacket");
  CHECK_CONTAINS(vars, "Snow Boot");
  free(vars);
  json_decref(p);
  /* The jacket sells out, the boot leaves the catalog, the hat is renamed. */
  ingest(t, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"jacket\",\"name\":\"Winter Jacket\","
            "\"price\":120,\"in_stock\":false,\"category\":\"Outdoor/Jackets\"}}");
  ingest(t, "{\"type\":\"item_delete\",\"item\":\"boot\"}");
  ingest(t, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"hat\",\"name\":\"Merino Hat\","
            "\"price\":20,\"category\":\"Outdoor/Hats\"}}");
  p = preview(t, "browse:c1:hat");
  vars = json_dumps(json_object_get(p, "vars"), JSON_COMPACT | JSON_SORT_KEYS);
  CHECK_STR(field(p, "verdict", NULL), "send");
  CHECK_CONTAINS(vars, "Merino Hat");
  CHECK(vars && !strstr(vars, "Winter Jacket") && !strstr(vars, "Snow Boot") &&
        !strstr(vars, "Wool Hat"));
  free(vars);
  json_decref(p);
  /* The hat itself sold out: nothing to come back for. */
  ingest(t, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"hat\",\"name\":\"Merino Hat\","
            "\"price\":20,\"stock\":0,\"category\":\"Outdoor/Hats\"}}");
  p = preview(t, "browse:c1:hat");
  CHECK_STR(field(p, "verdict", NULL), "cancel");
  json_decref(p);
  tailor_close(t);
}

/* The shipped cart email: a cart whose every item left the catalog since
   has nothing to come back for. */
static void test_shipped_cart_of_deleted_items(void) {
  char db[700];
  fake mail = {0};
  tailor *t = open_shipped(db, sizeof db, &mail, 0);
  customers(t);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"jacket\",\"customer\":\"c1\"}");
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c1\"}");
  json_t *rows = NULL;
  char *text = NULL;
  tailor_error err = {0};
  /* The pending cart row, whatever its time stamp. */
  CHECK_INT(tailor_outbox_list(t, "pending", "c1", &text, &err), TAILOR_OK);
  rows = json_loads(text ? text : "[]", 0, NULL);
  tailor_free(text);
  const char *key = json_string_value(json_object_get(json_array_get(rows, 0), "key"));
  CHECK(key && !strncmp(key, "abandoned_cart:c1:", 18));
  ingest(t, "{\"type\":\"item_delete\",\"item\":\"jacket\"}");
  json_t *p = preview(t, key ? key : "");
  CHECK_STR(field(p, "verdict", NULL), "send"); /* the hat is still there */
  json_decref(p);
  ingest(t, "{\"type\":\"item_delete\",\"item\":\"hat\"}");
  p = preview(t, key ? key : "");
  CHECK_STR(field(p, "verdict", NULL), "cancel");
  json_decref(p);
  json_decref(rows);
  tailor_close(t);
}

/* The console's view of a row has the catalog entries of the items its
   variables name: the shipped price drop's item is an object. */
static void test_console_message_items(void) {
  char db[700], view[200];
  fake mail = {0};
  tailor *t = open_shipped(db, sizeof db, &mail, 1);
  customers(t);
  /* Viewed two days ago (an old view schedules no browse email). */
  snprintf(view, sizeof view, "{\"type\":\"view\",\"item\":\"jacket\",\"customer\":\"c1\","
           "\"ts\":%lld}", (long long)(time(NULL) - 2 * 86400) * 1000);
  ingest(t, view);
  ingest(t, "{\"type\":\"item_upsert\",\"item\":{\"id\":\"jacket\",\"name\":\"Winter Jacket\","
            "\"price\":99,\"category\":\"Outdoor/Jackets\"}}");
  CHECK_STR(state_of(t, "price_drop:jacket:c1:99"), "pending");
  tailor_error err = {0};
  json_t *m = eng_console_message(t, "price_drop:jacket:c1:99", &err);
  json_t *item = json_object_get(json_object_get(m, "items"), "jacket");
  CHECK_STR(json_string_value(json_object_get(item, "name")), "Winter Jacket");
  json_decref(m);
  tailor_close(t);
}

/* Every email but a confirmation carries a signed unsubscribe link when
   optin.unsubscribe_url is set; following it (tailor_unsubscribe) is a
   decline of marketing, so the next email is not sent; a forged or cut
   link changes nothing. */
static void test_unsubscribe_link(void) {
  char db[700], dir[700], cfg[1500];
  shop(db, sizeof db, dir, sizeof dir);
  snprintf(cfg, sizeof cfg,
           "{\"db\":\"%s\",\"strategies\":\"%s\",\"store\":{\"synchronous_full\":false},"
           "\"lua\":{\"reload_interval_ms\":0},\"optin\":{\"secret\":"
           "\"0123456789abcdef0123\",\"unsubscribe_url\":\"https://shop.example/t/v1/unsubscribe\"}}",
           db, dir);
  tailor_error err = {0};
  tailor *t = tailor_open(cfg, &err);
  CHECK(t != NULL);
  if (!t) return;
  tailor_set_logger(t, NULL, NULL);
  fake mail = {0};
  CHECK_INT(eng_channel_add(t, "email", TAILOR_CHANNEL_EMAIL, fake_send, &mail, &err), 0);
  ingest(t, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c 1/\u00e9\",\"email\":"
            "\"ada@example.com\",\"consent\":{\"email\":true}}}");
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"hat\",\"customer\":\"c 1/\u00e9\"}");
  CHECK_INT(deliver(t), 1);
  json_t *vars = json_loads(mail.vars, 0, NULL);
  const char *url = json_string_value(json_object_get(vars, "unsubscribe_url"));
  CHECK(url != NULL);
  const char *want = "https://shop.example/t/v1/unsubscribe?c=c%201%2F%C3%A9&s=";
  CHECK(url && !strncmp(url, want, strlen(want)) && strlen(url) == strlen(want) + 64);
  char sig[65] = "";
  if (url && strlen(url) == strlen(want) + 64) memcpy(sig, url + strlen(want), 65);
  json_decref(vars);
  /* Forged, cut, another customer's: refused, nothing changes. */
  char bad[65];
  memcpy(bad, sig, 65);
  bad[0] = bad[0] == 'a' ? 'b' : 'a';
  CHECK_INT(tailor_unsubscribe(t, "c 1/\u00e9", bad, &err), TAILOR_EINVAL);
  CHECK_CONTAINS(err.message, "signature does not match");
  CHECK_INT(tailor_unsubscribe(t, "c 1/\u00e9", "abc", &err), TAILOR_EINVAL);
  CHECK_INT(tailor_unsubscribe(t, "c2", sig, &err), TAILOR_EINVAL);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"scarf\",\"customer\":\"c 1/\u00e9\"}");
  CHECK_INT(deliver(t), 1);
  /* The real link: a decline of marketing; the next email is not sent. */
  CHECK_INT(tailor_unsubscribe(t, "c 1/\u00e9", sig, &err), TAILOR_OK);
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"gloves\",\"customer\":\"c 1/\u00e9\"}");
  deliver(t);
  CHECK_INT(mail.calls, 2);
  /* The shop's next sync of its unchanged profile does not undo it. */
  ingest(t, "{\"type\":\"customer_upsert\",\"customer\":{\"id\":\"c 1/\u00e9\",\"email\":"
            "\"ada@example.com\",\"consent\":{\"email\":true,\"marketing\":true}}}");
  ingest(t, "{\"type\":\"add_to_cart\",\"item\":\"socks\",\"customer\":\"c 1/\u00e9\"}");
  deliver(t);
  CHECK_INT(mail.calls, 2);
  /* The link followed again adds nothing to the log; for a customer the
     engine does not know (erased since), nothing is stored. */
  char *stats = NULL;
  size_t before = 0, after = 0;
  CHECK_INT(tailor_stats(t, &stats, &err), TAILOR_OK);
  json_t *st = json_loads(stats, 0, NULL);
  before = (size_t)json_integer_value(json_object_get(json_object_get(st, "events"), "consent"));
  json_decref(st);
  tailor_free(stats);
  CHECK_INT(tailor_unsubscribe(t, "c 1/\u00e9", sig, &err), TAILOR_OK);
  CHECK_INT(tailor_forget(t, "c 1/\u00e9", NULL, &err), TAILOR_OK);
  CHECK_INT(tailor_unsubscribe(t, "c 1/\u00e9", sig, &err), TAILOR_OK);
  CHECK_INT(tailor_stats(t, &stats, &err), TAILOR_OK);
  st = json_loads(stats, 0, NULL);
  after = (size_t)json_integer_value(json_object_get(json_object_get(st, "events"), "consent"));
  json_decref(st);
  tailor_free(stats);
  CHECK_INT((int)before, 1);
  CHECK_INT((int)after, 0);
  tailor_close(t);
}

int main(void) {
  const char *base = getenv("TAILOR_TEST_TMP");
  snprintf(tmp, sizeof tmp, "%s", base ? base : "/tmp");
  mkdir(tmp, 0700);
  RUN(test_backoff);
  RUN(test_send_once);
  RUN(test_retry_then_sent);
  RUN(test_dead_and_operator_retry);
  RUN(test_on_due);
  RUN(test_consent_and_cap_at_send);
  RUN(test_marketing_declined_at_send);
  RUN(test_same_key_supersede);
  RUN(test_forget_in_flight);
  RUN(test_email_channel_by_flag);
  RUN(test_unknown_channel_waits);
  RUN(test_never_twice_after_purge);
  RUN(test_lease_after_crash);
  RUN(test_stale_holder_settles_nothing);
  RUN(test_cap_one_sender_at_a_time);
  RUN(test_stop_gives_back_untried);
  RUN(test_shipped_on_due);
  RUN(test_shipped_browse_on_due);
  RUN(test_console_message_items);
  RUN(test_shipped_cart_of_deleted_items);
  RUN(test_unsubscribe_link);
  RUN(test_preview);
  return CHECK_DONE();
}
