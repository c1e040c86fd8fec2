/* prune.h: structured pruning of a ViT, physically, driven by a JSON config.
 *
 * Two kinds of structure go, in every block l:
 *   - whole attention heads: head h owns rows h*d..(h+1)*d-1 of each third
 *     (q, k, v) of qkv.weight and qkv.bias, and columns h*d..(h+1)*d-1 of
 *     attn.proj.weight;
 *   - MLP hidden channels: channel c owns row c of fc1.weight, fc1.bias[c]
 *     and column c of fc2.weight.
 * Removing one removes exactly its contribution to the residual stream (a
 * head's attention output only reaches the stream through its proj columns;
 * a channel's GELU output only through its fc2 column), so the result is an
 * ordinary, smaller model (config.h's per-block heads and mlp), not a mask.
 *
 * A seg_mlp head (vit.h) adds a third kind, the decoder's width C: one
 * config value (decoder_dim) shared by every level's e_i and by u, so all
 * of them go to the same C', but each keeps its own best C' channels:
 *   - level i's channel c owns row c of linear_c.i (dec_w[i]), dec_b[i][c]
 *     and column i*C + c of linear_fuse (fuse_w); zeroing its row and bias
 *     makes e_i[c] = 0, which its fuse column then multiplies to nothing;
 *   - the fuse output's channel c owns row c of linear_fuse, fuse_b[c] and
 *     column c of head.weight; zeroing its row and bias makes
 *     u[c] = ReLU(0) = 0, which reaches the logits only through that column.
 * The decoder is a group of its own: neither scope mixes it with heads or
 * MLP channels.
 *
 * Steps: importance (evit_prune_magnitude or evit_prune_taylor) fills a
 * score per head and channel; evit_prune_select turns scores and the config
 * into a plan (which indices each block keeps); evit_prune_apply builds the
 * smaller model from the plan.
 *
 * Config JSON (docs/PRUNE.md), read strictly:
 *   { "criterion": "l1" | "l2" | "taylor",      default "l2"
 *     "scope": "global" | "layer",               default "global"
 *     "heads_ratio": 0.25, "mlp_ratio": 0.25,    fraction REMOVED, [0, 1)
 *     "min_heads": 1,                            heads every block keeps
 *     "mlp_multiple": 8,                         kept channels rounded to it
 *     "taylor_batches": 8,                       batches of 64 for taylor
 *     "blocks": { "0": {"heads_keep": 3, "mlp_keep": 128} },
 *     "decoder_ratio": 0.25,                     seg_mlp: fraction of C removed,
 *                                                kept width rounded to mlp_multiple
 *     "decoder_keep": 24,                        seg_mlp: kept width, exact; wins
 *     "description": "free text" }
 * decoder_ratio and decoder_keep are refused for a model without a seg_mlp
 * head (evit_prune_config_check). */
#ifndef EVIT_PRUNE_H
#define EVIT_PRUNE_H

#include <cJSON.h>

#include "config.h"
#include "vit.h"

struct evit_dataset;

enum evit_prune_criterion { EVIT_PRUNE_L1, EVIT_PRUNE_L2, EVIT_PRUNE_TAYLOR };
enum evit_prune_scope { EVIT_PRUNE_GLOBAL, EVIT_PRUNE_LAYER };

#define EVIT_PRUNE_TAYLOR_BATCH 64

struct evit_prune_config {
    enum evit_prune_criterion criterion;
    enum evit_prune_scope scope;
    double heads_ratio, mlp_ratio; /* fraction removed, [0, 1) */
    int min_heads;                 /* >= 1 */
    int mlp_multiple;              /* >= 1 */
    int taylor_batches;            /* >= 1 */
    /* explicit per-block counts, 0 when the block has none */
    int heads_keep[EVIT_MAX_DEPTH];
    int mlp_keep[EVIT_MAX_DEPTH];
    int max_block;                 /* highest block named in "blocks", -1 if none */
    double decoder_ratio;          /* seg_mlp: fraction of decoder_dim removed, [0, 1) */
    int decoder_keep;              /* seg_mlp: kept decoder width, 0 when not given */
    const char *decoder_key;       /* "decoder_keep" or "decoder_ratio" when either
                                    * was given (static string), else NULL */
    cJSON *json;                   /* the file as read, for the report; owned */
};

/* Defaults: l2, global, ratios 0, min_heads 1, mlp_multiple 8, 8 batches. */
void evit_prune_config_defaults(struct evit_prune_config *c);

/* Parses a config object strictly; file names the source in messages. */
int evit_prune_config_parse(const cJSON *obj, const char *file, struct evit_prune_config *c);

/* Reads and parses path; c->json keeps the tree. */
int evit_prune_config_load(const char *path, struct evit_prune_config *c);

/* What can only be checked against the model: named blocks exist, explicit
 * counts do not exceed the block's, the decoder keys come with a seg_mlp
 * head and decoder_keep does not exceed its width, taylor has training
 * data. */
