/*
 * loop_uring.c - the io_uring backend of the loop (loop.c has the fd table,
 * the timers, the deferred work and the epoll backend; loop.h the
 * contract, which this backend keeps).
 *
 * Readiness stays level-triggered, as with epoll, through ONE-SHOT polls
 * (IORING_OP_POLL_ADD): a poll armed while its condition holds completes at
 * once, so data left unread is reported again. Interest changes cost no
 * syscall: loop_add/set/del record the mask and put the fd on a dirty list;
 * at the start of each iteration every dirty fd whose poll in flight does
 * not match its mask (or that has none: it just completed) gets an
 * IORING_OP_ASYNC_CANCEL of the old poll and a new poll, then one
 * io_uring_submit_and_wait_timeout submits them and sleeps until a
 * completion or the next timer. Closes go through the ring too
 * (loop_close), and so do accepts (loop_accept: LOOP_ACCEPT_SLOTS accepts
 * in flight per listener, each with its own address buffer, re-armed at
 * the next flush once it completes) and connects (loop_connect: the
 * connect is the fd's op in flight instead of a poll, and its completion
 * is reported as epoll would report the end of a connect), and so does
 * TCP_NODELAY where the kernel takes socket commands (loop_tcp_nodelay).
 * read, write and the rest stay plain calls.
 *
 * Cancels, not IORING_OP_POLL_REMOVE: a remove that finds a wakeup of the
 * poll queued and not run yet fails with -EALREADY and leaves the poll
 * armed (seen in bench/bench_tcp_relay.c); a cancel ends it either way.
 *
 * Each completion's user_data names its kind, its fd and the poll's
 * generation (bumped at every arm): a completion of a poll that was
 * cancelled, or armed for an fd number closed and reused since, names an
 * old generation (or an fd with no poll in flight) and is dropped.
 *
 * The kernel adds POLLERR, POLLHUP and POLLRDHUP to every poll (io_uring's
 * IO_POLL_UNMASK), whatever it asks. Once a socket's peer has sent its FIN,
 * every one-shot poll on it completes at once with at least POLLRDHUP:
 * tests/unit/test_loop_uring.c shows it for an fd with an empty mask and
 * for one that waits for LOOP_WRITE on a full send buffer. Re-arming such a
 * poll would spin, and not re-arming it would never report the LOOP_WRITE
 * (or LOOP_ERROR) it waits for. So once a poll has reported POLLRDHUP (the
 * FIN is in for good), an fd that does not ask for LOOP_READ gets a
 * MULTISHOT poll instead: it reports what holds when armed (at least the
 * FIN: dropped when nothing wanted comes with it) and then only on
 * wakeups, such as the socket becoming writable or an error. Once it has
 * delivered something it is cancelled and armed anew, whose first report
 * is again what holds then: readiness left as it was is reported again,
 * level-triggered as with epoll.
 */
#ifdef HAVE_URING
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loop/loop.h"
#include "loop/loop_internal.h"

#define RING_ENTRIES 4096
#define RING_CQ_ENTRIES (4 * RING_ENTRIES)

/* user_data: kind in bits 62-63, fd in bits 32-61, generation in 0-31. */
enum { UD_IGNORE = 0, UD_POLL = 1, UD_WAKE = 2, UD_ACCEPT = 3 };
#define UD(kind, fd, gen) ((uint64_t)(kind) << 62 | (uint64_t)(uint32_t)(fd) << 32 | (uint32_t)(gen))
#define UD_KIND(ud) ((int)((ud) >> 62))
#define UD_FD(ud) ((int)(((ud) >> 32) & 0x3fffffffu))
#define UD_GEN(ud) ((uint32_t)(ud))
/* An accept's: the listener's place in l->acc as the fd, its generation
 * (28 bits) and the slot (4 bits). */
#define UD_ACC(idx, gen, slot) UD(UD_ACCEPT, idx, (uint32_t)(gen) << 4 | (uint32_t)(slot))

