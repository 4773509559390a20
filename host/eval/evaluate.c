/*
** evaluate.c: reading recorded sessions in the plain and NDJSON formats,
** the validation split, and the scoring loops of `tailor eval`.
*/
#include "eval/evaluate.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/event.h"
#include "core/util.h"
#include "index/sknn_rerank.h"

/* Progress is reported every this many queries. */
#define PROGRESS_EVERY 2048

/* ** Growing arrays -------------------------------------------------------- */

static int grow(void **v, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return 0;
  size_t ncap = *cap ? *cap : 1024;
  while (ncap < need) ncap *= 2;
  void *nv = realloc(*v, ncap * size);
  if (!nv) return TAILOR_ENOMEM;
  *v = nv;
  *cap = ncap;
  return 0;
}

static int seqs_push_item(eval_seqs *s, uint32_t item) {
  if (grow((void **)&s->items, &s->items_cap, s->nitems + 1, sizeof *s->items))
    return TAILOR_ENOMEM;
  s->items[s->nitems++] = item;
  return 0;
}

/* Close the sequence made of the items pushed since the last close. */
static int seqs_close(eval_seqs *s) {
  if (grow((void **)&s->start, &s->start_cap, s->n + 2, sizeof *s->start))
    return TAILOR_ENOMEM;
  if (s->n == 0) s->start[0] = 0;
  s->start[++s->n] = s->nitems;
  return 0;
}

static void seqs_free(eval_seqs *s) {
  free(s->items);
  free(s->start);
  memset(s, 0, sizeof *s);
}

static int push_query(eval_data *d, size_t session, size_t pos) {
  if (grow((void **)&d->queries, &d->queries_cap, d->nqueries + 1,
           sizeof *d->queries))
    return TAILOR_ENOMEM;
  d->queries[d->nqueries++] = (eval_query){(uint32_t)session, (uint32_t)pos};
  return 0;
}

void eval_data_free(eval_data *d) {
  seqs_free(&d->train);
  seqs_free(&d->test);
  free(d->ask);
  free(d->queries);
  intern_free(&d->names);
  free(d->views);
  free(d->catalog);
  memset(d, 0, sizeof *d);
}

/* ** Errors ---------------------------------------------------------------- */

/* An error at line `line` (0: none) of the file `label`, as
   "label:line: message", filled by util_fail with the line kept. */
__attribute__((format(printf, 5, 6))) static int fail(tailor_error *err, int code,
                                                     const char *label, long line,
                                                     const char *fmt, ...) {
  char msg[sizeof err->message];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (line) util_fail(err, code, NULL, "%s:%ld: %s", label, line, msg);
  else util_fail(err, code, NULL, "%s: %s", label, msg);
  if (err) err->line = line;
  return code;
}

/* ** Reading lines from a file or from memory ------------------------------ */

/* Plain ids index arrays directly up to this; a file with a larger one is
   read again with every id a name (dense, as NDJSON's are). */
#define EVAL_DENSE_MAX ((1u << 22) - 1)
#define EVAL_AS_NAMES 1000 /* load's: read again as names */

typedef struct reader {
  FILE *f;                /* or NULL: from memory */
  const char *p, *end;
  char *buf;              /* getline's line */
  size_t cap;
  long line;              /* of the line last returned */
  const char *label;      /* file name for messages */
} reader;

/* The first non-blank character, or 0 for an input with none; consumes
** only blanks. */
static int reader_peek(reader *r) {
  if (!r->f) {
    for (const char *q = r->p; q < r->end; q++)
      if (!isspace((unsigned char)*q)) return (unsigned char)*q;
    return 0;
  }
  int c;
  while ((c = getc(r->f)) != EOF && isspace(c))
    if (c == '\n') r->line++;
  if (c == EOF) return 0;
  ungetc(c, r->f);
  return c;
}

