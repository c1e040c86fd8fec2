/* test_prune.c: importance, selection and the physical removal of heads,
 * MLP channels and a seg_mlp decoder's channels.  The central fact checked:
 * removing a head or channel gives the same logits as zeroing everything it
 * owns in the full model. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dataset.h"
#include "prune.h"
#include "rng.h"
#include "test.h"
#include "fixture.h"
#include "util.h"
#include "vit.h"

/* Weights of order one, so that every head and channel matters. */
static void randomise(struct evit_vit *m, uint64_t seed)
{
    randomise_params(m, seed, 0.3, 0.2, 0.3);
}

static void make_model(struct evit_vit *m, uint64_t seed)
{
    struct evit_vit_config c = tiny_config();
    evit_vit_alloc(m, &c);
    randomise(m, seed);
    m->mean[0] = 0.4f;
    m->mean[1] = 0.5f;
    m->std[0] = 0.3f;
    m->std[1] = 0.25f;
}

static void copy_model(struct evit_vit *out, const struct evit_vit *in)
{
    evit_vit_alloc(out, &in->cfg);
    memcpy(out->mem, in->mem, sizeof(float) * (size_t)evit_config_params(&in->cfg));
    memcpy(out->mean, in->mean, sizeof in->mean);
    memcpy(out->std, in->std, sizeof in->std);
}

#define NIMG 6

static uint8_t *images(const struct evit_vit_config *c, int n, uint64_t seed)
{
    struct evit_rng r;
    size_t sz = (size_t)n * c->img_size * c->img_size * c->channels;
    uint8_t *x = malloc(sz);
    evit_rng_seed(&r, seed);
    for (size_t i = 0; i < sz; i++) x[i] = (uint8_t)evit_rng_below(&r, 256);
    return x;
}

/* Floats of logits per image: K, or N * K for a segmentation head. */
static size_t logits_per_image(const struct evit_vit_config *c)
{
    return (size_t)evit_config_head_rows(c) * (size_t)c->classes;
}

/* Logits (n, R, K) of m on x; caller frees. */
static float *logits_of(const struct evit_vit *m, const uint8_t *x, int n)
{
    struct evit_vit_acts a;
    size_t nz = (size_t)n * logits_per_image(&m->cfg);
    evit_vit_acts_alloc(&a, &m->cfg, n, 0);
    evit_vit_forward(m, &a, x, n);
    float *z = malloc(sizeof(float) * nz);
    memcpy(z, a.logits, sizeof(float) * nz);
    evit_vit_acts_free(&a);
    return z;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - (double)b[i]) > d) d = fabs((double)a[i] - (double)b[i]);
    return d;
}

/* Largest logit difference between a and b on NIMG random images (seed),
 * NaN when either gives a NaN. */
static double logit_gap(const struct evit_vit *a, const struct evit_vit *b, int seed)
{
    uint8_t *x = images(&a->cfg, NIMG, seed);
    float *za = logits_of(a, x, NIMG), *zb = logits_of(b, x, NIMG);
    size_t n = (size_t)NIMG * logits_per_image(&a->cfg);
    double d = max_abs_diff(za, zb, n);
    for (size_t i = 0; i < n; i++)
        if (isnan(za[i]) || isnan(zb[i])) d = NAN;
    free(za);
    free(zb);
    free(x);
    return d;
}

/* Zeroes everything head h of block l owns: its q, k and v rows and biases
 * and its columns of proj. */
static void zero_head(struct evit_vit *m, int l, int h)
{
    const struct evit_block_shape *b = &m->cfg.blocks[l];
    struct evit_block_params *p = &m->p.blocks[l];
    size_t D = (size_t)m->cfg.dim, d = (size_t)b->head_dim, I = (size_t)b->heads * d;
    for (size_t part = 0; part < 3; part++) {
        size_t r0 = part * I + (size_t)h * d;
        memset(p->qkv_w + r0 * D, 0, sizeof(float) * d * D);
        memset(p->qkv_b + r0, 0, sizeof(float) * d);
    }
    for (size_t row = 0; row < D; row++) memset(p->proj_w + row * I + (size_t)h * d, 0, sizeof(float) * d);
}

/* Zeroes channel c of block l: its fc1 row and bias and its fc2 column. */
static void zero_channel(struct evit_vit *m, int l, int c)
{
    size_t D = (size_t)m->cfg.dim, M = (size_t)m->cfg.blocks[l].mlp;
    struct evit_block_params *p = &m->p.blocks[l];
    memset(p->fc1_w + (size_t)c * D, 0, sizeof(float) * D);
    p->fc1_b[c] = 0.0f;
    for (size_t row = 0; row < D; row++) p->fc2_w[row * M + (size_t)c] = 0.0f;
}

/* tiny_config's encoder with a seg_mlp head (vit.h): C 10 over both blocks,
 * so linear_fuse is (10, 20) and the logits (N 4, K 5) per image. */
#define SEG_C 10

static struct evit_vit_config seg_config(void)
{
    static const int levels[] = {0, 1};
    struct evit_vit_config c = tiny_config();
    snprintf(c.name, sizeof c.name, "tinyseg");
    set_mlp_decoder(&c, SEG_C, 2, levels);
    return c;
}

static void make_seg_model(struct evit_vit *m, uint64_t seed)
{
    struct evit_vit_config c = seg_config();
    evit_vit_alloc(m, &c);
    randomise(m, seed);
}

/* Zeroes level i's channel c of the decoder: its row of linear_c.i and its
 * bias, which makes e_i[c] = 0; with columns, also the fuse column
 * i*C + c that reads it, so that everything it owns is zero. */
static void zero_level_channel(struct evit_vit *m, int i, int c, int columns)
{
    size_t D = (size_t)m->cfg.dim, C = (size_t)m->cfg.decoder_dim, LC = (size_t)m->cfg.decoder_nlevels * C;
    memset(m->p.dec_w[i] + (size_t)c * D, 0, sizeof(float) * D);
    m->p.dec_b[i][c] = 0.0f;
    if (columns)
        for (size_t row = 0; row < C; row++) m->p.fuse_w[row * LC + (size_t)i * C + (size_t)c] = 0.0f;
}

/* Zeroes the fuse output's channel c: its row of linear_fuse and its bias,
 * which makes u[c] = ReLU(0) = 0; with columns, also its head column. */
static void zero_fuse_channel(struct evit_vit *m, int c, int columns)
{
    size_t C = (size_t)m->cfg.decoder_dim, LC = (size_t)m->cfg.decoder_nlevels * C;
    memset(m->p.fuse_w + (size_t)c * LC, 0, sizeof(float) * LC);
    m->p.fuse_b[c] = 0.0f;
    if (columns)
        for (int k = 0; k < m->cfg.classes; k++) m->p.head_w[(size_t)k * C + (size_t)c] = 0.0f;
}

