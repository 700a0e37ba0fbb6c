/*
 * bench_tcp_relay.c - the floor of a TCP proxy: the least a relay does per
 * connection, for the cost model (docs/design.md). No config, no header, no
 * logs, no timers: accept, connect the upstream, copy both ways through a
 * buffer, pass a half-close on with shutdown, close at the second EOF.
 *
 *   bench_tcp_relay -p PORT -u UPSTREAM_PORT [-j THREADS] [-e | -r [-l] [-s] | -H] [-n]
 *
 * Each of THREADS (2) threads has its own SO_REUSEPORT listener on
 * 127.0.0.1:PORT and its own epoll, as ppfwd's workers do. Default:
 * level-triggered, the same calls as ppfwd (ADD the upstream for WRITE while
 * it connects, ADD the client and MOD the upstream to READ once connected,
 * MOD a source to nothing at its EOF). -e: edge-triggered, each socket
 * registered once for READ and WRITE (two epoll_ctl fewer per connection):
 * a read that fills the buffer is followed by another, anything else waits
 * for the next edge. -n: no TCP_NODELAY on the upstream (ppfwd sets it).
 * A write that does not take everything keeps the rest and waits for
 * WRITE; the source is not read meanwhile. Stops on SIGTERM.
 *
 * -r: io_uring for the accept, connect and close, readiness for the data
 * (issue 14's candidate; needs a build with liburing). Each thread has its
 * own ring instead of an epoll: one multishot accept on its listener; per
 * client, socket() and setsockopt(TCP_NODELAY) as plain calls, the connect
 * through the ring; once connected, a multishot poll (POLLIN | POLLRDHUP)
 * on each socket, and on its completion the same read()/send() through the
 * buffer as the other modes (a short read is the last unless the poll said
 * the FIN is queued; a short write arms a one-shot POLLOUT poll on the
 * destination and the source is not read meanwhile). The first EOF is
 * passed on with a plain shutdown() call: the ring's IORING_OP_SHUTDOWN
 * always runs in an io-wq worker thread (the kernel forces it async), a
 * thread wakeup per connection; -s does it through the ring anyway, to
 * measure that. At the second EOF both polls are cancelled and both fds
 * closed through the ring. One io_uring_submit_and_wait per loop (100 ms
 * timeout, to notice SIGTERM), then every completion is handled.
 *
 * -r -l: the same, but the data readiness level-triggered, as a loop
 * backend keeping epoll's semantics over the ring would have it: the read
 * poll is one-shot (POLL_ADD without IORING_POLL_ADD_MULTI) and re-armed
 * after each completion while the side is to be read (what it sent is out
 * and it has not ended), the POLLOUT poll as in -r. A one-shot poll armed
 * on a socket that is already readable completes at once, so data left
 * unread (or a queued FIN) is reported again: a short read returns to the
 * loop as in the epoll modes, with no rdhup case.
 *
 * -H: hybrid, epoll for the data (the level-triggered mode's epoll_ctl for
 * the two sockets' interest, both ADDed once connected), the ring for the
 * rest: the multishot accept, the connect and both closes as in -r. The
 * thread sleeps in io_uring_submit_and_wait; the epoll fd is watched by a
 * ONE-SHOT POLLIN poll in the ring, re-armed each time it completes, and
 * its completion is followed by epoll_wait(timeout 0). A multishot poll
 * does not do: it completes on a wakeup of the epoll fd, that is when a
 * socket's readiness changes, and an item epoll_wait left ready (data left
 * unread: the level-triggered case) makes none, so the loop would sleep
 * with events ready; a one-shot poll armed while epoll has a ready item
 * completes at once. No EPOLL_CTL_DEL: the close through the ring drops
 * the file's last reference, which takes it out of the epoll set before
 * io_uring_enter returns; that holds only while no request in the ring
 * holds the socket (a pending poll or recv on it would keep the file, and
 * its epoll registration, alive after the fd is gone), which is why -H puts
 * nothing on the sockets in the ring after their connect.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef HAVE_URING
#include "bench_uring.h"
#endif

#define BUF 16384
#define MAXEV 256

struct side {
    int fd;
    int eof;    /* its EOF was read (and passed on) */
    int rdhup;  /* -r: its poll said the FIN is queued: read on to the 0 */
    size_t len; /* bytes read from it, not yet written to the other */
    size_t off;
    char buf[BUF];
};

