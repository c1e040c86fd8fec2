/* augment.c: see augment.h. */
#include "augment.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* One image's draw: crop shift (dy, dx) in [-p, p]^2 and the flip bit. */
struct aug_draw {
    int dy, dx, flip;
};

/* out[y, x] = in[y + dy, xs + dx] with xs = flip ? W-1-x : x, zero outside.
 * The source column of output x is sx = (flip ? W-1-x : x) + dx; rows and
 * columns that fall outside [0, H) x [0, W) are left at the zero fill. */
static void augment_one(uint8_t *out /* (H, W, C) */, const uint8_t *in /* (H, W, C) */,
                        int H, int W, int C, struct aug_draw d)
{
    size_t row = (size_t)W * (size_t)C;
    memset(out, 0, (size_t)H * row);
    for (int y = 0; y < H; y++) {
        int sy = y + d.dy;
        if (sy < 0 || sy >= H) continue;
        const uint8_t *src = in + (size_t)sy * row;
        uint8_t *dst = out + (size_t)y * row;
        /* output columns whose source column x + dx lies inside the image */
        int x0 = d.dx < 0 ? -d.dx : 0, x1 = d.dx > 0 ? W - d.dx : W; /* [x0, x1) unflipped */
        if (x0 >= x1) continue;
        if (!d.flip) {
            memcpy(dst + (size_t)x0 * (size_t)C, src + (size_t)(x0 + d.dx) * (size_t)C,
                   (size_t)(x1 - x0) * (size_t)C);
        } else {
            /* flipped output x takes unflipped column W-1-x */
            for (int u = x0; u < x1; u++) {
                const uint8_t *s = src + (size_t)(u + d.dx) * (size_t)C;
                uint8_t *t = dst + (size_t)(W - 1 - u) * (size_t)C;
                for (int c = 0; c < C; c++) t[c] = s[c];
            }
        }
    }
}

void evit_augment_batch(uint8_t *out, const uint8_t *in, int B, int H, int W, int C,
                        const struct evit_augment_config *cfg, struct evit_rng *rng)
{
    EVIT_ASSERT(out != in);
    EVIT_ASSERT(B >= 0 && H > 0 && W > 0 && C > 0);
    EVIT_ASSERT(cfg->crop_padding >= 0);
    if (B == 0) return;
    const int p = cfg->crop_padding;

    /* Draw every image's parameters first, serially and in the documented
     * order, so that the copies can run in parallel without touching rng. */
    struct aug_draw *d = evit_malloc(sizeof *d * (size_t)B); /* (B) */
    for (int b = 0; b < B; b++) {
        d[b].dy = d[b].dx = d[b].flip = 0;
        if (p > 0) {
            d[b].dy = (int)evit_rng_below(rng, (uint64_t)(2 * p + 1)) - p;
            d[b].dx = (int)evit_rng_below(rng, (uint64_t)(2 * p + 1)) - p;
        }
        if (cfg->hflip) d[b].flip = (int)evit_rng_below(rng, 2);
    }

    const size_t img = (size_t)H * (size_t)W * (size_t)C;
#pragma omp parallel for schedule(static) if ((size_t)B * img > 65536)
    for (int b = 0; b < B; b++) augment_one(out + (size_t)b * img, in + (size_t)b * img, H, W, C, d[b]);
    free(d);
}

void evit_augment_view(uint8_t *out, const uint8_t *in, int H, int W, int C, const struct evit_augment_config *cfg,
                       uint64_t seed, int epoch, int64_t index)
{
    uint8_t key[20];
    struct evit_rng r;
    for (int i = 0; i < 8; i++) key[i] = (uint8_t)(seed >> (8 * i));
    for (int i = 0; i < 4; i++) key[8 + i] = (uint8_t)((uint32_t)epoch >> (8 * i));
    for (int i = 0; i < 8; i++) key[12 + i] = (uint8_t)((uint64_t)index >> (8 * i));
    evit_rng_seed(&r, evit_fnv1a64(key, sizeof key, EVIT_FNV_SEED));
    evit_augment_batch(out, in, 1, H, W, C, cfg, &r);
}

void evit_shuffle(int32_t *idx, int n, struct evit_rng *rng)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)evit_rng_below(rng, (uint64_t)i + 1);
        int32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
