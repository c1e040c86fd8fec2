/* evit-run: the device CLI.  Maps a model file (.evit) and classifies one
 * image, a stream of raw camera frames, or measures latency.  Links libevrt
 * and libm only (and libpng when built with EVRT_RUN_PNG); C99 plus POSIX
 * clocks, fstat and getrusage.
 *
 * Images: binary PGM (P5) and PPM (P6) with maxval <= 255 always, PNG with
 * libpng.  An image of another size is resized to the model's with nearest
 * neighbour sampling (source pixel floor((x + 0.5) * w / W)), which is what
 * a camera pipeline that already crops to a square expects and adds no
 * blur; grey to RGB repeats the channel, RGB to grey averages with the
 * ITU-R 601 weights (0.299, 0.587, 0.114). */
#if !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#ifdef EVRT_RUN_PNG
#include <png.h>
#endif

#include "evrt.h"

#define EXIT_USAGE 2

static const char *usage_text =
    "usage: evit-run MODEL.evit IMAGE [--logits] [--threads N]\n"
    "       evit-run MODEL.evit --raw WxHxC SOURCE [--threads N] [-q]\n"
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
    "  --raw WxHxC    classify raw 8-bit frames of H rows of W pixels of C\n"
    "                 interleaved channels (1 grey, 3 RGB), back to back, from\n"
    "                 SOURCE: a file, or - for standard input (a camera\n"
    "                 pipeline); one line per frame, flushed at once:\n"
    "                   frame N class K p PROB ms LATENCY [CLASS NAME]\n"
    "                 (the name, when the model has names, is the rest of the\n"
    "                 line); a summary on stderr at the end\n"
    "  -q             with --raw: no summary, and no latencies kept for it\n"
    "  --bench        time inference on a synthetic image: mean, median and\n"
    "                 p99 latency over the runs, and peak memory\n"
    "  --runs N       timed runs (default 50)\n"
    "  --warmup N     untimed runs first (default 5)\n"
    "  --threads N    inference threads (default 1; a Nano has 4 cores)\n"
    "  --logits       print every class's logit instead, as an exact hex\n"
    "                 float (to compare devices bit for bit)\n"
    "  -h, --help     this text\n"
    "\n"
    "EVRT_KERNELS=ref|avx2|avx512vnni|amx|neon|dotprod picks the kernels (default:\n"
    "the fastest this CPU runs).\n";

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
static const char *read_png(FILE *fp, struct image *im)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
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

/* ---------------------------------------------------------------- commands */

static int classify(const char *mpath, evrt_file *f, evrt_ctx *ctx, const char *ipath, int raw)
{
    const struct evrt_model *m = evrt_file_model(f);
    struct image im;
    const char *msg = read_image(ipath, &im);
    unsigned char *in = NULL;
    float *logits = NULL;
    int rc = 1, k, r, K = m->classes;
    int best[5];
    double mx, sum;
    if (!msg) msg = input_mismatch(m, im.c);
    if (msg) {
        free(im.px);
        return errorf(ipath, msg);
    }
    in = malloc((size_t)m->img_size * m->img_size * m->channels);
    logits = malloc((size_t)K * sizeof *logits);
    if (!in || !logits) {
        errorf(ipath, "out of memory");
        goto out;
    }
    to_model_input(in, &im, m->img_size, m->channels);
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
    free(im.px);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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
    float *logits = malloc((size_t)m->classes * sizeof *logits);
    double *t = malloc((size_t)runs * sizeof *t), mean = 0.0, median, p99;
    unsigned long s = 12345;
    struct rusage ru;
    int r, rc = 1;
    if (!in || !logits || !t) {
        errorf(mpath, "out of memory");
        goto out;
    }
    for (i = 0; i < n; i++) { /* a fixed pseudo-random image */
        s = s * 1103515245ul + 12345ul;
        in[i] = (unsigned char)(s >> 16);
    }
    for (r = 0; r < warmup + runs; r++) {
        double t0 = now_s();
        if (evrt_infer(ctx, in, 1, logits) != EVRT_OK) {
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
    free(logits);
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

/* Classifies frames of g's geometry (g.w, g.h, g.c; g.px unused) from src
 * ("-": standard input), one line each, flushed at once so that a live
 * pipeline reads it as it comes:
 *
 *   frame N class K p PROB ms LATENCY[ NAME]
 *
 * N counts from 0, PROB is the top-1's softmax probability, LATENCY the
 * milliseconds of that frame's evrt_infer alone (not the read or the
 * resize), NAME the class's name where the file has names (the rest of the
 * line: names may hold spaces).  Each frame goes through to_model_input
 * as an image does, so its class is the image's top-1.  The end of input
 * on a frame boundary ends cleanly; inside a frame it is an error, after
 * the lines of the frames before it.  Unless quiet, a summary on stderr at
 * the end; quiet keeps no latencies, so memory stays constant however
 * long the stream. */
static int stream(const char *mpath, evrt_file *f, evrt_ctx *ctx, const char *src, struct image g, int quiet)
{
    const struct evrt_model *m = evrt_file_model(f);
    const int S = m->img_size, C = m->channels, K = m->classes;
    const size_t fbytes = (size_t)g.w * (size_t)g.h * (size_t)g.c;
    FILE *fp = strcmp(src, "-") ? fopen(src, "rb") : stdin;
    unsigned char *in = NULL;
    float *logits = NULL;
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
    logits = malloc((size_t)K * sizeof *logits);
    if (!g.px || !in || !logits) {
        errorf(src, "out of memory");
        goto out;
    }
    for (n = 0;; n++) {
        size_t got = fread(g.px, 1, fbytes, fp);
        double t0, dt, mx, sum;
        const char *name;
        int k;
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
        if (evrt_infer(ctx, in, 1, logits) != EVRT_OK) {
            errorf(mpath, evrt_ctx_error(ctx));
            goto out;
        }
        dt = now_s() - t0;
        k = softmax_top1(logits, K, &mx, &sum);
        name = evrt_file_class_name(f, k);
        printf("frame %lu class %d p %.4f ms %.3f%s%s\n", n, k, 1.0 / sum, 1e3 * dt, name ? " " : "",
               name ? name : "");
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
    free(logits);
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

int main(int argc, char **argv)
{
    const char *model = NULL, *image = NULL;
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
    if (threads < 1 || threads > 256) return usage_error("--threads: expected 1..256", NULL);
    rc = evrt_open(&f, model, err, sizeof err);
    if (rc != EVRT_OK) return errorf(model, err);
    rc = evrt_ctx_create_file(&ctx, f, 1);
    if (rc == EVRT_OK) rc = evrt_ctx_set_threads(ctx, threads);
    if (rc != EVRT_OK) {
        errorf(model, ctx ? evrt_ctx_error(ctx) : "out of memory");
        rc = 1;
    } else {
        rc = do_bench ? bench(model, f, ctx, runs, warmup)
             : geom.w ? stream(model, f, ctx, image, geom, quiet)
                      : classify(model, f, ctx, image, raw);
    }
    evrt_ctx_destroy(ctx);
    evrt_close(f);
    return rc;
}
