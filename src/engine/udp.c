/*
 * udp.c - UDP routes (udp_*): the route's socket, a session per client, the
 * PROXY v2 header read from and written to every datagram, and the
 * rate-limited accounting of what is dropped.
 *
 * A session is keyed by the datagram's source address plus, when a header
 * was accepted, the real client it names; it owns a socket connected to its
 * upstream, so a reply is matched to its client by the socket it arrives
 * on, without a lookup. Datagrams are read and written in batches
 * (recvmmsg/sendmmsg) into buffers allocated once per listener: nothing is
 * allocated per datagram, only per session. A session's datagrams of one
 * size leave as one UDP GSO send (UDP_SEGMENT) where the kernel takes it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <linux/filter.h>
#include <sys/socket.h>

#include "util/addr.h"
#include "util/log.h"
#include "engine/proxy.h"
#include "engine/udp.h"
#include "engine/udp_table.h"

/* Datagrams per recvmmsg/sendmmsg call. */
#define UDP_BATCH 32
/* Room per datagram: the largest UDP payload (65,527 over IPv6) fits, so a
 * datagram is never cut; MSG_TRUNC still guards the assumption. */
#define UDP_BUF_SIZE 65536
/* Room for the header sent upstream: the TLVs passed on from an accepted
 * header (at most PP_V2_DEFAULT_CAP in all) plus the route's own. */
#define UDP_HDR_CAP (PP_V2_DEFAULT_CAP + 512)
/* Asked for the route's socket, so a burst from many clients is queued
 * rather than lost while the worker is busy (capped by net.core.rmem_max). */
#define UDP_RCVBUF (4 << 20)
/* Room for one IP_PKTINFO or IPV6_PKTINFO control message. */
#define UDP_CTL_SIZE CMSG_SPACE(sizeof(struct in6_pktinfo))
/* At most one warning line per reason, listener and period. */
#define UDP_WARN_MS 1000
/* At a drain, a session closes once quiet this long (or its idle-timeout). */
#define UDP_DRAIN_QUIET_MS 1000
/*
 * UDP GSO (UDP_SEGMENT): a run of datagrams of one size to one destination
 * goes down the stack as one buffer and is cut into datagrams by the device
 * or, on loopback, by the receiving socket: one route lookup, one pass
 * through the stack and one wakeup for the run instead of one each. The
 * receiver still gets the datagrams one by one, in order. A segment must
 * fit the path MTU, so only datagrams that fit 1,500 bytes with IPv6 and
 * UDP headers are grouped; the kernel takes at most 64 segments and 64 KiB.
 */
#define GSO_MAX_SEG 1452
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000
/* Room for a reply's IP(V6)_PKTINFO and the UDP_SEGMENT size after it. */
#define UDP_OUT_CTL (UDP_CTL_SIZE + CMSG_SPACE(sizeof(uint16_t)))

/* Why a datagram was dropped; each reason is counted and logged on its own. */
enum udp_drop {
    DROP_NO_HDR,
    DROP_BAD_HDR,
    DROP_UNTRUSTED,
    DROP_ACL,
    DROP_MAX_CONNS,
    DROP_SESSION,
    DROP_NO_UPSTREAM,
    DROP_TRUNC,
    DROP_SEND_UP,
    DROP_SEND_CLIENT,
    DROP_UPSTREAM,
    DROP_MAX
};

static const struct {
    const char *event;
    const char *reason;   /* NULL: the error text given at the drop */
    enum route_stat stat; /* the metrics counter it adds to; STAT_COUNT: none */
} drop_info[DROP_MAX] = {
    [DROP_NO_HDR] = {"proxy_header_refused", "no PROXY header", STAT_HDR_INVALID},
    [DROP_BAD_HDR] = {"proxy_header_refused", NULL, STAT_HDR_INVALID},
    [DROP_UNTRUSTED] = {"proxy_header_refused", "PROXY header from an untrusted source",
                        STAT_HDR_UNTRUSTED},
    [DROP_ACL] = {"udp_session_refused", "client not allowed", STAT_REFUSED},
    [DROP_MAX_CONNS] = {"udp_session_refused", "max-conns reached", STAT_REFUSED},
    [DROP_SESSION] = {"udp_session_refused", NULL, STAT_REFUSED},
    [DROP_NO_UPSTREAM] = {"udp_session_refused", "no live upstream", STAT_UPSTREAM_ERRORS},
    [DROP_TRUNC] = {"udp_dropped", "datagram truncated (larger than 65,536 bytes)", STAT_COUNT},
    [DROP_SEND_UP] = {"udp_dropped", NULL, STAT_UPSTREAM_ERRORS},
    [DROP_SEND_CLIENT] = {"udp_dropped", NULL, STAT_COUNT},
    [DROP_UPSTREAM] = {"upstream_error", NULL, STAT_UPSTREAM_ERRORS},
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
    uint8_t *data;                 /* payload after any header */
    size_t len;
};

/* Per listener (route and worker). */
struct udp_lsn {
    struct worker *w;
    struct listener *ls;
    const struct route_cfg *rc;
    struct udp_table table;
    struct sockaddr_storage local; /* the bound address: dst of a direct client */
    int wild;                      /* bound to every address: ask each datagram's (PKTINFO) */
    uint8_t *bufs;                 /* UDP_BATCH x UDP_BUF_SIZE, both directions */
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
    unsigned nq;
    int flush_queued; /* a flush is deferred to the end of the iteration */
    int draining;     /* udp_drain: sessions finishing, clients no longer read */
    int dead;         /* stopped while a flush was deferred: the flush frees it */
    struct udp_warn warn[DROP_MAX];
};

