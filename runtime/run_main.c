/* evit-run: the device CLI.  Maps a model file (.evit) and classifies one
 * image, a stream of raw camera frames, or measures latency; with a
 * segmentation model (evrt.h, "Segmentation") it prints the classes of the
 * image's mask and their shares of its pixels, and writes the mask as a
 * palette PNG or a PGM of class indices.  Links libevrt and libm only (and
 * libpng when built with EVRT_RUN_PNG); C99 plus POSIX clocks, fstat,
 * getpid and getrusage.
 *
 * Images: binary PGM (P5) and PPM (P6) with maxval <= 255 always, PNG with
 * libpng.  An image of another size is resized to the model's with nearest
 * neighbour sampling (source pixel floor((x + 0.5) * w / W)), which is what
 * a camera pipeline that already crops to a square expects and adds no
 * blur; grey to RGB repeats the channel, RGB to grey averages with the
 * ITU-R 601 weights (0.299, 0.587, 0.114).  A mask is of the model's
 * input, img_size x img_size, whatever the image's size. */
#if !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef EVRT_RUN_PNG
#include <png.h>
#endif

#include "evrt.h"

#define EXIT_USAGE 2

#ifdef EVRT_RUN_PNG
#define EVRT_RUN_HAS_PNG 1
#else
#define EVRT_RUN_HAS_PNG 0
#endif

static const char *usage_text =
    "usage: evit-run MODEL.evit IMAGE [--mask OUT] [--logits] [--threads N]\n"
    "       evit-run MODEL.evit --raw WxHxC SOURCE [--mask DIR] [--threads N] [-q]\n"
    "       evit-run MODEL.evit --bench [--runs N] [--warmup N] [--threads N]\n"
    "\n"
    "Classifies IMAGE (PGM/PPM"
#ifdef EVRT_RUN_PNG
    ", PNG"
#endif
    ") with a model written by evit-export and prints the\n"
    "top-5 classes with their probabilities.  Images of another size are\n"
    "resized to the model's (nearest neighbour); grey and RGB convert.\n"
    "\n"
    "A segmentation model (evit-data info: head seg_linear or seg_mlp) gives a\n"
    "class per pixel of the resized image, its mask; evit-run prints one line,\n"
    "the number of classes in the mask, the 3 largest with their share of its\n"
    "pixels (largest first) and the milliseconds of inference (decoder\n"
    "included):\n"
    "  5 classes  0 81.23% background  2 9.10% Trouser  8 4.00% Sneaker  12.345 ms\n"
    "(names where the model has them).\n"
    "\n"
    "  --mask OUT     with a segmentation model, write the mask to OUT"
#ifdef EVRT_RUN_PNG
    ": a\n"
    "                 palette PNG, or a binary PGM (P5) when OUT ends in .pgm;\n"
    "                 pixel value = class index either way (the PNG's palette\n"
    "                 index, its colour fixed per class)\n"
#else
    " as a\n"
    "                 binary PGM (P5), pixel value = class index (PNG support\n"
    "                 was not built in)\n"
#endif
    "                 With --raw: one mask per frame into the directory DIR,\n"
    "                 DIR/frame-NNNNNN."
#ifdef EVRT_RUN_PNG
    "png"
#else
    "pgm"
#endif
    " (N from 0).  A class-head model has no\n"
    "                 mask: an error\n"
    "  --raw WxHxC    classify raw 8-bit frames of H rows of W pixels of C\n"
    "                 interleaved channels (1 grey, 3 RGB), back to back, from\n"
    "                 SOURCE: a file, or - for standard input (a camera\n"
    "                 pipeline); one line per frame, flushed at once:\n"
    "                   frame N class K p PROB ms LATENCY [CLASS NAME]\n"
    "                 (the name, when the model has names, is the rest of the\n"
    "                 line), for a segmentation model\n"
    "                   frame N ms LATENCY classes C K1 S1 [K2 S2 [K3 S3]] [NAMES]\n"
    "                 (C classes in the mask, the 3 largest with their shares\n"
    "                 of its pixels from 0 to 1, names joined by \", \");\n"
    "                 a summary on stderr at the end\n"
    "  -q             with --raw: no summary, and no latencies kept for it\n"
    "  --bench        time inference on a synthetic image: mean, median and\n"
    "                 p99 latency over the runs, and peak memory (a\n"
    "                 segmentation model: up to its mask)\n"
    "  --runs N       timed runs (default 50)\n"
    "  --warmup N     untimed runs first (default 5)\n"
    "  --threads N    inference threads (default 1; a Nano has 4 cores); more\n"
    "                 than the CPUs online run as one per CPU\n"
    "  --logits       print every class's logit instead, as an exact hex\n"
    "                 float (to compare devices bit for bit): lines \"K LOGIT\",\n"
    "                 for a segmentation model \"N K LOGIT\" for patch N\n"
    "                 (row-major on the patch grid) and class K\n"
    "  -h, --help     this text\n"
    "\n"
    "EVRT_KERNELS=ref|avx2|avx512vnni|amx|neon|dotprod picks the kernels (default:\n"
    "the fastest this CPU runs).  EVRT_OVERSUBSCRIBE=1 starts every thread --threads\n"
    "asks for, even beyond the CPUs online.\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "evit-run: %s%s\nTry 'evit-run --help'.\n", msg, arg ? arg : "");
    return EXIT_USAGE;
}

