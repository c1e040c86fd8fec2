/* test_file.c: model files (.evit): the writer and the loader round-trip a
 * float and a mixed int8 model to bit-identical logits, from a file (mmap)
 * and from memory, aligned or not; and every kind of damage is refused with
 * the right error code, never read past: header bytes, truncation, magic,
 * version, endianness, offsets, alignment, shapes, dtypes, strings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "evrt.h"
#include "export.h"
#include "file.h"
#include "kernels.h"
#include "qmodel.h"
#include "rng.h"
#include "test.h"
#include "fixture.h"
#include "util.h"
#include "vit.h"

/* img 8, patch 4, 2 channels, D 12, 5 classes, blocks of different shapes */
static struct evit_vit_config file_config(void)
{
    static const struct evit_block_shape b[] = {{3, 4, 20, 0}, {1, 5, 7, 0}};
    return make_config("tiny", 8, 2, 4, 5, 12, 2, b);
}

/* Every parameter of m drawn from N(0, std^2), in tensor order. */
static void fill_normal(struct evit_vit *m, uint64_t seed, double std)
{
    struct evit_rng r;
    int n;
    evit_rng_seed(&r, seed);
    struct evit_tensor_ref *t = evit_vit_tensor_list(&m->cfg, &m->p, &n);
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < t[i].numel; j++) t[i].data[j] = (float)(std * evit_rng_normal(&r));
    free(t);
}

static void model_of(struct evit_vit *m, const struct evit_vit_config *cfg, uint64_t seed)
{
    struct evit_vit_config c = *cfg;
    evit_vit_alloc(m, &c);
    fill_normal(m, seed, 0.3);
    m->mean[0] = 0.4f;
    m->mean[1] = 0.5f;
    m->std[0] = 0.25f;
    m->std[1] = 0.3f;
}

static void random_model(struct evit_vit *m, uint64_t seed)
{
    struct evit_vit_config c = file_config();
    model_of(m, &c, seed);
}

/* file_config's blocks with SegFormer's decoder over both, width 5 */
static void mlp_model(struct evit_vit *m, uint64_t seed)
{
    static const int levels[2] = {0, 1};
    struct evit_vit_config c = file_config();
    set_mlp_decoder(&c, 5, 2, levels);
    model_of(m, &c, seed);
}

/* Layers 1, 3, 4 and the head int8, one with an asymmetric zero point. */
static void make_mixed(struct evit_qmodel *q)
{
    int layers[4] = {1, 3, 4, 9};
    for (int k = 0; k < 4; k++) {
        struct evrt_linear *L = evrt_model_layer(&q->rt, layers[k]);
        L->dtype = EVRT_I8;
        L->in_scale = 0.02f + 0.01f * (float)k;
        L->in_zero = k == 2 ? 7 : 0;
    }
}

static char cn0_[] = "zero", cn1_[] = "one", cn2_[] = "two", cn3_[] = "three", cn4_[] = "four";
static char *class_names_[5] = {cn0_, cn1_, cn2_, cn3_, cn4_};

static struct evit_export_info test_info(void)
{
    struct evit_export_info info = {"tiny", class_names_, {EVRT_SOURCE_QUANTIZED, 0x1234567890abcdefULL, 42}};
    return info;
}

static void images(uint8_t *img, int n)
{
    for (int i = 0; i < n; i++) img[i] = (uint8_t)((i * 73 + 11) % 256);
}

/* logits of 3 images through a context on m */
static int logits_of(const struct evrt_model *m, float *out)
{
    uint8_t img[3 * 8 * 8 * 2];
    evrt_ctx *ctx;
    images(img, (int)sizeof img);
    if (evrt_ctx_create(&ctx, m, 3) != EVRT_OK) {
        evrt_ctx_destroy(ctx);
        return -1;
    }
    int rc = evrt_infer(ctx, img, 3, out);
    evrt_ctx_destroy(ctx);
    return rc;
}

/* INT8 attention in block 0, with scales that are not round numbers. */
static void make_int8_attention(struct evit_qmodel *q)
{
    struct evrt_block *b = &q->rt.blocks[0];
    b->attn_dtype = EVRT_I8;
    b->attn_scale[0] = 0.031f;
    b->attn_scale[1] = 0.027f;
    b->attn_scale[2] = 0.019f;
    b->attn_scale[3] = 0.0071f;
}

/* mixed: 0 float, 1 some int8 layers, 2 those and INT8 attention, 3
 * those and Token Merging (block 0 merges 2 of its 5 tokens) */
