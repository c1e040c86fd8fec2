#!/bin/sh
# cli_python.sh: python/evrt.py over runtime/libevrt.so gives logits
# bit-identical to evit-run --logits (model-sized, resized and
# channel-converted frames; float, INT8 and 3-channel models), the same rows
# in a batch, at 2 threads and from its CLI; top(k) and the CLI's top 5
# agree with evit-run; bad files and frames raise evrt.Error in one line and
# the CLI exits 1 with one line; a segmentation model gives evit-run's
# per-patch logits and --mask, and refuses top().  Models are freshly
# initialised (exact comparisons need no training).
set -eu
. "$EVIT_SRC/tests/lib.sh"

R="$EVIT_BIN/evit-run"
LIB="$EVIT_BIN/runtime/libevrt.so"
MOD="$EVIT_SRC/python/evrt.py"
needs_python
"$PY" -c "import numpy" 2>/dev/null || skip "no numpy in /usr/bin/python3 (apt-get install python3-numpy)"
[ -f "$LIB" ] || fail "the build has no runtime/libevrt.so"
EVRT_LIB=$LIB
PYTHONPATH=$EVIT_SRC/python
PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the source tree
export EVRT_LIB PYTHONPATH PYTHONDONTWRITEBYTECODE

# A sanitizer build's library needs its runtime loaded first: preload it
# into the (uninstrumented) interpreter, leak checks off (Python's own
# allocations never freed at exit are not ours); skip where that fails.
if grep -q 'libasan\.so' "$LIB"; then
    LD_PRELOAD=$(${CC:-cc} -print-file-name=libasan.so)
    ASAN_OPTIONS=detect_leaks=0
    export LD_PRELOAD ASAN_OPTIONS
fi
"$PY" -c 'import evrt; evrt._load()' >"$T/out" 2>"$T/err" ||
    skip "python3 cannot load this build's libevrt.so (a sanitizer build?): $(tail -n 1 "$T/err")"
ok "python3 loads runtime/libevrt.so through ctypes"

# --- models: float (with class names), INT8 with INT8 attention, 3 channels
mini_model 2 >"$T/mini.json"
mini_model 2 | sed 's/"channels":1/"channels":3/' >"$T/rgb.json"
"$PY" "$EVIT_SRC/tests/mkdata.py" "$T/img.gz" "$T/lab.gz" 64 28 10
succeeds "$DATA" import --idx "$T/img.gz" "$T/lab.gz" -o "$T/d.h5" --names fashion-mnist
succeeds "$INIT" "$T/mini.json" -o "$T/f.h5" --seed 3 --data "$T/d.h5"
succeeds "$INIT" "$T/rgb.json" -o "$T/c.h5" --seed 4
succeeds "$Q" "$EVIT_SRC/configs/fmnist/quantize-attention.json" "$T/f.h5" --calib "$T/d.h5" \
    --val "$T/d.h5" -o "$T/q.h5" --report "$T/q.json" -q --threads 2
for m in f c q; do succeeds "$X" "$T/$m.h5" -o "$T/$m.evit"; done

# --- frames as .npy and the same pixels as PGM/PPM for evit-run: the
# model's size, other sizes (up and down, not square), grey and RGB
"$PY" - "$T" <<'PYEOF'
import sys
import numpy as np
t, rng = sys.argv[1], np.random.RandomState(7)
for name, h, w, c in (("g28", 28, 28, 1), ("g37x45", 37, 45, 1), ("g13x20", 13, 20, 1),
                      ("c28", 28, 28, 3), ("c41x33", 41, 33, 3)):
    x = rng.randint(0, 256, (h, w, c)).astype(np.uint8)
    np.save("%s/%s.npy" % (t, name), x)
    with open("%s/%s.%s" % (t, name, "pgm" if c == 1 else "ppm"), "wb") as f:
        f.write(b"P%d\n%d %d\n255\n" % (5 if c == 1 else 6, w, h) + x.tobytes())
with open(t + "/max100.pgm", "wb") as f:  # maxval 100: evit-run rescales to 255
    f.write(b"P5 28 28 100\n" + rng.randint(0, 101, 28 * 28).astype(np.uint8).tobytes())
