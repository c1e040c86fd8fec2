/* optim.h: the optimisers, gradient clipping and learning-rate schedule of
 * timm/DeiT training, matching PyTorch's float32 arithmetic where practical.
 *
 * The parameters, gradients and optimiser state are flat float buffers of
 * evit_config_params() entries in the layout of evit_vit_bind(), so one step
 * is a loop over n independent elements.  Which elements get weight decay is
 * decided once, from the tensor kinds (evit_vit_tensors()): only matrices and
 * conv kernels (EVIT_T_WEIGHT) decay; biases, LayerNorm parameters,
 * cls_token and pos_embed do not, as in timm's param_groups_weight_decay. */
#ifndef EVIT_OPTIM_H
#define EVIT_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum evit_optim_type { EVIT_OPTIM_ADAMW, EVIT_OPTIM_SGD };

struct evit_optim_config {
    enum evit_optim_type type;
    double lr;                /* peak learning rate */
    double weight_decay;
    double beta1, beta2, eps; /* AdamW */
    double momentum;          /* SGD */
    int nesterov;             /* SGD */
};

struct evit_optim {
    struct evit_optim_config cfg;
    size_t n;       /* number of parameters */
    float *m;       /* (n) AdamW first moment, or SGD momentum buffer */
    float *v;       /* (n) AdamW second moment (NULL for SGD) */
    uint8_t *decay; /* (n) 1 where weight decay applies */
    int64_t step;   /* steps taken (AdamW bias correction uses step+1 on the next) */
};

/* Zeroed state for a model of shape mc, and the decay mask from its tensor
 * kinds. */
void evit_optim_init(struct evit_optim *o, const struct evit_optim_config *c,
                     const struct evit_vit_config *mc);
void evit_optim_free(struct evit_optim *o);

/* One step at learning rate lr (o->cfg.lr is only the peak, for the schedule).
 *
 * AdamW (torch.optim.AdamW, decoupled decay), t = step + 1:
 *   p *= 1 - lr wd                      (decay elements only)
 *   m  = m + (1 - b1)(g - m)            (torch's lerp_, = b1 m + (1 - b1) g)
 *   v  = b2 v + (1 - b2) g^2
 *   p += -(lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * SGD (torch.optim.SGD, dampening 0, L2 coupled into the gradient):
 *   g' = g + wd p                       (decay elements only)
 *   buf = g' on the first step, else momentum buf + g'
 *   p += -lr (nesterov ? g' + momentum buf : buf)
 * Scalars are formed in double and rounded to float once, as PyTorch does
 * with Python numbers; the element arithmetic is float32.  Increments
 * o->step. */
void evit_optim_step(struct evit_optim *o, float *params /* (n) */,
                     const float *grads /* (n) */, double lr);

/* torch.nn.utils.clip_grad_norm_: the global L2 norm of grads, computed in
 * double in an order that does not depend on the thread count; when
 * max_norm > 0 and c = max_norm / (norm + 1e-6) < 1, grads *= c.  Returns the
 * norm before clipping. */
double evit_optim_clip(float *grads /* (n) */, size_t n, double max_norm);

/* Learning rate at a step (0-based):
 *   step < warmup:  lr (step + 1) / warmup
 *   otherwise:      min_lr + (lr - min_lr)(1 + cos(pi s / max(1, total - warmup))) / 2,
 *                   s = min(step, total) - warmup
 * so the peak lr is reached at step warmup - 1 and step warmup, and min_lr at
 * step total (and after). */
double evit_optim_lr(double lr, double min_lr, int64_t step, int64_t warmup, int64_t total);

#endif