/* ---- accounting ---------------------------------------------------------- */

/* Counts a drop; logs it unless a line for the same reason was written in
 * the last UDP_WARN_MS, so a flood costs one line per second, with counts. */
static void drop(struct udp_lsn *u, enum udp_drop why, const char *error,
                 const struct sockaddr *peer, const struct sockaddr *client)
{
    struct udp_warn *wr = &u->warn[why];
    uint64_t now = loop_now(u->w->loop);
    const char *reason = drop_info[why].reason ? drop_info[why].reason : error;

    wr->total++;
    wr->held++;
    if (drop_info[why].stat != STAT_COUNT)
        stat_add(u->w, u->ls->r, drop_info[why].stat, 1);
    if (wr->last_ms != 0 && now - wr->last_ms < UDP_WARN_MS)
        return;
    log_event(LOG_WARN, drop_info[why].event, u->rc->name, "proto", LOG_STR, "udp", "reason",
              LOG_STR, reason, "peer", LOG_ADDR, peer, "client", LOG_ADDR, client, "dropped",
              LOG_UINT, wr->held, "dropped_total", LOG_UINT, wr->total, LOG_END);
    wr->last_ms = now;
    wr->held = 0;
}

/* At stop: the drops not yet reported, one line per reason. */
static void drop_flush(struct udp_lsn *u)
{
    for (int i = 0; i < DROP_MAX; i++) {
        if (u->warn[i].held == 0)
            continue;
        log_event(LOG_WARN, drop_info[i].event, u->rc->name, "proto", LOG_STR, "udp", "reason",
                  LOG_STR, drop_info[i].reason ? drop_info[i].reason : "(several)", "dropped",
                  LOG_UINT, u->warn[i].held, "dropped_total", LOG_UINT, u->warn[i].total, LOG_END);
    }
}

/* ---- sessions ------------------------------------------------------------ */

static void sess_free(void *arg)
{
    free(arg);
}

/* Logs the session's end and releases its socket, timer and place in the
 * route's count; the caller unindexes and frees it. */
static void sess_release(struct udp_lsn *u, struct udp_sess *s, const char *reason)
{
    uint64_t now = loop_now(u->w->loop);

    log_event(LOG_INFO, "udp_session_close", u->rc->name, "client", LOG_ADDR,
              (const struct sockaddr *)&s->client, "peer", LOG_ADDR,
              (const struct sockaddr *)&s->peer, "upstream", LOG_STR, s->up->name, "datagrams_in",
              LOG_UINT, s->dg_in, "datagrams_out", LOG_UINT, s->dg_out, "bytes_in", LOG_UINT,
              s->bytes_in, "bytes_out", LOG_UINT, s->bytes_out, "duration_ms", LOG_UINT,
              now - s->start_ms, "reason", LOG_STR, reason, LOG_END);
    loop_timer_cancel(u->w->loop, &s->timer);
    loop_remove(u->w->loop, s->fd);
    close(s->fd);
    atomic_fetch_sub(&u->ls->r->conns, 1);
    atomic_fetch_sub(&u->ls->r->udp_sessions, 1);
    atomic_fetch_sub_explicit(&u->ls->r->ups[s->up - u->rc->up].conns, 1, memory_order_relaxed);
}

static void sess_close(struct udp_lsn *u, struct udp_sess *s, const char *reason)
{
    sess_release(u, s, reason);
    udp_table_del(&u->table, s);
    /* Other callbacks of this iteration may still hold s. */
    if (loop_defer(u->w->loop, sess_free, s) != 0)
        sess_free(s);
}

static void drain_done(struct udp_lsn *u);

static void idle_cb(struct loop *l, struct timer *t, void *arg)
{
    struct udp_sess *s = arg;
    struct udp_lsn *u = s->u;
    uint64_t idle = u->rc->idle_timeout_ms, quiet = loop_now(l) - s->active_ms;

    if (u->draining && idle > UDP_DRAIN_QUIET_MS)
        idle = UDP_DRAIN_QUIET_MS;
    /* The deadline moves with traffic lazily: re-arming a heap timer for
     * every datagram would cost more than this check once per period. */
    if (quiet < idle) {
        loop_timer_set(l, t, idle - quiet, idle_cb, s);
        return;
    }
    sess_close(u, s, u->draining ? "drained" : "idle timeout");
    if (u->draining && u->table.n == 0)
        drain_done(u);
}

/* Sends n messages of msgs on fd; returns how many were lost and leaves
 * the last error in *err. A failed message is skipped, the rest still go. */
static unsigned send_batch(int fd, struct mmsghdr *msgs, unsigned n, int *err)
{
    unsigned i = 0, lost = 0;

    while (i < n) {
        int rc = sendmmsg(fd, msgs + i, n - i, 0);
        if (rc == -1 && errno == EINTR)
            continue;
        if (rc == -1) {
            *err = errno;
            lost++;
            i++;
            continue;
        }
        i += (unsigned)rc;
    }
    return lost;
}

static size_t msg_bytes(const struct msghdr *mh)
{
    size_t n = 0;

    for (size_t i = 0; i < mh->msg_iovlen; i++)
        n += mh->msg_iov[i].iov_len;
    return n;
}

