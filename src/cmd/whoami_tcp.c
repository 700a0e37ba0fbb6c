/*
 * whoami_tcp.c - `ppfwd whoami` over TCP: accepting, then per connection
 * reading the header the mode asks for, answering, draining (wconn_*; see
 * whoami.c for the modes).
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <proxyproto.h>

#include "cmd/whoami_internal.h"
#include "loop/loop.h"
#include "util/log.h"

enum whoami_state { WC_HEADER, WC_ANSWER, WC_DRAIN };

struct whoami_conn {
    struct whoami *w;
    struct whoami_conn *prev, *next;
    int fd;
    enum whoami_state st;
    struct timer timer;
    struct loop_work free_work; /* wconn_free_cb, at the end of the iteration */
    uint64_t start; /* loop_now() at accept */
    struct sockaddr_storage peer, local;
    char *out; /* the answer, while it is being written */
    size_t out_len, out_off;
    size_t len; /* header bytes in buf */
    uint8_t buf[WHOAMI_HDR_CAP];
};

/* ---- TCP connections ----------------------------------------------------- */

static void wconn_free_cb(void *arg)
{
    struct whoami_conn *c = arg;

    free(c->out);
    free(c);
}

static void wconn_close(struct whoami_conn *c)
{
    struct whoami *w = c->w;

    loop_timer_cancel(w->loop, &c->timer);
    loop_remove(w->loop, c->fd);
    close(c->fd);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    /* Other callbacks of this iteration may still hold c. */
    loop_defer(w->loop, &c->free_work, wconn_free_cb, c);
}

static void wconn_timeout(struct loop *l, struct timer *t, void *arg);
static void wconn_cb(struct loop *l, int fd, void *arg, unsigned events);

static void wconn_refuse(struct whoami_conn *c, const char *reason)
{
    whoami_refuse("tcp", (struct sockaddr *)&c->peer, reason);
    wconn_close(c);
}

/* The answer is out: half-close, then read what the client still sends for
 * a moment, since closing with unread bytes would send a RST. */
static void wconn_drain_start(struct whoami_conn *c)
{
    free(c->out);
    c->out = NULL;
    shutdown(c->fd, SHUT_WR);
    loop_del(c->w->loop, c->fd, LOOP_WRITE);
    c->st = WC_DRAIN;
    loop_timer_set(c->w->loop, &c->timer, WHOAMI_DRAIN_MS, wconn_timeout, c);
}

/* Writes what is left of the answer; a full socket buffer waits for
 * LOOP_WRITE. */
static void wconn_flush(struct whoami_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN) {
            loop_add(c->w->loop, c->fd, LOOP_WRITE, wconn_cb, c);
            return;
        }
        if (n == -1) {
            wconn_close(c); /* the client is gone: nobody to answer */
            return;
        }
        c->out_off += (size_t)n;
    }
    wconn_drain_start(c);
}

static void wconn_answer(struct whoami_conn *c, const struct pp_header *hdr)
{
    c->out =
        whoami_answer((struct sockaddr *)&c->peer, (struct sockaddr *)&c->local, hdr, &c->out_len);
    if (c->out == NULL) {
        log_event(LOG_ERROR, "whoami_error", NULL, "error", LOG_STR, strerror(ENOMEM), LOG_END);
        wconn_close(c);
        return;
    }
    whoami_log_answer("tcp", (struct sockaddr *)&c->peer, hdr);
    c->out_off = 0;
    c->st = WC_ANSWER;
    /* A client that never reads would otherwise hold the answer forever. */
    loop_timer_set(c->w->loop, &c->timer, WHOAMI_HEADER_MS, wconn_timeout, c);
    wconn_flush(c);
}

/* A header has begun: the quiet period of optional mode no longer applies,
 * the header deadline does. */
static void wconn_header_deadline(struct whoami_conn *c)
{
    uint64_t now = loop_now(c->w->loop), end = c->start + WHOAMI_HEADER_MS;

    if (now >= end)
        wconn_refuse(c, "PROXY header timeout");
    else
        loop_timer_set(c->w->loop, &c->timer, end - now, wconn_timeout, c);
}

/* Decides on the header bytes read so far; returns without a decision
 * while they are a valid prefix. */
static void wconn_decide(struct whoami_conn *c)
{
    struct pp_header hdr;
    ssize_t n = pp_parse(c->buf, c->len, &hdr, NULL);

    if (n > 0)
        wconn_answer(c, &hdr);
    else if (n == -PP_EBADSIG && c->w->mode == WHOAMI_OPTIONAL)
        wconn_answer(c, NULL);
    else if (n == -PP_EBADSIG)
        wconn_refuse(c, "no PROXY header");
    else if (n < 0)
        wconn_refuse(c, pp_strerror((int)n));
    else if (c->len == sizeof(c->buf))
        wconn_refuse(c, pp_strerror(-PP_ETOOLONG)); /* cannot happen: the parser caps */
    else
        wconn_header_deadline(c);
}

