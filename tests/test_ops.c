/* test_ops.c: every forward op of ops.h against a plain reference, either its
 * *_ref twin or a double-precision computation written here. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops.h"
#include "rng.h"
#include "test.h"
#include "util.h"

static void fill_normal(float *x, size_t n, struct evit_rng *r, double scale)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * evit_rng_normal(r));
}

static float max_abs(const float *x, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

/* ---------------------------------------------------------------- linear */

/* Compares fast against ref for one shape; the tolerance is relative to the
 * size of the terms of each dot product, sum |in_i w_i| + |b|, which bounds
 * the rounding of any summation order. */
static void check_linear(int N, int I, int O, int with_bias, uint64_t seed)
{
    struct evit_rng r;
    evit_rng_seed(&r, seed);
    float *in = evit_alloc_floats((size_t)N * I), *w = evit_alloc_floats((size_t)O * I);
    float *b = evit_alloc_floats((size_t)O);
    float *fast = evit_alloc_floats((size_t)N * O), *ref = evit_alloc_floats((size_t)N * O);
    fill_normal(in, (size_t)N * I, &r, 1.0);
    fill_normal(w, (size_t)O * I, &r, 0.5);
    fill_normal(b, (size_t)O, &r, 1.0);
    /* whatever out held before must not leak through, bias or not */
    for (size_t i = 0; i < (size_t)N * O; i++) fast[i] = NAN;
    evit_linear_forward(fast, in, w, with_bias ? b : NULL, N, I, O);
    evit_linear_forward_ref(ref, in, w, with_bias ? b : NULL, N, I, O);
    int bad = 0;
    for (int n = 0; n < N && bad < 5; n++) {
        for (int o = 0; o < O && bad < 5; o++) {
            double mag = with_bias ? fabs(b[o]) : 0.0;
            for (int i = 0; i < I; i++) mag += fabs((double)in[(size_t)n * I + i] * (double)w[(size_t)o * I + i]);
            double f = fast[(size_t)n * O + o], e = ref[(size_t)n * O + o];
            if (!(fabs(f - e) <= 1e-5 * mag)) {
                fprintf(stderr, "  linear N=%d I=%d O=%d bias=%d at (%d,%d): %.9g vs ref %.9g\n",
                        N, I, O, with_bias, n, o, f, e);
                bad++;
            }
        }
    }
    CHECK(bad == 0);
    evit_free_aligned(in);
    evit_free_aligned(w);
    evit_free_aligned(b);
    evit_free_aligned(fast);
    evit_free_aligned(ref);
}

static void linear_matches_its_ref_twin_with_and_without_bias(void)
{
    static const int shapes[][3] = {{1, 1, 1},  {1, 7, 1},   {3, 5, 1},    {1, 13, 9},
                                    {17, 33, 65}, {5, 64, 3}, {31, 129, 257}, {197, 64, 192}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int bias = 0; bias <= 1; bias++)
            check_linear(shapes[s][0], shapes[s][1], shapes[s][2], bias, 100 + s * 2 + bias);
    }
}

static void linear_ref_computes_in_times_w_transposed_plus_bias(void)
{
    /* in (2,3), w (2,3): out = in @ w^T + b, by hand */
    const float in[6] = {1, 2, 3, -1, 0, 2};
    const float w[6] = {1, 0, -1, 2, 1, 0.5f};
    const float b[2] = {0.25f, -1};
    const float want[4] = {1 - 3 + 0.25f, 2 + 2 + 1.5f - 1, -1 - 2 + 0.25f, -2 + 1 - 1};
    float out[4], fast[4];
    evit_linear_forward_ref(out, in, w, b, 2, 3, 2);
    evit_linear_forward(fast, in, w, b, 2, 3, 2);
    for (int i = 0; i < 4; i++) {
        CHECK(out[i] == want[i]);
        CHECK(fast[i] == want[i]);
    }
}

/* ---------------------------------------------------------------- attention */

