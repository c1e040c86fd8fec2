/* augment.c: see augment.h. */
#include "augment.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* One image's draw: crop shift (dy, dx) in [-p, p]^2, the flip bit, and
 * the erased rectangle (eh = 0: none) with the seed of its fill. */
struct aug_draw {
    int dy, dx, flip;
    int ey, ex, eh, ew;
    uint64_t fill;
};

/* The erasing part of augment.h's draw order. */
static void draw_erase(struct aug_draw *d, int H, int W, const struct evit_augment_config *cfg,
                       struct evit_rng *rng)
{
    d->eh = d->ew = 0;
    if (!(cfg->erase_prob > 0) || evit_rng_uniform(rng) >= cfg->erase_prob) return;
    double lr0 = log(cfg->erase_ratio[0]), lr1 = log(cfg->erase_ratio[1]);
    for (int t = 0; t < 10; t++) {
        double a = (double)H * W * (cfg->erase_area[0] + (cfg->erase_area[1] - cfg->erase_area[0]) * evit_rng_uniform(rng));
        double r = exp(lr0 + (lr1 - lr0) * evit_rng_uniform(rng));
        int h = (int)lround(sqrt(a * r)), w = (int)lround(sqrt(a / r));
        if (h < 1 || w < 1 || h > H || w > W) continue;
        d->ey = (int)evit_rng_below(rng, (uint64_t)(H - h + 1));
        d->ex = (int)evit_rng_below(rng, (uint64_t)(W - w + 1));
        d->eh = h;
        d->ew = w;
        d->fill = evit_rng_next(rng);
        return;
    }
}

static void erase_one(uint8_t *out /* (H, W, C) */, int W, int C, const struct aug_draw *d)
{
    struct evit_rng r;
    evit_rng_seed(&r, d->fill);
    for (int y = d->ey; y < d->ey + d->eh; y++) {
        uint8_t *p = out + ((size_t)y * W + d->ex) * C;
        for (size_t i = 0; i < (size_t)d->ew * C; i++) p[i] = (uint8_t)(evit_rng_next(&r) >> 56);
    }
}

/* out[y, x] = in[y + dy, xs + dx] with xs = flip ? W-1-x : x, fill outside.
 * The source column of output x is sx = (flip ? W-1-x : x) + dx; rows and
 * columns that fall outside [0, H) x [0, W) are left at the zero fill. */
static void augment_one(uint8_t *out /* (H, W, C) */, const uint8_t *in /* (H, W, C) */,
                        int H, int W, int C, struct aug_draw d, uint8_t fill)
{
    size_t row = (size_t)W * (size_t)C;
    memset(out, fill, (size_t)H * row);
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
    evit_augment_batch_masks(out, in, NULL, NULL, B, H, W, C, cfg, rng, 0);
}

void evit_augment_batch_masks(uint8_t *out, const uint8_t *in, uint8_t *mout, const uint8_t *min, int B, int H,
                              int W, int C, const struct evit_augment_config *cfg, struct evit_rng *rng,
                              uint8_t mask_fill)
{
    EVIT_ASSERT(out != in && (!mout || (min && mout != min)));
    /* an erased rectangle would need a label of its own */
    EVIT_ASSERT(!mout || !(cfg->erase_prob > 0));
    EVIT_ASSERT(B >= 0 && H > 0 && W > 0 && C > 0);
    EVIT_ASSERT(cfg->crop_padding >= 0);
    EVIT_ASSERT(!(cfg->erase_prob > 0) ||
                (cfg->erase_area[0] > 0 && cfg->erase_area[0] <= cfg->erase_area[1] && cfg->erase_area[1] <= 1 &&
                 cfg->erase_ratio[0] > 0 && cfg->erase_ratio[0] <= cfg->erase_ratio[1]));
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
        draw_erase(&d[b], H, W, cfg, rng);
    }

    const size_t img = (size_t)H * (size_t)W * (size_t)C;
#pragma omp parallel for schedule(static) if ((size_t)B * img > 65536)
    for (int b = 0; b < B; b++) {
        augment_one(out + (size_t)b * img, in + (size_t)b * img, H, W, C, d[b], 0);
        if (d[b].eh) erase_one(out + (size_t)b * img, W, C, &d[b]);
        if (mout) augment_one(mout + (size_t)b * H * W, min + (size_t)b * H * W, H, W, 1, d[b], mask_fill);
    }
    free(d);
}

void evit_augment_view(uint8_t *out, const uint8_t *in, int H, int W, int C, const struct evit_augment_config *cfg,
                       uint64_t seed, int epoch, int64_t index)
{
    evit_augment_view_masks(out, in, NULL, NULL, H, W, C, cfg, seed, epoch, index, 0);
}

void evit_augment_view_masks(uint8_t *out, const uint8_t *in, uint8_t *mout, const uint8_t *min, int H, int W, int C,
                             const struct evit_augment_config *cfg, uint64_t seed, int epoch, int64_t index,
                             uint8_t mask_fill)
{
    uint8_t key[20];
    struct evit_rng r;
    for (int i = 0; i < 8; i++) key[i] = (uint8_t)(seed >> (8 * i));
    for (int i = 0; i < 4; i++) key[8 + i] = (uint8_t)((uint32_t)epoch >> (8 * i));
    for (int i = 0; i < 8; i++) key[12 + i] = (uint8_t)((uint64_t)index >> (8 * i));
    evit_rng_seed(&r, evit_fnv1a64(key, sizeof key, EVIT_FNV_SEED));
    evit_augment_batch_masks(out, in, mout, min, 1, H, W, C, cfg, &r, mask_fill);
}

int evit_augment_same(const struct evit_augment_config *a, const struct evit_augment_config *b)
{
    int ea = a->erase_prob > 0, eb = b->erase_prob > 0;
    if (a->crop_padding != b->crop_padding || a->hflip != b->hflip || ea != eb) return 0;
    return !ea || (a->erase_prob == b->erase_prob && a->erase_area[0] == b->erase_area[0] &&
                   a->erase_area[1] == b->erase_area[1] && a->erase_ratio[0] == b->erase_ratio[0] &&
                   a->erase_ratio[1] == b->erase_ratio[1]);
}

void evit_augment_describe(char *buf, size_t n, const struct evit_augment_config *c)
{
    int k = snprintf(buf, n, "crop_padding %d, hflip %d", c->crop_padding, c->hflip);
    if (c->erase_prob > 0 && k >= 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, ", erase %g area [%g, %g] ratio [%g, %g]", c->erase_prob, c->erase_area[0],
                 c->erase_area[1], c->erase_ratio[0], c->erase_ratio[1]);
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
