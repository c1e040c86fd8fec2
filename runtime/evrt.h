/* evrt.h: libevrt, evit's dependency-free inference runtime (C99, libc and
 * libm only).  The one public header.
 *
 * A model is described in memory by struct evrt_model: shapes plus POINTERS
 * to tensors the caller owns (heap arrays, or a mapped file: nothing is
 * copied).  A context (evrt_ctx) made from a model allocates all working
 * memory once, for a maximum batch; evrt_infer then allocates nothing.
 *
 * Numerics are timm's VisionTransformer, as evit trains it:
 *
 *   x0 = [cls ; patch_embed(patches)] + pos_embed           (B, T, D)
 *     patches: (pixel/255 - mean[c]) / std[c], row c*P*P + py*P + px
 *   per block l:
 *     x = x + proj(MHSA(qkv(LN1(x))))      LayerNorm eps 1e-6,
 *     x = x + fc2(GELU(fc1(LN2(x))))       exact erf GELU, scale 1/sqrt(d)
 *   logits = head(LN_f(x[:, 0]))                              (B, K)
 *
 * Only the class token reaches the head, so the last block computes keys
 * and values for every token but its attention output, projection and MLP
 * for token 0 alone: exact, and that block's work drops by about two
 * thirds.
 *
 * INT8 (per linear layer, struct evrt_linear.dtype == EVRT_I8): weights
 * symmetric per output channel, activations per tensor (TFLite's int8
 * scheme).  The integer path is specified bit-exactly by the _ref kernels
 * below, which any fast kernel must reproduce:
 *
 *   inv   = 1.0f / in_scale                                    (float)
 *   xq[i] = clamp(rint(x[i] * inv) + in_zero, -128, 127)       (int8)
 *           rint: round to nearest, ties to even; the clamp is applied to
 *           the float before conversion, so huge values saturate
 *   acc   = sum_i (xq[i] - in_zero) * wq[o, i]                 (int32, exact)
 *   y[o]  = (float)acc * (in_scale * w_scale[o]) + bias[o]
 *           two float roundings: the product, then the sum (never a fused
 *           multiply-add; libevrt is built with -std=c99 -ffp-contract=off)
 *
 * Symmetric activations have in_zero 0; asymmetric ones a zero point in
 * [-128, 127].  LayerNorm, GELU and the residual adds stay float32.
 *
 * INT8 attention (per block, struct evrt_block.attn_dtype == EVRT_I8):
 * q k^T and p v in int8 with per-tensor symmetric scales for q, k, v and
 * the softmax output p; the softmax itself is specified to the bit so that
 * every variant and thread count gives the same logits.  For each image,
 * head (width d <= 512) and query t, over keys u and channels i, j of the
 * head:
 *
 *   sq(x, s) = clamp(rint(x * (1.0f / s)), -127, 127)          (int8, NaN 0;
 *              -128 is never used, so two products fit an int16 lane)
 *   a[u]  = sum_i sq(q[t, i], q_scale) sq(k[u, i], k_scale)     (int32)
 *   c     = (q_scale * k_scale) / sqrtf((float)d)               (float)
 *   e[u]  = exp_poly((float)(a[u] - max_u a) * c)               (float)
 *           exp_poly: the runtime's polynomial exp (kernels.c exp_neg:
 *           Cody-Waite reduction and a degree-6 polynomial, separately
 *           rounded float operations, argument clamped to [-87.3, 0])
 *   E[u]  = (int32)rint(e[u] * 32768.0f)                        in [0, 32768]
 *   r     = 1.0f / ((float)(sum_u E[u]) * p_scale)
 *   P[u]  = min(rint((float)E[u] * r), 127)                     in [0, 127]
 *   out[t, j] = (float)(sum_u P[u] sq(v[u, j], v_scale)) * (p_scale * v_scale)
 *
 * p_scale near 1/127 keeps the largest probabilities; a calibrated smaller
 * one spends the 128 levels on the range that occurs (and saturates above).
 *
 * Token Merging (ToMe, Bolya et al. 2023; struct evrt_block.merge_r): after
 * block l's attention and its residual add, each image's T_l tokens become
 * T_l - r_l, and block l + 1 runs on those (T_0 = T; the last block merges
 * nothing: only the class token goes on).  Bipartite soft matching on the
 * block's keys k (T_l, H, d), specified to the bit so that every variant
 * and thread count picks the same tokens:
 *
 *   m[t, i]  = (sum_h k[t, h, i]) / H            (float, h in order)
 *   n[t]     = m[t] * (1.0f / sqrtf(ss)), ss = sum_i m[t, i]^2 in sixteen
 *              partial sums over i mod 16, added pairwise (8, 4, 2, 1);
 *              n[t] = 0 when ss is 0 or not finite
 *   A = the even tokens 0, 2, 4, ...; B = the odd ones (na = ceil(T_l/2))
 *   sim(a, b) = one chain of fused multiply-adds over i in order from 0.0f:
 *              s = fmaf(n[a, i], n[b, i], s)  (the panel kernels' order)
 *   best(a)  = the B token of the largest sim (the lowest index among
 *              equals; NaN never wins), score(a) that sim (-inf if none)
 *   the r_l A tokens of the highest scores merge, the class token (A's
 *   first) never; among equal scores the lower index first
 *   outputs: the unmerged A tokens in order, then the B tokens in order
 *   x'[j] = (sum_{i -> j} s[i] x[i]) / s'[j], s'[j] = sum_{i -> j} s[i]
 *              (float, i in input order from 0.0f, no fused operations)
 *
 * Each token carries its size s (1 at the start: the patches it stands
 * for), and attention after a merge is proportional attention: a key's
 * logit gains b[u] = (float)log((double)s[u]) before the softmax (float32
 * attention: softmax(q k^T / sqrt(d) + b)); in INT8 attention the step
 * e[u] above becomes
 *
 *   t[u]  = (float)(a[u] - max_u a) * c + b[u],
 *   e[u]  = exp_poly(t[u] - max_u t[u])
 *
 * which without b (no merge before the block) is e[u] as above, bit for bit.
 *
 * Segmentation (struct evrt_model.head_kind == EVRT_HEAD_SEG_LINEAR, Segmenter's
 * linear decoder): every block runs on every token, the final LayerNorm
 * too, and the head classifies each patch token instead of the class
 * token; evrt_infer_seg gives
 *
 *   z[b, n] = head(LN_f(x[b, 1 + n]))       (B, G*G, K), G = img_size/patch,
 *                                            patch n at grid row n / G,
 *                                            column n % G
 *
 * or, with SegFormer's all-MLP decoder (EVRT_HEAD_SEG_MLP, struct
 * evrt_decoder below), z the decoder's per-patch logits, in the same order;
 * everything from z on is the same for both heads:
 *
 * and, through the decoder (the kernels' decode slot), per-pixel class
 * scores: z bilinearly upsampled to img_size x img_size as PyTorch's
 * interpolate(align_corners=False) does, and the mask, each pixel's
 * argmax.  Pixel (y, x), per axis (s for y and x alike, n_in = G, n_out =
 * img_size):
 *
 *   s   = max(((float)o + 0.5f) * ((float)n_in / (float)n_out) - 0.5f, 0)
 *   i0  = min((int)s, n_in - 1), i1 = min(i0 + 1, n_in - 1), f = s - i0
 *   h0  = (1 - fx) z[y0, x0] + fx z[y0, x1]  (each a separate float
 *   h1  = (1 - fx) z[y1, x0] + fx z[y1, x1]   product and sum, no fused
 *   out = (1 - fy) h0 + fy h1                 operation)
 *   mask = the class of the largest score (the lowest among equals; NaN
 *          never wins; 0 when every score is NaN)
 *
 * which is evit's training-side upsampling (model/ops.c) bit for bit, so
 * a mask from the runtime matches the evaluation's.  Token Merging is for
 * class heads only (merge_r 0 in every block of a segmentation model).
 *
 * Errors: functions return EVRT_OK or a negative EVRT_E* code; the message
 * of the last error on a context is evrt_ctx_error().  The library never
 * prints and has no global state: contexts are independent, so threads may
 * each run their own.
 *
 * Model files (.evit), which evrt_open maps and runs in place: see "Model
 * files" at the end of this header. */
