/* cli.h: what every evit command shares: exit codes, --version text, the
 * --threads option. */
#ifndef EVIT_CLI_H
#define EVIT_CLI_H

#define EVIT_EXIT_OK 0
#define EVIT_EXIT_FAIL 1
#define EVIT_EXIT_USAGE 2

/* "evit 0.1.0 (git abc1234)" */
const char *evit_cli_version(void);

/* Prints "prog: msg\nTry 'prog --help'." to stderr and returns EVIT_EXIT_USAGE. */
int evit_cli_usage_error(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The help lines of --latency N, for the commands that time their model
 * through libevrt. */
#define EVIT_CLI_LATENCY_HELP                                                         \
    "      --latency N      also time N batch-1 inferences through libevrt (the\n"    \
    "                       device runtime, 1 thread; a float model runs its\n"      \
    "                       float32 path) and report latency_ms (median),\n"         \
    "                       latency_mean_ms and latency_p99_ms\n"

/* The help lines of a stage that trains or evaluates: threads, quiet,
 * latency, help, version (22-column option field). */
#define EVIT_CLI_STAGE_HELP                                                 \
    "  -t, --threads N      threads (default: all cores)\n"                \
    "  -q, --quiet          no progress output\n" EVIT_CLI_LATENCY_HELP    \
    "  -h, --help           this text\n"                                   \
    "  -V, --version        print the version\n"

#define EVIT_CLI_NEXT 0   /* go on parsing */
#define EVIT_CLI_DONE (-1) /* --help or --version was printed: exit 0 */

/* A command's own options, as a table for evit_cli_parse: name (the long
 * option), letter (its short form, or 0), what it fills (dest). */
enum evit_opt_kind {
    EVIT_OPT_STR,   /* const char **dest = the value */
    EVIT_OPT_SET,   /* int *dest = 1 (no value) */
    EVIT_OPT_CLEAR, /* int *dest = 0 (no value) */
    EVIT_OPT_INT,   /* int *dest = the value, an integer in [lo, hi] */
    EVIT_OPT_LONG,  /* long *dest, likewise */
    EVIT_OPT_U64    /* unsigned long long *dest, any decimal number (seeds) */
};
struct evit_opt {
    const char *name;
    int letter;
    enum evit_opt_kind kind;
    void *dest;
    long lo, hi;
};
#define EVIT_OPT_S(name, letter, dest) {name, letter, EVIT_OPT_STR, dest, 0, 0}
#define EVIT_OPT_ON(name, letter, dest) {name, letter, EVIT_OPT_SET, dest, 0, 0}
#define EVIT_OPT_OFF(name, letter, dest) {name, letter, EVIT_OPT_CLEAR, dest, 0, 0}
#define EVIT_OPT_I(name, letter, dest, lo, hi) {name, letter, EVIT_OPT_INT, dest, lo, hi}
#define EVIT_OPT_L(name, letter, dest, lo, hi) {name, letter, EVIT_OPT_LONG, dest, lo, hi}
#define EVIT_OPT_U(name, letter, dest) {name, letter, EVIT_OPT_U64, dest, 0, 0}
#define EVIT_OPT_END {0, 0, EVIT_OPT_STR, 0, 0, 0}
#define EVIT_CLI_THREADS 1 /* the command takes -t/--threads N */
#define EVIT_CLI_LATENCY 2 /* and --latency N (into *latency) */

/* Parses argv's options: opts (ended by a NULL name) and the shared ones
 * (-q/--quiet into *quiet, -h/--help prints usage, -V/--version the
 * version; with flags, -t/--threads N applied and --latency N (1..1000000)
 * into *latency).  A bad value is one usage line naming the option and the
 * range ("prog: --steps: expected 1..1000000000, got x").  Returns
 * EVIT_CLI_NEXT with *first the index of the first operand, EVIT_CLI_DONE
 * after --help or --version, or EVIT_EXIT_USAGE. */
int evit_cli_parse(int argc, char **argv, const char *prog, const char *usage, const struct evit_opt *opts,
                   int flags, int *quiet, int *latency, int *first);

/* Makes HDF5 quiet (we report errors ourselves) and line-buffers stderr. */
void evit_cli_init(void);

#endif
