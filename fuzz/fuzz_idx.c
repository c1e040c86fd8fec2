/* fuzz_idx.c: libFuzzer target for the IDX reader behind evit-data import
 * --idx (data/idx.c: raw or gzip, ranks 1..4, sizes checked against the
 * file).  Any file must be read or refused with an error, never crash,
 * over-read or leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128];
    uint8_t *out = NULL;
    int rank = 0, dims[4] = {0, 0, 0, 0};
    if (fuzz_write_file(path, sizeof path, "idx", data, size) < 0) return 0;
    if (evit_idx_read(path, &out, &rank, dims) == 0) {
        /* touch every byte the dims claim */
        size_t n = 1, i;
        unsigned sum = 0;
        for (int d = 0; d < rank; d++) n *= (size_t)dims[d];
        for (i = 0; i < n; i++) sum += out[i];
        if (sum == 0xdeadbeef) abort(); /* keeps the loop */
        free(out);
    }
    remove(path);
    return 0;
}