/* 1 when the ascending idx (k of them) holds i. */
static int kept(const int *idx, int k, int i)
{
    for (int j = 0; j < k; j++)
        if (idx[j] == i) return 1;
    return 0;
}

/* A config from JSON text, parsed strictly; REQUIREs success. */
static int config_from(const char *json, struct evit_prune_config *c)
{
    cJSON *o = cJSON_Parse(json);
    if (!o) return -1;
    int rc = evit_prune_config_parse(o, "test.json", c);
    cJSON_Delete(o);
    return rc;
}

/* Scores, plan and pruned model for config json on m. */
static int prune_with(const char *json, const struct evit_vit *m, struct evit_prune_scores *s,
                      struct evit_prune_plan *plan, struct evit_vit *out)
{
    struct evit_prune_config c;
    if (config_from(json, &c) < 0) return -1;
    if (evit_prune_config_check(&c, "test.json", &m->cfg, 0) < 0) return -1;
    evit_prune_scores_alloc(s, &m->cfg);
    evit_prune_magnitude(s, m, c.criterion);
    evit_prune_select(plan, &c, &m->cfg, s);
    evit_prune_apply(out, m, plan);
    return 0;
}

static int argmin(const double *v, int n)
{
    int k = 0;
    for (int i = 1; i < n; i++)
        if (v[i] < v[k]) k = i;
    return k;
}

static void pruning_nothing_copies_the_model_and_gives_bit_identical_logits(void)
{
    struct evit_vit m, p;
    struct evit_prune_scores s;
    struct evit_prune_plan plan;
    make_model(&m, 1);
    REQUIRE(prune_with("{\"heads_ratio\": 0, \"mlp_ratio\": 0}", &m, &s, &plan, &p) == 0);
    CHECK(evit_config_params(&p.cfg) == evit_config_params(&m.cfg));
    CHECK(memcmp(p.mem, m.mem, sizeof(float) * (size_t)evit_config_params(&m.cfg)) == 0);
    CHECK(strcmp(p.cfg.name, "tiny-pruned") == 0);
    uint8_t *x = images(&m.cfg, NIMG, 7);
    float *a = logits_of(&m, x, NIMG), *b = logits_of(&p, x, NIMG);
    CHECK(memcmp(a, b, sizeof(float) * NIMG * m.cfg.classes) == 0);
    free(a);
    free(b);
    free(x);
    evit_prune_plan_free(&plan);
    evit_prune_scores_free(&s);
    evit_vit_free(&p);
    evit_vit_free(&m);
}

static void a_zeroed_head_ranks_last_and_removing_it_leaves_the_logits_unchanged(void)
{
    const char *cfgs[] = {"{\"criterion\": \"l1\", \"heads_ratio\": 0.2}",
                          "{\"criterion\": \"l2\", \"heads_ratio\": 0.2}",
                          "{\"criterion\": \"l2\", \"scope\": \"layer\", \"heads_ratio\": 0.34}"};
    for (int k = 0; k < 3; k++) {
        struct evit_vit m, p;
        struct evit_prune_scores s;
        struct evit_prune_plan plan;
        make_model(&m, 2);
        zero_head(&m, 0, 1);
        REQUIRE(prune_with(cfgs[k], &m, &s, &plan, &p) == 0);
        CHECK(s.head[0][1] == 0.0 && s.head[0][0] > 0.0 && s.head[1][0] > 0.0);
        CHECK(argmin(s.head[0], 3) == 1);
        REQUIRE(plan.heads[0] == 2);
        CHECK(plan.head_idx[0][0] == 0 && plan.head_idx[0][1] == 2);
        CHECK(plan.heads[1] == (k == 2 ? 1 : 2)); /* the layer scope takes one from block 1 too */
        if (k < 2) {
            CHECK(logit_gap(&m, &p, 8) <= 1e-5);
            CHECK(evit_config_params(&p.cfg) < evit_config_params(&m.cfg));
        }
        evit_prune_plan_free(&plan);
        evit_prune_scores_free(&s);
        evit_vit_free(&p);
        evit_vit_free(&m);
    }
}

static void a_zeroed_mlp_channel_ranks_last_and_removing_it_leaves_the_logits_unchanged(void)
{
    struct evit_vit m, p;
    struct evit_prune_scores s;
    struct evit_prune_plan plan;
    make_model(&m, 3);
    zero_channel(&m, 1, 5);
    /* 28 channels in all: 4% is one */
    REQUIRE(prune_with("{\"criterion\": \"l1\", \"mlp_ratio\": 0.04, \"mlp_multiple\": 1}", &m, &s, &plan, &p) == 0);
    CHECK(s.mlp[1][5] == 0.0 && argmin(s.mlp[1], 8) == 5);
    CHECK(plan.mlp[0] == 20 && plan.heads[0] == 3 && plan.heads[1] == 2);
    REQUIRE(plan.mlp[1] == 7);
    for (int j = 0; j < 7; j++) CHECK(plan.mlp_idx[1][j] == (j < 5 ? j : j + 1));
    CHECK(logit_gap(&m, &p, 9) <= 1e-5);
    evit_prune_plan_free(&plan);
    evit_prune_scores_free(&s);
    evit_vit_free(&p);
    evit_vit_free(&m);
}

/* The gather is checked against the maths, not against itself: removing
 * live (non-zero) heads and channels must give exactly the logits of the
 * full model with those heads and channels zeroed. */
static void removing_live_heads_and_channels_equals_zeroing_them_in_the_full_model(void)
{
    struct evit_vit m, z, p;
    struct evit_prune_scores s;
    struct evit_prune_plan plan;
    make_model(&m, 4);
    REQUIRE(prune_with("{\"blocks\": {\"0\": {\"heads_keep\": 1, \"mlp_keep\": 11},"
                       " \"1\": {\"heads_keep\": 1, \"mlp_keep\": 3}}}",
                       &m, &s, &plan, &p) == 0);
    copy_model(&z, &m);
    for (int l = 0; l < 2; l++) {
        int hk = 0, mk = 0;
        for (int h = 0; h < m.cfg.blocks[l].heads; h++) {
            if (hk < plan.heads[l] && plan.head_idx[l][hk] == h)
                hk++;
            else
                zero_head(&z, l, h);
        }
        for (int c = 0; c < m.cfg.blocks[l].mlp; c++) {
            if (mk < plan.mlp[l] && plan.mlp_idx[l][mk] == c)
                mk++;
            else
                zero_channel(&z, l, c);
        }
        CHECK(hk == plan.heads[l] && mk == plan.mlp[l]);
    }
    CHECK(logit_gap(&z, &p, 10) <= 1e-5);
    CHECK(logit_gap(&m, &p, 10) > 1e-3); /* something real was removed */
    evit_prune_plan_free(&plan);
    evit_prune_scores_free(&s);
    evit_vit_free(&p);
    evit_vit_free(&z);
    evit_vit_free(&m);
}

