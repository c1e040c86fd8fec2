/* kernels_arm.c: the AArch64 variants of the linear kernels (kernels.h).
 *
 * INT8 works on xq itself (the ref's values, rows padded with zeros to a
 * multiple of 16 bytes) and subtracts the zero point afterwards: sum_i (xq - zero) w = sum_i xq w - zero sum_i w (wsum per
 * channel).
 *   NEON (ARMv8.0, the Jetson Nano's Cortex-A57): smull + smlal put two
 *   products into each int16 lane, |xq w| <= 128 * 127 = 16256, so the pair
 *   is at most 32512 < 2^15: exact; sadalp then widens pairs into int32.
 *   dotprod (ARMv8.2, HWCAP_ASIMDDP): sdot adds four products into int32.
 * The packed kernels (i8p_neon, i8p_dot: what evrt_infer uses) read
 * weights packed once at context create; the unpacked ones (i8_neon,
 * i8_dot) read them in place.
 * Float32 uses 4-lane fused multiply-adds on tiles of 4 rows by 4 channels.
 * Activation quantization (quant_pad) is 16 lanes at a time: fcvtns rounds
 * like the ref's rintf, and saturating steps do its clamp. */
#include "kernels.h"

#if defined(__aarch64__) && defined(__GNUC__) && defined(__linux__)
#define EVRT_HAVE_ARM 1
#endif

#ifdef EVRT_HAVE_ARM
#include <arm_neon.h>
#include <math.h>
#include <string.h>
#include <sys/auxv.h>

/* The tiles' loops must unroll completely, or the accumulator arrays
 * live on the stack; and GCC's first scheduling pass, which hoists all
 * sixteen products of a step ahead of their sadalp, spills two
 * accumulators of the 4-row tile (32 vector registers: 16 accumulators,
 * 8 inputs, products) unless it is off for the drivers. */
#define UNROLL4 _Pragma("GCC unroll 4")
#if defined(__GNUC__) && !defined(__clang__)
#define NO_SCHED1 __attribute__((optimize("no-schedule-insns")))
#else
#define NO_SCHED1
#endif

#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif

