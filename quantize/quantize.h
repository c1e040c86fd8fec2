/* quantize.h: post-training INT8 calibration for libevrt models.
 *
 * Statistics come from the runtime's own float path (an evrt observer sees
 * every linear layer's input exactly as the device computes it, class-token-
 * only last block included), gathered in two passes over the calibration
 * images: the first finds each layer's input min and max, the second fills
 * two 2048-bin histograms with the range fixed, one of |x| over [0, amax]
 * (for symmetric ranges) and one of x over [min, max] (for asymmetric).
 * Calibrators then work from the stored histograms alone (docs/QUANTIZE.md):
 *
 *   minmax      the observed range
 *   percentile  the p-th percentile of |x| (or the (100-p)-th and p-th of x)
 *   entropy     TensorRT's: the threshold whose clipped 2048-bin reference
 *               distribution has the least KL divergence from its 128-level
 *               quantized version (symmetric only)
 *   mse         the range of least expected squared error, clipping plus
 *               rounding, integrated exactly over each bin (values uniform
 *               within a bin)
 */
#ifndef EVIT_QUANTIZE_H
#define EVIT_QUANTIZE_H

#include <cJSON.h>
#include <stdint.h>

#include "qmodel.h"

#define EVIT_QUANT_BINS 2048

enum evit_calibrator { EVIT_CAL_MINMAX, EVIT_CAL_PERCENTILE, EVIT_CAL_ENTROPY, EVIT_CAL_MSE };

struct evit_quant_config {
    enum evit_calibrator calibrator;
    double percentile;      /* for EVIT_CAL_PERCENTILE, in (50, 100] */
    int calib_images;       /* training images used for statistics */
    int symmetric;          /* activations: zero point 0, or asymmetric */
    double max_drop;        /* accuracy budget in points; negative: no budget */
    int quantize_attention; /* INT8 attention matmuls too (evrt.h) */
    int seed;               /* which training images calibrate */
    int measure_images;     /* calibration images for the per-layer errors */
    int batch;              /* images per runtime call */
    cJSON *json;            /* the file as read, for the report */
};

/* Reads a quantize config strictly (unknown keys, types and ranges are
 * errors naming file and key). */
int evit_quant_config_load(const char *path, struct evit_quant_config *c);
void evit_quant_config_free(struct evit_quant_config *c);
const char *evit_calibrator_name(enum evit_calibrator c);
int evit_calibrator_parse(const char *s, enum evit_calibrator *out);

/* Statistics of one layer's input. */
struct evit_quant_stats {
    double min, max;   /* pass 1 */
    double count;      /* values seen in pass 2 */
    double hist_abs[EVIT_QUANT_BINS]; /* |x| over [0, max(|min|, |max|)] */
    double hist[EVIT_QUANT_BINS];     /* x over [min, max] */
};

void evit_quant_stats_init(struct evit_quant_stats *s);
/* Pass 1: widen min and max. */
void evit_quant_stats_range(struct evit_quant_stats *s, const float *x, size_t n);
/* Pass 2: histograms over the range of pass 1 (values outside it fall into
 * the end bins). */
void evit_quant_stats_hist(struct evit_quant_stats *s, const float *x, size_t n);

/* The symmetric clipping threshold t (activations clip to [-t, t]). */
double evit_quant_threshold(const struct evit_quant_stats *s, enum evit_calibrator c,
                            double percentile);
/* The asymmetric range [lo, hi], always containing 0; entropy is refused
 * by the config reader for asymmetric ranges. */
void evit_quant_range(const struct evit_quant_stats *s, enum evit_calibrator c, double percentile,
                      double *lo, double *hi);
/* Scale and zero point for a layer's input, per the config. */
void evit_quant_params(const struct evit_quant_stats *s, const struct evit_quant_config *c,
                       float *scale, int32_t *zero);

/* Entries that can be int8 or float: the linear layers in evrt_model_layer
 * order, then each block's attention matmuls ("blocks.L.attn.matmul"). */
int evit_quant_entries(const struct evit_qmodel *q);
int evit_quant_dtype(const struct evit_qmodel *q, int entry);
void evit_quant_set_dtype(struct evit_qmodel *q, int entry, int dtype);
const char *evit_quant_entry_name(const struct evit_qmodel *q, int entry, char *buf, size_t n);

/* Sets every layer's activation scale and zero point from its statistics
 * and makes it int8; with quantize_attention, also each block's attention
 * scales (q, k, v by the calibrator, symmetric; p the largest probability
 * seen / 127) and makes it int8.  The patch embedding's input is normalised pixels: 256
 * values per channel, all of which occur, so clipping any of them never
 * helps; it always gets the observed range (minmax), whatever the config's
 * calibrator (entropy, on that spiky histogram, clips away the bright end). */
void evit_quant_apply(struct evit_qmodel *q, const struct evit_quant_stats *stats,
                      const struct evit_quant_config *c);

/* Statistics kept per model: each linear layer's input, then per block
 * the attention's q, k, v and peak softmax probability. */
int evit_quant_stat_count(const struct evit_qmodel *q);

/* Runs q's float path over n images (H*W*C bytes each) with an observer, in
 * batches, both passes; stats has evit_quant_stat_count(q) entries.  q's
 * dtypes are set to EVRT_F32 for the duration and restored. */
int evit_quant_collect(struct evit_qmodel *q, const uint8_t *images, int n, int batch,
                       struct evit_quant_stats *stats);

/* Quantization error of each layer's output, against the float model:
 * isolated (this layer int8 on the float model's input, everything else
 * float) and in the model (the output inside the current mixed-precision
 * model, errors of earlier layers included).  SQNR in dB = 10 log10(sum
 * y^2 / sum (y - yq)^2); cosine of the flattened outputs. */
struct evit_quant_layer_err {
    double sqnr_db, cosine;             /* isolated */
    double sqnr_db_model, cosine_model; /* in the current model */
};
/* err has evit_quant_entries(q) entries; an attention's output is its
 * attention result (the proj layer's input), isolated only when int8. */
int evit_quant_measure(struct evit_qmodel *q, const uint8_t *images, int n, int batch,
                       struct evit_quant_layer_err *err);

#endif
