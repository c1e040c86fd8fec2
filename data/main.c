/* evit-data: datasets in, dataset and checkpoint summaries out. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "config.h"
#include "dataset.h"
#include "h5.h"
#include "idx.h"
#include "pngdir.h"
#include "pngio.h"
#include "util.h"

#define PROG "evit-data"

static const char *usage =
    "usage: evit-data COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  import   convert IDX files or a PNG class folder into a dataset (HDF5)\n"
    "  info     describe a dataset or a checkpoint\n"
    "\n"
    "  -h, --help        this text ('evit-data COMMAND --help' for a command)\n"
    "  -V, --version     print the version\n";

static const char *usage_import =
    "usage: evit-data import --idx IMAGES LABELS -o OUT.h5 [--names NAMES]\n"
    "       evit-data import --png DIR -o OUT.h5 --size S --channels C [--resize]\n"
    "\n"
    "Writes a dataset: uint8 images (N, H, W, C), int32 labels, class names and\n"
    "per-channel mean/std.  The output appears only when the import succeeds.\n"
    "\n"
    "  --idx IMAGES LABELS  IDX image (rank 3) and label (rank 1) files, raw or .gz\n"
    "  --names NAMES        class names for IDX: fashion-mnist, mnist, or a comma\n"
    "                       list (a,b,c); the count sets the number of classes\n"
    "                       (default: 10 classes named 0..9)\n"
    "  --png DIR            DIR/CLASS/*.png; classes and files sorted by name\n"
    "  --size S             image side in pixels (PNG import)\n"
    "  --channels C         1 (gray), 3 (RGB); 2 and 4 keep alpha (PNG import)\n"
    "  --resize             scale images of another size instead of rejecting them\n"
    "  -o, --output F       dataset to write\n"
    "  -t, --threads N      threads (1..256)\n"
    "  -q, --quiet          no summary line\n"
    "  -h, --help           this text\n"
    "  -V, --version        print the version\n";

static const char *usage_info =
    "usage: evit-data info FILE.h5\n"
    "\n"
    "Prints what an evit dataset holds (count, shape, classes with counts,\n"
    "mean/std, source) or a checkpoint's model (shape per block, parameters,\n"
    "MFLOPs per image, stage) to stdout.\n"
    "\n"
    "  -h, --help        this text\n";

static const char *const fashion_names[] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                            "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                            "Bag",         "Ankle boot"};

/* ---------------------------------------------------------------- import */

struct import_args {
    const char *idx_images, *idx_labels, *png_dir, *out, *names;
    long size, channels;
    int resize, quiet;
};

/* "fashion-mnist", "mnist" or "a,b,c" -> owned strings; NULL when fewer than
 * two names or one is empty. */
static char **parse_names(const char *arg, int *n)
{
    if (strcmp(arg, "fashion-mnist") == 0) {
        *n = 10;
        char **v = evit_calloc(10, sizeof *v);
        for (int i = 0; i < 10; i++) v[i] = evit_strdup(fashion_names[i]);
        return v;
    }
    if (strcmp(arg, "mnist") == 0) arg = "0,1,2,3,4,5,6,7,8,9";
    int k = 1;
    for (const char *p = arg; *p; p++) k += *p == ',';
    char **v = evit_calloc((size_t)k, sizeof *v);
    const char *p = arg;
    for (int i = 0; i < k; i++) {
        size_t len = strcspn(p, ",");
        v[i] = evit_malloc(len + 1);
        memcpy(v[i], p, len);
        v[i][len] = '\0';
        p += len + (p[len] == ',');
    }
    int ok = k >= 2;
    for (int i = 0; i < k; i++) ok = ok && v[i][0];
    if (!ok) {
        for (int i = 0; i < k; i++) free(v[i]);
        free(v);
        return NULL;
    }
    *n = k;
    return v;
}

