#!/bin/sh
# cli_distill.sh: evit-distill end to end on a small synthetic dataset:
# training on labels, distilling from saved logits (dense and top-k), fine-
# tuning from --init, resuming a killed run to the same weights, and the
# inputs it must refuse before training starts.
set -eu
. "$EVIT_SRC/tests/lib.sh"

needs_python

succeeds "$D" --help; stdout_has "usage: evit-distill"
fails_with 2 "$D"
fails_with 2 "$D" recipe.json --data x.h5
fails_with 2 "$D" recipe.json -o y.h5 --data x.h5 --steps 0
ok "help exits 0 and usage errors exit 2"

synth_data "$T/all.h5" 1200 28 10
synth_data "$T/val.h5" 300 28 10

# a small model so each epoch takes a fraction of a second
model=$(mini_model 2)
recipe() { # recipe FILE TYPE EPOCHS [EXTRA-JSON]
    printf '{"model":%s,"epochs":%s,"batch_size":64,"seed":3,"optimizer":{"type":"adamw","lr":0.003,"weight_decay":0.05},"schedule":{"warmup_epochs":0.5,"min_lr":0.0001},"label_smoothing":0.1,"augment":{"crop_padding":1,"hflip":false},"distill":{"type":"%s","alpha":0.5,"temperature":2}%s}\n' \
        "$model" "$3" "$2" "${4:-}" >"$1"
}

# --- labels only: the teacher
recipe "$T/teacher.json" none 12
succeeds "$D" "$T/teacher.json" --data "$T/all.h5" --val "$T/val.h5" -o "$T/teacher.h5" --report "$T/teacher.report.json" --threads 2
stdout_has "validation top-1"
top1=$(sed -n 's/.*"top1":[[:space:]]*\([0-9.]*\).*/\1/p' "$T/teacher.report.json" | head -n 1)
awk -v t="$top1" 'BEGIN { exit !(t > 50) }' || fail "teacher top-1 $top1% is not above 50% on an easy task"
[ -f "$T/teacher.best.h5" ] || fail "no best checkpoint"
[ -f "$T/teacher.state.h5" ] || fail "no training state"
for key in '"train":' '"train_s":' '"images_per_s":' '"best_val_top1":' '"final_val_top1":' '"history":' '"recipe":'; do
    grep -qF "$key" "$T/teacher.report.json" || fail "report lacks $key"
done
ok "training on labels learns the task (top-1 $top1%) and writes last, best, state and report"

# --- teacher logits, then a distilled student
succeeds "$EVAL" "$T/teacher.h5" "$T/all.h5" --save-logits "$T/logits.h5" -q
recipe "$T/student.json" soft 3
succeeds "$D" "$T/student.json" --data "$T/all.h5" --teacher "$T/logits.h5" --val "$T/val.h5" -o "$T/student.h5" --report "$T/student.report.json"
grep -qF '"teacher_val_top1":' "$T/student.report.json" || fail "student report lacks the teacher's accuracy"
grep -qF "\"parent\":	\"$T/teacher.report.json\"" "$T/student.report.json" || fail "student report does not name the teacher's report as parent"
recipe "$T/hard.json" hard 1
succeeds "$D" "$T/hard.json" --data "$T/all.h5" --teacher "$T/logits.h5" -o "$T/hard.h5" -q
ok "soft and hard distillation run from saved logits; the report carries the teacher's accuracy and lineage"

# --- top-k logits written by h5py (TinyViT layout)
if "$PY" -c "import h5py, numpy" 2>/dev/null; then
    "$PY" - "$T/logits.h5" "$T/topk.h5" <<'PYEOF'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    z = f["logits"][()]
    attrs = dict(f.attrs)
p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
idx = np.argsort(-p, 1)[:, :3].astype(np.int32)
val = np.take_along_axis(p, idx, 1).astype(np.float32)
with h5py.File(sys.argv[2], "w") as g:
    for k in ("format", "format_version", "count", "num_classes", "label_fingerprint"):
        g.attrs[k] = attrs[k]
    g["topk/indices"] = idx
    g["topk/values"] = val