np.save(t + "/float.npy", np.zeros((28, 28), np.float32))
PYEOF
for m in f q c; do
    for i in g28.pgm g37x45.pgm g13x20.pgm c28.ppm c41x33.ppm; do
        succeeds "$R" "$T/$m.evit" "$T/$i" --logits
        cp "$T/out" "$T/$m-${i%.*}.ref"
    done
done
ok "evit-run writes the reference logits"

# --- a segmentation model (seg-fm-tiny, 96x96, 11 classes): .head, per-patch
# .logits, .mask against evit-run's --logits and --mask PGM
succeeds "$DATA" scenes "$T/d.h5" -o "$T/sc.h5" --count 4 --size 96 --seed 3 -q
succeeds "$INIT" seg-fm-tiny -o "$T/seg.h5" --seed 5 --data "$T/sc.h5"
succeeds "$X" "$T/seg.h5" -o "$T/seg.evit"
# one patch per image: outputs per image are the classes for either head
for h in class seg_linear seg_mlp; do
    printf '{"name":"one","img_size":8,"channels":1,"patch":8,"num_classes":3,"embed_dim":16,"depth":1,"num_heads":2,"mlp_hidden":16,"head":"%s"}' \
        "$h" >"$T/one-$h.json"
    succeeds "$INIT" "$T/one-$h.json" -o "$T/one-$h.h5"
    succeeds "$X" "$T/one-$h.h5" -o "$T/one-$h.evit"
done
"$PY" - "$T" <<'PYEOF'
import sys
import numpy as np
t, rng = sys.argv[1], np.random.RandomState(9)
for name, h, w in (("s96", 96, 96), ("s70x50", 70, 50)):
    x = rng.randint(0, 256, (h, w)).astype(np.uint8)
    np.save("%s/%s.npy" % (t, name), x)
    open("%s/%s.pgm" % (t, name), "wb").write(b"P5\n%d %d\n255\n" % (w, h) + x.tobytes())
PYEOF
for i in s96 s70x50; do
    succeeds "$R" "$T/seg.evit" "$T/$i.pgm" --logits
    cp "$T/out" "$T/seg-$i.ref"
    succeeds "$R" "$T/seg.evit" "$T/$i.pgm" --mask "$T/seg-$i.mask.pgm"
    sed 's/  [0-9.]* ms$//' "$T/out" >"$T/seg-$i.line"
done

# --- the module: exact logits, batches, threads, top(k), names, errors
"$PY" - "$T" <<'PYEOF'
import sys
import numpy as np
import evrt

t = sys.argv[1]
frames = ["g28", "g37x45", "g13x20", "c28", "c41x33"]

def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)

def ref(m, i):
    rows = [l.split() for l in open("%s/%s-%s.ref" % (t, m, i))]
    return np.array([float.fromhex(v) for _, v in rows], np.float32)

def same(a, b):
    return a.shape == b.shape and (a.view(np.uint32) == b.view(np.uint32)).all()

x = {i: np.load("%s/%s.npy" % (t, i)) for i in frames}
for m in "fqc":
    with evrt.Model("%s/%s.evit" % (t, m)) as model:
        for i in frames:
            z = model.logits(x[i])
            if z.dtype != np.float32 or z.shape != (10,):
                fail("%s on %s: logits %s %s, not float32 (10,)" % (m, i, z.dtype, z.shape))
            if not same(z, ref(m, i)):
                fail("%s.evit on %s: logits differ from evit-run's: %s vs %s" % (m, i, z, ref(m, i)))
print("ok - logits are bit-identical to evit-run's for float, INT8 and RGB models, at the model's size, "
      "resized up and down, grey to RGB and RGB to grey")

f = evrt.Model(t + "/f.evit")
z = f.logits(x["g28"])
if not same(f.logits(x["g28"][:, :, 0]), z):
    fail("an (H, W) frame differs from (H, W, 1)")
flipped = x["c28"][::-1, :, ::-1]
if not same(f.logits(np.asfortranarray(x["g28"])), z) or \
        not same(f.logits(flipped), f.logits(np.ascontiguousarray(flipped))):
    fail("a non-contiguous frame differs from its contiguous copy")
print("ok - (H, W) frames and non-contiguous arrays give the same logits")