/* Head 0 spreads 0.05 over all n of its weights (l1 0.05 n, l2 0.05 sqrt n);
 * head 1 has a single weight of 1 (l1 = l2 = 1); head 2 has all weights 1.
 * With n = 3*4*12 + 3*4 + 12*4 = 204: l1 ranks head 1 last, l2 head 0. */
static void l1_and_l2_rank_a_spread_out_head_and_a_concentrated_head_oppositely(void)
{
    struct evit_vit_config c = tiny_config();
    struct evit_vit m;
    const float val[3] = {0.05f, 0.0f, 1.0f};
    evit_vit_alloc(&m, &c);
    struct evit_block_params *b = &m.p.blocks[0];
    size_t D = 12, d = 4, I = 12;
    for (int h = 0; h < 3; h++) {
        for (size_t part = 0; part < 3; part++) {
            size_t r0 = part * I + (size_t)h * d;
            for (size_t i = 0; i < d * D; i++) b->qkv_w[r0 * D + i] = val[h];
            for (size_t i = 0; i < d; i++) b->qkv_b[r0 + i] = val[h];
        }
        for (size_t row = 0; row < D; row++)
            for (size_t i = 0; i < d; i++) b->proj_w[row * I + (size_t)h * d + i] = val[h];
    }
    b->proj_w[5 * I + 1 * d + 2] = 1.0f; /* head 1's only weight */
    struct evit_prune_scores s1, s2;
    evit_prune_scores_alloc(&s1, &c);
    evit_prune_scores_alloc(&s2, &c);
    evit_prune_magnitude(&s1, &m, EVIT_PRUNE_L1);
    evit_prune_magnitude(&s2, &m, EVIT_PRUNE_L2);
    CHECK_NEAR(s1.head[0][0], 0.05 * 204, 1e-4);
    CHECK_NEAR(s1.head[0][1], 1.0, 1e-9);
    CHECK_NEAR(s1.head[0][2], 204.0, 1e-9);
    CHECK_NEAR(s2.head[0][0], 0.05 * sqrt(204.0), 1e-5);
    CHECK_NEAR(s2.head[0][1], 1.0, 1e-9);
    CHECK_NEAR(s2.head[0][2], sqrt(204.0), 1e-9);
    struct evit_prune_config pc;
    struct evit_prune_plan p1, p2;
    REQUIRE(config_from("{\"scope\": \"layer\", \"heads_ratio\": 0.34}", &pc) == 0);
    evit_prune_select(&p1, &pc, &c, &s1);
    evit_prune_select(&p2, &pc, &c, &s2);
    REQUIRE(p1.heads[0] == 2 && p2.heads[0] == 2);
    CHECK(p1.head_idx[0][0] == 0 && p1.head_idx[0][1] == 2); /* l1 drops head 1 */
    CHECK(p2.head_idx[0][0] == 1 && p2.head_idx[0][1] == 2); /* l2 drops head 0 */
    evit_prune_plan_free(&p1);
    evit_prune_plan_free(&p2);
    evit_prune_scores_free(&s1);
    evit_prune_scores_free(&s2);
    evit_vit_free(&m);
}

/* Two blocks of 4 heads and 16 channels with hand-set scores. */
static struct evit_vit_config two_blocks(void)
{
    struct evit_vit_config c = tiny_config();
    c.blocks[0] = (struct evit_block_shape){4, 3, 16, 0};
    c.blocks[1] = (struct evit_block_shape){4, 3, 16, 0};
    return c;
}

static void fill_scores(struct evit_prune_scores *s)
{
    /* block 0 flat; block 1 has two weak heads and eight weak channels. The
     * blocks' scales differ by 100: the mean normalisation removes that. */
    const double h1[4] = {0.1, 0.1, 1.9, 1.9};
    for (int i = 0; i < 4; i++) {
        s->head[0][i] = 100.0;
        s->head[1][i] = h1[i];
    }
    for (int i = 0; i < 16; i++) {
        s->mlp[0][i] = 100.0 + i;
        s->mlp[1][i] = i < 8 ? 0.1 : 1.9;
    }
}

static void global_and_layer_scopes_remove_the_same_total_but_distribute_it_differently(void)
{
    struct evit_vit_config c = two_blocks();
    struct evit_prune_scores s;
    struct evit_prune_config g, l;
    struct evit_prune_plan pg, pl;
    evit_prune_scores_alloc(&s, &c);
    fill_scores(&s);
    REQUIRE(config_from("{\"scope\": \"global\", \"heads_ratio\": 0.25, \"mlp_ratio\": 0.25, \"mlp_multiple\": 4}", &g) == 0);
    REQUIRE(config_from("{\"scope\": \"layer\", \"heads_ratio\": 0.25, \"mlp_ratio\": 0.25, \"mlp_multiple\": 4}", &l) == 0);
    evit_prune_select(&pg, &g, &c, &s);
    evit_prune_select(&pl, &l, &c, &s);
    CHECK(pl.heads[0] == 3 && pl.heads[1] == 3);
    CHECK(pg.heads[0] == 4 && pg.heads[1] == 2);
    CHECK(pg.head_idx[1][0] == 2 && pg.head_idx[1][1] == 3);
    CHECK(pl.mlp[0] == 12 && pl.mlp[1] == 12);
    CHECK(pg.mlp[0] == 16 && pg.mlp[1] == 8);
    for (int j = 0; j < 8; j++) CHECK(pg.mlp_idx[1][j] == 8 + j);
    evit_prune_plan_free(&pg);
    evit_prune_plan_free(&pl);
    /* at 75% the global ranking would empty block 1; min_heads 2 stops it */
    REQUIRE(config_from("{\"heads_ratio\": 0.75, \"min_heads\": 2}", &g) == 0);
    evit_prune_select(&pg, &g, &c, &s);
    CHECK(pg.heads[1] == 2 && pg.heads[0] == 2);
    evit_prune_plan_free(&pg);
    evit_prune_scores_free(&s);
}

/* configs/fmnist's recipes on fm-tiny (layer scope, so the counts do not
 * depend on the scores): mild cuts at least a quarter of the MFLOPs, as
 * issue #4 asks of it, and aggressive removes half of every block. */
