/*
 * bench_tcp_load.c - load generator of the TCP proxy benchmark (bench/tcp.sh).
 *
 *   bench_tcp_load rate  -p PORT [-c CLIENTS] [-t SECS] [-w WARMUP] [-j THREADS] [-2]
 *   bench_tcp_load hold  -p PORT -n CONNS [-2] [-t MAXSECS]
 *   bench_tcp_load probe -p PORT [-2]
 *
 * All connections go to 127.0.0.1:PORT. -2 sends a PROXY v2 header (built
 * with pp_build_v2, source 198.51.100.7, destination 127.0.0.1:PORT) before
 * the payload, in the same write, for targets that require one.
 *
 * rate: CLIENTS (64) concurrent clients, each in a loop: connect, write 64
 * bytes, read the 64 bytes echoed back (checked), close. Runs SECS (3) seconds;
 * connections started in the first WARMUP (0.5) seconds or not finished by
 * the end are not counted. Latency is per connection, from connect() to the
 * last byte read. One epoll loop per thread (THREADS, default 1). Prints
 *   RESULT mode=rate ... cps=N p50_ms=X p99_ms=Y max_ms=Z errors=E
 *
 * hold: opens CONNS connections (256 connecting at a time) and keeps them
 * open; prints "OPEN opened=N failed=F" when done. Then SIGUSR1 makes it do
 * one 64-byte echo on every open connection and print "ECHO echoed=N
 * failed=F"; SIGTERM or SIGINT closes everything and exits. It exits by itself
 * after MAXSECS (300) seconds. This is what the memory measurement uses: the
 * script reads the proxy's RSS between the steps.
 *
 * probe: one connection, one echo, then a half-close, and the connection must
 * end cleanly with no extra byte. Exit 0 if so, 1 otherwise (reason on
 * stderr). Used to check that a target is up and relays correctly.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proxyproto.h"

#define PAYLOAD 64
#define MSG_CAP 256
#define MAX_THREADS 16
#define MAX_EVENTS 512
#define CONN_TIMEOUT_NS (5ull * 1000000000ull)
#define HOLD_WINDOW 256
#define HOLD_STEP_NS (60ull * 1000000000ull)
#define SIG_TAG UINT64_MAX

enum state { ST_FREE, ST_CONNECTING, ST_OPEN, ST_READING, ST_DONE, ST_FAILED };

struct client {
    int fd;
    int state;
    uint32_t got;
    uint64_t t0;
};

struct opts {
    int port;
    int clients;
    double secs;
    double warmup;
    int threads;
    int proxy_v2;
    long nconns;
};

struct samples {
    uint64_t *v;
    size_t n, cap;
};

struct rate_thread {
    pthread_t tid;
    const struct opts *o;
    int first, count; /* client indexes of this thread */
    uint64_t t_start, t_warm, t_end;
    struct samples lat;
    unsigned long errors, timeouts, started;
};

static uint8_t payload[PAYLOAD];
static struct sockaddr_in target;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_tcp_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* The bytes a connection sends: [PROXY v2 header] + payload. */
static size_t build_msg(uint8_t *msg, int proxy_v2, uint16_t sport)
{
    size_t off = 0;
    if (proxy_v2) {
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = htons(sport)};
        src.sin_addr.s_addr = htonl(0xC6336407u); /* 198.51.100.7 */
        ssize_t n = pp_build_v2(msg, MSG_CAP, PP2_CMD_PROXY, SOCK_STREAM,
                                (const struct sockaddr *)&src, (const struct sockaddr *)&target);
        if (n < 0) {
            fprintf(stderr, "bench_tcp_load: pp_build_v2: %s\n", pp_strerror((int)n));
            exit(1);
        }
        off = (size_t)n;
    }
    memcpy(msg + off, payload, PAYLOAD);
    return off + PAYLOAD;
}

static int send_all(int fd, const uint8_t *msg, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, msg + off, len - off, MSG_NOSIGNAL);
        if (w > 0)
            off += (size_t)w;
        else if (w < 0 && errno == EINTR)
            continue;
        else
            return -1; /* a 64-byte message always fits in an empty socket buffer */
    }
    return 0;
}

/* Reads what is there of the echo. Returns 1 when all PAYLOAD bytes are in and
 * correct, 0 when more are needed, -1 on error, EOF or a wrong byte. */
static int read_echo(struct client *c)
{
    uint8_t buf[PAYLOAD];
    for (;;) {
        ssize_t r = read(c->fd, buf, PAYLOAD - c->got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r <= 0)
            return -1;
        if (memcmp(buf, payload + c->got, (size_t)r) != 0)
            return -1;
        c->got += (uint32_t)r;
        if (c->got == PAYLOAD)
            return 1;
    }
}

