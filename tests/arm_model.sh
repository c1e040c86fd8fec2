#!/bin/sh
# arm_model.sh: bench/arm_model.sh's llvm-mca model of the Cortex-A57 loops
# holds what docs/JETSON.md claims: the packed INT8 kernel (smull/smlal2 +
# sadalp) reaches at least 10 int8 ops/cycle and at least 1.7x the float
# NEON panel kernel's rate; every non-matmul kernel's loops are found and
# timed; each row's total is its matmul and other parts; Token Merging's
# rows follow the schedule and beat the merge-free row.  A cycle model, not
# a timing: deterministic.  Skips without gcc-aarch64-linux-gnu or llvm-mca
# (Debian llvm).
set -eu
. "$EVIT_SRC/tests/lib.sh"

command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || skip "aarch64-linux-gnu-gcc not installed"
command -v llvm-mca >/dev/null 2>&1 || skip "llvm-mca not installed (apt-get install llvm)"

succeeds sh "$EVIT_SRC/bench/arm_model.sh"
cat "$T/out"
rate() { awk -v k="$1" '$1 == k { print $(NF - 1) }' "$T/out"; }
f32=$(rate "f32p_neon")
i8=$(rate "i8p_neon")
[ -n "$f32" ] && [ -n "$i8" ] || fail "no rates for f32p_neon and i8p_neon in the model's output"
awk -v a="$i8" 'BEGIN { exit !(a >= 10) }' || fail "i8p_neon: $i8 int8 ops/cycle, wanted >= 10"
ok "the A57 INT8 kernel reaches $i8 int8 ops/cycle (>= 10)"
awk -v a="$i8" -v b="$f32" 'BEGIN { exit !(a >= 1.7 * b) }' || fail "i8p_neon $i8 vs f32p_neon $f32: under 1.7x"
ok "and $(awk -v a="$i8" -v b="$f32" 'BEGIN { printf "%.2f", a / b }')x the float NEON kernel's $f32 ops/cycle (>= 1.7x)"
grep -q '^INT8 linear + attention' "$T/out" || fail "no projection table"
ok "the projection covers float32, INT8 linears and INT8 attention"

# cycles per element of each non-matmul part: found, and neither free nor
# absurd (an outer loop or a chain through memory would be tens)
for p in layernorm softmax softmax_i8 gelu quantize kv_quant add; do
    c=$(awk -v k="$p" '$1 == k { print $NF }' "$T/out")
    [ -n "$c" ] || fail "no loops timed for $p"
    awk -v a="$c" 'BEGIN { exit !(a > 0 && a < 40) }' || fail "$p: $c cycles/element, wanted in (0, 40)"
done
ok "every non-matmul kernel has its loops timed ($(awk '$1 == "layernorm" || $1 == "gelu" { printf "%s%s %s", s, $1, $NF; s = ", " }' "$T/out") cycles/element...)"

# total = matmul + other on every row (merged rows end with their speedup)
bad=$(awk '/^(float32|INT8 linear|  \+ ToMe)/ { s = $NF ~ /x$/; d = $(NF - 3 - s) + $(NF - 2 - s) - $(NF - 1 - s);
           if (d > 0.0015 || d < -0.0015 || $(NF - 2 - s) <= 0) print }' "$T/out")
[ -z "$bad" ] || fail "rows whose total is not matmul + a positive other: $bad"
ok "each row's total is its matmul and non-matmul milliseconds"

# ToMe: blocks 0..depth-2 merge r each, so the last block has T - (depth - 1) r tokens
for want in "r=8 197>109" "r=16 197>21" "r=2 50>44" "r=4 50>38"; do
    awk -v r="${want% *}" -v t="${want#* }" '/^  \+ ToMe/ && $3 == r && $4 == t { f = 1 } END { exit !f }' \
        "$T/out" || fail "no ToMe row $want (tokens entering the first > last block)"
done
sp=$(awk '/^  \+ ToMe/ { printf "%s ", $NF }' "$T/out")
echo "$sp" | awk '{ for (i = 1; i <= NF; i++) { v[i] = $i + 0; if (v[i] <= 1) exit 1 }
                   exit !(NF == 4 && v[2] > v[1] && v[4] > v[3]) }' \
    || fail "ToMe speedups $sp: wanted 4, each over 1x, growing with r"
ok "Token Merging's rows follow the schedule and speed up with r: $sp"

# the all-MLP decoder's work on top of the linear one's: four levels of
# LayerNorm and linear_c (192 to 96) on 1,024 patch tokens, the fuse layer
# (384 to 96) and the head on 96 values instead of 192, 14 classes:
# 4*1024*192*96 + 1024*384*96 + 1024*96*14 - 1024*192*14 = 111.87 M
mmacs() { awk -v m="$1" '$0 ~ "^" m ": " { f = 1; next } f && /^INT8 linear \+ attention/ { print $(NF - 4); exit }' "$T/out"; }
lin=$(mmacs seg-deit-tiny-512)
mlp=$(mmacs seg-deit-tiny-512-mlp)
[ -n "$lin" ] && [ -n "$mlp" ] || fail "no projection rows for seg-deit-tiny-512 and seg-deit-tiny-512-mlp"
awk -v a="$lin" -v b="$mlp" 'BEGIN { d = b - a - 111.87; exit !(d < 0.01 && d > -0.01) }' \
    || fail "seg_mlp's decoder: $mlp - $lin MMACs, wanted 111.87 more than the linear decoder"
ok "the all-MLP decoder's 512x512 model counts 111.87 M multiply-adds more than the linear one ($lin, $mlp)"
