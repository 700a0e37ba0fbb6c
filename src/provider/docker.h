/*
 * docker.h - routes from container labels: the Docker/Podman provider
 * (docker_*). A thread of its own lists the containers through the Docker
 * Engine API, follows their events, and each time the routes they give
 * change, hands the new set to the server, which applies it as a reload
 * does. The workers never wait on the API.
 */
#ifndef PPFWD_DOCKER_H
#define PPFWD_DOCKER_H

#include <stdio.h>

#include "config/config.h"
#include "provider/docker_routes.h"

/* Waits between attempts while the API fails: from the first to the
 * largest, doubling. */
#define DOCKER_RETRY_MIN_MS 500
#define DOCKER_RETRY_MAX_MS 30000
/* An event stream that lived this long was healthy: a retry after it
 * starts again from DOCKER_RETRY_MIN_MS. */
#define DOCKER_STREAM_HEALTHY_MS 30000

struct docker;

/* Called in the provider's thread with a new route set; the callee holds
 * one reference to set (docker_set_release when done). */
typedef void docker_apply_cb(void *arg, struct docker_set *set);

/*
 * Starts the provider for the API at spec ("unix:///PATH" or "/PATH";
 * NULL: DOCKER_SOCKET_DEFAULT). Each change of the containers' routes is
 * handed to apply(arg, set); an unreachable API is logged and retried with
 * backoff, the routes staying as they are. Returns the provider, or NULL
 * with *err a negative DOCKER_E* code (a bad spec, memory, a thread).
 */
struct docker *docker_start(const char *spec, docker_apply_cb *apply, void *arg, int *err);

/* Stops the thread (at once, even mid-transfer) and frees the provider. */
void docker_stop(struct docker *d);

/*
 * `ppfwd check --docker`: lists the containers once, and writes to out
 * the routes they would give beside base (NULL: none), one per line, and to
 * err each problem. Starts nothing. Returns 0 when the API answered and no
 * label was refused, else -1.
 */
int docker_check(const char *spec, const struct cfg *base, FILE *out, FILE *err);

#endif /* PPFWD_DOCKER_H */
