/*
 * docker_routes.c - containers' labels into routes (docker_set_*,
 * docker_compose, docker_problems_*); see docker_routes.h.
 *
 * A label's URL goes through cfg_from_urls, the parser of URLs given on the
 * command line, so labels and URLs accept exactly the same keys and give
 * the same messages. The only rewriting done here is the upstream host
 * "container", replaced by the container's address before parsing.
 */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/docker_routes.h"
#include "util/log.h"

/* A route read from one label, waiting for the conflict checks. */
struct cand {
    struct cfg one; /* the route, alone in a cfg of its own until accepted */
    struct docker_origin at;
    int held;     /* the previous set had a route of this name */
    size_t order; /* position in (container, label) order */
};

static void origin_free(struct docker_origin *o)
{
    free(o->container);
    free(o->label);
    free(o->value);
    memset(o, 0, sizeof(*o));
}

static int origin_set(struct docker_origin *o, const char *container, const char *label,
                      const char *value)
{
    o->container = strdup(container);
    o->label = strdup(label);
    o->value = strdup(value);
    return o->container && o->label && o->value ? 0 : -DOCKER_ENOMEM;
}

static int problem(struct docker_problems *p, const struct docker_origin *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int problem(struct docker_problems *p, const struct docker_origin *at, const char *fmt, ...)
{
    struct docker_problem *v = realloc(p->v, (p->n + 1) * sizeof(*v)), *e;
    va_list ap;
    int n;

    if (v == NULL)
        return -DOCKER_ENOMEM;
    p->v = v;
    e = &v[p->n];
    memset(e, 0, sizeof(*e));
    va_start(ap, fmt);
    n = vasprintf(&e->error, fmt, ap);
    va_end(ap);
    if (n < 0 || origin_set(&e->at, at->container, at->label, at->value) != 0) {
        if (n >= 0)
            free(e->error);
        origin_free(&e->at);
        return -DOCKER_ENOMEM;
    }
    p->n++;
    return 0;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > DOCKER_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/*
 * The URL with each upstream "container:PORT" replaced by the container's
 * address. Returns it (to free), or NULL with *why: "" when the route is
 * absent for now (the container does not run), a message when it is
 * refused, NULL when out of memory.
 */
static char *subst(const char *url, const struct docker_container *c, const char **why)
{
    static const char host[] = DOCKER_HOST_CONTAINER ":";
    const char *sep = strstr(url, "://"), *p = sep ? strchr(sep + 3, '/') : NULL, *end;
    char *out = NULL;
    size_t len = 0;
    FILE *f;

    *why = NULL;
    if (p == NULL)
        return strdup(url); /* the parser says what is wrong */
    end = p + strcspn(p, "?");
    if ((f = open_memstream(&out, &len)) == NULL)
        return NULL;
    fwrite(url, 1, (size_t)(p + 1 - url), f);
    for (const char *t = p + 1; t < end;) {
        size_t n = strcspn(t, ",");
        n = t + n > end ? (size_t)(end - t) : n;
        if (n > sizeof(host) - 1 && strncmp(t, host, sizeof(host) - 1) == 0) {
            if (!c->running || c->addr[0] == '\0')
                *why = c->running ? "the container runs with no network address (network "
                                    "mode host or none?): upstream host 'container' has none"
                                  : "";
            fprintf(f, strchr(c->addr, ':') ? "[%s]" : "%s", c->addr);
            fwrite(t + sizeof(host) - 2, 1, n - (sizeof(host) - 2), f);
        } else {
            fwrite(t, 1, n, f);
        }
        t += n;
        if (t < end)
            fputc(*t++, f);
    }
    fputs(end, f);
    fclose(f);
    if (*why != NULL) {
        free(out);
        return NULL;
    }
    return out;
}

/* Every message of errs, as one line. */
static int problem_errs(struct docker_problems *p, const struct docker_origin *at,
                        const struct cfg_errors *errs)
{
    char *all = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&all, &len);
    int rc;

    if (f == NULL)
        return -DOCKER_ENOMEM;
    for (size_t i = 0; i < errs->n; i++)
        fprintf(f, "%s%s", i ? "; " : "", errs->msg[i]);
    fclose(f);
    rc = all ? problem(p, at, "%s", all) : -DOCKER_ENOMEM;
    free(all);
    return rc;
}

static int held(const struct docker_set *prev, const char *name)
{
    for (size_t i = 0; prev != NULL && i < prev->cfg.nroutes; i++) {
        if (strcmp(prev->cfg.routes[i].name, name) == 0)
            return 1;
    }
    return 0;
}

/* One label into *cd (cd->one.nroutes == 1), or a problem, or nothing. */
static int read_label(const struct docker_container *c, const struct docker_label *lb,
                      struct cand *cd, struct docker_problems *p)
{
    const char *name = lb->key + strlen(DOCKER_ROUTE_PREFIX), *why;
    struct cfg_errors errs = {0};
    char *url;
    int rc;

    if ((rc = origin_set(&cd->at, c->name, lb->key, lb->value)) != 0)
        return rc;
    if (strncmp(lb->key, DOCKER_ROUTE_PREFIX, strlen(DOCKER_ROUTE_PREFIX)) != 0)
        return problem(p, &cd->at, "unknown label (expected " DOCKER_ROUTE_PREFIX "NAME=ROUTE-URL)");
    if (!name_ok(name))
        return problem(p, &cd->at, "bad route name '%s' (expected 1-%d of A-Z a-z 0-9 . _ -)",
                       name, DOCKER_NAME_MAX);
    if ((url = subst(lb->value, c, &why)) == NULL)
        return why == NULL ? -DOCKER_ENOMEM : *why ? problem(p, &cd->at, "%s", why) : 0;
    rc = cfg_from_urls(&cd->one, &url, 1, &errs);
    free(url);
    if (rc != 0) {
        rc = problem_errs(p, &cd->at, &errs);
        cfg_errors_free(&errs);
        cfg_free(&cd->one);
        return rc;
    }
    free(cd->one.routes[0].name);
    if (asprintf(&cd->one.routes[0].name, "%s.%s", c->name, name) < 0) {
        cd->one.routes[0].name = NULL;
        return -DOCKER_ENOMEM;
    }
    return 0;
}

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;

    if (x->held != y->held)
        return y->held - x->held;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Reads every label of every container into *cands. */
static int read_all(const struct docker_list *l, const struct docker_set *prev, struct cand **cands,
                    size_t *n, struct docker_problems *p)
{
    for (size_t i = 0; i < l->n; i++) {
        for (size_t j = 0; j < l->v[i].nlabels; j++) {
            struct cand *v = realloc(*cands, (*n + 1) * sizeof(*v)), *cd;
            int rc;
            if (v == NULL)
                return -DOCKER_ENOMEM;
            *cands = v;
            cd = &v[(*n)++];
            memset(cd, 0, sizeof(*cd));
            cd->order = *n;
            if ((rc = read_label(&l->v[i], &l->v[i].labels[j], cd, p)) != 0)
                return rc;
            if (cd->one.nroutes == 1)
                cd->held = held(prev, cd->one.routes[0].name);
        }
    }
    return 0;
}

/* The route before r in v[0..n) that r cannot run beside, and why. */
static const char *conflict(const struct route_cfg *r, const struct route_cfg *const *v, size_t n,
                            const struct route_cfg **with)
{
    for (size_t i = 0; i < n; i++) {
        *with = v[i];
        if (strcmp(v[i]->name, r->name) == 0)
            return "a route of this name exists";
        if (cfg_route_overlap(r, v[i]))
            return "its listen address is held by route";
    }
    return NULL;
}

static int route_name_cmp(const void *a, const void *b)
{
    return strcmp((*(const struct cand *const *)a)->one.routes[0].name,
                  (*(const struct cand *const *)b)->one.routes[0].name);
}

/* Moves the accepted candidates (sorted by route name) into out. */
static int take(struct cand **ok, size_t n, struct docker_set *out)
{
    out->cfg.routes = calloc(n ? n : 1, sizeof(*out->cfg.routes));
    out->origin = calloc(n ? n : 1, sizeof(*out->origin));
    if (out->cfg.routes == NULL || out->origin == NULL)
        return -DOCKER_ENOMEM;
    if (n > 1)
        qsort(ok, n, sizeof(*ok), route_name_cmp);
    for (size_t i = 0; i < n; i++) {
        out->cfg.routes[i] = ok[i]->one.routes[0];
        out->origin[i] = ok[i]->at;
        free(ok[i]->one.routes);
        memset(&ok[i]->one, 0, sizeof(ok[i]->one));
        memset(&ok[i]->at, 0, sizeof(ok[i]->at));
    }
    out->cfg.nroutes = n;
    return 0;
}

static int select_routes(struct cand *cands, size_t n, struct docker_set *out,
                         struct docker_problems *p)
{
    const struct route_cfg **v = calloc(n ? n : 1, sizeof(*v)), *with;
    struct cand **ok = calloc(n ? n : 1, sizeof(*ok));
    size_t nok = 0;
    int rc = v && ok ? 0 : -DOCKER_ENOMEM;

    if (n > 1)
        qsort(cands, n, sizeof(*cands), cand_cmp);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *why;
        if (cands[i].one.nroutes != 1)
            continue;
        why = conflict(&cands[i].one.routes[0], v, nok, &with);
        if (why != NULL) {
            rc = problem(p, &cands[i].at, "%s %s", why, with->name);
            continue;
        }
        v[nok] = &cands[i].one.routes[0];
        ok[nok++] = &cands[i];
    }
    if (rc == 0)
        rc = take(ok, nok, out);
    free(v);
    free(ok);
    return rc;
}

