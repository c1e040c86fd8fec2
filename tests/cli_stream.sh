#!/bin/sh
# cli_stream.sh: evit-run --raw WxHxC classifies a stream of raw camera
# frames, one line per frame, each frame as evit-run classifies the same
# pixels as a PGM/PPM (at the model's size, resized, and RGB); standard
# input and a file agree; a truncated stream, a file of a size that does
# not divide, a bad geometry and a missing or mistaken model are refused;
# examples/stream (evrt.h alone) gives the same classes.
set -eu
. "$EVIT_SRC/tests/lib.sh"

R="$EVIT_BIN/evit-run"
needs_python

# --- a small trained model (28x28 grey, 10 classes)
synth_data "$T/all.h5" 600 28 10
"$PY" "$EVIT_SRC/tests/mkdata.py" "$T/vimg.gz" "$T/vlab.gz" 100 28 10
succeeds "$DATA" import --idx "$T/vimg.gz" "$T/vlab.gz" -o "$T/val.h5"
train_mini 2 2
succeeds "$X" "$T/m.h5" -o "$T/m.evit"

# --- frames: N validation images back to back at the model's size
# (frames28.raw), as 40 wide x 30 high (frames40.raw, which evit-run
# resizes back to 28x28) and as RGB with red inverted (rgb.raw, which it
# converts to grey); each frame also as a PGM/PPM of the same pixels.  The
# last 3 are noise, whose classes vary more than the trained images'.
N=12
"$PY" - "$T/vimg.gz" "$T" "$N" <<'PYEOF'
import gzip, sys
import numpy as np
raw = gzip.open(sys.argv[1]).read()
out, n = sys.argv[2], int(sys.argv[3])
imgs = np.frombuffer(raw[16:16 + n * 784], np.uint8).reshape(n, 28, 28).copy()
imgs[n - 3:] = np.random.default_rng(7).integers(0, 256, (3, 28, 28), dtype=np.uint8)
ys = (np.arange(30) * 28) // 30
xs = (np.arange(40) * 28) // 40
big = imgs[:, ys][:, :, xs]
rgb = np.repeat(imgs[..., None], 3, axis=3)
rgb[..., 0] = 255 - rgb[..., 0]  # not a grey image: the 601 weights matter
for name, a in (("frames28", imgs), ("frames40", big), ("rgb", rgb)):
    open(f"{out}/{name}.raw", "wb").write(a.tobytes())
    for i, im in enumerate(a):
        h, w = im.shape[:2]
        kind = b"P6" if im.ndim == 3 else b"P5"
        open(f"{out}/{name}-{i}.pnm", "wb").write(kind + b"\n%d %d\n255\n" % (w, h) + im.tobytes())
PYEOF

# Each frame's line against evit-run on its PGM/PPM: the top-1's class and
# (to the printed digits) probability.
expect_lines() { # NAME: writes $T/NAME.want, "N K P%" for each frame
    : >"$T/$1.want"
    i=0
    while [ "$i" -lt "$N" ]; do
        succeeds "$R" "$T/m.evit" "$T/$1-$i.pnm"
        head -n 1 "$T/out" | awk -v i="$i" '{ print i, $3, $2 }' >>"$T/$1.want"
        i=$((i + 1))
    done
}
check_lines() { # NAME FILE: the stream's lines in FILE match $T/NAME.want
    [ "$(wc -l <"$2")" -eq "$N" ] || fail "$N frames of $1 gave $(wc -l <"$2") lines"
    awk '!($1 == "frame" && $2 == NR - 1 && $3 == "class" && $4 ~ /^[0-9]+$/ && $5 == "p" &&
           $6 ~ /^[01]\.[0-9][0-9][0-9][0-9]$/ && $7 == "ms" && $8 ~ /^[0-9]+\.[0-9][0-9][0-9]$/) { exit 1 }' "$2" ||
        fail "a line of $1 is not 'frame N class K p P ms L [NAME]' with N counting from 0: $(head -n 2 "$2")"
    awk '{ print $2, $4, $6 }' "$2" >"$T/$1.got"
    awk 'NR == FNR { k[$1] = $2; p[$1] = $3; next }
         $2 != k[$1] || (p[$1] + 0) - 100 * $3 > 0.0051 || 100 * $3 - (p[$1] + 0) > 0.0051 { exit 1 }' \
        "$T/$1.want" "$T/$1.got" || fail "a frame of $1 is classified otherwise than its image: $(paste "$T/$1.want" "$T/$1.got" | head -n 5)"
}

