/*
 * listen.c - TCP listeners and accepting (listen_*).
 *
 * Every worker binds its own socket to each route's address with
 * SO_REUSEPORT, so the kernel spreads new connections over the workers and
 * no accept lock is shared.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "util/addr.h"
#include "util/log.h"
#include "engine/conn.h"
#include "engine/listen.h"
#include "engine/route.h"
#include "engine/udp.h"
#include "engine/worker.h"

#define LISTEN_BACKLOG 4096

static int set_opt(int fd, int level, int name, int val)
{
    return setsockopt(fd, level, name, &val, sizeof(val));
}

int listen_open(const struct route_cfg *rc, int *fd_out, char *err, size_t errlen)
{
    const struct sockaddr *sa = (const struct sockaddr *)&rc->bind;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const char *what = "socket";

    if (fd == -1)
        goto fail;
    what = "setsockopt";
    if (set_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) == -1 ||
        set_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1) == -1)
        goto fail;
    /* Proxied protocols are often request/response: never hold a small
     * write back waiting for an ACK. Linux copies TCP_NODELAY from the
     * listener to every socket it accepts (the child is a clone of it), so
     * one setsockopt here spares one per connection; a failure is ignored,
     * as it was per connection. */
    (void)set_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    /* "tcp://:PORT" means every address, IPv4 included, on one socket. */
    if (sa->sa_family == AF_INET6 &&
        set_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, rc->family == AF_INET6) == -1)
        goto fail;
    what = "bind";
    if (bind(fd, sa, rc->bindlen) == -1)
        goto fail;
    what = "listen";
    if (listen(fd, LISTEN_BACKLOG) == -1)
        goto fail;
    *fd_out = fd;
    return 0;
fail:
    snprintf(err, errlen, "%s: %s", what, strerror(errno));
    if (fd != -1)
        close(fd);
    return -1;
}

/*
 * SO_REUSEPORT lets any socket of the same user with that option share the
 * port, so another running ppfwd would silently split our traffic. A probe
 * bound without it fails with EADDRINUSE if anything holds the address:
 * done once, before the workers bind.
 */
int listen_probe(const struct route_cfg *rc)
{
    const struct sockaddr *sa = (const struct sockaddr *)&rc->bind;
    int type = rc->proto == ROUTE_TCP ? SOCK_STREAM : SOCK_DGRAM;
    int fd = socket(sa->sa_family, type | SOCK_CLOEXEC, 0), ret = 0;

    if (fd == -1)
        return 0; /* listen_open reports it */
    if (type == SOCK_STREAM)
        set_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (sa->sa_family == AF_INET6)
        set_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, rc->family == AF_INET6);
    if (bind(fd, sa, rc->bindlen) == -1 && errno == EADDRINUSE) {
        log_event(LOG_ERROR, "listen_error", rc->name, "listen", LOG_STR, rc->listen, "error",
                  LOG_STR, strerror(EADDRINUSE), LOG_END);
        ret = -1;
    }
    close(fd);
    return ret;
}

int listen_accept_failed(int err, const char *route)
{
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        log_event(LOG_ERROR, "accept_error", NULL, "error", LOG_STR, strerror(err), "pause_ms",
                  LOG_UINT, (uint64_t)ACCEPT_PAUSE_MS, LOG_END);
        return 1;
    }
    if (err != EAGAIN && err != EINTR && err != ECONNABORTED)
        log_event(LOG_WARN, "accept_error", route, "error", LOG_STR, strerror(err), LOG_END);
    return 0;
}

static void accept_resume(struct loop *l, struct timer *t, void *arg);

/* Out of file descriptors or memory: stop accepting for a moment instead
 * of spinning on a listener that stays readable, and keep serving what is
 * open. */
static void accept_pause(struct worker *w)
{
    for (size_t i = 0; i < w->nls; i++)
        if (w->ls[i] != NULL && w->ls[i]->r->cfg->proto == ROUTE_TCP)
            loop_accept_stop(w->loop, w->ls[i]->fd, 0);
    loop_timer_set(w->loop, &w->accept_pause, ACCEPT_PAUSE_MS, accept_resume, w);
}

