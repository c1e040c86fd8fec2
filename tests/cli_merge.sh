#!/bin/sh
# cli_merge.sh: evit-merge sets a checkpoint's Token Merging schedule
# (given, within an accuracy drop, or for a FLOPs budget); the merged model
# evaluates, fine-tunes with evit-distill --init and prunes with its
# schedule kept; a schedule that does not fit the tokens is refused in one
# line, by evit-merge, by evit-init and in a checkpoint at load; libevrt
# runs it: it exports, quantizes (INT8 attention included) and evaluates as a
# .evit at the quantize report's accuracy; ONNX export refuses it.
set -eu
. "$EVIT_SRC/tests/lib.sh"

needs_python
M=$EVIT_BIN/evit-merge

succeeds "$M" --help; stdout_has "usage: evit-merge"
fails_with 2 "$M"
fails_with 2 "$M" m.h5 --r 2
fails_with 2 "$M" m.h5 -o o.h5
fails_with 2 "$M" m.h5 -o o.h5 --r 2 --schedule 2,0
fails_with 2 "$M" m.h5 -o o.h5 --max-drop 1
fails_with 2 "$M" m.h5 -o o.h5 --target-mflops lots
ok "help exits 0 and usage errors exit 2"

synth_data "$T/all.h5" 1200 28 10
synth_data "$T/val.h5" 300 28 10
train_mini 3 4 # patch 7 on 28: 16 patches, 17 tokens, 2 blocks
attr() { "$PY" -c "import h5py, sys; f = h5py.File(sys.argv[1]); print(' '.join(str(v) for v in f.attrs['$2']) if '$2' in f.attrs else 'absent')" "$1"; }

# --- a uniform r: the last block merges nothing (it would change nothing)
succeeds "$M" "$T/m.h5" --r 4 -o "$T/r4.h5" --val "$T/val.h5" --report "$T/r4.json"
stdout_has "tokens 17 13 13"
stdout_has "top-1"
[ "$(attr "$T/r4.h5" merge_r)" = "4 0" ] || fail "merge_r attribute is $(attr "$T/r4.h5" merge_r), not 4 0"
[ "$(attr "$T/m.h5" merge_r)" = absent ] || fail "an unmerged checkpoint got a merge_r attribute"
for key in '"stage":	"merge"' '"tokens":	[17, 13]' '"merge_r":	[4, 0]' '"top1":' '"mflops":'; do
    grep -qF "$key" "$T/r4.json" || fail "report lacks $key"
done
grep -qF "\"parent\":	\"$T/m.report.json\"" "$T/r4.json" || fail "report does not name the input's report as parent"
m0=$(sed -n 's/.*"mflops":	\([0-9.]*\).*/\1/p' "$T/m.report.json" | head -1)
m4=$(sed -n 's/.*"mflops":	\([0-9.]*\).*/\1/p' "$T/r4.json" | head -1)
awk "BEGIN { exit !($m4 < $m0) }" || fail "merging 4 tokens did not lower MFLOPs ($m0 -> $m4)"
succeeds "$EVIT_BIN/evit-report" compare "$T/r4.json"
grep -q ' merge  .* 17>13 ' "$T/out" || fail "evit-report's merge row lacks tokens 17>13"
grep -q ' distill  .*  17  ' "$T/out" || fail "evit-report's unmerged row lacks tokens 17"
ok "--r 4 writes the schedule (17 -> 13 tokens), a report with tokens and fewer MFLOPs ($m0 -> $m4); evit-report shows the tokens"

succeeds "$M" "$T/m.h5" --schedule 4,0 -o "$T/s4.h5" -q --val "$T/val.h5" --latency 5 --report "$T/s4.json"
grep -qF '"latency_ms":' "$T/s4.json" || fail "--latency put no latency_ms in the report"
fails_with 1 "$M" "$T/m.h5" --schedule 4,0 -o "$T/bad.h5" --latency 5
stderr_has "--latency needs images"

[ "$(attr "$T/s4.h5" merge_r)" = "4 0" ] || fail "--schedule 4,0 wrote $(attr "$T/s4.h5" merge_r)"
fails_with 1 "$M" "$T/m.h5" --schedule 9,0 -o "$T/bad.h5"
stderr_has "merge_r 9 does not fit its 17 tokens (0 to 8)"
fails_with 1 "$M" "$T/m.h5" --r 9 -o "$T/bad.h5"
fails_with 1 "$M" "$T/m.h5" --schedule 4 -o "$T/bad.h5"
stderr_has "1 counts for the model's 2 blocks"
fails_with 1 "$M" "$T/m.h5" --schedule 4,x -o "$T/bad.h5"
[ ! -e "$T/bad.h5" ] || fail "a refused schedule left a file"
ok "--schedule sets each block's r; a schedule that does not fit, a wrong count or a bad list is one line, exit 1"

# --- the searches
succeeds "$M" "$T/m.h5" --target-mflops "$m4" -o "$T/t.h5" --report "$T/t.json" -q
mt=$(sed -n 's/.*"mflops":	\([0-9.]*\).*/\1/p' "$T/t.json" | head -1)
awk "BEGIN { exit !($mt <= $m4) }" || fail "--target-mflops $m4 gave $mt MFLOPs"
[ "$(attr "$T/t.h5" merge_r)" = "4 0" ] || fail "--target-mflops $m4 chose $(attr "$T/t.h5" merge_r), not the least merging 4 0"
fails_with 1 "$M" "$T/m.h5" --target-mflops 0.001 -o "$T/bad.h5"
stderr_has "cannot be reached by merging"
succeeds "$M" "$T/m.h5" --max-drop 100 --val "$T/val.h5" -o "$T/d.h5" -q
[ "$(attr "$T/d.h5" merge_r)" = "8 0" ] || fail "--max-drop 100 chose $(attr "$T/d.h5" merge_r), not the most (8 0)"
succeeds "$M" "$T/m.h5" --max-drop 0 --val "$T/val.h5" -o "$T/d0.h5" --report "$T/d0.json"
t0=$(grep -o 'r 0: top-1 [0-9.]*' "$T/err" | sed 's/.* //')
td=$(sed -n 's/.*"top1":	\([0-9.]*\).*/\1/p' "$T/d0.json" | head -1)
awk "BEGIN { exit !($td >= $t0) }" || fail "--max-drop 0 chose a schedule at $td% below r 0's $t0%"
ok "--target-mflops picks the least merging within the budget, --max-drop the most within the drop"