rng = np.random.RandomState(1)
for m in "fq":
    batch = rng.randint(0, 256, (11, 30, 26, 1)).astype(np.uint8)
    one = evrt.Model("%s/%s.evit" % (t, m), batch=4)
    two = evrt.Model("%s/%s.evit" % (t, m), threads=2)
    zb = one.logits(batch)
    singles = np.stack([one.logits(b) for b in batch])
    if zb.shape != (11, 10) or not same(zb, singles):
        fail("%s: a batch of 11 (in chunks of 4) differs from single frames" % m)
    if two.threads != 2 or not same(two.logits(batch), zb):
        fail("%s: 2 threads give other logits than 1" % m)
    one.close()
    two.close()
print("ok - a batch gives the rows of single frames, and 2 threads the same logits as 1")

for k in (1, 3, 5, 10, 12):
    idx, p = f.top(x["g37x45"], k)
    zz = f.logits(x["g37x45"]).astype(np.float64)
    e = np.exp(zz - zz.max())
    kk = min(k, 10)
    if idx.shape != (kk,) or p.shape != (kk,):
        fail("top(k=%d) shapes %s %s" % (k, idx.shape, p.shape))
    if list(idx) != list(np.argsort(-zz, kind="stable")[:kk]) or not np.allclose(p, e[idx] / e.sum(), rtol=1e-12):
        fail("top(k=%d) disagrees with the logits" % k)
    if not (np.diff(p) <= 0).all() or not 0 < p.sum() <= 1 + 1e-12:
        fail("top(k=%d) probabilities are not a descending part of a distribution" % k)
bi, bp = f.top(np.stack([x["g28"], x["g28"]]), 5)
if bi.shape != (2, 5) or (bi[0] != bi[1]).any() or (bp[0] != bp[1]).any() or list(bi[0]) != list(f.top(x["g28"])[0]):
    fail("top on a batch differs from top on its frames")
print("ok - top(k) ranks the logits and gives their softmax probabilities, per frame of a batch")

if f.class_names is None or len(f.class_names) != 10 or f.class_names[0] != "T-shirt/top":
    fail("class names: %r" % (f.class_names,))
if (f.img_size, f.channels, f.num_classes) != (28, 1, 10) or evrt.Model(t + "/c.evit").channels != 3:
    fail("input shape: %r" % ((f.img_size, f.channels, f.num_classes),))
if evrt.Model(t + "/c.evit").class_names is not None:
    fail("a file without class names has some")
print("ok - the model's input size, channels, class count and class names are properties")

def raises(what, fn, *text):
    try:
        fn()
    except evrt.Error as e:
        msg = str(e)
        if "\n" in msg or not all(s in msg for s in text):
            fail("%s: the message %r lacks %r or is not one line" % (what, msg, text))
        return
    fail("%s: no evrt.Error" % what)

raises("a missing file", lambda: evrt.Model(t + "/missing.evit"), "missing.evit: ", "cannot open")
raises("an HDF5 checkpoint", lambda: evrt.Model(t + "/f.h5"), "f.h5: ", "not an evit model file")
raises("a PGM", lambda: evrt.Model(t + "/g28.pgm"), "g28.pgm: ")
raises("float frames", lambda: f.logits(x["g28"].astype(np.float32)), "f.evit: ", "uint8", "float32")
raises("a list", lambda: f.logits([[1, 2], [3, 4]]), "f.evit: ", "numpy array")
raises("1-D frames", lambda: f.logits(np.zeros(784, np.uint8)), "f.evit: ", "shape (784,)")
raises("5-D frames", lambda: f.logits(np.zeros((1, 1, 28, 28, 1), np.uint8)), "shape")
raises("an empty batch", lambda: f.logits(np.zeros((0, 28, 28, 1), np.uint8)), "empty")
raises("two channels", lambda: f.logits(np.zeros((28, 28, 2), np.uint8)), "2 channels")
raises("four channels on RGB", lambda: evrt.Model(t + "/c.evit").logits(np.zeros((28, 28, 4), np.uint8)),
       "4 channels")
