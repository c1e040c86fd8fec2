/* safetensors.c: see safetensors.h. */
#include "safetensors.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const struct {
    const char *name;
    int size; /* bytes per element; 0: a dtype we know but refuse */
} dtypes[] = {{"F32", 4}, {"F16", 2}, {"BF16", 2},
              {"F64", 0}, {"I64", 0}, {"I32", 0}, {"I16", 0}, {"I8", 0}, {"U64", 0}, {"U32", 0},
              {"U16", 0}, {"U8", 0}, {"BOOL", 0}, {"F8_E4M3", 0}, {"F8_E5M2", 0}};

const char *evit_safetensors_dtype_name(enum evit_st_dtype d)
{
    return dtypes[d].name;
}

static int elem_size(enum evit_st_dtype d)
{
    return dtypes[d].size;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* A JSON number that must be an integer in [0, 2^53] (doubles hold those
 * exactly; a larger offset or dimension cannot describe a real file). */
static int get_index(const cJSON *v, const char *where, const char *name, const char *what,
                     uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return evit_error("%s: tensor %s: %s is not a number", where, name, what);
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || floor(d) != d)
        return evit_error("%s: tensor %s: %s is not a non-negative integer (%g)", where, name, what, d);
    *out = (uint64_t)d;
    return EVIT_OK;
}

static int parse_dtype(const cJSON *v, const char *where, const char *name, enum evit_st_dtype *out)
{
    size_t i;
    if (!cJSON_IsString(v)) return evit_error("%s: tensor %s: dtype is not a string", where, name);
    for (i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
        if (strcmp(v->valuestring, dtypes[i].name) != 0) continue;
        if (!dtypes[i].size)
            return evit_error("%s: tensor %s: dtype %s is not supported (F32, F16 or BF16)", where, name,
                              v->valuestring);
        *out = (enum evit_st_dtype)i;
        return EVIT_OK;
    }
    return evit_error("%s: tensor %s: unknown dtype \"%.32s\"", where, name, v->valuestring);
}

/* shape: numel = prod(shape), checked against overflow with the data
 * section's size as the bound (nothing larger can be valid). */
static int parse_shape(const cJSON *v, const char *where, struct evit_st_tensor *t, size_t limit)
{
    const cJSON *d;
    if (!cJSON_IsArray(v)) return evit_error("%s: tensor %s: shape is not an array", where, t->name);
    t->ndim = 0;
    t->numel = 1;
    cJSON_ArrayForEach(d, v)
    {
        uint64_t n;
        if (t->ndim == EVIT_ST_MAX_DIM)
            return evit_error("%s: tensor %s: more than %d dimensions", where, t->name, EVIT_ST_MAX_DIM);
        if (get_index(d, where, t->name, "a dimension", &n) < 0) return EVIT_ERR;
        t->shape[t->ndim++] = (int64_t)n;
        if (n && t->numel > limit / n)
            return evit_error("%s: tensor %s: shape holds more elements than the file has bytes", where,
                              t->name);
        t->numel *= (size_t)n;
    }
    return EVIT_OK;
}