expect_lines frames28
succeeds "$R" "$T/m.evit" --raw 28x28x1 "$T/frames28.raw"
cp "$T/out" "$T/file.out"
check_lines frames28 "$T/file.out"
for w in "$N frames" median p99 ms; do stderr_has "$w"; done
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "the summary is not one line on stderr"
classes=$(awk '{ print $4 }' "$T/file.out" | sort -u | wc -l)
[ "$classes" -ge 3 ] || fail "the frames gave only $classes distinct classes: a weak check"
ok "$N frames of a file give $N lines, frame 0 to $((N - 1)), each with its PGM's class and probability ($classes classes)"

run_cmd sh -c 'cat "$1" | "$2" "$3" --raw 28x28x1 -' sh "$T/frames28.raw" "$R" "$T/m.evit"
[ "$rc" -eq 0 ] || fail "evit-run on a pipe exited $rc"
awk '{ $8 = ""; print }' "$T/file.out" >"$T/a"
awk '{ $8 = ""; print }' "$T/out" >"$T/b"
cmp -s "$T/a" "$T/b" || fail "a pipe and a file give other lines: $(diff "$T/a" "$T/b" | head -n 4)"
succeeds "$R" "$T/m.evit" --raw 28x28x1 - --threads 2 -q <"$T/frames28.raw"
[ ! -s "$T/err" ] || fail "-q still printed on stderr"
awk '{ $8 = ""; print }' "$T/out" >"$T/b"
cmp -s "$T/a" "$T/b" || fail "standard input redirected from the file, 2 threads, gives other lines"
ok "a pipe into -, standard input from the file with 2 threads, and the file path give the same lines"

expect_lines frames40
succeeds "$R" "$T/m.evit" --raw 40x30x1 "$T/frames40.raw"
check_lines frames40 "$T/out"
expect_lines rgb
succeeds "$R" "$T/m.evit" --raw 28x28x3 "$T/rgb.raw"
check_lines rgb "$T/out"
ok "40x30 grey frames are resized and 28x28 RGB frames converted as evit-run does for the same images"

# --- live: a frame's line arrives while its writer still holds the pipe
# open (flushed, not left in stdout's buffer until the end of input)
mkfifo "$T/live"
: >"$T/live.out" # there before the reads below, whenever the child opens it
# under timeout: a reader that opened the pipe only after the writer closed
# it would wait for another writer forever
timeout 120 "$R" "$T/m.evit" --raw 28x28x1 "$T/live" >"$T/live.out" 2>"$T/err" &
pid=$!
exec 3<>"$T/live" # read-write: never blocks, even if evit-run never opened it
head -c 1568 "$T/frames28.raw" >&3
tries=0
while [ "$(wc -l <"$T/live.out")" -lt 2 ] && [ "$tries" -lt 600 ]; do
    sleep 0.1
    tries=$((tries + 1))
done
got=$(wc -l <"$T/live.out")
head -c 100 "$T/frames28.raw" >&3
exec 3>&-
rc=0
wait "$pid" || rc=$?
[ "$got" -eq 2 ] || fail "2 frames into a pipe still held open gave $got lines (not flushed)"
[ "$rc" -eq 1 ] || fail "a named pipe that ends inside frame 2 exited $rc, not 1"
[ "$(cat "$T/err")" = "error: $T/live: truncated frame 2: got 100 of 784 bytes" ] ||
    fail "a named pipe that ends inside a frame is not one error line naming it: $(cat "$T/err")"
ok "each frame's line is flushed as it is classified, and a named pipe cut inside a frame is named in the error"

run_cmd sh -c 'printf "" | "$1" "$2" --raw 28x28x1 -' sh "$R" "$T/m.evit"
[ "$rc" -eq 0 ] && [ ! -s "$T/out" ] || fail "an empty stream is not a clean end with no lines (exit $rc)"
ok "an empty stream ends cleanly with no lines"

# --- a truncated stream: the complete frames, then one error line
head -c $((5 * 784 + 100)) "$T/frames28.raw" >"$T/short.raw"
fails_with 1 sh -c 'cat "$1" | "$2" "$3" --raw 28x28x1 -' sh "$T/short.raw" "$R" "$T/m.evit"
stderr_has "error: -: truncated frame 5: got 100 of 784 bytes"
[ "$(wc -l <"$T/out")" -eq 5 ] || fail "the 5 complete frames before the truncation gave $(wc -l <"$T/out") lines"
head -n 5 "$T/file.out" | awk '{ $8 = ""; print }' >"$T/a"
awk '{ $8 = ""; print }' "$T/out" >"$T/b"
cmp -s "$T/a" "$T/b" || fail "the frames before the truncation are not the stream's first 5"
ok "a stream cut inside frame 5 prints frames 0 to 4, then one error line, exit 1"

