/*
** intern.c: string interning with open addressing and an arena of strings.
*/
#include "index/intern.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK (64u << 10)

uint64_t intern_hash(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  /* Mix the high bits down: the table indexes with the low bits. */
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return h;
}

void intern_init(intern *t) { memset(t, 0, sizeof *t); }

void intern_free(intern *t) {
  for (size_t i = 0; i < t->nblocks; i++) free(t->blocks[i]);
  free(t->blocks);
  free(t->slots);
  free(t->names);
  memset(t, 0, sizeof *t);
}

/*
** In the arena, each string is kept after its id and its length (4 bytes
** each, unaligned): [id][len][bytes]['\0'].  names[id] points at the bytes;
** a slot refers to the entry itself (REF: its block, and its offset in the
** block, plus one so that no slot is 0), so a probe whose hash matches
** reads the entry and not names[] first: one cache miss fewer per lookup.
*/
#define ENTRY_HEAD (2 * sizeof(uint32_t))
#define MAX_BLOCKS 0xffffu /* block numbers are 16 bits, and 0xffff|0xffff+1
                              would be 0 */

static uint32_t name_len(const char *name) {
  uint32_t len;
  memcpy(&len, name - sizeof len, sizeof len);
  return len;
}

static const char *entry_of(const intern *t, uint32_t ref) {
  ref -= 1;
  return t->blocks[ref >> 16] + (ref & 0xffffu);
}

static uint32_t entry_id(const char *e) {
  uint32_t id;
  memcpy(&id, e, sizeof id);
  return id;
}

static int same_name(const char *e, const char *s, size_t len) {
  return name_len(e + ENTRY_HEAD) == len && memcmp(e + ENTRY_HEAD, s, len) == 0;
}

static uint32_t find_slot(const intern *t, const char *s, size_t len, uint32_t h,
                          int *found) {
  uint32_t mask = t->nslots - 1, i = h & mask;
  for (;;) {
    uint64_t v = t->slots[i];
    if (v == 0) {
      *found = 0;
      return i;
    }
    if ((uint32_t)(v >> 32) == h && same_name(entry_of(t, (uint32_t)v), s, len)) {
      *found = 1;
      return i;
    }
    i = (i + 1) & mask;
  }
}

/* The id a full slot holds. */
static uint32_t slot_id(const intern *t, uint32_t i) {
  return entry_id(entry_of(t, (uint32_t)t->slots[i]));
}

uint32_t intern_get_key(const intern *t, const intern_key *k) {
  if (!t->nslots || !k->len) return INTERN_NONE;
  int found;
  uint32_t i = find_slot(t, k->s, k->len, k->hash, &found);
  return found ? slot_id(t, i) : INTERN_NONE;
}

void intern_prefetch_entry(const intern *t, const intern_key *k) {
  if (!t->nslots) return;
  uint64_t v = t->slots[k->hash & (t->nslots - 1)];
  if (v && (uint32_t)(v >> 32) == k->hash) __builtin_prefetch(entry_of(t, (uint32_t)v));
}

uint32_t intern_get(const intern *t, const char *s) {
  if (!t->nslots) return INTERN_NONE;
  int found;
  size_t len = strlen(s);
  uint32_t h = (uint32_t)intern_hash(s, len);
  uint32_t i = find_slot(t, s, len, h, &found);
  return found ? slot_id(t, i) : INTERN_NONE;
}

static int grow_slots(intern *t) {
  uint32_t n = t->nslots ? t->nslots * 2 : 1024;
  uint64_t *slots = calloc(n, sizeof *slots);
  if (!slots) return -1;
  for (uint32_t j = 0; j < t->nslots; j++) { /* erased ids have no slot */
    uint64_t v = t->slots[j];
    if (!v) continue;
    uint32_t i = (uint32_t)(v >> 32) & (n - 1);
    while (slots[i]) i = (i + 1) & (n - 1);
    slots[i] = v;
  }
  free(t->slots);
  t->slots = slots;
  t->nslots = n;
  return 0;
}

/* A copy of `s` in the arena, after `id` and its length; *ref is where
   its entry is, for a slot. */
