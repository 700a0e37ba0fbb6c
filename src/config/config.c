/*
 * config.c - routes from URLs or a YAML file into struct cfg (cfg_*).
 *
 * Both sources end in the same place: a route is a listen URL, upstreams and
 * (key, value) strings, and every key goes through one table of
 * {name, setter, offset} (nginx's ngx_command_t), so a new option is one
 * row. Keys are written with '-' in URLs and '_' in YAML; the table uses
 * '-'. Every problem is collected, not only the first, and each names its
 * place (the URL, or FILE:LINE), the route and the key.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <yaml.h>

#include "config/config.h"
#include <proxyproto.h>

#include "util/addr.h"
#include "util/log.h"

/* Where a problem is: "route 'URL'" or "FILE:LINE: route NAME". */
struct place {
    struct cfg_errors *errs;
    const char *file; /* NULL for a URL */
    const char *route;
    unsigned line;
    /* The line of each route key given (index in keys[]; 1 in a URL), or
     * 0: a key given twice is refused, and a problem found once the whole
     * route is read is reported at the line of the key that causes it. */
    unsigned *key_lines;
    int routes_seen; /* YAML: the top-level "routes" key was there */
};

static void problem(const struct place *at, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(const struct place *at, const char *key, const char *fmt, ...)
{
    char msg[512], head[256];
    char **v = realloc(at->errs->msg, (at->errs->n + 1) * sizeof(char *));
    va_list ap;
    int n;

    if (v == NULL)
        return;
    at->errs->msg = v;
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
    if (n >= 0)
        at->errs->n++;
}

/* ---- values ---------------------------------------------------------------- */

int cfg_parse_duration(const char *s, unsigned *ms)
{
    static const struct {
        const char *unit;
        unsigned long long mult;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"", 1000}};
    unsigned long long v;
    char *end;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) != 0)
            continue;
        if (v > UINT_MAX / units[i].mult)
            return -EINVAL;
        *ms = (unsigned)(v * units[i].mult);
        return 0;
    }
    return -EINVAL;
}

static int parse_uint(const char *s, unsigned long max, unsigned *out)
{
    unsigned long v;
    char *end;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

/* Resolves "HOST:PORT" or "[V6]:PORT" (an empty HOST is any address, as a
 * passive socket). Returns 0 or a message. */
static const char *resolve(const char *s, int family, int passive, struct sockaddr_storage *out,
                           socklen_t *outlen)
{
    char host[256];
    const char *colon = strrchr(s, ':'), *h = s, *port;
    size_t hlen;
    struct addrinfo hints = {0}, *res;
    unsigned p;

    if (colon == NULL)
        return "expected HOST:PORT";
    port = colon + 1;
    hlen = (size_t)(colon - s);
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    } else if (memchr(s, ':', hlen) != NULL) {
        return "an IPv6 address needs brackets: [ADDR]:PORT";
    }
    if (parse_uint(port, 65535, &p) != 0 || p == 0 || hlen >= sizeof(host))
        return "bad port (expected 1-65535)";
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = (passive ? AI_PASSIVE : 0) | AI_NUMERICSERV;
    if (getaddrinfo(hlen ? host : NULL, port, &hints, &res) != 0)
        return "cannot resolve the host";
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *outlen = res->ai_addrlen;
    freeaddrinfo(res);
    return NULL;
}

/* ---- the key table ---------------------------------------------------------- */

struct key;
typedef const char *key_setter(struct route_cfg *r, const struct key *k, const char *v);

struct key {
    const char *name; /* URL spelling; YAML uses '_' for '-' */
    key_setter *set;
    size_t off;
    const char *const *words; /* enum values, in enum order */
};

#define FIELD(r, k, type) ((type *)(void *)((char *)(r) + (k)->off))

static const char *set_enum(struct route_cfg *r, const struct key *k, const char *v)
{
    for (int i = 0; k->words[i] != NULL; i++) {
        if (strcmp(v, k->words[i]) == 0) {
            *FIELD(r, k, int) = i;
            return NULL;
        }
    }
    return "bad value";
}