static void the_shipped_recipes_cut_fm_tiny_as_their_names_promise(void)
{
    const char *src = getenv("EVIT_SRC");
    char path[512];
    struct evit_vit_config tiny, out;
    struct evit_prune_config mild, aggr;
    struct evit_prune_scores s;
    struct evit_prune_plan p;
    snprintf(path, sizeof path, "%s/configs/models/fm-tiny.json", src ? src : ".");
    REQUIRE(evit_config_load(path, &tiny) == 0);
    snprintf(path, sizeof path, "%s/configs/fmnist/prune-mild.json", src ? src : ".");
    REQUIRE(evit_prune_config_load(path, &mild) == 0);
    snprintf(path, sizeof path, "%s/configs/fmnist/prune-aggressive.json", src ? src : ".");
    REQUIRE(evit_prune_config_load(path, &aggr) == 0);
    evit_prune_scores_alloc(&s, &tiny);
    for (int l = 0; l < tiny.depth; l++) {
        for (int h = 0; h < tiny.blocks[l].heads; h++) s.head[l][h] = h;
        for (int c = 0; c < tiny.blocks[l].mlp; c++) s.mlp[l][c] = c;
    }
    evit_prune_select(&p, &mild, &tiny, &s);
    evit_prune_shape(&out, &tiny, &p);
    CHECK(evit_config_mflops(&out) <= 0.75 * evit_config_mflops(&tiny));
    for (int l = 0; l < tiny.depth; l++) CHECK(out.blocks[l].heads == 3);
    evit_prune_plan_free(&p);
    evit_prune_select(&p, &aggr, &tiny, &s);
    evit_prune_shape(&out, &tiny, &p);
    for (int l = 0; l < tiny.depth; l++)
        CHECK(out.blocks[l].heads == 2 && out.blocks[l].mlp == tiny.blocks[l].mlp / 2);
    evit_prune_plan_free(&p);
    evit_prune_scores_free(&s);
    evit_prune_config_free(&mild);
    evit_prune_config_free(&aggr);
}

static void mlp_multiple_rounds_kept_channels_and_min_heads_is_respected(void)
{
    CHECK(evit_prune_round_mlp(192, 256, 8) == 192);
    CHECK(evit_prune_round_mlp(150, 256, 8) == 152);
    CHECK(evit_prune_round_mlp(147, 256, 8) == 144);
    CHECK(evit_prune_round_mlp(3, 256, 8) == 8);     /* never below the multiple */
    CHECK(evit_prune_round_mlp(255, 252, 8) == 252); /* never above the width */
    CHECK(evit_prune_round_mlp(5, 4, 8) == 4);
    struct evit_vit_config c = tiny_config(); /* heads 3, 2; mlp 20, 8 */
    struct evit_prune_scores s;
    struct evit_prune_config pc;
    struct evit_prune_plan p;
    evit_prune_scores_alloc(&s, &c);
    for (int i = 0; i < 20; i++) s.mlp[0][i] = i;
    REQUIRE(config_from("{\"scope\": \"layer\", \"heads_ratio\": 0.9, \"mlp_ratio\": 0.5, \"min_heads\": 2}", &pc) == 0);
    evit_prune_select(&p, &pc, &c, &s);
    CHECK(p.heads[0] == 2 && p.heads[1] == 2);
    CHECK(p.mlp[0] == 8 && p.mlp[1] == 8); /* 10 rounds to 8; 4 rises to 8 */
    for (int j = 0; j < 8; j++) CHECK(p.mlp_idx[0][j] == 12 + j);
    evit_prune_plan_free(&p);
    /* a ratio of 0 keeps a width that is not a multiple (20 would round to 18) */
    REQUIRE(config_from("{\"scope\": \"layer\", \"mlp_multiple\": 6}", &pc) == 0);
    evit_prune_select(&p, &pc, &c, &s);
    CHECK(p.mlp[0] == 20 && p.mlp[1] == 8 && p.heads[0] == 3 && p.heads[1] == 2);
    evit_prune_plan_free(&p);
    REQUIRE(config_from("{\"mlp_multiple\": 6}", &pc) == 0);
    evit_prune_select(&p, &pc, &c, &s);
    CHECK(p.mlp[0] == 20 && p.mlp[1] == 8);
    evit_prune_plan_free(&p);
    REQUIRE(config_from("{\"scope\": \"layer\", \"heads_ratio\": 0.9, \"min_heads\": 5}", &pc) == 0);
    evit_prune_select(&p, &pc, &c, &s);
    CHECK(p.heads[0] == 3 && p.heads[1] == 2); /* min_heads above the width keeps them all */
    evit_prune_plan_free(&p);
    REQUIRE(config_from("{\"scope\": \"layer\", \"heads_ratio\": 0.9}", &pc) == 0);
    evit_prune_select(&p, &pc, &c, &s);
    CHECK(p.heads[0] == 1 && p.heads[1] == 1); /* the default min_heads is 1 */
    evit_prune_plan_free(&p);
    evit_prune_scores_free(&s);
}

static void per_block_overrides_win_over_ratios_and_are_not_rounded(void)
{
    struct evit_vit_config c = two_blocks();
    struct evit_prune_scores s;
    struct evit_prune_config pc;
    struct evit_prune_plan p;
    evit_prune_scores_alloc(&s, &c);
    fill_scores(&s);
    REQUIRE(config_from("{\"scope\": \"layer\", \"heads_ratio\": 0.5, \"mlp_ratio\": 0.5,"
                        " \"blocks\": {\"1\": {\"heads_keep\": 1, \"mlp_keep\": 5}}}", &pc) == 0);
    evit_prune_select(&p, &pc, &c, &s);
    CHECK(p.heads[0] == 2 && p.mlp[0] == 8);
    CHECK(p.heads[1] == 1 && p.mlp[1] == 5);
    CHECK(p.head_idx[1][0] == 2); /* the best head, lower index among equals */
    evit_prune_plan_free(&p);
    /* global: the overridden block leaves the ranking; the ratio applies to
     * the others' heads (25% of block 0's 4 is one) */
    REQUIRE(config_from("{\"heads_ratio\": 0.25, \"blocks\": {\"1\": {\"heads_keep\": 4}}}", &pc) == 0);
    evit_prune_select(&p, &pc, &c, &s);
    CHECK(p.heads[0] == 3 && p.heads[1] == 4);
    CHECK(p.mlp[0] == 16 && p.mlp[1] == 16);
    evit_prune_plan_free(&p);
    evit_prune_scores_free(&s);
}

