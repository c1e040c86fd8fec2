/* bench/runtime: libevrt batch-1 latency of random-weight models, float32,
 * INT8 and INT8 with INT8 attention, at 1 and 2 threads, with the memory it
 * needs.
 *
 *   bench/runtime [--reps N] [--threads LIST] [--kernels NAME] [--dtypes LIST] [CONFIG ...]
 *
 * CONFIG defaults to fm-tiny fm-small deit-tiny deit-small; a segmentation
 * config (seg-deit-tiny-512) is timed up to its mask.  INT8 models get
 * every linear layer in int8 with symmetric per-tensor activation scales
 * calibrated crudely (max |x| / 127 over a random batch of 4); "int8a" adds
 * INT8 attention (q, k, v scales likewise from the qkv outputs, p 1/127).
 * Each
 * measurement: 3 warm-up runs, then N (default 200; 60 for images over 100
 * pixels) timed runs of one image; the median is reported (the machine may
 * be shared).  One line per measurement:
 *
 *   evit CONFIG DTYPE threads=T kernels=K median_ms=X min_ms=Y model_mb=M ctx_mb=C
 *
 * DTYPE is f32, int8 or int8a; --dtypes picks some ("int8a", "f32,int8"),
 * for example to profile one path alone.  Each config also gets
 *
 *   evit CONFIG macs int8_gmac=G
 *
 * the multiply-adds of one image's INT8 path (linear layers with the last
 * block on the class token alone, and INT8 attention), and on x86 with
 * AVX-512 VNNI one line
 *
 *   peak vnni_gmacs=P
 *
 * the rate of register-only vpdpbusd on 512-bit vectors (20 independent
 * accumulators, 1 thread): G / P is the VNNI ceiling of a config.
 *
 * --merge LIST (for example 0,8,16): Token Merging, each r of the list
 * merged in every block but the last (at most what a block's tokens allow),
 * one line per measurement instead of the above:
 *
 *   merge CONFIG DTYPE threads=T r=R tokens=T0>TL median_ms=X merge_ms=M gmac=G
 *
 * TL the tokens of the last block; G the multiply-adds of one image as in
 * int8_gmac, on the merged tokens; M the median time of the merge step of
 * one image on one thread (the matching's metric, similarities and
 * ranking, the outputs' inputs and the size-weighted average, for every
 * merging block: the runtime's kernels on random keys of each block's
 * shape), to set against X. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "evrt.h"
#include "kernels.h"
#include "qmodel.h"
#include "rng.h"
#include "util.h"
#include "head.h"
#include "vit.h"

struct calib {
    float amax[EVIT_QMODEL_MAX_LAYERS];
    float qkv[EVIT_MAX_DEPTH][3]; /* max |q|, |k|, |v| per block */
    int depth;
};

static void observe(void *user, int layer, int phase, const float *x, int rows, int cols)
{
    struct calib *c = user;
    size_t i, n = (size_t)rows * cols;
    for (i = 0; i < n; i++) {
        float a = x[i] < 0 ? -x[i] : x[i];
        float *m = phase == EVRT_OBSERVE_INPUT ? &c->amax[layer]
                   : layer % 4 == 1 && layer / 4 < c->depth ? &c->qkv[layer / 4][i % cols / (cols / 3)]
                                                            : NULL;
        if (m && a > *m) *m = a;
    }
}

/* Multiply-adds of one image: every linear layer (patch embedding on the
 * patches, the last block's proj and MLP and the head on the class token
 * alone; a segmentation model's on every token, its head on every patch,
 * seg_mlp's decoder too: L levels D -> C, the fuse L C -> C, the head
 * C -> K) and attention (q k^T and P v per head). */
static double int8_macs(const struct evit_vit_config *c)
{
    double T = evit_config_tokens(c), N = evit_config_patches(c), D = c->dim, s;
    double C = c->decoder_dim, L = c->decoder_nlevels;
    int l, seg = evit_head_is_seg(c->head);
    s = N * evit_config_patch_in(c) * D;
    if (c->head == EVIT_HEAD_SEG_MLP)
        s += N * (L * D * C + L * C * C + C * c->classes);
    else
        s += D * c->classes * (seg ? N : 1.0);
    for (l = 0; l < c->depth; l++) {
        const struct evit_block_shape *b = &c->blocks[l];
        double I = (double)b->heads * b->head_dim, q = l + 1 < c->depth || seg ? T : 1.0;
        s += T * D * 3.0 * I + q * (I * D + 2.0 * D * b->mlp) + 2.0 * q * T * I;
    }
    return s;
}

