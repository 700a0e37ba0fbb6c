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

#include "engine/proxy.h"

/* What one splice moves at most: what a default pipe holds. Growing pipes
 * with F_SETPIPE_SZ (256 KiB) was measured slower here: 7.6 against 10-11
 * Gbit/s for one stream, the larger pages falling out of cache. */
#define PIPE_SIZE (64 * 1024)

int relay_splice = 1;
/* Reads per pump: bounded so that one fast connection cannot starve the
 * others sharing the loop. */
#define PUMP_ROUNDS 16

void *relay_buf_get(struct worker *w)
{
    if (w->nbuf_free > 0)
        return w->buf_free[--w->nbuf_free];
    return malloc(RELAY_BUF_SIZE);
}

void relay_buf_put(struct worker *w, void *buf)
{
    if (buf == NULL)
        return;
    if (w->nbuf_free < BUF_CACHE) {
        w->buf_free[w->nbuf_free++] = buf;
        return;
    }
    free(buf);
}

void relay_buf_drain(struct worker *w)
{
    while (w->nbuf_free > 0)
        free(w->buf_free[--w->nbuf_free]);
    while (w->npipe_free > 0) {
        w->npipe_free--;
        close(w->pipe_free[w->npipe_free][0]);
        close(w->pipe_free[w->npipe_free][1]);
    }
}

/* Gives back what a closing connection's half still holds. A pipe with
 * bytes in it cannot be reused: those bytes would reach the next owner. */
void relay_half_free(struct worker *w, struct half *h)
{
    relay_buf_put(w, h->buf);
    h->buf = NULL;
    if (h->in_pipe > 0 && h->pipe[0] != -1) {
        close(h->pipe[0]);
        close(h->pipe[1]);
        h->pipe[0] = h->pipe[1] = -1;
    }
    relay_pipe_put(w, h->pipe);
}

static int pipe_get(struct worker *w, int p[2])
{
    if (w->npipe_free > 0) {
        w->npipe_free--;
        p[0] = w->pipe_free[w->npipe_free][0];
        p[1] = w->pipe_free[w->npipe_free][1];
        return 0;
    }
    return pipe2(p, O_NONBLOCK | O_CLOEXEC) == -1 ? -errno : 0;
}

/* Only an empty pipe comes back: a pipe with bytes in it belongs to them. */
void relay_pipe_put(struct worker *w, int p[2])
{
    if (p[0] == -1)
        return;
    if (w->npipe_free < PIPE_CACHE) {
        w->pipe_free[w->npipe_free][0] = p[0];
        w->pipe_free[w->npipe_free][1] = p[1];
        w->npipe_free++;
    } else {
        close(p[0]);
        close(p[1]);
    }
    p[0] = p[1] = -1;
}

static void release_if_empty(struct worker *w, struct half *h)
{
    if (h->len == 0 && h->buf != NULL) {
        relay_buf_put(w, h->buf);
        h->buf = NULL;
        h->off = 0;
    }
}

