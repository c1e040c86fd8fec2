/* evit-init: a freshly initialised checkpoint from a model config. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "ckpt.h"
#include "cli.h"
#include "config.h"
#include "dataset.h"
#include "head.h"
#include "util.h"
#include "vit.h"

static const char *usage =
    "usage: evit-init CONFIG -o MODEL.h5 [--seed S] [--data DATA.h5]\n"
    "\n"
    "Writes a checkpoint initialised as timm does (truncated normal, std 0.02, for\n"
    "weights and embeddings; zeros for biases; ones for LayerNorm weights).\n"
    "\n"
    "  CONFIG            a model config file, or a name from configs/models\n"
    "                    (fm-tiny, fm-small, deit-tiny, deit-small)\n"
    "  -o, --output F    checkpoint to write (HDF5)\n"
    "  -s, --seed S      random seed (default 0); same seed, same weights\n"
    "  -d, --data F      dataset whose normalisation (mean/std) and class names\n"
    "                    the model adopts; without it mean 0, std 1\n"
    "  -q, --quiet       accepted for symmetry (evit-init prints errors only)\n"
    "  -h, --help        this text\n"
    "  -V, --version     print the version\n";

int main(int argc, char **argv)
{
    const char *out = NULL, *data = NULL;
    unsigned long long seed = 0;
    int quiet = 0, first;
    const struct evit_opt opts[] = {EVIT_OPT_S("output", 'o', &out), EVIT_OPT_U("seed", 's', &seed),
                                    EVIT_OPT_S("data", 'd', &data), EVIT_OPT_END};
    evit_cli_init();
    int r = evit_cli_parse(argc, argv, "evit-init", usage, opts, 0, &quiet, NULL, &first);
    if (r != EVIT_CLI_NEXT) return r == EVIT_CLI_DONE ? EVIT_EXIT_OK : r;
    if (first != argc - 1) return evit_cli_usage_error("evit-init", "expected one CONFIG argument");
    if (!out) return evit_cli_usage_error("evit-init", "missing -o MODEL.h5");

    struct evit_vit_config cfg;
    struct evit_vit m;
    struct evit_dataset d = {0};
    struct evit_ckpt_meta meta = {.stage = "init"};
    if (evit_config_load(argv[first], &cfg) < 0) return EVIT_EXIT_FAIL;
    if (data) {
        /* the dataset of the model's task: masks for a segmentation head */
        unsigned task = evit_head_is_seg(cfg.head) ? EVIT_TASK_SEGMENT : EVIT_TASK_CLASSIFY;
        if (evit_dataset_load_header_task(data, &d, task) < 0) return EVIT_EXIT_FAIL;
        if (d.h != cfg.img_size || d.w != cfg.img_size || d.c != cfg.channels || d.classes != cfg.classes) {
            evit_error("%s: holds %dx%dx%d images of %d classes, model %s takes %dx%dx%d and %d",
                       data, d.h, d.w, d.c, d.classes, cfg.name, cfg.img_size, cfg.img_size,
                       cfg.channels, cfg.classes);
            evit_dataset_free(&d);
            return EVIT_EXIT_FAIL;
        }
    }
    evit_vit_alloc(&m, &cfg);
    evit_vit_init(&m, seed);
    if (data) {
        for (int i = 0; i < cfg.channels; i++) {
            m.mean[i] = d.mean[i];
            m.std[i] = d.std[i];
        }
        meta.classes = d.classes;
        meta.class_names = d.class_names;
    }
    int rc = evit_ckpt_save(out, &m, &meta);
    if (rc == 0)
        evit_info("initialised %s (%ld parameters, %.1f MFLOPs/image, seed %llu) -> %s", cfg.name,
                  evit_config_params(&cfg), evit_config_mflops(&cfg), seed, out);
    evit_vit_free(&m);
    evit_dataset_free(&d);
    return rc == 0 ? EVIT_EXIT_OK : EVIT_EXIT_FAIL;
}
