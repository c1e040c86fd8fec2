# bench/lib.sh: what bench/runtime.sh and bench/load.sh share; sourced
# after `set -eu`, with SRC set to the source tree and B to the build tree.
#
#   bench_models BUILD_DIR OUT_DIR CONFIG [SEED] [CALIB_IMAGES]
#       the model files both runtimes time, built with the CLI so that evit
#       and ONNX Runtime run the SAME weights:
#         evit-init CONFIG --seed SEED (default 1): random timm-style weights
#         a synthetic calibration set of CALIB_IMAGES (default 32) images of
#           the config's size and channels (a PNG class folder of noise
#           with a class-dependent bright square, as tests/mkdata.py draws
#           them, 10 classes; evit-data import --png, the class list then
#           widened to the config's count with h5py)
#         evit-quantize with configs/fmnist/quantize.json's settings
#           (entropy calibration, symmetric) but max_drop -1, so every
#           linear layer is int8 (a random-weight model has no accuracy to
#           keep), without and with quantize_attention
#         evit-export of each to .evit (evit-run) and .onnx (float32, or
#           QDQ for the quantized ones: ONNX Runtime fuses the linears' QDQ
#           pairs into its int8 MatMulIntegerToFloat; the patch embedding's
#           Conv and the head's Gemm, with no QuantizeLinear after them,
#           stay float behind DequantizeLinear: ort_kernels shows it)
#       It writes OUT_DIR/CONFIG.{f32,int8,int8a}.{evit,onnx} (int8a: INT8
#       linears and INT8 attention) and prints what evit-quantize made int8,
#       one line each: "deit-tiny int8: 50/50 layers int8, 0/12 attentions int8".
#   evit_time MODEL.evit THREADS WARMUP RUNS LIMIT_S
#       sets MED and P99 (ms) from `evit-run MODEL --bench` ($B/evit-run),
#       killed after LIMIT_S seconds (then it fails); needs $W, a scratch
#       folder; bench_stop in a trap ends one still running
#   ort_time MODEL.onnx THREADS WARMUP RUNS C S LIMIT_S
#       the same from ONNX Runtime (bench/ort_bench.js: intraOpNumThreads
#       THREADS, interOpNumThreads 1, graph optimisation all, sequential)
#   ort_kernels MODEL.onnx
#       one line: the int8 and float operators of ONNX Runtime's optimised
#       graph (which layers its QDQ fusion made int8)
#   ORT  onnxruntime-node's folder; ort_version prints its version
#   cfg_num CONFIG KEY  an integer field of configs/models/CONFIG.json

ORT=$SRC/bench/node_modules/onnxruntime-node

cfg_num() {
    sed -n "s/.*\"$2\":[[:space:]]*\\([0-9]*\\).*/\\1/p" "$SRC/configs/models/$1.json" | head -n 1
}

ort_version() {
    sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$ORT/package.json" | head -n 1
}

bench_models() (
    set -eu
    B=$1 O=$2 C=$3 SEED=${4:-1} NCAL=${5:-32}
    [ -f "$SRC/configs/models/$C.json" ] || { echo "error: $SRC/configs/models/$C.json: no such model config" >&2; exit 1; }
    S=$(cfg_num "$C" img_size)
    CH=$(cfg_num "$C" channels)
    mkdir -p "$O"
    W=$(mktemp -d "$O/.models-XXXXXX")
    trap 'rm -rf "$W"' EXIT
    # a stage with its output kept aside, shown only when it fails
    quiet() { "$@" >"$W/log" 2>&1 || { cat "$W/log" >&2; echo "error: bench_models: $1 failed" >&2; exit 1; }; }
    # NCAL 8-bit PNGs (grey or RGB, no filter) of 10 classes, zlib from the
    # standard library
    /usr/bin/python3 - "$W/png" "$NCAL" "$S" "$CH" <<'PYEOF'
import os, random, struct, sys, zlib
out, n, size, ch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(1)
sq = max(6, size // 8)
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
for i in range(n):
    c = i % 10
    img = bytearray(rng.getrandbits(8) % 60 for _ in range(size * size * ch))
    y0, x0 = (c * 7) % (size - sq), (c * 11) % (size - sq)
    for y in range(y0, y0 + sq):
        for x in range(x0, x0 + sq):
            for k in range(ch):
                img[(y * size + x) * ch + k] = 200 + rng.randrange(0, 55)
    rows = b"".join(b"\0" + bytes(img[y * size * ch:(y + 1) * size * ch]) for y in range(size))
    d = os.path.join(out, "c%d" % c)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "%04d.png" % i), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0 if ch == 1 else 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))
