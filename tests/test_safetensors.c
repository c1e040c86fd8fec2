/* test_safetensors.c: the safetensors reader converts F32, F16 and BF16
 * exactly and refuses every kind of broken header; the importer maps a
 * timm state_dict onto evit's ViT and refuses what it cannot compute. */
#include "test.h"
#include "fixture.h"

#include <cJSON.h>

#include "import.h"
#include "safetensors.h"

/* A file from a header string and n zero data bytes; declared overrides the
 * header length field when nonzero. */
static uint8_t *mk(const char *json, size_t n, uint64_t declared, size_t *size)
{
    size_t h = strlen(json), i;
    uint64_t len = declared ? declared : h;
    uint8_t *b = calloc(8 + h + n + 1, 1);
    for (i = 0; i < 8; i++) b[i] = (uint8_t)(len >> (8 * i));
    memcpy(b + 8, json, h);
    *size = 8 + h + n;
    return b;
}

static int parses(const char *json, size_t n)
{
    size_t size;
    struct evit_safetensors st;
    uint8_t *b = mk(json, n, 0, &size);
    int rc = evit_safetensors_parse(&st, b, size, "t.safetensors");
    if (rc == 0) evit_safetensors_free(&st);
    free(b);
    return rc == 0;
}

static void every_half_converts_to_its_exact_value(void)
{
    uint32_t h;
    int bad = 0;
    for (h = 0; h < 65536; h++) {
        int s = h >> 15, e = (h >> 10) & 31, f = h & 1023;
        float got = evit_half_to_float((uint16_t)h);
        if (e == 31) {
            bad += f ? !isnan(got) : !(isinf(got) && (got < 0) == s);
            continue;
        }
        double want = e ? ldexp(1.0 + f / 1024.0, e - 15) : ldexp((double)f, -24);
        if (s) want = -want;
        bad += (double)got != want || !!signbit(got) != (s != 0);
    }
    CHECK(bad == 0);
}

static void f32_f16_and_bf16_tensors_read_back_exactly(void)
{
    /* F32 (2,2) = 1, -2, 0.5, 3e-39 (subnormal); F16 (3) = 65504, 2^-24,
     * -0; BF16 (2) = 1.5, -3.0 */
    const char *json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                       "\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]},"
                       "\"c\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[22,26]},"
                       "\"__metadata__\":{\"format\":\"pt\"}}   ";
    size_t size;
    uint8_t *b = mk(json, 26, 0, &size), *d = b + 8 + strlen(json);
    float a[4] = {1.0f, -2.0f, 0.5f, 3e-39f}, out[4];
    uint16_t hv[3] = {0x7bff, 0x0001, 0x8000}, bv[2] = {0x3fc0, 0xc040};
    struct evit_safetensors st;
    int i;
    for (i = 0; i < 4; i++) {
        uint32_t u;
        memcpy(&u, &a[i], 4);
        d[4 * i] = (uint8_t)u, d[4 * i + 1] = (uint8_t)(u >> 8), d[4 * i + 2] = (uint8_t)(u >> 16),
        d[4 * i + 3] = (uint8_t)(u >> 24);
    }
    for (i = 0; i < 3; i++) d[16 + 2 * i] = (uint8_t)hv[i], d[17 + 2 * i] = (uint8_t)(hv[i] >> 8);
    for (i = 0; i < 2; i++) d[22 + 2 * i] = (uint8_t)bv[i], d[23 + 2 * i] = (uint8_t)(bv[i] >> 8);
    REQUIRE(evit_safetensors_parse(&st, b, size, "t") == 0);
    CHECK(st.n == 3);
    CHECK(st.metadata && !strcmp(st.metadata, "{\"format\":\"pt\"}"));
    evit_safetensors_read(out, &st, evit_safetensors_find(&st, "a"));
    CHECK(!memcmp(out, a, sizeof a));
    evit_safetensors_read(out, &st, evit_safetensors_find(&st, "b"));
    CHECK(out[0] == 65504.0f && out[1] == ldexpf(1.0f, -24) && out[2] == 0.0f && signbit(out[2]));
    evit_safetensors_read(out, &st, evit_safetensors_find(&st, "c"));
    CHECK(out[0] == 1.5f && out[1] == -3.0f);
    CHECK(evit_safetensors_find(&st, "__metadata__") == NULL);
    evit_safetensors_free(&st);
    free(b);
}

