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
#                       [--recipe RECIPE] [--merge-r "0 4 8 12"] [--kinds "consistent soft"]
# --kinds: which students to train (default both); "consistent" alone skips
# the soft ones (their rows then read -), for the Token Merging curve.
# --merge-r: the uniform r of each Token Merging point (every block but the
# last; evit-merge --r), each a device file off the shelf and one after a
# 5-epoch fine-tune with merging; r 0 is the control, the same extra
# fine-tune without merging; "" skips merging.
# Files land in DIR/kd/, the consistent ones named after RECIPE (views-NAME.h5,
# NAME-sSEED.*), so several recipes can be compared in one folder.
set -eu
seeds="0 1 2"
jobs=2
recipe=""
merge_r="0 4 8 12"
kinds="consistent soft"
common_opts="profile out"
. "$(dirname "$0")/lib.sh"

# device SRC OUT: the device chain's last steps: SRC.h5 to INT8
# (quantize.json; OUT.h5, OUT.q8.report.json), exported (OUT.evit) and
# evaluated through libevrt (OUT.report.json); skipped when that report is
# newer than SRC's
device() {
    fresh "$2.report.json" "$1.report.json" "$cfg/quantize.json" && return 0
    "$bin/evit-quantize" "$cfg/quantize.json" "$1.h5" --calib "$KD_OUT/train.h5" --val "$KD_OUT/test.h5" \
        -o "$2.h5" --report "$2.q8.report.json" --threads 1 -q
    "$bin/evit-export" "$2.h5" -o "$2.evit" -q
    "$bin/evit-eval" "$2.evit" "$KD_OUT/test.h5" --stage export --parent "$2.q8.report.json" \
        --report "$2.report.json" -q
}

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
    # the job's output goes to its log; set -e stays in force (a brace
    # group left of || would switch it off), and the EXIT trap names the
    # log when a step fails
    exec 3>&2 >"$log" 2>&1
    trap '[ $? -eq 0 ] || echo "error: $name failed, see $log" >&3' EXIT
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
        device "$k/$name.finetuned" "$k/$name.device"
        # Token Merging, a uniform r per value of --merge-r (every block
        # but the last), off the shelf and fine-tuned with merging (the
        # same 5 epochs), each to an INT8 device file
        for r in ${KD_MERGE_R:-}; do
            m=$k/$name.r$r
            fresh "$m.report.json" "$k/$name.finetuned.report.json" ||
                "$bin/evit-merge" "$k/$name.finetuned.h5" --r "$r" --val "$KD_OUT/test.h5" -o "$m.h5" \
                    --report "$m.report.json" --threads 1 -q
            device "$m" "$m.device"
            # shellcheck disable=SC2086
            fresh "$m-ft.report.json" "$m.report.json" "$cfg/finetune.json" ||
                "$bin/evit-distill" "$cfg/finetune.json" $KD_PROF --init "$m.h5" --data "$KD_OUT/train.h5" \
                    --teacher "$KD_OUT/teacher.logits.h5" --val "$KD_OUT/test.h5" -o "$m-ft.h5" \
                    --report "$m-ft.report.json" --stage merge-finetune --resume --threads 1 -q
            device "$m-ft" "$m-ft.device"
        done
    fi
    echo "$name done" >&3
    exit 0
fi

while [ $# -gt 0 ]; do
    if common_opt "$@"; then shift "$nshift"; continue; fi
    case "$1" in
    --seeds) [ $# -ge 2 ] || usage_fail "--seeds needs a value"; seeds=$2; shift 2 ;;
    --jobs) [ $# -ge 2 ] || usage_fail "--jobs needs a value"; jobs=$2; shift 2 ;;
    --recipe) [ $# -ge 2 ] || usage_fail "--recipe needs a value"; recipe=$2; shift 2 ;;
    --merge-r) [ $# -ge 2 ] || usage_fail "--merge-r needs a value"; merge_r=$2; shift 2 ;;
    --kinds) [ $# -ge 2 ] || usage_fail "--kinds needs a value"; kinds=$2; shift 2 ;;
    *) usage_fail "unknown argument $1 (see --help)" ;;
    esac
