/* ops.c: see ops.h. */
#include "ops.h"

#include <math.h>
#include <string.h>

#include <cblas.h>
/* OpenBLAS pulls in complex.h, whose I is the imaginary unit; here I is a width. */
#undef I

/* Element-wise work (GELU, softmax, LayerNorm) is a large share of a
 * training step once the matrix products run on OpenBLAS: libm's scalar erff
 * alone made GELU a fifth of it.  The row and span kernels below are written
 * to vectorise (omp simd; reductions may be reordered), and are built for
 * AVX-512 and AVX2 as well as the baseline ISA, chosen at load time on
 * x86-64 (EVIT_VECTOR_CLONES).
 *
 * exp: x = n ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2), exp(r) by
 * its Taylor series to r^7 (truncation < 6e-9 relative), times 2^n built in
 * the exponent bits.  Inputs are clamped to [-87, 88] so 2^n stays normal.
 *
 * Phi(x) = erfc(-x / sqrt 2) / 2, with erfc(z) for z >= 0 from the Chebyshev
 * fit erfc(z) ~ t exp(-z^2 + P(t)), t = 1 / (1 + z/2), fractional error
 * below 1.2e-7 (Numerical Recipes' erfcc), and erfc(-z) = 2 - erfc(z). */
static inline float vexpf(float x)
{
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    /* round to nearest with the 1.5 * 2^23 trick, no libm call */
    float nf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - nf * 0.693145751953125f - nf * 1.42860682030941723e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
              r * (1.0f / 720 + r * (1.0f / 5040)))))));
    int32_t bits = ((int32_t)nf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float vphi(float x)
{
    float z = (x < 0.0f ? -x : x) * 0.70710678118654752f;
    float t = 1.0f / (1.0f + 0.5f * z);
    float poly = -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f +
                 t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f +
                 t * (-0.82215223f + t * 0.17087277f))))))));
    float erfc_z = t * vexpf(-z * z + poly);
    return x < 0.0f ? 0.5f * erfc_z : 1.0f - 0.5f * erfc_z;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EVIT_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EVIT_VECTOR_CLONES
#endif


#include "util.h"

void evit_patchify(float *out, const uint8_t *img, const float *mean, const float *std,
                   int B, int H, int W, int C, int P)
{
    int G = H / P, K = C * P * P;
    EVIT_ASSERT(H % P == 0 && W == H);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int g = 0; g < G * G; g++) {
            int gy = g / G, gx = g % G;
            const uint8_t *src = img + (size_t)b * H * W * C;
            float *row = out + ((size_t)b * G * G + g) * K;
            for (int py = 0; py < P; py++) {
                for (int px = 0; px < P; px++) {
                    const uint8_t *pix = src + ((size_t)(gy * P + py) * W + gx * P + px) * C;
                    for (int c = 0; c < C; c++) {
                        /* the same rounding as (v/255 - mean)/std in float */
                        float v = (float)pix[c] / 255.0f;
                        row[c * P * P + py * P + px] = (v - mean[c]) / std[c];
                    }
                }
            }
        }
    }
}

void evit_linear_forward(float *out, const float *in, const float *w, const float *b,
                         int N, int I, int O)
{
    if (b) {
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * O, b, (size_t)O * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, I, 1.0f, in, I, w, I,
                b ? 1.0f : 0.0f, out, O);
}

void evit_linear_forward_ref(float *out, const float *in, const float *w, const float *b,
                             int N, int I, int O)
{
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < O; o++) {
            double acc = b ? (double)b[o] : 0.0;
            for (int i = 0; i < I; i++) acc += (double)in[(size_t)n * I + i] * (double)w[(size_t)o * I + i];
            out[(size_t)n * O + o] = (float)acc;
        }
    }
}

void evit_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                          const float *w, int N, int I, int O)
{
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, I, O, 1.0f, dout, O, w, I,
                    1.0f, din, I);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, I, N, 1.0f, dout, O, in, I, 1.0f,
                dw, I);
    if (db) {
        for (int n = 0; n < N; n++) {
            const float *g = dout + (size_t)n * O;
            for (int o = 0; o < O; o++) db[o] += g[o];
        }
    }
}

