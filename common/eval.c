/* eval.c: see eval.h. */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "augment.h"
#include "dataset.h"
#include "dist.h"
#include "head.h"
#include "ops.h"
#include "segmetric.h"
#include "util.h"
#include "vit.h"

void evit_eval_score(struct evit_eval_result *r, const float *logits, const int32_t *labels,
                     int n, int k)
{
    int64_t hit1 = 0, hit5 = 0;
    int64_t *count = evit_calloc((size_t)k, sizeof *count);
    r->n = n;
    r->k = k;
    if (!r->confusion) r->confusion = evit_calloc((size_t)k * k, sizeof *r->confusion);
    if (!r->class_acc) r->class_acc = evit_calloc((size_t)k, sizeof *r->class_acc);
    memset(r->confusion, 0, sizeof *r->confusion * (size_t)k * k);
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        int y = labels[i], pred = evit_argmax(z, k), rank = 0;
        /* rank of the true class: how many score strictly higher (ties
         * favour the true class, as torch.topk does for equal values) */
        for (int j = 0; j < k; j++)
            if (z[j] > z[y]) rank++;
        hit1 += pred == y;
        hit5 += rank < 5;
        r->confusion[(size_t)y * k + pred]++;
        count[y]++;
    }
    for (int c = 0; c < k; c++)
        r->class_acc[c] = count[c] ? 100.0 * (double)r->confusion[(size_t)c * k + c] / (double)count[c] : (double)NAN;
    r->top1 = 100.0 * (double)hit1 / n;
    r->top5 = 100.0 * (double)hit5 / n;
    r->loss = evit_xent_forward(NULL, logits, labels, n, k) / n;
    free(count);
}

int evit_eval_run(evit_forward_fn fn, void *ctx, int max_batch, int k,
                  const struct evit_dataset *d, int keep_logits, int progress,
                  struct evit_eval_result *r)
{
    size_t img = (size_t)d->h * d->w * d->c;
    float *all = evit_malloc(sizeof(float) * (size_t)d->n * k);
    double last = evit_now(), busy = 0.0;
    int tty = progress && isatty(2);
    memset(r, 0, sizeof *r);
    for (int s = 0; s < d->n; s += max_batch) {
        int B = d->n - s < max_batch ? d->n - s : max_batch;
        double t = evit_now();
        fn(ctx, d->images + (size_t)s * img, B, all + (size_t)s * k);
        double now = evit_now();
        busy += now - t;
        if (progress && (now - last > (tty ? 0.2 : 5.0) || s + B == d->n)) {
            fprintf(stderr, "%seval %d/%d images, %.0f img/s%s", tty ? "\r" : "", s + B, d->n,
                    (s + B) / busy, tty && s + B < d->n ? "" : "\n");
            last = now;
        }
    }
    for (size_t i = 0; i < (size_t)d->n * k; i++) {
        if (!isfinite(all[i])) {
            free(all);
            return evit_error("model produced NaN or Inf logits on image %zu", i / (size_t)k);
        }
    }
    evit_eval_score(r, all, d->labels, d->n, k);
    r->seconds = busy;
    r->images_per_s = busy > 0 ? d->n / busy : 0.0;
    if (keep_logits)
        r->logits = all;
    else
        free(all);
    return EVIT_OK;
}

/* One batch of a segmentation evaluation: the patch logits (B, g, g, K)
 * upsampled to pixels (B, S, S, K), their loss against the masks summed
 * over labelled pixels, their argmax counted in the confusion matrix. */
static int seg_batch(struct evit_seg_eval *r, const float *patches, const uint8_t *masks, float *pixels, uint8_t *pred,
                     int B, int g, int S, int ignore, double *loss_sum, uint64_t *labelled)
{
    size_t P = (size_t)B * S * S, n = 0;
    evit_upsample_forward(pixels, patches, B, g, g, S, S, r->k);
    for (size_t i = 0; i < P * r->k; i++)
        if (!isfinite(pixels[i])) return evit_error("model produced NaN or Inf logits");
    *loss_sum += evit_xent_pixels_forward(&n, pixels, masks, ignore, P, r->k) * (double)n;
    *labelled += n;
    evit_segmetric_argmax(pred, pixels, P, r->k);
    return evit_segmetric_add(&r->conf, masks, pred, P);
}

