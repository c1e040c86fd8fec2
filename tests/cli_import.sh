#!/bin/sh
# cli_import.sh: evit-import reads timm-named ViTs written as safetensors
# (tests/mksafetensors.py, F32, F16 and BF16), infers their shape, writes a
# checkpoint every stage reads, replaces the head on request; files it cannot
# import are refused in one line that names the problem.
set -eu
. "$EVIT_SRC/tests/lib.sh"

I="$EVIT_BIN/evit-import"
needs_python
MK="$PY $EVIT_SRC/tests/mksafetensors.py"

succeeds "$I" --help; stdout_has "usage: evit-import"
succeeds "$I" --version; stdout_has "evit "
fails_with 2 "$I"
fails_with 2 "$I" m.safetensors
fails_with 2 "$I" m.safetensors -o m.h5
stderr_has "--heads"
fails_with 2 "$I" m.safetensors -o m.h5 --heads 0
ok "evit-import has --help and --version and refuses incomplete command lines with exit 2"

$MK "$T/f32.safetensors" --dtype F32 --dim 32 --heads 2 --mlp 48 --depth 3 --metadata format=pt
succeeds "$I" "$T/f32.safetensors" -o "$T/f32.h5" --heads 2 --report "$T/r.json"
stdout_has "28x28x1, patch 4, dim 32, depth 3, heads 2,2,2, 10 classes"
h5dump -a /source_format "$T/f32.h5" >"$T/out" 2>&1 && stdout_has '"safetensors"' || fail "no source_format attribute"
h5dump -a /source_metadata "$T/f32.h5" >"$T/out" 2>&1 && stdout_has 'format' || fail "no source_metadata attribute"
h5dump -a /stage "$T/f32.h5" >"$T/out" 2>&1 && stdout_has '"import"' || fail "stage is not import"
grep -q '"stage":[[:space:]]*"import"' "$T/r.json" || fail "report lacks stage import"
ok "an F32 file imports with its shape inferred and its source recorded in the checkpoint"

# the imported checkpoint goes on through the pipeline
synth_data "$T/d.h5" 64 28 10
succeeds "$EVIT_BIN/evit-eval" "$T/f32.h5" "$T/d.h5" -q --save-logits "$T/l.h5"
succeeds "$EVIT_BIN/evit-export" "$T/f32.h5" -o "$T/f32.evit" -q
ok "an imported checkpoint evaluates and exports"

for dt in F16 BF16; do
    $MK "$T/$dt.safetensors" --dtype $dt --dim 24 --heads 3 --mlp 40 --depth 2
    succeeds "$I" "$T/$dt.safetensors" -o "$T/$dt.h5" --heads 3 --mean 0.3 --std 0.2 -q
    succeeds "$EVIT_BIN/evit-eval" "$T/$dt.h5" "$T/d.h5" -q
done
ok "F16 and BF16 files import"

# a config gives the heads and must agree with the file
cat >"$T/cfg.json" <<'JSON'
{"name":"mine","img_size":28,"channels":1,"patch":4,"num_classes":10,"embed_dim":32,"depth":3,
 "num_heads":4,"head_dim":8,"mlp_hidden":48}
JSON
succeeds "$I" "$T/f32.safetensors" -o "$T/c.h5" --config "$T/cfg.json"
stdout_has "mine"
stdout_has "heads 4,4,4"
sed 's/"mlp_hidden":48/"mlp_hidden":64/' "$T/cfg.json" >"$T/cfg2.json"
fails_with 1 "$I" "$T/f32.safetensors" -o "$T/c2.h5" --config "$T/cfg2.json"
stderr_has "MLP"
[ ! -e "$T/c2.h5" ] || fail "a refused import left a file"
ok "a config gives the head count and a config that disagrees with the file is refused"

succeeds "$I" "$T/f32.safetensors" -o "$T/k.h5" --heads 2 --num-classes 5 --seed 3
stdout_has "5 classes (new head)"
$MK "$T/nohead.safetensors" --drop head.weight --drop head.bias
fails_with 1 "$I" "$T/nohead.safetensors" -o "$T/nh.h5" --heads 2
stderr_has "--num-classes"
succeeds "$I" "$T/nohead.safetensors" -o "$T/nh.h5" --heads 2 --num-classes 10 --data "$T/d.h5"
ok "--num-classes replaces the head, and a headless file needs it"

# what cannot be imported
$MK "$T/deit.safetensors" --extra dist_token
fails_with 1 "$I" "$T/deit.safetensors" -o "$T/x.h5" --heads 2
stderr_has "dist_token"
stderr_has "distillation"
$MK "$T/odd.safetensors" --extra blocks.0.attn.mystery
fails_with 1 "$I" "$T/odd.safetensors" -o "$T/x.h5" --heads 2
stderr_has "blocks.0.attn.mystery"
$MK "$T/short.safetensors" --drop blocks.1.mlp.fc2.bias
fails_with 1 "$I" "$T/short.safetensors" -o "$T/x.h5" --heads 2
stderr_has "blocks.1.mlp.fc2.bias"
fails_with 1 "$I" "$T/f32.safetensors" -o "$T/x.h5" --heads 3
stderr_has "does not split into 3 heads"
ok "distillation tokens, unknown and missing tensors and impossible head counts are refused by name"

size=$(wc -c <"$T/f32.safetensors")
head -c $((size - 10)) "$T/f32.safetensors" >"$T/trunc.safetensors"
fails_with 1 "$I" "$T/trunc.safetensors" -o "$T/x.h5" --heads 2
stderr_has "trunc.safetensors"
printf 'not a safetensors file at all' >"$T/junk.safetensors"
fails_with 1 "$I" "$T/junk.safetensors" -o "$T/x.h5" --heads 2
fails_with 1 "$I" "$T/missing.safetensors" -o "$T/x.h5" --heads 2
fails_with 1 "$I" "$T/f32.safetensors" -o "$T/x.h5" --heads 2 --mean 0.1,0.2
stderr_has "--mean"
[ ! -e "$T/x.h5" ] || fail "a refused import left a file"
ok "truncated, foreign and missing files and bad --mean are one-line errors that write nothing"
