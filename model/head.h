/* head.h: what each head (config "head", enum evit_head) trains against,
 * in one place: the task's plain cross-entropy and its gradient with
 * respect to the logits.  A stage that needs a loss gradient (evit-prune's
 * Taylor importance) asks here instead of branching on the task.
 *
 *   class       logits (B, K) against labels (B):
 *                 loss = mean_b -log softmax(z_b)[y_b]
 *   seg_linear  per-patch logits (B, g, g, K) upsampled bilinearly to the
 *   seg_mlp     pixels (ops.h, evit_upsample_forward) against masks
 *               (B, S, S), unlabelled pixels (ignore) left out:
 *                 loss = mean over labelled p of -log softmax(u_p)[m_p],
 *               the gradient back through the upsampling (its adjoint)
 *
 * The two segmentation heads differ only in how the model makes its
 * per-patch logits (vit.h); from the logits on (this loss, pixel
 * distillation, scoring, saved logits) they are one task, and a stage
 * asks evit_head_is_seg rather than naming them.
 */
#ifndef EVIT_HEAD_H
#define EVIT_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* 1 for a per-patch segmentation head (seg_linear, seg_mlp: logits
 * (N, K) per image, scored per pixel against masks), 0 for the class head. */
int evit_head_is_seg(int head);

/* Floats of scratch evit_head_xent needs for B images of c. */
size_t evit_head_scratch(const struct evit_vit_config *c, int B);

/* dlogits (B, evit_config_head_rows(c), K) += the gradient of the loss
 * above; returns the loss.  labels for a class head, masks and ignore for
 * segmentation (the other NULL). */
double evit_head_xent(float *dlogits, float *scratch, const float *logits, const int32_t *labels /* (B) */,
                      const uint8_t *masks /* (B, S, S) */, int ignore, int B, const struct evit_vit_config *c);

#endif
