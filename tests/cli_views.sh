#!/bin/sh
# cli_views.sh: consistent distillation from the command line.  evit-eval
# --augment saves a teacher's logits of augmented views (dense and top-k,
# with their storage per image per epoch), evit-distill replays them, and
# a recipe whose augmentation differs from the views' is refused in one line.
set -eu
. "$EVIT_SRC/tests/lib.sh"

needs_python

synth_data "$T/all.h5" 600 28 10
model=$(mini_model 2)
recipe() { # FILE TYPE CROP SEED
    printf '{"model":%s,"epochs":3,"batch_size":64,"seed":%s,"optimizer":{"type":"adamw","lr":0.003,"weight_decay":0.05},"schedule":{"warmup_epochs":0.5,"min_lr":0.0001},"augment":{"crop_padding":%s,"hflip":true},"distill":{"type":"%s","alpha":0.5,"temperature":2}}\n' \
        "$model" "$4" "$3" "$2" >"$1"
}
recipe "$T/teacher.json" none 2 5
succeeds "$D" "$T/teacher.json" --data "$T/all.h5" -o "$T/teacher.h5" -q --threads 2
recipe "$T/student.json" soft 2 5

fails_with 2 "$EVAL" "$T/teacher.h5" "$T/all.h5" --augment "$T/student.json"
fails_with 2 "$EVAL" "$T/teacher.h5" "$T/all.h5" --save-logits "$T/x.h5" --epochs 2
ok "--augment needs --save-logits, and --epochs and --topk need --augment"

succeeds "$EVAL" "$T/teacher.h5" "$T/all.h5" --save-logits "$T/dense.h5" --augment "$T/student.json" --epochs 2 \
    -q --threads 2 --report "$T/dense.json"
stdout_has "2 views of 600 images (crop_padding 2, hflip 1, seed 5), dense, 40 bytes per image per epoch"
grep -q '"bytes_per_image_per_epoch":[[:space:]]*40' "$T/dense.json" || fail "the report lacks the views' storage"
succeeds "$EVAL" "$T/teacher.h5" "$T/all.h5" --save-logits "$T/top10.h5" --augment "$T/student.json" --epochs 2 \
    --topk 10 -q --threads 2
stdout_has "top-k, 30 bytes per image per epoch"
echo "# storage per image per epoch: dense 40 bytes, top-10 30 bytes (at most 48 asked)"
ok "evit-eval saves dense and top-k views with their storage per image per epoch"

for l in dense top10; do
    succeeds "$D" "$T/student.json" --data "$T/all.h5" --teacher "$T/$l.h5" -o "$T/s_$l.h5" --threads 2
    stderr_has "replaying 2 augmented views per image"
done
ok "evit-distill replays dense and top-k views (3 epochs over 2 views: it cycles)"

recipe "$T/other.json" soft 3 5
fails_with 1 "$D" "$T/other.json" --data "$T/all.h5" --teacher "$T/dense.h5" -o "$T/x.h5" -q
stderr_has "dense.h5: its views were drawn with crop_padding 2"
recipe "$T/reseeded.json" soft 2 6
fails_with 1 "$D" "$T/reseeded.json" --data "$T/all.h5" --teacher "$T/dense.h5" -o "$T/x.h5" -q
[ ! -e "$T/x.h5" ] || fail "a refused run wrote a model"
# another run seed replays the same views when augment.seed names theirs
sed 's/"hflip":true}/"hflip":true,"seed":5}/' "$T/reseeded.json" >"$T/seed6.json"
succeeds "$D" "$T/seed6.json" --data "$T/all.h5" --teacher "$T/dense.h5" -o "$T/s6.h5" -q --threads 2 --steps 3
ok "a recipe with another augmentation or views seed than the views' is refused before training; augment.seed lets another run seed replay them"

# random erasing: recorded with the views, replayed, and a recipe without it refused
sed 's/"hflip":true}/"hflip":true,"erase":{"prob":0.5}}/' "$T/student.json" >"$T/erase.json"
succeeds "$EVAL" "$T/teacher.h5" "$T/all.h5" --save-logits "$T/erase.h5" --augment "$T/erase.json" --epochs 1 \
    --topk 5 -q --threads 2
stdout_has "(crop_padding 2, hflip 1, erase 0.5 area [0.02, 0.33] ratio [0.3, 3.3], seed 5)"
h5dump -a views_erase "$T/erase.h5" >/dev/null 2>&1 || fail "the views file lacks views_erase"
succeeds "$D" "$T/erase.json" --data "$T/all.h5" --teacher "$T/erase.h5" -o "$T/s_erase.h5" --threads 2 --steps 3
stderr_has "replaying 1 augmented view per image"
fails_with 1 "$D" "$T/student.json" --data "$T/all.h5" --teacher "$T/erase.h5" -o "$T/x.h5" -q
stderr_has "erase.h5: its views were drawn with crop_padding 2, hflip 1, erase 0.5"
ok "views with random erasing record it, replay, and refuse a recipe without it"

# --- every stage can put its batch-1 latency in its report (the chart's latency panel)
succeeds "$D" "$T/teacher.json" --data "$T/all.h5" -o "$T/lt.h5" -q --threads 2 --steps 3 --latency 5 --report "$T/lt.json"
grep -q '"latency_ms":[[:space:]]*[0-9]' "$T/lt.json" || fail "evit-distill --latency wrote no latency_ms"
succeeds "$EVIT_BIN/evit-prune" "$EVIT_SRC/configs/fmnist/prune-mild.json" "$T/teacher.h5" --data "$T/all.h5" \
    -o "$T/lp.h5" --report "$T/lp.json" -q --latency 5
grep -q '"latency_ms":[[:space:]]*[0-9]' "$T/lp.json" || fail "evit-prune --latency wrote no latency_ms"
succeeds "$EVIT_BIN/evit-quantize" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/teacher.h5" --calib "$T/all.h5" \
    --val "$T/all.h5" -o "$T/lq.h5" --report "$T/lq.json" -q --latency 5
grep -q '"latency_ms":[[:space:]]*[0-9]' "$T/lq.json" || fail "evit-quantize --latency wrote no latency_ms"
fails_with 2 "$D" "$T/teacher.json" --data "$T/all.h5" -o "$T/lt.h5" --latency 0
ok "evit-distill, evit-prune and evit-quantize --latency N report batch-1 latency through libevrt"