static void round_trip(int mixed)
{
    struct evit_vit m;
    struct evit_qmodel q;
    struct evit_export_info info = test_info();
    float want[15], got[15];
    uint8_t *buf;
    size_t len;
    char err[EVRT_ERR_MAX], path[512];
    evrt_file *f = NULL, *g = NULL;
    random_model(&m, 7 + (uint64_t)mixed);
    evit_qmodel_from_vit(&q, &m);
    if (mixed) make_mixed(&q);
    if (mixed >= 2) make_int8_attention(&q);
    if (mixed == 3) {
        m.cfg.blocks[0].merge_r = q.rt.blocks[0].merge_r = 2;
        q.vit.cfg.blocks[0].merge_r = 2;
    }
    CHECK(logits_of(&q.rt, want) == EVRT_OK);
    evit_export_build(&q.rt, &info, &buf, &len);
    /* version 2 only where INT8 attention needs it, 3 where merging does */
    CHECK(buf[EVRT_FH_VERSION] == (mixed == 3 ? 3 : mixed == 2 ? 2 : 1));
    /* from a file (mmap) */
    snprintf(path, sizeof path, "%s/m%d.evit", test_tmpdir(), mixed);
    CHECK(evit_export_write(path, &q.rt, &info, NULL) == EVIT_OK);
    int rc = evrt_open(&f, path, err, sizeof err);
    if (rc != EVRT_OK) fprintf(stderr, "  %s\n", err);
    CHECK(rc == EVRT_OK);
    if (f) {
        const struct evrt_model *fm = evrt_file_model(f);
        CHECK(logits_of(fm, got) == EVRT_OK);
        CHECK(memcmp(want, got, sizeof want) == 0);
        CHECK(evrt_file_bytes(f) == len);
        CHECK(strcmp(evrt_file_name(f), "tiny") == 0);
        CHECK(strcmp(evrt_file_class_name(f, 3), "three") == 0);
        CHECK(evrt_file_class_name(f, 5) == NULL);
        CHECK(evrt_file_lineage(f)->source_fnv == 0x1234567890abcdefULL);
        CHECK(evrt_file_lineage(f)->config_fnv == 42);
        CHECK(evrt_model_bytes(fm) == evrt_model_bytes(&q.rt));
        for (int l = 0; l < fm->depth; l++) {
            CHECK(fm->blocks[l].merge_r == q.rt.blocks[l].merge_r);
            CHECK(fm->blocks[l].attn_dtype == q.rt.blocks[l].attn_dtype);
            if (fm->blocks[l].attn_dtype == EVRT_I8)
                CHECK(memcmp(fm->blocks[l].attn_scale, q.rt.blocks[l].attn_scale, 4 * sizeof(float)) == 0);
        }
        for (int i = 0; i < evrt_layer_count(fm); i++) {
            const struct evrt_linear *a = evrt_model_layer(fm, i), *b = evrt_model_layer(&q.rt, i);
            CHECK(a->dtype == b->dtype && a->in_scale == b->in_scale && a->in_zero == b->in_zero);
            CHECK(((uintptr_t)(a->dtype == EVRT_I8 ? (const void *)a->wq : (const void *)a->w)) % 64 == 0);
        }
    }
    /* from memory, aligned (in place) and misaligned (copied) */
    uint8_t *raw = malloc(len + 65);
    uint8_t *al = raw + (64 - (uintptr_t)raw % 64) % 64;
    memcpy(al, buf, len);
    CHECK(evrt_open_memory(&g, al, len, err, sizeof err) == EVRT_OK);
    if (g) {
        const uint8_t *c = (const uint8_t *)(const void *)evrt_file_model(g)->cls_token;
        CHECK(c >= al && c < al + len); /* used in place, not copied */
        CHECK(logits_of(evrt_file_model(g), got) == EVRT_OK);
        CHECK(memcmp(want, got, sizeof want) == 0);
        evrt_close(g);
    }
    memmove(al + 1, al, len);
    CHECK(evrt_open_memory(&g, al + 1, len, err, sizeof err) == EVRT_OK);
    if (g) {
        CHECK(logits_of(evrt_file_model(g), got) == EVRT_OK);
        CHECK(memcmp(want, got, sizeof want) == 0);
        evrt_close(g);
    }
    free(raw);
    evrt_close(f);
    free(buf);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
}


static void a_float_model_round_trips_to_bit_identical_logits(void) { round_trip(0); }
static void a_mixed_int8_model_round_trips_to_bit_identical_logits(void) { round_trip(1); }
static void a_model_with_int8_attention_round_trips_to_bit_identical_logits(void) { round_trip(2); }
static void a_model_that_merges_tokens_round_trips_to_bit_identical_logits(void) { round_trip(3); }

/* ---- memory ---- */

/* Resident kB of the mapping holding p, from /proc/self/smaps; -1 where
 * there is none (not Linux). */
static long resident_kb(const void *p)
{
    FILE *fp = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0;
    long kb = -1;
    if (!fp) return -1;
    while (fgets(line, sizeof line, fp)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (in && sscanf(line, "Rss: %ld kB", &kb) == 1) {
            break;
        }
    }
    fclose(fp);
    return kb;
}

/* An int8 model with layers of several pages: img 16, patch 4, D 64, two
 * blocks of 4 heads and MLP 512, 5 classes. */
