"""evrt.py: libevrt, evit's inference runtime, from Python (ctypes + numpy).

    import evrt
    with evrt.Model("model.evit", threads=4) as m:
        logits = m.logits(frame)            # uint8 (H, W, C): float32 (classes,)
        idx, prob = m.top(frames, k=5)      # uint8 (N, H, W, C): (N, 5) each
        print(m.class_names[idx[0, 0]] if m.class_names else idx[0, 0])
    with evrt.Model("seg.evit") as s:       # s.head == "seg_linear"
        z = s.logits(frames)                # float32 (N, grid^2, classes), per patch
        mask = s.mask(frames)               # uint8 (N, img_size, img_size), classes

    python3 python/evrt.py MODEL.evit IMAGE.pgm|.ppm|.npy [--logits] [--threads N]

Frames are uint8 images of any size: (H, W) or (H, W, C) for one, (N, H, W,
C) for a batch, C 1 (grey) or 3 (RGB), or the model's own channel count.
They reach the model exactly as evit-run sends an image: resized to its
square input by nearest neighbour (source pixel floor((x + 0.5) * w / S)),
grey to RGB by repeating the channel, RGB to grey with the ITU-R 601
weights (0.299, 0.587, 0.114) rounded to nearest; so the logits are
bit-identical to `evit-run MODEL IMAGE --logits` (tests/cli_python.sh),
and a segmentation model's mask is evit-run's `--mask OUT.pgm`.

The shared library is the first of: $EVRT_LIB (a path), libevrt.so next to
this file, ../runtime/libevrt.so and ../build/runtime/libevrt.so from it (an
in-tree or scripts/setup.sh build), then the system's (`make install`, then
ldconfig).  Errors raise evrt.Error with one line "FILE: problem".  A Model
is not thread-safe: give each Python thread its own (contexts are
independent; inference releases the GIL).
"""
import ctypes
import ctypes.util
import os
import sys

import numpy as np

__all__ = ["Error", "Model", "to_model_input", "read_image", "shares_line"]

_ERR_MAX = 256  # EVRT_ERR_MAX


class Error(Exception):
    """A bad file, frame or argument: one line "FILE: problem"."""


def _candidates():
    env = os.environ.get("EVRT_LIB")
    if env:
        return [env]  # named explicitly: nothing else
    here = os.path.dirname(os.path.abspath(__file__))
    out = [os.path.join(here, "libevrt.so"),
           os.path.join(here, "..", "runtime", "libevrt.so"),
           os.path.join(here, "..", "build", "runtime", "libevrt.so")]
    out = [p for p in out if os.path.exists(p)]
    found = ctypes.util.find_library("evrt")
    if found:
        out.append(found)
    return out


_lib = None


def _load():
    """The library, loaded once, with every prototype declared."""
    global _lib
    if _lib is not None:
        return _lib
    tried = _candidates()
    lib = None
    for path in tried:
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:  # dlopen's message names the file already
            msg = str(e).splitlines()[0] if str(e) else "cannot load"
            last = msg if msg.startswith(path + ":") else "%s: %s" % (path, msg)
    if lib is None:
        if not tried:
            raise Error("libevrt.so: not found (set EVRT_LIB, build it with make, or make install)")
        raise Error(last)
    P, I, S, C = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t, ctypes.c_char_p
    IP = ctypes.POINTER(ctypes.c_int)
    for name, res, args in (
            ("evrt_open", I, [ctypes.POINTER(P), C, C, S]),
            ("evrt_close", None, [P]),
            ("evrt_file_input", S, [P, IP, IP, IP]),
            ("evrt_file_name", C, [P]),
            ("evrt_file_class_name", C, [P, I]),
            ("evrt_ctx_create_file", I, [ctypes.POINTER(P), P, I]),
            ("evrt_ctx_destroy", None, [P]),
            ("evrt_ctx_error", C, [P]),
            ("evrt_ctx_set_threads", I, [P, I]),
            ("evrt_ctx_threads", I, [P]),
            ("evrt_ctx_set_kernels", I, [P, C]),
            ("evrt_ctx_kernels", C, [P]),
            ("evrt_infer", I, [P, P, I, P]),
            ("evrt_infer_seg", I, [P, P, I, P, P, P]),
            ("evrt_file_model", P, [P]),
            ("evrt_file_head", I, [P]),
            ("evrt_model_tokens", I, [P])):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    _lib = lib
    return lib


