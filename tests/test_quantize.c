/* test_quantize.c: the calibrators on synthetic distributions with a known
 * answer, the statistics the runtime's observer collects, the quantized
 * model file, and an fm-tiny-shaped model quantized end to end. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "evrt.h"
#include "h5.h"
#include "qmodel.h"
#include "quantize.h"
#include "rng.h"
#include "test.h"
#include "fixture.h"
#include "util.h"
#include "vit.h"

static struct evit_quant_stats *stats_of(const float *x, size_t n)
{
    struct evit_quant_stats *s = evit_malloc(sizeof *s);
    evit_quant_stats_init(s);
    evit_quant_stats_range(s, x, n);
    evit_quant_stats_hist(s, x, n);
    return s;
}

/* ---------------------------------------------------------------- calibrators */

static void on_a_uniform_distribution_minmax_is_the_maximum_and_percentile_is_below_it(void)
{
    enum { N = 200000 };
    float *x = malloc(sizeof(float) * N);
    struct evit_rng r;
    evit_rng_seed(&r, 1);
    for (int i = 0; i < N; i++) x[i] = (float)(4.0 * evit_rng_uniform(&r) - 2.0);
    struct evit_quant_stats *s = stats_of(x, N);
    double mx = s->max > -s->min ? s->max : -s->min;
    CHECK_NEAR(evit_quant_threshold(s, EVIT_CAL_MINMAX, 0), mx, 1e-6);
    double p99 = evit_quant_threshold(s, EVIT_CAL_PERCENTILE, 99.0);
    CHECK(p99 < mx);
    CHECK_NEAR(p99, 0.99 * 2.0, 0.01); /* |x| is uniform on [0, 2] */
    /* with nothing to clip, mse and entropy keep (nearly) the whole range */
    CHECK(evit_quant_threshold(s, EVIT_CAL_MSE, 0) > 0.95 * mx);
    CHECK(evit_quant_threshold(s, EVIT_CAL_ENTROPY, 0) > 0.9 * mx);
    free(s);
    free(x);
}

/* A standard Gaussian with three outliers of 150..200 sigma.  minmax spends
 * the int8 range on them; percentile and entropy clip to the bulk.  MSE
 * clips once the bulk's rounding error outweighs the outliers' clipping
 * error: about N t^2 / (12 * 127^2) against sum (o - t)^2, which with three
 * outliers needs N in the millions (t* ~ 3 o / (3 + N / 193548)). */
static void with_a_few_huge_outliers_entropy_mse_and_percentile_clip_well_below_them(void)
{
    enum { N = 2000000 };
    float *x = malloc(sizeof(float) * N);
    struct evit_rng r;
    evit_rng_seed(&r, 2);
    for (int i = 0; i < N; i++) x[i] = (float)evit_rng_normal(&r);
    x[10] = 200.0f;
    x[20] = -180.0f;
    x[30] = 150.0f;
    struct evit_quant_stats *s = stats_of(x, N);
    double mm = evit_quant_threshold(s, EVIT_CAL_MINMAX, 0);
    double pc = evit_quant_threshold(s, EVIT_CAL_PERCENTILE, 99.99);
    double en = evit_quant_threshold(s, EVIT_CAL_ENTROPY, 0);
    double ms = evit_quant_threshold(s, EVIT_CAL_MSE, 0);
    fprintf(stderr, "  # thresholds: minmax %.3f percentile %.3f entropy %.3f mse %.3f\n", mm, pc, en, ms);
    CHECK(mm >= 200.0);
    /* the Gaussian's bulk survives (|x| < 3.9 for 99.99%), the outliers do not */
    CHECK(pc > 3.0 && pc < 5.0);
    CHECK(en > 3.0 && en < 20.0); /* TensorRT's search keeps at least 128 of 2048 bins: 12.5 here */
    CHECK(ms > 3.0 && ms < 60.0);
    /* with fewer samples MSE rightly keeps the outliers (see above) */
    struct evit_quant_stats *few = stats_of(x, 100000);
    CHECK(evit_quant_threshold(few, EVIT_CAL_MSE, 0) > 100.0);
    free(few);
    free(s);
    free(x);
}

