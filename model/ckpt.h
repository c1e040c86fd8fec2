/* ckpt.h: model checkpoints in HDF5, readable from PyTorch as a timm
 * state_dict.
 *
 * Layout (docs/FORMATS.md):
 *   one float32 dataset per parameter, named by its timm key with dots as
 *   groups: "blocks.0.attn.qkv.weight" is /blocks/0/attn/qkv/weight, in
 *   PyTorch shape (linear weights (out, in), patch_embed.proj.weight
 *   (D, C, P, P), cls_token (1, 1, D), pos_embed (1, T, D)).
 *   attributes on "/": format = "evit-checkpoint", format_version = 1,
 *     name, img_size, channels, patch, num_classes, embed_dim, depth,
 *     num_heads (int32, depth), head_dim (int32, depth),
 *     mlp_hidden (int32, depth), mean and std (float32, channels),
 *     classes (strings, optional), stage (string), parent_report and
 *     report (strings, optional); head (string, absent for "class"),
 *     merge_r (int32, depth, only when some block merges), and for a
 *     seg_mlp head decoder_dim (int32) and decoder_levels (int32, L).
 * A file may hold more groups (an optimiser's state under /train/...);
 * loading ignores what it does not know. */
#ifndef EVIT_CKPT_H
#define EVIT_CKPT_H

#include <hdf5.h>

#include "vit.h"

#define EVIT_CKPT_VERSION 1

/* What a checkpoint carries besides the tensors. Strings are owned by the
 * struct after load (evit_ckpt_meta_free); on save they are only read. */
struct evit_ckpt_meta {
    const char *stage;         /* "init", "distill", "prune", ... */
    const char *parent_report; /* report of the model this one came from, or NULL */
    const char *report;        /* report describing this checkpoint, or NULL: the
                                  next stage names it as its parent */
    int classes;               /* number of names, 0 when absent */
    char **class_names;
};

/* Writes model + meta to a temporary file renamed into place. */
int evit_ckpt_save(const char *path, const struct evit_vit *m,
                   const struct evit_ckpt_meta *meta /* or NULL */);

/* Reads config attributes, allocates m, reads and shape-checks every tensor,
 * rejects NaN/Inf.  meta may be NULL.  A model whose head is not the class
 * head is refused in one line (the stages learn segmentation one by one:
 * docs/SEGMENT.md). */
int evit_ckpt_load(const char *path, struct evit_vit *m, struct evit_ckpt_meta *meta);
/* The same for the heads in the bit set heads (EVIT_HEAD_BIT,
 * EVIT_HEADS_LINEAR, EVIT_HEADS_ALL); any other head is refused in one
 * line naming the file, its head and the ones this stage takes. */
int evit_ckpt_load_heads(const char *path, struct evit_vit *m, struct evit_ckpt_meta *meta, unsigned heads);

/* The same, into / from an HDF5 file the caller opened, so a trainer can add
 * its own groups to a checkpoint before the file is closed and renamed. */
int evit_ckpt_write(hid_t f, const char *path, const struct evit_vit *m,
                    const struct evit_ckpt_meta *meta);
int evit_ckpt_read(hid_t f, const char *path, struct evit_vit *m, struct evit_ckpt_meta *meta);

/* The parts other model files share with checkpoints (evit-quantized):
 * the config attributes, mean/std and the meta attributes (stage defaults to
 * default_stage), without the format attribute or any tensor. */
int evit_ckpt_write_header(hid_t f, const char *path, const struct evit_vit *m,
                           const struct evit_ckpt_meta *meta, const char *default_stage);
/* The config attributes, validated (no format check). */
int evit_ckpt_read_config(hid_t f, const char *path, struct evit_vit_config *cfg);
/* mean/std into m (whose cfg is set) and, when meta is non-NULL, the meta
 * attributes (owned by meta afterwards). */
int evit_ckpt_read_meta(hid_t f, const char *path, struct evit_vit *m, struct evit_ckpt_meta *meta);

/* Reads only the config (for evit-data info and quick checks). */
int evit_ckpt_load_config(const char *path, struct evit_vit_config *cfg);

void evit_ckpt_meta_free(struct evit_ckpt_meta *meta);

#endif
