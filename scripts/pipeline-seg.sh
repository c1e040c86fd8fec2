# scripts/pipeline-seg.sh: the segmentation chain of scripts/pipeline.sh
# --task seg (docs/SEGMENT.md); sourced by it after its options, with top,
# bin, out, prof, profile, threads, seed and control (both may be empty)
# and fm set.  Every step is skipped when
# its output is newer than its inputs; a failing step stops the chain.
cfg=$top/configs/fmnist
seed_opt=${seed:+--seed $seed}
# scenes per split: enough that the quick profile learns the items' shapes
if [ "$profile" = quick ]; then n_train=8000 n_test=1000; else n_train=10000 n_test=2000; fi
# EVIT_SEG_SCENES="N_TRAIN N_TEST" overrides them (the tests' small runs)
if [ -n "${EVIT_SEG_SCENES:-}" ]; then
    set -- $EVIT_SEG_SCENES
    [ $# -eq 2 ] && [ "$1" -gt 0 ] 2>/dev/null && [ "$2" -gt 0 ] 2>/dev/null ||
        usage_fail "EVIT_SEG_SCENES takes two positive counts, not '$EVIT_SEG_SCENES'"
    n_train=$1 n_test=$2
fi

stage "import Fashion-MNIST"
for split in train t10k; do
    name=$([ "$split" = train ] && echo items-train || echo items-test)
    if fresh "$out/$name.h5" "$fm/$split-images-idx3-ubyte.gz"; then echo "up to date" >&2; else
        "$bin/evit-data" import --idx "$fm/$split-images-idx3-ubyte.gz" "$fm/$split-labels-idx1-ubyte.gz" \
            --names fashion-mnist -o "$out/$name.h5"
    fi
done

stage "scenes: $n_train training scenes from the train split, $n_test test scenes from the test split (96x96)"
if fresh "$out/train.h5" "$out/items-train.h5"; then echo "up to date" >&2; else
    "$bin/evit-data" scenes "$out/items-train.h5" --count "$n_train" --size 96 --seed 1 -o "$out/train.h5"
fi
if fresh "$out/test.h5" "$out/items-test.h5"; then echo "up to date" >&2; else
    "$bin/evit-data" scenes "$out/items-test.h5" --count "$n_test" --size 96 --seed 2 -o "$out/test.h5"
fi

# shellcheck disable=SC2086
stage "teacher: seg-fm-tiny on the masks ($profile profile)"
if fresh "$out/teacher.report.json" "$out/train.h5" "$out/test.h5" "$cfg/seg-teacher.json"; then echo "up to date" >&2; else
    "$bin/evit-distill" "$cfg/seg-teacher.json" $prof $seed_opt --data "$out/train.h5" --val "$out/test.h5" \
        -o "$out/teacher.h5" --report "$out/teacher.report.json" --stage teacher --resume --latency 200 $threads
fi

stage "teacher per-patch logits over the training scenes"
if fresh "$out/teacher.logits.h5" "$out/teacher.h5"; then echo "up to date" >&2; else
    "$bin/evit-eval" "$out/teacher.h5" "$out/train.h5" --save-logits "$out/teacher.logits.h5" \
        --report "$out/teacher.train.report.json" $threads
fi

stage "student: seg-fm-mini distilled pixel-wise from the teacher's logits"
if fresh "$out/student.report.json" "$out/teacher.logits.h5" "$out/test.h5" "$cfg/seg-student.json"; then echo "up to date" >&2; else
    "$bin/evit-distill" "$cfg/seg-student.json" $prof $seed_opt --data "$out/train.h5" --teacher "$out/teacher.logits.h5" \
        --val "$out/test.h5" -o "$out/student.h5" --report "$out/student.report.json" --stage student --resume \
        --latency 200 $threads
fi

# the control: the same student on the masks alone (full profile, or
# --control), so that a run says what the teacher's logits are worth
if [ "$profile" = full ] || [ -n "$control" ]; then
    stage "control: seg-fm-mini on the masks alone (no teacher)"
    if fresh "$out/control.report.json" "$out/train.h5" "$out/test.h5" "$cfg/seg-student-masks.json"; then
        echo "up to date" >&2
    else
        "$bin/evit-distill" "$cfg/seg-student-masks.json" $prof $seed_opt --data "$out/train.h5" --val "$out/test.h5" \
            -o "$out/control.h5" --report "$out/control.report.json" --stage control --resume $threads
    fi
fi

# the mild prune (Taylor importance from the pixel loss), the fine-tune,
# INT8, the .evit and its mIoU and latency up to the mask
# shellcheck disable=SC2086
student_chain mIoU $seed_opt

stage "compare the stages"
# shellcheck disable=SC2046
"$bin/evit-report" compare "$out/teacher.report.json" "$out/student.report.json" "$out/pruned.report.json" \
    "$out/finetuned.report.json" "$out/quantized.report.json" "$out/export.report.json" \
    $([ -e "$out/control.report.json" ] && echo "$out/control.report.json") --png "$out/compare.png"
echo "chart: $out/compare.png" >&2

printf '\npipeline --task seg (%s) done: outputs in %s\n' "$profile" "$out" >&2
