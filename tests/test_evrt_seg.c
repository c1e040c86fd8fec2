/* test_evrt_seg.c: libevrt's segmentation path (evrt.h, "Segmentation"):
 * the decoder's fast kernel against its specification, bit for bit; the
 * specification against evit's own upsampling and argmax; per-patch logits
 * against the training engine, for Segmenter's linear decoder and
 * SegFormer's all-MLP one (seg_mlp); outputs that do not depend on the
 * thread count or the kernel variant, INT8 included; and the refusals. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "evrt.h"
#include "kernels.h"
#include "ops.h"
#include "qmodel.h"
#include "rng.h"
#include "segmetric.h"
#include "test.h"
#include "fixture.h"
#include "util.h"
#include "vit.h"

/* k 0: 16x16, patch 4 (a 4x4 grid), 3 channels, 5 classes, two blocks of
 * different shapes; k 1: 24x24, patch 8 (3x3), 1 channel, 3 classes. */
static struct evit_vit_config seg_config(int k)
{
    static const struct evit_block_shape b0[] = {{3, 4, 20, 0}, {2, 5, 9, 0}};
    static const struct evit_block_shape b1[] = {{2, 6, 16, 0}};
    struct evit_vit_config c =
        k == 0 ? make_config("seg16", 16, 3, 4, 5, 12, 2, b0) : make_config("seg24", 24, 1, 8, 3, 12, 1, b1);
    c.head = EVIT_HEAD_SEG_LINEAR;
    return c;
}

/* SegFormer's decoder (EVRT_HEAD_SEG_MLP) on non-trivial levels: k 0,
 * three blocks of odd widths (D 13) read at levels 0 and 2 (block 1 is
 * none), C 7; k 1, seg24's grid with four blocks, every one a level, C 9;
 * k 2, k 0's blocks on a 12 x 12 grid at D 24 and C 21, large enough that
 * every decoder step but the head's product is a parallel region for a
 * batch of 3 (432 rows). */
static struct evit_vit_config mlp_config(int k)
{
    static const struct evit_block_shape b0[] = {{3, 5, 19, 0}, {2, 3, 9, 0}, {1, 7, 11, 0}};
    static const struct evit_block_shape b1[] = {{2, 6, 16, 0}, {1, 5, 7, 0}, {2, 3, 10, 0}, {2, 6, 16, 0}};
    static const int lv0[] = {0, 2}, lv1[] = {0, 1, 2, 3};
    struct evit_vit_config c = k == 0   ? make_config("mlp16", 16, 3, 4, 5, 13, 3, b0)
                               : k == 1 ? make_config("mlp24", 24, 1, 8, 3, 12, 4, b1)
                                        : make_config("mlp48", 48, 3, 4, 5, 24, 3, b0);
    if (k == 1)
        set_mlp_decoder(&c, 9, 4, lv1);
    else
        set_mlp_decoder(&c, k == 0 ? 7 : 21, 2, lv0);
    return c;
}

static void seg_model(struct evit_vit *m, const struct evit_vit_config *c, uint64_t seed)
{
    evit_vit_alloc(m, c);
    randomise_params(m, seed, 0.0, 0.2, 0.3);
    for (int i = 0; i < 4; i++) {
        m->mean[i] = 0.4f + 0.05f * (float)i;
        m->std[i] = 0.2f + 0.05f * (float)i;
    }
}

/* z (n) from N(0, 1), with exact ties (a run of equal values) and a few
 * NaNs where nan is set. */
static void fill_logits(float *z, size_t n, uint64_t seed, int nan)
{
    struct evit_rng r;
    evit_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) z[i] = (float)evit_rng_normal(&r);
    for (size_t i = 0; i + 3 < n; i += 17) z[i + 1] = z[i + 2] = z[i];
    if (nan)
        for (size_t i = 5; i < n; i += 23) z[i] = NAN;
}

/* 1 when a and b hold the same bits (NaNs included). */
static int same_bits(const void *a, const void *b, size_t bytes) { return memcmp(a, b, bytes) == 0; }

/* ---------------------------------------------------------------- decoder */

