/* quantize.c: see quantize.h. */
#include "quantize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "ops.h"
#include "util.h"

#define NB EVIT_QUANT_BINS

/* ------------------------------------------------------------ config */

static const char *const cal_names[] = {"minmax", "percentile", "entropy", "mse"};

const char *evit_calibrator_name(enum evit_calibrator c) { return cal_names[c]; }

int evit_calibrator_parse(const char *s, enum evit_calibrator *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, cal_names[i]) == 0) {
            *out = (enum evit_calibrator)i;
            return EVIT_OK;
        }
    return EVIT_ERR;
}

int evit_quant_config_load(const char *path, struct evit_quant_config *c)
{
    static const char *const keys[] = {"description", "calibrator", "percentile", "calib_images",
                                       "symmetric", "max_drop", "quantize_attention", "seed",
                                       "measure_images", "batch", NULL};
    const char *cal = "entropy";
    memset(c, 0, sizeof *c);
    c->calibrator = EVIT_CAL_ENTROPY;
    c->percentile = 99.99;
    c->calib_images = 512;
    c->symmetric = 1;
    c->max_drop = 0.5;
    c->seed = 0;
    c->measure_images = 64;
    c->batch = 64;
    if (evit_json_load(path, &c->json) < 0) return EVIT_ERR;
    const cJSON *j = c->json;
    const char *desc = NULL;
    if (!cJSON_IsObject(j)) {
        evit_error("%s: expected a JSON object", path);
        goto fail;
    }
    if (evit_json_check_keys(j, path, "", keys) < 0 ||
        evit_json_get_string(j, path, "", "description", 0, &desc) < 0 ||
        evit_json_get_string(j, path, "", "calibrator", 0, &cal) < 0 ||
        evit_json_get_double(j, path, "", "percentile", 0, 50.0, 100.0, &c->percentile) < 0 ||
        evit_json_get_int(j, path, "", "calib_images", 0, 1, 10000000, &c->calib_images) < 0 ||
        evit_json_get_bool(j, path, "", "symmetric", 0, &c->symmetric) < 0 ||
        evit_json_get_double(j, path, "", "max_drop", 0, -1.0, 100.0, &c->max_drop) < 0 ||
        evit_json_get_bool(j, path, "", "quantize_attention", 0, &c->quantize_attention) < 0 ||
        evit_json_get_int(j, path, "", "seed", 0, 0, 2147483647L, &c->seed) < 0 ||
        evit_json_get_int(j, path, "", "measure_images", 0, 1, 100000, &c->measure_images) < 0 ||
        evit_json_get_int(j, path, "", "batch", 0, 1, 4096, &c->batch) < 0)
        goto fail;
    if (evit_calibrator_parse(cal, &c->calibrator) < 0) {
        evit_error("%s: calibrator: expected minmax, percentile, entropy or mse, got '%s'", path, cal);
        goto fail;
    }
    if (c->calibrator == EVIT_CAL_ENTROPY && !c->symmetric) {
        evit_error("%s: calibrator: entropy needs symmetric ranges (set symmetric true or pick another calibrator)", path);
        goto fail;
    }
    return EVIT_OK;
fail:
    evit_quant_config_free(c);
    return EVIT_ERR;
}

void evit_quant_config_free(struct evit_quant_config *c)
{
    cJSON_Delete(c->json);
    c->json = NULL;
}

/* ------------------------------------------------------------ statistics */

void evit_quant_stats_init(struct evit_quant_stats *s)
{
    memset(s, 0, sizeof *s);
    s->min = INFINITY;
    s->max = -INFINITY;
}

