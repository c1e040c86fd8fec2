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

/* A 64-bit value written as exactly 16 hex digits. */
static int parse_hex64(const char *s, uint64_t *out)
{
    char *end = NULL;
    *out = strtoull(s, &end, 16);
    return strlen(s) == 16 && !*end ? EVIT_OK : EVIT_ERR;
}

static int write_header(hid_t f, const char *path, int n, int k, uint64_t fingerprint, const char *dataset,
                        const char *model, double top1, int version)
{
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, fingerprint);
    int ok = evit_h5_write_format(f, "evit-logits", version) == 0 && evit_h5_attr_write_ints(f, "count", &n, 1) == 0 &&
             evit_h5_attr_write_ints(f, "num_classes", &k, 1) == 0 &&
             evit_h5_attr_write_string(f, "label_fingerprint", fp) == 0 &&
             (!dataset || evit_h5_attr_write_string(f, "dataset", dataset) == 0) &&
             (!model || evit_h5_attr_write_string(f, "model", model) == 0) &&
             (isnan(top1) || evit_h5_attr_write_double(f, "top1", top1) == 0);
    return ok ? EVIT_OK : evit_error("%s: cannot write attributes", path);
}

int evit_logits_save(const char *path, const float *logits, int n, int k, uint64_t fingerprint,
                     const char *dataset, const char *model, double top1)
{
    hid_t f;
    int rc = EVIT_ERR;
    char *tmp = evit_temp_path(path);
    if (evit_h5_create(tmp, &f) < 0) goto out;
    int ok = write_header(f, path, n, k, fingerprint, dataset, model, top1, 1) == 0;
    int64_t dims[2] = {n, k};
    if (ok) ok = evit_h5_write(f, path, "logits", H5T_NATIVE_FLOAT, 2, dims, logits) == 0;
    rc = evit_h5_finish(f, tmp, path, ok);
out:
    free(tmp);
    return rc;
}

/* Top-k of softmax(z) for every row: indices by decreasing probability
 * (ties: the lower class first), probabilities as round(p * 65535). */
static void topk_rows(uint16_t *idx /* (rows, kk) */, uint16_t *val /* (rows, kk) */, const float *z /* (rows, k) */,
                      size_t rows, int k, int kk)
{
    double *p = evit_malloc(sizeof(double) * (size_t)k);
    uint8_t *taken = evit_malloc((size_t)k);
    for (size_t r = 0; r < rows; r++) {
        const float *zr = z + r * (size_t)k;
        double mx = (double)zr[0], sum = 0.0;
        for (int j = 1; j < k; j++) mx = (double)zr[j] > mx ? (double)zr[j] : mx;
        for (int j = 0; j < k; j++) sum += p[j] = exp((double)zr[j] - mx);
        memset(taken, 0, (size_t)k);
        for (int t = 0; t < kk; t++) {
            int best = -1;
            for (int j = 0; j < k; j++)
                if (!taken[j] && (best < 0 || p[j] > p[best])) best = j;
            taken[best] = 1;
            idx[r * (size_t)kk + (size_t)t] = (uint16_t)best;
            val[r * (size_t)kk + (size_t)t] = (uint16_t)lrint(p[best] / sum * 65535.0);
        }
    }
    free(p);
    free(taken);
}

static int write_erase(hid_t f, const struct evit_augment_config *a)
{
    double e[5] = {a->erase_prob, a->erase_area[0], a->erase_area[1], a->erase_ratio[0], a->erase_ratio[1]};
    return evit_h5_attr_write_doubles(f, "views_erase", e, 5);
}

/* views_erase, when present: the ranges augment.h accepts. */
static int read_erase(hid_t f, const char *path, struct evit_augment_config *a)
{
    double e[5];
    if (!evit_h5_attr_exists(f, "views_erase")) return EVIT_OK;
    if (evit_h5_attr_read_doubles(f, path, "views_erase", e, 5) < 0) return EVIT_ERR;
    if (!(e[0] > 0 && e[0] <= 1 && e[1] > 0 && e[1] <= e[2] && e[2] <= 1 && e[3] > 0 && e[3] <= e[4] && e[4] <= 100))
        return evit_error("%s: views_erase [%g, %g, %g, %g, %g] out of range", path, e[0], e[1], e[2], e[3], e[4]);
    a->erase_prob = e[0];
    a->erase_area[0] = e[1];
    a->erase_area[1] = e[2];
    a->erase_ratio[0] = e[3];
    a->erase_ratio[1] = e[4];
    return EVIT_OK;
}

