/* evrt.c: see evrt.h. */
#define _POSIX_C_SOURCE 200809L
#include "evrt.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "file.h"
#include "kernels.h"
#include "model.h"

/* A persistent pool: threads - 1 workers plus the caller.  A parallel
 * region is a count of work units (a block of rows, a group of output
 * channels, a run of attention queries).  Each thread starts on a
 * contiguous share of them and claims its units one at a time from a
 * counter of its own (on its own cache line, so claiming costs no traffic
 * between cores); when its share is done it takes what is left of the
 * others'.  So a thread the kernel has descheduled holds up at most the
 * one unit it is computing: the running ones take the rest of its share.
 * Even threads go through their share front to back, odd ones back to
 * front, and a thread takes from another's share at the end its owner
 * leaves for last, its neighbour's first: so the units left over at the
 * end of a region are next to the thief's own, whose data it has in its
 * cache (the rows it produced; the head whose K and V it has prepared: a
 * fresh head costs INT8 attention a unit's work again, most of it
 * reading K and V from the other core).
 * A counter is one 64-bit word, gen << 40 | end << 20 | next: a claim is a
 * compare-and-swap on it, so a thread still looking at an old region can
 * never take a unit of the next one.  Which thread computes a unit
 * changes nothing: each output element is produced by the same code in
 * the same unit whoever takes it, so results are the same bits for every
 * thread count and every interleaving.
 *
 * Waiting is bounded: a worker polls for the next region, and the caller
 * for the last units, for a few tens of microseconds (the gaps inside one
 * inference are shorter), then sleeps on a condition variable and gives
 * its core to whoever needs it (another process, or the thread it waits
 * for).
 *
 * One case no claiming scheme helps: a worker descheduled in the middle of
 * a unit, when another process competes for its core, holds the region up
 * until the scheduler runs it again (milliseconds).  The caller measures
 * that: when it waited for the last units much longer than it took for
 * its own (a stall), the pool halves the threads it hands work to, down
 * to the caller alone, and tries twice as many again after a back-off that
 * doubles with each stall in a row (10 ms up to 1 s).  So under load the
 * pool degrades to what the cores it really gets can do, and returns to
 * every thread when the load goes.
 *
 * A try that stalls again costs one slow inference (a scheduler time
 * slice of waiting), and under a steady load every try stalls: one a
 * second is a slow frame in every hundred at 100 frames/s, the p99.  So
 * after a second stall in a row (one alone is as likely a hiccup of the
 * machine, after which the first try comes blind, as above) a try waits
 * for evidence that the cores are there.  Over the window since the
 * stall (at least PROBE_WINDOW_S), the cores this process could have
 * had are the machine's idle time (/proc/stat, every CPU) plus its own CPU
 * time, per second of the window: a busy process elsewhere takes its core
 * out of both, while this process's own pauses between frames do not.
 * The pool tries the larger count only when that is within half a core of
 * it; otherwise the window starts again without a try.  Where /proc/stat
 * cannot be read, the pool tries blindly as above. */
typedef void (*unit_fn)(void *arg, int tid, int unit);

#define POOL_MAX_UNITS 0xFFFFF

struct pool {
    int n; /* threads, caller included */
    int cap; /* threads started, caller included: n, or the CPUs online where fewer (evrt_ctx_set_threads) */
    int spins; /* polls before sleeping */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    char pad0[64];
    uint64_t work;   /* gen << 40 | units << 20 | threads handed work, of the current region (atomic) */
    uint64_t *ctr;   /* thread t's claim counter at ctr[8 t], one cache line each (atomic) */
    char pad1[64];   /* completions on a cache line of their own */
    int finished;    /* units of the current region completed (atomic) */
    int sleepers;    /* workers asleep on go (atomic) */
    int waiting;     /* 1 while the caller sleeps on done (under mu) */
    int stop;
    unit_fn fn;
    void *arg;
    /* the caller's alone (no atomics): threads handed work now, and when
     * to try more (pool_active, pool_stalled); at window_at, the machine's
     * idle CPU seconds (idle_s < 0: unknown) and this process's CPU
     * seconds */
    int active, stalls; /* stalls in a row */
    double probe_at, backoff, stalled_at;
    double idle_s, cpu_s, window_at;
};

struct worker {
    struct pool *p;
    int tid;
};

#if defined(__GNUC__)
#define LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)
#define CAS(p, expected, v) \
    __atomic_compare_exchange_n((p), (expected), (v), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)
/* About 50 microseconds of polling: longer than the caller's serial work
 * between the regions of one inference, far shorter than a scheduler time
 * slice.  (Round 2's pool polled for a millisecond per region: under a
 * competing process that millisecond was taken from the core it needed.)
 * More threads than cores: barely poll at all. */
#define SPINS 10000
#define SPINS_OVERSUBSCRIBED 200
/* a stall: waited this much longer for the last units than the caller
 * took for its own (seconds); the back-off's bounds */
#define STALL_S 200e-6
#define BACKOFF_MIN_S 0.01
#define BACKOFF_MAX_S 1.0
/* /proc/stat counts in ticks of 10 ms: a quarter of a second measures the
 * cores to about a tenth */
#define PROBE_WINDOW_S 0.25
#if defined(__x86_64__) || defined(__i386__)
#define RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define RELAX() __asm__ __volatile__("yield" ::: "memory")
#else
#define RELAX() ((void)0)
#endif
#else
#error "libevrt's thread pool needs the GCC/Clang __atomic builtins"
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
    float *x2;      /* (B, T, D) the stream after a merge (swapped with x) */
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
    int *att_last;          /* (threads) attention's per-thread head (att_job) */
    /* INT8 attention's shared K and V (kv_shared): a slot per (image,
     * head) of K and V^T quantized and packed, K's sums, and the V sums
     * of each range of 16 tokens (kv8_plan); ones (T) for the kernels'
     * w_scale; per thread, the vws of each head of the image it last
     * worked on (hvws_of: that image, -1 none) */
    char *kv8;              /* (B * hmax, kv8_slot) or NULL */
    size_t kv8_slot, kv8_vp, kv8_kws, kv8_vsum; /* a slot's bytes, its parts' offsets (kv8_plan) */
    float *ones;            /* (T) */
    int32_t *hvws;          /* (threads, hmax, dmax) */
    int *hvws_of;           /* (threads, hmax) */
    int hmax;               /* most heads of a block */
    /* Token Merging (evrt.h): per image, the tokens' sizes and their
     * proportional-attention bias; the matching's normalised metric (A's
     * rows, B's columns), best matches and scores; each output's inputs */
    float *size, *size2;    /* (B, T) */
    float *bias;            /* (B, T) log size */
    const float *bias_now;  /* bias during a block after a merge, else NULL */
    float *logn;            /* (T + 1) logn[s] = (float)log(s) */
    float *an, *bt;         /* (B, na, dmax), (B, dmax * nb + 16) */
    int *best;              /* (B, na) */
    float *score;           /* (B, na) */
    int *dst, *msrc, *start; /* (B, T), (B, T), (B, T + 1) each output's inputs */
    int *order;             /* (na) */
    /* segmentation (evrt_infer_seg) */
    float *seg_z;           /* (B, N, K) per-patch logits when the caller wants none */
    float *seg_scratch;     /* (threads, evrt_seg_scratch) the decoder's */
    /* seg_mlp's decoder (EVRT_HEAD_SEG_MLP): each level's linear_c output,
     * their concatenation, the fuse layer's output */
    float *dec_e;           /* (L, B * N, C) */
    float *dec_cat;         /* (B * N, L * C) */
    float *dec_u;           /* (B * N, C) */
};

static int imax(int a, int b) { return a > b ? a : b; }
static int imin(int a, int b) { return a < b ? a : b; }
/* Token Merging's A set: the even tokens of T */
static size_t merge_na(int T) { return (size_t)(T + 1) / 2; }

/* ---------------------------------------------------------------- pool */

#ifdef EVRT_POOL_JITTER
/* Test builds (tests/test_kernels_jitter): before a unit, a thread yields
 * its core or sleeps for up to 200 microseconds at random, as a loaded
 * machine would deschedule it, so that every interleaving of the claims
 * gets tried. */
#include <sched.h>
#include <time.h>
static void jitter(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    if ((*s >> 16) % 4 == 0) sched_yield();
    if ((*s >> 16) % 16 == 1) {
        struct timespec ts = {0, 1000L * (long)((*s >> 8) % 200)};
        nanosleep(&ts, NULL);
    }
}
#endif

static unsigned word_gen(uint64_t w) { return (unsigned)(w >> 40); }

/* Claims and runs units of region gen until none is left (or the region
 * is another one); the thread that completes the last unit wakes the
 * caller if it sleeps. */