static void check_attention(int B, int T, int H, int d, uint64_t seed, double scale)
{
    struct evit_rng r;
    evit_rng_seed(&r, seed);
    size_t nqkv = (size_t)B * T * 3 * H * d, nout = (size_t)B * T * H * d;
    size_t natt = (size_t)B * H * T * T;
    float *qkv = evit_alloc_floats(nqkv);
    float *out = evit_alloc_floats(nout), *out_ref = evit_alloc_floats(nout);
    float *att = evit_alloc_floats(natt), *att_ref = evit_alloc_floats(natt);
    fill_normal(qkv, nqkv, &r, scale);
    evit_attention_forward(out, att, qkv, B, T, H, d);
    evit_attention_forward_ref(out_ref, att_ref, qkv, B, T, H, d);

    /* att is a probability: compare absolutely */
    int bad = 0;
    for (size_t i = 0; i < natt; i++) {
        if (!(fabsf(att[i] - att_ref[i]) <= 1e-5f)) bad++;
    }
    CHECK(bad == 0);
    /* out is a convex combination of v rows: relative to the largest |v| */
    float vmax = max_abs(qkv, nqkv);
    bad = 0;
    for (size_t i = 0; i < nout; i++) {
        if (!(fabsf(out[i] - out_ref[i]) <= 1e-5f * vmax)) {
            if (bad < 5)
                fprintf(stderr, "  attention B=%d T=%d H=%d d=%d out[%zu] %.9g vs ref %.9g\n",
                        B, T, H, d, i, (double)out[i], (double)out_ref[i]);
            bad++;
        }
    }
    CHECK(bad == 0);
    /* every row of att sums to 1 and holds no negative or non-finite value */
    bad = 0;
    for (size_t row = 0; row < (size_t)B * H * T; row++) {
        double s = 0.0;
        for (int j = 0; j < T; j++) {
            float a = att[row * T + j];
            if (!(a >= 0.0f && a <= 1.0f)) bad++;
            s += (double)a;
        }
        if (!(fabs(s - 1.0) <= 1e-5)) bad++;
    }
    CHECK(bad == 0);
    evit_free_aligned(qkv);
    evit_free_aligned(out);
    evit_free_aligned(out_ref);
    evit_free_aligned(att);
    evit_free_aligned(att_ref);
}

static void attention_matches_its_ref_twin_and_rows_sum_to_one(void)
{
    check_attention(2, 5, 3, 4, 7, 1.0);
    check_attention(2, 50, 4, 16, 8, 1.0);
    check_attention(1, 1, 1, 1, 9, 1.0);
    check_attention(1, 197, 3, 64, 10, 1.0); /* deit: T = 197, d = 64 */
    check_attention(2, 33, 2, 20, 11, 1.0);  /* d not a multiple of the vector tile */
}

/* The first nq queries against all T keys: fast against ref, and equal
 * (to float rounding) to those rows of the full attention. */
static void check_attention_q(int B, int T, int nq, int H, int d, uint64_t seed)
{
    struct evit_rng r;
    evit_rng_seed(&r, seed);
    int I = H * d;
    size_t nqkv = (size_t)B * T * 3 * I, nout = (size_t)B * nq * I, natt = (size_t)B * H * nq * T;
    float *qkv = evit_alloc_floats(nqkv);
    float *out = evit_alloc_floats(nout), *out_ref = evit_alloc_floats(nout);
    float *att = evit_alloc_floats(natt), *att_ref = evit_alloc_floats(natt);
    float *full = evit_alloc_floats((size_t)B * T * I);
    float *full_att = evit_alloc_floats((size_t)B * H * T * T);
    fill_normal(qkv, nqkv, &r, 1.0);
    evit_attention_forward_q(out, att, qkv, B, T, nq, H, d);
    evit_attention_forward_q_ref(out_ref, att_ref, qkv, B, T, nq, H, d);
    evit_attention_forward(full, full_att, qkv, B, T, H, d);
    float vmax = max_abs(qkv, nqkv);
    int bad = 0;
    for (size_t i = 0; i < natt; i++) bad += !(fabsf(att[i] - att_ref[i]) <= 1e-5f);
    for (size_t i = 0; i < nout; i++) bad += !(fabsf(out[i] - out_ref[i]) <= 1e-5f * vmax);
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < nq; i++) {
            for (int c = 0; c < I; c++)
                bad += !(fabsf(out[((size_t)b * nq + i) * I + c] -
                               full[((size_t)b * T + i) * I + c]) <= 1e-5f * vmax);
            for (int h = 0; h < H; h++)
                for (int j = 0; j < T; j++)
                    bad += !(fabsf(att[(((size_t)b * H + h) * nq + i) * T + j] -
                                   full_att[(((size_t)b * H + h) * T + i) * T + j]) <= 1e-6f);
        }
    }
    if (bad)
        fprintf(stderr, "  attention_q B=%d T=%d nq=%d H=%d d=%d: %d mismatches\n", B, T, nq, H,
                d, bad);
    CHECK(bad == 0);
    float *bufs[] = {qkv, out, out_ref, att, att_ref, full, full_att};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) evit_free_aligned(bufs[i]);
}

static void attention_of_the_first_queries_matches_its_ref_twin_and_the_full_rows(void)
{
    check_attention_q(3, 50, 1, 4, 16, 21);   /* the last block: class token only */
    check_attention_q(2, 17, 1, 3, 5, 22);
    check_attention_q(2, 37, 19, 2, 8, 23);   /* a partial block of queries */
    check_attention_q(1, 197, 1, 3, 64, 24);
    check_attention_q(1, 1, 1, 1, 1, 25);
}