int evit_eval_seg_run(evit_forward_fn fn, void *ctx, int max_batch, const struct evit_vit_config *c,
                      const struct evit_dataset *d, int progress, float *keep, struct evit_seg_eval *r)
{
    int g = evit_config_grid(c), S = c->img_size, K = c->classes, rc = EVIT_OK;
    size_t img = (size_t)d->h * d->w * d->c, hw = (size_t)S * S;
    EVIT_ASSERT(d->masks && d->h == S && d->w == S && d->classes == K);
    float *patches = evit_malloc(sizeof(float) * (size_t)max_batch * g * g * K);
    float *pixels = evit_malloc(sizeof(float) * (size_t)max_batch * hw * K);
    uint8_t *pred = evit_malloc((size_t)max_batch * hw);
    double busy = 0.0, loss_sum = 0.0, last = evit_now();
    uint64_t labelled = 0;
    memset(r, 0, sizeof *r);
    r->n = d->n;
    r->k = K;
    evit_segmetric_init(&r->conf, K, d->ignore);
    for (int s = 0; s < d->n && rc == EVIT_OK; s += max_batch) {
        int B = d->n - s < max_batch ? d->n - s : max_batch;
        double t = evit_now();
        fn(ctx, d->images + (size_t)s * img, B, patches);
        if (keep) memcpy(keep + (size_t)s * g * g * K, patches, sizeof(float) * (size_t)B * g * g * K);
        rc = seg_batch(r, patches, d->masks + (size_t)s * hw, pixels, pred, B, g, S, d->ignore, &loss_sum, &labelled);
        double now = evit_now();
        busy += now - t;
        if (progress && (now - last > 5.0 || s + B == d->n)) {
            fprintf(stderr, "eval %d/%d images, %.0f img/s\n", s + B, d->n, (s + B) / busy);
            last = now;
        }
    }
    free(patches);
    free(pixels);
    free(pred);
    if (rc < 0) {
        evit_seg_eval_free(r);
        return EVIT_ERR;
    }
    r->iou = evit_malloc(sizeof(double) * (size_t)K);
    r->dice = evit_malloc(sizeof(double) * (size_t)K);
    evit_segmetric_score(&r->conf, &r->score, r->iou, r->dice);
    r->loss = labelled ? loss_sum / (double)labelled : (double)NAN;
    r->seconds = busy;
    r->images_per_s = busy > 0 ? d->n / busy : 0.0;
    return EVIT_OK;
}

void evit_seg_eval_free(struct evit_seg_eval *r)
{
    if (r->conf.conf) evit_segmetric_free(&r->conf);
    free(r->iou);
    free(r->dice);
    memset(r, 0, sizeof *r);
}

void evit_eval_result_free(struct evit_eval_result *r)
{
    free(r->confusion);
    free(r->class_acc);
    free(r->logits);
    memset(r, 0, sizeof *r);
}

void evit_vit_runner_init(struct evit_vit_runner *r, const struct evit_vit *m, int max_batch)
{
    struct evit_vit_acts *a = evit_malloc(sizeof *a);
    evit_vit_acts_alloc(a, &m->cfg, max_batch, 0);
    r->m = m;
    r->acts = a;
    r->max_batch = max_batch;
}

void evit_vit_runner_free(struct evit_vit_runner *r)
{
    evit_vit_acts_free(r->acts);
    free(r->acts);
    r->acts = NULL;
}

void evit_vit_runner_forward(void *ctx, const uint8_t *images, int B, float *logits)
{
    struct evit_vit_runner *r = ctx;
    struct evit_vit_acts *a = r->acts;
    evit_vit_forward(r->m, a, images, B);
    memcpy(logits, a->logits, sizeof(float) * (size_t)B * evit_config_head_rows(&r->m->cfg) * r->m->cfg.classes);
}

int evit_eval_check_compat(const struct evit_vit *m, const char *mpath,
                           const struct evit_dataset *d, const char *dpath)
{
    const struct evit_vit_config *c = &m->cfg;
    int seg = evit_head_is_seg(c->head);
    if (seg != (d->masks != NULL))
        return evit_error("%s: a %s model needs a %s dataset, but %s holds %s", mpath,
                          seg ? "segmentation" : "classification", seg ? "segmentation" : "classification", dpath,
                          d->masks ? "masks" : "labels");
    if (d->h != c->img_size || d->w != c->img_size || d->c != c->channels)
        return evit_error("%s: model takes %dx%dx%d images but %s holds %dx%dx%d", mpath,
                          c->img_size, c->img_size, c->channels, dpath, d->h, d->w, d->c);
    if (d->classes != c->classes)
        return evit_error("%s: model has %d classes but %s has %d", mpath, c->classes, dpath,
                          d->classes);
    return EVIT_OK;
}

/* Shards are whole batches: rank r evaluates batches [nb r / N, nb (r+1) / N)
 * of the nb = ceil(n / max_batch) that one process would run, so every
 * image meets the same batch composition as in a single-process run and
 * its logits are the same bits. */
