/*
 * loop.c - the event loop (loop_*): level-triggered readiness, a table of
 * fd callbacks indexed by fd, a binary min-heap of timers, and deferred work
 * run at the end of each iteration. See loop.h for the contract.
 *
 * One iteration: compute the timeout to the earliest timer, wait for
 * readiness, dispatch fd events, run expired timers, run deferred work.
 *
 * Two backends behind the same calls: epoll, and io_uring (when built with
 * liburing, HAVE_URING) through one-shot polls, see loop_uring.c. Here: the
 * fd table, timers, deferred work, and the epoll backend.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "loop/loop.h"
#include "loop/loop_internal.h"

/* epoll_wait hands back at most this many events per call; the rest stay
 * ready (level-triggered) and come back on the next call. */
#define LOOP_MAX_EVENTS 1024
#define LOOP_TIMERS_MIN 64

static uint64_t clock_ms(void)
{
    struct timespec ts;

    /* CLOCK_MONOTONIC cannot fail with a valid pointer; timeouts must not
     * jump with wall-clock changes. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The epoll backend: the epoll fd, with the wake eventfd in it. */
static int loop_open_epoll(struct loop *l)
{
    struct epoll_event ev = {.events = EPOLLIN};
    int rc;

    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd == -1)
        return -errno;
    l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wakefd == -1)
        goto fail_ep;
    /* The eventfd may lie above max_fds, so it is recognised by number in
     * loop_dispatch() and never enters the fd table. */
    ev.data.fd = l->wakefd;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) == -1)
        goto fail_wake;
    return 0;

fail_wake:
    rc = -errno;
    close(l->wakefd);
    close(l->epfd);
    return rc;
fail_ep:
    rc = -errno;
    close(l->epfd);
    return rc;
}

/* io_uring when it can be set up (backend LOOP_BACKEND_AUTO) or must be
 * (LOOP_BACKEND_URING), epoll otherwise. */
static int loop_open_backend(struct loop *l, int backend)
{
#ifdef HAVE_URING
    if (backend != LOOP_BACKEND_EPOLL) {
        int rc = uring_open(l);

        if (rc == 0 || backend == LOOP_BACKEND_URING)
            return rc;
    }
#else
    if (backend == LOOP_BACKEND_URING)
        return -ENOSYS;
#endif
    return loop_open_epoll(l);
}

/* valgrind preloads its vgpreload_*.so into the program it runs. */
static int under_valgrind(void)
{
    const char *preload = getenv("LD_PRELOAD");

    return preload != NULL && strstr(preload, "vgpreload_") != NULL;
}

struct loop *loop_new(int max_fds)
{
    const char *env = getenv("PPFWD_LOOP");
    int epoll = (env != NULL && strcmp(env, "epoll") == 0) || under_valgrind();

    return loop_new_backend(max_fds, epoll ? LOOP_BACKEND_EPOLL : LOOP_BACKEND_AUTO);
}

struct loop *loop_new_backend(int max_fds, int backend)
{
    struct loop *l;
    int rc;

    /* The io_uring backend puts fd numbers in 30 bits of user_data. */
    if (max_fds <= 0 || max_fds > (1 << 30)) {
        errno = EINVAL;
        return NULL;
    }
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->epfd = -1;
    l->max_fds = max_fds;
    l->nevents = max_fds < LOOP_MAX_EVENTS ? max_fds + 1 : LOOP_MAX_EVENTS;
    l->fds = calloc((size_t)max_fds, sizeof(*l->fds));
    l->events = calloc((size_t)l->nevents, sizeof(*l->events));
    if (l->fds == NULL || l->events == NULL)
        goto fail;
    rc = loop_open_backend(l, backend);
    if (rc < 0) {
        errno = -rc;
        goto fail;
    }
    l->now = clock_ms();
    return l;

fail:
    rc = errno;
    free(l->events);
    free(l->fds);
    free(l);
    errno = rc;
    return NULL;
}

static void loop_run_deferred(struct loop *l)
{
    struct loop_work *w;

    /* Unlinked before the call: fn may free w's memory, or defer more
     * work, which lands at the tail and runs in this same drain. */
    while ((w = l->defer) != NULL) {
        l->defer = w->next;
        if (l->defer == NULL)
            l->defer_tail = NULL;
        w->next = NULL;
        w->queued = 0;
        w->fn(w->arg);
    }
}

void loop_free(struct loop *l)
{
    if (l == NULL)
        return;
    loop_run_deferred(l);
    /* Timers still armed are left alone: they live in their owners' memory,
     * which the deferred work above may just have freed. */
#ifdef HAVE_URING
    if (l->uring)
        uring_close(l);
#endif
    loop_acceptors_free(l);
    close(l->wakefd);
    if (l->epfd != -1)
        close(l->epfd);
    free(l->heap);
    free(l->events);
    free(l->fds);
    free(l);
}

