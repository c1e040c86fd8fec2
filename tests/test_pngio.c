/* test_pngio.c: PNG decoding of every colour type, writing, resizing and
 * class-folder import.  The test PNGs are written with libpng directly, so
 * the reader is not only checked against its own writer. */
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset.h"
#include "pngdir.h"
#include "pngio.h"
#include "test.h"
#include "util.h"


struct raw_png {
    int w, h, color, depth;
    const uint8_t *rows; /* packed rows, as the PNG stores them */
    size_t stride;
    const png_color *palette;
    int npalette;
    const uint8_t *trns;
    int ntrns;
};

static void write_png_raw(const char *path, const struct raw_png *p)
{
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!png || !info || setjmp(png_jmpbuf(png))) abort();
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)p->w, (png_uint_32)p->h, p->depth, p->color,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (p->palette) png_set_PLTE(png, info, p->palette, p->npalette);
    if (p->trns) png_set_tRNS(png, info, p->trns, p->ntrns, NULL);
    png_write_info(png, info);
    for (int y = 0; y < p->h; y++) png_write_row(png, p->rows + p->stride * (size_t)y);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

/* Reads path as `channels` and compares with want (w * h * channels). */
static int decodes_to(const char *path, int channels, const uint8_t *want, int w, int h)
{
    struct evit_image img;
    if (evit_png_read(path, channels, &img) != EVIT_OK) return 0;
    int ok = img.w == w && img.h == h && img.c == channels &&
             memcmp(img.px, want, (size_t)w * (size_t)h * (size_t)channels) == 0;
    if (!ok) {
        fprintf(stderr, "  %s as %d channels:", path, channels);
        for (int i = 0; i < w * h * channels && i < 32; i++) fprintf(stderr, " %d", img.px[i]);
        fputc('\n', stderr);
    }
    evit_image_free(&img);
    return ok;
}

/* Writes p to file, then reads it back as each channel count c with
 * want[c] != NULL and compares; 1 when every reading matched. */
static int png_decodes_as(const struct raw_png *p, const char *file, const uint8_t *const want[5])
{
    const char *path = test_path(file);
    int ok = 1;
    write_png_raw(path, p);
    for (int c = 1; c <= 4; c++)
        if (want[c]) ok &= decodes_to(path, c, want[c], p->w, p->h);
    return ok;
}

static void gray_8_bit_decodes_exactly(void)
{
    static const uint8_t px[4] = {0, 50, 128, 255};
    static const uint8_t rgb[12] = {0, 0, 0, 50, 50, 50, 128, 128, 128, 255, 255, 255};
    struct raw_png p = {.w = 2, .h = 2, .color = PNG_COLOR_TYPE_GRAY, .depth = 8,
                        .rows = px, .stride = 2};
    CHECK(png_decodes_as(&p, "g8.png", (const uint8_t *const[5]){NULL, px, NULL, rgb, NULL}));
}

static void gray_16_bit_scales_to_8_bit(void)
{
    /* v * 257 is exactly v in 8 bits, however libpng rounds */
    static const uint8_t be16[8] = {0, 0, 1, 1, 200, 200, 255, 255};
    static const uint8_t want[4] = {0, 1, 200, 255};
    static const uint8_t rgb[12] = {0, 0, 0, 1, 1, 1, 200, 200, 200, 255, 255, 255};
    struct raw_png p = {.w = 4, .h = 1, .color = PNG_COLOR_TYPE_GRAY, .depth = 16,
                        .rows = be16, .stride = 8};
    CHECK(png_decodes_as(&p, "g16.png", (const uint8_t *const[5]){NULL, want, NULL, rgb, NULL}));
}

static void one_bit_gray_expands_to_black_and_white(void)
{
    /* 1 0 1 1 0 0 0 1 | 1 0 */
    static const uint8_t bits[2] = {0xB1, 0x80};
    static const uint8_t want[10] = {255, 0, 255, 255, 0, 0, 0, 255, 255, 0};
    struct raw_png p = {.w = 10, .h = 1, .color = PNG_COLOR_TYPE_GRAY, .depth = 1,
                        .rows = bits, .stride = 2};
    CHECK(png_decodes_as(&p, "g1.png", (const uint8_t *const[5]){NULL, want, NULL, NULL, NULL}));
}

static void gray_alpha_is_composited_over_black(void)
{
    static const uint8_t ga[6] = {200, 255, 200, 0, 100, 128};
    /* 100 * 128 / 255 = 50.2 */
    static const uint8_t gray[3] = {200, 0, 50};
    static const uint8_t rgb[9] = {200, 200, 200, 0, 0, 0, 50, 50, 50};
    static const uint8_t rgba[12] = {200, 200, 200, 255, 200, 200, 200, 0, 100, 100, 100, 128};
    struct raw_png p = {.w = 3, .h = 1, .color = PNG_COLOR_TYPE_GRAY_ALPHA, .depth = 8,
                        .rows = ga, .stride = 6};
    CHECK(png_decodes_as(&p, "ga.png", (const uint8_t *const[5]){NULL, gray, ga, rgb, rgba}));
}