static int parse_tensor(const cJSON *e, const char *where, struct evit_st_tensor *t, size_t data_size)
{
    const cJSON *m, *off;
    uint64_t b, en;
    if (strlen(e->string) >= EVIT_ST_NAME_MAX)
        return evit_error("%s: a tensor name is longer than %d bytes", where, EVIT_ST_NAME_MAX - 1);
    t->name = evit_strdup(e->string);
    if (!*t->name) return evit_error("%s: a tensor has an empty name", where);
    if (!cJSON_IsObject(e)) return evit_error("%s: tensor %s: entry is not an object", where, t->name);
    cJSON_ArrayForEach(m, e)
    {
        if (strcmp(m->string, "dtype") && strcmp(m->string, "shape") && strcmp(m->string, "data_offsets"))
            return evit_error("%s: tensor %s: unknown key \"%.64s\"", where, t->name, m->string);
    }
    if (!cJSON_GetObjectItemCaseSensitive(e, "dtype") || !cJSON_GetObjectItemCaseSensitive(e, "shape") ||
        !(off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets")))
        return evit_error("%s: tensor %s: needs dtype, shape and data_offsets", where, t->name);
    if (parse_dtype(cJSON_GetObjectItemCaseSensitive(e, "dtype"), where, t->name, &t->dtype) < 0 ||
        parse_shape(cJSON_GetObjectItemCaseSensitive(e, "shape"), where, t, data_size) < 0)
        return EVIT_ERR;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return evit_error("%s: tensor %s: data_offsets is not [begin, end]", where, t->name);
    if (get_index(off->child, where, t->name, "begin", &b) < 0 ||
        get_index(off->child->next, where, t->name, "end", &en) < 0)
        return EVIT_ERR;
    if (b > en) return evit_error("%s: tensor %s: data_offsets end before they begin", where, t->name);
    if (en > data_size)
        return evit_error("%s: tensor %s: ends at byte %llu of a %zu-byte data section (truncated file?)",
                          where, t->name, (unsigned long long)en, data_size);
    t->begin = (size_t)b;
    t->end = (size_t)en;
    if (t->end - t->begin != t->numel * (size_t)elem_size(t->dtype))
        return evit_error("%s: tensor %s: %zu bytes for %zu %s elements", where, t->name, t->end - t->begin,
                          t->numel, dtypes[t->dtype].name);
    return EVIT_OK;
}

static int cmp_name(const void *a, const void *b)
{
    const struct evit_st_tensor *x = *(struct evit_st_tensor *const *)a, *y = *(struct evit_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_begin(const void *a, const void *b)
{
    const struct evit_st_tensor *x = *(struct evit_st_tensor *const *)a, *y = *(struct evit_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Names are unique and the byte ranges tile [0, data_size) exactly. */
static int check_layout(const struct evit_safetensors *st, const char *where)
{
    int i, rc = EVIT_ERR;
    size_t at = 0;
    struct evit_st_tensor **ix = evit_malloc(sizeof *ix * (size_t)(st->n ? st->n : 1));
    for (i = 0; i < st->n; i++) ix[i] = &st->t[i];
    qsort(ix, (size_t)st->n, sizeof *ix, cmp_name);
    for (i = 1; i < st->n; i++) {
        if (!strcmp(ix[i - 1]->name, ix[i]->name)) {
            evit_error("%s: tensor %s is listed twice", where, ix[i]->name);
            goto fail;
        }
    }
    qsort(ix, (size_t)st->n, sizeof *ix, cmp_begin);
    for (i = 0; i < st->n; i++) {
        if (ix[i]->begin < at) {
            evit_error("%s: tensors %s and %s overlap", where, ix[i - 1]->name, ix[i]->name);
            goto fail;
        }
        if (ix[i]->begin > at) {
            evit_error("%s: %zu unused bytes before tensor %s", where, ix[i]->begin - at, ix[i]->name);
            goto fail;
        }
        at = ix[i]->end;
    }
    if (at != st->data_size) {
        evit_error("%s: %zu bytes after the last tensor", where, st->data_size - at);
        goto fail;
    }
    rc = EVIT_OK;
fail:
    free(ix);
    return rc;
}

static int check_metadata(const cJSON *m, const char *where)
{
    const cJSON *e;
    if (!cJSON_IsObject(m)) return evit_error("%s: __metadata__ is not an object", where);
    cJSON_ArrayForEach(e, m)
    {
        if (!cJSON_IsString(e)) return evit_error("%s: __metadata__.%.64s is not a string", where, e->string);
    }
    return EVIT_OK;
}

/* The header: an object, then only spaces up to its declared length. */
static int parse_header(const uint8_t *h, size_t n, const char *where, cJSON **out)
{
    const char *end = NULL;
    size_t i;
    if (n == 0 || h[0] != '{') return evit_error("%s: not a safetensors file (header is not a JSON object)", where);
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)h, n, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return evit_error("%s: safetensors header is not valid JSON (near byte %zu)", where,
                          (size_t)((end ? (const uint8_t *)end : h) - h) + 8);
    }
    for (i = (size_t)((const uint8_t *)end - h); i < n; i++) {
        if (h[i] != ' ' && h[i] != 0) {
            cJSON_Delete(root);
            return evit_error("%s: safetensors header has bytes after its JSON object", where);
        }
    }
    *out = root;
    return EVIT_OK;
}

int evit_safetensors_parse(struct evit_safetensors *st, const uint8_t *buf, size_t size, const char *where)
{
    cJSON *root = NULL;
    const cJSON *e;
    int n = 0;
    memset(st, 0, sizeof *st);
    if (size < 8) return evit_error("%s: too short for a safetensors file (%zu bytes)", where, size);
    uint64_t hn = le64(buf);
    if (hn > EVIT_ST_MAX_HEADER)
        return evit_error("%s: safetensors header length %llu is implausible (not a safetensors file?)", where,
                          (unsigned long long)hn);
    if (hn > size - 8)
        return evit_error("%s: header of %llu bytes but the file has %zu (truncated?)", where,
                          (unsigned long long)hn, size - 8);
    if (parse_header(buf + 8, (size_t)hn, where, &root) < 0) return EVIT_ERR;
    st->data = buf + 8 + hn;
    st->data_size = size - 8 - (size_t)hn;
    cJSON_ArrayForEach(e, root) n++;
    st->t = evit_calloc((size_t)(n ? n : 1), sizeof *st->t);
    cJSON_ArrayForEach(e, root)
    {
        if (!strcmp(e->string, "__metadata__")) {
            if (st->metadata) {
                evit_error("%s: __metadata__ is listed twice", where);
                goto fail;
            }
            if (check_metadata(e, where) < 0) goto fail;
            st->metadata = cJSON_PrintUnformatted(e);
            continue;
        }
        if (parse_tensor(e, where, &st->t[st->n++], st->data_size) < 0) goto fail;
    }
    if (check_layout(st, where) < 0) goto fail;
    cJSON_Delete(root);
    return EVIT_OK;
fail:
    cJSON_Delete(root);
    evit_safetensors_free(st);
    return EVIT_ERR;
}

int evit_safetensors_load(const char *path, struct evit_safetensors *st)
{
    uint8_t *buf;
    size_t size;
    memset(st, 0, sizeof *st);
    if (evit_read_file(path, &buf, &size) < 0) return EVIT_ERR;
    if (evit_safetensors_parse(st, buf, size, path) < 0) {
        free(buf);
        return EVIT_ERR;
    }
    st->owned = buf;
    return EVIT_OK;
}

const struct evit_st_tensor *evit_safetensors_find(const struct evit_safetensors *st, const char *name)
{
    int i;
    for (i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

/* binary16: 1 sign, 5 exponent (bias 15), 10 fraction bits.  Normal
 * numbers rebias the exponent to 127 and shift the fraction; subnormals
 * (exponent 0) are f * 2^-24 exactly; exponent 31 is Inf or NaN. */
float evit_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, f = h & 0x3ffu, bits;
    float out;
    if (e == 0) {
        out = ldexpf((float)f, -24);
        return sign ? -out : out;
    }
    if (e == 31)
        bits = sign | 0x7f800000u | f << 13;
    else
        bits = sign | (e + 112) << 23 | f << 13;
    memcpy(&out, &bits, 4);
    return out;
}

void evit_safetensors_read(float *out, const struct evit_safetensors *st, const struct evit_st_tensor *t)
{
    const uint8_t *p = st->data + t->begin;
    size_t i;
    for (i = 0; i < t->numel; i++) {
        uint32_t bits;
        switch (t->dtype) {
        case EVIT_ST_F32:
            bits = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                   (uint32_t)p[4 * i + 3] << 24;
            memcpy(&out[i], &bits, 4);
            break;
        case EVIT_ST_F16: out[i] = evit_half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8)); break;
        case EVIT_ST_BF16: /* the top half of a float32 */
            bits = ((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8) << 16;
            memcpy(&out[i], &bits, 4);
            break;
        }
    }
}

void evit_safetensors_free(struct evit_safetensors *st)
{
    int i;
    if (st->t)
        for (i = 0; i < st->n; i++) free(st->t[i].name);
    free(st->t);
    cJSON_free(st->metadata);
    free(st->owned);
    memset(st, 0, sizeof *st);
}