static int import_idx(const struct import_args *a, struct evit_dataset *d)
{
    int classes = 10;
    char **names = NULL;
    if (a->names) {
        names = parse_names(a->names, &classes);
        EVIT_ASSERT(names != NULL); /* checked while parsing options */
    }
    if (evit_idx_import(a->idx_images, a->idx_labels, classes, d) < 0) goto fail;
    if (names) {
        for (int i = 0; i < d->classes; i++) free(d->class_names[i]);
        free(d->class_names);
        d->class_names = names;
    }
    return EVIT_OK;
fail:
    if (names) {
        for (int i = 0; i < classes; i++) free(names[i]);
        free(names);
    }
    return EVIT_ERR;
}

static int check_import_args(const struct import_args *a)
{
    int n;
    if (!a->idx_images == !a->png_dir)
        return evit_cli_usage_error(PROG " import", "give exactly one of --idx and --png");
    if (!a->out) return evit_cli_usage_error(PROG " import", "missing -o OUT.h5");
    if (a->idx_images && !a->idx_labels)
        return evit_cli_usage_error(PROG " import", "--idx needs IMAGES and LABELS");
    if (a->idx_images && (a->size || a->channels || a->resize))
        return evit_cli_usage_error(PROG " import",
                                    "--size, --channels and --resize are for --png");
    if (a->png_dir && a->names)
        return evit_cli_usage_error(PROG " import",
                                    "--names is for --idx (PNG classes are folder names)");
    if (a->png_dir && (!a->size || !a->channels))
        return evit_cli_usage_error(PROG " import", "--png needs --size and --channels");
    if (a->names) {
        char **v = parse_names(a->names, &n);
        if (!v)
            return evit_cli_usage_error(PROG " import",
                                        "--names: need at least 2 non-empty names: %s",
                                        a->names);
        for (int i = 0; i < n; i++) free(v[i]);
        free(v);
    }
    return EVIT_EXIT_OK;
}

static int parse_import(int argc, char **argv, struct import_args *a)
{
    const struct evit_opt opts[] = {EVIT_OPT_S("idx", 0, &a->idx_images), EVIT_OPT_S("png", 0, &a->png_dir),
                                    EVIT_OPT_S("names", 0, &a->names),     EVIT_OPT_L("size", 0, &a->size, 1, 4096),
                                    EVIT_OPT_L("channels", 0, &a->channels, 1, 4),
                                    EVIT_OPT_ON("resize", 0, &a->resize),  EVIT_OPT_S("output", 'o', &a->out),
                                    EVIT_OPT_END};
    int first, r = evit_cli_parse(argc, argv, PROG " import", usage_import, opts, EVIT_CLI_THREADS, &a->quiet, NULL,
                                  &first);
    if (r != EVIT_CLI_NEXT) return r;
    /* LABELS is the operand that follows --idx IMAGES; getopt leaves it
     * among the operands */
    int rest = argc - first;
    int used = a->idx_images && rest >= 1;
    if (used) a->idx_labels = argv[first];
    if (rest > used)
        return evit_cli_usage_error(PROG " import", "unexpected argument: %s",
                                    argv[first + used]);
    return check_import_args(a);
}

static int cmd_import(int argc, char **argv)
{
    struct import_args a = {0};
    int rc = parse_import(argc, argv, &a);
    if (rc < 0) return EVIT_EXIT_OK; /* --help */
    if (rc != EVIT_EXIT_OK) return rc;
    struct evit_dataset d = {0};
    double t0 = evit_now();
    if (a.idx_images)
        rc = import_idx(&a, &d);
    else
        rc = evit_pngdir_import(a.png_dir, (int)a.channels, (int)a.size, a.resize, &d);
    if (rc == 0) rc = evit_dataset_save(&d, a.out);
    if (rc == 0 && !a.quiet)
        evit_info("imported %d images %dx%dx%d, %d classes -> %s (%.1f s)", d.n, d.h, d.w, d.c,
                  d.classes, a.out, evit_now() - t0);
    evit_dataset_free(&d);
    return rc == 0 ? EVIT_EXIT_OK : EVIT_EXIT_FAIL;
}

/* ---------------------------------------------------------------- info */

