/*
 * server.c - running the routes: worker threads, each with its own loop and
 * listeners; signals in the main thread; reload and graceful stop
 * (server_*).
 *
 * SIGHUP (with -c FILE): the file is loaded and checked first; a config
 * with problems is refused, its problems logged, and the running one kept.
 * Otherwise routes configured exactly as before keep their route object,
 * hence their listeners, connections and UDP sessions; removed routes stop
 * listening and their connections drain; added routes start. Each worker
 * applies the new route set in its own thread (WAKE_SYNC).
 *
 * SIGTERM/SIGINT: every worker closes its listeners and lets its
 * connections finish for up to the drain timeout, then the process exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

#include "util/log.h"
#include "engine/notify.h"
#include "engine/proxy.h"
#include "engine/udp.h"
#include "engine/watch.h"

#define DRAIN_MS_DEFAULT 10000

/* Each proxied connection holds two descriptors: use all the process may. */
static int raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur > (1 << 24) ? 1 << 24 : (int)rl.rlim_cur;
}

/* ---- routes ----------------------------------------------------------------- */

static void route_free(struct route *r);

/* A UDP route's sockets are all opened here, in one go: see udp_open_group. */
static struct route *route_new(const struct route_cfg *rc, int nworkers)
{
    struct route *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->cfg = rc;
    r->ups = calloc(rc->nup, sizeof(*r->ups));
    r->stats = calloc((size_t)nworkers, sizeof(*r->stats));
    if (rc->proto == ROUTE_UDP && (r->udp_fds = calloc((size_t)nworkers, sizeof(int))) != NULL) {
        r->nudp_fds = nworkers;
        for (int i = 0; i < nworkers; i++)
            r->udp_fds[i] = -1;
    }
    if (r->ups == NULL || r->stats == NULL || (rc->proto == ROUTE_UDP && r->udp_fds == NULL)) {
        route_free(r);
        return NULL;
    }
    if (r->udp_fds != NULL && udp_open_group(rc, nworkers, r->udp_fds) != 0) {
        free(r->udp_fds);
        r->udp_fds = NULL;
        route_free(r);
        return NULL;
    }
    for (size_t j = 0; j < rc->nup; j++)
        atomic_init(&r->ups[j].checked_up, 1);
    return r;
}

static void route_free(struct route *r)
{
    for (int i = 0; r->udp_fds != NULL && i < r->nudp_fds; i++) {
        if (r->udp_fds[i] != -1)
            close(r->udp_fds[i]);
    }
    free(r->udp_fds);
    free(r->ups);
    free(r->stats);
    free(r);
}

static struct route *find_equal(struct route **v, size_t n, const struct route_cfg *rc)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i] != NULL && cfg_route_equal(v[i]->cfg, rc))
            return v[i];
    }
    return NULL;
}

/* 1 if one of routes listens on rc's address: a reload moving a route
 * between configs must not take our own socket for a foreign one. */
static int ours(struct route **v, size_t n, const struct route_cfg *rc)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i]->cfg->proto == rc->proto && v[i]->cfg->bindlen == rc->bindlen &&
            memcmp(&v[i]->cfg->bind, &rc->bind, rc->bindlen) == 0)
            return 1;
    }
    return 0;
}

static void log_route(const struct route *r, const char *event)
{
    const struct route_cfg *rc = r->cfg;

    log_event(LOG_INFO, event, rc->name, "listen", LOG_STR, rc->listen, "upstream", LOG_STR,
              rc->up[0].name, "upstreams", LOG_UINT, (uint64_t)rc->nup, LOG_END);
    if (!strcmp(event, "route_start") && rc->accept_proxy == ACCEPT_PROXY_OPTIONAL && rc->trusted_all)
        log_event(LOG_WARN, "config_warning", rc->name, "key", LOG_STR, "accept-proxy", "warning",
                  LOG_STR, "optional without trusted: any client may claim any address", LOG_END);
}

/* ---- workers ---------------------------------------------------------------- */