/* Proportional attention (Token Merging): a key bias of log s is the same
 * as s copies of that key and its value.  B 1, H 2, d 8: tokens 0..T-1 with
 * key 1 of size 3 against T + 2 tokens where it appears three times
 * (queries: the first T); fast against ref with the bias too. */
static void proportional_attention_counts_a_token_of_size_s_as_s_copies(void)
{
    enum { T = 9, H = 2, d = 8, I = H * d, T2 = T + 2 };
    struct evit_rng r;
    float qkv[T * 3 * I], qkv2[T2 * 3 * I], bias[T], out[T * I], out_ref[T * I], out2[T2 * I];
    float att[H * T * T], att2[H * T2 * T2];
    int bad = 0;
    evit_rng_seed(&r, 31);
    fill_normal(qkv, sizeof qkv / sizeof qkv[0], &r, 1.0);
    for (int j = 0; j < T; j++) bias[j] = j == 1 ? logf(3.0f) : 0.0f;
    /* tokens 0..T-1, then two more copies of token 1 (as keys and values) */
    memcpy(qkv2, qkv, sizeof qkv);
    for (int c = 0; c < 3 * I; c++) qkv2[T * 3 * I + c] = qkv2[(T + 1) * 3 * I + c] = qkv[3 * I + c];
    evit_attention_forward_qb(out, att, qkv, bias, 1, T, T, H, d);
    evit_attention_forward_qb_ref(out_ref, att, qkv, bias, 1, T, T, H, d);
    evit_attention_forward_q(out2, att2, qkv2, 1, T2, T, H, d);
    for (int i = 0; i < T * I; i++) {
        bad += !(fabsf(out[i] - out2[i]) <= 1e-5f);
        bad += !(fabsf(out[i] - out_ref[i]) <= 1e-5f);
    }
    CHECK(bad == 0);
    /* and a bias of zeros is no bias */
    for (int j = 0; j < T; j++) bias[j] = 0.0f;
    evit_attention_forward_qb(out, att, qkv, bias, 1, T, T, H, d);
    evit_attention_forward_q(out_ref, att, qkv, 1, T, T, H, d);
    CHECK(memcmp(out, out_ref, sizeof out) == 0);
}

static void attention_softmax_stays_finite_for_large_scores(void)
{
    /* scores of order 30^2 * 16 / 4: exp without max-subtraction overflows */
    check_attention(2, 17, 2, 16, 10, 30.0);
}

static void attention_pairs_q_and_k_of_the_same_head_scaled_by_root_d(void)
{
    /* B=1, T=2, H=2, d=1: head h reads channel h of each of the q, k, v
     * thirds.  Row layout: q0 q1 | k0 k1 | v0 v1. */
    const float qkv[12] = {
        1.0f, 0.0f, /* q, token 0 */ 2.0f, 5.0f, /* k, token 0 */ 10.0f, 100.0f, /* v, token 0 */
        0.5f, 1.0f, /* q, token 1 */ 0.0f, 3.0f, /* k, token 1 */ 20.0f, 300.0f, /* v, token 1 */
    };
    float out[4], att[8];
    evit_attention_forward(out, att, qkv, 1, 2, 2, 1);
    /* head 0: scores token i vs j = q0_i * k0_j (d = 1, scale 1) */
    double s00[2] = {1.0 * 2.0, 1.0 * 0.0}, s01[2] = {0.5 * 2.0, 0.5 * 0.0};
    double s10[2] = {0.0 * 5.0, 0.0 * 3.0}, s11[2] = {1.0 * 5.0, 1.0 * 3.0};
    const double *s[4] = {s00, s01, s10, s11};
    const double v[2][2] = {{10.0, 20.0}, {100.0, 300.0}}; /* v[h][token] */
    for (int h = 0; h < 2; h++) {
        for (int i = 0; i < 2; i++) {
            const double *si = s[h * 2 + i];
            double e0 = exp(si[0]), e1 = exp(si[1]);
            double p0 = e0 / (e0 + e1), p1 = e1 / (e0 + e1);
            CHECK_NEAR(att[(h * 2 + i) * 2 + 0], p0, 1e-6);
            CHECK_NEAR(att[(h * 2 + i) * 2 + 1], p1, 1e-6);
            CHECK_NEAR(out[i * 2 + h], p0 * v[h][0] + p1 * v[h][1], 1e-6 * 300.0);
        }
    }
    /* d = 4 scales scores by 1/2: one head, two tokens, q.k = 4 against 0 */
    const float qkv4[24] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0,
                            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1};
    float out4[8], att4[4];
    evit_attention_forward(out4, att4, qkv4, 1, 2, 1, 4);
    double p = exp(2.0) / (exp(2.0) + 1.0); /* token 0: scores 4/2 and 0 */
    CHECK_NEAR(att4[0], p, 1e-6);
    CHECK_NEAR(att4[1], 1.0 - p, 1e-6);
    CHECK_NEAR(att4[2], 0.5, 1e-6); /* token 1: q = 0 */
    CHECK_NEAR(out4[0], 1.0 - p, 1e-6);
}

