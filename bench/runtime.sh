#!/bin/sh
# bench/runtime.sh: batch-1 latency of evit's runtime (bench/runtime, float32
# and INT8, 1 and 2 threads) next to PyTorch (float32, and
# quantize_dynamic INT8) and ONNX Runtime (float32, onnxruntime-node in
# bench/node_modules: `cd bench && npm install onnxruntime-node`) on the same
# configs, random weights, one table with ratios.  Peers that are not
# installed are skipped.
#
#   bench/runtime.sh BUILD_DIR [CONFIG ...]     (default: the four configs)
set -eu
B=${1:?usage: bench/runtime.sh BUILD_DIR [CONFIG ...]}
shift
SRC=$(cd "$(dirname "$0")/.." && pwd)
CONFIGS=${*:-fm-tiny fm-small deit-tiny deit-small}
PY=/usr/bin/python3
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$B/bench/runtime" $CONFIGS >"$W/evit.txt"
# where the default kernels are not avx512vnni but the CPU has it (AMX
# machines), INT8 with INT8 attention once more on the VNNI kernels alone,
# the instruction set the issue's ceiling is defined on
if grep -q ' kernels=amx ' "$W/evit.txt" && EVRT_KERNELS=avx512vnni "$B/bench/runtime" --dtypes int8a $CONFIGS >"$W/vnni.txt" 2>/dev/null; then
    sed -n 's/^evit \(.* int8a .*\)/vnni \1/p' "$W/vnni.txt" >>"$W/evit.txt"
fi
HAVE_TORCH=0
"$PY" -c 'import torch' 2>/dev/null && HAVE_TORCH=1
HAVE_ORT=0
[ -d "$SRC/bench/node_modules/onnxruntime-node" ] && command -v node >/dev/null && HAVE_ORT=1
: >"$W/peers.txt"
if [ $HAVE_TORCH = 1 ]; then
    SRC="$SRC" W="$W" HAVE_ORT=$HAVE_ORT "$PY" - $CONFIGS >>"$W/peers.txt" <<'PYEOF'
