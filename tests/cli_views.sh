#!/bin/sh
# cli_views.sh: consistent distillation from the command line.  evit-eval
# --augment saves a teacher's logits of augmented views (dense and top-k,
# with their storage per image per epoch; a segmentation teacher's top-k per
# patch), evit-distill replays them, and a recipe whose augmentation differs
# from the views' is refused in one line.
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

# --- a segmentation teacher's views: saved per patch as top-k, replayed
# with their masks by a student of another grid, a recipe of other views
# refused, and a teacher without views still refused beside crops or flips
succeeds "$DATA" scenes "$T/all.h5" -o "$T/sc.h5" --count 48 --size 32 --scale 0.5,1 --seed 1 -q
segrecipe() { # FILE TYPE PATCH DIM CROP FLIP EPOCHS
    printf '{"model":{"name":"seg-mini","img_size":32,"channels":1,"patch":%s,"num_classes":11,"embed_dim":%s,"depth":1,"num_heads":2,"mlp_hidden":32,"head":"seg_linear"},"epochs":%s,"batch_size":16,"seed":3,"optimizer":{"type":"adamw","lr":0.003},"schedule":{"warmup_epochs":0.5},"augment":{"crop_padding":%s,"hflip":%s,"seed":7},"distill":{"type":"%s","alpha":0.5,"temperature":2}}\n' \
        "$3" "$4" "$7" "$5" "$6" "$2" >"$1"
}
segrecipe "$T/segt.json" none 8 32 0 false 1
succeeds "$D" "$T/segt.json" --data "$T/sc.h5" -o "$T/segt.h5" -q --threads 2
segrecipe "$T/segs.json" soft 4 16 3 true 2
fails_with 1 "$EVAL" "$T/segt.h5" "$T/sc.h5" --save-logits "$T/x.h5" --augment "$T/segs.json" --epochs 2
stderr_has "views are kept as their top-k per patch: give --topk between 1 and 11"
sed 's/"seed":7}/"seed":7,"erase":{"prob":0.5}}/' "$T/segs.json" >"$T/segs-erase.json"
fails_with 1 "$EVAL" "$T/segt.h5" "$T/sc.h5" --save-logits "$T/x.h5" --augment "$T/segs-erase.json" --topk 3
stderr_has "random erasing"
[ ! -e "$T/x.h5" ] || fail "a refused evaluation wrote its logits"
succeeds "$EVAL" "$T/segt.h5" "$T/sc.h5" --save-logits "$T/segv.h5" --augment "$T/segs.json" --epochs 2 --topk 3 \
    -q --threads 2 --report "$T/segv.json"
# 16 patches of 3 classes kept, 3 bytes each
stdout_has "2 views of 48 images (crop_padding 3, hflip 1, seed 7), top-k, 144 bytes per image per epoch"
grep -q '"bytes_per_image_per_epoch":[[:space:]]*144' "$T/segv.json" || fail "the report lacks the views' storage"
grep -q '"miou":' "$T/segv.json" || fail "the views' evaluation report lacks the mIoU"
succeeds "$PY" -c 'import h5py, sys
f = h5py.File(sys.argv[1], "r")
assert f["views/topk/indices"].shape == (2, 48, 16, 3) and f["views/topk/indices"].dtype == "uint8"
assert f["views/topk/values"].shape == (2, 48, 16, 3) and f["views/topk/values"].dtype == "uint16"
assert f["logits"].shape == (48, 16, 11) and int(f.attrs["format_version"][0]) == 4
assert int(f.attrs["views_topk"][0]) == 3 and int(f.attrs["grid"][0]) == 4' "$T/segv.h5"
ok "evit-eval saves a segmentation teacher's views as top-k per patch (144 bytes per image per epoch here)"

# the student has patch 4 (an 8x8 grid) against the teacher's 4x4
succeeds "$D" "$T/segs.json" --data "$T/sc.h5" --val "$T/sc.h5" --teacher "$T/segv.h5" -o "$T/segs.h5" \
    --report "$T/segs.report.json" --threads 2
stderr_has "replaying 2 augmented views per image"
stdout_has "validation mIoU"
grep -q '"teacher_logits":' "$T/segs.report.json" || fail "the student's report does not name its teacher"
grep -q '"epochs":[[:space:]]*2' "$T/segs.report.json" || fail "the student did not train 2 epochs"
segrecipe "$T/segs3.json" soft 4 16 3 true 3
succeeds "$D" "$T/segs3.json" --data "$T/sc.h5" --teacher "$T/segv.h5" -o "$T/segs3.h5" -q --threads 2
# stopped after epoch 1 (3 steps of 16), then resumed: the same weights
succeeds "$D" "$T/segs3.json" --data "$T/sc.h5" --teacher "$T/segv.h5" -o "$T/segp.h5" -q --threads 2 --steps 3
succeeds "$D" "$T/segs3.json" --data "$T/sc.h5" --teacher "$T/segv.h5" -o "$T/segp.h5" -q --threads 2 --resume
h5diff -q "$T/segs3.h5" "$T/segp.h5" /blocks /blocks >/dev/null 2>&1 || fail "resumed weights differ from an uninterrupted run"
h5diff -q "$T/segs3.h5" "$T/segp.h5" /head /head >/dev/null 2>&1 || fail "resumed head differs from an uninterrupted run"
ok "evit-distill replays a segmentation teacher's views with their masks, cycles past them, and resumes to the same weights"

segrecipe "$T/segs-other.json" soft 4 16 2 true 2
fails_with 1 "$D" "$T/segs-other.json" --data "$T/sc.h5" --teacher "$T/segv.h5" -o "$T/x.h5" -q
stderr_has "segv.h5: its views were drawn with crop_padding 3, hflip 1"
succeeds "$EVAL" "$T/segt.h5" "$T/sc.h5" --save-logits "$T/segplain.h5" -q
fails_with 1 "$D" "$T/segs.json" --data "$T/sc.h5" --teacher "$T/segplain.h5" -o "$T/x.h5" -q
stderr_has "crops or flips with a teacher whose logits have no views"
[ ! -e "$T/x.h5" ] || fail "a refused run wrote a model"
ok "a recipe of other views, or crops and flips beside a segmentation teacher without views, are refused"
