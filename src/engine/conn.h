/*
 * conn.h - a TCP connection's life (conn_*): admission, the PROXY header
 * phase, the upstream connect, the header sent upstream, then the relay
 * (relay.h) until it closes.
 */
#ifndef PPFWD_CONN_H
#define PPFWD_CONN_H

#include <stdint.h>
#include <sys/socket.h>

#include <proxyproto.h>

#include "loop/loop.h"
#include "engine/relay.h"

struct worker;
struct route;
struct upstream_cfg;

/* Room for an accepted header plus the client bytes that came with it. */
#define HEADER_BUF_SIZE PP_V2_DEFAULT_CAP

enum conn_state { CONN_HEADER, CONN_CONNECT, CONN_RELAY };

struct conn {
    struct conn *prev, *next; /* in w->conns */
    struct worker *w;
    struct route *r; /* a reference, dropped when c is freed */
    enum conn_state state;
    struct timer timer; /* header, connect or idle deadline */
    uint64_t start_ms;
    struct sockaddr_storage peer, local; /* socket endpoints */
    struct sockaddr_storage client, dst; /* real client and its destination */
    const struct upstream_cfg *up;
    uint8_t *hbuf;        /* header phase input; freed once relaying */
    uint32_t hlen, hoff;  /* bytes read; header bytes consumed */
    int trusted;          /* the peer may send a header */
    struct pp_header hdr; /* accepted header, valid when has_hdr */
    uint8_t has_hdr;
    struct relay rl; /* the client and upstream sockets, and the bytes between them */
};

/* Takes the accepted socket fd of route r (max-conns, then the header phase
 * or the upstream connect); fd is the connection's from now on. */
void conn_start(struct worker *w, struct route *r, int fd, const struct sockaddr_storage *peer,
                socklen_t peerlen);

/* Closes every connection of the worker (the drain timeout ran out). */
void conn_close_all(struct worker *w, const char *error);

#endif /* PPFWD_CONN_H */