/* The cheapest setup the kernel takes: task work deferred to the wait and
 * a single submitter (6.1+); the ring is created disabled because loop_new
 * runs in the thread that starts a worker, loop_run in the worker: the
 * thread that enables it (loop_run) is its submitter. Else cooperative task
 * work (5.19+), else plain. */
int uring_open(struct loop *l)
{
    static const unsigned modes[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;

    l->wakefd = -1;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        struct io_uring_params p;

        memset(&p, 0, sizeof(p));
        p.flags = modes[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = RING_CQ_ENTRIES;
        rc = io_uring_queue_init_params(RING_ENTRIES, &l->ring, &p);
        if (rc == 0) {
            l->ring_disabled = (modes[i] & IORING_SETUP_R_DISABLED) != 0;
            l->cq_entries = p.cq_entries;
            break;
        }
        if (rc != -EINVAL)
            return rc; /* ENOSYS, EPERM (io_uring_disabled, seccomp), ENOMEM */
    }
    if (rc < 0)
        return rc;
    l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wakefd == -1) {
        rc = -errno;
        io_uring_queue_exit(&l->ring);
        return rc;
    }
    l->uring = 1;
    l->dirty = -1;
    l->connect_fd = -1;
    return 0;
}

/* Connections accepted by the ring and not handed over yet: those of the
 * listener at idx (all with idx -1) still in the CQ, which are then
 * marked to be skipped. With a callback (a listener that stops while its
 * callback may still run) they are handed to it, else closed. */
static void close_accepted(struct loop *l, int idx, int hand_over)
{
    struct loop_acceptor *a = idx >= 0 ? l->acc[idx] : NULL;
    struct io_uring_cqe *cqe;
    unsigned head;

    io_uring_for_each_cqe(&l->ring, head, cqe)
    {
        uint64_t ud = cqe->user_data;

        if (UD_KIND(ud) != UD_ACCEPT || cqe->res < 0)
            continue;
        if (a != NULL && (UD_FD(ud) != idx || UD_GEN(ud) >> 4 != a->gen))
            continue;
        cqe->user_data = UD(UD_IGNORE, 0, 0);
        if (a != NULL && hand_over) {
            unsigned slot = UD_GEN(ud) & 0xfu;

            a->cb(l, a->fd, cqe->res, (const struct sockaddr *)&a->slot[slot].addr,
                  a->slot[slot].len, a->arg);
        } else {
            close(cqe->res);
        }
    }
}

void uring_close(struct loop *l)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

    /* The ring's teardown cancels the polls still in flight, but in a
     * kernel worker, later: the sockets they hold (the caller closes its
     * fds next) would outlive loop_free. Cancelled and reaped here when
     * this thread may submit (it ran the loop, or its exit did this
     * already); harmless otherwise (EEXIST, EBADFD: never enabled). */
    if (sqe != NULL) {
        io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, UD(UD_IGNORE, 0, 0));
        (void)io_uring_submit_and_get_events(&l->ring);
    }
    close_accepted(l, -1, 0);
    io_uring_queue_exit(&l->ring);
}

static void mark_dirty(struct loop *l, int fd)
{
    struct loop_fd *e = &l->fds[fd];

    if (e->dirty)
        return;
    e->dirty = 1;
    e->next_dirty = l->dirty;
    l->dirty = fd;
}

void uring_interest(struct loop *l, int fd)
{
    mark_dirty(l, fd);
}

/* A connect not submitted yet reads its address when it is: the caller
 * may free that once fd has left the loop (conn.c's is its route's config,
 * freed with its last connection before the next wait). Found among the
 * SQEs the kernel has not consumed (no SQPOLL: it consumes only when this
 * thread enters), it becomes a no-op; 1 then, else 0 (submitted). */
static int connect_unqueue(struct loop *l, int fd, uint32_t gen)
{
    struct io_uring_sq *sq = &l->ring.sq;
    uint64_t ud = UD(UD_POLL, fd, gen);

    for (unsigned i = *sq->khead; i != sq->sqe_tail; i++) {
        struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];

        if (sqe->opcode == IORING_OP_CONNECT && sqe->user_data == ud) {
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data64(sqe, UD(UD_IGNORE, 0, 0));
            return 1;
        }
    }
    return 0;
}

