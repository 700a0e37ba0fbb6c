/*
 * health.h - active health checks of a route's upstreams (health_*), all
 * run in worker 0's loop.
 */
#ifndef PPFWD_HEALTH_H
#define PPFWD_HEALTH_H

#include <stddef.h>

struct worker;
struct route;

/* Makes w's checks match routes[0..n): starts those of routes with `check`
 * (each check holds a reference to its route) and stops those of routes no
 * longer there. Returns 0, or -1 if one could not start (logged). */
int health_sync(struct worker *w, struct route **routes, size_t n);

/* Stops every check of w (drain, exit); upstreams keep their verdicts. */
void health_stop_all(struct worker *w);

#endif /* PPFWD_HEALTH_H */
