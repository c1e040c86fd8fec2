/* test_kernels.c: libevrt's instruction-set variants against the _ref
 * kernels: INT8 bit for bit on random shapes (odd sizes, remainders, column
 * ranges, extreme activations) on every variant this CPU runs, its
 * quantized bytes too on NaN, infinities, ties and out-of-range values for
 * every zero point, float32 and the fast GELU and exp within stated
 * tolerances, and whole INT8 models that give the same logits for any
 * thread count.  Uses only libevrt (no
 * common/), so tests/cross_arm.sh builds it for AArch64 and runs it under
 * qemu.
 *
 *   test_kernels                 the tests
 *   test_kernels --logits NAME   prints the INT8 logits of a fixed model,
 *                                run with kernels NAME, as hex floats, then
 *                                those of the same model with INT8
 *                                attention */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evrt.h"
#include "kernels.h"
#include "test.h"

/* xorshift64*: the same stream on every target */
static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s * 2654435761u + 88172645463325252ull; }
static uint32_t rng_u32(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}
static int rng_below(int n) { return (int)(rng_u32() % (uint32_t)n); }
/* uniform in [-1, 1), exactly representable steps of 2^-23 */
static float rng_sym(void) { return (float)((int32_t)(rng_u32() >> 8) - (1 << 23)) / (float)(1 << 23); }

static const char *isa_name(int isa)
{
    static const char *const n[EVRT_ISA_COUNT] = {"ref", "avx2", "avx512vnni", "neon", "dotprod", "amx"};
    return n[isa];
}

/* ---------------------------------------------------------------- INT8 */

static int i8_case(const struct evrt_kernels *k, int N, int I, int O, int o0, int o1, int32_t z,
                   int with_bias, float spread)
{
    float *x = malloc(sizeof(float) * N * I), *ws = malloc(sizeof(float) * O),
          *b = malloc(sizeof(float) * O), *y = malloc(sizeof(float) * N * O),
          *yr = malloc(sizeof(float) * N * O);
    int8_t *w = malloc((size_t)O * I), *xq = malloc((size_t)N * I);
    void *xp = malloc(evrt_quant_bytes(k->isa, N, I) + 64);
    int32_t *wsum = malloc(sizeof(int32_t) * O);
    void *wp = malloc(evrt_pack_i8_bytes(k->isa, O, I) + 1);
    float xs = 0.01f + 0.05f * (rng_sym() + 1.0f);
    int i, bad = 0, pass;
    for (i = 0; i < N * I; i++) {
        int r = rng_below(50);
        /* mostly in range, some saturating, exact ties, NaN and infinities */
        x[i] = spread * xs * 128.0f * rng_sym();
        if (r == 0) x[i] = xs * ((float)rng_below(300) - 150.0f + 0.5f);
        if (r == 1) x[i] = r == 1 && rng_below(4) == 0 ? NAN : 1e30f * rng_sym();
        if (r == 2) x[i] = rng_below(2) ? INFINITY : -INFINITY;
    }
    for (i = 0; i < O * I; i++) w[i] = (int8_t)(rng_below(255) - 127);
    /* some rows at the extremes: the largest sums */
    if (O > 2)
        for (i = 0; i < I; i++) w[(size_t)(O - 1) * I + i] = (int8_t)(i % 2 ? -127 : 127);
    for (i = 0; i < O; i++) {
        ws[i] = 1e-4f + 0.01f * (rng_sym() + 1.0f);
        b[i] = rng_sym();
    }
    evrt_wsum(wsum, w, O, I);
    for (i = 0; i < N * O; i++) y[i] = yr[i] = -7.0f;
    evrt_quantize_act_ref(xq, x, (size_t)N * I, xs, z);
    evrt_linear_i8_ref(yr, xq, z, xs, w, ws, with_bias ? b : NULL, N, I, O);
    k->quant(xp, x, N, I, xs, z);
    for (pass = 0; pass < 2 && !bad; pass++) {
        /* pass 1: the packed-panel kernel, on whole panels of 16 from o0 */
        int p0 = pass ? o0 / 16 * 16 : o0;
        if (pass) {
            if (!k->i8p) break;
            k->pack_i8(wp, w, O, I);
            for (i = 0; i < N * O; i++) y[i] = -7.0f;
            k->i8p(y, xp, z, xs, wp, wsum, ws, with_bias ? b : NULL, N, I, O, p0, o1);
        } else {
            k->i8(y, xp, z, xs, w, wsum, ws, with_bias ? b : NULL, N, I, O, o0, o1);
        }
        for (i = 0; i < N * O && !bad; i++) {
            int o = i % O;
            float want = o >= p0 && o < o1 ? yr[i] : -7.0f;
            if (memcmp(&y[i], &want, sizeof want) != 0) {
                fprintf(stderr, "  %s%s: N %d I %d O %d [%d, %d) z %d: y[%d, %d] = %a, ref %a\n",
                        k->name, pass ? " packed" : "", N, I, O, p0, o1, (int)z, i / O, o,
                        (double)y[i], (double)want);
                bad = 1;
            }
        }
    }
    free(x);
    free(ws);
    free(b);
    free(y);
    free(yr);
    free(w);
    free(xq);
    free(xp);
    free(wsum);
    free(wp);
    return !bad;
}

static void every_int8_variant_equals_the_reference_bit_for_bit_on_random_shapes(void)
{
    int isa, trial, tested = 0;
    for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
        const struct evrt_kernels *k = evrt_isa_available(isa) ? evrt_kernels_get(isa) : NULL;
        if (!k) {
            printf("# %s: not available here\n", isa_name(isa));
            continue;
        }
        tested++;
        rng_seed(100 + (uint64_t)isa);
        for (trial = 0; trial < 300; trial++) {
            static const int sizes[] = {1, 3, 15, 16, 17, 31, 63, 64, 65, 127, 129, 192, 255, 588, 768};
            int N = 1 + rng_below(trial < 200 ? 9 : 40);
            int I = trial % 3 ? sizes[rng_below(15)] : 1 + rng_below(400);
            int O = 1 + rng_below(trial % 5 ? 23 : 70);
            int o0 = trial % 4 ? 0 : rng_below(O), o1 = trial % 4 ? O : o0 + 1 + rng_below(O - o0);
            int32_t z = trial % 2 ? rng_below(256) - 128 : 0;
            float spread = trial % 7 == 0 ? 3.0f : 1.0f;
            if (!i8_case(k, N, I, O, o0, o1, z, trial % 3 != 0, spread)) {
                CHECK(0);
                break;
            }
        }
    }
    printf("# %d variants tested\n", tested);
    CHECK(tested >= 1);
}

static void the_largest_int8_sums_stay_exact(void)
{
    /* xq - zero = 255 (xq 127, zero -128) against w 127 over I = 4096:
     * 132 million, well inside int32, and every variant must agree */
    enum { N = 34, I = 4096, O = 3 }; /* 34 rows: two AMX blocks of 16 and two more */
    static float x[N * I], y[N * O], yr[N * O];
    static int8_t w[O * I], xq[N * I];
    static int16_t xp[N * I + 64];
    float ws[O] = {1e-3f, 2e-3f, 3e-3f};
    int32_t wsum[O];
    int isa, i;
    for (i = 0; i < N * I; i++) x[i] = i < I ? 1e9f : -1e9f;
    for (i = 0; i < O * I; i++) w[i] = (int8_t)(i / I == 1 ? -127 : 127);
    evrt_wsum(wsum, w, O, I);
    evrt_quantize_act_ref(xq, x, N * I, 1.0f, -128);
    evrt_linear_i8_ref(yr, xq, -128, 1.0f, w, ws, NULL, N, I, O);
    CHECK(yr[0] == (float)(255 * 127 * I) * 1e-3f);
    for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
        const struct evrt_kernels *k = evrt_isa_available(isa) ? evrt_kernels_get(isa) : NULL;
        void *buf;
        if (!k) continue;
        buf = malloc(evrt_quant_bytes(isa, N, I));
        (void)xp;
        k->quant(buf, x, N, I, 1.0f, -128);
        k->i8(y, buf, -128, 1.0f, w, wsum, ws, NULL, N, I, O, 0, O);
        CHECK(memcmp(y, yr, sizeof y) == 0);
        if (k->i8p) { /* and the packed-panel kernel */
            void *wp = malloc(evrt_pack_i8_bytes(isa, O, I));
            k->pack_i8(wp, w, O, I);
            memset(y, 0, sizeof y);
            k->i8p(y, buf, -128, 1.0f, wp, wsum, ws, NULL, N, I, O, 0, O);
            CHECK(memcmp(y, yr, sizeof y) == 0);
            free(wp);
        }
        free(buf);
    }
}

