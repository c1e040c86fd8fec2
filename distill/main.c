/* evit-distill: train a student ViT from a teacher's saved logits, or on
 * labels alone. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "dataset.h"
#include "dist.h"
#include "eval.h"
#include "head.h"
#include "logits.h"
#include "recipe.h"
#include "qmodel.h"
#include "report.h"
#include "train.h"
#include "util.h"
#include "vit.h"

static const char *usage =
    "usage: evit-distill RECIPE.json --data TRAIN.h5 -o STUDENT.h5 [options]\n"
    "\n"
    "Trains a ViT with the recipe's optimiser, schedule, augmentation and loss:\n"
    "from a teacher's logits (distill.type soft or hard) or on labels (none).\n"
    "Writes STUDENT.h5 every epoch, STUDENT.best.h5 (best validation top-1) and\n"
    "STUDENT.state.h5 (optimiser and generator state, for --resume).\n"
    "A segmentation model (head seg_linear or seg_mlp) learns from a segmentation\n"
    "dataset's masks: pixel cross-entropy, best model by validation mIoU\n"
    "(docs/SEGMENT.md).\n"
    "\n"
    "  RECIPE               training recipe (configs/fmnist/*.json)\n"
    "  -d, --data F         training dataset (evit-data import)\n"
    "  -T, --teacher F      teacher logits over the training set (evit-eval\n"
    "                       --save-logits, or dense/top-k HDF5 from PyTorch)\n"
    "  -v, --val F          validation dataset, evaluated every epoch\n"
    "  -o, --output F       student checkpoint\n"
    "  -r, --report F       JSON report\n"
    "  -i, --init F         start from this checkpoint (its shape wins over the\n"
    "                       recipe's model): fine-tuning a pruned model\n"
    "  -P, --profile NAME   apply the recipe's profile NAME (e.g. full)\n"
    "      --resume         continue from STUDENT.state.h5 if it exists\n"
    "      --steps N        stop after N optimiser steps\n"
    "      --no-shuffle     take images in dataset order\n"
    "      --seed N         the run's seed instead of the recipe's (initial\n"
    "                       weights, order, augmentation; saved views keep\n"
    "                       the recipe's augment.seed when it has one)\n"
    "      --parent F       report this model derives from (default: the --init\n"
    "                       checkpoint's or the teacher's report)\n"
    "      --stage NAME     stage named in the report and checkpoint (default distill)\n"
    EVIT_CLI_STAGE_HELP;

struct args {
    const char *recipe, *data, *teacher, *val, *out, *report, *init, *profile, *parent, *stage;
    int resume, shuffle, quiet, latency;
    long steps, seed; /* seed -1: the recipe's */
};

static int parse_args(int argc, char **argv, struct args *a)
{
    const struct evit_opt opts[] = {EVIT_OPT_S("data", 'd', &a->data),
                                    EVIT_OPT_S("teacher", 'T', &a->teacher),
                                    EVIT_OPT_S("val", 'v', &a->val),
                                    EVIT_OPT_S("output", 'o', &a->out),
                                    EVIT_OPT_S("report", 'r', &a->report),
                                    EVIT_OPT_S("init", 'i', &a->init),
                                    EVIT_OPT_S("profile", 'P', &a->profile),
                                    EVIT_OPT_ON("resume", 0, &a->resume),
                                    EVIT_OPT_L("steps", 0, &a->steps, 1, 1000000000L),
                                    EVIT_OPT_OFF("no-shuffle", 0, &a->shuffle),
                                    EVIT_OPT_L("seed", 0, &a->seed, 0, 2147483647L),
                                    EVIT_OPT_S("parent", 0, &a->parent),
                                    EVIT_OPT_S("stage", 0, &a->stage),
                                    EVIT_OPT_END};
    int first, r = evit_cli_parse(argc, argv, "evit-distill", usage, opts, EVIT_CLI_THREADS | EVIT_CLI_LATENCY,
                                  &a->quiet, &a->latency, &first);
    if (r != EVIT_CLI_NEXT) return r;
    if (argc - first != 1) return evit_cli_usage_error("evit-distill", "expected one RECIPE argument");
    a->recipe = argv[first];
    if (!a->data) return evit_cli_usage_error("evit-distill", "missing --data TRAIN.h5");
    if (!a->out) return evit_cli_usage_error("evit-distill", "missing -o STUDENT.h5");
    return 0;
}

/* What segmentation training does not do yet (docs/SEGMENT.md): one line
 * each. */
static int segment_supported(const struct args *a, const struct evit_recipe *r)
{
    const char *why = r->kd == EVIT_KD_HARD       ? "hard distillation (distill.type hard)"
                      : r->augment.erase_prob > 0 ? "random erasing (the erased pixels would need a label)"
                      : evit_dist_size() > 1      ? "data-parallel training under mpirun"
                                                  : NULL;
    if (!why) return EVIT_OK;
    return evit_error("%s: a segmentation model does not take %s yet (docs/SEGMENT.md)", a->recipe, why);
}

