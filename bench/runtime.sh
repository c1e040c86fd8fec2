#!/bin/sh
# bench/runtime.sh: batch-1 latency of evit's runtime (bench/runtime, float32
# and INT8, 1 and 2 threads) next to PyTorch (float32, and
# quantize_dynamic INT8) and ONNX Runtime (onnxruntime-node in
# bench/node_modules: `cd bench && npm install onnxruntime-node`) on the same
# configs, one table with ratios.  Peers that are not installed are skipped.
#
#   bench/runtime.sh BUILD_DIR [CONFIG ...]     (default: the four configs)
#
# Two kinds of model, both in the same run and the same table:
# - random weights (the first columns): bench/runtime's own models
#   (float32, INT8 with crude max calibration, INT8 + INT8 attention), a
#   PyTorch model of the same shape (tests/torch_vit.py) and ONNX Runtime
#   float32 on its torch.onnx.export ("ort f32");
# - the SAME weights in evit and ONNX Runtime (the last columns): per config
#   bench/lib.sh's bench_models builds the files with the CLI (evit-init,
#   evit-quantize on a synthetic calibration set with every linear int8,
#   with and without INT8 attention, evit-export to .evit and to .onnx:
#   float32 and QDQ), and each is timed by `evit-run FILE --bench` ("run
#   f32", "run int8", "run i8+a") and by ONNX Runtime on evit-export's own
#   ONNX file ("ortx f32"; "ort int8", the QDQ model, whose linears ONNX
#   Runtime fuses into its int8 kernels; "ort i8+a", the QDQ model with INT8
#   attention's QDQ pairs too; the conditions list the optimised graphs'
#   int8 and float operators).  int8/ort8 and i8+a/ort8 are ONNX Runtime INT8 time over
#   evit INT8 (resp. INT8 + INT8 attention) time on those files: above 1,
#   evit is faster.
# Every timing: batch 1, 3 warm-up runs then 200 timed (60 for images over
# 100 pixels), the median; ONNX Runtime with intraOpNumThreads = the row's
# threads, interOpNumThreads 1, graph optimisation all.  A small config
# (`bench/runtime.sh build fm-tiny`, seconds) checks the script works.
# Then a Token Merging table: INT8 + INT8 attention at r = 0, 8 and 16 per
# config at 1 thread, its speedup against r = 0 of the same run, the
# multiply-add ratio, and the merge step's share of the inference.
set -eu
B=${1:?usage: bench/runtime.sh BUILD_DIR [CONFIG ...]}
shift
SRC=$(cd "$(dirname "$0")/.." && pwd)
CONFIGS=${*:-fm-tiny fm-small deit-tiny deit-small}
PY=/usr/bin/python3
. "$SRC/bench/lib.sh"
W=$(mktemp -d)
trap 'bench_stop; rm -rf "$W"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
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
[ -d "$ORT" ] && command -v node >/dev/null && HAVE_ORT=1
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
reps() { [ "$(cfg_num "$1" img_size)" -gt 100 ] && echo 60 || echo 200; }
if [ $HAVE_ORT = 1 ] && [ $HAVE_TORCH = 1 ]; then
    for c in $CONFIGS; do
        for t in 1 2; do
            ort_time "$W/$c.onnx" $t 3 "$(reps "$c")" "$(cfg_num "$c" channels)" "$(cfg_num "$c" img_size)" 600
            echo "ort $c f32 threads=$t median_ms=$MED" >>"$W/peers.txt"
        done
    done
fi
# the same weights in both runtimes: evit-export's .evit and .onnx files
: >"$W/quant.txt"
if [ $HAVE_ORT = 1 ]; then
    for c in $CONFIGS; do
        bench_models "$B" "$W/m" "$c" >>"$W/quant.txt"
        for k in int8 int8a; do echo "$c $k, ONNX Runtime's $(ort_kernels "$W/m/$c.$k.onnx")" >>"$W/quant.txt"; done
        for t in 1 2; do
            for k in f32 int8 int8a; do
                evit_time "$W/m/$c.$k.evit" $t 3 "$(reps "$c")" 600
                echo "run $c $k threads=$t median_ms=$MED" >>"$W/peers.txt"
                ort_time "$W/m/$c.$k.onnx" $t 3 "$(reps "$c")" "$(cfg_num "$c" channels)" "$(cfg_num "$c" img_size)" 600
                echo "ortx $c $k threads=$t median_ms=$MED" >>"$W/peers.txt"
            done
        done
    done
