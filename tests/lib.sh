# lib.sh: helpers for the shell tests (sourced after `set -eu`).
#
#   $T                     a scratch directory, removed when the test exits
#   $EVIT_BIN, $EVIT_SRC   build and source trees (set by `make check`)
#   ok MSG                 prints "ok - MSG"
#   fail MSG               prints "FAIL: MSG" and the last command's stderr, exits 1
#   skip MSG               exits 77, which automake reports as SKIP
#   needs_python           sets PY=/usr/bin/python3 (it writes test inputs), or skips
#   needs_torch            sets PY=/usr/bin/python3, or skips when it lacks torch,
#                          h5py or numpy
#   succeeds CMD...        CMD must exit 0; its stdout/stderr land in $T/out, $T/err
#   fails_with CODE CMD... CMD must exit CODE; for 1 (a failure), stderr must be
#                          exactly one line starting "error:"
#   stderr_has TEXT        the last command's stderr contains TEXT (fixed string)
#   stdout_has TEXT        the last command's stdout contains TEXT (fixed string)
#   num KEY FILE           the first number under "KEY": in the JSON report FILE
#   synth_data OUT.h5 N SIZE CLASSES
#                          a dataset of N synthetic SIZE x SIZE images of CLASSES
#                          classes (tests/mkdata.py, then evit-data import)
#   mini_model HEADS       the tests' small model config as JSON (28x28, patch 7,
#                          D 32, depth 2, MLP 64, HEADS heads)
#   train_mini EPOCHS HEADS
#                          trains it on labels, $T/all.h5 (validated on $T/val.h5),
#                          2 threads: $T/recipe.json, $T/m.h5, $T/m.report.json
#   $DATA $D $EVAL $INIT $P $Q $X
#                          evit-data, -distill, -eval, -init, -prune, -quantize, -export
#
# The first failed check ends the test: later checks usually depend on it.

: "${EVIT_BIN:?EVIT_BIN must name the build tree (run through make check)}"
: "${EVIT_SRC:?EVIT_SRC must name the source tree (run through make check)}"

DATA=$EVIT_BIN/evit-data D=$EVIT_BIN/evit-distill EVAL=$EVIT_BIN/evit-eval INIT=$EVIT_BIN/evit-init
P=$EVIT_BIN/evit-prune Q=$EVIT_BIN/evit-quantize X=$EVIT_BIN/evit-export

T=$(mktemp -d "${TMPDIR:-/tmp}/evit-sh-XXXXXX")
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM

ok() {
    echo "ok - $*"
}

fail() {
    echo "FAIL: $*" >&2
    if [ -s "$T/err" ]; then
        echo "--- stderr of the last command:" >&2
        cat "$T/err" >&2
    fi
    exit 1
}

skip() {
    echo "SKIP: $*"
    exit 77
}

# Runs "$@" with output captured; sets $rc without tripping set -e.
run_cmd() {
    rc=0
    "$@" >"$T/out" 2>"$T/err" || rc=$?
}

succeeds() {
    run_cmd "$@"
    [ "$rc" -eq 0 ] || fail "expected exit 0, got $rc: $*"
}

fails_with() {
    want=$1
    shift
    run_cmd "$@"
    [ "$rc" -eq "$want" ] || fail "expected exit $want, got $rc: $*"
    if [ "$want" -eq 1 ]; then
        lines=$(wc -l <"$T/err")
        [ "$lines" -eq 1 ] || fail "expected one line on stderr, got $lines: $*"
        head -n 1 "$T/err" | grep -q '^error: ' || fail "stderr does not start with 'error: ': $*"
    fi
    return 0
}

stderr_has() {
    grep -qF -- "$1" "$T/err" || fail "stderr lacks '$1'"
}

num() {
    sed -n "s/.*\"$1\":[[:space:]]*\\(-\\{0,1\\}[0-9.e+-]*\\).*/\\1/p" "$2" | head -n 1
}

stdout_has() {
    grep -qF -- "$1" "$T/out" || fail "stdout lacks '$1'"
}

needs_python() {
    PY=/usr/bin/python3
    [ -x "$PY" ] || skip "/usr/bin/python3 is needed to write test inputs"
}

needs_torch() {
    PY=/usr/bin/python3
    [ -x "$PY" ] && "$PY" -c "import torch, h5py, numpy" 2>/dev/null || skip "no torch/h5py in /usr/bin/python3"
}

synth_data() {
    "${PY:-/usr/bin/python3}" "$EVIT_SRC/tests/mkdata.py" "$T/synth-img.gz" "$T/synth-lab.gz" "$2" "$3" "$4"
    succeeds "$EVIT_BIN/evit-data" import --idx "$T/synth-img.gz" "$T/synth-lab.gz" -o "$1"
}

mini_model() {
    printf '{"name":"mini","img_size":28,"channels":1,"patch":7,"num_classes":10,"embed_dim":32,"depth":2,"num_heads":%s,"mlp_hidden":64}' "$1"
}

train_mini() {
    printf '{"model":%s,"epochs":%s,"batch_size":64,"seed":3,"optimizer":{"type":"adamw","lr":0.003,"weight_decay":0.05},"schedule":{"warmup_epochs":0.5,"min_lr":0.0001},"distill":{"type":"none"}}\n' \
        "$(mini_model "$2")" "$1" >"$T/recipe.json"
    succeeds "$D" "$T/recipe.json" --data "$T/all.h5" --val "$T/val.h5" -o "$T/m.h5" --report "$T/m.report.json" -q --threads 2
}
