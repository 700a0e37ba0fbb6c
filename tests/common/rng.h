/*
 * rng.h - the tests' pseudo-random generator: xorshift64 (13, 7, 17) with the
 * state in a struct the test owns. A fixed seed gives the same sequence on
 * every run, so a failure replays identically. Nothing here uses cmocka.
 */
#ifndef PP_TESTS_RNG_H
#define PP_TESTS_RNG_H

#include <stdint.h>

/* Seed it with any value but 0, which xorshift never leaves:
 * struct rng r = {0x2545F4914F6CDD1DULL}; */
struct rng {
    uint64_t state;
};

/* Advances r and returns its new state, the next 64-bit value. */
uint64_t rng_next(struct rng *r);
/* A value in [0, n) from the high bits of rng_next; uniform enough for the
 * small n the tests use. n must not be 0. */
unsigned rng_below(struct rng *r, unsigned n);

#endif /* PP_TESTS_RNG_H */
