/*
 * bench_tcp_echo.c - the echo backend of the TCP proxy benchmark (bench/tcp.sh).
 *
 *   bench_tcp_echo -p PORT [-P] [-t THREADS]
 *
 * Listens on 127.0.0.1:PORT and writes every byte it reads back to the same
 * connection; closes when the peer does. One epoll loop per thread, each with
 * its own SO_REUSEPORT listener; the benchmark runs one thread for every
 * target, so each target is measured against the same backend.
 *
 * -P: every connection must start with a PROXY header (v1 or v2), as sent by
 * a proxy with send-proxy; it is parsed with pp_parse (partial headers are
 * buffered until complete), skipped, and only the bytes after it are echoed.
 * A connection whose header is invalid is closed.
 *
 * On SIGTERM or SIGINT it prints one line of counters to stderr and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxyproto.h"

#define MAX_THREADS 16
#define IO_BUF 65536
#define HDR_CAP (PP_V2_DEFAULT_CAP + 16)
#define MAX_EVENTS 256
#define LISTEN_TAG UINT64_MAX

/* Per connection, indexed by fd (the array is sized to RLIMIT_NOFILE). */
struct conn {
    uint8_t *hdr;   /* -P: bytes of a header that is not complete yet */
    uint8_t *pend;  /* bytes read but not yet written back (peer slow to read) */
    uint32_t hlen;  /* bytes in hdr */
    uint32_t plen;  /* bytes in pend */
    uint32_t poff;  /* bytes of pend already written */
    uint8_t in_hdr; /* -P: still waiting for the header */
};

struct worker {
    pthread_t tid;
    int lfd;
    int ep;
};

static struct conn *conns;
static int nconns;
static int port;
static int want_proxy;
static atomic_ulong n_accepted, n_bad_hdr, n_bytes;

static void die(const char *what)
{
    fprintf(stderr, "bench_tcp_echo: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int open_listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        die("setsockopt");
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
        die("bind");
    if (listen(fd, 4096) < 0)
        die("listen");
    return fd;
}

static void conn_close(int fd)
{
    struct conn *c = &conns[fd];
    free(c->hdr);
    free(c->pend);
    memset(c, 0, sizeof(*c));
    close(fd); /* also removes it from the epoll set */
}

/* Writes data back; keeps what the socket does not take and waits for EPOLLOUT.
 * Returns -1 when the connection was closed. */
static int echo_out(int ep, int fd, const uint8_t *data, size_t len)
{
    struct conn *c = &conns[fd];
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_close(fd);
        return -1;
    }
    atomic_fetch_add_explicit(&n_bytes, off, memory_order_relaxed);
    if (off == len)
        return 0;
    c->pend = malloc(len - off);
    if (!c->pend) {
        conn_close(fd);
        return -1;
    }
    memcpy(c->pend, data + off, len - off);
    c->plen = (uint32_t)(len - off);
    c->poff = 0;
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)fd};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0) {
        conn_close(fd);
        return -1;
    }
    return 0;
}

/* -P: consumes the header at the start of the connection. On return 1, data
 * and len are moved to the application bytes after the header; 0 means more
 * header bytes are needed; -1 means the connection was closed. */
static int eat_header(int fd, const uint8_t **data, size_t *len)
{
    struct conn *c = &conns[fd];
    struct pp_header h;
    const uint8_t *buf = *data;
    size_t n = *len;

    if (!c->hdr) {
        /* Fast path: the whole header came in the first read. */
        ssize_t r = pp_parse(buf, n, &h, NULL);
        if (r > 0) {
            c->in_hdr = 0;
            *data = buf + r;
            *len = n - (size_t)r;
            return 1;
        }
        if (r < 0)
            goto bad;
        c->hdr = malloc(HDR_CAP);
        if (!c->hdr)
            goto bad;
    }
    size_t take = n;
    if (take > HDR_CAP - c->hlen)
        take = HDR_CAP - c->hlen;
    memcpy(c->hdr + c->hlen, buf, take);
    c->hlen += (uint32_t)take;
    ssize_t r = pp_parse(c->hdr, c->hlen, &h, NULL);
    if (r == 0 && c->hlen < HDR_CAP)
        return 0;
    if (r <= 0)
        goto bad;
    /* Bytes after the header: those of this read past what the header used. */
    size_t used_here = take - (c->hlen - (size_t)r);
    *data = buf + used_here;
    *len = n - used_here;
    free(c->hdr);
    c->hdr = NULL;
    c->hlen = 0;
    c->in_hdr = 0;
    return 1;
bad:
    atomic_fetch_add_explicit(&n_bad_hdr, 1, memory_order_relaxed);
    conn_close(fd);
    return -1;
}

