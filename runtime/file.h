/* file.h: the byte layout of an evit model file (.evit), shared by the
 * loader (file.c), the writer (export/export.c) and the tests.  The format
 * itself is documented byte by byte in evrt.h ("Model files") and
 * docs/FORMAT.md; the public functions are declared in evrt.h.
 *
 * Every number is little-endian; every offset is from the start of the
 * file.  A host of the other byte order refuses the file (tensors are used
 * in place, so nothing is swapped). */
#ifndef EVRT_FILE_H
#define EVRT_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "evrt.h"

#define EVRT_FILE_MAGIC "EVITMODL" /* 8 bytes, no terminator */
#define EVRT_FILE_VERSION 5u   /* the newest this runtime reads */
#define EVRT_FILE_VERSION_ATT 2u /* the first with INT8 attention; a file
                                    without it is written as version 1 */
#define EVRT_FILE_VERSION_MERGE 3u /* the first with Token Merging (a
                                      merge_r tensor); written only then */
#define EVRT_FILE_VERSION_HEAD 4u /* the first with a head other than the
                                     class head (EVRT_FH_HEAD); written only then */
#define EVRT_FILE_VERSION_DECODER 5u /* the first with head 2, seg_mlp (its
                                        decoder entry, layers and tensors);
                                        written only then */
#define EVRT_FILE_ENDIAN 0x01020304u /* stored as 04 03 02 01 */
#define EVRT_FILE_ALIGN 64u

/* fixed header, bytes [0, 128) */
#define EVRT_FH_MAGIC 0        /* char[8] */
#define EVRT_FH_VERSION 8      /* u32 */
#define EVRT_FH_ENDIAN 12      /* u32 */
#define EVRT_FH_HEADER_BYTES 16 /* u32: header size, a multiple of 64 */
#define EVRT_FH_HEADER_CRC 20  /* u32: CRC-32 of the header, this field as 0 */
#define EVRT_FH_FILE_BYTES 24  /* u64: the whole file */
#define EVRT_FH_TENSORS 32     /* u32: entries in the tensor table */
#define EVRT_FH_STRING_BYTES 36 /* u32: bytes of the string area */
#define EVRT_FH_CLASS_NAMES 40 /* u32: 0 or `classes` */
#define EVRT_FH_SOURCE_KIND 44 /* u32: enum evrt_source */
#define EVRT_FH_SOURCE_FNV 48  /* u64: FNV-1a 64 of the source model file */
#define EVRT_FH_CONFIG_FNV 56  /* u64: FNV-1a 64 of the quantize config, or 0 */
#define EVRT_FH_IMG_SIZE 64    /* i32 x 6: img_size channels patch dim depth classes */
#define EVRT_FH_MEAN 88        /* f32[4] */
#define EVRT_FH_STD 104        /* f32[4] */
#define EVRT_FH_HEAD 120       /* u32: enum evrt_head (version 4; 0 before; 2 from version 5) */
#define EVRT_FH_RESERVED 124   /* u32, zero */
#define EVRT_FH_BYTES 128

#define EVRT_BLOCK_ENTRY 16  /* u32 heads, head_dim, mlp, attention dtype (0 in version 1) */
/* the decoder entry, after the blocks, for head 2 (seg_mlp) only */
#define EVRT_DECODER_ENTRY 32
#define EVRT_DE_DIM 0        /* u32: C */
#define EVRT_DE_LEVELS 4     /* u32: L, 1..EVRT_MAX_LEVELS */
#define EVRT_DE_LEVEL 8      /* u32[4]: the blocks l_0 < ... < l_{L-1} = depth - 1, unused 0 */
#define EVRT_DE_RESERVED 24  /* u32[2], zero */
#define EVRT_LAYER_ENTRY 16  /* u32 dtype, f32 in_scale, i32 in_zero, u32 reserved 0 */
#define EVRT_TENSOR_ENTRY 96 /* see below */
#define EVRT_TENSOR_NAME 48  /* name bytes, NUL-terminated, zero-padded */

/* tensor table entry */
#define EVRT_TE_NAME 0     /* char[48] */
#define EVRT_TE_DTYPE 48   /* u32: enum evrt_file_dtype */
#define EVRT_TE_NDIM 52    /* u32: 1..4 */
#define EVRT_TE_SHAPE 56   /* u32[4]: unused dims 0 */
#define EVRT_TE_OFFSET 72  /* u64: a multiple of 64, past the header */
#define EVRT_TE_BYTES 80   /* u64: elements * element size */
#define EVRT_TE_CRC 88     /* u32: CRC-32 of the tensor's bytes */
#define EVRT_TE_RESERVED 92 /* u32, zero */

/* Limits the loader enforces (beyond any real ViT, within int arithmetic). */
#define EVRT_FILE_MAX_DEPTH 256
#define EVRT_FILE_MAX_IMG 4096
#define EVRT_FILE_MAX_DIM 65536
#define EVRT_FILE_MAX_CLASSES 1000000
#define EVRT_FILE_MAX_STRINGS (64u << 20)

/* Offsets of the variable parts of the header, from depth, the decoder's
 * levels (0: no decoder entry, a head other than seg_mlp) and counts. */
size_t evrt_file_blocks_at(void);
size_t evrt_file_decoder_at(int depth);
size_t evrt_file_layers_at(int depth, int levels);
/* Entries of the layer table: 2 + 4 depth, plus levels + 1 with a decoder. */
int evrt_file_layer_entries(int depth, int levels);
size_t evrt_file_tensors_at(int depth, int levels);
size_t evrt_file_strings_at(int depth, int levels, uint32_t tensors);

/* Where f maps its file, hands the whole pages inside [p, p + bytes) back
 * to the kernel (they are read again from the file when next touched);
 * nothing otherwise.  Memory use only: contents never change. */
void evrt_file_drop(const evrt_file *f, const void *p, size_t bytes);

#endif