/* Quantized rows are padded to a multiple of 16 bytes (quant_pad). */
static size_t ld16(int I) { return (size_t)(I + 15) / 16 * 16; }

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
        size_t ld = ld16(I);                                                                      \
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
    UNROLL4 for (r = 0; r < MR; r++)
        UNROLL4 for (c = 0; c < 4; c++) a[r][c] = vdupq_n_f32(0.0f);
    for (k = 0; k < K; k++) {
        const float *w = p + (size_t)k * ldb;
        float32x4_t w0 = vld1q_f32(w), w1 = vld1q_f32(w + 4), w2 = vld1q_f32(w + 8),
                    w3 = vld1q_f32(w + 12);
        UNROLL4 for (r = 0; r < MR; r++) {
            float32x4_t xb = vdupq_n_f32(x[(size_t)r * ldx + k]);
            a[r][0] = vfmaq_f32(a[r][0], xb, w0);
            a[r][1] = vfmaq_f32(a[r][1], xb, w1);
            a[r][2] = vfmaq_f32(a[r][2], xb, w2);
            a[r][3] = vfmaq_f32(a[r][3], xb, w3);
        }
    }
    UNROLL4 for (r = 0; r < MR; r++)
        UNROLL4 for (c = 0; c < 4; c++) {
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

/* ---------------------------------------------------------------- packed INT8
 *
 * Activations: the ref's int8 xq, each row padded with zeros to ld16(I)
 * (quant_pad below), so a 16-byte load never leaves the row.
 * Weights (pack_i8_arm): groups of 4 output channels; for group q and depth
 * block g of 16 inputs, 64 bytes at p + (q G + g) 64: channel 4q + c's
 * inputs 16g..16g+15 at 16c.  Zero beyond O and I, so the padded products
 * add nothing.
 *
 * A tile is MR <= 4 rows by the 4 channels of a group: 16 int32x4
 * accumulators, 4 activation and 4 weight vectors per depth block.  Per
 * (row, channel) and block, NEON does smull (inputs 0..7) and smlal2 (8..15)
 * into one int16x8, two products a lane (<= 2 * 128 * 127 = 32512: exact),
 * and sadalp widens the pairs into the int32 lanes: 16 MACs in three
 * instructions, two of them on the A57's multiply pipe.  dotprod does the
 * same 16 in one sdot.  At the end, pairwise adds (addp) fold the four lanes
 * of each accumulator: row r's four channel sums in one vector. */

/* evrt_quantize_act_ref on 16 lanes, x[0..16) to q[0..16).  The ref computes
 *   t = x * inv, NaN -> 0, c = clamp(t, lo, hi), q = (int8)(rintf(c) + zero)
 * with lo = -128 - zero, hi = 127 - zero.  Those bounds are integers (exact
 * floats for |zero| < 2^24 - 128, so for every zero evrt.h allows), and
 * rounding is monotonic, so rint(clamp(t, lo, hi)) = clamp(rint(t), lo, hi)
 * and q = clamp(rint(t) + zero, -128, 127), with rint(+-inf) = +-inf; a NaN
 * gives clamp(zero, -128, 127).  Here, per lane:
 *   fmul: the same single IEEE product (AArch64 Advanced SIMD obeys FPCR
 *     like the scalar unit: no flush of subnormals, unlike AArch32 NEON);
 *   fcvtns: rint to nearest, ties to even (what rintf does in the default
 *     rounding mode, which libevrt never changes), saturated to int32, and
 *     NaN -> 0;
 *   sqadd zero, then sqxtn to int16 and to int8: saturating at each step.
 * Nested clamps collapse, sat8(sat16(v)) = sat8(v), and a saturated
 * int32 +- 2^31 stays beyond [-128, 127] after adding |zero| < 2^24, so the
 * lane is sat8(rint(t) + zero): the ref's q, NaN included (rint 0).
 * No float clamp and no NaN select: fmul, fcvtns and sqadd per 4 values,
 * six narrowing steps per 16. */
static inline void quant16(int8_t *q, const float *x, float32x4_t inv, int32x4_t zero)
{
    int32x4_t v[4];
    int k;
    UNROLL4 for (k = 0; k < 4; k++)
        v[k] = vqaddq_s32(vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 4 * k), inv)), zero);
    vst1q_s8(q, vqmovn_high_s16(vqmovn_s16(vqmovn_high_s32(vqmovn_s32(v[0]), v[1])),
                                vqmovn_high_s32(vqmovn_s32(v[2]), v[3])));
}

/* Rows of xq padded with zeros to ld16(I).  A row's last I % 16 values go
 * as one more block of 16: the row's last 16 values again (the overlap is
 * rewritten with the same bytes), or for I < 16 the row copied into zeros;
 * either stays within ld16(I) bytes, and the padding is cleared after. */
static void quant_pad(void *dst, const float *x, int N, int I, float scale, int32_t zero)
{
    float32x4_t vinv = vdupq_n_f32(1.0f / scale); /* the ref's inv */
    int32x4_t vzero = vdupq_n_s32(zero);
    size_t ld = ld16(I);
    int n, i;
    for (n = 0; n < N; n++) {
        int8_t *q = (int8_t *)dst + (size_t)n * ld;
        const float *r = x + (size_t)n * I;
        for (i = 0; i + 16 <= I; i += 16) quant16(q + i, r + i, vinv, vzero);
        if (i == I) continue;
        if (I >= 16) {
            quant16(q + I - 16, r + I - 16, vinv, vzero);
        } else {
            float t[16] = {0.0f};
            memcpy(t, r, sizeof(float) * (size_t)I);
            quant16(q, t, vinv, vzero);
        }
        memset(q + I, 0, ld - (size_t)I);
    }
}

static void pack_i8_arm(void *dst, const int8_t *wq, int O, int I)
{
    int8_t *p = dst;
    int G = (I + 15) / 16, q, g, c, k;
    for (q = 0; q < (O + 15) / 16 * 4; q++)
        for (g = 0; g < G; g++)
            for (c = 0; c < 4; c++)
                for (k = 0; k < 16; k++) {
                    int o = 4 * q + c, i = 16 * g + k;
                    *p++ = o < O && i < I ? wq[(size_t)o * I + i] : 0;
                }
}

