/* safetensors.h: reads the safetensors format (Hugging Face's, the format
 * timm publishes its weights in) into float32.
 *
 * A file is
 *   8 bytes      N, little-endian uint64: the header's length
 *   N bytes      a JSON object, UTF-8, optionally padded with spaces:
 *                  { "NAME": {"dtype": "F16", "shape": [768, 3, 16, 16],
 *                             "data_offsets": [BEGIN, END]}, ...,
 *                    "__metadata__": {"KEY": "VALUE", ...} }
 *   the rest     the data section; BEGIN and END are byte offsets into it,
 *                tensors are C-contiguous little-endian.
 *
 * Everything is validated before a byte of tensor data is read: the header
 * length against the file, the JSON's shape (exactly the three keys per
 * tensor, integral non-negative numbers, at most EVIT_ST_MAX_DIM
 * dimensions, no duplicate names), the dtype (F32, F16 and BF16; others are
 * refused by name), END - BEGIN against the shape's element count times the
 * element size, and the ranges together: sorted by BEGIN they must tile the
 * data section exactly, with no overlap, gap or trailing byte (the format's
 * own rule).  Errors are one line naming the file and the problem. */
#ifndef EVIT_SAFETENSORS_H
#define EVIT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define EVIT_ST_MAX_DIM 8
#define EVIT_ST_NAME_MAX 256
/* the reference implementation's limit: a header is metadata, not data */
#define EVIT_ST_MAX_HEADER (100u << 20)

enum evit_st_dtype { EVIT_ST_F32, EVIT_ST_F16, EVIT_ST_BF16 };

struct evit_st_tensor {
    char *name;
    enum evit_st_dtype dtype;
    int ndim;
    int64_t shape[EVIT_ST_MAX_DIM];
    size_t numel;
    size_t begin, end; /* bytes, into the data section */
};

/* A parsed file.  Owns names and metadata; owns the file's bytes only when
 * evit_safetensors_load read them (owned != NULL). */
struct evit_safetensors {
    int n;
    struct evit_st_tensor *t; /* (n), in header order */
    char *metadata;           /* "__metadata__" as compact JSON, or NULL */
    const uint8_t *data;      /* the data section */
    size_t data_size;
    uint8_t *owned;
};

/* Parses buf (size bytes; kept, not copied: it must outlive st).  where
 * names the source in messages. */
int evit_safetensors_parse(struct evit_safetensors *st, const uint8_t *buf, size_t size,
                           const char *where);

/* Reads and parses a file. */
int evit_safetensors_load(const char *path, struct evit_safetensors *st);

/* The tensor called name, or NULL. */
const struct evit_st_tensor *evit_safetensors_find(const struct evit_safetensors *st,
                                                   const char *name);

/* Converts t's numel elements to float32 (F16 and BF16 exactly: every half
 * and bfloat16 value is a float). */
void evit_safetensors_read(float *out /* (numel) */, const struct evit_safetensors *st,
                           const struct evit_st_tensor *t);

const char *evit_safetensors_dtype_name(enum evit_st_dtype d);

/* IEEE binary16 bits to float, subnormals, infinities and NaN included. */
float evit_half_to_float(uint16_t h);

void evit_safetensors_free(struct evit_safetensors *st);

#endif