static void rgb_converts_to_rounded_luminance(void)
{
    static const uint8_t rgb[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30};
    /* 0.299 * 255 = 76.2, 0.587 * 255 = 149.7, 0.114 * 255 = 29.1,
     * 2.99 + 11.74 + 3.42 = 18.2 */
    static const uint8_t gray[4] = {76, 150, 29, 18};
    struct raw_png p = {.w = 2, .h = 2, .color = PNG_COLOR_TYPE_RGB, .depth = 8,
                        .rows = rgb, .stride = 6};
    CHECK(png_decodes_as(&p, "rgb.png", (const uint8_t *const[5]){NULL, gray, NULL, rgb, NULL}));
}

static void rgba_is_composited_over_black(void)
{
    static const uint8_t rgba[12] = {255, 0, 0, 255, 0, 255, 0, 0, 100, 200, 50, 128};
    static const uint8_t rgb[9] = {255, 0, 0, 0, 0, 0, 50, 100, 25};
    /* luminance 76, 150, 153; then times alpha */
    static const uint8_t gray[3] = {76, 0, 77};
    struct raw_png p = {.w = 3, .h = 1, .color = PNG_COLOR_TYPE_RGB_ALPHA, .depth = 8,
                        .rows = rgba, .stride = 12};
    CHECK(png_decodes_as(&p, "rgba.png", (const uint8_t *const[5]){NULL, gray, NULL, rgb, rgba}));
}

static void a_4_bit_palette_with_trns_becomes_rgba(void)
{
    static const png_color pal[3] = {{255, 0, 0}, {0, 0, 255}, {10, 200, 30}};
    static const uint8_t trns[2] = {255, 0}; /* entry 2 stays opaque */
    static const uint8_t idx[2] = {0x01, 0x20};
    static const uint8_t rgba[12] = {255, 0, 0, 255, 0, 0, 255, 0, 10, 200, 30, 255};
    static const uint8_t rgb[9] = {255, 0, 0, 0, 0, 0, 10, 200, 30};
    struct raw_png p = {.w = 3, .h = 1, .color = PNG_COLOR_TYPE_PALETTE, .depth = 4,
                        .rows = idx, .stride = 2, .palette = pal, .npalette = 3,
                        .trns = trns, .ntrns = 2};
    CHECK(png_decodes_as(&p, "pal.png", (const uint8_t *const[5]){NULL, NULL, NULL, rgb, rgba}));
}

static void written_images_read_back_identically(void)
{
    for (int c = 1; c <= 4; c++) {
        struct evit_image img = {.w = 5, .h = 3, .c = c};
        img.px = evit_malloc(5 * 3 * (size_t)c);
        for (int i = 0; i < 5 * 3 * c; i++) img.px[i] = (uint8_t)(i * 37 + c);
        char name[32];
        snprintf(name, sizeof name, "round%d.png", c);
        const char *path = test_path(name);
        CHECK(evit_png_write(path, &img) == EVIT_OK);
        CHECK(decodes_to(path, c, img.px, 5, 3));
        evit_image_free(&img);
    }
}

static void resizing_a_constant_image_keeps_it_constant(void)
{
    struct evit_image in = {.w = 7, .h = 5, .c = 3}, out;
    in.px = evit_malloc(7 * 5 * 3);
    memset(in.px, 200, 7 * 5 * 3);
    static const int sizes[3][2] = {{3, 2}, {20, 11}, {7, 5}};
    for (int s = 0; s < 3; s++) {
        evit_image_resize(&out, &in, sizes[s][0], sizes[s][1]);
        CHECK(out.w == sizes[s][0] && out.h == sizes[s][1] && out.c == 3);
        int same = 1;
        for (int i = 0; i < out.w * out.h * 3; i++) same = same && out.px[i] == 200;
        CHECK(same);
        evit_image_free(&out);
    }
    evit_image_free(&in);
}

static void a_truncated_png_or_a_non_png_is_an_error(void)
{
    struct evit_image img = {.w = 32, .h = 32, .c = 3}, got;
    img.px = evit_malloc(32 * 32 * 3);
    for (int i = 0; i < 32 * 32 * 3; i++) img.px[i] = (uint8_t)(i * 7919 >> 3);
    const char *path = test_path("whole.png");
    REQUIRE(evit_png_write(path, &img) == EVIT_OK);
    evit_image_free(&img);
    uint8_t *buf;
    size_t len;
    REQUIRE(evit_read_file(path, &buf, &len) == EVIT_OK);
    const char *cut = test_path("cut.png");
    FILE *f = fopen(cut, "wb");
    REQUIRE(f != NULL);
    fwrite(buf, 1, len / 2, f);
    fclose(f);
    free(buf);
    CHECK(evit_png_read(cut, 3, &got) == EVIT_ERR);
    const char *text = test_path("text.png");
    f = fopen(text, "w");
    REQUIRE(f != NULL);
    fputs("this is not a PNG\n", f);
    fclose(f);
    CHECK(evit_png_read(text, 1, &got) == EVIT_ERR);
    CHECK(evit_png_read(test_path("missing.png"), 1, &got) == EVIT_ERR);
}