struct pair {
    struct side s[2]; /* 0: client, 1: upstream */
    int connected;
    /* Its fds are closed (-r, -H: being closed through the ring); freed
     * after the batch of events (-r, -H: once no request in the ring names
     * it). */
    int closed;
    struct pair *next_dead;
    unsigned mask[2]; /* level-triggered, -H: what each fd is registered for */
    /* -r, -H: requests in the ring whose completions name the pair; -r:
     * which polls are armed on each side. */
    int pending;
    unsigned char polled[2]; /* the POLLIN poll (multishot; -l: one-shot) */
    unsigned char out[2];    /* a one-shot POLLOUT poll */
};

/* Pairs are kept for reuse in a free list per thread rather than given back
 * to malloc: freeing 32 KiB blocks made glibc trim and grow its heap, about
 * 4 page faults per connection (minflt in /proc/PID/stat: 77,935 for 20,593
 * connections), which cost the relay twice ppfwd's CPU per connection on
 * the benchmark VM. ppfwd keeps its buffers in a pool the same way. Only
 * the bookkeeping is reset on reuse, not the buffers. */
static __thread struct pair *spare;

static struct pair *pair_new(void)
{
    struct pair *p = spare;

    if (p == NULL)
        return calloc(1, sizeof(*p));
    spare = p->next_dead;
    for (int i = 0; i < 2; i++) {
        struct side *sd = &p->s[i];

        sd->fd = -1;
        sd->eof = sd->rdhup = 0;
        sd->len = sd->off = 0;
    }
    memset(&p->connected, 0, sizeof(*p) - offsetof(struct pair, connected));
    return p;
}

static void pair_free(struct pair *p)
{
    p->next_dead = spare;
    spare = p;
}

static int port, up_port, edge, nodelay = 1, ring_mode, ring_lt, ring_shut, hybrid;
static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

#ifdef HAVE_URING
/* -r, -H: a completion's user_data is the pair's address with the side in
 * bit 0 and the operation in bits 1-3 (a pair is 16-byte aligned: malloc's
 * alignment). The accept and -H's poll on the epoll fd name no pair. */
enum { R_ACCEPT, R_CONNECT, R_POLL, R_POLLOUT, R_SHUT, R_CANCEL, R_CLOSE, R_EPOLL };
_Static_assert(R_EPOLL < 8, "the operation has 3 bits");
_Static_assert(alignof(max_align_t) >= 16, "the tags need 4 free low bits in a pair's address");

static __thread struct io_uring *tring;

static uint64_t rtag(const struct pair *p, int i, int op)
{
    return (uint64_t)(uintptr_t)p | (uint64_t)op << 1 | (uint64_t)i;
}

/* Gives sqe its tag; a request that names a pair counts as pending on it. */
static void r_set(struct io_uring_sqe *sqe, struct pair *p, int i, int op)
{
    io_uring_sqe_set_data64(sqe, rtag(p, i, op));
    if (p != NULL)
        p->pending++;
}

/* Cancels the polls still armed and closes both fds, all through the ring;
 * the pair is freed once the last completion naming it is back. The polls
 * are cancelled with IORING_OP_ASYNC_CANCEL, not IORING_OP_POLL_REMOVE: a
 * remove that finds a wakeup of the poll queued and not run yet (deferred
 * task work runs only in the wait, after the submission) fails with
 * -EALREADY and leaves the poll armed, holding the closed socket for good;
 * a cancel marks it and the queued wakeup ends it with -ECANCELED. */
static void r_close(struct pair *p)
{
    p->closed = 1;
    for (int i = 0; i < 2; i++) {
        struct io_uring_sqe *sqe;

        if (p->polled[i]) {
            sqe = uring_sqe(tring);
            io_uring_prep_cancel64(sqe, rtag(p, i, R_POLL), 0);
            r_set(sqe, p, i, R_CANCEL);
        }
        if (p->out[i]) {
            sqe = uring_sqe(tring);
            io_uring_prep_cancel64(sqe, rtag(p, i, R_POLLOUT), 0);
            r_set(sqe, p, i, R_CANCEL);
        }
        sqe = uring_sqe(tring);
        io_uring_prep_close(sqe, p->s[i].fd);
        r_set(sqe, p, i, R_CLOSE);
    }
}
#endif

