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
 * --docker: the provider's thread (provider/docker.c) only stores the
 * containers' latest routes (srv->dyn) and asks for a reload; every reload
 * composes the file's routes (read again) or the command line's (kept from
 * the start) with them, so a SIGHUP and a container change coalesced into
 * one reload lose neither.
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
#include "provider/docker.h"

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

/* What the slow half of a reload hands to the quick one. */
struct server_load {
    struct route_cfgs *file; /* the file read again, or NULL: the command line's routes */
};

/* The routes a reload runs, each with the config it lives in. */
struct reload_set {
    const struct route_cfg **rcs;
    struct route_cfgs **owner;
    size_t n;
};

/* Asked by docker_compose of a container's route about to start: it may,
 * unless a process outside ppfwd holds its port (our own routes' sockets
 * do not count: a route may move between them). Control thread. */
static int can_listen(void *arg, const struct route_cfg *rc)
{
    struct server *srv = arg;

    return ours(srv->routes, srv->nroutes, rc) || listen_probe(rc) == 0 ? 0 : -EADDRINUSE;
}

/* The routes to run into *s: base's, then the containers' (dyn, or NULL)
 * that can join them; a container's route refused is logged once
 * (docker_problems_log). Returns 0 or -ENOMEM. */
static int compose(struct server *srv, struct route_cfgs *base, struct route_cfgs *dyn,
                   struct reload_set *s)
{
    const struct docker_set *set = dyn != NULL ? dyn->arg : NULL; /* docker_changed's */
    size_t nbase = base->cfg->nroutes, cap = nbase + (set ? set->cfg.nroutes : 0);
    struct docker_problems probs = {0};

    s->rcs = calloc(cap ? cap : 1, sizeof(*s->rcs));
    s->owner = calloc(cap ? cap : 1, sizeof(*s->owner));
    if (s->rcs == NULL || s->owner == NULL)
        return -ENOMEM;
    s->n = docker_compose(base->cfg, set, can_listen, srv, s->rcs, &probs);
    docker_problems_log(&srv->dseen, &probs);
    docker_problems_free(&probs);
    for (size_t i = 0; i < s->n; i++)
        s->owner[i] = i < nbase ? base : dyn;
    return 0;
}

/* Builds the route set of s, reusing running routes configured the same;
 * v[i] each get a reference. Returns the number of routes added, or -1
 * (logged) if one cannot listen. */
static int reload_routes(struct server *srv, const struct reload_set *s, struct route **v)
{
    int added = 0;

    for (size_t i = 0; i < s->n; i++) {
        const struct route_cfg *rc = s->rcs[i];
        v[i] = find_equal(srv->routes, srv->nroutes, rc);
        if (v[i] != NULL) {
            route_ref(v[i]);
            continue;
        }
        if (!ours(srv->routes, srv->nroutes, rc) && listen_probe(rc) != 0)
            return -1;
        v[i] = open_route(rc, s->owner[i], srv->nworkers);
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

/* 1 if r is one of v[0..n). */
static int among(struct route **v, size_t n, const struct route *r)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i] == r)
            return 1;
    }
    return 0;
}

/* Drops the references of a route set (NULL entries skipped) and frees it. */
static void routes_release(struct route **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        route_unref(v[i]);
    free(v);
}

void server_reload_discard(struct server_load *ld)
{
    if (ld == NULL)
        return;
    route_cfgs_unref(ld->file);
    free(ld);
}

/* The slow half of a reload, on the control thread (control.c): loads path
 * into a config of its own (freed with its last route). Touches no server
 * state: a load still running at exit is left to finish alone. */
struct server_load *server_reload_load(const char *path, int compose)
{
    struct server_load *ld = calloc(1, sizeof(*ld));
    struct cfg *nc = calloc(1, sizeof(*nc));
    struct cfg_errors errs = {0};

    if (ld == NULL || nc == NULL || (path == NULL && !compose)) {
        log_event(LOG_WARN, "reload_error", NULL, "error", LOG_STR,
                  ld && nc ? "routes given as URLs: nothing to reload (use -c FILE)"
                           : "out of memory",
                  LOG_END);
        free(nc);
        free(ld);
        return NULL;
    }
    if (path == NULL) {
        free(nc); /* the command line's routes, kept from the start */
        return ld;
    }
    if (cfg_load_file(nc, path, &errs) != 0) {
        for (size_t i = 0; i < errs.n; i++)
            log_event(LOG_ERROR, "reload_error", NULL, "error", LOG_STR, errs.msg[i], LOG_END);
        cfg_errors_free(&errs);
    } else if ((ld->file = route_cfgs_new(nc, 1)) != NULL) {
        return ld;
    }
    cfg_free(nc);
    free(nc);
    free(ld);
    log_event(LOG_ERROR, "reload_failed", NULL, "file", LOG_STR, path, "kept", LOG_STR,
              "the running config", LOG_END);
    return NULL;
}

