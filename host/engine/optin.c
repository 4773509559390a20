/*
** optin.c: email capture with double opt-in.
**
** A visitor gives an address (the popup strategy's email_capture, a form of
** the shop's) and tailor_subscribe() records a pending request: who asked
** (the customer, or the anonymous visitor), the address, the purpose and
** the text the visitor was shown, where (source), when; and schedules a
** confirmation email through the outbox in the same transaction.  The
** email links to optin.confirm_url with a token:
**
**     <request id>.<expiry, unix seconds>.<hex HMAC-SHA256 of "<id>.<expiry>">
**
** signed with optin.secret.  tailor_confirm() checks the signature (in
** constant time) before anything else, then the expiry, then that the
** request is still pending, and only then stores the address on the
** customer with consent to email (a customer_upsert), links the visitor
** (an identify, when the anonymous id is linked to no one yet) and records
** the consent (a consent event with props.double_opt_in, which on_event
** sees: the welcome with its incentive), all in the transaction that marks
** the request confirmed.  A forged, expired or used link changes nothing.
**
** Until then the address is only in the pending request (the confirmation
** row carries the request's id, and delivery looks the address up), and a
** request whose link expired unconfirmed is deleted.  An anonymous
** visitor's address goes on a customer of its own, "sub-" and 24 hex digits
** of the SHA-256 of the anonymous id: the same visitor asking again updates
** it, and no request can write an address onto another customer's profile
** (a storefront names a customer only with a customer token).
*/
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/util.h"
#include "engine/engine.h"

#define OPTIN_TEMPLATE "confirm_email"
#define OPTIN_ID_BYTES 16     /* random bytes of a request id: 32 hex digits */
#define OPTIN_SUB_HEX 24      /* hex digits of a subscriber's customer id */
#define OPTIN_DAY_MS 86400000 /* the window of DEF_OPTIN_MAX_PER_ADDRESS */

static void to_hex(const unsigned char *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

/* The signature of "<id>.<expiry>" (`n` bytes at msg) as 64 hex digits. */
static int sign(const tailor *t, const char *msg, size_t n, char out[65]) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const char *key = t->cfg.optin_secret;
  if (!HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg, n, mac, &len) ||
      len != 32)
    return -1;
  to_hex(mac, 32, out);
  return 0;
}

/* A link key's value: "" (off) or an http(s) address. */
static int http_url(const char *url, const char *key, tailor_error *err) {
  if (url && *url && strncmp(url, "https://", 8) && strncmp(url, "http://", 7))
    return util_fail(err, TAILOR_ECONFIG, key,
                     "config: '%s' must be an http:// or https:// address, found '%.80s'", key,
                     url);
  return TAILOR_OK;
}

int eng_optin_check_config(const config *c, tailor_error *err) {
  const char *secret = c->optin_secret, *url = c->optin_url;
  if (secret && *secret && strlen(secret) < DEF_MIN_TOKEN_BYTES)
    return util_fail(err, TAILOR_ECONFIG, "optin.secret",
                     "config: 'optin.secret' must have %d bytes or more (a shorter key is "
                     "guessable)",
                     DEF_MIN_TOKEN_BYTES);
  const char *unsub = c->unsubscribe_url;
  int rc = http_url(url, "optin.confirm_url", err);
  if (rc || (rc = http_url(unsub, "optin.unsubscribe_url", err))) return rc;
  if (unsub && *unsub && !(secret && *secret))
    return util_fail(err, TAILOR_ECONFIG, "optin.unsubscribe_url",
                     "config: 'optin.unsubscribe_url' needs 'optin.secret', which signs its "
                     "links");
  return TAILOR_OK;
}

/*
** Unsubscribe links (optin.unsubscribe_url): <url>?c=<customer, percent-
** encoded>&s=<hex HMAC-SHA256 of "unsubscribe:<customer>">.  They do not
** expire: a mail law's opt-out must work as long as the email is read.
** Following one records a consent event with marketing false for the
** customer: no audience, no email but a confirmation from then on.
*/
static int unsubscribe_sig(const tailor *t, const char *customer, char out[65]) {
  size_t n = strlen(customer);
  char *msg = malloc(n + 13);
  if (!msg) return -1;
  memcpy(msg, "unsubscribe:", 12);
  memcpy(msg + 12, customer, n + 1);
  int rc = sign(t, msg, n + 12, out);
  free(msg);
  return rc;
}

