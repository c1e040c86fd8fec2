/* seeds.c: writes the fuzzer's seed corpus: tiny random models, a float
 * one and a mixed int8 one, with and without class names, exported by the
 * real writer (export/export.c).  Usage: seeds DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evrt.h"
#include "export.h"

static float buf_[1 << 16];
static int8_t q_[1 << 16];

static void fill(float *p, int n, unsigned *s)
{
    for (int i = 0; i < n; i++) {
        *s = *s * 1103515245u + 12345u;
        p[i] = (float)((int)(*s >> 16 & 255) - 128) / 256.0f;
    }
}

int main(int argc, char **argv)
{
    static char n0[] = "a", n1[] = "bb", n2[] = "ccc";
    char *names[3] = {n0, n1, n2};
    struct evrt_block blk[2];
    struct evrt_decoder dec;
    struct evrt_model m;
    unsigned s = 1;
    float ones[64];
    if (argc != 2) return 2;
    fill(buf_, 1 << 16, &s);
    for (int i = 0; i < (1 << 16); i++) q_[i] = (int8_t)(i * 7 % 255 - 127);
    for (int i = 0; i < 64; i++) ones[i] = 1.0f;
    /* variant 4: a segmentation model (head seg_linear, a version 4 file);
     * 5: SegFormer's decoder over both blocks (seg_mlp, version 5) */
    for (int variant = 0; variant < 6; variant++) {
        struct evit_export_info info = {"seed", variant & 2 ? names : NULL, {1, 99, 7}};
        char path[1024];
        memset(&m, 0, sizeof m);
        memset(blk, 0, sizeof blk);
        memset(&dec, 0, sizeof dec);
        m.img_size = 4;
        m.channels = variant & 1 ? 1 : 3;
        m.patch = 2;
        m.dim = 8;
        m.depth = 1 + (variant & 1);
        m.classes = 3;
        for (int c = 0; c < m.channels; c++) {
            m.mean[c] = 0.5f;
            m.std[c] = 0.25f;
        }
        m.blocks = blk;
        m.cls_token = buf_;
        m.pos_embed = buf_ + 8;
        m.norm_w = ones;
        m.norm_b = buf_;
        for (int l = 0; l < m.depth; l++) {
            blk[l].heads = 2;
            blk[l].head_dim = 2 + l;
            blk[l].mlp = 6;
            blk[l].ln1_w = blk[l].ln2_w = ones;
            blk[l].ln1_b = blk[l].ln2_b = buf_ + 100;
            blk[l].qkv = (struct evrt_linear){8, 3 * 2 * (2 + l), 0, 0, 0, 0, 0, 1, 0};
            blk[l].proj = (struct evrt_linear){2 * (2 + l), 8, 0, 0, 0, 0, 0, 1, 0};
            blk[l].fc1 = (struct evrt_linear){8, 6, 0, 0, 0, 0, 0, 1, 0};
            blk[l].fc2 = (struct evrt_linear){6, 8, 0, 0, 0, 0, 0, 1, 0};
            if (variant == 3 && l == 1) { /* INT8 attention: a version 2 file */
                blk[l].attn_dtype = EVRT_I8;
                for (int k = 0; k < 4; k++) blk[l].attn_scale[k] = 0.01f * (float)(k + 1);
            }
        }
        m.patch_embed = (struct evrt_linear){m.channels * 4, 8, 0, 0, 0, 0, 0, 1, 0};
        m.head = (struct evrt_linear){8, 3, 0, 0, 0, 0, 0, 1, 0};
        m.head_kind = variant == 4 ? EVRT_HEAD_SEG_LINEAR : variant == 5 ? EVRT_HEAD_SEG_MLP : EVRT_HEAD_CLASS;
        if (variant == 5) { /* depth 2: levels 0 and 1, width 5 */
            dec.dim = 5;
            dec.levels = 2;
            dec.level[1] = 1;
            dec.norm_w[0] = ones;
            dec.norm_b[0] = buf_ + 300;
            dec.linear_c[0] = dec.linear_c[1] = (struct evrt_linear){8, 5, 0, 0, 0, 0, 0, 1, 0};
            dec.fuse = (struct evrt_linear){10, 5, 0, 0, 0, 0, 0, 1, 0};
            m.head.in = 5;
            m.decoder = &dec;
        }
        for (int i = 0; i < evrt_layer_count(&m); i++) {
            struct evrt_linear *L = evrt_model_layer(&m, i);
            L->w = buf_ + 1000 + 50 * i;
            L->bias = i % 3 ? buf_ + 200 : NULL;
            if (variant >= 1 && i % 2) {
                L->dtype = EVRT_I8;
                L->wq = q_ + 100 * i;
                L->w_scale = ones;
                L->in_scale = 0.03f;
                L->in_zero = i % 4 ? 0 : -5;
            }
        }
        snprintf(path, sizeof path, "%s/seed%d.evit", argv[1], variant);
        if (evit_export_write(path, &m, &info, NULL) != 0) return 1;
    }
    return 0;
}
