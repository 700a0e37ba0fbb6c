/*
 * bench_udp_echo.c - the UDP benchmark's backend: answers each datagram
 * with itself, in batches (recvmmsg/sendmmsg), on one thread.
 *
 *   bench_udp_echo -p PORT [-P] [-u | -g]
 *
 * -P: every datagram starts with a PROXY v2 header (a send-proxy=v2 route);
 * it is parsed (so its cost is the same as a real receiver's) and the
 * answer is the payload after it. A datagram without a valid header is
 * dropped and counted (printed at exit, SIGTERM).
 *
 * -g: answers like a QUIC server: each client's answers of a batch of
 * one size go as one GSO send (UDP_SEGMENT), which on loopback reaches a
 * receiver with UDP_GRO as one buffer (bench/ab.sh: the udp-gso rows).
 *
 * -u: the same answers through io_uring instead (multishot recvmsg into
 * provided buffers, batched sendmsg: see uring_main); bench/uring.sh
 * compares the two. Needs a build with liburing.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <proxyproto.h>

#define BATCH 64
#define BUF 65536

static volatile sig_atomic_t stop;
static uint8_t bufs[BATCH][BUF];

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static int open_port(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_DGRAM, 0), big = 8 << 20;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
        perror("bench_udp_echo: bind");
        exit(2);
    }
    return fd;
}

/* Strips each datagram's header; returns how many are kept, compacted. */
static int strip(struct mmsghdr *m, struct iovec *iov, int n, unsigned long *bad)
{
    struct pp_parse_opts opts = {.flags = PP_PARSE_NO_V1};
    struct pp_header h;
    int k = 0;

    for (int i = 0; i < n; i++) {
        ssize_t len = pp_parse(iov[i].iov_base, m[i].msg_len, &h, &opts);
        if (len <= 0) {
            (*bad)++;
            continue;
        }
        iov[k].iov_base = (uint8_t *)iov[i].iov_base + len;
        iov[k].iov_len = m[i].msg_len - (size_t)len;
        m[k].msg_hdr = m[i].msg_hdr;
        m[k].msg_hdr.msg_iov = &iov[k];
        k++;
    }
    return k;
}

/* -g: sends the n answers of m/iov, each client's answers of one size in
 * one GSO send (at most 64 segments and 65,000 bytes), in one sendmmsg. */
static void gso_echo(int fd, struct mmsghdr *m, struct iovec *iov, int n)
{
    static struct mmsghdr out[BATCH];
    static struct iovec oiov[BATCH];
    static uint8_t ctl[BATCH][CMSG_SPACE(sizeof(uint16_t))];
    char used[BATCH] = {0};
    int no = 0, k = 0;

    for (int i = 0; i < n; i++) {
        const struct msghdr *a = &m[i].msg_hdr;
        size_t seg = iov[i].iov_len, total = 0;
        int first = k;

        if (used[i])
            continue;
        for (int j = i; j < n && k - first < 64; j++) {
            const struct msghdr *b = &m[j].msg_hdr;

            if (used[j] || iov[j].iov_len != seg || total + seg > 65000 ||
                b->msg_namelen != a->msg_namelen || memcmp(b->msg_name, a->msg_name, a->msg_namelen))
                continue;
            used[j] = 1;
            oiov[k++] = iov[j];
            total += seg;
        }
        memset(&out[no].msg_hdr, 0, sizeof(out[no].msg_hdr));
        out[no].msg_hdr.msg_name = a->msg_name;
        out[no].msg_hdr.msg_namelen = a->msg_namelen;
        out[no].msg_hdr.msg_iov = &oiov[first];
        out[no].msg_hdr.msg_iovlen = (size_t)(k - first);
        if (k - first > 1) {
            struct cmsghdr *cm = (struct cmsghdr *)ctl[no];
            uint16_t g = (uint16_t)seg;

            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(g));
            memcpy(CMSG_DATA(cm), &g, sizeof(g));
            out[no].msg_hdr.msg_control = ctl[no];
            out[no].msg_hdr.msg_controllen = sizeof(ctl[no]);
        }
        no++;
    }
    for (int i = 0; i < no;) {
        int r = sendmmsg(fd, out + i, (unsigned)(no - i), 0);
        i += r > 0 ? r : 1;
    }
}

#ifdef HAVE_URING
/* -u: the same answers through io_uring. One multishot recvmsg fills buffers
 * of a provided buffer ring (each: struct io_uring_recvmsg_out, the sender's
 * address, the payload); each datagram is answered with a sendmsg pointing
 * into its buffer, which goes back to the ring when the send completes. All
 * the sends of one wait go in with the next io_uring_submit_and_wait. */
#include "bench_uring.h"

#define U_ENTRIES 512
#define U_NBUF 256
#define U_BUFSZ (BUF + 256) /* the payload as in the recvmmsg loop, after the name */
#define U_BGID 0

