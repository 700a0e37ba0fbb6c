/*
 * test_udp.c - ppfwd's UDP routes end to end on loopback, the traffic:
 * $PPFWD (default build/asan/ppfwd) run as a child in front of `ppfwd
 * whoami --udp` or of an echo server forked from this test, fed datagrams
 * from many sockets: headers sent on, order, two hops, IPv6, big datagrams,
 * bad input. (Sessions' lives and limits: test_udp_sessions.c; the shared
 * helpers: tests/common/udptest.c.)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <proxyproto.h>

#include "udptest.h"

/* send-proxy=v2 in front of whoami: each answer names its real client. */
static void test_send_proxy(void **state)
{
    uint16_t up = udpt_free_port(AF_INET), lp = udpt_free_port(AF_INET);

    (void)state;
    udpt_whoami(AF_INET, up);
    udpt_ppfwd(udpt_route("udp://127.0.0.1:%u/127.0.0.1:%u?send-proxy=v2", lp, up), NULL, NULL);
    udpt_pump(AF_INET, lp, 0);
}

/* One short datagram ("ping", far shorter than the answer) through a
 * send-proxy=v2 route: whoami answers it, since its peer (ppfwd) is on
 * loopback; the answer names this socket as the client. */
static void ask_short(int family, uint16_t port)
{
    char me[80], want[128], got[4096];
    int fd = udpt_client(family);
    ssize_t n;

    udpt_sock_name(fd, me, sizeof(me));
    udpt_send_to(fd, family, port, "ping", 4);
    n = udpt_recv_one(fd, got, sizeof(got) - 1, ANSWER_MS);
    assert_true(n > 4);
    got[n] = '\0';
    snprintf(want, sizeof(want), "\"client\":\"%s\"", me);
    if (strstr(got, want) == NULL)
        fail_msg("want %s in %s", want, got);
    close(fd);
}

static void test_send_proxy_short(void **state)
{
    uint16_t up = udpt_free_port(AF_INET), lp = udpt_free_port(AF_INET),
             up6 = udpt_free_port(AF_INET6), lp6 = udpt_free_port(AF_INET6);
    struct udpt_child *w, *w6;

    (void)state;
    w = udpt_whoami(AF_INET, up);
    w6 = udpt_whoami(AF_INET6, up6);
    udpt_ppfwd(udpt_route("udp://127.0.0.1:%u/127.0.0.1:%u?send-proxy=v2", lp, up),
               udpt_route("udp6://[::1]:%u/[::1]:%u?send-proxy=v2", lp6, up6), NULL);
    ask_short(AF_INET, lp);
    ask_short(AF_INET6, lp6);
    assert_null(strstr(udpt_child_log(w), "whoami_answer_dropped"));
    assert_null(strstr(udpt_child_log(w6), "whoami_answer_dropped"));
}

/* A plain route to an echo server: every datagram back, in order. */
static void test_echo_order(void **state)
{
    uint16_t up = udpt_echo_start(AF_INET), lp = udpt_free_port(AF_INET);

    (void)state;
    udpt_ppfwd(udpt_route("udp://127.0.0.1:%u/127.0.0.1:%u", lp, up), NULL, NULL);
    udpt_pump(AF_INET, lp, 1);
}

/* Two hops: the first sends v2, the second takes it (required, trusted)
 * and sends v2 on: whoami still sees the original client. */
static void test_two_hops(void **state)
{
    uint16_t up = udpt_free_port(AF_INET), p1 = udpt_free_port(AF_INET),
             p2 = udpt_free_port(AF_INET);
    int fd;

    (void)state;
    udpt_whoami(AF_INET, up);
    udpt_ppfwd(udpt_route("udp://127.0.0.1:%u/127.0.0.1:%u?send-proxy=v2&crc32c=on", p1, p2),
               udpt_route("udp://127.0.0.1:%u/127.0.0.1:%u?accept-proxy=required&trusted=127.0.0.1"
                          "&send-proxy=v2&authority=example.com",
                          p2, up),
               NULL);
    for (int i = 0; i < 3; i++) {
        fd = udpt_client(AF_INET);
        udpt_ask_whoami(fd, AF_INET, p1);
        close(fd);
    }
}

static void test_ipv6(void **state)
{
    uint16_t up = udpt_free_port(AF_INET6), lp = udpt_free_port(AF_INET6);
    int fd;

    (void)state;
    udpt_whoami(AF_INET6, up);
    udpt_ppfwd(udpt_route("udp6://[::1]:%u/[::1]:%u?send-proxy=v2", lp, up), NULL, NULL);
    fd = udpt_client(AF_INET6);
    udpt_ask_whoami(fd, AF_INET6, lp);
    close(fd);
}

