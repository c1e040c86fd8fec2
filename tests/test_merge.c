/* test_merge.c: Token Merging's matching and size-weighted merge
 * (model/merge.h).  The gradient check is in test_grad.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"
#include "rng.h"
#include "test.h"
#include "util.h"

/* T rows of d random metric values. */
static float *random_metric(int T, int d, uint64_t seed)
{
    struct evit_rng r;
    float *m = evit_alloc_floats((size_t)T * d);
    evit_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)T * d; i++) m[i] = (float)evit_rng_normal(&r);
    return m;
}

/* 1 when dst maps T tokens onto exactly T - r outputs, each used, the
 * class token to 0 and every B token (odd) to an output of its own. */
static int is_a_merge(const int *dst, int T, int r)
{
    int *used = calloc((size_t)T, sizeof(int)), ok = dst[0] == 0;
    for (int i = 0; i < T; i++) {
        if (dst[i] < 0 || dst[i] >= T - r) ok = 0;
        else used[dst[i]] += 1 + (i % 2 ? T : 0); /* B tokens counted apart */
    }
    for (int j = 0; j < T - r; j++)
        if (used[j] == 0 || used[j] > 2 * T) ok = 0;
    free(used);
    return ok;
}

static void the_matching_merges_r_tokens_and_never_the_class_token(void)
{
    static const int Ts[4] = {5, 17, 50, 197}, rs[4][3] = {{0, 1, 2}, {1, 4, 8}, {1, 8, 24}, {1, 8, 16}};
    for (int k = 0; k < 4; k++) {
        int T = Ts[k], *dst = malloc(sizeof(int) * (size_t)T);
        float *m = random_metric(T, 8, 3 + (uint64_t)k);
        for (int j = 0; j < 3; j++) {
            evit_merge_match(dst, m, T, 8, rs[k][j]);
            CHECK(is_a_merge(dst, T, rs[k][j]));
        }
        evit_merge_match(dst, m, T, 8, evit_merge_max_r(T));
        CHECK(is_a_merge(dst, T, evit_merge_max_r(T)));
        free(dst);
        evit_free_aligned(m);
    }
    CHECK(evit_merge_max_r(197) == 98 && evit_merge_max_r(50) == 24 && evit_merge_max_r(1) == 0);
}

static void r_zero_keeps_every_token_in_order(void)
{
    int dst[9];
    float *m = random_metric(9, 4, 1);
    evit_merge_match(dst, m, 9, 4, 0);
    evit_free_aligned(m);
    /* A tokens 0, 2, 4, 6, 8 first, then B tokens 1, 3, 5, 7 */
    for (int a = 0; a < 5; a++) CHECK(dst[2 * a] == a);
    for (int b = 0; b < 4; b++) CHECK(dst[2 * b + 1] == 5 + b);
}

/* Tokens 0..6 (A: 0 2 4 6, B: 1 3 5): token 4 is a copy of 3 (cosine 1),
 * token 6 nearly of 5, token 2 far from every B token: r 1 merges 4 into
 * 3, r 2 also 6 into 5; scale does not matter (cosine). */
static void the_most_similar_pairs_merge_first(void)
{
    float m[7 * 3] = {
        1, 1, 1,   /* 0 class token */
        1, 0, 0,   /* 1 B */
        0, -1, 0.2f, /* 2 A */
        0, 1, 0,   /* 3 B */
        0, 5, 0,   /* 4 A = 3 scaled */
        0, 0, 1,   /* 5 B */
        0.1f, 0, 2, /* 6 A ~ 5 */
    };
    int dst[7];
    evit_merge_match(dst, m, 7, 3, 1);
    /* outputs: A 0 2 6 -> 0 1 2, B 1 3 5 -> 3 4 5; 4 joins 3 */
    CHECK(dst[0] == 0 && dst[2] == 1 && dst[6] == 2 && dst[1] == 3 && dst[3] == 4 && dst[5] == 5 && dst[4] == 4);
    evit_merge_match(dst, m, 7, 3, 2);
    CHECK(dst[0] == 0 && dst[2] == 1 && dst[1] == 2 && dst[3] == 3 && dst[5] == 4 && dst[4] == 3 && dst[6] == 4);
}

/* Equal scores: the lower A index merges first, into the lower B index. */
static void ties_are_broken_by_index(void)
{
    float m[7 * 2];
    int dst[7];
    for (int t = 0; t < 7; t++) m[2 * t] = 1.0f, m[2 * t + 1] = 0.0f; /* all the same */
    m[1] = 1.0f; /* the class token differs; it never merges anyway */
    evit_merge_match(dst, m, 7, 2, 1);
    /* A 2 merges (the first of 2, 4, 6), into B token 1 */
    CHECK(dst[2] == dst[1] && dst[4] != dst[1] && dst[6] != dst[1]);
    CHECK(is_a_merge(dst, 7, 1));
}

static void the_merge_is_the_size_weighted_average_and_sizes_add_up(void)
{
    enum { T = 17, D = 5, R = 6 };
    int dst[T];
    float *m = random_metric(T, 4, 9), *x = random_metric(T, D, 10), s[T], so[T - R], out[(T - R) * D];
    double total = 0.0, merged = 0.0;
    for (int i = 0; i < T; i++) s[i] = 1.0f + (float)(i % 3), total += (double)s[i];
    evit_merge_match(dst, m, T, 4, R);
    evit_merge_forward(out, so, x, s, dst, T, R, D);
    for (int j = 0; j < T - R; j++) merged += (double)so[j];
    CHECK(merged == total);
    for (int j = 0; j < T - R; j++)
        for (int c = 0; c < D; c++) {
            double num = 0.0, den = 0.0;
            for (int i = 0; i < T; i++)
                if (dst[i] == j) num += (double)s[i] * (double)x[i * D + c], den += (double)s[i];
            CHECK(fabs((double)out[j * D + c] - num / den) < 1e-5);
        }
    evit_free_aligned(m);
    evit_free_aligned(x);
}

static void the_metric_is_the_keys_averaged_over_heads(void)
{
    enum { T = 3, H = 2, d = 2, I = H * d };
    float qkv[T * 3 * I], m[T * d];
    for (int i = 0; i < T * 3 * I; i++) qkv[i] = (float)i;
    evit_merge_metric(m, qkv, T, H, d);
    /* token t, channel i: (k[t, i] + k[t, d + i]) / 2, k at column I */
    for (int t = 0; t < T; t++)
        for (int i = 0; i < d; i++)
            CHECK(m[t * d + i] == 0.5f * (qkv[t * 3 * I + I + i] + qkv[t * 3 * I + I + d + i]));
}

int main(void)
{
    RUN(the_matching_merges_r_tokens_and_never_the_class_token);
    RUN(r_zero_keeps_every_token_in_order);
    RUN(the_most_similar_pairs_merge_first);
    RUN(ties_are_broken_by_index);
    RUN(the_merge_is_the_size_weighted_average_and_sizes_add_up);
    RUN(the_metric_is_the_keys_averaged_over_heads);
    return test_summary();
}
