/*
 * test_config_limits.c - config files that would cost too much are refused
 * quickly, with one message naming the file, the line and the limit
 * (config.h: CFG_FILE_MAX, CFG_DEPTH_MAX, CFG_ANCHORS_MAX and the alias
 * budget), and many routes on one address give one message per route, in
 * milliseconds. Before these limits: 2,000 routes on one address gave
 * 2 million messages (239 MB, 2.5 s), a 200 KB nested file took 23 s, and
 * 65 KB of aliases made the loader walk 200 MB of upstreams.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfgtest.h"
#include "config/config.h"

/* A text built by a test, freed by the teardown. */
static char *text;
static size_t text_len, text_cap;

static int teardown(void **state)
{
    free(text);
    text = NULL;
    text_len = text_cap = 0;
    return cfgt_teardown(state);
}

static void add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void add(const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(text + text_len, text_cap - text_len, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        if (text_len + (size_t)n < text_cap)
            break;
        text_cap = text_cap * 2 + (size_t)n + 4096;
        text = realloc(text, text_cap);
        assert_non_null(text);
        if (text_len == 0)
            text[0] = '\0';
    }
    text_len += (size_t)n;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long max_rss_kib(void)
{
    struct rusage ru;

    assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
    return ru.ru_maxrss;
}

/* Loads text, asserts it is refused with exactly one message holding want
 * (and "FILE:LINE:" when line is not 0), within max_s seconds. */
static void refused_once(const char *want, unsigned line, double max_s)
{
    char where[CFGT_PATH_MAX + 16];
    double t0 = now_s(), dt;

    assert_int_equal(cfgt_load_yaml(text), -1);
    dt = now_s() - t0;
    if (cfgt_errs.n != 1 || !cfgt_has_error(want, NULL)) {
        cfgt_print_errors();
        fail_msg("want one message with '%s', got %zu", want, cfgt_errs.n);
    }
    snprintf(where, sizeof(where), "%s:%u: ", cfgt_path, line);
    if (line != 0)
        cfgt_expect_error(where, want);
    if (dt > max_s)
        fail_msg("took %.2f s (at most %.1f s)", dt, max_s);
}

/* ---- size --------------------------------------------------------------------- */

/* A route, then comments up to exactly len bytes. */
static void padded_config(size_t len)
{
    add("routes: {a: {listen: 'tcp://127.0.0.1:1', upstream: '127.0.0.1:2'}}\n");
    while (text_len + 80 < len)
        add("# %76s\n", "padding");
    while (text_len + 2 < len)
        add("#");
    add("\n");
    if (text_len < len)
        add("\n");
    assert_int_equal(text_len, len);
}

static void test_file_size(void **state)
{
    (void)state;
    padded_config(CFG_FILE_MAX);
    cfgt_load_yaml_ok(text);
    teardown(state);
    cfgt_setup(state);
    padded_config(CFG_FILE_MAX + 1);
    refused_once("larger than 1048576 bytes (1 MiB, the limit for a config file)", 1, 1.0);
}

/* ---- nesting ------------------------------------------------------------------ */

static void test_nesting_200k(void **state)
{
    (void)state;
    add("routes: ");
    for (int i = 0; i < 100000; i++)
        add("[");
    for (int i = 0; i < 100000; i++)
        add("]");
    add("\n");
    refused_once("nested deeper than 32 levels (the limit; ppfwd needs 4)", 1, 1.0);
}

/* CFG_DEPTH_MAX levels pass the nesting check (the file is then refused
 * for what it says, not for its depth); one more does not. */
static void test_nesting_bound(void **state)
{
    (void)state;
    add("routes:\n  a:\n    listen: 'tcp://127.0.0.1:1'\n    upstream: ");
    for (int i = 0; i < CFG_DEPTH_MAX - 3; i++)
        add("[");
    for (int i = 0; i < CFG_DEPTH_MAX - 3; i++)
        add("]");
    add("\n");
    assert_int_equal(cfgt_load_yaml(text), -1);
    cfgt_expect_error("route a: key upstream: expected a value or a list of values", NULL);
    assert_false(cfgt_has_error("nested deeper", NULL));
    text_len = 0;
    add("routes:\n  a:\n    listen: 'tcp://127.0.0.1:1'\n    upstream: ");
    for (int i = 0; i < CFG_DEPTH_MAX - 2; i++)
        add("[");
    for (int i = 0; i < CFG_DEPTH_MAX - 2; i++)
        add("]");
    add("\n");
    refused_once("nested deeper than 32 levels", 4, 1.0);
}

/* ---- aliases ------------------------------------------------------------------ */

/* The classic: each level is ten aliases of the one before. */
static void test_alias_bomb_nested(void **state)
{
    (void)state;
    add("a0: &a0 ['127.0.0.1:1']\n");
    for (int i = 1; i < 12; i++) {
        add("a%d: &a%d [", i, i);
        for (int j = 0; j < 10; j++)
            add("%s*a%d", j ? ", " : "", i - 1);
        add("]\n");
    }
    add("routes: {}\n");
    refused_once("aliases expand to more than", 0, 1.0);
}

/* 65 KB: one list of 3,000 upstreams, named by every route. The loader
 * walked (and resolved) 3,000 upstreams per route: 200 MB, 1 s. */
static void test_alias_bomb_65k(void **state)
{
    long rss0 = max_rss_kib();

    (void)state;
    add("u: &u [");
    for (int i = 0; i < 3000; i++)
        add("%s127.0.0.1:%d", i ? "," : "", 1 + i);
    add("]\nroutes:\n");
    for (int i = 0; text_len < 65000; i++)
        add("  r%d: {listen: 'tcp://127.0.0.1:%d', upstream: *u}\n", i, 10000 + i);
    refused_once("aliases expand to more than", 0, 1.0);
    cfgt_expect_error("the limit: 10000, or 10 times the nodes written out", NULL);
    if (max_rss_kib() - rss0 > 32 * 1024)
        fail_msg("peak memory grew by %ld KiB", max_rss_kib() - rss0);
}

/* Aliases the way they are meant to be used pass: 200 routes sharing one
 * list of 20 networks add 4,000 nodes. */
static void test_aliases_in_use(void **state)
{
    (void)state;
    add("routes:\n  r0: {listen: 'tcp://127.0.0.1:9999', upstream: '127.0.0.1:1', allow: &nets [");
    for (int i = 0; i < 20; i++)
        add("%s10.%d.0.0/16", i ? ", " : "", i);
    add("]}\n");
    for (int i = 1; i < 200; i++)
        add("  r%d: {listen: 'tcp://127.0.0.1:%d', upstream: '127.0.0.1:1', allow: *nets}\n", i,
            10000 + i);
    cfgt_load_yaml_ok(text);
    assert_int_equal(cfgt_cfg.nroutes, 200);
    assert_int_equal(cfgt_cfg.routes[199].allow.n, 20);
}

static void test_anchors(void **state)
{
    (void)state;
    add("x: [");
    for (int i = 0; i < CFG_ANCHORS_MAX; i++)
        add("%s&a%d 1", i ? ", " : "", i);
    add("]\nroutes: {a: {listen: 'tcp://127.0.0.1:1', upstream: '127.0.0.1:2'}}\n");
    assert_int_equal(cfgt_load_yaml(text), -1);
    cfgt_expect_error("key x: unknown key", NULL); /* refused for what it says */
    text_len = 0;
    add("x: [");
    for (int i = 0; i <= CFG_ANCHORS_MAX; i++)
        add("%s&a%d 1", i ? ", " : "", i);
    add("]\n");
    refused_once("more than 1000 anchors (&NAME), the limit", 1, 1.0);
}

/* ---- many routes on one address ----------------------------------------------- */

static void test_overlap_2000(void **state)
{
    char want[64];
    double t0;

    (void)state;
    add("routes:\n");
    for (int i = 0; i < 2000; i++)
        add("  r%d:\n    listen: tcp://127.0.0.1:7000\n    upstream: 127.0.0.1:1\n", i);
    t0 = now_s();
    assert_int_equal(cfgt_load_yaml(text), -1);
    if (now_s() - t0 > 1.0)
        fail_msg("2,000 routes took %.2f s", now_s() - t0);
    /* Each route after the first once, at its listen line, naming r0. */
    assert_int_equal(cfgt_errs.n, 1999);
    for (int i = 1; i < 2000; i++) {
        snprintf(want, sizeof(want), ":%d: route r%d: key listen: ", 3 + 3 * i, i);
        if (strstr(cfgt_errs.msg[i - 1], want) == NULL ||
            strstr(cfgt_errs.msg[i - 1], "same address as route r0") == NULL)
            fail_msg("message %d: %s (want '%s')", i - 1, cfgt_errs.msg[i - 1], want);
    }
}

/* 0.0.0.0:P and a dual-stack [::]:P take the same IPv4 traffic, and a
 * tcp6 [::]:P binds the very address of the dual-stack one; a specific
 * address beside them is allowed; each overlapping route is named once,
 * with the first route it overlaps. */
static void test_overlap_wildcards(void **state)
{
    (void)state;
    add("routes:\n"
        "  a: {listen: 'tcp://0.0.0.0:7000', upstream: '127.0.0.1:1'}\n"
        "  b: {listen: 'tcp://127.0.0.1:7000', upstream: '127.0.0.1:1'}\n"
        "  c: {listen: 'tcp://:7000', upstream: '127.0.0.1:1'}\n"
        "  d: {listen: 'tcp://0.0.0.0:7000', upstream: '127.0.0.1:1'}\n"
        "  e: {listen: 'tcp6://[::]:7000', upstream: '127.0.0.1:1'}\n"
        "  f: {listen: 'udp://0.0.0.0:7000', upstream: '127.0.0.1:1'}\n"
        "  g: {listen: 'tcp://127.0.0.1:7000', upstream: '127.0.0.1:1'}\n");
    assert_int_equal(cfgt_load_yaml(text), -1);
    if (cfgt_errs.n != 4)
        cfgt_print_errors();
    assert_int_equal(cfgt_errs.n, 4);
    cfgt_expect_error(":4: route c: key listen: same address as route a", NULL);
    cfgt_expect_error(":5: route d: key listen: same address as route a", NULL);
    cfgt_expect_error(":6: route e: key listen: same address as route c", NULL);
    cfgt_expect_error(":8: route g: key listen: same address as route b", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file_size, cfgt_setup, teardown),
        cmocka_unit_test_setup_teardown(test_nesting_200k, cfgt_setup, teardown),
        cmocka_unit_test_setup_teardown(test_nesting_bound, cfgt_setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_bomb_nested, cfgt_setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_bomb_65k, cfgt_setup, teardown),
        cmocka_unit_test_setup_teardown(test_aliases_in_use, cfgt_setup, teardown),
        cmocka_unit_test_setup_teardown(test_anchors, cfgt_setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlap_2000, cfgt_setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlap_wildcards, cfgt_setup, teardown),
    };

    return cmocka_run_group_tests(tests, cfgt_group_setup, cfgt_group_teardown);
}
