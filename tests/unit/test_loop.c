/*
 * test_loop.c - the event loop (src/loop/loop.c), fd readiness: mask
 * handling on pipes and socketpairs, stale events after loop_del and
 * loop_remove, errors. (Timers, stop, wake and deferred work:
 * test_loop_timers.c; the fixture: tests/common/looptest.c.)
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop/loop.h"
#include "looptest.h"
#include "rng.h"

/* ---- fd readiness ------------------------------------------------------ */

static void test_read_readiness(void **state)
{
    struct lt_fix *f = *state;
    int p[2];

    assert_int_equal(pipe(p), 0);
    assert_int_equal(loop_add(f->l, p[0], LOOP_READ, lt_on_ready_stop, f), 0);
    lt_put_byte(p[1]);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->events[0], LOOP_READ);
    loop_remove(f->l, p[0]);
    close(p[0]);
    close(p[1]);
}

static void test_write_readiness(void **state)
{
    struct lt_fix *f = *state;
    int sv[2];

    lt_sockpair(sv);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_WRITE, lt_on_ready_stop, f), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->events[0], LOOP_WRITE);
    loop_remove(f->l, sv[0]);
    lt_close_pair(sv);
}

static void on_never(struct loop *l, int fd, void *arg, unsigned events)
{
    (void)l;
    (void)fd;
    (void)arg;
    (void)events;
    fail_msg("callback replaced by a later loop_add was called");
}

/* A second loop_add on a registered fd must be a MOD (an ADD would fail with
 * EEXIST), merge the masks and replace cb/arg. */
static void test_mask_merge(void **state)
{
    struct lt_fix *f = *state;
    int sv[2];

    lt_sockpair(sv);
    lt_put_byte(sv[1]);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_READ, on_never, NULL), 0);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_WRITE, lt_on_ready_stop, f), 0);
    /* Unchanged mask: no syscall needed, still succeeds. */
    assert_int_equal(loop_add(f->l, sv[0], LOOP_READ, lt_on_ready_stop, f), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->events[0], LOOP_READ | LOOP_WRITE);
    loop_remove(f->l, sv[0]);
    lt_close_pair(sv);
}

static void on_ready_count(struct loop *l, int fd, void *arg, unsigned events)
{
    (void)l;
    (void)fd;
    lt_record(arg, events);
}

/* Runs the loop for about ms milliseconds. */
static void run_for(struct lt_fix *f, uint64_t ms)
{
    struct timer end = {0};

    loop_timer_set(f->l, &end, ms, lt_on_stop_timer, NULL);
    assert_int_equal(loop_run(f->l), 0);
    loop_timer_cancel(f->l, &end);
    assert_false(f->timed_out);
}

static void test_del_stops_delivery(void **state)
{
    struct lt_fix *f = *state;
    int sv[2];

    lt_sockpair(sv);
    lt_put_byte(sv[1]);
    assert_int_equal(loop_del(f->l, sv[0], LOOP_READ), -ENOENT);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_READ | LOOP_WRITE, on_ready_count, f), 0);
    assert_int_equal(loop_del(f->l, sv[0], LOOP_READ), 0);
    run_for(f, 20);
    assert_true(f->calls >= 1);
    for (int i = 0; i < f->calls && i < 16; i++)
        assert_int_equal(f->events[i], LOOP_WRITE);

    /* Empty mask: still registered, but nothing readable or writable is
     * delivered although both are ready. */
    f->calls = 0;
    assert_int_equal(loop_del(f->l, sv[0], LOOP_WRITE), 0);
    assert_int_equal(loop_del(f->l, sv[0], LOOP_WRITE), 0);
    run_for(f, 20);
    assert_int_equal(f->calls, 0);

    /* Re-adding after an empty mask is a MOD of a still-registered fd. */
    assert_int_equal(loop_add(f->l, sv[0], LOOP_READ, lt_on_ready_stop, f), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->events[0], LOOP_READ);
    loop_remove(f->l, sv[0]);
    lt_close_pair(sv);
}

/* Two readable fds in one batch. Whichever callback runs first removes both
 * fds, closes the other one and puts a fresh readable socket under its number
 * with a new callback: the stale event of the batch must reach neither the
 * old callback nor the new registration. */
struct remove_case {
    struct lt_fix *f;
    int a[2], b[2], fresh[2];
    int first_calls;
    int fresh_calls;
    int iteration_done; /* set by deferred work at the end of iteration 1 */
    struct loop_work done_work;
    int fresh_saw_done;
};

static void mark_done(void *arg)
{
    ((struct remove_case *)arg)->iteration_done = 1;
}

