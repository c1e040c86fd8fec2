#!/bin/sh
# torch_parity.sh: a checkpoint evit writes, loaded into a timm-style ViT in
# PyTorch (tests/torch_vit.py), gives evit-eval's logits within 1e-4 -- for an
# initialised fm-tiny, for a pruned-shape model whose weights h5py wrote
# with a larger spread, with Token Merging, and for segmentation models
# with Segmenter's linear decoder or SegFormer's all-MLP one (patch and
# pixel logits).  Skips when /usr/bin/python3 has no torch or
# h5py.
set -eu
. "$EVIT_SRC/tests/lib.sh"

needs_torch

synth_data "$T/d.h5" 200 28 10

succeeds "$EVIT_BIN/evit-init" fm-tiny -o "$T/m.h5" --seed 11 --data "$T/d.h5"
succeeds "$EVIT_BIN/evit-eval" "$T/m.h5" "$T/d.h5" --save-logits "$T/l.h5" -q
succeeds "$PY" "$EVIT_SRC/tests/torch_vit.py" "$T/m.h5" "$T/d.h5" "$T/l.h5" --tol 1e-4
cat "$T/out"
ok "an initialised fm-tiny gives PyTorch's logits within 1e-4"

cat >"$T/pruned.json" <<'JSON'
{"name":"pruned","img_size":28,"channels":1,"patch":4,"num_classes":10,"embed_dim":48,"depth":3,
 "blocks":[{"num_heads":3,"head_dim":16,"mlp_hidden":200},{"num_heads":2,"head_dim":8,"mlp_hidden":64},
           {"num_heads":4,"head_dim":12,"mlp_hidden":96}]}
JSON
succeeds "$EVIT_BIN/evit-init" "$T/pruned.json" -o "$T/p0.h5" --data "$T/d.h5"
succeeds "$PY" "$EVIT_SRC/tests/torch_vit.py" --randomize 0.15 "$T/p0.h5" "$T/p.h5"
succeeds "$EVIT_BIN/evit-eval" "$T/p.h5" "$T/d.h5" --save-logits "$T/lp.h5" -q
succeeds "$PY" "$EVIT_SRC/tests/torch_vit.py" "$T/p.h5" "$T/d.h5" "$T/lp.h5" --tol 1e-4
cat "$T/out"
ok "a pruned-shape model with large random weights written by h5py matches too"

# Token Merging (model/merge.h): the same checkpoints with a merge_r
# schedule, against tests/torch_vit.py's ToMe written from the paper (in
# float64), on fm-tiny (T 50, 4 blocks) and a grey deit-tiny shape (T 197,
# 12 blocks of 3 heads of 64), r in {1, 4, 8}
tome_case() { # NAME CONFIG-JSON-WITHOUT-CLOSING-BRACE R DATA COUNT
    printf '%s,"merge_r":%s}\n' "$2" "$3" >"$T/$1.json"
    succeeds "$EVIT_BIN/evit-init" "$T/$1.json" -o "$T/$1.0.h5" --seed 5 --data "$4"
    # weights with a wider spread than an initialised model's, so that
    # tokens differ and the matching has something to choose
    succeeds "$PY" "$EVIT_SRC/tests/torch_vit.py" --randomize 0.15 "$T/$1.0.h5" "$T/$1.h5"
    succeeds "$EVIT_BIN/evit-eval" "$T/$1.h5" "$4" --save-logits "$T/$1.l.h5" -q
    succeeds "$PY" "$EVIT_SRC/tests/torch_vit.py" "$T/$1.h5" "$4" "$T/$1.l.h5" --count "$5" --tol 1e-4
    cat "$T/out"
}
FM='{"name":"fm-tiny-tome","img_size":28,"channels":1,"patch":4,"num_classes":10,"embed_dim":64,"depth":4,"num_heads":4,"mlp_hidden":256'
for r in 1 4 8; do tome_case "fm$r" "$FM" "$r" "$T/d.h5" 200; done
ok "fm-tiny with token merging (r 1, 4, 8) gives PyTorch's ToMe logits within 1e-4"
synth_data "$T/d224.h5" 6 224 10
DT='{"name":"deit-tiny-grey-tome","img_size":224,"channels":1,"patch":16,"num_classes":10,"embed_dim":192,"depth":12,"num_heads":3,"mlp_hidden":768'
for r in 1 4 8; do tome_case "dt$r" "$DT" "$r" "$T/d224.h5" 6; done
ok "a deit-tiny shape with token merging (r 1, 4, 8) gives PyTorch's ToMe logits within 1e-4"