/* ---------------------------------------------------------------- layernorm */

static void check_layernorm(int N, int D, double offset, uint64_t seed)
{
    struct evit_rng r;
    evit_rng_seed(&r, seed);
    float *in = evit_alloc_floats((size_t)N * D), *out = evit_alloc_floats((size_t)N * D);
    float *w = evit_alloc_floats((size_t)D), *b = evit_alloc_floats((size_t)D);
    float *mean = evit_alloc_floats((size_t)N), *rstd = evit_alloc_floats((size_t)N);
    for (size_t i = 0; i < (size_t)N * D; i++) in[i] = (float)(offset + evit_rng_normal(&r));
    for (int i = 0; i < D; i++) {
        w[i] = (float)(1.0 + 0.5 * evit_rng_normal(&r));
        b[i] = (float)(0.5 * evit_rng_normal(&r));
    }
    evit_layernorm_forward(out, mean, rstd, in, w, b, N, D);
    int bad = 0;
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * D;
        double m = 0.0, v = 0.0;
        for (int i = 0; i < D; i++) m += (double)x[i];
        m /= D;
        for (int i = 0; i < D; i++) v += ((double)x[i] - m) * ((double)x[i] - m);
        v /= D; /* biased, as PyTorch */
        double rs = 1.0 / sqrt(v + 1e-6);
        if (!(fabs((double)mean[n] - m) <= 1e-6 * (fabs(m) + 1.0))) bad++;
        if (!(fabs((double)rstd[n] - rs) <= 1e-5 * rs)) bad++;
        for (int i = 0; i < D; i++) {
            double want = ((double)x[i] - m) * rs * (double)w[i] + (double)b[i];
            /* (x - m) * rstd is O(1); the error scales with |w| */
            double tol = 1e-5 * (fabs(want) + fabs((double)w[i]) + 1e-3);
            if (!(fabs((double)out[(size_t)n * D + i] - want) <= tol)) {
                if (bad < 5)
                    fprintf(stderr, "  layernorm N=%d D=%d at (%d,%d): %.9g vs %.9g\n", N, D, n, i,
                            (double)out[(size_t)n * D + i], want);
                bad++;
            }
        }
    }
    CHECK(bad == 0);
    evit_free_aligned(in);
    evit_free_aligned(out);
    evit_free_aligned(w);
    evit_free_aligned(b);
    evit_free_aligned(mean);
    evit_free_aligned(rstd);
}

static void layernorm_matches_a_double_computation_with_mean_and_rstd(void)
{
    check_layernorm(7, 64, 0.0, 21);
    check_layernorm(3, 193, 0.0, 22);
    check_layernorm(130, 12, 0.0, 23); /* N > 64 takes the OpenMP path */
    check_layernorm(5, 192, 3.0, 24);  /* mean far from zero */
}

static void layernorm_uses_biased_variance_and_eps_one_in_a_million(void)
{
    /* x = (1, 3): mean 2, biased variance 1 (unbiased would be 2) */
    const float x[2] = {1.0f, 3.0f}, w[2] = {1.0f, 1.0f}, b[2] = {0.0f, 0.0f};
    float y[2], mean, rstd;
    evit_layernorm_forward(y, &mean, &rstd, x, w, b, 1, 2);
    CHECK(mean == 2.0f);
    CHECK_NEAR(rstd, 1.0 / sqrt(1.0 + 1e-6), 1e-7);
    CHECK_NEAR(y[0], -1.0 / sqrt(1.0 + 1e-6), 1e-7);
    CHECK_NEAR(y[1], 1.0 / sqrt(1.0 + 1e-6), 1e-7);
    /* a constant row: variance 0, so rstd = 1/sqrt(eps) = 1000 exactly in double */
    const float c[3] = {5.0f, 5.0f, 5.0f}, w3[3] = {2.0f, 2.0f, 2.0f}, b3[3] = {0.5f, -1.0f, 0.0f};
    float y3[3];
    evit_layernorm_forward(y3, &mean, &rstd, c, w3, b3, 1, 3);
    CHECK_NEAR(rstd, 1000.0, 1000.0 * 1e-6);
    CHECK(y3[0] == 0.5f && y3[1] == -1.0f && y3[2] == 0.0f);
    /* NULL mean and rstd are allowed (inference) */
    evit_layernorm_forward(y, NULL, NULL, x, w, b, 1, 2);
    CHECK_NEAR(y[1], 1.0 / sqrt(1.0 + 1e-6), 1e-7);
}