def _as_batch(frames, channels):
    """(uint8 (N, H, W, C), whether one frame was given), or a problem."""
    if not isinstance(frames, np.ndarray):
        return "frames must be a numpy array, got %s" % type(frames).__name__
    if frames.dtype != np.uint8:
        return "frames must be uint8, got %s" % frames.dtype
    if frames.ndim not in (2, 3, 4):
        return "frames must be (H, W), (H, W, C) or (N, H, W, C), got shape %s" % (frames.shape,)
    if 0 in frames.shape:
        return "frames have an empty dimension, shape %s" % (frames.shape,)
    x = frames.reshape((1,) * (4 - frames.ndim) + frames.shape) if frames.ndim > 2 else frames[None, :, :, None]
    c = x.shape[3]
    if c != channels and (c not in (1, 3) or channels not in (1, 3)):
        return "frames have %d channels, the model takes %d" % (c, channels)
    return x, frames.ndim < 4


def to_model_input(frames, size, channels):
    """uint8 (N, size, size, channels) from uint8 (N, H, W, C), as evit-run's
    to_model_input: nearest neighbour, then channel conversion (C equal to
    channels, or both 1 or 3)."""
    n, h, w, c = frames.shape
    # (int)(((double)y + 0.5) * h / S): the same double operations
    sy = ((np.arange(size, dtype=np.float64) + 0.5) * h / size).astype(np.intp)
    sx = ((np.arange(size, dtype=np.float64) + 0.5) * w / size).astype(np.intp)
    x = frames if (h, w) == (size, size) else frames[:, sy[:, None], sx[None, :], :]  # sy[y] = y there
    if c == channels:
        return np.ascontiguousarray(x)
    if c == 1:
        return np.ascontiguousarray(np.repeat(x, channels, axis=3))
    g = 0.299 * x[..., 0].astype(np.float64) + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    g = (g + 0.5).astype(np.uint8)  # truncation, as the C cast
    return np.ascontiguousarray(np.repeat(g[..., None], channels, axis=3))


def _int_in(path, what, v, lo, hi):
    if not isinstance(v, bool) and isinstance(v, (int, np.integer)) and lo <= v <= hi:
        return int(v)
    raise Error("%s: %s must be an integer in %d..%d, got %r" % (path, what, lo, hi, v))


