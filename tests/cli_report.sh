#!/bin/sh
# cli_report.sh: evit-report compare on real reports from evit-init and
# evit-eval, chained with --parent: the table, every format, ancestors read
# from disk, folders, the chart, a lineage that changes dataset, and the
# inputs it must refuse in one line.
set -eu
. "$EVIT_SRC/tests/lib.sh"

R="$EVIT_BIN/evit-report"
needs_python

# --- help and usage
succeeds "$R" --help; stdout_has "usage: evit-report compare"
fails_with 2 "$R"
fails_with 2 "$R" compare
fails_with 2 "$R" summarise x.json
fails_with 2 "$R" compare --format xml x.json
fails_with 2 "$R" compare --bogus x.json
ok "help exits 0 and usage errors exit 2"

# --- three models in a lineage, evaluated on one dataset, a fourth on another
synth_data "$T/d.h5" 200 28 10
synth_data "$T/other.h5" 120 28 10
cat >"$T/small.json" <<'JSON'
{"name":"small","img_size":28,"channels":1,"patch":4,"num_classes":10,"embed_dim":64,"depth":2,
 "blocks":[{"num_heads":2,"head_dim":16,"mlp_hidden":96},{"num_heads":2,"head_dim":16,"mlp_hidden":64}]}
JSON
mkdir "$T/run"
succeeds "$INIT" fm-tiny -o "$T/run/big.h5" --seed 1 --data "$T/d.h5"
succeeds "$INIT" "$T/small.json" -o "$T/run/small.h5" --seed 2 --data "$T/d.h5"
succeeds "$EVAL" "$T/run/big.h5" "$T/d.h5" --report "$T/run/big.json" --stage init -q
succeeds "$EVAL" "$T/run/small.h5" "$T/d.h5" --report "$T/run/pruned.json" --stage prune \
    --parent "$T/run/big.json" -q
# a relative parent, as a pipeline writes it from the report's folder
(cd "$T/run" && "$EVAL" small.h5 ../d.h5 --report tuned.json --stage finetune --parent pruned.json -q) \
    >/dev/null 2>&1 || fail "evit-eval with a relative parent"
printf '{"epochs": 3}\n' >"$T/run/recipe.json"

# expected cells, from the reports themselves
expect() { # expect REPORT FIRST PARENT: "top1 drop/parent drop/first size-ratio"
    "$PY" - "$@" <<'EOF'
import json, sys
r, f, p = (json.load(open(x)) for x in sys.argv[1:4])
print("%.2f %.2f %.2f %.1fx" % (r["top1"], p["top1"] - r["top1"], f["top1"] - r["top1"],
                                 f["model_bytes"] / r["model_bytes"]))
EOF
}
set -- $(expect "$T/run/tuned.json" "$T/run/big.json" "$T/run/pruned.json")
top1=$1 dparent=$2 dfirst=$3 ratio=$4

succeeds "$R" compare "$T/run/big.json" "$T/run/pruned.json" "$T/run/tuned.json"
stdout_has "chain 1: 3 reports on $T/d.h5"
for h in stage model "top-1 %" drop/parent drop/first params bytes MFLOPs "latency ms" size speed; do
    stdout_has "$h"
done
row=$(grep ' finetune ' "$T/out") || fail "no finetune row"
for cell in small.h5 "$top1" "$dparent" "$dfirst" "$ratio smaller"; do
    case "$row" in *"$cell"*) ;; *) fail "finetune row lacks '$cell': $row" ;; esac
done
grep -q '^1  init  *big.h5 .* 205,066  *820,264  *22.3  *[0-9][0-9]*  *-  *1.0x' "$T/out" || fail "first row wrong"
[ "$(grep -c ' init \| prune \| finetune ' "$T/out")" -eq 3 ] || fail "expected 3 rows"
# rows in lineage order: init, prune, finetune
[ "$(awk '$2=="init"{a=NR} $2=="prune"{b=NR} $2=="finetune"{c=NR} END{print (a<b && b<c)}' "$T/out")" = 1 ] \
    || fail "rows out of lineage order"
ok "a chain of three reports gives one table with drops and ratios from the reports"

# only the last named: its ancestors are read from disk; a folder gives the same
cp "$T/out" "$T/named.txt"
succeeds "$R" compare "$T/run/tuned.json"
cmp -s "$T/out" "$T/named.txt" || fail "ancestors read from disk give another table"
succeeds "$R" compare "$T/run"
cmp -s "$T/out" "$T/named.txt" || fail "the folder gives another table"
ok "ancestors are read through parent fields, and a folder skips JSON that is not a report"

# --- formats
succeeds "$R" compare "$T/run" --format md
stdout_has "### Chain 1: 3 reports on"
stdout_has "| 1 | init | big.h5 |"
stdout_has "|---:|"
succeeds "$R" compare "$T/run" --format csv
[ "$(wc -l <"$T/out")" -eq 4 ] || fail "csv: expected a header and 3 rows"
head -n 1 "$T/out" | grep -q '^chain,row,parent_row,stage,report,model,dataset,top1,' || fail "csv header"
grep -q '^1,3,2,finetune,' "$T/out" || fail "csv: the finetune row names row 2 as its parent"
succeeds "$R" compare "$T/run" --format json
"$PY" - "$T/out" "$T/run/big.json" "$T/run/tuned.json" <<'EOF' || fail "json output"
import json, sys
out = json.load(open(sys.argv[1]))
big, tuned = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
rows = out["chains"][0]["rows"]
assert len(out["chains"]) == 1 and len(rows) == 3, out
assert [r["stage"] for r in rows] == ["init", "prune", "finetune"], rows
assert abs(rows[2]["drop_vs_first"] - (big["top1"] - tuned["top1"])) < 1e-9
assert abs(rows[2]["size_ratio"] - big["model_bytes"] / tuned["model_bytes"]) < 1e-9
assert rows[2]["latency_ms"] is None and rows[0]["parent_row"] is None
EOF
ok "md, csv and json carry the same rows"

