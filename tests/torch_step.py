#!/usr/bin/python3
"""One optimiser step in PyTorch from an evit checkpoint, compared with the
checkpoint evit-distill wrote after the same step.

    torch_step.py BEFORE.h5 AFTER.h5 DATASET.h5 --batch B --opt sgd|adamw
                  --lr LR [--momentum M] [--wd WD] [--smoothing S] [--tol 1e-4]

The batch is the first B images of the dataset in order (evit-distill
--no-shuffle, no augmentation); the loss is cross-entropy with label
smoothing S.  Prints the largest difference over all parameters (for AdamW
without the attention key bias, whose exact gradient is zero).
"""
import argparse
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_vit import load_evit_checkpoint  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("dataset")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--opt", choices=["sgd", "adamw"], required=True)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--wd", type=float, default=0.0)
    ap.add_argument("--smoothing", type=float, default=0.0)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    torch.set_num_threads(1)

    model, mean, std = load_evit_checkpoint(a.before)
    model.train()
    with h5py.File(a.dataset, "r") as f:
        images = f["images"][: a.batch]
        labels = torch.from_numpy(f["labels"][: a.batch].astype(np.int64))
    x = (images.astype(np.float32) / np.float32(255.0) - mean) / std
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    # evit (like timm) decays only matrices and conv kernels
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and n not in ("cls_token", "pos_embed")]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and n not in ("cls_token", "pos_embed"))]
    groups = [{"params": decay, "weight_decay": a.wd}, {"params": rest, "weight_decay": 0.0}]
    if a.opt == "sgd":
        opt = torch.optim.SGD(groups, lr=a.lr, momentum=a.momentum)
    else:
        opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    opt.zero_grad()
    loss = F.cross_entropy(model(x), labels, label_smoothing=a.smoothing)
    loss.backward()
    opt.step()

    after, _, _ = load_evit_checkpoint(a.after)
    theirs = dict(after.named_parameters())
    worst, where = 0.0, ""
    moved = 0.0
    before, _, _ = load_evit_checkpoint(a.before)
    start = dict(before.named_parameters())
    for name, p in model.named_parameters():
        diff = (p.detach() - theirs[name].detach()).abs()
        if a.opt == "adamw" and name.endswith("attn.qkv.bias"):
            # The key bias adds q.b_k to a whole score row, which softmax
            # ignores: its exact gradient is 0, the computed one is rounding
            # noise, and AdamW's first step (~ lr * sign(g)) turns that noise
            # into +-lr in either framework.  Compare the q and v thirds only.
            third = diff.numel() // 3
            diff = torch.cat([diff[:third], diff[2 * third:]])
        d = float(diff.max())
        moved = max(moved, float((p.detach() - start[name].detach()).abs().max()))
        if d > worst:
            worst, where = d, name
    print(f"{a.opt} step, loss {float(loss):.6f}: largest weight change {moved:.3g}, "
          f"largest difference torch vs evit {worst:.3g} ({where}), tolerance {a.tol:g}")
    return 0 if worst <= a.tol and moved > 10 * a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