PYEOF
    succeeds "$D" "$T/student.json" --data "$T/all.h5" --teacher "$T/topk.h5" -o "$T/topk_student.h5" --steps 5 -q
    ok "a top-k teacher file written by h5py is accepted"
fi

# --- refusals before any training
succeeds "$EVAL" "$T/teacher.h5" "$T/val.h5" --save-logits "$T/val_logits.h5" -q
fails_with 1 "$D" "$T/student.json" --data "$T/all.h5" --teacher "$T/val_logits.h5" -o "$T/x.h5"
stderr_has "val_logits.h5: has logits for 300 images but"
[ ! -e "$T/x.h5" ] || fail "an output was written for mismatched logits"
fails_with 1 "$D" "$T/student.json" --data "$T/all.h5" -o "$T/x.h5"
stderr_has "no --teacher"
printf '{"model":"fm-tiny","epochs":1,"learning_rate":0.1}\n' >"$T/bad.json"
fails_with 1 "$D" "$T/bad.json" --data "$T/all.h5" -o "$T/x.h5"
stderr_has "bad.json: learning_rate: unknown key"
fails_with 1 "$D" "$T/teacher.json" --data "$T/all.h5" -o "$T/x.h5" --profile full
stderr_has "has no profile 'full'"
fails_with 1 "$D" "$T/teacher.json" --data "$T/missing.h5" -o "$T/x.h5"
[ ! -e "$T/x.h5" ] || fail "an output was written"
ok "mismatched logits, missing teacher, unknown keys, unknown profiles and missing data are refused"

# --- resume: stopped at an epoch boundary, then resumed, equals uninterrupted
recipe "$T/r.json" none 3
succeeds "$D" "$T/r.json" --data "$T/all.h5" -o "$T/full.h5" -q --threads 2
succeeds "$D" "$T/r.json" --data "$T/all.h5" -o "$T/part.h5" -q --threads 2 --steps 19
succeeds "$D" "$T/r.json" --data "$T/all.h5" -o "$T/part.h5" -q --threads 2 --resume
succeeds "$EVAL" "$T/full.h5" "$T/val.h5" --save-logits "$T/lf.h5" -q
succeeds "$EVAL" "$T/part.h5" "$T/val.h5" --save-logits "$T/lp.h5" -q
h5diff -q "$T/full.h5" "$T/part.h5" /blocks /blocks >/dev/null 2>&1 || fail "resumed weights differ from an uninterrupted run"
ok "a run stopped after an epoch and resumed ends with the same weights"

# --- --seed N is the recipe with "seed": N
succeeds "$D" "$T/r.json" --data "$T/all.h5" -o "$T/s5.h5" -q --threads 2 --steps 3 --seed 5 --report "$T/s5.json"
sed 's/"seed":3/"seed":5/' "$T/r.json" >"$T/r5.json"
succeeds "$D" "$T/r5.json" --data "$T/all.h5" -o "$T/r5.h5" -q --threads 2 --steps 3
h5diff -q "$T/s5.h5" "$T/r5.h5" /blocks /blocks >/dev/null 2>&1 || fail "--seed 5 differs from a recipe with seed 5"
succeeds "$D" "$T/r.json" --data "$T/all.h5" -o "$T/s3.h5" -q --threads 2 --steps 3
h5diff -q "$T/s5.h5" "$T/s3.h5" /blocks /blocks >/dev/null 2>&1 && fail "--seed 5 trained the recipe's seed 3"
grep -q '"seed":[[:space:]]*5' "$T/s5.json" || fail "the report does not record --seed"
fails_with 2 "$D" "$T/r.json" --data "$T/all.h5" -o "$T/x.h5" --seed -1
ok "--seed N trains exactly what the recipe with seed N trains, and the report says so"