void evit_quant_stats_range(struct evit_quant_stats *s, const float *x, size_t n)
{
    float lo = (float)s->min, hi = (float)s->max;
    for (size_t i = 0; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    s->min = lo;
    s->max = hi;
}

static double amax_of(const struct evit_quant_stats *s)
{
    double a = fabs(s->min) > fabs(s->max) ? fabs(s->min) : fabs(s->max);
    return isfinite(a) ? a : 0.0;
}

static int bin_of(double v, double lo, double width)
{
    double b = width > 0 ? (v - lo) / width : 0.0;
    return b < 0 ? 0 : b >= NB ? NB - 1 : (int)b;
}

void evit_quant_stats_hist(struct evit_quant_stats *s, const float *x, size_t n)
{
    double a = amax_of(s), wa = a / NB, w = (s->max - s->min) / NB;
    for (size_t i = 0; i < n; i++) {
        s->hist_abs[bin_of(fabs(x[i]), 0.0, wa)] += 1.0;
        s->hist[bin_of(x[i], s->min, w)] += 1.0;
    }
    s->count += (double)n;
}

/* ------------------------------------------------------------ calibrators */

/* First bin (from the low end) at which the cumulative count reaches frac. */
static int quantile_bin(const double *h, double frac)
{
    double total = 0.0, cum = 0.0;
    for (int i = 0; i < NB; i++) total += h[i];
    for (int i = 0; i < NB; i++) {
        cum += h[i];
        if (cum >= frac * total) return i;
    }
    return NB - 1;
}

/* TensorRT's entropy calibration on the |x| histogram: for each candidate
 * of i kept bins, P is the first i bins with everything beyond added to the
 * last, Q the first i bins merged into 128 levels and spread back evenly
 * over each level's non-empty bins; the threshold is i bins wide for the
 * i of least KL(P || Q). */
static double entropy_threshold(const double *h, double amax)
{
    double best = INFINITY, *p = malloc(sizeof(double) * NB), *q = malloc(sizeof(double) * NB);
    int best_i = NB;
    const int levels = 128;
    EVIT_ASSERT(p && q);
    for (int i = levels; i <= NB; i++) {
        double outliers = 0.0, ps = 0.0, qs = 0.0, kl = 0.0;
        for (int k = i; k < NB; k++) outliers += h[k];
        for (int k = 0; k < i; k++) p[k] = h[k];
        p[i - 1] += outliers;
        for (int j = 0; j < levels; j++) {
            int a = (int)((long)j * i / levels), b = (int)((long)(j + 1) * i / levels);
            double sum = 0.0;
            int nz = 0;
            for (int k = a; k < b; k++) {
                sum += h[k];
                nz += h[k] != 0.0;
            }
            for (int k = a; k < b; k++) q[k] = h[k] != 0.0 ? sum / nz : 0.0;
        }
        for (int k = 0; k < i; k++) {
            ps += p[k];
            qs += q[k];
        }
        if (ps <= 0.0 || qs <= 0.0) continue;
        for (int k = 0; k < i; k++) {
            if (p[k] <= 0.0) continue;
            /* a reference bin the quantized version left empty (only the
             * outlier bin can be) is smoothed, as TensorRT and MXNet do */
            double pk = p[k] / ps, qk = q[k] > 0.0 ? q[k] / qs : 1e-4 / qs;
            kl += pk * log(pk / qk);
        }
        if (kl < best) {
            best = kl;
            best_i = i;
        }
    }
    free(p);
    free(q);
    return amax * best_i / NB;
}

/* Integral over [0, x] of the squared rounding error (v - s round(v/s))^2,
 * which is periodic with period s and s^3/12 per period; odd in x. */
static double round_err_int(double x, double s)
{
    if (x < 0) return -round_err_int(-x, s);
    double k = floor(x / s + 0.5), r = x - k * s; /* r in [-s/2, s/2) */
    return k * s * s * s / 12.0 + (r * r * r + s * s * s / 8.0) / 3.0;
}

/* Integral over [a, b] of the squared error of a grid of step s on
 * [glo, ghi] (grid points, 0 among them), clipping outside. */
static double err_int(double a, double b, double s, double glo, double ghi)
{
    double e = 0.0;
    if (a < glo) {
        double hi = b < glo ? b : glo;
        e += (pow(glo - a, 3) - pow(glo - hi, 3)) / 3.0;
        a = hi;
    }
    if (b > ghi) {
        double lo = a > ghi ? a : ghi;
        e += (pow(b - ghi, 3) - pow(lo - ghi, 3)) / 3.0;
        b = lo;
    }
    if (b > a) e += round_err_int(b, s) - round_err_int(a, s);
    return e;
}

/* Expected squared error of a histogram over [lo0, lo0 + NB*w] quantized on
 * grid step s over [glo, ghi], values uniform within each bin. */
static double hist_mse(const double *h, double lo0, double w, double s, double glo, double ghi)
{
    double e = 0.0;
    for (int k = 0; k < NB; k++)
        if (h[k] != 0.0) {
            double a = lo0 + k * w;
            e += h[k] * err_int(a, a + w, s, glo, ghi) / w;
        }
    return e;
}

/* Symmetric MSE: thresholds at every bin edge; the int8 grid reaches 127 s
 * up and 128 s down (the |x| histogram folds both signs, so 127 s, the
 * tighter side, is used). */
static double mse_threshold(const double *h, double amax)
{
    double w = amax / NB, best = INFINITY, t_best = amax;
    if (!(w > 0)) return amax;
    for (int i = 1; i <= NB; i++) {
        double t = i * w, s = t / 127.0;
        double e = hist_mse(h, 0.0, w, s, -t, t);
        if (e < best) {
            best = e;
            t_best = t;
        }
    }
    return t_best;
}

double evit_quant_threshold(const struct evit_quant_stats *s, enum evit_calibrator c,
                            double percentile)
{
    double amax = amax_of(s);
    if (!(amax > 0) || s->count <= 0) return amax;
    switch (c) {
    case EVIT_CAL_MINMAX: return amax;
    case EVIT_CAL_PERCENTILE: return amax * (quantile_bin(s->hist_abs, percentile / 100.0) + 1) / NB;
    case EVIT_CAL_ENTROPY: return entropy_threshold(s->hist_abs, amax);
    case EVIT_CAL_MSE: return mse_threshold(s->hist_abs, amax);
    }
    return amax;
}

/* Grid of step (hi - lo)/255 with 0 on it, as the runtime will use. */
static void asym_grid(double lo, double hi, double *s, double *glo, double *ghi)
{
    double z;
    *s = (hi - lo) / 255.0;
    z = floor(-128.0 - lo / *s + 0.5);
    z = z < -128 ? -128 : z > 127 ? 127 : z;
    *glo = (-128.0 - z) * *s;
    *ghi = (127.0 - z) * *s;
}

void evit_quant_range(const struct evit_quant_stats *s, enum evit_calibrator c, double percentile,
                      double *lo, double *hi)
{
    double w = (s->max - s->min) / NB, mn = s->min, mx = s->max;
    *lo = mn < 0 ? mn : 0.0;
    *hi = mx > 0 ? mx : 0.0;
    if (!(w > 0) || s->count <= 0 || c == EVIT_CAL_MINMAX) return;
    if (c == EVIT_CAL_PERCENTILE || c == EVIT_CAL_ENTROPY) {
        double l = mn + w * quantile_bin(s->hist, 1.0 - percentile / 100.0);
        double h = mn + w * (quantile_bin(s->hist, percentile / 100.0) + 1);
        *lo = l < 0 ? l : 0.0;
        *hi = h > 0 ? h : 0.0;
        return;
    }
    /* mse: shrink each end independently over 64 fractions of the range */
    double lo0 = *lo, hi0 = *hi, best = INFINITY;
    for (int a = 1; a <= 64; a++)
        for (int b = 1; b <= 64; b++) {
            double l = lo0 * a / 64.0, h = hi0 * b / 64.0, st, gl, gh;
            if (!(h - l > 0)) continue;
            asym_grid(l, h, &st, &gl, &gh);
            double e = hist_mse(s->hist, mn, w, st, gl, gh);
            if (e < best) {
                best = e;
                *lo = l;
                *hi = h;
            }
        }
}

void evit_quant_params(const struct evit_quant_stats *s, const struct evit_quant_config *c,
                       float *scale, int32_t *zero)
{
    if (c->symmetric) {
        double t = evit_quant_threshold(s, c->calibrator, c->percentile);
        *scale = (float)(t / 127.0);
        *zero = 0;
    } else {
        double lo, hi, st, gl, gh;
        evit_quant_range(s, c->calibrator, c->percentile, &lo, &hi);
        asym_grid(lo, hi, &st, &gl, &gh);
        *scale = (float)st;
        *zero = (int32_t)lrint(-128.0 - gl / st);
        *zero = *zero < -128 ? -128 : *zero > 127 ? 127 : *zero;
    }
    /* an input that was always zero: any positive scale represents it */
    if (!(*scale > 0.0f) || !isfinite(*scale)) {
        *scale = 1.0f;
        *zero = 0;
    }
}

int evit_quant_stat_count(const struct evit_qmodel *q)
{
    return evrt_layer_count(&q->rt) + 4 * q->rt.depth;
}

void evit_quant_apply(struct evit_qmodel *q, const struct evit_quant_stats *stats,
                      const struct evit_quant_config *c)
{
    struct evit_quant_config pixels = *c, att = *c, prob = *c;
    int nl = evrt_layer_count(&q->rt);
    int32_t zero;
    pixels.calibrator = EVIT_CAL_MINMAX;
    for (int i = 0; i < nl; i++) {
        struct evrt_linear *L = evrt_model_layer(&q->rt, i);
        evit_quant_params(&stats[i], i == 0 ? &pixels : c, &L->in_scale, &L->in_zero);
        L->dtype = EVRT_I8;
    }
    if (!c->quantize_attention) return;
    /* q, k, v: the config's calibrator, symmetric (the runtime's INT8
     * attention has no zero points); p: the largest probability seen,
     * so that a confident head's peak is not clipped */
    att.symmetric = 1;
    prob.symmetric = 1;
    prob.calibrator = EVIT_CAL_MINMAX;
    for (int l = 0; l < q->rt.depth; l++) {
        struct evrt_block *b = &q->rt.blocks[l];
        for (int k = 0; k < 4; k++)
            evit_quant_params(&stats[nl + 4 * l + k], k == 3 ? &prob : &att, &b->attn_scale[k], &zero);
        b->attn_dtype = EVRT_I8;
    }
}

/* ------------------------------------------------------------ running */

/* Runs the model over n images in batches on one runtime context; *live
 * (when not NULL) is that context while it runs, for the observer. */
static int run_images(struct evit_qmodel *q, const uint8_t *images, int n, int batch,
                      evrt_observer_fn fn, void *user, const evrt_ctx **live)
{
    evrt_ctx *ctx = NULL;
    size_t img = (size_t)q->rt.img_size * q->rt.img_size * q->rt.channels;
    float *logits = evit_malloc(sizeof(float) * (size_t)batch * evrt_model_outputs(&q->rt));
    int rc = evrt_ctx_create(&ctx, &q->rt, batch);
    if (live) *live = ctx;
    if (rc == EVRT_OK) {
        evrt_set_observer(ctx, fn, user);
        for (int s = 0; s < n && rc == EVRT_OK; s += batch)
            rc = evit_qmodel_infer(ctx, &q->rt, images + (size_t)s * img, n - s < batch ? n - s : batch, logits);
    }
    if (rc != EVRT_OK) evit_error("runtime: %s", evrt_ctx_error(ctx));
    evrt_ctx_destroy(ctx);
    if (live) *live = NULL;
    free(logits);
    return rc == EVRT_OK ? EVIT_OK : EVIT_ERR;
}

/* saved: the dtypes of the linear layers, then of each block's attention
 * (evit_quant_entries(q) entries). */
static int *dtype_of(struct evit_qmodel *q, int i)
{
    int nl = evrt_layer_count(&q->rt);
    return i < nl ? &evrt_model_layer(&q->rt, i)->dtype : &q->rt.blocks[i - nl].attn_dtype;
}

static void save_dtypes(struct evit_qmodel *q, int *saved, int set_float)
{
    for (int i = 0; i < evit_quant_entries(q); i++) {
        saved[i] = *dtype_of(q, i);
        if (set_float) *dtype_of(q, i) = EVRT_F32;
    }
}

static void restore_dtypes(struct evit_qmodel *q, const int *saved)
{
    for (int i = 0; i < evit_quant_entries(q); i++) *dtype_of(q, i) = saved[i];
}

int evit_quant_entries(const struct evit_qmodel *q) { return evrt_layer_count(&q->rt) + q->rt.depth; }

void evit_quant_set_dtype(struct evit_qmodel *q, int entry, int dtype) { *dtype_of(q, entry) = dtype; }

int evit_quant_dtype(const struct evit_qmodel *q, int entry)
{
    return *dtype_of((struct evit_qmodel *)q, entry);
}

const char *evit_quant_entry_name(const struct evit_qmodel *q, int entry, char *buf, size_t n)
{
    int nl = evrt_layer_count(&q->rt);
    if (entry < nl) return evrt_layer_name(&q->rt, entry, buf, n);
    snprintf(buf, n, "blocks.%d.attn.matmul", entry - nl);
    return buf;
}

/* Float attention's probabilities (B, H, T, T) and output (B, T, I) for
 * the widest block. */
static void attention_buffers(const struct evit_qmodel *q, int B, float **att, float **out)
{
    size_t T = (size_t)evrt_model_tokens(&q->rt), H = 1, I = 1;
    for (int l = 0; l < q->rt.depth; l++) {
        const struct evrt_block *b = &q->rt.blocks[l];
        H = (size_t)b->heads > H ? (size_t)b->heads : H;
        I = (size_t)(b->heads * b->head_dim) > I ? (size_t)(b->heads * b->head_dim) : I;
    }
    *att = evit_malloc(sizeof(float) * (size_t)B * H * T * T);
    *out = evit_malloc(sizeof(float) * (size_t)B * T * I);
}

/* 1 for a layer of a block (qkv, proj, fc1, fc2): not the patch
 * embedding, the head or seg_mlp's decoder layers after it (evrt.h). */
static int block_layer(const struct evrt_model *m, int layer) { return layer >= 1 && layer <= 4 * m->depth; }

struct collect {
    struct evit_quant_stats *stats;
    const struct evit_qmodel *q;
    int pass;
    float *att, *out; /* (B, H, T, T), (B, T, Imax): float attention */
    const evrt_ctx *ctx; /* the running context (its merged tokens' bias) */
};

static void stats_add(struct collect *c, int i, const float *x, size_t n)
{
    if (c->pass == 0)
        evit_quant_stats_range(&c->stats[i], x, n);
    else
        evit_quant_stats_hist(&c->stats[i], x, n);
}

/* Linear inputs; and from each block's qkv output, q (the rows that are
 * queries: the class token's alone in a class head's last block), k, v and the
 * softmax's peak probabilities. */
static void collect_observer(void *user, int layer, int phase, const float *x, int rows, int cols)
{
    struct collect *c = user;
    const struct evrt_model *m = &c->q->rt;
    int nl = evrt_layer_count(m), l = (layer - 1) / 4;
    if (phase == EVRT_OBSERVE_INPUT) {
        stats_add(c, layer, x, (size_t)rows * cols);
        return;
    }
    if (!block_layer(m, layer) || (layer - 1) % 4 != 0) return;
    const struct evrt_block *b = &m->blocks[l];
    /* the block's tokens: fewer after Token Merging, whose sizes bias
     * the attention (proportional attention) */
    int T = evrt_model_tokens_at(m, l), B = rows / T, I = cols / 3;
    int last = l == m->depth - 1 && m->head_kind == EVRT_HEAD_CLASS; /* class-token queries only */
    int s0 = nl + 4 * l; /* stats of q, k, v, p */
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < 3; k++)
            if (k > 0 || !last || r % T == 0)
                stats_add(c, s0 + k, x + (size_t)r * cols + (size_t)k * I, (size_t)I);
    /* each row's largest probability, in place of its first */
    size_t rows_p = (size_t)B * b->heads * (last ? 1 : T);
    evit_attention_forward_qb(c->out, c->att, x, evrt_ctx_attention_bias(c->ctx), B, T, last ? 1 : T, b->heads,
                              b->head_dim);
    for (size_t r = 0; r < rows_p; r++) {
        const float *p = c->att + r * T;
        float mx = 0.0f;
        for (int u = 0; u < T; u++) mx = p[u] > mx ? p[u] : mx;
        c->att[r] = mx;
    }
    stats_add(c, s0 + 3, c->att, rows_p);
}