/*
 * Makes w's listeners (and, in worker 0, the health checks) match the
 * current route set: kept routes keep theirs, new ones open, removed ones
 * close. Called with srv->lock held. Returns 0, or -1 if a listener could
 * not open (fatal at start, logged and skipped on reload).
 */
static int worker_sync(struct worker *w)
{
    struct server *srv = w->srv;
    struct listener **nls = calloc(srv->nroutes ? srv->nroutes : 1, sizeof(*nls));
    int rc = 0;

    if (nls == NULL)
        return -1;
    for (size_t i = 0; i < srv->nroutes; i++) {
        struct route *r = srv->routes[i];
        for (size_t j = 0; j < w->nls && nls[i] == NULL; j++) {
            if (w->ls[j] != NULL && w->ls[j]->r == r) {
                nls[i] = w->ls[j];
                w->ls[j] = NULL;
            }
        }
        if (nls[i] == NULL && (nls[i] = listen_route(w, r)) == NULL)
            rc = -1;
        if (w->id == 0 && health_start(w, r) != 0)
            rc = -1;
    }
    for (size_t j = 0; j < w->nls; j++) {
        if (w->ls[j] == NULL)
            continue;
        if (w->id == 0)
            health_stop(w, w->ls[j]->r);
        listen_close(w, w->ls[j]);
    }
    free(w->ls);
    w->ls = nls;
    w->nls = srv->nroutes;
    return rc;
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
    if (w->id == 0) {
        for (size_t i = 0; i < w->nls; i++) {
            if (w->ls[i] != NULL)
                health_stop(w, w->ls[i]->r);
        }
    }
    listen_stop(w);
    if (w->nconns == 0) {
        loop_stop(w->loop);
        return;
    }
    loop_timer_set(w->loop, &w->accept_pause, w->srv->drain_ms, drain_end, w);
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
    }
    if (req & WAKE_DRAIN)
        drain_start(w);
}

