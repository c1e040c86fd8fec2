/* report.h: the JSON report every evaluating command writes.
 *
 * Fields (docs/REPORTS.md): report_version, stage, created (UTC, ISO 8601),
 * model, model_file_bytes, dataset, images, top1, top5 (percent), loss,
 * per_class_accuracy {name: percent}, confusion [[true][pred]], params,
 * model_bytes (weights at their stored precision), mflops (per image),
 * images_per_s, wall_s, evit_version, git_revision, config {model shape and
 * the stage's own settings}, parent (path of the report this model was
 * derived from, or null).
 *
 * Ownership: evit_report_new returns a tree the caller deletes with
 * cJSON_Delete; the add functions copy what they are given. */
#ifndef EVIT_REPORT_H
#define EVIT_REPORT_H

#include <cJSON.h>

struct evit_eval_result;
struct evit_vit_config;

#define EVIT_REPORT_VERSION 1

cJSON *evit_report_new(const char *stage, const char *model_path, const char *dataset_path,
                       const char *parent_report /* or NULL */);

/* params, model_bytes, mflops and the model config under "config.model". */
void evit_report_add_model(cJSON *r, const struct evit_vit_config *cfg, double model_bytes);

/* top1, top5, loss, per-class accuracy, confusion, images/s. */
void evit_report_add_eval(cJSON *r, const struct evit_eval_result *e,
                          char *const *class_names /* k names or NULL */);

/* The one rule for the report a new report derives from ("parent"): the
 * explicit --parent when given; else the model's own report (the one that
 * describes the checkpoint), unless that is the report being written; else
 * the report the model itself derives from; else NULL. */
const char *evit_report_parent(const char *explicit_parent, const char *model_report, const char *model_parent,
                               const char *writing /* or NULL */);

/* latency_ms (median), latency_mean_ms, latency_p99_ms, latency_runs:
 * batch-1 latency through libevrt (evit_qmodel_latency). */
/* A segmentation evaluation (eval.h): images, miou, dice, pixel_accuracy
 * (percent; mIoU and Dice the means over the classes present in truth or
 * prediction, classes_present of them), loss, pixels, per_class_iou and
 * per_class_dice (percent, null for an absent class), images_per_s,
 * threads. */
struct evit_seg_eval;
void evit_report_add_seg(cJSON *r, const struct evit_seg_eval *e, char *const *names);
/* Either of the two, as the score's task has it (eval.h). */
struct evit_score;
void evit_report_add_score(cJSON *r, const struct evit_score *s, char *const *names);

void evit_report_add_latency(cJSON *r, const double ms[3], int runs);

/* Sets wall_s and writes atomically. */
int evit_report_save(cJSON *r, const char *path, double wall_s);

#endif