static int errorf(const char *path, const char *msg)
{
    fprintf(stderr, "error: %s: %s\n", path, msg);
    return 1;
}

/* ---------------------------------------------------------------- images */

struct image {
    int w, h, c; /* c: 1 grey, 3 RGB */
    unsigned char *px; /* (h, w, c) */
};

/* One PNM header integer, skipping white space and # comments. */
static int pnm_int(FILE *fp, long *v)
{
    int ch = fgetc(fp);
    *v = 0;
    for (;;) {
        if (ch == '#')
            while (ch != '\n' && ch != EOF) ch = fgetc(fp);
        else if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')
            ch = fgetc(fp);
        else
            break;
    }
    if (ch < '0' || ch > '9') return -1;
    while (ch >= '0' && ch <= '9') {
        *v = *v * 10 + (ch - '0');
        if (*v > 1000000) return -1;
        ch = fgetc(fp);
    }
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ? 0 : -1; /* one white space ends it */
}

static const char *read_pnm(FILE *fp, struct image *im)
{
    char magic[2];
    long w, h, maxval;
    size_t n;
    if (fread(magic, 1, 2, fp) != 2 || magic[0] != 'P' || (magic[1] != '5' && magic[1] != '6'))
        return "not a binary PGM/PPM (P5/P6)";
    im->c = magic[1] == '5' ? 1 : 3;
    if (pnm_int(fp, &w) < 0 || pnm_int(fp, &h) < 0 || pnm_int(fp, &maxval) < 0 || w < 1 || h < 1)
        return "bad PGM/PPM header";
    if (maxval < 1 || maxval > 255) return "PGM/PPM maxval must be 1..255 (8-bit)";
    if ((double)w * (double)h > 1e8) return "image too large";
    im->w = (int)w;
    im->h = (int)h;
    n = (size_t)w * (size_t)h * (size_t)im->c;
    im->px = malloc(n);
    if (!im->px) return "out of memory";
    if (fread(im->px, 1, n, fp) != n) return "truncated pixel data";
    if (maxval != 255) {
        size_t i;
        for (i = 0; i < n; i++) {
            long v = im->px[i] > maxval ? maxval : im->px[i];
            im->px[i] = (unsigned char)((v * 255 + maxval / 2) / maxval);
        }
    }
    return NULL;
}

#ifdef EVRT_RUN_PNG
/* libpng's errors without its own line on stderr: the caller prints one. */
static void png_quiet_error(png_structp png, png_const_charp msg)
{
    (void)msg;
    png_longjmp(png, 1);
}

static void png_quiet_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static const char *read_png(FILE *fp, struct image *im)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_quiet_error, png_quiet_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = NULL;
    const char *msg = NULL;
    int y, ct;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return "out of memory";
    }
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return "damaged PNG";
    }
    png_init_io(png, fp);
    png_read_info(png, info);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_packing(png);
    ct = png_get_color_type(png, info);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
    png_read_update_info(png, info);
    im->w = (int)png_get_image_width(png, info);
    im->h = (int)png_get_image_height(png, info);
    im->c = (int)png_get_channels(png, info);
    if (im->c != 1 && im->c != 3) msg = "unsupported PNG channel layout";
    else if ((double)im->w * im->h > 1e8) msg = "image too large";
    if (!msg) {
        im->px = malloc((size_t)im->w * im->h * im->c);
        rows = malloc((size_t)im->h * sizeof *rows);
        if (!im->px || !rows) msg = "out of memory";
    }
    if (!msg) {
        for (y = 0; y < im->h; y++) rows[y] = im->px + (size_t)y * im->w * im->c;
        png_read_image(png, rows);
    }
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return msg;
}
#endif