int evit_quant_collect(struct evit_qmodel *q, const uint8_t *images, int n, int batch,
                       struct evit_quant_stats *stats)
{
    int saved[EVIT_QMODEL_MAX_ENTRIES], rc = EVIT_OK;
    struct collect c = {stats, q, 0, NULL, NULL, NULL};
    attention_buffers(q, batch, &c.att, &c.out);
    for (int i = 0; i < evit_quant_stat_count(q); i++) evit_quant_stats_init(&stats[i]);
    save_dtypes(q, saved, 1);
    for (c.pass = 0; c.pass < 2 && rc == EVIT_OK; c.pass++)
        rc = run_images(q, images, n, batch, collect_observer, &c, &c.ctx);
    restore_dtypes(q, saved);
    free(c.att);
    free(c.out);
    return rc;
}

/* Sums for SQNR and cosine of a reference a against an approximation b. */
struct err_sums {
    double ee, aa, ab, bb;
};

static void err_add(struct err_sums *s, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double x = (double)a[i], y = (double)b[i], d = x - y;
        s->ee += d * d;
        s->aa += x * x;
        s->ab += x * y;
        s->bb += y * y;
    }
}

static double sqnr_db(const struct err_sums *s)
{
    return s->ee > 0 ? 10.0 * log10(s->aa / s->ee) : (double)INFINITY;
}

