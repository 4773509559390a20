/*
** template.c: compiling and rendering the smtp plugin's templates (the
** language is described in template.h).  A template compiles to a tree of
** nodes (text, variable, section); rendering walks it with a stack of
** scopes, the innermost first, as Mustache does.
*/
#include "template.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { N_TEXT, N_VAR, N_SECTION, N_INVERTED };
enum { F_NONE, F_MONEY, F_URL };

typedef struct node {
  int kind;
  char *text;          /* N_TEXT: the bytes; otherwise the path; owned */
  size_t len;
  int filter;          /* N_VAR: F_* */
  int line;            /* where a section opened, for errors */
  struct node *kids;   /* sections: the body; owned */
  size_t n_kids, cap;
} node;

struct tpl {
  node root;
};

static void node_free(node *n) {
  for (size_t i = 0; i < n->n_kids; i++) node_free(&n->kids[i]);
  free(n->kids);
  free(n->text);
}

void tpl_free(tpl *t) {
  if (!t) return;
  node_free(&t->root);
  free(t);
}

static node *add_kid(node *parent, int kind, const char *text, size_t len) {
  if (parent->n_kids == parent->cap) {
    size_t cap = parent->cap ? parent->cap * 2 : 8;
    node *more = realloc(parent->kids, cap * sizeof *more);
    if (!more) return NULL;
    parent->kids = more;
    parent->cap = cap;
  }
  node *n = &parent->kids[parent->n_kids];
  memset(n, 0, sizeof *n);
  if (!(n->text = malloc(len + 1))) return NULL;
  memcpy(n->text, text, len);
  n->text[len] = '\0';
  n->len = len;
  n->kind = kind;
  parent->n_kids++;
  return n;
}

/*
** Compiling.
*/
typedef struct compiler {
  const char *src, *name;
  size_t len;
  char *err;
  size_t errlen;
} compiler;

static int line_of(const compiler *c, size_t off) {
  int line = 1;
  for (size_t i = 0; i < off && i < c->len; i++) line += c->src[i] == '\n';
  return line;
}

__attribute__((format(printf, 3, 4))) static int fail(compiler *c, size_t off,
                                                     const char *fmt, ...) {
  char msg[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(c->err, c->errlen, "%s:%d: %s", c->name, line_of(c, off), msg);
  return -1;
}

static int is_space(char ch) { return ch == ' ' || ch == '\t'; }

/* A path: names of letters, digits, _ - @ joined by dots; or ".". */
static int valid_path(const char *p, size_t n) {
  if (n == 1 && *p == '.') return 1;
  if (!n || p[0] == '.' || p[n - 1] == '.') return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = p[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '_' || ch == '-' || ch == '@' || ch == '.'))
      return 0;
    if (ch == '.' && p[i + 1] == '.') return 0;
  }
  return 1;
}

static void trim(const char **s, size_t *n) {
  while (*n && is_space(**s)) (*s)++, (*n)--;
  while (*n && is_space((*s)[*n - 1])) (*n)--;
}

static int add_text(compiler *c, node *parent, size_t from, size_t to) {
  if (to <= from) return 0;
  if (!add_kid(parent, N_TEXT, c->src + from, to - from))
    return fail(c, from, "out of memory");
  return 0;
}