/* int8_macs with each block's tokens after Token Merging (m's merge_r). */
static double merged_macs(const struct evrt_model *m)
{
    double N = evrt_model_tokens(m) - 1, D = m->dim, s;
    s = N * m->channels * m->patch * m->patch * D + D * m->classes;
    for (int l = 0; l < m->depth; l++) {
        const struct evrt_block *b = &m->blocks[l];
        double T = evrt_model_tokens_at(m, l), I = (double)b->heads * b->head_dim, q = l + 1 < m->depth ? T : 1.0;
        s += T * D * 3.0 * I + q * (I * D + 2.0 * D * b->mlp) + 2.0 * q * T * I;
    }
    return s;
}

/* One inference of B images: a class head's logits, or a segmentation
 * model's per-patch logits and, when mask is not NULL, its mask (what a
 * device runs per frame). */
static void run(evrt_ctx *ctx, const struct evrt_model *m, const uint8_t *img, int B, float *logits, uint8_t *mask)
{
    if (m->head_kind == EVRT_HEAD_CLASS)
        evrt_infer(ctx, img, B, logits);
    else if (mask)
        evrt_infer_seg(ctx, img, B, NULL, NULL, mask);
    else
        evrt_infer_seg(ctx, img, B, logits, NULL, NULL);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define PEAK_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))
#include <immintrin.h>
/* vpdpbusd zmm per second on 20 independent accumulators, times 64. */
PEAK_TARGET static double vnni_peak(void)
{
    enum { A = 20 };
    __m512i a[A], x = _mm512_set1_epi32(0x01010101), w = _mm512_set1_epi32(0x02020202);
    long n = 20000000 / A, k;
    double t0, best = 0;
    int i, rep, sink = 0;
    for (rep = 0; rep < 3; rep++) {
        for (i = 0; i < A; i++) a[i] = _mm512_set1_epi32(i);
        t0 = evit_now();
        for (k = 0; k < n; k++) {
#pragma GCC unroll 20
            for (i = 0; i < A; i++) a[i] = _mm512_dpbusd_epi32(a[i], x, w);
        }
        t0 = evit_now() - t0;
        for (i = 0; i < A; i++) sink += _mm512_reduce_add_epi32(a[i]);
        if ((double)n * A * 64 / t0 > best) best = (double)n * A * 64 / t0;
    }
    return sink == 1 ? 0 : best; /* sink keeps the loop */
}
#endif

/* merge_r = r (at most what the tokens allow) in every block but the last;
 * returns the last block's tokens. */
static int set_merge(struct evrt_model *m, int r)
{
    for (int l = 0; l < m->depth; l++) {
        int T = evrt_model_tokens_at(m, l), mx = (T + 1) / 2 - 1;
        m->blocks[l].merge_r = l + 1 < m->depth ? (r < mx ? r : mx) : 0;
    }
    return evrt_model_tokens_at(m, m->depth - 1);
}

static int cmp_double(const void *a, const void *b);

/* The merge step of one image, every merging block, on the best kernels
 * (median of reps, milliseconds). */
