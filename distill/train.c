/* train.c: see train.h. */
#include "train.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "augment.h"
#include "dataset.h"
#include "dist.h"
#include "eval.h"
#include "h5.h"
#include "head.h"
#include "logits.h"
#include "ops.h"
#include "optim.h"
#include "rng.h"
#include "util.h"

#define STATE_VERSION 1

char *evit_train_sibling(const char *path, const char *tag)
{
    size_t n = strlen(path);
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) dot = path + n;
    char *out = evit_malloc(n + strlen(tag) + 8);
    sprintf(out, "%.*s%s%s", (int)(dot - path), path, tag, *dot ? dot : ".h5");
    return out;
}

void evit_trainer_init(struct evit_trainer *t, struct evit_vit *m, const struct evit_recipe *r, int N)
{
    const struct evit_vit_config *c = &m->cfg;
    int B = r->batch;
    size_t img = (size_t)c->img_size * c->img_size * c->channels;
    memset(t, 0, sizeof *t);
    t->m = m;
    t->n = (size_t)evit_config_params(c);
    t->gmem = evit_alloc_floats(t->n);
    evit_vit_bind(&t->g, c, t->gmem);
    evit_vit_acts_alloc(&t->acts, c, B, 1);
    evit_vit_grad_scratch_alloc(&t->scratch, c, B);
    evit_optim_init(&t->opt, &r->optim, c);
    evit_rng_seed(&t->rng, (uint64_t)r->seed);
    t->order = evit_malloc(sizeof *t->order * (size_t)N);
    t->batch = evit_malloc(img * (size_t)B);
    t->aug = evit_malloc(img * (size_t)B);
    t->labels = evit_malloc(sizeof *t->labels * (size_t)B);
    t->tlabels = evit_malloc(sizeof *t->tlabels * (size_t)B);
    size_t R = (size_t)evit_config_head_rows(c), hw = (size_t)c->img_size * c->img_size;
    t->tlogits = evit_malloc(sizeof(float) * (size_t)B * R * c->classes);
    t->dlogits = evit_malloc(sizeof(float) * (size_t)B * R * c->classes);
    t->ignore = -1;
    if (evit_head_is_seg(c->head)) {
        t->masks = evit_malloc(hw * (size_t)B);
        t->maug = evit_malloc(hw * (size_t)B);
        t->pixels = evit_malloc(sizeof(float) * hw * (size_t)B * c->classes);
        t->dpixels = evit_malloc(sizeof(float) * hw * (size_t)B * c->classes);
    }
}

void evit_trainer_free(struct evit_trainer *t)
{
    evit_free_aligned(t->gmem);
    evit_vit_acts_free(&t->acts);
    evit_vit_grad_scratch_free(&t->scratch);
    evit_optim_free(&t->opt);
    free(t->order);
    free(t->batch);
    free(t->aug);
    free(t->labels);
    free(t->tlabels);
    free(t->tlogits);
    free(t->dlogits);
    free(t->masks);
    free(t->maug);
    free(t->pixels);
    free(t->dpixels);
    free(t->tpixels);
}

/* Identifies a run: the effective recipe, the training labels and the model
 * shape.  A state file from another run is refused on --resume. */
static uint64_t run_fingerprint(const struct evit_train_opts *o, const struct evit_vit *m)
{
    char *text = cJSON_PrintUnformatted(o->recipe->json);
    uint64_t h = evit_fnv1a64(text, strlen(text), EVIT_FNV_SEED);
    free(text);
    uint64_t d = evit_dataset_fingerprint(o->train);
    h = evit_fnv1a64(&d, sizeof d, h);
    return evit_fnv1a64(&m->cfg, sizeof m->cfg, h);
}

struct progress_state {
    int epoch, next_epoch;
    int64_t step;
    double best_top1;
    int best_epoch;
    cJSON *history;
};

