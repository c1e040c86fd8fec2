#!/bin/sh
# pipeline.sh: the main job on Fashion-MNIST (Debian's dataset-fashion-mnist),
# every output under one run folder.
#
#   scripts/pipeline.sh [--task class|seg] [--profile quick|full] [--out DIR] [--threads N] [--teacher FILE]
#                       [--seed N] [--control]
#
# --task seg runs the segmentation chain instead (scripts/pipeline-seg.sh,
# docs/SEGMENT.md): Fashion-MNIST scenes, a seg-fm-tiny teacher on the
# masks, a seg-fm-mini student distilled pixel-wise from its logits, then
# prune, fine-tune, INT8, export and the device file's mIoU and latency;
# out defaults to run/fmnist-seg-PROFILE (-sSEED with --seed).  --seed N
# (segmentation only) trains the teacher, the student and the fine-tune
# with seed N instead of their recipes' (the scenes stay the same), for
# runs over several seeds.  --control (always in the full profile) also
# trains the student on the masks alone, without the teacher
# (seg-student-masks.json), the control of the distillation.  The quick
# profile takes about fifteen minutes on 2 cores.
#
# --teacher FILE takes a trained fm-small checkpoint as the teacher instead
# of training one (the full profile's: pretrained/fm-small-teacher-full.h5);
# its report is then evit-eval's on the test split.
# Stages: import both splits, train the teacher (fm-small, labels), save its
# logits over the training set, distil the student (fm-tiny), prune it
# (mild), fine-tune the pruned model from the teacher's logits, quantize to
# INT8, export the flat file the device maps, measure its accuracy and
# latency through the runtime; then merge tokens (the least uniform r for
# 30 % fewer MFLOPs), fine-tune with merging, quantize and export that too;
# and compare every stage's report (table and chart).  Configuration comes from configs/fmnist/.  The quick profile takes
# about ten minutes on 2 cores; full gives the headline numbers
# (docs/RESULTS.md).  A stage whose outputs are newer than its
# inputs is skipped; a failing stage stops the chain with its message.
set -eu
common_opts="profile out threads"
teacher=""
task=class
seed=""
control=""
. "$(dirname "$0")/lib.sh"
while [ $# -gt 0 ]; do
    if common_opt "$@"; then shift "$nshift"; continue; fi
    case "$1" in
    --teacher) [ $# -ge 2 ] || usage_fail "--teacher needs a value"; teacher=$2; shift 2 ;;
    --task) [ $# -ge 2 ] || usage_fail "--task needs a value"; task=$2; shift 2 ;;
    --seed) [ $# -ge 2 ] || usage_fail "--seed needs a value"; seed=$2; shift 2 ;;
    --control) control=1; shift ;;
    *) usage_fail "unknown argument $1 (see --help)" ;;
    esac
done
case "$seed" in *[!0-9]*) usage_fail "--seed takes a whole number" ;; esac
case "$task" in
class) [ -z "$seed$control" ] || usage_fail "--seed and --control go with --task seg" ;;
seg)
    [ -z "$teacher" ] || usage_fail "--teacher takes a classification teacher; --task seg trains its own"
    out=${out:-$top/run/fmnist-seg-$profile${seed:+-s$seed}}
    ;;
*) usage_fail "--task is class or seg" ;;
esac
profile_args
[ -z "$teacher" ] || need "--teacher: a trained fm-small checkpoint" "$teacher"
fm=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
mkdir -p "$out"
if [ "$task" = seg ]; then
    . "$top/scripts/pipeline-seg.sh"
    exit 0
fi

stage "import Fashion-MNIST"
if fresh "$out/train.h5" "$fm/train-images-idx3-ubyte.gz"; then echo "up to date" >&2; else
    "$bin/evit-data" import --idx "$fm/train-images-idx3-ubyte.gz" "$fm/train-labels-idx1-ubyte.gz" \
        --names fashion-mnist -o "$out/train.h5"
fi
if fresh "$out/test.h5" "$fm/t10k-images-idx3-ubyte.gz"; then echo "up to date" >&2; else
    "$bin/evit-data" import --idx "$fm/t10k-images-idx3-ubyte.gz" "$fm/t10k-labels-idx1-ubyte.gz" \
        --names fashion-mnist -o "$out/test.h5"
fi

