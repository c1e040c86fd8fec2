#!/bin/sh
# cli_kd_study.sh: scripts/kd_study.sh end to end on a small synthetic
# task (600 images of Fashion-MNIST's shape, a teacher trained for one
# epoch, the quick profile, two seeds, two jobs at a time): the views file,
# a soft and a consistent student per seed with their INT8 twins and the
# consistent chain to a device file, the summary table, and a second run
# that finds everything up to date.
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
fails_with 1 "$EVIT_SRC/scripts/kd_study.sh" --out "$T/nowhere"
ok "bad arguments exit 2 and a run folder without a teacher is refused"

succeeds env EVIT_BIN="$EVIT_BIN" "$EVIT_SRC/scripts/kd_study.sh" --out "$R" --seeds "3 4" --jobs 2
for f in views-student-consistent.h5 soft-s3.quantize.report.json soft-s4.quantize-attention.report.json \
    student-consistent-s3.report.json student-consistent-s4.device.evit student-consistent-s4.device.report.json \
    summary-student-consistent.md; do
    [ -s "$R/kd/$f" ] || fail "kd_study.sh did not write kd/$f"
done
grep -q '"views"' "$R/kd/views-student-consistent.report.json" || fail "the views report lacks its views section"
stdout_has "| consistent, device file (.evit) |"
# the merged device files: 30 % fewer MFLOPs, off the shelf and fine-tuned
for f in student-consistent-s3.merged.device.evit student-consistent-s4.merged-ft.device.report.json; do
    [ -s "$R/kd/$f" ] || fail "kd_study.sh did not write kd/$f"
done
grep '^| consistent, merged + fine-tuned, device file |' "$R/kd/summary-student-consistent.md" | grep -q -- ' - |' &&
    fail "a merged device file's top-1 is missing: $(cat "$R/kd/summary-student-consistent.md")"
grep -q '"merge_r"' "$R/kd/student-consistent-s3.merged.report.json" || fail "the merge report has no schedule"
# every row has two seeds, a mean, an sd and a range: numbers, no dashes
grep '^| consistent (student-consistent) |' "$R/kd/summary-student-consistent.md" | grep -q -- ' - |' &&
    fail "a consistent student's top-1 is missing: $(cat "$R/kd/summary-student-consistent.md")"
grep -q '^| teacher |.*| 0.00 | 0.00 |$' "$R/kd/summary-student-consistent.md" || fail "the teacher row is off: $(cat "$R/kd/summary-student-consistent.md")"
ok "kd_study.sh saves the views, trains soft and consistent students per seed, quantizes them, merges the device chain's tokens and tabulates"

touch -d '1 minute ago' "$R/kd/summary-student-consistent.md"
succeeds env EVIT_BIN="$EVIT_BIN" "$EVIT_SRC/scripts/kd_study.sh" --out "$R" --seeds "3 4" --jobs 2
stderr_has "up to date"
[ "$R/kd/student-consistent-s3.report.json" -ot "$R/kd/summary-student-consistent.md" ] || fail "the second run trained again"
ok "a second run finds the views and students up to date"

# another recipe: its own views and students beside the first
sed 's/"prob": 0.25/"prob": 0.5/' "$EVIT_SRC/configs/fmnist/student-consistent.json" >"$T/erase50.json"
succeeds env EVIT_BIN="$EVIT_BIN" "$EVIT_SRC/scripts/kd_study.sh" --out "$R" --seeds "3" --jobs 2 --recipe "$T/erase50.json"
[ -s "$R/kd/views-erase50.h5" ] && [ -s "$R/kd/erase50-s3.report.json" ] && [ -s "$R/kd/summary-erase50.md" ] ||
    fail "--recipe did not write its own views, students and summary"
stdout_has "| consistent (erase50) |"
ok "--recipe compares another consistent recipe in the same folder"