/* EOF before any decision: a client that shut down its side without
 * sending anything can still read an answer in optional mode. */
static void wconn_eof(struct whoami_conn *c)
{
    if (c->len == 0 && c->w->mode == WHOAMI_OPTIONAL)
        wconn_answer(c, NULL);
    else
        wconn_refuse(c, c->len == 0 ? "closed before a PROXY header" : "truncated PROXY header");
}

static void wconn_read_header(struct whoami_conn *c)
{
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n == -1) {
        wconn_refuse(c, strerror(errno));
        return;
    }
    if (n == 0) {
        wconn_eof(c);
        return;
    }
    c->len += (size_t)n;
    wconn_decide(c);
}

/* After the answer, the client's bytes are read and thrown away. */
static void wconn_discard(struct whoami_conn *c)
{
    char sink[4096];
    ssize_t n = recv(c->fd, sink, sizeof(sink), 0);

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 && c->st == WC_DRAIN)
        wconn_close(c);
    else if (n <= 0)
        loop_del(c->w->loop, c->fd, LOOP_READ); /* still writing the answer */
}

static void wconn_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct whoami_conn *c = arg;

    (void)l, (void)fd;
    if (c->st == WC_HEADER) {
        wconn_read_header(c);
        return;
    }
    if (c->st == WC_ANSWER && (events & (LOOP_WRITE | LOOP_ERROR))) {
        wconn_flush(c);
        return;
    }
    if (events & (LOOP_READ | LOOP_ERROR))
        wconn_discard(c);
}

static void wconn_timeout(struct loop *l, struct timer *t, void *arg)
{
    struct whoami_conn *c = arg;

    (void)l, (void)t;
    if (c->st != WC_HEADER)
        wconn_close(c); /* drained enough, or the answer could not be written */
    else if (c->len == 0 && c->w->mode == WHOAMI_OPTIONAL)
        wconn_answer(c, NULL);
    else
        wconn_refuse(c, "PROXY header timeout");
}

static void wconn_start(struct whoami *w, int fd, const struct sockaddr_storage *peer)
{
    struct whoami_conn *c = calloc(1, sizeof(*c));
    socklen_t len = sizeof(c->local);

    if (c == NULL || loop_add(w->loop, fd, LOOP_READ, wconn_cb, c) != 0) {
        log_event(LOG_ERROR, "accept_error", NULL, "error", LOG_STR,
                  c == NULL ? strerror(ENOMEM) : "descriptor over the loop's limit", LOG_END);
        free(c);
        close(fd);
        return;
    }
    c->w = w;
    c->fd = fd;
    c->peer = *peer;
    getsockname(fd, (struct sockaddr *)&c->local, &len);
    c->start = loop_now(w->loop);
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    if (w->mode == WHOAMI_OFF)
        wconn_answer(c, NULL);
    else
        loop_timer_set(w->loop, &c->timer,
                       w->mode == WHOAMI_OPTIONAL ? WHOAMI_QUIET_MS : WHOAMI_HEADER_MS,
                       wconn_timeout, c);
}

/* ---- accepting ----------------------------------------------------------- */

static void whoami_accept_resume(struct loop *l, struct timer *t, void *arg);

void whoami_accept_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct whoami *w = arg;
    struct sockaddr_storage peer;
    socklen_t len;

    (void)events;
    for (int i = 0; i < WHOAMI_ACCEPT_BATCH; i++) {
        len = sizeof(peer);
        int cfd = accept4(fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd != -1) {
            wconn_start(w, cfd, &peer);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* The listener stays readable: pausing is what keeps this
             * from spinning until a descriptor is free again. */
            log_event(LOG_ERROR, "accept_error", NULL, "error", LOG_STR, strerror(errno),
                      "pause_ms", LOG_UINT, (uint64_t)WHOAMI_ACCEPT_PAUSE_MS, LOG_END);
            loop_del(l, fd, LOOP_READ);
            loop_timer_set(l, &w->accept_pause, WHOAMI_ACCEPT_PAUSE_MS, whoami_accept_resume, w);
        } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
            log_event(LOG_WARN, "accept_error", NULL, "error", LOG_STR, strerror(errno), LOG_END);
        }
        return;
    }
}

static void whoami_accept_resume(struct loop *l, struct timer *t, void *arg)
{
    struct whoami *w = arg;

    (void)t;
    loop_add(l, w->fd, LOOP_READ, whoami_accept_cb, w);
}

void whoami_tcp_close_all(struct whoami *w)
{
    while (w->conns != NULL)
        wconn_close(w->conns);
}
