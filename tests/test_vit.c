/* test_vit.c: the tensor list, initialisation and the forward pass of the
 * Vision Transformer, the last against a double-precision reference written
 * here from the timm definition, independent of ops.c. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "rng.h"
#include "test.h"
#include "fixture.h"
#include "util.h"
#include "vit.h"

/* A pruned-style model: three blocks of unrelated shapes, one of them a
 * single head, one with inner width (15) unrelated to D (16). */
static struct evit_vit_config pruned_config(void)
{
    static const struct evit_block_shape b[] = {{1, 16, 5, 0}, {5, 3, 40, 0}, {2, 8, 1, 0}};
    return make_config("pruned", 12, 3, 4, 3, 16, 3, b);
}

static struct evit_tensor_ref *tensors_of(const struct evit_vit *m, int *n)
{
    *n = evit_vit_tensors(&m->cfg, &m->p, NULL);
    struct evit_tensor_ref *t = calloc((size_t)*n, sizeof *t);
    evit_vit_tensors(&m->cfg, &m->p, t);
    return t;
}

/* Random parameters of order one, so that every op matters to the logits:
 * weights N(0, 0.3^2), biases N(0, 0.2^2), norm weights 1 + N(0, 0.3^2),
 * class token and positions N(0, 0.5^2). */
static void randomise(struct evit_vit *m, uint64_t seed)
{
    randomise_params(m, seed, 0.3, 0.2, 0.3);
    for (int c = 0; c < 4; c++) {
        m->mean[c] = 0.4f + 0.05f * (float)c;
        m->std[c] = 0.2f + 0.05f * (float)c;
    }
}

