/* util.h: assertions, error messages and small helpers shared by every module.
 *
 * Error convention (the whole of libevit): a function that can fail on bad
 * input returns a negative code (EVIT_ERR) after printing exactly one line to
 * stderr, "error: <file>: <what is wrong>", through evit_error().  Callers pass
 * the code up without printing again; only main() turns it into an exit code
 * (0 ok, 1 failure, 2 usage).  Broken invariants (programming errors) use
 * EVIT_ASSERT, which is always on and aborts with file:line. */
#ifndef EVIT_UTIL_H
#define EVIT_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define EVIT_OK 0
#define EVIT_ERR (-1)

#define EVIT_ASSERT(cond)                                                     \
    do {                                                                      \
        if (!(cond)) evit_assert_fail(__FILE__, __LINE__, #cond);             \
    } while (0)

void evit_assert_fail(const char *file, int line, const char *expr)
    __attribute__((noreturn));

/* Prints "error: " + the formatted message + newline to stderr; returns EVIT_ERR
 * so that "return evit_error(...)" reads naturally. */
int evit_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Progress and informational lines go to stderr so stdout stays parseable. */
void evit_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Allocation that aborts on failure: out-of-memory is not recoverable here. */
void *evit_malloc(size_t n);
void *evit_calloc(size_t n, size_t size);
char *evit_strdup(const char *s);

/* printf into a new string (caller frees). */
char *evit_strfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 64-byte aligned, zeroed; free with evit_free_aligned. */
float *evit_alloc_floats(size_t n);
void evit_free_aligned(void *p);

/* Wall-clock seconds from a monotonic clock. */
double evit_now(void);

/* FNV-1a 64 over a byte buffer; used to fingerprint labels and weights. */
uint64_t evit_fnv1a64(const void *data, size_t n, uint64_t seed);
#define EVIT_FNV_SEED 0xcbf29ce484222325ULL

/* "dir/base.h5" -> "dir/.base.h5.tmp.<pid>" in the same folder, so that the
 * final rename(2) is atomic.  Caller frees. */
char *evit_temp_path(const char *path);

/* Renames tmp to path; on failure removes tmp and reports. */
int evit_commit_file(const char *tmp, const char *path);

/* Writes n bytes to a temporary file next to path, renamed into place: a
 * killed or failed write never leaves a partial path.  Errors name path. */
int evit_write_file(const char *path, const void *data, size_t n);

/* Reads a whole file; returns EVIT_ERR with a message naming path. */
int evit_read_file(const char *path, uint8_t **data, size_t *size);

/* Sets OpenMP and OpenBLAS thread counts together; n <= 0 keeps the default. */
void evit_set_threads(int n);
int evit_get_threads(void);

/* Strict integer parse for command-line values: whole string, within range. */
int evit_parse_int(const char *s, long lo, long hi, long *out);

#endif
