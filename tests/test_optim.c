/* test_optim.c: AdamW and SGD against double-precision hand computations,
 * the weight-decay mask, gradient clipping and the learning-rate schedule. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "optim.h"
#include "test.h"
#include "fixture.h"
#include "util.h"
#include "vit.h"

static void small_config(struct evit_vit_config *c)
{
    static const struct evit_block_shape b[] = {{3, 4, 20, 0}, {2, 5, 8, 0}};
    *c = make_config("tiny", 8, 2, 4, 5, 12, 2, b);
}

/* Deterministic values in [-scale, scale], varying with i and the step. */
static float wave(size_t i, int k, float scale)
{
    return scale * (float)sin(0.37 * (double)i + 1.3 * (double)k + 0.2);
}

/* |got - want| <= tol * max(1, |want|) for every element; counts failures. */
static int count_far(const float *got, const double *want, size_t n, double tol)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double w = want[i], s = fabs(w) > 1.0 ? fabs(w) : 1.0;
        if (!(fabs((double)got[i] - w) <= tol * s)) {
            if (bad < 3)
                fprintf(stderr, "  element %zu: got %.9g, want %.9g\n", i, (double)got[i], w);
            bad++;
        }
    }
    return bad;
}

static const struct evit_optim_config adamw_cfg = {
    .type = EVIT_OPTIM_ADAMW, .lr = 1e-2, .weight_decay = 0.05,
    .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-3, /* eps near |g| so that it matters */
};

/* steps of AdamW on the tiny model's parameters, float vs double */
static void run_adamw_against_double(int steps)
{
    struct evit_vit_config mc;
    struct evit_optim o;
    const struct evit_optim_config *c = &adamw_cfg;
    small_config(&mc);
    evit_optim_init(&o, c, &mc);
    size_t n = o.n;
    float *p = evit_alloc_floats(n), *g = evit_alloc_floats(n); /* (n) */
    double *pd = evit_calloc(n, sizeof *pd), *md = evit_calloc(n, sizeof *md);
    double *vd = evit_calloc(n, sizeof *vd); /* (n) */
    for (size_t i = 0; i < n; i++) pd[i] = p[i] = wave(i, 7, 1.0f);
    for (int k = 0; k < steps; k++) {
        double lr = c->lr * (1.0 + 0.5 * k); /* a different lr each step */
        double t = k + 1;
        for (size_t i = 0; i < n; i++) {
            double gi = g[i] = wave(i, k, 0.01f);
            if (o.decay[i]) pd[i] *= 1.0 - lr * c->weight_decay;
            md[i] = c->beta1 * md[i] + (1.0 - c->beta1) * gi;
            vd[i] = c->beta2 * vd[i] + (1.0 - c->beta2) * gi * gi;
            double mhat = md[i] / (1.0 - pow(c->beta1, t));
            double vhat = vd[i] / (1.0 - pow(c->beta2, t));
            pd[i] -= lr * mhat / (sqrt(vhat) + c->eps);
        }
        evit_optim_step(&o, p, g, lr);
    }
    CHECK(o.step == steps);
    CHECK(count_far(p, pd, n, 1e-6) == 0);
    CHECK(count_far(o.m, md, n, 1e-6) == 0);
    CHECK(count_far(o.v, vd, n, 1e-6) == 0);
    /* the update is not lost in rounding: parameters moved by ~lr */
    CHECK(fabs((double)p[1] - (double)wave(1, 7, 1.0f)) > 1e-3);
    free(pd);
    free(md);
    free(vd);
    evit_free_aligned(p);
    evit_free_aligned(g);
    evit_optim_free(&o);
}

static void adamw_one_step_matches_a_double_precision_computation(void)
{
    run_adamw_against_double(1);
}

static void adamw_three_steps_match_a_double_precision_computation(void)
{
    run_adamw_against_double(3);
}