/* Whether two messages go to the same place, the same way. */
static int same_dest(const struct msghdr *a, const struct msghdr *b)
{
    return a->msg_namelen == b->msg_namelen && a->msg_controllen == b->msg_controllen &&
           (a->msg_namelen == 0 || memcmp(a->msg_name, b->msg_name, a->msg_namelen) == 0) &&
           (a->msg_controllen == 0 ||
            memcmp(a->msg_control, b->msg_control, a->msg_controllen) == 0);
}

/* How many of msgs[0..n) go in one GSO send: a run whose segments all have
 * the first one's size, but the last, which may be shorter, and whose
 * iovecs follow each other in memory (so one msghdr can name them all). */
static unsigned gso_run(const struct mmsghdr *msgs, unsigned n, size_t seg)
{
    size_t total = seg;
    unsigned k = 1;

    if (seg == 0 || seg > GSO_MAX_SEG)
        return 1;
    while (k < n && k < GSO_MAX_SEGS) {
        const struct msghdr *prev = &msgs[k - 1].msg_hdr, *mh = &msgs[k].msg_hdr;
        size_t len = msg_bytes(mh);

        if (len == 0 || len > seg || total + len > GSO_MAX_BYTES ||
            mh->msg_iov != prev->msg_iov + prev->msg_iovlen || !same_dest(prev, mh))
            break;
        total += len;
        k++;
        if (len < seg)
            break;
    }
    return k;
}

/*
 * Sends n messages of msgs on fd: runs of equal size to one destination as
 * one GSO send each, in one sendmmsg with the single ones. Returns
 * how many datagrams were lost, the last error in *err. A GSO send the
 * kernel refuses is sent again datagram by datagram, and GSO is not tried
 * again on this listener.
 */
static unsigned send_run(struct udp_lsn *u, int fd, struct mmsghdr *msgs, unsigned n, int *err)
{
    unsigned no = 0, lost = 0, i = 0;

    if (u->no_gso || n < 2)
        return send_batch(fd, msgs, n, err);
    while (i < n) {
        struct msghdr *in = &msgs[i].msg_hdr, *out = &u->omsg[no].msg_hdr;
        size_t seg = msg_bytes(in);
        unsigned k = gso_run(msgs + i, n - i, seg);

        *out = *in;
        u->osegs[no] = k;
        u->ofirst[no] = i;
        if (k > 1) {
            uint8_t *ctl = u->octl[no];
            struct cmsghdr *cm = (struct cmsghdr *)(ctl + in->msg_controllen);
            uint16_t gso = (uint16_t)seg;

            if (in->msg_controllen > 0)
                memcpy(ctl, in->msg_control, in->msg_controllen);
            memset(cm, 0, CMSG_SPACE(sizeof(gso)));
            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(gso));
            memcpy(CMSG_DATA(cm), &gso, sizeof(gso));
            out->msg_control = ctl;
            out->msg_controllen = in->msg_controllen + CMSG_SPACE(sizeof(gso));
            out->msg_iovlen = 0;
            for (unsigned j = 0; j < k; j++)
                out->msg_iovlen += msgs[i + j].msg_hdr.msg_iovlen;
        }
        no++;
        i += k;
    }
    for (i = 0; i < no;) {
        int rc = sendmmsg(fd, u->omsg + i, no - i, 0);
        if (rc == -1 && errno == EINTR)
            continue;
        if (rc > 0) {
            i += (unsigned)rc;
            continue;
        }
        if (u->osegs[i] > 1 && (errno == EINVAL || errno == EMSGSIZE || errno == EIO ||
                                errno == EOPNOTSUPP || errno == ENOPROTOOPT)) {
            /* E.g. a segment over the path MTU, a device without checksum
             * offload: this run and the rest go datagram by datagram. */
            u->no_gso = 1;
            return lost + send_batch(fd, msgs + u->ofirst[i], n - u->ofirst[i], err);
        } else {
            *err = errno;
            lost += u->osegs[i];
        }
        i++;
    }
    return lost;
}

static void lsn_free(struct udp_lsn *u);

/* Sends the queued replies, in one call for all sessions. */
static void replies_flush(struct udp_lsn *u)
{
    int err = 0;
    unsigned lost;

    if (u->nq == 0 || u->ls->fd == -1) {
        u->nq = 0;
        return;
    }
    lost = send_run(u, u->ls->fd, u->qmsg, u->nq, &err);
    u->nq = 0;
    if (lost > 0)
        drop(u, DROP_SEND_CLIENT, strerror(err), NULL, NULL);
}

static void replies_flush_cb(void *arg)
{
    struct udp_lsn *u = arg;

    u->flush_queued = 0;
    if (u->dead) {
        lsn_free(u);
        return;
    }
    replies_flush(u);
}

/* Replies from the upstream: back to the session's peer (the client, or
 * the front proxy that sent its header), as they are. They are queued and
 * leave with the other sessions' replies at the end of the loop iteration
 * (or at once when the queue is full). */
