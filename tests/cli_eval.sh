#!/bin/sh
# cli_eval.sh: evit-init and evit-eval end to end on a small synthetic
# dataset, then every bad input we promise to report in one line.
set -eu
. "$EVIT_SRC/tests/lib.sh"

needs_python

# --- help and usage
succeeds "$INIT" --help; stdout_has "usage: evit-init"
succeeds "$EVAL" --help; stdout_has "usage: evit-eval"
fails_with 2 "$INIT"
fails_with 2 "$EVAL" only-one-argument
fails_with 2 "$EVAL" --batch 0 a b
ok "help exits 0 and usage errors exit 2"

# --- import, init, evaluate
synth_data "$T/d.h5" 300 28 10
succeeds "$INIT" fm-tiny -o "$T/m.h5" --seed 5 --data "$T/d.h5"
stderr_has "205066 parameters"
succeeds "$EVAL" "$T/m.h5" "$T/d.h5" --report "$T/r.json" --save-logits "$T/l.h5" -q
stdout_has "top-1"
for key in '"stage":' '"top1":' '"top5":' '"loss":' '"per_class_accuracy":' '"confusion":' \
    '"params":' '"model_bytes":' '"mflops":' '"images_per_s":' '"wall_s":' '"evit_version":' \
    '"git_revision":' '"config":' '"parent":' '"dataset":' '"model":'; do
    grep -qF "$key" "$T/r.json" || fail "report lacks $key"
done
grep -q '"params":[[:space:]]*205066' "$T/r.json" || fail "report has the wrong parameter count"
grep -q '"images":[[:space:]]*300' "$T/r.json" || fail "report counts the wrong number of images"
ok "init then eval writes a complete report and logits"

# same seed, same weights; another seed, other weights
succeeds "$INIT" fm-tiny -o "$T/m2.h5" --seed 5 --data "$T/d.h5"
succeeds "$EVAL" "$T/m2.h5" "$T/d.h5" --save-logits "$T/l2.h5" -q
cmp -s "$T/l.h5" "$T/l2.h5" || h5diff -q "$T/l.h5" "$T/l2.h5" logits logits >/dev/null 2>&1 \
    || fail "the same seed gave different logits"
succeeds "$INIT" fm-tiny -o "$T/m3.h5" --seed 6 --data "$T/d.h5"
succeeds "$EVAL" "$T/m3.h5" "$T/d.h5" --save-logits "$T/l3.h5" -q
if command -v h5diff >/dev/null 2>&1; then
    if h5diff -q "$T/l.h5" "$T/l3.h5" logits logits >/dev/null 2>&1; then fail "seeds 5 and 6 gave the same logits"; fi
fi
ok "initialisation is deterministic in the seed"

# batch-1 latency through the runtime lands in the report
succeeds "$EVAL" "$T/m.h5" "$T/d.h5" --latency 5 --report "$T/lat.json" -q
stdout_has "batch-1 latency through libevrt"
for key in '"latency_ms":' '"latency_mean_ms":' '"latency_p99_ms":'; do
    grep -qF "$key" "$T/lat.json" || fail "report lacks $key"
done
fails_with 2 "$EVAL" "$T/m.h5" "$T/d.h5" --latency 0
ok "--latency times single-image inference through libevrt and reports it"

# a report's parent is recorded
succeeds "$EVAL" "$T/m.h5" "$T/d.h5" --report "$T/r2.json" --parent "$T/r.json" --stage check -q
grep -qF "\"parent\":	\"$T/r.json\"" "$T/r2.json" || fail "parent not recorded"
grep -qF '"stage":	"check"' "$T/r2.json" || fail "stage not recorded"
ok "the report names its parent and stage"

# the thread count the throughput was measured at is recorded
succeeds "$EVAL" "$T/m.h5" "$T/d.h5" --report "$T/r3.json" --threads 1 -q
grep -q '"threads":[[:space:]]*1,\{0,1\}$' "$T/r3.json" || fail "threads not recorded"
grep -qF "\"dataset_real\":	\"$(realpath "$T/d.h5")\"" "$T/r3.json" || fail "canonical dataset path not recorded"
ok "the report records the thread count of its throughput and the dataset's canonical path"

