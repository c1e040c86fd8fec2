/* test_idx.c: IDX reading, raw and gzip, and import into a dataset. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "dataset.h"
#include "idx.h"
#include "test.h"
#include "util.h"

/* A 2x3x4 image file: pixel i has value 7 * i mod 256. */
#define N 2
#define H 3
#define W 4


/* An IDX header for uint8 data of the given dims, then the data. */
static size_t make_idx(uint8_t *out, int rank, const uint32_t *dims, const uint8_t *data)
{
    size_t n = 0, total = 1;
    out[n++] = 0;
    out[n++] = 0;
    out[n++] = 0x08;
    out[n++] = (uint8_t)rank;
    for (int i = 0; i < rank; i++) {
        out[n++] = (uint8_t)(dims[i] >> 24);
        out[n++] = (uint8_t)(dims[i] >> 16);
        out[n++] = (uint8_t)(dims[i] >> 8);
        out[n++] = (uint8_t)dims[i];
        total *= dims[i];
    }
    memcpy(out + n, data, total);
    return n + total;
}

static void write_raw(const char *path, const uint8_t *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(buf, 1, n, f) != n) abort();
    fclose(f);
}

static void write_gz(const char *path, const uint8_t *buf, size_t n)
{
    gzFile gz = gzopen(path, "wb");
    if (!gz) abort();
    if (n && gzwrite(gz, buf, (unsigned)n) != (int)n) abort();
    gzclose(gz);
}

static size_t image_file(uint8_t *out)
{
    static const uint32_t dims[3] = {N, H, W};
    uint8_t px[N * H * W];
    for (int i = 0; i < N * H * W; i++) px[i] = (uint8_t)(7 * i);
    return make_idx(out, 3, dims, px);
}

static size_t label_file(uint8_t *out, int n, uint8_t first)
{
    uint32_t dims[1] = {(uint32_t)n};
    uint8_t lab[16];
    for (int i = 0; i < n; i++) lab[i] = (uint8_t)(i ? i % 10 : first);
    return make_idx(out, 1, dims, lab);
}

/* Writes the test images (gzip-compressed when gz) to ip and n labels,
 * the first one `first`, to lp. */
static void write_pair(const char *ip, const char *lp, int gz, int n, uint8_t first)
{
    uint8_t img[256], lab[64];
    size_t ni = image_file(img), nl = label_file(lab, n, first);
    (gz ? write_gz : write_raw)(ip, img, ni);
    write_raw(lp, lab, nl);
}

/* evit_idx_read must fail on path; the caller's pointer stays untouched. */
static int read_fails(const char *path)
{
    uint8_t *data = NULL;
    int rank, dims[4];
    int rc = evit_idx_read(path, &data, &rank, dims);
    free(data);
    return rc == EVIT_ERR;
}

static void gzip_and_raw_files_read_the_same_pixels(void)
{
    uint8_t buf[256];
    size_t n = image_file(buf);
    const char *raw = test_path("img.idx"), *gz = test_path("img.idx.gz");
    write_raw(raw, buf, n);
    write_gz(gz, buf, n);
    uint8_t *a = NULL, *b = NULL;
    int ra, rb, da[4], db[4];
    REQUIRE(evit_idx_read(raw, &a, &ra, da) == EVIT_OK);
    REQUIRE(evit_idx_read(gz, &b, &rb, db) == EVIT_OK);
    CHECK(ra == 3 && rb == 3);
    CHECK(da[0] == N && da[1] == H && da[2] == W);
    CHECK(memcmp(da, db, 3 * sizeof(int)) == 0);
    CHECK(memcmp(a, b, N * H * W) == 0);
    CHECK(a[5] == 35 && a[N * H * W - 1] == (uint8_t)(7 * (N * H * W - 1)));
    free(a);
    free(b);
}

static void import_builds_a_one_channel_dataset_with_numeric_names(void)
{
    const char *ip = test_path("imp-img.gz"), *lp = test_path("imp-lab");
    write_pair(ip, lp, 1, N, 3);
    struct evit_dataset d;
    REQUIRE(evit_idx_import(ip, lp, 10, &d) == EVIT_OK);
    CHECK(d.n == N && d.h == H && d.w == W && d.c == 1);
    CHECK(d.classes == 10);
    CHECK(strcmp(d.class_names[0], "0") == 0 && strcmp(d.class_names[9], "9") == 0);
    CHECK(d.labels[0] == 3 && d.labels[1] == 1);
    CHECK(d.images[1] == 7);
    CHECK(d.source && strstr(d.source, "imp-img.gz") != NULL);
    /* mean of 7 * i / 255 over i < 24 */
    CHECK_NEAR(d.mean[0], 7.0 * 11.5 / 255.0, 1e-5);
    CHECK(d.std[0] > 0.0f);
    evit_dataset_free(&d);
}

static void a_missing_file_is_an_error(void)
{
    CHECK(read_fails(test_path("does-not-exist.idx")));
}

