#!/bin/sh
# cli_data.sh: evit-data end to end: help and usage codes, IDX and PNG
# imports read back through `evit-data info`, and failed imports that leave
# exactly one error line and no output file behind.
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
