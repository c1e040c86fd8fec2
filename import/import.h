/* import.h: a timm VisionTransformer state_dict, read from safetensors, as
 * an evit model.
 *
 * The file's tensor names are timm's (the names evit's checkpoints use,
 * vit.h), so the mapping is the identity; what the file does not say is
 * inferred from shapes:
 *   patch_embed.proj.weight (D, C, P, P)  embed_dim, channels, patch
 *   pos_embed (1, 1 + g*g, D)             img_size = g * P
 *   blocks.L.*                            depth = number of blocks
 *   blocks.L.attn.qkv.weight (3*I, D)     I = heads * head_dim of block L
 *   blocks.L.mlp.fc1.weight (M, D)        mlp_hidden of block L
 *   head.weight (K, D)                    num_classes
 * The head count is not in the shapes (I = 192 is 3 heads of 64 or 12 of
 * 16), so it comes from the caller: one count for every block, or a model
 * config that must agree with the file in everything else.
 *
 * Variants of the architecture that evit does not compute (a distillation
 * token, layer scale, relative position bias, register tokens, ...) are
 * refused by name rather than silently dropped: dropping them would give a
 * model that loads and computes something else. */
#ifndef EVIT_IMPORT_H
#define EVIT_IMPORT_H

#include <stdint.h>

#include "config.h"
#include "safetensors.h"
#include "vit.h"

struct evit_import_opts {
    int heads;                            /* per block, or 0 */
    const struct evit_vit_config *config; /* or NULL; wins over heads */
    int num_classes;                      /* > 0: a new head of this size */
    uint64_t seed;                        /* for the new head */
    const char *name;                     /* model name, or NULL */
};

/* The model shape the tensors describe. */
int evit_import_config(struct evit_vit_config *cfg, const struct evit_safetensors *st, const char *where,
                       const struct evit_import_opts *o);

/* Allocates m with cfg and fills it from st: every tensor of the model must
 * be in the file with its PyTorch shape, and every tensor of the file must
 * be used (the head's, when num_classes replaces it, excepted).  A new head
 * is initialised as evit-init would (truncated normal, std 0.02).  mean/std
 * are set to 0.5 per channel; the caller overrides them. */
int evit_import_model(struct evit_vit *m, const struct evit_vit_config *cfg,
                      const struct evit_safetensors *st, const char *where,
                      const struct evit_import_opts *o);

#endif
