/* prune.c: see prune.h. */
#include "prune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "json.h"
#include "head.h"
#include "ops.h"
#include "util.h"

/* ---------------------------------------------------------------- config */

void evit_prune_config_defaults(struct evit_prune_config *c)
{
    memset(c, 0, sizeof *c);
    c->criterion = EVIT_PRUNE_L2;
    c->scope = EVIT_PRUNE_GLOBAL;
    c->min_heads = 1;
    c->mlp_multiple = 8;
    c->taylor_batches = 8;
    c->max_block = -1;
}

const char *evit_prune_criterion_name(enum evit_prune_criterion c)
{
    return c == EVIT_PRUNE_L1 ? "l1" : c == EVIT_PRUNE_L2 ? "l2" : "taylor";
}

const char *evit_prune_scope_name(enum evit_prune_scope s)
{
    return s == EVIT_PRUNE_GLOBAL ? "global" : "layer";
}

/* A ratio of 1 would leave a block with nothing; the range check of the
 * getter allows it so that the message can say why it is refused. */
static int get_ratio(const cJSON *obj, const char *file, const char *key, double *out)
{
    if (evit_json_get_double(obj, file, "", key, 0, 0.0, 1.0, out) < 0) return EVIT_ERR;
    if (*out >= 1.0)
        return evit_error("%s: %s: 1 would remove everything; the ratio is the fraction removed, "
                          "use a value below 1", file, key);
    return EVIT_OK;
}

/* "blocks": {"0": {"heads_keep": 3, "mlp_keep": 128}, ...}; the keys are
 * block indices written plainly ("0", not "00" or "+0"), each named once. */
static int parse_blocks(const cJSON *obj, const char *file, struct evit_prune_config *c)
{
    static const char *const keys[] = {"heads_keep", "mlp_keep", NULL};
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(obj, "blocks");
    char where[64], canon[16];
    long l;
    if (!b) return EVIT_OK;
    if (!cJSON_IsObject(b))
        return evit_error("%s: blocks: must be an object like {\"0\": {\"heads_keep\": 3}}", file);
    for (const cJSON *it = b->child; it; it = it->next) {
        snprintf(where, sizeof where, "blocks.%.40s", it->string);
        if (evit_parse_int(it->string, 0, EVIT_MAX_DEPTH - 1, &l) < 0)
            return evit_error("%s: %s: not a block index (0..%d)", file, where, EVIT_MAX_DEPTH - 1);
        snprintf(canon, sizeof canon, "%ld", l);
        if (strcmp(canon, it->string) != 0)
            return evit_error("%s: %s: write the block index as %s", file, where, canon);
        if (c->heads_keep[l] || c->mlp_keep[l]) return evit_error("%s: %s: named twice", file, where);
        if (evit_json_check_keys(it, file, where, keys) < 0 ||
            evit_json_get_int(it, file, where, "heads_keep", 0, 1, 1024, &c->heads_keep[l]) < 0 ||
            evit_json_get_int(it, file, where, "mlp_keep", 0, 1, 65536, &c->mlp_keep[l]) < 0)
            return EVIT_ERR;
        if (!c->heads_keep[l] && !c->mlp_keep[l])
            return evit_error("%s: %s: give heads_keep, mlp_keep or both", file, where);
        if (l > c->max_block) c->max_block = (int)l;
    }
    return EVIT_OK;
}

