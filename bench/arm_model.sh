#!/bin/sh
# bench/arm_model.sh: a MODEL of batch-1 latency on the Jetson Nano (4x
# Cortex-A57, 1.43 GHz) without a Nano.  runtime/kernels_arm.c and
# runtime/kernels.c are cross-compiled to assembly for -mcpu=cortex-a57
# with the runtime's flags, and innermost loops are timed by llvm-mca
# (cycles per iteration = Total Cycles / 1000 iterations):
#   - matmuls: in each kernel the single-block loop with the most
#     multiply-accumulates; MACs per iteration counted from its instructions;
#   - the rest (LayerNorm, softmax, GELU, quantization, K/V quantization,
#     residual adds): every pass a kernel makes over its data; elements per
#     iteration from the vector widths.
# Those rates and each model's work (configs/models/deit-tiny.json,
# fm-tiny.json and the 512x512 segmentation models seg-deit-tiny-512.json
# and seg-deit-tiny-512-mlp.json (SegFormer's all-MLP decoder), whose
# upsampling and argmax (evrt_seg_rows_fast) are timed like the other non-matmul
# kernels; per block, from its token count) give projected milliseconds
# for float32, INT8 linears, INT8 linears + attention, and the latter with
# Token Merging (r tokens merged per block).
#
#   bench/arm_model.sh [--help]     (needs aarch64-linux-gnu-gcc, llvm-mca)
set -eu
USAGE='usage: bench/arm_model.sh [--help]'
case ${1:-} in
-h | --help) echo "$USAGE"; exit 0 ;;
'') ;;
*) echo "$USAGE" >&2; exit 2 ;;
esac
SRC=$(cd "$(dirname "$0")/.." && pwd)
XCC=${XCC:-aarch64-linux-gnu-gcc}
MCA=${MCA:-llvm-mca}
need() { command -v "$1" >/dev/null 2>&1 || { echo "error: $1: not installed (apt-get install $2)" >&2; exit 1; }; }
need "$XCC" gcc-aarch64-linux-gnu
need "$MCA" llvm
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# cc FILE.c OUT.s NAME: FILE.c to assembly as libevrt is built (Makefile.am, configure.ac's EVIT_OPT)
cc() {
    "$XCC" -mcpu=cortex-a57 -std=c99 -O2 -ffp-contract=off -fno-trapping-math -I"$SRC/runtime" \
        -S "$1" -o "$2" 2>"$W/err" \
        || { echo "error: $3: does not compile for AArch64: $(head -1 "$W/err")" >&2; exit 1; }
}
cc "$SRC/runtime/kernels_arm.c" "$W/k.s" "$SRC/runtime/kernels_arm.c"
# The merge-free path: a copy of kernels.c with its `if (bias)` branches
# (proportional attention, after a merge) compiled out, so that a kernel's
# two alternative paths are not both counted as passes.
NBIAS=$(grep -c 'if (bias)' "$SRC/runtime/kernels.c" || true)
sed 's/if (bias)/if (0)/' "$SRC/runtime/kernels.c" >"$W/kernels.c"
cc "$W/kernels.c" "$W/kc.s" "$SRC/runtime/kernels.c"
echo "# MODEL, not a measurement: $("$XCC" --version | head -1)," \
    "$("$MCA" --version | grep -i 'llvm version' | sed 's/^ *//')"
/usr/bin/python3 - "$SRC" "$W" "$MCA" "$NBIAS" <<'PYEOF'
import json, re, subprocess, sys
src, w, mca, nbias = sys.argv[1:5]
ASM = [open(w + f).read().split("\n") for f in ("/k.s", "/kc.s")]  # kernels_arm.c, kernels.c
LABEL = re.compile(r"^(\.?L\w+):")
BRANCH = re.compile(r"^(b|b\.?(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le)|cbn?z|tbn?z|ret|br|blr?)$")
LANES = {"16b": 16, "8b": 8, "8h": 8, "4h": 4, "4s": 4, "2s": 2, "2d": 2}
MUL = {"fmla", "fmls", "mla", "mls"} | {p + s for p in ("smull", "smlal", "smlsl", "umull", "umlal")
                                        for s in ("", "2")}