const char *loop_backend(const struct loop *l)
{
#ifdef HAVE_URING
    if (l->uring)
        return "io_uring";
#endif
    (void)l;
    return "epoll";
}

/* ---- fds --------------------------------------------------------------- */

/* EPOLLRDHUP goes with EPOLLIN: sockets report it only together with
 * EPOLLIN (the FIN makes them readable), so it never wakes the loop more,
 * and it tells a reader that what is queued ends in EOF. */
static uint32_t mask_to_epoll(unsigned mask)
{
    return ((mask & LOOP_READ) ? EPOLLIN | EPOLLRDHUP : 0u) |
           ((mask & LOOP_WRITE) ? EPOLLOUT : 0u);
}

/* poll(2)'s bits are epoll's: the io_uring backend maps its polls' results
 * with this too. */
unsigned loop_poll_to_mask(uint32_t ev)
{
    return ((ev & EPOLLIN) ? LOOP_READ : 0u) | ((ev & EPOLLOUT) ? LOOP_WRITE : 0u) |
           ((ev & (EPOLLERR | EPOLLHUP)) ? LOOP_ERROR : 0u) |
           ((ev & EPOLLRDHUP) ? LOOP_RDHUP : 0u) | ((ev & EPOLLERR) ? LOOP_SOCKERR : 0u);
}

/* What a callback is handed of fd's readiness: what it still asks for (an
 * earlier callback of the batch may have narrowed its mask), errors, and
 * the FIN with LOOP_READ. */
unsigned loop_deliverable(const struct loop_fd *e)
{
    return e->mask | LOOP_ERROR | LOOP_SOCKERR | ((e->mask & LOOP_READ) ? LOOP_RDHUP : 0u);
}

/* epoll_ctl; with io_uring, the interest is recorded and fd queued for the
 * poll that follows it, at the start of the next iteration: no syscall. */
static int loop_ctl(struct loop *l, int op, int fd, unsigned mask)
{
    struct epoll_event ev = {.events = mask_to_epoll(mask)};

#ifdef HAVE_URING
    if (l->uring) {
        (void)op;
        (void)mask;
        uring_interest(l, fd);
        return 0;
    }
#endif
    ev.data.fd = fd;
    if (epoll_ctl(l->epfd, op, fd, &ev) == -1)
        return -errno;
    return 0;
}

int loop_add(struct loop *l, int fd, unsigned mask, loop_fd_cb *cb, void *arg)
{
    struct loop_fd *e;
    unsigned merged;
    int rc;

    if (fd < 0 || fd >= l->max_fds || (mask & ~(LOOP_READ | LOOP_WRITE | LOOP_ERROR)) != 0)
        return -EINVAL;
    e = &l->fds[fd];
    merged = e->mask | (mask & (LOOP_READ | LOOP_WRITE));
    /* The stored state tells ADD from MOD (as in Redis's aeApiAddEvent), and
     * an unchanged mask needs no syscall at all: callers re-add LOOP_WRITE
     * on every short write. */
    if (!e->registered)
        rc = loop_ctl(l, EPOLL_CTL_ADD, fd, merged);
    else if (merged != e->mask)
        rc = loop_ctl(l, EPOLL_CTL_MOD, fd, merged);
    else
        rc = 0;
    if (rc < 0)
        return rc;
    e->registered = 1;
    e->mask = merged;
    e->cb = cb;
    e->arg = arg;
    return 0;
}

int loop_set(struct loop *l, int fd, unsigned mask, loop_fd_cb *cb, void *arg)
{
    struct loop_fd *e;
    int rc = 0;

    if (fd < 0 || fd >= l->max_fds || (mask & ~(LOOP_READ | LOOP_WRITE | LOOP_ERROR)) != 0)
        return -EINVAL;
    e = &l->fds[fd];
    mask &= LOOP_READ | LOOP_WRITE;
    /* One syscall for any change: a relay swapping READ for WRITE would
     * otherwise pay a MOD for the add and another for the delete. */
    if (!e->registered)
        rc = loop_ctl(l, EPOLL_CTL_ADD, fd, mask);
    else if (mask != e->mask)
        rc = loop_ctl(l, EPOLL_CTL_MOD, fd, mask);
    if (rc < 0)
        return rc;
    e->registered = 1;
    e->mask = mask;
    e->cb = cb;
    e->arg = arg;
    return 0;
}

unsigned loop_mask(const struct loop *l, int fd)
{
    if (fd < 0 || fd >= l->max_fds)
        return 0;
    return l->fds[fd].mask;
}