static void the_pruned_model_has_the_shapes_and_parameter_count_of_its_config(void)
{
    struct evit_vit m, p;
    struct evit_prune_scores s;
    struct evit_prune_plan plan;
    make_model(&m, 5);
    REQUIRE(prune_with("{\"heads_ratio\": 0.4, \"mlp_ratio\": 0.5, \"mlp_multiple\": 2,"
                       " \"blocks\": {\"0\": {\"mlp_keep\": 7}}}", &m, &s, &plan, &p) == 0);
    struct evit_vit_config want = m.cfg;
    for (int l = 0; l < 2; l++) {
        want.blocks[l].heads = plan.heads[l];
        want.blocks[l].mlp = plan.mlp[l];
    }
    CHECK(p.cfg.blocks[0].mlp == 7);
    CHECK(evit_config_params(&p.cfg) == evit_config_params(&want));
    CHECK(evit_config_params(&p.cfg) < evit_config_params(&m.cfg));
    CHECK(evit_config_mflops(&p.cfg) < evit_config_mflops(&m.cfg));
    int n;
    size_t total = 0;
    struct evit_tensor_ref *t = evit_vit_tensor_list(&p.cfg, &p.p, &n);
    for (int i = 0; i < n; i++) {
        total += t[i].numel;
        int l = t[i].block;
        if (l < 0) continue;
        int64_t I = (int64_t)plan.heads[l] * 4, M = plan.mlp[l];
        if (strstr(t[i].name, "attn.qkv.weight")) CHECK(t[i].shape[0] == 3 * I && t[i].shape[1] == 12);
        if (strstr(t[i].name, "attn.qkv.bias")) CHECK(t[i].shape[0] == 3 * I);
        if (strstr(t[i].name, "attn.proj.weight")) CHECK(t[i].shape[0] == 12 && t[i].shape[1] == I);
        if (strstr(t[i].name, "mlp.fc1.weight")) CHECK(t[i].shape[0] == M && t[i].shape[1] == 12);
        if (strstr(t[i].name, "mlp.fc1.bias")) CHECK(t[i].shape[0] == M);
        if (strstr(t[i].name, "mlp.fc2.weight")) CHECK(t[i].shape[0] == 12 && t[i].shape[1] == M);
    }
    CHECK((long)total == evit_config_params(&want));
    CHECK(evit_config_validate(&p.cfg, "pruned") == 0);
    /* the report's per-block parameter counts add up to the difference */
    cJSON *j = evit_prune_plan_to_json(&plan, &m, &p);
    double saved = 0.0;
    for (cJSON *b = j->child; b; b = b->next)
        saved += cJSON_GetObjectItem(b, "params_before")->valuedouble -
                 cJSON_GetObjectItem(b, "params_after")->valuedouble;
    CHECK_NEAR(saved, (double)(evit_config_params(&m.cfg) - evit_config_params(&p.cfg)), 0.5);
    CHECK(evit_prune_decoder_to_json(&plan, &m, &p) == NULL); /* a class head has no decoder */
    cJSON_Delete(j);
    free(t);
    evit_prune_plan_free(&plan);
    evit_prune_scores_free(&s);
    evit_vit_free(&p);
    evit_vit_free(&m);
}

/* Runs parse + check against model c on json with stderr captured; the one
 * error line must contain want. */
static int refused_for(const struct evit_vit_config *c, const char *json, int have_data, const char *want)
{
    struct evit_prune_config pc;
    char path[300], line[512] = "";
    snprintf(path, sizeof path, "%s/stderr.txt", test_tmpdir());
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(path, "w");
    if (!f || saved < 0) return 0;
    dup2(fileno(f), 2);
    int rc = config_from(json, &pc);
    if (rc == 0) rc = evit_prune_config_check(&pc, "test.json", c, have_data);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(f);
    f = fopen(path, "r");
    if (f) {
        if (!fgets(line, sizeof line, f)) line[0] = '\0';
        fclose(f);
    }
    int ok = rc < 0 && strncmp(line, "error: test.json: ", 18) == 0 && strstr(line, want) != NULL;
    if (!ok) fprintf(stderr, "  config %s: rc %d, message '%s', wanted '%s'\n", json, rc, line, want);
    return ok;
}

/* The same against tiny_config (a class head). */
static int refused_with(const char *json, int have_data, const char *want)
{
    struct evit_vit_config c = tiny_config();
    return refused_for(&c, json, have_data, want);
}

static void decoder_keys_are_refused_for_a_model_without_the_decoder_and_above_its_width(void)
{
    struct evit_vit_config seg = seg_config(), lin = tiny_config();
    lin.head = EVIT_HEAD_SEG_LINEAR;
    CHECK(refused_with("{\"decoder_ratio\": 0.25}", 0,
                       "decoder_ratio: the model has a class head, which has no decoder to prune"));
    CHECK(refused_with("{\"decoder_ratio\": 0}", 0, "decoder_ratio: the model has a class head"));
    CHECK(refused_with("{\"decoder_ratio\": 0.5, \"decoder_keep\": 4}", 0, "decoder_keep: the model has a class head"));
    CHECK(refused_for(&lin, "{\"decoder_keep\": 4}", 0, "decoder_keep: the model has a seg_linear head, which has no decoder"));
    CHECK(refused_for(&seg, "{\"decoder_keep\": 11}", 0, "decoder_keep: 11 is more than the decoder's width 10"));
    CHECK(refused_for(&seg, "{\"decoder_keep\": 0}", 0, "decoder_keep: 0 is out of range"));
    CHECK(refused_for(&seg, "{\"decoder_keep\": 2.5}", 0, "decoder_keep: must be an integer"));
    CHECK(refused_for(&seg, "{\"decoder_ratio\": 1}", 0, "decoder_ratio: 1 would remove everything"));
    CHECK(refused_for(&seg, "{\"decoder_ratio\": -0.5}", 0, "decoder_ratio: -0.5 is out of range"));
    CHECK(refused_for(&seg, "{\"decoder_ration\": 0.5}", 0, "decoder_ration: unknown key"));
    struct evit_prune_config pc;
    CHECK(config_from("{\"decoder_keep\": 10, \"decoder_ratio\": 0.9}", &pc) == 0);
    CHECK(evit_prune_config_check(&pc, "test.json", &seg, 0) == 0);
}

