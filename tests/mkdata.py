#!/usr/bin/python3
"""Writes a small synthetic IDX pair (gzip) for the CLI tests, with the
Python standard library only: N images of SIZE x SIZE, image i of class
i % CLASSES, a bright square whose position depends on the class, so that a
model can learn it.

    mkdata.py IMAGES.gz LABELS.gz N SIZE CLASSES
"""
import gzip
import random
import struct
import sys


def main(argv):
    images, labels, n, size, classes = argv[1], argv[2], int(argv[3]), int(argv[4]), int(argv[5])
    rng = random.Random(1)
    pix = bytearray()
    for i in range(n):
        c = i % classes
        img = bytearray(rng.randrange(0, 60) for _ in range(size * size))
        y0, x0 = (c * 7) % (size - 6), (c * 11) % (size - 6)
        for y in range(y0, y0 + 6):
            for x in range(x0, x0 + 6):
                img[y * size + x] = 200 + rng.randrange(0, 55)
        pix += img
    with gzip.open(images, "wb") as f:
        f.write(struct.pack(">HBBIII", 0, 8, 3, n, size, size) + bytes(pix))
    with gzip.open(labels, "wb") as f:
        f.write(struct.pack(">HBBI", 0, 8, 1, n) + bytes(i % classes for i in range(n)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
