/* kernels.c: the plain reference kernels of libevrt (see evrt.h for the
 * integer path's specification, kernels.h for the float ones). */
#include "kernels.h"

#include <math.h>
#include <string.h>

/* Eight partial sums, lane i mod 8, so that the compiler can keep them in
 * vector registers without reassociating anything itself. */
static float dot_f32(const float *a, const float *b, int n)
{
    float s[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int i = 0, k;
    for (; i + 8 <= n; i += 8)
        for (k = 0; k < 8; k++) s[k] += a[i + k] * b[i + k];
    for (k = 0; i < n; i++, k++) s[k] += a[i] * b[i];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

void evrt_linear_f32_ref(float *y, const float *x, const float *w, const float *b, int N, int I,
                         int O)
{
    int n, o;
    for (n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * I;
        float *yr = y + (size_t)n * O;
        for (o = 0; o < O; o++) yr[o] = dot_f32(xr, w + (size_t)o * I, I) + (b ? b[o] : 0.0f);
    }
}

void evrt_quantize_act_ref(int8_t *xq, const float *x, size_t n, float scale, int32_t zero)
{
    float inv = 1.0f / scale;
    float lo = (float)(-128 - zero), hi = (float)(127 - zero);
    size_t i;
    for (i = 0; i < n; i++) {
        float t = x[i] * inv;
        if (t != t) t = 0.0f; /* NaN */
        t = t < lo ? lo : t > hi ? hi : t;
        /* lo and hi are integers, so clamping before rounding is the same
         * as after; rintf rounds ties to even in the default mode */
        xq[i] = (int8_t)((int32_t)rintf(t) + zero);
    }
}

/* Exact integer dot product; sixteen lanes for the vectoriser, and integer
 * addition is associative, so any order gives the same acc. */
static int32_t dot_i8(const int8_t *x, const int8_t *w, int32_t zx, int n)
{
    int32_t s[16];
    int i = 0, k;
    for (k = 0; k < 16; k++) s[k] = 0;
    for (; i + 16 <= n; i += 16)
        for (k = 0; k < 16; k++) s[k] += ((int32_t)x[i + k] - zx) * (int32_t)w[i + k];
    for (k = 0; i < n; i++, k++) s[k] += ((int32_t)x[i] - zx) * (int32_t)w[i];
    for (k = 1; k < 16; k++) s[0] += s[k];
    return s[0];
}

void evrt_linear_i8_ref(float *y, const int8_t *xq, int32_t x_zero, float x_scale,
                        const int8_t *wq, const float *w_scale, const float *b, int N, int I,
                        int O)
{
    int n, o;
    for (n = 0; n < N; n++) {
        const int8_t *xr = xq + (size_t)n * I;
        float *yr = y + (size_t)n * O;
        for (o = 0; o < O; o++) {
            int32_t acc = dot_i8(xr, wq + (size_t)o * I, x_zero, I);
            float m = x_scale * w_scale[o];
            float v = (float)acc * m;
            yr[o] = v + (b ? b[o] : 0.0f);
        }
    }
}

void evrt_quantize_weights_ref(int8_t *wq, float *scale, const float *w, int O, int I)
{
    int o, i;
    for (o = 0; o < O; o++) {
        const float *r = w + (size_t)o * I;
        int8_t *q = wq + (size_t)o * I;
        float amax = 0.0f;
        for (i = 0; i < I; i++) amax = fabsf(r[i]) > amax ? fabsf(r[i]) : amax;
        if (!(amax > 0.0f)) { /* all zero (or NaN): nothing to scale */
            scale[o] = 1.0f;
            memset(q, 0, (size_t)I);
            continue;
        }
        scale[o] = amax / 127.0f;
        for (i = 0; i < I; i++) {
            float t = rintf(r[i] / scale[o]);
            q[i] = (int8_t)(t < -127.0f ? -127 : t > 127.0f ? 127 : (int)t);
        }
    }
}

void evrt_patchify_ref(float *out, const uint8_t *img, const float *mean, const float *std, int B,
                       int H, int C, int P)
{
    int G = H / P, K = C * P * P, b, g, py, px, c;
    for (b = 0; b < B; b++) {
        const uint8_t *src = img + (size_t)b * H * H * C;
        for (g = 0; g < G * G; g++) {
            int gy = g / G, gx = g % G;
            float *row = out + ((size_t)b * G * G + g) * K;
            for (py = 0; py < P; py++)
                for (px = 0; px < P; px++) {
                    const uint8_t *pix = src + ((size_t)(gy * P + py) * H + gx * P + px) * C;
                    for (c = 0; c < C; c++)
                        row[c * P * P + py * P + px] = ((float)pix[c] / 255.0f - mean[c]) / std[c];
                }
        }
    }
}

void evrt_patchify_lut(float *lut, const float *mean, const float *std, int C)
{
    int c, v;
    for (c = 0; c < C; c++)
        for (v = 0; v < 256; v++) lut[c * 256 + v] = ((float)v / 255.0f - mean[c]) / std[c];
}

void evrt_patchify_fast(float *out, const uint8_t *img, const float *lut, int B, int H, int C, int P)
{
    evrt_patchify_rows(out, img, lut, H, C, P, 0, B * (H / P) * (H / P));
}

/* Channel by channel and pixel row by pixel row, so that each P-float run
 * of the output row is written in order (the pixel-major order scattered
 * every store over C P P floats: 77 us for a 224 x 224 RGB image). */
void evrt_patchify_rows(float *out, const uint8_t *img, const float *lut, int H, int C, int P, int p0, int p1)
{
    int G = H / P, K = C * P * P, p, py, px, c;
    for (p = p0; p < p1; p++) {
        int b = p / (G * G), g = p % (G * G), gy = g / G, gx = g % G;
        const uint8_t *src = img + (size_t)b * H * H * C;
        float *row = out + (size_t)p * K;
        for (c = 0; c < C; c++) {
            const float *t = lut + c * 256;
            for (py = 0; py < P; py++) {
                const uint8_t *pix = src + ((size_t)(gy * P + py) * H + gx * P) * C + c;
                float *o = row + c * P * P + py * P;
                for (px = 0; px < P; px++) o[px] = t[pix[(size_t)px * C]];
            }
        }
    }
}

void evrt_layernorm_ref(float *out, const float *x, const float *w, const float *b, int N, int D)
{
    int n, i;
    for (n = 0; n < N; n++) {
        const float *r = x + (size_t)n * D;
        float *y = out + (size_t)n * D;
        float m = 0.0f, v = 0.0f, rstd;
        for (i = 0; i < D; i++) m += r[i];
        m /= (float)D;
        for (i = 0; i < D; i++) v += (r[i] - m) * (r[i] - m);
        v /= (float)D;
        rstd = 1.0f / sqrtf(v + EVRT_LN_EPS);
        for (i = 0; i < D; i++) y[i] = (r[i] - m) * rstd * w[i] + b[i];
    }
}

void evrt_gelu_ref(float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

/* The float specification, one query at a time. */
void evrt_att_rows_ref(const struct evrt_kernels *k, float *out, size_t ldo, float *scratch,
                       const float *qkv, const float *bias, int T, int I, int h, int d, int q0, int nr,
                       int fresh)
{
    float scale = 1.0f / sqrtf((float)d), *scores = scratch;
    int t, j, i;
    (void)k;
    (void)fresh;
    for (t = q0; t < q0 + nr; t++) {
        const float *q = qkv + (size_t)t * 3 * I + h * d;
        float *o = out + (size_t)(t - q0) * ldo;
        float mx = -INFINITY, sum = 0.0f;
        for (j = 0; j < T; j++) {
            const float *kr = qkv + (size_t)j * 3 * I + I + h * d;
            scores[j] = dot_f32(q, kr, d) * scale;
            if (bias) scores[j] += bias[j];
            mx = scores[j] > mx ? scores[j] : mx;
        }
        for (j = 0; j < T; j++) {
            scores[j] = expf(scores[j] - mx);
            sum += scores[j];
        }
        for (i = 0; i < d; i++) o[i] = 0.0f;
        for (j = 0; j < T; j++) {
            const float *v = qkv + (size_t)j * 3 * I + 2 * I + h * d;
            float p = scores[j] / sum;
            for (i = 0; i < d; i++) o[i] += p * v[i];
        }
    }
}

void evrt_attention_ref(float *out, float *scores, const float *qkv, int B, int T, int nq, int H,
                        int d)
{
    int I = H * d, b, h;
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++)
            evrt_att_rows_ref(NULL, out + (size_t)b * nq * I + h * d, (size_t)I, scores,
                              qkv + (size_t)b * T * 3 * I, NULL, T, I, h, d, 0, nq, 1);
}

/* Each of n rows of S (n, T) += b (T): proportional attention's bias. */
static void add_rows(float *S, const float *b, int n, int T)
{
    int r, u;
    for (r = 0; r < n; r++)
        for (u = 0; u < T; u++) S[(size_t)r * T + u] += b[u];
}

/* With the variant's panel kernels: S = q (K^T / sqrt(d)), softmax rows,
 * out = S V with V read in place (row stride 3I).  K^T (d, T), scaled,
 * is made once per head. */
void evrt_att_rows_fast(const struct evrt_kernels *k, float *out, size_t ldo, float *scratch,
                        const float *qkv, const float *bias, int T, int I, int h, int d, int q0, int nr,
                        int fresh)
{
    float *vt = scratch, *S = scratch + (size_t)d * T, scale = 1.0f / sqrtf((float)d);
    int u, i;
    if (fresh) {
        const float *K = qkv + I + h * d;
        for (u = 0; u < T; u++)
            for (i = 0; i < d; i++) vt[(size_t)i * T + u] = K[(size_t)u * 3 * I + i] * scale;
    }
    k->f32p(S, (size_t)T, qkv + (size_t)q0 * 3 * I + h * d, (size_t)3 * I, vt, (size_t)T, 16, NULL, nr, d,
            0, T);
    if (bias) add_rows(S, bias, nr, T);
    k->softmax(S, nr, T, 1.0f);
    k->f32p(out, ldo, S, (size_t)T, qkv + 2 * I + h * d, (size_t)3 * I, 16, NULL, nr, T, 0, d);
}

void evrt_add_ref(float *x, const float *y, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] += y[i];
}

/* ---------------------------------------------------------------- variants */

void evrt_quant_ref(void *dst, const float *x, int N, int I, float scale, int32_t zero)
{
    evrt_quantize_act_ref(dst, x, (size_t)N * I, scale, zero);
}

void evrt_i8_cols_ref(float *y, const void *xp, int32_t x_zero, float x_scale, const int8_t *wq,
                      const int32_t *wsum, const float *w_scale, const float *b, int N, int I,
                      int O, int o0, int o1)
{
    const int8_t *xq = xp;
    int n;
    (void)wsum;
    for (n = 0; n < N; n++)
        evrt_linear_i8_ref(y + (size_t)n * O + o0, xq + (size_t)n * I, x_zero, x_scale,
                           wq + (size_t)o0 * I, w_scale + o0, b ? b + o0 : NULL, 1, I, o1 - o0);
}

void evrt_f32_cols_ref(float *y, size_t ldy, const float *x, size_t ldx, const float *w,
                       size_t ldw, const float *b, int N, int I, int o0, int o1)
{
    int n, o;
    for (n = 0; n < N; n++)
        for (o = o0; o < o1; o++)
            y[n * ldy + o] = dot_f32(x + n * ldx, w + o * ldw, I) + (b ? b[o] : 0.0f);
}

void evrt_wsum(int32_t *wsum, const int8_t *wq, int O, int I)
{
    int o, i;
    for (o = 0; o < O; o++) {
        int32_t s = 0;
        for (i = 0; i < I; i++) s += wq[(size_t)o * I + i];
        wsum[o] = s;
    }
}

/* The plain kernels, the specification: no panels, no packing. */
static const struct evrt_kernels ref_kernels = {
    .isa = EVRT_ISA_REF,
    .name = "ref",
    .quant = evrt_quant_ref,
    .i8 = evrt_i8_cols_ref,
    .f32 = evrt_f32_cols_ref,
    .layernorm = evrt_layernorm_ref,
    .gelu = evrt_gelu_ref,
    .attention = evrt_att_rows_ref,
    .attention_i8 = evrt_att_i8_rows_ref,
    .seg_decode = evrt_seg_rows_ref};

size_t evrt_pack_f32_bytes(int O, int I) { return (size_t)(O + 15) / 16 * 16 * (size_t)I * sizeof(float); }

void evrt_pack_f32(float *p, const float *w, int O, int I)
{
    int j, i, c;
    for (j = 0; j < (O + 15) / 16; j++)
        for (i = 0; i < I; i++)
            for (c = 0; c < 16; c++) {
                int o = 16 * j + c;
                p[((size_t)j * I + i) * 16 + c] = o < O ? w[(size_t)o * I + i] : 0.0f;
            }
}

size_t evrt_pack_i8_bytes(int isa, int O, int I)
{
    size_t o = (size_t)(O + 15) / 16 * 16;
    if (isa == EVRT_ISA_AVX2) return o * (size_t)((I + 1) / 2 * 2); /* int8 pairs */
    if (isa == EVRT_ISA_AVX512VNNI) return o * (size_t)((I + 3) / 4 * 4);
    if (isa == EVRT_ISA_AMX) return o * (size_t)((I + 63) / 64 * 64); /* whole tiles */
    if (isa == EVRT_ISA_NEON || isa == EVRT_ISA_DOTPROD) return o * (size_t)((I + 15) / 16 * 16);
    return 0;
}

static const char *const isa_names[EVRT_ISA_COUNT] = {"ref", "avx2", "avx512vnni", "neon",
                                                      "dotprod", "amx"};

const struct evrt_kernels *evrt_kernels_get(int isa)
{
    const struct evrt_kernels *k = NULL;
    if (isa == EVRT_ISA_REF) return &ref_kernels;
    if (isa == EVRT_ISA_AVX2 || isa == EVRT_ISA_AVX512VNNI || isa == EVRT_ISA_AMX) k = evrt_kernels_x86(isa);
    if (isa == EVRT_ISA_NEON || isa == EVRT_ISA_DOTPROD) k = evrt_kernels_arm(isa);
    return k;
}

int evrt_isa_available(int isa) { return isa >= 0 && isa < EVRT_ISA_COUNT && evrt_kernels_get(isa); }

int evrt_isa_best(void)
{
    static const int order[] = {EVRT_ISA_AMX, EVRT_ISA_AVX512VNNI, EVRT_ISA_AVX2, EVRT_ISA_DOTPROD,
                                EVRT_ISA_NEON};
    size_t i;
    for (i = 0; i < sizeof order / sizeof order[0]; i++)
        if (evrt_isa_available(order[i])) return order[i];
    return EVRT_ISA_REF;
}

int evrt_isa_parse(const char *name)
{
    int i;
    if (!strcmp(name, "best")) return evrt_isa_best();
    for (i = 0; i < EVRT_ISA_COUNT; i++)
        if (!strcmp(name, isa_names[i])) return i;
    return -1;
}

size_t evrt_quant_bytes(int isa, int N, int I)
{
    size_t n = (size_t)N;
    if (isa == EVRT_ISA_AVX2) return n * (size_t)((I + 15) / 16 * 16) * 2;
    if (isa == EVRT_ISA_AVX512VNNI || isa == EVRT_ISA_AMX) return n * (size_t)((I + 63) / 64 * 64);
    if (isa == EVRT_ISA_NEON || isa == EVRT_ISA_DOTPROD) return n * (size_t)((I + 15) / 16 * 16);
    return n * (size_t)I;
}

/* ---------------------------------------------------------------- fast float */

/* Element-wise loops: on x86-64 GCC clones them for AVX-512 and AVX2 and
 * vectorises them (its -O2 cost model would not).  Without -ffast-math and
 * with -ffp-contract=off the vector code rounds exactly like the scalar
 * code, so every clone and every target gives the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define ELEMENTWISE \
    __attribute__((target_clones("avx512f", "avx2", "default"), optimize("tree-vectorize", "vect-cost-model=dynamic")))
#elif defined(__GNUC__) && !defined(__clang__)
#define ELEMENTWISE __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#else
#define ELEMENTWISE
#endif

/* erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (outside, erf is +-1 to float
 * precision): the rational approximation of Eigen and XLA. */
static inline float erf_fast(float a)
{
    float x = a < -4.0f ? -4.0f : a > 4.0f ? 4.0f : a;
    float x2 = x * x;
    float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    float q;
    p = x2 * p + -2.10102402082508e-06f;
    p = x2 * p + -5.69250639462346e-05f;
    p = x2 * p + -7.34990630326855e-04f;
    p = x2 * p + -2.95459980854025e-03f;
    p = x2 * p + -1.60960333262415e-02f;
    p = x * p;
    q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = x2 * q + -1.68282697438203e-03f;
    q = x2 * q + -7.37332916720468e-03f;
    q = x2 * q + -1.42647390514189e-02f;
    return p / q;
}

ELEMENTWISE void evrt_gelu_fast(float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erf_fast(x[i] * 0.70710678118654752f));
}

