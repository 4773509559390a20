/*
** webhook.c: a delivery channel that POSTs each outbox row as JSON to a
** URL (an email service, a CRM, an ad platform's audience endpoint), with
** libcurl.  The receiver checks that it comes from this shop with the
** signature header, an HMAC-SHA256 of the exact body with a shared secret:
**
**   X-Tailor-Signature: sha256=<64 hex digits>
**   Idempotency-Key: <the row's key>     (the same for every retry)
**
** A 2xx answer is a delivery; 408, 425, 429 and 5xx, a timeout or a
** connection that fails are tried again later; any other answer is final
** (the row goes dead with the status).  Redirects are not followed.
** Configuration: docs/plugins.md.
*/
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tailor.h"
#include "tailor_plugin.h"

#define WEBHOOK_VERSION "1.0.0"
#define WEBHOOK_DEFAULT_CHANNEL "webhook"
#define WEBHOOK_DEFAULT_TIMEOUT_MS 10000
#define WEBHOOK_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define WEBHOOK_MIN_SECRET_BYTES 16 /* shorter secrets are guessable */
#define WEBHOOK_MAX_HEADERS 16

static const tailor_plugin_api *api;

typedef struct webhook {
  char *url, *secret, *ca_file;
  char *shown; /* the URL as messages show it (url_shown) */
  int verify;
  long timeout_ms, connect_timeout_ms;
  struct curl_slist *headers; /* the config's extra headers */
} webhook;

static void webhook_free(webhook *w) {
  if (!w) return;
  free(w->url);
  free(w->shown);
  if (w->secret) OPENSSL_cleanse(w->secret, strlen(w->secret));
  free(w->secret);
  free(w->ca_file);
  curl_slist_free_all(w->headers);
  free(w);
}

/* The URL as messages show it: scheme, host, port and path.  A URL may
   hold a secret in its userinfo or query (an api_key), and the messages go
   to the log and into the row's last_error, which `tailor outbox list` and
   the console show.  NULL with a reason if libcurl cannot parse it. */
static char *url_shown(const char *url, char *err, size_t errlen) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *out = NULL;
  CURLUcode rc = u ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
  if (!rc) rc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  if (!rc) rc = curl_url_get(u, CURLUPART_HOST, &host, 0);
  if (!rc) rc = curl_url_get(u, CURLUPART_PATH, &path, 0);
  if (!rc) {
    curl_url_get(u, CURLUPART_PORT, &port, 0); /* none given: the scheme's */
    size_t n = strlen(scheme) + strlen(host) + (port ? strlen(port) : 0) + strlen(path) + 5;
    if ((out = malloc(n)))
      snprintf(out, n, "%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "", path);
    else
      snprintf(err, errlen, "out of memory");
  } else {
    snprintf(err, errlen, "\"url\": %s", curl_url_strerror(rc));
  }
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_free(path);
  curl_url_cleanup(u);
  return out;
}

/* Discard the response body: only the status matters. */
static size_t sink(char *p, size_t size, size_t n, void *ud) { return size * n; }

/* The preview (plugin API 2): the body, which is the row as send posts
   it (not the URL: it may hold a secret). */
static int webhook_render(void *ud, const tailor_delivery *d, tailor_render_part_fn part,
                          void *ctx, char *err, size_t errlen) {
  (void)ud, (void)err, (void)errlen;
  part(ctx, "body", d->json, strlen(d->json));
  return 0;
}

