/*
 * test_cidr.c - the networks behind trusted, allow and deny: parsing (host
 * bits masked, as HAProxy and nginx do), matching, and IPv4 clients seen as
 * ::ffff:a.b.c.d on a dual-stack socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "util/cidr.h"

static struct sockaddr_storage sa_of(const char *ip)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    else
        fail_msg("bad test address %s", ip);
    return ss;
}

static int matches(const char *nets, const char *ip)
{
    struct cidr_list l = {0};
    struct sockaddr_storage ss = sa_of(ip);
    char copy[256], *save = NULL;
    struct cidr c;
    int m;

    snprintf(copy, sizeof(copy), "%s", nets);
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        assert_int_equal(cidr_parse(t, &c), 0);
        assert_int_equal(cidr_list_add(&l, &c), 0);
    }
    m = cidr_list_match(&l, (const struct sockaddr *)&ss);
    cidr_list_free(&l);
    assert_null(l.v);
    assert_int_equal(l.n, 0);
    return m;
}

static void test_cidr_parse(void **state)
{
    static const char *const bad[] = {
        "",
        "/8",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.0.0.0/8x",
        " 10.0.0.0/8",
        "10.0.0.0 /8",
        "10.0.0/8",
        "010.0.0.0/8",
        "::/129",
        "[::1]/128",
        "10.0.0.0/8/8",
        "host.example",
        "1.2.3.4.5",
        "fe80::1%lo/64",
        "10.0.0.0/0x8",
        "10.0.0.0/ 8",
        "10.0.0.0/999999999999999999999",
    };
    struct cidr c;

    (void)state;
    assert_int_equal(cidr_parse("10.0.0.0/8", &c), 0);
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(cidr_parse("10.1.2.3", &c), 0);
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(cidr_parse("0.0.0.0/0", &c), 0);
    assert_int_equal(cidr_parse("2001:db8::/32", &c), 0);
    assert_int_equal(c.family, AF_INET6);
    assert_int_equal(c.bits, 32);
    assert_int_equal(cidr_parse("::1", &c), 0);
    assert_int_equal(c.bits, 128);
    assert_int_equal(cidr_parse("::/0", &c), 0);
    assert_int_equal(c.bits, 0);
    assert_int_equal(cidr_parse("::ffff:0:0/96", &c), 0);
    assert_int_equal(c.family, AF_INET6);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (cidr_parse(bad[i], &c) != -EINVAL)
            fail_msg("'%s' accepted", bad[i]);
    }
}

/* Host bits are masked off, as HAProxy and nginx do: "10.1.2.3/8" is 10/8. */
static void test_cidr_host_bits(void **state)
{
    struct cidr a, b;

    (void)state;
    assert_int_equal(cidr_parse("10.1.2.3/8", &a), 0);
    assert_int_equal(cidr_parse("10.0.0.0/8", &b), 0);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_int_equal(cidr_parse("2001:db8:ffff::1/33", &a), 0);
    assert_int_equal(cidr_parse("2001:db8:8000::/33", &b), 0);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_true(matches("10.1.2.3/8", "10.200.0.1"));
    assert_false(matches("10.1.2.3/8", "11.0.0.0"));
}

static void test_cidr_match(void **state)
{
    (void)state;
    assert_true(matches("10.0.0.0/8", "10.255.255.255"));
    assert_true(matches("10.0.0.0/8", "10.0.0.0"));
    assert_false(matches("10.0.0.0/8", "11.0.0.0"));
    assert_false(matches("10.0.0.0/8", "9.255.255.255"));
    assert_true(matches("192.168.1.0/25", "192.168.1.127"));
    assert_false(matches("192.168.1.0/25", "192.168.1.128"));
    assert_true(matches("192.0.2.7", "192.0.2.7"));
    assert_false(matches("192.0.2.7", "192.0.2.6"));
    assert_true(matches("0.0.0.0/0", "255.255.255.255"));
    assert_true(matches("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(matches("2001:db8::/32", "2001:db9::1"));
    assert_true(matches("2001:db8::/31", "2001:db9::1"));
    assert_true(matches("::1", "::1"));
    assert_false(matches("::1", "::2"));
    assert_true(matches("::/0", "2001:db8::1"));
    assert_true(matches("11.0.0.0/8,2001:db8::/32,10.0.0.0/8", "10.1.1.1"));
    assert_true(matches("11.0.0.0/8,2001:db8::/32,10.0.0.0/8", "2001:db8::5"));
    assert_false(matches("11.0.0.0/8,2001:db8::/32,10.0.0.0/8", "12.0.0.1"));
    /* IPv4 never matches an ordinary IPv6 network, nor the reverse. */
    assert_false(matches("2001:db8::/32", "10.0.0.1"));
    assert_false(matches("0.0.0.0/0", "::1"));
    assert_false(matches("0.0.0.0/0", "2001:db8::1"));
}

static void test_cidr_mapped(void **state)
{
    (void)state;
    /* A client on a dual-stack socket is seen as ::ffff:a.b.c.d. */
    assert_true(matches("10.0.0.0/8", "::ffff:10.1.2.3"));
    assert_false(matches("10.0.0.0/8", "::ffff:11.1.2.3"));
    assert_true(matches("0.0.0.0/0", "::ffff:1.2.3.4"));
    assert_true(matches("192.0.2.1", "::ffff:192.0.2.1"));
    /* ... and networks may be written mapped too. */
    assert_true(matches("::ffff:0:0/96", "203.0.113.9"));
    assert_true(matches("::ffff:10.0.0.0/104", "10.9.9.9"));
    assert_false(matches("::ffff:10.0.0.0/104", "11.9.9.9"));
    /* The IPv4-compatible or NAT64 forms are other addresses. */
    assert_false(matches("10.0.0.0/8", "::10.1.2.3"));
    assert_false(matches("10.0.0.0/8", "64:ff9b::10.1.2.3"));
}

static void test_cidr_list(void **state)
{
    struct cidr_list l = {0};
    struct sockaddr_storage un;
    struct cidr c;

    (void)state;
    assert_int_equal(cidr_list_match(&l, (const struct sockaddr *)&(
                                             struct sockaddr_storage){.ss_family = AF_INET}),
                     0);
    for (int i = 0; i < 100; i++) {
        char s[32];
        snprintf(s, sizeof(s), "10.%d.0.0/16", i);
        assert_int_equal(cidr_parse(s, &c), 0);
        assert_int_equal(cidr_list_add(&l, &c), 0);
    }
    assert_int_equal(l.n, 100);
    memset(&un, 0, sizeof(un));
    un.ss_family = AF_UNIX;
    assert_int_equal(cidr_list_match(&l, (const struct sockaddr *)&un), 0);
    un = sa_of("10.99.1.1");
    assert_int_equal(cidr_list_match(&l, (const struct sockaddr *)&un), 1);
    un = sa_of("10.100.1.1");
    assert_int_equal(cidr_list_match(&l, (const struct sockaddr *)&un), 0);
    cidr_list_free(&l);
    cidr_list_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_parse), cmocka_unit_test(test_cidr_host_bits),
        cmocka_unit_test(test_cidr_match), cmocka_unit_test(test_cidr_mapped),
        cmocka_unit_test(test_cidr_list),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
