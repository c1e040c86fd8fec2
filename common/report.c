/* report.c: see report.h. */
#include "report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "config.h"
#include "eval.h"
#include "json.h"
#include "util.h"

cJSON *evit_report_new(const char *stage, const char *model_path, const char *dataset_path,
                       const char *parent_report)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "report_version", EVIT_REPORT_VERSION);
    cJSON_AddStringToObject(r, "stage", stage);
    cJSON_AddStringToObject(r, "created", when);
    cJSON_AddStringToObject(r, "model", model_path);
    struct stat st;
    if (stat(model_path, &st) == 0) cJSON_AddNumberToObject(r, "model_file_bytes", (double)st.st_size);
    if (dataset_path) {
        cJSON_AddStringToObject(r, "dataset", dataset_path);
        /* "dataset" is as typed, relative to where this ran; the canonical
         * path lets evit-report tell datasets apart from anywhere */
        char *real = realpath(dataset_path, NULL);
        if (real) cJSON_AddStringToObject(r, "dataset_real", real);
        free(real);
    } else {
        cJSON_AddNullToObject(r, "dataset");
    }
    cJSON_AddStringToObject(r, "evit_version", PACKAGE_VERSION);
    cJSON_AddStringToObject(r, "git_revision", EVIT_GIT_REV);
    if (parent_report)
        cJSON_AddStringToObject(r, "parent", parent_report);
    else
        cJSON_AddNullToObject(r, "parent");
    cJSON_AddObjectToObject(r, "config");
    return r;
}

void evit_report_add_model(cJSON *r, const struct evit_vit_config *cfg, double model_bytes)
{
    cJSON_AddNumberToObject(r, "params", (double)evit_config_params(cfg));
    cJSON_AddNumberToObject(r, "model_bytes", model_bytes);
    cJSON_AddNumberToObject(r, "mflops", evit_config_mflops(cfg));
    /* the tokens entering each block: fewer after Token Merging (merge_r) */
    cJSON *tok = cJSON_AddArrayToObject(r, "tokens");
    for (int l = 0; l < cfg->depth; l++) cJSON_AddItemToArray(tok, cJSON_CreateNumber(evit_config_tokens_at(cfg, l)));
    cJSON *conf = cJSON_GetObjectItemCaseSensitive(r, "config");
    cJSON_AddItemToObject(conf, "model", evit_config_to_json(cfg));
}

/* JSON has no NaN: a class with no images gets null. */
static cJSON *number_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

void evit_report_add_eval(cJSON *r, const struct evit_eval_result *e, char *const *names)
{
    char buf[32];
    cJSON_AddNumberToObject(r, "images", e->n);
    cJSON_AddNumberToObject(r, "top1", e->top1);
    cJSON_AddNumberToObject(r, "top5", e->top5);
    cJSON_AddNumberToObject(r, "loss", e->loss);
    cJSON *pc = cJSON_AddObjectToObject(r, "per_class_accuracy");
    cJSON *cm = cJSON_AddArrayToObject(r, "confusion");
    for (int c = 0; c < e->k; c++) {
        snprintf(buf, sizeof buf, "%d", c);
        cJSON_AddItemToObject(pc, names ? names[c] : buf, number_or_null(e->class_acc[c]));
        cJSON *row = cJSON_CreateArray();
        for (int j = 0; j < e->k; j++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber((double)e->confusion[(size_t)c * e->k + j]));
        cJSON_AddItemToArray(cm, row);
    }
    cJSON_AddNumberToObject(r, "images_per_s", e->images_per_s);
    /* images_per_s scales with this: evit-report compares throughputs only
     * between evaluations run at the same count */
    cJSON_AddNumberToObject(r, "threads", evit_get_threads());
}

void evit_report_add_seg(cJSON *r, const struct evit_seg_eval *e, char *const *names)
{
    char buf[32];
    cJSON_AddNumberToObject(r, "images", e->n);
    cJSON_AddItemToObject(r, "miou", number_or_null(100.0 * e->score.miou));
    cJSON_AddItemToObject(r, "dice", number_or_null(100.0 * e->score.dice));
    cJSON_AddItemToObject(r, "pixel_accuracy", number_or_null(100.0 * e->score.pixel_acc));
    cJSON_AddNumberToObject(r, "classes_present", e->score.present);
    cJSON_AddItemToObject(r, "loss", number_or_null(e->loss));
    cJSON_AddNumberToObject(r, "pixels", (double)evit_segmetric_pixels(&e->conf));
    cJSON *iou = cJSON_AddObjectToObject(r, "per_class_iou");
    cJSON *dice = cJSON_AddObjectToObject(r, "per_class_dice");
    for (int c = 0; c < e->k; c++) {
        snprintf(buf, sizeof buf, "%d", c);
        cJSON_AddItemToObject(iou, names ? names[c] : buf, number_or_null(100.0 * e->iou[c]));
        cJSON_AddItemToObject(dice, names ? names[c] : buf, number_or_null(100.0 * e->dice[c]));
    }
    cJSON_AddNumberToObject(r, "images_per_s", e->images_per_s);
    cJSON_AddNumberToObject(r, "threads", evit_get_threads());
}

int evit_report_save(cJSON *r, const char *path, double wall_s)
{
    cJSON_DeleteItemFromObject(r, "wall_s");
    cJSON_AddNumberToObject(r, "wall_s", wall_s);
    return evit_json_save(r, path);
}

const char *evit_report_parent(const char *explicit_parent, const char *model_report, const char *model_parent,
                               const char *writing)
{
    if (explicit_parent) return explicit_parent;
    if (model_report && !(writing && strcmp(model_report, writing) == 0)) return model_report;
    return model_parent;
}

void evit_report_add_latency(cJSON *r, const double ms[3], int runs)
{
    cJSON_AddNumberToObject(r, "latency_ms", ms[0]);
    cJSON_AddNumberToObject(r, "latency_mean_ms", ms[1]);
    cJSON_AddNumberToObject(r, "latency_p99_ms", ms[2]);
    cJSON_AddNumberToObject(r, "latency_runs", runs);
}

void evit_report_add_score(cJSON *r, const struct evit_score *s, char *const *names)
{
    if (s->seg)
        evit_report_add_seg(r, &s->sg, names);
    else
        evit_report_add_eval(r, &s->cls, names);
}