/* The next line without its newline (and '\r'): 1, or 0 at the end, or
** TAILOR_EIO. */
static int reader_next(reader *r, const char **line, size_t *len) {
  r->line++;
  if (r->f) {
    ssize_t n = getline(&r->buf, &r->cap, r->f);
    if (n < 0) return ferror(r->f) ? TAILOR_EIO : 0;
    while (n > 0 && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r')) n--;
    *line = r->buf;
    *len = (size_t)n;
    return 1;
  }
  if (r->p >= r->end) return 0;
  const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
  if (!nl) nl = r->end;
  size_t n = (size_t)(nl - r->p);
  *line = r->p;
  r->p = nl < r->end ? nl + 1 : r->end;
  while (n > 0 && (*line)[n - 1] == '\r') n--;
  *len = n;
  return 1;
}

/* ** Item ids ---------------------------------------------------------------- */

typedef struct loader {
  eval_data *d;
  tailor_error *err;
  char *tok;              /* one id, NUL-terminated, for interning */
  size_t tok_cap;
  uint32_t *tmp;          /* a test pair: its prefix, then its target */
  size_t tmp_n, tmp_cap;
} loader;

/* The id of a name (NUL-terminated), added when new. */
static int name_id(loader *L, reader *r, const char *name, uint32_t *id) {
  *id = intern_put(&L->d->names, name);
  if (*id == INTERN_NONE)
    return name[0] ? TAILOR_ENOMEM
                   : fail(L->err, TAILOR_EPARSE, r->label, r->line, "empty item id");
  if (*id >= L->d->nitems) L->d->nitems = *id + 1;
  return 0;
}

/* The id of one token of a plain line (s, n bytes): its number, or its
** interned text when ids are named. */
static int token_id(loader *L, reader *r, const char *s, size_t n,
                    uint32_t *id) {
  eval_data *d = L->d;
  if (d->named) {
    if (grow((void **)&L->tok, &L->tok_cap, n + 1, 1)) return TAILOR_ENOMEM;
    memcpy(L->tok, s, n);
    L->tok[n] = '\0';
    return name_id(L, r, L->tok, id);
  }
  uint64_t v = 0;
  size_t i = 0;
  for (; i < n && isdigit((unsigned char)s[i]) && v <= SKNN_MAX_ITEM; i++)
    v = v * 10 + (uint64_t)(s[i] - '0');
  /* A large number is read again as a name (load): the plain ids index
     arrays directly, and ids of nine digits (yoochoose's) took gigabytes
     for a few thousand items. */
  if (i == n && v > EVAL_DENSE_MAX) return EVAL_AS_NAMES;
  if (i < n || v > SKNN_MAX_ITEM)
    return fail(L->err, TAILOR_EPARSE, r->label, r->line,
                "bad item id '%.*s' (a number up to %u, or use NDJSON for "
                "named items)", (int)(n > 64 ? 64 : n), s, SKNN_MAX_ITEM);
  *id = (uint32_t)v;
  if (*id >= d->nitems) d->nitems = *id + 1;
  return 0;
}

/* The ids of a space-separated list, appended to `into`, or to L->tmp
** when `into` is NULL; *count receives how many. */
static int parse_ids(loader *L, reader *r, const char *p, const char *end,
                     eval_seqs *into, size_t *count) {
  size_t n = 0;
  while (p < end) {
    while (p < end && *p == ' ') p++;
    if (p >= end) break;
    const char *q = p;
    while (q < end && *q != ' ') q++;
    uint32_t id;
    int rc = token_id(L, r, p, (size_t)(q - p), &id);
    if (rc) return rc;
    if (into) {
      if (seqs_push_item(into, id)) return TAILOR_ENOMEM;
    } else {
      if (grow((void **)&L->tmp, &L->tmp_cap, L->tmp_n + 1, sizeof *L->tmp))
        return TAILOR_ENOMEM;
      L->tmp[L->tmp_n++] = id;
    }
    n++;
    p = q;
  }
  *count = n;
  return 0;
}

static int blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isspace((unsigned char)s[i])) return 0;
  return 1;
}

/* ** The plain format ------------------------------------------------------- */

static int read_plain_sessions(loader *L, reader *r, eval_seqs *out) {
  const char *line;
  size_t len, n;
  int rc;
  while ((rc = reader_next(r, &line, &len)) == 1) {
    if (memchr(line, '\t', len))
      return fail(L->err, TAILOR_EPARSE, r->label, r->line,
                  "a tab: training sessions are item ids separated by "
                  "spaces (pairs with a tab are test pairs)");
    if ((rc = parse_ids(L, r, line, line + len, out, &n))) return rc;
    if (n && seqs_close(out)) return TAILOR_ENOMEM;
  }
  return rc ? fail(L->err, TAILOR_EIO, r->label, 0, "%s", strerror(errno)) : 0;
}