static void a_truncated_header_is_an_error(void)
{
    uint8_t buf[256];
    image_file(buf);
    const char *p = test_path("short-head.idx");
    write_raw(p, buf, 6); /* magic and part of the first dimension */
    CHECK(read_fails(p));
    write_raw(p, buf, 2);
    CHECK(read_fails(p));
    write_raw(p, buf, 0);
    CHECK(read_fails(p));
}

static void truncated_data_is_an_error_raw_or_gzip(void)
{
    uint8_t buf[256];
    size_t n = image_file(buf);
    const char *raw = test_path("short.idx"), *gz = test_path("short.idx.gz");
    write_raw(raw, buf, n - 1);
    write_gz(gz, buf, n - 1);
    CHECK(read_fails(raw));
    CHECK(read_fails(gz));
}

static void trailing_bytes_after_the_data_are_an_error(void)
{
    uint8_t buf[256];
    size_t n = image_file(buf);
    buf[n] = 0;
    const char *raw = test_path("long.idx"), *gz = test_path("long.idx.gz");
    write_raw(raw, buf, n + 1);
    write_gz(gz, buf, n + 1);
    CHECK(read_fails(raw));
    CHECK(read_fails(gz));
}

static void a_wrong_magic_is_an_error(void)
{
    uint8_t buf[256];
    size_t n = image_file(buf);
    buf[1] = 0x01;
    const char *p = test_path("magic.idx");
    write_raw(p, buf, n);
    CHECK(read_fails(p));
}

static void a_type_other_than_uint8_is_an_error(void)
{
    uint8_t buf[256];
    size_t n = image_file(buf);
    buf[2] = 0x0D; /* float32 */
    const char *p = test_path("type.idx");
    write_raw(p, buf, n);
    CHECK(read_fails(p));
}

static void a_zero_or_overflowing_dimension_is_an_error(void)
{
    uint8_t buf[64] = {0, 0, 0x08, 4};
    const char *p = test_path("dims.idx");
    /* 4 dims of 0x7fffffff: their product overflows 64 bits */
    for (int i = 0; i < 4; i++) {
        buf[4 + 4 * i] = 0x7f;
        buf[5 + 4 * i] = buf[6 + 4 * i] = buf[7 + 4 * i] = 0xff;
    }
    write_raw(p, buf, 20);
    CHECK(read_fails(p));
    memset(buf + 4, 0, 16);
    write_raw(p, buf, 20);
    CHECK(read_fails(p));
}

static void a_corrupt_gzip_stream_is_an_error(void)
{
    uint8_t buf[256];
    size_t n = image_file(buf);
    const char *p = test_path("corrupt.gz");
    write_gz(p, buf, n);
    uint8_t *gz;
    size_t len;
    REQUIRE(evit_read_file(p, &gz, &len) == EVIT_OK);
    /* past the 10-byte gzip header, into the deflate stream */
    for (size_t i = 10; i < len - 8; i++) gz[i] ^= 0xA5;
    write_raw(p, gz, len);
    CHECK(read_fails(p));
    /* a stream cut short, with no trailer */
    free(gz);
    write_gz(p, buf, n);
    REQUIRE(evit_read_file(p, &gz, &len) == EVIT_OK);
    write_raw(p, gz, len - 6);
    CHECK(read_fails(p));
    free(gz);
}

static void a_label_outside_the_classes_is_an_error(void)
{
    const char *ip = test_path("range-img"), *lp = test_path("range-lab");
    write_pair(ip, lp, 0, N, 10);
    struct evit_dataset d;
    CHECK(evit_idx_import(ip, lp, 10, &d) == EVIT_ERR);
    CHECK(evit_idx_import(ip, lp, 11, &d) == EVIT_OK);
    evit_dataset_free(&d);
}

static void image_and_label_counts_must_agree(void)
{
    const char *ip = test_path("count-img"), *lp = test_path("count-lab");
    write_pair(ip, lp, 0, N + 1, 0);
    struct evit_dataset d;
    CHECK(evit_idx_import(ip, lp, 10, &d) == EVIT_ERR);
}

static void labels_and_images_must_have_the_right_rank(void)
{
    const char *ip = test_path("rank-img"), *lp = test_path("rank-lab");
    write_pair(ip, lp, 0, N, 0);
    struct evit_dataset d;
    CHECK(evit_idx_import(lp, lp, 10, &d) == EVIT_ERR);
    CHECK(evit_idx_import(ip, ip, 10, &d) == EVIT_ERR);
}

int main(void)
{
    RUN(gzip_and_raw_files_read_the_same_pixels);
    RUN(import_builds_a_one_channel_dataset_with_numeric_names);
    RUN(a_missing_file_is_an_error);
    RUN(a_truncated_header_is_an_error);
    RUN(truncated_data_is_an_error_raw_or_gzip);
    RUN(trailing_bytes_after_the_data_are_an_error);
    RUN(a_wrong_magic_is_an_error);
    RUN(a_type_other_than_uint8_is_an_error);
    RUN(a_zero_or_overflowing_dimension_is_an_error);
    RUN(a_corrupt_gzip_stream_is_an_error);
    RUN(a_label_outside_the_classes_is_an_error);
    RUN(image_and_label_counts_must_agree);
    RUN(labels_and_images_must_have_the_right_rank);
    return test_summary();
}
