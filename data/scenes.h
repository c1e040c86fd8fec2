/* scenes.h: a segmentation dataset composed from a classification one
 * (evit-data scenes): items of a one-channel source such as Fashion-MNIST,
 * resampled to random sizes and pasted at random places on a larger
 * textured canvas; the mask is taken from each item's own pixels.
 *
 * Scene i of the output is a function of (src, opts, seed, i) alone: it
 * has its own generator stream, seeded from a hash of (seed, i), so it does
 * not change when count grows and two seeds give independent scenes.  Only
 * integer draws and integer arithmetic make a pixel, so the bytes are the
 * same on every machine and libc.
 *
 * A scene, in the order its stream is drawn:
 *   background  two octaves of value noise, each a lattice of uniform
 *               integers at a random offset, interpolated with the integer
 *               smoothstep 3t^2 - 2t^3 (exact rationals, rounded once):
 *               cells of 16 px with values 0..40 plus cells of 4 px with
 *               values 0..20, so every background pixel is in [0, 60].
 *               The cell sizes are in pixels, not fractions of the canvas,
 *               so the texture keeps its grain against the items at any
 *               canvas size.
 *   items       their count k uniform in [min_items, max_items], then per
 *               item: the source index uniform over [0, src->n); its height
 *               uniform over the integers [round(h min_scale),
 *               round(h max_scale)] (at least 1) and its width
 *               round(height w / h); its top-left corner uniform over the
 *               places where it fits wholly in the canvas.
 * An item is resampled bilinearly (pixel centres aligned, source
 * coordinates clamped to the edges, weights in 16-bit fixed point).  Where
 * its value is > threshold the canvas takes that value and the mask
 * label + 1; later items are drawn over earlier ones, so the mask names
 * the item on top.  Elsewhere the canvas keeps the background and the mask
 * stays 0: faint item pixels are not blended in, so every pixel an item
 * changes is one its mask labels. */
#ifndef EVIT_SCENES_H
#define EVIT_SCENES_H

#include <stdint.h>

struct evit_dataset;

#define EVIT_SCENES_MAX_ITEMS 16
#define EVIT_SCENES_MAX_SIZE 4096

struct evit_scenes_opts {
    int size;                    /* canvas side in pixels, 1..EVIT_SCENES_MAX_SIZE */
    int count;                   /* scenes to make, >= 1 */
    int min_items, max_items;    /* items per scene, uniform in [min, max], 1..16 */
    double min_scale, max_scale; /* item side = round(source side * scale), 0 < min <= max */
    int threshold;               /* a resampled item pixel > threshold is foreground, 0..254 */
    uint64_t seed;
};

/* size 96, count 0 (the caller sets it), 1..4 items, scale 0.75..1.75,
 * threshold 24, seed 0. */
void evit_scenes_defaults(struct evit_scenes_opts *o);

/* Makes o->count scenes from src (read from path, which errors name), a
 * classification dataset as evit_dataset_load returns it (labels in
 * range) with one channel and at most 254 classes, into *out: n = count, h = w = size,
 * c = 1, masks (n, size, size), labels NULL, ignore -1, classes
 * src->classes + 1 named "background" then src's names, a source line
 * naming src's source and the options, mean and std computed.  out owns
 * its buffers (evit_dataset_free).  Bad options or a source that cannot
 * make scenes (masks, another channel count, an item larger than the
 * canvas at max_scale) print one line and return EVIT_ERR with *out
 * untouched. */
int evit_scenes_make(struct evit_dataset *out, const struct evit_dataset *src, const char *path,
                     const struct evit_scenes_opts *o);

#endif
