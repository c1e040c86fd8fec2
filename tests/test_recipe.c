/* test_recipe.c: recipes parse strictly, and profiles override the top level. */
#include <stdio.h>
#include <string.h>

#include "recipe.h"
#include "test.h"
#include "util.h"

static const char *write_json(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    fputs(text, f);
    fclose(f);
    return path;
}

#define BASE "\"model\": {\"img_size\": 8, \"channels\": 1, \"patch\": 4, \"num_classes\": 3," \
             " \"embed_dim\": 8, \"depth\": 1, \"num_heads\": 2, \"mlp_hidden\": 8}"

static void a_full_recipe_fills_every_field(void)
{
    struct evit_recipe r;
    const char *p = write_json("full.json", "{" BASE ", \"epochs\": 7, \"batch_size\": 32, \"seed\": 9,"
        "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1, \"weight_decay\": 0.0001, \"momentum\": 0.8,"
        " \"nesterov\": true}, \"schedule\": {\"warmup_epochs\": 0.5, \"min_lr\": 0.001},"
        "\"clip_grad\": 2.5, \"label_smoothing\": 0.1, \"augment\": {\"crop_padding\": 3, \"hflip\": true,"
        " \"erase\": {\"prob\": 0.25, \"area\": [0.05, 0.3], \"ratio\": [0.5, 2]}},"
        "\"distill\": {\"type\": \"hard\", \"alpha\": 0.25, \"temperature\": 2}}");
    REQUIRE(evit_recipe_load(p, NULL, &r) == 0);
    CHECK(r.has_model && r.model.dim == 8 && r.model.blocks[0].heads == 2);
    CHECK(r.epochs == 7 && r.batch == 32 && r.seed == 9);
    CHECK(r.optim.type == EVIT_OPTIM_SGD && r.optim.lr == 0.1 && r.optim.momentum == 0.8 && r.optim.nesterov);
    CHECK(r.warmup_epochs == 0.5 && r.min_lr == 0.001 && r.clip_grad == 2.5 && r.label_smoothing == 0.1);
    CHECK(r.augment.crop_padding == 3 && r.augment.hflip == 1);
    CHECK(r.augment.erase_prob == 0.25 && r.augment.erase_area[0] == 0.05 && r.augment.erase_area[1] == 0.3 &&
          r.augment.erase_ratio[0] == 0.5 && r.augment.erase_ratio[1] == 2.0);
    CHECK(r.kd == EVIT_KD_HARD && r.alpha == 0.25 && r.temperature == 2.0);
    evit_recipe_free(&r);
}

static void erasing_takes_the_papers_ranges_unless_given(void)
{
    struct evit_recipe r;
    const char *p = write_json("erase.json", "{" BASE ", \"augment\": {\"erase\": {\"prob\": 0.5}}}");
    REQUIRE(evit_recipe_load(p, NULL, &r) == 0);
    CHECK(r.augment.erase_prob == 0.5 && r.augment.erase_area[0] == 0.02 && r.augment.erase_area[1] == 0.33 &&
          r.augment.erase_ratio[0] == 0.3 && r.augment.erase_ratio[1] == 3.3);
    evit_recipe_free(&r);
}

static void a_profile_overrides_keys_and_merges_objects(void)
{
    struct evit_recipe r;
    const char *p = write_json("prof.json", "{" BASE ", \"epochs\": 2,"
        "\"optimizer\": {\"lr\": 0.002, \"weight_decay\": 0.1},"
        "\"profiles\": {\"full\": {\"epochs\": 40, \"optimizer\": {\"lr\": 0.0005}}}}");
    REQUIRE(evit_recipe_load(p, NULL, &r) == 0);
    CHECK(r.epochs == 2 && r.optim.lr == 0.002);
    evit_recipe_free(&r);
    REQUIRE(evit_recipe_load(p, "full", &r) == 0);
    CHECK(r.epochs == 40 && r.optim.lr == 0.0005 && r.optim.weight_decay == 0.1);
    evit_recipe_free(&r);
    CHECK(evit_recipe_load(p, "nope", &r) == EVIT_ERR);
}

static void bad_recipes_are_refused(void)
{
    struct evit_recipe r;
    const char *bad[] = {
        "{" BASE ", \"epoch\": 3}",                                   /* unknown key */
        "{" BASE ", \"optimizer\": {\"type\": \"adam\"}}",            /* unknown optimiser */
        "{" BASE ", \"optimizer\": {\"lr\": -1}}",                    /* out of range */
        "{" BASE ", \"optimizer\": {\"betas\": [0.9]}}",              /* wrong shape */
        "{" BASE ", \"distill\": {\"type\": \"soft\", \"alpha\": 2}}", /* out of range */
        "{" BASE ", \"distill\": {\"kind\": \"soft\"}}",               /* unknown nested key */
        "{" BASE ", \"distill\": {\"type\": \"kl\"}}",                 /* unknown distillation */
        "{" BASE ", \"optimizer\": {\"type\": 1}}",                  /* not a string */
        "{" BASE ", \"augment\": {\"hflip\": 1}}",                    /* wrong type */
        "{" BASE ", \"augment\": {\"erase\": {\"area\": [0.1, 0.2]}}}",  /* erase without prob */
        "{" BASE ", \"augment\": {\"erase\": {\"prob\": 1.5}}}",        /* out of range */
        "{" BASE ", \"augment\": {\"erase\": {\"prob\": 0.5, \"area\": [0.3, 0.1]}}}", /* lo > hi */
        "{" BASE ", \"augment\": {\"erase\": {\"prob\": 0.5, \"area\": [0, 0.1]}}}",   /* empty area */
        "{" BASE ", \"augment\": {\"erase\": {\"prob\": 0.5, \"ratio\": [1]}}}",      /* wrong shape */
        "{" BASE ", \"augment\": {\"erase\": {\"prob\": 0.5, \"size\": 3}}}",         /* unknown key */
        "{" BASE ", \"batch_size\": 0}",
        "{" BASE ", \"schedule\": {\"min_lr\": 0.5}}",                /* above lr */
        "{\"model\": \"no-such-model\"}",
        "{" BASE ", \"profiles\": 3}",
        "{" BASE ",",                                                  /* syntax */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.json", i);
        const char *p = write_json(name, bad[i]);
        int rc = evit_recipe_load(p, NULL, &r);
        if (rc == 0) {
            fprintf(stderr, "  accepted: %s\n", bad[i]);
            evit_recipe_free(&r);
        }
        CHECK(rc == EVIT_ERR);
    }
}

static void the_shipped_recipes_load_with_and_without_the_full_profile(void)
{
    const char *src = getenv("EVIT_SRC");
    const char *names[] = {"teacher", "student", "student-hard", "student-labels", "finetune", "student-consistent"};
    for (int i = 0; i < 6; i++) {
        char path[512];
        struct evit_recipe r;
        snprintf(path, sizeof path, "%s/configs/fmnist/%s.json", src ? src : ".", names[i]);
        REQUIRE(evit_recipe_load(path, NULL, &r) == 0);
        int quick = r.epochs;
        evit_recipe_free(&r);
        REQUIRE(evit_recipe_load(path, "full", &r) == 0);
        CHECK(r.epochs > quick);
        evit_recipe_free(&r);
    }
}

int main(void)
{
    RUN(a_full_recipe_fills_every_field);
    RUN(erasing_takes_the_papers_ranges_unless_given);
    RUN(a_profile_overrides_keys_and_merges_objects);
    RUN(bad_recipes_are_refused);
    RUN(the_shipped_recipes_load_with_and_without_the_full_profile);
    return test_summary();
}
