/* test.h: a minimal test harness.  A test file defines static void
 * functions whose names read as sentences and lists them in main():
 *
 *   static void patchify_orders_columns_like_a_conv_weight(void) { ... }
 *   int main(void) { RUN(patchify_orders_columns_like_a_conv_weight); return test_summary(); }
 *
 * CHECK records a failure and continues; REQUIRE stops the current test. */
#ifndef EVIT_TEST_H
#define EVIT_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_current_failed;
static int test_passed, test_failed;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            test_current_failed = 1;                                             \
        }                                                                        \
    } while (0)

#define REQUIRE(cond)                                                            \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "  %s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
            test_current_failed = 1;                                             \
            return;                                                              \
        }                                                                        \
    } while (0)

/* |a - b| <= tol, printing both on failure */
#define CHECK_NEAR(a, b, tol)                                                    \
    do {                                                                         \
        double a_ = (double)(a), b_ = (double)(b);                               \
        if (!(fabs(a_ - b_) <= (tol))) {                                         \
            fprintf(stderr, "  %s:%d: CHECK_NEAR failed: %s = %.9g, %s = %.9g, tol %g\n", \
                    __FILE__, __LINE__, #a, a_, #b, b_, (double)(tol));         \
            test_current_failed = 1;                                             \
        }                                                                        \
    } while (0)

#define RUN(fn)                                                                  \
    do {                                                                         \
        test_current_failed = 0;                                                 \
        fn();                                                                    \
        char name_[256];                                                         \
        snprintf(name_, sizeof name_, "%s", #fn);                                \
        for (char *p_ = name_; *p_; p_++)                                        \
            if (*p_ == '_') *p_ = ' ';                                           \
        if (test_current_failed) {                                               \
            test_failed++;                                                       \
            printf("not ok - %s\n", name_);                                      \
        } else {                                                                 \
            test_passed++;                                                       \
            printf("ok - %s\n", name_);                                          \
        }                                                                        \
        fflush(stdout);                                                          \
    } while (0)

static inline int test_summary(void)
{
    printf("# %d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

static char test_dir_[256];

static void test_remove_tmpdir_(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_dir_);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", test_dir_);
}

/* A scratch directory under $TMPDIR, created once per test binary and
 * removed when it exits. */
static inline const char *test_tmpdir(void)
{
    char *dir = test_dir_;
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof test_dir_, "%s/evit-test-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(99);
        }
        atexit(test_remove_tmpdir_);
    }
    return dir;
}

/* name inside test_tmpdir(); the last 8 results stay valid. */
static inline char *test_path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", test_tmpdir(), name);
    return p;
}

#endif
