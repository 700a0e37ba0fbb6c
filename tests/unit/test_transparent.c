/*
 * test_transparent.c - transparent.c: the source address chosen for a client,
 * and sockets bound to a foreign address with IP_TRANSPARENT.
 *
 * The socket tests need root: the process moves into a network namespace of
 * its own (unshare(CLONE_NEWNET)) with lo up and the policy routing
 * transparent mode documents, so nothing of the host is touched; they are
 * skipped, saying why, where that cannot be done.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "engine/transparent.h"

static const char *no_netns; /* why the socket tests are skipped; NULL if they run */

static struct sockaddr_storage ss4(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage ss6(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    return ss;
}

#define SA(x) ((const struct sockaddr *)(x))

static void test_source_same_family(void **state)
{
    struct sockaddr_storage c4 = ss4("203.0.113.5", 4000), c6 = ss6("2001:db8::5", 4001), out;

    (void)state;
    assert_int_equal(transparent_source(SA(&c4), AF_INET, &out), 0);
    assert_memory_equal(&out, &c4, sizeof(struct sockaddr_in));
    assert_int_equal(transparent_source(SA(&c6), AF_INET6, &out), 0);
    assert_memory_equal(&out, &c6, sizeof(struct sockaddr_in6));
}

static void test_source_mapped_to_ipv4(void **state)
{
    struct sockaddr_storage c = ss6("::ffff:203.0.113.9", 5555), out;
    const struct sockaddr_in *o = (const struct sockaddr_in *)&out;
    char ip[INET_ADDRSTRLEN];

    (void)state;
    assert_int_equal(transparent_source(SA(&c), AF_INET, &out), 0);
    assert_int_equal(o->sin_family, AF_INET);
    assert_int_equal(ntohs(o->sin_port), 5555);
    inet_ntop(AF_INET, &o->sin_addr, ip, sizeof(ip));
    assert_string_equal(ip, "203.0.113.9");
}

static void test_source_family_mismatch_and_own(void **state)
{
    struct sockaddr_storage c4 = ss4("203.0.113.5", 1), c6 = ss6("2001:db8::5", 1), out;
    struct sockaddr_storage unspec, un;

    (void)state;
    memset(&unspec, 0, sizeof(unspec));
    memset(&un, 0, sizeof(un));
    un.ss_family = AF_UNIX;
    assert_int_equal(transparent_source(SA(&c4), AF_INET6, &out), TRANSPARENT_FAMILY);
    assert_int_equal(transparent_source(SA(&c6), AF_INET, &out), TRANSPARENT_FAMILY);
    assert_int_equal(transparent_source(SA(&unspec), AF_INET, &out), TRANSPARENT_OWN);
    assert_int_equal(transparent_source(SA(&un), AF_INET6, &out), TRANSPARENT_OWN);
}

static int skip_without_netns(void)
{
    if (no_netns == NULL)
        return 0;
    fprintf(stderr, "SKIP: %s\n", no_netns);
    skip();
    return 1;
}

static uint16_t port_of(int fd, struct sockaddr_storage *ss)
{
    socklen_t len = sizeof(*ss);

    assert_int_equal(getsockname(fd, (struct sockaddr *)ss, &len), 0);
    return ss->ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)ss)->sin6_port)
                                     : ntohs(((struct sockaddr_in *)ss)->sin_port);
}

/* A foreign address binds only with the option: the control shows why. */
static void test_binds_foreign_address(void **state)
{
    struct sockaddr_storage src = ss4("198.51.100.9", 40001), got;
    struct sockaddr_storage src6 = ss6("2001:db8:77::9", 40002);
    char err[256];
    int fd, plain;

    (void)state;
    if (skip_without_netns())
        return;
    assert_int_equal(transparent_check(AF_INET, err, sizeof(err)), 0);
    assert_int_equal(transparent_check(AF_INET6, err, sizeof(err)), 0);
    plain = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(plain >= 0);
    assert_int_equal(bind(plain, SA(&src), sizeof(struct sockaddr_in)), -1);
    assert_int_equal(errno, EADDRNOTAVAIL);
    close(plain);

    fd = transparent_socket(SOCK_STREAM, &src);
    assert_true(fd >= 0);
    assert_int_equal(port_of(fd, &got), 40001);
    assert_memory_equal(&((struct sockaddr_in *)&got)->sin_addr,
                        &((struct sockaddr_in *)&src)->sin_addr, 4);
    close(fd);
    fd = transparent_socket(SOCK_DGRAM, &src6);
    assert_true(fd >= 0);
    assert_int_equal(port_of(fd, &got), 40002);
    close(fd);
}

/* The client's port taken on this host: same address, another port. */
static void test_port_taken(void **state)
{
    struct sockaddr_storage any = ss4("127.0.0.1", 0), taken, got, up;
    socklen_t len = sizeof(taken);
    int hold, lst, fd, types[] = {SOCK_STREAM, SOCK_DGRAM};

    (void)state;
    if (skip_without_netns())
        return;
    for (int i = 0; i < 2; i++) {
        hold = socket(AF_INET, types[i], 0);
        assert_int_equal(bind(hold, SA(&any), sizeof(struct sockaddr_in)), 0);
        assert_int_equal(getsockname(hold, (struct sockaddr *)&taken, &len), 0);
        /* The upstream: a TCP listener or a UDP socket on 127.0.0.1. */
        lst = socket(AF_INET, types[i], 0);
        assert_int_equal(bind(lst, SA(&any), sizeof(struct sockaddr_in)), 0);
        if (types[i] == SOCK_STREAM)
            assert_int_equal(listen(lst, 4), 0);
        len = sizeof(up);
        assert_int_equal(getsockname(lst, (struct sockaddr *)&up, &len), 0);

        fd = transparent_socket(types[i], &taken);
        assert_true(fd >= 0);
        if (connect(fd, SA(&up), sizeof(struct sockaddr_in)) != 0)
            assert_int_equal(errno, EINPROGRESS);
        assert_true(port_of(fd, &got) != ntohs(((struct sockaddr_in *)&taken)->sin_port));
        assert_true(port_of(fd, &got) != 0);
        assert_memory_equal(&((struct sockaddr_in *)&got)->sin_addr,
                            &((struct sockaddr_in *)&taken)->sin_addr, 4);
        close(fd);
        close(lst);
        close(hold);
        len = sizeof(taken);
    }
}