/* Passes side i's EOF on to the other side as a half-close. */
static void pass_eof(struct pair *p, int i)
{
#ifdef HAVE_URING
    if (ring_shut) {
        struct io_uring_sqe *sqe = uring_sqe(tring);

        io_uring_prep_shutdown(sqe, p->s[!i].fd, SHUT_WR);
        r_set(sqe, p, !i, R_SHUT);
        return;
    }
#endif
    shutdown(p->s[!i].fd, SHUT_WR);
}

/* epoll data: the pair's address with the side in the low bit. */
static void *tag(struct pair *p, int i)
{
    return (void *)((uintptr_t)p | (uintptr_t)i);
}

static int ctl(int ep, int op, struct pair *p, int i, unsigned ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = tag(p, i)};

    return epoll_ctl(ep, op, p->s[i].fd, &e);
}

/* Level-triggered: registers side i for ev unless it already is (both are
 * registered once the upstream is connected). */
static void want(int ep, struct pair *p, int i, unsigned ev)
{
    if (edge || p->mask[i] == ev)
        return;
    ctl(ep, EPOLL_CTL_MOD, p, i, ev);
    p->mask[i] = ev;
}

/* Pairs closed during a batch of events: a later event of the same batch
 * may still name one, so they are freed once the batch is done (-H: once
 * the ring has closed their fds, see r_close). */
static __thread struct pair *dead;

static void pair_close(struct pair *p)
{
#ifdef HAVE_URING
    if (hybrid) {
        r_close(p);
        return;
    }
#endif
    close(p->s[0].fd);
    close(p->s[1].fd);
    p->closed = 1;
    p->next_dead = dead;
    dead = p;
}

/* Writes what side i holds to the other side; 1 when it all went. */
static int flush(struct pair *p, int i)
{
    struct side *s = &p->s[i];

    while (s->off < s->len) {
        ssize_t n = send(p->s[!i].fd, s->buf + s->off, s->len - s->off, MSG_NOSIGNAL);
        if (n == -1)
            return errno == EAGAIN ? 0 : -1;
        s->off += (size_t)n;
    }
    s->off = s->len = 0;
    return 1;
}

/* Moves bytes from side i to the other; -1 to close the pair. */
static int pump(struct pair *p, int i)
{
    struct side *s = &p->s[i];

    for (;;) {
        ssize_t n;
        int rc = flush(p, i);

        if (rc <= 0)
            return rc;
        if (s->eof)
            return 0;
        n = read(s->fd, s->buf, BUF);
        if (n == -1)
            return errno == EAGAIN ? 0 : -1;
        if (n == 0) {
            s->eof = 1;
            if (p->s[!i].eof)
                return -1; /* both ways done */
            pass_eof(p, i);
            return 0;
        }
        s->len = (size_t)n;
        /* A short read drained the socket: more data makes the next event
         * (level-triggered, -r -l's re-armed poll) or the next edge
         * (edge-triggered, -r's multishot poll); -r reads on when its poll
         * said the FIN is queued (it makes no further edge). */
        if ((size_t)n < BUF && !s->rdhup)
            return flush(p, i) < 0 ? -1 : 0;
    }
}

/* Level-triggered interest from the state: read a side while what it sent
 * is out and it has not ended; write a side that has bytes waiting for it. */
static void interest(int ep, struct pair *p)
{
    for (int i = 0; i < 2; i++) {
        unsigned ev = 0;

        if (p->s[i].len == 0 && !p->s[i].eof)
            ev |= EPOLLIN | EPOLLRDHUP;
        if (p->s[!i].len > 0)
            ev |= EPOLLOUT;
        want(ep, p, i, ev);
    }
}

/* The upstream is connected: the client registered for READ (-H: the
 * upstream too, which the ring connected), what is there already moved,
 * the interest set. */