# --- bad inputs: one line naming the file, exit 1, no output left behind
fails_with 1 "$EVAL" "$T/missing.h5" "$T/d.h5"; stderr_has "missing.h5"
fails_with 1 "$EVAL" "$T/m.h5" "$T/missing.h5"; stderr_has "missing.h5"
head -c 3000 "$T/m.h5" >"$T/trunc.h5"
fails_with 1 "$EVAL" "$T/trunc.h5" "$T/d.h5"; stderr_has "trunc.h5"
head -c 20000 /dev/urandom >"$T/junk.h5"
fails_with 1 "$EVAL" "$T/junk.h5" "$T/d.h5"; stderr_has "not an HDF5 file"
fails_with 1 "$EVAL" "$T/d.h5" "$T/d.h5"; stderr_has "evit-checkpoint"
fails_with 1 "$EVAL" "$T/m.h5" "$T/m.h5"; stderr_has "evit-dataset"
fails_with 1 "$EVAL" "$T/m.h5" "$T/d.h5" --report "$T/no/such/dir/r.json" -q
[ ! -e "$T/no/such/dir/r.json" ] || fail "a report was left behind"
ok "missing, truncated, corrupt and mistaken files are refused in one line"

# a dataset whose images do not fit the model
synth_data "$T/d16.h5" 20 16 10
fails_with 1 "$EVAL" "$T/m.h5" "$T/d16.h5"; stderr_has "28x28x1"
fails_with 1 "$INIT" fm-tiny -o "$T/m16.h5" --data "$T/d16.h5"
[ ! -e "$T/m16.h5" ] || fail "a checkpoint was left behind"
ok "a dataset of another image size is refused"

# damaged checkpoints and datasets (h5py writes the damage)
if "$PY" -c "import h5py, numpy" 2>/dev/null; then
    cp "$T/m.h5" "$T/nan.h5"
    "$PY" "$EVIT_SRC/tests/h5edit.py" nan "$T/nan.h5" blocks/1/mlp/fc2/weight
    fails_with 1 "$EVAL" "$T/nan.h5" "$T/d.h5"; stderr_has "blocks.1.mlp.fc2.weight holds NaN"
    cp "$T/m.h5" "$T/shape.h5"
    "$PY" "$EVIT_SRC/tests/h5edit.py" shape "$T/shape.h5" blocks/0/attn/qkv/weight
    fails_with 1 "$EVAL" "$T/shape.h5" "$T/d.h5"; stderr_has "blocks/0/attn/qkv/weight has shape (191, 64), expected (192, 64)"
    cp "$T/m.h5" "$T/depth.h5"
    "$PY" "$EVIT_SRC/tests/h5edit.py" attr "$T/depth.h5" depth 5
    fails_with 1 "$EVAL" "$T/depth.h5" "$T/d.h5"; stderr_has "depth.h5"
    cp "$T/d.h5" "$T/badlabel.h5"
    "$PY" "$EVIT_SRC/tests/h5edit.py" label "$T/badlabel.h5" 7 12
    fails_with 1 "$EVAL" "$T/m.h5" "$T/badlabel.h5"; stderr_has "label 12 of image 7 is outside [0, 10)"
    ok "NaN weights, wrong tensor shapes, a wrong config and bad labels are refused"
else
    echo "# h5py missing: damaged-file cases not run"
fi

# configs: unknown keys and bad values
printf '{"name":"x","img_size":28,"channels":1,"patch":4,"num_classes":10,"embed_dim":64,"depth":2,"num_heads":4,"mlp_hidden":64,"dropout":0.1}\n' >"$T/unk.json"
fails_with 1 "$INIT" "$T/unk.json" -o "$T/u.h5"; stderr_has "unk.json: dropout: unknown key"
printf '{"name":"x","img_size":28,"channels":1,"patch":5,"num_classes":10,"embed_dim":64,"depth":2,"num_heads":4,"mlp_hidden":64}\n' >"$T/patch.json"
fails_with 1 "$INIT" "$T/patch.json" -o "$T/u.h5"; stderr_has "patch 5 must divide img_size 28"
printf '{"name":"x",' >"$T/syntax.json"
fails_with 1 "$INIT" "$T/syntax.json" -o "$T/u.h5"; stderr_has "invalid JSON"
fails_with 1 "$INIT" no-such-model -o "$T/u.h5"
[ ! -e "$T/u.h5" ] || fail "a checkpoint was left behind"
ok "bad model configs are refused with file and key"

