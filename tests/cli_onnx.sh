#!/bin/sh
# cli_onnx.sh: evit-export --format onnx writes a float32 and a QDQ ONNX
# model (a full-width and a pruned model with per-block widths) that the ONNX
# checker accepts (python3-onnx) and that ONNX Runtime (onnxruntime-node in
# bench/node_modules) runs with logits within 1e-4 of evit-eval (float) and
# the same predictions as evit's INT8 kernels (QDQ); and two segmentation
# models, seg_linear and seg_mlp (SegFormer's all-MLP decoder), float and
# QDQ, whose ONNX logits, upsampled scores and mask ONNX Runtime gives as
# evit does.  The checker and ORT parts skip, one by one, where their tools
# are missing.
set -eu
. "$EVIT_SRC/tests/lib.sh"

needs_python
"$X" m.h5 -o "$T/x.onnx" 2>"$T/err" || true
grep -q "no ONNX output" "$T/err" && skip "evit-export was built without ONNX output"

# --- a small trained model, pruned, quantized (with INT8 attention)
synth_data "$T/all.h5" 800 28 10
synth_data "$T/val.h5" 200 28 10
train_mini 3 4
succeeds "$EVIT_BIN/evit-prune" "$EVIT_SRC/configs/fmnist/prune-mild.json" "$T/m.h5" --data "$T/all.h5" \
    --val "$T/val.h5" -o "$T/p.h5" --report "$T/p.json" -q --threads 2
for m in m p; do
    succeeds "$EVIT_BIN/evit-quantize" "$EVIT_SRC/configs/fmnist/quantize-attention.json" "$T/$m.h5" \
        --calib "$T/all.h5" --val "$T/val.h5" -o "$T/${m}q.h5" --report "$T/${m}q.json" -q --threads 2
done

succeeds "$X" --help; stdout_has "--format"
fails_with 2 "$X" "$T/m.h5" -o "$T/m.onnx" --format tflite
succeeds "$X" "$T/m.h5" -o "$T/m.onnx" --report "$T/mx.json"
stdout_has "float32"
grep -q '"format":[[:space:]]*"onnx"' "$T/mx.json" || fail "the export report does not say onnx"
succeeds "$X" "$T/p.h5" -o "$T/p.onnx" -q
succeeds "$X" "$T/mq.h5" -o "$T/mq.onnx" -q
succeeds "$X" "$T/pq.h5" -o "$T/pq.bin" --format onnx
stdout_has "QDQ int8"
mv "$T/pq.bin" "$T/pq.onnx"
ls -a "$T" | grep -q '\.tmp\.' && fail "a temporary file was left behind"
fb=$(wc -c <"$T/m.onnx")
qb=$(wc -c <"$T/mq.onnx")
# a model this small is mostly embeddings, norms and biases, which stay float
awk -v f="$fb" -v q="$qb" 'BEGIN { exit !(q * 1.5 < f) }' || fail "QDQ file ($qb bytes) not much smaller than float ($fb)"
ok "float ($fb bytes) and QDQ ($qb bytes) ONNX files written, for a full and a pruned model"

if "$PY" -c "import onnx" 2>/dev/null; then
    for m in m p; do
        succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" structure "$T/$m.onnx"
        succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" structure "$T/${m}q.onnx" --qdq
    done
    ok "the ONNX checker accepts them: opset 13, symbolic batch, timm names, per-channel int8 weights"
else
    echo "# python3-onnx missing: checker part skipped"
fi