static void paged_model(struct evit_vit *m, struct evit_qmodel *q)
{
    struct evit_vit_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "paged");
    c.img_size = 16;
    c.channels = 1;
    c.patch = 4;
    c.classes = 5; /* test_info's names */
    c.dim = 64;
    c.depth = 2;
    c.blocks[0] = c.blocks[1] = (struct evit_block_shape){4, 16, 512, 0};
    evit_vit_alloc(m, &c);
    fill_normal(m, 99, 0.1);
    m->mean[0] = 0.5f;
    m->std[0] = 0.25f;
    evit_qmodel_from_vit(q, m);
    for (int i = 0; i < evrt_layer_count(&q->rt); i++) {
        struct evrt_linear *L = evrt_model_layer(&q->rt, i);
        L->dtype = EVRT_I8;
        L->in_scale = 0.03f;
        L->in_zero = i % 3 == 1 ? 5 : 0;
    }
}

static int infer_on(evrt_ctx *ctx, float *out /* (3, 5) */)
{
    uint8_t img[3 * 16 * 16];
    images(img, (int)sizeof img);
    return evrt_infer(ctx, img, 3, out);
}

/* evit-run's peak memory: a context made with evrt_ctx_create_file leaves
 * the mapped weights it packed to the kernel, where evrt_ctx_create keeps
 * them resident beside the packed copy; logits are the same either way,
 * also after a kernel change that must read the dropped weights again. */
static void a_file_context_lets_packed_weights_go_and_stays_exact(void)
{
    struct evit_vit m;
    struct evit_qmodel q;
    struct evit_export_info info = test_info();
    float want[15], got[15];
    char err[EVRT_ERR_MAX], path[512];
    evrt_file *f = NULL;
    evrt_ctx *ctx = NULL;
    size_t wbytes = 0;
    paged_model(&m, &q);
    for (int i = 0; i < evrt_layer_count(&q.rt); i++)
        wbytes += (size_t)evrt_model_layer(&q.rt, i)->in * (size_t)evrt_model_layer(&q.rt, i)->out;
    REQUIRE(evrt_ctx_create(&ctx, &q.rt, 3) == EVRT_OK);
    REQUIRE(infer_on(ctx, want) == EVRT_OK);
    evrt_ctx_destroy(ctx);
    snprintf(path, sizeof path, "%s/paged.evit", test_tmpdir());
    REQUIRE(evit_export_write(path, &q.rt, &info, NULL) == EVIT_OK);

    int packs = evrt_kernels_get(evrt_isa_best())->i8p != NULL;
    for (int use_file = 0; use_file < 2; use_file++) {
        REQUIRE(evrt_open(&f, path, err, sizeof err) == EVRT_OK);
        const void *inside = evrt_file_model(f)->cls_token;
        int rc = use_file ? evrt_ctx_create_file(&ctx, f, 3) : evrt_ctx_create(&ctx, evrt_file_model(f), 3);
        REQUIRE(rc == EVRT_OK);
        long kb = resident_kb(inside);
        CHECK(infer_on(ctx, got) == EVRT_OK);
        CHECK(memcmp(want, got, sizeof want) == 0);
        if (kb >= 0 && packs) {
            /* int8 weights are wbytes of the file; the pages they share
             * with other tensors at either end stay (60 kB of 188 here) */
            if (use_file)
                CHECK(kb * 1024 < (long)wbytes / 2);
            else
                CHECK(kb * 1024 >= (long)wbytes);
        }
        CHECK(evrt_ctx_set_kernels(ctx, "ref") == EVRT_OK);
        CHECK(infer_on(ctx, got) == EVRT_OK);
        CHECK(memcmp(want, got, sizeof want) == 0);
        CHECK(evrt_ctx_set_kernels(ctx, "best") == EVRT_OK);
        CHECK(infer_on(ctx, got) == EVRT_OK);
        CHECK(memcmp(want, got, sizeof want) == 0);
        evrt_ctx_destroy(ctx);
        evrt_close(f);
    }
    evit_qmodel_free(&q);
    evit_vit_free(&m);
}

/* ---- damage ---- */

struct sample {
    uint8_t *raw, *buf; /* buf: 64-byte aligned copy of the file */
    size_t len;
    uint32_t header;
    int depth, levels; /* levels: the decoder's, 0 without one */
};

/* s holds rt's file */
static void sample_of(struct sample *s, const struct evrt_model *rt)
{
    struct evit_export_info info = test_info();
    uint8_t *b;
    evit_export_build(rt, &info, &b, &s->len);
    s->raw = malloc(s->len + 64);
    s->buf = s->raw + (64 - (uintptr_t)s->raw % 64) % 64;
    memcpy(s->buf, b, s->len);
    free(b);
    s->header = (uint32_t)s->buf[16] | (uint32_t)s->buf[17] << 8 | (uint32_t)s->buf[18] << 16;
    s->depth = rt->depth;
    s->levels = rt->head_kind == EVRT_HEAD_SEG_MLP ? rt->decoder->levels : 0;
}

