/*
 * bench_tcp_echo.c - the echo backend of the TCP proxy benchmark (bench/tcp.sh).
 *
 *   bench_tcp_echo -p PORT [-P] [-t THREADS] [-u]
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
 * -u: the same behaviour driven by io_uring instead of epoll (multishot
 * accept, multishot recv into provided buffers, batched submissions: see
 * "-u" below); bench/uring.sh compares the two. Needs a build with liburing.
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
#ifdef HAVE_URING
    /* -u: buffers to write back, in order (buffer ids chained through the
     * worker's next[], -1 when empty); the one at qhead is being sent. */
    int32_t qhead, qtail;
    int32_t next_starved; /* the worker's list of connections out of buffers */
    uint8_t recv_armed;   /* the multishot recv may still post completions */
    uint8_t sending;      /* a send of qhead is in flight */
    uint8_t starved;      /* the recv stopped for want of buffers: re-armed later */
    uint8_t cancelling;   /* a cancel of the recv was submitted */
    uint8_t eof, dead;    /* the peer closed / an error: close when nothing is in flight */
#endif
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
 * header bytes are needed; -1 means the header is invalid (counted; the
 * caller closes the connection). */
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
            if (e < 0)
                conn_close(fd);
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

#ifdef HAVE_URING
/* ---- -u: the same echo driven by io_uring -----------------------------------
 * One ring per thread: a multishot accept on the listener; per connection a
 * multishot recv into a provided buffer ring (a buffer goes back to the ring
 * once its bytes are written back, so nothing is copied), one send in flight
 * (so the bytes go back in order), and the close through the ring. What the
 * completions of one wait ask for goes in with the next
 * io_uring_submit_and_wait: one system call per loop, however many
 * connections it served. */
#include "bench_uring.h"

#define U_ENTRIES 1024
#define U_NBUF 256
#define U_BUFSZ 16384
#define U_BGID 0

struct uworker {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    uint32_t off[U_NBUF], len[U_NBUF]; /* per buffer: the bytes still to write back */
    int32_t next[U_NBUF];              /* per buffer: the next one of its connection */
    int nfree;                         /* buffers the kernel may fill */
    int ngiven;                        /* given back since the last advance */
    int starved;                       /* connections out of buffers, -1: none */
    int lfd;
};

static void u_give_back(struct uworker *u, int bid)
{
    io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * U_BUFSZ, U_BUFSZ, (unsigned short)bid,
                          io_uring_buf_ring_mask(U_NBUF), u->ngiven++);
    u->nfree++;
}

static void u_arm_accept(struct uworker *u)
{
    struct io_uring_sqe *sqe = uring_sqe(&u->ring);
    io_uring_prep_multishot_accept(sqe, u->lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, URING_UD(URING_ACCEPT, u->lfd));
}

static void u_arm_recv(struct uworker *u, int fd)
{
    struct io_uring_sqe *sqe = uring_sqe(&u->ring);
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = U_BGID;
    io_uring_sqe_set_data64(sqe, URING_UD(URING_RECV, fd));
    conns[fd].recv_armed = 1;
}

static void u_send_head(struct uworker *u, int fd)
{
    struct conn *c = &conns[fd];
    int bid = c->qhead;
    struct io_uring_sqe *sqe = uring_sqe(&u->ring);
    io_uring_prep_send(sqe, fd, u->bufs + (size_t)bid * U_BUFSZ + u->off[bid], u->len[bid],
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, URING_UD(URING_SEND, fd));
    c->sending = 1;
}

/* After EOF or an error: cancels the recv if it is still armed, and closes
 * the connection once nothing is in flight on it (so no completion can name
 * the fd after it is reused). */
static void u_settle(struct uworker *u, int fd)
{
    struct conn *c = &conns[fd];
    if (!c->eof && !c->dead)
        return;
    if (c->dead && c->recv_armed && !c->cancelling) {
        struct io_uring_sqe *sqe = uring_sqe(&u->ring);
        io_uring_prep_cancel64(sqe, URING_UD(URING_RECV, fd), 0);
        io_uring_sqe_set_data64(sqe, URING_UD(URING_CANCEL, fd));
        c->cancelling = 1;
    }
    if (c->recv_armed || c->sending || c->starved)
        return;
    for (int bid = c->qhead; bid >= 0; bid = u->next[bid])
        u_give_back(u, bid);
    free(c->hdr);
    memset(c, 0, sizeof(*c));
    struct io_uring_sqe *sqe = uring_sqe(&u->ring);
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, URING_UD(URING_CLOSE, fd));
}

static void u_on_accept(struct uworker *u, int res, unsigned flags)
{
    if (!(flags & IORING_CQE_F_MORE))
        u_arm_accept(u);
    if (res < 0) {
        if (res == -EMFILE || res == -ENFILE)
            fprintf(stderr, "bench_tcp_echo: accept: %s\n", strerror(-res));
        return;
    }
    if (res >= nconns) {
        close(res);
        return;
    }
    atomic_fetch_add_explicit(&n_accepted, 1, memory_order_relaxed);
    struct conn *c = &conns[res];
    c->in_hdr = (uint8_t)want_proxy;
    c->qhead = c->qtail = -1;
    u_arm_recv(u, res);
}

