/*
 * test_loop_fallback.c - the event loop when the kernel refuses io_uring
 * (src/loop/loop.c loop_open_backend): io_uring_setup failing with EPERM,
 * as under kernel.io_uring_disabled or a container's seccomp profile.
 * LOOP_BACKEND_URING then fails with that errno, and loop_new() (AUTO)
 * falls back to an epoll loop that works: a read callback, a timer and a
 * wake fire, and nothing leaks (fds, memory).
 *
 * The refusal comes from the seccomp filter of tests/common/nouring.c,
 * which cannot be undone, so each test runs in a forked child that
 * installs it; the global sysctl is left alone (other tests run at the
 * same time). The child cannot use cmocka's assertions (a failure would
 * longjmp back into the child's copy of the runner): it reports a failure
 * as a message on a pipe and exit status 1, or a skip (the filter could
 * not be installed) as status CHILD_SKIP, and the parent asserts on that
 * within CHILD_SECONDS.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifdef HAVE_URING
#include <linux/io_uring.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#include "loop/loop.h"
#include "nouring.h"

#define CHILD_SKIP 77
#define CHILD_SECONDS 10
#define FALLBACK_MAX_FDS 1024
#define TIMER_MS 20
#define SAFETY_MS 2000

/* ---- the child's side ---------------------------------------------------- */

static int child_fd = -1;

__attribute__((format(printf, 3, 4), noreturn)) static void child_exit(int status, int line,
                                                                       const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n = snprintf(buf, sizeof(buf), "line %d: ", line);

    va_start(ap, fmt);
    vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    va_end(ap);
    if (write(child_fd, buf, strlen(buf)) < 0)
        _exit(2);
    _exit(status);
}

#define CHILD_CHECK(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            child_exit(1, __LINE__, __VA_ARGS__);                                                  \
    } while (0)

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    CHILD_CHECK(d != NULL, "opendir /proc/self/fd: %s", strerror(errno));
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* Installs the filter (or ends the child with CHILD_SKIP and the reason),
 * then checks the premise: the kernel itself now refuses the ring. */
static void child_refuse_uring(void)
{
    int rc = nouring_install();

    if (rc < 0)
        child_exit(CHILD_SKIP, __LINE__, "cannot install the seccomp filter: %s", strerror(-rc));
#ifdef HAVE_URING
    {
        struct io_uring_params p;

        memset(&p, 0, sizeof(p));
        errno = 0;
        rc = (int)syscall(__NR_io_uring_setup, 8, &p);
        CHILD_CHECK(rc == -1 && errno == EPERM,
                    "io_uring_setup under the filter returned %d (%s), want -1 (EPERM)", rc,
                    strerror(errno));
    }
#endif
}

/* No leak on the way (memory, checked by LeakSanitizer under ASan: the
 * child ends with _exit, which skips the check at exit). */
static void child_no_leak(void)
{
#ifdef HAVE_LSAN
    CHILD_CHECK(__lsan_do_recoverable_leak_check() == 0, "LeakSanitizer found leaks (above)");
#endif
}

struct probe {
    int reads, timers, wakes, safety;
    uint64_t armed_at, fired_at;
    unsigned events;
};

static void on_read(struct loop *l, int fd, void *arg, unsigned events)
{
    struct probe *p = arg;
    char buf[16];

    (void)l;
    p->reads++;
    p->events |= events;
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

static void on_timer(struct loop *l, struct timer *t, void *arg)
{
    struct probe *p = arg;

    (void)t;
    p->timers++;
    p->fired_at = loop_now(l);
    loop_stop(l);
}

static void on_safety(struct loop *l, struct timer *t, void *arg)
{
    struct probe *p = arg;

    (void)t;
    p->safety = 1;
    loop_stop(l);
}

static void on_wake(struct loop *l, void *arg)
{
    struct probe *p = arg;

    (void)l;
    p->wakes++;
}

/* l works: a byte on a socketpair reaches its read callback, a wake its
 * callback, and a TIMER_MS timer fires no earlier than that, then stops
 * the loop (a SAFETY_MS timer stops it otherwise). */
static void child_exercise(struct loop *l, const char *what)
{
    struct probe p = {0};
    struct timer t = {0}, safety = {0};
    int sv[2], rc;

    CHILD_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0,
                "socketpair: %s", strerror(errno));
    rc = loop_add(l, sv[0], LOOP_READ, on_read, &p);
    CHILD_CHECK(rc == 0, "%s: loop_add: %s", what, strerror(-rc));
    CHILD_CHECK(write(sv[1], "x", 1) == 1, "write: %s", strerror(errno));
    loop_on_wake(l, on_wake, &p);
    loop_wake(l);
    p.armed_at = loop_now(l);
    loop_timer_set(l, &t, TIMER_MS, on_timer, &p);
    loop_timer_set(l, &safety, SAFETY_MS, on_safety, &p);
    rc = loop_run(l);
    CHILD_CHECK(rc == 0, "%s: loop_run: %s", what, strerror(-rc));
    CHILD_CHECK(!p.safety,
                "%s: nothing stopped the loop within %d ms (reads %d, timers %d, "
                "wakes %d)",
                what, SAFETY_MS, p.reads, p.timers, p.wakes);
    CHILD_CHECK(p.reads == 1 && p.events == LOOP_READ,
                "%s: read callback called %d times with events %#x, want once with LOOP_READ", what,
                p.reads, p.events);
    CHILD_CHECK(p.wakes == 1, "%s: wake callback called %d times, want once", what, p.wakes);
    CHILD_CHECK(p.timers == 1 && p.fired_at - p.armed_at >= TIMER_MS,
                "%s: timer fired %d times, %llu ms after it was armed (want once, >= %d)", what,
                p.timers, (unsigned long long)(p.fired_at - p.armed_at), TIMER_MS);
    loop_timer_cancel(l, &safety);
    loop_remove(l, sv[0]);
    close(sv[0]);
    close(sv[1]);
}

