/*
 * test_cli.c - the rest of ppfwd's command line as users and scripts run
 * it: version, help, bad invocations, routes refused at start. (decode and
 * encode: test_cli_decode.c, test_cli_encode.c; running ppfwd: clirun.c.)
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
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
 * socket is opened: keys that mean nothing on UDP, in a URL and in a file
 * (`ppfwd -c FILE check` checks it as `ppfwd check -c FILE` does), and a
 * config file over its limits. Exit 1, nothing on stdout. */
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
    /* -c before the word check is the file to check, as after it. */
    crun_expect_fail(ARGS("-c", path, "check"), NULL, 0, 1,
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

/* Runs ppfwd with args, stdin from /dev/null and stdout to /dev/full (every
 * write fails with ENOSPC); returns the exit status, stderr in err. */
static int run_to_full(const char *const *args, char *err, size_t cap)
{
    const char *bin = getenv("PPFWD") != NULL && getenv("PPFWD")[0] != '\0' ? getenv("PPFWD")
                                                                            : "build/asan/ppfwd";
    char copies[CRUN_MAX_ARGS + 1][256]; /* exec wants char *, literals are const */
    char *argv[CRUN_MAX_ARGS + 2];
    char path[] = "/tmp/test_cli_err.XXXXXX";
    int efd = mkstemp(path), status = -1, i;
    pid_t pid;
    ssize_t n;

    assert_true(efd != -1);
    unlink(path);
    snprintf(copies[0], sizeof(copies[0]), "%s", bin);
    argv[0] = copies[0];
    for (i = 0; args[i] != NULL && i < CRUN_MAX_ARGS; i++) {
        snprintf(copies[i + 1], sizeof(copies[0]), "%s", args[i]);
        argv[i + 1] = copies[i + 1];
    }
    argv[i + 1] = NULL;
    pid = fork();
    assert_true(pid != -1);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY), out = open("/dev/full", O_WRONLY);
        if (in == -1 || out == -1 || dup2(in, 0) == -1 || dup2(out, 1) == -1 || dup2(efd, 2) == -1)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    for (i = 0; i < CRUN_TIMEOUT_MS / 10; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    if (i == CRUN_TIMEOUT_MS / 10) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("ppfwd did not exit within %d ms", CRUN_TIMEOUT_MS);
    }
    n = pread(efd, err, cap - 1, 0);
    err[n > 0 ? n : 0] = '\0';
    close(efd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Output that cannot be written is a failure with a message, never exit 0:
 * a script running `ppfwd --version > file` on a full disk must know. */
static void test_stdout_write_error(void **state)
{
    const char *const *const cmds[] = {
        ARGS("--version"),        ARGS("--help"),           ARGS("decode", "--help"),
        ARGS("encode", "--help"), ARGS("whoami", "--help"), ARGS("check", "--help"),
    };
    char err[4096];

    (void)state;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        assert_int_equal(run_to_full(cmds[i], err, sizeof(err)), 1);
        assert_non_null(strstr(err, "No space left on device"));
    }
    /* decode and encode say it once, in their own words. */
    assert_int_equal(run_to_full(ARGS("encode", "--local"), err, sizeof(err)), 1);
    assert_non_null(strstr(err, "ppfwd: encode: cannot write the header: No space left"));
    assert_null(strstr(err, "stdout"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_and_help),
        cmocka_unit_test(test_bad_invocations),
        cmocka_unit_test(test_refused_at_start),
        cmocka_unit_test(test_stdout_write_error),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