static const char *read_image(const char *path, struct image *im)
{
    unsigned char sig[8] = {0};
    const char *msg;
    FILE *fp = fopen(path, "rb");
    memset(im, 0, sizeof *im);
    if (!fp) return "cannot open";
    if (fread(sig, 1, 8, fp) < 2) {
        fclose(fp);
        return "too short for an image";
    }
    rewind(fp);
    if (sig[0] == 0x89 && sig[1] == 'P' && sig[2] == 'N' && sig[3] == 'G') {
#ifdef EVRT_RUN_PNG
        msg = read_png(fp, im);
#else
        msg = "PNG support was not built in: convert to PGM/PPM";
#endif
    } else {
        msg = read_pnm(fp, im);
    }
    fclose(fp);
    return msg;
}

/* Nearest-neighbour resize to S x S and channel conversion to C. */
static void to_model_input(unsigned char *out /* (S, S, C) */, const struct image *im, int S, int C)
{
    int x, y, c;
    for (y = 0; y < S; y++) {
        int sy = (int)(((double)y + 0.5) * im->h / S);
        for (x = 0; x < S; x++) {
            int sx = (int)(((double)x + 0.5) * im->w / S);
            const unsigned char *p = im->px + ((size_t)sy * im->w + sx) * im->c;
            unsigned char *o = out + ((size_t)y * S + x) * C;
            if (im->c == C) {
                for (c = 0; c < C; c++) o[c] = p[c];
            } else if (im->c == 1) {
                for (c = 0; c < C; c++) o[c] = p[0];
            } else {
                double g = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
                for (c = 0; c < C; c++) o[c] = (unsigned char)(g + 0.5);
            }
        }
    }
}

/* Refuses a model whose channels the conversion cannot make from c (it
 * makes 1 and 3 from either, anything else only from itself). */
static const char *input_mismatch(const struct evrt_model *m, int c)
{
    return m->channels != 1 && m->channels != 3 && c != m->channels ? "image channels do not match the model's"
                                                                     : NULL;
}

/* The class of the largest logit (the first of equals, as the top 5 rank
 * them); *mx its logit and *sum = sum_k exp(l_k - mx) in double, so class
 * k's probability is exp(l_k - mx) / sum, the top-1's 1 / sum. */
static int softmax_top1(const float *logits, int K, double *mx, double *sum)
{
    int k, best = 0;
    for (k = 1; k < K; k++)
        if (logits[k] > logits[best]) best = k;
    *mx = (double)logits[best];
    *sum = 0.0;
    for (k = 0; k < K; k++) *sum += exp((double)logits[k] - *mx);
    return best;
}

/* IMAGE read, checked against the model and converted to its input
 * (S, S, C) in *in (malloc'd): 0, or 1 after the error line. */
static int image_input(const char *ipath, const struct evrt_model *m, unsigned char **in)
{
    struct image im;
    const char *msg = read_image(ipath, &im);
    *in = NULL;
    if (!msg) msg = input_mismatch(m, im.c);
    if (!msg && !(*in = malloc((size_t)m->img_size * m->img_size * m->channels))) msg = "out of memory";
    if (!msg) to_model_input(*in, &im, m->img_size, m->channels);
    free(im.px);
    return msg ? errorf(ipath, msg) : 0;
}

static int is_seg(const struct evrt_model *m)
{
    return m->head_kind != EVRT_HEAD_CLASS;
}

/* Bytes of what infer_one writes: a class head's logits, or a segmentation
 * model's mask (img_size^2 classes). */
static size_t out_bytes(const struct evrt_model *m)
{
    return is_seg(m) ? (size_t)m->img_size * m->img_size : (size_t)m->classes * sizeof(float);
}

/* One image through the model, as the commands time it: logits, or the
 * mask alone (no per-pixel scores: the decoder makes it a few rows at a
 * time). */
static int infer_one(evrt_ctx *ctx, const struct evrt_model *m, const unsigned char *in, void *out)
{
    return is_seg(m) ? evrt_infer_seg(ctx, in, 1, NULL, NULL, out) : evrt_infer(ctx, in, 1, out);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- masks */

/* A class of a mask and its pixels. */
struct share {
    int k;
    size_t n;
};

#define TOP_SHARES 3

/* The TOP_SHARES classes of the most pixels of mask (px of them) into top,
 * largest first, the lower class first among equals (k -1 past the
 * classes present); returns how many classes are present. */
static int mask_shares(const unsigned char *mask, size_t px, struct share top[TOP_SHARES])
{
    size_t count[256] = {0}, i;
    int k, r, present = 0;
    for (i = 0; i < px; i++) count[mask[i]]++;
    for (k = 0; k < 256; k++) present += count[k] > 0;
    for (r = 0; r < TOP_SHARES; r++) {
        top[r].k = -1;
        top[r].n = 0;
        for (k = 0; k < 256; k++)
            if (count[k] > top[r].n) {
                top[r].k = k;
                top[r].n = count[k];
            }
        if (top[r].k >= 0) count[top[r].k] = 0;
    }
    return present;
}

/* Whether s ends in suffix, ignoring ASCII case. */
static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix), i;
    if (n < m) return 0;
    for (i = 0; i < m; i++) {
        char a = s[n - m + i], b = suffix[i];
        if ((a >= 'A' && a <= 'Z' ? a - 'A' + 'a' : a) != b) return 0;
    }
    return 1;
}

