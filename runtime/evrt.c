/* evrt.c: see evrt.h. */
#define _POSIX_C_SOURCE 200809L
#include "evrt.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file.h"
#include "kernels.h"
#include "model.h"

/* A persistent pool: threads - 1 workers plus the caller.  Each parallel
 * region bumps a generation number; workers spin on it a while, then sleep
 * on a condition variable.  Work is split by index ranges fixed by the
 * thread count alone, and every output element is computed by the same
 * code whichever thread owns it, so results do not depend on the count. */
typedef void (*job_fn)(void *arg, int tid, int nt);

struct pool {
    int n; /* threads, caller included */
    int spins; /* polls before sleeping */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned gen;   /* generation of the current job (atomic) */
    int left;       /* workers still running it (atomic) */
    int stop;
    job_fn fn;
    void *arg;
};

struct worker {
    struct pool *p;
    int tid;
};

#if defined(__GNUC__)
#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define DEC(p) __atomic_sub_fetch((p), 1, __ATOMIC_ACQ_REL)
/* About a millisecond of polling before sleeping: between the parallel
 * regions of one inference the caller works alone for tens of
 * microseconds, and a futex wake-up costs as much again (with 20000 plain
 * polls, 2 threads were slower than 1 on the small models).  More threads
 * than cores make every region wait for a descheduled thread, so then
 * the pool polls only briefly (struct pool's spins). */
#define SPINS 200000
#define SPINS_OVERSUBSCRIBED 2000
#if defined(__x86_64__) || defined(__i386__)
#define RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define RELAX() __asm__ __volatile__("yield" ::: "memory")
#else
#define RELAX() ((void)0)
#endif
#else /* no atomics: everything under the mutex */
#define SPINS 0
#define SPINS_OVERSUBSCRIBED 0
#endif

struct evrt_ctx {
    const struct evrt_model *m;
    int max_batch;
    int T, N, PI; /* tokens, patches, patch inputs */
    evrt_observer_fn observer;
    void *user;
    size_t bytes;
    char err[EVRT_ERR_MAX];
    /* working memory, one allocation each */
    float *patches; /* (B, N, PI) */
    /* evrt_patchify_lut for the mean and std in lut_key (the model's may
     * change between calls, like its scales) */
    float lut[EVRT_MAX_CHANNELS * 256], lut_key[2 * EVRT_MAX_CHANNELS];
    float *x;       /* (B, T, D) residual stream */
    float *ln;      /* (B, T, D) LayerNorm output; patch embeddings first */
    float *qkv;     /* (B, T, 3 Imax) */
    float *attv;    /* (B, T, Imax) */
    float *tmp;     /* (B, T, D) branch output */
    float *h;       /* (B, T, Mmax) */
    float *scores;  /* (threads, T * T + dmax * T) attention scratch */
    void *att8;     /* (threads, att8_bytes) INT8 attention scratch */
    void *xq;       /* quantized activations, any variant's layout */
    int dmax;       /* largest head_dim */
    const struct evrt_kernels *k;
    int32_t *wsum;          /* per layer, sum_i wq[o, i] (layer offsets in wsum_off) */
    size_t *wsum_off;       /* (layers) */
    const int8_t **wsum_of; /* (layers) the wq each wsum was computed from */
    /* per layer, its weights packed into panels for the variant's panel
     * kernels (kernels.h), allocated at create for the layer's dtype then;
     * repacked in place when the weight pointer or the variant changes */
    void **pk;              /* (layers) */
    int *pk_dtype;          /* (layers) the dtype pk[l] is sized for, -1 none */
    const void **pk_of;     /* (layers) the weights pk[l] holds, NULL none */
    int *pk_isa;            /* (layers) the variant that packed them */
    size_t *pk_bytes;       /* (layers) the size of pk[l] */
    const evrt_file *src;   /* the file the model maps (evrt_ctx_create_file), or NULL */
    struct pool pool;
    struct worker *workers;
};

static int imax(int a, int b) { return a > b ? a : b; }
static int imin(int a, int b) { return a < b ? a : b; }

/* ---------------------------------------------------------------- pool */