static double cosine(const struct err_sums *s)
{
    return s->aa > 0 && s->bb > 0 ? s->ab / sqrt(s->aa * s->bb) : (s->aa == s->bb ? 1.0 : 0.0);
}

struct measure {
    struct evit_qmodel *q;
    int pass;               /* 0: float model, 1: current model */
    const int *saved;       /* the current model's dtypes (save_dtypes) */
    struct err_sums *iso, *mod;
    float **ref;            /* per entry: the float model's output, this batch */
    size_t *ref_n;
    float *yq;              /* isolated int8 output of the layer being run */
    int8_t *xq;
    float *att_p, *att_out; /* float attention, for the isolated error */
    void *scratch;          /* for evrt_attention_i8_ref */
    const evrt_ctx *ctx;    /* the running context (its merged tokens' bias) */
};

static void keep_ref(struct measure *m, int e, const float *x, size_t n)
{
    if (m->ref_n[e] < n) {
        free(m->ref[e]);
        m->ref[e] = evit_malloc(sizeof(float) * n);
    }
    m->ref_n[e] = n;
    memcpy(m->ref[e], x, sizeof(float) * n);
}

/* Attention entries: isolated, the runtime's INT8 attention (the _ref
 * specification) against float attention on the float model's qkv; in the
 * model, the attention output (the proj layer's input) of the current
 * model against the float model's. */