/* exp(x) for x <= 0, the body of evrt_exp_fast */
static inline float exp_neg(float x)
{
    /* written so that NaN takes the -87.3 branch: converting a NaN k
     * to an integer below would be undefined (a corrupt model can
     * produce NaN activations; the result must be garbage, not a crash) */
    float v = x >= -87.3f ? (x <= 0.0f ? x : 0.0f) : -87.3f;
    /* k = round(v / ln 2) by the 1.5 * 2^23 trick (|v / ln 2| < 2^22) */
    float k = (v * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float f = v - k * 0.693359375f;
    float p, e;
    union {
        float f;
        uint32_t u;
    } s;
    f = f - k * -2.12194440e-4f;
    p = 1.9875691500e-4f;
    p = p * f + 1.3981999507e-3f;
    p = p * f + 8.3334519073e-3f;
    p = p * f + 4.1665795894e-2f;
    p = p * f + 1.6666665459e-1f;
    p = p * f + 5.0000001201e-1f;
    e = p * (f * f) + f + 1.0f;
    s.u = (uint32_t)((int32_t)k + 127) << 23;
    return e * s.f;
}

ELEMENTWISE void evrt_exp_fast(float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = exp_neg(x[i]);
}

/* ---------------------------------------------------------------- INT8 attention */

/* The head's K (T, d) and V^T (d, T), quantized: sq of evrt.h.  K's rows
 * are contiguous and vectorise; V^T's stores stride by T. */
ELEMENTWISE static void att_i8_kv(struct evrt_att8 *a, const float *qkv, int T, int I, int h, int d,
                                  float ik, float iv)
{
    int u, i;
    for (u = 0; u < T; u++) {
        const float *k = qkv + (size_t)u * 3 * I + I + h * d;
        int8_t *kq = a->kq + (size_t)u * d;
        for (i = 0; i < d; i++) kq[i] = evrt_qsym(k[i], ik);
    }
    for (u = 0; u < T; u++)
        for (i = 0; i < d; i++) a->vt[(size_t)i * T + u] = evrt_qsym(qkv[(size_t)u * 3 * I + 2 * I + h * d + i], iv);
}

/* The specification of evrt.h, written plainly, one query at a time. */
void evrt_att_i8_rows_ref(const struct evrt_kernels *k, float *out, size_t ldo, struct evrt_att8 *a,
                          const float *qkv, const float *bias, int T, int I, int h, int d, int q0, int nr,
                          int fresh, const float *scales)
{
    int8_t *qq = a->xq;
    int32_t *acc = a->acc, *E = a->E;
    float iq = 1.0f / scales[0], c = (scales[0] * scales[1]) / sqrtf((float)d), m2 = scales[3] * scales[2];
    int t, u, i;
    (void)k;
    if (fresh) att_i8_kv(a, qkv, T, I, h, d, 1.0f / scales[1], 1.0f / scales[2]);
    for (t = q0; t < q0 + nr; t++) {
        float *o = out + (size_t)(t - q0) * ldo, r;
        int32_t mx = INT32_MIN, sum = 0;
        for (i = 0; i < d; i++) qq[i] = evrt_qsym(qkv[(size_t)t * 3 * I + h * d + i], iq);
        for (u = 0; u < T; u++) {
            int32_t s = 0;
            for (i = 0; i < d; i++) s += (int32_t)qq[i] * a->kq[(size_t)u * d + i];
            acc[u] = s;
            mx = s > mx ? s : mx;
        }
        if (bias) {
            /* t = (a - max a) c + b; t - max t, recomputed (the same bits) */
            float tm = -INFINITY;
            for (u = 0; u < T; u++) {
                float tu = (float)(acc[u] - mx) * c + bias[u];
                tm = tu > tm ? tu : tm;
            }
            for (u = 0; u < T; u++) {
                E[u] = (int32_t)rintf(exp_neg(((float)(acc[u] - mx) * c + bias[u]) - tm) * 32768.0f);
                sum += E[u];
            }
        } else {
            for (u = 0; u < T; u++) {
                E[u] = (int32_t)rintf(exp_neg((float)(acc[u] - mx) * c) * 32768.0f);
                sum += E[u];
            }
        }
        r = 1.0f / ((float)sum * scales[3]);
        for (u = 0; u < T; u++) { /* E becomes P */
            float p = rintf((float)E[u] * r);
            E[u] = p < 127.0f ? (int32_t)p : 127;
        }
        for (i = 0; i < d; i++) {
            int32_t s = 0;
            for (u = 0; u < T; u++) s += E[u] * a->vt[(size_t)i * T + u];
            o[i] = (float)s * m2;
        }
    }
}

size_t evrt_attention_i8_scratch(int T, int d)
{
    size_t q = ((size_t)2 * T * d + (size_t)d + 15) / 16 * 16;
    return q + 2 * sizeof(int32_t) * (size_t)T;
}

void evrt_attention_i8_ref(float *out, void *scratch, const float *qkv, int B, int T, int nq, int H,
                           int d, const float *scales)
{
    evrt_attention_i8_bias_ref(out, scratch, qkv, NULL, B, T, nq, H, d, scales);
}

void evrt_attention_i8_bias_ref(float *out, void *scratch, const float *qkv, const float *bias, int B, int T,
                                int nq, int H, int d, const float *scales)
{
    struct evrt_att8 a;
    int I = H * d, b, h;
    memset(&a, 0, sizeof a);
    a.kq = scratch;
    a.vt = a.kq + (size_t)T * d;
    a.xq = a.vt + (size_t)T * d;
    a.acc = (int32_t *)(void *)((char *)scratch + ((size_t)2 * T * d + (size_t)d + 15) / 16 * 16);
    a.E = a.acc + T;
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++)
            evrt_att_i8_rows_ref(NULL, out + (size_t)b * nq * I + h * d, (size_t)I, &a,
                                 qkv + (size_t)b * T * 3 * I, bias ? bias + (size_t)b * T : NULL, T, I, h,
                                 d, 0, nq, 1, scales);
}