static void sample_make(struct sample *s)
{
    struct evit_vit m;
    struct evit_qmodel q;
    random_model(&m, 3);
    evit_qmodel_from_vit(&q, &m);
    make_mixed(&q);
    sample_of(s, &q.rt);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
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

/* recomputes the header CRC so that checks past it are reached */
static void fix_crc(struct sample *s)
{
    put32(s->buf + EVRT_FH_HEADER_CRC, 0);
    put32(s->buf + EVRT_FH_HEADER_CRC, evrt_crc32(0, s->buf, s->header));
}

static uint8_t *tensor_entry(struct sample *s, int i)
{
    return s->buf + evrt_file_tensors_at(s->depth, s->levels) + (size_t)i * EVRT_TENSOR_ENTRY;
}

/* ---- segmentation ---- */

/* seg_mlp's decoder layers (after the head, 9: linear_c.0 10, linear_c.1
 * 11, linear_fuse 12) int8 too, the fuse's input asymmetric. */
static void make_mixed_decoder(struct evit_qmodel *q)
{
    for (int i = 10; i <= 12; i += 2) {
        struct evrt_linear *L = evrt_model_layer(&q->rt, i);
        L->dtype = EVRT_I8;
        L->in_scale = 0.05f;
        L->in_zero = i == 12 ? -11 : 0;
    }
}

/* 1 when the file of rt has a tensor called name. */
static int has_tensor(const struct evrt_model *rt, const char *name)
{
    struct sample s;
    int yes = 0;
    sample_of(&s, rt);
    for (int i = 0; i < evit_export_tensor_count(rt); i++) yes |= !strcmp((const char *)tensor_entry(&s, i), name);
    free(s.raw);
    return yes;
}

/* A segmentation model, mixed int8: seg_linear as format version 4 with
 * the head in the header; seg_mlp (mixed: its decoder's layers int8 too)
 * as version 5 with its decoder entry.  Per-patch logits and masks
 * bit-identical, the description (decoder included) read back. */
static void seg_round_trip(int mlp, int mixed)
{
    struct evit_vit m;
    struct evit_qmodel q;
    struct evit_export_info info = test_info();
    char err[EVRT_ERR_MAX], path[512];
    uint8_t img[2 * 8 * 8 * 2], mw[2 * 64], mg[2 * 64], *buf;
    float zw[2 * 4 * 5], zg[2 * 4 * 5];
    size_t len;
    evrt_file *f = NULL;
    evrt_ctx *ctx = NULL;
    images(img, (int)sizeof img);
    if (mlp) {
        mlp_model(&m, 13);
    } else {
        random_model(&m, 12);
        m.cfg.head = EVIT_HEAD_SEG_LINEAR;
    }
    evit_qmodel_from_vit(&q, &m);
    if (mixed) make_mixed(&q);
    if (mixed && mlp) make_mixed_decoder(&q);
    REQUIRE(evrt_ctx_create(&ctx, &q.rt, 2) == EVRT_OK);
    CHECK(evrt_infer_seg(ctx, img, 2, zw, NULL, mw) == EVRT_OK);
    evrt_ctx_destroy(ctx);
    evit_export_build(&q.rt, &info, &buf, &len);
    CHECK(buf[EVRT_FH_VERSION] == (mlp ? 5 : 4) && buf[EVRT_FH_HEAD] == (mlp ? EVRT_HEAD_SEG_MLP : EVRT_HEAD_SEG_LINEAR));
    if (mlp) { /* the decoder entry: C 5, L 2, levels 0 and 1 */
        const uint8_t *e = buf + evrt_file_decoder_at(2);
        CHECK(e[EVRT_DE_DIM] == 5 && e[EVRT_DE_LEVELS] == 2 && e[EVRT_DE_LEVEL] == 0 && e[EVRT_DE_LEVEL + 4] == 1);
        CHECK(has_tensor(&q.rt, "decode_head.norms.0.weight") && has_tensor(&q.rt, "decode_head.norms.0.bias"));
        CHECK(!has_tensor(&q.rt, "decode_head.norms.1.weight")); /* the last level's is norm.weight */
        CHECK(has_tensor(&q.rt, mixed ? "decode_head.linear_c.0.weight_int8" : "decode_head.linear_c.0.weight"));
        CHECK(has_tensor(&q.rt, "decode_head.linear_c.1.weight") && has_tensor(&q.rt, "decode_head.linear_fuse.bias"));
    }
    free(buf);
    snprintf(path, sizeof path, "%s/seg%d%d.evit", test_tmpdir(), mlp, mixed);
    CHECK(evit_export_write(path, &q.rt, &info, NULL) == EVIT_OK);
    int rc = evrt_open(&f, path, err, sizeof err);
    if (rc != EVRT_OK) fprintf(stderr, "  %s\n", err);
    REQUIRE(rc == EVRT_OK);
    const struct evrt_model *fm = evrt_file_model(f);
    CHECK(fm->head_kind == q.rt.head_kind && evrt_file_head(f) == q.rt.head_kind);
    CHECK(evrt_layer_count(fm) == evrt_layer_count(&q.rt));
    CHECK(evrt_model_bytes(fm) == evrt_model_bytes(&q.rt));
    if (mlp) {
        CHECK(fm->decoder->dim == 5 && fm->decoder->levels == 2);
        CHECK(fm->decoder->level[0] == 0 && fm->decoder->level[1] == 1);
        CHECK(memcmp(fm->decoder->norm_w[0], q.dec.norm_w[0], sizeof(float) * 12) == 0);
        CHECK(fm->head.in == 5 && fm->decoder->fuse.in == 10);
    }
    for (int i = 0; i < evrt_layer_count(fm); i++) {
        const struct evrt_linear *a = evrt_model_layer(fm, i), *b = evrt_model_layer(&q.rt, i);
        CHECK(a->dtype == b->dtype && a->in_scale == b->in_scale && a->in_zero == b->in_zero);
        CHECK(a->in == b->in && a->out == b->out);
    }
    REQUIRE(evrt_ctx_create_file(&ctx, f, 2) == EVRT_OK);
    CHECK(evrt_infer_seg(ctx, img, 2, zg, NULL, mg) == EVRT_OK);
    CHECK(memcmp(zw, zg, sizeof zw) == 0);
    CHECK(memcmp(mw, mg, sizeof mw) == 0);
    evrt_ctx_destroy(ctx);
    evrt_close(f);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
}

static void a_segmentation_model_round_trips_as_version_4_to_bit_identical_masks(void) { seg_round_trip(0, 1); }
static void a_float_seg_mlp_model_round_trips_as_version_5_to_bit_identical_masks(void) { seg_round_trip(1, 0); }
static void a_mixed_int8_seg_mlp_model_round_trips_as_version_5_to_bit_identical_masks(void)
{
    seg_round_trip(1, 1);
}

/* ---- damage, continued ---- */

/* opens len bytes of s (fresh copy each time so nothing leaks between
 * cases), expects code and a message containing what */
static int expect(const struct sample *s, size_t len, int code, const char *what)
{
    evrt_file *f = NULL;
    char err[EVRT_ERR_MAX];
    uint8_t *copy = malloc(len + 64), *al = copy + (64 - (uintptr_t)copy % 64) % 64;
    memcpy(al, s->buf, len);
    int rc = evrt_open_memory(&f, al, len, err, sizeof err);
    free(copy);
    int ok = rc == code && (code == EVRT_OK) == (f != NULL) && (!what || strstr(err, what));
    if (!ok) fprintf(stderr, "  got %d \"%s\", wanted %d \"%s\"\n", rc, err, code, what ? what : "");
    evrt_close(f);
    return ok;
}

/* writes v at p (inside s), fixes the CRC and expects a format error
 * whose message contains what */
static int patched_refused(struct sample *s, uint8_t *p, uint32_t v, const char *what)
{
    put32(p, v);
    fix_crc(s);
    return expect(s, s->len, EVRT_EFORMAT, what);
}

static void the_sample_file_itself_loads(void)
{
    struct sample s;
    sample_make(&s);
    CHECK(expect(&s, s.len, EVRT_OK, ""));
    free(s.raw);
}

static void any_flipped_header_byte_is_a_checksum_error(void)
{
    struct sample s;
    sample_make(&s);
    int bad = 0;
    for (uint32_t i = EVRT_FH_HEADER_CRC; i < s.header; i++) {
        s.buf[i] ^= 0x10;
        bad += !expect(&s, s.len, EVRT_ECRC, "checksum");
        s.buf[i] ^= 0x10;
    }
    CHECK(bad == 0);
    free(s.raw);
}

static void a_flipped_tensor_byte_is_a_checksum_error_naming_the_tensor(void)
{
    struct sample s;
    sample_make(&s);
    s.buf[s.len - 3] ^= 1; /* the head's bias, the last tensor */
    CHECK(expect(&s, s.len, EVRT_ECRC, "head.bias"));
    free(s.raw);
}

static void a_file_truncated_anywhere_is_refused(void)
{
    struct sample s;
    sample_make(&s);
    for (int k = 0; k < 16; k++) CHECK(expect(&s, s.len * (size_t)k / 16, EVRT_EFORMAT, NULL));
    CHECK(expect(&s, s.len - 1, EVRT_EFORMAT, "truncated"));
    free(s.raw);
}

static void wrong_magic_version_or_endianness_is_refused(void)
{
    struct sample s;
    sample_make(&s);
    s.buf[0] = 'X';
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "magic"));
    s.buf[0] = 'E';
    CHECK(patched_refused(&s, s.buf + EVRT_FH_VERSION, EVRT_FILE_VERSION + 1, "version 6"));
    CHECK(patched_refused(&s, s.buf + EVRT_FH_VERSION, 0, "version 0"));
    put32(s.buf + EVRT_FH_VERSION, 1);
    CHECK(patched_refused(&s, s.buf + EVRT_FH_ENDIAN, 0x04030201u, "byte order"));
    put32(s.buf + EVRT_FH_ENDIAN, EVRT_FILE_ENDIAN);
    put32(s.buf + EVRT_FH_HEADER_BYTES, (uint32_t)s.len + 64);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "header size"));
    put32(s.buf + EVRT_FH_HEADER_BYTES, 100);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "header size"));
    free(s.raw);
}