static int save_state(const struct evit_train_opts *o, const struct evit_trainer *t,
                      const struct progress_state *p, uint64_t fp)
{
    hid_t f;
    char fps[32];
    int rc = EVIT_ERR;
    char *tmp = evit_temp_path(o->state_path);
    char *hist = cJSON_PrintUnformatted(p->history);
    int64_t dn[1] = {(int64_t)t->n}, dr[1] = {4};
    int ints[4] = {STATE_VERSION, p->next_epoch, p->best_epoch, 0};
    snprintf(fps, sizeof fps, "%016" PRIx64, fp);
    if (evit_h5_create(tmp, &f) < 0) goto out;
    int ok = evit_ckpt_write(f, o->state_path, t->m, &o->meta) == 0;
    ok = ok && evit_h5_attr_write_ints(f, "train_state", ints, 3) == 0 &&
         evit_h5_attr_write_double(f, "train_step", (double)p->step) == 0 &&
         evit_h5_attr_write_double(f, "train_best_top1", p->best_top1) == 0 &&
         evit_h5_attr_write_string(f, "train_fingerprint", fps) == 0 &&
         evit_h5_attr_write_string(f, "train_history", hist) == 0;
    ok = ok && evit_h5_write(f, o->state_path, "train/m", H5T_NATIVE_FLOAT, 1, dn, t->opt.m) == 0;
    if (ok && t->opt.v)
        ok = evit_h5_write(f, o->state_path, "train/v", H5T_NATIVE_FLOAT, 1, dn, t->opt.v) == 0;
    ok = ok && evit_h5_write(f, o->state_path, "train/rng", H5T_NATIVE_UINT64, 1, dr, t->rng.s) == 0;
    rc = evit_h5_finish(f, tmp, o->state_path, ok);
out:
    free(hist);
    free(tmp);
    return rc;
}

static int load_state(const struct evit_train_opts *o, struct evit_trainer *t, struct progress_state *p,
                      uint64_t fp)
{
    hid_t f;
    struct evit_vit saved;
    int ints[3];
    double step;
    char *fps = NULL, *hist = NULL;
    int64_t dn[1] = {(int64_t)t->n}, dr[1] = {4};
    const char *path = o->state_path;
    if (evit_h5_open(path, &f) < 0) return EVIT_ERR;
    if (evit_ckpt_read(f, path, &saved, NULL) < 0) goto fail_open;
    int same = memcmp(&saved.cfg, &t->m->cfg, sizeof saved.cfg) == 0;
    if (same) memcpy(t->m->mem, saved.mem, sizeof(float) * t->n);
    evit_vit_free(&saved);
    if (!same) {
        evit_error("%s: holds a model of another shape than this run's", path);
        goto fail_open;
    }
    if (evit_h5_attr_read_ints(f, path, "train_state", ints, 3) < 0 ||
        evit_h5_attr_read_double(f, path, "train_step", &step) < 0 ||
        evit_h5_attr_read_double(f, path, "train_best_top1", &p->best_top1) < 0 ||
        evit_h5_attr_read_string(f, path, "train_fingerprint", &fps) < 0 ||
        evit_h5_attr_read_string(f, path, "train_history", &hist) < 0)
        goto fail_open;
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, fp);
    if (ints[0] != STATE_VERSION || strcmp(fps, want) != 0) {
        evit_error("%s: is the state of another run (recipe, data or model differ); "
                   "remove it or drop --resume", path);
        goto fail_open;
    }
    if (evit_h5_read(f, path, "train/m", H5T_NATIVE_FLOAT, 1, dn, t->opt.m) < 0 ||
        (t->opt.v && evit_h5_read(f, path, "train/v", H5T_NATIVE_FLOAT, 1, dn, t->opt.v) < 0) ||
        evit_h5_read(f, path, "train/rng", H5T_NATIVE_UINT64, 1, dr, t->rng.s) < 0)
        goto fail_open;
    cJSON *h = cJSON_Parse(hist);
    if (!h || !cJSON_IsArray(h)) {
        cJSON_Delete(h);
        evit_error("%s: train_history is not a JSON array", path);
        goto fail_open;
    }
    cJSON_Delete(p->history);
    p->history = h;
    p->next_epoch = ints[1];
    p->best_epoch = ints[2];
    p->step = (int64_t)step;
    t->opt.step = p->step;
    free(fps);
    free(hist);
    H5Fclose(f);
    return EVIT_OK;
fail_open:
    free(fps);
    free(hist);
    H5Fclose(f);
    return EVIT_ERR;
}

/* Rank 0 read the state; every other rank takes the same training state
 * from it (the history stays with rank 0, the only one that writes). */
