/* logits.c: see logits.h. */
#include "logits.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "h5.h"
#include "util.h"

int evit_logits_save(const char *path, const float *logits, int n, int k, uint64_t fingerprint,
                     const char *dataset, const char *model, double top1)
{
    hid_t f;
    char fp[32];
    int rc = EVIT_ERR;
    char *tmp = evit_temp_path(path);
    snprintf(fp, sizeof fp, "%016" PRIx64, fingerprint);
    if (evit_h5_create(tmp, &f) < 0) goto out;
    int ok = evit_h5_write_format(f, "evit-logits", EVIT_LOGITS_VERSION) == 0 &&
             evit_h5_attr_write_ints(f, "count", &n, 1) == 0 &&
             evit_h5_attr_write_ints(f, "num_classes", &k, 1) == 0 &&
             evit_h5_attr_write_string(f, "label_fingerprint", fp) == 0 &&
             (!dataset || evit_h5_attr_write_string(f, "dataset", dataset) == 0) &&
             (!model || evit_h5_attr_write_string(f, "model", model) == 0) &&
             (isnan(top1) || evit_h5_attr_write_double(f, "top1", top1) == 0);
    if (!ok) evit_error("%s: cannot write attributes", path);
    int64_t dims[2] = {n, k};
    if (ok) ok = evit_h5_write(f, path, "logits", H5T_NATIVE_FLOAT, 2, dims, logits) == 0;
    rc = evit_h5_finish(f, tmp, path, ok);
out:
    free(tmp);
    return rc;
}

/* Dense log-probabilities from a top-k file: kept classes get log(value),
 * every other class log((1 - sum of values) / (K - k)). */
static int read_topk(hid_t f, const char *path, struct evit_logits *l)
{
    int rank, rc = EVIT_ERR;
    int64_t dims[8];
    int32_t *idx = NULL;
    float *val = NULL;
    uint8_t *seen = NULL;
    if (evit_h5_shape(f, path, "topk/values", &rank, dims) < 0) return EVIT_ERR;
    if (rank != 2 || dims[0] != l->n || dims[1] < 1 || dims[1] > l->k)
        return evit_error("%s: topk/values must have shape (%d, k) with 1 <= k <= %d", path, l->n, l->k);
    int k = (int)dims[1];
    idx = evit_malloc(sizeof *idx * (size_t)l->n * (size_t)k);
    val = evit_malloc(sizeof *val * (size_t)l->n * (size_t)k);
    seen = evit_calloc((size_t)l->k, 1);
    if (evit_h5_read(f, path, "topk/indices", H5T_NATIVE_INT32, 2, dims, idx) < 0 ||
        evit_h5_read(f, path, "topk/values", H5T_NATIVE_FLOAT, 2, dims, val) < 0)
        goto fail;
    for (int i = 0; i < l->n; i++) {
        const int32_t *ix = idx + (size_t)i * k;
        const float *v = val + (size_t)i * k;
        double mass = 0.0;
        memset(seen, 0, (size_t)l->k);
        for (int j = 0; j < k; j++) {
            if (ix[j] < 0 || ix[j] >= l->k || seen[ix[j]]) {
                evit_error("%s: topk/indices row %d holds %d: out of range or repeated", path, i, (int)ix[j]);
                goto fail;
            }
            if (!(v[j] >= 0.0f && v[j] <= 1.0f)) {
                evit_error("%s: topk/values row %d is not a probability in [0, 1]", path, i);
                goto fail;
            }
            seen[ix[j]] = 1;
            mass += (double)v[j];
        }
        if (mass > 1.001) {
            evit_error("%s: topk/values row %d sums to %.4f, more than 1", path, i, mass);
            goto fail;
        }
        /* a floor keeps log finite when the top-k hold all the mass */
        double rest = k < l->k ? (1.0 - mass) / (l->k - k) : 0.0;
        float fill = (float)log(rest > 1e-8 ? rest : 1e-8);
        float *row = l->logits + (size_t)i * l->k;
        for (int j = 0; j < l->k; j++) row[j] = fill;
        for (int j = 0; j < k; j++)
            row[ix[j]] = (float)log((double)v[j] > 1e-8 ? (double)v[j] : 1e-8);
    }
    l->topk = k;
    rc = EVIT_OK;
fail:
    free(idx);
    free(val);
    free(seen);
    return rc;
}

int evit_logits_load(const char *path, struct evit_logits *l)
{
    hid_t f;
    char *fp = NULL, *end = NULL;
    memset(l, 0, sizeof *l);
    l->top1 = NAN;
    if (evit_h5_open(path, &f) < 0) return EVIT_ERR;
    if (evit_h5_check_format(f, path, "evit-logits", EVIT_LOGITS_VERSION) < 0 ||
        evit_h5_attr_read_ints(f, path, "count", &l->n, 1) < 0 ||
        evit_h5_attr_read_ints(f, path, "num_classes", &l->k, 1) < 0 ||
        evit_h5_attr_read_string(f, path, "label_fingerprint", &fp) < 0)
        goto fail;
    l->fingerprint = strtoull(fp, &end, 16);
    if (strlen(fp) != 16 || *end) {
        evit_error("%s: label_fingerprint must be 16 hex digits, is '%s'", path, fp);
        goto fail;
    }
    if (l->n < 1 || l->k < 2) {
        evit_error("%s: count %d / num_classes %d out of range", path, l->n, l->k);
        goto fail;
    }
    if ((evit_h5_attr_exists(f, "dataset") &&
         evit_h5_attr_read_string(f, path, "dataset", &l->dataset) < 0) ||
        (evit_h5_attr_exists(f, "model") &&
         evit_h5_attr_read_string(f, path, "model", &l->model) < 0) ||
        (evit_h5_attr_exists(f, "top1") && evit_h5_attr_read_double(f, path, "top1", &l->top1) < 0))
        goto fail;
    int64_t dims[2] = {l->n, l->k};
    l->logits = evit_malloc(sizeof(float) * (size_t)l->n * (size_t)l->k);
    if (!evit_h5_exists(f, "logits") && evit_h5_exists(f, "topk/values")) {
        if (read_topk(f, path, l) < 0) goto fail;
    } else if (evit_h5_read(f, path, "logits", H5T_NATIVE_FLOAT, 2, dims, l->logits) < 0) {
        goto fail;
    }
    for (size_t i = 0; i < (size_t)l->n * l->k; i++) {
        if (!isfinite(l->logits[i])) {
            evit_error("%s: logits hold NaN or Inf (row %zu)", path, i / (size_t)l->k);
            goto fail;
        }
    }
    free(fp);
    H5Fclose(f);
    return EVIT_OK;
fail:
    free(fp);
    H5Fclose(f);
    evit_logits_free(l);
    return EVIT_ERR;
}

int evit_logits_check(const struct evit_logits *l, const char *lpath,
                      const struct evit_dataset *d, const char *dpath)
{
    if (l->n != d->n)
        return evit_error("%s: has logits for %d images but %s has %d", lpath, l->n, dpath, d->n);
    if (l->k != d->classes)
        return evit_error("%s: has %d classes but %s has %d", lpath, l->k, dpath, d->classes);
    if (l->fingerprint != evit_dataset_fingerprint(d))
        return evit_error("%s: label fingerprint does not match %s (logits of another dataset, "
                          "or of the same images in another order)", lpath, dpath);
    return EVIT_OK;
}

void evit_logits_free(struct evit_logits *l)
{
    free(l->logits);
    free(l->dataset);
    free(l->model);
    memset(l, 0, sizeof *l);
    l->top1 = NAN;
}
