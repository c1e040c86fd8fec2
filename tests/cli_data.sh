#!/bin/sh
# cli_data.sh: evit-data end to end: help and usage codes, IDX and PNG
# imports read back through `evit-data info`, PNG image/mask pairs as a
# segmentation dataset (read back byte for byte), Fashion-MNIST scenes, and
# failed imports that leave exactly one error line and no output file
# behind.
set -eu
. "$EVIT_SRC/tests/lib.sh"

FM=/usr/share/datasets/fashion-mnist

command -v python3 >/dev/null 2>&1 || skip "python3 is needed to write test inputs"

# Writes test inputs with nothing but the Python standard library:
#   png PATH SIZE VALUE     a SIZE x SIZE 8-bit gray PNG filled with VALUE
#   idx IMAGES LABELS N     N 4x4 images (image i filled with i) and labels
#                           i % 2, both gzip-compressed
cat >"$T/mk.py" <<'EOF'
import gzip, struct, sys, zlib

def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))

def png(path, size, value):
    rows = b"".join(b"\0" + bytes([value]) * size for _ in range(size))
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
                chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))

def idx(images, labels, n):
    with gzip.open(images, "wb") as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, n, 4, 4))
        f.write(b"".join(bytes([i]) * 16 for i in range(n)))
    with gzip.open(labels, "wb") as f:
        f.write(struct.pack(">BBBBI", 0, 0, 8, 1, n) + bytes(i % 2 for i in range(n)))

