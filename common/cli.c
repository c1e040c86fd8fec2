/* cli.c: see cli.h. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>

#include "h5.h"
#include "util.h"

const char *evit_cli_version(void)
{
    return "evit " PACKAGE_VERSION " (git " EVIT_GIT_REV ")";
}

int evit_cli_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry '%s --help'.\n", prog);
    va_end(ap);
    return EVIT_EXIT_USAGE;
}

int evit_cli_threads(const char *arg)
{
    long n;
    if (evit_parse_int(arg, 1, 256, &n) < 0) return EVIT_ERR;
    evit_set_threads((int)n);
    return EVIT_OK;
}

int evit_cli_common_option(int c, const char *arg, const char *prog, const char *usage, int *quiet, int *latency)
{
    long n;
    switch (c) {
    case EVIT_CLI_OPT_LATENCY:
        if (!latency) break;
        if (evit_parse_int(arg, 1, 1000000, &n) < 0)
            return evit_cli_usage_error(prog, "--latency: expected 1..1000000, got %s", arg);
        *latency = (int)n;
        return EVIT_CLI_NEXT;
    case 't':
        if (evit_cli_threads(arg) < 0) return evit_cli_usage_error(prog, "--threads: expected 1..256, got %s", arg);
        return EVIT_CLI_NEXT;
    case 'q': *quiet = 1; return EVIT_CLI_NEXT;
    case 'h': fputs(usage, stdout); return EVIT_CLI_DONE;
    case 'V': puts(evit_cli_version()); return EVIT_CLI_DONE;
    default: break;
    }
    return evit_cli_usage_error(prog, "unknown option");
}

void evit_cli_init(void)
{
    setvbuf(stderr, NULL, _IOLBF, 0);
    evit_h5_quiet();
}
