#!/bin/sh
# cli_scripts.sh: the scripts in scripts/ share their option handling
# (scripts/lib.sh): --help prints the header, unknown arguments and missing
# values are usage errors (exit 2), missing inputs are one line and exit 1.
# Nothing here trains: the scripts stop before their first stage.
set -eu
. "$EVIT_SRC/tests/lib.sh"

S="$EVIT_SRC/scripts"
for s in pipeline distill_study iterative_prune kd_study; do
    succeeds sh "$S/$s.sh" --help
    stdout_has "$s.sh"
    fails_with 2 sh "$S/$s.sh" --bogus
    stderr_has "$s.sh: unknown argument --bogus"
    fails_with 2 sh "$S/$s.sh" --out
    stderr_has "$s.sh:"
done
fails_with 2 sh "$S/pipeline.sh" --profile huge
stderr_has "--profile is quick or full"
fails_with 2 sh "$S/distill_study.sh" --profile huge
fails_with 2 sh "$S/iterative_prune.sh" --profile full
stderr_has "unknown argument --profile"
fails_with 2 sh "$S/iterative_prune.sh" --rounds 0
stderr_has "--rounds wants a positive count"
ok "scripts/: --help, unknown options and missing values (exit 2), each one line naming the script"

mkdir "$T/empty"
fails_with 1 sh "$S/distill_study.sh" --out "$T/empty"
stderr_has "error: $T/empty/train.h5: missing"
fails_with 1 sh "$S/iterative_prune.sh" --run "$T/empty"
stderr_has "error: $T/empty/student.h5: missing"
[ -z "$(ls "$T/empty")" ] || fail "a refused script left files behind"
ok "scripts/: missing inputs are one line naming the file, exit 1, nothing written"