/* The containers' latest routes, with a reference for the caller, or NULL. */
static struct route_cfgs *dyn_get(struct server *srv)
{
    struct route_cfgs *cs;

    pthread_mutex_lock(&srv->dyn_mu);
    cs = srv->dyn;
    if (cs != NULL)
        route_cfgs_ref(cs);
    pthread_mutex_unlock(&srv->dyn_mu);
    return cs;
}

/* Swaps v (n routes) in as the route set. Returns how many were removed. */
static size_t swap_routes(struct server *srv, struct route **v, size_t n)
{
    struct route **old;
    size_t removed, nold;

    pthread_mutex_lock(&srv->lock);
    removed = log_removed(srv, v, n);
    old = srv->routes;
    nold = srv->nroutes;
    srv->routes = v;
    srv->nroutes = n;
    srv->routes_gen++;
    pthread_mutex_unlock(&srv->lock);
    for (size_t i = 0; i < n; i++) {
        if (!among(old, nold, v[i]))
            log_route(v[i], "route_start");
    }
    /* Out of the set, under the lock: the metrics thread no longer sees
     * them, so the set's references can go (the routes' users hold theirs). */
    routes_release(old, nold);
    return removed;
}

static int str_differ(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

/* A reloaded file's global keys take effect at start only (ppfwd.yaml(5)):
 * a change is said in a config_warning rather than dropped silently. Keys
 * the command line gave win over the file's, at start as at reloads: their
 * changes in the file are moot. */
static void reload_globals(struct server *srv, const struct cfg *nc)
{
    const struct cfg *st = srv->start;
    unsigned cli = st->cli_set;
    static const char later[] = "changed in the file: takes effect at the next start";

    if (!(cli & CFG_CLI_LOG_LEVEL) && nc->log_level != st->log_level)
        log_event(LOG_WARN, "config_warning", NULL, "key", LOG_STR, "level", "warning", LOG_STR,
                  later, LOG_END);
    if (!(cli & CFG_CLI_LOG_FORMAT) && nc->log_format != st->log_format)
        log_event(LOG_WARN, "config_warning", NULL, "key", LOG_STR, "format", "warning", LOG_STR,
                  later, LOG_END);
    if (!(cli & CFG_CLI_WORKERS) && nc->workers != st->workers)
        log_event(LOG_WARN, "config_warning", NULL, "key", LOG_STR, "workers", "warning", LOG_STR,
                  later, LOG_END);
    if (!(cli & CFG_CLI_METRICS) && str_differ(nc->metrics, st->metrics))
        log_event(LOG_WARN, "config_warning", NULL, "key", LOG_STR, "metrics", "warning", LOG_STR,
                  later, LOG_END);
    if (!(cli & CFG_CLI_WATCH) && nc->watch != st->watch)
        log_event(LOG_WARN, "config_warning", NULL, "key", LOG_STR, "watch", "warning", LOG_STR,
                  later, LOG_END);
    if (!(cli & CFG_CLI_DOCKER) && str_differ(nc->docker, st->docker))
        log_event(LOG_WARN, "config_warning", NULL, "key", LOG_STR, "docker", "warning", LOG_STR,
                  later, LOG_END);
    if (!(cli & CFG_CLI_DRAIN) && nc->drain_ms != st->drain_ms)
        log_event(LOG_WARN, "config_warning", NULL, "key", LOG_STR, "drain_timeout", "warning",
                  LOG_STR, later, LOG_END);
}

/* The quick half, on the control thread while the server is not stopping:
 * the file's (or the command line's) routes and the containers' latest, as
 * one new route set. Takes ld. A file route that cannot listen fails the
 * reload (logged, the running set kept); a container's route that cannot
 * is left out (docker_route_refused). */
void server_reload_apply(struct server *srv, struct server_load *ld, const char *why)
{
    struct route_cfgs *base = ld->file != NULL ? ld->file : srv->cli, *dyn = dyn_get(srv);
    struct reload_set s = {0};
    struct route **v = NULL;
    size_t removed;
    int added = -1;

    if (compose(srv, base, dyn, &s) == 0 && (v = calloc(s.n ? s.n : 1, sizeof(*v))) != NULL)
        added = reload_routes(srv, &s, v);
    if (added < 0) {
        routes_release(v, s.n);
        log_event(LOG_ERROR, "reload_failed", NULL, "file", LOG_STR, srv->path, "trigger",
                  LOG_STR, why, "kept", LOG_STR, "the running config", LOG_END);
    } else {
        if (ld->file != NULL)
            reload_globals(srv, ld->file->cfg);
        removed = swap_routes(srv, v, s.n);
        wake_all(srv, srv->nworkers, WAKE_SYNC);
        log_event(LOG_INFO, "reload", NULL, "file", LOG_STR, srv->path, "trigger", LOG_STR, why,
                  "routes", LOG_UINT, (uint64_t)s.n, "added", LOG_UINT, (uint64_t)added,
                  "removed", LOG_UINT, (uint64_t)removed, LOG_END);
    }
    free(s.rcs);
    free(s.owner);
    /* The routes made from them hold them now (or none, and they go). */
    route_cfgs_unref(dyn);
    server_reload_discard(ld);
}

/* ---- containers ------------------------------------------------------------- */

/* The last route of a container route set (and the server's pointer to
 * it) went: the set is freed now, not at exit. Any thread. */
static void release_set(void *arg)
{
    struct docker_set *set = arg;

    log_event(LOG_DEBUG, "docker_set_freed", NULL, "routes", LOG_UINT,
              (uint64_t)set->cfg.nroutes, LOG_END);
    docker_set_release(set);
}

/* In the provider's thread: the containers' routes changed. Only stores
 * them and asks the control thread for a reload, which composes them with
 * the file's; a set no route uses any more is freed with the last one
 * that did (route_cfgs). Takes the provider's reference to set. */
static void docker_changed(void *arg, struct docker_set *set)
{
    struct server *srv = arg;
    struct route_cfgs *cs = route_cfgs_wrap(&set->cfg, release_set, set), *old;

    if (cs == NULL) {
        log_event(LOG_ERROR, "reload_failed", NULL, "trigger", LOG_STR, "docker", "error",
                  LOG_STR, strerror(ENOMEM), LOG_END);
        docker_set_release(set);
        return;
    }
    pthread_mutex_lock(&srv->dyn_mu);
    old = srv->dyn;
    srv->dyn = cs;
    pthread_mutex_unlock(&srv->dyn_mu);
    route_cfgs_unref(old);
    server_request_reload(srv, "docker");
}

/* The container provider, once the control thread runs: its first set
 * comes as a reload does. */
static int docker_init(struct server *srv, const struct cfg *cfg)
{
    int err;

    if (cfg->docker == NULL)
        return 0;
    srv->docker = docker_start(cfg->docker, docker_changed, srv, &err);
    if (srv->docker != NULL)
        return 0;
    log_event(LOG_ERROR, "start_error", NULL, "docker", LOG_STR, cfg->docker, "error", LOG_STR,
              docker_strerror(err), LOG_END);
    return -1;
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
 * server_run, when every route is gone). Without a file, the server keeps
 * cfg's routes for the reloads that compose them with the containers'. */
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
    if (srv->path == NULL)
        srv->cli = cs;
    else
        route_cfgs_unref(cs);
    return rc;
}

