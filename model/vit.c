/* vit.c: see vit.h. */
#include "vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "head.h"
#include "merge.h"
#include "ops.h"
#include "rng.h"
#include "util.h"

/* The width the head's linear reads: D, or seg_mlp's decoder_dim C. */
static int head_in(const struct evit_vit_config *c)
{
    return c->head == EVIT_HEAD_SEG_MLP ? c->decoder_dim : c->dim;
}

void evit_vit_bind(struct evit_vit_params *p, const struct evit_vit_config *c, float *mem)
{
    size_t D = c->dim, T = evit_config_tokens(c), K = c->classes;
    float *q = mem;
    memset(p, 0, sizeof *p);
#define TAKE(ptr, n) do { (ptr) = q; q += (n); } while (0)
    TAKE(p->patch_w, D * evit_config_patch_in(c));
    TAKE(p->patch_b, D);
    TAKE(p->cls_token, D);
    TAKE(p->pos_embed, T * D);
    for (int l = 0; l < c->depth; l++) {
        struct evit_block_params *b = &p->blocks[l];
        size_t I = evit_config_inner(c, l), M = c->blocks[l].mlp;
        TAKE(b->ln1_w, D);
        TAKE(b->ln1_b, D);
        TAKE(b->qkv_w, 3 * I * D);
        TAKE(b->qkv_b, 3 * I);
        TAKE(b->proj_w, D * I);
        TAKE(b->proj_b, D);
        TAKE(b->ln2_w, D);
        TAKE(b->ln2_b, D);
        TAKE(b->fc1_w, M * D);
        TAKE(b->fc1_b, M);
        TAKE(b->fc2_w, D * M);
        TAKE(b->fc2_b, D);
    }
    TAKE(p->norm_w, D);
    TAKE(p->norm_b, D);
    if (c->head == EVIT_HEAD_SEG_MLP) {
        size_t C = c->decoder_dim, L = c->decoder_nlevels;
        for (size_t i = 0; i + 1 < L; i++) {
            TAKE(p->dec_norm_w[i], D);
            TAKE(p->dec_norm_b[i], D);
        }
        p->dec_norm_w[L - 1] = p->norm_w; /* the last level's norm is the encoder's */
        p->dec_norm_b[L - 1] = p->norm_b;
        for (size_t i = 0; i < L; i++) {
            TAKE(p->dec_w[i], C * D);
            TAKE(p->dec_b[i], C);
        }
        TAKE(p->fuse_w, C * L * C);
        TAKE(p->fuse_b, C);
    }
    TAKE(p->head_w, K * (size_t)head_in(c));
    TAKE(p->head_b, K);
#undef TAKE
    EVIT_ASSERT((size_t)(q - mem) == (size_t)evit_config_params(c));
}

static void add_ref(struct evit_tensor_ref *out, int *n, const char *name, float *data,
                    enum evit_tensor_kind kind, int block, int ndim, int64_t d0, int64_t d1,
                    int64_t d2, int64_t d3)
{
    if (out) {
        struct evit_tensor_ref *t = &out[*n];
        int64_t dims[4] = {d0, d1, d2, d3};
        snprintf(t->name, sizeof t->name, "%s", name);
        t->data = data;
        t->ndim = ndim;
        t->numel = 1;
        for (int i = 0; i < 4; i++) {
            t->shape[i] = i < ndim ? dims[i] : 0;
            if (i < ndim) t->numel *= (size_t)dims[i];
        }
        t->kind = kind;
        t->block = block;
    }
    (*n)++;
}