#ifndef EVRT_H
#define EVRT_H

#include <stddef.h>
#include <stdint.h>

#define EVRT_OK 0
#define EVRT_EINVAL (-1) /* a bad model description or argument */
#define EVRT_ENOMEM (-2) /* working memory could not be allocated */

#define EVRT_LN_EPS 1e-6f
#define EVRT_ERR_MAX 256

enum evrt_dtype {
    EVRT_F32 = 0, /* w used */
    EVRT_I8 = 1   /* wq, w_scale, in_scale, in_zero used */
};

/* y = x w^T + bias over the last axis of x. */
struct evrt_linear {
    int in, out;
    int dtype;             /* enum evrt_dtype */
    const float *w;        /* (out, in) float32, for EVRT_F32 */
    const int8_t *wq;      /* (out, in) int8 in [-127, 127], for EVRT_I8 */
    const float *w_scale;  /* (out) per output channel: w ~ wq * w_scale */
    const float *bias;     /* (out), or NULL for none */
    float in_scale;        /* activation entering the layer: x ~ (xq - in_zero) * in_scale */
    int32_t in_zero;       /* in [-128, 127]; 0 when symmetric */
};

struct evrt_block {
    int heads, head_dim, mlp;        /* I = heads * head_dim */
    int attn_dtype;                  /* EVRT_F32, or EVRT_I8: INT8 attention (above) */
    float attn_scale[4];             /* for EVRT_I8 attention: q_scale, k_scale, v_scale,
                                        p_scale (q ~ sq(q) * q_scale, ...) */
    const float *ln1_w, *ln1_b;      /* (D) */
    struct evrt_linear qkv;          /* D -> 3I, rows q | k | v, each head-major */
    struct evrt_linear proj;         /* I -> D */
    const float *ln2_w, *ln2_b;      /* (D) */
    struct evrt_linear fc1;          /* D -> mlp */
    struct evrt_linear fc2;          /* mlp -> D */
    int merge_r;                     /* tokens Token Merging removes after this
                                        block's attention (0: none; ignored in
                                        the last block; head_dim <= 512 where
                                        it merges); at most
                                        ceil(T_l / 2) - 1 of its T_l tokens */
};