static void asymmetric_ranges_contain_zero_and_use_the_whole_int8_range(void)
{
    enum { N = 50000 };
    float *x = malloc(sizeof(float) * N);
    struct evit_rng r;
    evit_rng_seed(&r, 3);
    for (int i = 0; i < N; i++) x[i] = (float)(1.0 + 5.0 * evit_rng_uniform(&r)); /* [1, 6] */
    struct evit_quant_stats *s = stats_of(x, N);
    struct evit_quant_config c = {.calibrator = EVIT_CAL_MINMAX, .symmetric = 0};
    float scale;
    int32_t zero;
    evit_quant_params(s, &c, &scale, &zero);
    CHECK_NEAR(scale, s->max / 255.0, 1e-6); /* range [0, max]: 0 must be exact */
    CHECK(zero == -128);
    int8_t q[2];
    float ends[2] = {0.0f, (float)s->max};
    evrt_quantize_act_ref(q, ends, 2, scale, zero);
    CHECK(q[0] == -128 && q[1] == 127);
    /* symmetric on the same data spends half the codes on negatives */
    c.symmetric = 1;
    evit_quant_params(s, &c, &scale, &zero);
    CHECK(zero == 0);
    CHECK_NEAR(scale, s->max / 127.0, 1e-6);
    /* mse and percentile shrink the range, never past the data's bulk */
    double lo, hi;
    evit_quant_range(s, EVIT_CAL_MSE, 0, &lo, &hi);
    CHECK(lo == 0.0 && hi > 5.5 && hi <= s->max + 1e-9);
    evit_quant_range(s, EVIT_CAL_PERCENTILE, 99.0, &lo, &hi);
    CHECK(lo == 0.0 && hi < s->max && hi > 5.8);
    free(s);
    free(x);
}

static void an_input_that_is_always_zero_gets_a_usable_scale(void)
{
    float x[100] = {0};
    struct evit_quant_stats *s = stats_of(x, 100);
    for (int cal = 0; cal < 4; cal++) {
        struct evit_quant_config c = {.calibrator = (enum evit_calibrator)cal, .percentile = 99, .symmetric = 1};
        float scale;
        int32_t zero;
        evit_quant_params(s, &c, &scale, &zero);
        CHECK(scale > 0.0f && isfinite(scale) && zero == 0);
        c.symmetric = 0;
        evit_quant_params(s, &c, &scale, &zero);
        CHECK(scale > 0.0f && isfinite(scale));
    }
    free(s);
}

/* ---------------------------------------------------------------- config */

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

static void the_config_is_read_strictly(void)
{
    struct evit_quant_config c;
    const char *p = write_file("q.json", "{\"calibrator\":\"mse\",\"calib_images\":100,\"symmetric\":false}");
    REQUIRE(evit_quant_config_load(p, &c) == 0);
    CHECK(c.calibrator == EVIT_CAL_MSE && c.calib_images == 100 && !c.symmetric);
    CHECK(c.max_drop == 0.5 && c.percentile == 99.99);
    evit_quant_config_free(&c);
    fprintf(stderr, "  # the next three errors are expected:\n");
    p = write_file("bad.json", "{\"calibrator\":\"mse\",\"bits\":4}");
    CHECK(evit_quant_config_load(p, &c) < 0);
    p = write_file("bad2.json", "{\"calibrator\":\"kl\"}");
    CHECK(evit_quant_config_load(p, &c) < 0);
    p = write_file("bad3.json", "{\"calibrator\":\"entropy\",\"symmetric\":false}");
    CHECK(evit_quant_config_load(p, &c) < 0);
}