int evit_vit_tensors(const struct evit_vit_config *c, const struct evit_vit_params *p,
                     struct evit_tensor_ref *out)
{
    int n = 0;
    int64_t D = c->dim, T = evit_config_tokens(c), K = c->classes, C = c->channels, P = c->patch;
    char name[EVIT_TENSOR_NAME_MAX];
    add_ref(out, &n, "cls_token", p->cls_token, EVIT_T_EMBED, -1, 3, 1, 1, D, 0);
    add_ref(out, &n, "pos_embed", p->pos_embed, EVIT_T_EMBED, -1, 3, 1, T, D, 0);
    add_ref(out, &n, "patch_embed.proj.weight", p->patch_w, EVIT_T_WEIGHT, -1, 4, D, C, P, P);
    add_ref(out, &n, "patch_embed.proj.bias", p->patch_b, EVIT_T_BIAS, -1, 1, D, 0, 0, 0);
    for (int l = 0; l < c->depth; l++) {
        const struct evit_block_params *b = &p->blocks[l];
        int64_t I = evit_config_inner(c, l), M = c->blocks[l].mlp;
#define BLK(suffix, ptr, kind, nd, a0, a1)                                        \
        do {                                                                      \
            snprintf(name, sizeof name, "blocks.%d.%s", l, suffix);               \
            add_ref(out, &n, name, ptr, kind, l, nd, a0, a1, 0, 0);                \
        } while (0)
        BLK("norm1.weight", b->ln1_w, EVIT_T_NORM_W, 1, D, 0);
        BLK("norm1.bias", b->ln1_b, EVIT_T_NORM_B, 1, D, 0);
        BLK("attn.qkv.weight", b->qkv_w, EVIT_T_WEIGHT, 2, 3 * I, D);
        BLK("attn.qkv.bias", b->qkv_b, EVIT_T_BIAS, 1, 3 * I, 0);
        BLK("attn.proj.weight", b->proj_w, EVIT_T_WEIGHT, 2, D, I);
        BLK("attn.proj.bias", b->proj_b, EVIT_T_BIAS, 1, D, 0);
        BLK("norm2.weight", b->ln2_w, EVIT_T_NORM_W, 1, D, 0);
        BLK("norm2.bias", b->ln2_b, EVIT_T_NORM_B, 1, D, 0);
        BLK("mlp.fc1.weight", b->fc1_w, EVIT_T_WEIGHT, 2, M, D);
        BLK("mlp.fc1.bias", b->fc1_b, EVIT_T_BIAS, 1, M, 0);
        BLK("mlp.fc2.weight", b->fc2_w, EVIT_T_WEIGHT, 2, D, M);
        BLK("mlp.fc2.bias", b->fc2_b, EVIT_T_BIAS, 1, D, 0);
#undef BLK
    }
    add_ref(out, &n, "norm.weight", p->norm_w, EVIT_T_NORM_W, -1, 1, D, 0, 0, 0);
    add_ref(out, &n, "norm.bias", p->norm_b, EVIT_T_NORM_B, -1, 1, D, 0, 0, 0);
    if (c->head == EVIT_HEAD_SEG_MLP) {
        int64_t W = c->decoder_dim; /* C is the channels here */
        int L = c->decoder_nlevels;
#define DEC(fmt, i, ptr, kind, nd, a0, a1)                                        \
        do {                                                                      \
            snprintf(name, sizeof name, "decode_head." fmt, i);                    \
            add_ref(out, &n, name, ptr, kind, -1, nd, a0, a1, 0, 0);               \
        } while (0)
        for (int i = 0; i + 1 < L; i++) {
            DEC("norms.%d.weight", i, p->dec_norm_w[i], EVIT_T_NORM_W, 1, D, 0);
            DEC("norms.%d.bias", i, p->dec_norm_b[i], EVIT_T_NORM_B, 1, D, 0);
        }
        for (int i = 0; i < L; i++) {
            DEC("linear_c.%d.weight", i, p->dec_w[i], EVIT_T_WEIGHT, 2, W, D);
            DEC("linear_c.%d.bias", i, p->dec_b[i], EVIT_T_BIAS, 1, W, 0);
        }
#undef DEC
        add_ref(out, &n, "decode_head.linear_fuse.weight", p->fuse_w, EVIT_T_WEIGHT, -1, 2, W, L * W, 0, 0);
        add_ref(out, &n, "decode_head.linear_fuse.bias", p->fuse_b, EVIT_T_BIAS, -1, 1, W, 0, 0, 0);
    }
    add_ref(out, &n, "head.weight", p->head_w, EVIT_T_WEIGHT, -1, 2, K, head_in(c), 0, 0);
    add_ref(out, &n, "head.bias", p->head_b, EVIT_T_BIAS, -1, 1, K, 0, 0, 0);
    return n;
}

struct evit_tensor_ref *evit_vit_tensor_list(const struct evit_vit_config *cfg,
                                             const struct evit_vit_params *p, int *n)
{
    *n = evit_vit_tensors(cfg, p, NULL);
    struct evit_tensor_ref *t = evit_malloc(sizeof *t * (size_t)*n);
    evit_vit_tensors(cfg, p, t);
    return t;
}

void evit_vit_alloc(struct evit_vit *m, const struct evit_vit_config *cfg)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->mem = evit_alloc_floats((size_t)evit_config_params(cfg));
    evit_vit_bind(&m->p, &m->cfg, m->mem);
    for (int c = 0; c < 4; c++) {
        m->mean[c] = 0.0f;
        m->std[c] = 1.0f;
    }
}

void evit_vit_free(struct evit_vit *m)
{
    evit_free_aligned(m->mem);
    m->mem = NULL;
}

void evit_vit_init(struct evit_vit *m, uint64_t seed)
{
    int n;
    struct evit_tensor_ref *t = evit_vit_tensor_list(&m->cfg, &m->p, &n);
    struct evit_rng rng;
    evit_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < t[i].numel; j++) {
            switch (t[i].kind) {
            case EVIT_T_WEIGHT:
            case EVIT_T_EMBED: t[i].data[j] = (float)evit_rng_trunc_normal(&rng, 0.02); break;
            case EVIT_T_NORM_W: t[i].data[j] = 1.0f; break;
            case EVIT_T_BIAS:
            case EVIT_T_NORM_B: t[i].data[j] = 0.0f; break;
            }
        }
    }
    free(t);
}

