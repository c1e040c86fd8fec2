/* segmetric.c: see segmetric.h. */
#include "segmetric.h"

#include <math.h>
#include <stdlib.h>

#include "util.h"

int evit_segmetric_init(struct evit_segmetric *m, int classes, int ignore)
{
    EVIT_ASSERT(classes >= 2 && classes <= 255);
    EVIT_ASSERT(ignore >= -1 && ignore <= 255);
    m->classes = classes;
    m->ignore = ignore;
    m->conf = evit_calloc((size_t)classes * (size_t)classes, sizeof *m->conf);
    return EVIT_OK;
}

void evit_segmetric_free(struct evit_segmetric *m)
{
    free(m->conf);
    m->conf = NULL;
}

/* Validates everything before counting anything, so a bad mask halfway
 * through leaves the matrix as it was and the caller may skip the image. */
int evit_segmetric_add(struct evit_segmetric *m, const uint8_t *truth, const uint8_t *pred,
                       size_t n)
{
    int K = m->classes;
    for (size_t i = 0; i < n; i++) {
        if (truth[i] == m->ignore) continue;
        if (truth[i] >= K)
            return evit_error("mask value %d at pixel %zu is outside [0, %d)", truth[i], i, K);
        if (pred[i] >= K)
            return evit_error("predicted class %d at pixel %zu is outside [0, %d)", pred[i], i, K);
    }
    for (size_t i = 0; i < n; i++)
        if (truth[i] != m->ignore) m->conf[(size_t)truth[i] * K + pred[i]]++;
    return EVIT_OK;
}

void evit_segmetric_merge(struct evit_segmetric *into, const struct evit_segmetric *from)
{
    EVIT_ASSERT(into->classes == from->classes);
    size_t nn = (size_t)into->classes * (size_t)into->classes;
    for (size_t i = 0; i < nn; i++) into->conf[i] += from->conf[i];
}

uint64_t evit_segmetric_pixels(const struct evit_segmetric *m)
{
    size_t nn = (size_t)m->classes * (size_t)m->classes;
    uint64_t total = 0;
    for (size_t i = 0; i < nn; i++) total += m->conf[i];
    return total;
}

/* The maths is in segmetric.h.  Sums are exact in uint64_t; only the
 * ratios are rounded. */
void evit_segmetric_score(const struct evit_segmetric *m, struct evit_segscore *s, double *iou,
                          double *dice)
{
    int K = m->classes;
    uint64_t trace = 0, total = 0;
    double iou_sum = 0, dice_sum = 0;
    s->present = 0;
    for (int k = 0; k < K; k++) {
        uint64_t tp = m->conf[(size_t)k * K + k], row = 0, col = 0;
        for (int j = 0; j < K; j++) {
            row += m->conf[(size_t)k * K + j];
            col += m->conf[(size_t)j * K + k];
        }
        uint64_t fp = col - tp, fn = row - tp;
        double ik = (double)NAN, dk = (double)NAN;
        if (tp + fp + fn > 0) {
            ik = (double)tp / (double)(tp + fp + fn);
            dk = 2.0 * (double)tp / (double)(2 * tp + fp + fn);
            iou_sum += ik;
            dice_sum += dk;
            s->present++;
        }
        if (iou) iou[k] = ik;
        if (dice) dice[k] = dk;
        trace += tp;
        total += row;
    }
    s->miou = s->present ? iou_sum / s->present : (double)NAN;
    s->dice = s->present ? dice_sum / s->present : (double)NAN;
    s->pixel_acc = total ? (double)trace / (double)total : (double)NAN;
}

/* Not model/ops.c's evit_argmax: that one starts from x[0], so a NaN there
 * wins every comparison's "x[i] > NaN is false".  Here NaN is skipped. */
int evit_segmetric_argmax(uint8_t *pred, const float *scores, size_t n, int classes)
{
    EVIT_ASSERT(classes >= 1 && classes <= 256);
    for (size_t i = 0; i < n; i++) {
        const float *z = scores + i * (size_t)classes;
        int best = -1;
        for (int k = 0; k < classes; k++)
            if (!isnan(z[k]) && (best < 0 || z[k] > z[best])) best = k; /* strict: ties stay low */
        pred[i] = (uint8_t)(best < 0 ? 0 : best);
    }
    return EVIT_OK;
}
