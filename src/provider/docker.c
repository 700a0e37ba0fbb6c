/*
 * docker.c - the provider thread and `ppfwd check --docker` (docker_*); see
 * docker.h.
 *
 * The event is a hint, the list is the truth: every relevant event marks
 * the set dirty, and the next list (one at a time, so a burst of events
 * costs one or two lists) gives the routes. The stream is opened before the
 * first list and a list starts only once the stream is answered, so no
 * change falls between them. A lost stream is reopened with backoff and
 * followed by a new list.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "provider/docker.h"
#include "provider/docker_api.h"
#include "util/log.h"

struct docker {
    struct docker_api *api;
    char *spec;
    pthread_t thread;
    docker_apply_cb *apply;
    void *arg;
    struct docker_set *last; /* the set last handed over; NULL before the first */
    struct docker_seen seen; /* problems logged at the last list */
    int dirty;               /* an event came since the last list started */
    int listing;             /* a list is in flight */
    int failing;             /* the last attempt failed: log the next failures at debug */
    unsigned backoff_ms;     /* the next wait after a failure */
    uint64_t retry_at;       /* no new event stream before this */
    uint64_t stream_at;      /* when the current event stream started */
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* An object of another shape than documented is JSON all the same, so the
 * stream is still in step: it is taken as "something changed", and the
 * list says what. Bytes that are not JSON end the stream (docker_api.c). */
static int on_event(void *arg, const void *obj)
{
    struct docker *d = arg;
    struct docker_event ev;
    int rc = docker_json_event(obj, &ev);

    if (rc != 0)
        d->dirty = 1;
    log_event(LOG_DEBUG, "docker_event", NULL, "type", LOG_STR, ev.type[0] ? ev.type : NULL,
              "action", LOG_STR, ev.action[0] ? ev.action : NULL, "container", LOG_STR,
              ev.name[0] ? ev.name : ev.id[0] ? ev.id : NULL, "error", LOG_STR,
              rc < 0 ? docker_strerror(rc) : NULL, LOG_END);
    return 0;
}

/* Both transfers end; the next stream waits for the backoff. */
static void failed(struct docker *d, const char *what, const struct docker_result *res)
{
    uint64_t now = now_ms();

    docker_api_events_stop(d->api);
    if (d->backoff_ms == 0 ||
        (d->stream_at != 0 && now - d->stream_at >= DOCKER_STREAM_HEALTHY_MS && !d->failing))
        d->backoff_ms = DOCKER_RETRY_MIN_MS;
    d->retry_at = now + d->backoff_ms;
    d->stream_at = 0;
    log_event(d->failing ? LOG_DEBUG : LOG_WARN, "docker_api_error", NULL, "socket", LOG_STR,
              d->spec, "request", LOG_STR, what, "error", LOG_STR, docker_strerror(res->rc),
              "status", LOG_UINT, (uint64_t)res->status, "detail", LOG_STR,
              res->msg[0] ? res->msg : NULL, "retry_ms", LOG_UINT, (uint64_t)d->backoff_ms,
              LOG_END);
    d->failing = 1;
    d->backoff_ms = d->backoff_ms * 2 > DOCKER_RETRY_MAX_MS ? DOCKER_RETRY_MAX_MS : d->backoff_ms * 2;
}

/* A list answer: the routes it gives, handed over when they changed. */
static void listed(struct docker *d)
{
    struct docker_problems probs = {0};
    struct docker_result res = {0};
    struct docker_list l;
    struct docker_set *set;
    const char *body;
    size_t len;

    body = docker_api_list_body(d->api, &len);
    res.status = 200;
    if ((res.rc = docker_json_list(body, len, &l)) != 0) {
        failed(d, "GET /containers/json", &res);
        return;
    }
    if ((set = malloc(sizeof(*set))) == NULL ||
        (res.rc = docker_set_build(&l, d->last, set, &probs)) != 0) {
        res.rc = res.rc ? res.rc : -DOCKER_ENOMEM;
        if (set != NULL)
            docker_set_release(set);
        docker_problems_free(&probs);
        docker_list_free(&l);
        failed(d, "GET /containers/json", &res);
        return;
    }
    if (d->failing || d->last == NULL)
        log_event(LOG_INFO, "docker_connected", NULL, "socket", LOG_STR, d->spec, "containers",
                  LOG_UINT, (uint64_t)l.n, "routes", LOG_UINT, (uint64_t)set->cfg.nroutes, LOG_END);
    d->failing = 0;
    docker_problems_log(&d->seen, &probs);
    docker_problems_free(&probs);
    docker_list_free(&l);
    /* Nothing changed (or, at first, nothing to run): no reload. */
    if (d->last != NULL ? docker_set_equal(d->last, set) : set->cfg.nroutes == 0) {
        docker_set_release(set);
        return;
    }
    docker_set_release(d->last);
    d->last = set;
    docker_set_hold(set);
    d->apply(d->arg, set);
}

