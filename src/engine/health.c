/*
 * health.c - active health checks (health_*): with check=DURATION, every
 * upstream of the route gets a TCP connect that often; one that fails (or
 * does not connect within connect-timeout, capped at the interval) gets no
 * traffic until a later check succeeds. When the route sends PROXY headers,
 * the probe sends a LOCAL header (v1 "PROXY UNKNOWN") before closing, so a
 * PROXY-aware upstream sees a well-formed health check, as the spec asks.
 *
 * All checks run in worker 0's loop; their verdicts are atomics every
 * worker reads (struct upstream_state). Each route's checks hold a
 * reference to it until they stop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "util/log.h"
#include "engine/health.h"
#include "engine/route.h"
#include "engine/worker.h"

struct probe {
    struct route *r;
    struct loop *loop;
    int wid; /* the worker whose loop runs it (its stats slot) */
    size_t idx;
    int fd;
    struct timer tick;     /* next check */
    struct timer deadline; /* this check's connect deadline */
};

/* One route's checks, in a list per worker (w->health). */
struct health {
    struct health *next;
    struct route *r;
    struct probe *p;
    size_t n;
    int seen; /* health_sync: the route is in the current set */
};

static void probe_close(struct probe *p)
{
    if (p->fd == -1)
        return;
    loop_remove(p->loop, p->fd);
    close(p->fd);
    p->fd = -1;
}

/* Records the verdict; logs it when it changes. A failed check is a
 * failed connect, and counts in ppfwd_upstream_errors_total as any does
 * (INTERFACE.md: "every failed connect"): while an upstream is down its
 * errors grow by one per check, as HAProxy's chkfail does. */
static void probe_done(struct probe *p, int err)
{
    struct upstream_state *u = &p->r->ups[p->idx];
    int up = err == 0, was = atomic_exchange(&u->checked_up, up);

    loop_timer_cancel(p->loop, &p->deadline);
    probe_close(p);
    if (!up)
        route_count(p->r, p->wid, STAT_UPSTREAM_ERRORS, 1);
    if (was != up)
        log_event(up ? LOG_INFO : LOG_WARN, up ? "upstream_up" : "upstream_down", p->r->cfg->name,
                  "upstream", LOG_STR, p->r->cfg->up[p->idx].name, "error", LOG_STR,
                  up ? NULL : strerror(err), LOG_END);
}

/* Connected: a LOCAL header if the route speaks PROXY, then close. The
 * header is tiny and the socket fresh, so one send either takes it all or
 * the upstream is in no state to be called healthy anyway. */
static void send_local(struct probe *p)
{
    uint8_t buf[PP_V1_MAX_LEN];
    ssize_t n = 0;

    if (p->r->cfg->send_proxy == SEND_PROXY_V1)
        n = pp_build_v1(buf, sizeof(buf), NULL, NULL);
    else if (p->r->cfg->send_proxy == SEND_PROXY_V2)
        n = pp_build_v2(buf, sizeof(buf), PP2_CMD_LOCAL, SOCK_STREAM, NULL, NULL);
    if (n > 0)
        (void)!send(p->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void probe_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct probe *p = arg;
    int err = 0;
    socklen_t len = sizeof(err);

    (void)l, (void)events;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY)
        return;
    if (err == 0)
        send_local(p);
    probe_done(p, err);
}

static void deadline_cb(struct loop *l, struct timer *t, void *arg)
{
    (void)l, (void)t;
    probe_done(arg, ETIMEDOUT);
}

static void tick_cb(struct loop *l, struct timer *t, void *arg)
{
    struct probe *p = arg;
    const struct route_cfg *rc = p->r->cfg;
    const struct sockaddr *sa = (const struct sockaddr *)&rc->up[p->idx].addr;
    unsigned wait = rc->connect_timeout_ms < rc->check_ms ? rc->connect_timeout_ms : rc->check_ms;
    int err;

    loop_timer_set(l, t, rc->check_ms, tick_cb, p);
    if (p->fd != -1)
        return; /* the previous check is still within its deadline */
    p->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd == -1) {
        log_event(LOG_WARN, "check_error", rc->name, "error", LOG_STR, strerror(errno), LOG_END);
        return; /* out of fds: no verdict either way */
    }
    if (connect(p->fd, sa, rc->up[p->idx].addrlen) == 0) {
        probe_cb(l, p->fd, p, 0);
        return;
    }
    if (errno != EINPROGRESS) {
        probe_done(p, errno);
        return;
    }
    if ((err = loop_add(l, p->fd, LOOP_WRITE, probe_cb, p)) != 0) {
        /* Our failure, not the upstream's: no verdict either way. */
        log_event(LOG_WARN, "check_error", rc->name, "upstream", LOG_STR, rc->up[p->idx].name,
                  "error", LOG_STR, strerror(-err), LOG_END);
        close(p->fd);
        p->fd = -1;
        return;
    }
    loop_timer_set(l, &p->deadline, wait, deadline_cb, p);
}

/* Arms r's checks in w's loop. Returns 0 or -1 (out of memory, logged). */
static int health_start(struct worker *w, struct route *r)
{
    struct health *h = calloc(1, sizeof(*h));

    if (h == NULL || (h->p = calloc(r->cfg->nup, sizeof(*h->p))) == NULL) {
        free(h);
        log_event(LOG_ERROR, "check_error", r->cfg->name, "error", LOG_STR, strerror(ENOMEM),
                  LOG_END);
        return -1;
    }
    h->r = route_ref(r);
    h->n = r->cfg->nup;
    h->seen = 1;
    for (size_t j = 0; j < h->n; j++) {
        struct probe *p = &h->p[j];
        *p = (struct probe){.r = r, .loop = w->loop, .wid = w->id, .idx = j, .fd = -1};
        loop_timer_set(w->loop, &p->tick, 0, tick_cb, p);
    }
    h->next = w->health;
    w->health = h;
    return 0;
}

/* Stops h's checks (its upstreams keep their last verdict) and frees it. */
static void health_free(struct worker *w, struct health *h)
{
    for (size_t j = 0; j < h->n; j++) {
        loop_timer_cancel(w->loop, &h->p[j].tick);
        loop_timer_cancel(w->loop, &h->p[j].deadline);
        probe_close(&h->p[j]);
    }
    route_unref(h->r);
    free(h->p);
    free(h);
}

int health_sync(struct worker *w, struct route **routes, size_t n)
{
    struct health **pp;
    int rc = 0;

    for (struct health *h = w->health; h != NULL; h = h->next)
        h->seen = 0;
    for (size_t i = 0; i < n; i++) {
        const struct route_cfg *cfg = routes[i]->cfg;
        struct health *h = w->health;

        while (h != NULL && h->r != routes[i])
            h = h->next;
        if (h != NULL)
            h->seen = 1;
        else if (cfg->check_ms != 0 && cfg->proto == ROUTE_TCP && health_start(w, routes[i]) != 0)
            rc = -1;
    }
    for (pp = &w->health; *pp != NULL;) {
        struct health *h = *pp;

        if (h->seen) {
            pp = &h->next;
            continue;
        }
        *pp = h->next;
        health_free(w, h);
    }
    return rc;
}

void health_stop_all(struct worker *w)
{
    while (w->health != NULL) {
        struct health *h = w->health;

        w->health = h->next;
        health_free(w, h);
    }
}
