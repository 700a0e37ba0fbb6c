/*
 * test_cli_decode.c - `ppfwd decode` as users and scripts run it: the
 * vectors of PROXY-PROTOCOL.md section 12, invalid and truncated input,
 * files and options; the exit status and exactly what comes out.
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

#include "cli_vectors.h"
#include "clirun.h"

/* ---- decode ---------------------------------------------------------------- */

static void test_decode_valid_vectors(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        crun_expect_decode_hex(valid[i].hex, valid[i].json);
    for (i = 0; i < sizeof(valid_v1) / sizeof(valid_v1[0]); i++)
        crun_expect_decode(valid_v1[i][0], strlen(valid_v1[i][0]), valid_v1[i][1]);
}

static void test_decode_unix(void **state)
{
    uint8_t buf[232];

    (void)state;
    memset(buf, 0, sizeof(buf));
    crun_unhex(V2_SIG "213100d8", buf, 16);
    memcpy(buf + 16, "/run/a.sock", 11);
    memcpy(buf + 16 + 108, "/run/b.sock", 11);
    crun_expect_decode(
        buf, sizeof(buf),
        "{\"version\":2,\"command\":\"proxy\",\"family\":\"unix-stream\","
        "\"src\":\"/run/a.sock\",\"dst\":\"/run/b.sock\",\"length\":232,\"tlvs\":[]}\n");

    /* Paths of all 108 bytes carry no NUL: each ends where its field does. */
    char src[109], dst[109], json[400];
    src[0] = dst[0] = '/';
    memset(src + 1, 's', 107);
    memset(dst + 1, 'd', 107);
    src[108] = dst[108] = '\0';
    memcpy(buf + 16, src, 108);
    memcpy(buf + 16 + 108, dst, 108);
    snprintf(json, sizeof(json),
             "{\"version\":2,\"command\":\"proxy\",\"family\":\"unix-stream\","
             "\"src\":\"%s\",\"dst\":\"%s\",\"length\":232,\"tlvs\":[]}\n",
             src, dst);
    crun_expect_decode(buf, sizeof(buf), json);
}

/* The header ends where it ends: application bytes after it, a second
 * header included, are neither parsed nor reported. */
static void test_decode_ignores_trailing_data(void **state)
{
    static const char in[] =
        "PROXY UNKNOWN\r\nPROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n";

    (void)state;
    crun_expect_decode(in, sizeof(in) - 1,
                       "{\"version\":1,\"command\":\"local\",\"family\":\"unspec\",\"length\":15,"
                       "\"tlvs\":[]}\n");
}

/* stderr must carry exactly the library's reason for the rejection. */
static void expect_invalid(const uint8_t *in, size_t len)
{
    static const char *const args[] = {"decode", NULL};
    struct pp_parse_opts opts = {.max_len = PP_V2_MAX_LEN, .flags = 0};
    struct pp_header hdr;
    ssize_t rc = pp_parse(in, len, &hdr, &opts);
    char want[256];
    struct crun r;

    assert_true(rc < 0);
    snprintf(want, sizeof(want), "ppfwd: decode: %s\n", pp_strerror((int)rc));
    crun_run(&r, args, in, len);
    assert_int_equal(r.status, 1);
    assert_int_equal(r.out_len, 0);
    assert_string_equal(r.err, want);
    crun_free(&r);
}

static void test_decode_invalid_vectors(void **state)
{
    uint8_t buf[512];
    size_t i, n;

    (void)state;
    for (i = 0; i < sizeof(invalid_hex) / sizeof(invalid_hex[0]); i++) {
        n = crun_unhex(invalid_hex[i], buf, sizeof(buf));
        expect_invalid(buf, n);
    }
    for (i = 0; i < sizeof(invalid_v1) / sizeof(invalid_v1[0]); i++)
        expect_invalid((const uint8_t *)invalid_v1[i], strlen(invalid_v1[i]));
    n = crun_unhex(invalid_hex[8], buf, sizeof(buf));
    crun_expect_fail(ARGS("decode"), buf, n, 1, NEEDLES("ppfwd: decode: ", "CRC32C"));
}

/* A v2 UNIQUE_ID of 129 bytes: well formed, but over HAProxy's limit. */
static void test_decode_unique_id_too_long(void **state)
{
    uint8_t buf[16 + 12 + 3 + 129];

    (void)state;
    crun_unhex(V2_SIG "211100907f0000017f00000100010002050081", buf, sizeof(buf));
    memset(buf + 31, 'x', 129);
    expect_invalid(buf, sizeof(buf));
}

static void test_decode_garbage(void **state)
{
    static const char http[] = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
    uint8_t noise[4096];
    size_t i;

    (void)state;
    crun_expect_fail(ARGS("decode"), http, sizeof(http) - 1, 1,
                     NEEDLES("ppfwd: decode: ", pp_strerror(-PP_EBADSIG)));
    for (i = 0; i < sizeof(noise); i++)
        noise[i] = (uint8_t)(i * 7 + 1);
    crun_expect_fail(ARGS("decode"), noise, sizeof(noise), 1, NEEDLES("ppfwd: decode: "));
    crun_expect_fail(ARGS("decode"), "\0\0\0\0", 4, 1, NEEDLES("ppfwd: decode: "));
}