raises("k 0", lambda: f.top(x["g28"], 0), "k must be")
raises("threads 0", lambda: evrt.Model(t + "/f.evit", threads=0), "f.evit: ", "threads")
raises("unknown kernels", lambda: evrt.Model(t + "/f.evit", kernels="bogus"), "f.evit: ", "bogus")
with evrt.Model(t + "/f.evit", kernels="ref") as r:
    if r.kernels != "ref":
        fail("kernels='ref' runs %s" % r.kernels)
raises("a closed model", lambda: r.logits(x["g28"]), "closed")
f.close()
f.close()
print("ok - missing, mistaken and closed models and bad frames raise evrt.Error in one line naming the file")

# a segmentation model
sm, f = evrt.Model(t + "/seg.evit", batch=1), evrt.Model(t + "/f.evit")
if (sm.head, f.head, sm.grid, sm.img_size, sm.num_classes) != ("seg_linear", "class", 12, 96, 11):
    fail("head, grid, size, classes: %r" % ((sm.head, f.head, sm.grid, sm.img_size, sm.num_classes),))
xs = {i: np.load("%s/%s.npy" % (t, i)) for i in ("s96", "s70x50")}
for i in xs:
    z = sm.logits(xs[i])
    rows = [l.split() for l in open("%s/seg-%s.ref" % (t, i))]
    ref = np.array([float.fromhex(v) for _, _, v in rows], np.float32).reshape(144, 11)
    if z.dtype != np.float32 or z.shape != (144, 11) or not same(z, ref):
        fail("seg.evit on %s: logits %s %s are not evit-run's per-patch logits" % (i, z.dtype, z.shape))
    m = sm.mask(xs[i])
    pgm = open("%s/seg-%s.mask.pgm" % (t, i), "rb").read()
    if not pgm.startswith(b"P5\n96 96\n255\n") or m.dtype != np.uint8 or m.shape != (96, 96):
        fail("seg.evit on %s: mask %s %s, or evit-run's PGM is not 96x96" % (i, m.dtype, m.shape))
    if m.tobytes() != pgm[len(b"P5\n96 96\n255\n"):]:
        fail("seg.evit on %s: the mask is not evit-run's --mask PGM" % i)
    if len(np.unique(m)) < 2 or m.max() >= 11:
        fail("seg.evit on %s: a mask of classes %s" % (i, np.unique(m)))
    if evrt.shares_line(sm, m) != open("%s/seg-%s.line" % (t, i)).read().rstrip("\n"):
        fail("shares_line differs from evit-run's line on %s" % i)
big = np.load(t + "/s70x50.npy")
batch = np.stack([big, big[::-1], big])[..., None]
zb, mb = sm.logits(batch), sm.mask(batch)
if zb.shape != (3, 144, 11) or mb.shape != (3, 96, 96) or not same(zb[2], sm.logits(big)) or \
        not (mb[1] == sm.mask(batch[1])).all() or not (mb[0] == mb[2]).all():
    fail("a batch of 3 (in chunks of 1) differs from its frames: %s %s" % (zb.shape, mb.shape))
for h, shape in (("class", (3,)), ("seg_linear", (1, 3)), ("seg_mlp", (1, 3))):
    one = evrt.Model("%s/one-%s.evit" % (t, h))
    if one.head != h or one.grid != 1 or one.logits(np.zeros((8, 8), np.uint8)).shape != shape:
        fail("a one-patch %s model reads as head %s, grid %d" % (h, one.head, one.grid))
    one.close()
print("ok - a segmentation model: head seg_linear, per-patch logits (144, 11) bit-identical to evit-run's, "
      "mask (96, 96) equal to evit-run's --mask PGM, batches as single frames; a one-patch model's head (class, seg_linear, seg_mlp) is told too")

raises("top on a segmentation model", lambda: sm.top(big), "seg.evit: ", "segmentation model", "mask()")
raises("mask on a class model", lambda: f.mask(xs["s96"]), "f.evit: ", "class-head model has no mask")
raises("float frames on a segmentation model", lambda: sm.mask(big.astype(np.float32)), "seg.evit: ", "uint8")
sm.close()
raises("a closed segmentation model", lambda: sm.mask(big), "closed")
print("ok - top() on a segmentation model and mask() on a class model raise evrt.Error in one line")
PYEOF