static void upstream_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct udp_sess *s = arg;
    struct udp_lsn *u = s->u;
    unsigned room, q;
    int n;
    uint64_t bytes = 0;

    (void)events;
    if (u->nq == UDP_BATCH)
        replies_flush(u);
    q = u->nq;
    room = UDP_BATCH - q;
    for (unsigned i = q; i < q + room; i++) {
        u->qiov[i].iov_base = u->qbufs + (size_t)i * UDP_BUF_SIZE;
        u->qiov[i].iov_len = UDP_BUF_SIZE;
        memset(&u->qmsg[i].msg_hdr, 0, sizeof(u->qmsg[i].msg_hdr));
        u->qmsg[i].msg_hdr.msg_iov = &u->qiov[i];
        u->qmsg[i].msg_hdr.msg_iovlen = 1;
    }
    n = recvmmsg(fd, u->qmsg + q, room, MSG_DONTWAIT, NULL);
    if (n == -1) {
        int err = errno;

        if (err == EAGAIN || err == EINTR)
            return;
        /* ECONNREFUSED: an ICMP port unreachable from the upstream. New
         * sessions avoid it for a while, as after a failed TCP connect;
         * this one stays, the upstream may come back before idle-timeout. */
        balance_result(u->ls->r, (size_t)(s->up - u->rc->up), err, loop_now(l));
        drop(u, DROP_UPSTREAM, strerror(err), (const struct sockaddr *)&s->peer,
             (const struct sockaddr *)&s->client);
        return;
    }
    s->active_ms = loop_now(l);
    for (unsigned i = q; i < q + (unsigned)n; i++) {
        struct msghdr *mh = &u->qmsg[i].msg_hdr;

        memcpy(&u->qname[i], &s->peer, s->peerlen);
        mh->msg_name = &u->qname[i];
        mh->msg_namelen = s->peerlen;
        if (s->ctllen > 0) {
            memcpy(u->qctl[i], s->ctl, s->ctllen);
            mh->msg_control = u->qctl[i];
            mh->msg_controllen = s->ctllen;
        }
        u->qiov[i].iov_len = u->qmsg[i].msg_len;
        bytes += u->qmsg[i].msg_len;
    }
    u->nq += (unsigned)n;
    /* Counted as sent when queued; a send that fails later is counted
     * (and logged) as a udp_dropped of the route. */
    s->dg_out += (unsigned)n;
    s->bytes_out += bytes;
    stat_add(u->w, u->ls->r, STAT_BYTES_OUT, bytes);
    if (u->nq > 0 && !u->flush_queued) {
        if (loop_defer(l, replies_flush_cb, u) == 0)
            u->flush_queued = 1;
        else
            replies_flush(u);
    }
}

/* The real client of a datagram: the accepted header's source for a PROXY
 * command, else the datagram's source. */
static const struct sockaddr *slot_client(const struct udp_slot *sl)
{
    if (sl->has_hdr && sl->hdr.command == PP2_CMD_PROXY &&
        (sl->hdr.src.sa.sa_family == AF_INET || sl->hdr.src.sa.sa_family == AF_INET6))
        return &sl->hdr.src.sa;
    return (const struct sockaddr *)&sl->peer;
}

/* Picks the session's upstream (balance=...) and connects a socket to it.
 * Returns 0, -EHOSTUNREACH when no upstream is live, or -errno. */
static int sess_connect(struct udp_lsn *u, struct udp_sess *s)
{
    int i = balance_pick(u->ls->r, (const struct sockaddr *)&s->client, loop_now(u->w->loop));
    int rcv = 1 << 20, err;

    if (i < 0)
        return -EHOSTUNREACH;
    s->up = &u->rc->up[i];
    s->fd = socket(s->up->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd == -1)
        return -errno;
    /* Replies to a window of large datagrams must queue, not drop. */
    setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    err = connect(s->fd, (const struct sockaddr *)&s->up->addr, s->up->addrlen) == -1 ? -errno : 0;
    if (err == 0)
        err = loop_add(u->w->loop, s->fd, LOOP_READ, upstream_cb, s);
    if (err != 0) {
        close(s->fd);
        s->fd = -1;
        return err;
    }
    atomic_fetch_add_explicit(&u->ls->r->ups[i].conns, 1, memory_order_relaxed);
    return 0;
}

/* On a wildcard socket, replies must leave from the address the client
 * wrote to, or a client on a host with several addresses ignores them. */
