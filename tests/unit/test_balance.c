/*
 * test_balance.c - choosing an upstream (src/engine/balance.c) on a route
 * built from a URL, no daemon: round robin in turn and past down upstreams,
 * least connections with ties shared, source hashing that keeps a client on
 * its upstream and moves only the clients of one that goes down (and back
 * when it returns), the passive pause after a failed connect, which never
 * leaves nothing to try (a lone upstream, all of them paused), and -1 only
 * when the health check fails every upstream.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <arpa/inet.h>

#include "engine/balance.h"
#include "engine/route.h"

#define T0 100000 /* a loop_now() value, in ms */

static struct route *mkroute_ups(const char *ups, const char *balance)
{
    struct cfg *c = calloc(1, sizeof(*c));
    struct cfg_errors errs = {0};
    char url[256], *urls[1] = {url};
    struct route_cfgs *cs;
    struct route *r;

    assert_non_null(c);
    snprintf(url, sizeof(url), "tcp://127.0.0.1:1/%s?balance=%s", ups, balance);
    assert_int_equal(cfg_from_urls(c, urls, 1, &errs), 0);
    cs = route_cfgs_new(c, 1);
    r = route_new(&c->routes[0], cs, 1);
    assert_non_null(r);
    route_cfgs_unref(cs);
    return r;
}

static struct route *mkroute(const char *balance)
{
    return mkroute_ups("127.0.0.1:11,127.0.0.1:12,127.0.0.1:13", balance);
}

