/* file.c: see evrt.h ("Model files") and file.h.
 *
 * The loader trusts nothing: every count, size and offset read from the
 * file is checked against the buffer's length before anything is read
 * through it, in 64-bit arithmetic that cannot wrap (a file field is at most
 * 2^64 - 1; every comparison is of the form a <= len - b with b <= len). */
#if !defined(_POSIX_C_SOURCE) && !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L /* open, fstat, mmap */
#endif
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* madvise */
#endif

#include "file.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__unix__) || defined(__APPLE__)
#define EVRT_HAVE_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#else
#define EVRT_HAVE_MMAP 0
#endif

struct evrt_file {
    const uint8_t *data; /* the file, 64-byte aligned */
    size_t len;
    void *map;      /* mmap'd region, or NULL */
    void *alloc;    /* malloc'd copy (data is aligned inside it), or NULL */
    struct evrt_model model;
    struct evrt_block *blocks; /* (depth) */
    struct evrt_decoder decoder; /* model.decoder for head 2 (seg_mlp) */
    const char *name;
    const char **classes; /* (classes) or NULL */
    struct evrt_lineage lineage;
    uint32_t version;
};

static const uint32_t crc_table[256] = {
    0x00000000UL, 0x77073096UL, 0xee0e612cUL, 0x990951baUL, 0x076dc419UL, 0x706af48fUL,
    0xe963a535UL, 0x9e6495a3UL, 0x0edb8832UL, 0x79dcb8a4UL, 0xe0d5e91eUL, 0x97d2d988UL,
    0x09b64c2bUL, 0x7eb17cbdUL, 0xe7b82d07UL, 0x90bf1d91UL, 0x1db71064UL, 0x6ab020f2UL,
    0xf3b97148UL, 0x84be41deUL, 0x1adad47dUL, 0x6ddde4ebUL, 0xf4d4b551UL, 0x83d385c7UL,
    0x136c9856UL, 0x646ba8c0UL, 0xfd62f97aUL, 0x8a65c9ecUL, 0x14015c4fUL, 0x63066cd9UL,
    0xfa0f3d63UL, 0x8d080df5UL, 0x3b6e20c8UL, 0x4c69105eUL, 0xd56041e4UL, 0xa2677172UL,
    0x3c03e4d1UL, 0x4b04d447UL, 0xd20d85fdUL, 0xa50ab56bUL, 0x35b5a8faUL, 0x42b2986cUL,
    0xdbbbc9d6UL, 0xacbcf940UL, 0x32d86ce3UL, 0x45df5c75UL, 0xdcd60dcfUL, 0xabd13d59UL,
    0x26d930acUL, 0x51de003aUL, 0xc8d75180UL, 0xbfd06116UL, 0x21b4f4b5UL, 0x56b3c423UL,
    0xcfba9599UL, 0xb8bda50fUL, 0x2802b89eUL, 0x5f058808UL, 0xc60cd9b2UL, 0xb10be924UL,
    0x2f6f7c87UL, 0x58684c11UL, 0xc1611dabUL, 0xb6662d3dUL, 0x76dc4190UL, 0x01db7106UL,
    0x98d220bcUL, 0xefd5102aUL, 0x71b18589UL, 0x06b6b51fUL, 0x9fbfe4a5UL, 0xe8b8d433UL,
    0x7807c9a2UL, 0x0f00f934UL, 0x9609a88eUL, 0xe10e9818UL, 0x7f6a0dbbUL, 0x086d3d2dUL,
    0x91646c97UL, 0xe6635c01UL, 0x6b6b51f4UL, 0x1c6c6162UL, 0x856530d8UL, 0xf262004eUL,
    0x6c0695edUL, 0x1b01a57bUL, 0x8208f4c1UL, 0xf50fc457UL, 0x65b0d9c6UL, 0x12b7e950UL,
    0x8bbeb8eaUL, 0xfcb9887cUL, 0x62dd1ddfUL, 0x15da2d49UL, 0x8cd37cf3UL, 0xfbd44c65UL,
    0x4db26158UL, 0x3ab551ceUL, 0xa3bc0074UL, 0xd4bb30e2UL, 0x4adfa541UL, 0x3dd895d7UL,
    0xa4d1c46dUL, 0xd3d6f4fbUL, 0x4369e96aUL, 0x346ed9fcUL, 0xad678846UL, 0xda60b8d0UL,
    0x44042d73UL, 0x33031de5UL, 0xaa0a4c5fUL, 0xdd0d7cc9UL, 0x5005713cUL, 0x270241aaUL,
    0xbe0b1010UL, 0xc90c2086UL, 0x5768b525UL, 0x206f85b3UL, 0xb966d409UL, 0xce61e49fUL,
    0x5edef90eUL, 0x29d9c998UL, 0xb0d09822UL, 0xc7d7a8b4UL, 0x59b33d17UL, 0x2eb40d81UL,
    0xb7bd5c3bUL, 0xc0ba6cadUL, 0xedb88320UL, 0x9abfb3b6UL, 0x03b6e20cUL, 0x74b1d29aUL,
    0xead54739UL, 0x9dd277afUL, 0x04db2615UL, 0x73dc1683UL, 0xe3630b12UL, 0x94643b84UL,
    0x0d6d6a3eUL, 0x7a6a5aa8UL, 0xe40ecf0bUL, 0x9309ff9dUL, 0x0a00ae27UL, 0x7d079eb1UL,
    0xf00f9344UL, 0x8708a3d2UL, 0x1e01f268UL, 0x6906c2feUL, 0xf762575dUL, 0x806567cbUL,
    0x196c3671UL, 0x6e6b06e7UL, 0xfed41b76UL, 0x89d32be0UL, 0x10da7a5aUL, 0x67dd4accUL,
    0xf9b9df6fUL, 0x8ebeeff9UL, 0x17b7be43UL, 0x60b08ed5UL, 0xd6d6a3e8UL, 0xa1d1937eUL,
    0x38d8c2c4UL, 0x4fdff252UL, 0xd1bb67f1UL, 0xa6bc5767UL, 0x3fb506ddUL, 0x48b2364bUL,
    0xd80d2bdaUL, 0xaf0a1b4cUL, 0x36034af6UL, 0x41047a60UL, 0xdf60efc3UL, 0xa867df55UL,
    0x316e8eefUL, 0x4669be79UL, 0xcb61b38cUL, 0xbc66831aUL, 0x256fd2a0UL, 0x5268e236UL,
    0xcc0c7795UL, 0xbb0b4703UL, 0x220216b9UL, 0x5505262fUL, 0xc5ba3bbeUL, 0xb2bd0b28UL,
    0x2bb45a92UL, 0x5cb36a04UL, 0xc2d7ffa7UL, 0xb5d0cf31UL, 0x2cd99e8bUL, 0x5bdeae1dUL,
    0x9b64c2b0UL, 0xec63f226UL, 0x756aa39cUL, 0x026d930aUL, 0x9c0906a9UL, 0xeb0e363fUL,
    0x72076785UL, 0x05005713UL, 0x95bf4a82UL, 0xe2b87a14UL, 0x7bb12baeUL, 0x0cb61b38UL,
    0x92d28e9bUL, 0xe5d5be0dUL, 0x7cdcefb7UL, 0x0bdbdf21UL, 0x86d3d2d4UL, 0xf1d4e242UL,
    0x68ddb3f8UL, 0x1fda836eUL, 0x81be16cdUL, 0xf6b9265bUL, 0x6fb077e1UL, 0x18b74777UL,
    0x88085ae6UL, 0xff0f6a70UL, 0x66063bcaUL, 0x11010b5cUL, 0x8f659effUL, 0xf862ae69UL,
    0x616bffd3UL, 0x166ccf45UL, 0xa00ae278UL, 0xd70dd2eeUL, 0x4e048354UL, 0x3903b3c2UL,
    0xa7672661UL, 0xd06016f7UL, 0x4969474dUL, 0x3e6e77dbUL, 0xaed16a4aUL, 0xd9d65adcUL,
    0x40df0b66UL, 0x37d83bf0UL, 0xa9bcae53UL, 0xdebb9ec5UL, 0x47b2cf7fUL, 0x30b5ffe9UL,
    0xbdbdf21cUL, 0xcabac28aUL, 0x53b39330UL, 0x24b4a3a6UL, 0xbad03605UL, 0xcdd70693UL,
    0x54de5729UL, 0x23d967bfUL, 0xb3667a2eUL, 0xc4614ab8UL, 0x5d681b02UL, 0x2a6f2b94UL,
    0xb40bbe37UL, 0xc30c8ea1UL, 0x5a05df1bUL, 0x2d02ef8dUL,
};