int evit_vit_check_finite(const struct evit_vit *m, const char *where)
{
    int n, rc = EVIT_OK;
    struct evit_tensor_ref *t = evit_vit_tensor_list(&m->cfg, &m->p, &n);
    for (int i = 0; i < n && rc == EVIT_OK; i++) {
        for (size_t j = 0; j < t[i].numel; j++) {
            if (!isfinite(t[i].data[j])) {
                rc = evit_error("%s: tensor %s holds %s at index %zu", where, t[i].name,
                                isnan(t[i].data[j]) ? "NaN" : "Inf", j);
                break;
            }
        }
    }
    free(t);
    return rc;
}

/* Sizes of the largest block, so inference can share one set of buffers. */
static void max_block(const struct evit_vit_config *c, size_t *I, size_t *M, size_t *H)
{
    *I = *M = *H = 0;
    for (int l = 0; l < c->depth; l++) {
        size_t i = evit_config_inner(c, l), m = c->blocks[l].mlp, h = c->blocks[l].heads;
        *I = i > *I ? i : *I;
        *M = m > *M ? m : *M;
        *H = h > *H ? h : *H;
    }
}

/* Floats of one block's activations (block_acts_take below), with R query
 * rows per image: T for a full block, 1 for the last block in training
 * (keep), whose class token alone reaches the head. */
static size_t block_acts_floats(size_t B, size_t T, size_t R, size_t D, size_t I, size_t M,
                                size_t H)
{
    return 2 * B * T * D + 4 * B * T + 3 * B * T * I + B * H * R * T + B * R * I + 3 * B * R * D +
           2 * B * R + 2 * B * R * M + 16 * 16;
}

void evit_vit_acts_alloc(struct evit_vit_acts *a, const struct evit_vit_config *c,
                         int max_batch, int keep)
{
    size_t B = max_batch, T = evit_config_tokens(c), N = evit_config_patches(c);
    size_t D = c->dim, K = c->classes, PI = evit_config_patch_in(c);
    size_t I, M, H;
    max_block(c, &I, &M, &H);
    /* x_in of each block is the previous block's x_out (or x0), not counted here */
    size_t R = evit_config_head_rows(c), seg = evit_head_is_seg(c->head);
    size_t total = B * N * PI + B * N * D + B * T * D + 2 * B * R * D + 2 * B * R + B * R * K + 8 * 16;
    int levels[EVIT_DECODER_MAX_LEVELS], nl = evit_config_levels(c, levels);
    size_t C = c->decoder_dim, L = c->decoder_nlevels; /* 0 but for seg_mlp */
    total += (nl ? nl - 1 : 0) * (2 * B * N * D + 2 * B * N + 4 * 16) + B * N * (L * C + 2 * C) + 3 * 16;
    size_t dmax = 0;
    for (int l = 0; l < c->depth; l++)
        dmax = (size_t)c->blocks[l].head_dim > dmax ? (size_t)c->blocks[l].head_dim : dmax;
    total += T * dmax + 16 + (size_t)c->depth * (2 * B * T + 32); /* metric; each block's size, logs */
    if (keep) {
        for (int l = 0; l < c->depth; l++)
            total += block_acts_floats(B, T, l == c->depth - 1 && !seg ? 1 : T, D,
                                       evit_config_inner(c, l), c->blocks[l].mlp,
                                       c->blocks[l].heads);
    } else {
        total += block_acts_floats(B, T, T, D, I, M, H);
    }
    size_t nblocks = keep ? (size_t)c->depth : 1;
    memset(a, 0, sizeof *a);
    a->max_batch = max_batch;
    a->keep = keep;
    a->mem = evit_alloc_floats(total);
    float *q = a->mem;
#define TAKE(ptr, n) do { (ptr) = q; q += ((n) + 15) & ~(size_t)15; } while (0)
    TAKE(a->patches, B * N * PI);
    TAKE(a->pe, B * N * D);
    TAKE(a->x0, B * T * D);
    TAKE(a->metric, T * dmax);
    a->imem = evit_malloc(sizeof(int) * (size_t)c->depth * B * T);
    for (size_t l = 0; l < nblocks; l++) {
        struct evit_block_acts *b = &a->blocks[l];
        size_t bi = I, bm = M, bh = H, Rb = T;
        if (keep) {
            bi = evit_config_inner(c, (int)l);
            bm = c->blocks[l].mlp;
            bh = c->blocks[l].heads;
            Rb = l == (size_t)c->depth - 1 && !seg ? 1 : T;
        }
        /* with keep, x_in of block l is x_out of block l-1 (no copy) */
        b->x_in = l == 0 ? a->x0 : a->blocks[l - 1].x_out;
        TAKE(b->ln1, B * T * D);
        TAKE(b->ln1_mean, B * T);
        TAKE(b->ln1_rstd, B * T);
        TAKE(b->qkv, 3 * B * T * bi);
        TAKE(b->att, B * bh * Rb * T);
        TAKE(b->attv, B * Rb * bi);
        TAKE(b->x_att, B * T * D);
        TAKE(b->x_mid, B * Rb * D);
        TAKE(b->ln2, B * Rb * D);
        TAKE(b->ln2_mean, B * Rb);
        TAKE(b->ln2_rstd, B * Rb);
        TAKE(b->h, B * Rb * bm);
        TAKE(b->g, B * Rb * bm);
        TAKE(b->x_out, B * Rb * D);
    }
    if (!keep) {
        /* Inference: every block works in block 0's buffers (sized for a
         * full block); the residual stream ping-pongs between x_out and
         * x_mid, entering in x_out. */
        a->blocks[0].x_in = a->blocks[0].x_out;
        for (int l = 1; l < c->depth; l++) a->blocks[l] = a->blocks[0];
    }
    for (int l = 0; l < c->depth; l++) { /* every block's own, in both modes */
        TAKE(a->blocks[l].size, B * T);
        TAKE(a->blocks[l].logs, B * T);
        a->blocks[l].dst = a->imem + (size_t)l * B * T;
    }
    TAKE(a->xf, B * R * D);
    TAKE(a->lnf, B * R * D);
    TAKE(a->lnf_mean, B * R);
    TAKE(a->lnf_rstd, B * R);
    for (int i = 0; i + 1 < nl; i++) {
        TAKE(a->lx[i], B * N * D);
        TAKE(a->lln[i], B * N * D);
        TAKE(a->lmean[i], B * N);
        TAKE(a->lrstd[i], B * N);
    }
    if (nl) { /* the last level is the rows the final norm reads */
        a->lx[nl - 1] = a->xf;
        a->lln[nl - 1] = a->lnf;
        a->lmean[nl - 1] = a->lnf_mean;
        a->lrstd[nl - 1] = a->lnf_rstd;
    }
    if (c->head == EVIT_HEAD_SEG_MLP) {
        TAKE(a->cat, B * N * L * C);
        TAKE(a->fuse, B * N * C);
        TAKE(a->u, B * N * C);
    }
    TAKE(a->logits, B * R * K);
#undef TAKE
    EVIT_ASSERT((size_t)(q - a->mem) <= total);
}

