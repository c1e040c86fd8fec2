#!/usr/bin/python3
"""A timm-style VisionTransformer in plain PyTorch, loaded from an evit
checkpoint, to check that evit computes the same logits.

    torch_vit.py CHECKPOINT.h5 DATASET.h5 LOGITS.h5 [--count N] [--tol 1e-4]
    torch_vit.py CHECKPOINT.h5 DATASET.h5 PATCHES.f32 --pixels PIXELS.f32 --count N
    torch_vit.py --randomize SCALE IN.h5 OUT.h5

The second form rewrites every tensor of a checkpoint with h5py, drawing
weights from N(0, SCALE) and LayerNorm weights around 1, so the comparison
also runs on a model whose activations are far from an initialised one's, from
a file evit did not write.

A segmentation checkpoint (head attribute "seg_linear") is Segmenter's
linear decoder: the head on every patch token after the final norm,
logits (N, K) per image, upsampled to pixels with F.interpolate(bilinear,
align_corners=False); the second form compares both with the raw float32
arrays tests/seg_logits writes.  A "seg_mlp" checkpoint is SegFormer's
all-MLP decoder (Xie et al., NeurIPS 2021) on a plain ViT, written here
from evit's equations (model/vit.h), without SegFormer's BatchNorm: each
level's block output (patch tokens) through its LayerNorm (the last level's
is the final norm) and its linear_c, concatenated, linear_fuse, ReLU, then
the head on every patch.

Token Merging (a checkpoint with a merge_r attribute) is written here from
the paper (Bolya et al., ICLR 2023): bipartite soft matching on the keys
averaged over heads after each block's attention, the class token
protected, size-weighted averages and proportional attention (log size
added to the scores); such a model runs in float64.

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

    def forward(self, x, size=None):
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        att = (q @ k.transpose(-2, -1)) * self.scale
        if size is not None:  # proportional attention
            att = att + size.log()[:, None, None, :]
        att = att.softmax(dim=-1)
        x = (att @ v).transpose(1, 2).reshape(B, N, self.heads * self.head_dim)
        return self.proj(x), k.mean(1)


def bipartite_soft_matching(metric, r):
    """ToMe's matching of (B, T, d) metrics: returns (unmerged A indices in
    input order, merged A indices, their B matches), each (B, .)."""
    metric = metric / metric.norm(dim=-1, keepdim=True)
    a, b = metric[:, ::2], metric[:, 1::2]
    scores = a @ b.transpose(-1, -2)
    scores[:, 0, :] = -float("inf")  # the class token never merges
    node_max, node_idx = scores.max(dim=-1)
    edge_idx = torch.sort(node_max, dim=-1, descending=True, stable=True).indices
    unm_idx = edge_idx[:, r:].sort(dim=-1).values  # keep input order (class token first)
    src_idx = edge_idx[:, :r]
    return unm_idx, src_idx, node_idx.gather(-1, src_idx)


def merge_wavg(x, size, unm_idx, src_idx, dst_idx):
    """Size-weighted average of the merged tokens: [unmerged A ; B]."""
    def merge(t):
        c = t.shape[-1]
        src, dst = t[:, ::2], t[:, 1::2]
        unm = src.gather(1, unm_idx[..., None].expand(-1, -1, c))
        moved = src.gather(1, src_idx[..., None].expand(-1, -1, c))
        dst = dst.scatter_reduce(1, dst_idx[..., None].expand(-1, -1, c), moved, reduce="sum")
        return torch.cat([unm, dst], dim=1)
    x = merge(x * size[..., None])
    size = merge(size[..., None])[..., 0]
    return x / size[..., None], size


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact erf GELU, as timm's default


class Block(nn.Module):
    def __init__(self, dim, heads, head_dim, hidden, r=0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)
        self.r = r

    def forward(self, xs):
        x, size = xs
        a, metric = self.attn(self.norm1(x), size)
        x = x + a
        if self.r:
            if size is None:
                size = torch.ones(x.shape[:2], dtype=x.dtype)
            x, size = merge_wavg(x, size, *bipartite_soft_matching(metric, self.r))
        return x + self.mlp(self.norm2(x)), size


class PatchEmbed(nn.Module):
    def __init__(self, chans, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class MlpDecoder(nn.Module):
    """SegFormer's all-MLP decoder over the levels' patch tokens f_i:
    ReLU(linear_fuse([linear_c_i(LN_i(f_i))]_i)), LN of the last level the
    ViT's final norm."""
    def __init__(self, dim, width, levels):
        super().__init__()
        self.norms = nn.ModuleList([nn.LayerNorm(dim, eps=1e-6) for _ in levels[:-1]])
        self.linear_c = nn.ModuleList([nn.Linear(dim, width) for _ in levels])
        self.linear_fuse = nn.Linear(len(levels) * width, width)

    def forward(self, feats, last_norm):
        norms = list(self.norms) + [last_norm]
        e = [lin(norm(f)) for f, norm, lin in zip(feats, norms, self.linear_c)]
        return F.relu(self.linear_fuse(torch.cat(e, dim=-1)))


