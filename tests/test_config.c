/* test_config.c: model configs from JSON, derived sizes, strict errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "json.h"
#include "test.h"
#include "util.h"

/* configs/models/<name>.json in the source tree: $EVIT_SRC under make check,
 * else relative to the working directory. */
static const char *shipped(const char *name)
{
    static char path[4096];
    const char *src = getenv("EVIT_SRC");
    if (src && !*src) src = NULL;
    snprintf(path, sizeof path, "%s%sconfigs/models/%s.json", src ? src : "", src ? "/" : "", name);
    return path;
}

static int load_shipped(const char *name, struct evit_vit_config *c)
{
    return evit_config_load(shipped(name), c);
}

/* Writes text to <tmpdir>/<name> and returns the path (static buffer). */
static const char *write_tmp(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(99);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads a config written from text; the file is removed afterwards. */
static int load_text(const char *text, struct evit_vit_config *c)
{
    const char *path = write_tmp("model.json", text);
    int rc = evit_config_load(path, c);
    remove(path);
    return rc;
}

static int uniform(const struct evit_vit_config *c, int heads, int head_dim, int mlp)
{
    for (int l = 0; l < c->depth; l++) {
        if (c->blocks[l].heads != heads || c->blocks[l].head_dim != head_dim ||
            c->blocks[l].mlp != mlp)
            return 0;
    }
    return 1;
}

static void fm_tiny_has_four_blocks_of_four_heads_of_sixteen_and_mlp_256(void)
{
    struct evit_vit_config c;
    REQUIRE(load_shipped("fm-tiny", &c) == EVIT_OK);
    CHECK(strcmp(c.name, "fm-tiny") == 0);
    CHECK(c.img_size == 28);
    CHECK(c.channels == 1);
    CHECK(c.patch == 4);
    CHECK(c.classes == 10);
    CHECK(c.dim == 64);
    CHECK(c.depth == 4);
    CHECK(uniform(&c, 4, 16, 256));
    CHECK(evit_config_grid(&c) == 7);
    CHECK(evit_config_patches(&c) == 49);
    CHECK(evit_config_tokens(&c) == 50);
    CHECK(evit_config_patch_in(&c) == 16);
    CHECK(evit_config_inner(&c, 3) == 64);
}

static void the_other_shipped_configs_parse_with_their_shapes(void)
{
    struct evit_vit_config c;
    REQUIRE(load_shipped("fm-small", &c) == EVIT_OK);
    CHECK(strcmp(c.name, "fm-small") == 0);
    CHECK(c.img_size == 28 && c.channels == 1 && c.patch == 4 && c.classes == 10);
    CHECK(c.dim == 128 && c.depth == 6);
    CHECK(uniform(&c, 4, 32, 512));

    REQUIRE(load_shipped("deit-tiny", &c) == EVIT_OK);
    CHECK(strcmp(c.name, "deit-tiny") == 0);
    CHECK(c.img_size == 224 && c.channels == 3 && c.patch == 16 && c.classes == 1000);
    CHECK(c.dim == 192 && c.depth == 12);
    CHECK(uniform(&c, 3, 64, 768));
    CHECK(evit_config_tokens(&c) == 197);
    CHECK(evit_config_patch_in(&c) == 768);

    REQUIRE(load_shipped("deit-small", &c) == EVIT_OK);
    CHECK(strcmp(c.name, "deit-small") == 0);
    CHECK(c.img_size == 224 && c.channels == 3 && c.patch == 16 && c.classes == 1000);
    CHECK(c.dim == 384 && c.depth == 12);
    CHECK(uniform(&c, 6, 64, 1536));
}

static void a_bare_name_is_looked_up_under_evit_configs(void)
{
    /* a name that exists nowhere but under $EVIT_CONFIGS/models */
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/configs", test_tmpdir());
    REQUIRE(mkdir(dir, 0700) == 0);
    snprintf(path, sizeof path, "%s/models", dir);
    REQUIRE(mkdir(path, 0700) == 0);
    snprintf(path, sizeof path, "%s/models/evit-test-only.json", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs("{\"name\": \"evit-test-only\", \"img_size\": 8, \"channels\": 3, \"patch\": 2,"
          " \"num_classes\": 4, \"embed_dim\": 6, \"depth\": 1, \"num_heads\": 2,"
          " \"mlp_hidden\": 9}\n", f);
    fclose(f);
    struct evit_vit_config c;
    setenv("EVIT_CONFIGS", dir, 1);
    CHECK(evit_config_load("evit-test-only", &c) == EVIT_OK && c.dim == 6 && c.blocks[0].mlp == 9);
    CHECK(evit_config_load("no-such-model", &c) == EVIT_ERR);
    unsetenv("EVIT_CONFIGS");
    CHECK(evit_config_load("evit-test-only", &c) == EVIT_ERR);
    remove(path);
    snprintf(path, sizeof path, "%s/models", dir);
    rmdir(path);
    rmdir(dir);
}

static void deit_parameter_counts_equal_timms(void)
{
    struct evit_vit_config c;
    /* timm: sum(p.numel() for p in deit_tiny_patch16_224().parameters()) */
    REQUIRE(load_shipped("deit-tiny", &c) == EVIT_OK);
    CHECK(evit_config_params(&c) == 5717416L);
    REQUIRE(load_shipped("deit-small", &c) == EVIT_OK);
    CHECK(evit_config_params(&c) == 22050664L);
    /* fm-tiny by hand (D 64, patch_in 16, T 50, K 10, M 256):
     *   patch 64*16+64 + cls 64 + pos 50*64                     =   4352
     *   per block: norms 4*64, qkv 192*64+192, proj 64*64+64,
     *              fc1 256*64+256, fc2 64*256+64 = 49984, x 4   = 199936
     *   final norm 128 + head 10*64+10                          =    778 */
    REQUIRE(load_shipped("fm-tiny", &c) == EVIT_OK);
    CHECK(evit_config_params(&c) == 205066L);
}

static void mflops_are_twice_the_multiply_adds_of_the_matrix_products(void)
{
    struct evit_vit_config c;
    const char *names[] = {"fm-tiny", "fm-small", "deit-tiny", "deit-small"};
    for (int i = 0; i < 4; i++) {
        REQUIRE(load_shipped(names[i], &c) == EVIT_OK);
        CHECK(evit_config_mflops(&c) > 0.0);
    }
    /* deit-tiny, N 196 patches, T 197 tokens, D 192, M 768:
     *   patch embed 196*768*192                       =    28,901,376
     *   per block: qkv 197*192*576 + q k^T and att v 2*197*197*192
     *              + proj 197*192*192 + fc1/fc2 2*197*192*768
     *            = 102,049,152, x 12                  = 1,224,589,824
     *   head 192*1000                                 =       192,000
     *   total 1,253,683,200 MACs = 2507.37 MFLOPs.
     * timm/fvcore quote 1.26 GMACs for deit_tiny_patch16_224 (they also count
     * the norms, softmax and GELU), i.e. about 2520 MFLOPs: within 1%. */
    REQUIRE(load_shipped("deit-tiny", &c) == EVIT_OK);
    double mf = evit_config_mflops(&c);
    CHECK_NEAR(mf, 2507.3664, 1e-6);
    CHECK(fabs(mf - 2520.0) <= 0.03 * 2520.0);
    /* deit-small: 4,598,882,304 MACs; timm quotes 4.6 GMACs */
    REQUIRE(load_shipped("deit-small", &c) == EVIT_OK);
    mf = evit_config_mflops(&c);
    CHECK_NEAR(mf, 9197.764608, 1e-6);
    CHECK(fabs(mf - 9200.0) <= 0.03 * 9200.0);
}

static void a_blocks_array_gives_each_block_its_own_shape(void)
{
    struct evit_vit_config c;
    /* top-level defaults, overridden per block, partly */
    REQUIRE(load_text("{\"name\": \"pruned\", \"img_size\": 28, \"channels\": 1, \"patch\": 4,"
                      " \"num_classes\": 10, \"embed_dim\": 64, \"depth\": 3,"
                      " \"num_heads\": 4, \"mlp_hidden\": 256, \"blocks\": ["
                      "  {\"num_heads\": 3, \"head_dim\": 16, \"mlp_hidden\": 200},"
                      "  {\"mlp_hidden\": 100},"
                      "  {\"num_heads\": 2, \"head_dim\": 8}]}",
                      &c) == EVIT_OK);
    CHECK(strcmp(c.name, "pruned") == 0);
    CHECK(c.blocks[0].heads == 3 && c.blocks[0].head_dim == 16 && c.blocks[0].mlp == 200);
    CHECK(c.blocks[1].heads == 4 && c.blocks[1].head_dim == 16 && c.blocks[1].mlp == 100);
    CHECK(c.blocks[2].heads == 2 && c.blocks[2].head_dim == 8 && c.blocks[2].mlp == 256);
    CHECK(evit_config_inner(&c, 0) == 48);
    CHECK(evit_config_inner(&c, 2) == 16);
    /* params follow the per-block shapes: D 64, T 50, K 10 */
    long D = 64, want = D * 16 + D + D + 50 * D + 2 * D + 10 * D + 10;
    const long I[3] = {48, 64, 16}, M[3] = {200, 100, 256};
    for (int l = 0; l < 3; l++) want += 4 * D + 3 * I[l] * D + 3 * I[l] + D * I[l] + D + 2 * M[l] * D + M[l] + D;
    CHECK(evit_config_params(&c) == want);

    /* no top-level heads: every block names its own; head_dim defaults to
     * embed_dim / num_heads of that block */
    REQUIRE(load_text("{\"img_size\": 8, \"channels\": 2, \"patch\": 4, \"num_classes\": 5,"
                      " \"embed_dim\": 16, \"depth\": 2, \"blocks\": ["
                      "  {\"num_heads\": 2, \"mlp_hidden\": 10},"
                      "  {\"num_heads\": 8, \"head_dim\": 5, \"mlp_hidden\": 7}]}",
                      &c) == EVIT_OK);
    CHECK(c.blocks[0].heads == 2 && c.blocks[0].head_dim == 8 && c.blocks[0].mlp == 10);
    CHECK(c.blocks[1].heads == 8 && c.blocks[1].head_dim == 5 && c.blocks[1].mlp == 7);
    CHECK(strcmp(c.name, "unnamed") == 0);
}

static const char *const good_prefix =
    "{\"img_size\": 28, \"channels\": 1, \"patch\": 4, \"num_classes\": 10, \"embed_dim\": 64,";

static int load_variant(const char *rest, struct evit_vit_config *c)
{
    char text[1024];
    snprintf(text, sizeof text, "%s %s", good_prefix, rest);
    return load_text(text, c);
}

static void a_well_formed_variant_loads_so_the_failures_below_are_meaningful(void)
{
    struct evit_vit_config c;
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32}", &c) == EVIT_OK);
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32, \"blocks\": "
                       "[{\"num_heads\": 2}, {\"mlp_hidden\": 3}]}", &c) == EVIT_OK);
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 3, \"head_dim\": 20, \"mlp_hidden\": 32}", &c) == EVIT_OK);
}