void evit_vit_acts_free(struct evit_vit_acts *a)
{
    evit_free_aligned(a->mem);
    free(a->imem);
    a->mem = NULL;
    a->imem = NULL;
}

/* The shape of block l's tokens: T enter, Tm leave (T - merge_r), and
 * whether an earlier block merged (then proportional attention). */
struct tokens {
    int T, Tm, merged;
};

static struct tokens tokens_of(const struct evit_vit_config *c, int l)
{
    struct tokens t;
    t.T = evit_config_tokens_at(c, l);
    t.Tm = evit_config_tokens_at(c, l + 1);
    t.merged = t.T < evit_config_tokens(c);
    return t;
}

/* Each image's tokens merged (merge.h): x_att (B, T, D) into x_mid
 * (B, T - r, D), sizes into next (B, T - r), on the matching of its keys
 * averaged over heads; dst (B, T). */
static void merge_tokens_forward(struct evit_block_acts *a, float *metric, float *next,
                                 const struct evit_block_shape *s, int B, int T, int D)
{
    int r = s->merge_r, d = s->head_dim, I = s->heads * d;
    for (int b = 0; b < B; b++) {
        int *dst = a->dst + (size_t)b * T;
        evit_merge_metric(metric, a->qkv + (size_t)b * T * 3 * I, T, s->heads, d);
        evit_merge_match(dst, metric, T, d, r);
        evit_merge_forward(a->x_mid + (size_t)b * (T - r) * D, next + (size_t)b * (T - r),
                           a->x_att + (size_t)b * T * D, a->size + (size_t)b * T, dst, T, r, D);
    }
}

/* One pre-norm transformer block, forward, on t.T tokens; merging after
 * the attention when s->merge_r (sizes for the next block into next). */
static void block_forward(struct evit_block_acts *a, float *metric, float *next,
                          const struct evit_block_params *p, const struct evit_block_shape *s, int B,
                          struct tokens t, int D)
{
    int N = B * t.T, Nm = B * t.Tm, H = s->heads, d = s->head_dim, I = H * d, M = s->mlp;
    float *xa = s->merge_r ? a->x_att : a->x_mid;
    if (t.merged)
        for (int i = 0; i < N; i++) a->logs[i] = logf(a->size[i]);
    evit_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, a->x_in, p->ln1_w, p->ln1_b, N, D);
    evit_linear_forward(a->qkv, a->ln1, p->qkv_w, p->qkv_b, N, D, 3 * I);
    evit_attention_forward_qb(a->attv, a->att, a->qkv, t.merged ? a->logs : NULL, B, t.T, t.T, H, d);
    evit_linear_forward(xa, a->attv, p->proj_w, p->proj_b, N, I, D);
    evit_residual_forward(xa, xa, a->x_in, (size_t)N * D);
    if (s->merge_r)
        merge_tokens_forward(a, metric, next, s, B, t.T, D);
    else if (next)
        memcpy(next, a->size, sizeof(float) * (size_t)N);
    evit_layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->x_mid, p->ln2_w, p->ln2_b, Nm, D);
    evit_linear_forward(a->h, a->ln2, p->fc1_w, p->fc1_b, Nm, D, M);
    evit_gelu_forward(a->g, a->h, (size_t)Nm * M);
    /* x_out may alias x_in (inference), which is dead by now */
    evit_linear_forward(a->x_out, a->g, p->fc2_w, p->fc2_b, Nm, M, D);
    evit_residual_forward(a->x_out, a->x_out, a->x_mid, (size_t)Nm * D);
}

