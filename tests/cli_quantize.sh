#!/bin/sh
# cli_quantize.sh: libevrt compiles alone (C99, libm only); evit-quantize end
# to end on a small trained model with every calibrator, the accuracy budget
# keeping layers float, evit-eval running the quantized file through the
# runtime to the same accuracy, and the inputs it must refuse.
set -eu
. "$EVIT_SRC/tests/lib.sh"

needs_python

# --- the runtime alone: strict C99, no include path but its own, only libm
CC=${CC:-cc}
mkdir "$T/rt"
cat >"$T/rt/main.c" <<'CEOF'
#include <stdio.h>
#include <stdlib.h>
#include "evrt.h"
/* a 1-block model on 4x4 one-channel images, patch 2, D 4, 3 classes */
int main(void)
{
    static float w[64 * 64], b[64], one[64];
    struct evrt_block blk = {0};
    struct evrt_model m = {0};
    struct evrt_linear lin = {0};
    evrt_ctx *ctx;
    unsigned char img[16] = {0, 50, 100, 150, 200, 250, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    float logits[3];
    int i;
    for (i = 0; i < 64 * 64; i++) w[i] = (float)((i * 37) % 11 - 5) / 10.0f;
    for (i = 0; i < 64; i++) { b[i] = 0.0f; one[i] = 1.0f; }
    lin.w = w;
    lin.bias = b;
    blk.heads = 2; blk.head_dim = 2; blk.mlp = 8;
    blk.ln1_w = blk.ln2_w = one; blk.ln1_b = blk.ln2_b = b;
    blk.qkv = lin; blk.qkv.in = 4; blk.qkv.out = 12;
    blk.proj = lin; blk.proj.in = 4; blk.proj.out = 4;
    blk.fc1 = lin; blk.fc1.in = 4; blk.fc1.out = 8;
    blk.fc2 = lin; blk.fc2.in = 8; blk.fc2.out = 4;
    m.img_size = 4; m.channels = 1; m.patch = 2; m.dim = 4; m.depth = 1; m.classes = 3;
    m.mean[0] = 0.5f; m.std[0] = 0.25f;
    m.patch_embed = lin; m.patch_embed.in = 4; m.patch_embed.out = 4;
    m.cls_token = b; m.pos_embed = w; m.blocks = &blk;
    m.norm_w = one; m.norm_b = b;
    m.head = lin; m.head.in = 4; m.head.out = 3;
    if (evrt_ctx_create(&ctx, &m, 1) != EVRT_OK) { puts(evrt_ctx_error(ctx)); return 1; }
    if (evrt_infer(ctx, img, 1, logits) != EVRT_OK) { puts(evrt_ctx_error(ctx)); return 1; }
    printf("%.6f %.6f %.6f\n", (double)logits[0], (double)logits[1], (double)logits[2]);
    evrt_ctx_destroy(ctx);
    return 0;
}
CEOF
for f in "$EVIT_SRC"/runtime/*.c; do
    "$CC" -std=c99 -pedantic -Wall -Wextra -Werror -I"$EVIT_SRC/runtime" -c "$f" -o "$T/rt/$(basename "$f" .c).o" 2>"$T/err" \
        || fail "runtime/$(basename "$f") does not compile as strict C99 on its own"
done
rm -f "$T/rt/run_main.o" # evit-run's main (tests/cli_export.sh builds it alone)
"$CC" -std=c99 -pedantic -Wall -Wextra -Werror -I"$EVIT_SRC/runtime" "$T/rt/main.c" "$T/rt/"*.o -lm -lpthread -o "$T/rt/run" 2>"$T/err" \
    || fail "a program using only evrt.h does not link against libc and libm alone"
succeeds "$T/rt/run"
grep -q '^-\{0,1\}[0-9]' "$T/out" || fail "the standalone runtime printed no logits"
if grep -rn '#include "\.\./\|#include <cJSON\|#include <hdf5\|#include <omp\|#include <cblas\|#include "util.h"\|#include "vit.h"' "$EVIT_SRC"/runtime/*.[ch] >"$T/err"; then
    fail "runtime/ includes something outside libc, libm and itself"
fi
ok "runtime/ compiles alone as strict C99 and links with only libm"

# --- help and usage
succeeds "$Q" --help; stdout_has "usage: evit-quantize"
fails_with 2 "$Q"
fails_with 2 "$Q" c.json m.h5 --calib a.h5 --val b.h5
fails_with 2 "$Q" c.json m.h5 --calib a.h5 -o q.h5
fails_with 2 "$Q" c.json m.h5 --calib a.h5 --val b.h5 -o q.h5 --calibrator kl
ok "help exits 0 and usage errors exit 2"

# --- a small trained model
synth_data "$T/all.h5" 1200 28 10
synth_data "$T/val.h5" 300 28 10
train_mini 6 2


# --- every calibrator, symmetric; the config's own file
for cal in minmax percentile entropy mse; do
    succeeds "$Q" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/m.h5" --calib "$T/all.h5" --val "$T/val.h5" \
        -o "$T/q.$cal.h5" --report "$T/q.$cal.json" --calibrator "$cal" -q --threads 2
    stdout_has "INT8 top-1"
    f=$(num float_top1 "$T/q.$cal.json")
    i=$(num int8_top1 "$T/q.$cal.json")
    awk -v f="$f" -v i="$i" 'BEGIN { exit !(f > 50 && f - i <= 0.5) }' || fail "$cal: float $f%, INT8 $i%: more than the 0.5 budget"
    grep -qF "\"calibrator\":	\"$cal\"" "$T/q.$cal.json" || fail "$cal: report does not name its calibrator"
    echo "# $cal: float $f%, INT8 $i%"
done
for key in '"stage":	"quantize"' '"top1":' '"int8_top1":' '"float_top1":' '"drop":' '"float_model_bytes":' \
    '"int8_model_bytes":' '"compression":' '"layers":' '"sqnr_db":' '"cosine":' '"float_layers":' '"per_class_accuracy":'; do
    grep -qF "$key" "$T/q.mse.json" || fail "report lacks $key"
done
grep -qF "\"parent\":	\"$T/m.report.json\"" "$T/q.mse.json" || fail "the report's parent is not the checkpoint's report"
c=$(num compression "$T/q.mse.json")
awk -v c="$c" 'BEGIN { exit !(c > 2.5) }' || fail "INT8 model only ${c}x smaller"
ok "each calibrator quantizes a trained model within the budget, with a complete report (${c}x smaller)"

# --- evit-eval runs the quantized file through the runtime: the same accuracy
succeeds "$EVAL" "$T/q.mse.h5" "$T/val.h5" --report "$T/e.json" -q --threads 1
stdout_has "top-1"
a=$(num top1 "$T/q.mse.json")
b=$(num top1 "$T/e.json")
[ "$a" = "$b" ] || fail "evit-quantize reported top-1 $a%, evit-eval measures $b%"
grep -qF '"stage":	"quantize"' "$T/e.json" || fail "evit-eval does not take the stage from the quantized file"
m1=$(num model_bytes "$T/q.mse.json")
m2=$(num model_bytes "$T/e.json")
[ "$m1" = "$m2" ] || fail "model bytes differ: $m1 vs $m2"
succeeds "$EVAL" "$T/q.mse.h5" "$T/val.h5" -q --threads 2 --batch 7
stdout_has "top-1 $(printf %.2f "$a")%"
ok "evit-eval measures the quantized file at the reported top-1 ($a%), any thread count or batch"

# --- asymmetric activations
printf '{"calibrator":"percentile","percentile":99.9,"symmetric":false,"calib_images":200}\n' >"$T/asym.json"
succeeds "$Q" "$T/asym.json" "$T/m.h5" --calib "$T/all.h5" --val "$T/val.h5" -o "$T/qa.h5" --report "$T/qa.json" -q
grep -q '"input_zero":[[:space:]]*-\{0,1\}[1-9]' "$T/qa.json" || fail "no layer got a non-zero zero point"
succeeds "$EVAL" "$T/qa.h5" "$T/val.h5" -q
ok "asymmetric activations (zero points) quantize and evaluate"

# --- the accuracy budget: a calibration that clips half of every input
printf '{"calibrator":"percentile","percentile":50,"max_drop":0.5,"calib_images":100}\n' >"$T/harsh.json"
succeeds "$Q" "$T/harsh.json" "$T/m.h5" --calib "$T/all.h5" --val "$T/val.h5" -o "$T/qh.h5" --report "$T/qh.json" -q
f=$(num float_top1 "$T/qh.json")
i=$(num int8_top1 "$T/qh.json")
awk -v f="$f" -v i="$i" 'BEGIN { exit !(f - i <= 0.5) }' || fail "the budget was not met: float $f%, INT8 $i%"
grep -q '"kept_float":[[:space:]]*"' "$T/qh.json" || fail "no layer was kept float"
n=$(num int8_layers "$T/qh.json")
succeeds "$EVAL" "$T/qh.h5" "$T/val.h5" --report "$T/eh.json" -q
[ "$(num top1 "$T/eh.json")" = "$i" ] || fail "evit-eval disagrees with the mixed-precision model's top-1"
printf '{"calibrator":"percentile","percentile":50,"max_drop":-1,"calib_images":100}\n' >"$T/nobudget.json"
succeeds "$Q" "$T/nobudget.json" "$T/m.h5" --calib "$T/all.h5" --val "$T/val.h5" -o "$T/qn.h5" --report "$T/qn.json" -q
i2=$(num int8_top1 "$T/qn.json")
awk -v f="$f" -v i="$i2" 'BEGIN { exit !(f - i > 0.5) }' || fail "clipping half of every input cost nothing ($i2%): the budget test proves nothing"
ok "over budget ($i2% without it), layers are kept float until INT8 is within 0.5 points ($i%, $n layers int8)"

# --- INT8 attention (the shipped configs/fmnist/quantize-attention.json):
# q k^T and p v of every block in int8, calibrated scales in the report, the runtime's exact accuracy in evit-eval and in the
# exported file (format version 2)
succeeds "$Q" "$EVIT_SRC/configs/fmnist/quantize-attention.json" "$T/m.h5" --calib "$T/all.h5" --val "$T/val.h5" -o "$T/qt.h5" --report "$T/qt.json" -q --threads 2
stdout_has "2/2 attentions int8"
f=$(num float_top1 "$T/qt.json")
i=$(num int8_top1 "$T/qt.json")
awk -v f="$f" -v i="$i" 'BEGIN { exit !(f - i <= 0.5) }' || fail "INT8 attention: float $f%, INT8 $i%: more than the 0.5 budget"
[ "$(num int8_attention "$T/qt.json")" = 2 ] || fail "the report does not count 2 INT8 attentions"
for l in 0 1; do
    tr -d '\n\t' <"$T/qt.json" | grep -q "\"name\":\"blocks.$l.attn.matmul\",\"dtype\":\"int8\",\"q_scale\":[0-9.e-]*,\"k_scale\":[0-9.e-]*,\"v_scale\":[0-9.e-]*,\"p_scale\":[0-9.e-]*,\"sqnr_db\":[0-9]" \
        || fail "the report lacks block $l's INT8 attention with its scales and SQNR"
done
succeeds "$EVAL" "$T/qt.h5" "$T/val.h5" --report "$T/et.json" -q --threads 2 --batch 13
[ "$(num top1 "$T/et.json")" = "$(num top1 "$T/qt.json")" ] || fail "evit-eval disagrees with the INT8-attention model's top-1"
succeeds "$EVIT_BIN/evit-export" "$T/qt.h5" -o "$T/qt.evit" -q
[ "$(od -An -tu4 -j8 -N4 "$T/qt.evit" | tr -d ' ')" = 2 ] || fail "a file with INT8 attention is not format version 2"
succeeds "$EVAL" "$T/qt.evit" "$T/val.h5" --report "$T/ett.json" -q
[ "$(num top1 "$T/ett.json")" = "$(num top1 "$T/qt.json")" ] || fail "the exported INT8-attention file's top-1 differs"
ok "INT8 attention quantizes (float $f%, INT8 $i%), reports its scales and SQNR, and evaluates identically from .h5 and .evit"

# --- refusals: one line, no output
fails_with 1 "$Q" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/missing.h5" --calib "$T/all.h5" --val "$T/val.h5" -o "$T/x.h5"
stderr_has "missing.h5"
fails_with 1 "$Q" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/all.h5" --calib "$T/all.h5" --val "$T/val.h5" -o "$T/x.h5"
stderr_has "evit-checkpoint"
fails_with 1 "$Q" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/q.mse.h5" --calib "$T/all.h5" --val "$T/val.h5" -o "$T/x.h5"
stderr_has "evit-quantized"
printf '{"calibrator":"mse","bits":4}\n' >"$T/bad.json"
fails_with 1 "$Q" "$T/bad.json" "$T/m.h5" --calib "$T/all.h5" --val "$T/val.h5" -o "$T/x.h5"
stderr_has "bad.json: bits: unknown key"
fails_with 1 "$Q" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/m.h5" --calib "$T/all.h5" --val "$T/m.h5" -o "$T/x.h5"
stderr_has "evit-dataset"
[ ! -e "$T/x.h5" ] || fail "an output was left behind"
synth_data "$T/d16.h5" 20 16 10
fails_with 1 "$EVAL" "$T/q.mse.h5" "$T/d16.h5"; stderr_has "28x28x1"
head -c 3000 "$T/q.mse.h5" >"$T/trunc.h5"
fails_with 1 "$EVAL" "$T/trunc.h5" "$T/val.h5"; stderr_has "trunc.h5"
if "$PY" -c "import h5py, numpy" 2>/dev/null; then
    cp "$T/q.mse.h5" "$T/badscale.h5"
    "$PY" - "$T/badscale.h5" <<'PYEOF'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    f["blocks/0/mlp/fc1/input_scale"][0] = np.float32(-1)
PYEOF
    fails_with 1 "$EVAL" "$T/badscale.h5" "$T/val.h5"; stderr_has "blocks.0.mlp.fc1"
fi
ok "missing, mistaken and damaged files and bad configs are refused in one line"

# --- real images: an fm-tiny trained briefly on Fashion-MNIST keeps its
# logits (cosine > 0.99 per image on average) through INT8
FM=/usr/share/datasets/fashion-mnist
if [ -f "$FM/t10k-images-idx3-ubyte.gz" ] && "$PY" -c "import h5py, numpy" 2>/dev/null; then
    succeeds "$DATA" import --idx "$FM/t10k-images-idx3-ubyte.gz" "$FM/t10k-labels-idx1-ubyte.gz" -o "$T/fm.h5"
    printf '{"model":"fm-tiny","epochs":1,"batch_size":64,"optimizer":{"lr":0.002},"schedule":{"warmup_epochs":0.1},"augment":{"crop_padding":0,"hflip":false}}\n' >"$T/fm.json"
    succeeds "$D" "$T/fm.json" --data "$T/fm.h5" -o "$T/fm_tiny.h5" -q --steps 60 --threads 2
    printf '{"calibrator":"entropy","calib_images":256,"max_drop":100,"measure_images":16}\n' >"$T/fq.json"
    succeeds "$Q" "$T/fq.json" "$T/fm_tiny.h5" --calib "$T/fm.h5" --val "$T/fm.h5" -o "$T/fm.q8.h5" -q --threads 2
    succeeds "$EVAL" "$T/fm_tiny.h5" "$T/fm.h5" --save-logits "$T/lf.h5" -q
    succeeds "$EVAL" "$T/fm.q8.h5" "$T/fm.h5" --save-logits "$T/lq.h5" -q
    printf '{"calibrator":"entropy","calib_images":256,"max_drop":100,"measure_images":16,"quantize_attention":true}\n' >"$T/fqa.json"
    succeeds "$Q" "$T/fqa.json" "$T/fm_tiny.h5" --calib "$T/fm.h5" --val "$T/fm.h5" -o "$T/fm.q8a.h5" -q --threads 2
    stdout_has "4/4 attentions int8"
    succeeds "$EVAL" "$T/fm.q8a.h5" "$T/fm.h5" --save-logits "$T/lqa.h5" -q
    for q in lq lqa; do
        succeeds "$PY" - "$T/lf.h5" "$T/$q.h5" <<'PYEOF'
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1], "r")["logits"][()].astype(np.float64)
b = h5py.File(sys.argv[2], "r")["logits"][()].astype(np.float64)
cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
print(f"cosine float vs {sys.argv[2]} over {len(a)} Fashion-MNIST images: mean {cos.mean():.5f}, min {cos.min():.5f}")
sys.exit(0 if cos.mean() > 0.99 else 1)
PYEOF
        cat "$T/out"
    done
    ok "a quantized fm-tiny keeps its logits on real Fashion-MNIST images (cosine > 0.99), with INT8 attention too"
fi
# --- segmentation: a seg_linear model on Fashion-MNIST scenes; the budget in
# mIoU points, the same score through the quantized model, its .evit and
# the runtime; the datasets of the other task refused
succeeds "$DATA" scenes "$T/all.h5" -o "$T/sc.h5" --count 24 --size 96 --seed 4 -q
succeeds "$INIT" seg-fm-tiny -o "$T/seg.h5" --seed 2 --data "$T/sc.h5"
succeeds "$Q" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/seg.h5" --calib "$T/sc.h5" --val "$T/sc.h5" \
    -o "$T/seg.q8.h5" --report "$T/segq.json" --threads 2
stdout_has "float mIoU"
fm=$(num float_miou "$T/segq.json")
im=$(num int8_miou "$T/segq.json")
dr=$(num drop "$T/segq.json")
[ -n "$fm" ] && [ -n "$im" ] || fail "the quantize report of a segmentation model lacks float_miou / int8_miou"
awk -v f="$fm" -v i="$im" -v d="$dr" 'BEGIN { exit !(f > 0 && i > 0 && (f - i - d) ^ 2 < 1e-12) }' ||
    fail "drop $dr is not float_miou $fm - int8_miou $im"
! grep -q '"top1"' "$T/segq.json" || fail "a segmentation quantize report has a top1"
grep -q '"per_class_iou"' "$T/segq.json" || fail "the quantize report lacks the per-class IoU"
succeeds "$EVAL" "$T/seg.q8.h5" "$T/sc.h5" --report "$T/sege.json" -q --threads 1 --batch 5
[ "$(num miou "$T/sege.json")" = "$im" ] || fail "evit-eval's mIoU $(num miou "$T/sege.json") of the INT8 model is not evit-quantize's $im"
succeeds "$X" "$T/seg.q8.h5" -o "$T/seg.evit" -q
succeeds "$EVAL" "$T/seg.evit" "$T/sc.h5" --report "$T/segx.json" -q --batch 8
[ "$(num miou "$T/segx.json")" = "$im" ] || fail "the device file's mIoU $(num miou "$T/segx.json") is not the INT8 model's $im"
ok "a segmentation model quantizes with its score in mIoU, the same through evit-eval and its device file"

fails_with 1 "$Q" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/seg.h5" --calib "$T/all.h5" --val "$T/sc.h5" -o "$T/x.h5"
stderr_has "segmentation dataset"
fails_with 1 "$Q" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/m.h5" --calib "$T/all.h5" --val "$T/sc.h5" -o "$T/x.h5"
stderr_has "sc.h5"
[ ! -e "$T/x.h5" ] || fail "a refused quantization wrote its output"
ok "a segmentation model with a classification dataset, and the reverse, are refused in one line"
# --- SegFormer's all-MLP decoder (seg_mlp, four levels): its decoder's
# layers calibrate and quantize with the encoder's (the budget in mIoU),
# and the quantized model, its .evit (format version 5) and evit-run all
# run it through libevrt: the device file scores the report's INT8 mIoU
# exactly, evit-run writes its mask, --latency times it to the mask
succeeds "$INIT" seg-fm-tiny-mlp -o "$T/segmlp.h5" --seed 2 --data "$T/sc.h5"
succeeds "$Q" "$EVIT_SRC/configs/fmnist/quantize.json" "$T/segmlp.h5" --calib "$T/sc.h5" --val "$T/sc.h5" \
    -o "$T/segmlp.q8.h5" --report "$T/segmlpq.json" --threads 2
stdout_has "float mIoU"
stdout_has "/23 layers int8" # 2 + 4 x 4 blocks, linear_c per level, linear_fuse
cat "$T/out"
fm=$(num float_miou "$T/segmlpq.json")
im=$(num int8_miou "$T/segmlpq.json")
[ -n "$fm" ] && [ -n "$im" ] || fail "the quantize report of a seg_mlp model lacks float_miou / int8_miou"
awk -v f="$fm" -v i="$im" 'BEGIN { exit !(f > 0 && i > 0) }' || fail "seg_mlp mIoU float $fm, INT8 $im"
for l in decode_head.linear_c.0 decode_head.linear_c.3 decode_head.linear_fuse head; do
    grep -q "\"name\":[[:space:]]*\"$l\"" "$T/segmlpq.json" || fail "the quantize report lacks layer $l"
done
succeeds "$EVAL" "$T/segmlp.q8.h5" "$T/sc.h5" --report "$T/segmlpe.json" -q --threads 1 --batch 5
[ "$(num miou "$T/segmlpe.json")" = "$im" ] ||
    fail "evit-eval's mIoU $(num miou "$T/segmlpe.json") of the INT8 seg_mlp model is not evit-quantize's $im"
succeeds "$X" "$T/segmlp.q8.h5" -o "$T/segmlp.evit"
stdout_has "of 23 layers int8"
[ "$(od -An -tu1 -j8 -N1 "$T/segmlp.evit" | tr -d ' ')" = 5 ] || fail "a seg_mlp .evit is not format version 5"
succeeds "$EVAL" "$T/segmlp.evit" "$T/sc.h5" --report "$T/segmlpx.json" --batch 8 --latency 3
stdout_has "latency through libevrt to the mask"
cat "$T/out"
[ "$(num miou "$T/segmlpx.json")" = "$im" ] ||
    fail "the seg_mlp device file's mIoU $(num miou "$T/segmlpx.json") is not the INT8 model's $im"
{ printf 'P5\n96 96\n255\n'; "$PY" -c 'import sys; sys.stdout.buffer.write(bytes((i * 37 + i // 96 * 11) % 256 for i in range(96 * 96)))'; } >"$T/g96.pgm"
succeeds "$EVIT_BIN/evit-run" "$T/segmlp.evit" "$T/g96.pgm" --mask "$T/segmlp-mask.pgm"
stdout_has " classes "
[ "$(head -c 13 "$T/segmlp-mask.pgm" | tr '\n' ' ')" = "P5 96 96 255 " ] && [ "$(wc -c <"$T/segmlp-mask.pgm")" -eq $((13 + 96 * 96)) ] ||
    fail "evit-run's seg_mlp mask is not a 96x96 PGM"
succeeds "$EVAL" "$T/segmlp.h5" "$T/sc.h5" --latency 3 -q
stdout_has "latency through libevrt to the mask"
# and as QDQ ONNX (tests/cli_onnx.sh runs it), unless built without ONNX
if "$X" "$T/segmlp.q8.h5" -o "$T/segmlp.onnx" >"$T/out" 2>"$T/err"; then
    stdout_has "QDQ int8"
    stdout_has "of 23 layers int8"
else
    stderr_has "this build has no ONNX output"
fi
ok "a seg_mlp model quantizes with its decoder (mIoU $fm -> $im), the same through evit-eval, its .evit, evit-run and ONNX"

echo "cli_quantize: all checks passed"
