#!/bin/sh
# cli_prune.sh: evit-prune end to end on a small trained model: the pruned
# checkpoint, its report and lineage, loading it in evit-eval and fine-tuning
# it with evit-distill --init, ratio 0 changing nothing, the taylor criterion,
# per-block overrides, segmentation models (a seg_mlp decoder's width
# included), and the configs and inputs it must refuse.
set -eu
. "$EVIT_SRC/tests/lib.sh"

needs_python

succeeds "$P" --help; stdout_has "usage: evit-prune"
fails_with 2 "$P"
fails_with 2 "$P" c.json m.h5 --report r.json
fails_with 2 "$P" c.json m.h5 -o p.h5
fails_with 2 "$P" c.json m.h5 -o p.h5 --report r.json --threads 0
ok "help exits 0 and usage errors exit 2"

synth_data "$T/all.h5" 1200 28 10
synth_data "$T/val.h5" 300 28 10

# a small model, trained for a few epochs so that pruning has something to lose
train_mini 3 4

# --- half the heads and half the channels
printf '{"criterion":"l2","scope":"global","heads_ratio":0.5,"mlp_ratio":0.5,"mlp_multiple":8}\n' >"$T/half.json"
succeeds "$P" "$T/half.json" "$T/m.h5" -o "$T/p.h5" --report "$T/p.report.json" --val "$T/val.h5" -q
stdout_has "19658 -> 11306 parameters"
stdout_has "heads 8 -> 4, MLP channels 128 -> 64"
stdout_has "top-1"
succeeds "$DATA" info "$T/p.h5"
stdout_has "params: 11306"
stdout_has "block 0: heads 2, head_dim 8, mlp 32"
stdout_has "stage: prune"
for key in '"stage":	"prune"' '"params":	11306' '"mflops":' '"top1":' '"heads_kept":' '"heads_removed":' \
    '"mlp_kept":' '"mlp_removed":' '"params_before":	19658' '"params_after":	11306' '"mflops_before":' \
    '"mflops_after":' '"val_top1_before":' '"val_top1_after":' '"criterion":	"l2"' '"prune_config_file":'; do
    grep -qF "$key" "$T/p.report.json" || fail "report lacks $key"
done
grep -qF "\"parent\":	\"$T/m.report.json\"" "$T/p.report.json" || fail "report does not name the input's report as parent"
ok "pruning half the heads and channels writes a smaller checkpoint and a complete report"

# the checkpoint is an ordinary model: evit-eval agrees with the report
succeeds "$EVAL" "$T/p.h5" "$T/val.h5" --report "$T/pe.json" -q
got=$(sed -n 's/.*top-1 \([0-9.]*\)%.*/\1/p' "$T/out")
want=$(sed -n 's/^	"top1":[[:space:]]*\([0-9.]*\).*/\1/p' "$T/p.report.json" | head -n 1)
awk -v g="$got" -v w="$want" 'BEGIN { d = g - w; exit !(d < 0.006 && d > -0.006) }' \
    || fail "evit-eval gives top-1 $got%, the prune report $want%"
grep -qF "\"parent\":	\"$T/p.report.json\"" "$T/pe.json" || fail "evaluating the pruned checkpoint loses its lineage"
# and evit-distill --init fine-tunes it in its pruned shape
succeeds "$D" "$T/recipe.json" --data "$T/all.h5" --init "$T/p.h5" -o "$T/ft.h5" --steps 10 -q
succeeds "$DATA" info "$T/ft.h5"
stdout_has "params: 11306"
ok "the pruned checkpoint loads in evit-eval (top-1 $got%) and fine-tunes with evit-distill --init"