/* Row r of a variant's quantized x back as xq values (kernels.h's
 * evrt_quant_fn layouts: ref int8 rows of I; AVX2 int16 xq - zero; VNNI and
 * AMX uint8 xq + 128; NEON and dotprod int8, rows padded to 16 bytes).
 * Returns 0 if the row's padding is not all zero bytes. */
static int unpack_quant_row(int32_t *xq, const void *buf, int isa, int r, int I, int32_t z)
{
    size_t ld = evrt_quant_bytes(isa, 1, I);
    const uint8_t *row = (const uint8_t *)buf + (size_t)r * ld;
    size_t i;
    int pad = 0;
    if (isa == EVRT_ISA_AVX2) {
        for (i = 0; i < ld / 2; i++) {
            int16_t v;
            memcpy(&v, row + 2 * i, 2);
            if (i < (size_t)I) xq[i] = v + z;
            else pad |= v;
        }
    } else {
        for (i = 0; i < ld; i++) {
            int v = isa == EVRT_ISA_AVX512VNNI || isa == EVRT_ISA_AMX ? row[i] - 128 : (int8_t)row[i];
            if (i < (size_t)I) xq[i] = v;
            else pad |= row[i];
        }
    }
    return pad == 0;
}

/* x (N, I): the awkward values, in units of the scale s where that is
 * where they bite (for a power-of-two s, v s / s is exactly v): ties
 * around 0 and at the clamp bounds of zero point z, the float neighbours
 * of 0.5, 2^23 - 0.5, values that leave int32 once scaled, NaNs (quiet,
 * negative, signalling), infinities, subnormals, FLT_MAX; about a third
 * random values in [-200, 200) s.  Starting at offset off in the list, so
 * that each value meets every lane and the row tails. */
static void awkward_row(float *x, int n, float s, int32_t z, int off)
{
    static const uint32_t bits[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7f800000u, 0xff800000u,
                                    0x00000001u, 0x80000001u, 0x7f7fffffu, 0xff7fffffu, 0x80000000u};
    const float v[] = {0.0f, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 0.49999997f, 0.50000006f, -0.49999997f,
                       126.5f, 127.5f, 128.5f, -127.5f, -128.5f, -129.5f, 8388607.5f, -8388607.5f,
                       3e9f, -3e9f, 2147483648.0f, -2147483648.0f, 1e30f, -1e30f,
                       (float)(127 - z) + 0.5f, (float)(127 - z) - 0.5f, (float)(-128 - z) + 0.5f,
                       (float)(-128 - z) - 0.5f, (float)(127 - z), (float)(-128 - z), (float)(-z)};
    const int nb = (int)(sizeof bits / sizeof bits[0]), nv = (int)(sizeof v / sizeof v[0]);
    int i;
    for (i = 0; i < n; i++) {
        int k = (i + off) % (nb + nv + 20);
        if (k < nb) memcpy(&x[i], &bits[k], sizeof x[i]);
        else if (k < nb + nv) x[i] = v[k - nb] * s;
        else x[i] = 200.0f * rng_sym() * s;
    }
}

static int quant_case(const struct evrt_kernels *k, int N, int I, float s, int32_t z, int off)
{
    float *x = malloc(sizeof(float) * (size_t)N * I);
    int8_t *want = malloc((size_t)N * I);
    int32_t *got = malloc(sizeof(int32_t) * (size_t)I);
    size_t bytes = evrt_quant_bytes(k->isa, N, I);
    uint8_t *buf = malloc(bytes);
    int r, i, ok = 1;
    for (r = 0; r < N; r++) awkward_row(x + (size_t)r * I, I, s, z, off + 7 * r);
    evrt_quantize_act_ref(want, x, (size_t)N * I, s, z);
    memset(buf, 0x5a, bytes); /* padding left unwritten would show */
    k->quant(buf, x, N, I, s, z);
    for (r = 0; r < N && ok; r++) {
        if (!unpack_quant_row(got, buf, k->isa, r, I, z)) {
            fprintf(stderr, "  %s: N %d I %d scale %a zero %d: row %d's padding is not zero\n", k->name, N, I,
                    (double)s, (int)z, r);
            ok = 0;
        }
        for (i = 0; i < I && ok; i++)
            if (got[i] != want[(size_t)r * I + i]) {
                fprintf(stderr, "  %s: N %d I %d scale %a zero %d: x[%d, %d] = %a gives %d, ref %d\n", k->name,
                        N, I, (double)s, (int)z, r, i, (double)x[(size_t)r * I + i], (int)got[i],
                        (int)want[(size_t)r * I + i]);
                ok = 0;
            }
    }
    free(x);
    free(want);
    free(got);
    free(buf);
    return ok;
}

static void every_variant_quantizes_nan_infinities_ties_and_huge_values_like_the_reference(void)
{
    /* scales: powers of two (exact ties), inexact inverses, the subnormal
     * ones whose inverse is infinite, and the largest evrt_model_check
     * accepts; lengths: every I up to 40, then around 16, 64 and 197 */
    static const float scales[] = {1.0f, 0.25f, 0.0078125f, 4.0f, 3.0f, 0.1f, 0.0173f, 1e-45f, 1e-40f, 1e-38f, 1e30f};
    static const int lens[] = {47, 48, 63, 64, 65, 100, 196, 197, 200};
    const int ns = (int)(sizeof scales / sizeof scales[0]), nl = 40 + (int)(sizeof lens / sizeof lens[0]);
    int isa, z, c, tested = 0;
    for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
        const struct evrt_kernels *k = evrt_isa_available(isa) ? evrt_kernels_get(isa) : NULL;
        int ok = 1;
        if (!k) continue;
        tested++;
        rng_seed(300 + (uint64_t)isa);
        /* every zero point evrt.h allows, each on a few lengths and scales */
        for (z = -128; z <= 127 && ok; z++)
            for (c = 0; c < 3 && ok; c++) {
                int j = (z + 128) * 3 + c, I = j % nl < 40 ? 1 + j % nl : lens[j % nl - 40];
                ok = quant_case(k, 1 + j % 3, I, scales[j % ns], z, j);
            }
        /* and every length and scale at the extreme and symmetric zeros */
        for (c = 0; c < 4 * ns * nl && ok; c++) {
            static const int32_t zs[] = {0, -128, 127, 3};
            int l = c / (4 * ns), I = l < 40 ? 1 + l : lens[l - 40];
            ok = quant_case(k, 1 + c % 3, I, scales[c / 4 % ns], zs[c % 4], c);
        }
        CHECK(ok);
    }
    printf("# %d variants tested\n", tested);
}

/* ---------------------------------------------------------------- float */

