/*
 * test_loop_uring.c - what the io_uring backend (src/loop/loop_uring.c) had
 * to get right to keep loop.h's contract, run on both backends: a
 * completion for an fd number closed and reused is not delivered to the
 * new registration, readiness stays level-triggered, loop_close() closes,
 * timers fire on time while the loop sleeps, and the rule for a socket
 * whose peer sent its FIN (the kernel reports POLLRDHUP to every poll):
 * an fd with an empty mask or one waiting for LOOP_WRITE neither makes the
 * loop spin nor misses what it waits for. And the kernel behaviour that
 * rule rests on, checked on the ring directly.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#ifdef HAVE_URING
#include <liburing.h>
#endif

#include "loop/loop.h"
#include "looptest.h"

/* A connected TCP pair on loopback, both ends non-blocking: sv[0] the
 * connecting end, sv[1] the accepted one. small: 4 KiB send buffer on
 * sv[0] and receive buffer on sv[1], so sv[0] fills quickly. */
static void tcp_pair(int sv[2], int small)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), sz = 4096;

    assert_true(l >= 0);
    if (small)
        assert_int_equal(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)), 0);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
    sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(sv[0] >= 0);
    if (small)
        assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
    assert_int_equal(connect(sv[0], (struct sockaddr *)&sa, sizeof(sa)), 0);
    sv[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    assert_true(sv[1] >= 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    close(l);
}

/* Fills fd's send buffer (and the peer's receive buffer) until fd is not
 * writable. */
static void fill(int fd)
{
    static char buf[65536];
    struct pollfd p = {.fd = fd, .events = POLLOUT};

    for (int round = 0; round < 200; round++) {
        while (write(fd, buf, sizeof(buf)) > 0)
            ;
        while (write(fd, buf, 1) > 0)
            ;
        if (poll(&p, 1, 5) == 0)
            return;
    }
    fail_msg("could not fill the send buffer");
}

static void drain(int fd)
{
    char buf[65536];

    for (int round = 0; round < 100; round++) {
        while (read(fd, buf, sizeof(buf)) > 0)
            ;
        usleep(1000);
    }
}

/* CPU time of this thread, in milliseconds. */
static double cpu_ms(void)
{
    struct rusage ru;

    assert_int_equal(getrusage(RUSAGE_THREAD, &ru), 0);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static double wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Runs the loop for ms milliseconds; returns the CPU time it took. */
static double run_for(struct lt_fix *f, uint64_t ms)
{
    struct timer t = {0};
    double c0 = cpu_ms();

    loop_timer_set(f->l, &t, ms, lt_on_stop_timer, NULL);
    assert_int_equal(loop_run(f->l), 0);
    loop_timer_cancel(f->l, &t);
    return cpu_ms() - c0;
}

static void on_record(struct loop *l, int fd, void *arg, unsigned events)
{
    (void)l, (void)fd;
    lt_record(arg, events);
}

/* Records the events and unregisters fd: an error is reported again at
 * every iteration (level-triggered) until then. */
static void on_record_remove(struct loop *l, int fd, void *arg, unsigned events)
{
    lt_record(arg, events);
    loop_remove(l, fd);
}

/* ---- a closed and reused fd number ----------------------------------- */

struct reuse {
    struct lt_fix *f;
    int a[2], b[2], fresh[2];
    int first, victim, replaced, stale;
};

static void on_fresh(struct loop *l, int fd, void *arg, unsigned events)
{
    struct reuse *r = arg;

    (void)l, (void)fd;
    if (events & LOOP_READ)
        r->stale++; /* nothing was ever written to it */
}

/* Whichever of a and b comes first removes and closes the other, whose
 * readiness is in the same batch, and opens a socket that takes the freed
 * number: the old completion must not reach it. */
static void on_first(struct loop *l, int fd, void *arg, unsigned events)
{
    struct reuse *r = arg;
    int other = fd == r->a[0] ? r->b[0] : r->a[0];

    (void)events;
    if (r->first)
        return; /* the other one came after all: not removed in time */
    r->first = fd;
    r->victim = other;
    loop_remove(l, other);
    close(other);
    lt_sockpair(r->fresh);
    r->replaced = r->fresh[0] == other;
    assert_int_equal(loop_add(l, r->fresh[0], LOOP_READ, on_fresh, r), 0);
    loop_del(l, fd, LOOP_READ);
}

static void test_reused_fd_same_batch(void **state)
{
    struct lt_fix *f = *state;
    struct reuse r = {.f = f};

    lt_sockpair(r.a);
    lt_sockpair(r.b);
    lt_put_byte(r.a[1]);
    lt_put_byte(r.b[1]);
    assert_int_equal(loop_add(f->l, r.a[0], LOOP_READ, on_first, &r), 0);
    assert_int_equal(loop_add(f->l, r.b[0], LOOP_READ, on_first, &r), 0);
    run_for(f, 50);
    assert_true(r.first != 0);
    if (!r.replaced)
        skip();
    assert_int_equal(r.stale, 0);
    loop_remove(f->l, r.first);
    loop_remove(f->l, r.fresh[0]);
    close(r.first);
    close(r.first == r.a[0] ? r.a[1] : r.b[1]);
    close(r.first == r.a[0] ? r.b[1] : r.a[1]);
    lt_close_pair(r.fresh);
}

/* The old registration's poll is still waiting when fd is removed and its
 * number reused; then the old socket (kept open by a dup) becomes
 * readable before the next wait: its readiness must not reach the new
 * registration. */
static void test_reused_fd_later(void **state)
{
    struct lt_fix *f = *state;
    struct reuse r = {.f = f};
    int old, keep;

    lt_sockpair(r.a);
    old = r.a[0];
    assert_int_equal(loop_add(f->l, old, LOOP_READ, on_record, f), 0);
    run_for(f, 10); /* its poll is armed and waiting */
    keep = dup(old);
    assert_true(keep >= 0);
    loop_remove(f->l, old);
    close(old);
    lt_sockpair(r.fresh);
    if (r.fresh[0] != old) {
        close(keep);
        skip();
    }
    assert_int_equal(loop_add(f->l, r.fresh[0], LOOP_READ, on_fresh, &r), 0);
    lt_put_byte(r.a[1]); /* the old file is readable now */
    run_for(f, 50);
    assert_int_equal(r.stale, 0);
    assert_int_equal(f->calls, 0);
    loop_remove(f->l, r.fresh[0]);
    lt_close_pair(r.fresh);
    close(keep);
    close(r.a[1]);
}

/* ---- level-triggered ------------------------------------------------- */

static void on_read_one(struct loop *l, int fd, void *arg, unsigned events)
{
    struct lt_fix *f = arg;
    char c;

    lt_record(f, events);
    assert_int_equal(read(fd, &c, 1), 1); /* one byte of the three */
    if (f->calls == 3)
        loop_stop(l);
}

static void test_level_triggered(void **state)
{
    struct lt_fix *f = *state;
    int sv[2];

    lt_sockpair(sv);
    assert_int_equal(write(sv[1], "abc", 3), 3);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_READ, on_read_one, f), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(f->calls, 3);
    /* all read: no more calls */
    run_for(f, 30);
    assert_int_equal(f->calls, 3);
    loop_remove(f->l, sv[0]);
    lt_close_pair(sv);
}

/* Data and the FIN queued before the first wait: LOOP_RDHUP with the
 * first LOOP_READ, on TCP. */
static void test_rdhup_tcp(void **state)
{
    struct lt_fix *f = *state;
    int sv[2];

    tcp_pair(sv, 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
    usleep(10000);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_READ, lt_on_ready_stop, f), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(f->events[0], LOOP_READ | LOOP_RDHUP);
    loop_remove(f->l, sv[0]);
    lt_close_pair(sv);
}

/* ---- after the peer's FIN -------------------------------------------- */

/* An fd whose mask is empty after its peer's FIN (ppfwd's relay, relaying
 * the other way): the loop does not spin on the FIN that every poll on it
 * reports, and an error (the peer's RST) still comes as LOOP_ERROR. */
static void test_empty_mask_after_fin(void **state)
{
    struct lt_fix *f = *state;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    int sv[2];
    double cpu;

    tcp_pair(sv, 0);
    assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
    assert_int_equal(loop_add(f->l, sv[0], 0, on_record_remove, f), 0);
    cpu = run_for(f, 200);
    assert_int_equal(f->calls, 0);
    assert_true(cpu < 60.0); /* a re-armed poll completing at once: ~200 */
    assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(sv[1]); /* RST */
    run_for(f, 100);
    assert_int_equal(f->calls, 1);
    assert_true(f->events[0] & LOOP_ERROR);
    loop_remove(f->l, sv[0]);
    close(sv[0]);
}

/* An fd waiting for LOOP_WRITE on a full send buffer when its peer's FIN
 * comes (a client uploading to a server that answered and half-closed):
 * no spinning meanwhile, and LOOP_WRITE once the peer reads. A poll parked
 * on the FIN until the mask changes would never report it. */
static void test_write_after_fin(void **state)
{
    struct lt_fix *f = *state;
    int sv[2];
    double cpu;

    tcp_pair(sv, 1);
    fill(sv[0]);
    assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
    usleep(10000);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_WRITE, on_record, f), 0);
    cpu = run_for(f, 200);
    assert_int_equal(f->calls, 0);
    assert_true(cpu < 60.0);
    drain(sv[1]);
    for (int i = 0; i < 20 && f->calls == 0; i++)
        run_for(f, 20);
    assert_true(f->calls >= 1);
    assert_true(f->events[0] & LOOP_WRITE);
    /* and level-triggered again: still writable, reported again */
    f->calls = 0;
    run_for(f, 20);
    assert_true(f->calls >= 1);
    loop_remove(f->l, sv[0]);
    lt_close_pair(sv);
}