cfg=$top/configs/fmnist
# shellcheck disable=SC2086
if [ -n "$teacher" ]; then
    stage "teacher: $teacher (given)"
    if fresh "$out/teacher.report.json" "$teacher" "$out/test.h5"; then echo "up to date" >&2; else
        cp "$teacher" "$out/teacher.h5.tmp"
        mv "$out/teacher.h5.tmp" "$out/teacher.h5"
        "$bin/evit-eval" "$out/teacher.h5" "$out/test.h5" --stage teacher --report "$out/teacher.report.json" \
            --latency 200 $threads
    fi
else
    stage "teacher: fm-small on labels ($profile profile)"
    if fresh "$out/teacher.report.json" "$out/train.h5" "$out/test.h5" "$cfg/teacher.json"; then echo "up to date" >&2; else
        "$bin/evit-distill" "$cfg/teacher.json" $prof --data "$out/train.h5" --val "$out/test.h5" \
            -o "$out/teacher.h5" --report "$out/teacher.report.json" --stage teacher --resume --latency 200 $threads
    fi
fi

stage "teacher logits over the training set"
if fresh "$out/teacher.logits.h5" "$out/teacher.h5"; then echo "up to date" >&2; else
    "$bin/evit-eval" "$out/teacher.h5" "$out/train.h5" --save-logits "$out/teacher.logits.h5" \
        --report "$out/teacher.train.report.json" $threads
fi

stage "student: fm-tiny distilled from the teacher's logits"
if fresh "$out/student.report.json" "$out/teacher.logits.h5" "$out/test.h5" "$cfg/student.json"; then echo "up to date" >&2; else
    "$bin/evit-distill" "$cfg/student.json" $prof --data "$out/train.h5" --teacher "$out/teacher.logits.h5" \
        --val "$out/test.h5" -o "$out/student.h5" --report "$out/student.report.json" --resume --latency 200 $threads
fi

student_chain accuracy
"$bin/evit-run" "$out/student.q8.evit" --bench --runs 200

# Token Merging (docs/MERGE.md): the fine-tuned student with the least
# uniform r that takes 30 % of its MFLOPs away, fine-tuned again with
# merging, then the same INT8 and export as the device file above
stage "merge tokens: the fine-tuned student, the least r for 30% fewer MFLOPs"
if fresh "$out/merged.report.json" "$out/finetuned.h5"; then echo "up to date" >&2; else
    mf=$(report_num "$out/finetuned.report.json" mflops)
    [ -n "$mf" ] || { echo "error: $out/finetuned.report.json: no mflops" >&2; exit 1; }
    "$bin/evit-merge" "$out/finetuned.h5" --target-mflops "$(scaled "$mf" 0.7)" \
        --val "$out/test.h5" -o "$out/merged.h5" --report "$out/merged.report.json" --latency 200 $threads
fi

stage "fine-tune the merged student with merging, from the teacher's logits"
if fresh "$out/merged-ft.report.json" "$out/merged.h5" "$cfg/finetune.json"; then echo "up to date" >&2; else
    "$bin/evit-distill" "$cfg/finetune.json" $prof --init "$out/merged.h5" --data "$out/train.h5" \
        --teacher "$out/teacher.logits.h5" --val "$out/test.h5" -o "$out/merged-ft.h5" \
        --report "$out/merged-ft.report.json" --stage merge-finetune --resume --latency 200 $threads
fi

stage "quantize and export the merged student"
if fresh "$out/merged-export.report.json" "$out/merged-ft.h5" "$cfg/quantize.json"; then echo "up to date" >&2; else
    "$bin/evit-quantize" "$cfg/quantize.json" "$out/merged-ft.h5" --calib "$out/train.h5" --val "$out/test.h5" \
        -o "$out/merged.q8.h5" --report "$out/merged-quantized.report.json" --latency 200 $threads
    "$bin/evit-export" "$out/merged.q8.h5" -o "$out/merged.q8.evit" --quantize-config "$cfg/quantize.json"
    "$bin/evit-eval" "$out/merged.q8.evit" "$out/test.h5" --latency 500 --stage merge-export \
        --parent "$out/merged-quantized.report.json" --report "$out/merged-export.report.json" -q
fi
"$bin/evit-run" "$out/merged.q8.evit" --bench --runs 200

stage "compare the stages"
"$bin/evit-report" compare "$out/teacher.report.json" "$out/student.report.json" "$out/pruned.report.json" \
    "$out/finetuned.report.json" "$out/quantized.report.json" "$out/export.report.json" \
    "$out/merged.report.json" "$out/merged-ft.report.json" "$out/merged-quantized.report.json" \
    "$out/merged-export.report.json" --png "$out/compare.png"
echo "chart: $out/compare.png" >&2

printf '\npipeline (%s) done: outputs in %s\n' "$profile" "$out" >&2