/* ---------------------------------------------------------------- gelu */

static void gelu_matches_the_exact_erf_form_in_double(void)
{
    enum { n = 4001 };
    float *x = evit_alloc_floats(n), *y = evit_alloc_floats(n);
    for (int i = 0; i < n; i++) x[i] = (float)(-10.0 + 20.0 * i / (n - 1));
    x[0] = 0.0f;
    x[1] = -1e-4f;
    x[2] = 30.0f;
    x[3] = -30.0f;
    evit_gelu_forward(y, x, n);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        double xi = (double)x[i], want = 0.5 * xi * (1.0 + erf(xi / sqrt(2.0)));
        /* float rounding of x*(1+erf) is relative to |x|, not to the (possibly
         * cancelled) result; the tanh approximation is off by up to 1e-3 */
        if (!(fabs((double)y[i] - want) <= 1e-6 * fmax(1.0, fabs(xi)))) {
            if (bad < 5) fprintf(stderr, "  gelu(%.9g) = %.9g, want %.9g\n", xi, (double)y[i], want);
            bad++;
        }
    }
    CHECK(bad == 0);
    CHECK(y[0] == 0.0f);
    CHECK(y[2] == 30.0f);
    CHECK(fabsf(y[3]) <= 1e-30f);
    /* the sample where exact and tanh GELU differ most clearly */
    float a = 2.0f, ga;
    evit_gelu_forward(&ga, &a, 1);
    CHECK_NEAR(ga, 1.9544997361036416, 2e-7);
    /* the OpenMP path (n > 65536) agrees with the serial one */
    enum { big = 70000 };
    float *bx = evit_alloc_floats(big), *by = evit_alloc_floats(big);
    for (int i = 0; i < big; i++) bx[i] = x[i % n];
    evit_gelu_forward(by, bx, big);
    bad = 0;
    for (int i = 0; i < big; i++) bad += by[i] != y[i % n];
    CHECK(bad == 0);
    evit_free_aligned(x);
    evit_free_aligned(y);
    evit_free_aligned(bx);
    evit_free_aligned(by);
}

/* ---------------------------------------------------------------- residual */

static void residual_adds_elementwise_and_may_alias_its_first_input(void)
{
    float a[5] = {1, -2, 3.5f, 0, 1e-3f};
    const float b[5] = {0.5f, 2, -1, 7, 1e-3f};
    float out[5];
    evit_residual_forward(out, a, b, 5);
    for (int i = 0; i < 5; i++) CHECK(out[i] == a[i] + b[i]);
    evit_residual_forward(a, a, b, 5);
    for (int i = 0; i < 5; i++) CHECK(a[i] == out[i]);
}

/* ---------------------------------------------------------------- patchify */

/* 2 images, 4x4, 2 channels, HWC; pixel (y, x, c) of image k is
 * 100*c + 10*y + x + 40*k, so every value says where it came from. */
static void make_image(uint8_t img[2][4][4][2])
{
    for (int k = 0; k < 2; k++)
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++)
                for (int c = 0; c < 2; c++) img[k][y][x][c] = (uint8_t)(100 * c + 10 * y + x + 40 * k);
}

/* How many of the 2 x 4 patches' 8 columns of make_image's images differ
 * from (pixel / 255 - mean[c]) / sd[c], taken from column c*P*P + py*P + px
 * of patch gy*G + gx (P 2, G 2), by more than float rounding. */
static int patch_mismatches(const float *out /* (2, 4, 8) */, uint8_t img[2][4][4][2], const float *mean,
                            const float *sd)
{
    int bad = 0;
    for (int k = 0; k < 2; k++)
        for (int g = 0; g < 4; g++)
            for (int c = 0; c < 2; c++)
                for (int py = 0; py < 2; py++)
                    for (int px = 0; px < 2; px++) {
                        int gy = g / 2, gx = g % 2;
                        double v = img[k][gy * 2 + py][gx * 2 + px][c];
                        double want = (v / 255.0 - (double)mean[c]) / (double)sd[c];
                        double got = out[(k * 4 + g) * 8 + c * 4 + py * 2 + px];
                        bad += !(fabs(got - want) <= 1e-6 * fmax(1.0, fabs(want)));
                    }
    return bad;
}

