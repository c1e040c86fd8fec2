/* test_ckpt.c: checkpoints round-trip bit for bit and refuse damaged files. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "config.h"
#include "h5.h"
#include "test.h"
#include "fixture.h"
#include "util.h"
#include "vit.h"

static void small_config(struct evit_vit_config *c)
{
    static const struct evit_block_shape b[] = {{3, 4, 20, 0}, {2, 5, 8, 0}};
    *c = make_config("tiny", 8, 2, 4, 5, 12, 2, b);
}

static void path_in_tmp(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", test_tmpdir(), name);
}

static void save_then_load_gives_identical_bits_config_and_metadata(void)
{
    struct evit_vit_config c;
    struct evit_vit m, back;
    struct evit_ckpt_meta meta, got;
    char path[512];
    char n0[] = "a", n1[] = "b", n2[] = "c", n3[] = "d", n4[] = "e";
    char *names[5] = {n0, n1, n2, n3, n4};
    small_config(&c);
    evit_vit_alloc(&m, &c);
    evit_vit_init(&m, 42);
    m.mean[0] = 0.25f;
    m.mean[1] = 0.5f;
    m.std[0] = 0.3f;
    m.std[1] = 0.7f;
    meta = (struct evit_ckpt_meta){.stage = "distill", .parent_report = "teacher.json",
                                   .classes = 5, .class_names = names};
    path_in_tmp(path, sizeof path, "rt.h5");
    REQUIRE(evit_ckpt_save(path, &m, &meta) == 0);
    REQUIRE(evit_ckpt_load(path, &back, &got) == 0);
    CHECK(memcmp(&back.cfg, &m.cfg, sizeof m.cfg) == 0);
    CHECK(memcmp(back.mem, m.mem, sizeof(float) * (size_t)evit_config_params(&c)) == 0);
    CHECK(back.mean[1] == 0.5f && back.std[1] == 0.7f);
    CHECK(strcmp(got.stage, "distill") == 0);
    CHECK(strcmp(got.parent_report, "teacher.json") == 0);
    CHECK(got.classes == 5 && strcmp(got.class_names[4], "e") == 0);
    evit_ckpt_meta_free(&got);
    evit_vit_free(&back);
    evit_vit_free(&m);
}

static void tensors_are_stored_under_timm_names_in_pytorch_shapes(void)
{
    struct evit_vit_config c;
    struct evit_vit m;
    char path[512];
    hid_t f;
    int rank;
    int64_t dims[8];
    small_config(&c);
    evit_vit_alloc(&m, &c);
    path_in_tmp(path, sizeof path, "names.h5");
    REQUIRE(evit_ckpt_save(path, &m, NULL) == 0);
    REQUIRE(evit_h5_open(path, &f) == 0);
    CHECK(evit_h5_shape(f, path, "patch_embed/proj/weight", &rank, dims) == 0);
    CHECK(rank == 4 && dims[0] == 12 && dims[1] == 2 && dims[2] == 4 && dims[3] == 4);
    CHECK(evit_h5_shape(f, path, "blocks/1/attn/qkv/weight", &rank, dims) == 0);
    CHECK(rank == 2 && dims[0] == 30 && dims[1] == 12);
    CHECK(evit_h5_shape(f, path, "blocks/0/mlp/fc2/weight", &rank, dims) == 0);
    CHECK(rank == 2 && dims[0] == 12 && dims[1] == 20);
    CHECK(evit_h5_shape(f, path, "pos_embed", &rank, dims) == 0);
    CHECK(rank == 3 && dims[0] == 1 && dims[1] == 5 && dims[2] == 12);
    CHECK(evit_h5_shape(f, path, "cls_token", &rank, dims) == 0);
    CHECK(rank == 3 && dims[2] == 12);
    H5Fclose(f);
    evit_vit_free(&m);
}

static void no_temporary_file_is_left_after_saving(void)
{
    struct evit_vit_config c;
    struct evit_vit m;
    char path[512], cmd[600];
    small_config(&c);
    evit_vit_alloc(&m, &c);
    path_in_tmp(path, sizeof path, "clean/x.h5");
    snprintf(cmd, sizeof cmd, "mkdir -p %s/clean", test_tmpdir());
    REQUIRE(system(cmd) == 0);
    REQUIRE(evit_ckpt_save(path, &m, NULL) == 0);
    snprintf(cmd, sizeof cmd, "test $(ls -A %s/clean | wc -l) -eq 1", test_tmpdir());
    CHECK(system(cmd) == 0);
    evit_vit_free(&m);
}

static void saving_into_a_missing_folder_fails_and_writes_nothing(void)
{
    struct evit_vit_config c;
    struct evit_vit m;
    char path[512];
    small_config(&c);
    evit_vit_alloc(&m, &c);
    path_in_tmp(path, sizeof path, "nope/x.h5");
    CHECK(evit_ckpt_save(path, &m, NULL) == EVIT_ERR);
    CHECK(access(path, F_OK) != 0);
    evit_vit_free(&m);
}

static void truncated_and_missing_checkpoints_are_refused(void)
{
    struct evit_vit_config c;
    struct evit_vit m, back;
    char path[512], trunc[512], cmd[1200];
    small_config(&c);
    evit_vit_alloc(&m, &c);
    path_in_tmp(path, sizeof path, "full.h5");
    path_in_tmp(trunc, sizeof trunc, "trunc.h5");
    REQUIRE(evit_ckpt_save(path, &m, NULL) == 0);
    snprintf(cmd, sizeof cmd, "head -c 2500 %s > %s", path, trunc);
    REQUIRE(system(cmd) == 0);
    CHECK(evit_ckpt_load(trunc, &back, NULL) == EVIT_ERR);
    path_in_tmp(trunc, sizeof trunc, "absent.h5");
    CHECK(evit_ckpt_load(trunc, &back, NULL) == EVIT_ERR);
    CHECK(evit_ckpt_load(test_tmpdir(), &back, NULL) == EVIT_ERR);
    evit_vit_free(&m);
}

static void a_nan_weight_is_refused_on_load(void)
{
    struct evit_vit_config c;
    struct evit_vit m, back;
    char path[512];
    small_config(&c);
    evit_vit_alloc(&m, &c);
    m.p.blocks[1].fc1_b[3] = NAN;
    path_in_tmp(path, sizeof path, "nan.h5");
    REQUIRE(evit_ckpt_save(path, &m, NULL) == 0);
    CHECK(evit_ckpt_load(path, &back, NULL) == EVIT_ERR);
    evit_vit_free(&m);
}

static void load_config_reads_per_block_shapes_without_tensors(void)
{
    struct evit_vit_config c, got;
    struct evit_vit m;
    char path[512];
    small_config(&c);
    evit_vit_alloc(&m, &c);
    path_in_tmp(path, sizeof path, "cfg.h5");
    REQUIRE(evit_ckpt_save(path, &m, NULL) == 0);
    REQUIRE(evit_ckpt_load_config(path, &got) == 0);
    CHECK(got.blocks[0].heads == 3 && got.blocks[1].head_dim == 5 && got.blocks[1].mlp == 8);
    evit_vit_free(&m);
}

static void a_segmentation_checkpoint_round_trips_and_only_asking_stages_load_it(void)
{
    struct evit_vit_config c;
    struct evit_vit m, back;
    char path[512];
    small_config(&c);
    c.head = EVIT_HEAD_SEG_LINEAR;
    evit_vit_alloc(&m, &c);
    evit_vit_init(&m, 43);
    path_in_tmp(path, sizeof path, "seg.h5");
    REQUIRE(evit_ckpt_save(path, &m, NULL) == 0);
    REQUIRE(evit_ckpt_load_heads(path, &back, NULL, EVIT_HEAD_BIT(EVIT_HEAD_SEG_LINEAR)) == 0);
    CHECK(memcmp(&back.cfg, &m.cfg, sizeof m.cfg) == 0 && back.cfg.head == EVIT_HEAD_SEG_LINEAR);
    CHECK(memcmp(back.mem, m.mem, sizeof(float) * (size_t)evit_config_params(&c)) == 0);
    evit_vit_free(&back);
    /* a stage that takes class heads only refuses it, with nothing allocated */
    CHECK(evit_ckpt_load(path, &back, NULL) == EVIT_ERR && back.mem == NULL);
    struct evit_vit_config cfg;
    CHECK(evit_ckpt_load_config(path, &cfg) == 0 && cfg.head == EVIT_HEAD_SEG_LINEAR);
    /* a class-head checkpoint has no head attribute: older files read as before */
    small_config(&c);
    evit_vit_free(&m);
    evit_vit_alloc(&m, &c);
    path_in_tmp(path, sizeof path, "cls.h5");
    REQUIRE(evit_ckpt_save(path, &m, NULL) == 0);
    hid_t f;
    REQUIRE(evit_h5_open(path, &f) == 0);
    CHECK(!evit_h5_attr_exists(f, "head"));
    H5Fclose(f);
    evit_vit_free(&m);
}