static char *arena_copy(intern *t, uint32_t id, const char *s, size_t len, uint32_t *ref) {
  uint32_t len32 = (uint32_t)len;
  size_t need = ENTRY_HEAD + len + 1;
  if (len > UINT32_MAX - 1) return NULL;
  if (t->arena_used + need > t->arena_cap) {
    size_t cap = need > ARENA_BLOCK ? need : ARENA_BLOCK;
    if (t->nblocks >= MAX_BLOCKS) return NULL;
    char **blocks = realloc(t->blocks, (t->nblocks + 1) * sizeof *blocks);
    if (!blocks) return NULL;
    t->blocks = blocks;
    char *b = malloc(cap);
    if (!b) return NULL;
    t->blocks[t->nblocks++] = b;
    t->arena = b;
    t->arena_used = 0;
    t->arena_cap = cap;
  }
  /* an entry starts below ARENA_BLOCK (a larger one has a block of its own,
     at 0): its offset takes 16 bits */
  *ref = ((uint32_t)(t->nblocks - 1) << 16 | (uint32_t)t->arena_used) + 1;
  char *p = t->arena + t->arena_used;
  memcpy(p, &id, sizeof id);
  memcpy(p + sizeof id, &len32, sizeof len32);
  memcpy(p + ENTRY_HEAD, s, len + 1);
  t->arena_used += need;
  return p + ENTRY_HEAD;
}

/* Room for one more id in names. */
static int grow_names(intern *t) {
  if (t->n < t->cap) return 0;
  uint32_t cap = t->cap ? t->cap * 2 : 1024;
  char **names = realloc(t->names, cap * sizeof *names);
  if (!names) return -1;
  t->names = names;
  t->cap = cap;
  return 0;
}

intern_key intern_key_of(const char *s) {
  size_t len = strlen(s);
  return (intern_key){s, len, (uint32_t)intern_hash(s, len)};
}

uint32_t intern_put_key(intern *t, const intern_key *k) {
  if (!k->len) return INTERN_NONE; /* "" is what an erased id reads as */
  /* Keep the load factor under 1/2 so probes stay short. */
  if ((t->n + 1) * 2 > t->nslots && grow_slots(t)) return INTERN_NONE;
  int found;
  uint32_t i = find_slot(t, k->s, k->len, k->hash, &found);
  if (found) return slot_id(t, i);
  if (t->n == INTERN_NONE - 1 || grow_names(t)) return INTERN_NONE;
  uint32_t ref;
  char *copy = arena_copy(t, t->n, k->s, k->len, &ref);
  if (!copy) return INTERN_NONE;
  t->names[t->n] = copy;
  t->slots[i] = (uint64_t)k->hash << 32 | ref;
  return t->n++;
}

uint32_t intern_put(intern *t, const char *s) {
  intern_key k = intern_key_of(s);
  return intern_put_key(t, &k);
}

uint32_t intern_put_erased(intern *t) {
  if (t->n == INTERN_NONE - 1 || grow_names(t)) return INTERN_NONE;
  uint32_t ref;
  char *copy = arena_copy(t, t->n, "", 0, &ref);
  if (!copy) return INTERN_NONE;
  t->names[t->n] = copy;
  return t->n++;
}

uint32_t intern_forget(intern *t, const char *s) {
  if (!t->nslots) return INTERN_NONE;
  int found;
  uint32_t mask = t->nslots - 1;
  size_t len = strlen(s);
  uint32_t i = find_slot(t, s, len, (uint32_t)intern_hash(s, len), &found);
  if (!found) return INTERN_NONE;
  uint32_t id = slot_id(t, i);
  /* Backward-shift deletion keeps every other key reachable without
     tombstones: move later members of the cluster into the hole when their
     home slot allows it. */
  t->slots[i] = 0;
  for (uint32_t j = (i + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
    uint32_t home = (uint32_t)(t->slots[j] >> 32) & mask;
    if (((j - home) & mask) >= ((j - i) & mask)) {
      t->slots[i] = t->slots[j];
      t->slots[j] = 0;
      i = j;
    }
  }
  char *name = t->names[id];
  memset(name - sizeof(uint32_t), 0, sizeof(uint32_t) + name_len(name));
  t->forgets++;
  return id;
}

const char *intern_name(const intern *t, uint32_t id) {
  return id < t->n ? t->names[id] : NULL;
}

size_t intern_bytes(const intern *t) {
  return t->nslots * sizeof *t->slots + t->cap * sizeof *t->names +
         t->nblocks * ARENA_BLOCK;
}