ORT="$EVIT_SRC/bench/node_modules/onnxruntime-node"
if [ -d "$ORT" ] && command -v node >/dev/null && "$PY" -c "import h5py, numpy" 2>/dev/null; then
    succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" images "$T/val.h5" "$T/val.u8"
    for m in m p mq pq; do
        succeeds node "$EVIT_SRC/tests/ort_run.js" "$ORT" "$T/$m.onnx" "$T/val.u8" 200 28 28 1 "$T/$m.f32"
        succeeds "$EVIT_BIN/evit-eval" "$T/$m.h5" "$T/val.h5" --save-logits "$T/$m.l.h5" -q --threads 2
    done
    for m in m p; do
        succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" compare "$T/$m.f32" "$T/$m.l.h5" --tol 1e-4
        cat "$T/out"
    done
    ok "ONNX Runtime gives evit-eval's float logits within 1e-4, full and pruned"
    # QDQ: ORT rounds a/s where evit rounds a*(1/s) and runs its own softmax,
    # so logits differ slightly; the accuracy must not (docs/GUIDE.md has the
    # Fashion-MNIST numbers: bench/onnx.sh)
    for m in mq pq; do
        succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" top1 "$T/$m.f32" "$T/val.h5"
        a=$(cat "$T/out")
        b=$(sed -n 's/.*"int8_top1":[[:space:]]*\([0-9.]*\).*/\1/p' "$T/${m}.json" | head -n 1)
        echo "# $m: ONNX Runtime QDQ top-1 $a%, evit-quantize INT8 top-1 $b% (200 images)"
        awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.5) }' ||
            fail "$m: QDQ top-1 $a% is more than one image from evit's INT8 $b%"
    done
    ok "ONNX Runtime's QDQ top-1 is within one image of evit-quantize's INT8 top-1, full and pruned"
else
    echo "# onnxruntime-node, node or h5py missing: ONNX Runtime part skipped (cd bench && npm install --ignore-scripts onnxruntime-node)"
fi

# --- segmentation: a seg_linear model on Fashion-MNIST scenes, float and INT8
succeeds "$DATA" scenes "$T/val.h5" -o "$T/sc.h5" --count 24 --size 96 --seed 3 -q
succeeds "$INIT" seg-fm-tiny -o "$T/seg.h5" --seed 5 --data "$T/sc.h5"
succeeds "$Q" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/seg.h5" --calib "$T/sc.h5" --val "$T/sc.h5" \
    -o "$T/segq.h5" -q --threads 2
succeeds "$X" "$T/seg.h5" -o "$T/seg.onnx"
stdout_has "float32"
succeeds "$X" "$T/segq.h5" -o "$T/segq.onnx"
stdout_has "QDQ int8"
ok "a segmentation model exports to float and QDQ ONNX"

if "$PY" -c "import onnx" 2>/dev/null; then
    succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" structure "$T/seg.onnx" --seg
    cat "$T/out"
    succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" structure "$T/segq.onnx" --seg --qdq
    ok "the ONNX checker accepts them: per-patch logits, scores by a linear half_pixel Resize, an int64 ArgMax mask"
else
    echo "# python3-onnx missing: segmentation checker part skipped"
fi

if [ -d "$ORT" ] && command -v node >/dev/null && "$PY" -c "import h5py, numpy" 2>/dev/null; then
    succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" images "$T/sc.h5" "$T/sc.u8"
    for m in seg segq; do
        succeeds node "$EVIT_SRC/tests/ort_run.js" "$ORT" "$T/$m.onnx" "$T/sc.u8" 24 96 96 1 "$T/$m.ort" \
            logits,scores,mask
        succeeds "$EVIT_BIN/evit-eval" "$T/$m.h5" "$T/sc.h5" --save-logits "$T/$m.l.h5" -q --threads 2
    done
    # the test decodes evit's per-patch logits to pixels itself; first, that
    # this is evit's decoder (tests/seg_logits runs model/ops.c's upsampling)
    succeeds "$EVIT_BIN/tests/seg_logits" "$T/seg.h5" "$T/sc.h5" 24 "$T/seg.p.f32" "$T/seg.x.f32"
    succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" decoder "$T/seg.p.f32" "$T/seg.x.f32" 24 12 96 11
    succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" seg "$T/seg.ort" "$T/seg.l.h5" 96 --tol 1e-4
    cat "$T/out"
    ok "ONNX Runtime gives a segmentation model's logits and scores within 1e-4 of evit's, its mask but at near-ties"
    # QDQ rounds differently from evit's INT8 kernels (above): the mask may
    # differ where two classes score nearly alike
    succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" seg "$T/segq.ort" "$T/segq.l.h5" 96 --agree 99
    cat "$T/out"
    ok "ONNX Runtime's QDQ segmentation mask agrees with evit's INT8 mask on at least 99% of the pixels"
else
    echo "# onnxruntime-node, node or h5py missing: segmentation ONNX Runtime part skipped"
fi