static struct sockaddr_storage client(uint32_t i)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(0x0a000000u + i * 7919u);
    s4->sin_port = htons((uint16_t)(1024 + i)); /* the port must not matter */
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void test_roundrobin(void **state)
{
    struct route *r = mkroute("roundrobin");
    struct sockaddr_storage c = client(1);

    (void)state;
    for (int i = 0; i < 6; i++)
        assert_int_equal(balance_pick(r, SA(c), T0), i % 3);
    /* a failed connect keeps upstream 1 out for a while, then it is back */
    balance_result(r, 1, ECONNREFUSED, T0);
    assert_false(balance_live(r, 1, T0 + 1));
    for (int i = 0; i < 6; i++)
        assert_int_not_equal(balance_pick(r, SA(c), T0 + 1), 1);
    assert_true(balance_live(r, 1, T0 + 2000));
    balance_result(r, 2, 0, T0); /* a success marks nothing */
    assert_true(balance_live(r, 2, T0));
    /* the health check's verdict */
    atomic_store(&r->ups[0].checked_up, 0);
    atomic_store(&r->ups[2].checked_up, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(balance_pick(r, SA(c), T0 + 5000), 1);
    atomic_store(&r->ups[1].checked_up, 0);
    assert_int_equal(balance_pick(r, SA(c), T0 + 5000), -1);
    route_unref(r);
}

static void test_leastconn(void **state)
{
    struct route *r = mkroute("leastconn");
    struct sockaddr_storage c = client(1);
    int seen[3] = {0};

    (void)state;
    atomic_store(&r->ups[0].conns, 5);
    atomic_store(&r->ups[1].conns, 2);
    atomic_store(&r->ups[2].conns, 7);
    for (int i = 0; i < 5; i++)
        assert_int_equal(balance_pick(r, SA(c), T0), 1);
    balance_result(r, 1, ETIMEDOUT, T0); /* the least loaded is down: the next least */
    assert_int_equal(balance_pick(r, SA(c), T0), 0);
    /* ties are shared in turn, not all sent to the first */
    atomic_store(&r->ups[0].conns, 3);
    atomic_store(&r->ups[1].conns, 3);
    atomic_store(&r->ups[2].conns, 3);
    for (int i = 0; i < 6; i++)
        seen[balance_pick(r, SA(c), T0 + 3000)]++;
    assert_int_equal(seen[0], 2);
    assert_int_equal(seen[1], 2);
    assert_int_equal(seen[2], 2);
    route_unref(r);
}

static void test_source(void **state)
{
    struct route *r = mkroute("source");
    int home[64], count[3] = {0}, moved = 0;

    (void)state;
    for (uint32_t i = 0; i < 64; i++) {
        struct sockaddr_storage c = client(i), c2 = client(i);

        home[i] = balance_pick(r, SA(c), T0);
        assert_in_range(home[i], 0, 2);
        ((struct sockaddr_in *)&c2)->sin_port = htons(9); /* another port, same client */
        for (int k = 0; k < 3; k++)
            assert_int_equal(balance_pick(r, SA(c2), T0), home[i]);
        count[home[i]]++;
    }
    for (int k = 0; k < 3; k++)
        assert_true(count[k] > 5); /* spread over all three */
    /* upstream 0 goes down: only its clients move */
    atomic_store(&r->ups[0].checked_up, 0);
    for (uint32_t i = 0; i < 64; i++) {
        struct sockaddr_storage c = client(i);
        int now = balance_pick(r, SA(c), T0);

        if (home[i] == 0) {
            assert_int_not_equal(now, 0);
            moved++;
        } else {
            assert_int_equal(now, home[i]);
        }
    }
    assert_int_equal(moved, count[0]);
    /* and back when it returns */
    atomic_store(&r->ups[0].checked_up, 1);
    for (uint32_t i = 0; i < 64; i++) {
        struct sockaddr_storage c = client(i);
        assert_int_equal(balance_pick(r, SA(c), T0), home[i]);
    }
    route_unref(r);
}

/* The passive pause never leaves nothing to try (issue 10, item 11): a lone
 * upstream is always tried, and when every upstream the health check passes
 * is paused, they are all tried again; only the check keeps one out. */
static void test_pause_leaves_something(void **state)
{
    static const char *const modes[] = {"roundrobin", "leastconn", "source"};
    struct sockaddr_storage c = client(3);
    struct route *r = mkroute_ups("127.0.0.1:11", "roundrobin");
    int seen[3];

    (void)state;
    balance_result(r, 0, ECONNREFUSED, T0);
    assert_false(balance_live(r, 0, T0 + 1));            /* paused: ppfwd_upstream_up says 0 */
    assert_int_equal(balance_pick(r, SA(c), T0 + 1), 0); /* but still tried */
    atomic_store(&r->ups[0].checked_up, 0);
    assert_int_equal(balance_pick(r, SA(c), T0 + 1), -1); /* the check's verdict holds */
    route_unref(r);

    for (size_t m = 0; m < 3; m++) {
        r = mkroute(modes[m]);
        for (size_t i = 0; i < 3; i++)
            balance_result(r, i, ETIMEDOUT, T0);
        memset(seen, 0, sizeof(seen));
        for (int k = 0; k < 30; k++) {
            struct sockaddr_storage ck = client((uint32_t)k);
            int i = balance_pick(r, SA(ck), T0 + 1);

            assert_in_range(i, 0, 2);
            seen[i]++;
        }
        for (size_t i = 0; i < 3; i++)
            assert_true(seen[i] > 0); /* all of them tried again, spread as usual */
        /* one back from its pause (a connect to it succeeded while all
         * were tried again): only it, the others stay paused */
        balance_result(r, 1, 0, T0 + 1);
        assert_true(balance_live(r, 1, T0 + 1)); /* ppfwd_upstream_up says 1 */
        for (int k = 0; k < 6; k++)
            assert_int_equal(balance_pick(r, SA(c), T0 + 1), 1);
        /* failed by the check: never tried, paused or not */
        atomic_store(&r->ups[1].checked_up, 0);
        for (int k = 0; k < 6; k++)
            assert_int_not_equal(balance_pick(r, SA(c), T0 + 1), 1);
        atomic_store(&r->ups[0].checked_up, 0);
        for (int k = 0; k < 6; k++)
            assert_int_equal(balance_pick(r, SA(c), T0 + 1), 2);
        atomic_store(&r->ups[2].checked_up, 0);
        assert_int_equal(balance_pick(r, SA(c), T0 + 1), -1);
        route_unref(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundrobin),
        cmocka_unit_test(test_leastconn),
        cmocka_unit_test(test_source),
        cmocka_unit_test(test_pause_leaves_something),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
