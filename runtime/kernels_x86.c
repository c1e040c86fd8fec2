/* kernels_x86.c: the AVX2 and AVX-512 VNNI variants of the linear kernels
 * (kernels.h).  Each function is compiled for its instruction set with a
 * target attribute and chosen at run time from CPUID
 * (__builtin_cpu_supports), so the library itself needs no -m flags and
 * builds as plain C99 elsewhere.
 *
 * INT8, AVX2: activations are quantized straight to int16 xq - zero (in
 * [-255, 255]) and weights sign-extended to int16 on load; vpmaddwd adds two
 * products (|.| <= 255 * 127 each) into an int32 lane: exact.  vpmaddubsw
 * is not used (it saturates at int16).
 *
 * INT8, VNNI: vpdpbusd multiplies unsigned by signed bytes, so activations
 * are stored as u = xq + 128 in [0, 255] and
 *   sum_i (xq - zero) w = sum_i u w - (128 + zero) sum_i w,
 * with sum_i w per channel (wsum) computed once per weight tensor.  Each
 * lane adds four products into int32 without saturation; every partial sum
 * is bounded by 255 * 127 * I < 2^31 for I <= 65536: exact.
 *
 * Tiles: MR rows by 4 output channels share loads; edge rows and channels
 * use the same per-element code (a private accumulator, the same order), so
 * the float32 results do not depend on the tile an element falls in.
 *
 * Panels (what evrt_infer uses; the kernels above remain for unpacked
 * weights): weights packed once at context create, 16 output channels
 * contiguous per input (float32), per group of 4 inputs (VNNI, vpdpbusd's
 * u8 x s8 quadruples) or per pair (AVX2, int8 pairs sign-extended for vpmaddwd).  Six
 * rows by 32 (AVX-512) or 16 (AVX2) channels in accumulators; each
 * activation (or quadruple, or pair) is broadcast: no horizontal sums, which
 * cost more than the multiply-adds at ViT widths (64 to 768 inputs).  The
 * INT8 epilogue is the _ref's expression lane-wise: (float)acc by
 * vcvtdq2ps (round to nearest, like the C conversion), then a separate
 * multiply and add. */
#define _DEFAULT_SOURCE /* syscall() */
#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && \
    (defined(__clang__) || __GNUC__ >= 8)
#define EVRT_HAVE_X86 1
#endif

#ifdef EVRT_HAVE_X86
#include <cpuid.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define INLINE_AVX2 static inline __attribute__((always_inline, target("avx2,fma")))
#define INLINE_AVX512 \
    static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))

/* y = (float)acc * (x_scale * w_scale[o]) + b[o], as evrt_linear_i8_ref. */
static float rescale(int32_t acc, float x_scale, const float *w_scale, const float *b, int o)
{
    float m = x_scale * w_scale[o];
    float v = (float)acc * m;
    return v + (b ? b[o] : 0.0f);
}

/* ---------------------------------------------------------------- AVX2 */

static size_t ld16(int I) { return (size_t)(I + 15) / 16 * 16; }

/* clamp(x * inv) with NaN -> 0, as evrt_quantize_act_ref before rounding */
INLINE_AVX2 __m256i quant8_avx2(const float *x, __m256 inv, __m256 lo, __m256 hi)
{
    __m256 t = _mm256_mul_ps(_mm256_loadu_ps(x), inv);
    t = _mm256_and_ps(t, _mm256_cmp_ps(t, t, _CMP_ORD_Q));
    t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
    /* cvtps rounds in the current mode, like rintf: ties to even */
    return _mm256_cvtps_epi32(t);
}

static int32_t quant1(float x, float inv, float lo, float hi)
{
    float t = x * inv;
    if (t != t) t = 0.0f;
    t = t < lo ? lo : t > hi ? hi : t;
    return (int32_t)rintf(t);
}

AVX2 static void quant_avx2(void *dst, const float *x, int N, int I, float scale, int32_t zero)
{
    float inv = 1.0f / scale, lo = (float)(-128 - zero), hi = (float)(127 - zero);
    __m256 vinv = _mm256_set1_ps(inv), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    size_t ld = ld16(I);
    int n, i;
    for (n = 0; n < N; n++) {
        const float *r = x + (size_t)n * I;
        int16_t *q = (int16_t *)dst + n * ld;
        for (i = 0; i + 16 <= I; i += 16) {
            __m256i a = quant8_avx2(r + i, vinv, vlo, vhi), c = quant8_avx2(r + i + 8, vinv, vlo, vhi);
            __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, c), 0xD8);
            _mm256_storeu_si256((__m256i *)(q + i), p);
        }
        for (; i < I; i++) q[i] = (int16_t)quant1(r[i], inv, lo, hi);
        for (; i < (int)ld; i++) q[i] = 0;
    }
}

INLINE_AVX2 int32_t hsum_epi32_avx2(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* acc[r][c] for MR rows of x (int16, stride ld) and NR weight rows. */
INLINE_AVX2 void i8_tile_avx2(int32_t *acc, const int16_t *x, size_t ld, const int8_t *w, int I,
                              const int MR, const int NR)
{
    __m256i a[4][4];
    int r, c, i, j;
#pragma GCC unroll 4
    for (r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (c = 0; c < NR; c++) a[r][c] = _mm256_setzero_si256();
    for (i = 0; i + 16 <= I; i += 16) {
        __m256i xv[4];
#pragma GCC unroll 4
        for (r = 0; r < MR; r++) xv[r] = _mm256_loadu_si256((const __m256i *)(x + r * ld + i));
#pragma GCC unroll 4
        for (c = 0; c < NR; c++) {
            __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + (size_t)c * I + i)));
#pragma GCC unroll 4
            for (r = 0; r < MR; r++) a[r][c] = _mm256_add_epi32(a[r][c], _mm256_madd_epi16(xv[r], wv));
        }
    }
    for (r = 0; r < MR; r++)
        for (c = 0; c < NR; c++) {
            int32_t s = hsum_epi32_avx2(a[r][c]);
            for (j = i; j < I; j++) s += (int32_t)x[r * ld + j] * w[(size_t)c * I + j];
            acc[r * 4 + c] = s;
        }
}

AVX2 static void i8_avx2(float *y, const void *xp, int32_t x_zero, float x_scale,
                         const int8_t *wq, const int32_t *wsum, const float *w_scale,
                         const float *b, int N, int I, int O, int o0, int o1)
{
    const int16_t *x = xp;
    size_t ld = ld16(I);
    int32_t acc[16];
    int n, o, r, c;
    (void)x_zero;
    (void)wsum;
    for (o = o0; o + 4 <= o1; o += 4) {
        const int8_t *w = wq + (size_t)o * I;
        for (n = 0; n + 3 <= N; n += 3) {
            i8_tile_avx2(acc, x + n * ld, ld, w, I, 3, 4);
            for (r = 0; r < 3; r++)
                for (c = 0; c < 4; c++)
                    y[(size_t)(n + r) * O + o + c] = rescale(acc[r * 4 + c], x_scale, w_scale, b, o + c);
        }
        for (; n < N; n++) {
            i8_tile_avx2(acc, x + n * ld, ld, w, I, 1, 4);
            for (c = 0; c < 4; c++) y[(size_t)n * O + o + c] = rescale(acc[c], x_scale, w_scale, b, o + c);
        }
    }
    for (; o < o1; o++)
        for (n = 0; n < N; n++) {
            i8_tile_avx2(acc, x + n * ld, ld, wq + (size_t)o * I, I, 1, 1);
            y[(size_t)n * O + o] = rescale(acc[0], x_scale, w_scale, b, o);
        }
}