/* The last block, forward, for the class token only: the head reads
 * nothing else of its output.  Every token's key and value still enter the
 * class token's attention, so LN1 runs on all B*T rows and k, v on all of
 * them, but q, the attention, proj, LN2 and the MLP on the B class-token rows
 * only: qkv holds q on each image's row 0 alone, att is (B, H, 1, T), and
 * attv, x_mid, ln2, h, g, x_out are (B, I), (B, D), (B, D), (B, M), (B, M),
 * (B, D).  The same arithmetic as block_forward on those rows.  Its own
 * merging would change nothing the head sees (the class token never
 * merges), so it merges nothing. */
static void last_block_forward(struct evit_block_acts *a, const struct evit_block_params *p,
                               const struct evit_block_shape *s, int B, struct tokens tk, int D)
{
    int T = tk.T, N = B * T, H = s->heads, d = s->head_dim, I = H * d, M = s->mlp, S = 3 * I;
    if (tk.merged)
        for (int i = 0; i < N; i++) a->logs[i] = logf(a->size[i]);
    evit_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, a->x_in, p->ln1_w, p->ln1_b, N, D);
    /* k | v of every token: rows I..3I-1 of qkv_w into columns I..3I-1 */
    evit_linear_forward_ld(a->qkv + I, S, a->ln1, D, p->qkv_w + (size_t)I * D, p->qkv_b + I, N,
                           D, 2 * I);
    /* q of the class tokens: rows b*T */
    evit_linear_forward_ld(a->qkv, T * S, a->ln1, T * D, p->qkv_w, p->qkv_b, B, D, I);
    evit_attention_forward_qb(a->attv, a->att, a->qkv, tk.merged ? a->logs : NULL, B, T, 1, H, d);
    evit_linear_forward(a->x_mid, a->attv, p->proj_w, p->proj_b, B, I, D);
    for (int b = 0; b < B; b++)
        evit_residual_forward(a->x_mid + (size_t)b * D, a->x_mid + (size_t)b * D,
                              a->x_in + (size_t)b * T * D, (size_t)D);
    evit_layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->x_mid, p->ln2_w, p->ln2_b, B, D);
    evit_linear_forward(a->h, a->ln2, p->fc1_w, p->fc1_b, B, D, M);
    evit_gelu_forward(a->g, a->h, (size_t)B * M);
    /* x_out may alias x_in (inference), which is dead by now */
    evit_linear_forward(a->x_out, a->g, p->fc2_w, p->fc2_b, B, M, D);
    evit_residual_forward(a->x_out, a->x_out, a->x_mid, (size_t)B * D);
}

/* SegFormer's all-MLP decoder (vit.h) on the levels' patch tokens a->lx,
 * B*N rows: each level normalised and projected into its C columns of
 * cat (the concatenation is the strided output, no copy), then
 * linear_fuse, the ReLU and the head. */
static void decoder_forward(struct evit_vit_acts *a, const struct evit_vit_params *p,
                            const struct evit_vit_config *c, int B)
{
    int n = B * evit_config_patches(c), D = c->dim, C = c->decoder_dim, L = c->decoder_nlevels;
    for (int i = 0; i < L; i++) {
        evit_layernorm_forward(a->lln[i], a->lmean[i], a->lrstd[i], a->lx[i], p->dec_norm_w[i], p->dec_norm_b[i],
                               n, D);
        evit_linear_forward_ld(a->cat + (size_t)i * C, L * C, a->lln[i], D, p->dec_w[i], p->dec_b[i], n, D, C);
    }
    evit_linear_forward(a->fuse, a->cat, p->fuse_w, p->fuse_b, n, L * C, C);
    evit_relu_forward(a->u, a->fuse, (size_t)n * C);
    evit_linear_forward(a->logits, a->u, p->head_w, p->head_b, n, C, c->classes);
}