int docker_set_build(const struct docker_list *l, const struct docker_set *prev,
                     struct docker_set *out, struct docker_problems *probs)
{
    struct cand *cands = NULL;
    size_t n = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    atomic_init(&out->refs, 1);
    out->cfg.log_level = -1;
    out->cfg.log_format = -1;
    rc = read_all(l, prev, &cands, &n, probs);
    if (rc == 0)
        rc = select_routes(cands, n, out, probs);
    for (size_t i = 0; i < n; i++) {
        cfg_free(&cands[i].one);
        origin_free(&cands[i].at);
    }
    free(cands);
    return rc;
}

int docker_set_equal(const struct docker_set *a, const struct docker_set *b)
{
    if (a->cfg.nroutes != b->cfg.nroutes)
        return 0;
    for (size_t i = 0; i < a->cfg.nroutes; i++) {
        if (!cfg_route_equal(&a->cfg.routes[i], &b->cfg.routes[i]))
            return 0;
    }
    return 1;
}

void docker_set_free(struct docker_set *s)
{
    for (size_t i = 0; s->origin != NULL && i < s->cfg.nroutes; i++)
        origin_free(&s->origin[i]);
    free(s->origin);
    cfg_free(&s->cfg);
    memset(s, 0, sizeof(*s));
}