static float max_abs(const float *x, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

/* ---------------------------------------------------------------- tensors */

static void tensors_are_timms_state_dict_keys_with_pytorch_shapes(void)
{
    static const char *const want[] = {
        "cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
        "blocks.0.norm1.weight", "blocks.0.norm1.bias", "blocks.0.attn.qkv.weight",
        "blocks.0.attn.qkv.bias", "blocks.0.attn.proj.weight", "blocks.0.attn.proj.bias",
        "blocks.0.norm2.weight", "blocks.0.norm2.bias", "blocks.0.mlp.fc1.weight",
        "blocks.0.mlp.fc1.bias", "blocks.0.mlp.fc2.weight", "blocks.0.mlp.fc2.bias",
        "blocks.1.norm1.weight", "blocks.1.norm1.bias", "blocks.1.attn.qkv.weight",
        "blocks.1.attn.qkv.bias", "blocks.1.attn.proj.weight", "blocks.1.attn.proj.bias",
        "blocks.1.norm2.weight", "blocks.1.norm2.bias", "blocks.1.mlp.fc1.weight",
        "blocks.1.mlp.fc1.bias", "blocks.1.mlp.fc2.weight", "blocks.1.mlp.fc2.bias",
        "norm.weight", "norm.bias", "head.weight", "head.bias"};
    struct evit_vit_config c = tiny_config();
    struct evit_vit m;
    evit_vit_alloc(&m, &c);
    int n;
    struct evit_tensor_ref *t = tensors_of(&m, &n);
    REQUIRE(n == 8 + 12 * 2); /* cls, pos, patch w+b, norm w+b, head w+b */
    REQUIRE(n == (int)(sizeof want / sizeof want[0]));
    for (int i = 0; i < n; i++) {
        if (strcmp(t[i].name, want[i]) != 0) {
            fprintf(stderr, "  tensor %d is %s, want %s\n", i, t[i].name, want[i]);
            CHECK(0);
        }
    }
    /* PyTorch shapes */
#define SHAPE(i, nd, a, b, cc, d)                                                         \
    CHECK(t[i].ndim == (nd) && t[i].shape[0] == (a) && t[i].shape[1] == (b) &&           \
          t[i].shape[2] == (cc) && t[i].shape[3] == (d))
    SHAPE(0, 3, 1, 1, 12, 0);   /* cls_token */
    SHAPE(1, 3, 1, 5, 12, 0);   /* pos_embed */
    SHAPE(2, 4, 12, 2, 4, 4);   /* patch_embed.proj.weight */
    SHAPE(3, 1, 12, 0, 0, 0);
    SHAPE(6, 2, 36, 12, 0, 0);  /* blocks.0.attn.qkv.weight: 3 * 3 heads * 4 */
    SHAPE(8, 2, 12, 12, 0, 0);  /* blocks.0.attn.proj.weight */
    SHAPE(12, 2, 20, 12, 0, 0); /* blocks.0.mlp.fc1.weight */
    SHAPE(14, 2, 12, 20, 0, 0); /* blocks.0.mlp.fc2.weight */
    SHAPE(18, 2, 24, 12, 0, 0); /* blocks.1.attn.qkv.weight: 3 * 2 heads * 4 */
    SHAPE(19, 1, 24, 0, 0, 0);
    SHAPE(20, 2, 12, 8, 0, 0);  /* blocks.1.attn.proj.weight */
    SHAPE(24, 2, 8, 12, 0, 0);  /* blocks.1.mlp.fc1.weight */
    SHAPE(26, 2, 12, 8, 0, 0);  /* blocks.1.mlp.fc2.weight */
    SHAPE(30, 2, 5, 12, 0, 0);  /* head.weight */
    SHAPE(31, 1, 5, 0, 0, 0);
#undef SHAPE
    /* kinds and block indices */
    CHECK(t[0].kind == EVIT_T_EMBED && t[1].kind == EVIT_T_EMBED);
    CHECK(t[2].kind == EVIT_T_WEIGHT && t[3].kind == EVIT_T_BIAS);
    CHECK(t[16].kind == EVIT_T_NORM_W && t[17].kind == EVIT_T_NORM_B && t[16].block == 1);
    CHECK(t[18].kind == EVIT_T_WEIGHT && t[19].kind == EVIT_T_BIAS);
    CHECK(t[28].kind == EVIT_T_NORM_W && t[29].kind == EVIT_T_NORM_B && t[28].block == -1);
    CHECK(t[30].kind == EVIT_T_WEIGHT && t[31].kind == EVIT_T_BIAS);
    CHECK(t[0].block == -1 && t[4].block == 0 && t[15].block == 0 && t[27].block == 1);
    /* the pointers are the bound ones */
    CHECK(t[2].data == m.p.patch_w && t[26].data == m.p.blocks[1].fc2_w && t[31].data == m.p.head_b);
    free(t);
    evit_vit_free(&m);
}

static void tensors_tile_the_parameter_buffer_and_count_its_params(void)
{
    for (int k = 0; k < 2; k++) {
        struct evit_vit_config c = k ? pruned_config() : tiny_config();
        struct evit_vit m;
        evit_vit_alloc(&m, &c);
        int n;
        struct evit_tensor_ref *t = tensors_of(&m, &n);
        CHECK(n == 8 + 12 * c.depth);
        size_t P = (size_t)evit_config_params(&c), sum = 0;
        unsigned char *seen = calloc(P, 1);
        int overlap = 0, outside = 0;
        for (int i = 0; i < n; i++) {
            size_t numel = 1;
            for (int d = 0; d < t[i].ndim; d++) numel *= (size_t)t[i].shape[d];
            CHECK(numel == t[i].numel);
            sum += t[i].numel;
            if (t[i].data < m.mem || t[i].data + t[i].numel > m.mem + P) {
                outside++;
                continue;
            }
            for (size_t j = 0; j < t[i].numel; j++) overlap += seen[(t[i].data - m.mem) + j]++ != 0;
        }
        CHECK(sum == P);
        CHECK(overlap == 0 && outside == 0);
        free(seen);
        free(t);
        evit_vit_free(&m);
    }
    /* deit-tiny as timm builds it: 152 tensors, 5,717,416 parameters */
    struct evit_vit_config d;
    memset(&d, 0, sizeof d);
    d.img_size = 224, d.channels = 3, d.patch = 16, d.classes = 1000, d.dim = 192, d.depth = 12;
    for (int l = 0; l < 12; l++) d.blocks[l] = (struct evit_block_shape){3, 64, 768, 0};
    struct evit_vit_params p;
    memset(&p, 0, sizeof p);
    struct evit_tensor_ref *t = calloc(152, sizeof *t);
    CHECK(evit_vit_tensors(&d, &p, NULL) == 152);
    REQUIRE(evit_vit_tensors(&d, &p, t) == 152);
    size_t sum = 0;
    for (int i = 0; i < 152; i++) sum += t[i].numel;
    CHECK(sum == 5717416);
    CHECK(strcmp(t[151].name, "head.bias") == 0 && strcmp(t[138].name, "blocks.11.attn.qkv.weight") == 0);
    free(t);
}

/* ---------------------------------------------------------------- init */

static void init_is_deterministic_for_a_seed_and_differs_across_seeds(void)
{
    struct evit_vit_config c = tiny_config();
    struct evit_vit a, b;
    evit_vit_alloc(&a, &c);
    evit_vit_alloc(&b, &c);
    size_t P = (size_t)evit_config_params(&c);
    evit_vit_init(&a, 42);
    evit_vit_init(&b, 42);
    CHECK(memcmp(a.mem, b.mem, P * sizeof(float)) == 0);
    evit_vit_init(&b, 43);
    size_t differ = 0, random = 0;
    int n;
    struct evit_tensor_ref *t = tensors_of(&a, &n);
    for (int i = 0; i < n; i++) {
        if (t[i].kind != EVIT_T_WEIGHT && t[i].kind != EVIT_T_EMBED) continue;
        size_t off = (size_t)(t[i].data - a.mem);
        for (size_t j = 0; j < t[i].numel; j++) {
            random++;
            differ += a.mem[off + j] != b.mem[off + j];
        }
    }
    CHECK(random > 0 && differ == random);
    free(t);
    evit_vit_free(&a);
    evit_vit_free(&b);
}

static void init_draws_truncated_normal_weights_zero_biases_and_unit_norm_weights(void)
{
    /* fm-small-like widths with D 192, M 768: fc1.weight has 147,456 values */
    struct evit_vit_config c;
    memset(&c, 0, sizeof c);
    c.img_size = 28, c.channels = 1, c.patch = 4, c.classes = 10, c.dim = 192, c.depth = 2;
    for (int l = 0; l < 2; l++) c.blocks[l] = (struct evit_block_shape){3, 64, 768, 0};
    struct evit_vit m;
    evit_vit_alloc(&m, &c);
    evit_vit_init(&m, 7);
    int n;
    struct evit_tensor_ref *t = tensors_of(&m, &n);
    int bad_range = 0, bad_const = 0, zero_random = 0;
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < t[i].numel; j++) {
            float v = t[i].data[j];
            switch (t[i].kind) {
            case EVIT_T_WEIGHT:
            case EVIT_T_EMBED:
                bad_range += !(fabsf(v) <= 0.04f); /* cut at 2 std */
                zero_random += v == 0.0f;
                break;
            case EVIT_T_BIAS:
            case EVIT_T_NORM_B: bad_const += v != 0.0f; break;
            case EVIT_T_NORM_W: bad_const += v != 1.0f; break;
            }
        }
    }
    CHECK(bad_range == 0);
    CHECK(bad_const == 0);
    CHECK(zero_random == 0);
    /* N(0, .02) truncated at +-2 std has std .02 * 0.8796 = 0.017592:
     * Var = 1 - 2*2*phi(2) / (Phi(2) - Phi(-2)) = 1 - 0.215964/0.954500 = 0.773741.
     * Over n = 147,456 samples the mean's own std is 4.6e-5 and the std's
     * relative std 0.18%, so the bounds below are about 6 sigma. */
    const float *w = m.p.blocks[1].fc1_w;
    size_t N = (size_t)768 * 192;
    double s = 0.0, s2 = 0.0, tails = 0.0;
    for (size_t j = 0; j < N; j++) {
        s += (double)w[j];
        s2 += (double)w[j] * (double)w[j];
        tails += fabsf(w[j]) > 0.02f; /* beyond 1 std: (0.9545-0.6827)/0.9545 = 0.2848 */
    }
    double mean = s / (double)N, sd = sqrt(s2 / (double)N - mean * mean);
    CHECK_NEAR(mean, 0.0, 3e-4);
    CHECK_NEAR(sd, 0.02 * 0.87962, 0.02 * 0.87962 * 0.01);
    CHECK_NEAR(tails / (double)N, 0.2848, 0.01);
    /* the cut is reached: some values lie beyond 1.9 std */
    double mx = max_abs(w, N);
    CHECK(mx > 0.038 && mx <= 0.04);
    free(t);
    evit_vit_free(&m);
}

