/* kernels.h: the kernels of libevrt's forward pass (internal; the
 * integer-path reference kernels, which are part of the specification, are
 * declared in evrt.h).
 *
 * Every kernel has a plain _ref twin.  The linear layers also come in
 * instruction-set variants chosen at run time (struct evrt_kernels): the
 * INT8 ones reproduce the _ref bit for bit (int32 sums are exact in any
 * order; the float rescale is the same C expression, built with
 * -ffp-contract=off), the float32 ones differ from the _ref by rounding
 * only (fused multiply-adds, another summation order) and are tested with a
 * tolerance.  Every variant computes each output element with the same
 * sequence of operations whatever the tile it falls in, so results do not
 * depend on how the output channels are split between threads. */
#ifndef EVRT_KERNELS_H
#define EVRT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <math.h>

#include "evrt.h"

/* out[b, gy*G+gx, c*P*P + py*P + px] = (img[b, gy*P+py, gx*P+px, c]/255 - mean[c]) / std[c] */
void evrt_patchify_ref(float *out /* (B, G*G, C*P*P) */, const uint8_t *img /* (B, H, H, C) */,
                       const float *mean /* (C) */, const float *std /* (C) */, int B, int H,
                       int C, int P);

/* evrt_patchify_ref's per-pixel value for every byte: lut[c * 256 + v] =
 * (v / 255 - mean[c]) / std[c], the same float operations. */
void evrt_patchify_lut(float *lut /* (C, 256) */, const float *mean /* (C) */,
                       const float *std /* (C) */, int C);
/* evrt_patchify_ref by table look-up: the same bits, no divisions. */
void evrt_patchify_fast(float *out /* (B, G*G, C*P*P) */, const uint8_t *img /* (B, H, H, C) */,
                        const float *lut /* (C, 256) */, int B, int H, int C, int P);
/* evrt_patchify_fast on the patches [p0, p1) of the B * G * G (a row
 * each), for a parallel region: out and img are the whole batch's. */
void evrt_patchify_rows(float *out /* (B, G*G, C*P*P) */, const uint8_t *img /* (B, H, H, C) */,
                        const float *lut /* (C, 256) */, int H, int C, int P, int p0, int p1);

/* out = (x - mean) / sqrt(var + 1e-6) * w + b per row (biased variance). */
void evrt_layernorm_ref(float *out /* (N, D) */, const float *x /* (N, D) */,
                        const float *w /* (D) */, const float *b /* (D) */, int N, int D);

/* x Phi(x) with libm erf, in place. */
void evrt_gelu_ref(float *x /* (n) */, size_t n);

/* Multi-head attention on a fused qkv, for the first nq tokens as queries
 * (nq = T, or 1 in the last block) and all T tokens as keys and values:
 *   out[b, t, h*d:(h+1)*d] = softmax(q_t k^T / sqrt(d)) v     for t < nq
 * scores is scratch of T floats. */
void evrt_attention_ref(float *out /* (B, nq, H*d) */, float *scores /* (T) */,
                        const float *qkv /* (B, T, 3*H*d) */, int B, int T, int nq, int H, int d);

/* x += y */
void evrt_add_ref(float *x /* (n) */, const float *y /* (n) */, size_t n);

/* sq(x, s) of evrt.h's INT8 attention with inv = 1.0f / s:
 * clamp(rint(x * inv), -127, 127), NaN 0 (clamped before rounding: the
 * bounds are integers, so the same).  rint as (t + 1.5 * 2^23) - 1.5 * 2^23,
 * exact for |t| <= 127 and rounding ties to even like rintf, which a
 * baseline x86-64 build would call in libm for every element. */
static inline int8_t evrt_qsym(float x, float inv)
{
    float t = x * inv;
    if (t != t) t = 0.0f;
    t = t < -127.0f ? -127.0f : t > 127.0f ? 127.0f : t;
    return (int8_t)(int)((t + 12582912.0f) - 12582912.0f);
}