INLINE_AVX2 float hsum_ps_avx2(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* dot products of MR rows of x with NR rows of w; the tail is a masked load */
INLINE_AVX2 void f32_tile_avx2(float *out, const float *x, size_t ldx, const float *w, size_t ldw,
                               int I, __m256i tail, const int MR, const int NR)
{
    __m256 a[3][4];
    int r, c, i;
#pragma GCC unroll 4
    for (r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (c = 0; c < NR; c++) a[r][c] = _mm256_setzero_ps();
    for (i = 0; i + 8 <= I; i += 8) {
        __m256 xv[3];
#pragma GCC unroll 4
        for (r = 0; r < MR; r++) xv[r] = _mm256_loadu_ps(x + r * ldx + i);
#pragma GCC unroll 4
        for (c = 0; c < NR; c++) {
            __m256 wv = _mm256_loadu_ps(w + c * ldw + i);
#pragma GCC unroll 4
            for (r = 0; r < MR; r++) a[r][c] = _mm256_fmadd_ps(xv[r], wv, a[r][c]);
        }
    }
    if (i < I) {
        __m256 xv[3];
#pragma GCC unroll 4
        for (r = 0; r < MR; r++) xv[r] = _mm256_maskload_ps(x + r * ldx + i, tail);
#pragma GCC unroll 4
        for (c = 0; c < NR; c++) {
            __m256 wv = _mm256_maskload_ps(w + c * ldw + i, tail);
#pragma GCC unroll 4
            for (r = 0; r < MR; r++) a[r][c] = _mm256_fmadd_ps(xv[r], wv, a[r][c]);
        }
    }
    for (r = 0; r < MR; r++)
        for (c = 0; c < NR; c++) out[r * 4 + c] = hsum_ps_avx2(a[r][c]);
}

AVX2 static void f32_avx2(float *y, size_t ldy, const float *x, size_t ldx, const float *w,
                          size_t ldw, const float *b, int N, int I, int o0, int o1)
{
    float acc[16];
    int n, o, r, c, rem = I % 8;
    __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (o = o0; o + 4 <= o1; o += 4) {
        for (n = 0; n + 3 <= N; n += 3) {
            f32_tile_avx2(acc, x + n * ldx, ldx, w + o * ldw, ldw, I, tail, 3, 4);
            for (r = 0; r < 3; r++)
                for (c = 0; c < 4; c++) y[(n + r) * ldy + o + c] = acc[r * 4 + c] + (b ? b[o + c] : 0.0f);
        }
        for (; n < N; n++) {
            f32_tile_avx2(acc, x + n * ldx, ldx, w + o * ldw, ldw, I, tail, 1, 4);
            for (c = 0; c < 4; c++) y[n * ldy + o + c] = acc[c] + (b ? b[o + c] : 0.0f);
        }
    }
    for (; o < o1; o++)
        for (n = 0; n < N; n++) {
            f32_tile_avx2(acc, x + n * ldx, ldx, w + o * ldw, ldw, I, tail, 1, 1);
            y[n * ldy + o] = acc[0] + (b ? b[o] : 0.0f);
        }
}

/* ---------------------------------------------------------------- AVX-512 VNNI */

static size_t ld64(int I) { return (size_t)(I + 63) / 64 * 64; }

/* AMX panels: groups of four inputs, whole tiles of 64 inputs. */
static size_t groups_amx(int I) { return ld64(I) / 4; }

/* The rounding step shared by evrt_quantize_act_ref and sq (evrt_qsym) on
 * 16 lanes: x * inv, NaN 0, clamped to [lo, hi], then vcvtps2dq rounds to
 * nearest even like rintf. */
INLINE_AVX512 __m512i quant16(__m512 x, __m512 inv, __m512 lo, __m512 hi)
{
    __m512 t = _mm512_mul_ps(x, inv);
    t = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(t, t, _CMP_ORD_Q), t);
    return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(t, lo), hi));
}

AVX512 static void quant_vnni(void *dst, const float *x, int N, int I, float scale, int32_t zero)
{
    float inv = 1.0f / scale, lo = (float)(-128 - zero), hi = (float)(127 - zero);
    __m512 vinv = _mm512_set1_ps(inv), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    __m512i off = _mm512_set1_epi32(128 + zero);
    size_t ld = ld64(I);
    int n, i;
    for (n = 0; n < N; n++) {
        const float *r = x + (size_t)n * I;
        uint8_t *q = (uint8_t *)dst + n * ld;
        for (i = 0; i < I; i += 16) {
            int k = I - i < 16 ? I - i : 16;
            __mmask16 m = (__mmask16)((1u << k) - 1u);
            __m512i u = _mm512_add_epi32(quant16(_mm512_maskz_loadu_ps(m, r + i), vinv, vlo, vhi), off);
            _mm_storeu_si128((__m128i *)(q + i), _mm512_maskz_cvtepi32_epi8(m, u));
        }
        for (i = I; i < (int)ld; i++) q[i] = 0;
    }
}

INLINE_AVX512 void i8_tile_vnni(int32_t *acc, const uint8_t *x, size_t ld, const int8_t *w, int I,
                                const int MR, const int NR)
{
    __m512i a[4][4];
    int r, c, i;
#pragma GCC unroll 4
    for (r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (c = 0; c < NR; c++) a[r][c] = _mm512_setzero_si512();
    for (i = 0; i < I; i += 64) {
        __mmask64 m = I - i >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (I - i)) - 1);
        __m512i xv[4];
#pragma GCC unroll 4
        for (r = 0; r < MR; r++) xv[r] = _mm512_loadu_si512((const void *)(x + r * ld + i));
#pragma GCC unroll 4
        for (c = 0; c < NR; c++) {
            __m512i wv = _mm512_maskz_loadu_epi8(m, w + (size_t)c * I + i);
#pragma GCC unroll 4
            for (r = 0; r < MR; r++) a[r][c] = _mm512_dpbusd_epi32(a[r][c], xv[r], wv);
        }
    }
    for (r = 0; r < MR; r++)
        for (c = 0; c < NR; c++) acc[r * 4 + c] = _mm512_reduce_add_epi32(a[r][c]);
}

AVX512 static void i8_vnni(float *y, const void *xp, int32_t x_zero, float x_scale,
                           const int8_t *wq, const int32_t *wsum, const float *w_scale,
                           const float *b, int N, int I, int O, int o0, int o1)
{
    const uint8_t *x = xp;
    size_t ld = ld64(I);
    int64_t off = 128 + (int64_t)x_zero;
    int32_t acc[16];
    int n, o, r, c;
#define VNNI_Y(n_, o_, a_) \
    y[(size_t)(n_) * O + (o_)] = rescale((int32_t)((int64_t)(a_) - off * wsum[o_]), x_scale, w_scale, b, (o_))
    for (o = o0; o + 4 <= o1; o += 4) {
        const int8_t *w = wq + (size_t)o * I;
        for (n = 0; n + 4 <= N; n += 4) {
            i8_tile_vnni(acc, x + n * ld, ld, w, I, 4, 4);
            for (r = 0; r < 4; r++)
                for (c = 0; c < 4; c++) VNNI_Y(n + r, o + c, acc[r * 4 + c]);
        }
        for (; n < N; n++) {
            i8_tile_vnni(acc, x + n * ld, ld, w, I, 1, 4);
            for (c = 0; c < 4; c++) VNNI_Y(n, o + c, acc[c]);
        }
    }
    for (; o < o1; o++)
        for (n = 0; n < N; n++) {
            i8_tile_vnni(acc, x + n * ld, ld, wq + (size_t)o * I, I, 1, 1);
            VNNI_Y(n, o, acc[0]);
        }
#undef VNNI_Y
}

INLINE_AVX512 void f32_tile_512(float *out, const float *x, size_t ldx, const float *w, size_t ldw,
                                int I, const int MR, const int NR)
{
    __m512 a[4][4];
    int r, c, i;
#pragma GCC unroll 4
    for (r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (c = 0; c < NR; c++) a[r][c] = _mm512_setzero_ps();
    for (i = 0; i < I; i += 16) {
        __mmask16 m = I - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (I - i)) - 1u);
        __m512 xv[4];
#pragma GCC unroll 4
        for (r = 0; r < MR; r++) xv[r] = _mm512_maskz_loadu_ps(m, x + r * ldx + i);
#pragma GCC unroll 4
        for (c = 0; c < NR; c++) {
            __m512 wv = _mm512_maskz_loadu_ps(m, w + c * ldw + i);
#pragma GCC unroll 4
            for (r = 0; r < MR; r++) a[r][c] = _mm512_fmadd_ps(xv[r], wv, a[r][c]);
        }
    }
    for (r = 0; r < MR; r++)
        for (c = 0; c < NR; c++) out[r * 4 + c] = _mm512_reduce_add_ps(a[r][c]);
}

