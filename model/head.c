/* head.c: see head.h. */
#include "head.h"

#include <string.h>

#include "ops.h"
#include "util.h"

int evit_head_is_seg(int head) { return head == EVIT_HEAD_SEG_LINEAR || head == EVIT_HEAD_SEG_MLP; }

size_t evit_head_scratch(const struct evit_vit_config *c, int B)
{
    if (!evit_head_is_seg(c->head)) return 0;
    /* the upsampled logits and their gradient */
    return 2 * (size_t)B * c->img_size * c->img_size * c->classes;
}

double evit_head_xent(float *dlogits, float *scratch, const float *logits, const int32_t *labels,
                      const uint8_t *masks, int ignore, int B, const struct evit_vit_config *c)
{
    int K = c->classes;
    if (!evit_head_is_seg(c->head)) {
        EVIT_ASSERT(labels != NULL);
        evit_xent_smooth_backward(dlogits, logits, labels, 0.0f, 1.0f, B, K);
        return evit_xent_smooth_forward(logits, labels, 0.0f, B, K);
    }
    EVIT_ASSERT(masks != NULL);
    int g = evit_config_grid(c), S = c->img_size;
    size_t P = (size_t)B * S * S;
    float *pixels = scratch, *dpixels = scratch + P * K;
    evit_upsample_forward(pixels, logits, B, g, g, S, S, K);
    memset(dpixels, 0, sizeof(float) * P * K);
    double loss = evit_xent_pixels_forward(NULL, pixels, masks, ignore, P, K);
    evit_xent_pixels_backward(dpixels, pixels, masks, ignore, 1.0f, P, K);
    evit_upsample_backward(dlogits, dpixels, B, g, g, S, S, K);
    return loss;
}
