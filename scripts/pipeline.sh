#!/bin/sh
# pipeline.sh: the main job on Fashion-MNIST (Debian's dataset-fashion-mnist),
# every output under one run folder.
#
#   scripts/pipeline.sh [--profile quick|full] [--out DIR] [--threads N]
#
# Stages so far: import both splits, initialise fm-tiny, evaluate it.  Later
# stages (teacher training, distillation, pruning, quantization, export) are
# appended here as they land.  A stage whose outputs are newer than its
# inputs is skipped; a failing stage stops the chain with its message.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${EVIT_BIN:-$top/build}
profile=quick
out=""
threads=""
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --threads) threads="--threads $2"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "pipeline.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$profile" in quick|full) ;; *) echo "pipeline.sh: --profile is quick or full" >&2; exit 2 ;; esac
out=${out:-$top/run/fmnist-$profile}
fm=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
mkdir -p "$out"

# fresh OUT IN...: true when OUT exists and is newer than every IN
fresh() {
    o=$1; shift
    [ -e "$o" ] || return 1
    for i in "$@"; do [ "$o" -nt "$i" ] || return 1; done
    return 0
}
stage() { printf '\n== %s\n' "$*" >&2; }

stage "import Fashion-MNIST"
if fresh "$out/train.h5" "$fm/train-images-idx3-ubyte.gz"; then echo "up to date" >&2; else
    "$bin/evit-data" import --idx "$fm/train-images-idx3-ubyte.gz" "$fm/train-labels-idx1-ubyte.gz" \
        --names fashion-mnist -o "$out/train.h5"
fi
if fresh "$out/test.h5" "$fm/t10k-images-idx3-ubyte.gz"; then echo "up to date" >&2; else
    "$bin/evit-data" import --idx "$fm/t10k-images-idx3-ubyte.gz" "$fm/t10k-labels-idx1-ubyte.gz" \
        --names fashion-mnist -o "$out/test.h5"
fi

stage "initialise fm-tiny"
if fresh "$out/init.h5" "$out/train.h5" "$top/configs/models/fm-tiny.json"; then echo "up to date" >&2; else
    "$bin/evit-init" "$top/configs/models/fm-tiny.json" --data "$out/train.h5" --seed 0 -o "$out/init.h5"
fi

stage "evaluate the initialised model"
# shellcheck disable=SC2086
"$bin/evit-eval" "$out/init.h5" "$out/test.h5" --report "$out/init.report.json" $threads

printf '\npipeline (%s) done: outputs in %s\n' "$profile" "$out" >&2
