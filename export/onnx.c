/* onnx.c: see onnx.h.  The model is built as protobuf-c messages (the C
 * code protoc-c generates from onnx.proto at build time) and packed by
 * libprotobuf-c.
 *
 * Ownership: every string, array and sub-message hanging off the model is
 * malloc'd here, so one protobuf_c_message_free_unpacked() releases it all. */
#include "onnx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "util.h"

#define ONNX_OPSET 13
#define ONNX_IR_VERSION 7 /* the IR that opset 13 came with */
#define LN_EPS 1e-6f      /* timm's LayerNorm eps, as vit.h and evrt.h */

struct graph {
    Onnx__GraphProto *g;
    size_t cap_node, cap_init;
    const char *eps, *one, *half, *sqrt2, *i0, *i1, *i2; /* shared constants */
};

static void *grow(void *p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) return p;
    *cap = *cap ? 2 * *cap : 64;
    p = realloc(p, *cap * elem);
    EVIT_ASSERT(p);
    return p;
}

/* ---------------------------------------------------------- initializers */

static const char *init_tensor(struct graph *b, const char *name, int dtype, const int64_t *dims, int ndim,
                               const void *data, size_t bytes)
{
    Onnx__TensorProto *t = evit_malloc(sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = evit_strdup(name);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->n_dims = (size_t)ndim;
    t->dims = evit_malloc(sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
    if (ndim) memcpy(t->dims, dims, sizeof(int64_t) * (size_t)ndim);
    /* raw_data is little-endian: the host's on x86 and AArch64 */
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = evit_malloc(bytes ? bytes : 1);
    memcpy(t->raw_data.data, data, bytes);
    Onnx__GraphProto *g = b->g;
    g->initializer = grow(g->initializer, &b->cap_init, g->n_initializer, sizeof *g->initializer);
    g->initializer[g->n_initializer++] = t;
    return t->name;
}

static const char *init_f32(struct graph *b, const char *name, const int64_t *dims, int ndim, const float *v)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    return init_tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, dims, ndim, v, 4 * n);
}

static const char *scalar_f32(struct graph *b, const char *name, float v)
{
    return init_f32(b, name, NULL, 0, &v);
}

static const char *scalar_i8(struct graph *b, const char *name, int v)
{
    int8_t x = (int8_t)v;
    return init_tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, NULL, 0, &x, 1);
}

static const char *ints(struct graph *b, const char *name, const int64_t *v, int n)
{
    int64_t d = n;
    return init_tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, &d, 1, v, 8 * (size_t)n);
}

static const char *scalar_i64(struct graph *b, const char *name, int64_t v)
{
    return init_tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, NULL, 0, &v, 8);
}

/* ------------------------------------------------------------------ nodes */

/* A node with up to three inputs (NULL ends them) and one output, named
 * out; returns the node so attributes can be added. */
