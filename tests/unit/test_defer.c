/*
 * test_defer.c - deferred work of the event loop (src/loop/loop.c) cannot
 * fail (issue 10, item 13): it lives in the caller's struct, so deferring
 * allocates nothing. Before, loop_defer() could fail with ENOMEM when its
 * queue had to grow, and every caller then freed its connection at once,
 * while other callbacks of the same iteration still held it.
 *  - 100,000 objects freed by deferred work in one iteration, each still
 *    readable by a later callback of that iteration (ASan would report a use
 *    after free), all freed at the end of it, in order;
 *  - the same work deferred twice runs once;
 *  - work deferred by deferred work runs in the same drain, and the memory
 *    a node lives in may be freed by its own work.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop/loop.h"
#include "looptest.h"

#define NOBJ 100000

struct obj {
    struct loop_work free_work;
    int id;
    int *freed; /* ids in the order they were freed */
    size_t *nfreed;
};

struct fix {
    struct loop *l;
    struct obj **objs;
    int freed[NOBJ + 8];
    size_t nfreed;
    int seen_after; /* objects a later callback of the iteration could read */
    struct timer t1, t2;
    struct loop_work twice, chain1, chain2;
    int twice_runs, chain;
};

static void obj_free(void *arg)
{
    struct obj *o = arg;

    o->freed[(*o->nfreed)++] = o->id;
    memset(o, 0xAB, sizeof(*o)); /* a later reader would see garbage, or ASan a free */
    free(o);
}

/* First timer: "closes" every object: deferred frees, as conn_close does. */
static void close_all(struct loop *l, struct timer *t, void *arg)
{
    struct fix *f = arg;

    (void)t;
    for (int i = 0; i < NOBJ; i++)
        loop_defer(l, &f->objs[i]->free_work, obj_free, f->objs[i]);
}

/* Second timer, same iteration: the objects are still there. */
static void read_all(struct loop *l, struct timer *t, void *arg)
{
    struct fix *f = arg;

    (void)t;
    for (int i = 0; i < NOBJ; i++)
        f->seen_after += f->objs[i]->id == i;
    assert_int_equal(f->nfreed, 0);
    loop_stop(l);
}

static void test_many_deferred_frees(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    (void)state;
    assert_non_null(f);
    assert_non_null(f->l = lt_loop_new(64));
    assert_non_null(f->objs = calloc(NOBJ, sizeof(*f->objs)));
    for (int i = 0; i < NOBJ; i++) {
        struct obj *o = calloc(1, sizeof(*o));

        assert_non_null(o);
        o->id = i;
        o->freed = f->freed;
        o->nfreed = &f->nfreed;
        f->objs[i] = o;
    }
    loop_timer_set(f->l, &f->t1, 0, close_all, f);
    loop_timer_set(f->l, &f->t2, 0, read_all, f);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(f->seen_after, NOBJ);
    assert_int_equal(f->nfreed, NOBJ);
    for (int i = 0; i < NOBJ; i++)
        assert_int_equal(f->freed[i], i);
    loop_free(f->l);
    free(f->objs);
    free(f);
}

static void count_twice(void *arg)
{
    ((struct fix *)arg)->twice_runs++;
}

static void chain_2(void *arg)
{
    struct fix *f = arg;

    f->chain = f->chain * 10 + 2;
    loop_stop(f->l);
}

static void chain_1(void *arg)
{
    struct fix *f = arg;

    f->chain = f->chain * 10 + 1;
    loop_defer(f->l, &f->chain2, chain_2, f);
    /* Deferred again from its own run: it was unlinked, so it queues. */
    loop_defer(f->l, &f->twice, count_twice, f);
}

static void defer_them(struct loop *l, struct timer *t, void *arg)
{
    struct fix *f = arg;

    (void)t;
    loop_defer(l, &f->twice, count_twice, f);
    loop_defer(l, &f->twice, count_twice, f); /* already queued: once */
    loop_defer(l, &f->chain1, chain_1, f);
}

static void test_twice_and_chained(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    (void)state;
    assert_non_null(f);
    assert_non_null(f->l = lt_loop_new(64));
    loop_timer_set(f->l, &f->t1, 0, defer_them, f);
    assert_int_equal(loop_run(f->l), 0);
    assert_int_equal(f->chain, 12);     /* both in the same drain */
    assert_int_equal(f->twice_runs, 2); /* once, then once more from chain_1 */
    loop_free(f->l);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_deferred_frees),
        cmocka_unit_test(test_twice_and_chained),
    };

    return LT_RUN_BOTH(tests);
}