static void test_decode_empty(void **state)
{
    (void)state;
    crun_expect_fail(ARGS("decode"), NULL, 0, 2, NEEDLES("incomplete"));
    crun_expect_fail(ARGS("decode", "/dev/null"), NULL, 0, 2, NEEDLES("incomplete"));
}

/* Every vector cut short is incomplete (exit 2), never accepted or refused. */
static void expect_truncations(const uint8_t *in, size_t len)
{
    size_t cuts[] = {1, 5, 12, 13, 15, 16, 17, len / 2, len - 2, len - 1};
    size_t i;

    for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
        if (cuts[i] > 0 && cuts[i] < len)
            crun_expect_fail(ARGS("decode"), in, cuts[i], 2,
                             NEEDLES("ppfwd: decode: ", "incomplete"));
}

static void test_decode_truncated(void **state)
{
    uint8_t buf[512];
    size_t i, n;

    (void)state;
    for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        n = crun_unhex(valid[i].hex, buf, sizeof(buf));
        expect_truncations(buf, n);
    }
    for (i = 0; i < sizeof(valid_v1) / sizeof(valid_v1[0]); i++)
        expect_truncations((const uint8_t *)valid_v1[i][0], strlen(valid_v1[i][0]));
}

static char *write_temp(const void *data, size_t len)
{
    char *path = strdup("/tmp/test_cli.XXXXXX");
    int fd;

    assert_non_null(path);
    fd = mkstemp(path);
    assert_true(fd != -1);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

static void test_decode_file(void **state)
{
    static const char line[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nhello";
    static const char json[] = "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp4\","
                               "\"src\":\"1.2.3.4:1\",\"dst\":\"5.6.7.8:2\",\"length\":32,"
                               "\"tlvs\":[]}\n";
    char *path = write_temp(line, sizeof(line) - 1);
    struct crun r;

    (void)state;
    crun_run(&r, ARGS("decode", path), "ignored", 7);
    assert_int_equal(r.status, 0);
    assert_string_equal((const char *)r.out, json);
    crun_free(&r);
    crun_run(&r, ARGS("decode", "-"), line, sizeof(line) - 1);
    assert_int_equal(r.status, 0);
    assert_string_equal((const char *)r.out, json);
    crun_free(&r);
    crun_expect_fail(ARGS("decode", path, "extra"), NULL, 0, 1, NEEDLES("extra", "usage:"));
    unlink(path);
    free(path);
    crun_expect_fail(ARGS("decode", "/nonexistent/ppfwd-test"), NULL, 0, 1,
                     NEEDLES("/nonexistent/ppfwd-test"));
    crun_expect_fail(ARGS("decode", "/"), NULL, 0, 1, NEEDLES("ppfwd: decode: /"));
}

static void test_decode_options(void **state)
{
    uint8_t buf[64];
    size_t n = crun_unhex(invalid_hex[8], buf, sizeof(buf));
    struct crun r;

    (void)state;
    crun_run(&r, ARGS("decode", "--no-crc"), buf, n);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr((const char *)r.out, "\"hex\":\"3442e160\""));
    crun_free(&r);
    n = crun_unhex(valid[6].hex, buf, sizeof(buf));
    crun_expect_fail(ARGS("decode", "--max-len", "34"), buf, n, 1,
                     NEEDLES(pp_strerror(-PP_ETOOLONG)));
    crun_run(&r, ARGS("decode", "--max-len=35"), buf, n);
    assert_int_equal(r.status, 0);
    crun_free(&r);
    crun_expect_fail(ARGS("decode", "--max-len", "15"), NULL, 0, 1, NEEDLES("--max-len"));
    crun_expect_fail(ARGS("decode", "--max-len", "65552"), NULL, 0, 1, NEEDLES("--max-len"));
    crun_expect_fail(ARGS("decode", "--max-len"), NULL, 0, 1,
                     NEEDLES("--max-len", "needs a value"));
    crun_expect_fail(ARGS("decode", "--bogus"), NULL, 0, 1, NEEDLES("unknown option '--bogus'"));
    crun_expect_fail(ARGS("decode", "-z"), NULL, 0, 1, NEEDLES("unknown option '-z'"));
}

/* nginx sends plain IPv4 in TCP6 lines: refused unless asked for. */
static void test_decode_ipv4_in_tcp6(void **state)
{
    static const char line[] = "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n";
    struct crun r;

    (void)state;
    crun_expect_fail(ARGS("decode"), line, sizeof(line) - 1, 1, NEEDLES("ppfwd: decode: "));
    crun_run(&r, ARGS("decode", "--ipv4-in-tcp6"), line, sizeof(line) - 1);
    assert_int_equal(r.status, 0);
    assert_string_equal((const char *)r.out,
                        "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp6\","
                        "\"src\":\"[::ffff:1.2.3.4]:1\",\"dst\":\"[::ffff:5.6.7.8]:2\","
                        "\"length\":32,\"tlvs\":[]}\n");
    crun_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_valid_vectors),
        cmocka_unit_test(test_decode_unix),
        cmocka_unit_test(test_decode_ignores_trailing_data),
        cmocka_unit_test(test_decode_invalid_vectors),
        cmocka_unit_test(test_decode_unique_id_too_long),
        cmocka_unit_test(test_decode_garbage),
        cmocka_unit_test(test_decode_empty),
        cmocka_unit_test(test_decode_truncated),
        cmocka_unit_test(test_decode_file),
        cmocka_unit_test(test_decode_options),
        cmocka_unit_test(test_decode_ipv4_in_tcp6),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
