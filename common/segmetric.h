/* segmetric.h: semantic segmentation scores from a confusion matrix.
 *
 * Scored as LPCVC 2023 and mmseg score it: pixels of every image are counted
 * into one (classes, classes) confusion matrix over the whole set (not a mean
 * of per-image scores), and the scores are read off it at the end.  For
 * class k, with conf[t][p] the pixels of true class t predicted as p:
 *
 *   TP_k = conf[k][k]
 *   FP_k = sum_t conf[t][k] - TP_k      (column sum: predicted k, wrongly)
 *   FN_k = sum_p conf[k][p] - TP_k      (row sum: truly k, missed)
 *   IoU_k  = TP_k / (TP_k + FP_k + FN_k)
 *   Dice_k = 2 TP_k / (2 TP_k + FP_k + FN_k)
 *
 * A class with TP + FP + FN = 0 is in neither truth nor prediction: its
 * scores are 0/0, NaN, and it is left out of the means.  A class only ever
 * predicted (FP > 0, TP = FN = 0) scores 0 and counts.  Matrices of shards
 * (threads, MPI ranks) add, so merging them then scoring equals scoring all
 * the pixels at once. */
#ifndef EVIT_SEGMETRIC_H
#define EVIT_SEGMETRIC_H

#include <stddef.h>
#include <stdint.h>

struct evit_segmetric {
    int classes;   /* 2..255: labels are uint8 */
    int ignore;    /* truth label that is skipped (e.g. 255), or -1 for none */
    uint64_t *conf; /* (classes, classes) counts: row = true, column = predicted */
};

struct evit_segscore {
    double miou;      /* mean IoU over the classes counted, NaN if none */
    double dice;      /* mean Dice over the same classes, NaN if none */
    double pixel_acc; /* trace / counted pixels, NaN if none */
    int present;      /* classes counted in the means (TP + FP + FN > 0) */
};

/* Zeroed counts; classes outside 2..255 is a programming error (asserts). */
int evit_segmetric_init(struct evit_segmetric *m, int classes, int ignore);
void evit_segmetric_free(struct evit_segmetric *m);

/* Counts n pixels.  A pixel whose truth == ignore is skipped whatever its
 * prediction.  Any other truth >= classes, or a pred >= classes, is an error
 * naming the first such pixel, and nothing of the call is counted (the whole
 * input is checked first). */
int evit_segmetric_add(struct evit_segmetric *m, const uint8_t *truth /* (n) */,
                       const uint8_t *pred /* (n) */, size_t n);

/* into += from; both must have the same classes (asserts). */
void evit_segmetric_merge(struct evit_segmetric *into, const struct evit_segmetric *from);

/* Pixels counted so far (ignored ones excluded). */
uint64_t evit_segmetric_pixels(const struct evit_segmetric *m);

/* Fills s, and the per-class scores where iou or dice is not NULL (NaN for a
 * class absent from truth and prediction). */
void evit_segmetric_score(const struct evit_segmetric *m, struct evit_segscore *s,
                          double *iou /* (classes) or NULL */,
                          double *dice /* (classes) or NULL */);

/* pred[i] = the class of highest score in row i; ties go to the lowest
 * index, NaN never wins, a row all NaN gives 0.  Returns EVIT_OK. */
int evit_segmetric_argmax(uint8_t *pred /* (n) */, const float *scores /* (n, classes) */,
                          size_t n, int classes);

#endif
