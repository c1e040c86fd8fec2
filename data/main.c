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
#include "scenes.h"
#include "util.h"

#define PROG "evit-data"

static const char *usage =
    "usage: evit-data COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  import   convert IDX files or a PNG class folder into a dataset (HDF5), or\n"
    "           PNG image/mask folders into a segmentation dataset\n"
    "  scenes   compose a one-channel dataset's items on larger canvases: a\n"
    "           segmentation dataset (Fashion-MNIST scenes)\n"
    "  info     describe a dataset or a checkpoint\n"
    "\n"
    "  -h, --help        this text ('evit-data COMMAND --help' for a command)\n"
    "  -V, --version     print the version\n";

static const char *usage_import =
    "usage: evit-data import --idx IMAGES LABELS -o OUT.h5 [--names NAMES]\n"
    "       evit-data import --png DIR -o OUT.h5 --size S --channels C [--resize]\n"
    "       evit-data import --seg IMAGES MASKS -o OUT.h5 [--channels C] [--size S]\n"
    "                        [--ignore V] [--names NAMES]\n"
    "\n"
    "Writes a dataset: uint8 images (N, H, W, C), int32 labels (or, with --seg,\n"
    "uint8 masks (N, H, W)), class names and per-channel mean/std.  The output\n"
    "appears only when the import succeeds.\n"
    "\n"
    "  --idx IMAGES LABELS  IDX image (rank 3) and label (rank 1) files, raw or .gz\n"
    "  --names NAMES        class names for IDX or --seg: fashion-mnist, mnist, or a\n"
    "                       comma list (a,b,c); the count sets the number of\n"
    "                       classes (IDX default: 10 classes named 0..9)\n"
    "  --png DIR            DIR/CLASS/*.png; classes and files sorted by name\n"
    "  --size S             image side in pixels (PNG import)\n"
    "  --channels C         1 (gray), 3 (RGB); 2 and 4 keep alpha (PNG import)\n"
    "  --resize             scale images of another size instead of rejecting them\n"
    "  --seg IMAGES MASKS   IMAGES/NAME.png with MASKS/NAME.png, matched by name;\n"
    "                       a mask is one channel of class indices (gray or\n"
    "                       palette PNG); classes from --names, else the largest\n"
    "                       index + 1; --channels defaults to 3; --size S resizes\n"
    "                       (images bilinear, masks nearest), else every pair must\n"
    "                       be the first one's size\n"
    "  --ignore V           mask value of unlabelled pixels (e.g. 255), not a class\n"
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
    const char *idx_images, *idx_labels, *png_dir, *seg_images, *seg_masks, *out, *names;
    long size, channels, ignore;
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

static void free_names(char **v, int n)
{
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
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
        free_names(d->class_names, d->classes);
        d->class_names = names;
    }
    return EVIT_OK;
fail:
    free_names(names, classes);
    return EVIT_ERR;
}

static int import_seg(const struct import_args *a, struct evit_dataset *d)
{
    struct evit_pngdir_seg o = {.channels = a->channels ? (int)a->channels : 3, .size = (int)a->size,
                                .ignore = (int)a->ignore};
    if (a->names) {
        o.names = parse_names(a->names, &o.classes);
        EVIT_ASSERT(o.names != NULL); /* checked while parsing options */
    }
    int rc = evit_pngdir_import_seg(a->seg_images, a->seg_masks, &o, d);
    free_names(o.names, o.classes);
    return rc;
}

static int check_import_args(const struct import_args *a)
{
    int n;
    if (!!a->idx_images + !!a->png_dir + !!a->seg_images != 1)
        return evit_cli_usage_error(PROG " import", "give exactly one of --idx, --png and --seg");
    if (!a->out) return evit_cli_usage_error(PROG " import", "missing -o OUT.h5");
    if (a->idx_images && !a->idx_labels)
        return evit_cli_usage_error(PROG " import", "--idx needs IMAGES and LABELS");
    if (a->seg_images && !a->seg_masks) return evit_cli_usage_error(PROG " import", "--seg needs IMAGES and MASKS");
    if (a->idx_images && (a->size || a->channels || a->resize))
        return evit_cli_usage_error(PROG " import",
                                    "--size, --channels and --resize are for --png");
    if (a->png_dir && a->names)
        return evit_cli_usage_error(PROG " import",
                                    "--names is for --idx (PNG classes are folder names)");
    if (a->png_dir && (!a->size || !a->channels))
        return evit_cli_usage_error(PROG " import", "--png needs --size and --channels");
    if (a->seg_images && a->resize)
        return evit_cli_usage_error(PROG " import", "--resize is for --png (--seg resizes when --size is given)");
    if (!a->seg_images && a->ignore >= 0) return evit_cli_usage_error(PROG " import", "--ignore is for --seg");
    if (a->names) {
        char **v = parse_names(a->names, &n);
        if (!v)
            return evit_cli_usage_error(PROG " import",
                                        "--names: need at least 2 non-empty names: %s",
                                        a->names);
        free_names(v, n);
        if (a->seg_images && a->ignore >= 0 && a->ignore < n)
            return evit_cli_usage_error(PROG " import", "--ignore %ld is a class index (%d names)", a->ignore, n);
    }
    return EVIT_EXIT_OK;
}

