/*
 * rng.c - xorshift64 for the tests (rng.h).
 */
#include "rng.h"

uint64_t rng_next(struct rng *r)
{
    uint64_t x = r->state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return r->state = x;
}

unsigned rng_below(struct rng *r, unsigned n)
{
    return (unsigned)(rng_next(r) >> 33) % n;
}
