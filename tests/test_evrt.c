/* test_evrt.c: libevrt, the inference runtime: the integer kernels against
 * plain loops written here, the float path against the training engine's
 * forward pass, the observer, and the refusals. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "evrt.h"
#include "qmodel.h"
#include "rng.h"
#include "test.h"
#include "fixture.h"
#include "util.h"
#include "vit.h"

/* Pruned-style: a single head, an inner width (15) unrelated to D, an MLP
 * of width 1. */
static struct evit_vit_config pruned_config(void)
{
    struct evit_vit_config c = tiny_config();
    snprintf(c.name, sizeof c.name, "pruned");
    c.img_size = 12;
    c.channels = 3;
    c.classes = 3;
    c.dim = 16;
    c.depth = 3;
    c.blocks[0] = (struct evit_block_shape){1, 16, 5, 0};
    c.blocks[1] = (struct evit_block_shape){5, 3, 40, 0};
    c.blocks[2] = (struct evit_block_shape){2, 8, 1, 0};
    return c;
}

static struct evit_vit_config depth1_config(void)
{
    struct evit_vit_config c = tiny_config();
    c.depth = 1;
    c.channels = 1;
    c.blocks[0] = (struct evit_block_shape){2, 6, 24, 0};
    return c;
}

/* Parameters of order one where it matters: weights N(0, 1/in) (so
 * activations keep their size through the layers), biases N(0, 0.2^2),
 * norm weights 1 + N(0, 0.3^2), embeddings N(0, 0.5^2). */
static void randomise(struct evit_vit *m, uint64_t seed)
{
    randomise_params(m, seed, 0.0, 0.2, 0.3);
    for (int c = 0; c < 4; c++) {
        m->mean[c] = 0.4f + 0.05f * (float)c;
        m->std[c] = 0.2f + 0.05f * (float)c;
    }
}

static void fill_normal(float *x, size_t n, double std, struct evit_rng *r)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * evit_rng_normal(r));
}

/* ---------------------------------------------------------------- weights */

static void quantized_then_dequantized_weights_are_within_half_a_step_per_channel(void)
{
    enum { O = 7, I = 33 };
    float w[O * I], scale[O];
    int8_t q[O * I];
    struct evit_rng r;
    evit_rng_seed(&r, 1);
    for (int o = 0; o < O; o++) fill_normal(w + o * I, I, 0.01 * (o + 1) * (o + 1), &r);
    evrt_quantize_weights_ref(q, scale, w, O, I);
    for (int o = 0; o < O; o++) {
        float amax = 0.0f;
        int hit = 0;
        for (int i = 0; i < I; i++) amax = fabsf(w[o * I + i]) > amax ? fabsf(w[o * I + i]) : amax;
        CHECK_NEAR(scale[o], amax / 127.0f, 1e-12);
        for (int i = 0; i < I; i++) {
            float back = (float)q[o * I + i] * scale[o];
            /* half a step, plus float rounding of the product */
            CHECK(fabsf(back - w[o * I + i]) <= 0.5f * scale[o] * (1.0f + 1e-5f));
            CHECK(q[o * I + i] >= -127 && q[o * I + i] <= 127);
            hit |= abs(q[o * I + i]) == 127;
        }
        CHECK(hit); /* the largest weight uses the whole range */
    }
}

static void an_all_zero_channel_quantizes_to_zeros_without_dividing_by_zero(void)
{
    float w[3 * 4] = {0, 0, 0, 0, 1, -2, 0.5f, 0, -0.0f, 0, 0, 0};
    float scale[3];
    int8_t q[12];
    evrt_quantize_weights_ref(q, scale, w, 3, 4);
    CHECK(isfinite(scale[0]) && scale[0] > 0.0f);
    CHECK(isfinite(scale[2]) && scale[2] > 0.0f);
    for (int i = 0; i < 4; i++) CHECK(q[i] == 0 && q[8 + i] == 0);
    CHECK((q[4] == 63 || q[4] == 64) && q[5] == -127 && q[6] == 32);
    /* and the int8 kernel gives exactly the bias for the zero channel */
    int8_t x[4] = {100, -100, 27, 5};
    float b[3] = {0.25f, 0, -1}, y[3];
    evrt_linear_i8_ref(y, x, 0, 0.1f, q, scale, b, 1, 4, 3);
    CHECK(y[0] == 0.25f && y[2] == -1.0f);
}

