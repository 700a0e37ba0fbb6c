/*
 * test_metrics.c - the metrics endpoint's listener (src/engine/metrics.c)
 * when accept4(2) fails for want of resources: with accept4 replaced by a
 * version that fails on demand with EMFILE, ENFILE, ENOBUFS or ENOMEM and
 * a client waiting in the backlog (the listener stays readable), the
 * metrics thread pauses accepting (one try per ACCEPT_PAUSE_MS, 100 ms) instead of
 * spinning on it, and serves the client once accept4 works again.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "engine/metrics.h"
#include "engine/server.h"

/* ---- accept4, failing on demand ---------------------------------------------- */

static atomic_int accept_errno; /* accept4 fails with it while not 0 */
static atomic_uint naccept;     /* accept4 calls */

/* Defined here, it replaces libc's for metrics.c (linked into this program). */
int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    int err = atomic_load(&accept_errno);

    atomic_fetch_add(&naccept, 1);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return (int)syscall(SYS_accept4, fd, sa, len, flags);
}

/* listen.h's ACCEPT_PAUSE_MS: the pause between tries. */
#define PAUSE_MS 100

/* ---- the test ------------------------------------------------------------------ */

/* A free port on 127.0.0.1 (the endpoint binds it with SO_REUSEADDR). */
static void free_addr(struct sockaddr_storage *ss)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    socklen_t len = sizeof(*sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(ss, 0, sizeof(*ss));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)sin, sizeof(*sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)sin, &len), 0);
    close(fd);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static void paused_then_served(int err)
{
    struct server srv;
    struct sockaddr_storage ss;
    struct timeval tv = {.tv_sec = 5};
    char buf[256];
    unsigned calls;
    ssize_t n;
    int fd;

    memset(&srv, 0, sizeof(srv));
    pthread_mutex_init(&srv.lock, NULL);
    free_addr(&ss);
    atomic_store(&accept_errno, err);
    atomic_store(&naccept, 0);
    assert_int_equal(metrics_start(&srv, &ss), 0);

    /* A client in the backlog: the listener is readable from now on. */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
    sleep_ms(5 * PAUSE_MS);
    /* One try per pause, about 5 in that time; spinning makes thousands. */
    calls = atomic_load(&naccept);
    if (calls > 20)
        fail_msg("%s: %u accept4 calls in %d ms: the listener spins", strerror(err), calls,
                 5 * PAUSE_MS);
    assert_true(calls >= 1);

    /* Resources back: the waiting client is served. */
    atomic_store(&accept_errno, 0);
    assert_int_equal(send(fd, "GET /metrics HTTP/1.0\r\n\r\n", 25, MSG_NOSIGNAL), 25);
    n = recv(fd, buf, sizeof(buf) - 1, MSG_WAITALL);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_memory_equal(buf, "HTTP/1.0 200 OK\r\n", 17);
    close(fd);
    metrics_stop();
    pthread_mutex_destroy(&srv.lock);
}

static void test_out_of_fds_pauses(void **state)
{
    (void)state;
    paused_then_served(EMFILE);
    paused_then_served(ENFILE);
}

static void test_out_of_memory_pauses(void **state)
{
    (void)state;
    paused_then_served(ENOBUFS);
    paused_then_served(ENOMEM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_fds_pauses),
        cmocka_unit_test(test_out_of_memory_pauses),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
