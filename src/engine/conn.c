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
#include <sys/uio.h>

#include "util/log.h"
#include "engine/balance.h"
#include "engine/conn.h"
#include "engine/route.h"
#include "engine/transparent.h"
#include "engine/worker.h"

/* ---- the header buffer ---------------------------------------------------- */

/* Back to the inline buffer, empty; a heap buffer is freed. */
static void hbuf_reset(struct conn *c)
{
    if (c->hbuf != c->hin)
        free(c->hbuf);
    c->hbuf = c->hin;
    c->hcap = HEADER_INLINE;
    c->hlen = c->hoff = 0;
}

/* Moves the hlen bytes read so far to a heap buffer of cap bytes (more
 * than hcap, at most HEADER_MAX). Returns 0 or -ENOMEM (c unchanged). */
static int hbuf_grow(struct conn *c, size_t cap)
{
    uint8_t *p = malloc(cap);

    if (p == NULL)
        return -ENOMEM;
    memcpy(p, c->hbuf, c->hlen);
    if (c->hbuf != c->hin)
        free(c->hbuf);
    c->hbuf = p;
    c->hcap = (uint32_t)cap;
    return 0;
}

/*
 * Reads what the client sent into hbuf in one readv: the buffer first, then
 * a scratch area on the stack up to HEADER_MAX in all, so a header with the
 * client's first request costs one syscall as before, while a connection
 * waiting for its header holds only the inline buffer. What lands in the
 * scratch area (a big v2 header, or early bytes) is kept on the heap, sized
 * to it. Returns what readv returns (-1 with errno, or -1 with ENOMEM).
 */
static ssize_t hbuf_read(struct conn *c, int fd)
{
    uint8_t spill[HEADER_MAX];
    struct iovec iov[2] = {{c->hbuf + c->hlen, c->hcap - c->hlen}, {spill, HEADER_MAX - c->hcap}};
    ssize_t n = readv(fd, iov, iov[1].iov_len > 0 ? 2 : 1);
    size_t extra;

    if (n <= 0)
        return n;
    extra = (size_t)n > iov[0].iov_len ? (size_t)n - iov[0].iov_len : 0;
    c->hlen += (uint32_t)n - (uint32_t)extra;
    if (extra > 0) {
        if (hbuf_grow(c, c->hlen + extra) != 0) {
            errno = ENOMEM;
            return -1;
        }
        memcpy(c->hbuf + c->hlen, spill, extra);
        c->hlen += (uint32_t)extra;
    }
    return n;
}

/* ---- closing -------------------------------------------------------------- */

static void conn_free(void *arg)
{
    struct conn *c = arg;

    route_unref(c->r);
    hbuf_reset(c);
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
    loop_defer(w->loop, &c->free_work, conn_free, c);
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

/*
 * A client served as direct because it said nothing for header-timeout
 * (accept-proxy=optional, server-speaks-first) may not open with a PROXY
 * header later: from an untrusted source that is the header the contract
 * closes the connection for, and from a trusted one it is a header that
 * missed its deadline (HAProxy and nginx close a connection whose header
 * is late; it must never reach the upstream as data). So its first bytes
 * are read here, not by the relay: a prefix of a header is held until it
 * is decided (at 16 bytes at most), then anything else goes on as data.
 * Returns 1 when decided as data (queued in c2u), 0 while undecided (what
 * came is held; nothing else of the client is read), -1 when c was closed.
 */
static int late_check(struct conn *c)
{
    struct pp_header hdr;
    enum admit a;
    uint8_t *buf;

    for (;;) {
        ssize_t n = read(c->rl.cfd, c->hbuf + c->hlen, c->hcap - c->hlen);

        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN)
            return 0;
        if (n == -1) {
            fail(c, errno);
            return -1;
        }
        if (n == 0)
            break; /* what came can no longer become a header */
        c->hlen += (uint32_t)n;
        n = pp_parse(c->hbuf, c->hlen, &hdr, NULL);
        a = route_admit_header(c->r, n, c->trusted, 0);
        if (a == ADMIT_DIRECT)
            break;
        if (a == ADMIT_MORE && c->hlen < PP_V2_HDR_LEN)
            continue;
        if (a == ADMIT_BAD_HEADER)
            refuse(c, a, n);
        else if (c->trusted)
            refuse_with(c, STAT_HDR_TIMEOUT, "proxy_header_refused",
                        "PROXY header after header-timeout");
        else
            refuse(c, ADMIT_UNTRUSTED, 0);
        return -1;
    }
    c->silent = 0;
    c->rl.c2u.hold = 0;
    if (c->hlen > 0) {
        /* After the header sent upstream if that is still queued. */
        if ((buf = relay_queue_buf(&c->rl)) == NULL) {
            fail(c, ENOMEM);
            return -1;
        }
        memcpy(buf + c->rl.c2u.off + c->rl.c2u.len, c->hbuf, c->hlen);
        c->rl.c2u.len += c->hlen;
        c->rl.c2u.bytes += c->hlen;
        route_count(c->r, c->w->id, STAT_BYTES_IN, c->hlen);
        c->hlen = 0;
    }
    return 1;
}

