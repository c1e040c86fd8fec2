/* ckpt.c: see ckpt.h. */
#include "ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5.h"
#include "util.h"

/* "blocks.0.attn.qkv.weight" -> "blocks/0/attn/qkv/weight" */
static void key_to_path(char *out, size_t n, const char *key)
{
    snprintf(out, n, "%s", key);
    for (char *p = out; *p; p++)
        if (*p == '.') *p = '/';
}

static int write_config(hid_t f, const struct evit_vit_config *c)
{
    int heads[EVIT_MAX_DEPTH], hd[EVIT_MAX_DEPTH], mlp[EVIT_MAX_DEPTH], r[EVIT_MAX_DEPTH];
    for (int l = 0; l < c->depth; l++) {
        heads[l] = c->blocks[l].heads;
        hd[l] = c->blocks[l].head_dim;
        mlp[l] = c->blocks[l].mlp;
        r[l] = c->blocks[l].merge_r;
    }
    /* the Token Merging schedule only where there is one: files of models
     * that merge nothing stay as they were */
    if (evit_config_merges(c) && evit_h5_attr_write_ints(f, "merge_r", r, c->depth)) return EVIT_ERR;
    /* likewise the head, only when it is not the class head */
    if (c->head != EVIT_HEAD_CLASS && evit_h5_attr_write_string(f, "head", evit_config_head_name(c->head)))
        return EVIT_ERR;
    /* and seg_mlp's decoder shape */
    if (c->head == EVIT_HEAD_SEG_MLP &&
        (evit_h5_attr_write_ints(f, "decoder_dim", &c->decoder_dim, 1) ||
         evit_h5_attr_write_ints(f, "decoder_levels", c->decoder_levels, c->decoder_nlevels)))
        return EVIT_ERR;
    return evit_h5_attr_write_string(f, "name", c->name) |
           evit_h5_attr_write_ints(f, "img_size", &c->img_size, 1) |
           evit_h5_attr_write_ints(f, "channels", &c->channels, 1) |
           evit_h5_attr_write_ints(f, "patch", &c->patch, 1) |
           evit_h5_attr_write_ints(f, "num_classes", &c->classes, 1) |
           evit_h5_attr_write_ints(f, "embed_dim", &c->dim, 1) |
           evit_h5_attr_write_ints(f, "depth", &c->depth, 1) |
           evit_h5_attr_write_ints(f, "num_heads", heads, c->depth) |
           evit_h5_attr_write_ints(f, "head_dim", hd, c->depth) |
           evit_h5_attr_write_ints(f, "mlp_hidden", mlp, c->depth);
}

int evit_ckpt_write_header(hid_t f, const char *path, const struct evit_vit *m,
                           const struct evit_ckpt_meta *meta, const char *default_stage)
{
    int ok = write_config(f, &m->cfg) == 0 &&
             evit_h5_attr_write_floats(f, "mean", m->mean, m->cfg.channels) == 0 &&
             evit_h5_attr_write_floats(f, "std", m->std, m->cfg.channels) == 0 &&
             evit_h5_attr_write_string(f, "stage", meta && meta->stage ? meta->stage : default_stage) == 0;
    if (ok && meta && meta->parent_report)
        ok = evit_h5_attr_write_string(f, "parent_report", meta->parent_report) == 0;
    if (ok && meta && meta->report)
        ok = evit_h5_attr_write_string(f, "report", meta->report) == 0;
    if (ok && meta && meta->classes > 0)
        ok = evit_h5_attr_write_strings(f, "classes", meta->class_names, meta->classes) == 0;
    if (!ok) return evit_error("%s: cannot write attributes", path);
    return EVIT_OK;
}

int evit_ckpt_write(hid_t f, const char *path, const struct evit_vit *m,
                    const struct evit_ckpt_meta *meta)
{
    int n, ok;
    char h5path[EVIT_TENSOR_NAME_MAX];
    struct evit_tensor_ref *t = evit_vit_tensor_list(&m->cfg, &m->p, &n);
    ok = evit_h5_write_format(f, "evit-checkpoint", EVIT_CKPT_VERSION) == 0 &&
         evit_ckpt_write_header(f, path, m, meta, "init") == 0;
    for (int i = 0; ok && i < n; i++) {
        key_to_path(h5path, sizeof h5path, t[i].name);
        ok = evit_h5_write(f, path, h5path, H5T_NATIVE_FLOAT, t[i].ndim, t[i].shape, t[i].data) == 0;
    }
    free(t);
    return ok ? EVIT_OK : EVIT_ERR;
}

