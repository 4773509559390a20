/*
** adlist.c: audiences as the customer lists ad platforms take (Google Ads
** Customer Match, Meta Custom Audiences), and their sync: what joined and
** what left an audience since the last sync, pushed as one outbox row to a
** delivery channel (the webhook plugin), with the synced set kept in the
** store so the next sync sends the difference only.
**
** Who is listed.  A member of the audience (eng_audience_ids: marketing
** declined puts nobody in an audience) who is a customer, with each
** identifier only under its own opt-in: the email when they consented to
** email, the phone when they consented to SMS; a customer with neither is
** left out, and so is an anonymous visitor (nothing to match on).  A
** profile whose consent says "marketing": false is left out too.
**
** Normalization, per the platforms' documentation, then SHA-256 as 64
** lower-case hex digits:
**   email  trimmed, lower case; for google, the dots of the local part of
**          a gmail.com or googlemail.com address removed
**   phone  E.164: the country code and the number, digits only; "+" or
**          "00" in front says the number has its country code (a "(0)"
**          after it, "+49 (0)30 ...", is dropped), else the default
**          calling code (phone_country) goes in front, with the national
**          trunk 0 dropped; a number that cannot be made E.164
**          (no country, not 8 to 15 digits) is left out.  google hashes
**          "+<digits>", meta "<digits>".
** The bid multiplier is the strategy's (its audiences handler, the first
** audience it names for the customer), 1 when it names none.
*/
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"
#include "engine/engine.h"

#define ADLIST_EMAIL_MAX 320
#define ADLIST_PHONE_MIN_DIGITS 8
#define ADLIST_PHONE_MAX_DIGITS 15 /* E.164's longest number */
#define ADLIST_TEMPLATE "audience_sync"
#define ADLIST_DEFAULT_CHANNEL "webhook"

enum { FMT_GOOGLE = 1, FMT_META = 2 };

static int format_of(const char *name) {
  if (name && !strcmp(name, "google")) return FMT_GOOGLE;
  if (name && !strcmp(name, "meta")) return FMT_META;
  return 0;
}

/* The hash of a normalized email into out[65]; 0 when it is no address. */
static int hash_email(int fmt, const char *email, char out[65]) {
  char norm[ADLIST_EMAIL_MAX + 1];
  size_t n = 0;
  while (isspace((unsigned char)*email)) email++;
  for (; *email && n < sizeof norm - 1; email++) norm[n++] = (char)tolower((unsigned char)*email);
  while (n && isspace((unsigned char)norm[n - 1])) n--;
  norm[n] = '\0';
  char *at = strchr(norm, '@');
  if (!at || at == norm || !at[1]) return 0;
  if (fmt == FMT_GOOGLE && (!strcmp(at + 1, "gmail.com") || !strcmp(at + 1, "googlemail.com"))) {
    char *w = norm;
    for (char *r = norm; *r; r++)
      if (*r != '.' || r > at) *w++ = *r;
    *w = '\0';
    n = (size_t)(w - norm);
  }
  util_sha256_hex(norm, n, out);
  return 1;
}

/* The calling code "44" (or "+44") into out[4] as digits; 0 when it is
   none: an ISO country ("DE") or "0049" would otherwise put the national
   numbers under another country ("030..." under Greece's +30). */
static int calling_code(const char *in, char out[4]) {
  if (*in == '+') in++;
  size_t n = strlen(in);
  if (n < 1 || n > 3 || in[0] == '0' || strspn(in, "0123456789") != n) return 0;
  memcpy(out, in, n + 1);
  return 1;
}

/* The hash of a phone number made E.164 into out[65]; 0 when it cannot be.
   `country` is a calling_code's digits, or NULL. */
