/* config.h: the shape of a Vision Transformer, as data.
 *
 * Everything that sizes a model lives here, including the per-block head
 * count, head dim and MLP width, so that a pruned model (block 0 with 3 heads
 * and 200 hidden channels, block 1 with 4 heads and 256) is described exactly
 * like an unpruned one.
 *
 * JSON form (configs/models/NAME.json), all keys checked strictly:
 *   { "name": "fm-tiny", "img_size": 28, "channels": 1, "patch": 4,
 *     "num_classes": 10, "embed_dim": 64, "depth": 4,
 *     "num_heads": 4, "head_dim": 16, "mlp_hidden": 256,
 *     "merge_r": 0, "head": "class",
 *     "blocks": [ {"num_heads": 3, "head_dim": 16, "mlp_hidden": 200, "merge_r": 8}, ... ] }
 * head_dim defaults to embed_dim / num_heads; "blocks", when present, has one
 * entry per block and overrides num_heads / head_dim / mlp_hidden / merge_r
 * there.  merge_r (default 0) is Token Merging's schedule (model/merge.h):
 * the tokens a block merges after its attention, so block l + 1 sees
 * tokens(l) - merge_r(l); each r is at most what its tokens allow.
 * head (default "class") is what the model computes from the last block
 * (the task is data, like the widths): "class", timm's linear head on the
 * class token, logits (K) per image; "seg_linear", Segmenter's linear
 * decoder, the same (K, D) linear on every patch token after the final
 * norm, logits (N, K) per image in patch order, which a consumer upsamples
 * to pixels (ops.h, evit_upsample_forward); "seg_mlp", SegFormer's
 * all-MLP decoder over the patch tokens of several blocks (vit.h), the
 * same (N, K) logits.  A segmentation head reads every token's position,
 * so it does not merge tokens.
 *
 * seg_mlp only (an error with any other head):
 *   "decoder_dim": C, the decoder's width (default embed_dim / 2, at least 1);
 *   "decoder_levels": the blocks (0-based) whose outputs it reads, 1 to 4 of
 *   them, strictly increasing, the last depth - 1 (default: min(4, depth)
 *   evenly spaced, (i + 1) * depth / L - 1: depth 12 gives 2, 5, 8, 11,
 *   depth 4 every block). */
#ifndef EVIT_CONFIG_H
#define EVIT_CONFIG_H

#include <cJSON.h>

#define EVIT_MAX_DEPTH 64
#define EVIT_NAME_MAX 64

struct evit_block_shape {
    int heads;    /* attention heads kept in this block */
    int head_dim; /* width of one head; qkv has 3 * heads * head_dim rows */
    int mlp;      /* MLP hidden width (fc1 rows, fc2 columns) */
    int merge_r;  /* tokens merged after this block's attention (ToMe), 0 none */
};

enum evit_head { EVIT_HEAD_CLASS = 0, EVIT_HEAD_SEG_LINEAR = 1, EVIT_HEAD_SEG_MLP = 2 };
#define EVIT_HEAD_BIT(h) (1u << (h))
/* The heads that are one linear layer on the final norm: what the ONNX
 * export takes so far. */
#define EVIT_HEADS_LINEAR (EVIT_HEAD_BIT(EVIT_HEAD_CLASS) | EVIT_HEAD_BIT(EVIT_HEAD_SEG_LINEAR))
#define EVIT_HEADS_ALL (EVIT_HEADS_LINEAR | EVIT_HEAD_BIT(EVIT_HEAD_SEG_MLP))
/* What libevrt runs (seg_mlp's decoder included): what evit-quantize, the
 * .evit export and the quantized model file take. */
#define EVIT_HEADS_RUNTIME EVIT_HEADS_ALL
#define EVIT_DECODER_MAX_LEVELS 4

struct evit_vit_config {
    char name[EVIT_NAME_MAX];
    int img_size; /* square input, pixels */
    int channels;
    int patch;    /* conv kernel = stride */
    int classes;
    int dim;      /* embedding width D */
    int depth;
    struct evit_block_shape blocks[EVIT_MAX_DEPTH];
    int head;     /* enum evit_head */
    /* seg_mlp's decoder (all 0 for the other heads): its width C and the
     * blocks whose outputs it reads, increasing, the last depth - 1 */
    int decoder_dim;
    int decoder_nlevels;
    int decoder_levels[EVIT_DECODER_MAX_LEVELS];
};

/* Derived sizes. */
int evit_config_grid(const struct evit_vit_config *c);    /* img_size / patch */
int evit_config_patches(const struct evit_vit_config *c); /* grid^2 */
int evit_config_tokens(const struct evit_vit_config *c);  /* patches + 1 (class token) */
int evit_config_patch_in(const struct evit_vit_config *c);/* channels * patch^2 */
int evit_config_inner(const struct evit_vit_config *c, int l); /* heads * head_dim */
/* Tokens entering block l (l = depth: leaving the last), after the merges
 * of the blocks before it. */
int evit_config_tokens_at(const struct evit_vit_config *c, int l);
/* 1 when some block merges tokens. */
int evit_config_merges(const struct evit_vit_config *c);
/* Rows of logits per image: 1 (class head) or the patches (segmentation). */
int evit_config_head_rows(const struct evit_vit_config *c);
/* "class", "seg_linear" or "seg_mlp". */
const char *evit_config_head_name(int head);
/* The head named s, or -1. */
int evit_config_head_parse(const char *s);

/* seg_mlp's defaults for c's shape (header comment): sets decoder_dim
 * and the levels. */
void evit_config_decoder_defaults(struct evit_vit_config *c);
/* The blocks whose patch tokens the head reads into levels (up to
 * EVIT_DECODER_MAX_LEVELS), returning their count: none for the class
 * head, the last block for seg_linear, decoder_levels for seg_mlp. */
int evit_config_levels(const struct evit_vit_config *c, int *levels);

/* Checks every invariant (positive sizes, patch divides image, depth bound).
 * where names the source in the message ("fm.json", "model.h5"). */
int evit_config_validate(const struct evit_vit_config *c, const char *where);

/* From a parsed JSON object (whole file or an inline "model" member). */
int evit_config_from_json(const cJSON *obj, const char *file, const char *where,
                          struct evit_vit_config *out);

/* Loads configs/models/<name>.json when arg has no '/' and no ".json",
 * otherwise the file arg itself. */
int evit_config_load(const char *arg, struct evit_vit_config *out);

/* JSON with the per-block "blocks" array always written out. Caller deletes. */
cJSON *evit_config_to_json(const struct evit_vit_config *c);

/* Parameters, multiply-adds of one forward pass per image, times 2. */
long evit_config_params(const struct evit_vit_config *c);
double evit_config_mflops(const struct evit_vit_config *c);

#endif
