/* ops.h: the operations of a ViT, as free functions.
 *
 * Argument order (DEVELOPERS.md): outputs first, then what backward needs,
 * then inputs, weights, sizes.  Inputs are const.  Fast kernels (OpenBLAS,
 * OpenMP) have a plain-loop *_ref twin that the tests compare against.
 * Backward functions (next to their forward) accumulate into gradients. */
#ifndef EVIT_OPS_H
#define EVIT_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "evrt.h"

/* LayerNorm's eps: timm's, and the runtime's (one number for both). */
#define EVIT_LN_EPS EVRT_LN_EPS

/* Image batch to patch rows, normalising on the way:
 *   out[b, gy*G+gx, c*P*P + py*P + px] = (img[b, gy*P+py, gx*P+px, c]/255 - mean[c]) / std[c]
 * The column order matches a flattened PyTorch conv weight (D, C, P, P). */
void evit_patchify(float *out /* (B, G*G, C*P*P) */, const uint8_t *img /* (B, H, W, C) */,
                   const float *mean /* (C) */, const float *std /* (C) */,
                   int B, int H, int W, int C, int P);

/* out = in @ w^T + b */
void evit_linear_forward(float *out /* (N, O) */, const float *in /* (N, I) */,
                         const float *w /* (O, I) */, const float *b /* (O) or NULL */,
                         int N, int I, int O);
void evit_linear_forward_ref(float *out /* (N, O) */, const float *in /* (N, I) */,
                             const float *w /* (O, I) */, const float *b /* (O) or NULL */,
                             int N, int I, int O);
/* The same with row strides (leading dimensions, in floats): row n of in
 * starts at in + n*ldi, of out at out + n*ldo.  For a subset of rows (the
 * class tokens of a batch: ld = T*D) or a block of columns of a wider matrix
 * (the k|v thirds of qkv: ld = 3*I).  w is contiguous, (O, I). */
void evit_linear_forward_ld(float *out, int ldo, const float *in, int ldi,
                            const float *w /* (O, I) */, const float *b /* (O) or NULL */,
                            int N, int I, int O);
/* Gradients of out = in @ w^T + b, accumulated:
 *   din += dout @ w,   dw += dout^T @ in,   db += sum_n dout[n]
 * din NULL skips the input gradient (patch embedding: the image has none);
 * db NULL for a layer without bias. */
void evit_linear_backward(float *din /* (N, I) or NULL */, float *dw /* (O, I) */,
                          float *db /* (O) or NULL */, const float *dout /* (N, O) */,
                          const float *in /* (N, I) */, const float *w /* (O, I) */,
                          int N, int I, int O);
void evit_linear_backward_ref(float *din /* (N, I) or NULL */, float *dw /* (O, I) */,
                              float *db /* (O) or NULL */, const float *dout /* (N, O) */,
                              const float *in /* (N, I) */, const float *w /* (O, I) */,
                              int N, int I, int O);
/* The same with row strides, as evit_linear_forward_ld: row n of din at
 * din + n*lddin, of dout at dout + n*lddout, of in at in + n*ldi. */
void evit_linear_backward_ld(float *din, int lddin, float *dw /* (O, I) */,
                             float *db /* (O) or NULL */, const float *dout, int lddout,
                             const float *in, int ldi, const float *w /* (O, I) */,
                             int N, int I, int O);

/* out = (in - mean) * rstd * w + b over the last axis, eps = 1e-6. */
void evit_layernorm_forward(float *out /* (N, D) */, float *mean /* (N) */, float *rstd /* (N) */,
                            const float *in /* (N, D) */, const float *w /* (D) */,
                            const float *b /* (D) */, int N, int D);
/* Gradients of the LayerNorm above, from its saved mean and rstd.  With
 * xh = (x - mean) * rstd and g = dout * w (per row):
 *   dw += sum_n dout * xh,   db += sum_n dout
 *   din += rstd * (g - mean_i(g) - xh * mean_i(g * xh)) */
void evit_layernorm_backward(float *din /* (N, D) */, float *dw /* (D) */, float *db /* (D) */,
                             const float *dout /* (N, D) */, const float *in /* (N, D) */,
                             const float *mean /* (N) */, const float *rstd /* (N) */,
                             const float *w /* (D) */, int N, int D);

/* Exact (erf) GELU: x Phi(x) = x * 0.5 * (1 + erf(x / sqrt 2)), not the tanh
 * approximation.  The fast version evaluates Phi with a vectorised erfc fit
 * (error ~1e-7, the size of float rounding); the _ref twin uses libm erf in
 * double. */
void evit_gelu_forward(float *out /* (n) */, const float *in /* (n) */, size_t n);
void evit_gelu_forward_ref(float *out /* (n) */, const float *in /* (n) */, size_t n);
/* din += dout * (Phi(x) + x phi(x)), Phi and phi the standard normal CDF and
 * density (d/dx of x Phi(x)). */
void evit_gelu_backward(float *din /* (n) */, const float *dout /* (n) */,
                        const float *in /* (n) */, size_t n);
