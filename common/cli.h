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

/* Makes HDF5 quiet (we report errors ourselves) and line-buffers stderr. */
void evit_cli_init(void);

#endif