#define T1(dt, shape, b, e) "{\"x\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" b "," e "]}}"

static void a_well_formed_header_parses(void)
{
    CHECK(parses(T1("F32", "[2,3]", "0", "24"), 24));
    CHECK(parses(T1("F16", "[]", "0", "2"), 2)); /* a scalar */
    CHECK(parses(T1("F32", "[0,5]", "0", "0"), 0));
    CHECK(parses("{}", 0));
}

static void headers_that_lie_are_refused(void)
{
    size_t size;
    struct evit_safetensors st;
    uint8_t *b;
    /* the length field */
    b = mk("{}", 0, 3, &size);
    CHECK(evit_safetensors_parse(&st, b, size, "t") < 0); /* longer than the file */
    free(b);
    b = mk("{}", 0, (uint64_t)1 << 40, &size);
    CHECK(evit_safetensors_parse(&st, b, size, "t") < 0);
    free(b);
    b = mk("{}", 0, 0, &size);
    CHECK(evit_safetensors_parse(&st, b, 7, "t") < 0); /* shorter than the length field */
    free(b);
    /* the JSON */
    CHECK(!parses("", 4));
    CHECK(!parses("[1,2]", 0));
    CHECK(!parses("{\"x\":", 0));
    CHECK(!parses("{} {}", 0));
    CHECK(!parses("{\"x\":[]}", 0));
    CHECK(!parses("{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4));
    CHECK(!parses("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 4));
    CHECK(!parses("{\"__metadata__\":{\"a\":1}}", 0));
    CHECK(!parses("{\"__metadata__\":[]}", 0));
    CHECK(!parses("{\"x\":" "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8)); /* twice */
}

static void wrong_dtypes_and_shapes_are_refused(void)
{
    CHECK(!parses(T1("I64", "[1]", "0", "8"), 8));
    CHECK(!parses(T1("F33", "[1]", "0", "4"), 4));
    CHECK(!parses("{\"x\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4));
    CHECK(!parses(T1("F32", "[-1]", "0", "4"), 4));
    CHECK(!parses(T1("F32", "[1.5]", "0", "4"), 4));
    CHECK(!parses(T1("F32", "[\"1\"]", "0", "4"), 4));
    CHECK(!parses(T1("F32", "[1,1,1,1,1,1,1,1,1]", "0", "4"), 4));
    CHECK(!parses(T1("F32", "[4294967296,4294967296,4294967296]", "0", "4"), 4)); /* overflows */
    CHECK(!parses(T1("F32", "[2]", "0", "4"), 8));  /* 4 bytes for 2 floats */
    CHECK(!parses(T1("F16", "[2]", "0", "8"), 8));  /* 8 bytes for 2 halves */
}

static void offsets_out_of_range_overlapping_or_leaving_gaps_are_refused(void)
{
    CHECK(!parses(T1("F32", "[1]", "4", "0"), 4));   /* reversed */
    CHECK(!parses(T1("F32", "[1]", "0", "4"), 2));   /* past the end: truncated */
    CHECK(!parses(T1("F32", "[1]", "4", "8"), 8));   /* a gap before */
    CHECK(!parses(T1("F32", "[1]", "0", "4"), 6));   /* bytes after */
    CHECK(!parses(T1("F32", "[1]", "0", "1e300"), 4));
    CHECK(!parses(T1("F32", "[1]", "0", "[4]"), 4));
    CHECK(!parses("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12)); /* overlap */
    CHECK(parses("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12)); /* any order */
}

static void a_missing_file_is_an_error(void)
{
    struct evit_safetensors st;
    CHECK(evit_safetensors_load("/nonexistent/m.safetensors", &st) < 0);
}

/* A safetensors image of a model's tensors in F32, in evit_vit_tensors'
 * order, plus one extra (1, 1, D) tensor when extra is non-NULL. */
static uint8_t *model_file(const struct evit_vit *m, const char *extra, const char *skip, size_t *size)
{
    int n, i, d;
    struct evit_tensor_ref *r = evit_vit_tensor_list(&m->cfg, &m->p, &n);
    cJSON *h = cJSON_CreateObject();
    size_t at = 0, hn;
    for (i = 0; i <= n; i++) {
        const char *name = i < n ? r[i].name : extra;
        if (!name || (skip && !strcmp(name, skip))) continue;
        cJSON *e = cJSON_AddObjectToObject(h, name), *s = cJSON_AddArrayToObject(e, "shape"),
              *o = cJSON_AddArrayToObject(e, "data_offsets");
        size_t numel = i < n ? r[i].numel : (size_t)m->cfg.dim;
        cJSON_AddStringToObject(e, "dtype", "F32");
        if (i < n)
            for (d = 0; d < r[i].ndim; d++) cJSON_AddItemToArray(s, cJSON_CreateNumber((double)r[i].shape[d]));
        else
            for (d = 0; d < 3; d++) cJSON_AddItemToArray(s, cJSON_CreateNumber(d < 2 ? 1 : m->cfg.dim));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)at));
        at += 4 * numel;
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)at));
    }
    char *js = cJSON_PrintUnformatted(h);
    hn = strlen(js);
    uint8_t *b = mk(js, at, 0, size), *p = b + 8 + hn;
    for (i = 0; i < n; i++) {
        if (skip && !strcmp(r[i].name, skip)) continue;
        memcpy(p, r[i].data, 4 * r[i].numel); /* little-endian hosts: x86, AArch64 */
        p += 4 * r[i].numel;
    }
    cJSON_free(js);
    cJSON_Delete(h);
    free(r);
    return b;
}

/* m: a model of config c initialised with seed 5, its safetensors file
 * parsed into *st; the file's bytes (caller frees), NULL if it did not parse. */
static uint8_t *parsed_tiny_file(struct evit_vit *m, const struct evit_vit_config *c, struct evit_safetensors *st)
{
    size_t size;
    evit_vit_alloc(m, c);
    evit_vit_init(m, 5);
    uint8_t *b = model_file(m, NULL, NULL, &size);
    if (evit_safetensors_parse(st, b, size, "t") == 0) return b;
    free(b);
    return NULL;
}

static void a_timm_state_dict_imports_with_its_shape_and_weights(void)
{
    struct evit_vit_config c = tiny_config(), got;
    struct evit_vit m, back;
    struct evit_safetensors st;
    struct evit_import_opts o = {.config = &c};
    uint8_t *b = parsed_tiny_file(&m, &c, &st);
    REQUIRE(b != NULL);
    REQUIRE(evit_import_config(&got, &st, "t", &o) == 0);
    CHECK(!memcmp(&got, &c, sizeof c));
    REQUIRE(evit_import_model(&back, &got, &st, "t", &o) == 0);
    CHECK(!memcmp(back.mem, m.mem, sizeof(float) * (size_t)evit_config_params(&c)));
    evit_vit_free(&back);
    /* with a head count instead: block 0's width 12 is 2 heads of 6 */
    o = (struct evit_import_opts){.heads = 2};
    REQUIRE(evit_import_config(&got, &st, "t", &o) == 0);
    CHECK(got.img_size == 8 && got.patch == 4 && got.channels == 2 && got.dim == 12 && got.depth == 2);
    CHECK(got.classes == 5 && got.blocks[0].head_dim == 6 && got.blocks[1].head_dim == 4);
    CHECK(got.blocks[0].mlp == 20 && got.blocks[1].mlp == 8);
    o.heads = 5; /* 12 does not split into 5 */
    CHECK(evit_import_config(&got, &st, "t", &o) < 0);
    o.heads = 0;
    CHECK(evit_import_config(&got, &st, "t", &o) < 0);
    evit_safetensors_free(&st);
    free(b);
    evit_vit_free(&m);
}

static void a_new_head_replaces_the_file_s_and_keeps_the_rest(void)
{
    struct evit_vit_config c = tiny_config(), got;
    struct evit_vit m, back;
    struct evit_safetensors st;
    struct evit_import_opts o = {.config = &c, .num_classes = 7, .seed = 1};
    uint8_t *b = parsed_tiny_file(&m, &c, &st);
    REQUIRE(b != NULL);
    REQUIRE(evit_import_config(&got, &st, "t", &o) == 0);
    CHECK(got.classes == 7);
    REQUIRE(evit_import_model(&back, &got, &st, "t", &o) == 0);
    CHECK(!memcmp(back.p.norm_w, m.p.norm_w, sizeof(float) * (size_t)c.dim));
    CHECK(!memcmp(back.p.blocks[1].fc2_w, m.p.blocks[1].fc2_w, sizeof(float) * (size_t)(c.dim * 8)));
    float s = 0;
    for (int i = 0; i < 7 * c.dim; i++) s += fabsf(back.p.head_w[i]);
    CHECK(s > 0); /* initialised, not zero */
    evit_vit_free(&back);
    evit_safetensors_free(&st);
    free(b);
    evit_vit_free(&m);
}

/* How far an import of m's tensors (plus extra, less skip) gets: 0 it
 * imports, 1 the config is refused, 2 the tensors are. */
static int import_stage(const struct evit_vit *m, const char *extra, const char *skip)
{
    struct evit_vit_config got;
    struct evit_vit back;
    struct evit_safetensors st;
    struct evit_import_opts o = {.config = &m->cfg};
    size_t size;
    int stage = -1;
    uint8_t *b = model_file(m, extra, skip, &size);
    if (evit_safetensors_parse(&st, b, size, "t") == 0) {
        stage = evit_import_config(&got, &st, "t", &o) < 0 ? 1
                : evit_import_model(&back, &got, &st, "t", &o) < 0 ? 2
                                                                    : 0;
        if (stage == 0) evit_vit_free(&back);
        evit_safetensors_free(&st);
    }
    free(b);
    return stage;
}

static void files_with_tokens_evit_lacks_or_missing_tensors_are_refused(void)
{
    struct evit_vit_config c = tiny_config();
    struct evit_vit m;
    evit_vit_alloc(&m, &c);
    evit_vit_init(&m, 5);
    CHECK(import_stage(&m, NULL, NULL) == 0);
    CHECK(import_stage(&m, "dist_token", NULL) == 1);
    CHECK(import_stage(&m, "blocks.0.something", NULL) == 2);
    CHECK(import_stage(&m, NULL, "blocks.1.attn.proj.bias") == 2);
    CHECK(import_stage(&m, NULL, "pos_embed") == 1);
    evit_vit_free(&m);
}

int main(void)
{
    evit_set_threads(1);
    RUN(every_half_converts_to_its_exact_value);
    RUN(f32_f16_and_bf16_tensors_read_back_exactly);
    RUN(a_well_formed_header_parses);
    RUN(headers_that_lie_are_refused);
    RUN(wrong_dtypes_and_shapes_are_refused);
    RUN(offsets_out_of_range_overlapping_or_leaving_gaps_are_refused);
    RUN(a_missing_file_is_an_error);
    RUN(a_timm_state_dict_imports_with_its_shape_and_weights);
    RUN(a_new_head_replaces_the_file_s_and_keeps_the_rest);
    RUN(files_with_tokens_evit_lacks_or_missing_tensors_are_refused);
    return test_summary();
}
