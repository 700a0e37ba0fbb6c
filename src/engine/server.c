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
#include "engine/control.h"
#include "engine/listen.h"
#include "engine/metrics.h"
#include "engine/notify.h"
#include "engine/route.h"
#include "engine/server.h"
#include "engine/transparent.h"
#include "engine/udp.h"
#include "engine/watch.h"
#include "engine/worker.h"

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

/* A route for rc, living in cs; a UDP route's sockets are all opened here,
 * in one go (see udp_open_group). Returns it with one reference, or NULL. */
static struct route *open_route(const struct route_cfg *rc, struct route_cfgs *cs, int nworkers)
{
    struct route *r = route_new(rc, cs, nworkers);

    char err[256];

    if (r == NULL) {
        log_event(LOG_ERROR, "listen_error", rc->name, "error", LOG_STR, strerror(ENOMEM), LOG_END);
        return NULL;
    }
    /* transparent=on: the capability is checked now, once, so that a route
     * that could never send from its clients' addresses does not start. */
    for (size_t i = 0; rc->transparent && i < rc->nup; i++) {
        if (transparent_check(rc->up[i].addr.ss_family, err, sizeof(err)) != 0) {
            log_event(LOG_ERROR, "route_error", rc->name, "key", LOG_STR, "transparent", "error",
                      LOG_STR, err, LOG_END);
            route_unref(r);
            return NULL;
        }
    }
    if (r->udp_fds != NULL && udp_open_group(rc, nworkers, r->udp_fds) != 0) {
        route_unref(r);
        return NULL;
    }
    return r;
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

static void wake_all(struct server *srv, int nthreads, int req)
{
    for (int i = 0; i < nthreads; i++) {
        atomic_fetch_or(&srv->workers[i].wake, req);
        loop_wake(srv->workers[i].loop);
    }
}

/* ---- reload ----------------------------------------------------------------- */

/* Builds the route set of nc (held by cs), reusing running routes
 * configured the same; v[i] each get a reference. Returns the number of
 * routes added, or -1 (logged) if one cannot listen. */
static int reload_routes(struct server *srv, struct route_cfgs *cs, struct route **v)
{
    const struct cfg *nc = cs->cfg;
    int added = 0;

    for (size_t i = 0; i < nc->nroutes; i++) {
        const struct route_cfg *rc = &nc->routes[i];
        v[i] = find_equal(srv->routes, srv->nroutes, rc);
        if (v[i] != NULL) {
            route_ref(v[i]);
            continue;
        }
        if (!ours(srv->routes, srv->nroutes, rc) && listen_probe(rc) != 0)
            return -1;
        v[i] = open_route(rc, cs, srv->nworkers);
        if (v[i] == NULL)
            return -1;
        added++;
    }
    return added;
}

/* Logs the running routes absent from v (n of them): they stop listening
 * and live on while their connections drain. */
static size_t log_removed(const struct server *srv, struct route **v, size_t n)
{
    size_t removed = 0;

    for (size_t i = 0; i < srv->nroutes; i++) {
        int kept = 0;
        for (size_t j = 0; j < n && !kept; j++)
            kept = v[j] == srv->routes[i];
        if (kept)
            continue;
        log_route(srv->routes[i], "route_stop");
        removed++;
    }
    return removed;
}

/* Drops the references of a route set (NULL entries skipped) and frees it. */
static void routes_release(struct route **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        route_unref(v[i]);
    free(v);
}

static void reload_failed(struct route_cfgs *cs, struct route **v, struct server *srv)
{
    routes_release(v, cs->cfg->nroutes);
    route_cfgs_unref(cs);
    log_event(LOG_ERROR, "reload_failed", NULL, "file", LOG_STR, srv->path, "kept", LOG_STR,
              "the running config", LOG_END);
}

void server_reload_discard(struct route_cfgs *cs)
{
    route_cfgs_unref(cs);
}

/* The slow half of a reload, on the control thread (control.c): loads path
 * into a config of its own (freed with its last route). Returns it with the
 * caller's reference, or NULL after logging. Touches no server state. */
struct route_cfgs *server_reload_load(const char *path)
{
    struct cfg *nc = calloc(1, sizeof(*nc));
    struct cfg_errors errs = {0};
    struct route_cfgs *cs;

