#!/bin/sh
# kd_study.sh: consistent distillation against plain soft distillation,
# several seeds each (issue 16).  In a run folder that holds the
# pipeline's teacher, its logits and the datasets (scripts/pipeline.sh
# --profile P first), it
#   1. saves the teacher's top-10 logits of E augmented views per image
#      (evit-eval --augment RECIPE, E the recipe's epochs in the profile;
#      RECIPE is --recipe, by default configs/fmnist/student-consistent.json),
#   2. trains an fm-tiny student per seed with configs/fmnist/student.json
#      (soft, plain logits: the pipeline's student) and one with RECIPE
#      (the views), each job on one thread, --jobs of them at a time,
#   3. quantizes every student to INT8 (configs/fmnist/quantize.json) and
#      with INT8 attention (quantize-attention.json), and takes every
#      consistent student through the pipeline's device chain (mild prune,
#      5-epoch fine-tune, INT8, export, evaluated through libevrt), then
#      merges the fine-tuned model's tokens (the least uniform r for 30 %
#      fewer MFLOPs, evit-merge) and makes a device file of it off the
#      shelf and after the same fine-tune with merging,
#   4. prints top-1 per seed with mean, standard deviation and range, and
#      writes the table to DIR/kd/summary-NAME.md.
# Every step is skipped when its report is newer than its inputs, and
# training resumes from its state: an interrupted study continues where
# it stopped.
#
#   scripts/kd_study.sh [--profile quick|full] [--out DIR] [--seeds "0 1 2"] [--jobs N]
#                       [--recipe RECIPE]
# Files land in DIR/kd/, the consistent ones named after RECIPE (views-NAME.h5,
# NAME-sSEED.*), so several recipes can be compared in one folder.
set -eu
seeds="0 1 2"
jobs=2
recipe=""
common_opts="profile out"
. "$(dirname "$0")/lib.sh"