static void the_decoders_fast_kernel_gives_its_specifications_bits_for_any_rows(void)
{
    /* grids, classes and sizes: integer and fractional ratios, one cell,
     * the seg-fm-tiny and 512x512 shapes (a band of rows of the latter) */
    static const int cases[][5] = {{4, 5, 16, 0, 16}, {3, 3, 24, 0, 24}, {12, 11, 96, 0, 96}, {7, 14, 50, 0, 50},
                                   {1, 2, 5, 0, 5},   {5, 4, 3, 0, 3},   {32, 14, 512, 100, 141}, {12, 11, 96, 37, 38}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int G = cases[t][0], K = cases[t][1], S = cases[t][2], y0 = cases[t][3], y1 = cases[t][4];
        size_t px = (size_t)(y1 - y0) * S;
        float *z = malloc(sizeof(float) * G * G * K), *a = malloc(sizeof(float) * px * K),
              *b = malloc(sizeof(float) * px * K), *scratch = malloc(sizeof(float) * evrt_seg_scratch(S, K));
        uint8_t *ma = malloc(px), *mb = malloc(px), *mc = malloc(px);
        fill_logits(z, (size_t)G * G * K, 11 + t, t % 2);
        evrt_seg_decode_ref(a, ma, z, G, K, S, y0, y1);
        evrt_seg_rows_fast(b, mb, scratch, z, G, K, S, y0, y1);
        CHECK(same_bits(a, b, sizeof(float) * px * K));
        CHECK(same_bits(ma, mb, px));
        /* the mask alone, without scores, and split into single rows */
        for (int y = y0; y < y1; y++) evrt_seg_rows_fast(NULL, mc + (size_t)(y - y0) * S, scratch, z, G, K, S, y, y + 1);
        CHECK(same_bits(ma, mc, px));
        evrt_seg_decode_ref(NULL, mc, z, G, K, S, y0, y1);
        CHECK(same_bits(ma, mc, px));
        free(z);
        free(a);
        free(b);
        free(scratch);
        free(ma);
        free(mb);
        free(mc);
    }
}

static void the_decoder_is_evits_upsampling_and_argmax(void)
{
    enum { G = 6, K = 7, S = 40 };
    float z[G * G * K], *a = malloc(sizeof(float) * S * S * K), *b = malloc(sizeof(float) * S * S * K);
    uint8_t ma[S * S], mb[S * S];
    fill_logits(z, sizeof z / sizeof z[0], 5, 0);
    evrt_seg_decode_ref(a, ma, z, G, K, S, 0, S);
    evit_upsample_forward(b, z, 1, G, G, S, S, K);
    evit_segmetric_argmax(mb, b, (size_t)S * S, K);
    /* the same expression; where a compiler fuses libevit's multiply-adds
     * (AArch64), the scores differ in the last bits and a near tie may go
     * the other way */
    double worst = 0.0;
    int differ = 0;
    for (int i = 0; i < S * S * K; i++) worst = fmax(worst, fabs((double)a[i] - (double)b[i]));
    for (int i = 0; i < S * S; i++) differ += ma[i] != mb[i];
    if (worst > 1e-6 || differ) fprintf(stderr, "  max |diff| %g, %d mask pixels differ\n", worst, differ);
    CHECK(worst <= 1e-6);
    CHECK(differ <= 2);
#if defined(__x86_64__)
    CHECK(same_bits(a, b, sizeof(float) * S * S * K)); /* no fused operations on either side */
#endif
    /* every class wins somewhere, so the argmax is exercised */
    int seen[K] = {0};
    for (int i = 0; i < S * S; i++) seen[ma[i]] = 1;
    for (int k = 0; k < K; k++) CHECK(seen[k]);
    free(a);
    free(b);
}

/* ---------------------------------------------------------------- model */

/* The runtime's float32 per-patch logits of c (random weights) against
 * evit_vit_forward's, for 1 and 3 images on kernels kern; returns the
 * largest difference. */
