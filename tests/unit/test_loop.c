/*
 * test_loop.c - the event loop (src/loop/loop.c): fd readiness and mask
 * handling on pipes and socketpairs, stale events after loop_remove, timer
 * ordering and the heap invariant, stop, cross-thread wake, deferred work.
 *
 * Every loop_run() has a safety timer (SAFETY_MS) that stops the loop and
 * flags the test as timed out, so a bug fails the test instead of hanging it.
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
#include "rng.h"

#define MAX_FDS 1024
#define SAFETY_MS 2000
#define MANY_TIMERS 10000

/* One per test: the loop, its safety timer, and what callbacks recorded. */
struct fix {
    struct loop *l;
    struct timer safety;
    int timed_out;
    int calls;
    unsigned events[16];
    char log[64];
    size_t nlog;
    struct loop_work wd, we; /* test_defer_order's deferred work */
};

static void on_safety(struct loop *l, struct timer *t, void *arg)
{
    struct fix *f = arg;

    (void)t;
    f->timed_out = 1;
    loop_stop(l);
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    f->l = loop_new(MAX_FDS);
    if (f->l == NULL) {
        free(f);
        return -1;
    }
    loop_timer_set(f->l, &f->safety, SAFETY_MS, on_safety, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;

    loop_free(f->l);
    free(f);
    return 0;
}

static void note(struct fix *f, char c)
{
    if (f->nlog + 1 < sizeof(f->log))
        f->log[f->nlog++] = c;
}

static void record(struct fix *f, unsigned events)
{
    if ((size_t)f->calls < sizeof(f->events) / sizeof(f->events[0]))
        f->events[f->calls] = events;
    f->calls++;
}

static void sockpair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
}

static void put_byte(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
}

static void close_pair(int sv[2])
{
    close(sv[0]);
    close(sv[1]);
}

/* ---- fd readiness ------------------------------------------------------ */

/* Records the events, reads what is there, and stops the loop. */
static void on_ready_stop(struct loop *l, int fd, void *arg, unsigned events)
{
    char buf[16];
    ssize_t n;

    record(arg, events);
    if (events & LOOP_READ) {
        n = read(fd, buf, sizeof(buf));
        assert_true(n > 0);
    }
    loop_stop(l);
}

static void test_read_readiness(void **state)
{
    struct fix *f = *state;
    int p[2];

    assert_int_equal(pipe(p), 0);
    assert_int_equal(loop_add(f->l, p[0], LOOP_READ, on_ready_stop, f), 0);
    put_byte(p[1]);
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
    struct fix *f = *state;
    int sv[2];

    sockpair(sv);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_WRITE, on_ready_stop, f), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->events[0], LOOP_WRITE);
    loop_remove(f->l, sv[0]);
    close_pair(sv);
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
    struct fix *f = *state;
    int sv[2];

    sockpair(sv);
    put_byte(sv[1]);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_READ, on_never, NULL), 0);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_WRITE, on_ready_stop, f), 0);
    /* Unchanged mask: no syscall needed, still succeeds. */
    assert_int_equal(loop_add(f->l, sv[0], LOOP_READ, on_ready_stop, f), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->events[0], LOOP_READ | LOOP_WRITE);
    loop_remove(f->l, sv[0]);
    close_pair(sv);
}

static void on_ready_count(struct loop *l, int fd, void *arg, unsigned events)
{
    (void)l;
    (void)fd;
    record(arg, events);
}

static void on_stop_timer(struct loop *l, struct timer *t, void *arg)
{
    (void)t;
    (void)arg;
    loop_stop(l);
}

/* Runs the loop for about ms milliseconds. */
static void run_for(struct fix *f, uint64_t ms)
{
    struct timer end = {0};

    loop_timer_set(f->l, &end, ms, on_stop_timer, NULL);
    assert_int_equal(loop_run(f->l), 0);
    loop_timer_cancel(f->l, &end);
    assert_false(f->timed_out);
}