static void every_float32_variant_is_within_rounding_of_the_reference(void)
{
    int isa, trial;
    for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
        const struct evrt_kernels *k = evrt_isa_available(isa) ? evrt_kernels_get(isa) : NULL;
        if (!k) continue;
        rng_seed(7);
        for (trial = 0; trial < 60; trial++) {
            int N = 1 + rng_below(11), I = 1 + rng_below(300), O = 1 + rng_below(30);
            size_t ldx = (size_t)I + (size_t)rng_below(5), ldw = (size_t)I + (size_t)rng_below(5),
                   ldy = (size_t)O + (size_t)rng_below(5);
            float *x = malloc(sizeof(float) * N * ldx), *w = malloc(sizeof(float) * O * ldw),
                  *b = malloc(sizeof(float) * O), *y = malloc(sizeof(float) * N * ldy),
                  *yr = malloc(sizeof(float) * N * ldy);
            int i, n, o, bad = 0, pass;
            for (i = 0; i < (int)(N * ldx); i++) x[i] = rng_sym();
            for (i = 0; i < (int)(O * ldw); i++) w[i] = rng_sym();
            for (i = 0; i < O; i++) b[i] = rng_sym();
            evrt_f32_cols_ref(yr, ldy, x, ldx, w, ldw, b, N, I, 0, O);
            k->f32(y, ldy, x, ldx, w, ldw, b, N, I, 0, O);
            for (pass = 0; pass < 2; pass++) {
                if (pass) { /* the panel kernel on packed weights */
                    float *wc = malloc(sizeof(float) * O * I);
                    float *pk = malloc(evrt_pack_f32_bytes(O, I));
                    if (!k->f32p) {
                        free(wc);
                        free(pk);
                        break;
                    }
                    for (n = 0; n < O; n++)
                        memcpy(wc + (size_t)n * I, w + n * ldw, sizeof(float) * I);
                    evrt_pack_f32(pk, wc, O, I);
                    k->f32p(y, ldy, x, ldx, pk, 16, (size_t)16 * I, b, N, I, 0, O);
                    free(wc);
                    free(pk);
                }
                for (n = 0; n < N && !bad; n++)
                    for (o = 0; o < O; o++) {
                        double s = 0, e; /* error bound: I ulps of sum |x w| */
                        for (i = 0; i < I; i++)
                            s += fabs((double)x[n * ldx + i] * (double)w[o * ldw + i]);
                        e = fabs((double)y[n * ldy + o] - (double)yr[n * ldy + o]);
                        if (!(e <= 1e-6 * (s + 1.0) * 4)) {
                            fprintf(stderr, "  %s%s N %d I %d O %d: y[%d, %d] %g ref %g\n", k->name,
                                    pass ? " packed" : "", N, I, O, n, o, (double)y[n * ldy + o],
                                    (double)yr[n * ldy + o]);
                            bad = 1;
                            break;
                        }
                    }
            }
            CHECK(!bad);
            free(x);
            free(w);
            free(b);
            free(y);
            free(yr);
        }
    }
}

static void table_patchify_equals_the_reference_bit_for_bit(void)
{
    enum { B = 2, H = 12 };
    static uint8_t img[B * H * H * EVRT_MAX_CHANNELS];
    static float ref[B * H * H * EVRT_MAX_CHANNELS], fast[B * H * H * EVRT_MAX_CHANNELS];
    float mean[EVRT_MAX_CHANNELS], std[EVRT_MAX_CHANNELS], lut[EVRT_MAX_CHANNELS * 256];
    int C, P, i;
    rng_seed(5);
    for (i = 0; i < (int)sizeof img; i++) img[i] = (uint8_t)rng_below(256);
    for (C = 1; C <= EVRT_MAX_CHANNELS; C++)
        for (P = 1; P <= H; P++) {
            if (H % P) continue;
            for (i = 0; i < C; i++) {
                mean[i] = 0.5f * rng_sym() + 0.4f;
                std[i] = 0.2f * rng_sym() + 0.3f;
            }
            evrt_patchify_ref(ref, img, mean, std, B, H, C, P);
            evrt_patchify_lut(lut, mean, std, C);
            memset(fast, 0xff, sizeof fast);
            evrt_patchify_fast(fast, img, lut, B, H, C, P);
            CHECK(memcmp(ref, fast, sizeof(float) * B * H * H * (size_t)C) == 0);
        }
}

static void fast_layernorm_and_softmax_are_within_rounding_of_the_reference(void)
{
    enum { N = 5, D = 203 };
    static float x[N * D], w[D], b[D], y[N * D], yr[N * D], s[N * D];
    double worst_ln = 0, worst_sm = 0;
    int i, n, isa;
    rng_seed(11);
    for (i = 0; i < N * D; i++) x[i] = 3.0f * rng_sym() + 0.5f;
    for (i = 0; i < D; i++) {
        w[i] = rng_sym();
        b[i] = rng_sym();
    }
    for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
        const struct evrt_kernels *k = evrt_isa_available(isa) ? evrt_kernels_get(isa) : NULL;
        if (!k) continue;
        for (n = 1; n <= N; n++) { /* every row count; D not a multiple of 16 */
            evrt_layernorm_ref(yr, x, w, b, n, D);
            k->layernorm(y, x, w, b, n, D);
            for (i = 0; i < n * D; i++) {
                double e = fabs((double)y[i] - (double)yr[i]);
                worst_ln = e > worst_ln ? e : worst_ln;
            }
        }
    }
    for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
        const struct evrt_kernels *k = evrt_isa_available(isa) ? evrt_kernels_get(isa) : NULL;
        if (!k || !k->softmax) continue; /* the ref's attention has its own */
        memcpy(s, x, sizeof s);
        k->softmax(s, N, D, 0.7f);
        for (n = 0; n < N; n++) {
            double mx = -1e300, sum = 0, total = 0;
            static double a[D];
            for (i = 0; i < D; i++) a[i] = (double)(x[n * D + i] * 0.7f);
            for (i = 0; i < D; i++) mx = a[i] > mx ? a[i] : mx;
            for (i = 0; i < D; i++) sum += exp(a[i] - mx);
            for (i = 0; i < D; i++) {
                double want = exp(a[i] - mx) / sum;
                double e = fabs((double)s[n * D + i] - want) / want;
                worst_sm = e > worst_sm ? e : worst_sm;
                total += (double)s[n * D + i];
            }
            CHECK(fabs(total - 1.0) < 1e-5);
        }
    }
    printf("# layernorm max |fast - ref| %.3g, softmax max relative error %.3g\n", worst_ln, worst_sm);
    CHECK(worst_ln < 1e-5);
    CHECK(worst_sm < 2e-6);
}

static void fast_gelu_and_exp_are_within_their_documented_errors(void)
{
    enum { n = 20001 };
    static float a[n], g[n], e[n];
    double worst_g = 0, worst_e = 0;
    int i;
    for (i = 0; i < n; i++) a[i] = -12.0f + 24.0f * (float)i / (float)(n - 1);
    memcpy(g, a, sizeof a);
    evrt_gelu_fast(g, n);
    for (i = 0; i < n; i++) {
        double want = 0.5 * (double)a[i] * (1.0 + erf((double)a[i] / sqrt(2.0)));
        double d = fabs((double)g[i] - want) / (fabs(want) > 1.0 ? fabs(want) : 1.0);
        worst_g = d > worst_g ? d : worst_g;
    }
    for (i = 0; i < n; i++) e[i] = -90.0f * (float)i / (float)(n - 1);
    memcpy(g, e, sizeof e);
    evrt_exp_fast(g, n);
    for (i = 0; i < n; i++) {
        double want = exp((double)(e[i] < -87.3f ? -87.3f : e[i]));
        double d = fabs((double)g[i] - want) / want;
        worst_e = d > worst_e ? d : worst_e;
    }
    printf("# fast GELU max error %.3g (absolute, relative above 1), exp %.3g relative\n", worst_g,
           worst_e);
    CHECK(worst_g < 1.5e-6);
    CHECK(worst_e < 3e-7);
    g[0] = 0.0f;
    evrt_exp_fast(g, 1);
    CHECK(g[0] == 1.0f);
}

/* ---------------------------------------------------------------- Token Merging */

/* Random keys (T, 3 H d) of which the metric rows are made; dup > 0 makes
 * every odd token from the dup-th on a copy of token 1 (equal similarities). */
static float *merge_keys(int T, int H, int d, int dup)
{
    size_t n = (size_t)T * 3 * H * d, i;
    float *qkv = malloc(sizeof(float) * n);
    int t;
    for (i = 0; i < n; i++) qkv[i] = rng_sym();
    for (t = 2 * dup + 1; dup > 0 && t < T; t += 2)
        memcpy(qkv + (size_t)t * 3 * H * d, qkv + (size_t)3 * H * d, sizeof(float) * 3 * H * d);
    return qkv;
}

