/*
 * docker_json.c - the Docker Engine API's JSON into struct docker_list and
 * struct docker_event (docker_json_*, docker_stream_*); see docker_json.h.
 *
 * json-c (Debian's libjson-c) does the JSON: its tokener is incremental,
 * which is what a stream of event objects arriving in arbitrary chunks
 * needs, and it takes a nesting limit. What is checked here is the shape:
 * every field ppfwd reads must have the type the API documents, and a
 * string must not hide a NUL, since labels become routes and addresses
 * become URLs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "provider/docker_json.h"

/* The string member key of o: NULL when absent or null; *bad set when it
 * is there with another type or holds a NUL. */
static const char *get_str(const json_object *o, const char *key, int *bad)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || v == NULL)
        return NULL;
    if (!json_object_is_type(v, json_type_string) ||
        strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
        *bad = 1;
        return NULL;
    }
    return json_object_get_string(v);
}

/* The member key of o if it has type t; NULL when absent or null; *bad
 * set when it has another type. */
static json_object *get_typed(const json_object *o, const char *key, json_type t, int *bad)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || v == NULL)
        return NULL;
    if (!json_object_is_type(v, t)) {
        *bad = 1;
        return NULL;
    }
    return v;
}

static int label_cmp(const void *a, const void *b)
{
    return strcmp(((const struct docker_label *)a)->key, ((const struct docker_label *)b)->key);
}

static int container_cmp(const void *a, const void *b)
{
    const struct docker_container *x = a, *y = b;
    int rc = strcmp(x->name, y->name);

    return rc != 0 ? rc : strcmp(x->id, y->id);
}

/* Labels under DOCKER_LABEL_PREFIX; every label value must be a string. */
static int read_labels(json_object *labels, struct docker_container *c)
{
    size_t plen = strlen(DOCKER_LABEL_PREFIX);

    json_object_object_foreach(labels, key, val)
    {
        struct docker_label *v;
        int bad = 0;

        if (!json_object_is_type(val, json_type_string) ||
            strlen(json_object_get_string(val)) != (size_t)json_object_get_string_len(val))
            bad = 1;
        if (bad)
            return -DOCKER_ESHAPE;
        if (strncmp(key, DOCKER_LABEL_PREFIX, plen) != 0)
            continue;
        v = realloc(c->labels, (c->nlabels + 1) * sizeof(*v));
        if (v == NULL)
            return -DOCKER_ENOMEM;
        c->labels = v;
        v[c->nlabels].key = strdup(key);
        v[c->nlabels].value = strdup(json_object_get_string(val));
        c->nlabels++;
        if (v[c->nlabels - 1].key == NULL || v[c->nlabels - 1].value == NULL)
            return -DOCKER_ENOMEM;
    }
    if (c->nlabels > 1)
        qsort(c->labels, c->nlabels, sizeof(c->labels[0]), label_cmp);
    return 0;
}

/* An address only when it is one: it goes into a route URL. */
static void set_addr(struct docker_container *c, const char *s)
{
    struct in6_addr a6;
    struct in_addr a4;

    if (s == NULL || c->addr[0] != '\0')
        return;
    if (inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1)
        snprintf(c->addr, sizeof(c->addr), "%s", s);
}

/* The first network (in the API's order) that gives the container an
 * address: its IPv4 one, else its IPv6 one. */
static int read_networks(const json_object *ns, struct docker_container *c)
{
    int bad = 0;
    json_object *nets = ns ? get_typed(ns, "Networks", json_type_object, &bad) : NULL;

    if (nets == NULL)
        return bad ? -DOCKER_ESHAPE : 0;
    json_object_object_foreach(nets, name, net)
    {
        (void)name;
        if (net == NULL)
            continue;
        if (!json_object_is_type(net, json_type_object))
            return -DOCKER_ESHAPE;
        set_addr(c, get_str(net, "IPAddress", &bad));
        set_addr(c, get_str(net, "GlobalIPv6Address", &bad));
        if (bad)
            return -DOCKER_ESHAPE;
    }
    return 0;
}

static void container_free(struct docker_container *c)
{
    for (size_t i = 0; i < c->nlabels; i++) {
        free(c->labels[i].key);
        free(c->labels[i].value);
    }
    free(c->labels);
    free(c->id);
    free(c->name);
}

/* Names is ["/name", ...]; a container without one is named by its id. */
static int read_name(const json_object *o, struct docker_container *c)
{
    int bad = 0;
    json_object *names = get_typed(o, "Names", json_type_array, &bad), *n0;
    const char *s = NULL;

    if (names != NULL && json_object_array_length(names) > 0) {
        n0 = json_object_array_get_idx(names, 0);
        if (n0 == NULL || !json_object_is_type(n0, json_type_string))
            return -DOCKER_ESHAPE;
        s = json_object_get_string(n0);
        s += *s == '/';
    }
    if (bad)
        return -DOCKER_ESHAPE;
    c->name = s != NULL && *s != '\0' ? strdup(s) : strndup(c->id, 12);
    return c->name ? 0 : -DOCKER_ENOMEM;
}

static int read_container(const json_object *o, struct docker_container *c)
{
    int bad = 0, rc;
    const char *id, *state, *status;
    json_object *labels, *ns;

    if (!json_object_is_type(o, json_type_object))
        return -DOCKER_ESHAPE;
    id = get_str(o, "Id", &bad);
    state = get_str(o, "State", &bad);
    status = get_str(o, "Status", &bad);
    labels = get_typed(o, "Labels", json_type_object, &bad);
    ns = get_typed(o, "NetworkSettings", json_type_object, &bad);
    if (bad || id == NULL || *id == '\0')
        return -DOCKER_ESHAPE;
    if ((c->id = strdup(id)) == NULL)
        return -DOCKER_ENOMEM;
    /* API versions before 1.23 had no State, only "Up 5 minutes". */
    c->running = state ? strcmp(state, "running") == 0 : status && strncmp(status, "Up ", 3) == 0;
    if ((rc = read_name(o, c)) != 0 || (labels && (rc = read_labels(labels, c)) != 0))
        return rc;
    return read_networks(ns, c);
}