static void share_state(struct evit_trainer *t, struct progress_state *p)
{
    double d[5] = {(double)p->step, p->next_epoch, p->best_epoch, p->best_top1, (double)t->opt.step};
    evit_dist_bcast(d, sizeof d, 0);
    p->step = (int64_t)d[0];
    p->next_epoch = (int)d[1];
    p->best_epoch = (int)d[2];
    p->best_top1 = d[3];
    t->opt.step = (int64_t)d[4];
    evit_dist_bcast(t->m->mem, sizeof(float) * t->n, 0);
    evit_dist_bcast(t->opt.m, sizeof(float) * t->n, 0);
    if (t->opt.v) evit_dist_bcast(t->opt.v, sizeof(float) * t->n, 0);
    evit_dist_bcast(t->rng.s, sizeof t->rng.s, 0);
}

/* --resume: rank 0 looks for the state and reads it, then every rank
 * learns the outcome (and the state), so all go on or all stop. */
static int resume(const struct evit_train_opts *o, struct evit_trainer *t, struct progress_state *p, uint64_t fp)
{
    int st[2] = {0, 1}; /* exists, ok */
    int rank0 = evit_dist_rank() == 0;
    if (rank0) {
        st[0] = access(o->state_path, F_OK) == 0;
        if (st[0]) st[1] = load_state(o, t, p, fp) == 0;
    }
    evit_dist_bcast(st, sizeof st, 0);
    if (!st[1]) return EVIT_ERR;
    if (st[0] && evit_dist_size() > 1) share_state(t, p);
    if (o->progress && st[0])
        evit_info("resuming from %s: epoch %d of %d done, step %" PRId64, o->state_path, p->next_epoch,
                  o->recipe->epochs, p->step);
    else if (o->progress)
        evit_info("no training state at %s: starting from the beginning", o->state_path);
    return EVIT_OK;
}

/* Loss of one batch and its gradient w.r.t. the logits (into t->dlogits),
 * for the B images whose labels and teacher logits start at labels and
 * tlogits. */
static double batch_loss(struct evit_trainer *t, const struct evit_recipe *r, const float *z, int B, int K,
                         int have_teacher, const int32_t *labels, const float *tlogits)
{
    float ls = (float)r->label_smoothing;
    float alpha = r->kd == EVIT_KD_NONE || !have_teacher ? 1.0f : (float)r->alpha;
    double loss = 0.0;
    memset(t->dlogits, 0, sizeof(float) * (size_t)B * K);
    if (alpha > 0.0f) {
        loss += (double)alpha * evit_xent_smooth_forward(z, labels, ls, B, K);
        evit_xent_smooth_backward(t->dlogits, z, labels, ls, alpha, B, K);
    }
    if (alpha < 1.0f && r->kd == EVIT_KD_SOFT) {
        float tau = (float)r->temperature;
        loss += (double)(1.0f - alpha) * evit_kd_forward(z, tlogits, tau, B, K);
        evit_kd_backward(t->dlogits, z, tlogits, tau, 1.0f - alpha, B, K);
    } else if (alpha < 1.0f && r->kd == EVIT_KD_HARD) {
        for (int b = 0; b < B; b++) t->tlabels[b] = evit_argmax(tlogits + (size_t)b * K, K);
        loss += (double)(1.0f - alpha) * evit_xent_smooth_forward(z, t->tlabels, 0.0f, B, K);
        evit_xent_smooth_backward(t->dlogits, z, t->tlabels, 0.0f, 1.0f - alpha, B, K);
    }
    return loss;
}