/*
** Test pairs, joined back into sessions: a pair continues the session
** before it when it is that session's next shorter pair (SR-GNN writes
** [s1..sn-1] -> sn first, then [s1..sn-2] -> sn-1, ...), else it starts a
** session of its own.  Either way every pair is one query, exactly as
** written.
*/
static int read_plain_pairs(loader *L, reader *r) {
  eval_data *d = L->d;
  eval_seqs *t = &d->test;
  size_t asked = 0; /* the current session's shortest query so far */
  const char *line;
  size_t len, m, one;
  int rc;
  while ((rc = reader_next(r, &line, &len)) == 1) {
    if (blank(line, len)) continue;
    const char *tab = memchr(line, '\t', len);
    if (!tab)
      return fail(L->err, TAILOR_EPARSE, r->label, r->line,
                  "expected a test pair: prefix item ids, a tab, the target id");
    L->tmp_n = 0;
    if ((rc = parse_ids(L, r, line, tab, NULL, &m))) return rc;
    if ((rc = parse_ids(L, r, tab + 1, line + len, NULL, &one))) return rc;
    if (m == 0 || one != 1)
      return fail(L->err, TAILOR_EPARSE, r->label, r->line,
                  m == 0 ? "a test pair needs a prefix of at least one item"
                         : "a test pair has exactly one target after the tab");
    if (t->n && m + 1 == asked &&
        memcmp(t->items + t->start[t->n - 1], L->tmp, (m + 1) * sizeof *L->tmp) == 0) {
      asked = m;
      if (push_query(d, t->n - 1, m)) return TAILOR_ENOMEM;
      continue;
    }
    for (size_t i = 0; i <= m; i++)
      if (seqs_push_item(t, L->tmp[i])) return TAILOR_ENOMEM;
    if (seqs_close(t) || push_query(d, t->n - 1, m)) return TAILOR_ENOMEM;
    asked = m;
  }
  return rc ? fail(L->err, TAILOR_EIO, r->label, 0, "%s", strerror(errno)) : 0;
}

/* ** NDJSON event logs ---------------------------------------------------- */

