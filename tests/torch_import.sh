#!/bin/sh
# torch_import.sh: the state_dict of a timm-named ViT built in PyTorch,
# written as safetensors (F32, F16, BF16) by tests/torch_safetensors.py from
# the format's definition, imported by evit-import and evaluated by
# evit-eval, gives the logits PyTorch computes from the same file within
# 1e-4.  Skips when /usr/bin/python3 has no torch or h5py.
set -eu
. "$EVIT_SRC/tests/lib.sh"

needs_torch

synth_data "$T/d.h5" 200 28 10
for dt in F32 F16 BF16; do
    succeeds "$PY" "$EVIT_SRC/tests/torch_safetensors.py" --write "$T/m.safetensors" --dtype $dt --dim 48 \
        --heads 3 --mlp 96 --depth 3 --scale 0.15 --seed 7
    succeeds "$EVIT_BIN/evit-import" "$T/m.safetensors" -o "$T/m.h5" --heads 3 --mean 0.25 --std 0.4 -q
    succeeds "$EVIT_BIN/evit-eval" "$T/m.h5" "$T/d.h5" --save-logits "$T/l.h5" -q
    succeeds "$PY" "$EVIT_SRC/tests/torch_safetensors.py" "$T/m.safetensors" "$T/d.h5" "$T/l.h5" --heads 3 \
        --mean 0.25 --std 0.4 --tol 1e-4
    cat "$T/out"
    ok "an imported $dt safetensors ViT gives PyTorch's logits within 1e-4"
done
