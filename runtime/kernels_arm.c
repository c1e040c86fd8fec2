/* kernels_arm.c: the AArch64 variants of the linear kernels (kernels.h).
 *
 * INT8 works on xq itself (the ref's layout) and subtracts the zero point
 * afterwards: sum_i (xq - zero) w = sum_i xq w - zero sum_i w (wsum per
 * channel).
 *   NEON (ARMv8.0, the Jetson Nano's Cortex-A57): smull + smlal put two
 *   products into each int16 lane, |xq w| <= 128 * 127 = 16256, so the pair
 *   is at most 32512 < 2^15: exact; sadalp then widens pairs into int32.
 *   dotprod (ARMv8.2, HWCAP_ASIMDDP): sdot adds four products into int32.
 * Float32 uses 4-lane fused multiply-adds on tiles of 4 rows by 4 channels.
 * Activation quantization is the ref's plain C (vcvtnq would round alike). */
#include "kernels.h"

#if defined(__aarch64__) && defined(__GNUC__) && defined(__linux__)
#define EVRT_HAVE_ARM 1
#endif

#ifdef EVRT_HAVE_ARM
#include <arm_neon.h>
#include <math.h>
#include <sys/auxv.h>

#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif

static float rescale(int32_t acc, float x_scale, const float *w_scale, const float *b, int o)
{
    float m = x_scale * w_scale[o];
    float v = (float)acc * m;
    return v + (b ? b[o] : 0.0f);
}

static inline __attribute__((always_inline)) void i8_tile_neon(int32_t *acc, const int8_t *x,
                                                               size_t ld, const int8_t *w, int I,
                                                               const int MR, const int NR)
{
    int32x4_t a[4][4];
    int r, c, i, j;
    for (r = 0; r < MR; r++)
        for (c = 0; c < NR; c++) a[r][c] = vdupq_n_s32(0);
    for (i = 0; i + 16 <= I; i += 16) {
        int8x16_t xv[4];
        for (r = 0; r < MR; r++) xv[r] = vld1q_s8(x + r * ld + i);
        for (c = 0; c < NR; c++) {
            int8x16_t wv = vld1q_s8(w + (size_t)c * I + i);
            for (r = 0; r < MR; r++) {
                int16x8_t p = vmull_s8(vget_low_s8(xv[r]), vget_low_s8(wv));
                p = vmlal_high_s8(p, xv[r], wv);
                a[r][c] = vpadalq_s16(a[r][c], p);
            }
        }
    }
    for (r = 0; r < MR; r++)
        for (c = 0; c < NR; c++) {
            int32_t s = vaddvq_s32(a[r][c]);
            for (j = i; j < I; j++) s += (int32_t)x[r * ld + j] * w[(size_t)c * I + j];
            acc[r * 4 + c] = s;
        }
}

#define I8_DRIVER(NAME, TILE, ATTR)                                                               \
    ATTR static void NAME(float *y, const void *xp, int32_t x_zero, float x_scale,                \
                          const int8_t *wq, const int32_t *wsum, const float *w_scale,            \
                          const float *b, int N, int I, int O, int o0, int o1)                    \
    {                                                                                             \
        const int8_t *x = xp;                                                                     \
        size_t ld = (size_t)I;                                                                    \
        int64_t z = x_zero;                                                                       \
        int32_t acc[16];                                                                          \
        int n, o, r, c;                                                                           \
        for (o = o0; o + 4 <= o1; o += 4) {                                                       \
            const int8_t *w = wq + (size_t)o * I;                                                 \
            for (n = 0; n + 4 <= N; n += 4) {                                                     \
                TILE(acc, x + n * ld, ld, w, I, 4, 4);                                            \
                for (r = 0; r < 4; r++)                                                           \
                    for (c = 0; c < 4; c++)                                                       \
                        y[(size_t)(n + r) * O + o + c] = rescale(                                 \
                            (int32_t)(acc[r * 4 + c] - z * wsum[o + c]), x_scale, w_scale, b, o + c); \
            }                                                                                     \
            for (; n < N; n++) {                                                                  \
                TILE(acc, x + n * ld, ld, w, I, 1, 4);                                            \
                for (c = 0; c < 4; c++)                                                           \
                    y[(size_t)n * O + o + c] =                                                    \
                        rescale((int32_t)(acc[c] - z * wsum[o + c]), x_scale, w_scale, b, o + c); \
            }                                                                                     \
        }                                                                                         \
        for (; o < o1; o++)                                                                       \
            for (n = 0; n < N; n++) {                                                             \
                TILE(acc, x + n * ld, ld, wq + (size_t)o * I, I, 1, 1);                           \
                y[(size_t)n * O + o] = rescale((int32_t)(acc[0] - z * wsum[o]), x_scale, w_scale, b, o); \
            }                                                                                     \
    }

