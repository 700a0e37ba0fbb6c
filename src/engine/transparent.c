/*
 * transparent.c - sockets bound to the real client's address (transparent=on).
 *
 * IP_TRANSPARENT lets a socket bind an address that is not local to this
 * host (and send from it); it needs CAP_NET_ADMIN (Linux also takes
 * CAP_NET_RAW; the messages name CAP_NET_ADMIN, the documented one). The kernel checks the
 * capability when the option is set, so a route checks it once at start with
 * transparent_check and every later failure is a real one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/transparent.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static const int on = 1;

static int set_transparent(int fd, int family)
{
    if (family == AF_INET6)
        return setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &on, sizeof(on));
    return setsockopt(fd, SOL_IP, IP_TRANSPARENT, &on, sizeof(on));
}

int transparent_check(int family, char *err, size_t errlen)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

    if (fd < 0) {
        snprintf(err, errlen, "transparent=on: cannot open a socket: %s", strerror(errno));
        return -1;
    }
    if (set_transparent(fd, family) == 0) {
        close(fd);
        return 0;
    }
    e = errno;
    close(fd);
    if (e == EPERM)
        snprintf(err, errlen,
                 "transparent=on needs the CAP_NET_ADMIN capability (to set %s): run ppfwd as "
                 "root or grant it, e.g. AmbientCapabilities=CAP_NET_ADMIN in the systemd unit "
                 "(or setcap cap_net_admin+ep on the binary)",
                 family == AF_INET6 ? "IPV6_TRANSPARENT" : "IP_TRANSPARENT");
    else
        snprintf(err, errlen, "transparent=on: setting %s failed: %s",
                 family == AF_INET6 ? "IPV6_TRANSPARENT" : "IP_TRANSPARENT", strerror(e));
    return -1;
}

int transparent_source(const struct sockaddr *client, int upfamily, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (client->sa_family != AF_INET && client->sa_family != AF_INET6)
        return TRANSPARENT_OWN;
    if (client->sa_family == upfamily) {
        memcpy(out, client,
               upfamily == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
        return 0;
    }
    if (client->sa_family == AF_INET6 && upfamily == AF_INET) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)client;
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;

        if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            return TRANSPARENT_FAMILY;
        s4->sin_family = AF_INET;
        s4->sin_port = s6->sin6_port;
        memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
        return 0;
    }
    return TRANSPARENT_FAMILY;
}

int transparent_socket(int type, const struct sockaddr_storage *src)
{
    int family = src->ss_family, fd, e;
    socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    struct sockaddr_storage any = *src;

    fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* SO_REUSEADDR: a client that reconnects from the same port finds the
     * previous upstream connection's TIME_WAIT, which must not refuse it. */
    if (set_transparent(fd, family) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)src, len) == 0)
        return fd;
    if (errno != EADDRINUSE)
        goto fail;
    /* The client's port is taken here (a client on this very host, or a
     * socket of ours): the same address, another port. */
    if (family == AF_INET6)
        ((struct sockaddr_in6 *)&any)->sin6_port = 0;
    else
        ((struct sockaddr_in *)&any)->sin_port = 0;
    if (type == SOCK_STREAM &&
        setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof(on)) != 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&any, len) == 0)
        return fd;
fail:
    e = errno;
    close(fd);
    return -e;
}

int transparent_open(int type, int family, int transparent, const struct sockaddr *client)
{
    struct sockaddr_storage src;
    int fd;

    if (transparent) {
        switch (client == NULL ? TRANSPARENT_OWN : transparent_source(client, family, &src)) {
        case 0:
            return transparent_socket(type, &src);
        case TRANSPARENT_FAMILY:
            return -EAFNOSUPPORT;
        default:
            break;
        }
    }
    fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return fd == -1 ? -errno : fd;
}
