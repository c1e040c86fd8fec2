/* logits.h: a model's logits over a dataset, saved for distillation.
 *
 * Layout (docs/FORMATS.md):
 *   /logits  float32 (N, K), in dataset order
 * or, sparse (TinyViT style), instead of /logits:
 *   /topk/indices int32 (N, k)   the k classes kept per image, distinct
 *   /topk/values  float32 (N, k) their probabilities (softmax at T = 1);
 *                 the missing mass 1 - sum is spread evenly over the other
 *                 K - k classes
 *   attributes on "/": format = "evit-logits", format_version = 1,
 *     count (N), num_classes (K), label_fingerprint (string, 16 hex digits:
 *     FNV-1a 64 over the labels as little-endian int32), and optionally
 *     dataset, model (paths they came from) and top1 (percent, the model's
 *     accuracy on that dataset).
 * Version 2 adds the teacher's logits of augmented views (evit-eval
 * --augment, TinyViT-style consistent distillation), for E epochs:
 *   /views/logits float32 (E, N, K), dense, or
 *   /views/topk/indices uint8 (E, N, k) (uint16 when K > 256) and
 *   /views/topk/values uint16 (E, N, k): round(p * 65535) of the softmax
 *   attributes views (E), views_topk (k, 0 dense), views_seed (16 hex
 *     digits), views_crop_padding, views_hflip, views_scheme (text), and
 *     with random erasing views_erase (float64 [prob, area lo, area hi,
 *     ratio lo, ratio hi]; absent: no erasing)
 * view e of image i being evit_augment_view(seed, e, i) (augment.h).
 * Version 3 holds a segmentation model's per-patch logits instead:
 *   /logits float32 (N, g*g, K), dense, the patches in row-major order
 *   attribute grid (g, the model's patch grid side); label_fingerprint is
 *   then the dataset's (its masks', dataset.h); no top-k.
 * Version 4 is version 3 with views of every patch, top-k only (dense
 * would be E N g^2 K floats) and without erasing:
 *   /views/topk/indices uint8 (E, N, g*g, k) (uint16 when K > 256) and
 *   /views/topk/values uint16 (E, N, g*g, k), the attributes as version 2's.
 *   They are read one epoch at a time (an HDF5 hyperslab) and kept as
 *   their top-k; evit_logits_view_rows rebuilds an image's rows when asked.
 * Ownership: evit_logits_load fills a struct released by evit_logits_free. */
#ifndef EVIT_LOGITS_H
#define EVIT_LOGITS_H

#include <stdint.h>

#include "augment.h"

struct evit_dataset;

#define EVIT_LOGITS_VERSION 4 /* the newest read; files without views are written as 1, with a grid as 3,
                                 with a grid and views as 4 */

/* The teacher's logits of augmented views. */
struct evit_logit_views {
    int epochs;        /* E; 0 when the file has none */
    int topk;          /* k kept per view; 0 dense */
    uint64_t seed;     /* the augmentation's seed */
    struct evit_augment_config aug; /* the augmentation they were made with */
    float *logits;     /* (E, n, k): logits, or log-probabilities rebuilt from the top-k;
                          NULL for a segmentation model's views, which stay compact: */
    char *path;        /* the file, read again for another epoch */
    int held;          /* the epoch in idx and val (-1: none) */
    uint16_t *idx;     /* (n, g*g, topk) that epoch's classes, by decreasing probability */
    uint16_t *val;     /* (n, g*g, topk) their round(p * 65535) */
};

struct evit_logits {
    int n, k;
    int grid;      /* 0: one row per image; g: a segmentation model's g*g patches */
    float *logits; /* (n, k), or (n, g*g, k) with a grid; for a sparse file,
                      log-probabilities rebuilt from the top-k, which
                      softmax(./T) treats as logits */
    int topk;      /* k of a sparse file, 0 for dense */
    uint64_t fingerprint;
    char *dataset; /* may be NULL */
    char *model;   /* may be NULL */
    double top1;   /* NaN when unknown */
    struct evit_logit_views views;
};

int evit_logits_save(const char *path, const float *logits /* (n, k) */, int n, int k,
                     uint64_t fingerprint, const char *dataset, const char *model, double top1);

/* The same plus E views: views (E, n, k) dense logits, kept dense
 * (topk 0) or as their top-k probabilities; *bytes_per_view receives the
 * storage of one image's view. */
int evit_logits_save_views(const char *path, const float *logits /* (n, k) */, int n, int k,
                           uint64_t fingerprint, const char *dataset, const char *model, double top1,
                           const float *views /* (E, n, k) */, const struct evit_logit_views *v,
                           double *bytes_per_view);

/* A segmentation model's per-patch logits (n, g*g, k), version 3. */
int evit_logits_save_grid(const char *path, const float *logits /* (n, g*g, k) */, int n, int g, int k,
                          uint64_t fingerprint, const char *dataset, const char *model);

/* Fills out (n, g*g, k) with the model's per-patch logits of view e of
 * every image (evit_augment_view(seed, e, i)); EVIT_ERR after an error
 * line. */
typedef int (*evit_logits_view_fn)(void *ctx, int e, float *out);

/* The same plus v->epochs views (version 4), top-k only (1 <= v->topk <= k)
 * and without erasing: fn gives each epoch's dense logits in turn, which
 * are cut to their top-k and written before the next, so memory holds one
 * epoch whatever v->epochs.  *bytes_per_view receives one image's view
 * (g*g patches of 3 bytes per class kept, 4 above 256 classes). */
int evit_logits_save_grid_views(const char *path, const float *logits /* (n, g*g, k) */, int n, int g, int k,
                                uint64_t fingerprint, const char *dataset, const char *model,
                                const struct evit_logit_views *v, evit_logits_view_fn fn, void *ctx,
                                double *bytes_per_view);

/* Reads and checks the file.  A segmentation model's views are checked
 * epoch by epoch (indices in range and distinct, values summing to at most
 * 1) and only one epoch's top-k is kept. */
int evit_logits_load(const char *path, struct evit_logits *out);

/* A segmentation model's view e of image i (0 <= e < views.epochs): its
 * log-probabilities per patch, rebuilt from the top-k as for a top-k file
 * (the missing mass spread evenly, floored at 1e-8), which softmax(./T)
 * treats as logits.  Reads and checks epoch e from the file when another
 * is held (EVIT_ERR after an error line). */
int evit_logits_view_rows(struct evit_logits *l, int e, int i, float *out /* (g*g, k) */);

/* Refuses a logits file that does not belong to the dataset: count, class
 * count and label fingerprint must all agree. */
int evit_logits_check(const struct evit_logits *l, const char *lpath,
                      const struct evit_dataset *d, const char *dpath);

void evit_logits_free(struct evit_logits *l);

#endif