static void child_uring_refused(void)
{
    int fds;
    struct loop *l;

    child_refuse_uring();
    fds = count_fds();
    errno = 0;
    l = loop_new_backend(FALLBACK_MAX_FDS, LOOP_BACKEND_URING);
    CHILD_CHECK(l == NULL, "loop_new_backend(URING) under the filter gave a loop (%s)",
                loop_backend(l));
    CHILD_CHECK(errno == EPERM, "loop_new_backend(URING) failed with %s, want EPERM",
                strerror(errno));
    CHILD_CHECK(count_fds() == fds, "%d fds after the failed loop_new_backend, %d before",
                count_fds(), fds);
    child_no_leak();
}

static void child_auto_falls_back(void)
{
    int fds;
    struct loop *l;

    child_refuse_uring();
    /* loop_new() picks epoll itself under PPFWD_LOOP=epoll: what is under
     * test here is AUTO, which must find out on its own. */
    CHILD_CHECK(unsetenv("PPFWD_LOOP") == 0, "unsetenv: %s", strerror(errno));
    fds = count_fds();
    l = loop_new(FALLBACK_MAX_FDS);
    CHILD_CHECK(l != NULL, "loop_new under the filter: %s", strerror(errno));
    CHILD_CHECK(strcmp(loop_backend(l), "epoll") == 0, "loop_new under the filter: backend %s",
                loop_backend(l));
    child_exercise(l, "loop_new");
    loop_free(l);

    l = loop_new_backend(FALLBACK_MAX_FDS, LOOP_BACKEND_AUTO);
    CHILD_CHECK(l != NULL, "loop_new_backend(AUTO) under the filter: %s", strerror(errno));
    CHILD_CHECK(strcmp(loop_backend(l), "epoll") == 0,
                "loop_new_backend(AUTO) under the filter: backend %s", loop_backend(l));
    child_exercise(l, "loop_new_backend(AUTO)");
    loop_free(l);
    CHILD_CHECK(count_fds() == fds, "%d fds after loop_free, %d before loop_new", count_fds(), fds);
    child_no_leak();
}

/* ---- the parent's side --------------------------------------------------- */

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs fn in a child; fails with the child's message, skips with it when
 * the child could not refuse io_uring. */
static void in_child(void (*fn)(void))
{
    char msg[1024] = "";
    size_t len = 0;
    double end = mono_s() + CHILD_SECONDS;
    int p[2], status = 0;
    pid_t pid, w;

#ifndef HAVE_URING
    print_message("built without liburing (HAVE_URING unset): the loop is epoll only, there "
                  "is no fallback to test\n");
    skip();
    return;
#endif
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child_fd = p[1];
        fn();
        _exit(0);
    }
    close(p[1]);
    /* The message, until the child closes the pipe (exits) or time is up. */
    for (;;) {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        int left = (int)((end - mono_s()) * 1000);
        ssize_t n;

        if (left <= 0 || poll(&pf, 1, left) <= 0)
            break;
        n = read(p[0], msg + len, sizeof(msg) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof(msg) - 1)
            break;
    }
    close(p[0]);
    msg[len] = '\0';
    while ((w = waitpid(pid, &status, WNOHANG)) == 0 && mono_s() < end)
        usleep(10000);
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the child did not finish within %d s: %s", CHILD_SECONDS, msg);
    }
    assert_int_equal(w, pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_SKIP) {
        print_message("%s\n", msg);
        skip();
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child %s %d: %s", WIFEXITED(status) ? "exited with" : "killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), msg);
}

/* LOOP_BACKEND_URING fails with the kernel's EPERM, leaving no fd behind. */
static void test_uring_refused(void **state)
{
    (void)state;
    in_child(child_uring_refused);
}

/* loop_new() and LOOP_BACKEND_AUTO fall back to epoll, which works. */
static void test_auto_falls_back(void **state)
{
    (void)state;
    in_child(child_auto_falls_back);
}

/* Under valgrind (its preload named in LD_PRELOAD) loop_new() takes epoll:
 * a thread asleep in io_uring_enter there holds valgrind's lock, and the
 * process hangs, deaf to SIGTERM. Only the variable is looked at, so
 * setting it here is enough (nothing is exec'd while it is set). */
static void test_valgrind_picks_epoll(void **state)
{
    struct loop *l;
    const char *old = getenv("LD_PRELOAD");
    char *saved = old ? strdup(old) : NULL;

    (void)state;
    unsetenv("PPFWD_LOOP");
    assert_int_equal(setenv("LD_PRELOAD", "/usr/libexec/valgrind/vgpreload_core-amd64-linux.so", 1), 0);
    l = loop_new(16);
    assert_non_null(l);
    assert_string_equal(loop_backend(l), "epoll");
    loop_free(l);
    if (saved != NULL)
        setenv("LD_PRELOAD", saved, 1);
    else
        unsetenv("LD_PRELOAD");
    free(saved);
    /* Without it, the ring when the kernel allows one. */
    l = loop_new_backend(16, LOOP_BACKEND_URING);
    if (l == NULL)
        return;
    loop_free(l);
    l = loop_new(16);
    assert_non_null(l);
    assert_string_equal(loop_backend(l), "io_uring");
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uring_refused),
        cmocka_unit_test(test_auto_falls_back),
        cmocka_unit_test(test_valgrind_picks_epoll),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