static void test_del_stops_delivery(void **state)
{
    struct fix *f = *state;
    int sv[2];

    sockpair(sv);
    put_byte(sv[1]);
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
    assert_int_equal(loop_add(f->l, sv[0], LOOP_READ, on_ready_stop, f), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->events[0], LOOP_READ);
    loop_remove(f->l, sv[0]);
    close_pair(sv);
}

/* Two readable fds in one batch. Whichever callback runs first removes both
 * fds, closes the other one and puts a fresh readable socket under its number
 * with a new callback: the stale event of the batch must reach neither the
 * old callback nor the new registration. */
struct remove_case {
    struct fix *f;
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

    sockpair(rc.a);
    sockpair(rc.b);
    sockpair(rc.fresh);
    put_byte(rc.a[1]);
    put_byte(rc.b[1]);
    put_byte(rc.fresh[1]);
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
    close_pair(rc.a);
    close_pair(rc.b);
    close_pair(rc.fresh);
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
    struct fix *f = *state;
    struct narrow_case nc = {0};

    sockpair(nc.a);
    sockpair(nc.b);
    put_byte(nc.a[1]);
    put_byte(nc.b[1]);
    assert_int_equal(loop_add(f->l, nc.a[0], LOOP_READ, on_narrow_other, &nc), 0);
    assert_int_equal(loop_add(f->l, nc.b[0], LOOP_READ, on_narrow_other, &nc), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(nc.calls, 1);
    loop_remove(f->l, nc.a[0]);
    loop_remove(f->l, nc.b[0]);
    close_pair(nc.a);
    close_pair(nc.b);
}

/* loop_remove after close(): epoll_ctl says EBADF, which is tolerated, and
 * the number can be registered again. */
static void test_remove_after_close(void **state)
{
    struct fix *f = *state;
    int sv[2], fd;

    sockpair(sv);
    fd = sv[0];
    assert_int_equal(loop_add(f->l, fd, LOOP_READ, on_ready_count, f), 0);
    close(sv[0]);
    loop_remove(f->l, fd);
    loop_remove(f->l, fd);
    sockpair(sv);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_WRITE, on_ready_stop, f), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(f->calls, 1);
    loop_remove(f->l, sv[0]);
    close_pair(sv);
}

static void test_error_on_peer_close(void **state)
{
    struct fix *f = *state;
    int sv[2];

    sockpair(sv);
    /* Empty interest: LOOP_ERROR must come all the same. */
    assert_int_equal(loop_add(f->l, sv[0], 0, on_ready_stop, f), 0);
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
    struct fix *f = *state;
    int sv[2];

    sockpair(sv);
    assert_int_equal(loop_set_cb(f->l, sv[0], on_ready_stop, f), -ENOENT);
    assert_int_equal(loop_set_cb(f->l, MAX_FDS, on_ready_stop, f), -EINVAL);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_READ, on_never, NULL), 0);
    assert_int_equal(loop_set_cb(f->l, sv[0], on_ready_stop, f), 0);
    put_byte(sv[1]);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->events[0], LOOP_READ);
    loop_remove(f->l, sv[0]);
    assert_int_equal(loop_set_cb(f->l, sv[0], on_never, NULL), -ENOENT);
    close_pair(sv);
}

/* Records the events and stops the loop, reading nothing. */
static void on_record_stop(struct loop *l, int fd, void *arg, unsigned events)
{
    (void)fd;
    record(arg, events);
    loop_stop(l);
}

/* The peer's FIN comes as LOOP_READ | LOOP_RDHUP to a reader (with or
 * without data before it), and not at all to a writer: EPOLLRDHUP is asked
 * for only with EPOLLIN. */
static void test_rdhup(void **state)
{
    struct fix *f = *state;
    int sv[2];

    sockpair(sv);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_READ, on_record_stop, f), 0);
    put_byte(sv[1]);
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
    close_pair(sv);
}

/* A refused TCP connect is EPOLLERR: LOOP_ERROR | LOOP_SOCKERR, with the
 * error in SO_ERROR; a plain hang-up (test_error_on_peer_close) has no
 * LOOP_SOCKERR. */