void evit_linear_backward_ref(float *din, float *dw, float *db, const float *dout,
                              const float *in, const float *w, int N, int I, int O)
{
    if (din) {
        for (int n = 0; n < N; n++) {
            for (int i = 0; i < I; i++) {
                double acc = 0.0;
                for (int o = 0; o < O; o++)
                    acc += (double)dout[(size_t)n * O + o] * (double)w[(size_t)o * I + i];
                din[(size_t)n * I + i] += (float)acc;
            }
        }
    }
    for (int o = 0; o < O; o++) {
        for (int i = 0; i < I; i++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++)
                acc += (double)dout[(size_t)n * O + o] * (double)in[(size_t)n * I + i];
            dw[(size_t)o * I + i] += (float)acc;
        }
        if (db) {
            double acc = 0.0;
            for (int n = 0; n < N; n++) acc += (double)dout[(size_t)n * O + o];
            db[o] += (float)acc;
        }
    }
}

/* Two passes over a row: the mean, then the (biased, as PyTorch) variance
 * about it, which is safer than E[x^2] - E[x]^2. */
EVIT_VECTOR_CLONES
static void layernorm_row(float *y, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, int D)
{
    float m = 0.0f, v = 0.0f;
#pragma omp simd reduction(+ : m)
    for (int i = 0; i < D; i++) m += x[i];
    m /= (float)D;
#pragma omp simd reduction(+ : v)
    for (int i = 0; i < D; i++) v += (x[i] - m) * (x[i] - m);
    v /= (float)D;
    float r = 1.0f / sqrtf(v + 1e-6f);
#pragma omp simd
    for (int i = 0; i < D; i++) y[i] = (x[i] - m) * r * w[i] + b[i];
    if (mean) *mean = m;
    if (rstd) *rstd = r;
}

void evit_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                            const float *w, const float *b, int N, int D)
{
#pragma omp parallel for schedule(static) if (N > 64)
    for (int n = 0; n < N; n++)
        layernorm_row(out + (size_t)n * D, mean ? mean + n : NULL, rstd ? rstd + n : NULL,
                      in + (size_t)n * D, w, b, D);
}

/* With xh = (x - m) r and g = dy w:
 *   dx += r (g - mean(g) - xh mean(g xh)) */
EVIT_VECTOR_CLONES
static void layernorm_row_backward(float *dx, const float *dy, const float *x, float m, float r,
                                   const float *w, int D)
{
    float gm = 0.0f, gxm = 0.0f;
#pragma omp simd reduction(+ : gm, gxm)
    for (int i = 0; i < D; i++) {
        float g = dy[i] * w[i];
        gm += g;
        gxm += g * (x[i] - m) * r;
    }
    gm /= (float)D;
    gxm /= (float)D;
#pragma omp simd
    for (int i = 0; i < D; i++) dx[i] += r * (dy[i] * w[i] - gm - (x[i] - m) * r * gxm);
}

/* dw += sum_n dy xh, db += sum_n dy: rows in order, so the sums do not
 * depend on the thread count. */
EVIT_VECTOR_CLONES
static void layernorm_params_backward(float *dw, float *db, const float *dout, const float *in,
                                      const float *mean, const float *rstd, int N, int D)
{
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * D, *dy = dout + (size_t)n * D;
        float m = mean[n], r = rstd[n];
#pragma omp simd
        for (int i = 0; i < D; i++) {
            dw[i] += dy[i] * (x[i] - m) * r;
            db[i] += dy[i];
        }
    }
}

void evit_layernorm_backward(float *din, float *dw, float *db, const float *dout,
                             const float *in, const float *mean, const float *rstd,
                             const float *w, int N, int D)
{
#pragma omp parallel for schedule(static) if (N > 64)
    for (int n = 0; n < N; n++)
        layernorm_row_backward(din + (size_t)n * D, dout + (size_t)n * D, in + (size_t)n * D,
                               mean[n], rstd[n], w, D);
    layernorm_params_backward(dw, db, dout, in, mean, rstd, N, D);
}

EVIT_VECTOR_CLONES
static void gelu_forward_span(float *out, const float *in, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = in[i] * vphi(in[i]);
}

/* d/dx x Phi(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi) */
EVIT_VECTOR_CLONES
static void gelu_backward_span(float *din, const float *dout, const float *in, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float pdf = 0.3989422804014327f * vexpf(-0.5f * x * x);
        din[i] += dout[i] * (vphi(x) + x * pdf);
    }
}