# --- seg_mlp: SegFormer's all-MLP decoder over blocks 1 and 3 (not every
# block, so the graph must pick its levels), width 24.  Two short epochs on
# the scenes: at timm's initialisation the decoder's three small linears
# leave logits of order 1e-3, where a 1e-4 tolerance would say little; after
# them they are of order 0.3 (the masks are then background everywhere, but
# the Resize and ArgMax after the logits are the seg_linear graph's, above).
mlpmodel=$(sed 's/"seg_linear"/"seg_mlp","decoder_dim":24,"decoder_levels":[1,3]/; s/"seg-fm-tiny"/"seg-mlp-onnx"/' \
    "$EVIT_SRC/configs/models/seg-fm-tiny.json" | tr -d '\n')
printf '{"model":%s,"epochs":2,"batch_size":8,"seed":5,"optimizer":{"type":"adamw","lr":0.01}}\n' "$mlpmodel" \
    >"$T/segmlp.json"
succeeds "$D" "$T/segmlp.json" --data "$T/sc.h5" -o "$T/segmlp.h5" -q --threads 2
succeeds "$Q" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/segmlp.h5" --calib "$T/sc.h5" --val "$T/sc.h5" \
    -o "$T/segmlpq.h5" -q --threads 2
succeeds "$X" "$T/segmlp.h5" -o "$T/segmlp.onnx"
stdout_has "float32, 0 of 21 layers int8"
succeeds "$X" "$T/segmlpq.h5" -o "$T/segmlpq.onnx"
stdout_has "QDQ int8, 21 of 21 layers int8"
ok "a seg_mlp model exports to float and QDQ ONNX, its decoder's three layers with the others"

if "$PY" -c "import onnx, h5py" 2>/dev/null; then
    succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" structure "$T/segmlp.onnx" --seg --levels 2
    cat "$T/out"
    succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" structure "$T/segmlpq.onnx" --seg --levels 2 --qdq \
        --quantized "$T/segmlpq.h5"
    "$PY" "$EVIT_SRC/tests/onnx_check.py" structure "$T/segmlp.onnx" --seg --levels 3 >/dev/null 2>&1 &&
        fail "the decoder check takes a 2-level decoder for a 3-level one"
    "$PY" "$EVIT_SRC/tests/onnx_check.py" structure "$T/segq.onnx" --seg --levels 1 >/dev/null 2>&1 &&
        fail "the decoder check finds a decoder in a seg_linear model"
    ok "the ONNX checker accepts them: two levels normed and projected, concatenated into the fuse layer, a Relu, the head; QDQ with evit-quantize's int8 weights and scales for each"
else
    echo "# python3-onnx or h5py missing: seg_mlp checker part skipped"
fi

if [ -d "$ORT" ] && command -v node >/dev/null && "$PY" -c "import h5py, numpy" 2>/dev/null; then
    for m in segmlp segmlpq; do
        succeeds node "$EVIT_SRC/tests/ort_run.js" "$ORT" "$T/$m.onnx" "$T/sc.u8" 24 96 96 1 "$T/$m.ort" \
            logits,scores,mask
        succeeds "$EVIT_BIN/evit-eval" "$T/$m.h5" "$T/sc.h5" --save-logits "$T/$m.l.h5" -q --threads 2
    done
    succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" seg "$T/segmlp.ort" "$T/segmlp.l.h5" 96 --tol 1e-4
    cat "$T/out"
    ok "ONNX Runtime gives a seg_mlp model's logits and scores within 1e-4 of evit's, its mask but at near-ties"
    # the seg_linear rule; and, since this mask says little, the logits
    # within 1e-2, the seg_linear QDQ model's bound (measured 1.1e-3 here).
    # A decoder layer quantized with another layer's scale can stay within
    # it (one tried gave 4e-3): the checker part above catches that
    succeeds "$PY" "$EVIT_SRC/tests/onnx_check.py" seg "$T/segmlpq.ort" "$T/segmlpq.l.h5" 96 --agree 99 --tol 1e-2
    cat "$T/out"
    ok "ONNX Runtime's QDQ seg_mlp mask agrees with evit's INT8 mask on at least 99% of the pixels, its logits within 1e-2"
else
    echo "# onnxruntime-node, node or h5py missing: seg_mlp ONNX Runtime part skipped"
fi