/* ---- loop_close, timers ---------------------------------------------- */

struct closing {
    int a[2], b[2];
    int closed;
};

/* a is readable: closes b, whose poll is waiting, then stops after the
 * next iteration (a timer). */
static void on_close_other(struct loop *l, int fd, void *arg, unsigned events)
{
    struct closing *c = arg;
    static struct timer t;

    (void)events;
    loop_del(l, fd, LOOP_READ);
    if (c->closed)
        return;
    c->closed = 1;
    loop_close(l, c->b[0]);
    memset(&t, 0, sizeof(t));
    loop_timer_set(l, &t, 1, lt_on_stop_timer, NULL);
}

static void test_loop_close_closes(void **state)
{
    struct lt_fix *f = *state;
    struct closing c = {0};
    char byte;

    lt_sockpair(c.a);
    lt_sockpair(c.b);
    assert_int_equal(loop_add(f->l, c.b[0], LOOP_READ, on_record, f), 0);
    run_for(f, 10); /* b's poll is waiting */
    assert_int_equal(loop_add(f->l, c.a[0], LOOP_READ, on_close_other, &c), 0);
    lt_put_byte(c.a[1]);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(c.closed, 1);
    errno = 0;
    assert_int_equal(fcntl(c.b[0], F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(read(c.b[1], &byte, 1), 0); /* EOF: the socket is gone */
    assert_int_equal(f->calls, 0);
    loop_remove(f->l, c.a[0]);
    lt_close_pair(c.a);
    close(c.b[1]);
}

struct last {
    int a[2], b[2];
};

static void on_last_iteration(struct loop *l, struct timer *t, void *arg)
{
    struct last *c = arg;

    (void)t;
    loop_remove(l, c->a[0]);
    close(c->a[0]);
    loop_close(l, c->b[0]);
    loop_stop(l);
}

/* fds whose polls are waiting, removed and closed (or loop_close()d) in
 * the iteration that stops the loop: their sockets are closed when
 * loop_run returns, not held by a poll until the next loop_run or
 * loop_free (a worker stopping on SIGTERM kept listening). */
static void test_closed_when_run_returns(void **state)
{
    struct lt_fix *f = *state;
    struct last c;
    struct timer t = {0};
    char byte;

    lt_sockpair(c.a);
    lt_sockpair(c.b);
    assert_int_equal(loop_add(f->l, c.a[0], LOOP_READ, on_record, f), 0);
    assert_int_equal(loop_add(f->l, c.b[0], LOOP_READ, on_record, f), 0);
    run_for(f, 10); /* both polls are waiting */
    loop_timer_set(f->l, &t, 1, on_last_iteration, &c);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(read(c.a[1], &byte, 1), 0);
    assert_int_equal(read(c.b[1], &byte, 1), 0);
    assert_int_equal(f->calls, 0);
    close(c.a[1]);
    close(c.b[1]);
}

/* loop_free leaves registered fds to the caller, who closes them next: by
 * then no poll of the ring holds their sockets (the ring's own teardown
 * cancels its polls later, in a kernel worker). */
static void test_closed_after_free(void **state)
{
    struct loop *l = lt_loop_new(64);
    struct lt_fix f = {0};
    char byte;
    int sv[2];

    (void)state;
    assert_non_null(l);
    lt_sockpair(sv);
    assert_int_equal(loop_add(l, sv[0], LOOP_READ, on_record, &f), 0);
    f.l = l;
    run_for(&f, 10); /* its poll is waiting */
    loop_free(l);
    close(sv[0]);
    assert_int_equal(read(sv[1], &byte, 1), 0);
    close(sv[1]);
}

static void on_timer_at(struct loop *l, struct timer *t, void *arg)
{
    (void)t;
    *(double *)arg = wall_ms();
    loop_stop(l);
}

/* A timer fires on time while the loop sleeps with a poll in flight. */
static void test_timer_while_waiting(void **state)
{
    struct lt_fix *f = *state;
    struct timer t = {0};
    double t0, fired = 0;
    int sv[2];

    lt_sockpair(sv);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_READ, on_record, f), 0);
    t0 = wall_ms();
    loop_timer_set(f->l, &t, 80, on_timer_at, &fired);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_true(fired - t0 >= 75.0);
    assert_true(fired - t0 < 300.0);
    assert_int_equal(f->calls, 0);
    loop_remove(f->l, sv[0]);
    lt_close_pair(sv);
}

