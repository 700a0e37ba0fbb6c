/*
 * conn.c - a TCP connection's life (conn_*): the route's connection cap,
 * the PROXY header phase (accept-proxy, trusted), access control on the
 * real client, the non-blocking upstream connect and the header sent
 * upstream (send-proxy), all decided by route.c; then relay.c moves the
 * bytes, fed by relay_cb here; and closing, with its log line.
 *
 * The header phase never blocks anything else: a client that connects and
 * sends nothing costs one timer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "util/log.h"
#include "engine/balance.h"
#include "engine/conn.h"
#include "engine/route.h"
#include "engine/transparent.h"
#include "engine/worker.h"

/* ---- closing -------------------------------------------------------------- */

static void conn_free(void *arg)
{
    struct conn *c = arg;

    route_unref(c->r);
    free(c->hbuf);
    free(c);
}

static void close_fd(struct conn *c, int *fd)
{
    if (*fd == -1)
        return;
    loop_close(c->w->loop, *fd);
    *fd = -1;
}

static void conn_close(struct conn *c, const char *error)
{
    struct worker *w = c->w;
    uint64_t now = loop_now(w->loop);

    log_event(error ? LOG_WARN : LOG_INFO, "conn_close", c->r->cfg->name, "client", LOG_ADDR,
              (const struct sockaddr *)&c->client, "peer", LOG_ADDR,
              (const struct sockaddr *)&c->peer, "upstream", LOG_STR, c->up ? c->up->name : NULL,
              "bytes_in", LOG_UINT, c->rl.c2u.bytes, "bytes_out", LOG_UINT, c->rl.u2c.bytes,
              "duration_ms", LOG_UINT, now - c->start_ms, "error", LOG_STR, error, LOG_END);
    loop_timer_cancel(w->loop, &c->timer);
    if (c->up != NULL)
        atomic_fetch_sub_explicit(&c->r->ups[c->up - c->r->cfg->up].conns, 1, memory_order_relaxed);
    close_fd(c, &c->rl.cfd);
    close_fd(c, &c->rl.ufd);
    relay_end(&c->rl);
    route_leave(c->r);
    w->nconns--;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    worker_drained(w);
    /* Other callbacks of this iteration may still hold c (and its route). */
    if (loop_defer(w->loop, conn_free, c) != 0)
        conn_free(c);
}

void conn_close_all(struct worker *w, const char *error)
{
    while (w->conns != NULL)
        conn_close(w->conns, error);
}

/* A refusal before relaying: counted, logged with its reason, closed. */
static void refuse_with(struct conn *c, enum route_stat k, const char *event, const char *reason)
{
    route_count(c->r, c->w->id, k, 1);
    log_event(LOG_WARN, event, c->r->cfg->name, "reason", LOG_STR, reason, "peer", LOG_ADDR,
              (const struct sockaddr *)&c->peer, "client", LOG_ADDR,
              (const struct sockaddr *)&c->client, LOG_END);
    conn_close(c, reason);
}

/* A refusal by route.c's admission; n: the parse result (ADMIT_BAD_HEADER). */
static void refuse(struct conn *c, enum admit a, ssize_t n)
{
    enum route_stat k = route_admit_info[a].stat;

    refuse_with(c, k, k == STAT_REFUSED ? "conn_refused" : "proxy_header_refused",
                route_admit_reason(a, n));
}

/* A failure of this connection's own (out of memory, out of fds, the
 * loop refusing a socket): closed with the error, nobody else blamed. */
static void fail(struct conn *c, int err)
{
    conn_close(c, strerror(err));
}

/* ---- relaying --------------------------------------------------------------- */

static void relay_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct conn *c = arg;
    int rc = relay_event(&c->rl, fd, events);

    (void)l;
    if (rc < 0)
        fail(c, -rc);
    else if (rc > 0)
        conn_close(c, NULL);
}

static void idle_cb(struct loop *l, struct timer *t, void *arg)
{
    struct conn *c = arg;
    uint64_t idle = c->r->cfg->idle_timeout_ms, quiet = loop_now(l) - c->rl.active_ms;

    /* The deadline moves with traffic lazily: re-arming a heap timer on
     * every read would cost more than this check once per period. */
    if (quiet < idle) {
        loop_timer_set(l, t, idle - quiet, idle_cb, c);
        return;
    }
    conn_close(c, "idle timeout");
}