/* ---------------------------------------------------------------- kernels */

static void activation_quantization_rounds_ties_to_even_and_saturates(void)
{
    float x[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.4f, 1000.0f, -1000.0f, NAN, 126.5f, -128.5f};
    int8_t want[] = {0, 2, 2, 0, -2, -2, 3, 127, -128, 0, 126, -128};
    int8_t q[12];
    evrt_quantize_act_ref(q, x, 12, 1.0f, 0);
    for (int i = 0; i < 12; i++) {
        if (q[i] != want[i]) fprintf(stderr, "  x %g -> %d, want %d\n", (double)x[i], q[i], want[i]);
        CHECK(q[i] == want[i]);
    }
    /* asymmetric: zero point -20, scale 0.5: 0 -> -20, 10.25 -> 20.5 -> 20 (even) - 20 = 0 */
    float y[] = {0.0f, 10.25f, 1e9f, -1e9f, 73.5f, -54.0f};
    int8_t wy[] = {-20, 0, 127, -128, 127, -128};
    evrt_quantize_act_ref(q, y, 6, 0.5f, -20);
    for (int i = 0; i < 6; i++) CHECK(q[i] == wy[i]);
    /* the scale enters as a multiplication by its float inverse */
    float s = 0.1f, v = 0.35f;
    evrt_quantize_act_ref(q, &v, 1, s, 0);
    CHECK(q[0] == (int8_t)rintf(v * (1.0f / s)));
}

static void int8_linear_equals_a_plain_integer_loop_exactly(void)
{
    struct evit_rng r;
    evit_rng_seed(&r, 7);
    for (int trial = 0; trial < 40; trial++) {
        int N = 1 + (int)evit_rng_below(&r, 9), I = 1 + (int)evit_rng_below(&r, 300),
            O = 1 + (int)evit_rng_below(&r, 40);
        int32_t zx = trial % 2 ? (int32_t)evit_rng_below(&r, 256) - 128 : 0; /* half asymmetric */
        float xs = (float)(0.001 + evit_rng_uniform(&r)), *ws = malloc(sizeof(float) * O),
              *b = malloc(sizeof(float) * O), *y = malloc(sizeof(float) * N * O);
        int8_t *x = malloc((size_t)N * I), *w = malloc((size_t)O * I);
        for (int i = 0; i < N * I; i++) x[i] = (int8_t)((int)evit_rng_below(&r, 256) - 128);
        for (int i = 0; i < O * I; i++) w[i] = (int8_t)((int)evit_rng_below(&r, 255) - 127);
        for (int o = 0; o < O; o++) {
            ws[o] = (float)(1e-4 + 0.01 * evit_rng_uniform(&r));
            b[o] = (float)evit_rng_normal(&r);
        }
        int with_bias = trial % 3 != 0;
        evrt_linear_i8_ref(y, x, zx, xs, w, ws, with_bias ? b : NULL, N, I, O);
        for (int n = 0; n < N; n++)
            for (int o = 0; o < O; o++) {
                int64_t acc = 0;
                for (int i = 0; i < I; i++) acc += (int64_t)(x[n * I + i] - zx) * w[o * I + i];
                float m = xs * ws[o];
                float want = (float)(int32_t)acc * m;
                want = want + (with_bias ? b[o] : 0.0f);
                if (memcmp(&want, &y[n * O + o], sizeof want) != 0) {
                    fprintf(stderr, "  trial %d (N %d I %d O %d zx %d): y[%d,%d] = %.9g, want %.9g\n",
                            trial, N, I, O, zx, n, o, (double)y[n * O + o], (double)want);
                    CHECK(0);
                    n = N;
                    break;
                }
            }
        free(ws);
        free(b);
        free(y);
        free(x);
        free(w);
    }
}

