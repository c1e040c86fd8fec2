#!/usr/bin/python3
"""Checks for evit-export's ONNX output (tests/cli_onnx.sh, bench/onnx.sh).

    onnx_check.py structure MODEL.onnx [--qdq]   the ONNX checker (full, with
        shape inference), opset 13, symbolic batch, timm-named tensors, and for
        --qdq int8 weights dequantized per channel; needs python3-onnx
    onnx_check.py images DATA.h5 OUT.u8          a dataset's images, raw uint8
    onnx_check.py compare ORT.f32 LOGITS.h5 [--tol T]
        ONNX Runtime's logits (raw float32) against evit-eval --save-logits
    onnx_check.py top1 ORT.f32 DATA.h5           top-1 (percent) of raw logits
"""
import sys

import numpy as np


def structure(path, qdq):
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [13], m.opset_import
    g = m.graph
    assert [i.name for i in g.input] == ["input"] and [o.name for o in g.output] == ["logits"]
    for v in (g.input[0], g.output[0]):
        assert v.type.tensor_type.shape.dim[0].dim_param == "batch", v
    names = {t.name: t for t in g.initializer}
    for key in ("cls_token", "pos_embed", "patch_embed.proj.bias", "blocks.0.norm1.weight", "norm.weight",
                "head.bias"):
        assert key in names, key
    ops = {n.op_type for n in g.node}
    if qdq:
        w = names["blocks.0.attn.qkv.weight_quantized"]
        assert w.data_type == onnx.TensorProto.INT8, w.data_type
        assert "blocks.0.attn.qkv.weight_scale" in names
        dq = [n for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] == w.name]
        assert len(dq) == 1 and [a.i for a in dq[0].attribute if a.name == "axis"] == [1], dq
        assert "QuantizeLinear" in ops
    else:
        assert "blocks.0.attn.qkv.weight" in names
        assert "QuantizeLinear" not in ops and "DequantizeLinear" not in ops
    print(f"{path}: valid ONNX, opset 13, {len(g.node)} nodes, {len(g.initializer)} initializers"
          f"{', QDQ' if qdq else ''}")
    return 0


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "structure":
        return structure(args[0], "--qdq" in args)
    import h5py
    if cmd == "images":
        with h5py.File(args[0], "r") as f:
            f["images"][()].tofile(args[1])
        return 0
    if cmd == "compare":
        tol = float(args[args.index("--tol") + 1]) if "--tol" in args else 1e-4
        with h5py.File(args[1], "r") as f:
            ref = f["logits"][()]
        ours = np.fromfile(args[0], np.float32).reshape(ref.shape)
        diff = float(np.abs(ours - ref).max())
        agree = float((ours.argmax(1) == ref.argmax(1)).mean())
        print(f"ONNX Runtime vs evit on {len(ref)} images: max |logit difference| {diff:.3g} "
              f"(tolerance {tol:g}), argmax agreement {100 * agree:.2f}%")
        return 0 if diff <= tol else 1
    if cmd == "top1":
        with h5py.File(args[1], "r") as f:
            labels = f["labels"][()]
        logits = np.fromfile(args[0], np.float32).reshape(len(labels), -1)
        print(f"{100 * float((logits.argmax(1) == labels).mean()):.2f}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