/* ---------------------------------------------------------------- models */

static struct evit_vit_config fm_tiny(void)
{
    static const struct evit_block_shape b[] = {{4, 16, 256, 0}, {4, 16, 256, 0}, {4, 16, 256, 0}, {4, 16, 256, 0}};
    return make_config("fm-tiny", 28, 1, 4, 10, 64, 4, b);
}

/* Weights N(0, 1/in) and order-one embeddings: activations keep their size
 * through the blocks, as in a trained model. */
static void randomise(struct evit_vit *m, uint64_t seed)
{
    randomise_params(m, seed, 0.0, 0.1, 0.2);
    m->mean[0] = 0.29f;
    m->std[0] = 0.35f;
}

/* Fashion-MNIST-like: a dark background, a bright blob whose place and
 * size vary, some noise (tests/mkdata.py draws the same kind). */
static uint8_t *real_looking_images(int B, uint64_t seed)
{
    struct evit_rng r;
    evit_rng_seed(&r, seed);
    uint8_t *img = evit_malloc((size_t)B * 28 * 28);
    for (int b = 0; b < B; b++) {
        int y0 = (int)evit_rng_below(&r, 14), x0 = (int)evit_rng_below(&r, 14), h = 6 + (int)evit_rng_below(&r, 9);
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) {
                int in = y >= y0 && y < y0 + h && x >= x0 && x < x0 + h;
                img[(size_t)b * 784 + y * 28 + x] = (uint8_t)(in ? 150 + evit_rng_below(&r, 100) : evit_rng_below(&r, 40));
            }
    }
    return img;
}

static int infer(struct evit_qmodel *q, const uint8_t *img, int B, float *logits)
{
    evrt_ctx *ctx = NULL;
    int rc = evrt_ctx_create(&ctx, &q->rt, B);
    if (rc == EVRT_OK) rc = evrt_infer(ctx, img, B, logits);
    if (rc != EVRT_OK) fprintf(stderr, "  runtime: %s\n", evrt_ctx_error(ctx));
    evrt_ctx_destroy(ctx);
    return rc;
}

static double cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * (double)b[i];
        aa += (double)a[i] * (double)a[i];
        bb += (double)b[i] * (double)b[i];
    }
    return ab / sqrt(aa * bb);
}

static void calibration_sees_what_the_device_computes_class_token_only_in_the_last_block(void)
{
    struct evit_vit_config c = fm_tiny(); /* T 50, N 49, D 64 */
    struct evit_vit m;
    struct evit_qmodel q;
    evit_vit_alloc(&m, &c);
    randomise(&m, 4);
    evit_qmodel_from_vit(&q, &m);
    uint8_t *img = real_looking_images(10, 5);
    int nl = evrt_layer_count(&q.rt);
    struct evit_quant_stats *st = evit_malloc(sizeof *st * (size_t)evit_quant_stat_count(&q));
    REQUIRE(evit_quant_stat_count(&q) == nl + 4 * 4);
    REQUIRE(evit_quant_collect(&q, img, 10, 4, st) == 0);
    CHECK(st[0].count == 10.0 * 49 * 16);        /* patch embedding */
    CHECK(st[3].count == 10.0 * 50 * 64);        /* block 0 fc1: every token */
    CHECK(st[13].count == 10.0 * 50 * 64);       /* block 3 qkv: every token */
    CHECK(st[15].count == 10.0 * 1 * 64);        /* block 3 fc1: class token only */
    CHECK(st[16].count == 10.0 * 1 * 256);       /* block 3 fc2 */
    CHECK(st[17].count == 10.0 * 64);            /* head */
    CHECK(st[0].min >= (0.0 - 0.29) / 0.35 - 1e-5 && st[0].max <= (1.0 - 0.29) / 0.35 + 1e-5);
    CHECK(st[4].min >= -0.17 - 1e-3); /* fc2 takes GELU output, >= -0.17 */
    /* attention: q, k, v per block (q of the class token alone in the last
     * block), and each (image, head, query) row's peak probability */
    CHECK(st[nl + 0].count == 10.0 * 50 * 64 && st[nl + 1].count == 10.0 * 50 * 64);
    CHECK(st[nl + 3].count == 10.0 * 4 * 50);
    CHECK(st[nl + 12].count == 10.0 * 1 * 64);  /* block 3 q */
    CHECK(st[nl + 13].count == 10.0 * 50 * 64); /* block 3 k */
    CHECK(st[nl + 15].count == 10.0 * 4 * 1);   /* block 3 p */
    for (int l = 0; l < 4; l++)
        CHECK(st[nl + 4 * l + 3].min >= 1.0 / 50 - 1e-6 && st[nl + 4 * l + 3].max <= 1.0 + 1e-6);
    for (int i = 0; i < nl; i++) CHECK(evrt_model_layer(&q.rt, i)->dtype == EVRT_F32);
    free(st);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
    free(img);
}

