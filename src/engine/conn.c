/*
 * conn.c - a connection's life before relaying: the route's connection cap,
 * the PROXY header phase (accept-proxy, trusted), access control on the real
 * client, the non-blocking upstream connect, and the header sent upstream
 * (send-proxy), then relay.c takes over; and closing, with its log line
 * (conn_*).
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
#include "engine/proxy.h"

static void conn_free(void *arg)
{
    struct conn *c = arg;

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

void conn_close(struct conn *c, const char *error)
{
    struct worker *w = c->w;
    uint64_t now = loop_now(w->loop);

    log_event(error ? LOG_WARN : LOG_INFO, "conn_close", c->r->cfg->name, "client", LOG_ADDR,
              (const struct sockaddr *)&c->client, "peer", LOG_ADDR,
              (const struct sockaddr *)&c->peer, "upstream", LOG_STR, c->up ? c->up->name : NULL,
              "bytes_in", LOG_UINT, c->c2u.bytes, "bytes_out", LOG_UINT, c->u2c.bytes,
              "duration_ms", LOG_UINT, now - c->start_ms, "error", LOG_STR, error, LOG_END);
    loop_timer_cancel(w->loop, &c->timer);
    if (c->up != NULL)
        atomic_fetch_sub_explicit(&c->r->ups[c->up - c->r->cfg->up].conns, 1, memory_order_relaxed);
    close_fd(c, &c->cfd);
    close_fd(c, &c->ufd);
    relay_half_free(w, &c->c2u);
    relay_half_free(w, &c->u2c);
    atomic_fetch_sub(&c->r->conns, 1);
    w->nconns--;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (w->draining && w->nconns == 0)
        loop_stop(w->loop);
    /* Other callbacks of this iteration may still hold c. */
    if (loop_defer(w->loop, conn_free, c) != 0)
        conn_free(c);
}

/* Closes every connection of the worker (the drain timeout ran out). */
void conn_close_all(struct worker *w, const char *error)
{
    while (w->conns != NULL)
        conn_close(w->conns, error);
}

/* A refusal before relaying: counted, logged with its reason, closed. */
static void refuse(struct conn *c, enum route_stat k, const char *event, const char *reason)
{
    stat_add(c->w, c->r, k, 1);
    log_event(LOG_WARN, event, c->r->cfg->name, "reason", LOG_STR, reason, "peer", LOG_ADDR,
              (const struct sockaddr *)&c->peer, "client", LOG_ADDR,
              (const struct sockaddr *)&c->client, LOG_END);
    conn_close(c, reason);
}

static int is_ip(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET || sa->sa_family == AF_INET6;
}

/* ---- sending the header upstream ---------------------------------------- */

/* Appends the accepted header's TLVs (tlvs=pass) but those this route sets
 * itself, and the CRC32C, which is recomputed if asked for. */
static ssize_t pass_tlvs(const struct conn *c, uint8_t *buf, size_t cap, ssize_t n)
{
    const struct route_cfg *rc = c->r->cfg;
    const uint8_t *p = c->hdr.tlv, *end;
    struct pp_tlv t;

    if (!c->has_hdr || c->hdr.version != 2 || !rc->tlvs_pass || p == NULL)
        return n;
    end = p + c->hdr.tlv_len;
    while (n >= 0 && pp_tlv_next(&p, end, &t) > 0) {
        if (t.type == PP2_TYPE_CRC32C || (t.type == PP2_TYPE_AUTHORITY && rc->authority) ||
            (t.type == PP2_TYPE_UNIQUE_ID && rc->unique_id))
            continue;
        n = pp_build_v2_tlv(buf, cap, (size_t)n, t.type, t.value, t.len);
    }
    return n;
}

static ssize_t build_v2(const struct conn *c, uint8_t *buf, size_t cap)
{
    const struct route_cfg *rc = c->r->cfg;
    int local = c->has_hdr && c->hdr.command == PP2_CMD_LOCAL;
    int socktype = c->has_hdr && c->hdr.socktype ? c->hdr.socktype : SOCK_STREAM;
    ssize_t n;

    n = pp_build_v2(buf, cap, local ? PP2_CMD_LOCAL : PP2_CMD_PROXY, socktype,
                    (const struct sockaddr *)&c->client, (const struct sockaddr *)&c->dst);
    if (n >= 0)
        n = pass_tlvs(c, buf, cap, n);
    if (n >= 0 && rc->authority)
        n = pp_build_v2_tlv(buf, cap, (size_t)n, PP2_TYPE_AUTHORITY, rc->authority,
                            strlen(rc->authority));
    if (n >= 0 && rc->unique_id) {
        uint8_t id[16];
        arc4random_buf(id, sizeof(id));
        n = pp_build_v2_tlv(buf, cap, (size_t)n, PP2_TYPE_UNIQUE_ID, id, sizeof(id));
    }
    if (n >= 0 && rc->crc32c)
        n = pp_build_v2_crc32c(buf, cap, (size_t)n);
    return n;
}

