/* scenes.c: see scenes.h. */
#include "scenes.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "rng.h"
#include "util.h"

/* Bilinear weights are fractions of 2^16. */
#define FRAC_BITS 16
#define FRAC_ONE ((int64_t)1 << FRAC_BITS)

void evit_scenes_defaults(struct evit_scenes_opts *o)
{
    memset(o, 0, sizeof *o);
    o->size = 96;
    o->count = 0;
    o->min_items = 1;
    o->max_items = 4;
    o->min_scale = 0.75;
    o->max_scale = 1.75;
    o->threshold = 24;
    o->seed = 0;
}

static int check_opts(const char *path, const struct evit_scenes_opts *o)
{
    if (o->size < 1 || o->size > EVIT_SCENES_MAX_SIZE)
        return evit_error("%s: scenes: the canvas side must be in [1, %d] pixels, got %d", path,
                          EVIT_SCENES_MAX_SIZE, o->size);
    if (o->count < 1) return evit_error("%s: scenes: the scene count must be >= 1, got %d", path, o->count);
    if (o->min_items < 1 || o->min_items > o->max_items || o->max_items > EVIT_SCENES_MAX_ITEMS)
        return evit_error("%s: scenes: items per scene must satisfy 1 <= min <= max <= %d, got %d..%d", path,
                          EVIT_SCENES_MAX_ITEMS, o->min_items, o->max_items);
    /* written so that NaN fails too */
    if (!(o->min_scale > 0.0 && o->min_scale <= o->max_scale))
        return evit_error("%s: scenes: scales must satisfy 0 < min <= max, got %g..%g", path, o->min_scale,
                          o->max_scale);
    if (o->threshold < 0 || o->threshold >= 255)
        return evit_error("%s: scenes: the foreground threshold must be in [0, 254], got %d", path,
                          o->threshold);
    return EVIT_OK;
}

/* round(side * scale) > size, decided in double before any conversion to
 * int (scale may be huge or infinite): round(v) > size <=> v + 0.5 >= size + 1. */
static int too_big(int side, double scale, int size)
{
    return (double)side * scale + 0.5 >= (double)size + 1.0;
}

/* round(side * scale) for a product known to fit: one IEEE multiplication
 * and addition, then truncation, all exactly defined. */
static int scaled_side(int side, double scale) { return (int)((double)side * scale + 0.5); }

static int check_source(const char *path, const struct evit_dataset *src, const struct evit_scenes_opts *o)
{
    EVIT_ASSERT(src->images && src->class_names && src->h >= 1 && src->w >= 1);
    if (src->masks)
        return evit_error("%s: scenes need a one-channel classification dataset, got a "
                          "segmentation dataset", path);
    if (!src->labels)
        return evit_error("%s: scenes need a one-channel classification dataset, got one "
                          "without labels", path);
    if (src->c != 1)
        return evit_error("%s: scenes need a one-channel classification dataset, got %d channels", path,
                          src->c);
    if (src->n < 1) return evit_error("%s: scenes need a source with at least one image", path);
    /* masks are uint8 and class 0 is the background */
    if (src->classes < 1 || src->classes > 254)
        return evit_error("%s: scenes need a source of 1 to 254 classes, got %d", path, src->classes);
    if (too_big(src->h, o->max_scale, o->size) || too_big(src->w, o->max_scale, o->size))
        return evit_error("%s: scenes: source items of %dx%d at scale %g do not fit the %d px canvas", path,
                          src->h, src->w, o->max_scale, o->size);
    return EVIT_OK;
}

/* Scene i's own stream.  Mixing the key again (rather than seeding with
 * seed + i) matters: evit_rng_seed walks splitmix64 from its seed in steps
 * of the golden ratio, so keys one step apart would share three of their
 * four state words. */
static void scene_rng(struct evit_rng *r, uint64_t seed, int i)
{
    evit_rng_seed(r, evit_rng_mix(evit_rng_mix(seed) + (uint64_t)i * 0x9e3779b97f4a7c15ULL));
}

