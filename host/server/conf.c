/*
** conf.c: the "server" section of the config file: listen addresses,
** tokens and roles, CORS origins, limits.  Strict like the engine's
** config: an unknown key or a wrong type is an error naming the key.
*/
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "server/proto.h"
#include "server/server.h"

/* Tokens shorter than this are refused: they are guessable. */
#define SRV_MIN_TOKEN_BYTES DEF_MIN_TOKEN_BYTES

static const struct int_key {
  const def_row *def; /* key "server.<name>", default, doc */
  long lo, hi;
  size_t off;
} int_keys[] = {
#define SRV_CONF_ROW_(f, name, lo, hi) \
  {&def_rows[DEFI_##name], lo, hi, offsetof(srv_conf, f)},
    SRV_CONF_INTS(SRV_CONF_ROW_)
#undef SRV_CONF_ROW_
};
#define N_INT_KEYS (sizeof int_keys / sizeof *int_keys)

/* The key's name in the "server" section: its row's key without "server.". */
static const char *int_key_name(const struct int_key *k) {
  return k->def->key + sizeof "server." - 1;
}

void srv_conf_each(void (*fn)(void *ud, const char *key, long def, const char *doc),
                   void *ud) {
  for (size_t i = 0; i < N_INT_KEYS; i++)
    fn(ud, int_key_name(&int_keys[i]), int_keys[i].def->value, int_keys[i].def->doc);
}

void srv_conf_free(srv_conf *c) {
  if (!c) return;
  free(c->listen);
  free(c->unix_path);
  for (size_t i = 0; i < c->n_tokens; i++) free(c->tokens[i].token);
  free(c->tokens);
  for (size_t i = 0; i < c->n_cors; i++) free(c->cors[i]);
  free(c->cors);
  free(c->static_dir);
  free(c->customer_secret);
  memset(c, 0, sizeof *c);
}

/* "host:port" or "[v6]:port" into c->host and c->port. */
static int parse_listen(srv_conf *c, tailor_error *err) {
  const char *s = c->listen, *colon;
  size_t hl;
  if (!*s) return 0;
  if (*s == '[') {
    const char *close = strchr(s, ']');
    if (!close || close[1] != ':')
      return util_fail(err, TAILOR_EINVAL, "server.listen",
                       "server.listen: '%s' is not [address]:port", s);
    s++;
    hl = (size_t)(close - s);
    colon = close + 1;
  } else {
    if (!(colon = strrchr(s, ':')))
      return util_fail(err, TAILOR_EINVAL, "server.listen",
                       "server.listen: '%s' has no port (host:port)", s);
    hl = (size_t)(colon - s);
  }
  if (hl == 0 || hl >= sizeof c->host)
    return util_fail(err, TAILOR_EINVAL, "server.listen", "server.listen: bad address in '%s'",
                     c->listen);
  memcpy(c->host, s, hl);
  c->host[hl] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (!colon[1] || *end || port < 0 || port > 65535)
    return util_fail(err, TAILOR_EINVAL, "server.listen",
                     "server.listen: bad port in '%s' (0 to 65535; 0 picks a free one)", c->listen);
  c->port = (int)port;
  unsigned char buf[16];
  if (inet_pton(AF_INET, c->host, buf) != 1 && inet_pton(AF_INET6, c->host, buf) != 1)
    return util_fail(err, TAILOR_EINVAL, "server.listen",
                     "server.listen: '%s' is not a numeric IPv4 or IPv6 address "
                     "(use 127.0.0.1, not a host name)",
                     c->host);
  return 0;
}

static int parse_tokens(srv_conf *c, const json_t *v, tailor_error *err) {
  if (!json_is_array(v))
    return util_fail(err, TAILOR_EINVAL, "server.tokens", "server.tokens: expected an array");
  size_t count = json_array_size(v);
  if (count && !(c->tokens = calloc(count, sizeof *c->tokens)))
    return util_fail(err, TAILOR_ENOMEM, "server.tokens", "server.tokens: out of memory");
  for (size_t i = 0; i < count; i++) {
    json_t *t = json_array_get(v, i);
    char where[48];
    snprintf(where, sizeof where, "server.tokens[%zu]", i);
    const char *key;
    json_t *x;
    if (!json_is_object(t))
      return util_fail(err, TAILOR_EINVAL, where, "%s: expected {\"token\": ..., \"role\": ...}",
                       where);
    json_object_foreach(t, key, x) {
      if (strcmp(key, "token") && strcmp(key, "role"))
        return util_fail(err, TAILOR_EINVAL, where, "%s: unknown key '%s' (token, role)", where,
                         key);
    }
    const char *tok = json_string_value(json_object_get(t, "token"));
    const char *role = json_string_value(json_object_get(t, "role"));
    if (!tok || strlen(tok) < SRV_MIN_TOKEN_BYTES || strlen(tok) > SRV_MAX_ID_BYTES)
      return util_fail(err, TAILOR_EINVAL, where,
                       "%s.token: a string of %d to %d bytes is required", where,
                       SRV_MIN_TOKEN_BYTES, SRV_MAX_ID_BYTES);
    int r = srv_role_lookup(role);
    if (r < 0)
      return util_fail(err, TAILOR_EINVAL, where,
                       "%s.role: '%s' is not a role (storefront, admin, ingest, metrics)", where,
                       role ? role : "(missing)");
    for (size_t j = 0; j < c->n_tokens; j++)
      if (!strcmp(c->tokens[j].token, tok))
        return util_fail(err, TAILOR_EINVAL, where, "%s: the same token is listed twice", where);
    if (!(c->tokens[c->n_tokens].token = strdup(tok)))
      return util_fail(err, TAILOR_ENOMEM, where, "%s: out of memory", where);
    c->tokens[c->n_tokens++].role = r;
  }
  return 0;
}

static int parse_cors(srv_conf *c, const json_t *v, tailor_error *err) {
  if (!json_is_array(v))
    return util_fail(err, TAILOR_EINVAL, "server.cors_origins",
                     "server.cors_origins: expected an array of origins");
  size_t count = json_array_size(v);
  if (count && !(c->cors = calloc(count, sizeof *c->cors)))
    return util_fail(err, TAILOR_ENOMEM, "server.cors_origins",
                     "server.cors_origins: out of memory");
  for (size_t i = 0; i < count; i++) {
    const char *o = json_string_value(json_array_get(v, i));
    if (!o || !*o)
      return util_fail(err, TAILOR_EINVAL, "server.cors_origins",
                       "server.cors_origins[%zu]: expected an origin string", i);
    if (!(c->cors[c->n_cors++] = strdup(o)))
      return util_fail(err, TAILOR_ENOMEM, "server.cors_origins",
                       "server.cors_origins: out of memory");
  }
  return 0;
}

/* Every key of the section, for the error that names an unknown one. */
static void key_list(char *buf, size_t n) {
  int k = snprintf(buf, n, "listen, unix, tokens, cors_origins, static_dir, customer_secret");
  for (size_t i = 0; i < N_INT_KEYS && k > 0 && (size_t)k < n; i++)
    k += snprintf(buf + k, n - (size_t)k, ", %s", int_key_name(&int_keys[i]));
}

int srv_conf_parse(const json_t *section, srv_conf *c, tailor_error *err) {
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < N_INT_KEYS; i++)
    *(long *)((char *)c + int_keys[i].off) = int_keys[i].def->value;
  int rc = 0;
  const char *listen = SRV_DEFAULT_LISTEN;
  if (section && !json_is_object(section)) {
    rc = util_fail(err, TAILOR_EINVAL, "server", "server: expected an object");
    goto done;
  }
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)section, key, v) {
    if (!strcmp(key, "listen")) {
      if (!json_is_string(v))
        rc = util_fail(err, TAILOR_EINVAL, "server.listen",
                       "server.listen: expected \"host:port\"");
      else
        listen = json_string_value(v);
    } else if (!strcmp(key, "unix")) {
      if (json_is_null(v)) continue;
      if (!json_is_string(v) || !json_string_length(v))
        rc = util_fail(err, TAILOR_EINVAL, "server.unix", "server.unix: expected a socket path");
      else if (!(c->unix_path = strdup(json_string_value(v))))
        rc = util_fail(err, TAILOR_ENOMEM, "server.unix", "server.unix: out of memory");
    } else if (!strcmp(key, "tokens")) {
      rc = parse_tokens(c, v, err);
    } else if (!strcmp(key, "cors_origins")) {
      rc = parse_cors(c, v, err);
    } else if (!strcmp(key, "customer_secret")) {
      if (json_is_null(v)) continue;
      if (!json_is_string(v) || json_string_length(v) < 16)
        rc = util_fail(err, TAILOR_EINVAL, "server.customer_secret",
                       "server.customer_secret: expected a secret of at least 16 bytes");
      else if (!(c->customer_secret = strdup(json_string_value(v))))
        rc = util_fail(err, TAILOR_ENOMEM, "server.customer_secret",
                       "server.customer_secret: out of memory");
    } else if (!strcmp(key, "static_dir")) {
      struct stat st;
      if (json_is_null(v)) continue;
      if (!json_is_string(v) || !json_string_length(v))
        rc = util_fail(err, TAILOR_EINVAL, "server.static_dir",
                       "server.static_dir: expected a folder path");
      else if (stat(json_string_value(v), &st) || !S_ISDIR(st.st_mode))
        rc = util_fail(err, TAILOR_EINVAL, "server.static_dir",
                       "server.static_dir: '%s' is not a folder", json_string_value(v));
      else if (!(c->static_dir = strdup(json_string_value(v))))
        rc = util_fail(err, TAILOR_ENOMEM, "server.static_dir", "server.static_dir: out of memory");
    } else {
      size_t i = 0;
      char field[64];
      snprintf(field, sizeof field, "server.%s", key);
      while (i < N_INT_KEYS && strcmp(int_key_name(&int_keys[i]), key)) i++;
      if (i == N_INT_KEYS) {
        char keys[512];
        key_list(keys, sizeof keys);
        rc = util_fail(err, TAILOR_EINVAL, field, "server.%s: unknown key (%s)", key, keys);
      } else if (!json_is_integer(v) || json_integer_value(v) < int_keys[i].lo ||
                 json_integer_value(v) > int_keys[i].hi) {
        rc = util_fail(err, TAILOR_EINVAL, field, "server.%s: expected an integer from %ld to %ld",
                       key, int_keys[i].lo, int_keys[i].hi);
      } else {
        *(long *)((char *)c + int_keys[i].off) = (long)json_integer_value(v);
      }
    }
    if (rc) goto done;
  }
  if (!(c->listen = strdup(listen))) {
    rc = util_fail(err, TAILOR_ENOMEM, "server.listen", "server.listen: out of memory");
    goto done;
  }
  rc = parse_listen(c, err);