I8_DRIVER(i8_neon, i8_tile_neon, )

#define DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))

static inline __attribute__((always_inline)) DOTPROD void i8_tile_dot(int32_t *acc, const int8_t *x,
                                                                      size_t ld, const int8_t *w,
                                                                      int I, const int MR,
                                                                      const int NR)
{
    int32x4_t a[4][4];
    int r, c, i, j;
    for (r = 0; r < MR; r++)
        for (c = 0; c < NR; c++) a[r][c] = vdupq_n_s32(0);
    for (i = 0; i + 16 <= I; i += 16) {
        int8x16_t xv[4];
        for (r = 0; r < MR; r++) xv[r] = vld1q_s8(x + r * ld + i);
        for (c = 0; c < NR; c++) {
            int8x16_t wv = vld1q_s8(w + (size_t)c * I + i);
            for (r = 0; r < MR; r++) a[r][c] = vdotq_s32(a[r][c], xv[r], wv);
        }
    }
    for (r = 0; r < MR; r++)
        for (c = 0; c < NR; c++) {
            int32_t s = vaddvq_s32(a[r][c]);
            for (j = i; j < I; j++) s += (int32_t)x[r * ld + j] * w[(size_t)c * I + j];
            acc[r * 4 + c] = s;
        }
}

I8_DRIVER(i8_dot, i8_tile_dot, DOTPROD)

static inline __attribute__((always_inline)) void f32_tile_neon(float *out, const float *x,
                                                                size_t ldx, const float *w,
                                                                size_t ldw, int I, const int MR,
                                                                const int NR)
{
    float32x4_t a[4][4];
    int r, c, i, j;
    for (r = 0; r < MR; r++)
        for (c = 0; c < NR; c++) a[r][c] = vdupq_n_f32(0.0f);
    for (i = 0; i + 4 <= I; i += 4) {
        float32x4_t xv[4];
        for (r = 0; r < MR; r++) xv[r] = vld1q_f32(x + r * ldx + i);
        for (c = 0; c < NR; c++) {
            float32x4_t wv = vld1q_f32(w + c * ldw + i);
            for (r = 0; r < MR; r++) a[r][c] = vfmaq_f32(a[r][c], xv[r], wv);
        }
    }
    for (r = 0; r < MR; r++)
        for (c = 0; c < NR; c++) {
            float s = vaddvq_f32(a[r][c]);
            for (j = i; j < I; j++) s += x[r * ldx + j] * w[c * ldw + j];
            out[r * 4 + c] = s;
        }
}

static void f32_neon(float *y, size_t ldy, const float *x, size_t ldx, const float *w, size_t ldw,
                     const float *b, int N, int I, int o0, int o1)
{
    float acc[16];
    int n, o, r, c;
    for (o = o0; o + 4 <= o1; o += 4) {
        for (n = 0; n + 4 <= N; n += 4) {
            f32_tile_neon(acc, x + n * ldx, ldx, w + o * ldw, ldw, I, 4, 4);
            for (r = 0; r < 4; r++)
                for (c = 0; c < 4; c++) y[(n + r) * ldy + o + c] = acc[r * 4 + c] + (b ? b[o + c] : 0.0f);
        }
        for (; n < N; n++) {
            f32_tile_neon(acc, x + n * ldx, ldx, w + o * ldw, ldw, I, 1, 4);
            for (c = 0; c < 4; c++) y[n * ldy + o + c] = acc[c] + (b ? b[o + c] : 0.0f);
        }
    }
    for (; o < o1; o++)
        for (n = 0; n < N; n++) {
            f32_tile_neon(acc, x + n * ldx, ldx, w + o * ldw, ldw, I, 1, 1);
            y[n * ldy + o] = acc[0] + (b ? b[o] : 0.0f);
        }
}