/* ---------------------------------------------------------------- forward */

static void run_forward(const struct evit_vit *m, int keep, int max_batch, const uint8_t *img,
                        int B, float *logits)
{
    struct evit_vit_acts a;
    evit_vit_acts_alloc(&a, &m->cfg, max_batch, keep);
    evit_vit_forward(m, &a, img, B);
    memcpy(logits, a.logits, (size_t)B * m->cfg.classes * sizeof(float));
    evit_vit_acts_free(&a);
}

static void forward_gives_bit_identical_logits_keeping_or_sharing_activations(void)
{
    for (int k = 0; k < 2; k++) {
        struct evit_vit_config c = k ? pruned_config() : tiny_config();
        struct evit_vit m;
        evit_vit_alloc(&m, &c);
        randomise(&m, 11 + k);
        enum { B = 3 };
        uint8_t *img = random_images(&c, B, 12 + k);
        int K = c.classes;
        float *l1 = evit_alloc_floats((size_t)B * K), *l0 = evit_alloc_floats((size_t)B * K);
        run_forward(&m, 1, B, img, B, l1);
        run_forward(&m, 0, B, img, B, l0);
        CHECK(memcmp(l1, l0, (size_t)B * K * sizeof(float)) == 0);
        CHECK(max_abs(l1, (size_t)B * K) > 0.1f);
        evit_free_aligned(l1);
        evit_free_aligned(l0);
        free(img);
        evit_vit_free(&m);
    }
}

