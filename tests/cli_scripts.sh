#!/bin/sh
# cli_scripts.sh: the scripts in scripts/ share their option handling
# (scripts/lib.sh): --help prints the header, unknown arguments and missing
# values are usage errors (exit 2), missing inputs are one line and exit 1.
# Nothing here trains: the scripts stop before their first stage.
set -eu
. "$EVIT_SRC/tests/lib.sh"

S="$EVIT_SRC/scripts"
for s in pipeline distill_study iterative_prune kd_study seg_study; do
    succeeds sh "$S/$s.sh" --help
    stdout_has "$s.sh"
    fails_with 2 sh "$S/$s.sh" --bogus
    stderr_has "$s.sh: unknown argument --bogus"
    fails_with 2 sh "$S/$s.sh" --out
    stderr_has "$s.sh:"
done
fails_with 2 sh "$S/pipeline.sh" --profile huge
stderr_has "--profile is quick or full"
fails_with 2 sh "$S/distill_study.sh" --profile huge
fails_with 2 sh "$S/seg_study.sh" --profile huge
stderr_has "--profile is quick or full"
fails_with 2 sh "$S/iterative_prune.sh" --profile full
stderr_has "unknown argument --profile"
fails_with 2 sh "$S/iterative_prune.sh" --rounds 0
stderr_has "--rounds wants a positive count"
ok "scripts/: --help, unknown options and missing values (exit 2), each one line naming the script"

mkdir "$T/empty"
fails_with 1 sh "$S/distill_study.sh" --out "$T/empty"
stderr_has "error: $T/empty/train.h5: missing"
fails_with 1 sh "$S/iterative_prune.sh" --run "$T/empty"
stderr_has "error: $T/empty/student.h5: missing"
[ -z "$(ls "$T/empty")" ] || fail "a refused script left files behind"
ok "scripts/: missing inputs are one line naming the file, exit 1, nothing written"

# --- the whole pipeline on a small stand-in for Fashion-MNIST, with a given
# (untrained) teacher: every stage runs and the comparison names them all
fails_with 1 sh "$S/pipeline.sh" --teacher "$T/nothing.h5" --out "$T/empty"
stderr_has "error: $T/nothing.h5: missing"
[ -z "$(ls "$T/empty")" ] || fail "a refused pipeline left files behind"
needs_python
mkdir "$T/fm"
"$PY" "$EVIT_SRC/tests/mkdata.py" "$T/fm/train-images-idx3-ubyte.gz" "$T/fm/train-labels-idx1-ubyte.gz" 640 28 10
"$PY" "$EVIT_SRC/tests/mkdata.py" "$T/fm/t10k-images-idx3-ubyte.gz" "$T/fm/t10k-labels-idx1-ubyte.gz" 200 28 10
succeeds "$INIT" fm-small -o "$T/t.h5"
FASHION_MNIST="$T/fm" run_cmd sh "$S/pipeline.sh" --teacher "$T/t.h5" --out "$T/run" --threads 1
[ "$rc" -eq 0 ] || fail "the pipeline with a given teacher failed"
stderr_has "teacher: $T/t.h5 (given)"
cmp -s "$T/t.h5" "$T/run/teacher.h5" || fail "the given teacher was not used as it is"
for f in teacher.report.json teacher.logits.h5 student.h5 pruned.h5 finetuned.h5 student.q8.evit export.report.json \
    merged.h5 merged-ft.h5 merged.q8.evit merged-export.report.json compare.png; do
    [ -s "$T/run/$f" ] || fail "the pipeline did not write $f"
done
grep -q '"stage":[[:space:]]*"teacher"' "$T/run/teacher.report.json" || fail "the given teacher's report is not the teacher stage"
# the merged device file: at most 70 % of the fine-tuned student's MFLOPs
awk -v a="$(num mflops "$T/run/merged-export.report.json")" -v b="$(num mflops "$T/run/finetuned.report.json")" 'BEGIN { exit !(a > 0 && a <= 0.7 * b) }' ||
    fail "the merged device file has $(num mflops "$T/run/merged-export.report.json") MFLOPs, not 70 % of $(num mflops "$T/run/finetuned.report.json")"
grep -q '"merge_r"' "$T/run/merged.report.json" || fail "the merge stage's report has no schedule"
# a second run finds everything up to date
FASHION_MNIST="$T/fm" run_cmd sh "$S/pipeline.sh" --teacher "$T/t.h5" --out "$T/run" --threads 1
[ "$rc" -eq 0 ] || fail "the second pipeline run failed"
[ "$(grep -c 'up to date' "$T/err")" -ge 11 ] || fail "the second run redid finished stages"
ok "pipeline.sh --teacher FILE runs every stage from a given teacher (the merge branch at 70 % of the MFLOPs included), and a rerun skips them"