# ... and goes on through evit-quantize and evit-export to the runtime
printf '{"calibrator":"minmax","calib_images":64,"max_drop":100}\n' >"$T/q.json"
succeeds "$EVIT_BIN/evit-quantize" "$T/q.json" "$T/p.h5" --calib "$T/all.h5" --val "$T/val.h5" -o "$T/p.q8.h5" --report "$T/pq.json" -q --threads 1
succeeds "$EVIT_BIN/evit-export" "$T/p.q8.h5" -o "$T/p.evit" -q
succeeds "$EVAL" "$T/p.evit" "$T/val.h5" -q
qtop=$(sed -n 's/^[[:space:]]*"top1":[[:space:]]*\([0-9.]*\).*/\1/p' "$T/pq.json" | head -n 1)
stdout_has "top-1 $(printf '%.2f' "$qtop")%"
succeeds "$EVIT_BIN/evit-run" "$T/p.evit" --bench --runs 3 --warmup 1
ok "the pruned model quantizes, exports and runs on the runtime with the quantized accuracy"

# --- ratio 0: the same model, the same logits bit for bit
printf '{"heads_ratio":0,"mlp_ratio":0}\n' >"$T/none.json"
succeeds "$P" "$T/none.json" "$T/m.h5" -o "$T/same.h5" --report "$T/same.json" -q
stdout_has "19658 -> 19658 parameters"
succeeds "$EVAL" "$T/m.h5" "$T/val.h5" --save-logits "$T/l0.h5" -q --threads 1
succeeds "$EVAL" "$T/same.h5" "$T/val.h5" --save-logits "$T/l1.h5" -q --threads 1
if command -v h5diff >/dev/null 2>&1; then
    h5diff -q "$T/l0.h5" "$T/l1.h5" logits logits >/dev/null 2>&1 || fail "ratio 0 changed the logits"
    h5diff -q "$T/m.h5" "$T/same.h5" /blocks /blocks >/dev/null 2>&1 || fail "ratio 0 changed the weights"
fi
ok "ratio 0 prunes nothing and gives the same logits"

# --- taylor, layer scope and overrides
printf '{"criterion":"taylor","scope":"layer","heads_ratio":0.25,"mlp_ratio":0.25,"taylor_batches":2,"blocks":{"1":{"heads_keep":1,"mlp_keep":20}}}\n' >"$T/taylor.json"
succeeds "$P" "$T/taylor.json" "$T/m.h5" -o "$T/t.h5" --report "$T/t.json" --data "$T/all.h5" -q
succeeds "$DATA" info "$T/t.h5"
stdout_has "block 0: heads 3, head_dim 8, mlp 48"
stdout_has "block 1: heads 1, head_dim 8, mlp 20"
grep -qF '"train_data":' "$T/t.json" || fail "a taylor report does not name its training data"
ok "taylor importance with the layer scope and a per-block override"

# --- refusals: one line naming the file and key, exit 1, nothing written
refuse() { # refuse JSON TEXT [extra args]  (fails_with sets $want: use another name)
    printf '%s\n' "$1" >"$T/bad.json"
    expect=$2
    shift 2
    fails_with 1 "$P" "$T/bad.json" "$T/m.h5" -o "$T/x.h5" --report "$T/x.json" "$@"
    stderr_has "$expect"
    [ ! -e "$T/x.h5" ] && [ ! -e "$T/x.json" ] || fail "an output was written for a refused config"
}
refuse '{"heads_ratio":1.0}' "bad.json: heads_ratio: 1 would remove everything"
refuse '{"mlp_ratio":1}' "bad.json: mlp_ratio: 1 would remove everything"
refuse '{"head_ratio":0.5}' "bad.json: head_ratio: unknown key"
refuse '{"heads_ratio":"half"}' "bad.json: heads_ratio: must be a number"
refuse '{"criterion":"l3"}' "bad.json: criterion: 'l3' is not one of l1, l2, taylor"
refuse '{"blocks":{"2":{"heads_keep":1}}}' "bad.json: blocks.2: the model has 2 blocks (0..1)"
refuse '{"blocks":{"0":{"heads_keep":5}}}' "bad.json: blocks.0.heads_keep: 5 is more than the 4 heads block 0 has"
refuse '{"blocks":{"1":{"mlp_keep":65}}}' "bad.json: blocks.1.mlp_keep: 65 is more than the 64 channels block 1 has"
refuse '{"criterion":"taylor"}' "bad.json: criterion: taylor needs training images (--data TRAIN.h5)"
refuse '{"heads_ratio":0.5' "bad.json: invalid JSON"
ok "bad configs are refused naming the file, the key and the problem"