int evit_prune_config_parse(const cJSON *obj, const char *file, struct evit_prune_config *c)
{
    static const char *const keys[] = {"description", "criterion", "scope", "heads_ratio",
                                       "mlp_ratio", "min_heads", "mlp_multiple",
                                       "taylor_batches", "blocks", "decoder_ratio",
                                       "decoder_keep", NULL};
    static const char *const crit_names[] = {"l1", "l2", "taylor", NULL};
    static const int crit_values[] = {EVIT_PRUNE_L1, EVIT_PRUNE_L2, EVIT_PRUNE_TAYLOR};
    static const char *const scope_names[] = {"global", "layer", NULL};
    static const int scope_values[] = {EVIT_PRUNE_GLOBAL, EVIT_PRUNE_LAYER};
    const char *desc = NULL;
    evit_prune_config_defaults(c);
    int crit = (int)c->criterion, scope = (int)c->scope;
    if (evit_json_check_keys(obj, file, "", keys) < 0 ||
        evit_json_get_string(obj, file, "", "description", 0, &desc) < 0 ||
        evit_json_get_choice(obj, file, "", "criterion", crit_names, crit_values, &crit) < 0 ||
        evit_json_get_choice(obj, file, "", "scope", scope_names, scope_values, &scope) < 0)
        return EVIT_ERR;
    c->criterion = (enum evit_prune_criterion)crit;
    c->scope = (enum evit_prune_scope)scope;
    if (get_ratio(obj, file, "heads_ratio", &c->heads_ratio) < 0 ||
        get_ratio(obj, file, "mlp_ratio", &c->mlp_ratio) < 0 ||
        evit_json_get_int(obj, file, "", "min_heads", 0, 1, 1024, &c->min_heads) < 0 ||
        evit_json_get_int(obj, file, "", "mlp_multiple", 0, 1, 65536, &c->mlp_multiple) < 0 ||
        evit_json_get_int(obj, file, "", "taylor_batches", 0, 1, 100000, &c->taylor_batches) < 0 ||
        get_ratio(obj, file, "decoder_ratio", &c->decoder_ratio) < 0 ||
        evit_json_get_int(obj, file, "", "decoder_keep", 0, 1, 16384, &c->decoder_keep) < 0)
        return EVIT_ERR;
    /* remembered by name, so that a model without a decoder refuses even
     * "decoder_ratio": 0 (the config was written for another model) */
    if (cJSON_GetObjectItemCaseSensitive(obj, "decoder_keep"))
        c->decoder_key = "decoder_keep";
    else if (cJSON_GetObjectItemCaseSensitive(obj, "decoder_ratio"))
        c->decoder_key = "decoder_ratio";
    return parse_blocks(obj, file, c);
}

int evit_prune_config_load(const char *path, struct evit_prune_config *c)
{
    cJSON *root = NULL;
    evit_prune_config_defaults(c);
    if (evit_json_load(path, &root) < 0) return EVIT_ERR;
    if (evit_prune_config_parse(root, path, c) < 0) {
        cJSON_Delete(root);
        c->json = NULL;
        return EVIT_ERR;
    }
    c->json = root;
    return EVIT_OK;
}

int evit_prune_config_check(const struct evit_prune_config *c, const char *file,
                            const struct evit_vit_config *model, int have_data)
{
    if (c->max_block >= model->depth)
        return evit_error("%s: blocks.%d: the model has %d blocks (0..%d)", file, c->max_block,
                          model->depth, model->depth - 1);
    for (int l = 0; l < model->depth; l++) {
        const struct evit_block_shape *b = &model->blocks[l];
        if (c->heads_keep[l] > b->heads)
            return evit_error("%s: blocks.%d.heads_keep: %d is more than the %d heads block %d has",
                              file, l, c->heads_keep[l], b->heads, l);
        if (c->mlp_keep[l] > b->mlp)
            return evit_error("%s: blocks.%d.mlp_keep: %d is more than the %d channels block %d has",
                              file, l, c->mlp_keep[l], b->mlp, l);
    }
    if (c->decoder_key && model->head != EVIT_HEAD_SEG_MLP)
        return evit_error("%s: %s: the model has a %s head, which has no decoder to prune (only seg_mlp has one)",
                          file, c->decoder_key, evit_config_head_name(model->head));
    if (c->decoder_keep > model->decoder_dim) /* a seg_mlp head, from the check above */
        return evit_error("%s: decoder_keep: %d is more than the decoder's width %d", file, c->decoder_keep,
                          model->decoder_dim);
    if (c->criterion == EVIT_PRUNE_TAYLOR && !have_data)
        return evit_error("%s: criterion: taylor needs training images (--data TRAIN.h5)", file);
    return EVIT_OK;
}

void evit_prune_config_free(struct evit_prune_config *c)
{
    cJSON_Delete(c->json);
    c->json = NULL;
}

/* ---------------------------------------------------------------- importance */

void evit_prune_scores_alloc(struct evit_prune_scores *s, const struct evit_vit_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->depth = cfg->depth;
    for (int l = 0; l < cfg->depth; l++) {
        s->head[l] = evit_calloc((size_t)cfg->blocks[l].heads, sizeof(double));
        s->mlp[l] = evit_calloc((size_t)cfg->blocks[l].mlp, sizeof(double));
    }
    if (cfg->head != EVIT_HEAD_SEG_MLP) return;
    s->levels = cfg->decoder_nlevels;
    s->dec_dim = cfg->decoder_dim;
    for (int i = 0; i < s->levels; i++) s->dec[i] = evit_calloc((size_t)s->dec_dim, sizeof(double));
    s->fuse = evit_calloc((size_t)s->dec_dim, sizeof(double));
}

