#!/bin/sh
# test.sh: sets up (scripts/setup.sh, with any configure arguments given
# here), then builds and runs every test and ends with one line
# "N passed, N failed[, N skipped]" counting individual test cases.
#
#   scripts/test.sh                               the suite
#   scripts/test.sh --enable-asan --enable-ubsan  the suite under sanitizers
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh" "$@"
build=${BUILD:-$top/build}
cd "$build"
rc=0
make -j"$(nproc)" check >make-check.out 2>&1 || rc=$?
grep -E '^(PASS|FAIL|SKIP|ERROR|XFAIL|XPASS):' make-check.out || true
# each test program prints "ok - ..." / "not ok - ..." per case; a program
# that died without saying so counts as one failure
passed=0 failed=0 skipped=0
for log in tests/*.log; do
    [ -f "$log" ] || continue
    trs=${log%.log}.trs
    status=$(sed -n 's/^:test-result: //p' "$trs" 2>/dev/null | head -n 1)
    p=$(grep -c '^ok - ' "$log" || true)
    f=$(grep -c '^not ok - ' "$log" || true)
    case "$status" in
        SKIP) skipped=$((skipped + 1)); continue ;;
        FAIL|ERROR) [ "$f" -gt 0 ] || f=1
                    echo "--- $log"; tail -n 20 "$log" ;;
    esac
    passed=$((passed + p))
    failed=$((failed + f))
done
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || { failed=1; tail -n 30 make-check.out; }
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