char *eng_unsubscribe_link(tailor *t, const char *customer) {
  const char *url = t->cfg.unsubscribe_url;
  char sig[65];
  if (!customer || !url || !*url || !t->cfg.optin_secret || !*t->cfg.optin_secret ||
      unsubscribe_sig(t, customer, sig))
    return NULL;
  size_t n = strlen(url), m = strlen(customer);
  char *out = malloc(n + 3 * m + 80), *p = out;
  if (!out) return NULL;
  p += sprintf(p, "%s%sc=", url, strchr(url, '?') ? "&" : "?");
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *c = (const unsigned char *)customer; *c; c++) {
    if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
        *c == '-' || *c == '_' || *c == '.' || *c == '~') {
      *p++ = (char)*c;
    } else {
      *p++ = '%';
      *p++ = hex[*c >> 4];
      *p++ = hex[*c & 15];
    }
  }
  sprintf(p, "&s=%s", sig);
  return out;
}

int eng_unsubscribe_check(tailor *t, const char *customer, const char *sig, tailor_error *err) {
  if (!t || !customer || !sig) return util_fail(err, TAILOR_EINVAL, NULL, "unsubscribe: missing argument");
  if (!t->cfg.unsubscribe_url || !*t->cfg.unsubscribe_url || !t->cfg.optin_secret ||
      !*t->cfg.optin_secret)
    return util_fail(err, TAILOR_EUNSUPPORTED, "optin.unsubscribe_url",
                     "unsubscribe: unsubscribe links are off: set optin.secret and "
                     "optin.unsubscribe_url (docs/configuration.md)");
  char want[65];
  if (!*customer || strlen(sig) != 64 || unsubscribe_sig(t, customer, want) ||
      CRYPTO_memcmp(want, sig, 64))
    return util_fail(err, TAILOR_EINVAL, "s",
                     "unsubscribe: the link's signature does not match: it was not made by "
                     "this shop, or it was cut or changed; copy the whole link from the email");
  return TAILOR_OK;
}

int tailor_unsubscribe(tailor *t, const char *customer, const char *sig, tailor_error *err) {
  int rc = eng_unsubscribe_check(t, customer, sig, err);
  if (rc) return rc;
  /* Nothing to store for a customer the engine does not know (erased
     since: the link must not bring them back) or one a link already
     unsubscribed (a link followed again adds nothing to the log). */
  pthread_rwlock_rdlock(&t->lock);
  uint32_t p = idx_person_of(t->ix, customer, NULL);
  int done = p == INTERN_NONE || (t->ix->person[p].flags & IDX_UNSUBSCRIBED);
  pthread_rwlock_unlock(&t->lock);
  if (done) return TAILOR_OK;
  json_t *doc = json_pack("{ss ss s{sb ss}}", "type", "consent", "customer", customer, "props",
                          "marketing", 0, "source", "unsubscribe");
  ev e;
  tailor_error perr = {0};
  rc = doc ? ev_from_json(doc, NULL, &e, &perr)
           : util_fail(&perr, TAILOR_ENOMEM, NULL, "out of memory");
  json_decref(doc);
  if (rc) return util_fail(err, rc, perr.field[0] ? perr.field : NULL, "unsubscribe: %s", perr.message);
  ev *ptrs[1] = {&e};
  rc = eng_ingest(t, ptrs, 1, &perr);
  ev_clear(&e);
  if (rc) return util_fail(err, rc, NULL, "unsubscribe: %s", perr.message);
  eng_log(t, TAILOR_LOG_INFO, "unsubscribe: customer %.64s declined marketing", customer);
  return TAILOR_OK;
}