/* With the variant's int8 panel kernel: K and V^T quantized and packed as
 * if they were weights (K: T "channels" of d inputs; V^T: d of T); per
 * item, S = q K^T with unit scales gives the int32 sums as exact floats,
 * evrt_softmax_i8 turns them into the integer probabilities P, and P V^T
 * is rescaled by p_scale * v_scale: the _ref's expression. */
void evrt_att_i8_rows_fast(const struct evrt_kernels *k, float *out, size_t ldo, struct evrt_att8 *a,
                           const float *qkv, const float *bias, int T, int I, int h, int d, int q0, int nr,
                           int fresh, const float *scales)
{
    float iq = 1.0f / scales[0], sc = (scales[0] * scales[1]) / sqrtf((float)d);
    int u, i, r;
    if (fresh) {
        if (k->att8_kv) {
            k->att8_kv(a, qkv, T, I, h, d, 1.0f / scales[1], 1.0f / scales[2]);
        } else {
            att_i8_kv(a, qkv, T, I, h, d, 1.0f / scales[1], 1.0f / scales[2]);
            k->pack_i8(a->kp, a->kq, T, d);
            k->pack_i8(a->vp, a->vt, d, T);
            evrt_wsum(a->kws, a->kq, T, d);
            evrt_wsum(a->vws, a->vt, d, T);
        }
        for (u = 0; u < T; u++) a->ones[u] = 1.0f;
        for (i = 0; i < d; i++) a->vs[i] = scales[2];
    }
    for (r = 0; r < nr; r++)
        for (i = 0; i < d; i++) a->qf[r * d + i] = (float)evrt_qsym(qkv[(size_t)(q0 + r) * 3 * I + h * d + i], iq);
    k->quant(a->xq, a->qf, nr, d, 1.0f, 0);
    k->i8p(a->S, a->xq, 0, 1.0f, a->kp, a->kws, a->ones, NULL, nr, d, T, 0, T);
    evrt_softmax_i8(a->S, nr, T, sc, scales[3], a->E, bias);
    k->quant(a->xq, a->S, nr, T, 1.0f, 0);
    k->i8p(a->os, a->xq, 0, scales[3], a->vp, a->vws, a->vs, NULL, nr, T, d, 0, d);
    for (r = 0; r < nr; r++) memcpy(out + (size_t)r * ldo, a->os + (size_t)r * d, sizeof(float) * (size_t)d);
}