printf '{"heads_ratio":0.5}\n' >"$T/ok.json"
fails_with 1 "$P" "$T/missing.json" "$T/m.h5" -o "$T/x.h5" --report "$T/x.json"; stderr_has "missing.json"
fails_with 1 "$P" "$T/ok.json" "$T/missing.h5" -o "$T/x.h5" --report "$T/x.json"; stderr_has "missing.h5"
synth_data "$T/other.h5" 50 32 10
fails_with 1 "$P" "$T/ok.json" "$T/m.h5" -o "$T/x.h5" --report "$T/x.json" --val "$T/other.h5"; stderr_has "other.h5"
fails_with 1 "$P" "$T/ok.json" "$T/m.h5" -o "$T/x.h5" --report "$T/nodir/x.json"
[ ! -e "$T/x.h5" ] || fail "a checkpoint was left without its report"
ok "missing files, a dataset of another size and an unwritable report are refused without output"
# --- segmentation: Taylor importance from the pixel loss, magnitude too; the
# pruned model keeps its head and is scored in mIoU
succeeds "$DATA" scenes "$T/all.h5" -o "$T/sc.h5" --count 24 --size 96 --seed 6 -q
succeeds "$INIT" seg-fm-tiny -o "$T/seg.h5" --seed 3 --data "$T/sc.h5"
for crit in taylor l1; do
    printf '{ "criterion": "%s", "heads_ratio": 0.25, "mlp_ratio": 0.3 }\n' "$crit" >"$T/sp.json"
    succeeds "$P" "$T/sp.json" "$T/seg.h5" --data "$T/sc.h5" --val "$T/sc.h5" -o "$T/segp.h5" --report "$T/segp.json"
    stdout_has "mIoU"
    grep -q '"head":[[:space:]]*"seg_linear"' "$T/segp.json" || fail "$crit: the pruned model's report lost its head"
    after=$(num val_miou_after "$T/segp.json")
    succeeds "$EVAL" "$T/segp.h5" "$T/sc.h5" --report "$T/segpe.json" -q
    [ -n "$after" ] && [ "$(num miou "$T/segpe.json")" = "$after" ] ||
        fail "$crit: evit-eval's mIoU $(num miou "$T/segpe.json") of the pruned model is not evit-prune's $after"
    [ "$(num heads_after "$T/segp.json")" -lt "$(num heads_before "$T/segp.json")" ] || fail "$crit: no head was pruned"
done
ok "a segmentation model prunes (Taylor on the pixel loss, and l1), keeps its head and reports mIoU before and after"
fails_with 1 "$P" "$T/sp.json" "$T/seg.h5" -o "$T/x.h5" --report "$T/x.json" --val "$T/val.h5"
stderr_has "segmentation dataset"
ok "a segmentation model with a classification --val is refused in one line"
# --- SegFormer's all-MLP decoder (seg_mlp): its width C (32) prunes with
# the heads and channels, each level and the fuse output keeping their own
# best channels; the pruned model is scored, quantized, exported and run
succeeds "$INIT" seg-fm-tiny-mlp -o "$T/segmlp.h5" --seed 3 --data "$T/sc.h5"
printf '{ "criterion": "taylor", "heads_ratio": 0.25, "mlp_ratio": 0.3, "decoder_ratio": 0.25, "taylor_batches": 1 }\n' >"$T/dp.json"
succeeds "$P" "$T/dp.json" "$T/segmlp.h5" --data "$T/sc.h5" --val "$T/sc.h5" -o "$T/segmlpp.h5" --report "$T/segmlpp.json"
stdout_has "decoder width 32 -> 24"
stdout_has "mIoU"
[ "$(num dim_before "$T/segmlpp.json")" = 32 ] && [ "$(num dim_after "$T/segmlpp.json")" = 24 ] ||
    fail "the report's decoder says $(num dim_before "$T/segmlpp.json") -> $(num dim_after "$T/segmlpp.json"), not 32 -> 24"
