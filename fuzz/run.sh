#!/bin/sh
# run.sh: builds libFuzzer targets, writes their seed corpora and fuzzes
# each for SECONDS (default 60).  Needs clang (apt-get install clang).
#   fuzz/run.sh [SECONDS] [WORKDIR] [TARGET...]      from the source tree's root
# Targets: load (the runtime's model file loader), safetensors (the
# safetensors reader and evit-import's importer), png (PNG import), idx (IDX
# import), json (model configs and recipes), h5attr (what checkpoint, dataset
# (classification and segmentation) and logits loading validates); default all, one after the other.  Crashes
# land in WORKDIR/TARGET/crash-*; corpora grow in WORKDIR/TARGET/corpus.
# The per-input timeout (FUZZ_TIMEOUT, default 300 s) is generous because a
# niced fuzzer on a busy machine can be starved for tens of seconds; every
# input is handled in well under a millisecond.  The targets' own stderr (the
# one-line errors of every refused input) is closed: -close_fd_mask=2.
set -eu
secs=${1:-60}
work=${2:-/tmp/evit-fuzz}
[ $# -ge 2 ] && shift 2 || shift $#
targets=${*:-load safetensors png idx json h5attr}
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
    c="$src/common" m="$src/model"
    # shellcheck disable=SC2086
    clang $san -std=gnu11 -fopenmp -I"$c" -I"$m" -I"$src/import" -I"$src/runtime" -DEVIT_CONFIG_DIR='"."' \
        -DEVIT_SRC_CONFIG_DIR='"."' "$src/fuzz/fuzz_safetensors.c" \
        "$src/import/safetensors.c" "$src/import/import.c" "$c/util.c" "$m/config.c" "$c/json.c" \
        "$m/vit.c" "$m/ops.c" "$c/rng.c" $rt $(pkg-config --cflags --libs libcjson) $blas -lpthread -lm \
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

# libevit's sources (common/ and model/), the recipe reader (distill/) and
# the IDX reader (data/), for the targets that fuzz them
build_libevit() { # target-file output
    c="$src/common"
    lib=$(ls "$c"/*.c "$src"/model/*.c)
    # shellcheck disable=SC2086
    clang $san -std=gnu11 -fopenmp -I"$c" -I"$src/model" -I"$src/distill" -I"$src/data" -I"$src/runtime" -DH5_USE_110_API \
        -DEVIT_CONFIG_DIR='"."' -DEVIT_SRC_CONFIG_DIR='"."' -DEVIT_GIT_REV='"fuzz"' -DPACKAGE_VERSION='"fuzz"' \
        "$src/fuzz/$1" $lib "$src/distill/recipe.c" "$src/distill/optim.c" "$src/data/idx.c" $rt \
        $(pkg-config --cflags --libs hdf5 libcjson libpng zlib) $blas -lpthread -lm -o "$2"
}

build_png() {
    build_libevit fuzz_png.c "$1/fuzz"
    # seeds: small PNGs of each colour type, written with the standard library
    python3 - "$1/seeds" <<'PY'
import struct, sys, zlib
def png(path, w, h, depth, ctype, row):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = b"".join(b"\0" + row(y) for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
d = sys.argv[1]
for ch, (ctype, bpp) in enumerate([(0, 1), (2, 3), (6, 4), (4, 2)]):
    png(f"{d}/c{ctype}.png", 5, 4, 8, ctype, lambda y: bytes((17 * y + i) % 256 for i in range(5 * bpp)))
png(f"{d}/g16.png", 3, 3, 16, 0, lambda y: bytes(range(6)))
PY
    # the target reads the first byte as the channel count
    # each as an image (one channel asked for) and as a mask (class indices)
    for f in "$1"/seeds/*.png; do
        (printf '\001'; cat "$f") >"$f.in" && (printf '\000'; cat "$f") >"$f.mask.in" && rm "$f"
    done
    echo 4096
}

build_idx() {
    build_libevit fuzz_idx.c "$1/fuzz"
    python3 "$src/tests/mkdata.py" "$1/seeds/img.gz" "$1/seeds/lab.gz" 3 10 3 >&2
    gzip -dc "$1/seeds/img.gz" >"$1/seeds/img.raw"
    gzip -dc "$1/seeds/lab.gz" >"$1/seeds/lab.raw"
    echo 4096
}

build_json() {
    build_libevit fuzz_json.c "$1/fuzz"
    cp "$src"/configs/models/*.json "$src"/configs/fmnist/*.json "$1/seeds/"
    echo 8192
}

build_h5attr() {
    build_libevit fuzz_h5attr.c "$1/fuzz"
    for k in 0 1 2 3 4; do printf "\\$k" >"$1/seeds/plain$k"; done
    printf '\000\001\003\001\002\003\004\005' >"$1/seeds/ck-img"
    printf '\001\004\001\002\003\004\005\006' >"$1/seeds/ds-images"
    printf '\002\001\002\001\002\003\004\005' >"$1/seeds/lg-count"
    printf '\004\004\002\001\002\003\004\005' >"$1/seeds/views-values"
    echo 512
}

for t in $targets; do
    d="$work/$t"
    mkdir -p "$d/corpus" "$d/seeds"
    case "$t" in
        load) maxlen=$(build_load "$d") ;;
        safetensors) maxlen=$(build_safetensors "$d") ;;
        png) maxlen=$(build_png "$d") ;;
        idx) maxlen=$(build_idx "$d") ;;
        json) maxlen=$(build_json "$d") ;;
        h5attr) maxlen=$(build_h5attr "$d") ;;
        *) echo "fuzz/run.sh: unknown target $t (load safetensors png idx json h5attr)" >&2; exit 2 ;;
    esac
    echo "fuzz/run.sh: $t for ${secs}s" >&2
    (cd "$d" && ./fuzz -max_total_time="$secs" -max_len="$maxlen" -timeout="${FUZZ_TIMEOUT:-300}" \
        -close_fd_mask=2 -print_final_stats=1 corpus seeds)
done