GHZ = 1.43

def body(name):  # NAME: up to .size NAME, in the first file that has it
    for asm in ASM:
        if name + ":" not in asm: continue
        a = asm.index(name + ":")
        b = next(i for i in range(a, len(asm)) if re.match(r"\s*\.size\s+%s," % name, asm[i]))
        return asm[a + 1:b]
    return None

def loops(lines):  # single-block loops: label, instructions, branch back to the label
    for i, l in enumerate(lines):
        m = LABEL.match(l)
        ins = []
        for t in lines[i + 1:] if m else []:
            t = t.split("//")[0].strip()
            if LABEL.match(t): break
            if not t or t.startswith("."): continue
            ins.append(t)
            if BRANCH.match(t.split()[0]):
                if t.split()[-1] == m.group(1): yield m.group(1), ins
                break

def macs(ins):  # from the destination's arrangement: fmla v.4s 4, smlal2 v.8h 8, sdot v.4s 16
    n = fmul = fadd = 0
    for t in ins:
        op, args = (t.split(None, 1) + [""])[:2]
        v = re.match(r"v\d+\.(\w+)", args)
        lanes = LANES.get(v.group(1), 0) if v else (1 if re.match(r"[hsd]\d", args) else 0)
        if op in MUL: n += lanes
        elif op in ("sdot", "udot", "usdot"): n += 4 * lanes
        elif op in ("fmadd", "fmsub", "fnmadd", "fnmsub"): n += 1
        elif op == "fmul": fmul += lanes
        elif op == "fadd": fadd += lanes
    return n + min(fmul, fadd)

def split(ins):
    # A57 issues a store's base-register writeback ([x], #16 or [x, #16]!)
    # as its own integer micro-op; llvm-mca 14 has it wait for the stored
    # data, which chains every iteration of an element-wise loop through
    # its pointer.  Timed as a plain store and an add instead.
    out = []
    for t in ins:
        post = re.match(r"(st\w*)\s+(.*),\s*\[(\w+)\],\s*#?(-?\w+)$", t)
        pre = re.match(r"(st\w*)\s+(.*),\s*\[(\w+),\s*#?(-?\w+)\]!$", t)
        m = post or pre
        if not m:
            out.append(t)
            continue
        st = "%s\t%s, [%s]" % (m.group(1), m.group(2), m.group(3))
        add = "add\t%s, %s, %s" % (m.group(3), m.group(3), m.group(4))
        out += [st, add] if post else [add, st]
    return out