AVX512 static void f32_512(float *y, size_t ldy, const float *x, size_t ldx, const float *w,
                           size_t ldw, const float *b, int N, int I, int o0, int o1)
{
    float acc[16];
    int n, o, r, c;
    for (o = o0; o + 4 <= o1; o += 4) {
        for (n = 0; n + 4 <= N; n += 4) {
            f32_tile_512(acc, x + n * ldx, ldx, w + o * ldw, ldw, I, 4, 4);
            for (r = 0; r < 4; r++)
                for (c = 0; c < 4; c++) y[(n + r) * ldy + o + c] = acc[r * 4 + c] + (b ? b[o + c] : 0.0f);
        }
        for (; n < N; n++) {
            f32_tile_512(acc, x + n * ldx, ldx, w + o * ldw, ldw, I, 1, 4);
            for (c = 0; c < 4; c++) y[n * ldy + o + c] = acc[c] + (b ? b[o + c] : 0.0f);
        }
    }
    for (; o < o1; o++)
        for (n = 0; n < N; n++) {
            f32_tile_512(acc, x + n * ldx, ldx, w + o * ldw, ldw, I, 1, 1);
            y[n * ldy + o] = acc[0] + (b ? b[o] : 0.0f);
        }
}

/* ---------------------------------------------------------------- panels */

/* Panel kernels (kernels.h): rows of x in register tiles, 16 output
 * channels per vector (AVX-512) or per pair of vectors (AVX2); each
 * activation is broadcast and multiply-added into the accumulators. */

static int imin_(int a, int b) { return a < b ? a : b; }

/* AVX-512 float32: MR rows by NB (1 or 2) panels of 16. */
INLINE_AVX512 void f32p_tile_512(float *y, size_t ldy, const float *x, size_t ldx, const float *p0,
                                 const float *p1, size_t ldb, const float *b, int K, __mmask16 m0,
                                 __mmask16 m1, const int MR, const int NB)
{
    __m512 a[6][2];
    int r, k;
#pragma GCC unroll 6
    for (r = 0; r < MR; r++) {
        a[r][0] = _mm512_setzero_ps();
        a[r][1] = _mm512_setzero_ps();
    }
    for (k = 0; k < K; k++) {
        __m512 w0 = _mm512_maskz_loadu_ps(m0, p0 + (size_t)k * ldb), w1 = w0;
        if (NB == 2) w1 = _mm512_maskz_loadu_ps(m1, p1 + (size_t)k * ldb);
#pragma GCC unroll 6
        for (r = 0; r < MR; r++) {
            __m512 xb = _mm512_set1_ps(x[(size_t)r * ldx + k]);
            a[r][0] = _mm512_fmadd_ps(xb, w0, a[r][0]);
            if (NB == 2) a[r][1] = _mm512_fmadd_ps(xb, w1, a[r][1]);
        }
    }
#pragma GCC unroll 6
    for (r = 0; r < MR; r++) {
        __m512 v0 = a[r][0], v1 = a[r][1];
        if (b) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, b));
            if (NB == 2) v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, b + 16));
        }
        _mm512_mask_storeu_ps(y + (size_t)r * ldy, m0, v0);
        if (NB == 2) _mm512_mask_storeu_ps(y + (size_t)r * ldy + 16, m1, v1);
    }
}

static __mmask16 mask16(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u); }

#define ROWS_SWITCH(TILE, MRMAX, ...)                                   \
    do {                                                                \
        int n_;                                                         \
        for (n_ = 0; n_ + MRMAX <= N; n_ += MRMAX) TILE(n_, MRMAX, __VA_ARGS__); \
        switch (N - n_) {                                               \
        case 5: TILE(n_, 5, __VA_ARGS__); break;                        \
        case 4: TILE(n_, 4, __VA_ARGS__); break;                        \
        case 3: TILE(n_, 3, __VA_ARGS__); break;                        \
        case 2: TILE(n_, 2, __VA_ARGS__); break;                        \
        case 1: TILE(n_, 1, __VA_ARGS__); break;                        \
        default: break;                                                 \
        }                                                               \
    } while (0)

AVX512 static void f32p_512(float *y, size_t ldy, const float *x, size_t ldx, const float *bm,
                            size_t ldb, size_t pstride, const float *b, int N, int K, int o0, int o1)
{
    int o;
    for (o = o0; o < o1; o += 32) {
        const float *p0 = bm + (size_t)(o / 16) * pstride, *p1 = p0 + pstride;
        const float *bo = b ? b + o : NULL;
        __mmask16 m0 = mask16(o1 - o), m1 = mask16(o1 - o - 16);
#define T512(n, MR, NB) \
    f32p_tile_512(y + (size_t)(n) * ldy + o, ldy, x + (size_t)(n) * ldx, ldx, p0, p1, ldb, bo, K, m0, m1, MR, NB)
        if (m1)
            ROWS_SWITCH(T512, 6, 2);
        else
            ROWS_SWITCH(T512, 6, 1);
#undef T512
    }
}

/* Int8 panels: panel j (outputs 16j..16j+15) holds G groups of K inputs,
 * 16 K bytes each: output c's K weights at K c..K c + K-1; zero past O
 * and I. */
static void pack_i8_panels(int8_t *p, const int8_t *wq, int O, int I, int G, int K)
{
    int j, g, c, k;
    for (j = 0; j < (O + 15) / 16; j++)
        for (g = 0; g < G; g++)
            for (c = 0; c < 16; c++)
                for (k = 0; k < K; k++) {
                    int o = 16 * j + c, i = K * g + k;
                    *p++ = o < O && i < I ? wq[(size_t)o * I + i] : 0;
                }
}

/* VNNI: groups of 4 inputs, 64 bytes (vpdpbusd's layout). */
static void pack_i8_vnni(void *dst, const int8_t *wq, int O, int I)
{
    pack_i8_panels(dst, wq, O, I, (I + 3) / 4, 4);
}

/* The INT8 epilogue of the 32 channels [o, o + 32) (two halves of 16; a
 * half past o1 is masked off): acc - (128 + zero) wsum wraps mod 2^32 to
 * the exact int32 sum; then the _ref's (float)acc * (x_scale * w_scale) +
 * b, unfused. */
struct epi512 {
    __m512 ms[2], b[2];
    __m512i c[2];
    __mmask16 m[2];
};

INLINE_AVX512 struct epi512 epi512_make(int32_t x_zero, float x_scale, const int32_t *wsum, const float *w_scale,
                                        const float *b, int o, int o1)
{
    struct epi512 e;
    int h;
    for (h = 0; h < 2; h++) {
        int c = o + 16 * h;
        e.m[h] = mask16(o1 - c);
        e.ms[h] = _mm512_mul_ps(_mm512_set1_ps(x_scale), _mm512_maskz_loadu_ps(e.m[h], w_scale + c));
        e.b[h] = b ? _mm512_maskz_loadu_ps(e.m[h], b + c) : _mm512_setzero_ps();
        e.c[h] = _mm512_mullo_epi32(_mm512_set1_epi32(128 + x_zero), _mm512_maskz_loadu_epi32(e.m[h], wsum + c));
    }
    return e;
}

/* y[16 h .. 16 h + 16) from the sums acc of half h. */
INLINE_AVX512 void epi512_store(float *y, __m512i acc, const struct epi512 *e, const int h)
{
    __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, e->c[h]));
    _mm512_mask_storeu_ps(y + 16 * h, e->m[h], _mm512_add_ps(_mm512_mul_ps(v, e->ms[h]), e->b[h]));
}

