/*
 * test_udp_send.c - udp_send (src/engine/udp_send.c) with runs read in one
 * piece (UDP_GRO on a session's socket): each goes to the client as its
 * datagrams, in order, whether it leaves as one GSO send (within the limits
 * of the runs ppfwd makes itself), is cut into datagrams (segments over
 * 1,452 bytes, GSO off for the listener), or sits between single replies.
 *
 * The receiver is a UDP socket on 127.0.0.1. With UDP_GRO set on it, a GSO
 * send reaches it as one buffer with its segment size: that tells a run
 * sent as one GSO send from one sent datagram by datagram.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/udp_lsn.h"

#define MAXD 128

struct pair {
    int tx, rx;
    struct sockaddr_in to;
};

/* What the receiver read: each buffer's length and segment size (0: a
 * single datagram), and the datagrams, cut by that size, in order. */
struct got {
    unsigned nbufs, ndg;
    size_t seg[MAXD];
    size_t dlen[MAXD];
    uint8_t first[MAXD]; /* each datagram's first byte */
};

static void open_pair(struct pair *p, int gro)
{
    socklen_t len = sizeof(p->to);
    int one = 1, big = 4 << 20;

    p->tx = socket(AF_INET, SOCK_DGRAM, 0);
    p->rx = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(p->tx >= 0 && p->rx >= 0);
    memset(&p->to, 0, sizeof(p->to));
    p->to.sin_family = AF_INET;
    p->to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(p->rx, (struct sockaddr *)&p->to, sizeof(p->to)), 0);
    assert_int_equal(getsockname(p->rx, (struct sockaddr *)&p->to, &len), 0);
    setsockopt(p->rx, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    if (gro)
        assert_int_equal(setsockopt(p->rx, SOL_UDP, UDP_GRO, &one, sizeof(one)), 0);
}

static void close_pair(struct pair *p)
{
    close(p->tx);
    close(p->rx);
}

static void drain(struct pair *p, struct got *g)
{
    static uint8_t buf[65536];

    memset(g, 0, sizeof(*g));
    for (;;) {
        uint8_t ctl[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                            .msg_controllen = sizeof(ctl)};
        ssize_t n = recvmsg(p->rx, &mh, MSG_DONTWAIT);
        size_t seg = 0;

        if (n < 0) {
            assert_int_equal(errno, EAGAIN);
            return;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm))
            if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
                int s;
                memcpy(&s, CMSG_DATA(cm), sizeof(s));
                seg = (size_t)s;
            }
        assert_true(g->nbufs < MAXD);
        g->seg[g->nbufs++] = seg < (size_t)n ? seg : 0;
        if (seg == 0 || seg >= (size_t)n)
            seg = (size_t)n;
        for (size_t off = 0; off < (size_t)n; off += seg) {
            assert_true(g->ndg < MAXD);
            g->dlen[g->ndg] = (size_t)n - off < seg ? (size_t)n - off : seg;
            g->first[g->ndg++] = buf[off];
        }
    }
}

/* Message i of msgs: len bytes of buf, to p->to; each of its datagrams
 * (cut by seg, or one) starts with the next number of *tag. */
static void make_msg(struct mmsghdr *m, struct iovec *iov, uint8_t *buf, size_t len, size_t seg,
                     struct pair *p, uint8_t *tag)
{
    size_t step = seg != 0 ? seg : len;

    memset(buf, 0xab, len);
    for (size_t off = 0; off < len; off += step)
        buf[off] = (*tag)++;
    iov->iov_base = buf;
    iov->iov_len = len;
    memset(&m->msg_hdr, 0, sizeof(m->msg_hdr));
    m->msg_hdr.msg_name = &p->to;
    m->msg_hdr.msg_namelen = sizeof(p->to);
    m->msg_hdr.msg_iov = iov;
    m->msg_hdr.msg_iovlen = 1;
}

static void check_order(const struct got *g, unsigned want)
{
    assert_int_equal(g->ndg, want);
    for (unsigned i = 0; i < want; i++)
        assert_int_equal(g->first[i], i);
}

static uint8_t bufs[4][65536];

/* A run of 40 x 1,000 bytes and a shorter last one, read in one piece,
 * leaves as one GSO send: a GRO receiver gets it as one buffer. */
static void test_run_one_gso_send(void **state)
{
    struct udp_lsn *u = calloc(1, sizeof(*u));
    struct mmsghdr m[1];
    struct iovec iov[1];
    uint16_t segs[1] = {1000};
    struct pair p;
    struct got g;
    uint8_t tag = 0;
    int err = 0;

    (void)state;
    open_pair(&p, 1);
    make_msg(&m[0], &iov[0], bufs[0], 40 * 1000 + 300, 1000, &p, &tag);
    assert_int_equal(udp_send(u, p.tx, m, 1, segs, &err), 0);
    drain(&p, &g);
    assert_int_equal(g.nbufs, 1);
    assert_int_equal(g.seg[0], 1000);
    check_order(&g, 41);
    assert_int_equal(g.dlen[40], 300);
    assert_int_equal(u->no_gso, 0);
    close_pair(&p);
    free(u);
}

