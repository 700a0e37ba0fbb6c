/*
 * bench_udp_echo.c - the UDP benchmark's backend: answers each datagram
 * with itself, in batches (recvmmsg/sendmmsg), on one thread.
 *
 *   bench_udp_echo -p PORT [-P]
 *
 * -P: every datagram starts with a PROXY v2 header (a send-proxy=v2 route);
 * it is parsed (so its cost is the same as a real receiver's) and the
 * answer is the payload after it. A datagram without a valid header is
 * dropped and counted (printed at exit, SIGTERM).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

int main(int argc, char **argv)
{
    static struct mmsghdr m[BATCH];
    static struct iovec iov[BATCH];
    static struct sockaddr_storage names[BATCH];
    int port = 0, pp = 0, opt, fd;
    unsigned long bad = 0;
    struct sigaction sa = {.sa_handler = on_term};

    while ((opt = getopt(argc, argv, "p:P")) != -1) {
        if (opt == 'p')
            port = atoi(optarg);
        else if (opt == 'P')
            pp = 1;
        else
            return 2;
    }
    fd = open_port(port);
    /* No SA_RESTART: a signal must interrupt the blocking recvmmsg. */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    while (!stop) {
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
        for (int i = 0; i < n;) {
            int r = sendmmsg(fd, m + i, (unsigned)(n - i), 0);
            i += r > 0 ? r : 1;
        }
    }
    if (bad > 0)
        fprintf(stderr, "bench_udp_echo: %lu datagrams without a valid header\n", bad);
    return 0;
}
