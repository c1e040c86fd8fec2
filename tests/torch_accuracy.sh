#!/bin/sh
# torch_accuracy.sh: bench/accuracy.sh and bench/torch_fit.py, the PyTorch
# twin of a labels-only recipe, start from the weights evit-distill starts
# from and measure accuracy as evit does: with a learning rate of 1e-30 both
# report the same top-1 exactly, and with a real one both learn, their
# last-epoch training losses within 15 % of each other.  Skips when
# /usr/bin/python3 has no torch or h5py.
set -eu
. "$EVIT_SRC/tests/lib.sh"

needs_torch

synth_data "$T/train.h5" 320 28 10
cp "$T/train.h5" "$T/test.h5"
model='{"name":"acc","img_size":28,"channels":1,"patch":7,"num_classes":10,"embed_dim":32,"depth":2,"num_heads":2,"mlp_hidden":64}'

# lr 1e-30: no step moves a weight in float32, so both evaluate the initial model
printf '{"model":%s,"epochs":1,"batch_size":64,"seed":5,"optimizer":{"type":"adamw","lr":1e-30},"schedule":{"warmup_epochs":0,"min_lr":0},"label_smoothing":0.1,"augment":{"crop_padding":1,"hflip":true}}\n' \
    "$model" >"$T/still.json"
succeeds "$EVIT_SRC/bench/accuracy.sh" --out "$T" --threads 1 "$T/still.json"
grep -q "difference +0.00 points" "$T/out" || { cat "$T/out"; fail "lr 1e-30 gave different top-1 in evit and PyTorch"; }
ok "with a learning rate of 1e-30 evit and PyTorch report the same top-1 from the same weights"

printf '{"model":%s,"epochs":10,"batch_size":32,"seed":5,"optimizer":{"type":"adamw","lr":0.003},"schedule":{"warmup_epochs":0.5,"min_lr":0.0001}}\n' \
    "$model" >"$T/learn.json"
succeeds "$EVIT_SRC/bench/accuracy.sh" --out "$T" --threads 1 "$T/learn.json"
line=$(grep "^evit" "$T/out") || fail "no result line"
loss=$(grep "^last epoch" "$T/out") || fail "no loss line"
ev=$(echo "$line" | sed 's/^evit \([0-9.]*\)%.*/\1/')
pt=$(echo "$line" | sed 's/.*PyTorch \([0-9.]*\)%.*/\1/')
el=$(echo "$loss" | sed 's/.*evit \([0-9.]*\),.*/\1/')
pl=$(echo "$loss" | sed 's/.*PyTorch \([0-9.]*\)$/\1/')
# From ln 10 = 2.30 at the start, the mean loss of the last epoch falls below
# 1.1 in both and agrees within 15 %; top-1 on 320 images of 10 classes moves
# in steps of whole classes, so it only has to be well above chance (10 %).
awk -v e="$ev" -v p="$pt" -v a="$el" -v b="$pl" \
    'BEGIN { r = a > b ? a / b : b / a; exit !(e >= 40 && p >= 40 && a < 1.1 && b < 1.1 && r <= 1.15) }' ||
    fail "not both learned alike: $line; $loss"
ok "both learn the synthetic classes alike ($line; $loss)"