    if (path == NULL || nc == NULL) {
        log_event(LOG_WARN, "reload_error", NULL, "error", LOG_STR,
                  nc ? "routes given as URLs: nothing to reload (use -c FILE)" : "out of memory",
                  LOG_END);
        free(nc);
        return NULL;
    }
    if (cfg_load_file(nc, path, &errs) != 0) {
        for (size_t i = 0; i < errs.n; i++)
            log_event(LOG_ERROR, "reload_error", NULL, "error", LOG_STR, errs.msg[i], LOG_END);
        cfg_errors_free(&errs);
    } else if ((cs = route_cfgs_new(nc, 1)) != NULL) {
        return cs;
    }
    cfg_free(nc);
    free(nc);
    log_event(LOG_ERROR, "reload_failed", NULL, "file", LOG_STR, path, "kept", LOG_STR,
              "the running config", LOG_END);
    return NULL;
}

/* The quick half, on the control thread while the server is not stopping;
 * takes the caller's reference on cs. */
void server_reload_apply(struct server *srv, struct route_cfgs *cs, const char *why)
{
    struct cfg *nc = cs->cfg;
    struct route **v, **old;
    size_t removed, nold;
    int added;

    v = calloc(nc->nroutes ? nc->nroutes : 1, sizeof(*v));
    if (v == NULL || (added = reload_routes(srv, cs, v)) < 0) {
        reload_failed(cs, v, srv);
        return;
    }
    pthread_mutex_lock(&srv->lock);
    removed = log_removed(srv, v, nc->nroutes);
    old = srv->routes;
    nold = srv->nroutes;
    srv->routes = v;
    srv->nroutes = nc->nroutes;
    pthread_mutex_unlock(&srv->lock);
    /* Out of the set, under the lock: the metrics thread no longer sees
     * them, so the set's references can go (the routes' users hold theirs). */
    routes_release(old, nold);
    for (size_t i = 0; i < nc->nroutes; i++) {
        if (v[i]->cfg == &nc->routes[i])
            log_route(v[i], "route_start");
    }
    wake_all(srv, srv->nworkers, WAKE_SYNC);
    log_event(LOG_INFO, "reload", NULL, "file", LOG_STR, srv->path, "trigger", LOG_STR, why,
              "routes", LOG_UINT, (uint64_t)nc->nroutes, "added", LOG_UINT, (uint64_t)added,
              "removed", LOG_UINT, (uint64_t)removed, LOG_END);
    route_cfgs_unref(cs); /* the routes made from it hold it now */
}

/* ---- running ---------------------------------------------------------------- */

/* Signals go to the main thread only (the workers block them); returns
 * when SIGTERM or SIGINT arrives. A SIGHUP only asks the control thread
 * for a reload, so a slow config never delays the stop. */
static void wait_for_stop(struct server *srv, sigset_t *set)
{
    int sig;

    for (;;) {
        if (sigwait(set, &sig) != 0)
            return;
        if (sig == SIGTERM || sig == SIGINT) {
            notify_stopping();
            control_stop(srv->control);
            log_event(LOG_INFO, "stopping", NULL, "signal", LOG_STR,
                      sig == SIGTERM ? "SIGTERM" : "SIGINT", "drain_ms", LOG_UINT,
                      (uint64_t)srv->drain_ms, LOG_END);
            return;
        }
        server_request_reload(srv, "SIGHUP");
    }
}

/* --watch: a change of the file reloads exactly as SIGHUP does, through
 * the control thread. */
static void watch_reload(void *arg, const char *why)
{
    server_request_reload(arg, why);
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

/* The first route set, from the caller's cfg (which it frees after
 * server_run, when every route is gone). */
static int routes_init(struct server *srv, struct cfg *cfg)
{
    struct route_cfgs *cs = route_cfgs_new(cfg, 0);
    int rc = 0;

    srv->routes = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*srv->routes));
    if (srv->routes == NULL || cs == NULL)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < cfg->nroutes; i++) {
        if (listen_probe(&cfg->routes[i]) != 0 ||
            (srv->routes[i] = open_route(&cfg->routes[i], cs, srv->nworkers)) == NULL)
            rc = -1;
        else
            srv->nroutes++;
    }
    route_cfgs_unref(cs);
    return rc;
}

static void server_free(struct server *srv)
{
    for (int i = 0; srv->workers != NULL && i < srv->nworkers; i++)
        worker_free(&srv->workers[i]);
    free(srv->workers);
    routes_release(srv->routes, srv->nroutes);
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
    if ((rc = log_async_start(LOG_RING_SIZE)) != 0)
        log_event(LOG_WARN, "log_error", NULL, "error", LOG_STR, strerror(-rc), "writing", LOG_STR,
                  "directly: a stderr nobody reads can stall the workers", LOG_END);
    rc = -1;

    srv.nworkers = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (srv.nworkers < 1)
        srv.nworkers = 1;
    udp_limits(max_fds, srv.nworkers);
    srv.workers = calloc((size_t)srv.nworkers, sizeof(*srv.workers));
    srv.control = control_new(&srv, path);
    if (srv.workers == NULL || srv.control == NULL || routes_init(&srv, cfg) != 0)
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
    if (nthreads == srv.nworkers && control_start(srv.control) == 0) {
        for (size_t i = 0; i < srv.nroutes; i++)
            log_route(srv.routes[i], "route_start");
        notify_start(&srv);
        wait_for_stop(&srv, &set);
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
    control_free(srv.control);
    server_free(&srv);
    log_async_stop(LOG_EXIT_FLUSH_MS);
    return rc;
}
