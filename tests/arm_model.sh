#!/bin/sh
# arm_model.sh: bench/arm_model.sh's llvm-mca model of the Cortex-A57 loops
# holds what docs/JETSON.md claims: the packed INT8 kernel (smull/smlal2 +
# sadalp) reaches at least 10 int8 ops/cycle and at least 1.7x the float
# NEON panel kernel's rate.  A cycle model, not a timing: deterministic.
# Skips without gcc-aarch64-linux-gnu or llvm-mca (Debian llvm).
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