int loop_set_cb(struct loop *l, int fd, loop_fd_cb *cb, void *arg)
{
    struct loop_fd *e;

    if (fd < 0 || fd >= l->max_fds)
        return -EINVAL;
    e = &l->fds[fd];
    if (!e->registered)
        return -ENOENT;
    e->cb = cb;
    e->arg = arg;
    return 0;
}

int loop_del(struct loop *l, int fd, unsigned mask)
{
    struct loop_fd *e;
    unsigned left;
    int rc;

    if (fd < 0 || fd >= l->max_fds)
        return -EINVAL;
    e = &l->fds[fd];
    if (!e->registered)
        return -ENOENT;
    left = e->mask & ~mask;
    if (left == e->mask)
        return 0;
    /* MOD to an empty set keeps fd in epoll, which still reports
     * EPOLLERR/EPOLLHUP: that is what keeps LOOP_ERROR coming. */
    rc = loop_ctl(l, EPOLL_CTL_MOD, fd, left);
    if (rc < 0)
        return rc;
    e->mask = left;
    return 0;
}

static void forget(struct loop *l, int fd, int tell_kernel)
{
    struct loop_fd *e;

    if (fd < 0 || fd >= l->max_fds || !l->fds[fd].registered)
        return;
    e = &l->fds[fd];
    /* ENOENT/EBADF mean the kernel already forgot fd (it was closed first);
     * either way nothing is left to unregister, so the result is ignored. */
#ifdef HAVE_URING
    if (l->uring) {
        uring_forget(l, fd); /* cancels its poll */
        tell_kernel = 0;
    }
#endif
    if (tell_kernel)
        (void)loop_ctl(l, EPOLL_CTL_DEL, fd, 0);
    e->registered = 0;
    e->mask = 0;
    e->cb = NULL;
    e->arg = NULL;
    e->removed_iter = l->iter;
}

void loop_remove(struct loop *l, int fd)
{
    forget(l, fd, 1);
}

void loop_close(struct loop *l, int fd)
{
    /* close() of the last reference takes fd out of the epoll set itself:
     * the EPOLL_CTL_DEL would be a wasted syscall per socket. */
    forget(l, fd, 0);
#ifdef HAVE_URING
    /* Through the ring (IORING_OP_CLOSE), submitted with the next wait. */
    if (l->uring && uring_close_fd(l, fd) == 0)
        return;
#endif
    close(fd);
}

/* ---- wake -------------------------------------------------------------- */

void loop_wake(struct loop *l)
{
    uint64_t one = 1;
    int saved = errno;
    ssize_t n;

    /* write(2) on an eventfd is async-signal-safe. EAGAIN would mean the
     * counter is saturated, so a wake-up is pending anyway. */
    n = write(l->wakefd, &one, sizeof(one));
    (void)n;
    errno = saved;
}

void loop_on_wake(struct loop *l, void (*cb)(struct loop *l, void *arg), void *arg)
{
    l->wake_cb = cb;
    l->wake_arg = arg;
}

void loop_handle_wake(struct loop *l)
{
    uint64_t count;
    ssize_t n;

    /* Reading resets the counter: any number of loop_wake() calls since
     * the last read collapse into one callback. */
    n = read(l->wakefd, &count, sizeof(count));
    (void)n;
    if (l->wake_cb != NULL)
        l->wake_cb(l, l->wake_arg);
}

/* ---- timers (binary min-heap, timer->idx == position + 1) -------------- */

static void heap_place(struct loop *l, struct timer *t, size_t pos)
{
    l->heap[pos] = t;
    t->idx = pos + 1;
}

static void heap_up(struct loop *l, size_t pos)
{
    struct timer *t = l->heap[pos];

    while (pos > 0) {
        size_t parent = (pos - 1) / 2;

        if (l->heap[parent]->when <= t->when)
            break;
        heap_place(l, l->heap[parent], pos);
        pos = parent;
    }
    heap_place(l, t, pos);
}

static void heap_down(struct loop *l, size_t pos)
{
    struct timer *t = l->heap[pos];

    for (;;) {
        size_t c = 2 * pos + 1;

        if (c >= l->ntimers)
            break;
        if (c + 1 < l->ntimers && l->heap[c + 1]->when < l->heap[c]->when)
            c++;
        if (t->when <= l->heap[c]->when)
            break;
        heap_place(l, l->heap[c], pos);
        pos = c;
    }
    heap_place(l, t, pos);
}

/* Restores the heap around pos after heap[pos]'s deadline changed. */
static void heap_fix(struct loop *l, size_t pos)
{
    if (pos > 0 && l->heap[pos]->when < l->heap[(pos - 1) / 2]->when)
        heap_up(l, pos);
    else
        heap_down(l, pos);
}