PYEOF
    quiet "$B/evit-data" import --png "$W/png" --size "$S" --channels "$CH" -o "$W/calib.h5" -q
    # the stages want the model's class count: the 10 classes' list widened
    # to K names (h5py; the images keep labels 0..9)
    K=$(cfg_num "$C" num_classes)
    [ "$K" = 10 ] || quiet /usr/bin/python3 -c 'import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs.create("classes", ["c%d" % i for i in range(int(sys.argv[2]))], dtype=h5py.string_dtype("utf-8"))' "$W/calib.h5" "$K"
    quiet "$B/evit-init" "$C" --seed "$SEED" --data "$W/calib.h5" -o "$W/f32.h5"
    for a in false true; do
        k=int8
        [ $a = true ] && k=int8a
        printf '{"description":"bench/lib.sh: configs/fmnist/quantize.json with max_drop -1 (every linear int8), quantize_attention %s","calibrator":"entropy","percentile":99.99,"calib_images":%d,"symmetric":true,"max_drop":-1,"quantize_attention":%s,"seed":0,"measure_images":%d,"batch":16}\n' \
            $a "$NCAL" $a "$NCAL" >"$W/$k.json"
        quiet "$B/evit-quantize" "$W/$k.json" "$W/f32.h5" --calib "$W/calib.h5" --val "$W/calib.h5" -o "$W/$k.h5" -q
        echo "$C $k: $(sed -n 's/.*, \([0-9]*\/[0-9]* layers int8, [0-9]*\/[0-9]* attentions int8\).*/\1/p' "$W/log")"
    done
    for k in f32 int8 int8a; do
        q=""
        [ $k = f32 ] || q="--quantize-config $W/$k.json"
        for ext in evit onnx; do
            # shellcheck disable=SC2086
            quiet "$B/evit-export" "$W/$k.h5" -o "$O/$C.$k.$ext" $q -q
        done
    done
)

# bench_run LIMIT_S CMD...: CMD's stdout into $W/bench.out, killed after
# LIMIT_S seconds; run in the background and waited for, so that a signal
# to the script interrupts the wait at once and its trap can end CMD
# ($BENCH_PID, timeout's pid: timeout passes the signal on)
bench_run() {
    _l=$1
    shift
    timeout --foreground -k 5 "$_l" "$@" >"$W/bench.out" &
    BENCH_PID=$!
    _rc=0
    wait "$BENCH_PID" || _rc=$?
    BENCH_PID=""
    return $_rc
}

# bench_stop: ends a measurement still running (for the callers' traps)
bench_stop() {
    [ -z "${BENCH_PID:-}" ] || kill "$BENCH_PID" 2>/dev/null || :
}

evit_time() {
    bench_run "$5" "$B/evit-run" "$1" --bench --threads "$2" --warmup "$3" --runs "$4" &&
        set -- "$1" "$5" $(sed -n 's/.*median \([0-9.]*\) ms *p99 \([0-9.]*\) ms.*/\1 \2/p' "$W/bench.out") &&
        [ $# = 4 ] || { echo "error: $1: evit-run --bench failed or ran past $5 s" >&2; return 1; }
    MED=$3 P99=$4
}

ort_time() {
    bench_run "$7" node "$SRC/bench/ort_bench.js" "$ORT" "$1" "$2" "$3" "$4" "$5" "$6" &&
        set -- "$1" "$7" $(sed -n 's/.*median_ms=\([0-9.]*\) p99_ms=\([0-9.]*\).*/\1 \2/p' "$W/bench.out") &&
        [ $# = 4 ] || { echo "error: $1: ONNX Runtime failed or ran past $7 s" >&2; return 1; }
    MED=$3 P99=$4
}

# ort_kernels MODEL.onnx: what ONNX Runtime's graph optimisation made of
# the model (the optimised graph's int8 operators, and the float matrix
# products and DequantizeLinear nodes it left), one line; needs
# /usr/bin/python3 with onnx, else says so
ort_kernels() {
    node -e "require('$ORT').InferenceSession.create(process.argv[1], {graphOptimizationLevel: 'all', intraOpNumThreads: 1,
        logSeverityLevel: 3, optimizedModelFilePath: process.argv[2]}).catch(e => { console.error(e.message); process.exit(1); })" \
        "$1" "$1.opt" >/dev/null 2>&1 || { echo "optimised graph: not written"; return 0; }
    /usr/bin/python3 - "$1.opt" <<'PYEOF' 2>/dev/null || echo "optimised graph: no python3-onnx to read it"
import collections, sys, onnx
n = collections.Counter(x.op_type for x in onnx.load(sys.argv[1]).graph.node)
q = [f"{k} {v}" for k, v in sorted(n.items()) if "Integer" in k or k.startswith("QLinear")]
f = [f"{k} {v}" for k, v in sorted(n.items()) if k in ("MatMul", "FusedMatMul", "Gemm", "Conv", "DequantizeLinear")]
print("optimised graph: int8 " + (", ".join(q) or "none") + "; float " + (", ".join(f) or "none"))
PYEOF
    rm -f "$1.opt"
}
