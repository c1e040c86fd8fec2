#!/bin/sh
# seg_study.sh: the segmentation chain over several seeds (issue 25's
# headline numbers, docs/RESULTS.md).  For each seed it runs
# `scripts/pipeline.sh --task seg --seed SEED --control` into DIR/sSEED,
# each run on one thread, --jobs of them at a time (logs in
# DIR/sSEED.log): the teacher on the masks, the student distilled from
# its per-patch logits, the same student on the masks alone (the
# control), the mild prune, the fine-tune, INT8, the exported file
# through libevrt.  The scenes are the same for every seed; the seed
# changes the initialisation and the order of the batches.  Then it
# prints mIoU and Dice per seed with mean, standard deviation and range,
# and two checks:
#   - distillation: the distilled student against the control, per seed;
#   - INT8: the device file (.evit through libevrt) against its float
#     model (the fine-tuned one), within 1.0 mIoU point in every seed;
# and writes the table to DIR/summary.md.  Every stage is skipped when its
# outputs are newer than its inputs, and training resumes from its state:
# an interrupted study continues where it stopped.
#
#   scripts/seg_study.sh [--profile quick|full] [--out DIR] [--seeds "0 1 2"] [--jobs N]
#
# DIR defaults to run/fmnist-seg-study-PROFILE.  The full profile takes
# about two hours and a half on 2 cores for three seeds (two jobs at a
# time), the quick one about 40 minutes.
set -eu
seeds="0 1 2"
jobs=2
common_opts="profile out"
. "$(dirname "$0")/lib.sh"

# one job: SEED (run by xargs, below)
if [ "${1:-}" = --job ]; then
    s=$2
    "$top/scripts/pipeline.sh" --task seg --profile "$SEG_PROFILE" --seed "$s" --control --threads 1 \
        --out "$SEG_OUT/s$s" >"$SEG_OUT/s$s.log" 2>&1 ||
        { echo "$script: seed $s failed; the end of $SEG_OUT/s$s.log:" >&2; tail -n 3 "$SEG_OUT/s$s.log" >&2; exit 1; }
    echo "$script: seed $s done" >&2
    exit 0
fi

while [ $# -gt 0 ]; do
    if common_opt "$@"; then shift "$nshift"; continue; fi
    case "$1" in
    --seeds) [ $# -ge 2 ] || usage_fail "--seeds needs a value"; seeds=$2; shift 2 ;;
    --jobs) [ $# -ge 2 ] || usage_fail "--jobs needs a value"; jobs=$2; shift 2 ;;
    *) usage_fail "unknown argument $1 (see --help)" ;;
    esac
done
case "$jobs" in '' | *[!0-9]* | 0) usage_fail "--jobs takes a positive whole number" ;; esac
[ -n "$seeds" ] || usage_fail "--seeds needs at least one seed"
for s in $seeds; do case "$s" in *[!0-9]*) usage_fail "--seeds takes whole numbers, not '$s'" ;; esac; done
case "$profile" in quick | full) ;; *) usage_fail "--profile is quick or full" ;; esac
out=${out:-$top/run/fmnist-seg-study-$profile}
mkdir -p "$out"

stage "the segmentation chain, $profile profile, seeds $seeds, $jobs at a time (logs in $out/s*.log)"
export SEG_OUT="$out" SEG_PROFILE="$profile"
for s in $seeds; do echo "$s"; done >"$out/jobs"
xargs -P "$jobs" -L 1 "$0" --job <"$out/jobs"

# vals KEY FILE: KEY of FILE in every seed's folder, - when missing
vals() {
    for s in $seeds; do
        v=$(report_num "$out/s$s/$2" "$1")
        printf ' %s' "${v:--}"
    done
}
# diffs KEY A B: per seed, KEY of report A minus KEY of report B (- when
# either is missing)
diffs() {
    for s in $seeds; do
        a=$(report_num "$out/s$s/$2" "$1")
        b=$(report_num "$out/s$s/$3" "$1")
        if [ -n "$a" ] && [ -n "$b" ]; then awk -v a="$a" -v b="$b" 'BEGIN { printf " %.4f", a - b }'; else printf ' -'; fi
    done
}
stages="teacher:teacher.report.json student:student.report.json control:control.report.json
        pruned:pruned.report.json finetuned:finetuned.report.json int8:quantized.report.json
        device:export.report.json"
label() {
    case "$1" in
    teacher) echo "teacher (seg-fm-tiny, masks)" ;;
    student) echo "student (seg-fm-mini, distilled)" ;;
    control) echo "control (seg-fm-mini, masks alone)" ;;
    pruned) echo "student, pruned (mild)" ;;
    finetuned) echo "student, pruned + fine-tuned" ;;
    int8) echo "student, INT8 (evit-quantize)" ;;
    device) echo "student, device file (.evit, libevrt)" ;;
    esac
}
{
    for key in miou dice; do
        name=$([ "$key" = miou ] && echo "mIoU %" || echo "Dice %")
        printf '| %s | %s | mean | sd | range |\n' "$name" "$(echo $seeds | sed 's/ / | /g; s/[0-9][0-9]*/seed &/g')"
        printf '|---|%s---:|---:|---:|\n' "$(for s in $seeds; do printf -- '---:|'; done)"
        for st in $stages; do echo "| $(label "${st%%:*}") |$(vals "$key" "${st#*:}" | stats)"; done
        echo
    done
    printf '| check (mIoU points) | %s | mean | sd | range |\n' "$(echo $seeds | sed 's/ / | /g; s/[0-9][0-9]*/seed &/g')"
    printf '|---|%s---:|---:|---:|\n' "$(for s in $seeds; do printf -- '---:|'; done)"
    echo "| distilled student - control |$(diffs miou student.report.json control.report.json | stats)"
    echo "| device file - its float model |$(diffs miou export.report.json finetuned.report.json | stats)"
} >"$out/summary.md"
echo >&2
cat "$out/summary.md"
# the checks, in words
gain=$(diffs miou student.report.json control.report.json)
drop=$(diffs miou export.report.json finetuned.report.json)
echo "$gain" | awk '{ n = 0; w = 0; for (i = 1; i <= NF; i++) if ($i != "-") { n++; if ($i > 0) w++ }
    printf "distillation: the distilled student beats the control in %d of %d seeds\n", w, n }'
echo "$drop" | awk '{ n = 0; w = 0; m = 0; for (i = 1; i <= NF; i++) if ($i != "-") { n++; d = $i < 0 ? -$i : $i;
        if (d <= 1.0) w++; if (d > m) m = d }
    printf "INT8: the device file is within 1.0 mIoU point of its float model in %d of %d seeds (largest gap %.2f)\n", w, n, m }'
echo "($out/summary.md)" >&2