static void relay_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct conn *c = arg;
    int rc;

    (void)l;
    if (c->silent && fd == c->rl.cfd && (events & (LOOP_READ | LOOP_ERROR))) {
        rc = late_check(c);
        if (rc < 0)
            return;
        if (rc == 0) {
            /* Undecided: the client is not read further now; the upstream
             * may still be written to it. */
            events &= LOOP_WRITE;
            if (events == 0)
                return;
        }
    }
    rc = relay_event(&c->rl, fd, events);
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
    struct pp_header hdr;
    struct route_hdr h = {.src = &c->client.sa, .dst = &c->dst.sa, .socktype = SOCK_STREAM};
    uint32_t early = c->hlen - c->hoff;
    uint8_t *buf;
    ssize_t n;
    int rc;

    loop_timer_cancel(c->w->loop, &c->timer);
    /* The accepted header is parsed again rather than kept (256 bytes per
     * connection while connecting): the same bytes give the same result. */
    if (c->has_hdr) {
        if (pp_parse(c->hbuf, c->hoff, &hdr, NULL) != (ssize_t)c->hoff) {
            fail(c, EPROTO);
            return;
        }
        h.accepted = &hdr;
        if (hdr.socktype != 0)
            h.socktype = hdr.socktype;
    }
    if (c->r->cfg->send_proxy != SEND_PROXY_OFF || early > 0) {
        if ((buf = relay_queue_buf(&c->rl)) == NULL) {
            fail(c, ENOMEM);
            return;
        }
        n = route_header(c->r, &h, buf, RELAY_BUF_SIZE - HEADER_MAX);
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
    hbuf_reset(c); /* the inline buffer serves late_check */
    c->state = CONN_RELAY;
    loop_timer_set(c->w->loop, &c->timer, c->r->cfg->idle_timeout_ms, idle_cb, c);
    rc = relay_start(&c->rl, relay_cb, c, c->r->cfg->accept_proxy != ACCEPT_PROXY_OFF);
    if (rc != 0)
        fail(c, -rc);
}

/* ---- connecting upstream ------------------------------------------------- */

static void connect_to(struct conn *c, int i);

/* After a failed connect, with next-upstream=on: the client goes on to
 * another upstream when one is live (nginx's proxy_next_upstream; HAProxy's
 * redispatch), each tried at most once: the one that failed is paused now (balance_result),
 * so a pick that is live is one not tried yet, unless its pause ran out
 * meanwhile, which the count of upstreams bounds. Nothing was sent upstream
 * yet, so the client's bytes (its header included) wait for the next one. */
static int connect_retry(struct conn *c)
{
    uint64_t now = loop_now(c->w->loop);
    int i;

    if (!c->r->cfg->next_upstream || (size_t)c->retries + 1 >= c->r->cfg->nup ||
        c->retries == UINT8_MAX)
        return 0;
    i = balance_pick(c->r, (const struct sockaddr *)&c->client, now);
    if (i < 0 || !balance_live(c->r, (size_t)i, now))
        return 0;
    loop_timer_cancel(c->w->loop, &c->timer);
    atomic_fetch_sub_explicit(&c->r->ups[c->up - c->r->cfg->up].conns, 1, memory_order_relaxed);
    c->up = NULL;
    close_fd(c, &c->rl.ufd);
    c->retries++;
    connect_to(c, i);
    return 1;
}

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
    if (connect_retry(c))
        return;
    conn_close(c, error ? error : strerror(err));
}