static void heap_push(struct loop *l, struct timer *t)
{
    if (l->ntimers == l->timers_cap) {
        size_t cap = l->timers_cap ? l->timers_cap * 2 : LOOP_TIMERS_MIN;
        struct timer **h = realloc(l->heap, cap * sizeof(*h));

        /* loop_timer_set() cannot report failure, and a timer silently not
         * armed is an idle connection never reaped: stop loudly instead. */
        if (h == NULL) {
            fputs("ppfwd: loop: out of memory for timers\n", stderr);
            abort();
        }
        l->heap = h;
        l->timers_cap = cap;
    }
    l->heap[l->ntimers++] = t;
    heap_up(l, l->ntimers - 1);
}

static void heap_remove(struct loop *l, struct timer *t)
{
    size_t pos = t->idx - 1;
    struct timer *last = l->heap[--l->ntimers];

    t->idx = 0;
    if (last != t) {
        heap_place(l, last, pos);
        heap_fix(l, pos);
    }
}

void loop_timer_set(struct loop *l, struct timer *t, uint64_t ms, loop_timer_cb *cb, void *arg)
{
    /* A timer re-armed with 0 ms from a timer callback would be due again
     * at once and starve the loop; it waits for the next iteration. */
    if (ms == 0 && l->in_timers)
        ms = 1;
    t->when = l->now + ms;
    t->cb = cb;
    t->arg = arg;
    if (t->idx != 0)
        heap_fix(l, t->idx - 1);
    else
        heap_push(l, t);
}

void loop_timer_cancel(struct loop *l, struct timer *t)
{
    if (t->idx != 0)
        heap_remove(l, t);
}

static void loop_run_timers(struct loop *l)
{
    l->in_timers = 1;
    while (l->ntimers > 0 && l->heap[0]->when <= l->now) {
        struct timer *t = l->heap[0];

        /* Popped before the call, so the callback sees an unarmed timer and
         * may re-arm it, cancel others, or free t's owner via loop_defer. */
        heap_remove(l, t);
        t->cb(l, t, t->arg);
    }
    l->in_timers = 0;
}

int loop_timeout(const struct loop *l)
{
    uint64_t d;

    if (l->defer != NULL)
        return 0;
    if (l->ntimers == 0)
        return -1;
    if (l->heap[0]->when <= l->now)
        return 0;
    d = l->heap[0]->when - l->now;
    return d > INT_MAX ? INT_MAX : (int)d;
}

/* ---- the loop ---------------------------------------------------------- */

static void loop_dispatch(struct loop *l, int n)
{
    for (int i = 0; i < n; i++) {
        int fd = l->events[i].data.fd;
        struct loop_fd *e;
        unsigned ev;

        if (fd == l->wakefd) {
            loop_handle_wake(l);
            continue;
        }
        e = &l->fds[fd];
        /* An earlier callback of this batch may have removed fd or narrowed
         * its mask: what epoll reported is stale, so only what is still
         * asked for (plus errors) is delivered. */
        if (!e->registered || e->removed_iter == l->iter)
            continue;
        ev = loop_poll_to_mask(l->events[i].events) & loop_deliverable(e);
        if (ev != 0)
            e->cb(l, fd, e->arg, ev);
    }
}

static int loop_once(struct loop *l)
{
    int n;

    l->now = clock_ms();
    l->iter++;
#ifdef HAVE_URING
    if (l->uring) {
        n = uring_wait(l);
        if (n < 0)
            return n;
        l->now = clock_ms();
        uring_dispatch(l);
        loop_run_timers(l);
        loop_run_deferred(l);
        return 0;
    }
#endif
    n = epoll_wait(l->epfd, l->events, l->nevents, loop_timeout(l));
    if (n == -1) {
        if (errno != EINTR)
            return -errno;
        n = 0;
    }
    l->now = clock_ms();
    loop_dispatch(l, n);
    loop_run_timers(l);
    loop_run_deferred(l);
    return 0;
}

int loop_run(struct loop *l)
{
    int rc = 0;

#ifdef HAVE_URING
    if (l->uring && (rc = uring_run_start(l)) < 0)
        return rc;
#endif
    l->stop = 0;
    l->running = 1;
    while (!l->stop && rc == 0)
        rc = loop_once(l);
#ifdef HAVE_URING
    if (l->uring)
        uring_run_end(l);
#endif
    l->running = 0;
    return rc;
}

void loop_stop(struct loop *l)
{
    l->stop = 1;
}

uint64_t loop_now(const struct loop *l)
{
    return l->now;
}

void loop_defer(struct loop *l, struct loop_work *w, loop_defer_cb *fn, void *arg)
{
    if (w->queued)
        return;
    w->fn = fn;
    w->arg = arg;
    w->next = NULL;
    w->queued = 1;
    if (l->defer_tail != NULL)
        l->defer_tail->next = w;
    else
        l->defer = w;
    l->defer_tail = w;
}