static void test_sockerr(void **state)
{
    struct fix *f = *state;
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
    struct fix *f = *state;

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

/* ---- timers ------------------------------------------------------------ */

/* A timer inside its owner, as a connection would hold it. */
struct tagged {
    struct timer t; /* first, so the timer's address is the owner's */
    struct fix *f;
};

/* Appends the character in arg to the owner's log. */
static void on_log_timer(struct loop *l, struct timer *t, void *arg)
{
    struct tagged *owner = (struct tagged *)(void *)t;

    (void)l;
    note(owner->f, (char)(uintptr_t)arg);
}

static void test_timer_order(void **state)
{
    struct fix *f = *state;
    struct tagged a = {.f = f}, b = {.f = f}, c = {.f = f};
    struct timer end = {0};

    loop_timer_set(f->l, &a.t, 30, on_log_timer, (void *)'3');
    loop_timer_set(f->l, &b.t, 10, on_log_timer, (void *)'1');
    loop_timer_set(f->l, &c.t, 20, on_log_timer, (void *)'2');
    loop_timer_set(f->l, &end, 40, on_stop_timer, NULL);
    assert_true(loop_timer_armed(&a.t) && loop_timer_armed(&b.t) && loop_timer_armed(&c.t));
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_string_equal(f->log, "123");
    assert_false(loop_timer_armed(&a.t) || loop_timer_armed(&b.t) || loop_timer_armed(&c.t));
}

struct rearm {
    struct fix *f;
    int fired;
    uint64_t last_now;
};

static void on_rearm(struct loop *l, struct timer *t, void *arg)
{
    struct rearm *r = arg;

    assert_false(loop_timer_armed(t));
    assert_true(loop_now(l) >= t->when);
    r->fired++;
    r->last_now = loop_now(l);
    if (r->fired < 5)
        loop_timer_set(l, t, 5, on_rearm, r);
    else
        loop_stop(l);
}

static void test_timer_rearm(void **state)
{
    struct fix *f = *state;
    struct rearm r = {.f = f};
    struct timer t = {0};
    uint64_t start = loop_now(f->l);

    loop_timer_set(f->l, &t, 5, on_rearm, &r);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(r.fired, 5);
    assert_true(r.last_now - start >= 25);
}

/* Counts the iterations: a writable socket is ready in every one. */
struct zero {
    int iterations;
    int fired;
    int iterations_at_fire[5];
};

static void on_count_iteration(struct loop *l, int fd, void *arg, unsigned events)
{
    (void)l;
    (void)fd;
    (void)events;
    ((struct zero *)arg)->iterations++;
}

static void on_rearm_zero(struct loop *l, struct timer *t, void *arg)
{
    struct zero *z = arg;

    z->iterations_at_fire[z->fired++] = z->iterations;
    if (z->fired < 5)
        loop_timer_set(l, t, 0, on_rearm_zero, z);
    else
        loop_stop(l);
}

/* Re-armed with 0 ms from its own callback, a timer would be due again at
 * once and spin inside one timer phase: it must wait for the next iteration,
 * so fd events keep being served in between. */
static void test_timer_rearm_zero(void **state)
{
    struct fix *f = *state;
    struct zero z = {0};
    struct timer t = {0};
    int sv[2];

    sockpair(sv);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_WRITE, on_count_iteration, &z), 0);
    loop_timer_set(f->l, &t, 0, on_rearm_zero, &z);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(z.fired, 5);
    for (int i = 1; i < 5; i++)
        assert_true(z.iterations_at_fire[i] > z.iterations_at_fire[i - 1]);
    loop_remove(f->l, sv[0]);
    close_pair(sv);
}

static void test_timer_cancel(void **state)
{
    struct fix *f = *state;
    struct tagged a = {.f = f}, b = {.f = f};
    struct timer end = {0}, never = {0};

    /* Cancel of a zeroed, never-armed timer, and twice in a row. */
    loop_timer_cancel(f->l, &never);
    loop_timer_cancel(f->l, &never);
    assert_false(loop_timer_armed(&never));

    loop_timer_set(f->l, &a.t, 10, on_log_timer, (void *)'a');
    loop_timer_set(f->l, &b.t, 15, on_log_timer, (void *)'b');
    loop_timer_set(f->l, &end, 30, on_stop_timer, NULL);
    loop_timer_cancel(f->l, &a.t);
    assert_false(loop_timer_armed(&a.t));
    loop_timer_cancel(f->l, &a.t);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_string_equal(f->log, "b");
}