static void run_units(struct pool *p, unsigned gen, int tid)
{
#ifdef EVRT_POOL_JITTER
    unsigned s = gen * 2654435761u + (unsigned)tid;
#endif
    uint64_t w = LOAD(&p->work);
    int units = (int)((w >> 20) & POOL_MAX_UNITS), active = (int)(w & 0x1FF), done = 0, k;
    if (word_gen(w) != gen || tid >= active) return;
    /* its own share first, then the others' in turn, its neighbour on the
     * side where its own share ends first (the pool's comment) */
    for (k = 0; k < active; k++) {
        int v = tid % 2 ? (tid - k + active) % active : (tid + k) % active;
        int back = v % 2 ? v == tid : v != tid; /* claim from the back */
        uint64_t *ctr = p->ctr + 8 * v;
        w = LOAD(ctr);
        for (;;) {
            int next = (int)(w & POOL_MAX_UNITS), end = (int)((w >> 20) & POOL_MAX_UNITS);
            if (word_gen(w) != gen || next >= end) break;
            if (!CAS(ctr, &w, back ? w - ((uint64_t)1 << 20) : w + 1)) continue; /* w reloaded */
#ifdef EVRT_POOL_JITTER
            jitter(&s);
#endif
            p->fn(p->arg, tid, back ? end - 1 : next);
            done++;
            w = LOAD(ctr);
        }
    }
    /* the worker that completes the region reads waiting under the mutex
     * the caller sets it under: a store and a load on each side of two
     * atomics (Dekker's pattern) is not enough under qemu-user, whose
     * AArch64 store-release and load-acquire on an x86 host let the load
     * pass the store; the caller then slept with every unit done and no
     * signal coming (tests/cross_arm.sh hung twice, session 18).  The
     * caller (tid 0) never waits on itself. */
    if (done && ADD(&p->finished, done) == units && tid != 0) {
        pthread_mutex_lock(&p->mu);
        if (LOAD(&p->waiting)) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct pool *p = w->p;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spin = 0;
        while ((g = word_gen(LOAD(&p->work))) == seen && spin < p->spins && !LOAD(&p->stop)) {
            RELAX();
            spin++;
        }
        if (g == seen) {
            /* sleepers is raised before the generation is read again, and
             * the caller publishes a region before it reads sleepers, so
             * one of the two sees the other (both sequentially consistent) */
            pthread_mutex_lock(&p->mu);
            ADD(&p->sleepers, 1);
            while ((g = word_gen(LOAD(&p->work))) == seen && !p->stop) pthread_cond_wait(&p->go, &p->mu);
            ADD(&p->sleepers, -1);
            pthread_mutex_unlock(&p->mu);
        }
        if (g == seen) return NULL; /* stop */
        seen = g;
        run_units(p, g, w->tid);
    }
}

/* Seconds on clock id (0 where it cannot be read). */
static double clock_s(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts)) return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

/* The machine's idle time in CPU seconds (every CPU's idle and iowait
 * ticks on /proc/stat's first line), or -1 where it cannot be read. */
static double idle_cpu_s(void)
{
    unsigned long long v[5];
    long hz = sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/stat", "r");
    int n;
    if (!f) return -1.0;
    n = fscanf(f, "cpu %llu %llu %llu %llu %llu", v, v + 1, v + 2, v + 3, v + 4);
    fclose(f);
    return n == 5 && hz > 0 ? (double)(v[3] + v[4]) / (double)hz : -1.0;
}

static void window_start(struct pool *p, double now)
{
    p->idle_s = idle_cpu_s();
    p->cpu_s = p->idle_s >= 0.0 ? clock_s(CLOCK_PROCESS_CPUTIME_ID) : 0.0;
    p->window_at = now;
}

/* Threads to hand the next region to: twice the current number once the
 * back-off after the last stall has passed and the cores for them were
 * there meanwhile (the pool's comment). */
static int pool_active(struct pool *p, double now)
{
    if (p->active < p->cap && now >= p->probe_at) {
        int more = p->active * 2 < p->cap ? p->active * 2 : p->cap;
        double d = now - p->window_at, idle;
        if (p->idle_s >= 0.0 && d < PROBE_WINDOW_S) {
            p->probe_at = p->window_at + PROBE_WINDOW_S;
        } else if ((idle = p->idle_s >= 0.0 ? idle_cpu_s() : -1.0) < 0.0 ||
                   idle - p->idle_s + clock_s(CLOCK_PROCESS_CPUTIME_ID) - p->cpu_s >= (more - 0.5) * d) {
            p->active = more;
        } else {
            /* the cores were taken: no try, a new window */
            window_start(p, now);
            p->probe_at = now + (p->backoff > PROBE_WINDOW_S ? p->backoff : PROBE_WINDOW_S);
        }
    }
    /* a long quiet spell at full strength forgets the back-off */
    if (p->active == p->cap && now - p->stalled_at > 2.0 * p->backoff) {
        p->backoff = BACKOFF_MIN_S;
        p->stalls = 0;
    }
    return p->active;
}

static void pool_stalled(struct pool *p, double now)
{
    p->active = p->active / 2 > 1 ? p->active / 2 : 1;
    p->probe_at = now + p->backoff;
    p->backoff = 2.0 * p->backoff < BACKOFF_MAX_S ? 2.0 * p->backoff : BACKOFF_MAX_S;
    p->stalled_at = now;
    if (++p->stalls >= 2) {
        window_start(p, now);
    } else {
        p->idle_s = -1.0; /* the first try blind */
    }
}

/* fn(arg, tid, u) for every unit u in [0, units), spread over the pool;
 * returns when all are done.  serial: the caller alone (work too small to
 * be worth a region). */
static void parallel(evrt_ctx *c, unit_fn fn, void *arg, int units, int serial)
{
    struct pool *p = &c->pool;
    unsigned gen;
    int spin = 0, u, t, a;
    double t0 = 0.0, t1;
    if (units <= 0) return;
    a = p->n <= 1 || serial || units == 1 || units > POOL_MAX_UNITS ? 1 : pool_active(p, t0 = now_s());
    if (a <= 1) {
        for (u = 0; u < units; u++) fn(arg, 0, u);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    STORE(&p->finished, 0);
    gen = (word_gen(LOAD(&p->work)) + 1) & 0xFFFFFF;
    if (gen == 0) gen = 1; /* 0 is the workers' initial "seen" */
    for (t = 0; t < a; t++) { /* the shares, before the region is published */
        uint64_t lo = (uint64_t)((long)units * t / a), hi = (uint64_t)((long)units * (t + 1) / a);
        STORE(p->ctr + 8 * t, (uint64_t)gen << 40 | hi << 20 | lo);
    }
    STORE(&p->work, (uint64_t)gen << 40 | (uint64_t)units << 20 | (uint64_t)a);
    if (LOAD(&p->sleepers)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
    }
    run_units(p, gen, 0);
    if (LOAD(&p->finished) == units) return;
    t1 = now_s();
    while (LOAD(&p->finished) < units && spin < p->spins) {
        RELAX();
        spin++;
    }
    if (LOAD(&p->finished) < units) {
        double t2;
        pthread_mutex_lock(&p->mu);
        STORE(&p->waiting, 1);
        while (LOAD(&p->finished) < units) pthread_cond_wait(&p->done, &p->mu);
        STORE(&p->waiting, 0);
        pthread_mutex_unlock(&p->mu);
        t2 = now_s();
        if (t2 - t1 > STALL_S + (t1 - t0)) pool_stalled(p, t2);
    }
}

/* A second job in the same region as a first, its units numbered after
 * the first's: work that needs neither's results (the matching's metric
 * beside attention, the similarities beside the projection), so it costs
 * no region of its own.  serial: small enough for the caller alone. */
struct side {
    unit_fn fn;
    void *arg;
    int units, serial;
};

struct with_side {
    unit_fn fn;
    void *arg;
    int per, sper; /* per band, units of the first job and of the side's */
    const struct side *side;
};

static void with_side_unit(void *arg, int tid, int u)
{
    const struct with_side *w = arg;
    int t = u / (w->per + w->sper), k = u % (w->per + w->sper);
    if (k < w->per)
        w->fn(w->arg, tid, t * w->per + k);
    else if ((k = t * w->sper + k - w->per) < w->side->units)
        w->side->fn(w->side->arg, tid, k);
}

/* bands: the first job's units go in that many equal runs, one per thread
 * (struct rowsplit); each run takes its share of the side's units after
 * it, so that the pool's split still hands each thread its own band; 1:
 * the side's units after all of the first job's. */
static void parallel_side(evrt_ctx *c, unit_fn fn, void *arg, int units, int serial, const struct side *side,
                          int bands)
{
    struct with_side w;
    if (!side || side->units <= 0) {
        parallel(c, fn, arg, units, serial);
        return;
    }
    if (bands < 1 || units % bands) bands = 1;
    w.fn = fn;
    w.arg = arg;
    w.per = units / bands;
    w.sper = (side->units + bands - 1) / bands;
    w.side = side;
    parallel(c, with_side_unit, &w, bands * (w.per + w.sper), serial && side->serial);
}

static void pool_stop(evrt_ctx *c)
{
    struct pool *p = &c->pool;
    int i;
    if (p->n > 1) {
        pthread_mutex_lock(&p->mu);
        STORE(&p->stop, 1);
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
        for (i = 1; i < p->cap; i++) pthread_join(p->th[i], NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->go);
        pthread_cond_destroy(&p->done);
    }
    free(p->th);
    free(p->ctr);
    free(c->workers);
    p->th = NULL;
    p->ctr = NULL;
    c->workers = NULL;
    p->n = p->cap = p->active = 1;
}

static size_t scratch_floats(const evrt_ctx *c) { return (size_t)c->T * c->T + (size_t)c->dmax * c->T; }

/* One thread's INT8 attention scratch (struct evrt_att8, kernels.h),
 * carved from c->att8: sized for every variant and the largest head, so
 * evrt_ctx_set_kernels needs no new memory. */
static size_t a64(size_t n) { return (n + 63) / 64 * 64; }

/* The largest packed K (T, dmax) and V^T (dmax, T) of any variant. */
static void att8_pack_max(const evrt_ctx *c, size_t *kp, size_t *vp)
{
    int isa;
    *kp = *vp = 0;
    for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
        size_t k = evrt_pack_i8_bytes(isa, c->T, c->dmax), v = evrt_pack_i8_bytes(isa, c->dmax, c->T);
        *kp = k > *kp ? k : *kp;
        *vp = v > *vp ? v : *vp;
    }
}

