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

void evit_cli_init(void)
{
    setvbuf(stderr, NULL, _IOLBF, 0);
    evit_h5_quiet();
}
