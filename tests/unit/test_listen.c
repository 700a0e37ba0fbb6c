/*
 * test_listen.c - TCP listeners (src/engine/listen.c): a socket accepted
 * from listen_open()'s listener has TCP_NODELAY set without a setsockopt of
 * its own (Linux copies it from the listener, which conn.c relies on), on
 * IPv4, IPv6 and the dual-stack socket; a connection accepted the same way
 * from a plain listener does not (the check can fail).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "engine/listen.h"

static int nodelay(int fd)
{
    int v = -1;
    socklen_t len = sizeof(v);

    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    return v;
}

/* Connects to the listener lfd from addr's family and returns the accepted
 * socket (accepted as listen.c does). *cfd_out gets the client side. */
static int accept_one(int lfd, int family, int *cfd_out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int cfd, afd;

    assert_int_equal(getsockname(lfd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET6 && family == AF_INET) {
        /* Dual-stack listener: reach it over IPv4. */
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = s6->sin6_port};

        s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        memcpy(&ss, &s4, sizeof(s4));
        len = sizeof(s4);
    } else if (ss.ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
    }
    cfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(cfd >= 0);
    assert_int_equal(connect(cfd, (struct sockaddr *)&ss, len), 0);
    afd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_true(afd >= 0);
    *cfd_out = cfd;
    return afd;
}

static void check_route(int bind_family, int family, int v6only, int connect_family)
{
    struct route_cfg rc;
    char err[128] = "";
    int lfd = -1, cfd, afd;

    memset(&rc, 0, sizeof(rc));
    rc.family = family;
    if (bind_family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&rc.bind;

        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc.bindlen = sizeof(*s4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&rc.bind;

        s6->sin6_family = AF_INET6;
        s6->sin6_addr = v6only ? in6addr_loopback : in6addr_any;
        rc.bindlen = sizeof(*s6);
    }
    if (listen_open(&rc, &lfd, err, sizeof(err)) != 0) {
        if (bind_family == AF_INET6 && strstr(err, "bind") != NULL) {
            skip(); /* no IPv6 on this host */
            return;
        }
        fail_msg("listen_open: %s", err);
    }
    afd = accept_one(lfd, connect_family, &cfd);
    assert_int_equal(nodelay(afd), 1);
    /* The client's socket is not ppfwd's: nothing set it. */
    assert_int_equal(nodelay(cfd), 0);
    close(afd);
    close(cfd);
    close(lfd);
}

static void test_nodelay_inherited_v4(void **state)
{
    (void)state;
    check_route(AF_INET, AF_UNSPEC, 0, AF_INET);
}

static void test_nodelay_inherited_v6(void **state)
{
    (void)state;
    check_route(AF_INET6, AF_INET6, 1, AF_INET6);
}

static void test_nodelay_inherited_dual_stack(void **state)
{
    (void)state;
    check_route(AF_INET6, AF_UNSPEC, 0, AF_INET);
}

/* The control: without it on the listener, an accepted socket has it off,
 * so the assertions above do test the inheritance. */
static void test_plain_listener_has_no_nodelay(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), cfd, afd;

    (void)state;
    assert_true(lfd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    afd = accept_one(lfd, AF_INET, &cfd);
    assert_int_equal(nodelay(afd), 0);
    close(afd);
    close(cfd);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nodelay_inherited_v4),
        cmocka_unit_test(test_nodelay_inherited_v6),
        cmocka_unit_test(test_nodelay_inherited_dual_stack),
        cmocka_unit_test(test_plain_listener_has_no_nodelay),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