for key in '"decoder":' '"levels":' '"fuse":' '"kept":' '"removed":' '"head":	"seg_mlp"' '"decoder_dim":	24'; do
    grep -qF "$key" "$T/segmlpp.json" || fail "the seg_mlp prune report lacks $key"
done
[ "$(num heads_after "$T/segmlpp.json")" -lt "$(num heads_before "$T/segmlpp.json")" ] || fail "seg_mlp: no head was pruned"
succeeds "$DATA" info "$T/segmlpp.h5"
stdout_has "decoder: dim 24, levels 0 1 2 3"
after=$(num val_miou_after "$T/segmlpp.json")
succeeds "$EVAL" "$T/segmlpp.h5" "$T/sc.h5" --report "$T/segmlppe.json" -q
stdout_has "mIoU"
[ -n "$after" ] && [ "$(num miou "$T/segmlppe.json")" = "$after" ] ||
    fail "evit-eval's mIoU $(num miou "$T/segmlppe.json") of the pruned seg_mlp model is not evit-prune's $after"
ok "a seg_mlp model prunes its decoder (32 -> 24) with its heads and channels, and evit-eval agrees with the report (mIoU $(printf '%.2f' "$after")%)"

# decoder_keep is exact: 13, no multiple of 8, through the INT8 path and
# the runtime, whose mIoU is the quantize report's
printf '{ "criterion": "l2", "decoder_keep": 13 }\n' >"$T/dk.json"
succeeds "$P" "$T/dk.json" "$T/segmlp.h5" -o "$T/segk.h5" --report "$T/segk.json" -q
stdout_has "decoder width 32 -> 13"
stdout_has "heads 16 -> 16, MLP channels 1024 -> 1024"
succeeds "$DATA" info "$T/segk.h5"
stdout_has "decoder: dim 13, levels 0 1 2 3"
succeeds "$Q" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/segk.h5" --calib "$T/sc.h5" --val "$T/sc.h5" \
    -o "$T/segk.q8.h5" --report "$T/segkq.json" -q --threads 2
im=$(num int8_miou "$T/segkq.json")
[ -n "$im" ] || fail "the quantize report of the pruned seg_mlp model lacks int8_miou"
succeeds "$X" "$T/segk.q8.h5" -o "$T/segk.evit" -q
succeeds "$EVAL" "$T/segk.evit" "$T/sc.h5" --report "$T/segkx.json" -q
[ "$(num miou "$T/segkx.json")" = "$im" ] ||
    fail "the pruned seg_mlp device file's mIoU $(num miou "$T/segkx.json") is not the INT8 model's $im"
succeeds "$EVIT_BIN/evit-run" "$T/segk.evit" --bench --runs 2 --warmup 1
ok "decoder_keep 13 prunes exactly and the model quantizes, exports and runs (INT8 mIoU $(printf '%.2f' "$im")%)"

# the decoder keys are the seg_mlp head's: a seg_linear model refuses them
printf '{ "decoder_ratio": 0.25 }\n' >"$T/dbad.json"
fails_with 1 "$P" "$T/dbad.json" "$T/seg.h5" -o "$T/x.h5" --report "$T/x.json"
stderr_has "dbad.json: decoder_ratio: the model has a seg_linear head, which has no decoder to prune"
printf '{ "decoder_keep": 33 }\n' >"$T/dbad.json"
fails_with 1 "$P" "$T/dbad.json" "$T/segmlp.h5" -o "$T/x.h5" --report "$T/x.json"
stderr_has "dbad.json: decoder_keep: 33 is more than the decoder's width 32"
[ ! -e "$T/x.h5" ] && [ ! -e "$T/x.json" ] || fail "a refused decoder config wrote its output"
ok "decoder keys are refused for a model without the decoder and above its width, naming file and key"
echo "cli_prune: all checks passed"