static void forward_of_a_batch_equals_forward_of_each_image_alone(void)
{
    struct evit_vit_config c = tiny_config();
    struct evit_vit m;
    evit_vit_alloc(&m, &c);
    randomise(&m, 21);
    enum { B = 3, K = 5 };
    uint8_t *img = random_images(&c, B, 22);
    size_t isz = (size_t)c.img_size * c.img_size * c.channels;
    float batch[B * K], one[K];
    run_forward(&m, 0, B, img, B, batch);
    double scale = (double)max_abs(batch, B * K);
    CHECK(scale > 0.1);
    for (int b = 0; b < B; b++) {
        run_forward(&m, 0, 1, img + b * isz, 1, one);
        for (int k = 0; k < K; k++) CHECK_NEAR(one[k], batch[b * K + k], 1e-5 * scale);
    }
    /* fewer images than the buffers hold: the first two of the batch */
    float two[2 * K];
    run_forward(&m, 1, B, img, 2, two);
    for (int i = 0; i < 2 * K; i++) CHECK_NEAR(two[i], batch[i], 1e-5 * scale);
    /* the images differ, so must the logits */
    int same = 1;
    for (int k = 0; k < K; k++) same &= batch[k] == batch[K + k];
    CHECK(!same);
    free(img);
    evit_vit_free(&m);
}

/* SegFormer's all-MLP decoder (vit.h) on pruned_config's three blocks,
 * levels 0 and 2 of width 6: its tensors after norm.*, named and shaped as
 * the PyTorch module's, tile the buffer with the encoder's; the forward
 * with shared activations (inference, where each level's output must be
 * copied before the next block overwrites it) equals the training one bit
 * for bit, and a level moved changes the logits. */
