/* qmodel.c: see qmodel.h. */
#include "qmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "h5.h"
#include "util.h"

/* Points rt's float tensors at q->vit's parameters and its int8 tensors at
 * q->wq / q->wscale (which must be allocated). */
static void bind_runtime(struct evit_qmodel *q)
{
    const struct evit_vit_config *c = &q->vit.cfg;
    const struct evit_vit_params *p = &q->vit.p;
    struct evrt_model *rt = &q->rt;
    size_t wo = 0, so = 0;
    memset(rt, 0, sizeof *rt);
    EVIT_QMODEL_COPY_GEOMETRY(rt, c);
    for (int i = 0; i < 4 && i < EVRT_MAX_CHANNELS; i++) {
        rt->mean[i] = q->vit.mean[i];
        rt->std[i] = q->vit.std[i];
    }
    rt->cls_token = p->cls_token;
    rt->pos_embed = p->pos_embed;
    rt->norm_w = p->norm_w;
    rt->norm_b = p->norm_b;
    rt->blocks = q->blocks;
    int D = c->dim;
    rt->patch_embed = (struct evrt_linear){.in = evit_config_patch_in(c), .out = D, .w = p->patch_w, .bias = p->patch_b};
    for (int l = 0; l < c->depth; l++) {
        const struct evit_block_params *bp = &p->blocks[l];
        struct evrt_block *b = &q->blocks[l];
        int I = evit_config_inner(c, l), M = c->blocks[l].mlp;
        memset(b, 0, sizeof *b);
        b->heads = c->blocks[l].heads;
        b->head_dim = c->blocks[l].head_dim;
        b->mlp = M;
        b->merge_r = c->blocks[l].merge_r;
        b->ln1_w = bp->ln1_w;
        b->ln1_b = bp->ln1_b;
        b->ln2_w = bp->ln2_w;
        b->ln2_b = bp->ln2_b;
        b->qkv = (struct evrt_linear){.in = D, .out = 3 * I, .w = bp->qkv_w, .bias = bp->qkv_b};
        b->proj = (struct evrt_linear){.in = I, .out = D, .w = bp->proj_w, .bias = bp->proj_b};
        b->fc1 = (struct evrt_linear){.in = D, .out = M, .w = bp->fc1_w, .bias = bp->fc1_b};
        b->fc2 = (struct evrt_linear){.in = M, .out = D, .w = bp->fc2_w, .bias = bp->fc2_b};
    }
    rt->head_kind = evit_qmodel_head_kind(c->head);
    memset(&q->dec, 0, sizeof q->dec);
    if (c->head == EVIT_HEAD_SEG_MLP) {
        /* SegFormer's decoder: the last level's LayerNorm is the final norm
         * (evrt_decoder leaves its entries unread) */
        int C = c->decoder_dim, L = c->decoder_nlevels;
        q->dec.dim = C;
        q->dec.levels = L;
        for (int i = 0; i < L; i++) {
            q->dec.level[i] = c->decoder_levels[i];
            if (i < L - 1) {
                q->dec.norm_w[i] = p->dec_norm_w[i];
                q->dec.norm_b[i] = p->dec_norm_b[i];
            }
            q->dec.linear_c[i] = (struct evrt_linear){.in = D, .out = C, .w = p->dec_w[i], .bias = p->dec_b[i]};
        }
        q->dec.fuse = (struct evrt_linear){.in = L * C, .out = C, .w = p->fuse_w, .bias = p->fuse_b};
        rt->decoder = &q->dec;
    }
    rt->head = (struct evrt_linear){.in = c->head == EVIT_HEAD_SEG_MLP ? c->decoder_dim : D, .out = c->classes,
                                    .w = p->head_w, .bias = p->head_b};
    for (int i = 0; i < evrt_layer_count(rt); i++) {
        struct evrt_linear *L = evrt_model_layer(rt, i);
        L->dtype = EVRT_F32;
        L->wq = q->wq + wo;
        L->w_scale = q->wscale + so;
        L->in_scale = 1.0f;
        L->in_zero = 0;
        wo += (size_t)L->in * L->out;
        so += (size_t)L->out;
    }
}

/* libevrt runs the heads of EVIT_HEADS_RUNTIME; any other is refused in
 * one line before it reaches the runtime (and evit_qmodel_head_kind's
 * assertion). */
