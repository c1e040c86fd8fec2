/* qmodel.h: quantized models (HDF5 format "evit-quantized", docs/FORMATS.md)
 * and the bridge from evit's float ViT to libevrt's model description.
 *
 * A qmodel holds a float ViT (struct evit_vit: LayerNorms, embeddings and
 * the weights of layers kept in float32), int8 weights and per-channel
 * scales for every linear layer, and the struct evrt_model that points into
 * both, so libevrt runs it without copies.  Whether a layer runs in int8 is
 * its rt layer's dtype (evrt_model_layer(&q->rt, i)->dtype).
 *
 * The struct points into itself (rt.blocks = blocks): never copy it. */
#ifndef EVIT_QMODEL_H
#define EVIT_QMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "evrt.h"
#include "vit.h"

#define EVIT_QMODEL_VERSION 2     /* the newest read */
#define EVIT_QMODEL_VERSION_ATT 2 /* the first with INT8 attention
                                     (blocks/L/attn/act_scale: q, k, v, p);
                                     files without it are written as 1 */

/* The geometry that struct evrt_model and struct evit_vit_config share,
 * copied from src to dst (either way round). */
#define EVIT_QMODEL_COPY_GEOMETRY(dst, src)                                                        \
    ((dst)->img_size = (src)->img_size, (dst)->channels = (src)->channels, (dst)->patch = (src)->patch, \
     (dst)->dim = (src)->dim, (dst)->depth = (src)->depth, (dst)->classes = (src)->classes)

/* The most linear layers a runtime model of evit's has: patch embedding,
 * four per block, head, and seg_mlp's linear_c per level and fuse layer
 * (evrt_layer_count); quantization entries add one per block. */
#define EVIT_QMODEL_MAX_LAYERS (2 + 4 * EVIT_MAX_DEPTH + EVIT_DECODER_MAX_LEVELS + 1)
#define EVIT_QMODEL_MAX_ENTRIES (EVIT_QMODEL_MAX_LAYERS + EVIT_MAX_DEPTH)

struct evit_qmodel {
    struct evit_vit vit; /* float parameters (owned after load) */
    int own_vit;
    struct evrt_model rt;
    struct evrt_block blocks[EVIT_MAX_DEPTH];
    struct evrt_decoder dec; /* rt.decoder for a seg_mlp head */
    int8_t *wq;     /* every linear's int8 weights, back to back */
    float *wscale;  /* every linear's per-channel scales */
    /* how it was calibrated (written to and read from the file) */
    char calibrator[32];
    double percentile;
    int symmetric;
};

/* A float32 runtime model on m's parameters (borrowed: m must outlive q),
 * with int8 weights and scales computed for every linear layer (symmetric
 * per channel, evrt_quantize_weights_ref) but every dtype EVRT_F32 and
 * activation scale 1, zero 0.  Calibration then sets scales and dtypes.
 * Every head maps (seg_mlp's decoder to rt.decoder, its layers numbered
 * after the head: evrt.h). */
void evit_qmodel_from_vit(struct evit_qmodel *q, const struct evit_vit *m);
/* Writes the model, meta (stage, report, parent, class names) and the
 * calibration fields to a temporary file renamed into place. */
int evit_qmodel_save(const char *path, const struct evit_qmodel *q,
                     const struct evit_ckpt_meta *meta /* or NULL */);

/* Reads and checks a quantized model; meta may be NULL. */
int evit_qmodel_load(const char *path, struct evit_qmodel *q, struct evit_ckpt_meta *meta);

void evit_qmodel_free(struct evit_qmodel *q);

/* 1 when path is an HDF5 file whose root attribute "format" is
 * "evit-quantized", else 0 (including unreadable files: the loader that
 * runs next reports those). */
int evit_qmodel_is_quantized(const char *path);

/* Number of EVRT_I8 layers. */
int evit_qmodel_int8_layers(const struct evit_qmodel *q);
/* Number of blocks with INT8 attention. */
int evit_qmodel_int8_attention(const struct evit_qmodel *q);

/* The runtime's head kind for a config's head (enum evit_head), and back. */
int evit_qmodel_head_kind(int head);
int evit_qmodel_config_head(int head_kind);
/* rt's logits of B images through ctx, whatever its head: (B, classes)
 * from evrt_infer, or a segmentation model's per-patch (B, N, classes)
 * from evrt_infer_seg (evrt_model_outputs floats an image). */
int evit_qmodel_infer(evrt_ctx *ctx, const struct evrt_model *rt, const uint8_t *images, int B, float *out);

/* Runs a qmodel through libevrt as an evit_forward_fn: one runtime context
 * per thread, each on its share of the batch (libevrt itself is
 * single-threaded). */
struct evit_qmodel_runner {
    evrt_ctx **ctx;
    int n, per;  /* contexts, images per context */
    int classes;      /* floats out per image: evrt_model_outputs */
    size_t img_bytes; /* H * W * C */
    const struct evrt_model *rt;
};
int evit_qmodel_runner_init(struct evit_qmodel_runner *r, const struct evit_qmodel *q,
                            int max_batch, int threads, const char *where);
void evit_qmodel_runner_free(struct evit_qmodel_runner *r);
void evit_qmodel_runner_forward(void *ctx, const uint8_t *images, int B, float *logits);

/* Batch-1 latency of rt through libevrt on one thread, the device's
 * measure (a segmentation model's up to its mask): n inferences on d's images in turn after 5 untimed ones;
 * ms[0..2] = median, mean, p99 in milliseconds.  path names rt in errors. */
struct evit_dataset;
int evit_qmodel_latency(const struct evrt_model *rt, const struct evit_dataset *d, int n, const char *path,
                        double ms[3]);

/* The same for a float ViT, through libevrt's float32 path. */
int evit_qmodel_vit_latency(const struct evit_vit *m, const struct evit_dataset *d, int n, const char *path,
                            double ms[3]);

#endif
