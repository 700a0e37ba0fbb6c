/*
 * addr.h - socket addresses as text: "IP:PORT", "[IPv6]:PORT" and unix paths.
 *
 * One spelling everywhere: decode's JSON, encode's --src/--dst, and later the
 * daemon's logs, whoami answers and listen addresses.
 */
#ifndef PPFWD_ADDR_H
#define PPFWD_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Enough for "[" IPv6 "%" interface "]:" port, or a 108-byte unix path, plus
 * the NUL. */
#define ADDR_STRLEN 128

/* Failures, returned negated. */
enum addr_error {
    ADDR_EHOST = 1, /* not an IPv4 literal, a bracketed IPv6 literal or a path */
    ADDR_ENOPORT,   /* no ":PORT" after the host */
    ADDR_EPORT,     /* port not a decimal 0-65535 without sign or leading zero */
    ADDR_EPATH,     /* unix path without ADDR_PARSE_UNIX */
    ADDR_ENOSPC,    /* addr_format: the output buffer is too small */
    ADDR_EFAMILY,   /* addr_format: not AF_INET, AF_INET6 or AF_UNIX */
    ADDR_EPATHLEN,  /* unix path longer than the 108 bytes sun_path holds */
    ADDR_EMAXCODE
};

/* addr_parse flags. */
#define ADDR_PARSE_UNIX 0x01 /* accept an absolute unix path ("/run/x.sock") */
#define ADDR_PARSE_ANY 0x02  /* accept ":PORT", every address: [::]:PORT (dual-stack) */

/*
 * Parses s into *out (zeroed first):
 *   "1.2.3.4:5"          AF_INET; dotted quad, no leading zeros
 *   "[2001:db8::1]:5"    AF_INET6; brackets required, as in URLs
 *   ":5"                 AF_INET6 [::], only with ADDR_PARSE_ANY (every address,
 *                        as a route's "tcp://:PORT"; the listener makes it
 *                        dual-stack, or 0.0.0.0 without IPv6)
 *   "/run/app.sock"      AF_UNIX, only with ADDR_PARSE_UNIX; at most 108 bytes,
 *                        the size of sun_path (and of a PROXY v2 UNIX address):
 *                        sun_path is NUL-terminated unless all 108 are used
 * Ports are decimal 0-65535 without sign or leading zeros. Host names are not
 * resolved. Returns 0, or -ADDR_E* (see addr_strerror()).
 */
int addr_parse(const char *s, unsigned flags, struct sockaddr_storage *out);

/*
 * Writes sa as text into buf[0..cap), NUL-terminated: "192.0.2.1:80",
 * "[2001:db8::1]:443" ("[fe80::1%eth0]:22" with a scope), or the unix path.
 * A path is copied as bytes up to its first NUL (all 108 if there is none);
 * an abstract socket (leading NUL) is written "@name". The bytes are not
 * escaped: put them through the JSON writer before showing them.
 * Returns the length written (NUL excluded), -ADDR_ENOSPC (buf then holds an
 * empty string if cap > 0), or -ADDR_EFAMILY. ADDR_STRLEN always suffices.
 */
int addr_format(const struct sockaddr *sa, char *buf, size_t cap);

/* sa itself, or, for an IPv4-mapped IPv6 address (::ffff:a.b.c.d: how a
 * dual-stack socket names an IPv4 peer), the IPv4 address and port it
 * carries, written into *tmp. For what is shown or sent on as the client:
 * the peer of the default (all addresses) bind is 192.0.2.1, not
 * ::ffff:192.0.2.1. */
const struct sockaddr *addr_unmapped(const struct sockaddr *sa, struct sockaddr_storage *tmp);

/* The socklen_t to pass to bind()/connect() for sa: the size of its family's
 * struct (for AF_UNIX, up to the path's NUL), or 0 for other families. */
socklen_t addr_len(const struct sockaddr *sa);

/* A static English message for a -ADDR_E* code, negated or not. */
const char *addr_strerror(int err);

#endif /* PPFWD_ADDR_H */
