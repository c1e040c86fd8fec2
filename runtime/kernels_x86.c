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
 * the float32 results do not depend on the tile an element falls in. */
#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && \
    (defined(__clang__) || __GNUC__ >= 8)
#define EVRT_HAVE_X86 1
#endif

#ifdef EVRT_HAVE_X86
#include <immintrin.h>
#include <math.h>
#include <string.h>

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
            __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, r + i), vinv);
            __m512i u;
            t = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(t, t, _CMP_ORD_Q), t);
            t = _mm512_min_ps(_mm512_max_ps(t, vlo), vhi);
            u = _mm512_add_epi32(_mm512_cvtps_epi32(t), off);
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

static const struct evrt_kernels avx2_kernels = {EVRT_ISA_AVX2, "avx2", quant_avx2, i8_avx2,
                                                 f32_avx2, 0};
static const struct evrt_kernels vnni_kernels = {EVRT_ISA_AVX512VNNI, "avx512vnni", quant_vnni,
                                                 i8_vnni, f32_512, 1};

const struct evrt_kernels *evrt_kernels_x86(int isa)
{
    __builtin_cpu_init();
    if (isa == EVRT_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &avx2_kernels : NULL;
    if (isa == EVRT_ISA_AVX512VNNI)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
                       __builtin_cpu_supports("fma")
                   ? &vnni_kernels
                   : NULL;
    return NULL;
}

#else /* not x86-64 with GCC or Clang */

const struct evrt_kernels *evrt_kernels_x86(int isa)
{
    (void)isa;
    return NULL;
}

#endif
