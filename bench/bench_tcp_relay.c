/*
 * bench_tcp_relay.c - the floor of a TCP proxy: the least a relay does per
 * connection, for the cost model (docs/design.md). No config, no header, no
 * logs, no timers: accept, connect the upstream, copy both ways through a
 * buffer, pass a half-close on with shutdown, close at the second EOF.
 *
 *   bench_tcp_relay -p PORT -u UPSTREAM_PORT [-j THREADS] [-e] [-n]
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
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 16384
#define MAXEV 256

struct side {
    int fd;
    int eof;    /* its EOF was read (and passed on) */
    size_t len; /* bytes read from it, not yet written to the other */
    size_t off;
    char buf[BUF];
};

struct pair {
    struct side s[2]; /* 0: client, 1: upstream */
    int connected;
    int closed;          /* its fds are closed; freed after the batch of events */
    struct pair *next_dead;
    unsigned mask[2]; /* level-triggered: what each fd is registered for */
};

static int port, up_port, edge, nodelay = 1;
static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
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
 * may still name one, so they are freed once the batch is done. */
static __thread struct pair *dead;

static void pair_close(struct pair *p)
{
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
            shutdown(p->s[!i].fd, SHUT_WR);
            return 0;
        }
        s->len = (size_t)n;
        /* A short read drained the socket: more data makes the next event
         * (level-triggered) or the next edge (edge-triggered). */
        if ((size_t)n < BUF)
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
        p->connected = 1;
        if (!edge) {
            ctl(ep, EPOLL_CTL_ADD, p, 0, EPOLLIN | EPOLLRDHUP);
            p->mask[0] = EPOLLIN | EPOLLRDHUP;
        }
        if (pump(p, 0) < 0 || pump(p, 1) < 0) {
            pair_close(p);
            return;
        }
        if (!edge)
            interest(ep, p);
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
        p = calloc(1, sizeof(*p));
        if (p == NULL) {
            close(cfd);
            return;
        }
        p->s[0].fd = cfd;
        p->s[1].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->s[1].fd == -1) {
            close(cfd);
            free(p);
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

static void *worker(void *arg)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct sockaddr_in up = {.sin_family = AF_INET, .sin_port = htons((uint16_t)up_port)};
    struct epoll_event evs[MAXEV], lev = {.events = EPOLLIN};
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    int ep = epoll_create1(EPOLL_CLOEXEC);

    (void)arg;
    a.sin_addr.s_addr = up.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (lfd == -1 || ep == -1 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) == -1 ||
        listen(lfd, 4096) == -1) {
        perror("bench_tcp_relay: listen");
        exit(2);
    }
    lev.data.ptr = NULL;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    while (!stop) {
        int n = epoll_wait(ep, evs, MAXEV, 200);

        for (int i = 0; i < n; i++) {
            uintptr_t t = (uintptr_t)evs[i].data.ptr;

            if (t == 0)
                on_accept(ep, lfd, &up);
            else
                on_event(ep, (struct pair *)(t & ~(uintptr_t)1), (int)(t & 1), evs[i].events);
        }
        while (dead != NULL) {
            struct pair *p = dead;

            dead = p->next_dead;
            free(p);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_term};
    int threads = 2, opt;
    pthread_t th[16];

    while ((opt = getopt(argc, argv, "p:u:j:en")) != -1) {
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
        default:
            return 2;
        }
    }
    if (port <= 0 || up_port <= 0 || threads < 1 || threads > 16) {
        fprintf(stderr, "usage: bench_tcp_relay -p PORT -u UPSTREAM_PORT [-j THREADS] [-e] [-n]\n");
        return 2;
    }
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    return 0;
}
