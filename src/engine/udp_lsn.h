/*
 * udp_lsn.h - what the UDP files share (internal to udp_*.c): one route's
 * listener in one worker (struct udp_lsn), a batch slot, the drop reasons,
 * and each step's entry points. The engine outside sees only udp.h.
 *
 *   udp_listen.c   the route's socket group, a listener's start, stop, drain
 *   udp_forward.c  client -> upstream: recvmmsg, header and admission, forward
 *   udp_session.c  a session per client: open (admission, balance), idle, close
 *   udp_reply.c    upstream -> client: the reply queue, flushed once per iteration
 *   udp_send.c     batched sends with UDP GSO, both ways
 *   udp_drop.c     counting and rate-limited logging of what is dropped
 *   udp_table.c    the session index
 */
#ifndef PPFWD_UDP_LSN_H
#define PPFWD_UDP_LSN_H

#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <proxyproto.h>

#include "engine/route.h"
#include "engine/udp_table.h"

struct worker;
struct listener;

/* Datagrams per recvmmsg/sendmmsg call. */
#define UDP_BATCH 32
/* Room per datagram: the largest UDP payload (65,527 over IPv6) fits, so a
 * datagram is never cut; MSG_TRUNC still guards the assumption. */
#define UDP_BUF_SIZE 65536
/* Room for the header sent upstream: the TLVs passed on from an accepted
 * header (at most PP_V2_DEFAULT_CAP in all) plus the route's own, which the
 * config keeps within PP_V2_DEFAULT_CAP too (TLV_ADDED_MAX). */
#define UDP_HDR_CAP (2 * PP_V2_DEFAULT_CAP)
/* Room for the control messages of a datagram: IPV6_PKTINFO, and on an
 * IPv6 socket an IPv4 datagram's IP_PKTINFO after it. */
#define UDP_CTL_SIZE (CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo)))
/* Room for a reply's IP(V6)_PKTINFO and the UDP_SEGMENT size after it. */
#define UDP_OUT_CTL (UDP_CTL_SIZE + CMSG_SPACE(sizeof(uint16_t)))

/* Why a datagram was dropped; each reason is counted and logged on its own.
 * Refusals by the route's admission are DROP_ADMIT + their enum admit. */
enum udp_drop {
    DROP_SESSION,     /* no session could be made (an error) */
    DROP_NO_UPSTREAM, /* no live upstream */
    DROP_TRUNC,       /* larger than UDP_BUF_SIZE */
    DROP_SEND_UP,     /* sending upstream failed */
    DROP_SEND_CLIENT, /* sending a reply failed */
    DROP_UPSTREAM,    /* the upstream socket reported an error */
    DROP_FORGED,      /* an IPv4-mapped source on a datagram that came as IPv6 */
    DROP_CAP,         /* the worker's session cap reached, nothing to evict */
    DROP_EVICTED,     /* not a drop: an unanswered session gave way at the cap */
    DROP_ADMIT,
    DROP_MAX = DROP_ADMIT + ADMIT_COUNT
};

struct udp_warn {
    uint64_t last_ms; /* last line written; 0: never */
    uint64_t held;    /* drops since that line */
    uint64_t total;
};

/* One datagram of a batch, read from the route's socket. */
struct udp_slot {
    struct sockaddr_storage peer;
    struct pp_header hdr; /* the accepted header, when has_hdr */
    uint8_t has_hdr;
    struct sockaddr_storage local; /* the address it was sent to */
    uint8_t as_v4;                 /* came as IPv4 (PKTINFO says so; IPv6 socket) */
    uint8_t *data;                 /* payload after any header */
    size_t len;
};