static void int8_attention_needs_version_2_and_its_scales(void)
{
    struct sample s;
    uint8_t *blk;
    sample_make(&s);
    blk = s.buf + evrt_file_blocks_at();
    put32(blk + 12, 1); /* block 0: INT8 attention, in a version 1 file */
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "attention dtype 1 invalid in format version 1"));
    put32(s.buf + EVRT_FH_VERSION, 2); /* allowed now, but its scales are missing */
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "tensor blocks.0.attn.act_scale is missing"));
    CHECK(patched_refused(&s, blk + 12, 2, "attention dtype 2"));
    put32(blk + 12, 0); /* a version 2 file with float attention is fine */
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_OK, ""));
    free(s.raw);
}

/* The head kind: version 4, and one the runtime knows; the word after
 * it stays zero. */
static void a_head_kind_needs_version_4_and_must_be_known(void)
{
    struct sample s;
    sample_make(&s);
    CHECK(patched_refused(&s, s.buf + EVRT_FH_HEAD, 1, "head kind 1 invalid in format version 1"));
    put32(s.buf + EVRT_FH_VERSION, 4);
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_OK, ""));
    CHECK(patched_refused(&s, s.buf + EVRT_FH_HEAD, 2, "head kind 2 invalid in format version 4"));
    put32(s.buf + EVRT_FH_VERSION, 5);
    CHECK(patched_refused(&s, s.buf + EVRT_FH_HEAD, 3, "head kind 3"));
    put32(s.buf + EVRT_FH_HEAD, 0);
    CHECK(patched_refused(&s, s.buf + EVRT_FH_RESERVED, 1, "reserved"));
    free(s.raw);
}