uint32_t evrt_crc32(uint32_t crc, const void *data, size_t n)
{
    const uint8_t *p = data;
    crc = ~crc;
    while (n--) crc = crc_table[(crc ^ *p++) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

size_t evrt_file_blocks_at(void) { return EVRT_FH_BYTES; }
size_t evrt_file_decoder_at(int depth) { return EVRT_FH_BYTES + (size_t)depth * EVRT_BLOCK_ENTRY; }
size_t evrt_file_layers_at(int depth, int levels)
{
    return evrt_file_decoder_at(depth) + (levels ? EVRT_DECODER_ENTRY : 0);
}
int evrt_file_layer_entries(int depth, int levels) { return 2 + 4 * depth + (levels ? levels + 1 : 0); }
size_t evrt_file_tensors_at(int depth, int levels)
{
    return evrt_file_layers_at(depth, levels) + (size_t)evrt_file_layer_entries(depth, levels) * EVRT_LAYER_ENTRY;
}
size_t evrt_file_strings_at(int depth, int levels, uint32_t tensors)
{
    return evrt_file_tensors_at(depth, levels) + (size_t)tensors * EVRT_TENSOR_ENTRY;
}

static int ferr(char *err, size_t n, int code, const char *fmt, ...)
{
    va_list ap;
    if (n) {
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Little-endian reads (the endianness marker has already matched, but
 * memcpy also keeps them alignment-safe). */
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static int32_t rdi32(const uint8_t *p)
{
    uint32_t u = rd32(p);
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}
static float rdf32(const uint8_t *p)
{
    uint32_t u = rd32(p);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* the model config: every field in range before any size is derived */
static int read_config(struct evrt_file *f, char *err, size_t n)
{
    const uint8_t *h = f->data;
    struct evrt_model *m = &f->model;
    int c;
    m->img_size = rdi32(h + EVRT_FH_IMG_SIZE);
    m->channels = rdi32(h + EVRT_FH_IMG_SIZE + 4);
    m->patch = rdi32(h + EVRT_FH_IMG_SIZE + 8);
    m->dim = rdi32(h + EVRT_FH_IMG_SIZE + 12);
    m->depth = rdi32(h + EVRT_FH_IMG_SIZE + 16);
    m->classes = rdi32(h + EVRT_FH_IMG_SIZE + 20);
    if (m->img_size < 1 || m->img_size > EVRT_FILE_MAX_IMG)
        return ferr(err, n, EVRT_EFORMAT, "img_size %d outside [1, %d]", m->img_size, EVRT_FILE_MAX_IMG);
    if (m->channels < 1 || m->channels > EVRT_MAX_CHANNELS)
        return ferr(err, n, EVRT_EFORMAT, "channels %d outside [1, %d]", m->channels, EVRT_MAX_CHANNELS);
    if (m->patch < 1 || m->patch > m->img_size || m->img_size % m->patch)
        return ferr(err, n, EVRT_EFORMAT, "patch %d does not divide img_size %d", m->patch, m->img_size);
    if (m->dim < 1 || m->dim > EVRT_FILE_MAX_DIM)
        return ferr(err, n, EVRT_EFORMAT, "dim %d outside [1, %d]", m->dim, EVRT_FILE_MAX_DIM);
    if (m->depth < 1 || m->depth > EVRT_FILE_MAX_DEPTH)
        return ferr(err, n, EVRT_EFORMAT, "depth %d outside [1, %d]", m->depth, EVRT_FILE_MAX_DEPTH);
    if (m->classes < 1 || m->classes > EVRT_FILE_MAX_CLASSES)
        return ferr(err, n, EVRT_EFORMAT, "classes %d outside [1, %d]", m->classes, EVRT_FILE_MAX_CLASSES);
    if ((long)m->channels * m->patch * m->patch > EVRT_FILE_MAX_DIM)
        return ferr(err, n, EVRT_EFORMAT, "patch input %d x %d x %d too large", m->channels, m->patch,
                    m->patch);
    for (c = 0; c < EVRT_MAX_CHANNELS; c++) {
        m->mean[c] = rdf32(h + EVRT_FH_MEAN + 4 * c);
        m->std[c] = rdf32(h + EVRT_FH_STD + 4 * c);
        if (c < m->channels ? !(m->std[c] > 0.0f) || m->std[c] > 1e30f || !(fabsf(m->mean[c]) <= 1e30f)
                            : m->mean[c] != 0.0f || m->std[c] != 0.0f)
            return ferr(err, n, EVRT_EFORMAT, "channel %d: mean %g, std %g (std must be positive, both finite; unused channels 0)",
                        c, (double)m->mean[c], (double)m->std[c]);
    }
    if (rd32(h + EVRT_FH_RESERVED)) return ferr(err, n, EVRT_EFORMAT, "reserved header bytes are not zero");
    m->head_kind = (int)rd32(h + EVRT_FH_HEAD);
    if (rd32(h + EVRT_FH_HEAD) > EVRT_HEAD_SEG_MLP || (m->head_kind && f->version < EVRT_FILE_VERSION_HEAD) ||
        (m->head_kind == EVRT_HEAD_SEG_MLP && f->version < EVRT_FILE_VERSION_DECODER))
        return ferr(err, n, EVRT_EFORMAT, "head kind %lu invalid in format version %lu",
                    (unsigned long)rd32(h + EVRT_FH_HEAD), (unsigned long)f->version);
    return EVRT_OK;
}

/* seg_mlp's decoder entry (head 2): width, levels and the level list,
 * checked before the layer table's size is derived from the levels. */
static int read_decoder(struct evrt_file *f, uint64_t header, char *err, size_t n)
{
    struct evrt_model *m = &f->model;
    struct evrt_decoder *d = &f->decoder;
    const uint8_t *e = f->data + evrt_file_decoder_at(m->depth);
    uint32_t C, L, lv[EVRT_MAX_LEVELS], i;
    if (m->head_kind != EVRT_HEAD_SEG_MLP) return EVRT_OK;
    if (evrt_file_layers_at(m->depth, 1) > header)
        return ferr(err, n, EVRT_EFORMAT, "the decoder entry does not fit a %llu-byte header",
                    (unsigned long long)header);
    C = rd32(e + EVRT_DE_DIM);
    L = rd32(e + EVRT_DE_LEVELS);
    if (C < 1 || C > EVRT_FILE_MAX_DIM)
        return ferr(err, n, EVRT_EFORMAT, "decoder width %lu outside [1, %d]", (unsigned long)C, EVRT_FILE_MAX_DIM);
    if (L < 1 || L > EVRT_MAX_LEVELS)
        return ferr(err, n, EVRT_EFORMAT, "decoder levels %lu outside [1, %d]", (unsigned long)L, EVRT_MAX_LEVELS);
    for (i = 0; i < EVRT_MAX_LEVELS; i++) {
        lv[i] = rd32(e + EVRT_DE_LEVEL + 4 * i);
        if (i >= L ? lv[i] != 0
                   : lv[i] >= (uint32_t)m->depth || (i > 0 && lv[i] <= lv[i - 1]) ||
                         (i == L - 1 && lv[i] != (uint32_t)m->depth - 1))
            return ferr(err, n, EVRT_EFORMAT,
                        "decoder level %lu is %lu: levels must be blocks, strictly increasing, the last %d "
                        "(unused ones 0)", (unsigned long)i, (unsigned long)lv[i], m->depth - 1);
    }
    if (rd32(e + EVRT_DE_RESERVED) || rd32(e + EVRT_DE_RESERVED + 4))
        return ferr(err, n, EVRT_EFORMAT, "reserved decoder bytes are not zero");
    d->dim = (int)C;
    d->levels = (int)L;
    for (i = 0; i < L; i++) d->level[i] = (int)lv[i];
    m->decoder = d;
    return EVRT_OK;
}

/* The decoder's levels, 0 without one (the layer table's extra entries). */
static int levels_of(const struct evrt_model *m) { return m->decoder ? m->decoder->levels : 0; }

static int read_blocks(struct evrt_file *f, char *err, size_t n)
{
    struct evrt_model *m = &f->model;
    int l, i;
    f->blocks = calloc((size_t)m->depth, sizeof *f->blocks);
    if (!f->blocks) return ferr(err, n, EVRT_ENOMEM, "out of memory");
    m->blocks = f->blocks;
    for (l = 0; l < m->depth; l++) {
        const uint8_t *e = f->data + evrt_file_blocks_at() + (size_t)l * EVRT_BLOCK_ENTRY;
        uint32_t heads = rd32(e), hd = rd32(e + 4), mlp = rd32(e + 8), att = rd32(e + 12);
        struct evrt_block *b = &f->blocks[l];
        if (heads < 1 || hd < 1 || heads > EVRT_FILE_MAX_DIM || hd > EVRT_FILE_MAX_DIM ||
            (uint64_t)heads * hd > EVRT_FILE_MAX_DIM / 4 || mlp < 1 || mlp > EVRT_FILE_MAX_DIM)
            return ferr(err, n, EVRT_EFORMAT, "block %d: %lu heads of %lu, MLP %lu out of range", l,
                        (unsigned long)heads, (unsigned long)hd, (unsigned long)mlp);
        if (att > EVRT_I8 || (att && f->version < EVRT_FILE_VERSION_ATT))
            return ferr(err, n, EVRT_EFORMAT, "block %d: attention dtype %lu invalid in format version %lu",
                        l, (unsigned long)att, (unsigned long)f->version);
        b->attn_dtype = (int)att;
        b->heads = (int)heads;
        b->head_dim = (int)hd;
        b->mlp = (int)mlp;
    }
    /* layer shapes from the config (evrt_model_check compares them again) */
    m->patch_embed.in = m->channels * m->patch * m->patch;
    m->patch_embed.out = m->dim;
    for (l = 0; l < m->depth; l++) {
        struct evrt_block *b = &f->blocks[l];
        int I = b->heads * b->head_dim;
        b->qkv.in = m->dim;
        b->qkv.out = 3 * I;
        b->proj.in = I;
        b->proj.out = m->dim;
        b->fc1.in = m->dim;
        b->fc1.out = b->mlp;
        b->fc2.in = b->mlp;
        b->fc2.out = m->dim;
    }
    m->head.in = m->dim;
    m->head.out = m->classes;
    if (m->decoder) {
        struct evrt_decoder *d = m->decoder;
        for (i = 0; i < d->levels; i++) {
            d->linear_c[i].in = m->dim;
            d->linear_c[i].out = d->dim;
        }
        d->fuse.in = d->levels * d->dim;
        d->fuse.out = d->dim;
        m->head.in = d->dim;
    }
    for (i = 0; i < evrt_layer_count(m); i++) {
        const uint8_t *e = f->data + evrt_file_layers_at(m->depth, levels_of(m)) + (size_t)i * EVRT_LAYER_ENTRY;
        struct evrt_linear *L = evrt_model_layer(m, i);
        uint32_t dt = rd32(e);
        char name[64];
        if (dt != EVRT_F32 && dt != EVRT_I8)
            return ferr(err, n, EVRT_EFORMAT, "%s: unknown dtype %lu",
                        evrt_layer_name(m, i, name, sizeof name), (unsigned long)dt);
        L->dtype = (int)dt;
        L->in_scale = rdf32(e + 4);
        L->in_zero = rdi32(e + 8);
        if (rd32(e + 12))
            return ferr(err, n, EVRT_EFORMAT, "%s: reserved bytes are not zero",
                        evrt_layer_name(m, i, name, sizeof name));
        if (L->dtype == EVRT_I8 && (!(L->in_scale > 0.0f) || L->in_scale > 1e30f || L->in_zero < -128 ||
                                    L->in_zero > 127))
            return ferr(err, n, EVRT_EFORMAT, "%s: activation scale %g, zero point %ld out of range",
                        evrt_layer_name(m, i, name, sizeof name), (double)L->in_scale, (long)L->in_zero);
    }
    return EVRT_OK;
}

/* model name and class names: exactly 1 + n_names NUL-terminated strings */
static int read_strings(struct evrt_file *f, size_t at, uint32_t bytes, uint32_t n_names, char *err,
                        size_t n)
{
    const char *s = (const char *)f->data + at;
    uint32_t k = 0, start = 0, i;
    if (n_names != 0 && n_names != (uint32_t)f->model.classes)
        return ferr(err, n, EVRT_EFORMAT, "%lu class names for %d classes", (unsigned long)n_names,
                    f->model.classes);
    if (bytes < 1 || s[bytes - 1] != '\0')
        return ferr(err, n, EVRT_EFORMAT, "string area is not NUL-terminated");
    if (n_names) {
        f->classes = calloc(n_names, sizeof *f->classes);
        if (!f->classes) return ferr(err, n, EVRT_ENOMEM, "out of memory");
    }
    for (i = 0; i < bytes; i++) {
        if (s[i] != '\0') continue;
        if (k > n_names) break;
        if (k == 0)
            f->name = s + start;
        else
            f->classes[k - 1] = s + start;
        k++;
        start = i + 1;
    }
    if (k != 1 + n_names)
        return ferr(err, n, EVRT_EFORMAT, "string area holds %s strings than 1 + %lu class names",
                    k < 1 + n_names ? "fewer" : "more", (unsigned long)n_names);
    return EVRT_OK;
}

/* The tensor table entry's fields, checked against the buffer. */
struct tensor {
    char name[EVRT_TENSOR_NAME];
    uint32_t dtype, ndim, shape[4];
    uint64_t offset, bytes;
    int used;
};

static int read_tensor(const struct evrt_file *f, size_t at, uint64_t header, uint64_t prev_end,
                       struct tensor *t, uint32_t idx, char *err, size_t n)
{
    const uint8_t *e = f->data + at;
    static const uint64_t esize[3] = {4, 1, 4};
    uint64_t elems = 1;
    uint32_t d;
    if (!memchr(e, '\0', EVRT_TENSOR_NAME))
        return ferr(err, n, EVRT_EFORMAT, "tensor %lu: name is not NUL-terminated", (unsigned long)idx);
    memcpy(t->name, e, EVRT_TENSOR_NAME);
    if (!t->name[0]) return ferr(err, n, EVRT_EFORMAT, "tensor %lu: empty name", (unsigned long)idx);
    t->dtype = rd32(e + EVRT_TE_DTYPE);
    t->ndim = rd32(e + EVRT_TE_NDIM);
    t->offset = rd64(e + EVRT_TE_OFFSET);
    t->bytes = rd64(e + EVRT_TE_BYTES);
    t->used = 0;
    if (t->dtype > 2) return ferr(err, n, EVRT_EFORMAT, "%s: unknown dtype %lu", t->name, (unsigned long)t->dtype);
    if (t->ndim < 1 || t->ndim > 4)
        return ferr(err, n, EVRT_EFORMAT, "%s: %lu dimensions", t->name, (unsigned long)t->ndim);
    for (d = 0; d < 4; d++) {
        t->shape[d] = rd32(e + EVRT_TE_SHAPE + 4 * d);
        if (d < t->ndim ? t->shape[d] < 1 : t->shape[d] != 0)
            return ferr(err, n, EVRT_EFORMAT, "%s: bad dimension %lu", t->name, (unsigned long)d);
        if (d < t->ndim) elems *= t->shape[d]; /* < 2^32 per factor; checked below */
        if (elems > ((uint64_t)1 << 40)) return ferr(err, n, EVRT_EFORMAT, "%s: too many elements", t->name);
    }
    if (elems * esize[t->dtype] != t->bytes)
        return ferr(err, n, EVRT_EFORMAT, "%s: %llu bytes for its shape and dtype, expected %llu", t->name,
                    (unsigned long long)t->bytes, (unsigned long long)(elems * esize[t->dtype]));
    if (t->offset % EVRT_FILE_ALIGN)
        return ferr(err, n, EVRT_EFORMAT, "%s: offset %llu is not a multiple of %u", t->name,
                    (unsigned long long)t->offset, EVRT_FILE_ALIGN);
    if (t->offset < header || t->offset < prev_end)
        return ferr(err, n, EVRT_EFORMAT, "%s: offset %llu overlaps the header or the tensor before", t->name,
                    (unsigned long long)t->offset);
    if (t->offset > f->len || t->bytes > f->len - t->offset)
        return ferr(err, n, EVRT_EFORMAT, "%s: bytes [%llu, +%llu) lie outside the file (%llu bytes)", t->name,
                    (unsigned long long)t->offset, (unsigned long long)t->bytes, (unsigned long long)f->len);
    if (rd32(e + EVRT_TE_RESERVED)) return ferr(err, n, EVRT_EFORMAT, "%s: reserved bytes are not zero", t->name);
    if (evrt_crc32(0, f->data + t->offset, (size_t)t->bytes) != rd32(e + EVRT_TE_CRC))
        return ferr(err, n, EVRT_ECRC, "%s: checksum mismatch (damaged file)", t->name);
    if (t->dtype == 0) { /* float32: finite, as the HDF5 loaders require */
        const uint8_t *p = f->data + t->offset;
        uint64_t k;
        for (k = 0; k < t->bytes; k += 4)
            if ((rd32(p + k) & 0x7f800000u) == 0x7f800000u)
                return ferr(err, n, EVRT_EFORMAT, "%s: element %llu is not finite", t->name,
                            (unsigned long long)(k / 4));
    }
    return EVRT_OK;
}

/* Finds the tensor named name (NULL when absent: optional == 1 allows it),
 * checks dtype and shape (rows, cols; cols 0 for a vector) and marks it. */
static int bind(const struct evrt_file *f, struct tensor *t, uint32_t nt, const char *name, uint32_t dtype,
                int rows, int cols, int optional, const void **out, char *err, size_t n)
{
    uint32_t i, ndim = cols ? 2 : 1;
    *out = NULL;
    for (i = 0; i < nt; i++)
        if (strcmp(t[i].name, name) == 0) break;
    if (i == nt) return optional ? EVRT_OK : ferr(err, n, EVRT_EFORMAT, "tensor %s is missing", name);
    if (t[i].used) return ferr(err, n, EVRT_EFORMAT, "tensor %s appears twice", name);
    if (t[i].dtype != dtype || t[i].ndim != ndim || t[i].shape[0] != (uint32_t)rows ||
        (cols && t[i].shape[1] != (uint32_t)cols))
        return ferr(err, n, EVRT_EFORMAT, "tensor %s: dtype or shape disagrees with the config (expected %s (%d%s%.0d))",
                    name, dtype == 1 ? "int8" : dtype == 2 ? "int32" : "float32", rows, cols ? ", " : "", cols);
    t[i].used = 1;
    *out = f->data + t[i].offset;
    return EVRT_OK;
}

static int bind_linear(const struct evrt_file *f, struct tensor *t, uint32_t nt, int layer, char *err, size_t n)
{
    struct evrt_linear *L = evrt_model_layer(&f->model, layer);
    char base[48], name[64];
    const void *p;
    int rc;
    evrt_layer_name(&f->model, layer, base, sizeof base);
    if (L->dtype == EVRT_F32) {
        sprintf(name, "%s.weight", base);
        if ((rc = bind(f, t, nt, name, 0, L->out, L->in, 0, &p, err, n)) != EVRT_OK) return rc;
        L->w = p;
    } else {
        sprintf(name, "%s.weight_int8", base);
        if ((rc = bind(f, t, nt, name, 1, L->out, L->in, 0, &p, err, n)) != EVRT_OK) return rc;
        L->wq = p;
        sprintf(name, "%s.weight_scale", base);
        if ((rc = bind(f, t, nt, name, 0, L->out, 0, 0, &p, err, n)) != EVRT_OK) return rc;
        L->w_scale = p;
    }
    sprintf(name, "%s.bias", base);
    if ((rc = bind(f, t, nt, name, 0, L->out, 0, 1, &p, err, n)) != EVRT_OK) return rc;
    L->bias = p;
    return EVRT_OK;
}

static int bind_all(struct evrt_file *f, struct tensor *t, uint32_t nt, char *err, size_t n)
{
    struct evrt_model *m = &f->model;
    const void *p[2];
    char name[64];
    int rc, l, i, D = m->dim;
    uint32_t k;
#define BIND(nm, rows, cols, dst)                                                      \
    do {                                                                               \
        if ((rc = bind(f, t, nt, nm, 0, rows, cols, 0, &p[0], err, n)) != EVRT_OK) return rc; \
        dst = p[0];                                                                    \
    } while (0)
    BIND("cls_token", D, 0, m->cls_token);
    BIND("pos_embed", evrt_model_tokens(m), D, m->pos_embed);
    BIND("norm.weight", D, 0, m->norm_w);
    BIND("norm.bias", D, 0, m->norm_b);
    for (l = 0; l < m->depth; l++) {
        struct evrt_block *b = &f->blocks[l];
        sprintf(name, "blocks.%d.norm1.weight", l);
        BIND(name, D, 0, b->ln1_w);
        sprintf(name, "blocks.%d.norm1.bias", l);
        BIND(name, D, 0, b->ln1_b);
        sprintf(name, "blocks.%d.norm2.weight", l);
        BIND(name, D, 0, b->ln2_w);
        sprintf(name, "blocks.%d.norm2.bias", l);
        BIND(name, D, 0, b->ln2_b);
        if (b->attn_dtype == EVRT_I8) {
            const uint8_t *sc;
            sprintf(name, "blocks.%d.attn.act_scale", l);
            BIND(name, 4, 0, sc);
            for (k = 0; k < 4; k++) b->attn_scale[k] = rdf32(sc + 4 * k);
        }
    }
    /* Token Merging's schedule (format version 3): optional, int32 (depth) */
    if ((rc = bind(f, t, nt, "merge_r", 2, m->depth, 0, 1, &p[0], err, n)) != EVRT_OK) return rc;
    if (p[0] && f->version < EVRT_FILE_VERSION_MERGE)
        return ferr(err, n, EVRT_EFORMAT, "tensor merge_r is invalid in format version %lu",
                    (unsigned long)f->version);
    for (l = 0; p[0] && l < m->depth; l++) f->blocks[l].merge_r = (int)rdi32((const uint8_t *)p[0] + 4 * l);
    /* seg_mlp's decoder: the earlier levels' LayerNorms (the last one's is
     * norm.weight, norm.bias), then its layers with the others */
    for (i = 0; m->decoder && i < m->decoder->levels - 1; i++) {
        sprintf(name, "decode_head.norms.%d.weight", i);
        BIND(name, D, 0, m->decoder->norm_w[i]);
        sprintf(name, "decode_head.norms.%d.bias", i);
        BIND(name, D, 0, m->decoder->norm_b[i]);
    }
#undef BIND
    for (i = 0; i < evrt_layer_count(m); i++)
        if ((rc = bind_linear(f, t, nt, i, err, n)) != EVRT_OK) return rc;
    for (k = 0; k < nt; k++)
        if (!t[k].used) return ferr(err, n, EVRT_EFORMAT, "unknown tensor %s", t[k].name);
    return EVRT_OK;
}

static int parse(struct evrt_file *f, char *err, size_t n)
{
    const uint8_t *h = f->data;
    uint64_t header, file_bytes, prev_end;
    uint32_t nt, sbytes, nnames, crc, i;
    struct tensor *t;
    size_t tab, str;
    int rc;
    uint8_t zero[4] = {0, 0, 0, 0};
    if (f->len < EVRT_FH_BYTES)
        return ferr(err, n, EVRT_EFORMAT, "%lu bytes: too short for a model file", (unsigned long)f->len);
    if (memcmp(h, EVRT_FILE_MAGIC, 8) != 0) return ferr(err, n, EVRT_EFORMAT, "not an evit model file (bad magic)");
    if (rd32(h + EVRT_FH_ENDIAN) != EVRT_FILE_ENDIAN)
        return ferr(err, n, EVRT_EFORMAT, "endianness marker 0x%08lx: a file of the other byte order",
                    (unsigned long)rd32(h + EVRT_FH_ENDIAN));
    {
        uint32_t one = 1; /* tensors are used in place: the host must be little-endian too */
        uint8_t b;
        memcpy(&b, &one, 1);
        if (b != 1) return ferr(err, n, EVRT_EFORMAT, "this host is big-endian; model files are little-endian");
    }
    f->version = rd32(h + EVRT_FH_VERSION);
    if (f->version < 1 || f->version > EVRT_FILE_VERSION)
        return ferr(err, n, EVRT_EFORMAT, "format version %lu, this runtime reads 1 to %u",
                    (unsigned long)f->version, EVRT_FILE_VERSION);
    header = rd32(h + EVRT_FH_HEADER_BYTES);
    file_bytes = rd64(h + EVRT_FH_FILE_BYTES);
    if (header < EVRT_FH_BYTES || header % EVRT_FILE_ALIGN || header > f->len)
        return ferr(err, n, EVRT_EFORMAT, "header size %llu is invalid for a %lu-byte file",
                    (unsigned long long)header, (unsigned long)f->len);
    crc = evrt_crc32(0, h, EVRT_FH_HEADER_CRC);
    crc = evrt_crc32(crc, zero, 4);
    crc = evrt_crc32(crc, h + EVRT_FH_HEADER_CRC + 4, (size_t)header - EVRT_FH_HEADER_CRC - 4);
    if (crc != rd32(h + EVRT_FH_HEADER_CRC)) return ferr(err, n, EVRT_ECRC, "header checksum mismatch (damaged file)");
    if (file_bytes != f->len)
        return ferr(err, n, EVRT_EFORMAT, "file is %lu bytes, its header says %llu (truncated or padded)",
                    (unsigned long)f->len, (unsigned long long)file_bytes);
    f->lineage.source_kind = rd32(h + EVRT_FH_SOURCE_KIND);
    f->lineage.source_fnv = rd64(h + EVRT_FH_SOURCE_FNV);
    f->lineage.config_fnv = rd64(h + EVRT_FH_CONFIG_FNV);
    if (f->lineage.source_kind > EVRT_SOURCE_QUANTIZED)
        return ferr(err, n, EVRT_EFORMAT, "unknown source kind %lu", (unsigned long)f->lineage.source_kind);
    if ((rc = read_config(f, err, n)) != EVRT_OK) return rc;
    if ((rc = read_decoder(f, header, err, n)) != EVRT_OK) return rc;
    nt = rd32(h + EVRT_FH_TENSORS);
    sbytes = rd32(h + EVRT_FH_STRING_BYTES);
    nnames = rd32(h + EVRT_FH_CLASS_NAMES);
    /* depth <= 256 and nt, sbytes < 2^32 keep these sums below 2^45 */
    tab = evrt_file_tensors_at(f->model.depth, levels_of(&f->model));
    if ((uint64_t)tab + (uint64_t)nt * EVRT_TENSOR_ENTRY + sbytes > header)
        return ferr(err, n, EVRT_EFORMAT, "%lu tensors and %lu string bytes do not fit a %llu-byte header",
                    (unsigned long)nt, (unsigned long)sbytes, (unsigned long long)header);
    str = evrt_file_strings_at(f->model.depth, levels_of(&f->model), nt);
    for (i = (uint32_t)(str + sbytes); i < header; i++)
        if (h[i]) return ferr(err, n, EVRT_EFORMAT, "header padding is not zero");
    if ((rc = read_blocks(f, err, n)) != EVRT_OK) return rc;
    if ((rc = read_strings(f, str, sbytes, nnames, err, n)) != EVRT_OK) return rc;
    if (nt == 0) return ferr(err, n, EVRT_EFORMAT, "no tensors");
    t = calloc(nt, sizeof *t);
    if (!t) return ferr(err, n, EVRT_ENOMEM, "out of memory");
    prev_end = header;
    for (i = 0; i < nt; i++) {
        if ((rc = read_tensor(f, tab + (size_t)i * EVRT_TENSOR_ENTRY, header, prev_end, &t[i], i, err, n)) != EVRT_OK)
            goto out;
        prev_end = t[i].offset + t[i].bytes;
    }
    if (prev_end != f->len) {
        rc = ferr(err, n, EVRT_EFORMAT, "%llu bytes after the last tensor", (unsigned long long)(f->len - prev_end));
        goto out;
    }
    if ((rc = bind_all(f, t, nt, err, n)) != EVRT_OK) goto out;
    if (evrt_model_check(&f->model, err, n) != EVRT_OK) rc = EVRT_EFORMAT;
out:
    free(t);
    return rc;
}

static void release(struct evrt_file *f)
{
    if (!f) return;
#if EVRT_HAVE_MMAP
    if (f->map) munmap(f->map, f->len);
#endif
    free(f->alloc);
    free(f->blocks);
    free((void *)f->classes);
    free(f);
}

void evrt_close(evrt_file *f) { release(f); }

/* Checks f (data, len set); frees it on failure. */
static int finish(evrt_file **out, struct evrt_file *f, char *err, size_t n)
{
    int rc = parse(f, err, n);
    if (rc != EVRT_OK) {
        release(f);
        return rc;
    }
    *out = f;
    return EVRT_OK;
}

/* A 64-byte aligned copy of len bytes (plain malloc guarantees less). */
static int copy_aligned(struct evrt_file *f, const void *buf, size_t len)
{
    size_t pad;
    if (len > (size_t)-1 - EVRT_FILE_ALIGN) return EVRT_ENOMEM;
    f->alloc = malloc(len + EVRT_FILE_ALIGN);
    if (!f->alloc) return EVRT_ENOMEM;
    pad = (EVRT_FILE_ALIGN - (size_t)((uintptr_t)f->alloc % EVRT_FILE_ALIGN)) % EVRT_FILE_ALIGN;
    f->data = (uint8_t *)f->alloc + pad;
    if (buf) memcpy((uint8_t *)f->data, buf, len);
    f->len = len;
    return EVRT_OK;
}

int evrt_open_memory(evrt_file **out, const void *buf, size_t len, char *err, size_t n)
{
    struct evrt_file *f;
    if (n) err[0] = '\0';
    *out = NULL;
    if (!buf && len) return ferr(err, n, EVRT_EINVAL, "no buffer");
    f = calloc(1, sizeof *f);
    if (!f) return ferr(err, n, EVRT_ENOMEM, "out of memory");
    if ((uintptr_t)buf % EVRT_FILE_ALIGN == 0) {
        f->data = buf;
        f->len = len;
    } else if (copy_aligned(f, buf, len) != EVRT_OK) {
        release(f);
        return ferr(err, n, EVRT_ENOMEM, "out of memory for a %lu-byte copy", (unsigned long)len);
    }
    return finish(out, f, err, n);
}

/* Reads the whole stream into an aligned buffer (where mmap is missing or
 * refuses, as for a pipe). */
static int read_all(struct evrt_file *f, const char *path, char *err, size_t n)
{
    FILE *fp = fopen(path, "rb");
    size_t cap = 1 << 16, len = 0, got;
    uint8_t *tmp = NULL, *next;
    int rc;
    if (!fp) return ferr(err, n, EVRT_EIO, "cannot open");
    for (;;) {
        next = realloc(tmp, cap);
        if (!next) {
            free(tmp);
            fclose(fp);
            return ferr(err, n, EVRT_ENOMEM, "out of memory");
        }
        tmp = next;
        got = fread(tmp + len, 1, cap - len, fp);
        len += got;
        if (len < cap) break;
        if (cap > (size_t)-1 / 2) {
            free(tmp);
            fclose(fp);
            return ferr(err, n, EVRT_ENOMEM, "too large");
        }
        cap *= 2;
    }
    rc = ferror(fp);
    fclose(fp);
    if (rc) {
        free(tmp);
        return ferr(err, n, EVRT_EIO, "read error");
    }
    rc = copy_aligned(f, tmp, len);
    free(tmp);
    return rc == EVRT_OK ? EVRT_OK : ferr(err, n, EVRT_ENOMEM, "out of memory");
}

int evrt_open(evrt_file **out, const char *path, char *err, size_t n)
{
    struct evrt_file *f;
    int rc;
    if (n) err[0] = '\0';
    *out = NULL;
    f = calloc(1, sizeof *f);
    if (!f) return ferr(err, n, EVRT_ENOMEM, "out of memory");
#if EVRT_HAVE_MMAP
    {
        struct stat st;
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            release(f);
            return ferr(err, n, EVRT_EIO, "cannot open");
        }
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
            (unsigned long long)st.st_size <= (size_t)-1) {
            void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p != MAP_FAILED) {
                f->map = p;
                f->data = p; /* page aligned */
                f->len = (size_t)st.st_size;
            }
        }
        close(fd);
    }
#endif
    if (!f->map && (rc = read_all(f, path, err, n)) != EVRT_OK) {
        release(f);
        return rc;
    }
    if ((rc = finish(out, f, err, n)) != EVRT_OK) return rc;
    /* the checksums have just read every page: let them go, so that a
     * context packing the weights does not find them all still resident */
    evrt_file_drop(f, f->data, f->len);
    return EVRT_OK;
}

void evrt_file_drop(const evrt_file *f, const void *p, size_t bytes)
{
#if EVRT_HAVE_MMAP && defined(__linux__) && defined(MADV_DONTNEED)
    /* A private read-only file mapping that was never written: dropping
     * its pages loses nothing, a later read faults them in from the page
     * cache.  Only whole pages inside [p, p + bytes) go. */
    uintptr_t a = (uintptr_t)p, e, lo = (uintptr_t)f->map, pg;
    long ps = sysconf(_SC_PAGESIZE);
    if (!f->map || ps <= 0 || a < lo || bytes > f->len || a - lo > f->len - bytes) return;
    pg = (uintptr_t)ps;
    e = (a + bytes) / pg * pg;
    a = (a + pg - 1) / pg * pg;
    if (a < e) (void)madvise((void *)a, (size_t)(e - a), MADV_DONTNEED);
#else
    (void)f;
    (void)p;
    (void)bytes;
#endif
}

const struct evrt_model *evrt_file_model(const evrt_file *f) { return &f->model; }
const char *evrt_file_name(const evrt_file *f) { return f->name; }
const char *evrt_file_class_name(const evrt_file *f, int k)
{
    return f->classes && k >= 0 && k < f->model.classes ? f->classes[k] : NULL;
}
size_t evrt_file_input(const evrt_file *f, int *img_size, int *channels, int *classes)
{
    const struct evrt_model *m = &f->model;
    if (img_size) *img_size = m->img_size;
    if (channels) *channels = m->channels;
    if (classes) *classes = m->classes;
    return (size_t)m->img_size * (size_t)m->img_size * (size_t)m->channels;
}
int evrt_file_head(const evrt_file *f) { return f->model.head_kind; }

const struct evrt_lineage *evrt_file_lineage(const evrt_file *f) { return &f->lineage; }
size_t evrt_file_bytes(const evrt_file *f) { return f->len; }
