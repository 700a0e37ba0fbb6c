/*
 * url.c - route URLs, PROTO://[BIND]:PORT/UPSTREAM[,UPSTREAM...][?K=V&...],
 * and the two keys every route has, whatever its source: the listen address
 * and the upstreams, resolved here (getaddrinfo) at load time.
 */
#define _GNU_SOURCE /* strndup */
#include <netdb.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/config.h"
#include "config/internal.h"
#include "config/tlv_policy.h"

/* Resolves "HOST:PORT" or "[V6]:PORT" (an empty HOST is any address, as a
 * passive socket). Returns NULL or what is wrong. */
static const char *resolve(const char *s, int family, int passive, struct sockaddr_storage *out,
                           socklen_t *outlen)
{
    char host[256];
    const char *h = s, *port, *end;
    size_t hlen;
    struct addrinfo hints = {0}, *res;
    unsigned p;

    if (s[0] == '[') {
        end = strchr(s, ']');
        if (end == NULL || end[1] != ':')
            return "expected [ADDR]:PORT";
        h = s + 1;
        hlen = (size_t)(end - h);
        port = end + 2;
    } else {
        end = strrchr(s, ':');
        if (end == NULL)
            return "expected HOST:PORT";
        if (memchr(s, ':', (size_t)(end - s)) != NULL)
            return "an IPv6 address needs brackets: [ADDR]:PORT";
        hlen = (size_t)(end - s);
        port = end + 1;
    }
    if (cfg_parse_uint(port, 65535, &p) != 0 || p == 0 || hlen >= sizeof(host))
        return "bad port (expected 1-65535)";
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    /* A zone in a URL is written %25 (RFC 6874: [fe80::1%25eth0]); the
     * bare % (getaddrinfo's spelling) is taken too. */
    if (h != s && (end = strstr(host, "%25")) != NULL)
        memmove(host + (end - host) + 1, end + 3, strlen(end + 3) + 1);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = (passive ? AI_PASSIVE : 0) | AI_NUMERICSERV;
    if (getaddrinfo(hlen ? host : NULL, port, &hints, &res) != 0) {
        struct in6_addr a;

        /* An address of the other family: say so, not "cannot resolve". */
        if (family == AF_INET && inet_pton(AF_INET6, host, &a) == 1)
            return "an IPv6 address where IPv4 is asked (tcp4, udp4)";
        if (family == AF_INET6 && inet_pton(AF_INET, host, &a) == 1)
            return "an IPv4 address where IPv6 is asked (tcp6, udp6)";
        return "cannot resolve the host";
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *outlen = res->ai_addrlen;
    freeaddrinfo(res);
    return NULL;
}

/* "PROTO://[BIND]:PORT". Reports its own problems (naming the part that is
 * wrong) and returns NULL. */
const char *cfg_set_listen(struct route_cfg *r, const struct key *k, const char *url,
                           const struct place *at)
{
    static const struct {
        const char *name;
        enum route_proto proto;
        int family;
    } protos[] = {{"tcp", ROUTE_TCP, AF_UNSPEC}, {"tcp4", ROUTE_TCP, AF_INET},
                  {"tcp6", ROUTE_TCP, AF_INET6}, {"udp", ROUTE_UDP, AF_UNSPEC},
                  {"udp4", ROUTE_UDP, AF_INET},  {"udp6", ROUTE_UDP, AF_INET6}};
    const char *sep = strstr(url, "://");
    const char *err;
    size_t i, plen;

    (void)k;
    free(r->listen);
    r->listen = strdup(url);
    if (sep == NULL) {
        cfg_problem(at, "listen", "expected PROTO://[BIND]:PORT, got '%s'", url);
        return NULL;
    }
    plen = (size_t)(sep - url);
    for (i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
        if (strlen(protos[i].name) == plen && strncmp(url, protos[i].name, plen) == 0)
            break;
    }
    if (i == sizeof(protos) / sizeof(protos[0])) {
        cfg_problem(at, "listen",
                    "unknown protocol '%.*s' (expected tcp, tcp4, tcp6, udp, udp4, udp6)",
                    (int)plen, url);
        return NULL;
    }
    r->proto = protos[i].proto;
    r->family = protos[i].family;
    /* No BIND: every address, dual-stack unless the protocol names one. */
    err = resolve(sep + 3, r->family == AF_INET ? AF_INET : AF_INET6, 1, &r->bind, &r->bindlen);
    if (err != NULL && sep[3] != ':' && r->family == AF_UNSPEC)
        err = resolve(sep + 3, AF_UNSPEC, 1, &r->bind, &r->bindlen);
    if (err != NULL)
        cfg_problem(at, "listen", "%s: '%s'", err, sep + 3);
    return NULL;
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
        cfg_problem(at, "upstream", "%s: '%s'", err, s);
}

/* A comma-separated list; each bad upstream is reported on its own. */
const char *cfg_set_upstreams(struct route_cfg *r, const struct key *k, const char *list,
                              const struct place *at)
{
    char *copy = strdup(list), *save = NULL;

    (void)k;
    if (copy == NULL)
        return "out of memory";
    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
        add_upstream(r, at, t);
    free(copy);
    return NULL;
}

/* Decodes s's %XX escapes in place (RFC 3986), so a value may hold what
 * the query syntax would cut (a '&', '=' or '#': authority=a%26b). '+'
 * stays a '+' (a space only in HTML forms). Returns -1 for a '%' without
 * two hex digits after it, or one that decodes to NUL. */
static int pct_decode(char *s)
{
    char *out = s;

    for (const char *in = s; *in != '\0'; in++) {
        uint8_t c;

        if (*in != '%') {
            *out++ = *in;
            continue;
        }
        /* tlv_hex_decode checks the digits in order: a NUL ends it. */
        if (tlv_hex_decode(in + 1, 2, &c) != 0 || c == 0)
            return -1;
        *out++ = (char)c;
        in += 2;
    }
    *out = '\0';
    return 0;
}

/* PROTO://[BIND]:PORT/UPSTREAM[,UPSTREAM...][?KEY=VALUE&KEY=VALUE...] */
static void url_route(struct cfg *c, struct cfg_errors *errs, const char *url)
{
    struct route_cfg *r = cfg_route_new(c);
    unsigned key_lines[CFG_NKEYS] = {0};
    struct place at = {errs, NULL, url, 0, key_lines, 0, NULL};
    const char *sep = strstr(url, "://"), *slash, *q;
    char *part, *query, *save = NULL;

    if (r == NULL)
        return;
    r->name = strdup(url);
    slash = sep ? strchr(sep + 3, '/') : NULL;
    if (slash == NULL) {
        cfg_problem(&at, NULL, "expected PROTO://[BIND]:PORT/UPSTREAM[?KEY=VALUE&...]");
        return;
    }
    part = strndup(url, (size_t)(slash - url));
    cfg_key_set(r, &at, "listen", part ? part : "");
    free(part);
    q = strchr(slash, '?');
    part = strndup(slash + 1, q ? (size_t)(q - slash - 1) : strlen(slash + 1));
    cfg_key_set(r, &at, "upstream", part ? part : "");
    free(part);
    query = q ? strdup(q + 1) : NULL;
    for (char *kv = query ? strtok_r(query, "&", &save) : NULL; kv;
         kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq == kv) {
            cfg_problem(&at, NULL, "expected KEY=VALUE, got '%s'", kv);
            continue;
        }
        if (eq == NULL) {
            cfg_problem(&at, kv, "expected KEY=VALUE");
            continue;
        }
        *eq = '\0';
        if (pct_decode(kv) != 0 || pct_decode(eq + 1) != 0) {
            cfg_problem(&at, kv, "bad percent-encoding (%%XX, XX two hex digits, not 00)");
            continue;
        }
        cfg_key_set(r, &at, kv, eq + 1);
    }
    free(query);
    cfg_route_check(r, &at);
}

int cfg_from_urls(struct cfg *c, char *const *urls, int n, struct cfg_errors *errs)
{
    struct place at = {errs, NULL, NULL, 0, NULL, 0, NULL};

    c->log_level = -1;
    c->log_format = -1;
    for (int i = 0; i < n; i++)
        url_route(c, errs, urls[i]);
    if (n == 0)
        cfg_problem(&at, NULL, "no route given");
    cfg_check_overlaps(c, &at);
    return errs->n == 0 ? 0 : -1;
}
