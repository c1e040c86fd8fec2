#!/bin/sh
# distill_study.sh: what distillation buys on Fashion-MNIST.  After the
# pipeline's teacher and its logits exist in the run folder, trains three
# fm-tiny students on the same budget -- soft distillation, hard
# distillation, labels only -- and prints their validation top-1 beside the
# teacher's.  The soft one is the pipeline's own student when that is up to
# date (same recipe).  docs/RESULTS.md records the full profile's table.
#
#   scripts/distill_study.sh [--profile quick|full] [--out DIR] [--threads N]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${EVIT_BIN:-$top/build}
profile=quick
out=""
threads=""
common_opts="profile out threads"
. "$top/scripts/lib.sh"
while [ $# -gt 0 ]; do
    if common_opt "$@"; then shift "$nshift"; continue; fi
    usage_fail "unknown argument $1 (see --help)"
done
case "$profile" in quick|full) ;; *) usage_fail "--profile is quick or full" ;; esac
out=${out:-$top/run/fmnist-$profile}
prof=""
[ "$profile" = quick ] || prof="--profile $profile"
cfg=$top/configs/fmnist
for f in train.h5 test.h5 teacher.h5 teacher.logits.h5 teacher.report.json; do
    [ -e "$out/$f" ] || { echo "error: $out/$f: missing (run scripts/pipeline.sh --profile $profile first)" >&2; exit 1; }
done

for kind in soft hard labels; do
    case $kind in soft) r=student ;; hard) r=student-hard ;; labels) r=student-labels ;; esac
    name=study-$kind
    if [ -e "$out/$name.report.json" ] && [ "$out/$name.report.json" -nt "$cfg/$r.json" ]; then continue; fi
    # the pipeline's student is the soft twin (same recipe, seed and data):
    # reuse it rather than train it again
    if [ $kind = soft ] && [ -e "$out/student.report.json" ] && [ "$out/student.report.json" -nt "$cfg/student.json" ] \
        && [ "$out/student.report.json" -nt "$out/teacher.logits.h5" ]; then
        echo "study-soft: the pipeline's student ($out/student.report.json), same recipe" >&2
        cp "$out/student.report.json" "$out/$name.report.json"
        continue
    fi
    stage "$name"
    # shellcheck disable=SC2086
    "$bin/evit-distill" "$cfg/$r.json" $prof --data "$out/train.h5" --teacher "$out/teacher.logits.h5" \
        --val "$out/test.h5" -o "$out/$name.h5" --report "$out/$name.report.json" --stage "$name" --resume $threads
done

top1() { sed -n 's/^[[:space:]]*"top1":[[:space:]]*\([0-9.]*\).*/\1/p' "$1" | head -n 1; }
printf '\n%-22s %8s\n' model top-1
printf '%-22s %7.2f%%\n' "teacher (fm-small)" "$(top1 "$out/teacher.report.json")"
for kind in soft hard labels; do
    printf '%-22s %7.2f%%\n' "student, $kind" "$(top1 "$out/study-$kind.report.json")"
done
