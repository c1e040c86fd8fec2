#!/bin/sh
# bench/train.sh: evit's training throughput (bench/train) beside PyTorch's
# for the identical model and step (bench/torch_train.py), measured in the
# same run, with the ratio.  Batch 64; 1 and 2 threads.
#
#   bench/train.sh [BUILD-DIR]      (default: build)
#
# PyTorch gets evit's BLAS conditions: the same OpenBLAS build evit links
# (its folder first on LD_LIBRARY_PATH, so Debian's libblas.so.3 resolves
# there whatever the system alternative says), the same thread count per
# row, OMP_WAIT_POLICY=PASSIVE; both BLAS libraries are printed.  PyTorch
# is skipped when /usr/bin/python3 has no torch.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
secs=${SECONDS_PER_RUN:-3}
models="fm-tiny fm-small"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

"$build/bench/train" --seconds "$secs" $models | tee "$out"
blasdir=$(sed -n 's/^OPENBLAS_LIBS = -L\([^ ]*\).*/\1/p' "$build/Makefile" | sed 's:/$::')
echo "evit BLAS: OpenBLAS from ${blasdir:-the default search path} (threads = the row's count, OpenMP)"
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    cfgs=""
    for m in $models; do cfgs="$cfgs $top/configs/models/$m.json"; done
    echo
    echo "PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), same step:"
    LD_LIBRARY_PATH="${blasdir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" OMP_WAIT_POLICY=PASSIVE \
        /usr/bin/python3 "$top/bench/torch_train.py" --seconds "$secs" $cfgs >"$out.torch"
    echo
    printf '%-10s %8s %12s %12s %8s\n' model threads "evit img/s" "torch img/s" ratio
    while read -r name th ips; do
        col=$((th + 2))
        ev=$(awk -v n="$name" -v c="$col" '$1 == n { print $c }' "$out")
        awk -v n="$name" -v t="$th" -v e="$ev" -v p="$ips" \
            'BEGIN { printf "%-10s %8d %12.1f %12.1f %7.2fx\n", n, t, e, p, e / p }'
    done <"$out.torch"
    rm -f "$out.torch"
else
    echo "(no torch in /usr/bin/python3: PyTorch not measured)"
fi