static const char *set_bool(struct route_cfg *r, const struct key *k, const char *v)
{
    static const char *const on[] = {"on", "true", "yes", "1", NULL};
    static const char *const off[] = {"off", "false", "no", "0", NULL};

    for (int i = 0; on[i] != NULL; i++) {
        if (strcmp(v, on[i]) == 0 || strcmp(v, off[i]) == 0) {
            *FIELD(r, k, int) = strcmp(v, on[i]) == 0;
            return NULL;
        }
    }
    return "bad value (expected on or off)";
}

/* A timeout of 0 would close everything at once; 0 is refused rather than
 * read as "the default" or "none", which would be a silent surprise. */
static const char *set_timeout(struct route_cfg *r, const struct key *k, const char *v)
{
    unsigned ms;

    if (cfg_parse_duration(v, &ms) != 0 || ms == 0)
        return "bad duration (expected more than 0, e.g. 500ms, 5s, 5m, 1h)";
    *FIELD(r, k, unsigned) = ms;
    return NULL;
}

/* A check interval, or "off" (also 0), the default. */
static const char *set_check(struct route_cfg *r, const struct key *k, const char *v)
{
    if (strcmp(v, "off") == 0)
        v = "0";
    return cfg_parse_duration(v, FIELD(r, k, unsigned)) == 0
               ? NULL
               : "bad duration (expected off or e.g. 500ms, 5s, 5m, 1h)";
}

static const char *set_count(struct route_cfg *r, const struct key *k, const char *v)
{
    unsigned n;

    if (parse_uint(v, 10000000, &n) != 0 || n == 0)
        return "bad value (expected a positive number)";
    *FIELD(r, k, unsigned) = n;
    return NULL;
}

static const char *set_authority(struct route_cfg *r, const struct key *k, const char *v)
{
    (void)k;
    if (*v == '\0' || strlen(v) > PP2_AUTHORITY_MAX)
        return "bad value (expected 1-255 bytes)";
    free(r->authority);
    r->authority = strdup(v);
    return r->authority ? NULL : "out of memory";
}

/* A comma-separated CIDR list; the flag beside it ("all") is cleared. */
static const char *set_cidrs(struct route_cfg *r, const struct key *k, const char *v)
{
    struct cidr_list *l = FIELD(r, k, struct cidr_list);
    char *copy = strdup(v), *save = NULL;
    const char *err = NULL;
    struct cidr c;

    if (copy == NULL)
        return "out of memory";
    cidr_list_free(l);
    for (char *t = strtok_r(copy, ", ", &save); t && !err; t = strtok_r(NULL, ", ", &save)) {
        if (cidr_parse(t, &c) != 0)
            err = "bad network (expected e.g. 10.0.0.0/8, 2001:db8::/32)";
        else if (cidr_list_add(l, &c) != 0)
            err = "out of memory";
    }
    free(copy);
    if (!err && l->n == 0)
        err = "empty list";
    if (!err && k->off == offsetof(struct route_cfg, trusted))
        r->trusted_all = 0;
    if (!err && k->off == offsetof(struct route_cfg, allow))
        r->allow_all = 0;
    return err;
}

static const char *const accept_words[] = {"off", "optional", "required", NULL};
static const char *const send_words[] = {"off", "v1", "v2", NULL};
static const char *const tlvs_words[] = {"drop", "pass", NULL};
static const char *const balance_words[] = {"roundrobin", "leastconn", "source", NULL};

#define KEY(n, s, f, w)                                                                            \
    {                                                                                              \
        n, s, offsetof(struct route_cfg, f), w                                                     \
    }
