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
common_opts="profile out threads"
. "$(dirname "$0")/lib.sh"
only_common_opts "$@"
profile_args
cfg=$top/configs/fmnist
need "run scripts/pipeline.sh --profile $profile first" "$out/train.h5" "$out/test.h5" "$out/teacher.h5" \
    "$out/teacher.logits.h5" "$out/teacher.report.json"

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

top1() { report_num "$1" top1; }
printf '\n%-22s %8s\n' model top-1
printf '%-22s %7.2f%%\n' "teacher (fm-small)" "$(top1 "$out/teacher.report.json")"
for kind in soft hard labels; do
    printf '%-22s %7.2f%%\n' "student, $kind" "$(top1 "$out/study-$kind.report.json")"
done