/* TAILOR_OK when email capture is configured. */
static int optin_on(tailor *t, const char *op, tailor_error *err) {
  if (!t->cfg.optin_secret || !*t->cfg.optin_secret || !t->cfg.optin_url ||
      !*t->cfg.optin_url)
    return util_fail(err, TAILOR_EUNSUPPORTED, "optin.secret",
                     "%s: email capture is off: set optin.secret and optin.confirm_url "
                     "(docs/configuration.md)",
                     op);
  return TAILOR_OK;
}

/*
** The address, trimmed and lower-cased (as mail providers and the ad
** platforms' lists treat it), into `out`; NULL,
** or why it is not an address.  The common shape of RFC 5321's: a local
** part of 1 to 64 of the characters mail systems accept unquoted, with no
** leading, trailing or double dot; a domain of two or more labels of
** letters, digits and inner hyphens; 254 bytes at most.  ASCII only.
*/
static const char *email_problem(const char *in, char *out, size_t cap) {
  static const char local_ok[] = "!#$%&'*+-/=?^_`{|}~.";
  while (*in == ' ' || *in == '\t') in++;
  size_t n = strlen(in);
  while (n && (in[n - 1] == ' ' || in[n - 1] == '\t')) n--;
  if (n == 0) return "it is empty";
  if (n > 254 || n >= cap) return "it is longer than 254 bytes";
  const char *at = memchr(in, '@', n);
  if (!at) return "it has no '@'";
  if (memchr(at + 1, '@', n - (size_t)(at + 1 - in))) return "it has more than one '@'";
  size_t local = (size_t)(at - in), domain = n - local - 1;
  if (local == 0) return "nothing comes before the '@'";
  if (local > 64) return "the part before the '@' is longer than 64 bytes";
  if (in[0] == '.' || in[local - 1] == '.') return "the part before the '@' starts or ends with a dot";
  for (size_t i = 0; i < local; i++) {
    unsigned char ch = (unsigned char)in[i];
    if (ch >= 0x80) return "it is not ASCII";
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          strchr(local_ok, ch)))
      return "the part before the '@' holds a character addresses do not";
    if (ch == '.' && in[i + 1] == '.') return "the part before the '@' has two dots in a row";
  }
  if (domain == 0) return "nothing comes after the '@'";
  size_t labels = 0, len = 0;
  for (size_t i = 0; i <= domain; i++) {
    unsigned char ch = i < domain ? (unsigned char)at[1 + i] : '.';
    if (ch == '.') {
      if (len == 0) return "the domain has an empty label";
      if (at[i] == '-') return "a label of the domain ends with '-'";
      labels++;
      len = 0;
      continue;
    }
    if (ch >= 0x80) return "it is not ASCII";
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '-'))
      return "the domain holds a character domains do not";
    if (len == 0 && ch == '-') return "a label of the domain starts with '-'";
    if (++len > 63) return "a label of the domain is longer than 63 bytes";
  }
  if (labels < 2) return "the domain has no dot";
  memcpy(out, in, n);
  out[n] = '\0';
  for (char *p = out; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  return NULL;
}

/* The customer an anonymous visitor's address goes on: "sub-<hex>". */
static void subscriber_id(const char *anon, char out[4 + OPTIN_SUB_HEX + 1]) {
  char hex[65];
  util_sha256_hex(anon, strlen(anon), hex);
  snprintf(out, 4 + OPTIN_SUB_HEX + 1, "sub-%.*s", OPTIN_SUB_HEX, hex);
}

/* A request's string field: 1 to `max` bytes without NUL (ids may be
   integers, taken as their text).  *out is NULL when absent and allowed. */
static int field(json_t *req, const char *key, int required, size_t max, int id,
                 const char **out, tailor_error *err) {
  json_t *v = json_object_get(req, key);
  *out = NULL;
  if (!v || json_is_null(v)) {
    if (!required) return TAILOR_OK;
    return util_fail(err, TAILOR_EFIELD, key, "subscribe: missing field '%s'", key);
  }
  if (id && json_is_integer(v) && !(v = util_id_text(req, key, 0, v)))
    return util_fail(err, TAILOR_ENOMEM, NULL, "subscribe: out of memory");
  if (!json_is_string(v))
    return util_fail(err, TAILOR_EFIELD, key, "subscribe: field '%s' must be a string", key);
  size_t n = json_string_length(v);
  if (n == 0 || n > max || strlen(json_string_value(v)) != n)
    return util_fail(err, TAILOR_EFIELD, key,
                     "subscribe: field '%s' must be 1 to %zu bytes without NUL", key, max);
  *out = json_string_value(v);
  return TAILOR_OK;
}