static void unknown_keys_are_errors_at_the_top_and_inside_blocks(void)
{
    struct evit_vit_config c;
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32, \"dropout\": 0.1}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32, \"blocks\": "
                       "[{\"num_heads\": 2}, {\"mlp_hidden\": 3, \"heads\": 2}]}", &c) == EVIT_ERR);
}

static void wrong_types_and_non_integers_are_errors(void)
{
    struct evit_vit_config c;
    CHECK(load_variant("\"depth\": \"2\", \"num_heads\": 4, \"mlp_hidden\": 32}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 2.5, \"num_heads\": 4, \"mlp_hidden\": 32}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32, \"name\": 7}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32, \"blocks\": {}}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32, \"blocks\": [1, 2]}", &c) == EVIT_ERR);
}

static void out_of_range_values_are_errors(void)
{
    struct evit_vit_config c;
    /* patch 5 does not divide 28 */
    CHECK(load_text("{\"img_size\": 28, \"channels\": 1, \"patch\": 5, \"num_classes\": 10,"
                    " \"embed_dim\": 64, \"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 0, \"num_heads\": 4, \"mlp_hidden\": 32}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 65, \"num_heads\": 4, \"mlp_hidden\": 32}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 0, \"mlp_hidden\": 32}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32, \"blocks\": "
                       "[{\"num_heads\": 2}, {\"mlp_hidden\": 0}]}", &c) == EVIT_ERR);
    CHECK(load_text("{\"img_size\": 28, \"channels\": 5, \"patch\": 4, \"num_classes\": 10,"
                    " \"embed_dim\": 64, \"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32}", &c) == EVIT_ERR);
    CHECK(load_text("{\"img_size\": 28, \"channels\": 1, \"patch\": 4, \"num_classes\": 1,"
                    " \"embed_dim\": 64, \"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32}", &c) == EVIT_ERR);
}

