/*
** search.c: the items each search term leads to, and each person's last
** terms (search.h says what is counted and why).
*/
#include <stdlib.h>
#include <string.h>

#include "index/search.h"

search_index *search_new(void) {
  search_index *s = calloc(1, sizeof *s);
  if (s) intern_init(&s->terms);
  return s;
}

void search_free(search_index *s) {
  if (!s) return;
  intern_free(&s->terms);
  free(s->term);
  free(s->person);
  free(s);
}

static int is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*
** The lowercase of a capital letter of the two-byte UTF-8 range (Latin-1,
** Latin Extended-A, Greek, Cyrillic: the shops' European languages), so
** that "ÉTÉ" is the term "été" (and not "ÉtÉ": ASCII letters alone made
** one term of each spelling, and one shown as typed in capitals half
** lowered).  Lowercase takes as many bytes as the capital everywhere
** here; what is not a capital comes back as it is.
*/
static uint32_t lower_cp(uint32_t c) {
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3AB && c != 0x3A2) ||
      (c >= 0x410 && c <= 0x42F))
    return c + 0x20;
  if (c >= 0x400 && c <= 0x40F) return c + 0x50;
  if (c == 0x178) return 0xFF; /* Ÿ; İ (0x130) lowers to an ASCII i: kept */
  if ((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
    return c % 2 ? c : c + 1; /* pairs: capital even, small odd */
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
    return c % 2 ? c + 1 : c; /* pairs: capital odd, small even */
  return c;
}

size_t search_normalize(const char *query, char *out, size_t cap) {
  size_t n = 0, max = cap ? cap - 1 : 0;
  if (max > SEARCH_MAX_TERM - 1) max = SEARCH_MAX_TERM - 1;
  int space = 0;
  for (const unsigned char *p = (const unsigned char *)(query ? query : ""); *p; p++) {
    if (is_space(*p)) {
      space = n > 0;
      continue;
    }
    if (space && n < max) out[n++] = ' ';
    space = 0;
    if (n >= max) break;
    if (p[0] >= 0xC2 && p[0] < 0xE0 && (p[1] & 0xC0) == 0x80) { /* two bytes */
      if (n + 2 > max) break;
      uint32_t c = lower_cp((uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F));
      out[n++] = (char)(0xC0 | c >> 6);
      out[n++] = (char)(0x80 | (c & 0x3F));
      p++;
      continue;
    }
    out[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
  }
  /* Cut at a character boundary: drop a trailing partial UTF-8 sequence. */
  size_t end = n;
  while (end && ((unsigned char)out[end - 1] & 0xC0) == 0x80) end--;
  if (end && (unsigned char)out[end - 1] >= 0xC0) {
    unsigned char lead = (unsigned char)out[end - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (n - (end - 1) < want) n = end - 1;
  }
  while (n && out[n - 1] == ' ') n--;
  if (cap) out[n] = '\0';
  return n;
}

static int grow(void **v, uint32_t *cap, uint32_t need, size_t size) {
  if (need < *cap) return 0;
  uint32_t n = *cap ? *cap : 256;
  while (n <= need) n *= 2;
  char *p = realloc(*v, (size_t)n * size);
  if (!p) return -1;
  memset(p + (size_t)*cap * size, 0, (size_t)(n - *cap) * size);
  *v = p;
  *cap = n;
  return 0;
}

static uint32_t term_id(const search_index *s, const char *query) {
  char t[SEARCH_MAX_TERM];
  return search_normalize(query, t, sizeof t) ? intern_get(&s->terms, t) : INTERN_NONE;
}

int search_note(search_index *s, uint32_t person, uint32_t session,
                const char *query, int64_t ts) {
  char t[SEARCH_MAX_TERM];
  if (!search_normalize(query, t, sizeof t)) return 0;
  uint32_t id = intern_put(&s->terms, t);
  if (id == INTERN_NONE ||
      grow((void **)&s->term, &s->term_cap, id, sizeof *s->term) ||
      grow((void **)&s->person, &s->person_cap, person, sizeof *s->person))
    return -1;
  s->term[id].searches++;
  search_person *p = &s->person[person];
  for (uint32_t i = 0; i < p->n; i++) /* a repeated term moves to the end */
    if (p->r[i].term == id) {
      memmove(&p->r[i], &p->r[i + 1], (p->n - i - 1) * sizeof *p->r);
      p->n--;
      break;
    }
  if (p->n == SEARCH_RECENT) {
    memmove(&p->r[0], &p->r[1], (SEARCH_RECENT - 1) * sizeof *p->r);
    p->n--;
  }
  p->r[p->n++] = (search_recent){id, session == INTERN_NONE ? 0 : session + 1, ts};
  return 0;
}

/* Add w to item under term (Space-Saving past SEARCH_TOP). */
static void term_add(search_term *t, uint32_t item, float w) {
  uint32_t light = 0;
  for (uint32_t i = 0; i < t->n; i++) {
    if (t->hit[i].item == item) {
      t->hit[i].w += w;
      return;
    }
    if (t->hit[i].w < t->hit[light].w) light = i;
  }
  if (t->n < SEARCH_TOP)
    t->hit[t->n++] = (search_hit){item, w};
  else
    t->hit[light] = (search_hit){item, t->hit[light].w + w};
}

int search_credit(search_index *s, uint32_t person, uint32_t session,
                  uint32_t item, double w, int64_t ts) {
  if (person >= s->person_cap) return 0;
  const search_person *p = &s->person[person];
  for (uint32_t i = 0; i < p->n; i++) {
    const search_recent *r = &p->r[i];
    if (ts < r->ts || ts - r->ts > SEARCH_WINDOW_MS) continue;
    if (r->session && session != INTERN_NONE && r->session != session + 1) continue;
    term_add(&s->term[r->term], item, (float)w);
  }
  return 0;
}

int search_merge_person(search_index *s, uint32_t from, uint32_t into) {
  if (from >= s->person_cap || !s->person[from].n) return 0;
  if (grow((void **)&s->person, &s->person_cap, into, sizeof *s->person)) return -1;
  search_recent all[2 * SEARCH_RECENT];
  uint32_t n = 0;
  const search_person *a = &s->person[from], *b = &s->person[into];
  for (uint32_t i = 0; i < a->n; i++) all[n++] = a->r[i];
  for (uint32_t i = 0; i < b->n; i++) all[n++] = b->r[i];
  for (uint32_t i = 1; i < n; i++) /* by time, oldest first */
    for (uint32_t j = i; j > 0 && all[j - 1].ts > all[j].ts; j--) {
      search_recent t = all[j];
      all[j] = all[j - 1];
      all[j - 1] = t;
    }
  /* The newest of each term, at most SEARCH_RECENT, kept oldest first. */
  search_person out = {0};
  for (uint32_t i = n; i-- > 0 && out.n < SEARCH_RECENT;) {
    int seen = 0;
    for (uint32_t k = 0; k < out.n; k++) seen |= out.r[k].term == all[i].term;
    if (!seen) out.r[out.n++] = all[i];
  }
  for (uint32_t i = 0; i < out.n / 2; i++) {
    search_recent t = out.r[i];
    out.r[i] = out.r[out.n - 1 - i];
    out.r[out.n - 1 - i] = t;
  }
  s->person[into] = out;
  memset(&s->person[from], 0, sizeof s->person[from]);
  return 0;
}

void search_forget_person(search_index *s, uint32_t person) {
  if (s && person < s->person_cap) memset(&s->person[person], 0, sizeof s->person[person]);
}

size_t search_terms_of(const search_index *s, uint32_t person, uint32_t session,
                       int64_t now, const char **out, size_t cap) {
  if (person >= s->person_cap) return 0;
  const search_person *p = &s->person[person];
  size_t n = 0;
  for (uint32_t i = p->n; i-- > 0 && n < cap;) {
    const search_recent *r = &p->r[i];
    if (session != INTERN_NONE ? r->session != session + 1
                               : now - r->ts > SEARCH_WINDOW_MS)
      continue;
    out[n++] = intern_name(&s->terms, r->term);
  }
  return n;
}

uint32_t search_count(const search_index *s, const char *query) {
  uint32_t id = term_id(s, query);
  return id < s->term_cap ? s->term[id].searches : 0;
}

size_t search_top_k(const search_index *s, const char *query,
                    int (*keep)(void *ud, uint32_t item), void *ud, size_t k,
                    topk_entry *out) {
  uint32_t id = term_id(s, query);
  if (id >= s->term_cap) return 0;
  const search_term *t = &s->term[id];
  topk h;
  topk_init(&h, out, k);
  for (uint32_t i = 0; i < t->n; i++)
    if (!keep || keep(ud, t->hit[i].item))
      topk_push(&h, t->hit[i].item, id, t->hit[i].w);
  return topk_sorted(&h);
}

/*
** The saved form: u32 terms; per term its text (u32 length, bytes), its
** search_term; u32 people; per person its search_person.  Plain structs:
** a checkpoint is for the machine that wrote it.
*/
typedef struct wbuf {
  char *p;
  size_t n, cap;
  int err;
} wbuf;

static void wput(wbuf *b, const void *v, size_t n) {
  if (b->err) return;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->err = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, v, n);
  b->n += n;
}

void *search_save(const search_index *s, size_t *len) {
  wbuf b = {0};
  uint32_t nt = s->terms.n, np = s->person_cap;
  while (np && !s->person[np - 1].n) np--;
  wput(&b, &nt, sizeof nt);
  for (uint32_t i = 0; i < nt; i++) {
    const char *name = intern_name(&s->terms, i);
    uint32_t n = name ? (uint32_t)strlen(name) : 0;
    static const search_term none;
    wput(&b, &n, sizeof n);
    wput(&b, name, n);
    wput(&b, i < s->term_cap ? &s->term[i] : &none, sizeof none);
  }
  wput(&b, &np, sizeof np);
  if (np) wput(&b, s->person, np * sizeof *s->person);
  if (b.err || !b.p) {
    free(b.p);
    return NULL;
  }
  *len = b.n;
  return b.p;
}

static int rget(const char **p, const char *end, void *out, size_t n) {
  if ((size_t)(end - *p) < n) return -1;
  memcpy(out, *p, n);
  *p += n;
  return 0;
}

int search_load(search_index *s, const void *data, size_t len, uint32_t nitems,
                uint32_t npeople, uint32_t nsessions) {
  const char *p = data, *end = p + len;
  uint32_t nt, np;
  if (rget(&p, end, &nt, sizeof nt)) return -1;
  for (uint32_t i = 0; i < nt; i++) {
    uint32_t n;
    char name[SEARCH_MAX_TERM];
    if (rget(&p, end, &n, sizeof n) || n >= sizeof name || rget(&p, end, name, n))
      return -1;
    name[n] = '\0';
    if (intern_put(&s->terms, name) != i ||
        grow((void **)&s->term, &s->term_cap, i, sizeof *s->term) ||
        rget(&p, end, &s->term[i], sizeof *s->term) || s->term[i].n > SEARCH_TOP)
      return -1;
    for (uint32_t h = 0; h < s->term[i].n; h++)
      if (s->term[i].hit[h].item >= nitems) return -1;
  }
  if (rget(&p, end, &np, sizeof np) || np > npeople) return -1;
  if (np && grow((void **)&s->person, &s->person_cap, np - 1, sizeof *s->person))
    return -1;
  for (uint32_t i = 0; i < np; i++) {
    search_person *sp = &s->person[i];
    if (rget(&p, end, sp, sizeof *sp) || sp->n > SEARCH_RECENT) return -1;
    for (uint32_t r = 0; r < sp->n; r++)
      if (sp->r[r].term >= nt || sp->r[r].session > nsessions) return -1;
  }
  return p == end ? 0 : -1;
}
