/*
 * config.c - routes from URLs or a YAML file into struct cfg (cfg_*): the
 * problems found on the way, a new route, freeing.
 *
 * Both sources end in the same place: a route is a listen URL, upstreams and
 * (key, value) strings, and every key goes through one table (keys.c) of
 * {name, setter, offset, compare} rows (nginx's ngx_command_t), so a new
 * option is one row. Keys are written with '-' in URLs and '_' in YAML; the
 * table uses '-'. Every problem is collected, not only the first, and each
 * names its place (the URL, or FILE:LINE), the route and the key.
 */
#define _GNU_SOURCE /* asprintf */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/internal.h"

/* Capacity for n + 1 items in an array of n that grows by doubling: a
 * realloc only when n is 0 or a power of two, so that 2,000 routes or
 * messages cost 11 reallocs, not 2,000 copies of a growing array. */
static void *grow(void *v, size_t n, size_t size)
{
    if (n != 0 && (n & (n - 1)) != 0)
        return v;
    return realloc(v, (n == 0 ? 1 : 2 * n) * size);
}

void cfg_problem(const struct place *at, const char *key, const char *fmt, ...)
{
    char msg[512], head[256];
    char **v = grow(at->errs->msg, at->errs->n, sizeof(char *));
    va_list ap;
    int n;

    struct cfg_error_at *w;

    if (v == NULL)
        return;
    at->errs->msg = v;
    w = grow(at->errs->at, at->errs->n, sizeof(*w));
    if (w == NULL)
        return;
    at->errs->at = w;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Top-level keys (workers, log, ...) and empty inputs have no route. */
    if (at->file && at->route)
        snprintf(head, sizeof(head), "%s:%u: route %s", at->file, at->line, at->route);
    else if (at->file)
        snprintf(head, sizeof(head), "%s:%u", at->file, at->line);
    else if (at->route)
        snprintf(head, sizeof(head), "route '%s'", at->route);
    else
        snprintf(head, sizeof(head), "routes");
    n = key ? asprintf(&v[at->errs->n], "%s: key %s: %s", head, key, msg)
            : asprintf(&v[at->errs->n], "%s: %s", head, msg);
    if (n < 0)
        return;
    w += at->errs->n;
    memset(w, 0, sizeof(*w));
    w->line = at->file ? at->line : 0;
    /* Without memory for the parts, the message alone still says it all. */
    w->file = at->file ? strdup(at->file) : NULL;
    w->route = at->route ? strdup(at->route) : NULL;
    w->key = key ? strdup(key) : NULL;
    w->error = strdup(msg);
    at->errs->n++;
}

static void route_defaults(struct route_cfg *r)
{
    r->tlvs_mode = TLVS_PASS;
    r->trusted_all = 1;
    r->allow_all = 1;
    r->connect_timeout_ms = 5000;
    r->header_timeout_ms = 5000;
}

struct route_cfg *cfg_route_new(struct cfg *c)
{
    struct route_cfg *v = grow(c->routes, c->nroutes, sizeof(*v));

    if (v == NULL)
        return NULL;
    c->routes = v;
    memset(&v[c->nroutes], 0, sizeof(v[0]));
    route_defaults(&v[c->nroutes]);
    return &v[c->nroutes++];
}

void cfg_free(struct cfg *c)
{
    for (size_t i = 0; i < c->nroutes; i++) {
        struct route_cfg *r = &c->routes[i];
        for (size_t k = 0; k < CFG_NKEYS; k++) {
            if (cfg_keys[k].clear != NULL)
                cfg_keys[k].clear(r, &cfg_keys[k]);
        }
        free(r->name);
    }
    free(c->routes);
    free(c->metrics);
    free(c->docker);
    memset(c, 0, sizeof(*c));
}

void cfg_errors_free(struct cfg_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        free(errs->msg[i]);
        if (errs->at != NULL) {
            free(errs->at[i].file);
            free(errs->at[i].route);
            free(errs->at[i].key);
            free(errs->at[i].error);
        }
    }
    free(errs->msg);
    free(errs->at);
    errs->msg = NULL;
    errs->at = NULL;
    errs->n = 0;
}