static void measure_attention(struct measure *m, int layer, int phase, const float *x, int rows, int cols)
{
    const struct evrt_model *rt = &m->q->rt;
    int nl = evrt_layer_count(rt), l = (layer - 1) / 4, e = nl + l, k = (layer - 1) % 4;
    if (!block_layer(rt, layer) || k > 1) return;
    const struct evrt_block *b = &rt->blocks[l];
    int T = evrt_model_tokens_at(rt, l), nq = l == rt->depth - 1 && rt->head_kind == EVRT_HEAD_CLASS ? 1 : T;
    if (k == 0 && phase == EVRT_OBSERVE_OUTPUT && m->pass == 0 && m->saved[e] == EVRT_I8) {
        int B = rows / T;
        size_t n = (size_t)B * nq * b->heads * b->head_dim;
        const float *bias = evrt_ctx_attention_bias(m->ctx);
        evit_attention_forward_qb(m->att_out, m->att_p, x, bias, B, T, nq, b->heads, b->head_dim);
        evrt_attention_i8_bias_ref(m->yq, m->scratch, x, bias, B, T, nq, b->heads, b->head_dim, b->attn_scale);
        err_add(&m->iso[e], m->att_out, m->yq, n);
    } else if (k == 1 && phase == EVRT_OBSERVE_INPUT) {
        size_t n = (size_t)rows * cols;
        if (m->pass == 0) {
            keep_ref(m, e, x, n);
        } else {
            EVIT_ASSERT(m->ref_n[e] == n);
            err_add(&m->mod[e], m->ref[e], x, n);
        }
    }
    (void)cols;
}

