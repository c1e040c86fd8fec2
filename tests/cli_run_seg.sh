#!/bin/sh
# cli_run_seg.sh: evit-run takes segmentation models (float and INT8): an
# image gives one line of the mask's classes and their pixel shares, and
# --mask writes the mask as a PGM of class indices (the model's size,
# whatever the image's) and, with PNG support, as a palette PNG whose
# indices are the same classes; --logits gives every patch's logits; a
# stream of raw frames gives one line and one mask file per frame, each the
# mask of the same pixels as an image; --mask with a class-head model, a
# damaged model, an unwritable target and bad combinations fail in one line
# and leave no mask.  Models are freshly initialised (masks of random
# weights still hold several classes, which is all the checks need).
set -eu
. "$EVIT_SRC/tests/lib.sh"

R="$EVIT_BIN/evit-run"
needs_python

# --- models: seg-fm-tiny (96x96 grey, 11 classes with names) float and
# INT8, and a class-head model
"$PY" "$EVIT_SRC/tests/mkdata.py" "$T/img.gz" "$T/lab.gz" 64 28 10
succeeds "$DATA" import --idx "$T/img.gz" "$T/lab.gz" -o "$T/d.h5" --names fashion-mnist
succeeds "$DATA" scenes "$T/d.h5" -o "$T/sc.h5" --count 12 --size 96 --seed 3 -q
succeeds "$INIT" seg-fm-tiny -o "$T/seg.h5" --seed 5 --data "$T/sc.h5"
succeeds "$Q" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/seg.h5" --calib "$T/sc.h5" --val "$T/sc.h5" \
    -o "$T/segq.h5" --report "$T/segq.json" -q --threads 2
succeeds "$X" "$T/seg.h5" -o "$T/f.evit"
succeeds "$X" "$T/segq.h5" -o "$T/q.evit"
mini_model 2 >"$T/mini.json"
succeeds "$INIT" "$T/mini.json" -o "$T/c.h5" --seed 3
succeeds "$X" "$T/c.h5" -o "$T/c.evit"

# --- images: noise at the model's size, noise 50 wide x 70 high (resized
# to 96x96), an RGB one; and 5 frames of 50x70 grey, each also as a PGM
"$PY" - "$T" <<'PYEOF'
import sys
import numpy as np
t, rng = sys.argv[1], np.random.RandomState(11)
def pnm(path, x):
    h, w, c = x.shape
    open(path, "wb").write(b"P%d\n%d %d\n255\n" % (5 if c == 1 else 6, w, h) + x.tobytes())
pnm(t + "/g96.pgm", rng.randint(0, 256, (96, 96, 1)).astype(np.uint8))
pnm(t + "/g50x70.pgm", rng.randint(0, 256, (70, 50, 1)).astype(np.uint8))
pnm(t + "/c64.ppm", rng.randint(0, 256, (64, 64, 3)).astype(np.uint8))
frames = rng.randint(0, 256, (5, 70, 50, 1)).astype(np.uint8)
frames[1] //= 4  # darker frames: other masks than the noise's
frames[3] = 255 - frames[3] // 8
open(t + "/frames.raw", "wb").write(frames.tobytes())
for i, x in enumerate(frames):
    pnm("%s/frame%d.pgm" % (t, i), x)
PYEOF

# A mask file's classes, one per line "W H" then the pixels' bytes in hex
# (a PGM P5 of maxval 255, or an 8-bit palette PNG's indices; its palette
# must give each class its own colour); exits 1 on anything else.
cat >"$T/mask.py" <<'PYEOF'
import struct, sys, zlib
def png(b):
    pos, idat, plte = 8, b"", b""
    while pos < len(b):
        n, kind = struct.unpack(">I4s", b[pos:pos + 8])
        data = b[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + data) & 0xffffffff == struct.unpack(">I", b[pos + 8 + n:pos + 12 + n])[0], "CRC"
        if kind == b"IHDR":
            w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", data)
            assert depth == 8 and color == 3 and interlace == 0, "not an 8-bit palette PNG"
        elif kind == b"PLTE":
            plte = data
        elif kind == b"IDAT":
            idat += data
        pos += 12 + n
    colours = [plte[i:i + 3] for i in range(0, len(plte), 3)]
    assert colours and len(set(colours)) == len(colours), "palette colours are not distinct"
    raw, out, prev = zlib.decompress(idat), bytearray(), bytearray(w)
    assert len(raw) == h * (w + 1), "pixel data size"
    for y in range(h):  # undo the row filters (1 byte a pixel)
        f, row = raw[y * (w + 1)], bytearray(raw[y * (w + 1) + 1:(y + 1) * (w + 1)])
        for x in range(w):
            a, c = row[x - 1] if x else 0, prev[x - 1] if x else 0
            p = a + prev[x] - c
            pred = (0, a, prev[x], (a + prev[x]) // 2,
                    a if abs(p - a) <= abs(p - prev[x]) and abs(p - a) <= abs(p - c) else
                    prev[x] if abs(p - prev[x]) <= abs(p - c) else c)[f]
            row[x] = (row[x] + pred) & 255
        out += row
        prev = row
    assert max(out) < len(colours), "an index past the palette"
    return w, h, bytes(out)