static const struct key keys[] = {
    KEY("accept-proxy", set_enum, accept_proxy, accept_words),
    KEY("trusted", set_cidrs, trusted, NULL),
    KEY("send-proxy", set_enum, send_proxy, send_words),
    KEY("tlvs", set_enum, tlvs_pass, tlvs_words),
    KEY("authority", set_authority, authority, NULL),
    KEY("unique-id", set_bool, unique_id, NULL),
    KEY("crc32c", set_bool, crc32c, NULL),
    KEY("allow", set_cidrs, allow, NULL),
    KEY("deny", set_cidrs, deny, NULL),
    KEY("max-conns", set_count, max_conns, NULL),
    KEY("balance", set_enum, balance, balance_words),
    KEY("check", set_check, check_ms, NULL),
    KEY("connect-timeout", set_timeout, connect_timeout_ms, NULL),
    KEY("header-timeout", set_timeout, header_timeout_ms, NULL),
    KEY("idle-timeout", set_timeout, idle_timeout_ms, NULL),
    KEY("reply-timeout", set_timeout, reply_timeout_ms, NULL),
};

/* Finds a key by its URL or YAML spelling. */
static const struct key *key_find(const char *name)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *a = keys[i].name, *b = name;
        while (*a && (*a == *b || (*a == '-' && *b == '_')))
            a++, b++;
        if (*a == '\0' && *b == '\0')
            return &keys[i];
    }
    return NULL;
}

static void set_key(struct route_cfg *r, const struct place *at, const char *name, const char *v)
{
    const struct key *k = key_find(name);
    const char *err;

    if (k == NULL) {
        problem(at, name, "unknown key");
        return;
    }
    if (at->key_lines != NULL && at->key_lines[k - keys] != 0) {
        problem(at, name, "given twice");
        return;
    }
    if (at->key_lines != NULL)
        at->key_lines[k - keys] = at->line != 0 ? at->line : 1;
    err = k->set(r, k, v);
    if (err == NULL)
        return;
    if (k->words != NULL) {
        char expect[128] = "";
        for (int i = 0; k->words[i] != NULL; i++)
            snprintf(expect + strlen(expect), sizeof(expect) - strlen(expect), "%s%s",
                     i ? ", " : "", k->words[i]);
        problem(at, name, "%s '%s' (expected %s)", err, v, expect);
    } else {
        problem(at, name, "%s: '%s'", err, v);
    }
}

/* ---- a route: defaults, listen URL, upstreams, checks ---------------------- */

static void route_defaults(struct route_cfg *r)
{
    r->tlvs_pass = 1;
    r->trusted_all = 1;
    r->allow_all = 1;
    r->connect_timeout_ms = 5000;
    r->header_timeout_ms = 5000;
}

/* "PROTO://[BIND]:PORT" */
static void set_listen(struct route_cfg *r, const struct place *at, const char *url, size_t n)
{
    static const struct {
        const char *name;
        enum route_proto proto;
        int family;
    } protos[] = {{"tcp", ROUTE_TCP, AF_UNSPEC}, {"tcp4", ROUTE_TCP, AF_INET},
                  {"tcp6", ROUTE_TCP, AF_INET6}, {"udp", ROUTE_UDP, AF_UNSPEC},
                  {"udp4", ROUTE_UDP, AF_INET},  {"udp6", ROUTE_UDP, AF_INET6}};
    const char *sep = strstr(url, "://");
    char addr[300];
    const char *err;
    size_t i, plen;

    free(r->listen);
    r->listen = strndup(url, n);
    if (sep == NULL || (size_t)(sep - url) > n) {
        problem(at, "listen", "expected PROTO://[BIND]:PORT, got '%.*s'", (int)n, url);
        return;
    }
    plen = (size_t)(sep - url);
    for (i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
        if (strlen(protos[i].name) == plen && strncmp(url, protos[i].name, plen) == 0)
            break;
    }
    if (i == sizeof(protos) / sizeof(protos[0])) {
        problem(at, "listen", "unknown protocol '%.*s' (expected tcp, tcp4, tcp6, udp, udp4, udp6)",
                (int)plen, url);
        return;
    }
    r->proto = protos[i].proto;
    r->family = protos[i].family;
    snprintf(addr, sizeof(addr), "%.*s", (int)(n - plen - 3), sep + 3);
    /* No BIND: every address, dual-stack unless the protocol names one. */
    err = resolve(addr, r->family == AF_INET ? AF_INET : AF_INET6, 1, &r->bind, &r->bindlen);
    if (err != NULL && addr[0] != ':' && r->family == AF_UNSPEC)
        err = resolve(addr, AF_UNSPEC, 1, &r->bind, &r->bindlen);
    if (err != NULL)
        problem(at, "listen", "%s: '%s'", err, addr);
}