void evit_gelu_backward_ref(float *din /* (n) */, const float *dout /* (n) */,
                            const float *in /* (n) */, size_t n);

/* ReLU, out = max(x, 0): SegFormer's decoder after its fuse layer. */
void evit_relu_forward(float *out /* (n) */, const float *in /* (n) */, size_t n);
/* din += dout where x > 0 (at x = 0 the derivative taken is 0, as
 * PyTorch's). */
void evit_relu_backward(float *din /* (n) */, const float *dout /* (n) */, const float *in /* (n) */,
                        size_t n);

/* out = a + b; out may alias a. */
void evit_residual_forward(float *out /* (n) */, const float *a /* (n) */,
                           const float *b /* (n) */, size_t n);
/* da += dout, db += dout.  Neither may alias dout. */
void evit_residual_backward(float *da /* (n) */, float *db /* (n) */, const float *dout /* (n) */,
                            size_t n);

/* x[b,0] = cls + pos[0];  x[b,1+i] = pe[b,i] + pos[1+i]. */
void evit_embed_forward(float *x /* (B, T, D) */, const float *pe /* (B, T-1, D) */,
                        const float *cls /* (D) */, const float *pos /* (T, D) */,
                        int B, int T, int D);
/* dpe[b,i] += dx[b,1+i],  dcls += sum_b dx[b,0],  dpos[t] += sum_b dx[b,t]. */
void evit_embed_backward(float *dpe /* (B, T-1, D) */, float *dcls /* (D) */,
                         float *dpos /* (T, D) */, const float *dx /* (B, T, D) */,
                         int B, int T, int D);

/* Multi-head self-attention core on a fused qkv projection:
 *   q, k, v of head h = qkv[..., h*d : (h+1)*d] in the q, k, v thirds
 *   att = softmax(q k^T / sqrt(d)),  out[..., h*d:(h+1)*d] = att v
 * Batched over (b, h) with OpenMP; the per-head products run in vectorised
 * kernels of ops.c rather than sgemm, whose packing costs more than the
 * arithmetic at these sizes (see there). */
void evit_attention_forward(float *out /* (B, T, H*d) */, float *att /* (B, H, T, T) */,
                            const float *qkv /* (B, T, 3*H*d) */, int B, int T, int H, int d);
void evit_attention_forward_ref(float *out /* (B, T, H*d) */, float *att /* (B, H, T, T) */,
                                const float *qkv /* (B, T, 3*H*d) */, int B, int T, int H, int d);
/* The same for the first nq tokens' queries only (1 <= nq <= T), against
 * the keys and values of all T tokens: what the last block needs, whose
 * class token alone reaches the head (nq = 1).  Rows nq..T-1 of the q third
 * of qkv are not read.  nq = T is evit_attention_forward. */
void evit_attention_forward_q(float *out /* (B, nq, H*d) */, float *att /* (B, H, nq, T) */,
                              const float *qkv /* (B, T, 3*H*d) */, int B, int T, int nq, int H,
                              int d);
void evit_attention_forward_q_ref(float *out /* (B, nq, H*d) */, float *att /* (B, H, nq, T) */,
                                  const float *qkv /* (B, T, 3*H*d) */, int B, int T, int nq,
                                  int H, int d);
/* The same with a per-key bias added to the scores before the softmax,
 *   att = softmax(q k^T / sqrt(d) + bias[b, key])
 * (bias NULL: none).  Token Merging's proportional attention takes
 * bias = log of each token's size (merge.h): a token that stands for s
 * patches is attended to as s copies of it would be.  The bias is a
 * constant of the matching, so the backward above is unchanged. */
void evit_attention_forward_qb(float *out /* (B, nq, H*d) */, float *att /* (B, H, nq, T) */,
                               const float *qkv /* (B, T, 3*H*d) */, const float *bias /* (B, T) or NULL */,
                               int B, int T, int nq, int H, int d);
void evit_attention_forward_qb_ref(float *out /* (B, nq, H*d) */, float *att /* (B, H, nq, T) */,
                                   const float *qkv /* (B, T, 3*H*d) */, const float *bias /* (B, T) or NULL */,
                                   int B, int T, int nq, int H, int d);
/* Gradients of the attention above into the fused dqkv, accumulated.  Per
 * (b, h), with P = att, dO = dout's head slice, s = 1/sqrt(d):
 *   dV += P^T dO
 *   dP  = dO V^T
 *   dS  = P .* (dP - rowsum(dP .* P))        (softmax backward)
 *   dQ += s dS K,   dK += s dS^T Q
 * datt is scratch: the _ref twins overwrite it with dS, the fast versions
 * keep dS in per-thread scratch and leave datt as it was.  Each (b, h)
 * writes its own slices of dqkv, so the OpenMP loop over (b, h) has no
 * races. */
void evit_attention_backward(float *dqkv /* (B, T, 3*H*d) */, float *datt /* (B, H, T, T) */,
                             const float *dout /* (B, T, H*d) */,
                             const float *qkv /* (B, T, 3*H*d) */,
                             const float *att /* (B, H, T, T) */, int B, int T, int H, int d);