/* The softmax step of the specification on n rows of exact integer
 * scores, with vector lanes: integer max and sum are exact in any order,
 * and every float operation is the ref's, element by element. */
ELEMENTWISE void evrt_softmax_i8(float *S, int n, int T, float c, float p_scale, int32_t *E,
                                 const float *bias)
{
    int t, u;
    for (t = 0; t < n; t++) {
        float *s = S + (size_t)t * T, r;
        int32_t mx = INT32_MIN, sum = 0;
        for (u = 0; u < T; u++) {
            E[u] = (int32_t)s[u];
            mx = E[u] > mx ? E[u] : mx;
        }
        if (bias) {
            float tm = -INFINITY;
            for (u = 0; u < T; u++) {
                s[u] = (float)(E[u] - mx) * c + bias[u];
                tm = s[u] > tm ? s[u] : tm;
            }
            for (u = 0; u < T; u++) s[u] = exp_neg(s[u] - tm);
        } else {
            for (u = 0; u < T; u++) s[u] = exp_neg((float)(E[u] - mx) * c);
        }
        for (u = 0; u < T; u++) {
            E[u] = (int32_t)rintf(s[u] * 32768.0f);
            sum += E[u];
        }
        r = 1.0f / ((float)sum * p_scale);
        for (u = 0; u < T; u++) {
            float p = rintf((float)E[u] * r);
            s[u] = p < 127.0f ? p : 127.0f;
        }
    }
}

