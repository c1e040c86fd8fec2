/* test_grad.c: every backward op of ops.h, and the backward pass of the whole
 * model, against central differences of the matching forward.
 *
 * The ops are float32, so each check differentiates a scalar accumulated in
 * double, L = sum_i out_i r_i with a fixed random projection r, and takes
 *   dL/dx_j ~ (L(x_j + h) - L(x_j - h)) / (x_j+h - x_j-h)
 * with h = 1e-2 and the difference of the two float arguments as actually
 * stored.  An analytic value a matches a numerical value n when
 *   |a - n| <= 1e-2 * max(|a|, |n|, 0.05 * max_j |n_j|)
 * the floor being relative to the largest gradient of the same tensor, so
 * that a small but wrong gradient still fails.
 *
 * Every gradient buffer starts out holding random values, and the analytic
 * gradient is what backward added to them: a backward that overwrote instead
 * of accumulating fails every check. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "head.h"
#include "merge.h"
#include "ops.h"
#include "rng.h"
#include "test.h"
#include "fixture.h"
#include "util.h"
#include "vit.h"

#define FD_STEP 1e-2
#define FD_RTOL 1e-2
#define FD_FLOOR 0.05

static struct evit_rng rng;

static float *normal_floats(size_t n, double scale)
{
    float *x = evit_alloc_floats(n);
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * evit_rng_normal(&rng));
    return x;
}

static float *copy_floats(const float *x, size_t n)
{
    float *y = evit_alloc_floats(n);
    memcpy(y, x, n * sizeof(float));
    return y;
}

static double dot(const float *x, const float *r, size_t n)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) acc += (double)x[i] * (double)r[i];
    return acc;
}

typedef double (*loss_fn)(void *ctx);

/* Checks the gradient that backward added to a buffer (after - before, before
 * NULL for zero) against central differences of L in x (n values).  Returns
 * the number of mismatches, printing the first few. */
static int grad_mismatches(const char *what, float *x, const float *after, const float *before,
                           size_t n, loss_fn L, void *ctx)
{
    double *num = malloc(n * sizeof *num);
    double nmax = 0.0;
    for (size_t j = 0; j < n; j++) {
        float x0 = x[j], xp = (float)((double)x0 + FD_STEP), xm = (float)((double)x0 - FD_STEP);
        x[j] = xp;
        double lp = L(ctx);
        x[j] = xm;
        double lm = L(ctx);
        x[j] = x0;
        num[j] = (lp - lm) / ((double)xp - (double)xm);
        nmax = fabs(num[j]) > nmax ? fabs(num[j]) : nmax;
    }
    int bad = 0;
    for (size_t j = 0; j < n; j++) {
        double a = (double)after[j] - (before ? (double)before[j] : 0.0);
        double scale = fmax(fmax(fabs(a), fabs(num[j])), FD_FLOOR * nmax);
        if (!(fabs(a - num[j]) <= FD_RTOL * scale)) {
            if (bad < 4)
                fprintf(stderr, "  d%s[%zu]: analytic %.7g, central difference %.7g\n", what, j,
                        a, num[j]);
            bad++;
        }
    }
    if (bad > 4) fprintf(stderr, "  d%s: %d of %zu mismatch\n", what, bad, n);
    /* a gradient identically zero would pass vacuously */
    if (nmax == 0.0) {
        fprintf(stderr, "  d%s: every central difference is zero\n", what);
        bad++;
    }
    free(num);
    return bad;
}

/* Maximum of |x - y| / (1 + |y|). */
static double max_rel_diff(const float *x, const float *y, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)x[i] - (double)y[i]) / (1.0 + fabs((double)y[i]));
        m = e > m ? e : m;
    }
    return m;
}

/* ---------------------------------------------------------------- linear */

struct linear_ctx {
    float *out, *in, *w, *b, *r;
    int N, I, O;
};

static double linear_loss(void *p)
{
    struct linear_ctx *c = p;
    evit_linear_forward(c->out, c->in, c->w, c->b, c->N, c->I, c->O);
    return dot(c->out, c->r, (size_t)c->N * c->O);
}

static void linear_backward_matches_central_differences(void)
{
    evit_rng_seed(&rng, 1);
    int N = 3, I = 5, O = 4;
    size_t ni = (size_t)N * I, oi = (size_t)O * I, no = (size_t)N * O;
    struct linear_ctx c = {evit_alloc_floats(no), normal_floats(ni, 1.0), normal_floats(oi, 0.5),
                           normal_floats((size_t)O, 0.5), normal_floats(no, 1.0), N, I, O};
    float *din = normal_floats(ni, 1.0), *dw = normal_floats(oi, 1.0);
    float *db = normal_floats((size_t)O, 1.0);
    float *din0 = copy_floats(din, ni), *dw0 = copy_floats(dw, oi), *db0 = copy_floats(db, (size_t)O);
    /* L = sum out r, so dL/dout = r */
    evit_linear_backward(din, dw, db, c.r, c.in, c.w, N, I, O);
    CHECK(grad_mismatches("in", c.in, din, din0, ni, linear_loss, &c) == 0);
    CHECK(grad_mismatches("w", c.w, dw, dw0, oi, linear_loss, &c) == 0);
    CHECK(grad_mismatches("b", c.b, db, db0, (size_t)O, linear_loss, &c) == 0);

    /* no input gradient and no bias: only dw moves */
    float *dw1 = copy_floats(dw, oi), *b = c.b;
    c.b = NULL;
    evit_linear_backward(NULL, dw1, NULL, c.r, c.in, c.w, N, I, O);
    CHECK(grad_mismatches("w (no bias)", c.w, dw1, dw, oi, linear_loss, &c) == 0);
    float *bufs[] = {c.out, c.in, c.w, b, c.r, din, dw, db, din0, dw0, db0, dw1};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) evit_free_aligned(bufs[i]);
}