# one job: KIND SEED (run by xargs, below)
if [ "${1:-}" = --job ]; then
    kind=$2 seed=$3
    cfg=$top/configs/fmnist
    k=$KD_OUT/kd
    name=$kind-s$seed
    case $kind in
    soft) recipe=$cfg/student.json logits=$KD_OUT/teacher.logits.h5 ;;
    consistent) recipe=$KD_RECIPE logits=$k/views-$KD_NAME.h5 name=$KD_NAME-s$seed ;;
    *) usage_fail "unknown job kind $kind" ;;
    esac
    log=$k/$name.log
    {
        # shellcheck disable=SC2086
        fresh "$k/$name.report.json" "$recipe" "$logits" ||
            "$bin/evit-distill" "$recipe" $KD_PROF --seed "$seed" --data "$KD_OUT/train.h5" --teacher "$logits" \
                --val "$KD_OUT/test.h5" -o "$k/$name.h5" --report "$k/$name.report.json" --stage "$name" \
                --resume --threads 1 -q
        for q in quantize quantize-attention; do
            fresh "$k/$name.$q.report.json" "$k/$name.report.json" "$cfg/$q.json" ||
                "$bin/evit-quantize" "$cfg/$q.json" "$k/$name.h5" --calib "$KD_OUT/train.h5" --val "$KD_OUT/test.h5" \
                    -o "$k/$name.$q.h5" --report "$k/$name.$q.report.json" --threads 1 -q
        done
        if [ "$kind" = consistent ]; then
            fresh "$k/$name.pruned.report.json" "$k/$name.report.json" "$cfg/prune-mild.json" ||
                "$bin/evit-prune" "$cfg/prune-mild.json" "$k/$name.h5" --data "$KD_OUT/train.h5" --val "$KD_OUT/test.h5" \
                    -o "$k/$name.pruned.h5" --report "$k/$name.pruned.report.json" --threads 1 -q
            # shellcheck disable=SC2086
            fresh "$k/$name.finetuned.report.json" "$k/$name.pruned.report.json" "$cfg/finetune.json" ||
                "$bin/evit-distill" "$cfg/finetune.json" $KD_PROF --init "$k/$name.pruned.h5" --data "$KD_OUT/train.h5" \
                    --teacher "$KD_OUT/teacher.logits.h5" --val "$KD_OUT/test.h5" -o "$k/$name.finetuned.h5" \
                    --report "$k/$name.finetuned.report.json" --stage finetune --resume --threads 1 -q
            fresh "$k/$name.device.report.json" "$k/$name.finetuned.report.json" "$cfg/quantize.json" || {
                "$bin/evit-quantize" "$cfg/quantize.json" "$k/$name.finetuned.h5" --calib "$KD_OUT/train.h5" \
                    --val "$KD_OUT/test.h5" -o "$k/$name.device.h5" --report "$k/$name.device.q8.report.json" \
                    --threads 1 -q
                "$bin/evit-export" "$k/$name.device.h5" -o "$k/$name.device.evit" -q
                "$bin/evit-eval" "$k/$name.device.evit" "$KD_OUT/test.h5" --stage export \
                    --parent "$k/$name.device.q8.report.json" --report "$k/$name.device.report.json" -q
            }
            # Token Merging: the least uniform r for 30 % fewer MFLOPs than
            # the fine-tuned model, off the shelf and fine-tuned with
            # merging (the same 5 epochs), each to an INT8 device file
            fresh "$k/$name.merged.report.json" "$k/$name.finetuned.report.json" || {
                mf=$(sed -n 's/.*"mflops":[[:space:]]*\([0-9.]*\).*/\1/p' "$k/$name.finetuned.report.json" | head -n 1)
                "$bin/evit-merge" "$k/$name.finetuned.h5" --target-mflops "$(awk -v m="$mf" 'BEGIN { printf "%.4f", 0.7 * m }')" \
                    --val "$KD_OUT/test.h5" -o "$k/$name.merged.h5" --report "$k/$name.merged.report.json" --threads 1 -q
            }
            # shellcheck disable=SC2086
            fresh "$k/$name.merged-ft.report.json" "$k/$name.merged.report.json" "$cfg/finetune.json" ||
                "$bin/evit-distill" "$cfg/finetune.json" $KD_PROF --init "$k/$name.merged.h5" --data "$KD_OUT/train.h5" \
                    --teacher "$KD_OUT/teacher.logits.h5" --val "$KD_OUT/test.h5" -o "$k/$name.merged-ft.h5" \
                    --report "$k/$name.merged-ft.report.json" --stage merge-finetune --resume --threads 1 -q
            for m in merged merged-ft; do
                fresh "$k/$name.$m.device.report.json" "$k/$name.$m.report.json" "$cfg/quantize.json" || {
                    "$bin/evit-quantize" "$cfg/quantize.json" "$k/$name.$m.h5" --calib "$KD_OUT/train.h5" \
                        --val "$KD_OUT/test.h5" -o "$k/$name.$m.device.h5" --report "$k/$name.$m.device.q8.report.json" \
                        --threads 1 -q
                    "$bin/evit-export" "$k/$name.$m.device.h5" -o "$k/$name.$m.device.evit" -q
                    "$bin/evit-eval" "$k/$name.$m.device.evit" "$KD_OUT/test.h5" --stage export \
                        --parent "$k/$name.$m.device.q8.report.json" --report "$k/$name.$m.device.report.json" -q
                }
            done
        fi
    } >"$log" 2>&1 || { echo "error: $name failed, see $log" >&2; exit 1; }
    echo "$name done" >&2
    exit 0
fi

while [ $# -gt 0 ]; do
    if common_opt "$@"; then shift "$nshift"; continue; fi
    case "$1" in
    --seeds) [ $# -ge 2 ] || usage_fail "--seeds needs a value"; seeds=$2; shift 2 ;;
    --jobs) [ $# -ge 2 ] || usage_fail "--jobs needs a value"; jobs=$2; shift 2 ;;
    --recipe) [ $# -ge 2 ] || usage_fail "--recipe needs a value"; recipe=$2; shift 2 ;;
    *) usage_fail "unknown argument $1 (see --help)" ;;
    esac
done
profile_args
case "$jobs" in '' | *[!0-9]* | 0) usage_fail "--jobs takes a positive count" ;; esac
for s in $seeds; do case "$s" in *[!0-9]*) usage_fail "--seeds takes whole numbers" ;; esac; done
cfg=$top/configs/fmnist
recipe=${recipe:-$cfg/student-consistent.json}
need "run scripts/pipeline.sh --profile $profile first" "$out/train.h5" "$out/test.h5" "$out/teacher.h5" \
    "$out/teacher.logits.h5" "$out/teacher.report.json"
need "the consistent recipe" "$recipe"
name=$(basename "$recipe" .json)
mkdir -p "$out/kd"