import json, os, sys, time, statistics
sys.path.insert(0, os.path.join(os.environ["SRC"], "tests"))
import torch
from torch_vit import VisionTransformer
torch.manual_seed(0)
for name in sys.argv[1:]:
    c = json.load(open(os.path.join(os.environ["SRC"], "configs/models", name + ".json")))
    d, h = c["embed_dim"], c["num_heads"]
    m = VisionTransformer(c["img_size"], c["channels"], c["patch"], c["num_classes"], d,
                          [h] * c["depth"], [d // h] * c["depth"], [c["mlp_hidden"]] * c["depth"]).eval()
    x = torch.rand(1, c["channels"], c["img_size"], c["img_size"])
    reps = 60 if c["img_size"] > 100 else 200
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for kind, model in (("f32", m), ("int8", torch.ao.quantization.quantize_dynamic(m, {torch.nn.Linear}, dtype=torch.qint8))):
            with torch.no_grad():
                for _ in range(3): model(x)
                ts = []
                for _ in range(reps):
                    t0 = time.perf_counter(); model(x); ts.append(1e3 * (time.perf_counter() - t0))
            print(f"torch {name} {kind} threads={threads} median_ms={statistics.median(ts):.4f}")
    if os.environ["HAVE_ORT"] == "1":
        torch.onnx.export(m, x, os.path.join(os.environ["W"], name + ".onnx"), opset_version=13,
                          input_names=["x"], output_names=["y"])
PYEOF
fi
if [ $HAVE_ORT = 1 ] && [ $HAVE_TORCH = 1 ]; then
    cat >"$W/ort.js" <<'JSEOF'
const ort = require(process.env.SRC + '/bench/node_modules/onnxruntime-node');
(async () => {
  for (const name of process.argv.slice(2)) {
    const c = require(process.env.SRC + '/configs/models/' + name + '.json');
    for (const threads of [1, 2]) {
      const s = await ort.InferenceSession.create(process.env.W + '/' + name + '.onnx',
        {intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all'});
      const n = c.channels * c.img_size * c.img_size;
      const x = new ort.Tensor('float32', Float32Array.from({length: n}, () => Math.random()),
                               [1, c.channels, c.img_size, c.img_size]);
      const reps = c.img_size > 100 ? 60 : 200, ts = [];
      for (let i = 0; i < 3; i++) await s.run({x});
      for (let i = 0; i < reps; i++) {
        const t0 = process.hrtime.bigint(); await s.run({x});
        ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      ts.sort((a, b) => a - b);
      console.log(`ort ${name} f32 threads=${threads} median_ms=${ts[reps >> 1].toFixed(4)}`);
    }
  }
})();
JSEOF
    SRC="$SRC" W="$W" node "$W/ort.js" $CONFIGS >>"$W/peers.txt"
fi
# the conditions each side ran under, printed with the table
{
    echo "conditions (the same thread count per row for every runtime; inter-op threads 1):"
    echo "  evit: libevrt, no BLAS; kernels $(sed -n 's/.* kernels=\([a-z0-9]*\) .*/\1/p' "$W/evit.txt" | sort -u | tr '\n' ' ')"
    if [ $HAVE_TORCH = 1 ]; then
        "$PY" -c 'import torch; print("  torch", torch.__version__, "- linears through oneDNN or BLAS; intra-op threads set per row (torch.set_num_threads)")'
        echo "  torch BLAS: libblas.so.3 -> $(readlink -f /usr/lib/"$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"/libblas.so.3 2>/dev/null || echo unknown)"
    fi
    if [ $HAVE_ORT = 1 ]; then
        echo "  onnxruntime-node $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$SRC/bench/node_modules/onnxruntime-node/package.json" | head -1), CPU provider, intraOpNumThreads per row, graph optimisation all"
    fi
    echo "  CPU: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores; flags:$(grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|avx_vnni|amx_int8|fma)$' | tr '\n' ' ')"
} >"$W/conditions.txt"
cat "$W/evit.txt" "$W/peers.txt" | awk '
{ key = $1 " " $2 " " $3 " " $4; for (i = 5; i <= NF; i++) if ($i ~ /^median_ms=/) { split($i, a, "="); t[key] = a[2] } }
$1 == "peak" { split($2, a, "="); peak = a[2] }
$1 == "evit" && $3 == "macs" { split($4, a, "="); macs[$2] = a[2]; next }
$1 == "evit" { order[n++] = $2 " " $4; if ($3 == "int8") for (i = 5; i <= NF; i++) if ($i ~ /^model_mb=|^ctx_mb=/) { split($i, a, "="); mem[$2 " " $4] += a[2] } }
END {
  printf "%-11s %-10s %9s %9s %9s %9s %9s %9s %9s %10s %10s %11s %8s\n", "config", "threads", "evit f32", "evit int8", "evit i8+a", "vnni i8+a", "torch f32", "torch i8", "ort f32", "int8/ort", "i8+a/ort", "f32/ort", "mem MB";
  for (k = 0; k < n; k++) {
    split(order[k], p, " "); if (seen[order[k]]++) continue; c = p[1]; th = p[2];
    ef = t["evit " c " f32 " th]; ei = t["evit " c " int8 " th]; ea = t["evit " c " int8a " th]; tf = t["torch " c " f32 " th];
    ti = t["torch " c " int8 " th]; of = t["ort " c " f32 " th]; ev = t["vnni " c " int8a " th];
    printf "%-11s %-10s %9s %9s %9s %9s %9s %9s %9s %10s %10s %11s %8.2f\n", c, th, ef, ei, ea, ev == "" ? "-" : ev, tf == "" ? "-" : tf, ti == "" ? "-" : ti, of == "" ? "-" : of,
      of == "" ? "-" : sprintf("%.2fx", of / ei), of == "" ? "-" : sprintf("%.2fx", of / ea), of == "" ? "-" : sprintf("%.2fx", of / ef), mem[order[k]];
  }
  if (peak != "") {
    printf "VNNI ceiling at 1 thread (INT8 multiply-adds of one image / measured vpdpbusd peak %.1f GMAC/s):\n", peak;
    for (k = 0; k < n; k++) {
      split(order[k], p, " "); c = p[1]; if (p[2] != "threads=1" || done[c]++) continue;
      ceil_ms = 1e3 * macs[c] / peak; ea = t["evit " c " int8a threads=1"]; ev = t["vnni " c " int8a threads=1"];
      printf "  %-11s %.4f GMAC -> %.3f ms; evit i8+a %.2fx the ceiling", c, macs[c], ceil_ms, ea / ceil_ms;
      if (ev != "") printf ", on the VNNI kernels alone %.2fx", ev / ceil_ms;
      printf "\n";
    }
  }
  print "times: batch-1 median ms; evit i8+a: INT8 linears and INT8 attention (vnni i8+a: the same on the avx512vnni kernels, where the default is amx); x/ort: ONNX Runtime f32 time over evit time (above 1: evit faster); mem: INT8 model + context bytes (weights as stored, working memory), not process RSS"
}'
cat "$W/conditions.txt"