static int check_runtime_head(int head, const char *path)
{
    if (EVIT_HEADS_RUNTIME & EVIT_HEAD_BIT(head)) return EVIT_OK;
    return evit_error("%s: has a %s head, which libevrt does not run yet (docs/SEGMENT.md)", path,
                      evit_config_head_name(head));
}

int evit_qmodel_head_kind(int head)
{
    switch (head) {
    case EVIT_HEAD_CLASS: return EVRT_HEAD_CLASS;
    case EVIT_HEAD_SEG_LINEAR: return EVRT_HEAD_SEG_LINEAR;
    case EVIT_HEAD_SEG_MLP: return EVRT_HEAD_SEG_MLP;
    }
    EVIT_ASSERT(!"a head the runtime lacks");
    return -1;
}

int evit_qmodel_config_head(int head_kind)
{
    return head_kind == EVRT_HEAD_SEG_MLP      ? EVIT_HEAD_SEG_MLP
           : head_kind == EVRT_HEAD_SEG_LINEAR ? EVIT_HEAD_SEG_LINEAR
                                               : EVIT_HEAD_CLASS;
}

int evit_qmodel_infer(evrt_ctx *ctx, const struct evrt_model *rt, const uint8_t *images, int B, float *out)
{
    return rt->head_kind == EVRT_HEAD_CLASS ? evrt_infer(ctx, images, B, out)
                                            : evrt_infer_seg(ctx, images, B, out, NULL, NULL);
}

static void alloc_int8(struct evit_qmodel *q)
{
    size_t w = 0, s = 0;
    struct evrt_model tmp;
    /* sizes from a binding without int8 storage yet */
    q->wq = NULL;
    q->wscale = NULL;
    bind_runtime(q);
    tmp = q->rt;
    for (int i = 0; i < evrt_layer_count(&tmp); i++) {
        const struct evrt_linear *L = evrt_model_layer(&tmp, i);
        w += (size_t)L->in * L->out;
        s += (size_t)L->out;
    }
    q->wq = evit_calloc(w, 1);
    q->wscale = evit_calloc(s, sizeof(float));
    bind_runtime(q);
}

void evit_qmodel_from_vit(struct evit_qmodel *q, const struct evit_vit *m)
{
    memset(q, 0, sizeof *q);
    q->vit = *m; /* shallow: the parameters stay m's */
    q->own_vit = 0;
    q->symmetric = 1;
    alloc_int8(q);
    for (int i = 0; i < evrt_layer_count(&q->rt); i++) {
        struct evrt_linear *L = evrt_model_layer(&q->rt, i);
        evrt_quantize_weights_ref((int8_t *)L->wq, (float *)L->w_scale, L->w, L->out, L->in);
    }
}

void evit_qmodel_free(struct evit_qmodel *q)
{
    if (q->own_vit) evit_vit_free(&q->vit);
    free(q->wq);
    free(q->wscale);
    memset(q, 0, sizeof *q);
}

int evit_qmodel_int8_layers(const struct evit_qmodel *q)
{
    int n = 0;
    for (int i = 0; i < evrt_layer_count(&q->rt); i++) n += evrt_model_layer(&q->rt, i)->dtype == EVRT_I8;
    return n;
}

/* "blocks.0.attn.qkv" -> "blocks/0/attn/qkv/<leaf>" */
static void layer_path(char *out, size_t n, const struct evrt_model *rt, int i, const char *leaf)
{
    char name[64];
    evrt_layer_name(rt, i, name, sizeof name);
    for (char *p = name; *p; p++)
        if (*p == '.') *p = '/';
    snprintf(out, n, "%s/%s", name, leaf);
}

/* The linear weights of the tensor list are written per layer instead. */
static int is_linear_param(const struct evit_tensor_ref *t)
{
    return t->kind == EVIT_T_WEIGHT || t->kind == EVIT_T_BIAS;
}