static void push(struct samples *s, uint64_t v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 65536;
        s->v = realloc(s->v, s->cap * sizeof(*s->v));
        if (!s->v)
            die("realloc");
    }
    s->v[s->n++] = v;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Starts a non-blocking connect; the message is written once it completes. */
static int client_start(int ep, struct client *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    c->got = 0;
    c->t0 = now_ns();
    if (connect(c->fd, (const struct sockaddr *)&target, sizeof(target)) < 0 &&
        errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->state = ST_CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP};
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl");
    return 0;
}

static void client_close(struct client *c, int state)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = state;
}

/* Connect finished (EPOLLOUT or an error): is the socket connected? */
static int connect_ok(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
        return 0;
    return 1;
}

/* ---- rate ----------------------------------------------------------------- */

static void *rate_main(void *arg)
{
    struct rate_thread *t = arg;
    const struct opts *o = t->o;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct client *cs = calloc((size_t)t->count, sizeof(*cs));
    if (!cs)
        die("calloc");
    uint8_t msg[MSG_CAP];
    uint16_t sport = (uint16_t)(1024 + t->first);

    for (int i = 0; i < t->count; i++) {
        cs[i].fd = -1;
        if (client_start(ep, &cs[i]) < 0)
            t->errors++;
        else
            t->started++;
    }
    struct epoll_event evs[MAX_EVENTS];
    uint64_t last_scan = now_ns();
    for (;;) {
        uint64_t now = now_ns();
        if (now >= t->t_end)
            break;
        int wait_ms = (int)((t->t_end - now) / 1000000ull) + 1;
        if (wait_ms > 50)
            wait_ms = 50;
        int n = epoll_wait(ep, evs, MAX_EVENTS, wait_ms);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct client *c = evs[i].data.ptr;
            int r = 0;
            if (c->state == ST_CONNECTING) {
                if (!(evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                    continue;
                if (!connect_ok(c->fd)) {
                    r = -1;
                } else {
                    size_t len = build_msg(msg, o->proxy_v2, sport++);
                    r = send_all(c->fd, msg, len);
                    c->state = ST_READING;
                }
            }
            if (r == 0 && c->state == ST_READING &&
                (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)))
                r = read_echo(c);
            if (r == 0)
                continue;
            uint64_t t1 = now_ns();
            if (r > 0 && c->t0 >= t->t_warm && t1 <= t->t_end)
                push(&t->lat, t1 - c->t0);
            if (r < 0 && t1 <= t->t_end)
                t->errors++;
            client_close(c, ST_FREE);
            if (t1 < t->t_end) {
                if (client_start(ep, c) < 0)
                    t->errors++;
                else
                    t->started++;
            }
        }
        now = now_ns();
        if (now - last_scan > 100000000ull) {
            last_scan = now;
            for (int i = 0; i < t->count; i++) {
                struct client *c = &cs[i];
                if (c->fd >= 0 && now - c->t0 < CONN_TIMEOUT_NS)
                    continue;
                if (c->fd >= 0) {
                    t->timeouts++;
                    client_close(c, ST_FREE);
                }
                /* A client whose socket() or connect() failed at once is
                 * retried here, at most ten times a second. */
                if (client_start(ep, c) < 0)
                    t->errors++;
                else
                    t->started++;
            }
        }
    }
    for (int i = 0; i < t->count; i++)
        client_close(&cs[i], ST_FREE);
    free(cs);
    close(ep);
    return NULL;
}

static int run_rate(const struct opts *o)
{
    struct rate_thread ts[MAX_THREADS];
    memset(ts, 0, sizeof(ts));
    uint64_t start = now_ns();
    uint64_t warm = start + (uint64_t)(o->warmup * 1e9);
    uint64_t end = start + (uint64_t)(o->secs * 1e9);
    int per = o->clients / o->threads, extra = o->clients % o->threads, first = 0;
    for (int i = 0; i < o->threads; i++) {
        ts[i].o = o;
        ts[i].first = first;
        ts[i].count = per + (i < extra);
        first += ts[i].count;
        ts[i].t_start = start;
        ts[i].t_warm = warm;
        ts[i].t_end = end;
        if (pthread_create(&ts[i].tid, NULL, rate_main, &ts[i]) != 0)
            die("pthread_create");
    }
    struct samples all = {0};
    unsigned long errors = 0, timeouts = 0;
    for (int i = 0; i < o->threads; i++) {
        pthread_join(ts[i].tid, NULL);
        for (size_t k = 0; k < ts[i].lat.n; k++)
            push(&all, ts[i].lat.v[k]);
        free(ts[i].lat.v);
        errors += ts[i].errors;
        timeouts += ts[i].timeouts;
    }
    double secs = o->secs - o->warmup;
    double p50 = 0, p99 = 0, max = 0;
    if (all.n > 0) {
        qsort(all.v, all.n, sizeof(*all.v), cmp_u64);
        p50 = (double)all.v[(all.n - 1) * 50 / 100] / 1e6;
        p99 = (double)all.v[(all.n - 1) * 99 / 100] / 1e6;
        max = (double)all.v[all.n - 1] / 1e6;
    }
    printf("RESULT mode=rate port=%d clients=%d threads=%d proxy_v2=%d secs=%.2f conns=%zu "
           "cps=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%lu timeouts=%lu\n",
           o->port, o->clients, o->threads, o->proxy_v2, secs, all.n, (double)all.n / secs, p50,
           p99, max, errors, timeouts);
    free(all.v);
    return all.n > 0 ? 0 : 1;
}

