#!/bin/sh
# iterative_prune.sh: prune a little, fine-tune, repeat (docs/PRUNE.md).
#
#   scripts/iterative_prune.sh [--rounds N] [--config PRUNE.json] [--recipe RECIPE.json]
#                              [--steps N] [--run DIR] [--out DIR] [--threads N]
#
# Round r prunes the model of round r-1 (round 1: RUN/student.h5) with CONFIG
# (default configs/fmnist/prune-mild.json: a quarter of what is left each
# round), then fine-tunes it by distillation from RUN/teacher.logits.h5 with
# evit-distill RECIPE --init (default configs/fmnist/student.json, its epochs,
# or --steps N).  RUN holds train.h5, test.h5, student.h5, teacher.logits.h5
# (scripts/pipeline.sh writes them; default run/fmnist-quick).  Outputs go to
# OUT (default RUN/iterative): roundR.pruned.h5 and roundR.h5 with reports.
# A step whose output is newer than its inputs is skipped.
set -eu
common_opts="out threads"
. "$(dirname "$0")/lib.sh"
rounds=2
config=$top/configs/fmnist/prune-mild.json
recipe=$top/configs/fmnist/student.json
run=$top/run/fmnist-quick
steps=""
while [ $# -gt 0 ]; do
    if common_opt "$@"; then shift "$nshift"; continue; fi
    case "$1" in
        --rounds | --config | --recipe | --steps | --run) [ $# -ge 2 ] || usage_fail "$1 needs a value" ;;
        *) usage_fail "unknown argument $1 (see --help)" ;;
    esac
    case "$1" in
        --rounds) rounds=$2 ;;
        --config) config=$2 ;;
        --recipe) recipe=$2 ;;
        --steps) steps="--steps $2" ;;
        --run) run=$2 ;;
    esac
    shift 2
done
case "$rounds" in ''|*[!0-9]*|0) usage_fail "--rounds wants a positive count" ;; esac
out=${out:-$run/iterative}
need "run scripts/pipeline.sh first" "$run/student.h5" "$run/train.h5" "$run/test.h5" "$run/teacher.logits.h5" \
    "$config" "$recipe"
mkdir -p "$out"

model=$run/student.h5
r=1
while [ "$r" -le "$rounds" ]; do
    pruned=$out/round$r.pruned.h5
    tuned=$out/round$r.h5
    stage "round $r: prune $model with $(basename "$config")"
    if fresh "$out/round$r.pruned.report.json" "$model" "$config"; then echo "up to date" >&2; else
        # shellcheck disable=SC2086
        "$bin/evit-prune" "$config" "$model" -o "$pruned" --report "$out/round$r.pruned.report.json" \
            --data "$run/train.h5" --val "$run/test.h5" $threads
    fi
    stage "round $r: fine-tune by distillation from the teacher's logits"
    if fresh "$out/round$r.report.json" "$pruned" "$recipe"; then echo "up to date" >&2; else
        # shellcheck disable=SC2086
        "$bin/evit-distill" "$recipe" --init "$pruned" --teacher "$run/teacher.logits.h5" \
            --data "$run/train.h5" --val "$run/test.h5" -o "$tuned" --report "$out/round$r.report.json" \
            $steps $threads
    fi
    model=$tuned
    r=$((r + 1))
done

printf '\n%-8s %10s %8s %14s %16s\n' round params MFLOPs "top-1 pruned" "top-1 fine-tuned"
r=1
while [ "$r" -le "$rounds" ]; do
    p=$out/round$r.pruned.report.json
    printf '%-8s %10s %8.2f %13.2f%% %15.2f%%\n' "$r" "$(report_num "$p" params)" "$(report_num "$p" mflops)" \
        "$(report_num "$p" top1)" "$(report_num "$out/round$r.report.json" top1)"
    r=$((r + 1))
done
printf '\niterative pruning done: outputs in %s\n' "$out" >&2