/* The merge_r tensor: format version 3, and a schedule that fits. */
static void a_merge_schedule_needs_version_3_and_must_fit_its_tokens(void)
{
    struct evit_vit m;
    struct evit_qmodel q;
    struct sample s;
    uint8_t *e = NULL;
    random_model(&m, 3);
    evit_qmodel_from_vit(&q, &m);
    q.rt.blocks[0].merge_r = 1;
    sample_of(&s, &q.rt);
    CHECK(expect(&s, s.len, EVRT_OK, ""));
    for (uint32_t i = 0; i < (uint32_t)evit_export_tensor_count(&q.rt); i++)
        if (!strcmp((const char *)tensor_entry(&s, (int)i), "merge_r")) e = tensor_entry(&s, (int)i);
    REQUIRE(e != NULL);
    uint64_t off = 0;
    for (int k = 7; k >= 0; k--) off = off << 8 | e[EVRT_TE_OFFSET + k];
    /* T 5 allows at most 2 in block 0 */
    put32(s.buf + off, 3);
    put32(e + EVRT_TE_CRC, evrt_crc32(0, s.buf + off, 4 * (size_t)s.depth));
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "block 0: merge_r 3 does not fit its 5 tokens"));
    put32(s.buf + off, 2);
    put32(e + EVRT_TE_CRC, evrt_crc32(0, s.buf + off, 4 * (size_t)s.depth));
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_OK, ""));
    CHECK(patched_refused(&s, s.buf + EVRT_FH_VERSION, 2, "merge_r is invalid in format version 2"));
    free(s.raw);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
}

/* seg_mlp's decoder: its entry (width, levels, the level list, reserved
 * words), head 2 only from version 5, its tensors present and of the
 * config's shapes, its layers' table entries. */