/* A 65,507-byte datagram (the IPv4 maximum) through a plain route. */
static void test_big(void **state)
{
    static uint8_t out[65507], in[65536];
    uint16_t up = udpt_echo_start(AF_INET), lp = udpt_free_port(AF_INET);
    int fd = udpt_client(AF_INET);

    (void)state;
    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)(i * 7 + 3);
    udpt_ppfwd(udpt_route("udp://127.0.0.1:%u/127.0.0.1:%u", lp, up), NULL, NULL);
    udpt_send_to(fd, AF_INET, lp, out, sizeof(out));
    assert_int_equal(udpt_recv_one(fd, in, sizeof(in), ANSWER_MS), (ssize_t)sizeof(out));
    assert_memory_equal(in, out, sizeof(out));
    close(fd);
}

/* Expects no answer on fd within QUIET_MS. */
static void silence(int fd)
{
    char buf[4096];

    assert_int_equal(udpt_recv_one(fd, buf, sizeof(buf), QUIET_MS), -1);
}

static size_t header(uint8_t *buf, size_t cap, uint16_t dport, const char *payload)
{
    struct sockaddr_storage src, dst;
    struct sockaddr_in *sin = (struct sockaddr_in *)&src;
    ssize_t n;

    udpt_loopback(AF_INET, dport, &dst);
    memset(&src, 0, sizeof(src));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(1234);
    inet_pton(AF_INET, "192.0.2.10", &sin->sin_addr);
    n = pp_build_v2(buf, cap, PP2_CMD_PROXY, SOCK_DGRAM, (struct sockaddr *)&src,
                    (struct sockaddr *)&dst);
    assert_true(n > 0);
    memcpy(buf + n, payload, strlen(payload));
    return (size_t)n + strlen(payload);
}

/* Garbage, truncated headers and headers from untrusted sources are
 * dropped and logged; a valid header, and a plain datagram where the
 * header is optional, are served. */
static void test_bad_input(void **state)
{
    uint16_t up = udpt_free_port(AF_INET), req = udpt_free_port(AF_INET),
             unt = udpt_free_port(AF_INET), opt = udpt_free_port(AF_INET);
    struct udpt_child *k;
    uint8_t hdr[WHOAMI_PAD];
    char got[4096], plain[WHOAMI_PAD] = "plain";
    size_t n;
    int fd = udpt_client(AF_INET);

    (void)state;
    udpt_whoami(AF_INET, up);
    k = udpt_ppfwd(
        udpt_route("udp://127.0.0.1:%u/127.0.0.1:%u?accept-proxy=required&trusted=127.0.0.1"
                   "&send-proxy=v2",
                   req, up),
        udpt_route("udp://127.0.0.1:%u/127.0.0.1:%u?accept-proxy=required&trusted=10.0.0.0/8", unt,
                   up),
        udpt_route("udp://127.0.0.1:%u/127.0.0.1:%u?accept-proxy=optional&trusted=10.0.0.0/8", opt,
                   up));
    udpt_send_to(fd, AF_INET, req, "garbage, no header", 18);
    silence(fd);
    n = header(hdr, sizeof(hdr), req, "x");
    udpt_send_to(fd, AF_INET, req, hdr, 20); /* a header cut short */
    silence(fd);
    memset(hdr + n, 'x', sizeof(hdr) - n); /* room for whoami's answer */
    n = sizeof(hdr);
    udpt_send_to(fd, AF_INET, req, hdr, n);
    assert_true(udpt_recv_one(fd, got, sizeof(got), ANSWER_MS) > 0);
    if (strstr(got, "\"client\":\"192.0.2.10:1234\"") == NULL)
        fail_msg("the header's client, not %s", got);
    udpt_send_to(fd, AF_INET, unt, hdr, n); /* untrusted, required */
    silence(fd);
    udpt_send_to(fd, AF_INET, unt, "plain", 5);
    silence(fd);
    udpt_send_to(fd, AF_INET, opt, hdr, n); /* untrusted, optional: header refused */
    silence(fd);
    udpt_send_to(fd, AF_INET, opt, plain, sizeof(plain)); /* served directly */
    assert_true(udpt_recv_one(fd, got, sizeof(got), ANSWER_MS) > 0);
    close(fd);
    const char *log = udpt_child_log(k);
    assert_non_null(strstr(log, "\"reason\":\"no PROXY header\""));
    assert_non_null(strstr(log, "\"reason\":\"truncated PROXY header\""));
    assert_true(udpt_count(log, "\"reason\":\"PROXY header from an untrusted source\"") >= 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_proxy, udpt_setup, udpt_teardown),
        cmocka_unit_test_setup_teardown(test_send_proxy_short, udpt_setup, udpt_teardown),
        cmocka_unit_test_setup_teardown(test_echo_order, udpt_setup, udpt_teardown),
        cmocka_unit_test_setup_teardown(test_two_hops, udpt_setup, udpt_teardown),
        cmocka_unit_test_setup_teardown(test_ipv6, udpt_setup, udpt_teardown),
        cmocka_unit_test_setup_teardown(test_big, udpt_setup, udpt_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, udpt_setup, udpt_teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
