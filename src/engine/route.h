/*
 * route.h - a running route: its policy and its life (route_*).
 *
 * Both transports ask this module the same questions: may this source send
 * a PROXY header, is this header acceptable, may this real client come in
 * (allow/deny, max-conns), which header goes upstream. TCP (conn.c) and UDP
 * (udp_*.c) call it; neither knows the other.
 *
 * Lifetime: a route is reference-counted. The server's current route set
 * holds one reference per route, and so do every listener, TCP connection
 * and health check using it (a UDP session lives inside its listener, which
 * holds it). A reload that removes a route drops the set's reference; the
 * route is freed with its last user, in whichever thread that ends. The
 * routes loaded from one config share it (struct route_cfgs), which is
 * freed with the last of them. The metrics thread only reads routes of the
 * current set, under the server's lock, so none is freed under it: the
 * set's reference is dropped only after the route left the set under that
 * lock.
 */
#ifndef PPFWD_ROUTE_H
#define PPFWD_ROUTE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <proxyproto.h>

#include "config/config.h"

/* Counters kept per worker and per route, summed when /metrics is read:
 * each has one writer (its worker), so updating one is a plain add. */
enum route_stat {
    STAT_CONNS,           /* connections accepted (UDP: sessions opened) */
    STAT_BYTES_IN,        /* client -> upstream */
    STAT_BYTES_OUT,       /* upstream -> client */
    STAT_HDR_OK,          /* PROXY headers accepted */
    STAT_HDR_INVALID,     /* missing or malformed (required), or invalid */
    STAT_HDR_UNTRUSTED,   /* from a source not in trusted */
    STAT_HDR_TIMEOUT,     /* not complete within header-timeout */
    STAT_UPSTREAM_ERRORS, /* upstream connect failures and timeouts */
    STAT_REFUSED,         /* max-conns, allow/deny */
    STAT_COUNT
};

/* What the workers share about one upstream. */
struct upstream_state {
    atomic_int checked_up;       /* health check verdict; 1 without checks */
    _Atomic uint64_t down_until; /* after a failed connect: no traffic before this ms */
    atomic_uint conns;           /* open connections through it (leastconn) */
};

/* Called with the last reference of a route_cfgs made by route_cfgs_wrap. */
typedef void route_cfgs_release_cb(void *arg);

/* A loaded config, shared by the routes made from it. */
struct route_cfgs {
    atomic_uint refs;
    struct cfg *cfg;
    int owned; /* freed (cfg_free + free) with the last reference */
    route_cfgs_release_cb *release; /* else this, with arg, frees it; or NULL */
    void *arg;
};

struct route {
    const struct route_cfg *cfg;
    struct route_cfgs *cfgs;               /* what cfg lives in */
    atomic_uint refs;                      /* see the top of this file */
    _Atomic uint64_t (*stats)[STAT_COUNT]; /* per worker (by worker id) */
    atomic_uint conns;                     /* open connections and UDP sessions (max-conns) */
    atomic_uint udp_sessions;              /* open UDP sessions, every worker counted */
    atomic_size_t next_up;                 /* round-robin cursor */
    struct upstream_state *ups;            /* one per cfg->up */
    int *udp_fds; /* UDP: each worker's socket until it takes it (then -1) */
    int nudp_fds;
    /* Header policy, decided once from the config (route_new): the TLV types
     * of an accepted header passed on (pass_any: any at all), and the TLVs
     * the route adds to every v2 header, prebuilt as one block. */
    struct pp_tlv_set pass;
    int pass_any;
    uint8_t *add; /* NULL when none */
    size_t add_len;
    atomic_int no_reply_hinted; /* transparent=on: the routing hint was logged */
};

/* transparent=on: an upstream never answered (a connect timeout). Logs
 * transparent_no_reply with the policy routing to check, once per route:
 * missing routing fails every connection alike. */
void route_transparent_no_reply(struct route *r, const char *upstream);

/* ---- life ---------------------------------------------------------------- */

/* Wraps a loaded config with one reference (the caller's). owned: the last
 * reference frees it (cfg_free + free); 0 for a config someone else frees
 * after every route is gone. Returns NULL on ENOMEM. */
struct route_cfgs *route_cfgs_new(struct cfg *c, int owned);
/* The same for a config that lives in something else (a container route
 * set): the last reference calls release(arg), which frees it. */
struct route_cfgs *route_cfgs_wrap(struct cfg *c, route_cfgs_release_cb *release, void *arg);
void route_cfgs_ref(struct route_cfgs *cs);
void route_cfgs_unref(struct route_cfgs *cs);

/* A route for rc, which lives in cs (a reference to cs is taken), with
 * counters for nworkers workers and, for UDP, nworkers socket slots (all
 * -1: the caller opens the group). Returns it with one reference (the
 * caller's), or NULL on ENOMEM. */
struct route *route_new(const struct route_cfg *rc, struct route_cfgs *cs, int nworkers);

/* Takes a reference; only valid on a route the caller already holds (or
 * reads under the server's lock while it is in the current set). */
struct route *route_ref(struct route *r);

