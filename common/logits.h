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
 *   then the dataset's (its masks', dataset.h); no top-k, no views.
 * Ownership: evit_logits_load fills a struct released by evit_logits_free. */
#ifndef EVIT_LOGITS_H
#define EVIT_LOGITS_H

#include <stdint.h>

#include "augment.h"

struct evit_dataset;

#define EVIT_LOGITS_VERSION 3 /* the newest read; files without views are written as 1, with a grid as 3 */

/* The teacher's logits of augmented views. */
struct evit_logit_views {
    int epochs;        /* E; 0 when the file has none */
    int topk;          /* k kept per view; 0 dense */
    uint64_t seed;     /* the augmentation's seed */
    struct evit_augment_config aug; /* the augmentation they were made with */
    float *logits;     /* (E, n, k): logits, or log-probabilities rebuilt from the top-k */
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

int evit_logits_load(const char *path, struct evit_logits *out);

/* Refuses a logits file that does not belong to the dataset: count, class
 * count and label fingerprint must all agree. */
int evit_logits_check(const struct evit_logits *l, const char *lpath,
                      const struct evit_dataset *d, const char *dpath);

void evit_logits_free(struct evit_logits *l);

#endif
