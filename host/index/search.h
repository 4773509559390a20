/*
** search.h: what visitors go on to view, cart and buy after searching a
** term, for "because you searched 'running shoes'" recommendations.
**
** A search event (Segment "Products Searched", GA4 "search", tailor's
** "search") notes its term, normalized (lowercase, trimmed, inner runs of
** space as one), among the person's last SEARCH_RECENT terms.  A
** view, cart or purchase within SEARCH_WINDOW_MS after a search (in the
** same session when both name one) adds the event's weight (views 1,
** carts 3, purchases 5, as trending counts them) to the item under each
** of those terms.  Each term keeps at most SEARCH_TOP items; when its list
** is full a new item replaces the lightest one and inherits its weight
** (Space-Saving, as the co-occurrence lists do), so the heavy items stay
** exact.  Counts do not decay: a term's items change slowly.
**
** The index owns one search_index (idx.search); ids are the index's own
** (items, people, sessions).  Not safe for concurrent writers; readers run
** under the index's read lock like every other kernel.
*/
#ifndef TAILOR_SEARCH_H
#define TAILOR_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "index/intern.h"
#include "index/topk.h"

#define SEARCH_MAX_TERM 64               /* bytes of a normalized term kept */
#define SEARCH_TOP 32                    /* items kept per term */
#define SEARCH_RECENT 5                  /* a person's last terms */
#define SEARCH_WINDOW_MS (30 * 60 * 1000) /* a search leads to what follows
                                            within a session's pause */

typedef struct search_hit {
  uint32_t item;
  float w;
} search_hit;

typedef struct search_term {
  uint32_t searches; /* times searched */
  uint32_t n;        /* entries of hit in use */
  search_hit hit[SEARCH_TOP];
} search_term;

typedef struct search_recent {
  uint32_t term;
  uint32_t session; /* session id + 1, 0 without one */
  int64_t ts;
} search_recent;

typedef struct search_person {
  uint32_t n; /* entries of r in use, oldest first */
  search_recent r[SEARCH_RECENT];
} search_person;

typedef struct search_index {
  intern terms;          /* normalized terms */
  search_term *term;     /* by term id */
  uint32_t term_cap;
  search_person *person; /* by person id */
  uint32_t person_cap;
} search_index;

/* A new, empty index (NULL when out of memory); search_free releases it. */
search_index *search_new(void);
void search_free(search_index *s);

/* An anonymous visitor's recent terms folded into the customer they
   turned out to be (a login mid-session: the searches before it lead to
   what the customer views after it, and stay the session's searches); the
   newest SEARCH_RECENT distinct terms of both are kept.  0, or -1 when out
   of memory. */
int search_merge_person(search_index *s, uint32_t from, uint32_t into);

/* A person's recent terms dropped (erasure: none of their searches or
   reads stays, nor goes into a checkpoint). */
void search_forget_person(search_index *s, uint32_t person);

/*
** Normalize a query into out (cap bytes, NUL-terminated): letters
** lowercased (ASCII, and the capitals of Latin-1, Latin Extended-A, Greek
** and Cyrillic; accents and punctuation stay), leading and trailing space
** dropped, inner runs of space
** (and tabs, newlines) one space, cut to SEARCH_MAX_TERM - 1 bytes at a
** UTF-8 character boundary.  Returns the length; 0 for an empty query.
*/
size_t search_normalize(const char *query, char *out, size_t cap);

/* Note that `person` searched `query` at ts (session INTERN_NONE when the
   event has none).  0, or -1 when out of memory. */
int search_note(search_index *s, uint32_t person, uint32_t session,
                const char *query, int64_t ts);

/* Credit `item` with weight w under the person's searches that lead to an
   event at ts in `session` (INTERN_NONE: any).  0, or -1 out of memory. */
int search_credit(search_index *s, uint32_t person, uint32_t session,
                  uint32_t item, double w, int64_t ts);

/*
** The person's search terms, newest first, distinct, at most cap: those of
** `session` when it is not INTERN_NONE, else those within SEARCH_WINDOW_MS
** before now.  The strings are the index's (valid until the next write).
*/
size_t search_terms_of(const search_index *s, uint32_t person, uint32_t session,
                       int64_t now, const char **out, size_t cap);

/* Times a term (normalized here) was searched; 0 when never. */
uint32_t search_count(const search_index *s, const char *query);

/*
** The k items most led to by a term (normalized here), heaviest first,
** those `keep` (may be NULL) accepts; rows' aux is the term id.  Returns
** the number written to out.
*/
size_t search_top_k(const search_index *s, const char *query,
                    int (*keep)(void *ud, uint32_t item), void *ud, size_t k,
                    topk_entry *out);

/*
** The state as one byte string (malloc'd, the caller frees; *len its
** size), for the checkpoint; NULL when out of memory.  search_load reads
** it back into an empty index, checking ids against the index's counts;
** 0, or -1 when the bytes are inconsistent or memory runs out.
*/
void *search_save(const search_index *s, size_t *len);
int search_load(search_index *s, const void *data, size_t len, uint32_t nitems,
                uint32_t npeople, uint32_t nsessions);

#endif /* TAILOR_SEARCH_H */
