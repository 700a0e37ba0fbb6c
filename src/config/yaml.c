/*
 * yaml.c - the YAML config file (libyaml): read within its limits, then
 * loaded into routes through the key table.
 *
 * A config file can be written by someone else (a config manager, a
 * template): before libyaml builds the document, one pass over its events
 * checks what the document would cost (CFG_FILE_MAX, CFG_DEPTH_MAX and the
 * nodes added by aliases, see config.h). Without these, a 65 KB file of
 * nested aliases made the routes walk 201 MB worth of nodes, and a 200 KB
 * file of nested brackets kept libyaml busy for 23 s.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "config/config.h"
#include "config/internal.h"
#include "util/addr.h"
#include "util/log.h"

/* ---- limits ----------------------------------------------------------------- */

struct anchor {
    char *name;
    uint64_t nodes; /* the nodes of what it names, its aliases expanded */
};

/* The event pass: open collections and the anchors defined so far. */
struct cost {
    uint64_t sizes[CFG_DEPTH_MAX + 1]; /* nodes of each open collection; [0]: the stream */
    char *anchors_of[CFG_DEPTH_MAX + 1];
    int depth;
    struct anchor *anchors;
    size_t nanchors;
    uint64_t direct;  /* nodes written out */
    uint64_t aliased; /* nodes added by aliases */
};

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* A later anchor of the same name replaces the earlier one, as in YAML.
 * Returns 0, or -1 after reporting one anchor too many (or no memory). */
static int anchor_set(struct cost *k, const yaml_char_t *name, uint64_t nodes,
                      const struct place *at)
{
    struct anchor *v;

    for (size_t i = k->nanchors; i-- > 0;) {
        if (strcmp(k->anchors[i].name, (const char *)name) == 0) {
            k->anchors[i].nodes = nodes;
            return 0;
        }
    }
    if (k->nanchors == CFG_ANCHORS_MAX) {
        cfg_problem(at, NULL, "more than %d anchors (&NAME), the limit", CFG_ANCHORS_MAX);
        return -1;
    }
    v = realloc(k->anchors, (k->nanchors + 1) * sizeof(*v));
    if (v == NULL) {
        cfg_problem(at, NULL, "out of memory");
        return -1;
    }
    k->anchors = v;
    v[k->nanchors].name = strdup((const char *)name);
    v[k->nanchors].nodes = nodes;
    if (v[k->nanchors].name == NULL) {
        cfg_problem(at, NULL, "out of memory");
        return -1;
    }
    k->nanchors++;
    return 0;
}

static uint64_t anchor_nodes(const struct cost *k, const yaml_char_t *name)
{
    for (size_t i = k->nanchors; i-- > 0;) {
        if (strcmp(k->anchors[i].name, (const char *)name) == 0)
            return k->anchors[i].nodes;
    }
    return 0; /* undefined: the loader reports it */
}

/* The most nodes aliases may add to a document of `direct` nodes. */
static uint64_t alias_budget(uint64_t direct)
{
    uint64_t n = direct > UINT64_MAX / CFG_ALIAS_RATIO ? UINT64_MAX : direct * CFG_ALIAS_RATIO;

    return n > CFG_ALIAS_NODES_MIN ? n : CFG_ALIAS_NODES_MIN;
}

/* Accounts one event. Returns 0, or -1 after reporting a limit passed. */
static int cost_event(struct cost *k, const yaml_event_t *e, size_t file_len,
                      const struct place *at)
{
    struct place p = *at;
    const yaml_char_t *a;
    uint64_t n;

    p.line = (unsigned)e->start_mark.line + 1;
    switch (e->type) {
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (k->depth == CFG_DEPTH_MAX) {
            cfg_problem(&p, NULL, "nested deeper than %d levels (the limit; ppfwd needs 4)",
                        CFG_DEPTH_MAX);
            return -1;
        }
        k->direct++;
        k->depth++;
        k->sizes[k->depth] = 1;
        a = e->type == YAML_SEQUENCE_START_EVENT ? e->data.sequence_start.anchor
                                                 : e->data.mapping_start.anchor;
        k->anchors_of[k->depth] = a != NULL ? strdup((const char *)a) : NULL;
        if (a != NULL && k->anchors_of[k->depth] == NULL) {
            cfg_problem(&p, NULL, "out of memory");
            return -1;
        }
        return 0;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (k->depth == 0)
            return 0;
        n = k->sizes[k->depth];
        if (k->anchors_of[k->depth] != NULL &&
            anchor_set(k, (const yaml_char_t *)k->anchors_of[k->depth], n, &p) != 0)
            return -1;
        free(k->anchors_of[k->depth]);
        k->anchors_of[k->depth--] = NULL;
        break;
    case YAML_SCALAR_EVENT:
        k->direct++;
        n = 1;
        if (e->data.scalar.anchor != NULL && anchor_set(k, e->data.scalar.anchor, 1, &p) != 0)
            return -1;
        break;
    case YAML_ALIAS_EVENT:
        n = anchor_nodes(k, e->data.alias.anchor);
        k->aliased = sat_add(k->aliased, n);
        /* A file of file_len bytes holds fewer than file_len nodes: past
         * this budget, no end of the file can make the document pass. */
        if (k->aliased > alias_budget(file_len)) {
            cfg_problem(&p, NULL,
                        "aliases expand to more than %llu nodes (the limit: %d, or %d times "
                        "the nodes written out)",
                        (unsigned long long)alias_budget(file_len), CFG_ALIAS_NODES_MIN,
                        CFG_ALIAS_RATIO);
            return -1;
        }
        break;
    default:
        return 0;
    }
    k->sizes[k->depth] = sat_add(k->sizes[k->depth], n);
    return 0;
}