const uint8_t *evit_train_batch(struct evit_trainer *t, const struct evit_train_opts *o, int epoch, int start, int B)
{
    const struct evit_dataset *d = o->train;
    const struct evit_recipe *r = o->recipe;
    struct evit_logits *l = o->teacher;
    const struct evit_logit_views *v = l && l->views.epochs ? &l->views : NULL;
    size_t img = (size_t)d->h * d->w * d->c, hw = (size_t)d->h * d->w;
    int K = t->m->cfg.classes, ev = v ? epoch % v->epochs : 0;
    /* the teacher's logits of one image: K, or a segmentation teacher's g*g*K */
    size_t tk = (size_t)K * (l && l->grid ? (size_t)l->grid * l->grid : 1);
    /* with views, epoch e replays view e mod E: its image and its logits
     * (a segmentation teacher's rebuilt from its top-k, image by image) */
    const float *tz = l ? l->logits : NULL;
    if (v) tz = l->grid ? NULL : v->logits + (size_t)ev * (size_t)d->n * K;
    uint8_t mask_fill = (uint8_t)(d->ignore >= 0 ? d->ignore : 0);
    for (int b = 0; b < B; b++) {
        int i = t->order[start + b];
        memcpy(t->batch + (size_t)b * img, d->images + (size_t)i * img, img);
        if (d->masks)
            memcpy(t->masks + (size_t)b * hw, d->masks + (size_t)i * hw, hw);
        else
            t->labels[b] = d->labels[i];
        if (tz) memcpy(t->tlogits + (size_t)b * tk, tz + (size_t)i * tk, sizeof(float) * tk);
        else if (v && evit_logits_view_rows(l, ev, i, t->tlogits + (size_t)b * tk) < 0) return NULL;
    }
    if (v) { /* a mask moves with its image (augment.h), so t->masks holds the view's after */
        for (int b = 0; b < B; b++)
            evit_augment_view_masks(t->aug + (size_t)b * img, t->batch + (size_t)b * img,
                                    d->masks ? t->maug + (size_t)b * hw : NULL,
                                    d->masks ? t->masks + (size_t)b * hw : NULL, d->h, d->w, d->c, &r->augment,
                                    v->seed, ev, t->order[start + b], mask_fill);
        if (d->masks) {
            uint8_t *m = t->maug;
            t->maug = t->masks;
            t->masks = m;
        }
        return t->aug;
    }
    if (r->augment.crop_padding > 0 || r->augment.hflip || r->augment.erase_prob > 0) {
        if (d->masks) { /* the masks move with their images; t->masks holds them after */
            uint8_t *m = t->maug;
            evit_augment_batch_masks(t->aug, t->batch, m, t->masks, B, d->h, d->w, d->c, &r->augment, &t->rng,
                                     mask_fill);
            t->maug = t->masks;
            t->masks = m;
        } else {
            evit_augment_batch(t->aug, t->batch, B, d->h, d->w, d->c, &r->augment, &t->rng);
        }
        return t->aug;
    }
    return t->batch;
}

int evit_train_check_views(const struct evit_recipe *r, const struct evit_logits *l, const char *lpath,
                           const char *rpath)
{
    const struct evit_logit_views *v = &l->views;
    if (!v->epochs) return EVIT_OK;
    if (!evit_augment_same(&v->aug, &r->augment) || v->seed != (uint64_t)r->augment_seed) {
        char have[160], want[160];
        evit_augment_describe(have, sizeof have, &v->aug);
        evit_augment_describe(want, sizeof want, &r->augment);
        return evit_error("%s: its views were drawn with %s, seed %llu; %s asks for %s, seed %lld (make the views "
                          "with this recipe, or use its augmentation)",
                          lpath, have, (unsigned long long)v->seed, rpath, want, r->augment_seed);
    }
    return EVIT_OK;
}

