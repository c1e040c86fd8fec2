/* head.h: what each head (config "head", enum evit_head) trains against,
 * in one place: the task's plain cross-entropy and its gradient with
 * respect to the logits.  A stage that needs a loss gradient (evit-prune's
 * Taylor importance) asks here instead of branching on the task.
 *
 *   class       logits (B, K) against labels (B):
 *                 loss = mean_b -log softmax(z_b)[y_b]
 *   seg_linear  per-patch logits (B, g, g, K) upsampled bilinearly to the
 *               pixels (ops.h, evit_upsample_forward) against masks
 *               (B, S, S), unlabelled pixels (ignore) left out:
 *                 loss = mean over labelled p of -log softmax(u_p)[m_p],
 *               the gradient back through the upsampling (its adjoint)
 */
#ifndef EVIT_HEAD_H
#define EVIT_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Floats of scratch evit_head_xent needs for B images of c. */
size_t evit_head_scratch(const struct evit_vit_config *c, int B);

/* dlogits (B, evit_config_head_rows(c), K) += the gradient of the loss
 * above; returns the loss.  labels for a class head, masks and ignore for
 * segmentation (the other NULL). */
double evit_head_xent(float *dlogits, float *scratch, const float *logits, const int32_t *labels /* (B) */,
                      const uint8_t *masks /* (B, S, S) */, int ignore, int B, const struct evit_vit_config *c);

#endif
