/*
 * test_loop_sock.c - loop_accept and loop_connect (src/loop/loop_sock.c,
 * and the ring's accepts and connects in loop_uring.c), on both backends:
 * every connection is handed over with its peer's address, a listener
 * stopped with drain hands over everything the ring took and everything
 * in its backlog before it returns (a reload must not drop connections),
 * one stopped without drain takes nothing more, an accept failure (out of
 * fds) reaches the callback, and a connect reports its end as epoll would:
 * writable, or LOOP_ERROR with the errno from loop_connect_error(); a
 * connect closed while in flight is never reported. The connect tests run
 * loop_connect outside loop_run (a plain connect() on io_uring too) and
 * inside it (the ring's connect); one closed in the callback that started
 * it never reads its address afterwards.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>

#include "loop/loop.h"
#include "looptest.h"

#define NCLIENTS 40 /* more than the ring's accepts in flight per listener */

/* What the accept callback saw. */
struct acc {
    struct lt_fix *f;
    int lfd;
    int n, errors, last_err;
    int fds[2 * NCLIENTS];
    struct sockaddr_in peers[2 * NCLIENTS];
    int stop_at;   /* loop_stop() once n reaches it */
    int stop_on_error;
};

static int listener(struct sockaddr_in *sa, int backlog)
{
    socklen_t len = sizeof(*sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &len), 0);
    return fd;
}

/* A client connected to sa (loopback: the handshake ends in connect()). */
static int client(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (const struct sockaddr *)sa, sizeof(*sa)), 0);
    return fd;
}