static void sess_ctl(struct udp_sess *s, const struct sockaddr_storage *local)
{
    struct msghdr mh = {.msg_control = s->ctl, .msg_controllen = sizeof(s->ctl)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

    memset(s->ctl, 0, sizeof(s->ctl));
    if (local->ss_family == AF_INET) {
        struct in_pktinfo pi = {.ipi_spec_dst = ((const struct sockaddr_in *)local)->sin_addr};
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
        s->ctllen = CMSG_SPACE(sizeof(pi));
    } else if (local->ss_family == AF_INET6) {
        struct in6_pktinfo pi = {.ipi6_addr = ((const struct sockaddr_in6 *)local)->sin6_addr};
        cm->cmsg_level = IPPROTO_IPV6;
        cm->cmsg_type = IPV6_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
        s->ctllen = CMSG_SPACE(sizeof(pi));
    }
}

static void sess_fill(struct udp_lsn *u, struct udp_sess *s, const struct udp_slot *sl)
{
    const struct sockaddr *client = slot_client(sl);

    s->u = u;
    s->start_ms = s->active_ms = loop_now(u->w->loop);
    memcpy(&s->peer, &sl->peer, sizeof(s->peer));
    s->peerlen = addr_len((const struct sockaddr *)&sl->peer);
    memcpy(&s->client, client,
           client->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    if (u->rc->unique_id)
        arc4random_buf(s->uid, sizeof(s->uid));
    if (u->wild)
        sess_ctl(s, &sl->local);
}

/* A new session for the slot's key, or NULL after counting the drop. */
static struct udp_sess *sess_open(struct udp_lsn *u, const struct udp_key *k, uint64_t h,
                                  const struct udp_slot *sl)
{
    const struct route_cfg *rc = u->rc;
    const struct sockaddr *client = slot_client(sl), *peer = (const struct sockaddr *)&sl->peer;
    struct udp_sess *s;
    int err;

    if (cidr_list_match(&rc->deny, client) ||
        (!rc->allow_all && !cidr_list_match(&rc->allow, client))) {
        drop(u, DROP_ACL, NULL, peer, client);
        return NULL;
    }
    if (atomic_fetch_add(&u->ls->r->conns, 1) >= rc->max_conns && rc->max_conns != 0) {
        atomic_fetch_sub(&u->ls->r->conns, 1);
        drop(u, DROP_MAX_CONNS, NULL, peer, client);
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    err = s == NULL ? -ENOMEM : 0;
    if (err == 0) {
        sess_fill(u, s, sl);
        err = sess_connect(u, s);
    }
    if (err == 0 && (err = udp_table_add(&u->table, s, k, h)) != 0) {
        loop_remove(u->w->loop, s->fd);
        close(s->fd);
        atomic_fetch_sub_explicit(&u->ls->r->ups[s->up - rc->up].conns, 1, memory_order_relaxed);
    }
    if (err != 0) {
        free(s);
        atomic_fetch_sub(&u->ls->r->conns, 1);
        drop(u, err == -EHOSTUNREACH ? DROP_NO_UPSTREAM : DROP_SESSION, strerror(-err), peer,
             client);
        return NULL;
    }
    atomic_fetch_add(&u->ls->r->udp_sessions, 1);
    stat_add(u->w, u->ls->r, STAT_CONNS, 1);
    loop_timer_set(u->w->loop, &s->timer, rc->idle_timeout_ms, idle_cb, s);
    log_event(LOG_DEBUG, "udp_session_open", rc->name, "client", LOG_ADDR, client, "peer", LOG_ADDR,
              peer, "upstream", LOG_STR, s->up->name, LOG_END);
    return s;
}

/* ---- client to upstream -------------------------------------------------- */

/* The accepted header's TLVs (tlvs=pass) but those the route sets itself,
 * and the CRC32C, which is recomputed if asked for (as conn.c does). */
static ssize_t pass_tlvs(const struct route_cfg *rc, const struct udp_slot *sl, uint8_t *buf,
                         ssize_t n)
{
    const uint8_t *p = sl->hdr.tlv, *end;
    struct pp_tlv t;

    if (!sl->has_hdr || !rc->tlvs_pass || p == NULL)
        return n;
    end = p + sl->hdr.tlv_len;
    while (n >= 0 && pp_tlv_next(&p, end, &t) > 0) {
        if (t.type == PP2_TYPE_CRC32C || (t.type == PP2_TYPE_AUTHORITY && rc->authority) ||
            (t.type == PP2_TYPE_UNIQUE_ID && rc->unique_id))
            continue;
        n = pp_build_v2_tlv(buf, UDP_HDR_CAP, (size_t)n, t.type, t.value, t.len);
    }
    return n;
}

/* The v2 header for one datagram: its real client and destination (from
 * its own accepted header, if any), family UDP4/UDP6, the route's TLVs. */
static ssize_t hdr_build(const struct udp_lsn *u, const struct udp_sess *s,
                         const struct udp_slot *sl, uint8_t *buf)
{
    const struct route_cfg *rc = u->rc;
    int local = sl->has_hdr && sl->hdr.command == PP2_CMD_LOCAL;
    const struct sockaddr *client = slot_client(sl), *dst = (const struct sockaddr *)&sl->local;
    ssize_t n;

    if (client != (const struct sockaddr *)&sl->peer)
        dst = &sl->hdr.dst.sa;
    n = pp_build_v2(buf, UDP_HDR_CAP, local ? PP2_CMD_LOCAL : PP2_CMD_PROXY, SOCK_DGRAM, client,
                    dst);
    n = pass_tlvs(rc, sl, buf, n);
    if (n >= 0 && rc->authority)
        n = pp_build_v2_tlv(buf, UDP_HDR_CAP, (size_t)n, PP2_TYPE_AUTHORITY, rc->authority,
                            strlen(rc->authority));
    if (n >= 0 && rc->unique_id)
        n = pp_build_v2_tlv(buf, UDP_HDR_CAP, (size_t)n, PP2_TYPE_UNIQUE_ID, s->uid,
                            sizeof(s->uid));
    if (n >= 0 && rc->crc32c)
        n = pp_build_v2_crc32c(buf, UDP_HDR_CAP, (size_t)n);
    return n;
}

/* Decides on one datagram from the route's socket: 0 to forward its
 * payload (sl->data, sl->len), -1 when it was dropped (and counted). */
static int slot_read(struct udp_lsn *u, struct udp_slot *sl, uint8_t *buf, size_t len, int flags)
{
    const struct route_cfg *rc = u->rc;
    const struct sockaddr *peer = (const struct sockaddr *)&sl->peer;
    const struct pp_parse_opts opts = {.flags = PP_PARSE_NO_V1};
    int trusted;
    ssize_t n;

    sl->has_hdr = 0;
    sl->data = buf;
    sl->len = len;
    if (flags & MSG_TRUNC) {
        drop(u, DROP_TRUNC, NULL, peer, NULL);
        return -1;
    }
    if (rc->accept_proxy == ACCEPT_PROXY_OFF)
        return 0;
    trusted = rc->trusted_all || cidr_list_match(&rc->trusted, peer);
    if (!trusted && rc->accept_proxy == ACCEPT_PROXY_REQUIRED) {
        drop(u, DROP_UNTRUSTED, NULL, peer, NULL);
        return -1;
    }
    /* Every datagram carries its own header (PROXY protocol, UDP). */
    n = pp_parse(buf, len, &sl->hdr, &opts);
    if (n == -PP_EBADSIG && rc->accept_proxy == ACCEPT_PROXY_OPTIONAL)
        return 0;
    if (n <= 0 || !trusted) {
        enum udp_drop why = n == -PP_EBADSIG ? DROP_NO_HDR : n <= 0 ? DROP_BAD_HDR : DROP_UNTRUSTED;
        drop(u, why, n == 0 ? "truncated PROXY header" : pp_strerror((int)n), peer, NULL);
        return -1;
    }
    stat_add(u->w, u->ls->r, STAT_HDR_OK, 1);
    sl->has_hdr = 1;
    sl->data = buf + n;
    sl->len = len - (size_t)n;
    return 0;
}

static void key_put(uint8_t *addr, uint16_t *port, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        memcpy(addr, &sin->sin_addr, 4);
        *port = sin->sin_port;
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        memcpy(addr, &sin6->sin6_addr, 16);
        *port = sin6->sin6_port;
    }
}

static void key_make(struct udp_key *k, const struct udp_slot *sl)
{
    const struct sockaddr *peer = (const struct sockaddr *)&sl->peer, *client = slot_client(sl);

    memset(k, 0, sizeof(*k));
    k->peer_family = (uint8_t)peer->sa_family;
    key_put(k->peer, &k->peer_port, peer);
    if (sl->has_hdr && client == peer) {
        k->client_kind = 1;
    } else if (sl->has_hdr) {
        k->client_kind = (uint8_t)client->sa_family;
        key_put(k->client, &k->client_port, client);
    }
}

/* A run of consecutive datagrams of one session, sent in one sendmmsg. */
static void run_flush(struct udp_lsn *u, struct udp_sess *s, unsigned from, unsigned to)
{
    int err = 0;
    unsigned lost;

    if (s == NULL || to == from)
        return;
    lost = send_run(u, s->fd, u->smsg + from, to - from, &err);
    if (lost > 0)
        drop(u, DROP_SEND_UP, strerror(err), (const struct sockaddr *)&s->peer,
             (const struct sockaddr *)&s->client);
}

/* Queues slot i's datagram as message m of its session's run. */
static int queue(struct udp_lsn *u, struct udp_sess *s, int i, unsigned m)
{
    struct udp_slot *sl = &u->slot[i];
    struct msghdr *mh = &u->smsg[m].msg_hdr;
    uint8_t *hbuf = u->hbufs + (size_t)i * UDP_HDR_CAP;
    ssize_t n = 0;

    if (u->rc->send_proxy == SEND_PROXY_V2 && (n = hdr_build(u, s, sl, hbuf)) < 0) {
        drop(u, DROP_SEND_UP, pp_strerror((int)n), (const struct sockaddr *)&s->peer,
             (const struct sockaddr *)&s->client);
        return -1;
    }
    u->siov[m][0] = (struct iovec){.iov_base = hbuf, .iov_len = (size_t)n};
    u->siov[m][1] = (struct iovec){.iov_base = sl->data, .iov_len = sl->len};
    memset(mh, 0, sizeof(*mh));
    /* Always both iovecs (the first empty without a header): a session's
     * messages then name consecutive iovecs, as a GSO send needs. */
    mh->msg_iov = u->siov[m];
    mh->msg_iovlen = 2;
    s->dg_in++;
    s->bytes_in += sl->len;
    stat_add(u->w, u->ls->r, STAT_BYTES_IN, sl->len);
    s->active_ms = loop_now(u->w->loop);
    return 0;
}

/* Sends the batch's datagrams upstream, each through its session: a
 * session's datagrams in one call, in the order they came (the order that
 * matters is each client's own; clients interleaved in the batch are not
 * kept interleaved). */
static void forward(struct udp_lsn *u, int n, const int *keep)
{
    struct udp_sess *sess[UDP_BATCH]; /* each datagram's session, NULL: dropped */
    unsigned m = 0;

    for (int i = 0; i < n; i++) {
        struct udp_key k;
        struct udp_sess *s;
        uint64_t h;

        sess[i] = NULL;
        if (!keep[i])
            continue;
        key_make(&k, &u->slot[i]);
        h = udp_table_hash(&u->table, &k);
        s = udp_table_find(&u->table, &k, h);
        if (s == NULL)
            s = sess_open(u, &k, h, &u->slot[i]);
        sess[i] = s;
    }
    for (int i = 0; i < n; i++) {
        struct udp_sess *s = sess[i];
        unsigned from = m;

        if (s == NULL)
            continue;
        for (int j = i; j < n; j++) {
            if (sess[j] != s)
                continue;
            sess[j] = NULL;
            if (queue(u, s, j, m) == 0)
                m++;
        }
        run_flush(u, s, from, m);
    }
}

/* The address the datagram was sent to: the bound one, or on a wildcard
 * socket the one IP_PKTINFO/IPV6_PKTINFO names, with the bound port. */
static void slot_local(const struct udp_lsn *u, struct udp_slot *sl, struct msghdr *mh)
{
    uint16_t port = ((const struct sockaddr_in *)&u->local)->sin_port; /* same offset in sin6 */

    memcpy(&sl->local, &u->local, sizeof(sl->local));
    for (struct cmsghdr *cm = u->wild ? CMSG_FIRSTHDR(mh) : NULL; cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&sl->local;
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            memset(sin, 0, sizeof(*sin));
            sin->sin_family = AF_INET;
            sin->sin_addr = pi.ipi_addr;
            sin->sin_port = port;
        } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&sl->local;
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            memset(sin6, 0, sizeof(*sin6));
            sin6->sin6_family = AF_INET6;
            sin6->sin6_addr = pi.ipi6_addr;
            sin6->sin6_port = port;
        }
    }
}