/* Calibrates q on img with config c and makes every layer int8. */
static void quantize_all(struct evit_qmodel *q, const uint8_t *img, int n, const struct evit_quant_config *c)
{
    struct evit_quant_stats *st = evit_malloc(sizeof *st * (size_t)evit_quant_stat_count(q));
    EVIT_ASSERT(evit_quant_collect(q, img, n, 16, st) == 0);
    evit_quant_apply(q, st, c);
    free(st);
}

static void a_quantized_fm_tiny_model_gives_logits_close_to_float(void)
{
    struct evit_vit_config c = fm_tiny();
    struct evit_vit m;
    struct evit_qmodel q;
    enum { NC = 64, NT = 32 };
    evit_vit_alloc(&m, &c);
    randomise(&m, 6);
    uint8_t *cal = real_looking_images(NC, 7), *test = real_looking_images(NT, 8);
    float *lf = malloc(sizeof(float) * NT * 10), *lq = malloc(sizeof(float) * NT * 10);
    for (int cal_i = 0; cal_i < 4; cal_i++) {
        for (int sym = 1; sym >= 0; sym--) {
            if (cal_i == EVIT_CAL_ENTROPY && !sym) continue;
            struct evit_quant_config qc = {.calibrator = (enum evit_calibrator)cal_i, .percentile = 99.99, .symmetric = sym};
            evit_qmodel_from_vit(&q, &m);
            REQUIRE(infer(&q, test, NT, lf) == 0);
            quantize_all(&q, cal, NC, &qc);
            REQUIRE(infer(&q, test, NT, lq) == 0);
            double cs = cosine(lf, lq, NT * 10);
            fprintf(stderr, "  # %s %s: cosine %.5f\n", evit_calibrator_name(qc.calibrator),
                    sym ? "symmetric" : "asymmetric", cs);
            CHECK(cs > 0.99);
            /* and the logits did change: int8 really ran */
            CHECK(memcmp(lf, lq, sizeof(float) * NT * 10) != 0);
            evit_qmodel_free(&q);
        }
    }
    /* INT8 attention as well: every block's q k^T and p v in int8 */
    for (int cal_i = EVIT_CAL_ENTROPY; cal_i <= EVIT_CAL_MSE; cal_i++) {
        struct evit_quant_config qc = {.calibrator = (enum evit_calibrator)cal_i, .symmetric = 1,
                                       .quantize_attention = 1};
        evit_qmodel_from_vit(&q, &m);
        REQUIRE(infer(&q, test, NT, lf) == 0);
        quantize_all(&q, cal, NC, &qc);
        CHECK(evit_qmodel_int8_attention(&q) == 4);
        float *l8 = malloc(sizeof(float) * NT * 10);
        REQUIRE(infer(&q, test, NT, l8) == 0);
        for (int l = 0; l < 4; l++) q.rt.blocks[l].attn_dtype = EVRT_F32;
        REQUIRE(infer(&q, test, NT, lq) == 0);
        double cs = cosine(lf, l8, NT * 10);
        fprintf(stderr, "  # %s with INT8 attention: cosine %.5f\n", evit_calibrator_name(qc.calibrator), cs);
        CHECK(cs > 0.99);
        CHECK(memcmp(l8, lq, sizeof(float) * NT * 10) != 0); /* INT8 attention really ran */
        free(l8);
        evit_qmodel_free(&q);
    }
    /* a badly calibrated model is not close: the check can fail */
    struct evit_quant_config qc = {.calibrator = EVIT_CAL_PERCENTILE, .percentile = 50, .symmetric = 1};
    evit_qmodel_from_vit(&q, &m);
    REQUIRE(infer(&q, test, NT, lf) == 0);
    quantize_all(&q, cal, NC, &qc);
    REQUIRE(infer(&q, test, NT, lq) == 0);
    CHECK(cosine(lf, lq, NT * 10) < 0.99);
    evit_qmodel_free(&q);
    free(lf);
    free(lq);
    free(cal);
    free(test);
    evit_vit_free(&m);
}