/* One pass over the events of buf: refuses a document nested too deep or
 * whose aliases add too many nodes. Syntax errors are left to the loader.
 * Returns 0 or -1 (reported). */
static int yaml_check_cost(const unsigned char *buf, size_t len, const struct place *at)
{
    struct cost k = {0};
    yaml_parser_t parser;
    yaml_event_t e;
    int rc = 0, done = 0;

    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, buf, len);
    while (!done && rc == 0) {
        if (!yaml_parser_parse(&parser, &e))
            break;
        done = e.type == YAML_STREAM_END_EVENT;
        rc = cost_event(&k, &e, len, at);
        yaml_event_delete(&e);
    }
    if (rc == 0 && k.aliased > alias_budget(k.direct)) {
        struct place p = *at;
        p.line = 1;
        cfg_problem(&p, NULL,
                    "aliases expand to %llu nodes, more than %llu (the limit: %d, or %d times "
                    "the %llu nodes written out)",
                    (unsigned long long)k.aliased, (unsigned long long)alias_budget(k.direct),
                    CFG_ALIAS_NODES_MIN, CFG_ALIAS_RATIO, (unsigned long long)k.direct);
        rc = -1;
    }
    for (int i = 1; i <= k.depth; i++)
        free(k.anchors_of[i]);
    for (size_t i = 0; i < k.nanchors; i++)
        free(k.anchors[i].name);
    free(k.anchors);
    yaml_parser_delete(&parser);
    return rc;
}

/* Reads the whole file, at most CFG_FILE_MAX bytes, into *buf (the caller
 * frees it). Returns 0 or -1 (reported). */
static int read_file(const char *path, unsigned char **buf, size_t *len, struct place *at)
{
    unsigned char *b = malloc(CFG_FILE_MAX + 1);
    size_t n = 0;
    ssize_t got = 1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *buf = NULL;
    if (fd == -1 || b == NULL) {
        cfg_problem(at, NULL, "cannot open: %s", strerror(b == NULL ? ENOMEM : errno));
        goto fail;
    }
    /* One byte more than the limit tells a file of exactly the limit from
     * a bigger one, without trusting st_size (a pipe, a file being written). */
    while (n <= CFG_FILE_MAX && got != 0) {
        got = read(fd, b + n, CFG_FILE_MAX + 1 - n);
        if (got == -1 && errno == EINTR)
            continue;
        if (got == -1) {
            cfg_problem(at, NULL, "cannot read: %s", strerror(errno));
            goto fail;
        }
        n += (size_t)got;
    }
    if (n > CFG_FILE_MAX) {
        cfg_problem(at, NULL, "larger than %d bytes (1 MiB, the limit for a config file)",
                    CFG_FILE_MAX);
        goto fail;
    }
    close(fd);
    *buf = b;
    *len = n;
    return 0;
fail:
    if (fd != -1)
        close(fd);
    free(b);
    return -1;
}

/* ---- the document ----------------------------------------------------------- */

static const char *scalar(yaml_document_t *d, yaml_node_t *n)
{
    (void)d;
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A scalar, or a sequence of scalars joined with commas (lists). */
static char *joined(yaml_document_t *d, yaml_node_t *n)
{
    char *out = NULL;
    size_t len = 0;

    if (n->type == YAML_SCALAR_NODE)
        return strdup(scalar(d, n));
    if (n->type != YAML_SEQUENCE_NODE)
        return NULL;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const char *s = scalar(d, yaml_document_get_node(d, *it));
        char *o;
        if (s == NULL || (o = realloc(out, len + strlen(s) + 2)) == NULL) {
            free(out);
            return NULL;
        }
        out = o;
        len += (size_t)sprintf(out + len, "%s%s", len ? "," : "", s);
    }
    return out ? out : strdup("");
}