void evit_prune_scores_free(struct evit_prune_scores *s)
{
    for (int l = 0; l < s->depth; l++) {
        free(s->head[l]);
        free(s->mlp[l]);
    }
    for (int i = 0; i < s->levels; i++) free(s->dec[i]);
    free(s->fuse);
    memset(s, 0, sizeof *s);
}

/* One weight's share of its group's score: |w|, w^2 (square-rooted at the
 * end), or |w g| with g the accumulated gradient. */
static inline double term(enum evit_prune_criterion crit, float w, const float *g, size_t i)
{
    switch (crit) {
    case EVIT_PRUNE_L1: return fabs((double)w);
    case EVIT_PRUNE_L2: return (double)w * (double)w;
    case EVIT_PRUNE_TAYLOR: break;
    }
    return fabs((double)w * (double)g[i]);
}

/* Sum of term() over n consecutive floats at w[0..n) (and g[0..n)). */
static double span(enum evit_prune_criterion crit, const float *w, const float *g, size_t n)
{
    double a = 0.0;
    for (size_t i = 0; i < n; i++) a += term(crit, w[i], g, i);
    return a;
}

/* Scores of block l's heads and channels from its weights w and, for
 * taylor, the gradients g bound to the same layout. */
static void score_block(double *head /* (H) */, double *mlp /* (M) */,
                        const struct evit_block_params *w, const struct evit_block_params *g,
                        const struct evit_block_shape *b, size_t D, enum evit_prune_criterion crit)
{
    size_t d = (size_t)b->head_dim, I = (size_t)b->heads * d, M = (size_t)b->mlp;
    int taylor = crit == EVIT_PRUNE_TAYLOR;
    for (int h = 0; h < b->heads; h++) {
        double a = 0.0;
        for (size_t part = 0; part < 3; part++) {
            size_t r0 = part * I + (size_t)h * d; /* first of the head's d rows in this third */
            a += span(crit, w->qkv_w + r0 * D, taylor ? g->qkv_w + r0 * D : NULL, d * D);
            a += span(crit, w->qkv_b + r0, taylor ? g->qkv_b + r0 : NULL, d);
        }
        for (size_t row = 0; row < D; row++) {
            size_t o = row * I + (size_t)h * d; /* the head's d columns of proj row `row` */
            a += span(crit, w->proj_w + o, taylor ? g->proj_w + o : NULL, d);
        }
        head[h] = crit == EVIT_PRUNE_L2 ? sqrt(a) : a;
    }
    for (size_t c = 0; c < M; c++) {
        double a = span(crit, w->fc1_w + c * D, taylor ? g->fc1_w + c * D : NULL, D);
        a += term(crit, w->fc1_b[c], taylor ? g->fc1_b : NULL, c);
        for (size_t row = 0; row < D; row++)
            a += term(crit, w->fc2_w[row * M + c], taylor ? g->fc2_w : NULL, row * M + c);
        mlp[c] = crit == EVIT_PRUNE_L2 ? sqrt(a) : a;
    }
}

/* Scores of seg_mlp's decoder channels from its weights w and, for taylor,
 * the gradients g bound to the same layout (prune.h: what each owns).
 * fuse_w is (C, L*C): level i's channel c is column i*C + c, the fuse
 * output's channel c is row c; head_w (K, C): u's channel c is column c. */
static void score_decoder(struct evit_prune_scores *s, const struct evit_vit_params *w,
                          const struct evit_vit_params *g, const struct evit_vit_config *cfg,
                          enum evit_prune_criterion crit)
{
    size_t D = (size_t)cfg->dim, C = (size_t)cfg->decoder_dim, L = (size_t)cfg->decoder_nlevels;
    size_t K = (size_t)cfg->classes, LC = L * C;
    int taylor = crit == EVIT_PRUNE_TAYLOR;
    EVIT_ASSERT(s->levels == (int)L && s->dec_dim == (int)C);
    for (size_t i = 0; i < L; i++) {
        for (size_t c = 0; c < C; c++) {
            double a = span(crit, w->dec_w[i] + c * D, taylor ? g->dec_w[i] + c * D : NULL, D);
            a += term(crit, w->dec_b[i][c], taylor ? g->dec_b[i] : NULL, c);
            for (size_t row = 0; row < C; row++)
                a += term(crit, w->fuse_w[row * LC + i * C + c], taylor ? g->fuse_w : NULL, row * LC + i * C + c);
            s->dec[i][c] = crit == EVIT_PRUNE_L2 ? sqrt(a) : a;
        }
    }
    for (size_t c = 0; c < C; c++) {
        double a = span(crit, w->fuse_w + c * LC, taylor ? g->fuse_w + c * LC : NULL, LC);
        a += term(crit, w->fuse_b[c], taylor ? g->fuse_b : NULL, c);
        for (size_t k = 0; k < K; k++)
            a += term(crit, w->head_w[k * C + c], taylor ? g->head_w : NULL, k * C + c);
        s->fuse[c] = crit == EVIT_PRUNE_L2 ? sqrt(a) : a;
    }
}