/*
** The views of a log grouped into sessions by session id, sessions in the
** order of their first view, views in log order; appended to `out`.  A
** line that is not an event is an error; events of other types, or of
** types tailor does not know, and views without a session are counted
** and skipped.
*/
static int read_events(loader *L, reader *r, eval_seqs *out) {
  eval_data *d = L->d;
  intern sessions;
  intern_init(&sessions);
  uint32_t *vs = NULL, *vi = NULL; /* by view: session, item */
  size_t nv = 0, vs_cap = 0, vi_cap = 0;
  size_t *at = NULL;
  ev_limits lim = {EV_DEFAULT_MAX_BYTES, EV_DEFAULT_MAX_LINES, 0, 0, 0, 0};
  const char *line;
  size_t len;
  int rc;
  while ((rc = reader_next(r, &line, &len)) == 1) {
    if (blank(line, len)) continue;
    d->counts.events++;
    ev e;
    tailor_error perr = {0};
    rc = ev_parse(line, len, &lim, &e, &perr);
    if (rc == TAILOR_ETYPE) {
      d->counts.not_views++;
      continue;
    }
    if (rc) {
      rc = fail(L->err, rc, r->label, r->line, "%s", perr.message);
      goto done;
    }
    if (e.type != EV_VIEW) {
      d->counts.not_views++;
    } else if (!e.session) {
      d->counts.no_session++;
    } else {
      /* A session is the visitor's: GA4's ga_session_id is unique per user
         only, and two users' sessions of one id were one.  The anonymous id
         first (it stays across a login in the session), else the customer. */
      const char *who = e.anon ? e.anon : e.customer ? e.customer : "";
      size_t need = strlen(who) + strlen(e.session) + 2; /* in the loader's token buffer */
      int room = !grow((void **)&L->tok, &L->tok_cap, need, 1);
      if (room) snprintf(L->tok, need, "%s\x1f%s", who, e.session);
      uint32_t s = room ? intern_put(&sessions, L->tok) : INTERN_NONE, item;
      rc = s == INTERN_NONE ? TAILOR_ENOMEM : name_id(L, r, e.lines[0].item, &item);
      if (!rc && (grow((void **)&vs, &vs_cap, nv + 1, sizeof *vs) ||
                  grow((void **)&vi, &vi_cap, nv + 1, sizeof *vi)))
        rc = TAILOR_ENOMEM;
      if (!rc) {
        vs[nv] = s;
        vi[nv++] = item;
      }
    }
    ev_clear(&e);
    if (rc) goto done;
  }
  if (rc) {
    rc = fail(L->err, TAILOR_EIO, r->label, 0, "%s", strerror(errno));
    goto done;
  }
  /* A counting sort by session keeps each session's views in order. */
  size_t ns = sessions.n;
  at = calloc(ns + 1, sizeof *at);
  size_t base = out->nitems;
  if (!at || grow((void **)&out->items, &out->items_cap, base + nv, sizeof *out->items) ||
      grow((void **)&out->start, &out->start_cap, out->n + ns + 1, sizeof *out->start)) {
    rc = TAILOR_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < nv; i++) at[vs[i] + 1]++;
  for (size_t s = 0; s < ns; s++) at[s + 1] += at[s];
  if (out->n == 0) out->start[0] = base;
  for (size_t s = 0; s < ns; s++) out->start[out->n + s + 1] = base + at[s + 1];
  for (size_t i = 0; i < nv; i++) out->items[base + at[vs[i]]++] = vi[i];
  out->nitems = base + nv;
  out->n += ns;
done:
  free(at);
  free(vs);
  free(vi);
  intern_free(&sessions);
  return rc;
}

/* ** Sessions into queries, the catalog ------------------------------------ */

/* Views by id in the indexed training sessions (d->views, d->nitems long). */
static int count_views(eval_data *d) {
  free(d->views);
  d->views = calloc(d->nitems ? d->nitems : 1, sizeof *d->views);
  if (!d->views) return TAILOR_ENOMEM;
  const eval_seqs *t = &d->train;
  size_t end = d->ntrain ? t->start[d->ntrain] : 0;
  for (size_t i = 0; i < end; i++) d->views[t->items[i]]++;
  return 0;
}

/*
** Sessions [from, to) of src as test sessions the SR-GNN way: items the
** indexed training sessions never showed are dropped, sessions left
** shorter than 2 are dropped, and every later position is a query.
** d->views counts the ids below nknown.
*/
static int expand(eval_data *d, const eval_seqs *src, size_t from, size_t to,
                  uint32_t nknown) {
  eval_seqs *t = &d->test;
  for (size_t s = from; s < to; s++) {
    const uint32_t *items;
    size_t n = eval_seq(src, s, &items), at = t->nitems;
    for (size_t i = 0; i < n; i++) {
      if (items[i] < nknown && d->views[items[i]]) {
        if (seqs_push_item(t, items[i])) return TAILOR_ENOMEM;
      } else {
        d->counts.dropped_items++;
      }
    }
    if (t->nitems - at < 2) {
      t->nitems = at;
      d->counts.dropped_sessions++;
      continue;
    }
    if (seqs_close(t)) return TAILOR_ENOMEM;
    for (size_t pos = 1; pos < t->nitems - at; pos++)
      if (push_query(d, t->n - 1, pos)) return TAILOR_ENOMEM;
  }
  return 0;
}

static int cmp_views_desc(const void *a, const void *b, void *ctx) {
  const uint64_t *views = ctx;
  uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
  if (views[i] != views[j]) return views[i] > views[j] ? -1 : 1;
  return (i > j) - (i < j);
}

static int make_catalog(eval_data *d) {
  free(d->catalog);
  d->ncatalog = 0;
  d->catalog = malloc((d->nitems ? d->nitems : 1) * sizeof *d->catalog);
  if (!d->catalog) return TAILOR_ENOMEM;
  for (uint32_t e = 0; e < d->nitems; e++)
    if (d->views[e]) d->catalog[d->ncatalog++] = e;
  qsort_r(d->catalog, d->ncatalog, sizeof *d->catalog, cmp_views_desc, d->views);
  d->npopular = (uint32_t)(EVAL_POPULAR_SHARE * d->ncatalog + 0.999999);
  return 0;
}