static void on_readable(int ep, int fd, uint8_t *buf)
{
    for (;;) {
        ssize_t r = read(fd, buf, IO_BUF);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            conn_close(fd);
            return;
        }
        const uint8_t *data = buf;
        size_t len = (size_t)r;
        if (conns[fd].in_hdr) {
            int e = eat_header(fd, &data, &len);
            if (e <= 0)
                return;
        }
        if (len > 0 && echo_out(ep, fd, data, len) < 0)
            return;
        if (conns[fd].pend || (size_t)r < IO_BUF)
            return;
    }
}

static void on_writable(int ep, int fd)
{
    struct conn *c = &conns[fd];
    while (c->poff < c->plen) {
        ssize_t w = write(fd, c->pend + c->poff, c->plen - c->poff);
        if (w > 0) {
            c->poff += (uint32_t)w;
            atomic_fetch_add_explicit(&n_bytes, (unsigned long)w, memory_order_relaxed);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(fd);
        return;
    }
    free(c->pend);
    c->pend = NULL;
    c->plen = c->poff = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)fd};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0)
        conn_close(fd);
}

static void on_accept(struct worker *w)
{
    for (;;) {
        int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                fprintf(stderr, "bench_tcp_echo: accept: %s\n", strerror(errno));
            return;
        }
        if (fd >= nconns) {
            close(fd);
            continue;
        }
        atomic_fetch_add_explicit(&n_accepted, 1, memory_order_relaxed);
        conns[fd].in_hdr = (uint8_t)want_proxy;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)fd};
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            conn_close(fd);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint8_t *buf = malloc(IO_BUF);
    if (!buf)
        die("malloc");
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == LISTEN_TAG) {
                on_accept(w);
                continue;
            }
            int fd = (int)evs[i].data.u64;
            if (evs[i].events & EPOLLOUT)
                on_writable(w->ep, fd);
            else
                on_readable(w->ep, fd, buf);
        }
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_tcp_echo -p PORT [-P] [-t THREADS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int threads = 1;
    int opt;
    while ((opt = getopt(argc, argv, "p:Pt:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'P':
            want_proxy = 1;
            break;
        case 't':
            threads = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    if (port <= 0 || port > 65535 || threads < 1 || threads > MAX_THREADS)
        usage();

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit");
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    nconns = rl.rlim_cur > 1000000 ? 1000000 : (int)rl.rlim_cur;
    conns = calloc((size_t)nconns, sizeof(*conns));
    if (!conns)
        die("calloc");

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    static struct worker ws[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        ws[i].lfd = open_listener();
        ws[i].ep = epoll_create1(EPOLL_CLOEXEC);
        if (ws[i].ep < 0)
            die("epoll_create1");
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = LISTEN_TAG};
        if (epoll_ctl(ws[i].ep, EPOLL_CTL_ADD, ws[i].lfd, &ev) < 0)
            die("epoll_ctl");
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0)
            die("pthread_create");
    }
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "bench_tcp_echo: port %d: %lu connections, %lu bad headers, %lu bytes echoed\n",
            port, atomic_load(&n_accepted), atomic_load(&n_bad_hdr), atomic_load(&n_bytes));
    return 0;
}
