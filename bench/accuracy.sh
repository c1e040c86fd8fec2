#!/bin/sh
# bench/accuracy.sh: the accuracy evit-distill reaches beside PyTorch's on an
# identical labels-only recipe, from the same initial weights (the ones
# evit-distill starts from with the recipe's seed), with the difference.
#
#   bench/accuracy.sh [--profile quick|full] [--out DIR] [--threads N]
#                     [--reuse REPORT.json] [RECIPE.json]
#
# RECIPE defaults to configs/fmnist/student-labels.json; DIR (default
# run/fmnist-PROFILE) must hold the pipeline's train.h5 and test.h5.
# --reuse takes evit's figure from an existing evit-distill report of the same
# recipe and profile (for example the distillation study's
# study-labels.report.json) instead of training again.  PyTorch's side is
# bench/torch_fit.py; it is skipped when /usr/bin/python3 has no torch.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${EVIT_BIN:-$top/build}
profile=quick
out=""
threads=2
reuse=""
recipe=$top/configs/fmnist/student-labels.json
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --reuse) reuse=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "accuracy.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) recipe=$1; shift ;;
    esac
done
out=${out:-$top/run/fmnist-$profile}
prof=""
[ "$profile" = quick ] || prof="--profile $profile"
for f in "$out/train.h5" "$out/test.h5" "$recipe"; do
    [ -e "$f" ] || { echo "accuracy.sh: $f is missing (run scripts/pipeline.sh --profile $profile first)" >&2; exit 1; }
done
/usr/bin/python3 -c "import torch, h5py" 2>/dev/null || { echo "accuracy.sh: /usr/bin/python3 has no torch or h5py: nothing to compare with" >&2; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# the recipe's model (a name or an inline shape) and seed
/usr/bin/python3 - "$recipe" "$tmp" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
m = r["model"]
if isinstance(m, dict):
    json.dump(m, open(sys.argv[2] + "/model.json", "w"))
    m = sys.argv[2] + "/model.json"
open(sys.argv[2] + "/model", "w").write(m)
open(sys.argv[2] + "/seed", "w").write(str(r.get("seed", 0)))
EOF
"$bin/evit-init" "$(cat "$tmp/model")" --seed "$(cat "$tmp/seed")" --data "$out/train.h5" -o "$tmp/init.h5"

if [ -n "$reuse" ]; then
    report=$reuse
else
    report=$tmp/evit.report.json
    # shellcheck disable=SC2086
    "$bin/evit-distill" "$recipe" $prof --data "$out/train.h5" --val "$out/test.h5" -o "$tmp/evit.h5" \
        --report "$report" --threads "$threads"
fi
# shellcheck disable=SC2086
/usr/bin/python3 "$top/bench/torch_fit.py" "$recipe" $prof --init "$tmp/init.h5" --data "$out/train.h5" \
    --val "$out/test.h5" --threads "$threads" >"$tmp/torch.json"

top1() { sed -n 's/^[[:space:]]*"top1":[[:space:]]*\([0-9.]*\).*/\1/p' "$1" | head -n 1; }
ev=$(top1 "$report")
el=$(sed -n 's/^[[:space:]]*"final_loss":[[:space:]]*\([0-9.eE+-]*\).*/\1/p' "$report" | head -n 1)
pt=$(sed -n 's/.*"final_val_top1": \([0-9.]*\).*/\1/p' "$tmp/torch.json")
pl=$(sed -n 's/.*"final_loss": \([0-9.eE+-]*\).*/\1/p' "$tmp/torch.json")
echo
echo "recipe $recipe ($profile profile), same initial weights:"
awk -v e="$ev" -v p="$pt" 'BEGIN { printf "evit %.2f%%, PyTorch %.2f%%, difference %+.2f points\n", e, p, e - p }'
awk -v e="$el" -v p="$pl" 'BEGIN { printf "last epoch mean training loss: evit %.4f, PyTorch %.4f\n", e, p }'
