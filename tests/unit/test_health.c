/*
 * test_health.c - health checks follow the route set (src/engine/health.c,
 * health_sync in worker 0), no daemon (issue 10, item 13: "health checks of
 * a route removed before worker 0 opened it"). Worker 0 starts checks only
 * for routes of the set it is handed under the server's lock, each check
 * holding a reference: a route added and removed again before worker 0
 * synced is never seen, and is freed with its last reference while the
 * checks of the others run on (ASan would report a probe touching it); a
 * route leaving the set stops its checks and drops their reference.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/health.h"
#include "engine/route.h"
#include "engine/worker.h"

static void stop_cb(struct loop *l, struct timer *t, void *arg)
{
    (void)t, (void)arg;
    loop_stop(l);
}

static void run_for(struct loop *l, unsigned ms)
{
    struct timer t = {0};

    loop_timer_set(l, &t, ms, stop_cb, NULL);
    assert_int_equal(loop_run(l), 0);
    loop_timer_cancel(l, &t);
}

static unsigned refs(struct route *r)
{
    return atomic_load(&r->refs);
}

static void test_removed_before_sync(void **state)
{
    struct cfg *c = calloc(1, sizeof(*c));
    struct cfg_errors errs = {0};
    /* Port 1 on loopback refuses: each probe ends at once, down. */
    char u0[] = "tcp://127.0.0.1:1/127.0.0.1:1?check=50ms";
    char u1[] = "tcp://127.0.0.1:2/127.0.0.1:1?check=50ms";
    char *urls[] = {u0, u1};
    struct worker w;
    struct route_cfgs *cs;
    struct route *kept, *gone;

    (void)state;
    assert_non_null(c);
    assert_int_equal(cfg_from_urls(c, urls, 2, &errs), 0);
    cs = route_cfgs_new(c, 1);
    assert_non_null(kept = route_new(&c->routes[0], cs, 1));
    assert_non_null(gone = route_new(&c->routes[1], cs, 1));
    route_cfgs_unref(cs);
    memset(&w, 0, sizeof(w));
    assert_non_null(w.loop = loop_new(1024));

    /* gone was in a set worker 0 never saw: it syncs to the next one. */
    assert_int_equal(health_sync(&w, &kept, 1), 0);
    assert_non_null(w.health);
    assert_int_equal(refs(kept), 2); /* ours and its checks' */
    assert_int_equal(refs(gone), 1); /* ours only */
    route_unref(gone);               /* freed now */
    run_for(w.loop, 300);
    assert_int_equal(atomic_load(&kept->ups[0].checked_up), 0); /* the checks ran */

    /* The same set again: nothing restarts, nothing doubles. */
    assert_int_equal(health_sync(&w, &kept, 1), 0);
    assert_int_equal(refs(kept), 2);

    /* kept leaves the set: its checks stop and let go of it. */
    assert_int_equal(health_sync(&w, NULL, 0), 0);
    assert_null(w.health);
    assert_int_equal(refs(kept), 1);
    run_for(w.loop, 100); /* no probe left to fire */
    route_unref(kept);
    loop_free(w.loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_removed_before_sync),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