static void add_upstream(struct route_cfg *r, const struct place *at, const char *s)
{
    struct upstream_cfg *v = realloc(r->up, (r->nup + 1) * sizeof(*v)), *u;
    const char *err;

    if (v == NULL)
        return;
    r->up = v;
    u = &v[r->nup];
    memset(u, 0, sizeof(*u));
    u->name = strdup(s);
    r->nup++;
    err = resolve(s, AF_UNSPEC, 0, &u->addr, &u->addrlen);
    if (err != NULL)
        problem(at, "upstream", "%s: '%s'", err, s);
}

static void add_upstreams(struct route_cfg *r, const struct place *at, const char *list)
{
    char *copy = strdup(list), *save = NULL;

    if (copy == NULL)
        return;
    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
        add_upstream(r, at, t);
    free(copy);
}

/* A problem found once the whole route is read, reported at the line of the
 * key that causes it and with the spelling of the source ('_' in YAML). */
static void late_problem(const struct place *at, const char *name, const char *msg)
{
    const struct key *k = key_find(name);
    struct place p = *at;
    char yaml[32];

    if (at->file != NULL) {
        if (k != NULL && at->key_lines != NULL && at->key_lines[k - keys] != 0)
            p.line = at->key_lines[k - keys];
        snprintf(yaml, sizeof(yaml), "%s", name);
        for (char *s = yaml; *s; s++)
            *s = *s == '-' ? '_' : *s;
        name = yaml;
    }
    problem(&p, name, "%s", msg);
}

/* What only makes sense together. tlvs=drop alone is not reported: it is
 * also the value a route without send-proxy=v2 behaves as. */
static void route_check(struct route_cfg *r, const struct place *at)
{
    static const char tlv_msg[] = "this TLV is only sent with send-proxy=v2";

    if (r->nup == 0)
        late_problem(at, "upstream", "at least one upstream is needed");
    if (r->proto == ROUTE_UDP && r->send_proxy == SEND_PROXY_V1)
        late_problem(at, "send-proxy", "v1 cannot carry UDP (use v2)");
    if (r->send_proxy != SEND_PROXY_V2 && r->authority)
        late_problem(at, "authority", tlv_msg);
    if (r->send_proxy != SEND_PROXY_V2 && r->unique_id)
        late_problem(at, "unique-id", tlv_msg);
    if (r->send_proxy != SEND_PROXY_V2 && r->crc32c)
        late_problem(at, "crc32c", tlv_msg);
    if (r->proto == ROUTE_TCP && r->reply_timeout_ms != 0)
        late_problem(at, "reply-timeout", "means nothing on a TCP route (UDP only)");
    if (r->idle_timeout_ms == 0)
        r->idle_timeout_ms = r->proto == ROUTE_UDP ? 300000 : 3600000;
    if (r->proto == ROUTE_UDP && r->reply_timeout_ms == 0)
        r->reply_timeout_ms = 30000; /* conntrack's timeout for unreplied UDP */
}

static struct route_cfg *route_new(struct cfg *c)
{
    struct route_cfg *v = realloc(c->routes, (c->nroutes + 1) * sizeof(*v));

    if (v == NULL)
        return NULL;
    c->routes = v;
    memset(&v[c->nroutes], 0, sizeof(v[0]));
    route_defaults(&v[c->nroutes]);
    return &v[c->nroutes++];
}

/* The port of a wildcard listener that takes IPv4 traffic: 0.0.0.0, or the
 * [::] of a tcp/udp route (dual-stack, IPV6_V6ONLY off). 0 otherwise. */
