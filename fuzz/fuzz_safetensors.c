/* fuzz_safetensors.c: libFuzzer target for the safetensors reader and the
 * importer behind evit-import.  Any input must parse or be refused with an
 * error, never crash, read out of bounds or leak; a file that parses has
 * every tensor converted (which touches every byte its offsets claim), and
 * the importer infers a config from it and, for models under a million
 * parameters, fills a ViT.
 *
 *   fuzz/run.sh builds it (clang -fsanitize=fuzzer,address,undefined) with
 *   import/safetensors.c, import/import.c and the libevit files they use. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "import.h"
#include "safetensors.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct evit_safetensors st;
    struct evit_vit_config cfg;
    struct evit_vit m;
    struct evit_import_opts o = {.heads = 1};
    int i;
    if (evit_safetensors_parse(&st, data, size, "fuzz") < 0) return 0;
    for (i = 0; i < st.n; i++) {
        float *out = malloc(sizeof(float) * (st.t[i].numel ? st.t[i].numel : 1));
        evit_safetensors_read(out, &st, &st.t[i]);
        free(out);
    }
    if (evit_import_config(&cfg, &st, "fuzz", &o) == 0 && evit_config_params(&cfg) < 1000000 &&
        evit_import_model(&m, &cfg, &st, "fuzz", &o) == 0)
        evit_vit_free(&m);
    evit_safetensors_free(&st);
    return 0;
}
