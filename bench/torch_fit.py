#!/usr/bin/python3
"""Train an evit recipe with PyTorch, from the same initial checkpoint, to
compare the accuracy evit-distill reaches with PyTorch's on an identical
recipe (bench/accuracy.sh runs both).

    torch_fit.py RECIPE.json --init INIT.h5 --data TRAIN.h5 --val TEST.h5
                 [--profile NAME] [--threads N] [--limit N] [--save OUT.h5]

--save writes the trained weights as an evit checkpoint (INIT.h5 with every
tensor replaced), so evit's later stages (evit-quantize, evit-export) can
take a PyTorch-trained model.

What "identical" means here, each point as evit-distill does it
(docs/DISTILL.md):
  - weights: INIT.h5, an evit checkpoint (evit-init CONFIG --seed S --data
    TRAIN.h5 writes the weights evit-distill starts from with seed S);
  - inputs: pixel/255 normalised with the checkpoint's mean and std; random
    crop (zero padding in pixel space) and horizontal flip when the recipe
    asks for them;
  - steps: ceil(N / batch) per epoch, the last batch short; learning rate per
    step: linear warm-up over round(warmup_epochs * steps_per_epoch) steps,
    then cosine from lr down to min_lr at the last step;
  - AdamW (decoupled decay) or SGD with momentum (decay added to the
    gradient), decay on matrices and the patch convolution only (not on
    biases, LayerNorm weights, pos_embed, cls_token); gradient clipping by
    global norm when clip_grad > 0; cross-entropy with label smoothing.
Only labels-only recipes (distill type none) are supported.  What differs is
the order of the images and the augmentation draws (PyTorch's generator,
seeded with the recipe's seed), so the two runs differ by seed noise.

Prints one line per epoch and, last, one JSON object with the final and best
validation top-1 and the last epoch's mean training loss.
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from torch_vit import load_evit_checkpoint  # noqa: E402


def merge(base, over):
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_recipe(path, profile):
    r = json.load(open(path))
    if profile:
        prof = r.get("profiles", {})
        if profile not in prof:
            sys.exit(f"{path}: no profile {profile!r}")
        r = merge(r, prof[profile])
    kind = r.get("distill", {}).get("type", "none")
    if kind != "none":
        sys.exit(f"{path}: distill type {kind!r}: torch_fit.py trains labels-only recipes")
    return r


def load_split(path, limit=0):
    with h5py.File(path, "r") as f:
        x, y = f["images"][()], f["labels"][()]
    if limit > 0:
        x, y = x[:limit], y[:limit]
    # uint8 (N, H, W, C) -> uint8 (N, C, H, W); normalised per batch
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.from_numpy(y.astype(np.int64))


def augment(x, pad, flip, g):
    """x: uint8 (B, C, H, W).  Shift by (dy, dx) in [-pad, pad]^2 with zero
    fill, then flip with probability 1/2, as evit_augment_batch."""
    B, _, H, W = x.shape
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad))
        d = torch.randint(0, 2 * pad + 1, (B, 2), generator=g)
        x = torch.stack([xp[b, :, d[b, 0]:d[b, 0] + H, d[b, 1]:d[b, 1] + W] for b in range(B)])
    if flip:
        f = torch.randint(0, 2, (B,), generator=g).bool()
        x = torch.where(f[:, None, None, None], x.flip(3), x)
    return x


def lr_at(step, lr, min_lr, warmup, total):
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(total - warmup, 1)
    s = max(min(step, total) - warmup, 0)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * s / span))


def param_groups(model, wd):
    decay, rest = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and name not in ("pos_embed", "cls_token") else rest).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]


def normalise(x, mean, std):
    """uint8 (B, C, H, W) -> float (B, C, H, W): (pixel/255 - mean) / std."""
    return (x.float() / 255 - mean) / std


def top1(model, x, y, mean, std):
    model.eval()
    hits = 0
    with torch.no_grad():
        for i in range(0, len(x), 512):
            hits += (model(normalise(x[i:i + 512], mean, std)).argmax(1) == y[i:i + 512]).sum().item()
    model.train()
    return 100.0 * hits / len(x)


def save_checkpoint(model, init, out):
    """INIT's file (config, attributes, dataset layout) with every tensor
    replaced by the trained one of the same timm name; written to a
    temporary name and renamed."""
    state = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    tmp = out + ".tmp"
    shutil.copyfile(init, tmp)
    with h5py.File(tmp, "r+") as f:
        for k, v in state.items():
            d = f[k.replace(".", "/")]
            if d.shape != v.shape:
                sys.exit(f"torch_fit.py: {init}: {k} is {d.shape}, the model's is {v.shape}")
            d[...] = v
    os.replace(tmp, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--init", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--profile", default="")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images only (smoke tests)")
    ap.add_argument("--save", default="", help="write the trained weights as an evit checkpoint (INIT's layout)")
    a = ap.parse_args()

    for path in (a.recipe, a.init, a.data, a.val):
        if not os.path.isfile(path):
            sys.exit(f"torch_fit.py: {path}: no such file")
    r = load_recipe(a.recipe, a.profile)
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(int(r.get("seed", 0)))
    model, mean, std = load_evit_checkpoint(a.init)
    model.train()
    mean = torch.from_numpy(mean)[None, :, None, None]
    std = torch.from_numpy(std)[None, :, None, None]
    xtr, ytr = load_split(a.data, a.limit)
    xva, yva = load_split(a.val)

    o = r.get("optimizer", {})
    lr, wd = float(o.get("lr", 1e-3)), float(o.get("weight_decay", 0.05))
    kind = o.get("type", "adamw")
    if kind == "adamw":
        betas = tuple(o.get("betas", [0.9, 0.999]))
        opt = torch.optim.AdamW(param_groups(model, wd), lr=lr, betas=betas, eps=float(o.get("eps", 1e-8)))
    elif kind == "sgd":
        opt = torch.optim.SGD(param_groups(model, wd), lr=lr, momentum=float(o.get("momentum", 0.9)),
                              nesterov=bool(o.get("nesterov", False)))
    else:
        sys.exit(f"{a.recipe}: optimizer {kind!r} not supported")
    sch = r.get("schedule", {})
    B, epochs = int(r.get("batch_size", 128)), int(r.get("epochs", 1))
    spe = (len(xtr) + B - 1) // B
    total = spe * epochs
    warmup = min(int(round(float(sch.get("warmup_epochs", 0)) * spe)), total)
    min_lr = float(sch.get("min_lr", 0.0))
    aug = r.get("augment", {})
    pad, flip = int(aug.get("crop_padding", 0)), bool(aug.get("hflip", False))
    ls, clip = float(r.get("label_smoothing", 0.0)), float(r.get("clip_grad", 0.0))

    step, best, final = 0, 0.0, 0.0
    for ep in range(epochs):
        t0, loss_sum = time.time(), 0.0
        order = torch.randperm(len(xtr), generator=g)
        for s in range(0, len(xtr), B):
            idx = order[s:s + B]
            x = normalise(augment(xtr[idx], pad, flip, g), mean, std)
            cur = lr_at(step, lr, min_lr, warmup, total)
            for grp in opt.param_groups:
                grp["lr"] = cur
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), ytr[idx], label_smoothing=ls)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            loss_sum += loss.item() * len(idx)
            step += 1
        dt = time.time() - t0
        final = top1(model, xva, yva, mean, std)
        best = max(best, final)
        print(f"epoch {ep + 1}/{epochs}: loss {loss_sum / len(xtr):.4f}, val {final:.2f}% (best {best:.2f}%), "
              f"{len(xtr) / dt:.0f} img/s", file=sys.stderr, flush=True)
    if a.save:
        save_checkpoint(model, a.init, a.save)
    print(json.dumps({"final_val_top1": round(final, 2), "best_val_top1": round(best, 2),
                      "final_loss": round(loss_sum / len(xtr), 4), "epochs": epochs, "steps": step}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
