/*
 * loop.h - the event loop: level-triggered readiness (io_uring polls, or
 * epoll), an fd-indexed table of callbacks, a timer heap, and deferred work
 * run at the end of each iteration (loop_*).
 *
 * One loop per worker thread; a loop is never touched from another thread,
 * except loop_wake(), which any thread may call. loop_new() and loop_free()
 * may run in another thread than loop_run(), but loop_run() always runs in
 * the same one. Readiness is level-triggered: a callback that leaves data
 * unread is called again.
 *
 * Backends: io_uring (one-shot IORING_OP_POLL_ADD polls re-armed every
 * iteration, interest changes without a syscall, loop_close through the
 * ring) when the build has liburing and the kernel lets the ring be set up,
 * epoll otherwise or when the environment has PPFWD_LOOP=epoll. The same
 * contract holds for both, with these differences on io_uring:
 * - loop_add/loop_set/loop_del make no syscall, so they cannot report what
 *   epoll_ctl would (EPERM for a regular file, EBADF for a closed fd): an fd
 *   the kernel cannot poll is simply never reported.
 * - loop_accept and loop_connect go through the ring (IORING_OP_ACCEPT,
 *   IORING_OP_CONNECT): no accept4 or connect call.
 * The kernel reports a socket's FIN (POLLRDHUP) to every poll, whatever it
 * asks: once it is in, an fd that does not ask for LOOP_READ (an empty
 * mask after its EOF, or waiting for LOOP_WRITE) is watched by a multishot
 * poll armed anew after each delivery, so the loop neither spins on the FIN
 * nor misses the LOOP_WRITE or LOOP_ERROR it waits for (see loop_uring.c).
 */
#ifndef PPFWD_LOOP_H
#define PPFWD_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define LOOP_READ 0x1u
#define LOOP_WRITE 0x2u
#define LOOP_ERROR 0x4u /* EPOLLERR or EPOLLHUP; always reported, never asked for */
/* Reported along with the bits above, never asked for. LOOP_RDHUP comes with
 * LOOP_READ when the peer's FIN has arrived (EPOLLRDHUP): what is queued ends
 * in EOF. LOOP_SOCKERR comes with LOOP_ERROR when it is EPOLLERR, an error
 * pending in SO_ERROR; LOOP_ERROR without it is a plain hang-up. */
#define LOOP_RDHUP 0x8u
#define LOOP_SOCKERR 0x10u

struct loop;
struct timer;

/* Called with the events that are ready (LOOP_* bits) on fd. */
typedef void loop_fd_cb(struct loop *l, int fd, void *arg, unsigned events);
/* Called once when the timer expires; it is no longer armed by then. */
typedef void loop_timer_cb(struct loop *l, struct timer *t, void *arg);
/* Deferred work: called at the end of the current iteration. */
typedef void loop_defer_cb(void *arg);

/* A timer lives inside the caller's own struct (a connection, say): arming
 * and cancelling never allocate. Zero-initialise it before first use. */
struct timer {
    uint64_t when; /* loop_now() value at which it expires */
    size_t idx;    /* position in the heap + 1; 0 when not armed */
    loop_timer_cb *cb;
    void *arg;
};

/* Creates a loop for fds below max_fds: io_uring when it can be set up,
 * unless the environment has PPFWD_LOOP=epoll or the process runs under
 * valgrind (its LD_PRELOAD: valgrind 3.19 holds its one lock while a thread
 * sleeps in io_uring_enter, so no other thread runs, signals included),
 * epoll otherwise. Returns NULL with errno set. */
struct loop *loop_new(int max_fds);

/* The same with the backend chosen (the tests run on both): EPOLL, URING
 * (NULL with errno ENOSYS without liburing, or why the ring could not be set
 * up), or AUTO (loop_new() without looking at the environment). */
#define LOOP_BACKEND_EPOLL 0
#define LOOP_BACKEND_URING 1
#define LOOP_BACKEND_AUTO 2
struct loop *loop_new_backend(int max_fds, int backend);

/* "io_uring" or "epoll". */
const char *loop_backend(const struct loop *l);

/* Frees the loop. Registered fds are not closed (they belong to the caller);
 * pending deferred work is run first. */
void loop_free(struct loop *l);

/* Adds the mask bits (LOOP_READ/LOOP_WRITE) to fd's interest, registering fd
 * with cb/arg if it had none (cb and arg replace any earlier ones). Returns 0
 * or -errno (-EINVAL when fd >= max_fds). */
int loop_add(struct loop *l, int fd, unsigned mask, loop_fd_cb *cb, void *arg);

/* Sets fd's interest to exactly mask (registering fd with cb/arg if
 * needed) with at most one epoll_ctl, none when fd is registered with mask
 * already. Returns 0 or -errno; on failure fd keeps its former interest
 * and callback. */
int loop_set(struct loop *l, int fd, unsigned mask, loop_fd_cb *cb, void *arg);

/* The interest (LOOP_READ | LOOP_WRITE) fd is registered with: the loop is
 * the one owner of that fact, callers ask rather than keep a copy. 0 when
 * fd is not registered (or out of range). No syscall. */
unsigned loop_mask(const struct loop *l, int fd);

/* Replaces the callback of a registered fd, keeping its interest: no
 * syscall. Returns 0, or -ENOENT if fd is not registered (-EINVAL if out of
 * range). */
int loop_set_cb(struct loop *l, int fd, loop_fd_cb *cb, void *arg);