#define EVRT_MAX_CHANNELS 4

/* What the model computes from its last block (above). */
enum evrt_head {
    EVRT_HEAD_CLASS = 0,      /* logits of the class token: evrt_infer */
    EVRT_HEAD_SEG_LINEAR = 1, /* logits of every patch token: evrt_infer_seg */
    EVRT_HEAD_SEG_MLP = 2     /* SegFormer's all-MLP decoder over several
                                 blocks' patch tokens (struct evrt_decoder):
                                 per-patch logits, evrt_infer_seg */
};

#define EVRT_MAX_LEVELS 4

/* The all-MLP decoder of head EVRT_HEAD_SEG_MLP (SegFormer, Xie et al.
 * 2021, on a plain ViT: every level has the same patch grid, so nothing is
 * upsampled before the fuse), reading the outputs x_{l_i} (the residual
 * stream after the block's MLP add) of L blocks l_0 < ... < l_{L-1} =
 * depth - 1, on the patch tokens alone (N = (img_size/patch)^2 rows per
 * image):
 *
 *   f_i    = LN_i(x_{l_i}[:, 1:])          (N, D)  LN_{L-1} is the final norm
 *   e_i    = linear_c[i](f_i)              (N, C)
 *   u      = ReLU(fuse([e_0 | ... | e_{L-1}]))   (N, C), ReLU(x) = x > 0 ? x : 0
 *   logits = head(u)                        (N, K)  (the model's head is C -> K)
 *
 * Each linear is a layer like any other (numbered after the head, below),
 * float32 or INT8; LayerNorm, the concatenation and the ReLU stay float32. */
struct evrt_decoder {
    int dim;                         /* C */
    int levels;                      /* L, 1 to EVRT_MAX_LEVELS */
    int level[EVRT_MAX_LEVELS];      /* the blocks l_i, 0-based, strictly
                                        increasing, the last depth - 1 */
    const float *norm_w[EVRT_MAX_LEVELS], *norm_b[EVRT_MAX_LEVELS];
                                     /* (D) LN_i for i < L - 1; the last
                                        level's is norm_w, norm_b of the model
                                        (these two entries are not read) */
    struct evrt_linear linear_c[EVRT_MAX_LEVELS]; /* D -> C, i < L */
    struct evrt_linear fuse;         /* L*C -> C, its input [e_0 | ... | e_{L-1}] */
};