static void float_linear_matches_a_double_loop(void)
{
    enum { N = 3, I = 37, O = 5 };
    float x[N * I], w[O * I], b[O], y[N * O];
    struct evit_rng r;
    evit_rng_seed(&r, 3);
    fill_normal(x, N * I, 1.0, &r);
    fill_normal(w, O * I, 1.0, &r);
    fill_normal(b, O, 1.0, &r);
    evrt_linear_f32_ref(y, x, w, b, N, I, O);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double s = b[o];
            for (int i = 0; i < I; i++) s += (double)x[n * I + i] * (double)w[o * I + i];
            CHECK_NEAR(y[n * O + o], s, 1e-4);
        }
}

/* ---------------------------------------------------------------- model */

static double max_diff_runtime_vs_engine(const struct evit_vit_config *c, uint64_t seed, int B)
{
    struct evit_vit m;
    struct evit_vit_acts a;
    struct evit_qmodel q;
    evrt_ctx *ctx = NULL;
    double worst = INFINITY;
    evit_vit_alloc(&m, c);
    randomise(&m, seed);
    uint8_t *img = random_images(c, B, seed + 1);
    float *logits = malloc(sizeof(float) * B * c->classes);
    evit_vit_acts_alloc(&a, c, B, 0);
    evit_vit_forward(&m, &a, img, B);
    evit_qmodel_from_vit(&q, &m);
    if (evrt_ctx_create(&ctx, &q.rt, B) == EVRT_OK && evrt_infer(ctx, img, B, logits) == EVRT_OK) {
        worst = 0.0;
        for (int i = 0; i < B * c->classes; i++) {
            double d = fabs((double)logits[i] - (double)a.logits[i]);
            worst = d > worst ? d : worst;
        }
    } else {
        fprintf(stderr, "  runtime: %s\n", evrt_ctx_error(ctx));
    }
    evrt_ctx_destroy(ctx);
    evit_qmodel_free(&q);
    evit_vit_acts_free(&a);
    evit_vit_free(&m);
    free(img);
    free(logits);
    return worst;
}

static void the_runtime_float_path_matches_the_training_engine_within_1e_5(void)
{
    struct evit_vit_config cs[3] = {tiny_config(), pruned_config(), depth1_config()};
    for (int k = 0; k < 3; k++) {
        for (uint64_t seed = 1; seed <= 3; seed++) {
            double d = max_diff_runtime_vs_engine(&cs[k], seed * 10 + (uint64_t)k, 1 + (int)seed * 2);
            if (!(d <= 1e-5)) fprintf(stderr, "  %s seed %d: max |diff| %g\n", cs[k].name, (int)seed, d);
            CHECK(d <= 1e-5);
        }
    }
}

/* Token Merging: T 65 (img 16, patch 2) merging 8, 8 and 6 tokens in
 * blocks 0 to 2 (and 3 in the last, which merges nothing); T 17 merging
 * the most it can (8 of 17), then 1 of the 9 left. */
static struct evit_vit_config merge_config(int k)
{
    static const struct evit_block_shape b0[] = {{2, 8, 24, 8}, {2, 8, 24, 8}, {3, 5, 16, 6}, {2, 8, 24, 3}};
    static const struct evit_block_shape b1[] = {{2, 6, 20, 8}, {1, 7, 9, 1}, {2, 6, 20, 0}};
    return k == 0 ? make_config("merge65", 16, 3, 2, 4, 16, 4, b0) : make_config("merge17", 8, 1, 2, 3, 12, 3, b1);
}

static void the_runtime_float_path_with_token_merging_matches_the_training_engine_within_1e_5(void)
{
    for (int k = 0; k < 2; k++) {
        struct evit_vit_config c = merge_config(k);
        REQUIRE(evit_config_validate(&c, "test") == EVIT_OK);
        for (uint64_t seed = 1; seed <= 3; seed++) {
            double d = max_diff_runtime_vs_engine(&c, seed * 7 + (uint64_t)k, 1 + (int)seed);
            if (!(d <= 1e-5)) fprintf(stderr, "  %s seed %d: max |diff| %g\n", c.name, (int)seed, d);
            CHECK(d <= 1e-5);
        }
    }
}

struct seen {
    int calls, layers[64], phase[64], rows[64], cols[64];
};