/* fd leaves the loop: its poll becomes an orphan, cancelled at the next
 * flush, and a completion of it is stale from now on. */
void uring_forget(struct loop *l, int fd)
{
    struct loop_fd *e = &l->fds[fd];

    if (e->inflight && e->connecting && connect_unqueue(l, fd, e->gen))
        e->inflight = 0; /* never went out: nothing to cancel */
    if (e->inflight) {
        e->orphan = 1;
        e->orphan_gen = e->gen;
        e->inflight = 0;
        mark_dirty(l, fd);
    }
    e->fin = 0;
    e->connecting = 0;
}

/* An SQE, submitting what is queued first when the SQ is full; NULL only if
 * the submission fails. */
static struct io_uring_sqe *ring_sqe(struct loop *l)
{
    for (int tries = 0; tries < 16; tries++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

        if (sqe != NULL)
            return sqe;
        if (io_uring_submit(&l->ring) < 0)
            break;
    }
    return NULL;
}

int uring_close_fd(struct loop *l, int fd)
{
    struct io_uring_sqe *sqe;

    /* Outside loop_run (a caller tearing down after it), nothing would
     * submit it, and another thread may not submit: plain close(). */
    if (!l->running || (sqe = ring_sqe(l)) == NULL)
        return -1;
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, UD(UD_IGNORE, 0, 0));
    return 0;
}

static uint32_t mask_to_poll(unsigned mask)
{
    return ((mask & LOOP_READ) ? POLLIN | POLLRDHUP : 0u) | ((mask & LOOP_WRITE) ? POLLOUT : 0u);
}

static int cancel(struct loop *l, int fd, uint32_t gen)
{
    struct io_uring_sqe *sqe = ring_sqe(l);

    if (sqe == NULL)
        return -1;
    io_uring_prep_cancel64(sqe, UD(UD_POLL, fd, gen), 0);
    io_uring_sqe_set_data64(sqe, UD(UD_IGNORE, 0, 0));
    return 0;
}

/* Brings fd's poll in line with its interest. Returns -1 when no SQE can
 * be had (fd stays dirty; each step done is recorded). */
static int flush_fd(struct loop *l, int fd)
{
    struct loop_fd *e = &l->fds[fd];
    struct io_uring_sqe *sqe;

    if (e->orphan) {
        if (cancel(l, fd, e->orphan_gen) < 0)
            return -1;
        e->orphan = 0;
    }
    /* A connect in flight is not cancelled for a change of interest. */
    if (e->inflight && e->connecting)
        return 0;
    if (e->inflight && (!e->registered || e->polled != e->mask)) {
        if (cancel(l, fd, e->gen) < 0)
            return -1;
        e->inflight = 0;
    }
    if (!e->registered || e->inflight)
        return 0;
    if ((sqe = ring_sqe(l)) == NULL)
        return -1;
    e->gen++;
    io_uring_prep_poll_add(sqe, fd, mask_to_poll(e->mask));
    /* A one-shot poll on an fd whose FIN is in and that does not read
     * would complete at once (see the top). */
    if (e->fin && !(e->mask & LOOP_READ))
        sqe->len |= IORING_POLL_ADD_MULTI;
    io_uring_sqe_set_data64(sqe, UD(UD_POLL, fd, e->gen));
    e->inflight = 1;
    e->polled = (unsigned char)e->mask;
    return 0;
}

/* Arms every listener's accepts not in flight (slot addresses are reset:
 * the kernel writes the peer's back). */