/* End to end with the documented policy routing: a loopback upstream
 * accepts a connection from the foreign client address itself, and its
 * reply comes back to the transparent socket. */
static void test_upstream_sees_client(void **state)
{
    struct sockaddr_storage any = ss4("127.0.0.1", 0), up, client = ss4("198.51.100.20", 45678);
    struct sockaddr_storage peer;
    socklen_t len = sizeof(up);
    char ip[INET_ADDRSTRLEN], buf[8];
    int lst, fd, a;

    (void)state;
    if (skip_without_netns())
        return;
    lst = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(lst, SA(&any), sizeof(struct sockaddr_in)), 0);
    assert_int_equal(listen(lst, 4), 0);
    assert_int_equal(getsockname(lst, (struct sockaddr *)&up, &len), 0);
    fd = transparent_socket(SOCK_STREAM, &client);
    assert_true(fd >= 0);
    if (connect(fd, SA(&up), sizeof(struct sockaddr_in)) != 0)
        assert_int_equal(errno, EINPROGRESS);
    len = sizeof(peer);
    a = accept(lst, (struct sockaddr *)&peer, &len); /* blocking: the handshake is local */
    assert_true(a >= 0);
    inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, ip, sizeof(ip));
    assert_string_equal(ip, "198.51.100.20");
    assert_int_equal(ntohs(((struct sockaddr_in *)&peer)->sin_port), 45678);
    assert_int_equal(write(a, "pong", 4), 4);
    for (int i = 0; i < 200; i++) { /* at most 2 s */
        if (read(fd, buf, sizeof(buf)) == 4)
            break;
        assert_int_equal(errno, EAGAIN);
        usleep(10000);
    }
    assert_memory_equal(buf, "pong", 4);
    close(a);
    close(fd);
    close(lst);
}

/* Without CAP_NET_ADMIN (and CAP_NET_RAW): the check names the capability and the unit line
 * that grants it; a socket fails with EPERM. Run in a child that drops it. */
static void test_without_capability(void **state)
{
    struct sockaddr_storage src = ss4("198.51.100.9", 40003);
    pid_t pid;
    int status;

    (void)state;
    if (skip_without_netns())
        return;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct d[2];
        char err[256];

        if (syscall(SYS_capget, &h, d) != 0)
            _exit(10);
        /* Linux also accepts CAP_NET_RAW for the option: drop both. */
        d[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
        d[CAP_NET_ADMIN / 32].permitted &= ~(1u << (CAP_NET_ADMIN % 32));
        d[CAP_NET_RAW / 32].effective &= ~(1u << (CAP_NET_RAW % 32));
        d[CAP_NET_RAW / 32].permitted &= ~(1u << (CAP_NET_RAW % 32));
        if (syscall(SYS_capset, &h, d) != 0)
            _exit(11);
        if (transparent_check(AF_INET, err, sizeof(err)) != -1)
            _exit(12);
        if (strstr(err, "CAP_NET_ADMIN") == NULL ||
            strstr(err, "AmbientCapabilities=CAP_NET_ADMIN") == NULL)
            _exit(13);
        if (transparent_socket(SOCK_STREAM, &src) != -EPERM)
            _exit(14);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Moves this process into a network namespace of its own, with lo up and
 * replies to foreign addresses delivered locally. */
static void enter_netns(void)
{
    static const char *const setup[] = {
        "ip link set lo up",
        "ip rule add from 127.0.0.1/8 iif lo table 123",
        "ip route add local 0.0.0.0/0 dev lo table 123",
        "ip -6 rule add from ::1/128 iif lo table 123",
        "ip -6 route add local ::/0 dev lo table 123",
    };

    if (geteuid() != 0) {
        no_netns = "not root: IP_TRANSPARENT needs CAP_NET_ADMIN and a namespace of our own";
        return;
    }
    if (unshare(CLONE_NEWNET) != 0) {
        no_netns = "unshare(CLONE_NEWNET) failed";
        return;
    }
    for (size_t i = 0; i < sizeof(setup) / sizeof(setup[0]); i++) {
        char cmd[160];

        snprintf(cmd, sizeof(cmd), "%s >/dev/null 2>&1", setup[i]);
        if (system(cmd) != 0) {
            no_netns = "ip (iproute2) could not set up the namespace's routing";
            return;
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_same_family),
        cmocka_unit_test(test_source_mapped_to_ipv4),
        cmocka_unit_test(test_source_family_mismatch_and_own),
        cmocka_unit_test(test_binds_foreign_address),
        cmocka_unit_test(test_port_taken),
        cmocka_unit_test(test_upstream_sees_client),
        cmocka_unit_test(test_without_capability),
    };

    enter_netns();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