def cycles(label, ins, cpu):
    open(w + "/loop.s", "w").write(label + ":\n\t" + "\n\t".join(split(ins)) + "\n")
    attr = ["-mattr=+dotprod"] if any(t.startswith(("sdot", "udot")) for t in ins) else []
    r = subprocess.run([mca, "-mtriple=aarch64", "-mcpu=" + cpu, "-iterations=1000"] + attr + [w + "/loop.s"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("error: %s: %s" % (mca, (r.stderr.strip().split("\n") or ["failed"])[0]))
    return int(re.search(r"Total Cycles:\s+(\d+)", r.stdout).group(1)) / 1000.0

def kernel(names):  # the first function present; its loop with the most MACs (first on a tie)
    for name in names:
        lines = body(name)
        if lines is None: continue
        best = max(((macs(i), l, i) for l, i in loops(lines)), key=lambda b: b[0], default=(0, "", []))
        if best[0] == 0: return dict(name=name, why="no single-block loop with MACs")
        ties = sum(1 for l, i in loops(lines) if macs(i) == best[0])
        return dict(name=name, label=best[1], ins=best[2], mac=best[0], ties=ties,
                    stores=sum(1 for t in best[2] if re.match(r"st[pr1-4]?\s", t)),
                    cyc=cycles(best[1], best[2], "cortex-a57"))
    return dict(name=names[0], why="absent")

# ---- the non-matmul kernels: every pass over the data
def spans(lines):
    # innermost loops, also of several blocks: from a label along the
    # fall-through path (conditional branches elsewhere not taken) to a
    # branch back to it; one to a label in between has an inner loop
    for i, l in enumerate(lines):
        m = LABEL.match(l)
        if not m: continue
        ins, inner = [], set()
        for t in lines[i + 1:]:
            t = t.split("//")[0].strip()
            if LABEL.match(t):
                inner.add(LABEL.match(t).group(1))
                continue
            if not t or t.startswith("."): continue
            ins.append(t)
            op, target = t.split()[0], t.split()[-1]
            if not BRANCH.match(op): continue
            if target == m.group(1): yield m.group(1), ins
            if target == m.group(1) or target in inner or op in ("b", "ret", "br", "blr", "bl"): break

NARROW = re.compile(r"[su]?q?r?(xtn|xtun|shrn|shrun)$|r?(add|sub)hn$")

def lanes(ins):
    # lanes of each arithmetic opcode in an iteration: v.4s 4, v.2d 2, an
    # instruction on s/d/h registers 1 (moves, loads, stores, byte-wide
    # logic and general-register arithmetic not counted).  A narrowing step
    # converts one element a lane of its source (sqxtn v0.4h, v1.4s: 4;
    # sqxtn2 v0.8h, v1.4s: the other 4 of v0.8h; sqxtn v0.8b, v1.8h: 8),
    # and its "2" form finishes the same vector: both counted as one
    # opcode, by the source's lanes, not the destination's
    n = {}
    for t in ins:
        op, args = (t.split(None, 1) + [""])[:2]
        if op.startswith(("ld", "st")) or op in ("mov", "fmov", "movi", "mvni", "dup", "ins", "umov", "smov"):
            continue
        if NARROW.match(op.rstrip("2")):
            src = re.match(r"v\d+\.\w+,\s*v\d+\.(8h|4s|2d)\b", args)
            if src: n[op.rstrip("2")] = n.get(op.rstrip("2"), 0) + LANES[src.group(1)]
            continue
        v = re.match(r"v\d+\.(4s|2s|2d|8h|4h)\b", args)
        if v or re.search(r"\b[hsd]\d+\b", args): n[op] = n.get(op, 0) + (LANES[v.group(1)] if v else 1)
    return n

def halving(ins):  # k >>= 1 in the loop: a tree reduction of partial sums, once a row
    return any(re.match(r"(asr|lsr)\s+(\w+),\s*\2,\s*#?1$", t) for t in ins)

def passes(name, seen=()):
    # The passes of function name and of the functions it calls that were
    # compiled here: its innermost loops with arithmetic.  Elements an
    # iteration = the fewest lanes any one opcode covers (element-wise code
    # does each of its operations at least once an element).  Where the
    # function has vector loops its scalar ones are remainders and left
    # out, and so are tree reductions of partial sums (once a row); loops
    # doing the same operations per element (a 16-lane loop and its
    # vectorised remainder) are one pass, timed as the first.  Returns the
    # passes and the number of loops without arithmetic (copies).
    lines = body(name)
    if lines is None: return None, 0
    found, copies = [], 0
    for label, ins in spans(lines):
        n = lanes(ins)
        if not n:
            copies += 1
            continue
        if halving(ins): continue
        e = min(n.values())
        found.append((label, ins, e, tuple(sorted((op, round(k / e, 3)) for op, k in n.items()))))
    if any(f[2] > 1 for f in found): found = [f for f in found if f[2] > 1]
    ps, kinds = [], set()
    for label, ins, e, kind in found:
        if kind in kinds: continue
        kinds.add(kind)
        ps.append(dict(fn=name, label=label, elts=e, cyc=cycles(label, ins, "cortex-a57")))
    callees = [t.split()[-1] for t in lines if t.split()[:1] == ["bl"]]
    for callee in sorted(set(callees) - set(seen) - {name}, key=callees.index):
        more, c = passes(callee, seen + (name,))
        if more: ps, copies = ps + more, copies + c
    return ps, copies

ks = [("f32p_neon", "f32", kernel(["f32p_neon"])), ("i8p_neon", "int8", kernel(["i8p_neon", "i8_neon"])),
      ("i8p_dot*", "int8", kernel(["i8p_dot", "i8_dot"]))]
print("\nPer-kernel hot loop, llvm-mca -mcpu=cortex-a57 (cycles = Total Cycles / 1000 iterations; data in L1)")
print("%-22s %6s %8s %9s %9s %12s" % ("kernel [loop]", "insns", "MACs/it", "cycles/it", "MACs/cyc", "ops/cyc"))
for want, kind, k in ks:
    if "why" in k:
        print("%-22s %s" % (k["name"], "n/a (%s)" % k["why"])); continue
    k["rate"] = k["mac"] / k["cyc"]
    tag = "%s%s [%s]" % (k["name"], "*" * want.endswith("*"), k["label"])
    print("%-22s %6d %8d %9.2f %9.2f %7.2f %s" % (tag, len(k["ins"]), k["mac"], k["cyc"], k["rate"], 2 * k["rate"], kind))
    if k["name"] != want.rstrip("*"):
        print("  fallback: %s is absent, %s modelled instead" % (want.rstrip("*"), k["name"]))
    if k["ties"] > 1: print("  %d loops tie at %d MACs; the first (%s) is taken" % (k["ties"], k["mac"], k["label"]))
    if k["stores"]: print("  %s has %d stores an iteration: accumulators in memory?" % (k["label"], k["stores"]))
f, i8, dot = ks[0][2], ks[1][2], ks[2][2]
if "rate" not in f or "rate" not in i8:
    sys.exit("error: %s/runtime/kernels_arm.c: no MAC loop for f32p_neon or i8p_neon" % src)
print("i8p_dot*: sdot is ARMv8.2 (Orin's A78AE; not the Nano's ARMv8.0 A57): hypothetical, A57 model + dotprod")
if "rate" in dot and cycles(dot["label"], dot["ins"], "cortex-a76") == dot["cyc"]:
    print("  (this llvm-mca times cortex-a76 exactly as cortex-a57: no separate Orin/A76 line)")
print("INT8/float ops per cycle, Nano (%s / f32p_neon): %.2f" % (i8["name"], i8["rate"] / f["rate"]))
print("anchor: gemmlowp measured ~12.4 int8 ops/cycle on a Cortex-A57 (SMLAL kernel) against ~6.8 float: 1.82")
print("INT8 attention (evrt.c att_i8_run) runs q k^T and p v through the same packed kernel: %s's rate"
      % i8["name"])
ai8 = i8

# part, the function the neon kernels run (kernels_arm.c's neon_kernels, kernels.c's
# INT8 attention, evrt.c's residual add), the file it is in
PARTS = (("layernorm", "evrt_layernorm_fast", "kernels.c"), ("softmax", "evrt_softmax_fast", "kernels.c"),
         ("softmax_i8", "evrt_softmax_i8", "kernels.c"), ("gelu", "evrt_gelu_fast", "kernels.c"),
         ("quantize", "quant_pad", "kernels_arm.c"), ("kv_quant", "att8_kv_rows_arm", "kernels_arm.c"),
         ("add", "evrt_add_fast", "kernels.c"), ("decode", "evrt_seg_rows_fast", "kernels.c"))
print("\nNon-matmul kernels, llvm-mca -mcpu=cortex-a57: every pass over the data (cycles per element = sum")
print("over passes of cycles/it / elements/it; elements/it from the vector widths; post-indexed stores timed")
print("as store + add)")
print("%-11s %-22s %-52s %8s" % ("part", "function", "passes [loop elements/it cycles/it]", "cyc/elt"))
cpe, notes = {}, []
for part, fn, file in PARTS:
    ps, copies = passes(fn)
    if not ps:
        sys.exit("error: %s/runtime/%s: %s: %s"
                 % (src, file, fn, "absent" if ps is None else "no loop with arithmetic"))
    cpe[part] = sum(p["cyc"] / p["elts"] for p in ps)
    desc = " ".join("%s%s %d %.2f" % ("" if p["fn"] == fn else p["fn"] + " ", p["label"], p["elts"], p["cyc"])
                    for p in ps)
    desc += " (scalar)" if max(p["elts"] for p in ps) == 1 else ""
    print("%-11s %-22s %-52s %8.2f" % (part, fn, desc, cpe[part]))
    if copies: notes.append("  %s: %d loop(s) without arithmetic (copies, packing) not timed" % (fn, copies))
for n in notes: print(n)
print("  `if (bias)` compiled out of kernels.c in %s place(s): the merge-free path" % nbias)

def work(c, r, lin8, att8):
    """MACs and elements of one batch-1 inference; r tokens merged a block (ToMe; 0: none)."""
    T0, D, M, L = 1 + (c["img_size"] // c["patch"]) ** 2, c["embed_dim"], c["mlp_hidden"], c["depth"]
    H, C, P = c["num_heads"], c["num_classes"], c["channels"] * c["patch"] ** 2
    d = D // H
    # a segmentation head (Segmenter's linear decoder) classifies every
    # patch: no class-token-only last block, the final norm and the head on
    # every token, then the decoder's upsampling and argmax per pixel
    seg = c.get("head", "class") != "class"
    nh = T0 - 1 if seg else 1
    w = dict.fromkeys(("lin", "at", "sim") + tuple(p[0] for p in PARTS) + ("merge",), 0)
    w["lin"] = (T0 - 1) * P * D + nh * D * C  # patch embedding, head
    w["quantize"] = ((T0 - 1) * P + nh * D) * lin8  # their inputs
    w["add"] = T0 * D  # position embedding
    w["layernorm"] = (T0 if seg else 1) * D  # the final norm
    w["decode"] = c["img_size"] ** 2 * C if seg else 0
    if c.get("head") == "seg_mlp":
        # SegFormer's all-MLP decoder (evrt.c "seg_mlp's decoder"): on the
        # N patch tokens of Ld levels (config.c's defaults: width D / 2, the
        # min(depth, 4) evenly spaced blocks), a LayerNorm and linear_c
        # (D to Cd) each, the fuse layer (Ld Cd to Cd), its ReLU (at
        # evrt_add_fast's rate) and the head (Cd to C) instead of D to C;
        # the last level's LayerNorm is the final norm, on the patch tokens
        N, Cd = T0 - 1, c.get("decoder_dim", max(D // 2, 1))
        Ld = len(c.get("decoder_levels", range(min(L, 4))))
        w["lin"] += Ld * N * D * Cd + N * Ld * Cd * Cd + N * Cd * C - nh * D * C
        w["quantize"] += (Ld * N * D + N * Ld * Cd + N * Cd - nh * D) * lin8
        w["layernorm"] += Ld * N * D - T0 * D
        w["add"] += N * Cd
    T, Ts = T0, []
    for l in range(L):
        # the last block needs qkv of every token but the rest for the
        # class token only; a merging block merges after attention and its
        # projection (evrt.c, model/vit.c), so its MLP has the nm = T - r
        # tokens that go on
        nq = 1 if l == L - 1 and not seg else T
        rl = min(r, (T + 1) // 2 - 1) if l < L - 1 else 0
        nm = nq - rl
        Ts.append(T)
        w["lin"] += 3 * T * D * D + nq * D * D + nm * 2 * D * M
        w["at"] += 2 * nq * T * D  # q k^T and p v, H heads of d
        w["layernorm"] += (T + nm) * D
        w["softmax_i8" if att8 else "softmax"] += H * nq * T
        w["gelu"] += nm * M
        w["add"] += (nq + nm) * D
        # inputs of qkv, proj, fc1 and fc2; INT8 attention also quantizes q
        # (rounded by evrt_qsym, then through quant: twice) and P, and each
        # head's K and V (att8_kv_rows_arm)
        w["quantize"] += (T * D + nq * D + nm * (D + M)) * lin8 + (2 * nq * D + H * nq * T) * att8
        w["kv_quant"] += 2 * T * D * att8
        if T < T0: w["merge"] += H * nq * T  # proportional attention: + log size, one add a score
        if rl > 0:
            # ToMe: the metric (keys averaged over the heads, T H d adds),
            # its rows normalised (a square-sum and a scale, 2 T d), the
            # similarities of A's na tokens to B's nb on f32p_neon, the argmax
            # over them (one op a score) and the size-weighted average of the
            # stream (one multiply-add an element, T D; evrt.c folds the
            # residual add into it, counted above); all but the similarities
            # at evrt_add_fast's rate per element
            na, nb = (T + 1) // 2, T // 2
            w["sim"] += na * nb * d
            w["merge"] += T * H * d + 2 * T * d + na * nb + T * D
        T -= rl
    w["tokens"] = "%d" % T0 if Ts[-1] == T0 else "%d>%d" % (T0, Ts[-1])
    return w

def ms(cyc): return cyc / (GHZ * 1e6)

HDR = ("configuration", "tokens", "MMACs", "matmul ms", "other ms", "total ms", "4 thr ms", "speedup")
for model, rs in (("deit-tiny", (8, 16)), ("fm-tiny", (2, 4)), ("seg-deit-tiny-512", ()),
                  ("seg-deit-tiny-512-mlp", ())):
    c = json.load(open("%s/configs/models/%s.json" % (src, model)))
    w0 = work(c, 0, 1, 1)
    print("\n%s: T=%d tokens, D=%d, %d heads, MLP %d, depth %d; matmul MACs: linear %.2fM, attention %.2fM"
          % (model, 1 + (c["img_size"] // c["patch"]) ** 2, c["embed_dim"], c["num_heads"], c["mlp_hidden"],
             c["depth"], w0["lin"] / 1e6, w0["at"] / 1e6))
    print("%-36s %8s %8s %10s %9s %9s %9s %8s" % HDR)
    rows = [("float32 (f32p_neon)", work(c, 0, 0, 0), f, f),
            ("INT8 linear, float attention", work(c, 0, 1, 0), i8, f),
            ("INT8 linear + attention (%s)" % ai8["name"], w0, i8, ai8)]
    rows += [("  + ToMe r=%d" % r, work(c, r, 1, 1), i8, ai8) for r in rs]
    base = None
    for name, wk, lk, ak in rows:
        mm = wk["lin"] / lk["rate"] + wk["at"] / ak["rate"] + wk["sim"] / f["rate"]
        parts = {p: wk[p] * cpe[p] for p, _, _ in PARTS}
        parts["merge"] = wk["merge"] * cpe["add"]
        wk["parts"] = parts
        tot = ms(mm + sum(parts.values()))
        if name.startswith("INT8 linear + attention"): base = tot
        print(("%-36s %8s %8.2f %10.3f %9.3f %9.3f %9.3f %8s"
               % (name, wk["tokens"], (wk["lin"] + wk["at"] + wk["sim"]) / 1e6, ms(mm), ms(sum(parts.values())),
                  tot, tot / 4, "%.2fx" % (base / tot) if name.startswith("  +") else "")).rstrip())
    cols = [p for p, _, _ in PARTS] + ["merge"]
    print("%-40s %s" % ("  other ms, 1 thread, by part", " ".join("%10s" % p for p in cols)))
    for name, wk, _, _ in rows:
        print("%-40s %s" % ("    " + name.strip(), " ".join("%10.3f" % ms(wk["parts"][p]) for p in cols)))
print("\nmatmul: linears and attention's q k^T, p v (and ToMe's similarities: f32p_neon); other: every non-matmul")
print("kernel above, times its elements (LayerNorm 2 T D a block, softmax H T T, GELU T M, quantization of each INT8")
print("input, K/V quantization, residual adds 2 T D; the last block 1 query); merge: ToMe's metric, normalisation,")
print("argmax and average and proportional attention's add a score, at evrt_add_fast's rate.  Not modelled: memory")
print("traffic (llvm-mca assumes every load hits L1), outer-loop and edge overhead, patchify, attention's K^T and")
print("packing copies, ToMe's ranking (serial), thread sync.  4 threads = 1 thread / 4: perfect scaling over the")
print("Nano's 4 cores, an upper bound.  speedup: against the r=0 row.  Clock %.2f GHz." % GHZ)
PYEOF
