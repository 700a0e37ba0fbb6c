/*
 * whoami_internal.h - what the files of `ppfwd whoami` share: its state,
 * its limits and the answer (whoami.c), the TCP side (whoami_tcp.c) and the
 * UDP side (whoami_udp.c). Nothing else includes it.
 */
#ifndef PPFWD_WHOAMI_INTERNAL_H
#define PPFWD_WHOAMI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <proxyproto.h>

#include "loop/loop.h"

#define WHOAMI_QUIET_MS 1000             /* optional: silence this long means no header */
#define WHOAMI_HEADER_MS 5000            /* the whole header, counted from accept */
#define WHOAMI_DRAIN_MS 1000             /* reading what follows the answer, at most */
#define WHOAMI_ACCEPT_PAUSE_MS 200       /* out of descriptors: try again after this */
#define WHOAMI_ACCEPT_BATCH 64           /* connections accepted per wake-up */
#define WHOAMI_UDP_BATCH 64              /* datagrams answered per wake-up */
#define WHOAMI_HDR_CAP PP_V2_DEFAULT_CAP /* as the daemon: v2 headers up to 4 KiB */

enum whoami_mode { WHOAMI_OFF, WHOAMI_OPTIONAL, WHOAMI_REQUIRED };

struct whoami_conn;

struct whoami {
    struct loop *loop;
    enum whoami_mode mode;
    int udp;
    int fd;                       /* TCP listener or UDP socket */
    int sigfd;                    /* SIGINT and SIGTERM */
    int wildcard;                 /* bound to 0.0.0.0 or [::]: UDP replies need their source set */
    int dual;                     /* ":PORT": [::] with IPv4 too (IPV6_V6ONLY off) */
    struct sockaddr_storage addr; /* what the socket is bound to */
    struct timer accept_pause;
    struct whoami_conn *conns; /* every open connection, freed at exit */
    uint8_t dgram[65536];      /* the UDP datagram being answered */
};

/* "IP:PORT" of sa in buf (ADDR_STRLEN bytes), or "-" for an address
 * without an IP or unix family. */
const char *whoami_fmt(const struct sockaddr *sa, char *buf);

/* Builds the answer line (with its '\n') in memory the caller frees, and
 * its length in *len. hdr is NULL when no header came. Returns NULL when
 * out of memory. */
char *whoami_answer(const struct sockaddr *peer, const struct sockaddr *local,
                    const struct pp_header *hdr, size_t *len);

/* Logs whoami_answer (one answer sent) or proxy_header_refused. */
void whoami_log_answer(const char *proto, const struct sockaddr *peer, const struct pp_header *hdr);
void whoami_refuse(const char *proto, const struct sockaddr *peer, const char *reason);

/* The TCP listener's callback: accepts and serves connections (whoami_tcp.c). */
void whoami_accept_cb(struct loop *l, int fd, void *arg, unsigned events);

/* Closes every open connection (at exit). */
void whoami_tcp_close_all(struct whoami *w);

/* The UDP socket's callback: answers datagrams (whoami_udp.c). */
void whoami_udp_cb(struct loop *l, int fd, void *arg, unsigned events);

#endif /* PPFWD_WHOAMI_INTERNAL_H */