void evit_vit_forward(const struct evit_vit *m, struct evit_vit_acts *a,
                      const uint8_t *images, int B)
{
    const struct evit_vit_config *c = &m->cfg;
    const struct evit_vit_params *p = &m->p;
    int T = evit_config_tokens(c), N = evit_config_patches(c), D = c->dim;
    EVIT_ASSERT(B >= 1 && B <= a->max_batch);
    evit_patchify(a->patches, images, m->mean, m->std, B, c->img_size, c->img_size,
                  c->channels, c->patch);
    evit_linear_forward(a->pe, a->patches, p->patch_w, p->patch_b, B * N,
                        evit_config_patch_in(c), D);
    float *x = a->keep ? a->x0 : a->blocks[0].x_in;
    evit_embed_forward(x, a->pe, p->cls_token, p->pos_embed, B, T, D);
    for (int i = 0; i < B * T; i++) a->blocks[0].size[i] = 1.0f;
    int last = c->depth - 1, seg = evit_head_is_seg(c->head), R = evit_config_head_rows(c);
    int levels[EVIT_DECODER_MAX_LEVELS], nl = evit_config_levels(c, levels);
    for (int l = 0, i = 0; l < c->depth - !seg; l++) {
        block_forward(&a->blocks[l], a->metric, l < last ? a->blocks[l + 1].size : NULL, &p->blocks[l],
                      &c->blocks[l], B, tokens_of(c, l), D);
        /* a level's patch tokens, rows 1..T-1 of each image, before the
         * next block overwrites them (inference) */
        if (i < nl && l == levels[i]) {
            for (int b = 0; b < B; b++)
                memcpy(a->lx[i] + (size_t)b * N * D, a->blocks[l].x_out + ((size_t)b * T + 1) * D,
                       (size_t)N * D * sizeof(float));
            i++;
        }
    }
    if (!seg) {
        last_block_forward(&a->blocks[last], &p->blocks[last], &c->blocks[last], B, tokens_of(c, last), D);
        /* the last block's x_out is the class tokens already, (B, D) */
        memcpy(a->xf, a->blocks[last].x_out, (size_t)B * D * sizeof(float));
    }
    if (c->head == EVIT_HEAD_SEG_MLP) {
        decoder_forward(a, p, c, B);
        return;
    }
    evit_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->xf, p->norm_w, p->norm_b, B * R, D);
    evit_linear_forward(a->logits, a->lnf, p->head_w, p->head_b, B * R, D, c->classes);
}

void evit_vit_grad_scratch_alloc(struct evit_vit_grad_scratch *s,
                                 const struct evit_vit_config *c, int max_batch)
{
    size_t B = max_batch, T = evit_config_tokens(c), N = evit_config_patches(c);
    size_t D = c->dim, I, M, H;
    max_block(c, &I, &M, &H);
    size_t R = evit_config_head_rows(c);
    size_t total = 2 * B * T * D + 4 * B * T * I + B * H * T * T + 2 * B * T * M + B * N * D +
                   2 * B * R * D + 10 * 16;
    size_t C = c->decoder_dim, L = c->decoder_nlevels; /* 0 but for seg_mlp */
    total += (L ? L - 1 : 0) * (B * N * D + 16) + B * N * (L * C + 2 * C) + 3 * 16;
    memset(s, 0, sizeof *s);
    s->max_batch = max_batch;
    s->mem = evit_alloc_floats(total);
    float *q = s->mem;
#define TAKE(ptr, n) do { (ptr) = q; q += ((n) + 15) & ~(size_t)15; } while (0)
    TAKE(s->dres, B * T * D);
    TAKE(s->dln, B * T * D);
    TAKE(s->dqkv, 3 * B * T * I);
    TAKE(s->dattv, B * T * I);
    TAKE(s->datt, B * H * T * T);
    TAKE(s->dh, B * T * M);
    TAKE(s->dg, B * T * M);
    TAKE(s->dpe, B * N * D);
    TAKE(s->dxf, B * R * D);
    TAKE(s->dlnf, B * R * D);
    if (c->head == EVIT_HEAD_SEG_MLP) {
        for (size_t i = 0; i + 1 < L; i++) TAKE(s->dlx[i], B * N * D);
        s->dlx[L - 1] = s->dxf;
        TAKE(s->dcat, B * N * L * C);
        TAKE(s->du, B * N * C);
        TAKE(s->dfuse, B * N * C);
    } else if (evit_head_is_seg(c->head)) {
        s->dlx[0] = s->dxf;
    }
#undef TAKE
    EVIT_ASSERT((size_t)(q - s->mem) <= total);
}

void evit_vit_grad_scratch_free(struct evit_vit_grad_scratch *s)
{
    evit_free_aligned(s->mem);
    s->mem = NULL;
}

/* One block, backward.  s->dres holds dL/dx_out on entry and dL/dx_in on
 * exit: both residual connections pass the stream's gradient through
 * unchanged (d(a + b)/da = 1), so each branch adds its input gradient into
 * dres in place instead of going through a separate residual step.  A
 * merging block's dres shrinks from T - r rows to T: the merge's backward
 * (merge.h), between the MLP and the attention; next holds the sizes the
 * merge made. */
