/*
 * cidr.h - lists of IPv4/IPv6 networks and address matching (cidr_*).
 */
#ifndef PPFWD_CIDR_H
#define PPFWD_CIDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network bytes, host bits zeroed */
    uint8_t bits;     /* prefix length */
};

struct cidr_list {
    struct cidr *v;
    size_t n;
};

/* Parses "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128).
 * Returns 0 or -EINVAL (bad address or prefix, or host bits set). */
int cidr_parse(const char *s, struct cidr *out);

/* Appends to the list. Returns 0 or -ENOMEM. */
int cidr_list_add(struct cidr_list *l, const struct cidr *c);

void cidr_list_free(struct cidr_list *l);

/* 1 if sa (AF_INET or AF_INET6) is inside one of the list's networks. An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) also matches IPv4 networks, and
 * an IPv4 address matches ::ffff:0:0/96 networks. 0 otherwise. */
int cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa);

#endif /* PPFWD_CIDR_H */