struct evrt_model {
    int img_size, channels, patch; /* square images, patch divides img_size */
    int dim, depth, classes;
    float mean[EVRT_MAX_CHANNELS], std[EVRT_MAX_CHANNELS]; /* on pixel/255 */
    struct evrt_linear patch_embed; /* C*P*P -> D, column c*P*P + py*P + px
                                       (a flattened PyTorch conv weight) */
    const float *cls_token;         /* (D) */
    const float *pos_embed;         /* (1 + (img_size/patch)^2, D) */
    struct evrt_block *blocks;      /* (depth) */
    const float *norm_w, *norm_b;   /* (D) final LayerNorm */
    struct evrt_linear head;        /* D -> classes; C -> classes for
                                       EVRT_HEAD_SEG_MLP */
    int head_kind;                  /* enum evrt_head; 0 (the class head)
                                       when the struct is zeroed */
    struct evrt_decoder *decoder;   /* EVRT_HEAD_SEG_MLP's decoder (must
                                       outlive contexts, like blocks); not
                                       read for the other heads */
};

/* Linear layers are numbered: 0 the patch embedding, 1 + 4l + {0 qkv,
 * 1 proj, 2 fc1, 3 fc2} for block l, 1 + 4 depth the head (execution order
 * so far); then, for EVRT_HEAD_SEG_MLP only, 2 + 4 depth + i for the
 * decoder's linear_c[i] (i < L) and 2 + 4 depth + L for its fuse layer,
 * appended so that every other layer keeps its number (in execution they
 * come before the head: linear_c[i] after block l_i, the fuse layer after
 * the last block).  2 + 4 depth layers, plus L + 1 for the decoder. */
int evrt_layer_count(const struct evrt_model *m);
/* The layer with that number (NULL when out of range). */
struct evrt_linear *evrt_model_layer(const struct evrt_model *m, int layer);
/* Its timm name without ".weight": "patch_embed.proj", "blocks.0.attn.qkv",
 * "blocks.0.mlp.fc2", "head", "decode_head.linear_c.0",
 * "decode_head.linear_fuse".  Returns buf. */
const char *evrt_layer_name(const struct evrt_model *m, int layer, char *buf, size_t n);

/* Tokens T = 1 + (img_size / patch)^2. */
int evrt_model_tokens(const struct evrt_model *m);
/* Tokens entering block l (0 <= l < depth): T minus the merge_r of the
 * blocks before it. */
int evrt_model_tokens_at(const struct evrt_model *m, int l);
/* The seg_mlp decoder level that reads block l's output, or -1 (none, or
 * no seg_mlp decoder). */
int evrt_model_level_of(const struct evrt_model *m, int l);
/* Floats of output per image: classes for the class head, (T - 1) *
 * classes (per patch) for a segmentation head (either). */
size_t evrt_model_outputs(const struct evrt_model *m);
/* Bytes of every tensor at its stored precision: int8 weights plus their
 * float scales for EVRT_I8 layers, float32 for everything else (the
 * decoder's LayerNorms and layers included), plus the two
 * activation-quantization numbers of each EVRT_I8 layer. */
size_t evrt_model_bytes(const struct evrt_model *m);
/* Checks shapes and that every tensor the dtypes need is present (for
 * EVRT_HEAD_SEG_MLP: the decoder, its levels and its LayerNorms too); on
 * failure writes a message to err (err_n bytes, may be 0) and returns
 * EVRT_EINVAL. */
int evrt_model_check(const struct evrt_model *m, char *err, size_t err_n);

typedef struct evrt_ctx evrt_ctx;

/* Called before each linear layer with its float input (phase
 * EVRT_OBSERVE_INPUT, cols = in) and after it with its float output
 * (EVRT_OBSERVE_OUTPUT, cols = out); rows is B*T_l in block l (the tokens
 * entering it, evrt_model_tokens_at; B*T_{l+1} from fc1 on when it
 * merges), B*(T-1) for the patch embedding, or B in the last block after
 * attention and in the head; a segmentation model's last block has B*T
 * rows throughout and its head B*(T-1), the patch tokens, as have the
 * decoder's layers (EVRT_HEAD_SEG_MLP; the head's input is then u, after
 * the ReLU). */
