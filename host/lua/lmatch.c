/*
** lmatch.c: Lua 5.4 patterns under the instruction budget.
**
** A backtracking matcher with the stock library's semantics (Lua 5.4
** reference manual, section 6.4.1): the same search order (leftmost start;
** '*' and '+' longest first, '-' shortest first, '?' with the character
** first), the same lazy reading of the pattern (a malformed item is an error
** only once the matcher reaches it) and the same messages.  What differs is
** the accounting: each entry into an item, each character tested against a
** class and each byte compared counts as one step, and the steps are
** charged to the lvm's budget every LMATCH_CHARGE_EVERY of them, so time
** spent here is bounded exactly like time spent running Lua code.
*/
#include "lmatch.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stddef.h>
#include <string.h>

#include "lvm.h"

#define ESC '%'
#define SPECIALS "^$*+?.([%-"
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)

typedef struct matcher {
  const char *src, *src_end; /* the subject */
  const char *pat_end;       /* the pattern ends here (a NUL follows) */
  lua_State *L;
  int depth; /* nested items left before "pattern too complex" */
  int level; /* captures opened so far */
  long steps; /* not yet charged to the budget */
  struct {
    const char *init;
    ptrdiff_t len; /* or CAP_UNFINISHED, CAP_POSITION */
  } cap[LMATCH_MAX_CAPTURES];
} matcher;

static void charge(matcher *m, long n) {
  m->steps += n;
  if (m->steps >= LMATCH_CHARGE_EVERY) {
    long s = m->steps;
    m->steps = 0;
    lvm_charge(m->L, s);
  }
}

/* Charge what is left; call before returning to Lua. */
static void settle(matcher *m) {
  long s = m->steps;
  m->steps = 0;
  if (s) lvm_charge(m->L, s);
}

static void prepare(matcher *m, lua_State *L, const char *s, size_t ls,
                    const char *p, size_t lp) {
  m->L = L;
  m->src = s;
  m->src_end = s + ls;
  m->pat_end = p + lp;
  m->steps = 0;
}

/* Before each attempt at a new start. */
static void restart(matcher *m) {
  m->level = 0;
  m->depth = LMATCH_MAX_DEPTH;
}

/*
** ** Single-character classes
*/

/* Where the class starting at p ends (just after it). */
static const char *class_end(matcher *m, const char *p) {
  const char *start = p;
  if (*p == ESC) {
    if (p + 1 >= m->pat_end)
      luaL_error(m->L, "malformed pattern (ends with '%%')");
    return p + 2;
  }
  if (*p++ == '[') {
    if (*p == '^') p++;
    /* The first character after '[' or '[^' is never the closing ']'. */
    do {
      if (p >= m->pat_end)
        luaL_error(m->L, "malformed pattern (missing ']')");
      if (*p++ == ESC && p < m->pat_end) p++;
    } while (*p != ']');
    p++;
  }
  charge(m, p - start);
  return p;
}

/* Whether c is in %cl ('a' letters, 'A' not letters, ... or cl itself). */
static int in_class(int c, int cl) {
  int in;
  switch (tolower(cl)) {
  case 'a': in = isalpha(c); break;
  case 'c': in = iscntrl(c); break;
  case 'd': in = isdigit(c); break;
  case 'g': in = isgraph(c); break;
  case 'l': in = islower(c); break;
  case 'p': in = ispunct(c); break;
  case 's': in = isspace(c); break;
  case 'u': in = isupper(c); break;
  case 'w': in = isalnum(c); break;
  case 'x': in = isxdigit(c); break;
  case 'z': in = c == 0; break; /* deprecated in 5.2, still accepted */
  default: return cl == c;
  }
  return isupper(cl) ? !in : in;
}

/* Whether c is in the set from p ('[') to last (its ']'). */
static int in_set(int c, const char *p, const char *last) {
  int found = 1;
  if (p[1] == '^') {
    found = 0;
    p++;
  }
  while (++p < last) {
    if (*p == ESC) {
      p++;
      if (in_class(c, (unsigned char)*p)) return found;
    } else if (p[1] == '-' && p + 2 < last) {
      p += 2;
      if ((unsigned char)p[-2] <= c && c <= (unsigned char)*p) return found;
    } else if ((unsigned char)*p == c) {
      return found;
    }
  }
  return !found;
}

/* Whether the subject character at s matches the class p..ep. */
static int single(matcher *m, const char *s, const char *p, const char *ep) {
  int c;
  if (s >= m->src_end) return 0;
  c = (unsigned char)*s;
  switch (*p) {
  case '.': charge(m, 1); return 1;
  case ESC: charge(m, 1); return in_class(c, (unsigned char)p[1]);
  case '[': charge(m, ep - p); return in_set(c, p, ep - 1);
  default: charge(m, 1); return (unsigned char)*p == c;
  }
}

