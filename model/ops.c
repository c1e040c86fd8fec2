/* ops.c: see ops.h. */
#include "ops.h"

#include <math.h>
#include <stdlib.h>
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
 * the exponent bits.  Inputs are clamped to [-87, 88] so 2^n stays normal;
 * NaN stays NaN.
 *
 * Phi(x) = erfc(-x / sqrt 2) / 2, with erfc(z) for z >= 0 from the Chebyshev
 * fit erfc(z) ~ t exp(-z^2 + P(t)), t = 1 / (1 + z/2), fractional error
 * below 1.2e-7 (Numerical Recipes' erfcc), and erfc(-z) = 2 - erfc(z). */
static inline float vexpf(float x)
{
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    /* round to nearest with the 1.5 * 2^23 trick, no libm call.  A NaN
     * input takes n = 0 (converting NaN to int is undefined) and stays NaN
     * through r, so a diverged run still shows NaN. */
    float xn = x == x ? x : 0.0f;
    float nf = (xn * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
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

/* Helpers of the EVIT_VECTOR_CLONES kernels: inlined into each clone, so
 * they are compiled for its ISA (a call would reach the baseline build). */
#if defined(__GNUC__)
#define EVIT_INLINE static inline __attribute__((always_inline))
#else
#define EVIT_INLINE static inline
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

void evit_linear_forward_ld(float *out, int ldo, const float *in, int ldi, const float *w,
                            const float *b, int N, int I, int O)
{
    if (b) {
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * ldo, b, (size_t)O * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, I, 1.0f, in, ldi, w, I,
                b ? 1.0f : 0.0f, out, ldo);
}

void evit_linear_forward(float *out, const float *in, const float *w, const float *b,
                         int N, int I, int O)
{
    evit_linear_forward_ld(out, O, in, I, w, b, N, I, O);
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

/* db += sum_n dout[n]: rows in order, so the sums do not depend on the
 * thread count. */
EVIT_VECTOR_CLONES
static void bias_backward(float *db, const float *dout, int lddout, int N, int O)
{
    for (int n = 0; n < N; n++) {
        const float *g = dout + (size_t)n * lddout;
#pragma omp simd
        for (int o = 0; o < O; o++) db[o] += g[o];
    }
}

void evit_linear_backward_ld(float *din, int lddin, float *dw, float *db, const float *dout,
                             int lddout, const float *in, int ldi, const float *w, int N, int I,
                             int O)
{
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, I, O, 1.0f, dout, lddout, w, I,
                    1.0f, din, lddin);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, I, N, 1.0f, dout, lddout, in, ldi,
                1.0f, dw, I);
    if (db) bias_backward(db, dout, lddout, N, O);
}

void evit_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                          const float *w, int N, int I, int O)
{
    evit_linear_backward_ld(din, I, dw, db, dout, O, in, I, w, N, I, O);
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
    float r = 1.0f / sqrtf(v + EVIT_LN_EPS);
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

void evit_relu_forward(float *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void evit_relu_backward(float *din, const float *dout, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (in[i] > 0.0f) din[i] += dout[i];
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

/* ---------------------------------------------------------------- attention
 *
 * Per (b, h) the products are tiny (T = 50, d = 16..32 for the fm models,
 * T = 197, d = 64 for deit) and sgemm's packing and dispatch cost more than
 * the arithmetic (26-30 GFLOP/s forward on one core at T = 50); sgemm
 * called inside the OpenMP loop also contends for OpenBLAS's buffers at 2
 * threads.  The kernels below run them directly:
 *   - small_gemm: tiles of 8 rows by 16 columns of C whose 8 accumulators
 *     stay in vector registers while k runs; each vector of B loaded feeds
 *     8 FMAs and the 8 independent chains hide the FMA latency;
 *   - queries go in blocks of 16 whose scores are held transposed, (T, 16),
 *     one column per query, computed as K Q^T from the block's q transposed
 *     (d, 16), so the softmax (and its backward) runs down the columns with
 *     whole-vector operations instead of a horizontal reduction per row.
 * Against the sgemm version on one core (B 64, T 50, H 4, d 16 and 32;
 * B 8, T 197, H 3, d 64), timed on a shared machine (CPU time, best of 7,
 * still +-20%): forward about 1.4x faster at d 16 and 32 and level at
 * deit's size, backward level to 1.1x; no shape tried was slower beyond the
 * noise, so there is no sgemm fallback.  Re-measure before adding one.
 * Reductions over k run in order, so results do not depend on the thread
 * count. */

/* C (m, n) = alpha A B, or C += alpha A B with accumulate, where
 * A[r, k] = A[r*ars + k*aks], B[k, c] = B[k*ldb + c], C[r, c] = C[r*ldc + c].
 * Tiles of 8 rows by GEMM_W columns whose sums, in local arrays, the
 * compiler keeps in vector registers: each vector of B loaded feeds 8 FMAs,
 * and 8 independent chains cover the FMA latency.  The last m % 8 rows go
 * in tiles of 4 (the last one repeating its final row, computed but not
 * stored); a scalar loop takes the last n % GEMM_W columns. */
#define GEMM_W 16

EVIT_INLINE void gemm_store(float *c, const float *s, int w, float alpha, int accumulate)
{
    if (accumulate) {
#pragma omp simd
        for (int x = 0; x < w; x++) c[x] += alpha * s[x];
    } else {
#pragma omp simd
        for (int x = 0; x < w; x++) c[x] = alpha * s[x];
    }
}

/* Rows r..r+7, columns c..c+GEMM_W-1. */
EVIT_INLINE void gemm_tile8(float *C, size_t ldc, const float *A, size_t ars, size_t aks,
                            const float *Bm, size_t ldb, int r, int c, int kk, float alpha,
                            int accumulate)
{
    const float *a0 = A + (size_t)r * ars;
    float s0[GEMM_W] = {0}, s1[GEMM_W] = {0}, s2[GEMM_W] = {0}, s3[GEMM_W] = {0};
    float s4[GEMM_W] = {0}, s5[GEMM_W] = {0}, s6[GEMM_W] = {0}, s7[GEMM_W] = {0};
    for (int k = 0; k < kk; k++) {
        const float *b = Bm + (size_t)k * ldb + c;
        const float *ak = a0 + (size_t)k * aks;
        float x0 = ak[0], x1 = ak[ars], x2 = ak[2 * ars], x3 = ak[3 * ars];
        float x4 = ak[4 * ars], x5 = ak[5 * ars], x6 = ak[6 * ars], x7 = ak[7 * ars];
#pragma omp simd
        for (int x = 0; x < GEMM_W; x++) {
            s0[x] += x0 * b[x];
            s1[x] += x1 * b[x];
            s2[x] += x2 * b[x];
            s3[x] += x3 * b[x];
            s4[x] += x4 * b[x];
            s5[x] += x5 * b[x];
            s6[x] += x6 * b[x];
            s7[x] += x7 * b[x];
        }
    }
    float *c0 = C + (size_t)r * ldc + c;
    gemm_store(c0, s0, GEMM_W, alpha, accumulate);
    gemm_store(c0 + ldc, s1, GEMM_W, alpha, accumulate);
    gemm_store(c0 + 2 * ldc, s2, GEMM_W, alpha, accumulate);
    gemm_store(c0 + 3 * ldc, s3, GEMM_W, alpha, accumulate);
    gemm_store(c0 + 4 * ldc, s4, GEMM_W, alpha, accumulate);
    gemm_store(c0 + 5 * ldc, s5, GEMM_W, alpha, accumulate);
    gemm_store(c0 + 6 * ldc, s6, GEMM_W, alpha, accumulate);
    gemm_store(c0 + 7 * ldc, s7, GEMM_W, alpha, accumulate);
}

/* Rows r..r+nr-1 (1 <= nr <= 4), columns c..c+GEMM_W-1. */
EVIT_INLINE void gemm_tile4(float *C, size_t ldc, const float *A, size_t ars, size_t aks,
                            const float *Bm, size_t ldb, int r, int nr, int c, int kk,
                            float alpha, int accumulate)
{
    const float *a0 = A + (size_t)r * ars;
    size_t o1 = (nr > 1 ? 1 : 0) * ars, o2 = (nr > 2 ? 2 : nr - 1) * ars;
    size_t o3 = (size_t)(nr - 1) * ars;
    float s0[GEMM_W] = {0}, s1[GEMM_W] = {0}, s2[GEMM_W] = {0}, s3[GEMM_W] = {0};
    for (int k = 0; k < kk; k++) {
        const float *b = Bm + (size_t)k * ldb + c;
        const float *ak = a0 + (size_t)k * aks;
        float x0 = ak[0], x1 = ak[o1], x2 = ak[o2], x3 = ak[o3];
#pragma omp simd
        for (int x = 0; x < GEMM_W; x++) {
            s0[x] += x0 * b[x];
            s1[x] += x1 * b[x];
            s2[x] += x2 * b[x];
            s3[x] += x3 * b[x];
        }
    }
    float *c0 = C + (size_t)r * ldc + c;
    gemm_store(c0, s0, GEMM_W, alpha, accumulate);
    if (nr > 1) gemm_store(c0 + ldc, s1, GEMM_W, alpha, accumulate);
    if (nr > 2) gemm_store(c0 + 2 * ldc, s2, GEMM_W, alpha, accumulate);
    if (nr > 3) gemm_store(c0 + 3 * ldc, s3, GEMM_W, alpha, accumulate);
}

EVIT_INLINE void small_gemm(float *C, size_t ldc, const float *A, size_t ars, size_t aks,
                            const float *Bm, size_t ldb, int m, int n, int kk, float alpha,
                            int accumulate)
{
    int nv = n - n % GEMM_W;
    for (int c = 0; c < nv; c += GEMM_W) {
        int r = 0;
        for (; r + 8 <= m; r += 8) gemm_tile8(C, ldc, A, ars, aks, Bm, ldb, r, c, kk, alpha, accumulate);
        for (; r < m; r += 4)
            gemm_tile4(C, ldc, A, ars, aks, Bm, ldb, r, m - r < 4 ? m - r : 4, c, kk, alpha,
                       accumulate);
    }
    if (nv < n) {
        for (int r = 0; r < m; r++) {
            for (int c = nv; c < n; c++) {
                float s0 = 0.0f;
                for (int k = 0; k < kk; k++)
                    s0 += A[(size_t)r * ars + (size_t)k * aks] * Bm[(size_t)k * ldb + c];
                gemm_store(C + (size_t)r * ldc + c, &s0, 1, alpha, accumulate);
            }
        }
    }
}

/* Queries per block: the block's scores are held transposed, (T, ATT_QB),
 * one column per query, so that the softmax runs down the columns with
 * whole-vector operations (no horizontal reduction per row). */
#define ATT_QB GEMM_W

static size_t attention_scratch_floats(int T, int d)
{
    return ((size_t)d + 2 * (size_t)T) * ATT_QB;
}

/* xt (d, ATT_QB) = the nr rows of x (stride ldx) transposed, zero past column nr. */
EVIT_INLINE void transpose_block(float *xt, const float *x, size_t ldx, int nr, int d)
{
    for (int e = 0; e < d; e++) {
        float *row = xt + (size_t)e * ATT_QB;
        for (int i = 0; i < nr; i++) row[i] = x[(size_t)i * ldx + e];
        for (int i = nr; i < ATT_QB; i++) row[i] = 0.0f;
    }
}

/* Softmax down each column of s (T, ATT_QB), in place, max-subtracted. */
EVIT_INLINE void softmax_cols(float *s, int T)
{
    float mx[ATT_QB], sum[ATT_QB];
#pragma omp simd
    for (int i = 0; i < ATT_QB; i++) {
        mx[i] = s[i];
        sum[i] = 0.0f;
    }
    for (int j = 1; j < T; j++) {
        const float *r = s + (size_t)j * ATT_QB;
#pragma omp simd
        for (int i = 0; i < ATT_QB; i++) mx[i] = r[i] > mx[i] ? r[i] : mx[i];
    }
    for (int j = 0; j < T; j++) {
        float *r = s + (size_t)j * ATT_QB;
#pragma omp simd
        for (int i = 0; i < ATT_QB; i++) {
            r[i] = vexpf(r[i] - mx[i]);
            sum[i] += r[i];
        }
    }
#pragma omp simd
    for (int i = 0; i < ATT_QB; i++) sum[i] = 1.0f / sum[i];
    for (int j = 0; j < T; j++) {
        float *r = s + (size_t)j * ATT_QB;
#pragma omp simd
        for (int i = 0; i < ATT_QB; i++) r[i] *= sum[i];
    }
}

/* Softmax backward down the columns, in place over dp:
 * ds = p .* (dp - sum_j dp .* p), both (T, ATT_QB). */
EVIT_INLINE void softmax_cols_backward(float *dp, const float *p, int T)
{
    float s[ATT_QB];
#pragma omp simd
    for (int i = 0; i < ATT_QB; i++) s[i] = 0.0f;
    for (int j = 0; j < T; j++) {
        const float *g = dp + (size_t)j * ATT_QB, *r = p + (size_t)j * ATT_QB;
#pragma omp simd
        for (int i = 0; i < ATT_QB; i++) s[i] += g[i] * r[i];
    }
    for (int j = 0; j < T; j++) {
        float *g = dp + (size_t)j * ATT_QB;
        const float *r = p + (size_t)j * ATT_QB;
#pragma omp simd
        for (int i = 0; i < ATT_QB; i++) g[i] = r[i] * (g[i] - s[i]);
    }
}

/* One head: q, k, v rows of stride S; att a (nq, T); out rows of stride ldo.
 * Per block of ATT_QB queries: st = K Q^T (T, ATT_QB), softmax down its
 * columns, then out = st^T V. */
EVIT_VECTOR_CLONES
static void attention_head_forward(float *o, size_t ldo, float *a, const float *q,
                                   const float *k, const float *v, const float *bias, size_t S, int T,
                                   int nq, int d, float scale, float *scr)
{
    float *qt = scr, *st = scr + (size_t)d * ATT_QB;
    for (int i0 = 0; i0 < nq; i0 += ATT_QB) {
        int nr = nq - i0 < ATT_QB ? nq - i0 : ATT_QB;
        transpose_block(qt, q + (size_t)i0 * S, S, nr, d);
        small_gemm(st, ATT_QB, k, S, 1, qt, ATT_QB, T, ATT_QB, d, scale, 0);
        if (bias) /* key j's bias on row j of the transposed scores */
            for (int j = 0; j < T; j++) {
                float *r = st + (size_t)j * ATT_QB;
#pragma omp simd
                for (int i = 0; i < ATT_QB; i++) r[i] += bias[j];
            }
        softmax_cols(st, T);
        for (int i = 0; i < nr; i++) {
            float *ai = a + (size_t)(i0 + i) * T;
            for (int j = 0; j < T; j++) ai[j] = st[(size_t)j * ATT_QB + i];
        }
        small_gemm(o + (size_t)i0 * ldo, ldo, st, 1, ATT_QB, v, S, nr, d, T, 1.0f, 0);
    }
}

/* One head, backward: dq dk dv rows of stride S (accumulated), dO rows of
 * stride ldo, p (nq, T).  Per block of ATT_QB queries, transposed as in the
 * forward: dpt = V dO^T, dst = softmax backward of it, then
 * dV += P^T dO, dQ += s dS K, dK += s dS^T Q. */
EVIT_VECTOR_CLONES
static void attention_head_backward(float *dq, float *dk, float *dv, size_t S, const float *dO,
                                    size_t ldo, const float *q, const float *k, const float *v,
                                    const float *p, int T, int nq, int d, float scale,
                                    float *scr)
{
    float *dot = scr, *dst = scr + (size_t)d * ATT_QB, *pt = dst + (size_t)T * ATT_QB;
    for (int i0 = 0; i0 < nq; i0 += ATT_QB) {
        int nr = nq - i0 < ATT_QB ? nq - i0 : ATT_QB;
        const float *dOi = dO + (size_t)i0 * ldo;
        transpose_block(dot, dOi, ldo, nr, d);
        small_gemm(dst, ATT_QB, v, S, 1, dot, ATT_QB, T, ATT_QB, d, 1.0f, 0);
        /* pt = the block's rows of p, transposed: reading p in order */
        for (int i = 0; i < nr; i++) {
            const float *pi = p + (size_t)(i0 + i) * T;
            for (int j = 0; j < T; j++) pt[(size_t)j * ATT_QB + i] = pi[j];
        }
        for (int i = nr; i < ATT_QB; i++)
            for (int j = 0; j < T; j++) pt[(size_t)j * ATT_QB + i] = 0.0f;
        softmax_cols_backward(dst, pt, T);
        small_gemm(dv, S, pt, ATT_QB, 1, dOi, ldo, T, d, nr, 1.0f, 1);
        small_gemm(dq + (size_t)i0 * S, S, dst, 1, ATT_QB, k, S, nr, d, T, scale, 1);
        small_gemm(dk, S, dst, ATT_QB, 1, q + (size_t)i0 * S, S, T, d, nr, scale, 1);
    }
}

void evit_attention_forward_q(float *out, float *att, const float *qkv, int B, int T, int nq,
                              int H, int d)
{
    evit_attention_forward_qb(out, att, qkv, NULL, B, T, nq, H, d);
}

void evit_attention_forward_qb(float *out, float *att, const float *qkv, const float *bias, int B, int T,
                               int nq, int H, int d)
{
    EVIT_ASSERT(nq >= 1 && nq <= T);
    int I = H * d, S = 3 * I; /* row stride of qkv */
    float scale = 1.0f / sqrtf((float)d);
    size_t nscr = attention_scratch_floats(T, d);
#pragma omp parallel
    {
        float *scr = evit_alloc_floats(nscr);
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < H; h++) {
                const float *q = qkv + (size_t)b * T * S + (size_t)h * d;
                float *a = att + ((size_t)b * H + h) * nq * T;
                float *o = out + (size_t)b * nq * I + (size_t)h * d;
                attention_head_forward(o, (size_t)I, a, q, q + I, q + 2 * I,
                                       bias ? bias + (size_t)b * T : NULL, (size_t)S, T, nq, d, scale, scr);
            }
        }
        evit_free_aligned(scr);
    }
}

void evit_attention_forward(float *out, float *att, const float *qkv, int B, int T, int H, int d)
{
    evit_attention_forward_q(out, att, qkv, B, T, T, H, d);
}

void evit_attention_forward_q_ref(float *out, float *att, const float *qkv, int B, int T, int nq,
                                  int H, int d)
{
    evit_attention_forward_qb_ref(out, att, qkv, NULL, B, T, nq, H, d);
}

void evit_attention_forward_qb_ref(float *out, float *att, const float *qkv, const float *bias, int B, int T,
                                   int nq, int H, int d)
{
    int I = H * d, S = 3 * I;
    double scale = 1.0 / sqrt((double)d);
    EVIT_ASSERT(nq >= 1 && nq <= T);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            float *a = att + ((size_t)b * H + h) * nq * T;
            for (int i = 0; i < nq; i++) {
                const float *q = qkv + ((size_t)b * T + i) * S + h * d;
                double mx = -(double)INFINITY, s = 0.0;
                double row[4096];
                EVIT_ASSERT(T <= 4096);
                for (int j = 0; j < T; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * S + I + h * d;
                    double acc = 0.0;
                    for (int e = 0; e < d; e++) acc += (double)q[e] * (double)k[e];
                    row[j] = acc * scale + (bias ? (double)bias[(size_t)b * T + j] : 0.0);
                    mx = row[j] > mx ? row[j] : mx;
                }
                for (int j = 0; j < T; j++) {
                    row[j] = exp(row[j] - mx);
                    s += row[j];
                }
                for (int j = 0; j < T; j++) a[(size_t)i * T + j] = (float)(row[j] / s);
                float *o = out + ((size_t)b * nq + i) * I + h * d;
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

void evit_attention_forward_ref(float *out, float *att, const float *qkv, int B, int T, int H, int d)
{
    evit_attention_forward_q_ref(out, att, qkv, B, T, T, H, d);
}

void evit_attention_backward_q(float *dqkv, float *datt, const float *dout, const float *qkv,
                               const float *att, int B, int T, int nq, int H, int d)
{
    EVIT_ASSERT(nq >= 1 && nq <= T);
    int I = H * d, S = 3 * I;
    float scale = 1.0f / sqrtf((float)d);
    size_t nscr = attention_scratch_floats(T, d);
#pragma omp parallel
    {
        float *scr = evit_alloc_floats(nscr);
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < H; h++) {
                size_t off = (size_t)b * T * S + (size_t)h * d;
                const float *q = qkv + off;
                float *dq = dqkv + off;
                const float *p = att + ((size_t)b * H + h) * nq * T;
                const float *dO = dout + (size_t)b * nq * I + (size_t)h * d;
                attention_head_backward(dq, dq + I, dq + 2 * I, (size_t)S, dO, (size_t)I, q,
                                        q + I, q + 2 * I, p, T, nq, d, scale, scr);
            }
        }
        evit_free_aligned(scr);
    }
}

void evit_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                             const float *att, int B, int T, int H, int d)
{
    evit_attention_backward_q(dqkv, datt, dout, qkv, att, B, T, T, H, d);
}

void evit_attention_backward_ref(float *dqkv, float *datt, const float *dout, const float *qkv,
                                 const float *att, int B, int T, int H, int d)
{
    evit_attention_backward_q_ref(dqkv, datt, dout, qkv, att, B, T, T, H, d);
}

void evit_attention_backward_q_ref(float *dqkv, float *datt, const float *dout, const float *qkv,
                                   const float *att, int B, int T, int nq, int H, int d)
{
    int I = H * d, S = 3 * I;
    double scale = 1.0 / sqrt((double)d);
    EVIT_ASSERT(nq >= 1 && nq <= T);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            /* row t of head h: q at qkv[b, t, h*d], k at +I, v at +2I */
#define QKV(t, part) (qkv + ((size_t)b * T + (t)) * S + (part) * I + (size_t)h * d)
#define DQKV(t, part) (dqkv + ((size_t)b * T + (t)) * S + (part) * I + (size_t)h * d)
#define DOUT(t) (dout + ((size_t)b * nq + (t)) * I + (size_t)h * d)
            const float *p = att + ((size_t)b * H + h) * nq * T;
            float *ds = datt + ((size_t)b * H + h) * nq * T;
            for (int i = 0; i < nq; i++) {
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
                    for (int u = 0; u < nq; u++) {
                        gv += (double)p[(size_t)u * T + t] * (double)DOUT(u)[e];
                        gk += (double)ds[(size_t)u * T + t] * (double)QKV(u, 0)[e];
                    }
                    if (t < nq) {
                        for (int u = 0; u < T; u++)
                            gq += (double)ds[(size_t)t * T + u] * (double)QKV(u, 1)[e];
                        DQKV(t, 0)[e] += (float)(scale * gq);
                    }
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

/* Rows of at most ROW_EXP_MAX classes keep their exps (on the stack)
 * instead of taking them again for the softmax: the per-pixel losses of
 * segmentation (a row per pixel) spent more than half of a small student's
 * training step in exp() and log().  Class heads of up to 64 classes take
 * the same path (the softmax e/s instead of exp(z - lse): the last bits
 * differ); wider rows (a 1000-class head's, one per image, where the exps
 * cost nothing next to the model) recompute. */
#define ROW_EXP_MAX 64

/* e[k] = exp(z[k]/tau - m), m = max_k z[k]/tau; returns s = sum_k e[k] and
 * sets *m.  softmax(z/tau)_k = e[k] / s and logsumexp(z/tau) = m + log s,
 * the same bits as logsumexp_row (the same operations in the same order). */
static double exp_row(double *e /* (K) */, double *m, const float *z /* (K) */, double tau, int K)
{
    double mx = (double)z[0] / tau;
    for (int k = 1; k < K; k++) mx = (double)z[k] / tau > mx ? (double)z[k] / tau : mx;
    double s = 0.0;
    for (int k = 0; k < K; k++) s += e[k] = exp((double)z[k] / tau - mx);
    *m = mx;
    return s;
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

/* The per-row losses below are summed in fixed chunks of LOSS_CHUNK rows,
 * each in order, and the chunks' sums in order: the same bits at any thread
 * count (a single chunk is the plain serial sum).  Segmentation losses have
 * a row per pixel (a batch of 32 96x96 scenes: 294,912), each with a few
 * exp()s per class, so they are worth the threads. */
#define LOSS_CHUNK 4096

static double kd_rows(const float *student, const float *teacher, double t, size_t r0, size_t r1, int K)
{
    double total = 0.0, es[ROW_EXP_MAX], et[ROW_EXP_MAX];
    for (size_t b = r0; b < r1; b++) {
        const float *zs = student + b * K, *zt = teacher + b * K;
        if (K <= ROW_EXP_MAX) { /* p_t from the kept exps */
            double ms, mt, ss = exp_row(es, &ms, zs, t, K), st = exp_row(et, &mt, zt, t, K);
            double lse_s = ms + log(ss), lse_t = mt + log(st);
            for (int k = 0; k < K; k++) {
                double pt = et[k] / st;
                if (pt > 0.0) total += pt * (((double)zt[k] / t - lse_t) - ((double)zs[k] / t - lse_s));
            }
            continue;
        }
        double lse_s = logsumexp_row(zs, t, K), lse_t = logsumexp_row(zt, t, K);
        for (int k = 0; k < K; k++) {
            double lpt = (double)zt[k] / t - lse_t, lps = (double)zs[k] / t - lse_s;
            double pt = exp(lpt);
            if (pt > 0.0) total += pt * (lpt - lps); /* 0 log 0 = 0 */
        }
    }
    return total;
}

double evit_kd_forward(const float *student, const float *teacher, float tau, int B, int K)
{
    EVIT_ASSERT(tau > 0.0f);
    double t = (double)tau, total = 0.0;
    size_t n = (size_t)B, chunks = (n + LOSS_CHUNK - 1) / LOSS_CHUNK;
    if (chunks <= 1) {
        total = kd_rows(student, teacher, t, 0, n, K);
    } else {
        double *part = evit_malloc(sizeof(double) * chunks);
#pragma omp parallel for schedule(static)
        for (size_t c = 0; c < chunks; c++)
            part[c] = kd_rows(student, teacher, t, c * LOSS_CHUNK, c + 1 < chunks ? (c + 1) * LOSS_CHUNK : n, K);
        for (size_t c = 0; c < chunks; c++) total += part[c];
        free(part);
    }
    return t * t * total / B;
}

void evit_kd_backward(float *dstudent, const float *student, const float *teacher, float tau,
                      float scale, int B, int K)
{
    EVIT_ASSERT(tau > 0.0f);
    double t = (double)tau, c = (double)scale * t / B;
    /* each row's gradient its own: any split gives the same bits */
#pragma omp parallel for schedule(static) if ((size_t)B * K > 65536)
    for (int b = 0; b < B; b++) {
        const float *zs = student + (size_t)b * K, *zt = teacher + (size_t)b * K;
        float *g = dstudent + (size_t)b * K;
        if (K <= ROW_EXP_MAX) { /* softmaxes from the kept exps */
            double es[ROW_EXP_MAX], et[ROW_EXP_MAX], ms, mt;
            double ss = exp_row(es, &ms, zs, t, K), st = exp_row(et, &mt, zt, t, K);
            for (int k = 0; k < K; k++) g[k] += (float)(c * (es[k] / ss - et[k] / st));
            continue;
        }
        double lse_s = logsumexp_row(zs, t, K), lse_t = logsumexp_row(zt, t, K);
        for (int k = 0; k < K; k++)
            g[k] += (float)(c * (exp((double)zs[k] / t - lse_s) - exp((double)zt[k] / t - lse_t)));
    }
}

/* ---------------------------------------------------------------- segmentation */

/* One axis of the bilinear map: output index o of n_out reads source
 * position s = (o + 1/2) n_in / n_out - 1/2, clamped below at 0 (PyTorch's
 * area_pixel_compute_source_index with align_corners=False), between i0 =
 * floor(s) and i1 = min(i0 + 1, n_in - 1), with weight f = s - i0 on i1. */
static void bilinear_tap(int o, int n_in, int n_out, int *i0, int *i1, float *f)
{
    float s = ((float)o + 0.5f) * ((float)n_in / (float)n_out) - 0.5f;
    if (s < 0.0f) s = 0.0f;
    *i0 = (int)s;
    if (*i0 > n_in - 1) *i0 = n_in - 1;
    *i1 = *i0 < n_in - 1 ? *i0 + 1 : *i0;
    *f = s - (float)*i0;
}

void evit_upsample_forward(float *out, const float *in, int B, int h, int w, int H, int W, int K)
{
    EVIT_ASSERT(h >= 1 && w >= 1 && H >= 1 && W >= 1 && K >= 1);
    /* every output its own: any split gives the same bits */
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * H * W * K > 65536)
    for (int b = 0; b < B; b++) {
        for (int y = 0; y < H; y++) {
            const float *src = in + (size_t)b * h * w * K;
            int y0, y1, x0, x1;
            float fy, fx;
            bilinear_tap(y, h, H, &y0, &y1, &fy);
            for (int x = 0; x < W; x++) {
                bilinear_tap(x, w, W, &x0, &x1, &fx);
                const float *a = src + ((size_t)y0 * w + x0) * K, *c = src + ((size_t)y0 * w + x1) * K;
                const float *d = src + ((size_t)y1 * w + x0) * K, *e = src + ((size_t)y1 * w + x1) * K;
                float *o = out + (((size_t)b * H + y) * W + x) * K;
                for (int k = 0; k < K; k++)
                    o[k] = (1.0f - fy) * ((1.0f - fx) * a[k] + fx * c[k]) + fy * ((1.0f - fx) * d[k] + fx * e[k]);
            }
        }
    }
}

void evit_upsample_backward(float *din, const float *dout, int B, int h, int w, int H, int W, int K)
{
    /* the taps of an image gather from its own pixels alone, in order:
     * images split across threads give the same bits */
#pragma omp parallel for schedule(static) if ((size_t)B * H * W * K > 65536)
    for (int b = 0; b < B; b++) {
        float *dsrc = din + (size_t)b * h * w * K;
        for (int y = 0; y < H; y++) {
            int y0, y1, x0, x1;
            float fy, fx;
            bilinear_tap(y, h, H, &y0, &y1, &fy);
            for (int x = 0; x < W; x++) {
                bilinear_tap(x, w, W, &x0, &x1, &fx);
                const float *g = dout + (((size_t)b * H + y) * W + x) * K;
                float *a = dsrc + ((size_t)y0 * w + x0) * K, *c = dsrc + ((size_t)y0 * w + x1) * K;
                float *d = dsrc + ((size_t)y1 * w + x0) * K, *e = dsrc + ((size_t)y1 * w + x1) * K;
                /* the four taps may coincide at the edges: each adds its own share */
                for (int k = 0; k < K; k++) {
                    a[k] += (1.0f - fy) * (1.0f - fx) * g[k];
                    c[k] += (1.0f - fy) * fx * g[k];
                    d[k] += fy * (1.0f - fx) * g[k];
                    e[k] += fy * fx * g[k];
                }
            }
        }
    }
}

static double xent_pixel_rows(size_t *labelled, const float *logits, const uint8_t *mask, int ignore, size_t p0,
                              size_t p1, int K)
{
    double total = 0.0;
    size_t n = 0;
    for (size_t p = p0; p < p1; p++) {
        if (mask[p] == ignore) continue;
        EVIT_ASSERT(mask[p] < K);
        const float *z = logits + p * K;
        total += logsumexp_row(z, 1.0, K) - (double)z[mask[p]];
        n++;
    }
    *labelled = n;
    return total;
}

double evit_xent_pixels_forward(size_t *labelled, const float *logits, const uint8_t *mask, int ignore, size_t P,
                                int K)
{
    double total = 0.0;
    size_t n = 0, chunks = (P + LOSS_CHUNK - 1) / LOSS_CHUNK;
    if (chunks <= 1) {
        total = xent_pixel_rows(&n, logits, mask, ignore, 0, P, K);
    } else {
        double *part = evit_malloc(sizeof(double) * chunks);
        size_t *cnt = evit_malloc(sizeof(size_t) * chunks);
#pragma omp parallel for schedule(static)
        for (size_t c = 0; c < chunks; c++)
            part[c] = xent_pixel_rows(&cnt[c], logits, mask, ignore, c * LOSS_CHUNK,
                                      c + 1 < chunks ? (c + 1) * LOSS_CHUNK : P, K);
        for (size_t c = 0; c < chunks; c++) {
            total += part[c];
            n += cnt[c];
        }
        free(part);
        free(cnt);
    }
    if (labelled) *labelled = n;
    return n ? total / (double)n : 0.0;
}

void evit_xent_pixels_backward(float *dlogits, const float *logits, const uint8_t *mask, int ignore, float scale,
                               size_t P, int K)
{
    size_t n = 0;
    for (size_t p = 0; p < P; p++) n += mask[p] != ignore;
    if (!n) return;
    double c = (double)scale / (double)n;
#pragma omp parallel for schedule(static) if (P * (size_t)K > 65536)
    for (size_t p = 0; p < P; p++) {
        if (mask[p] == ignore) continue;
        const float *z = logits + p * K;
        float *g = dlogits + p * K;
        if (K <= ROW_EXP_MAX) { /* the softmax from the kept exps */
            double e[ROW_EXP_MAX], m, s = exp_row(e, &m, z, 1.0, K);
            for (int k = 0; k < K; k++) g[k] += (float)(c * (e[k] / s - (k == mask[p] ? 1.0 : 0.0)));
            continue;
        }
        double lse = logsumexp_row(z, 1.0, K);
        for (int k = 0; k < K; k++) g[k] += (float)(c * (exp((double)z[k] - lse) - (k == mask[p] ? 1.0 : 0.0)));
    }
}

int evit_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}