#ifdef EVRT_RUN_PNG
/* Class k's colour in a mask PNG: the bits of k spread over the colours'
 * high bits in turn (k's bit 0 to red's bit 7, bit 1 to green's, bit 2 to
 * blue's, bit 3 to red's bit 6, ...), the PASCAL VOC masks' palette: 0
 * black, 1 dark red, 2 dark green, 3 olive, ..., and all 256 differ. */
static void class_colour(int k, unsigned char rgb[3])
{
    int bit, c;
    rgb[0] = rgb[1] = rgb[2] = 0;
    for (bit = 0; bit < 8; bit++)
        for (c = 0; c < 3; c++)
            if ((k >> (3 * bit + c)) & 1) rgb[c] |= (unsigned char)(0x80 >> bit);
}

/* An 8-bit palette PNG of the S x S mask of K classes: pixel = class =
 * palette index (class_colour's colours), so a reader that keeps the
 * indices (evit-data import --seg) reads the classes back. */
static const char *write_png(FILE *fp, const unsigned char *mask /* (S, S) */, int S, int K)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_quiet_error, png_quiet_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_color pal[256];
    unsigned char rgb[3];
    int k, y;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return "out of memory";
    }
    for (k = 0; k < K; k++) {
        class_colour(k, rgb);
        pal[k].red = rgb[0];
        pal[k].green = rgb[1];
        pal[k].blue = rgb[2];
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return "cannot write (disk full?)";
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)S, (png_uint_32)S, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_PLTE(png, info, pal, K);
    png_write_info(png, info);
    for (y = 0; y < S; y++) png_write_row(png, (png_const_bytep)(mask + (size_t)y * S));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return NULL;
}
#endif

/* Writes the S x S mask of K classes to path, a palette PNG when png, else
 * a binary PGM (pixel = class index), through a temporary file beside it
 * that is renamed into place: 0, or 1 after the error line and with no
 * file left. */
static int write_mask(const char *path, const unsigned char *mask /* (S, S) */, int S, int K, int png)
{
    const char *slash = strrchr(path, '/'), *msg = NULL;
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0, n = strlen(path) + 32;
    char *tmp = malloc(n);
    FILE *fp;
    if (!tmp) return errorf(path, "out of memory");
    sprintf(tmp, "%.*s.%s.tmp.%ld", (int)dir, path, path + dir, (long)getpid());
    if (!(fp = fopen(tmp, "wb"))) {
        fprintf(stderr, "error: %s: cannot create a temporary file beside it: %s\n", path, strerror(errno));
        free(tmp);
        return 1;
    }
#ifdef EVRT_RUN_PNG
    if (png) msg = write_png(fp, mask, S, K);
#else
    (void)K;
#endif
    if (!png && (fprintf(fp, "P5\n%d %d\n255\n", S, S) < 0 || fwrite(mask, 1, (size_t)S * S, fp) != (size_t)S * S))
        msg = "cannot write (disk full?)";
    if (fclose(fp) != 0 && !msg) msg = "cannot write (disk full?)";
    if (!msg && rename(tmp, path) != 0) msg = "cannot rename the temporary file into place";
    if (msg) remove(tmp);
    free(tmp);
    return msg ? errorf(path, msg) : 0;
}

/* ---------------------------------------------------------------- commands */