static void only_weight_matrices_are_in_the_decay_mask(void)
{
    struct evit_vit_config mc;
    struct evit_optim o;
    struct evit_vit_params q;
    small_config(&mc);
    evit_optim_init(&o, &adamw_cfg, &mc);
    REQUIRE(o.n == (size_t)evit_config_params(&mc));
    float *mem = evit_alloc_floats(o.n); /* (n) only for the offsets */
    evit_vit_bind(&q, &mc, mem);
#define AT(ptr) o.decay[(size_t)((ptr) - mem)]
    CHECK(AT(q.blocks[0].qkv_w + 5) == 1);
    CHECK(AT(q.blocks[1].fc2_w) == 1);
    CHECK(AT(q.patch_w + 3) == 1);
    CHECK(AT(q.head_w + 7) == 1);
    CHECK(AT(q.blocks[0].qkv_b + 5) == 0);
    CHECK(AT(q.blocks[1].ln2_w + 2) == 0);
    CHECK(AT(q.blocks[1].ln1_b) == 0);
    CHECK(AT(q.pos_embed + 9) == 0);
    CHECK(AT(q.cls_token) == 0);
    CHECK(AT(q.norm_w) == 0);
    CHECK(AT(q.head_b + 4) == 0);
#undef AT
    /* the decayed count is exactly the weight matrices' sizes */
    size_t D = 12, want = D * 2 * 4 * 4 + 5 * D, got = 0;
    for (int l = 0; l < 2; l++) {
        size_t I = (size_t)evit_config_inner(&mc, l), M = (size_t)mc.blocks[l].mlp;
        want += 3 * I * D + D * I + M * D + D * M;
    }
    for (size_t i = 0; i < o.n; i++) got += o.decay[i];
    CHECK(got == want);
    evit_free_aligned(mem);
    evit_optim_free(&o);
}

static void a_zero_gradient_step_decays_a_qkv_weight_but_not_a_bias_norm_or_pos_embed(void)
{
    struct evit_vit_config mc;
    struct evit_optim o;
    struct evit_vit_params q;
    small_config(&mc);
    evit_optim_init(&o, &adamw_cfg, &mc);
    float *p = evit_alloc_floats(o.n), *g = evit_alloc_floats(o.n); /* (n), g = 0 */
    evit_vit_bind(&q, &mc, p);
    for (size_t i = 0; i < o.n; i++) p[i] = 0.5f;
    evit_optim_step(&o, p, g, 0.1);
    /* m = v = 0 so the Adam term is 0 / (0 + eps) = 0: only decay moves p */
    float decayed = 0.5f * (float)(1.0 - 0.1 * 0.05);
    CHECK(q.blocks[1].qkv_w[4] == decayed);
    CHECK(decayed < 0.5f);
    CHECK(q.blocks[1].qkv_b[4] == 0.5f);
    CHECK(q.blocks[0].ln1_w[1] == 0.5f);
    CHECK(q.norm_b[0] == 0.5f);
    CHECK(q.pos_embed[3] == 0.5f);
    CHECK(q.cls_token[2] == 0.5f);
    evit_free_aligned(p);
    evit_free_aligned(g);
    evit_optim_free(&o);
}

static void run_sgd_against_double(int nesterov)
{
    struct evit_vit_config mc;
    struct evit_optim o;
    const struct evit_optim_config c = {.type = EVIT_OPTIM_SGD, .lr = 0.1, .weight_decay = 1e-2,
                                        .momentum = 0.9, .nesterov = nesterov};
    small_config(&mc);
    evit_optim_init(&o, &c, &mc);
    CHECK(o.v == NULL);
    size_t n = o.n;
    float *p = evit_alloc_floats(n), *g = evit_alloc_floats(n); /* (n) */
    double *pd = evit_calloc(n, sizeof *pd), *bd = evit_calloc(n, sizeof *bd); /* (n) */
    for (size_t i = 0; i < n; i++) pd[i] = p[i] = wave(i, 3, 1.0f);
    for (int k = 0; k < 3; k++) {
        double lr = c.lr / (1.0 + k);
        for (size_t i = 0; i < n; i++) {
            double gi = g[i] = wave(i, k, 0.1f);
            if (o.decay[i]) gi += c.weight_decay * pd[i];
            bd[i] = k == 0 ? gi : c.momentum * bd[i] + gi;
            pd[i] -= lr * (nesterov ? gi + c.momentum * bd[i] : bd[i]);
        }
        evit_optim_step(&o, p, g, lr);
    }
    CHECK(o.step == 3);
    CHECK(count_far(p, pd, n, 1e-6) == 0);
    CHECK(count_far(o.m, bd, n, 1e-6) == 0);
    free(pd);
    free(bd);
    evit_free_aligned(p);
    evit_free_aligned(g);
    evit_optim_free(&o);
}

static void sgd_with_momentum_and_coupled_decay_matches_three_hand_steps(void)
{
    run_sgd_against_double(0);
}

static void nesterov_sgd_matches_three_hand_steps(void)
{
    run_sgd_against_double(1);
}

static void nesterov_and_plain_sgd_differ(void)
{
    struct evit_vit_config mc;
    struct evit_optim a, b;
    struct evit_optim_config c = {.type = EVIT_OPTIM_SGD, .lr = 0.1, .momentum = 0.9};
    small_config(&mc);
    evit_optim_init(&a, &c, &mc);
    c.nesterov = 1;
    evit_optim_init(&b, &c, &mc);
    float pa[1] = {1.0f}, pb[1] = {1.0f}, g[1] = {1.0f};
    a.n = b.n = 1; /* one element of the state is enough here (no decay) */
    evit_optim_step(&a, pa, g, 0.1);
    evit_optim_step(&b, pb, g, 0.1);
    CHECK(pa[0] == 1.0f - 0.1f);             /* p - lr g */
    CHECK_NEAR(pb[0], 1.0 - 0.1 * 1.9, 1e-7); /* p - lr (g + momentum g) */
    evit_optim_free(&a);
    evit_optim_free(&b);
}

