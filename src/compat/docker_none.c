/*
 * docker_none.c - the provider's entry points in the static build (make
 * static), which has no libcurl and json-c for musl: --docker and
 * `check --docker` fail with DOCKER_ENOTBUILT's message, and ppfwd does
 * not start with a provider it cannot run. Linked instead of
 * src/provider/docker.c, docker_api.c and docker_json.c.
 */
#include <stdio.h>

#include "provider/docker.h"
#include "provider/docker_api.h"

struct docker *docker_start(const char *spec, docker_apply_cb *apply, void *arg, int *err)
{
    (void)spec;
    (void)apply;
    (void)arg;
    *err = -DOCKER_ENOTBUILT;
    return NULL;
}

void docker_stop(struct docker *d)
{
    (void)d;
}

int docker_check(const char *spec, const struct cfg *base, FILE *out, FILE *err)
{
    (void)base;
    (void)out;
    fprintf(err, "ppfwd: check: docker '%s': %s\n", spec ? spec : DOCKER_SOCKET_DEFAULT,
            docker_strerror(-DOCKER_ENOTBUILT));
    return -1;
}