static void an_mlp_decoder_tiles_the_buffer_and_keeps_its_levels_in_inference(void)
{
    static const char *const want[] = {
        "norm.weight", "norm.bias", "decode_head.norms.0.weight", "decode_head.norms.0.bias",
        "decode_head.linear_c.0.weight", "decode_head.linear_c.0.bias", "decode_head.linear_c.1.weight",
        "decode_head.linear_c.1.bias", "decode_head.linear_fuse.weight", "decode_head.linear_fuse.bias",
        "head.weight", "head.bias"};
    static const int64_t rows[] = {16, 16, 16, 16, 6, 6, 6, 6, 6, 6, 3, 3}, cols[] = {0, 0, 0, 0, 16, 0, 16, 0, 12, 0, 6, 0};
    static const int levels[] = {0, 2};
    struct evit_vit_config c = pruned_config();
    set_mlp_decoder(&c, 6, 2, levels);
    REQUIRE(evit_config_validate(&c, "test") == 0);
    struct evit_vit m;
    evit_vit_alloc(&m, &c);
    int n;
    struct evit_tensor_ref *t = tensors_of(&m, &n);
    REQUIRE(n == 4 + 12 * 3 + 12);
    size_t sum = 0, P = (size_t)evit_config_params(&c);
    for (int i = 0; i < n; i++) sum += t[i].numel;
    CHECK(sum == P);
    for (int i = 0; i < 12; i++) {
        const struct evit_tensor_ref *r = &t[n - 12 + i];
        CHECK(strcmp(r->name, want[i]) == 0 && r->shape[0] == rows[i] && r->shape[1] == cols[i] && r->block == -1);
        CHECK(r->ndim == (cols[i] ? 2 : 1));
        CHECK(r->kind == (strstr(r->name, "norm") ? (strstr(r->name, "weight") ? EVIT_T_NORM_W : EVIT_T_NORM_B)
                          : strstr(r->name, "weight") ? EVIT_T_WEIGHT : EVIT_T_BIAS));
        CHECK(r->data >= m.mem && r->data + r->numel <= m.mem + P);
    }
    CHECK(t[n - 1].data + t[n - 1].numel == m.mem + P && m.p.dec_norm_w[1] == m.p.norm_w);
    free(t);
    randomise(&m, 31);
    enum { B = 3 };
    uint8_t *img = random_images(&c, B, 32);
    size_t nl = (size_t)B * evit_config_head_rows(&c) * c.classes;
    float *logits[3];
    for (int k = 0; k < 3; k++) {
        struct evit_vit_acts a;
        if (k == 2) m.cfg.decoder_levels[0] = 1; /* the same weights reading block 1 */
        evit_vit_acts_alloc(&a, &m.cfg, B, k == 0);
        evit_vit_forward(&m, &a, img, B);
        logits[k] = evit_alloc_floats(nl);
        memcpy(logits[k], a.logits, nl * sizeof(float));
        evit_vit_acts_free(&a);
    }
    CHECK(memcmp(logits[0], logits[1], nl * sizeof(float)) == 0);
    CHECK(max_abs(logits[0], nl) > 0.1f);
    CHECK(memcmp(logits[0], logits[2], nl * sizeof(float)) != 0);
    for (int k = 0; k < 3; k++) evit_free_aligned(logits[k]);
    free(img);
    evit_vit_free(&m);
}

/* ---------------------------------------------------------------- reference */

/* LayerNorm of one row in double, eps 1e-6, biased variance. */
static void ref_layernorm(double *y, const double *x, const float *w, const float *b, int D)
{
    double m = 0.0, v = 0.0;
    for (int i = 0; i < D; i++) m += x[i];
    m /= D;
    for (int i = 0; i < D; i++) v += (x[i] - m) * (x[i] - m);
    v /= D;
    double r = 1.0 / sqrt(v + 1e-6);
    for (int i = 0; i < D; i++) y[i] = (x[i] - m) * r * (double)w[i] + (double)b[i];
}

/* y (O) = W (O, I) x (I) + b: one row of a PyTorch nn.Linear. */
static void ref_linear(double *y, const double *x, const float *W, const float *b, int I, int O)
{
    for (int o = 0; o < O; o++) {
        double acc = (double)b[o];
        for (int i = 0; i < I; i++) acc += (double)W[(size_t)o * I + i] * x[i];
        y[o] = acc;
    }
}

