/*
 * docker_routes.h - from containers to routes (docker_set_*, docker_compose):
 * each label ppfwd.route.NAME=ROUTE-URL becomes a route named
 * CONTAINER.NAME, read by the config module's URL parser (cfg_from_urls),
 * so a label takes every key a URL route takes. Nothing here does I/O or
 * logs: problems are collected, and the caller logs or prints them.
 */
#ifndef PPFWD_DOCKER_ROUTES_H
#define PPFWD_DOCKER_ROUTES_H

#include <stdatomic.h>
#include <stddef.h>

#include "config/config.h"
#include "provider/docker_json.h"

#define DOCKER_ROUTE_PREFIX "ppfwd.route."
/* The upstream host that means "the container's own address". */
#define DOCKER_HOST_CONTAINER "container"
#define DOCKER_NAME_MAX 64

/* Where a route or a problem comes from. */
struct docker_origin {
    char *container; /* its name */
    char *label;     /* the label's key */
    char *value;     /* the label's value, as written */
};

struct docker_problem {
    struct docker_origin at;
    char *error;
};

struct docker_problems {
    struct docker_problem *v;
    size_t n;
};

/* The routes the containers give: cfg.routes[i] (named CONTAINER.NAME,
 * sorted by name) comes from origin[i]. */
struct docker_set {
    struct cfg cfg;
    struct docker_origin *origin;
    atomic_int refs; /* for sets on the heap (docker_set_release) */
};

/*
 * Builds the routes of the containers in l into *out (zeroed here), and
 * appends a problem to *probs for each label refused: a label under
 * "ppfwd." that is not ppfwd.route.NAME, a bad NAME, a URL that does not
 * parse, a route name or a listen address another route of the set holds.
 * A route using the upstream host "container" is absent (no problem) while
 * its container does not run; it is refused when the container runs with no
 * network address. On a conflict, a route that prev (the previous set, or
 * NULL) holds keeps its place, so a new container cannot take a running
 * route's port. Returns 0, or -DOCKER_ENOMEM (then free *out and *probs).
 */
int docker_set_build(const struct docker_list *l, const struct docker_set *prev,
                     struct docker_set *out, struct docker_problems *probs);

/* 1 if a and b hold the same routes configured the same way. */
int docker_set_equal(const struct docker_set *a, const struct docker_set *b);

/* Frees what *s holds (not s itself). */
void docker_set_free(struct docker_set *s);

/* A set on the heap is shared by the provider (the last set it handed over)
 * and the server (the set it runs): each holder releases it; the last
 * release frees it. docker_set_build sets refs to 1. */
void docker_set_hold(struct docker_set *s);
void docker_set_release(struct docker_set *s);

/* Asked of each docker route that would start listening: 0 if it can,
 * else a negative errno (e.g. -EADDRINUSE: a process outside ppfwd holds
 * the port). */
typedef int docker_listen_cb(void *arg, const struct route_cfg *rc);

/*
 * The routes to run: every route of base, then those of set (NULL: none)
 * whose name and listen address no route before them holds and that
 * can_listen (NULL: not asked) accepts. Writes their pointers to out, which
 * has room for base->nroutes plus set's routes, appends a problem for each
 * refused one to *probs, and returns how many it wrote.
 */
size_t docker_compose(const struct cfg *base, const struct docker_set *set,
                      docker_listen_cb *can_listen, void *arg, const struct route_cfg **out,
                      struct docker_problems *probs);

void docker_problems_free(struct docker_problems *p);

/*
 * Logging each problem once, not at every change of the containers: a
 * problem is logged (warn, docker_route_refused, with container, label and
 * error) when the previous round did not have it. A round is one call.
 */
struct docker_seen {
    char **v;
    size_t n;
};

void docker_problems_log(struct docker_seen *seen, const struct docker_problems *p);
void docker_seen_free(struct docker_seen *seen);

#endif /* PPFWD_DOCKER_ROUTES_H */
