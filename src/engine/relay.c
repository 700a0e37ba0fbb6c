/*
 * relay.c - moving bytes both ways once a connection is established
 * (relay_*).
 *
 * One function, relay_pump(), moves one direction (a struct half); it is
 * called for client -> upstream and for upstream -> client alike. A half
 * borrows a buffer from its worker only while it has bytes in flight, so an
 * idle connection costs no buffer memory. Interest is level-triggered and
 * recomputed after each pump: read the source only when the half's buffer is
 * empty, wait for the sink to be writable only when it is not.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "engine/relay.h"

/* What one splice moves at most: what a default pipe holds. Growing pipes
 * with F_SETPIPE_SZ (256 KiB) was measured slower here: 7.6 against 10-11
 * Gbit/s for one stream, the larger pages falling out of cache. */
#define PIPE_SIZE (64 * 1024)

int relay_splice = 1;
/* Reads per pump: bounded so that one fast connection cannot starve the
 * others sharing the loop. */
#define PUMP_ROUNDS 16

/* ---- the worker's pool of buffers and pipes ------------------------------ */

int relay_pool_init(struct relay_pool *p)
{
    p->buf_free = calloc(BUF_CACHE, sizeof(void *));
    p->pipe_free = calloc(PIPE_CACHE, sizeof(*p->pipe_free));
    p->nbuf_free = p->npipe_free = 0;
    if (p->buf_free == NULL || p->pipe_free == NULL) {
        free(p->buf_free);
        free(p->pipe_free);
        p->buf_free = NULL;
        p->pipe_free = NULL;
        return -ENOMEM;
    }
    return 0;
}

void relay_pool_free(struct relay_pool *p)
{
    while (p->nbuf_free > 0)
        free(p->buf_free[--p->nbuf_free]);
    while (p->npipe_free > 0) {
        p->npipe_free--;
        close(p->pipe_free[p->npipe_free][0]);
        close(p->pipe_free[p->npipe_free][1]);
    }
    free(p->buf_free);
    free(p->pipe_free);
    p->buf_free = NULL;
    p->pipe_free = NULL;
}

static void *buf_get(struct relay_pool *p)
{
    if (p->nbuf_free > 0)
        return p->buf_free[--p->nbuf_free];
    return malloc(RELAY_BUF_SIZE);
}

static void buf_put(struct relay_pool *p, void *buf)
{
    if (buf == NULL)
        return;
    if (p->nbuf_free < BUF_CACHE) {
        p->buf_free[p->nbuf_free++] = buf;
        return;
    }
    free(buf);
}

static int pipe_get(struct relay_pool *pool, int p[2])
{
    if (pool->npipe_free > 0) {
        pool->npipe_free--;
        p[0] = pool->pipe_free[pool->npipe_free][0];
        p[1] = pool->pipe_free[pool->npipe_free][1];
        return 0;
    }
    return pipe2(p, O_NONBLOCK | O_CLOEXEC) == -1 ? -errno : 0;
}

/* Only an empty pipe comes back: a pipe with bytes in it belongs to them. */
static void pipe_put(struct relay_pool *pool, int p[2])
{
    if (p[0] == -1)
        return;
    if (pool->npipe_free < PIPE_CACHE) {
        pool->pipe_free[pool->npipe_free][0] = p[0];
        pool->pipe_free[pool->npipe_free][1] = p[1];
        pool->npipe_free++;
    } else {
        close(p[0]);
        close(p[1]);
    }
    p[0] = p[1] = -1;
}

/* Gives back what a half still holds. A pipe with bytes in it cannot be
 * reused: those bytes would reach the next owner. */
static void half_free(struct relay_pool *pool, struct half *h)
{
    buf_put(pool, h->buf);
    h->buf = NULL;
    if (h->in_pipe > 0 && h->pipe[0] != -1) {
        close(h->pipe[0]);
        close(h->pipe[1]);
        h->pipe[0] = h->pipe[1] = -1;
    }
    pipe_put(pool, h->pipe);
}

void relay_init(struct relay *rl, struct loop *l, struct relay_pool *pool, int cfd)
{
    memset(rl, 0, sizeof(*rl));
    rl->loop = l;
    rl->pool = pool;
    rl->cfd = cfd;
    rl->ufd = -1;
    rl->c2u.pipe[0] = rl->c2u.pipe[1] = rl->u2c.pipe[0] = rl->u2c.pipe[1] = -1;
}

uint8_t *relay_queue_buf(struct relay *rl)
{
    if (rl->c2u.buf == NULL)
        rl->c2u.buf = buf_get(rl->pool);
    return rl->c2u.buf;
}