# --- the segmentation chain, small: the scripts and configs copied beside
# recipes of one short epoch, 64 training and 16 test scenes
fails_with 2 sh "$S/pipeline.sh" --task seg --seed x
stderr_has "--seed takes a whole number"
fails_with 2 sh "$S/pipeline.sh" --seed 1
stderr_has "--seed and --control go with --task seg"
fails_with 2 sh "$S/pipeline.sh" --task detect
stderr_has "--task is class or seg"
mkdir -p "$T/top"
cp -R "$EVIT_SRC/scripts" "$EVIT_SRC/configs" "$T/top/"
for r in seg-teacher seg-student seg-student-masks finetune; do
    sed 's/"epochs": [0-9]*/"epochs": 1/; s/"batch_size": [0-9]*/"batch_size": 16/' "$EVIT_SRC/configs/fmnist/$r.json" \
        >"$T/top/configs/fmnist/$r.json"
done
EVIT_SEG_SCENES="64 16" FASHION_MNIST="$T/fm" EVIT_BIN="$EVIT_BIN" run_cmd sh "$T/top/scripts/pipeline.sh" --task seg \
    --seed 3 --out "$T/seg" --threads 1 --control
[ "$rc" -eq 0 ] || { cat "$T/err" >&2; fail "the segmentation pipeline failed"; }
for f in teacher.report.json student.report.json control.report.json pruned.report.json finetuned.report.json \
    quantized.report.json export.report.json student.q8.evit compare.png; do
    [ -s "$T/seg/$f" ] || fail "the segmentation pipeline did not write $f"
done
grep -q '"seed":[[:space:]]*3' "$T/seg/student.report.json" || fail "--seed 3 did not reach the student"
grep -q 'mIoU %' "$T/out" || fail "the segmentation comparison has no mIoU column"
grep -q '^chain 1: 6 reports' "$T/out" || fail "the comparison has no chain of the six stages from the teacher"
grep -q 'control' "$T/out" || fail "the comparison leaves out the control"
EVIT_SEG_SCENES="64 16" FASHION_MNIST="$T/fm" EVIT_BIN="$EVIT_BIN" run_cmd sh "$T/top/scripts/pipeline.sh" --task seg \
    --seed 3 --out "$T/seg" --threads 1 --control
[ "$rc" -eq 0 ] && [ "$(grep -c 'up to date' "$T/err")" -ge 10 ] || fail "the second segmentation run redid finished stages"
ok "pipeline.sh --task seg runs the segmentation chain to the device file, its control on the masks alone and the comparison; --seed reaches the training; a rerun skips it"

# --- seg_study.sh over that run: the seed's folder is the pipeline's, so
# every stage is up to date and the study only runs the checks and the table
fails_with 2 sh "$S/seg_study.sh" --jobs 0
stderr_has "--jobs takes a positive whole number"
fails_with 2 sh "$S/seg_study.sh" --seeds "1 x"
stderr_has "--seeds takes whole numbers, not 'x'"
mkdir -p "$T/study"
mv "$T/seg" "$T/study/s3"
EVIT_SEG_SCENES="64 16" FASHION_MNIST="$T/fm" EVIT_BIN="$EVIT_BIN" run_cmd sh "$T/top/scripts/seg_study.sh" \
    --seeds 3 --out "$T/study" --jobs 1
[ "$rc" -eq 0 ] || { cat "$T/err" >&2; fail "seg_study.sh failed"; }
[ "$(grep -c 'up to date' "$T/study/s3.log")" -ge 10 ] || fail "seg_study.sh redid the seed's finished stages"
dev=$(num miou "$T/study/s3/export.report.json")
ft=$(num miou "$T/study/s3/finetuned.report.json")
want=$(awk -v a="$dev" 'BEGIN { printf "%.2f", a }')
grep -q "^| student, device file (.evit, libevrt) | $want | $want | 0.00 | 0.00 |" "$T/study/summary.md" ||
    fail "the summary's device-file row does not hold its report's mIoU $want"
want=$(awk -v a="$dev" -v b="$ft" 'BEGIN { printf "%.2f", a - b }')
grep -q "^| device file - its float model | $want |" "$T/study/summary.md" ||
    fail "the summary's INT8 check is not the device file's mIoU less the fine-tuned model's ($want)"
grep -q "^| Dice % | seed 3 |" "$T/study/summary.md" || fail "the summary has no Dice table"
grep -q "^distillation: the distilled student beats the control in [01] of 1 seeds$" "$T/out" ||
    fail "seg_study.sh does not say whether distillation beat the control"
grep -q "^INT8: the device file is within 1.0 mIoU point of its float model in [01] of 1 seeds" "$T/out" ||
    fail "seg_study.sh does not say whether INT8 held within 1 mIoU point"
ok "seg_study.sh runs the chain per seed (here found up to date), tabulates mIoU and Dice per stage and checks distillation and INT8"