static void bad_configs_are_refused_naming_the_key_and_the_problem(void)
{
    CHECK(refused_with("{\"heads_ration\": 0.5}", 0, "heads_ration: unknown key"));
    CHECK(refused_with("{\"heads_ratio\": 1.0}", 0, "heads_ratio: 1 would remove everything"));
    CHECK(refused_with("{\"mlp_ratio\": 1}", 0, "mlp_ratio: 1 would remove everything"));
    CHECK(refused_with("{\"mlp_ratio\": -0.1}", 0, "mlp_ratio: -0.1 is out of range"));
    CHECK(refused_with("{\"heads_ratio\": \"0.5\"}", 0, "heads_ratio: must be a number"));
    CHECK(refused_with("{\"criterion\": \"l3\"}", 0, "criterion: 'l3' is not one of l1, l2, taylor"));
    CHECK(refused_with("{\"scope\": \"local\"}", 0, "scope: 'local' is not one of global, layer"));
    CHECK(refused_with("{\"min_heads\": 0}", 0, "min_heads: 0 is out of range"));
    CHECK(refused_with("{\"mlp_multiple\": 2.5}", 0, "mlp_multiple: must be an integer"));
    CHECK(refused_with("{\"blocks\": [1]}", 0, "blocks: must be an object"));
    CHECK(refused_with("{\"blocks\": {\"7\": {\"heads_keep\": 1}}}", 0, "blocks.7: the model has 2 blocks"));
    CHECK(refused_with("{\"blocks\": {\"x\": {\"heads_keep\": 1}}}", 0, "blocks.x: not a block index"));
    CHECK(refused_with("{\"blocks\": {\"01\": {\"heads_keep\": 1}}}", 0, "blocks.01: write the block index as 1"));
    CHECK(refused_with("{\"blocks\": {\"0\": {}}}", 0, "blocks.0: give heads_keep, mlp_keep or both"));
    CHECK(refused_with("{\"blocks\": {\"0\": {\"heads\": 2}}}", 0, "blocks.0.heads: unknown key"));
    CHECK(refused_with("{\"blocks\": {\"0\": {\"heads_keep\": 0}}}", 0, "blocks.0.heads_keep: 0 is out of range"));
    CHECK(refused_with("{\"blocks\": {\"0\": {\"heads_keep\": 4}}}", 0,
                       "blocks.0.heads_keep: 4 is more than the 3 heads block 0 has"));
    CHECK(refused_with("{\"blocks\": {\"1\": {\"mlp_keep\": 9}}}", 0,
                       "blocks.1.mlp_keep: 9 is more than the 8 channels block 1 has"));
    CHECK(refused_with("{\"criterion\": \"taylor\"}", 0, "criterion: taylor needs training images"));
    struct evit_prune_config pc;
    CHECK(config_from("{\"criterion\": \"taylor\", \"description\": \"ok\"}", &pc) == 0);
    CHECK(evit_prune_config_check(&pc, "test.json", &(struct evit_vit_config){0}, 1) == 0);
}

static void taylor_importance_ranks_a_zeroed_head_and_channel_last(void)
{
    struct evit_vit m, p;
    struct evit_dataset d;
    struct evit_prune_scores s, s1;
    struct evit_prune_config pc;
    struct evit_prune_plan plan;
    make_model(&m, 6);
    zero_head(&m, 1, 0);
    zero_channel(&m, 0, 13);
    memset(&d, 0, sizeof d);
    d.n = 100;
    d.h = d.w = 8;
    d.c = 2;
    d.classes = 5;
    d.images = images(&m.cfg, d.n, 11);
    d.labels = malloc(sizeof(int32_t) * (size_t)d.n);
    for (int i = 0; i < d.n; i++) d.labels[i] = i % 5;
    evit_prune_scores_alloc(&s, &m.cfg);
    evit_prune_scores_alloc(&s1, &m.cfg);
    evit_prune_taylor(&s, &m, &d, 2, 0);
    CHECK(s.head[1][0] == 0.0 && s.head[1][1] > 0.0);
    CHECK(s.mlp[0][13] == 0.0 && argmin(s.mlp[0], 20) == 13);
    for (int h = 0; h < 3; h++) CHECK(s.head[0][h] > 0.0);
    /* more batches, other numbers: the gradient really is accumulated */
    evit_prune_taylor(&s1, &m, &d, 1, 0);
    CHECK(s1.head[0][0] != s.head[0][0]);
    REQUIRE(config_from("{\"criterion\": \"taylor\", \"heads_ratio\": 0.2, \"mlp_ratio\": 0.04, \"mlp_multiple\": 1}", &pc) == 0);
    evit_prune_select(&plan, &pc, &m.cfg, &s);
    CHECK(plan.heads[0] == 3 && plan.heads[1] == 1 && plan.head_idx[1][0] == 1);
    CHECK(plan.mlp[0] == 19 && plan.mlp[1] == 8);
    evit_prune_apply(&p, &m, &plan);
    CHECK(logit_gap(&m, &p, 12) <= 1e-5);
    evit_prune_plan_free(&plan);
    evit_prune_scores_free(&s);
    evit_prune_scores_free(&s1);
    free(d.images);
    free(d.labels);
    evit_vit_free(&p);
    evit_vit_free(&m);
}

/* The decoder's gather checked against the maths: dropping live channels
 * of every level and of the fuse output (with heads and MLP channels, so
 * that the decoder reads pruned blocks) gives the logits of the full model
 * with only their linear_c rows and biases, and linear_fuse rows and
 * biases, zeroed: the fuse and head columns the gather drops then multiply
 * zeros. */
static void removing_live_decoder_channels_equals_zeroing_their_rows_in_the_full_model(void)
{
    const char *cfgs[] = {"{\"decoder_keep\": 7, \"blocks\": {\"0\": {\"heads_keep\": 2, \"mlp_keep\": 11}}}",
                          "{\"criterion\": \"l1\", \"decoder_ratio\": 0.5, \"heads_ratio\": 0.2, \"mlp_multiple\": 1}"};
    const int want[] = {7, 5};
    for (int k = 0; k < 2; k++) {
        struct evit_vit m, z, p;
        struct evit_prune_scores s;
        struct evit_prune_plan plan;
        make_seg_model(&m, 20 + (uint64_t)k);
        REQUIRE(prune_with(cfgs[k], &m, &s, &plan, &p) == 0);
        REQUIRE(plan.levels == 2 && plan.dec_dim == want[k] && p.cfg.decoder_dim == want[k]);
        copy_model(&z, &m);
        for (int l = 0; l < 2; l++) {
            for (int h = 0; h < m.cfg.blocks[l].heads; h++)
                if (!kept(plan.head_idx[l], plan.heads[l], h)) zero_head(&z, l, h);
            for (int c = 0; c < m.cfg.blocks[l].mlp; c++)
                if (!kept(plan.mlp_idx[l], plan.mlp[l], c)) zero_channel(&z, l, c);
        }
        int removed = 0;
        for (int c = 0; c < SEG_C; c++) {
            for (int i = 0; i < 2; i++)
                if (!kept(plan.dec_idx[i], plan.dec_dim, c)) zero_level_channel(&z, i, c, 0), removed++;
            if (!kept(plan.fuse_idx, plan.dec_dim, c)) zero_fuse_channel(&z, c, 0), removed++;
        }
        CHECK(removed == 3 * (SEG_C - want[k]));
        double gap = logit_gap(&z, &p, 30), real = logit_gap(&m, &p, 30);
        CHECK(gap <= 1e-5);
        CHECK(real > 1e-3); /* something real was removed */
        if (gap > 1e-5 || !(real > 1e-3)) fprintf(stderr, "  config %d: gap %g, change %g\n", k, gap, real);
        evit_prune_plan_free(&plan);
        evit_prune_scores_free(&s);
        evit_vit_free(&p);
        evit_vit_free(&z);
        evit_vit_free(&m);
    }
}