static int classify(const char *mpath, evrt_file *f, evrt_ctx *ctx, const char *ipath, int raw)
{
    const struct evrt_model *m = evrt_file_model(f);
    unsigned char *in = NULL;
    float *logits = NULL;
    int rc = 1, k, r, K = m->classes;
    int best[5];
    double mx, sum;
    if (image_input(ipath, m, &in)) return 1;
    logits = malloc((size_t)K * sizeof *logits);
    if (!logits) {
        errorf(ipath, "out of memory");
        goto out;
    }
    if (evrt_infer(ctx, in, 1, logits) != EVRT_OK) {
        errorf(mpath, evrt_ctx_error(ctx));
        goto out;
    }
    if (raw) {
        for (k = 0; k < K; k++) printf("%d %a\n", k, (double)logits[k]);
        rc = 0;
        goto out;
    }
    softmax_top1(logits, K, &mx, &sum);
    for (r = 0; r < 5 && r < K; r++) {
        best[r] = -1;
        for (k = 0; k < K; k++) {
            int taken = 0, j;
            for (j = 0; j < r; j++) taken |= best[j] == k;
            if (!taken && (best[r] < 0 || logits[k] > logits[best[r]])) best[r] = k;
        }
        {
            const char *name = evrt_file_class_name(f, best[r]);
            printf("%d  %8.4f%%  %d  %s\n", r + 1, 100.0 * exp((double)logits[best[r]] - mx) / sum, best[r],
                   name ? name : "");
        }
    }
    rc = 0;
out:
    free(in);
    free(logits);
    return rc;
}

/* A segmentation model's per-patch logits of one image, "N K LOGIT" for
 * patch N and class K, the logit an exact hex float. */
static int seg_logits(const char *mpath, evrt_ctx *ctx, const struct evrt_model *m, const unsigned char *in)
{
    size_t n = evrt_model_outputs(m), i;
    float *z = malloc(n * sizeof *z);
    int rc = 1;
    if (!z) return errorf(mpath, "out of memory");
    if (evrt_infer_seg(ctx, in, 1, z, NULL, NULL) != EVRT_OK) {
        errorf(mpath, evrt_ctx_error(ctx));
    } else {
        for (i = 0; i < n; i++)
            printf("%lu %lu %a\n", (unsigned long)(i / m->classes), (unsigned long)(i % m->classes), (double)z[i]);
        rc = 0;
    }
    free(z);
    return rc;
}

/* A segmentation model on IMAGE: the mask written to mask_out when given,
 * then the line
 *
 *   C classes  K1 S1% NAME1  K2 S2% NAME2  K3 S3% NAME3  LATENCY ms
 *
 * (C classes in the mask, the TOP_SHARES largest with their shares of its
 * pixels, largest first; names where the file has them), or with raw the
 * per-patch logits. */
static int segment(const char *mpath, evrt_file *f, evrt_ctx *ctx, const char *ipath, int raw, const char *mask_out,
                   int png)
{
    const struct evrt_model *m = evrt_file_model(f);
    const size_t px = (size_t)m->img_size * m->img_size;
    unsigned char *in = NULL, *mask = NULL;
    struct share top[TOP_SHARES];
    int rc = 1, present, r;
    double t0, dt;
    if (image_input(ipath, m, &in)) return 1;
    if (raw) {
        rc = seg_logits(mpath, ctx, m, in);
        goto out;
    }
    if (!(mask = malloc(px))) {
        errorf(ipath, "out of memory");
        goto out;
    }
    t0 = now_s();
    if (infer_one(ctx, m, in, mask) != EVRT_OK) {
        errorf(mpath, evrt_ctx_error(ctx));
        goto out;
    }
    dt = now_s() - t0;
    if (mask_out && write_mask(mask_out, mask, m->img_size, m->classes, png)) goto out;
    present = mask_shares(mask, px, top);
    printf("%d class%s", present, present == 1 ? "" : "es");
    for (r = 0; r < TOP_SHARES && top[r].k >= 0; r++) {
        const char *name = evrt_file_class_name(f, top[r].k);
        printf("  %d %.2f%%%s%s", top[r].k, 100.0 * (double)top[r].n / (double)px, name ? " " : "", name ? name : "");
    }
    printf("  %.3f ms\n", 1e3 * dt);
    rc = 0;
out:
    free(in);
    free(mask);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts t (n >= 1 latencies) for its median and p99, the ceil(0.99 n)-th
 * smallest: a measured value, never interpolated. */
static void median_p99(double *t, size_t n, double *median, double *p99)
{
    qsort(t, n, sizeof *t, cmp_double);
    *median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    *p99 = t[(size_t)ceil(0.99 * (double)n) - 1];
}

static int bench(const char *mpath, evrt_file *f, evrt_ctx *ctx, int runs, int warmup)
{
    const struct evrt_model *m = evrt_file_model(f);
    size_t n = (size_t)m->img_size * m->img_size * m->channels, i;
    unsigned char *in = malloc(n);
    void *out = malloc(out_bytes(m));
    double *t = malloc((size_t)runs * sizeof *t), mean = 0.0, median, p99;
    unsigned long s = 12345;
    struct rusage ru;
    int r, rc = 1;
    if (!in || !out || !t) {
        errorf(mpath, "out of memory");
        goto out;
    }
    for (i = 0; i < n; i++) { /* a fixed pseudo-random image */
        s = s * 1103515245ul + 12345ul;
        in[i] = (unsigned char)(s >> 16);
    }
    for (r = 0; r < warmup + runs; r++) {
        double t0 = now_s();
        if (infer_one(ctx, m, in, out) != EVRT_OK) {
            errorf(mpath, evrt_ctx_error(ctx));
            goto out;
        }
        if (r >= warmup) t[r - warmup] = now_s() - t0;
    }
    for (r = 0; r < runs; r++) mean += t[r];
    mean /= runs;
    median_p99(t, (size_t)runs, &median, &p99);
    getrusage(RUSAGE_SELF, &ru);
    printf("model %s: %d runs after %d warm-up, %d thread%s\n", mpath, runs, warmup, evrt_ctx_threads(ctx), evrt_ctx_threads(ctx) == 1 ? "" : "s");
    printf("latency mean %.3f ms  median %.3f ms  p99 %.3f ms\n", 1e3 * mean, 1e3 * median, 1e3 * p99);
    printf("peak memory: maxrss %.1f MiB; context %.1f KiB + mapped file %.1f KiB\n", (double)ru.ru_maxrss / 1024.0,
           (double)evrt_ctx_bytes(ctx) / 1024.0, (double)evrt_file_bytes(f) / 1024.0);
    rc = 0;
out:
    free(in);
    free(out);
    free(t);
    return rc;
}

/* ---------------------------------------------------------------- streams */

/* Every frame's latency, for the summary (8 bytes a frame, doubling). */
struct stream_stats {
    double *t; /* (n) seconds */
    size_t n, cap;
};

static int stats_add(struct stream_stats *st, double dt)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 1024;
        double *t = realloc(st->t, cap * sizeof *t);
        if (!t) return -1;
        st->t = t;
        st->cap = cap;
    }
    st->t[st->n++] = dt;
    return 0;
}