fi
# the conditions each side ran under, printed with the table
{
    echo "conditions (the same thread count per row for every runtime; inter-op threads 1):"
    echo "  evit: libevrt, no BLAS; kernels $(sed -n 's/.* kernels=\([a-z0-9]*\) .*/\1/p' "$W/evit.txt" | sort -u | tr '\n' ' ')(bench/runtime and evit-run pick the same default${EVRT_KERNELS:+; EVRT_KERNELS=$EVRT_KERNELS}); evrt_ctx_set_threads = the row's threads"
    if [ $HAVE_TORCH = 1 ]; then
        "$PY" -c 'import torch; print("  torch", torch.__version__, "- linears through oneDNN or BLAS; intra-op threads set per row (torch.set_num_threads)")'
        echo "  torch BLAS: libblas.so.3 -> $(readlink -f /usr/lib/"$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"/libblas.so.3 2>/dev/null || echo unknown)"
    fi
    if [ $HAVE_ORT = 1 ]; then
        echo "  onnxruntime-node $(ort_version) (node $(node --version)), CPU execution provider (MLAS kernels), session options: intraOpNumThreads = the row's threads, interOpNumThreads 1, graphOptimizationLevel all, executionMode sequential"
        echo "  same-weight files (bench/lib.sh bench_models: evit-init seed 1, entropy calibration on 32 synthetic images, max_drop -1):"
        sed 's/^/    /' "$W/quant.txt"
    fi
    echo "  CPU: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores; flags:$(grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|avx_vnni|amx_int8|fma)$' | tr '\n' ' ')"
} >"$W/conditions.txt"
cat "$W/evit.txt" "$W/peers.txt" | awk '
{ key = $1 " " $2 " " $3 " " $4; for (i = 5; i <= NF; i++) if ($i ~ /^median_ms=/) { split($i, a, "="); t[key] = a[2] } }
$1 == "peak" { split($2, a, "="); peak = a[2] }
$1 == "evit" && $3 == "macs" { split($4, a, "="); macs[$2] = a[2]; next }
$1 == "evit" { order[n++] = $2 " " $4; if ($3 == "int8") for (i = 5; i <= NF; i++) if ($i ~ /^model_mb=|^ctx_mb=/) { split($i, a, "="); mem[$2 " " $4] += a[2] } }
END {
  printf "%-11s %-10s %9s %9s %9s %9s %9s %9s %9s %10s %10s %11s %8s | %9s %9s %9s %9s %9s %9s %9s %9s %9s\n", "config", "threads", "evit f32", "evit int8", "evit i8+a", "vnni i8+a", "torch f32", "torch i8", "ort f32", "int8/ort", "i8+a/ort", "f32/ort", "mem MB",
    "run f32", "run int8", "run i8+a", "ortx f32", "ort int8", "ort i8+a", "f32/ortx", "int8/ort8", "i8+a/ort8";
  for (k = 0; k < n; k++) {
    split(order[k], p, " "); if (seen[order[k]]++) continue; c = p[1]; th = p[2];
    ef = t["evit " c " f32 " th]; ei = t["evit " c " int8 " th]; ea = t["evit " c " int8a " th]; tf = t["torch " c " f32 " th];
    ti = t["torch " c " int8 " th]; of = t["ort " c " f32 " th]; ev = t["vnni " c " int8a " th];
    printf "%-11s %-10s %9s %9s %9s %9s %9s %9s %9s %10s %10s %11s %8.2f", c, th, ef, ei, ea, ev == "" ? "-" : ev, tf == "" ? "-" : tf, ti == "" ? "-" : ti, of == "" ? "-" : of,
      of == "" ? "-" : sprintf("%.2fx", of / ei), of == "" ? "-" : sprintf("%.2fx", of / ea), of == "" ? "-" : sprintf("%.2fx", of / ef), mem[order[k]];
    rf = t["run " c " f32 " th]; ri = t["run " c " int8 " th]; ra = t["run " c " int8a " th];
    xf = t["ortx " c " f32 " th]; xi = t["ortx " c " int8 " th]; xa = t["ortx " c " int8a " th];
    if (xi == "") printf " | %9s %9s %9s %9s %9s %9s %9s %9s %9s\n", "-", "-", "-", "-", "-", "-", "-", "-", "-";
    else printf " | %9s %9s %9s %9s %9s %9s %9s %9s %9s\n", rf, ri, ra, xf, xi, xa,
      sprintf("%.2fx", xf / rf), sprintf("%.2fx", xi / ri), sprintf("%.2fx", xi / ra);
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
  for (k = 0; k < n; k++) {
    split(order[k], p, " "); c = p[1]; if (p[2] != "threads=1" || tdone[c]++) continue;
    xi = t["ortx " c " int8 threads=1"]; ra = t["run " c " int8a threads=1"];
    if (xi != "") printf "same weights at 1 thread, evit INT8 + INT8 attention against ONNX Runtime INT8 (target >= 1.5x): %s %.2fx (%s / %s ms) %s\n", c, xi / ra, xi, ra, (xi / ra >= 1.5) ? "PASS" : "FAIL";
  }
  print "times: batch-1 median ms; evit i8+a: INT8 linears and INT8 attention (vnni i8+a: the same on the avx512vnni kernels, where the default is amx); x/ort: ONNX Runtime f32 time over evit time (above 1: evit faster); mem: INT8 model + context bytes (weights as stored, working memory), not process RSS"
  print "after |, the same weights in both runtimes (evit-export files of one evit-init model): run: evit-run --bench on the .evit; ortx f32, ort int8, ort i8+a: ONNX Runtime on evit-export'"'"'s float32 and QDQ .onnx (i8+a: with INT8 attention'"'"'s QDQ pairs); f32/ortx: ortx f32 over run f32; int8/ort8, i8+a/ort8: ort int8 over run int8, over run i8+a (above 1: evit faster)"
}'
cat "$W/conditions.txt"

# Token Merging: INT8 + INT8 attention at r = 0, 8 and 16 (every block but
# the last merges r, at most what its tokens allow), batch 1, 1 thread, the
# three back to back in this run; the merge step is the merging kernels'
# own time for one image (bench/runtime --merge).
"$B/bench/runtime" --merge 0,8,16 --dtypes int8a --threads 1 $CONFIGS >"$W/merge.txt"
awk '
$1 == "merge" { c = $2; for (i = 4; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
  r = v["r"]; key = c " " r; ms[key] = v["median_ms"]; mm[key] = v["merge_ms"]; g[key] = v["gmac"]; tok[key] = v["tokens"];
  if (!(c in seen)) { seen[c] = 1; order[n++] = c } rs[c] = rs[c] " " r }
END {
  print ""
  print "Token Merging, INT8 + INT8 attention, batch 1, 1 thread (the same run):"
  printf "%-11s %4s %9s %10s %8s %9s %10s %9s %8s\n", "config", "r", "tokens", "median ms", "speedup", "GMAC", "MAC ratio", "merge ms", "share"
  for (k = 0; k < n; k++) {
    c = order[k]; m0 = split(rs[c], rr, " ");
    for (j = 1; j <= m0; j++) {
      key = c " " rr[j]; base = c " 0";
      printf "%-11s %4s %9s %10.3f %7.2fx %9.4f %9.2fx %9.3f %7.1f%%\n", c, rr[j], tok[key], ms[key], ms[base] / ms[key], g[key], g[base] / g[key], mm[key], 100 * mm[key] / ms[key]
    }
    if (c == "deit-tiny") {
      printf "deit-tiny r 8 against r 0 (target >= 1.4x): %.2fx %s (its multiply-adds drop %.2fx)\n", ms[c " 0"] / ms[c " 8"], (ms[c " 0"] / ms[c " 8"] >= 1.4) ? "PASS" : "FAIL", g[c " 0"] / g[c " 8"]
      printf "deit-tiny r 16 against r 0 (target >= 1.9x): %.2fx %s (its multiply-adds drop %.2fx)\n", ms[c " 0"] / ms[c " 16"], (ms[c " 0"] / ms[c " 16"] >= 1.9) ? "PASS" : "FAIL", g[c " 0"] / g[c " 16"]
      printf "deit-tiny merge step at r 8 (target < 10%% of the inference): %.1f%% %s\n", 100 * mm[c " 8"] / ms[c " 8"], (mm[c " 8"] < 0.1 * ms[c " 8"]) ? "PASS" : "FAIL"
    }
  }
  print "  MAC ratio: r 0 multiply-adds over r; the runtime already runs the last block on the class token alone, so merging saves less than ToMe counts (its 1.44x for DeiT-T r 8 is on a model whose last block runs every token)"
}' "$W/merge.txt"
