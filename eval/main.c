/* evit-eval: accuracy of a checkpoint on a dataset, as a JSON report. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "augment.h"
#include "dataset.h"
#include "dist.h"
#include "eval.h"
#include "logits.h"
#include "qmodel.h"
#include "recipe.h"
#include "report.h"
#include "util.h"
#include "vit.h"

static const char *usage =
    "usage: evit-eval MODEL DATA [--report R.json] [--save-logits L.h5] [options]\n"
    "\n"
    "Evaluates a model on a dataset: top-1, top-5, mean loss, per-class accuracy,\n"
    "confusion matrix, throughput. Prints a summary and writes a JSON report.\n"
    "A segmentation model (head seg_linear or seg_mlp) on a segmentation dataset\n"
    "is scored per pixel instead: mIoU, Dice, pixel accuracy, per-class IoU and\n"
    "Dice (docs/SEGMENT.md).\n"
    "\n"
    "  MODEL                checkpoint (.h5), or a quantized model from\n"
    "                       evit-quantize (run by the runtime's int8 kernels),\n"
    "                       or a model file from evit-export (.evit)\n"
    "  DATA                 dataset (.h5, from evit-data import)\n"
    "  -r, --report F       report to write (JSON)\n"
    "  -l, --save-logits F  also save the logits (N, K) for distillation (a\n"
    "                       segmentation model's: per patch, (N, g*g, K))\n"
    "  -p, --parent F       report of the model this one was derived from\n"
    "                       (default: the report the checkpoint names as its\n"
    "                       own, else its parent's)\n"
    "      --stage NAME     stage named in the report (default: the checkpoint's)\n"
    "  -b, --batch N        images per forward pass (default 64)\n"
    EVIT_CLI_LATENCY_HELP
    "      --augment RECIPE with --save-logits: also save the logits of\n"
    "                       augmented views, --epochs of them per image, view e\n"
    "                       of image i drawn from (seed, e, i) alone with\n"
    "                       the recipe's augmentation, seed its augment.seed\n"
    "                       (else its seed); evit-distill replays the same\n"
    "                       views (docs/DISTILL.md, consistent distillation)\n"
    "      --epochs E       views per image (default 1)\n"
    "      --topk K         keep each view's K most likely classes (as\n"
    "                       probabilities, 3 bytes each up to 256 classes);\n"
    "                       0 keeps dense float32 logits (default); a\n"
    "                       segmentation model's views need K >= 1 (kept per\n"
    "                       patch) and take crops and flips only\n"
    "  -t, --threads N      threads (default: all cores)\n"
    "  -q, --quiet          no progress lines\n"
    "  -h, --help           this text\n"
    "  -V, --version        print the version\n";

struct eval_args {
    const char *model, *data, *report, *logits, *parent, *stage, *augment;
    int batch, quiet, latency, epochs, topk;
};

static int parse_args(int argc, char **argv, struct eval_args *a)
{
    const struct evit_opt opts[] = {EVIT_OPT_S("report", 'r', &a->report),
                                    EVIT_OPT_S("save-logits", 'l', &a->logits),
                                    EVIT_OPT_S("parent", 'p', &a->parent),
                                    EVIT_OPT_S("stage", 0, &a->stage),
                                    EVIT_OPT_I("batch", 'b', &a->batch, 1, 65536),
                                    EVIT_OPT_S("augment", 0, &a->augment),
                                    EVIT_OPT_I("epochs", 0, &a->epochs, 1, 10000),
                                    EVIT_OPT_I("topk", 0, &a->topk, 0, 100000),
                                    EVIT_OPT_END};
    int first, r = evit_cli_parse(argc, argv, "evit-eval", usage, opts, EVIT_CLI_THREADS | EVIT_CLI_LATENCY,
                                   &a->quiet, &a->latency, &first);
    if (r != EVIT_CLI_NEXT) return r;
    if (argc - first != 2) return evit_cli_usage_error("evit-eval", "expected MODEL and DATA");
    if (a->augment && !a->logits) return evit_cli_usage_error("evit-eval", "--augment needs --save-logits");
    if (!a->augment && (a->epochs || a->topk))
        return evit_cli_usage_error("evit-eval", "--epochs and --topk go with --augment");
    a->model = argv[first];
    a->data = argv[first + 1];
    return EVIT_EXIT_OK;
}

/* 1 when path starts with the model file magic (evit-export's .evit). */
static int is_model_file(const char *path)
{
    char b[8];
    FILE *fp = fopen(path, "rb");
    int yes = fp && fread(b, 1, 8, fp) == 8 && memcmp(b, "EVITMODL", 8) == 0;
    if (fp) fclose(fp);
    return yes;
}