static int hash_phone(int fmt, const char *phone, const char *country, char out[65]) {
  char digits[40];
  size_t n = 0;
  while (isspace((unsigned char)*phone)) phone++;
  int intl = *phone == '+';
  if (!intl && phone[0] == '0' && phone[1] == '0') {
    intl = 1;
    phone += 2;
  }
  if (!intl) {
    if (!country || !*country) return 0;
    n = strlen(country); /* checked by calling_code */
    memcpy(digits, country, n);
    while (*phone && !isdigit((unsigned char)*phone)) phone++;
    while (*phone == '0') phone++; /* the national trunk prefix */
  }
  for (; *phone && n < sizeof digits - 1; phone++) {
    /* "+49 (0)30 ...": the trunk 0 a number with its country code shows
       for dialling at home is no part of it. */
    if (intl && !strncmp(phone, "(0)", 3)) phone += 2;
    else if (isdigit((unsigned char)*phone)) digits[n++] = *phone;
    else if (isalpha((unsigned char)*phone)) return 0;
  }
  if (n < ADLIST_PHONE_MIN_DIGITS || n > ADLIST_PHONE_MAX_DIGITS || digits[0] == '0') return 0;
  char e164[44];
  int len = snprintf(e164, sizeof e164, "%s%.*s", fmt == FMT_GOOGLE ? "+" : "", (int)n, digits);
  util_sha256_hex(e164, (size_t)len, out);
  return 1;
}

/* The strategy's bid multiplier for a customer's audience, or 1. */
static double bid_of(tailor *t, const char *customer) {
  if (!t->cfg.strategies || !*t->cfg.strategies) return 1.0;
  json_t *req = json_pack("{ss ss}", "kind", "audiences", "customer", customer);
  char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  char *resp = NULL;
  tailor_error e = {0};
  double bid = 1.0;
  if (text && tailor_decide(t, text, strlen(text), &resp, NULL, &e) == TAILOR_OK) {
    json_t *ans = json_loads(resp, 0, NULL);
    json_t *list = json_object_get(json_object_get(ans, "result"), "audiences");
    json_t *b = json_object_get(json_array_get(list, 0), "bid");
    if (json_is_number(b) && json_number_value(b) > 0) bid = json_number_value(b);
    json_decref(ans);
  }
  tailor_free(resp);
  free(text);
  return bid;
}

int tailor_audience_upload(tailor *t, const char *audience, int days, const char *format,
                           const char *phone_country, tailor_upload_fn fn, void *ud,
                           size_t *count, tailor_error *err) {
  if (count) *count = 0;
  if (!t || !fn) return util_fail(err, TAILOR_EINVAL, NULL, "audience: missing argument");
  int fmt = format_of(format);
  if (!fmt)
    return util_fail(err, TAILOR_EINVAL, "format",
                     "audience: format '%s' is not google or meta", format ? format : "");
  char cc[4] = "";
  if (phone_country && *phone_country && !calling_code(phone_country, cc))
    return util_fail(err, TAILOR_EINVAL, "phone_country",
                     "audience: the phone country '%s' is no calling code (1 to 3 digits: "
                     "44, 49, 1)", phone_country);
  json_t *ids = eng_audience_ids(t, audience, days, err);
  if (!ids) return err ? err->code : TAILOR_EINVAL;
  size_t i, n = 0;
  json_t *row;
  json_array_foreach(ids, i, row) {
    const char *cust = json_string_value(json_array_get(row, 0));
    if (!*cust) continue;
    json_t *profile = store_customer(eng_read_begin(t), cust);
    eng_read_end(t);
    json_t *consent = json_object_get(profile, "consent");
    const char *email = json_string_value(json_object_get(profile, "email"));
    const char *phone = json_string_value(json_object_get(profile, "phone"));
    char eh[65], ph[65];
    int has_e = 0, has_p = 0;
    if (!json_is_false(json_object_get(consent, "marketing"))) {
      has_e = email && json_is_true(json_object_get(consent, "email")) &&
              hash_email(fmt, email, eh);
      has_p = phone && json_is_true(json_object_get(consent, "sms")) &&
              hash_phone(fmt, phone, *cc ? cc : NULL, ph);
    }
    json_decref(profile);
    if (!has_e && !has_p) continue;
    fn(ud, has_e ? eh : NULL, has_p ? ph : NULL, bid_of(t, cust));
    n++;
  }
  json_decref(ids);
  if (count) *count = n;
  return TAILOR_OK;
}

/*
** The export of `tailor audiences export` and of the console's download:
** the ids, and the SHA-256 of the email (trimmed, lower case: no
** platform's own rules) of customers who consented to email when asked.
*/
typedef struct export_run {
  int flags;
  tailor_write_fn write;
  void *ud;
  size_t with_email;
  int stopped; /* write returned nonzero */
  strbuf line;
} export_run;

