/*
** test_peer.c: the server's connections-per-address table
** (host/server/peer.c, for server.max_conns_per_peer): which addresses are
** one peer, the limit, and a long random run of adds and removes checked
** against plain counters, through growth and the backward-shift removal.
*/
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "server/peer.h"

static void key4(const char *text, unsigned char key[SRV_PEER_KEY_BYTES]) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(1234)};
  inet_pton(AF_INET, text, &sa.sin_addr);
  CHECK_INT(srv_peer_key((struct sockaddr *)&sa, key), 0);
}

static void key6(const char *text, unsigned char key[SRV_PEER_KEY_BYTES]) {
  struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(1234)};
  inet_pton(AF_INET6, text, &sa.sin6_addr);
  CHECK_INT(srv_peer_key((struct sockaddr *)&sa, key), 0);
}

static void test_keys(void) {
  unsigned char a[SRV_PEER_KEY_BYTES], b[SRV_PEER_KEY_BYTES];
  char name[64];
  key4("192.0.2.7", a);
  key6("::ffff:192.0.2.7", b);
  CHECK(!memcmp(a, b, sizeof a)); /* a dual-stack listener sees one peer */
  srv_peer_name(a, name, sizeof name);
  CHECK_STR(name, "192.0.2.7");
  key4("192.0.2.8", b);
  CHECK(memcmp(a, b, sizeof a));
  key4("127.0.0.1", a);
  key4("127.0.0.2", b);
  CHECK(memcmp(a, b, sizeof a)); /* loopback addresses are peers too */
  key6("2001:db8:1:2::5", a);
  key6("2001:db8:1:2:ffff:1:2:3", b);
  CHECK(!memcmp(a, b, sizeof a)); /* one /64 */
  srv_peer_name(a, name, sizeof name);
  CHECK_STR(name, "2001:db8:1:2::/64");
  key6("2001:db8:1:3::5", b);
  CHECK(memcmp(a, b, sizeof a));
  key6("::1", a);
  key4("0.0.0.1", b);
  CHECK(memcmp(a, b, sizeof a));
  struct sockaddr un = {.sa_family = AF_UNIX};
  CHECK_INT(srv_peer_key(&un, a), -1);
}

static void test_limit(void) {
  srv_peers *p = srv_peers_new();
  unsigned char a[SRV_PEER_KEY_BYTES], b[SRV_PEER_KEY_BYTES];
  key4("198.51.100.1", a);
  key4("198.51.100.2", b);
  for (int i = 0; i < 3; i++) CHECK_INT(srv_peers_add(p, a, 3), 0);
  CHECK_INT(srv_peers_add(p, a, 3), 1);
  CHECK_INT(srv_peers_add(p, b, 3), 0); /* another peer has its own room */
  srv_peers_remove(p, a);
  CHECK_INT(srv_peers_add(p, a, 3), 0);
  CHECK_INT(srv_peers_add(p, a, 3), 1);
  CHECK_INT(srv_peers_add(p, a, 0), 0); /* 0: no limit */
  CHECK_INT(srv_peers_add(p, a, 4), 1);
  srv_peers_free(p);
}

/* Whether the table holds exactly `n` connections of `key`. */
static int holds(srv_peers *p, const unsigned char *key, long n) {
  if (n > 0 && srv_peers_add(p, key, n) != 1) return 0;
  if (srv_peers_add(p, key, n + 1) != 0) return 0;
  srv_peers_remove(p, key);
  return 1;
}

static void test_random_run(void) {
  enum { PEERS = 3000, OPS = 200000 };
  static unsigned char keys[PEERS][SRV_PEER_KEY_BYTES];
  static long count[PEERS];
  srv_peers *p = srv_peers_new();
  srand(7);
  for (int i = 0; i < PEERS; i++) {
    /* Neighbouring addresses, as one network's clients are. */
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(0x0a000000u + (unsigned)i);
    srv_peer_key((struct sockaddr *)&sa, keys[i]);
  }
  int wrong = 0;
  for (int op = 0; op < OPS; op++) {
    /* Few peers at first, then most of them, then back down: the table
       grows and empties through runs of collisions. */
    int span = op < OPS / 3 ? 50 : op < 2 * OPS / 3 ? PEERS : 200;
    int i = rand() % span;
    if (count[i] && rand() % 2) {
      srv_peers_remove(p, keys[i]);
      count[i]--;
    } else {
      int rc = srv_peers_add(p, keys[i], 5);
      wrong += rc != (count[i] >= 5);
      if (!rc) count[i]++;
    }
    if (op % 997 == 0)
      for (int k = 0; k < PEERS; k++) wrong += !holds(p, keys[k], count[k]);
  }
  for (int k = 0; k < PEERS; k++) wrong += !holds(p, keys[k], count[k]);
  CHECK_INT(wrong, 0);
  for (int k = 0; k < PEERS; k++)
    while (count[k]--) srv_peers_remove(p, keys[k]);
  for (int k = 0; k < PEERS; k++) wrong += !holds(p, keys[k], 0);
  CHECK_INT(wrong, 0);
  srv_peers_free(p);
}

int main(void) {
  RUN(test_keys);
  RUN(test_limit);
  RUN(test_random_run);
  return CHECK_DONE();
}
