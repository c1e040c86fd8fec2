#!/usr/bin/python3
"""Checks for evit-export's ONNX output (tests/cli_onnx.sh, bench/onnx.sh).

    onnx_check.py structure MODEL.onnx [--qdq] [--seg] [--levels L [--quantized Q.h5]]
        the ONNX checker (full, with shape inference), opset 13, symbolic
        batch, timm-named tensors, and for --qdq int8 weights dequantized per
        channel; --seg: a segmentation model's outputs (logits, scores by a
        linear half_pixel Resize, mask by ArgMax) and their inferred shapes;
        --levels L: a seg_mlp model's decoder of L levels (its LayerNorms and
        linear_c, a Concat on the last axis into linear_fuse, a Relu into the
        head; --qdq: each of those linears int8; --quantized: their int8
        weights, weight scales and input scales and zero points those of the
        quantized model Q.h5, which needs h5py); needs python3-onnx
    onnx_check.py images DATA.h5 OUT.u8          a dataset's images, raw uint8
    onnx_check.py compare ORT.f32 LOGITS.h5 [--tol T]
        ONNX Runtime's logits (raw float32) against evit-eval --save-logits
    onnx_check.py top1 ORT.f32 DATA.h5           top-1 (percent) of raw logits
    onnx_check.py decoder PATCHES.f32 PIXELS.f32 N G S K
        this script's decoder (below) against evit's own (tests/seg_logits):
        the same pixel scores, bit for bit
    onnx_check.py seg ORT LOGITS.h5 S [--tol T] [--agree PCT]
        a segmentation model's ONNX Runtime outputs ORT.logits, ORT.scores,
        ORT.mask (tests/ort_run.js) against evit-eval --save-logits's per-patch
        logits and their decoding to S x S pixels.  --tol: logits and scores
        within T.  Without --agree (float): the masks equal but at near-ties,
        pixels whose top-2 score gap in evit is under 1e-4.  --agree (QDQ,
        whose rounding differs from evit's INT8 kernels): at least PCT % of
        the mask pixels equal, and each other one a pixel whose gap the
        measured score difference could close.
"""
import sys

import numpy as np


def seg_structure(onnx, m):
    """The decoder's nodes, and the output shapes shape inference derives."""
    g = m.graph
    assert [o.name for o in g.output] == ["logits", "scores", "mask"], g.output
    rs = [n for n in g.node if n.op_type == "Resize"]
    am = [n for n in g.node if n.op_type == "ArgMax"]
    assert len(rs) == 1 and rs[0].output[0] == "scores", rs
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in rs[0].attribute}
    assert attrs == {"mode": b"linear", "coordinate_transformation_mode": b"half_pixel"}, attrs
    assert len(am) == 1 and am[0].input[0] == "scores" and am[0].output[0] == "mask", am
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in am[0].attribute}
    assert attrs == {"axis": 1, "keepdims": 0}, attrs
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True).graph.output
    shapes = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in inferred}
    S, K = g.input[0].type.tensor_type.shape.dim[2].dim_value, shapes["logits"][2]
    assert shapes["scores"] == ["batch", K, S, S] and shapes["mask"] == ["batch", S, S], shapes
    assert inferred[2].type.tensor_type.elem_type == onnx.TensorProto.INT64, inferred[2]
    return f", logits {shapes['logits']}, scores {shapes['scores']}, mask {shapes['mask']} int64"


def same_quantization(g, linears, qpath):
    """Each linear's QDQ numbers are the quantized model's (docs/FORMATS.md
    "Quantized models"), the weights transposed to (in, out)."""
    import h5py
    from onnx import numpy_helper
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    with h5py.File(qpath, "r") as f:
        for x in linears:
            q = f[x.replace(".", "/")]
            assert (init[x + ".weight_quantized"] == q["weight_int8"][()].T).all(), x
            assert (init[x + ".weight_scale"] == q["weight_scale"][()]).all(), x
            assert init[x + ".input.scale"] == q["input_scale"][0], x
            assert init[x + ".input.zero_point"] == q["input_zero"][0], x


def seg_mlp_structure(onnx, m, levels, qdq, qpath):
    """A seg_mlp decoder of `levels` levels (export/onnx.c seg_mlp): each
    level's LayerNorm (the last the final norm) and linear_c, their Concat
    on the last axis feeding linear_fuse, a Relu feeding the head."""
    g = m.graph
    names = {t.name for t in g.initializer}
    by_out = {o: n for n in g.node for o in n.output}
    weight = ".weight_quantized" if qdq else ".weight"
    linears = [f"decode_head.linear_c.{i}" for i in range(levels)] + ["decode_head.linear_fuse", "head"]
    for key in [f"decode_head.norms.{i}.weight" for i in range(levels - 1)] + [x + weight for x in linears]:
        assert key in names, key
    assert f"decode_head.norms.{levels - 1}.weight" not in names, "the last level has a norm of its own"

    def matmul_input(prefix):
        """The activation entering linear prefix's MatMul, before its QDQ
        pair, which must be the layer's own."""
        x = by_out[f"{prefix}/matmul"].input[0]
        if not qdq:
            return x
        q = by_out[by_out[x].input[0]]
        assert q.op_type == "QuantizeLinear" and q.input[1] == f"{prefix}.input.scale", q
        return q.input[0]

    cat = by_out[matmul_input("decode_head.linear_fuse")]
    assert cat.op_type == "Concat" and len(cat.input) == levels, cat
    assert [a.i for a in cat.attribute if a.name == "axis"] == [-1], cat
    for i, x in enumerate(cat.input):
        assert x == f"decode_head.linear_c.{i}/out", (i, x)
    relu = by_out[matmul_input("head")]
    assert relu.op_type == "Relu" and relu.input[0] == "decode_head.linear_fuse/out", relu
    for i in range(levels):
        assert matmul_input(f"decode_head.linear_c.{i}").endswith("/out"), i  # a LayerNorm's
    if qpath:
        same_quantization(g, linears, qpath)
    return f", a {levels}-level all-MLP decoder{' quantized as ' + qpath if qpath else ''}"