INLINE_AVX512 void i8p_tile_vnni(float *y, size_t O, const uint8_t *x, size_t ld, const int8_t *p0,
                                 const int8_t *p1, int G, const struct epi512 *e, const int MR, const int NB)
{
    __m512i a[6][2];
    int r, g;
#pragma GCC unroll 6
    for (r = 0; r < MR; r++) {
        a[r][0] = _mm512_setzero_si512();
        a[r][1] = _mm512_setzero_si512();
    }
    for (g = 0; g < G; g++) {
        __m512i w0 = _mm512_loadu_si512((const void *)(p0 + (size_t)g * 64)), w1 = w0;
        if (NB == 2) w1 = _mm512_loadu_si512((const void *)(p1 + (size_t)g * 64));
#pragma GCC unroll 6
        for (r = 0; r < MR; r++) {
            int32_t q;
            __m512i xb;
            memcpy(&q, x + (size_t)r * ld + 4 * g, 4);
            xb = _mm512_set1_epi32(q);
            a[r][0] = _mm512_dpbusd_epi32(a[r][0], xb, w0);
            if (NB == 2) a[r][1] = _mm512_dpbusd_epi32(a[r][1], xb, w1);
        }
    }
#pragma GCC unroll 6
    for (r = 0; r < MR; r++) {
        epi512_store(y + (size_t)r * O, a[r][0], e, 0);
        if (NB == 2) epi512_store(y + (size_t)r * O, a[r][1], e, 1);
    }
}

/* Rows [n, N) of the 32 channels of panels p0, p1 (G groups each) on VNNI
 * tiles of up to six rows; y and x at row 0. */
AVX512 static void vnni_rows(float *y, size_t O, const uint8_t *x, size_t ld, const int8_t *p0, const int8_t *p1,
                             int G, const struct epi512 *e, int n, int N)
{
#define TV(MR, NB) i8p_tile_vnni(y + (size_t)n * O, O, x + (size_t)n * ld, ld, p0, p1, G, e, MR, NB)
#define ROWS(NB)                                  \
    do {                                          \
        for (; n + 6 <= N; n += 6) TV(6, NB);     \
        switch (N - n) {                          \
        case 5: TV(5, NB); break;                 \
        case 4: TV(4, NB); break;                 \
        case 3: TV(3, NB); break;                 \
        case 2: TV(2, NB); break;                 \
        case 1: TV(1, NB); break;                 \
        default: break;                           \
        }                                         \
    } while (0)
    if (e->m[1])
        ROWS(2);
    else
        ROWS(1);
#undef ROWS
#undef TV
}

AVX512 static void i8p_vnni(float *y, const void *xp, int32_t x_zero, float x_scale, const void *wp,
                            const int32_t *wsum, const float *w_scale, const float *b, int N, int I,
                            int O, int o0, int o1)
{
    const uint8_t *x = xp;
    size_t ld = ld64(I);
    int G = (I + 3) / 4, o;
    size_t ps = (size_t)G * 64;
    for (o = o0; o < o1; o += 32) {
        const int8_t *p0 = (const int8_t *)wp + (size_t)(o / 16) * ps, *p1 = p0 + ps;
        struct epi512 e = epi512_make(x_zero, x_scale, wsum, w_scale, b, o, o1);
        vnni_rows(y + o, (size_t)O, x, ld, p0, p1, G, &e, 0, N);
    }
}

/* ---- INT8 attention, VNNI (evrt.h's specification, bit for bit) ----
 *
 * The generic evrt_att_i8_rows_fast quantizes K and V^T element by element
 * (V^T's stores stride by T), packs them byte by byte and round-trips
 * every intermediate through float rows.  Here each step works on vectors
 * and writes the layout its consumer reads: K's rows are quantized and
 * stored straight into the int8 panels (one dword per group of four
 * dimensions; VNNI's, or AMX's padded to whole tiles), V's rows four tokens
 * at a time and transposed 4 x 16 bytes into V^T's panels, q's rows and
 * the probabilities P straight into the u = x + 128 rows the products
 * read.  Every float operation is the
 * _ref's, lane by lane, in the same order (no fused multiply-add). */

/* sq(x, s) of evrt.h on 16 lanes (evrt_qsym): quant16 to [-127, 127]. */
INLINE_AVX512 __m512i qsym16(__m512 x, __m512 inv)
{
    return quant16(x, inv, _mm512_set1_ps(-127.0f), _mm512_set1_ps(127.0f));
}

/* One row of n floats quantized by qsym16 into int8 q (zero up to a
 * multiple of 16); the int32 lanes are added into sum (16 per chunk of 16
 * floats: sum[i] gets element i of each chunk; NULL: none) and their
 * total is returned. */
INLINE_AVX512 int32_t qsym_row(int8_t *q, int32_t *sum, const float *x, int n, __m512 inv)
{
    __m512i tot = _mm512_setzero_si512();
    int i;
    for (i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512i v = _mm512_maskz_mov_epi32(m, qsym16(_mm512_maskz_loadu_ps(m, x + i), inv));
        tot = _mm512_add_epi32(tot, v);
        if (sum) _mm512_mask_storeu_epi32(sum + i, m, _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, sum + i), v));
        _mm_storeu_si128((__m128i *)(void *)(q + i), _mm512_cvtepi32_epi8(v));
    }
    return _mm512_reduce_add_epi32(tot);
}


/* a b + c: rounded twice when exact, else fused */
INLINE_AVX512 __m512 madd512(__m512 a, __m512 b, __m512 c, const int exact)
{
    return exact ? _mm512_add_ps(_mm512_mul_ps(a, b), c) : _mm512_fmadd_ps(a, b, c);
}

/* exp_neg of kernels.c on 16 lanes (NaN and x < -87.3 give exp(-87.3)):
 * the same range reduction and polynomial.  exact: every operation the C
 * code's, in its order, none fused (INT8 attention's softmax, specified to
 * the bit); else the polynomial's steps fused (the float softmax,
 * tolerance-checked). */
INLINE_AVX512 __m512 exp_neg_512(__m512 x, const int exact)
{
    const __m512 zero = _mm512_setzero_ps(), lo = _mm512_set1_ps(-87.3f), big = _mm512_set1_ps(12582912.0f);
    __m512 v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, zero, _CMP_LE_OQ), zero, x);
    __m512 k, f, p, e;
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ), lo, v);
    k = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(1.44269504088896341f)), big), big);
    f = _mm512_sub_ps(v, _mm512_mul_ps(k, _mm512_set1_ps(0.693359375f)));
    f = _mm512_sub_ps(f, _mm512_mul_ps(k, _mm512_set1_ps(-2.12194440e-4f)));
    p = _mm512_set1_ps(1.9875691500e-4f);
    p = madd512(p, f, _mm512_set1_ps(1.3981999507e-3f), exact);
    p = madd512(p, f, _mm512_set1_ps(8.3334519073e-3f), exact);
    p = madd512(p, f, _mm512_set1_ps(4.1665795894e-2f), exact);
    p = madd512(p, f, _mm512_set1_ps(1.6666665459e-1f), exact);
    p = madd512(p, f, _mm512_set1_ps(5.0000001201e-1f), exact);
    e = _mm512_add_ps(madd512(p, _mm512_mul_ps(f, f), f, exact), _mm512_set1_ps(1.0f));
    /* k is integral: either conversion gives it exactly */
    return _mm512_mul_ps(e, _mm512_castsi512_ps(_mm512_slli_epi32(
                                _mm512_add_epi32(_mm512_cvttps_epi32(k), _mm512_set1_epi32(127)), 23)));
}

/* evrt_softmax_i8 on R rows of S (rows of T) followed by quant_vnni's
 * u = P + 128 into xq (rows of ld, zero padded).  The rows go through
 * each pass together: one row's passes depend on each other (max, then
 * exp and sum, then the division), so a row alone leaves the vector units
 * waiting on latency.  E = rint(exp * 2^15) is kept in S in place of the
 * score it came from. */
