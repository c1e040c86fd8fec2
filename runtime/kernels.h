/* kernels.h: the float kernels of libevrt's forward pass (internal; the
 * integer-path kernels, which are part of the specification, are declared in
 * evrt.h).  Plain loops; a later issue adds NEON twins. */
#ifndef EVRT_KERNELS_H
#define EVRT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "evrt.h"

/* out[b, gy*G+gx, c*P*P + py*P + px] = (img[b, gy*P+py, gx*P+px, c]/255 - mean[c]) / std[c] */
void evrt_patchify_ref(float *out /* (B, G*G, C*P*P) */, const uint8_t *img /* (B, H, H, C) */,
                       const float *mean /* (C) */, const float *std /* (C) */, int B, int H,
                       int C, int P);

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

#endif
