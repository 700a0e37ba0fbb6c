/*
 * arc4random.c - arc4random_buf(3) for libcs without it (musl): the static
 * build's only addition to the daemon (see musl.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "compat/musl.h"

void arc4random_buf(void *buf, size_t n)
{
    unsigned char *p = buf;

    /* Once the pool is initialised, getrandom(2) returns up to 256 bytes
     * whole; larger requests may come back short, and a signal may cut a
     * wait for the pool at boot: loop over both. */
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got == -1) {
            if (errno == EINTR)
                continue;
            abort();
        }
        p += got;
        n -= (size_t)got;
    }
}