/* h's source ended and all it sent is delivered. */
static int half_shut(struct conn *c, struct half *h)
{
    const struct half *other = h == &c->c2u ? &c->u2c : &c->c2u;

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

static void got_bytes(struct conn *c, struct half *h, size_t n)
{
    h->bytes += n;
    stat_add(c->w, c->r, h == &c->c2u ? STAT_BYTES_IN : STAT_BYTES_OUT, n);
    c->active_ms = loop_now(c->w->loop);
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
static int pump_copy(struct conn *c, struct half *h, int read_more)
{
    for (int i = 0; i < PUMP_ROUNDS; i++) {
        ssize_t n;

        if (h->len == 0 && !h->eof) {
            if (!read_more)
                break;
            if (h->buf == NULL && (h->buf = relay_buf_get(c->w)) == NULL)
                return -ENOMEM;
            n = read(h->from, h->buf, RELAY_BUF_SIZE);
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1 && errno == EAGAIN)
                break;
            if (n == -1)
                return -errno;
            h->eof = n == 0;
            h->off = 0;
            h->len = (uint32_t)n;
            got_bytes(c, h, (size_t)n);
            if (n == RELAY_BUF_SIZE)
                h->bulk = 1;
            else if (n > 0 && !h->hup)
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
            if (h->len > 0 || (h->bulk && relay_splice && !c->no_splice))
                break; /* the next readiness event splices */
        }
        if (h->eof && h->len == 0)
            return half_shut(c, h);
    }
    release_if_empty(c->w, h);
    return 0;
}

/*
 * The zero-copy path: socket -> pipe -> socket with SPLICE_F_MOVE. A pipe
 * is borrowed only while bytes sit in it. The source is read only when the
 * pipe is empty, so EAGAIN from the first splice means "source empty", and
 * from the second "sink full". Returns 0, a negative errno to close, or
 * -EINVAL/-ENOSYS when this kernel or socket refuses splice.
 */
static int pump_splice(struct conn *c, struct half *h)
{
    const unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
    int rc;

    for (int i = 0; i < PUMP_ROUNDS; i++) {
        ssize_t n;

        if (h->in_pipe == 0 && !h->eof) {
            if (h->pipe[0] == -1 && (rc = pipe_get(c->w, h->pipe)) != 0)
                return rc;
            n = splice(h->from, NULL, h->pipe[1], NULL, PIPE_SIZE, flags);
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1 && errno == EAGAIN)
                break;
            if (n == -1)
                return -errno;
            h->eof = n == 0;
            h->in_pipe = (uint32_t)n;
            got_bytes(c, h, (size_t)n);
        }
        if (h->in_pipe > 0) {
            n = splice(h->pipe[0], NULL, h->to, NULL, h->in_pipe, flags);
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1 && errno == EAGAIN)
                break;
            if (n == -1)
                return -errno;
            h->in_pipe -= (uint32_t)n;
            if (h->in_pipe > 0)
                break;
        }
        if (h->eof && h->in_pipe == 0)
            return half_shut(c, h);
    }
    if (h->in_pipe == 0)
        relay_pipe_put(c->w, h->pipe);
    return 0;
}

static int relay_pump(struct conn *c, struct half *h)
{
    int rc;

    /* Small exchanges cost fewer syscalls through a buffer (read + send)
     * than through a pipe (two splices each way): a half switches to splice
     * once a read fills the buffer, i.e. when bulk data flows (HAProxy's
     * splice-auto). */
    if (!relay_splice || c->no_splice || !h->bulk)
        return pump_copy(c, h, 1);
    /* Bytes queued before relaying (the header, early client data) go
     * first, through the buffer they are in. */
    if (h->len > 0) {
        rc = pump_copy(c, h, 0);
        if (rc != 0 || h->len > 0)
            return rc;
    }
    rc = pump_splice(c, h);
    if (rc == -EINVAL || rc == -ENOSYS) {
        /* Nothing moved: fall back to copying for this connection. */
        c->no_splice = 1;
        return pump_copy(c, h, 1);
    }
    return rc;
}

static void set_interest(struct conn *c, int fd, unsigned *have, unsigned want);
static void relay_cb(struct loop *l, int fd, void *arg, unsigned events);

static inline uint32_t pending(const struct half *h)
{
    return h->len + h->in_pipe;
}

/* A hung-up source is no longer watched, but what it sent before its FIN
 * is still to be read: the sink's writability drives that half then. */
static void update_interest(struct conn *c)
{
    unsigned cw = 0, uw = 0;

    if (!pending(&c->c2u) && !c->c2u.eof)
        cw |= LOOP_READ;
    if (pending(&c->u2c) || (c->ugone && !c->u2c.eof))
        cw |= LOOP_WRITE;
    if (!pending(&c->u2c) && !c->u2c.eof)
        uw |= LOOP_READ;
    if (pending(&c->c2u) || (c->cgone && !c->c2u.eof))
        uw |= LOOP_WRITE;
    if (!c->cgone)
        set_interest(c, c->cfd, &c->cmask, cw);
    if (!c->ugone)
        set_interest(c, c->ufd, &c->umask, uw);
}

