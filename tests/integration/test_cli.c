/*
 * test_cli.c - the rest of ppfwd's command line as users and scripts run
 * it: version, help, bad invocations, routes refused at start. (decode and
 * encode: test_cli_decode.c, test_cli_encode.c; running ppfwd: clirun.c.)
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <proxyproto.h>

#include "clirun.h"

/* ---- the rest of the command line ---------------------------------------- */

static void test_version_and_help(void **state)
{
    struct crun r;

    (void)state;
    crun_run(&r, ARGS("--version"), NULL, 0);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr((const char *)r.out, "ppfwd " PP_VERSION_STRING));
    crun_free(&r);
    crun_run(&r, ARGS("--help"), NULL, 0);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr((const char *)r.out, "ppfwd decode"));
    assert_non_null(strstr((const char *)r.out, "ppfwd encode"));
    assert_non_null(strstr((const char *)r.out, "whoami"));
    assert_non_null(strstr((const char *)r.out, "ppfwd check -c FILE"));
    assert_non_null(strstr((const char *)r.out, "ROUTE: PROTO://"));
    crun_free(&r);
    crun_run(&r, ARGS("encode", "--help"), NULL, 0);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr((const char *)r.out, "--crc32c"));
    crun_free(&r);
    crun_run(&r, ARGS("decode", "-h"), NULL, 0);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr((const char *)r.out, "usage: ppfwd decode"));
    crun_free(&r);
}

/* A mistake on the command line fails loudly with a message naming it,
 * never looks like success. */
static void test_bad_invocations(void **state)
{
    static const char *const no_args[] = {NULL};

    (void)state;
    crun_expect_fail(ARGS("tcp://127.0.0.1:2222/127.0.0.1:22?bogus=1"), NULL, 0, 1,
                     NEEDLES("bogus"));
    crun_expect_fail(ARGS("-l", "debug", "tcp://127.0.0.1:2222/127.0.0.1:22?send-proxy=v3"), NULL,
                     0, 1, NEEDLES("send-proxy"));
    crun_expect_fail(ARGS("-c", "/nonexistent/ppfwd.yaml"), NULL, 0, 1,
                     NEEDLES("/nonexistent/ppfwd.yaml"));
    crun_expect_fail(ARGS("whoami"), NULL, 0, 1, NEEDLES("whoami"));
    crun_expect_fail(no_args, NULL, 0, 1, NEEDLES("usage:"));
    crun_expect_fail(ARGS("--bogus"), NULL, 0, 1, NEEDLES("unknown option '--bogus'", "usage:"));
    crun_expect_fail(ARGS("--log-level", "loud", "x://"), NULL, 0, 1,
                     NEEDLES("--log-level", "loud"));
    crun_expect_fail(ARGS("-w", "0", "x://"), NULL, 0, 1, NEEDLES("--workers"));
    crun_expect_fail(ARGS("--metrics", "9100", "x://"), NULL, 0, 1, NEEDLES("--metrics"));
}

/* Routes that `ppfwd check` refuses are refused at start too, before any
 * socket is opened: keys that mean nothing on UDP, in a URL and in a file,
 * and a config file over its limits. Exit 1, nothing on stdout. */
static void test_refused_at_start(void **state)
{
    char path[] = "/tmp/test_cli.XXXXXX";
    int fd;
    FILE *fp;

    (void)state;
    crun_expect_fail(ARGS("udp://127.0.0.1:1/127.0.0.1:2?connect-timeout=1s"), NULL, 0, 1,
                     NEEDLES("route 'udp://127.0.0.1:1/127.0.0.1:2?connect-timeout=1s'",
                             "key connect-timeout", "TCP only"));
    crun_expect_fail(ARGS("check", "udp://127.0.0.1:1/127.0.0.1:2?header-timeout=1s"), NULL, 0, 1,
                     NEEDLES("key header-timeout", "TCP only"));
    fd = mkstemp(path);
    assert_true(fd != -1);
    fp = fdopen(fd, "w");
    assert_non_null(fp);
    fputs("routes:\n  dns:\n    listen: udp://127.0.0.1:1\n    upstream: 127.0.0.1:2\n"
          "    check: 5s\n",
          fp);
    assert_int_equal(fclose(fp), 0);
    crun_expect_fail(ARGS("-c", path), NULL, 0, 1,
                     NEEDLES(":5: route dns: key check:", "TCP only"));
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("routes: ", fp);
    for (int i = 0; i < 100; i++)
        fputc('[', fp);
    assert_int_equal(fclose(fp), 0);
    crun_expect_fail(ARGS("-c", path), NULL, 0, 1, NEEDLES("nested deeper than 32 levels"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_and_help),
        cmocka_unit_test(test_bad_invocations),
        cmocka_unit_test(test_refused_at_start),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