/* Adds one octave of value noise, values in [0, amp], to bg (size, size).
 * Lattice values v are uniform integers, one every `cell` pixels from a
 * random offset; between them
 *   bg += round(((v00 (D - wx) + v01 wx) (D - wy) + (v10 (D - wx) + v11 wx) wy) / D^2)
 * with w(t) = t^2 (3 cell - 2 t) and D = cell^3, the smoothstep 3s^2 - 2s^3
 * of s = t / cell scaled by D: exact in integers, and its zero slope at the
 * lattice points hides the grid that linear interpolation shows. */
static void add_octave(uint8_t *bg /* (size, size) */, int size, int cell, int amp,
                       struct evit_rng *r)
{
    EVIT_ASSERT(cell >= 1 && cell <= 16);
    int oy = (int)evit_rng_below(r, (uint64_t)cell), ox = (int)evit_rng_below(r, (uint64_t)cell);
    /* the last pixel reads lattice point (size - 1 + cell - 1) / cell + 1 */
    int g = size / cell + 3;
    int32_t *lat = evit_malloc(sizeof(int32_t) * (size_t)g * (size_t)g); /* (g, g) */
    for (size_t k = 0; k < (size_t)g * (size_t)g; k++)
        lat[k] = (int32_t)evit_rng_below(r, (uint64_t)amp + 1);
    int64_t w[16];
    int64_t d = (int64_t)cell * cell * cell;
    for (int t = 0; t < cell; t++) w[t] = (int64_t)t * t * (3 * cell - 2 * t);
    for (int y = 0; y < size; y++) {
        int gy = (y + oy) / cell;
        int64_t wy = w[(y + oy) % cell];
        const int32_t *r0 = lat + (size_t)gy * g, *r1 = r0 + g;
        for (int x = 0; x < size; x++) {
            int gx = (x + ox) / cell;
            int64_t wx = w[(x + ox) % cell];
            int64_t top = r0[gx] * (d - wx) + r0[gx + 1] * wx;
            int64_t bot = r1[gx] * (d - wx) + r1[gx + 1] * wx;
            int64_t acc = top * (d - wy) + bot * wy;
            bg[(size_t)y * size + x] += (uint8_t)((acc + d * d / 2) / (d * d));
        }
    }
    free(lat);
}

/* Two octaves, [0, 40] coarse and [0, 20] fine: a background in [0, 60]. */
static void background(uint8_t *img /* (size, size) */, int size, struct evit_rng *r)
{
    memset(img, 0, (size_t)size * size);
    add_octave(img, size, 16, 40, r);
    add_octave(img, size, 4, 20, r);
}

/* Where output coordinate o of `out` samples an axis of `in` pixels, with
 * pixel centres aligned: s = (o + 1/2) in / out - 1/2 = ((2o + 1) in - out) / (2 out),
 * clamped to [0, in - 1]; i0 = floor(s), frac = s - i0 in fixed point. */
struct tap {
    int i0, i1;
    int64_t frac;
};

static struct tap tap_at(int o, int out, int in)
{
    int64_t num = (int64_t)(2 * o + 1) * in - out;
    if (num < 0) num = 0;
    int64_t s = num * FRAC_ONE / (2 * (int64_t)out);
    if (s > (int64_t)(in - 1) * FRAC_ONE) s = (int64_t)(in - 1) * FRAC_ONE;
    struct tap t = {(int)(s >> FRAC_BITS), 0, s & (FRAC_ONE - 1)};
    t.i1 = t.i0 + 1 < in ? t.i0 + 1 : in - 1;
    return t;
}

/* Bilinear sample of px at (ty, tx), rounded to the nearest integer. */
static int bilinear(const uint8_t *px /* (h, w) */, int w, struct tap ty, struct tap tx)
{
    const uint8_t *r0 = px + (size_t)ty.i0 * w, *r1 = px + (size_t)ty.i1 * w;
    int64_t top = r0[tx.i0] * (FRAC_ONE - tx.frac) + r0[tx.i1] * tx.frac;
    int64_t bot = r1[tx.i0] * (FRAC_ONE - tx.frac) + r1[tx.i1] * tx.frac;
    int64_t acc = top * (FRAC_ONE - ty.frac) + bot * ty.frac;
    return (int)((acc + (FRAC_ONE * FRAC_ONE / 2)) >> (2 * FRAC_BITS));
}

