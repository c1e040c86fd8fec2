/* merge.c: see merge.h. */
#include "merge.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int evit_merge_max_r(int T) { return T < 1 ? 0 : (T + 1) / 2 - 1; }

/* An A token and its score, ranked by score (higher first), then index. */
struct ranked {
    double score;
    int a;
};

static int by_score(const void *x, const void *y)
{
    const struct ranked *p = x, *q = y;
    if (p->score != q->score) return p->score > q->score ? -1 : 1;
    return (p->a > q->a) - (p->a < q->a);
}

static double row_norm(const float *m, int d)
{
    double s = 0.0;
    for (int i = 0; i < d; i++) s += (double)m[i] * (double)m[i];
    return sqrt(s);
}

/* cos(m_a, m_b), 0 when either row is zero (or not finite: the ranking
 * stays a total order). */
static double cosine(const float *ma, double na, const float *mb, double nb, int d)
{
    double s = 0.0;
    for (int i = 0; i < d; i++) s += (double)ma[i] * (double)mb[i];
    s = na > 0.0 && nb > 0.0 ? s / (na * nb) : 0.0;
    return isfinite(s) ? s : 0.0;
}

void evit_merge_match(int *dst, const float *m, int T, int d, int r)
{
    int na = (T + 1) / 2, nb = T / 2, a, b, k;
    double *norm = evit_malloc(sizeof(double) * (size_t)(T > 0 ? T : 1));
    int *best = evit_malloc(sizeof(int) * (size_t)(na > 0 ? na : 1));
    int *merged = calloc((size_t)(na > 0 ? na : 1), sizeof(int));
    struct ranked *rank = evit_malloc(sizeof *rank * (size_t)(na > 0 ? na : 1));
    EVIT_ASSERT(merged && r >= 0 && r <= evit_merge_max_r(T));
    for (k = 0; k < T; k++) norm[k] = row_norm(m + (size_t)k * d, d);
    for (a = 0; a < na; a++) {
        const float *ma = m + (size_t)(2 * a) * d;
        double top = -(double)INFINITY;
        best[a] = 0;
        for (b = 0; a > 0 && b < nb; b++) {
            double s = cosine(ma, norm[2 * a], m + (size_t)(2 * b + 1) * d, norm[2 * b + 1], d);
            if (s > top) {
                top = s;
                best[a] = b;
            }
        }
        rank[a].score = a == 0 ? -(double)INFINITY : top; /* the class token never merges */
        rank[a].a = a;
    }
    qsort(rank, (size_t)na, sizeof *rank, by_score);
    for (k = 0; k < r; k++) merged[rank[k].a] = 1;
    /* outputs: the unmerged A tokens, then B, each in input order */
    for (a = 0, k = 0; a < na; a++)
        if (!merged[a]) dst[2 * a] = k++;
    for (b = 0; b < nb; b++) dst[2 * b + 1] = k + b;
    for (a = 0; a < na; a++)
        if (merged[a]) dst[2 * a] = k + best[a];
    EVIT_ASSERT(k + nb == T - r);
    free(norm);
    free(best);
    free(merged);
    free(rank);
}

void evit_merge_metric(float *m, const float *qkv, int T, int H, int d)
{
    int I = H * d;
    for (int t = 0; t < T; t++) {
        const float *k = qkv + (size_t)t * 3 * I + I;
        for (int i = 0; i < d; i++) {
            float s = 0.0f;
            for (int h = 0; h < H; h++) s += k[h * d + i];
            m[(size_t)t * d + i] = s / (float)H;
        }
    }
}

void evit_merge_forward(float *out, float *so, const float *x, const float *s, const int *dst, int T, int r,
                        int D)
{
    int n = T - r;
    memset(out, 0, sizeof(float) * (size_t)n * D);
    memset(so, 0, sizeof(float) * (size_t)n);
    for (int i = 0; i < T; i++) {
        float *o = out + (size_t)dst[i] * D;
        const float *xi = x + (size_t)i * D;
        so[dst[i]] += s[i];
        for (int c = 0; c < D; c++) o[c] += s[i] * xi[c];
    }
    for (int j = 0; j < n; j++)
        for (int c = 0; c < D; c++) out[(size_t)j * D + c] /= so[j];
}

void evit_merge_backward(float *dx, const float *dout, const float *s, const float *so, const int *dst, int T,
                         int D)
{
    for (int i = 0; i < T; i++) {
        float w = s[i] / so[dst[i]];
        const float *g = dout + (size_t)dst[i] * D;
        for (int c = 0; c < D; c++) dx[(size_t)i * D + c] += w * g[c];
    }
}
