/* model.h: libevrt's internal helper for error messages; the model helpers
 * themselves (evrt_layer_count, evrt_model_layer, evrt_layer_name,
 * evrt_model_tokens, evrt_model_bytes, evrt_model_check) are public, in
 * evrt.h, and live in model.c. */
#ifndef EVRT_MODEL_H
#define EVRT_MODEL_H

#include <stddef.h>

#include "evrt.h"

/* Writes the printf-style message to err (n bytes, may be 0) and returns
 * EVRT_EINVAL. */
int evrt_errf(char *err, size_t n, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
