/* fuzz_h5attr.c: libFuzzer target for the validation evit applies to its
 * HDF5 files' contents: checkpoints (model/ckpt.c), datasets
 * (common/dataset.c) and logits (common/logits.c).  libhdf5's own parser is
 * not the target (it is not hardened against corrupt files); the input is
 * read as edits to a valid file of each kind, made through the HDF5 API:
 * attributes deleted, or rewritten as int, float or string arrays of any
 * length and value, and datasets replaced by others of any shape and
 * content.  The loader must then load the file or refuse it with an error:
 * no crash, no out-of-bounds access, no leak.
 *
 *   input  = kind byte (checkpoint, dataset, logits, segmentation
 *            dataset, segmentation logits with views), then edits of 8
 *            bytes
 *            [op, target, n, a, b, c, d, e] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "ckpt.h"
#include "dataset.h"
#include "fuzz_common.h"
#include "h5.h"
#include "logits.h"
#include "util.h"
#include "vit.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ckpt_attrs[] = {"format", "format_version", "name", "img_size", "channels", "patch",
                                         "num_classes", "embed_dim", "depth", "num_heads", "head_dim",
                                         "mlp_hidden", "mean", "std", "classes", "stage", "parent_report",
                                         "report", "head"};
static const char *const ckpt_sets[] = {"cls_token", "pos_embed", "patch_embed/proj/weight",
                                        "blocks/0/attn/qkv/weight", "blocks/1/mlp/fc2/bias", "head/weight",
                                        "norm/bias"};
static const char *const data_attrs[] = {"format", "format_version", "classes", "mean", "std", "source"};
static const char *const data_sets[] = {"images", "labels"};
static const char *const seg_attrs[] = {"format", "format_version", "classes", "mean", "std", "task", "ignore_index"};
static const char *const seg_sets[] = {"images", "masks"};
static const char *const logit_attrs[] = {"format", "format_version", "count", "num_classes",
                                          "label_fingerprint", "dataset", "model", "top1", "grid"};
static const char *const logit_sets[] = {"logits", "topk/values", "topk/indices"};
static const char *const view_attrs[] = {"format_version", "count", "num_classes", "grid", "views", "views_topk",
                                         "views_seed", "views_crop_padding", "views_hflip", "views_erase"};
static const char *const view_sets[] = {"logits", "views/topk/indices", "views/topk/values"};

static char templ[5][128];

/* The views of the segmentation logits template: made-up logits. */
static int view_epoch(void *ctx, int e, float *out)
{
    for (int i = 0; i < 6 * 4 * 3; i++) out[i] = (float)((i * 7 + e * 5) % 11) / 3.0f;
    return 0;
}

/* One small valid file of each kind, written once. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct evit_vit_config c;
    struct evit_vit m;
    struct evit_dataset d;
    float logits[6 * 3];
    uint8_t images[6 * 4 * 4];
    int32_t labels[6] = {0, 1, 2, 0, 1, 2};
    uint8_t masks[6 * 4 * 4];
    char *names[3] = {"a", "b", "c"};
    evit_h5_quiet();
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "t");
    c.img_size = 4, c.channels = 1, c.patch = 2, c.classes = 3, c.dim = 4, c.depth = 2;
    c.blocks[0] = (struct evit_block_shape){2, 2, 6, 0};
    c.blocks[1] = (struct evit_block_shape){1, 2, 4, 0};
    for (int i = 0; i < 5; i++)
        snprintf(templ[i], sizeof templ[i], "/dev/shm/evit-fuzz-templ-%d-%d.h5", (int)getpid(), i);
    evit_vit_alloc(&m, &c);
    evit_vit_init(&m, 1);
    if (evit_ckpt_save(templ[0], &m, NULL) < 0) abort();
    evit_vit_free(&m);
    memset(&d, 0, sizeof d);
    for (int i = 0; i < (int)sizeof images; i++) images[i] = (uint8_t)(i * 37);
    d.n = 6, d.h = 4, d.w = 4, d.c = 1, d.classes = 3, d.class_names = names, d.images = images, d.labels = labels;
    evit_dataset_stats(&d);
    d.source = "fuzz";
    if (evit_dataset_save(&d, templ[1]) < 0) abort();
    for (int i = 0; i < 18; i++) logits[i] = (float)i / 7.0f;
    if (evit_logits_save(templ[2], logits, 6, 3, 42, "d.h5", "m.h5", 50.0) < 0) abort();
    for (int i = 0; i < (int)sizeof masks; i++) masks[i] = (uint8_t)(i % 7 == 6 ? 255 : i % 3);
    d.labels = NULL, d.masks = masks, d.ignore = 255;
    if (evit_dataset_save(&d, templ[3]) < 0) abort();
    float grid[6 * 4 * 3];
    double bytes;
    struct evit_logit_views v = {.epochs = 2, .topk = 2, .seed = 5, .aug = {.crop_padding = 1, .hflip = 1}};
    for (int i = 0; i < 6 * 4 * 3; i++) grid[i] = (float)i / 9.0f;
    if (evit_logits_save_grid_views(templ[4], grid, 6, 2, 3, 42, "d.h5", "m.h5", &v, view_epoch, NULL, &bytes) < 0)
        abort();
    return 0;
}

static int copy_file(const char *from, const char *to)
{
    uint8_t *b;
    size_t n;
    if (evit_read_file(from, &b, &n) < 0) return -1;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(b, 1, n, f) == n;
    if (f) ok = fclose(f) == 0 && ok;
    free(b);
    return ok ? 0 : -1;
}

/* Replaces dataset name by one of rank 1..3, dims from e, values from v. */
static void replace_set(hid_t f, const char *name, const uint8_t *e)
{
    int64_t dims[3] = {e[3] % 9, e[4] % 9, e[5] % 9};
    int rank = 1 + e[2] % 3;
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = (float)((int)e[6 + i % 2] - 100) / (float)(1 + e[7] % 5);
    H5Ldelete(f, name, H5P_DEFAULT);
    hid_t t = e[0] & 0x10 ? H5T_NATIVE_FLOAT : e[0] & 0x20 ? H5T_NATIVE_UINT8 : H5T_NATIVE_INT32;
    if (t == H5T_NATIVE_FLOAT) {
        if (n && (e[1] & 0x80)) v[0] = e[1] & 0x40 ? 1.0f / 0.0f : 0.0f / 0.0f; /* NaN, Inf */
        evit_h5_write(f, "fuzz", name, t, rank, dims, v);
    } else {
        int32_t *iv = malloc(sizeof(int32_t) * (n ? n : 1));
        uint8_t *bv = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++) iv[i] = (int32_t)v[i], bv[i] = (uint8_t)iv[i];
        evit_h5_write(f, "fuzz", name, t, rank, dims, t == H5T_NATIVE_UINT8 ? (void *)bv : (void *)iv);
        free(iv);
        free(bv);
    }
    free(v);
}