/* Connected: queue the header and the client's early bytes, then relay.
 * They go out in one write, the header first (spec: before any data). */
static void established(struct conn *c)
{
    const struct pp_header *acc = c->has_hdr ? &c->hdr : NULL;
    struct route_hdr h = {.src = (const struct sockaddr *)&c->client,
                          .dst = (const struct sockaddr *)&c->dst,
                          .accepted = acc,
                          .socktype = acc && acc->socktype ? acc->socktype : SOCK_STREAM};
    uint32_t early = c->hlen - c->hoff;
    uint8_t *buf;
    ssize_t n;
    int rc;

    loop_timer_cancel(c->w->loop, &c->timer);
    if (c->r->cfg->send_proxy != SEND_PROXY_OFF || early > 0) {
        if ((buf = relay_queue_buf(&c->rl)) == NULL) {
            fail(c, ENOMEM);
            return;
        }
        n = route_header(c->r, &h, buf, RELAY_BUF_SIZE - HEADER_BUF_SIZE);
        if (n < 0) {
            conn_close(c, pp_strerror((int)n));
            return;
        }
        if (early > 0)
            memcpy(buf + n, c->hbuf + c->hoff, early);
        c->rl.c2u.len = (uint32_t)n + early;
        c->rl.c2u.bytes = early;
        route_count(c->r, c->w->id, STAT_BYTES_IN, early);
    }
    free(c->hbuf);
    c->hbuf = NULL;
    c->hdr.tlv = NULL;
    c->state = CONN_RELAY;
    loop_timer_set(c->w->loop, &c->timer, c->r->cfg->idle_timeout_ms, idle_cb, c);
    rc = relay_start(&c->rl, relay_cb, c, c->r->cfg->accept_proxy != ACCEPT_PROXY_OFF);
    if (rc != 0)
        fail(c, -rc);
}

/* ---- connecting upstream ------------------------------------------------- */

/* The upstream connect's outcome: 0, or the errno it failed with. Counts a
 * failure and keeps the upstream's last outcome for ppfwd_upstream_up. */
static void connect_done(struct conn *c, int err, const char *error)
{
    balance_result(c->r, (size_t)(c->up - c->r->cfg->up), err, loop_now(c->w->loop));
    if (err == 0) {
        established(c);
        return;
    }
    route_count(c->r, c->w->id, STAT_UPSTREAM_ERRORS, 1);
    log_event(LOG_WARN, "upstream_error", c->r->cfg->name, "upstream", LOG_STR, c->up->name,
              "error", LOG_STR, error ? error : strerror(err), LOG_END);
    if (err == ETIMEDOUT && c->r->cfg->transparent)
        route_transparent_no_reply(c->r, c->up->name);
    conn_close(c, error ? error : strerror(err));
}

static void connect_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct conn *c = arg;
    int err = 0;
    socklen_t len = sizeof(err);

    (void)l;
    /* Writable without EPOLLERR/EPOLLHUP: the handshake is done (tcp_poll
     * reports no EPOLLOUT while in SYN_SENT, and a failed connect raises
     * EPOLLERR with its error in SO_ERROR). Only a failure is read there. */
    if (!(events & LOOP_WRITE) || (events & LOOP_ERROR)) {
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
            err = errno;
        if (err == EINPROGRESS || err == EALREADY)
            return;
    }
    /* WRITE stays on: relay_start's first interest update replaces it with
     * one epoll_ctl instead of two. */
    connect_done(c, err, NULL);
}

static void connect_timeout_cb(struct loop *l, struct timer *t, void *arg)
{
    (void)l, (void)t;
    connect_done(arg, ETIMEDOUT, "connect timeout");
}