int evit_ckpt_save(const char *path, const struct evit_vit *m, const struct evit_ckpt_meta *meta)
{
    hid_t f;
    int rc = EVIT_ERR;
    char *tmp = evit_temp_path(path);
    if (evit_h5_create(tmp, &f) < 0) goto out;
    rc = evit_h5_finish(f, tmp, path, evit_ckpt_write(f, path, m, meta) == 0);
out:
    free(tmp);
    return rc;
}

/* seg_mlp's decoder_dim and decoder_levels (validated by the caller). */
static int read_decoder(hid_t f, const char *path, struct evit_vit_config *c)
{
    int n = 0;
    if (evit_h5_attr_read_ints(f, path, "decoder_dim", &c->decoder_dim, 1) < 0 ||
        evit_h5_attr_len(f, path, "decoder_levels", &n) < 0)
        return EVIT_ERR;
    if (n < 1 || n > EVIT_DECODER_MAX_LEVELS)
        return evit_error("%s: attribute decoder_levels has %d values, not 1 to %d", path, n,
                          EVIT_DECODER_MAX_LEVELS);
    c->decoder_nlevels = n;
    return evit_h5_attr_read_ints(f, path, "decoder_levels", c->decoder_levels, n);
}

int evit_ckpt_read_config(hid_t f, const char *path, struct evit_vit_config *c)
{
    int heads[EVIT_MAX_DEPTH], hd[EVIT_MAX_DEPTH], mlp[EVIT_MAX_DEPTH];
    char *name = NULL;
    memset(c, 0, sizeof *c);
    if (evit_h5_attr_read_string(f, path, "name", &name) < 0) return EVIT_ERR;
    snprintf(c->name, sizeof c->name, "%s", name);
    free(name);
    if (evit_h5_attr_read_ints(f, path, "img_size", &c->img_size, 1) < 0 ||
        evit_h5_attr_read_ints(f, path, "channels", &c->channels, 1) < 0 ||
        evit_h5_attr_read_ints(f, path, "patch", &c->patch, 1) < 0 ||
        evit_h5_attr_read_ints(f, path, "num_classes", &c->classes, 1) < 0 ||
        evit_h5_attr_read_ints(f, path, "embed_dim", &c->dim, 1) < 0 ||
        evit_h5_attr_read_ints(f, path, "depth", &c->depth, 1) < 0)
        return EVIT_ERR;
    if (c->depth < 1 || c->depth > EVIT_MAX_DEPTH)
        return evit_error("%s: depth %d out of range [1, %d]", path, c->depth, EVIT_MAX_DEPTH);
    if (evit_h5_attr_read_ints(f, path, "num_heads", heads, c->depth) < 0 ||
        evit_h5_attr_read_ints(f, path, "head_dim", hd, c->depth) < 0 ||
        evit_h5_attr_read_ints(f, path, "mlp_hidden", mlp, c->depth) < 0)
        return EVIT_ERR;
    for (int l = 0; l < c->depth; l++) {
        c->blocks[l].heads = heads[l];
        c->blocks[l].head_dim = hd[l];
        c->blocks[l].mlp = mlp[l];
    }
    if (evit_h5_attr_exists(f, "merge_r")) {
        if (evit_h5_attr_read_ints(f, path, "merge_r", mlp, c->depth) < 0) return EVIT_ERR;
        for (int l = 0; l < c->depth; l++) c->blocks[l].merge_r = mlp[l];
    }
    c->head = EVIT_HEAD_CLASS;
    if (evit_h5_attr_exists(f, "head")) {
        char *h = NULL;
        if (evit_h5_attr_read_string(f, path, "head", &h) < 0) return EVIT_ERR;
        c->head = evit_config_head_parse(h);
        if (c->head < 0) evit_error("%s: unknown head '%s' (class, seg_linear or seg_mlp)", path, h);
        free(h);
        if (c->head < 0) return EVIT_ERR;
    }
    if (c->head == EVIT_HEAD_SEG_MLP && read_decoder(f, path, c) < 0) return EVIT_ERR;
    return evit_config_validate(c, path);
}

static int read_config(hid_t f, const char *path, struct evit_vit_config *c)
{
    if (evit_h5_check_format(f, path, "evit-checkpoint", EVIT_CKPT_VERSION) < 0) return EVIT_ERR;
    return evit_ckpt_read_config(f, path, c);
}

int evit_ckpt_load_config(const char *path, struct evit_vit_config *cfg)
{
    hid_t f;
    if (evit_h5_open(path, &f) < 0) return EVIT_ERR;
    int rc = read_config(f, path, cfg);
    H5Fclose(f);
    return rc;
}

