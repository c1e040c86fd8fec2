/* dataset.h: image datasets in HDF5, for classification or segmentation.
 *
 * Layout (docs/FORMATS.md):
 *   /images   uint8 (N, H, W, C)
 *   /labels   int32 (N), each in [0, classes)             classification
 *   /masks    uint8 (N, H, W), each in [0, classes) or    segmentation
 *             ignore_index (an unlabelled pixel)
 *   attributes on "/": format = "evit-dataset", format_version = 1
 *     (classification) or 2 (segmentation: evit builds that predate masks
 *     refuse the file in one line), classes (variable-length strings, one
 *     per class; for segmentation class 0 is usually the background), mean
 *     and std (float32 per channel, of pixel/255, computed at import),
 *     source; segmentation adds task = "segmentation" and ignore_index
 *     (int32: a mask value in [classes, 255], or -1 for none).
 *
 * The task is what the file holds: masks != NULL is a segmentation
 * dataset, labels != NULL a classification one, never both.
 *
 * Ownership: evit_dataset_load fills a struct whose buffers the caller
 * releases with evit_dataset_free. */
#ifndef EVIT_DATASET_H
#define EVIT_DATASET_H

#include <stddef.h>
#include <stdint.h>

#define EVIT_DATASET_VERSION 1     /* classification */
#define EVIT_DATASET_SEG_VERSION 2 /* segmentation */

/* What a stage accepts (a bit set) and what a dataset is. */
enum evit_task { EVIT_TASK_CLASSIFY = 1, EVIT_TASK_SEGMENT = 2 };

struct evit_dataset {
    int n, h, w, c;
    int classes;
    char **class_names; /* classes strings */
    uint8_t *images;    /* (n, h, w, c) */
    int32_t *labels;    /* (n), classification; else NULL */
    uint8_t *masks;     /* (n, h, w), segmentation; else NULL */
    int ignore;         /* segmentation: the mask value of unlabelled pixels, or -1 */
    float mean[4], std[4];
    char *source;
};

/* Computes mean and std per channel over all images (of pixel / 255). */
void evit_dataset_stats(struct evit_dataset *d);

/* EVIT_TASK_SEGMENT when d has masks, else EVIT_TASK_CLASSIFY. */
enum evit_task evit_dataset_task(const struct evit_dataset *d);

/* Validates labels or masks, then writes to a temporary file renamed into
 * place. */
int evit_dataset_save(const struct evit_dataset *d, const char *path);

/* Reads and validates everything (shapes, label or mask range,
 * attributes) of a classification dataset; a segmentation one is refused
 * in one line. */
int evit_dataset_load(const char *path, struct evit_dataset *d);

/* The same for the tasks in accept (EVIT_TASK_* bits); a dataset of
 * another task is refused in one line naming both. */
int evit_dataset_load_task(const char *path, struct evit_dataset *d, unsigned accept);

/* Reads only the attributes and shapes (images/labels/masks stay NULL),
 * of a classification dataset; _task as above. */
int evit_dataset_load_header(const char *path, struct evit_dataset *d);
int evit_dataset_load_header_task(const char *path, struct evit_dataset *d, unsigned accept);

void evit_dataset_free(struct evit_dataset *d);

/* Fingerprint of the labels in order, or of the masks' bytes (FNV-1a 64);
 * identifies a dataset for logits files. */
uint64_t evit_dataset_fingerprint(const struct evit_dataset *d);

#endif