static void listener_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct udp_lsn *u = arg;
    int n, keep[UDP_BATCH];

    (void)l, (void)events;
    for (int i = 0; i < UDP_BATCH; i++) {
        struct msghdr *mh = &u->rmsg[i].msg_hdr;
        u->riov[i] =
            (struct iovec){.iov_base = u->bufs + (size_t)i * UDP_BUF_SIZE, .iov_len = UDP_BUF_SIZE};
        memset(mh, 0, sizeof(*mh));
        mh->msg_name = &u->slot[i].peer;
        mh->msg_namelen = sizeof(u->slot[i].peer);
        mh->msg_iov = &u->riov[i];
        mh->msg_iovlen = 1;
        mh->msg_control = u->wild ? u->ctrl[i] : NULL;
        mh->msg_controllen = u->wild ? sizeof(u->ctrl[i]) : 0;
    }
    n = recvmmsg(fd, u->rmsg, UDP_BATCH, MSG_DONTWAIT, NULL);
    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR)
            drop(u, DROP_SESSION, strerror(errno), NULL, NULL);
        return;
    }
    for (int i = 0; i < n; i++) {
        struct udp_slot *sl = &u->slot[i];
        slot_local(u, sl, &u->rmsg[i].msg_hdr);
        keep[i] = slot_read(u, sl, u->riov[i].iov_base, u->rmsg[i].msg_len,
                            u->rmsg[i].msg_hdr.msg_flags) == 0;
    }
    forward(u, n, keep);
}