static void corrupt_decoder_data_is_refused_with_a_message(void)
{
    struct evit_vit m;
    struct evit_qmodel q;
    struct sample s;
    mlp_model(&m, 5);
    evit_qmodel_from_vit(&q, &m);
    make_mixed(&q);
    make_mixed_decoder(&q);
    sample_of(&s, &q.rt);
    evit_qmodel_free(&q);
    evit_vit_free(&m);
    CHECK(expect(&s, s.len, EVRT_OK, ""));
    uint8_t *e = s.buf + evrt_file_decoder_at(s.depth);
    CHECK(patched_refused(&s, s.buf + EVRT_FH_VERSION, 4, "head kind 2 invalid in format version 4"));
    put32(s.buf + EVRT_FH_VERSION, 5);
    CHECK(patched_refused(&s, e + EVRT_DE_LEVELS, 0, "decoder levels 0 outside [1, 4]"));
    CHECK(patched_refused(&s, e + EVRT_DE_LEVELS, 5, "decoder levels 5 outside [1, 4]"));
    /* one level: the table's entries then disagree, and level 0 is not the last block */
    CHECK(patched_refused(&s, e + EVRT_DE_LEVELS, 1, "decoder level 0 is 0: levels must be blocks"));
    put32(e + EVRT_DE_LEVELS, 2);
    CHECK(patched_refused(&s, e + EVRT_DE_LEVEL, 1, "decoder level 1 is 1: levels must be blocks, strictly increasing"));
    put32(e + EVRT_DE_LEVEL, 0);
    CHECK(patched_refused(&s, e + EVRT_DE_LEVEL + 4, 2, "decoder level 1 is 2"));
    put32(e + EVRT_DE_LEVEL + 4, 1);
    CHECK(patched_refused(&s, e + EVRT_DE_LEVEL + 8, 7, "decoder level 2 is 7"));
    put32(e + EVRT_DE_LEVEL + 8, 0);
    CHECK(patched_refused(&s, e + EVRT_DE_RESERVED + 4, 1, "reserved decoder bytes"));
    put32(e + EVRT_DE_RESERVED + 4, 0);
    CHECK(patched_refused(&s, e + EVRT_DE_DIM, 0, "decoder width 0"));
    /* the head, bound first, is C -> K */
    CHECK(patched_refused(&s, e + EVRT_DE_DIM, 6, "tensor head.weight_int8: dtype or shape disagrees"));
    put32(e + EVRT_DE_DIM, 5);
    /* the fuse layer declared float32 while its tensors are int8 */
    uint8_t *fuse = s.buf + evrt_file_layers_at(s.depth, s.levels) + 12 * EVRT_LAYER_ENTRY;
    CHECK(patched_refused(&s, fuse, 0, "tensor decode_head.linear_fuse.weight is missing"));
    put32(fuse, 1);
    CHECK(patched_refused(&s, fuse + 8, 200, "decode_head.linear_fuse: activation scale"));
    put32(fuse + 8, (uint32_t)-11);
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_OK, ""));
    /* a missing LayerNorm, renamed to an unknown tensor */
    int nt = (int)s.buf[EVRT_FH_TENSORS] | (int)s.buf[EVRT_FH_TENSORS + 1] << 8, found = 0;
    for (int i = 0; i < nt; i++) {
        uint8_t *t = tensor_entry(&s, i);
        if (strcmp((const char *)t, "decode_head.norms.0.bias")) continue;
        found++;
        t[12] = 'X';
        fix_crc(&s);
        CHECK(expect(&s, s.len, EVRT_EFORMAT, "tensor decode_head.norms.0.bias is missing"));
        t[12] = 'n';
        /* the wrong shape: (D) becomes (D, 1), the same bytes */
        put32(t + EVRT_TE_NDIM, 2);
        put32(t + EVRT_TE_SHAPE + 4, 1);
        fix_crc(&s);
        CHECK(expect(&s, s.len, EVRT_EFORMAT, "tensor decode_head.norms.0.bias: dtype or shape disagrees"));
        put32(t + EVRT_TE_NDIM, 1);
        put32(t + EVRT_TE_SHAPE + 4, 0);
        fix_crc(&s);
        CHECK(expect(&s, s.len, EVRT_OK, ""));
    }
    for (int i = 0; i < nt; i++) { /* linear_c.1 (C, D) = (5, 12) as (10, 6) */
        uint8_t *t = tensor_entry(&s, i);
        if (strcmp((const char *)t, "decode_head.linear_c.1.weight")) continue;
        found++;
        put32(t + EVRT_TE_SHAPE, 10);
        put32(t + EVRT_TE_SHAPE + 4, 6);
        fix_crc(&s);
        CHECK(expect(&s, s.len, EVRT_EFORMAT, "tensor decode_head.linear_c.1.weight: dtype or shape disagrees"));
    }
    CHECK(found == 2);
    free(s.raw);
}

static void offsets_outside_the_file_or_misaligned_are_refused(void)
{
    struct sample s;
    sample_make(&s);
    uint8_t *e = tensor_entry(&s, 3), save[8];
    memcpy(save, e + EVRT_TE_OFFSET, 8);
    put64(e + EVRT_TE_OFFSET, (s.len + 63) / 64 * 64);
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "outside the file"));
    put64(e + EVRT_TE_OFFSET, 0xffffffffffffffc0ULL); /* would wrap offset + bytes */
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "outside the file"));
    put64(e + EVRT_TE_OFFSET, 0);
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "overlaps"));
    memcpy(e + EVRT_TE_OFFSET, save, 8);
    e[EVRT_TE_OFFSET] += 4;
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "multiple of 64"));
    memcpy(e + EVRT_TE_OFFSET, save, 8);
    put64(e + EVRT_TE_BYTES, 0xfffffffffffffff0ULL);
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "bytes"));
    put64(s.buf + EVRT_FH_FILE_BYTES, s.len + 64);
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "header says"));
    free(s.raw);
}