static void the_matching_is_the_same_on_every_variant_and_is_the_cosine_of_averaged_keys(void)
{
    static const int Ts[5] = {3, 17, 50, 101, 197}, Hs[5] = {1, 2, 3, 3, 4}, ds[5] = {5, 16, 37, 64, 48};
    int k, isa, a, b;
    rng_seed(21);
    for (k = 0; k < 5; k++) {
        int T = Ts[k], H = Hs[k], d = ds[k], I = H * d, na = (T + 1) / 2, nb = T / 2, dup;
        for (dup = 0; dup < 2; dup++) {
            float *qkv = merge_keys(T, H, d, dup ? 2 : 0), *an = malloc(sizeof(float) * na * d);
            float *bt = malloc(sizeof(float) * (d * nb + 16)), *S = malloc(sizeof(float) * 16 * nb);
            float *score0 = malloc(sizeof(float) * na), *score = malloc(sizeof(float) * na);
            int *best0 = malloc(sizeof(int) * na), *best = malloc(sizeof(int) * na);
            double worst = 0;
            /* in pieces, as the runtime's units do */
            evrt_merge_prep(an, bt, (size_t)nb, qkv, I, H, d, 0, T / 3);
            evrt_merge_prep(an, bt, (size_t)nb, qkv, I, H, d, T / 3, T);
            for (a = 0; a < na; a += 16)
                evrt_merge_best(evrt_kernels_get(EVRT_ISA_REF), best0, score0, S, an, bt, (size_t)nb, nb, d, a,
                                a + 16 < na ? a + 16 : na);
            /* the scores are cosines of the keys averaged over heads */
            for (a = 1; a < na; a++) {
                double ma[512], mb[512], s = 0, qa = 0, qb = 0;
                int i, h;
                for (i = 0; i < d; i++) {
                    ma[i] = mb[i] = 0;
                    for (h = 0; h < H; h++) {
                        ma[i] += (double)qkv[(size_t)(2 * a) * 3 * I + I + h * d + i] / H;
                        mb[i] += (double)qkv[(size_t)(2 * best0[a] + 1) * 3 * I + I + h * d + i] / H;
                    }
                    s += ma[i] * mb[i], qa += ma[i] * ma[i], qb += mb[i] * mb[i];
                }
                s /= sqrt(qa * qb);
                worst = fabs(s - (double)score0[a]) > worst ? fabs(s - (double)score0[a]) : worst;
                /* the best is the first of the largest */
                for (b = 0; b < nb; b++) {
                    float sb = 0.0f;
                    int i2;
                    for (i2 = 0; i2 < d; i2++) sb = fmaf(an[(size_t)a * d + i2], bt[(size_t)i2 * nb + b], sb);
                    CHECK(b < best0[a] ? sb < score0[a] : sb <= score0[a]);
                }
                if (dup && nb > 2) CHECK(best0[a] <= 2); /* the copies tie: the first copy wins */
            }
            CHECK(worst < 1e-5);
            for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
                if (!evrt_isa_available(isa)) continue;
                for (a = 0; a < na; a += 16)
                    evrt_merge_best(evrt_kernels_get(isa), best, score, S, an, bt, (size_t)nb, nb, d, a,
                                    a + 16 < na ? a + 16 : na);
                if (memcmp(best, best0, sizeof(int) * na) || memcmp(score, score0, sizeof(float) * na))
                    fprintf(stderr, "  %s: T %d d %d: the matching differs from the ref\n", isa_name(isa), T, d);
                CHECK(memcmp(best, best0, sizeof(int) * na) == 0);
                CHECK(memcmp(score, score0, sizeof(float) * na) == 0);
            }
            free(qkv), free(an), free(bt), free(S), free(score0), free(score), free(best0), free(best);
        }
    }
}

static void the_r_best_scores_merge_never_the_class_token_and_ties_go_by_index(void)
{
    /* T 9: A = tokens 0 2 4 6 8, B = 1 3 5 7 */
    const float score[5] = {1.0f, 0.5f, 0.9f, 0.5f, 0.9f};
    const int best[5] = {0, 1, 2, 3, 0};
    int dst[9], order[4], start[7], src[9], i, j, c;
    float s[9], so[6], x[9 * 3], y[9 * 3], out[6 * 3];
    /* r 3: a2 and a4 (0.9, the lower index first), then a1 before a3
     * (0.5); out: a0 a3, then B, with a1 -> b1, a2 -> b2, a4 -> b0 */
    static const int want3[9] = {0, 2, 3, 3, 4, 4, 1, 5, 2};
    /* r 2: a2 and a4 only; out: a0 a1 a3, then B */
    static const int want2[9] = {0, 3, 1, 4, 5, 5, 2, 6, 3};
    evrt_merge_match(dst, order, best, score, 9, 3);
    for (i = 0; i < 9; i++) CHECK(dst[i] == want3[i]);
    evrt_merge_match(dst, order, best, score, 9, 2);
    for (i = 0; i < 9; i++) CHECK(dst[i] == want2[i]);
    /* r 0: every token stays, A first */
    evrt_merge_match(dst, order, best, score, 9, 0);
    for (i = 0; i < 9; i++) CHECK(dst[i] == (i % 2 ? 5 + i / 2 : i / 2));
    /* the size-weighted average of x + y over each output's inputs */
    evrt_merge_match(dst, order, best, score, 9, 3);
    for (i = 0; i < 9; i++) {
        s[i] = (float)(1 + i % 3);
        for (c = 0; c < 3; c++) x[i * 3 + c] = rng_sym(), y[i * 3 + c] = rng_sym();
    }
    evrt_merge_sources(start, src, so, dst, s, 9, 6);
    CHECK(start[0] == 0 && start[6] == 9);
    evrt_merge_rows(out, x, y, s, so, start, src, 0, 6, 3);
    for (j = 0; j < 6; j++) {
        double w = 0, acc[3] = {0, 0, 0};
        for (i = 0; i < 9; i++)
            if (dst[i] == j) {
                w += (double)s[i];
                for (c = 0; c < 3; c++) acc[c] += (double)s[i] * ((double)x[i * 3 + c] + (double)y[i * 3 + c]);
            }
        CHECK(so[j] == (float)w);
        for (c = 0; c < 3; c++) CHECK(fabs((double)out[j * 3 + c] - acc[c] / w) < 1e-6);
        for (i = start[j]; i + 1 < start[j + 1]; i++) CHECK(src[i] < src[i + 1]); /* input order */
    }
}

/* ---------------------------------------------------------------- model */

struct tmodel {
    struct evrt_model m;
    struct evrt_block blk[3];
    float *f;  /* all float tensors */
    int8_t *q; /* all int8 weights */
    float *s;  /* all scales */
    struct evrt_decoder dec; /* tmodel_seg_mlp's */
    float *df;  /* its float tensors, scales included */
    int8_t *dq; /* its int8 weights */
};

/* A fixed random model: img 16 (T 17) or another multiple of 4, patch 4,
 * 3 channels, D 40, three blocks of different shapes, 7 classes; every
 * layer INT8 with crude fixed activation scales (half asymmetric). */
static void tmodel_make_img(struct tmodel *t, uint64_t seed, int img, int wide)
{
    /* wide: heads of 64 in the first two blocks, AMX's whole tiles */
    static const int heads[3] = {2, 3, 1}, hd[3] = {12, 8, 20}, mlp[3] = {70, 33, 96};
    static const int wheads[3] = {1, 1, 1}, whd[3] = {64, 64, 8};
    size_t nf = 0, nq = 0, ns = 0, fo = 0, qo = 0, so = 0;
    int D = 40, T = 1 + (img / 4) * (img / 4), l, i, L;
    struct evrt_model *m = &t->m;
    memset(t, 0, sizeof *t);
    rng_seed(seed);
    m->img_size = img;
    m->channels = 3;
    m->patch = 4;
    m->dim = D;
    m->depth = 3;
    m->classes = 7;
    m->blocks = t->blk;
    for (i = 0; i < 3; i++) {
        m->mean[i] = 0.45f;
        m->std[i] = 0.25f;
    }
    m->patch_embed.in = 48;
    m->patch_embed.out = D;
    const int *hs = wide ? wheads : heads, *ds = wide ? whd : hd;
    for (l = 0; l < 3; l++) {
        int I = hs[l] * ds[l];
        t->blk[l].heads = hs[l];
        t->blk[l].head_dim = ds[l];
        t->blk[l].mlp = mlp[l];
        t->blk[l].qkv.in = D, t->blk[l].qkv.out = 3 * I;
        t->blk[l].proj.in = I, t->blk[l].proj.out = D;
        t->blk[l].fc1.in = D, t->blk[l].fc1.out = mlp[l];
        t->blk[l].fc2.in = mlp[l], t->blk[l].fc2.out = D;
    }
    m->head.in = D;
    m->head.out = 7;
    L = evrt_layer_count(m);
    for (i = 0; i < L; i++) {
        struct evrt_linear *li = evrt_model_layer(m, i);
        nq += (size_t)li->in * li->out;
        ns += (size_t)li->out;
        nf += (size_t)li->out; /* bias */
    }
    nf += (size_t)D * (1 + T + 2 + 4 * 3);
    t->f = malloc(sizeof(float) * nf);
    t->q = malloc(nq);
    t->s = malloc(sizeof(float) * ns);
    for (i = 0; i < (int)nf; i++) t->f[i] = 0.3f * rng_sym();
    m->cls_token = t->f + fo, fo += (size_t)D;
    m->pos_embed = t->f + fo, fo += (size_t)D * T;
    m->norm_w = t->f + fo, fo += (size_t)D;
    m->norm_b = t->f + fo, fo += (size_t)D;
    for (l = 0; l < 3; l++) {
        float *p = t->f + fo;
        for (i = 0; i < D; i++) p[i] += 1.0f, p[2 * D + i] += 1.0f; /* norm weights near 1 */
        t->blk[l].ln1_w = p, t->blk[l].ln1_b = p + D, t->blk[l].ln2_w = p + 2 * D,
        t->blk[l].ln2_b = p + 3 * D;
        fo += 4 * (size_t)D;
    }
    for (i = 0; i < D; i++) t->f[D * (1 + T) + i] += 1.0f;
    for (i = 0; i < L; i++) {
        struct evrt_linear *li = evrt_model_layer(m, i);
        size_t w = (size_t)li->in * li->out, j;
        int8_t *q = t->q + qo;
        for (j = 0; j < w; j++) q[j] = (int8_t)(rng_below(255) - 127);
        li->dtype = EVRT_I8;
        li->wq = q;
        li->w_scale = t->s + so;
        for (j = 0; j < (size_t)li->out; j++) t->s[so + j] = 1.5f / (127.0f * sqrtf((float)li->in));
        li->bias = t->f + fo;
        li->in_scale = i == 0 ? 4.0f / 127.0f : 0.04f;
        li->in_zero = i % 2 ? (i % 4 == 1 ? 10 : -17) : 0;
        qo += w;
        so += (size_t)li->out;
        fo += (size_t)li->out;
    }
}