int evit_ckpt_read_meta(hid_t f, const char *path, struct evit_vit *m, struct evit_ckpt_meta *meta)
{
    int channels = m->cfg.channels;
    if (evit_h5_attr_read_floats(f, path, "mean", m->mean, channels) < 0 ||
        evit_h5_attr_read_floats(f, path, "std", m->std, channels) < 0)
        return EVIT_ERR;
    for (int c = 0; c < channels; c++)
        if (!(m->std[c] > 0.0f) || m->mean[c] != m->mean[c])
            return evit_error("%s: attribute std must be positive and mean finite", path);
    if (!meta) return EVIT_OK;
    memset(meta, 0, sizeof *meta);
    char *s = NULL;
    if (evit_h5_attr_exists(f, "stage")) {
        if (evit_h5_attr_read_string(f, path, "stage", &s) < 0) return EVIT_ERR;
        meta->stage = s;
    }
    if (evit_h5_attr_exists(f, "parent_report")) {
        if (evit_h5_attr_read_string(f, path, "parent_report", &s) < 0) return EVIT_ERR;
        meta->parent_report = s;
    }
    if (evit_h5_attr_exists(f, "report")) {
        if (evit_h5_attr_read_string(f, path, "report", &s) < 0) return EVIT_ERR;
        meta->report = s;
    }
    if (evit_h5_attr_exists(f, "classes")) {
        meta->classes = m->cfg.classes;
        if (evit_h5_attr_read_strings(f, path, "classes", &meta->class_names, &meta->classes) < 0) {
            meta->classes = 0;
            return EVIT_ERR;
        }
    }
    return EVIT_OK;
}

int evit_ckpt_read(hid_t f, const char *path, struct evit_vit *m, struct evit_ckpt_meta *meta)
{
    struct evit_vit_config cfg;
    char h5path[EVIT_TENSOR_NAME_MAX];
    int n = 0;
    struct evit_tensor_ref *t = NULL;
    if (meta) memset(meta, 0, sizeof *meta);
    memset(m, 0, sizeof *m);
    if (read_config(f, path, &cfg) < 0) return EVIT_ERR;
    evit_vit_alloc(m, &cfg);
    if (evit_ckpt_read_meta(f, path, m, meta) < 0) goto fail;
    t = evit_vit_tensor_list(&m->cfg, &m->p, &n);
    for (int i = 0; i < n; i++) {
        key_to_path(h5path, sizeof h5path, t[i].name);
        if (evit_h5_read(f, path, h5path, H5T_NATIVE_FLOAT, t[i].ndim, t[i].shape, t[i].data) < 0)
            goto fail;
    }
    free(t);
    t = NULL;
    if (evit_vit_check_finite(m, path) < 0) goto fail;
    return EVIT_OK;
fail:
    free(t);
    evit_vit_free(m);
    if (meta) evit_ckpt_meta_free(meta);
    return EVIT_ERR;
}

int evit_ckpt_load_heads(const char *path, struct evit_vit *m, struct evit_ckpt_meta *meta, unsigned heads)
{
    hid_t f;
    if (meta) memset(meta, 0, sizeof *meta);
    memset(m, 0, sizeof *m);
    if (evit_h5_open(path, &f) < 0) return EVIT_ERR;
    int rc = evit_ckpt_read(f, path, m, meta);
    H5Fclose(f);
    if (rc == 0 && !(heads & EVIT_HEAD_BIT(m->cfg.head))) {
        /* "class", "class or seg_linear", "class, seg_linear or seg_mlp" */
        char taken[64] = "";
        int left = 0;
        for (int h = EVIT_HEAD_CLASS; h <= EVIT_HEAD_SEG_MLP; h++) left += !!(heads & EVIT_HEAD_BIT(h));
        for (int h = EVIT_HEAD_CLASS; h <= EVIT_HEAD_SEG_MLP; h++)
            if (heads & EVIT_HEAD_BIT(h)) {
                left--;
                snprintf(taken + strlen(taken), sizeof taken - strlen(taken), "%s%s", evit_config_head_name(h),
                         left > 1 ? ", " : left == 1 ? " or " : "");
            }
        evit_error("%s: has a %s head, which this stage does not support yet (it takes %s heads; docs/SEGMENT.md)",
                   path, evit_config_head_name(m->cfg.head), taken);
        evit_vit_free(m);
        if (meta) evit_ckpt_meta_free(meta);
        return EVIT_ERR;
    }
    return rc;
}

int evit_ckpt_load(const char *path, struct evit_vit *m, struct evit_ckpt_meta *meta)
{
    return evit_ckpt_load_heads(path, m, meta, EVIT_HEAD_BIT(EVIT_HEAD_CLASS));
}

void evit_ckpt_meta_free(struct evit_ckpt_meta *meta)
{
    free((char *)meta->stage);
    free((char *)meta->parent_report);
    free((char *)meta->report);
    for (int i = 0; i < meta->classes; i++) free(meta->class_names[i]);
    free(meta->class_names);
    memset(meta, 0, sizeof *meta);
}