/*
** ** The matcher
*/
static const char *match(matcher *m, const char *s, const char *p);

/* %bxy at s: the end of the balanced span, or NULL. */
static const char *balance(matcher *m, const char *s, const char *p) {
  const char *from = s;
  int open, close, depth = 1;
  if (p >= m->pat_end - 1)
    luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
  if (*s != *p) return NULL;
  open = *p;
  close = p[1];
  while (++s < m->src_end) {
    if (*s == close) {
      if (--depth == 0) break;
    } else if (*s == open) {
      depth++;
    }
  }
  charge(m, s - from);
  return s < m->src_end ? s + 1 : NULL;
}

/* Longest run first: '*' and '+'. */
static const char *max_expand(matcher *m, const char *s, const char *p,
                              const char *ep) {
  ptrdiff_t i = 0;
  while (single(m, s + i, p, ep)) i++;
  for (; i >= 0; i--) {
    const char *r = match(m, s + i, ep + 1);
    if (r) return r;
  }
  return NULL;
}

/* Shortest run first: '-'. */
static const char *min_expand(matcher *m, const char *s, const char *p,
                              const char *ep) {
  for (;;) {
    const char *r = match(m, s, ep + 1);
    if (r) return r;
    if (!single(m, s, p, ep)) return NULL;
    s++;
  }
}

static const char *open_capture(matcher *m, const char *s, const char *p,
                                ptrdiff_t what) {
  const char *r;
  if (m->level >= LMATCH_MAX_CAPTURES) luaL_error(m->L, "too many captures");
  m->cap[m->level].init = s;
  m->cap[m->level].len = what;
  m->level++;
  if (!(r = match(m, s, p))) m->level--;
  return r;
}

static const char *close_capture(matcher *m, const char *s, const char *p) {
  const char *r;
  int l = m->level - 1;
  while (l >= 0 && m->cap[l].len != CAP_UNFINISHED) l--;
  if (l < 0) luaL_error(m->L, "invalid pattern capture");
  m->cap[l].len = s - m->cap[l].init;
  if (!(r = match(m, s, p))) m->cap[l].len = CAP_UNFINISHED;
  return r;
}

/* %1-%9 in a pattern: the text of a closed capture again. */
static const char *back_reference(matcher *m, const char *s, int digit) {
  int l = digit - '1';
  size_t len;
  if (l < 0 || l >= m->level || m->cap[l].len == CAP_UNFINISHED)
    luaL_error(m->L, "invalid capture index %%%d", l + 1);
  len = (size_t)m->cap[l].len; /* a position capture never matches */
  if ((size_t)(m->src_end - s) < len) return NULL;
  charge(m, (long)len);
  return memcmp(m->cap[l].init, s, len) == 0 ? s + len : NULL;
}

/* Match the pattern from p against the subject from s: the end of the
   match, or NULL.  Items that cannot branch loop here; the others recurse. */
static const char *match(matcher *m, const char *s, const char *p) {
  if (m->depth-- == 0) luaL_error(m->L, "pattern too complex");
  charge(m, 1);
  while (p != m->pat_end) {
    const char *ep;
    if (*p == '(') {
      s = p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION)
                      : open_capture(m, s, p + 1, CAP_UNFINISHED);
      break;
    }
    if (*p == ')') {
      s = close_capture(m, s, p + 1);
      break;
    }
    if (*p == '$' && p + 1 == m->pat_end) {
      s = s == m->src_end ? s : NULL;
      break;
    }
    if (*p == ESC && p[1] == 'b') {
      if (!(s = balance(m, s, p + 2))) break;
      p += 4;
      continue;
    }
    if (*p == ESC && p[1] == 'f') {
      int before, at;
      p += 2;
      if (*p != '[') luaL_error(m->L, "missing '[' after '%%f' in pattern");
      ep = class_end(m, p);
      before = s == m->src ? '\0' : (unsigned char)s[-1];
      at = (unsigned char)*s; /* the NUL after the subject at its end */
      charge(m, ep - p);
      if (in_set(before, p, ep - 1) || !in_set(at, p, ep - 1)) {
        s = NULL;
        break;
      }
      p = ep;
      continue;
    }
    if (*p == ESC && isdigit((unsigned char)p[1])) {
      if (!(s = back_reference(m, s, (unsigned char)p[1]))) break;
      p += 2;
      continue;
    }
    ep = class_end(m, p);
    if (!single(m, s, p, ep)) {
      if (*ep == '*' || *ep == '?' || *ep == '-') { /* zero is enough */
        p = ep + 1;
        continue;
      }
      s = NULL;
      break;
    }
    if (*ep == '?') {
      const char *r = match(m, s + 1, ep + 1);
      if (r) {
        s = r;
        break;
      }
      p = ep + 1;
      continue;
    }
    if (*ep == '+') {
      s = max_expand(m, s + 1, p, ep);
      break;
    }
    if (*ep == '*') {
      s = max_expand(m, s, p, ep);
      break;
    }
    if (*ep == '-') {
      s = min_expand(m, s, p, ep);
      break;
    }
    s++;
    p = ep;
  }
  m->depth++;
  return s;
}

