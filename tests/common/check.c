/*
 * check.c - cmocka assertions shared by the unit tests (check.h).
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "check.h"

void check_in4(const union pp_addr *a, const char *ip, uint16_t port)
{
    struct in_addr want;
    assert_int_equal(inet_pton(AF_INET, ip, &want), 1);
    assert_int_equal(a->sa.sa_family, AF_INET);
    assert_memory_equal(&a->sin.sin_addr, &want, 4);
    assert_int_equal(a->sin.sin_port, htons(port));
}

void check_in6(const union pp_addr *a, const char *ip, uint16_t port)
{
    struct in6_addr want;
    assert_int_equal(inet_pton(AF_INET6, ip, &want), 1);
    assert_int_equal(a->sa.sa_family, AF_INET6);
    assert_memory_equal(&a->sin6.sin6_addr, &want, 16);
    assert_int_equal(a->sin6.sin6_port, htons(port));
}
