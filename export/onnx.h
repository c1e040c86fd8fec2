/* onnx.h: an evit model as an ONNX model (opset 13), for ONNX Runtime and
 * for TensorRT on the Jetson's GPU.
 *
 * The graph computes what libevrt computes (evrt.h), in standard operators:
 *   input   "input", float32 (batch, C, H, W): pixel / 255, not normalised;
 *           the graph applies the model's mean/std (Sub, Div) itself, as
 *           libevrt does, so the file carries its preprocessing
 *   patches Conv (kernel = stride = P) -> Reshape -> Transpose  (batch, N, D)
 *   tokens  Concat(Expand(cls_token), patches) + pos_embed       (batch, T, D)
 *   blocks  LayerNorm as ReduceMean/Sub/Mul/ReduceMean/Add/Sqrt/Div (opset 13
 *           has no LayerNormalization), attention with MatMul and Softmax,
 *           GELU as 0.5 x (1 + Erf(x / sqrt 2))
 *   output  "logits", float32 (batch, K), the head on the class token
 * A segmentation model (head_kind EVRT_HEAD_SEG_LINEAR or
 * EVRT_HEAD_SEG_MLP) has, after the same blocks on every token, three
 * outputs instead (evrt.h "Segmentation"):
 *           "logits" float32 (batch, G*G, K): seg_linear's head on each
 *           patch token, or seg_mlp's all-MLP decoder (struct evrt_decoder)
 *           on the patch tokens of its levels' blocks: per level Slice,
 *           LayerNorm, linear_c; Concat on the last axis, linear_fuse,
 *           Relu, the head;
 *           "scores" float32 (batch, K, H, W), their Resize (linear,
 *           half_pixel: PyTorch's align_corners=False); "mask" int64
 *           (batch, H, W), ArgMax over K
 * The batch dimension is symbolic ("batch"); reshapes use 0 to copy it.
 *
 * Tensors keep timm's names.  Linear weights are stored transposed, (in,
 * out), so that they feed MatMul directly; patch_embed.proj.weight keeps its
 * (D, C, P, P) conv shape.
 *
 * Quantized models become QDQ models: an int8 layer's weight is an int8
 * initializer "X.weight_quantized" (in, out) with "X.weight_scale" (out) and
 * zero points, dequantized per output channel (DequantizeLinear, axis 1;
 * axis 0 for the conv), and its input passes QuantizeLinear/DequantizeLinear
 * with the calibrated per-tensor scale and zero point.  Blocks with INT8
 * attention get the same pair on q, k, v (symmetric) and on the softmax
 * output.  seg_mlp's decoder linears are layers like the others: each
 * quantizes its own input (a level's LayerNorm output, the concatenation,
 * the Relu's output), where libevrt does.  ONNX Runtime and TensorRT fuse these pairs into int8 kernels. */
#ifndef EVIT_ONNX_H
#define EVIT_ONNX_H

#include <stddef.h>

#include "qmodel.h"

struct evit_onnx_info {
    const char *name;         /* graph name */
    char *const *class_names; /* classes names, or NULL */
    const char *source;       /* the model file it came from (metadata) */
};

/* Writes q (float layers as float32, int8 ones as QDQ) to path, atomically;
 * *bytes receives the file size. */
int evit_onnx_write(const char *path, const struct evit_qmodel *q, const struct evit_onnx_info *info,
                    size_t *bytes);

#endif
