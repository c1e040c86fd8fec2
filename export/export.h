/* export.h: writes the flat model file (.evit) that libevrt maps
 * (evrt_open); the byte layout is in runtime/evrt.h ("Model files") and
 * docs/FORMAT.md.
 *
 * The writer works from a struct evrt_model, so what it writes is exactly
 * what the runtime ran on the host: a float checkpoint bound as a float32
 * runtime model, or a quantized model's mixed int8/float32 layers. */
#ifndef EVIT_EXPORT_H
#define EVIT_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "evrt.h"

struct evit_export_info {
    const char *name;         /* model name ("" when NULL) */
    char *const *class_names; /* m->classes names, or NULL */
    struct evrt_lineage lineage;
};

/* The file's bytes in a new buffer (caller frees).  The model must pass
 * evrt_model_check; tensor names must fit 47 bytes (asserted). */
void evit_export_build(const struct evrt_model *m, const struct evit_export_info *info, uint8_t **buf,
                       size_t *len);

/* Builds and writes to a temporary name renamed into place. */
int evit_export_write(const char *path, const struct evrt_model *m, const struct evit_export_info *info,
                      size_t *bytes /* or NULL */);

/* Number of tensors the file of m holds. */
int evit_export_tensor_count(const struct evrt_model *m);

#endif