static int write_meta(hid_t f, const char *path, const struct evit_qmodel *q,
                      const struct evit_ckpt_meta *meta)
{
    int n8 = evit_qmodel_int8_layers(q), nl = evrt_layer_count(&q->rt), nf = 0;
    char *names[EVIT_QMODEL_MAX_LAYERS];
    int version = evit_qmodel_int8_attention(q) ? EVIT_QMODEL_VERSION_ATT : 1;
    if (evit_h5_write_format(f, "evit-quantized", version) < 0 ||
        evit_ckpt_write_header(f, path, &q->vit, meta, "quantize") < 0)
        return EVIT_ERR;
    int ok = evit_h5_attr_write_string(f, "calibrator", q->calibrator[0] ? q->calibrator : "none") == 0 &&
             evit_h5_attr_write_double(f, "percentile", q->percentile) == 0 &&
             evit_h5_attr_write_ints(f, "symmetric", &q->symmetric, 1) == 0 &&
             evit_h5_attr_write_ints(f, "int8_layers", &n8, 1) == 0;
    for (int i = 0; i < nl; i++) {
        if (evrt_model_layer(&q->rt, i)->dtype != EVRT_F32) continue;
        names[nf] = evit_malloc(64);
        evrt_layer_name(&q->rt, i, names[nf], 64);
        nf++;
    }
    if (ok && nf) ok = evit_h5_attr_write_strings(f, "float_layers", names, nf) == 0;
    for (int i = 0; i < nf; i++) free(names[i]);
    if (!ok) return evit_error("%s: cannot write attributes", path);
    return EVIT_OK;
}

static int write_layer(hid_t f, const char *path, const struct evit_qmodel *q, int i,
                       const struct evit_tensor_ref *wref)
{
    const struct evrt_linear *L = evrt_model_layer(&q->rt, i);
    char p[96];
    int64_t one = 1, out = L->out;
    layer_path(p, sizeof p, &q->rt, i, "bias");
    if (evit_h5_write(f, path, p, H5T_NATIVE_FLOAT, 1, &out, L->bias) < 0) return EVIT_ERR;
    layer_path(p, sizeof p, &q->rt, i, "input_scale");
    if (evit_h5_write(f, path, p, H5T_NATIVE_FLOAT, 1, &one, &L->in_scale) < 0) return EVIT_ERR;
    layer_path(p, sizeof p, &q->rt, i, "input_zero");
    if (evit_h5_write(f, path, p, H5T_NATIVE_INT32, 1, &one, &L->in_zero) < 0) return EVIT_ERR;
    if (L->dtype == EVRT_F32) {
        layer_path(p, sizeof p, &q->rt, i, "weight");
        return evit_h5_write(f, path, p, H5T_NATIVE_FLOAT, wref->ndim, wref->shape, L->w);
    }
    layer_path(p, sizeof p, &q->rt, i, "weight_int8");
    if (evit_h5_write(f, path, p, H5T_NATIVE_INT8, wref->ndim, wref->shape, L->wq) < 0) return EVIT_ERR;
    layer_path(p, sizeof p, &q->rt, i, "weight_scale");
    return evit_h5_write(f, path, p, H5T_NATIVE_FLOAT, 1, &out, L->w_scale);
}

/* The weight tensor of layer i in the tensor list (for its PyTorch shape). */
static const struct evit_tensor_ref *layer_weight_ref(const struct evit_tensor_ref *t, int n, int i,
                                                      const struct evrt_model *rt)
{
    char name[64], want[80];
    evrt_layer_name(rt, i, name, sizeof name);
    snprintf(want, sizeof want, "%s.weight", name);
    for (int k = 0; k < n; k++)
        if (strcmp(t[k].name, want) == 0) return &t[k];
    EVIT_ASSERT(0);
    return NULL;
}