enum { EVRT_OBSERVE_INPUT = 0, EVRT_OBSERVE_OUTPUT = 1 };
typedef void (*evrt_observer_fn)(void *user, int layer, int phase, const float *x /* (rows, cols) */,
                                 int rows, int cols);

/* Checks the model and allocates working memory for up to max_batch images,
 * and packs every linear layer's weights, at the dtype it has now, into the
 * kernels' panel layout (a copy the context holds).
 * The model struct, its block array and every tensor must outlive the
 * context; the caller may change dtypes, scales and tensor pointers between
 * calls (evrt_infer checks them again; a new pointer is repacked in place, a
 * layer whose dtype changed runs slower unpacked kernels) but not shapes,
 * nor the contents of weights in place (packed copies and per-channel
 * weight sums are cached per w / wq pointer).  Sqlite-style: on a
 * bad model *ctx is still a context whose evrt_ctx_error() says what is
 * wrong (destroy it); only EVRT_ENOMEM leaves *ctx NULL. */
int evrt_ctx_create(evrt_ctx **ctx, const struct evrt_model *m, int max_batch);
void evrt_ctx_destroy(evrt_ctx *ctx);
const char *evrt_ctx_error(const evrt_ctx *ctx);
int evrt_ctx_max_batch(const evrt_ctx *ctx);
/* Bytes of working memory the context holds, packed weights included. */
size_t evrt_ctx_bytes(const evrt_ctx *ctx);

/* Threads for evrt_infer, the caller's included (default 1): a persistent
 * pool started here, outside inference.  Each parallel step (two or three
 * per linear layer and attention, one per LayerNorm) is cut into units of
 * rows, output channels or attention queries that the threads claim one
 * at a time, so on a loaded machine a thread the kernel deschedules holds
 * up only the unit it is computing; waiting threads poll for about 50
 * microseconds, then sleep and give their core away; after a stall (a
 * worker descheduled inside a unit) work goes to half as many threads for
 * a back-off of 10 ms to 1 s; after a second stall in a row, more
 * threads are tried again only when
 * the machine's idle time plus this process's CPU time since the stall
 * (Linux /proc/stat, windows of at least 0.25 s) show the cores for them,
 * so a steady competing load costs no further stalls.  Every output
 * element is computed by the same code whichever thread takes its unit,
 * so logits are bit-identical for any count and any scheduling.  More
 * threads than CPUs online start only as many (the rest would only take
 * turns on the same cores), unless the environment has
 * EVRT_OVERSUBSCRIBE=1; evrt_ctx_threads still says n.
 * Returns EVRT_OK, EVRT_EINVAL (n outside [1, 256]) or EVRT_ENOMEM. */
int evrt_ctx_set_threads(evrt_ctx *ctx, int n);
int evrt_ctx_threads(const evrt_ctx *ctx);

/* Kernel variant: "ref" (the plain C kernels: the exact pre-SIMD float
 * path), "avx2", "avx512vnni", "amx" (avx512vnni with the linear layers
 * on AMX tiles, where Linux grants them), "neon", "dotprod" or "best" (the default:
 * the fastest the CPU runs, checked at run time; environment variable
 * EVRT_KERNELS overrides it at create).  Every variant gives INT8 linear
 * outputs bit-identical to the _ref kernels; the others also use a
 * rational erf in GELU and a polynomial exp in softmax (relative errors
 * below 1e-6) and fused multiply-adds in float32 matmuls.  EVRT_EINVAL when
 * the name is unknown or the CPU lacks it. */
int evrt_ctx_set_kernels(evrt_ctx *ctx, const char *name);
const char *evrt_ctx_kernels(const evrt_ctx *ctx);

/* fn NULL removes the observer. */
void evrt_set_observer(evrt_ctx *ctx, evrt_observer_fn fn, void *user);
/* During an observer's call on a layer of block l: the proportional
 * attention bias b (B, T_l) of that block's keys (Token Merging, above),
 * or NULL when no token has merged before the block. */