static void record(void *user, int layer, int phase, const float *x, int rows, int cols)
{
    struct seen *s = user;
    (void)x;
    if (s->calls < 64) {
        s->layers[s->calls] = layer;
        s->phase[s->calls] = phase;
        s->rows[s->calls] = rows;
        s->cols[s->calls] = cols;
    }
    s->calls++;
}

static void the_observer_sees_every_linear_in_order_with_class_token_rows_in_the_last_block(void)
{
    struct evit_vit_config c = tiny_config(); /* T 5, N 4, D 12 */
    struct evit_vit m;
    struct evit_qmodel q;
    struct seen s = {0};
    evrt_ctx *ctx = NULL;
    float logits[3 * 5];
    evit_vit_alloc(&m, &c);
    randomise(&m, 5);
    evit_qmodel_from_vit(&q, &m);
    uint8_t *img = random_images(&c, 3, 6);
    REQUIRE(evrt_ctx_create(&ctx, &q.rt, 3) == EVRT_OK);
    evrt_set_observer(ctx, record, &s);
    CHECK(evrt_infer(ctx, img, 3, logits) == EVRT_OK);
    int L = evrt_layer_count(&q.rt);
    CHECK(L == 10);
    CHECK(s.calls == 2 * L);
    /* rows: patch embed B*N, block 0 B*T, block 1 qkv B*T then B, head B */
    int want_rows[10] = {12, 15, 15, 15, 15, 15, 3, 3, 3, 3};
    int want_in[10] = {32, 12, 12, 12, 20, 12, 8, 12, 8, 12};
    for (int i = 0; i < L && 2 * i + 1 < 64; i++) {
        CHECK(s.layers[2 * i] == i && s.layers[2 * i + 1] == i);
        CHECK(s.phase[2 * i] == EVRT_OBSERVE_INPUT && s.phase[2 * i + 1] == EVRT_OBSERVE_OUTPUT);
        CHECK(s.rows[2 * i] == want_rows[i]);
        CHECK(s.cols[2 * i] == want_in[i]);
        CHECK(s.cols[2 * i + 1] == evrt_model_layer(&q.rt, i)->out);
    }
    char name[64];
    CHECK(strcmp(evrt_layer_name(&q.rt, 7, name, sizeof name), "blocks.1.mlp.fc1") == 0);
    CHECK(strcmp(evrt_layer_name(&q.rt, 9, name, sizeof name), "head") == 0);
    evrt_ctx_destroy(ctx);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
    free(img);
}

static void an_int8_model_with_a_fixed_activation_scale_runs_close_to_float_and_counts_its_bytes(void)
{
    struct evit_vit_config c = tiny_config();
    struct evit_vit m;
    struct evit_qmodel q;
    evrt_ctx *ctx = NULL;
    float lf[2 * 5], lq[2 * 5];
    evit_vit_alloc(&m, &c);
    randomise(&m, 8);
    evit_qmodel_from_vit(&q, &m);
    uint8_t *img = random_images(&c, 2, 9);
    size_t fbytes = evrt_model_bytes(&q.rt);
    CHECK(fbytes == 4 * (size_t)evit_config_params(&c));
    REQUIRE(evrt_ctx_create(&ctx, &q.rt, 2) == EVRT_OK);
    CHECK(evrt_infer(ctx, img, 2, lf) == EVRT_OK);
    size_t wbytes = 0, outs = 0;
    for (int i = 0; i < evrt_layer_count(&q.rt); i++) {
        struct evrt_linear *L = evrt_model_layer(&q.rt, i);
        L->dtype = EVRT_I8;
        L->in_scale = 0.06f; /* +-7.6: activations here are of order one */
        wbytes += (size_t)L->in * L->out;
        outs += (size_t)L->out;
    }
    CHECK(evrt_model_bytes(&q.rt) == fbytes - 3 * wbytes + 4 * outs + 8 * (size_t)evrt_layer_count(&q.rt));
    CHECK(evrt_infer(ctx, img, 2, lq) == EVRT_OK);
    double dot = 0, aa = 0, bb = 0;
    for (int i = 0; i < 10; i++) {
        dot += (double)lf[i] * (double)lq[i];
        aa += (double)lf[i] * (double)lf[i];
        bb += (double)lq[i] * (double)lq[i];
    }
    if (!(dot / sqrt(aa * bb) > 0.99)) fprintf(stderr, "  cosine %g\n", dot / sqrt(aa * bb));
    CHECK(dot / sqrt(aa * bb) > 0.99);
    evrt_ctx_destroy(ctx);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
    free(img);
}