int evit_qmodel_save(const char *path, const struct evit_qmodel *q, const struct evit_ckpt_meta *meta)
{
    hid_t f;
    int n, ok, rc = EVIT_ERR;
    char h5path[EVIT_TENSOR_NAME_MAX];
    char *tmp = evit_temp_path(path);
    struct evit_tensor_ref *t = evit_vit_tensor_list(&q->vit.cfg, &q->vit.p, &n);
    if (evit_h5_create(tmp, &f) < 0) goto out;
    ok = write_meta(f, path, q, meta) == 0;
    for (int i = 0; ok && i < n; i++) {
        if (is_linear_param(&t[i])) continue;
        snprintf(h5path, sizeof h5path, "%s", t[i].name);
        for (char *p = h5path; *p; p++)
            if (*p == '.') *p = '/';
        ok = evit_h5_write(f, path, h5path, H5T_NATIVE_FLOAT, t[i].ndim, t[i].shape, t[i].data) == 0;
    }
    for (int i = 0; ok && i < evrt_layer_count(&q->rt); i++)
        ok = write_layer(f, path, q, i, layer_weight_ref(t, n, i, &q->rt)) == 0;
    for (int l = 0; ok && l < q->rt.depth; l++) {
        int64_t four = 4;
        if (q->rt.blocks[l].attn_dtype != EVRT_I8) continue;
        snprintf(h5path, sizeof h5path, "blocks/%d/attn/act_scale", l);
        ok = evit_h5_write(f, path, h5path, H5T_NATIVE_FLOAT, 1, &four, q->rt.blocks[l].attn_scale) == 0;
    }
    rc = evit_h5_finish(f, tmp, path, ok);
out:
    free(t);
    free(tmp);
    return rc;
}

int evit_qmodel_is_quantized(const char *path)
{
    hid_t f;
    char *fmt = NULL;
    int yes = 0;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0) return 0;
    if (evit_h5_attr_exists(f, "format")) {
        hid_t a = H5Aopen(f, "format", H5P_DEFAULT);
        hid_t ty = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
        /* only a string is read (a reader that prints nothing else) */
        int str = ty >= 0 && H5Tget_class(ty) == H5T_STRING;
        if (ty >= 0) H5Tclose(ty);
        if (a >= 0) H5Aclose(a);
        if (str && evit_h5_attr_read_string(f, path, "format", &fmt) == 0) {
            yes = strcmp(fmt, "evit-quantized") == 0;
            free(fmt);
        }
    }
    H5Fclose(f);
    return yes;
}

static int read_config(hid_t f, const char *path, struct evit_vit_config *c)
{
    if (evit_h5_check_format(f, path, "evit-quantized", EVIT_QMODEL_VERSION) < 0 ||
        evit_ckpt_read_config(f, path, c) < 0 || check_runtime_head(c->head, path) < 0)
        return EVIT_ERR;
    if (c->channels > EVRT_MAX_CHANNELS)
        return evit_error("%s: %d channels, the runtime takes at most %d", path, c->channels, EVRT_MAX_CHANNELS);
    return EVIT_OK;
}


static int read_meta(hid_t f, const char *path, struct evit_qmodel *q, struct evit_ckpt_meta *meta)
{
    char *cal = NULL;
    if (evit_ckpt_read_meta(f, path, &q->vit, meta) < 0 ||
        evit_h5_attr_read_string(f, path, "calibrator", &cal) < 0 ||
        evit_h5_attr_read_double(f, path, "percentile", &q->percentile) < 0 ||
        evit_h5_attr_read_ints(f, path, "symmetric", &q->symmetric, 1) < 0) {
        free(cal);
        return EVIT_ERR;
    }
    snprintf(q->calibrator, sizeof q->calibrator, "%s", cal);
    free(cal);
    return EVIT_OK;
}

static int read_layer(hid_t f, const char *path, struct evit_qmodel *q, int i,
                      const struct evit_tensor_ref *wref)
{
    struct evrt_linear *L = evrt_model_layer(&q->rt, i);
    char p[96], name[64];
    int64_t one = 1, out = L->out;
    evrt_layer_name(&q->rt, i, name, sizeof name);
    layer_path(p, sizeof p, &q->rt, i, "bias");
    if (evit_h5_read(f, path, p, H5T_NATIVE_FLOAT, 1, &out, (float *)L->bias) < 0) return EVIT_ERR;
    layer_path(p, sizeof p, &q->rt, i, "input_scale");
    if (evit_h5_read(f, path, p, H5T_NATIVE_FLOAT, 1, &one, &L->in_scale) < 0) return EVIT_ERR;
    layer_path(p, sizeof p, &q->rt, i, "input_zero");
    if (evit_h5_read(f, path, p, H5T_NATIVE_INT32, 1, &one, &L->in_zero) < 0) return EVIT_ERR;
    layer_path(p, sizeof p, &q->rt, i, "weight");
    if (evit_h5_exists(f, p)) {
        L->dtype = EVRT_F32;
        return evit_h5_read(f, path, p, H5T_NATIVE_FLOAT, wref->ndim, wref->shape, (float *)L->w);
    }
    L->dtype = EVRT_I8;
    layer_path(p, sizeof p, &q->rt, i, "weight_int8");
    if (!evit_h5_exists(f, p))
        return evit_error("%s: layer %s has neither weight nor weight_int8", path, name);
    if (evit_h5_read(f, path, p, H5T_NATIVE_INT8, wref->ndim, wref->shape, (int8_t *)L->wq) < 0)
        return EVIT_ERR;
    layer_path(p, sizeof p, &q->rt, i, "weight_scale");
    if (evit_h5_read(f, path, p, H5T_NATIVE_FLOAT, 1, &out, (float *)L->w_scale) < 0) return EVIT_ERR;
    for (int o = 0; o < L->out; o++)
        if (!(L->w_scale[o] > 0.0f) || !isfinite(L->w_scale[o]))
            return evit_error("%s: %s.weight_scale[%d] is not positive and finite", path, name, o);
    return EVIT_OK;
}