static void connected(int ep, struct pair *p)
{
    p->connected = 1;
    if (!edge) {
        ctl(ep, EPOLL_CTL_ADD, p, 0, EPOLLIN | EPOLLRDHUP);
        p->mask[0] = EPOLLIN | EPOLLRDHUP;
    }
    if (hybrid) {
        ctl(ep, EPOLL_CTL_ADD, p, 1, EPOLLIN | EPOLLRDHUP);
        p->mask[1] = EPOLLIN | EPOLLRDHUP;
    }
    if (pump(p, 0) < 0 || pump(p, 1) < 0) {
        pair_close(p);
        return;
    }
    if (!edge)
        interest(ep, p);
}

static void on_event(int ep, struct pair *p, int i, unsigned ev)
{
    if (p->closed)
        return;
    if (!p->connected) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (i != 1 || !(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return; /* edge-triggered: the client's edge before the upstream is up */
        if ((ev & (EPOLLERR | EPOLLHUP)) &&
            (getsockopt(p->s[1].fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err != 0)) {
            pair_close(p);
            return;
        }
        connected(ep, p);
        return;
    }
    /* Readable side i: its bytes to the other. Writable side i: the other
     * side's bytes, if some wait (an edge-triggered socket reports WRITE once
     * when registered: nothing to do then). */
    if (((ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) && pump(p, i) < 0) ||
        ((ev & EPOLLOUT) && p->s[!i].len > 0 && pump(p, !i) < 0)) {
        pair_close(p);
        return;
    }
    if (!edge)
        interest(ep, p);
}

static void on_accept(int ep, int lfd, const struct sockaddr_in *up)
{
    for (int k = 0; k < 64; k++) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
        struct pair *p;

        if (cfd == -1)
            return;
        p = pair_new();
        if (p == NULL) {
            close(cfd);
            return;
        }
        p->s[0].fd = cfd;
        p->s[1].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->s[1].fd == -1) {
            close(cfd);
            pair_free(p);
            return;
        }
        if (nodelay)
            setsockopt(p->s[1].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(p->s[1].fd, (const struct sockaddr *)up, sizeof(*up)) == -1 &&
            errno != EINPROGRESS) {
            pair_close(p);
            continue;
        }
        if (edge) {
            ctl(ep, EPOLL_CTL_ADD, p, 1, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
            ctl(ep, EPOLL_CTL_ADD, p, 0, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
        } else {
            ctl(ep, EPOLL_CTL_ADD, p, 1, EPOLLOUT);
            p->mask[1] = EPOLLOUT;
        }
    }
}

/* This thread's SO_REUSEPORT listener on 127.0.0.1:PORT (with TCP_NODELAY,
 * which accepted sockets inherit); the upstream's address in *up. */
static int listener(struct sockaddr_in *up)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

    memset(up, 0, sizeof(*up));
    up->sin_family = AF_INET;
    up->sin_port = htons((uint16_t)up_port);
    a.sin_addr.s_addr = up->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (lfd == -1 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) == -1 || listen(lfd, 4096) == -1) {
        perror("bench_tcp_relay: listen");
        exit(2);
    }
    return lfd;
}

static int epoll_open(void)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (ep == -1) {
        perror("bench_tcp_relay: epoll_create1");
        exit(2);
    }
    return ep;
}

/* An event of a pair's socket, tagged by tag(). */
static void on_tagged(int ep, const struct epoll_event *e)
{
    uintptr_t t = (uintptr_t)e->data.ptr;

    on_event(ep, (struct pair *)(t & ~(uintptr_t)1), (int)(t & 1), e->events);
}

static void *worker(void *arg)
{
    struct sockaddr_in up;
    struct epoll_event evs[MAXEV], lev = {.events = EPOLLIN};
    int lfd = listener(&up);
    int ep = epoll_open();

    (void)arg;
    lev.data.ptr = NULL;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    while (!stop) {
        int n = epoll_wait(ep, evs, MAXEV, 200);

        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                on_accept(ep, lfd, &up);
            else
                on_tagged(ep, &evs[i]);
        }
        while (dead != NULL) {
            struct pair *p = dead;

            dead = p->next_dead;
            pair_free(p);
        }
    }
    return NULL;
}

#ifdef HAVE_URING
/* ---- -r, -H: accept, connect and close through io_uring ------------------ */

#define R_ENTRIES 4096

static void r_arm_accept(int lfd)
{
    struct io_uring_sqe *sqe = uring_sqe(tring);

    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    r_set(sqe, NULL, 0, R_ACCEPT);
}