static int parse_import(int argc, char **argv, struct import_args *a)
{
    const struct evit_opt opts[] = {EVIT_OPT_S("idx", 0, &a->idx_images), EVIT_OPT_S("png", 0, &a->png_dir),
                                    EVIT_OPT_S("seg", 0, &a->seg_images),  EVIT_OPT_S("names", 0, &a->names),
                                    EVIT_OPT_L("size", 0, &a->size, 1, 4096),
                                    EVIT_OPT_L("channels", 0, &a->channels, 1, 4),
                                    EVIT_OPT_L("ignore", 0, &a->ignore, 0, 255),
                                    EVIT_OPT_ON("resize", 0, &a->resize),  EVIT_OPT_S("output", 'o', &a->out),
                                    EVIT_OPT_END};
    int first, r = evit_cli_parse(argc, argv, PROG " import", usage_import, opts, EVIT_CLI_THREADS, &a->quiet, NULL,
                                  &first);
    if (r != EVIT_CLI_NEXT) return r;
    /* LABELS (MASKS) is the operand that follows --idx IMAGES (--seg
     * IMAGES); getopt leaves it among the operands */
    int rest = argc - first;
    int used = (a->idx_images || a->seg_images) && rest >= 1;
    if (used) *(a->idx_images ? &a->idx_labels : &a->seg_masks) = argv[first];
    if (rest > used)
        return evit_cli_usage_error(PROG " import", "unexpected argument: %s",
                                    argv[first + used]);
    return check_import_args(a);
}

static int cmd_import(int argc, char **argv)
{
    struct import_args a = {.ignore = -1};
    int rc = parse_import(argc, argv, &a);
    if (rc < 0) return EVIT_EXIT_OK; /* --help */
    if (rc != EVIT_EXIT_OK) return rc;
    struct evit_dataset d = {0};
    double t0 = evit_now();
    if (a.idx_images)
        rc = import_idx(&a, &d);
    else if (a.seg_images)
        rc = import_seg(&a, &d);
    else
        rc = evit_pngdir_import(a.png_dir, (int)a.channels, (int)a.size, a.resize, &d);
    if (rc == 0) rc = evit_dataset_save(&d, a.out);
    if (rc == 0 && !a.quiet)
        evit_info("imported %d %s %dx%dx%d, %d classes -> %s (%.1f s)", d.n, d.masks ? "image/mask pairs" : "images",
                  d.h, d.w, d.c, d.classes, a.out, evit_now() - t0);
    evit_dataset_free(&d);
    return rc == 0 ? EVIT_EXIT_OK : EVIT_EXIT_FAIL;
}

/* ---------------------------------------------------------------- scenes */

static const char *usage_scenes =
    "usage: evit-data scenes DATA.h5 -o OUT.h5 --count N [--size S] [--items MIN,MAX]\n"
    "                        [--scale MIN,MAX] [--threshold V] [--seed S]\n"
    "\n"
    "Composes the items of a one-channel classification dataset (Fashion-MNIST)\n"
    "at random positions and scales on larger canvases over a textured\n"
    "background: a segmentation dataset whose class 0 is the background and\n"
    "class k + 1 the source's class k, each mask taken from the item's own\n"
    "pixels (later items drawn over earlier ones).  Deterministic from the seed;\n"
    "scene i depends only on the seed and i.  Make the train scenes from the\n"
    "train split and the test scenes from the test split, with two seeds.\n"
    "\n"
    "  --count N          scenes to make\n"
    "  --size S           canvas side in pixels (default 96)\n"
    "  --items MIN,MAX    items per scene, uniform (default 1,4; at most 16)\n"
    "  --scale MIN,MAX    item side over the source's, uniform (default 0.75,1.75)\n"
    "  --threshold V      source pixels above V are the item's mask (default 24)\n"
    "  --seed S           seed (default 0)\n"
    "  -o, --output F     dataset to write\n"
    "  -q, --quiet        no summary line\n"
    "  -h, --help         this text\n"
    "  -V, --version      print the version\n";

/* "A,B" into two numbers; 0 when it is not two numbers. */
static int parse_pair(const char *arg, double *a, double *b)
{
    char *end;
    *a = strtod(arg, &end);
    if (end == arg || *end != ',') return 0;
    const char *p = end + 1;
    *b = strtod(p, &end);
    return end != p && *end == '\0';
}