const float *evrt_ctx_attention_bias(const evrt_ctx *ctx);

/* Logits of B images, 1 <= B <= max_batch, for a class head
 * (EVRT_EINVAL for a segmentation model: evrt_infer_seg). */
int evrt_infer(evrt_ctx *ctx, const uint8_t *images /* (B, H, W, C) */, int B,
               float *logits /* (B, classes) */);

/* A segmentation model (head_kind EVRT_HEAD_SEG_LINEAR or
 * EVRT_HEAD_SEG_MLP) on B images: any of
 * the three outputs may be NULL (not all): the per-patch logits z, the
 * per-pixel scores (the decoder's upsampling, above) and the mask (its
 * argmax; classes <= 256).  Scores take B * img_size^2 * classes floats;
 * the mask alone is made a few rows at a time without them (a 512x512
 * frame of 14 classes would need 14.7 MB of scores).  EVRT_EINVAL for a
 * class head. */
int evrt_infer_seg(evrt_ctx *ctx, const uint8_t *images /* (B, H, W, C) */, int B,
                   float *logits /* (B, G*G, classes) or NULL */,
                   float *scores /* (B, H, W, classes) or NULL */, uint8_t *mask /* (B, H, W) or NULL */);

/* The decoder's specification (above) on one image's per-patch logits:
 * output rows [y0, y1) of the S x S image, scores and mask each optional. */
void evrt_seg_decode_ref(float *scores /* (y1 - y0, S, K) or NULL */, uint8_t *mask /* (y1 - y0, S) or NULL */,
                         const float *z /* (G, G, K) */, int G, int K, int S, int y0, int y1);

/* ---- reference kernels: the exact specification of the integer path ---- */

/* y = x w^T + b in float32 (eight partial sums over i mod 8, then added
 * pairwise; the float path is not bit-specified, only the integer one). */
void evrt_linear_f32_ref(float *y /* (N, O) */, const float *x /* (N, I) */,
                         const float *w /* (O, I) */, const float *b /* (O) or NULL */,
                         int N, int I, int O);

/* xq = clamp(rint(x * (1.0f / scale)) + zero, -128, 127), ties to even;
 * NaN maps to zero. */
void evrt_quantize_act_ref(int8_t *xq /* (n) */, const float *x /* (n) */, size_t n, float scale,
                           int32_t zero);

/* y[r, o] = (float)acc * (x_scale * w_scale[o]) + b[o],
 * acc = sum_i (xq[r, i] - x_zero) * wq[o, i] in int32 (I <= 65536 keeps it
 * exact: |acc| <= 255 * 127 * I < 2^31). */
void evrt_linear_i8_ref(float *y /* (N, O) */, const int8_t *xq /* (N, I) */, int32_t x_zero,
                        float x_scale, const int8_t *wq /* (O, I) */,
                        const float *w_scale /* (O) */, const float *b /* (O) or NULL */,
                        int N, int I, int O);

/* INT8 attention as specified above, for the first nq tokens as queries
 * (nq = T, or 1 in the last block); scales = {q, k, v, p}; scratch of
 * evrt_attention_i8_scratch(T, d) bytes. */
void evrt_attention_i8_ref(float *out /* (B, nq, H*d) */, void *scratch,
                           const float *qkv /* (B, T, 3*H*d) */, int B, int T, int nq, int H,
                           int d, const float *scales /* (4) */);
/* The same with proportional attention's bias b (Token Merging); b NULL:
 * evrt_attention_i8_ref. */
void evrt_attention_i8_bias_ref(float *out /* (B, nq, H*d) */, void *scratch,
                                const float *qkv /* (B, T, 3*H*d) */, const float *b /* (B, T) */,
                                int B, int T, int nq, int H, int d, const float *scales /* (4) */);
size_t evrt_attention_i8_scratch(int T, int d);

/* Symmetric per-output-channel weights: scale[o] = max_i |w[o, i]| / 127,
 * wq = clamp(rint(w / scale[o]), -127, 127).  An all-zero row gets scale
 * 1 and zeros (no division by zero). */
void evrt_quantize_weights_ref(int8_t *wq /* (O, I) */, float *scale /* (O) */,
                               const float *w /* (O, I) */, int O, int I);