static void on_fresh(struct loop *l, int fd, void *arg, unsigned events)
{
    struct remove_case *rc = arg;
    char c;

    (void)events;
    rc->fresh_calls++;
    rc->fresh_saw_done = rc->iteration_done;
    assert_int_equal(read(fd, &c, 1), 1);
    loop_stop(l);
}

static void on_first_removes(struct loop *l, int fd, void *arg, unsigned events)
{
    struct remove_case *rc = arg;
    int other = fd == rc->a[0] ? rc->b[0] : rc->a[0];

    (void)events;
    rc->first_calls++;
    if (rc->first_calls > 1)
        return;
    loop_remove(l, fd);
    loop_remove(l, other);
    /* dup2 reuses other's number: the kernel's view of the batch for that
     * number is stale, the new socket is not what was reported ready. */
    assert_int_equal(dup2(rc->fresh[0], other), other);
    assert_int_equal(loop_add(l, other, LOOP_READ, on_fresh, rc), 0);
    loop_defer(l, &rc->done_work, mark_done, rc);
}

static void test_remove_in_callback(void **state)
{
    struct remove_case rc = {.f = *state};
    struct loop *l = rc.f->l;

    lt_sockpair(rc.a);
    lt_sockpair(rc.b);
    lt_sockpair(rc.fresh);
    lt_put_byte(rc.a[1]);
    lt_put_byte(rc.b[1]);
    lt_put_byte(rc.fresh[1]);
    assert_int_equal(loop_add(l, rc.a[0], LOOP_READ, on_first_removes, &rc), 0);
    assert_int_equal(loop_add(l, rc.b[0], LOOP_READ, on_first_removes, &rc), 0);
    assert_int_equal(loop_run(l), 0);
    assert_false(rc.f->timed_out);
    assert_int_equal(rc.first_calls, 1);
    /* The fresh registration was served, but only from the next iteration. */
    assert_int_equal(rc.fresh_calls, 1);
    assert_true(rc.fresh_saw_done);
    loop_remove(l, rc.a[0]);
    loop_remove(l, rc.b[0]);
    lt_close_pair(rc.a);
    lt_close_pair(rc.b);
    lt_close_pair(rc.fresh);
}

/* Two readable fds in one batch; whichever callback runs first drops READ
 * from the other one, whose pending READ must then not be delivered. */
struct narrow_case {
    int a[2], b[2];
    int calls;
};

static void on_narrow_other(struct loop *l, int fd, void *arg, unsigned events)
{
    struct narrow_case *nc = arg;
    int other = fd == nc->a[0] ? nc->b[0] : nc->a[0];

    (void)events;
    nc->calls++;
    assert_int_equal(loop_del(l, other, LOOP_READ), 0);
    assert_int_equal(loop_del(l, fd, LOOP_READ), 0);
    loop_stop(l);
}

static void test_del_in_callback(void **state)
{
    struct lt_fix *f = *state;
    struct narrow_case nc = {0};

    lt_sockpair(nc.a);
    lt_sockpair(nc.b);
    lt_put_byte(nc.a[1]);
    lt_put_byte(nc.b[1]);
    assert_int_equal(loop_add(f->l, nc.a[0], LOOP_READ, on_narrow_other, &nc), 0);
    assert_int_equal(loop_add(f->l, nc.b[0], LOOP_READ, on_narrow_other, &nc), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(nc.calls, 1);
    loop_remove(f->l, nc.a[0]);
    loop_remove(f->l, nc.b[0]);
    lt_close_pair(nc.a);
    lt_close_pair(nc.b);
}

/* loop_remove after close(): epoll_ctl says EBADF, which is tolerated, and
 * the number can be registered again. */
static void test_remove_after_close(void **state)
{
    struct lt_fix *f = *state;
    int sv[2], fd;

    lt_sockpair(sv);
    fd = sv[0];
    assert_int_equal(loop_add(f->l, fd, LOOP_READ, on_ready_count, f), 0);
    close(sv[0]);
    loop_remove(f->l, fd);
    loop_remove(f->l, fd);
    lt_sockpair(sv);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_WRITE, lt_on_ready_stop, f), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(f->calls, 1);
    loop_remove(f->l, sv[0]);
    lt_close_pair(sv);
}

static void test_error_on_peer_close(void **state)
{
    struct lt_fix *f = *state;
    int sv[2];

    lt_sockpair(sv);
    /* Empty interest: LOOP_ERROR must come all the same. */
    assert_int_equal(loop_add(f->l, sv[0], 0, lt_on_ready_stop, f), 0);
    close(sv[1]);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->events[0], LOOP_ERROR);
    loop_remove(f->l, sv[0]);
    close(sv[0]);
}