def pgm(b):
    head = b.split(b"\n", 3)
    assert head[0] == b"P5" and head[2] == b"255", "not a P5 PGM of maxval 255"
    w, h = map(int, head[1].split())
    assert len(head[3]) == w * h, "pixel data size"
    return w, h, head[3]
b = open(sys.argv[1], "rb").read()
w, h, px = png(b) if b[:8] == b"\x89PNG\r\n\x1a\n" else pgm(b)
print(w, h)
print(px.hex())
PYEOF
mask_of() { # FILE: its "W H" and pixels (mask.py) in $T/mask.txt
    "$PY" "$T/mask.py" "$1" >"$T/mask.txt" 2>"$T/err" || fail "$1 is not a mask file: $(tail -n 1 "$T/err")"
}
# The classes, most pixels first (lower class among equals), of $T/mask.txt
# as evit-run prints them: "C classes  K1 S1%  K2 S2%  K3 S3%" without names.
shares_of_mask() {
    "$PY" - "$T/mask.txt" <<'PYEOF'
import sys
lines = open(sys.argv[1]).read().split()
px = bytes.fromhex(lines[2])
count = [px.count(k) for k in range(256)]
present = sorted((k for k in range(256) if count[k]), key=lambda k: (-count[k], k))
print("%d class%s" % (len(present), "" if len(present) == 1 else "es") +
      "".join("  %d %.2f%%" % (k, 100.0 * count[k] / len(px)) for k in present[:3]))
PYEOF
}
# evit-run's image line without names and latency
line_without_names() {
    head -n 1 "$T/out" | sed 's/  [0-9.]* ms$//' |
        awk -F'  ' '{ o = $1; for (i = 2; i <= NF; i++) { split($i, f, " "); o = o "  " f[1] " " f[2] } print o }'
}
png_built=0
"$R" --help | grep -q 'PGM/PPM, PNG' && png_built=1

# --- help and usage
succeeds "$R" --help
for w in "--mask OUT" "--mask DIR" "frame-NNNNNN" "classes C K1 S1" "segmentation"; do stdout_has "$w"; done
fails_with 2 "$R" "$T/f.evit" "$T/g96.pgm" --mask
fails_with 2 "$R" "$T/f.evit" "$T/g96.pgm" --mask ""
fails_with 2 "$R" "$T/f.evit" --bench --mask "$T/m.pgm"
fails_with 2 "$R" "$T/f.evit" "$T/g96.pgm" --logits --mask "$T/m.pgm"
[ ! -e "$T/m.pgm" ] || fail "a usage error wrote a mask"
ok "--help documents --mask and the segmentation lines; --mask without a value, with --bench or --logits is a usage error"

# --- an image: the line, the PGM mask, the PNG mask
for m in f q; do
    succeeds "$R" "$T/$m.evit" "$T/g50x70.pgm" --mask "$T/$m.pgm"
    [ "$(wc -l <"$T/out")" -eq 1 ] || fail "$m.evit: $(wc -l <"$T/out") lines for one image"
    grep -Eq '^[0-9]+ class(es)?(  [0-9]+ [0-9]+\.[0-9][0-9]% [A-Za-z][^ ]*( [^ ]+)*){1,3}  [0-9]+\.[0-9]{3} ms$' "$T/out" ||
        fail "$m.evit: the line is not 'C classes  K S% NAME ...  L ms': $(cat "$T/out")"
    line_without_names >"$T/line.txt"
    mask_of "$T/$m.pgm"
    [ "$(head -n 1 "$T/mask.txt")" = "96 96" ] || fail "the mask of a 50x70 image is $(head -n 1 "$T/mask.txt"), not the model's 96 96"
    shares_of_mask >"$T/want.txt"
    cmp -s "$T/line.txt" "$T/want.txt" || fail "$m.evit: the line '$(cat "$T/line.txt")' is not the PGM's classes '$(cat "$T/want.txt")'"
    "$PY" -c 'import sys; px = bytes.fromhex(open(sys.argv[1]).read().split()[2]); sys.exit(not (max(px) < 11 and len(set(px)) >= 2))' \
        "$T/mask.txt" || fail "$m.evit: the PGM mask has a class index of 11 or more, or a single class"