/* Maps a .evit file; q->rt becomes its model (tensors in the mapping) and
 * q->vit.cfg its config, so the quantized model's runner evaluates it. */
static int load_model_file(const char *path, evrt_file **f, struct evit_qmodel *q)
{
    char err[EVRT_ERR_MAX];
    if (evrt_open(f, path, err, sizeof err) != EVRT_OK) return evit_error("%s: %s", path, err);
    const struct evrt_model *rt = evrt_file_model(*f);
    struct evit_vit_config *c = &q->vit.cfg;
    if (rt->depth > EVIT_MAX_DEPTH) return evit_error("%s: depth %d exceeds %d", path, rt->depth, EVIT_MAX_DEPTH);
    q->rt = *rt;
    snprintf(c->name, sizeof c->name, "%s", evrt_file_name(*f));
    EVIT_QMODEL_COPY_GEOMETRY(c, rt);
    c->head = evit_qmodel_config_head(rt->head_kind);
    if (rt->head_kind == EVRT_HEAD_SEG_MLP) { /* the config's decoder, for the report's sizes */
        c->decoder_dim = rt->decoder->dim;
        c->decoder_nlevels = rt->decoder->levels;
        memcpy(c->decoder_levels, rt->decoder->level, sizeof(int) * (size_t)rt->decoder->levels);
    }
    for (int l = 0; l < rt->depth; l++)
        c->blocks[l] = (struct evit_block_shape){rt->blocks[l].heads, rt->blocks[l].head_dim, rt->blocks[l].mlp,
                                                 rt->blocks[l].merge_r};
    return EVIT_OK;
}


/* The views --augment asks for: the recipe's augmentation and views seed
 * (its augment.seed, else its seed), --epochs and --topk. */
static int view_config(const struct eval_args *a, struct evit_logit_views *v)
{
    struct evit_recipe rec = {0};
    memset(v, 0, sizeof *v);
    v->epochs = a->epochs ? a->epochs : 1;
    v->topk = a->topk;
    if (evit_recipe_load(a->augment, NULL, &rec) < 0) return EVIT_ERR;
    v->seed = (uint64_t)rec.augment_seed;
    v->aug = rec.augment;
    evit_recipe_free(&rec);
    return EVIT_OK;
}

static void print_views(const struct eval_args *a, const struct evit_logit_views *v, int n, double bytes)
{
    char desc[160];
    evit_augment_describe(desc, sizeof desc, &v->aug);
    printf("%s: %d views of %d images (%s, seed %llu), %s, %.0f bytes per image per epoch\n", a->logits, v->epochs, n,
           desc, (unsigned long long)v->seed, v->topk ? "top-k" : "dense", bytes);
}

static void report_views(cJSON *rep, const struct eval_args *a, const struct evit_logit_views *v, double bytes)
{
    cJSON *vj = cJSON_AddObjectToObject(rep, "views");
    cJSON_AddStringToObject(vj, "recipe", a->augment);
    cJSON_AddNumberToObject(vj, "epochs", v->epochs);
    cJSON_AddNumberToObject(vj, "topk", v->topk);
    cJSON_AddNumberToObject(vj, "bytes_per_image_per_epoch", bytes);
}

/* A segmentation model's views, one epoch at a time (evit_logits_view_fn). */
struct seg_views {
    const struct eval_args *a;
    evit_forward_fn fn;
    void *run;
    const struct evit_dataset *d;
    const struct evit_logit_views *v;
    size_t row; /* floats per image: g*g*K */
    double t0;
};