if sys.argv[1] == "png":
    png(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
else:
    idx(sys.argv[2], sys.argv[3], int(sys.argv[4]))
EOF
mk() { python3 "$T/mk.py" "$@"; }

# A failed import must leave its output directory empty: no file, no temp.
no_output_left() {
    [ -z "$(ls -A "$T/o")" ] || fail "a failed import left files behind: $(ls -A "$T/o")"
}
mkdir "$T/o"

# ---------------------------------------------------------------- usage
succeeds "$DATA" --help
stdout_has "usage: evit-data"
succeeds "$DATA" import --help
stdout_has "--idx IMAGES LABELS"
succeeds "$DATA" info --help
stdout_has "usage: evit-data info"
ok "--help on the command and each subcommand exits 0"

fails_with 2 "$DATA"
fails_with 2 "$DATA" frobnicate
fails_with 2 "$DATA" import --idx "$T/a" "$T/b"
fails_with 2 "$DATA" import --png "$T" -o "$T/o/x.h5"
fails_with 2 "$DATA" import --png "$T" -o "$T/o/x.h5" --size 8 --channels 5
fails_with 2 "$DATA" import --idx "$T/a" "$T/b" -o "$T/o/x.h5" --names onlyone
fails_with 2 "$DATA" info
no_output_left
ok "usage errors exit 2"

# ---------------------------------------------------------------- IDX
mk idx "$T/img.gz" "$T/lab.gz" 6
succeeds "$DATA" import --idx "$T/img.gz" "$T/lab.gz" -o "$T/small.h5" --names odd,even
stderr_has "imported 6 images 4x4x1, 2 classes"
succeeds "$DATA" info "$T/small.h5"
stdout_has "count: 6"
stdout_has "shape: 4x4x1"
stdout_has "0 odd: 3"
stdout_has "1 even: 3"
ok "a small gzip IDX pair imports with named classes"

if [ -f "$FM/t10k-images-idx3-ubyte.gz" ] && [ -f "$FM/t10k-labels-idx1-ubyte.gz" ]; then
    succeeds "$DATA" import --idx "$FM/t10k-images-idx3-ubyte.gz" \
        "$FM/t10k-labels-idx1-ubyte.gz" -o "$T/fm.h5" --names fashion-mnist
    succeeds "$DATA" info "$T/fm.h5"
    stdout_has "count: 10000"
    stdout_has "shape: 28x28x1"
    stdout_has "classes: 10"
    stdout_has "9 Ankle boot: 1000"
    ok "the Fashion-MNIST test split imports as 10000 images"
else
    echo "# Fashion-MNIST not in $FM: real-data import not checked"
fi

fails_with 1 "$DATA" import --idx "$T/missing.gz" "$T/lab.gz" -o "$T/o/x.h5"
stderr_has "$T/missing.gz"
no_output_left
ok "a missing IDX file fails with one error line naming it"

head -c 40 "$T/img.gz" >"$T/cut.gz"
fails_with 1 "$DATA" import --idx "$T/cut.gz" "$T/lab.gz" -o "$T/o/x.h5"
stderr_has "$T/cut.gz"
no_output_left
ok "a truncated gzip file fails with one error line naming it"

mk idx "$T/img7.gz" "$T/lab7.gz" 7
fails_with 1 "$DATA" import --idx "$T/img.gz" "$T/lab7.gz" -o "$T/o/x.h5"
stderr_has "$T/lab7.gz"
no_output_left
ok "image and label counts that disagree fail"

# ---------------------------------------------------------------- PNG
mkdir -p "$T/png/cat" "$T/png/dog"
mk png "$T/png/cat/a.png" 8 10
mk png "$T/png/cat/b.png" 8 20
mk png "$T/png/dog/a.png" 8 30
mk png "$T/png/dog/b.png" 8 40
mk png "$T/png/dog/c.png" 8 50
succeeds "$DATA" import --png "$T/png" -o "$T/png1.h5" --size 8 --channels 1
succeeds "$DATA" info "$T/png1.h5"
stdout_has "count: 5"
stdout_has "shape: 8x8x1"
stdout_has "0 cat: 2"
stdout_has "1 dog: 3"
stdout_has "source: $T/png"
succeeds "$DATA" import --png "$T/png" -o "$T/png3.h5" --size 8 --channels 3
succeeds "$DATA" info "$T/png3.h5"
stdout_has "shape: 8x8x3"
ok "a PNG class folder imports as gray and as RGB"

mk png "$T/png/dog/d.png" 12 60
fails_with 1 "$DATA" import --png "$T/png" -o "$T/o/x.h5" --size 8 --channels 1
stderr_has "$T/png/dog/d.png"
no_output_left
succeeds "$DATA" import --png "$T/png" -o "$T/png-r.h5" --size 8 --channels 1 --resize
ok "an image of another size fails unless --resize"

mkdir "$T/flat"
mk png "$T/flat/a.png" 8 1
fails_with 1 "$DATA" import --png "$T/flat" -o "$T/o/x.h5" --size 8 --channels 1
stderr_has "$T/flat"
no_output_left
ok "a folder with no class folders fails with one error line naming it"

printf 'not a png\n' >"$T/png/cat/c.png"
fails_with 1 "$DATA" import --png "$T/png" -o "$T/o/x.h5" --size 8 --channels 1 --resize
stderr_has "$T/png/cat/c.png"
no_output_left
ok "a broken PNG fails with one error line naming it"

# ---------------------------------------------------------------- info
fails_with 1 "$DATA" info "$T/missing.h5"
stderr_has "$T/missing.h5"
fails_with 1 "$DATA" info "$T/img.gz"
stderr_has "$T/img.gz"
ok "info on a missing or non-HDF5 file fails with one error line"

if [ -x "$EVIT_BIN/evit-init" ]; then
    succeeds "$EVIT_BIN/evit-init" fm-tiny -o "$T/model.h5"
    succeeds "$DATA" info "$T/model.h5"
    stdout_has "format: evit-checkpoint"
    stdout_has "name: fm-tiny"
    stdout_has "block 3: heads"
    stdout_has "params: "
    stdout_has "stage: init"
    ok "info on a checkpoint prints the model config"
fi

# ---------------------------------------------------------------- segmentation
# seg.py DIR: 3 image/mask pairs of 6 wide by 5 high, written with the
# standard library: DIR/img/NAME.png RGB of random pixels, DIR/mask/NAME.png
# gray class indices in {0, 1, 2} with some 255 (unlabelled), one mask a
# palette PNG (its indices are the classes, not its colours), and DIR/ref
# holding the exact bytes (images then masks, in name order)
cat >"$T/seg.py" <<'PYEOF'
import os, random, struct, sys, zlib

def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))