static void tmodel_make(struct tmodel *t, uint64_t seed) { tmodel_make_img(t, seed, 16, 0); }

/* SegFormer's decoder (evrt.h, EVRT_HEAD_SEG_MLP) on the model: levels 0
 * and 2 (block 1 is none), width 29 (padding in every layout; at img 40
 * every decoder step but the head's product is a parallel region), every
 * layer INT8 like the others with some asymmetric inputs, and a new head
 * C -> 7; its tensors in t->df and t->dq. */
static void tmodel_seg_mlp(struct tmodel *t)
{
    struct evrt_model *m = &t->m;
    struct evrt_decoder *d = &t->dec;
    int D = m->dim, C = 29, i, first = 1 + 4 * m->depth;
    size_t nf = 2 * (size_t)D, nq = 0, fo = 0, qo = 0, j;
    memset(d, 0, sizeof *d);
    d->dim = C;
    d->levels = 2;
    d->level[1] = 2;
    d->linear_c[0].in = d->linear_c[1].in = D;
    d->linear_c[0].out = d->linear_c[1].out = C;
    d->fuse.in = 2 * C;
    d->fuse.out = C;
    m->head.in = C;
    m->head_kind = EVRT_HEAD_SEG_MLP;
    m->decoder = d;
    /* the head (first), then the decoder's layers */
    for (i = first; i < evrt_layer_count(m); i++) {
        nq += (size_t)evrt_model_layer(m, i)->in * evrt_model_layer(m, i)->out;
        nf += 2 * (size_t)evrt_model_layer(m, i)->out;
    }
    t->df = malloc(sizeof(float) * nf);
    t->dq = malloc(nq);
    for (j = 0; j < nf; j++) t->df[j] = 0.3f * rng_sym();
    for (j = 0; j < (size_t)D; j++) t->df[j] += 1.0f;
    d->norm_w[0] = t->df, d->norm_b[0] = t->df + D, fo = 2 * (size_t)D;
    for (i = first; i < evrt_layer_count(m); i++) {
        struct evrt_linear *li = evrt_model_layer(m, i);
        size_t w = (size_t)li->in * li->out;
        for (j = 0; j < w; j++) t->dq[qo + j] = (int8_t)(rng_below(255) - 127);
        li->dtype = EVRT_I8;
        li->wq = t->dq + qo;
        li->w_scale = t->df + fo;
        for (j = 0; j < (size_t)li->out; j++) t->df[fo + j] = 1.5f / (127.0f * sqrtf((float)li->in));
        li->bias = t->df + fo + li->out;
        li->in_scale = 0.04f;
        li->in_zero = i % 2 ? -60 : 0; /* the head's input, after the ReLU, is never negative */
        qo += w;
        fo += 2 * (size_t)li->out;
    }
}

/* INT8 attention in every block, with scales that saturate some q, k, v
 * and (block 1) some probabilities. */
static void tmodel_int8_attention(struct tmodel *t)
{
    static const float p[3] = {1.0f / 127.0f, 0.3f / 127.0f, 1.0f / 127.0f};
    int l;
    for (l = 0; l < 3; l++) {
        t->blk[l].attn_dtype = EVRT_I8;
        t->blk[l].attn_scale[0] = 2.0f / 127.0f;
        t->blk[l].attn_scale[1] = 1.5f / 127.0f;
        t->blk[l].attn_scale[2] = 2.5f / 127.0f;
        t->blk[l].attn_scale[3] = p[l];
    }
}

static void tmodel_free(struct tmodel *t)
{
    free(t->f);
    free(t->q);
    free(t->s);
    free(t->df);
    free(t->dq);
}

static uint8_t *test_images(int B)
{
    size_t n = (size_t)B * 16 * 16 * 3, i;
    uint8_t *img = malloc(n);
    rng_seed(99);
    for (i = 0; i < n; i++) img[i] = (uint8_t)rng_below(256);
    return img;
}

static int run_model_att(const char *kern, int threads, int B, float *logits, int int8_attention, int merge)
{
    struct tmodel t;
    evrt_ctx *c = NULL;
    uint8_t *img = test_images(B);
    int rc;
    tmodel_make(&t, 5);
    if (int8_attention) tmodel_int8_attention(&t);
    if (merge) t.blk[0].merge_r = 4, t.blk[1].merge_r = 2; /* T 17, 13, 11 */
    rc = evrt_ctx_create(&c, &t.m, B);
    if (!rc) rc = evrt_ctx_set_kernels(c, kern);
    if (!rc) rc = evrt_ctx_set_threads(c, threads);
    if (!rc) rc = evrt_infer(c, img, B, logits);
    if (!rc) rc = evrt_infer(c, img, B, logits); /* twice: cached weight sums */
    if (rc) fprintf(stderr, "  %s: %s\n", kern, evrt_ctx_error(c));
    evrt_ctx_destroy(c);
    tmodel_free(&t);
    free(img);
    return rc;
}

static int run_model(const char *kern, int threads, int B, float *logits)
{
    return run_model_att(kern, threads, B, logits, 0, 0);
}

static void int8_models_give_the_same_logits_for_any_thread_count_on_every_variant(void)
{
    float ref[3 * 7], one[3 * 7], many[3 * 7];
    int isa, nt, i;
    REQUIRE(run_model("ref", 1, 3, ref) == EVRT_OK);
    for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
        double worst = 0;
        if (!evrt_isa_available(isa)) continue;
        REQUIRE(run_model(isa_name(isa), 1, 3, one) == EVRT_OK);
        for (nt = 2; nt <= 4; nt++) {
            REQUIRE(run_model(isa_name(isa), nt, 3, many) == EVRT_OK);
            CHECK(memcmp(one, many, sizeof one) == 0);
        }
        /* float parts (attention, GELU, softmax) differ by rounding */
        for (i = 0; i < 21; i++) {
            double d = fabs((double)one[i] - (double)ref[i]);
            worst = d > worst ? d : worst;
        }
        printf("# %s: max |logit - ref| %.3g\n", isa_name(isa), worst);
        CHECK(worst < 1e-3);
        if (isa == EVRT_ISA_REF) CHECK(worst == 0);
    }
}

/* Every layer float32, weights wq * w_scale (into t->w, freed by the
 * caller). */