/* CSV fields here are ids and hex: quoted only when they need it.  An id
   is what the sender sent (an anonymous id comes from the browser), and a
   spreadsheet runs a cell that starts with = + - @, a tab or a CR as a
   formula: such a cell gets a ' in front (OWASP's advice), which the
   spreadsheet shows as text. */
static void csv_field(strbuf *b, const char *s) {
  if (!s) return;
  int formula = *s && strchr("=+-@\t\r", *s);
  if (!formula && !strpbrk(s, ",\"\r\n")) {
    buf_puts(b, s);
    return;
  }
  buf_putc(b, '"');
  if (formula) buf_putc(b, '\'');
  for (; *s; s++) {
    if (*s == '"') buf_putc(b, '"');
    buf_putc(b, *s);
  }
  buf_putc(b, '"');
}

static void export_member(void *ud, const char *customer, const char *anon,
                          const char *email) {
  export_run *r = ud;
  char hash[65];
  const char *e = NULL;
  if (r->stopped) return;
  if (email && (r->flags & TAILOR_EXPORT_HASHED_EMAILS) && hash_email(0, email, hash)) e = hash;
  if (e) r->with_email++;
  strbuf *b = &r->line;
  b->n = 0;
  if (r->flags & TAILOR_EXPORT_CSV) {
    csv_field(b, customer);
    buf_putc(b, ',');
    csv_field(b, anon);
    buf_putc(b, ',');
    csv_field(b, e);
  } else {
    const char *sep = "{";
    if (customer) buf_puts(b, "{\"customer\":"), buf_json_str(b, customer, strlen(customer)), sep = ",";
    if (anon) buf_puts(b, sep), buf_puts(b, "\"anon\":"), buf_json_str(b, anon, strlen(anon)), sep = ",";
    if (e) buf_puts(b, sep), buf_puts(b, "\"email_sha256\":\""), buf_puts(b, e), buf_putc(b, '"'), sep = ",";
    buf_puts(b, *sep == '{' ? "{}" : "}");
  }
  buf_putc(b, '\n');
  if (b->oom || r->write(r->ud, b->s, b->n)) r->stopped = 1;
}

int tailor_audience_export(tailor *t, const char *audience, int days, int flags,
                           tailor_write_fn write, void *ud, size_t *count,
                           size_t *with_email, tailor_error *err) {
  if (count) *count = 0;
  if (with_email) *with_email = 0;
  if (!t || !write) return util_fail(err, TAILOR_EINVAL, NULL, "audience: missing argument");
  export_run r = {flags, write, ud, 0, 0, {0}};
  /* The audience is checked before anything is written. */
  json_t *ids = eng_audience_ids(t, audience, days, err);
  if (!ids) return err ? err->code : TAILOR_EINVAL;
  json_decref(ids);
  static const char header[] = "customer,anon,email_sha256\n";
  if ((flags & TAILOR_EXPORT_CSV) && write(ud, header, sizeof header - 1)) r.stopped = 1;
  size_t n = 0;
  int rc = r.stopped ? TAILOR_OK
                     : tailor_audience_members(t, audience, days,
                                               (flags & TAILOR_EXPORT_HASHED_EMAILS) != 0,
                                               export_member, &r, &n, err);
  int oom = r.line.oom;
  buf_free(&r.line);
  if (rc) return rc;
  if (oom) return util_fail(err, TAILOR_ENOMEM, NULL, "audience export: out of memory");
  if (r.stopped) return util_fail(err, TAILOR_EIO, NULL, "audience export: the output failed");
  if (count) *count = n;
  if (with_email) *with_email = r.with_email;
  return TAILOR_OK;
}

/*
** Sync.  A member is known by "<email hash>|<phone hash>" (either may be
** empty): what the platform matches on, and nothing that names the
** customer, so an erased customer's entry holds no id and the next sync
** removes them from the platform.
*/
typedef struct sync_run {
  json_t *now;   /* member key -> {email_sha256, phone_sha256, bid} */
} sync_run;

static void collect_upload(void *ud, const char *email, const char *phone, double bid) {
  sync_run *r = ud;
  char key[140];
  snprintf(key, sizeof key, "%s|%s", email ? email : "", phone ? phone : "");
  json_t *m = json_object();
  if (email) json_object_set_new(m, "email_sha256", json_string(email));
  if (phone) json_object_set_new(m, "phone_sha256", json_string(phone));
  json_object_set_new(m, "bid_multiplier", json_real(bid));
  json_object_set_new(r->now, key, m);
}