/* Segments over 1,452 bytes (they may not fit a path's MTU) are cut: the
 * GRO receiver gets single datagrams, in order, the singles around the run
 * before and after it. */
static void test_big_segments_cut_in_order(void **state)
{
    struct udp_lsn *u = calloc(1, sizeof(*u));
    struct mmsghdr m[3];
    struct iovec iov[3];
    uint16_t segs[3] = {0, 2000, 0};
    struct pair p;
    struct got g;
    uint8_t tag = 0;
    int err = 0;

    (void)state;
    open_pair(&p, 1);
    make_msg(&m[0], &iov[0], bufs[0], 100, 0, &p, &tag);
    make_msg(&m[1], &iov[1], bufs[1], 5 * 2000 + 1, 2000, &p, &tag);
    make_msg(&m[2], &iov[2], bufs[2], 100, 0, &p, &tag);
    assert_int_equal(udp_send(u, p.tx, m, 3, segs, &err), 0);
    drain(&p, &g);
    check_order(&g, 8);
    assert_int_equal(g.nbufs, 8); /* none went as a GSO send */
    assert_int_equal(g.dlen[1], 2000);
    assert_int_equal(g.dlen[6], 1);
    close_pair(&p);
    free(u);
}

/* Once GSO is off for the listener, a run is cut too; and a run between
 * singles of the same size is not joined to them. */
static void test_no_gso_cuts(void **state)
{
    struct udp_lsn *u = calloc(1, sizeof(*u));
    struct mmsghdr m[3];
    struct iovec iov[3];
    uint16_t segs[3] = {0, 500, 0};
    struct pair p;
    struct got g;
    uint8_t tag = 0;
    int err = 0;

    (void)state;
    open_pair(&p, 1);
    make_msg(&m[0], &iov[0], bufs[0], 500, 0, &p, &tag);
    make_msg(&m[1], &iov[1], bufs[1], 4 * 500, 500, &p, &tag);
    make_msg(&m[2], &iov[2], bufs[2], 500, 0, &p, &tag);
    /* GSO on: the single, the run as it came, the single. */
    assert_int_equal(udp_send(u, p.tx, m, 3, segs, &err), 0);
    drain(&p, &g);
    check_order(&g, 6);
    assert_int_equal(g.nbufs, 3);
    assert_int_equal(g.seg[1], 500);
    /* GSO off: six datagrams. */
    tag = 0;
    make_msg(&m[0], &iov[0], bufs[0], 500, 0, &p, &tag);
    make_msg(&m[1], &iov[1], bufs[1], 4 * 500, 500, &p, &tag);
    make_msg(&m[2], &iov[2], bufs[2], 500, 0, &p, &tag);
    u->no_gso = 1;
    assert_int_equal(udp_send(u, p.tx, m, 3, segs, &err), 0);
    drain(&p, &g);
    check_order(&g, 6);
    assert_int_equal(g.nbufs, 6);
    close_pair(&p);
    free(u);
}

/* A receiver without UDP_GRO gets every datagram of a run on its own. */
static void test_plain_receiver(void **state)
{
    struct udp_lsn *u = calloc(1, sizeof(*u));
    struct mmsghdr m[2];
    struct iovec iov[2];
    uint16_t segs[2] = {1200, 1200};
    struct pair p;
    struct got g;
    uint8_t tag = 0;
    int err = 0;

    (void)state;
    open_pair(&p, 0);
    make_msg(&m[0], &iov[0], bufs[0], 10 * 1200, 1200, &p, &tag);
    make_msg(&m[1], &iov[1], bufs[1], 3 * 1200 + 7, 1200, &p, &tag);
    assert_int_equal(udp_send(u, p.tx, m, 2, segs, &err), 0);
    drain(&p, &g);
    assert_int_equal(g.nbufs, 14);
    check_order(&g, 14);
    assert_int_equal(g.dlen[13], 7);
    close_pair(&p);
    free(u);
}

/* A send that fails is counted by its datagrams. */
static void test_lost_counted_per_datagram(void **state)
{
    struct udp_lsn *u = calloc(1, sizeof(*u));
    struct mmsghdr m[1];
    struct iovec iov[1];
    uint16_t segs[1] = {1000};
    struct pair p;
    uint8_t tag = 0;
    int err = 0;

    (void)state;
    open_pair(&p, 0);
    make_msg(&m[0], &iov[0], bufs[0], 5 * 1000, 1000, &p, &tag);
    close(p.tx);
    p.tx = -1; /* EBADF: not a GSO refusal, the run is lost */
    assert_int_equal(udp_send(u, p.tx, m, 1, segs, &err), 5);
    assert_int_equal(err, EBADF);
    assert_int_equal(u->no_gso, 0);
    close_pair(&p);
    free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_one_gso_send),
        cmocka_unit_test(test_big_segments_cut_in_order),
        cmocka_unit_test(test_no_gso_cuts),
        cmocka_unit_test(test_plain_receiver),
        cmocka_unit_test(test_lost_counted_per_datagram),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