/* timm's VisionTransformer.forward for one image, in double:
 *   x = cat(cls_token, conv(img).flatten(2).transpose(1, 2)) + pos_embed
 *   x = x + attn(norm1(x)); x = x + mlp(norm2(x))   for each block
 *   logits = head(norm(x)[:, 0])
 * with Attention: qkv(x).reshape(T, 3, H, d), so q of head h channel e is
 * qkv channel 0*I + h*d + e, k is 1*I + h*d + e, v is 2*I + h*d + e. */
static void reference_forward(const struct evit_vit *m, const uint8_t *img, double *logits)
{
    const struct evit_vit_config *c = &m->cfg;
    const struct evit_vit_params *p = &m->p;
    int S = c->img_size, C = c->channels, P = c->patch, G = S / P, T = G * G + 1, D = c->dim;
    int Imax = 0, Mmax = 0;
    for (int l = 0; l < c->depth; l++) {
        int I = c->blocks[l].heads * c->blocks[l].head_dim;
        Imax = I > Imax ? I : Imax;
        Mmax = c->blocks[l].mlp > Mmax ? c->blocks[l].mlp : Mmax;
    }
    double *x = calloc((size_t)T * D, sizeof *x), *ln = calloc((size_t)T * D, sizeof *ln);
    double *qkv = calloc((size_t)T * 3 * Imax, sizeof *qkv), *o = calloc((size_t)T * Imax, sizeof *o);
    double *y = calloc((size_t)D, sizeof *y), *h = calloc((size_t)Mmax, sizeof *h);
    double *s = calloc((size_t)T, sizeof *s), *pix = calloc((size_t)C * P * P, sizeof *pix);

    /* patch embedding: a stride-P convolution with weight (D, C, P, P) */
    for (int i = 0; i < D; i++) x[i] = (double)p->cls_token[i] + (double)p->pos_embed[i];
    for (int gy = 0; gy < G; gy++) {
        for (int gx = 0; gx < G; gx++) {
            int t = 1 + gy * G + gx;
            for (int ch = 0; ch < C; ch++)
                for (int ky = 0; ky < P; ky++)
                    for (int kx = 0; kx < P; kx++) {
                        double v = img[((size_t)(gy * P + ky) * S + gx * P + kx) * C + ch];
                        pix[(ch * P + ky) * P + kx] =
                            (v / 255.0 - (double)m->mean[ch]) / (double)m->std[ch];
                    }
            for (int i = 0; i < D; i++) {
                double acc = (double)p->patch_b[i];
                for (int ch = 0; ch < C; ch++)
                    for (int ky = 0; ky < P; ky++)
                        for (int kx = 0; kx < P; kx++)
                            acc += (double)p->patch_w[((size_t)(i * C + ch) * P + ky) * P + kx] *
                                   pix[(ch * P + ky) * P + kx];
                x[(size_t)t * D + i] = acc + (double)p->pos_embed[(size_t)t * D + i];
            }
        }
    }

    for (int l = 0; l < c->depth; l++) {
        const struct evit_block_params *b = &p->blocks[l];
        int H = c->blocks[l].heads, d = c->blocks[l].head_dim, I = H * d, M = c->blocks[l].mlp;
        /* attention branch */
        for (int t = 0; t < T; t++) {
            ref_layernorm(ln + (size_t)t * D, x + (size_t)t * D, b->ln1_w, b->ln1_b, D);
            ref_linear(qkv + (size_t)t * 3 * I, ln + (size_t)t * D, b->qkv_w, b->qkv_b, D, 3 * I);
        }
        for (int hh = 0; hh < H; hh++) {
            for (int i = 0; i < T; i++) {
                const double *q = qkv + (size_t)i * 3 * I + 0 * I + hh * d;
                double mx = -INFINITY, z = 0.0;
                for (int j = 0; j < T; j++) {
                    const double *k = qkv + (size_t)j * 3 * I + 1 * I + hh * d;
                    double dot = 0.0;
                    for (int e = 0; e < d; e++) dot += q[e] * k[e];
                    s[j] = dot / sqrt((double)d);
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < T; j++) z += (s[j] = exp(s[j] - mx));
                for (int e = 0; e < d; e++) {
                    double acc = 0.0;
                    for (int j = 0; j < T; j++) acc += s[j] / z * qkv[(size_t)j * 3 * I + 2 * I + hh * d + e];
                    o[(size_t)i * I + hh * d + e] = acc;
                }
            }
        }
        for (int t = 0; t < T; t++) {
            ref_linear(y, o + (size_t)t * I, b->proj_w, b->proj_b, I, D);
            for (int i = 0; i < D; i++) x[(size_t)t * D + i] += y[i];
        }
        /* MLP branch, exact-erf GELU */
        for (int t = 0; t < T; t++) {
            ref_layernorm(ln, x + (size_t)t * D, b->ln2_w, b->ln2_b, D);
            ref_linear(h, ln, b->fc1_w, b->fc1_b, D, M);
            for (int j = 0; j < M; j++) h[j] = 0.5 * h[j] * (1.0 + erf(h[j] / sqrt(2.0)));
            ref_linear(y, h, b->fc2_w, b->fc2_b, M, D);
            for (int i = 0; i < D; i++) x[(size_t)t * D + i] += y[i];
        }
    }
    /* class token only */
    ref_layernorm(ln, x, p->norm_w, p->norm_b, D);
    ref_linear(logits, ln, p->head_w, p->head_b, D, c->classes);
    free(x);
    free(ln);
    free(qkv);
    free(o);
    free(y);
    free(h);
    free(s);
    free(pix);
}

