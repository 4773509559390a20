/*
** peer.h: open connections counted by client address, for
** server.max_conns_per_peer.  Used by the event loop only (no locking).
**
** A peer is an IPv4 address, or an IPv6 /64 (one host is usually given a
** whole /64, so counting single IPv6 addresses would limit nothing); an
** IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 peer it names.
** Loopback addresses are peers like any other.  Unix-socket clients have
** no address and are not counted: who may connect there is up to the
** socket file's permissions.
*/
#ifndef TAILOR_SRV_PEER_H
#define TAILOR_SRV_PEER_H

#include <stddef.h>
#include <sys/socket.h>

#define SRV_PEER_KEY_BYTES 16

typedef struct srv_peers srv_peers;

/* An empty table; NULL when out of memory.  srv_peers_free() frees it. */
srv_peers *srv_peers_new(void);
void srv_peers_free(srv_peers *p);

/* The peer of a client address into `key`: 0, or -1 for an address that
   is neither IPv4 nor IPv6. */
int srv_peer_key(const struct sockaddr *sa, unsigned char key[SRV_PEER_KEY_BYTES]);

/* Count one more connection of `key` unless `limit` of them are open
   already (limit 0: no limit).  0 when counted, 1 at the limit, -1 out of
   memory (not counted either way). */
int srv_peers_add(srv_peers *p, const unsigned char key[SRV_PEER_KEY_BYTES], long limit);

/* One connection of `key` fewer (it was counted by srv_peers_add). */
void srv_peers_remove(srv_peers *p, const unsigned char key[SRV_PEER_KEY_BYTES]);

/* The peer for messages: "192.0.2.7" or "2001:db8:1:2::/64". */
void srv_peer_name(const unsigned char key[SRV_PEER_KEY_BYTES], char *buf, size_t n);

#endif /* TAILOR_SRV_PEER_H */
