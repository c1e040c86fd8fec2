/* idx.c: see idx.h. */
#include "idx.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "dataset.h"
#include "util.h"

/* A header can claim any size, so the buffer grows with the data actually
 * read instead of trusting the header with one huge allocation. */
#define IDX_CHUNK ((size_t)1 << 24)

/* Reads up to n bytes; returns the count read, or -1 after reporting a read
 * or decompression error.  A gzip stream that ends early is an error here,
 * not a short count, because zlib flags it as "unexpected end of file". */
static long long gz_read_all(gzFile gz, const char *path, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got > INT_MAX / 2 ? INT_MAX / 2 : n - got;
        int r = gzread(gz, buf + got, (unsigned)want);
        int zerr = Z_OK;
        const char *msg = gzerror(gz, &zerr);
        if (r < 0 || (zerr != Z_OK && zerr != Z_STREAM_END)) {
            /* zlib prefixes its messages with "<fd:N>: ", which means nothing
             * to a user who named a file */
            const char *colon = strstr(msg, ": ");
            if (msg[0] == '<' && colon) msg = colon + 2;
            if (zerr == Z_BUF_ERROR) msg = "truncated gzip stream";
            evit_error("%s: %s%s", path, zerr == Z_DATA_ERROR ? "corrupt gzip data: " : "",
                       msg);
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long long)got;
}

static int read_header(gzFile gz, const char *path, int *rank, int dims[4], size_t *total)
{
    uint8_t head[4 + 4 * 4];
    long long got = gz_read_all(gz, path, head, 4);
    if (got < 0) return EVIT_ERR;
    if (got < 4) return evit_error("%s: truncated IDX header (%lld of 4 bytes)", path, got);
    if (head[0] != 0 || head[1] != 0)
        return evit_error("%s: not an IDX file (magic %02x %02x, expected 00 00)", path,
                          head[0], head[1]);
    if (head[2] != 0x08)
        return evit_error("%s: IDX element type 0x%02x is not supported (only uint8, 0x08)",
                          path, head[2]);
    if (head[3] < 1 || head[3] > 4)
        return evit_error("%s: IDX rank %d is not supported (1 to 4)", path, head[3]);
    *rank = head[3];
    size_t need = 4 * (size_t)*rank;
    got = gz_read_all(gz, path, head + 4, need);
    if (got < 0) return EVIT_ERR;
    if ((size_t)got < need)
        return evit_error("%s: truncated IDX header (%lld of %zu dimension bytes)", path, got,
                          need);
    *total = 1;
    for (int i = 0; i < *rank; i++) {
        const uint8_t *p = head + 4 + 4 * i;
        uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (d == 0 || d > INT_MAX)
            return evit_error("%s: IDX dimension %d is %u (must be 1 to %d)", path, i, d,
                              INT_MAX);
        if (*total > SIZE_MAX / d)
            return evit_error("%s: IDX dimensions overflow the address space", path);
        *total *= d;
        dims[i] = (int)d;
    }
    return EVIT_OK;
}

/* Reads exactly total bytes, then demands end of file: both short data and
 * trailing bytes mean the header and the payload disagree. */
static int read_payload(gzFile gz, const char *path, size_t total, uint8_t **out)
{
    size_t cap = total < IDX_CHUNK ? total : IDX_CHUNK, got = 0;
    uint8_t *buf = evit_malloc(cap);
    while (got < total) {
        if (got == cap) {
            size_t ncap = cap > total / 2 ? total : 2 * cap;
            uint8_t *nbuf = evit_malloc(ncap);
            memcpy(nbuf, buf, got);
            free(buf);
            buf = nbuf;
            cap = ncap;
        }
        long long r = gz_read_all(gz, path, buf + got, cap - got);
        if (r < 0) goto fail;
        got += (size_t)r;
        if (got < cap) break;
    }
    if (got < total) {
        evit_error("%s: truncated IDX data (%zu of %zu bytes)", path, got, total);
        goto fail;
    }
    uint8_t extra;
    long long r = gz_read_all(gz, path, &extra, 1);
    if (r < 0) goto fail;
    if (r > 0) {
        evit_error("%s: trailing bytes after %zu bytes of IDX data", path, total);
        goto fail;
    }
    *out = buf;
    return EVIT_OK;
fail:
    free(buf);
    return EVIT_ERR;
}

int evit_idx_read(const char *path, uint8_t **data, int *rank, int dims[4])
{
    size_t total = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return evit_error("%s: %s", path, strerror(errno));
    /* gzdopen reads plain files transparently; it owns fd from here on */
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return evit_error("%s: cannot open for reading", path);
    }
    if (read_header(gz, path, rank, dims, &total) < 0) goto fail;
    if (read_payload(gz, path, total, data) < 0) goto fail;
    gzclose_r(gz);
    return EVIT_OK;
fail:
    gzclose_r(gz);
    return EVIT_ERR;
}

static char **numeric_names(int classes)
{
    char **names = evit_calloc((size_t)classes, sizeof *names);
    for (int i = 0; i < classes; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", i);
        names[i] = evit_strdup(buf);
    }
    return names;
}

static int check_labels(const uint8_t *labels, int n, int classes, const char *path)
{
    for (int i = 0; i < n; i++) {
        if (labels[i] >= classes)
            return evit_error("%s: label %d of item %d is outside [0, %d)", path, labels[i], i,
                              classes);
    }
    return EVIT_OK;
}

int evit_idx_import(const char *images_path, const char *labels_path, int classes,
                    struct evit_dataset *out)
{
    uint8_t *images = NULL, *labels = NULL;
    int irank, lrank, idims[4], ldims[4];
    EVIT_ASSERT(classes >= 2);
    if (evit_idx_read(images_path, &images, &irank, idims) < 0) goto fail;
    if (irank != 3) {
        evit_error("%s: images must be an IDX file of rank 3 (N, H, W), not rank %d",
                   images_path, irank);
        goto fail;
    }
    if (evit_idx_read(labels_path, &labels, &lrank, ldims) < 0) goto fail;
    if (lrank != 1) {
        evit_error("%s: labels must be an IDX file of rank 1 (N), not rank %d", labels_path,
                   lrank);
        goto fail;
    }
    if (ldims[0] != idims[0]) {
        evit_error("%s: %d labels for %d images in %s", labels_path, ldims[0], idims[0],
                   images_path);
        goto fail;
    }
    if (check_labels(labels, ldims[0], classes, labels_path) < 0) goto fail;

    memset(out, 0, sizeof *out);
    out->n = idims[0];
    out->h = idims[1];
    out->w = idims[2];
    out->c = 1;
    out->classes = classes;
    out->class_names = numeric_names(classes);
    /* (N, H, W) uint8 is already the (N, H, W, 1) layout a dataset wants */
    out->images = images;
    out->labels = evit_malloc(sizeof(int32_t) * (size_t)out->n);
    for (int i = 0; i < out->n; i++) out->labels[i] = labels[i];
    free(labels);
    size_t len = strlen(images_path) + strlen(labels_path) + 4;
    out->source = evit_malloc(len);
    snprintf(out->source, len, "%s + %s", images_path, labels_path);
    evit_dataset_stats(out);
    return EVIT_OK;
fail:
    free(images);
    free(labels);
    return EVIT_ERR;
}
