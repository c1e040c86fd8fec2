/* vit.h: a Vision Transformer numerically identical to timm's
 * VisionTransformer (class token, pre-norm blocks, exact-erf GELU, LayerNorm
 * eps 1e-6, linear head on the class token).
 *
 *   x0 = [cls ; conv_P(img)] + pos_embed                      (B, T, D)
 *   per block l:
 *     x = x + proj(MHSA(qkv(LN1(x))))     heads H_l, head dim d_l
 *     x = x + fc2(GELU(fc1(LN2(x))))      hidden width M_l
 *   logits = head(LN_f(x[:, 0]))                               (B, K)
 * or, with Segmenter's linear decoder (config head "seg_linear"),
 *   logits = head(LN_f(x[:, 1:]))                              (B, N, K)
 * or, with SegFormer's all-MLP decoder (config head "seg_mlp"), on the
 * outputs x_l of L blocks l_0 < ... < l_{L-1} = depth - 1 (config
 * decoder_levels) and C = decoder_dim:
 *   f_i = LN_i(x_{l_i}[:, 1:])                                 (B, N, D)
 *   e_i = f_i W_i^T + b_i                                      (B, N, C)
 *   u   = ReLU([e_0 | ... | e_{L-1}] W_f^T + b_f)               (B, N, C)
 *   logits = u W_p^T + b_p                                     (B, N, K)
 * LN_{L-1} is LN_f (norm.weight, norm.bias), so the encoder stays timm's;
 * the others are decode_head.norms.{i}; W_i, b_i decode_head.linear_c.{i};
 * W_f (C, L*C), b_f decode_head.linear_fuse; W_p (K, C), b_p head.
 * SegFormer's BatchNorm after the fuse layer is left out: at the small
 * batches evit trains with its statistics are noisy, and at inference it
 * is an affine map W_f could absorb.
 *
 * Parameters live in one float buffer; struct evit_vit_params holds pointers
 * into it, so a gradient buffer (or an optimiser moment) binds to the same
 * struct layout.  evit_vit_tensors() lists every tensor with its timm
 * state_dict key and PyTorch shape: checkpoints, initialisation, NaN checks
 * and pruning all walk that one list. */
#ifndef EVIT_VIT_H
#define EVIT_VIT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"


struct evit_block_params {
    float *ln1_w, *ln1_b; /* (D) */
    float *qkv_w;         /* (3*I, D), I = heads*head_dim, rows q|k|v, each head-major */
    float *qkv_b;         /* (3*I) */
    float *proj_w;        /* (D, I) */
    float *proj_b;        /* (D) */
    float *ln2_w, *ln2_b; /* (D) */
    float *fc1_w;         /* (M, D) */
    float *fc1_b;         /* (M) */
    float *fc2_w;         /* (D, M) */
    float *fc2_b;         /* (D) */
};

struct evit_vit_params {
    float *patch_w;   /* (D, C, P, P) = (D, C*P*P) */
    float *patch_b;   /* (D) */
    float *cls_token; /* (1, 1, D) */
    float *pos_embed; /* (1, T, D) */
    struct evit_block_params blocks[EVIT_MAX_DEPTH];
    float *norm_w, *norm_b; /* (D) */
    /* seg_mlp's decoder, L levels of width C (NULL for the other heads):
     * level i's LayerNorm, the last one's being norm_w, norm_b above (the
     * pointers alias), its linear_c, and linear_fuse */
    float *dec_norm_w[EVIT_DECODER_MAX_LEVELS], *dec_norm_b[EVIT_DECODER_MAX_LEVELS]; /* (D) */
    float *dec_w[EVIT_DECODER_MAX_LEVELS]; /* (C, D) */
    float *dec_b[EVIT_DECODER_MAX_LEVELS]; /* (C) */
    float *fuse_w;          /* (C, L*C) */
    float *fuse_b;          /* (C) */
    float *head_w;          /* (K, D); seg_mlp (K, C) */
    float *head_b;          /* (K) */
};

/* Pointers into mem, which holds evit_config_params(cfg) floats. */
void evit_vit_bind(struct evit_vit_params *p, const struct evit_vit_config *cfg, float *mem);

/* Kind of a tensor, for initialisation and weight decay. */
enum evit_tensor_kind {
    EVIT_T_WEIGHT,  /* matrix / conv kernel: trunc normal, decayed */
    EVIT_T_BIAS,    /* zeros, not decayed */
    EVIT_T_NORM_W,  /* ones, not decayed */
    EVIT_T_NORM_B,  /* zeros, not decayed */
    EVIT_T_EMBED    /* cls_token, pos_embed: trunc normal, not decayed */
};