static void wake_all(struct server *srv, int nthreads, int req)
{
    for (int i = 0; i < nthreads; i++) {
        atomic_fetch_or(&srv->workers[i].wake, req);
        loop_wake(srv->workers[i].loop);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    loop_run(w->loop);
    return NULL;
}

static int worker_init(struct server *srv, struct worker *w, int id, int max_fds)
{
    w->id = id;
    w->srv = srv;
    w->loop = loop_new(max_fds);
    w->buf_free = calloc(BUF_CACHE, sizeof(void *));
    w->pipe_free = calloc(PIPE_CACHE, sizeof(*w->pipe_free));
    if (w->loop == NULL || w->buf_free == NULL || w->pipe_free == NULL) {
        log_event(LOG_ERROR, "start_error", NULL, "error", LOG_STR, strerror(ENOMEM), LOG_END);
        return -1;
    }
    loop_on_wake(w->loop, worker_wake, w);
    return worker_sync(w);
}

static void worker_free(struct worker *w)
{
    if (w->loop != NULL) {
        if (w->id == 0) {
            for (size_t i = 0; i < w->nls; i++) {
                if (w->ls[i] != NULL)
                    health_stop(w, w->ls[i]->r);
            }
        }
        listen_stop(w);
        udp_drain_end(w);
    }
    relay_buf_drain(w);
    free(w->buf_free);
    free(w->pipe_free);
    free(w->ls);
    if (w->loop != NULL)
        loop_free(w->loop);
}

/* ---- reload ----------------------------------------------------------------- */

/* Builds the route set of nc, reusing running routes configured the same.
 * Returns the number of routes added, or -1 (logged) if one cannot listen. */
static int reload_routes(struct server *srv, struct cfg *nc, struct route **v)
{
    int added = 0;

    for (size_t i = 0; i < nc->nroutes; i++) {
        const struct route_cfg *rc = &nc->routes[i];
        v[i] = find_equal(srv->routes, srv->nroutes, rc);
        if (v[i] != NULL)
            continue;
        if (!ours(srv->routes, srv->nroutes, rc) && listen_probe(rc) != 0)
            return -1;
        v[i] = route_new(rc, srv->nworkers);
        if (v[i] == NULL)
            return -1;
        added++;
    }
    return added;
}

/* Retires the running routes absent from v (n of them); they stay alive
 * for the connections that drain. Called with srv->lock held. */
static size_t retire_removed(struct server *srv, struct route **v, size_t n)
{
    size_t removed = 0;

    for (size_t i = 0; i < srv->nroutes; i++) {
        int kept = 0;
        for (size_t j = 0; j < n && !kept; j++)
            kept = v[j] == srv->routes[i];
        if (kept)
            continue;
        log_route(srv->routes[i], "route_stop");
        srv->retired[srv->nretired++] = srv->routes[i];
        removed++;
    }
    return removed;
}

static void reload_failed(struct cfg *nc, struct route **v, struct server *srv)
{
    for (size_t i = 0; v != NULL && i < nc->nroutes; i++) {
        if (v[i] != NULL && find_equal(srv->routes, srv->nroutes, v[i]->cfg) != v[i])
            route_free(v[i]);
    }
    free(v);
    cfg_free(nc);
    free(nc);
    log_event(LOG_ERROR, "reload_failed", NULL, "file", LOG_STR, srv->path, "kept", LOG_STR,
              "the running config", LOG_END);
}

static void reload(struct server *srv, int nthreads)
{
    struct cfg *nc = calloc(1, sizeof(*nc));
    struct cfg_errors errs = {0};
    struct route **v = NULL, **retired;
    struct cfg **cfgv;
    size_t removed;
    int added;

    if (srv->path == NULL || nc == NULL) {
        log_event(LOG_WARN, "reload_error", NULL, "error", LOG_STR,
                  nc ? "routes given as URLs: nothing to reload (use -c FILE)" : "out of memory",
                  LOG_END);
        free(nc);
        return;
    }
    if (cfg_load_file(nc, srv->path, &errs) != 0) {
        for (size_t i = 0; i < errs.n; i++)
            log_event(LOG_ERROR, "reload_error", NULL, "error", LOG_STR, errs.msg[i], LOG_END);
        cfg_errors_free(&errs);
        reload_failed(nc, NULL, srv);
        return;
    }
    v = calloc(nc->nroutes, sizeof(*v));
    retired = realloc(srv->retired, (srv->nretired + srv->nroutes) * sizeof(*retired));
    cfgv = realloc(srv->cfgs, (srv->ncfgs + 1) * sizeof(*cfgv));
    if (retired)
        srv->retired = retired;
    if (cfgv)
        srv->cfgs = cfgv;
    if (v == NULL || retired == NULL || cfgv == NULL || (added = reload_routes(srv, nc, v)) < 0) {
        reload_failed(nc, v, srv);
        return;
    }
    pthread_mutex_lock(&srv->lock);
    removed = retire_removed(srv, v, nc->nroutes);
    free(srv->routes);
    srv->routes = v;
    srv->nroutes = nc->nroutes;
    srv->cfgs[srv->ncfgs++] = nc;
    pthread_mutex_unlock(&srv->lock);
    for (size_t i = 0; i < nc->nroutes; i++) {
        if (v[i]->cfg == &nc->routes[i])
            log_route(v[i], "route_start");
    }
    wake_all(srv, nthreads, WAKE_SYNC);
    log_event(LOG_INFO, "reload", NULL, "file", LOG_STR, srv->path, "routes", LOG_UINT,
              (uint64_t)nc->nroutes, "added", LOG_UINT, (uint64_t)added, "removed", LOG_UINT,
              (uint64_t)removed, LOG_END);
}

/* ---- running ---------------------------------------------------------------- */

/* Signals go to the main thread only (the workers block them); returns
 * when SIGTERM or SIGINT arrives, reloading on each SIGHUP. */
static void wait_for_stop(struct server *srv, sigset_t *set, int nthreads)
{
    int sig;

    for (;;) {
        if (sigwait(set, &sig) != 0)
            return;
        if (sig == SIGTERM || sig == SIGINT) {
            notify_stopping();
            log_event(LOG_INFO, "stopping", NULL, "signal", LOG_STR,
                      sig == SIGTERM ? "SIGTERM" : "SIGINT", "drain_ms", LOG_UINT,
                      (uint64_t)srv->drain_ms, LOG_END);
            return;
        }
        notify_reloading();
        reload(srv, nthreads);
        notify_ready(srv);
    }
}

/* --watch: a change of the file reloads exactly as SIGHUP does (the main
 * thread's sigwait takes it). */
static void watch_reload(void *arg, const char *why)
{
    (void)arg;
    (void)why;
    kill(getpid(), SIGHUP);
}

/* Starts the threads; returns how many run. */
static int start_threads(struct server *srv)
{
    for (int i = 0; i < srv->nworkers; i++) {
        if (pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]) != 0) {
            log_event(LOG_ERROR, "start_error", NULL, "error", LOG_STR, "pthread_create failed",
                      LOG_END);
            return i;
        }
    }
    return srv->nworkers;
}