static void block_backward(struct evit_block_params *g, struct evit_vit_grad_scratch *s,
                           const struct evit_block_acts *a, const float *next,
                           const struct evit_block_params *p, const struct evit_block_shape *sh, int B,
                           struct tokens t, int D)
{
    int N = B * t.T, Nm = B * t.Tm, H = sh->heads, d = sh->head_dim, I = H * d, M = sh->mlp;
    size_t nm = (size_t)Nm * M;
    /* x_out = x_mid + fc2(GELU(fc1(LN2(x_mid)))) */
    memset(s->dg, 0, nm * sizeof(float));
    evit_linear_backward(s->dg, g->fc2_w, g->fc2_b, s->dres, a->g, p->fc2_w, Nm, M, D);
    memset(s->dh, 0, nm * sizeof(float));
    evit_gelu_backward(s->dh, s->dg, a->h, nm);
    memset(s->dln, 0, (size_t)Nm * D * sizeof(float));
    evit_linear_backward(s->dln, g->fc1_w, g->fc1_b, s->dh, a->ln2, p->fc1_w, Nm, D, M);
    evit_layernorm_backward(s->dres, g->ln2_w, g->ln2_b, s->dln, a->x_mid, a->ln2_mean,
                            a->ln2_rstd, p->ln2_w, Nm, D);
    if (sh->merge_r) { /* x_mid = merge(x_att): dres becomes dL/dx_att, T rows */
        memset(s->dln, 0, (size_t)N * D * sizeof(float));
        for (int b = 0; b < B; b++)
            evit_merge_backward(s->dln + (size_t)b * t.T * D, s->dres + (size_t)b * t.Tm * D,
                                a->size + (size_t)b * t.T, next + (size_t)b * t.Tm, a->dst + (size_t)b * t.T,
                                t.T, D);
        memcpy(s->dres, s->dln, (size_t)N * D * sizeof(float));
    }
    /* x_att = x_in + proj(MHSA(qkv(LN1(x_in)))) */
    memset(s->dattv, 0, (size_t)N * I * sizeof(float));
    evit_linear_backward(s->dattv, g->proj_w, g->proj_b, s->dres, a->attv, p->proj_w, N, I, D);
    memset(s->dqkv, 0, (size_t)N * 3 * I * sizeof(float));
    evit_attention_backward(s->dqkv, s->datt, s->dattv, a->qkv, a->att, B, t.T, H, d);
    memset(s->dln, 0, (size_t)N * D * sizeof(float));
    evit_linear_backward(s->dln, g->qkv_w, g->qkv_b, s->dqkv, a->ln1, p->qkv_w, N, D, 3 * I);
    evit_layernorm_backward(s->dres, g->ln1_w, g->ln1_b, s->dln, a->x_in, a->ln1_mean,
                            a->ln1_rstd, p->ln1_w, N, D);
}

/* The last block, backward (see last_block_forward).  s->dxf holds
 * dL/dx_out (B, D) of the class tokens on entry and is used as the class
 * tokens' residual gradient; on exit s->dres holds dL/dx_in (B, T, D): the
 * residual and the q path reach row 0 of each image only, the k and v paths
 * every row, all through LN1. */
static void last_block_backward(struct evit_block_params *g, struct evit_vit_grad_scratch *s,
                                const struct evit_block_acts *a,
                                const struct evit_block_params *p,
                                const struct evit_block_shape *sh, int B, int T, int D)
{
    /* T: the tokens entering it (after the merges before it) */
    int N = B * T, H = sh->heads, d = sh->head_dim, I = H * d, M = sh->mlp, S = 3 * I;
    size_t bd = (size_t)B * D, bm = (size_t)B * M;
    float *dx = s->dxf; /* (B, D) */
    /* x_out = x_mid + fc2(GELU(fc1(LN2(x_mid)))), class tokens */
    memset(s->dg, 0, bm * sizeof(float));
    evit_linear_backward(s->dg, g->fc2_w, g->fc2_b, dx, a->g, p->fc2_w, B, M, D);
    memset(s->dh, 0, bm * sizeof(float));
    evit_gelu_backward(s->dh, s->dg, a->h, bm);
    memset(s->dln, 0, bd * sizeof(float));
    evit_linear_backward(s->dln, g->fc1_w, g->fc1_b, s->dh, a->ln2, p->fc1_w, B, D, M);
    evit_layernorm_backward(dx, g->ln2_w, g->ln2_b, s->dln, a->x_mid, a->ln2_mean, a->ln2_rstd,
                            p->ln2_w, B, D);
    /* x_mid = x_in[:, 0] + proj(MHSA(qkv(LN1(x_in))))[:, 0] */
    memset(s->dattv, 0, (size_t)B * I * sizeof(float));
    evit_linear_backward(s->dattv, g->proj_w, g->proj_b, dx, a->attv, p->proj_w, B, I, D);
    memset(s->dqkv, 0, (size_t)N * S * sizeof(float));
    evit_attention_backward_q(s->dqkv, s->datt, s->dattv, a->qkv, a->att, B, T, 1, H, d);
    memset(s->dln, 0, (size_t)N * D * sizeof(float));
    evit_linear_backward_ld(s->dln, D, g->qkv_w + (size_t)I * D, g->qkv_b + I, s->dqkv + I, S,
                            a->ln1, D, p->qkv_w + (size_t)I * D, N, D, 2 * I);
    evit_linear_backward_ld(s->dln, T * D, g->qkv_w, g->qkv_b, s->dqkv, T * S, a->ln1, T * D,
                            p->qkv_w, B, D, I);
    /* the residual carries dL/dx_mid to the class tokens of x_in */
    memset(s->dres, 0, (size_t)N * D * sizeof(float));
    for (int b = 0; b < B; b++)
        memcpy(s->dres + (size_t)b * T * D, dx + (size_t)b * D, (size_t)D * sizeof(float));
    evit_layernorm_backward(s->dres, g->ln1_w, g->ln1_b, s->dln, a->x_in, a->ln1_mean,
                            a->ln1_rstd, p->ln1_w, N, D);
}

