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

/* Fisher-Yates shuffle of idx[0..n) with rng: for i = n-1 down to 1, swap
 * idx[i] with idx[j], j uniform in [0, i]. */
void evit_shuffle(int32_t *idx /* (n) */, int n, struct evit_rng *rng);

#endif