# --- every stage: evit-eval, evit-distill --init (fine-tuning), evit-prune
succeeds "$EVAL" "$T/r4.h5" "$T/val.h5" -q
succeeds "$D" "$T/recipe.json" --data "$T/all.h5" --init "$T/r4.h5" -o "$T/ft.h5" --steps 10 -q
[ "$(attr "$T/ft.h5" merge_r)" = "4 0" ] || fail "fine-tuning lost the schedule"
printf '{"criterion":"l2","scope":"global","heads_ratio":0.5,"mlp_ratio":0.5,"mlp_multiple":8}\n' >"$T/half.json"
succeeds "$P" "$T/half.json" "$T/r4.h5" -o "$T/p.h5" --report "$T/p.json" -q
[ "$(attr "$T/p.h5" merge_r)" = "4 0" ] || fail "pruning lost the schedule"
succeeds "$EVAL" "$T/p.h5" "$T/val.h5" -q
ok "the merged model evaluates, fine-tunes with evit-distill --init and prunes with its schedule kept"

# --- refused: a schedule in a config or checkpoint that does not fit
printf '%s' "$(mini_model 4)" | sed 's/}$/,"merge_r":9}/' >"$T/toomuch.json"
fails_with 1 "$INIT" "$T/toomuch.json" -o "$T/bad.h5"
stderr_has "block 0: merge_r 9 does not fit its 17 tokens"
cp "$T/r4.h5" "$T/edited.h5"
"$PY" -c "import h5py, numpy as np, sys; f = h5py.File(sys.argv[1], 'a'); f.attrs['merge_r'] = np.array([12, 0], np.int32)" "$T/edited.h5"
fails_with 1 "$EVAL" "$T/edited.h5" "$T/val.h5"
stderr_has "merge_r 12 does not fit"
ok "a schedule too large for the tokens is refused in one line, in a config and in a checkpoint"

# --- the runtime stages: libevrt merges too
succeeds "$X" "$T/r4.h5" -o "$T/r4.evit" -q
succeeds "$EVAL" "$T/r4.h5" "$T/val.h5" --report "$T/fe0.json" -q
succeeds "$EVAL" "$T/r4.evit" "$T/val.h5" --report "$T/fe.json" -q
f0=$(num top1 "$T/fe0.json")
f1=$(num top1 "$T/fe.json")
awk -v a="$f0" -v b="$f1" 'BEGIN { d = a - b; exit !(d <= 0.5 && d >= -0.5) }' || fail "merged float file $f1% vs checkpoint $f0%"
grep -qF '"tokens":	[17, 13]' "$T/fe.json" || fail "the .evit's report lacks the merged tokens"
printf '{"calibrator":"minmax","quantize_attention":true,"max_drop":100}\n' >"$T/q.json"
succeeds "$Q" "$T/q.json" "$T/r4.h5" --calib "$T/all.h5" --val "$T/val.h5" -o "$T/q.h5" --report "$T/qr.json" -q
[ "$(attr "$T/q.h5" merge_r)" = "4 0" ] || fail "quantizing lost the schedule"
succeeds "$X" "$T/q.h5" -o "$T/q.evit" -q
succeeds "$EVAL" "$T/q.evit" "$T/val.h5" --report "$T/qe.json" -q --threads 2
a=$(num int8_top1 "$T/qr.json")
b=$(num top1 "$T/qe.json")
[ "$a" = "$b" ] || fail "evit-quantize reported INT8 top-1 $a% for the merged model, its file measures $b%"
succeeds "$EVAL" "$T/r4.h5" "$T/val.h5" --latency 5 -q
succeeds "$EVAL" "$T/q.evit" "$T/val.h5" --latency 5 -q
ok "a merged model exports as .evit ($f1% against the checkpoint's $f0%), quantizes with INT8 attention ($a%, the same in its file) and times with --latency"

if [ -x "$EVIT_BIN/evit-export" ] && "$X" --help | grep -q onnx; then
    fails_with 1 "$X" "$T/q.h5" -o "$T/q.onnx"
    stderr_has "ONNX export of Token Merging is not supported"
    [ ! -e "$T/q.onnx" ] || fail "a refused ONNX export left a file"
    ok "ONNX export of a merged model is refused in one line"
fi

# --- a segmentation head reads every patch token: evit-merge refuses one,
# SegFormer's all-MLP decoder (seg_mlp) as Segmenter's linear one
for cfg in seg-fm-tiny seg-fm-tiny-mlp; do
    succeeds "$INIT" "$cfg" -o "$T/$cfg.h5"
    fails_with 1 "$M" "$T/$cfg.h5" --r 2 -o "$T/x.h5"
    stderr_has "$T/$cfg.h5: has a seg_"
    stderr_has "head, which this stage does not support yet (it takes class heads"
done
[ ! -e "$T/x.h5" ] || fail "a refused merge of a segmentation model wrote its output"
ok "a segmentation model (seg_linear or seg_mlp) is refused in one line, naming the file"