# --- SIGKILL in the middle, then --resume
synth_data "$T/big.h5" 6000 28 10
recipe "$T/k.json" none 4
succeeds "$D" "$T/k.json" --data "$T/big.h5" -o "$T/kfull.h5" -q --threads 2
"$D" "$T/k.json" --data "$T/big.h5" -o "$T/kill.h5" -q --threads 2 2>/dev/null &
pid=$!
# wait for the first epoch's state however slow the machine (a sanitizer
# build on a loaded machine takes minutes), as long as the run is alive
i=0
while [ ! -e "$T/kill.state.h5" ] && kill -0 $pid 2>/dev/null && [ $i -lt 12000 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
[ -e "$T/kill.state.h5" ] || fail "no state file appeared before the kill"
ls "$T" | grep -q '\.tmp\.' && echo "# note: a temporary file was left by the killed run (expected, never read)"
succeeds "$D" "$T/k.json" --data "$T/big.h5" -o "$T/kill.h5" -q --threads 2 --resume
h5diff -q "$T/kfull.h5" "$T/kill.h5" /blocks /blocks >/dev/null 2>&1 || fail "weights after kill + resume differ from an uninterrupted run"
ok "a run killed with SIGKILL and resumed ends with the same weights"
# a state file of another run is refused
recipe "$T/other.json" none 5
fails_with 1 "$D" "$T/other.json" --data "$T/big.h5" -o "$T/kill.h5" -q --resume
stderr_has "state of another run"
ok "a state file from another recipe is refused on resume"

# --- fine-tuning from --init keeps the checkpoint's (pruned) shape
cat >"$T/pruned.json" <<'JSON'
{"name":"pruned","img_size":28,"channels":1,"patch":7,"num_classes":10,"embed_dim":32,"depth":2,
 "blocks":[{"num_heads":1,"head_dim":16,"mlp_hidden":24},{"num_heads":2,"head_dim":16,"mlp_hidden":40}]}
JSON
succeeds "$EVIT_BIN/evit-init" "$T/pruned.json" -o "$T/p0.h5" --data "$T/all.h5"
succeeds "$D" "$T/student.json" --data "$T/all.h5" --teacher "$T/logits.h5" --init "$T/p0.h5" -o "$T/p1.h5" --steps 10 -q
succeeds "$DATA" info "$T/p1.h5"
stdout_has "24"
ok "--init fine-tunes a checkpoint of per-block shape"

# --- a diverging run (SGD at lr 10) stops at the first non-finite loss
printf '{"model":%s,"epochs":3,"batch_size":64,"seed":3,"optimizer":{"type":"sgd","lr":10,"momentum":0.9,"weight_decay":0},"schedule":{"warmup_epochs":0,"min_lr":0.0001}}\n' "$model" >"$T/diverge.json"
fails_with 1 "$D" "$T/diverge.json" --data "$T/all.h5" -o "$T/nan.h5" -q --threads 1
stderr_has "loss is NaN at step"
[ ! -e "$T/nan.h5" ] || fail "a checkpoint of a diverged model was written"
ok "a non-finite loss stops training and names the step"

# --- segmentation: a seg_linear model learns from masks (pixel cross-entropy)
succeeds "$DATA" scenes "$T/all.h5" -o "$T/sc-train.h5" --count 96 --size 32 --scale 0.5,1 --seed 1 -q
succeeds "$DATA" scenes "$T/all.h5" -o "$T/sc-val.h5" --count 32 --size 32 --scale 0.5,1 --seed 2 -q
segmodel='{"name":"seg-mini","img_size":32,"channels":1,"patch":8,"num_classes":11,"embed_dim":32,"depth":2,"num_heads":2,"mlp_hidden":64,"head":"seg_linear"}'
printf '{"model":%s,"epochs":3,"batch_size":16,"seed":3,"optimizer":{"type":"adamw","lr":0.003,"weight_decay":0.05},"schedule":{"warmup_epochs":0.5}}\n' \
    "$segmodel" >"$T/seg.json"
succeeds "$D" "$T/seg.json" --data "$T/sc-train.h5" --val "$T/sc-val.h5" -o "$T/seg.h5" --report "$T/seg.report.json" --threads 2
stderr_has "val mIoU"
stdout_has "validation mIoU"
for key in '"miou":' '"dice":' '"pixel_accuracy":' '"per_class_iou":' '"history":' '"best_val_top1":'; do
    grep -q "$key" "$T/seg.report.json" || fail "the segmentation training report lacks $key"
done
# the loss of the last epoch is below the first's
first=$(tr -d ' \t\n' <"$T/seg.report.json" | sed -n 's/.*"history":\[{[^}]*"loss":\([0-9.e+-]*\).*/\1/p')
last=$(num last_loss "$T/seg.report.json")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || fail "the loss did not fall: $first then $last"
succeeds "$EVAL" "$T/seg.h5" "$T/sc-val.h5" -q
[ -e "$T/seg.state.h5" ] || fail "no training state was written"
succeeds "$D" "$T/seg.json" --data "$T/sc-train.h5" -o "$T/seg.h5" --resume -q
ok "a segmentation model trains on masks: mIoU in its report, the loss falls, the run resumes"

sed 's/"seed":3,/"seed":3,"augment":{"crop_padding":4,"hflip":true},/' "$T/seg.json" >"$T/seg-crop.json"
succeeds "$D" "$T/seg-crop.json" --data "$T/sc-train.h5" --val "$T/sc-val.h5" -o "$T/seg-crop.h5" -q --threads 2
stdout_has "validation mIoU"
ok "a segmentation model trains with crops and flips that move its masks"

# pixel-wise distillation: the teacher's per-patch logits (its grid 4x4)
# upsampled to the pixels with the student's (a patch-4 student, grid 8x8)
succeeds "$EVAL" "$T/seg.h5" "$T/sc-train.h5" --save-logits "$T/seg-logits.h5" -q
succeeds "$DATA" info "$T/seg.h5"
succeeds "$PY" -c 'import h5py, sys
f = h5py.File(sys.argv[1], "r")
assert f["logits"].shape == (96, 16, 11), f["logits"].shape
assert int(f.attrs["grid"][0]) == 4 and int(f.attrs["format_version"][0]) == 3' "$T/seg-logits.h5"
kdmodel=$(echo "$segmodel" | sed 's/"patch":8/"patch":4/; s/"embed_dim":32/"embed_dim":16/')
printf '{"model":%s,"epochs":2,"batch_size":16,"seed":4,"optimizer":{"type":"adamw","lr":0.003},"schedule":{"warmup_epochs":0.5},"distill":{"type":"soft","alpha":0.5,"temperature":2}}\n' \
    "$kdmodel" >"$T/seg-kd.json"
succeeds "$D" "$T/seg-kd.json" --data "$T/sc-train.h5" --teacher "$T/seg-logits.h5" --val "$T/sc-val.h5" \
    -o "$T/seg-kd.h5" --report "$T/seg-kd.report.json" --threads 2
stdout_has "validation mIoU"
grep -q "\"teacher_logits\":[[:space:]]*\"$T/seg-logits.h5\"" "$T/seg-kd.report.json" ||
    fail "the distilled student's report does not name its teacher"
grep -q '"teacher_val_miou":' "$T/seg-kd.report.json" || fail "the student's report lacks its teacher's mIoU"
fails_with 1 "$D" "$T/student.json" --data "$T/all.h5" --teacher "$T/seg-logits.h5" -o "$T/x.h5" -q
stderr_has "$T/seg-logits.h5"
sed 's/"soft"/"hard"/' "$T/seg-kd.json" >"$T/seg-hard.json"
fails_with 1 "$D" "$T/seg-hard.json" --data "$T/sc-train.h5" --teacher "$T/seg-logits.h5" -o "$T/x.h5" -q
stderr_has "hard distillation"
sed 's/"seed":4,/"seed":4,"augment":{"hflip":true},/' "$T/seg-kd.json" >"$T/seg-kd-flip.json"
fails_with 1 "$D" "$T/seg-kd-flip.json" --data "$T/sc-train.h5" --teacher "$T/seg-logits.h5" -o "$T/x.h5" -q
stderr_has "crops or flips with a teacher"
[ ! -e "$T/x.h5" ] || fail "a refused run wrote a model"
ok "a segmentation student distils pixel-wise from a teacher's per-patch logits of another grid"

# --- SegFormer's all-MLP decoder (seg_mlp) over blocks 0 and 1, width 24:
# trains on masks (the loss falls), evit-eval scores the checkpoint at the
# report's mIoU, and it distils pixel-wise from the seg_linear teacher's
# logits (--init: the checkpoint's head)
mlpmodel=$(echo "$segmodel" | sed 's/"seg_linear"/"seg_mlp","decoder_dim":24,"decoder_levels":[0,1]/')
printf '{"model":%s,"epochs":2,"batch_size":16,"seed":5,"optimizer":{"type":"adamw","lr":0.003,"weight_decay":0.05},"schedule":{"warmup_epochs":0.5}}\n' \
    "$mlpmodel" >"$T/seg-mlp.json"
succeeds "$D" "$T/seg-mlp.json" --data "$T/sc-train.h5" --val "$T/sc-val.h5" -o "$T/seg-mlp.h5" \
    --report "$T/seg-mlp.report.json" --threads 2
stdout_has "validation mIoU"
grep -q '"decoder_levels":' "$T/seg-mlp.report.json" || fail "the seg_mlp training report lacks its decoder"
first=$(tr -d ' \t\n' <"$T/seg-mlp.report.json" | sed -n 's/.*"history":\[{[^}]*"loss":\([0-9.e+-]*\).*/\1/p')
last=$(num last_loss "$T/seg-mlp.report.json")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || fail "the seg_mlp loss did not fall: $first then $last"
[ -e "$T/seg-mlp.state.h5" ] || fail "no training state was written"
succeeds "$D" "$T/seg-mlp.json" --data "$T/sc-train.h5" -o "$T/seg-mlp.h5" --resume -q
succeeds "$DATA" info "$T/seg-mlp.h5"
stdout_has "head: seg_mlp"
stdout_has "decoder: dim 24, levels 0 1"
succeeds "$EVAL" "$T/seg-mlp.best.h5" "$T/sc-val.h5" --report "$T/seg-mlp.eval.json" -q
trained=$(num miou "$T/seg-mlp.report.json")
scored=$(num miou "$T/seg-mlp.eval.json")
[ -n "$scored" ] && [ "$scored" = "$trained" ] || fail "evit-eval's mIoU $scored of the seg_mlp model is not training's $trained"
printf '{"epochs":1,"batch_size":16,"seed":6,"optimizer":{"type":"adamw","lr":0.003},"distill":{"type":"soft","alpha":0.5,"temperature":2}}\n' \
    >"$T/seg-mlp-kd.json"
succeeds "$D" "$T/seg-mlp-kd.json" --init "$T/seg-mlp.h5" --data "$T/sc-train.h5" --teacher "$T/seg-logits.h5" \
    --val "$T/sc-val.h5" -o "$T/seg-mlp-kd.h5" -q --threads 2
succeeds "$EVAL" "$T/seg-mlp-kd.h5" "$T/sc-val.h5" -q
# timed through libevrt's float32 path, decoder and mask included
succeeds "$EVAL" "$T/seg-mlp.h5" "$T/sc-val.h5" --latency 3 -q
stdout_has "latency through libevrt to the mask"
ok "a seg_mlp model trains on masks and resumes, evit-eval scores it, and it distils pixel-wise from a seg_linear teacher"

fails_with 1 "$D" "$T/seg.json" --data "$T/all.h5" -o "$T/x.h5" -q
stderr_has "is a classification dataset (labels); this needs a segmentation dataset (masks)"
fails_with 1 "$D" "$T/seg.json" --data "$T/sc-train.h5" --teacher "$T/logits.h5" -o "$T/x.h5" -q
stderr_has "$T/logits.h5: has logits for 1200 images"
sed 's/"seed":3,/"seed":3,"augment":{"hflip":true,"erase":{"prob":0.25}},/' "$T/seg.json" >"$T/seg-aug.json"
fails_with 1 "$D" "$T/seg-aug.json" --data "$T/sc-train.h5" -o "$T/x.h5" -q
stderr_has "does not take random erasing (the erased pixels would need a label) yet"
[ ! -e "$T/x.h5" ] || fail "a refused segmentation run wrote a model"
ok "what segmentation training does not do yet is refused in one line"
echo "cli_distill: all checks passed"
