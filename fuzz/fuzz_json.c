/* fuzz_json.c: libFuzzer target for the strict JSON readers: model configs
 * (model/config.c) and training recipes (distill/recipe.c, with and
 * without a profile).  Any file must load or be refused with one error,
 * never crash or leak; a config that loads round-trips through its JSON
 * form to the same config. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_common.h"
#include "recipe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128];
    struct evit_vit_config c, back;
    struct evit_recipe r;
    if (fuzz_write_file(path, sizeof path, "json", data, size) < 0) return 0;
    if (evit_config_load(path, &c) == 0) {
        cJSON *j = evit_config_to_json(&c);
        memset(&back, 0, sizeof back);
        if (evit_config_from_json(j, path, "", &back) != 0 || memcmp(&c, &back, sizeof c) != 0) abort();
        cJSON_Delete(j);
    }
    memset(&r, 0, sizeof r);
    if (evit_recipe_load(path, NULL, &r) == 0) evit_recipe_free(&r);
    memset(&r, 0, sizeof r);
    if (evit_recipe_load(path, "full", &r) == 0) evit_recipe_free(&r);
    remove(path);
    return 0;
}