/* The read-readiness poll on side i: multishot, or one-shot with -l. */
static void r_arm_poll(struct pair *p, int i)
{
    struct io_uring_sqe *sqe = uring_sqe(tring);

    if (ring_lt)
        io_uring_prep_poll_add(sqe, p->s[i].fd, POLLIN | POLLRDHUP);
    else
        io_uring_prep_poll_multishot(sqe, p->s[i].fd, POLLIN | POLLRDHUP);
    r_set(sqe, p, i, R_POLL);
    p->polled[i] = 1;
}

/* Side i holds bytes the other side did not take: a one-shot POLLOUT poll
 * on the other side, unless one is armed. */
static void r_want_out(struct pair *p, int i)
{
    struct io_uring_sqe *sqe;

    if (p->s[i].len == 0 || p->out[!i])
        return;
    sqe = uring_sqe(tring);
    io_uring_prep_poll_add(sqe, p->s[!i].fd, POLLOUT);
    r_set(sqe, p, !i, R_POLLOUT);
    p->out[!i] = 1;
}

/* Arms the polls the pair needs and does not have: each side's read poll
 * (-r: the multishot one, once; -l: a one-shot one whenever the side is to
 * be read, as interest() has it for epoll) and the POLLOUT poll of a side
 * the other holds bytes for. Called after each completion on the pair. */
static void r_interest(struct pair *p)
{
    for (int i = 0; i < 2; i++) {
        if (!p->polled[i] && (!ring_lt || (p->s[i].len == 0 && !p->s[i].eof)))
            r_arm_poll(p, i);
        r_want_out(p, i);
    }
}

static void r_on_accept(int lfd, const struct sockaddr_in *up, int res, unsigned flags)
{
    struct io_uring_sqe *sqe;
    struct pair *p;
    int one = 1;

    if (!(flags & IORING_CQE_F_MORE))
        r_arm_accept(lfd);
    if (res < 0) {
        if (res != -EAGAIN && res != -ECONNABORTED)
            fprintf(stderr, "bench_tcp_relay: accept: %s\n", strerror(-res));
        return;
    }
    p = pair_new();
    if (p == NULL) {
        close(res);
        return;
    }
    p->s[0].fd = res;
    p->s[1].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->s[1].fd == -1) {
        close(res);
        pair_free(p);
        return;
    }
    if (nodelay)
        setsockopt(p->s[1].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* up lives as long as the loop; the kernel copies it at submission. */
    sqe = uring_sqe(tring);
    io_uring_prep_connect(sqe, p->s[1].fd, (const struct sockaddr *)up, sizeof(*up));
    r_set(sqe, p, 1, R_CONNECT);
}

/* Side i's poll reported mask: its bytes to the other side, unless it still
 * holds bytes the other did not take (then its POLLOUT poll resumes it). */
static void r_ready(struct pair *p, int i, unsigned mask)
{
    struct side *s = &p->s[i];

    if (!ring_lt && (mask & (POLLRDHUP | POLLHUP | POLLERR)))
        s->rdhup = 1;
    if (s->len > 0 || s->eof)
        return;
    if (pump(p, i) < 0)
        r_close(p);
}

/* -H: the one-shot poll on the epoll fd (see the top: not multishot). */
static void r_arm_epoll(int ep)
{
    struct io_uring_sqe *sqe = uring_sqe(tring);

    io_uring_prep_poll_add(sqe, ep, POLLIN);
    r_set(sqe, NULL, 0, R_EPOLL);
}

/* -H: the epoll fd is readable: its poll re-armed, the events taken without
 * waiting and handled as the level-triggered mode does. Events left over
 * (more than MAXEV) complete the re-armed poll at once. */
static void r_on_epoll(int ep, int res)
{
    struct epoll_event evs[MAXEV];
    int n;

    if (res < 0) {
        fprintf(stderr, "bench_tcp_relay: poll on the epoll fd: %s\n", strerror(-res));
        exit(2);
    }
    r_arm_epoll(ep);
    n = epoll_wait(ep, evs, MAXEV, 0);
    for (int k = 0; k < n; k++)
        on_tagged(ep, &evs[k]);
}

