/* pngio.c: see pngio.h. */
#include "pngio.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "util.h"

/* Larger images are surely a mistake for a ViT dataset, and the cap keeps a
 * hostile header from asking for gigabytes. */
#define PNG_MAX_SIDE 16384

/* ---------------------------------------------------------------- libpng glue */

/* State shared with the libpng callbacks and the setjmp-protected code.  It
 * lives in the caller's frame, not in the frame that calls setjmp, so its
 * fields keep their values across the longjmp. */
struct png_job {
    FILE *fp;
    png_structp png;
    png_infop info;
    char msg[200];
    int png_failed;     /* msg is libpng's (not a refusal of ours) */
    uint8_t *raw;       /* decoded 8-bit rows, h * rowbytes */
    png_bytep *rows;
    int w, h, channels; /* of raw */
};

static void on_png_error(png_structp png, png_const_charp msg)
{
    struct png_job *job = png_get_error_ptr(png);
    snprintf(job->msg, sizeof job->msg, "%s", msg);
    job->png_failed = 1;
    png_longjmp(png, 1);
}

/* libpng warns about harmless things (bad sRGB profiles, unknown chunks);
 * a dataset import of thousands of files must stay quiet about them. */
static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* libpng's own reader says only "Read Error"; a short read is nearly always
 * a truncated file, so say that. */
static void on_png_read(png_structp png, png_bytep data, size_t n)
{
    struct png_job *job = png_get_io_ptr(png);
    if (fread(data, 1, n, job->fp) != n)
        png_error(png, ferror(job->fp) ? "read error" : "truncated file (unexpected end)");
}

static void job_free(struct png_job *job)
{
    free(job->raw);
    free(job->rows);
    job->raw = NULL;
    job->rows = NULL;
}

/* ---------------------------------------------------------------- reading */

/* indices: the samples as they are stored, one per pixel (class indices
 * of a mask): gray of up to 8 bits or a palette's indices, unpacked but
 * not scaled; any other kind is refused in job->msg. */
static int decode(struct png_job *job, int indices)
{
    if (setjmp(png_jmpbuf(job->png))) return EVIT_ERR;
    png_set_read_fn(job->png, job, on_png_read);
    png_set_user_limits(job->png, PNG_MAX_SIDE, PNG_MAX_SIDE);
    png_read_info(job->png, job->info);
    if (indices) {
        int type = png_get_color_type(job->png, job->info), depth = png_get_bit_depth(job->png, job->info);
        if ((type != PNG_COLOR_TYPE_GRAY && type != PNG_COLOR_TYPE_PALETTE) || depth > 8) {
            snprintf(job->msg, sizeof job->msg,
                     "a mask must be a gray or palette PNG of up to 8 bits (class indices), this one is %s%s",
                     type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_PALETTE ? "16-bit"
                     : type == PNG_COLOR_TYPE_GRAY_ALPHA                           ? "gray with alpha"
                                                                                   : "RGB",
                     type == PNG_COLOR_TYPE_RGB_ALPHA ? "A" : "");
            return EVIT_ERR;
        }
        png_set_packing(job->png);
    } else {
        /* palette -> RGB, gray < 8 bit -> 8 bit, tRNS -> alpha channel */
        png_set_expand(job->png);
        png_set_scale_16(job->png);
    }
    png_set_interlace_handling(job->png);
    png_read_update_info(job->png, job->info);
    job->w = (int)png_get_image_width(job->png, job->info);
    job->h = (int)png_get_image_height(job->png, job->info);
    job->channels = png_get_channels(job->png, job->info);
    size_t rowbytes = png_get_rowbytes(job->png, job->info);
    EVIT_ASSERT(job->channels >= 1 && job->channels <= 4);
    EVIT_ASSERT(rowbytes == (size_t)job->w * (size_t)job->channels);
    job->raw = evit_malloc(rowbytes * (size_t)job->h);
    job->rows = evit_malloc(sizeof(png_bytep) * (size_t)job->h);
    for (int y = 0; y < job->h; y++) job->rows[y] = job->raw + rowbytes * (size_t)y;
    png_read_image(job->png, job->rows);
    png_read_end(job->png, NULL);
    return EVIT_OK;
}

static uint8_t luminance(unsigned r, unsigned g, unsigned b)
{
    return (uint8_t)((299 * r + 587 * g + 114 * b + 500) / 1000);
}