static int routes_init(struct server *srv, const struct cfg *cfg)
{
    srv->routes = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*srv->routes));
    if (srv->routes == NULL)
        return -1;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        if (listen_probe(&cfg->routes[i]) != 0)
            return -1;
        srv->routes[i] = route_new(&cfg->routes[i], srv->nworkers);
        if (srv->routes[i] == NULL)
            return -1;
        srv->nroutes++;
    }
    return 0;
}

static void server_free(struct server *srv)
{
    for (int i = 0; srv->workers != NULL && i < srv->nworkers; i++)
        worker_free(&srv->workers[i]);
    free(srv->workers);
    for (size_t i = 0; i < srv->nroutes; i++)
        route_free(srv->routes[i]);
    for (size_t i = 0; i < srv->nretired; i++)
        route_free(srv->retired[i]);
    for (size_t i = 0; i < srv->ncfgs; i++) {
        cfg_free(srv->cfgs[i]);
        free(srv->cfgs[i]);
    }
    free(srv->routes);
    free(srv->retired);
    free(srv->cfgs);
    pthread_mutex_destroy(&srv->lock);
}

int server_run(struct cfg *cfg, const char *path, const struct sockaddr_storage *metrics)
{
    struct server srv = {.path = path, .drain_ms = DRAIN_MS_DEFAULT};
    int max_fds = raise_fd_limit(), nthreads = 0, rc = -1;
    struct watch *wt = NULL;
    sigset_t set;

    pthread_mutex_init(&srv.lock, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv.nworkers = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (srv.nworkers < 1)
        srv.nworkers = 1;
    srv.workers = calloc((size_t)srv.nworkers, sizeof(*srv.workers));
    if (srv.workers == NULL || routes_init(&srv, cfg) != 0)
        goto out;
    if (metrics != NULL && metrics_start(&srv, metrics) != 0)
        goto out;
    for (int i = 0; i < srv.nworkers; i++) {
        if (worker_init(&srv, &srv.workers[i], i, max_fds) != 0)
            goto out;
    }
    if (cfg->watch && path != NULL && (wt = watch_start(path, watch_reload, &srv)) == NULL)
        goto out;
    nthreads = start_threads(&srv);
    if (nthreads == srv.nworkers) {
        for (size_t i = 0; i < srv.nroutes; i++)
            log_route(srv.routes[i], "route_start");
        notify_start(&srv);
        wait_for_stop(&srv, &set, nthreads);
        rc = 0;
    }
    wake_all(&srv, nthreads, WAKE_DRAIN);
    for (int i = 0; i < nthreads; i++)
        pthread_join(srv.workers[i].thread, NULL);
    if (rc == 0) {
        for (size_t i = 0; i < srv.nroutes; i++)
            log_route(srv.routes[i], "route_stop");
    }
out:
    watch_stop(wt);
    notify_stop();
    if (metrics != NULL)
        metrics_stop();
    server_free(&srv);
    return rc;
}