/* The attributes that say how the views were drawn. */
static int write_view_attrs(hid_t f, const char *path, const struct evit_logit_views *v)
{
    char seed[32];
    snprintf(seed, sizeof seed, "%016" PRIx64, v->seed);
    int ok = evit_h5_attr_write_ints(f, "views", &v->epochs, 1) == 0 &&
             evit_h5_attr_write_ints(f, "views_topk", &v->topk, 1) == 0 &&
             evit_h5_attr_write_string(f, "views_seed", seed) == 0 &&
             evit_h5_attr_write_ints(f, "views_crop_padding", &v->aug.crop_padding, 1) == 0 &&
             evit_h5_attr_write_ints(f, "views_hflip", &v->aug.hflip, 1) == 0 &&
             (!(v->aug.erase_prob > 0) || write_erase(f, &v->aug) == 0) &&
             evit_h5_attr_write_string(f, "views_scheme", "view e of image i: evit_augment_view(seed, e, i): "
                                                          "xoshiro256** seeded by FNV-1a 64 of (seed u64, e u32, "
                                                          "i u64) little-endian; crop offsets, then the flip bit, "
                                                          "then the erasing draws") == 0;
    return ok ? EVIT_OK : evit_error("%s: cannot write attributes", path);
}

/* The stored type of top-k class indices: a byte up to 256 classes. */
static hid_t index_type(int k) { return k <= 256 ? H5T_NATIVE_UINT8 : H5T_NATIVE_UINT16; }

/* Storage of one top-k entry: its index and its 16-bit probability. */
static double entry_bytes(int k) { return k <= 256 ? 3.0 : 4.0; }

/* views/topk/indices and values of shape dims (the last is k kept), to be
 * filled by write_topk_rows. */
static int create_topk_sets(hid_t f, const char *path, int k, int rank, const int64_t *dims)
{
    return evit_h5_create_set(f, path, "views/topk/indices", index_type(k), rank, dims) == 0 &&
                   evit_h5_create_set(f, path, "views/topk/values", H5T_NATIVE_UINT16, rank, dims) == 0
               ? EVIT_OK
               : EVIT_ERR;
}

/* Rows [start, start + count) of both top-k sets from idx and val (elems
 * entries each), the indices narrowed to bytes up to 256 classes. */
static int write_topk_rows(hid_t f, const char *path, const uint16_t *idx, const uint16_t *val, size_t elems, int k,
                           int64_t start, int64_t count)
{
    int rc;
    if (k <= 256) {
        uint8_t *i8 = evit_malloc(elems ? elems : 1);
        for (size_t i = 0; i < elems; i++) i8[i] = (uint8_t)idx[i];
        rc = evit_h5_write_rows(f, path, "views/topk/indices", H5T_NATIVE_UINT8, start, count, i8);
        free(i8);
    } else {
        rc = evit_h5_write_rows(f, path, "views/topk/indices", H5T_NATIVE_UINT16, start, count, idx);
    }
    if (rc == 0) rc = evit_h5_write_rows(f, path, "views/topk/values", H5T_NATIVE_UINT16, start, count, val);
    return rc;
}

