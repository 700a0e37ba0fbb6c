/*
 * udp_send.c - sending a batch of datagrams (udp_send), both ways: each
 * session's datagrams upstream, the replies to the clients.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include "engine/udp_lsn.h"

/*
 * UDP GSO (UDP_SEGMENT): a run of datagrams of one size to one destination
 * goes down the stack as one buffer and is cut into datagrams by the device
 * or, on loopback, by the receiving socket: one route lookup, one pass
 * through the stack and one wakeup for the run instead of one each. The
 * receiver still gets the datagrams one by one, in order. A segment must
 * fit the path MTU, so only datagrams that fit 1,500 bytes with IPv6 and
 * UDP headers are grouped; the kernel takes at most 64 segments and 64 KiB.
 * A run the kernel read in one piece (UDP_GRO on a session's socket,
 * udp_reply.c) goes on as one GSO send as it came, within the same limits;
 * beyond them, or once GSO is off, it is cut into its datagrams here.
 */
#define GSO_MAX_SEG 1452
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000
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

/* How many datagrams of seg bytes (the last may be shorter) len holds. */
static unsigned seg_count(size_t len, size_t seg)
{
    return len == 0 ? 1 : (unsigned)((len + seg - 1) / seg);
}

/* A run read in one piece (UDP_GRO) sent datagram by datagram: each
 * segment a message of its own, naming the run's destination. */
static unsigned send_cut(int fd, const struct msghdr *run, size_t seg, int *err)
{
    struct mmsghdr m[GSO_MAX_SEGS];
    struct iovec iov[GSO_MAX_SEGS];
    uint8_t *p = run->msg_iov[0].iov_base;
    size_t left = run->msg_iov[0].iov_len;
    unsigned lost = 0;

    while (left > 0) {
        unsigned k = 0;

        for (; k < GSO_MAX_SEGS && left > 0; k++) {
            size_t len = left < seg ? left : seg;

            iov[k] = (struct iovec){.iov_base = p, .iov_len = len};
            m[k].msg_hdr = *run;
            m[k].msg_hdr.msg_iov = &iov[k];
            m[k].msg_hdr.msg_iovlen = 1;
            p += len;
            left -= len;
        }
        lost += send_batch(fd, m, k, err);
    }
    return lost;
}

/* send_batch, where a message with segs[i] > 0 is a run read in one piece
 * and is cut into its datagrams. */
static unsigned send_each(int fd, struct mmsghdr *msgs, const uint16_t *segs, unsigned n,
                          int *err)
{
    unsigned lost = 0, i = 0;

    if (segs == NULL)
        return send_batch(fd, msgs, n, err);
    while (i < n) {
        unsigned k = 0;

        while (i + k < n && segs[i + k] == 0)
            k++;
        if (k > 0) {
            lost += send_batch(fd, msgs + i, k, err);
            i += k;
        } else {
            lost += send_cut(fd, &msgs[i].msg_hdr, segs[i], err);
            i++;
        }
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
 * iovecs follow each other in memory (so one msghdr can name them all).
 * A message that is a run already (segs) is never joined to another. */
static unsigned gso_run(const struct mmsghdr *msgs, const uint16_t *segs, unsigned n, size_t seg)
{
    size_t total = seg;
    unsigned k = 1;

    if (seg == 0 || seg > GSO_MAX_SEG)
        return 1;
    while (k < n && k < GSO_MAX_SEGS) {
        const struct msghdr *prev = &msgs[k - 1].msg_hdr, *mh = &msgs[k].msg_hdr;
        size_t len = msg_bytes(mh);

        if (len == 0 || len > seg || total + len > GSO_MAX_BYTES ||
            (segs != NULL && segs[k] != 0) || mh->msg_iov != prev->msg_iov + prev->msg_iovlen ||
            !same_dest(prev, mh))
            break;
        total += len;
        k++;
        if (len < seg)
            break;
    }
    return k;
}

/* Whether a run read in one piece can go as one GSO send as it is: within
 * the limits the runs ppfwd makes keep to (else it is cut). */
static int gso_fits(size_t len, size_t seg)
{
    return seg <= GSO_MAX_SEG && len <= GSO_MAX_BYTES && seg_count(len, seg) <= GSO_MAX_SEGS;
}

/* Adds UDP_SEGMENT (seg) to out, after in's own control messages. */
static void gso_ctl(struct msghdr *out, const struct msghdr *in, uint8_t *ctl, size_t seg)
{
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
}

/* Sends u->omsg[0..no), made of msgs[0..n). A GSO send the kernel refuses
 * (a segment over the path MTU, a device without checksum offload) is sent
 * again datagram by datagram with everything after it in msgs, GSO is off
 * for the listener from then on, and *rest says msgs are all done. */
static unsigned send_out(struct udp_lsn *u, int fd, struct mmsghdr *msgs, const uint16_t *segs,
                         unsigned n, unsigned no, int *err, int *rest)
{
    unsigned lost = 0;

    for (unsigned i = 0; i < no;) {
        int rc = sendmmsg(fd, u->omsg + i, no - i, 0);
        if (rc == -1 && errno == EINTR)
            continue;
        if (rc > 0) {
            i += (unsigned)rc;
            continue;
        }
        if (u->osegs[i] > 1 && (errno == EINVAL || errno == EMSGSIZE || errno == EIO ||
                                errno == EOPNOTSUPP || errno == ENOPROTOOPT)) {
            unsigned from = u->ofirst[i];

            u->no_gso = 1;
            *rest = 1;
            return lost + send_each(fd, msgs + from, segs != NULL ? segs + from : NULL, n - from,
                                    err);
        }
        *err = errno;
        lost += u->osegs[i];
        i++;
    }
    return lost;
}

/* Runs of equal size to one destination go as one GSO send each, in one
 * sendmmsg with the single ones; so do runs read in one piece (segs[i],
 * the segment size of msgs[i] when UDP_GRO read it as a run; NULL: none). */
unsigned udp_send(struct udp_lsn *u, int fd, struct mmsghdr *msgs, unsigned n,
                  const uint16_t *segs, int *err)
{
    unsigned no = 0, lost = 0, i = 0;
    int rest = 0;

    if (u->no_gso || (n < 2 && (segs == NULL || segs[0] == 0)))
        return send_each(fd, msgs, segs, n, err);
    while (i < n) {
        struct msghdr *in = &msgs[i].msg_hdr, *out = &u->omsg[no].msg_hdr;
        size_t len = msg_bytes(in);

        if (segs != NULL && segs[i] != 0 && !gso_fits(len, segs[i])) {
            /* Cut, after what is before it: a client's datagrams keep
             * their order. */
            lost += send_out(u, fd, msgs, segs, n, no, err, &rest);
            if (rest)
                return lost;
            no = 0;
            lost += send_cut(fd, in, segs[i], err);
            i++;
            continue;
        }
        *out = *in;
        u->ofirst[no] = i;
        if (segs != NULL && segs[i] != 0) {
            u->osegs[no] = seg_count(len, segs[i]);
            gso_ctl(out, in, u->octl[no], segs[i]);
            i++;
        } else {
            unsigned k = gso_run(msgs + i, segs != NULL ? segs + i : NULL, n - i, len);

            u->osegs[no] = k;
            if (k > 1) {
                gso_ctl(out, in, u->octl[no], len);
                out->msg_iovlen = 0;
                for (unsigned j = 0; j < k; j++)
                    out->msg_iovlen += msgs[i + j].msg_hdr.msg_iovlen;
            }
            i += k;
        }
        no++;
    }
    return lost + send_out(u, fd, msgs, segs, n, no, err, &rest);
}