static in_port_t any_v4_port(const struct route_cfg *r)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)&r->bind;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)&r->bind;

    if (r->bind.ss_family == AF_INET && sin->sin_addr.s_addr == htonl(INADDR_ANY))
        return sin->sin_port;
    if (r->bind.ss_family == AF_INET6 && r->family == AF_UNSPEC &&
        IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
        return sin6->sin6_port;
    return 0;
}

/* Two routes on one socket address would both bind it through SO_REUSEPORT
 * and silently share its traffic; so would 0.0.0.0:P and a dual-stack [::]:P.
 * (A specific address beside a wildcard on the same port is allowed: the
 * kernel gives its traffic to the more specific one, as nginx does.) */
static void check_overlap(const struct cfg *c, const struct route_cfg *r, const struct place *at)
{
    for (const struct route_cfg *b = c->routes; b < r; b++) {
        if (r->bindlen == 0 || b->proto != r->proto)
            continue;
        if ((b->bindlen == r->bindlen && memcmp(&b->bind, &r->bind, r->bindlen) == 0) ||
            (any_v4_port(r) != 0 && any_v4_port(r) == any_v4_port(b)))
            problem(at, "listen", "same address as route %s", b->name);
    }
}

/* ---- URLs ------------------------------------------------------------------- */

/* PROTO://[BIND]:PORT/UPSTREAM[,UPSTREAM...][?KEY=VALUE&KEY=VALUE...] */
static void url_route(struct cfg *c, struct cfg_errors *errs, const char *url)
{
    struct route_cfg *r = route_new(c);
    unsigned key_lines[sizeof(keys) / sizeof(keys[0])] = {0};
    struct place at = {errs, NULL, url, 0, key_lines, 0};
    const char *sep = strstr(url, "://"), *slash, *q;
    char *ups, *query, *save = NULL;

    if (r == NULL)
        return;
    r->name = strdup(url);
    slash = sep ? strchr(sep + 3, '/') : NULL;
    if (slash == NULL) {
        problem(&at, NULL, "expected PROTO://[BIND]:PORT/UPSTREAM[?KEY=VALUE&...]");
        return;
    }
    set_listen(r, &at, url, (size_t)(slash - url));
    q = strchr(slash, '?');
    ups = strndup(slash + 1, q ? (size_t)(q - slash - 1) : strlen(slash + 1));
    add_upstreams(r, &at, ups ? ups : "");
    free(ups);
    query = q ? strdup(q + 1) : NULL;
    for (char *kv = query ? strtok_r(query, "&", &save) : NULL; kv;
         kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq == NULL) {
            problem(&at, kv, "expected KEY=VALUE");
            continue;
        }
        *eq = '\0';
        set_key(r, &at, kv, eq + 1);
    }
    free(query);
    route_check(r, &at);
    check_overlap(c, r, &at);
}

static void cfg_init(struct cfg *c)
{
    c->log_level = -1;
    c->log_format = -1;
}

int cfg_from_urls(struct cfg *c, char *const *urls, int n, struct cfg_errors *errs)
{
    struct place at = {errs, NULL, NULL, 0, NULL, 0};

    cfg_init(c);
    for (int i = 0; i < n; i++)
        url_route(c, errs, urls[i]);
    if (n == 0)
        problem(&at, NULL, "no route given");
    return errs->n == 0 ? 0 : -1;
}

/* ---- YAML ------------------------------------------------------------------- */

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

    at->line = line_of(kn);
    if (k == NULL || v == NULL)
        problem(at, k, "expected a value or a list of values");
    else if (dup_key(d, m, p))
        problem(at, k, "given twice");
    else if (strcmp(k, "listen") == 0)
        set_listen(r, at, v, strlen(v));
    else if (strcmp(k, "upstream") == 0)
        add_upstreams(r, at, v);
    else
        set_key(r, at, k, v);
    free(v);
}