/* loop_set_cb hands a registered fd to another callback with its interest
 * as it was; an fd that is not registered stays so. */
static void test_set_cb(void **state)
{
    struct lt_fix *f = *state;
    int sv[2];

    lt_sockpair(sv);
    assert_int_equal(loop_set_cb(f->l, sv[0], lt_on_ready_stop, f), -ENOENT);
    assert_int_equal(loop_set_cb(f->l, MAX_FDS, lt_on_ready_stop, f), -EINVAL);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_READ, on_never, NULL), 0);
    assert_int_equal(loop_set_cb(f->l, sv[0], lt_on_ready_stop, f), 0);
    lt_put_byte(sv[1]);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->events[0], LOOP_READ);
    loop_remove(f->l, sv[0]);
    assert_int_equal(loop_set_cb(f->l, sv[0], on_never, NULL), -ENOENT);
    lt_close_pair(sv);
}

/* Records the events and stops the loop, reading nothing. */
static void on_record_stop(struct loop *l, int fd, void *arg, unsigned events)
{
    (void)fd;
    lt_record(arg, events);
    loop_stop(l);
}

/* The peer's FIN comes as LOOP_READ | LOOP_RDHUP to a reader (with or
 * without data before it), and not at all to a writer: EPOLLRDHUP is asked
 * for only with EPOLLIN. */
static void test_rdhup(void **state)
{
    struct lt_fix *f = *state;
    int sv[2];

    lt_sockpair(sv);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_READ, on_record_stop, f), 0);
    lt_put_byte(sv[1]);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(f->events[0], LOOP_READ);
    assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(f->events[1], LOOP_READ | LOOP_RDHUP);
    /* Narrowed to writing: neither EPOLLIN nor EPOLLRDHUP comes. */
    assert_int_equal(loop_set(f->l, sv[0], LOOP_WRITE, on_record_stop, f), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(f->calls, 3);
    assert_int_equal(f->events[2], LOOP_WRITE);
    loop_remove(f->l, sv[0]);
    lt_close_pair(sv);
}

/* A refused TCP connect is EPOLLERR: LOOP_ERROR | LOOP_SOCKERR, with the
 * error in SO_ERROR; a plain hang-up (test_error_on_peer_close) has no
 * LOOP_SOCKERR. */
static void test_sockerr(void **state)
{
    struct lt_fix *f = *state;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int closed = socket(AF_INET, SOCK_STREAM, 0), fd, err = 0;

    /* Bound, not listening: the port is ours and refuses connections. */
    assert_true(closed >= 0);
    assert_int_equal(bind(closed, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(closed, (struct sockaddr *)&sa, &len), 0);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
        assert_int_equal(errno, EINPROGRESS);
    assert_int_equal(loop_add(f->l, fd, LOOP_WRITE, on_record_stop, f), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->events[0] & (LOOP_ERROR | LOOP_SOCKERR), LOOP_ERROR | LOOP_SOCKERR);
    len = sizeof(err);
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
    assert_int_equal(err, ECONNREFUSED);
    loop_remove(f->l, fd);
    close(fd);
    close(closed);
}

static void test_einval(void **state)
{
    struct lt_fix *f = *state;

    assert_int_equal(loop_add(f->l, MAX_FDS, LOOP_READ, on_never, NULL), -EINVAL);
    assert_int_equal(loop_add(f->l, MAX_FDS + 100, LOOP_READ, on_never, NULL), -EINVAL);
    assert_int_equal(loop_add(f->l, -1, LOOP_READ, on_never, NULL), -EINVAL);
    assert_int_equal(loop_add(f->l, 0, 0x80u, on_never, NULL), -EINVAL);
    assert_int_equal(loop_del(f->l, MAX_FDS, LOOP_READ), -EINVAL);
    assert_int_equal(loop_del(f->l, -1, LOOP_READ), -EINVAL);
    loop_remove(f->l, MAX_FDS);
    loop_remove(f->l, -1);
    errno = 0;
    assert_null(loop_new(0));
    assert_int_equal(errno, EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_readiness, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_write_readiness, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_mask_merge, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_del_stops_delivery, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_remove_in_callback, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_del_in_callback, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_remove_after_close, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_error_on_peer_close, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_set_cb, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_rdhup, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_sockerr, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_einval, lt_setup, lt_teardown),
    };

    return LT_RUN_BOTH(tests);
}
