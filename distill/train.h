/* train.h: the training loop of evit-distill.
 *
 * One step: gather a batch (shuffled or in order), augment it, forward with
 * activations kept, loss and dlogits, backward, clip, optimiser step at the
 * scheduled learning rate.  The loss is
 *   none:  CE_s(z, y)
 *   soft:  alpha CE_s(z, y) + (1 - alpha) T^2 KL(softmax(t/T) || softmax(z/T))
 *   hard:  alpha CE_s(z, y) + (1 - alpha) CE(z, argmax t)          (DeiT)
 * with CE_s the label-smoothed cross-entropy and t the teacher's logits for
 * the (un-augmented) image, or for the view replayed (below).  A
 * segmentation model (a seg_linear or seg_mlp head) learns from masks: the
 * pixel cross-entropy of its patch logits upsampled to pixels (ops.h),
 * unlabelled pixels left out, and with a teacher (soft) the distillation
 * term per pixel: teacher and student patch logits both upsampled to the
 * pixels (their grids may differ), T^2 KL at every pixel, labelled or not;
 * crops and flips moving the masks with the images (a mask pixel from
 * outside the image is unlabelled when the dataset has an ignore value,
 * background otherwise), with a teacher only as its saved views; its
 * training accuracy counts pixels and its validation score is the mIoU.
 *
 * Every epoch the model goes to out_path, and the whole training state (model,
 * optimiser moments, generator state, epoch, best accuracy) to state_path, so
 * that a killed run resumed with the same thread count ends with the same
 * weights bit for bit.  The best model by validation top-1 goes to best_path. */
#ifndef EVIT_TRAIN_H
#define EVIT_TRAIN_H

#include <cJSON.h>
#include <stdint.h>

#include "ckpt.h"
#include "optim.h"
#include "recipe.h"
#include "rng.h"
#include "vit.h"

#include "logits.h"

struct evit_dataset;

struct evit_train_opts {
    const struct evit_recipe *recipe;
    const struct evit_dataset *train;
    const char *train_path;
    const struct evit_dataset *val;     /* or NULL */
    struct evit_logits *teacher;        /* or NULL (required unless kd is none); not const: a
                                           segmentation teacher's views are read an epoch at a time */
    const char *out_path, *best_path, *state_path;
    struct evit_ckpt_meta meta;         /* written into every checkpoint */
    int resume;
    int64_t max_steps;  /* stop after this many steps in all; 0 = the recipe's epochs */
    int shuffle;
    int progress;       /* 0 quiet, 1 progress (a bar on a terminal, a line per epoch otherwise) */
};

struct evit_train_result {
    double train_s;        /* wall time of the steps of this invocation */
    double images_per_s;   /* training throughput */
    int epochs_done;
    int64_t steps;
    double last_loss;      /* mean loss of the last epoch */
    double final_top1;     /* validation top-1 of the last epoch, NaN without val */
    double best_top1;
    int best_epoch;
    cJSON *history;        /* [{epoch, loss, train_top1, val_top1, lr, seconds}], owned */
};

int evit_train_run(struct evit_vit *m, const struct evit_train_opts *o, struct evit_train_result *r);

/* What one step touches, allocated once for the recipe's batch size.  Before
 * a step the caller fills labels (and tlogits when distilling). */
struct evit_trainer {
    struct evit_vit *m;
    size_t n;                       /* parameters */
    float *gmem;                    /* (n) gradients */
    struct evit_vit_params g;       /* bound to gmem */
    struct evit_vit_acts acts;      /* keep = 1 */
    struct evit_vit_grad_scratch scratch;
    struct evit_optim opt;
    struct evit_rng rng;            /* shuffling and augmentation */
    int32_t *order;                 /* (N) this epoch's image order */
    uint8_t *batch, *aug;           /* (B, H, W, C) */
    int32_t *labels, *tlabels;      /* (B) labels, teacher argmax */
    float *tlogits;                 /* (B, R, K), R = evit_config_head_rows */
    float *dlogits;                 /* (B, R, K) */
    /* segmentation (evit_head_is_seg): the batch's masks and its logits
     * upsampled to pixels, with their gradient; else NULL */
    uint8_t *masks, *maug;          /* (B, S, S), and the augmentation's other buffer */
    float *pixels, *dpixels;        /* (B, S, S, K) */
    float *tpixels;                 /* (B, S, S, K) the teacher's, when distilling */
    int tgrid;                      /* the teacher's patch grid side (its logits file's) */
    int ignore;                     /* the masks' unlabelled value, or -1 */
    int64_t hits;                   /* images (pixels) of the last step classified right */
    int64_t counted;                /* of how many: images, or labelled pixels */
};

void evit_trainer_init(struct evit_trainer *t, struct evit_vit *m, const struct evit_recipe *r,
                       int n_images);
void evit_trainer_free(struct evit_trainer *t);

/* Forward, loss, backward, clipping and an optimiser step at lr on B images
 * x (B, H, W, C).  Returns the batch's mean loss; when it is not finite no
 * update is made and the caller stops the run.  In an MPI job every rank
 * passes the same global batch and computes its share of it (train.c). */
double evit_trainer_step(struct evit_trainer *t, const struct evit_recipe *r, const uint8_t *x,
                         int B, int have_teacher, double lr);

/* The images of the batch of this epoch's order from position start: B
 * images gathered, with their labels (or masks) and teacher logits, and
 * augmented.  When the teacher's file has views (evit-eval --augment),
 * epoch e replays view e mod E of each image -- evit_augment_view(seed,
 * e mod E, index), the very pixels the teacher saw, and for segmentation
 * the mask moved with them (evit_augment_view_masks) -- with that view's
 * logits (a segmentation teacher's rebuilt per patch from its top-k,
 * evit_logits_view_rows); otherwise the recipe's augmentation draws from
 * the run's generator.  Returns the images to train on (t->aug or
 * t->batch), or NULL after an error line (a views epoch that could not be
 * read again). */
const uint8_t *evit_train_batch(struct evit_trainer *t, const struct evit_train_opts *o, int epoch, int start,
                                int B);

/* A logits file with views agrees with the recipe's augmentation (crop
 * padding, flip, seed), or the run is refused: the student would see other
 * images than the ones the teacher's logits describe. */
int evit_train_check_views(const struct evit_recipe *r, const struct evit_logits *l, const char *lpath,
                           const char *rpath);

/* "dir/student.h5" + ".best" -> "dir/student.best.h5"; caller frees. */
char *evit_train_sibling(const char *path, const char *tag);

#endif