static void yaml_route(struct cfg *c, struct place *at, yaml_document_t *d, const char *name,
                       yaml_node_t *m)
{
    unsigned key_lines[sizeof(keys) / sizeof(keys[0])] = {0}, listen_line = 0;
    struct route_cfg *r = route_new(c);

    if (r == NULL)
        return;
    r->name = strdup(name);
    at->route = name;
    at->line = line_of(m);
    if (m->type != YAML_MAPPING_NODE) {
        problem(at, NULL, "expected a mapping of keys (listen, upstream, ...)");
        return;
    }
    at->key_lines = key_lines;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_route_key(r, at, d, m, p);
        if (listen_line == 0 && r->listen != NULL)
            listen_line = at->line;
    }
    at->line = line_of(m);
    if (r->listen == NULL)
        problem(at, "listen", "missing (expected PROTO://[BIND]:PORT)");
    route_check(r, at);
    at->key_lines = NULL;
    at->line = listen_line;
    check_overlap(c, r, at);
}

static void yaml_routes(struct cfg *c, struct place *at, yaml_document_t *d, yaml_node_t *m)
{
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(d, p->key);
        const char *name = scalar(d, kn);

        at->line = line_of(kn);
        at->route = name ? name : "?";
        if (name == NULL || *name == '\0')
            problem(at, NULL, "expected a route name");
        else if (dup_key(d, m, p))
            problem(at, NULL, "a route of this name is already defined");
        else
            yaml_route(c, at, d, name, yaml_document_get_node(d, p->value));
        at->route = NULL;
    }
}

static void yaml_log(struct cfg *c, struct place *at, yaml_document_t *d, yaml_node_t *m)
{
    if (m->type != YAML_MAPPING_NODE) {
        problem(at, "log", "expected {level: ..., format: ...}");
        return;
    }
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *k = scalar(d, yaml_document_get_node(d, p->key));
        const char *v = scalar(d, yaml_document_get_node(d, p->value));
        int is_level = k && strcmp(k, "level") == 0, is_format = k && strcmp(k, "format") == 0;

        at->line = line_of(yaml_document_get_node(d, p->key));
        if (dup_key(d, m, p))
            problem(at, k, "given twice");
        else if (is_level && v && log_level_parse(v) >= 0)
            c->log_level = log_level_parse(v);
        else if (is_format && v && (strcmp(v, "text") == 0 || strcmp(v, "json") == 0))
            c->log_format = strcmp(v, "json") == 0 ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT;
        else if (is_level)
            problem(at, k, "bad value '%s' (expected debug, info, warn, error)", v ? v : "");
        else if (is_format)
            problem(at, k, "bad value '%s' (expected text, json)", v ? v : "");
        else
            problem(at, k ? k : "log", "unknown key (expected level, format)");
    }
}

static void yaml_metrics(struct cfg *c, struct place *at, const char *s)
{
    struct sockaddr_storage ss;
    int rc;

    rc = s != NULL ? addr_parse(s, 0, &ss) : -ADDR_EHOST;
    if (rc != 0) {
        problem(at, "metrics", "bad value '%s': %s", s ? s : "", addr_strerror(rc));
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
        if (s == NULL || parse_uint(s, 1024, &n) != 0 || n == 0)
            problem(at, k, "bad value '%s' (expected 1-1024)", s ? s : "");
        else
            c->workers = (int)n;
    } else if (strcmp(k, "metrics") == 0) {
        yaml_metrics(c, at, s);
    } else if (strcmp(k, "routes") == 0) {
        at->routes_seen = 1;
        if (v->type == YAML_MAPPING_NODE)
            yaml_routes(c, at, d, v);
        else
            problem(at, k, "expected a mapping of named routes");
    } else {
        problem(at, k, "unknown key (expected log, workers, metrics, routes)");
    }
}

static void yaml_root(struct cfg *c, struct place *at, yaml_document_t *d)
{
    yaml_node_t *root = yaml_document_get_root_node(d);

    at->line = root != NULL ? line_of(root) : 1;
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        problem(at, NULL, "expected a mapping with 'routes'");
        at->routes_seen = 1;
        return;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(d, p->key);
        const char *k = scalar(d, kn);

        at->line = line_of(kn);
        if (k == NULL)
            problem(at, NULL, "expected a key");
        else if (dup_key(d, root, p))
            problem(at, k, "given twice");
        else
            yaml_top(c, at, d, k, yaml_document_get_node(d, p->value));
    }
}