static int seg_view_epoch(void *ctx, int e, float *out)
{
    struct seg_views *s = ctx;
    if (evit_eval_view_epoch(s->fn, s->run, s->a->batch, s->row, s->d, &s->v->aug, s->v->seed, e, out) < 0)
        return EVIT_ERR;
    if (!s->a->quiet)
        evit_info("views: epoch %d/%d done, %.0f img/s", e + 1, s->v->epochs,
                  (double)(e + 1) * s->d->n / (evit_now() - s->t0));
    return EVIT_OK;
}

/* What --augment asks of a segmentation model that it cannot give: random
 * erasing (an erased pixel would need a label) and dense views (E N g^2 K
 * floats: 1.3 GB for 20 epochs of 10,000 12x12-patch scenes of 11
 * classes), each one line. */
static int seg_views_supported(const struct eval_args *a, const struct evit_logit_views *v, int K)
{
    if (v->aug.erase_prob > 0)
        return evit_error("%s: asks for random erasing, which a segmentation model's views do not take (the erased "
                          "pixels would need a label); crops and flips only", a->augment);
    if (v->topk < 1 || v->topk > K)
        return evit_error("%s: a segmentation model's views are kept as their top-k per patch: give --topk between 1 "
                          "and %d (dense views would take 4 bytes per class per patch per epoch)", a->model, K);
    return EVIT_OK;
}

/* A segmentation model on a segmentation dataset: mIoU, Dice and pixel
 * accuracy (evit_eval_seg_run), printed and reported; with --augment also
 * the top-k of its views, per patch (seg_views_supported says what is
 * refused). */
static int eval_seg(const struct eval_args *a, const struct evit_vit *m, const struct evrt_model *rt,
                    const struct evit_ckpt_meta *meta, const struct evit_dataset *d, evit_forward_fn fn, void *run,
                    double model_bytes, double t0)
{
    struct evit_seg_eval r;
    struct evit_logit_views v = {0};
    int g = evit_config_grid(&m->cfg);
    double view_bytes = 0.0;
    if (a->augment && (view_config(a, &v) < 0 || seg_views_supported(a, &v, m->cfg.classes) < 0))
        return EVIT_EXIT_FAIL;
    if (evit_dist_size() > 1) {
        evit_error("%s: a segmentation evaluation runs in one process so far", a->model);
        return EVIT_EXIT_FAIL;
    }
    float *keep = a->logits ? evit_malloc(sizeof(float) * (size_t)d->n * g * g * m->cfg.classes) : NULL;
    if (evit_eval_seg_run(fn, run, a->batch, &m->cfg, d, !a->quiet, keep, &r) < 0) {
        free(keep);
        return EVIT_EXIT_FAIL;
    }
    printf("%s on %s: mIoU %.2f%%  Dice %.2f%%  pixel accuracy %.2f%%  loss %.4f  (%d images, %.0f img/s)\n",
           a->model, a->data, 100.0 * r.score.miou, 100.0 * r.score.dice, 100.0 * r.score.pixel_acc, r.loss, r.n,
           r.images_per_s);
    int rc = EVIT_EXIT_OK;
    double lat[3] = {0.0, 0.0, 0.0};
    if (a->latency) {
        /* through libevrt to the mask; a float checkpoint on its float32 path */
        int bad = rt ? evit_qmodel_latency(rt, d, a->latency, a->model, lat) < 0
                     : evit_qmodel_vit_latency(m, d, a->latency, a->model, lat) < 0;
        if (bad) rc = EVIT_EXIT_FAIL;
        else
            printf("%s: batch-1 latency through libevrt to the mask (1 thread): median %.3f ms, mean %.3f ms, "
                   "p99 %.3f ms\n", a->model, lat[0], lat[1], lat[2]);
    }
    if (rc == EVIT_EXIT_OK && keep && !a->augment &&
        evit_logits_save_grid(a->logits, keep, d->n, g, m->cfg.classes, evit_dataset_fingerprint(d), a->data,
                              a->model) < 0)
        rc = EVIT_EXIT_FAIL;
    if (rc == EVIT_EXIT_OK && a->augment) {
        /* the views, an epoch at a time: the dense logits of one epoch are
         * cut to their top-k before the next is computed */
        struct seg_views sv = {a, fn, run, d, &v, (size_t)g * g * m->cfg.classes, evit_now()};
        if (evit_logits_save_grid_views(a->logits, keep, d->n, g, m->cfg.classes, evit_dataset_fingerprint(d), a->data,
                                        a->model, &v, seg_view_epoch, &sv, &view_bytes) < 0)
            rc = EVIT_EXIT_FAIL;
        else
            print_views(a, &v, d->n, view_bytes);
    }
    free(keep);
    if (rc == EVIT_EXIT_OK && a->report) {
        const char *stage = a->stage ? a->stage : meta->stage ? meta->stage : "eval";
        const char *parent = evit_report_parent(a->parent, meta->report, meta->parent_report, a->report);
        cJSON *rep = evit_report_new(stage, a->model, a->data, parent);
        evit_report_add_model(rep, &m->cfg, model_bytes);
        evit_report_add_seg(rep, &r, d->class_names);
        cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(rep, "config"), "batch", a->batch);
        if (a->augment) report_views(rep, a, &v, view_bytes);
        if (a->latency) evit_report_add_latency(rep, lat, a->latency);
        if (evit_report_save(rep, a->report, evit_now() - t0) < 0) rc = EVIT_EXIT_FAIL;
        cJSON_Delete(rep);
    }
    evit_seg_eval_free(&r);
    return rc;
}