int tailor_subscribe(tailor *t, const char *request_json, size_t len, char **json,
                     tailor_error *err) {
  if (!t || !request_json || !json)
    return util_fail(err, TAILOR_EINVAL, NULL, "subscribe: missing argument");
  *json = NULL;
  int rc = optin_on(t, "subscribe", err);
  if (rc) return rc;
  if (util_json_depth(request_json, len) > UTIL_MAX_JSON_DEPTH)
    return util_fail(err, TAILOR_EPARSE, NULL, "subscribe: JSON nested deeper than %d levels",
                     UTIL_MAX_JSON_DEPTH);
  json_error_t je;
  json_t *req = util_json_parse(request_json, len, &je);
  if (!json_is_object(req)) {
    json_decref(req);
    return util_fail(err, TAILOR_EPARSE, NULL, "subscribe: the request must be a JSON object");
  }
  static const char *const known[] = {"email", "customer", "anon", "purpose", "text", "source"};
  const char *key, *email_in, *customer, *anon, *purpose, *text, *source;
  json_t *v;
  json_object_foreach(req, key, v) {
    size_t i = 0;
    while (i < sizeof known / sizeof *known && strcmp(known[i], key)) i++;
    if (i == sizeof known / sizeof *known) {
      rc = util_fail(err, TAILOR_EFIELD, key,
                     "subscribe: unknown field '%.64s' (allowed: email, customer, anon, "
                     "purpose, text, source)",
                     key);
      goto done;
    }
  }
  if ((rc = field(req, "email", 1, 1024, 0, &email_in, err)) ||
      (rc = field(req, "customer", 0, DEF_MAX_ID_BYTES, 1, &customer, err)) ||
      (rc = field(req, "anon", 0, DEF_MAX_ID_BYTES, 1, &anon, err)) ||
      (rc = field(req, "purpose", 1, DEF_MAX_ID_BYTES, 0, &purpose, err)) ||
      (rc = field(req, "text", 1, DEF_OPTIN_MAX_TEXT_BYTES, 0, &text, err)) ||
      (rc = field(req, "source", 0, DEF_MAX_ID_BYTES, 0, &source, err)))
    goto done;
  if (!customer && !anon) {
    rc = util_fail(err, TAILOR_EFIELD, "anon",
                   "subscribe: say who asks: 'anon' (the visitor) or 'customer'");
    goto done;
  }
  /* The purpose is a key of the shop's ("newsletter"), shown in the email:
     not text a caller writes into the shop's email. */
  size_t plen = strlen(purpose), pok = plen >= 1 && plen <= 64;
  for (size_t i = 0; pok && i < plen; i++)
    pok = (purpose[i] >= 'a' && purpose[i] <= 'z') || (purpose[i] >= '0' && purpose[i] <= '9') ||
          purpose[i] == '_' || purpose[i] == '-';
  if (!pok) {
    rc = util_fail(err, TAILOR_EFIELD, "purpose",
                   "subscribe: field 'purpose' must be a key of 1 to 64 lower-case letters, "
                   "digits, '_' or '-' (\"newsletter\")");
    goto done;
  }
  char email[256];
  const char *why = email_problem(email_in, email, sizeof email);
  if (why) {
    rc = util_fail(err, TAILOR_EINVAL, "email", "subscribe: '%.80s' is not an email address: %s",
                   email_in, why);
    goto done;
  }
  /* The daily limit counts a mailbox: ada+1@ and ada+2@ go to ada@, and
     at Gmail a.da@ and ada@googlemail.com too (store.h). */
  char mailbox[256];
  size_t mlen = 0;
  const char *at = strchr(email, '@');
  int gmail = at && (!strcmp(at + 1, "gmail.com") || !strcmp(at + 1, "googlemail.com"));
  for (const char *c = email; at && c < at && *c != '+'; c++)
    if (!(gmail && *c == '.')) mailbox[mlen++] = *c;
  snprintf(mailbox + mlen, sizeof mailbox - mlen, "%s", gmail ? "@gmail.com" : at ? at : "");
  char sub[4 + OPTIN_SUB_HEX + 1];
  if (!customer) {
    subscriber_id(anon, sub);
    customer = sub;
  }
  /* The request's id and its signed link. */
  unsigned char rnd[OPTIN_ID_BYTES];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
    rc = util_fail(err, TAILOR_EIO, NULL, "subscribe: no randomness");
    goto done;
  }
  char id[2 * OPTIN_ID_BYTES + 1], token[2 * OPTIN_ID_BYTES + 64 + 24], sig[65];
  to_hex(rnd, sizeof rnd, id);
  int64_t now = util_now_ms(), expires_s = now / 1000 + t->cfg.optin_ttl_s;
  int m = snprintf(token, sizeof token, "%s.%lld", id, (long long)expires_s);
  if (sign(t, token, (size_t)m, sig)) {
    rc = util_fail(err, TAILOR_EIO, NULL, "subscribe: HMAC failed");
    goto done;
  }
  snprintf(token + m, sizeof token - (size_t)m, ".%s", sig);
  const char *url = t->cfg.optin_url;
  size_t link_len = strlen(url) + strlen(token) + 8;
  char *link = malloc(link_len);
  if (!link) {
    rc = util_fail(err, TAILOR_ENOMEM, NULL, "subscribe: out of memory");
    goto done;
  }
  snprintf(link, link_len, "%s%stoken=%s", url, strchr(url, '?') ? "&" : "?", token);
  int64_t expires = expires_s * 1000;
  json_t *row = json_pack("{ss ss ss? ss ss ss ss sI sI}", "id", id, "customer", customer, "anon",
                          anon, "email", email, "purpose", purpose, "text", text, "source",
                          source ? source : "api", "requested", (json_int_t)now, "expires",
                          (json_int_t)expires);
  /* The confirmation row names the request, never the address. */
  char when[32];
  json_t *vars = json_pack("{ss ss ss ss ss sI ss}", "consent", id, "link", link, "purpose",
                           purpose, "text", text, "source", source ? source : "api", "expires",
                           (json_int_t)expires, "expires_text",
                           util_iso_time(expires, when, sizeof when));
  char *vars_text = vars ? json_dumps(vars, JSON_COMPACT) : NULL;
  free(link);
  json_decref(vars);
  char outbox_key[sizeof ENG_OPTIN_KEY + sizeof id];
  snprintf(outbox_key, sizeof outbox_key, "%s%s", ENG_OPTIN_KEY, id);
  store_outbox_row ob = {outbox_key, customer, t->cfg.optin_channel, OPTIN_TEMPLATE, vars_text,
                         now};
  if (!row || !vars_text) {
    rc = util_fail(err, TAILOR_ENOMEM, NULL, "subscribe: out of memory");
  } else {
    pthread_mutex_lock(&t->write_mu);
    /* The day's limit, counted in the request's transaction under the
       writer's lock (and, on a shared store, a lock on the address), so
       two requests at once cannot both slip under it. */
    if (!(rc = store_begin(t->st, err))) {
      if (store_consents_since(t->st, mailbox, now - OPTIN_DAY_MS) >= DEF_OPTIN_MAX_PER_ADDRESS)
        rc = util_fail(err, TAILOR_EINVAL, "email",
                       "subscribe: %d confirmation emails went to this address in the last "
                       "24 hours; no more today",
                       DEF_OPTIN_MAX_PER_ADDRESS);
      if (!rc && !(rc = store_consent_add(t->st, row, err)) &&
          !(rc = store_outbox_add(t->st, &ob, NULL, err)))
        rc = store_commit(t->st, err);
      else
        store_rollback(t->st);
    }
    pthread_mutex_unlock(&t->write_mu);
  }
  json_decref(row);
  free(vars_text);
  if (!rc) {
    json_t *out = json_pack("{ss sI}", "status", "pending", "expires", (json_int_t)expires);
    *json = out ? json_dumps(out, JSON_COMPACT) : NULL;
    json_decref(out);
    if (!*json) rc = util_fail(err, TAILOR_ENOMEM, NULL, "subscribe: out of memory");
    else eng_log(t, TAILOR_LOG_INFO, "subscribe: confirmation email scheduled (%s)", outbox_key);
  }