INLINE_AVX512 void softmax_i8_rows(uint8_t *xq, size_t ld, float *S, int T, __m512 vc, float p_scale,
                                   const float *bias, const int R)
{
    const __m512 s15 = _mm512_set1_ps(32768.0f), top = _mm512_set1_ps(127.0f);
    __m512i vmx[4], vsum[4];
    __m512 r[4];
    int u, k;
#pragma GCC unroll 4
    for (k = 0; k < R; k++) {
        vmx[k] = _mm512_set1_epi32(INT32_MIN);
        vsum[k] = _mm512_setzero_si512();
    }
    for (u = 0; u < T; u += 16) {
        __mmask16 m = mask16(T - u);
#pragma GCC unroll 4
        for (k = 0; k < R; k++)
            vmx[k] = _mm512_mask_max_epi32(vmx[k], m, vmx[k],
                                           _mm512_cvttps_epi32(_mm512_maskz_loadu_ps(m, S + (size_t)k * T + u)));
    }
#pragma GCC unroll 4
    for (k = 0; k < R; k++) vmx[k] = _mm512_set1_epi32(_mm512_reduce_max_epi32(vmx[k]));
    if (bias) {
        /* proportional attention: t = (a - max a) c + b in S, then
         * exp(t - max t) below (the _ref's operations, none fused) */
        __m512 vtm[4];
#pragma GCC unroll 4
        for (k = 0; k < R; k++) vtm[k] = _mm512_set1_ps(-INFINITY);
        for (u = 0; u < T; u += 16) {
            __mmask16 m = mask16(T - u);
            __m512 b = _mm512_maskz_loadu_ps(m, bias + u);
#pragma GCC unroll 4
            for (k = 0; k < R; k++) {
                float *s = S + (size_t)k * T + u;
                __m512i a = _mm512_cvttps_epi32(_mm512_maskz_loadu_ps(m, s));
                __m512 t = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(a, vmx[k])), vc), b);
                vtm[k] = _mm512_mask_max_ps(vtm[k], m, vtm[k], t);
                _mm512_mask_storeu_ps(s, m, t);
            }
        }
#pragma GCC unroll 4
        for (k = 0; k < R; k++) vtm[k] = _mm512_set1_ps(_mm512_reduce_max_ps(vtm[k]));
        for (u = 0; u < T; u += 16) {
            __mmask16 m = mask16(T - u);
#pragma GCC unroll 4
            for (k = 0; k < R; k++) {
                float *s = S + (size_t)k * T + u;
                __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, s), vtm[k]);
                __m512 e = _mm512_roundscale_ps(_mm512_mul_ps(exp_neg_512(x, 1), s15),
                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                __m512i ei = _mm512_maskz_mov_epi32(m, _mm512_cvttps_epi32(e));
                vsum[k] = _mm512_add_epi32(vsum[k], ei);
                _mm512_mask_storeu_epi32(s, m, ei);
            }
        }
    }
    for (u = 0; u < T && !bias; u += 16) {
        __mmask16 m = mask16(T - u);
#pragma GCC unroll 4
        for (k = 0; k < R; k++) {
            float *s = S + (size_t)k * T + u;
            __m512i a = _mm512_cvttps_epi32(_mm512_maskz_loadu_ps(m, s));
            __m512 x = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(a, vmx[k])), vc);
            __m512 e = _mm512_roundscale_ps(_mm512_mul_ps(exp_neg_512(x, 1), s15),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            __m512i ei = _mm512_maskz_mov_epi32(m, _mm512_cvttps_epi32(e));
            vsum[k] = _mm512_add_epi32(vsum[k], ei);
            _mm512_mask_storeu_epi32(s, m, ei);
        }
    }
#pragma GCC unroll 4
    for (k = 0; k < R; k++) r[k] = _mm512_set1_ps(1.0f / ((float)_mm512_reduce_add_epi32(vsum[k]) * p_scale));
    for (u = 0; u < T; u += 16) {
        __mmask16 m = mask16(T - u);
#pragma GCC unroll 4
        for (k = 0; k < R; k++) {
            __m512i ei = _mm512_maskz_loadu_epi32(m, S + (size_t)k * T + u);
            __m512 p = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(ei), r[k]),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            /* p < 127 ? p : 127 (NaN: 127); vminps returns its second operand on NaN */
            __m512i pi = _mm512_add_epi32(_mm512_cvttps_epi32(_mm512_min_ps(p, top)), _mm512_set1_epi32(128));
            _mm_storeu_si128((__m128i *)(void *)(xq + (size_t)k * ld + u), _mm512_maskz_cvtepi32_epi8(m, pi));
        }
    }
#pragma GCC unroll 4
    for (k = 0; k < R; k++)
        for (u = (T + 15) / 16 * 16; u < (int)ld; u++) xq[(size_t)k * ld + u] = 0;
}

/* softmax_i8_rows on the n rows of S, four at a time (the last few one by
 * one: the code of every row count would grow the library). */
AVX512 static void softmax_i8_vnni(uint8_t *xq, float *S, int n, int T, float c, float p_scale,
                                   const float *bias)
{
    size_t ld = ld64(T);
    __m512 vc = _mm512_set1_ps(c);
    int t;
    for (t = 0; t + 4 <= n; t += 4)
        softmax_i8_rows(xq + t * ld, ld, S + (size_t)t * T, T, vc, p_scale, bias, 4);
    for (; t < n; t++) softmax_i8_rows(xq + t * ld, ld, S + (size_t)t * T, T, vc, p_scale, bias, 1);
}

/* The head's K and V rows are d floats each, 3 I floats apart: too far
 * apart for the hardware prefetcher, so each is fetched PF_ROWS rows
 * ahead (at 2 threads, deit-tiny INT8 + INT8 attention about 2 % faster
 * on an AMD EPYC VM, where half of a head's rows were the other core's). */
#define PF_ROWS 8
static inline void prefetch_row(const float *x, int n)
{
    int i;
    for (i = 0; i < n; i += 16) __builtin_prefetch(x + i, 0, 3);
}

/* Tokens [t0, t1) of the head's K and V quantized and packed as the
 * variant's i8p weights with their sums: K as T channels of d inputs, V^T
 * as d channels of T inputs, panels of gk and gv groups of four inputs
 * (VNNI: the inputs rounded up to 4; AMX: to whole tiles of 64), padding
 * zero (written with the range that ends at T); kws[t0, t1) and
 * vsum (d) = the range's sum of each dimension of V.  t0 is a multiple
 * of 16 and t1 one too or T: a range fills whole K panels and V groups. */
AVX512 static void att_i8_kv_x86(struct evrt_att8 *a, const float *qkv, int T, int I, int h, int d, int t0,
                                 int t1, float ik, float iv, int gk, int gv, int32_t *vsum)
{
    int u, g, j, r;
    int kend = t1 < T ? t1 : (T + 15) / 16 * 16, gend = t1 < T ? t1 / 4 : gv;
    size_t ps = (size_t)gv * 64;
    __m512 vik = _mm512_set1_ps(ik), viv = _mm512_set1_ps(iv);
    /* four rows of d rounded up to 64, zero padded (INT8 attention allows
     * d <= 512: evrt_model_check) */
    int8_t row[4 * 512];
    size_t ldr = ld64(d);
    int8_t *kp = a->kp, *vp = a->vp;
    memset(row, 0, 4 * ldr);
    for (u = t0; u < kend; u++) {
        int8_t *dst = kp + (size_t)(u / 16) * gk * 64 + (u % 16) * 4;
        if (u + PF_ROWS < T) prefetch_row(qkv + (size_t)(u + PF_ROWS) * 3 * I + I + h * d, d);
        if (u < T)
            a->kws[u] = qsym_row(row, NULL, qkv + (size_t)u * 3 * I + I + h * d, d, vik);
        else
            memset(row, 0, ldr);
        for (g = 0; g < gk; g++) memcpy(dst + (size_t)g * 64, row + 4 * g, 4);
    }
    memset(vsum, 0, sizeof(int32_t) * (size_t)d);
    for (g = t0 / 4; g < gend; g++) {
        for (r = 0; r < 4; r++) {
            u = 4 * g + r;
            if (u + PF_ROWS < T) prefetch_row(qkv + (size_t)(u + PF_ROWS) * 3 * I + 2 * I + h * d, d);
            if (u < T)
                qsym_row(row + r * ldr, vsum, qkv + (size_t)u * 3 * I + 2 * I + h * d, d, viv);
            else
                memset(row + r * ldr, 0, ldr);
        }
        for (j = 0; j < (d + 15) / 16; j++) {
            /* bytes c*4 + k of the 64 = row k, dimension 16 j + c */
            __m128i r0 = _mm_loadu_si128((const __m128i *)(const void *)(row + 16 * j));
            __m128i r1 = _mm_loadu_si128((const __m128i *)(const void *)(row + ldr + 16 * j));
            __m128i r2 = _mm_loadu_si128((const __m128i *)(const void *)(row + 2 * ldr + 16 * j));
            __m128i r3 = _mm_loadu_si128((const __m128i *)(const void *)(row + 3 * ldr + 16 * j));
            __m128i t0_ = _mm_unpacklo_epi8(r0, r1), t1_ = _mm_unpackhi_epi8(r0, r1);
            __m128i t2_ = _mm_unpacklo_epi8(r2, r3), t3_ = _mm_unpackhi_epi8(r2, r3);
            __m128i *dst = (__m128i *)(void *)(vp + (size_t)j * ps + (size_t)g * 64);
            _mm_storeu_si128(dst, _mm_unpacklo_epi16(t0_, t2_));
            _mm_storeu_si128(dst + 1, _mm_unpackhi_epi16(t0_, t2_));
            _mm_storeu_si128(dst + 2, _mm_unpacklo_epi16(t1_, t3_));
            _mm_storeu_si128(dst + 3, _mm_unpackhi_epi16(t1_, t3_));
        }
    }
}