static double float_against_training(const struct evit_vit_config *c, int head_kind, const char *kern,
                                      uint64_t seed)
{
    double worst = 0.0;
    CHECK(evit_config_validate(c, "test") == EVIT_OK);
    for (int B = 1; B <= 3; B += 2) {
        struct evit_vit m;
        struct evit_vit_acts a;
        struct evit_qmodel q;
        evrt_ctx *ctx = NULL;
        int N = (c->img_size / c->patch) * (c->img_size / c->patch);
        seg_model(&m, c, seed + (uint64_t)B);
        uint8_t *img = random_images(c, B, 3 + (uint64_t)B);
        float *z = malloc(sizeof(float) * B * N * c->classes);
        evit_vit_acts_alloc(&a, c, B, 0);
        evit_vit_forward(&m, &a, img, B);
        evit_qmodel_from_vit(&q, &m);
        CHECK(q.rt.head_kind == head_kind);
        CHECK(evrt_model_outputs(&q.rt) == (size_t)N * c->classes);
        int rc = evrt_ctx_create(&ctx, &q.rt, B);
        if (rc == EVRT_OK) rc = evrt_ctx_set_kernels(ctx, kern);
        if (rc == EVRT_OK) rc = evrt_infer_seg(ctx, img, B, z, NULL, NULL);
        if (rc != EVRT_OK) {
            fprintf(stderr, "  %s: %s\n", c->name, evrt_ctx_error(ctx));
            worst = INFINITY;
        }
        for (int i = 0; rc == EVRT_OK && i < B * N * c->classes; i++)
            worst = fmax(worst, fabs((double)z[i] - (double)a.logits[i]));
        evrt_ctx_destroy(ctx);
        evit_qmodel_free(&q);
        evit_vit_acts_free(&a);
        evit_vit_free(&m);
        free(img);
        free(z);
    }
    if (!(worst <= 1e-5)) fprintf(stderr, "  %s on %s: max |diff| %g\n", c->name, kern, worst);
    return worst;
}

static void per_patch_logits_match_the_training_engine_within_1e_5(void)
{
    for (int k = 0; k < 2; k++) {
        struct evit_vit_config c = seg_config(k);
        CHECK(float_against_training(&c, EVRT_HEAD_SEG_LINEAR, "best", 21 + 10 * (uint64_t)k) <= 1e-5);
    }
}

static void a_seg_mlp_models_logits_match_the_training_engine_within_1e_5_on_the_plain_and_fast_kernels(void)
{
    for (int k = 0; k < 2; k++) {
        struct evit_vit_config c = mlp_config(k);
        double ref = float_against_training(&c, EVRT_HEAD_SEG_MLP, "ref", 41 + 10 * (uint64_t)k);
        double fast = float_against_training(&c, EVRT_HEAD_SEG_MLP, "best", 41 + 10 * (uint64_t)k);
        printf("# %s: max |logit - training| %.3g (ref), %.3g (best)\n", c.name, ref, fast);
        CHECK(ref <= 1e-5);
        CHECK(fast <= 1e-5);
    }
}

/* evrt_infer_seg's three outputs for B images of q on the given variant
 * and thread count; 0 on success. */
struct seg_out {
    float *z, *scores;
    uint8_t *mask, *mask_alone;
};

static int run_seg(const struct evrt_model *rt, const uint8_t *img, int B, const char *kernels, int threads,
                   struct seg_out *o)
{
    size_t S = (size_t)rt->img_size, N = evrt_model_outputs(rt) / (size_t)rt->classes;
    evrt_ctx *ctx = NULL;
    int rc = evrt_ctx_create(&ctx, rt, B);
    o->z = malloc(sizeof(float) * B * N * rt->classes);
    o->scores = malloc(sizeof(float) * B * S * S * rt->classes);
    o->mask = malloc((size_t)B * S * S);
    o->mask_alone = malloc((size_t)B * S * S);
    if (rc == EVRT_OK) rc = evrt_ctx_set_kernels(ctx, kernels);
    if (rc == EVRT_OK) rc = evrt_ctx_set_threads(ctx, threads);
    if (rc == EVRT_OK) rc = evrt_infer_seg(ctx, img, B, o->z, o->scores, o->mask);
    if (rc == EVRT_OK) rc = evrt_infer_seg(ctx, img, B, NULL, NULL, o->mask_alone);
    if (rc != EVRT_OK) fprintf(stderr, "  %s x%d: %s\n", kernels, threads, evrt_ctx_error(ctx));
    evrt_ctx_destroy(ctx);
    return rc;
}