static int flush_accepts(struct loop *l)
{
    for (int i = 0; i < l->nacc; i++) {
        struct loop_acceptor *a = l->acc[i];

        for (unsigned k = 0; a != NULL && !a->stopping && k < LOOP_ACCEPT_SLOTS; k++) {
            struct io_uring_sqe *sqe;

            if (a->armed & (1u << k))
                continue;
            if ((sqe = ring_sqe(l)) == NULL)
                return -1;
            a->slot[k].len = sizeof(a->slot[k].addr);
            io_uring_prep_accept(sqe, a->fd, (struct sockaddr *)&a->slot[k].addr,
                                 &a->slot[k].len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            io_uring_sqe_set_data64(sqe, UD_ACC(i, a->gen, k));
            a->armed |= 1u << k;
        }
    }
    l->acc_dirty = 0;
    return 0;
}

/* Arms the wake eventfd's poll, every dirty fd's and the accepts. Returns
 * -1 when the SQ ran dry (what is left stays for the next iteration). */
static int flush(struct loop *l)
{
    if (!l->wake_armed) {
        struct io_uring_sqe *sqe = ring_sqe(l);

        if (sqe == NULL)
            return -1;
        io_uring_prep_poll_add(sqe, l->wakefd, POLLIN);
        io_uring_sqe_set_data64(sqe, UD(UD_WAKE, 0, 0));
        l->wake_armed = 1;
    }
    while (l->dirty != -1) {
        int fd = l->dirty;

        if (flush_fd(l, fd) < 0)
            return -1;
        l->dirty = l->fds[fd].next_dirty;
        l->fds[fd].dirty = 0;
    }
    if (l->acc_dirty)
        return flush_accepts(l);
    return 0;
}

/* IORING_OP_URING_CMD's setsockopt (Linux 6.7, SOCKET_URING_OP_SETSOCKOPT;
 * liburing 2.3 has neither its number nor its SQE fields' names: level and
 * optname share addr, optlen is file_index's place, optval addr3's). */
#define SOCK_CMD_SETSOCKOPT 3

static const int one = 1;

static void prep_nodelay(struct io_uring_sqe *sqe, int fd)
{
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
    sqe->cmd_op = SOCK_CMD_SETSOCKOPT;
    sqe->addr = (uint64_t)IPPROTO_TCP | (uint64_t)TCP_NODELAY << 32;
    sqe->file_index = sizeof(one);
    sqe->addr3 = (uint64_t)(uintptr_t)&one;
}

/* Does the ring set socket options? Tried on a socket of its own, with
 * the ring just enabled (nothing else queued or completed yet), and
 * checked with getsockopt: an older kernel fails the command. */
static void probe_sockopt(struct loop *l)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), v = 0;
    socklen_t len = sizeof(v);
    struct io_uring_sqe *sqe;
    struct io_uring_cqe *cqe;

    if (fd < 0)
        return;
    if ((sqe = io_uring_get_sqe(&l->ring)) != NULL) {
        prep_nodelay(sqe, fd);
        io_uring_sqe_set_data64(sqe, UD(UD_IGNORE, 0, 0));
        if (io_uring_submit_and_wait(&l->ring, 1) >= 0 && io_uring_peek_cqe(&l->ring, &cqe) == 0) {
            l->sockopt_cmd = cqe->res >= 0 &&
                             getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0 && v == 1;
            io_uring_cqe_seen(&l->ring, cqe);
        }
    }
    close(fd);
}

int uring_nodelay(struct loop *l, int fd)
{
    struct io_uring_sqe *sqe;

    if (!l->running || !l->sockopt_cmd || (sqe = ring_sqe(l)) == NULL)
        return -1;
    prep_nodelay(sqe, fd);
    io_uring_sqe_set_data64(sqe, UD(UD_IGNORE, 0, 0));
    return 0;
}

int uring_run_start(struct loop *l)
{
    int rc;

    if (!l->ring_disabled)
        return 0;
    /* io_uring_enable_rings() is declared by liburing 2.3 but not exported
     * (Debian 12's liburing2): the register call itself. */
    rc = (int)syscall(__NR_io_uring_register, l->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
                      NULL, 0);
    if (rc < 0)
        return -errno;
    l->ring_disabled = 0;
    /* An optimisation (io_uring_enter skips the fd lookup) that holds for
     * the registering thread only: this one, the submitter. */
    (void)io_uring_register_ring_fd(&l->ring);
    probe_sockopt(l);
    return 0;
}