static double merge_step_ms(const struct evrt_model *m, int reps)
{
    const struct evrt_kernels *k = evrt_kernels_get(evrt_isa_best());
    int T0 = evrt_model_tokens(m), D = m->dim, I = 0, dmax = 0;
    for (int l = 0; l < m->depth; l++) {
        I = m->blocks[l].heads * m->blocks[l].head_dim > I ? m->blocks[l].heads * m->blocks[l].head_dim : I;
        dmax = m->blocks[l].head_dim > dmax ? m->blocks[l].head_dim : dmax;
    }
    size_t na = (size_t)(T0 + 1) / 2;
    float *qkv = evit_malloc(sizeof(float) * (size_t)T0 * 3 * I), *x = evit_malloc(sizeof(float) * (size_t)T0 * D);
    float *y = evit_malloc(sizeof(float) * (size_t)T0 * D), *out = evit_malloc(sizeof(float) * (size_t)T0 * D);
    float *an = evit_malloc(sizeof(float) * na * dmax), *bt = evit_malloc(sizeof(float) * (dmax * na + 16));
    float *S = evit_malloc(sizeof(float) * 16 * na), *score = evit_malloc(sizeof(float) * na);
    float *sz = evit_malloc(sizeof(float) * T0), *so = evit_malloc(sizeof(float) * T0);
    int *best = evit_malloc(sizeof(int) * na), *dst = evit_malloc(sizeof(int) * T0);
    int *src = evit_malloc(sizeof(int) * T0), *start = evit_malloc(sizeof(int) * (T0 + 1)), *order = evit_malloc(sizeof(int) * na);
    double *t = evit_malloc(sizeof(double) * reps), med;
    struct evit_rng r;
    evit_rng_seed(&r, 3);
    for (size_t i = 0; i < (size_t)T0 * 3 * I; i++) qkv[i] = (float)evit_rng_normal(&r);
    for (size_t i = 0; i < (size_t)T0 * D; i++) x[i] = (float)evit_rng_normal(&r), y[i] = (float)evit_rng_normal(&r);
    for (int i = 0; i < T0; i++) sz[i] = 1.0f;
    for (int rep = 0; rep < reps; rep++) {
        double t0 = evit_now();
        for (int l = 0; l + 1 < m->depth; l++) {
            const struct evrt_block *b = &m->blocks[l];
            int T = evrt_model_tokens_at(m, l), R = b->merge_r, d = b->head_dim, nb = T / 2, a;
            if (!R) continue;
            evrt_merge_prep(an, bt, (size_t)nb, qkv, b->heads * d, b->heads, d, 0, T);
            for (a = 0; a < (T + 1) / 2; a += 16)
                evrt_merge_best(k, best, score, S, an, bt, (size_t)nb, nb, d, a, a + 16 < (T + 1) / 2 ? a + 16 : (T + 1) / 2);
            evrt_merge_match(dst, order, best, score, T, R);
            evrt_merge_sources(start, src, so, dst, sz, T, T - R);
            evrt_merge_rows(out, x, y, sz, so, start, src, 0, T - R, D);
        }
        t[rep] = 1e3 * (evit_now() - t0);
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    med = t[reps / 2];
    free(qkv), free(x), free(y), free(out), free(an), free(bt), free(S), free(score), free(sz), free(so);
    free(best), free(dst), free(src), free(start), free(order), free(t);
    return med;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* 1 when the comma-separated list holds word. */
static int has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *s = list; (s = strstr(s, word)); s += n)
        if ((s == list || s[-1] == ',') && (s[n] == ',' || s[n] == 0)) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *defaults[] = {"fm-tiny", "fm-small", "deit-tiny", "deit-small"};
    const char *names[16], *kern = NULL, *dtypes = "f32,int8,int8a";
    int n = 0, reps = 0, threads[8] = {1, 2}, nthreads = 2, merges[8] = {0}, nmerge = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kernels") && i + 1 < argc)
            kern = argv[++i];
        else if (!strcmp(argv[i], "--dtypes") && i + 1 < argc)
            dtypes = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            char *s = argv[++i], *end;
            nthreads = 0;
            while (*s && nthreads < 8) {
                threads[nthreads++] = (int)strtol(s, &end, 10);
                s = *end ? end + 1 : end;
            }
        } else if (!strcmp(argv[i], "--merge") && i + 1 < argc) {
            char *s = argv[++i], *end;
            while (*s && nmerge < 8) {
                merges[nmerge++] = (int)strtol(s, &end, 10);
                s = *end ? end + 1 : end;
            }
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            puts("usage: bench/runtime [--reps N] [--threads 1,2] [--kernels NAME] [--dtypes f32,int8,int8a] "
                 "[--merge 0,8,16] [CONFIG ...]");
            return 0;
        } else if (n < 16)
            names[n++] = argv[i];
    }
    if (n == 0)
        for (n = 0; n < 4; n++) names[n] = defaults[n];
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vnni"))
        printf("peak vnni_gmacs=%.1f\n", vnni_peak() / 1e9);
