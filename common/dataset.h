/* dataset.h: image classification datasets in HDF5.
 *
 * Layout (docs/FORMATS.md):
 *   /images   uint8 (N, H, W, C)
 *   /labels   int32 (N), each in [0, classes)
 *   attributes on "/": format = "evit-dataset", format_version = 1,
 *     classes (variable-length strings, one per class), mean and std
 *     (float32 per channel, of pixel/255, computed at import), source.
 *
 * Ownership: evit_dataset_load fills a struct whose buffers the caller
 * releases with evit_dataset_free. */
#ifndef EVIT_DATASET_H
#define EVIT_DATASET_H

#include <stddef.h>
#include <stdint.h>

#define EVIT_DATASET_VERSION 1

struct evit_dataset {
    int n, h, w, c;
    int classes;
    char **class_names; /* classes strings */
    uint8_t *images;    /* (n, h, w, c) */
    int32_t *labels;    /* (n) */
    float mean[4], std[4];
    char *source;
};

/* Computes mean and std per channel over all images (of pixel / 255). */
void evit_dataset_stats(struct evit_dataset *d);

/* Validates labels, then writes to a temporary file renamed into place. */
int evit_dataset_save(const struct evit_dataset *d, const char *path);

/* Reads and validates everything (shapes, label range, attributes). */
int evit_dataset_load(const char *path, struct evit_dataset *d);

/* Reads only the attributes and shapes (images/labels stay NULL). */
int evit_dataset_load_header(const char *path, struct evit_dataset *d);

void evit_dataset_free(struct evit_dataset *d);

/* Fingerprint of the labels in order (FNV-1a 64); identifies a dataset for
 * logits files. */
uint64_t evit_dataset_fingerprint(const struct evit_dataset *d);

#endif