/* What to start now: the stream when it is due, a list when one is owed. */
static int step(struct docker *d, uint64_t now)
{
    struct docker_result res = {0};

    if (!docker_api_events_running(d->api) && now >= d->retry_at) {
        if ((res.rc = docker_api_events_start(d->api, on_event, d)) != 0) {
            failed(d, "GET /events", &res);
            return 0;
        }
        d->stream_at = now;
        d->dirty = 1;
    }
    /* A daemon that accepts but never answers is a failure too. */
    if (docker_api_events_running(d->api) && !docker_api_events_ready(d->api) &&
        now - d->stream_at > DOCKER_LIST_TIMEOUT_MS) {
        snprintf(res.msg, sizeof(res.msg), "no answer in %u ms", DOCKER_LIST_TIMEOUT_MS);
        res.rc = -DOCKER_EIO;
        failed(d, "GET /events", &res);
        return 0;
    }
    if (d->dirty && !d->listing && docker_api_events_ready(d->api)) {
        if ((res.rc = docker_api_list_start(d->api)) != 0) {
            failed(d, "GET /containers/json", &res);
            return 0;
        }
        d->listing = 1;
        d->dirty = 0;
    }
    if (!docker_api_events_running(d->api))
        return d->retry_at > now ? (int)(d->retry_at - now) : 0;
    return 1000;
}

static void *provider_main(void *arg)
{
    struct docker *d = arg;
    struct docker_result lres, eres;
    int done;

    for (;;) {
        int wait = step(d, now_ms());
        done = docker_api_poll(d->api, wait, &lres, &eres);
        if (done < 0)
            break;
        if (done & DOCKER_DONE_LIST) {
            d->listing = 0;
            if (lres.rc == 0)
                listed(d);
            else
                failed(d, "GET /containers/json", &lres);
        }
        if (done & DOCKER_DONE_EVENTS)
            failed(d, "GET /events", &eres);
    }
    return NULL;
}

struct docker *docker_start(const char *spec, docker_apply_cb *apply, void *arg, int *err)
{
    struct docker *d = calloc(1, sizeof(*d));

    *err = -DOCKER_ENOMEM;
    if (d == NULL)
        return NULL;
    spec = spec ? spec : DOCKER_SOCKET_DEFAULT;
    d->apply = apply;
    d->arg = arg;
    if ((d->spec = strdup(spec)) == NULL || (d->api = docker_api_new(spec, err)) == NULL)
        goto fail;
    if (pthread_create(&d->thread, NULL, provider_main, d) != 0) {
        *err = -DOCKER_ENOMEM;
        goto fail;
    }
    *err = 0;
    return d;
fail:
    docker_api_free(d->api);
    free(d->spec);
    free(d);
    return NULL;
}

void docker_stop(struct docker *d)
{
    if (d == NULL)
        return;
    docker_api_stop(d->api);
    pthread_join(d->thread, NULL);
    docker_api_free(d->api);
    docker_set_release(d->last);
    docker_seen_free(&d->seen);
    free(d->spec);
    free(d);
}

/* ---- check ------------------------------------------------------------------ */

static void print_route(FILE *out, const struct route_cfg *r, const struct docker_origin *at)
{
    fprintf(out, "%s %s ->", r->name, r->listen);
    for (size_t i = 0; i < r->nup; i++)
        fprintf(out, "%s%s", i ? "," : " ", r->up[i].name);
    if (at != NULL)
        fprintf(out, " (container %s, label %s)", at->container, at->label);
    fputc('\n', out);
}

static int check_list(const char *spec, struct docker_api *api, struct docker_list *l, FILE *err)
{
    struct docker_result res;
    const char *body;
    size_t len;

    if (docker_api_list_sync(api, &res) != 0) {
        fprintf(err, "ppfwd: check: docker %s: %s%s%s\n", spec, docker_strerror(res.rc),
                res.msg[0] ? ": " : "", res.msg);
        return -1;
    }
    body = docker_api_list_body(api, &len);
    if ((res.rc = docker_json_list(body, len, l)) != 0) {
        fprintf(err, "ppfwd: check: docker %s: GET /containers/json: %s\n", spec,
                docker_strerror(res.rc));
        return -1;
    }
    return 0;
}

int docker_check(const char *spec, const struct cfg *base, FILE *out, FILE *err)
{
    struct docker_problems probs = {0};
    struct docker_set set = {0};
    struct docker_list l = {0};
    const struct route_cfg **v = NULL;
    struct docker_api *api;
    size_t n = 0;
    int rc;

    spec = spec ? spec : DOCKER_SOCKET_DEFAULT;
    if ((api = docker_api_new(spec, &rc)) == NULL) {
        fprintf(err, "ppfwd: check: docker '%s': %s\n", spec, docker_strerror(rc));
        return -1;
    }
    if ((rc = check_list(spec, api, &l, err)) == 0 &&
        (rc = docker_set_build(&l, NULL, &set, &probs)) == 0 &&
        (v = calloc((base ? base->nroutes : 0) + set.cfg.nroutes + 1, sizeof(*v))) != NULL)
        n = docker_compose(base, &set, NULL, NULL, v, &probs);
    for (size_t i = base ? base->nroutes : 0; i < n; i++)
        print_route(out, v[i], &set.origin[v[i] - set.cfg.routes]);
    for (size_t i = 0; i < probs.n; i++)
        fprintf(err, "ppfwd: check: container %s: label %s: %s\n", probs.v[i].at.container,
                probs.v[i].at.label, probs.v[i].error);
    if (rc == 0 && v != NULL)
        fprintf(out, "docker %s: %zu container%s, %zu route%s, %zu refused\n", spec, l.n,
                l.n == 1 ? "" : "s", n - (base ? base->nroutes : 0),
                n - (base ? base->nroutes : 0) == 1 ? "" : "s", probs.n);
    rc = rc == 0 && v != NULL && probs.n == 0 ? 0 : -1;
    free(v);
    docker_problems_free(&probs);
    docker_set_free(&set);
    docker_list_free(&l);
    docker_api_free(api);
    return rc;
}