/* ** Loading ---------------------------------------------------------------- */

static int load(eval_data *d, reader *tr, reader *te, double val_share, int as_names,
                tailor_error *err) {
  memset(d, 0, sizeof *d);
  intern_init(&d->names);
  if (!(val_share >= 0 && val_share < 1))
    return fail(err, TAILOR_EINVAL, "--val-share", 0, "a share between 0 and 1");
  d->validating = val_share > 0;
  int tr_nd = reader_peek(tr) == '{';
  int te_nd = !d->validating && reader_peek(te) == '{';
  d->named = tr_nd || te_nd || as_names;
  loader L = {.d = d, .err = err};
  int rc = tr_nd ? read_events(&L, tr, &d->train) : read_plain_sessions(&L, tr, &d->train);
  if (rc) goto done;
  d->ntrain = d->train.n - (size_t)(val_share * (double)d->train.n);
  if ((rc = count_views(d))) goto done;
  uint32_t nknown = d->nitems;
  if (d->validating) {
    rc = expand(d, &d->train, d->ntrain, d->train.n, nknown);
  } else if (te_nd) {
    eval_seqs raw = {0};
    rc = read_events(&L, te, &raw);
    if (!rc) rc = expand(d, &raw, 0, raw.n, nknown);
    seqs_free(&raw);
  } else {
    d->test_plain = 1;
    rc = read_plain_pairs(&L, te);
  }
  if (rc) goto done;
  /* Ids first met in the test file grow the id space. */
  if ((rc = count_views(d)) || (rc = make_catalog(d))) goto done;
  if (!(d->ask = calloc(d->test.nitems ? d->test.nitems : 1, 1))) {
    rc = TAILOR_ENOMEM;
    goto done;
  }
  for (size_t q = 0; q < d->nqueries; q++) {
    uint32_t target = d->test.items[d->test.start[d->queries[q].session] + d->queries[q].pos];
    d->ask[d->test.start[d->queries[q].session] + d->queries[q].pos] = 1;
    if (d->test_plain && (target >= d->nitems || !d->views[target])) d->counts.unknown_targets++;
  }
done:
  free(L.tok);
  free(L.tmp);
  if (rc == TAILOR_ENOMEM) fail(err, rc, "tailor eval", 0, "out of memory");
  return rc;
}

int eval_load(eval_data *d, const char *train, const char *test,
              double val_share, tailor_error *err) {
  memset(d, 0, sizeof *d);
  reader tr = {.label = train}, te = {.label = test};
  int rc = 0;
  if (!(tr.f = fopen(train, "rb")))
    return fail(err, TAILOR_EIO, train, 0, "%s", strerror(errno));
  if (!(val_share > 0) && (!test || !(te.f = fopen(test, "rb")))) {
    rc = test ? fail(err, TAILOR_EIO, test, 0, "%s", strerror(errno))
              : fail(err, TAILOR_EINVAL, "tailor eval", 0, "no test file");
    fclose(tr.f);
    return rc;
  }
  rc = load(d, &tr, &te, val_share, 0, err);
  if (rc == EVAL_AS_NAMES) { /* a large numeric id: once more, as names */
    eval_data_free(d);
    const char *again = fseek(tr.f, 0, SEEK_SET) ? train
                        : te.f && fseek(te.f, 0, SEEK_SET) ? test : NULL;
    tr.line = te.line = 0;
    rc = again ? fail(err, TAILOR_EIO, again, 0,
                      "an item id above %u makes eval read the files again, with ids as "
                      "names, and this one cannot be read twice (a pipe?): give a file",
                      EVAL_DENSE_MAX)
               : load(d, &tr, &te, val_share, 1, err);
  }
  fclose(tr.f);
  if (te.f) fclose(te.f);
  free(tr.buf);
  free(te.buf);
  return rc;
}

