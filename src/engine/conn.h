/*
 * conn.h - a TCP connection's life (conn_*): admission, the PROXY header
 * phase, the upstream connect, the header sent upstream, then the relay
 * (relay.h) until it closes.
 */
#ifndef PPFWD_CONN_H
#define PPFWD_CONN_H

#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <proxyproto.h>

#include "loop/loop.h"
#include "engine/relay.h"

struct worker;
struct route;
struct upstream_cfg;

/*
 * The header phase's buffer. It starts as HEADER_INLINE bytes inside struct
 * conn: a v1 line (107 bytes at most) or a v2 header with a few TLVs, and
 * the client bytes that came with it, so a connection waiting for its
 * header costs no allocation. Only a v2 header that declares more, or early
 * bytes beyond it, move it to the heap: exactly what is needed, never more
 * than HEADER_MAX (the largest v2 header accepted, PP_V2_DEFAULT_CAP),
 * which is also the room the relay's first buffer keeps for early bytes.
 */
#define HEADER_INLINE 232
#define HEADER_MAX PP_V2_DEFAULT_CAP

/* A TCP endpoint: IPv4 or IPv6 (28 bytes, not a sockaddr_storage's 128). */
union conn_addr {
    struct sockaddr sa;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
};

enum conn_state { CONN_HEADER, CONN_CONNECT, CONN_RELAY };

struct conn {
    struct conn *prev, *next; /* in w->conns */
    struct worker *w;
    struct route *r; /* a reference, dropped when c is freed */
    enum conn_state state;
    struct timer timer;         /* header, connect or idle deadline */
    struct loop_work free_work; /* conn_free, at the end of the iteration */
    uint64_t start_ms;
    union conn_addr peer, local; /* socket endpoints */
    union conn_addr client, dst; /* real client and its destination */
    const struct upstream_cfg *up;
    uint8_t *hbuf;             /* header phase input: hin, or the heap */
    uint32_t hcap, hlen, hoff; /* its size; bytes read; header bytes consumed */
    int trusted;               /* the peer may send a header */
    uint8_t has_hdr;           /* hbuf[0..hoff) is an accepted header */
    uint8_t hdr_anon;          /* ... without addresses (LOCAL, UNSPEC) */
    uint8_t silent;            /* direct after header-timeout's silence: its first bytes
                                * are checked once they come (late_check) */
    uint8_t retries;           /* upstreams tried after the first failed connect */
    struct relay rl;           /* the client and upstream sockets, and the bytes between them */
    uint8_t hin[HEADER_INLINE];
};

/* Takes the accepted socket fd of route r (max-conns, then the header phase
 * or the upstream connect); fd is the connection's from now on. */
void conn_start(struct worker *w, struct route *r, int fd, const struct sockaddr *peer,
                socklen_t peerlen);

/* Closes every connection of the worker (the drain timeout ran out). */
void conn_close_all(struct worker *w, const char *error);

#endif /* PPFWD_CONN_H */