/*
** ** Captures
*/

/* Push capture i (the whole match s..e when there are none and i is 0). */
static void push_capture(matcher *m, int i, const char *s, const char *e) {
  if (i >= m->level) {
    if (i != 0) luaL_error(m->L, "invalid capture index %%%d", i + 1);
    lua_pushlstring(m->L, s, (size_t)(e - s));
    return;
  }
  if (m->cap[i].len == CAP_UNFINISHED) luaL_error(m->L, "unfinished capture");
  if (m->cap[i].len == CAP_POSITION)
    lua_pushinteger(m->L, (m->cap[i].init - m->src) + 1);
  else
    lua_pushlstring(m->L, m->cap[i].init, (size_t)m->cap[i].len);
}

/* Push every capture, or the whole match when there are none and s is
   given; returns how many. */
static int push_captures(matcher *m, const char *s, const char *e) {
  int n = m->level == 0 && s ? 1 : m->level;
  luaL_checkstack(m->L, n, "too many captures");
  for (int i = 0; i < n; i++) push_capture(m, i, s, e);
  return n;
}

/*
** ** The library functions
*/

/* A relative initial position as an offset from 1 (Lua's posrelatI). */
static size_t start_at(lua_Integer pos, size_t len) {
  if (pos > 0) return (size_t)pos;
  if (pos == 0 || pos < -(lua_Integer)len) return 1;
  return len + (size_t)pos + 1;
}

/* Whether the pattern has no magic character (it may hold NULs). */
static int is_plain(const char *p, size_t lp) {
  size_t upto = 0;
  do {
    if (strpbrk(p + upto, SPECIALS)) return 0;
    upto += strlen(p + upto) + 1;
  } while (upto <= lp);
  return 1;
}

/* Plain search of p in s: memchr finds candidates, each byte compared is a
   step. */
static const char *find_plain(matcher *m, const char *s, size_t ls,
                              const char *p, size_t lp) {
  const char *end = s + ls;
  if (lp == 0) return s;
  if (lp > ls) return NULL;
  end -= lp - 1; /* the last place the pattern can start, plus one */
  while (s < end) {
    const char *at = memchr(s, *p, (size_t)(end - s));
    size_t k = 1;
    if (!at) return NULL;
    while (k < lp && at[k] == p[k]) k++;
    charge(m, (long)k);
    if (k == lp) return at;
    s = at + 1;
  }
  return NULL;
}

static int find_or_match(lua_State *L, int find) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_at(luaL_optinteger(L, 3, 1), ls) - 1;
  matcher m;
  if (init > ls) {
    luaL_pushfail(L);
    return 1;
  }
  prepare(&m, L, s, ls, p, lp);
  if (find && (lua_toboolean(L, 4) || is_plain(p, lp))) {
    const char *at = find_plain(&m, s + init, ls - init, p, lp);
    settle(&m);
    if (at) {
      lua_pushinteger(L, (at - s) + 1);
      lua_pushinteger(L, (lua_Integer)((size_t)(at - s) + lp));
      return 2;
    }
  } else {
    const char *from = s + init;
    int anchor = *p == '^';
    if (anchor) p++; /* the end stays where it was */
    do {
      const char *e;
      restart(&m);
      if ((e = match(&m, from, p))) {
        settle(&m);
        if (!find) return push_captures(&m, from, e);
        lua_pushinteger(L, (from - s) + 1);
        lua_pushinteger(L, e - s);
        return push_captures(&m, NULL, NULL) + 2;
      }
    } while (from++ < m.src_end && !anchor);
    settle(&m);
  }
  luaL_pushfail(L);
  return 1;
}

static int l_find(lua_State *L) { return find_or_match(L, 1); }

static int l_match(lua_State *L) { return find_or_match(L, 0); }

/* gmatch's iterator: upvalues the subject, the pattern and its state. */
typedef struct gmatch_state {
  const char *from;      /* where the next search starts */
  const char *last;      /* end of the last match, so it is not repeated */
  const char *p;
  matcher m;
} gmatch_state;