/* One item placed on the canvas. */
struct item {
    const uint8_t *px; /* (h, w) source pixels */
    int h, w;          /* source size */
    int ih, iw;        /* size on the canvas */
    int top, left;
    uint8_t value; /* mask value: label + 1 */
};

/* Resamples it to (ih, iw) and pastes the pixels above threshold over
 * whatever is there, image and mask alike. */
static void paste(uint8_t *img /* (size, size) */, uint8_t *mask /* (size, size) */, int size,
                  const struct item *it, int threshold)
{
    for (int y = 0; y < it->ih; y++) {
        struct tap ty = tap_at(y, it->ih, it->h);
        size_t row = (size_t)(it->top + y) * size + it->left;
        for (int x = 0; x < it->iw; x++) {
            int v = bilinear(it->px, it->w, ty, tap_at(x, it->iw, it->w));
            if (v <= threshold) continue;
            img[row + x] = (uint8_t)v;
            mask[row + x] = it->value;
        }
    }
}

static void make_scene(uint8_t *img /* (size, size) */, uint8_t *mask /* (size, size) */,
                       const struct evit_dataset *src, const struct evit_scenes_opts *o, int i)
{
    struct evit_rng r;
    scene_rng(&r, o->seed, i);
    background(img, o->size, &r);
    memset(mask, 0, (size_t)o->size * o->size);
    int lo = scaled_side(src->h, o->min_scale), hi = scaled_side(src->h, o->max_scale);
    if (lo < 1) lo = 1;
    if (hi < lo) hi = lo;
    int k = o->min_items + (int)evit_rng_below(&r, (uint64_t)(o->max_items - o->min_items + 1));
    for (int j = 0; j < k; j++) {
        int s = (int)evit_rng_below(&r, (uint64_t)src->n);
        struct item it = {.px = src->images + (size_t)s * src->h * src->w,
                          .h = src->h,
                          .w = src->w,
                          .value = (uint8_t)(src->labels[s] + 1)};
        it.ih = lo + (int)evit_rng_below(&r, (uint64_t)(hi - lo + 1));
        /* the width keeps the source's aspect: round(ih w / h) in integers */
        it.iw = (int)(((int64_t)it.ih * src->w + src->h / 2) / src->h);
        if (it.iw < 1) it.iw = 1;
        if (it.iw > o->size) it.iw = o->size;
        it.top = (int)evit_rng_below(&r, (uint64_t)(o->size - it.ih + 1));
        it.left = (int)evit_rng_below(&r, (uint64_t)(o->size - it.iw + 1));
        paste(img, mask, o->size, &it, o->threshold);
    }
}

int evit_scenes_make(struct evit_dataset *out, const struct evit_dataset *src, const char *path,
                     const struct evit_scenes_opts *o)
{
    if (check_opts(path, o) < 0 || check_source(path, src, o) < 0) return EVIT_ERR;
    struct evit_dataset d;
    memset(&d, 0, sizeof d);
    d.n = o->count;
    d.h = d.w = o->size;
    d.c = 1;
    d.ignore = -1;
    d.classes = src->classes + 1;
    d.class_names = evit_malloc(sizeof(char *) * (size_t)d.classes);
    d.class_names[0] = evit_strdup("background");
    for (int k = 0; k < src->classes; k++) d.class_names[k + 1] = evit_strdup(src->class_names[k]);
    size_t plane = (size_t)o->size * o->size;
    d.images = evit_malloc(plane * (size_t)d.n);
    d.masks = evit_malloc(plane * (size_t)d.n);
    for (int i = 0; i < d.n; i++)
        make_scene(d.images + plane * i, d.masks + plane * i, src, o, i);
    d.source = evit_strfmt("scenes of %s: %d px, %d..%d items, scale %g..%g, threshold %d, "
                           "seed %" PRIu64,
                           src->source && src->source[0] ? src->source : "(unnamed)", o->size,
                           o->min_items, o->max_items, o->min_scale, o->max_scale, o->threshold,
                           o->seed);
    evit_dataset_stats(&d);
    *out = d;
    return EVIT_OK;
}