static void a_missing_required_key_is_an_error(void)
{
    struct evit_vit_config c;
    CHECK(load_text("{\"channels\": 1, \"patch\": 4, \"num_classes\": 10,"
                    " \"embed_dim\": 64, \"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32}", &c) == EVIT_ERR);
    /* without blocks, num_heads and mlp_hidden are required */
    CHECK(load_variant("\"depth\": 2, \"mlp_hidden\": 32}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4}", &c) == EVIT_ERR);
    /* with blocks but no defaults, each block needs them */
    CHECK(load_variant("\"depth\": 2, \"blocks\": [{\"num_heads\": 2, \"mlp_hidden\": 8},"
                       " {\"num_heads\": 2}]}", &c) == EVIT_ERR);
}

static void a_blocks_array_of_the_wrong_length_is_an_error(void)
{
    struct evit_vit_config c;
    CHECK(load_variant("\"depth\": 3, \"num_heads\": 4, \"mlp_hidden\": 32, \"blocks\": "
                       "[{\"num_heads\": 2}, {\"num_heads\": 2}]}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 1, \"num_heads\": 4, \"mlp_hidden\": 32, \"blocks\": "
                       "[{\"num_heads\": 2}, {\"num_heads\": 2}]}", &c) == EVIT_ERR);
}