/* AMX takes whole tiles of 64 inputs: q K^T pads d to them, P V pads T;
 * where the padding would cost more than the tiles save (d not a multiple
 * of 64, T below 128: fm-tiny's 16 and 50), VNNI tiles on the unpadded
 * layout.  The groups of K's and V^T's panels, for att_i8_kv_x86. */
static int kv_amx_k(int amx, int d) { return amx && d % 64 == 0; }
static int kv_amx_v(int amx, int T) { return amx && T >= 128; }
static int kv_gk(int amx, int d) { return kv_amx_k(amx, d) ? (int)groups_amx(d) : (d + 3) / 4; }
static int kv_gv(int amx, int T) { return kv_amx_v(amx, T) ? (int)groups_amx(T) : (T + 3) / 4; }

/* att8_kv_rows of kernels.h, VNNI's layout and AMX's */
static void att8_kv_rows_vnni(struct evrt_att8 *a, const float *qkv, int T, int I, int h, int d, int t0, int t1,
                              float ik, float iv)
{
    att_i8_kv_x86(a, qkv, T, I, h, d, t0, t1, ik, iv, kv_gk(0, d), kv_gv(0, T), a->vws);
}

static void att8_kv_rows_amx(struct evrt_att8 *a, const float *qkv, int T, int I, int h, int d, int t0, int t1,
                             float ik, float iv)
{
    att_i8_kv_x86(a, qkv, T, I, h, d, t0, t1, ik, iv, kv_gk(1, d), kv_gv(1, T), a->vws);
}

/* evrt_att8_fn: one item of queries [q0, q0 + nr) of head h, on k's i8p
 * (VNNI or AMX). */
AVX512 static void att_i8_rows_x86(const struct evrt_kernels *k, float *out, size_t ldo, struct evrt_att8 *a,
                                    const float *qkv, const float *bias, int T, int I, int h, int d, int q0,
                                    int nr, int fresh, const float *scales)
{
    size_t ld = ld64(d);
    __m512 iq = _mm512_set1_ps(1.0f / scales[0]);
    __m512i off = _mm512_set1_epi32(128);
    uint8_t *xq = a->xq;
    int u, i, r, amx = k->isa == EVRT_ISA_AMX;
    evrt_i8p_fn qk = kv_amx_k(amx, d) ? k->i8p : i8p_vnni, pv = kv_amx_v(amx, T) ? k->i8p : i8p_vnni;
    if (fresh) {
        att_i8_kv_x86(a, qkv, T, I, h, d, 0, T, 1.0f / scales[1], 1.0f / scales[2], kv_gk(amx, d), kv_gv(amx, T),
                      a->vws);
        for (u = 0; u < T; u++) a->ones[u] = 1.0f;
        for (i = 0; i < d; i++) a->vs[i] = scales[2];
    }
    for (r = 0; r < nr; r++) {
        const float *x = qkv + (size_t)(q0 + r) * 3 * I + h * d;
        uint8_t *q = xq + (size_t)r * ld;
        for (i = 0; i < d; i += 16) {
            __mmask16 m = mask16(d - i);
            __m512i v = _mm512_add_epi32(qsym16(_mm512_maskz_loadu_ps(m, x + i), iq), off);
            _mm_storeu_si128((__m128i *)(void *)(q + i), _mm512_maskz_cvtepi32_epi8(m, v));
        }
        for (i = (d + 15) / 16 * 16; i < (int)ld; i++) q[i] = 0;
    }
    qk(a->S, xq, 0, 1.0f, a->kp, a->kws, a->ones, NULL, nr, d, T, 0, T);
    softmax_i8_vnni(xq, a->S, nr, T, (scales[0] * scales[1]) / sqrtf((float)d), scales[3], bias);
    pv(a->os, xq, 0, scales[3], a->vp, a->vws, a->vs, NULL, nr, T, d, 0, d);
    for (r = 0; r < nr; r++) memcpy(out + (size_t)r * ldo, a->os + (size_t)r * d, sizeof(float) * (size_t)d);
}

/* ---------------------------------------------------------------- AMX
 *
 * Intel AMX (Sapphire Rapids and later): TDPBUSD multiplies a 16 x 64 tile
 * of u8 activations by a 16 x 64 tile of s8 quadruples into a 16 x 16 tile
 * of int32 sums, sixteen times the work of one vpdpbusd.  Its B operand is
 * the VNNI panel layout (row g: 16 channels x four inputs), so the weights
 * are the VNNI panels with the groups padded to a multiple of 16 (whole
 * 64-input tiles); activations are quant_vnni's u = xq + 128 rows, already
 * padded to 64 bytes.  Sums are exact in any order, and the epilogue is
 * the VNNI one: the results equal the _ref bit for bit.  Blocks of 32 rows
 * by 32 channels use all eight tiles (four sums, two activation tiles, two
 * weight tiles); rows after the last multiple of 16 run on the VNNI tile.
 * Linux gives a process the tile state only on request (arch_prctl
 * ARCH_REQ_XCOMP_PERM): the variant is available when that succeeds. */

#define AMX __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define INLINE_AMX \
    static inline __attribute__((always_inline, target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))


/* The VNNI panels with groups_amx(I) groups each. */
static void pack_i8_amx(void *dst, const int8_t *wq, int O, int I)
{
    pack_i8_panels(dst, wq, O, I, (int)groups_amx(I), 4);
}

/* The tile configuration: palette 1, tiles 0-7 all 16 rows of 64 bytes. */
struct amx_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* Sums of MR blocks of 16 rows (x, rows of ld) by NB panels (p0, p1) over
 * KC tiles of 64 inputs into cb: tile rb * 2 + nb at cb + (rb * 2 + nb) * 256. */
INLINE_AMX void amx_block(int32_t *cb, const uint8_t *x, size_t ld, const int8_t *p0, const int8_t *p1,
                          int KC, const int MR, const int NB)
{
    int kc;
    _tile_zero(0);
    if (NB == 2) _tile_zero(1);
    if (MR == 2) _tile_zero(2);
    if (MR == 2 && NB == 2) _tile_zero(3);
    for (kc = 0; kc < KC; kc++) {
        _tile_loadd(4, x + (size_t)kc * 64, ld);
        _tile_loadd(6, p0 + (size_t)kc * 1024, 64);
        _tile_dpbusd(0, 4, 6);
        if (NB == 2) {
            _tile_loadd(7, p1 + (size_t)kc * 1024, 64);
            _tile_dpbusd(1, 4, 7);
        }
        if (MR == 2) {
            _tile_loadd(5, x + 16 * ld + (size_t)kc * 64, ld);
            _tile_dpbusd(2, 5, 6);
            if (NB == 2) _tile_dpbusd(3, 5, 7);
        }
    }
    _tile_stored(0, cb, 64);
    if (NB == 2) _tile_stored(1, cb + 256, 64);
    if (MR == 2) _tile_stored(2, cb + 512, 64);
    if (MR == 2 && NB == 2) _tile_stored(3, cb + 768, 64);
}