static int uring_main(int fd, int pp, unsigned long *bad)
{
    static struct msghdr smsg[U_NBUF];
    static struct iovec siov[U_NBUF];
    struct msghdr rmsg = {.msg_namelen = sizeof(struct sockaddr_storage)};
    struct io_uring ring;
    int rc = uring_open(&ring, U_ENTRIES);
    if (rc < 0) {
        fprintf(stderr, "bench_udp_echo: io_uring_queue_init: %s\n", strerror(-rc));
        return 1;
    }
    uint8_t *ubufs = aligned_alloc(4096, (size_t)U_NBUF * U_BUFSZ);
    struct io_uring_buf_ring *br = ubufs ? uring_bufs(&ring, ubufs, U_NBUF, U_BUFSZ, U_BGID) : NULL;
    if (!br) {
        perror("bench_udp_echo: io_uring_register_buf_ring");
        return 1;
    }
    int armed = 0, given = 0, nfree = U_NBUF;
    while (!stop) {
        if (!armed && nfree > 0) {
            struct io_uring_sqe *sqe = uring_sqe(&ring);
            io_uring_prep_recvmsg_multishot(sqe, fd, &rmsg, 0);
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = U_BGID;
            io_uring_sqe_set_data64(sqe, URING_UD(URING_RECV, 0));
            armed = 1;
        }
        rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR) {
            fprintf(stderr, "bench_udp_echo: io_uring_submit_and_wait: %s\n", strerror(-rc));
            return 1;
        }
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
            n++;
            if (URING_OP(cqe->user_data) == URING_SEND) {
                bid = URING_ID(cqe->user_data); /* sent (or failed, as sendmmsg may): give back */
            } else {
                if (!(cqe->flags & IORING_CQE_F_MORE))
                    armed = 0; /* ended (ENOBUFS: all buffers out): re-armed above */
                if (!(cqe->flags & IORING_CQE_F_BUFFER))
                    continue;
                nfree--;
                uint8_t *buf = ubufs + (size_t)bid * U_BUFSZ;
                struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(buf, cqe->res, &rmsg);
                if (o) {
                    uint8_t *data = io_uring_recvmsg_payload(o, &rmsg);
                    size_t len = io_uring_recvmsg_payload_length(o, cqe->res, &rmsg);
                    ssize_t hl = 0;
                    if (pp) {
                        struct pp_parse_opts opts = {.flags = PP_PARSE_NO_V1};
                        struct pp_header h;
                        hl = pp_parse(data, len, &h, &opts);
                    }
                    if (!pp || hl > 0) {
                        siov[bid] = (struct iovec){.iov_base = data + hl, .iov_len = len - (size_t)hl};
                        smsg[bid] = (struct msghdr){
                            .msg_name = io_uring_recvmsg_name(o),
                            .msg_namelen = o->namelen < rmsg.msg_namelen ? o->namelen : rmsg.msg_namelen,
                            .msg_iov = &siov[bid],
                            .msg_iovlen = 1};
                        struct io_uring_sqe *sqe = uring_sqe(&ring);
                        io_uring_prep_sendmsg(sqe, fd, &smsg[bid], 0);
                        io_uring_sqe_set_data64(sqe, URING_UD(URING_SEND, bid));
                        continue; /* its buffer goes back when the send completes */
                    }
                    (*bad)++;
                }
            }
            io_uring_buf_ring_add(br, ubufs + (size_t)bid * U_BUFSZ, U_BUFSZ, (unsigned short)bid,
                                  io_uring_buf_ring_mask(U_NBUF), given++);
            nfree++;
        }
        io_uring_cq_advance(&ring, n);
        io_uring_buf_ring_advance(br, given);
        given = 0;
    }
    return 0;
}
#endif

int main(int argc, char **argv)
{
    static struct mmsghdr m[BATCH];
    static struct iovec iov[BATCH];
    static struct sockaddr_storage names[BATCH];
    int port = 0, pp = 0, uring = 0, gso = 0, opt, fd;
    unsigned long bad = 0;
    struct sigaction sa = {.sa_handler = on_term};

    while ((opt = getopt(argc, argv, "p:Pug")) != -1) {
        if (opt == 'p')
            port = atoi(optarg);
        else if (opt == 'P')
            pp = 1;
        else if (opt == 'u')
            uring = 1;
        else if (opt == 'g')
            gso = 1;
        else
            return 2;
    }
#ifndef HAVE_URING
    if (uring) {
        fprintf(stderr, "bench_udp_echo: -u: built without liburing (liburing-dev)\n");
        return 2;
    }
#endif
    fd = open_port(port);
    /* No SA_RESTART: a signal must interrupt the blocking recvmmsg. */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
#ifdef HAVE_URING
    if (uring && uring_main(fd, pp, &bad) != 0)
        return 1;
#endif
    while (!stop && !uring) {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = BUF};
            memset(&m[i].msg_hdr, 0, sizeof(m[i].msg_hdr));
            m[i].msg_hdr.msg_name = &names[i];
            m[i].msg_hdr.msg_namelen = sizeof(names[i]);
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, m, BATCH, MSG_WAITFORONE, NULL);
        if (n <= 0)
            continue;
        if (pp)
            n = strip(m, iov, n, &bad);
        else
            for (int i = 0; i < n; i++)
                iov[i].iov_len = m[i].msg_len;
        if (gso) {
            gso_echo(fd, m, iov, n);
            continue;
        }
        for (int i = 0; i < n;) {
            int r = sendmmsg(fd, m + i, (unsigned)(n - i), 0);
            i += r > 0 ? r : 1;
        }
    }
    if (bad > 0)
        fprintf(stderr, "bench_udp_echo: %lu datagrams without a valid header\n", bad);
    return 0;
}