/* The softmax step of INT8 attention (evrt.h) on rows of S (n, T) holding
 * the exact int32 sums a as floats (|a| < 2^24): replaced by P, integers in
 * [0, 127] as floats; c = (q_scale * k_scale) / sqrtf(d); E is scratch. */
void evrt_softmax_i8(float *S /* (n, T) */, int n, int T, float c, float p_scale,
                     int32_t *E /* (T) */, const float *bias /* (T) or NULL */);

/* ---- instruction-set variants ---- */

enum evrt_isa {
    EVRT_ISA_REF = 0,     /* the plain C kernels */
    EVRT_ISA_AVX2,        /* x86-64 AVX2 + FMA: int8 via vpmaddwd on int16 */
    EVRT_ISA_AVX512VNNI,  /* x86-64 AVX-512 F/BW/VNNI: vpdpbusd, u8 x s8 */
    EVRT_ISA_NEON,        /* AArch64 ARMv8.0: smull/smlal + sadalp */
    EVRT_ISA_DOTPROD,     /* AArch64 ARMv8.2 sdot */
    EVRT_ISA_AMX,         /* x86-64 AVX-512 VNNI with AMX tiles for the packed int8 products */
    EVRT_ISA_COUNT
};

/* Quantizes x (N, I) exactly as evrt_quantize_act_ref and stores it in the
 * variant's layout (the ref's: int8 xq rows of I; AVX2: int16 xq - zero,
 * rows of ld; VNNI and AMX: uint8 xq + 128, rows of ld; NEON and dotprod: int8 xq,
 * rows of I rounded up to 16; padding zero). */
typedef void (*evrt_quant_fn)(void *dst, const float *x, int N, int I, float scale,
                              int32_t zero);
/* Columns [o0, o1) of y (N, O) = the int8 linear of evrt_linear_i8_ref on
 * the quantized rows xp from the variant's evrt_quant_fn; wsum (O) holds
 * sum_i wq[o, i] (variants that work on xq + 128 or xq need it). */
typedef void (*evrt_i8_fn)(float *y, const void *xp, int32_t x_zero, float x_scale,
                           const int8_t *wq, const int32_t *wsum, const float *w_scale,
                           const float *b, int N, int I, int O, int o0, int o1);
/* Columns [o0, o1) of y = x w^T + b with row strides (ldy, ldx, ldw). */
typedef void (*evrt_f32_fn)(float *y, size_t ldy, const float *x, size_t ldx, const float *w,
                            size_t ldw, const float *b, int N, int I, int o0, int o1);

/* Panel kernels: the weights are packed once (at context create) so that
 * the kernel broadcasts one activation and multiply-adds it into vectors of
 * 16 output channels: no horizontal sums.
 *
 * float32: y[n, o] = sum_k x[n, k] B[k, o] (+ b[o]) for o in [o0, o1), o0 a
 * multiple of 16; element (k, o) of B at bm[(o / 16) pstride + k ldb + o % 16].
 * Packed weights (evrt_pack_f32): ldb 16, pstride 16 K.  A row-major (K, O)
 * matrix: ldb its row stride, pstride 16.  Each y element is one chain of
 * fused multiply-adds over k in order, then + b[o]: the same in any tile. */
typedef void (*evrt_f32p_fn)(float *y, size_t ldy, const float *x, size_t ldx, const float *bm,
                             size_t ldb, size_t pstride, const float *b, int N, int K, int o0,
                             int o1);
/* Packs int8 weights (O, I) into the variant's panel layout
 * (evrt_pack_i8_bytes(isa, O, I) bytes). */
typedef void (*evrt_pack_i8_fn)(void *p, const int8_t *wq, int O, int I);
/* evrt_i8_fn on packed weights wp; o0 a multiple of 16. */
typedef void (*evrt_i8p_fn)(float *y, const void *xp, int32_t x_zero, float x_scale,
                            const void *wp, const int32_t *wsum, const float *w_scale,
                            const float *b, int N, int I, int O, int o0, int o1);