/* Forward of B images against the reference, |diff| <= 1e-4 * max |ref|,
 * with parameters of order one (timm_init 0) or timm's init (1), whose small
 * activations make LayerNorm's eps matter. */
static void check_against_reference(const struct evit_vit_config *c, uint64_t seed, int timm_init)
{
    struct evit_vit m;
    evit_vit_alloc(&m, c);
    randomise(&m, seed);
    if (timm_init) evit_vit_init(&m, seed); /* keeps randomise's mean and std */
    enum { B = 3 };
    int K = c->classes;
    uint8_t *img = random_images(c, B, seed + 1);
    size_t isz = (size_t)c->img_size * c->img_size * c->channels;
    float *got = evit_alloc_floats((size_t)B * K);
    double *want = calloc((size_t)B * K, sizeof *want);
    run_forward(&m, 1, B, img, B, got);
    double scale = 0.0;
    for (int b = 0; b < B; b++) reference_forward(&m, img + b * isz, want + (size_t)b * K);
    for (int i = 0; i < B * K; i++) scale = fmax(scale, fabs(want[i]));
    CHECK(scale > (timm_init ? 0.01 : 0.1)); /* the logits are not trivially small */
    int bad = 0;
    for (int i = 0; i < B * K; i++) {
        if (!(fabs((double)got[i] - want[i]) <= 1e-4 * scale)) {
            fprintf(stderr, "  %s: logit %d = %.9g, reference %.9g\n", c->name, i, (double)got[i],
                    want[i]);
            bad++;
        }
    }
    CHECK(bad == 0);
    evit_free_aligned(got);
    free(want);
    free(img);
    evit_vit_free(&m);
}

static void forward_matches_a_double_precision_reference_written_from_timm(void)
{
    struct evit_vit_config c = tiny_config();
    check_against_reference(&c, 31, 0);
    check_against_reference(&c, 32, 0);
    check_against_reference(&c, 33, 1);
}

static void a_pruned_config_with_different_block_shapes_runs_and_matches_the_reference(void)
{
    struct evit_vit_config c = pruned_config();
    REQUIRE(evit_config_validate(&c, "pruned") == EVIT_OK);
    check_against_reference(&c, 41, 0);
    check_against_reference(&c, 42, 1);
    /* and from timm init, the logits are finite */
    struct evit_vit m;
    evit_vit_alloc(&m, &c);
    evit_vit_init(&m, 5);
    uint8_t *img = random_images(&c, 2, 6);
    float logits[2 * 3];
    run_forward(&m, 0, 2, img, 2, logits);
    int finite = 1;
    for (int i = 0; i < 6; i++) finite &= isfinite(logits[i]) != 0;
    CHECK(finite);
    free(img);
    evit_vit_free(&m);
}