/* A regular file (or standard input redirected from one) must hold whole
 * frames: refused before the first frame, not after a run of them.
 * Pipes and devices are checked frame by frame. */
static int check_whole_frames(const char *src, FILE *fp, size_t fbytes)
{
    struct stat st;
    off_t pos, left;
    char msg[128];
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    pos = ftello(fp);
    left = st.st_size - (pos > 0 ? pos : 0);
    if (left % (off_t)fbytes == 0) return 0;
    sprintf(msg, "a size of %lld bytes does not divide into frames of %lu bytes", (long long)left,
            (unsigned long)fbytes);
    return errorf(src, msg);
}

/* A class head's line for frame n: "frame N class K p PROB ms LATENCY[ NAME]". */
static void class_frame(evrt_file *f, const float *logits, unsigned long n, double dt)
{
    double mx, sum;
    int k = softmax_top1(logits, evrt_file_model(f)->classes, &mx, &sum);
    const char *name = evrt_file_class_name(f, k);
    printf("frame %lu class %d p %.4f ms %.3f%s%s\n", n, k, 1.0 / sum, 1e3 * dt, name ? " " : "", name ? name : "");
}

/* A segmentation model's frame n: its mask written into mask_dir when
 * given (frame-NNNNNN.png or .pgm), then the line
 *
 *   frame N ms LATENCY classes C K1 S1 [K2 S2 [K3 S3]][ NAME1, NAME2, NAME3]
 *
 * C classes in the mask, the TOP_SHARES largest (as many as there are)
 * with their shares of its pixels from 0 to 1, largest first; their
 * names, where the file has names, the rest of the line.  0, or 1 after
 * the error line. */
static int seg_frame(evrt_file *f, const unsigned char *mask, unsigned long n, double dt, const char *mask_dir)
{
    const struct evrt_model *m = evrt_file_model(f);
    const size_t px = (size_t)m->img_size * m->img_size;
    struct share top[TOP_SHARES];
    int present = mask_shares(mask, px, top), r;
    if (mask_dir) {
        char *path = malloc(strlen(mask_dir) + 32);
        int rc;
        if (!path) return errorf(mask_dir, "out of memory");
        sprintf(path, "%s/frame-%06lu.%s", mask_dir, n, EVRT_RUN_HAS_PNG ? "png" : "pgm");
        rc = write_mask(path, mask, m->img_size, m->classes, EVRT_RUN_HAS_PNG);
        free(path);
        if (rc) return rc;
    }
    printf("frame %lu ms %.3f classes %d", n, 1e3 * dt, present);
    for (r = 0; r < TOP_SHARES && top[r].k >= 0; r++) printf(" %d %.4f", top[r].k, (double)top[r].n / (double)px);
    for (r = 0; r < TOP_SHARES && top[r].k >= 0; r++) {
        const char *name = evrt_file_class_name(f, top[r].k);
        if (name) printf("%s%s", r ? ", " : " ", name);
    }
    putchar('\n');
    return 0;
}