static void layer_and_attention_errors_rank_a_badly_scaled_one_last(void)
{
    struct evit_vit_config c = fm_tiny();
    struct evit_vit m;
    struct evit_qmodel q;
    struct evit_quant_layer_err err[22];
    struct evit_quant_config qc = {.calibrator = EVIT_CAL_MSE, .symmetric = 1, .quantize_attention = 1};
    evit_vit_alloc(&m, &c);
    randomise(&m, 9);
    uint8_t *cal = real_looking_images(32, 10);
    evit_qmodel_from_vit(&q, &m);
    quantize_all(&q, cal, 32, &qc);
    evrt_model_layer(&q.rt, 7)->in_scale *= 30.0f; /* block 1 fc1: coarse steps */
    REQUIRE(evit_quant_entries(&q) == 22);
    REQUIRE(evit_quant_measure(&q, cal, 32, 16, err) == 0);
    int worst = 0;
    for (int i = 0; i < 22; i++) {
        CHECK(err[i].cosine > 0.5 && err[i].cosine <= 1.0 + 1e-12);
        CHECK(err[i].sqnr_db_model <= err[i].sqnr_db + 1e-9 || i == 0); /* errors accumulate */
        if (err[i].sqnr_db < err[worst].sqnr_db) worst = i;
    }
    CHECK(worst == 7);
    CHECK(err[0].sqnr_db > 20.0); /* a well-calibrated layer is good */
    for (int l = 0; l < 4; l++) CHECK(err[18 + l].sqnr_db > 20.0); /* and so is each INT8 attention */
    /* then block 2's attention with a p scale so coarse (0.5) that most
     * probabilities round to 0: now the worst entry */
    q.rt.blocks[2].attn_scale[3] = 0.5f;
    REQUIRE(evit_quant_measure(&q, cal, 32, 16, err) == 0);
    worst = 0;
    for (int i = 0; i < 22; i++)
        if (err[i].sqnr_db < err[worst].sqnr_db) worst = i;
    CHECK(worst == 18 + 2);
    char name[64];
    CHECK(strcmp(evit_quant_entry_name(&q, 20, name, sizeof name), "blocks.2.attn.matmul") == 0);
    evit_quant_set_dtype(&q, 20, EVRT_F32);
    CHECK(q.rt.blocks[2].attn_dtype == EVRT_F32 && evit_quant_dtype(&q, 19) == EVRT_I8);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
    free(cal);
}