static void on_accept(struct loop *l, int lfd, int cfd, const struct sockaddr *peer,
                      socklen_t plen, void *arg)
{
    struct acc *a = arg;

    assert_int_equal(lfd, a->lfd);
    if (cfd < 0) {
        a->errors++;
        a->last_err = -cfd;
        if (a->stop_on_error) {
            loop_accept_stop(l, lfd, 0);
            loop_stop(l);
        }
        return;
    }
    assert_true(a->n < 2 * NCLIENTS);
    assert_int_equal(plen, sizeof(struct sockaddr_in));
    assert_int_equal(peer->sa_family, AF_INET);
    assert_true(fcntl(cfd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(cfd, F_GETFD) & FD_CLOEXEC);
    a->fds[a->n] = cfd;
    memcpy(&a->peers[a->n], peer, sizeof(a->peers[0]));
    a->n++;
    if (a->n == a->stop_at)
        loop_stop(l);
}

static void acc_close(struct acc *a)
{
    for (int i = 0; i < a->n; i++)
        close(a->fds[i]);
}

/* Each of a's peers is one of the clients' own addresses, once. */
static void assert_peers(const struct acc *a, const int *cl, int n)
{
    assert_int_equal(a->n, n);
    for (int i = 0; i < n; i++) {
        struct sockaddr_in own;
        socklen_t len = sizeof(own);
        int found = 0;

        assert_int_equal(getsockname(cl[i], (struct sockaddr *)&own, &len), 0);
        for (int k = 0; k < a->n; k++)
            found += a->peers[k].sin_port == own.sin_port &&
                     a->peers[k].sin_addr.s_addr == own.sin_addr.s_addr;
        assert_int_equal(found, 1);
    }
}

static void test_accept_hands_peers(void **state)
{
    struct lt_fix *f = *state;
    struct acc a = {.f = f, .stop_at = NCLIENTS};
    struct sockaddr_in sa;
    int cl[NCLIENTS];

    a.lfd = listener(&sa, 128);
    assert_int_equal(loop_accept(f->l, a.lfd, on_accept, &a), 0);
    assert_int_equal(loop_accept(f->l, a.lfd, on_accept, &a), -EEXIST);
    for (int i = 0; i < NCLIENTS; i++)
        cl[i] = client(&sa);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_peers(&a, cl, NCLIENTS);
    loop_accept_stop(f->l, a.lfd, 0);
    acc_close(&a);
    for (int i = 0; i < NCLIENTS; i++)
        close(cl[i]);
    close(a.lfd);
}

/* Inside the loop (a timer): clients connect, then the listener stops. */
struct stop_case {
    struct acc a;
    struct sockaddr_in sa;
    int cl[NCLIENTS];
    int drain;
    int handed_before_stop, handed_by_stop;
    struct timer t;
};

static void stop_in_loop(struct loop *l, struct timer *t, void *arg)
{
    struct stop_case *s = arg;

    (void)t;
    for (int i = 0; i < NCLIENTS; i++)
        s->cl[i] = client(&s->sa);
    s->handed_before_stop = s->a.n;
    loop_accept_stop(l, s->a.lfd, s->drain);
    s->handed_by_stop = s->a.n - s->handed_before_stop;
    loop_stop(l);
}

/* Lets the ring arm its accepts (one iteration), then runs stop_in_loop. */
static void run_stop_case(struct lt_fix *f, struct stop_case *s)
{
    s->a.f = f;
    s->a.stop_at = -1;
    s->a.lfd = listener(&s->sa, 128);
    assert_int_equal(loop_accept(f->l, s->a.lfd, on_accept, &s->a), 0);
    loop_timer_set(f->l, &s->t, 20, stop_in_loop, s);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
}

static void test_stop_drain_hands_everything(void **state)
{
    struct lt_fix *f = *state;
    struct stop_case s = {.drain = 1};

    run_stop_case(f, &s);
    assert_int_equal(s.handed_before_stop, 0);
    assert_int_equal(s.handed_by_stop, NCLIENTS);
    assert_peers(&s.a, s.cl, NCLIENTS);
    /* Nothing is left in the backlog, and nothing more is taken. */
    assert_int_equal(accept4(s.a.lfd, NULL, NULL, SOCK_NONBLOCK), -1);
    assert_int_equal(errno, EAGAIN);
    acc_close(&s.a);
    for (int i = 0; i < NCLIENTS; i++)
        close(s.cl[i]);
    close(s.a.lfd);
}

static void test_stop_without_drain(void **state)
{
    struct lt_fix *f = *state;
    struct stop_case s = {.drain = 0};
    struct timer t = {0};
    int left = 0, late;

    run_stop_case(f, &s);
    /* What the ring took is handed over; the rest waits in the backlog. */
    while (left <= NCLIENTS) {
        int fd = accept4(s.a.lfd, NULL, NULL, SOCK_NONBLOCK);

        if (fd < 0)
            break;
        close(fd);
        left++;
    }
    assert_int_equal(s.a.n + left, NCLIENTS);
    /* A stopped listener takes no more connections. */
    late = client(&s.sa);
    loop_timer_set(f->l, &t, 50, lt_on_stop_timer, NULL);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(s.a.n + left, NCLIENTS);
    close(accept4(s.a.lfd, NULL, NULL, SOCK_NONBLOCK));
    close(late);
    acc_close(&s.a);
    for (int i = 0; i < NCLIENTS; i++)
        close(s.cl[i]);
    close(s.a.lfd);
}

/* The listener stops from a callback of the iteration whose completions
 * include its ring's accepts, not yet dispatched: those connections are
 * handed over by loop_accept_stop (with io_uring; epoll leaves them in the
 * backlog), none is lost or leaked. */
struct stop_from_cb {
    struct acc a;
    int handed_by_stop;
};

static void stop_on_read(struct loop *l, int fd, void *arg, unsigned events)
{
    struct stop_from_cb *s = arg;
    int before = s->a.n;

    (void)events;
    loop_remove(l, fd);
    loop_accept_stop(l, s->a.lfd, 0);
    s->handed_by_stop = s->a.n - before;
    loop_stop(l);
}

static void test_stop_hands_over_completed(void **state)
{
    struct lt_fix *f = *state;
    struct stop_from_cb s = {.a = {.f = f, .stop_at = -1}};
    struct sockaddr_in sa;
    int cl[NCLIENTS], p[2], left = 0;

    s.a.lfd = listener(&sa, 128);
    assert_int_equal(pipe(p), 0);
    /* The pipe's poll is armed before the accepts: its completion comes
     * first, the accepts' (connections already waiting) right after. */
    assert_int_equal(loop_add(f->l, p[0], LOOP_READ, stop_on_read, &s), 0);
    assert_int_equal(loop_accept(f->l, s.a.lfd, on_accept, &s.a), 0);
    for (int i = 0; i < NCLIENTS; i++)
        cl[i] = client(&sa);
    lt_put_byte(p[1]);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    if (strcmp(loop_backend(f->l), "io_uring") == 0)
        assert_true(s.handed_by_stop > 0);
    while (left <= NCLIENTS) {
        int fd = accept4(s.a.lfd, NULL, NULL, SOCK_NONBLOCK);

        if (fd < 0)
            break;
        close(fd);
        left++;
    }
    assert_int_equal(s.a.n + left, NCLIENTS);
    acc_close(&s.a);
    for (int i = 0; i < NCLIENTS; i++)
        close(cl[i]);
    lt_close_pair(p);
    close(s.a.lfd);
}

static int open_fds(void)
{
    int n = 0;

    for (int fd = 0; fd < MAX_FDS; fd++)
        n += fcntl(fd, F_GETFD) != -1;
    return n;
}

/* Clients connect to accepts in flight, and the loop stops in the same
 * callback: the ring's accepts complete as loop_run ends, and wait in the
 * CQ, never handed over. loop_free closes them (none leaks). */
static void connect_and_stop(struct loop *l, struct timer *t, void *arg)
{
    struct stop_case *s = arg;

    (void)t;
    for (int i = 0; i < 4; i++)
        s->cl[i] = client(&s->sa);
    loop_stop(l);
}

static void test_free_closes_accepted(void **state)
{
    struct stop_case s = {.a = {.f = *state, .stop_at = -1}};
    struct timer t = {0};
    struct loop *l;
    int base = open_fds();

    l = lt_loop_new(MAX_FDS);
    assert_non_null(l);
    s.a.lfd = listener(&s.sa, 128);
    assert_int_equal(loop_accept(l, s.a.lfd, on_accept, &s.a), 0);
    loop_timer_set(l, &t, 20, connect_and_stop, &s);
    assert_int_equal(loop_run(l), 0);
    loop_free(l);
    acc_close(&s.a);
    for (int i = 0; i < 4; i++)
        close(s.cl[i]);
    close(s.a.lfd);
    assert_int_equal(open_fds(), base);
}

/* A listener stopped outside loop_run (after it, the ring's accepts in
 * flight) and closed: nothing listens on its port any more. (Its accepts
 * were left in flight on io_uring, holding the socket: a client connected,
 * and the next loop_run's accept wrote its address into the freed
 * acceptor.) */
static void test_stop_outside_run(void **state)
{
    struct lt_fix *f = *state;
    struct acc a = {.f = f, .stop_at = -1};
    struct sockaddr_in sa;
    struct timer t = {0};
    int cl;

    a.lfd = listener(&sa, 16);
    assert_int_equal(loop_accept(f->l, a.lfd, on_accept, &a), 0);
    loop_timer_set(f->l, &t, 20, lt_on_stop_timer, NULL); /* the accepts are armed */
    assert_int_equal(loop_run(f->l), 0);
    loop_accept_stop(f->l, a.lfd, 0);
    close(a.lfd);
    cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(cl >= 0);
    assert_int_equal(connect(cl, (struct sockaddr *)&sa, sizeof(sa)), -1);
    assert_int_equal(errno, ECONNREFUSED);
    close(cl);
    loop_timer_set(f->l, &t, 20, lt_on_stop_timer, NULL);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(a.n, 0);
}

/* Out of fds: the callback hears EMFILE, and can stop accepting. */
static void test_accept_emfile(void **state)
{
    struct lt_fix *f = *state;
    struct acc a = {.f = f, .stop_at = -1, .stop_on_error = 1};
    struct rlimit old, low;
    struct sockaddr_in sa;
    int cl, top;

    a.lfd = listener(&sa, 16);
    assert_int_equal(loop_accept(f->l, a.lfd, on_accept, &a), 0);
    cl = client(&sa);
    /* The lowest free fd is above every fd open now: none is left. */
    top = dup(0);
    assert_true(top >= 0);
    close(top);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)top;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_false(f->timed_out);
    assert_int_equal(a.n, 0);
    assert_true(a.errors >= 1);
    assert_int_equal(a.last_err, EMFILE);
    /* Still in the backlog for a later try. */
    top = accept4(a.lfd, NULL, NULL, SOCK_NONBLOCK);
    assert_true(top >= 0);
    close(top);
    close(cl);
    close(a.lfd);
}