/* Two timers due in the same phase: the first to run cancels the other. */
struct pair {
    struct timer t[2];
    int fired;
};

static void on_cancel_other(struct loop *l, struct timer *t, void *arg)
{
    struct pair *p = arg;

    p->fired++;
    loop_timer_cancel(l, t == &p->t[0] ? &p->t[1] : &p->t[0]);
    loop_timer_cancel(l, t); /* itself: already popped, harmless */
}

static void test_timer_cancel_from_callback(void **state)
{
    struct fix *f = *state;
    struct pair p = {0};
    struct timer end = {0};

    loop_timer_set(f->l, &p.t[0], 5, on_cancel_other, &p);
    loop_timer_set(f->l, &p.t[1], 5, on_cancel_other, &p);
    loop_timer_set(f->l, &end, 30, on_stop_timer, NULL);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(p.fired, 1);
    assert_false(loop_timer_armed(&p.t[0]) || loop_timer_armed(&p.t[1]));
}

/* The heap as seen from the timers alone: the armed ones must hold the
 * positions 1..n exactly once, and each one's parent (idx / 2) must not
 * expire later than it. */
static void check_heap(struct timer *const *all, size_t n_all)
{
    struct timer **heap = calloc(n_all + 1, sizeof(*heap));
    size_t n = 0;

    assert_non_null(heap);
    for (size_t i = 0; i < n_all; i++) {
        if (all[i]->idx == 0)
            continue;
        n++;
        assert_true(all[i]->idx <= n_all);
        assert_null(heap[all[i]->idx]);
        heap[all[i]->idx] = all[i];
    }
    for (size_t k = 1; k <= n; k++) {
        assert_non_null(heap[k]);
        if (k > 1)
            assert_true(heap[k / 2]->when <= heap[k]->when);
    }
    free(heap);
}

struct many {
    struct fix *f;
    struct timer t[MANY_TIMERS];
    struct timer *all[MANY_TIMERS + 1]; /* the timers plus the safety timer */
    int armed;
    int fired;
    uint64_t last_when;
};

static void on_many(struct loop *l, struct timer *t, void *arg)
{
    struct many *m = arg;

    assert_true(t->when >= m->last_when);
    assert_true(loop_now(l) >= t->when);
    m->last_when = t->when;
    if (++m->fired % 1000 == 0)
        check_heap(m->all, MANY_TIMERS + 1);
    if (m->fired == m->armed)
        loop_stop(l);
}

static void test_many_timers(void **state)
{
    struct many *m = calloc(1, sizeof(*m));
    struct rng r = {0x2545F4914F6CDD1DULL};

    assert_non_null(m);
    m->f = *state;
    for (size_t i = 0; i < MANY_TIMERS; i++) {
        m->all[i] = &m->t[i];
        loop_timer_set(m->f->l, &m->t[i], rng_below(&r, 200), on_many, m);
    }
    m->all[MANY_TIMERS] = &m->f->safety;
    check_heap(m->all, MANY_TIMERS + 1);
    /* Cancel about half, and move a few of the others (re-arming an armed
     * timer moves it up or down the heap). */
    m->armed = MANY_TIMERS;
    for (size_t i = 0; i < MANY_TIMERS; i++) {
        unsigned roll = rng_below(&r, 8);

        if (roll < 4 && loop_timer_armed(&m->t[i])) {
            loop_timer_cancel(m->f->l, &m->t[i]);
            m->armed--;
        } else if (roll == 4) {
            loop_timer_set(m->f->l, &m->t[i], rng_below(&r, 200), on_many, m);
        }
    }
    check_heap(m->all, MANY_TIMERS + 1);
    assert_true(m->armed > MANY_TIMERS / 3 && m->armed < MANY_TIMERS * 2 / 3);
    assert_int_equal(loop_run(m->f->l), 0);
    assert_false(m->f->timed_out);
    assert_int_equal(m->fired, m->armed);
    for (size_t i = 0; i < MANY_TIMERS; i++)
        assert_false(loop_timer_armed(&m->t[i]));
    free(m);
}