static void patchify_orders_columns_channel_then_row_then_column_like_a_conv_weight(void)
{
    uint8_t img[2][4][4][2];
    make_image(img);
    const float mean[2] = {0.0f, 0.0f}, sd[2] = {1.0f, 1.0f};
    float out[2 * 4 * 8];
    evit_patchify(out, &img[0][0][0][0], mean, sd, 2, 4, 4, 2, 2);
    /* image 0, patch 1 (gy 0, gx 1) by hand: channel 0 pixels (0,2) (0,3)
     * (1,2) (1,3), then channel 1 at the same places */
    const int want1[8] = {2, 3, 12, 13, 102, 103, 112, 113};
    for (int j = 0; j < 8; j++) CHECK(lrintf(out[1 * 8 + j] * 255.0f) == want1[j]);
    /* image 1, patch 2 (gy 1, gx 0): rows 2..3, columns 0..1, +40 */
    const int want2[8] = {60, 61, 70, 71, 160, 161, 170, 171};
    for (int j = 0; j < 8; j++) CHECK(lrintf(out[(4 + 2) * 8 + j] * 255.0f) == want2[j]);
    /* everywhere: column c*P*P + py*P + px of patch gy*G+gx */
    CHECK(patch_mismatches(out, img, mean, sd) == 0);
}

static void patchify_normalises_each_channel_by_its_mean_and_std(void)
{
    uint8_t img[2][4][4][2];
    make_image(img);
    img[0][0][0][0] = 0;
    img[0][0][0][1] = 255;
    const float mean[2] = {0.5f, 0.25f}, sd[2] = {0.2f, 0.4f};
    float out[2 * 4 * 8];
    evit_patchify(out, &img[0][0][0][0], mean, sd, 2, 4, 4, 2, 2);
    CHECK(patch_mismatches(out, img, mean, sd) == 0);
    CHECK_NEAR(out[0], (0.0 - 0.5) / 0.2, 1e-6);   /* pixel 0, channel 0 */
    CHECK_NEAR(out[4], (1.0 - 0.25) / 0.4, 1e-6);  /* pixel 255, channel 1 */
}

/* ---------------------------------------------------------------- embed */

static void embed_puts_the_class_token_first_and_adds_positions(void)
{
    enum { B = 2, T = 4, D = 3 };
    float pe[B * (T - 1) * D], cls[D], pos[T * D], x[B * T * D];
    for (int i = 0; i < B * (T - 1) * D; i++) pe[i] = 1000.0f * (float)(i + 1);
    for (int i = 0; i < D; i++) cls[i] = 0.5f + (float)i;
    for (int i = 0; i < T * D; i++) pos[i] = 0.01f * (float)(i + 1);
    for (int i = 0; i < B * T * D; i++) x[i] = NAN;
    evit_embed_forward(x, pe, cls, pos, B, T, D);
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < D; i++) CHECK(x[(b * T) * D + i] == cls[i] + pos[i]);
        for (int t = 1; t < T; t++)
            for (int i = 0; i < D; i++)
                CHECK(x[(b * T + t) * D + i] == pe[(b * (T - 1) + t - 1) * D + i] + pos[t * D + i]);
    }
}

/* ---------------------------------------------------------------- xent */

static double lse_loss(const float *z, int K, int y)
{
    double mx = z[0];
    for (int k = 1; k < K; k++) mx = fmax(mx, (double)z[k]);
    double s = 0.0;
    for (int k = 0; k < K; k++) s += exp((double)z[k] - mx);
    return mx + log(s) - (double)z[y];
}

static void xent_matches_log_sum_exp_by_hand_and_sums_the_rows(void)
{
    enum { B = 5, K = 7 };
    struct evit_rng r;
    evit_rng_seed(&r, 31);
    float z[B * K], loss[B];
    int32_t y[B] = {0, 6, 3, 3, 1};
    fill_normal(z, B * K, &r, 3.0);
    double total = evit_xent_forward(loss, z, y, B, K);
    double want_total = 0.0;
    for (int b = 0; b < B; b++) {
        double l = lse_loss(z + b * K, K, y[b]);
        CHECK_NEAR(loss[b], l, 1e-6 * fmax(1.0, l));
        CHECK(loss[b] >= 0.0f);
        want_total += l;
    }
    CHECK_NEAR(total, want_total, 1e-12 * want_total);
    /* loss may be NULL */
    CHECK(evit_xent_forward(NULL, z, y, B, K) == total);
    /* uniform logits: log K */
    const float u[4] = {2.5f, 2.5f, 2.5f, 2.5f};
    const int32_t y0 = 2;
    CHECK_NEAR(evit_xent_forward(NULL, u, &y0, 1, 4), log(4.0), 1e-12);
}