static void run_job(struct pool *p, int tid)
{
    p->fn(p->arg, tid, p->n);
#if SPINS
    if (DEC(&p->left) == 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
#else
    pthread_mutex_lock(&p->mu);
    if (--p->left == 0) pthread_cond_signal(&p->done);
    pthread_mutex_unlock(&p->mu);
#endif
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct pool *p = w->p;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spin = 0;
#if SPINS
        while ((g = LOAD(&p->gen)) == seen && spin < p->spins) {
            RELAX();
            spin++;
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = LOAD(&p->gen)) == seen && !p->stop) pthread_cond_wait(&p->go, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
#else
        (void)spin;
        pthread_mutex_lock(&p->mu);
        while ((g = p->gen) == seen && !p->stop) pthread_cond_wait(&p->go, &p->mu);
        pthread_mutex_unlock(&p->mu);
#endif
        if (g == seen) return NULL; /* stop */
        seen = g;
        run_job(p, w->tid);
    }
}

/* fn(arg, tid, n) on every thread; returns when all are done. */
static void parallel(evrt_ctx *c, job_fn fn, void *arg)
{
    struct pool *p = &c->pool;
    if (p->n <= 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
#if SPINS
    STORE(&p->left, p->n - 1);
    pthread_mutex_lock(&p->mu);
    STORE(&p->gen, p->gen + 1);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    {
        int spin = 0;
        while (LOAD(&p->left) > 0 && spin < p->spins) {
            RELAX();
            spin++;
        }
        if (LOAD(&p->left) > 0) {
            pthread_mutex_lock(&p->mu);
            while (LOAD(&p->left) > 0) pthread_cond_wait(&p->done, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
    }
#else
    pthread_mutex_lock(&p->mu);
    p->left = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    pthread_mutex_lock(&p->mu);
    while (p->left > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
#endif
}

static void pool_stop(evrt_ctx *c)
{
    struct pool *p = &c->pool;
    int i;
    if (p->n > 1) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
        for (i = 1; i < p->n; i++) pthread_join(p->th[i], NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->go);
        pthread_cond_destroy(&p->done);
    }
    free(p->th);
    free(c->workers);
    p->th = NULL;
    c->workers = NULL;
    p->n = 1;
}

/* Items [*lo, *hi) of n for thread tid of nt, in contiguous runs that are
 * multiples of align (but the last). */
static void share(int n, int align, int tid, int nt, int *lo, int *hi)
{
    int blocks = (n + align - 1) / align;
    int b0 = (int)((long)blocks * tid / nt), b1 = (int)((long)blocks * (tid + 1) / nt);
    *lo = b0 * align < n ? b0 * align : n;
    *hi = b1 * align < n ? b1 * align : n;
}

static size_t scratch_floats(const evrt_ctx *c) { return (size_t)c->T * c->T + (size_t)c->dmax * c->T; }

/* One thread's INT8 attention scratch (struct evrt_att8, kernels.h),
 * carved from c->att8: sized for every variant and the largest head, so
 * evrt_ctx_set_kernels needs no new memory. */
static size_t a64(size_t n) { return (n + 63) / 64 * 64; }

static size_t att8_layout(const evrt_ctx *c, char *base, struct evrt_att8 *a)
{
    size_t T = (size_t)c->T, d = (size_t)c->dmax, kp = 0, vp = 0, xq = 0, at = 0;
    int isa;
    for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
        size_t k = evrt_pack_i8_bytes(isa, c->T, c->dmax), v = evrt_pack_i8_bytes(isa, c->dmax, c->T);
        size_t q = evrt_quant_bytes(isa, EVRT_ATT_ROWS, imax(c->T, c->dmax));
        kp = k > kp ? k : kp;
        vp = v > vp ? v : vp;
        xq = q > xq ? q : xq;
    }
#define CARVE(field, type, bytes) (a->field = (type)(base ? base + at : NULL), at += a64(bytes))
    CARVE(kq, int8_t *, T * d);
    CARVE(vt, int8_t *, T * d);
    CARVE(kp, void *, kp);
    CARVE(vp, void *, vp);
    CARVE(xq, void *, xq);
    CARVE(kws, int32_t *, 4 * T);
    CARVE(vws, int32_t *, 4 * d);
    CARVE(acc, int32_t *, 4 * T);
    CARVE(E, int32_t *, 4 * T);
    CARVE(ones, float *, 4 * T);
    CARVE(vs, float *, 4 * d);
    CARVE(qf, float *, 4 * EVRT_ATT_ROWS * d);
    CARVE(S, float *, 4 * EVRT_ATT_ROWS * T);
    CARVE(os, float *, 4 * EVRT_ATT_ROWS * d);
#undef CARVE
    return at;
}

static size_t att8_bytes(const evrt_ctx *c)
{
    struct evrt_att8 a;
    return att8_layout(c, NULL, &a);
}

int evrt_ctx_set_threads(evrt_ctx *c, int n)
{
    struct pool *p = &c->pool;
    float *scores;
    void *att8;
    int i;
    if (n < 1 || n > 256) return evrt_errf(c->err, sizeof c->err, "threads %d outside [1, 256]", n);
    pool_stop(c);
    scores = realloc(c->scores, sizeof(float) * scratch_floats(c) * (size_t)n);
    if (!scores) return EVRT_ENOMEM;
    c->scores = scores;
    att8 = realloc(c->att8, att8_bytes(c) * (size_t)n);
    if (!att8) return EVRT_ENOMEM;
    c->att8 = att8;
    if (n == 1) return EVRT_OK;
    p->th = calloc((size_t)n, sizeof *p->th);
    c->workers = calloc((size_t)n, sizeof *c->workers);
    if (!p->th || !c->workers) {
        pool_stop(c);
        return EVRT_ENOMEM;
    }
    p->stop = 0;
    p->gen = 0;
    p->left = 0;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->n = n;
    p->spins = SPINS;
#if defined(_SC_NPROCESSORS_ONLN)
    if (n > sysconf(_SC_NPROCESSORS_ONLN)) p->spins = SPINS_OVERSUBSCRIBED;
#endif
    for (i = 1; i < n; i++) {
        c->workers[i].p = p;
        c->workers[i].tid = i;
        if (pthread_create(&p->th[i], NULL, worker_main, &c->workers[i])) {
            p->n = i; /* join the ones started */
            pool_stop(c);
            return evrt_errf(c->err, sizeof c->err, "could not start thread %d", i);
        }
    }
    return EVRT_OK;
}

int evrt_ctx_threads(const evrt_ctx *c) { return c->pool.n; }

/* The layer's packed weights for the current variant, packing them when
 * stale (no allocation); NULL when the variant has no panel kernel for the
 * layer's dtype or no buffer was made for that dtype at create. */
static const void *packed(evrt_ctx *c, int layer)
{
    const struct evrt_linear *L = evrt_model_layer(c->m, layer);
    const void *src = L->dtype == EVRT_F32 ? (const void *)L->w : (const void *)L->wq;
    if (!c->pk || !c->pk[layer] || c->pk_dtype[layer] != L->dtype) return NULL;
    if (L->dtype == EVRT_F32 ? !c->k->f32p : !c->k->i8p) return NULL;
    if (L->dtype == EVRT_I8 && evrt_pack_i8_bytes(c->k->isa, L->out, L->in) > c->pk_bytes[layer])
        return NULL; /* sized for another variant at create */
    if (c->pk_of[layer] != src || c->pk_isa[layer] != c->k->isa) {
        if (L->dtype == EVRT_F32)
            evrt_pack_f32(c->pk[layer], L->w, L->out, L->in);
        else
            c->k->pack_i8(c->pk[layer], L->wq, L->out, L->in);
        c->pk_of[layer] = src;
        c->pk_isa[layer] = c->k->isa;
    }
    return c->pk[layer];
}

/* The layer's per-output-channel weight sums for the variant's int8
 * kernels, computed once per weight tensor (its pointer may change). */
static const int32_t *wsum_of(evrt_ctx *c, int layer)
{
    const struct evrt_linear *L = evrt_model_layer(c->m, layer);
    int32_t *ws = c->wsum + c->wsum_off[layer];
    if (!c->k->needs_wsum) return NULL;
    if (c->wsum_of[layer] != L->wq) {
        evrt_wsum(ws, L->wq, L->out, L->in);
        c->wsum_of[layer] = L->wq;
    }
    return ws;
}

/* Hands a packed layer's source weights in the mapped file back to the
 * kernel: inference reads only the packed copy. */
static void drop_source(evrt_ctx *c, int layer)
{
    const struct evrt_linear *L = evrt_model_layer(c->m, layer);
    if (L->dtype == EVRT_I8)
        evrt_file_drop(c->src, L->wq, (size_t)L->out * (size_t)L->in);
    else
        evrt_file_drop(c->src, L->w, sizeof(float) * (size_t)L->out * (size_t)L->in);
}

/* Packs every layer.  With a source file, each packed layer's weights (and
 * int8 weight sums, computed now) are then dropped from memory, so that the
 * weights of a mapped file are not resident twice (a deit-tiny INT8 file is
 * 5.8 MiB of its 16 MB). */
static void pack_all(evrt_ctx *c)
{
    int i, L = evrt_layer_count(c->m);
    if (!c->pk) return;
    for (i = 0; i < L; i++) {
        if (!packed(c, i) || !c->src) continue;
        if (evrt_model_layer(c->m, i)->dtype == EVRT_I8) (void)wsum_of(c, i);
        drop_source(c, i); /* keeps the peak to about one layer's weights */
    }
    if (!c->src) return;
    /* again: the kernel maps a fault's neighbours too (fault-around, up to
     * 64 KiB), so packing one layer brought back pages of the one before */
    for (i = 0; i < L; i++)
        if (packed(c, i)) drop_source(c, i);
}

int evrt_ctx_set_kernels(evrt_ctx *c, const char *name)
{
    int isa = name ? evrt_isa_parse(name) : -1;
    if (isa < 0 || !evrt_isa_available(isa))
        return evrt_errf(c->err, sizeof c->err, "kernels '%s' unknown or not supported by this CPU",
                    name ? name : "(null)");
    c->k = evrt_kernels_get(isa);
    pack_all(c);
    return EVRT_OK;
}

const char *evrt_ctx_kernels(const evrt_ctx *c) { return c->k->name; }

/* ---------------------------------------------------------------- context */

static int ctx_create(evrt_ctx **out, const struct evrt_model *m, int max_batch, const evrt_file *src)
{
    evrt_ctx *c = calloc(1, sizeof *c);
    size_t B = (size_t)max_batch, T, D, I = 0, M = 0, in = 0, outs = 0, qb;
    int l, i, L;
    const char *env;
    *out = c;
    if (!c) return EVRT_ENOMEM;
    c->m = m;
    c->src = src;
    c->max_batch = max_batch;
    c->pool.n = 1;
    c->k = evrt_kernels_get(EVRT_ISA_REF);
    if (max_batch < 1) return evrt_errf(c->err, sizeof c->err, "max_batch %d must be positive", max_batch);
    if (evrt_model_check(m, c->err, sizeof c->err)) return EVRT_EINVAL;
    c->k = evrt_kernels_get(evrt_isa_best());
    env = getenv("EVRT_KERNELS");
    if (env && *env && evrt_ctx_set_kernels(c, env)) return EVRT_EINVAL;
    c->T = evrt_model_tokens(m);
    c->N = c->T - 1;
    c->PI = m->channels * m->patch * m->patch;
    T = (size_t)c->T;
    D = (size_t)m->dim;
    for (l = 0; l < m->depth; l++) {
        I = (size_t)imax((int)I, m->blocks[l].heads * m->blocks[l].head_dim);
        M = (size_t)imax((int)M, m->blocks[l].mlp);
        c->dmax = imax(c->dmax, m->blocks[l].head_dim);
    }
    L = evrt_layer_count(m);
    for (i = 0; i < L; i++) {
        in = (size_t)imax((int)in, evrt_model_layer(m, i)->in);
        outs += (size_t)evrt_model_layer(m, i)->out;
    }
    /* the largest layout: AVX2's int16 rows padded to 16 */
    qb = B * T * ((in + 63) / 64 * 64) * 2;
    c->patches = malloc(sizeof(float) * B * c->N * c->PI);
    c->x = malloc(sizeof(float) * B * T * D);
    c->ln = malloc(sizeof(float) * B * T * D);
    c->qkv = malloc(sizeof(float) * B * T * 3 * I);
    c->attv = malloc(sizeof(float) * B * T * I);
    c->tmp = malloc(sizeof(float) * B * T * D);
    c->h = malloc(sizeof(float) * B * T * M);
    c->scores = malloc(sizeof(float) * scratch_floats(c));
    c->att8 = malloc(att8_bytes(c));
    c->xq = malloc(qb);
    c->wsum = malloc(sizeof(int32_t) * outs);
    c->wsum_off = malloc(sizeof(size_t) * (size_t)L);
    c->wsum_of = calloc((size_t)L, sizeof *c->wsum_of);
    c->bytes = sizeof(float) * (B * c->N * c->PI + 3 * B * T * D + 4 * B * T * I + B * T * M +
                                scratch_floats(c)) +
               att8_bytes(c) + qb + sizeof(int32_t) * outs;
    if (!c->patches || !c->x || !c->ln || !c->qkv || !c->attv || !c->tmp || !c->h || !c->scores || !c->att8 ||
        !c->xq || !c->wsum || !c->wsum_off || !c->wsum_of) {
        evrt_ctx_destroy(c);
        *out = NULL;
        return EVRT_ENOMEM;
    }
    for (i = 0, outs = 0; i < L; i++) {
        c->wsum_off[i] = outs;
        outs += (size_t)evrt_model_layer(m, i)->out;
    }
    c->pk = calloc((size_t)L, sizeof *c->pk);
    c->pk_dtype = malloc(sizeof(int) * (size_t)L);
    c->pk_of = calloc((size_t)L, sizeof *c->pk_of);
    c->pk_isa = malloc(sizeof(int) * (size_t)L);
    c->pk_bytes = calloc((size_t)L, sizeof *c->pk_bytes);
    if (!c->pk || !c->pk_dtype || !c->pk_of || !c->pk_isa || !c->pk_bytes) {
        evrt_ctx_destroy(c);
        *out = NULL;
        return EVRT_ENOMEM;
    }
    for (i = 0; i < L; i++) {
        const struct evrt_linear *Li = evrt_model_layer(m, i);
        /* int8: sized for the variant chosen now (EVRT_KERNELS), or the
         * best; another one chosen later runs its unpacked kernel */
        int sz = c->k->i8p ? c->k->isa : evrt_isa_best();
        size_t nb = Li->dtype == EVRT_F32 ? evrt_pack_f32_bytes(Li->out, Li->in)
                                          : evrt_pack_i8_bytes(sz, Li->out, Li->in);
        c->pk_dtype[i] = -1;
        c->pk_isa[i] = -1;
        /* only where some variant has panel kernels */
        if (!evrt_kernels_get(evrt_isa_best())->f32p || !nb) continue;
        c->pk[i] = malloc(nb);
        if (!c->pk[i]) {
            evrt_ctx_destroy(c);
            *out = NULL;
            return EVRT_ENOMEM;
        }
        c->pk_dtype[i] = Li->dtype;
        c->pk_bytes[i] = nb;
        c->bytes += nb;
    }
    pack_all(c);
    return EVRT_OK;
}

int evrt_ctx_create(evrt_ctx **out, const struct evrt_model *m, int max_batch)
{
    return ctx_create(out, m, max_batch, NULL);
}

int evrt_ctx_create_file(evrt_ctx **out, const evrt_file *f, int max_batch)
{
    return ctx_create(out, evrt_file_model(f), max_batch, f);
}

void evrt_ctx_destroy(evrt_ctx *c)
{
    int i;
    if (!c) return;
    pool_stop(c);
    free(c->patches);
    free(c->x);
    free(c->ln);
    free(c->qkv);
    free(c->attv);
    free(c->tmp);
    free(c->h);
    free(c->scores);
    free(c->att8);
    free(c->xq);
    free(c->wsum);
    free(c->wsum_off);
    free((void *)c->wsum_of);
    if (c->pk)
        for (i = 0; i < evrt_layer_count(c->m); i++) free(c->pk[i]);
    free(c->pk);
    free(c->pk_dtype);
    free((void *)c->pk_of);
    free(c->pk_isa);
    free(c->pk_bytes);
    free(c);
}

const char *evrt_ctx_error(const evrt_ctx *c) { return c ? c->err : "out of memory"; }
int evrt_ctx_max_batch(const evrt_ctx *c) { return c->max_batch; }
size_t evrt_ctx_bytes(const evrt_ctx *c) { return c->bytes; }

void evrt_set_observer(evrt_ctx *c, evrt_observer_fn fn, void *user)
{
    c->observer = fn;
    c->user = user;
}

/* ---------------------------------------------------------------- layers */

struct linear_job {
    const struct evrt_kernels *k;
    const struct evrt_linear *L;
    float *y;
    const float *x;
    void *xq;
    const int32_t *wsum;
    const void *wp; /* packed weights, or NULL */
    int rows;
};

static void quant_job(void *arg, int tid, int nt)
{
    struct linear_job *j = arg;
    int lo, hi;
    share(j->rows, 1, tid, nt, &lo, &hi);
    if (lo < hi)
        j->k->quant((char *)j->xq + evrt_quant_bytes(j->k->isa, lo, j->L->in),
                    j->x + (size_t)lo * j->L->in, hi - lo, j->L->in, j->L->in_scale, j->L->in_zero);
}

static void i8_job(void *arg, int tid, int nt)
{
    struct linear_job *j = arg;
    const struct evrt_linear *L = j->L;
    int lo, hi;
    share(L->out, 16, tid, nt, &lo, &hi);
    if (lo < hi && j->wp)
        j->k->i8p(j->y, j->xq, L->in_zero, L->in_scale, j->wp, j->wsum, L->w_scale, L->bias,
                  j->rows, L->in, L->out, lo, hi);
    else if (lo < hi)
        j->k->i8(j->y, j->xq, L->in_zero, L->in_scale, L->wq, j->wsum, L->w_scale, L->bias, j->rows,
                 L->in, L->out, lo, hi);
}

static void f32_job(void *arg, int tid, int nt)
{
    struct linear_job *j = arg;
    const struct evrt_linear *L = j->L;
    int lo, hi;
    share(L->out, 16, tid, nt, &lo, &hi);
    if (lo < hi && j->wp)
        j->k->f32p(j->y, (size_t)L->out, j->x, (size_t)L->in, j->wp, 16, (size_t)16 * L->in,
                   L->bias, j->rows, L->in, lo, hi);
    else if (lo < hi)
        j->k->f32(j->y, (size_t)L->out, j->x, (size_t)L->in, L->w, (size_t)L->in, L->bias, j->rows,
                  L->in, lo, hi);
}

/* One linear layer on rows of x, through the observer. */
static void linear(evrt_ctx *c, int layer, float *y, const float *x, int rows)
{
    const struct evrt_linear *L = evrt_model_layer(c->m, layer);
    struct linear_job j;
    /* below this many multiply-adds a parallel region costs more than it saves */
    int serial = (double)rows * L->in * L->out < 65536.0;
    if (c->observer) c->observer(c->user, layer, EVRT_OBSERVE_INPUT, x, rows, L->in);
    j.k = c->k;
    j.L = L;
    j.y = y;
    j.x = x;
    j.xq = c->xq;
    j.rows = rows;
    j.wsum = NULL;
    j.wp = packed(c, layer);
    if (L->dtype == EVRT_I8) {
        j.wsum = wsum_of(c, layer);
        if (serial) {
            quant_job(&j, 0, 1);
            i8_job(&j, 0, 1);
        } else {
            parallel(c, quant_job, &j);
            parallel(c, i8_job, &j);
        }
    } else if (serial) {
        f32_job(&j, 0, 1);
    } else {
        parallel(c, f32_job, &j);
    }
    if (c->observer) c->observer(c->user, layer, EVRT_OBSERVE_OUTPUT, y, rows, L->out);
}

/* Attention in work items of up to EVRT_ATT_ROWS queries of one (image,
 * head): each thread takes an equal share of all the query rows (so two
 * threads share three heads evenly, whatever T), cut into items at head
 * boundaries; the variant's attention (or INT8 attention) kernel does each
 * item, the per-head work once per run of items of the same head. */
struct att_job {
    evrt_ctx *c;
    const struct evrt_block *blk;
    float *out;
    const float *qkv;
    int B, nq;
};

static void att_run(void *arg, int tid, int nt)
{
    struct att_job *j = arg;
    evrt_ctx *c = j->c;
    const struct evrt_kernels *k = c->k;
    const struct evrt_block *blk = j->blk;
    int T = c->T, H = blk->heads, d = blk->head_dim, I = H * d, last = -1, lo, hi, p, nr;
    int int8 = blk->attn_dtype == EVRT_I8;
    float *scratch = c->scores + scratch_floats(c) * (size_t)tid;
    struct evrt_att8 a;
    if (int8) att8_layout(c, (char *)c->att8 + att8_bytes(c) * (size_t)tid, &a);
    /* an equal share of the (image, head, query) rows, in items of up to
     * EVRT_ATT_ROWS queries of one head */
    share(j->B * H * j->nq, 1, tid, nt, &lo, &hi);
    for (p = lo; p < hi; p += nr) {
        int bh = p / j->nq, q0 = p % j->nq;
        int b = bh / H, h = bh % H;
        nr = imin(imin(EVRT_ATT_ROWS, j->nq - q0), hi - p);
        const float *base = j->qkv + (size_t)b * T * 3 * I;
        float *o = j->out + ((size_t)b * j->nq + q0) * I + h * d;
        if (int8)
            k->attention_i8(k, o, (size_t)I, &a, base, T, I, h, d, q0, nr, bh != last, blk->attn_scale);
        else
            k->attention(k, o, (size_t)I, scratch, base, T, I, h, d, q0, nr, bh != last);
        last = bh;
    }
}

static void attention(evrt_ctx *c, const struct evrt_block *blk, float *out, const float *qkv, int B,
                      int nq)
{
    struct att_job j;
    j.c = c;
    j.blk = blk;
    j.out = out;
    j.qkv = qkv;
    j.B = B;
    j.nq = nq;
    if ((B * blk->heads > 1 || nq > EVRT_ATT_ROWS) &&
        (double)nq * c->T * blk->head_dim * blk->heads > 16384.0)
        parallel(c, att_run, &j);
    else
        att_run(&j, 0, 1);
}

struct gelu_job {
    const struct evrt_kernels *k;
    float *x;
    size_t n;
};

static void gelu_job_run(void *arg, int tid, int nt)
{
    struct gelu_job *j = arg;
    size_t lo = j->n * (size_t)tid / (size_t)nt, hi = j->n * (size_t)(tid + 1) / (size_t)nt;
    j->k->gelu(j->x + lo, hi - lo);
}

/* Element-wise: any split gives the same bits. */
static void gelu(evrt_ctx *c, float *x, size_t n)
{
    struct gelu_job j;
    j.k = c->k;
    j.x = x;
    j.n = n;
    if (n >= 8192)
        parallel(c, gelu_job_run, &j);
    else
        gelu_job_run(&j, 0, 1);
}

/* x += y (y not NULL), then ln = LayerNorm(x) (w not NULL), on rows of D,
 * split by rows between the threads. */
struct addln_job {
    const struct evrt_kernels *k;
    float *x, *ln;
    const float *y, *w, *b;
    int rows, D;
};

static void addln_run(void *arg, int tid, int nt)
{
    struct addln_job *j = arg;
    int lo, hi;
    size_t o;
    share(j->rows, 1, tid, nt, &lo, &hi);
    o = (size_t)lo * j->D;
    if (lo >= hi) return;
    if (j->y) evrt_add_fast(j->x + o, j->y + o, (size_t)(hi - lo) * j->D);
    if (j->w) j->k->layernorm(j->ln + o, j->x + o, j->w, j->b, hi - lo, j->D);
}

static void addln(evrt_ctx *c, const float *y, const float *w, const float *b, int rows)
{
    struct addln_job j;
    j.k = c->k;
    j.x = c->x;
    j.ln = c->ln;
    j.y = y;
    j.w = w;
    j.b = b;
    j.rows = rows;
    j.D = c->m->dim;
    if ((size_t)rows * j.D >= 8192)
        parallel(c, addln_run, &j);
    else
        addln_run(&j, 0, 1);
}

/* Block l on the residual stream c->x (B, T, D).  In the last block only the
 * class token goes on after the keys and values are made: the stream is
 * compacted to (B, 1, D) in place. */

static void block(evrt_ctx *c, int l, int B, int last)
{
    const struct evrt_block *b = &c->m->blocks[l];
    int T = c->T, D = c->m->dim, nq = last ? 1 : T, k;
    int rows = B * nq;
    addln(c, NULL, b->ln1_w, b->ln1_b, B * T);
    linear(c, 1 + 4 * l, c->qkv, c->ln, B * T);
    attention(c, b, c->attv, c->qkv, B, nq);
    if (last)
        for (k = 1; k < B; k++) memmove(c->x + (size_t)k * D, c->x + (size_t)k * T * D, sizeof(float) * D);
    linear(c, 2 + 4 * l, c->tmp, c->attv, rows);
    addln(c, c->tmp, b->ln2_w, b->ln2_b, rows);
    linear(c, 3 + 4 * l, c->h, c->ln, rows);
    gelu(c, c->h, (size_t)rows * b->mlp);
    linear(c, 4 + 4 * l, c->tmp, c->h, rows);
    addln(c, c->tmp, NULL, NULL, rows);
}

int evrt_infer(evrt_ctx *c, const uint8_t *images, int B, float *logits)
{
    const struct evrt_model *m = c->m;
    int T = c->T, N = c->N, D = m->dim, b, t, i, l;
    if (B < 1 || B > c->max_batch)
        return evrt_errf(c->err, sizeof c->err, "batch %d outside [1, %d]", B, c->max_batch);
    if (!images || !logits) return evrt_errf(c->err, sizeof c->err, "images and logits must not be NULL");
    /* dtypes and scales may have changed since the last call */
    if (evrt_model_check(m, c->err, sizeof c->err)) return EVRT_EINVAL;
    if (memcmp(c->lut_key, m->mean, sizeof(float) * (size_t)m->channels) ||
        memcmp(c->lut_key + EVRT_MAX_CHANNELS, m->std, sizeof(float) * (size_t)m->channels)) {
        evrt_patchify_lut(c->lut, m->mean, m->std, m->channels);
        memcpy(c->lut_key, m->mean, sizeof c->lut_key / 2);
        memcpy(c->lut_key + EVRT_MAX_CHANNELS, m->std, sizeof c->lut_key / 2);
    }
    evrt_patchify_fast(c->patches, images, c->lut, B, m->img_size, m->channels, m->patch);
    linear(c, 0, c->ln, c->patches, B * N);
    for (b = 0; b < B; b++) {
        float *x = c->x + (size_t)b * T * D;
        const float *pe = c->ln + (size_t)b * N * D;
        for (i = 0; i < D; i++) x[i] = m->cls_token[i] + m->pos_embed[i];
        for (t = 1; t < T; t++)
            for (i = 0; i < D; i++)
                x[(size_t)t * D + i] = pe[(size_t)(t - 1) * D + i] + m->pos_embed[(size_t)t * D + i];
    }
    for (l = 0; l < m->depth; l++) block(c, l, B, l == m->depth - 1);
    /* c->x is now (B, D): the class tokens */
    c->k->layernorm(c->ln, c->x, m->norm_w, m->norm_b, B, D);
    linear(c, 1 + 4 * m->depth, logits, c->ln, B);
    c->err[0] = '\0';
    return EVRT_OK;
}