done
profile_args
case "$jobs" in '' | *[!0-9]* | 0) usage_fail "--jobs takes a positive count" ;; esac
for s in $seeds; do case "$s" in *[!0-9]*) usage_fail "--seeds takes whole numbers" ;; esac; done
for r in $merge_r; do case "$r" in *[!0-9]*) usage_fail "--merge-r takes whole numbers" ;; esac; done
[ -n "$kinds" ] || usage_fail "--kinds needs consistent, soft or both"
for kd in $kinds; do case "$kd" in consistent | soft) ;; *) usage_fail "--kinds takes consistent and soft, not $kd" ;; esac; done
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
export KD_OUT="$out" KD_PROF="$prof" KD_RECIPE="$recipe" KD_NAME="$name" KD_MERGE_R="$merge_r"
: >"$out/kd/jobs"
for kd in $kinds; do
    for s in $seeds; do printf '%s %s\n' "$kd" "$s"; done >>"$out/kd/jobs"
done
xargs -P "$jobs" -L 1 "$0" --job <"$out/kd/jobs"

# the tables
top1() { report_num "$1" top1; }
vals() { # FILE-PATTERN (SEED in place of the seed): top-1 per seed, - when missing
    for s in $seeds; do
        v=$(top1 "$out/kd/$(echo "$1" | sed "s/SEED/$s/")")
        printf ' %s' "${v:--}"
    done
}
row() { echo "| $1 |$(vals "$2" | stats)"; } # LABEL FILE-PATTERN
# mean FILE-PATTERN: the mean top-1 over the seeds present, - when none
mean() { vals "$1" | stats | awk -F'|' '{ v = $(NF - 3); gsub(/ /, "", v); print v }'; }
s0=$(echo $seeds | cut -d' ' -f1)
ft_mf=$(report_num "$out/kd/$name-s$s0.finetuned.report.json" mflops)
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
    for r in $merge_r; do
        row "consistent, merged r $r, device file (off the shelf)" "$name-sSEED.r$r.device.report.json"
        row "consistent, merged r $r + fine-tuned, device file" "$name-sSEED.r$r-ft.device.report.json"
    done
    if [ -n "$merge_r" ]; then
        # the curve: r against MFLOPs and top-1, means over the seeds
        echo
        echo "Token Merging of the fine-tuned student (mean top-1 over seeds $seeds; MFLOPs of seed $s0):"
        echo
        echo '| r | schedule | MFLOPs | change | float | device file | fine-tuned with merging | its device file |'
        echo '|---:|---|---:|---:|---:|---:|---:|---:|'
        printf '| none | | %.2f | | %s | %s | | |\n' "${ft_mf:-0}" "$(mean "$name-sSEED.finetuned.report.json")" \
            "$(mean "$name-sSEED.device.report.json")"
        for r in $merge_r; do
            f=$out/kd/$name-s$s0.r$r.report.json
            mf=$(report_num "$f" mflops)
            printf '| %s | %s | %.2f | %s | %s | %s | %s | %s |\n' "$r" "$(report_list "$f" merge_r)" "${mf:-0}" \
                "$(awk -v a="${mf:-0}" -v b="${ft_mf:-0}" 'BEGIN { if (b > 0) printf "%+.1f %%", 100 * (a - b) / b }')" \
                "$(mean "$name-sSEED.r$r.report.json")" "$(mean "$name-sSEED.r$r.device.report.json")" \
                "$(mean "$name-sSEED.r$r-ft.report.json")" "$(mean "$name-sSEED.r$r-ft.device.report.json")"
        done
    fi
} >"$out/kd/summary-$name.md"
echo >&2
cat "$out/kd/summary-$name.md"
echo "($out/kd/summary-$name.md; views: $(sed -n 's/.*"bytes_per_image_per_epoch":[[:space:]]*\([0-9.]*\).*/\1/p' "$out/kd/views-$name.report.json" | head -n 1) bytes per image per epoch)" >&2
