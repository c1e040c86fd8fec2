#!/bin/sh
# run.sh: builds libFuzzer targets, writes their seed corpora and fuzzes
# each for SECONDS (default 60).  Needs clang (apt-get install clang).
#   fuzz/run.sh [SECONDS] [WORKDIR] [TARGET...]      from the source tree's root
# Targets: load (the runtime's model file loader), safetensors (the
# safetensors reader and evit-import's importer); default all.  Crashes
# land in WORKDIR/TARGET/crash-*; corpora grow in WORKDIR/TARGET/corpus.
# The per-input timeout (FUZZ_TIMEOUT, default 300 s) is generous because a
# niced fuzzer on a busy machine can be starved for tens of seconds; every
# input is handled in well under a millisecond.  The targets' own stderr (the
# one-line errors of every refused input) is closed: -close_fd_mask=2.
set -eu
secs=${1:-60}
work=${2:-/tmp/evit-fuzz}
[ $# -ge 2 ] && shift 2 || shift $#
targets=${*:-load safetensors}
src=$(cd "$(dirname "$0")/.." && pwd)
san="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
blas=$(pkg-config --cflags --libs openblas)
rt=$(ls "$src"/runtime/*.c | grep -v run_main.c)

build_load() {
    # shellcheck disable=SC2086
    clang $san -std=c99 -I"$src/runtime" $rt "$src/fuzz/fuzz_load.c" -lm -o "$1/fuzz"
    # the seeds come from the real writer (export/export.c, with common/util.c)
    # shellcheck disable=SC2086
    cc -std=gnu11 -fopenmp -I"$src/runtime" -I"$src/common" -I"$src/export" "$src/fuzz/seeds.c" \
        "$src/export/export.c" "$src/common/util.c" $rt $blas -lm -o "$1/seeds_gen"
    "$1/seeds_gen" "$1/seeds"
    echo 65536
}

build_safetensors() {
    c="$src/common"
    # shellcheck disable=SC2086
    clang $san -std=gnu11 -fopenmp -I"$c" -I"$src/import" -I"$src/runtime" -DEVIT_CONFIG_DIR='"."' \
        -DEVIT_SRC_CONFIG_DIR='"."' "$src/fuzz/fuzz_safetensors.c" \
        "$src/import/safetensors.c" "$src/import/import.c" "$c/util.c" "$c/config.c" "$c/json.c" \
        "$c/vit.c" "$c/ops.c" "$c/rng.c" $rt $(pkg-config --cflags --libs libcjson) $blas -lpthread -lm \
        -o "$1/fuzz"
    # seeds: tiny timm-named ViTs in each dtype, written from the format's definition
    mk="python3 $src/tests/mksafetensors.py"
    small="--img 8 --patch 4 --dim 8 --heads 2 --mlp 8 --depth 1 --classes 3"
    # shellcheck disable=SC2086
    $mk "$1/seeds/f32" $small --dtype F32 --metadata format=pt
    # shellcheck disable=SC2086
    $mk "$1/seeds/f16" $small --dtype F16 --depth 2
    # shellcheck disable=SC2086
    $mk "$1/seeds/bf16" $small --dtype BF16 --drop head.weight
    # shellcheck disable=SC2086
    $mk "$1/seeds/dist" $small --extra dist_token
    echo 16384
}

for t in $targets; do
    d="$work/$t"
    mkdir -p "$d/corpus" "$d/seeds"
    case "$t" in
        load) maxlen=$(build_load "$d") ;;
        safetensors) maxlen=$(build_safetensors "$d") ;;
        *) echo "fuzz/run.sh: unknown target $t (load, safetensors)" >&2; exit 2 ;;
    esac
    echo "fuzz/run.sh: $t for ${secs}s" >&2
    (cd "$d" && ./fuzz -max_total_time="$secs" -max_len="$maxlen" -timeout="${FUZZ_TIMEOUT:-300}" \
        -close_fd_mask=2 -print_final_stats=1 corpus seeds)
done