#endif
    for (int k = 0; k < n; k++) {
        struct evit_vit_config cfg;
        struct evit_vit m;
        struct evit_qmodel q;
        struct calib cal;
        evrt_ctx *ctx = NULL;
        if (evit_config_load(names[k], &cfg)) return 1;
        printf("evit %s macs int8_gmac=%.4f\n", names[k], int8_macs(&cfg) / 1e9);
        evit_vit_alloc(&m, &cfg);
        evit_vit_init(&m, 1);
        evit_qmodel_from_vit(&q, &m);
        size_t img_n = (size_t)cfg.img_size * cfg.img_size * cfg.channels;
        uint8_t *img = evit_malloc(4 * img_n);
        float *logits = evit_malloc(sizeof(float) * 4 * evrt_model_outputs(&q.rt));
        uint8_t *mask = evit_malloc((size_t)cfg.img_size * cfg.img_size);
        struct evit_rng r;
        evit_rng_seed(&r, 2);
        for (size_t i = 0; i < 4 * img_n; i++) img[i] = (uint8_t)evit_rng_below(&r, 256);
        /* calibrate on a batch of 4 in float32 */
        memset(&cal, 0, sizeof cal);
        cal.depth = cfg.depth;
        if (evrt_ctx_create(&ctx, &q.rt, 4)) {
            fprintf(stderr, "error: %s: %s\n", names[k], evrt_ctx_error(ctx));
            return 1;
        }
        evrt_set_observer(ctx, observe, &cal);
        run(ctx, &q.rt, img, 4, logits, NULL);
        evrt_ctx_destroy(ctx);
        int R = reps > 0 ? reps : cfg.img_size > 100 ? 60 : 200;
        static const char *const dtname[3] = {"f32", "int8", "int8a"};
        for (int dt = 0; dt < 3; dt++) {
            if (!has_word(dtypes, dtname[dt])) continue;
            for (int i = 0; i < evrt_layer_count(&q.rt); i++) {
                struct evrt_linear *L = evrt_model_layer(&q.rt, i);
                L->dtype = dt ? EVRT_I8 : EVRT_F32;
                L->in_scale = cal.amax[i] > 0 ? cal.amax[i] / 127.0f : 1.0f;
                L->in_zero = 0;
            }
            for (int l = 0; l < q.rt.depth; l++) {
                struct evrt_block *b = &q.rt.blocks[l];
                b->attn_dtype = dt == 2 ? EVRT_I8 : EVRT_F32;
                for (int j = 0; j < 3; j++) b->attn_scale[j] = cal.qkv[l][j] > 0 ? cal.qkv[l][j] / 127.0f : 1.0f;
                b->attn_scale[3] = 1.0f / 127.0f;
            }
            for (int mi = 0; mi < (nmerge ? nmerge : 1); mi++)
            for (int t = 0; t < nthreads; t++) {
                int last_T = set_merge(&q.rt, nmerge ? merges[mi] : 0);
                double *ms = evit_malloc(sizeof(double) * R);
                if (evrt_ctx_create(&ctx, &q.rt, 1) || (kern && evrt_ctx_set_kernels(ctx, kern)) ||
                    evrt_ctx_set_threads(ctx, threads[t])) {
                    fprintf(stderr, "error: %s: %s\n", names[k], evrt_ctx_error(ctx));
                    return 1;
                }
                for (int i = 0; i < 3; i++) run(ctx, &q.rt, img, 1, logits, mask);
                for (int i = 0; i < R; i++) {
                    double t0 = evit_now();
                    run(ctx, &q.rt, img, 1, logits, mask);
                    ms[i] = 1e3 * (evit_now() - t0);
                }
                qsort(ms, (size_t)R, sizeof *ms, cmp_double);
                if (nmerge) {
                    printf("merge %s %s threads=%d r=%d tokens=%d>%d median_ms=%.4f merge_ms=%.4f gmac=%.4f\n",
                           names[k], dtname[dt], threads[t], merges[mi], evrt_model_tokens(&q.rt), last_T, ms[R / 2],
                           merge_step_ms(&q.rt, R), merged_macs(&q.rt) / 1e9);
                    fflush(stdout);
                    evrt_ctx_destroy(ctx);
                    free(ms);
                    continue;
                }
                printf("evit %s %s threads=%d kernels=%s median_ms=%.4f min_ms=%.4f model_mb=%.2f "
                       "ctx_mb=%.2f\n",
                       names[k], dtname[dt], threads[t], evrt_ctx_kernels(ctx), ms[R / 2],
                       ms[0], (double)evrt_model_bytes(&q.rt) / 1048576.0,
                       (double)evrt_ctx_bytes(ctx) / 1048576.0);
                fflush(stdout);
                evrt_ctx_destroy(ctx);
                free(ms);
            }
        }
        free(img);
        free(logits);
        free(mask);
        evit_qmodel_free(&q);
        evit_vit_free(&m);
    }
    return 0;
}