/* A completion; ep is -H's epoll fd (-1 otherwise). */
static void r_on_cqe(int lfd, int ep, const struct sockaddr_in *up, const struct io_uring_cqe *cqe)
{
    struct pair *p = (struct pair *)(uintptr_t)(cqe->user_data & ~(uint64_t)15);
    int i = (int)(cqe->user_data & 1), op = (int)(cqe->user_data >> 1 & 7), res = cqe->res;

    if (op == R_ACCEPT) {
        r_on_accept(lfd, up, res, cqe->flags);
        return;
    }
    if (op == R_EPOLL) {
        r_on_epoll(ep, res);
        return;
    }
    switch (op) {
    case R_CONNECT:
        p->pending--;
        if (res < 0) {
            r_close(p);
        } else if (hybrid) {
            connected(ep, p);
        } else {
            p->connected = 1;
            r_interest(p);
        }
        break;
    case R_POLL:
        /* A multishot poll ends with a completion without F_MORE: its
         * cancellation (-ECANCELED), an error, or a CQ overflow (re-armed);
         * a one-shot poll (-l) with its first. */
        if (!(cqe->flags & IORING_CQE_F_MORE)) {
            p->pending--;
            p->polled[i] = 0;
        }
        if (p->closed)
            break;
        if (res < 0) {
            r_close(p);
            break;
        }
        r_ready(p, i, (unsigned)res);
        if (!p->closed)
            r_interest(p);
        break;
    case R_POLLOUT: /* side i can take the other side's bytes */
        p->pending--;
        p->out[i] = 0;
        if (p->closed)
            break;
        if (res < 0 || pump(p, !i) < 0)
            r_close(p);
        else
            r_interest(p);
        break;
    default: /* R_SHUT, R_CANCEL (-ENOENT if the poll had ended), R_CLOSE */
        p->pending--;
        break;
    }
    if (p->closed && p->pending == 0)
        pair_free(p);
}

static void *r_worker(void *arg)
{
    struct sockaddr_in up;
    struct io_uring ring;
    int lfd = listener(&up), rc = uring_open(&ring, R_ENTRIES), ep = -1;

    (void)arg;
    if (rc < 0) {
        fprintf(stderr, "bench_tcp_relay: io_uring_queue_init: %s\n", strerror(-rc));
        exit(2);
    }
    tring = &ring;
    r_arm_accept(lfd);
    if (hybrid) {
        ep = epoll_open();
        r_arm_epoll(ep);
    }
    while (!stop) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 100000000};
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;

        rc = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR) {
            fprintf(stderr, "bench_tcp_relay: io_uring_submit_and_wait: %s\n", strerror(-rc));
            exit(2);
        }
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            n++;
            r_on_cqe(lfd, ep, &up, cqe);
        }
        io_uring_cq_advance(&ring, n);
    }
    return NULL;
}
#endif

int main(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_term};
    int threads = 2, opt;
    pthread_t th[16];
    void *(*loop)(void *) = worker;

    while ((opt = getopt(argc, argv, "p:u:j:enrlsH")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'u':
            up_port = atoi(optarg);
            break;
        case 'j':
            threads = atoi(optarg);
            break;
        case 'e':
            edge = 1;
            break;
        case 'n':
            nodelay = 0;
            break;
        case 'r':
            ring_mode = 1;
            break;
        case 'l':
            ring_lt = 1;
            break;
        case 's':
            ring_shut = 1;
            break;
        case 'H':
            hybrid = 1;
            break;
        default:
            return 2;
        }
    }
    if (port <= 0 || up_port <= 0 || threads < 1 || threads > 16 || edge + ring_mode + hybrid > 1 ||
        ((ring_shut || ring_lt) && !ring_mode)) {
        fprintf(stderr, "usage: bench_tcp_relay -p PORT -u UPSTREAM_PORT [-j THREADS] "
                        "[-e | -r [-l] [-s] | -H] [-n]\n");
        return 2;
    }
    if (ring_mode || hybrid) {
#ifdef HAVE_URING
        loop = r_worker;
#else
        fprintf(stderr, "bench_tcp_relay: -r, -H: built without liburing (liburing-dev)\n");
        return 2;
#endif
    }
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, loop, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    return 0;
}
