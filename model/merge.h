/* merge.h: Token Merging (ToMe: Bolya et al., "Token Merging: Your ViT but
 * Faster", ICLR 2023), the op of one image's tokens after a block's
 * attention.
 *
 * Bipartite soft matching.  The tokens alternate into two sets, A the even
 * indices (0, 2, 4, ...) and B the odd ones.  The metric of a token is a row
 * of m (in ToMe, the block's keys averaged over the heads); the similarity
 * of a in A and b in B is the cosine of their rows,
 *
 *   sim(a, b) = m_a . m_b / (|m_a| |m_b|)       (summed in double)
 *
 * Each a's match is its most similar b (the lowest index among equals) and
 * its score that similarity; the class token (token 0, in A) never merges
 * (score -inf).  The r tokens of A with the highest scores (the lower index
 * first among equals: every machine picks the same ones) merge into their
 * matches; the other A tokens and every B token go on.  The output order is
 * the unmerged A tokens in input order, then the B tokens in input order,
 * so the class token stays token 0.  r is at most ceil(T / 2) - 1.
 *
 * The merge is a size-weighted average: each token carries a size s (1 at
 * the start, the number of patches it stands for after merging), and
 *
 *   so[j] = sum_{i -> j} s[i],   out[j] = sum_{i -> j} s[i] x[i] / so[j]
 *
 * The matching is piecewise constant in the inputs: it has no gradient,
 * and the sizes, counts of patches, have none either.  The gradient flows
 * through the average alone:  dx[i] += s[i] / so[dst[i]] * dout[dst[i]].
 *
 * The sizes enter the attention of the blocks after as proportional
 * attention, softmax(q k^T / sqrt(d) + log s_key): a merged token is
 * attended to as often as the tokens it replaces. */
#ifndef EVIT_MERGE_H
#define EVIT_MERGE_H

/* The largest r that T tokens allow (A's tokens but the class token). */
int evit_merge_max_r(int T);

/* dst[i] in [0, T - r): the output token that input token i goes to.
 * EVIT_ASSERTs 0 <= r <= evit_merge_max_r(T). */
void evit_merge_match(int *dst /* (T) */, const float *m /* (T, d) */, int T, int d, int r);

/* Keys averaged over the heads, the metric ToMe matches on:
 * m[t, i] = mean_h qkv[t, I + h d + i] (I = H d: the k third). */
void evit_merge_metric(float *m /* (T, d) */, const float *qkv /* (T, 3 H d) */, int T, int H, int d);

/* The size-weighted average above on rows of D; so may alias nothing.
 * Sums in input order (the same bits for the same dst). */
void evit_merge_forward(float *out /* (T - r, D) */, float *so /* (T - r) */, const float *x /* (T, D) */,
                        const float *s /* (T) */, const int *dst /* (T) */, int T, int r, int D);
/* dx[i] += s[i] / so[dst[i]] * dout[dst[i]], accumulated. */
void evit_merge_backward(float *dx /* (T, D) */, const float *dout /* (T - r, D) */, const float *s /* (T) */,
                         const float *so /* (T - r) */, const int *dst /* (T) */, int T, int D);

#endif
