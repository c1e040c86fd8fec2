#!/bin/sh
# bench/onnx.sh: evit-export's ONNX files run by ONNX Runtime on a whole
# test set, against evit's own numbers.  For the float student and pruned
# models of a pipeline run: the largest logit difference to evit-eval and
# both top-1s; for INT8 models (the pipeline's quantized pruned model, and
# the unpruned student quantized here with and without INT8 attention):
# ONNX Runtime's QDQ top-1 beside evit-quantize's INT8 top-1.
#
#   bench/onnx.sh BUILD_DIR PIPELINE_DIR     (default: run/fmnist-quick)
# Needs node, onnxruntime-node in bench/node_modules and /usr/bin/python3
# with h5py.  ONNX Runtime runs with 1 intra-op thread, all graph
# optimisations (it fuses the QDQ pairs into int8 kernels).
set -eu
B=${1:?usage: bench/onnx.sh BUILD_DIR [PIPELINE_DIR]}
SRC=$(cd "$(dirname "$0")/.." && pwd)
P=${2:-$SRC/run/fmnist-quick}
PY=/usr/bin/python3
ORT=$SRC/bench/node_modules/onnxruntime-node
[ -d "$ORT" ] || { echo "error: $ORT: missing (cd bench && npm install --ignore-scripts onnxruntime-node)" >&2; exit 1; }
for f in student.h5 finetuned.h5 student.q8.h5 quantized.report.json test.h5 train.h5; do
    [ -f "$P/$f" ] || { echo "error: $P/$f: missing (run scripts/pipeline.sh first)" >&2; exit 1; }
done
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cfg=$SRC/configs/fmnist
num() { sed -n "s/.*\"$1\":[[:space:]]*\\(-\\{0,1\\}[0-9.e+-]*\\).*/\\1/p" "$2" | head -n 1; }

"$PY" "$SRC/tests/onnx_check.py" images "$P/test.h5" "$W/test.u8"
n=$("$PY" -c "import h5py; print(len(h5py.File('$P/test.h5')['labels']))")
"$B/evit-quantize" "$cfg/quantize.json" "$P/student.h5" --calib "$P/train.h5" --val "$P/test.h5" \
    -o "$W/sq.h5" --report "$W/sq.json" -q >/dev/null
"$B/evit-quantize" "$cfg/quantize-attention.json" "$P/student.h5" --calib "$P/train.h5" --val "$P/test.h5" \
    -o "$W/sqa.h5" --report "$W/sqa.json" -q >/dev/null
cp "$P/quantized.report.json" "$W/pq.json"

ort() {
    "$B/evit-export" "$1" -o "$W/$2.onnx" -q
    node "$SRC/tests/ort_run.js" "$ORT" "$W/$2.onnx" "$W/test.u8" "$n" 28 28 1 "$W/$2.f32"
}

echo "ONNX Runtime $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$ORT/package.json" | head -1), 1 thread; $n images of $P/test.h5"
printf '| model | evit top-1 | ONNX Runtime top-1 | difference | max logit difference |\n|---|---|---|---|---|\n'
for m in student finetuned; do
    ort "$P/$m.h5" "$m"
    "$B/evit-eval" "$P/$m.h5" "$P/test.h5" --save-logits "$W/$m.l.h5" --report "$W/$m.e.json" -q >/dev/null
    a=$(num top1 "$W/$m.e.json")
    b=$("$PY" "$SRC/tests/onnx_check.py" top1 "$W/$m.f32" "$P/test.h5")
    d=$("$PY" "$SRC/tests/onnx_check.py" compare "$W/$m.f32" "$W/$m.l.h5" --tol 1e-4 | sed 's/.*difference| \([^ ]*\) .*/\1/')
    printf '| %s float32 | %.2f | %s | %+.2f | %s |\n' "$m" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { print b - a }')" "$d"
done
for m in sq:student.int8 sqa:student.int8+attention pq:pruned.int8; do
    k=${m%%:*}
    name=${m#*:}
    src=$W/$k.h5
    [ "$k" = pq ] && src=$P/student.q8.h5
    ort "$src" "$k"
    a=$(num int8_top1 "$W/$k.json")
    b=$("$PY" "$SRC/tests/onnx_check.py" top1 "$W/$k.f32" "$P/test.h5")
    printf '| %s (QDQ) | %.2f | %s | %+.2f | |\n' "$name" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { print b - a }')"
done