int evit_eval_run_dist(evit_forward_fn fn, void *ctx, int max_batch, int k, const struct evit_dataset *d,
                       int keep_logits, int progress, struct evit_eval_result *r)
{
    int size = evit_dist_size(), rank = evit_dist_rank();
    if (size == 1) return evit_eval_run(fn, ctx, max_batch, k, d, keep_logits, progress, r);
    size_t img = (size_t)d->h * d->w * d->c;
    long nb = (d->n + max_batch - 1) / max_batch, blo, bhi;
    int *counts = evit_malloc(sizeof(int) * (size_t)size);
    for (int q = 0; q < size; q++) {
        evit_dist_share(nb, q, size, &blo, &bhi);
        long lo = blo * max_batch, hi = bhi * max_batch < d->n ? bhi * max_batch : d->n;
        counts[q] = (int)((hi > lo ? hi - lo : 0) * k);
    }
    evit_dist_share(nb, rank, size, &blo, &bhi);
    struct evit_dataset part = *d;
    long lo = blo * max_batch;
    part.n = counts[rank] / k;
    part.images = d->images + (size_t)lo * img;
    part.labels = d->labels + lo;
    double t0 = evit_now();
    struct evit_eval_result mine;
    if (evit_eval_run(fn, ctx, max_batch, k, &part, 1, progress && rank == 0, &mine) < 0) {
        free(counts);
        return EVIT_ERR;
    }
    float *all = rank == 0 ? evit_malloc(sizeof(float) * (size_t)d->n * k) : NULL;
    evit_dist_gather_floats(all, mine.logits, counts);
    evit_eval_result_free(&mine);
    free(counts);
    memset(r, 0, sizeof *r);
    if (rank > 0) return EVIT_OK; /* rank 0 alone holds the result */
    evit_eval_score(r, all, d->labels, d->n, k);
    r->seconds = evit_now() - t0;
    r->images_per_s = r->seconds > 0 ? d->n / r->seconds : 0.0; /* the whole job's */
    if (keep_logits)
        r->logits = all;
    else
        free(all);
    return EVIT_OK;
}

int evit_eval_top1(const struct evit_vit *m, const struct evit_dataset *d, int batch, struct evit_eval_result *e)
{
    struct evit_vit_runner run;
    evit_vit_runner_init(&run, m, batch);
    int rc = evit_eval_run(evit_vit_runner_forward, &run, batch, m->cfg.classes, d, 0, 0, e);
    evit_vit_runner_free(&run);
    return rc;
}

int evit_score_run(evit_forward_fn fn, void *ctx, int batch, const struct evit_vit_config *cfg,
                   const struct evit_dataset *d, int progress, struct evit_score *s)
{
    memset(s, 0, sizeof *s);
    s->seg = evit_head_is_seg(cfg->head);
    if (s->seg) {
        if (evit_eval_seg_run(fn, ctx, batch, cfg, d, progress, NULL, &s->sg) < 0) return EVIT_ERR;
        s->value = 100.0 * s->sg.score.miou;
    } else {
        if (evit_eval_run(fn, ctx, batch, cfg->classes, d, 0, progress, &s->cls) < 0) return EVIT_ERR;
        s->value = s->cls.top1;
    }
    return EVIT_OK;
}

int evit_score_vit(const struct evit_vit *m, const struct evit_dataset *d, int batch, struct evit_score *s)
{
    struct evit_vit_runner run;
    evit_vit_runner_init(&run, m, batch);
    int rc = evit_score_run(evit_vit_runner_forward, &run, batch, &m->cfg, d, 0, s);
    evit_vit_runner_free(&run);
    return rc;
}

const char *evit_score_name(const struct evit_score *s) { return s->seg ? "mIoU" : "top-1"; }
const char *evit_score_key(const struct evit_score *s) { return s->seg ? "miou" : "top1"; }

void evit_score_free(struct evit_score *s)
{
    if (s->seg)
        evit_seg_eval_free(&s->sg);
    else
        evit_eval_result_free(&s->cls);
    memset(s, 0, sizeof *s);
}

int evit_eval_view_epoch(evit_forward_fn fn, void *ctx, int batch, size_t row, const struct evit_dataset *d,
                         const struct evit_augment_config *aug, uint64_t seed, int e, float *out)
{
    size_t img = (size_t)d->h * d->w * d->c;
    uint8_t *x = evit_malloc(img * (size_t)batch);
    for (int s = 0; s < d->n; s += batch) {
        int B = d->n - s < batch ? d->n - s : batch;
        for (int b = 0; b < B; b++)
            evit_augment_view(x + (size_t)b * img, d->images + (size_t)(s + b) * img, d->h, d->w, d->c, aug, seed, e,
                              s + b);
        fn(ctx, x, B, out + (size_t)s * row);
    }
    free(x);
    for (size_t i = 0; i < (size_t)d->n * row; i++)
        if (!isfinite(out[i])) return evit_error("model produced NaN or Inf logits on an augmented view");
    return EVIT_OK;
}

/* The model's logits of E augmented views of every image: view e of image
 * i is evit_augment_view(seed, e, i), whatever the batch. */
int evit_eval_views(evit_forward_fn fn, void *ctx, int batch, int k, const struct evit_dataset *d,
                      const struct evit_augment_config *aug, uint64_t seed, int epochs, int progress,
                      float *views /* (epochs, n, k) */)
{
    double t0 = evit_now();
    for (int e = 0; e < epochs; e++) {
        if (evit_eval_view_epoch(fn, ctx, batch, (size_t)k, d, aug, seed, e, views + (size_t)e * d->n * k) < 0)
            return EVIT_ERR;
        if (progress)
            evit_info("views: epoch %d/%d done, %.0f img/s", e + 1, epochs,
                      (double)(e + 1) * d->n / (evit_now() - t0));
    }
    return EVIT_OK;
}