static void server_free(struct server *srv)
{
    for (int i = 0; srv->workers != NULL && i < srv->nworkers; i++)
        worker_free(&srv->workers[i]);
    free(srv->workers);
    routes_release(srv->routes, srv->nroutes);
    route_cfgs_unref(srv->cli);
    route_cfgs_unref(srv->dyn);
    docker_seen_free(&srv->dseen);
    pthread_mutex_destroy(&srv->dyn_mu);
    pthread_mutex_destroy(&srv->lock);
}

int server_run(struct cfg *cfg, const char *path, const struct sockaddr_storage *metrics)
{
    struct server srv = {.path = path,
                         .drain_ms = cfg->drain_ms ? cfg->drain_ms : DRAIN_MS_DEFAULT,
                         .start = cfg};
    int max_fds = raise_fd_limit(), nthreads = 0, rc = -1;
    struct watch *wt = NULL;
    sigset_t set;

    pthread_mutex_init(&srv.lock, NULL);
    pthread_mutex_init(&srv.dyn_mu, NULL);
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
    srv.control = control_new(&srv, path, cfg->docker != NULL);
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
        if (docker_init(&srv, cfg) == 0) {
            wait_for_stop(&srv, &set);
            rc = 0;
        } else {
            control_stop(srv.control);
        }
        /* No reload applies any more: the provider's thread goes now. */
        docker_stop(srv.docker);
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