static void linear_backward_matches_its_ref_twin(void)
{
    static const int shapes[][3] = {{1, 1, 1}, {3, 5, 1}, {1, 13, 9}, {17, 33, 65},
                                    {65, 64, 192}, {31, 129, 257}};
    evit_rng_seed(&rng, 2);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], I = shapes[s][1], O = shapes[s][2];
        size_t ni = (size_t)N * I, oi = (size_t)O * I, no = (size_t)N * O;
        float *in = normal_floats(ni, 1.0), *w = normal_floats(oi, 0.5);
        float *dout = normal_floats(no, 1.0);
        float *din = normal_floats(ni, 1.0), *dw = normal_floats(oi, 1.0);
        float *db = normal_floats((size_t)O, 1.0);
        float *din_r = copy_floats(din, ni), *dw_r = copy_floats(dw, oi);
        float *db_r = copy_floats(db, (size_t)O);
        evit_linear_backward(din, dw, db, dout, in, w, N, I, O);
        evit_linear_backward_ref(din_r, dw_r, db_r, dout, in, w, N, I, O);
        double e = fmax(fmax(max_rel_diff(din, din_r, ni), max_rel_diff(dw, dw_r, oi)),
                        max_rel_diff(db, db_r, (size_t)O));
        if (!(e <= 1e-4)) {
            fprintf(stderr, "  linear backward N=%d I=%d O=%d: fast vs ref %.3g\n", N, I, O, e);
            CHECK(e <= 1e-4);
        }
        float *bufs[] = {in, w, dout, din, dw, db, din_r, dw_r, db_r};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) evit_free_aligned(bufs[i]);
    }
}

/* ---------------------------------------------------------------- layernorm */

struct layernorm_ctx {
    float *out, *mean, *rstd, *in, *w, *b, *r;
    int N, D;
};

static double layernorm_loss(void *p)
{
    struct layernorm_ctx *c = p;
    evit_layernorm_forward(c->out, c->mean, c->rstd, c->in, c->w, c->b, c->N, c->D);
    return dot(c->out, c->r, (size_t)c->N * c->D);
}

static void layernorm_backward_matches_central_differences(void)
{
    evit_rng_seed(&rng, 3);
    int N = 4, D = 8;
    size_t nd = (size_t)N * D;
    struct layernorm_ctx c = {evit_alloc_floats(nd), evit_alloc_floats((size_t)N),
                              evit_alloc_floats((size_t)N), normal_floats(nd, 1.0),
                              normal_floats((size_t)D, 1.0), normal_floats((size_t)D, 1.0),
                              normal_floats(nd, 1.0), N, D};
    /* an offset row: the gradient must not depend on the mean */
    for (int i = 0; i < D; i++) c.in[i] += 3.0f;
    for (int i = 0; i < D; i++) c.w[i] += 1.0f;
    layernorm_loss(&c);
    float *din = normal_floats(nd, 1.0), *dw = normal_floats((size_t)D, 1.0);
    float *db = normal_floats((size_t)D, 1.0);
    float *din0 = copy_floats(din, nd), *dw0 = copy_floats(dw, (size_t)D);
    float *db0 = copy_floats(db, (size_t)D);
    evit_layernorm_backward(din, dw, db, c.r, c.in, c.mean, c.rstd, c.w, N, D);
    CHECK(grad_mismatches("in", c.in, din, din0, nd, layernorm_loss, &c) == 0);
    CHECK(grad_mismatches("w", c.w, dw, dw0, (size_t)D, layernorm_loss, &c) == 0);
    CHECK(grad_mismatches("b", c.b, db, db0, (size_t)D, layernorm_loss, &c) == 0);
    float *bufs[] = {c.out, c.mean, c.rstd, c.in, c.w, c.b, c.r, din, dw, db, din0, dw0, db0};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) evit_free_aligned(bufs[i]);
}

/* ---------------------------------------------------------------- gelu, relu, residual */

/* An elementwise op's forward and backward. */
struct pointwise_ctx {
    float *out, *in, *r;
    size_t n;
    void (*forward)(float *out, const float *in, size_t n);
};

static double pointwise_loss(void *p)
{
    struct pointwise_ctx *c = p;
    c->forward(c->out, c->in, c->n);
    return dot(c->out, c->r, c->n);
}

/* Inputs -4 .. 4 in n steps, shifted by 0.01: both tails and the bend
 * around zero, no input at zero itself. */
static int pointwise_mismatches(void (*forward)(float *, const float *, size_t),
                                void (*backward)(float *, const float *, const float *, size_t))
{
    size_t n = 41;
    struct pointwise_ctx c = {evit_alloc_floats(n), evit_alloc_floats(n), normal_floats(n, 1.0), n, forward};
    for (size_t i = 0; i < n; i++) c.in[i] = (float)(-4.0 + 8.0 * (double)i / (double)(n - 1) + 0.01);
    float *din = normal_floats(n, 1.0), *din0 = copy_floats(din, n);
    backward(din, c.r, c.in, n);
    int bad = grad_mismatches("in", c.in, din, din0, n, pointwise_loss, &c);
    float *bufs[] = {c.out, c.in, c.r, din, din0};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) evit_free_aligned(bufs[i]);
    return bad;
}

static void gelu_backward_matches_central_differences(void)
{
    evit_rng_seed(&rng, 4);
    CHECK(pointwise_mismatches(evit_gelu_forward, evit_gelu_backward) == 0);
}

