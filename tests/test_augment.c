/* test_augment.c: random crop with zero padding and horizontal flip are exact
 * shifted / mirrored copies drawn reproducibly from the seed; the shuffle is a
 * reproducible permutation. */
#include <math.h>
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
    struct evit_augment_config cfg = {.crop_padding = 0, .hflip = 0};
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
    struct evit_augment_config cfg = {.crop_padding = 0, .hflip = 1};
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
    struct evit_augment_config cfg = {.crop_padding = P, .hflip = 1};
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
    struct evit_augment_config cfg = {.crop_padding = 3, .hflip = 1};
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
    struct evit_augment_config cfg = {.crop_padding = P, .hflip = 1};
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

/* Erasing with probability 1 on distinct pixels: the pixels that changed
 * lie in one rectangle whose area and aspect are in the configured ranges
 * (up to the rounding of h and w), nearly all of it changed (a random byte
 * equals the old one 1 time in 256); with probability 1/2 about half the
 * images are erased; the same seed erases the same. */
static void erasing_fills_one_rectangle_of_the_configured_size_at_the_configured_rate(void)
{
    enum { B = 400, H = 28, W = 28, C = 1 };
    static uint8_t in[B * H * W * C], out[B * H * W * C], again[B * H * W * C];
    struct evit_augment_config cfg = {.erase_prob = 1.0, .erase_area = {0.1, 0.2}, .erase_ratio = {0.5, 2.0}};
    struct evit_rng r;
    int erased = 0, bad = 0;
    fill(in, B, H, W, C);
    for (int pass = 0; pass < 2; pass++) {
        if (pass) cfg.erase_prob = 0.5;
        evit_rng_seed(&r, 21 + pass);
        evit_augment_batch(out, in, B, H, W, C, &cfg, &r);
        erased = 0;
        for (int b = 0; b < B; b++) {
            const uint8_t *x = in + (size_t)b * H * W, *y = out + (size_t)b * H * W;
            int y0 = H, y1 = -1, x0 = W, x1 = -1, changed = 0;
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++)
                    if (x[i * W + j] != y[i * W + j]) {
                        changed++;
                        y0 = i < y0 ? i : y0, y1 = i > y1 ? i : y1;
                        x0 = j < x0 ? j : x0, x1 = j > x1 ? j : x1;
                    }
            if (!changed) continue;
            erased++;
            int h = y1 - y0 + 1, w = x1 - x0 + 1;
            double area = (double)h * w / (H * W);
            /* h and w are rounded: allow half a pixel on each */
            double lo = (sqrt(0.1 * H * W * 0.5) - 1.0) * (sqrt(0.1 * H * W / 2.0) - 1.0) / (H * W);
            double hi = (sqrt(0.2 * H * W * 2.0) + 1.0) * (sqrt(0.2 * H * W / 0.5) + 1.0) / (H * W);
            if (area < lo || area > hi || (double)h / w < 0.5 * 0.5 || (double)h / w > 2.0 * 2.0 ||
                changed < 0.9 * h * w)
                bad++;
        }
        if (!pass) CHECK(erased >= B - 3); /* a whole rectangle can match by chance only 1 in 256^k */
        if (pass) CHECK(erased > 0.42 * B && erased < 0.58 * B);
        CHECK(bad == 0);
    }
    evit_rng_seed(&r, 22);
    evit_augment_batch(again, in, B, H, W, C, &cfg, &r);
    CHECK(memcmp(out, again, sizeof out) == 0);
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

/* Masks whose pixel is the image's first channel mod 7: after a crop and
 * flip, every mask pixel is its image pixel's value mod 7, except where
 * the crop reached outside (image 0, mask the fill); and the images are
 * those evit_augment_batch draws from the same generator. */
static void masks_move_with_their_images(void)
{
    enum { B = 6, H = 5, W = 7, C = 2 };
    struct evit_augment_config cfg = {.crop_padding = 2, .hflip = 1};
    uint8_t in[B * H * W * C], out[B * H * W * C], plain[B * H * W * C], min[B * H * W], mout[B * H * W];
    struct evit_rng r1, r2;
    fill(in, B, H, W, C);
    for (int i = 0; i < B * H * W; i++) min[i] = (uint8_t)(in[i * C] % 7);
    evit_rng_seed(&r1, 11);
    evit_rng_seed(&r2, 11);
    evit_augment_batch_masks(out, in, mout, min, B, H, W, C, &cfg, &r1, 255);
    evit_augment_batch(plain, in, B, H, W, C, &cfg, &r2);
    CHECK(memcmp(out, plain, sizeof out) == 0);
    CHECK(evit_rng_next(&r1) == evit_rng_next(&r2));
    int outside = 0, moved = 0;
    for (int i = 0; i < B * H * W; i++) {
        if (out[i * C] == 0) { /* fill: values of fill() are never 0 */
            CHECK(mout[i] == 255);
            outside++;
        } else {
            CHECK(mout[i] == out[i * C] % 7);
            moved += mout[i] != min[i];
        }
    }
    CHECK(outside > 0 && moved > 0); /* the draws did crop and move something */
}

int main(void)
{
    RUN(no_padding_and_no_flip_copies_the_batch_and_draws_nothing);
    RUN(a_flip_is_an_exact_mirror);
    RUN(padded_crops_are_shifted_copies_drawn_in_the_documented_order);
    RUN(the_same_seed_gives_the_same_batch_and_another_seed_a_different_one);
    RUN(over_many_draws_every_shift_and_both_flips_occur);
    RUN(erasing_fills_one_rectangle_of_the_configured_size_at_the_configured_rate);
    RUN(masks_move_with_their_images);
    RUN(shuffle_is_a_reproducible_permutation);
    RUN(every_order_of_four_is_about_equally_likely);
    return test_summary();
}