#define SMLAL_STEP(acc, x, w)                                                \
    do {                                                                     \
        int16x8_t p_ = vmull_s8(vget_low_s8(x), vget_low_s8(w));             \
        p_ = vmlal_high_s8(p_, (x), (w));                                    \
        (acc) = vpadalq_s16((acc), p_);                                      \
    } while (0)
#define SDOT_STEP(acc, x, w) ((acc) = vdotq_s32((acc), (x), (w)))


/* Sums of rows [0, MR) of x against the group's 4 channels: s[r] lane c. */
#define I8P_TILE(NAME, STEP, ATTR)                                                              \
    static inline __attribute__((always_inline)) ATTR void NAME(int32x4_t *s, const int8_t *x,   \
                                                                size_t ld, const int8_t *p,      \
                                                                int G, const int MR)             \
    {                                                                                           \
        int32x4_t a[4][4];                                                                      \
        int r, c, g;                                                                            \
        UNROLL4 for (r = 0; r < MR; r++)                                                        \
            UNROLL4 for (c = 0; c < 4; c++) a[r][c] = vdupq_n_s32(0);                           \
        for (g = 0; g < G; g++) {                                                               \
            int8x16_t w[4], xv[4];                                                              \
            UNROLL4 for (c = 0; c < 4; c++) w[c] = vld1q_s8(p + (size_t)g * 64 + 16 * c);      \
            UNROLL4 for (r = 0; r < MR; r++) xv[r] = vld1q_s8(x + (size_t)r * ld + (size_t)g * 16); \
            UNROLL4 for (r = 0; r < MR; r++)                                                    \
                UNROLL4 for (c = 0; c < 4; c++) STEP(a[r][c], xv[r], w[c]);                     \
        }                                                                                       \
        UNROLL4 for (r = 0; r < MR; r++)                                                        \
            s[r] = vpaddq_s32(vpaddq_s32(a[r][0], a[r][1]), vpaddq_s32(a[r][2], a[r][3]));      \
    }

/* The group's channels [o, o + nc) of rows [n, n + MR): the _ref's
 * (float)acc * (x_scale * w_scale[o]) + b[o], separately rounded.  acc is
 * the sum on xq minus zero * wsum, exact in int32 (mod 2^32 on the way). */