static int gmatch_next(lua_State *L) {
  gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
  g->m.L = L; /* the iterator may run in another coroutine */
  for (const char *from = g->from; from <= g->m.src_end; from++) {
    const char *e;
    restart(&g->m);
    if ((e = match(&g->m, from, g->p)) && e != g->last) {
      g->from = g->last = e;
      settle(&g->m);
      return push_captures(&g->m, from, e);
    }
  }
  g->from = g->m.src_end + 1;
  settle(&g->m);
  return 0;
}

static int l_gmatch(lua_State *L) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_at(luaL_optinteger(L, 3, 1), ls) - 1;
  gmatch_state *g;
  lua_settop(L, 2); /* the closure keeps both strings alive */
  g = lua_newuserdatauv(L, sizeof *g, 0);
  if (init > ls) init = ls + 1; /* past the end: no match */
  prepare(&g->m, L, s, ls, p, lp);
  g->from = s + init;
  g->last = NULL;
  g->p = p;
  lua_pushcclosure(L, gmatch_next, 3);
  return 1;
}

/* Append the replacement string (argument 3) with %0-%9 and %% expanded. */
static void add_string(matcher *m, luaL_Buffer *b, const char *s,
                       const char *e) {
  size_t l;
  const char *news = lua_tolstring(m->L, 3, &l), *p;
  while ((p = memchr(news, ESC, l))) {
    luaL_addlstring(b, news, (size_t)(p - news));
    p++;
    if (*p == ESC) {
      luaL_addchar(b, *p);
    } else if (*p == '0') {
      luaL_addlstring(b, s, (size_t)(e - s));
    } else if (isdigit((unsigned char)*p)) {
      push_capture(m, *p - '1', s, e);
      luaL_tolstring(m->L, -1, NULL); /* a position capture is a number */
      lua_remove(m->L, -2);
      luaL_addvalue(b);
    } else {
      luaL_error(m->L, "invalid use of '%c' in replacement string", ESC);
    }
    l -= (size_t)(p + 1 - news);
    news = p + 1;
  }
  luaL_addlstring(b, news, l);
}

/* Append the replacement of s..e; returns whether it changed anything. */
static int add_value(matcher *m, luaL_Buffer *b, const char *s, const char *e,
                     int type) {
  lua_State *L = m->L;
  if (type == LUA_TFUNCTION) {
    int n;
    lua_pushvalue(L, 3);
    n = push_captures(m, s, e);
    settle(m); /* the function runs under the count hook */
    lua_call(L, n, 1);
  } else if (type == LUA_TTABLE) {
    push_capture(m, 0, s, e);
    lua_gettable(L, 3);
  } else {
    add_string(m, b, s, e);
    return 1;
  }
  if (!lua_toboolean(L, -1)) { /* false or nil: keep the original */
    lua_pop(L, 1);
    luaL_addlstring(b, s, (size_t)(e - s));
    return 0;
  }
  if (!lua_isstring(L, -1))
    return luaL_error(L, "invalid replacement value (a %s)",
                      luaL_typename(L, -1));
  luaL_addvalue(b);
  return 1;
}

static int l_gsub(lua_State *L) {
  size_t ls, lp;
  const char *src = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  const char *last = NULL;
  int type = lua_type(L, 3);
  lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1), n = 0;
  int anchor = *p == '^', changed = 0;
  matcher m;
  luaL_Buffer b;
  luaL_argexpected(L, type == LUA_TNUMBER || type == LUA_TSTRING ||
                          type == LUA_TFUNCTION || type == LUA_TTABLE,
                   3, "string/function/table");
  luaL_buffinit(L, &b);
  prepare(&m, L, src, ls, p, lp);
  if (anchor) p++;
  while (n < max) {
    const char *e;
    restart(&m);
    if ((e = match(&m, src, p)) && e != last) {
      n++;
      changed = add_value(&m, &b, src, e, type) | changed;
      src = last = e;
    } else if (src < m.src_end) {
      luaL_addchar(&b, *src++);
    } else {
      break;
    }
    if (anchor) break;
  }
  settle(&m);
  if (!changed) {
    lua_pushvalue(L, 1);
  } else {
    luaL_addlstring(&b, src, (size_t)(m.src_end - src));
    luaL_pushresult(&b);
  }
  lua_pushinteger(L, n);
  return 2;
}

void lmatch_open(lua_State *L, int idx) {
  static const luaL_Reg fns[] = {{"find", l_find},
                                 {"match", l_match},
                                 {"gmatch", l_gmatch},
                                 {"gsub", l_gsub},
                                 {NULL, NULL}};
  idx = lua_absindex(L, idx);
  for (const luaL_Reg *f = fns; f->name; f++) {
    lua_pushcfunction(L, f->func);
    lua_setfield(L, idx, f->name);
  }
}
