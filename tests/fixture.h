/* fixture.h: the small models and inputs several unit tests share.
 * Header-only (static inline), included after test.h by tests that need a
 * ViT. */
#ifndef EVIT_TEST_FIXTURE_H
#define EVIT_TEST_FIXTURE_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "rng.h"
#include "util.h"
#include "vit.h"

/* img 8, patch 4 (2x2 grid, T 5), 2 channels, D 12, 5 classes;
 * block 0: 3 heads of 4 (I 12), mlp 20; block 1: 2 heads of 4 (I 8), mlp 8:
 * per-block shapes, as a pruned model has. */
/* A config from its numbers, with blocks[0 .. depth) as given. */
static inline struct evit_vit_config make_config(const char *name, int img, int channels, int patch, int classes,
                                                 int dim, int depth, const struct evit_block_shape *blocks)
{
    struct evit_vit_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.img_size = img;
    c.channels = channels;
    c.patch = patch;
    c.classes = classes;
    c.dim = dim;
    c.depth = depth;
    for (int l = 0; l < depth; l++) c.blocks[l] = blocks[l];
    return c;
}

/* c with a seg_mlp head (vit.h) of width dim reading the n blocks levels. */
static inline void set_mlp_decoder(struct evit_vit_config *c, int dim, int n, const int *levels)
{
    c->head = EVIT_HEAD_SEG_MLP;
    c->decoder_dim = dim;
    c->decoder_nlevels = n;
    memset(c->decoder_levels, 0, sizeof c->decoder_levels);
    memcpy(c->decoder_levels, levels, sizeof(int) * (size_t)n);
}

static inline struct evit_vit_config tiny_config(void)
{
    static const struct evit_block_shape b[] = {{3, 4, 20, 0}, {2, 4, 8, 0}};
    return make_config("tiny", 8, 2, 4, 5, 12, 2, b);
}

/* B random images of c's size, from a seed; caller frees. */
static inline uint8_t *random_images(const struct evit_vit_config *c, int B, uint64_t seed)
{
    struct evit_rng r;
    evit_rng_seed(&r, seed);
    size_t n = (size_t)B * c->img_size * c->img_size * c->channels;
    uint8_t *img = evit_malloc(n);
    for (size_t i = 0; i < n; i++) img[i] = (uint8_t)evit_rng_below(&r, 256);
    return img;
}

/* Every parameter drawn from one generator, in tensor order: weights
 * N(0, weight_std^2) (weight_std 0: N(0, 1/fan_in), so activations keep
 * their size through the layers), class token and positions N(0, 0.5^2),
 * biases N(0, bias_std^2), norm weights 1 + N(0, norm_std^2).  Mean and std
 * are left to the caller. */
static inline void randomise_params(struct evit_vit *m, uint64_t seed, double weight_std,
                                    double bias_std, double norm_std)
{
    struct evit_rng r;
    int n;
    evit_rng_seed(&r, seed);
    struct evit_tensor_ref *t = evit_vit_tensor_list(&m->cfg, &m->p, &n);
    for (int i = 0; i < n; i++) {
        double wstd = weight_std > 0.0 ? weight_std
                      : t[i].ndim >= 2 ? 1.0 / sqrt((double)(t[i].numel / (size_t)t[i].shape[0]))
                                       : 0.0;
        for (size_t j = 0; j < t[i].numel; j++) {
            double z = evit_rng_normal(&r);
            switch (t[i].kind) {
            case EVIT_T_WEIGHT: t[i].data[j] = (float)(wstd * z); break;
            case EVIT_T_EMBED: t[i].data[j] = (float)(0.5 * z); break;
            case EVIT_T_BIAS:
            case EVIT_T_NORM_B: t[i].data[j] = (float)(bias_std * z); break;
            case EVIT_T_NORM_W: t[i].data[j] = (float)(1.0 + norm_std * z); break;
            }
        }
    }
    free(t);
}

#endif
