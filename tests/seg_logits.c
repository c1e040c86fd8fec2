/* seg_logits.c: a segmentation model's logits for tests/torch_parity.sh,
 * until the stages learn segmentation (docs/SEGMENT.md):
 *
 *   seg_logits MODEL.h5 DATA.h5 COUNT PATCHES.f32 PIXELS.f32
 *
 * runs the model on the first COUNT images of DATA (either task: only the
 * images are read) and writes raw little-endian float32 arrays: the
 * per-patch logits (COUNT, N, K) and their bilinear upsampling to pixels
 * (COUNT, H, W, K). */
#include <stdio.h>
#include <stdlib.h>

#include "ckpt.h"
#include "dataset.h"
#include "ops.h"
#include "util.h"
#include "vit.h"

static int write_floats(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return evit_error("%s: cannot create", path);
    size_t w = fwrite(x, sizeof(float), n, f);
    if (fclose(f) != 0 || w != n) return evit_error("%s: short write", path);
    return EVIT_OK;
}

int main(int argc, char **argv)
{
    struct evit_vit m;
    struct evit_dataset d;
    struct evit_vit_acts a;
    if (argc != 6) {
        fprintf(stderr, "usage: seg_logits MODEL.h5 DATA.h5 COUNT PATCHES.f32 PIXELS.f32\n");
        return 2;
    }
    if (evit_ckpt_load_heads(argv[1], &m, NULL, EVIT_HEAD_BIT(EVIT_HEAD_SEG_LINEAR) | EVIT_HEAD_BIT(EVIT_HEAD_SEG_MLP)) < 0)
        return 1;
    if (evit_dataset_load_task(argv[2], &d, EVIT_TASK_CLASSIFY | EVIT_TASK_SEGMENT) < 0) return 1;
    const struct evit_vit_config *c = &m.cfg;
    int n = atoi(argv[3]), S = c->img_size, g = evit_config_grid(c), N = g * g, K = c->classes;
    if (n < 1 || n > d.n || d.h != S || d.w != S || d.c != c->channels) {
        fprintf(stderr, "error: %s: needs at least %d images of %dx%dx%d\n", argv[2], n, S, S, c->channels);
        return 1;
    }
    size_t img = (size_t)S * S * c->channels;
    float *patches = evit_alloc_floats((size_t)n * N * K), *pixels = evit_alloc_floats((size_t)n * S * S * K);
    evit_vit_acts_alloc(&a, c, 1, 0);
    for (int i = 0; i < n; i++) { /* one at a time: batch-independent by construction */
        evit_vit_forward(&m, &a, d.images + img * (size_t)i, 1);
        for (size_t j = 0; j < (size_t)N * K; j++) patches[(size_t)i * N * K + j] = a.logits[j];
    }
    evit_upsample_forward(pixels, patches, n, g, g, S, S, K);
    int rc = write_floats(argv[4], patches, (size_t)n * N * K) || write_floats(argv[5], pixels, (size_t)n * S * S * K);
    evit_vit_acts_free(&a);
    evit_free_aligned(patches);
    evit_free_aligned(pixels);
    evit_dataset_free(&d);
    evit_vit_free(&m);
    return rc ? 1 : 0;
}