/* A w x w gray PNG filled with v. */
static void put_image(const char *dir, const char *name, int w, uint8_t v)
{
    struct evit_image img = {.w = w, .h = w, .c = 1};
    img.px = evit_malloc((size_t)w * (size_t)w);
    memset(img.px, v, (size_t)w * (size_t)w);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (evit_png_write(path, &img) != EVIT_OK) abort();
    evit_image_free(&img);
}

static const char *make_dir(const char *name)
{
    const char *p = test_path(name);
    mkdir(p, 0755);
    return p;
}

static void folder_import_sorts_classes_and_files_by_name(void)
{
    make_dir("tree");
    /* created out of order; hidden entries and non-PNG files are skipped */
    const char *b = make_dir("tree/b_class");
    put_image(b, "2.png", 4, 12);
    put_image(b, "0.png", 4, 10);
    put_image(b, "1.png", 4, 11);
    const char *a = make_dir("tree/a_class");
    put_image(a, "x1.png", 4, 1);
    put_image(a, "x0.png", 4, 0);
    put_image(a, "x2.png", 4, 2);
    put_image(a, ".hidden.png", 4, 99);
    FILE *f = fopen(test_path("tree/a_class/notes.txt"), "w");
    if (f) fclose(f);
    put_image(make_dir("tree/.cache"), "y.png", 4, 99);

    struct evit_dataset d;
    REQUIRE(evit_pngdir_import(test_path("tree"), 1, 4, 0, &d) == EVIT_OK);
    CHECK(d.n == 6 && d.h == 4 && d.w == 4 && d.c == 1);
    REQUIRE(d.classes == 2);
    CHECK(strcmp(d.class_names[0], "a_class") == 0);
    CHECK(strcmp(d.class_names[1], "b_class") == 0);
    static const int32_t labels[6] = {0, 0, 0, 1, 1, 1};
    static const uint8_t first[6] = {0, 1, 2, 10, 11, 12};
    for (int i = 0; i < 6 && i < d.n; i++) {
        CHECK(d.labels[i] == labels[i]);
        CHECK(d.images[i * 16] == first[i] && d.images[i * 16 + 15] == first[i]);
    }
    CHECK(d.source && strstr(d.source, "tree") != NULL);
    CHECK_NEAR(d.mean[0], 36.0 / 6.0 / 255.0, 1e-6);
    evit_dataset_free(&d);
}

static void an_image_of_another_size_needs_resize(void)
{
    make_dir("sizes");
    put_image(make_dir("sizes/one"), "a.png", 4, 80);
    put_image(make_dir("sizes/two"), "b.png", 6, 90);
    struct evit_dataset d;
    CHECK(evit_pngdir_import(test_path("sizes"), 1, 4, 0, &d) == EVIT_ERR);
    REQUIRE(evit_pngdir_import(test_path("sizes"), 3, 4, 1, &d) == EVIT_OK);
    CHECK(d.n == 2 && d.c == 3 && d.classes == 2);
    CHECK(d.images[16 * 3] == 90 && d.images[2 * 16 * 3 - 1] == 90);
    evit_dataset_free(&d);
}

static void an_empty_root_one_class_or_an_empty_class_is_an_error(void)
{
    struct evit_dataset d;
    CHECK(evit_pngdir_import(make_dir("empty"), 1, 4, 0, &d) == EVIT_ERR);
    make_dir("hollow");
    put_image(make_dir("hollow/full"), "a.png", 4, 1);
    CHECK(evit_pngdir_import(test_path("hollow"), 1, 4, 0, &d) == EVIT_ERR);
    make_dir("hollow/none");
    CHECK(evit_pngdir_import(test_path("hollow"), 1, 4, 0, &d) == EVIT_ERR);
    CHECK(evit_pngdir_import(test_path("no-such-dir"), 1, 4, 0, &d) == EVIT_ERR);
}

int main(void)
{
    RUN(gray_8_bit_decodes_exactly);
    RUN(gray_16_bit_scales_to_8_bit);
    RUN(one_bit_gray_expands_to_black_and_white);
    RUN(gray_alpha_is_composited_over_black);
    RUN(rgb_converts_to_rounded_luminance);
    RUN(rgba_is_composited_over_black);
    RUN(a_4_bit_palette_with_trns_becomes_rgba);
    RUN(written_images_read_back_identically);
    RUN(resizing_a_constant_image_keeps_it_constant);
    RUN(a_truncated_png_or_a_non_png_is_an_error);
    RUN(folder_import_sorts_classes_and_files_by_name);
    RUN(an_image_of_another_size_needs_resize);
    RUN(an_empty_root_one_class_or_an_empty_class_is_an_error);
    return test_summary();
}