#define I8P_DRIVER(NAME, TILE, ATTR)                                                              \
    ATTR static void NAME(float *y, const void *xp, int32_t x_zero, float x_scale, const void *wp, \
                          const int32_t *wsum, const float *w_scale, const float *b, int N, int I, \
                          int O, int o0, int o1)                                                  \
    {                                                                                             \
        const int8_t *x = xp;                                                                     \
        size_t ld = ld16(I);                                                                      \
        int G = (I + 15) / 16, o, n, r, c;                                                        \
        for (o = o0; o < o1; o += 4) {                                                            \
            const int8_t *p = (const int8_t *)wp + (size_t)(o / 4) * G * 64;                      \
            int nc = o1 - o < 4 ? o1 - o : 4;                                                     \
            int32x4_t s[4], zc;                                                                   \
            float32x4_t ms, bv;                                                                   \
            if (nc == 4) {                                                                        \
                zc = vmulq_n_s32(vld1q_s32(wsum + o), x_zero);                                    \
                ms = vmulq_n_f32(vld1q_f32(w_scale + o), x_scale);                                \
                bv = b ? vld1q_f32(b + o) : vdupq_n_f32(0.0f);                                    \
            } else {                                                                              \
                int32_t zt[4] = {0, 0, 0, 0};                                                     \
                float mt[4] = {0, 0, 0, 0}, bt[4] = {0, 0, 0, 0};                                 \
                for (c = 0; c < nc; c++) {                                                        \
                    zt[c] = (int32_t)((uint32_t)wsum[o + c] * (uint32_t)x_zero);                  \
                    mt[c] = x_scale * w_scale[o + c];                                             \
                    bt[c] = b ? b[o + c] : 0.0f;                                                  \
                }                                                                                 \
                zc = vld1q_s32(zt);                                                               \
                ms = vld1q_f32(mt);                                                               \
                bv = vld1q_f32(bt);                                                               \
            }                                                                                     \
            for (n = 0; n < N; n += 4) {                                                          \
                int mr = N - n < 4 ? N - n : 4;                                                   \
                const int8_t *xn = x + (size_t)n * ld;                                            \
                switch (mr) {                                                                     \
                case 4: TILE(s, xn, ld, p, G, 4); break;                                          \
                case 3: TILE(s, xn, ld, p, G, 3); break;                                          \
                case 2: TILE(s, xn, ld, p, G, 2); break;                                          \
                default: TILE(s, xn, ld, p, G, 1); break;                                         \
                }                                                                                 \
                for (r = 0; r < mr; r++) {                                                        \
                    float32x4_t v = vaddq_f32(vmulq_f32(vcvtq_f32_s32(vsubq_s32(s[r], zc)), ms), bv); \
                    float *yr = y + (size_t)(n + r) * O + o;                                      \
                    if (nc == 4) {                                                                \
                        vst1q_f32(yr, v);                                                         \
                    } else {                                                                      \
                        float t[4];                                                               \
                        vst1q_f32(t, v);                                                          \
                        for (c = 0; c < nc; c++) yr[c] = t[c];                                    \
                    }                                                                             \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    }

I8P_TILE(i8p_tile_neon, SMLAL_STEP, )
I8P_DRIVER(i8p_neon, i8p_tile_neon, NO_SCHED1)
I8P_TILE(i8p_tile_dot, SDOT_STEP, DOTPROD)
I8P_DRIVER(i8p_dot, i8p_tile_dot, DOTPROD NO_SCHED1)

/* ---------------------------------------------------------------- INT8 attention
 *
 * A head's K and V, quantized (sq of evrt.h) four lanes at a time straight
 * into pack_i8_arm's layout: K's rows are the channels, so each row's
 * quantized bytes go to their group in 16-byte blocks; V^T's channels are
 * V's columns, so four columns of 16 tokens are gathered (a 4-byte load a
 * token) and split by vld4q_s8 into the four channels' 16 inputs.  The
 * generic path instead stores V^T element by element (strides of T) and
 * packs byte by byte. */

/* sq on 4 lanes (evrt_qsym): NaN 0, clamp to +-127, fcvtns rounds to
 * nearest even like rintf. */
static inline int32x4_t qsym4(float32x4_t x, float32x4_t inv)
{
    float32x4_t t = vmulq_f32(x, inv);
    t = vbslq_f32(vceqq_f32(t, t), t, vdupq_n_f32(0.0f));
    t = vminq_f32(vmaxq_f32(t, vdupq_n_f32(-127.0f)), vdupq_n_f32(127.0f));
    return vcvtnq_s32_f32(t);
}

/* q[0..n) = sq(x, 1 / inv); each value also added into sum[i] (NULL: no);
 * returns their total. */
static int32_t qsym_row_arm(int8_t *q, int32_t *sum, const float *x, int n, float inv)
{
    float32x4_t vinv = vdupq_n_f32(inv);
    int32x4_t tot = vdupq_n_s32(0);
    int32_t s;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        int32x4_t v = qsym4(vld1q_f32(x + i), vinv);
        int16x4_t v16 = vmovn_s32(v);
        tot = vaddq_s32(tot, v);
        if (sum) vst1q_s32(sum + i, vaddq_s32(vld1q_s32(sum + i), v));
        vst1_lane_s32((int32_t *)(void *)(q + i), vreinterpret_s32_s8(vmovn_s16(vcombine_s16(v16, v16))), 0);
    }
    s = vaddvq_s32(tot);
    for (; i < n; i++) {
        q[i] = evrt_qsym(x[i], inv);
        s += q[i];
        if (sum) sum[i] += q[i];
    }
    return s;
}

/* att8_kv_rows of kernels.h: tokens [t0, t1) (t0 a multiple of 16, t1 one
 * too or T) into K's panels (four tokens of 16 dimensions a group) and
 * V^T's (16 tokens of four dimensions), V's rows quantized into a->vt
 * first; the range that ends at T writes the padding. */
static void att8_kv_rows_arm(struct evrt_att8 *a, const float *qkv, int T, int I, int h, int d, int t0, int t1,
                             float ik, float iv)
{
    int G = (d + 15) / 16, GT = (T + 15) / 16, u, g, q, k, c;
    int kend = t1 < T ? t1 : (T + 15) / 16 * 16, g1 = (t1 + 15) / 16;
    int8_t row[512]; /* d <= 512 (evrt_model_check) */
    int8_t *kp = a->kp, *vp = a->vp, *vq = a->vt; /* vq: V quantized, rows of d */
    memset(row, 0, sizeof row);
    for (u = t0; u < kend; u++) { /* token u: channel u % 4 of group u / 4 */
        int8_t *dst = kp + (size_t)(u / 4) * G * 64 + 16 * (u % 4);
        if (u < T)
            a->kws[u] = qsym_row_arm(row, NULL, qkv + (size_t)u * 3 * I + I + h * d, d, ik);
        else
            memset(row, 0, (size_t)d);
        for (g = 0; g < G; g++) memcpy(dst + (size_t)g * 64, row + 16 * g, 16);
    }
    memset(a->vws, 0, sizeof(int32_t) * (size_t)d);
    for (u = t0; u < t1; u++)
        qsym_row_arm(vq + (size_t)u * d, a->vws, qkv + (size_t)u * 3 * I + 2 * I + h * d, d, iv);
    for (q = 0; q < (d + 15) / 16 * 4; q++)
        for (g = t0 / 16; g < g1; g++) {
            int8_t buf[64];
            int8x16x4_t v;
            int8_t *dst = vp + ((size_t)q * GT + g) * 64;
            for (k = 0; k < 16; k++) {
                int t = 16 * g + k;
                if (t < T && 4 * q + 4 <= d)
                    memcpy(buf + 4 * k, vq + (size_t)t * d + 4 * q, 4);
                else
                    for (c = 0; c < 4; c++) buf[4 * k + c] = t < T && 4 * q + c < d ? vq[(size_t)t * d + 4 * q + c] : 0;
            }
            v = vld4q_s8(buf);
            vst1q_s8(dst, v.val[0]);
            vst1q_s8(dst + 16, v.val[1]);
            vst1q_s8(dst + 32, v.val[2]);
            vst1q_s8(dst + 48, v.val[3]);
        }
}

static void att8_kv_arm(struct evrt_att8 *a, const float *qkv, int T, int I, int h, int d, float ik, float iv)
{
    att8_kv_rows_arm(a, qkv, T, I, h, d, 0, T, ik, iv);
}

static const struct evrt_kernels neon_kernels = {
    .isa = EVRT_ISA_NEON, .name = "neon", .quant = quant_pad, .i8 = i8_neon, .f32 = f32_neon,
    .needs_wsum = 1, .f32p = f32p_neon, .pack_i8 = pack_i8_arm, .i8p = i8p_neon,
    .softmax = evrt_softmax_fast, .layernorm = evrt_layernorm_fast, .gelu = evrt_gelu_fast,
    .attention = evrt_att_rows_fast, .attention_i8 = evrt_att_i8_rows_fast, .att8_kv = att8_kv_arm,
    .att8_kv_rows = att8_kv_rows_arm,
    .seg_decode = evrt_seg_rows_fast};
static const struct evrt_kernels dot_kernels = {
    .isa = EVRT_ISA_DOTPROD, .name = "dotprod", .quant = quant_pad, .i8 = i8_dot, .f32 = f32_neon,
    .needs_wsum = 1, .f32p = f32p_neon, .pack_i8 = pack_i8_arm, .i8p = i8p_dot,
    .softmax = evrt_softmax_fast, .layernorm = evrt_layernorm_fast, .gelu = evrt_gelu_fast,
    .attention = evrt_att_rows_fast, .attention_i8 = evrt_att_i8_rows_fast, .att8_kv = att8_kv_arm,
    .att8_kv_rows = att8_kv_rows_arm,
    .seg_decode = evrt_seg_rows_fast};

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