/* ==== Model files (.evit) ============ file.c, file.h; docs/FORMAT.md ====
 *
 * One flat file that evrt_open maps read-only and runs in place: every
 * tensor lies at a 64-byte aligned offset, so struct evrt_model points into
 * the mapping (llama2.c style).  Little-endian throughout; offsets from the
 * start of the file; u32/i32/f32/u64 are 4/4/4/8 bytes.
 *
 *   offset  size  field
 *   0       8     magic "EVITMODL"
 *   8       4     u32 format version: 1; 2 when some block has INT8
 *                 attention; 3 when the model merges tokens (a merge_r
 *                 tensor); 4 when its head is not the class head; 5 when
 *                 it is seg_mlp (the decoder entry below); the writer
 *                 uses the lowest that holds the model, and this runtime
 *                 reads all five
 *   12      4     u32 endianness marker 0x01020304 (bytes 04 03 02 01)
 *   16      4     u32 header_bytes H: bytes [0, H) are the header; a
 *                 multiple of 64
 *   20      4     u32 CRC-32 (IEEE, as zlib) of bytes [0, H), this field
 *                 counted as 0
 *   24      8     u64 file_bytes: the file's exact size
 *   32      4     u32 n_tensors, the entries of the tensor table
 *   36      4     u32 string_bytes S, the string area's size
 *   40      4     u32 n_class_names: 0 or classes
 *   44      4     u32 source kind (lineage): 0 unknown, 1 float checkpoint,
 *                 2 quantized model
 *   48      8     u64 FNV-1a 64 of the source model file's bytes (lineage)
 *   56      8     u64 FNV-1a 64 of the quantize config JSON, 0 if unknown
 *   64      24    i32 img_size, channels (1..4), patch, dim, depth, classes
 *   88      16    f32 mean[4] \ per channel on pixel/255, unused channels 0;
 *   104     16    f32 std[4]  / std > 0
 *   120     4     u32 head (enum evrt_head): 0 class, 1 seg_linear (a
 *                 segmentation model, from version 4), 2 seg_mlp (from
 *                 version 5)
 *   124     4     zero
 *   128     16*depth       blocks: u32 heads, head_dim, mlp, attention dtype
 *                 (0 float32, 1 int8: version 2 only)
 *   then    32             the decoder entry, for head 2 only (absent
 *                 otherwise): +0 u32 C (1..65536), +4 u32 L (1..4),
 *                 +8 u32 level[4] (blocks l_0 < ... < l_{L-1} = depth - 1;
 *                 the entries past L zero), +24 u32 0, +28 u32 0
 *   then    16*n_layers    linear layers in evrt_model_layer order
 *                 (n_layers = evrt_layer_count: 2 + 4 depth, plus L + 1
 *                 for head 2, its linear_c[i] and fuse after the head):
 *                 u32 dtype (enum evrt_dtype), f32 in_scale, i32 in_zero, 0
 *   then    96*n_tensors   tensor table:
 *                 +0 char name[48], NUL-terminated, zero-padded
 *                 +48 u32 dtype (0 float32, 1 int8, 2 int32)
 *                 +52 u32 ndim (1..4)  +56 u32 shape[4] (unused dims 0)
 *                 +72 u64 offset (multiple of 64, >= H)
 *                 +80 u64 bytes (= product of shape * element size)
 *                 +88 u32 CRC-32 of the tensor's bytes  +92 u32 0
 *   then    S     strings: the model name, then n_class_names class names,
 *                 each NUL-terminated (exactly 1 + n_class_names NULs)
 *   then    zeros up to H
 *   H...          tensors, in table order, ascending and not overlapping,
 *                 zero padding between them; file_bytes ends the last one
 *
 * Tensor names and shapes (D dim, T tokens, layer X one of patch_embed.proj,
 * blocks.L.attn.qkv, blocks.L.attn.proj, blocks.L.mlp.fc1, blocks.L.mlp.fc2,
 * head, and for head 2 decode_head.linear_c.I (I < L; (C, D)) and
 * decode_head.linear_fuse ((C, L C); the head is then (classes, C)), with
 * (out, in) from the config and the decoder entry):
 *   cls_token (D), pos_embed (T, D), blocks.L.norm1.weight / .bias (D),
 *   blocks.L.norm2.weight / .bias (D), norm.weight / norm.bias (D);
 *   X.weight float32 (out, in) for a float32 layer, X.weight_int8 int8
 *   (out, in) and X.weight_scale float32 (out) for an int8 layer; X.bias
 *   float32 (out), optional; blocks.L.attn.act_scale float32 (4), the
 *   q, k, v, p scales of a block with INT8 attention; merge_r int32 (depth),
 *   Token Merging's schedule (version 3, optional: none is all zeros);
 *   for head 2, decode_head.norms.I.weight / .bias float32 (D) for
 *   I < L - 1 (the last level's LayerNorm is norm.weight / norm.bias).
 *   No other tensor, none twice.  float32
 *   tensors must be finite.
 *
 * The loader checks all of it before use and never reads outside the
 * buffer: a bad file is an error code and a message, never a crash. */

