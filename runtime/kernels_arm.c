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

static const struct evrt_kernels neon_kernels = {EVRT_ISA_NEON, "neon", evrt_quant_ref, i8_neon,
                                                 f32_neon, 1};
static const struct evrt_kernels dot_kernels = {EVRT_ISA_DOTPROD, "dotprod", evrt_quant_ref,
                                                i8_dot, f32_neon, 1};

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
