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

/* Parses a --threads value (1..256) and applies it; returns 0 or -1. */
int evit_cli_threads(const char *arg);

/* The options every command shares, for its getopt_long table and short
 * string: -q/--quiet, -h/--help, -V/--version; and with -t/--threads N
 * for the commands that compute in parallel (the COMMON pair). */
#define EVIT_CLI_BASIC_OPTIONS \
    {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, { "version", no_argument, 0, 'V' }
#define EVIT_CLI_BASIC_SHORT "qhV"
#define EVIT_CLI_COMMON_OPTIONS {"threads", required_argument, 0, 't'}, EVIT_CLI_BASIC_OPTIONS
#define EVIT_CLI_COMMON_SHORT "t:" EVIT_CLI_BASIC_SHORT

/* --latency N for the commands that time their model through libevrt
 * (getopt value EVIT_CLI_OPT_LATENCY, above every command's own). */
#define EVIT_CLI_OPT_LATENCY 1000
#define EVIT_CLI_LATENCY_OPTION { "latency", required_argument, 0, EVIT_CLI_OPT_LATENCY }
#define EVIT_CLI_LATENCY_HELP                                                         \
    "      --latency N      also time N batch-1 inferences through libevrt (the\n"    \
    "                       device runtime, 1 thread; a float model runs its\n"      \
    "                       float32 path) and report latency_ms (median),\n"         \
    "                       latency_mean_ms and latency_p99_ms\n"

#define EVIT_CLI_NEXT 0   /* go on parsing */
#define EVIT_CLI_DONE (-1) /* --help or --version was printed: exit 0 */

/* Handles getopt's answer c when it is a common option (threads applied,
 * *quiet set, *latency set (1..1000000) for a command that takes it, usage
 * or version printed); anything else is an unknown option of prog.
 * Returns EVIT_CLI_NEXT, EVIT_CLI_DONE or EVIT_EXIT_USAGE. */
int evit_cli_common_option(int c, const char *arg, const char *prog, const char *usage, int *quiet,
                           int *latency /* or NULL */);

/* Makes HDF5 quiet (we report errors ourselves) and line-buffers stderr. */
void evit_cli_init(void);

#endif