def png(path, w, h, ch, px, palette=False):
    kind = 3 if palette else {1: 0, 3: 2}[ch]
    rows = b"".join(b"\0" + bytes(px[y * w * ch:(y + 1) * w * ch]) for y in range(h))
    extra = chunk(b"PLTE", bytes((37 * i) % 256 for i in range(3 * 256))) if palette else b""
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, kind, 0, 0, 0)) +
                extra + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))

d = sys.argv[1]
os.makedirs(d + "/img"); os.makedirs(d + "/mask")
rng = random.Random(7)
imgs, masks = b"", b""
for name in ["a", "b", "c"]:
    img = bytes(rng.randrange(256) for _ in range(6 * 5 * 3))
    mask = bytes(rng.choice([0, 1, 2, 2, 255]) for _ in range(6 * 5))
    png("%s/img/%s.png" % (d, name), 6, 5, 3, img)
    png("%s/mask/%s.png" % (d, name), 6, 5, 1, mask, palette=(name == "b"))
    imgs += img; masks += mask
open(d + "/ref", "wb").write(imgs + masks)
PYEOF
mkdir "$T/seg"
python3 "$T/seg.py" "$T/seg/ok"
succeeds "$DATA" import --seg "$T/seg/ok/img" "$T/seg/ok/mask" -o "$T/seg.h5" --ignore 255 --names bg,cat,dog
stderr_has "imported 3 image/mask pairs 5x6x3, 3 classes"
succeeds "$DATA" info "$T/seg.h5"
stdout_has "task: segmentation"
stdout_has "shape: 5x6x3"
stdout_has "2 dog: "
stdout_has "ignore_index: 255"
if python3 -c 'import h5py, numpy' 2>/dev/null; then
    python3 - "$T/seg.h5" "$T/seg/ok/ref" <<'PYEOF' || fail "the segmentation dataset does not hold the PNGs' bytes"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
ref = open(sys.argv[2], "rb").read()
assert f["images"].shape == (3, 5, 6, 3) and f["masks"].shape == (3, 5, 6), (f["images"].shape, f["masks"].shape)
assert f["images"][()].tobytes() + f["masks"][()].tobytes() == ref, "bytes differ"
task = f.attrs["task"]
assert (task.decode() if isinstance(task, bytes) else task) == "segmentation"
assert int(f.attrs["ignore_index"][0]) == 255
PYEOF
fi
ok "PNG image/mask pairs import as a segmentation dataset, pixel for pixel, palette masks by index"

succeeds "$DATA" import --seg "$T/seg/ok/img" "$T/seg/ok/mask" -o "$T/seg8.h5" --ignore 255 --size 8 --channels 1
succeeds "$DATA" info "$T/seg8.h5"
stdout_has "shape: 8x8x1"
stdout_has "classes: 3 (pixels per class)"
ok "--size resizes the pairs and the classes default to the largest index + 1"

# each broken folder is a copy of the good one with one thing wrong
broken() {
    cp -r "$T/seg/ok" "$T/seg/$1"
}
broken lonely
rm "$T/seg/lonely/mask/b.png"
fails_with 1 "$DATA" import --seg "$T/seg/lonely/img" "$T/seg/lonely/mask" -o "$T/o/x.h5" --ignore 255
stderr_has "$T/seg/lonely/img/b.png: image without a mask"
no_output_left
broken orphan
rm "$T/seg/orphan/img/c.png"
fails_with 1 "$DATA" import --seg "$T/seg/orphan/img" "$T/seg/orphan/mask" -o "$T/o/x.h5" --ignore 255
stderr_has "$T/seg/orphan/mask/c.png: mask without an image"
no_output_left
ok "an image without its mask, or a mask without its image, fails naming it"