/* ---- hold ----------------------------------------------------------------- */

static int sig_fd(int ep)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        die("signalfd");
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = SIG_TAG};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl");
    return fd;
}

/* Returns the signal read from the signalfd, 0 if none. */
static int take_signal(int sfd)
{
    struct signalfd_siginfo si;
    if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
        return 0;
    return (int)si.ssi_signo;
}

struct hold {
    const struct opts *o;
    struct client *cs;
    int ep, sfd;
    long open, failed;
    int stop; /* SIGTERM/SIGINT seen */
    int usr1; /* SIGUSR1 seen */
};

/* One round of events. A client that fails or is closed by the peer is
 * counted and closed. */
static void hold_events(struct hold *h, int timeout_ms, long *pending)
{
    struct epoll_event evs[MAX_EVENTS];
    uint8_t msg[MSG_CAP];
    int n = epoll_wait(h->ep, evs, MAX_EVENTS, timeout_ms);
    if (n < 0 && errno != EINTR)
        die("epoll_wait");
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == SIG_TAG) {
            int s = take_signal(h->sfd);
            if (s == SIGUSR1)
                h->usr1 = 1;
            else if (s != 0)
                h->stop = 1;
            continue;
        }
        struct client *c = evs[i].data.ptr;
        uint32_t e = evs[i].events;
        if (c->state == ST_CONNECTING) {
            if (!(e & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                continue;
            (*pending)--;
            if (connect_ok(c->fd) &&
                (!h->o->proxy_v2 ||
                 send_all(c->fd, msg, build_msg(msg, 1, (uint16_t)(c - h->cs)) - PAYLOAD) == 0)) {
                c->state = ST_OPEN;
                h->open++;
            } else {
                client_close(c, ST_FAILED);
                h->failed++;
            }
            continue;
        }
        if (c->state == ST_READING) {
            int r = read_echo(c);
            if (r == 0)
                continue;
            (*pending)--;
            if (r > 0) {
                c->state = ST_DONE;
                continue;
            }
        } else if (!(e & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))) {
            continue;
        }
        /* An idle connection became readable (closed by the peer), or an echo
         * failed. */
        client_close(c, ST_FAILED);
        h->open--;
        h->failed++;
    }
}