static void u_on_recv(struct uworker *u, int fd, int res, unsigned flags)
{
    struct conn *c = &conns[fd];
    if (!(flags & IORING_CQE_F_MORE))
        c->recv_armed = 0;
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
        int bid = (int)(flags >> IORING_CQE_BUFFER_SHIFT);
        uint8_t *buf = u->bufs + (size_t)bid * U_BUFSZ;
        const uint8_t *data = buf;
        size_t len = (size_t)res;
        u->nfree--;
        if (!c->dead && c->in_hdr) {
            int e = eat_header(fd, &data, &len);
            if (e < 0)
                c->dead = 1;
            if (e <= 0)
                len = 0;
        }
        if (c->dead || len == 0) {
            u_give_back(u, bid);
        } else {
            u->off[bid] = (uint32_t)(data - buf);
            u->len[bid] = (uint32_t)len;
            u->next[bid] = -1;
            if (c->qtail >= 0)
                u->next[c->qtail] = bid;
            else
                c->qhead = bid;
            c->qtail = bid;
            if (!c->sending)
                u_send_head(u, fd);
        }
        if (!c->recv_armed && !c->dead)
            u_arm_recv(u, fd); /* the multishot ended early (CQ overflow): go on */
    } else if (res == 0) {
        c->eof = 1;
    } else if (res == -ENOBUFS && !c->recv_armed && !c->dead) {
        c->starved = 1; /* re-armed when buffers come back (u_rearm_starved) */
        c->next_starved = u->starved;
        u->starved = fd;
    } else if (res < 0) {
        c->dead = 1;
    }
    u_settle(u, fd);
}

static void u_on_send(struct uworker *u, int fd, int res)
{
    struct conn *c = &conns[fd];
    int bid = c->qhead;
    c->sending = 0;
    if (res <= 0) {
        c->dead = 1;
    } else {
        atomic_fetch_add_explicit(&n_bytes, (unsigned long)res, memory_order_relaxed);
        u->off[bid] += (uint32_t)res;
        u->len[bid] -= (uint32_t)res;
        if (u->len[bid] == 0) {
            c->qhead = u->next[bid];
            if (c->qhead < 0)
                c->qtail = -1;
            u_give_back(u, bid);
        }
        if (c->qhead >= 0 && !c->dead)
            u_send_head(u, fd);
    }
    u_settle(u, fd);
}

static void u_rearm_starved(struct uworker *u)
{
    while (u->starved >= 0 && u->nfree > 0) {
        int fd = u->starved;
        struct conn *c = &conns[fd];
        u->starved = c->next_starved;
        c->starved = 0;
        if (c->eof || c->dead)
            u_settle(u, fd);
        else
            u_arm_recv(u, fd);
    }
}

static void *u_worker_main(void *arg)
{
    struct worker *w = arg;
    struct uworker *u = calloc(1, sizeof(*u));
    if (!u)
        die("calloc");
    int rc = uring_open(&u->ring, U_ENTRIES);
    if (rc < 0) {
        errno = -rc;
        die("io_uring_queue_init");
    }
    u->bufs = aligned_alloc(4096, (size_t)U_NBUF * U_BUFSZ);
    if (!u->bufs)
        die("aligned_alloc");
    u->br = uring_bufs(&u->ring, u->bufs, U_NBUF, U_BUFSZ, U_BGID);
    if (!u->br)
        die("io_uring_register_buf_ring");
    u->nfree = U_NBUF;
    u->starved = -1;
    u->lfd = w->lfd;
    u_arm_accept(u);
    for (;;) {
        rc = io_uring_submit_and_wait(&u->ring, 1);
        if (rc < 0 && rc != -EINTR) {
            errno = -rc;
            die("io_uring_submit_and_wait");
        }
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&u->ring, head, cqe)
        {
            int fd = URING_ID(cqe->user_data);
            n++;
            switch (URING_OP(cqe->user_data)) {
            case URING_ACCEPT:
                u_on_accept(u, cqe->res, cqe->flags);
                break;
            case URING_RECV:
                u_on_recv(u, fd, cqe->res, cqe->flags);
                break;
            case URING_SEND:
                u_on_send(u, fd, cqe->res);
                break;
            default: /* URING_CLOSE, URING_CANCEL: nothing left to do */
                break;
            }
        }
        io_uring_cq_advance(&u->ring, n);
        if (u->ngiven > 0) {
            io_uring_buf_ring_advance(u->br, u->ngiven);
            u->ngiven = 0;
        }
        u_rearm_starved(u);
    }
    return NULL;
}
#endif

static void usage(void)
{
    fprintf(stderr, "usage: bench_tcp_echo -p PORT [-P] [-t THREADS] [-u]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int threads = 1, uring = 0;
    int opt;
    while ((opt = getopt(argc, argv, "p:Pt:u")) != -1) {
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
        case 'u':
            uring = 1;
            break;
        default:
            usage();
        }
    }
    if (port <= 0 || port > 65535 || threads < 1 || threads > MAX_THREADS)
        usage();
    void *(*loop)(void *) = worker_main;
    if (uring) {
#ifdef HAVE_URING
        loop = u_worker_main;
#else
        fprintf(stderr, "bench_tcp_echo: -u: built without liburing (liburing-dev)\n");
        return 2;
#endif
    }

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
        if (!uring) {
            ws[i].ep = epoll_create1(EPOLL_CLOEXEC);
            if (ws[i].ep < 0)
                die("epoll_create1");
            struct epoll_event ev = {.events = EPOLLIN, .data.u64 = LISTEN_TAG};
            if (epoll_ctl(ws[i].ep, EPOLL_CTL_ADD, ws[i].lfd, &ev) < 0)
                die("epoll_ctl");
        }
        if (pthread_create(&ws[i].tid, NULL, loop, &ws[i]) != 0)
            die("pthread_create");
    }
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "bench_tcp_echo: port %d: %lu connections, %lu bad headers, %lu bytes echoed\n",
            port, atomic_load(&n_accepted), atomic_load(&n_bad_hdr), atomic_load(&n_bytes));
    return 0;
}