done
ls -a "$T" | grep -q '\.tmp\.' && fail "a temporary file was left behind"
cmp -s "$T/f.pgm" "$T/q.pgm" && echo "# the float and INT8 masks are the same"
ok "a segmentation model (float, INT8) prints one line whose classes and shares are its PGM mask's: 96x96, indices < 11"

succeeds "$R" "$T/f.evit" "$T/g50x70.pgm" --mask "$T/upper.PGM"
cmp -s "$T/upper.PGM" "$T/f.pgm" || fail "OUT ending in .PGM is not the PGM mask"
if [ "$png_built" -eq 1 ]; then
    for m in f q; do
        succeeds "$R" "$T/$m.evit" "$T/g50x70.pgm" --mask "$T/$m.png"
        mask_of "$T/$m.png"
        cp "$T/mask.txt" "$T/png.txt"
        mask_of "$T/$m.pgm"
        cmp -s "$T/png.txt" "$T/mask.txt" || fail "$m.evit: the PNG mask's indices are not the PGM's classes"
    done
    ok "the PNG mask is an 8-bit palette PNG of distinct colours whose indices are the PGM's classes"
else
    fails_with 1 "$R" "$T/f.evit" "$T/g50x70.pgm" --mask "$T/f.png"
    stderr_has "PNG support was not built in"
    [ ! -e "$T/f.png" ] || fail "a refused PNG mask was written"
    echo "# evit-run without PNG: the PNG mask refused in one line"
fi

succeeds "$R" "$T/f.evit" "$T/g96.pgm" --mask "$T/g96-mask.pgm"
mask_of "$T/g96-mask.pgm"
[ "$(head -n 1 "$T/mask.txt")" = "96 96" ] || fail "the mask of a 96x96 image is not 96x96"
succeeds "$R" "$T/f.evit" "$T/g96.pgm"
line_without_names >"$T/line.txt"
shares_of_mask >"$T/want.txt"
cmp -s "$T/line.txt" "$T/want.txt" || fail "without --mask the line differs from the mask's classes"
succeeds "$R" "$T/f.evit" "$T/c64.ppm" --mask "$T/c64.pgm" --threads 2
mask_of "$T/c64.pgm"
ok "without --mask the line is the same; an RGB image at 2 threads gives a 96x96 mask"

succeeds "$R" "$T/f.evit" "$T/g96.pgm" --logits
[ "$(wc -l <"$T/out")" -eq $((144 * 11)) ] || fail "--logits printed $(wc -l <"$T/out") lines, not 144 patches x 11 classes"
awk '!($1 == int((NR - 1) / 11) && $2 == (NR - 1) % 11 && $3 ~ /^-?0x[01](\.[0-9a-f]+)?p[-+][0-9]+$/ && NF == 3) { exit 1 }' "$T/out" ||
    fail "--logits lines are not 'N K HEX' in patch and class order: $(head -n 2 "$T/out")"
ok "--logits on a segmentation model prints every patch's logits, 'N K HEX'"

succeeds "$R" "$T/q.evit" --bench --runs 3 --warmup 1
for w in median p99 "peak memory"; do stdout_has "$w"; done
ok "--bench times a segmentation model"

# --- refusals: one line, no mask
fails_with 1 "$R" "$T/c.evit" "$T/g96.pgm" --mask "$T/cm.pgm"
stderr_has "c.evit: a class-head model has no mask"
head -c 4000 "$T/f.evit" >"$T/trunc.evit"
fails_with 1 "$R" "$T/trunc.evit" "$T/g96.pgm" --mask "$T/tm.pgm"
stderr_has "trunc.evit"
fails_with 1 "$R" "$T/f.evit" "$T/missing.pgm" --mask "$T/mm.pgm"
stderr_has "missing.pgm"
fails_with 1 "$R" "$T/f.evit" "$T/g96.pgm" --mask "$T/no/such/dir/m.pgm"
stderr_has "m.pgm"
for f in cm.pgm tm.pgm mm.pgm; do [ ! -e "$T/$f" ] || fail "a refused run wrote $f"; done
ls -a "$T" | grep -q '\.tmp\.' && fail "a temporary file was left behind"
ok "--mask with a class-head model, a truncated model, a missing image and an unwritable OUT fail in one line, no mask"

