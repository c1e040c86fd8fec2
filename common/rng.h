/* rng.h: a small deterministic generator (xoshiro256**, seeded by
 * splitmix64) whose whole state is four words, so a training checkpoint can
 * save and restore it exactly. */
#ifndef EVIT_RNG_H
#define EVIT_RNG_H

#include <stdint.h>

struct evit_rng {
    uint64_t s[4];
};

void evit_rng_seed(struct evit_rng *r, uint64_t seed);
/* splitmix64's finaliser: a bijection of 64-bit words that spreads every
 * input bit over the output (to derive independent seeds from keys). */
uint64_t evit_rng_mix(uint64_t z);
uint64_t evit_rng_next(struct evit_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double evit_rng_uniform(struct evit_rng *r);
/* Uniform integer in [0, n). */
uint64_t evit_rng_below(struct evit_rng *r, uint64_t n);
/* Standard normal (Box-Muller, one value per call). */
double evit_rng_normal(struct evit_rng *r);
/* Normal(0, std) redrawn until inside [-2 std, 2 std] (timm's trunc_normal_
 * with a = -2 std, b = 2 std). */
double evit_rng_trunc_normal(struct evit_rng *r, double std);

#endif