/* ReLU's kink is at 0; the nearest input, 0.01, is one step h above it,
 * so its central difference still lies on one side. */
static void relu_backward_matches_central_differences(void)
{
    evit_rng_seed(&rng, 6);
    CHECK(pointwise_mismatches(evit_relu_forward, evit_relu_backward) == 0);
}

struct residual_ctx {
    float *out, *a, *b, *r;
    size_t n;
};

static double residual_loss(void *p)
{
    struct residual_ctx *c = p;
    evit_residual_forward(c->out, c->a, c->b, c->n);
    return dot(c->out, c->r, c->n);
}

static void residual_backward_matches_central_differences(void)
{
    evit_rng_seed(&rng, 5);
    size_t n = 12;
    struct residual_ctx c = {evit_alloc_floats(n), normal_floats(n, 1.0), normal_floats(n, 1.0),
                             normal_floats(n, 1.0), n};
    float *da = normal_floats(n, 1.0), *db = normal_floats(n, 1.0);
    float *da0 = copy_floats(da, n), *db0 = copy_floats(db, n);
    evit_residual_backward(da, db, c.r, n);
    CHECK(grad_mismatches("a", c.a, da, da0, n, residual_loss, &c) == 0);
    CHECK(grad_mismatches("b", c.b, db, db0, n, residual_loss, &c) == 0);
    float *bufs[] = {c.out, c.a, c.b, c.r, da, db, da0, db0};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) evit_free_aligned(bufs[i]);
}

/* ---------------------------------------------------------------- merge */

struct merge_ctx {
    float *out, *so, *x, *s, *r;
    int *dst;
    int T, R, D;
};

static double merge_loss(void *p)
{
    struct merge_ctx *c = p;
    evit_merge_forward(c->out, c->so, c->x, c->s, c->dst, c->T, c->R, c->D);
    return dot(c->out, c->r, (size_t)(c->T - c->R) * c->D);
}

/* The matching is held fixed (piecewise constant: no gradient); sizes of
 * 1 to 3 as after earlier merges. */
static void merge_backward_matches_central_differences(void)
{
    evit_rng_seed(&rng, 12);
    struct merge_ctx c = {NULL, NULL, NULL, NULL, NULL, NULL, 13, 5, 4};
    float *m = normal_floats((size_t)c.T * 6, 1.0);
    c.out = evit_alloc_floats((size_t)c.T * c.D);
    c.so = evit_alloc_floats((size_t)c.T);
    c.x = normal_floats((size_t)c.T * c.D, 1.0);
    c.s = evit_alloc_floats((size_t)c.T);
    c.r = normal_floats((size_t)(c.T - c.R) * c.D, 1.0);
    c.dst = malloc(sizeof(int) * (size_t)c.T);
    for (int i = 0; i < c.T; i++) c.s[i] = (float)(1 + i % 3);
    evit_merge_match(c.dst, m, c.T, 6, c.R);
    float *dx = normal_floats((size_t)c.T * c.D, 1.0), *dx0 = copy_floats(dx, (size_t)c.T * c.D);
    merge_loss(&c);
    evit_merge_backward(dx, c.r, c.s, c.so, c.dst, c.T, c.D);
    CHECK(grad_mismatches("x", c.x, dx, dx0, (size_t)c.T * c.D, merge_loss, &c) == 0);
    float *bufs[] = {m, c.out, c.so, c.x, c.s, c.r, dx, dx0};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) evit_free_aligned(bufs[i]);
    free(c.dst);
}

/* ---------------------------------------------------------------- embed */

struct embed_ctx {
    float *x, *pe, *cls, *pos, *r;
    int B, T, D;
};

static double embed_loss(void *p)
{
    struct embed_ctx *c = p;
    evit_embed_forward(c->x, c->pe, c->cls, c->pos, c->B, c->T, c->D);
    return dot(c->x, c->r, (size_t)c->B * c->T * c->D);
}

static void embed_backward_matches_central_differences(void)
{
    evit_rng_seed(&rng, 6);
    int B = 2, T = 5, D = 3;
    size_t btd = (size_t)B * T * D, bpd = (size_t)B * (T - 1) * D, td = (size_t)T * D;
    struct embed_ctx c = {evit_alloc_floats(btd), normal_floats(bpd, 1.0),
                          normal_floats((size_t)D, 1.0), normal_floats(td, 1.0),
                          normal_floats(btd, 1.0), B, T, D};
    float *dpe = normal_floats(bpd, 1.0), *dcls = normal_floats((size_t)D, 1.0);
    float *dpos = normal_floats(td, 1.0);
    float *dpe0 = copy_floats(dpe, bpd), *dcls0 = copy_floats(dcls, (size_t)D);
    float *dpos0 = copy_floats(dpos, td);
    evit_embed_backward(dpe, dcls, dpos, c.r, B, T, D);
    CHECK(grad_mismatches("pe", c.pe, dpe, dpe0, bpd, embed_loss, &c) == 0);
    CHECK(grad_mismatches("cls", c.cls, dcls, dcls0, (size_t)D, embed_loss, &c) == 0);
    CHECK(grad_mismatches("pos", c.pos, dpos, dpos0, td, embed_loss, &c) == 0);
    float *bufs[] = {c.x, c.pe, c.cls, c.pos, c.r, dpe, dcls, dpos, dpe0, dcls0, dpos0};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) evit_free_aligned(bufs[i]);
}

/* ---------------------------------------------------------------- attention */

struct attention_ctx {
    float *out, *att, *qkv, *r;
    int B, T, H, d;
};

