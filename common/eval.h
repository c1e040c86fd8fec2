/* eval.h: accuracy of any model over a dataset.
 *
 * The model is a callback, so a float checkpoint, a quantized model run by
 * the runtime, or an exported file are all measured by the same loop. */
#ifndef EVIT_EVAL_H
#define EVIT_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "segmetric.h"

struct evit_dataset;
struct evit_vit;
struct evit_vit_config;

/* Writes logits (B, K) for B images (uint8, HWC); (B, N, K) per patch for
 * a segmentation model. */
typedef void (*evit_forward_fn)(void *ctx, const uint8_t *images, int B, float *logits);

struct evit_eval_result {
    int n, k;
    double top1, top5; /* percent */
    double loss;       /* mean cross-entropy */
    int64_t *confusion;     /* (k, k): [true][predicted] */
    double *class_acc;      /* (k) percent; NaN for a class with no images */
    double seconds;         /* wall time of the forward passes */
    double images_per_s;
    float *logits;          /* (n, k) when asked for, else NULL */
};

/* progress: print a line to stderr every few seconds. */
int evit_eval_run(evit_forward_fn fn, void *ctx, int max_batch, int k,
                  const struct evit_dataset *d, int keep_logits, int progress,
                  struct evit_eval_result *r);

/* The same in an MPI job (dist.h): each rank runs whole batches of its own
 * share, rank 0 gathers the logits and alone fills r (logits identical to
 * a single-process run's, bit for bit).  One process: evit_eval_run. */
int evit_eval_run_dist(evit_forward_fn fn, void *ctx, int max_batch, int k,
                       const struct evit_dataset *d, int keep_logits, int progress,
                       struct evit_eval_result *r);

/* The model's logits of `epochs` augmented views of every image of d, in
 * batches of `batch` in dataset order: view e of image i is
 * evit_augment_view(seed, e, i) (augment.h), whatever the batch, so
 * evit-distill can replay it.  Refuses NaN or Inf logits. */
struct evit_augment_config;
int evit_eval_views(evit_forward_fn fn, void *ctx, int batch, int k, const struct evit_dataset *d,
                    const struct evit_augment_config *aug, uint64_t seed, int epochs, int progress,
                    float *views /* (epochs, n, k) */);

/* One epoch of those views: out (n, row) receives fn's logits of view e of
 * every image, row floats each (k, or g*g*K for a segmentation model). */
int evit_eval_view_epoch(evit_forward_fn fn, void *ctx, int batch, size_t row, const struct evit_dataset *d,
                         const struct evit_augment_config *aug, uint64_t seed, int e, float *out /* (n, row) */);

void evit_eval_result_free(struct evit_eval_result *r);

/* Segmentation: every pixel of d (which has masks, and the model's size
 * and classes) scored by segmetric.h, from fn's per-patch logits upsampled
 * to pixels (ops.h, evit_upsample_forward) as Segmenter does; loss is the
 * pixel cross-entropy over the labelled pixels; keep, when not NULL,
 * receives the per-patch logits of every image (for --save-logits). */
struct evit_seg_eval {
    int n, k;
    struct evit_segmetric conf;  /* over every labelled pixel */
    struct evit_segscore score;  /* mIoU, Dice, pixel accuracy (fractions) */
    double *iou, *dice;          /* (k), NaN for a class absent from truth and prediction */
    double loss;
    double seconds, images_per_s;
};
int evit_eval_seg_run(evit_forward_fn fn, void *ctx, int max_batch, const struct evit_vit_config *cfg,
                      const struct evit_dataset *d, int progress, float *keep /* (n, N, K) or NULL */,
                      struct evit_seg_eval *r);
void evit_seg_eval_free(struct evit_seg_eval *r);

/* Fills top1/top5/loss/confusion of r from logits already computed. */
void evit_eval_score(struct evit_eval_result *r, const float *logits /* (n, k) */,
                     const int32_t *labels /* (n) */, int n, int k);

/* A float ViT as an evit_forward_fn; holds the activations. */
struct evit_vit_runner {
    const struct evit_vit *m;
    void *acts; /* struct evit_vit_acts */
    int max_batch;
};
void evit_vit_runner_init(struct evit_vit_runner *r, const struct evit_vit *m, int max_batch);
void evit_vit_runner_free(struct evit_vit_runner *r);
void evit_vit_runner_forward(void *ctx, const uint8_t *images, int B, float *logits);

/* A float ViT's evaluation on d in batches of batch (threaded by the
 * training engine), what every stage reports as float top-1; e as
 * evit_eval_run fills it (no logits kept). */
int evit_eval_top1(const struct evit_vit *m, const struct evit_dataset *d, int batch,
                   struct evit_eval_result *e);

/* A model's score on d, whichever its task, in percent: top-1 for a class
 * head on labels, mIoU for a segmentation head on masks.  What a stage
 * ranks models by and budgets (evit-quantize's max_drop is in its points). */
struct evit_score {
    int seg;                     /* 1: sg holds the evaluation, else cls */
    struct evit_eval_result cls;
    struct evit_seg_eval sg;
    double value;                /* top-1 or mIoU, percent */
};
/* fn (a model of config cfg) on d; progress as evit_eval_run. */
int evit_score_run(evit_forward_fn fn, void *ctx, int batch, const struct evit_vit_config *cfg,
                   const struct evit_dataset *d, int progress, struct evit_score *s);
/* A float ViT through the training engine (evit_eval_top1's engine). */
int evit_score_vit(const struct evit_vit *m, const struct evit_dataset *d, int batch, struct evit_score *s);
/* "top-1" or "mIoU", for people; "top1" or "miou", the reports' key */
const char *evit_score_name(const struct evit_score *s);
const char *evit_score_key(const struct evit_score *s);
void evit_score_free(struct evit_score *s);

/* The model's task (its head) and the data's (labels or masks), its input
 * (size, channels) and class count must match. */
int evit_eval_check_compat(const struct evit_vit *m, const char *mpath,
                           const struct evit_dataset *d, const char *dpath);

#endif
