/*
 * test_addr.c - unix paths in addr.c at the edge of sun_path: a PROXY v2 UNIX
 * address is 108 bytes, NUL-padded like sun_path, so a path of exactly 108
 * bytes has no NUL. addr_parse must take it (and refuse 109 with its own
 * code), addr_format must give all 108 bytes back without reading past
 * sun_path, and the two around pp_build_v2/pp_parse (what `ppfwd encode |
 * ppfwd decode` does) must round-trip it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "proxyproto.h"
#include "vectors.h"
#include "util/addr.h"

#define SA(x) ((const struct sockaddr *)(x))

/* "/" and n - 1 times c: an absolute path of n bytes, NUL-terminated. */
static void path_of(char *buf, size_t n, char c)
{
    buf[0] = '/';
    memset(buf + 1, c, n - 1);
    buf[n] = '\0';
}

/* ":PORT" is [::]:PORT with ADDR_PARSE_ANY (--metrics :9100), refused without. */
static void test_parse_any(void **state)
{
    struct sockaddr_storage ss;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;

    (void)state;
    assert_int_equal(addr_parse(":9100", ADDR_PARSE_ANY, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_true(IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr));
    assert_int_equal(ntohs(sin6->sin6_port), 9100);
    assert_int_equal(addr_parse(":9100", 0, &ss), -ADDR_EHOST);
    assert_int_equal(addr_parse(":", ADDR_PARSE_ANY, &ss), -ADDR_ENOPORT);
    assert_int_equal(addr_parse(":09", ADDR_PARSE_ANY, &ss), -ADDR_EPORT);
    assert_int_equal(addr_parse(":65536", ADDR_PARSE_ANY, &ss), -ADDR_EPORT);
}

static void test_parse_unix_lengths(void **state)
{
    struct sockaddr_storage ss;
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&ss;
    char path[256];

    (void)state;
    path_of(path, 107, 'a');
    assert_int_equal(addr_parse(path, ADDR_PARSE_UNIX, &ss), 0);
    assert_int_equal(sun->sun_family, AF_UNIX);
    assert_string_equal(sun->sun_path, path);

    /* All of sun_path, no NUL: as the kernel and PROXY v2 take it. */
    path_of(path, 108, 'b');
    assert_int_equal(addr_parse(path, ADDR_PARSE_UNIX, &ss), 0);
    assert_int_equal(sun->sun_family, AF_UNIX);
    assert_memory_equal(sun->sun_path, path, 108);
    assert_int_equal(addr_len(SA(&ss)), offsetof(struct sockaddr_un, sun_path) + 108);

    path_of(path, 109, 'c');
    assert_int_equal(addr_parse(path, ADDR_PARSE_UNIX, &ss), -ADDR_EPATHLEN);
    assert_int_equal(ss.ss_family, AF_UNSPEC);
    assert_non_null(strstr(addr_strerror(-ADDR_EPATHLEN), "at most 108 bytes"));
    path_of(path, 255, 'd');
    assert_int_equal(addr_parse(path, ADDR_PARSE_UNIX, &ss), -ADDR_EPATHLEN);

    /* Without the flag a path is refused for what it is, whatever its size. */
    assert_int_equal(addr_parse("/run/a.sock", 0, &ss), -ADDR_EPATH);
    assert_int_equal(ss.ss_family, AF_UNSPEC);
}

/* A sun_path with no NUL, ending at a PROT_NONE page: reading one byte
 * past it crashes. */
static void test_format_unix_full(void **state)
{
    struct sockaddr_un full;
    const struct sockaddr_un *g;
    char text[ADDR_STRLEN], path[128];

    (void)state;
    path_of(path, 108, 'p');
    memset(&full, 0, sizeof(full));
    full.sun_family = AF_UNIX;
    memcpy(full.sun_path, path, 108);
    g = (const struct sockaddr_un *)(const void *)guard_place(&guard, &full, sizeof(full));
    assert_non_null(g);
    assert_int_equal(addr_format(SA(g), text, sizeof(text)), 108);
    assert_string_equal(text, path);
    assert_int_equal(addr_len(SA(g)), offsetof(struct sockaddr_un, sun_path) + 108);
    /* One byte short of room for the NUL. */
    assert_int_equal(addr_format(SA(g), text, 108), -ADDR_ENOSPC);
}

/* encode | decode in one process: text -> sockaddr -> v2 header -> parsed
 * header -> text. */
static void test_unix_108_roundtrip(void **state)
{
    struct sockaddr_storage src, dst;
    struct pp_parse_opts opts = {.max_len = 0, .flags = 0};
    struct pp_header h;
    uint8_t buf[PP_V2_HDR_LEN + PP2_ADDR_LEN_UNIX];
    char sp[128], dp[128], text[ADDR_STRLEN];

    (void)state;
    path_of(sp, 108, 's');
    path_of(dp, 108, 'd');
    assert_int_equal(addr_parse(sp, ADDR_PARSE_UNIX, &src), 0);
    assert_int_equal(addr_parse(dp, ADDR_PARSE_UNIX, &dst), 0);
    assert_int_equal(pp_build_v2(buf, sizeof(buf), PP2_CMD_PROXY, SOCK_STREAM, SA(&src), SA(&dst)),
                     sizeof(buf));
    assert_int_equal(buf[13], PP2_FAM_UNIX_STREAM);
    assert_memory_equal(buf + PP_V2_HDR_LEN, sp, 108);
    assert_memory_equal(buf + PP_V2_HDR_LEN + PP2_UNIX_PATH_LEN, dp, 108);

    assert_int_equal(pp_parse(guard_place(&guard, buf, sizeof(buf)), sizeof(buf), &h, &opts),
                     sizeof(buf));
    assert_int_equal(addr_format(&h.src.sa, text, sizeof(text)), 108);
    assert_string_equal(text, sp);
    assert_int_equal(addr_format(&h.dst.sa, text, sizeof(text)), 108);
    assert_string_equal(text, dp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_any),
        cmocka_unit_test(test_parse_unix_lengths),
        cmocka_unit_test(test_format_unix_full),
        cmocka_unit_test(test_unix_108_roundtrip),
    };

    guard_cap = 4096;
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