broken sizes
mk png "$T/seg/sizes/mask/c.png" 6 1
fails_with 1 "$DATA" import --seg "$T/seg/sizes/img" "$T/seg/sizes/mask" -o "$T/o/x.h5" --ignore 255
stderr_has "$T/seg/sizes/mask/c.png: mask is 6x6"
no_output_left
broken other
mk png "$T/seg/other/img/c.png" 6 1
cp "$T/seg/other/img/c.png" "$T/seg/other/mask/c.png"
fails_with 1 "$DATA" import --seg "$T/seg/other/img" "$T/seg/other/mask" -o "$T/o/x.h5" --ignore 255
stderr_has "$T/seg/other/img/c.png: image is 6x6, the first pair's is 6x5"
no_output_left
ok "a pair of two sizes, or a pair of another size than the first, fails naming it"

fails_with 1 "$DATA" import --seg "$T/seg/ok/img" "$T/seg/ok/mask" -o "$T/o/x.h5" --ignore 255 --names bg,cat
stderr_has "mask value 2 at"
stderr_has "is outside [0, 2)"
no_output_left
fails_with 1 "$DATA" import --seg "$T/seg/ok/img" "$T/seg/ok/mask" -o "$T/o/x.h5" --names bg,cat,dog
stderr_has "mask value 255 at"
stderr_has "--ignore V"
no_output_left
ok "a mask value at or above the class count fails naming the mask"

broken rgb
cp "$T/seg/rgb/img/a.png" "$T/seg/rgb/mask/a.png"
fails_with 1 "$DATA" import --seg "$T/seg/rgb/img" "$T/seg/rgb/mask" -o "$T/o/x.h5" --ignore 255
stderr_has "$T/seg/rgb/mask/a.png: a mask must be a gray or palette PNG"
no_output_left
broken cut
head -c 60 "$T/seg/ok/mask/c.png" >"$T/seg/cut/mask/c.png"
fails_with 1 "$DATA" import --seg "$T/seg/cut/img" "$T/seg/cut/mask" -o "$T/o/x.h5" --ignore 255
stderr_has "$T/seg/cut/mask/c.png"
no_output_left
ok "an RGB mask or a truncated mask fails naming it"

fails_with 2 "$DATA" import --seg "$T/seg/ok/img" -o "$T/o/x.h5"
fails_with 2 "$DATA" import --seg "$T/seg/ok/img" "$T/seg/ok/mask" -o "$T/o/x.h5" --names bg,cat,dog --ignore 1
fails_with 2 "$DATA" import --idx "$T/img.gz" "$T/lab.gz" -o "$T/o/x.h5" --ignore 255
fails_with 2 "$DATA" import --seg "$T/seg/ok/img" "$T/seg/ok/mask" --png "$T/png" -o "$T/o/x.h5"
no_output_left
ok "--seg usage errors exit 2"

if [ -x "$EVIT_BIN/evit-merge" ] && [ -f "$T/model.h5" ]; then
    fails_with 1 "$EVIT_BIN/evit-merge" "$T/model.h5" --r 1 --val "$T/seg.h5" -o "$T/o/x.h5"
    stderr_has "$T/seg.h5: is a segmentation dataset (masks); this needs a classification dataset (labels)"
    no_output_left
    fails_with 1 "$EVIT_BIN/evit-eval" "$T/model.h5" "$T/seg.h5"
    stderr_has "$T/model.h5: a classification model needs a classification dataset, but $T/seg.h5 holds masks"
    ok "a classification stage or model given a segmentation dataset fails in one line"
fi

