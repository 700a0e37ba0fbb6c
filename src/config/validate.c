/*
 * validate.c - what can only be checked once a route, or every route, is
 * read: keys that only make sense together, keys that mean nothing on UDP,
 * and routes that would share one socket address.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "config/config.h"
#include "config/internal.h"

/* A problem found once the whole route is read, reported at the line of the
 * key that causes it and with the spelling of the source ('_' in YAML). */
static void late_problem(const struct place *at, const char *name, const char *msg)
{
    const struct key *k = cfg_key_find(name);
    struct place p = *at;
    char yaml[32];

    if (at->file != NULL) {
        if (k != NULL && at->key_lines != NULL && at->key_lines[k - cfg_keys] != 0)
            p.line = at->key_lines[k - cfg_keys];
        snprintf(yaml, sizeof(yaml), "%s", name);
        for (char *s = yaml; *s; s++)
            *s = *s == '-' ? '_' : *s;
        name = yaml;
    }
    cfg_problem(&p, name, "%s", msg);
}

/* tlvs=drop alone is not reported: it is also the value a route without
 * send-proxy=v2 behaves as. A key that does nothing on UDP (a health check
 * connects over TCP; a datagram carries its whole header and needs no
 * connect) is refused when given, rather than silently ignored. */
void cfg_route_check(struct route_cfg *r, const struct place *at)
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
    if (r->send_proxy != SEND_PROXY_V2 && r->add_tlv.len > 0)
        late_problem(at, "add-tlv", tlv_msg);
    /* tlvs=drop is how a route without v2 behaves anyway: accepted. */
    if (r->send_proxy != SEND_PROXY_V2 && (r->tlvs_mode == TLVS_KEEP || r->tlvs_mode == TLVS_STRIP))
        late_problem(at, "tlvs", "a TLV list only applies with send-proxy=v2");
    /* The route's own TLVs, with the largest address block and a CRC32C,
     * within what a receiver with default settings accepts. */
    if (r->send_proxy == SEND_PROXY_V2) {
        size_t own = r->add_tlv.len + (r->authority ? 3 + strlen(r->authority) : 0) +
                     (r->unique_id ? 3 + 16 : 0);
        char msg[160];

        snprintf(msg, sizeof(msg),
                 "the route's TLVs take %zu bytes: a v2 header would pass %d bytes "
                 "(PP_V2_DEFAULT_CAP, what receivers accept)",
                 own, PP_V2_DEFAULT_CAP);
        if (own > TLV_ADDED_MAX)
            late_problem(at, r->add_tlv.len > 0 ? "add-tlv" : "authority", msg);
    }
    for (size_t i = 0; r->proto == ROUTE_UDP && at->key_lines != NULL && i < CFG_NKEYS; i++) {
        if (cfg_keys[i].tcp_only && at->key_lines[i] != 0)
            late_problem(at, cfg_keys[i].name, "means nothing on a UDP route (TCP only)");
    }
    if (r->proto == ROUTE_TCP && r->reply_timeout_ms != 0)
        late_problem(at, "reply-timeout", "means nothing on a TCP route (UDP only)");
    if (r->idle_timeout_ms == 0)
        r->idle_timeout_ms = r->proto == ROUTE_UDP ? 300000 : 3600000;
    if (r->proto == ROUTE_UDP && r->reply_timeout_ms == 0)
        r->reply_timeout_ms = 30000; /* conntrack's timeout for unreplied UDP */
}

/* ---- overlapping addresses ------------------------------------------------ */

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

struct slot {
    const struct route_cfg *r;
    size_t i; /* index in c->routes: the tie-break puts the first route first */
};

static int cmp_index(size_t a, size_t b)
{
    return a < b ? -1 : a > b;
}

/* Same protocol and the same socket address. */
static int cmp_bind(const void *x, const void *y)
{
    const struct slot *a = x, *b = y;
    int d = (int)a->r->proto - (int)b->r->proto;

    if (d == 0)
        d = (int)a->r->bindlen - (int)b->r->bindlen;
    if (d == 0)
        d = memcmp(&a->r->bind, &b->r->bind, a->r->bindlen);
    return d != 0 ? d : cmp_index(a->i, b->i);
}

/* Same protocol and both take IPv4 traffic on every address of one port. */
static int cmp_v4_port(const void *x, const void *y)
{
    const struct slot *a = x, *b = y;
    int d = (int)a->r->proto - (int)b->r->proto;

    if (d == 0)
        d = (int)any_v4_port(a->r) - (int)any_v4_port(b->r);
    return d != 0 ? d : cmp_index(a->i, b->i);
}

int cfg_route_overlap(const struct route_cfg *a, const struct route_cfg *b)
{
    if (a->bindlen == 0 || b->proto != a->proto)
        return 0;
    return (b->bindlen == a->bindlen && memcmp(&b->bind, &a->bind, a->bindlen) == 0) ||
           (any_v4_port(a) != 0 && any_v4_port(a) == any_v4_port(b));
}

/* Sorts the n slots by cmp; in each run of equal keys, the first route
 * (smallest index) becomes first[] of the others when it is earlier than
 * what they have. */
static void mark_groups(struct slot *s, size_t n, int (*cmp)(const void *, const void *),
                        size_t *first)
{
    qsort(s, n, sizeof(*s), cmp);
    for (size_t g = 0, j = 1; j <= n; j++) {
        struct slot a = s[g], b = j < n ? s[j] : s[g];
        a.i = b.i = 0; /* compare the keys only */
        if (j < n && cmp(&a, &b) == 0) {
            if (s[g].i < first[s[j].i])
                first[s[j].i] = s[g].i;
            continue;
        }
        g = j;
    }
}

/* Two routes on one socket address would both bind it through SO_REUSEPORT
 * and silently share its traffic; so would 0.0.0.0:P and a dual-stack [::]:P.
 * (A specific address beside a wildcard on the same port is allowed: the
 * kernel gives its traffic to the more specific one, as nginx does.) Each
 * such route is reported once, naming the first route of its address:
 * sorting keeps 2,000 routes on one address to 1,999 messages and
 * milliseconds, where comparing every pair gave 2 million. */
void cfg_check_overlaps(const struct cfg *c, const struct place *at)
{
    struct slot *s = calloc(c->nroutes + 1, sizeof(*s));
    size_t *first = calloc(c->nroutes + 1, sizeof(*first));
    size_t n = 0, nv4 = 0;

    if (s == NULL || first == NULL)
        goto out;
    for (size_t i = 0; i < c->nroutes; i++) {
        first[i] = i;
        if (c->routes[i].bindlen != 0)
            s[n++] = (struct slot){&c->routes[i], i};
    }
    mark_groups(s, n, cmp_bind, first);
    for (size_t i = 0; i < n; i++) {
        if (any_v4_port(s[i].r) != 0)
            s[nv4++] = s[i];
    }
    mark_groups(s, nv4, cmp_v4_port, first);
    for (size_t i = 0; i < c->nroutes; i++) {
        struct place p = *at;
        if (first[i] == i)
            continue;
        p.route = c->routes[i].name;
        p.line = c->routes[i].line;
        cfg_problem(&p, "listen", "same address as route %s", c->routes[first[i]].name);
    }
out:
    free(first);
    free(s);
}