# the views: one per epoch of the consistent recipe in this profile
epochs=$(/usr/bin/python3 -c 'import json, sys
r = json.load(open(sys.argv[1])); p = r.get("profiles", {}).get(sys.argv[2], {})
print(p.get("epochs", r["epochs"]))' "$recipe" "$profile")
stage "teacher logits of $epochs augmented views per image (top-10)"
if fresh "$out/kd/views-$name.h5" "$out/teacher.h5" "$recipe"; then echo "up to date" >&2; else
    "$bin/evit-eval" "$out/teacher.h5" "$out/train.h5" --save-logits "$out/kd/views-$name.h5" \
        --augment "$recipe" --epochs "$epochs" --topk 10 --threads "$jobs" \
        --report "$out/kd/views-$name.report.json"
fi

stage "students: soft and $name, seeds $seeds, $jobs at a time (logs in $out/kd/*.log)"
export KD_OUT="$out" KD_PROF="$prof" KD_RECIPE="$recipe" KD_NAME="$name"
for s in $seeds; do printf 'consistent %s\n' "$s"; done >"$out/kd/jobs"
for s in $seeds; do printf 'soft %s\n' "$s"; done >>"$out/kd/jobs"
xargs -P "$jobs" -L 1 "$0" --job <"$out/kd/jobs"

# the table
top1() { sed -n 's/^[[:space:]]*"top1":[[:space:]]*\([0-9.]*\).*/\1/p' "$1" 2>/dev/null | head -n 1; }
row() { # LABEL FILE-PATTERN (with SEED in place of the seed)
    vals=""
    for s in $seeds; do
        f=$(echo "$2" | sed "s/SEED/$s/")
        v=$(top1 "$out/kd/$f")
        vals="$vals ${v:--}"
    done
    echo "$vals" | awk -v label="$1" '{
        n = 0; s = 0; lo = 1e9; hi = -1e9; cells = "";
        for (i = 1; i <= NF; i++) { cells = cells ($i == "-" ? " - |" : sprintf(" %.2f |", $i)); if ($i == "-") continue;
            a[++n] = $i; s += $i; if ($i < lo) lo = $i; if ($i > hi) hi = $i }
        if (n == 0) { printf "| %s |%s - | - | - |\n", label, cells; next }
        # two passes: sum(x^2) - n m^2 can round below zero for equal values
        m = s / n; ss = 0; for (i = 1; i <= n; i++) ss += (a[i] - m) * (a[i] - m);
        sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
        printf "| %s |%s %.2f | %.2f | %.2f |\n", label, cells, m, sd, hi - lo }'
}
{
    printf '| model | %s | mean | sd | range |\n' "$(echo $seeds | sed 's/ / | /g; s/[0-9][0-9]*/seed &/g')"
    printf '|---|%s---:|---:|---:|\n' "$(for s in $seeds; do printf -- '---:|'; done)"
    row "teacher" "../teacher.report.json"
    row "soft (student.json)" "soft-sSEED.report.json"
    row "soft, INT8" "soft-sSEED.quantize.report.json"
    row "soft, INT8 + INT8 attention" "soft-sSEED.quantize-attention.report.json"
    row "consistent ($name)" "$name-sSEED.report.json"
    row "consistent, INT8" "$name-sSEED.quantize.report.json"
    row "consistent, INT8 + INT8 attention" "$name-sSEED.quantize-attention.report.json"
    row "consistent, pruned + fine-tuned" "$name-sSEED.finetuned.report.json"
    row "consistent, device file (.evit)" "$name-sSEED.device.report.json"
    row "consistent, fine-tuned, merged for 30 % fewer MFLOPs" "$name-sSEED.merged.report.json"
    row "consistent, merged, device file (off the shelf)" "$name-sSEED.merged.device.report.json"
    row "consistent, merged + fine-tuned with merging" "$name-sSEED.merged-ft.report.json"
    row "consistent, merged + fine-tuned, device file" "$name-sSEED.merged-ft.device.report.json"
} >"$out/kd/summary-$name.md"
echo >&2
cat "$out/kd/summary-$name.md"
echo "($out/kd/summary-$name.md; views: $(sed -n 's/.*"bytes_per_image_per_epoch":[[:space:]]*\([0-9.]*\).*/\1/p' "$out/kd/views-$name.report.json" | head -n 1) bytes per image per epoch)" >&2