/* ---- stop, wake, defer ------------------------------------------------- */

static void test_stop_from_callback(void **state)
{
    struct fix *f = *state;
    struct tagged later = {.f = f};
    int sv[2];

    sockpair(sv);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_WRITE, on_ready_stop, f), 0);
    loop_timer_set(f->l, &later.t, 50, on_log_timer, (void *)'L');
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->nlog, 0);
    assert_true(loop_timer_armed(&later.t));
    loop_timer_cancel(f->l, &later.t);
    loop_remove(f->l, sv[0]);
    close_pair(sv);
}

struct wake {
    struct loop *l;
    pthread_t loop_thread;
    int woken;
    int in_loop_thread;
};

static void on_wake(struct loop *l, void *arg)
{
    struct wake *w = arg;

    w->woken++;
    w->in_loop_thread = pthread_equal(pthread_self(), w->loop_thread);
    loop_stop(l);
}

static void *waker(void *arg)
{
    struct wake *w = arg;
    struct timespec ts = {0, 50 * 1000 * 1000};

    /* Late enough that the loop is blocked in epoll_wait. */
    nanosleep(&ts, NULL);
    loop_wake(w->l);
    return NULL;
}

static void test_wake_from_thread(void **state)
{
    struct fix *f = *state;
    struct wake w = {.l = f->l, .loop_thread = pthread_self()};
    pthread_t th;
    uint64_t start = loop_now(f->l);

    loop_on_wake(f->l, on_wake, &w);
    assert_int_equal(pthread_create(&th, NULL, waker, &w), 0);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_false(f->timed_out);
    assert_int_equal(w.woken, 1);
    assert_true(w.in_loop_thread);
    assert_true(loop_now(f->l) - start < SAFETY_MS / 2);
}

static void defer_e(void *arg)
{
    struct fix *f = arg;

    note(f, 'E');
    loop_stop(f->l);
}

static void defer_d(void *arg)
{
    struct fix *f = arg;

    note(f, 'D');
    loop_defer(f->l, &f->we, defer_e, f);
}

/* Leaves its byte unread (level-triggered: called every iteration). */
static void on_read_defers(struct loop *l, int fd, void *arg, unsigned events)
{
    struct fix *f = arg;

    (void)fd;
    (void)events;
    note(f, 'R');
    if (f->nlog == 1)
        loop_defer(l, &f->wd, defer_d, f);
}

static void on_timer_note(struct loop *l, struct timer *t, void *arg)
{
    (void)l;
    (void)t;
    note(arg, 'T');
}

/* In one iteration: both fd callbacks and the due timer, then the deferred
 * work, including what the deferred work itself adds, before anything of the
 * next iteration. */
static void test_defer_order(void **state)
{
    struct fix *f = *state;
    struct timer t = {0};
    int a[2], b[2];

    sockpair(a);
    sockpair(b);
    put_byte(a[1]);
    put_byte(b[1]);
    assert_int_equal(loop_add(f->l, a[0], LOOP_READ, on_read_defers, f), 0);
    assert_int_equal(loop_add(f->l, b[0], LOOP_READ, on_read_defers, f), 0);
    loop_timer_set(f->l, &t, 0, on_timer_note, f);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_string_equal(f->log, "RRTDE");
    loop_remove(f->l, a[0]);
    loop_remove(f->l, b[0]);
    close_pair(a);
    close_pair(b);
}

static void free_it(void *arg)
{
    free(arg);
}

/* loop_free runs pending deferred work: LeakSanitizer checks it ran. */
static void test_free_runs_deferred(void **state)
{
    struct fix *f = *state;
    struct loop_work *p = calloc(1, sizeof(*p));

    assert_non_null(p);
    loop_defer(f->l, p, free_it, p); /* frees the memory its node is in */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_readiness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_readiness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mask_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_del_stops_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_del_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_after_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_on_peer_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_cb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rdhup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sockerr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_einval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_rearm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_rearm_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_cancel_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_timers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wake_from_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defer_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_runs_deferred, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
