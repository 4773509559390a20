/*
** util.c: clocks, error filling, UTF-8 checking, whole-file reads.
*/
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
  size_t bad;
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
  if (!util_utf8_valid(err->message, strlen(err->message), &bad))
    err->message[bad] = '\0';
  return code;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
   U+10FFFF.  The ranges of the second byte do all three. */
int util_utf8_valid(const char *s, size_t len, size_t *bad_at) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    unsigned c = p[i], lo = 0x80, hi = 0xBF;
    size_t n;
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