int evit_prune_config_check(const struct evit_prune_config *c, const char *file,
                            const struct evit_vit_config *model, int have_data);

void evit_prune_config_free(struct evit_prune_config *c);

const char *evit_prune_criterion_name(enum evit_prune_criterion c);
const char *evit_prune_scope_name(enum evit_prune_scope s);

/* Importance of every head and channel: larger is more important. */
struct evit_prune_scores {
    int depth;
    double *head[EVIT_MAX_DEPTH]; /* (heads_l) */
    double *mlp[EVIT_MAX_DEPTH];  /* (mlp_l) */
    /* seg_mlp's decoder (levels 0 and both NULL for the other heads) */
    int levels;                   /* L, decoder_nlevels */
    int dec_dim;                  /* C, decoder_dim */
    double *dec[EVIT_DECODER_MAX_LEVELS]; /* (C) level i's linear_c channels */
    double *fuse;                 /* (C) linear_fuse's output channels */
};

void evit_prune_scores_alloc(struct evit_prune_scores *s, const struct evit_vit_config *cfg);
void evit_prune_scores_free(struct evit_prune_scores *s);

/* l1: sum |w|, l2: sqrt(sum w^2), over every weight and bias a head or
 * channel (or decoder channel) owns (see the top of this file). */
void evit_prune_magnitude(struct evit_prune_scores *s, const struct evit_vit *m,
                          enum evit_prune_criterion crit);

/* First-order Taylor importance: with G the gradient of the task's
 * cross-entropy (head.h: on the labels, or on the masks per pixel)
 * summed over `batches` batches of EVIT_PRUNE_TAYLOR_BATCH training images
 * (taken at an even stride through the set, no augmentation, no smoothing),
 *   score = sum over the owned weights w of |w * G_w|
 * the first-order estimate of the loss change when the weights go to zero.
 * The images must match the model (evit_eval_check_compat). */
void evit_prune_taylor(struct evit_prune_scores *s, const struct evit_vit *m,
                       const struct evit_dataset *d, int batches, int progress);

/* Per block, the indices kept (ascending, so the survivors keep their order). */
struct evit_prune_plan {
    int depth;
    int heads[EVIT_MAX_DEPTH];     /* heads kept */
    int mlp[EVIT_MAX_DEPTH];       /* channels kept */
    int *head_idx[EVIT_MAX_DEPTH]; /* (heads[l]) */
    int *mlp_idx[EVIT_MAX_DEPTH];  /* (mlp[l]) */
    /* seg_mlp's decoder (levels 0, dec_dim 0 and NULLs for the other heads) */
    int levels;                    /* L */
    int dec_dim;                   /* C', the width every level and u keep */
    int *dec_idx[EVIT_DECODER_MAX_LEVELS]; /* (C') level i's kept channels */
    int *fuse_idx;                 /* (C') linear_fuse's kept output channels */
};

/* Counts per block (explicit overrides; else layer: the ratio in every block,
 * or global: one ranking of scores divided by their block's mean), then the
 * highest-scoring heads and channels of each block (ties: lower index).
 * The decoder's width is decoder_keep, else C (1 - decoder_ratio) rounded
 * to mlp_multiple (a ratio of 0 keeps C as it is), whatever the scope; each
 * level and the fuse output keep their own highest-scoring channels. */
void evit_prune_select(struct evit_prune_plan *plan, const struct evit_prune_config *c,
                       const struct evit_vit_config *model, const struct evit_prune_scores *s);

void evit_prune_plan_free(struct evit_prune_plan *plan);

/* The model's config with the plan's counts (and decoder width), named
 * "<name>-pruned". */
void evit_prune_shape(struct evit_vit_config *out, const struct evit_vit_config *in,
                      const struct evit_prune_plan *plan);

/* Allocates out with the pruned shape and copies the kept weights. */
void evit_prune_apply(struct evit_vit *out, const struct evit_vit *in,
                      const struct evit_prune_plan *plan);

/* Kept channels for a wanted count: the nearest multiple of q, never below
 * q and never above the original width M. */
int evit_prune_round_mlp(double want, int M, int q);

/* Per block: heads and channels kept and removed (indices), parameters
 * before and after; caller deletes. */
cJSON *evit_prune_plan_to_json(const struct evit_prune_plan *plan, const struct evit_vit *in,
                               const struct evit_vit *out);

/* seg_mlp's decoder: dim_before, dim_after, per level and for the fuse
 * output the channels kept and removed, the decoder's parameters
 * (decode_head.* and head.*) before and after, and the MFLOPs the width
 * saves; NULL for a model without the decoder.  Caller deletes. */
cJSON *evit_prune_decoder_to_json(const struct evit_prune_plan *plan, const struct evit_vit *in,
                                  const struct evit_vit *out);

#endif