/* Attention, one work item: queries [q0, q0 + nr) of head h of one image
 * (qkv: that image's (T, 3I) rows; bias: its keys' proportional-attention
 * bias log s (T), or NULL: none), output rows of d floats at out, row
 * stride ldo.  fresh: the first item of this (image, head) on this
 * scratch; the per-head work (K^T; or K and V^T quantized and packed) is
 * done then and reused by the items that follow.  Every output element is
 * computed the same way whatever the item it falls in. */
struct evrt_kernels;
#define EVRT_ATT_ROWS 32 /* query rows per work item (two AMX row tiles) */

/* float32: scratch of d*T + EVRT_ATT_ROWS*T floats (K^T, then scores; the
 * ref uses T). */
typedef void (*evrt_att_fn)(const struct evrt_kernels *k, float *out, size_t ldo, float *scratch,
                            const float *qkv, const float *bias, int T, int I, int h, int d, int q0, int nr,
                            int fresh);

/* INT8 attention's scratch, one per thread (carved by evrt.c; the ref
 * uses kq, vt, xq, acc and E only). */
struct evrt_att8 {
    int8_t *kq;         /* (T, d) the head's quantized K */
    int8_t *vt;         /* (d, T) its quantized V, transposed */
    void *kp, *vp;      /* kq and vt packed for the variant's i8p */
    void *xq;           /* quantized rows of an item, the variant's layout */
    int32_t *kws, *vws; /* (T), (d) weight sums of kq and vt */
    int32_t *acc, *E;   /* (T) */
    float *ones, *vs;   /* (T) ones, (d) v_scale */
    float *qf, *S, *os; /* (ATT_ROWS, d), (ATT_ROWS, T), (ATT_ROWS, d) */
};

/* The decoder slot: per-pixel scores and the mask of output rows [y0, y1)
 * from one image's per-patch logits z, each output optional. */
typedef void (*evrt_seg_fn)(float *scores /* (y1 - y0, S, K) or NULL */, uint8_t *mask /* (y1 - y0, S) or NULL */,
                            float *scratch, const float *z /* (G, G, K) */, int G, int K, int S, int y0, int y1);
/* Floats of scratch a decoder call needs. */
size_t evrt_seg_scratch(int S, int K);
/* evrt_seg_decode_ref (the specification, no scratch) in the slot's form */
void evrt_seg_rows_ref(float *scores, uint8_t *mask, float *scratch, const float *z, int G, int K, int S, int y0,
                       int y1);
/* The same bits, separably: each grid row's horizontal interpolation once
 * per run of output rows that share it (h0 and h1 of the specification),
 * then one product and sum per score. */
void evrt_seg_rows_fast(float *scores, uint8_t *mask, float *scratch, const float *z, int G, int K, int S, int y0,
                        int y1);

/* INT8 attention (evrt.h) with scales {q, k, v, p}. */
typedef void (*evrt_att8_fn)(const struct evrt_kernels *k, float *out, size_t ldo, struct evrt_att8 *a,
                             const float *qkv, const float *bias, int T, int I, int h, int d, int q0, int nr,
                             int fresh, const float *scales);

