/* evit-import: a timm ViT in safetensors format as an evit checkpoint. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "config.h"
#include "dataset.h"
#include "h5.h"
#include "import.h"
#include "report.h"
#include "safetensors.h"
#include "util.h"

static const char *usage =
    "usage: evit-import MODEL.safetensors -o MODEL.h5 (--heads H | --config CFG) [options]\n"
    "\n"
    "Reads a timm VisionTransformer state_dict saved as safetensors (F32, F16\n"
    "or BF16 tensors; the format timm's pretrained weights are published in)\n"
    "and writes an evit checkpoint that every stage reads.  The model's shape\n"
    "comes from the tensors (patch, width, depth, MLP widths, classes, image\n"
    "size from pos_embed); the head count does not, so give it.\n"
    "\n"
    "  -o, --output F        checkpoint to write (HDF5, atomically)\n"
    "  -H, --heads H         attention heads per block (ViT-Ti 3, S 6, B 12)\n"
    "  -c, --config CFG      or a model config (file or configs/models name)\n"
    "                        that the file must match; gives heads and name\n"
    "  -k, --num-classes K   replace the classifier by a new K-class head\n"
    "                        (initialised as evit-init does, from --seed)\n"
    "  -s, --seed S          seed for the new head (default 0)\n"
    "      --mean A[,B,C]    per-channel mean on pixel/255 the weights were\n"
    "      --std A[,B,C]     trained with (default 0.5 and 0.5: timm's augreg\n"
    "                        ViTs; DeiT uses 0.485,0.456,0.406 and\n"
    "                        0.229,0.224,0.225)\n"
    "  -d, --data F          a dataset whose class names the model takes (its\n"
    "                        image size and channels must match the model's)\n"
    "  -n, --name NAME       model name (default: the config's, or \"imported\")\n"
    "  -r, --report F        also write a JSON report\n"
    "  -q, --quiet           no summary line\n"
    "  -h, --help            this text\n"
    "  -V, --version         print the version\n"
    "\n"
    "Architectures evit does not compute (distillation token, layer scale,\n"
    "relative position bias, register tokens, average pooling, ...) are\n"
    "refused with the tensors that show them.\n";

struct import_args {
    const char *in, *out, *config, *data, *report, *name;
    const char *mean, *std;
    int heads, classes, quiet;
    unsigned long long seed;
};

static int parse_args(int argc, char **argv, struct import_args *a)
{
    const struct evit_opt opts[] = {EVIT_OPT_S("output", 'o', &a->out),
                                    EVIT_OPT_I("heads", 'H', &a->heads, 1, 1024),
                                    EVIT_OPT_S("config", 'c', &a->config),
                                    EVIT_OPT_I("num-classes", 'k', &a->classes, 2, 100000),
                                    EVIT_OPT_U("seed", 's', &a->seed),
                                    EVIT_OPT_S("mean", 0, &a->mean),
                                    EVIT_OPT_S("std", 0, &a->std),
                                    EVIT_OPT_S("data", 'd', &a->data),
                                    EVIT_OPT_S("name", 'n', &a->name),
                                    EVIT_OPT_S("report", 'r', &a->report),
                                    EVIT_OPT_END};
    int first, r = evit_cli_parse(argc, argv, "evit-import", usage, opts, 0, &a->quiet, NULL, &first);
    if (r != EVIT_CLI_NEXT) return r;
    if (argc - first != 1) return evit_cli_usage_error("evit-import", "expected one MODEL.safetensors");
    if (!a->out) return evit_cli_usage_error("evit-import", "-o MODEL.h5 is required");
    if (!a->heads && !a->config)
        return evit_cli_usage_error("evit-import", "the head count is not in the file: give --heads H or --config");
    if (a->name && strlen(a->name) >= EVIT_NAME_MAX)
        return evit_cli_usage_error("evit-import", "--name: longer than %d characters", EVIT_NAME_MAX - 1);
    a->in = argv[first];
    return EVIT_EXIT_OK;
}

/* "0.485,0.456,0.406": one value per channel, or one for all. */
static int parse_channels(const char *arg, const char *opt, int channels, int positive, float *out)
{
    float v[4];
    int n = 0, c;
    const char *p = arg;
    while (n < 4) {
        char *end;
        double d = strtod(p, &end);
        if (end == p || (*end && *end != ',') || !(d > -1e6 && d < 1e6) || (positive && !(d > 0))) break;
        v[n++] = (float)d;
        if (!*end) {
            if (n != 1 && n != channels) break;
            for (c = 0; c < channels; c++) out[c] = v[n == 1 ? 0 : c];
            return EVIT_OK;
        }
        p = end + 1;
    }
    return evit_error("%s: expected one number or %d comma-separated%s numbers, got \"%s\"", opt, channels,
                      positive ? " positive" : "", arg);
}

