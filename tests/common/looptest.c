/*
 * looptest.c - the fixture of the event loop's unit tests (test_loop*.c):
 * one loop per test with a safety timer (SAFETY_MS) that stops it and flags
 * the test as timed out, so a bug fails the test instead of hanging it, and
 * what callbacks recorded.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop/loop.h"
#include "looptest.h"
#include "rng.h"

int lt_backend = LOOP_BACKEND_EPOLL;

struct loop *lt_loop_new(int max_fds)
{
    return loop_new_backend(max_fds, lt_backend);
}

int lt_run_both(const char *name, const struct CMUnitTest *tests, size_t n)
{
    char group[256];
    struct loop *l;
    int fails;

    lt_backend = LOOP_BACKEND_EPOLL;
    snprintf(group, sizeof(group), "%s [epoll]", name);
    fails = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
    snprintf(group, sizeof(group), "%s [io_uring]", name);
    l = loop_new_backend(8, LOOP_BACKEND_URING);
    if (l == NULL) {
        printf("[  SKIPPED ] %s: the ring cannot be set up: %s\n", group, strerror(errno));
        return fails;
    }
    loop_free(l);
    lt_backend = LOOP_BACKEND_URING;
    fails += _cmocka_run_group_tests(group, tests, n, NULL, NULL);
    return fails;
}

static void on_safety(struct loop *l, struct timer *t, void *arg)
{
    struct lt_fix *f = arg;

    (void)t;
    f->timed_out = 1;
    loop_stop(l);
}

int lt_setup(void **state)
{
    struct lt_fix *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    f->l = lt_loop_new(MAX_FDS);
    if (f->l == NULL) {
        free(f);
        return -1;
    }
    loop_timer_set(f->l, &f->safety, SAFETY_MS, on_safety, f);
    *state = f;
    return 0;
}

int lt_teardown(void **state)
{
    struct lt_fix *f = *state;

    loop_free(f->l);
    free(f);
    return 0;
}

void lt_note(struct lt_fix *f, char c)
{
    if (f->nlog + 1 < sizeof(f->log))
        f->log[f->nlog++] = c;
}

void lt_record(struct lt_fix *f, unsigned events)
{
    if ((size_t)f->calls < sizeof(f->events) / sizeof(f->events[0]))
        f->events[f->calls] = events;
    f->calls++;
}

void lt_sockpair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
}

void lt_put_byte(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
}

void lt_close_pair(int sv[2])
{
    close(sv[0]);
    close(sv[1]);
}

/* Records the events, reads what is there, and stops the loop. */
void lt_on_ready_stop(struct loop *l, int fd, void *arg, unsigned events)
{
    char buf[16];
    ssize_t n;

    lt_record(arg, events);
    if (events & LOOP_READ) {
        n = read(fd, buf, sizeof(buf));
        assert_true(n > 0);
    }
    loop_stop(l);
}

void lt_on_stop_timer(struct loop *l, struct timer *t, void *arg)
{
    (void)t;
    (void)arg;
    loop_stop(l);
}
