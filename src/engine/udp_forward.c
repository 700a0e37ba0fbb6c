/*
 * udp_forward.c - client to upstream (udp_forward_*): one recvmmsg on the
 * route's socket; each datagram's header (if the route accepts one) is
 * judged by the route, its session found or made; then each session's
 * datagrams go in one call on its connected socket, in arrival order, each
 * with the header the route builds for it (send-proxy v2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "engine/udp_lsn.h"
#include "engine/worker.h"

/* Decides on one datagram from the route's socket: 0 to forward its
 * payload (sl->data, sl->len), -1 when it was dropped (and counted). */
static int slot_read(struct udp_lsn *u, struct udp_slot *sl, uint8_t *buf, size_t len, int flags)
{
    const struct sockaddr *peer = (const struct sockaddr *)&sl->peer;
    const struct pp_parse_opts opts = {.flags = PP_PARSE_NO_V1};
    enum admit a;
    int trusted;
    ssize_t n;

    sl->has_hdr = 0;
    sl->data = buf;
    sl->len = len;
    if (flags & MSG_TRUNC) {
        udp_drop(u, DROP_TRUNC, NULL, peer, NULL);
        return -1;
    }
    /* cidr.c and the rest take ::ffff:a.b.c.d for a.b.c.d: only a datagram
     * that came as IPv4 may have that source. A native IPv6 one claiming it
     * is forged (TCP never sees one: Linux drops such SYNs), whatever the
     * route's accept-proxy: trusted, allow and the reply all hang on it. */
    if (u->v6 && !sl->as_v4 &&
        IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)&sl->peer)->sin6_addr)) {
        udp_drop(u, DROP_FORGED, NULL, peer, NULL);
        return -1;
    }
    if (u->rc->accept_proxy == ACCEPT_PROXY_OFF)
        return 0;
    /* A source that may send no header, on a route that requires one: each
     * of its datagrams is a header from an untrusted source. */
    if (route_admit_peer(u->r, peer, &trusted) != ADMIT_OK) {
        udp_drop_admit(u, ADMIT_UNTRUSTED, 0, peer, NULL);
        return -1;
    }
    /* Every datagram carries its own header (PROXY protocol, UDP). */
    n = pp_parse(buf, len, &sl->hdr, &opts);
    a = route_admit_datagram(u->r, n, len, trusted);
    if (a == ADMIT_DIRECT)
        return 0;
    if (a != ADMIT_OK) {
        udp_drop_admit(u, a, n, peer, NULL);
        return -1;
    }
    route_count(u->r, u->w->id, STAT_HDR_OK, 1);
    sl->has_hdr = 1;
    sl->data = buf + n;
    sl->len = len - (size_t)n;
    return 0;
}

/* A run of consecutive datagrams of one session, sent in one sendmmsg. */
static void run_flush(struct udp_lsn *u, struct udp_sess *s, unsigned from, unsigned to)
{
    int err = 0;
    unsigned lost;

    if (s == NULL || to == from)
        return;
    lost = udp_send(u, s->fd, u->smsg + from, to - from, NULL, &err);
    if (lost == 0)
        return;
    s->err = err; /* udp_send leaves the error of every loss */
    udp_drop(u, DROP_SEND_UP, strerror(err), (const struct sockaddr *)&s->peer,
             (const struct sockaddr *)&s->client);
}

/* Queues slot i's datagram as message m of its session's run. */
static int queue(struct udp_lsn *u, struct udp_sess *s, int i, unsigned m)
{
    struct udp_slot *sl = &u->slot[i];
    struct msghdr *mh = &u->smsg[m].msg_hdr;
    uint8_t *hbuf = u->hbufs + (size_t)i * UDP_HDR_CAP;
    struct route_hdr h = {.accepted = sl->has_hdr ? &sl->hdr : NULL,
                          .socktype = SOCK_DGRAM,
                          .unique_id = s->uid};
    ssize_t n;

    route_relayed(h.accepted, (const struct sockaddr *)&sl->peer,
                  (const struct sockaddr *)&sl->local, &h.src, &h.dst);
    if ((n = route_header(u->r, &h, hbuf, UDP_HDR_CAP)) < 0) {
        udp_drop(u, DROP_SEND_UP, pp_strerror((int)n), (const struct sockaddr *)&s->peer,
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
    route_count(u->r, u->w->id, STAT_BYTES_IN, sl->len);
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

    for (int i = 0; i < n; i++)
        sess[i] = keep[i] ? udp_session_get(u, &u->slot[i]) : NULL;
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
 * socket the one IP_PKTINFO/IPV6_PKTINFO names, with the bound port. On an
 * IPv6 socket, whether it came as IPv4 (sl->as_v4): Linux gives an IPv4
 * datagram an IPV6_PKTINFO with the IPv4-mapped destination (and the
 * IP_PKTINFO asked for besides), a native IPv6 one its IPv6 destination
 * only, which is never IPv4-mapped (no such address is local). */
static void slot_local(const struct udp_lsn *u, struct udp_slot *sl, struct msghdr *mh)
{
    uint16_t port = ((const struct sockaddr_in *)&u->local)->sin_port; /* same offset in sin6 */

    memcpy(&sl->local, &u->local, sizeof(sl->local));
    sl->as_v4 = u->local.ss_family == AF_INET;
    for (struct cmsghdr *cm = mh->msg_control ? CMSG_FIRSTHDR(mh) : NULL; cm;
         cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&sl->local;
            struct in_pktinfo pi;

            sl->as_v4 = 1;
            if (!u->wild || u->v6)
                continue; /* an IPv6 socket names it by IPV6_PKTINFO, v4-mapped */
            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            memset(sin, 0, sizeof(*sin));
            sin->sin_family = AF_INET;
            sin->sin_addr = pi.ipi_addr;
            sin->sin_port = port;
        } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&sl->local;
            struct in6_pktinfo pi;

            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            if (IN6_IS_ADDR_V4MAPPED(&pi.ipi6_addr))
                sl->as_v4 = 1;
            if (!u->wild)
                continue;
            memset(sin6, 0, sizeof(*sin6));
            sin6->sin6_family = AF_INET6;
            sin6->sin6_addr = pi.ipi6_addr;
            sin6->sin6_port = port;
        }
    }
}

void udp_forward_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct udp_lsn *u = arg;
    int n, keep[UDP_BATCH];

    (void)l, (void)events;
    u->w->udp.batch++;
    for (int i = 0; i < UDP_BATCH; i++) {
        struct msghdr *mh = &u->rmsg[i].msg_hdr;
        u->riov[i] =
            (struct iovec){.iov_base = u->bufs + (size_t)i * UDP_BUF_SIZE, .iov_len = UDP_BUF_SIZE};
        memset(mh, 0, sizeof(*mh));
        mh->msg_name = &u->slot[i].peer;
        mh->msg_namelen = sizeof(u->slot[i].peer);
        mh->msg_iov = &u->riov[i];
        mh->msg_iovlen = 1;
        mh->msg_control = u->wild || u->v6 ? u->ctrl[i] : NULL;
        mh->msg_controllen = u->wild || u->v6 ? sizeof(u->ctrl[i]) : 0;
    }
    n = recvmmsg(fd, u->rmsg, UDP_BATCH, MSG_DONTWAIT, NULL);
    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR)
            udp_drop(u, DROP_SESSION, strerror(errno), NULL, NULL);
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