static int write_views(hid_t f, const char *path, const float *views, int n, int k, const struct evit_logit_views *v,
                       double *bytes_per_view)
{
    if (write_view_attrs(f, path, v) < 0) return EVIT_ERR;
    size_t rows = (size_t)v->epochs * (size_t)n;
    if (v->topk == 0) {
        int64_t d3[3] = {v->epochs, n, k};
        *bytes_per_view = 4.0 * k;
        return evit_h5_write(f, path, "views/logits", H5T_NATIVE_FLOAT, 3, d3, views);
    }
    int64_t d3[3] = {v->epochs, n, v->topk};
    uint16_t *idx = evit_malloc(sizeof *idx * rows * (size_t)v->topk);
    uint16_t *val = evit_malloc(sizeof *val * rows * (size_t)v->topk);
    topk_rows(idx, val, views, rows, k, v->topk);
    *bytes_per_view = entry_bytes(k) * v->topk;
    int rc = create_topk_sets(f, path, k, 3, d3);
    if (rc == 0) rc = write_topk_rows(f, path, idx, val, rows * (size_t)v->topk, k, 0, v->epochs);
    free(idx);
    free(val);
    return rc;
}

/* A segmentation model's views, top-k only, one epoch at a time: fn gives
 * the dense per-patch logits of epoch e's views, whose top-k become row e
 * of views/topk/indices and values (E, n, g*g, k kept).  Memory: one
 * epoch's dense logits and its top-k, whatever E. */
static int write_grid_views(hid_t f, const char *path, int n, int g, int k, const struct evit_logit_views *v,
                            evit_logits_view_fn fn, void *ctx, double *bytes_per_view)
{
    size_t rows = (size_t)n * g * g, kk = (size_t)v->topk;
    int64_t d4[4] = {v->epochs, n, (int64_t)g * g, v->topk};
    if (write_view_attrs(f, path, v) < 0 || create_topk_sets(f, path, k, 4, d4) < 0) return EVIT_ERR;
    float *z = evit_malloc(sizeof *z * rows * (size_t)k);
    uint16_t *idx = evit_malloc(sizeof *idx * rows * kk), *val = evit_malloc(sizeof *val * rows * kk);
    int rc = EVIT_OK;
    for (int e = 0; e < v->epochs && rc == EVIT_OK; e++) {
        rc = fn(ctx, e, z);
        if (rc == EVIT_OK) {
            topk_rows(idx, val, z, rows, k, v->topk);
            rc = write_topk_rows(f, path, idx, val, rows * kk, k, e, 1);
        }
    }
    *bytes_per_view = entry_bytes(k) * (double)kk * g * g;
    free(z);
    free(idx);
    free(val);
    return rc;
}

/* A segmentation model's logits (version 3), with its views when v is
 * given (version 4). */
static int save_grid(const char *path, const float *logits, int n, int g, int k, uint64_t fingerprint,
                     const char *dataset, const char *model, const struct evit_logit_views *v,
                     evit_logits_view_fn fn, void *ctx, double *bytes_per_view)
{
    hid_t f;
    int rc = EVIT_ERR;
    char *tmp = evit_temp_path(path);
    if (evit_h5_create(tmp, &f) < 0) goto out;
    int ok = write_header(f, path, n, k, fingerprint, dataset, model, NAN, v ? 4 : 3) == 0 &&
             evit_h5_attr_write_ints(f, "grid", &g, 1) == 0;
    int64_t dims[3] = {n, (int64_t)g * g, k};
    if (ok) ok = evit_h5_write(f, path, "logits", H5T_NATIVE_FLOAT, 3, dims, logits) == 0;
    if (ok && v) ok = write_grid_views(f, path, n, g, k, v, fn, ctx, bytes_per_view) == 0;
    rc = evit_h5_finish(f, tmp, path, ok);
out:
    free(tmp);
    return rc;
}

int evit_logits_save_grid(const char *path, const float *logits, int n, int g, int k, uint64_t fingerprint,
                          const char *dataset, const char *model)
{
    return save_grid(path, logits, n, g, k, fingerprint, dataset, model, NULL, NULL, NULL, NULL);
}

int evit_logits_save_grid_views(const char *path, const float *logits, int n, int g, int k, uint64_t fingerprint,
                                const char *dataset, const char *model, const struct evit_logit_views *v,
                                evit_logits_view_fn fn, void *ctx, double *bytes_per_view)
{
    EVIT_ASSERT(v->epochs > 0 && v->topk >= 1 && v->topk <= k && !(v->aug.erase_prob > 0));
    return save_grid(path, logits, n, g, k, fingerprint, dataset, model, v, fn, ctx, bytes_per_view);
}