# ---------------------------------------------------------------- scenes
python3 "$EVIT_SRC/tests/mkdata.py" "$T/sc-img.gz" "$T/sc-lab.gz" 40 28 10
succeeds "$DATA" import --idx "$T/sc-img.gz" "$T/sc-lab.gz" -o "$T/items.h5" --names fashion-mnist
succeeds "$DATA" scenes --help
stdout_has "usage: evit-data scenes"
succeeds "$DATA" scenes "$T/items.h5" -o "$T/sc1.h5" --count 6 --size 64 --seed 5
stderr_has "made 6 scenes 64x64"
succeeds "$DATA" info "$T/sc1.h5"
stdout_has "task: segmentation"
stdout_has "classes: 11 (pixels per class)"
stdout_has "0 background: "
stdout_has "10 Ankle boot: "
succeeds "$DATA" scenes "$T/items.h5" -o "$T/sc2.h5" --count 6 --size 64 --seed 5 -q
succeeds "$DATA" scenes "$T/items.h5" -o "$T/sc3.h5" --count 6 --size 64 --seed 6 -q
if python3 -c 'import h5py, numpy' 2>/dev/null; then
    python3 - "$T/sc1.h5" "$T/sc2.h5" "$T/sc3.h5" <<'PYEOF' || fail "scenes are not deterministic in their seed"
import sys, h5py, numpy as np
a, b, c = (h5py.File(p, "r") for p in sys.argv[1:4])
for k in ("images", "masks"):
    assert np.array_equal(a[k][()], b[k][()]), "same seed, different " + k
assert not np.array_equal(a["masks"][()], c["masks"][()]), "another seed, same masks"
m = a["masks"][()]
assert m.max() >= 1 and (m == 0).any(), "no items or no background"
PYEOF
fi
ok "evit-data scenes makes a Fashion-MNIST segmentation dataset, the same for the same seed"

fails_with 1 "$DATA" scenes "$T/seg.h5" -o "$T/o/x.h5" --count 2
stderr_has "$T/seg.h5: is a segmentation dataset"
fails_with 1 "$DATA" scenes "$T/png3.h5" -o "$T/o/x.h5" --count 2
stderr_has "$T/png3.h5"
fails_with 1 "$DATA" scenes "$T/items.h5" -o "$T/o/x.h5" --count 2 --size 16
stderr_has "$T/items.h5"
fails_with 2 "$DATA" scenes "$T/items.h5" -o "$T/o/x.h5"
fails_with 2 "$DATA" scenes "$T/items.h5" -o "$T/o/x.h5" --count 2 --items 3,1
fails_with 2 "$DATA" scenes "$T/items.h5" -o "$T/o/x.h5" --count 2 --scale 0,1
no_output_left
ok "scenes of a segmentation, RGB or too-large source fail in one line; bad options exit 2"

# ---------------------------------------------------------------- segmentation models
if [ -x "$EVIT_BIN/evit-init" ]; then
    succeeds "$EVIT_BIN/evit-init" seg-fm-tiny -o "$T/segm.h5"
    succeeds "$DATA" info "$T/segm.h5"
    stdout_has "head: seg_linear"
    stdout_has "img_size: 96"
    # evit-merge does not take one (Token Merging is for class heads); the
    # stages that do refuse a classification dataset beside it
    fails_with 1 "$EVIT_BIN/evit-merge" "$T/segm.h5" --r 2 -o "$T/o/x.h5"
    stderr_has "$T/segm.h5: has a seg_linear head, which this stage does not support yet (it takes class heads"
    fails_with 1 "$EVIT_BIN/evit-quantize" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/segm.h5" --calib "$T/items.h5" \
        --val "$T/items.h5" -o "$T/o/x.h5"
    stderr_has "a segmentation model needs a segmentation dataset"
    no_output_left
    ok "a segmentation model is made by evit-init; evit-merge refuses it, evit-quantize a classification dataset beside it, in one line"
fi
