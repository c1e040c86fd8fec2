#!/bin/sh
# bench/scaling.sh: data-parallel evit-distill on Open MPI against one
# process, at the same global batch, on Fashion-MNIST with fm-small:
#   1 process x 1 thread, 2 ranks x 1 thread (mpirun -np 2), 1 process x 2
#   threads
# Throughput is the report's train.images_per_s (the whole job: steps only,
# the all-reduce included; validation and checkpoints excluded).  Then it
# projects step time and scaling efficiency to 2-64 nodes on 10 and 25
# Gbit/s from the measured 1-thread compute time and the ring all-reduce
# volume, 2 (N - 1) / N x 4 bytes x parameters per step (docs/DISTRIBUTED.md).
#
#   bench/scaling.sh BUILD_DIR [STEPS]     (default 24 steps of batch 128)
# Run it on an idle machine: the ratios are only as good as the cores are free.
set -eu
B=${1:?usage: bench/scaling.sh BUILD_DIR [STEPS]}
STEPS=${2:-24}
SRC=$(cd "$(dirname "$0")/.." && pwd)
FM=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
command -v mpirun >/dev/null || { echo "error: no mpirun (apt-get install openmpi-bin libopenmpi-dev)" >&2; exit 1; }
grep -q -- '-DEVIT_MPI=1' "$B/Makefile" || { echo "error: $B was configured without MPI" >&2; exit 1; }
[ "$(id -u)" -ne 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$B/evit-data" import --idx "$FM/train-images-idx3-ubyte.gz" "$FM/train-labels-idx1-ubyte.gz" -o "$W/train.h5" >/dev/null 2>&1
model=$(tr -d '\n' <"$SRC/configs/models/fm-small.json")
printf '{"model":%s,"epochs":1,"batch_size":128,"seed":1,"optimizer":{"type":"adamw","lr":0.0005,"weight_decay":0.05},"schedule":{"warmup_epochs":0.1,"min_lr":0.00001},"augment":{"crop_padding":2,"hflip":true},"distill":{"type":"none"}}\n' "$model" >"$W/recipe.json"
ips() { sed -n 's/.*"images_per_s":[[:space:]]*\([0-9.e+]*\).*/\1/p' "$1" | tail -n 1; }

echo "fm-small, global batch 128, $STEPS AdamW steps on Fashion-MNIST; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "BLAS: OpenBLAS $(sed -n 's/.*OPENBLAS_LIBS = .*openblas-\([a-z]*\).*/\1/p' "$B/Makefile" | head -1) build, threads = the evit --threads value per process; $(mpirun --version | head -1)"
"$B/evit-distill" "$W/recipe.json" --data "$W/train.h5" -o "$W/a.h5" --threads 1 --steps "$STEPS" -q --report "$W/a.json" >/dev/null
mpirun --oversubscribe -np 2 --bind-to core "$B/evit-distill" "$W/recipe.json" --data "$W/train.h5" -o "$W/b.h5" \
    --threads 1 --steps "$STEPS" -q --report "$W/b.json" >/dev/null
"$B/evit-distill" "$W/recipe.json" --data "$W/train.h5" -o "$W/c.h5" --threads 2 --steps "$STEPS" -q --report "$W/c.json" >/dev/null
a=$(ips "$W/a.json"); b=$(ips "$W/b.json"); c=$(ips "$W/c.json")
printf '| run | images/s | vs 1 process x 1 thread |\n|---|---|---|\n'
awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN {
    printf "| 1 process x 1 thread | %.1f | 1.00x |\n", a
    printf "| 2 ranks x 1 thread (MPI) | %.1f | %.2fx (efficiency %.0f%%) |\n", b, b / a, 50 * b / a
    printf "| 1 process x 2 threads (OpenMP) | %.1f | %.2fx |\n", c, c / a
    printf "2 ranks x 1 thread against 1 process x 2 threads: %.2fx\n", b / c }'

# projection: per-node batch fixed, compute from the 1-thread measurement
# (fm-small) and bench/train (deit-tiny), no overlap of the all-reduce with
# the backward pass (evit does not overlap), 50 us per ring step (TCP)
deit=$("$B/bench/train" --batch 8 --seconds 20 --threads 1 deit-tiny | awk 'NR == 2 { print $3 }')
printf '\nprojection (model, not a measurement): per-node batch b, step = b / (images/s of one core) + 2 (N-1)/N x 4 x params / bandwidth + 2 (N-1) x 50 us\n'
printf '| model | params | b | compute s/step | N | 10 Gbit/s step s | eff. | 25 Gbit/s step s | eff. |\n|---|---|---|---|---|---|---|---|---|\n'
for spec in "fm-small 1199882 128 $a" "deit-tiny 5717416 64 $deit"; do
    set -- $spec
    for n in 2 4 8 16 32 64; do
        awk -v m="$1" -v p="$2" -v bb="$3" -v r="$4" -v n="$n" 'BEGIN {
            t = bb / r; v = 2 * (n - 1) / n * 4 * p
            lat = 2 * (n - 1) * 50e-6
            s10 = t + v * 8 / 10e9 + lat; s25 = t + v * 8 / 25e9 + lat
            printf "| %s | %d | %d | %.3f | %d | %.3f | %.1f%% | %.3f | %.1f%% |\n", m, p, bb, t, n, s10, 100 * t / s10, s25, 100 * t / s25 }'
    done
done