int evit_logits_save_views(const char *path, const float *logits, int n, int k, uint64_t fingerprint,
                           const char *dataset, const char *model, double top1, const float *views,
                           const struct evit_logit_views *v, double *bytes_per_view)
{
    hid_t f;
    int rc = EVIT_ERR;
    char *tmp = evit_temp_path(path);
    EVIT_ASSERT(v->epochs > 0 && v->topk >= 0 && v->topk <= k);
    if (evit_h5_create(tmp, &f) < 0) goto out;
    int ok = write_header(f, path, n, k, fingerprint, dataset, model, top1, 2) == 0;
    int64_t dims[2] = {n, k};
    if (ok) ok = evit_h5_write(f, path, "logits", H5T_NATIVE_FLOAT, 2, dims, logits) == 0;
    if (ok) ok = write_views(f, path, views, n, k, v, bytes_per_view) == 0;
    rc = evit_h5_finish(f, tmp, path, ok);
out:
    free(tmp);
    return rc;
}

/* log-probabilities from top-k probabilities p (kept classes) and the rest
 * spread evenly, floored at 1e-8 so that log stays finite */
static void rebuild_row(float *row, const int32_t *ix, const double *p, int kk, int k)
{
    double mass = 0.0;
    for (int j = 0; j < kk; j++) mass += p[j];
    double rest = kk < k ? (1.0 - mass) / (k - kk) : 0.0;
    float fill = (float)log(rest > 1e-8 ? rest : 1e-8);
    for (int j = 0; j < k; j++) row[j] = fill;
    for (int j = 0; j < kk; j++) row[ix[j]] = (float)log(p[j] > 1e-8 ? p[j] : 1e-8);
}

/* One top-k row (classes ix, probabilities p) checked -- classes in range
 * and distinct, total at most max_mass -- and rebuilt into row (unless row
 * is NULL).  name is the dataset the row comes from, r its index; seen is
 * k bytes of scratch. */
static int topk_row(float *row, const int32_t *ix, const double *p, int kk, int k, double max_mass, uint8_t *seen,
                    const char *path, const char *name, size_t r)
{
    double mass = 0.0;
    memset(seen, 0, (size_t)k);
    for (int j = 0; j < kk; j++) {
        if (ix[j] < 0 || ix[j] >= k || seen[ix[j]])
            return evit_error("%s: %s/indices row %zu holds %d: out of range or repeated", path, name, r, (int)ix[j]);
        seen[ix[j]] = 1;
        mass += p[j];
    }
    if (mass > max_mass) return evit_error("%s: %s/values row %zu sums to %.4f, more than 1", path, name, r, mass);
    if (row) rebuild_row(row, ix, p, kk, k);
    return EVIT_OK;
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
    double *p = NULL;
    if (evit_h5_shape(f, path, "topk/values", &rank, dims) < 0) return EVIT_ERR;
    if (rank != 2 || dims[0] != l->n || dims[1] < 1 || dims[1] > l->k)
        return evit_error("%s: topk/values must have shape (%d, k) with 1 <= k <= %d", path, l->n, l->k);
    int k = (int)dims[1];
    idx = evit_malloc(sizeof *idx * (size_t)l->n * (size_t)k);
    val = evit_malloc(sizeof *val * (size_t)l->n * (size_t)k);
    seen = evit_calloc((size_t)l->k, 1);
    p = evit_malloc(sizeof *p * (size_t)k);
    if (evit_h5_read(f, path, "topk/indices", H5T_NATIVE_INT32, 2, dims, idx) < 0 ||
        evit_h5_read(f, path, "topk/values", H5T_NATIVE_FLOAT, 2, dims, val) < 0)
        goto fail;
    for (int i = 0; i < l->n; i++) {
        const float *v = val + (size_t)i * k;
        for (int j = 0; j < k; j++) {
            if (!(v[j] >= 0.0f && v[j] <= 1.0f)) {
                evit_error("%s: topk/values row %d is not a probability in [0, 1]", path, i);
                goto fail;
            }
            p[j] = (double)v[j];
        }
        if (topk_row(l->logits + (size_t)i * l->k, idx + (size_t)i * k, p, k, l->k, 1.001, seen, path, "topk",
                     (size_t)i) < 0)
            goto fail;
    }
    l->topk = k;
    rc = EVIT_OK;
fail:
    free(idx);
    free(val);
    free(seen);
    free(p);
    return rc;
}