/* Crops or flips beside a segmentation teacher need its logits of those
 * very views (evit-eval --augment); its plain logits describe the images
 * as they are. */
static int segment_views_needed(const struct args *a, const struct evit_recipe *r, const struct evit_logits *l)
{
    if (l->views.epochs || !(r->augment.crop_padding > 0 || r->augment.hflip)) return EVIT_OK;
    return evit_error("%s: a segmentation model does not take crops or flips with a teacher whose logits have no "
                      "views (%s is of the images as they are): save its views with evit-eval TEACHER DATA "
                      "--save-logits L.h5 --augment %s --epochs E --topk K (docs/SEGMENT.md)",
                      a->recipe, a->teacher, a->recipe);
}

/* The model to train: --init's weights and shape, else the recipe's shape
 * freshly initialised with the data's normalisation. */
static int make_model(const struct args *a, const struct evit_recipe *r, const struct evit_dataset *d,
                      struct evit_vit *m, char **init_report)
{
    *init_report = NULL;
    if (a->init) {
        struct evit_ckpt_meta meta;
        if (evit_ckpt_load_heads(a->init, m, &meta, EVIT_HEADS_ALL) < 0) return EVIT_ERR;
        const char *p = evit_report_parent(NULL, meta.report, meta.parent_report, a->report);
        if (p) *init_report = evit_strdup(p);
        evit_ckpt_meta_free(&meta);
        return EVIT_OK;
    }
    EVIT_ASSERT(r->has_model); /* checked before the data was read */
    evit_vit_alloc(m, &r->model);
    evit_vit_init(m, (uint64_t)r->seed);
    for (int c = 0; c < d->c && c < 4; c++) {
        m->mean[c] = d->mean[c];
        m->std[c] = d->std[c];
    }
    return EVIT_OK;
}

/* The teacher's accuracy on the validation set, when the logits file names
 * a checkpoint that is still there; NaN otherwise. */
/* The teacher's score on the validation set (top-1, or mIoU for a
 * segmentation teacher) when its checkpoint is still where its logits say,
 * and its report (the student's parent by default); NaN otherwise. */
static double teacher_val_score(const struct evit_logits *l, const struct evit_dataset *val, char **report)
{
    struct evit_vit t;
    struct evit_ckpt_meta meta;
    struct evit_score e;
    double score = NAN;
    *report = NULL;
    if (!l || !l->model || !val) return NAN;
    FILE *f = fopen(l->model, "rb");
    if (!f) return NAN;
    fclose(f);
    if (evit_ckpt_load_heads(l->model, &t, &meta, EVIT_HEADS_ALL) < 0) return NAN;
    const char *p = evit_report_parent(NULL, meta.report, meta.parent_report, NULL);
    if (p) *report = evit_strdup(p);
    if (t.cfg.img_size == val->h && t.cfg.channels == val->c && t.cfg.classes == val->classes &&
        evit_head_is_seg(t.cfg.head) == (val->masks != NULL)) {
        if (evit_score_vit(&t, val, 256, &e) == 0) {
            score = e.value;
            evit_score_free(&e);
        }
    }
    evit_ckpt_meta_free(&meta);
    evit_vit_free(&t);
    return score;
}

static cJSON *train_section(const struct evit_train_result *tr, const struct evit_logits *l,
                            const char *teacher_path, double teacher_top1)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "train_s", tr->train_s);
    cJSON_AddNumberToObject(o, "images_per_s", tr->images_per_s); /* the whole job's */
    cJSON_AddNumberToObject(o, "ranks", evit_dist_size());
    cJSON_AddNumberToObject(o, "epochs", tr->epochs_done);
    cJSON_AddNumberToObject(o, "steps", (double)tr->steps);
    cJSON_AddNumberToObject(o, "final_loss", tr->last_loss);
    if (isfinite(tr->best_top1)) {
        cJSON_AddNumberToObject(o, "best_val_top1", tr->best_top1);
        cJSON_AddNumberToObject(o, "best_epoch", tr->best_epoch);
    }
    if (isfinite(tr->final_top1)) cJSON_AddNumberToObject(o, "final_val_top1", tr->final_top1);
    if (teacher_path) {
        cJSON_AddStringToObject(o, "teacher_logits", teacher_path);
        if (l->model) cJSON_AddStringToObject(o, "teacher_model", l->model);
        if (isfinite(l->top1)) cJSON_AddNumberToObject(o, "teacher_train_top1", l->top1);
        if (isfinite(teacher_top1))
            cJSON_AddNumberToObject(o, l->grid ? "teacher_val_miou" : "teacher_val_top1", teacher_top1);
    }
    cJSON_AddItemToObject(o, "history", tr->history ? cJSON_Duplicate(tr->history, 1) : cJSON_CreateArray());
    return o;
}

