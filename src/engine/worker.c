/*
 * worker.c - a worker thread (worker_*): its loop, its listeners for the
 * current route set, the health checks (worker 0) and the graceful stop.
 *
 * Each worker applies a new route set in its own thread (WAKE_SYNC from the
 * main thread after a reload): kept routes keep their listener, new ones
 * open, removed ones close, their connections draining on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "engine/conn.h"
#include "engine/health.h"
#include "engine/listen.h"
#include "engine/route.h"
#include "engine/server.h"
#include "engine/udp.h"
#include "engine/worker.h"

/* 1 if both are TCP routes listening on the same address. */
static int same_listen(const struct route_cfg *a, const struct route_cfg *b)
{
    return a->proto == ROUTE_TCP && b->proto == ROUTE_TCP && a->bindlen == b->bindlen &&
           memcmp(&a->bind, &b->bind, a->bindlen) == 0;
}

/*
 * Makes w's listeners (and, in worker 0, the health checks) match the
 * current route set: kept routes keep theirs, new ones open, removed ones
 * close. Called with srv->lock held, so every route of the set is alive.
 * Returns 0, or -1 if a listener could not open (fatal at start, logged
 * and skipped on reload).
 */
static int worker_sync(struct worker *w)
{
    struct server *srv = w->srv;
    struct listener **nls = calloc(srv->nroutes ? srv->nroutes : 1, sizeof(*nls));
    int rc = 0;

    if (nls == NULL) {
        log_event(LOG_ERROR, "reload_error", NULL, "error", LOG_STR, strerror(ENOMEM), LOG_END);
        return -1;
    }
    for (size_t i = 0; i < srv->nroutes; i++) {
        struct route *r = srv->routes[i];
        for (size_t j = 0; j < w->nls && nls[i] == NULL; j++) {
            if (w->ls[j] != NULL && w->ls[j]->r == r) {
                nls[i] = w->ls[j];
                w->ls[j] = NULL;
            }
        }
        if (nls[i] == NULL && (nls[i] = listen_route(w, r)) == NULL) {
            rc = -1;
            /* A changed TCP route whose new socket cannot open (out of
             * fds, say): the listener of the route it replaces, on the
             * same address, serves on with its former config until a
             * later reload opens one, rather than the port refusing. */
            for (size_t j = 0; j < w->nls && nls[i] == NULL; j++) {
                if (w->ls[j] != NULL && same_listen(w->ls[j]->r->cfg, r->cfg)) {
                    nls[i] = w->ls[j];
                    w->ls[j] = NULL;
                }
            }
        }
    }
    if (w->id == 0 && health_sync(w, srv->routes, srv->nroutes) != 0)
        rc = -1;
    /* Each out of w->ls once closed: a drain that runs out of fds pauses
     * accepting on w->ls (accept_pause), the rest of which is closed next. */
    for (size_t j = 0; j < w->nls; j++) {
        listen_close(w, w->ls[j]);
        w->ls[j] = NULL;
    }
    free(w->ls);
    w->ls = nls;
    w->nls = srv->nroutes;
    return rc;
}

void worker_drained(struct worker *w)
{
    if (w->draining && w->nconns == 0 && w->nudp_drain == 0)
        loop_stop(w->loop);
}

static void drain_end(struct loop *l, struct timer *t, void *arg)
{
    (void)t;
    conn_close_all(arg, "drain timeout");
    udp_drain_end(arg);
    loop_stop(l);
}

static void drain_start(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = 1;
    health_stop_all(w);
    listen_stop(w);
    if (w->nconns == 0 && w->nudp_drain == 0) {
        loop_stop(w->loop);
        return;
    }
    loop_timer_set(w->loop, &w->drain_timer, w->srv->drain_ms, drain_end, w);
}

/* In the worker's thread, after loop_wake() from the main thread. */
static void worker_wake(struct loop *l, void *arg)
{
    struct worker *w = arg;
    int req = atomic_exchange(&w->wake, 0);

    (void)l;
    if ((req & WAKE_SYNC) && !w->draining) {
        pthread_mutex_lock(&w->srv->lock);
        worker_sync(w);
        pthread_mutex_unlock(&w->srv->lock);
        atomic_fetch_add(&w->synced, 1);
    }
    if (req & WAKE_DRAIN)
        drain_start(w);
}

void *worker_main(void *arg)
{
    struct worker *w = arg;
    int rc = loop_run(w->loop);

    if (rc != 0)
        log_event(LOG_ERROR, "worker_error", NULL, "worker", LOG_UINT, (uint64_t)w->id, "error",
                  LOG_STR, strerror(-rc), LOG_END);
    return NULL;
}

int worker_init(struct server *srv, struct worker *w, int id, int max_fds)
{
    int rc;

    w->id = id;
    w->srv = srv;
    w->loop = loop_new(max_fds);
    if (w->loop == NULL || relay_pool_init(&w->pool) != 0) {
        log_event(LOG_ERROR, "start_error", NULL, "error", LOG_STR,
                  strerror(w->loop == NULL ? errno : ENOMEM), LOG_END);
        return -1;
    }
    loop_on_wake(w->loop, worker_wake, w);
    log_event(LOG_DEBUG, "worker_loop", NULL, "worker", LOG_UINT, (uint64_t)id, "backend", LOG_STR,
              loop_backend(w->loop), LOG_END);
    pthread_mutex_lock(&srv->lock);
    rc = worker_sync(w);
    pthread_mutex_unlock(&srv->lock);
    return rc;
}

void worker_free(struct worker *w)
{
    if (w->loop != NULL) {
        health_stop_all(w);
        listen_stop(w);
        udp_drain_end(w);
        /* Left only if the loop failed: closed so their routes go too. */
        conn_close_all(w, "stopped");
    }
    free(w->ls);
    w->ls = NULL;
    if (w->loop != NULL)
        loop_free(w->loop); /* runs the deferred frees, which use the pool */
    relay_pool_free(&w->pool);
}