/* Scratch for checking and rebuilding stored top-k rows of kk of k classes. */
struct topk_scratch {
    int32_t *ix;   /* (kk) */
    double *p;     /* (kk) */
    uint8_t *seen; /* (k) */
};

static void scratch_init(struct topk_scratch *s, int kk, int k)
{
    s->ix = evit_malloc(sizeof *s->ix * (size_t)kk);
    s->p = evit_malloc(sizeof *s->p * (size_t)kk);
    s->seen = evit_malloc((size_t)k);
}

static void scratch_free(struct topk_scratch *s)
{
    free(s->ix);
    free(s->p);
    free(s->seen);
}

/* Row r of stored views (kk indices and round(p * 65535) values) checked
 * and, unless row is NULL, rebuilt into row (k log-probabilities). */
static int stored_row(float *row, const uint16_t *idx, const uint16_t *val, int kk, int k, struct topk_scratch *s,
                      const char *path, size_t r)
{
    for (int j = 0; j < kk; j++) {
        s->ix[j] = idx[j];
        s->p[j] = val[j] / 65535.0;
    }
    /* each stored probability is rounded by up to 1/131070 */
    return topk_row(row, s->ix, s->p, kk, k, 1.0 + 1e-3 * (double)kk, s->seen, path, "views/topk", r);
}

static int read_view_topk(hid_t f, const char *path, struct evit_logits *l)
{
    struct evit_logit_views *v = &l->views;
    size_t rows = (size_t)v->epochs * (size_t)l->n, kk = (size_t)v->topk;
    int64_t d3[3] = {v->epochs, l->n, v->topk};
    uint16_t *idx = evit_malloc(sizeof *idx * rows * kk), *val = evit_malloc(sizeof *val * rows * kk);
    struct topk_scratch s;
    int rc = EVIT_ERR;
    scratch_init(&s, v->topk, l->k);
    /* byte indices (up to 256 classes) are widened by HDF5 as they are read */
    if (evit_h5_check(f, path, "views/topk/indices", index_type(l->k), 3, d3) < 0 ||
        evit_h5_check(f, path, "views/topk/values", H5T_NATIVE_UINT16, 3, d3) < 0 ||
        evit_h5_read_rows(f, path, "views/topk/indices", H5T_NATIVE_UINT16, 0, v->epochs, idx) < 0 ||
        evit_h5_read_rows(f, path, "views/topk/values", H5T_NATIVE_UINT16, 0, v->epochs, val) < 0)
        goto fail;
    for (size_t r = 0; r < rows; r++)
        if (stored_row(v->logits + r * (size_t)l->k, idx + r * kk, val + r * kk, v->topk, l->k, &s, path, r) < 0)
            goto fail;
    rc = EVIT_OK;
fail:
    free(idx);
    free(val);
    scratch_free(&s);
    return rc;
}

/* Epoch e's top-k of a segmentation model's views, rows (n, g*g, k kept),
 * read into v->idx and v->val and checked; v->held becomes e. */
static int read_grid_epoch(hid_t f, const char *path, struct evit_logits *l, int e)
{
    struct evit_logit_views *v = &l->views;
    size_t gg = (size_t)l->grid * l->grid, rows = (size_t)l->n * gg, kk = (size_t)v->topk;
    int64_t d4[4] = {v->epochs, l->n, (int64_t)gg, v->topk};
    struct topk_scratch s;
    int rc = EVIT_ERR;
    v->held = -1;
    if (evit_h5_check(f, path, "views/topk/indices", index_type(l->k), 4, d4) < 0 ||
        evit_h5_check(f, path, "views/topk/values", H5T_NATIVE_UINT16, 4, d4) < 0 ||
        evit_h5_read_rows(f, path, "views/topk/indices", H5T_NATIVE_UINT16, e, 1, v->idx) < 0 ||
        evit_h5_read_rows(f, path, "views/topk/values", H5T_NATIVE_UINT16, e, 1, v->val) < 0)
        return EVIT_ERR;
    scratch_init(&s, v->topk, l->k);
    for (size_t r = 0; r < rows; r++)
        if (stored_row(NULL, v->idx + r * kk, v->val + r * kk, v->topk, l->k, &s, path, (size_t)e * rows + r) < 0)
            goto fail;
    v->held = e;
    rc = EVIT_OK;
fail:
    scratch_free(&s);
    return rc;
}

