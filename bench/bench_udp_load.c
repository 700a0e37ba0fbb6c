/*
 * bench_udp_load.c - the UDP benchmark's load generator: datagrams per
 * second through a target, with a fixed window of datagrams in flight.
 *
 *   bench_udp_load -p PORT [-s SIZE] [-w WINDOW] [-c CLIENTS] [-t SECS] [-2]
 *   bench_udp_load -p PORT [-2] --probe
 *
 * CLIENTS sockets (4) share the WINDOW (32): each sends its share, then one
 * datagram per answer. A socket that gets no answer for 200 ms counts its
 * window as lost and sends it again, so a drop stalls the measure briefly
 * instead of forever. After 0.5 s of warm-up, answers are counted for SECS
 * (3) seconds; prints "RESULT dps=N lost=N all=N" (all: every answer,
 * warm-up included, what bench/cost.sh divides a whole run's cost by).
 * --probe: one datagram, exit 0 when it comes back within a second. -2 puts
 * a PROXY v2 header (UDP4) in front of every datagram, as a proxy in front
 * of a route with accept-proxy=required would: source 198.51.100.7 and the client socket's
 * own port (one client address per socket), destination 127.0.0.1:PORT.
 * Answers are counted, not compared, so they may come back without it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proxyproto.h"

#define MAXC 64
#define STALL_MS 200
#define BATCH 64

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int client(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0), big = 4 << 20;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    if (fd == -1 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
        perror("bench_udp_load: connect");
        exit(2);
    }
    return fd;
}

/* Writes the v2 header for client socket fd (source 198.51.100.7 and fd's
 * own port, destination 127.0.0.1:port) to msg; returns its length. */
static size_t header(int fd, int port, char *msg, size_t cap)
{
    struct sockaddr_in src, dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t len = sizeof(src);
    ssize_t n;

    if (getsockname(fd, (struct sockaddr *)&src, &len) == -1) {
        perror("bench_udp_load: getsockname");
        exit(2);
    }
    src.sin_addr.s_addr = htonl(0xC6336407u); /* 198.51.100.7 */
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    n = pp_build_v2((uint8_t *)msg, cap, PP2_CMD_PROXY, SOCK_DGRAM, (struct sockaddr *)&src,
                    (struct sockaddr *)&dst);
    if (n < 0) {
        fprintf(stderr, "bench_udp_load: pp_build_v2: %s\n", pp_strerror((int)n));
        exit(2);
    }
    return (size_t)n;
}

static int probe(int port, int v2)
{
    int fd = client(port);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char msg[128], buf[128];
    size_t n = v2 ? header(fd, port, msg, sizeof(msg)) : 0;

    memcpy(msg + n, "probe", 5);
    if (send(fd, msg, n + 5, 0) != (ssize_t)(n + 5) || poll(&p, 1, 1000) != 1)
        return 1;
    return recv(fd, buf, sizeof(buf), 0) > 0 ? 0 : 1;
}

/* Sends n copies of msg in sendmmsg batches: one system call per answer
 * batch keeps the generator from being the bottleneck. */
static void burst(int fd, const char *msg, size_t size, int n)
{
    struct iovec iov = {.iov_base = (void *)(uintptr_t)msg, .iov_len = size};
    struct mmsghdr m[BATCH];

    for (int i = 0; i < BATCH; i++)
        m[i].msg_hdr = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1};
    while (n > 0) {
        int k = n < BATCH ? n : BATCH, r = sendmmsg(fd, m, (unsigned)k, 0);
        n -= r > 0 ? r : k;
    }
}

/* Reads every queued answer in recvmmsg batches; returns how many. */
static int drain(int fd)
{
    static char bufs[BATCH][2048];
    struct iovec iov[BATCH];
    struct mmsghdr m[BATCH];
    int total = 0, r;

    do {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = sizeof(bufs[i])};
            m[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
        }
        r = recvmmsg(fd, m, BATCH, MSG_DONTWAIT, NULL);
        total += r > 0 ? r : 0;
    } while (r == BATCH);
    return total;
}

int main(int argc, char **argv)
{
    static char msgs[MAXC][65536 + 64];
    int port = 0, size = 64, window = 32, nc = 4, opt, v2 = 0, do_probe = 0;
    double secs = 3, start, t0 = 0, last[MAXC];
    unsigned long got = 0, lost = 0, all = 0;
    struct pollfd p[MAXC];
    size_t len[MAXC];

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--probe") == 0) {
            do_probe = 1;
            memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof(*argv));
            argc--;
            break;
        }
    while ((opt = getopt(argc, argv, "p:s:w:c:t:2")) != -1) {
        switch (opt) {
        case '2':
            v2 = 1;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 's':
            size = atoi(optarg);
            break;
        case 'w':
            window = atoi(optarg);
            break;
        case 'c':
            nc = atoi(optarg);
            break;
        case 't':
            secs = atof(optarg);
            break;
        default:
            return 2;
        }
    }
    if (do_probe)
        return port > 0 ? probe(port, v2) : 2;
    if (nc < 1 || nc > MAXC || window < nc || size < 1 || size > 65507)
        return 2;
    start = now_s();
    for (int c = 0; c < nc; c++) {
        p[c] = (struct pollfd){.fd = client(port), .events = POLLIN};
        len[c] = v2 ? header(p[c].fd, port, msgs[c], sizeof(msgs[c])) : 0;
        memset(msgs[c] + len[c], 'x', (size_t)size);
        len[c] += (size_t)size;
        burst(p[c].fd, msgs[c], len[c], window / nc + (c < window % nc));
        last[c] = start;
    }
    for (;;) {
        double t = now_s();
        if (t0 == 0 && t - start >= 0.5) {
            t0 = t;
            got = lost = 0;
        }
        if (t0 != 0 && t - t0 >= secs)
            break;
        poll(p, (nfds_t)nc, 50);
        t = now_s();
        for (int c = 0; c < nc; c++) {
            int n = drain(p[c].fd);
            if (n > 0) {
                got += (unsigned long)n;
                all += (unsigned long)n;
                last[c] = t;
                burst(p[c].fd, msgs[c], len[c], n);
            } else if ((t - last[c]) * 1000 > STALL_MS) {
                int share = window / nc + (c < window % nc);
                lost += (unsigned long)share;
                last[c] = t;
                burst(p[c].fd, msgs[c], len[c], share);
            }
        }
    }
    printf("RESULT dps=%.0f lost=%lu all=%lu\n", (double)got / (now_s() - t0), lost, all);
    return 0;
}
