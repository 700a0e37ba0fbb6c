/*
 * udp_table.h - the UDP session table (udp_table_*): open addressing with
 * linear probing and backward-shift deletion, kept at most half full, so a
 * lookup stays a probe or two at 100,000 sessions and never scans.
 *
 * The sessions themselves are owned by udp_session.c; the table only
 * indexes them.
 */
#ifndef PPFWD_UDP_TABLE_H
#define PPFWD_UDP_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop/loop.h"

struct udp_lsn;
struct upstream_cfg;

/* Who a session is for: the datagram's source, and the real client named by
 * an accepted header. Built zeroed, so keys compare with memcmp. */
struct udp_key {
    uint8_t peer[16], client[16]; /* IPv4 in the first 4 bytes */
    uint16_t peer_port, client_port;
    uint8_t peer_family;
    uint8_t client_kind; /* 0: no header, 1: LOCAL header, else AF_INET/AF_INET6 */
    uint8_t pad[2];
};

/* UDP_GRO on a session's socket: not asked for until the upstream sends a
 * run; then on trial until a run comes coalesced (on) or GRO_TRIAL_RUNS
 * runs came without (off, for good). */
enum udp_gro { GRO_NONE, GRO_TRIAL, GRO_ON, GRO_OFF };

struct udp_sess {
    struct udp_key key;
    uint64_t hash;
    struct udp_lsn *u;
    int fd; /* connected to the upstream */
    struct timer timer;
    struct loop_work free_work; /* sess_free, at the end of the iteration */
    uint64_t start_ms, active_ms;
    struct sockaddr_storage peer; /* where replies go: the client or its front proxy */
    socklen_t peerlen;
    struct sockaddr_storage client; /* the real client */
    const struct upstream_cfg *up;
    uint8_t uid[16]; /* unique-id TLV, one per session */
    /* Wildcard socket: the IP(V6)_PKTINFO a reply is sent with; ctllen 0 otherwise. */
    uint8_t ctl[64];
    size_t ctllen;
    uint64_t dg_in, dg_out, bytes_in, bytes_out;
    int err; /* the last upstream error (a refused read, a failed send), or 0 */
    /* Until the upstream first answers, the session is in its listener's
     * list of unanswered sessions, oldest first: they end after
     * reply-timeout, and the oldest gives way at the session cap. */
    struct udp_sess *older, *newer;
    uint8_t answered;
    uint8_t gro;      /* enum udp_gro: UDP_GRO on fd (udp_reply.c) */
    uint8_t gro_runs; /* runs read while on trial, none coalesced */
    uint64_t batch; /* the worker's batch that last used it (worker_udp.batch) */
};

struct udp_table {
    struct udp_sess **v; /* cap slots, NULL when empty */
    size_t cap, n;       /* cap is a power of two */
    uint64_t seed;       /* random, so clients cannot aim at one chain */
};

/* Returns 0 or -ENOMEM. */
int udp_table_init(struct udp_table *t);

/* Frees the index, not the sessions. */
void udp_table_free(struct udp_table *t);

uint64_t udp_table_hash(const struct udp_table *t, const struct udp_key *k);

/* The session with key k (hash h from udp_table_hash), or NULL. */
struct udp_sess *udp_table_find(const struct udp_table *t, const struct udp_key *k, uint64_t h);

/* Indexes s under k and h (copied into s). Returns 0 or -ENOMEM (growing
 * failed; s is then not indexed). */
int udp_table_add(struct udp_table *t, struct udp_sess *s, const struct udp_key *k, uint64_t h);

/* Removes s, which must be indexed. */
void udp_table_del(struct udp_table *t, struct udp_sess *s);

#endif /* PPFWD_UDP_TABLE_H */