static unsigned line_of(const yaml_node_t *n)
{
    return (unsigned)n->start_mark.line + 1;
}

/* libyaml keeps both of two equal keys in a mapping; the second would
 * silently override the first, so it is refused. */
static int dup_key(yaml_document_t *d, const yaml_node_t *m, const yaml_node_pair_t *p)
{
    const char *k = scalar(d, yaml_document_get_node(d, p->key)), *o;

    for (const yaml_node_pair_t *q = m->data.mapping.pairs.start; k && q < p; q++) {
        o = scalar(d, yaml_document_get_node(d, q->key));
        if (o != NULL && strcmp(k, o) == 0)
            return 1;
    }
    return 0;
}

/* One "key: value" of a route; lists are joined with commas, as in URLs. */
static void yaml_route_key(struct route_cfg *r, struct place *at, yaml_document_t *d,
                           const yaml_node_t *m, const yaml_node_pair_t *p)
{
    yaml_node_t *kn = yaml_document_get_node(d, p->key);
    const char *k = scalar(d, kn);
    char *v = joined(d, yaml_document_get_node(d, p->value));

    yaml_node_t *vn = yaml_document_get_node(d, p->value);
    const struct key *key = k ? cfg_key_find(k) : NULL;

    at->line = line_of(kn);
    if (k == NULL || v == NULL) {
        cfg_problem(at, k, "expected a value or a list of values");
    } else if (dup_key(d, m, p)) {
        cfg_problem(at, k, "given twice");
    } else if (key != NULL && key->repeatable && vn->type == YAML_SEQUENCE_NODE) {
        /* Each item is one value, commas and all (add_tlv: a text TLV). */
        for (yaml_node_item_t *it = vn->data.sequence.items.start;
             it < vn->data.sequence.items.top; it++) {
            const char *item = scalar(d, yaml_document_get_node(d, *it));
            if (item == NULL)
                cfg_problem(at, k, "expected a list of values");
            else
                cfg_key_set(r, at, k, item);
        }
    } else {
        cfg_key_set(r, at, k, v);
    }
    free(v);
}

static void yaml_route(struct cfg *c, struct place *at, yaml_document_t *d, const char *name,
                       yaml_node_t *m)
{
    unsigned key_lines[CFG_NKEYS] = {0};
    struct route_cfg *r = cfg_route_new(c);
    const struct key *listen = cfg_key_find("listen");

    if (r == NULL)
        return;
    r->name = strdup(name);
    at->route = name;
    at->line = line_of(m);
    r->line = at->line;
    if (m->type != YAML_MAPPING_NODE) {
        cfg_problem(at, NULL, "expected a mapping of keys (listen, upstream, ...)");
        return;
    }
    at->key_lines = key_lines;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++)
        yaml_route_key(r, at, d, m, p);
    at->line = line_of(m);
    if (r->listen == NULL)
        cfg_problem(at, "listen", "missing (expected PROTO://[BIND]:PORT)");
    else
        r->line = key_lines[listen - cfg_keys];
    cfg_route_check(r, at);
    at->key_lines = NULL;
}

static void yaml_routes(struct cfg *c, struct place *at, yaml_document_t *d, yaml_node_t *m)
{
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(d, p->key);
        const char *name = scalar(d, kn);

        at->line = line_of(kn);
        at->route = name ? name : "?";
        if (name == NULL || *name == '\0')
            cfg_problem(at, NULL, "expected a route name");
        else if (dup_key(d, m, p))
            cfg_problem(at, NULL, "a route of this name is already defined");
        else
            yaml_route(c, at, d, name, yaml_document_get_node(d, p->value));
        at->route = NULL;
    }
}

static void yaml_log(struct cfg *c, struct place *at, yaml_document_t *d, yaml_node_t *m)
{
    if (m->type != YAML_MAPPING_NODE) {
        cfg_problem(at, "log", "expected {level: ..., format: ...}");
        return;
    }
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *k = scalar(d, yaml_document_get_node(d, p->key));
        const char *v = scalar(d, yaml_document_get_node(d, p->value));
        int is_level = k && strcmp(k, "level") == 0, is_format = k && strcmp(k, "format") == 0;

        at->line = line_of(yaml_document_get_node(d, p->key));
        if (dup_key(d, m, p))
            cfg_problem(at, k, "given twice");
        else if (is_level && v && log_level_parse(v) >= 0)
            c->log_level = log_level_parse(v);
        else if (is_format && v && (strcmp(v, "text") == 0 || strcmp(v, "json") == 0))
            c->log_format = strcmp(v, "json") == 0 ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT;
        else if (is_level)
            cfg_problem(at, k, "bad value '%s' (expected debug, info, warn, error)", v ? v : "");
        else if (is_format)
            cfg_problem(at, k, "bad value '%s' (expected text, json)", v ? v : "");
        else
            cfg_problem(at, k ? k : "log", "unknown key (expected level, format)");
    }
}