static void seg_out_free(struct seg_out *o)
{
    free(o->z);
    free(o->scores);
    free(o->mask);
    free(o->mask_alone);
}

static void scores_and_masks_are_the_decoder_on_the_logits_for_every_thread_count(void)
{
    struct evit_vit_config c = seg_config(0);
    struct evit_vit m;
    struct evit_qmodel q;
    enum { B = 3 };
    size_t S = (size_t)c.img_size, K = (size_t)c.classes, G = S / (size_t)c.patch;
    seg_model(&m, &c, 77);
    evit_qmodel_from_vit(&q, &m);
    uint8_t *img = random_images(&c, B, 9);
    struct seg_out one, many;
    REQUIRE(run_seg(&q.rt, img, B, "best", 1, &one) == EVRT_OK);
    float *want = malloc(sizeof(float) * S * S * K);
    uint8_t *wmask = malloc(S * S);
    for (int b = 0; b < B; b++) {
        evrt_seg_decode_ref(want, wmask, one.z + (size_t)b * G * G * K, (int)G, (int)K, (int)S, 0, (int)S);
        CHECK(same_bits(want, one.scores + (size_t)b * S * S * K, sizeof(float) * S * S * K));
        CHECK(same_bits(wmask, one.mask + (size_t)b * S * S, S * S));
    }
    CHECK(same_bits(one.mask, one.mask_alone, B * S * S));
    for (int t = 2; t <= 4; t++) {
        REQUIRE(run_seg(&q.rt, img, B, "best", t, &many) == EVRT_OK);
        CHECK(same_bits(one.z, many.z, sizeof(float) * B * G * G * K));
        CHECK(same_bits(one.scores, many.scores, sizeof(float) * B * S * S * K));
        CHECK(same_bits(one.mask, many.mask, B * S * S));
        CHECK(same_bits(one.mask, many.mask_alone, B * S * S));
        seg_out_free(&many);
    }
    /* the plain kernels: their own float path, the same decoder bits on
     * their own logits */
    REQUIRE(run_seg(&q.rt, img, B, "ref", 2, &many) == EVRT_OK);
    for (int b = 0; b < B; b++) {
        evrt_seg_decode_ref(want, wmask, many.z + (size_t)b * G * G * K, (int)G, (int)K, (int)S, 0, (int)S);
        CHECK(same_bits(want, many.scores + (size_t)b * S * S * K, sizeof(float) * S * S * K));
    }
    seg_out_free(&many);
    seg_out_free(&one);
    free(want);
    free(wmask);
    free(img);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
}

struct seen_rows {
    int head_rows, qkv_rows_last, fc1_rows_last;
};

static void note_rows(void *user, int layer, int phase, const float *x, int rows, int cols)
{
    struct seen_rows *s = user;
    (void)x;
    (void)cols;
    if (phase != EVRT_OBSERVE_INPUT) return;
    if (layer == 1 + 4 * 2) s->head_rows = rows;
    if (layer == 1 + 4 * 1) s->qkv_rows_last = rows;
    if (layer == 1 + 4 * 1 + 2) s->fc1_rows_last = rows;
}

