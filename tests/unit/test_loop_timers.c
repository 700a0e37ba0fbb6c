/*
 * test_loop_timers.c - the event loop's timers (ordering, re-arming,
 * cancelling, the heap invariant), stop, cross-thread wake and deferred
 * work. (fd readiness: test_loop.c; the fixture: tests/common/looptest.c.)
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

/* ---- timers ------------------------------------------------------------ */

/* A timer inside its owner, as a connection would hold it. */
struct tagged {
    struct timer t; /* first, so the timer's address is the owner's */
    struct lt_fix *f;
};

/* Appends the character in arg to the owner's log. */
static void on_log_timer(struct loop *l, struct timer *t, void *arg)
{
    struct tagged *owner = (struct tagged *)(void *)t;

    (void)l;
    lt_note(owner->f, (char)(uintptr_t)arg);
}

static void test_timer_order(void **state)
{
    struct lt_fix *f = *state;
    struct tagged a = {.f = f}, b = {.f = f}, c = {.f = f};
    struct timer end = {0};

    loop_timer_set(f->l, &a.t, 30, on_log_timer, (void *)'3');
    loop_timer_set(f->l, &b.t, 10, on_log_timer, (void *)'1');
    loop_timer_set(f->l, &c.t, 20, on_log_timer, (void *)'2');
    loop_timer_set(f->l, &end, 40, lt_on_stop_timer, NULL);
    assert_true(loop_timer_armed(&a.t) && loop_timer_armed(&b.t) && loop_timer_armed(&c.t));
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_string_equal(f->log, "123");
    assert_false(loop_timer_armed(&a.t) || loop_timer_armed(&b.t) || loop_timer_armed(&c.t));
}

struct rearm {
    struct lt_fix *f;
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
    struct lt_fix *f = *state;
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
    struct lt_fix *f = *state;
    struct zero z = {0};
    struct timer t = {0};
    int sv[2];

    lt_sockpair(sv);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_WRITE, on_count_iteration, &z), 0);
    loop_timer_set(f->l, &t, 0, on_rearm_zero, &z);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_int_equal(z.fired, 5);
    for (int i = 1; i < 5; i++)
        assert_true(z.iterations_at_fire[i] > z.iterations_at_fire[i - 1]);
    loop_remove(f->l, sv[0]);
    lt_close_pair(sv);
}

static void test_timer_cancel(void **state)
{
    struct lt_fix *f = *state;
    struct tagged a = {.f = f}, b = {.f = f};
    struct timer end = {0}, never = {0};

    /* Cancel of a zeroed, never-armed timer, and twice in a row. */
    loop_timer_cancel(f->l, &never);
    loop_timer_cancel(f->l, &never);
    assert_false(loop_timer_armed(&never));

    loop_timer_set(f->l, &a.t, 10, on_log_timer, (void *)'a');
    loop_timer_set(f->l, &b.t, 15, on_log_timer, (void *)'b');
    loop_timer_set(f->l, &end, 30, lt_on_stop_timer, NULL);
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
    struct lt_fix *f = *state;
    struct pair p = {0};
    struct timer end = {0};

    loop_timer_set(f->l, &p.t[0], 5, on_cancel_other, &p);
    loop_timer_set(f->l, &p.t[1], 5, on_cancel_other, &p);
    loop_timer_set(f->l, &end, 30, lt_on_stop_timer, NULL);
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
    struct lt_fix *f;
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
    struct lt_fix *f = *state;
    struct tagged later = {.f = f};
    int sv[2];

    lt_sockpair(sv);
    assert_int_equal(loop_add(f->l, sv[0], LOOP_WRITE, lt_on_ready_stop, f), 0);
    loop_timer_set(f->l, &later.t, 50, on_log_timer, (void *)'L');
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->nlog, 0);
    assert_true(loop_timer_armed(&later.t));
    loop_timer_cancel(f->l, &later.t);
    loop_remove(f->l, sv[0]);
    lt_close_pair(sv);
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
    struct lt_fix *f = *state;
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
    struct lt_fix *f = arg;

    lt_note(f, 'E');
    loop_stop(f->l);
}

static void defer_d(void *arg)
{
    struct lt_fix *f = arg;

    lt_note(f, 'D');
    loop_defer(f->l, &f->we, defer_e, f);
}

/* Leaves its byte unread (level-triggered: called every iteration). */
static void on_read_defers(struct loop *l, int fd, void *arg, unsigned events)
{
    struct lt_fix *f = arg;

    (void)fd;
    (void)events;
    lt_note(f, 'R');
    if (f->nlog == 1)
        loop_defer(l, &f->wd, defer_d, f);
}

static void on_timer_note(struct loop *l, struct timer *t, void *arg)
{
    (void)l;
    (void)t;
    lt_note(arg, 'T');
}

/* In one iteration: both fd callbacks and the due timer, then the deferred
 * work, including what the deferred work itself adds, before anything of the
 * next iteration. */
static void test_defer_order(void **state)
{
    struct lt_fix *f = *state;
    struct timer t = {0};
    int a[2], b[2];

    lt_sockpair(a);
    lt_sockpair(b);
    lt_put_byte(a[1]);
    lt_put_byte(b[1]);
    assert_int_equal(loop_add(f->l, a[0], LOOP_READ, on_read_defers, f), 0);
    assert_int_equal(loop_add(f->l, b[0], LOOP_READ, on_read_defers, f), 0);
    loop_timer_set(f->l, &t, 0, on_timer_note, f);
    assert_int_equal(loop_run(f->l), 0);
    assert_false(f->timed_out);
    assert_string_equal(f->log, "RRTDE");
    loop_remove(f->l, a[0]);
    loop_remove(f->l, b[0]);
    lt_close_pair(a);
    lt_close_pair(b);
}

static void free_it(void *arg)
{
    free(arg);
}

/* loop_free runs pending deferred work: LeakSanitizer checks it ran. */
static void test_free_runs_deferred(void **state)
{
    struct lt_fix *f = *state;
    struct loop_work *p = calloc(1, sizeof(*p));

    assert_non_null(p);
    loop_defer(f->l, p, free_it, p); /* frees the memory its node is in */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_timer_order, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_timer_rearm, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_timer_rearm_zero, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_timer_cancel, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_timer_cancel_from_callback, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_many_timers, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_stop_from_callback, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_wake_from_thread, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_defer_order, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_free_runs_deferred, lt_setup, lt_teardown),
    };

    return LT_RUN_BOTH(tests);
}