/* Submits what the last iteration queued before loop_run returns: the
 * closes, and the cancels of the polls of fds loop_remove()d (their sockets
 * stay open while a poll holds them: a listener closed by a worker that
 * stops would go on listening); the thread that frees the loop may not be
 * the submitter. With deferred task work a cancelled poll lets go of its
 * file only when the submitter reaps completions, hence get_events. No poll
 * is armed: its completion would wait in the CQ until the next loop_run and
 * report readiness as it was now. */
void uring_run_end(struct loop *l)
{
    for (int fd = l->dirty; fd != -1; fd = l->fds[fd].next_dirty) {
        struct loop_fd *e = &l->fds[fd];

        if (e->orphan && cancel(l, fd, e->orphan_gen) == 0)
            e->orphan = 0;
    }
    (void)io_uring_submit_and_get_events(&l->ring);
}

int uring_wait(struct loop *l)
{
    struct __kernel_timespec ts;
    struct io_uring_cqe *cqe;
    int ms, rc;

    ms = flush(l) < 0 ? 0 : loop_timeout(l);
    if (ms >= 0) {
        ts.tv_sec = ms / 1000;
        ts.tv_nsec = (long long)(ms % 1000) * 1000000;
    }
    rc = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, ms >= 0 ? &ts : NULL, NULL);
    /* ETIME: the timer is due; EINTR: a signal; EBUSY, EAGAIN: completions
     * to reap first (CQ overflow). */
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
        return rc;
    return 0;
}

static void on_poll(struct loop *l, uint64_t ud, int res, unsigned flags)
{
    int fd = UD_FD(ud), more = (flags & IORING_CQE_F_MORE) != 0;
    struct loop_fd *e;
    unsigned ev;

    if (fd >= l->max_fds)
        return;
    e = &l->fds[fd];
    if (!e->inflight || UD_GEN(ud) != e->gen)
        return; /* cancelled, or a former registration's */
    if (e->connecting) {
        /* As epoll has it: writable, or an error (kept for
         * loop_connect_error: the ring read and cleared SO_ERROR). */
        e->connecting = 0;
        e->inflight = 0;
        mark_dirty(l, fd);
        l->connect_fd = fd;
        l->connect_err = res < 0 ? -res : 0;
        e->cb(l, fd, e->arg, res < 0 ? LOOP_ERROR | LOOP_SOCKERR : LOOP_WRITE);
        l->connect_fd = -1;
        return;
    }
    if (!more)
        e->inflight = 0;
    /* The fd cannot be polled (EBADF: closed behind the loop's back):
     * not re-armed, which would fail at once again, until its interest
     * changes. */
    if (res < 0)
        return;
    ev = loop_poll_to_mask((uint32_t)res) & loop_deliverable(e);
    if (res & POLLRDHUP)
        e->fin = 1; /* for good: a socket's read side never reopens */
    if (!more) {
        mark_dirty(l, fd);
    } else if (ev != 0) {
        /* The multishot poll is cancelled (its further completions are
         * stale from now on: epoll reports an fd once per batch) and armed
         * anew, which reports what still holds. */
        e->orphan = 1;
        e->orphan_gen = e->gen;
        e->inflight = 0;
        mark_dirty(l, fd);
    }
    if (ev != 0)
        e->cb(l, fd, e->arg, ev);
}

static void on_accept(struct loop *l, uint64_t ud, int res)
{
    int idx = UD_FD(ud);
    unsigned slot = UD_GEN(ud) & 0xfu;
    struct loop_acceptor *a = idx < l->nacc ? l->acc[idx] : NULL;

    if (a == NULL || a->gen != UD_GEN(ud) >> 4 || !(a->armed & (1u << slot))) {
        /* A stopped listener's: loop_accept_stop handed over what was in
         * the CQ when it ran, so this one was taken after. */
        if (res >= 0)
            close(res);
        return;
    }
    a->armed &= ~(1u << slot);
    l->acc_dirty = 1;
    if (res == -EAGAIN || res == -EINTR || res == -ECONNABORTED || res == -ECANCELED)
        return;
    a->cb(l, a->fd, res, (const struct sockaddr *)&a->slot[slot].addr,
          res < 0 ? 0 : a->slot[slot].len, a->arg);
}

