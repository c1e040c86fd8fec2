#!/bin/sh
# bench/load.sh: batch-1 latency of evit and ONNX Runtime on the same model
# files under competing load: median and p99 at 1, 2 and 4 threads, on a
# quiet machine and beside 1 and 2 busy processes (`sh -c 'while :; do :;
# done'`), for float32, INT8 and INT8 + INT8 attention.
#
#   bench/load.sh BUILD_DIR [--smoke] [CONFIG ...]     (default: deit-tiny)
#
# The models are bench/lib.sh's bench_models files (evit-init random
# weights, evit-quantize with every linear int8, without and with INT8
# attention, evit-export to .evit and to .onnx float32 / QDQ), so both
# runtimes run the same weights: evit through `evit-run FILE --bench
# --threads T`, ONNX Runtime (bench/node_modules/onnxruntime-node, through
# bench/ort_bench.js) with intraOpNumThreads T, interOpNumThreads 1,
# graph optimisation all, sequential execution.  ONNX Runtime has no INT8
# attention row of its own: its column in the int8a rows is its INT8 QDQ
# model (INT8 linears), the peer bench/runtime.sh's i8+a/ort8 uses.
#
# Every measurement is bounded: WARMUP (default 20) untimed then RUNS
# (default 200) timed inferences, killed after LIMIT seconds (default 120; such a
# row shows "-" and fails its checks).
# The busy processes are started by this script for each loaded
# measurement and stopped right after it; a trap on EXIT, INT and TERM
# stops any still running, and each runs under `timeout LIMIT+10`, so
# none outlives a measurement even when the script is killed with -9.
#
# One table: rows (config, dtype, threads, load), columns evit median, evit
# p99, p99/median, ONNX Runtime median and p99, ORT/evit (ONNX Runtime
# median over evit median: above 1, evit faster).  Then, per config and
# dtype, the checks (reported, never tuned for):
#   - with 1 busy process, 2 threads never slower than 1 (evit median)
#   - with 1 busy process at 2 threads, p99 <= 1.5x median (the target);
#     and the same over every evit row, for information
#   - evit faster than ONNX Runtime at every thread count and load
#   - quiet 2-thread scaling, 1-thread median / 2-thread median
#     (target >= 1.8 for deit-tiny)
# and the conditions (machine, cores, load, thread settings, ORT options).
#
# The two checks that compare thread counts (2 against 1 thread under 1
# busy process, and the quiet scaling) are decided on alternated rounds,
# not on the table's two rows: the VMs this runs on change speed from one
# measurement to the next (1-thread deit-tiny INT8 + INT8 attention at 6.0
# or 7.7 ms, its 2-thread time at 3.6 or 4.6 ms; docs/RESULTS.md), and two
# rows measured a minute apart can land in different states.  ROUNDS
# (default 5; 3 with --smoke) rounds of 1 thread then 2 threads, ARUNS
# (default RUNS / 2) runs each, the load started and stopped per round;
# the check takes the median of the rounds' 1-thread / 2-thread ratios and
# prints every round's.
#
# The quiet rounds also measure what the machine itself gives two threads:
# two 1-thread evit-run processes at once, one pinned to each of the first
# two CPUs this script may use (taskset), share nothing, so 1 / (1 / a + 1 / b)
# of their medians a and b is the latency a perfect 2-thread run would
# have.  The check prints that ceiling's scaling (round's 1-thread median
# over it) and evit's 2-thread time against it: on a VM whose two vCPUs
# run at different speeds the ceiling itself can be under 1.8x, and where
# it is near 2x the gap is the runtime's (docs/RESULTS.md, session 19).
#
# --smoke: fm-tiny unless configs are named, 5 warm-ups and 20 runs: checks
# the script in about a minute.  RUNS, WARMUP and LIMIT in the environment
# override the counts.  Not part of `make check`: a benchmark.
set -eu
B=${1:?usage: bench/load.sh BUILD_DIR [--smoke] [CONFIG ...]}
shift
SMOKE=0
if [ "${1:-}" = --smoke ]; then
    SMOKE=1
    shift
fi
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/lib.sh"
if [ $SMOKE = 1 ]; then
    CONFIGS=${*:-fm-tiny} RUNS=${RUNS:-20} WARMUP=${WARMUP:-5}
else
    CONFIGS=${*:-deit-tiny} RUNS=${RUNS:-200} WARMUP=${WARMUP:-20}