static void set_interest(struct conn *c, int fd, unsigned *have, unsigned want)
{
    if (want != *have)
        loop_set(c->w->loop, fd, want, relay_cb, c);
    *have = want;
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

static void relay_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct conn *c = arg;
    struct half *in = fd == c->cfd ? &c->c2u : &c->u2c;  /* reads from fd */
    struct half *out = fd == c->cfd ? &c->u2c : &c->c2u; /* writes to fd */
    int rc = 0, err;

    (void)l;
    if ((events & LOOP_SOCKERR) && (err = socket_error(fd)) != 0) {
        conn_close(c, strerror(err));
        return;
    }
    /* The FIN is queued behind whatever fd still holds: reading goes on
     * to the EOF (pump_copy), and it stays so. */
    if (events & (LOOP_RDHUP | LOOP_ERROR))
        in->hup = 1;
    if (events & (LOOP_READ | LOOP_ERROR))
        rc = relay_pump(c, in);
    if (rc == 0 && (events & (LOOP_WRITE | LOOP_ERROR)))
        rc = relay_pump(c, out);
    if (rc == 0 && (events & LOOP_ERROR) && !(c->c2u.shut && c->u2c.shut)) {
        /* Hung up while we still hold its data for the other side. HUP is
         * level-triggered and cannot be masked, so stop watching fd: its
         * remaining bytes are all queued already (read() drains them, then
         * sees EOF), and anything still to write to it failed above. */
        loop_remove(c->w->loop, fd);
        if (fd == c->cfd)
            c->cgone = 1;
        else
            c->ugone = 1;
    }
    if (rc != 0) {
        conn_close(c, strerror(-rc));
        return;
    }
    if (c->c2u.shut && c->u2c.shut) {
        conn_close(c, NULL);
        return;
    }
    update_interest(c);
}

static void idle_cb(struct loop *l, struct timer *t, void *arg)
{
    struct conn *c = arg;
    uint64_t idle = c->r->cfg->idle_timeout_ms, quiet = loop_now(l) - c->active_ms;

    /* The deadline moves with traffic lazily: re-arming a heap timer on
     * every read would cost more than this check once per period. */
    if (quiet < idle) {
        loop_timer_set(l, t, idle - quiet, idle_cb, c);
        return;
    }
    conn_close(c, "idle timeout");
}

/* Starts relaying; c2u may already hold the PROXY header to send and the
 * client bytes that came with the accepted one. */
void relay_start(struct conn *c)
{
    struct loop *l = c->w->loop;
    int rc;

    c->state = CONN_RELAY;
    c->c2u.from = c->cfd;
    c->c2u.to = c->ufd;
    c->u2c.from = c->ufd;
    c->u2c.to = c->cfd;
    c->active_ms = loop_now(l);
    loop_timer_set(l, &c->timer, c->r->cfg->idle_timeout_ms, idle_cb, c);
    /* What the header phase and the connect left registered keeps its
     * interest (cmask, umask) and calls relay_cb from now on: no syscall. */
    (void)loop_set_cb(l, c->cfd, relay_cb, c);
    (void)loop_set_cb(l, c->ufd, relay_cb, c);
    /* After a header phase, header_cb read the client last, most often
     * into a buffer it did not fill, which drained the socket (pump_copy):
     * reading again now would mostly be an EAGAIN. Only what is queued is
     * sent; the client's READ interest (kept or set again by
     * update_interest) reports anything else. Without a header phase, the
     * client has not been read yet. */
    if (c->r->cfg->accept_proxy != ACCEPT_PROXY_OFF)
        rc = pump_copy(c, &c->c2u, 0);
    else
        rc = relay_pump(c, &c->c2u);
    if (rc != 0) {
        conn_close(c, strerror(-rc));
        return;
    }
    update_interest(c);
}