void evit_prune_magnitude(struct evit_prune_scores *s, const struct evit_vit *m,
                          enum evit_prune_criterion crit)
{
    EVIT_ASSERT(crit != EVIT_PRUNE_TAYLOR && s->depth == m->cfg.depth);
    for (int l = 0; l < m->cfg.depth; l++)
        score_block(s->head[l], s->mlp[l], &m->p.blocks[l], NULL, &m->cfg.blocks[l],
                    (size_t)m->cfg.dim, crit);
    if (m->cfg.head == EVIT_HEAD_SEG_MLP) score_decoder(s, &m->p, NULL, &m->cfg, crit);
}

void evit_prune_taylor(struct evit_prune_scores *s, const struct evit_vit *m,
                       const struct evit_dataset *d, int batches, int progress)
{
    const struct evit_vit_config *c = &m->cfg;
    const int B = EVIT_PRUNE_TAYLOR_BATCH, K = c->classes;
    size_t img = (size_t)c->img_size * c->img_size * c->channels;
    EVIT_ASSERT(s->depth == c->depth && batches > 0 && d->n > 0);
    EVIT_ASSERT((size_t)d->h * d->w * d->c == img);
    long n = (long)batches * B;
    if (n > d->n) n = d->n;
    size_t np = (size_t)evit_config_params(c);
    float *gmem = evit_alloc_floats(np); /* zeroed; backward accumulates every batch */
    struct evit_vit_params g;
    struct evit_vit_acts acts;
    struct evit_vit_grad_scratch scratch;
    evit_vit_bind(&g, c, gmem);
    evit_vit_acts_alloc(&acts, c, B, 1);
    evit_vit_grad_scratch_alloc(&scratch, c, B);
    uint8_t *x = evit_malloc(img * (size_t)B);
    int seg = d->masks != NULL, R = evit_config_head_rows(c);
    size_t px = (size_t)d->h * d->w;
    int32_t *y = seg ? NULL : evit_malloc(sizeof *y * (size_t)B);
    uint8_t *mk = seg ? evit_malloc(px * (size_t)B) : NULL;
    float *dlogits = evit_malloc(sizeof(float) * (size_t)B * R * K);
    float *hs = evit_malloc(sizeof(float) * (evit_head_scratch(c, B) + 1));
    double t0 = evit_now();
    for (long i0 = 0; i0 < n; i0 += B) {
        int bs = (int)(n - i0 < B ? n - i0 : B);
        /* an even stride through the set: class-sorted imports still give
         * every class its share */
        for (int j = 0; j < bs; j++) {
            long idx = (long)((double)(i0 + j) * d->n / (double)n);
            memcpy(x + (size_t)j * img, d->images + (size_t)idx * img, img);
            if (seg)
                memcpy(mk + (size_t)j * px, d->masks + (size_t)idx * px, px);
            else
                y[j] = d->labels[idx];
        }
        evit_vit_forward(m, &acts, x, bs);
        memset(dlogits, 0, sizeof(float) * (size_t)bs * R * K);
        evit_head_xent(dlogits, hs, acts.logits, y, mk, d->ignore, bs, c);
        evit_vit_backward(&g, &scratch, m, &acts, dlogits, bs);
        if (progress && evit_now() - t0 > 5.0) {
            evit_info("taylor: %ld of %ld images", i0 + bs, n);
            t0 = evit_now();
        }
    }
    for (int l = 0; l < c->depth; l++)
        score_block(s->head[l], s->mlp[l], &m->p.blocks[l], &g.blocks[l], &c->blocks[l],
                    (size_t)c->dim, EVIT_PRUNE_TAYLOR);
    if (c->head == EVIT_HEAD_SEG_MLP) score_decoder(s, &m->p, &g, c, EVIT_PRUNE_TAYLOR);
    free(dlogits);
    free(hs);
    free(mk);
    free(y);
    free(x);
    evit_vit_grad_scratch_free(&scratch);
    evit_vit_acts_free(&acts);
    evit_free_aligned(gmem);
}

/* ---------------------------------------------------------------- selection */