static void shapes_dtypes_and_config_inconsistent_with_each_other_are_refused(void)
{
    struct sample s;
    sample_make(&s);
    uint8_t *blk = s.buf + evrt_file_blocks_at();
    put32(blk + 8, 21); /* block 0's MLP width: fc1 no longer matches */
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "blocks.0.mlp.fc1"));
    put32(blk + 8, 20);
    put32(blk, 0); /* zero heads */
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "heads"));
    put32(blk, 3);
    put32(s.buf + EVRT_FH_IMG_SIZE + 8, 3); /* patch 3 does not divide 8 */
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "patch"));
    put32(s.buf + EVRT_FH_IMG_SIZE + 8, 4);
    put32(s.buf + EVRT_FH_IMG_SIZE + 16, 100000); /* depth */
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "depth"));
    put32(s.buf + EVRT_FH_IMG_SIZE + 16, 2);
    uint8_t *e = tensor_entry(&s, 0);
    CHECK(patched_refused(&s, e + EVRT_TE_DTYPE, 9, "dtype"));
    put32(e + EVRT_TE_DTYPE, 2); /* int32 where float32 is expected (same size) */
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "disagrees with the config"));
    put32(e + EVRT_TE_DTYPE, 0);
    e[0] = 'X'; /* an unknown tensor name (and a missing one) */
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "missing"));
    e[0] = 'p';
    uint8_t *layer = s.buf + evrt_file_layers_at(s.depth, s.levels) + 1 * EVRT_LAYER_ENTRY;
    put32(layer + 8, 300); /* zero point out of range */
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "zero point"));
    put32(layer + 8, 0);
    put32(layer, 0); /* qkv declared float32, but its tensors are int8 */
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "blocks.0.attn.qkv.weight"));
    put32(layer, 1);
    memset(e + EVRT_TE_NAME, 'a', EVRT_TENSOR_NAME); /* an unterminated name */
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "NUL"));
    free(s.raw);
}

static void strings_must_be_terminated_and_counted(void)
{
    struct sample s;
    sample_make(&s);
    uint32_t sbytes = (uint32_t)s.buf[EVRT_FH_STRING_BYTES] | (uint32_t)s.buf[EVRT_FH_STRING_BYTES + 1] << 8;
    uint32_t nt = (uint32_t)s.buf[EVRT_FH_TENSORS] | (uint32_t)s.buf[EVRT_FH_TENSORS + 1] << 8;
    uint8_t *str = s.buf + evrt_file_strings_at(s.depth, s.levels, nt);
    str[sbytes - 1] = 'x';
    fix_crc(&s);
    CHECK(expect(&s, s.len, EVRT_EFORMAT, "NUL-terminated"));
    str[sbytes - 1] = 0;
    CHECK(patched_refused(&s, s.buf + EVRT_FH_CLASS_NAMES, 4, "class names"));
    put32(s.buf + EVRT_FH_CLASS_NAMES, 5);
    CHECK(patched_refused(&s, s.buf + EVRT_FH_STRING_BYTES, 0xffffff00u, "do not fit"));
    free(s.raw);
}

static void the_crc_is_the_ieee_one(void)
{
    CHECK(evrt_crc32(0, "123456789", 9) == 0xcbf43926u);
    CHECK(evrt_crc32(evrt_crc32(0, "1234", 4), "56789", 5) == 0xcbf43926u);
    CHECK(evrt_crc32(0, "", 0) == 0);
}

static void a_missing_file_is_an_io_error(void)
{
    evrt_file *f = (evrt_file *)1;
    char err[EVRT_ERR_MAX];
    CHECK(evrt_open(&f, "/nonexistent/x.evit", err, sizeof err) == EVRT_EIO);
    CHECK(f == NULL);
}

int main(void)
{
    RUN(the_crc_is_the_ieee_one);
    RUN(a_float_model_round_trips_to_bit_identical_logits);
    RUN(a_mixed_int8_model_round_trips_to_bit_identical_logits);
    RUN(a_model_with_int8_attention_round_trips_to_bit_identical_logits);
    RUN(a_model_that_merges_tokens_round_trips_to_bit_identical_logits);
    RUN(a_segmentation_model_round_trips_as_version_4_to_bit_identical_masks);
    RUN(a_float_seg_mlp_model_round_trips_as_version_5_to_bit_identical_masks);
    RUN(a_mixed_int8_seg_mlp_model_round_trips_as_version_5_to_bit_identical_masks);
    RUN(a_file_context_lets_packed_weights_go_and_stays_exact);
    RUN(the_sample_file_itself_loads);
    RUN(any_flipped_header_byte_is_a_checksum_error);
    RUN(a_flipped_tensor_byte_is_a_checksum_error_naming_the_tensor);
    RUN(a_file_truncated_anywhere_is_refused);
    RUN(wrong_magic_version_or_endianness_is_refused);
    RUN(int8_attention_needs_version_2_and_its_scales);
    RUN(a_merge_schedule_needs_version_3_and_must_fit_its_tokens);
    RUN(a_head_kind_needs_version_4_and_must_be_known);
    RUN(corrupt_decoder_data_is_refused_with_a_message);
    RUN(offsets_outside_the_file_or_misaligned_are_refused);
    RUN(shapes_dtypes_and_config_inconsistent_with_each_other_are_refused);
    RUN(strings_must_be_terminated_and_counted);
    RUN(a_missing_file_is_an_io_error);
    return test_summary();
}
