/*
** intern.h: external string ids (items, customers, sessions) become dense
** 32-bit ids at the edge, so kernels work on arrays of integers.
**
** An intern table owns copies of its strings; ids are 0..n-1 in order of
** first appearance and never change.  Not thread-safe: the engine writes
** under its write lock and reads under its read lock.
*/
#ifndef TAILOR_INTERN_H
#define TAILOR_INTERN_H

#include <stddef.h>
#include <stdint.h>

#define INTERN_NONE UINT32_MAX

typedef struct intern {
  uint64_t *slots;     /* open addressing: the string's 32-bit hash << 32
                          | where its entry (id, length, bytes) is in the
                          arena, 0 = empty; a probe compares hashes in the
                          slot and reads an entry only when they match */
  char **names;        /* id -> string (points into the arena) */
  uint32_t n, cap;     /* ids in use; capacity of names */
  uint32_t nslots;     /* power of two */
  char *arena;         /* current string block */
  size_t arena_used, arena_cap;
  char **blocks;       /* every block, for freeing */
  size_t nblocks;
  uint32_t forgets;    /* strings forgotten so far: an id looked up
                          earlier still names its string while this has
                          not changed (ids never move otherwise) */
} intern;

void intern_init(intern *t);
void intern_free(intern *t);

/* The id of `s`, or INTERN_NONE. */
uint32_t intern_get(const intern *t, const char *s);

/* The id of `s`, adding it when new; INTERN_NONE when out of memory or for
   the empty string, which is never an id. */
uint32_t intern_put(intern *t, const char *s);

/*
** The same in two steps, for a caller that looks up several strings at
** once (an event's person, session and items): measure and hash each
** string first (intern_key_of) and prefetch where it will be looked for
** (intern_prefetch), so the tables' cache misses overlap instead of
** following one another; then put it (intern_put_key).  A key borrows its
** string, which must stay unchanged until the put.
*/
typedef struct intern_key {
  const char *s;
  size_t len;
  uint32_t hash;
} intern_key;

intern_key intern_key_of(const char *s);
uint32_t intern_put_key(intern *t, const intern_key *k);

static inline void intern_prefetch(const intern *t, const intern_key *k) {
  if (t->nslots) __builtin_prefetch(&t->slots[k->hash & (t->nslots - 1)]);
}

/* Looking further ahead (idx_apply_batch): once the key's home slot is in
   the cache, fetch the string it refers to when the hashes agree; then
   read the id, INTERN_NONE when the string is not interned. */
void intern_prefetch_entry(const intern *t, const intern_key *k);
uint32_t intern_get_key(const intern *t, const intern_key *k);

/*
** Forget a string (the right to erasure): the id no longer resolves, its
** text is wiped from memory, and the id number is never reused.  Returns
** the id it had, or INTERN_NONE.
*/
uint32_t intern_forget(intern *t, const char *s);

/* Append an id whose string was forgotten (for loading a checkpoint with
   the same ids); it resolves from no string.  Returns it, or INTERN_NONE. */
uint32_t intern_put_erased(intern *t);

/* The string of an id (borrowed, lives as long as the table), or NULL. */
const char *intern_name(const intern *t, uint32_t id);

/* Bytes held by the table. */
size_t intern_bytes(const intern *t);

/* 64-bit FNV-1a; also used for deterministic assignment elsewhere. */
uint64_t intern_hash(const char *s, size_t len);

#endif /* TAILOR_INTERN_H */