/* LayerNorm with sixteen partial sums per reduction (vectorisable without
 * reassociation by the compiler); the float path is tolerance-checked. */
ELEMENTWISE void evrt_layernorm_fast(float *out, const float *x, const float *w, const float *b,
                                     int N, int D)
{
    int n, i, k;
    for (n = 0; n < N; n++) {
        const float *r = x + (size_t)n * D;
        float *y = out + (size_t)n * D;
        float s[16], q[16], m, v, rstd;
        for (k = 0; k < 16; k++) s[k] = q[k] = 0.0f;
        for (i = 0; i + 16 <= D; i += 16)
            for (k = 0; k < 16; k++) s[k] += r[i + k];
        for (k = 0; i < D; i++, k++) s[k] += r[i];
        for (k = 8; k > 0; k >>= 1)
            for (i = 0; i < k; i++) s[i] += s[i + k];
        m = s[0] / (float)D;
        for (i = 0; i + 16 <= D; i += 16)
            for (k = 0; k < 16; k++) q[k] += (r[i + k] - m) * (r[i + k] - m);
        for (k = 0; i < D; i++, k++) q[k] += (r[i] - m) * (r[i] - m);
        for (k = 8; k > 0; k >>= 1)
            for (i = 0; i < k; i++) q[i] += q[i + k];
        v = q[0] / (float)D;
        rstd = 1.0f / sqrtf(v + EVRT_LN_EPS);
        for (i = 0; i < D; i++) y[i] = (r[i] - m) * rstd * w[i] + b[i];
    }
}

