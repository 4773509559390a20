/*
** util.c: clocks, error filling, UTF-8 checking, whole-file reads, folder syncs.
*/
#include "core/util.h"

#include "core/flat.h"

#include <errno.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <yajl/yajl_parse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

int64_t util_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *util_iso_time(int64_t ms, char *buf, size_t n) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  if (!gmtime_r(&s, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
    snprintf(buf, n, "%lld", (long long)ms);
  return buf;
}

uint64_t util_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int util_fail(tailor_error *err, int code, const char *field, const char *fmt,
              ...) {
  if (!err) return code;
  err->code = code;
  snprintf(err->field, sizeof err->field, "%s", field ? field : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  /* Messages echo input: keep them one line, and valid UTF-8 even when the
     cut at sizeof message fell inside a character. */
  for (char *p = err->message; *p; p++)
    if ((unsigned char)*p < 0x20) *p = ' ';
  util_utf8_cut(err->message);
  return code;
}

int util_hex_digit(int c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

char *util_utf8_cut(char *s) {
  size_t bad;
  if (!util_utf8_valid(s, strlen(s), &bad)) s[bad] = '\0';
  return s;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
   U+10FFFF.  The ranges of the second byte do all three. */
int util_utf8_valid(const char *s, size_t len, size_t *bad_at) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    unsigned c = p[i], lo = 0x80, hi = 0xBF;
    size_t n;
    uint64_t w; /* ASCII eight bytes at a time */
    if (len - i >= 8 && (memcpy(&w, p + i, 8), !(w & 0x8080808080808080u))) {
      i += 8;
      continue;
    }
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c >= 0xE0 && c <= 0xEF) n = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) n = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else break;
    if (len - i <= n || p[i + 1] < lo || p[i + 1] > hi) break;
    if ((n > 1 && (p[i + 2] & 0xC0) != 0x80) || (n > 2 && (p[i + 3] & 0xC0) != 0x80)) break;
    i += n + 1;
  }
  if (i < len && bad_at) *bad_at = i;
  return i == len;
}

const char *util_dir_of(const char *path, char *buf, size_t n) {
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(buf, n, ".");
  else snprintf(buf, n, "%.*s", slash == path ? 1 : (int)(slash - path), path);
  return buf;
}

int util_sync_dir_of(const char *path) {
  char dir[4096];
  int fd = open(util_dir_of(path, dir, sizeof dir), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

char *util_read_stream(FILE *f, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n - 1, f);
    if (n < cap - 1) break;
    char *more = realloc(buf, cap * 2);
    if (!more) {
      free(buf);
      errno = ENOMEM;
      return NULL;
    }
    buf = more;
    cap *= 2;
  }
  if (buf && ferror(f)) {
    free(buf);
    errno = EIO;
    return NULL;
  }
  if (!buf) return NULL;
  buf[n] = '\0';
  if (len) *len = n;
  return buf;
}

char *util_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = util_read_stream(f, len);
  fclose(f);
  return buf;
}