void evit_attention_backward_ref(float *dqkv /* (B, T, 3*H*d) */, float *datt /* (B, H, T, T) */,
                                 const float *dout /* (B, T, H*d) */,
                                 const float *qkv /* (B, T, 3*H*d) */,
                                 const float *att /* (B, H, T, T) */, int B, int T, int H, int d);
/* Backward of evit_attention_forward_q: dQ accumulates into rows 0..nq-1 of
 * dqkv's q third only (the rest is not touched), dK and dV into all T rows. */
void evit_attention_backward_q(float *dqkv /* (B, T, 3*H*d) */, float *datt /* (B, H, nq, T) */,
                               const float *dout /* (B, nq, H*d) */,
                               const float *qkv /* (B, T, 3*H*d) */,
                               const float *att /* (B, H, nq, T) */, int B, int T, int nq, int H,
                               int d);
void evit_attention_backward_q_ref(float *dqkv /* (B, T, 3*H*d) */,
                                   float *datt /* (B, H, nq, T) */,
                                   const float *dout /* (B, nq, H*d) */,
                                   const float *qkv /* (B, T, 3*H*d) */,
                                   const float *att /* (B, H, nq, T) */, int B, int T, int nq,
                                   int H, int d);

/* Bilinear upsampling of a grid of class scores, channels last (the
 * per-patch logits in patch order), to the image's pixels: PyTorch's
 * F.interpolate(mode="bilinear", align_corners=False), Segmenter's
 * decoder.  Along each axis output index o reads the source position
 *   s = max(0, (o + 1/2) n_in / n_out - 1/2)
 * between i0 = floor(s) and i1 = min(i0 + 1, n_in - 1) with weights
 * (1 - f, f), f = s - i0; the two axes' weights multiply. */
void evit_upsample_forward(float *out /* (B, H, W, K) */, const float *in /* (B, h, w, K) */, int B, int h,
                           int w, int H, int W, int K);
/* din += the transpose of that map applied to dout. */
void evit_upsample_backward(float *din /* (B, h, w, K) */, const float *dout /* (B, H, W, K) */, int B, int h,
                            int w, int H, int W, int K);

/* Per-pixel cross-entropy against a mask, the pixels whose mask is the
 * ignore value (-1: none) left out, as PyTorch's CrossEntropyLoss with
 * ignore_index and mean reduction:
 *   loss = sum_{p labelled} (logsumexp(z_p) - z_p[y_p]) / n_labelled
 * Returns the loss (0 when no pixel is labelled) and n_labelled in
 * *labelled (when not NULL).  Every labelled value must be below K. */
double evit_xent_pixels_forward(size_t *labelled, const float *logits /* (P, K) */,
                                const uint8_t *mask /* (P) */, int ignore, size_t P, int K);
/* dlogits += scale (softmax(z_p) - onehot(y_p)) / n_labelled on the
 * labelled pixels: the gradient of scale * loss. */
void evit_xent_pixels_backward(float *dlogits /* (P, K) */, const float *logits /* (P, K) */,
                               const uint8_t *mask /* (P) */, int ignore, float scale, size_t P, int K);

/* The index of the largest of x[0..n), the first one on ties. */
int evit_argmax(const float *x /* (n) */, int n);

/* Per-row cross-entropy of logits against integer labels; returns the sum. */
double evit_xent_forward(float *loss /* (B) or NULL */, const float *logits /* (B, K) */,
                         const int32_t *labels /* (B) */, int B, int K);

/* Cross-entropy against label-smoothed targets (timm's
 * LabelSmoothingCrossEntropy): q = (1 - smoothing) onehot(label) + smoothing / K,
 *   loss = mean_b (logsumexp(z_b) - sum_k q_bk z_bk)
 * Returns the mean loss over the batch. */
double evit_xent_smooth_forward(const float *logits /* (B, K) */, const int32_t *labels /* (B) */,
                                float smoothing, int B, int K);
/* dlogits += scale * (softmax(z) - q) / B, the gradient of scale * loss. */
void evit_xent_smooth_backward(float *dlogits /* (B, K) */, const float *logits /* (B, K) */,
                               const int32_t *labels /* (B) */, float smoothing, float scale,
                               int B, int K);

/* Knowledge distillation, soft targets at temperature tau:
 *   pt = softmax(teacher / tau),  ps = softmax(student / tau)
 *   loss = tau^2 mean_b KL(pt || ps) = tau^2 mean_b sum_k pt (log pt - log ps)
 * Returns the mean loss over the batch. */
double evit_kd_forward(const float *student /* (B, K) */, const float *teacher /* (B, K) */,
                       float tau, int B, int K);
/* dstudent += scale * tau * (ps - pt) / B, the gradient of scale * loss. */
void evit_kd_backward(float *dstudent /* (B, K) */, const float *student /* (B, K) */,
                      const float *teacher /* (B, K) */, float tau, float scale, int B, int K);

#endif