# Segmentation (Segmenter's linear decoder, config head "seg_linear"): the
# per-patch logits and their bilinear upsampling to pixels, from
# tests/seg_logits, against tests/torch_vit.py's decoder and
# F.interpolate(bilinear, align_corners=False); on the seg-fm-tiny shape
# (96x96, patch 8, 11 classes) with large random weights, and on the
# 512x512 patch-16 deit-tiny width (grey: the 1025 tokens are the point)
seg_case() { # NAME CONFIG DATA COUNT
    succeeds "$EVIT_BIN/evit-init" "$2" -o "$T/$1.0.h5" --seed 7
    succeeds "$PY" "$EVIT_SRC/tests/torch_vit.py" --randomize 0.15 "$T/$1.0.h5" "$T/$1.h5"
    succeeds "$EVIT_BIN/tests/seg_logits" "$T/$1.h5" "$3" "$4" "$T/$1.p.f32" "$T/$1.x.f32"
    succeeds "$PY" "$EVIT_SRC/tests/torch_vit.py" "$T/$1.h5" "$3" "$T/$1.p.f32" --pixels "$T/$1.x.f32" \
        --count "$4" --tol 1e-4
    cat "$T/out"
}
synth_data "$T/d96.h5" 4 96 10
seg_case segfm "$EVIT_SRC/configs/models/seg-fm-tiny.json" "$T/d96.h5" 4
ok "a segmentation model (seg-fm-tiny) gives PyTorch's patch and pixel logits within 1e-4"
synth_data "$T/d512.h5" 2 512 10
printf '{"name":"seg-512-grey","img_size":512,"channels":1,"patch":16,"num_classes":14,"embed_dim":192,"depth":12,"num_heads":3,"mlp_hidden":768,"head":"seg_linear"}\n' >"$T/seg512.json"
seg_case seg512 "$T/seg512.json" "$T/d512.h5" 2
ok "the 512x512 deit-tiny-width segmentation shape gives PyTorch's logits within 1e-4"

# SegFormer's all-MLP decoder (config head "seg_mlp", model/vit.h) against
# tests/torch_vit.py's, written from the same equations: seg-fm-tiny-mlp
# (every block a level), a six-block variant whose levels (1, 4, 5) skip
# blocks and whose decoder is wider than the encoder, and the 512x512
# deit-tiny width with the default levels 2, 5, 8, 11 and width 96
seg_case segmlp "$EVIT_SRC/configs/models/seg-fm-tiny-mlp.json" "$T/d96.h5" 4
printf '{"name":"seg-mlp-skip","img_size":96,"channels":1,"patch":8,"num_classes":11,"embed_dim":48,"depth":6,"num_heads":3,"mlp_hidden":96,"head":"seg_mlp","decoder_dim":80,"decoder_levels":[1,4,5]}\n' >"$T/segskip.json"
seg_case segskip "$T/segskip.json" "$T/d96.h5" 4
ok "an all-MLP decoder (seg_mlp) gives PyTorch's patch and pixel logits within 1e-4"
printf '{"name":"seg-512-mlp","img_size":512,"channels":1,"patch":16,"num_classes":14,"embed_dim":192,"depth":12,"num_heads":3,"mlp_hidden":768,"head":"seg_mlp"}\n' >"$T/seg512mlp.json"
seg_case seg512mlp "$T/seg512mlp.json" "$T/d512.h5" 2
ok "the 512x512 deit-tiny width with an all-MLP decoder gives PyTorch's logits within 1e-4"