/* Levels and the fuse output keep their own channels: with channel 7 of
 * level 0, 3 of level 1 and 2 of the fuse output zeroed (everything each
 * owns), l2 and taylor score them 0 and lowest, a ratio that removes one
 * channel removes exactly those, and the logits do not change. */
static void zeroed_decoder_channels_rank_last_per_level_and_removing_them_changes_nothing(void)
{
    for (int taylor = 0; taylor < 2; taylor++) {
        struct evit_vit m, p;
        struct evit_prune_scores s;
        struct evit_prune_config pc;
        struct evit_prune_plan plan;
        struct evit_dataset d;
        make_seg_model(&m, 22);
        /* on so few patches some fuse channels are dead (ReLU off on every
         * one), and a dead channel's gradient is 0: a bias of 3 keeps them
         * all on, so that only the zeroed one scores 0 */
        for (int c = 0; c < SEG_C; c++) m.p.fuse_b[c] = 3.0f;
        zero_level_channel(&m, 0, 7, 1);
        zero_level_channel(&m, 1, 3, 1);
        zero_fuse_channel(&m, 2, 1);
        memset(&d, 0, sizeof d);
        d.n = 40;
        d.h = d.w = 8;
        d.c = 2;
        d.classes = 5;
        d.ignore = -1;
        d.images = images(&m.cfg, d.n, 23);
        d.masks = malloc((size_t)d.n * 64);
        for (size_t j = 0; j < (size_t)d.n * 64; j++) d.masks[j] = (uint8_t)((j * 7 + j / 64) % 5);
        evit_prune_scores_alloc(&s, &m.cfg);
        REQUIRE(s.levels == 2 && s.dec_dim == SEG_C && s.fuse != NULL);
        if (taylor)
            evit_prune_taylor(&s, &m, &d, 1, 0);
        else
            evit_prune_magnitude(&s, &m, EVIT_PRUNE_L2);
        CHECK(s.dec[0][7] == 0.0 && s.dec[1][3] == 0.0 && s.fuse[2] == 0.0);
        for (int c = 0; c < SEG_C; c++) {
            CHECK(c == 7 || s.dec[0][c] > 0.0);
            CHECK(c == 3 || s.dec[1][c] > 0.0);
            CHECK(c == 2 || s.fuse[c] > 0.0);
        }
        REQUIRE(config_from(taylor ? "{\"criterion\": \"taylor\", \"decoder_ratio\": 0.1, \"mlp_multiple\": 1}"
                                   : "{\"decoder_ratio\": 0.1, \"mlp_multiple\": 1}", &pc) == 0);
        REQUIRE(evit_prune_config_check(&pc, "test.json", &m.cfg, 1) == 0);
        evit_prune_select(&plan, &pc, &m.cfg, &s);
        REQUIRE(plan.dec_dim == SEG_C - 1);
        CHECK(!kept(plan.dec_idx[0], plan.dec_dim, 7) && !kept(plan.dec_idx[1], plan.dec_dim, 3));
        CHECK(!kept(plan.fuse_idx, plan.dec_dim, 2));
        for (int l = 0; l < 2; l++) CHECK(plan.heads[l] == m.cfg.blocks[l].heads && plan.mlp[l] == m.cfg.blocks[l].mlp);
        evit_prune_apply(&p, &m, &plan);
        CHECK(logit_gap(&m, &p, 24) <= 1e-5);
        evit_prune_plan_free(&plan);
        evit_prune_scores_free(&s);
        free(d.images);
        free(d.masks);
        evit_vit_free(&p);
        evit_vit_free(&m);
    }
}

/* decoder_keep 7 of 10 (not rounded, not a multiple of mlp_multiple 8):
 * linear_c (7, D), linear_fuse (7, 2*7), head (K, 7); the parameters are
 * what the config says, and the report's decoder and block counts add up
 * to the difference. */