static void an_int8_segmentation_model_runs_its_head_on_every_patch_and_stays_close_to_float(void)
{
    struct evit_vit_config c = seg_config(0);
    struct evit_vit m;
    struct evit_qmodel q;
    struct seen_rows seen = {0};
    enum { B = 2 };
    int N = (c.img_size / c.patch) * (c.img_size / c.patch), T = N + 1;
    size_t n = (size_t)B * N * c.classes;
    seg_model(&m, &c, 5);
    evit_qmodel_from_vit(&q, &m);
    uint8_t *img = random_images(&c, B, 4);
    float *zf = malloc(sizeof(float) * n), *zq = malloc(sizeof(float) * n);
    evrt_ctx *ctx = NULL;
    REQUIRE(evrt_ctx_create(&ctx, &q.rt, B) == EVRT_OK);
    evrt_set_observer(ctx, note_rows, &seen);
    CHECK(evrt_infer_seg(ctx, img, B, zf, NULL, NULL) == EVRT_OK);
    /* the last block runs on every token, the head on the patches alone */
    CHECK(seen.qkv_rows_last == B * T && seen.fc1_rows_last == B * T);
    CHECK(seen.head_rows == B * N);
    evrt_set_observer(ctx, NULL, NULL);
    /* every linear int8 on a generous fixed activation range */
    for (int i = 0; i < evrt_layer_count(&q.rt); i++) {
        struct evrt_linear *L = evrt_model_layer(&q.rt, i);
        L->dtype = EVRT_I8;
        L->in_scale = i == 0 ? 4.0f / 127.0f : 6.0f / 127.0f;
    }
    CHECK(evrt_infer_seg(ctx, img, B, zq, NULL, NULL) == EVRT_OK);
    double err = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)zq[i] - (double)zf[i];
        err += d * d;
        ref += (double)zf[i] * (double)zf[i];
    }
    /* SQNR above 20 dB: an int8 model, not noise */
    if (!(ref > 100.0 * err)) fprintf(stderr, "  SQNR %.1f dB\n", 10.0 * log10(ref / err));
    CHECK(ref > 100.0 * err);
    CHECK(err > 0.0);
    evrt_ctx_destroy(ctx);
    free(zf);
    free(zq);
    free(img);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
}

/* Every linear INT8 on fixed activation ranges (the decoder's fuse and
 * head inputs asymmetric), INT8 attention in block 0. */
static void all_int8(struct evrt_model *rt)
{
    for (int i = 0; i < evrt_layer_count(rt); i++) {
        struct evrt_linear *L = evrt_model_layer(rt, i);
        L->dtype = EVRT_I8;
        L->in_scale = i == 0 ? 4.0f / 127.0f : 6.0f / 127.0f;
    }
    evrt_model_layer(rt, evrt_layer_count(rt) - 1)->in_zero = 9; /* the fuse layer */
    evrt_model_layer(rt, 1 + 4 * rt->depth)->in_zero = -100; /* the head, after the ReLU */
    rt->blocks[0].attn_dtype = EVRT_I8;
    for (int k = 0; k < 3; k++) rt->blocks[0].attn_scale[k] = 3.0f / 127.0f;
    rt->blocks[0].attn_scale[3] = 1.0f / 127.0f;
}