static void num_heads_must_divide_embed_dim_unless_head_dim_is_given(void)
{
    struct evit_vit_config c;
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 3, \"mlp_hidden\": 32}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 2, \"blocks\": [{\"num_heads\": 4, \"mlp_hidden\": 8},"
                       " {\"num_heads\": 5, \"mlp_hidden\": 8}]}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 2, \"blocks\": [{\"num_heads\": 4, \"mlp_hidden\": 8},"
                       " {\"num_heads\": 5, \"head_dim\": 8, \"mlp_hidden\": 8}]}", &c) == EVIT_OK);
    CHECK(c.blocks[1].heads == 5 && c.blocks[1].head_dim == 8);
}

static void invalid_json_and_missing_files_are_errors(void)
{
    struct evit_vit_config c;
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32,}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32", &c) == EVIT_ERR);
    CHECK(load_text("[1, 2, 3]", &c) == EVIT_ERR);
    CHECK(load_text("", &c) == EVIT_ERR);
    char path[512];
    snprintf(path, sizeof path, "%s/does-not-exist.json", test_tmpdir());
    CHECK(evit_config_load(path, &c) == EVIT_ERR);
}

static void a_name_too_long_for_the_struct_is_an_error(void)
{
    struct evit_vit_config c;
    char rest[256];
    snprintf(rest, sizeof rest, "\"depth\": 1, \"num_heads\": 4, \"mlp_hidden\": 8, \"name\": \"%0*d\"}",
             EVIT_NAME_MAX, 0);
    CHECK(load_variant(rest, &c) == EVIT_ERR);
    snprintf(rest, sizeof rest, "\"depth\": 1, \"num_heads\": 4, \"mlp_hidden\": 8, \"name\": \"%0*d\"}",
             EVIT_NAME_MAX - 1, 0);
    CHECK(load_variant(rest, &c) == EVIT_OK);
    CHECK(strlen(c.name) == EVIT_NAME_MAX - 1);
}

/* to_json then from_json: the very same struct, byte for byte. */
static void round_trip(const struct evit_vit_config *a)
{
    struct evit_vit_config b;
    memset(&b, 0x5a, sizeof b);
    cJSON *j = evit_config_to_json(a);
    REQUIRE(j != NULL);
    CHECK(evit_config_from_json(j, "round-trip", "", &b) == EVIT_OK);
    CHECK(memcmp(a, &b, sizeof b) == 0);
    /* and through a file */
    char path[512];
    snprintf(path, sizeof path, "%s/round-trip.json", test_tmpdir());
    CHECK(evit_json_save(j, path) == EVIT_OK);
    memset(&b, 0x5a, sizeof b);
    CHECK(evit_config_load(path, &b) == EVIT_OK);
    CHECK(memcmp(a, &b, sizeof b) == 0);
    remove(path);
    cJSON_Delete(j);
}