#define EVIT_TENSOR_NAME_MAX 64

struct evit_tensor_ref {
    char name[EVIT_TENSOR_NAME_MAX]; /* timm key, "blocks.0.attn.qkv.weight" */
    float *data;
    int ndim;
    int64_t shape[4]; /* PyTorch shape */
    size_t numel;
    enum evit_tensor_kind kind;
    int block; /* block index, -1 outside blocks */
};

/* Fills out (when non-NULL) and returns the number of tensors: 8 + 12*depth,
 * plus 2 (L - 1) + 2 L + 2 for seg_mlp's decoder. */
int evit_vit_tensors(const struct evit_vit_config *cfg, const struct evit_vit_params *p,
                     struct evit_tensor_ref *out);

/* The same list, allocated (caller frees); *n receives its length. */
struct evit_tensor_ref *evit_vit_tensor_list(const struct evit_vit_config *cfg,
                                             const struct evit_vit_params *p, int *n);

/* A model: config, parameters and the preprocessing it was trained with. */
struct evit_vit {
    struct evit_vit_config cfg;
    float *mem; /* evit_config_params(&cfg) floats, 64-byte aligned */
    struct evit_vit_params p;
    float mean[4], std[4]; /* per channel, on pixel/255 */
};

/* Allocates zeroed parameters, mean 0 and std 1. */
void evit_vit_alloc(struct evit_vit *m, const struct evit_vit_config *cfg);
void evit_vit_free(struct evit_vit *m);

/* timm's init: trunc_normal(std .02, cut at +-2 std) for weights, cls_token
 * and pos_embed (timm uses std 1e-6 for cls; we use .02 for both, as DeiT);
 * zeros for biases; ones for LayerNorm weights.  Same seed, same model. */
void evit_vit_init(struct evit_vit *m, uint64_t seed);

/* Activations of one forward pass, kept for backward when keep != 0 (one set
 * per block), shared between blocks otherwise (inference).
 *
 * The last block runs for the class token only, since the head reads
 * nothing else (vit.c, last_block_forward): every token's key and value
 * enter the class token's attention, so its x_in, ln1 and k, v are
 * (B, T, ...) as in any block, but q is computed on each image's row 0
 * alone and the rest has one row per image, R = 1 below (R = T in the
 * other blocks).  With keep, the last block's buffers are allocated at
 * those sizes; without, all blocks share buffers sized for a full block.
 *
 * Token Merging (config merge_r, model/merge.h): a block that merges runs
 * its attention on the T tokens that enter it and its MLP on the T - r
 * that leave; the buffers are sized for the full T, the tokens in use at
 * the front.  The sizes and their logs (the bias of proportional attention,
 * once some block has merged) are each block's own, in both modes. */
struct evit_block_acts {
    float *x_in;        /* (B, T, D) residual stream entering the block */
    float *ln1;         /* (B, T, D) */
    float *ln1_mean;    /* (B, T) */
    float *ln1_rstd;    /* (B, T) */
    float *qkv;         /* (B, T, 3*I); last block: q on rows t = 0 only */
    float *att;         /* (B, H, R, T) softmax probabilities */
    float *attv;        /* (B, R, I) heads concatenated */
    float *x_att;       /* (B, T, D) after the attention residual, before Token
                         * Merging (blocks with merge_r; otherwise x_mid) */
    float *size;        /* (B, T) the tokens' sizes entering the block (merge.h) */
    float *logs;        /* (B, T) their logs: proportional attention's bias */
    int *dst;           /* (B, T) where each token merges to (merge_r blocks) */
    float *x_mid;       /* (B, R, D) after the attention residual (merged: R =
                         * the tokens leaving the block) */
    float *ln2;         /* (B, R, D) */
    float *ln2_mean;    /* (B, R) */
    float *ln2_rstd;    /* (B, R) */
    float *h;           /* (B, R, M) fc1 output, before GELU */
    float *g;           /* (B, R, M) GELU output */
    float *x_out;       /* (B, R, D); last block: the class tokens (B, D) */
};