/* Spans of 16 KiB per task: large enough to amortise the call, small enough
 * to share among threads. */
#define GELU_SPAN 4096

void evit_gelu_forward(float *out, const float *in, size_t n)
{
    size_t spans = (n + GELU_SPAN - 1) / GELU_SPAN;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t s = 0; s < spans; s++) {
        size_t a = s * GELU_SPAN, len = n - a < GELU_SPAN ? n - a : GELU_SPAN;
        gelu_forward_span(out + a, in + a, len);
    }
}

void evit_gelu_forward_ref(float *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double x = (double)in[i];
        out[i] = (float)(0.5 * x * (1.0 + erf(x * M_SQRT1_2)));
    }
}

void evit_gelu_backward(float *din, const float *dout, const float *in, size_t n)
{
    size_t spans = (n + GELU_SPAN - 1) / GELU_SPAN;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t s = 0; s < spans; s++) {
        size_t a = s * GELU_SPAN, len = n - a < GELU_SPAN ? n - a : GELU_SPAN;
        gelu_backward_span(din + a, dout + a, in + a, len);
    }
}

void evit_gelu_backward_ref(float *din, const float *dout, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double x = (double)in[i];
        double cdf = 0.5 * (1.0 + erf(x * M_SQRT1_2));
        double pdf = exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
        din[i] += (float)((double)dout[i] * (cdf + x * pdf));
    }
}

void evit_residual_forward(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void evit_residual_backward(float *da, float *db, const float *dout, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

void evit_embed_forward(float *x, const float *pe, const float *cls, const float *pos,
                        int B, int T, int D)
{
    for (int b = 0; b < B; b++) {
        float *xb = x + (size_t)b * T * D;
        for (int i = 0; i < D; i++) xb[i] = cls[i] + pos[i];
        const float *pb = pe + (size_t)b * (T - 1) * D;
        for (size_t i = 0; i < (size_t)(T - 1) * D; i++) xb[D + i] = pb[i] + pos[D + i];
    }
}

void evit_embed_backward(float *dpe, float *dcls, float *dpos, const float *dx, int B, int T,
                         int D)
{
    for (int b = 0; b < B; b++) {
        const float *xb = dx + (size_t)b * T * D;
        for (int i = 0; i < D; i++) dcls[i] += xb[i];
        for (size_t i = 0; i < (size_t)T * D; i++) dpos[i] += xb[i];
        float *pb = dpe + (size_t)b * (T - 1) * D;
        for (size_t i = 0; i < (size_t)(T - 1) * D; i++) pb[i] += xb[D + i];
    }
}

/* Row-wise softmax in place, max-subtracted. */
EVIT_VECTOR_CLONES
static void softmax_rows(float *a /* (T, T) */, int T)
{
    for (int i = 0; i < T; i++) {
        float *r = a + (size_t)i * T;
        float mx = r[0], s = 0.0f;
#pragma omp simd reduction(max : mx)
        for (int j = 1; j < T; j++) mx = r[j] > mx ? r[j] : mx;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < T; j++) {
            r[j] = vexpf(r[j] - mx);
            s += r[j];
        }
        float inv = 1.0f / s;
#pragma omp simd
        for (int j = 0; j < T; j++) r[j] *= inv;
    }
}

void evit_attention_forward(float *out, float *att, const float *qkv, int B, int T, int H, int d)
{
    int I = H * d, S = 3 * I; /* row stride of qkv */
    float scale = 1.0f / sqrtf((float)d);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const float *q = qkv + (size_t)b * T * S + h * d;
            const float *k = q + I;
            const float *v = q + 2 * I;
            float *a = att + ((size_t)b * H + h) * T * T;
            float *o = out + (size_t)b * T * I + h * d;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, d, scale, q, S, k, S,
                        0.0f, a, T);
            softmax_rows(a, T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, d, T, 1.0f, a, T, v, S,
                        0.0f, o, I);
        }
    }
}