static int run_hold(const struct opts *o)
{
    struct hold h = {.o = o};
    h.cs = calloc((size_t)o->nconns, sizeof(*h.cs));
    if (!h.cs)
        die("calloc");
    h.ep = epoll_create1(EPOLL_CLOEXEC);
    if (h.ep < 0)
        die("epoll_create1");
    h.sfd = sig_fd(h.ep);
    uint64_t t_exit = now_ns() + (uint64_t)(o->secs * 1e9);

    /* Open, HOLD_WINDOW at a time. */
    uint64_t t0 = now_ns(), deadline = t0 + HOLD_STEP_NS;
    long next = 0, pending = 0;
    while ((next < o->nconns || pending > 0) && !h.stop && now_ns() < deadline) {
        while (next < o->nconns && pending < HOLD_WINDOW) {
            struct client *c = &h.cs[next++];
            if (client_start(h.ep, c) < 0) {
                c->fd = -1;
                c->state = ST_FAILED;
                h.failed++;
                if (errno == EMFILE || errno == ENFILE)
                    next = o->nconns;
                continue;
            }
            pending++;
        }
        hold_events(&h, 100, &pending);
    }
    printf("OPEN opened=%ld failed=%ld secs=%.2f\n", h.open, h.failed + (o->nconns - next),
           (double)(now_ns() - t0) / 1e9);
    fflush(stdout);

    while (!h.stop && now_ns() < t_exit) {
        hold_events(&h, 200, &pending);
        if (!h.usr1)
            continue;
        h.usr1 = 0;
        /* One echo on every open connection, all at once. */
        uint8_t msg[MSG_CAP];
        long sent = 0, fail0 = h.failed;
        t0 = now_ns();
        pending = 0;
        for (long i = 0; i < o->nconns; i++) {
            struct client *c = &h.cs[i];
            if (c->state != ST_OPEN && c->state != ST_DONE)
                continue;
            c->got = 0;
            size_t len = build_msg(msg, 0, 0);
            if (send_all(c->fd, msg, len) < 0) {
                client_close(c, ST_FAILED);
                h.open--;
                h.failed++;
                continue;
            }
            c->state = ST_READING;
            sent++;
            pending++;
        }
        deadline = now_ns() + HOLD_STEP_NS;
        while (pending > 0 && !h.stop && now_ns() < deadline)
            hold_events(&h, 100, &pending);
        printf("ECHO echoed=%ld failed=%ld secs=%.2f\n", sent - pending - (h.failed - fail0),
               h.failed - fail0 + pending, (double)(now_ns() - t0) / 1e9);
        fflush(stdout);
    }
    for (long i = 0; i < o->nconns; i++)
        if (h.cs[i].state != ST_FREE && h.cs[i].state != ST_FAILED)
            client_close(&h.cs[i], ST_FREE);
    printf("CLOSED\n");
    fflush(stdout);
    free(h.cs);
    return 0;
}

/* ---- probe ---------------------------------------------------------------- */

static int run_probe(const struct opts *o)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (const struct sockaddr *)&target, sizeof(target)) < 0) {
        fprintf(stderr, "probe: connect to port %d: %s\n", o->port, strerror(errno));
        return 1;
    }
    uint8_t msg[MSG_CAP];
    size_t len = build_msg(msg, o->proxy_v2, 4242);
    if (send_all(fd, msg, len) < 0) {
        fprintf(stderr, "probe: write: %s\n", strerror(errno));
        return 1;
    }
    struct client c = {.fd = fd};
    while (c.got < PAYLOAD) {
        int r = read_echo(&c);
        if (r < 0 || (r == 0 && c.got < PAYLOAD && errno == EAGAIN)) {
            fprintf(stderr, "probe: port %d: echo wrong or missing after %u bytes\n", o->port,
                    c.got);
            return 1;
        }
    }
    shutdown(fd, SHUT_WR);
    uint8_t extra;
    ssize_t r = read(fd, &extra, 1);
    if (r != 0) {
        fprintf(stderr, "probe: port %d: %s after the echo\n", o->port,
                r > 0 ? "an extra byte" : "no clean close");
        return 1;
    }
    close(fd);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_tcp_load rate  -p PORT [-c CLIENTS] [-t SECS] [-w WARMUP] "
                    "[-j THREADS] [-2]\n"
                    "       bench_tcp_load hold  -p PORT -n CONNS [-2] [-t MAXSECS]\n"
                    "       bench_tcp_load probe -p PORT [-2]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *mode = argv[1];
    struct opts o = {.clients = 64, .secs = -1, .warmup = 0.5, .threads = 1};
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "p:c:t:w:j:n:2")) != -1) {
        switch (opt) {
        case 'p':
            o.port = atoi(optarg);
            break;
        case 'c':
            o.clients = atoi(optarg);
            break;
        case 't':
            o.secs = atof(optarg);
            break;
        case 'w':
            o.warmup = atof(optarg);
            break;
        case 'j':
            o.threads = atoi(optarg);
            break;
        case 'n':
            o.nconns = atol(optarg);
            break;
        case '2':
            o.proxy_v2 = 1;
            break;
        default:
            usage();
        }
    }
    if (o.port <= 0 || o.port > 65535 || o.clients < 1 || o.threads < 1 ||
        o.threads > MAX_THREADS || o.threads > o.clients)
        usage();

    for (int i = 0; i < PAYLOAD; i++)
        payload[i] = (uint8_t)('A' + i % 26);
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)o.port);
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    if (strcmp(mode, "rate") == 0) {
        if (o.secs < 0)
            o.secs = 3;
        if (o.warmup < 0 || o.warmup >= o.secs)
            usage();
        return run_rate(&o);
    }
    if (strcmp(mode, "hold") == 0) {
        if (o.nconns < 1)
            usage();
        if (o.secs < 0)
            o.secs = 300;
        return run_hold(&o);
    }
    if (strcmp(mode, "probe") == 0)
        return run_probe(&o);
    usage();
    return 2;
}
