/*
 * cidr.c - IPv4/IPv6 network lists for trusted, allow and deny (cidr_*).
 *
 * Addresses are compared as 16 bytes: IPv4 networks are stored IPv4-mapped
 * (::ffff:a.b.c.d/96+bits), so an IPv4 client and the same client seen as
 * ::ffff:a.b.c.d on a dual-stack socket match the same entries.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "util/cidr.h"

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void mask_host_bits(uint8_t a[16], unsigned bits)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
        a[i] &= (uint8_t)(0xFF00u >> keep);
    }
}

/* "10.0.0.0/8", "2001:db8::/32" or a bare address. Host bits are masked
 * off, as HAProxy and nginx do with "10.1.2.3/8". */
int cidr_parse(const char *s, struct cidr *out)
{
    char ip[INET6_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    unsigned long bits;
    char *end;

    if (n == 0 || n >= sizeof(ip))
        return -EINVAL;
    memcpy(ip, s, n);
    ip[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, ip, out->addr + 12) == 1) {
        memcpy(out->addr, v4mapped, 12);
        out->family = AF_INET;
    } else if (inet_pton(AF_INET6, ip, out->addr) == 1) {
        out->family = AF_INET6;
    } else {
        return -EINVAL;
    }
    bits = out->family == AF_INET ? 32 : 128;
    if (slash != NULL) {
        if (slash[1] < '0' || slash[1] > '9')
            return -EINVAL;
        errno = 0;
        unsigned long b = strtoul(slash + 1, &end, 10);
        if (errno != 0 || *end != '\0' || b > bits)
            return -EINVAL;
        bits = b;
    }
    out->bits = (uint8_t)(out->family == AF_INET ? 96 + bits : bits);
    mask_host_bits(out->addr, out->bits);
    return 0;
}

int cidr_list_add(struct cidr_list *l, const struct cidr *c)
{
    struct cidr *v = realloc(l->v, (l->n + 1) * sizeof(*v));

    if (v == NULL)
        return -ENOMEM;
    v[l->n++] = *c;
    l->v = v;
    return 0;
}

void cidr_list_free(struct cidr_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int in_net(const struct cidr *c, const uint8_t a[16])
{
    unsigned full = c->bits / 8, rest = c->bits % 8;

    if (memcmp(c->addr, a, full) != 0)
        return 0;
    return rest == 0 || ((c->addr[full] ^ a[full]) & (uint8_t)(0xFF00u >> rest)) == 0;
}

int cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
    uint8_t a[16];

    if (sa->sa_family == AF_INET) {
        memcpy(a, v4mapped, 12);
        memcpy(a + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    } else {
        return 0;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (in_net(&l->v[i], a))
            return 1;
    }
    return 0;
}