void docker_set_hold(struct docker_set *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void docker_set_release(struct docker_set *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    docker_set_free(s);
    free(s);
}

size_t docker_compose(const struct cfg *base, const struct docker_set *set,
                      docker_listen_cb *can_listen, void *arg, const struct route_cfg **out,
                      struct docker_problems *probs)
{
    const struct route_cfg *with;
    size_t n = 0;
    int err;

    for (size_t i = 0; base != NULL && i < base->nroutes; i++)
        out[n++] = &base->routes[i];
    for (size_t i = 0; set != NULL && i < set->cfg.nroutes; i++) {
        const struct route_cfg *r = &set->cfg.routes[i];
        const char *why = conflict(r, out, n, &with);
        if (why != NULL)
            problem(probs, &set->origin[i], "%s %s", why, with->name);
        else if (can_listen != NULL && (err = can_listen(arg, r)) != 0)
            problem(probs, &set->origin[i], "cannot listen on %s: %s", r->listen, strerror(-err));
        else
            out[n++] = r;
    }
    return n;
}

void docker_problems_free(struct docker_problems *p)
{
    for (size_t i = 0; i < p->n; i++) {
        origin_free(&p->v[i].at);
        free(p->v[i].error);
    }
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

static char *problem_key(const struct docker_problem *e)
{
    char *k;

    return asprintf(&k, "%s\x1f%s\x1f%s\x1f%s", e->at.container, e->at.label, e->at.value,
                    e->error) < 0
               ? NULL
               : k;
}

static int seen_has(const struct docker_seen *s, const char *k)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i], k) == 0)
            return 1;
    }
    return 0;
}

void docker_problems_log(struct docker_seen *seen, const struct docker_problems *p)
{
    struct docker_seen next = {calloc(p->n ? p->n : 1, sizeof(char *)), 0};

    for (size_t i = 0; i < p->n; i++) {
        const struct docker_problem *e = &p->v[i];
        char *k = problem_key(e);

        if (k == NULL || !seen_has(seen, k))
            log_event(LOG_WARN, "docker_route_refused", NULL, "container", LOG_STR,
                      e->at.container, "label", LOG_STR, e->at.label, "error", LOG_STR, e->error,
                      LOG_END);
        if (k != NULL && next.v != NULL)
            next.v[next.n++] = k;
        else
            free(k);
    }
    docker_seen_free(seen);
    *seen = next;
}

void docker_seen_free(struct docker_seen *seen)
{
    for (size_t i = 0; i < seen->n; i++)
        free(seen->v[i]);
    free(seen->v);
    seen->v = NULL;
    seen->n = 0;
}
