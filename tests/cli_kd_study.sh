#!/bin/sh
# cli_kd_study.sh: scripts/kd_study.sh end to end on a small synthetic
# task (600 images of Fashion-MNIST's shape, a teacher trained for one
# epoch, the quick profile, two seeds, two jobs at a time): the views file,
# a soft and a consistent student per seed with their INT8 twins and the
# consistent chain to a device file, the summary table, and a second run
# that finds everything up to date.
set -eu
. "$EVIT_SRC/tests/lib.sh"
PY=/usr/bin/python3
[ -x "$PY" ] || skip "/usr/bin/python3 is needed to write test inputs"

R=$T/run
mkdir -p "$R"
"$PY" "$EVIT_SRC/tests/mkdata.py" "$T/img.gz" "$T/lab.gz" 600 28 10
succeeds "$EVIT_BIN/evit-data" import --idx "$T/img.gz" "$T/lab.gz" -o "$R/train.h5"
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
for f in views.h5 soft-s3.quantize.report.json soft-s4.quantize-attention.report.json \
    consistent-s3.report.json consistent-s4.device.evit consistent-s4.device.report.json summary.md; do
    [ -s "$R/kd/$f" ] || fail "kd_study.sh did not write kd/$f"
done
grep -q '"views"' "$R/kd/views.report.json" || fail "the views report lacks its views section"
stdout_has "| consistent, device file (.evit) |"
# every row has two seeds, a mean, an sd and a range: numbers, no dashes
grep '^| consistent (student-consistent.json) |' "$R/kd/summary.md" | grep -q -- ' - |' &&
    fail "a consistent student's top-1 is missing: $(cat "$R/kd/summary.md")"
grep -q '^| teacher |.*| 0.00 | 0.00 |$' "$R/kd/summary.md" || fail "the teacher row is off: $(cat "$R/kd/summary.md")"
ok "kd_study.sh saves the views, trains soft and consistent students per seed, quantizes them and tabulates"

touch -d '1 minute ago' "$R/kd/summary.md"
succeeds env EVIT_BIN="$EVIT_BIN" "$EVIT_SRC/scripts/kd_study.sh" --out "$R" --seeds "3 4" --jobs 2
stderr_has "up to date"
[ "$R/kd/consistent-s3.report.json" -ot "$R/kd/summary.md" ] || fail "the second run trained again"
ok "a second run finds the views and students up to date"