int evit_prune_round_mlp(double want, int M, int q)
{
    long k = (long)q * lround(want / q);
    if (k < q) k = q;
    if (k > M) k = M;
    return (int)k;
}

static int layer_heads(int H, double ratio, int min_heads)
{
    int keep = H - (int)lround(ratio * H);
    int lo = min_heads < H ? min_heads : H;
    return keep > lo ? keep : lo;
}

/* A head or channel in the global ranking. */
struct cand {
    double v; /* score / block mean */
    int l, i;
};

static int cand_cmp(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    if (a->v != b->v) return a->v < b->v ? -1 : 1;
    if (a->l != b->l) return a->l < b->l ? -1 : 1;
    return a->i > b->i ? -1 : a->i < b->i; /* among equals the higher index goes first */
}

/* Global scope: one ascending ranking of every score over its block's mean
 * (a block's scores scale with its width and depth; the mean puts blocks on
 * one footing); the lowest go until round(ratio * total) are gone, never
 * taking a block below lo[l].  keep[l] arrives as the block's width;
 * blocks with skip[l] set take no part. */
static void global_counts(int *keep, double *const *score, const int *lo, const int *skip,
                          int depth, double ratio)
{
    long total = 0;
    for (int l = 0; l < depth; l++)
        if (!skip[l]) total += keep[l];
    long target = lround(ratio * (double)total), removed = 0, n = 0;
    if (target <= 0) return;
    struct cand *c = evit_malloc(sizeof *c * (size_t)total);
    for (int l = 0; l < depth; l++) {
        if (skip[l]) continue;
        double mean = 0.0;
        for (int i = 0; i < keep[l]; i++) mean += score[l][i];
        mean /= keep[l];
        for (int i = 0; i < keep[l]; i++)
            c[n++] = (struct cand){mean > 0.0 ? score[l][i] / mean : 0.0, l, i};
    }
    qsort(c, (size_t)n, sizeof *c, cand_cmp);
    for (long j = 0; j < n && removed < target; j++) {
        if (keep[c[j].l] > lo[c[j].l]) {
            keep[c[j].l]--;
            removed++;
        }
    }
    free(c);
}

/* An index and its score, for the choice inside one block. */
struct ranked {
    double v;
    int i;
};