static void a_pruned_decoder_has_the_shapes_and_parameter_count_of_its_config(void)
{
    struct evit_vit m, p;
    struct evit_prune_scores s;
    struct evit_prune_plan plan;
    make_seg_model(&m, 25);
    REQUIRE(prune_with("{\"decoder_keep\": 7, \"decoder_ratio\": 0.5, \"heads_ratio\": 0.4, \"mlp_ratio\": 0.5}",
                       &m, &s, &plan, &p) == 0);
    struct evit_vit_config want = m.cfg;
    for (int l = 0; l < 2; l++) {
        want.blocks[l].heads = plan.heads[l];
        want.blocks[l].mlp = plan.mlp[l];
    }
    want.decoder_dim = 7;
    CHECK(p.cfg.decoder_dim == 7 && p.cfg.decoder_nlevels == 2 && p.cfg.head == EVIT_HEAD_SEG_MLP);
    CHECK(evit_config_params(&p.cfg) == evit_config_params(&want));
    CHECK(evit_config_validate(&p.cfg, "pruned") == 0);
    int n, shapes = 0;
    size_t total = 0;
    struct evit_tensor_ref *t = evit_vit_tensor_list(&p.cfg, &p.p, &n);
    /* (rows, columns) each decoder tensor must have; a bias has no columns */
    static const struct { const char *name; int64_t rows, cols; } want_shape[] = {
        {"decode_head.linear_c.0.weight", 7, 12}, {"decode_head.linear_c.0.bias", 7, 0},
        {"decode_head.linear_c.1.weight", 7, 12}, {"decode_head.linear_c.1.bias", 7, 0},
        {"decode_head.linear_fuse.weight", 7, 14}, {"decode_head.linear_fuse.bias", 7, 0},
        {"head.weight", 5, 7}};
    for (int i = 0; i < n; i++) {
        total += t[i].numel;
        for (size_t j = 0; j < sizeof want_shape / sizeof want_shape[0]; j++) {
            if (strcmp(t[i].name, want_shape[j].name) != 0) continue;
            CHECK(t[i].shape[0] == want_shape[j].rows && t[i].ndim == (want_shape[j].cols ? 2 : 1));
            CHECK(want_shape[j].cols == 0 || t[i].shape[1] == want_shape[j].cols);
            shapes++;
        }
    }
    CHECK(shapes == 7);
    CHECK((long)total == evit_config_params(&want));
    free(t);
    cJSON *blocks = evit_prune_plan_to_json(&plan, &m, &p);
    cJSON *dec = evit_prune_decoder_to_json(&plan, &m, &p);
    REQUIRE(dec != NULL);
    double saved = cJSON_GetObjectItem(dec, "params_before")->valuedouble -
                   cJSON_GetObjectItem(dec, "params_after")->valuedouble;
    for (cJSON *b = blocks->child; b; b = b->next)
        saved += cJSON_GetObjectItem(b, "params_before")->valuedouble -
                 cJSON_GetObjectItem(b, "params_after")->valuedouble;
    CHECK_NEAR(saved, (double)(evit_config_params(&m.cfg) - evit_config_params(&p.cfg)), 0.5);
    CHECK(cJSON_GetObjectItem(dec, "dim_before")->valueint == 10 && cJSON_GetObjectItem(dec, "dim_after")->valueint == 7);
    CHECK(cJSON_GetObjectItem(dec, "mflops_saved")->valuedouble > 0.0);
    cJSON *lv = cJSON_GetObjectItem(dec, "levels");
    CHECK(cJSON_GetArraySize(lv) == 2);
    for (cJSON *e = lv->child; e; e = e->next)
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(e, "kept")) == 7 &&
              cJSON_GetArraySize(cJSON_GetObjectItem(e, "removed")) == 3);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(dec, "fuse"), "removed")) == 3);
    cJSON_Delete(dec);
    cJSON_Delete(blocks);
    evit_prune_plan_free(&plan);
    evit_prune_scores_free(&s);
    evit_vit_free(&p);
    evit_vit_free(&m);
}

/* The decoder's width is its own group: a ratio rounds to mlp_multiple
 * (10 * 0.7 = 7 -> 8 with mlp_multiple 4), no ratio keeps a width that is
 * no multiple (10 with the default 8), and neither scope lets heads or
 * channels move it. */
static void decoder_ratio_rounds_to_mlp_multiple_and_stays_out_of_the_block_rankings(void)
{
    struct evit_vit_config c = seg_config();
    struct evit_prune_scores s;
    struct evit_prune_config pc;
    struct evit_prune_plan p;
    evit_prune_scores_alloc(&s, &c);
    for (int i = 0; i < SEG_C; i++) {
        s.dec[0][i] = i;
        s.dec[1][i] = SEG_C - i;
        s.fuse[i] = i % 2 ? 100.0 : 0.01; /* far apart from the blocks' zeros */
    }
    REQUIRE(config_from("{\"decoder_ratio\": 0.3, \"mlp_multiple\": 4}", &pc) == 0);
    evit_prune_select(&p, &pc, &c, &s);
    REQUIRE(p.dec_dim == 8);
    for (int j = 0; j < 8; j++) CHECK(p.dec_idx[0][j] == 2 + j && p.dec_idx[1][j] == j);
    /* the five odd channels and, among the equal evens, the lowest three */
    static const int fuse_kept[8] = {0, 1, 2, 3, 4, 5, 7, 9};
    for (int j = 0; j < 8; j++) CHECK(p.fuse_idx[j] == fuse_kept[j]);
    evit_prune_plan_free(&p);
    const char *zero[] = {"{}", "{\"scope\": \"layer\", \"heads_ratio\": 0.5, \"mlp_ratio\": 0.5}",
                          "{\"heads_ratio\": 0.5, \"mlp_ratio\": 0.5}"};
    for (int k = 0; k < 3; k++) {
        REQUIRE(config_from(zero[k], &pc) == 0);
        evit_prune_select(&p, &pc, &c, &s);
        CHECK(p.dec_dim == SEG_C && p.levels == 2);
        for (int j = 0; j < SEG_C; j++) CHECK(p.dec_idx[0][j] == j && p.fuse_idx[j] == j);
        evit_prune_plan_free(&p);
    }
    evit_prune_scores_free(&s);
    /* a model without the decoder has no decoder scores or plan */
    struct evit_vit_config t = tiny_config();
    evit_prune_scores_alloc(&s, &t);
    CHECK(s.levels == 0 && s.fuse == NULL && s.dec[0] == NULL);
    REQUIRE(config_from("{}", &pc) == 0);
    evit_prune_select(&p, &pc, &t, &s);
    CHECK(p.levels == 0 && p.dec_dim == 0 && p.fuse_idx == NULL);
    evit_prune_plan_free(&p);
    evit_prune_scores_free(&s);
}

int main(void)
{
    RUN(pruning_nothing_copies_the_model_and_gives_bit_identical_logits);
    RUN(a_zeroed_head_ranks_last_and_removing_it_leaves_the_logits_unchanged);
    RUN(a_zeroed_mlp_channel_ranks_last_and_removing_it_leaves_the_logits_unchanged);
    RUN(removing_live_heads_and_channels_equals_zeroing_them_in_the_full_model);
    RUN(l1_and_l2_rank_a_spread_out_head_and_a_concentrated_head_oppositely);
    RUN(global_and_layer_scopes_remove_the_same_total_but_distribute_it_differently);
    RUN(the_shipped_recipes_cut_fm_tiny_as_their_names_promise);
    RUN(mlp_multiple_rounds_kept_channels_and_min_heads_is_respected);
    RUN(per_block_overrides_win_over_ratios_and_are_not_rounded);
    RUN(the_pruned_model_has_the_shapes_and_parameter_count_of_its_config);
    RUN(bad_configs_are_refused_naming_the_key_and_the_problem);
    RUN(taylor_importance_ranks_a_zeroed_head_and_channel_last);
    RUN(removing_live_decoder_channels_equals_zeroing_their_rows_in_the_full_model);
    RUN(zeroed_decoder_channels_rank_last_per_level_and_removing_them_changes_nothing);
    RUN(a_pruned_decoder_has_the_shapes_and_parameter_count_of_its_config);
    RUN(decoder_ratio_rounds_to_mlp_multiple_and_stays_out_of_the_block_rankings);
    RUN(decoder_keys_are_refused_for_a_model_without_the_decoder_and_above_its_width);
    return test_summary();
}