/* Class names from a dataset whose images the model takes. */
static int adopt_classes(const char *data, const struct evit_vit_config *cfg, struct evit_dataset *d,
                         struct evit_ckpt_meta *meta)
{
    if (evit_dataset_load_header(data, d) < 0) return EVIT_ERR;
    if (d->h != cfg->img_size || d->w != cfg->img_size || d->c != cfg->channels || d->classes != cfg->classes)
        return evit_error("%s: holds %dx%dx%d images of %d classes, the imported model takes %dx%dx%d and %d "
                          "(--num-classes replaces the head)",
                          data, d->h, d->w, d->c, d->classes, cfg->img_size, cfg->img_size, cfg->channels,
                          cfg->classes);
    meta->classes = d->classes;
    meta->class_names = d->class_names;
    return EVIT_OK;
}

/* The checkpoint, with where it came from in its attributes. */
static int save(const struct import_args *a, const struct evit_vit *m, const struct evit_ckpt_meta *meta,
                const struct evit_safetensors *st, uint64_t fnv)
{
    hid_t f;
    char hex[32];
    char *tmp = evit_temp_path(a->out);
    int rc = EVIT_ERR;
    snprintf(hex, sizeof hex, "%016" PRIx64, fnv);
    if (evit_h5_create(tmp, &f) < 0) goto out;
    int ok = evit_ckpt_write(f, a->out, m, meta) == 0 && evit_h5_attr_write_string(f, "source", a->in) == 0 &&
             evit_h5_attr_write_string(f, "source_format", "safetensors") == 0 &&
             evit_h5_attr_write_string(f, "source_fnv1a64", hex) == 0;
    if (ok && st->metadata) ok = evit_h5_attr_write_string(f, "source_metadata", st->metadata) == 0;
    if (ok && a->classes) ok = evit_h5_attr_write_string(f, "source_head", "replaced") == 0;
    rc = evit_h5_finish(f, tmp, a->out, ok);
out:
    free(tmp);
    return rc;
}

static int write_report(const struct import_args *a, const struct evit_vit *m, const struct evit_safetensors *st,
                        double t0)
{
    cJSON *r = evit_report_new("import", a->out, NULL, NULL);
    evit_report_add_model(r, &m->cfg, 4.0 * (double)evit_config_params(&m->cfg));
    cJSON_AddStringToObject(r, "source", a->in);
    cJSON_AddStringToObject(r, "source_format", "safetensors");
    cJSON_AddNumberToObject(r, "source_tensors", st->n);
    cJSON_AddBoolToObject(r, "head_replaced", a->classes > 0);
    int rc = evit_report_save(r, a->report, evit_now() - t0);
    cJSON_Delete(r);
    return rc;
}

int main(int argc, char **argv)
{
    struct import_args a = {0};
    struct evit_safetensors st = {0};
    struct evit_vit_config cfg, given;
    struct evit_vit m = {0};
    struct evit_dataset d = {0};
    struct evit_ckpt_meta meta = {.stage = "import"};
    struct evit_import_opts o = {0};
    int rc = EVIT_EXIT_FAIL, i;
    double t0 = evit_now();
    evit_cli_init();
    int pa = parse_args(argc, argv, &a);
    if (pa == -1) return EVIT_EXIT_OK;
    if (pa != EVIT_EXIT_OK) return pa;

    if (a.config) {
        if (evit_config_load(a.config, &given) < 0) return EVIT_EXIT_FAIL;
        o.config = &given;
    }
    o.heads = a.heads;
    o.num_classes = a.classes;
    o.seed = a.seed;
    o.name = a.name;
    if (evit_safetensors_load(a.in, &st) < 0) goto fail;
    if (evit_import_config(&cfg, &st, a.in, &o) < 0 || evit_import_model(&m, &cfg, &st, a.in, &o) < 0) goto fail;
    if (a.mean && parse_channels(a.mean, "--mean", cfg.channels, 0, m.mean) < 0) goto fail;
    if (a.std && parse_channels(a.std, "--std", cfg.channels, 1, m.std) < 0) goto fail;
    if (a.data && adopt_classes(a.data, &cfg, &d, &meta) < 0) goto fail;
    if (save(&a, &m, &meta, &st, evit_fnv1a64(st.owned, (size_t)(st.data - st.owned) + st.data_size,
                                              EVIT_FNV_SEED)) < 0)
        goto fail;
    if (a.report && write_report(&a, &m, &st, t0) < 0) goto fail;
    if (!a.quiet) {
        printf("%s: %s, %dx%dx%d, patch %d, dim %d, depth %d, heads", a.out, cfg.name, cfg.img_size, cfg.img_size,
               cfg.channels, cfg.patch, cfg.dim, cfg.depth);
        for (i = 0; i < cfg.depth && i < 3; i++) printf("%s%d", i ? "," : " ", cfg.blocks[i].heads);
        printf("%s, %d classes%s, %ld parameters from %d tensors\n", cfg.depth > 3 ? ",..." : "", cfg.classes,
               a.classes ? " (new head)" : "", evit_config_params(&cfg), st.n);
    }
    rc = EVIT_EXIT_OK;
fail:
    evit_vit_free(&m);
    evit_dataset_free(&d);
    evit_safetensors_free(&st);
    return rc;
}