static size_t att8_layout(const evrt_ctx *c, char *base, struct evrt_att8 *a)
{
    size_t T = (size_t)c->T, d = (size_t)c->dmax, kp, vp, xq = 0, at = 0;
    int isa;
    att8_pack_max(c, &kp, &vp);
    for (isa = 0; isa < EVRT_ISA_COUNT; isa++) {
        size_t q = evrt_quant_bytes(isa, EVRT_ATT_ROWS, imax(c->T, c->dmax));
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

/* The layout of one (image, head) slot of the shared K and V, fixed at
 * create: K and V^T packed as att8_layout's kp and vp, K's sums (T), and
 * the V sums of each range of 16 tokens (T / 16 rounded up, dmax). */
static void kv8_plan(evrt_ctx *c)
{
    size_t T = (size_t)c->T, kp, vp;
    att8_pack_max(c, &kp, &vp);
    c->kv8_vp = a64(kp);
    c->kv8_kws = c->kv8_vp + a64(vp);
    c->kv8_vsum = c->kv8_kws + a64(4 * T);
    c->kv8_slot = c->kv8_vsum + a64(4 * (size_t)c->dmax * ((T + 15) / 16));
}

int evrt_ctx_set_threads(evrt_ctx *c, int n)
{
    struct pool *p = &c->pool;
    float *scores;
    void *att8;
    int *last, i;
    if (n < 1 || n > 256) return evrt_errf(c->err, sizeof c->err, "threads %d outside [1, 256]", n);
    pool_stop(c);
    scores = realloc(c->scores, sizeof(float) * scratch_floats(c) * (size_t)n);
    if (!scores) return EVRT_ENOMEM;
    c->scores = scores;
    att8 = realloc(c->att8, att8_bytes(c) * (size_t)n);
    if (!att8) return EVRT_ENOMEM;
    c->att8 = att8;
    last = realloc(c->att_last, sizeof(int) * (size_t)n);
    if (!last) return EVRT_ENOMEM;
    c->att_last = last;
    if (c->kv8) {
        int32_t *hv = realloc(c->hvws, sizeof(int32_t) * (size_t)c->hmax * (size_t)c->dmax * (size_t)n);
        int *of;
        if (!hv) return EVRT_ENOMEM;
        c->hvws = hv;
        of = realloc(c->hvws_of, sizeof(int) * (size_t)c->hmax * (size_t)n);
        if (!of) return EVRT_ENOMEM;
        c->hvws_of = of;
    }
    if (c->seg_scratch) {
        float *ss = realloc(c->seg_scratch, sizeof(float) * evrt_seg_scratch(c->m->img_size, c->m->classes) * (size_t)n);
        if (!ss) return EVRT_ENOMEM;
        c->seg_scratch = ss;
    }
    if (n == 1) return EVRT_OK;
    p->th = calloc((size_t)n, sizeof *p->th);
    c->workers = calloc((size_t)n, sizeof *c->workers);
    if (posix_memalign((void **)&p->ctr, 64, 64 * (size_t)n)) p->ctr = NULL;
    if (!p->th || !c->workers || !p->ctr) {
        pool_stop(c);
        return EVRT_ENOMEM;
    }
    p->stop = 0;
    p->work = 0;
    p->finished = 0;
    p->sleepers = 0;
    p->waiting = 0;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->n = p->cap = n;
    p->spins = SPINS;
#if defined(_SC_NPROCESSORS_ONLN)
    /* more busy threads than CPUs only take turns on them: 4 threads on
     * 2 cores ran deit-tiny at 1 thread's speed, half that of 2 (AMD EPYC
     * VM, RESULTS.md session 19); so the workers beyond the CPUs online
     * are not started (the bands follow the threads active, rows_of).
     * EVRT_OVERSUBSCRIBE=1 starts them all (the tests, to try 3 and 4
     * threads' interleavings on 2 cores); they then poll briefly. */
    {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        const char *over = getenv("EVRT_OVERSUBSCRIBE");
        if (cpus >= 1 && n > cpus) {
            if (over && !strcmp(over, "1"))
                p->spins = SPINS_OVERSUBSCRIBED;
            else
                p->cap = (int)cpus;
        }
    }
#endif
    p->active = p->cap;
    p->probe_at = p->stalled_at = 0.0;
    p->backoff = BACKOFF_MIN_S;
    p->idle_s = -1.0;
    p->cpu_s = p->window_at = 0.0;
    p->stalls = 0;
    for (i = 1; i < p->cap; i++) {
        c->workers[i].p = p;
        c->workers[i].tid = i;
        if (pthread_create(&p->th[i], NULL, worker_main, &c->workers[i])) {
            p->cap = i; /* join the ones started */
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

/* 1 when some block but the last merges tokens. */
static int model_merges(const struct evrt_model *m)
{
    int l;
    for (l = 0; l + 1 < m->depth; l++)
        if (m->blocks[l].merge_r > 0) return 1;
    return 0;
}

/* Token Merging's working memory (struct evrt_ctx): for a model that
 * merges only. */
static int merge_alloc(evrt_ctx *c)
{
    size_t B = (size_t)c->max_batch, T = (size_t)c->T, D = (size_t)c->m->dim, na = merge_na(c->T), s;
    size_t bt = (size_t)c->dmax * (T / 2) + 16;
    c->x2 = malloc(sizeof(float) * B * T * D);
    c->size = malloc(sizeof(float) * B * T);
    c->size2 = malloc(sizeof(float) * B * T);
    c->bias = malloc(sizeof(float) * B * T);
    c->logn = malloc(sizeof(float) * (T + 1));
    c->an = malloc(sizeof(float) * B * na * (size_t)c->dmax);
    c->bt = malloc(sizeof(float) * B * bt);
    c->best = malloc(sizeof(int) * B * na);
    c->score = malloc(sizeof(float) * B * na);
    c->dst = malloc(sizeof(int) * B * T);
    c->msrc = malloc(sizeof(int) * B * T);
    c->start = malloc(sizeof(int) * B * (T + 1));
    c->order = malloc(sizeof(int) * na);
    if (!c->x2 || !c->size || !c->size2 || !c->bias || !c->logn || !c->an || !c->bt || !c->best || !c->score ||
        !c->dst || !c->msrc || !c->start || !c->order)
        return EVRT_ENOMEM;
    c->bytes += sizeof(float) * (B * T * D + 3 * B * T + T + 1 + B * na * (size_t)c->dmax + B * bt + B * na) +
                sizeof(int) * (3 * B * T + B + B * na + na);
    c->logn[0] = 0.0f;
    for (s = 1; s <= T; s++) c->logn[s] = (float)log((double)s);
    return EVRT_OK;
}

static int ctx_create(evrt_ctx **out, const struct evrt_model *m, int max_batch, const evrt_file *src)
{
    evrt_ctx *c = calloc(1, sizeof *c);
    size_t B = (size_t)max_batch, T, D, I = 0, M = 0, in = 0, outs = 0, qb;
    int l, i, L, att8 = 0;
    const char *env;
    *out = c;
    if (!c) return EVRT_ENOMEM;
    c->m = m;
    c->src = src;
    c->max_batch = max_batch;
    c->pool.n = c->pool.cap = c->pool.active = 1;
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
        c->hmax = imax(c->hmax, m->blocks[l].heads);
        att8 |= m->blocks[l].attn_dtype == EVRT_I8;
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
    c->att_last = malloc(sizeof(int));
    c->xq = malloc(qb);
    c->wsum = malloc(sizeof(int32_t) * outs);
    c->wsum_off = malloc(sizeof(size_t) * (size_t)L);
    c->wsum_of = calloc((size_t)L, sizeof *c->wsum_of);
    c->bytes = sizeof(float) * (B * c->N * c->PI + 3 * B * T * D + 4 * B * T * I + B * T * M +
                                scratch_floats(c)) +
               att8_bytes(c) + qb + sizeof(int32_t) * outs;
    if (!c->patches || !c->x || !c->ln || !c->qkv || !c->attv || !c->tmp || !c->h || !c->scores || !c->att8 || !c->att_last ||
        !c->xq || !c->wsum || !c->wsum_off || !c->wsum_of) {
        evrt_ctx_destroy(c);
        *out = NULL;
        return EVRT_ENOMEM;
    }
    if (m->head_kind == EVRT_HEAD_SEG_MLP) {
        size_t C = (size_t)m->decoder->dim, BN = B * c->N, Lv = (size_t)m->decoder->levels;
        c->dec_e = malloc(sizeof(float) * Lv * BN * C);
        c->dec_cat = malloc(sizeof(float) * Lv * BN * C);
        c->dec_u = malloc(sizeof(float) * BN * C);
        c->bytes += sizeof(float) * (2 * Lv + 1) * BN * C;
        if (!c->dec_e || !c->dec_cat || !c->dec_u) {
            evrt_ctx_destroy(c);
            *out = NULL;
            return EVRT_ENOMEM;
        }
    }
    if (m->head_kind != EVRT_HEAD_CLASS) {
        c->seg_z = malloc(sizeof(float) * B * c->N * (size_t)m->classes);
        c->seg_scratch = malloc(sizeof(float) * evrt_seg_scratch(m->img_size, m->classes));
        c->bytes += sizeof(float) * (B * c->N * (size_t)m->classes + evrt_seg_scratch(m->img_size, m->classes));
        if (!c->seg_z || !c->seg_scratch) {
            evrt_ctx_destroy(c);
            *out = NULL;
            return EVRT_ENOMEM;
        }
    }
    if (att8) {
        size_t hv = (size_t)c->hmax * (size_t)c->dmax;
        kv8_plan(c);
        c->kv8 = malloc(B * (size_t)c->hmax * c->kv8_slot);
        c->ones = malloc(sizeof(float) * T);
        c->hvws = malloc(sizeof(int32_t) * hv);
        c->hvws_of = malloc(sizeof(int) * (size_t)c->hmax);
        c->bytes += B * (size_t)c->hmax * c->kv8_slot + sizeof(float) * T + sizeof(int32_t) * hv +
                    sizeof(int) * (size_t)c->hmax;
        if (!c->kv8 || !c->ones || !c->hvws || !c->hvws_of) {
            evrt_ctx_destroy(c);
            *out = NULL;
            return EVRT_ENOMEM;
        }
        for (i = 0; i < c->T; i++) c->ones[i] = 1.0f;
    }
    if (model_merges(m) && merge_alloc(c)) {
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
    free(c->att_last);
    free(c->kv8);
    free(c->ones);
    free(c->hvws);
    free(c->hvws_of);
    free(c->x2);
    free(c->size);
    free(c->size2);
    free(c->bias);
    free(c->logn);
    free(c->an);
    free(c->bt);
    free(c->best);
    free(c->score);
    free(c->dst);
    free(c->msrc);
    free(c->start);
    free(c->order);
    free(c->seg_z);
    free(c->seg_scratch);
    free(c->dec_e);
    free(c->dec_cat);
    free(c->dec_u);
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

const float *evrt_ctx_attention_bias(const evrt_ctx *c) { return c->bias_now; }

/* ---------------------------------------------------------------- layers */

/* The linear layers' row blocks: 48 is a whole number of every variant's
 * row tiles (6 for AVX-512 and AVX2, 4 on NEON, 16 for AMX).  The bands
 * (struct rowsplit) are cut at multiples of ROW_UNIT rows, about the rows
 * of a row-wise region's unit. */
#define ROW_BLOCK 48
#define ROW_UNIT 16

static int blocks_of(int n, int b) { return (n + b - 1) / b; }

/* About UNITS_PER_THREAD units per thread: enough for a running thread to
 * take over a descheduled one's share, few enough that claiming costs
 * nothing (a claim is a shared cache line). */
#define UNITS_PER_THREAD 6

/* The rows of the row-wise regions and of the linear layers go in bands,
 * one per thread the pool hands work to now (pool.active: 1 after it
 * fell back, so one thread then cuts the rows as a 1-thread context
 * does): band t is rows [band_lo(t), band_lo(t + 1)),
 * cut at multiples of ROW_UNIT, the same rows in every region between
 * two attentions; every band in the same number of units (per), so that
 * the pool's even split of the units (parallel) hands thread t band t.
 * Then, unless it stole them, a thread reads the rows it wrote in the
 * region before, from its own core's cache, and writes lines no other
 * core holds.  Before, the linear layers split the 48-row block at the
 * middle by channels and the row-wise regions split the rows evenly
 * elsewhere, so about a quarter of a block's rows crossed between the
 * cores twice a layer; the bands made deit-tiny 1-2 % faster at 2 threads
 * (AMD EPYC VM, alternated; RESULTS.md, session 19).  Any split gives the
 * same bits: each row or output is the same code whoever computes it. */
struct rowsplit {
    int rows, bands, per;
};

static int band_lo(const struct rowsplit *s, int t)
{
    long r = (long)s->rows * t / s->bands;
    return t >= s->bands ? s->rows : imin(s->rows, (int)((r + ROW_UNIT / 2) / ROW_UNIT * ROW_UNIT));
}

/* Unit u's band: its first row into *lo, its rows into *n; returns the
 * unit's place in the band (0 to per - 1). */
static int unit_band(const struct rowsplit *s, int u, int *lo, int *n)
{
    *lo = band_lo(s, u / s->per);
    *n = band_lo(s, u / s->per + 1) - *lo;
    return u % s->per;
}

/* A row-wise region's units: per band, ranges of about ROW_UNIT rows, at
 * most UNITS_PER_THREAD of them. */
static struct rowsplit rows_of(const evrt_ctx *c, int rows)
{
    struct rowsplit s;
    s.rows = rows;
    s.bands = c->pool.active;
    s.per = imax(1, imin(UNITS_PER_THREAD, blocks_of(rows, s.bands * ROW_UNIT)));
    return s;
}

static int rows_units(const struct rowsplit *s) { return s->bands * s->per; }

/* The rows [*r0, *r1) of unit u of a row-wise region (possibly none). */
static void unit_rows(const struct rowsplit *s, int u, int *r0, int *r1)
{
    int lo, n, k = unit_band(s, u, &lo, &n);
    *r0 = lo + n * k / s->per;
    *r1 = lo + n * (k + 1) / s->per;
}

/* The linear layer's work, band by band (struct rowsplit): a band's rows
 * in blocks of ROW_BLOCK (the last block takes the rest, up to 2
 * ROW_BLOCK - 1 rows), items of a block by 32 output channels (two
 * 16-channel panels, what the kernels' widest tiles take), numbered
 * block-major, in UNITS_PER_THREAD units of a run of consecutive items;
 * a run's items of one block make one kernel call across their channels,
 * which share the block's input rows.  Block-major, a thread's share is
 * its band of whole rows: the rows it normalised, quantized or activated
 * in the row-wise region before.  Channel-group-major, every thread read
 * every row, half of them from the other core: deit-tiny INT8 at 2
 * threads took 6.4 ms instead of 5.2 (Intel, AMX; RESULTS.md, session
 * 17). */

/* What a linear layer's input takes first, in place. */
enum act { ACT_NONE = 0, ACT_GELU = 1, ACT_RELU = 2 };

struct linear_job {
    const struct evrt_kernels *k;
    const struct evrt_linear *L;
    float *y;       /* (rows, out) */
    float *x;       /* (rows, in) */
    void *xq;       /* x quantized, the variant's layout (INT8) */
    const int32_t *wsum;
    const void *wp; /* packed weights, or NULL */
    struct rowsplit bands; /* per: UNITS_PER_THREAD */
    struct rowsplit rs;    /* the row-wise regions' (rows_of) */
    int groups;            /* of 32 output channels */
    int act;        /* an activation on x in place first (enum act) */
    int act_fused;  /* 1: in the region that quantizes x (rows_unit) */
};

/* Rows [r0, r1) by channels [o0, o1) of the layer. */
static void linear_tile(const struct linear_job *j, int r0, int r1, int o0, int o1)
{
    const struct evrt_linear *L = j->L;
    int n = r1 - r0;
    float *y = j->y + (size_t)r0 * L->out;
    if (L->dtype == EVRT_I8) {
        const void *xq = (const char *)j->xq + evrt_quant_bytes(j->k->isa, r0, L->in);
        if (j->wp)
            j->k->i8p(y, xq, L->in_zero, L->in_scale, j->wp, j->wsum, L->w_scale, L->bias, n, L->in, L->out,
                      o0, o1);
        else
            j->k->i8(y, xq, L->in_zero, L->in_scale, L->wq, j->wsum, L->w_scale, L->bias, n, L->in, L->out, o0,
                     o1);
    } else {
        const float *x = j->x + (size_t)r0 * L->in;
        if (j->wp)
            j->k->f32p(y, (size_t)L->out, x, (size_t)L->in, j->wp, 16, (size_t)16 * L->in, L->bias, n, L->in,
                       o0, o1);
        else
            j->k->f32(y, (size_t)L->out, x, (size_t)L->in, L->w, (size_t)L->in, L->bias, n, L->in, o0, o1);
    }
}

static void linear_unit(void *arg, int tid, int u)
{
    struct linear_job *j = arg;
    const struct rowsplit *s = &j->bands;
    int lo, n, k = unit_band(s, u, &lo, &n);
    int blocks = n >= ROW_BLOCK ? n / ROW_BLOCK : n > 0, items = blocks * j->groups;
    int a = items * k / s->per, b = items * (k + 1) / s->per;
    (void)tid;
    while (a < b) {
        int rb = a / j->groups, g = a % j->groups, run = imin(b - a, j->groups - g), o0 = 32 * g;
        int r0 = lo + rb * ROW_BLOCK, r1 = rb == blocks - 1 ? lo + n : r0 + ROW_BLOCK;
        linear_tile(j, r0, r1, o0, imin(o0 + 32 * run, j->L->out));
        a += run;
    }
}

/* Rows [r0, r1) of x quantized for layer L into xq, at their place in
 * the variant's layout. */
static void quant_rows(const struct evrt_kernels *k, void *xq, const struct evrt_linear *L, const float *x,
                       int r0, int r1)
{
    k->quant((char *)xq + evrt_quant_bytes(k->isa, r0, L->in), x + (size_t)r0 * L->in, r1 - r0, L->in,
             L->in_scale, L->in_zero);
}

/* ReLU in place: x > 0 ? x : 0 (NaN 0), as evit's evit_relu_forward. */
static void relu(float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void act_unit(void *arg, int tid, int u)
{
    struct linear_job *j = arg;
    int r0, r1;
    float *x;
    size_t n;
    (void)tid;
    unit_rows(&j->rs, u, &r0, &r1);
    x = j->x + (size_t)r0 * j->L->in;
    n = (size_t)(r1 - r0) * j->L->in;
    if (n == 0) return;
    if (j->act == ACT_GELU)
        j->k->gelu(x, n);
    else
        relu(x, n);
}

/* Rows of x: the activation in place (act), then quantization (INT8): GELU
 * and ReLU are element-wise, so any split gives the same bits. */
static void rows_unit(void *arg, int tid, int u)
{
    struct linear_job *j = arg;
    int r0, r1;
    unit_rows(&j->rs, u, &r0, &r1);
    if (r0 == r1) return;
    if (j->act_fused) act_unit(arg, tid, u);
    quant_rows(j->k, j->xq, j->L, j->x, r0, r1);
}

/* Below this many multiply-adds a parallel region costs more than it saves. */
static int small_linear(const struct evrt_linear *L, int rows) { return (double)rows * L->in * L->out < 65536.0; }

/* 1 when layer's input can be quantized by the region that produces it
 * (addln): an INT8 layer, and no observer to show the float input first. */
static int fuse_quant(const evrt_ctx *c, int layer)
{
    return !c->observer && evrt_model_layer(c->m, layer)->dtype == EVRT_I8;
}

/* One linear layer on rows of x, through the observer.  quantized: x is
 * already in c->xq (fuse_quant).  act: x takes an activation in place
 * first (GELU: the MLP's hidden layer; ReLU: seg_mlp's fused features), in
 * the region that quantizes it. */
static void linear(evrt_ctx *c, int layer, float *y, float *x, int rows, int quantized, int act,
                   const struct side *side)
{
    const struct evrt_linear *L = evrt_model_layer(c->m, layer);
    struct linear_job j;
    int serial = small_linear(L, rows), i8 = L->dtype == EVRT_I8;
    j.k = c->k;
    j.L = L;
    j.y = y;
    j.x = x;
    j.xq = c->xq;
    j.bands = rows_of(c, rows);
    j.bands.per = UNITS_PER_THREAD;
    j.rs = rows_of(c, rows);
    j.groups = blocks_of(L->out, 32);
    j.wsum = i8 ? wsum_of(c, layer) : NULL;
    j.wp = packed(c, layer);
    /* the activation in the region that quantizes, unless the observer
     * must see x between the two */
    j.act = act;
    j.act_fused = act && i8 && !quantized && !c->observer;
    if (act && !j.act_fused) parallel(c, act_unit, &j, rows_units(&j.rs), (size_t)rows * L->in < 8192);
    if (c->observer) c->observer(c->user, layer, EVRT_OBSERVE_INPUT, x, rows, L->in);
    if (i8 && !quantized)
        parallel(c, rows_unit, &j, rows_units(&j.rs), (size_t)rows * L->in < 8192);
    parallel_side(c, linear_unit, &j, rows_units(&j.bands), serial, side, j.bands.bands);
    if (c->observer) c->observer(c->user, layer, EVRT_OBSERVE_OUTPUT, y, rows, L->out);
}

/* Attention in units of up to EVRT_ATT_ROWS queries of one (image, head);
 * the variant's attention (or INT8 attention) kernel does each, and the
 * per-head work (K^T, or K and V quantized and packed) once for a run of
 * units of the same head on the same thread's scratch.
 *
 * INT8 attention on more than one thread (the pool's active count when
 * the attention starts: after a fall-back to one thread the 1-thread path
 * is 1 % faster than the shared one run alone), where the variant has
 * att8_kv_rows (kv_shared): a head's K and V are quantized once, into
 * its shared slot, by a region of their own before the attention's, in
 * ranges of 16 tokens, all heads at once.  The qkv layer's rows were
 * split between the threads in bands (linear_unit), and that region
 * splits the tokens the same way, so each thread quantizes the K and V it
 * computed, from its own cache; then every thread reads the heads'
 * quantized K and V, a quarter of the bytes of the floats.  (Each thread
 * quantizing each head it took from the floats, half of them the other
 * core's, took a unit's work again per head on an AMD EPYC VM: 25 us
 * against 5 at one thread.)  The attention's units then go query block
 * by query block, each block's heads in turn, so that a thread's share is
 * a band of the tokens too: its queries are the rows it computed, and its
 * outputs the rows the next region (the projection's quantization) gives
 * it. */
struct att_job {
    evrt_ctx *c;
    const struct evrt_block *blk;
    float *out;       /* (B, nq, I) */
    const float *qkv; /* (B, T, 3 I) */
    const float *bias; /* (B, T) or NULL */
    int B, T, nq, qblocks;
    int shared;       /* kv_shared */
    int *last;        /* (threads) the (image, head) each thread's scratch holds */
};

static int kv_shared(const evrt_ctx *c, const struct evrt_block *blk, int serial)
{
    return blk->attn_dtype == EVRT_I8 && c->kv8 && c->k->att8_kv_rows && c->pool.active > 1 && !serial;
}

/* The shared slot of (image b, head h): its kp, vp and kws into a, and
 * its ranges' V sums. */
static void kv_slot(const evrt_ctx *c, int b, int h, struct evrt_att8 *a, int32_t **vsum)
{
    char *base = c->kv8 + c->kv8_slot * ((size_t)b * c->hmax + h);
    a->kp = base;
    a->vp = base + c->kv8_vp;
    a->kws = (int32_t *)(void *)(base + c->kv8_kws);
    *vsum = (int32_t *)(void *)(base + c->kv8_vsum);
}

/* Tokens [16 r, 16 r + 16) of image u / ranges, every head's K and V. */
static void kv_unit(void *arg, int tid, int u)
{
    const struct att_job *j = arg;
    const evrt_ctx *c = j->c;
    const struct evrt_block *blk = j->blk;
    int T = j->T, d = blk->head_dim, I = blk->heads * d, ranges = (T + 15) / 16;
    int b = u / ranges, r = u % ranges, h;
    const float *sc = blk->attn_scale;
    struct evrt_att8 a, s;
    int32_t *vsum;
    att8_layout(c, (char *)c->att8 + att8_bytes(c) * (size_t)tid, &a);
    for (h = 0; h < blk->heads; h++) {
        kv_slot(c, b, h, &s, &vsum);
        a.kp = s.kp;
        a.vp = s.vp;
        a.kws = s.kws;
        a.vws = vsum + (size_t)r * c->dmax;
        c->k->att8_kv_rows(&a, j->qkv + (size_t)b * T * 3 * I, T, I, h, d, 16 * r, imin(16 * r + 16, T),
                           1.0f / sc[1], 1.0f / sc[2]);
    }
}

/* A unit of the shared case: the slot's K and V, this thread's vws of
 * the head (the sum of the ranges', once per image and head). */
static void att_unit_shared(const struct att_job *j, int tid, int b, int h, int q0, int nr, float *o)
{
    const evrt_ctx *c = j->c;
    const struct evrt_block *blk = j->blk;
    int T = j->T, d = blk->head_dim, I = blk->heads * d, ranges = (T + 15) / 16, r, i;
    struct evrt_att8 a, s;
    int32_t *vsum, *vws = c->hvws + ((size_t)tid * c->hmax + h) * c->dmax;
    int *of = c->hvws_of + (size_t)tid * c->hmax + h;
    att8_layout(c, (char *)c->att8 + att8_bytes(c) * (size_t)tid, &a);
    kv_slot(c, b, h, &s, &vsum);
    if (*of != b) {
        for (i = 0; i < d; i++) vws[i] = 0;
        for (r = 0; r < ranges; r++)
            for (i = 0; i < d; i++) vws[i] += vsum[(size_t)r * c->dmax + i];
        *of = b;
    }
    a.kp = s.kp;
    a.vp = s.vp;
    a.kws = s.kws;
    a.vws = vws;
    a.ones = c->ones;
    for (i = 0; i < d; i++) a.vs[i] = blk->attn_scale[2];
    c->k->attention_i8(c->k, o, (size_t)I, &a, j->qkv + (size_t)b * T * 3 * I, j->bias ? j->bias + (size_t)b * T : NULL,
                       T, I, h, d, q0, nr, 0, blk->attn_scale);
}

static void att_unit(void *arg, int tid, int u)
{
    struct att_job *j = arg;
    evrt_ctx *c = j->c;
    const struct evrt_kernels *k = c->k;
    const struct evrt_block *blk = j->blk;
    int T = j->T, H = blk->heads, d = blk->head_dim, I = H * d;
    /* (image, head, query block); shared: (image, query block, head) */
    int b = u / (j->qblocks * H), h = j->shared ? u % H : u / j->qblocks % H;
    int q0 = (j->shared ? u / H % j->qblocks : u % j->qblocks) * EVRT_ATT_ROWS, bh = b * H + h;
    int nr = imin(EVRT_ATT_ROWS, j->nq - q0), fresh = j->last[tid] != bh;
    const float *base = j->qkv + (size_t)b * T * 3 * I, *bias = j->bias ? j->bias + (size_t)b * T : NULL;
    float *o = j->out + ((size_t)b * j->nq + q0) * I + h * d;
    if (j->shared) {
        att_unit_shared(j, tid, b, h, q0, nr, o);
        return;
    }
    j->last[tid] = bh;
    if (blk->attn_dtype == EVRT_I8) {
        struct evrt_att8 a;
        att8_layout(c, (char *)c->att8 + att8_bytes(c) * (size_t)tid, &a);
        k->attention_i8(k, o, (size_t)I, &a, base, bias, T, I, h, d, q0, nr, fresh, blk->attn_scale);
    } else {
        k->attention(k, o, (size_t)I, c->scores + scratch_floats(c) * (size_t)tid, base, bias, T, I, h, d, q0,
                     nr, fresh);
    }
}

static void attention(evrt_ctx *c, const struct evrt_block *blk, float *out, const float *qkv, int B, int T,
                      int nq, const struct side *side)
{
    struct att_job j;
    int t, serial = (double)nq * T * blk->head_dim * blk->heads <= 16384.0;
    j.c = c;
    j.blk = blk;
    j.out = out;
    j.qkv = qkv;
    j.bias = c->bias_now;
    j.B = B;
    j.T = T;
    j.nq = nq;
    j.qblocks = blocks_of(nq, EVRT_ATT_ROWS);
    j.last = c->att_last;
    j.shared = kv_shared(c, blk, serial);
    for (t = 0; t < c->pool.n; t++) j.last[t] = -1;
    if (j.shared) {
        for (t = 0; t < c->pool.n * c->hmax; t++) c->hvws_of[t] = -1;
        parallel(c, kv_unit, &j, B * blocks_of(T, 16), 0);
    }
    parallel_side(c, att_unit, &j, B * blk->heads * j.qblocks, serial, side, 1);
}

/* x += y (y not NULL), then ln = LayerNorm(x) (w not NULL) and, for an
 * INT8 next layer (next >= 0), ln quantized for it into c->xq: on rows of
 * D, in units of rows (rows_of). */
struct addln_job {
    const struct evrt_kernels *k;
    float *x, *ln;  /* (rows, D) */
    const float *y; /* (rows, D) */
    const float *w, *b;
    const struct evrt_linear *next;
    void *xq;
    int D;
    struct rowsplit rs;
    /* the first: x = the patch embeddings pe (B, N, D), the class token
     * before each image's, plus pos (T, D), instead of x += y */
    const struct evrt_model *m;
    const float *pe;
    int N, T;
};

/* Rows [r0, r1) of x (B, T, D) from the patch embeddings (addln_job). */
static void embed_rows(const struct addln_job *j, int r0, int r1)
{
    const float *pos = j->m->pos_embed, *cls = j->m->cls_token;
    int r, i, D = j->D;
    for (r = r0; r < r1; r++) {
        int b = r / j->T, t = r % j->T;
        float *x = j->x + (size_t)r * D;
        const float *p = pos + (size_t)t * D, *e = t ? j->pe + ((size_t)b * j->N + t - 1) * D : cls;
        for (i = 0; i < D; i++) x[i] = e[i] + p[i];
    }
}

static void addln_unit(void *arg, int tid, int u)
{
    struct addln_job *j = arg;
    int r0, r1;
    size_t o;
    (void)tid;
    unit_rows(&j->rs, u, &r0, &r1);
    if (r0 == r1) return;
    o = (size_t)r0 * j->D;
    if (j->pe) embed_rows(j, r0, r1);
    if (j->y) evrt_add_fast(j->x + o, j->y + o, (size_t)(r1 - r0) * j->D);
    if (j->w) j->k->layernorm(j->ln + o, j->x + o, j->w, j->b, r1 - r0, j->D);
    if (j->next) quant_rows(j->k, j->xq, j->next, j->ln, r0, r1);
}

/* addln's region on j, whose pe (and with it m, N, T) the caller set. */
static int addln_run(evrt_ctx *c, struct addln_job *j, const float *y, const float *w, const float *b, int rows,
                     int next)
{
    j->k = c->k;
    j->x = c->x;
    j->ln = c->ln;
    j->y = y;
    j->w = w;
    j->b = b;
    j->next = w && next >= 0 && fuse_quant(c, next) ? evrt_model_layer(c->m, next) : NULL;
    j->xq = c->xq;
    j->D = c->m->dim;
    j->rs = rows_of(c, rows);
    parallel(c, addln_unit, j, rows_units(&j->rs), (size_t)rows * j->D < 8192);
    return j->next != NULL;
}

/* Returns 1 when it quantized ln for layer next (fuse_quant). */
static int addln(evrt_ctx *c, const float *y, const float *w, const float *b, int rows, int next)
{
    struct addln_job j;
    j.pe = NULL;
    return addln_run(c, &j, y, w, b, rows, next);
}

/* The stream from the patch embeddings pe (B, N, D) with the class tokens
 * and the position embeddings, then LN1 (and its quantization for the
 * first qkv) on it, in one region: B T rows. */
static int embed(evrt_ctx *c, const float *pe, int B)
{
    struct addln_job j;
    j.m = c->m;
    j.pe = pe;
    j.N = c->N;
    j.T = c->T;
    return addln_run(c, &j, NULL, c->m->blocks[0].ln1_w, c->m->blocks[0].ln1_b, B * c->T, 1);
}

/* The image's patches, B N rows of C P P (struct rowsplit). */
struct patch_job {
    const evrt_ctx *c;
    const uint8_t *img;
    struct rowsplit rs;
};

static void patch_unit(void *arg, int tid, int u)
{
    const struct patch_job *j = arg;
    const struct evrt_model *m = j->c->m;
    int r0, r1;
    (void)tid;
    unit_rows(&j->rs, u, &r0, &r1);
    if (r0 < r1) evrt_patchify_rows(j->c->patches, j->img, j->c->lut, m->img_size, m->channels, m->patch, r0, r1);
}

/* ---------------------------------------------------------------- Token Merging */

/* The matching and the merge of evrt.h for the B images of a block with
 * T tokens merging r: the metric's normalised rows in units of
 * MERGE_TOKENS tokens (beside the attention), the similarities and best
 * matches in units of MERGE_ROWS of A's tokens (beside the projection),
 * the ranking on the caller, then the merge of x + the projection's output,
 * LN2 and its quantization in units of output rows. */
#define MERGE_TOKENS 32
#define MERGE_ROWS 16

struct merge_job {
    evrt_ctx *c;
    const struct evrt_block *blk;
    const float *qkv; /* (B, T, 3 I) */
    const float *y;   /* (B, T, D) the projection's output */
    int B, T, r, n, na, nb, prep_units, sim_units;
    const float *w, *b;             /* LN2 */
    const struct evrt_linear *next; /* fc1, when its input is quantized here */
    struct rowsplit rs;             /* of the B n output rows */
};

static float *an_of(const evrt_ctx *c, int b) { return c->an + (size_t)b * merge_na(c->T) * c->dmax; }
static float *bt_of(const evrt_ctx *c, int b) { return c->bt + (size_t)b * ((size_t)c->dmax * (c->T / 2) + 16); }

static void prep_unit(void *arg, int tid, int u)
{
    const struct merge_job *j = arg;
    const evrt_ctx *c = j->c;
    int b = u / j->prep_units, t0 = u % j->prep_units * MERGE_TOKENS, H = j->blk->heads, d = j->blk->head_dim;
    (void)tid;
    evrt_merge_prep(an_of(c, b), bt_of(c, b), (size_t)j->nb, j->qkv + (size_t)b * j->T * 3 * H * d, H * d, H, d,
                    t0, imin(t0 + MERGE_TOKENS, j->T));
}

static void sim_unit(void *arg, int tid, int u)
{
    const struct merge_job *j = arg;
    const evrt_ctx *c = j->c;
    int b = u / j->sim_units, a0 = u % j->sim_units * MERGE_ROWS;
    size_t na = merge_na(c->T);
    evrt_merge_best(c->k, c->best + (size_t)b * na, c->score + (size_t)b * na,
                    c->scores + scratch_floats(c) * (size_t)tid, an_of(c, b), bt_of(c, b), (size_t)j->nb, j->nb,
                    j->blk->head_dim, a0, imin(a0 + MERGE_ROWS, j->na));
}

/* Output rows [r0, r1) of all images (n each): merged into c->x2, LN2
 * into c->ln, quantized for fc1 when next. */
static void mrow_unit(void *arg, int tid, int u)
{
    const struct merge_job *j = arg;
    evrt_ctx *c = j->c;
    int D = c->m->dim, r0, r1, g;
    (void)tid;
    unit_rows(&j->rs, u, &r0, &r1);
    if (r0 == r1) return;
    for (g = r0; g < r1;) {
        int b = g / j->n, j0 = g % j->n, j1 = imin(j->n, j0 + (r1 - g));
        size_t T = (size_t)c->T;
        evrt_merge_rows(c->x2 + (size_t)b * j->n * D, c->x + (size_t)b * j->T * D, j->y + (size_t)b * j->T * D,
                        c->size + (size_t)b * j->T, c->size2 + (size_t)b * j->n, c->start + (size_t)b * (T + 1),
                        c->msrc + (size_t)b * T, j0, j1, D);
        g += j1 - j0;
    }
    c->k->layernorm(c->ln + (size_t)r0 * D, c->x2 + (size_t)r0 * D, j->w, j->b, r1 - r0, D);
    if (j->next) quant_rows(c->k, c->xq, j->next, c->ln, r0, r1);
}

static void merge_job_init(struct merge_job *j, evrt_ctx *c, const struct evrt_block *blk, int B, int T)
{
    j->c = c;
    j->blk = blk;
    j->qkv = c->qkv;
    j->y = c->tmp;
    j->B = B;
    j->T = T;
    j->r = blk->merge_r;
    j->n = T - j->r;
    j->na = (T + 1) / 2;
    j->nb = T / 2;
    j->prep_units = blocks_of(T, MERGE_TOKENS);
    j->sim_units = blocks_of(j->na, MERGE_ROWS);
}

/* Each image's ranking and its outputs' inputs and sizes (the caller's
 * serial part: a sort of r of na scores); then the merge region.  Returns
 * 1 when it quantized ln for layer next (fuse_quant). */
static int merge(evrt_ctx *c, struct merge_job *j, const float *w, const float *bn, int next)
{
    size_t T = (size_t)c->T, na = merge_na(c->T);
    float *t;
    int b, i;
    for (b = 0; b < j->B; b++) {
        int *dst = c->dst + (size_t)b * T, *start = c->start + (size_t)b * (T + 1);
        /* sizes and bias per image, n apart from now on */
        float *so = c->size2 + (size_t)b * j->n, *lb = c->bias + (size_t)b * j->n;
        evrt_merge_match(dst, c->order, c->best + (size_t)b * na, c->score + (size_t)b * na, j->T, j->r);
        evrt_merge_sources(start, c->msrc + (size_t)b * T, so, dst, c->size + (size_t)b * j->T, j->T, j->n);
        /* sizes are whole numbers of patches, at most T */
        for (i = 0; i < j->n; i++) lb[i] = c->logn[(int)so[i]];
    }
    j->w = w;
    j->b = bn;
    j->next = next >= 0 && fuse_quant(c, next) ? evrt_model_layer(c->m, next) : NULL;
    j->rs = rows_of(c, j->B * j->n);
    parallel(c, mrow_unit, j, rows_units(&j->rs), (size_t)j->B * j->n * c->m->dim < 8192);
    /* the merged stream and sizes go on; the images' rows are now n apart */
    t = c->x, c->x = c->x2, c->x2 = t;
    t = c->size, c->size = c->size2, c->size2 = t;
    c->bias_now = c->bias;
    return j->next != NULL;
}

/* Block l on the residual stream c->x (B, T, D), whose LN1 is in c->ln
 * already (quantized for qkv when q1); returns with the MLP's output in
 * c->tmp, for the caller's residual add and the next LayerNorm (one
 * region), and the tokens that go on (T - merge_r).  In the last block
 * only the class token goes on after the keys and values are made: the
 * stream is compacted to (B, 1, D) in place. */
static int block(evrt_ctx *c, int l, int B, int T, int last, int q1)
{
    const struct evrt_block *b = &c->m->blocks[l];
    int D = c->m->dim, nq = last ? 1 : T, k, q2, merging = !last && b->merge_r > 0;
    int rows = B * nq;
    struct merge_job mj;
    struct side prep, sim;
    linear(c, 1 + 4 * l, c->qkv, c->ln, B * T, q1, 0, NULL);
    if (merging) {
        merge_job_init(&mj, c, b, B, T);
        prep.fn = prep_unit, prep.arg = &mj, prep.units = B * mj.prep_units;
        sim.fn = sim_unit, sim.arg = &mj, sim.units = B * mj.sim_units;
        prep.serial = (double)B * T * b->heads * b->head_dim < 8192.0;
        sim.serial = (double)B * mj.na * mj.nb * b->head_dim < 65536.0;
    }
    attention(c, b, c->attv, c->qkv, B, T, nq, merging ? &prep : NULL);
    if (last)
        for (k = 1; k < B; k++) memmove(c->x + (size_t)k * D, c->x + (size_t)k * T * D, sizeof(float) * D);
    linear(c, 2 + 4 * l, c->tmp, c->attv, rows, 0, 0, merging ? &sim : NULL);
    if (merging) {
        q2 = merge(c, &mj, b->ln2_w, b->ln2_b, 3 + 4 * l);
        T = mj.n;
        rows = B * T;
    } else {
        q2 = addln(c, c->tmp, b->ln2_w, b->ln2_b, rows, 3 + 4 * l);
    }
    linear(c, 3 + 4 * l, c->h, c->ln, rows, q2, 0, NULL);
    linear(c, 4 + 4 * l, c->tmp, c->h, rows, 0, ACT_GELU, NULL);
    return T;
}

/* ---------------------------------------------------------------- seg_mlp's decoder */

/* Level i of the decoder (struct evrt_decoder) on the stream c->x (B, T, D)
 * as its block left it: the patch tokens' LayerNorm f_i into c->tmp (free
 * between a block's residual add and the next block's projection), as
 * (B * N, D) rows, quantized for linear_c[i] when next; in units of rows
 * (rows_of), each row the same code whoever computes it. */
struct level_job {
    const struct evrt_kernels *k;
    const float *x;  /* (B, T, D) */
    float *out;      /* (B * N, D) */
    const float *w, *b;
    const struct evrt_linear *next;
    void *xq;
    int N, T, D, rows;
    struct rowsplit rs;
};

static void level_unit(void *arg, int tid, int u)
{
    const struct level_job *j = arg;
    int r0, r1, g;
    (void)tid;
    unit_rows(&j->rs, u, &r0, &r1);
    if (r0 == r1) return;
    for (g = r0; g < r1;) { /* a run of one image's patch tokens */
        int b = g / j->N, n0 = g % j->N, n1 = imin(j->N, n0 + (r1 - g));
        j->k->layernorm(j->out + (size_t)g * j->D, j->x + ((size_t)b * j->T + 1 + n0) * j->D, j->w, j->b, n1 - n0,
                        j->D);
        g += n1 - n0;
    }
    if (j->next) quant_rows(j->k, j->xq, j->next, j->out, r0, r1);
}

static void level(evrt_ctx *c, int i, int B)
{
    const struct evrt_model *m = c->m;
    const struct evrt_decoder *d = m->decoder;
    int layer = 2 + 4 * m->depth + i, last = i == d->levels - 1;
    struct level_job j;
    j.k = c->k;
    j.x = c->x;
    j.out = c->tmp;
    j.w = last ? m->norm_w : d->norm_w[i];
    j.b = last ? m->norm_b : d->norm_b[i];
    j.next = fuse_quant(c, layer) ? evrt_model_layer(m, layer) : NULL;
    j.xq = c->xq;
    j.N = c->N;
    j.T = c->T;
    j.D = m->dim;
    j.rows = B * c->N;
    j.rs = rows_of(c, j.rows);
    parallel(c, level_unit, &j, rows_units(&j.rs), (size_t)j.rows * j.D < 8192);
    linear(c, layer, c->dec_e + (size_t)i * j.rows * d->dim, c->tmp, j.rows, j.next != NULL, ACT_NONE, NULL);
}

/* [e_0 | ... | e_{L-1}] row by row into c->dec_cat (quantized for the
 * fuse layer when next), in units of rows. */
struct concat_job {
    const struct evrt_kernels *k;
    const float *e; /* (L, rows, C) */
    float *cat;     /* (rows, L * C) */
    const struct evrt_linear *next;
    void *xq;
    int L, C, rows;
    struct rowsplit rs;
};

static void concat_unit(void *arg, int tid, int u)
{
    const struct concat_job *j = arg;
    int r0, r1, r, i;
    size_t C = (size_t)j->C;
    (void)tid;
    unit_rows(&j->rs, u, &r0, &r1);
    if (r0 == r1) return;
    for (r = r0; r < r1; r++)
        for (i = 0; i < j->L; i++)
            memcpy(j->cat + ((size_t)r * j->L + i) * C, j->e + ((size_t)i * j->rows + r) * C, sizeof(float) * C);
    if (j->next) quant_rows(j->k, j->xq, j->next, j->cat, r0, r1);
}

/* After the last level: the concatenation, the fuse layer, the ReLU (in
 * the head's input region) and the head, into logits (B * N, K). */
static void decode(evrt_ctx *c, int B, float *logits)
{
    const struct evrt_model *m = c->m;
    const struct evrt_decoder *d = m->decoder;
    int fuse = 2 + 4 * m->depth + d->levels;
    struct concat_job j;
    j.k = c->k;
    j.e = c->dec_e;
    j.cat = c->dec_cat;
    j.next = fuse_quant(c, fuse) ? evrt_model_layer(m, fuse) : NULL;
    j.xq = c->xq;
    j.L = d->levels;
    j.C = d->dim;
    j.rows = B * c->N;
    j.rs = rows_of(c, j.rows);
    parallel(c, concat_unit, &j, rows_units(&j.rs), (size_t)j.rows * j.L * j.C < 8192);
    linear(c, fuse, c->dec_u, c->dec_cat, j.rows, j.next != NULL, ACT_NONE, NULL);
    linear(c, 1 + 4 * m->depth, logits, c->dec_u, j.rows, 0, ACT_RELU, NULL);
}

/* The model on B checked images: logits (B, evrt_model_outputs / B). */
static int forward(evrt_ctx *c, const uint8_t *images, int B, float *logits)
{
    const struct evrt_model *m = c->m;
    int T = c->T, N = c->N, D = m->dim, b, i, l, q, seg = m->head_kind != EVRT_HEAD_CLASS;
    int mlp = m->head_kind == EVRT_HEAD_SEG_MLP;
    struct patch_job pj;
    /* dtypes and scales may have changed since the last call */
    if (evrt_model_check(m, c->err, sizeof c->err)) return EVRT_EINVAL;
    if (model_merges(m) && !c->size)
        return evrt_errf(c->err, sizeof c->err, "merge_r was set after the context was created");
    if (memcmp(c->lut_key, m->mean, sizeof(float) * (size_t)m->channels) ||
        memcmp(c->lut_key + EVRT_MAX_CHANNELS, m->std, sizeof(float) * (size_t)m->channels)) {
        evrt_patchify_lut(c->lut, m->mean, m->std, m->channels);
        memcpy(c->lut_key, m->mean, sizeof c->lut_key / 2);
        memcpy(c->lut_key + EVRT_MAX_CHANNELS, m->std, sizeof c->lut_key / 2);
    }
    pj.c = c;
    pj.img = images;
    pj.rs = rows_of(c, B * N);
    parallel(c, patch_unit, &pj, rows_units(&pj.rs), (size_t)B * N * c->PI < 8192);
    /* the patch embeddings into c->tmp, free until the first projection */
    linear(c, 0, c->tmp, c->patches, B * N, 0, 0, NULL);
    for (i = 0; i < B * T && c->size; i++) c->size[i] = 1.0f;
    c->bias_now = NULL;
    q = embed(c, c->tmp, B);
    for (l = 0; l < m->depth; l++) {
        int last = l == m->depth - 1, lv = evrt_model_level_of(m, l);
        /* a class head needs only the class token out of the last block */
        T = block(c, l, B, T, last && !seg, q);
        /* the residual add, and the next block's LN1 (or the final norm
         * on the class tokens), quantized for the layer after it, unless
         * a decoder level's layer takes c->xq first */
        if (!last)
            q = addln(c, c->tmp, m->blocks[l + 1].ln1_w, m->blocks[l + 1].ln1_b, B * T, lv < 0 ? 1 + 4 * (l + 1) : -1);
        else if (!seg)
            q = addln(c, c->tmp, m->norm_w, m->norm_b, B, 1 + 4 * m->depth);
        else if (mlp)
            addln(c, c->tmp, NULL, NULL, B * T, -1); /* the residual add alone */
        /* seg_mlp: the level's features, before the next block overwrites
         * the stream */
        if (lv >= 0) level(c, lv, B);
    }
    if (mlp) {
        decode(c, B, logits);
    } else if (seg) {
        /* the final norm on every token, then the patch tokens alone,
         * compacted to (B * N, D), go through the head (quantized there:
         * the class token's row is neither computed nor calibrated) */
        addln(c, c->tmp, m->norm_w, m->norm_b, B * T, -1);
        for (b = 0; b < B; b++)
            memmove(c->ln + (size_t)b * N * D, c->ln + ((size_t)b * T + 1) * D, sizeof(float) * (size_t)N * D);
        linear(c, 1 + 4 * m->depth, logits, c->ln, B * N, 0, 0, NULL);
    } else {
        /* c->ln is now (B, D): the class tokens, normalised */
        linear(c, 1 + 4 * m->depth, logits, c->ln, B, q, 0, NULL);
    }
    c->bias_now = NULL;
    c->err[0] = '\0';
    return EVRT_OK;
}

int evrt_infer(evrt_ctx *c, const uint8_t *images, int B, float *logits)
{
    if (B < 1 || B > c->max_batch)
        return evrt_errf(c->err, sizeof c->err, "batch %d outside [1, %d]", B, c->max_batch);
    if (!images || !logits) return evrt_errf(c->err, sizeof c->err, "images and logits must not be NULL");
    if (c->m->head_kind != EVRT_HEAD_CLASS)
        return evrt_errf(c->err, sizeof c->err, "a segmentation model: its outputs come from evrt_infer_seg");
    return forward(c, images, B, logits);
}

/* The decoder in units of SEG_ROWS output rows of one image. */
#define SEG_ROWS 8

struct seg_job {
    const evrt_ctx *c;
    const float *z; /* (B, N, K) */
    float *scores;  /* (B, S, S, K) or NULL */
    uint8_t *mask;  /* (B, S, S) or NULL */
    int G, K, S, units; /* units per image */
};

static void seg_unit(void *arg, int tid, int u)
{
    const struct seg_job *j = arg;
    int b = u / j->units, y0 = u % j->units * SEG_ROWS, y1 = imin(y0 + SEG_ROWS, j->S);
    size_t px = (size_t)j->S * j->S;
    j->c->k->seg_decode(j->scores ? j->scores + (b * px + (size_t)y0 * j->S) * j->K : NULL,
                        j->mask ? j->mask + b * px + (size_t)y0 * j->S : NULL,
                        j->c->seg_scratch + evrt_seg_scratch(j->S, j->K) * (size_t)tid,
                        j->z + (size_t)b * j->G * j->G * j->K, j->G, j->K, j->S, y0, y1);
}

int evrt_infer_seg(evrt_ctx *c, const uint8_t *images, int B, float *logits, float *scores, uint8_t *mask)
{
    const struct evrt_model *m = c->m;
    struct seg_job j;
    int rc;
    if (B < 1 || B > c->max_batch)
        return evrt_errf(c->err, sizeof c->err, "batch %d outside [1, %d]", B, c->max_batch);
    if (!images || (!logits && !scores && !mask))
        return evrt_errf(c->err, sizeof c->err, "images and one of logits, scores and mask must not be NULL");
    if (m->head_kind == EVRT_HEAD_CLASS)
        return evrt_errf(c->err, sizeof c->err, "a class-head model: its logits come from evrt_infer");
    if (mask && m->classes > 256)
        return evrt_errf(c->err, sizeof c->err, "a mask of bytes takes at most 256 classes, not %d", m->classes);
    j.z = logits ? logits : c->seg_z;
    rc = forward(c, images, B, (float *)j.z);
    if (rc || (!scores && !mask)) return rc;
    j.c = c;
    j.scores = scores;
    j.mask = mask;
    j.G = m->img_size / m->patch;
    j.K = m->classes;
    j.S = m->img_size;
    j.units = blocks_of(j.S, SEG_ROWS);
    parallel(c, seg_unit, &j, B * j.units, (double)B * j.S * j.S * j.K < 65536.0);
    return EVRT_OK;
}