# --- the CLI: evit-run's output to the byte
for m in f q c; do
    for i in g28.pgm g37x45.pgm c41x33.ppm; do
        succeeds "$PY" "$MOD" "$T/$m.evit" "$T/$i" --logits
        cmp -s "$T/out" "$T/$m-${i%.*}.ref" || fail "python3 evrt.py --logits differs from evit-run on $m.evit, $i"
        succeeds "$R" "$T/$m.evit" "$T/$i"
        cp "$T/out" "$T/top.ref"
        succeeds "$PY" "$MOD" "$T/$m.evit" "$T/$i"
        cmp -s "$T/out" "$T/top.ref" || fail "the top 5 differ from evit-run's on $m.evit, $i"
    done
done
succeeds "$R" "$T/f.evit" "$T/max100.pgm" --logits
cp "$T/out" "$T/max100.ref"
succeeds "$PY" -m evrt "$T/f.evit" "$T/max100.pgm" --logits --threads 2
cmp -s "$T/out" "$T/max100.ref" || fail "a PGM of maxval 100 reads otherwise than in evit-run"
succeeds "$PY" -m evrt "$T/f.evit" "$T/g37x45.npy" --logits
cmp -s "$T/out" "$T/f-g37x45.ref" || fail "an .npy frame gives other logits than its PGM"
succeeds "$PY" -m evrt "$T/f.evit" "$T/g28.pgm"
grep -qE '^1  +[0-9.]+%  [0-9]  [A-Za-z]' "$T/out" || fail "the top 5 do not name their classes"
ok "the CLI (python3 evrt.py, python3 -m evrt) prints evit-run's logits and top 5 byte for byte"

fails_with 1 "$PY" "$MOD" "$T/missing.evit" "$T/g28.pgm"; stderr_has "missing.evit"
fails_with 1 "$PY" "$MOD" "$T/f.h5" "$T/g28.pgm"; stderr_has "f.h5: not an evit model file"
fails_with 1 "$PY" "$MOD" "$T/f.evit" "$T/missing.pgm"; stderr_has "missing.pgm"
fails_with 1 "$PY" "$MOD" "$T/f.evit" "$T/f.h5"; stderr_has "f.h5"
fails_with 1 "$PY" "$MOD" "$T/f.evit" "$T/float.npy"; stderr_has "float.npy: the array must be uint8"
head -c 200 "$T/g28.pgm" >"$T/short.pgm"
fails_with 1 "$PY" "$MOD" "$T/f.evit" "$T/short.pgm"; stderr_has "truncated"
"$PY" -c 'import numpy; numpy.save("'"$T"'/two.npy", numpy.zeros((28, 28, 2), numpy.uint8))'
fails_with 1 "$PY" "$MOD" "$T/f.evit" "$T/two.npy"; stderr_has "two.npy: frames have 2 channels"
ok "the CLI refuses missing and mistaken models and images with one line and exit 1"

for i in s96 s70x50; do
    succeeds "$PY" "$MOD" "$T/seg.evit" "$T/$i.pgm" --logits
    cmp -s "$T/out" "$T/seg-$i.ref" || fail "python3 evrt.py --logits differs from evit-run on seg.evit, $i"
    succeeds "$PY" "$MOD" "$T/seg.evit" "$T/$i.pgm"
    cmp -s "$T/out" "$T/seg-$i.line" || fail "python3 evrt.py on seg.evit, $i: '$(cat "$T/out")' is not evit-run's line"
done
ok "the CLI on a segmentation model prints evit-run's per-patch logits and its line (without the latency)"

# --- the library is found next to the module without EVRT_LIB
mkdir "$T/pkg"
cp "$MOD" "$LIB" "$T/pkg/"
(unset EVRT_LIB; cd "$T/pkg" && PYTHONPATH=$T/pkg "$PY" -c 'import evrt, sys; evrt._load(); print(evrt._lib._name)') \
    >"$T/out" 2>"$T/err" || fail "the module does not load the library beside it"
stdout_has "$T/pkg/libevrt.so"
EVRT_LIB=$T/nowhere.so run_cmd "$PY" "$MOD" "$T/f.evit" "$T/g28.pgm"
[ "$rc" -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q '^error: .*nowhere.so' "$T/err" ||
    fail "a wrong EVRT_LIB is not one line naming it"
ok "the library is found through EVRT_LIB, then beside the module"
echo "cli_python: all checks passed"
