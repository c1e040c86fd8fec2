/* export.c: see export.h. */
#include "export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file.h"
#include "util.h"

/* One tensor to write: name, dtype (0 float32, 1 int8, 2 int32), shape,
 * data. */
struct out_tensor {
    char name[EVRT_TENSOR_NAME];
    uint32_t dtype, ndim, shape[2];
    const void *data;
    uint64_t bytes, offset;
};

struct tlist {
    struct out_tensor *t;
    int n, cap;
    int32_t *merge_r; /* (depth) the schedule's tensor, owned */
};

static void tlist_free(struct tlist *l)
{
    free(l->t);
    free(l->merge_r);
}

static void add(struct tlist *l, const char *name, uint32_t dtype, const void *data, int rows, int cols)
{
    struct out_tensor *t;
    if (!data) return; /* an absent optional tensor (bias) */
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        t = evit_malloc((size_t)l->cap * sizeof *t);
        if (l->n) memcpy(t, l->t, (size_t)l->n * sizeof *t);
        free(l->t);
        l->t = t;
    }
    t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    EVIT_ASSERT(strlen(name) < EVRT_TENSOR_NAME);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->ndim = cols ? 2 : 1;
    t->shape[0] = (uint32_t)rows;
    t->shape[1] = (uint32_t)cols;
    t->data = data;
    t->bytes = (uint64_t)rows * (uint64_t)(cols ? cols : 1) * (dtype == 1 ? 1 : 4);
}

static void add_linear(struct tlist *l, const struct evrt_model *m, int layer)
{
    const struct evrt_linear *L = evrt_model_layer(m, layer);
    char base[48], name[64];
    evrt_layer_name(m, layer, base, sizeof base);
    if (L->dtype == EVRT_I8) {
        snprintf(name, sizeof name, "%s.weight_int8", base);
        add(l, name, 1, L->wq, L->out, L->in);
        snprintf(name, sizeof name, "%s.weight_scale", base);
        add(l, name, 0, L->w_scale, L->out, 0);
    } else {
        snprintf(name, sizeof name, "%s.weight", base);
        add(l, name, 0, L->w, L->out, L->in);
    }
    snprintf(name, sizeof name, "%s.bias", base);
    add(l, name, 0, L->bias, L->out, 0);
}

/* seg_mlp's decoder levels (the file's decoder entry), 0 for the other heads. */
static int levels_of(const struct evrt_model *m)
{
    return m->head_kind == EVRT_HEAD_SEG_MLP ? m->decoder->levels : 0;
}

static int merges(const struct evrt_model *m)
{
    for (int b = 0; b < m->depth; b++)
        if (m->blocks[b].merge_r) return 1;
    return 0;
}

/* Every tensor, in timm's state_dict order (then the merge schedule). */
static struct tlist list_tensors(const struct evrt_model *m)
{
    struct tlist l = {0};
    char name[64];
    int D = m->dim;
    add_linear(&l, m, 0);
    add(&l, "cls_token", 0, m->cls_token, D, 0);
    add(&l, "pos_embed", 0, m->pos_embed, evrt_model_tokens(m), D);
    for (int b = 0; b < m->depth; b++) {
        const struct evrt_block *B = &m->blocks[b];
        snprintf(name, sizeof name, "blocks.%d.norm1.weight", b);
        add(&l, name, 0, B->ln1_w, D, 0);
        snprintf(name, sizeof name, "blocks.%d.norm1.bias", b);
        add(&l, name, 0, B->ln1_b, D, 0);
        add_linear(&l, m, 1 + 4 * b);
        if (B->attn_dtype == EVRT_I8) {
            snprintf(name, sizeof name, "blocks.%d.attn.act_scale", b);
            add(&l, name, 0, B->attn_scale, 4, 0);
        }
        add_linear(&l, m, 2 + 4 * b);
        snprintf(name, sizeof name, "blocks.%d.norm2.weight", b);
        add(&l, name, 0, B->ln2_w, D, 0);
        snprintf(name, sizeof name, "blocks.%d.norm2.bias", b);
        add(&l, name, 0, B->ln2_b, D, 0);
        add_linear(&l, m, 3 + 4 * b);
        add_linear(&l, m, 4 + 4 * b);
    }
    add(&l, "norm.weight", 0, m->norm_w, D, 0);
    add(&l, "norm.bias", 0, m->norm_b, D, 0);
    /* seg_mlp's decoder, in the checkpoint's order: the earlier levels'
     * LayerNorms, linear_c per level, linear_fuse, then the head */
    for (int i = 0; i < levels_of(m) - 1; i++) {
        snprintf(name, sizeof name, "decode_head.norms.%d.weight", i);
        add(&l, name, 0, m->decoder->norm_w[i], D, 0);
        snprintf(name, sizeof name, "decode_head.norms.%d.bias", i);
        add(&l, name, 0, m->decoder->norm_b[i], D, 0);
    }
    for (int i = 2 + 4 * m->depth; i < evrt_layer_count(m); i++) add_linear(&l, m, i);
    add_linear(&l, m, 1 + 4 * m->depth);
    /* Token Merging's schedule, only where something merges: a file
     * without it stays readable by runtimes older than format version 3 */
    if (merges(m)) {
        l.merge_r = evit_malloc(sizeof(int32_t) * (size_t)m->depth);
        for (int b = 0; b < m->depth; b++) l.merge_r[b] = m->blocks[b].merge_r;
        add(&l, "merge_r", 2, l.merge_r, m->depth, 0);
    }
    return l;
}

