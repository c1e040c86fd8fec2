#!/bin/sh
# cli_kd_study.sh: scripts/kd_study.sh end to end on a small synthetic
# task (600 images of Fashion-MNIST's shape, a teacher trained for one
# epoch, the quick profile, two seeds, two jobs at a time): the views file,
# a soft and a consistent student per seed with their INT8 twins and the
# consistent chain to a device file, merged at r 0 (the control: the same
# fine-tune without merging) and 8 off the shelf and fine-tuned with
# merging, the summary table with its merging curve, and a second run that
# finds everything up to date.
set -eu
. "$EVIT_SRC/tests/lib.sh"
needs_python

R=$T/run
mkdir -p "$R"
synth_data "$R/train.h5" 600 28 10
cp "$R/train.h5" "$R/test.h5"
printf '{"model":"fm-tiny","epochs":1,"batch_size":64,"seed":1,"optimizer":{"lr":0.003},"schedule":{"warmup_epochs":0.2},"distill":{"type":"none"}}\n' >"$T/t.json"
succeeds "$EVIT_BIN/evit-distill" "$T/t.json" --data "$R/train.h5" --val "$R/test.h5" -o "$R/teacher.h5" \
    --report "$R/teacher.report.json" -q --threads 2
succeeds "$EVIT_BIN/evit-eval" "$R/teacher.h5" "$R/train.h5" --save-logits "$R/teacher.logits.h5" -q

fails_with 2 "$EVIT_SRC/scripts/kd_study.sh" --out "$R" --jobs 0
fails_with 2 "$EVIT_SRC/scripts/kd_study.sh" --out "$R" --seeds "a b"
fails_with 2 "$EVIT_SRC/scripts/kd_study.sh" --out "$R" --merge-r "4 x"
fails_with 2 "$EVIT_SRC/scripts/kd_study.sh" --out "$R" --kinds "consistent hard"
fails_with 1 "$EVIT_SRC/scripts/kd_study.sh" --out "$T/nowhere"
mkdir -p "$T/empty/kd"
fails_with 1 env EVIT_BIN="$EVIT_BIN" KD_OUT="$T/empty" KD_PROF= KD_RECIPE="$EVIT_SRC/configs/fmnist/student-consistent.json" \
    KD_NAME=x KD_MERGE_R=4 "$EVIT_SRC/scripts/kd_study.sh" --job consistent 9
stderr_has "x-s9 failed, see $T/empty/kd/x-s9.log"
grep -q "train.h5" "$T/empty/kd/x-s9.log" || fail "the job's log does not say what failed"
ok "bad arguments exit 2, a run folder without a teacher is refused, a failed job names its log"

succeeds env EVIT_BIN="$EVIT_BIN" "$EVIT_SRC/scripts/kd_study.sh" --out "$R" --seeds "3 4" --jobs 2 --merge-r "0 8"
for f in views-student-consistent.h5 soft-s3.quantize.report.json soft-s4.quantize-attention.report.json \
    student-consistent-s3.report.json student-consistent-s4.device.evit student-consistent-s4.device.report.json \
    summary-student-consistent.md; do
    [ -s "$R/kd/$f" ] || fail "kd_study.sh did not write kd/$f"
done
grep -q '"views"' "$R/kd/views-student-consistent.report.json" || fail "the views report lacks its views section"
stdout_has "| consistent, device file (.evit) |"
# the merged device files, r 0 (the control) and 8, off the shelf and fine-tuned with merging
for f in student-consistent-s3.r0-ft.device.evit student-consistent-s4.r8-ft.device.report.json; do
    [ -s "$R/kd/$f" ] || fail "kd_study.sh did not write kd/$f"
done
grep '^| consistent, merged r 8 + fine-tuned, device file |' "$R/kd/summary-student-consistent.md" | grep -q -- ' - |' &&
    fail "a merged device file's top-1 is missing: $(cat "$R/kd/summary-student-consistent.md")"
[ "$(tr -d ' \t\n' <"$R/kd/student-consistent-s3.r8.report.json" | sed -n 's/.*"merge_r":\[\([0-9,]*\)\].*/\1/p')" = 8,8,8,0 ] ||
    fail "the r 8 merge report's schedule is not 8,8,8,0"
# the curve: one row per r, its MFLOPs below the unmerged row's (r 0's equal), four top-1 means
grep -q '^| none | | [0-9.]* | | [0-9.]* | [0-9.]* | | |$' "$R/kd/summary-student-consistent.md" &&
    grep -q '^| 8 | 8,8,8,0 | [0-9.]* | -[0-9.]* % | [0-9.]* | [0-9.]* | [0-9.]* | [0-9.]* |$' "$R/kd/summary-student-consistent.md" &&
    grep -q '^| 0 | [0-9,]* | [0-9.]* | +0.0 % | [0-9.]* | [0-9.]* | [0-9.]* | [0-9.]* |$' "$R/kd/summary-student-consistent.md" ||
    fail "the merging curve is off: $(cat "$R/kd/summary-student-consistent.md")"
# every row has two seeds, a mean, an sd and a range: numbers, no dashes
grep '^| consistent (student-consistent) |' "$R/kd/summary-student-consistent.md" | grep -q -- ' - |' &&
    fail "a consistent student's top-1 is missing: $(cat "$R/kd/summary-student-consistent.md")"
grep -q '^| teacher |.*| 0.00 | 0.00 |$' "$R/kd/summary-student-consistent.md" || fail "the teacher row is off: $(cat "$R/kd/summary-student-consistent.md")"
ok "kd_study.sh saves the views, trains soft and consistent students per seed, quantizes them, merges the device chain's tokens and tabulates"

touch -d '1 minute ago' "$R/kd/summary-student-consistent.md"
succeeds env EVIT_BIN="$EVIT_BIN" "$EVIT_SRC/scripts/kd_study.sh" --out "$R" --seeds "3 4" --jobs 2 --merge-r "0 8"
stderr_has "up to date"
[ "$R/kd/student-consistent-s3.report.json" -ot "$R/kd/summary-student-consistent.md" ] &&
    [ "$R/kd/student-consistent-s4.r8-ft.report.json" -ot "$R/kd/summary-student-consistent.md" ] || fail "the second run trained again"
ok "a second run finds the views and students up to date"

# another recipe: its own views and students beside the first
sed 's/"prob": 0.25/"prob": 0.5/' "$EVIT_SRC/configs/fmnist/student-consistent.json" >"$T/erase50.json"
succeeds env EVIT_BIN="$EVIT_BIN" "$EVIT_SRC/scripts/kd_study.sh" --out "$R" --seeds "3" --jobs 2 --recipe "$T/erase50.json" --merge-r "" \
    --kinds consistent
! grep -q '^soft' "$R/kd/jobs" || fail "--kinds consistent still queued soft students"
[ -s "$R/kd/views-erase50.h5" ] && [ -s "$R/kd/erase50-s3.report.json" ] && [ -s "$R/kd/summary-erase50.md" ] ||
    fail "--recipe did not write its own views, students and summary"
stdout_has "| consistent (erase50) |"
ok "--recipe compares another consistent recipe in the same folder"