class Model:
    """A mapped .evit model and an inference context over it.

    threads: inference threads (1..256); kernels: "ref", "avx2", "neon", ...
    (evrt.h, evrt_ctx_set_kernels; None: the fastest this CPU runs, or
    $EVRT_KERNELS); batch: the context's largest batch (larger inputs run
    in chunks of it).

    head is "class" (logits of the class token: logits, top) or
    "seg_linear" or "seg_mlp" (a segmentation model: per-patch logits and
    the mask);
    grid the patches per side, img_size / patch."""

    _f = None
    _ctx = None

    def __init__(self, path, threads=1, kernels=None, batch=8):
        self.path = os.fspath(path)
        lib = _load()
        threads = _int_in(self.path, "threads", threads, 1, 256)
        batch = _int_in(self.path, "batch", batch, 1, 65536)
        err = ctypes.create_string_buffer(_ERR_MAX)
        f = ctypes.c_void_p()
        if lib.evrt_open(ctypes.byref(f), os.fsencode(self.path), err, _ERR_MAX) != 0:
            raise Error("%s: %s" % (self.path, err.value.decode(errors="replace")))
        self._f = f
        size, ch, k = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        lib.evrt_file_input(f, ctypes.byref(size), ctypes.byref(ch), ctypes.byref(k))
        self.img_size, self.channels, self.num_classes = size.value, ch.value, k.value
        names = [lib.evrt_file_class_name(f, i) for i in range(self.num_classes)]
        self.class_names = [s.decode(errors="replace") for s in names] if names and names[0] is not None else None
        name = lib.evrt_file_name(f)
        self.name = name.decode(errors="replace") if name else ""
        ctx = ctypes.c_void_p()
        rc = lib.evrt_ctx_create_file(ctypes.byref(ctx), f, batch)
        self._ctx = ctx if ctx.value else None
        if rc == 0:
            rc = lib.evrt_ctx_set_threads(ctx, threads)
        if rc == 0 and kernels is not None:
            rc = lib.evrt_ctx_set_kernels(ctx, str(kernels).encode())
        if rc != 0:
            msg = self._ctx_error() if self._ctx else "out of memory"
            self.close()
            raise Error("%s: %s" % (self.path, msg))
        self.batch = batch
        self.head, self.grid = self._head(lib)

    def _head(self, lib):
        """("class", "seg_linear" or "seg_mlp", grid), from evrt_file_head."""
        m = lib.evrt_file_model(self._f)
        grid = int(round((lib.evrt_model_tokens(m) - 1) ** 0.5))
        return {1: "seg_linear", 2: "seg_mlp"}.get(lib.evrt_file_head(self._f), "class"), grid

    def _ctx_error(self):
        return _lib.evrt_ctx_error(self._ctx).decode(errors="replace")

    def _live(self):
        if self._ctx is None:
            raise Error("%s: the model is closed" % self.path)

    @property
    def threads(self):
        self._live()
        return _lib.evrt_ctx_threads(self._ctx)

    @property
    def kernels(self):
        self._live()
        return _lib.evrt_ctx_kernels(self._ctx).decode()

    def _run(self, frames, per_frame, dtype, infer):
        """infer(chunk, out) on the frames in chunks of batch, into an
        array of per_frame-shaped rows: one row for one frame."""
        self._live()
        got = _as_batch(frames, self.channels)
        if isinstance(got, str):
            raise Error("%s: %s" % (self.path, got))
        x, single = got
        x = to_model_input(x, self.img_size, self.channels)
        out = np.empty((x.shape[0],) + per_frame, dtype=dtype)
        for i in range(0, x.shape[0], self.batch):
            chunk, dst = x[i:i + self.batch], out[i:i + self.batch]
            if infer(chunk.ctypes.data, chunk.shape[0], dst.ctypes.data) != 0:
                raise Error("%s: %s" % (self.path, self._ctx_error()))
        return out[0] if single else out

    def logits(self, frames):
        """float32 (classes,) for one frame, (N, classes) for a batch; for a
        segmentation model per patch, (grid^2, classes) and (N, grid^2,
        classes), patch n at row n // grid, column n % grid of the grid."""
        if self.head == "class":
            return self._run(frames, (self.num_classes,), np.float32,
                             lambda x, n, z: _lib.evrt_infer(self._ctx, x, n, z))
        return self._run(frames, (self.grid * self.grid, self.num_classes), np.float32,
                         lambda x, n, z: _lib.evrt_infer_seg(self._ctx, x, n, z, None, None))

    def mask(self, frames):
        """A segmentation model's class of every pixel of the model's input
        (frames resized as for logits): uint8 (img_size, img_size) for one
        frame, (N, img_size, img_size) for a batch; libevrt's decoder, so
        evit-run's --mask of the same pixels."""
        if self.head == "class":
            raise Error("%s: a class-head model has no mask: mask() takes a segmentation model" % self.path)
        return self._run(frames, (self.img_size, self.img_size), np.uint8,
                         lambda x, n, m: _lib.evrt_infer_seg(self._ctx, x, n, None, None, m))

    def top(self, frames, k=5):
        """(indices, probabilities) of the k most likely classes, best first:
        int64 and float64 (k,) for one frame, (N, k) for a batch.  Softmax in
        double with the largest logit subtracted, ties to the lower index,
        as evit-run.  A class head's only (a segmentation model: mask)."""
        if self.head != "class":
            raise Error("%s: a segmentation model has no top classes of an image: use mask() (or logits(), "
                        "per patch)" % self.path)
        k = min(_int_in(self.path, "k", k, 1, 1 << 30), self.num_classes)
        z = self.logits(frames)
        z2 = np.atleast_2d(z).astype(np.float64)
        idx = np.argsort(-z2, axis=1, kind="stable")[:, :k]
        e = np.exp(z2 - z2.max(axis=1, keepdims=True))
        total = np.cumsum(e, axis=1)[:, -1:]  # summed in order, as evit-run
        p = np.take_along_axis(e, idx, axis=1) / total
        return (idx[0], p[0]) if z.ndim == 1 else (idx, p)

    def close(self):
        """Frees the context and unmaps the file (idempotent)."""
        if self._ctx is not None:
            _lib.evrt_ctx_destroy(self._ctx)
            self._ctx = None
        if self._f is not None:
            _lib.evrt_close(self._f)
            self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def __repr__(self):
        return "evrt.Model(%r: %dx%dx%d -> %d classes%s)" % (
            self.path, self.img_size, self.img_size, self.channels, self.num_classes,
            " per pixel" if getattr(self, "head", "class") != "class" else "")


# ---------------------------------------------------------------- the CLI

def _pnm_int(data, pos):
    """One PNM header integer at data[pos:] (white space and # comments
    first, exactly one white space after): (value, next position)."""
    n = len(data)
    while pos < n:
        if data[pos:pos + 1] == b"#":
            while pos < n and data[pos:pos + 1] != b"\n":
                pos += 1
        elif data[pos:pos + 1] in (b" ", b"\t", b"\n", b"\r"):
            pos += 1
        else:
            break
    start = pos
    while pos < n and 48 <= data[pos] <= 57 and pos - start < 8:
        pos += 1
    if pos == start or pos >= n or data[pos:pos + 1] not in (b" ", b"\t", b"\n", b"\r"):
        raise ValueError("bad PGM/PPM header")
    return int(data[start:pos]), pos + 1


