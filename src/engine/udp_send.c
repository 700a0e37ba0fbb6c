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

/* Runs of equal size to one destination go as one GSO send each, in one
 * sendmmsg with the single ones. */
unsigned udp_send(struct udp_lsn *u, int fd, struct mmsghdr *msgs, unsigned n, int *err)
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