int util_json_depth(const char *s, size_t len) {
  int depth = 0, most = 0, in_str = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (in_str) {
      if (c == '\\') i++;
      else if (c == '"') in_str = 0;
    } else if (c == '"') {
      in_str = 1;
    } else if (c == '[' || c == '{') {
      if (++depth > most) most = depth;
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
  return most;
}

json_t *util_id_text(json_t *parent, const char *key, size_t index, json_t *v) {
  char num[32];
  if (!json_is_integer(v)) return v;
  snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  if (!(v = json_string(num))) return NULL;
  if (key ? json_object_set_new(parent, key, v) : json_array_set_new(parent, index, v))
    return NULL;
  return v;
}

void util_sha256_hex(const char *s, size_t n, char out[65]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(s, n, md, &len, EVP_sha256(), NULL);
  for (unsigned i = 0; i < 32; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  out[64] = '\0';
}

/*
** util_json_parse: yajl's callbacks build the jansson tree.  A value is put
** into its container as it starts (a container is then filled in place),
** so only one key waits at a time.  What yajl refuses, or what jansson
** would refuse though yajl takes it (a scalar at the top, a NUL in a
** string, an escaped UTF-16 surrogate, UTF-8 that is not strictly so),
** goes to json_loadb: its verdict and its error message stand, and the
** rare failing input pays for a second parse.
*/
typedef struct jbuild {
  json_t *stack[UTIL_MAX_JSON_DEPTH + 2];
  int depth;
  json_t *root;
  char *key; /* the waiting key: keybuf, or a longer one on the heap */
  size_t key_len, key_cap;
  char keybuf[128];
} jbuild;

static int jb_put(jbuild *b, json_t *v) {
  if (!v) return 0;
  if (!b->depth) {
    if (!json_is_object(v) && !json_is_array(v)) {
      json_decref(v);
      return 0;
    }
    b->root = v;
    return 1;
  }
  json_t *top = b->stack[b->depth - 1];
  if (json_is_object(top)) return !json_object_setn_new_nocheck(top, b->key, b->key_len, v);
  return !json_array_append_new(top, v);
}

static int jb_open(jbuild *b, json_t *v) {
  if (!v || b->depth == UTIL_MAX_JSON_DEPTH + 1) {
    json_decref(v);
    return 0;
  }
  json_incref(v); /* the container holds one reference, the stack another */
  if (!jb_put(b, v)) {
    json_decref(v);
    return 0;
  }
  b->stack[b->depth++] = v;
  return 1;
}

static int jb_null(void *u) { return jb_put(u, json_null()); }
static int jb_bool(void *u, int v) { return jb_put(u, json_boolean(v)); }
static int jb_int(void *u, long long v) { return jb_put(u, json_integer(v)); }
static int jb_real(void *u, double v) { return jb_put(u, json_real(v)); }
static int jb_str(void *u, const unsigned char *s, size_t n) {
  return !memchr(s, 0, n) && jb_put(u, json_stringn_nocheck((const char *)s, n));
}
static int jb_map(void *u) { return jb_open(u, json_object()); }
static int jb_array(void *u) { return jb_open(u, json_array()); }
static int jb_close(void *u) {
  jbuild *b = u;
  json_decref(b->stack[--b->depth]);
  return 1;
}
static int jb_key(void *u, const unsigned char *s, size_t n) {
  jbuild *b = u;
  if (memchr(s, 0, n)) return 0;
  if (n + 1 > b->key_cap) {
    char *k = malloc(n + 1);
    if (!k) return 0;
    if (b->key != b->keybuf) free(b->key);
    b->key = k;
    b->key_cap = n + 1;
  }
  memcpy(b->key, s, n);
  b->key[n] = '\0';
  b->key_len = n;
  return 1;
}

static const yajl_callbacks jb_callbacks = {jb_null, jb_bool, jb_int,   jb_real,  NULL,    jb_str,
                                            jb_map,  jb_key,  jb_close, jb_array, jb_close};

/* Whether the text escapes a UTF-16 surrogate (\\uD800 to \\uDFFF): yajl
   lets a lone one through as '?', jansson refuses it, so such a text is
   jansson's to read. */
static int escapes_surrogate(const char *s, size_t len) {
  const char *end = s + len;
  for (const char *p = memchr(s, '\\', len); p && p + 1 < end;
       p = memchr(p + 2, '\\', (size_t)(end - p - 2))) /* past the escaped character */
    if (p[1] == 'u' && p + 3 < end && (p[2] | 0x20) == 'd' && strchr("89abcdef", p[3] | 0x20))
      return 1;
  return 0;
}

json_t *util_json_parse(const char *buf, size_t len, json_error_t *err) {
  json_t *flat = flat_tree(buf, len); /* the usual request: no parser at all */
  if (flat) return flat;
  /* yajl's UTF-8 check lets overlong forms and encoded surrogates by */
  if (escapes_surrogate(buf, len) || !util_utf8_valid(buf, len, NULL))
    return json_loadb(buf, len, 0, err);
  jbuild b;
  b.depth = 0;
  b.root = NULL;
  b.key = b.keybuf;
  b.key_len = 0;
  b.key_cap = sizeof b.keybuf;
  yajl_handle h = yajl_alloc(&jb_callbacks, NULL, &b);
  yajl_status st = h ? yajl_parse(h, (const unsigned char *)buf, len) : yajl_status_error;
  if (st == yajl_status_ok) st = yajl_complete_parse(h);
  if (h) yajl_free(h);
  if (b.key != b.keybuf) free(b.key);
  if (st == yajl_status_ok && b.root) return b.root;
  while (b.depth) json_decref(b.stack[--b.depth]);
  json_decref(b.root);
  return json_loadb(buf, len, 0, err);
}

json_t *util_json_file(const char *path, tailor_error *err) {
  json_error_t je;
  struct stat st;
  if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
    util_fail(err, TAILOR_EINVAL, NULL, "%s: %s", path, strerror(EISDIR));
    return NULL;
  }
  errno = 0;
  json_t *j = json_load_file(path, 0, &je);
  int e = errno;
  if (!j && je.line < 1)
    util_fail(err, TAILOR_EINVAL, NULL, "%s: %s", path, e ? strerror(e) : je.text);
  else if (!j)
    util_fail(err, TAILOR_EINVAL, NULL, "%s:%d:%d: %s", path, je.line, je.column, je.text);
  return j;
}