static int yaml_read(FILE *fp, struct cfg *c, struct place *at)
{
    yaml_parser_t parser;
    yaml_document_t doc;

    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, fp);
    if (!yaml_parser_load(&parser, &doc)) {
        at->line = (unsigned)parser.problem_mark.line + 1;
        problem(at, NULL, "YAML syntax: %s%s%s", parser.context ? parser.context : "",
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
    struct place at = {errs, path, NULL, 1, NULL, 0};
    FILE *fp = fopen(path, "r");

    cfg_init(c);
    if (fp == NULL) {
        problem(&at, NULL, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (yaml_read(fp, c, &at) == 0 && c->nroutes == 0 && errs->n == 0) {
        at.line = 1;
        problem(&at, "routes", at.routes_seen ? "no route defined" : "missing");
    }
    fclose(fp);
    return errs->n == 0 ? 0 : -1;
}

/* ---- comparing (reload) ---- */

static int str_equal(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int cidrs_equal(const struct cidr_list *a, const struct cidr_list *b)
{
    if (a->n != b->n)
        return 0;
    /* Field by field: struct padding is not guaranteed to compare equal. */
    for (size_t i = 0; i < a->n; i++) {
        if (a->v[i].family != b->v[i].family || a->v[i].bits != b->v[i].bits ||
            memcmp(a->v[i].addr, b->v[i].addr, sizeof(a->v[i].addr)) != 0)
            return 0;
    }
    return 1;
}

int cfg_route_equal(const struct route_cfg *a, const struct route_cfg *b)
{
    if (!str_equal(a->name, b->name) || !str_equal(a->listen, b->listen) || a->proto != b->proto ||
        a->family != b->family || a->bindlen != b->bindlen ||
        memcmp(&a->bind, &b->bind, a->bindlen) != 0 || a->nup != b->nup)
        return 0;
    for (size_t i = 0; i < a->nup; i++) {
        if (!str_equal(a->up[i].name, b->up[i].name) || a->up[i].addrlen != b->up[i].addrlen ||
            memcmp(&a->up[i].addr, &b->up[i].addr, a->up[i].addrlen) != 0)
            return 0;
    }
    return a->accept_proxy == b->accept_proxy && cidrs_equal(&a->trusted, &b->trusted) &&
           a->trusted_all == b->trusted_all && a->send_proxy == b->send_proxy &&
           a->tlvs_pass == b->tlvs_pass && str_equal(a->authority, b->authority) &&
           a->unique_id == b->unique_id && a->crc32c == b->crc32c &&
           cidrs_equal(&a->allow, &b->allow) && a->allow_all == b->allow_all &&
           cidrs_equal(&a->deny, &b->deny) && a->max_conns == b->max_conns &&
           a->balance == b->balance && a->check_ms == b->check_ms &&
           a->connect_timeout_ms == b->connect_timeout_ms &&
           a->header_timeout_ms == b->header_timeout_ms && a->idle_timeout_ms == b->idle_timeout_ms &&
           a->reply_timeout_ms == b->reply_timeout_ms;
}

/* ---- freeing ---------------------------------------------------------------- */

void cfg_free(struct cfg *c)
{
    for (size_t i = 0; i < c->nroutes; i++) {
        struct route_cfg *r = &c->routes[i];
        for (size_t j = 0; j < r->nup; j++)
            free(r->up[j].name);
        free(r->up);
        free(r->name);
        free(r->listen);
        free(r->authority);
        cidr_list_free(&r->trusted);
        cidr_list_free(&r->allow);
        cidr_list_free(&r->deny);
    }
    free(c->routes);
    free(c->metrics);
    memset(c, 0, sizeof(*c));
}

void cfg_errors_free(struct cfg_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        free(errs->msg[i]);
    free(errs->msg);
    errs->msg = NULL;
    errs->n = 0;
}
