# scripts/lib.sh: what the scripts in scripts/ share; sourced, not run.
# The sourcing script sets set -eu first and, before common_opt, the
# variables its options fill (profile, out, threads) and common_opts, the
# names of the shared options it takes ("profile out threads").

script=$(basename "$0")

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