static void on_cqe(struct loop *l, uint64_t ud, int res, unsigned flags)
{
    switch (UD_KIND(ud)) {
    case UD_POLL:
        on_poll(l, ud, res, flags);
        break;
    case UD_WAKE:
        l->wake_armed = 0;
        loop_handle_wake(l);
        break;
    case UD_ACCEPT:
        on_accept(l, ud, res);
        break;
    default: /* a cancel (-ENOENT, -EALREADY: the poll had ended) or a close */
        break;
    }
}

int uring_connect(struct loop *l, int fd, const struct sockaddr *sa, socklen_t len)
{
    struct loop_fd *e = &l->fds[fd];
    struct io_uring_sqe *sqe;

    /* Outside loop_run nothing would submit it: a plain connect(). */
    if (!l->running)
        return -1;
    if (e->inflight) {
        if (cancel(l, fd, e->gen) < 0)
            return -1;
        e->inflight = 0;
        mark_dirty(l, fd);
    }
    if ((sqe = ring_sqe(l)) == NULL)
        return -1;
    e->gen++;
    io_uring_prep_connect(sqe, fd, sa, len);
    io_uring_sqe_set_data64(sqe, UD(UD_POLL, fd, e->gen));
    e->inflight = 1;
    e->connecting = 1;
    e->polled = (unsigned char)e->mask;
    return 0;
}

void uring_accept_start(struct loop *l, struct loop_acceptor *a)
{
    a->armed = 0;
    l->acc_dirty = 1;
}

/* Cancels the listener's accepts now, so that none takes a connection
 * once this returns, and hands over what they took before. Outside
 * loop_run too (a caller tearing down after it): left in flight, they
 * would hold lfd (listening on once closed) and write the address of a
 * connection that comes into the freed slots. Only the submitter may
 * submit (SINGLE_ISSUER: EEXIST for another thread): a cancel it refused
 * becomes a no-op, not to cancel what lfd's number names by the next
 * submission. */
void uring_accept_stop(struct loop *l, int idx)
{
    struct loop_acceptor *a = l->acc[idx];
    struct io_uring_sqe *sqe;

    if (a->armed && (sqe = ring_sqe(l)) != NULL) {
        io_uring_prep_cancel_fd(sqe, a->fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, UD(UD_IGNORE, 0, 0));
        /* With deferred task work an accept whose connection came is
         * completed by the wait: run now, it completes before the cancel
         * or is cancelled. */
        if (io_uring_submit_and_get_events(&l->ring) < 0) {
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data64(sqe, UD(UD_IGNORE, 0, 0));
        }
    }
    a->armed = 0;
    close_accepted(l, idx, l->running);
}

void uring_dispatch(struct loop *l)
{
    /* Bounded per iteration so timers and deferred work still run under a
     * flood; what is left completes the next wait at once. The kernel keeps
     * completions that did not fit the CQ (IORING_FEAT_NODROP): flushed
     * here, or by the next wait. */
    for (unsigned n = 0, flushes = 0; n < l->cq_entries;) {
        struct io_uring_cqe *cqe;

        if (io_uring_peek_cqe(&l->ring, &cqe) != 0) {
            if (!io_uring_cq_has_overflow(&l->ring) || ++flushes > 4 ||
                io_uring_get_events(&l->ring) < 0)
                break;
            continue;
        }
        uint64_t ud = cqe->user_data;
        int res = cqe->res;
        unsigned flags = cqe->flags;

        io_uring_cqe_seen(&l->ring, cqe);
        n++;
        on_cqe(l, ud, res, flags);
    }
}
#endif