static int webhook_send(void *ud, const tailor_delivery *d, char *err, size_t errlen) {
  webhook *w = ud;
  const char *body = d->json;
  size_t len = strlen(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  if (!HMAC(EVP_sha256(), w->secret, (int)strlen(w->secret), (const unsigned char *)body, len,
            mac, &maclen)) {
    snprintf(err, errlen, "cannot compute the HMAC");
    return TAILOR_SEND_RETRY;
  }
  static const char hex[] = "0123456789abcdef";
  char sig[32 + 2 * EVP_MAX_MD_SIZE] = "X-Tailor-Signature: sha256=";
  size_t at = strlen(sig);
  for (unsigned int i = 0; i < maclen; i++) {
    sig[at++] = hex[mac[i] >> 4];
    sig[at++] = hex[mac[i] & 15];
  }
  sig[at] = '\0';
  char attempt[64];
  /* Keys come from strategies: a line break must not start a header. */
  if (strpbrk(d->key, "\r\n")) {
    snprintf(err, errlen, "the key holds a line break");
    return TAILOR_SEND_FAIL;
  }
  /* The whole key, however long: cut short, two keys that differ only at
     the end would share a header, and a receiver that drops copies by it
     would drop a message. */
  size_t idemlen = sizeof "Idempotency-Key: " + strlen(d->key);
  char *idem = malloc(idemlen);
  if (!idem) {
    snprintf(err, errlen, "out of memory");
    return TAILOR_SEND_RETRY;
  }
  snprintf(idem, idemlen, "Idempotency-Key: %s", d->key);
  snprintf(attempt, sizeof attempt, "X-Tailor-Attempt: %d", d->attempt);
  struct curl_slist *h = NULL;
  for (struct curl_slist *x = w->headers; x; x = x->next) h = curl_slist_append(h, x->data);
  h = curl_slist_append(h, "Content-Type: application/json");
  h = curl_slist_append(h, sig);
  h = curl_slist_append(h, idem); /* copied */
  free(idem);
  h = curl_slist_append(h, attempt);
  h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
  CURL *c = curl_easy_init();
  if (!c || !h) {
    curl_slist_free_all(h);
    if (c) curl_easy_cleanup(c);
    snprintf(err, errlen, "out of memory");
    return TAILOR_SEND_RETRY;
  }
  char cerr[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_URL, w->url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "tailor-webhook/" WEBHOOK_VERSION);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, (long)w->verify);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, w->verify ? 2L : 0L);
  if (w->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, w->ca_file);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, w->connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, w->timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
  CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  if (rc != CURLE_OK) {
    snprintf(err, errlen, "%s: %s", w->shown, cerr[0] ? cerr : curl_easy_strerror(rc));
    return TAILOR_SEND_RETRY;
  }
  if (status >= 200 && status < 300) return TAILOR_SEND_OK;
  snprintf(err, errlen, "%s answered HTTP %ld", w->shown, status);
  int again = status == 408 || status == 425 || status == 429 || status >= 500;
  return again ? TAILOR_SEND_RETRY : TAILOR_SEND_FAIL;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void init_curl(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static int webhook_start(tailor_plugin *p, const char *config_json, void **state, char *err,
                         size_t errlen) {
  static const char *const known[] = {"url", "secret", "secret_env", "channel", "email",
                                      "headers", "timeout_ms", "connect_timeout_ms",
                                      "tls_verify", "ca_file"};
  json_t *cfg = json_loads(config_json, 0, NULL);
  webhook *w = calloc(1, sizeof *w);
  int rc = -1;
  if (!cfg || !w) {
    snprintf(err, errlen, "out of memory");
    goto done;
  }
  const char *key;
  json_t *v;
  json_object_foreach(cfg, key, v) {
    size_t i = 0;
    while (i < sizeof known / sizeof *known && strcmp(known[i], key)) i++;
    if (i == sizeof known / sizeof *known) {
      snprintf(err, errlen, "unknown config key '%s' (url, secret, secret_env, channel, "
               "email, headers, timeout_ms, connect_timeout_ms, tls_verify, ca_file)", key);
      goto done;
    }
  }
  const char *url = json_string_value(json_object_get(cfg, "url"));
  const char *secret = json_string_value(json_object_get(cfg, "secret"));
  const char *secret_env = json_string_value(json_object_get(cfg, "secret_env"));
  const char *channel = json_string_value(json_object_get(cfg, "channel"));
  const char *ca = json_string_value(json_object_get(cfg, "ca_file"));
  json_t *headers = json_object_get(cfg, "headers");
  json_t *to = json_object_get(cfg, "timeout_ms"), *cto = json_object_get(cfg, "connect_timeout_ms");
  if (!secret && secret_env) secret = getenv(secret_env);
  w->verify = !json_is_false(json_object_get(cfg, "tls_verify"));
  w->timeout_ms = json_is_integer(to) ? (long)json_integer_value(to) : WEBHOOK_DEFAULT_TIMEOUT_MS;
  w->connect_timeout_ms =
      json_is_integer(cto) ? (long)json_integer_value(cto) : WEBHOOK_DEFAULT_CONNECT_TIMEOUT_MS;
  if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
    snprintf(err, errlen, "\"url\" must be an http:// or https:// URL");
    goto done;
  }
  /* Said apart from a short secret: an unset variable (a unit file without
     the Environment= line) is the usual mistake, and "too short" hides it. */
  if (!secret && secret_env) {
    snprintf(err, errlen, "\"secret_env\" names the variable %s, which is not set",
             secret_env);
    goto done;
  }
  if (!secret || strlen(secret) < WEBHOOK_MIN_SECRET_BYTES) {
    snprintf(err, errlen, "a \"secret\" (or \"secret_env\", a variable holding it) of at "
             "least %d bytes is required to sign the requests", WEBHOOK_MIN_SECRET_BYTES);
    goto done;
  }
  if (w->timeout_ms <= 0 || w->connect_timeout_ms <= 0) {
    snprintf(err, errlen, "timeouts must be positive milliseconds");
    goto done;
  }
  if (headers && (!json_is_object(headers) || json_object_size(headers) > WEBHOOK_MAX_HEADERS)) {
    snprintf(err, errlen, "\"headers\" must be an object of at most %d names and strings",
             WEBHOOK_MAX_HEADERS);
    goto done;
  }
  json_object_foreach(headers, key, v) {
    const char *val = json_string_value(v);
    if (!val || strpbrk(key, "\r\n: ") || strpbrk(val, "\r\n") || !*key) {
      snprintf(err, errlen, "header '%s': a name without spaces or colons, and a one-line "
               "string value", key);
      goto done;
    }
    /* Allocated to its length: a value cut short (a long bearer token)
       would be refused by the endpoint, and every row go dead. */
    size_t n = strlen(key) + strlen(val) + 3;
    char *line = malloc(n);
    struct curl_slist *more = NULL;
    if (line) {
      snprintf(line, n, "%s: %s", key, val);
      more = curl_slist_append(w->headers, line); /* copies the line */
      free(line);
    }
    if (!more) {
      snprintf(err, errlen, "out of memory");
      goto done;
    }
    w->headers = more;
  }
  w->url = strdup(url);
  w->secret = strdup(secret);
  w->ca_file = ca ? strdup(ca) : NULL;
  pthread_once(&curl_once, init_curl);
  if (curl_init_rc != CURLE_OK) {
    snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(curl_init_rc));
    goto done;
  }
  if (!(w->shown = url_shown(url, err, errlen))) goto done;
  channel = channel ? channel : WEBHOOK_DEFAULT_CHANNEL;
  int flags = json_is_true(json_object_get(cfg, "email")) ? TAILOR_CHANNEL_EMAIL : 0;
  if (api->channel(p, channel, flags, webhook_send, w)) {
    snprintf(err, errlen, "cannot register channel '%s' (taken by another plugin?)", channel);
    goto done;
  }
  if (api->version >= 2 && api->channel_render(p, channel, webhook_render, w)) {
    snprintf(err, errlen, "cannot register the preview of channel '%s'", channel);
    goto done;
  }
  char msg[300];
  snprintf(msg, sizeof msg, "channel '%s' posts to %s", channel, w->shown);
  api->log(p, TAILOR_PLUGIN_LOG_INFO, msg);
  *state = w;
  w = NULL;
  rc = 0;
done:
  webhook_free(w);
  json_decref(cfg);
  return rc;
}

static void webhook_stop(void *state) { webhook_free(state); }

static const tailor_plugin_desc desc = {
    TAILOR_PLUGIN_API_VERSION, sizeof(tailor_plugin_desc), "webhook", WEBHOOK_VERSION,
    "POSTs outbox rows as JSON, signed with HMAC-SHA256", webhook_start, webhook_stop,
};

TAILOR_PLUGIN_EXPORT const tailor_plugin_desc *tailor_plugin_init(
    int host_api_version, const tailor_plugin_api *host) {
  if (host_api_version < TAILOR_PLUGIN_API_VERSION) return NULL;
  api = host;
  return &desc;
}