static double attention_loss(void *p)
{
    struct attention_ctx *c = p;
    evit_attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->H, c->d);
    return dot(c->out, c->r, (size_t)c->B * c->T * c->H * c->d);
}

static void attention_backward_matches_central_differences(void)
{
    evit_rng_seed(&rng, 7);
    int B = 2, T = 5, H = 2, d = 3;
    size_t nq = (size_t)B * T * 3 * H * d, no = (size_t)B * T * H * d, na = (size_t)B * H * T * T;
    struct attention_ctx c = {evit_alloc_floats(no), evit_alloc_floats(na),
                              normal_floats(nq, 1.0), normal_floats(no, 1.0), B, T, H, d};
    attention_loss(&c);
    float *datt = evit_alloc_floats(na);
    float *dqkv = normal_floats(nq, 1.0), *dqkv0 = copy_floats(dqkv, nq);
    float *dqkv_r = copy_floats(dqkv, nq);
    evit_attention_backward(dqkv, datt, c.r, c.qkv, c.att, B, T, H, d);
    CHECK(grad_mismatches("qkv", c.qkv, dqkv, dqkv0, nq, attention_loss, &c) == 0);
    evit_attention_backward_ref(dqkv_r, datt, c.r, c.qkv, c.att, B, T, H, d);
    CHECK(grad_mismatches("qkv (ref)", c.qkv, dqkv_r, dqkv0, nq, attention_loss, &c) == 0);
    float *bufs[] = {c.out, c.att, c.qkv, c.r, datt, dqkv, dqkv0, dqkv_r};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) evit_free_aligned(bufs[i]);
}

static void attention_backward_matches_its_ref_twin(void)
{
    static const int shapes[][4] = {{1, 1, 1, 1}, {2, 5, 2, 3}, {3, 17, 3, 16}, {2, 65, 4, 8},
                                    {1, 197, 3, 64}};
    evit_rng_seed(&rng, 8);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], T = shapes[s][1], H = shapes[s][2], d = shapes[s][3];
        size_t nq = (size_t)B * T * 3 * H * d, no = (size_t)B * T * H * d;
        size_t na = (size_t)B * H * T * T;
        float *qkv = normal_floats(nq, 1.0), *dout = normal_floats(no, 1.0);
        float *out = evit_alloc_floats(no), *att = evit_alloc_floats(na);
        float *datt = evit_alloc_floats(na), *datt_r = evit_alloc_floats(na);
        evit_attention_forward(out, att, qkv, B, T, H, d);
        float *dqkv = normal_floats(nq, 1.0), *dqkv_r = copy_floats(dqkv, nq);
        evit_attention_backward(dqkv, datt, dout, qkv, att, B, T, H, d);
        evit_attention_backward_ref(dqkv_r, datt_r, dout, qkv, att, B, T, H, d);
        double e = max_rel_diff(dqkv, dqkv_r, nq);
        if (!(e <= 1e-4)) {
            fprintf(stderr, "  attention backward B=%d T=%d H=%d d=%d: fast vs ref %.3g\n", B, T,
                    H, d, e);
            CHECK(e <= 1e-4);
        }
        float *bufs[] = {qkv, dout, out, att, datt, datt_r, dqkv, dqkv_r};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) evit_free_aligned(bufs[i]);
    }
}

/* The first nq queries only (the last block's class token): central
 * differences through evit_attention_forward_q, and fast against ref. */
struct attention_q_ctx {
    float *out, *att, *qkv, *r;
    int B, T, nq, H, d;
};

static double attention_q_loss(void *p)
{
    struct attention_q_ctx *c = p;
    evit_attention_forward_q(c->out, c->att, c->qkv, c->B, c->T, c->nq, c->H, c->d);
    return dot(c->out, c->r, (size_t)c->B * c->nq * c->H * c->d);
}

static void attention_backward_of_the_first_queries_matches_central_differences(void)
{
    static const int shapes[][5] = {{2, 5, 1, 2, 3}, {2, 7, 3, 1, 4}, {1, 20, 17, 2, 2}};
    evit_rng_seed(&rng, 9);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], T = shapes[s][1], nq = shapes[s][2], H = shapes[s][3];
        int d = shapes[s][4];
        size_t nqkv = (size_t)B * T * 3 * H * d, no = (size_t)B * nq * H * d;
        size_t na = (size_t)B * H * nq * T;
        struct attention_q_ctx c = {evit_alloc_floats(no), evit_alloc_floats(na),
                                    normal_floats(nqkv, 1.0), normal_floats(no, 1.0), B, T, nq,
                                    H, d};
        attention_q_loss(&c);
        float *datt = evit_alloc_floats(na);
        float *dqkv = normal_floats(nqkv, 1.0), *dqkv0 = copy_floats(dqkv, nqkv);
        float *dqkv_r = copy_floats(dqkv, nqkv);
        evit_attention_backward_q(dqkv, datt, c.r, c.qkv, c.att, B, T, nq, H, d);
        CHECK(grad_mismatches("qkv", c.qkv, dqkv, dqkv0, nqkv, attention_q_loss, &c) == 0);
        evit_attention_backward_q_ref(dqkv_r, datt, c.r, c.qkv, c.att, B, T, nq, H, d);
        CHECK(grad_mismatches("qkv (ref)", c.qkv, dqkv_r, dqkv0, nqkv, attention_q_loss, &c) == 0);
        double e = max_rel_diff(dqkv, dqkv_r, nqkv);
        CHECK(e <= 1e-4);
        /* the q rows past nq get no gradient: untouched */
        int moved = 0;
        for (int b = 0; b < B; b++)
            for (int t = nq; t < T; t++)
                for (int x = 0; x < H * d; x++) {
                    size_t i = ((size_t)b * T + t) * 3 * H * d + x;
                    moved += dqkv[i] != dqkv0[i];
                }
        CHECK(moved == 0);
        float *bufs[] = {c.out, c.att, c.qkv, c.r, datt, dqkv, dqkv0, dqkv_r};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) evit_free_aligned(bufs[i]);
    }
}

