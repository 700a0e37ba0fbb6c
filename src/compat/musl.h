/*
 * musl.h - what the static (musl) build of ppfwd needs beyond musl's own
 * headers; `make static` force-includes it (-include) in every daemon file,
 * so the sources stay written for glibc, where these come from libc.
 */
#ifndef PP_COMPAT_MUSL_H
#define PP_COMPAT_MUSL_H

#include <stddef.h>

/* glibc 2.36 has arc4random_buf(3); musl 1.2.3 (Debian 12) has not. Fills
 * buf with n random bytes from getrandom(2); never fails (aborts if the
 * kernel has no getrandom, as on Linux before 3.17). */
void arc4random_buf(void *buf, size_t n);

#endif
