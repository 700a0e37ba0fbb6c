/* addr.c - socket addresses to and from text (addr_*); see addr.h. */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "util/addr.h"

static const char *const messages[ADDR_EMAXCODE] = {
    [ADDR_EHOST] = "expected IPv4:PORT, [IPv6]:PORT or an absolute unix path",
    [ADDR_ENOPORT] = "missing :PORT",
    [ADDR_EPORT] = "port must be a number 0-65535",
    [ADDR_EPATH] = "unix path not allowed here",
    [ADDR_EPATHLEN] = "unix path too long (at most 108 bytes)",
    [ADDR_ENOSPC] = "buffer too small",
    [ADDR_EFAMILY] = "unsupported address family",
};

const char *addr_strerror(int err)
{
    unsigned e = err < 0 ? 0u - (unsigned)err : (unsigned)err;

    if (e == 0 || e >= ADDR_EMAXCODE || messages[e] == NULL)
        return "unknown error";
    return messages[e];
}

/* Strict decimal port: "0", or 1-5 digits without a leading zero, <= 65535.
 * strtoul would take signs, spaces and "0x". */
static int parse_port(const char *s, in_port_t *out)
{
    unsigned long v = 0;
    size_t i;

    if (s[0] == '\0')
        return -ADDR_ENOPORT;
    if (s[0] == '0' && s[1] != '\0')
        return -ADDR_EPORT;
    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 5)
            return -ADDR_EPORT;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return -ADDR_EPORT;
    *out = htons((in_port_t)v);
    return 0;
}

/* A path of all 108 bytes has no NUL, as in a PROXY v2 UNIX address and
 * for the kernel; sun is zeroed, so a shorter one is NUL-padded. */
static int parse_unix(const char *s, unsigned flags, struct sockaddr_un *sun)
{
    size_t n = strlen(s);

    if (!(flags & ADDR_PARSE_UNIX))
        return -ADDR_EPATH;
    if (n > sizeof(sun->sun_path))
        return -ADDR_EPATHLEN;
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, s, n);
    return 0;
}

/* "[v6%scope]:port". The scope is an interface name or index. */
static int parse_inet6(const char *s, struct sockaddr_in6 *sin6)
{
    const char *rb = strchr(s, ']');
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 1];
    char *pct;
    size_t n;

    if (rb == NULL || (size_t)(rb - s - 1) >= sizeof(host))
        return -ADDR_EHOST;
    n = (size_t)(rb - s - 1);
    memcpy(host, s + 1, n);
    host[n] = '\0';
    pct = strchr(host, '%');
    if (pct != NULL) {
        *pct++ = '\0';
        sin6->sin6_scope_id = if_nametoindex(pct);
        if (sin6->sin6_scope_id == 0)
            return -ADDR_EHOST;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
        return -ADDR_EHOST;
    if (rb[1] != ':')
        return rb[1] == '\0' ? -ADDR_ENOPORT : -ADDR_EHOST;
    sin6->sin6_family = AF_INET6;
    return parse_port(rb + 2, &sin6->sin6_port);
}

static int parse_inet(const char *s, struct sockaddr_in *sin)
{
    const char *colon = strchr(s, ':');
    char host[INET_ADDRSTRLEN];
    size_t n;

    if (colon == NULL)
        return inet_pton(AF_INET, s, &sin->sin_addr) == 1 ? -ADDR_ENOPORT : -ADDR_EHOST;
    n = (size_t)(colon - s);
    if (n >= sizeof(host))
        return -ADDR_EHOST;
    memcpy(host, s, n);
    host[n] = '\0';
    /* glibc's inet_pton takes only a canonical dotted quad: no leading
     * zeros, no shorthand like "127.1". */
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        return -ADDR_EHOST;
    sin->sin_family = AF_INET;
    return parse_port(colon + 1, &sin->sin_port);
}