static void set_nodelay(int fd)
{
    int one = 1;

    /* Proxied protocols are often request/response: never hold a small
     * write back waiting for an ACK. (Accepted sockets inherit it from the
     * listener, listen_open.) */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* The upstream socket (transparent.c); with transparent=on bound to the
 * real client, or ppfwd's own address after a header without addresses
 * (LOCAL, UNSPEC). */
static int upstream_socket(struct conn *c, int family)
{
    int own = c->has_hdr && (c->hdr.command == PP2_CMD_LOCAL || c->hdr.src.sa.sa_family == AF_UNSPEC);

    return transparent_open(SOCK_STREAM, family, c->r->cfg->transparent,
                            own ? NULL : (const struct sockaddr *)&c->client);
}

static void connect_upstream(struct conn *c)
{
    const struct route_cfg *rc = c->r->cfg;
    int i = balance_pick(c->r, (const struct sockaddr *)&c->client, loop_now(c->w->loop)), err;
    const struct sockaddr *sa;

    if (i < 0) {
        refuse_with(c, STAT_REFUSED, "conn_refused", "no live upstream");
        return;
    }
    c->up = &rc->up[i];
    atomic_fetch_add_explicit(&c->r->ups[i].conns, 1, memory_order_relaxed);
    sa = (const struct sockaddr *)&c->up->addr;
    c->state = CONN_CONNECT;
    c->rl.ufd = upstream_socket(c, sa->sa_family);
    if (c->rl.ufd == -EAFNOSUPPORT) {
        c->rl.ufd = -1;
        refuse_with(c, STAT_REFUSED, "conn_refused",
                    "transparent=on: the client's address family is not the upstream's");
        return;
    }
    if (c->rl.ufd < 0) {
        err = -c->rl.ufd;
        c->rl.ufd = -1;
        route_count(c->r, c->w->id, STAT_UPSTREAM_ERRORS, 1);
        fail(c, err);
        return;
    }
    set_nodelay(c->rl.ufd);
    if (connect(c->rl.ufd, sa, c->up->addrlen) == 0) {
        connect_done(c, 0, NULL);
        return;
    }
    /* Failed at once (ENETUNREACH, EADDRNOTAVAIL...): the error is errno,
     * not in SO_ERROR, which reads 0. */
    if (errno != EINPROGRESS) {
        connect_done(c, errno, NULL);
        return;
    }
    /* Not the upstream's fault: no timeout, no mark against it. */
    if ((err = loop_add(c->w->loop, c->rl.ufd, LOOP_WRITE, connect_cb, c)) != 0) {
        fail(c, -err);
        return;
    }
    loop_timer_set(c->w->loop, &c->timer, rc->connect_timeout_ms, connect_timeout_cb, c);
}

/* ---- the header phase ---------------------------------------------------- */

/* The real client is known: check it against allow/deny, then connect. */
static void client_known(struct conn *c)
{
    if (route_admit_client(c->r, (const struct sockaddr *)&c->client) != ADMIT_OK) {
        refuse(c, ADMIT_DENIED, 0);
        return;
    }
    connect_upstream(c);
}

/* The client is not read while connecting, but its READ interest stays
 * registered: most connects end before the client sends more, and the
 * relay wants READ then anyway, so the two epoll_ctl that turning it off
 * and on again would cost are spared. header_cb turns it off only if the
 * client does send more meanwhile (level-triggered, it would spin). */
static void header_done(struct conn *c, size_t consumed)
{
    const struct sockaddr *src, *dst;

    loop_timer_cancel(c->w->loop, &c->timer);
    c->hoff = (uint32_t)consumed;
    if (c->has_hdr) {
        route_relayed(&c->hdr, (const struct sockaddr *)&c->peer,
                      (const struct sockaddr *)&c->local, &src, &dst);
        if (src != (const struct sockaddr *)&c->peer) {
            memcpy(&c->client, &c->hdr.src, sizeof(c->hdr.src));
            memcpy(&c->dst, &c->hdr.dst, sizeof(c->hdr.dst));
        }
    }
    client_known(c);
}

/* Decides on the bytes read so far; 0 while more are needed. */
static int header_decide(struct conn *c)
{
    ssize_t n = pp_parse(c->hbuf, c->hlen, &c->hdr, NULL);
    enum admit a = route_admit_header(c->r, n, c->trusted, 0);

    switch (a) {
    case ADMIT_MORE:
        return 0;
    case ADMIT_DIRECT:
        header_done(c, 0); /* a direct client: all of it is data */
        return 1;
    case ADMIT_OK:
        c->has_hdr = 1;
        route_count(c->r, c->w->id, STAT_HDR_OK, 1);
        header_done(c, (size_t)n);
        return 1;
    default:
        refuse(c, a, n);
        return 1;
    }
}

static void header_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct conn *c = arg;
    ssize_t n;
    int rc;

    if (c->state != CONN_HEADER) {
        /* Connecting (header_done): the client is gone, or it sent more,
         * which waits in its socket for the relay. */
        if (events & LOOP_ERROR)
            conn_close(c, "client closed while connecting");
        else if ((rc = loop_del(l, fd, LOOP_READ)) != 0)
            fail(c, -rc);
        return;
    }
    n = read(fd, c->hbuf + c->hlen, HEADER_BUF_SIZE - c->hlen);
    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n == 0 && c->r->cfg->accept_proxy == ACCEPT_PROXY_OPTIONAL) {
        /* What came can no longer become a header: a direct client's data,
         * to relay before its EOF. */
        header_done(c, 0);
        return;
    }
    if (n <= 0) {
        conn_close(c, n == 0 ? "client closed before the header" : strerror(errno));
        return;
    }
    c->hlen += (uint32_t)n;
    if (header_decide(c) == 0 && c->hlen == HEADER_BUF_SIZE)
        refuse(c, ADMIT_BAD_HEADER, -PP_ETOOLONG);
}

