/*
 * A small, fast per-process random generator (xoshiro256**), seeded by
 * its owner: workers seed theirs from getrandom() after fork, so no two
 * workers share a sequence; tests seed a fixed value to be repeatable.
 */
#ifndef QUOTERD_RNG_H
#define QUOTERD_RNG_H

#include <stdint.h>

struct rng {
	uint64_t s[4];
};

void rng_seed(struct rng *r, uint64_t seed);
/* Seeds from the kernel's entropy pool; -1 with errno set on failure. */
int rng_seed_random(struct rng *r);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, n), without modulo bias; n must be > 0. */
uint64_t rng_below(struct rng *r, uint64_t n);

#endif
