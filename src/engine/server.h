/*
 * server.h - running the routes: the current route set, reloads, signals
 * and the worker threads (server_*).
 */
#ifndef PPFWD_SERVER_H
#define PPFWD_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/socket.h>

#include "config/config.h"
#include "provider/docker_routes.h"

struct control;
struct docker;
struct route;
struct route_cfgs;
struct worker;

struct server {
    pthread_mutex_t lock;  /* guards the route set against reloads */
    struct route **routes; /* the current routes, one reference each */
    size_t nroutes;
    uint64_t routes_gen; /* bumped at each swap of routes (under lock) */
    const char *path; /* -c FILE, read again on SIGHUP; NULL for URLs */
    struct route_cfgs *cli; /* no -c FILE: the command line's routes, kept for reloads */
    struct docker *docker;  /* the container provider (--docker), or NULL */
    pthread_mutex_t dyn_mu; /* guards dyn: the provider's thread sets it */
    struct route_cfgs *dyn; /* the containers' latest routes (a docker_set), or NULL */
    struct docker_seen dseen; /* containers' routes refused at the last reload */
    struct worker *workers;
    int nworkers;
    unsigned drain_ms;
    struct control *control; /* reloads and the serving state: control.h */
    const struct cfg *start; /* the config it started with (globals: log, workers, ...) */
};

/* Runs cfg's routes until SIGTERM/SIGINT (reloading path on SIGHUP) and the
 * drain that follows, beside the containers' routes when cfg->docker is
 * set; metrics: where to serve /metrics, or NULL. cfg stays the caller's.
 * Returns 0, or -1 if it could not start (logged). */
int server_run(struct cfg *cfg, const char *path, const struct sockaddr_storage *metrics);

#endif /* PPFWD_SERVER_H */
