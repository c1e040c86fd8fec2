#!/bin/sh
# bench/arm_model.sh: a MODEL of batch-1 latency on the Jetson Nano (4x
# Cortex-A57, 1.43 GHz) without a Nano.  runtime/kernels_arm.c is
# cross-compiled to assembly for -mcpu=cortex-a57; in each kernel the
# single-block loop with the most multiply-accumulates is timed by llvm-mca
# (cycles per iteration = Total Cycles / 1000 iterations); MACs per
# iteration are counted from its instructions.  Those rates and each model's
# matmul MACs (configs/models/deit-tiny.json, fm-tiny.json) give projected
# milliseconds for float32, INT8 linears, and INT8 linears + attention.
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
"$XCC" -mcpu=cortex-a57 -std=c99 -O2 -ffp-contract=off -fno-trapping-math -I"$SRC/runtime" \
    -S "$SRC/runtime/kernels_arm.c" -o "$W/k.s" 2>"$W/err" \
    || { echo "error: $SRC/runtime/kernels_arm.c: does not compile for AArch64: $(head -1 "$W/err")" >&2; exit 1; }
echo "# MODEL, not a measurement: $("$XCC" --version | head -1)," \
    "$("$MCA" --version | grep -i 'llvm version' | sed 's/^ *//')"
/usr/bin/python3 - "$SRC" "$W" "$MCA" <<'PYEOF'
import json, re, subprocess, sys
src, w, mca = sys.argv[1:4]
asm = open(w + "/k.s").read().split("\n")
LABEL = re.compile(r"^(\.?L\w+):")
BRANCH = re.compile(r"^(b|b\.?(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le)|cbn?z|tbn?z|ret|br|blr?)$")
LANES = {"16b": 16, "8b": 8, "8h": 8, "4h": 4, "4s": 4, "2s": 2, "2d": 2}
MUL = {"fmla", "fmls", "mla", "mls"} | {p + s for p in ("smull", "smlal", "smlsl", "umull", "umlal")
                                        for s in ("", "2")}
GHZ = 1.43

def body(name):  # NAME: up to .size NAME
    if name + ":" not in asm: return None
    a = asm.index(name + ":")
    b = next(i for i in range(a, len(asm)) if re.match(r"\s*\.size\s+%s," % name, asm[i]))
    return asm[a + 1:b]

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

def cycles(label, ins, cpu):
    open(w + "/loop.s", "w").write(label + ":\n\t" + "\n\t".join(ins) + "\n")
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

for model in ("deit-tiny", "fm-tiny"):
    c = json.load(open("%s/configs/models/%s.json" % (src, model)))
    T, D, M, L = 1 + (c["img_size"] // c["patch"]) ** 2, c["embed_dim"], c["mlp_hidden"], c["depth"]
    P = c["channels"] * c["patch"] ** 2
    # the last block needs qkv of every token but the rest for the class token only
    lin = (T - 1) * P * D + (L - 1) * T * (3 * D * D + D * D + 2 * D * M) + 3 * T * D * D + D * D + 2 * D * M \
        + D * c["num_classes"]
    at = (L - 1) * 2 * T * T * D + 2 * T * D
    print("\n%s: T=%d tokens, D=%d, MLP %d, depth %d; matmul MACs: linear %.2fM, attention %.2fM"
          % (model, T, D, M, L, lin / 1e6, at / 1e6))
    print("%-40s %8s %10s %10s" % ("configuration", "MMACs", "ms 1 thr", "ms 4 thr"))
    for name, cyc in (("float32 (f32p_neon)", (lin + at) / f["rate"]),
                      ("INT8 linear, float attention", lin / i8["rate"] + at / f["rate"]),
                      ("INT8 linear + attention (%s)" % ai8["name"], lin / i8["rate"] + at / ai8["rate"])):
        ms = cyc / (GHZ * 1e6)
        print("%-40s %8.2f %10.3f %10.3f" % (name, (lin + at) / 1e6, ms, ms / 4))
print("\nModel of matmul work only: LayerNorm, softmax, GELU, quantisation and memory traffic are not modelled;")
print("llvm-mca assumes every load hits L1 and times the innermost loop alone (no outer-loop or edge overhead).")
print("4 threads = 1 thread / 4: perfect scaling over the Nano's 4 cores, an upper bound. Clock %.2f GHz." % GHZ)
PYEOF
