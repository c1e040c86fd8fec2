#!/usr/bin/python3
"""Largest absolute difference between the tensors of two evit checkpoints
(or the logits of two logits files), for the MPI tests.

    wdiff.py A.h5 B.h5 [--tol T]     prints the difference; exit 1 above T
    wdiff.py --same-bytes A.h5 B.h5 DATASET   exit 0 when DATASET's bytes match
"""
import sys

import h5py
import numpy as np


def tensors(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset)
                     and not n.startswith("train/") else None)
    return out


def main():
    if sys.argv[1] == "--same-bytes":
        with h5py.File(sys.argv[2], "r") as a, h5py.File(sys.argv[3], "r") as b:
            same = a[sys.argv[4]][()].tobytes() == b[sys.argv[4]][()].tobytes()
        print(f"{sys.argv[4]}: {'identical bytes' if same else 'DIFFERENT bytes'}")
        return 0 if same else 1
    a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
    if sorted(a) != sorted(b):
        print("different tensors")
        return 1
    d = max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)
    tol = float(sys.argv[sys.argv.index("--tol") + 1]) if "--tol" in sys.argv else 0.0
    print(f"max |difference| {d:.3g} (tolerance {tol:g})")
    return 0 if d <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