/* Runs the model on frames of g's geometry (g.w, g.h, g.c; g.px unused)
 * from src ("-": standard input), one line each (class_frame, seg_frame),
 * flushed at once so that a live pipeline reads it as it comes.  N counts
 * from 0, PROB is the top-1's softmax probability, LATENCY the
 * milliseconds of that frame's evrt_infer or evrt_infer_seg alone (not the
 * read, the resize or the mask file), NAME the class's name where the file
 * has names (the rest of the line: names may hold spaces).  Each frame
 * goes through to_model_input as an image does, so its class (its mask)
 * is the image's.  The end of input on a frame boundary ends cleanly;
 * inside a frame it is an error, after the lines of the frames before it.
 * Unless quiet, a summary on stderr at the end; quiet keeps no latencies,
 * so memory stays constant however long the stream. */
static int stream(const char *mpath, evrt_file *f, evrt_ctx *ctx, const char *src, struct image g, int quiet,
                  const char *mask_dir)
{
    const struct evrt_model *m = evrt_file_model(f);
    const int S = m->img_size, C = m->channels;
    const size_t fbytes = (size_t)g.w * (size_t)g.h * (size_t)g.c;
    FILE *fp = strcmp(src, "-") ? fopen(src, "rb") : stdin;
    unsigned char *in = NULL;
    void *out = NULL;
    struct stream_stats st = {NULL, 0, 0};
    unsigned long n;
    int rc = 1;
    if (!fp) return errorf(src, "cannot open");
    if (input_mismatch(m, g.c)) {
        errorf(src, "frame channels do not match the model's");
        goto out;
    }
    if (check_whole_frames(src, fp, fbytes)) goto out;
    g.px = malloc(fbytes);
    in = malloc((size_t)S * S * C);
    out = malloc(out_bytes(m));
    if (!g.px || !in || !out) {
        errorf(src, "out of memory");
        goto out;
    }
    for (n = 0;; n++) {
        size_t got = fread(g.px, 1, fbytes, fp);
        double t0, dt;
        if (got < fbytes) {
            if (ferror(fp)) {
                errorf(src, "read error");
                goto out;
            }
            if (got == 0) break;
            fprintf(stderr, "error: %s: truncated frame %lu: got %lu of %lu bytes\n", src, n, (unsigned long)got,
                    (unsigned long)fbytes);
            goto out;
        }
        to_model_input(in, &g, S, C);
        t0 = now_s();
        if (infer_one(ctx, m, in, out) != EVRT_OK) {
            errorf(mpath, evrt_ctx_error(ctx));
            goto out;
        }
        dt = now_s() - t0;
        if (!is_seg(m))
            class_frame(f, out, n, dt);
        else if (seg_frame(f, out, n, dt, mask_dir))
            goto out;
        if (fflush(stdout) != 0) {
            errorf("stdout", "cannot write");
            goto out;
        }
        if (!quiet && stats_add(&st, dt) < 0) {
            errorf(src, "out of memory for the latency summary (-q keeps none)");
            goto out;
        }
    }
    if (!quiet && n == 0) {
        fprintf(stderr, "evit-run: 0 frames\n");
    } else if (!quiet) {
        double median, p99;
        median_p99(st.t, st.n, &median, &p99);
        fprintf(stderr, "evit-run: %lu frame%s, %d thread%s: latency median %.3f ms  p99 %.3f ms\n", n,
                n == 1 ? "" : "s", evrt_ctx_threads(ctx), evrt_ctx_threads(ctx) == 1 ? "" : "s", 1e3 * median,
                1e3 * p99);
    }
    rc = 0;
out:
    if (fp != stdin) fclose(fp);
    free(g.px);
    free(in);
    free(out);
    free(st.t);
    return rc;
}

/* "WxHxC": W, H >= 1 with at most 1e8 pixels (as images), C 1 or 3; digits
 * only (no signs, spaces or trailing text). */
static int parse_geometry(const char *s, struct image *g)
{
    long v[3];
    int i;
    for (i = 0; i < 3; i++) {
        char *end;
        if (*s < '0' || *s > '9') return -1;
        v[i] = strtol(s, &end, 10);
        if (*end != (i < 2 ? 'x' : '\0')) return -1;
        s = end + 1;
    }
    if (v[0] < 1 || v[1] < 1 || (double)v[0] * (double)v[1] > 1e8 || (v[2] != 1 && v[2] != 3)) return -1;
    g->w = (int)v[0];
    g->h = (int)v[1];
    g->c = (int)v[2];
    g->px = NULL;
    return 0;
}