/* The VNNI epilogue on the sums of amx_block: MR * 16 rows of y. */
INLINE_AMX void amx_epilogue(float *y, size_t O, const int32_t *cb, const struct epi512 *e, const int MR,
                             const int NB)
{
    int r;
    for (r = 0; r < 16 * MR; r++) {
        const int32_t *s = cb + (r / 16) * 512 + (r % 16) * 16;
        epi512_store(y + (size_t)r * O, _mm512_load_si512((const void *)s), e, 0);
        if (NB == 2) epi512_store(y + (size_t)r * O, _mm512_load_si512((const void *)(s + 256)), e, 1);
    }
}

AMX static void i8p_amx(float *y, const void *xp, int32_t x_zero, float x_scale, const void *wp,
                        const int32_t *wsum, const float *w_scale, const float *b, int N, int I, int O,
                        int o0, int o1)
{
    const uint8_t *x = xp;
    size_t ld = ld64(I), ps = groups_amx(I) * 64;
    /* below 32 rows the tile set-up (configure, release) costs about what
     * the tiles save: VNNI tiles then */
    int KC = (int)(ld / 64), N16 = N >= 32 ? N / 16 * 16 : 0, G = (int)groups_amx(I), o, n;
    int32_t cb[4 * 256] __attribute__((aligned(64)));
    if (N16) {
        struct amx_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.palette = 1;
        for (n = 0; n < 8; n++) {
            cfg.rows[n] = 16;
            cfg.colsb[n] = 64;
        }
        _tile_loadconfig(&cfg);
    }
    for (o = o0; o < o1; o += 32) {
        const int8_t *p0 = (const int8_t *)wp + (size_t)(o / 16) * ps, *p1 = p0 + ps;
        struct epi512 e = epi512_make(x_zero, x_scale, wsum, w_scale, b, o, o1);
#define BLOCK(MR, NB)                                                          \
    do {                                                                       \
        amx_block(cb, x + (size_t)n * ld, ld, p0, p1, KC, MR, NB);             \
        amx_epilogue(y + (size_t)n * O + o, (size_t)O, cb, &e, MR, NB);        \
    } while (0)
#define ALL(NB)                                                    \
    do {                                                           \
        for (n = 0; n + 32 <= N16; n += 32) BLOCK(2, NB);          \
        if (n < N16) {                                             \
            BLOCK(1, NB);                                          \
            n += 16;                                               \
        }                                                          \
    } while (0)
        if (e.m[1])
            ALL(2);
        else
            ALL(1);
        vnni_rows(y + o, (size_t)O, x, ld, p0, p1, G, &e, n, N);
#undef ALL
#undef BLOCK
    }
    if (N16) _tile_release();
}

/* The process may use the tile registers: CPUID says AMX-TILE and
 * AMX-INT8, and Linux grants XTILEDATA (asked once; 1 yes, 0 no). */
static int amx_permitted(void)
{
#if defined(__linux__) && defined(SYS_arch_prctl)
    static int state = -1; /* -1: not asked yet */
    int s = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    if (s < 0) {
        unsigned a, b, c, d;
        s = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 24 & 1) && (d >> 25 & 1) &&
            syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
        __atomic_store_n(&state, s, __ATOMIC_RELEASE);
    }
    return s;
#else
    return 0;
#endif
}

/* AVX2 float32: MR rows by one panel of 16 (two vectors). */
INLINE_AVX2 void f32p_tile_avx2(float *y, size_t ldy, const float *x, size_t ldx, const float *p0,
                                size_t ldb, const float *b, int K, __m256i m0, __m256i m1, int full,
                                const int MR)
{
    __m256 a[6][2];
    int r, k;
#pragma GCC unroll 6
    for (r = 0; r < MR; r++) {
        a[r][0] = _mm256_setzero_ps();
        a[r][1] = _mm256_setzero_ps();
    }
    if (full) {
        for (k = 0; k < K; k++) {
            __m256 w0 = _mm256_loadu_ps(p0 + (size_t)k * ldb), w1 = _mm256_loadu_ps(p0 + (size_t)k * ldb + 8);
#pragma GCC unroll 6
            for (r = 0; r < MR; r++) {
                __m256 xb = _mm256_broadcast_ss(x + (size_t)r * ldx + k);
                a[r][0] = _mm256_fmadd_ps(xb, w0, a[r][0]);
                a[r][1] = _mm256_fmadd_ps(xb, w1, a[r][1]);
            }
        }
    } else {
        for (k = 0; k < K; k++) {
            __m256 w0 = _mm256_maskload_ps(p0 + (size_t)k * ldb, m0), w1 = _mm256_maskload_ps(p0 + (size_t)k * ldb + 8, m1);
#pragma GCC unroll 6
            for (r = 0; r < MR; r++) {
                __m256 xb = _mm256_broadcast_ss(x + (size_t)r * ldx + k);
                a[r][0] = _mm256_fmadd_ps(xb, w0, a[r][0]);
                a[r][1] = _mm256_fmadd_ps(xb, w1, a[r][1]);
            }
        }
    }
#pragma GCC unroll 6
    for (r = 0; r < MR; r++) {
        __m256 v0 = a[r][0], v1 = a[r][1];
        if (b) {
            v0 = _mm256_add_ps(v0, _mm256_maskload_ps(b, m0));
            v1 = _mm256_add_ps(v1, _mm256_maskload_ps(b + 8, m1));
        }
        _mm256_maskstore_ps(y + (size_t)r * ldy, m0, v0);
        _mm256_maskstore_ps(y + (size_t)r * ldy + 8, m1, v1);
    }
}

INLINE_AVX2 __m256i mask8_avx2(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AVX2 static void f32p_avx2(float *y, size_t ldy, const float *x, size_t ldx, const float *bm,
                           size_t ldb, size_t pstride, const float *b, int N, int K, int o0, int o1)
{
    int o;
    for (o = o0; o < o1; o += 16) {
        const float *p0 = bm + (size_t)(o / 16) * pstride, *bo = b ? b + o : NULL;
        int rem = imin_(16, o1 - o), full = rem == 16;
        __m256i m0 = mask8_avx2(rem), m1 = mask8_avx2(rem - 8);
#define TA(n, MR, unused) \
    f32p_tile_avx2(y + (size_t)(n) * ldy + o, ldy, x + (size_t)(n) * ldx, ldx, p0, ldb, bo, K, m0, m1, full, MR)
        ROWS_SWITCH(TA, 6, 0);
#undef TA
    }
}

/* AVX2 int8: panel j holds, for each pair g of inputs, 16 pairs (outputs
 * 0..15, vpmaddwd's layout: output c's two weights at 2c, 2c+1) as int8,
 * 32 bytes, sign-extended to int16 on load (vpmovsxbw): half the memory
 * of storing them as int16, which the weights of deit-tiny (5.6 MiB int8)
 * would otherwise take twice. */
static void pack_i8_avx2(void *dst, const int8_t *wq, int O, int I)
{
    pack_i8_panels(dst, wq, O, I, (I + 1) / 2, 2);
}

INLINE_AVX2 void i8p_tile_avx2(float *y, size_t O, const int16_t *x, size_t ld, const int8_t *p0,
                               int G, __m256 ms0, __m256 ms1, __m256 b0, __m256 b1, __m256i m0,
                               __m256i m1, const int MR)
{
    __m256i a[6][2];
    int r, g;
#pragma GCC unroll 6
    for (r = 0; r < MR; r++) {
        a[r][0] = _mm256_setzero_si256();
        a[r][1] = _mm256_setzero_si256();
    }
    for (g = 0; g < G; g++) {
        __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(p0 + (size_t)g * 32)));
        __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(p0 + (size_t)g * 32 + 16)));
#pragma GCC unroll 6
        for (r = 0; r < MR; r++) {
            int32_t q;
            __m256i xb;
            memcpy(&q, x + (size_t)r * ld + 2 * g, 4);
            xb = _mm256_set1_epi32(q);
            a[r][0] = _mm256_add_epi32(a[r][0], _mm256_madd_epi16(xb, w0));
            a[r][1] = _mm256_add_epi32(a[r][1], _mm256_madd_epi16(xb, w1));
        }
    }
#pragma GCC unroll 6
    for (r = 0; r < MR; r++) {
        __m256 v0 = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(a[r][0]), ms0), b0);
        __m256 v1 = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(a[r][1]), ms1), b1);
        _mm256_maskstore_ps(y + (size_t)r * O, m0, v0);
        _mm256_maskstore_ps(y + (size_t)r * O + 8, m1, v1);
    }
}