done:
  json_decref(req);
  return rc;
}

/*
** The token's parts, checked: 32 hex digits of id, the expiry, 64 hex
** digits of signature, which must be the secret's.  TAILOR_OK with `id`
** and *expires filled, or why not.
*/
static int check_token(tailor *t, const char *token, char id[2 * OPTIN_ID_BYTES + 1],
                       int64_t *expires, tailor_error *err) {
  const char *dot1 = strchr(token, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
  int shape = dot1 && dot2 && dot1 - token == 2 * OPTIN_ID_BYTES && dot2 - dot1 > 1 &&
              dot2 - dot1 <= 13 && strlen(dot2 + 1) == 64;
  for (const char *p = token; shape && *p; p++)
    shape = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || *p == '.';
  for (const char *p = dot1 ? dot1 + 1 : token; shape && p < dot2; p++)
    shape = *p >= '0' && *p <= '9';
  if (!shape)
    return util_fail(err, TAILOR_EINVAL, "token",
                     "confirm: this is not a confirmation link (it must end in "
                     "token=<32 hex digits>.<expiry>.<64 hex digits>); copy the whole link "
                     "from the email");
  char sig[65];
  if (sign(t, token, (size_t)(dot2 - token), sig))
    return util_fail(err, TAILOR_EIO, NULL, "confirm: HMAC failed");
  if (CRYPTO_memcmp(sig, dot2 + 1, 64))
    return util_fail(err, TAILOR_EINVAL, "token",
                     "confirm: the link's signature does not match: it was not made by this "
                     "shop, or it was changed; nothing was stored");
  memcpy(id, token, 2 * OPTIN_ID_BYTES);
  id[2 * OPTIN_ID_BYTES] = '\0';
  *expires = strtoll(dot1 + 1, NULL, 10) * 1000;
  if (*expires <= util_now_ms()) {
    char when[32];
    return util_fail(err, TAILOR_EINVAL, "token",
                     "confirm: this link expired at %s; ask for a new one, nothing was stored",
                     util_iso_time(*expires, when, sizeof when));
  }
  return TAILOR_OK;
}

/* One event of the confirmation, from its JSON document (consumed). */
static int add_event(json_t *doc, ev *evs, size_t *n, tailor_error *err) {
  int rc = doc ? ev_from_json(doc, NULL, &evs[*n], err)
               : util_fail(err, TAILOR_ENOMEM, NULL, "confirm: out of memory");
  json_decref(doc);
  if (!rc) (*n)++;
  return rc;
}

int eng_confirm_check(tailor *t, const char *token, tailor_error *err) {
  char id[2 * OPTIN_ID_BYTES + 1];
  int64_t expires;
  if (!t || !token) return util_fail(err, TAILOR_EINVAL, NULL, "confirm: missing argument");
  int rc = optin_on(t, "confirm", err);
  return rc ? rc : check_token(t, token, id, &expires, err);
}

int tailor_confirm(tailor *t, const char *token, char **json, tailor_error *err) {
  if (!t || !token || !json)
    return util_fail(err, TAILOR_EINVAL, NULL, "confirm: missing argument");
  *json = NULL;
  char id[2 * OPTIN_ID_BYTES + 1];
  int64_t expires;
  int rc = optin_on(t, "confirm", err);
  if (rc || (rc = check_token(t, token, id, &expires, err))) return rc;
  store *s = eng_read_begin(t);
  tailor_error gerr = {0};
  json_t *req = store_consent_get(s, id, &gerr);
  json_t *profile = NULL;
  char *linked = NULL;
  const char *customer = NULL, *anon = NULL, *email = NULL;
  if (req) {
    customer = json_string_value(json_object_get(req, "customer"));
    anon = json_string_value(json_object_get(req, "anon"));
    email = json_string_value(json_object_get(req, "email"));
    profile = store_customer(s, customer);
    linked = anon ? store_identity(s, anon) : NULL;
  }
  eng_read_end(t);
  if (!req) return util_fail(err, gerr.code, "token", "confirm: %s", gerr.message);
  ev evs[3];
  size_t n = 0;
  char when[32];
  json_t *confirmed = json_object_get(req, "confirmed");
  if (json_is_integer(confirmed)) {
    rc = util_fail(err, TAILOR_EINVAL, "token",
                   "confirm: this link was used already: the address was confirmed at %s",
                   util_iso_time(json_integer_value(confirmed), when, sizeof when));
    goto done;
  }
  /* The profile as it is (an upsert's body replaces the stored one), with
     the address and its consent. */
  if (!profile) profile = json_object();
  json_object_set_new(profile, "id", json_string(customer));
  json_object_set_new(profile, "email", json_string(email));
  json_t *consent = json_object_get(profile, "consent");
  if (!json_is_object(consent)) {
    consent = json_object();
    json_object_set_new(profile, "consent", consent);
  }
  json_object_set_new(consent, "email", json_true());
  if ((rc = add_event(json_pack("{ss sO}", "type", "customer_upsert", "customer", profile), evs,
                      &n, err)))
    goto done;
  if (anon && !linked &&
      (rc = add_event(json_pack("{ss ss ss}", "type", "identify", "customer", customer, "anon",
                                anon),
                      evs, &n, err)))
    goto done;
  if ((rc = add_event(json_pack("{ss ss s{sb ss sO sO}}", "type", "consent", "customer", customer,
                                "props", "email", 1, "double_opt_in", id, "purpose",
                                json_object_get(req, "purpose"), "source",
                                json_object_get(req, "source")),
                      evs, &n, err)))
    goto done;
  ev *ptrs[3] = {&evs[0], &evs[1], &evs[2]};
  tailor_error ierr = {0};
  if ((rc = eng_ingest_confirmed(t, ptrs, n, id, &ierr)))
    util_fail(err, rc, ierr.field[0] ? ierr.field : NULL, "%s%s",
              strncmp(ierr.message, "confirm:", 8) ? "confirm: " : "", ierr.message);
  if (!rc) {
    json_t *out = json_pack("{sb ss ss sO sO sI}", "confirmed", 1, "customer", customer, "email",
                            email, "purpose", json_object_get(req, "purpose"), "source",
                            json_object_get(req, "source"), "at", (json_int_t)util_now_ms());
    *json = out ? json_dumps(out, JSON_COMPACT) : NULL;
    json_decref(out);
    if (!*json) rc = util_fail(err, TAILOR_ENOMEM, NULL, "confirm: out of memory");
    else eng_log(t, TAILOR_LOG_INFO, "confirm: an address was confirmed (%s%s)", ENG_OPTIN_KEY, id);
  }
done:
  for (size_t i = 0; i < n; i++) ev_clear(&evs[i]);
  json_decref(profile);
  json_decref(req);
  free(linked);
  return rc;
}

char *eng_optin_recipient(tailor *t, json_t *vars, char *why, size_t n) {
  const char *id = json_string_value(json_object_get(vars, "consent"));
  if (!id) {
    snprintf(why, n, "a confirmation row without its request");
    return NULL;
  }
  tailor_error e = {0};
  json_t *req = store_consent_get(eng_read_begin(t), id, &e);
  eng_read_end(t);
  char *to = NULL;
  if (!req)
    snprintf(why, n, "the request is gone (expired unconfirmed, or erased)");
  else if (json_is_integer(json_object_get(req, "confirmed")))
    snprintf(why, n, "the address was confirmed already");
  else if (json_integer_value(json_object_get(req, "expires")) <= util_now_ms())
    snprintf(why, n, "the link expired before the email could go out");
  else if (!(to = strdup(json_string_value(json_object_get(req, "email")))))
    snprintf(why, n, "out of memory");
  json_decref(req);
  return to;
}