static void connect_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct conn *c = arg;
    int err = 0;

    /* Writable without EPOLLERR/EPOLLHUP: the handshake is done (tcp_poll
     * reports no EPOLLOUT while in SYN_SENT, and a failed connect raises
     * EPOLLERR with its error in SO_ERROR). Only a failure is read there. */
    if (!(events & LOOP_WRITE) || (events & LOOP_ERROR)) {
        err = loop_connect_error(l, fd);
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

/* The upstream socket (transparent.c); with transparent=on bound to the
 * real client, or ppfwd's own address after a header without addresses
 * (LOCAL, UNSPEC). */
static int upstream_socket(struct conn *c, int family)
{
    return transparent_open(SOCK_STREAM, family, c->r->cfg->transparent,
                            c->hdr_anon ? NULL : &c->client.sa);
}

static void connect_upstream(struct conn *c)
{
    int i = balance_pick(c->r, (const struct sockaddr *)&c->client, loop_now(c->w->loop));

    if (i < 0) {
        refuse_with(c, STAT_REFUSED, "conn_refused", "no live upstream");
        return;
    }
    connect_to(c, i);
}

/* Connects to upstream i of the route. */
static void connect_to(struct conn *c, int i)
{
    const struct route_cfg *rc = c->r->cfg;
    const struct sockaddr *sa;
    int err;

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
    /* Proxied protocols are often request/response: never hold a small
     * write back waiting for an ACK. (Accepted sockets inherit it from the
     * listener, listen_open.) Through the ring where it can. */
    loop_tcp_nodelay(c->w->loop, c->rl.ufd);
    /* Not the upstream's fault: no timeout, no mark against it. */
    if ((err = loop_set(c->w->loop, c->rl.ufd, LOOP_WRITE, connect_cb, c)) != 0) {
        fail(c, -err);
        return;
    }
    /* Through the ring on io_uring (connect_cb hears of the end), connect()
     * on epoll. */
    err = loop_connect(c->w->loop, c->rl.ufd, sa, c->up->addrlen);
    if (err == 0) {
        connect_done(c, 0, NULL);
        return;
    }
    /* Failed at once (ENETUNREACH, EADDRNOTAVAIL...). */
    if (err != -EINPROGRESS) {
        connect_done(c, -err, NULL);
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
static void header_done(struct conn *c, size_t consumed, const struct pp_header *hdr)
{
    const struct sockaddr *src, *dst;

    loop_timer_cancel(c->w->loop, &c->timer);
    c->hoff = (uint32_t)consumed;
    if (hdr != NULL) {
        c->hdr_anon = hdr->command == PP2_CMD_LOCAL || hdr->src.sa.sa_family == AF_UNSPEC;
        route_relayed(hdr, &c->peer.sa, &c->local.sa, &src, &dst);
        /* Only IPv4/IPv6 addresses are relayed: they fit a conn_addr. */
        if (src != &c->peer.sa) {
            memcpy(&c->client, src, sizeof(c->client));
            memcpy(&c->dst, dst, sizeof(c->dst));
        }
    }
    client_known(c);
}

/* The length a v2 header whose 16 fixed bytes are in hbuf declares. */
static size_t v2_declared(const struct conn *c)
{
    return PP_V2_HDR_LEN + ((size_t)c->hbuf[14] << 8 | c->hbuf[15]);
}

/* Decides on the bytes read so far; 0 while more are needed. */
static int header_decide(struct conn *c)
{
    struct pp_header hdr;
    ssize_t n = pp_parse(c->hbuf, c->hlen, &hdr, NULL);
    enum admit a = route_admit_header(c->r, n, c->trusted, 0);

    switch (a) {
    case ADMIT_MORE:
        /* A v2 header declares its length in its 16 fixed bytes (which
         * pp_parse checked, the cap included): the buffer grows to it
         * once, rather than holding HEADER_MAX for every connection. */
        if (c->hlen >= PP_V2_HDR_LEN && c->hbuf[0] == '\r' && v2_declared(c) > c->hcap &&
            hbuf_grow(c, v2_declared(c)) != 0) {
            fail(c, ENOMEM);
            return 1;
        }
        if (c->hlen == HEADER_MAX) {
            refuse(c, ADMIT_BAD_HEADER, -PP_ETOOLONG);
            return 1;
        }
        return 0;
    case ADMIT_DIRECT:
        header_done(c, 0, NULL); /* a direct client: all of it is data */
        return 1;
    case ADMIT_OK:
        c->has_hdr = 1;
        route_count(c->r, c->w->id, STAT_HDR_OK, 1);
        header_done(c, (size_t)n, &hdr);
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
    n = hbuf_read(c, fd);
    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n == 0 && c->r->cfg->accept_proxy == ACCEPT_PROXY_OPTIONAL) {
        /* What came can no longer become a header: a direct client's data,
         * to relay before its EOF. */
        header_done(c, 0, NULL);
        return;
    }
    if (n <= 0) {
        conn_close(c, n == 0 ? "client closed before the header" : strerror(errno));
        return;
    }
    header_decide(c);
}

static void header_timeout_cb(struct loop *l, struct timer *t, void *arg)
{
    struct conn *c = arg;

    (void)l, (void)t;
    /* optional: a silent client is a direct one (server-speaks-first). */
    if (c->r->cfg->accept_proxy == ACCEPT_PROXY_OPTIONAL && c->hlen == 0) {
        c->silent = 1;
        c->rl.c2u.hold = 1; /* its first bytes go to late_check */
        header_done(c, 0, NULL);
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
    c->state = CONN_HEADER;
    if ((err = loop_add(c->w->loop, c->rl.cfd, LOOP_READ, header_cb, c)) != 0) {
        fail(c, -err);
        return;
    }
    loop_timer_set(c->w->loop, &c->timer, rc->header_timeout_ms, header_timeout_cb, c);
}

/* ---- accepting ------------------------------------------------------------ */

/* A refusal before the connection has a struct conn (max-conns, memory).
 * The client is the peer unless a PROXY header could name another, which
 * was not read: then it is unknown and left out. */
static void refuse_early(struct worker *w, struct route *r, int fd, const struct sockaddr *peer,
                         const char *reason)
{
    const struct sockaddr *client = NULL;

    if (r->cfg->accept_proxy == ACCEPT_PROXY_OFF)
        client = peer;
    route_count(r, w->id, STAT_REFUSED, 1);
    log_event(LOG_WARN, "conn_refused", r->cfg->name, "reason", LOG_STR, reason, "peer", LOG_ADDR,
              peer, "client", LOG_ADDR, client, LOG_END);
    close(fd);
}

/* The address a connection was accepted on, for send-proxy: the listener's
 * own when it is bound to one address (no getsockname, a syscall per
 * connection), else asked. AF_UNSPEC when it cannot be had. */
static void local_addr(struct conn *c, const struct route_cfg *rc, int fd)
{
    const struct sockaddr_in *b4 = (const struct sockaddr_in *)&rc->bind;
    const struct sockaddr_in6 *b6 = (const struct sockaddr_in6 *)&rc->bind;
    socklen_t len = sizeof(c->local);

    if (rc->bind.ss_family == AF_INET && b4->sin_addr.s_addr != htonl(INADDR_ANY) &&
        b4->sin_port != 0)
        c->local.sin = *b4;
    else if (rc->bind.ss_family == AF_INET6 && !IN6_IS_ADDR_UNSPECIFIED(&b6->sin6_addr) &&
             b6->sin6_port != 0)
        c->local.sin6 = *b6;
    else if (getsockname(fd, &c->local.sa, &len) == -1)
        c->local.sa.sa_family = AF_UNSPEC;
}

/* conn_open (debug): the peer, the address it connected to, and the client
 * when it is known at accept (no PROXY header to wait for). */
static void log_open(struct conn *c, int fd)
{
    union conn_addr local = c->local;
    socklen_t len = sizeof(local);

    /* A TCP socket's address (IPv4 or IPv6) fits. */
    if (local.sa.sa_family == AF_UNSPEC && getsockname(fd, &local.sa, &len) == -1)
        local.sa.sa_family = AF_UNSPEC;
    log_event(LOG_DEBUG, "conn_open", c->r->cfg->name, "client", LOG_ADDR,
              c->r->cfg->accept_proxy == ACCEPT_PROXY_OFF ? &c->client.sa : NULL, "peer", LOG_ADDR,
              &c->peer.sa, "local", LOG_ADDR, local.sa.sa_family != AF_UNSPEC ? &local.sa : NULL,
              LOG_END);
}

void conn_start(struct worker *w, struct route *r, int fd, const struct sockaddr *peer,
                socklen_t peerlen)
{
    struct conn *c;

    if (route_enter(r) != ADMIT_OK) {
        refuse_early(w, r, fd, peer, route_admit_reason(ADMIT_FULL, 0));
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        route_leave(r);
        refuse_early(w, r, fd, peer, strerror(ENOMEM));
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
    hbuf_reset(c);
    w->nconns++;
    /* A TCP peer is IPv4 or IPv6: it fits. */
    memcpy(&c->peer, peer, peerlen < sizeof(c->peer) ? peerlen : sizeof(c->peer));
    /* The local address is only sent on (send-proxy). */
    if (r->cfg->send_proxy == SEND_PROXY_OFF)
        c->local.sa.sa_family = AF_UNSPEC;
    else
        local_addr(c, r->cfg, fd);
    c->client = c->peer;
    c->dst = c->local;
    if (log_enabled(LOG_DEBUG))
        log_open(c, fd);
    /* TCP_NODELAY came from the listener (listen_open). */
    if (r->cfg->accept_proxy == ACCEPT_PROXY_OFF)
        client_known(c);
    else
        start_header(c);
}