static int eval_main(int argc, char **argv)
{
    struct eval_args a = {.batch = 64};
    struct evit_vit m = {0};
    struct evit_ckpt_meta meta = {0};
    struct evit_dataset d = {0};
    struct evit_eval_result r = {0};
    struct evit_vit_runner run = {0};
    struct evit_qmodel q = {0};
    struct evit_qmodel_runner qrun = {0};
    int rc = EVIT_EXIT_FAIL;
    double t0 = evit_now();
    evit_cli_init();
    int pa = parse_args(argc, argv, &a);
    if (pa == -1) return EVIT_EXIT_OK; /* --help, --version */
    if (pa != EVIT_EXIT_OK) return pa;

    /* a quantized model (evit-quantize) runs through the runtime, int8 kernels and all */
    evrt_file *file = NULL;
    int is_file = is_model_file(a.model);
    int quantized = is_file || evit_qmodel_is_quantized(a.model);
    if (is_file) {
        if (load_model_file(a.model, &file, &q) < 0) {
            evrt_close(file);
            return EVIT_EXIT_FAIL;
        }
    } else if (quantized ? evit_qmodel_load(a.model, &q, &meta) < 0 : evit_ckpt_load_heads(a.model, &m, &meta, EVIT_HEADS_ALL) < 0)
        return EVIT_EXIT_FAIL;
    const struct evit_vit *mv = quantized ? &q.vit : &m;
    if (evit_dataset_load_task(a.data, &d, EVIT_TASK_CLASSIFY | EVIT_TASK_SEGMENT) < 0) goto fail;
    if (evit_eval_check_compat(mv, a.model, &d, a.data) < 0) goto fail;
    if (quantized) {
        if (evit_qmodel_runner_init(&qrun, &q, a.batch, evit_get_threads(), a.model) < 0) goto fail;
    } else {
        evit_vit_runner_init(&run, &m, a.batch);
    }
    if (d.masks) { /* a segmentation model (check_compat): scored per pixel */
        rc = eval_seg(&a, mv, quantized ? &q.rt : NULL, &meta, &d, quantized ? evit_qmodel_runner_forward : evit_vit_runner_forward,
                      quantized ? (void *)&qrun : (void *)&run,
                      quantized ? (double)evrt_model_bytes(&q.rt) : 4.0 * (double)evit_config_params(&m.cfg), t0);
        goto fail;
    }
    if (evit_eval_run_dist(quantized ? evit_qmodel_runner_forward : evit_vit_runner_forward,
                           quantized ? (void *)&qrun : (void *)&run, a.batch, mv->cfg.classes, &d,
                           a.logits != NULL, !a.quiet, &r) < 0)
        goto fail;
    if (evit_dist_rank() > 0) { /* rank 0 reports and writes */
        rc = EVIT_EXIT_OK;
        goto fail;
    }
    printf("%s on %s: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%d images, %.0f img/s)\n", a.model,
           a.data, r.top1, r.top5, r.loss, r.n, r.images_per_s);
    double lat[3] = {0.0, 0.0, 0.0}, view_bytes = 0.0;
    struct evit_logit_views v = {0};
    if (a.latency) {
        /* a float checkpoint runs the runtime's float32 path */
        if (!quantized) evit_qmodel_from_vit(&q, &m);
        int bad = evit_qmodel_latency(&q.rt, &d, a.latency, a.model, lat) < 0;
        if (!quantized) evit_qmodel_free(&q);
        if (bad) goto fail;
        printf("%s: batch-1 latency through libevrt (1 thread): median %.3f ms, mean %.3f ms, p99 %.3f ms\n",
               a.model, lat[0], lat[1], lat[2]);
    }
    if (a.logits && !a.augment &&
        evit_logits_save(a.logits, r.logits, r.n, r.k, evit_dataset_fingerprint(&d), a.data, a.model, r.top1) < 0)
        goto fail;
    if (a.augment) {
        if (view_config(&a, &v) < 0) goto fail;
        if (v.topk > r.k) {
            evit_error("--topk %d: the model has only %d classes", v.topk, r.k);
            goto fail;
        }
        float *views = evit_malloc(sizeof(float) * (size_t)v.epochs * r.n * r.k);
        int bad = evit_eval_views(quantized ? evit_qmodel_runner_forward : evit_vit_runner_forward,
                             quantized ? (void *)&qrun : (void *)&run, a.batch, r.k, &d, &v.aug, v.seed, v.epochs,
                             !a.quiet, views) < 0 ||
                  evit_logits_save_views(a.logits, r.logits, r.n, r.k, evit_dataset_fingerprint(&d), a.data, a.model,
                                         r.top1, views, &v, &view_bytes) < 0;
        free(views);
        if (bad) goto fail;
        print_views(&a, &v, r.n, view_bytes);
    }
    if (a.report) {
        const char *stage = a.stage ? a.stage : meta.stage ? meta.stage : "eval";
        /* an evaluation of a checkpoint descends from the report that
         * describes it, else from that model's own parent */
        const char *parent = evit_report_parent(a.parent, meta.report, meta.parent_report, a.report);
        cJSON *rep = evit_report_new(stage, a.model, a.data, parent);
        evit_report_add_model(rep, &mv->cfg, quantized ? (double)evrt_model_bytes(&q.rt)
                                                       : 4.0 * (double)evit_config_params(&m.cfg));
        evit_report_add_eval(rep, &r, d.class_names);
        cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(rep, "config"), "batch", a.batch);
        cJSON_AddNumberToObject(rep, "ranks", evit_dist_size());
        if (a.augment) report_views(rep, &a, &v, view_bytes);
        if (a.latency) evit_report_add_latency(rep, lat, a.latency);
        int bad = evit_report_save(rep, a.report, evit_now() - t0) < 0;
        cJSON_Delete(rep);
        if (bad) goto fail;
    }
    rc = EVIT_EXIT_OK;
fail:
    if (run.acts) evit_vit_runner_free(&run);
    if (qrun.ctx) evit_qmodel_runner_free(&qrun);
    if (quantized && !is_file) evit_qmodel_free(&q);
    if (file) evrt_close(file);
    evit_eval_result_free(&r);
    evit_dataset_free(&d);
    evit_ckpt_meta_free(&meta);
    evit_vit_free(&m);
    return rc;
}

int main(int argc, char **argv)
{
    return evit_dist_main(eval_main, argc, argv);
}
