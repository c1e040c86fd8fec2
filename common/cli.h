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

/* The options every stage shares, for its getopt_long table and short
 * string: -t/--threads N, -q/--quiet, -h/--help, -V/--version. */
#define EVIT_CLI_COMMON_OPTIONS                                                   \
    {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'},      \
        {"help", no_argument, 0, 'h'}, { "version", no_argument, 0, 'V' }
#define EVIT_CLI_COMMON_SHORT "t:qhV"

#define EVIT_CLI_NEXT 0   /* go on parsing */
#define EVIT_CLI_DONE (-1) /* --help or --version was printed: exit 0 */

/* Handles getopt's answer c when it is a common option (threads applied,
 * *quiet set, usage or version printed); anything else is an unknown option
 * of prog.  Returns EVIT_CLI_NEXT, EVIT_CLI_DONE or EVIT_EXIT_USAGE. */
int evit_cli_common_option(int c, const char *arg, const char *prog, const char *usage, int *quiet);

/* Makes HDF5 quiet (we report errors ourselves) and line-buffers stderr. */
void evit_cli_init(void);

#endif
