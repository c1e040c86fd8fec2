#!/usr/bin/python3
"""Damages evit HDF5 files on purpose, for the bad-input tests.

    h5edit.py nan FILE DATASET          put a NaN in a dataset's first element
    h5edit.py shape FILE DATASET        replace a dataset by one with one row less
    h5edit.py label FILE INDEX VALUE    set labels[INDEX] = VALUE
    h5edit.py attr FILE KEY INT         set an integer attribute on "/"
    h5edit.py scale FILE DATASET F      multiply a dataset by F
"""
import sys

import h5py
import numpy as np


def main(argv):
    op, path = argv[1], argv[2]
    with h5py.File(path, "r+") as f:
        if op == "nan":
            d = f[argv[3]]
            a = d[()]
            a.flat[0] = np.nan
            d[...] = a
        elif op == "shape":
            a = f[argv[3]][()]
            del f[argv[3]]
            f.create_dataset(argv[3], data=a[:-1])
        elif op == "label":
            f["labels"][int(argv[3])] = int(argv[4])
        elif op == "scale":
            d = f[argv[3]]
            d[...] = (d[()].astype(np.float64) * float(argv[4])).astype(np.float32)
        elif op == "attr":
            f.attrs[argv[3]] = np.array([int(argv[4])], dtype=np.int32)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
