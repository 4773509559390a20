/*
** flat.c: the flat-object scanner (see flat.h).
*/
#include "core/flat.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* A string without escapes or control characters from p (at its '"'):
   its contents in *s, *n; returns past the closing quote, or NULL. */
static const char *string_at(const char *p, const char *end, const char **s, size_t *n) {
  const char *q = ++p;
  while (q < end && *q != '"') {
    if (*q == '\\' || (unsigned char)*q < 0x20) return NULL;
    q++;
  }
  if (q >= end) return NULL;
  *s = p;
  *n = (size_t)(q - p);
  return q + 1;
}

/* A JSON number at p (RFC 8259's grammar); returns past it, or NULL. */
static const char *number_at(const char *p, const char *end) {
  if (p < end && *p == '-') p++;
  if (p >= end) return NULL;
  if (*p == '0') {
    p++;
  } else if (*p >= '1' && *p <= '9') {
    while (p < end && *p >= '0' && *p <= '9') p++;
  } else {
    return NULL;
  }
  if (p < end && *p == '.') {
    const char *d = ++p;
    while (p < end && *p >= '0' && *p <= '9') p++;
    if (p == d) return NULL;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    const char *d = p;
    while (p < end && *p >= '0' && *p <= '9') p++;
    if (p == d) return NULL;
  }
  return p;
}

size_t flat_object(const char *s, size_t len, int nested, flat_member *m, size_t *n) {
  const char *end = s + len, *p = skip_ws(s, end);
  flat_member scratch[FLAT_MAX_MEMBERS];
  size_t k = 0;
  if (!m) m = scratch;
  *n = 0;
  if (p >= end || *p != '{') return 0;
  p = skip_ws(p + 1, end);
  if (p < end && *p == '}') return (size_t)(p + 1 - s);
  for (;;) {
    if (k == FLAT_MAX_MEMBERS || p >= end || *p != '"') return 0;
    flat_member *x = &m[k];
    if (!(p = string_at(p, end, &x->key, &x->key_len))) return 0;
    for (size_t i = 0; i < k; i++) /* a repeated key: the parser's to settle */
      if (m[i].key_len == x->key_len && !memcmp(m[i].key, x->key, x->key_len)) return 0;
    p = skip_ws(p, end);
    if (p >= end || *p != ':') return 0;
    p = skip_ws(p + 1, end);
    if (p >= end) return 0;
    if (*p == '"') {
      x->kind = 's';
      if (!(p = string_at(p, end, &x->val, &x->val_len))) return 0;
    } else if (*p == '{' && nested) {
      size_t inner, took = flat_object(p, (size_t)(end - p), 0, NULL, &inner);
      if (!took) return 0;
      x->kind = 'o';
      x->val = p;
      x->val_len = took;
      p += took;
    } else {
      x->kind = 'n';
      x->val = p;
      if (!(p = number_at(p, end))) return 0;
      x->val_len = (size_t)(p - x->val);
    }
    k++;
    p = skip_ws(p, end);
    if (p < end && *p == ',') {
      p = skip_ws(p + 1, end);
      continue;
    }
    if (p < end && *p == '}') break;
    return 0;
  }
  *n = k;
  return (size_t)(p + 1 - s);
}

int flat_key_is(const flat_member *m, const char *k) {
  size_t n = strlen(k);
  return m->key_len == n && !memcmp(m->key, k, n);
}

int flat_number(const flat_member *m, double *x, int *integral) {
  char buf[40];
  size_t digits = 0;
  int whole = 1;
  /* no sign: -0 would read as 0 elsewhere; a negative amount or time is
     the parser's to refuse */
  if (m->kind != 'n' || m->val_len >= sizeof buf || m->val[0] == '-') return -1;
  for (size_t i = 0; i < m->val_len; i++) {
    char c = m->val[i];
    if (c >= '0' && c <= '9') digits++;
    else if (c == '.' || c == 'e' || c == 'E') whole = 0;
  }
  /* short plain decimals ("29.95") only: no exponent */
  if (digits > 15 || memchr(m->val, 'e', m->val_len) || memchr(m->val, 'E', m->val_len))
    return -1;
  memcpy(buf, m->val, m->val_len);
  buf[m->val_len] = '\0';
  *x = strtod(buf, NULL);
  if (integral) *integral = whole;
  return 0;
}

/*
** The tree of a flat text, made without a JSON parser (which reads a
** character at a time, and was most of a small decision's cost): members in
** their order, a number an integer when it has no fraction or exponent,
** else the real strtod reads: json_loadb's tree.  Any other text (an
** escape, an array, a repeated key, a long number, bytes that are not
** UTF-8, anything after the object) gets NULL, for the parser, whose
** reading and messages stand.  The fuzz target and test_request compare
** this with json_loadb on every text it takes.
*/
json_t *flat_tree_of(const flat_member *m, size_t n) {
  json_t *obj = json_object();
  for (size_t i = 0; obj && i < n; i++) {
    json_t *v = NULL;
    double x;
    int whole;
    size_t k;
    flat_member in[FLAT_MAX_MEMBERS];
    if (m[i].kind == 's')
      v = json_stringn_nocheck(m[i].val, m[i].val_len);
    else if (m[i].kind == 'n')
      v = flat_number(&m[i], &x, &whole) ? NULL : whole ? json_integer((json_int_t)x) : json_real(x);
    else if (flat_object(m[i].val, m[i].val_len, 0, in, &k) == m[i].val_len)
      v = flat_tree_of(in, k);
    if (!v || json_object_setn_new_nocheck(obj, m[i].key, m[i].key_len, v)) {
      json_decref(obj);
      return NULL;
    }
  }
  return obj;
}

size_t flat_text(const char *text, size_t len, flat_member *m, size_t *n) {
  size_t took = flat_object(text, len, 1, m, n);
  if (!took || skip_ws(text + took, text + len) != text + len ||
      !util_utf8_valid(text, len, NULL))
    return 0;
  return took;
}

json_t *flat_tree(const char *text, size_t len) {
  flat_member m[FLAT_MAX_MEMBERS];
  size_t n;
  return flat_text(text, len, m, &n) ? flat_tree_of(m, n) : NULL;
}
