/* model.c: see model.h; the model description's helpers of evrt.h
 * (layer numbering and names, sizes, evrt_model_check), shared by the
 * context (evrt.c) and the file loader (file.c). */
#include "model.h"

#include <stdarg.h>
#include <stdio.h>

int evrt_errf(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    if (n) {
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return EVRT_EINVAL;
}

/* The decoder's levels L when the model has a seg_mlp decoder of 1 to
 * EVRT_MAX_LEVELS levels, else 0 (evrt_model_check refuses a seg_mlp model
 * without one; until then its layers are not counted). */
static int decoder_levels(const struct evrt_model *m)
{
    const struct evrt_decoder *d = m->decoder;
    return m->head_kind == EVRT_HEAD_SEG_MLP && d && d->levels >= 1 && d->levels <= EVRT_MAX_LEVELS ? d->levels
                                                                                                    : 0;
}

int evrt_layer_count(const struct evrt_model *m)
{
    int L = decoder_levels(m);
    return 2 + 4 * m->depth + (L ? L + 1 : 0);
}

struct evrt_linear *evrt_model_layer(const struct evrt_model *m, int layer)
{
    int l, k, first = 2 + 4 * m->depth;
    if (layer < 0 || layer >= evrt_layer_count(m)) return NULL;
    /* like strchr: the model is const to the runtime, not to its owner */
    if (layer == 0) return (struct evrt_linear *)&m->patch_embed;
    if (layer == 1 + 4 * m->depth) return (struct evrt_linear *)&m->head;
    if (layer >= first)
        return layer - first < m->decoder->levels ? &m->decoder->linear_c[layer - first] : &m->decoder->fuse;
    l = (layer - 1) / 4;
    k = (layer - 1) % 4;
    return k == 0 ? &m->blocks[l].qkv : k == 1 ? &m->blocks[l].proj : k == 2 ? &m->blocks[l].fc1
                                                                             : &m->blocks[l].fc2;
}

const char *evrt_layer_name(const struct evrt_model *m, int layer, char *buf, size_t n)
{
    static const char *const part[4] = {"attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"};
    int first = 2 + 4 * m->depth, L = decoder_levels(m);
    if (layer == 0)
        snprintf(buf, n, "patch_embed.proj");
    else if (layer == 1 + 4 * m->depth)
        snprintf(buf, n, "head");
    else if (layer > 0 && layer < 1 + 4 * m->depth)
        snprintf(buf, n, "blocks.%d.%s", (layer - 1) / 4, part[(layer - 1) % 4]);
    else if (layer >= first && layer < first + L)
        snprintf(buf, n, "decode_head.linear_c.%d", layer - first);
    else if (L && layer == first + L)
        snprintf(buf, n, "decode_head.linear_fuse");
    else
        snprintf(buf, n, "?");
    return buf;
}

int evrt_model_tokens(const struct evrt_model *m)
{
    int g = m->patch > 0 ? m->img_size / m->patch : 0;
    return 1 + g * g;
}

int evrt_model_tokens_at(const struct evrt_model *m, int l)
{
    int T = evrt_model_tokens(m), k;
    for (k = 0; k < l && k < m->depth - 1; k++) T -= m->blocks[k].merge_r;
    return T;
}

int evrt_model_level_of(const struct evrt_model *m, int l)
{
    int i;
    if (m->head_kind != EVRT_HEAD_SEG_MLP) return -1;
    for (i = 0; i < m->decoder->levels; i++)
        if (m->decoder->level[i] == l) return i;
    return -1;
}

size_t evrt_model_outputs(const struct evrt_model *m)
{
    return (size_t)m->classes * (m->head_kind != EVRT_HEAD_CLASS ? (size_t)evrt_model_tokens(m) - 1 : 1);
}

size_t evrt_model_bytes(const struct evrt_model *m)
{
    size_t D = (size_t)m->dim, f = 0, q = 0;
    int l, i;
    f += D + (size_t)evrt_model_tokens(m) * D + 2 * D; /* cls, pos, final norm */
    for (l = 0; l < m->depth; l++) f += 4 * D + (m->blocks[l].attn_dtype == EVRT_I8 ? 4 : 0);
    if (decoder_levels(m)) f += 2 * D * (size_t)(decoder_levels(m) - 1); /* the earlier levels' LayerNorms */
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
        return evrt_errf(err, n, "%s is %d -> %d, expected %d -> %d", name, L->in, L->out, in, out);
    if (L->dtype == EVRT_F32) {
        if (!L->w) return evrt_errf(err, n, "%s: float32 layer without weights", name);
    } else if (L->dtype == EVRT_I8) {
        if (!L->wq || !L->w_scale) return evrt_errf(err, n, "%s: int8 layer without weights or scales", name);
        if (!(L->in_scale > 0.0f) || L->in_scale > 1e30f)
            return evrt_errf(err, n, "%s: activation scale %g is not positive and finite", name,
                        (double)L->in_scale);
        if (L->in_zero < -128 || L->in_zero > 127)
            return evrt_errf(err, n, "%s: activation zero point %ld outside [-128, 127]", name,
                        (long)L->in_zero);
        if (in > 65536) return evrt_errf(err, n, "%s: %d inputs could overflow int32", name, in);
    } else {
        return evrt_errf(err, n, "%s: unknown dtype %d", name, L->dtype);
    }
    return EVRT_OK;
}

/* The seg_mlp decoder's description (its layers' shapes are checked with
 * the others). */
static int check_decoder(const struct evrt_model *m, char *err, size_t n)
{
    const struct evrt_decoder *d = m->decoder;
    int i;
    if (!d) return evrt_errf(err, n, "a seg_mlp head without its decoder");
    if (d->dim < 1 || d->dim > 65536) return evrt_errf(err, n, "decoder width %d outside [1, 65536]", d->dim);
    if (d->levels < 1 || d->levels > EVRT_MAX_LEVELS)
        return evrt_errf(err, n, "decoder levels %d outside [1, %d]", d->levels, EVRT_MAX_LEVELS);
    for (i = 0; i < d->levels; i++) {
        if (d->level[i] < 0 || d->level[i] >= m->depth || (i > 0 && d->level[i] <= d->level[i - 1]))
            return evrt_errf(err, n, "decoder level %d is block %d: levels must be blocks 0 to %d, strictly increasing",
                             i, d->level[i], m->depth - 1);
        if (i < d->levels - 1 && (!d->norm_w[i] || !d->norm_b[i]))
            return evrt_errf(err, n, "decoder level %d: missing LayerNorm parameters", i);
    }
    if (d->level[d->levels - 1] != m->depth - 1)
        return evrt_errf(err, n, "the decoder's last level is block %d, not the last block %d", d->level[d->levels - 1],
                         m->depth - 1);
    return EVRT_OK;
}

int evrt_model_check(const struct evrt_model *m, char *err, size_t n)
{
    int l, i, D = m->dim, PI, rc;
    char name[64];
    if (m->img_size < 1 || m->patch < 1 || m->img_size % m->patch)
        return evrt_errf(err, n, "patch %d must divide img_size %d", m->patch, m->img_size);
    if (m->channels < 1 || m->channels > EVRT_MAX_CHANNELS)
        return evrt_errf(err, n, "channels %d outside [1, %d]", m->channels, EVRT_MAX_CHANNELS);
    if (D < 1 || m->depth < 1 || m->classes < 1 || !m->blocks)
        return evrt_errf(err, n, "dim %d, depth %d and classes %d must be positive", D, m->depth,
                    m->classes);
    for (i = 0; i < m->channels; i++)
        if (!(m->std[i] > 0.0f)) return evrt_errf(err, n, "std[%d] must be positive", i);
    if (m->head_kind != EVRT_HEAD_CLASS && m->head_kind != EVRT_HEAD_SEG_LINEAR && m->head_kind != EVRT_HEAD_SEG_MLP)
        return evrt_errf(err, n, "unknown head kind %d", m->head_kind);
    if (m->head_kind == EVRT_HEAD_SEG_MLP && (rc = check_decoder(m, err, n)) != EVRT_OK) return rc;
    if (!m->cls_token || !m->pos_embed || !m->norm_w || !m->norm_b)
        return evrt_errf(err, n, "missing class token, position embedding or final norm");
    for (l = 0; l < m->depth; l++) {
        const struct evrt_block *b = &m->blocks[l];
        if (b->heads < 1 || b->head_dim < 1 || b->mlp < 1)
            return evrt_errf(err, n, "block %d: heads, head_dim and mlp must be positive", l);
        if (!b->ln1_w || !b->ln1_b || !b->ln2_w || !b->ln2_b)
            return evrt_errf(err, n, "block %d: missing LayerNorm parameters", l);
        /* ceil(T_l / 2) - 1: A's tokens but the class token */
        if (b->merge_r < 0 || b->merge_r > (evrt_model_tokens_at(m, l) + 1) / 2 - 1)
            return evrt_errf(err, n, "block %d: merge_r %d does not fit its %d tokens (0 to %d)", l, b->merge_r,
                             evrt_model_tokens_at(m, l), (evrt_model_tokens_at(m, l) + 1) / 2 - 1);
        if (b->merge_r > 0 && m->head_kind != EVRT_HEAD_CLASS)
            return evrt_errf(err, n, "block %d: Token Merging (merge_r %d) is for class heads, not segmentation",
                             l, b->merge_r);
        if (b->merge_r > 0 && b->head_dim > 512)
            return evrt_errf(err, n, "block %d: Token Merging takes head_dim <= 512, not %d", l, b->head_dim);
        if (b->attn_dtype != EVRT_F32 && b->attn_dtype != EVRT_I8)
            return evrt_errf(err, n, "block %d: unknown attention dtype %d", l, b->attn_dtype);
        if (b->attn_dtype == EVRT_I8) {
            for (i = 0; i < 4; i++)
                if (!(b->attn_scale[i] > 0.0f) || b->attn_scale[i] > 1e30f)
                    return evrt_errf(err, n, "block %d: INT8 attention scale %g is not positive and finite",
                                l, (double)b->attn_scale[i]);
            /* |q.k| <= 127^2 d stays an exact float; sum_u E < 2^31 */
            if (b->head_dim > 512 || evrt_model_tokens(m) > 65535)
                return evrt_errf(err, n, "block %d: INT8 attention takes head_dim <= 512 and < 65536 tokens", l);
        }
    }
    PI = m->channels * m->patch * m->patch;
    for (i = 0; i < evrt_layer_count(m); i++) {
        int in = D, out = D, C = m->decoder ? m->decoder->dim : 0;
        l = (i - 1) / 4;
        if (i == 0) {
            in = PI;
        } else if (i == 1 + 4 * m->depth) {
            in = m->head_kind == EVRT_HEAD_SEG_MLP ? C : D;
            out = m->classes;
        } else if (i > 1 + 4 * m->depth) { /* the decoder's: linear_c, then the fuse */
            in = i - (2 + 4 * m->depth) < m->decoder->levels ? D : m->decoder->levels * C;
            out = C;
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