static ssize_t build_header(const struct conn *c, uint8_t *buf, size_t cap)
{
    const struct sockaddr *src = (const struct sockaddr *)&c->client;
    const struct sockaddr *dst = (const struct sockaddr *)&c->dst;

    switch (c->r->cfg->send_proxy) {
    case SEND_PROXY_V1:
        if (c->has_hdr && c->hdr.command == PP2_CMD_LOCAL)
            src = dst = NULL;
        return pp_build_v1(buf, cap, src, dst);
    case SEND_PROXY_V2:
        return build_v2(c, buf, cap);
    default:
        return 0;
    }
}

/* Connected: queue the header and the client's early bytes, then relay.
 * They go out in one write, the header first (spec: before any data). */
static void established(struct conn *c)
{
    uint32_t early = c->hlen - c->hoff;
    ssize_t n = 0;

    loop_timer_cancel(c->w->loop, &c->timer);
    if (c->r->cfg->send_proxy != SEND_PROXY_OFF || early > 0) {
        c->c2u.buf = relay_buf_get(c->w);
        if (c->c2u.buf == NULL) {
            conn_close(c, strerror(ENOMEM));
            return;
        }
        n = build_header(c, c->c2u.buf, RELAY_BUF_SIZE - HEADER_BUF_SIZE);
        if (n < 0) {
            conn_close(c, pp_strerror((int)n));
            return;
        }
        if (early > 0)
            memcpy(c->c2u.buf + n, c->hbuf + c->hoff, early);
        c->c2u.len = (uint32_t)n + early;
        c->c2u.bytes = early;
        stat_add(c->w, c->r, STAT_BYTES_IN, early);
    }
    free(c->hbuf);
    c->hbuf = NULL;
    c->hdr.tlv = NULL;
    relay_start(c);
}

/* ---- connecting upstream ------------------------------------------------- */

/* Counts a failed connect and keeps the upstream's last outcome for
 * ppfwd_upstream_up. */
static void upstream_result(struct conn *c, int err)
{
    balance_result(c->r, (size_t)(c->up - c->r->cfg->up), err, loop_now(c->w->loop));
    if (err != 0)
        stat_add(c->w, c->r, STAT_UPSTREAM_ERRORS, 1);
}

/* The upstream connect's outcome: 0, or the errno it failed with. */
static void connect_done(struct conn *c, int err)
{
    upstream_result(c, err);
    if (err != 0) {
        log_event(LOG_WARN, "upstream_error", c->r->cfg->name, "upstream", LOG_STR, c->up->name,
                  "error", LOG_STR, strerror(err), LOG_END);
        conn_close(c, strerror(err));
        return;
    }
    established(c);
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
    c->umask = LOOP_WRITE;
    connect_done(c, err);
}

static void connect_timeout_cb(struct loop *l, struct timer *t, void *arg)
{
    struct conn *c = arg;

    (void)l, (void)t;
    upstream_result(c, ETIMEDOUT);
    log_event(LOG_WARN, "upstream_error", c->r->cfg->name, "upstream", LOG_STR, c->up->name,
              "error", LOG_STR, "connect timeout", LOG_END);
    conn_close(c, "connect timeout");
}

static void set_nodelay(int fd)
{
    int one = 1;

    /* Proxied protocols are often request/response: never hold a small
     * write back waiting for an ACK. (Accepted sockets inherit it from the
     * listener, listen_open.) */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void connect_upstream(struct conn *c)
{
    const struct route_cfg *rc = c->r->cfg;
    int i = balance_pick(c->r, (const struct sockaddr *)&c->client, loop_now(c->w->loop));
    const struct sockaddr *sa;

    if (i < 0) {
        refuse(c, STAT_REFUSED, "conn_refused", "no live upstream");
        return;
    }
    c->up = &rc->up[i];
    atomic_fetch_add_explicit(&c->r->ups[i].conns, 1, memory_order_relaxed);
    sa = (const struct sockaddr *)&c->up->addr;
    c->state = CONN_CONNECT;
    c->ufd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->ufd == -1) {
        stat_add(c->w, c->r, STAT_UPSTREAM_ERRORS, 1);
        conn_close(c, strerror(errno));
        return;
    }
    set_nodelay(c->ufd);
    if (connect(c->ufd, sa, c->up->addrlen) == 0) {
        connect_done(c, 0);
        return;
    }
    /* Failed at once (ENETUNREACH, EADDRNOTAVAIL...): the error is errno,
     * not in SO_ERROR, which reads 0. */
    if (errno != EINPROGRESS) {
        connect_done(c, errno);
        return;
    }
    loop_add(c->w->loop, c->ufd, LOOP_WRITE, connect_cb, c);
    loop_timer_set(c->w->loop, &c->timer, rc->connect_timeout_ms, connect_timeout_cb, c);
}

/* ---- the header phase ---------------------------------------------------- */