# --- the chart
png_size() { # prints "W H" after checking the PNG decodes to W*H RGB pixels
    "$PY" - "$1" <<'EOF'
import struct, sys, zlib
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, w = 8, b"", 0
while pos < len(b):
    n, kind = struct.unpack(">I4s", b[pos:pos + 8])
    data = b[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, color = struct.unpack(">IIBB", data[:10])
        assert depth == 8 and color == 2, "expected 8-bit RGB"
    elif kind == b"IDAT":
        idat += data
    pos += 12 + n
assert len(zlib.decompress(idat)) == h * (1 + 3 * w), "pixel data size"
print(w, h)
EOF
}
succeeds "$R" compare "$T/run" --png "$T/chart.png"
cmp -s "$T/out" "$T/named.txt" || fail "--png changed the table"
size=$(png_size "$T/chart.png") || fail "the chart does not decode"
set -- $size
[ "$1" -ge 600 ] && [ "$2" -ge 400 ] || fail "chart is $size"
# with latency_ms in the reports, a second panel
for f in big pruned tuned; do
    "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); r["latency_ms"]=float(sys.argv[2]); json.dump(r,open(sys.argv[1],"w"))' \
        "$T/run/$f.json" "$(case $f in big) echo 4.0 ;; pruned) echo 2.0 ;; *) echo 1.6 ;; esac)"
done
succeeds "$R" compare "$T/run" --png "$T/chart2.png"
row=$(grep ' finetune ' "$T/out")
case "$row" in *"1.60"*"2.5x faster"*) ;; *) fail "latency not used: $row" ;; esac
set -- $(png_size "$T/chart2.png")
[ "$1" -ge 1200 ] || fail "no latency panel: width $1"
ok "the chart is a PNG, with a latency panel when reports have latency_ms"

# --- a lineage that changes dataset is split, with notes
succeeds "$EVAL" "$T/run/small.h5" "$T/other.h5" --report "$T/other.json" --stage eval \
    --parent "$T/run/tuned.json" -q
succeeds "$R" compare "$T/run" "$T/other.json" --png "$T/mixed.png"
stdout_has "2 separate chains"
stdout_has "chain 1: 3 reports on $T/d.h5"
stdout_has "chain 2: 1 report on $T/other.h5"
stdout_has "evaluated on another dataset"
stdout_has "continues in chain 2"
succeeds "$R" compare "$T/run" "$T/other.json" --format csv
[ "$(grep -c '^2,1,,eval,' "$T/out")" -eq 1 ] || fail "csv: the other dataset is not chain 2"
stderr_has "note: 2 separate chains"
# an unrelated report on the same data: its own chain too
succeeds "$EVAL" "$T/run/big.h5" "$T/d.h5" --report "$T/lone.json" --stage lone -q
succeeds "$R" compare "$T/run/tuned.json" "$T/lone.json"
stdout_has "2 separate chains"
ok "another dataset or no common lineage makes a separate chain, with a note"

# --- bad inputs: one line naming the file, exit 1, nothing on stdout
fails_with 1 "$R" compare "$T/missing.json"; stderr_has "missing.json"
fails_with 1 "$R" compare "$T/run/recipe.json"; stderr_has "recipe.json: not an evit report"
printf '{"report_version": 1, "stage": "x",' >"$T/cut.json"
fails_with 1 "$R" compare "$T/run" "$T/cut.json"; stderr_has "cut.json: invalid JSON"
[ ! -s "$T/out" ] || fail "output printed before the error"
printf '{"report_version": 1, "stage": "x", "top1": "high"}\n' >"$T/type.json"
fails_with 1 "$R" compare "$T/type.json"; stderr_has "type.json: top1: expected a number"
mkdir "$T/empty"
fails_with 1 "$R" compare "$T/empty"; stderr_has "no evit reports"
printf '{"report_version": 1, "stage": "a", "parent": "b.json"}\n' >"$T/a.json"
printf '{"report_version": 1, "stage": "b", "parent": "a.json"}\n' >"$T/b.json"
fails_with 1 "$R" compare "$T/a.json"; stderr_has "lineage loop"
fails_with 1 "$R" compare "$T/run" --png "$T/no/such/dir/c.png"
[ ! -s "$T/out" ] || fail "a table was printed although the chart failed"
printf '{"report_version": 1, "stage": "export"}\n' >"$T/bare.json"
fails_with 1 "$R" compare "$T/bare.json" --png "$T/bare.png"; stderr_has "no report has both top1 and model_bytes"
ok "missing, non-report, damaged and looping inputs are refused in one line"

echo "cli_report: all checks passed"