/* Rewrites attribute key of the file at path as n ints. */
static void rewrite_ints(const char *path, const char *key, const int *v, int n)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(f >= 0);
    if (H5Aexists(f, key) > 0) H5Adelete(f, key);
    if (n) CHECK(evit_h5_attr_write_ints(f, key, v, n) == 0);
    H5Fclose(f);
}

/* seg_mlp (vit.h): the decoder's tensors under decode_head.* and its
 * shape in the decoder_dim and decoder_levels attributes, back bit for
 * bit; the stages without it refuse the file; a damaged decoder shape is
 * refused on load. */
static void an_mlp_decoder_checkpoint_round_trips_with_its_levels(void)
{
    struct evit_vit_config c, cfg;
    struct evit_vit m, back;
    char path[512];
    int rank, lv[4];
    int64_t dims[8];
    static const struct evit_block_shape b[] = {{3, 4, 20, 0}, {2, 5, 8, 0}, {1, 4, 6, 0}};
    static const int levels[] = {0, 2};
    c = make_config("tiny-mlp", 8, 2, 4, 5, 12, 3, b);
    set_mlp_decoder(&c, 5, 2, levels);
    REQUIRE(evit_config_validate(&c, "test") == 0);
    evit_vit_alloc(&m, &c);
    for (long i = 0; i < evit_config_params(&c); i++) m.mem[i] = (float)(i % 97) / 7.0f - 3.0f;
    path_in_tmp(path, sizeof path, "mlp.h5");
    REQUIRE(evit_ckpt_save(path, &m, NULL) == 0);
    REQUIRE(evit_ckpt_load_heads(path, &back, NULL, EVIT_HEADS_ALL) == 0);
    CHECK(memcmp(&back.cfg, &m.cfg, sizeof m.cfg) == 0);
    CHECK(back.cfg.decoder_dim == 5 && back.cfg.decoder_nlevels == 2 && back.cfg.decoder_levels[1] == 2);
    CHECK(memcmp(back.mem, m.mem, sizeof(float) * (size_t)evit_config_params(&c)) == 0);
    CHECK(back.p.dec_norm_w[1] == back.p.norm_w && back.p.fuse_b != NULL);
    evit_vit_free(&back);
    hid_t f;
    REQUIRE(evit_h5_open(path, &f) == 0);
    CHECK(evit_h5_attr_read_ints(f, path, "decoder_dim", lv, 1) == 0 && lv[0] == 5);
    CHECK(evit_h5_attr_read_ints(f, path, "decoder_levels", lv, 2) == 0 && lv[0] == 0 && lv[1] == 2);
    CHECK(evit_h5_shape(f, path, "decode_head/norms/0/weight", &rank, dims) == 0 && rank == 1 && dims[0] == 12);
    /* the last level's norm is the encoder's norm.weight: no norms.1 */
    CHECK(!evit_h5_exists(f, "decode_head/norms/1/weight"));
    CHECK(evit_h5_shape(f, path, "decode_head/linear_c/1/weight", &rank, dims) == 0);
    CHECK(rank == 2 && dims[0] == 5 && dims[1] == 12);
    CHECK(evit_h5_shape(f, path, "decode_head/linear_fuse/weight", &rank, dims) == 0);
    CHECK(rank == 2 && dims[0] == 5 && dims[1] == 10);
    CHECK(evit_h5_shape(f, path, "head/weight", &rank, dims) == 0 && rank == 2 && dims[0] == 5 && dims[1] == 5);
    H5Fclose(f);
    /* a stage without the decoder refuses it, with nothing allocated */
    CHECK(evit_ckpt_load_heads(path, &back, NULL, EVIT_HEADS_LINEAR) == EVIT_ERR && back.mem == NULL);
    CHECK(evit_ckpt_load(path, &back, NULL) == EVIT_ERR && back.mem == NULL);
    CHECK(evit_ckpt_load_config(path, &cfg) == 0 && memcmp(&cfg, &c, sizeof c) == 0);
    /* damaged: levels not ending with the last block, five levels, none */
    lv[0] = 0;
    lv[1] = 1;
    rewrite_ints(path, "decoder_levels", lv, 2);
    CHECK(evit_ckpt_load_heads(path, &back, NULL, EVIT_HEADS_ALL) == EVIT_ERR && back.mem == NULL);
    int five[5] = {0, 1, 2, 2, 2};
    rewrite_ints(path, "decoder_levels", five, 5);
    CHECK(evit_ckpt_load_config(path, &cfg) == EVIT_ERR);
    rewrite_ints(path, "decoder_levels", NULL, 0);
    CHECK(evit_ckpt_load_config(path, &cfg) == EVIT_ERR);
    /* a wider decoder than the tensors: their shapes no longer match */
    lv[1] = 2;
    rewrite_ints(path, "decoder_levels", lv, 2);
    REQUIRE(evit_ckpt_load_config(path, &cfg) == 0);
    lv[0] = 6;
    rewrite_ints(path, "decoder_dim", lv, 1);
    CHECK(evit_ckpt_load_heads(path, &back, NULL, EVIT_HEADS_ALL) == EVIT_ERR && back.mem == NULL);
    evit_vit_free(&m);
}

int main(void)
{
    evit_h5_quiet();
    RUN(save_then_load_gives_identical_bits_config_and_metadata);
    RUN(a_segmentation_checkpoint_round_trips_and_only_asking_stages_load_it);
    RUN(an_mlp_decoder_checkpoint_round_trips_with_its_levels);
    RUN(tensors_are_stored_under_timm_names_in_pytorch_shapes);
    RUN(no_temporary_file_is_left_after_saving);
    RUN(saving_into_a_missing_folder_fails_and_writes_nothing);
    RUN(truncated_and_missing_checkpoints_are_refused);
    RUN(a_nan_weight_is_refused_on_load);
    RUN(load_config_reads_per_block_shapes_without_tensors);
    return test_summary();
}
