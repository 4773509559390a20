/*
** peer.c: the table behind peer.h.  Open addressing with linear probing,
** keyed by the 16 bytes of a peer (IPv4 as ::ffff:a.b.c.d, IPv6 cut to its
** /64), hashed with a seed drawn at start so that no client can choose
** addresses that pile up in one run of slots.  A peer whose count drops to
** 0 leaves at once (backward shift, no tombstones), so the table holds
** only peers with open connections: never more than max_connections.
*/
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "server/peer.h"

#define PEER_MIN_SLOTS 64 /* first table size; a power of two */

typedef struct slot {
  unsigned char key[SRV_PEER_KEY_BYTES];
  long count; /* open connections; 0: the slot is empty */
} slot;

struct srv_peers {
  slot *slots;
  size_t cap; /* a power of two, or 0 before the first peer */
  size_t used;
  uint64_t seed;
};

srv_peers *srv_peers_new(void) {
  srv_peers *p = calloc(1, sizeof *p);
  if (p && uv_random(NULL, NULL, &p->seed, sizeof p->seed, 0, NULL))
    p->seed = uv_hrtime(); /* worse than random, still not known outside */
  return p;
}

void srv_peers_free(srv_peers *p) {
  if (!p) return;
  free(p->slots);
  free(p);
}

int srv_peer_key(const struct sockaddr *sa, unsigned char key[SRV_PEER_KEY_BYTES]) {
  memset(key, 0, SRV_PEER_KEY_BYTES);
  if (sa->sa_family == AF_INET) {
    key[10] = key[11] = 0xff;
    memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    memcpy(key, a->s6_addr, IN6_IS_ADDR_V4MAPPED(a) ? 16 : 8);
    return 0;
  }
  return -1;
}

void srv_peer_name(const unsigned char key[SRV_PEER_KEY_BYTES], char *buf, size_t n) {
  static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
  char text[INET6_ADDRSTRLEN] = "?";
  if (!memcmp(key, mapped, sizeof mapped)) {
    inet_ntop(AF_INET, key + 12, text, sizeof text);
    snprintf(buf, n, "%s", text);
  } else {
    inet_ntop(AF_INET6, key, text, sizeof text);
    snprintf(buf, n, "%s/64", text);
  }
}

static uint64_t mix(uint64_t x) { /* splitmix64's finalizer */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static size_t home(const srv_peers *p, const unsigned char *key) {
  uint64_t a, b;
  memcpy(&a, key, 8);
  memcpy(&b, key + 8, 8);
  return (size_t)mix(mix(a ^ p->seed) ^ b) & (p->cap - 1);
}

/* The slot holding `key`, or the empty slot where it would go. */
static size_t find(const srv_peers *p, const unsigned char *key) {
  size_t i = home(p, key);
  while (p->slots[i].count && memcmp(p->slots[i].key, key, SRV_PEER_KEY_BYTES))
    i = (i + 1) & (p->cap - 1);
  return i;
}

static int grow(srv_peers *p) {
  size_t cap = p->cap ? p->cap * 2 : PEER_MIN_SLOTS;
  slot *old = p->slots, *fresh = calloc(cap, sizeof *fresh);
  if (!fresh) return -1;
  size_t old_cap = p->cap;
  p->slots = fresh;
  p->cap = cap;
  for (size_t i = 0; i < old_cap; i++)
    if (old[i].count) p->slots[find(p, old[i].key)] = old[i];
  free(old);
  return 0;
}

int srv_peers_add(srv_peers *p, const unsigned char key[SRV_PEER_KEY_BYTES], long limit) {
  /* At most half full, so that probes stay short. */
  if ((p->used + 1) * 2 > p->cap && grow(p)) return -1;
  slot *s = &p->slots[find(p, key)];
  if (limit > 0 && s->count >= limit) return 1;
  if (!s->count) {
    memcpy(s->key, key, SRV_PEER_KEY_BYTES);
    p->used++;
  }
  s->count++;
  return 0;
}

void srv_peers_remove(srv_peers *p, const unsigned char key[SRV_PEER_KEY_BYTES]) {
  if (!p->cap) return;
  size_t mask = p->cap - 1, i = find(p, key);
  if (!p->slots[i].count || --p->slots[i].count) return;
  /* Empty slot i; move back each later entry of the run that may no
     longer be reached from its home across the hole. */
  for (size_t j = (i + 1) & mask; p->slots[j].count; j = (j + 1) & mask) {
    size_t h = home(p, p->slots[j].key);
    int stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
    if (stays) continue;
    p->slots[i] = p->slots[j];
    i = j;
  }
  p->slots[i].count = 0;
  p->used--;
}
