#!/bin/sh
# torch_train_parity.sh: one SGD step (with momentum and weight decay) and
# one AdamW step, from the same checkpoint on the same batch, give the same
# updated weights in evit-distill and in PyTorch within 1e-4.  Skips when
# /usr/bin/python3 has no torch or h5py.
set -eu
. "$EVIT_SRC/tests/lib.sh"

needs_torch

synth_data "$T/d.h5" 64 28 10
cat >"$T/m.json" <<'JSON'
{"name":"step","img_size":28,"channels":1,"patch":4,"num_classes":10,"embed_dim":48,"depth":2,
 "blocks":[{"num_heads":3,"head_dim":16,"mlp_hidden":96},{"num_heads":2,"head_dim":12,"mlp_hidden":64}]}
JSON
succeeds "$EVIT_BIN/evit-init" "$T/m.json" -o "$T/init.h5" --data "$T/d.h5"
succeeds "$PY" "$EVIT_SRC/tests/torch_vit.py" --randomize 0.1 "$T/init.h5" "$T/before.h5"

for opt in sgd adamw; do
    if [ $opt = sgd ]; then o='"type":"sgd","lr":0.5,"momentum":0.9,"weight_decay":0.01'; args="--lr 0.5 --momentum 0.9 --wd 0.01"
    else o='"type":"adamw","lr":0.001,"weight_decay":0.05'; args="--lr 0.001 --wd 0.05"; fi
    printf '{"epochs":1,"batch_size":32,"optimizer":{%s},"schedule":{"warmup_epochs":0,"min_lr":0},"label_smoothing":0.1}\n' "$o" >"$T/$opt.json"
    succeeds "$EVIT_BIN/evit-distill" "$T/$opt.json" --data "$T/d.h5" --init "$T/before.h5" -o "$T/after_$opt.h5" --steps 1 --no-shuffle -q
    succeeds "$PY" "$EVIT_SRC/tests/torch_step.py" "$T/before.h5" "$T/after_$opt.h5" "$T/d.h5" --batch 32 --opt $opt $args --smoothing 0.1
    cat "$T/out"
    ok "one $opt step matches PyTorch within 1e-4"
done