/* ---- the route's socket -------------------------------------------------- */

static int set_opt(int fd, int level, int name, int val)
{
    return setsockopt(fd, level, name, &val, sizeof(val));
}

static int is_any(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* Opens and binds the route's socket, with the socket filter prog attached
 * before the bind; on failure returns -errno and names the
 * failed step in *what. */
static int sock_open(const struct route_cfg *rc, const struct sock_fprog *prog, int *fd_out,
                     const char **what)
{
    const struct sockaddr *sa = (const struct sockaddr *)&rc->bind;
    int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err;

    *what = "socket";
    if (fd == -1)
        return -errno;
    *what = "setsockopt";
    if (set_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) == -1 ||
        set_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1) == -1)
        goto fail;
    /* "udp://:PORT" means every address, IPv4 included, on one socket. */
    if (sa->sa_family == AF_INET6 &&
        set_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, rc->family == AF_INET6) == -1)
        goto fail;
    set_opt(fd, SOL_SOCKET, SO_RCVBUF, UDP_RCVBUF);
    *what = "setsockopt PKTINFO";
    if (is_any(sa) && (set_opt(fd, IPPROTO_IP, IP_PKTINFO, 1) == -1 && sa->sa_family == AF_INET))
        goto fail;
    if (is_any(sa) && sa->sa_family == AF_INET6 &&
        set_opt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) == -1)
        goto fail;
    *what = "setsockopt SO_ATTACH_FILTER";
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, prog, sizeof(*prog)) == -1)
        goto fail;
    *what = "bind";
    if (bind(fd, sa, rc->bindlen) == -1)
        goto fail;
    *fd_out = fd;
    return 0;
fail:
    err = -errno;
    close(fd);
    return err;
}

static void lsn_free(struct udp_lsn *u)
{
    udp_table_free(&u->table);
    free(u->bufs);
    free(u->hbufs);
    free(u->qbufs);
    free(u);
}

static struct udp_lsn *lsn_new(struct worker *w, struct listener *ls)
{
    struct udp_lsn *u = calloc(1, sizeof(*u));

    if (u == NULL)
        return NULL;
    u->w = w;
    u->ls = ls;
    u->rc = ls->r->cfg;
    u->bufs = malloc((size_t)UDP_BATCH * UDP_BUF_SIZE);
    u->hbufs = malloc((size_t)UDP_BATCH * UDP_HDR_CAP);
    u->qbufs = malloc((size_t)UDP_BATCH * UDP_BUF_SIZE);
    if (u->bufs == NULL || u->hbufs == NULL || u->qbufs == NULL ||
        udp_table_init(&u->table) != 0) {
        lsn_free(u);
        return NULL;
    }
    return u;
}