# --- a file whose size does not divide: refused before the first frame
fails_with 1 "$R" "$T/m.evit" --raw 28x28x1 "$T/short.raw"
stderr_has "short.raw"; stderr_has "does not divide"
[ ! -s "$T/out" ] || fail "frames were classified before the refusal"
fails_with 1 "$R" "$T/m.evit" --raw 28x28x1 - <"$T/short.raw"
stderr_has "does not divide"
fails_with 1 "$R" "$T/m.evit" --raw 28x28x1 "$T/missing.raw"; stderr_has "missing.raw"
ok "a file of a size that does not divide into frames is refused in one line, before any frame"

# --- usage errors, and the model's own refusals
for g in 0x28x1 28x0x1 28x28x0 28x28x2 28x28x4 -28x28x1 +28x28x1 28x-28x1 " 28x28x1" 28x28 28x28x1x 28x28x1x1 \
    abc 28xx1 x28x1 28X28X1 100000x100000x1 99999999999999999999x1x1 ""; do
    fails_with 2 "$R" "$T/m.evit" --raw "$g" - </dev/null
done
fails_with 2 "$R" "$T/m.evit" --raw
fails_with 2 "$R" "$T/m.evit" --raw 28x28x1
fails_with 2 "$R" "$T/m.evit" --raw 28x28x1 --bench
fails_with 2 "$R" "$T/m.evit" --raw 28x28x1 - --bench </dev/null
fails_with 2 "$R" "$T/m.evit" --raw 28x28x1 - --logits </dev/null
fails_with 2 "$R" "$T/m.evit" "$T/frames28-0.pnm" --raw 28x28x1 - </dev/null
fails_with 2 "$R" "$T/m.evit" --raw 28x28x1 - --threads 0 </dev/null
succeeds "$R" --help; stdout_has "--raw WxHxC"
ok "a malformed or absurd WxHxC, --raw without a source or with an IMAGE or --bench are usage errors (exit 2)"

fails_with 1 "$R" "$T/missing.evit" --raw 28x28x1 - <"$T/frames28.raw"; stderr_has "missing.evit"
fails_with 1 "$R" "$T/m.h5" --raw 28x28x1 - <"$T/frames28.raw"; stderr_has "magic"
ok "a missing model and a file that is not a model are refused in one line (exit 1)"

# --- examples/stream: the same loop over evrt.h alone
san=$(sed -n 's/^EVIT_SAN = //p' "$EVIT_BIN/Makefile")
# shellcheck disable=SC2086 # EVIT_SAN is a list of flags
${CC:-cc} -std=c99 -pedantic -Wall -Wextra -Werror $san -I"$EVIT_SRC/runtime" "$EVIT_SRC/examples/stream.c" \
    "$EVIT_BIN/runtime/libevrt.a" -lm -lpthread -o "$T/stream" 2>"$T/err" ||
    fail "examples/stream.c does not build with cc -std=c99 -Iruntime ... runtime/libevrt.a -lm -lpthread"
for ex in "$EVIT_BIN/examples/stream" "$T/stream"; do
    run_cmd sh -c 'cat "$1" | "$2" "$3" 2' sh "$T/frames28.raw" "$ex" "$T/m.evit"
    [ "$rc" -eq 0 ] || fail "$ex exited $rc"
    awk '{ print $1, $2, $3, $4 }' "$T/out" >"$T/a"
    awk '{ print $1, $2, $3, $4 }' "$T/file.out" >"$T/b"
    cmp -s "$T/a" "$T/b" || fail "$ex gives other classes than evit-run --raw: $(diff "$T/a" "$T/b" | head -n 4)"
done
fails_with 1 sh -c 'cat "$1" | "$2" "$3"' sh "$T/short.raw" "$EVIT_BIN/examples/stream" "$T/m.evit"
stderr_has "truncated frame 5"
fails_with 1 "$EVIT_BIN/examples/stream" "$T/missing.evit" </dev/null
ok "examples/stream builds as documented and prints evit-run --raw's classes for the same frames"
echo "cli_stream: all checks passed"
