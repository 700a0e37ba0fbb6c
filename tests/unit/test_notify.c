/*
 * test_notify.c - the sd_notify wire protocol of notify.c, with the test
 * playing systemd: $NOTIFY_SOCKET values (file system path, @abstract, the
 * ones refused), then the datagrams a server sends at start, around a
 * reload and at SIGTERM, read from a socket the test binds, with the
 * sender's credentials (systemd's NotifyAccess=main checks the PID).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "engine/notify.h"
#include "engine/route.h"
#include "engine/server.h"

static void test_notify_addr(void **state)
{
    struct sockaddr_un sun;
    socklen_t len;
    char longpath[200];

    (void)state;
    assert_null(notify_addr("/run/systemd/notify", &sun, &len));
    assert_int_equal(sun.sun_family, AF_UNIX);
    assert_string_equal(sun.sun_path, "/run/systemd/notify");
    assert_int_equal(len,
                     offsetof(struct sockaddr_un, sun_path) + strlen("/run/systemd/notify") + 1);

    assert_null(notify_addr("@sd-notify/x", &sun, &len));
    assert_int_equal(sun.sun_path[0], '\0');
    assert_memory_equal(sun.sun_path + 1, "sd-notify/x", 11);
    /* Abstract: the name's bytes only, no trailing NUL. */
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 12);

    assert_non_null(notify_addr("", &sun, &len));
    assert_non_null(notify_addr("relative/path", &sun, &len));
    assert_non_null(notify_addr("@", &sun, &len));
    assert_non_null(notify_addr("vsock:2:1234", &sun, &len));
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_non_null(notify_addr(longpath, &sun, &len));
}

/* The systemd side: an abstract datagram socket with SO_PASSCRED. */
static int bind_notify(char *name, size_t cap)
{
    struct sockaddr_un sun;
    socklen_t len;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;

    assert_int_not_equal(fd, -1);
    snprintf(name, cap, "@ppfwd-test-notify-%d", (int)getpid());
    assert_null(notify_addr(name, &sun, &len));
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, len), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
    return fd;
}

/* Reads one datagram within timeout_ms into buf; returns the sender's PID
 * from its credentials, or -1 when none came. */
static int recv_msg(int fd, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char cbuf[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec iov = {.iov_base = buf, .iov_len = cap - 1};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    struct cmsghdr *c;
    ssize_t n;

    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    n = recvmsg(fd, &mh, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred u;
            memcpy(&u, CMSG_DATA(c), sizeof(u));
            return (int)u.pid;
        }
    }
    fail_msg("no credentials on the datagram");
    return -1;
}

static uint64_t mono_usec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

/* A server with two routes, 3 + 1 open connections and 2 UDP sessions (a
 * route's conns counts its UDP sessions too). */
static void fake_server(struct server *srv, struct route *r, struct route **v)
{
    memset(srv, 0, sizeof(*srv));
    memset(r, 0, 2 * sizeof(*r));
    pthread_mutex_init(&srv->lock, NULL);
    atomic_init(&r[0].conns, 3);
    atomic_init(&r[1].conns, 3);
    atomic_init(&r[0].udp_sessions, 0);
    atomic_init(&r[1].udp_sessions, 2);
    v[0] = &r[0];
    v[1] = &r[1];
    srv->routes = v;
    srv->nroutes = 2;
}

static void test_notify_sequence(void **state)
{
    struct server srv;
    struct route r[2], *v[2];
    char name[64], msg[512];
    uint64_t before, after, usec;
    const char *p;
    int fd;

    (void)state;
    fd = bind_notify(name, sizeof(name));
    fake_server(&srv, r, v);
    assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);

    assert_int_equal(notify_start(&srv), 0);
    assert_int_equal(recv_msg(fd, msg, sizeof(msg), 2000), (int)getpid());
    assert_string_equal(msg, "READY=1\nSTATUS=2 routes, 4 open connections, 2 UDP sessions\n");

    before = mono_usec();
    notify_reloading(&srv);
    after = mono_usec();
    assert_int_equal(recv_msg(fd, msg, sizeof(msg), 2000), (int)getpid());
    assert_non_null(strstr(msg, "RELOADING=1\n"));
    p = strstr(msg, "MONOTONIC_USEC=");
    assert_non_null(p);
    usec = strtoull(p + strlen("MONOTONIC_USEC="), NULL, 10);
    assert_true(usec >= before && usec <= after);

    atomic_store(&r[0].conns, 0);
    notify_ready(&srv);
    assert_int_equal(recv_msg(fd, msg, sizeof(msg), 2000), (int)getpid());
    assert_string_equal(msg, "READY=1\nSTATUS=2 routes, 1 open connection, 2 UDP sessions\n");

    /* The status thread reports a change within its 2 s period. */
    pthread_mutex_lock(&srv.lock); /* both counts in one status */
    atomic_store(&r[1].udp_sessions, 1);
    atomic_store(&r[1].conns, 2);
    pthread_mutex_unlock(&srv.lock);
    assert_int_equal(recv_msg(fd, msg, sizeof(msg), 3500), (int)getpid());
    assert_string_equal(msg, "STATUS=2 routes, 1 open connection, 1 UDP session\n");

    notify_stopping();
    assert_int_equal(recv_msg(fd, msg, sizeof(msg), 2000), (int)getpid());
    assert_string_equal(msg, "STOPPING=1\nSTATUS=draining: 2 routes, 1 open connection, "
                             "1 UDP session\n");
    atomic_store(&r[1].conns, 1);
    assert_int_equal(recv_msg(fd, msg, sizeof(msg), 3500), (int)getpid());
    assert_string_equal(msg, "STATUS=draining: 2 routes, 0 open connections, 1 UDP session\n");
    notify_stop();
    /* Stopped: nothing more comes, and calls are no-ops. */
    notify_ready(&srv);
    assert_int_equal(recv_msg(fd, msg, sizeof(msg), 300), -1);
    unsetenv("NOTIFY_SOCKET");
    pthread_mutex_destroy(&srv.lock);
    close(fd);
}

/* Without $NOTIFY_SOCKET, or with one that names nothing: the server runs
 * on (a bad value is logged), and nothing is sent anywhere. */
static void test_notify_absent_or_bad(void **state)
{
    struct server srv;
    struct route r[2], *v[2];

    (void)state;
    fake_server(&srv, r, v);
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(notify_start(&srv), 0);
    notify_reloading(&srv);
    notify_ready(&srv);
    notify_stopping();
    notify_stop();
    assert_int_equal(setenv("NOTIFY_SOCKET", "not-absolute", 1), 0);
    assert_int_equal(notify_start(&srv), 0);
    notify_ready(&srv);
    notify_stop();
    /* A path with no socket behind it: the send fails, once logged. */
    assert_int_equal(setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1), 0);
    assert_int_equal(notify_start(&srv), 0);
    notify_reloading(&srv);
    notify_ready(&srv);
    notify_stop();
    unsetenv("NOTIFY_SOCKET");
    pthread_mutex_destroy(&srv.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_addr),
        cmocka_unit_test(test_notify_sequence),
        cmocka_unit_test(test_notify_absent_or_bad),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