/* Rows of s (n, T) = softmax(s * scale), in place: three passes (scale and
 * max; exp and sum; normalise), sixteen lanes per reduction. */
ELEMENTWISE void evrt_softmax_fast(float *S, int n, int T, float scale)
{
    int t, u, k;
    for (t = 0; t < n; t++) {
        float *s = S + (size_t)t * T, mx[16], sm[16], mxv, inv;
        for (k = 0; k < 16; k++) {
            mx[k] = -INFINITY;
            sm[k] = 0.0f;
        }
        for (u = 0; u + 16 <= T; u += 16)
            for (k = 0; k < 16; k++) {
                float v = s[u + k] * scale;
                s[u + k] = v;
                mx[k] = v > mx[k] ? v : mx[k];
            }
        for (k = 0; u < T; u++, k++) {
            s[u] *= scale;
            mx[k] = s[u] > mx[k] ? s[u] : mx[k];
        }
        mxv = mx[0];
        for (k = 1; k < 16; k++) mxv = mx[k] > mxv ? mx[k] : mxv;
        for (u = 0; u + 16 <= T; u += 16)
            for (k = 0; k < 16; k++) {
                float e = exp_neg(s[u + k] - mxv);
                s[u + k] = e;
                sm[k] += e;
            }
        for (k = 0; u < T; u++, k++) {
            s[u] = exp_neg(s[u] - mxv);
            sm[k] += s[u];
        }
        for (k = 8; k > 0; k >>= 1)
            for (u = 0; u < k; u++) sm[u] += sm[u + k];
        inv = 1.0f / sm[0];
        for (u = 0; u < T; u++) s[u] *= inv;
    }
}

ELEMENTWISE void evrt_add_fast(float *x, const float *y, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] += y[i];
}

/* ---------------------------------------------------------------- Token Merging
 *
 * The matching and the merge of evrt.h, one image at a time.  The metric's
 * normalisation, the ranking and the average are plain C shared by every
 * variant (each float operation in one fixed order: the same bits on every
 * target); the similarity product runs on the variant's panel kernel,
 * whose per-element chain of fused multiply-adds is the specification's. */