struct evit_vit_acts {
    int max_batch;
    int keep;
    float *mem;
    int *imem;       /* the blocks' dst */
    float *metric;   /* (T, max head_dim) Token Merging's metric, scratch */
    float *patches;  /* (B, N, C*P*P) normalised pixels, one row per patch */
    float *pe;       /* (B, N, D) patch embeddings */
    float *x0;       /* (B, T, D) */
    struct evit_block_acts blocks[EVIT_MAX_DEPTH];
    /* R = evit_config_head_rows: 1 (the class token) or N (a segmentation
     * head's patch tokens) */
    float *xf;       /* (B, R, D) the last block's rows the head reads */
    float *lnf;      /* (B, R, D) */
    float *lnf_mean; /* (B, R) */
    float *lnf_rstd; /* (B, R) */
    /* A segmentation head's levels (evit_config_levels: seg_linear the last
     * block, seg_mlp its decoder_levels), copied as each level's block
     * finishes, since inference reuses the blocks' buffers; the last
     * level's are xf, lnf, lnf_mean, lnf_rstd above (the pointers alias) */
    float *lx[EVIT_DECODER_MAX_LEVELS];    /* (B, N, D) block l_i's patch tokens */
    float *lln[EVIT_DECODER_MAX_LEVELS];   /* (B, N, D) their LayerNorm (seg_mlp) */
    float *lmean[EVIT_DECODER_MAX_LEVELS]; /* (B, N) */
    float *lrstd[EVIT_DECODER_MAX_LEVELS]; /* (B, N) */
    float *cat;      /* (B, N, L*C) seg_mlp: the levels' linear_c side by side */
    float *fuse;     /* (B, N, C) linear_fuse's output, before the ReLU */
    float *u;        /* (B, N, C) after it */
    float *logits;   /* (B, R, K) */
};

void evit_vit_acts_alloc(struct evit_vit_acts *a, const struct evit_vit_config *cfg,
                         int max_batch, int keep);
void evit_vit_acts_free(struct evit_vit_acts *a);

/* Forward pass on B images (uint8, HWC, the model's img_size and channels).
 * Logits land in a->logits: (B, K), or (B, N, K) per patch for a
 * segmentation head (config.h), whose last block then runs on every token
 * like the others. */
void evit_vit_forward(const struct evit_vit *m, struct evit_vit_acts *a,
                      const uint8_t *images /* (B, H, W, C) */, int B);

/* Activation gradients of one backward pass: scratch, reused by every
 * block (sized for the largest), and independent of the batch's content. */
struct evit_vit_grad_scratch {
    int max_batch;
    float *mem;
    float *dres;  /* (B, T, D) gradient of the residual stream */
    float *dln;   /* (B, T, D) gradient of a LayerNorm output */
    float *dqkv;  /* (B, T, 3*I) */
    float *dattv; /* (B, T, I) */
    float *datt;  /* (B, H, T, T) attention backward scratch */
    float *dh;    /* (B, T, M) before GELU */
    float *dg;    /* (B, T, M) after GELU */
    float *dpe;   /* (B, N, D) patch embeddings */
    float *dxf;   /* (B, R, D) the head's rows after the last block (R as
                   * in evit_vit_acts); with the class head, the last
                   * block's residual gradient (its x_out, x_mid) */
    float *dlnf;  /* (B, R, D) final LayerNorm output; seg_mlp: each
                   * level's LayerNorm output in turn */
    float *dlx[EVIT_DECODER_MAX_LEVELS]; /* (B, N, D) seg_mlp: each level's
                   * patch tokens (the last is dxf) */
    float *dcat;  /* (B, N, L*C) seg_mlp */
    float *du;    /* (B, N, C) after the ReLU */
    float *dfuse; /* (B, N, C) before it */
};

void evit_vit_grad_scratch_alloc(struct evit_vit_grad_scratch *s,
                                 const struct evit_vit_config *cfg, int max_batch);
void evit_vit_grad_scratch_free(struct evit_vit_grad_scratch *s);

/* Backward pass of the forward that filled a (which must have been allocated
 * with keep != 0), from the gradient of the loss with respect to the logits.
 * Parameter gradients ACCUMULATE into grads, a struct evit_vit_params bound
 * (evit_vit_bind) to a buffer of evit_config_params() floats that the caller
 * zeroes between steps.  The images get no gradient. */
void evit_vit_backward(struct evit_vit_params *grads, struct evit_vit_grad_scratch *s,
                       const struct evit_vit *m, const struct evit_vit_acts *a,
                       const float *dlogits /* (B, R, K) */, int B);

/* Checks every parameter is finite; names the first bad tensor. */
int evit_vit_check_finite(const struct evit_vit *m, const char *where);

#endif