static void yaml_metrics(struct cfg *c, struct place *at, const char *s)
{
    struct sockaddr_storage ss;
    int rc;

    rc = s != NULL ? addr_parse(s, ADDR_PARSE_ANY, &ss) : -ADDR_EHOST;
    if (rc != 0) {
        cfg_problem(at, "metrics", "bad value '%s': %s", s ? s : "", addr_strerror(rc));
        return;
    }
    free(c->metrics);
    c->metrics = strdup(s);
}

static void yaml_top(struct cfg *c, struct place *at, yaml_document_t *d, const char *k,
                     yaml_node_t *v)
{
    const char *s = scalar(d, v);
    unsigned n;

    if (strcmp(k, "log") == 0) {
        yaml_log(c, at, d, v);
    } else if (strcmp(k, "workers") == 0) {
        if (s == NULL || cfg_parse_uint(s, 4096, &n) != 0 || n == 0)
            cfg_problem(at, k, "bad value '%s' (expected 1-4096)", s ? s : "");
        else
            c->workers = (int)n;
    } else if (strcmp(k, "metrics") == 0) {
        yaml_metrics(c, at, s);
    } else if (strcmp(k, "watch") == 0) {
        int b = s != NULL ? cfg_parse_bool(s) : -1;

        if (b < 0)
            cfg_problem(at, k, "bad value '%s' (expected true or false)", s ? s : "");
        else
            c->watch = b;
    } else if (strcmp(k, "docker") == 0) {
        free(c->docker);
        c->docker = NULL;
        if (s == NULL || *s == '\0' || (c->docker = strdup(s)) == NULL)
            cfg_problem(at, k, "expected the API socket, e.g. unix:///var/run/docker.sock");
    } else if (strcmp(k, "drain_timeout") == 0) {
        if (s == NULL || cfg_parse_duration(s, &n) != 0 || n == 0)
            cfg_problem(at, k, "bad value '%s' (expected a duration: 500ms, 10s, 5m, 1h)",
                        s ? s : "");
        else
            c->drain_ms = n;
    } else if (strcmp(k, "routes") == 0) {
        at->routes_seen = 1;
        if (v->type == YAML_MAPPING_NODE)
            yaml_routes(c, at, d, v);
        else
            cfg_problem(at, k, "expected a mapping of named routes");
    } else {
        cfg_problem(at, k, "unknown key (expected log, workers, metrics, watch, docker, "
                            "drain_timeout, routes)");
    }
}

static void yaml_root(struct cfg *c, struct place *at, yaml_document_t *d)
{
    yaml_node_t *root = yaml_document_get_root_node(d);

    at->line = root != NULL ? line_of(root) : 1;
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        cfg_problem(at, NULL, "expected a mapping with 'routes'");
        at->routes_seen = 1;
        return;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(d, p->key);
        const char *k = scalar(d, kn);

        at->line = line_of(kn);
        if (k == NULL)
            cfg_problem(at, NULL, "expected a key");
        else if (dup_key(d, root, p))
            cfg_problem(at, k, "given twice");
        else
            yaml_top(c, at, d, k, yaml_document_get_node(d, p->value));
    }
}

/* Loads the document of buf (after yaml_check_cost). Returns 0, or -1 on a
 * syntax error (reported). */
static int yaml_read(const unsigned char *buf, size_t len, struct cfg *c, struct place *at)
{
    yaml_parser_t parser;
    yaml_document_t doc;

    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        at->line = (unsigned)parser.problem_mark.line + 1;
        cfg_problem(at, NULL, "YAML syntax: %s%s%s", parser.context ? parser.context : "",
                    parser.context ? ": " : "", parser.problem ? parser.problem : "error");
        yaml_parser_delete(&parser);
        return -1;
    }
    yaml_root(c, at, &doc);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return 0;
}

int cfg_load_file(struct cfg *c, const char *path, struct cfg_errors *errs)
{
    struct place at = {errs, path, NULL, 1, NULL, 0, NULL};
    unsigned char *buf;
    size_t len;

    c->log_level = -1;
    c->log_format = -1;
    if (read_file(path, &buf, &len, &at) != 0)
        return -1;
    if (yaml_check_cost(buf, len, &at) == 0 && yaml_read(buf, len, c, &at) == 0) {
        cfg_check_overlaps(c, &at);
        at.line = 1;
        at.route = NULL;
        /* With docker, the routes may all come from containers. */
        if (c->nroutes == 0 && c->docker == NULL && errs->n == 0)
            cfg_problem(&at, "routes", at.routes_seen ? "no route defined" : "missing");
    }
    free(buf);
    return errs->n == 0 ? 0 : -1;
}
