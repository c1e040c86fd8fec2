#!/bin/sh
# run.sh: builds the loader's libFuzzer target, writes the seed corpus and
# fuzzes for SECONDS (default 60).  Needs clang (apt-get install clang).
#   fuzz/run.sh [SECONDS] [WORKDIR]      from the source tree's root
# Crashes land in WORKDIR/crash-*; the corpus grows in WORKDIR/corpus.  The
# per-input timeout (FUZZ_TIMEOUT, default 300 s) is generous because a
# niced fuzzer on a busy machine can be starved for tens of seconds; every
# input loads in well under a millisecond.
set -eu
secs=${1:-60}
work=${2:-/tmp/evit-fuzz}
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$work/corpus" "$work/seeds"
rt=$(ls "$src"/runtime/*.c | grep -v run_main.c)
# shellcheck disable=SC2086
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=c99 \
    -I"$src/runtime" $rt "$src/fuzz/fuzz_load.c" -lm -o "$work/fuzz_load"
# the seeds come from the real writer (export/export.c, with common/util.c)
cc -std=gnu11 -fopenmp -I"$src/runtime" -I"$src/common" -I"$src/export" "$src/fuzz/seeds.c" \
    "$src/export/export.c" "$src/common/util.c" $rt $(pkg-config --cflags --libs openblas) -lm -o "$work/seeds_gen"
"$work/seeds_gen" "$work/seeds"
cd "$work"
./fuzz_load -max_total_time="$secs" -max_len=65536 -timeout=${FUZZ_TIMEOUT:-300} -print_final_stats=1 corpus seeds
