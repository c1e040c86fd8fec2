#!/usr/bin/python3
"""A timm-style VisionTransformer in plain PyTorch, loaded from an evit
checkpoint, to check that evit computes the same logits.

    torch_vit.py CHECKPOINT.h5 DATASET.h5 LOGITS.h5 [--count N] [--tol 1e-4]
    torch_vit.py --randomize SCALE IN.h5 OUT.h5

The second form rewrites every tensor of a checkpoint with h5py, drawing
weights from N(0, SCALE) and LayerNorm weights around 1, so the comparison
also runs on a model whose activations are far from an initialised one's, from
a file evit did not write.

Builds the model with the module names of timm's VisionTransformer (so that
load_state_dict(strict=True) checks every key and shape), per-block head
counts and MLP widths taken from the checkpoint's attributes, normalises the
images with the checkpoint's mean/std, and compares its logits with the ones
evit-eval saved.  Exit 0 when the largest difference is within tol.
"""
import argparse
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, dim, heads, head_dim):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=True)
        self.proj = nn.Linear(heads * head_dim, dim)

    def forward(self, x):
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        att = (q @ k.transpose(-2, -1)) * self.scale
        att = att.softmax(dim=-1)
        x = (att @ v).transpose(1, 2).reshape(B, N, self.heads * self.head_dim)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact erf GELU, as timm's default


class Block(nn.Module):
    def __init__(self, dim, heads, head_dim, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, chans, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    def __init__(self, img_size, chans, patch, classes, dim, heads, head_dims, hiddens):
        super().__init__()
        n = (img_size // patch) ** 2
        self.patch_embed = PatchEmbed(chans, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, h, d, m) for h, d, m in zip(heads, head_dims, hiddens)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def load_evit_checkpoint(path):
    """The ten lines docs/FORMATS.md shows: an evit checkpoint as a timm
    state_dict plus its model shape."""
    with h5py.File(path, "r") as f:
        state = {}
        f.visititems(lambda name, obj: state.__setitem__(name.replace("/", "."), torch.from_numpy(obj[()]))
                     if isinstance(obj, h5py.Dataset) else None)
        a = dict(f.attrs)
    model = VisionTransformer(int(a["img_size"][0]), int(a["channels"][0]), int(a["patch"][0]),
                              int(a["num_classes"][0]), int(a["embed_dim"][0]),
                              [int(v) for v in a["num_heads"]], [int(v) for v in a["head_dim"]],
                              [int(v) for v in a["mlp_hidden"]])
    model.load_state_dict(state, strict=True)
    return model.eval(), np.asarray(a["mean"], np.float32), np.asarray(a["std"], np.float32)


def randomize(scale, src, dst, seed=0):
    rng = np.random.default_rng(seed)
    with h5py.File(src, "r") as fin, h5py.File(dst, "w") as fout:
        for k, v in fin.attrs.items():
            fout.attrs[k] = v

        def copy(name, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            shape = obj.shape
            if "norm" in name and name.endswith("weight"):
                w = 1.0 + scale * rng.standard_normal(shape)
            else:
                w = scale * rng.standard_normal(shape)
            fout.create_dataset(name, data=w.astype(np.float32))
        fin.visititems(copy)
    return 0


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--randomize":
        return randomize(float(sys.argv[2]), sys.argv[3], sys.argv[4])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("dataset")
    ap.add_argument("logits")
    ap.add_argument("--count", type=int, default=0, help="compare the first N images (0: all)")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    torch.set_num_threads(1)
    model, mean, std = load_evit_checkpoint(args.checkpoint)
    with h5py.File(args.dataset, "r") as f:
        images = f["images"][()]
    with h5py.File(args.logits, "r") as f:
        theirs = f["logits"][()]
    n = len(images) if args.count <= 0 else min(args.count, len(images))
    # uint8 (N, H, W, C) -> float (N, C, H, W), normalised as evit does
    x = images[:n].astype(np.float32) / np.float32(255.0)
    x = (x - mean) / std
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        ours = torch.cat([model(x[i:i + 256]) for i in range(0, n, 256)]).numpy()
    diff = float(np.abs(ours - theirs[:n]).max())
    agree = float((ours.argmax(1) == theirs[:n].argmax(1)).mean())
    print(f"torch vs evit on {n} images: max |logit difference| {diff:.3g} "
          f"(tolerance {args.tol:g}), argmax agreement {100 * agree:.2f}%")
    return 0 if diff <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