void relay_end(struct relay *rl)
{
    half_free(rl->pool, &rl->c2u);
    half_free(rl->pool, &rl->u2c);
}

/* ---- moving bytes ---------------------------------------------------------- */

static void release_if_empty(struct relay_pool *p, struct half *h)
{
    if (h->len == 0 && h->buf != NULL) {
        buf_put(p, h->buf);
        h->buf = NULL;
        h->off = 0;
    }
}

/* h's source ended and all it sent is delivered. */
static int half_shut(struct relay *rl, struct half *h)
{
    const struct half *other = h == &rl->c2u ? &rl->u2c : &rl->c2u;

    /* Half-close: the peer sees our EOF and may still answer. When the
     * other way is over already, the connection closes now (the second
     * half can only end in relay_cb, which closes once both are shut) and
     * close() sends this FIN itself: both sockets have read their EOF, so
     * nothing is left unread that would make close() reset instead. The
     * shutdown would be a syscall for nothing. */
    if (!h->shut && !other->shut && shutdown(h->to, SHUT_WR) == -1 && errno != ENOTCONN)
        return -errno;
    h->shut = 1;
    return 0;
}

static void got_bytes(struct relay *rl, struct half *h, size_t n)
{
    /* Each counter has one writer, this worker: no lock prefix needed. */
    _Atomic uint64_t *p = h == &rl->c2u ? rl->count_in : rl->count_out;

    h->bytes += n;
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + n,
                          memory_order_relaxed);
    rl->active_ms = loop_now(rl->loop);
}

/* h's direction is over: what it borrowed goes back at once, not at the
 * connection's close, so a half-closed connection (the other way may stay
 * open for the idle timeout) holds no buffer and no pipe for it. */
static int half_done(struct relay *rl, struct half *h)
{
    release_if_empty(rl->pool, h);
    pipe_put(rl->pool, h->pipe);
    return half_shut(rl, h);
}

/* Fills h's empty buffer: first with what a splice left in its pipe (the
 * connection fell back to copying with bytes in it: they go before any
 * newer byte of the source, and were counted when spliced in), then from
 * the source. Returns what read() returns; 0 only for the source's EOF. */
static ssize_t fill(struct relay *rl, struct half *h)
{
    ssize_t n;

    if (h->in_pipe > 0) {
        n = read(h->pipe[0], h->buf, h->in_pipe < RELAY_BUF_SIZE ? h->in_pipe : RELAY_BUF_SIZE);
        if (n > 0) {
            h->in_pipe -= (uint32_t)n;
            if (h->in_pipe == 0)
                pipe_put(rl->pool, h->pipe);
        }
        return n;
    }
    n = read(h->from, h->buf, RELAY_BUF_SIZE);
    if (n >= 0) {
        h->eof = n == 0;
        got_bytes(rl, h, (size_t)n);
    }
    return n;
}

/*
 * The buffered path: moves what it can from h->from to h->to through a
 * borrowed buffer without blocking; with read_more 0 it only flushes what
 * is queued. Returns 0, or a negative errno when the connection must close.
 *
 * A read that returns less than the buffer holds has emptied the socket's
 * receive queue (a TCP or Unix stream read copies until the queue is empty
 * or the buffer full), so the next read would most often be an EAGAIN: the
 * pump stops there instead. That is safe because interest is level-triggered
 * and the source stays watched while the buffer is empty: anything left (a
 * read can also stop short at urgent data) or arriving later is reported by
 * the next epoll_wait. Only when the FIN is known to be queued (h->hup) does
 * it read on, to the 0 that ends the half.
 */
static int pump_copy(struct relay *rl, struct half *h, int read_more)
{
    for (int i = 0; i < PUMP_ROUNDS; i++) {
        ssize_t n;

        if (h->len == 0 && (h->in_pipe > 0 || !h->eof)) {
            int from_pipe = h->in_pipe > 0;

            if (!read_more)
                break;
            if (h->buf == NULL && (h->buf = buf_get(rl->pool)) == NULL)
                return -ENOMEM;
            n = fill(rl, h);
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1 && errno == EAGAIN)
                break;
            if (n == -1)
                return -errno;
            h->off = 0;
            h->len = (uint32_t)n;
            if (n == RELAY_BUF_SIZE)
                h->bulk = 1;
            else if (n > 0 && !h->hup && !from_pipe)
                read_more = 0; /* drained: send this, then back to the loop */
        }
        if (h->len > 0) {
            n = send(h->to, h->buf + h->off, h->len, MSG_NOSIGNAL);
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1 && errno == EAGAIN)
                break;
            if (n == -1)
                return -errno;
            h->off += (uint32_t)n;
            h->len -= (uint32_t)n;
            if (h->len > 0 || (h->bulk && relay_splice && !rl->no_splice))
                break; /* the next readiness event splices */
        }
        if (h->eof && h->len == 0 && h->in_pipe == 0)
            return half_done(rl, h);
    }
    release_if_empty(rl->pool, h);
    return 0;
}