struct evrt_kernels {
    int isa;              /* enum evrt_isa */
    const char *name;     /* "ref", "avx2", "avx512vnni", "neon", "dotprod", "amx" */
    evrt_quant_fn quant;
    evrt_i8_fn i8;
    evrt_f32_fn f32;
    int needs_wsum;       /* 1 when i8 reads wsum */
    evrt_f32p_fn f32p;    /* NULL: no panel kernels (use f32) */
    evrt_pack_i8_fn pack_i8;
    evrt_i8p_fn i8p;      /* NULL: no packed int8 kernel (use i8) */
    /* rows of S (n, T) = softmax(S * scale) in place (evrt_softmax_fast or
     * an explicit SIMD twin; NULL in the ref, whose attention has its own) */
    void (*softmax)(float *S, int n, int T, float scale);
    /* LayerNorm (N, D) rows (evrt_layernorm_ref, _fast or a SIMD twin) */
    void (*layernorm)(float *out, const float *x, const float *w, const float *b, int N, int D);
    /* GELU in place (evrt_gelu_ref or evrt_gelu_fast) */
    void (*gelu)(float *x, size_t n);
    evrt_att_fn attention;     /* evrt_att_rows_ref or _fast */
    evrt_att8_fn attention_i8; /* evrt_att_i8_rows_ref or _fast */
    /* For evrt_att_i8_rows_fast: a head's K and V quantized (sq with the
     * inverse scales ik, iv) straight into kp and vp, the layout pack_i8
     * gives K (T, d) and V^T (d, T), with their sums kws and vws; NULL:
     * quantize, then pack_i8 and evrt_wsum. */
    void (*att8_kv)(struct evrt_att8 *a, const float *qkv, int T, int I, int h, int d, float ik, float iv);
    /* Shared K and V (evrt.c, more than one thread): tokens [t0, t1) of
     * head h (t0 a multiple of 16, t1 one too or T) quantized straight
     * into a->kp and a->vp where the variant's attention_i8 reads them
     * (the range that ends at T writes the padding too), their sums into
     * a->kws[t0, t1), and a->vws = the range's sum of each of V's d
     * dimensions (a->vt: scratch).  So the threads that produced a head's
     * rows of K and V quantize them, and the head's vws is the sum of its
     * ranges'.  NULL: each thread quantizes a whole head itself (fresh). */
    void (*att8_kv_rows)(struct evrt_att8 *a, const float *qkv, int T, int I, int h, int d, int t0, int t1,
                         float ik, float iv);
    /* the segmentation decoder (evrt.h): output rows [y0, y1) of one
     * image, evrt_seg_rows_ref or _fast (scratch: evrt_seg_scratch) */
    evrt_seg_fn seg_decode;
};

/* The attention items: the _ref ones compute the specification plainly;
 * the _fast ones run k's panel kernels (f32p and softmax; quant, pack_i8
 * and i8p with the integer softmax evrt_softmax_i8). */
void evrt_att_rows_ref(const struct evrt_kernels *k, float *out, size_t ldo, float *scratch,
                       const float *qkv, const float *bias, int T, int I, int h, int d, int q0, int nr,
                       int fresh);
void evrt_att_rows_fast(const struct evrt_kernels *k, float *out, size_t ldo, float *scratch,
                        const float *qkv, const float *bias, int T, int I, int h, int d, int q0, int nr,
                        int fresh);
void evrt_att_i8_rows_ref(const struct evrt_kernels *k, float *out, size_t ldo, struct evrt_att8 *a,
                          const float *qkv, const float *bias, int T, int I, int h, int d, int q0, int nr,
                          int fresh, const float *scales);
void evrt_att_i8_rows_fast(const struct evrt_kernels *k, float *out, size_t ldo, struct evrt_att8 *a,
                           const float *qkv, const float *bias, int T, int I, int h, int d, int q0, int nr,
                           int fresh, const float *scales);

/* Panel packing for evrt_f32p_fn: panel j (outputs 16j..16j+15, zero
 * padded) at p + 16 j I, element (i, c) at i * 16 + c. */
size_t evrt_pack_f32_bytes(int O, int I);
void evrt_pack_f32(float *p, const float *w /* (O, I) */, int O, int I);
/* Bytes of the variant's packed int8 weights (0: it has no packed kernel). */
size_t evrt_pack_i8_bytes(int isa, int O, int I);

/* Bytes of quantized activations for N rows of I in the variant's layout. */
size_t evrt_quant_bytes(int isa, int N, int I);
/* 1 when the variant is compiled in and the CPU runs it. */
int evrt_isa_available(int isa);
/* The fastest available variant. */
int evrt_isa_best(void);
/* The variant called name ("best" is evrt_isa_best()), or -1. */
int evrt_isa_parse(const char *name);
/* The table of an available variant. */
const struct evrt_kernels *evrt_kernels_get(int isa);

/* sum_i wq[o, i] for each o. */
void evrt_wsum(int32_t *wsum /* (O) */, const int8_t *wq /* (O, I) */, int O, int I);