static void xent_is_stable_for_large_logits(void)
{
    /* exp(1000) overflows a double; the answer is log(e^-1 + 1 + e^-2) + 1 */
    const float z[6] = {1000.0f, 1001.0f, 999.0f, -1000.0f, -1001.0f, -999.0f};
    const int32_t y[2] = {0, 1};
    float loss[2];
    double total = evit_xent_forward(loss, z, y, 2, 3);
    double l0 = 1.0 + log(exp(-1.0) + 1.0 + exp(-2.0));
    double l1 = 2.0 + log(exp(-1.0) + exp(-2.0) + 1.0); /* max -999, label -1001 */
    CHECK(isfinite(loss[0]) && isfinite(loss[1]));
    CHECK_NEAR(loss[0], l0, 1e-6);
    CHECK_NEAR(loss[1], l1, 1e-6);
    CHECK_NEAR(total, l0 + l1, 1e-9);
    /* a confident right answer costs about e^-50, not 0 - 0 garbage or NaN */
    const float c[2] = {50.0f, 0.0f};
    const int32_t c0 = 0;
    double lc = evit_xent_forward(NULL, c, &c0, 1, 2);
    CHECK(lc >= 0.0 && lc <= 2.0 * exp(-50.0));
}

/* ---------------------------------------------------------------- segmentation */

static void upsampling_by_four_interpolates_as_pytorch_bilinear_without_corner_alignment(void)
{
    /* F.interpolate(torch.tensor([[[[0., 1.]]]]), size=(1, 4), mode="bilinear",
     * align_corners=False) is [0, 0.25, 0.75, 1]: sources -0.25 (clamped to
     * 0), 0.25, 0.75, 1.25 (clamped to the last pixel) */
    float in[2 * 2] = {0.0f, 10.0f, 1.0f, 20.0f}; /* (1, 1, 2, K=2) */
    float out[4 * 2];
    evit_upsample_forward(out, in, 1, 1, 2, 1, 4, 2);
    const float want0[4] = {0.0f, 0.25f, 0.75f, 1.0f};
    for (int x = 0; x < 4; x++) {
        CHECK_NEAR(out[2 * x], want0[x], 1e-7);
        CHECK_NEAR(out[2 * x + 1], 10.0f + 10.0f * want0[x], 1e-5);
    }
    /* 2x2 -> 3x3 (scale 2/3): the centre pixel reads source (0.5, 0.5),
     * the mean of all four */
    float g[4] = {1.0f, 2.0f, 3.0f, 4.0f}, o9[9];
    evit_upsample_forward(o9, g, 1, 2, 2, 3, 3, 1);
    CHECK_NEAR(o9[4], 2.5f, 1e-6);
    CHECK_NEAR(o9[0], 1.0f, 1e-6); /* source -1/6, clamped to 0 */
    CHECK_NEAR(o9[8], 4.0f, 1e-6); /* source 7/6, clamped to the last */
}

static void upsampling_to_the_same_size_is_the_identity(void)
{
    struct evit_rng r;
    evit_rng_seed(&r, 3);
    float in[2 * 3 * 4 * 5], out[2 * 3 * 4 * 5];
    for (int i = 0; i < 120; i++) in[i] = (float)evit_rng_normal(&r);
    evit_upsample_forward(out, in, 2, 3, 4, 3, 4, 5);
    CHECK(memcmp(in, out, sizeof in) == 0);
}

static void pixel_cross_entropy_leaves_out_ignored_pixels_and_averages_the_rest(void)
{
    struct evit_rng r;
    evit_rng_seed(&r, 4);
    float z[5 * 3];
    for (int i = 0; i < 15; i++) z[i] = (float)evit_rng_normal(&r);
    const uint8_t mask[5] = {2, 255, 0, 1, 255};
    const int32_t lab[3] = {2, 0, 1};
    float kept[3 * 3];
    memcpy(kept, z, 3 * sizeof(float));
    memcpy(kept + 3, z + 6, 6 * sizeof(float));
    size_t n = 0;
    double loss = evit_xent_pixels_forward(&n, z, mask, 255, 5, 3);
    CHECK(n == 3);
    CHECK_NEAR(loss, evit_xent_forward(NULL, kept, lab, 3, 3) / 3.0, 1e-12);
    /* nothing labelled: zero, and no gradient */
    const uint8_t none[2] = {255, 255};
    float dz[6] = {0};
    CHECK(evit_xent_pixels_forward(&n, z, none, 255, 2, 3) == 0.0 && n == 0);
    evit_xent_pixels_backward(dz, z, none, 255, 1.0f, 2, 3);
    for (int i = 0; i < 6; i++) CHECK(dz[i] == 0.0f);
    /* ignore -1: every pixel counts (a uint8 mask never holds -1) */
    const uint8_t all[2] = {0, 2};
    CHECK(evit_xent_pixels_forward(&n, z, all, -1, 2, 3) > 0.0 && n == 2);
}

/* The pixel losses and the upsampling run on threads over a batch of
 * scenes; every thread count gives the same bits (the losses' sums go in
 * fixed chunks), and the chunked sums equal one serial pass closely. */