int addr_parse(const char *s, unsigned flags, struct sockaddr_storage *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (s[0] == ':' && (flags & ADDR_PARSE_ANY)) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = in6addr_any;
        rc = parse_port(s + 1, &sin6->sin6_port);
    } else if (s[0] == '/')
        rc = parse_unix(s, flags, (struct sockaddr_un *)out);
    else if (s[0] == '[')
        rc = parse_inet6(s, (struct sockaddr_in6 *)out);
    else
        rc = parse_inet(s, (struct sockaddr_in *)out);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* Writes the unix path, up to its NUL or the end of sun_path. */
static int format_unix(const struct sockaddr_un *sun, char *buf, size_t cap)
{
    const char *path = sun->sun_path;
    size_t max = sizeof(sun->sun_path), n, at = 0;

    if (path[0] == '\0') {
        n = strnlen(path + 1, max - 1);
        /* All NULs: an unnamed socket, written as the empty string. */
        at = n != 0;
        path++;
        max--;
    }
    n = strnlen(path, max);
    if (at + n >= cap)
        return -ADDR_ENOSPC;
    if (at)
        buf[0] = '@';
    memcpy(buf + at, path, n);
    buf[at + n] = '\0';
    return (int)(at + n);
}

static int format_inet6(const struct sockaddr_in6 *sin6, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN], scope[IF_NAMESIZE + 12] = "";
    char ifname[IF_NAMESIZE];

    if (inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host)) == NULL)
        return -ADDR_EFAMILY;
    if (sin6->sin6_scope_id != 0) {
        if (if_indextoname(sin6->sin6_scope_id, ifname) != NULL)
            snprintf(scope, sizeof(scope), "%%%s", ifname);
        else
            snprintf(scope, sizeof(scope), "%%%u", (unsigned)sin6->sin6_scope_id);
    }
    return snprintf(buf, cap, "[%s%s]:%u", host, scope, (unsigned)ntohs(sin6->sin6_port));
}

int addr_format(const struct sockaddr *sa, char *buf, size_t cap)
{
    const struct sockaddr_in *sin;
    char host[INET_ADDRSTRLEN];
    int n;

    if (cap == 0)
        return -ADDR_ENOSPC;
    buf[0] = '\0';
    switch (sa->sa_family) {
    case AF_INET:
        sin = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)) == NULL)
            return -ADDR_EFAMILY;
        n = snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(sin->sin_port));
        break;
    case AF_INET6:
        n = format_inet6((const struct sockaddr_in6 *)sa, buf, cap);
        break;
    case AF_UNIX:
        return format_unix((const struct sockaddr_un *)sa, buf, cap);
    default:
        return -ADDR_EFAMILY;
    }
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0';
        return -ADDR_ENOSPC;
    }
    return n;
}

const struct sockaddr *addr_unmapped(const struct sockaddr *sa, struct sockaddr_storage *tmp)
{
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    struct sockaddr_in *s4 = (struct sockaddr_in *)tmp;

    if (sa == NULL || sa->sa_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
        return sa;
    memset(tmp, 0, sizeof(*tmp));
    s4->sin_family = AF_INET;
    s4->sin_port = s6->sin6_port;
    memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
    return (const struct sockaddr *)tmp;
}

socklen_t addr_len(const struct sockaddr *sa)
{
    const struct sockaddr_un *sun;
    size_t n;

    switch (sa->sa_family) {
    case AF_INET:
        return sizeof(struct sockaddr_in);
    case AF_INET6:
        return sizeof(struct sockaddr_in6);
    case AF_UNIX:
        sun = (const struct sockaddr_un *)sa;
        if (sun->sun_path[0] == '\0')
            n = 1 + strnlen(sun->sun_path + 1, sizeof(sun->sun_path) - 1);
        else
            n = strnlen(sun->sun_path, sizeof(sun->sun_path)) + 1;
        if (n > sizeof(sun->sun_path))
            n = sizeof(sun->sun_path);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    default:
        return 0;
    }
}
