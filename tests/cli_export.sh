#!/bin/sh
# cli_export.sh: evit-export writes a float and an INT8 model file from a
# briefly trained model; evit-eval measures the INT8 file at exactly the
# quantize report's INT8 top-1; evit-run classifies a PGM and benchmarks;
# evit-run builds from runtime/ alone (strict C99, libm); damaged and
# mistaken files are refused in one line.
set -eu
. "$EVIT_SRC/tests/lib.sh"

R="$EVIT_BIN/evit-run"
needs_python

# --- evit-run from runtime/ alone, as on the Jetson (docs/JETSON.md)
CC=${CC:-cc}
"$CC" -O2 -std=c99 -pedantic -Wall -Wextra -Werror -I"$EVIT_SRC/runtime" "$EVIT_SRC"/runtime/*.c -lm -lpthread \
    -o "$T/evit-run-alone" 2>"$T/err" || fail "runtime/ with evit-run does not build alone as strict C99 with libm and pthreads"
ok "evit-run builds from runtime/ alone (cc -std=c99 -pedantic, libm)"

# --- help and usage
succeeds "$X" --help; stdout_has "usage: evit-export"
succeeds "$R" --help; stdout_has "usage: evit-run"
fails_with 2 "$X"
fails_with 2 "$X" m.h5
fails_with 2 "$R"
fails_with 2 "$R" m.evit
fails_with 2 "$R" m.evit --bench --runs 0
fails_with 2 "$R" m.evit --bogus
fails_with 2 "$R" m.evit --bench --logits
ok "help exits 0 and usage errors exit 2"

# --- a small trained model, quantized
synth_data "$T/all.h5" 800 28 10
"$PY" "$EVIT_SRC/tests/mkdata.py" "$T/vimg.gz" "$T/vlab.gz" 200 28 10
succeeds "$DATA" import --idx "$T/vimg.gz" "$T/vlab.gz" -o "$T/val.h5"
train_mini 3 2
succeeds "$Q" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/m.h5" --calib "$T/all.h5" --val "$T/val.h5" \
    -o "$T/q.h5" --report "$T/q.json" -q --threads 2


# --- export float and INT8
succeeds "$X" "$T/m.h5" -o "$T/f.evit" --report "$T/fx.json"
stdout_has "float32"
succeeds "$X" "$T/q.h5" -o "$T/q.evit" --quantize-config "$EVIT_SRC/configs/fmnist/quantize.json" --report "$T/qx.json"
stdout_has "int8"
grep -qF '"stage":	"export"' "$T/qx.json" || fail "the export report does not name its stage"
grep -q '"quantize_config_fnv1a64":[[:space:]]*"0*[1-9a-f]' "$T/qx.json" || fail "the quantize config's checksum is not recorded"
fb=$(wc -c <"$T/f.evit")
qb=$(wc -c <"$T/q.evit")
awk -v f="$fb" -v q="$qb" 'BEGIN { exit !(q * 2.5 < f) }' || fail "INT8 file ($qb bytes) not much smaller than float ($fb)"
ls -a "$T" | grep -q '\.tmp\.' && fail "a temporary file was left behind"
ok "float ($fb bytes) and INT8 ($qb bytes) model files written, with reports"

# --- evit-eval on the files: the exact accuracies
succeeds "$EVAL" "$T/q.evit" "$T/val.h5" --report "$T/qe.json" -q --threads 2
a=$(num int8_top1 "$T/q.json")
b=$(num top1 "$T/qe.json")
[ "$a" = "$b" ] || fail "evit-quantize reported INT8 top-1 $a%, the exported file measures $b%"
m1=$(num model_bytes "$T/q.json")
m2=$(num model_bytes "$T/qe.json")
[ "$m1" = "$m2" ] || fail "model bytes differ: $m1 vs $m2"
succeeds "$EVAL" "$T/m.h5" "$T/val.h5" --report "$T/fe0.json" -q --threads 2
succeeds "$EVAL" "$T/f.evit" "$T/val.h5" --report "$T/fe.json" -q --threads 2
f0=$(num top1 "$T/fe0.json")
f1=$(num top1 "$T/fe.json")
awk -v a="$f0" -v b="$f1" 'BEGIN { d = a - b; exit !(d <= 0.5 && d >= -0.5) }' || fail "float file $f1% vs checkpoint $f0%"
ok "evit-eval measures the INT8 file at the quantize report's INT8 top-1 ($a%), the float file at $f1% (checkpoint $f0%)"

# --- evit-run: top-5 on a PGM written here (an image of the validation set)
"$PY" - "$T/vimg.gz" "$T/img.pgm" "$T/big.pgm" "$T/rgb.ppm" <<'PYEOF'
import gzip, sys
raw = gzip.open(sys.argv[1]).read()
img = raw[16:16 + 28 * 28]
open(sys.argv[2], "wb").write(b"P5\n# a comment\n28 28\n255\n" + img)
big = bytes(img[(y // 2) * 28 + x // 2] for y in range(56) for x in range(56))
open(sys.argv[3], "wb").write(b"P5 56 56 255\n" + big)
open(sys.argv[4], "wb").write(b"P6\n28 28\n255\n" + bytes(v for p in img for v in (p, p, p)))
PYEOF
for model in f q; do
    succeeds "$R" "$T/$model.evit" "$T/img.pgm"
    [ "$(wc -l <"$T/out")" -eq 5 ] || fail "evit-run printed $(wc -l <"$T/out") lines, not the top 5"
    grep -q '^1  *[0-9.]*%  *[0-9]' "$T/out" || fail "evit-run's first line is not a ranked class"
    first=$(head -n 1 "$T/out")
    succeeds "$R" "$T/$model.evit" "$T/big.pgm"
    [ "$(head -n 1 "$T/out")" = "$first" ] || fail "a 2x nearest-neighbour upscale changed the answer"
    succeeds "$R" "$T/$model.evit" "$T/rgb.ppm"
    [ "$(head -n 1 "$T/out")" = "$first" ] || fail "a grey PPM gave another answer than the PGM"
done
awk '{ s += $2 } END { exit !(s > 50 && s <= 100.01) }' "$T/out" || fail "top-5 probabilities do not look like percentages"
ok "evit-run prints the top 5 for PGM and PPM, resizing and converting"

succeeds "$R" "$T/q.evit" --bench --runs 20 --warmup 2
for w in mean median p99 "peak memory" maxrss; do stdout_has "$w"; done
succeeds "$T/evit-run-alone" "$T/q.evit" --bench --runs 5 --warmup 1
stdout_has "p99"
succeeds "$R" "$T/q.evit" --bench --runs 5 --warmup 1 --threads 2
stdout_has "2 threads"
fails_with 2 "$R" "$T/q.evit" --bench --threads 0
ok "evit-run --bench prints mean, median, p99 latency and peak memory, at any thread count"

# --- refusals: one line
fails_with 1 "$R" "$T/missing.evit" "$T/img.pgm"; stderr_has "missing.evit"
fails_with 1 "$R" "$T/m.h5" "$T/img.pgm"; stderr_has "magic"
fails_with 1 "$R" "$T/q.evit" "$T/m.h5"; stderr_has "m.h5"
head -c 1000 "$T/q.evit" >"$T/trunc.evit"
fails_with 1 "$R" "$T/trunc.evit" --bench; stderr_has "trunc.evit"
cp "$T/q.evit" "$T/flip.evit"
printf '\377' | dd of="$T/flip.evit" bs=1 seek=70 conv=notrunc 2>/dev/null
fails_with 1 "$R" "$T/flip.evit" "$T/img.pgm"; stderr_has "checksum"
fails_with 1 "$EVAL" "$T/flip.evit" "$T/val.h5"; stderr_has "checksum"
fails_with 1 "$X" "$T/all.h5" -o "$T/x.evit"
fails_with 1 "$X" "$T/missing.h5" -o "$T/x.evit"
[ ! -e "$T/x.evit" ] || fail "an output was left behind"
echo "P5 28 28 255" >"$T/short.pgm"
fails_with 1 "$R" "$T/q.evit" "$T/short.pgm"; stderr_has "truncated"
ok "missing, mistaken and damaged files are refused in one line"

# SegFormer's all-MLP decoder (seg_mlp): the device file carries it (format
# version 5, its 5 decoder layers beside the encoder's 18; an older
# head's file stays version 4), evit-run runs it; so does ONNX
# (tests/cli_onnx.sh runs it), unless built without ONNX
succeeds "$INIT" seg-fm-tiny-mlp -o "$T/segmlp.h5"
succeeds "$X" "$T/segmlp.h5" -o "$T/segmlp.evit" --report "$T/segmlp.export.json"
stdout_has "0 of 23 layers int8"
[ "$(od -An -tu1 -j8 -N1 "$T/segmlp.evit" | tr -d ' ')" = 5 ] || fail "a seg_mlp .evit is not format version 5"
[ "$(od -An -tu1 -j120 -N1 "$T/segmlp.evit" | tr -d ' ')" = 2 ] || fail "a seg_mlp .evit's head is not 2"
grep -q '"precision":[[:space:]]*"float32"' "$T/segmlp.export.json" || fail "the seg_mlp export report lacks its precision"
succeeds "$INIT" seg-fm-tiny -o "$T/seglin.h5"
succeeds "$X" "$T/seglin.h5" -o "$T/seglin.evit" -q
[ "$(od -An -tu1 -j8 -N1 "$T/seglin.evit" | tr -d ' ')" = 4 ] || fail "a seg_linear .evit is not format version 4"
{ printf 'P5\n96 96\n255\n'; head -c 9216 "$T/segmlp.evit"; } >"$T/g96.pgm"
succeeds "$R" "$T/segmlp.evit" "$T/g96.pgm" --mask "$T/segmlp-mask.pgm"
stdout_has " classes "
[ "$(wc -c <"$T/segmlp-mask.pgm")" -eq $((13 + 96 * 96)) ] || fail "evit-run's seg_mlp mask is not a 96x96 PGM"
if "$X" "$T/segmlp.h5" -o "$T/segmlp.onnx" >"$T/out" 2>"$T/err"; then
    stdout_has "float32, 0 of 23 layers int8"
    [ -s "$T/segmlp.onnx" ] || fail "the seg_mlp ONNX export wrote no file"
else
    stderr_has "this build has no ONNX output"
fi
ok "a seg_mlp model exports as a version 5 .evit that evit-run masks, and as ONNX"
echo "cli_export: all checks passed"
