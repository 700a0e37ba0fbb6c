/*
 * server.c - running the routes: worker threads, each with its own loop and
 * listeners; signals in the main thread; graceful stop (server_*).
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

#include "log.h"
#include "proxy.h"

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

static void drain_end(struct loop *l, struct timer *t, void *arg)
{
    (void)t, (void)arg;
    loop_stop(l);
}

/* In the worker's thread, after loop_wake() from the signal handler thread. */
static void drain_start(struct loop *l, void *arg)
{
    struct worker *w = arg;

    if (w->draining)
        return;
    w->draining = 1;
    listen_stop(w);
    if (w->nconns == 0) {
        loop_stop(l);
        return;
    }
    loop_timer_set(l, &w->accept_pause, w->srv->drain_ms, drain_end, w);
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
    w->ls = calloc(srv->nroutes, sizeof(*w->ls));
    w->buf_free = calloc(BUF_CACHE, sizeof(void *));
    w->pipe_free = calloc(PIPE_CACHE, sizeof(*w->pipe_free));
    w->stats = calloc(srv->nroutes, sizeof(*w->stats));
    if (w->loop == NULL || w->ls == NULL || w->buf_free == NULL || w->pipe_free == NULL ||
        w->stats == NULL) {
        log_event(LOG_ERROR, "start_error", NULL, "error", LOG_STR, strerror(ENOMEM), LOG_END);
        return -1;
    }
    loop_on_wake(w->loop, drain_start, w);
    return listen_start(w);
}

static void worker_free(struct worker *w)
{
    if (w->loop != NULL && w->ls != NULL)
        listen_stop(w);
    relay_buf_drain(w);
    free(w->buf_free);
    free(w->pipe_free);
    free(w->stats);
    free(w->ls);
    if (w->loop != NULL)
        loop_free(w->loop);
}

static void log_routes(const struct server *srv, const char *event)
{
    for (size_t i = 0; i < srv->nroutes; i++) {
        const struct route_cfg *rc = srv->routes[i].cfg;
        log_event(LOG_INFO, event, rc->name, "listen", LOG_STR, rc->listen, "upstream", LOG_STR,
                  rc->up[0].name, "upstreams", LOG_UINT, (uint64_t)rc->nup, LOG_END);
        if (!strcmp(event, "route_start") && rc->accept_proxy == PP_ACCEPT_OPTIONAL &&
            rc->trusted_all)
            log_event(LOG_WARN, "config_warning", rc->name, "key", LOG_STR, "accept-proxy",
                      "warning", LOG_STR,
                      "optional without trusted: any client may claim any address", LOG_END);
    }
}

/* Blocks the signals every thread inherits, then waits for them here. */
static int wait_for_stop(sigset_t *set)
{
    int sig;

    for (;;) {
        if (sigwait(set, &sig) != 0)
            return -1;
        if (sig == SIGTERM || sig == SIGINT)
            return sig;
        log_event(LOG_WARN, "reload_unsupported", NULL, "signal", LOG_STR, "SIGHUP", LOG_END);
    }
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

/* Route state beside each route's config; every upstream starts up. */
static int routes_init(struct server *srv)
{
    for (size_t i = 0; i < srv->nroutes; i++) {
        struct route *r = &srv->routes[i];
        r->cfg = &srv->cfg->routes[i];
        r->idx = i;
        r->ups = calloc(r->cfg->nup, sizeof(*r->ups));
        if (r->ups == NULL)
            return -1;
        for (size_t j = 0; j < r->cfg->nup; j++)
            atomic_init(&r->ups[j].checked_up, 1);
        if (listen_probe(r->cfg) != 0)
            return -1;
    }
    return 0;
}

int server_run(struct cfg *cfg, const struct sockaddr_storage *metrics)
{
    struct server srv = {.cfg = cfg, .nroutes = cfg->nroutes, .drain_ms = DRAIN_MS_DEFAULT};
    int max_fds = raise_fd_limit(), nthreads = 0, rc = -1;
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv.nworkers = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (srv.nworkers < 1)
        srv.nworkers = 1;
    srv.routes = calloc(srv.nroutes, sizeof(*srv.routes));
    srv.workers = calloc((size_t)srv.nworkers, sizeof(*srv.workers));
    if (srv.routes == NULL || srv.workers == NULL)
        goto out;
    if (routes_init(&srv) != 0)
        goto out;
    if (metrics != NULL && metrics_start(&srv, metrics) != 0)
        goto out;
    for (int i = 0; i < srv.nworkers; i++) {
        if (worker_init(&srv, &srv.workers[i], i, max_fds) != 0)
            goto out;
    }
    if (health_start(&srv, &srv.workers[0]) != 0)
        goto out;
    nthreads = start_threads(&srv);
    if (nthreads == srv.nworkers) {
        log_routes(&srv, "route_start");
        wait_for_stop(&set);
        rc = 0;
    }
    for (int i = 0; i < nthreads; i++)
        loop_wake(srv.workers[i].loop);
    for (int i = 0; i < nthreads; i++)
        pthread_join(srv.workers[i].thread, NULL);
    if (metrics != NULL)
        metrics_stop();
    health_stop(&srv, &srv.workers[0]);
    if (rc == 0)
        log_routes(&srv, "route_stop");
out:
    for (int i = 0; srv.workers != NULL && i < srv.nworkers; i++)
        worker_free(&srv.workers[i]);
    free(srv.workers);
    for (size_t i = 0; srv.routes != NULL && i < srv.nroutes; i++)
        free(srv.routes[i].ups);
    free(srv.routes);
    return rc;
}
