# scripts/lib.sh: what the scripts in scripts/ share; sourced, not run.
# The sourcing script sets set -eu first and common_opts, the names of the
# shared options it takes ("profile out threads"); this file sets top (the
# source tree), bin (the build tree: $EVIT_BIN, else top/build) and the
# defaults of those options (profile quick, out and threads empty).

script=$(basename "$0")
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${EVIT_BIN:-$top/build}
profile=quick
out=""
threads=""

# help_text: the script's header comment (every comment line after #!),
# without the comment marks.
help_text() {
    sed -n '2,$p' "$0" | sed -n '/^#/!q;p' | sed 's/^# \{0,1\}//'
}

# usage_fail MESSAGE: one line on stderr, exit 2 (a usage error).
usage_fail() {
    echo "$script: $*" >&2
    exit 2
}

# common_opt "$@": handles -h/--help and the shared options named in
# common_opts (--profile P, --out DIR, --threads N: threads becomes
# "--threads N" for the evit commands); returns 0 with nshift set to the
# words it used, or 1 when $1 is not one of them.
common_opt() {
    case "$1" in
    -h | --help)
        help_text
        exit 0
        ;;
    --profile | --out | --threads)
        case " $common_opts " in *" ${1#--} "*) ;; *) return 1 ;; esac
        [ $# -ge 2 ] || usage_fail "$1 needs a value"
        case "$1" in
        --profile) profile=$2 ;;
        --out) out=$2 ;;
        --threads) threads="--threads $2" ;;
        esac
        nshift=2
        return 0
        ;;
    esac
    return 1
}

# only_common_opts "$@": for a script whose options are the shared ones alone.
only_common_opts() {
    while [ $# -gt 0 ]; do
        if common_opt "$@"; then shift "$nshift"; continue; fi
        usage_fail "unknown argument $1 (see --help)"
    done
}

# profile_args: after the options: --profile must be quick or full; out
# defaults to top/run/fmnist-PROFILE; prof becomes "--profile P" for the
# evit commands (empty for quick).
profile_args() {
    case "$profile" in quick | full) ;; *) usage_fail "--profile is quick or full" ;; esac
    out=${out:-$top/run/fmnist-$profile}
    prof=""
    [ "$profile" = quick ] || prof="--profile $profile"
}

# need HINT FILE...: each FILE must exist, else one line naming it (and
# HINT, what makes it) and exit 1.
need() {
    h=$1
    shift
    for f in "$@"; do
        [ -e "$f" ] || { echo "error: $f: missing ($h)" >&2; exit 1; }
    done
}

# fresh OUT IN...: true when OUT exists and is newer than every IN.
fresh() {
    o=$1
    shift
    [ -e "$o" ] || return 1
    for i in "$@"; do [ "$o" -nt "$i" ] || return 1; done
    return 0
}

# stage WORDS: a heading on stderr for the next step.
stage() { printf '\n== %s\n' "$*" >&2; }

# report_num FILE KEY: the first number under "KEY": in the JSON report
# FILE (empty when there is none); the reports are cJSON's pretty print,
# one key per line.
report_num() {
    sed -n "s/.*\"$2\":[[:space:]]*\\(-\\{0,1\\}[0-9.e+-]*\\).*/\\1/p" "$1" 2>/dev/null | head -n 1
}

# report_list FILE KEY: the integers of the list under "KEY": in FILE,
# comma-separated ("8,8,8,0"; empty when there is none).
report_list() {
    tr -d ' \t\n' <"$1" 2>/dev/null | sed -n "s/.*\"$2\":\\[\\([0-9,]*\\)\\].*/\\1/p"
}

# stats: the numbers on stdin (- where missing) as markdown table cells,
# then their mean, sample standard deviation and range over those present
# (- when none): the seed tables of kd_study.sh and seg_study.sh.
stats() {
    awk '{
        n = 0; s = 0; lo = 1e9; hi = -1e9; cells = "";
        for (i = 1; i <= NF; i++) { cells = cells ($i == "-" ? " - |" : sprintf(" %.2f |", $i)); if ($i == "-") continue;
            a[++n] = $i; s += $i; if ($i < lo) lo = $i; if ($i > hi) hi = $i }
        if (n == 0) { printf "%s - | - | - |\n", cells; next }
        # two passes: sum(x^2) - n m^2 can round below zero for equal values
        m = s / n; ss = 0; for (i = 1; i <= n; i++) ss += (a[i] - m) * (a[i] - m);
        sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
        printf "%s %.2f | %.2f | %.2f |\n", cells, m, sd, hi - lo }'
}

# scaled X F: X times F, four decimals (awk's arithmetic, not the shell's).
scaled() {
    awk -v x="$1" -v f="$2" 'BEGIN { printf "%.4f", x * f }'
}

# student_chain SCORE [OPTION...]: a pipeline's device chain in $out from
# its distilled student.h5: the mild prune, a fine-tune from the teacher's
# logits (OPTIONs go to that evit-distill too, such as --seed N), INT8,
# the exported file and its SCORE ("accuracy", "mIoU") and batch-1 latency
# through the runtime.  Needs bin, cfg, out, prof and threads; each stage is
# skipped when its outputs are newer than its inputs.
student_chain() {
    what=$1
    shift
    stage "prune: mild recipe (a quarter of the heads, 30% of the MLP channels)"
    # shellcheck disable=SC2086
    if fresh "$out/pruned.report.json" "$out/student.h5" "$cfg/prune-mild.json"; then echo "up to date" >&2; else
        "$bin/evit-prune" "$cfg/prune-mild.json" "$out/student.h5" --data "$out/train.h5" --val "$out/test.h5" \
            -o "$out/pruned.h5" --report "$out/pruned.report.json" --latency 200 $threads
    fi
    stage "fine-tune the pruned student from the teacher's logits"
    # shellcheck disable=SC2086
    if fresh "$out/finetuned.report.json" "$out/pruned.h5" "$cfg/finetune.json"; then echo "up to date" >&2; else
        "$bin/evit-distill" "$cfg/finetune.json" $prof "$@" --init "$out/pruned.h5" --data "$out/train.h5" \
            --teacher "$out/teacher.logits.h5" --val "$out/test.h5" -o "$out/finetuned.h5" \
            --report "$out/finetuned.report.json" --stage finetune --resume --latency 200 $threads
    fi
    stage "quantize to INT8 ($what measured by the runtime's integer kernels)"
    # shellcheck disable=SC2086
    if fresh "$out/quantized.report.json" "$out/finetuned.h5" "$cfg/quantize.json"; then echo "up to date" >&2; else
        "$bin/evit-quantize" "$cfg/quantize.json" "$out/finetuned.h5" --calib "$out/train.h5" --val "$out/test.h5" \
            -o "$out/student.q8.h5" --report "$out/quantized.report.json" --latency 200 $threads
    fi
    stage "export the INT8 model for the device"
    if fresh "$out/student.q8.evit" "$out/student.q8.h5"; then echo "up to date" >&2; else
        "$bin/evit-export" "$out/student.q8.h5" -o "$out/student.q8.evit" --quantize-config "$cfg/quantize.json"
    fi
    stage "the exported file through the runtime: $what and batch-1 latency"
    if fresh "$out/export.report.json" "$out/student.q8.evit"; then echo "up to date" >&2; else
        "$bin/evit-eval" "$out/student.q8.evit" "$out/test.h5" --latency 500 --stage export \
            --parent "$out/quantized.report.json" --report "$out/export.report.json" -q
    fi
}