int evit_logits_view_rows(struct evit_logits *l, int e, int i, float *out)
{
    struct evit_logit_views *v = &l->views;
    EVIT_ASSERT(l->grid && v->idx && e >= 0 && e < v->epochs && i >= 0 && i < l->n);
    if (v->held != e) {
        hid_t f;
        if (evit_h5_open(v->path, &f) < 0) return EVIT_ERR;
        int rc = read_grid_epoch(f, v->path, l, e);
        H5Fclose(f);
        if (rc < 0) return EVIT_ERR;
    }
    size_t gg = (size_t)l->grid * l->grid, kk = (size_t)v->topk;
    struct topk_scratch s;
    scratch_init(&s, v->topk, l->k);
    for (size_t p = 0; p < gg; p++) {
        size_t r = (size_t)i * gg + p;
        /* checked when the epoch was read: this only rebuilds */
        stored_row(out + p * (size_t)l->k, v->idx + r * kk, v->val + r * kk, v->topk, l->k, &s, v->path, r);
    }
    scratch_free(&s);
    return EVIT_OK;
}

/* A segmentation model's views: top-k only, no erasing; every epoch is
 * read and checked now, one at a time, and epoch 0 stays held. */
static int read_grid_views(hid_t f, const char *path, struct evit_logits *l)
{
    struct evit_logit_views *v = &l->views;
    if (v->topk < 1) return evit_error("%s: a segmentation model's views must be top-k (views_topk is 0)", path);
    if (v->aug.erase_prob > 0)
        return evit_error("%s: a segmentation model's views cannot have random erasing (views_erase)", path);
    size_t slab = (size_t)l->n * (size_t)l->grid * (size_t)l->grid * (size_t)v->topk;
    if (slab > ((size_t)1 << 32))
        return evit_error("%s: %d images of %d x %d patches, top-%d, are too many to hold", path, l->n, l->grid,
                          l->grid, v->topk);
    v->path = evit_strdup(path);
    v->idx = evit_malloc(sizeof *v->idx * slab);
    v->val = evit_malloc(sizeof *v->val * slab);
    for (int e = v->epochs - 1; e >= 0; e--)
        if (read_grid_epoch(f, path, l, e) < 0) return EVIT_ERR;
    return EVIT_OK;
}

/* The attributes that say how the views were drawn, in range. */
static int read_view_attrs(hid_t f, const char *path, struct evit_logits *l)
{
    struct evit_logit_views *v = &l->views;
    char *seed = NULL;
    if (evit_h5_attr_read_ints(f, path, "views", &v->epochs, 1) < 0 ||
        evit_h5_attr_read_ints(f, path, "views_topk", &v->topk, 1) < 0 ||
        evit_h5_attr_read_ints(f, path, "views_crop_padding", &v->aug.crop_padding, 1) < 0 ||
        evit_h5_attr_read_ints(f, path, "views_hflip", &v->aug.hflip, 1) < 0 || read_erase(f, path, &v->aug) < 0 ||
        evit_h5_attr_read_string(f, path, "views_seed", &seed) < 0)
        return EVIT_ERR;
    int bad_seed = parse_hex64(seed, &v->seed) < 0;
    free(seed);
    if (bad_seed) return evit_error("%s: views_seed must be 16 hex digits", path);
    if (v->epochs < 1 || v->epochs > 100000 || v->topk < 0 || v->topk > l->k || v->aug.crop_padding < 0 ||
        v->aug.crop_padding > 1024 || (v->aug.hflip != 0 && v->aug.hflip != 1))
        return evit_error("%s: views attributes out of range (views %d, views_topk %d, crop_padding %d, hflip %d)",
                          path, v->epochs, v->topk, v->aug.crop_padding, v->aug.hflip);
    return EVIT_OK;
}