/* Last in main: with a directory, fopen succeeds and ftell gives LONG_MAX,
 * so a reader that trusts ftell aborts in malloc instead of reporting. */
static void a_directory_given_as_the_config_file_is_an_error(void)
{
    struct evit_vit_config c;
    char path[512];
    snprintf(path, sizeof path, "%s/dir.json", test_tmpdir());
    REQUIRE(mkdir(path, 0700) == 0);
    CHECK(evit_config_load(path, &c) == EVIT_ERR);
    rmdir(path);
}

static void to_json_and_back_gives_an_identical_struct(void)
{
    struct evit_vit_config c;
    REQUIRE(load_shipped("deit-tiny", &c) == EVIT_OK);
    round_trip(&c);
    REQUIRE(load_text("{\"name\": \"pruned\", \"img_size\": 28, \"channels\": 1, \"patch\": 4,"
                      " \"num_classes\": 10, \"embed_dim\": 64, \"depth\": 3,"
                      " \"num_heads\": 4, \"mlp_hidden\": 256, \"blocks\": ["
                      "  {\"num_heads\": 3, \"head_dim\": 16, \"mlp_hidden\": 200},"
                      "  {\"mlp_hidden\": 100},"
                      "  {\"num_heads\": 2, \"head_dim\": 12}]}",
                      &c) == EVIT_OK);
    round_trip(&c);
}

/* The segmentation configs: Segmenter's linear decoder on every patch */
static void the_segmentation_configs_have_a_linear_decoder_on_every_patch(void)
{
    struct evit_vit_config c, cls;
    REQUIRE(load_shipped("seg-fm-tiny", &c) == EVIT_OK);
    CHECK(c.head == EVIT_HEAD_SEG_LINEAR && c.classes == 11 && c.img_size == 96 && c.patch == 8);
    CHECK(evit_config_head_rows(&c) == 144);
    REQUIRE(load_shipped("seg-deit-tiny-512", &c) == EVIT_OK);
    CHECK(c.head == EVIT_HEAD_SEG_LINEAR && c.classes == 14 && c.img_size == 512 && c.dim == 192);
    CHECK(evit_config_head_rows(&c) == 1024 && evit_config_tokens(&c) == 1025);
    /* the same shape with a class head: the head's multiply-adds once per
     * patch (1024 * 192 * 14) instead of once per image (192 * 14) */
    cls = c;
    cls.head = EVIT_HEAD_CLASS;
    CHECK(evit_config_params(&c) == evit_config_params(&cls));
    CHECK_NEAR(evit_config_mflops(&c) - evit_config_mflops(&cls), 2.0 * 1023 * 192 * 14 / 1e6, 1e-6);
    round_trip(&c);
    REQUIRE(load_shipped("deit-tiny", &c) == EVIT_OK);
    CHECK(c.head == EVIT_HEAD_CLASS && evit_config_head_rows(&c) == 1);
}

/* SegFormer's all-MLP decoder (config.h, vit.h): seg-fm-tiny's encoder
 * with decoder_dim 32 over every block.  Parameters by hand against
 * seg-fm-tiny's (D 64, K 11, C 32, L 4): its head 11*64+11 goes; three
 * LayerNorms 3*128, linear_c 4*(32*64+32), linear_fuse 32*128+32 and the
 * head 11*32+11 come. */