/* decoder_forward, backward: from dlogits (B*N, K) to each level's patch
 * tokens' gradient s->dlx[i] (overwritten), the parameters' accumulated. */
static void decoder_backward(struct evit_vit_params *g, struct evit_vit_grad_scratch *s,
                             const struct evit_vit_acts *a, const struct evit_vit_params *p,
                             const struct evit_vit_config *c, const float *dlogits, int B)
{
    int n = B * evit_config_patches(c), D = c->dim, C = c->decoder_dim, L = c->decoder_nlevels;
    size_t nc = (size_t)n * C, nd = (size_t)n * D;
    /* logits = u W_p^T + b_p,  u = ReLU(fuse),  fuse = cat W_f^T + b_f */
    memset(s->du, 0, nc * sizeof(float));
    evit_linear_backward(s->du, g->head_w, g->head_b, dlogits, a->u, p->head_w, n, C, c->classes);
    memset(s->dfuse, 0, nc * sizeof(float));
    evit_relu_backward(s->dfuse, s->du, a->fuse, nc);
    memset(s->dcat, 0, nc * (size_t)L * sizeof(float));
    evit_linear_backward(s->dcat, g->fuse_w, g->fuse_b, s->dfuse, a->cat, p->fuse_w, n, L * C, C);
    /* cat's columns i*C.. = LN_i(x_i) W_i^T + b_i */
    for (int i = 0; i < L; i++) {
        memset(s->dlnf, 0, nd * sizeof(float));
        evit_linear_backward_ld(s->dlnf, D, g->dec_w[i], g->dec_b[i], s->dcat + (size_t)i * C, L * C, a->lln[i], D,
                                p->dec_w[i], n, D, C);
        memset(s->dlx[i], 0, nd * sizeof(float));
        evit_layernorm_backward(s->dlx[i], g->dec_norm_w[i], g->dec_norm_b[i], s->dlnf, a->lx[i], a->lmean[i],
                                a->lrstd[i], p->dec_norm_w[i], n, D);
    }
}

void evit_vit_backward(struct evit_vit_params *grads, struct evit_vit_grad_scratch *s,
                       const struct evit_vit *m, const struct evit_vit_acts *a,
                       const float *dlogits, int B)
{
    const struct evit_vit_config *c = &m->cfg;
    const struct evit_vit_params *p = &m->p;
    int T = evit_config_tokens(c), N = evit_config_patches(c), D = c->dim, K = c->classes;
    EVIT_ASSERT(a->keep && B >= 1 && B <= a->max_batch && B <= s->max_batch);
    int last = c->depth - 1, seg = evit_head_is_seg(c->head), R = evit_config_head_rows(c), top = last;
    int levels[EVIT_DECODER_MAX_LEVELS], nl = evit_config_levels(c, levels);
    size_t rd = (size_t)B * R * D;
    if (c->head == EVIT_HEAD_SEG_MLP) {
        decoder_backward(grads, s, a, p, c, dlogits, B);
    } else {
        /* logits = head(LN_f(x[:, 0])), or head(LN_f(x[:, 1:])) */
        memset(s->dlnf, 0, rd * sizeof(float));
        evit_linear_backward(s->dlnf, grads->head_w, grads->head_b, dlogits, a->lnf, p->head_w, B * R, D, K);
        memset(s->dxf, 0, rd * sizeof(float));
        evit_layernorm_backward(s->dxf, grads->norm_w, grads->norm_b, s->dlnf, a->xf, a->lnf_mean, a->lnf_rstd,
                                p->norm_w, B * R, D);
    }
    if (seg) {
        /* the residual stream gets its gradient from the levels' patch
         * tokens, the class tokens nothing: full blocks' backward */
        memset(s->dres, 0, (size_t)B * T * D * sizeof(float));
    } else {
        /* only the class token of the last block's output reaches the head */
        last_block_backward(&grads->blocks[last], s, &a->blocks[last], &p->blocks[last], &c->blocks[last], B,
                            tokens_of(c, last).T, D);
        top = last - 1;
    }
    for (int l = top, i = nl - 1; l >= 0; l--) {
        /* level i read block l's output: its gradient joins the stream's
         * there, which holds what the blocks above sent down */
        if (i >= 0 && l == levels[i]) {
            for (int b = 0; b < B; b++) {
                float *d = s->dres + ((size_t)b * T + 1) * D;
                evit_residual_forward(d, d, s->dlx[i] + (size_t)b * N * D, (size_t)N * D);
            }
            i--;
        }
        block_backward(&grads->blocks[l], s, &a->blocks[l], l < last ? a->blocks[l + 1].size : NULL, &p->blocks[l],
                       &c->blocks[l], B, tokens_of(c, l), D);
    }
    /* x0 = [cls ; patches @ patch_w^T + patch_b] + pos_embed */
    memset(s->dpe, 0, (size_t)B * N * D * sizeof(float));
    evit_embed_backward(s->dpe, grads->cls_token, grads->pos_embed, s->dres, B, T, D);
    evit_linear_backward(NULL, grads->patch_w, grads->patch_b, s->dpe, a->patches, p->patch_w,
                         B * N, evit_config_patch_in(c), D);
}