int evit_export_tensor_count(const struct evrt_model *m)
{
    struct tlist l = list_tensors(m);
    tlist_free(&l);
    return l.n;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}
static void putf(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put32(p, u);
}
static uint64_t align64(uint64_t x) { return (x + EVRT_FILE_ALIGN - 1) / EVRT_FILE_ALIGN * EVRT_FILE_ALIGN; }

void evit_export_build(const struct evrt_model *m, const struct evit_export_info *info, uint8_t **buf,
                       size_t *len)
{
    char err[EVRT_ERR_MAX];
    EVIT_ASSERT(evrt_model_check(m, err, sizeof err) == EVRT_OK);
    struct tlist l = list_tensors(m);
    const char *name = info && info->name ? info->name : "";
    int names = info && info->class_names ? m->classes : 0;
    size_t sbytes = strlen(name) + 1;
    for (int k = 0; k < names; k++) sbytes += strlen(info->class_names[k]) + 1;
    int levels = levels_of(m);
    size_t str = evrt_file_strings_at(m->depth, levels, (uint32_t)l.n);
    uint64_t header = align64(str + sbytes), end = header;
    EVIT_ASSERT(header < ((uint64_t)1 << 32));
    for (int i = 0; i < l.n; i++) {
        l.t[i].offset = align64(end);
        end = l.t[i].offset + l.t[i].bytes;
    }
    uint8_t *b = evit_calloc((size_t)end, 1);
    memcpy(b + EVRT_FH_MAGIC, EVRT_FILE_MAGIC, 8);
    /* version 1 unless INT8 attention needs version 2, Token Merging 3, a
     * segmentation head 4 or seg_mlp's decoder 5: older runtimes keep
     * reading every file they can run */
    uint32_t version = 1;
    for (int d = 0; d < m->depth; d++)
        if (m->blocks[d].attn_dtype == EVRT_I8) version = EVRT_FILE_VERSION_ATT;
    if (merges(m)) version = EVRT_FILE_VERSION_MERGE;
    if (m->head_kind != EVRT_HEAD_CLASS) version = EVRT_FILE_VERSION_HEAD;
    if (levels) version = EVRT_FILE_VERSION_DECODER;
    put32(b + EVRT_FH_VERSION, version);
    put32(b + EVRT_FH_HEAD, (uint32_t)m->head_kind);
    put32(b + EVRT_FH_ENDIAN, EVRT_FILE_ENDIAN);
    put32(b + EVRT_FH_HEADER_BYTES, (uint32_t)header);
    put64(b + EVRT_FH_FILE_BYTES, end);
    put32(b + EVRT_FH_TENSORS, (uint32_t)l.n);
    put32(b + EVRT_FH_STRING_BYTES, (uint32_t)sbytes);
    put32(b + EVRT_FH_CLASS_NAMES, (uint32_t)names);
    if (info) {
        put32(b + EVRT_FH_SOURCE_KIND, info->lineage.source_kind);
        put64(b + EVRT_FH_SOURCE_FNV, info->lineage.source_fnv);
        put64(b + EVRT_FH_CONFIG_FNV, info->lineage.config_fnv);
    }
    const int cfg[6] = {m->img_size, m->channels, m->patch, m->dim, m->depth, m->classes};
    for (int i = 0; i < 6; i++) put32(b + EVRT_FH_IMG_SIZE + 4 * i, (uint32_t)cfg[i]);
    for (int c = 0; c < m->channels; c++) {
        putf(b + EVRT_FH_MEAN + 4 * c, m->mean[c]);
        putf(b + EVRT_FH_STD + 4 * c, m->std[c]);
    }
    for (int d = 0; d < m->depth; d++) {
        uint8_t *e = b + evrt_file_blocks_at() + (size_t)d * EVRT_BLOCK_ENTRY;
        put32(e, (uint32_t)m->blocks[d].heads);
        put32(e + 4, (uint32_t)m->blocks[d].head_dim);
        put32(e + 8, (uint32_t)m->blocks[d].mlp);
        put32(e + 12, (uint32_t)m->blocks[d].attn_dtype);
    }
    if (levels) {
        uint8_t *e = b + evrt_file_decoder_at(m->depth);
        put32(e + EVRT_DE_DIM, (uint32_t)m->decoder->dim);
        put32(e + EVRT_DE_LEVELS, (uint32_t)levels);
        for (int i = 0; i < levels; i++) put32(e + EVRT_DE_LEVEL + 4 * i, (uint32_t)m->decoder->level[i]);
    }
    for (int i = 0; i < evrt_layer_count(m); i++) {
        const struct evrt_linear *L = evrt_model_layer(m, i);
        uint8_t *e = b + evrt_file_layers_at(m->depth, levels) + (size_t)i * EVRT_LAYER_ENTRY;
        put32(e, (uint32_t)L->dtype);
        putf(e + 4, L->in_scale);
        put32(e + 8, (uint32_t)L->in_zero);
    }
    for (int i = 0; i < l.n; i++) {
        const struct out_tensor *t = &l.t[i];
        uint8_t *e = b + evrt_file_tensors_at(m->depth, levels) + (size_t)i * EVRT_TENSOR_ENTRY;
        memcpy(e + EVRT_TE_NAME, t->name, strlen(t->name));
        put32(e + EVRT_TE_DTYPE, t->dtype);
        put32(e + EVRT_TE_NDIM, t->ndim);
        put32(e + EVRT_TE_SHAPE, t->shape[0]);
        if (t->ndim == 2) put32(e + EVRT_TE_SHAPE + 4, t->shape[1]);
        put64(e + EVRT_TE_OFFSET, t->offset);
        put64(e + EVRT_TE_BYTES, t->bytes);
        memcpy(b + t->offset, t->data, (size_t)t->bytes); /* little-endian host (asserted at load) */
        put32(e + EVRT_TE_CRC, evrt_crc32(0, b + t->offset, (size_t)t->bytes));
    }
    uint8_t *s = b + str;
    memcpy(s, name, strlen(name) + 1);
    s += strlen(name) + 1;
    for (int k = 0; k < names; k++) {
        size_t n = strlen(info->class_names[k]) + 1;
        memcpy(s, info->class_names[k], n);
        s += n;
    }
    put32(b + EVRT_FH_HEADER_CRC, evrt_crc32(0, b, (size_t)header));
    tlist_free(&l);
    *buf = b;
    *len = (size_t)end;
}

int evit_export_write(const char *path, const struct evrt_model *m, const struct evit_export_info *info,
                      size_t *bytes /* or NULL */)
{
    uint8_t *buf;
    size_t len;
    evit_export_build(m, info, &buf, &len);
    if (bytes) *bytes = len;
    int rc = evit_write_file(path, buf, len);
    free(buf);
    return rc;
}
