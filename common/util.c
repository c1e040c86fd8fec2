/* util.c: see util.h. */
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <omp.h>

void evit_assert_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}

int evit_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EVIT_ERR;
}

void evit_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void *evit_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    EVIT_ASSERT(p != NULL);
    return p;
}

void *evit_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    EVIT_ASSERT(p != NULL);
    return p;
}

char *evit_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = evit_malloc(n);
    memcpy(p, s, n);
    return p;
}

char *evit_strfmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    EVIT_ASSERT(n >= 0);
    char *s = evit_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

float *evit_alloc_floats(size_t n)
{
    void *p = NULL;
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    EVIT_ASSERT(posix_memalign(&p, 64, bytes) == 0);
    memset(p, 0, bytes);
    return p;
}

void evit_free_aligned(void *p) { free(p); }

double evit_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t evit_fnv1a64(const void *data, size_t n, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = seed;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

char *evit_temp_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    const char *base = path + dirlen;
    size_t n = strlen(path) + 32;
    char *tmp = evit_malloc(n);
    snprintf(tmp, n, "%.*s.%s.tmp.%ld", (int)dirlen, path, base, (long)getpid());
    return tmp;
}

int evit_commit_file(const char *tmp, const char *path)
{
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return evit_error("%s: cannot rename temporary file into place: %s", path,
                          strerror(e));
    }
    return EVIT_OK;
}

int evit_write_file(const char *path, const void *data, size_t n)
{
    char *tmp = evit_temp_path(path);
    int rc = EVIT_ERR;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        evit_error("%s: cannot create a temporary file next to it: %s", path, strerror(errno));
        goto out;
    }
    int ok = fwrite(data, 1, n, f) == n;
    if (fclose(f) != 0 || !ok) {
        remove(tmp);
        evit_error("%s: write failed (disk full?)", path);
        goto out;
    }
    rc = evit_commit_file(tmp, path);
out:
    free(tmp);
    return rc;
}

int evit_read_file(const char *path, uint8_t **data, size_t *size)
{
    uint8_t *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return evit_error("%s: %s", path, strerror(errno));
    /* a directory opens fine on Linux and reports a huge size */
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return evit_error("%s: not a regular file", path);
    }
    if (fseek(f, 0, SEEK_END) != 0) goto fail_io;
    long len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET) != 0) goto fail_io;
    buf = evit_malloc((size_t)len + 1);
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) goto fail_io;
    fclose(f);
    *data = buf;
    *size = (size_t)len;
    return EVIT_OK;
fail_io:
    free(buf);
    fclose(f);
    return evit_error("%s: cannot read file", path);
}

void evit_set_threads(int n)
{
    if (n <= 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int evit_get_threads(void) { return omp_get_max_threads(); }

int evit_parse_int(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) return EVIT_ERR;
    *out = v;
    return EVIT_OK;
}
