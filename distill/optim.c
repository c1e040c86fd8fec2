/* optim.c: see optim.h. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "vit.h"

void evit_optim_init(struct evit_optim *o, const struct evit_optim_config *c,
                     const struct evit_vit_config *mc)
{
    long np = evit_config_params(mc);
    EVIT_ASSERT(np > 0);
    memset(o, 0, sizeof *o);
    o->cfg = *c;
    o->n = (size_t)np;
    o->m = evit_alloc_floats(o->n);
    if (c->type == EVIT_OPTIM_ADAMW) o->v = evit_alloc_floats(o->n);
    o->decay = evit_calloc(o->n, 1);

    /* The tensor list gives each tensor's place through its data pointer, so
     * bind a parameter struct to the (zeroed) first-moment buffer and read
     * the offsets off it: the mask follows the layout without repeating it. */
    struct evit_vit_params p;
    int nt;
    evit_vit_bind(&p, mc, o->m);
    struct evit_tensor_ref *t = evit_vit_tensor_list(mc, &p, &nt);
    for (int i = 0; i < nt; i++) {
        size_t off = (size_t)(t[i].data - o->m);
        EVIT_ASSERT(off + t[i].numel <= o->n);
        if (t[i].kind == EVIT_T_WEIGHT) memset(o->decay + off, 1, t[i].numel);
    }
    free(t);
}

void evit_optim_free(struct evit_optim *o)
{
    evit_free_aligned(o->m);
    evit_free_aligned(o->v);
    free(o->decay);
    memset(o, 0, sizeof *o);
}

/* torch _single_tensor_adam with decoupled weight decay, element by element
 * in the same float32 order:
 *   param.mul_(1 - lr*wd)
 *   exp_avg.lerp_(grad, 1 - b1)              m + w (g - m) for w < 0.5
 *   exp_avg_sq.mul_(b2).addcmul_(g, g, 1-b2) (b2 v) + ((1 - b2) g) g
 *   denom = exp_avg_sq.sqrt() / bc2_sqrt + eps
 *   param.addcdiv_(exp_avg, denom, -step_size)   p + (-step_size m) / denom
 * This is the order of torch's scalar kernels; its vectorised kernels fuse
 * some multiply-adds (lerp, add with alpha), so results agree with PyTorch to
 * within an ulp or so per step rather than bit for bit. */
static void adamw_step(struct evit_optim *o, float *params, const float *grads, double lr)
{
    const struct evit_optim_config *c = &o->cfg;
    double t = (double)(o->step + 1);
    double bc1 = 1.0 - pow(c->beta1, t), bc2 = 1.0 - pow(c->beta2, t);
    const float decay = (float)(1.0 - lr * c->weight_decay);
    const float w1 = (float)(1.0 - c->beta1);
    const float b2 = (float)c->beta2, w2 = (float)(1.0 - c->beta2);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float eps = (float)c->eps;
    const float neg_step = (float)-(lr / bc1);
    const int has_decay = c->weight_decay != 0.0;
    /* lerp switches form at weight 0.5 to stay exact near the end point */
    const int lerp_low = fabs(1.0 - c->beta1) < 0.5;
    const uint8_t *dmask = o->decay;
    float *m = o->m, *v = o->v; /* (n) */
    const int64_t n = (int64_t)o->n;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float p = params[i], g = grads[i];
        if (has_decay && dmask[i]) p = p * decay;
        float mi = m[i];
        mi = lerp_low ? mi + w1 * (g - mi) : g - (g - mi) * (1.0f - w1);
        float vi = b2 * v[i];
        vi = vi + w2 * g * g;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        params[i] = p + neg_step * mi / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

/* torch _single_tensor_sgd, dampening 0, element by element:
 *   grad = grad.add(param, alpha=wd)
 *   buf = clone(grad) first, else buf.mul_(momentum).add_(grad)
 *   grad = nesterov ? grad.add(buf, alpha=momentum) : buf
 *   param.add_(grad, alpha=-lr) */
static void sgd_step(struct evit_optim *o, float *params, const float *grads, double lr)
{
    const struct evit_optim_config *c = &o->cfg;
    const float wd = (float)c->weight_decay;
    const float mom = (float)c->momentum;
    const float neg_lr = (float)-lr;
    const int has_decay = c->weight_decay != 0.0;
    const int first = o->step == 0;
    const int nesterov = c->nesterov;
    const uint8_t *dmask = o->decay;
    float *buf = o->m; /* (n) */
    const int64_t n = (int64_t)o->n;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float p = params[i], g = grads[i];
        if (has_decay && dmask[i]) g = g + wd * p;
        float b = first ? g : mom * buf[i] + g;
        float d = nesterov ? g + mom * b : b;
        params[i] = p + neg_lr * d;
        buf[i] = b;
    }
}

void evit_optim_step(struct evit_optim *o, float *params, const float *grads, double lr)
{
    EVIT_ASSERT(o->m && o->decay);
    switch (o->cfg.type) {
    case EVIT_OPTIM_ADAMW:
        EVIT_ASSERT(o->v);
        adamw_step(o, params, grads, lr);
        break;
    case EVIT_OPTIM_SGD:
        sgd_step(o, params, grads, lr);
        break;
    default:
        EVIT_ASSERT(!"unknown optimiser type");
    }
    o->step++;
}

/* Sum of squares in fixed blocks, each summed in order and the block sums
 * added in order: the result is the same for any number of threads, so a
 * resumed or re-threaded run clips identically. */
#define CLIP_BLOCK 16384

double evit_optim_clip(float *grads, size_t n, double max_norm)
{
    const int64_t nb = (int64_t)((n + CLIP_BLOCK - 1) / CLIP_BLOCK);
    double *part = evit_calloc(nb > 0 ? (size_t)nb : 1, sizeof *part); /* (nb) */
#pragma omp parallel for schedule(static) if (nb > 4)
    for (int64_t b = 0; b < nb; b++) {
        size_t lo = (size_t)b * CLIP_BLOCK, hi = lo + CLIP_BLOCK < n ? lo + CLIP_BLOCK : n;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++) s += (double)grads[i] * (double)grads[i];
        part[b] = s;
    }
    double ss = 0.0;
    for (int64_t b = 0; b < nb; b++) ss += part[b];
    free(part);
    double norm = sqrt(ss);

    /* torch: clip_coef = max_norm / (norm + 1e-6), clamped to at most 1;
     * multiplying by exactly 1 is skipped, which changes nothing. */
    if (max_norm > 0.0) {
        double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0) {
            const float cf = (float)coef;
            const int64_t ni = (int64_t)n;
#pragma omp parallel for schedule(static) if (ni > 65536)
            for (int64_t i = 0; i < ni; i++) grads[i] *= cf;
        }
    }
    return norm;
}

double evit_optim_lr(double lr, double min_lr, int64_t step, int64_t warmup, int64_t total)
{
    if (step < warmup) return lr * (double)(step + 1) / (double)warmup;
    int64_t span = total - warmup > 1 ? total - warmup : 1;
    int64_t s = (step < total ? step : total) - warmup;
    if (s < 0) s = 0; /* total < warmup: stay at the peak */
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + cos(M_PI * (double)s / (double)span));
}