static void an_int8_seg_mlp_model_gives_the_same_bits_for_every_thread_count_on_every_variant(void)
{
    struct evit_vit_config c = mlp_config(2);
    struct evit_vit m;
    struct evit_qmodel q;
    enum { B = 3 };
    size_t S = (size_t)c.img_size, K = (size_t)c.classes, G = S / (size_t)c.patch, n = B * G * G * K;
    int tested = 0;
    seg_model(&m, &c, 91);
    evit_qmodel_from_vit(&q, &m);
    uint8_t *img = random_images(&c, B, 17);
    float *want = malloc(sizeof(float) * S * S * K);
    uint8_t *wmask = malloc(S * S);
    struct seg_out f32, one, many;
    REQUIRE(run_seg(&q.rt, img, B, "ref", 1, &f32) == EVRT_OK);
    all_int8(&q.rt);
    for (int isa = 0; isa < EVRT_ISA_COUNT; isa++) {
        if (!evrt_isa_available(isa)) continue;
        const char *kern = evrt_kernels_get(isa)->name;
        REQUIRE(run_seg(&q.rt, img, B, kern, 1, &one) == EVRT_OK);
        /* an INT8 model, not noise: SQNR above 20 dB against float32 */
        double err = 0.0, ref = 0.0;
        for (size_t i = 0; i < n; i++) {
            double d = (double)one.z[i] - (double)f32.z[i];
            err += d * d;
            ref += (double)f32.z[i] * (double)f32.z[i];
        }
        printf("# %s: INT8 seg_mlp logits' SQNR against float32 %.1f dB\n", kern, 10.0 * log10(ref / err));
        CHECK(ref > 100.0 * err && err > 0.0);
        /* scores and mask are the decoder on the logits: the mask is the
         * scores' argmax */
        for (int b = 0; b < B; b++) {
            evrt_seg_decode_ref(want, wmask, one.z + (size_t)b * G * G * K, (int)G, (int)K, (int)S, 0, (int)S);
            CHECK(same_bits(want, one.scores + (size_t)b * S * S * K, sizeof(float) * S * S * K));
            CHECK(same_bits(wmask, one.mask + (size_t)b * S * S, S * S));
        }
        uint8_t *am = malloc(B * S * S);
        evit_segmetric_argmax(am, one.scores, B * S * S, (int)K);
        CHECK(same_bits(am, one.mask, B * S * S));
        CHECK(same_bits(one.mask, one.mask_alone, B * S * S));
        free(am);
        for (int t = 2; t <= 4; t++) {
            REQUIRE(run_seg(&q.rt, img, B, kern, t, &many) == EVRT_OK);
            if (!same_bits(one.z, many.z, sizeof(float) * n)) fprintf(stderr, "  %s: %d threads differ\n", kern, t);
            CHECK(same_bits(one.z, many.z, sizeof(float) * n));
            CHECK(same_bits(one.scores, many.scores, sizeof(float) * B * S * S * K));
            CHECK(same_bits(one.mask, many.mask, B * S * S));
            CHECK(same_bits(one.mask, many.mask_alone, B * S * S));
            seg_out_free(&many);
        }
        seg_out_free(&one);
        tested++;
    }
    printf("# %d variants tested\n", tested);
    CHECK(tested >= 1);
    seg_out_free(&f32);
    free(want);
    free(wmask);
    free(img);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
}

/* What the observer sees of the decoder: its layers by number and name,
 * rows and widths. */
struct seen_dec {
    int rows[64], cols[64], calls;
    int head_negative; /* the head's input had a negative value */
};

static void note_dec(void *user, int layer, int phase, const float *x, int rows, int cols)
{
    struct seen_dec *s = user;
    if (phase != EVRT_OBSERVE_INPUT || layer >= 64) return;
    s->rows[layer] = rows;
    s->cols[layer] = cols;
    s->calls++;
    if (layer == 1 + 4 * 3)
        for (int i = 0; i < rows * cols; i++) s->head_negative |= x[i] < 0.0f;
}

static void the_decoders_layers_are_numbered_after_the_head_and_observed_on_every_patch(void)
{
    struct evit_vit_config c = mlp_config(0);
    struct evit_vit m;
    struct evit_qmodel q;
    struct seen_dec seen;
    char name[64];
    enum { B = 2 };
    int N = (c.img_size / c.patch) * (c.img_size / c.patch), D = c.dim, C = c.decoder_dim;
    seg_model(&m, &c, 8);
    evit_qmodel_from_vit(&q, &m);
    /* the existing numbers stay; linear_c.0, linear_c.1, linear_fuse follow
     * the head (13) */
    CHECK(evrt_layer_count(&q.rt) == 2 + 4 * 3 + 3);
    CHECK(strcmp(evrt_layer_name(&q.rt, 13, name, sizeof name), "head") == 0);
    CHECK(strcmp(evrt_layer_name(&q.rt, 14, name, sizeof name), "decode_head.linear_c.0") == 0);
    CHECK(strcmp(evrt_layer_name(&q.rt, 15, name, sizeof name), "decode_head.linear_c.1") == 0);
    CHECK(strcmp(evrt_layer_name(&q.rt, 16, name, sizeof name), "decode_head.linear_fuse") == 0);
    CHECK(strcmp(evrt_layer_name(&q.rt, 17, name, sizeof name), "?") == 0);
    CHECK(evrt_model_layer(&q.rt, 17) == NULL);
    CHECK(evrt_model_layer(&q.rt, 16) == &q.rt.decoder->fuse && evrt_model_layer(&q.rt, 15) == &q.rt.decoder->linear_c[1]);
    CHECK(q.rt.head.in == C && q.rt.decoder->fuse.in == 2 * C);
    /* bytes: every parameter of the checkpoint, float32 */
    CHECK(evrt_model_bytes(&q.rt) == 4 * (size_t)evit_config_params(&c));
    uint8_t *img = random_images(&c, B, 4);
    float *z = malloc(sizeof(float) * B * N * c.classes);
    evrt_ctx *ctx = NULL;
    memset(&seen, 0, sizeof seen);
    REQUIRE(evrt_ctx_create(&ctx, &q.rt, B) == EVRT_OK);
    evrt_set_observer(ctx, note_dec, &seen);
    CHECK(evrt_infer_seg(ctx, img, B, z, NULL, NULL) == EVRT_OK);
    CHECK(seen.calls == evrt_layer_count(&q.rt));
    for (int i = 14; i < 16; i++) CHECK(seen.rows[i] == B * N && seen.cols[i] == D);
    CHECK(seen.rows[16] == B * N && seen.cols[16] == 2 * C);
    CHECK(seen.rows[13] == B * N && seen.cols[13] == C);
    CHECK(!seen.head_negative); /* after the ReLU */
    CHECK(seen.rows[1 + 4 * 2] == B * (N + 1)); /* the last block on every token */
    evrt_ctx_destroy(ctx);
    free(z);
    free(img);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
}