/* pump_splice's answer when this connection cannot splice: no pipe to be
 * had (out of fds: EMFILE, ENFILE, or pipe-user-pages-soft reached), or
 * splice refused (EINVAL, ENOSYS). It copies from then on instead. */
#define SPLICE_REFUSED 1

/*
 * The zero-copy path: socket -> pipe -> socket with SPLICE_F_MOVE. A pipe
 * is borrowed only while bytes sit in it. The source is read only when the
 * pipe is empty, so EAGAIN from the first splice means "source empty", and
 * from the second "sink full". Returns 0, SPLICE_REFUSED, or a negative
 * errno to close.
 */
static int pump_splice(struct relay *rl, struct half *h)
{
    const unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;

    for (int i = 0; i < PUMP_ROUNDS; i++) {
        ssize_t n;

        if (h->in_pipe == 0 && !h->eof) {
            /* Any failure, not only EMFILE: a pipe is an optimisation, and
             * the connection does without it rather than close. */
            if (h->pipe[0] == -1 && pipe_get(rl->pool, h->pipe) != 0)
                return SPLICE_REFUSED;
            n = splice(h->from, NULL, h->pipe[1], NULL, PIPE_SIZE, flags);
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1 && errno == EAGAIN)
                break;
            if (n == -1)
                return errno == EINVAL || errno == ENOSYS ? SPLICE_REFUSED : -errno;
            h->eof = n == 0;
            h->in_pipe = (uint32_t)n;
            got_bytes(rl, h, (size_t)n);
        }
        if (h->in_pipe > 0) {
            n = splice(h->pipe[0], NULL, h->to, NULL, h->in_pipe, flags);
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1 && errno == EAGAIN)
                break;
            /* Refused with bytes in the pipe: the copy path sends them
             * first (fill), so nothing is lost or reordered. */
            if (n == -1)
                return errno == EINVAL || errno == ENOSYS ? SPLICE_REFUSED : -errno;
            h->in_pipe -= (uint32_t)n;
            if (h->in_pipe > 0)
                break;
        }
        if (h->eof && h->in_pipe == 0)
            return half_done(rl, h);
    }
    if (h->in_pipe == 0)
        pipe_put(rl->pool, h->pipe);
    return 0;
}

static int relay_pump(struct relay *rl, struct half *h)
{
    int rc;

    if (h->hold)
        return pump_copy(rl, h, 0);

    /* Small exchanges cost fewer syscalls through a buffer (read + send)
     * than through a pipe (two splices each way): a half switches to splice
     * once a read fills the buffer, i.e. when bulk data flows (HAProxy's
     * splice-auto). A half still draining its pipe into the buffer (after
     * a fallback) copies until the pipe is empty. */
    if (!relay_splice || rl->no_splice || !h->bulk)
        return pump_copy(rl, h, 1);
    /* Bytes queued before relaying (the header, early client data) go
     * first, through the buffer they are in. */
    if (h->len > 0) {
        rc = pump_copy(rl, h, 0);
        if (rc != 0 || h->len > 0)
            return rc;
    }
    rc = pump_splice(rl, h);
    if (rc == SPLICE_REFUSED) {
        /* For this connection, both ways: whatever refused splice would
         * refuse it again. */
        rl->no_splice = 1;
        return pump_copy(rl, h, 1);
    }
    return rc;
}

static inline uint32_t pending(const struct half *h)
{
    return h->len + h->in_pipe;
}

/* Asks the loop for want on fd, which holds the current mask: no syscall
 * when it is unchanged, and an fd not registered yet (a client not watched
 * since accept) is only registered once something is wanted of it. */
static int set_interest(struct relay *rl, int fd, unsigned want)
{
    if (want == loop_mask(rl->loop, fd))
        return 0;
    return loop_set(rl->loop, fd, want, rl->cb, rl->arg);
}

/* A hung-up source is no longer watched, but what it sent before its FIN
 * is still to be read: the sink's writability drives that half then. */
static int update_interest(struct relay *rl)
{
    unsigned cw = 0, uw = 0;
    int rc = 0;

    if (!pending(&rl->c2u) && !rl->c2u.eof)
        cw |= LOOP_READ;
    if (pending(&rl->u2c) || (rl->ugone && !rl->u2c.eof))
        cw |= LOOP_WRITE;
    if (!pending(&rl->u2c) && !rl->u2c.eof)
        uw |= LOOP_READ;
    if (pending(&rl->c2u) || (rl->cgone && !rl->c2u.eof))
        uw |= LOOP_WRITE;
    if (!rl->cgone)
        rc = set_interest(rl, rl->cfd, cw);
    if (rc == 0 && !rl->ugone)
        rc = set_interest(rl, rl->ufd, uw);
    return rc;
}