tpl *tpl_compile(const char *src, size_t len, const char *name, char *err,
                 size_t errlen) {
  compiler c = {src, name ? name : "template", len, err, errlen};
  tpl *t = calloc(1, sizeof *t);
  node *stack[TPL_MAX_DEPTH + 1];
  int depth = 0;
  if (!t) {
    snprintf(err, errlen, "%s: out of memory", c.name);
    return NULL;
  }
  stack[0] = &t->root;
  size_t pos = 0;
  while (pos < len) {
    const char *open = memmem(src + pos, len - pos, "{{", 2);
    if (!open) {
      if (add_text(&c, stack[depth], pos, len)) goto bad;
      break;
    }
    size_t at = (size_t)(open - src);
    if (at + 2 < len && src[at + 2] == '{') {
      fail(&c, at, "'{{{' (raw output) is not supported: every value is escaped");
      goto bad;
    }
    const char *close = memmem(src + at + 2, len - at - 2, "}}", 2);
    if (!close) {
      fail(&c, at, "'{{' without its '}}'");
      goto bad;
    }
    size_t end = (size_t)(close - src) + 2;
    const char *in = src + at + 2;
    size_t n = (size_t)(close - in);
    trim(&in, &n);
    char sigil = n ? in[0] : '\0';
    int block = sigil == '#' || sigil == '^' || sigil == '/' || sigil == '!';
    /* A block tag alone on its line takes the line with it. */
    size_t text_end = at, next = end;
    if (block) {
      size_t ls = at, le = end;
      while (ls > pos && is_space(src[ls - 1])) ls--;
      while (le < len && is_space(src[le])) le++;
      int starts_line = ls == 0 || src[ls - 1] == '\n';
      if (ls == pos && pos > 0 && src[pos - 1] != '\n') starts_line = 0;
      if (le + 1 < len && src[le] == '\r' && src[le + 1] == '\n') le++;
      if (starts_line && (le == len || src[le] == '\n')) {
        text_end = ls;
        next = le < len ? le + 1 : le;
      }
    }
    if (add_text(&c, stack[depth], pos, text_end)) goto bad;
    pos = next;
    if (sigil == '!') continue;
    if (block) {
      in++, n--;
      trim(&in, &n);
    }
    if (!n) {
      fail(&c, at, "an empty tag");
      goto bad;
    }
    if (sigil == '#' || sigil == '^') {
      if (!valid_path(in, n)) {
        fail(&c, at, "'%.*s' is not a name", (int)n, in);
        goto bad;
      }
      if (depth == TPL_MAX_DEPTH) {
        fail(&c, at, "sections nested deeper than %d", TPL_MAX_DEPTH);
        goto bad;
      }
      node *s = add_kid(stack[depth], sigil == '#' ? N_SECTION : N_INVERTED, in, n);
      if (!s) {
        fail(&c, at, "out of memory");
        goto bad;
      }
      s->line = line_of(&c, at);
      stack[++depth] = s;
    } else if (sigil == '/') {
      if (!depth) {
        fail(&c, at, "{{/%.*s}} closes no section", (int)n, in);
        goto bad;
      }
      if (stack[depth]->len != n || memcmp(stack[depth]->text, in, n)) {
        fail(&c, at, "{{/%.*s}} closes '%s' (opened on line %d)", (int)n, in,
             stack[depth]->text, stack[depth]->line);
        goto bad;
      }
      depth--;
    } else {
      const char *bar = memchr(in, '|', n);
      size_t pn = bar ? (size_t)(bar - in) : n;
      const char *path = in;
      trim(&path, &pn);
      int filter = F_NONE;
      if (bar) {
        const char *f = bar + 1;
        size_t fn = n - (size_t)(f - in);
        trim(&f, &fn);
        if (fn == 5 && !memcmp(f, "money", 5)) filter = F_MONEY;
        else if (fn == 3 && !memcmp(f, "url", 3)) filter = F_URL;
        else {
          fail(&c, at, "unknown filter '%.*s' (money, url)", (int)fn, f);
          goto bad;
        }
      }
      if (!valid_path(path, pn)) {
        fail(&c, at, "'%.*s' is not a name", (int)pn, path);
        goto bad;
      }
      node *v = add_kid(stack[depth], N_VAR, path, pn);
      if (!v) {
        fail(&c, at, "out of memory");
        goto bad;
      }
      v->filter = filter;
    }
  }
  if (depth) {
    snprintf(err, errlen, "%s:%d: section '%s' is never closed", c.name, stack[depth]->line,
             stack[depth]->text);
    goto bad;
  }
  return t;
bad:
  tpl_free(t);
  return NULL;
}

/*
** Rendering.
*/
typedef struct frame {
  json_t *v;          /* borrowed */
  int loop;           /* an element of a list */
  size_t index, count;
} frame;

typedef struct render {
  tpl_mode mode;
  char *out;
  size_t len, cap;
  int failed;
  char *err;
  size_t errlen;
  frame stack[TPL_MAX_DEPTH + 1];
  int depth;
} render;

static void put(render *r, const char *s, size_t n) {
  if (r->failed) return;
  if (r->len + n + 1 > TPL_MAX_OUTPUT) {
    snprintf(r->err, r->errlen, "the rendered text is over %u bytes", TPL_MAX_OUTPUT);
    r->failed = 1;
    return;
  }
  if (r->len + n + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 1024;
    while (cap < r->len + n + 1) cap *= 2;
    char *more = realloc(r->out, cap);
    if (!more) {
      snprintf(r->err, r->errlen, "out of memory");
      r->failed = 1;
      return;
    }
    r->out = more;
    r->cap = cap;
  }
  memcpy(r->out + r->len, s, n);
  r->len += n;
  r->out[r->len] = '\0';
}

/* A value's text, escaped for the mode. */
static void put_escaped(render *r, const char *s, size_t n) {
  size_t from = 0;
  for (size_t i = 0; i < n; i++) {
    const char *rep = NULL;
    unsigned char ch = (unsigned char)s[i];
    if (r->mode == TPL_HTML) {
      rep = ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;"
            : ch == '"' ? "&quot;" : ch == '\'' ? "&#39;" : NULL;
    } else if (r->mode == TPL_HEADER && (ch < 0x20 || ch == 0x7f)) {
      rep = " "; /* no line break may start a header of its own */
    }
    if (!rep) continue;
    put(r, s + from, i - from);
    put(r, rep, strlen(rep));
    from = i + 1;
  }
  put(r, s + from, n - from);
}