/* {email_sha256, phone_sha256} from a member key. */
static json_t *member_of_key(const char *key) {
  json_t *m = json_object();
  const char *bar = strchr(key, '|');
  if (!bar) return m;
  if (bar > key)
    json_object_set_new(m, "email_sha256", json_stringn(key, (size_t)(bar - key)));
  if (bar[1]) json_object_set_new(m, "phone_sha256", json_string(bar + 1));
  return m;
}

int tailor_audience_sync(tailor *t, const char *audience, int days, const char *format,
                         const char *phone_country, const char *channel, size_t *added,
                         size_t *removed, tailor_error *err) {
  if (added) *added = 0;
  if (removed) *removed = 0;
  if (!t) return util_fail(err, TAILOR_EINVAL, NULL, "audience sync: no engine");
  if (!channel || !*channel) channel = ADLIST_DEFAULT_CHANNEL;
  sync_run r = {json_object()};
  int rc = tailor_audience_upload(t, audience, days, format, phone_country, collect_upload,
                                  &r, NULL, err);
  if (rc) {
    json_decref(r.now);
    return rc;
  }
  char state_key[300];
  snprintf(state_key, sizeof state_key, "audience_sync:%s:%s:%d:%s", format, audience, days,
           channel);
  pthread_mutex_lock(&t->write_mu);
  char *before_text = store_meta_get(t->st, state_key);
  json_t *before = before_text ? json_loads(before_text, 0, NULL) : NULL;
  free(before_text);
  if (!json_is_array(before)) {
    json_decref(before);
    before = json_array();
  }
  json_t *was = json_object(), *plus = json_array(), *minus = json_array(),
         *keys = json_array();
  size_t i;
  json_t *v;
  json_array_foreach(before, i, v) {
    const char *k = json_string_value(v);
    if (!k) continue;
    json_object_set_new(was, k, json_true());
    if (!json_object_get(r.now, k)) json_array_append_new(minus, member_of_key(k));
  }
  const char *k;
  json_object_foreach(r.now, k, v) {
    json_array_append_new(keys, json_string(k));
    if (!json_object_get(was, k)) json_array_append(plus, v);
  }
  size_t np = json_array_size(plus), nm = json_array_size(minus);
  if (np || nm) {
    int64_t now = util_now_ms();
    json_t *vars = json_pack("{ss ss si sO sO}", "audience", audience, "format", format,
                             "days", days, "added", plus, "removed", minus);
    char *vtext = vars ? json_dumps(vars, JSON_COMPACT) : NULL;
    char *ktext = json_dumps(keys, JSON_COMPACT);
    json_decref(vars);
    /* The row's key names the channel and the change (a digest of its
       vars) besides the time: two syncs in one millisecond (an embedding's
       loop, two nodes) to other channels, or with other changes, shared a
       key, and the second's row was dropped as a repeat while its synced
       set was kept, so its changes never went out.  A row the store
       already has is now this very change, queued: keeping the set is
       right. */
    char okey[500], digest[65] = "";
    if (vtext) util_sha256_hex(vtext, strlen(vtext), digest);
    snprintf(okey, sizeof okey, "%s:%s:%s:%d:%s:%lld:%.16s", ADLIST_TEMPLATE, format, audience,
             days, channel, (long long)now, digest);
    store_outbox_row row = {okey, NULL, channel, ADLIST_TEMPLATE, vtext, now};
    int ok = 0;
    rc = vtext && ktext ? store_begin(t->st, err)
                        : util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
    if (!rc) rc = store_outbox_add(t->st, &row, &ok, err);
    if (!rc) rc = store_meta_set(t->st, state_key, ktext, err);
    if (!rc) rc = store_commit(t->st, err);
    else if (vtext && ktext) store_rollback(t->st);
    free(vtext);
    free(ktext);
  }
  pthread_mutex_unlock(&t->write_mu);
  if (!rc) {
    if (added) *added = np;
    if (removed) *removed = nm;
  }
  json_decref(was);
  json_decref(plus);
  json_decref(minus);
  json_decref(keys);
  json_decref(before);
  json_decref(r.now);
  return rc;
}
