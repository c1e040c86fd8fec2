/* dataset.c: see dataset.h. */
#include "dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5.h"
#include "util.h"

void evit_dataset_stats(struct evit_dataset *d)
{
    /* mean and std of pixel/255 per channel, in double over all pixels */
    for (int c = 0; c < d->c; c++) {
        double s = 0.0, s2 = 0.0;
        size_t n = (size_t)d->n * d->h * d->w;
        for (size_t i = 0; i < n; i++) {
            double v = d->images[i * d->c + c] / 255.0;
            s += v;
            s2 += v * v;
        }
        double m = n ? s / (double)n : 0.0;
        double var = n ? s2 / (double)n - m * m : 1.0;
        d->mean[c] = (float)m;
        /* a constant channel would divide by zero at normalisation */
        d->std[c] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
    }
}

enum evit_task evit_dataset_task(const struct evit_dataset *d)
{
    return d->masks ? EVIT_TASK_SEGMENT : EVIT_TASK_CLASSIFY;
}

static const char *task_name(enum evit_task t)
{
    return t == EVIT_TASK_SEGMENT ? "segmentation dataset (masks)" : "classification dataset (labels)";
}

static int check_labels(const struct evit_dataset *d, const char *path)
{
    for (int i = 0; i < d->n; i++) {
        if (d->labels[i] < 0 || d->labels[i] >= d->classes)
            return evit_error("%s: label %d of image %d is outside [0, %d)", path,
                              (int)d->labels[i], i, d->classes);
    }
    return EVIT_OK;
}

/* Every mask value is a class or the ignore value; the ignore value is no
 * class (a class count above 255 could not be a uint8 mask's). */
static int check_masks(const struct evit_dataset *d, const char *path)
{
    size_t hw = (size_t)d->h * d->w;
    if (d->classes > 255) return evit_error("%s: a segmentation dataset has at most 255 classes, has %d", path, d->classes);
    if (d->ignore != -1 && (d->ignore < d->classes || d->ignore > 255))
        return evit_error("%s: ignore_index %d must be -1 or in [%d, 255] (not a class)", path, d->ignore, d->classes);
    for (size_t i = 0; i < (size_t)d->n * hw; i++) {
        if (d->masks[i] >= d->classes && d->masks[i] != d->ignore)
            return evit_error("%s: mask value %d of image %zu at (%zu, %zu) is outside [0, %d)%s", path, d->masks[i],
                              i / hw, i % hw / (size_t)d->w, i % (size_t)d->w, d->classes,
                              d->ignore >= 0 ? " and not the ignore index" : "");
    }
    return EVIT_OK;
}

static int check_targets(const struct evit_dataset *d, const char *path)
{
    EVIT_ASSERT(!d->masks != !d->labels);
    return d->masks ? check_masks(d, path) : check_labels(d, path);
}

int evit_dataset_save(const struct evit_dataset *d, const char *path)
{
    hid_t f;
    int rc = EVIT_ERR;
    int seg = d->masks != NULL;
    if (check_targets(d, path) < 0) return EVIT_ERR;
    char *tmp = evit_temp_path(path);
    if (evit_h5_create(tmp, &f) < 0) goto out;
    int64_t idims[4] = {d->n, d->h, d->w, d->c}, ldims[1] = {d->n}, mdims[3] = {d->n, d->h, d->w};
    int ok = evit_h5_write_format(f, "evit-dataset", seg ? EVIT_DATASET_SEG_VERSION : EVIT_DATASET_VERSION) == 0 &&
             evit_h5_attr_write_strings(f, "classes", d->class_names, d->classes) == 0 &&
             evit_h5_attr_write_floats(f, "mean", d->mean, d->c) == 0 &&
             evit_h5_attr_write_floats(f, "std", d->std, d->c) == 0 &&
             evit_h5_attr_write_string(f, "source", d->source ? d->source : "") == 0 &&
             (!seg || (evit_h5_attr_write_string(f, "task", "segmentation") == 0 &&
                       evit_h5_attr_write_ints(f, "ignore_index", &d->ignore, 1) == 0));
    if (!ok) evit_error("%s: cannot write attributes", path);
    if (ok) ok = evit_h5_write(f, path, "images", H5T_NATIVE_UINT8, 4, idims, d->images) == 0 &&
                 (seg ? evit_h5_write(f, path, "masks", H5T_NATIVE_UINT8, 3, mdims, d->masks)
                      : evit_h5_write(f, path, "labels", H5T_NATIVE_INT32, 1, ldims, d->labels)) == 0;
    rc = evit_h5_finish(f, tmp, path, ok);
out:
    free(tmp);
    return rc;
}

/* The file's task: segmentation when it says so (task attribute), else
 * classification. */
static int read_task(hid_t f, const char *path, enum evit_task *task)
{
    char *t = NULL;
    *task = EVIT_TASK_CLASSIFY;
    if (!evit_h5_attr_exists(f, "task")) return EVIT_OK;
    if (evit_h5_attr_read_string(f, path, "task", &t) < 0) return EVIT_ERR;
    int ok = strcmp(t, "segmentation") == 0 || strcmp(t, "classification") == 0;
    if (ok && t[0] == 's') *task = EVIT_TASK_SEGMENT;
    if (!ok) evit_error("%s: unknown task '%s' (classification or segmentation)", path, t);
    free(t);
    return ok ? EVIT_OK : EVIT_ERR;
}

/* /labels (N) or /masks (N, H, W), as the task says, read unless
 * header_only. */
