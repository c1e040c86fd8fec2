#!/usr/bin/python3
"""PyTorch's training throughput for the same models and step as
bench/train: batch 64, label smoothing 0.1, AdamW, no augmentation.

    torch_train.py [--batch N] [--seconds S] [--threads T] CONFIG.json ...

Prints one line per config: name, threads, images/s.  Uses the timm-named
VisionTransformer of tests/torch_vit.py.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from torch_vit import VisionTransformer  # noqa: E402


def build(cfg):
    heads = cfg["num_heads"]
    hd = cfg.get("head_dim", cfg["embed_dim"] // heads)
    depth = cfg["depth"]
    return VisionTransformer(cfg["img_size"], cfg["channels"], cfg["patch"], cfg["num_classes"],
                             cfg["embed_dim"], [heads] * depth, [hd] * depth, [cfg["mlp_hidden"]] * depth)


def measure(model, opt, x, y, seconds):
    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        loss.backward()
        opt.step()
    step()
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        el = time.perf_counter() - t0
        if el >= seconds:
            return n * x.shape[0] / el


def blas_in_use():
    """The BLAS libraries this process has mapped (after a first matmul)."""
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line.rsplit("/", 1)[-1].lower()}
    return ", ".join(sorted(libs)) or "none mapped"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("configs", nargs="+")
    a = ap.parse_args()
    torch.manual_seed(0)
    for path in a.configs:
        cfg = json.load(open(path))
        model = build(cfg).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
        x = torch.randn(a.batch, cfg["channels"], cfg["img_size"], cfg["img_size"])
        y = torch.randint(0, cfg["num_classes"], (a.batch,))
        for t in a.threads:
            torch.set_num_threads(t)
            print(f"{cfg['name']} {t} {measure(model, opt, x, y, a.seconds):.1f}", flush=True)
    print(f"torch BLAS in use: {blas_in_use()}; threads per row: torch.set_num_threads", file=sys.stderr)


if __name__ == "__main__":
    main()