/* ---------------------------------------------------------------- losses */

struct xent_ctx {
    float *logits;
    const int32_t *labels;
    float smoothing, scale;
    int B, K;
};

static double xent_loss(void *p)
{
    struct xent_ctx *c = p;
    return (double)c->scale * evit_xent_smooth_forward(c->logits, c->labels, c->smoothing, c->B, c->K);
}

static void xent_smooth_backward_matches_central_differences(void)
{
    evit_rng_seed(&rng, 9);
    static const int32_t labels[3] = {4, 0, 2};
    int B = 3, K = 5;
    size_t bk = (size_t)B * K;
    for (int s = 0; s < 2; s++) {
        struct xent_ctx c = {normal_floats(bk, 2.0), labels, s ? 0.1f : 0.0f, 0.7f, B, K};
        float *dz = normal_floats(bk, 1.0), *dz0 = copy_floats(dz, bk);
        evit_xent_smooth_backward(dz, c.logits, labels, c.smoothing, c.scale, B, K);
        CHECK(grad_mismatches("logits", c.logits, dz, dz0, bk, xent_loss, &c) == 0);
        evit_free_aligned(c.logits);
        evit_free_aligned(dz);
        evit_free_aligned(dz0);
    }
}

static void xent_smooth_forward_is_the_mean_cross_entropy_towards_smoothed_targets(void)
{
    evit_rng_seed(&rng, 10);
    static const int32_t labels[3] = {1, 3, 3};
    int B = 3, K = 4;
    float *z = normal_floats((size_t)B * K, 2.0);
    /* no smoothing: the plain cross-entropy, averaged */
    CHECK_NEAR(evit_xent_smooth_forward(z, labels, 0.0f, B, K),
               evit_xent_forward(NULL, z, labels, B, K) / B, 1e-12);
    /* equal logits: log K whatever the targets */
    float flat[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    CHECK_NEAR(evit_xent_smooth_forward(flat, labels, 0.3f, 1, K), log(4.0), 1e-12);
    /* by hand: q = (1 - s) onehot + s / K */
    double lse = 0.0, want = 0.0, s = 0.2;
    for (int k = 0; k < K; k++) lse += exp((double)z[k]);
    lse = log(lse);
    for (int k = 0; k < K; k++) want -= ((k == labels[0] ? 1.0 - s : 0.0) + s / K) * ((double)z[k] - lse);
    CHECK_NEAR(evit_xent_smooth_forward(z, labels, 0.2f, 1, K), want, 1e-6);
    evit_free_aligned(z);
}

struct kd_ctx {
    float *student, *teacher;
    float tau, scale;
    int B, K;
};

static double kd_loss(void *p)
{
    struct kd_ctx *c = p;
    return (double)c->scale * evit_kd_forward(c->student, c->teacher, c->tau, c->B, c->K);
}

/* K 5 takes ops.c's kept-exps path (ROW_EXP_MAX), K 70 the recomputing one */
static void kd_backward_matches_central_differences(void)
{
    evit_rng_seed(&rng, 11);
    int B = 3;
    static const float taus[2] = {1.0f, 3.0f};
    static const int Ks[2] = {5, 70};
    for (int t = 0; t < 4; t++) {
        int K = Ks[t / 2];
        size_t bk = (size_t)B * K;
        struct kd_ctx c = {normal_floats(bk, 2.0), normal_floats(bk, 2.0), taus[t % 2], 0.6f, B, K};
        float *ds = normal_floats(bk, 1.0), *ds0 = copy_floats(ds, bk);
        evit_kd_backward(ds, c.student, c.teacher, c.tau, c.scale, B, K);
        CHECK(grad_mismatches("student", c.student, ds, ds0, bk, kd_loss, &c) == 0);
        evit_free_aligned(c.student);
        evit_free_aligned(c.teacher);
        evit_free_aligned(ds);
        evit_free_aligned(ds0);
    }
}

static void kd_forward_is_zero_for_equal_logits_and_positive_otherwise(void)
{
    evit_rng_seed(&rng, 12);
    int B = 2, K = 6;
    float *s = normal_floats((size_t)B * K, 1.0), *t = normal_floats((size_t)B * K, 1.0);
    CHECK_NEAR(evit_kd_forward(s, s, 2.0f, B, K), 0.0, 1e-12);
    CHECK(evit_kd_forward(s, t, 2.0f, B, K) > 0.0);
    /* tau^2 KL by hand for one row */
    double tau = 2.0, ls = 0.0, lt = 0.0, kl = 0.0;
    for (int k = 0; k < K; k++) {
        ls += exp((double)s[k] / tau);
        lt += exp((double)t[k] / tau);
    }
    for (int k = 0; k < K; k++) {
        double pt = exp((double)t[k] / tau) / lt, ps = exp((double)s[k] / tau) / ls;
        kl += pt * log(pt / ps);
    }
    CHECK_NEAR(evit_kd_forward(s, t, 2.0f, 1, K), tau * tau * kl, 1e-9);
    evit_free_aligned(s);
    evit_free_aligned(t);
}

/* ---------------------------------------------------------------- model */

/* img 8, patch 4 (T 5), 2 channels, D 8, 5 classes; block 0: 2 heads of 4,
 * mlp 12; block 1: 1 head of 3, mlp 6 (inner widths unrelated to D). */
/* ---------------------------------------------------------------- segmentation */

struct upsample_ctx {
    float *out, *in, *r;
    int B, h, w, H, W, K;
};

static double upsample_loss(void *p)
{
    struct upsample_ctx *c = p;
    evit_upsample_forward(c->out, c->in, c->B, c->h, c->w, c->H, c->W, c->K);
    return dot(c->out, c->r, (size_t)c->B * c->H * c->W * c->K);
}

static void upsample_backward_matches_central_differences(void)
{
    evit_rng_seed(&rng, 21);
    /* up by 8/3 and 7/2, and down (5 -> 3: taps skip source pixels) */
    static const int shapes[3][4] = {{3, 2, 8, 7}, {2, 3, 5, 4}, {5, 4, 3, 3}};
    for (int s = 0; s < 3; s++) {
        int B = 2, K = 3, h = shapes[s][0], w = shapes[s][1], H = shapes[s][2], W = shapes[s][3];
        size_t ni = (size_t)B * h * w * K, no = (size_t)B * H * W * K;
        struct upsample_ctx c = {evit_alloc_floats(no), normal_floats(ni, 1.0), normal_floats(no, 1.0),
                                 B, h, w, H, W, K};
        float *din = normal_floats(ni, 1.0), *din0 = copy_floats(din, ni);
        evit_upsample_backward(din, c.r, B, h, w, H, W, K);
        CHECK(grad_mismatches("upsample", c.in, din, din0, ni, upsample_loss, &c) == 0);
        evit_free_aligned(c.out);
        evit_free_aligned(c.in);
        evit_free_aligned(c.r);
        evit_free_aligned(din);
        evit_free_aligned(din0);
    }
}

struct xpix_ctx {
    float *logits;
    const uint8_t *mask;
    float scale;
    size_t P;
    int K;
};

static double xpix_loss(void *p)
{
    struct xpix_ctx *c = p;
    return (double)c->scale * evit_xent_pixels_forward(NULL, c->logits, c->mask, 255, c->P, c->K);
}

/* K 4 takes ops.c's kept-exps path (ROW_EXP_MAX), K 70 the recomputing one */
static void pixel_cross_entropy_backward_matches_central_differences(void)
{
    evit_rng_seed(&rng, 22);
    static const uint8_t mask[6] = {3, 255, 0, 1, 3, 255};
    static const int Ks[2] = {4, 70};
    size_t P = 6;
    for (int i = 0; i < 2; i++) {
        int K = Ks[i];
        struct xpix_ctx c = {normal_floats(P * K, 2.0), mask, 0.8f, P, K};
        float *dz = normal_floats(P * K, 1.0), *dz0 = copy_floats(dz, P * K);
        evit_xent_pixels_backward(dz, c.logits, mask, 255, c.scale, P, K);
        /* the ignored pixels' rows get nothing: their central differences are 0 */
        CHECK(grad_mismatches("logits", c.logits, dz, dz0, P * K, xpix_loss, &c) == 0);
        CHECK(memcmp(dz + K, dz0 + K, K * sizeof(float)) == 0);
        evit_free_aligned(c.logits);
        evit_free_aligned(dz);
        evit_free_aligned(dz0);
    }
}

/* head.h: the task's loss through each head, against central differences
 * of the loss it returns. */
struct head_ctx {
    float *logits, *scratch, *dz;
    const int32_t *labels;
    const uint8_t *masks;
    int B;
    const struct evit_vit_config *c;
};

static double head_loss(void *p)
{
    struct head_ctx *h = p;
    size_t n = (size_t)h->B * evit_config_head_rows(h->c) * h->c->classes;
    memset(h->dz, 0, sizeof(float) * n);
    return evit_head_xent(h->dz, h->scratch, h->logits, h->labels, h->masks, 255, h->B, h->c);
}

static void each_heads_loss_gradient_matches_central_differences(void)
{
    static const struct evit_block_shape b[] = {{2, 4, 12, 0}};
    static const int32_t labels[2] = {3, 0};
    /* 12x12 pixels from a 3x3 grid of patches, some unlabelled */
    uint8_t masks[2 * 12 * 12];
    for (int i = 0; i < 2 * 12 * 12; i++) masks[i] = (uint8_t)(i % 7 == 0 ? 255 : (i * 5 + i / 12) % 4);
    for (int head = EVIT_HEAD_CLASS; head <= EVIT_HEAD_SEG_MLP; head++) {
        struct evit_vit_config c = make_config("head-grad", 12, 1, 4, 4, 8, 1, b);
        c.head = head;
        evit_rng_seed(&rng, 31 + (uint64_t)head);
        int B = 2;
        size_t n = (size_t)B * evit_config_head_rows(&c) * c.classes;
        struct head_ctx h = {normal_floats(n, 2.0), NULL, normal_floats(n, 1.0), labels, masks, B, &c};
        h.scratch = evit_malloc(sizeof(float) * (evit_head_scratch(&c, B) + 1));
        float *dz = normal_floats(n, 1.0), *dz0 = copy_floats(dz, n);
        evit_head_xent(dz, h.scratch, h.logits, labels, head ? masks : NULL, 255, B, &c);
        if (!head) h.masks = NULL;
        else h.labels = NULL;
        CHECK(grad_mismatches(evit_config_head_name(head), h.logits, dz, dz0, n, head_loss, &h) == 0);
        evit_free_aligned(h.logits);
        evit_free_aligned(h.dz);
        evit_free_aligned(dz);
        evit_free_aligned(dz0);
        free(h.scratch);
    }
}

static struct evit_vit_config grad_config(int depth)
{
    static const struct evit_block_shape b[] = {{2, 4, 12, 0}, {1, 3, 6, 0}, {2, 3, 8, 0}};
    return make_config("tiny-grad", 8, 2, 4, 5, 8, depth, b);
}

/* Parameters of order one so that every op shapes the logits. */
static void randomise(struct evit_vit *m)
{
    int n;
    struct evit_tensor_ref *t = evit_vit_tensor_list(&m->cfg, &m->p, &n);
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < t[i].numel; j++) {
            double z = evit_rng_normal(&rng);
            switch (t[i].kind) {
            case EVIT_T_WEIGHT: t[i].data[j] = (float)(0.4 * z); break;
            case EVIT_T_EMBED: t[i].data[j] = (float)(0.5 * z); break;
            case EVIT_T_BIAS:
            case EVIT_T_NORM_B: t[i].data[j] = (float)(0.2 * z); break;
            case EVIT_T_NORM_W: t[i].data[j] = (float)(1.0 + 0.3 * z); break;
            }
        }
    }
    free(t);
    for (int c = 0; c < m->cfg.channels; c++) {
        m->mean[c] = 0.4f + 0.1f * (float)c;
        m->std[c] = 0.25f;
    }
}