# a pruned-style model (per-block shapes) is an ordinary model
cat >"$T/pruned.json" <<'JSON'
{"name":"pruned","img_size":28,"channels":1,"patch":4,"num_classes":10,"embed_dim":64,"depth":2,
 "blocks":[{"num_heads":3,"head_dim":16,"mlp_hidden":200},{"num_heads":4,"head_dim":16,"mlp_hidden":256}]}
JSON
succeeds "$INIT" "$T/pruned.json" -o "$T/p.h5" --data "$T/d.h5"
succeeds "$EVAL" "$T/p.h5" "$T/d.h5" --report "$T/p.json" -q
grep -q '"mlp_hidden":[[:space:]]*200' "$T/p.json" || fail "per-block shape lost"
succeeds "$DATA" info "$T/p.h5"
ok "a model with per-block head counts and widths initialises and evaluates"

# --- segmentation: a seg_linear model on Fashion-MNIST scenes, scored per pixel
succeeds "$DATA" scenes "$T/d.h5" -o "$T/sc.h5" --count 20 --size 96 --seed 3 -q
succeeds "$INIT" seg-fm-tiny -o "$T/seg.h5" --seed 5 --data "$T/sc.h5"
succeeds "$EVAL" "$T/seg.h5" "$T/sc.h5" --report "$T/seg.json" -q --batch 8
stdout_has "mIoU"
stdout_has "pixel accuracy"
for key in '"miou":' '"dice":' '"pixel_accuracy":' '"per_class_iou":' '"per_class_dice":' '"classes_present":' \
    '"pixels":' '"loss":' '"head":[[:space:]]*"seg_linear"'; do
    grep -q "$key" "$T/seg.json" || fail "the segmentation report lacks $key"
done
[ "$(tr -d ' \t\n' <"$T/seg.json" | sed -n 's/.*"per_class_iou":{\([^}]*\)}.*/\1/p' | tr ',' '\n' | grep -c .)" -eq 11 ] ||
    fail "per_class_iou does not have 11 classes"
miou=$(num miou "$T/seg.json")
awk -v m="$miou" 'BEGIN { exit !(m >= 0 && m <= 100) }' || fail "mIoU $miou is not a percentage"
grep -q "mIoU $(printf '%.2f' "$miou")%" "$T/out" || fail "the printed mIoU is not the reported one ($miou)"
ok "a segmentation model evaluates on a segmentation dataset: mIoU, Dice, pixel accuracy in its report"

succeeds "$EVAL" "$T/seg.h5" "$T/sc.h5" --latency 3 --report "$T/seglat.json" -q
stdout_has "latency through libevrt to the mask"
grep -q '"latency_ms":' "$T/seglat.json" || fail "the segmentation report lacks its latency"
ok "--latency times a segmentation model through libevrt, to its mask"

fails_with 1 "$EVAL" "$T/seg.h5" "$T/d.h5"
stderr_has "a segmentation model needs a segmentation dataset"
fails_with 1 "$EVAL" "$T/m.h5" "$T/sc.h5"
stderr_has "a classification model needs a classification dataset"
fails_with 1 "$EVAL" "$T/seg.h5" "$T/sc.h5" --save-logits "$T/seg-l.h5" --augment "$EVIT_SRC/configs/fmnist/student-consistent.json"
stderr_has "random erasing, which a segmentation model's views do not take"
[ ! -e "$T/seg-l.h5" ] || fail "a refused evaluation wrote its logits"
ok "a model and a dataset of different tasks, or a segmentation model's views with random erasing, fail in one line"

echo "cli_eval: all checks passed"