void evit_attention_forward_ref(float *out, float *att, const float *qkv, int B, int T, int H, int d)
{
    int I = H * d, S = 3 * I;
    double scale = 1.0 / sqrt((double)d);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            float *a = att + ((size_t)b * H + h) * T * T;
            for (int i = 0; i < T; i++) {
                const float *q = qkv + ((size_t)b * T + i) * S + h * d;
                double mx = -(double)INFINITY, s = 0.0;
                double row[4096];
                EVIT_ASSERT(T <= 4096);
                for (int j = 0; j < T; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * S + I + h * d;
                    double acc = 0.0;
                    for (int e = 0; e < d; e++) acc += (double)q[e] * (double)k[e];
                    row[j] = acc * scale;
                    mx = row[j] > mx ? row[j] : mx;
                }
                for (int j = 0; j < T; j++) {
                    row[j] = exp(row[j] - mx);
                    s += row[j];
                }
                for (int j = 0; j < T; j++) a[(size_t)i * T + j] = (float)(row[j] / s);
                float *o = out + ((size_t)b * T + i) * I + h * d;
                for (int e = 0; e < d; e++) {
                    double acc = 0.0;
                    for (int j = 0; j < T; j++) {
                        const float *v = qkv + ((size_t)b * T + j) * S + 2 * I + h * d;
                        acc += row[j] / s * (double)v[e];
                    }
                    o[e] = (float)acc;
                }
            }
        }
    }
}

/* dS = P .* (dP - rowsum(dP .* P)) in place over dP, row by row. */
EVIT_VECTOR_CLONES
static void softmax_rows_backward(float *dp /* (T, T) */, const float *p /* (T, T) */, int T)
{
    for (int i = 0; i < T; i++) {
        float *g = dp + (size_t)i * T;
        const float *r = p + (size_t)i * T;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < T; j++) s += g[j] * r[j];
#pragma omp simd
        for (int j = 0; j < T; j++) g[j] = r[j] * (g[j] - s);
    }
}

void evit_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                             const float *att, int B, int T, int H, int d)
{
    int I = H * d, S = 3 * I;
    float scale = 1.0f / sqrtf((float)d);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            size_t off = (size_t)b * T * S + (size_t)h * d;
            const float *q = qkv + off, *k = q + I, *v = q + 2 * I;
            float *dq = dqkv + off, *dk = dq + I, *dv = dq + 2 * I;
            const float *p = att + ((size_t)b * H + h) * T * T;
            float *dp = datt + ((size_t)b * H + h) * T * T;
            const float *dO = dout + (size_t)b * T * I + (size_t)h * d;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, d, T, 1.0f, p, T, dO, I,
                        1.0f, dv, S);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, d, 1.0f, dO, I, v, S,
                        0.0f, dp, T);
            softmax_rows_backward(dp, p, T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, d, T, scale, dp, T, k, S,
                        1.0f, dq, S);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, d, T, scale, dp, T, q, S,
                        1.0f, dk, S);
        }
    }
}

void evit_attention_backward_ref(float *dqkv, float *datt, const float *dout, const float *qkv,
                                 const float *att, int B, int T, int H, int d)
{
    int I = H * d, S = 3 * I;
    double scale = 1.0 / sqrt((double)d);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            /* row t of head h: q at qkv[b, t, h*d], k at +I, v at +2I */
#define QKV(t, part) (qkv + ((size_t)b * T + (t)) * S + (part) * I + (size_t)h * d)
#define DQKV(t, part) (dqkv + ((size_t)b * T + (t)) * S + (part) * I + (size_t)h * d)
#define DOUT(t) (dout + ((size_t)b * T + (t)) * I + (size_t)h * d)
            const float *p = att + ((size_t)b * H + h) * T * T;
            float *ds = datt + ((size_t)b * H + h) * T * T;
            for (int i = 0; i < T; i++) {
                double dp[4096], rs = 0.0;
                EVIT_ASSERT(T <= 4096);
                for (int j = 0; j < T; j++) {
                    double acc = 0.0;
                    for (int e = 0; e < d; e++) acc += (double)DOUT(i)[e] * (double)QKV(j, 2)[e];
                    dp[j] = acc;
                    rs += acc * (double)p[(size_t)i * T + j];
                }
                for (int j = 0; j < T; j++)
                    ds[(size_t)i * T + j] = (float)((double)p[(size_t)i * T + j] * (dp[j] - rs));
            }
            for (int t = 0; t < T; t++) {
                for (int e = 0; e < d; e++) {
                    double gv = 0.0, gq = 0.0, gk = 0.0;
                    for (int u = 0; u < T; u++) {
                        gv += (double)p[(size_t)u * T + t] * (double)DOUT(u)[e];
                        gq += (double)ds[(size_t)t * T + u] * (double)QKV(u, 1)[e];
                        gk += (double)ds[(size_t)u * T + t] * (double)QKV(u, 0)[e];
                    }
                    DQKV(t, 0)[e] += (float)(scale * gq);
                    DQKV(t, 1)[e] += (float)(scale * gk);
                    DQKV(t, 2)[e] += (float)gv;
                }
            }
#undef QKV
#undef DQKV
#undef DOUT
        }
    }
}

