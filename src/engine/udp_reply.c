/*
 * udp_reply.c - upstream to client (udp_reply_*): a session's socket is read
 * with recvmmsg into its listener's reply queue, which is sent on the
 * route's socket once the loop iteration's events are handled, in one call
 * for every session that answered.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include "engine/balance.h"
#include "engine/listen.h"
#include "engine/udp_lsn.h"
#include "engine/worker.h"

/* Sends the queued replies, in one call for all sessions. */
void udp_reply_flush(struct udp_lsn *u)
{
    int err = 0;
    unsigned lost;

    if (u->nq == 0 || u->ls->fd == -1) {
        u->nq = 0;
        return;
    }
    lost = udp_send(u, u->ls->fd, u->qmsg, u->nq, u->qseg, &err);
    u->nq = 0;
    if (lost > 0)
        udp_drop(u, DROP_SEND_CLIENT, strerror(err), NULL, NULL);
}

static void replies_flush_cb(void *arg)
{
    struct udp_lsn *u = arg;

    u->flush_queued = 0;
    if (u->dead) {
        udp_listen_free(u);
        return;
    }
    udp_reply_flush(u);
}

/* The segment size of a reply the kernel read as a run (UDP_GRO's control
 * message), or 0 for a single datagram. */
static uint16_t gro_seg(struct msghdr *mh, size_t len)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
        int seg;

        if (cm->cmsg_level != SOL_UDP || cm->cmsg_type != UDP_GRO ||
            cm->cmsg_len < CMSG_LEN(sizeof(seg)))
            continue;
        memcpy(&seg, CMSG_DATA(cm), sizeof(seg));
        return seg > 0 && seg <= UINT16_MAX && (size_t)seg < len ? (uint16_t)seg : 0;
    }
    return 0;
}

/* An upstream that sends runs (more than one datagram in one read) gets
 * UDP_GRO on its session's socket: the kernel then hands each run it can
 * coalesce over as one buffer (on loopback, what the upstream sent as one
 * GSO send; from a NIC, what GRO merged), which goes on to the client as
 * one GSO send. Asked for once per session, and only then: a session of
 * one question and one answer (DNS) never pays the setsockopt. It is a
 * trial: an upstream whose first GRO_TRIAL_RUNS runs all came datagram by
 * datagram does not send GSO, and the socket goes back to plain reads for
 * good: UDP_GRO on brought it nothing, and bench/ab.sh's udp-64 row
 * measured more CPU per datagram with it (docs/design.md). */
#define GRO_TRIAL_RUNS 32

static void gro_set(int fd, int on)
{
    /* Without it (a kernel before 5.0) the datagrams come one by one. */
    (void)setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof(on));
}

/* After a read of n messages holding dgrams datagrams. */
static void gro_after_read(struct udp_sess *s, int fd, int n, unsigned dgrams)
{
    switch (s->gro) {
    case GRO_NONE:
        if (n > 1) {
            s->gro = GRO_TRIAL;
            gro_set(fd, 1);
        }
        break;
    case GRO_TRIAL:
        if (dgrams > (unsigned)n) {
            s->gro = GRO_ON;
        } else if (n > 1 && ++s->gro_runs >= GRO_TRIAL_RUNS) {
            s->gro = GRO_OFF;
            gro_set(fd, 0);
        }
        break;
    default: /* GRO_ON, GRO_OFF: settled */
        break;
    }
}

/* Replies from the upstream: back to the session's peer (the client, or
 * the front proxy that sent its header), as they are. They are queued and
 * leave with the other sessions' replies at the end of the loop iteration
 * (or at once when the queue is full). */
void udp_reply_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct udp_sess *s = arg;
    struct udp_lsn *u = s->u;
    unsigned room, q, dgrams = 0;
    int n;
    uint64_t bytes = 0;

    (void)events;
    if (u->nq == UDP_BATCH)
        udp_reply_flush(u);
    q = u->nq;
    room = UDP_BATCH - q;
    for (unsigned i = q; i < q + room; i++) {
        struct msghdr *mh = &u->qmsg[i].msg_hdr;

        u->qiov[i].iov_base = u->qbufs + (size_t)i * UDP_BUF_SIZE;
        u->qiov[i].iov_len = UDP_BUF_SIZE;
        memset(mh, 0, sizeof(*mh));
        mh->msg_iov = &u->qiov[i];
        mh->msg_iovlen = 1;
        mh->msg_control = u->qctl[i]; /* UDP_GRO's segment size */
        mh->msg_controllen = sizeof(u->qctl[i]);
    }
    n = recvmmsg(fd, u->qmsg + q, room, MSG_DONTWAIT, NULL);
    if (n == -1) {
        int err = errno;

        if (err == EAGAIN || err == EINTR)
            return;
        /* ECONNREFUSED: an ICMP port unreachable from the upstream. New
         * sessions avoid it for a while, as after a failed TCP connect;
         * this one stays, the upstream may come back before idle-timeout. */
        balance_result(u->r, (size_t)(s->up - u->rc->up), err, loop_now(l));
        s->err = err;
        udp_drop(u, DROP_UPSTREAM, strerror(err), (const struct sockaddr *)&s->peer,
             (const struct sockaddr *)&s->client);
        return;
    }
    s->active_ms = loop_now(l);
    udp_session_answered(u, s);
    for (unsigned i = q; i < q + (unsigned)n; i++) {
        struct msghdr *mh = &u->qmsg[i].msg_hdr;
        size_t len = u->qmsg[i].msg_len;

        u->qseg[i] = gro_seg(mh, len);
        dgrams += u->qseg[i] != 0 ? (unsigned)((len + u->qseg[i] - 1) / u->qseg[i]) : 1;
        memcpy(&u->qname[i], &s->peer, s->peerlen);
        mh->msg_name = &u->qname[i];
        mh->msg_namelen = s->peerlen;
        mh->msg_control = NULL;
        mh->msg_controllen = 0;
        if (s->ctllen > 0) {
            memcpy(u->qctl[i], s->ctl, s->ctllen);
            mh->msg_control = u->qctl[i];
            mh->msg_controllen = s->ctllen;
        }
        u->qiov[i].iov_len = len;
        bytes += len;
    }
    gro_after_read(s, fd, n, dgrams);
    u->nq += (unsigned)n;
    /* Counted as sent when queued; a send that fails later is counted
     * (and logged) as a udp_dropped of the route. */
    s->dg_out += dgrams;
    s->bytes_out += bytes;
    route_count(u->r, u->w->id, STAT_BYTES_OUT, bytes);
    if (u->nq > 0 && !u->flush_queued) {
        loop_defer(l, &u->flush_work, replies_flush_cb, u);
        u->flush_queued = 1;
    }
}