static void clipping_scales_to_max_norm_and_returns_the_norm_before(void)
{
    size_t n = 40000; /* several summation blocks */
    float *g = evit_alloc_floats(n), *orig = evit_alloc_floats(n); /* (n) */
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        orig[i] = g[i] = wave(i, 1, 0.5f);
        ss += (double)g[i] * (double)g[i];
    }
    double norm = sqrt(ss);
    REQUIRE(norm > 2.0);
    double got = evit_optim_clip(g, n, 2.0);
    CHECK_NEAR(got, norm, 1e-9 * norm);
    double after = 0.0;
    for (size_t i = 0; i < n; i++) after += (double)g[i] * (double)g[i];
    CHECK_NEAR(sqrt(after), 2.0, 1e-5);
    CHECK_NEAR(g[17], (double)orig[17] * 2.0 / (norm + 1e-6), 1e-7);
    evit_free_aligned(g);
    evit_free_aligned(orig);
}

static void clipping_leaves_gradients_alone_below_max_norm_or_when_off(void)
{
    size_t n = 1000;
    float *g = evit_alloc_floats(n), *orig = evit_alloc_floats(n); /* (n) */
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        orig[i] = g[i] = wave(i, 2, 0.1f);
        ss += (double)g[i] * (double)g[i];
    }
    double norm = sqrt(ss);
    CHECK_NEAR(evit_optim_clip(g, n, norm * 1.5), norm, 1e-9 * norm);
    CHECK(memcmp(g, orig, n * sizeof *g) == 0);
    CHECK_NEAR(evit_optim_clip(g, n, 0.0), norm, 1e-9 * norm);
    CHECK(memcmp(g, orig, n * sizeof *g) == 0);
    CHECK(evit_optim_clip(g, 0, 1.0) == 0.0);
    evit_free_aligned(g);
    evit_free_aligned(orig);
}

static void the_schedule_warms_up_linearly_then_follows_a_cosine_to_min_lr(void)
{
    const double lr = 1e-3, lo = 1e-5;
    const int64_t warm = 5, total = 25;
    CHECK_NEAR(evit_optim_lr(lr, lo, 0, warm, total), lr / 5.0, 1e-15);
    CHECK_NEAR(evit_optim_lr(lr, lo, 2, warm, total), lr * 3.0 / 5.0, 1e-15);
    CHECK_NEAR(evit_optim_lr(lr, lo, 4, warm, total), lr, 1e-15);
    CHECK_NEAR(evit_optim_lr(lr, lo, warm, warm, total), lr, 1e-15);        /* peak */
    CHECK_NEAR(evit_optim_lr(lr, lo, 15, warm, total), (lr + lo) / 2, 1e-15); /* halfway */
    CHECK_NEAR(evit_optim_lr(lr, lo, total, warm, total), lo, 1e-15);
    CHECK_NEAR(evit_optim_lr(lr, lo, total + 10, warm, total), lo, 1e-15);
    for (int64_t s = 1; s < warm; s++)
        CHECK(evit_optim_lr(lr, lo, s, warm, total) > evit_optim_lr(lr, lo, s - 1, warm, total));
    for (int64_t s = warm + 1; s <= total; s++)
        CHECK(evit_optim_lr(lr, lo, s, warm, total) < evit_optim_lr(lr, lo, s - 1, warm, total));
    /* no warm-up: the peak at step 0 */
    CHECK_NEAR(evit_optim_lr(lr, lo, 0, 0, total), lr, 1e-15);
}

int main(void)
{
    RUN(adamw_one_step_matches_a_double_precision_computation);
    RUN(adamw_three_steps_match_a_double_precision_computation);
    RUN(only_weight_matrices_are_in_the_decay_mask);
    RUN(a_zero_gradient_step_decays_a_qkv_weight_but_not_a_bias_norm_or_pos_embed);
    RUN(sgd_with_momentum_and_coupled_decay_matches_three_hand_steps);
    RUN(nesterov_sgd_matches_three_hand_steps);
    RUN(nesterov_and_plain_sgd_differ);
    RUN(clipping_scales_to_max_norm_and_returns_the_norm_before);
    RUN(clipping_leaves_gradients_alone_below_max_norm_or_when_off);
    RUN(the_schedule_warms_up_linearly_then_follows_a_cosine_to_min_lr);
    return test_summary();
}
