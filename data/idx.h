/* idx.h: reading IDX files (MNIST, Fashion-MNIST), raw or gzip-compressed.
 *
 * IDX: 2 zero bytes, a type byte (0x08 = uint8), a rank byte, then rank
 * big-endian uint32 dimensions, then the data.  Images are rank 3 (N, H, W),
 * labels rank 1 (N).  Gzip is detected by its magic bytes (1f 8b). */
#ifndef EVIT_IDX_H
#define EVIT_IDX_H

#include <stdint.h>

/* Reads a uint8 IDX file of rank 1..4. Caller frees *data.
 * Errors (missing, truncated, bad magic, wrong type, gzip corrupt, sizes
 * that overflow or disagree with the file length) name the file. */
int evit_idx_read(const char *path, uint8_t **data, int *rank, int dims[4]);

/* Imports an image file (rank 3) and a label file (rank 1) into a dataset
 * struct (dataset.h): c = 1, `classes` (>= 2) classes named "0", "1", ...
 * (callers with real names replace class_names), source = both paths, mean
 * and std computed.  Every label must be < classes and the counts must
 * match; errors name the offending file.  *out is untouched on error. */
struct evit_dataset;
int evit_idx_import(const char *images_path, const char *labels_path, int classes,
                    struct evit_dataset *out);

#endif