AVX2 static void i8p_avx2(float *y, const void *xp, int32_t x_zero, float x_scale, const void *wp,
                          const int32_t *wsum, const float *w_scale, const float *b, int N, int I,
                          int O, int o0, int o1)
{
    const int16_t *x = xp;
    size_t ld = ld16(I);
    int G = (I + 1) / 2, o;
    size_t ps = (size_t)G * 32;
    __m256 xs = _mm256_set1_ps(x_scale);
    (void)x_zero;
    (void)wsum;
    for (o = o0; o < o1; o += 16) {
        const int8_t *p0 = (const int8_t *)wp + (size_t)(o / 16) * ps;
        int rem = imin_(16, o1 - o);
        __m256i m0 = mask8_avx2(rem), m1 = mask8_avx2(rem - 8);
        __m256 ms0 = _mm256_mul_ps(xs, _mm256_maskload_ps(w_scale + o, m0));
        __m256 ms1 = _mm256_mul_ps(xs, _mm256_maskload_ps(w_scale + o + 8, m1));
        __m256 b0 = b ? _mm256_maskload_ps(b + o, m0) : _mm256_setzero_ps();
        __m256 b1 = b ? _mm256_maskload_ps(b + o + 8, m1) : _mm256_setzero_ps();
#define TI(n, MR, unused) \
    i8p_tile_avx2(y + (size_t)(n) * O + o, (size_t)O, x + (size_t)(n) * ld, ld, p0, G, ms0, ms1, b0, b1, m0, m1, MR)
        ROWS_SWITCH(TI, 6, 0);
#undef TI
    }
}


/* R rows of S (row stride T) = softmax(S * scale), in place, masked tails;
 * the rows are interleaved so that their reductions overlap. */
INLINE_AVX512 void softmax_rows_512(float *S, int T, float scale, const int R)
{
    __m512 vs = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-INFINITY);
    __m512 mx[4], sum[4], mv[4];
    int u, r;
#pragma GCC unroll 4
    for (r = 0; r < R; r++) {
        mx[r] = ninf;
        sum[r] = _mm512_setzero_ps();
    }
    for (u = 0; u < T; u += 16) {
        __mmask16 m = mask16(T - u);
#pragma GCC unroll 4
        for (r = 0; r < R; r++) {
            float *s = S + (size_t)r * T + u;
            __m512 v = _mm512_mul_ps(_mm512_mask_loadu_ps(ninf, m, s), vs);
            _mm512_mask_storeu_ps(s, m, v);
            mx[r] = _mm512_max_ps(mx[r], v);
        }
    }
#pragma GCC unroll 4
    for (r = 0; r < R; r++) mv[r] = _mm512_set1_ps(_mm512_reduce_max_ps(mx[r]));
    for (u = 0; u < T; u += 16) {
        __mmask16 m = mask16(T - u);
#pragma GCC unroll 4
        for (r = 0; r < R; r++) {
            float *s = S + (size_t)r * T + u;
            __m512 e = exp_neg_512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s), mv[r]), 0);
            _mm512_mask_storeu_ps(s, m, e);
            sum[r] = _mm512_mask_add_ps(sum[r], m, sum[r], e);
        }
    }
#pragma GCC unroll 4
    for (r = 0; r < R; r++) mv[r] = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum[r]));
    for (u = 0; u < T; u += 16) {
        __mmask16 m = mask16(T - u);
#pragma GCC unroll 4
        for (r = 0; r < R; r++) {
            float *s = S + (size_t)r * T + u;
            _mm512_mask_storeu_ps(s, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s), mv[r]));
        }
    }
}

/* Rows of S (n, T) = softmax(S * scale), in place; each row's result does
 * not depend on the rows beside it. */
AVX512 static void softmax_512(float *S, int n, int T, float scale)
{
    int t = 0;
    for (; t + 4 <= n; t += 4) softmax_rows_512(S + (size_t)t * T, T, scale, 4);
    for (; t < n; t++) softmax_rows_512(S + (size_t)t * T, T, scale, 1);
}

/* LayerNorm as evrt_layernorm_ref (two passes: mean, then the biased
 * variance of x - mean), sixteen lanes, masked tails. */
AVX512 static void layernorm_512(float *out, const float *x, const float *w, const float *b, int N,
                                 int D)
{
    int n, i;
    for (n = 0; n < N; n++) {
        const float *r = x + (size_t)n * D;
        float *y = out + (size_t)n * D;
        __m512 s = _mm512_setzero_ps(), q = _mm512_setzero_ps(), m, rs;
        float mean, var;
        for (i = 0; i < D; i += 16) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(mask16(D - i), r + i));
        mean = _mm512_reduce_add_ps(s) / (float)D;
        m = _mm512_set1_ps(mean);
        for (i = 0; i < D; i += 16) {
            __mmask16 k = mask16(D - i);
            __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, r + i), m);
            q = _mm512_fmadd_ps(d, d, q);
        }
        var = _mm512_reduce_add_ps(q) / (float)D;
        rs = _mm512_set1_ps(1.0f / sqrtf(var + EVRT_LN_EPS));
        for (i = 0; i < D; i += 16) {
            __mmask16 k = mask16(D - i);
            __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, r + i), m), rs);
            d = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(k, w + i), _mm512_maskz_loadu_ps(k, b + i));
            _mm512_mask_storeu_ps(y + i, k, d);
        }
    }
}

static const struct evrt_kernels avx2_kernels = {
    .isa = EVRT_ISA_AVX2, .name = "avx2", .quant = quant_avx2, .i8 = i8_avx2, .f32 = f32_avx2,
    .needs_wsum = 0, .f32p = f32p_avx2, .pack_i8 = pack_i8_avx2, .i8p = i8p_avx2,
    .softmax = evrt_softmax_fast, .layernorm = evrt_layernorm_fast, .gelu = evrt_gelu_fast,
    .attention = evrt_att_rows_fast, .attention_i8 = evrt_att_i8_rows_fast,
    .seg_decode = evrt_seg_rows_fast};
static const struct evrt_kernels vnni_kernels = {
    .isa = EVRT_ISA_AVX512VNNI, .name = "avx512vnni", .quant = quant_vnni, .i8 = i8_vnni, .f32 = f32_512,
    .needs_wsum = 1, .f32p = f32p_512, .pack_i8 = pack_i8_vnni, .i8p = i8p_vnni,
    .softmax = softmax_512, .layernorm = layernorm_512, .gelu = evrt_gelu_fast,
    .attention = evrt_att_rows_fast, .attention_i8 = att_i8_rows_x86, .att8_kv_rows = att8_kv_rows_vnni,
    .seg_decode = evrt_seg_rows_fast};
/* VNNI with the linear layers' packed products on AMX tiles */
static const struct evrt_kernels amx_kernels = {
    .isa = EVRT_ISA_AMX, .name = "amx", .quant = quant_vnni, .i8 = i8_vnni, .f32 = f32_512,
    .needs_wsum = 1, .f32p = f32p_512, .pack_i8 = pack_i8_amx, .i8p = i8p_amx,
    .softmax = softmax_512, .layernorm = layernorm_512, .gelu = evrt_gelu_fast,
    .attention = evrt_att_rows_fast, .attention_i8 = att_i8_rows_x86, .att8_kv_rows = att8_kv_rows_amx,
    .seg_decode = evrt_seg_rows_fast};

const struct evrt_kernels *evrt_kernels_x86(int isa)
{
    __builtin_cpu_init();
    if (isa == EVRT_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &avx2_kernels : NULL;
    if (isa == EVRT_ISA_AVX512VNNI || isa == EVRT_ISA_AMX) {
        if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
              __builtin_cpu_supports("fma")))
            return NULL;
        if (isa == EVRT_ISA_AVX512VNNI) return &vnni_kernels;
        return amx_permitted() ? &amx_kernels : NULL;
    }
    return NULL;
}

#else /* not x86-64 with GCC or Clang */

const struct evrt_kernels *evrt_kernels_x86(int isa)
{
    (void)isa;
    return NULL;
}

#endif