/* Reference variant entries (the _ref kernels on a column range). */
void evrt_quant_ref(void *dst, const float *x, int N, int I, float scale, int32_t zero);
void evrt_i8_cols_ref(float *y, const void *xp, int32_t x_zero, float x_scale, const int8_t *wq,
                      const int32_t *wsum, const float *w_scale, const float *b, int N, int I,
                      int O, int o0, int o1);
void evrt_f32_cols_ref(float *y, size_t ldy, const float *x, size_t ldx, const float *w,
                       size_t ldw, const float *b, int N, int I, int o0, int o1);

/* x86 and ARM variants (kernels_x86.c, kernels_arm.c); NULL-free only when
 * compiled in. */
const struct evrt_kernels *evrt_kernels_x86(int isa);
const struct evrt_kernels *evrt_kernels_arm(int isa);

/* ---- Token Merging (evrt.h), one image's T tokens ---- */

#define EVRT_MERGE_MAX_D 512 /* the widest head a merging block may have */

/* Tokens [t0, t1) of the metric (keys averaged over the heads) normalised:
 * even token 2a into row a of an (na, d), odd token 2b + 1 into column b
 * of bt (d, ldb). */
void evrt_merge_prep(float *an /* (na, d) */, float *bt /* (d, ldb) */, size_t ldb,
                     const float *qkv /* (T, 3 I) */, int I, int H, int d, int t0, int t1);
/* S (n, nb) = an bt: each element one fmaf chain over i in order from 0. */
void evrt_merge_sim_ref(float *S /* (n, nb) */, const float *an /* (n, d) */, const float *bt /* (d, ldb) */,
                        size_t ldb, int n, int nb, int d);
/* A tokens [a0, a1): best[a] the index in B of the most similar, score[a]
 * that similarity (k's f32p for the product, or evrt_merge_sim_ref: the
 * same bits); S is scratch of (a1 - a0) nb floats. */
void evrt_merge_best(const struct evrt_kernels *k, int *best /* (na) */, float *score /* (na) */,
                     float *S, const float *an /* (na, d) */, const float *bt /* (d, ldb) */, size_t ldb,
                     int nb, int d, int a0, int a1);
/* dst[i] in [0, T - r): the output token of input token i; order is
 * scratch of r ints. */
void evrt_merge_match(int *dst /* (T) */, int *order /* (r) */, const int *best /* (na) */,
                      const float *score /* (na) */, int T, int r);
/* Output j's inputs src[start[j] .. start[j + 1]) in input order, and its
 * size so[j], summed in that order; n = T - r. */
void evrt_merge_sources(int *start /* (n + 1) */, int *src /* (T) */, float *so /* (n) */,
                        const int *dst /* (T) */, const float *s /* (T) */, int T, int n);
/* Output rows [j0, j1): out[j] = sum s[i] (x[i] + y[i]) / so[j] over j's
 * inputs (y NULL: x[i] alone). */
void evrt_merge_rows(float *out /* (n, D) */, const float *x /* (T, D) */, const float *y /* (T, D) */,
                     const float *s /* (T) */, const float *so /* (n) */, const int *start, const int *src,
                     int j0, int j1, int D);

/* ---- fast float parts: portable C, the same on every target ---- */

/* GELU with a rational erf (error < 1.5e-6 against double erf: absolute
 * where |GELU| < 1, relative above; tests/test_kernels.c), in place. */
void evrt_gelu_fast(float *x /* (n) */, size_t n);
/* exp for softmax arguments x <= 0 (Cody-Waite reduction, degree-6
 * polynomial; relative error < 3e-7; x < -87.3 gives exp(-87.3)). */
void evrt_exp_fast(float *x /* (n) */, size_t n);

/* LayerNorm as evrt_layernorm_ref with partial sums in vector lanes. */
void evrt_layernorm_fast(float *out /* (N, D) */, const float *x /* (N, D) */,
                         const float *w /* (D) */, const float *b /* (D) */, int N, int D);
/* Rows of S = softmax(S * scale) with evrt_exp_fast, in place. */
void evrt_softmax_fast(float *S /* (n, T) */, int n, int T, float scale);
/* x += y */
void evrt_add_fast(float *x /* (n) */, const float *y /* (n) */, size_t n);

#endif