/* ---- the kernel ------------------------------------------------------ */

/* What loop_uring.c's FIN rule rests on (io_uring's IO_POLL_UNMASK): a
 * one-shot poll that asks only for POLLOUT, on a socket that is not
 * writable, completes with POLLRDHUP when the peer's FIN comes, and a new
 * one completes at once. Ring only. */
static void test_kernel_rdhup_to_every_poll(void **state)
{
#ifdef HAVE_URING
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 200000000};
    struct io_uring ring;
    struct io_uring_cqe *cqe;
    struct io_uring_sqe *sqe;
    int sv[2], res;

    (void)state;
    if (lt_backend != LOOP_BACKEND_URING)
        skip();
    assert_int_equal(io_uring_queue_init(8, &ring, 0), 0);
    tcp_pair(sv, 1);
    fill(sv[0]);
    for (int round = 0; round < 2; round++) {
        sqe = io_uring_get_sqe(&ring);
        io_uring_prep_poll_add(sqe, sv[0], POLLOUT);
        assert_int_equal(io_uring_submit(&ring), 1);
        if (round == 0) {
            assert_int_equal(io_uring_wait_cqe_timeout(&ring, &cqe, &ts), -ETIME);
            assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
        }
        assert_int_equal(io_uring_wait_cqe_timeout(&ring, &cqe, &ts), 0);
        res = cqe->res;
        io_uring_cqe_seen(&ring, cqe);
        assert_int_equal(res, POLLRDHUP); /* no POLLOUT: only the FIN */
    }
    io_uring_queue_exit(&ring);
    lt_close_pair(sv);
#else
    (void)state;
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reused_fd_same_batch, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_reused_fd_later, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_level_triggered, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_rdhup_tcp, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_empty_mask_after_fin, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_write_after_fin, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_loop_close_closes, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_closed_when_run_returns, lt_setup, lt_teardown),
        cmocka_unit_test(test_closed_after_free),
        cmocka_unit_test_setup_teardown(test_timer_while_waiting, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_kernel_rdhup_to_every_poll, lt_setup, lt_teardown),
    };

    return LT_RUN_BOTH(tests);
}