# --- streams: a line and a mask per frame, the image's
ext=pgm
[ "$png_built" -eq 1 ] && ext=png
mkdir "$T/masks"
succeeds "$R" "$T/f.evit" --raw 50x70x1 "$T/frames.raw" --mask "$T/masks"
cp "$T/out" "$T/stream.out"
[ "$(wc -l <"$T/stream.out")" -eq 5 ] || fail "5 frames gave $(wc -l <"$T/stream.out") lines"
awk '!($1 == "frame" && $2 == NR - 1 && $3 == "ms" && $4 ~ /^[0-9]+\.[0-9][0-9][0-9]$/ && $5 == "classes" && $6 >= 1 &&
       NF >= 6 + 2 * ($6 < 3 ? $6 : 3)) { exit 1 }' "$T/stream.out" ||
    fail "a line is not 'frame N ms L classes C K S ...': $(head -n 2 "$T/stream.out")"
stderr_has "5 frames"
[ "$(ls "$T/masks" | wc -l)" -eq 5 ] || fail "the mask folder holds $(ls "$T/masks" | wc -l) files, not 5"
i=0
while [ "$i" -lt 5 ]; do
    mf="$T/masks/frame-00000$i.$ext"
    [ -f "$mf" ] || fail "no $mf"
    succeeds "$R" "$T/f.evit" "$T/frame$i.pgm" --mask "$T/img$i.pgm"
    line_without_names >"$T/line.txt"
    mask_of "$T/img$i.pgm"
    cp "$T/mask.txt" "$T/img.txt"
    mask_of "$mf"
    cmp -s "$T/mask.txt" "$T/img.txt" || fail "frame $i's mask is not the mask of the same pixels as an image"
    # the stream's shares (fractions, 4 decimals) against the image line's (percent, 2)
    sed -n "$((i + 1))p" "$T/stream.out" | awk -v want="$(cat "$T/line.txt")" '{
        n = split(want, w, "  "); if (w[1] != $6 " class" ($6 == 1 ? "" : "es")) exit 1
        for (j = 2; j <= n; j++) { split(w[j], f, " "); k = 7 + 2 * (j - 2)
            if ($k != f[1] || 100 * $(k + 1) - f[2] > 0.0051 || f[2] - 100 * $(k + 1) > 0.0051) exit 1 } }' ||
        fail "frame $i's line is not its image's classes: $(sed -n "$((i + 1))p" "$T/stream.out") vs $(cat "$T/line.txt")"
    i=$((i + 1))
done
[ "$(awk '{ print $7 }' "$T/stream.out" | sort -u | wc -l)" -ge 2 ] || echo "# every frame has the same largest class"
ok "5 frames of a stream give 5 lines and 5 masks (frame-NNNNNN.$ext), each its image's classes and mask"

run_cmd sh -c 'cat "$1" | "$2" "$3" --raw 50x70x1 - -q' sh "$T/frames.raw" "$R" "$T/q.evit"
[ "$rc" -eq 0 ] && [ "$(wc -l <"$T/out")" -eq 5 ] && [ ! -s "$T/err" ] || fail "an INT8 model on a pipe: exit $rc, $(wc -l <"$T/out") lines"
head -c $((2 * 3500 + 100)) "$T/frames.raw" >"$T/short.raw"
mkdir "$T/masks2"
fails_with 1 sh -c 'cat "$1" | "$2" "$3" --raw 50x70x1 - --mask "$4"' sh "$T/short.raw" "$R" "$T/f.evit" "$T/masks2"
stderr_has "truncated frame 2"
[ "$(wc -l <"$T/out")" -eq 2 ] && [ "$(ls "$T/masks2" | wc -l)" -eq 2 ] || fail "a stream cut in frame 2 did not give 2 lines and 2 masks"
head -n 2 "$T/stream.out" | cut -d' ' -f1,2,5- >"$T/a"
cut -d' ' -f1,2,5- "$T/out" >"$T/b"
cmp -s "$T/a" "$T/b" || fail "a pipe gives other lines than the file"
ok "an INT8 model on a pipe gives one line a frame; a stream cut inside frame 2 gives 2 lines and 2 masks, then one error line"

fails_with 1 "$R" "$T/f.evit" --raw 50x70x1 "$T/frames.raw" --mask "$T/nodir"
stderr_has "nodir: not a directory"
fails_with 1 "$R" "$T/f.evit" --raw 50x70x1 "$T/frames.raw" --mask "$T/g96.pgm"
[ ! -s "$T/out" ] || fail "frames were run before the refusal"
fails_with 1 "$R" "$T/c.evit" --raw 50x70x1 "$T/frames.raw" --mask "$T/masks"
stderr_has "class-head model has no mask"
fails_with 1 "$R" "$T/trunc.evit" --raw 50x70x1 - <"$T/frames.raw"
ok "a stream's --mask that is not a directory, or with a class-head or damaged model, fails in one line before any frame"
echo "cli_run_seg: all checks passed"