/* One block, which is also the last: its class-token-only path is the whole
 * model.  Against the reference, keeping or sharing activations, and a batch
 * against each image alone. */
static void a_single_block_model_matches_the_reference_and_itself_across_batches(void)
{
    struct evit_vit_config c = tiny_config();
    c.depth = 1;
    c.blocks[0] = (struct evit_block_shape){3, 5, 17, 0};
    REQUIRE(evit_config_validate(&c, "depth 1") == EVIT_OK);
    check_against_reference(&c, 51, 0);
    check_against_reference(&c, 52, 1);
    struct evit_vit m;
    evit_vit_alloc(&m, &c);
    randomise(&m, 53);
    enum { B = 3, K = 5 };
    uint8_t *img = random_images(&c, B, 54);
    size_t isz = (size_t)c.img_size * c.img_size * c.channels;
    float l1[B * K], l0[B * K], one[K];
    run_forward(&m, 1, B, img, B, l1);
    run_forward(&m, 0, B, img, B, l0);
    CHECK(memcmp(l1, l0, sizeof l1) == 0);
    double scale = (double)max_abs(l1, B * K);
    CHECK(scale > 0.1);
    for (int b = 0; b < B; b++) {
        run_forward(&m, 0, 1, img + b * isz, 1, one);
        for (int k = 0; k < K; k++) CHECK_NEAR(one[k], l1[b * K + k], 1e-5 * scale);
    }
    free(img);
    evit_vit_free(&m);
}

/* ---------------------------------------------------------------- finite */

static void check_finite_names_a_nan_planted_in_blocks_1_mlp_fc2_weight(void)
{
    struct evit_vit_config c = tiny_config();
    struct evit_vit m;
    evit_vit_alloc(&m, &c);
    evit_vit_init(&m, 3);
    CHECK(evit_vit_check_finite(&m, "test") == EVIT_OK);
    int n;
    struct evit_tensor_ref *t = tensors_of(&m, &n);
    struct evit_tensor_ref *fc2 = NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].name, "blocks.1.mlp.fc2.weight") == 0) fc2 = &t[i];
    REQUIRE(fc2 != NULL);
    CHECK(fc2->data == m.p.blocks[1].fc2_w);
    size_t j = fc2->numel / 2;
    float keep = fc2->data[j];
    fc2->data[j] = NAN;
    CHECK(evit_vit_check_finite(&m, "test") == EVIT_ERR);
    fc2->data[j] = keep;
    CHECK(evit_vit_check_finite(&m, "test") == EVIT_OK);
    /* an infinity in the very last parameter */
    m.p.head_b[c.classes - 1] = -INFINITY;
    CHECK(evit_vit_check_finite(&m, "test") == EVIT_ERR);
    free(t);
    evit_vit_free(&m);
}

int main(void)
{
    RUN(tensors_are_timms_state_dict_keys_with_pytorch_shapes);
    RUN(tensors_tile_the_parameter_buffer_and_count_its_params);
    RUN(init_is_deterministic_for_a_seed_and_differs_across_seeds);
    RUN(init_draws_truncated_normal_weights_zero_biases_and_unit_norm_weights);
    RUN(forward_gives_bit_identical_logits_keeping_or_sharing_activations);
    RUN(forward_of_a_batch_equals_forward_of_each_image_alone);
    RUN(an_mlp_decoder_tiles_the_buffer_and_keeps_its_levels_in_inference);
    RUN(forward_matches_a_double_precision_reference_written_from_timm);
    RUN(a_pruned_config_with_different_block_shapes_runs_and_matches_the_reference);
    RUN(a_single_block_model_matches_the_reference_and_itself_across_batches);
    RUN(check_finite_names_a_nan_planted_in_blocks_1_mlp_fc2_weight);
    return test_summary();
}