static int cmd_scenes(int argc, char **argv)
{
    struct evit_scenes_opts o;
    const char *out = NULL, *items = NULL, *scale = NULL;
    long size = 96, count = 0, threshold = 24;
    unsigned long long seed = 0;
    int quiet = 0, first;
    evit_scenes_defaults(&o);
    const struct evit_opt opts[] = {EVIT_OPT_S("output", 'o', &out),       EVIT_OPT_L("count", 0, &count, 1, 10000000),
                                    EVIT_OPT_L("size", 0, &size, 8, 4096),   EVIT_OPT_S("items", 0, &items),
                                    EVIT_OPT_S("scale", 0, &scale),          EVIT_OPT_L("threshold", 0, &threshold, 0, 254),
                                    EVIT_OPT_U("seed", 0, &seed),            EVIT_OPT_END};
    int r = evit_cli_parse(argc, argv, PROG " scenes", usage_scenes, opts, 0, &quiet, NULL, &first);
    if (r == EVIT_CLI_DONE) return EVIT_EXIT_OK;
    if (r != EVIT_CLI_NEXT) return r;
    if (argc - first != 1) return evit_cli_usage_error(PROG " scenes", "expected one DATA.h5");
    if (!out) return evit_cli_usage_error(PROG " scenes", "missing -o OUT.h5");
    if (!count) return evit_cli_usage_error(PROG " scenes", "missing --count N");
    double lo, hi;
    if (items) {
        if (!parse_pair(items, &lo, &hi) || lo != (int)lo || hi != (int)hi || lo < 1 || hi < lo || hi > 16)
            return evit_cli_usage_error(PROG " scenes", "--items takes MIN,MAX with 1 <= MIN <= MAX <= 16: %s", items);
        o.min_items = (int)lo;
        o.max_items = (int)hi;
    }
    if (scale) {
        if (!parse_pair(scale, &lo, &hi) || !(lo > 0.0) || !(hi >= lo) || hi > 64.0)
            return evit_cli_usage_error(PROG " scenes", "--scale takes MIN,MAX with 0 < MIN <= MAX: %s", scale);
        o.min_scale = lo;
        o.max_scale = hi;
    }
    o.size = (int)size;
    o.count = (int)count;
    o.threshold = (int)threshold;
    o.seed = (uint64_t)seed;
    struct evit_dataset src, d = {0};
    const char *data = argv[first];
    double t0 = evit_now();
    if (evit_dataset_load(data, &src) < 0) return EVIT_EXIT_FAIL;
    int rc = evit_scenes_make(&d, &src, data, &o);
    if (rc == 0) rc = evit_dataset_save(&d, out);
    if (rc == 0 && !quiet)
        evit_info("made %d scenes %dx%d of %s, %d classes -> %s (%.1f s)", d.n, d.h, d.w, data, d.classes, out,
                  evit_now() - t0);
    evit_dataset_free(&src);
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
    if (evit_dataset_load_task(path, &d, EVIT_TASK_CLASSIFY | EVIT_TASK_SEGMENT) < 0) return EVIT_ERR;
    /* images per class, or pixels per class (and ignored) of the masks */
    size_t hw = (size_t)d.h * d.w, ignored = 0;
    size_t *count = evit_calloc((size_t)d.classes, sizeof *count);
    if (d.masks) {
        for (size_t i = 0; i < (size_t)d.n * hw; i++) {
            if (d.masks[i] < d.classes) count[d.masks[i]]++;
            else ignored++;
        }
    } else {
        for (int i = 0; i < d.n; i++) count[d.labels[i]]++;
    }
    printf("format: evit-dataset\n");
    printf("task: %s\n", d.masks ? "segmentation" : "classification");
    printf("count: %d\n", d.n);
    printf("shape: %dx%dx%d\n", d.h, d.w, d.c);
    printf("classes: %d%s\n", d.classes, d.masks ? " (pixels per class)" : "");
    for (int k = 0; k < d.classes; k++)
        printf("  %d %s: %zu\n", k, d.class_names[k], count[k]);
    if (d.masks && d.ignore >= 0) printf("ignore_index: %d (%zu pixels)\n", d.ignore, ignored);
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
    printf("head: %s\n", evit_config_head_name(cfg.head));
    if (cfg.head == EVIT_HEAD_SEG_MLP) {
        printf("decoder: dim %d, levels", cfg.decoder_dim);
        for (int i = 0; i < cfg.decoder_nlevels; i++) printf(" %d", cfg.decoder_levels[i]);
        printf("\n");
    }
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
    if (argc < 2) return evit_cli_usage_error(PROG, "missing COMMAND (import, scenes or info)");
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
    if (strcmp(cmd, "scenes") == 0) return cmd_scenes(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0) return cmd_info(argc - 1, argv + 1);
    return evit_cli_usage_error(PROG, "unknown command: %s", cmd);
}