struct model_ctx {
    struct evit_vit m;
    struct evit_vit_acts a;
    uint8_t *img;
    float *r; /* (B, R, K) */
    int B;
};

static double model_loss(void *p)
{
    struct model_ctx *c = p;
    evit_vit_forward(&c->m, &c->a, c->img, c->B);
    return dot(c->a.logits, c->r, (size_t)c->B * evit_config_head_rows(&c->m.cfg) * c->m.cfg.classes);
}

/* merge: Token Merging's schedule, merge_r of each block (NULL: none);
 * head: enum evit_head (seg_mlp with its default decoder). */
static struct evit_vit_config model_config(int depth, const int *merge, int head)
{
    struct evit_vit_config cfg = grad_config(depth);
    for (int l = 0; merge && l < depth; l++) cfg.blocks[l].merge_r = merge[l];
    cfg.head = head;
    if (head == EVIT_HEAD_SEG_MLP) evit_config_decoder_defaults(&cfg);
    return cfg;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* seg_mlp's ReLU has a kink at 0, where a central difference is wrong: a
 * step h of a parameter that carries a pre-activation across it gives
 * neither side's slope.  So each channel's linear_fuse bias puts its zero
 * in the middle of the widest gap between that channel's B*N
 * pre-activations: some rows pass the ReLU and some do not, and a step
 * moves none of them across. */
static void relu_away_from_zero(struct model_ctx *c)
{
    int n = c->B * evit_config_patches(&c->m.cfg), C = c->m.cfg.decoder_dim;
    float *v = malloc(sizeof(float) * (size_t)n);
    evit_vit_forward(&c->m, &c->a, c->img, c->B);
    for (int k = 0; k < C; k++) {
        for (int i = 0; i < n; i++) v[i] = c->a.fuse[(size_t)i * C + k] - c->m.p.fuse_b[k];
        qsort(v, (size_t)n, sizeof *v, cmp_float);
        int w = 0;
        for (int i = 1; i + 1 < n; i++)
            if (v[i + 1] - v[i] > v[w + 1] - v[w]) w = i;
        c->m.p.fuse_b[k] = -0.5f * (v[w] + v[w + 1]);
    }
    free(v);
}

static void model_setup_cfg(struct model_ctx *c, struct evit_vit_config cfg, uint64_t seed)
{
    evit_rng_seed(&rng, seed);
    c->B = 2;
    evit_vit_alloc(&c->m, &cfg);
    randomise(&c->m);
    evit_vit_acts_alloc(&c->a, &cfg, c->B, 1);
    size_t npix = (size_t)c->B * cfg.img_size * cfg.img_size * cfg.channels;
    c->img = malloc(npix);
    for (size_t i = 0; i < npix; i++) c->img[i] = (uint8_t)evit_rng_below(&rng, 256);
    c->r = normal_floats((size_t)c->B * evit_config_head_rows(&cfg) * cfg.classes, 1.0);
    if (cfg.head == EVIT_HEAD_SEG_MLP) relu_away_from_zero(c);
}

static void model_setup(struct model_ctx *c, int depth, uint64_t seed)
{
    model_setup_cfg(c, model_config(depth, NULL, EVIT_HEAD_CLASS), seed);
}

static void model_teardown(struct model_ctx *c)
{
    evit_vit_acts_free(&c->a);
    evit_vit_free(&c->m);
    free(c->img);
    evit_free_aligned(c->r);
}

/* Forward, then backward of L = sum logits r into a gradient buffer that
 * starts at start (copied); returns the buffer. */
static float *model_gradient(struct model_ctx *c, const float *start, int calls)
{
    size_t np = (size_t)evit_config_params(&c->m.cfg);
    float *g = copy_floats(start, np);
    struct evit_vit_params gp;
    evit_vit_bind(&gp, &c->m.cfg, g);
    struct evit_vit_grad_scratch s;
    evit_vit_grad_scratch_alloc(&s, &c->m.cfg, c->B);
    model_loss(c);
    for (int i = 0; i < calls; i++) evit_vit_backward(&gp, &s, &c->m, &c->a, c->r, c->B);
    evit_vit_grad_scratch_free(&s);
    return g;
}

/* Every tensor of the model, by name, against central differences. */
static void check_model_cfg(struct evit_vit_config cfg, uint64_t seed)
{
    struct model_ctx c;
    REQUIRE(evit_config_validate(&cfg, cfg.name) == EVIT_OK);
    model_setup_cfg(&c, cfg, seed);
    size_t np = (size_t)evit_config_params(&c.m.cfg);
    float *g0 = normal_floats(np, 1.0);
    float *g = model_gradient(&c, g0, 1);
    int n;
    struct evit_tensor_ref *t = evit_vit_tensor_list(&c.m.cfg, &c.m.p, &n);
    for (int i = 0; i < n; i++) {
        size_t off = (size_t)(t[i].data - c.m.mem);
        int bad = grad_mismatches(t[i].name, t[i].data, g + off, g0 + off, t[i].numel,
                                  model_loss, &c);
        CHECK(bad == 0);
    }
    free(t);
    evit_free_aligned(g0);
    evit_free_aligned(g);
    model_teardown(&c);
}

static void check_model_with(int depth, uint64_t seed, const int *merge, int head)
{
    check_model_cfg(model_config(depth, merge, head), seed);
}

static void check_model(int depth, uint64_t seed) { check_model_with(depth, seed, NULL, EVIT_HEAD_CLASS); }

/* Three blocks, T 5 -> 4 -> 3: the merges' backward and proportional
 * attention (the matching held fixed: a step of h moves no token from one
 * match to another at this seed, so the loss is smooth around it). */
static void vit_backward_with_token_merging_matches_central_differences(void)
{
    static const int merge[3] = {1, 1, 0};
    check_model_with(3, 15, merge, EVIT_HEAD_CLASS);
}

/* Segmenter's linear decoder: logits (B, N, K) from every patch token, the
 * last block a full one; one block (first and last at once) and two. */
static void vit_backward_with_a_segmentation_head_matches_central_differences(void)
{
    check_model_with(1, 16, NULL, EVIT_HEAD_SEG_LINEAR);
    check_model_with(2, 17, NULL, EVIT_HEAD_SEG_LINEAR);
}

/* SegFormer's all-MLP decoder (vit.h): every level's LayerNorm and
 * linear_c, linear_fuse through the ReLU, and the head, with one block
 * and two (every block a level, decoder_dim 4); then three blocks with
 * levels 0 and 2 and decoder_dim 5, so that block 1 is no level and
 * block 0's output gets its gradient both from level 0 and from the
 * blocks above. */
static void vit_backward_with_an_mlp_decoder_matches_central_differences(void)
{
    check_model_with(1, 18, NULL, EVIT_HEAD_SEG_MLP);
    check_model_with(2, 19, NULL, EVIT_HEAD_SEG_MLP);
    static const int levels[] = {0, 2};
    struct evit_vit_config c = grad_config(3);
    set_mlp_decoder(&c, 5, 2, levels);
    check_model_cfg(c, 20);
}

static void block_backward_matches_central_differences(void)
{
    /* one block between the embedding and the head: its every parameter,
     * and through pos_embed and cls_token the gradient of its input */
    check_model(1, 13);
}

static void vit_backward_matches_central_differences_for_every_parameter(void)
{
    check_model(2, 14);
}

static void vit_backward_accumulates_so_two_calls_double_the_gradient(void)
{
    struct model_ctx c;
    model_setup(&c, 2, 15);
    size_t np = (size_t)evit_config_params(&c.m.cfg);
    float *zero = evit_alloc_floats(np);
    float *once = model_gradient(&c, zero, 1), *twice = model_gradient(&c, zero, 2);
    double e = 0.0, gmax = 0.0;
    for (size_t i = 0; i < np; i++) {
        e = fmax(e, fabs((double)twice[i] - 2.0 * (double)once[i]));
        gmax = fmax(gmax, fabs((double)once[i]));
    }
    CHECK(gmax > 0.0);
    CHECK(e <= 1e-6 * gmax);
    /* and the same batch again gives the same gradient: scratch leaks nothing */
    float *again = model_gradient(&c, zero, 1);
    CHECK(memcmp(again, once, np * sizeof(float)) == 0);
    evit_free_aligned(zero);
    evit_free_aligned(once);
    evit_free_aligned(twice);
    evit_free_aligned(again);
    model_teardown(&c);
}

int main(void)
{
    RUN(linear_backward_matches_central_differences);
    RUN(linear_backward_matches_its_ref_twin);
    RUN(layernorm_backward_matches_central_differences);
    RUN(gelu_backward_matches_central_differences);
    RUN(relu_backward_matches_central_differences);
    RUN(residual_backward_matches_central_differences);
    RUN(merge_backward_matches_central_differences);
    RUN(embed_backward_matches_central_differences);
    RUN(attention_backward_matches_central_differences);
    RUN(attention_backward_matches_its_ref_twin);
    RUN(attention_backward_of_the_first_queries_matches_central_differences);
    RUN(xent_smooth_backward_matches_central_differences);
    RUN(xent_smooth_forward_is_the_mean_cross_entropy_towards_smoothed_targets);
    RUN(kd_backward_matches_central_differences);
    RUN(kd_forward_is_zero_for_equal_logits_and_positive_otherwise);
    RUN(upsample_backward_matches_central_differences);
    RUN(pixel_cross_entropy_backward_matches_central_differences);
    RUN(each_heads_loss_gradient_matches_central_differences);
    RUN(block_backward_matches_central_differences);
    RUN(vit_backward_matches_central_differences_for_every_parameter);
    RUN(vit_backward_with_token_merging_matches_central_differences);
    RUN(vit_backward_with_a_segmentation_head_matches_central_differences);
    RUN(vit_backward_with_an_mlp_decoder_matches_central_differences);
    RUN(vit_backward_accumulates_so_two_calls_double_the_gradient);
    return test_summary();
}