/* Removes the mask bits from fd's interest; fd stays registered (and still
 * gets LOOP_ERROR) while its mask is empty. Returns 0 or -errno. */
int loop_del(struct loop *l, int fd, unsigned mask);

/* Unregisters fd entirely; call it before close(fd). Events already
 * collected for fd in this iteration are dropped. */
void loop_remove(struct loop *l, int fd);

/* Unregisters fd and closes it, without the EPOLL_CTL_DEL that closing
 * makes needless (fd must not have been dup'ed or inherited). With io_uring
 * the close goes through the ring, submitted at the start of the next
 * iteration (before loop_run returns at the latest); outside loop_run it is
 * a plain close(). */
void loop_close(struct loop *l, int fd);

/* Runs until loop_stop(). Returns 0, or -errno if the wait failed. */
int loop_run(struct loop *l);

/* Makes loop_run() return after the current iteration. Loop thread only. */
void loop_stop(struct loop *l);

/* Wakes a loop blocked in its wait from any thread (an eventfd), and calls
 * the wake callback in the loop's thread. Signal-safe. */
void loop_wake(struct loop *l);
void loop_on_wake(struct loop *l, void (*cb)(struct loop *l, void *arg), void *arg);

/* Milliseconds on CLOCK_MONOTONIC, read once per iteration. */
uint64_t loop_now(const struct loop *l);

/* Arms (or re-arms) t to fire ms milliseconds from loop_now(). */
void loop_timer_set(struct loop *l, struct timer *t, uint64_t ms, loop_timer_cb *cb, void *arg);

/* Disarms t; harmless if it is not armed. */
void loop_timer_cancel(struct loop *l, struct timer *t);

static inline int loop_timer_armed(const struct timer *t)
{
    return t->idx != 0;
}

/* Deferred work lives inside the caller's own struct, as a timer does:
 * deferring never allocates, so it cannot fail. (It could: a connection
 * then freed at once, because the queue could not grow, left the other
 * callbacks of the iteration holding freed memory.) Zero-initialise it
 * before first use. */
struct loop_work {
    struct loop_work *next;
    loop_defer_cb *fn;
    void *arg;
    int queued;
};

/* Runs fn(arg) at the end of the current iteration, after every callback:
 * how a connection frees its memory while other callbacks of the same
 * iteration may still hold a pointer to it. Work deferred from deferred
 * work runs in the same drain, in order. A w already queued stays queued
 * once, with its first fn and arg. fn may free the memory w lives in. */
void loop_defer(struct loop *l, struct loop_work *w, loop_defer_cb *fn, void *arg);

/* ---- listeners and connects ------------------------------------------------ */

/* A connection accepted on lfd (loop_accept): cfd, non-blocking and
 * close-on-exec, and its peer's address (plen bytes); or cfd = -errno when
 * accepting failed (EMFILE, ENFILE, ENOBUFS, ENOMEM...: a callback that
 * does not stop accepting on those is called again at once). EAGAIN,
 * EINTR and ECONNABORTED are never reported. */
typedef void loop_accept_cb(struct loop *l, int lfd, int cfd, const struct sockaddr *peer,
                            socklen_t plen, void *arg);

/* Accepts connections on the listening socket lfd, each handed to cb, until
 * loop_accept_stop(lfd) (not loop_remove). epoll: lfd's LOOP_READ and a
 * batch of accept4() per wakeup; io_uring: a few IORING_OP_ACCEPT in flight,
 * each with its own address buffer, lfd not in the fd table. Returns 0 or
 * -errno (-EEXIST when lfd is accepting already). */
int loop_accept(struct loop *l, int lfd, loop_accept_cb *cb, void *arg);

/* Stops accepting on lfd. What the ring had accepted and not yet handed
 * over is handed to cb before this returns; with drain, so is what waits in
 * lfd's backlog (close() would reset those connections). Outside loop_run
 * on io_uring, connections accepted and not handed over are closed. */
void loop_accept_stop(struct loop *l, int lfd, int drain);

/* Connects fd, a non-blocking socket registered with LOOP_WRITE interest
 * (loop_set), to sa. Returns 0 when connected at once (epoll only), -errno
 * when it failed at once (ENETUNREACH...), or -EINPROGRESS: fd's callback
 * is called once it is done: with LOOP_WRITE and without LOOP_ERROR when it
 * succeeded; with LOOP_ERROR when it failed, and then loop_connect_error()
 * says why. On io_uring the
 * connect is submitted with the next wait: sa must stay valid until then,
 * or until fd leaves the loop (loop_remove, loop_close: a connect not
 * submitted yet is dropped, one in flight cancelled); until it completes,
 * fd's interest is not polled. */
int loop_connect(struct loop *l, int fd, const struct sockaddr *sa, socklen_t len);

/* Sets TCP_NODELAY on the TCP socket fd: through the ring, queued with the
 * next wait (ahead of a connect queued after it), when the kernel takes
 * socket commands (Linux 6.7+: probed once per loop); else setsockopt().
 * A failure is not reported: the socket keeps Nagle's algorithm, no
 * worse than before. */
void loop_tcp_nodelay(struct loop *l, int fd);

/* Inside the callback that reported a connect's end: 0 or the errno it
 * failed with (EINPROGRESS: not done yet; epoll: SO_ERROR). */
int loop_connect_error(struct loop *l, int fd);

#endif /* PPFWD_LOOP_H */