static void measure_observer(void *user, int layer, int phase, const float *x, int rows, int cols)
{
    struct measure *m = user;
    const struct evrt_linear *L = evrt_model_layer(&m->q->rt, layer);
    size_t n = (size_t)rows * cols;
    if (m->pass == 0 && phase == EVRT_OBSERVE_INPUT) {
        evrt_quantize_act_ref(m->xq, x, n, L->in_scale, L->in_zero);
        evrt_linear_i8_ref(m->yq, m->xq, L->in_zero, L->in_scale, L->wq, L->w_scale, L->bias, rows,
                           L->in, L->out);
    } else if (m->pass == 0) {
        err_add(&m->iso[layer], x, m->yq, n);
        keep_ref(m, layer, x, n);
    } else if (phase == EVRT_OBSERVE_OUTPUT) {
        EVIT_ASSERT(m->ref_n[layer] == n);
        err_add(&m->mod[layer], m->ref[layer], x, n);
    }
    /* after the layer's own error: it reuses m->yq */
    measure_attention(m, layer, phase, x, rows, cols);
}

int evit_quant_measure(struct evit_qmodel *q, const uint8_t *images, int n, int batch,
                       struct evit_quant_layer_err *err)
{
    int nl = evit_quant_entries(q), saved[EVIT_QMODEL_MAX_ENTRIES], rc = EVIT_OK, dmax = 1;
    size_t img = (size_t)q->rt.img_size * q->rt.img_size * q->rt.channels, most = 0;
    int T = evrt_model_tokens(&q->rt);
    struct measure m = {.q = q, .saved = saved};
    for (int i = 0; i < evrt_layer_count(&q->rt); i++) {
        const struct evrt_linear *L = evrt_model_layer(&q->rt, i);
        size_t a = (size_t)L->in * T, b = (size_t)L->out * T;
        most = a > most ? a : most;
        most = b > most ? b : most;
    }
    for (int l = 0; l < q->rt.depth; l++) dmax = q->rt.blocks[l].head_dim > dmax ? q->rt.blocks[l].head_dim : dmax;
    most *= (size_t)batch;
    m.iso = evit_calloc((size_t)nl, sizeof *m.iso);
    m.mod = evit_calloc((size_t)nl, sizeof *m.mod);
    m.ref = evit_calloc((size_t)nl, sizeof *m.ref);
    m.ref_n = evit_calloc((size_t)nl, sizeof *m.ref_n);
    m.yq = evit_malloc(sizeof(float) * most);
    m.xq = evit_malloc(most);
    attention_buffers(q, batch, &m.att_p, &m.att_out);
    m.scratch = evit_malloc(evrt_attention_i8_scratch(T, dmax));
    for (int s = 0; s < n && rc == EVIT_OK; s += batch) {
        int b = n - s < batch ? n - s : batch;
        save_dtypes(q, saved, 1);
        m.pass = 0;
        rc = run_images(q, images + (size_t)s * img, b, b, measure_observer, &m, &m.ctx);
        restore_dtypes(q, saved);
        m.pass = 1;
        if (rc == EVIT_OK) rc = run_images(q, images + (size_t)s * img, b, b, measure_observer, &m, &m.ctx);
    }
    for (int i = 0; i < nl; i++) {
        err[i].sqnr_db = sqnr_db(&m.iso[i]);
        err[i].cosine = cosine(&m.iso[i]);
        err[i].sqnr_db_model = sqnr_db(&m.mod[i]);
        err[i].cosine_model = cosine(&m.mod[i]);
        free(m.ref[i]);
    }
    free(m.iso);
    free(m.mod);
    free(m.ref);
    free(m.ref_n);
    free(m.yq);
    free(m.xq);
    free(m.att_p);
    free(m.att_out);
    free(m.scratch);
    return rc;
}