static void the_mlp_decoder_config_reads_four_levels_of_seg_fm_tiny(void)
{
    struct evit_vit_config c, lin;
    REQUIRE(load_shipped("seg-fm-tiny-mlp", &c) == EVIT_OK);
    REQUIRE(load_shipped("seg-fm-tiny", &lin) == EVIT_OK);
    CHECK(c.head == EVIT_HEAD_SEG_MLP && strcmp(evit_config_head_name(c.head), "seg_mlp") == 0);
    CHECK(c.decoder_dim == 32 && c.decoder_nlevels == 4);
    for (int i = 0; i < 4; i++) CHECK(c.decoder_levels[i] == i);
    CHECK(evit_config_head_rows(&c) == 144);
    CHECK(evit_config_params(&lin) == 214283L);
    CHECK(evit_config_params(&c) == 214283L - 715 + 384 + 8320 + 4128 + 363);
    /* per patch: 4 * 64 * 32 + 128 * 32 + 32 * 11 multiply-adds for the
     * decoder instead of 64 * 11 */
    CHECK_NEAR(evit_config_mflops(&c) - evit_config_mflops(&lin),
               2.0 * 144 * (4 * 64 * 32 + 128 * 32 + 32 * 11 - 64 * 11) / 1e6, 1e-6);
    int lv[EVIT_DECODER_MAX_LEVELS];
    CHECK(evit_config_levels(&c, lv) == 4 && lv[3] == 3);
    CHECK(evit_config_levels(&lin, lv) == 1 && lv[0] == 3);
    round_trip(&c);
    /* the Nano's 512x512 model with this decoder at its defaults: C 96
     * over blocks 2, 5, 8 and 11; against seg-deit-tiny-512 (D 192, K 14)
     * the head 14*192+14 goes, three LayerNorms 3*384, linear_c
     * 4*(96*192+96), linear_fuse 96*384+96 and the head 14*96+14 come */
    REQUIRE(load_shipped("seg-deit-tiny-512-mlp", &c) == EVIT_OK);
    REQUIRE(load_shipped("seg-deit-tiny-512", &lin) == EVIT_OK);
    CHECK(c.head == EVIT_HEAD_SEG_MLP && c.decoder_dim == 96 && c.decoder_nlevels == 4);
    CHECK(c.decoder_levels[0] == 2 && c.decoder_levels[1] == 5 && c.decoder_levels[2] == 8 &&
          c.decoder_levels[3] == 11);
    CHECK(evit_config_params(&c) == evit_config_params(&lin) - 2702 + 1152 + 74112 + 36960 + 1358);
}

/* Absent keys: decoder_dim embed_dim / 2, and min(4, depth) levels evenly
 * spaced, (i + 1) depth / L - 1. */
static void the_mlp_decoder_defaults_to_half_the_width_and_four_even_levels(void)
{
    static const struct { int depth, n, lv[4]; } cases[] = {
        {12, 4, {2, 5, 8, 11}}, {4, 4, {0, 1, 2, 3}}, {6, 4, {0, 2, 3, 5}}, {3, 3, {0, 1, 2}}, {1, 1, {0}}};
    struct evit_vit_config c;
    char rest[256];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(rest, sizeof rest, "\"depth\": %d, \"num_heads\": 4, \"mlp_hidden\": 32, \"head\": \"seg_mlp\"}",
                 cases[k].depth);
        REQUIRE(load_variant(rest, &c) == EVIT_OK);
        CHECK(c.decoder_dim == 32 && c.decoder_nlevels == cases[k].n);
        for (int i = 0; i < cases[k].n; i++) CHECK(c.decoder_levels[i] == cases[k].lv[i]);
        round_trip(&c);
    }
    CHECK(load_variant("\"depth\": 4, \"num_heads\": 4, \"mlp_hidden\": 32, \"head\": \"seg_mlp\", "
                       "\"decoder_dim\": 7, \"decoder_levels\": [1, 3]}", &c) == EVIT_OK);
    CHECK(c.decoder_dim == 7 && c.decoder_nlevels == 2 && c.decoder_levels[0] == 1 && c.decoder_levels[1] == 3);
    CHECK(c.decoder_levels[2] == 0 && c.decoder_levels[3] == 0);
    round_trip(&c);
    /* a width of 1 still has a decoder */
    REQUIRE(load_text("{\"img_size\": 8, \"channels\": 1, \"patch\": 4, \"num_classes\": 3, \"embed_dim\": 1,"
                      " \"depth\": 1, \"num_heads\": 1, \"mlp_hidden\": 2, \"head\": \"seg_mlp\"}", &c) == EVIT_OK);
    CHECK(c.decoder_dim == 1);
}

/* Each of these is one error line (config.c): a level list that is not
 * 1 to 4 increasing blocks ending with the last, a width out of range, a
 * decoder beside another head, and Token Merging under the decoder. */