#define EVRT_EIO (-3)     /* the file cannot be opened or read */
#define EVRT_EFORMAT (-4) /* not a valid model file */
#define EVRT_ECRC (-5)    /* a checksum does not match: damaged file */

enum evrt_source { EVRT_SOURCE_UNKNOWN = 0, EVRT_SOURCE_FLOAT = 1, EVRT_SOURCE_QUANTIZED = 2 };

struct evrt_lineage {
    uint32_t source_kind; /* enum evrt_source */
    uint64_t source_fnv;  /* FNV-1a 64 of the source model file */
    uint64_t config_fnv;  /* FNV-1a 64 of the quantize config, 0 if unknown */
};

typedef struct evrt_file evrt_file;

/* Maps path read-only (reads it into memory where mmap is unavailable or
 * fails) and checks it.  On failure *f is NULL, err holds a message (err_n
 * bytes, may be 0) and the code is EVRT_EIO, EVRT_EFORMAT, EVRT_ECRC or
 * EVRT_ENOMEM. */
int evrt_open(evrt_file **f, const char *path, char *err, size_t err_n);
/* The same on len bytes at buf, which must outlive the handle when it is
 * 64-byte aligned (used in place); otherwise it is copied once. */
int evrt_open_memory(evrt_file **f, const void *buf, size_t len, char *err, size_t err_n);
void evrt_close(evrt_file *f);

/* The model, ready for evrt_ctx_create; valid until evrt_close. */
const struct evrt_model *evrt_file_model(const evrt_file *f);
const char *evrt_file_name(const evrt_file *f);
/* Class k's name, or NULL when the file has none. */
const char *evrt_file_class_name(const evrt_file *f, int k);
/* The model's input and output without struct evrt_model (for bindings
 * such as python/evrt.py): evrt_infer takes img_size x img_size images of
 * channels bytes a pixel and gives classes logits each.  Any pointer may be
 * NULL.  Returns the bytes of one image, img_size^2 * channels. */
size_t evrt_file_input(const evrt_file *f, int *img_size, int *channels, int *classes);
/* The model's head (enum evrt_head): EVRT_HEAD_CLASS, whose logits come
 * from evrt_infer, or EVRT_HEAD_SEG_LINEAR or EVRT_HEAD_SEG_MLP, whose
 * per-patch logits, scores and mask come from evrt_infer_seg (for
 * bindings, as evrt_file_input). */
int evrt_file_head(const evrt_file *f);
const struct evrt_lineage *evrt_file_lineage(const evrt_file *f);
/* Bytes mapped or held for the file. */
size_t evrt_file_bytes(const evrt_file *f);
/* evrt_ctx_create on evrt_file_model(f), for a device short of memory:
 * where f maps its file, each layer's weights are handed back to the kernel
 * once the context has packed them for its kernels (inference reads only
 * the packed copy), so they are not resident twice; they are read from the
 * file again if they are ever needed (another evrt_ctx_set_kernels).  f must
 * outlive the context. */
int evrt_ctx_create_file(evrt_ctx **ctx, const evrt_file *f, int max_batch);

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320, as zlib's crc32): pass 0 first,
 * then the previous value to continue. */
uint32_t evrt_crc32(uint32_t crc, const void *data, size_t n);
/* ==== end of model files ==== */

#endif