static void header_timeout_cb(struct loop *l, struct timer *t, void *arg)
{
    struct conn *c = arg;

    (void)l, (void)t;
    /* optional: a silent client is a direct one (server-speaks-first). */
    if (c->r->cfg->accept_proxy == ACCEPT_PROXY_OPTIONAL && c->hlen == 0) {
        header_done(c, 0);
        return;
    }
    refuse_with(c, STAT_HDR_TIMEOUT, "proxy_header_refused", "PROXY header timeout");
}

static void start_header(struct conn *c)
{
    const struct route_cfg *rc = c->r->cfg;
    enum admit a = route_admit_peer(c->r, (const struct sockaddr *)&c->peer, &c->trusted);
    int err;

    if (a != ADMIT_OK) {
        refuse(c, a, 0);
        return;
    }
    c->hbuf = malloc(HEADER_BUF_SIZE);
    if (c->hbuf == NULL) {
        fail(c, ENOMEM);
        return;
    }
    c->state = CONN_HEADER;
    if ((err = loop_add(c->w->loop, c->rl.cfd, LOOP_READ, header_cb, c)) != 0) {
        fail(c, -err);
        return;
    }
    loop_timer_set(c->w->loop, &c->timer, rc->header_timeout_ms, header_timeout_cb, c);
}

/* ---- accepting ------------------------------------------------------------ */

static void refuse_early(struct worker *w, struct route *r, int fd, const char *reason)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);

    if (getpeername(fd, (struct sockaddr *)&peer, &len) == -1)
        peer.ss_family = AF_UNSPEC;
    route_count(r, w->id, STAT_REFUSED, 1);
    log_event(LOG_WARN, "conn_refused", r->cfg->name, "reason", LOG_STR, reason, "peer", LOG_ADDR,
              (const struct sockaddr *)&peer, LOG_END);
    close(fd);
}

void conn_start(struct worker *w, struct route *r, int fd, const struct sockaddr_storage *peer,
                socklen_t peerlen)
{
    struct conn *c;
    socklen_t len;

    if (route_enter(r) != ADMIT_OK) {
        refuse_early(w, r, fd, route_admit_reason(ADMIT_FULL, 0));
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        route_leave(r);
        refuse_early(w, r, fd, strerror(ENOMEM));
        return;
    }
    route_count(r, w->id, STAT_CONNS, 1);
    c->w = w;
    c->r = route_ref(r);
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    relay_init(&c->rl, w->loop, &w->pool, fd);
    c->rl.count_in = &r->stats[w->id][STAT_BYTES_IN];
    c->rl.count_out = &r->stats[w->id][STAT_BYTES_OUT];
    c->start_ms = loop_now(w->loop);
    w->nconns++;
    memcpy(&c->peer, peer, peerlen);
    /* The local address is only sent on (send-proxy): spare the syscall. */
    len = sizeof(c->local);
    if (r->cfg->send_proxy == SEND_PROXY_OFF ||
        getsockname(fd, (struct sockaddr *)&c->local, &len) == -1)
        c->local.ss_family = AF_UNSPEC;
    c->client = c->peer;
    c->dst = c->local;
    /* TCP_NODELAY came from the listener (listen_open). */
    if (r->cfg->accept_proxy == ACCEPT_PROXY_OFF)
        client_known(c);
    else
        start_header(c);
}