static int ranked_desc(const void *pa, const void *pb)
{
    const struct ranked *a = pa, *b = pb;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

static int int_asc(const void *pa, const void *pb)
{
    int a = *(const int *)pa, b = *(const int *)pb;
    return (a > b) - (a < b);
}

/* The k best of n scores, as ascending indices. */
static int *top_k(const double *score, int n, int k)
{
    struct ranked *r = evit_malloc(sizeof *r * (size_t)n);
    for (int i = 0; i < n; i++) r[i] = (struct ranked){score[i], i};
    qsort(r, (size_t)n, sizeof *r, ranked_desc);
    int *idx = evit_malloc(sizeof *idx * (size_t)k);
    for (int i = 0; i < k; i++) idx[i] = r[i].i;
    qsort(idx, (size_t)k, sizeof *idx, int_asc);
    free(r);
    return idx;
}

/* seg_mlp's decoder: one width C' for every level and the fuse output
 * (decoder_dim is one config value), each keeping its own best C'
 * channels.  A group of its own, so the scope does not matter. */
static void select_decoder(struct evit_prune_plan *plan, const struct evit_prune_config *c,
                           const struct evit_vit_config *model, const struct evit_prune_scores *s)
{
    int C = model->decoder_dim;
    EVIT_ASSERT(s->levels == model->decoder_nlevels && s->dec_dim == C && c->decoder_keep <= C);
    plan->levels = model->decoder_nlevels;
    if (c->decoder_keep > 0)
        plan->dec_dim = c->decoder_keep; /* exact, like mlp_keep */
    else /* nothing asked for, nothing rounded away */
        plan->dec_dim = c->decoder_ratio > 0.0
                            ? evit_prune_round_mlp(C * (1.0 - c->decoder_ratio), C, c->mlp_multiple)
                            : C;
    for (int i = 0; i < plan->levels; i++) plan->dec_idx[i] = top_k(s->dec[i], C, plan->dec_dim);
    plan->fuse_idx = top_k(s->fuse, C, plan->dec_dim);
}

void evit_prune_select(struct evit_prune_plan *plan, const struct evit_prune_config *c,
                       const struct evit_vit_config *model, const struct evit_prune_scores *s)
{
    int L = model->depth, q = c->mlp_multiple;
    int hfloor[EVIT_MAX_DEPTH] = {0}, mfloor[EVIT_MAX_DEPTH] = {0};
    int hskip[EVIT_MAX_DEPTH] = {0}, mskip[EVIT_MAX_DEPTH] = {0};
    EVIT_ASSERT(s->depth == L && c->max_block < L);
    memset(plan, 0, sizeof *plan);
    plan->depth = L;
    for (int l = 0; l < L; l++) {
        const struct evit_block_shape *b = &model->blocks[l];
        EVIT_ASSERT(c->heads_keep[l] <= b->heads && c->mlp_keep[l] <= b->mlp);
        hskip[l] = c->heads_keep[l] > 0;
        mskip[l] = c->mlp_keep[l] > 0;
        hfloor[l] = c->min_heads < b->heads ? c->min_heads : b->heads;
        mfloor[l] = q < b->mlp ? q : b->mlp;
        if (c->scope == EVIT_PRUNE_LAYER) {
            plan->heads[l] = layer_heads(b->heads, c->heads_ratio, c->min_heads);
            /* nothing asked for, nothing rounded away */
            plan->mlp[l] = c->mlp_ratio > 0.0
                               ? evit_prune_round_mlp(b->mlp * (1.0 - c->mlp_ratio), b->mlp, q)
                               : b->mlp;
        } else {
            plan->heads[l] = b->heads;
            plan->mlp[l] = b->mlp;
        }
    }
    if (c->scope == EVIT_PRUNE_GLOBAL) {
        global_counts(plan->heads, s->head, hfloor, hskip, L, c->heads_ratio);
        global_counts(plan->mlp, s->mlp, mfloor, mskip, L, c->mlp_ratio);
        for (int l = 0; l < L; l++)
            if (plan->mlp[l] < model->blocks[l].mlp)
                plan->mlp[l] = evit_prune_round_mlp(plan->mlp[l], model->blocks[l].mlp, q);
    }
    for (int l = 0; l < L; l++) {
        if (hskip[l]) plan->heads[l] = c->heads_keep[l];
        if (mskip[l]) plan->mlp[l] = c->mlp_keep[l];
        plan->head_idx[l] = top_k(s->head[l], model->blocks[l].heads, plan->heads[l]);
        plan->mlp_idx[l] = top_k(s->mlp[l], model->blocks[l].mlp, plan->mlp[l]);
    }
    if (model->head == EVIT_HEAD_SEG_MLP) select_decoder(plan, c, model, s);
}

void evit_prune_plan_free(struct evit_prune_plan *plan)
{
    for (int l = 0; l < plan->depth; l++) {
        free(plan->head_idx[l]);
        free(plan->mlp_idx[l]);
    }
    for (int i = 0; i < plan->levels; i++) free(plan->dec_idx[i]);
    free(plan->fuse_idx);
    memset(plan, 0, sizeof *plan);
}

/* ---------------------------------------------------------------- building */

void evit_prune_shape(struct evit_vit_config *out, const struct evit_vit_config *in,
                      const struct evit_prune_plan *plan)
{
    static const char tag[] = "-pruned";
    size_t n = strlen(in->name), t = sizeof tag - 1;
    EVIT_ASSERT(plan->depth == in->depth);
    *out = *in;
    for (int l = 0; l < in->depth; l++) {
        out->blocks[l].heads = plan->heads[l];
        out->blocks[l].mlp = plan->mlp[l];
    }
    if (in->head == EVIT_HEAD_SEG_MLP) {
        EVIT_ASSERT(plan->levels == in->decoder_nlevels && plan->dec_dim >= 1 &&
                    plan->dec_dim <= in->decoder_dim);
        out->decoder_dim = plan->dec_dim;
    }
    /* a model pruned again keeps one tag */
    int tagged = n >= t && strcmp(in->name + n - t, tag) == 0;
    if (!tagged && n + t < sizeof out->name) memcpy(out->name + n, tag, t + 1);
}

/* Copies block l's kept heads and channels from w (shape b) into o (the
 * plan's shape).  Head hidx[j] becomes head j: its rows in each third of
 * qkv and its columns of proj; channel midx[j] becomes channel j. */
static void gather_block(struct evit_block_params *o, const struct evit_block_params *w,
                         const struct evit_block_shape *b, size_t D, int H2, const int *hidx,
                         int M2, const int *midx)
{
    size_t d = (size_t)b->head_dim, I = (size_t)b->heads * d, I2 = (size_t)H2 * d;
    size_t M = (size_t)b->mlp;
    for (size_t part = 0; part < 3; part++) {
        for (int j = 0; j < H2; j++) {
            size_t src = part * I + (size_t)hidx[j] * d, dst = part * I2 + (size_t)j * d;
            memcpy(o->qkv_w + dst * D, w->qkv_w + src * D, sizeof(float) * d * D);
            memcpy(o->qkv_b + dst, w->qkv_b + src, sizeof(float) * d);
        }
    }
    for (size_t row = 0; row < D; row++)
        for (int j = 0; j < H2; j++)
            memcpy(o->proj_w + row * I2 + (size_t)j * d, w->proj_w + row * I + (size_t)hidx[j] * d,
                   sizeof(float) * d);
    for (int j = 0; j < M2; j++) {
        memcpy(o->fc1_w + (size_t)j * D, w->fc1_w + (size_t)midx[j] * D, sizeof(float) * D);
        o->fc1_b[j] = w->fc1_b[midx[j]];
    }
    for (size_t row = 0; row < D; row++)
        for (int j = 0; j < M2; j++) o->fc2_w[row * (size_t)M2 + j] = w->fc2_w[row * M + (size_t)midx[j]];
}

/* Copies seg_mlp's kept decoder channels from w (width C) into o (width
 * C2): level i's channel E_i[k] becomes its channel k (a row of dec_w[i],
 * an entry of dec_b[i], and fuse_w's column i*C2 + k from i*C + E_i[k]);
 * the fuse output's channel U[r] becomes channel r (a row of fuse_w, an
 * entry of fuse_b, a column of head_w). */
static void gather_decoder(struct evit_vit_params *o, const struct evit_vit_params *w,
                           const struct evit_vit_config *in, const struct evit_prune_plan *plan)
{
    size_t D = (size_t)in->dim, C = (size_t)in->decoder_dim, C2 = (size_t)plan->dec_dim;
    size_t L = (size_t)in->decoder_nlevels, K = (size_t)in->classes;
    const int *U = plan->fuse_idx;
    for (size_t i = 0; i < L; i++) {
        const int *E = plan->dec_idx[i];
        for (size_t k = 0; k < C2; k++) {
            memcpy(o->dec_w[i] + k * D, w->dec_w[i] + (size_t)E[k] * D, sizeof(float) * D);
            o->dec_b[i][k] = w->dec_b[i][E[k]];
        }
    }
    for (size_t r = 0; r < C2; r++) {
        const float *src = w->fuse_w + (size_t)U[r] * L * C; /* (L*C) row U[r] */
        float *dst = o->fuse_w + r * L * C2;                 /* (L*C2) row r */
        for (size_t i = 0; i < L; i++)
            for (size_t k = 0; k < C2; k++) dst[i * C2 + k] = src[i * C + (size_t)plan->dec_idx[i][k]];
        o->fuse_b[r] = w->fuse_b[U[r]];
    }
    for (size_t k = 0; k < K; k++)
        for (size_t r = 0; r < C2; r++) o->head_w[k * C2 + r] = w->head_w[k * C + (size_t)U[r]];
}

void evit_prune_apply(struct evit_vit *out, const struct evit_vit *in,
                      const struct evit_prune_plan *plan)
{
    struct evit_vit_config cfg;
    int n_in, n_out;
    evit_prune_shape(&cfg, &in->cfg, plan);
    evit_vit_alloc(out, &cfg);
    memcpy(out->mean, in->mean, sizeof out->mean);
    memcpy(out->std, in->std, sizeof out->std);
    /* Every tensor whose size did not change is copied whole (embeddings,
     * norms, proj and fc2 biases, head, and the tensors of blocks that kept
     * everything, the decoder's norms); the six per block that shrink, and
     * seg_mlp's linear_c, linear_fuse and head weight, are gathered below. */
    struct evit_tensor_ref *ti = evit_vit_tensor_list(&in->cfg, &in->p, &n_in);
    struct evit_tensor_ref *to = evit_vit_tensor_list(&out->cfg, &out->p, &n_out);
    EVIT_ASSERT(n_in == n_out);
    for (int i = 0; i < n_in; i++) {
        EVIT_ASSERT(strcmp(ti[i].name, to[i].name) == 0);
        if (ti[i].numel == to[i].numel) memcpy(to[i].data, ti[i].data, sizeof(float) * ti[i].numel);
    }
    free(ti);
    free(to);
    for (int l = 0; l < cfg.depth; l++)
        gather_block(&out->p.blocks[l], &in->p.blocks[l], &in->cfg.blocks[l], (size_t)cfg.dim,
                     plan->heads[l], plan->head_idx[l], plan->mlp[l], plan->mlp_idx[l]);
    if (cfg.head == EVIT_HEAD_SEG_MLP) gather_decoder(&out->p, &in->p, &in->cfg, plan);
}

/* ---------------------------------------------------------------- report */

/* Indices 0..n-1 that are in kept (ascending, k of them) or not. */
static void add_indices(cJSON *o, const char *kept_key, const char *removed_key, const int *kept,
                        int k, int n)
{
    cJSON *a = cJSON_AddArrayToObject(o, kept_key);
    cJSON *r = cJSON_AddArrayToObject(o, removed_key);
    int j = 0;
    for (int i = 0; i < n; i++) {
        if (j < k && kept[j] == i) {
            cJSON_AddItemToArray(a, cJSON_CreateNumber(i));
            j++;
        } else {
            cJSON_AddItemToArray(r, cJSON_CreateNumber(i));
        }
    }
}

static long block_params(const struct evit_vit *m, int l)
{
    int n;
    long p = 0;
    struct evit_tensor_ref *t = evit_vit_tensor_list(&m->cfg, &m->p, &n);
    for (int i = 0; i < n; i++)
        if (t[i].block == l) p += (long)t[i].numel;
    free(t);
    return p;
}

cJSON *evit_prune_plan_to_json(const struct evit_prune_plan *plan, const struct evit_vit *in,
                               const struct evit_vit *out)
{
    cJSON *arr = cJSON_CreateArray();
    double mf_in = evit_config_mflops(&in->cfg);
    for (int l = 0; l < plan->depth; l++) {
        const struct evit_block_shape *b = &in->cfg.blocks[l];
        /* the FLOPs this block saves: the whole model with only this
         * block pruned, against the original */
        struct evit_vit_config one = in->cfg;
        one.blocks[l] = out->cfg.blocks[l];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "block", l);
        cJSON_AddNumberToObject(o, "heads_before", b->heads);
        cJSON_AddNumberToObject(o, "heads_after", plan->heads[l]);
        add_indices(o, "heads_kept", "heads_removed", plan->head_idx[l], plan->heads[l], b->heads);
        cJSON_AddNumberToObject(o, "mlp_before", b->mlp);
        cJSON_AddNumberToObject(o, "mlp_after", plan->mlp[l]);
        add_indices(o, "mlp_kept", "mlp_removed", plan->mlp_idx[l], plan->mlp[l], b->mlp);
        cJSON_AddNumberToObject(o, "params_before", (double)block_params(in, l));
        cJSON_AddNumberToObject(o, "params_after", (double)block_params(out, l));
        cJSON_AddNumberToObject(o, "mflops_saved", mf_in - evit_config_mflops(&one));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* The decoder's parameters: decode_head.* (the earlier levels' norms,
 * linear_c, linear_fuse) and the head. */
static long decoder_params(const struct evit_vit *m)
{
    int n;
    long p = 0;
    struct evit_tensor_ref *t = evit_vit_tensor_list(&m->cfg, &m->p, &n);
    for (int i = 0; i < n; i++)
        if (strncmp(t[i].name, "decode_head.", 12) == 0 || strncmp(t[i].name, "head.", 5) == 0)
            p += (long)t[i].numel;
    free(t);
    return p;
}

cJSON *evit_prune_decoder_to_json(const struct evit_prune_plan *plan, const struct evit_vit *in,
                                  const struct evit_vit *out)
{
    if (in->cfg.head != EVIT_HEAD_SEG_MLP) return NULL;
    int C = in->cfg.decoder_dim;
    /* the FLOPs the width saves: the whole model with only the decoder
     * pruned, against the original */
    struct evit_vit_config one = in->cfg;
    one.decoder_dim = plan->dec_dim;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "dim_before", C);
    cJSON_AddNumberToObject(o, "dim_after", plan->dec_dim);
    cJSON *lv = cJSON_AddArrayToObject(o, "levels");
    for (int i = 0; i < plan->levels; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "level", i);
        cJSON_AddNumberToObject(e, "block", in->cfg.decoder_levels[i]);
        add_indices(e, "kept", "removed", plan->dec_idx[i], plan->dec_dim, C);
        cJSON_AddItemToArray(lv, e);
    }
    cJSON *f = cJSON_AddObjectToObject(o, "fuse");
    add_indices(f, "kept", "removed", plan->fuse_idx, plan->dec_dim, C);
    cJSON_AddNumberToObject(o, "params_before", (double)decoder_params(in));
    cJSON_AddNumberToObject(o, "params_after", (double)decoder_params(out));
    cJSON_AddNumberToObject(o, "mflops_saved", evit_config_mflops(&in->cfg) - evit_config_mflops(&one));
    return o;
}