struct conn_case {
    int calls;
    unsigned events;
    int err;
};

static void on_connected(struct loop *l, int fd, void *arg, unsigned events)
{
    struct conn_case *c = arg;

    c->calls++;
    c->events = events;
    c->err = loop_connect_error(l, fd);
    loop_del(l, fd, LOOP_WRITE);
    loop_stop(l);
}

/* Starts a connect of a fresh non-blocking socket to sa; returns the
 * socket and loop_connect's result in *rc. */
static int start_connect(struct lt_fix *f, const struct sockaddr_in *sa, struct conn_case *c,
                         int *rc)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(loop_set(f->l, fd, LOOP_WRITE, on_connected, c), 0);
    *rc = loop_connect(f->l, fd, (const struct sockaddr *)sa, sizeof(*sa));
    return fd;
}

static void test_connect_ok(void **state)
{
    struct lt_fix *f = *state;
    struct conn_case c = {0};
    struct sockaddr_in sa;
    int lfd = listener(&sa, 4), fd, rc, afd;

    fd = start_connect(f, &sa, &c, &rc);
    if (rc == 0) {
        loop_remove(f->l, fd); /* connected at once (epoll): nothing to wait for */
    } else {
        assert_int_equal(rc, -EINPROGRESS);
        assert_int_equal(loop_run(f->l), 0);
        assert_false(f->timed_out);
        assert_int_equal(c.calls, 1);
        assert_true(c.events & LOOP_WRITE);
        assert_false(c.events & LOOP_ERROR);
        assert_int_equal(c.err, 0);
        loop_remove(f->l, fd);
    }
    afd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
    assert_true(afd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(afd);
    close(fd);
    close(lfd);
}

static void test_connect_refused(void **state)
{
    struct lt_fix *f = *state;
    struct conn_case c = {0};
    struct sockaddr_in sa;
    int lfd = listener(&sa, 4), fd, rc;

    close(lfd); /* nothing listens on sa's port now */
    fd = start_connect(f, &sa, &c, &rc);
    if (rc != -ECONNREFUSED) {
        assert_int_equal(rc, -EINPROGRESS);
        assert_int_equal(loop_run(f->l), 0);
        assert_false(f->timed_out);
        assert_int_equal(c.calls, 1);
        assert_true(c.events & LOOP_ERROR);
        assert_int_equal(c.err, ECONNREFUSED);
    }
    loop_close(f->l, fd);
}

/* A connect that hangs (its SYN dropped: the listener's queue is full),
 * closed in flight: never reported, and the loop does not spin on it. */
static void test_connect_closed_in_flight(void **state)
{
    struct lt_fix *f = *state;
    struct conn_case c = {0};
    struct sockaddr_in sa;
    struct timer t = {0};
    int lfd = listener(&sa, 0), fill[4], fd, rc, n;

    for (n = 0; n < 4; n++) {
        fill[n] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(fill[n] >= 0);
        rc = connect(fill[n], (struct sockaddr *)&sa, sizeof(sa));
        assert_true(rc == 0 || errno == EINPROGRESS);
    }
    fd = start_connect(f, &sa, &c, &rc);
    assert_int_equal(rc, -EINPROGRESS);
    loop_timer_set(f->l, &t, 30, lt_on_stop_timer, NULL);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(c.calls, 0); /* still hanging */
    loop_close(f->l, fd);
    loop_timer_set(f->l, &t, 50, lt_on_stop_timer, NULL);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(c.calls, 0);
    for (n = 0; n < 4; n++)
        close(fill[n]);
    close(lfd);
}

/* loop_connect called inside loop_run, as conn.c calls it: on io_uring the
 * ring's connect (outside loop_run it is a plain connect()). */
struct in_loop {
    struct lt_fix *f;
    struct conn_case c;
    struct sockaddr_in sa;    /* what loop_connect is given */
    struct sockaddr_in reuse; /* written over sa once fd is closed */
    int fd, rc, close_it;
};

static void connect_from_timer(struct loop *l, struct timer *t, void *arg)
{
    struct in_loop *k = arg;

    (void)t;
    k->fd = start_connect(k->f, &k->sa, &k->c, &k->rc);
    if (k->close_it) {
        /* The memory sa lives in may go with the fd: conn.c's is the
         * route's config, freed with its last connection before the next
         * wait. Another address there now must not be connected to. */
        loop_close(l, k->fd);
        k->fd = -1;
        memcpy(&k->sa, &k->reuse, sizeof(k->sa));
        return;
    }
    if (k->rc != -EINPROGRESS)
        loop_stop(l); /* ended at once: nothing will be reported */
}

static void test_connect_in_loop(void **state)
{
    struct in_loop k = {.f = *state};
    struct timer t = {0};
    int lfd = listener(&k.sa, 4), afd;

    loop_timer_set(k.f->l, &t, 0, connect_from_timer, &k);
    assert_int_equal(loop_run(k.f->l), 0);
    assert_false(k.f->timed_out);
    if (k.rc == -EINPROGRESS) {
        assert_int_equal(k.c.calls, 1);
        assert_true(k.c.events & LOOP_WRITE);
        assert_false(k.c.events & LOOP_ERROR);
        assert_int_equal(k.c.err, 0);
    } else {
        assert_int_equal(k.rc, 0);
    }
    afd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
    assert_true(afd >= 0);
    assert_int_equal(write(k.fd, "x", 1), 1);
    loop_close(k.f->l, k.fd);
    close(afd);
    close(lfd);
}

static void test_connect_in_loop_refused(void **state)
{
    struct in_loop k = {.f = *state};
    struct timer t = {0};

    close(listener(&k.sa, 4)); /* nothing listens on sa's port now */
    loop_timer_set(k.f->l, &t, 0, connect_from_timer, &k);
    assert_int_equal(loop_run(k.f->l), 0);
    assert_false(k.f->timed_out);
    if (k.rc == -EINPROGRESS) {
        assert_int_equal(k.c.calls, 1);
        assert_true(k.c.events & LOOP_ERROR);
        assert_int_equal(k.c.err, ECONNREFUSED);
    } else {
        assert_int_equal(k.rc, -ECONNREFUSED);
    }
    loop_close(k.f->l, k.fd);
}

/* A connect closed in the callback that started it, its address then
 * overwritten: nothing connects to what is there now (on io_uring the
 * connect was queued, not submitted: it read the address at the next
 * wait, and connected to it before its cancel). */
static void test_connect_closed_before_submit(void **state)
{
    struct in_loop k = {.f = *state, .close_it = 1};
    struct timer t = {0}, stop = {0};
    int other = listener(&k.reuse, 4), afd;

    close(listener(&k.sa, 4)); /* refused, on epoll's connect() at once */
    loop_timer_set(k.f->l, &t, 0, connect_from_timer, &k);
    loop_timer_set(k.f->l, &stop, 50, lt_on_stop_timer, NULL);
    assert_int_equal(loop_run(k.f->l), 0);
    assert_int_equal(k.c.calls, 0);
    afd = accept4(other, NULL, NULL, SOCK_NONBLOCK);
    if (afd >= 0)
        close(afd);
    assert_int_equal(afd, -1);
    assert_int_equal(errno, EAGAIN);
    close(other);
}

/* TCP_NODELAY from inside the loop: set by the next iteration; on
 * io_uring with Linux 6.7+ through the ring (not yet set when the call
 * returns: that shows the path taken). */
struct nodelay_case {
    int fd, at_once, later;
    struct timer t;
};

static int nodelay_of(int fd)
{
    int v = -1;
    socklen_t len = sizeof(v);

    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    return v;
}

static void nodelay_check(struct loop *l, struct timer *t, void *arg)
{
    struct nodelay_case *n = arg;

    (void)t;
    n->later = nodelay_of(n->fd);
    loop_stop(l);
}

static void nodelay_set(struct loop *l, struct timer *t, void *arg)
{
    struct nodelay_case *n = arg;

    (void)t;
    loop_tcp_nodelay(l, n->fd);
    n->at_once = nodelay_of(n->fd);
    loop_timer_set(l, &n->t, 1, nodelay_check, n);
}

static int kernel_at_least(int major, int minor)
{
    struct utsname u;
    int ma = 0, mi = 0;

    assert_int_equal(uname(&u), 0);
    assert_true(sscanf(u.release, "%d.%d", &ma, &mi) == 2);
    return ma > major || (ma == major && mi >= minor);
}

static void test_tcp_nodelay(void **state)
{
    struct lt_fix *f = *state;
    struct nodelay_case n = {.at_once = -1, .later = -1};

    n.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(n.fd >= 0);
    assert_int_equal(nodelay_of(n.fd), 0);
    loop_timer_set(f->l, &n.t, 1, nodelay_set, &n);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(n.later, 1);
    if (strcmp(loop_backend(f->l), "io_uring") == 0 && kernel_at_least(6, 7))
        assert_int_equal(n.at_once, 0);
    else if (strcmp(loop_backend(f->l), "epoll") == 0)
        assert_int_equal(n.at_once, 1);
    close(n.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tcp_nodelay, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_accept_hands_peers, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_stop_drain_hands_everything, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_stop_without_drain, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_stop_hands_over_completed, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_accept_emfile, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_free_closes_accepted, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_stop_outside_run, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_connect_ok, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_connect_closed_in_flight, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_connect_in_loop, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_connect_in_loop_refused, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_connect_closed_before_submit, lt_setup, lt_teardown),
    };

    return LT_RUN_BOTH(tests) != 0;
}