/* Alpha over black, rounded. */
static uint8_t over_black(unsigned v, unsigned a) { return (uint8_t)((v * a + 127) / 255); }

static void convert_pixel(const uint8_t *s, int sc, uint8_t *d, int dc)
{
    unsigned r, g, b, a = 255;
    if (sc <= 2) {
        r = g = b = s[0];
        if (sc == 2) a = s[1];
    } else {
        r = s[0];
        g = s[1];
        b = s[2];
        if (sc == 4) a = s[3];
    }
    switch (dc) {
    case 1: d[0] = over_black(luminance(r, g, b), a); break;
    case 2: d[0] = luminance(r, g, b); d[1] = (uint8_t)a; break;
    case 3: d[0] = over_black(r, a); d[1] = over_black(g, a); d[2] = over_black(b, a); break;
    default: d[0] = (uint8_t)r; d[1] = (uint8_t)g; d[2] = (uint8_t)b; d[3] = (uint8_t)a; break;
    }
}

/* Decodes path into job (its raw rows); errors name the file. */
static int read_png(const char *path, struct png_job *job, int indices)
{
    job->fp = fopen(path, "rb");
    if (!job->fp) return evit_error("%s: %s", path, strerror(errno));
    uint8_t sig[8];
    if (fread(sig, 1, sizeof sig, job->fp) != sizeof sig || png_sig_cmp(sig, 0, sizeof sig))
        return evit_error("%s: not a PNG file", path);
    rewind(job->fp);
    job->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, on_png_error, on_png_warning);
    EVIT_ASSERT(job->png != NULL);
    job->info = png_create_info_struct(job->png);
    EVIT_ASSERT(job->info != NULL);
    if (decode(job, indices) < 0) return evit_error(indices && !job->png_failed ? "%s: %s" : "%s: libpng: %s", path, job->msg);
    return EVIT_OK;
}

static void read_done(struct png_job *job)
{
    if (job->png) png_destroy_read_struct(&job->png, &job->info, NULL);
    job_free(job);
    if (job->fp) fclose(job->fp);
}

int evit_png_read(const char *path, int channels, struct evit_image *out)
{
    EVIT_ASSERT(channels >= 1 && channels <= 4);
    struct png_job job = {0};
    int rc = read_png(path, &job, 0);
    if (rc == EVIT_OK) {
        out->w = job.w;
        out->h = job.h;
        out->c = channels;
        size_t npx = (size_t)job.w * (size_t)job.h;
        out->px = evit_malloc(npx * (size_t)channels);
        for (size_t i = 0; i < npx; i++)
            convert_pixel(job.raw + i * (size_t)job.channels, job.channels, out->px + i * (size_t)channels,
                          channels);
    }
    read_done(&job);
    return rc;
}

int evit_png_read_indices(const char *path, struct evit_image *out)
{
    struct png_job job = {0};
    int rc = read_png(path, &job, 1);
    if (rc == EVIT_OK) {
        EVIT_ASSERT(job.channels == 1);
        out->w = job.w;
        out->h = job.h;
        out->c = 1;
        out->px = job.raw; /* the image takes the rows' buffer */
        job.raw = NULL;
    }
    read_done(&job);
    return rc;
}

/* ---------------------------------------------------------------- writing */

static int encode(struct png_job *job, const struct evit_image *img)
{
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                 PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    if (setjmp(png_jmpbuf(job->png))) return EVIT_ERR;
    png_init_io(job->png, job->fp);
    png_set_IHDR(job->png, job->info, (png_uint_32)img->w, (png_uint_32)img->h, 8,
                 types[img->c], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(job->png, job->info);
    size_t stride = (size_t)img->w * (size_t)img->c;
    for (int y = 0; y < img->h; y++) png_write_row(job->png, img->px + stride * (size_t)y);
    png_write_end(job->png, NULL);
    return EVIT_OK;
}

int evit_png_write(const char *path, const struct evit_image *img)
{
    EVIT_ASSERT(img->c >= 1 && img->c <= 4 && img->w > 0 && img->h > 0);
    struct png_job job = {0};
    char *tmp = evit_temp_path(path);
    int ok = 0;
    job.fp = fopen(tmp, "wb");
    if (!job.fp) {
        evit_error("%s: cannot create: %s", path, strerror(errno));
        free(tmp);
        return EVIT_ERR;
    }
    job.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &job, on_png_error, on_png_warning);
    EVIT_ASSERT(job.png != NULL);
    job.info = png_create_info_struct(job.png);
    EVIT_ASSERT(job.info != NULL);
    if (encode(&job, img) < 0)
        evit_error("%s: libpng: %s", path, job.msg);
    else
        ok = 1;
    png_destroy_write_struct(&job.png, &job.info);
    /* a full disk shows up only when the buffered tail is flushed */
    if (fclose(job.fp) != 0 && ok) {
        evit_error("%s: cannot write: %s", path, strerror(errno));
        ok = 0;
    }
    int rc = EVIT_ERR;
    if (ok)
        rc = evit_commit_file(tmp, path);
    else
        remove(tmp);
    free(tmp);
    return rc;
}