/* Drops a reference; the last frees the route (closing the UDP sockets no
 * worker took) and drops its reference to its config. Any thread. */
void route_unref(struct route *r);

/* ---- admission ------------------------------------------------------------ */

/* The decisions about who may come in, shared by TCP and UDP. */
enum admit {
    ADMIT_OK,
    ADMIT_DIRECT,     /* accept-proxy optional, no header: every byte is data */
    ADMIT_MORE,       /* a valid prefix: more bytes are needed (TCP) */
    ADMIT_NO_HEADER,  /* accept-proxy required, no header */
    ADMIT_BAD_HEADER, /* malformed: the reason is pp_strerror() of the parse */
    ADMIT_TRUNCATED,  /* a datagram that ends inside its header (UDP) */
    ADMIT_UNTRUSTED,  /* a header from a source not in trusted */
    ADMIT_UNTRUSTED_SOURCE, /* accept-proxy required: a source that may send none */
    ADMIT_DENIED,     /* the real client is not allowed (allow/deny) */
    ADMIT_FULL,       /* max-conns reached */
    ADMIT_COUNT
};

/* The counter a refusal adds to, and the reason logged (NULL for
 * ADMIT_BAD_HEADER: the parse error's text). */
struct admit_info {
    enum route_stat stat;
    const char *reason;
};
extern const struct admit_info route_admit_info[ADMIT_COUNT];

/* The reason text of a refusal; n is the parse result for ADMIT_BAD_HEADER. */
const char *route_admit_reason(enum admit a, ssize_t n);

/* Whether peer (the socket's source) may send a PROXY header: sets
 * *trusted and returns ADMIT_OK, or ADMIT_UNTRUSTED_SOURCE when the route
 * requires a header and peer may not send one. */
enum admit route_admit_peer(const struct route *r, const struct sockaddr *peer, int *trusted);

/*
 * The verdict on the start of a stream or datagram, given pp_parse's
 * result n over it and whether its sender is trusted. complete: no more
 * bytes can come (a datagram, or a stream at EOF or its header deadline).
 * Returns ADMIT_OK (a header to use), ADMIT_DIRECT, ADMIT_MORE (only when
 * !complete), or the refusal.
 */
enum admit route_admit_header(const struct route *r, ssize_t n, int trusted, int complete);

/*
 * The verdict on a datagram of len bytes (pp_parse gave n): as
 * route_admit_header with complete set, except that a datagram that ends
 * inside the v2 signature (shorter than PP_V2_SIG_LEN: a 2-byte "\r\n", an
 * empty datagram) carries no header rather than a truncated one: it is
 * data with `optional`, and "no PROXY header" with `required`. One that
 * holds the whole signature and ends before its header does is truncated.
 */
enum admit route_admit_datagram(const struct route *r, ssize_t n, size_t len, int trusted);

/* allow/deny on the real client: ADMIT_OK or ADMIT_DENIED. Addresses other
 * than IPv4/IPv6 (a Unix socket) are not filtered. */
enum admit route_admit_client(const struct route *r, const struct sockaddr *client);

/* Takes one of the route's max-conns places: ADMIT_OK (give it back with
 * route_leave) or ADMIT_FULL. */
enum admit route_enter(struct route *r);
void route_leave(struct route *r);

/* ---- the header sent upstream --------------------------------------------- */

/* What a header is built from: one TCP connection or one datagram. */
struct route_hdr {
    const struct sockaddr *src, *dst;  /* relayed addresses (route_relayed) */
    const struct pp_header *accepted;  /* the header received with it, or NULL */
    int socktype;                      /* SOCK_STREAM or SOCK_DGRAM */
    const uint8_t *unique_id;          /* 16 bytes for UNIQUE_ID, or NULL: random */
};

/* The addresses a header relays: the source and destination an accepted
 * PROXY header names (IPv4/IPv6), else the socket's own peer and local. */
void route_relayed(const struct pp_header *accepted, const struct sockaddr *peer,
                   const struct sockaddr *local, const struct sockaddr **src,
                   const struct sockaddr **dst);

/*
 * Writes the route's send-proxy header into [buf, buf + cap): v1, or v2 with
 * the accepted header's TLVs the route passes on, its added TLVs, a
 * UNIQUE_ID and a CRC32C as configured. A LOCAL header received is sent on
 * as LOCAL (v1: "PROXY UNKNOWN"). Returns the length, 0 when the route
 * sends none, or a negative PP_E* code (nothing usable written).
 */
ssize_t route_header(const struct route *r, const struct route_hdr *h, uint8_t *buf, size_t cap);

/* ---- counters ------------------------------------------------------------- */

/* Adds n to a counter of worker w; only that worker writes it, the metrics
 * thread reads it, so a relaxed load + store suffice (no lock prefix). */
static inline void route_count(struct route *r, int w, enum route_stat k, uint64_t n)
{
    _Atomic uint64_t *p = &r->stats[w][k];

    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* The counter summed over nworkers workers. */
uint64_t route_stat_sum(const struct route *r, int nworkers, enum route_stat k);

#endif /* PPFWD_ROUTE_H */