static void edit(hid_t f, const uint8_t *e, const char *const *attrs, int na, const char *const *sets, int ns)
{
    const char *key = attrs[e[1] % na];
    int n = e[2] % 6, iv[5];
    float fv[5];
    char s[8];
    for (int i = 0; i < 5; i++) {
        iv[i] = (int)(int8_t)e[3 + i % 5] * (e[7] & 1 ? 1 : 1000);
        fv[i] = (float)(int8_t)e[3 + i % 5] / 16.0f;
    }
    switch (e[0] % 5) {
    case 0:
        if (H5Aexists(f, key) > 0) H5Adelete(f, key);
        break;
    case 1: evit_h5_attr_write_ints(f, key, iv, n); break;
    case 2: evit_h5_attr_write_floats(f, key, fv, n); break;
    case 3:
        memcpy(s, e + 3, 5);
        s[e[2] % 6] = 0;
        evit_h5_attr_write_string(f, key, s);
        break;
    case 4: replace_set(f, sets[e[1] % ns], e); break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128];
    hid_t f;
    if (size < 1) return 0;
    int kind = data[0] % 5;
    snprintf(path, sizeof path, "/dev/shm/evit-fuzz-%d.h5", (int)getpid());
    if (copy_file(templ[kind], path) < 0) return 0;
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return 0;
    for (size_t at = 1; at + 8 <= size && at < 1 + 8 * 16; at += 8) {
        if (kind == 0) edit(f, data + at, ckpt_attrs, 19, ckpt_sets, 7);
        if (kind == 1) edit(f, data + at, data_attrs, 6, data_sets, 2);
        if (kind == 2) edit(f, data + at, logit_attrs, 9, logit_sets, 3);
        if (kind == 3) edit(f, data + at, seg_attrs, 7, seg_sets, 2);
        if (kind == 4) edit(f, data + at, view_attrs, 10, view_sets, 3);
    }
    H5Fclose(f);
    if (kind == 0) {
        struct evit_vit m = {0};
        struct evit_ckpt_meta meta = {0};
        if (evit_ckpt_load_heads(path, &m, &meta, EVIT_HEADS_ALL) == 0) evit_vit_free(&m);
        evit_ckpt_meta_free(&meta);
    } else if (kind == 1 || kind == 3) {
        struct evit_dataset d = {0};
        evit_dataset_load_task(path, &d, EVIT_TASK_CLASSIFY | EVIT_TASK_SEGMENT);
        evit_dataset_free(&d);
    } else {
        struct evit_logits l = {0};
        if (evit_logits_load(path, &l) == 0 && l.views.idx) { /* every epoch read again, then rebuilt */
            float *rows = malloc(sizeof(float) * (size_t)l.grid * l.grid * l.k);
            for (int e = 0; e < l.views.epochs; e++) evit_logits_view_rows(&l, e, l.n - 1, rows);
            free(rows);
        }
        evit_logits_free(&l);
    }
    remove(path);
    return 0;
}