class VisionTransformer(nn.Module):
    def __init__(self, img_size, chans, patch, classes, dim, heads, head_dims, hiddens, merge_r=None,
                 head="class", decoder_dim=0, decoder_levels=()):
        super().__init__()
        self.seg = head in ("seg_linear", "seg_mlp")
        self.levels = list(decoder_levels) if head == "seg_mlp" else []
        n = (img_size // patch) ** 2
        merge_r = merge_r or [0] * len(heads)
        self.patch_embed = PatchEmbed(chans, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, h, d, m, r) for h, d, m, r in zip(heads, head_dims, hiddens, merge_r)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        if self.levels:
            self.decode_head = MlpDecoder(dim, decoder_dim, self.levels)
        self.head = nn.Linear(decoder_dim if self.levels else dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        if self.levels:
            feats, xs = [], (x, None)
            for i, blk in enumerate(self.blocks):
                xs = blk(xs)
                if i in self.levels:
                    feats.append(xs[0][:, 1:])
            return self.head(self.decode_head(feats, self.norm))
        x = self.norm(self.blocks((x, None))[0])
        return self.head(x[:, 1:]) if self.seg else self.head(x[:, 0])


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


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
                              [int(v) for v in a["mlp_hidden"]],
                              [int(v) for v in a["merge_r"]] if "merge_r" in a else None,
                              text(a["head"]) if "head" in a else "class",
                              int(a["decoder_dim"][0]) if "decoder_dim" in a else 0,
                              [int(v) for v in a["decoder_levels"]] if "decoder_levels" in a else ())
    model.load_state_dict(state, strict=True)
    if "merge_r" in a:
        model = model.double()
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


def compare_seg(model, mean, std, images, args):
    """Patch logits (n, N, K) and pixel logits (n, H, W, K) against evit's."""
    n, h, w = images.shape[0], images.shape[1], images.shape[2]
    x = (images.astype(np.float32) / np.float32(255.0) - mean) / std
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        patches = model(x)  # (n, N, K)
        g = int(round(patches.shape[1] ** 0.5))
        grid = patches.transpose(1, 2).reshape(n, -1, g, g)
        pixels = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    ours_p, ours_x = patches.numpy(), pixels.numpy()
    theirs_p = np.fromfile(args.logits, np.float32).reshape(ours_p.shape)
    theirs_x = np.fromfile(args.pixels, np.float32).reshape(ours_x.shape)
    dp, dx = float(np.abs(ours_p - theirs_p).max()), float(np.abs(ours_x - theirs_x).max())
    agree = float((ours_x.argmax(-1) == theirs_x.argmax(-1)).mean())
    print(f"torch vs evit segmentation on {n} images: max |patch logit difference| {dp:.3g}, "
          f"max |pixel logit difference| {dx:.3g} (tolerance {args.tol:g}), pixel argmax agreement "
          f"{100 * agree:.2f}%")
    return 0 if max(dp, dx) <= args.tol else 1


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--randomize":
        return randomize(float(sys.argv[2]), sys.argv[3], sys.argv[4])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("dataset")
    ap.add_argument("logits")
    ap.add_argument("--count", type=int, default=0, help="compare the first N images (0: all)")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--pixels", help="segmentation: the upsampled logits (raw float32), LOGITS the patches'")
    args = ap.parse_args()

    torch.set_num_threads(1)
    model, mean, std = load_evit_checkpoint(args.checkpoint)
    with h5py.File(args.dataset, "r") as f:
        images = f["images"][()]
    n = len(images) if args.count <= 0 else min(args.count, len(images))
    if model.seg:
        return compare_seg(model, mean, std, images[:n], args)
    with h5py.File(args.logits, "r") as f:
        theirs = f["logits"][()]
    # uint8 (N, H, W, C) -> float (N, C, H, W), normalised as evit does
    x = images[:n].astype(np.float32) / np.float32(255.0)
    x = (x - mean) / std
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    x = x.to(next(model.parameters()).dtype)
    with torch.no_grad():
        ours = torch.cat([model(x[i:i + 256]) for i in range(0, n, 256)]).numpy()
    diff = float(np.abs(ours - theirs[:n]).max())
    agree = float((ours.argmax(1) == theirs[:n].argmax(1)).mean())
    print(f"torch vs evit on {n} images: max |logit difference| {diff:.3g} "
          f"(tolerance {args.tol:g}), argmax agreement {100 * agree:.2f}%")
    return 0 if diff <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
