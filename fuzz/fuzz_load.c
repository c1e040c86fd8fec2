/* fuzz_load.c: libFuzzer target for the model file loader.  Any input must
 * give EVRT_OK or an error code, never a crash, a read out of bounds or a
 * leak; a file that loads must also make a context (the model it fills
 * passes evrt_model_check) when it is small.
 *
 *   clang -fsanitize=fuzzer,address,undefined -std=c99 -Iruntime \
 *       runtime/evrt.c runtime/kernels*.c runtime/file.c fuzz/fuzz_load.c -lm
 * Each input is tried as it is and with its checksums recomputed, so that
 * mutations also reach the checks behind the CRCs.
 * (fuzz/run.sh builds it, writes seeds and runs it.) */
#include <stddef.h>
#include <stdint.h>

#include <stdlib.h>
#include <string.h>

#include "evrt.h"
#include "file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    while (n--) v = v << 8 | p[n];
    return v;
}

static void put32(uint8_t *p, uint32_t v)
{
    int i;
    for (i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites the checksums of b so that mutations reach the checks behind
 * them (shapes, offsets, strings): every tensor CRC whose range lies in the
 * buffer, then the header CRC. */
static void fix_checksums(uint8_t *b, size_t n)
{
    uint64_t h, nt, i, at;
    int depth;
    if (n < EVRT_FH_BYTES) return;
    h = get(b + EVRT_FH_HEADER_BYTES, 4);
    depth = (int)get(b + EVRT_FH_IMG_SIZE + 16, 4);
    nt = get(b + EVRT_FH_TENSORS, 4);
    if (h < EVRT_FH_BYTES || h > n) return;
    if (depth >= 1 && depth <= EVRT_FILE_MAX_DEPTH) {
        int levels = 0; /* a seg_mlp file's decoder entry adds layer entries */
        if (get(b + EVRT_FH_HEAD, 4) == EVRT_HEAD_SEG_MLP && evrt_file_layers_at(depth, 1) <= h) {
            levels = (int)get(b + evrt_file_decoder_at(depth) + EVRT_DE_LEVELS, 4);
            if (levels < 1 || levels > EVRT_MAX_LEVELS) levels = 0;
        }
        at = evrt_file_tensors_at(depth, levels);
        for (i = 0; i < nt && at + (i + 1) * EVRT_TENSOR_ENTRY <= h; i++) {
            uint8_t *e = b + at + i * EVRT_TENSOR_ENTRY;
            uint64_t off = get(e + EVRT_TE_OFFSET, 8), len = get(e + EVRT_TE_BYTES, 8);
            if (off <= n && len <= n - off) put32(e + EVRT_TE_CRC, evrt_crc32(0, b + off, (size_t)len));
        }
    }
    put32(b + EVRT_FH_HEADER_CRC, 0);
    put32(b + EVRT_FH_HEADER_CRC, evrt_crc32(0, b, (size_t)h));
}

static void load(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size + 1);
    load(data, size);
    if (copy) {
        memcpy(copy, data, size);
        fix_checksums(copy, size);
        load(copy, size);
        free(copy);
    }
    return 0;
}

static void load(const uint8_t *data, size_t size)
{
    evrt_file *f = NULL;
    char err[EVRT_ERR_MAX];
    if (evrt_open_memory(&f, data, size, err, sizeof err) == EVRT_OK) {
        const struct evrt_model *m = evrt_file_model(f);
        /* the model it fills must be one a context accepts (inference on
         * fuzzed weights is not run: finite weights can still overflow,
         * which is the kernels' business, not the loader's) */
        if (m->img_size <= 32 && m->dim <= 64 && m->depth <= 4 && m->classes <= 100) {
            evrt_ctx *ctx = NULL;
            if (evrt_ctx_create(&ctx, m, 1) != EVRT_OK) abort();
            evrt_ctx_destroy(ctx);
        }
        evrt_close(f);
    }
}
