/* rng.c: see rng.h. */
#include "rng.h"

#include <math.h>

uint64_t evit_rng_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t splitmix64(uint64_t *x) { return evit_rng_mix(*x += 0x9e3779b97f4a7c15ULL); }

void evit_rng_seed(struct evit_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t evit_rng_next(struct evit_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double evit_rng_uniform(struct evit_rng *r)
{
    return (double)(evit_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t evit_rng_below(struct evit_rng *r, uint64_t n)
{
    /* rejection keeps it unbiased */
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = evit_rng_next(r);
    while (x >= lim);
    return x % n;
}

double evit_rng_normal(struct evit_rng *r)
{
    double u1 = evit_rng_uniform(r), u2 = evit_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double evit_rng_trunc_normal(struct evit_rng *r, double std)
{
    double x;
    do x = evit_rng_normal(r);
    while (x < -2.0 || x > 2.0);
    return x * std;
}