def structure(path, qdq, seg, levels, qpath):
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [13], m.opset_import
    g = m.graph
    assert [i.name for i in g.input] == ["input"]
    assert seg or [o.name for o in g.output] == ["logits"], g.output
    for v in (g.input[0], *g.output):
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
    shapes = seg_structure(onnx, m) if seg else ""
    if levels:
        shapes += seg_mlp_structure(onnx, m, levels, qdq, qpath)
    print(f"{path}: valid ONNX, opset 13, {len(g.node)} nodes, {len(g.initializer)} initializers"
          f"{', QDQ' if qdq else ''}{shapes}")
    return 0


def decode(z, G, S):
    """Per-patch logits z (n, G*G, K) to pixel scores (n, S, S, K): evrt.h's
    "Segmentation" decoder in float32, one rounding per product and sum as
    there (numpy fuses nothing), so evit's scores to the bit."""
    f32 = np.float32
    n, K = len(z), z.shape[-1]
    z = z.reshape(n, G, G, K)
    s = np.maximum((np.arange(S, dtype=f32) + f32(0.5)) * (f32(G) / f32(S)) - f32(0.5), f32(0))
    i0 = np.minimum(s.astype(np.int64), G - 1)
    i1 = np.minimum(i0 + 1, G - 1)
    f = s - i0.astype(f32)
    fx, fy = f[None, None, :, None], f[None, :, None, None]
    h = (f32(1) - fx) * z[:, :, i0] + fx * z[:, :, i1]  # (n, G, S, K): every grid row, along x
    return (f32(1) - fy) * h[:, i0] + fy * h[:, i1]


def decoder(args):
    n, G, S, K = (int(a) for a in args[2:6])
    z = np.fromfile(args[0], np.float32).reshape(n, G * G, K)
    px = np.fromfile(args[1], np.float32).reshape(n, S, S, K)
    same = bool((decode(z, G, S) == px).all())
    print(f"the test's decoder {'gives' if same else 'does NOT give'} evit's pixel scores bit for bit "
          f"({n} images, {G}x{G} patches to {S}x{S} pixels)")
    return 0 if same else 1


def seg(args):
    import h5py
    with h5py.File(args[1], "r") as f:
        ref = f["logits"][()]
    n, N, K = ref.shape
    S, G = int(args[2]), int(round(N ** 0.5))
    logits = np.fromfile(args[0] + ".logits", np.float32).reshape(n, N, K)
    scores = np.fromfile(args[0] + ".scores", np.float32).reshape(n, K, S, S).transpose(0, 2, 3, 1)
    mask = np.fromfile(args[0] + ".mask", np.int64).reshape(n, S, S)
    px = decode(ref, G, S)
    dl, ds = float(np.abs(logits - ref).max()), float(np.abs(scores - px).max())
    top2 = np.sort(px, -1)[..., -2:]
    gap = top2[..., 1] - top2[..., 0]
    differ = mask != px.argmax(-1)
    nd, worst = int(differ.sum()), float(gap[differ].max()) if differ.any() else 0.0
    print(f"ONNX Runtime vs evit on {n} images of {S}x{S}: max |logit difference| {dl:.3g}, max |score "
          f"difference| {ds:.3g}; {nd} of {mask.size} mask pixels differ (largest evit top-2 gap among them "
          f"{worst:.3g}); {int((gap < 1e-4).sum())} pixels are near-ties (gap < 1e-4)")
    if not (mask == scores.argmax(-1)).all():
        print("the mask is not the argmax of the scores")
        return 1
    good = True
    if "--tol" in args:
        tol = float(args[args.index("--tol") + 1])
        good = dl <= tol and ds <= tol
    if "--agree" not in args:
        return 0 if good and worst < 1e-4 else 1
    agree = float(args[args.index("--agree") + 1])
    # a score moved by at most ds flips a pixel only if its gap is under 2 ds
    return 0 if good and 100 * (1 - nd / mask.size) >= agree and worst <= 2 * ds else 1


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "structure":
        levels = int(args[args.index("--levels") + 1]) if "--levels" in args else 0
        qpath = args[args.index("--quantized") + 1] if "--quantized" in args else None
        return structure(args[0], "--qdq" in args, "--seg" in args, levels, qpath)
    if cmd == "decoder":
        return decoder(args)
    if cmd == "seg":
        return seg(args)
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
