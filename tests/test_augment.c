/* test_augment.c: random crop with zero padding and horizontal flip are exact
 * shifted / mirrored copies drawn reproducibly from the seed; the shuffle is a
 * reproducible permutation. */
#include <stdint.h>
#include <string.h>

#include "augment.h"
#include "rng.h"
#include "test.h"
#include "util.h"

/* Reference: out[y, x] = in[y + dy, (flip ? W-1-x : x) + dx], 0 outside. */
static void shifted(uint8_t *out /* (H, W, C) */, const uint8_t *in /* (H, W, C) */,
                    int H, int W, int C, int dy, int dx, int flip)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int sy = y + dy, sx = (flip ? W - 1 - x : x) + dx;
            for (int c = 0; c < C; c++)
                out[(y * W + x) * C + c] = (sy >= 0 && sy < H && sx >= 0 && sx < W)
                                               ? in[(sy * W + sx) * C + c]
                                               : 0;
        }
}

/* Images with every value nonzero and distinct within an image (mod 255),
 * so a shift is recognisable and the zero fill stands out. */
static void fill(uint8_t *img, int B, int H, int W, int C)
{
    size_t per = (size_t)H * W * C;
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < per; i++) img[b * per + i] = (uint8_t)(1 + (i * 7 + (size_t)b * 13) % 255);
}

/* Finds the (dy, dx, flip) in [-p, p]^2 x {0, 1} that produced out from in;
 * returns how many candidates match (1 when identified, stored in *dy...). */
static int identify(const uint8_t *out, const uint8_t *in, int H, int W, int C, int p,
                    int *dy, int *dx, int *flip)
{
    uint8_t ref[4096];
    int hits = 0;
    for (int f = 0; f < 2; f++)
        for (int i = -p; i <= p; i++)
            for (int j = -p; j <= p; j++) {
                shifted(ref, in, H, W, C, i, j, f);
                if (memcmp(ref, out, (size_t)H * W * C) == 0) {
                    hits++;
                    *dy = i;
                    *dx = j;
                    *flip = f;
                }
            }
    return hits;
}

static void no_padding_and_no_flip_copies_the_batch_and_draws_nothing(void)
{
    enum { B = 3, H = 5, W = 4, C = 3 };
    uint8_t in[B * H * W * C], out[B * H * W * C];
    struct evit_augment_config cfg = {0, 0};
    struct evit_rng r, r0;
    fill(in, B, H, W, C);
    memset(out, 0xAA, sizeof out);
    evit_rng_seed(&r, 5);
    r0 = r;
    evit_augment_batch(out, in, B, H, W, C, &cfg, &r);
    CHECK(memcmp(out, in, sizeof in) == 0);
    CHECK(memcmp(&r, &r0, sizeof r) == 0);
}

static void a_flip_is_an_exact_mirror(void)
{
    enum { B = 16, H = 3, W = 5, C = 2 };
    uint8_t in[B * H * W * C], out[B * H * W * C], mirror[H * W * C];
    struct evit_augment_config cfg = {0, 1};
    struct evit_rng r;
    int flipped = 0, kept = 0;
    fill(in, B, H, W, C);
    evit_rng_seed(&r, 11);
    evit_augment_batch(out, in, B, H, W, C, &cfg, &r);
    for (int b = 0; b < B; b++) {
        const uint8_t *src = in + b * H * W * C, *dst = out + b * H * W * C;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++)
                    mirror[(y * W + x) * C + c] = src[(y * W + (W - 1 - x)) * C + c];
        if (memcmp(dst, mirror, sizeof mirror) == 0) flipped++;
        else if (memcmp(dst, src, sizeof mirror) == 0) kept++;
    }
    CHECK(flipped + kept == B);
    CHECK(flipped > 0 && kept > 0); /* 2^-15 odds of failing by chance; fixed seed */
}

static void padded_crops_are_shifted_copies_drawn_in_the_documented_order(void)
{
    enum { B = 12, H = 5, W = 6, C = 3, P = 2 };
    uint8_t in[B * H * W * C], out[B * H * W * C];
    struct evit_augment_config cfg = {P, 1};
    struct evit_rng r, mirror;
    int zero_seen = 0;
    fill(in, B, H, W, C);
    evit_rng_seed(&r, 2024);
    mirror = r;
    evit_augment_batch(out, in, B, H, W, C, &cfg, &r);
    for (int b = 0; b < B; b++) {
        int dy = 99, dx = 99, flip = 9;
        size_t off = (size_t)b * H * W * C;
        CHECK(identify(out + off, in + off, H, W, C, P, &dy, &dx, &flip) == 1);
        /* crop row, crop column, then the flip bit */
        int wy = (int)evit_rng_below(&mirror, 2 * P + 1) - P;
        int wx = (int)evit_rng_below(&mirror, 2 * P + 1) - P;
        int wf = (int)evit_rng_below(&mirror, 2);
        CHECK(dy == wy && dx == wx && flip == wf);
        for (size_t i = 0; i < (size_t)H * W * C; i++) zero_seen += out[off + i] == 0;
    }
    CHECK(zero_seen > 0);
    CHECK(memcmp(&r, &mirror, sizeof r) == 0); /* and nothing else was drawn */
}