void evit_image_free(struct evit_image *img)
{
    free(img->px);
    memset(img, 0, sizeof *img);
}

/* ---------------------------------------------------------------- resizing */

/* One axis of a separable filter: output i reads taps[i*max ..] starting at
 * source index first[i]. */
struct axis {
    int max;
    int *first, *count;
    float *w;
};

static void axis_box(struct axis *ax, int in, int out)
{
    /* output i covers source interval [i*s, (i+1)*s), weighted by overlap */
    double s = (double)in / out;
    for (int i = 0; i < out; i++) {
        double lo = i * s, hi = (i + 1) * s;
        int a = (int)floor(lo), b = (int)ceil(hi);
        if (b > in) b = in;
        EVIT_ASSERT(b - a <= ax->max);
        ax->first[i] = a;
        ax->count[i] = b - a;
        for (int k = a; k < b; k++) {
            double ov = fmin(hi, k + 1.0) - fmax(lo, (double)k);
            ax->w[i * ax->max + (k - a)] = (float)(ov / s);
        }
    }
}

static void axis_bilinear(struct axis *ax, int in, int out)
{
    /* pixel centres align: source x = (i + 0.5) * in / out - 0.5 */
    for (int i = 0; i < out; i++) {
        double x = (i + 0.5) * in / out - 0.5;
        if (x < 0) x = 0;
        if (x > in - 1) x = in - 1;
        int a = (int)floor(x);
        double f = x - a;
        ax->first[i] = a;
        ax->count[i] = a + 1 < in ? 2 : 1;
        ax->w[i * ax->max] = (float)(1.0 - f);
        if (ax->count[i] == 2) ax->w[i * ax->max + 1] = (float)f;
    }
}

static void axis_init(struct axis *ax, int in, int out)
{
    ax->max = in > out ? in / out + 2 : 2;
    ax->first = evit_malloc(sizeof(int) * (size_t)out);
    ax->count = evit_malloc(sizeof(int) * (size_t)out);
    ax->w = evit_calloc((size_t)out * (size_t)ax->max, sizeof(float));
    if (in > out)
        axis_box(ax, in, out);
    else
        axis_bilinear(ax, in, out);
}

static void axis_free(struct axis *ax)
{
    free(ax->first);
    free(ax->count);
    free(ax->w);
}

void evit_image_resize(struct evit_image *out, const struct evit_image *in, int w, int h)
{
    EVIT_ASSERT(w > 0 && h > 0 && in->w > 0 && in->h > 0);
    struct axis ax, ay;
    int c = in->c;
    axis_init(&ax, in->w, w);
    axis_init(&ay, in->h, h);
    /* horizontal pass into floats (in->h rows of w), then vertical */
    float *mid = evit_malloc(sizeof(float) * (size_t)in->h * (size_t)w * (size_t)c);
    for (int y = 0; y < in->h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                float s = 0.0f;
                for (int t = 0; t < ax.count[x]; t++)
                    s += ax.w[x * ax.max + t] *
                         in->px[((size_t)y * in->w + (size_t)(ax.first[x] + t)) * c + k];
                mid[((size_t)y * w + x) * c + k] = s;
            }
    out->w = w;
    out->h = h;
    out->c = c;
    out->px = evit_malloc((size_t)w * (size_t)h * (size_t)c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                float s = 0.0f;
                for (int t = 0; t < ay.count[y]; t++)
                    s += ay.w[y * ay.max + t] *
                         mid[((size_t)(ay.first[y] + t) * w + x) * c + k];
                long v = lrintf(s);
                out->px[((size_t)y * w + x) * c + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    free(mid);
    axis_free(&ax);
    axis_free(&ay);
}