static float *tmodel_float(struct tmodel *t)
{
    int i, L = evrt_layer_count(&t->m);
    size_t n = 0, o = 0, j;
    float *w;
    for (i = 0; i < L; i++) n += (size_t)evrt_model_layer(&t->m, i)->in * evrt_model_layer(&t->m, i)->out;
    w = malloc(sizeof(float) * n);
    for (i = 0; i < L; i++) {
        struct evrt_linear *li = evrt_model_layer(&t->m, i);
        for (j = 0; j < (size_t)li->in * li->out; j++) w[o + j] = li->wq[j] * li->w_scale[j / li->in];
        li->w = w + o;
        li->dtype = EVRT_F32;
        o += (size_t)li->in * li->out;
    }
    return w;
}

/* Logits (3, 7) of the T 101 model (several row blocks, query blocks and
 * channel groups per region) as float32 (dt 0), INT8 (1) or INT8 with INT8
 * attention (2). */
static void observe_nothing(void *user, int layer, int what, const float *x, int rows, int cols)
{
    (void)user, (void)layer, (void)what, (void)x, (void)rows, (void)cols;
}

static int run_dtype_obs(const char *kern, int threads, int dt, int shape, int observe, float *logits);

static int run_dtype(const char *kern, int threads, int dt, int shape, float *logits)
{
    return run_dtype_obs(kern, threads, dt, shape, 0, logits);
}

/* The shapes of the T 101 model: the class head (0), merging tokens (1),
 * or SegFormer's decoder (2, tmodel_seg_mlp: per-patch logits (3, 100, 7)
 * from evrt_infer_seg, 300 rows in every decoder layer); logits hold
 * TM_LOGITS floats, zeros past the model's outputs. */
#define TM_LOGITS (3 * 100 * 7)
static const char *const shape_name[3] = {"", ", merging", ", seg_mlp"};

/* observe: with an observer that looks at nothing, which keeps each
 * layer's input preparation in a region of its own (evrt.c's fuse_quant
 * and epilogues are for unobserved runs) */
static int run_dtype_obs(const char *kern, int threads, int dt, int shape, int observe, float *logits)
{
    struct tmodel t;
    evrt_ctx *c = NULL;
    uint8_t *img;
    float *w = NULL;
    size_t n = 3 * 40 * 40 * 3, i;
    int rc;
    memset(logits, 0, sizeof(float) * TM_LOGITS);
    tmodel_make_img(&t, 11, 40, 0);
    if (shape == 1) t.blk[0].merge_r = 12, t.blk[1].merge_r = 10; /* T 101, 89, 79 */
    if (shape == 2) tmodel_seg_mlp(&t);
    if (dt == 0) w = tmodel_float(&t);
    if (dt == 2) tmodel_int8_attention(&t);
    img = malloc(n);
    rng_seed(5);
    for (i = 0; i < n; i++) img[i] = (uint8_t)rng_below(256);
    rc = evrt_ctx_create(&c, &t.m, 3);
    if (!rc) rc = evrt_ctx_set_kernels(c, kern);
    if (!rc) rc = evrt_ctx_set_threads(c, threads);
    if (!rc && observe) evrt_set_observer(c, observe_nothing, NULL);
    for (i = 0; i < 3 && !rc; i++)
        rc = shape == 2 ? evrt_infer_seg(c, img, 3, logits, NULL, NULL) : evrt_infer(c, img, 3, logits);
    if (rc) fprintf(stderr, "  %s: %s\n", kern, evrt_ctx_error(c));
    evrt_ctx_destroy(c);
    tmodel_free(&t);
    free(w);
    free(img);
    return rc;
}

/* The pool hands out units of work to whichever thread asks first; in the
 * jitter build (tests/test_kernels_jitter) threads also yield and sleep at
 * random before each unit, as a loaded machine deschedules them.  Every
 * dtype, with and without merging, and with the seg_mlp decoder. */
static void every_dtype_gives_the_same_logits_for_any_thread_count_however_threads_are_scheduled(void)
{
    static const int counts[4] = {2, 3, 4, 7};
    static const char *const dtn[3] = {"float32", "int8", "int8 + int8 attention"};
    static float one[TM_LOGITS], many[TM_LOGITS];
    int isa, dt, k, shape;
    for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
        if (!evrt_isa_available(isa)) continue;
        for (shape = 0; shape < 3; shape++)
            for (dt = 0; dt < 3; dt++) {
                REQUIRE(run_dtype(isa_name(isa), 1, dt, shape, one) == EVRT_OK);
                for (k = 0; k < 4; k++) {
                    REQUIRE(run_dtype(isa_name(isa), counts[k], dt, shape, many) == EVRT_OK);
                    if (memcmp(one, many, sizeof one))
                        fprintf(stderr, "  %s %s%s: %d threads differ from 1\n", isa_name(isa), dtn[dt],
                                shape_name[shape], counts[k]);
                    CHECK(memcmp(one, many, sizeof one) == 0);
                }
            }
    }
}

/* Unobserved, the region that makes a layer's input also quantizes it:
 * the residual add and LayerNorm (or the merge) for qkv and fc1, GELU for
 * fc2; seg_mlp's level LayerNorms for linear_c, the concatenation for the
 * fuse layer, ReLU for the head.  Observed, each step has a region of its
 * own, so the observer sees the float input.  Both must give the same bits,
 * on every variant, thread count, dtype, with merging and with the decoder;
 * the model's widths (hidden layers of 70 and 33, decoder 29) leave padding
 * in every layout. */
static void preparing_the_next_layers_input_in_the_producing_region_changes_no_bit(void)
{
    static const int counts[2] = {1, 3};
    static float fused[TM_LOGITS], apart[TM_LOGITS];
    int isa, dt, k, shape;
    for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
        if (!evrt_isa_available(isa)) continue;
        for (shape = 0; shape < 3; shape++)
            for (dt = 0; dt < 3; dt++)
                for (k = 0; k < 2; k++) {
                    REQUIRE(run_dtype_obs(isa_name(isa), counts[k], dt, shape, 0, fused) == EVRT_OK);
                    REQUIRE(run_dtype_obs(isa_name(isa), counts[k], dt, shape, 1, apart) == EVRT_OK);
                    if (memcmp(fused, apart, sizeof fused))
                        fprintf(stderr, "  %s dtype %d%s, %d threads: fused epilogues differ\n", isa_name(isa), dt,
                                shape_name[shape], counts[k]);
                    CHECK(memcmp(fused, apart, sizeof fused) == 0);
                }
    }
}

/* Each block's qkv output and attention output (the proj layer's input),
 * as the runtime computed them. */
struct att_capture {
    float *qkv[3], *att[3], *bias[3]; /* bias: NULL before any merge */
    const evrt_ctx *ctx;
};

static void capture_attention(void *user, int layer, int phase, const float *x, int rows, int cols)
{
    struct att_capture *c = user;
    int l = (layer - 1) / 4, k = (layer - 1) % 4;
    float **dst;
    if (layer < 1 || l >= 3 || k > 1 || phase != (k == 0 ? EVRT_OBSERVE_OUTPUT : EVRT_OBSERVE_INPUT)) return;
    dst = k == 0 ? &c->qkv[l] : &c->att[l];
    free(*dst);
    *dst = malloc(sizeof(float) * (size_t)rows * cols);
    memcpy(*dst, x, sizeof(float) * (size_t)rows * cols);
    if (k == 0) { /* rows = B T_l: the block's keys' bias, (B, T_l) */
        const float *b = evrt_ctx_attention_bias(c->ctx);
        free(c->bias[l]);
        c->bias[l] = NULL;
        if (b) {
            c->bias[l] = malloc(sizeof(float) * (size_t)rows);
            memcpy(c->bias[l], b, sizeof(float) * (size_t)rows);
        }
    }
}

/* Runs the INT8-attention model on kernels kern with nt threads and checks
 * every block's attention output against evrt_attention_i8_ref on the qkv
 * the runtime produced; logits (B, 7) and, when sqnr is not NULL, each
 * block's SQNR of INT8 against float attention (dB) come back. */