/* Panel kernel (kernels.h's evrt_f32p_fn): MR rows by one panel of 16
 * channels in four vectors; each activation is broadcast and fused
 * multiply-added, no horizontal sums.  A panel narrower than 16 (only the
 * last, and only in a row-major B that may end there) goes element by
 * element with fmaf: the same fused chain. */
static inline __attribute__((always_inline)) void f32p_tile_neon(float *y, size_t ldy,
                                                                 const float *x, size_t ldx,
                                                                 const float *p, size_t ldb,
                                                                 const float *b, int K,
                                                                 const int MR)
{
    float32x4_t a[4][4];
    int r, c, k;
    for (r = 0; r < MR; r++)
        for (c = 0; c < 4; c++) a[r][c] = vdupq_n_f32(0.0f);
    for (k = 0; k < K; k++) {
        const float *w = p + (size_t)k * ldb;
        float32x4_t w0 = vld1q_f32(w), w1 = vld1q_f32(w + 4), w2 = vld1q_f32(w + 8),
                    w3 = vld1q_f32(w + 12);
        for (r = 0; r < MR; r++) {
            float32x4_t xb = vdupq_n_f32(x[(size_t)r * ldx + k]);
            a[r][0] = vfmaq_f32(a[r][0], xb, w0);
            a[r][1] = vfmaq_f32(a[r][1], xb, w1);
            a[r][2] = vfmaq_f32(a[r][2], xb, w2);
            a[r][3] = vfmaq_f32(a[r][3], xb, w3);
        }
    }
    for (r = 0; r < MR; r++)
        for (c = 0; c < 4; c++) {
            float32x4_t v = a[r][c];
            if (b) v = vaddq_f32(v, vld1q_f32(b + 4 * c));
            vst1q_f32(y + (size_t)r * ldy + 4 * c, v);
        }
}

static void f32p_neon(float *y, size_t ldy, const float *x, size_t ldx, const float *bm, size_t ldb,
                      size_t pstride, const float *b, int N, int K, int o0, int o1)
{
    int o, n, c, k;
    for (o = o0; o < o1; o += 16) {
        const float *p = bm + (size_t)(o / 16) * pstride, *bo = b ? b + o : NULL;
        float *yo = y + o;
        if (o1 - o >= 16) {
            for (n = 0; n + 4 <= N; n += 4)
                f32p_tile_neon(yo + (size_t)n * ldy, ldy, x + (size_t)n * ldx, ldx, p, ldb, bo, K, 4);
            switch (N - n) {
            case 3: f32p_tile_neon(yo + (size_t)n * ldy, ldy, x + (size_t)n * ldx, ldx, p, ldb, bo, K, 3); break;
            case 2: f32p_tile_neon(yo + (size_t)n * ldy, ldy, x + (size_t)n * ldx, ldx, p, ldb, bo, K, 2); break;
            case 1: f32p_tile_neon(yo + (size_t)n * ldy, ldy, x + (size_t)n * ldx, ldx, p, ldb, bo, K, 1); break;
            default: break;
            }
            continue;
        }
        for (n = 0; n < N; n++)
            for (c = 0; c < o1 - o; c++) {
                float a = 0.0f;
                for (k = 0; k < K; k++) a = fmaf(x[(size_t)n * ldx + k], p[(size_t)k * ldb + c], a);
                yo[(size_t)n * ldy + c] = bo ? a + bo[c] : a;
            }
    }
}

static const struct evrt_kernels neon_kernels = {EVRT_ISA_NEON, "neon", evrt_quant_ref, i8_neon,
                                                 f32_neon, 1, f32p_neon, NULL, NULL, evrt_softmax_fast,
                                                 evrt_layernorm_fast};
static const struct evrt_kernels dot_kernels = {EVRT_ISA_DOTPROD, "dotprod", evrt_quant_ref,
                                                i8_dot, f32_neon, 1, f32p_neon, NULL, NULL, evrt_softmax_fast,
                                                 evrt_layernorm_fast};

const struct evrt_kernels *evrt_kernels_arm(int isa)
{
    if (isa == EVRT_ISA_NEON) return &neon_kernels;
    if (isa == EVRT_ISA_DOTPROD) return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) ? &dot_kernels : NULL;
    return NULL;
}

#else

const struct evrt_kernels *evrt_kernels_arm(int isa)
{
    (void)isa;
    return NULL;
}

#endif