/* EPOLLERR: a pending socket error closes the connection. A plain hang-up
 * (EPOLLHUP alone: both ways shut, or ended without an error) has SO_ERROR
 * at 0, so it is not read: it is left to read() and write(), which see EOF
 * or EPIPE (or an error that came after epoll_wait). */
static int socket_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        return errno;
    return err;
}

int relay_event(struct relay *rl, int fd, unsigned events)
{
    struct half *in = fd == rl->cfd ? &rl->c2u : &rl->u2c;  /* reads from fd */
    struct half *out = fd == rl->cfd ? &rl->u2c : &rl->c2u; /* writes to fd */
    int rc = 0, err;

    if ((events & LOOP_SOCKERR) && (err = socket_error(fd)) != 0)
        return -err;
    /* The FIN is queued behind whatever fd still holds: reading goes on
     * to the EOF (pump_copy), and it stays so. */
    if (events & (LOOP_RDHUP | LOOP_ERROR))
        in->hup = 1;
    if (events & (LOOP_READ | LOOP_ERROR))
        rc = relay_pump(rl, in);
    if (rc == 0 && (events & (LOOP_WRITE | LOOP_ERROR)))
        rc = relay_pump(rl, out);
    if (rc == 0 && (events & LOOP_ERROR) && !(rl->c2u.shut && rl->u2c.shut)) {
        /* Hung up while we still hold its data for the other side. HUP is
         * level-triggered and cannot be masked, so stop watching fd: its
         * remaining bytes are all queued already (read() drains them, then
         * sees EOF), and anything still to write to it failed above. */
        loop_remove(rl->loop, fd);
        if (fd == rl->cfd)
            rl->cgone = 1;
        else
            rl->ugone = 1;
    }
    if (rc != 0)
        return rc;
    if (rl->c2u.shut && rl->u2c.shut)
        return 1;
    return update_interest(rl);
}

/* relay_start without a header phase, a header queued (send-proxy): one
 * read appends what the client sent while the upstream connected behind
 * the header, so that both go in one send (one syscall and one segment
 * fewer, and a receiver that gets the header with its first bytes).
 * Returns 1 when the client is drained (a short read, EAGAIN, its EOF), 0
 * when the space filled and the pump should read on, or a negative errno. */
static int append_client(struct relay *rl, struct half *h)
{
    uint32_t end = h->off + h->len;
    ssize_t n;

    do
        n = read(h->from, h->buf + end, RELAY_BUF_SIZE - end);
    while (n == -1 && errno == EINTR);
    if (n == -1)
        return errno == EAGAIN ? 1 : -errno;
    h->eof = n == 0;
    h->len += (uint32_t)n;
    got_bytes(rl, h, (size_t)n);
    return (size_t)n < RELAY_BUF_SIZE - end;
}

int relay_start(struct relay *rl, loop_fd_cb *cb, void *arg, int client_drained)
{
    struct loop *l = rl->loop;
    int rc;

    rl->cb = cb;
    rl->arg = arg;
    rl->c2u.from = rl->cfd;
    rl->c2u.to = rl->ufd;
    rl->u2c.from = rl->ufd;
    rl->u2c.to = rl->cfd;
    rl->active_ms = loop_now(l);
    /* What the header phase and the connect left registered keeps its
     * interest and calls cb from now on: no syscall. The client is not
     * registered yet when there was no header phase (-ENOENT). */
    rc = loop_set_cb(l, rl->cfd, cb, arg);
    if (rc == 0 || rc == -ENOENT)
        rc = loop_set_cb(l, rl->ufd, cb, arg);
    if (rc != 0 && rc != -ENOENT)
        return rc;
    /* After a header phase, the client was read last, most often into a
     * buffer it did not fill, which drained the socket (pump_copy): reading
     * again now would mostly be an EAGAIN. Only what is queued is sent; the
     * client's READ interest (kept or set again by update_interest) reports
     * anything else. Without a header phase, the client has not been read
     * yet. */
    if (!client_drained && rl->c2u.len > 0 && !rl->c2u.hold) {
        if ((rc = append_client(rl, &rl->c2u)) < 0)
            return rc;
        client_drained = rc;
    }
    if (client_drained)
        rc = pump_copy(rl, &rl->c2u, 0);
    else
        rc = relay_pump(rl, &rl->c2u);
    if (rc != 0)
        return rc;
    return update_interest(rl);
}