static void format_eta(char *buf, size_t n, double s)
{
    if (s < 0 || !isfinite(s)) s = 0;
    if (s >= 3600)
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

static double validate(const struct evit_train_opts *o, struct evit_vit_runner *run)
{
    struct evit_eval_result e;
    if (!o->val) return NAN;
    if (o->val->masks) { /* segmentation: the mIoU, in percent */
        struct evit_seg_eval se;
        if (evit_eval_seg_run(evit_vit_runner_forward, run, run->max_batch, &run->m->cfg, o->val, 0, NULL, &se) < 0)
            return NAN;
        double miou = 100.0 * se.score.miou;
        evit_seg_eval_free(&se);
        return miou;
    }
    if (evit_eval_run(evit_vit_runner_forward, run, run->max_batch, run->m->cfg.classes, o->val, 0, 0, &e) < 0)
        return NAN;
    double top1 = e.top1;
    evit_eval_result_free(&e);
    return top1;
}

static int64_t count_hits(const float *z /* (B, K) */, const int32_t *labels, int B, int K)
{
    int64_t hits = 0;
    for (int b = 0; b < B; b++) hits += evit_argmax(z + (size_t)b * K, K) == labels[b];
    return hits;
}

/* Segmentation: the pixel cross-entropy of the patch logits z (B, g, g, K)
 * upsampled to pixels, against the batch's masks; the gradient goes back
 * through the upsampling into t->dlogits; hits count the labelled pixels
 * whose argmax is right. */
static double seg_loss(struct evit_trainer *t, const struct evit_recipe *r, const float *z, int B,
                       const struct evit_vit_config *c, int have_teacher)
{
    int g = evit_config_grid(c), S = c->img_size, K = c->classes;
    size_t P = (size_t)B * S * S;
    float alpha = r->kd == EVIT_KD_NONE || !have_teacher ? 1.0f : (float)r->alpha;
    double loss = 0.0;
    evit_upsample_forward(t->pixels, z, B, g, g, S, S, K);
    memset(t->dpixels, 0, sizeof(float) * P * K);
    if (alpha > 0.0f) {
        loss += (double)alpha * evit_xent_pixels_forward(NULL, t->pixels, t->masks, t->ignore, P, K);
        evit_xent_pixels_backward(t->dpixels, t->pixels, t->masks, t->ignore, alpha, P, K);
    }
    if (alpha < 1.0f) { /* soft (main.c refuses hard): pixel-wise, both grids upsampled to the pixels */
        float tau = (float)r->temperature;
        evit_upsample_forward(t->tpixels, t->tlogits, B, t->tgrid, t->tgrid, S, S, K);
        loss += (double)(1.0f - alpha) * evit_kd_forward(t->pixels, t->tpixels, tau, (int)P, K);
        evit_kd_backward(t->dpixels, t->pixels, t->tpixels, tau, 1.0f - alpha, (int)P, K);
    }
    memset(t->dlogits, 0, sizeof(float) * (size_t)B * g * g * K);
    evit_upsample_backward(t->dlogits, t->dpixels, B, g, g, S, S, K);
    t->hits = t->counted = 0;
    for (size_t p = 0; p < P; p++) {
        if (t->masks[p] == t->ignore) continue;
        t->hits += evit_argmax(t->pixels + p * K, K) == t->masks[p];
        t->counted++;
    }
    return loss;
}

/* Data parallel over the ranks of an MPI job (dist.h): every rank holds the
 * whole global batch (same order, same augmentation: the generator state is
 * identical everywhere) and computes the images [lo, hi) of it.  The loss is
 * the batch mean, so rank r's share of the gradient is
 *   g_r = (n_r / B) * (mean gradient over its n_r images)
 * and sum_r g_r, an Allreduce, is the gradient one process computes over
 * the B images, up to float summation order.  Clipping and the optimiser
 * then run on identical gradients on every rank.  With one rank nothing
 * is scaled or summed: the single-process step, bit for bit. */
double evit_trainer_step(struct evit_trainer *t, const struct evit_recipe *r, const uint8_t *x,
                         int B, int have_teacher, double lr)
{
    const struct evit_vit_config *c = &t->m->cfg;
    int K = c->classes, ranks = evit_dist_size();
    EVIT_ASSERT(!t->masks || ranks == 1); /* distill/main.c refuses it */
    size_t img = (size_t)c->img_size * c->img_size * c->channels;
    long lo = 0, hi = B;
    evit_dist_share(B, evit_dist_rank(), ranks, &lo, &hi);
    int n = (int)(hi - lo);
    double loss = 0.0;
    t->hits = 0;
    t->counted = 0;
    if (n > 0) {
        evit_vit_forward(t->m, &t->acts, x + (size_t)lo * img, n);
        if (t->masks) {
            loss = seg_loss(t, r, t->acts.logits, n, c, have_teacher);
        } else {
            loss = batch_loss(t, r, t->acts.logits, n, K, have_teacher, t->labels + lo,
                              t->tlogits + (size_t)lo * K);
            t->hits = count_hits(t->acts.logits, t->labels + lo, n, K);
            t->counted = n;
        }
    }
    if (ranks > 1) {
        double s[3] = {loss * n, (double)t->hits, (double)t->counted};
        evit_dist_sum_doubles(s, 3);
        loss = s[0] / B;
        t->hits = (int64_t)s[1];
        t->counted = (int64_t)s[2];
    }
    if (!isfinite(loss)) return loss;
    memset(t->gmem, 0, sizeof(float) * t->n);
    if (n > 0) {
        if (ranks > 1) {
            float share = (float)n / (float)B;
            for (size_t i = 0; i < (size_t)n * K; i++) t->dlogits[i] *= share;
        }
        evit_vit_backward(&t->g, &t->scratch, t->m, &t->acts, t->dlogits, n);
    }
    if (ranks > 1) evit_dist_sum_floats(t->gmem, t->n);
    evit_optim_clip(t->gmem, t->n, r->clip_grad);
    evit_optim_step(&t->opt, t->m->mem, t->gmem, lr);
    return loss;
}

/* What an epoch adds up, over images. */
struct epoch_stats {
    double loss_sum; /* sum over images of the batch mean loss */
    int64_t hits;    /* training images (pixels) classified right (augmented) */
    int64_t counted; /* of how many */
    int64_t seen;
    double lr;       /* of the last step */
    double busy;     /* seconds inside steps */
};

/* The step schedule of a run. */
struct schedule {
    int64_t spe;     /* steps per epoch */
    int64_t total;   /* steps of the whole recipe: the cosine's length */
    int64_t warmup;
    int64_t stop_at; /* --steps, or total */
};

/* One epoch of steps; returns the number of steps done, or -1 on a
 * non-finite loss. */
static int64_t run_epoch(struct evit_trainer *t, const struct evit_train_opts *o, int epoch,
                         struct progress_state *p, const struct schedule *sc, struct epoch_stats *st)
{
    const struct evit_recipe *r = o->recipe;
    const struct evit_dataset *d = o->train;
    int Bmax = r->batch;
    int tty = o->progress && isatty(2);
    double t0 = evit_now(), last = 0.0;
    int64_t done = 0;
    for (int i = 0; i < d->n; i++) t->order[i] = i;
    if (o->shuffle) evit_shuffle(t->order, d->n, &t->rng);
    for (int s = 0; s < d->n && p->step < sc->stop_at; s += Bmax, done++) {
        int B = d->n - s < Bmax ? d->n - s : Bmax;
        const uint8_t *x = evit_train_batch(t, o, epoch, s, B);
        if (!x) return -1;
        double lr = evit_optim_lr(r->optim.lr, r->min_lr, p->step, sc->warmup, sc->total);
        double ts = evit_now();
        double loss = evit_trainer_step(t, r, x, B, o->teacher != NULL, lr);
        st->busy += evit_now() - ts;
        if (!isfinite(loss)) {
            int have = access(o->out_path, F_OK) == 0;
            evit_error("loss is %s at step %" PRId64 " (epoch %d); stopping. %s%s", isnan(loss) ? "NaN" : "Inf",
                       p->step + 1, epoch + 1, have ? "The last good checkpoint is " : "No checkpoint was written yet",
                       have ? o->out_path : "");
            return -1;
        }
        st->hits += t->hits;
        st->counted += t->counted;
        st->loss_sum += loss * B;
        st->seen += B;
        st->lr = lr;
        p->step++;
        double now = evit_now() - t0;
        if (tty && (now - last > 0.25 || s + B >= d->n)) {
            char eta[32];
            double frac = (double)(done + 1) / (double)sc->spe;
            format_eta(eta, sizeof eta, now / frac - now);
            int bar = (int)(frac * 24);
            fprintf(stderr, "\repoch %d/%d [%.*s%*s] %3.0f%%  %6.0f img/s  loss %.4f  ETA %s ",
                    epoch + 1, r->epochs, bar, "########################", 24 - bar, "",
                    100.0 * frac, (double)st->seen / now, st->loss_sum / (double)st->seen, eta);
            last = now;
        }
    }
    if (tty) fputc('\n', stderr);
    return done;
}

int evit_train_run(struct evit_vit *m, const struct evit_train_opts *o, struct evit_train_result *res)
{
    const struct evit_recipe *r = o->recipe;
    struct evit_trainer t;
    struct evit_vit_runner run = {0};
    struct progress_state p = {.best_top1 = -1.0, .best_epoch = -1, .history = cJSON_CreateArray()};
    int rc = EVIT_ERR, rank0 = evit_dist_rank() == 0;
    struct schedule sc;
    uint64_t fp;
    sc.spe = (o->train->n + r->batch - 1) / r->batch;
    sc.total = sc.spe * r->epochs;
    sc.warmup = (int64_t)llround(r->warmup_epochs * (double)sc.spe);
    if (sc.warmup > sc.total) sc.warmup = sc.total;
    sc.stop_at = o->max_steps > 0 && o->max_steps < sc.total ? o->max_steps : sc.total;
    memset(res, 0, sizeof *res);
    res->final_top1 = NAN;
    res->best_top1 = NAN;
    evit_trainer_init(&t, m, r, o->train->n);
    t.ignore = o->train->ignore;
    if (o->teacher && o->teacher->grid) { /* per-patch logits on the teacher's grid */
        size_t B = (size_t)r->batch, K = (size_t)m->cfg.classes, S = (size_t)m->cfg.img_size;
        free(t.tlogits);
        t.tlogits = evit_malloc(sizeof(float) * B * (size_t)o->teacher->grid * o->teacher->grid * K);
        t.tgrid = o->teacher->grid;
        t.tpixels = evit_malloc(sizeof(float) * B * S * S * K);
    }
    fp = run_fingerprint(o, m);
    if (o->val) evit_vit_runner_init(&run, m, 256);
    if (o->resume && resume(o, &t, &p, fp) < 0) goto out;
    double t_start = evit_now();
    int64_t steps_here = 0, images_here = 0;
    double busy = 0.0;
    int epoch = p.next_epoch;
    for (; epoch < r->epochs && p.step < sc.stop_at; epoch++) {
        struct epoch_stats st = {0};
        double te = evit_now();
        int64_t n = run_epoch(&t, o, epoch, &p, &sc, &st);
        if (n < 0) goto out;
        steps_here += n;
        images_here += st.seen;
        busy += st.busy;
        double secs = evit_now() - te;
        double seen = st.seen ? (double)st.seen : 1.0;
        /* a run cut short by --steps leaves no state: it cannot resume mid-epoch */
        int complete = n == sc.spe;
        double val = validate(o, &run);
        cJSON *h = cJSON_CreateObject();
        cJSON_AddNumberToObject(h, "epoch", epoch + 1);
        cJSON_AddNumberToObject(h, "steps", (double)p.step);
        cJSON_AddNumberToObject(h, "loss", st.loss_sum / seen);
        double counted = st.counted ? (double)st.counted : 1.0;
        cJSON_AddNumberToObject(h, "train_top1", 100.0 * (double)st.hits / counted);
        if (isfinite(val))
            cJSON_AddNumberToObject(h, "val_top1", val);
        else
            cJSON_AddNullToObject(h, "val_top1");
        cJSON_AddNumberToObject(h, "lr", st.lr);
        cJSON_AddNumberToObject(h, "seconds", secs);
        cJSON_AddItemToArray(p.history, h);
        res->last_loss = st.loss_sum / seen;
        res->final_top1 = val;
        if (isfinite(val) && val > p.best_top1) {
            p.best_top1 = val;
            p.best_epoch = epoch + 1;
            if (o->best_path && evit_ckpt_save(o->best_path, m, &o->meta) < 0) goto out;
        }
        if (o->progress) {
            char vs[64] = "";
            if (isfinite(val))
                snprintf(vs, sizeof vs, ", val %s%.2f%% (best %.2f%%)", o->val->masks ? "mIoU " : "", val,
                         p.best_top1);
            evit_info("epoch %d/%d: loss %.4f, train %.2f%%%s, %.0f img/s, lr %.2e, %.1f s", epoch + 1,
                      r->epochs, res->last_loss, 100.0 * (double)st.hits / counted, vs,
                      seen / st.busy, st.lr, secs);
        }
        /* in an MPI job rank 0 alone writes (the others hold the same model) */
        if (rank0 && evit_ckpt_save(o->out_path, m, &o->meta) < 0) goto out;
        p.next_epoch = epoch + 1;
        if (rank0 && complete && save_state(o, &t, &p, fp) < 0) goto out;
    }
    if (epoch == p.next_epoch && steps_here == 0 && o->progress)
        evit_info("nothing to do: all %d epochs are done (state in %s)", r->epochs, o->state_path);
    if (rank0 && steps_here == 0 && evit_ckpt_save(o->out_path, m, &o->meta) < 0) goto out;
    res->train_s = evit_now() - t_start;
    /* throughput of the steps alone, without validation and checkpoints */
    res->images_per_s = busy > 0 ? (double)images_here / busy : 0.0;
    res->epochs_done = p.next_epoch;
    res->steps = p.step;
    res->best_top1 = p.best_top1 >= 0 ? p.best_top1 : (double)NAN;
    res->best_epoch = p.best_epoch;
    res->history = p.history;
    p.history = NULL;
    rc = EVIT_OK;
out:
    cJSON_Delete(p.history);
    if (run.acts) evit_vit_runner_free(&run);
    evit_trainer_free(&t);
    return rc;
}