static void a_quantized_model_with_int8_attention_saved_and_loaded_gives_identical_logits(void)
{
    struct evit_vit_config c = fm_tiny();
    struct evit_vit m;
    struct evit_qmodel q, r;
    struct evit_ckpt_meta meta = {0}, back;
    struct evit_quant_config qc = {.calibrator = EVIT_CAL_PERCENTILE, .percentile = 99.9, .symmetric = 0};
    char path[512], *names[10];
    char buf[10][8];
    for (int i = 0; i < 10; i++) {
        snprintf(buf[i], sizeof buf[i], "c%d", i);
        names[i] = buf[i];
    }
    evit_vit_alloc(&m, &c);
    randomise(&m, 11);
    uint8_t *img = real_looking_images(16, 12);
    float l1[160], l2[160];
    evit_qmodel_from_vit(&q, &m);
    qc.quantize_attention = 1;
    quantize_all(&q, img, 16, &qc);
    evrt_model_layer(&q.rt, 5)->dtype = EVRT_F32; /* one layer kept float */
    q.rt.blocks[1].attn_dtype = EVRT_F32;         /* and one attention */
    snprintf(q.calibrator, sizeof q.calibrator, "percentile");
    q.percentile = 99.9;
    q.symmetric = 0;
    meta.stage = "quantize";
    meta.report = "r.json";
    meta.parent_report = "p.json";
    meta.classes = 10;
    meta.class_names = names;
    snprintf(path, sizeof path, "%s/m.q8.h5", test_tmpdir());
    REQUIRE(evit_qmodel_save(path, &q, &meta) == 0);
    CHECK(evit_qmodel_is_quantized(path));
    {
        hid_t f;
        int version = 0;
        REQUIRE(evit_h5_open(path, &f) == 0);
        CHECK(evit_h5_attr_read_ints(f, path, "format_version", &version, 1) == 0 && version == 2);
        H5Fclose(f);
    }
    REQUIRE(evit_qmodel_load(path, &r, &back) == 0);
    CHECK(evit_qmodel_int8_layers(&r) == 17);
    CHECK(evrt_model_layer(&r.rt, 5)->dtype == EVRT_F32);
    CHECK(evit_qmodel_int8_attention(&r) == 3 && r.rt.blocks[1].attn_dtype == EVRT_F32);
    CHECK(memcmp(r.rt.blocks[2].attn_scale, q.rt.blocks[2].attn_scale, sizeof q.rt.blocks[2].attn_scale) == 0);
    CHECK(strcmp(r.calibrator, "percentile") == 0 && r.percentile == 99.9 && r.symmetric == 0);
    CHECK(back.stage && strcmp(back.stage, "quantize") == 0);
    CHECK(back.report && strcmp(back.report, "r.json") == 0);
    CHECK(back.classes == 10 && strcmp(back.class_names[3], "c3") == 0);
    CHECK(evrt_model_bytes(&r.rt) == evrt_model_bytes(&q.rt));
    REQUIRE(infer(&q, img, 16, l1) == 0);
    REQUIRE(infer(&r, img, 16, l2) == 0);
    CHECK(memcmp(l1, l2, sizeof l1) == 0);
    evit_ckpt_meta_free(&back);
    evit_qmodel_free(&r);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
    free(img);
}

int main(void)
{
    evit_cli_init();
    RUN(on_a_uniform_distribution_minmax_is_the_maximum_and_percentile_is_below_it);
    RUN(with_a_few_huge_outliers_entropy_mse_and_percentile_clip_well_below_them);
    RUN(asymmetric_ranges_contain_zero_and_use_the_whole_int8_range);
    RUN(an_input_that_is_always_zero_gets_a_usable_scale);
    RUN(the_config_is_read_strictly);
    RUN(calibration_sees_what_the_device_computes_class_token_only_in_the_last_block);
    RUN(a_quantized_fm_tiny_model_gives_logits_close_to_float);
    RUN(layer_and_attention_errors_rank_a_badly_scaled_one_last);
    RUN(a_quantized_model_with_int8_attention_saved_and_loaded_gives_identical_logits);
    return test_summary();
}