static int attention_case(const char *kern, int nt, int img, int wide, int merge, int B, float *logits,
                          double *sqnr)
{
    struct tmodel t;
    struct att_capture cap = {{NULL}, {NULL}, {NULL}, NULL};
    evrt_ctx *c = NULL;
    uint8_t *img_b;
    int T = 1 + (img / 4) * (img / 4), l, bad = 0;
    size_t n;
    tmodel_make_img(&t, 7, img, wide);
    tmodel_int8_attention(&t);
    /* merging: a quarter of the tokens, then a fifth of what is left */
    if (merge) t.blk[0].merge_r = (T - 1) / 4, t.blk[1].merge_r = (T - (T - 1) / 4) / 5;
    n = (size_t)B * img * img * 3;
    img_b = malloc(n);
    rng_seed(1234);
    for (n = 0; n < (size_t)B * img * img * 3; n++) img_b[n] = (uint8_t)rng_below(256);
    if (evrt_ctx_create(&c, &t.m, B) || evrt_ctx_set_kernels(c, kern) || evrt_ctx_set_threads(c, nt)) {
        fprintf(stderr, "  %s: %s\n", kern, evrt_ctx_error(c));
        bad = 1;
    }
    cap.ctx = c;
    evrt_set_observer(c, capture_attention, &cap);
    if (!bad && evrt_infer(c, img_b, B, logits)) bad = 1;
    for (l = 0; l < 3 && !bad; l++) {
        const struct evrt_block *b = &t.blk[l];
        int Tl = evrt_model_tokens_at(&t.m, l), nq = l == 2 ? 1 : Tl, I = b->heads * b->head_dim;
        size_t m = (size_t)B * nq * I, i;
        float *ref = malloc(sizeof(float) * m), *fl = malloc(sizeof(float) * m), *sc = malloc(sizeof(float) * T);
        void *scratch = malloc(evrt_attention_i8_scratch(Tl, b->head_dim));
        double ee = 0, aa = 0;
        if ((l > 0 && merge) != (cap.bias[l] != NULL)) {
            fprintf(stderr, "  block %d: a bias %s\n", l, cap.bias[l] ? "before any merge" : "missing after a merge");
            bad = 1;
        }
        evrt_attention_i8_bias_ref(ref, scratch, cap.qkv[l], cap.bias[l], B, Tl, nq, b->heads, b->head_dim,
                                   b->attn_scale);
        for (i = 0; i < (size_t)B * b->heads; i++) /* float attention with the same bias */
            evrt_att_rows_ref(NULL, fl + i / b->heads * nq * I + i % b->heads * b->head_dim, (size_t)I, sc,
                              cap.qkv[l] + i / b->heads * Tl * 3 * I, cap.bias[l] ? cap.bias[l] + i / b->heads * Tl : NULL,
                              Tl, I, (int)(i % b->heads), b->head_dim, 0, nq, 1);
        for (i = 0; i < m; i++) {
            double d = (double)ref[i] - (double)fl[i];
            ee += d * d;
            aa += (double)fl[i] * (double)fl[i];
        }
        if (sqnr) sqnr[l] = 10.0 * log10(aa / ee);
        if (memcmp(ref, cap.att[l], sizeof(float) * m)) {
            for (i = 0; i < m && ref[i] == cap.att[l][i]; i++) continue;
            fprintf(stderr, "  %s, %d threads, img %d: block %d attention[%zu] = %a, ref %a\n", kern, nt,
                    img, l, i, (double)cap.att[l][i], (double)ref[i]);
            bad = 1;
        }
        free(ref);
        free(fl);
        free(sc);
        free(scratch);
    }
    for (l = 0; l < 3; l++) {
        free(cap.qkv[l]);
        free(cap.att[l]);
        free(cap.bias[l]);
    }
    evrt_ctx_destroy(c);
    tmodel_free(&t);
    free(img_b);
    return !bad;
}

static void int8_attention_equals_the_reference_bit_for_bit_on_every_variant_and_thread_count(void)
{
    /* T 17, 50 and 101: one, two and four chunks of queries; 101 also
     * takes two 64-byte blocks per quantized row; T 145 with heads of 64
     * (wide): whole AMX tiles for q K^T and P V */
    static const int imgs[4] = {16, 28, 40, 48}, wide[4] = {0, 0, 0, 1};
    float first[5 * 7], other[5 * 7];
    double sqnr[3];
    int isa, nt, k, merge;
    for (merge = 0; merge < 2; merge++)
        for (k = 0; k < 4; k++) {
            REQUIRE(attention_case("ref", 1, imgs[k], wide[k], merge, 5, first, sqnr));
            printf("# img %d%s: INT8 attention SQNR against float attention %.1f, %.1f, %.1f dB\n", imgs[k],
                   merge ? ", merging" : "", sqnr[0], sqnr[1], sqnr[2]);
            /* the crude scales still make it attention, not noise */
            CHECK(sqnr[0] > 15.0 && sqnr[1] > 5.0 && sqnr[2] > 15.0);
            for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
                if (!evrt_isa_available(isa)) continue;
                for (nt = 1; nt <= 3; nt++) {
                    CHECK(attention_case(isa_name(isa), nt, imgs[k], wide[k], merge, 5, other, NULL));
                    if (isa == EVRT_ISA_REF) CHECK(memcmp(first, other, sizeof first) == 0);
                }
            }
        }
}

/* att8_kv_rows in ranges of 16 tokens (the runtime's shared K and V, one
 * range per unit, any thread) writes the bytes one range over every token
 * writes, and the ranges' V sums add up to its sums. */
static void shared_k_and_v_in_ranges_of_16_tokens_equal_one_range_over_every_token(void)
{
    static const int Ts[4] = {17, 50, 145, 197}, ds[4] = {8, 24, 64, 64};
    int isa, k, ran = 0;
    for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
        const struct evrt_kernels *kt = evrt_isa_available(isa) ? evrt_kernels_get(isa) : NULL;
        if (!kt || !kt->att8_kv_rows) continue;
        for (k = 0; k < 4; k++) {
            int T = Ts[k], d = ds[k], H = 3, I = H * d, h = 1, t0, i, bad = 0;
            size_t kb = evrt_pack_i8_bytes(isa, T, d) + 4096, vb = evrt_pack_i8_bytes(isa, d, T) + 4096;
            float *qkv = malloc(sizeof(float) * (size_t)T * 3 * I);
            int8_t *kp[2], *vp[2], *vt = malloc((size_t)T * d);
            int32_t *kws[2], *vws[2], *part = malloc(sizeof(int32_t) * (size_t)d);
            for (i = 0; i < 2; i++) {
                kp[i] = calloc(kb, 1), vp[i] = calloc(vb, 1);
                kws[i] = calloc((size_t)T, sizeof(int32_t)), vws[i] = calloc((size_t)d, sizeof(int32_t));
            }
            rng_seed((uint64_t)(T * 31 + d));
            for (i = 0; i < T * 3 * I; i++) qkv[i] = 3.0f * rng_sym();
            for (i = 0; i < 2; i++) {
                struct evrt_att8 a;
                memset(&a, 0, sizeof a);
                a.kp = kp[i], a.vp = vp[i], a.kws = kws[i], a.vt = vt;
                a.vws = i ? part : vws[0];
                for (t0 = 0; t0 < T; t0 = i ? t0 + 16 : T) {
                    kt->att8_kv_rows(&a, qkv, T, I, h, d, t0, i ? (t0 + 16 < T ? t0 + 16 : T) : T, 1.0f / 0.05f,
                                     1.0f / 0.04f);
                    if (i)
                        for (int c = 0; c < d; c++) vws[1][c] += part[c];
                }
            }
            bad |= memcmp(kp[0], kp[1], kb) != 0;
            bad |= memcmp(vp[0], vp[1], vb) != 0;
            bad |= memcmp(kws[0], kws[1], sizeof(int32_t) * (size_t)T) != 0;
            bad |= memcmp(vws[0], vws[1], sizeof(int32_t) * (size_t)d) != 0;
            if (bad) fprintf(stderr, "  %s, T %d, d %d: ranges differ from one range\n", isa_name(isa), T, d);
            CHECK(!bad);
            ran++;
            for (i = 0; i < 2; i++) {
                free(kp[i]);
                free(vp[i]);
                free(kws[i]);
                free(vws[i]);
            }
            free(qkv);
            free(vt);
            free(part);
        }
    }
    printf("# %d cases of shared K and V\n", ran);
}

