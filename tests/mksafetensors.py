#!/usr/bin/env python3
"""Writes a random timm-named VisionTransformer state_dict as safetensors,
from the format's definition and the standard library alone: 8 bytes of
little-endian header length, the JSON header, then the tensors.

    mksafetensors.py OUT [--img 28 --chans 1 --patch 4 --dim 32 --depth 2
        --heads 2 --mlp 64 --classes 10] [--dtype F32|F16|BF16] [--scale S]
        [--seed N] [--extra NAME] [--drop NAME] [--metadata K=V]

--extra adds a tensor of shape (1, 1, dim) (say dist_token); --drop leaves
one out.  Weights are N(0, scale), LayerNorm weights 1 + N(0, scale).
"""
import argparse
import json
import random
import struct
import sys


def timm_shapes(a):
    t = (a.img // a.patch) ** 2 + 1
    inner = a.heads * (a.dim // a.heads)
    s = [("cls_token", (1, 1, a.dim)), ("pos_embed", (1, t, a.dim)),
         ("patch_embed.proj.weight", (a.dim, a.chans, a.patch, a.patch)),
         ("patch_embed.proj.bias", (a.dim,))]
    for l in range(a.depth):
        p = f"blocks.{l}."
        s += [(p + "norm1.weight", (a.dim,)), (p + "norm1.bias", (a.dim,)),
              (p + "attn.qkv.weight", (3 * inner, a.dim)), (p + "attn.qkv.bias", (3 * inner,)),
              (p + "attn.proj.weight", (a.dim, inner)), (p + "attn.proj.bias", (a.dim,)),
              (p + "norm2.weight", (a.dim,)), (p + "norm2.bias", (a.dim,)),
              (p + "mlp.fc1.weight", (a.mlp, a.dim)), (p + "mlp.fc1.bias", (a.mlp,)),
              (p + "mlp.fc2.weight", (a.dim, a.mlp)), (p + "mlp.fc2.bias", (a.dim,))]
    s += [("norm.weight", (a.dim,)), ("norm.bias", (a.dim,)),
          ("head.weight", (a.classes, a.dim)), ("head.bias", (a.classes,))]
    return s


def encode(values, dtype):
    if dtype == "F32":
        return struct.pack(f"<{len(values)}f", *values)
    if dtype == "F16":
        return struct.pack(f"<{len(values)}e", *values)
    # BF16: the top 16 bits of the float32, rounded to nearest even
    out = bytearray()
    for v in values:
        b = struct.unpack("<I", struct.pack("<f", v))[0]
        b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
        out += struct.pack("<H", b & 0xFFFF)
    return bytes(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    for k, v in [("img", 28), ("chans", 1), ("patch", 4), ("dim", 32), ("depth", 2), ("heads", 2),
                 ("mlp", 64), ("classes", 10), ("seed", 1)]:
        ap.add_argument("--" + k, type=int, default=v)
    ap.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"])
    ap.add_argument("--scale", type=float, default=0.15)
    ap.add_argument("--extra", action="append", default=[])
    ap.add_argument("--drop", action="append", default=[])
    ap.add_argument("--metadata", action="append", default=[])
    a = ap.parse_args()

    rng = random.Random(a.seed)
    shapes = [(n, s) for n, s in timm_shapes(a) if n not in a.drop]
    shapes += [(n, (1, 1, a.dim)) for n in a.extra]
    header, blobs, at = {}, [], 0
    if a.metadata:
        header["__metadata__"] = dict(kv.split("=", 1) for kv in a.metadata)
    size = {"F32": 4, "F16": 2, "BF16": 2}[a.dtype]
    for name, shape in shapes:
        n = 1
        for d in shape:
            n *= d
        base = 1.0 if "norm" in name and name.endswith("weight") else 0.0
        blob = encode([base + rng.gauss(0.0, a.scale) for _ in range(n)], a.dtype)
        header[name] = {"dtype": a.dtype, "shape": list(shape), "data_offsets": [at, at + n * size]}
        blobs.append(blob)
        at += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # the reference writer pads to 8 bytes
    with open(a.out, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