/* The value a path names, as a new reference, or NULL. */
static json_t *lookup(render *r, const char *path) {
  if (!strcmp(path, ".")) return json_incref(r->stack[r->depth].v);
  if (path[0] == '@') {
    for (int i = r->depth; i >= 0; i--) {
      const frame *f = &r->stack[i];
      if (!f->loop) continue;
      if (!strcmp(path, "@number")) return json_integer((json_int_t)f->index + 1);
      if (!strcmp(path, "@first")) return json_boolean(f->index == 0);
      if (!strcmp(path, "@last")) return json_boolean(f->index + 1 == f->count);
      return NULL;
    }
    return NULL;
  }
  char seg[256];
  const char *dot = strchr(path, '.');
  size_t n = dot ? (size_t)(dot - path) : strlen(path);
  if (n >= sizeof seg) return NULL;
  memcpy(seg, path, n);
  seg[n] = '\0';
  json_t *v = NULL;
  for (int i = r->depth; i >= 0 && !v; i--)
    if (json_is_object(r->stack[i].v)) v = json_object_get(r->stack[i].v, seg);
  while (v && dot) {
    path = dot + 1;
    dot = strchr(path, '.');
    n = dot ? (size_t)(dot - path) : strlen(path);
    if (n >= sizeof seg) return NULL;
    memcpy(seg, path, n);
    seg[n] = '\0';
    v = json_is_object(v) ? json_object_get(v, seg) : NULL;
  }
  return json_incref(v);
}

static int truthy(json_t *v) {
  if (!v || json_is_null(v) || json_is_false(v)) return 0;
  if (json_is_string(v)) return json_string_length(v) > 0;
  if (json_is_array(v)) return json_array_size(v) > 0;
  return 1;
}

/* Only links a mail client may follow safely. */
static int safe_url(const char *s) {
  return !strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8) ||
         !strncasecmp(s, "mailto:", 7) || (s[0] == '/' && s[1] != '\\');
}

/* A catalog's "/p/hat" is no link in a mailbox, which has no page to be
   relative to: the url filter puts the shop's address (shop.url, an
   http(s) URL, without its trailing '/') in front. */
static void put_base(render *r) {
  json_t *base = lookup(r, "shop.url");
  const char *b = json_string_value(base);
  if (b && (!strncasecmp(b, "http://", 7) || !strncasecmp(b, "https://", 8))) {
    size_t n = strlen(b);
    while (n && b[n - 1] == '/') n--;
    put_escaped(r, b, n);
  }
  json_decref(base);
}

static void put_value(render *r, json_t *v, int filter) {
  char num[64];
  const char *s = NULL;
  size_t n = 0;
  if (filter == F_MONEY && (json_is_number(v) || json_is_string(v))) {
    char *end = NULL;
    double d = json_is_number(v) ? json_number_value(v) : strtod(json_string_value(v), &end);
    if (json_is_number(v) || (end && end != json_string_value(v) && !*end)) {
      snprintf(num, sizeof num, "%.2f", d);
      s = num;
    }
  }
  if (s) {
    n = strlen(s);
  } else if (json_is_string(v)) {
    s = json_string_value(v);
    n = json_string_length(v);
    if (filter == F_URL && !safe_url(s)) return;
    if (filter == F_URL && s[0] == '/') put_base(r);
  } else if (filter == F_URL) {
    return;
  } else if (json_is_integer(v)) {
    n = (size_t)snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
    s = num;
  } else if (json_is_real(v)) {
    n = (size_t)snprintf(num, sizeof num, "%.15g", json_real_value(v));
    s = num;
  } else if (json_is_boolean(v)) {
    s = json_is_true(v) ? "true" : "false";
    n = strlen(s);
  }
  if (s) put_escaped(r, s, n);
}

static void walk(render *r, const node *parent);

static void enter(render *r, json_t *v, int loop, size_t index, size_t count,
                  const node *body) {
  /* Compilation bounds nesting at TPL_MAX_DEPTH sections. */
  r->stack[++r->depth] = (frame){v, loop, index, count};
  walk(r, body);
  r->depth--;
}

static void walk(render *r, const node *parent) {
  for (size_t i = 0; i < parent->n_kids && !r->failed; i++) {
    const node *n = &parent->kids[i];
    if (n->kind == N_TEXT) {
      put(r, n->text, n->len);
      continue;
    }
    json_t *v = lookup(r, n->text);
    if (n->kind == N_VAR) {
      if (v) put_value(r, v, n->filter);
    } else if (n->kind == N_INVERTED) {
      if (!truthy(v)) walk(r, n);
    } else if (json_is_array(v)) {
      size_t count = json_array_size(v);
      for (size_t j = 0; j < count && !r->failed; j++)
        enter(r, json_array_get(v, j), 1, j, count, n);
    } else if (truthy(v)) {
      /* An object is looked in; any other value leaves the scope as is. */
      if (json_is_object(v)) enter(r, v, 0, 0, 0, n);
      else walk(r, n);
    }
    json_decref(v);
  }
}

char *tpl_render(const tpl *t, json_t *scope, tpl_mode mode, size_t *len, char *err,
                 size_t errlen) {
  render r = {0};
  r.mode = mode;
  r.err = err;
  r.errlen = errlen;
  r.stack[0].v = scope;
  put(&r, "", 0);
  walk(&r, &t->root);
  if (r.failed) {
    free(r.out);
    return NULL;
  }
  if (len) *len = r.len;
  return r.out;
}