static void the_same_seed_gives_the_same_batch_and_another_seed_a_different_one(void)
{
    enum { B = 8, H = 6, W = 6, C = 3 };
    uint8_t in[B * H * W * C], a[B * H * W * C], b[B * H * W * C], c[B * H * W * C];
    struct evit_augment_config cfg = {3, 1};
    struct evit_rng r;
    fill(in, B, H, W, C);
    evit_rng_seed(&r, 99);
    evit_augment_batch(a, in, B, H, W, C, &cfg, &r);
    evit_rng_seed(&r, 99);
    evit_augment_batch(b, in, B, H, W, C, &cfg, &r);
    evit_rng_seed(&r, 100);
    evit_augment_batch(c, in, B, H, W, C, &cfg, &r);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
}

static void over_many_draws_every_shift_and_both_flips_occur(void)
{
    enum { B = 600, H = 4, W = 4, C = 1, P = 2 };
    uint8_t *in = evit_malloc(B * H * W * C), *out = evit_malloc(B * H * W * C);
    struct evit_augment_config cfg = {P, 1};
    struct evit_rng r;
    int seen[2][2 * P + 1][2 * P + 1];
    memset(seen, 0, sizeof seen);
    fill(in, B, H, W, C);
    evit_rng_seed(&r, 1);
    evit_augment_batch(out, in, B, H, W, C, &cfg, &r);
    for (int b = 0; b < B; b++) {
        int dy = 0, dx = 0, flip = 0;
        size_t off = (size_t)b * H * W * C;
        int hits = identify(out + off, in + off, H, W, C, P, &dy, &dx, &flip);
        CHECK(hits == 1);
        if (hits == 1) seen[flip][dy + P][dx + P]++;
    }
    int missing = 0;
    for (int f = 0; f < 2; f++)
        for (int i = 0; i <= 2 * P; i++)
            for (int j = 0; j <= 2 * P; j++) missing += seen[f][i][j] == 0;
    CHECK(missing == 0); /* 50 outcomes, 12 expected draws each */
    free(in);
    free(out);
}

static void shuffle_is_a_reproducible_permutation(void)
{
    enum { N = 200 };
    int32_t a[N], b[N], c[N];
    int count[N] = {0}, moved = 0;
    struct evit_rng r;
    for (int i = 0; i < N; i++) a[i] = b[i] = c[i] = i;
    evit_rng_seed(&r, 7);
    evit_shuffle(a, N, &r);
    evit_rng_seed(&r, 7);
    evit_shuffle(b, N, &r);
    evit_rng_seed(&r, 8);
    evit_shuffle(c, N, &r);
    for (int i = 0; i < N; i++) {
        REQUIRE(a[i] >= 0 && a[i] < N);
        count[a[i]]++;
        moved += a[i] != i;
    }
    for (int i = 0; i < N; i++) CHECK(count[i] == 1);
    CHECK(moved > N / 2);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    /* trivial sizes are left alone */
    int32_t one[1] = {42};
    evit_shuffle(one, 1, &r);
    evit_shuffle(one, 0, &r);
    CHECK(one[0] == 42);
}

/* Fisher-Yates is uniform over all n! orders (a slip such as Sattolo's j < i
 * gives only cycles, and one fewer swap leaves orders out). */
static void every_order_of_four_is_about_equally_likely(void)
{
    enum { N = 4, PERMS = 24, DRAWS = 24000 };
    int count[256] = {0};
    struct evit_rng r;
    evit_rng_seed(&r, 3);
    for (int k = 0; k < DRAWS; k++) {
        int32_t a[N] = {0, 1, 2, 3};
        evit_shuffle(a, N, &r);
        count[a[0] * 64 + a[1] * 16 + a[2] * 4 + a[3]]++; /* base-4 code of the order */
    }
    int distinct = 0, lo = DRAWS, hi = 0;
    for (int i = 0; i < 256; i++) {
        if (!count[i]) continue;
        distinct++;
        lo = count[i] < lo ? count[i] : lo;
        hi = count[i] > hi ? count[i] : hi;
    }
    CHECK(distinct == PERMS);
    /* expected 1000 each, standard deviation ~31 */
    CHECK(lo > 850 && hi < 1150);
}

int main(void)
{
    RUN(no_padding_and_no_flip_copies_the_batch_and_draws_nothing);
    RUN(a_flip_is_an_exact_mirror);
    RUN(padded_crops_are_shifted_copies_drawn_in_the_documented_order);
    RUN(the_same_seed_gives_the_same_batch_and_another_seed_a_different_one);
    RUN(over_many_draws_every_shift_and_both_flips_occur);
    RUN(shuffle_is_a_reproducible_permutation);
    RUN(every_order_of_four_is_about_equally_likely);
    return test_summary();
}