double evit_xent_forward(float *loss, const float *logits, const int32_t *labels, int B, int K)
{
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        double mx = (double)z[0];
        for (int k = 1; k < K; k++) mx = (double)z[k] > mx ? (double)z[k] : mx;
        double s = 0.0;
        for (int k = 0; k < K; k++) s += exp((double)z[k] - mx);
        double l = log(s) + mx - (double)z[labels[b]];
        if (loss) loss[b] = (float)l;
        total += l;
    }
    return total;
}

/* log sum_k exp(z_k / tau) of one row, max-subtracted, in double; the row's
 * log-softmax is then z_k / tau - lse. */
static double logsumexp_row(const float *z /* (K) */, double tau, int K)
{
    double mx = (double)z[0] / tau;
    for (int k = 1; k < K; k++) mx = (double)z[k] / tau > mx ? (double)z[k] / tau : mx;
    double s = 0.0;
    for (int k = 0; k < K; k++) s += exp((double)z[k] / tau - mx);
    return mx + log(s);
}

double evit_xent_smooth_forward(const float *logits, const int32_t *labels, float smoothing,
                                int B, int K)
{
    double total = 0.0, off = (double)smoothing / K, on = 1.0 - (double)smoothing + off;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        double lse = logsumexp_row(z, 1.0, K);
        EVIT_ASSERT(labels[b] >= 0 && labels[b] < K);
        /* -sum_k q_k log p_k with sum_k q_k = 1 */
        for (int k = 0; k < K; k++) total += (k == labels[b] ? on : off) * (lse - (double)z[k]);
    }
    return total / B;
}

void evit_xent_smooth_backward(float *dlogits, const float *logits, const int32_t *labels,
                               float smoothing, float scale, int B, int K)
{
    double off = (double)smoothing / K, on = 1.0 - (double)smoothing + off;
    double c = (double)scale / B;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        double lse = logsumexp_row(z, 1.0, K);
        EVIT_ASSERT(labels[b] >= 0 && labels[b] < K);
        float *g = dlogits + (size_t)b * K;
        for (int k = 0; k < K; k++)
            g[k] += (float)(c * (exp((double)z[k] - lse) - (k == labels[b] ? on : off)));
    }
}

double evit_kd_forward(const float *student, const float *teacher, float tau, int B, int K)
{
    EVIT_ASSERT(tau > 0.0f);
    double t = (double)tau, total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *zs = student + (size_t)b * K, *zt = teacher + (size_t)b * K;
        double lse_s = logsumexp_row(zs, t, K), lse_t = logsumexp_row(zt, t, K);
        for (int k = 0; k < K; k++) {
            double lpt = (double)zt[k] / t - lse_t, lps = (double)zs[k] / t - lse_s;
            double pt = exp(lpt);
            if (pt > 0.0) total += pt * (lpt - lps); /* 0 log 0 = 0 */
        }
    }
    return t * t * total / B;
}

void evit_kd_backward(float *dstudent, const float *student, const float *teacher, float tau,
                      float scale, int B, int K)
{
    EVIT_ASSERT(tau > 0.0f);
    double t = (double)tau, c = (double)scale * t / B;
    for (int b = 0; b < B; b++) {
        const float *zs = student + (size_t)b * K, *zt = teacher + (size_t)b * K;
        double lse_s = logsumexp_row(zs, t, K), lse_t = logsumexp_row(zt, t, K);
        float *g = dstudent + (size_t)b * K;
        for (int k = 0; k < K; k++)
            g[k] += (float)(c * (exp((double)zs[k] / t - lse_s) - exp((double)zt[k] / t - lse_t)));
    }
}
