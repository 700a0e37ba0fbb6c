/*
 * check.h - cmocka assertions shared by the unit tests. Unlike vectors.h and
 * rng.h, these fail the running cmocka test, so only test binaries use them.
 */
#ifndef PP_TESTS_CHECK_H
#define PP_TESTS_CHECK_H

#include <stdint.h>

#include "proxyproto.h"

/* Asserts that a is AF_INET with the address ip (dotted quad) and port, given
 * in host order. */
void check_in4(const union pp_addr *a, const char *ip, uint16_t port);
/* Asserts that a is AF_INET6 with the address ip (any inet_pton form) and
 * port, given in host order. */
void check_in6(const union pp_addr *a, const char *ip, uint16_t port);

#endif /* PP_TESTS_CHECK_H */
