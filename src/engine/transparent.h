/*
 * transparent.h - upstream sockets that carry the real client's address
 * (transparent=on): what go-mmproxy and mmproxy do, inside ppfwd.
 *
 * The upstream socket gets IP_TRANSPARENT (IPV6_TRANSPARENT) and is bound to
 * the client's address and port before it connects (TCP) or sends (UDP), so a
 * backend that knows nothing of the PROXY protocol sees the client itself.
 * Replies to that address only come back to ppfwd with policy routing (see
 * ppfwd(1), TRANSPARENT MODE).
 */
#ifndef PPFWD_ENGINE_TRANSPARENT_H
#define PPFWD_ENGINE_TRANSPARENT_H

#include <stddef.h>
#include <sys/socket.h>

/* transparent_source results besides 0. */
#define TRANSPARENT_OWN 1     /* no client address: connect from ppfwd's own */
#define TRANSPARENT_FAMILY -1 /* the client is of another family than the upstream */

/*
 * Checks that this process may make transparent sockets of family (AF_INET
 * or AF_INET6), by setting the option on a throwaway socket. Returns 0, or -1
 * with a message in err[0..errlen) that names the missing capability and how
 * to grant it.
 */
int transparent_check(int family, char *err, size_t errlen);

/*
 * The address an upstream socket of family upfamily is bound to for client.
 * Returns 0 with *out filled: client itself, or for an IPv4 upstream the IPv4
 * address inside an IPv4-mapped IPv6 client (::ffff:a.b.c.d), as a v2 TCP6
 * header carries one; TRANSPARENT_OWN when client has no address (AF_UNSPEC,
 * a LOCAL or UNKNOWN header, or AF_UNIX); TRANSPARENT_FAMILY when the client
 * is IPv4 and the upstream IPv6 or the other way round (never sent from
 * ppfwd's own address instead: the caller refuses the client).
 */
int transparent_source(const struct sockaddr *client, int upfamily, struct sockaddr_storage *out);

/*
 * Opens a non-blocking, close-on-exec socket of type SOCK_STREAM or SOCK_DGRAM
 * with IP_TRANSPARENT (IPV6_TRANSPARENT) bound to src: to its port when that
 * is free on this host, to another one otherwise (the address never changes;
 * for TCP the port is then chosen at connect, IP_BIND_ADDRESS_NO_PORT).
 * Returns the fd, or a negative errno (-EPERM without CAP_NET_ADMIN).
 */
int transparent_socket(int type, const struct sockaddr_storage *src);

/*
 * The upstream socket of a connection or UDP session, of type SOCK_STREAM or
 * SOCK_DGRAM and of the upstream's family: with transparent=on
 * (transparent != 0) bound to client as above, unless client is NULL (the
 * accepted header carried no address: ppfwd's own is used); otherwise a
 * plain socket. Non-blocking, close-on-exec. Returns the fd,
 * -EAFNOSUPPORT for a client of another family (refuse it), or -errno.
 */
int transparent_open(int type, int family, int transparent, const struct sockaddr *client);

#endif /* PPFWD_ENGINE_TRANSPARENT_H */