int eval_load_text(eval_data *d, const char *train, size_t train_len,
                   const char *test, size_t test_len, double val_share,
                   tailor_error *err) {
  reader tr = {.p = train, .end = train + train_len, .label = "train"};
  reader te = {.p = test, .end = test ? test + test_len : test, .label = "test"};
  int rc = load(d, &tr, &te, val_share, 0, err);
  if (rc != EVAL_AS_NAMES) return rc;
  eval_data_free(d);
  tr = (reader){.p = train, .end = train + train_len, .label = "train"};
  te = (reader){.p = test, .end = test ? test + test_len : test, .label = "test"};
  return load(d, &tr, &te, val_share, 1, err);
}

const char *eval_item_name(const eval_data *d, uint32_t id, char *buf) {
  if (d->named) return intern_name(&d->names, id);
  snprintf(buf, 16, "%u", id);
  return buf;
}

uint32_t eval_item_id(const eval_data *d, const char *name) {
  if (d->named) return intern_get(&d->names, name);
  char *end;
  errno = 0;
  unsigned long v = strtoul(name, &end, 10);
  if (errno || end == name || *end || !isdigit((unsigned char)name[0]) ||
      v >= d->nitems)
    return UINT32_MAX;
  return (uint32_t)v;
}

/* ** Scoring ------------------------------------------------------------------ */

sknn_index *eval_index(const eval_data *d) {
  sknn_index *x = sknn_new(NULL);
  for (size_t s = 0; x && s < d->ntrain; s++) {
    const uint32_t *items;
    size_t n = eval_seq(&d->train, s, &items);
    if (sknn_add_session(x, items, n, (int64_t)s)) {
      sknn_free(x);
      x = NULL;
    }
  }
  return x;
}

int eval_metrics_init(const eval_data *d, metrics *m) {
  int rc = metrics_init(m, d->nitems, d->ncatalog);
  if (!rc) metrics_set_popular(m, d->catalog, d->npopular);
  return rc;
}

/* One query of a kernel or of the re-ranker (ranker non-NULL). */
static int one_query(const sknn_index *x, const sknn_params *p,
                     const sknn_ranker *ranker, const uint32_t *prefix, size_t n,
                     sknn_work *w, sknn_rerank_work *rw, topk_entry *out) {
  if (ranker) return sknn_rerank_query(x, ranker, p, prefix, n, rw, out, EVAL_LIST_LEN);
  return sknn_query(x, prefix, n, p, w, out, EVAL_LIST_LEN);
}

static int score_queries(const eval_data *d, const sknn_index *x,
                         const sknn_params *p, const sknn_ranker *ranker,
                         const eval_opts *o, metrics_report *r);

int eval_kernel(const eval_data *d, const sknn_index *x, const sknn_params *p,
                const eval_opts *o, metrics_report *r) {
  return score_queries(d, x, p, NULL, o, r);
}

int eval_rerank(const eval_data *d, const sknn_index *x, const sknn_params *p,
                const sknn_ranker *ranker, const eval_opts *o,
                metrics_report *r) {
  if (!ranker) return TAILOR_EINVAL;
  return score_queries(d, x, p, ranker, o, r);
}

static int score_queries(const eval_data *d, const sknn_index *x,
                         const sknn_params *p, const sknn_ranker *ranker,
                         const eval_opts *o, metrics_report *r) {
  size_t every = o && o->every ? o->every : 1;
  unsigned repeat = o && o->repeat ? o->repeat : 1;
  size_t nq = (d->nqueries + every - 1) / every;
  metrics m;
  if (eval_metrics_init(d, &m)) return TAILOR_ENOMEM;
  uint64_t *lat = malloc((nq ? nq : 1) * sizeof *lat);
  sknn_work *w = sknn_work_new();
  sknn_rerank_work *rw = ranker ? sknn_rerank_work_new() : NULL;
  int rc = lat && w && (rw || !ranker) ? 0 : TAILOR_ENOMEM;
  topk_entry out[EVAL_LIST_LEN];
  uint32_t list[EVAL_LIST_LEN];
  for (unsigned pass = 0; !rc && pass < repeat; pass++) {
    for (size_t q = 0, qi = 0; q < d->nqueries; q += every, qi++) {
      const eval_query *Q = &d->queries[q];
      const uint32_t *prefix = d->test.items + d->test.start[Q->session];
      uint64_t t0 = util_mono_ns();
      int n = one_query(x, p, ranker, prefix, Q->pos, w, rw, out);
      uint64_t dt = util_mono_ns() - t0;
      if (n < 0) {
        rc = n;
        break;
      }
      if (pass == 0 || dt < lat[qi]) lat[qi] = dt;
      if (o && o->progress && qi % PROGRESS_EVERY == 0)
        o->progress(o->progress_ud, pass * nq + qi, repeat * nq);
      if (pass) continue;
      for (int i = 0; i < n; i++) list[i] = out[i].id;
      metrics_add(&m, list, (size_t)n, prefix[Q->pos]);
    }
  }
  for (size_t qi = 0; !rc && qi < nq; qi++) rc = metrics_add_latency(&m, lat[qi]);
  if (!rc) metrics_report_get(&m, r);
  metrics_free(&m);
  sknn_work_free(w);
  sknn_rerank_work_free(rw);
  free(lat);
  return rc;
}