static int read_list(const json_object *arr, struct docker_list *out)
{
    size_t n;
    int rc;

    if (!json_object_is_type(arr, json_type_array))
        return -DOCKER_ESHAPE;
    n = json_object_array_length(arr);
    out->v = calloc(n ? n : 1, sizeof(*out->v));
    if (out->v == NULL)
        return -DOCKER_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        rc = read_container(json_object_array_get_idx(arr, i), &out->v[out->n++]);
        if (rc != 0)
            return rc;
    }
    if (out->n > 1)
        qsort(out->v, out->n, sizeof(out->v[0]), container_cmp);
    return 0;
}

/* Only whitespace may follow the value. */
static int only_space(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return 0;
    }
    return 1;
}

int docker_json_list(const char *buf, size_t len, struct docker_list *out)
{
    json_tokener *tok;
    json_object *root;
    int rc;

    memset(out, 0, sizeof(*out));
    if (len > DOCKER_LIST_MAX)
        return -DOCKER_ETOOBIG;
    if ((tok = json_tokener_new_ex(DOCKER_JSON_DEPTH)) == NULL)
        return -DOCKER_ENOMEM;
    root = json_tokener_parse_ex(tok, buf, (int)len);
    if (root == NULL || !only_space(buf + json_tokener_get_parse_end(tok),
                                    len - json_tokener_get_parse_end(tok)))
        rc = -DOCKER_EJSON;
    else
        rc = read_list(root, out);
    json_object_put(root);
    json_tokener_free(tok);
    if (rc != 0)
        docker_list_free(out);
    return rc;
}

void docker_list_free(struct docker_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        container_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* ---- events ------------------------------------------------------------------ */

static void copy(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

int docker_json_event(const void *obj, struct docker_event *ev)
{
    static const char *const actions[] = {"create", "start",  "die",    "destroy",
                                          "remove", "rename", "update", NULL};
    const json_object *o = obj;
    json_object *actor, *attrs = NULL;
    const char *type, *action, *id;
    int bad = 0;

    memset(ev, 0, sizeof(*ev));
    if (!json_object_is_type(o, json_type_object))
        return -DOCKER_ESHAPE;
    /* "Type" and "Action" since API 1.22; older daemons wrote only "status". */
    type = get_str(o, "Type", &bad);
    action = get_str(o, "Action", &bad);
    action = action ? action : get_str(o, "status", &bad);
    type = type ? type : (action && get_str(o, "id", &bad) ? "container" : NULL);
    actor = get_typed(o, "Actor", json_type_object, &bad);
    if (actor != NULL)
        attrs = get_typed(actor, "Attributes", json_type_object, &bad);
    id = actor ? get_str(actor, "ID", &bad) : NULL;
    id = id ? id : get_str(o, "id", &bad);
    if (bad || type == NULL || action == NULL)
        return -DOCKER_ESHAPE;
    copy(ev->type, sizeof(ev->type), type);
    copy(ev->action, sizeof(ev->action), action);
    copy(ev->id, sizeof(ev->id), id);
    copy(ev->name, sizeof(ev->name), attrs ? get_str(attrs, "name", &bad) : NULL);
    if (strcmp(type, "container") != 0)
        return 0;
    for (int i = 0; actions[i] != NULL; i++) {
        if (strcmp(action, actions[i]) == 0)
            return 1;
    }
    return 0;
}

/* ---- the event stream ---------------------------------------------------------- */

int docker_stream_init(struct docker_stream *s)
{
    s->used = 0;
    s->tok = json_tokener_new_ex(DOCKER_JSON_DEPTH);
    return s->tok ? 0 : -DOCKER_ENOMEM;
}

void docker_stream_reset(struct docker_stream *s)
{
    json_tokener_reset(s->tok);
    s->used = 0;
}

void docker_stream_free(struct docker_stream *s)
{
    if (s->tok != NULL)
        json_tokener_free(s->tok);
    s->tok = NULL;
}

/* Whitespace between objects is skipped here rather than fed, so that it
 * never counts against an object's cap. */
int docker_stream_feed(struct docker_stream *s, const char *p, size_t len, docker_stream_cb *cb,
                       void *arg)
{
    const char *end = p + len;

    while (p < end) {
        size_t room = DOCKER_EVENT_MAX - s->used, n = (size_t)(end - p), took;
        json_object *o;
        int rc;

        if (s->used == 0 && only_space(p, 1)) {
            p++;
            continue;
        }
        n = n < room ? n : room;
        o = json_tokener_parse_ex(s->tok, p, (int)n);
        if (o == NULL && json_tokener_get_error(s->tok) != json_tokener_continue)
            return -DOCKER_EJSON;
        if (o == NULL) {
            s->used += n;
            p += n;
            if (s->used >= DOCKER_EVENT_MAX)
                return -DOCKER_ETOOBIG;
            continue;
        }
        took = json_tokener_get_parse_end(s->tok);
        p += took;
        json_tokener_reset(s->tok);
        s->used = 0;
        rc = json_object_is_type(o, json_type_object) ? cb(arg, o) : -DOCKER_ESHAPE;
        json_object_put(o);
        if (rc < 0)
            return rc;
    }
    return 0;
}