static void a_bad_mlp_decoder_is_an_error(void)
{
    static const char *const bad[] = {
        "\"decoder_levels\": [0, 2, 1, 3]}", "\"decoder_levels\": [1, 1, 3]}", "\"decoder_levels\": [0, 1, 2]}",
        "\"decoder_levels\": [0, 4]}", "\"decoder_levels\": [-1, 3]}", "\"decoder_levels\": []}",
        "\"decoder_levels\": 3}", "\"decoder_levels\": [0.5, 3]}", "\"decoder_levels\": [\"3\"]}",
        "\"decoder_dim\": 0}", "\"decoder_dim\": 16385}", "\"decoder_dim\": 2.5}", "\"merge_r\": 1}",
        "\"decoder_levels\": [3], \"decoder\": 1}",
    };
    struct evit_vit_config c;
    char rest[256];
    const char *seg = "\"depth\": 4, \"num_heads\": 4, \"mlp_hidden\": 32, \"head\": \"seg_mlp\", ";
    snprintf(rest, sizeof rest, "%s\"decoder_levels\": [3]}", seg);
    CHECK(load_variant(rest, &c) == EVIT_OK && c.decoder_nlevels == 1);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(rest, sizeof rest, "%s%s", seg, bad[k]);
        if (load_variant(rest, &c) != EVIT_ERR) {
            fprintf(stderr, "  accepted: %s\n", bad[k]);
            CHECK(0);
        }
    }
    /* five levels need depth 5 to be increasing; still too many */
    CHECK(load_variant("\"depth\": 5, \"num_heads\": 4, \"mlp_hidden\": 32, \"head\": \"seg_mlp\", "
                       "\"decoder_levels\": [0, 1, 2, 3, 4]}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 4, \"num_heads\": 4, \"mlp_hidden\": 32, \"head\": \"seg_linear\", "
                       "\"decoder_dim\": 8}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 4, \"num_heads\": 4, \"mlp_hidden\": 32, \"decoder_levels\": [3]}", &c) ==
          EVIT_ERR);
    /* the struct's own check, as a checkpoint's attributes meet it */
    REQUIRE(load_shipped("seg-fm-tiny-mlp", &c) == EVIT_OK);
    c.decoder_levels[3] = 2;
    CHECK(evit_config_validate(&c, "test") == EVIT_ERR);
    REQUIRE(load_shipped("seg-fm-tiny", &c) == EVIT_OK);
    c.decoder_dim = 8;
    CHECK(evit_config_validate(&c, "test") == EVIT_ERR);
}

static void an_unknown_head_or_a_merging_segmentation_model_is_an_error(void)
{
    struct evit_vit_config c;
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32, \"head\": \"seg_linear\"}", &c) ==
          EVIT_OK);
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32, \"head\": \"boxes\"}", &c) ==
          EVIT_ERR);
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32, \"head\": 1}", &c) == EVIT_ERR);
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32, \"merge_r\": 2}", &c) == EVIT_OK);
    CHECK(load_variant("\"depth\": 2, \"num_heads\": 4, \"mlp_hidden\": 32, \"merge_r\": 2, "
                       "\"head\": \"seg_linear\"}", &c) == EVIT_ERR);
}

int main(void)
{
    RUN(fm_tiny_has_four_blocks_of_four_heads_of_sixteen_and_mlp_256);
    RUN(the_other_shipped_configs_parse_with_their_shapes);
    RUN(a_bare_name_is_looked_up_under_evit_configs);
    RUN(deit_parameter_counts_equal_timms);
    RUN(mflops_are_twice_the_multiply_adds_of_the_matrix_products);
    RUN(a_blocks_array_gives_each_block_its_own_shape);
    RUN(the_segmentation_configs_have_a_linear_decoder_on_every_patch);
    RUN(the_mlp_decoder_config_reads_four_levels_of_seg_fm_tiny);
    RUN(the_mlp_decoder_defaults_to_half_the_width_and_four_even_levels);
    RUN(a_bad_mlp_decoder_is_an_error);
    RUN(an_unknown_head_or_a_merging_segmentation_model_is_an_error);
    RUN(a_well_formed_variant_loads_so_the_failures_below_are_meaningful);
    RUN(unknown_keys_are_errors_at_the_top_and_inside_blocks);
    RUN(wrong_types_and_non_integers_are_errors);
    RUN(out_of_range_values_are_errors);
    RUN(a_missing_required_key_is_an_error);
    RUN(a_blocks_array_of_the_wrong_length_is_an_error);
    RUN(num_heads_must_divide_embed_dim_unless_head_dim_is_given);
    RUN(invalid_json_and_missing_files_are_errors);
    RUN(a_name_too_long_for_the_struct_is_an_error);
    RUN(to_json_and_back_gives_an_identical_struct);
    RUN(a_directory_given_as_the_config_file_is_an_error);
    rmdir(test_tmpdir());
    return test_summary();
}