ELEMENTWISE void evrt_merge_prep(float *an, float *bt, size_t ldb, const float *qkv, int I, int H, int d, int t0,
                                 int t1)
{
    float row[EVRT_MERGE_MAX_D];
    int t, h, i, k;
    for (t = t0; t < t1; t++) {
        const float *key = qkv + (size_t)t * 3 * I + I;
        /* an even token's row of an; an odd token's in row, then into its
         * column of bt */
        float *m = t % 2 == 0 ? an + (size_t)(t / 2) * d : row;
        float ss[16], inv;
        for (i = 0; i < d; i++) m[i] = 0.0f;
        for (h = 0; h < H; h++)
            for (i = 0; i < d; i++) m[i] += key[h * d + i];
        for (i = 0; i < d; i++) m[i] /= (float)H;
        for (k = 0; k < 16; k++) ss[k] = 0.0f;
        for (i = 0; i + 16 <= d; i += 16)
            for (k = 0; k < 16; k++) ss[k] += m[i + k] * m[i + k];
        for (k = 0; i < d; i++, k++) ss[k] += m[i] * m[i];
        for (k = 8; k > 0; k >>= 1)
            for (i = 0; i < k; i++) ss[i] += ss[i + k];
        /* 0 for a zero row, and for one whose square sum is not finite */
        inv = ss[0] > 0.0f && ss[0] <= 3.402823466e38f ? 1.0f / sqrtf(ss[0]) : 0.0f;
        for (i = 0; i < d; i++) m[i] *= inv;
        if (m == row)
            for (i = 0; i < d; i++) bt[(size_t)i * ldb + t / 2] = row[i];
    }
}

void evrt_merge_sim_ref(float *S, const float *an, const float *bt, size_t ldb, int n, int nb, int d)
{
    int r, b, i;
    for (r = 0; r < n; r++)
        for (b = 0; b < nb; b++) {
            float s = 0.0f;
            for (i = 0; i < d; i++) s = fmaf(an[(size_t)r * d + i], bt[(size_t)i * ldb + b], s);
            S[(size_t)r * nb + b] = s;
        }
}

void evrt_merge_best(const struct evrt_kernels *k, int *best, float *score, float *S, const float *an,
                     const float *bt, size_t ldb, int nb, int d, int a0, int a1)
{
    int a, b;
    if (a1 <= a0) return;
    if (k->f32p)
        k->f32p(S, (size_t)nb, an + (size_t)a0 * d, (size_t)d, bt, ldb, 16, NULL, a1 - a0, d, 0, nb);
    else
        evrt_merge_sim_ref(S, an + (size_t)a0 * d, bt, ldb, a1 - a0, nb, d);
    for (a = a0; a < a1; a++) {
        const float *s = S + (size_t)(a - a0) * nb;
        float top = -INFINITY;
        int arg = 0;
        for (b = 0; b < nb; b++)
            if (s[b] > top) { /* NaN never wins; the first of equals stays */
                top = s[b];
                arg = b;
            }
        best[a] = arg;
        score[a] = top;
    }
}

/* a ranks before b: a higher score, or an equal one and a lower index */
static int ranks_before(const float *score, int a, int b)
{
    return score[a] > score[b] || (score[a] == score[b] && a < b);
}

void evrt_merge_match(int *dst, int *order, const int *best, const float *score, int T, int r)
{
    int na = (T + 1) / 2, nb = T / 2, n = 0, a, b, j, k;
    /* the r best of A's tokens 1..na-1, kept sorted by insertion */
    for (a = 1; a < na && r > 0; a++) {
        if (n == r && !ranks_before(score, a, order[r - 1])) continue;
        j = n < r ? n++ : r - 1;
        while (j > 0 && ranks_before(score, a, order[j - 1])) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = a;
    }
    for (a = 0; a < na; a++) dst[2 * a] = 0;
    for (j = 0; j < n; j++) dst[2 * order[j]] = -1; /* merged */
    for (a = 0, k = 0; a < na; a++)
        if (dst[2 * a] == 0) dst[2 * a] = k++;
    for (b = 0; b < nb; b++) dst[2 * b + 1] = k + b;
    for (j = 0; j < n; j++) dst[2 * order[j]] = k + best[order[j]];
}

void evrt_merge_sources(int *start, int *src, float *so, const int *dst, const float *s, int T, int n)
{
    int i, j;
    for (j = 0; j <= n; j++) start[j] = 0;
    for (i = 0; i < T; i++) start[dst[i] + 1]++;
    for (j = 0; j < n; j++) start[j + 1] += start[j];
    for (i = 0; i < T; i++) src[start[dst[i]]++] = i; /* start[j] moves to start[j + 1] */
    for (j = n; j > 0; j--) start[j] = start[j - 1];
    start[0] = 0;
    for (j = 0; j < n; j++) so[j] = 0.0f;
    for (i = 0; i < T; i++) so[dst[i]] += s[i];
}

ELEMENTWISE void evrt_merge_rows(float *out, const float *x, const float *y, const float *s, const float *so,
                                 const int *start, const int *src, int j0, int j1, int D)
{
    int j, p, c;
    for (j = j0; j < j1; j++) {
        float *o = out + (size_t)j * D;
        for (c = 0; c < D; c++) o[c] = 0.0f;
        for (p = start[j]; p < start[j + 1]; p++) {
            const float *xi = x + (size_t)src[p] * D, *yi = y ? y + (size_t)src[p] * D : NULL;
            float w = s[src[p]];
            if (yi)
                for (c = 0; c < D; c++) o[c] += w * (xi[c] + yi[c]);
            else
                for (c = 0; c < D; c++) o[c] += w * xi[c];
        }
        for (c = 0; c < D; c++) o[c] /= so[j];
    }
}

