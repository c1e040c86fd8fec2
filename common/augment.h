/* augment.h: training-time data augmentation on uint8 image batches and the
 * epoch shuffle, both driven by an evit_rng so that a run (and a resumed run,
 * which restores the generator) is reproducible from its seed. */
#ifndef EVIT_AUGMENT_H
#define EVIT_AUGMENT_H

#include <stdint.h>

#include "rng.h"

struct evit_augment_config {
    int crop_padding; /* 0 = off: zero-pad by this many pixels on each side, then take a random
                         HxW crop (torchvision RandomCrop(size, padding=p), fill 0) */
    int hflip;        /* 1 = flip left-right with probability 1/2 */
};

/* out and in are (B, H, W, C) uint8; out != in.  Per image, in this order,
 * draws the crop offset i in [0, 2p] (rows), j in [0, 2p] (columns), when
 * crop_padding = p > 0, then the flip bit, when hflip; so
 *   out[b, y, x, c] = in[b, y + i - p, x' + j - p, c]   (0 outside the image),
 *   x' = flip ? W - 1 - x : x
 * (crop then flip, as RandomCrop followed by RandomHorizontalFlip). */
void evit_augment_batch(uint8_t *out /* (B, H, W, C) */, const uint8_t *in /* (B, H, W, C) */,
                        int B, int H, int W, int C, const struct evit_augment_config *cfg,
                        struct evit_rng *rng);

/* View number `epoch` of image `index` in a run seeded `seed`, as
 * evit_augment_batch draws it for one image from its own generator:
 * xoshiro256** seeded by FNV-1a 64 over (seed, epoch, index), each as
 * little-endian bytes (u64, u32, u64).  The view depends on those three
 * numbers alone, not on the batch, the order or the process, so a teacher's
 * logits of a view (evit-eval --augment) and the student's replay of it
 * (evit-distill) see the same pixels. */
void evit_augment_view(uint8_t *out /* (H, W, C) */, const uint8_t *in /* (H, W, C) */, int H, int W, int C,
                       const struct evit_augment_config *cfg, uint64_t seed, int epoch, int64_t index);

/* Fisher-Yates shuffle of idx[0..n) with rng: for i = n-1 down to 1, swap
 * idx[i] with idx[j], j uniform in [0, i]. */
void evit_shuffle(int32_t *idx /* (n) */, int n, struct evit_rng *rng);

#endif