static Onnx__NodeProto *node(struct graph *b, const char *type, char *out /* taken */, const char *in0,
                             const char *in1, const char *in2)
{
    const char *in[3] = {in0, in1, in2};
    Onnx__NodeProto *n = evit_malloc(sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = evit_strdup(type);
    n->input = evit_malloc(sizeof(char *) * 3);
    while (n->n_input < 3 && in[n->n_input]) {
        n->input[n->n_input] = evit_strdup(in[n->n_input]);
        n->n_input++;
    }
    n->n_output = 1;
    n->output = evit_malloc(sizeof(char *));
    n->output[0] = out;
    n->name = evit_strdup(out);
    Onnx__GraphProto *g = b->g;
    g->node = grow(g->node, &b->cap_node, g->n_node, sizeof *g->node);
    g->node[g->n_node++] = n;
    return n;
}

static const char *out(const Onnx__NodeProto *n)
{
    return n->output[0];
}

/* node() for the common case: the output's name is "prefix/what". */
static const char *op(struct graph *b, const char *type, const char *prefix, const char *what, const char *in0,
                      const char *in1)
{
    return out(node(b, type, evit_strfmt("%s/%s", prefix, what), in0, in1, NULL));
}

static Onnx__AttributeProto *attr(Onnx__NodeProto *n, const char *name, Onnx__AttributeProto__AttributeType t)
{
    Onnx__AttributeProto *a = evit_malloc(sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = evit_strdup(name);
    a->has_type = 1;
    a->type = t;
    n->attribute = realloc(n->attribute, sizeof *n->attribute * (n->n_attribute + 1));
    EVIT_ASSERT(n->attribute);
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void attr_int(Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

static void attr_str(Onnx__NodeProto *n, const char *name, const char *v)
{
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.len = strlen(v);
    a->s.data = (uint8_t *)evit_strdup(v);
}

static void attr_ints(Onnx__NodeProto *n, const char *name, const int64_t *v, int k)
{
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = (size_t)k;
    a->ints = evit_malloc(sizeof(int64_t) * (size_t)k);
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)k);
}

static const char *transpose(struct graph *b, const char *prefix, const char *what, const char *x,
                             const int64_t *perm, int k)
{
    Onnx__NodeProto *n = node(b, "Transpose", evit_strfmt("%s/%s", prefix, what), x, NULL, NULL);
    attr_ints(n, "perm", perm, k);
    return out(n);
}

/* ------------------------------------------------------------------ layers */

/* x -> QuantizeLinear -> DequantizeLinear with a per-tensor scale and
 * zero point: the rounding the int8 kernel applies to its input. */
static const char *qdq(struct graph *b, const char *prefix, const char *x, float scale, int zero)
{
    char *sn = evit_strfmt("%s.scale", prefix), *zn = evit_strfmt("%s.zero_point", prefix);
    const char *s = scalar_f32(b, sn, scale), *z = scalar_i8(b, zn, zero);
    free(sn);
    free(zn);
    const char *q = out(node(b, "QuantizeLinear", evit_strfmt("%s/quantized", prefix), x, s, z));
    return out(node(b, "DequantizeLinear", evit_strfmt("%s/dequantized", prefix), q, s, z));
}

/* An (out, in) matrix of elem-byte elements as the file stores it: (in,
 * out) when transposed, else as it is.  Caller frees. */
static void *stored(const void *src, int out, int in, size_t elem, int transposed)
{
    size_t n = (size_t)out * (size_t)in, o, i;
    uint8_t *t = evit_malloc(elem * (n ? n : 1));
    const uint8_t *s = src;
    if (!transposed) {
        memcpy(t, s, elem * n);
        return t;
    }
    for (o = 0; o < (size_t)out; o++)
        for (i = 0; i < (size_t)in; i++) memcpy(t + (i * (size_t)out + o) * elem, s + (o * (size_t)in + i) * elem, elem);
    return t;
}

/* The weight as the graph uses it: (in, out) float32, or int8 dequantized
 * per output channel (along axis).  transpose: store W^T of the (out, in)
 * matrix; otherwise keep dims as given (the conv). */
static const char *weight(struct graph *b, const char *prefix, const struct evrt_linear *L, const int64_t *dims,
                          int ndim, int transposed)
{
    size_t n = (size_t)L->in * (size_t)L->out;
    int64_t tdims[2] = {L->in, L->out}, odims[1] = {L->out};
    const int64_t *d = transposed ? tdims : dims;
    int nd = transposed ? 2 : ndim;
    if (L->dtype != EVRT_I8) {
        char *name = evit_strfmt("%s.weight", prefix);
        float *t = stored(L->w, L->out, L->in, sizeof(float), transposed);
        const char *w = init_f32(b, name, d, nd, t);
        free(t);
        free(name);
        return w;
    }
    int8_t *t = stored(L->wq, L->out, L->in, 1, transposed), *zeros = evit_calloc((size_t)L->out, 1);
    char *qn = evit_strfmt("%s.weight_quantized", prefix), *sn = evit_strfmt("%s.weight_scale", prefix),
         *zn = evit_strfmt("%s.weight_zero_point", prefix);
    const char *q = init_tensor(b, qn, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, d, nd, t, n);
    const char *s = init_f32(b, sn, odims, 1, L->w_scale);
    const char *z = init_tensor(b, zn, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, odims, 1, zeros, (size_t)L->out);
    Onnx__NodeProto *dq = node(b, "DequantizeLinear", evit_strfmt("%s.weight_dequantized", prefix), q, s, z);
    attr_int(dq, "axis", transposed ? 1 : 0);
    free(t);
    free(zeros);
    free(qn);
    free(sn);
    free(zn);
    return out(dq);
}

static const char *input_of(struct graph *b, const char *prefix, const char *x, const struct evrt_linear *L)
{
    if (L->dtype != EVRT_I8) return x;
    char *p = evit_strfmt("%s.input", prefix);
    const char *r = qdq(b, p, x, L->in_scale, L->in_zero);
    free(p);
    return r;
}

static const char *bias(struct graph *b, const char *prefix, const float *v, int n)
{
    int64_t d = n;
    char *name = evit_strfmt("%s.bias", prefix);
    const char *r = init_f32(b, name, &d, 1, v);
    free(name);
    return r;
}

/* y = x W^T + b over the last axis; final names the output (or NULL). */
static const char *linear(struct graph *b, const char *prefix, const char *x, const struct evrt_linear *L,
                          const char *final)
{
    const char *xin = input_of(b, prefix, x, L);
    const char *w = weight(b, prefix, L, NULL, 0, 1);
    const char *y = op(b, "MatMul", prefix, "matmul", xin, w);
    if (!L->bias) return final ? out(node(b, "Identity", evit_strdup(final), y, NULL, NULL)) : y;
    const char *bn = bias(b, prefix, L->bias, L->out);
    return out(node(b, "Add", final ? evit_strdup(final) : evit_strfmt("%s/out", prefix), y, bn, NULL));
}

/* LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * w + b. */
static const char *layernorm(struct graph *b, const char *prefix, const char *x, const float *w, const float *bv,
                             int D)
{
    int64_t axes[1] = {-1}, d = D;
    Onnx__NodeProto *m = node(b, "ReduceMean", evit_strfmt("%s/mean", prefix), x, NULL, NULL);
    attr_ints(m, "axes", axes, 1);
    const char *c = op(b, "Sub", prefix, "centred", x, out(m));
    const char *sq = op(b, "Mul", prefix, "squared", c, c);
    Onnx__NodeProto *v = node(b, "ReduceMean", evit_strfmt("%s/var", prefix), sq, NULL, NULL);
    attr_ints(v, "axes", axes, 1);
    const char *ve = op(b, "Add", prefix, "var_eps", out(v), b->eps);
    const char *sd = op(b, "Sqrt", prefix, "std", ve, NULL);
    const char *nrm = op(b, "Div", prefix, "normalised", c, sd);
    char *wn = evit_strfmt("%s.weight", prefix), *bn = evit_strfmt("%s.bias", prefix);
    const char *wi = init_f32(b, wn, &d, 1, w), *bi = init_f32(b, bn, &d, 1, bv);
    free(wn);
    free(bn);
    const char *s = op(b, "Mul", prefix, "scaled", nrm, wi);
    return op(b, "Add", prefix, "out", s, bi);
}

/* GELU, exact: 0.5 x (1 + erf(x / sqrt 2)). */
static const char *gelu(struct graph *b, const char *prefix, const char *x)
{
    const char *t = op(b, "Div", prefix, "gelu_arg", x, b->sqrt2);
    const char *e = op(b, "Erf", prefix, "gelu_erf", t, NULL);
    const char *p = op(b, "Add", prefix, "gelu_1p", e, b->one);
    const char *m = op(b, "Mul", prefix, "gelu_x1p", x, p);
    return op(b, "Mul", prefix, "gelu", m, b->half);
}

static const char *gather(struct graph *b, const char *prefix, const char *what, const char *x, const char *index,
                          int axis)
{
    Onnx__NodeProto *n = node(b, "Gather", evit_strfmt("%s/%s", prefix, what), x, index, NULL);
    attr_int(n, "axis", axis);
    return out(n);
}

static const char *sym_qdq(struct graph *b, const char *prefix, const char *what, const char *x, float scale)
{
    char *p = evit_strfmt("%s.%s", prefix, what);
    const char *r = qdq(b, p, x, scale, 0);
    free(p);
    return r;
}

enum { BNAME = 64 };

/* "blocks.L.WHAT" (timm's name) in buf[BNAME]; returns buf. */
static const char *block_name(char *buf, int l, const char *what)
{
    snprintf(buf, BNAME, "blocks.%d.%s", l, what);
    return buf;
}

/* x + proj(MHSA(qkv(LN1(x)))) for block l. */
static const char *attention(struct graph *b, const struct evrt_model *m, int l, const char *x)
{
    const struct evrt_block *blk = &m->blocks[l];
    int H = blk->heads, d = blk->head_dim, I = H * d, i8 = blk->attn_dtype == EVRT_I8;
    char pre[BNAME], pn[BNAME], pq[BNAME], pp[BNAME];
    block_name(pre, l, "attn");
    const char *h = layernorm(b, block_name(pn, l, "norm1"), x, blk->ln1_w, blk->ln1_b, m->dim);
    const char *qkv = linear(b, block_name(pq, l, "attn.qkv"), h, &blk->qkv, NULL);
    int64_t s5[5] = {0, 0, 3, H, d}, p5[5] = {2, 0, 3, 1, 4}, pk[4] = {0, 1, 3, 2}, po[4] = {0, 2, 1, 3},
            s3[3] = {0, 0, I};
    char *sn = evit_strfmt("%s.qkv_shape", pre), *on = evit_strfmt("%s.out_shape", pre), *cn = evit_strfmt("%s.scale", pre);
    const char *r = op(b, "Reshape", pre, "qkv_split", qkv, ints(b, sn, s5, 5));
    const char *t = transpose(b, pre, "qkv_heads", r, p5, 5); /* (3, B, H, T, d) */
    const char *q = gather(b, pre, "q", t, b->i0, 0), *k = gather(b, pre, "k", t, b->i1, 0),
               *v = gather(b, pre, "v", t, b->i2, 0);
    if (i8) {
        q = sym_qdq(b, pre, "q", q, blk->attn_scale[0]);
        k = sym_qdq(b, pre, "k", k, blk->attn_scale[1]);
        v = sym_qdq(b, pre, "v", v, blk->attn_scale[2]);
    }
    const char *kt = transpose(b, pre, "k_t", k, pk, 4);
    const char *a = op(b, "MatMul", pre, "scores", q, kt);
    const char *as = op(b, "Mul", pre, "scaled_scores", a, scalar_f32(b, cn, 1.0f / sqrtf((float)d)));
    Onnx__NodeProto *sm = node(b, "Softmax", evit_strfmt("%s/probs", pre), as, NULL, NULL);
    attr_int(sm, "axis", -1);
    const char *p = out(sm);
    if (i8) p = sym_qdq(b, pre, "p", p, blk->attn_scale[3]);
    const char *o = op(b, "MatMul", pre, "heads", p, v);
    const char *ot = transpose(b, pre, "heads_t", o, po, 4);
    const char *oc = op(b, "Reshape", pre, "concat", ot, ints(b, on, s3, 3));
    free(sn);
    free(on);
    free(cn);
    const char *y = linear(b, block_name(pp, l, "attn.proj"), oc, &blk->proj, NULL);
    return op(b, "Add", pre, "residual", x, y);
}

/* x + fc2(GELU(fc1(LN2(x)))) for block l. */
static const char *mlp(struct graph *b, const struct evrt_model *m, int l, const char *x)
{
    const struct evrt_block *blk = &m->blocks[l];
    char pn[BNAME], p1[BNAME], p2[BNAME], pre[BNAME];
    const char *h = layernorm(b, block_name(pn, l, "norm2"), x, blk->ln2_w, blk->ln2_b, m->dim);
    const char *f = linear(b, block_name(p1, l, "mlp.fc1"), h, &blk->fc1, NULL);
    const char *g = gelu(b, p1, f);
    const char *y = linear(b, block_name(p2, l, "mlp.fc2"), g, &blk->fc2, NULL);
    return op(b, "Add", block_name(pre, l, "mlp"), "residual", x, y);
}

/* input (B, C, H, W) -> tokens (B, T, D) */
static const char *embed(struct graph *b, const struct evrt_model *m)
{
    int C = m->channels, P = m->patch, D = m->dim, T = evrt_model_tokens(m);
    int64_t cdims[4] = {1, C, 1, 1}, wdims[4] = {D, C, P, P}, k[2] = {P, P}, s3[3] = {0, D, -1},
            pt[3] = {0, 2, 1}, one[1] = {0}, endb[1] = {1}, tail[2] = {1, D}, cls[3] = {1, 1, D},
            pos[3] = {1, T, D};
    const char *pre = "patch_embed";
    const char *x = op(b, "Sub", pre, "centred", "input", init_f32(b, "mean", cdims, 4, m->mean));
    x = op(b, "Div", pre, "normalised", x, init_f32(b, "std", cdims, 4, m->std));
    const struct evrt_linear *L = &m->patch_embed;
    const char *xin = input_of(b, "patch_embed.proj", x, L);
    const char *w = weight(b, "patch_embed.proj", L, wdims, 4, 0);
    const char *bn = L->bias ? bias(b, "patch_embed.proj", L->bias, D) : NULL;
    Onnx__NodeProto *conv = node(b, "Conv", evit_strfmt("%s/conv", pre), xin, w, bn);
    attr_ints(conv, "kernel_shape", k, 2);
    attr_ints(conv, "strides", k, 2);
    const char *r = op(b, "Reshape", pre, "flat", out(conv), ints(b, "patch_embed.flat_shape", s3, 3));
    const char *pe = transpose(b, pre, "tokens", r, pt, 3); /* (B, N, D) */
    /* the class token, expanded to (B, 1, D) */
    const char *shp = op(b, "Shape", "cls_token", "input_shape", "input", NULL);
    Onnx__NodeProto *sl = node(b, "Slice", evit_strfmt("cls_token/batch"), shp, ints(b, "cls_token.slice_start", one, 1),
                               ints(b, "cls_token.slice_end", endb, 1));
    Onnx__NodeProto *cat = node(b, "Concat", evit_strfmt("cls_token/shape"), out(sl),
                                ints(b, "cls_token.shape_tail", tail, 2), NULL);
    attr_int(cat, "axis", 0);
    const char *ce = op(b, "Expand", "cls_token", "expanded", init_f32(b, "cls_token", cls, 3, m->cls_token),
                        out(cat));
    Onnx__NodeProto *tok = node(b, "Concat", evit_strfmt("tokens/concat"), ce, pe, NULL);
    attr_int(tok, "axis", 1);
    return op(b, "Add", "tokens", "positioned", out(tok), init_f32(b, "pos_embed", pos, 3, m->pos_embed));
}

static Onnx__ValueInfoProto *value_info(const char *name, int dtype, const int64_t *dims,
                                        int n /* dims[0]: "batch" */)
{
    Onnx__ValueInfoProto *v = evit_malloc(sizeof *v);
    Onnx__TypeProto *tp = evit_malloc(sizeof *tp);
    Onnx__TypeProto__Tensor *tt = evit_malloc(sizeof *tt);
    Onnx__TensorShapeProto *sh = evit_malloc(sizeof *sh);
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = (size_t)n;
    sh->dim = evit_malloc(sizeof *sh->dim * (size_t)n);
    for (int i = 0; i < n; i++) {
        Onnx__TensorShapeProto__Dimension *d = evit_malloc(sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (i == 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = evit_strdup("batch");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        sh->dim[i] = d;
    }
    tt->has_elem_type = 1;
    tt->elem_type = dtype;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->name = evit_strdup(name);
    v->type = tp;
    return v;
}

static void constants(struct graph *b)
{
    b->eps = scalar_f32(b, "layernorm_eps", LN_EPS);
    b->one = scalar_f32(b, "one", 1.0f);
    b->half = scalar_f32(b, "half", 0.5f);
    b->sqrt2 = scalar_f32(b, "sqrt2", sqrtf(2.0f));
    b->i0 = scalar_i64(b, "index0", 0);
    b->i1 = scalar_i64(b, "index1", 1);
    b->i2 = scalar_i64(b, "index2", 2);
}

/* The patch tokens of x (B, T, D): Slice of tokens 1 to T on axis 1,
 * (B, N, D), N = G*G in row-major grid order; the Slice's starts, ends and
 * axes are initializers "prefix.patch_start" etc. (TensorRT 8.2 asks for
 * constant axes). */
static const char *patch_tokens(struct graph *b, const struct evrt_model *m, const char *prefix, const char *x)
{
    int64_t start[1] = {1}, end[1] = {evrt_model_tokens(m)}, axis[1] = {1};
    char *sn = evit_strfmt("%s.patch_start", prefix), *en = evit_strfmt("%s.patch_end", prefix),
         *an = evit_strfmt("%s.patch_axis", prefix);
    Onnx__NodeProto *sl = node(b, "Slice", evit_strfmt("%s/patches", prefix), x, ints(b, sn, start, 1),
                               ints(b, en, end, 1));
    sl->input = realloc(sl->input, sizeof(char *) * 4); /* node() takes three inputs, Slice a fourth (axes) */
    EVIT_ASSERT(sl->input);
    sl->input[sl->n_input++] = evit_strdup(ints(b, an, axis, 1));
    free(sn);
    free(en);
    free(an);
    return out(sl);
}

/* Segmenter's linear decoder on the normed tokens x (B, T, D), as
 * evrt_infer_seg (evrt.h "Segmentation"): the head on every patch token,
 * "logits" (B, N, K). */
static const char *seg_linear(struct graph *b, const struct evrt_model *m, const char *x)
{
    return linear(b, "head", patch_tokens(b, m, "head", x), &m->head, "logits");
}

/* SegFormer's all-MLP decoder (evrt.h struct evrt_decoder) on the block
 * outputs lx[i] = x_{l_i} (B, T, D), as libevrt runs it:
 *   f_i    = LN_i(x_{l_i}[:, 1:])  Slice, then LayerNorm (per token, so
 *            slicing first is the same maths on fewer rows); LN_{L-1} is
 *            the final norm, "norm"                         (B, N, D)
 *   e_i    = linear_c[i](f_i)                               (B, N, C)
 *   u      = Relu(linear_fuse(Concat(e_0, ..., e_{L-1}, axis -1)))  (B, N, C)
 *   logits = head(u)                                        (B, N, K)
 * In a QDQ graph each int8 linear quantizes its own input (linear()): f_i
 * with linear_c[i]'s scale, the concatenation with the fuse layer's, u
 * after the Relu with the head's, where libevrt quantizes them. */
static const char *seg_mlp(struct graph *b, const struct evrt_model *m, const char *const *lx)
{
    const struct evrt_decoder *d = m->decoder;
    const char *e[EVRT_MAX_LEVELS];
    char name[BNAME], pn[BNAME];
    EVIT_ASSERT(d && d->levels >= 1 && d->levels <= EVRT_MAX_LEVELS);
    for (int i = 0; i < d->levels; i++) {
        int last = i == d->levels - 1;
        snprintf(name, sizeof name, "decode_head.levels.%d", i);
        const char *f = patch_tokens(b, m, name, lx[i]);
        snprintf(pn, sizeof pn, last ? "norm" : "decode_head.norms.%d", i);
        f = layernorm(b, pn, f, last ? m->norm_w : d->norm_w[i], last ? m->norm_b : d->norm_b[i], m->dim);
        snprintf(name, sizeof name, "decode_head.linear_c.%d", i);
        e[i] = linear(b, name, f, &d->linear_c[i], NULL);
    }
    /* node() takes up to three inputs; the Concat takes L */
    Onnx__NodeProto *cat = node(b, "Concat", evit_strdup("decode_head/concat"), e[0], NULL, NULL);
    cat->input = realloc(cat->input, sizeof(char *) * (size_t)d->levels);
    EVIT_ASSERT(cat->input);
    for (int i = 1; i < d->levels; i++) cat->input[cat->n_input++] = evit_strdup(e[i]);
    attr_int(cat, "axis", -1);
    const char *f = linear(b, "decode_head.linear_fuse", out(cat), &d->fuse, NULL);
    const char *u = op(b, "Relu", "decode_head", "relu", f, NULL);
    return linear(b, "head", u, &m->head, "logits");
}

/* Everything after the per-patch logits z (B, N, K), the same for both
 * segmentation heads (evrt.h "Segmentation"):
 *   scores  Reshape (B, G, G, K) -> Transpose (B, K, G, G) -> Resize
 *           (B, K, S, S), linear, half_pixel, scales (1, 1, P, P): per axis
 *           x_in = (x_out + 0.5) / P - 0.5, which is PyTorch's
 *           align_corners=False source index (x_out + 0.5) * G/S - 0.5 since
 *           S = G P; ONNX Runtime clamps it to [0, G - 1] as
 *           evit does.  (pytorch_half_pixel differs from half_pixel only for
 *           an output of length 1, and S >= 2 here.)
 *   mask    ArgMax over K (the first of equal maxima, as evit), int64
 *           (B, S, S). */
static void seg_tail(struct graph *b, const struct evrt_model *m, const char *z)
{
    int G = m->img_size / m->patch, K = m->classes;
    int64_t grid[4] = {0, G, G, K}, nchw[4] = {0, 3, 1, 2};
    float scales[4] = {1.0f, 1.0f, (float)m->patch, (float)m->patch};
    int64_t four = 4;
    const char *r = op(b, "Reshape", "decoder", "grid", z, ints(b, "decoder.grid_shape", grid, 4));
    const char *t = transpose(b, "decoder", "nchw", r, nchw, 4);
    const char *sc = init_tensor(b, "decoder.scales", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, &four, 1, scales,
                                 sizeof scales);
    Onnx__NodeProto *rs = node(b, "Resize", evit_strdup("scores"), t, "" /* no roi */, sc);
    attr_str(rs, "mode", "linear");
    attr_str(rs, "coordinate_transformation_mode", "half_pixel");
    Onnx__NodeProto *am = node(b, "ArgMax", evit_strdup("mask"), out(rs), NULL, NULL);
    attr_int(am, "axis", 1);
    attr_int(am, "keepdims", 0);
}

static void graph_outputs(Onnx__GraphProto *g, const struct evrt_model *m)
{
    int S = m->img_size, G = S / m->patch, K = m->classes, seg = m->head_kind != EVRT_HEAD_CLASS;
    int64_t in[4] = {0, m->channels, S, S}, outd[2] = {0, K}, patches[3] = {0, G * G, K}, px[4] = {0, K, S, S},
            mask[3] = {0, S, S};
    g->n_input = 1;
    g->n_output = seg ? 3 : 1;
    g->input = evit_malloc(sizeof *g->input);
    g->output = evit_malloc(sizeof *g->output * g->n_output);
    g->input[0] = value_info("input", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, in, 4);
    if (!seg) {
        g->output[0] = value_info("logits", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, outd, 2);
        return;
    }
    g->output[0] = value_info("logits", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, patches, 3);
    g->output[1] = value_info("scores", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, px, 4);
    g->output[2] = value_info("mask", ONNX__TENSOR_PROTO__DATA_TYPE__INT64, mask, 3);
}

static void graph_build(struct graph *b, const struct evrt_model *m, const char *name)
{
    const char *lx[EVRT_MAX_LEVELS] = {0}; /* seg_mlp: the levels' block outputs */
    b->g->name = evit_strdup(name);
    constants(b);
    const char *x = embed(b, m);
    /* every block on every token: the graph has no class-token-only last
     * block, which a segmentation head could not take */
    for (int l = 0; l < m->depth; l++) {
        x = mlp(b, m, l, attention(b, m, l, x));
        int i = evrt_model_level_of(m, l);
        if (i >= 0) lx[i] = x;
    }
    if (m->head_kind == EVRT_HEAD_SEG_MLP) {
        seg_tail(b, m, seg_mlp(b, m, lx));
    } else {
        x = layernorm(b, "norm", x, m->norm_w, m->norm_b, m->dim);
        if (m->head_kind == EVRT_HEAD_SEG_LINEAR)
            seg_tail(b, m, seg_linear(b, m, x));
        else
            linear(b, "head", gather(b, "head", "cls", x, b->i0, 1) /* (B, D) */, &m->head, "logits");
    }
    graph_outputs(b->g, m);
}

static void add_meta(Onnx__ModelProto *mp, const char *key, char *value /* taken */)
{
    Onnx__StringStringEntryProto *e = evit_malloc(sizeof *e);
    onnx__string_string_entry_proto__init(e);
    e->key = evit_strdup(key);
    e->value = value;
    mp->metadata_props = realloc(mp->metadata_props, sizeof *mp->metadata_props * (mp->n_metadata_props + 1));
    EVIT_ASSERT(mp->metadata_props);
    mp->metadata_props[mp->n_metadata_props++] = e;
}

static Onnx__ModelProto *model_build(const struct evit_qmodel *q, const struct evit_onnx_info *info)
{
    const struct evrt_model *m = &q->rt;
    Onnx__ModelProto *mp = evit_malloc(sizeof *mp);
    Onnx__OperatorSetIdProto *os = evit_malloc(sizeof *os);
    struct graph b = {0};
    onnx__model_proto__init(mp);
    onnx__operator_set_id_proto__init(os);
    os->domain = evit_strdup("");
    os->has_version = 1;
    os->version = ONNX_OPSET;
    mp->has_ir_version = 1;
    mp->ir_version = ONNX_IR_VERSION;
    mp->n_opset_import = 1;
    mp->opset_import = evit_malloc(sizeof *mp->opset_import);
    mp->opset_import[0] = os;
    mp->producer_name = evit_strdup("evit");
    mp->producer_version = evit_strdup(PACKAGE_VERSION);
    mp->doc_string = evit_strdup(
        m->head_kind != EVRT_HEAD_CLASS
            ? "input: float32 (batch, C, H, W), pixel/255; the graph normalises with the model's mean/std. "
              "outputs: logits (batch, G*G, classes) per patch in row-major grid order, scores (batch, classes, "
              "H, W) their bilinear upsampling (PyTorch align_corners=False), mask (batch, H, W) int64 argmax."
            : "input: float32 (batch, C, H, W), pixel/255; the graph normalises with the "
              "model's mean/std. output: logits (batch, classes).");
    b.g = evit_malloc(sizeof *b.g);
    onnx__graph_proto__init(b.g);
    graph_build(&b, m, info->name ? info->name : "evit");
    mp->graph = b.g;
    if (info->source) add_meta(mp, "evit_source", evit_strdup(info->source));
    if (info->class_names) {
        size_t n = 1;
        for (int i = 0; i < m->classes; i++) n += strlen(info->class_names[i]) + 1;
        char *s = evit_calloc(n, 1);
        for (int i = 0; i < m->classes; i++) {
            if (i) strcat(s, ",");
            strcat(s, info->class_names[i]);
        }
        add_meta(mp, "classes", s);
    }
    return mp;
}

int evit_onnx_write(const char *path, const struct evit_qmodel *q, const struct evit_onnx_info *info,
                    size_t *bytes)
{
    int rc = EVIT_ERR;
    /* Token Merging picks its tokens by a data-dependent sort and gathers
     * them by a scatter-add: expressible in opset 16 (TopK, ScatterElements
     * with reduction "add"), but TensorRT 8.2 on the Nano parses opsets up
     * to 13 and evit-export would need a second matching to keep evit's
     * tie rule.  Refused rather than exported differently. */
    if (evit_config_merges(&q->vit.cfg))
        return evit_error("%s: %s merges tokens (merge_r): ONNX export of Token Merging is not supported; "
                          "export it as .evit, or export the model without merging",
                          path, info && info->source ? info->source : "the model");
    Onnx__ModelProto *mp = model_build(q, info);
    size_t n = onnx__model_proto__get_packed_size(mp);
    uint8_t *buf = evit_malloc(n ? n : 1);
    if (onnx__model_proto__pack(mp, buf) != n)
        evit_error("%s: protobuf-c packed a different size than it measured", path);
    else
        rc = evit_write_file(path, buf, n);
    if (rc == EVIT_OK) *bytes = n;
    free(buf);
    protobuf_c_message_free_unpacked(&mp->base, NULL);
    return rc;
}