static int read_views(hid_t f, const char *path, struct evit_logits *l)
{
    struct evit_logit_views *v = &l->views;
    if (read_view_attrs(f, path, l) < 0) return EVIT_ERR;
    if (l->grid) return read_grid_views(f, path, l);
    size_t total = (size_t)v->epochs * (size_t)l->n * (size_t)l->k;
    if (total > ((size_t)1 << 32)) return evit_error("%s: %d views of %d images are too many to hold", path, v->epochs, l->n);
    v->logits = evit_malloc(sizeof(float) * total);
    if (v->topk) return read_view_topk(f, path, l);
    int64_t d3[3] = {v->epochs, l->n, l->k};
    if (evit_h5_read(f, path, "views/logits", H5T_NATIVE_FLOAT, 3, d3, v->logits) < 0) return EVIT_ERR;
    for (size_t i = 0; i < total; i++)
        if (!isfinite(v->logits[i])) return evit_error("%s: views/logits hold NaN or Inf", path);
    return EVIT_OK;
}

int evit_logits_load(const char *path, struct evit_logits *l)
{
    hid_t f;
    char *fp = NULL;
    memset(l, 0, sizeof *l);
    l->top1 = NAN;
    if (evit_h5_open(path, &f) < 0) return EVIT_ERR;
    if (evit_h5_check_format(f, path, "evit-logits", EVIT_LOGITS_VERSION) < 0 ||
        evit_h5_attr_read_ints(f, path, "count", &l->n, 1) < 0 ||
        evit_h5_attr_read_ints(f, path, "num_classes", &l->k, 1) < 0 ||
        evit_h5_attr_read_string(f, path, "label_fingerprint", &fp) < 0)
        goto fail;
    if (parse_hex64(fp, &l->fingerprint) < 0) {
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
    if (evit_h5_attr_exists(f, "grid")) {
        if (evit_h5_attr_read_ints(f, path, "grid", &l->grid, 1) < 0) goto fail;
        if (l->grid < 1 || l->grid > 4096) {
            evit_error("%s: grid %d out of range [1, 4096]", path, l->grid);
            goto fail;
        }
    }
    size_t rows = (size_t)l->n * (l->grid ? (size_t)l->grid * l->grid : 1);
    if (rows * (size_t)l->k > ((size_t)1 << 33)) {
        evit_error("%s: %zu rows of %d logits is more than evit reads", path, rows, l->k);
        goto fail;
    }
    int64_t dims[2] = {l->n, l->k}, gdims[3] = {l->n, (int64_t)l->grid * l->grid, l->k};
    l->logits = evit_malloc(sizeof(float) * rows * (size_t)l->k);
    if (l->grid) {
        if (evit_h5_read(f, path, "logits", H5T_NATIVE_FLOAT, 3, gdims, l->logits) < 0) goto fail;
    } else if (!evit_h5_exists(f, "logits") && evit_h5_exists(f, "topk/values")) {
        if (read_topk(f, path, l) < 0) goto fail;
    } else if (evit_h5_read(f, path, "logits", H5T_NATIVE_FLOAT, 2, dims, l->logits) < 0) {
        goto fail;
    }
    for (size_t i = 0; i < rows * l->k; i++) {
        if (!isfinite(l->logits[i])) {
            evit_error("%s: logits hold NaN or Inf (row %zu)", path, i / (size_t)l->k);
            goto fail;
        }
    }
    if (evit_h5_attr_exists(f, "views") && read_views(f, path, l) < 0) goto fail;
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
    free(l->views.logits);
    free(l->views.path);
    free(l->views.idx);
    free(l->views.val);
    free(l->dataset);
    free(l->model);
    memset(l, 0, sizeof *l);
    l->top1 = NAN;
}