static int parse_count(const char *s, long lo, long hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* Refuses, before any model work, a --mask target that cannot be
 * written: with --raw a DIR that is not a directory, without PNG support
 * an OUT that names a PNG.  0, or 1 after the error line. */
static int check_mask_target(const char *mask, int raw_frames)
{
    struct stat st;
    if (raw_frames)
        return stat(mask, &st) == 0 && S_ISDIR(st.st_mode)
                   ? 0
                   : errorf(mask, "not a directory (--raw writes a mask per frame into it)");
    if (!EVRT_RUN_HAS_PNG && has_suffix(mask, ".png"))
        return errorf(mask, "PNG support was not built in: name the mask .pgm");
    return 0;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *image = NULL, *mask = NULL;
    int do_bench = 0, raw = 0, runs = 50, warmup = 5, threads = 1, quiet = 0, extra = 0, i, rc;
    struct image geom = {0, 0, 0, NULL}; /* --raw's frames; w 0 without it */
    char err[EVRT_ERR_MAX];
    evrt_file *f = NULL;
    evrt_ctx *ctx = NULL;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(a, "--bench")) {
            do_bench = 1;
        } else if (!strcmp(a, "--logits")) {
            raw = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (!strcmp(a, "--raw")) {
            if (i + 1 >= argc) return usage_error("missing value for ", a);
            if (parse_geometry(argv[++i], &geom) < 0)
                return usage_error("--raw: expected WxHxC (W, H >= 1, at most 1e8 pixels, C 1 or 3), not ", argv[i]);
        } else if (!strcmp(a, "--mask")) {
            if (i + 1 >= argc || !argv[i + 1][0]) return usage_error("missing value for ", a);
            mask = argv[++i];
        } else if (!strcmp(a, "--runs") || !strcmp(a, "--warmup") || !strcmp(a, "--threads")) {
            int *dst = a[2] == 'r' ? &runs : a[2] == 'w' ? &warmup : &threads;
            long lo = a[2] == 'w' ? 0 : 1, hi = a[2] == 't' ? 256 : 1000000;
            if (i + 1 >= argc) return usage_error("missing value for ", a);
            if (parse_count(argv[++i], lo, hi, dst) < 0) return usage_error("bad value: ", argv[i]);
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option ", a);
        } else if (!model) {
            model = a;
        } else if (!image) {
            image = a;
        } else {
            extra = 1;
        }
    }
    if (extra) return usage_error(geom.w ? "--raw reads one SOURCE, not an IMAGE as well" : "too many arguments", NULL);
    if (!model) return usage_error("expected MODEL.evit", NULL);
    if (geom.w && do_bench) return usage_error("--raw cannot combine with --bench", NULL);
    if (geom.w && !image) return usage_error("--raw needs a SOURCE: a file, or - for standard input", NULL);
    if (!geom.w && do_bench == !!image) return usage_error("expected an IMAGE or --bench (not both)", NULL);
    if ((do_bench || geom.w) && raw) return usage_error("--logits needs an IMAGE", NULL);
    if (mask && (do_bench || raw))
        return usage_error(do_bench ? "--mask cannot combine with --bench" : "--mask cannot combine with --logits",
                           NULL);
    if (threads < 1 || threads > 256) return usage_error("--threads: expected 1..256", NULL);
    if (mask && check_mask_target(mask, geom.w > 0)) return 1;
    rc = evrt_open(&f, model, err, sizeof err);
    if (rc != EVRT_OK) return errorf(model, err);
    if (mask && !is_seg(evrt_file_model(f))) {
        evrt_close(f);
        return errorf(model, "a class-head model has no mask (--mask takes a segmentation model)");
    }
    rc = evrt_ctx_create_file(&ctx, f, 1);
    if (rc == EVRT_OK) rc = evrt_ctx_set_threads(ctx, threads);
    if (rc != EVRT_OK) {
        errorf(model, ctx ? evrt_ctx_error(ctx) : "out of memory");
        rc = 1;
    } else if (do_bench) {
        rc = bench(model, f, ctx, runs, warmup);
    } else if (geom.w) {
        rc = stream(model, f, ctx, image, geom, quiet, mask);
    } else if (is_seg(evrt_file_model(f))) {
        rc = segment(model, f, ctx, image, raw, mask, EVRT_RUN_HAS_PNG && !has_suffix(mask ? mask : "", ".pgm"));
    } else {
        rc = classify(model, f, ctx, image, raw);
    }
    evrt_ctx_destroy(ctx);
    evrt_close(f);
    return rc;
}