done:
  if (rc) srv_conf_free(c);
  return rc;
}

int srv_conf_override(srv_conf *c, const char *listen, const char *unix_path,
                      tailor_error *err) {
  if (unix_path) {
    char *u = strdup(unix_path);
    if (!u) return util_fail(err, TAILOR_ENOMEM, "--unix", "--unix: out of memory");
    free(c->unix_path);
    c->unix_path = *u ? u : NULL;
    if (!*u) free(u);
  }
  if (listen) {
    char *l = strdup(listen);
    if (!l) return util_fail(err, TAILOR_ENOMEM, "--listen", "--listen: out of memory");
    free(c->listen);
    c->listen = l;
    return parse_listen(c, err);
  }
  return 0;
}

int srv_conf_load(const char *path, srv_conf *c, json_t **engine, tailor_error *err) {
  json_t *all = NULL;
  *engine = NULL;
  if (path) {
    if (!(all = util_json_file(path, err))) return err->code;
    if (!json_is_object(all)) {
      json_decref(all);
      return util_fail(err, TAILOR_EINVAL, NULL, "%s: the configuration must be a JSON object",
                       path);
    }
  } else {
    all = json_object();
  }
  json_t *section = json_incref(json_object_get(all, "server"));
  json_object_del(all, "server");
  tailor_error why = {0};
  int rc = srv_conf_parse(section, c, &why);
  json_decref(section);
  if (rc) {
    json_decref(all);
    return util_fail(err, rc, why.field[0] ? why.field : NULL, "%s: %s", path ? path : "config",
                     why.message);
  }
  *engine = all;
  return 0;
}

/* Whether a numeric address is a loopback one (127.0.0.0/8, ::1). */
static int is_loopback(const char *host) {
  unsigned char a[16];
  if (inet_pton(AF_INET, host, a) == 1) return a[0] == 127;
  if (inet_pton(AF_INET6, host, a) == 1) {
    static const unsigned char one[16] = {[15] = 1};
    return !memcmp(a, one, 16);
  }
  return 0;
}

int srv_conf_check(const srv_conf *c, int insecure, tailor_error *err) {
  if (c->n_tokens) return 0;
  if (!insecure)
    return util_fail(err, TAILOR_EINVAL, "server.tokens",
                     "no tokens configured (server.tokens); every request would be "
                     "refused.  Add tokens, or pass --insecure to let every client "
                     "act as admin on a loopback address");
  if (*c->listen && !is_loopback(c->host))
    return util_fail(err, TAILOR_EINVAL, "--insecure",
                     "--insecure without tokens serves loopback addresses only; "
                     "'%s' is not one",
                     c->host);
  return 0;
}