int udp_open_group(const struct route_cfg *rc, int n, int *fds)
{
    /* A socket filter that takes nothing, on each socket until all are bound. */
    struct sock_filter none = BPF_STMT(BPF_RET | BPF_K, 0);
    struct sock_fprog prog = {.len = 1, .filter = &none};
    const char *what = "socket";
    int i, err = 0;

    for (i = 0; i < n; i++)
        fds[i] = -1;
    for (i = 0; i < n && err == 0; i++)
        err = sock_open(rc, &prog, &fds[i], &what);
    for (i = 0; i < n && err == 0; i++) {
        int unused = 0; /* the kernel wants an int-sized value, and ignores it */

        if (setsockopt(fds[i], SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof(unused)) == -1) {
            err = -errno;
            what = "setsockopt SO_DETACH_FILTER";
        }
    }
    if (err == 0)
        return 0;
    log_event(LOG_ERROR, "listen_error", rc->name, "listen", LOG_STR, rc->listen, "step", LOG_STR,
              what, "error", LOG_STR, strerror(-err), LOG_END);
    for (i = 0; i < n; i++) {
        if (fds[i] != -1)
            close(fds[i]);
        fds[i] = -1;
    }
    return -1;
}

int udp_listen(struct worker *w, struct listener *ls)
{
    struct route *r = ls->r;
    const struct route_cfg *rc = r->cfg;
    struct udp_lsn *u = lsn_new(w, ls);
    const char *what = "malloc";
    socklen_t len = sizeof(u->local);
    int err = 0;

    if (u == NULL) {
        err = -ENOMEM;
    } else if (r->udp_fds != NULL && w->id < r->nudp_fds && r->udp_fds[w->id] != -1) {
        ls->fd = r->udp_fds[w->id];
        r->udp_fds[w->id] = -1;
    } else {
        /* Opened here, it would join the group late and move clients. */
        err = -EBADF;
        what = "socket (none opened for this worker)";
    }
    if (err == 0) {
        getsockname(ls->fd, (struct sockaddr *)&u->local, &len);
        u->wild = is_any((const struct sockaddr *)&u->local);
        err = loop_add(w->loop, ls->fd, LOOP_READ, listener_cb, u);
        what = "epoll";
    }
    if (err != 0) {
        log_event(LOG_ERROR, "listen_error", rc->name, "listen", LOG_STR, rc->listen, "step",
                  LOG_STR, what, "error", LOG_STR, strerror(-err), LOG_END);
        if (ls->fd != -1)
            close(ls->fd);
        ls->fd = -1;
        if (u != NULL)
            lsn_free(u);
        return -1;
    }
    ls->udp = u;
    return 0;
}

void udp_stop(struct worker *w, struct listener *ls)
{
    struct udp_lsn *u = ls->udp;

    if (u != NULL)
        replies_flush(u);
    if (ls->fd != -1) {
        loop_remove(w->loop, ls->fd);
        close(ls->fd);
        ls->fd = -1;
    }
    if (u == NULL)
        return;
    /* Closed in table order; the index goes as a whole afterwards, so no
     * entry moves while we walk it. */
    for (size_t i = 0; i < u->table.cap; i++) {
        struct udp_sess *s = u->table.v[i];
        if (s == NULL)
            continue;
        u->table.v[i] = NULL;
        u->table.n--;
        sess_release(u, s, "stopped");
        free(s);
    }
    drop_flush(u);
    ls->udp = NULL;
    if (u->flush_queued)
        u->dead = 1; /* the deferred flush holds u: it frees it */
    else
        lsn_free(u);
}

/* ---- drain --------------------------------------------------------------- */

int udp_drain(struct worker *w, struct listener *ls)
{
    struct udp_lsn *u = ls->udp;
    struct listener **v;

    if (u == NULL || ls->fd == -1 || u->table.n == 0)
        return 0;
    v = realloc(w->udp_drain, (w->nudp_drain + 1) * sizeof(*v));
    if (v == NULL)
        return 0;
    w->udp_drain = v;
    v[w->nudp_drain++] = ls;
    /* Datagrams from clients stay unread; replies still leave by ls->fd. */
    loop_remove(w->loop, ls->fd);
    u->draining = 1;
    w->nconns++;
    /* Each session's timer now runs idle_cb at once, which re-arms it for
     * the shorter drain deadline. */
    for (size_t i = 0; i < u->table.cap; i++) {
        struct udp_sess *s = u->table.v[i];
        if (s != NULL)
            loop_timer_set(w->loop, &s->timer, 0, idle_cb, s);
    }
    return 1;
}

/* Takes ls off the worker's draining list and closes it. */
static void drain_close(struct worker *w, struct listener *ls)
{
    for (size_t i = 0; i < w->nudp_drain; i++) {
        if (w->udp_drain[i] == ls) {
            w->udp_drain[i] = w->udp_drain[--w->nudp_drain];
            break;
        }
    }
    udp_stop(w, ls);
    free(ls);
    w->nconns--;
}

/* The last session of a draining listener closed. */
static void drain_done(struct udp_lsn *u)
{
    struct worker *w = u->w;

    drain_close(w, u->ls);
    if (w->nconns == 0)
        loop_stop(w->loop);
}

void udp_drain_end(struct worker *w)
{
    while (w->nudp_drain > 0)
        drain_close(w, w->udp_drain[w->nudp_drain - 1]);
    free(w->udp_drain);
    w->udp_drain = NULL;
}