static void bad_decoders_are_refused_with_a_message(void)
{
    struct evit_vit_config c = mlp_config(0);
    struct evit_vit m;
    struct evit_qmodel q;
    struct evrt_decoder keep;
    evrt_ctx *ctx = NULL;
    char err[EVRT_ERR_MAX];
    seg_model(&m, &c, 2);
    evit_qmodel_from_vit(&q, &m);
    keep = q.dec;
    CHECK(evrt_model_check(&q.rt, err, sizeof err) == EVRT_OK);
#define REFUSED(what, text)                                                                    \
    do {                                                                                       \
        what;                                                                                  \
        CHECK(evrt_model_check(&q.rt, err, sizeof err) == EVRT_EINVAL && strstr(err, text));   \
        if (!strstr(err, text)) fprintf(stderr, "  %s: %s\n", #what, err);                     \
        q.dec = keep;                                                                          \
        q.rt.decoder = &q.dec;                                                                 \
    } while (0)
    REFUSED(q.rt.decoder = NULL, "without its decoder");
    REFUSED(q.dec.levels = 0, "levels 0");
    REFUSED(q.dec.levels = 5, "levels 5");
    REFUSED(q.dec.level[0] = 2, "strictly increasing");
    REFUSED(q.dec.level[0] = -1, "strictly increasing");
    REFUSED(q.dec.level[1] = 1, "last block 2");
    REFUSED(q.dec.norm_b[0] = NULL, "LayerNorm");
    REFUSED(q.dec.dim = 8, "expected");
    REFUSED(q.dec.fuse.in = 7, "decode_head.linear_fuse is 7 -> 7, expected 14 -> 7");
    REFUSED(q.dec.linear_c[1].w = NULL, "decode_head.linear_c.1: float32 layer without weights");
#undef REFUSED
    /* a class-head call on it */
    uint8_t *img = random_images(&c, 1, 1);
    float z[5];
    REQUIRE(evrt_ctx_create(&ctx, &q.rt, 1) == EVRT_OK);
    CHECK(evrt_infer(ctx, img, 1, z) == EVRT_EINVAL && strstr(evrt_ctx_error(ctx), "evrt_infer_seg"));
    evrt_ctx_destroy(ctx);
    /* a context on a bad one says why */
    q.dec.level[1] = 1;
    CHECK(evrt_ctx_create(&ctx, &q.rt, 1) == EVRT_EINVAL && strstr(evrt_ctx_error(ctx), "last block"));
    evrt_ctx_destroy(ctx);
    free(img);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
}

static void calls_of_the_wrong_kind_and_bad_segmentation_models_are_refused(void)
{
    struct evit_vit_config c = seg_config(1), cc = tiny_config();
    struct evit_vit m, mc;
    struct evit_qmodel q, qc;
    evrt_ctx *ctx = NULL;
    char err[EVRT_ERR_MAX];
    float z[9 * 3 * 2];
    uint8_t mask[24 * 24];
    seg_model(&m, &c, 1);
    evit_qmodel_from_vit(&q, &m);
    uint8_t *img = random_images(&c, 1, 1);
    REQUIRE(evrt_ctx_create(&ctx, &q.rt, 1) == EVRT_OK);
    CHECK(evrt_infer(ctx, img, 1, z) == EVRT_EINVAL);
    CHECK(strstr(evrt_ctx_error(ctx), "evrt_infer_seg") != NULL);
    CHECK(evrt_infer_seg(ctx, img, 1, NULL, NULL, NULL) == EVRT_EINVAL);
    CHECK(evrt_infer_seg(ctx, img, 2, z, NULL, NULL) == EVRT_EINVAL);
    CHECK(evrt_infer_seg(ctx, img, 1, NULL, NULL, mask) == EVRT_OK);
    evrt_ctx_destroy(ctx);
    /* a class head has no per-patch logits */
    evit_vit_alloc(&mc, &cc);
    randomise_params(&mc, 2, 0.0, 0.2, 0.3);
    evit_qmodel_from_vit(&qc, &mc);
    uint8_t *imgc = random_images(&cc, 1, 1);
    REQUIRE(evrt_ctx_create(&ctx, &qc.rt, 1) == EVRT_OK);
    CHECK(evrt_infer_seg(ctx, imgc, 1, z, NULL, NULL) == EVRT_EINVAL);
    CHECK(strstr(evrt_ctx_error(ctx), "evrt_infer") != NULL);
    evrt_ctx_destroy(ctx);
    /* Token Merging is for class heads; an unknown head kind */
    q.rt.blocks[0].merge_r = 1;
    CHECK(evrt_model_check(&q.rt, err, sizeof err) == EVRT_EINVAL && strstr(err, "class heads"));
    q.rt.blocks[0].merge_r = 0;
    q.rt.head_kind = 7;
    CHECK(evrt_model_check(&q.rt, err, sizeof err) == EVRT_EINVAL && strstr(err, "head kind 7"));
    q.rt.head_kind = EVRT_HEAD_SEG_LINEAR;
    CHECK(evrt_model_check(&q.rt, err, sizeof err) == EVRT_OK);
    free(img);
    free(imgc);
    evit_qmodel_free(&qc);
    evit_vit_free(&mc);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
    /* more than 256 classes: logits and scores, but no mask of bytes */
    c.classes = 300;
    seg_model(&m, &c, 3);
    evit_qmodel_from_vit(&q, &m);
    img = random_images(&c, 1, 2);
    float *zz = malloc(sizeof(float) * 9 * 300);
    REQUIRE(evrt_ctx_create(&ctx, &q.rt, 1) == EVRT_OK);
    CHECK(evrt_infer_seg(ctx, img, 1, zz, NULL, mask) == EVRT_EINVAL);
    CHECK(strstr(evrt_ctx_error(ctx), "256 classes") != NULL);
    CHECK(evrt_infer_seg(ctx, img, 1, zz, NULL, NULL) == EVRT_OK);
    evrt_ctx_destroy(ctx);
    free(zz);
    free(img);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
}

int main(void)
{
    RUN(the_decoders_fast_kernel_gives_its_specifications_bits_for_any_rows);
    RUN(the_decoder_is_evits_upsampling_and_argmax);
    RUN(per_patch_logits_match_the_training_engine_within_1e_5);
    RUN(a_seg_mlp_models_logits_match_the_training_engine_within_1e_5_on_the_plain_and_fast_kernels);
    RUN(an_int8_seg_mlp_model_gives_the_same_bits_for_every_thread_count_on_every_variant);
    RUN(the_decoders_layers_are_numbered_after_the_head_and_observed_on_every_patch);
    RUN(bad_decoders_are_refused_with_a_message);
    RUN(scores_and_masks_are_the_decoder_on_the_logits_for_every_thread_count);
    RUN(an_int8_segmentation_model_runs_its_head_on_every_patch_and_stays_close_to_float);
    RUN(calls_of_the_wrong_kind_and_bad_segmentation_models_are_refused);
    return test_summary();
}
