#!/usr/bin/python3
"""PyTorch's logits of a timm-named ViT stored as safetensors, against the
logits evit-eval saved for the model evit-import made of the same file.

    torch_safetensors.py --write OUT.safetensors --dtype F32|F16|BF16
        [--img 28 --chans 1 --patch 4 --dim 48 --depth 3 --heads 3 --mlp 96
         --classes 10 --scale 0.15 --seed 7]
    torch_safetensors.py MODEL.safetensors DATASET.h5 EVIT_LOGITS.h5 --heads H
        [--mean M] [--std S] [--tol 1e-4]

The first form builds tests/torch_vit.py's VisionTransformer in PyTorch,
draws its parameters (N(0, scale), LayerNorm weights around 1), and writes
its state_dict as safetensors by hand from the format's definition: an
8-byte little-endian header length, the JSON header, the raw tensors.

Reads the file with its own parser (numpy on the raw bytes, not evit's),
builds tests/torch_vit.py's VisionTransformer from the shapes, loads the
tensors with load_state_dict(strict=True) as float32 (F16 and BF16 widened,
as torch.load of a half checkpoint into a float model does) and compares.
"""
import argparse
import json
import os
import struct
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_vit import VisionTransformer  # noqa: E402


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    state = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        buf = data[b:e]
        if t["dtype"] == "F32":
            a = np.frombuffer(buf, "<f4")
        elif t["dtype"] == "F16":
            a = np.frombuffer(buf, "<f2").astype(np.float32)
        elif t["dtype"] == "BF16":
            a = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{path}: dtype {t['dtype']}")
        state[name] = torch.from_numpy(a.reshape(t["shape"]).astype(np.float32))
    return state


def write(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", required=True)
    ap.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"])
    for k, v in [("img", 28), ("chans", 1), ("patch", 4), ("dim", 48), ("depth", 3), ("heads", 3), ("mlp", 96),
                 ("classes", 10), ("seed", 7)]:
        ap.add_argument("--" + k, type=int, default=v)
    ap.add_argument("--scale", type=float, default=0.15)
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)
    model = VisionTransformer(a.img, a.chans, a.patch, a.classes, a.dim, [a.heads] * a.depth,
                              [a.dim // a.heads] * a.depth, [a.mlp] * a.depth)
    with torch.no_grad():
        for name, p in model.named_parameters():
            base = 1.0 if "norm" in name and name.endswith("weight") else 0.0
            p.copy_(base + a.scale * torch.randn_like(p))
    tdtype = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[a.dtype]
    header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in model.state_dict().items():
        t = t.to(tdtype).contiguous()
        # raw little-endian bytes of the tensor (bfloat16 has no numpy type: view as int16)
        raw = t.view(torch.int16).numpy().tobytes() if a.dtype == "BF16" else t.numpy().astype(
            "<f4" if a.dtype == "F32" else "<f2").tobytes()
        header[name] = {"dtype": a.dtype, "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(a.write, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return 0


def main():
    if "--write" in sys.argv:
        return write(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("dataset")
    ap.add_argument("logits")
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--mean", type=float, default=0.5)
    ap.add_argument("--std", type=float, default=0.5)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()

    torch.set_num_threads(1)
    state = read_safetensors(a.model)
    dim, chans, patch, _ = state["patch_embed.proj.weight"].shape
    img = int(round((state["pos_embed"].shape[1] - 1) ** 0.5)) * patch
    depth = len([k for k in state if k.endswith(".norm1.weight")])
    inner = [state[f"blocks.{l}.attn.qkv.weight"].shape[0] // 3 for l in range(depth)]
    hidden = [state[f"blocks.{l}.mlp.fc1.weight"].shape[0] for l in range(depth)]
    model = VisionTransformer(img, chans, patch, state["head.weight"].shape[0], dim, [a.heads] * depth,
                              [i // a.heads for i in inner], hidden)
    model.load_state_dict(state, strict=True)
    model.eval()

    with h5py.File(a.dataset, "r") as f:
        images = f["images"][()]
    with h5py.File(a.logits, "r") as f:
        theirs = f["logits"][()]
    x = (images.astype(np.float32) / np.float32(255.0) - np.float32(a.mean)) / np.float32(a.std)
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        ours = torch.cat([model(x[i:i + 256]) for i in range(0, len(x), 256)]).numpy()
    diff = float(np.abs(ours - theirs).max())
    print(f"torch vs evit-import on {len(x)} images: max |logit difference| {diff:.3g} (tolerance {a.tol:g}), "
          f"logit range {float(np.abs(ours).max()):.3g}")
    return 0 if diff <= a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
