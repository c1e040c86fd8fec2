/* evrt.c: see evrt.h. */
#include "evrt.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

struct evrt_ctx {
    const struct evrt_model *m;
    int max_batch;
    int T, N, PI; /* tokens, patches, patch inputs */
    evrt_observer_fn observer;
    void *user;
    size_t bytes;
    char err[EVRT_ERR_MAX];
    /* working memory, one allocation each */
    float *patches; /* (B, N, PI) */
    float *x;       /* (B, T, D) residual stream */
    float *ln;      /* (B, T, D) LayerNorm output; patch embeddings first */
    float *qkv;     /* (B, T, 3 Imax) */
    float *attv;    /* (B, T, Imax) */
    float *tmp;     /* (B, T, D) branch output */
    float *h;       /* (B, T, Mmax) */
    float *scores;  /* (T) */
    int8_t *xq;     /* (B, T, max in) quantized activations */
};

static int fail(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    if (n) {
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return EVRT_EINVAL;
}

int evrt_layer_count(const struct evrt_model *m) { return 2 + 4 * m->depth; }

struct evrt_linear *evrt_model_layer(const struct evrt_model *m, int layer)
{
    int l, k;
    if (layer < 0 || layer >= evrt_layer_count(m)) return NULL;
    /* like strchr: the model is const to the runtime, not to its owner */
    if (layer == 0) return (struct evrt_linear *)&m->patch_embed;
    if (layer == 1 + 4 * m->depth) return (struct evrt_linear *)&m->head;
    l = (layer - 1) / 4;
    k = (layer - 1) % 4;
    return k == 0 ? &m->blocks[l].qkv : k == 1 ? &m->blocks[l].proj : k == 2 ? &m->blocks[l].fc1
                                                                             : &m->blocks[l].fc2;
}

const char *evrt_layer_name(const struct evrt_model *m, int layer, char *buf, size_t n)
{
    static const char *const part[4] = {"attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"};
    if (layer == 0)
        snprintf(buf, n, "patch_embed.proj");
    else if (layer == 1 + 4 * m->depth)
        snprintf(buf, n, "head");
    else if (layer > 0 && layer < 1 + 4 * m->depth)
        snprintf(buf, n, "blocks.%d.%s", (layer - 1) / 4, part[(layer - 1) % 4]);
    else
        snprintf(buf, n, "?");
    return buf;
}

int evrt_model_tokens(const struct evrt_model *m)
{
    int g = m->patch > 0 ? m->img_size / m->patch : 0;
    return 1 + g * g;
}

size_t evrt_model_bytes(const struct evrt_model *m)
{
    size_t D = (size_t)m->dim, f = 0, q = 0;
    int l, i;
    f += D + (size_t)evrt_model_tokens(m) * D + 2 * D; /* cls, pos, final norm */
    for (l = 0; l < m->depth; l++) f += 4 * D;         /* ln1, ln2 */
    for (i = 0; i < evrt_layer_count(m); i++) {
        const struct evrt_linear *L = evrt_model_layer(m, i);
        size_t w = (size_t)L->in * L->out;
        if (L->bias) f += (size_t)L->out;
        if (L->dtype == EVRT_I8) {
            q += w + 4 * (size_t)L->out + 8; /* int8 weights, scales, in_scale, in_zero */
        } else {
            f += w;
        }
    }
    return 4 * f + q;
}

static int check_linear(const struct evrt_linear *L, const char *name, int in, int out, char *err,
                        size_t n)
{
    if (L->in != in || L->out != out)
        return fail(err, n, "%s is %d -> %d, expected %d -> %d", name, L->in, L->out, in, out);
    if (L->dtype == EVRT_F32) {
        if (!L->w) return fail(err, n, "%s: float32 layer without weights", name);
    } else if (L->dtype == EVRT_I8) {
        if (!L->wq || !L->w_scale) return fail(err, n, "%s: int8 layer without weights or scales", name);
        if (!(L->in_scale > 0.0f) || L->in_scale > 1e30f)
            return fail(err, n, "%s: activation scale %g is not positive and finite", name,
                        (double)L->in_scale);
        if (L->in_zero < -128 || L->in_zero > 127)
            return fail(err, n, "%s: activation zero point %ld outside [-128, 127]", name,
                        (long)L->in_zero);
        if (in > 65536) return fail(err, n, "%s: %d inputs could overflow int32", name, in);
    } else {
        return fail(err, n, "%s: unknown dtype %d", name, L->dtype);
    }
    return EVRT_OK;
}

int evrt_model_check(const struct evrt_model *m, char *err, size_t n)
{
    int l, i, D = m->dim, PI;
    char name[64];
    if (m->img_size < 1 || m->patch < 1 || m->img_size % m->patch)
        return fail(err, n, "patch %d must divide img_size %d", m->patch, m->img_size);
    if (m->channels < 1 || m->channels > EVRT_MAX_CHANNELS)
        return fail(err, n, "channels %d outside [1, %d]", m->channels, EVRT_MAX_CHANNELS);
    if (D < 1 || m->depth < 1 || m->classes < 1 || !m->blocks)
        return fail(err, n, "dim %d, depth %d and classes %d must be positive", D, m->depth,
                    m->classes);
    for (i = 0; i < m->channels; i++)
        if (!(m->std[i] > 0.0f)) return fail(err, n, "std[%d] must be positive", i);
    if (!m->cls_token || !m->pos_embed || !m->norm_w || !m->norm_b)
        return fail(err, n, "missing class token, position embedding or final norm");
    for (l = 0; l < m->depth; l++) {
        const struct evrt_block *b = &m->blocks[l];
        if (b->heads < 1 || b->head_dim < 1 || b->mlp < 1)
            return fail(err, n, "block %d: heads, head_dim and mlp must be positive", l);
        if (!b->ln1_w || !b->ln1_b || !b->ln2_w || !b->ln2_b)
            return fail(err, n, "block %d: missing LayerNorm parameters", l);
    }
    PI = m->channels * m->patch * m->patch;
    for (i = 0; i < evrt_layer_count(m); i++) {
        int in = D, out = D, rc;
        l = (i - 1) / 4;
        if (i == 0) {
            in = PI;
        } else if (i == 1 + 4 * m->depth) {
            out = m->classes;
        } else {
            int I = m->blocks[l].heads * m->blocks[l].head_dim, M = m->blocks[l].mlp;
            switch ((i - 1) % 4) {
            case 0: out = 3 * I; break;
            case 1: in = I; break;
            case 2: out = M; break;
            default: in = M; break;
            }
        }
        rc = check_linear(evrt_model_layer(m, i), evrt_layer_name(m, i, name, sizeof name), in, out,
                          err, n);
        if (rc) return rc;
    }
    return EVRT_OK;
}

static int imax(int a, int b) { return a > b ? a : b; }

int evrt_ctx_create(evrt_ctx **out, const struct evrt_model *m, int max_batch)
{
    evrt_ctx *c = calloc(1, sizeof *c);
    size_t B = (size_t)max_batch, T, D, I = 0, M = 0, in = 0;
    int l, i;
    *out = c;
    if (!c) return EVRT_ENOMEM;
    c->m = m;
    c->max_batch = max_batch;
    if (max_batch < 1) return fail(c->err, sizeof c->err, "max_batch %d must be positive", max_batch);
    if (evrt_model_check(m, c->err, sizeof c->err)) return EVRT_EINVAL;
    c->T = evrt_model_tokens(m);
    c->N = c->T - 1;
    c->PI = m->channels * m->patch * m->patch;
    T = (size_t)c->T;
    D = (size_t)m->dim;
    for (l = 0; l < m->depth; l++) {
        I = (size_t)imax((int)I, m->blocks[l].heads * m->blocks[l].head_dim);
        M = (size_t)imax((int)M, m->blocks[l].mlp);
    }
    for (i = 0; i < evrt_layer_count(m); i++) in = (size_t)imax((int)in, evrt_model_layer(m, i)->in);
    c->patches = malloc(sizeof(float) * B * c->N * c->PI);
    c->x = malloc(sizeof(float) * B * T * D);
    c->ln = malloc(sizeof(float) * B * T * D);
    c->qkv = malloc(sizeof(float) * B * T * 3 * I);
    c->attv = malloc(sizeof(float) * B * T * I);
    c->tmp = malloc(sizeof(float) * B * T * D);
    c->h = malloc(sizeof(float) * B * T * M);
    c->scores = malloc(sizeof(float) * T);
    c->xq = malloc(B * T * in);
    c->bytes = sizeof(float) * (B * c->N * c->PI + 3 * B * T * D + 4 * B * T * I + B * T * M + T) +
               B * T * in;
    if (!c->patches || !c->x || !c->ln || !c->qkv || !c->attv || !c->tmp || !c->h || !c->scores ||
        !c->xq) {
        evrt_ctx_destroy(c);
        *out = NULL;
        return EVRT_ENOMEM;
    }
    return EVRT_OK;
}

void evrt_ctx_destroy(evrt_ctx *c)
{
    if (!c) return;
    free(c->patches);
    free(c->x);
    free(c->ln);
    free(c->qkv);
    free(c->attv);
    free(c->tmp);
    free(c->h);
    free(c->scores);
    free(c->xq);
    free(c);
}

const char *evrt_ctx_error(const evrt_ctx *c) { return c ? c->err : "out of memory"; }
int evrt_ctx_max_batch(const evrt_ctx *c) { return c->max_batch; }
size_t evrt_ctx_bytes(const evrt_ctx *c) { return c->bytes; }

void evrt_set_observer(evrt_ctx *c, evrt_observer_fn fn, void *user)
{
    c->observer = fn;
    c->user = user;
}

/* One linear layer on rows of x, through the observer. */
static void linear(evrt_ctx *c, int layer, float *y, const float *x, int rows)
{
    const struct evrt_linear *L = evrt_model_layer(c->m, layer);
    if (c->observer) c->observer(c->user, layer, EVRT_OBSERVE_INPUT, x, rows, L->in);
    if (L->dtype == EVRT_I8) {
        evrt_quantize_act_ref(c->xq, x, (size_t)rows * L->in, L->in_scale, L->in_zero);
        evrt_linear_i8_ref(y, c->xq, L->in_zero, L->in_scale, L->wq, L->w_scale, L->bias, rows,
                           L->in, L->out);
    } else {
        evrt_linear_f32_ref(y, x, L->w, L->bias, rows, L->in, L->out);
    }
    if (c->observer) c->observer(c->user, layer, EVRT_OBSERVE_OUTPUT, y, rows, L->out);
}

/* Block l on the residual stream c->x (B, T, D).  In the last block only the
 * class token goes on after the keys and values are made: the stream is
 * compacted to (B, 1, D) in place. */
static void block(evrt_ctx *c, int l, int B, int last)
{
    const struct evrt_block *b = &c->m->blocks[l];
    int T = c->T, D = c->m->dim, nq = last ? 1 : T, k;
    int rows = B * nq;
    evrt_layernorm_ref(c->ln, c->x, b->ln1_w, b->ln1_b, B * T, D);
    linear(c, 1 + 4 * l, c->qkv, c->ln, B * T);
    evrt_attention_ref(c->attv, c->scores, c->qkv, B, T, nq, b->heads, b->head_dim);
    if (last)
        for (k = 1; k < B; k++) memmove(c->x + (size_t)k * D, c->x + (size_t)k * T * D, sizeof(float) * D);
    linear(c, 2 + 4 * l, c->tmp, c->attv, rows);
    evrt_add_ref(c->x, c->tmp, (size_t)rows * D);
    evrt_layernorm_ref(c->ln, c->x, b->ln2_w, b->ln2_b, rows, D);
    linear(c, 3 + 4 * l, c->h, c->ln, rows);
    evrt_gelu_ref(c->h, (size_t)rows * b->mlp);
    linear(c, 4 + 4 * l, c->tmp, c->h, rows);
    evrt_add_ref(c->x, c->tmp, (size_t)rows * D);
}

int evrt_infer(evrt_ctx *c, const uint8_t *images, int B, float *logits)
{
    const struct evrt_model *m = c->m;
    int T = c->T, N = c->N, D = m->dim, b, t, i, l;
    if (B < 1 || B > c->max_batch)
        return fail(c->err, sizeof c->err, "batch %d outside [1, %d]", B, c->max_batch);
    if (!images || !logits) return fail(c->err, sizeof c->err, "images and logits must not be NULL");
    /* dtypes and scales may have changed since the last call */
    if (evrt_model_check(m, c->err, sizeof c->err)) return EVRT_EINVAL;
    evrt_patchify_ref(c->patches, images, m->mean, m->std, B, m->img_size, m->channels, m->patch);
    linear(c, 0, c->ln, c->patches, B * N);
    for (b = 0; b < B; b++) {
        float *x = c->x + (size_t)b * T * D;
        const float *pe = c->ln + (size_t)b * N * D;
        for (i = 0; i < D; i++) x[i] = m->cls_token[i] + m->pos_embed[i];
        for (t = 1; t < T; t++)
            for (i = 0; i < D; i++)
                x[(size_t)t * D + i] = pe[(size_t)(t - 1) * D + i] + m->pos_embed[(size_t)t * D + i];
    }
    for (l = 0; l < m->depth; l++) block(c, l, B, l == m->depth - 1);
    /* c->x is now (B, D): the class tokens */
    evrt_layernorm_ref(c->ln, c->x, m->norm_w, m->norm_b, B, D);
    linear(c, 1 + 4 * m->depth, logits, c->ln, B);
    c->err[0] = '\0';
    return EVRT_OK;
}