static int load_targets(hid_t f, const char *path, struct evit_dataset *d, enum evit_task task, int header_only)
{
    int rank;
    int64_t dims[8], ldims[1] = {d->n}, mdims[3] = {d->n, d->h, d->w};
    const char *name = task == EVIT_TASK_SEGMENT ? "masks" : "labels";
    if (evit_h5_shape(f, path, name, &rank, dims) < 0) return EVIT_ERR;
    if (task == EVIT_TASK_SEGMENT ? rank != 3 || dims[0] != d->n || dims[1] != d->h || dims[2] != d->w
                                  : rank != 1 || dims[0] != d->n) {
        if (task == EVIT_TASK_SEGMENT)
            return evit_error("%s: masks must have shape (%d, %d, %d) to match images", path, d->n, d->h, d->w);
        return evit_error("%s: labels must have shape (%d,) to match images", path, d->n);
    }
    if (header_only) return EVIT_OK;
    if (task == EVIT_TASK_SEGMENT) {
        d->masks = evit_malloc((size_t)d->n * d->h * d->w);
        return evit_h5_read(f, path, "masks", H5T_NATIVE_UINT8, 3, mdims, d->masks);
    }
    d->labels = evit_malloc(sizeof(int32_t) * (size_t)d->n);
    return evit_h5_read(f, path, "labels", H5T_NATIVE_INT32, 1, ldims, d->labels);
}

static int load(const char *path, struct evit_dataset *d, int header_only, unsigned accept)
{
    hid_t f;
    int rank;
    int64_t dims[8];
    enum evit_task task;
    memset(d, 0, sizeof *d);
    d->ignore = -1;
    if (evit_h5_open(path, &f) < 0) return EVIT_ERR;
    if (evit_h5_check_format(f, path, "evit-dataset", EVIT_DATASET_SEG_VERSION) < 0 || read_task(f, path, &task) < 0)
        goto fail;
    if (!(accept & task)) {
        evit_error("%s: is a %s; this needs a %s", path, task_name(task),
                   task_name(task == EVIT_TASK_SEGMENT ? EVIT_TASK_CLASSIFY : EVIT_TASK_SEGMENT));
        goto fail;
    }
    if (task == EVIT_TASK_SEGMENT &&
        evit_h5_attr_read_ints(f, path, "ignore_index", &d->ignore, 1) < 0)
        goto fail;
    if (evit_h5_shape(f, path, "images", &rank, dims) < 0) goto fail;
    if (rank != 4 || dims[0] < 1 || dims[1] < 1 || dims[2] < 1 || dims[3] < 1 || dims[3] > 4 ||
        dims[0] > INT32_MAX || dims[1] > 65536 || dims[2] > 65536) {
        evit_error("%s: images must have shape (N, H, W, C) with 1 <= C <= 4", path);
        goto fail;
    }
    d->n = (int)dims[0];
    d->h = (int)dims[1];
    d->w = (int)dims[2];
    d->c = (int)dims[3];
    if (evit_h5_attr_read_strings(f, path, "classes", &d->class_names, &d->classes) < 0) goto fail;
    if (d->classes < 2) {
        evit_error("%s: needs at least 2 classes, has %d", path, d->classes);
        goto fail;
    }
    if (evit_h5_attr_read_floats(f, path, "mean", d->mean, d->c) < 0 ||
        evit_h5_attr_read_floats(f, path, "std", d->std, d->c) < 0)
        goto fail;
    for (int c = 0; c < d->c; c++) {
        if (!isfinite(d->mean[c]) || !isfinite(d->std[c]) || d->std[c] <= 0.0f) {
            evit_error("%s: attribute std must be positive and mean finite", path);
            goto fail;
        }
    }
    if (evit_h5_attr_exists(f, "source") &&
        evit_h5_attr_read_string(f, path, "source", &d->source) < 0)
        goto fail;
    if (load_targets(f, path, d, task, header_only) < 0) goto fail;
    if (!header_only) {
        size_t n = (size_t)d->n * d->h * d->w * d->c;
        d->images = evit_malloc(n);
        int64_t idims[4] = {d->n, d->h, d->w, d->c};
        if (evit_h5_read(f, path, "images", H5T_NATIVE_UINT8, 4, idims, d->images) < 0 ||
            check_targets(d, path) < 0)
            goto fail;
    }
    H5Fclose(f);
    return EVIT_OK;
fail:
    H5Fclose(f);
    evit_dataset_free(d);
    return EVIT_ERR;
}

int evit_dataset_load(const char *path, struct evit_dataset *d) { return load(path, d, 0, EVIT_TASK_CLASSIFY); }
int evit_dataset_load_task(const char *path, struct evit_dataset *d, unsigned accept)
{
    return load(path, d, 0, accept);
}
int evit_dataset_load_header(const char *path, struct evit_dataset *d) { return load(path, d, 1, EVIT_TASK_CLASSIFY); }
int evit_dataset_load_header_task(const char *path, struct evit_dataset *d, unsigned accept)
{
    return load(path, d, 1, accept);
}

void evit_dataset_free(struct evit_dataset *d)
{
    if (d->class_names) {
        for (int i = 0; i < d->classes; i++) free(d->class_names[i]);
        free(d->class_names);
    }
    free(d->images);
    free(d->labels);
    free(d->masks);
    free(d->source);
    memset(d, 0, sizeof *d);
    d->ignore = -1;
}

uint64_t evit_dataset_fingerprint(const struct evit_dataset *d)
{
    /* little-endian int32 bytes in order, so the value is the same on every
     * host and can be recomputed in numpy */
    uint64_t h = EVIT_FNV_SEED;
    if (d->masks) return evit_fnv1a64(d->masks, (size_t)d->n * d->h * d->w, h);
    for (int i = 0; i < d->n; i++) {
        uint32_t v = (uint32_t)d->labels[i];
        uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
        h = evit_fnv1a64(b, 4, h);
    }
    return h;
}