/* Per listener (route and worker). */
struct udp_lsn {
    struct worker *w;
    struct listener *ls;
    struct route *r; /* ls->r: the listener holds the reference */
    const struct route_cfg *rc;
    struct udp_table table;
    struct sockaddr_storage local; /* the bound address: dst of a direct client */
    int wild;                      /* bound to every address: ask each datagram's (PKTINFO) */
    int v6;                        /* an IPv6 socket: PKTINFO tells IPv4 datagrams apart */
    uint8_t *bufs;                 /* UDP_BATCH x UDP_BUF_SIZE, client datagrams */
    uint8_t *hbufs;                /* UDP_BATCH x UDP_HDR_CAP, headers sent upstream */
    struct udp_slot slot[UDP_BATCH];
    struct mmsghdr rmsg[UDP_BATCH], smsg[UDP_BATCH];
    struct iovec riov[UDP_BATCH], siov[UDP_BATCH][2];
    uint8_t ctrl[UDP_BATCH][UDP_CTL_SIZE];
    /* What one send call hands the kernel: single datagrams and GSO runs. */
    struct mmsghdr omsg[UDP_BATCH];
    unsigned osegs[UDP_BATCH], ofirst[UDP_BATCH];
    uint8_t octl[UDP_BATCH][UDP_OUT_CTL];
    int no_gso; /* the kernel or the path refused a GSO send: never again */
    /* Replies of this loop iteration, from any session, sent together on
     * the route's socket once the iteration's events are handled. Each
     * keeps its own copy of where it goes: its session may close first. */
    uint8_t *qbufs; /* UDP_BATCH x UDP_BUF_SIZE */
    struct mmsghdr qmsg[UDP_BATCH];
    struct iovec qiov[UDP_BATCH];
    struct sockaddr_storage qname[UDP_BATCH];
    uint8_t qctl[UDP_BATCH][UDP_CTL_SIZE];
    uint16_t qseg[UDP_BATCH]; /* read as a run (UDP_GRO): its segment size; 0: one datagram */
    unsigned nq;
    int flush_queued; /* a flush is deferred to the end of the iteration */
    struct loop_work flush_work;
    int draining;     /* udp_drain: sessions finishing, clients no longer read */
    int dead;         /* stopped while a flush was deferred: the flush frees it */
    struct udp_warn warn[DROP_MAX];
};

/* udp_drop.c: counts a drop and logs it, at most one line per reason and
 * second; error is the reason where the table has none. */
void udp_drop(struct udp_lsn *u, enum udp_drop why, const char *error,
              const struct sockaddr *peer, const struct sockaddr *client);
/* A refusal by the route's admission; n: the parse result (ADMIT_BAD_HEADER). */
void udp_drop_admit(struct udp_lsn *u, enum admit a, ssize_t n, const struct sockaddr *peer,
                    const struct sockaddr *client);
/* At stop: the drops not yet reported, one line per reason. */
void udp_drop_flush(struct udp_lsn *u);

/* udp_listen.c: frees a listener's state (not its socket). */
void udp_listen_free(struct udp_lsn *u);
/* The last session of a draining listener closed. */
void udp_listen_drained(struct udp_lsn *u);

/* udp_forward.c: the route's socket is readable (the loop's callback). */
void udp_forward_cb(struct loop *l, int fd, void *arg, unsigned events);

/* udp_session.c: the session of slot sl (found or opened), or NULL after
 * counting the drop. */
struct udp_sess *udp_session_get(struct udp_lsn *u, const struct udp_slot *sl);
/* Logs the session's end and releases its socket, timer and places; the
 * caller unindexes and frees it. */
void udp_session_release(struct udp_lsn *u, struct udp_sess *s, const char *reason);
/* At a drain: the session's idle check runs now, with the drain's deadline. */
void udp_session_drain(struct udp_lsn *u, struct udp_sess *s);
/* The upstream answered the session: it leaves the unanswered list. */
void udp_session_answered(struct udp_lsn *u, struct udp_sess *s);

/* udp_reply.c: the session's upstream socket is readable. */
void udp_reply_cb(struct loop *l, int fd, void *arg, unsigned events);
/* Sends the queued replies now. */
void udp_reply_flush(struct udp_lsn *u);

/* udp_send.c: sends msgs[0..n) on fd, runs of one size to one destination
 * as one GSO send each; segs (or NULL): for each message, the segment size
 * of a run read in one piece (UDP_GRO), 0 for a single datagram. Returns how
 * many datagrams were lost, the last error in *err. A GSO send the kernel
 * refuses is sent again datagram by datagram, and GSO is not tried again on
 * this listener. */
unsigned udp_send(struct udp_lsn *u, int fd, struct mmsghdr *msgs, unsigned n,
                  const uint16_t *segs, int *err);

#endif /* PPFWD_UDP_LSN_H */