/* The real client is known: check it against allow/deny, then connect. */
static void client_known(struct conn *c)
{
    const struct route_cfg *rc = c->r->cfg;
    const struct sockaddr *sa = (const struct sockaddr *)&c->client;

    if (is_ip(sa) &&
        (cidr_list_match(&rc->deny, sa) || (!rc->allow_all && !cidr_list_match(&rc->allow, sa)))) {
        refuse(c, STAT_REFUSED, "conn_refused", "client not allowed");
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
    loop_timer_cancel(c->w->loop, &c->timer);
    c->hoff = (uint32_t)consumed;
    client_known(c);
}

/* Decides on the bytes read so far; 0 while more are needed. */
static int header_decide(struct conn *c)
{
    const struct route_cfg *rc = c->r->cfg;
    ssize_t n = pp_parse(c->hbuf, c->hlen, &c->hdr, NULL);

    if (n == 0)
        return 0;
    if (n == -PP_EBADSIG && rc->accept_proxy == ACCEPT_PROXY_OPTIONAL) {
        header_done(c, 0); /* a direct client: all of it is data */
        return 1;
    }
    if (n == -PP_EBADSIG) {
        refuse(c, STAT_HDR_INVALID, "proxy_header_refused", "no PROXY header");
        return 1;
    }
    if (n < 0) {
        refuse(c, STAT_HDR_INVALID, "proxy_header_refused", pp_strerror((int)n));
        return 1;
    }
    if (!c->trusted) {
        refuse(c, STAT_HDR_UNTRUSTED, "proxy_header_refused",
               "PROXY header from an untrusted source");
        return 1;
    }
    c->has_hdr = 1;
    stat_add(c->w, c->r, STAT_HDR_OK, 1);
    if (c->hdr.command == PP2_CMD_PROXY && is_ip(&c->hdr.src.sa)) {
        memcpy(&c->client, &c->hdr.src, sizeof(c->hdr.src));
        memcpy(&c->dst, &c->hdr.dst, sizeof(c->hdr.dst));
    }
    header_done(c, (size_t)n);
    return 1;
}

static void header_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct conn *c = arg;
    ssize_t n;

    if (c->state != CONN_HEADER) {
        /* Connecting (header_done): the client is gone, or it sent more,
         * which waits in its socket for the relay. */
        if (events & LOOP_ERROR) {
            conn_close(c, "client closed while connecting");
            return;
        }
        loop_del(l, fd, LOOP_READ);
        c->cmask = 0;
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
        refuse(c, STAT_HDR_INVALID, "proxy_header_refused", pp_strerror(-PP_ETOOLONG));
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
    refuse(c, STAT_HDR_TIMEOUT, "proxy_header_refused", "PROXY header timeout");
}

static int start_header(struct conn *c)
{
    const struct route_cfg *rc = c->r->cfg;
    const struct sockaddr *peer = (const struct sockaddr *)&c->peer;

    c->trusted = rc->trusted_all || cidr_list_match(&rc->trusted, peer);
    if (!c->trusted && rc->accept_proxy == ACCEPT_PROXY_REQUIRED) {
        refuse(c, STAT_HDR_UNTRUSTED, "proxy_header_refused", "untrusted source");
        return -1;
    }
    c->hbuf = malloc(HEADER_BUF_SIZE);
    if (c->hbuf == NULL) {
        conn_close(c, strerror(ENOMEM));
        return -1;
    }
    c->state = CONN_HEADER;
    loop_add(c->w->loop, c->cfd, LOOP_READ, header_cb, c);
    c->cmask = LOOP_READ;
    loop_timer_set(c->w->loop, &c->timer, rc->header_timeout_ms, header_timeout_cb, c);
    return 0;
}

/* ---- accepting ------------------------------------------------------------ */

static int over_cap(struct route *r)
{
    unsigned max = r->cfg->max_conns;

    if (atomic_fetch_add(&r->conns, 1) < max || max == 0)
        return 0;
    atomic_fetch_sub(&r->conns, 1);
    return 1;
}

static void refuse_early(struct worker *w, struct route *r, int fd, const char *reason)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);

    if (getpeername(fd, (struct sockaddr *)&peer, &len) == -1)
        peer.ss_family = AF_UNSPEC;
    stat_add(w, r, STAT_REFUSED, 1);
    log_event(LOG_WARN, "conn_refused", r->cfg->name, "reason", LOG_STR, reason, "peer", LOG_ADDR,
              (const struct sockaddr *)&peer, LOG_END);
    close(fd);
}

void conn_start(struct worker *w, struct route *r, int fd, const struct sockaddr_storage *peer,
                socklen_t peerlen)
{
    struct conn *c;
    socklen_t len;

    if (over_cap(r)) {
        refuse_early(w, r, fd, "max-conns reached");
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        atomic_fetch_sub(&r->conns, 1);
        refuse_early(w, r, fd, strerror(ENOMEM));
        return;
    }
    stat_add(w, r, STAT_CONNS, 1);
    c->w = w;
    c->r = r;
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    c->cfd = fd;
    c->ufd = -1;
    c->c2u.pipe[0] = c->c2u.pipe[1] = c->u2c.pipe[0] = c->u2c.pipe[1] = -1;
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