static void int8_attention_needs_positive_scales_and_head_dims_up_to_512(void)
{
    struct tmodel t;
    evrt_ctx *c = NULL;
    char err[256];
    tmodel_make(&t, 1);
    tmodel_int8_attention(&t);
    CHECK(evrt_model_check(&t.m, err, sizeof err) == EVRT_OK);
    t.blk[1].attn_scale[3] = 0.0f;
    CHECK(evrt_model_check(&t.m, err, sizeof err) == EVRT_EINVAL && strstr(err, "block 1") != NULL);
    t.blk[1].attn_scale[3] = NAN;
    CHECK(evrt_model_check(&t.m, err, sizeof err) == EVRT_EINVAL);
    t.blk[1].attn_scale[3] = 0.01f;
    t.blk[2].attn_dtype = 7;
    CHECK(evrt_model_check(&t.m, err, sizeof err) == EVRT_EINVAL && strstr(err, "attention dtype") != NULL);
    t.blk[2].attn_dtype = EVRT_I8;
    CHECK(evrt_ctx_create(&c, &t.m, 1) == EVRT_OK);
    evrt_ctx_destroy(c);
    tmodel_free(&t);
}

/* EVRT_TEST_REQUIRE=avx2,vnni (or neon,dotprod under qemu): the variants
 * that must have run here; a comma-separated list of kernel names, "vnni"
 * for avx512vnni.  Unset, nothing is required. */
static void every_required_instruction_set_ran(void)
{
    const char *req = getenv("EVRT_TEST_REQUIRE");
    char name[32];
    size_t n;
    if (!req) return;
    while (*req) {
        n = strcspn(req, ",");
        if (n > 0 && n < sizeof name) {
            int isa;
            memcpy(name, req, n);
            name[n] = '\0';
            isa = evrt_isa_parse(strcmp(name, "vnni") ? name : "avx512vnni");
            if (isa >= 0 && evrt_isa_available(isa))
                printf("# required %s: ran\n", name);
            else
                fprintf(stderr, "  required kernels %s did not run\n", name);
            CHECK(isa >= 0 && evrt_isa_available(isa));
        } else {
            CHECK(n == 0);
        }
        req += n + (req[n] == ',');
    }
}

/* Threads of this process now (the entries of /proc/self/task), -1
 * where that cannot be read. */
static int threads_running(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* threads_running() once it is n, or after about 2 s: a joined thread
 * can stay listed a moment after pthread_join returns (it wakes the joiner
 * on its way out; under qemu-user long enough to be counted). */
static int threads_settled(int n)
{
    struct timespec ms = {0, 1000000L};
    int i, now = threads_running();
    for (i = 0; i < 2000 && now != n; i++) {
        nanosleep(&ms, NULL);
        now = threads_running();
    }
    return now;
}

static void more_threads_than_cpus_start_workers_only_for_the_cpus_and_give_the_same_bits(void)
{
    float one[3 * 7], many[3 * 7];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct tmodel t;
    evrt_ctx *c = NULL;
    uint8_t *img = test_images(3);
    const char *over = getenv("EVRT_OVERSUBSCRIBE");
    char *saved = over ? strdup(over) : NULL;
    int before, after;
    REQUIRE(cpus >= 1 && cpus < 250);
    REQUIRE(run_model_att("ref", 1, 3, one, 1, 0) == EVRT_OK);
    unsetenv("EVRT_OVERSUBSCRIBE"); /* the suite sets it (Makefile.am) */
    tmodel_make(&t, 5);
    tmodel_int8_attention(&t);
    before = threads_running();
    REQUIRE(evrt_ctx_create(&c, &t.m, 3) == EVRT_OK && evrt_ctx_set_kernels(c, "ref") == EVRT_OK);
    REQUIRE(evrt_ctx_set_threads(c, (int)cpus + 2) == EVRT_OK);
    after = threads_running();
    CHECK(evrt_ctx_threads(c) == (int)cpus + 2);
    /* the caller and cpus - 1 workers */
    if (before >= 0 && after >= 0) CHECK(after - before == (int)cpus - 1);
    CHECK(evrt_infer(c, img, 3, many) == EVRT_OK);
    CHECK(memcmp(one, many, sizeof one) == 0);
    evrt_ctx_destroy(c);
    c = NULL;
    /* its workers are gone */
    if (before >= 0) CHECK(threads_settled(before) == before);
    /* EVRT_OVERSUBSCRIBE=1: every worker */
    setenv("EVRT_OVERSUBSCRIBE", "1", 1);
    REQUIRE(evrt_ctx_create(&c, &t.m, 3) == EVRT_OK && evrt_ctx_set_threads(c, (int)cpus + 2) == EVRT_OK);
    after = threads_running();
    if (before >= 0 && after >= 0) CHECK(after - before == (int)cpus + 1);
    evrt_ctx_destroy(c);
    if (before >= 0) CHECK(threads_settled(before) == before);
    if (saved)
        setenv("EVRT_OVERSUBSCRIBE", saved, 1);
    else
        unsetenv("EVRT_OVERSUBSCRIBE");
    free(saved);
    tmodel_free(&t);
    free(img);
}

static void unknown_kernels_and_thread_counts_are_refused(void)
{
    struct tmodel t;
    evrt_ctx *c = NULL;
    tmodel_make(&t, 1);
    REQUIRE(evrt_ctx_create(&c, &t.m, 1) == EVRT_OK);
    CHECK(evrt_ctx_set_kernels(c, "sse9") == EVRT_EINVAL);
    CHECK(strstr(evrt_ctx_error(c), "sse9") != NULL);
    CHECK(evrt_ctx_set_threads(c, 0) == EVRT_EINVAL);
    CHECK(evrt_ctx_set_threads(c, 3) == EVRT_OK && evrt_ctx_threads(c) == 3);
    CHECK(evrt_ctx_set_threads(c, 1) == EVRT_OK && evrt_ctx_threads(c) == 1);
    CHECK(evrt_ctx_set_kernels(c, "ref") == EVRT_OK && strcmp(evrt_ctx_kernels(c), "ref") == 0);
    evrt_ctx_destroy(c);
    tmodel_free(&t);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--logits")) {
        float l[3 * 7];
        int i;
        if (run_model(argv[2], 1, 3, l)) return 1;
        for (i = 0; i < 21; i++) printf("%a\n", (double)l[i]);
        /* then with INT8 attention, then both with Token Merging */
        if (run_model_att(argv[2], 1, 3, l, 1, 0)) return 1;
        for (i = 0; i < 21; i++) printf("%a\n", (double)l[i]);
        if (run_model_att(argv[2], 1, 3, l, 0, 1)) return 1;
        for (i = 0; i < 21; i++) printf("%a\n", (double)l[i]);
        if (run_model_att(argv[2], 1, 3, l, 1, 1)) return 1;
        for (i = 0; i < 21; i++) printf("%a\n", (double)l[i]);
        return 0;
    }
#ifdef EVRT_POOL_JITTER
    const int pool_only = 1; /* the runtime's threads yield and sleep at random */
#else
    const int pool_only = 0;
#endif
    if (pool_only) {
        RUN(every_dtype_gives_the_same_logits_for_any_thread_count_however_threads_are_scheduled);
        RUN(int8_models_give_the_same_logits_for_any_thread_count_on_every_variant);
        return test_summary();
    }
    RUN(every_int8_variant_equals_the_reference_bit_for_bit_on_random_shapes);
    RUN(the_largest_int8_sums_stay_exact);
    RUN(every_variant_quantizes_nan_infinities_ties_and_huge_values_like_the_reference);
    RUN(every_float32_variant_is_within_rounding_of_the_reference);
    RUN(fast_gelu_and_exp_are_within_their_documented_errors);
    RUN(fast_layernorm_and_softmax_are_within_rounding_of_the_reference);
    RUN(table_patchify_equals_the_reference_bit_for_bit);
    RUN(the_matching_is_the_same_on_every_variant_and_is_the_cosine_of_averaged_keys);
    RUN(the_r_best_scores_merge_never_the_class_token_and_ties_go_by_index);
    RUN(int8_models_give_the_same_logits_for_any_thread_count_on_every_variant);
    RUN(every_dtype_gives_the_same_logits_for_any_thread_count_however_threads_are_scheduled);
    RUN(preparing_the_next_layers_input_in_the_producing_region_changes_no_bit);
    RUN(int8_attention_equals_the_reference_bit_for_bit_on_every_variant_and_thread_count);
    RUN(shared_k_and_v_in_ranges_of_16_tokens_equal_one_range_over_every_token);
    RUN(int8_attention_needs_positive_scales_and_head_dims_up_to_512);
    RUN(more_threads_than_cpus_start_workers_only_for_the_cpus_and_give_the_same_bits);
    RUN(unknown_kernels_and_thread_counts_are_refused);
    RUN(every_required_instruction_set_ran);
    return test_summary();
}