static int distill_main(int argc, char **argv)
{
    struct args a = {.shuffle = 1, .seed = -1};
    struct evit_recipe r = {0};
    struct evit_dataset train = {0}, val = {0};
    struct evit_logits teacher = {0};
    struct evit_vit m = {0};
    struct evit_train_result tr = {0};
    struct evit_eval_result e = {0};
    char *best = NULL, *state = NULL, *init_report = NULL, *teacher_report = NULL;
    int rc = EVIT_EXIT_FAIL, have_teacher = 0;
    double t0 = evit_now();
    evit_cli_init();
    int pa = parse_args(argc, argv, &a);
    if (pa == -1) return EVIT_EXIT_OK;
    if (pa) return pa;
    /* in an MPI job rank 0 alone talks, validates and writes */
    int rank = evit_dist_rank();
    if (rank > 0) a.quiet = 1;

    if (evit_recipe_load(a.recipe, a.profile, &r) < 0) return EVIT_EXIT_FAIL;
    if (a.seed >= 0) {
        r.seed = a.seed;
        if (!r.augment_seed_set) r.augment_seed = a.seed;
    }
    if (r.kd != EVIT_KD_NONE && !a.teacher) {
        evit_error("%s: distill.type is %s but no --teacher logits were given", a.recipe,
                   evit_recipe_kd_name(r.kd));
        goto fail;
    }
    /* the model's task (its head) says which datasets it learns from */
    struct evit_vit_config shape = r.model;
    if (a.init && evit_ckpt_load_config(a.init, &shape) < 0) goto fail;
    if (!a.init && !r.has_model) {
        evit_error("%s: model: required unless --init gives a checkpoint", a.recipe);
        goto fail;
    }
    unsigned task = evit_head_is_seg(shape.head) ? EVIT_TASK_SEGMENT : EVIT_TASK_CLASSIFY;
    if (task == EVIT_TASK_SEGMENT && segment_supported(&a, &r) < 0) goto fail;
    if (evit_dataset_load_task(a.data, &train, task) < 0) goto fail;
    if (a.teacher) {
        if (evit_logits_load(a.teacher, &teacher) < 0) goto fail;
        have_teacher = 1;
        if (evit_logits_check(&teacher, a.teacher, &train, a.data) < 0) goto fail;
        /* per-patch logits for a segmentation student, per-image ones for a classifier */
        if ((task == EVIT_TASK_SEGMENT) != (teacher.grid > 0)) {
            evit_error("%s: %s; a %s student needs %s (evit-eval TEACHER DATA --save-logits)", a.teacher,
                       teacher.grid ? "a segmentation teacher's per-patch logits" : "per-image logits",
                       task == EVIT_TASK_SEGMENT ? "segmentation" : "classification",
                       task == EVIT_TASK_SEGMENT ? "a segmentation teacher's" : "a classifier's");
            goto fail;
        }
        if (task == EVIT_TASK_SEGMENT && segment_views_needed(&a, &r, &teacher) < 0) goto fail;
        if (evit_train_check_views(&r, &teacher, a.teacher, a.recipe) < 0) goto fail;
        if (teacher.views.epochs && !a.quiet)
            evit_info("replaying %d augmented view%s per image from %s (epoch e uses view e mod %d)",
                      teacher.views.epochs, teacher.views.epochs > 1 ? "s" : "", a.teacher, teacher.views.epochs);
    }
    if (a.val && evit_dataset_load_task(a.val, &val, task) < 0) goto fail;
    if (make_model(&a, &r, &train, &m, &init_report) < 0) goto fail;
    if (evit_eval_check_compat(&m, a.init ? a.init : a.recipe, &train, a.data) < 0) goto fail;
    if (a.val && evit_eval_check_compat(&m, a.init ? a.init : a.recipe, &val, a.val) < 0) goto fail;
    double teacher_top1 = have_teacher && rank == 0 ? teacher_val_score(&teacher, a.val ? &val : NULL, &teacher_report) : (double)NAN;

    best = evit_train_sibling(a.out, ".best");
    state = evit_train_sibling(a.out, ".state");
    const char *parent = a.parent ? a.parent : init_report ? init_report : teacher_report;
    struct evit_train_opts o = {
        .recipe = &r, .train = &train, .train_path = a.data, .val = a.val && rank == 0 ? &val : NULL,
        .teacher = have_teacher ? &teacher : NULL, .out_path = a.out,
        .best_path = a.val && rank == 0 ? best : NULL,
        .state_path = state, .resume = a.resume, .max_steps = a.steps, .shuffle = a.shuffle,
        .progress = !a.quiet,
        .meta = {.stage = a.stage ? a.stage : "distill", .parent_report = parent, .report = a.report,
                 .classes = train.classes, .class_names = train.class_names}};
    if (!a.quiet) {
        char ranks[64] = "";
        if (evit_dist_size() > 1)
            snprintf(ranks, sizeof ranks, " (global: %d ranks, about %d each)", evit_dist_size(),
                     r.batch / evit_dist_size());
        evit_info("training %s (%ld parameters) on %s: %d images, %d epochs of batch %d%s, %s%s%s",
                  m.cfg.name, evit_config_params(&m.cfg), a.data, train.n, r.epochs, r.batch, ranks,
                  r.kd == EVIT_KD_NONE ? "labels only" : "distilling (",
                  r.kd == EVIT_KD_NONE ? "" : evit_recipe_kd_name(r.kd), r.kd == EVIT_KD_NONE ? "" : ")");
    }
    if (evit_train_run(&m, &o, &tr) < 0) goto fail;
    if (rank > 0) {
        rc = EVIT_EXIT_OK;
        goto fail; /* the cleanup */
    }

    double lat[3];
    if (a.latency && evit_qmodel_vit_latency(&m, a.val ? &val : &train, a.latency, a.out, lat) < 0) goto fail;
    cJSON *rep = evit_report_new(o.meta.stage, a.out, a.val, parent);
    evit_report_add_model(rep, &m.cfg, 4.0 * (double)evit_config_params(&m.cfg));
    cJSON *conf = cJSON_GetObjectItemCaseSensitive(rep, "config");
    cJSON_AddItemToObject(conf, "recipe", cJSON_Duplicate(r.json, 1));
    cJSON_AddStringToObject(conf, "recipe_file", a.recipe);
    if (a.profile) cJSON_AddStringToObject(conf, "profile", a.profile);
    if (a.seed >= 0) cJSON_AddNumberToObject(conf, "seed", (double)a.seed);
    cJSON_AddStringToObject(conf, "train_data", a.data);
    if (a.init) cJSON_AddStringToObject(conf, "init", a.init);
    if (a.latency) evit_report_add_latency(rep, lat, a.latency);
    if (a.val && val.masks) {
        struct evit_seg_eval se;
        struct evit_vit_runner run;
        evit_vit_runner_init(&run, &m, 64);
        int bad = evit_eval_seg_run(evit_vit_runner_forward, &run, 64, &m.cfg, &val, 0, NULL, &se) < 0;
        evit_vit_runner_free(&run);
        if (bad) {
            cJSON_Delete(rep);
            goto fail;
        }
        evit_report_add_seg(rep, &se, val.class_names);
        printf("%s: validation mIoU %.2f%%, Dice %.2f%%, pixel accuracy %.2f%% (best mIoU %.2f%% at epoch %d), "
               "%.0f train img/s\n", a.out, 100.0 * se.score.miou, 100.0 * se.score.dice, 100.0 * se.score.pixel_acc,
               tr.best_top1, tr.best_epoch, tr.images_per_s);
        evit_seg_eval_free(&se);
    } else if (a.val) {
        if (evit_eval_top1(&m, &val, 256, &e) < 0) {
            cJSON_Delete(rep);
            goto fail;
        }
        evit_report_add_eval(rep, &e, val.class_names);
        printf("%s: validation top-1 %.2f%% (best %.2f%% at epoch %d)", a.out, e.top1, tr.best_top1,
               tr.best_epoch);
        if (isfinite(teacher_top1)) printf(", teacher %.2f%%", teacher_top1);
        printf(", %.0f train img/s\n", tr.images_per_s);
    } else {
        printf("%s: trained %d epochs, final loss %.4f, %.0f train img/s\n", a.out, tr.epochs_done,
               tr.last_loss, tr.images_per_s);
    }
    cJSON_AddItemToObject(rep, "train", train_section(&tr, &teacher, a.teacher, teacher_top1));
    if (a.report) {
        int bad = evit_report_save(rep, a.report, evit_now() - t0) < 0;
        cJSON_Delete(rep);
        if (bad) goto fail;
    } else {
        cJSON_Delete(rep);
    }
    rc = EVIT_EXIT_OK;
fail:
    cJSON_Delete(tr.history);
    evit_eval_result_free(&e);
    free(best);
    free(state);
    free(init_report);
    free(teacher_report);
    evit_vit_free(&m);
    evit_logits_free(&teacher);
    evit_dataset_free(&train);
    evit_dataset_free(&val);
    evit_recipe_free(&r);
    return rc;
}

int main(int argc, char **argv)
{
    return evit_dist_main(distill_main, argc, argv);
}