static void bad_models_and_batches_are_refused_with_a_message(void)
{
    struct evit_vit_config c = tiny_config();
    struct evit_vit m;
    struct evit_qmodel q;
    evrt_ctx *ctx = NULL;
    float logits[5];
    evit_vit_alloc(&m, &c);
    randomise(&m, 2);
    evit_qmodel_from_vit(&q, &m);
    uint8_t *img = random_images(&c, 1, 3);

    q.blocks[1].fc1.out = 9; /* fc2 still takes 8 */
    CHECK(evrt_ctx_create(&ctx, &q.rt, 4) == EVRT_EINVAL);
    REQUIRE(ctx != NULL);
    CHECK(strstr(evrt_ctx_error(ctx), "blocks.1.mlp.fc1") != NULL);
    evrt_ctx_destroy(ctx);
    q.blocks[1].fc1.out = 8;

    REQUIRE(evrt_ctx_create(&ctx, &q.rt, 4) == EVRT_OK);
    CHECK(evrt_infer(ctx, img, 5, logits) == EVRT_EINVAL);
    CHECK(strstr(evrt_ctx_error(ctx), "batch 5") != NULL);
    CHECK(evrt_infer(ctx, img, 0, logits) == EVRT_EINVAL);
    /* an int8 layer without a usable activation scale */
    q.blocks[0].proj.dtype = EVRT_I8;
    q.blocks[0].proj.in_scale = 0.0f;
    CHECK(evrt_infer(ctx, img, 1, logits) == EVRT_EINVAL);
    CHECK(strstr(evrt_ctx_error(ctx), "blocks.0.attn.proj") != NULL);
    q.blocks[0].proj.in_scale = 0.1f;
    q.blocks[0].proj.in_zero = 300;
    CHECK(evrt_infer(ctx, img, 1, logits) == EVRT_EINVAL);
    q.blocks[0].proj.in_zero = 0;
    q.blocks[0].proj.wq = NULL;
    CHECK(evrt_infer(ctx, img, 1, logits) == EVRT_EINVAL);
    q.blocks[0].proj.dtype = EVRT_F32;
    CHECK(evrt_infer(ctx, img, 1, logits) == EVRT_OK);
    CHECK(evrt_ctx_error(ctx)[0] == '\0');
    evrt_ctx_destroy(ctx);
    CHECK(evrt_ctx_create(&ctx, &q.rt, 0) == EVRT_EINVAL);
    evrt_ctx_destroy(ctx);
    q.rt.patch = 3; /* does not divide 8 */
    CHECK(evrt_ctx_create(&ctx, &q.rt, 1) == EVRT_EINVAL);
    CHECK(strstr(evrt_ctx_error(ctx), "patch 3") != NULL);
    evrt_ctx_destroy(ctx);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
    free(img);
}

int main(void)
{
    RUN(quantized_then_dequantized_weights_are_within_half_a_step_per_channel);
    RUN(an_all_zero_channel_quantizes_to_zeros_without_dividing_by_zero);
    RUN(activation_quantization_rounds_ties_to_even_and_saturates);
    RUN(int8_linear_equals_a_plain_integer_loop_exactly);
    RUN(float_linear_matches_a_double_loop);
    RUN(the_runtime_float_path_matches_the_training_engine_within_1e_5);
    RUN(the_runtime_float_path_with_token_merging_matches_the_training_engine_within_1e_5);
    RUN(the_observer_sees_every_linear_in_order_with_class_token_rows_in_the_last_block);
    RUN(an_int8_model_with_a_fixed_activation_scale_runs_close_to_float_and_counts_its_bytes);
    RUN(bad_models_and_batches_are_refused_with_a_message);
    return test_summary();
}