/* ---- the segmentation decoder (evrt.h, "Segmentation") ---- */

/* One axis's taps: output o of n_out between inputs i0 and i1 of n_in,
 * weight f on i1 (PyTorch's area_pixel_compute_source_index,
 * align_corners=False, clamped at the edges). */
static void seg_tap(int o, int n_in, int n_out, int *i0, int *i1, float *f)
{
    float s = ((float)o + 0.5f) * ((float)n_in / (float)n_out) - 0.5f;
    if (s < 0.0f) s = 0.0f;
    *i0 = (int)s;
    if (*i0 > n_in - 1) *i0 = n_in - 1;
    *i1 = *i0 < n_in - 1 ? *i0 + 1 : *i0;
    *f = s - (float)*i0;
}

/* The class of the largest of z (K): the lowest among equals, NaN never. */
static uint8_t seg_argmax(const float *z, int K)
{
    int k, best = -1;
    for (k = 0; k < K; k++)
        if (z[k] == z[k] && (best < 0 || z[k] > z[best])) best = k;
    return (uint8_t)(best < 0 ? 0 : best);
}

size_t evrt_seg_scratch(int S, int K) { return 3 * (size_t)S * K; }

void evrt_seg_decode_ref(float *scores, uint8_t *mask, const float *z, int G, int K, int S, int y0, int y1)
{
    int y, x, k, gy0, gy1, gx0, gx1;
    float fy, fx;
    for (y = y0; y < y1; y++) {
        seg_tap(y, G, S, &gy0, &gy1, &fy);
        for (x = 0; x < S; x++) {
            const float *a, *c, *d, *e;
            float *o = scores ? scores + ((size_t)(y - y0) * S + x) * K : NULL;
            float best = 0.0f;
            int arg = -1;
            seg_tap(x, G, S, &gx0, &gx1, &fx);
            a = z + ((size_t)gy0 * G + gx0) * K, c = z + ((size_t)gy0 * G + gx1) * K;
            d = z + ((size_t)gy1 * G + gx0) * K, e = z + ((size_t)gy1 * G + gx1) * K;
            for (k = 0; k < K; k++) {
                float h0 = (1.0f - fx) * a[k] + fx * c[k], h1 = (1.0f - fx) * d[k] + fx * e[k];
                float v = (1.0f - fy) * h0 + fy * h1;
                if (o) o[k] = v;
                if (v == v && (arg < 0 || v > best)) best = v, arg = k;
            }
            if (mask) mask[(size_t)(y - y0) * S + x] = (uint8_t)(arg < 0 ? 0 : arg);
        }
    }
}

void evrt_seg_rows_ref(float *scores, uint8_t *mask, float *scratch, const float *z, int G, int K, int S, int y0,
                       int y1)
{
    (void)scratch;
    evrt_seg_decode_ref(scores, mask, z, G, K, S, y0, y1);
}

/* Grid row gy of z interpolated along x: h[x, k] (S, K). */
static void seg_hrow(float *h, const float *z, int gy, int G, int K, int S)
{
    int x, k, gx0, gx1;
    float fx;
    for (x = 0; x < S; x++) {
        const float *a, *c;
        float *o = h + (size_t)x * K;
        seg_tap(x, G, S, &gx0, &gx1, &fx);
        a = z + ((size_t)gy * G + gx0) * K, c = z + ((size_t)gy * G + gx1) * K;
        for (k = 0; k < K; k++) o[k] = (1.0f - fx) * a[k] + fx * c[k];
    }
}

ELEMENTWISE static void seg_vmix(float *o, const float *h0, const float *h1, float fy, size_t n)
{
    size_t i;
    float gy = 1.0f - fy;
    for (i = 0; i < n; i++) o[i] = gy * h0[i] + fy * h1[i];
}

void evrt_seg_rows_fast(float *scores, uint8_t *mask, float *scratch, const float *z, int G, int K, int S, int y0,
                        int y1)
{
    size_t row = (size_t)S * K;
    float *h[2], *tmp = scratch + 2 * row;
    int tag[2] = {-1, -1}, y, x, gy0, gy1, i;
    float fy;
    h[0] = scratch, h[1] = scratch + row;
    for (y = y0; y < y1; y++) {
        float *o = scores ? scores + (size_t)(y - y0) * row : tmp;
        const float *r0, *r1;
        int want[2];
        seg_tap(y, G, S, &gy0, &gy1, &fy);
        want[0] = gy0, want[1] = gy1;
        /* keep whichever grid rows are cached already */
        for (i = 0; i < 2; i++)
            if (tag[0] != want[i] && tag[1] != want[i]) {
                int slot = tag[0] == want[1 - i] ? 1 : 0;
                seg_hrow(h[slot], z, want[i], G, K, S);
                tag[slot] = want[i];
            }
        r0 = h[tag[0] == gy0 ? 0 : 1];
        r1 = h[tag[0] == gy1 ? 0 : 1];
        seg_vmix(o, r0, r1, fy, row);
        if (mask)
            for (x = 0; x < S; x++) mask[(size_t)(y - y0) * S + x] = seg_argmax(o + (size_t)x * K, K);
    }
}