fi
LIMIT=${LIMIT:-120}
if [ $SMOKE = 1 ]; then ROUNDS=${ROUNDS:-3}; else ROUNDS=${ROUNDS:-5}; fi
ARUNS=${ARUNS:-$((RUNS / 2))}
THREADS="1 2 4"
LOADS="0 1 2"
[ -x "$B/evit-run" ] || { echo "error: $B/evit-run: missing (build first)" >&2; exit 1; }
[ -d "$ORT" ] && command -v node >/dev/null ||
    { echo "error: $ORT: missing (cd bench && npm install --ignore-scripts onnxruntime-node)" >&2; exit 1; }

W=$(mktemp -d)
LOADPIDS=""
LOADAVG0=$(cut -d' ' -f1-3 /proc/loadavg)
# load_start N: N busy processes, each a `timeout` (its pid kept) around
# the loop; load_stop ends them (timeout passes the TERM on) and waits
load_start() {
    _i=0
    while [ $_i -lt "$1" ]; do
        timeout -k 1 $((LIMIT + 10)) sh -c 'while :; do :; done' &
        LOADPIDS="$LOADPIDS $!"
        _i=$((_i + 1))
    done
    [ "$1" = 0 ] || sleep 0.2 # let the scheduler see them before timing
}
# pair_time MODEL: the two pinned 1-thread processes of a quiet round (the
# comment at the top) into PAIR, "-" when there are not two usable CPUs or
# either fails
PAIRPIDS=""
pair_time() {
    PAIR=-
    command -v taskset >/dev/null || return 0
    _c=0 _cpus=""
    while [ $_c -lt 256 ] && [ "$(echo $_cpus | wc -w)" -lt 2 ]; do
        taskset -c $_c true 2>/dev/null && _cpus="$_cpus $_c"
        _c=$((_c + 1))
    done
    set -- "$1" $_cpus
    [ $# = 3 ] || return 0
    timeout -k 5 "$LIMIT" taskset -c "$2" "$B/evit-run" "$1" --bench --threads 1 --warmup "$WARMUP" --runs "$ARUNS" >"$W/pair0.out" 2>&1 &
    PAIRPIDS="$!"
    timeout -k 5 "$LIMIT" taskset -c "$3" "$B/evit-run" "$1" --bench --threads 1 --warmup "$WARMUP" --runs "$ARUNS" >"$W/pair1.out" 2>&1 &
    PAIRPIDS="$PAIRPIDS $!"
    _rc=0
    for _p in $PAIRPIDS; do wait "$_p" || _rc=1; done
    PAIRPIDS=""
    [ $_rc = 0 ] || return 0
    PAIR=$(sed -n 's/.*median \([0-9.]*\) ms.*/\1/p' "$W/pair0.out" "$W/pair1.out" |
        awk '$1 > 0 { s += 1 / $1; n++ } END { if (n == 2) printf "%.3f", 1 / s; else print "-" }')
}
load_stop() {
    for _p in $LOADPIDS; do kill "$_p" 2>/dev/null || :; done
    for _p in $LOADPIDS; do wait "$_p" 2>/dev/null || :; done
    LOADPIDS=""
}
trap 'bench_stop; load_stop; for p in $PAIRPIDS; do kill "$p" 2>/dev/null || :; done; rm -rf "$W"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

: >"$W/rows.txt" >"$W/quant.txt" >"$W/alt.txt"
for c in $CONFIGS; do
    bench_models "$B" "$W/m" "$c" >>"$W/quant.txt"
    for k in int8 int8a; do echo "$c $k, ONNX Runtime's $(ort_kernels "$W/m/$c.$k.onnx")" >>"$W/quant.txt"; done
    ch=$(cfg_num "$c" channels)
    sz=$(cfg_num "$c" img_size)
    for k in f32 int8 int8a; do
        o=$k
        [ $k = int8a ] && o=int8
        for t in $THREADS; do
            for l in $LOADS; do
                load_start $l
                # a measurement that fails or runs past LIMIT is a row of
                # "-" (and fails its checks), not the end of the run
                MED=- P99=-
                evit_time "$W/m/$c.$k.evit" $t "$WARMUP" "$RUNS" "$LIMIT" || :
                em=$MED ep=$P99
                MED=- P99=-
                ort_time "$W/m/$c.$o.onnx" $t "$WARMUP" "$RUNS" "$ch" "$sz" "$LIMIT" || :
                load_stop
                echo "$c $k $t $l $em $ep $MED $P99" >>"$W/rows.txt"
                echo "load.sh: $c $k threads=$t load=$l: evit $em / $ep ms, ORT $MED / $P99 ms (median / p99)" >&2
            done
        done
        # the alternated rounds (the comment at the top)
        for l in 0 1; do
            r=1
            while [ $r -le "$ROUNDS" ]; do
                load_start $l
                MED=-
                evit_time "$W/m/$c.$k.evit" 1 "$WARMUP" "$ARUNS" "$LIMIT" || :
                m1=$MED
                MED=-
                evit_time "$W/m/$c.$k.evit" 2 "$WARMUP" "$ARUNS" "$LIMIT" || :
                load_stop
                PAIR=-
                [ $l != 0 ] || pair_time "$W/m/$c.$k.evit"
                echo "$c $k $l $m1 $MED $PAIR" >>"$W/alt.txt"
                echo "load.sh: $c $k load=$l round $r: 1 thread $m1 ms, 2 threads $MED ms (medians)$([ $PAIR = - ] || echo ", two pinned 1-thread processes at once: a perfect 2-thread run $PAIR ms")" >&2
                r=$((r + 1))
            done
        done
    done
done

echo "batch-1 latency under load: $RUNS timed runs after $WARMUP warm-ups per row, ms"
awk -v smoke=$SMOKE -v rounds=$ROUNDS -v aruns=$ARUNS '
function x(a, b) { return a == "-" || b == "-" ? "-" : sprintf("%.2fx", a / b) }
function lt(a, b) { return a != "-" && b != "-" && a + 0 < b + 0 }
# the median of the alternated rounds ratio 1 thread / 2 threads of key at
# load l (0: a round that failed), and their list in alist
function amed(key, l,    i, n, v) {
  n = na[key, l]; alist = "";
  for (i = 1; i <= n; i++) { v[i] = ar[key, l, i]; alist = alist sprintf(" %.2f", v[i]) }
  return med(v, n) }
# the ceiling of a round: its 1-thread median over the pair'"'"'s perfect
# 2-thread latency; evit'"'"'s share of it: that latency over evit'"'"'s 2 threads
function med(v, n,    i, j, t) {
  for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
  return n == 0 ? 0 : n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }
FILENAME ~ /alt.txt$/ { key = $1 " " $2; i = ++na[key, $3]; ar[key, $3, i] = ($4 != "-" && $5 != "-" && $5 + 0 > 0) ? $4 / $5 : 0
  if ($3 == 0 && NF >= 6 && $6 != "-" && $4 != "-" && $5 != "-" && $5 + 0 > 0) { j = ++nc[key]; ceil[key, j] = $4 / $6; eff[key, j] = $6 / $5 }
  next }
{ c = $1; k = $2; th = $3; l = $4; key = c " " k; em[key, th, l] = $5; ep[key, th, l] = $6; om[key, th, l] = $7; op[key, th, l] = $8
  if (!(key in seen)) { seen[key] = 1; keys[nk++] = key }
  if (!((c, th) in st)) { st[c, th] = 1 }
  rows[n++] = $0 }
BEGIN { printf "%-10s %-6s %7s %5s %11s %11s %10s %11s %11s %9s\n", "config", "dtype", "threads", "load", "evit med", "evit p99", "p99/med", "ORT med", "ORT p99", "ORT/evit" }
{ printf "%-10s %-6s %7s %5s %11s %11s %10s %11s %11s %9s\n", c, k == "int8a" ? "i8+a" : k, th, l, $5, $6, x($6, $5), $7, $8, x($7, $5) }
END {
  print "dtype i8+a: evit INT8 linears + INT8 attention; its ORT columns are the INT8 QDQ model (ORT has no INT8 attention of its own here); load: busy processes beside the measurement"
  print ""
  print "checks (evit; PASS or FAIL with the figures):"
  for (i = 0; i < nk; i++) {
    key = keys[i]; split(key, p, " ");
    # 2 threads never slower than 1, under 1 busy process: the alternated rounds decide
    a = em[key, 1, 1]; b = em[key, 2, 1]; s = amed(key, 1);
    printf "  %-10s %-6s 1 busy: 2 threads no slower than 1, alternated rounds 1-thread/2-thread median %.2fx (rounds:%s; table rows %s ms at 2 threads, %s at 1): %s\n", p[1], p[2] == "int8a" ? "i8+a" : p[2], s, alist, b, a, (s >= 1.0) ? "PASS" : "FAIL";
    # the p99 target of the issue: 2 threads beside 1 busy process
    r = b != "-" && b + 0 > 0 ? ep[key, 2, 1] / b : 1e9;
    printf "  %-10s %-6s 1 busy, 2 threads: p99 %s ms <= 1.5x median %s ms (%.2fx): %s\n", p[1], p[2] == "int8a" ? "i8+a" : p[2], ep[key, 2, 1], b, r, r <= 1.5 ? "PASS" : "FAIL";
    bad = ""; worst = 0;
    for (th = 1; th <= 4; th *= 2) for (l = 0; l <= 2; l++) {
      if (em[key, th, l] == "-") { bad = bad sprintf(" %dt/load%d -", th, l); continue }
      r = ep[key, th, l] / em[key, th, l]; if (r > worst) worst = r;
      if (r > 1.5) bad = bad sprintf(" %dt/load%d %.2fx", th, l, r) }
    printf "  %-10s %-6s (all 9 rows, beyond the target) p99 <= 1.5x median (worst %.2fx): %s%s\n", p[1], p[2] == "int8a" ? "i8+a" : p[2], worst, bad == "" ? "PASS" : "FAIL, over:", bad;
    bad = ""; worst = 1e9;
    for (th = 1; th <= 4; th *= 2) for (l = 0; l <= 2; l++) {
      if (em[key, th, l] == "-" || om[key, th, l] == "-") { bad = bad sprintf(" %dt/load%d -", th, l); continue }
      r = om[key, th, l] / em[key, th, l]; if (r < worst) worst = r;
      if (r <= 1) bad = bad sprintf(" %dt/load%d %.2fx", th, l, r) }
    printf "  %-10s %-6s faster than ORT at every thread count and load (smallest ORT/evit %.2fx): %s%s\n", p[1], p[2] == "int8a" ? "i8+a" : p[2], worst, bad == "" ? "PASS" : "FAIL, not at:", bad;
    t = lt(0, em[key, 2, 0]) && em[key, 1, 0] != "-" ? em[key, 1, 0] / em[key, 2, 0] : 0; s = amed(key, 0);
    printf "  %-10s %-6s quiet 2-thread scaling, alternated rounds median %.2fx (rounds:%s; table rows %s / %s ms = %.2fx) (target >= 1.8%s): %s\n", p[1], p[2] == "int8a" ? "i8+a" : p[2], s, alist, em[key, 1, 0], em[key, 2, 0], t,
      p[1] == "deit-tiny" ? "" : ", set for deit-tiny", (s >= 1.8) ? "PASS" : "FAIL";
    if (nc[key] > 0) {
      clist = ""; elist = "";
      for (j = 1; j <= nc[key]; j++) { cv[j] = ceil[key, j]; ev[j] = eff[key, j]; clist = clist sprintf(" %.2f", cv[j]); elist = elist sprintf(" %.0f%%", 100 * ev[j]) }
      printf "  %-10s %-6s   the machine'"'"'s own 2-core ceiling (two pinned 1-thread processes at once) median %.2fx (rounds:%s); evit'"'"'s 2 threads reach %.0f%% of it (rounds:%s)\n", p[1], p[2] == "int8a" ? "i8+a" : p[2], med(cv, nc[key]), clist, 100 * med(ev, nc[key]), elist
    }
  }
  printf "alternated rounds: %d per config, dtype and load (0 and 1 busy), each 1 thread then 2 threads, %d runs after the warm-ups each\n", rounds, aruns
  if (smoke) print "(smoke run: too few runs for the p99 to mean much)"
}' "$W/alt.txt" "$W/rows.txt"
echo
echo "conditions:"
echo "  machine: $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores online ($(getconf _NPROCESSORS_CONF) configured), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo); load average (1, 5, 15 min) at the start $LOADAVG0, at the end $(cut -d' ' -f1-3 /proc/loadavg) (other users' processes count too)"
echo "  the 2-core ceiling: two evit-run --bench --threads 1 --runs $ARUNS at once, pinned with taskset to the first two CPUs this script may use, in each quiet round"
echo "  load: 0, 1 or 2 busy processes (sh -c 'while :; do :; done', each under timeout $((LIMIT + 10)) s), started before and stopped after each measurement (both runtimes of a row run beside the same ones); no CPU pinning for any process"
echo "  evit: evit-run --bench --threads T --warmup $WARMUP --runs $RUNS (libevrt's own thread pool, T threads; kernels: ${EVRT_KERNELS:-the CPU's default}); median and p99 as evit-run prints them"
echo "  ONNX Runtime: onnxruntime-node $(ort_version) (node $(node --version)), CPU execution provider, session options intraOpNumThreads T (= evit's threads), interOpNumThreads 1, graphOptimizationLevel all, executionMode sequential; bench/ort_bench.js, the same warm-ups and runs, median and p99 defined as evit-run's"
echo "  models (bench/lib.sh bench_models: evit-init seed 1, entropy calibration on 32 synthetic images, max_drop -1):"
sed 's/^/    /' "$W/quant.txt"
echo "  each measurement limited to $LIMIT s"