def read_image(path):
    """uint8 (H, W, C) from a binary PGM/PPM (as evit-run reads them) or a
    .npy of uint8 (H, W), (H, W, C) or (N, H, W, C)."""
    try:
        with open(path, "rb") as fp:
            data = fp.read()
    except OSError as e:
        raise Error("%s: cannot open (%s)" % (path, e.strerror or e))
    if data[:6] == b"\x93NUMPY":
        import io
        try:
            x = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as e:
            raise Error("%s: not a plain .npy array (%s)" % (path, str(e).splitlines()[0]))
        if x.dtype != np.uint8:
            raise Error("%s: the array must be uint8, got %s" % (path, x.dtype))
        return x
    if data[:4] == b"\x89PNG":
        raise Error("%s: PNG is not read here: convert to PGM/PPM or .npy" % path)
    if len(data) < 2 or data[:1] != b"P" or data[1:2] not in (b"5", b"6"):
        raise Error("%s: not a binary PGM/PPM (P5/P6) or .npy" % path)
    c = 1 if data[1:2] == b"5" else 3
    try:
        w, pos = _pnm_int(data, 2)
        h, pos = _pnm_int(data, pos)
        maxval, pos = _pnm_int(data, pos)
    except ValueError as e:
        raise Error("%s: %s" % (path, e))
    if w < 1 or h < 1:
        raise Error("%s: bad PGM/PPM header" % path)
    if not 1 <= maxval <= 255:
        raise Error("%s: PGM/PPM maxval must be 1..255 (8-bit)" % path)
    n = w * h * c
    if len(data) - pos < n:
        raise Error("%s: truncated pixel data" % path)
    x = np.frombuffer(data, dtype=np.uint8, count=n, offset=pos).reshape(h, w, c)
    if maxval != 255:  # (v * 255 + maxval / 2) / maxval in integers, as evit-run
        v = np.minimum(x.astype(np.int64), maxval)
        x = ((v * 255 + maxval // 2) // maxval).astype(np.uint8)
    return x


def _hex(v):
    """C's printf("%a") of a double: float.hex without trailing zeros."""
    s = float(v).hex()
    if "p" not in s:
        return s  # inf, nan
    mant, exp = s.split("p")
    mant = mant.rstrip("0").rstrip(".")
    return mant + "p" + exp


def shares_line(model, mask):
    """evit-run's line for a segmentation model's mask, without the
    latency: "C classes  K1 S1% NAME1  K2 S2% NAME2  K3 S3% NAME3", the 3
    classes of the most pixels, largest first (the lower class among
    equals)."""
    count = np.bincount(mask.ravel(), minlength=256)
    order = np.argsort(-count, kind="stable")
    present = int((count > 0).sum())
    out = "%d class%s" % (present, "" if present == 1 else "es")
    for k in order[:min(3, present)]:
        name = model.class_names[k] if model.class_names else None
        out += "  %d %.2f%%%s" % (k, 100.0 * count[k] / mask.size, " " + name if name is not None else "")
    return out


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="evrt", description="Classifies IMAGE with a model written by "
                                 "evit-export (libevrt through ctypes) and prints the top 5, as evit-run; "
                                 "a segmentation model: evit-run's line of the mask's classes and their "
                                 "shares of its pixels, without the latency.")
    ap.add_argument("model", metavar="MODEL.evit")
    ap.add_argument("image", metavar="IMAGE", help="binary PGM/PPM, or .npy of uint8 (H, W[, C])")
    ap.add_argument("--logits", action="store_true", help="every class's logit as an exact hex float "
                    "(a segmentation model: of every patch, 'N K LOGIT')")
    ap.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    a = ap.parse_args(argv)
    try:
        img = read_image(a.image)
        with Model(a.model, threads=a.threads) as m:
            got = _as_batch(img, m.channels)
            if isinstance(got, str) or not got[1]:
                raise Error("%s: %s" % (a.image, got if isinstance(got, str) else
                                        "one image (H, W[, C]) expected, got shape %s" % (img.shape,)))
            if a.logits:
                z = m.logits(img)
                for i, v in enumerate(z.ravel()):
                    print("%d %s" % (i, _hex(v)) if z.ndim == 1 else
                          "%d %d %s" % (i // m.num_classes, i % m.num_classes, _hex(v)))
                return 0
            if m.head != "class":
                print(shares_line(m, m.mask(img)))
                return 0
            idx, p = m.top(img, 5)
            for r, (i, q) in enumerate(zip(idx, p)):
                name = m.class_names[i] if m.class_names else ""
                print("%d  %8.4f%%  %d  %s" % (r + 1, 100.0 * q, i, name))
    except Error as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