int evit_qmodel_load(const char *path, struct evit_qmodel *q, struct evit_ckpt_meta *meta)
{
    hid_t f;
    struct evit_vit_config cfg;
    struct evit_tensor_ref *t = NULL;
    char h5path[EVIT_TENSOR_NAME_MAX], err[EVRT_ERR_MAX];
    int n = 0;
    memset(q, 0, sizeof *q);
    if (meta) memset(meta, 0, sizeof *meta);
    if (evit_h5_open(path, &f) < 0) return EVIT_ERR;
    if (read_config(f, path, &cfg) < 0) {
        H5Fclose(f);
        return EVIT_ERR;
    }
    evit_vit_alloc(&q->vit, &cfg);
    q->own_vit = 1;
    alloc_int8(q);
    if (read_meta(f, path, q, meta) < 0) goto fail;
    for (int c = 0; c < cfg.channels; c++) {
        q->rt.mean[c] = q->vit.mean[c];
        q->rt.std[c] = q->vit.std[c];
    }
    t = evit_vit_tensor_list(&cfg, &q->vit.p, &n);
    for (int i = 0; i < n; i++) {
        if (is_linear_param(&t[i])) continue;
        snprintf(h5path, sizeof h5path, "%s", t[i].name);
        for (char *p = h5path; *p; p++)
            if (*p == '.') *p = '/';
        if (evit_h5_read(f, path, h5path, H5T_NATIVE_FLOAT, t[i].ndim, t[i].shape, t[i].data) < 0)
            goto fail;
    }
    for (int i = 0; i < evrt_layer_count(&q->rt); i++)
        if (read_layer(f, path, q, i, layer_weight_ref(t, n, i, &q->rt)) < 0) goto fail;
    for (int l = 0; l < cfg.depth; l++) {
        int64_t four = 4;
        snprintf(h5path, sizeof h5path, "blocks/%d/attn/act_scale", l);
        if (!evit_h5_exists(f, h5path)) continue;
        /* an evrt_model_check below names a bad scale */
        q->rt.blocks[l].attn_dtype = EVRT_I8;
        if (evit_h5_read(f, path, h5path, H5T_NATIVE_FLOAT, 1, &four, q->rt.blocks[l].attn_scale) < 0)
            goto fail;
    }
    if (evit_vit_check_finite(&q->vit, path) < 0) goto fail;
    if (evrt_model_check(&q->rt, err, sizeof err) != EVRT_OK) {
        evit_error("%s: %s", path, err);
        goto fail;
    }
    free(t);
    H5Fclose(f);
    return EVIT_OK;
fail:
    free(t);
    H5Fclose(f);
    evit_qmodel_free(q);
    if (meta) evit_ckpt_meta_free(meta);
    return EVIT_ERR;
}

int evit_qmodel_int8_attention(const struct evit_qmodel *q)
{
    int n = 0;
    for (int l = 0; l < q->rt.depth; l++) n += q->rt.blocks[l].attn_dtype == EVRT_I8;
    return n;
}

