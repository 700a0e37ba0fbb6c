/*
 * looptest.h - the fixture of the event loop's unit tests: see looptest.c.
 */
#ifndef PPFWD_TESTS_LOOPTEST_H
#define PPFWD_TESTS_LOOPTEST_H

#include <stddef.h>

#include "loop/loop.h"

#define MAX_FDS 1024
#define SAFETY_MS 2000
#define MANY_TIMERS 10000

/* One per test: the loop, its safety timer, and what callbacks recorded. */
struct lt_fix {
    struct loop *l;
    struct timer safety;
    int timed_out;
    int calls;
    unsigned events[16];
    char log[64];
    size_t nlog;
    struct loop_work wd, we; /* test_defer_order's deferred work */
};

/* The backend lt_setup (and lt_loop_new) give each test: set by
 * lt_run_both. */
extern int lt_backend;

/* loop_new_backend(max_fds, lt_backend). */
struct loop *lt_loop_new(int max_fds);

/* Runs the group twice, on epoll then on io_uring; the io_uring run is
 * skipped, with the reason, when the ring cannot be set up. Returns the
 * number of failures, for main(). */
int lt_run_both(const char *name, const struct CMUnitTest *tests, size_t n);
#define LT_RUN_BOTH(tests) lt_run_both(__FILE__, tests, sizeof(tests) / sizeof((tests)[0]))

int lt_setup(void **state);

int lt_teardown(void **state);

void lt_note(struct lt_fix *f, char c);

void lt_record(struct lt_fix *f, unsigned events);

void lt_sockpair(int sv[2]);

void lt_put_byte(int fd);

void lt_close_pair(int sv[2]);

/* Records the events, reads what is there, and stops the loop. */
void lt_on_ready_stop(struct loop *l, int fd, void *arg, unsigned events);

void lt_on_stop_timer(struct loop *l, struct timer *t, void *arg);

#endif /* PPFWD_TESTS_LOOPTEST_H */