int eval_replay(const eval_data *d, const eval_replayer *r, const eval_opts *o,
                metrics_report *rep) {
  size_t every = o && o->every ? o->every : 1;
  size_t nq = (d->nqueries + every - 1) / every, qi = 0, asked = 0;
  metrics m;
  if (eval_metrics_init(d, &m)) return TAILOR_ENOMEM;
  uint32_t list[EVAL_LIST_LEN];
  int rc = 0;
  for (size_t s = 0; !rc && s < d->test.n; s++) {
    const uint32_t *items;
    size_t n = eval_seq(&d->test, s, &items);
    for (size_t pos = 0; !rc && pos < n; pos++) {
      if (d->ask[d->test.start[s] + pos] && asked++ % every == 0) {
        uint64_t t0 = util_mono_ns();
        int got = r->recommend(r->ud, s, items, pos, list, EVAL_LIST_LEN);
        uint64_t dt = util_mono_ns() - t0;
        if (got < 0) {
          rc = got;
          break;
        }
        metrics_add(&m, list, (size_t)got, items[pos]);
        rc = metrics_add_latency(&m, dt);
        if (o && o->progress && qi % PROGRESS_EVERY == 0) o->progress(o->progress_ud, qi, nq);
        qi++;
      }
      if (!rc) rc = r->view(r->ud, s, pos, items[pos]);
    }
  }
  if (!rc) metrics_report_get(&m, rep);
  metrics_free(&m);
  return rc;
}

/* ** Parameters ------------------------------------------------------------- */

/* Whether `key` (n bytes) is a parameter some kernel reads: the names are
** those sknn_params_format prints. */
static int param_known(const char *key, size_t n) {
  char buf[1024];
  for (int k = 0; k < SKNN_KERNEL_COUNT; k++) {
    sknn_params p;
    sknn_params_default(&p, (sknn_kernel)k);
    sknn_params_format(&p, buf, sizeof buf);
    for (const char *s = buf; (s = strstr(s, key)) != NULL; s += n)
      if ((s == buf || s[-1] == ' ') && s[n] == '=') return 1;
  }
  return 0;
}

int eval_param(sknn_params *p, const char *kv, tailor_error *err) {
  const char *eq = strchr(kv, '=');
  size_t n = eq ? (size_t)(eq - kv) : strlen(kv);
  if (!eq || n == 0)
    return fail(err, TAILOR_EINVAL, "--param", 0, "'%s': expected key=value", kv);
  if (n == 6 && !memcmp(kv, "kernel", 6))
    return fail(err, TAILOR_EINVAL, "--param", 0,
                "'kernel': choose kernels with --kernel NAME");
  char key[64];
  if (n >= sizeof key || (memcpy(key, kv, n), key[n] = '\0', !param_known(key, n)))
    return fail(err, TAILOR_EINVAL, "--param", 0,
                "unknown key '%.*s' (tailor eval --help lists the keys)",
                (int)(n > 64 ? 64 : n), kv);
  if (sknn_params_set(p, kv))
    return fail(err, TAILOR_EINVAL, "--param", 0,
                "bad value '%s' for key '%s' (not a number, or out of range)",
                eq + 1, key);
  return 0;
}