int evit_qmodel_runner_init(struct evit_qmodel_runner *r, const struct evit_qmodel *q, int max_batch,
                            int threads, const char *where)
{
    memset(r, 0, sizeof *r);
    if (threads < 1) threads = 1;
    if (threads > max_batch) threads = max_batch;
    r->n = threads;
    r->per = (max_batch + threads - 1) / threads;
    r->classes = (int)evrt_model_outputs(&q->rt);
    r->rt = &q->rt;
    r->img_bytes = (size_t)q->rt.img_size * q->rt.img_size * q->rt.channels;
    r->ctx = evit_calloc((size_t)threads, sizeof *r->ctx);
    for (int i = 0; i < threads; i++) {
        int rc = evrt_ctx_create(&r->ctx[i], &q->rt, r->per);
        if (rc != EVRT_OK) {
            evit_error("%s: %s", where, evrt_ctx_error(r->ctx[i]));
            evit_qmodel_runner_free(r);
            return EVIT_ERR;
        }
    }
    return EVIT_OK;
}

void evit_qmodel_runner_free(struct evit_qmodel_runner *r)
{
    for (int i = 0; r->ctx && i < r->n; i++) evrt_ctx_destroy(r->ctx[i]);
    free(r->ctx);
    memset(r, 0, sizeof *r);
}

void evit_qmodel_runner_forward(void *ctx, const uint8_t *images, int B, float *logits)
{
    struct evit_qmodel_runner *r = ctx;
    int chunks = (B + r->per - 1) / r->per;
    EVIT_ASSERT(chunks <= r->n);
    /* each context takes a contiguous share; contexts share nothing */
#pragma omp parallel for schedule(static) num_threads(chunks) if (chunks > 1)
    for (int k = 0; k < chunks; k++) {
        int s = k * r->per, b = B - s < r->per ? B - s : r->per;
        int rc = evit_qmodel_infer(r->ctx[k], r->rt, images + (size_t)s * r->img_bytes, b,
                                   logits + (size_t)s * r->classes);
        EVIT_ASSERT(rc == EVRT_OK); /* the model was checked when the contexts were made */
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Batch-1 latency of rt through libevrt on one thread: n inferences on the
 * dataset's images in turn, after 5 untimed ones.  ms[0..2] = median, mean,
 * p99 (milliseconds). */
int evit_qmodel_latency(const struct evrt_model *rt, const struct evit_dataset *d, int n, const char *path,
                        double ms[3])
{
    evrt_ctx *ctx = NULL;
    size_t img = (size_t)d->h * d->w * d->c;
    int seg = rt->head_kind != EVRT_HEAD_CLASS;
    float *logits = evit_malloc(sizeof(float) * evrt_model_outputs(rt));
    /* a segmentation model's inference ends in its mask */
    uint8_t *mask = seg ? evit_malloc((size_t)rt->img_size * rt->img_size) : NULL;
    double *t = evit_malloc(sizeof(double) * (size_t)n), sum = 0.0;
    int rc = EVIT_ERR;
    if (evrt_ctx_create(&ctx, rt, 1) != EVRT_OK) {
        evit_error("%s: runtime: %s", path, ctx ? evrt_ctx_error(ctx) : "out of memory");
        goto fail;
    }
    for (int i = -5; i < n; i++) {
        const uint8_t *x = d->images + (size_t)((i + 5) % d->n) * img;
        double t0 = evit_now();
        if ((seg ? evrt_infer_seg(ctx, x, 1, NULL, NULL, mask) : evrt_infer(ctx, x, 1, logits)) != EVRT_OK) {
            evit_error("%s: runtime: %s", path, evrt_ctx_error(ctx));
            goto fail;
        }
        if (i >= 0) {
            t[i] = 1e3 * (evit_now() - t0);
            sum += t[i];
        }
    }
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    ms[0] = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    ms[1] = sum / n;
    ms[2] = t[(size_t)(0.99 * (n - 1) + 0.5)];
    rc = EVIT_OK;
fail:
    if (ctx) evrt_ctx_destroy(ctx);
    free(t);
    free(logits);
    free(mask);
    return rc;
}

int evit_qmodel_vit_latency(const struct evit_vit *m, const struct evit_dataset *d, int n, const char *path,
                            double ms[3])
{
    struct evit_qmodel q;
    if (check_runtime_head(m->cfg.head, path) < 0) return EVIT_ERR;
    evit_qmodel_from_vit(&q, m);
    int rc = evit_qmodel_latency(&q.rt, d, n, path, ms);
    evit_qmodel_free(&q);
    return rc;
}