/* The loop accepted a connection (accept4 in batches on epoll, the ring's
 * accepts on io_uring), or failed to. */
static void accepted(struct loop *l, int lfd, int cfd, const struct sockaddr *peer, socklen_t plen,
                     void *arg)
{
    struct listener *ls = arg;

    (void)l, (void)lfd;
    if (cfd < 0) {
        if (listen_accept_failed(-cfd, ls->r->cfg->name))
            accept_pause(ls->w);
        return;
    }
    conn_start(ls->w, ls->r, cfd, peer, plen);
}

static void accept_resume(struct loop *l, struct timer *t, void *arg)
{
    struct worker *w = arg;
    int failed = 0;

    if (w->draining)
        return;
    for (size_t i = 0; i < w->nls; i++) {
        int rc;

        if (w->ls[i] == NULL || w->ls[i]->r->cfg->proto != ROUTE_TCP)
            continue;
        if ((rc = loop_accept(l, w->ls[i]->fd, accepted, w->ls[i])) != 0 && rc != -EEXIST) {
            log_event(LOG_ERROR, "accept_error", w->ls[i]->r->cfg->name, "step", LOG_STR,
                      "epoll", "error", LOG_STR, strerror(-rc), "pause_ms", LOG_UINT,
                      (uint64_t)ACCEPT_PAUSE_MS, LOG_END);
            failed = 1;
        }
    }
    /* A listener not watched again would never accept: try once more. */
    if (failed)
        loop_timer_set(l, t, ACCEPT_PAUSE_MS, accept_resume, w);
}

struct listener *listen_route(struct worker *w, struct route *r)
{
    struct listener *ls = calloc(1, sizeof(*ls));
    char err[128];
    int rc;

    if (ls == NULL) {
        log_event(LOG_ERROR, "listen_error", r->cfg->name, "error", LOG_STR, strerror(ENOMEM),
                  LOG_END);
        return NULL;
    }
    ls->w = w;
    ls->r = route_ref(r);
    ls->fd = -1;
    if (r->cfg->proto == ROUTE_UDP) {
        if (udp_listen(w, ls) == 0)
            return ls;
        goto fail;
    }
    if (listen_open(r->cfg, &ls->fd, err, sizeof(err)) != 0) {
        log_event(LOG_ERROR, "listen_error", r->cfg->name, "listen", LOG_STR, r->cfg->listen,
                  "error", LOG_STR, err, LOG_END);
        goto fail;
    }
    if ((rc = loop_accept(w->loop, ls->fd, accepted, ls)) != 0) {
        log_event(LOG_ERROR, "listen_error", r->cfg->name, "listen", LOG_STR, r->cfg->listen,
                  "step", LOG_STR, "epoll", "error", LOG_STR, strerror(-rc), LOG_END);
        close(ls->fd);
        goto fail;
    }
    return ls;
fail:
    route_unref(r);
    free(ls);
    return NULL;
}

/* New connections go elsewhere, open ones carry on. */
void listen_close(struct worker *w, struct listener *ls)
{
    if (ls == NULL)
        return;
    if (ls->r->cfg->proto == ROUTE_UDP) {
        if (w->draining && udp_drain(w, ls))
            return; /* udp_listen.c frees it once its sessions are done */
        udp_stop(w, ls);
    } else if (ls->fd != -1) {
        /* Closing a listener resets what waits in its backlog: take those
         * connections first (a reload must not drop any), paused
         * (accept_pause) or not: a paused one is not accepting, and
         * loop_accept_stop drains only a listener that is. */
        if (!w->draining)
            (void)loop_accept(w->loop, ls->fd, accepted, ls);
        loop_accept_stop(w->loop, ls->fd, !w->draining);
        close(ls->fd);
    }
    route_unref(ls->r);
    free(ls);
}

void listen_stop(struct worker *w)
{
    for (size_t i = 0; i < w->nls; i++) {
        listen_close(w, w->ls[i]);
        w->ls[i] = NULL;
    }
    loop_timer_cancel(w->loop, &w->accept_pause);
}
