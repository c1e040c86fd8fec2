/* augment.h: training-time data augmentation on uint8 image batches and the
 * epoch shuffle, both driven by an evit_rng so that a run (and a resumed run,
 * which restores the generator) is reproducible from its seed. */
#ifndef EVIT_AUGMENT_H
#define EVIT_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

struct evit_augment_config {
    int crop_padding; /* 0 = off: zero-pad by this many pixels on each side, then take a random
                         HxW crop (torchvision RandomCrop(size, padding=p), fill 0) */
    int hflip;        /* 1 = flip left-right with probability 1/2 */
    /* Random erasing (Zhong et al., 2017): with probability erase_prob (0 =
     * off) one rectangle of the (cropped, flipped) image is filled with
     * uniform random bytes; its area is a fraction of H W drawn uniformly
     * from erase_area, its aspect h / w log-uniformly from erase_ratio. */
    double erase_prob;
    double erase_area[2];  /* [lo, hi], 0 < lo <= hi <= 1 */
    double erase_ratio[2]; /* [lo, hi], 0 < lo <= hi */
};

/* The defaults of random erasing's ranges (the paper's and torchvision's). */
#define EVIT_ERASE_AREA_LO 0.02
#define EVIT_ERASE_AREA_HI 0.33
#define EVIT_ERASE_RATIO_LO 0.3
#define EVIT_ERASE_RATIO_HI 3.3

/* out and in are (B, H, W, C) uint8; out != in.  Per image, in this order,
 * draws the crop offset i in [0, 2p] (rows), j in [0, 2p] (columns), when
 * crop_padding = p > 0, then the flip bit, when hflip; so
 *   out[b, y, x, c] = in[b, y + i - p, x' + j - p, c]   (0 outside the image),
 *   x' = flip ? W - 1 - x : x
 * (crop then flip, as RandomCrop followed by RandomHorizontalFlip).  Then,
 * when erase_prob > 0: u uniform, and if u < erase_prob up to ten tries of
 * (area a = H W uniform(erase_area), r = exp(uniform(log erase_ratio)),
 * h = round(sqrt(a r)), w = round(sqrt(a / r))) until 1 <= h <= H and
 * 1 <= w <= W, then the corner y0 in [0, H - h], x0 in [0, W - w] and one
 * 64-bit seed whose xoshiro256** stream gives the h w C fill bytes row by
 * row (torchvision's RandomErasing with value "random", on bytes). */
void evit_augment_batch(uint8_t *out /* (B, H, W, C) */, const uint8_t *in /* (B, H, W, C) */,
                        int B, int H, int W, int C, const struct evit_augment_config *cfg,
                        struct evit_rng *rng);

/* The same for a segmentation batch: the masks (B, H, W) min move with
 * their images into mout (the same crop and flip, from the same draws in
 * the same order, so out is evit_augment_batch's), a mask pixel that
 * comes from outside the image taking mask_fill (the ignore value, when
 * the dataset has one).  Erasing is not allowed here: the erased pixels
 * would need a label. */
void evit_augment_batch_masks(uint8_t *out /* (B, H, W, C) */, const uint8_t *in /* (B, H, W, C) */,
                              uint8_t *mout /* (B, H, W) */, const uint8_t *min /* (B, H, W) */, int B, int H,
                              int W, int C, const struct evit_augment_config *cfg, struct evit_rng *rng,
                              uint8_t mask_fill);

/* View number `epoch` of image `index` in a run seeded `seed`, as
 * evit_augment_batch draws it for one image from its own generator:
 * xoshiro256** seeded by FNV-1a 64 over (seed, epoch, index), each as
 * little-endian bytes (u64, u32, u64).  The view depends on those three
 * numbers alone, not on the batch, the order or the process, so a teacher's
 * logits of a view (evit-eval --augment) and the student's replay of it
 * (evit-distill) see the same pixels. */
void evit_augment_view(uint8_t *out /* (H, W, C) */, const uint8_t *in /* (H, W, C) */, int H, int W, int C,
                       const struct evit_augment_config *cfg, uint64_t seed, int epoch, int64_t index);

/* The same view of a segmentation image with its mask: min (H, W) moves
 * into mout by the same crop and flip (evit_augment_batch_masks, its
 * mask_fill where the view reaches outside the image), so out is
 * evit_augment_view's bit for bit.  No erasing. */
void evit_augment_view_masks(uint8_t *out /* (H, W, C) */, const uint8_t *in /* (H, W, C) */,
                             uint8_t *mout /* (H, W) or NULL */, const uint8_t *min /* (H, W) or NULL */, int H,
                             int W, int C, const struct evit_augment_config *cfg, uint64_t seed, int epoch,
                             int64_t index, uint8_t mask_fill);

/* 1 when a and b draw the same views (erase ranges count only when
 * erasing is on). */
int evit_augment_same(const struct evit_augment_config *a, const struct evit_augment_config *b);
/* "crop_padding 2, hflip 1" and, when erasing, ", erase 0.5 area [0.02,
 * 0.33] ratio [0.3, 3.3]" into buf. */
void evit_augment_describe(char *buf, size_t n, const struct evit_augment_config *c);

/* Fisher-Yates shuffle of idx[0..n) with rng: for i = n-1 down to 1, swap
 * idx[i] with idx[j], j uniform in [0, i]. */
void evit_shuffle(int32_t *idx /* (n) */, int n, struct evit_rng *rng);

#endif