static void pixel_losses_and_upsampling_give_the_same_bits_at_any_thread_count(void)
{
#ifdef _OPENMP
    enum { B = 3, G = 6, S = 48, K = 5 };
    size_t P = (size_t)B * S * S;
    struct evit_rng r;
    evit_rng_seed(&r, 8);
    float *z = malloc(sizeof(float) * B * G * G * K), *zt = malloc(sizeof(float) * B * G * G * K);
    float *u[2], *ut[2], *du[2], *dz[2];
    uint8_t *mask = malloc(P);
    double loss[2][2];
    for (int i = 0; i < B * G * G * K; i++) z[i] = (float)evit_rng_normal(&r), zt[i] = (float)evit_rng_normal(&r);
    for (size_t p = 0; p < P; p++) mask[p] = (uint8_t)(p % 13 == 0 ? 255 : evit_rng_below(&r, K));
    int was = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t ? 3 : 1);
        u[t] = malloc(sizeof(float) * P * K), ut[t] = malloc(sizeof(float) * P * K);
        du[t] = calloc(P * K, sizeof(float)), dz[t] = calloc((size_t)B * G * G * K, sizeof(float));
        evit_upsample_forward(u[t], z, B, G, G, S, S, K);
        evit_upsample_forward(ut[t], zt, B, G, G, S, S, K);
        loss[t][0] = evit_xent_pixels_forward(NULL, u[t], mask, 255, P, K);
        loss[t][1] = evit_kd_forward(u[t], ut[t], 2.0f, (int)P, K);
        evit_xent_pixels_backward(du[t], u[t], mask, 255, 0.5f, P, K);
        evit_kd_backward(du[t], u[t], ut[t], 2.0f, 0.5f, (int)P, K);
        evit_upsample_backward(dz[t], du[t], B, G, G, S, S, K);
    }
    omp_set_num_threads(was);
    CHECK(memcmp(u[0], u[1], sizeof(float) * P * K) == 0);
    CHECK(memcmp(&loss[0], &loss[1], sizeof loss[0]) == 0);
    CHECK(memcmp(du[0], du[1], sizeof(float) * P * K) == 0);
    CHECK(memcmp(dz[0], dz[1], sizeof(float) * B * G * G * K) == 0);
    /* against one serial sum in double */
    double serial = 0.0;
    size_t n = 0;
    for (size_t p = 0; p < P; p++) {
        if (mask[p] == 255) continue;
        double m = -INFINITY, e = 0.0;
        for (int k = 0; k < K; k++) m = fmax(m, (double)u[0][p * K + k]);
        for (int k = 0; k < K; k++) e += exp((double)u[0][p * K + k] - m);
        serial += m + log(e) - (double)u[0][p * K + mask[p]];
        n++;
    }
    CHECK_NEAR(loss[0][0], serial / (double)n, 1e-9);
    for (int t = 0; t < 2; t++) {
        free(u[t]);
        free(ut[t]);
        free(du[t]);
        free(dz[t]);
    }
    free(z);
    free(zt);
    free(mask);
#endif
}

int main(void)
{
    RUN(linear_matches_its_ref_twin_with_and_without_bias);
    RUN(pixel_losses_and_upsampling_give_the_same_bits_at_any_thread_count);
    RUN(upsampling_by_four_interpolates_as_pytorch_bilinear_without_corner_alignment);
    RUN(upsampling_to_the_same_size_is_the_identity);
    RUN(pixel_cross_entropy_leaves_out_ignored_pixels_and_averages_the_rest);
    RUN(linear_ref_computes_in_times_w_transposed_plus_bias);
    RUN(attention_matches_its_ref_twin_and_rows_sum_to_one);
    RUN(attention_of_the_first_queries_matches_its_ref_twin_and_the_full_rows);
    RUN(proportional_attention_counts_a_token_of_size_s_as_s_copies);
    RUN(attention_softmax_stays_finite_for_large_scores);
    RUN(attention_pairs_q_and_k_of_the_same_head_scaled_by_root_d);
    RUN(layernorm_matches_a_double_computation_with_mean_and_rstd);
    RUN(layernorm_uses_biased_variance_and_eps_one_in_a_million);
    RUN(gelu_matches_the_exact_erf_form_in_double);
    RUN(residual_adds_elementwise_and_may_alias_its_first_input);
    RUN(patchify_orders_columns_channel_then_row_then_column_like_a_conv_weight);
    RUN(patchify_normalises_each_channel_by_its_mean_and_std);
    RUN(embed_puts_the_class_token_first_and_adds_positions);
    RUN(xent_matches_log_sum_exp_by_hand_and_sums_the_rows);
    RUN(xent_is_stable_for_large_logits);
    return test_summary();
}