static void print_floats(const char *key, const float *v, int n)
{
    printf("%s:", key);
    for (int i = 0; i < n; i++) printf(" %.4f", (double)v[i]);
    putchar('\n');
}

static int info_dataset(const char *path)
{
    struct evit_dataset d;
    if (evit_dataset_load(path, &d) < 0) return EVIT_ERR;
    int *count = evit_calloc((size_t)d.classes, sizeof *count);
    for (int i = 0; i < d.n; i++) count[d.labels[i]]++;
    printf("format: evit-dataset\n");
    printf("count: %d\n", d.n);
    printf("shape: %dx%dx%d\n", d.h, d.w, d.c);
    printf("classes: %d\n", d.classes);
    for (int k = 0; k < d.classes; k++)
        printf("  %d %s: %d\n", k, d.class_names[k], count[k]);
    print_floats("mean", d.mean, d.c);
    print_floats("std", d.std, d.c);
    printf("source: %s\n", d.source ? d.source : "");
    free(count);
    evit_dataset_free(&d);
    return EVIT_OK;
}

static int info_checkpoint(const char *path, hid_t f)
{
    struct evit_vit_config cfg;
    char *stage = NULL;
    if (evit_h5_attr_exists(f, "stage") && evit_h5_attr_read_string(f, path, "stage", &stage) < 0)
        return EVIT_ERR;
    if (evit_ckpt_load_config(path, &cfg) < 0) {
        free(stage);
        return EVIT_ERR;
    }
    printf("format: evit-checkpoint\n");
    printf("name: %s\n", cfg.name);
    printf("img_size: %d\nchannels: %d\npatch: %d\nclasses: %d\n", cfg.img_size, cfg.channels,
           cfg.patch, cfg.classes);
    printf("dim: %d\ndepth: %d\n", cfg.dim, cfg.depth);
    for (int l = 0; l < cfg.depth; l++)
        printf("  block %d: heads %d, head_dim %d, mlp %d\n", l, cfg.blocks[l].heads,
               cfg.blocks[l].head_dim, cfg.blocks[l].mlp);
    printf("params: %ld\n", evit_config_params(&cfg));
    printf("mflops: %.2f\n", evit_config_mflops(&cfg));
    printf("stage: %s\n", stage ? stage : "unknown");
    free(stage);
    return EVIT_OK;
}

static int info_file(const char *path)
{
    hid_t f;
    char *format = NULL;
    int rc = EVIT_ERR;
    if (evit_h5_open(path, &f) < 0) return EVIT_ERR;
    if (!evit_h5_attr_exists(f, "format")) {
        evit_error("%s: not an evit dataset or checkpoint (no 'format' attribute)", path);
        goto fail;
    }
    if (evit_h5_attr_read_string(f, path, "format", &format) < 0) goto fail;
    if (strcmp(format, "evit-dataset") == 0)
        rc = info_dataset(path);
    else if (strcmp(format, "evit-checkpoint") == 0)
        rc = info_checkpoint(path, f);
    else
        evit_error("%s: format '%s' is not a dataset or checkpoint", path, format);
fail:
    free(format);
    H5Fclose(f);
    return rc;
}

static int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_info, stdout);
            return EVIT_EXIT_OK;
        }
        return evit_cli_usage_error(PROG " info", "unknown option: %s", argv[optind - 1]);
    }
    if (optind != argc - 1) return evit_cli_usage_error(PROG " info", "expected one FILE.h5");
    return info_file(argv[optind]) == 0 ? EVIT_EXIT_OK : EVIT_EXIT_FAIL;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    evit_cli_init();
    if (argc < 2) return evit_cli_usage_error(PROG, "missing COMMAND (import or info)");
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        fputs(usage, stdout);
        return EVIT_EXIT_OK;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        puts(evit_cli_version());
        return EVIT_EXIT_OK;
    }
    /* each command parses its own options with argv[0] = the command */
    if (strcmp(cmd, "import") == 0) return cmd_import(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0) return cmd_info(argc - 1, argv + 1);
    return evit_cli_usage_error(PROG, "unknown command: %s", cmd);
}
