/* cli.c: see cli.h. */
#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

enum { OPT_LATENCY = 1000 }; /* getopt's value for --latency, above every command's own */

/* The shared option getopt answered with c: threads applied, *quiet set,
 * *latency set (a command that takes it), usage or version printed.
 * Returns EVIT_CLI_NEXT, EVIT_CLI_DONE or EVIT_EXIT_USAGE. */
static int common_option(int c, const char *arg, const char *prog, const char *usage, int *quiet, int *latency)
{
    long n;
    switch (c) {
    case OPT_LATENCY:
        if (evit_parse_int(arg, 1, 1000000, &n) < 0)
            return evit_cli_usage_error(prog, "--latency: expected 1..1000000, got %s", arg);
        *latency = (int)n;
        return EVIT_CLI_NEXT;
    case 't':
        if (evit_parse_int(arg, 1, 256, &n) < 0)
            return evit_cli_usage_error(prog, "--threads: expected 1..256, got %s", arg);
        evit_set_threads((int)n);
        return EVIT_CLI_NEXT;
    case 'q': *quiet = 1; return EVIT_CLI_NEXT;
    case 'h': fputs(usage, stdout); return EVIT_CLI_DONE;
    case 'V': puts(evit_cli_version()); return EVIT_CLI_DONE;
    default: return evit_cli_usage_error(prog, "unknown option");
    }
}

int evit_cli_parse(int argc, char **argv, const char *prog, const char *usage, const struct evit_opt *opts,
                   int flags, int *quiet, int *latency, int *first)
{
    enum { MAX = 40, OWN = 256 }; /* a command's own options take getopt values OWN + index */
    static const struct option latency_opt = {"latency", required_argument, 0, OPT_LATENCY},
                               threads_opt = {"threads", required_argument, 0, 't'},
                               basic[3] = {{"quiet", no_argument, 0, 'q'},
                                           {"help", no_argument, 0, 'h'},
                                           {"version", no_argument, 0, 'V'}};
    struct option table[MAX + 6];
    char shorts[3 * MAX + 8] = "";
    int n = 0, k = 0, c;
    for (; opts[n].name; n++) {
        const struct evit_opt *o = &opts[n];
        int arg = o->kind == EVIT_OPT_SET || o->kind == EVIT_OPT_CLEAR ? no_argument : required_argument;
        EVIT_ASSERT(n < MAX);
        table[n] = (struct option){o->name, arg, 0, OWN + n};
        if (o->letter) {
            size_t l = strlen(shorts);
            shorts[l] = (char)o->letter;
            shorts[l + 1] = arg == required_argument ? ':' : 0;
            shorts[l + 2] = 0;
        }
    }
    if (flags & EVIT_CLI_LATENCY) table[n++] = latency_opt;
    if (flags & EVIT_CLI_THREADS) table[n++] = threads_opt;
    for (k = 0; k < 3; k++) table[n++] = basic[k];
    table[n] = (struct option){0, 0, 0, 0};
    strcat(shorts, flags & EVIT_CLI_THREADS ? "t:qhV" : "qhV");
    opterr = 0; /* one line of ours instead of getopt's */
    while ((c = getopt_long(argc, argv, shorts, table, NULL)) != -1) {
        const struct evit_opt *o = NULL;
        if (c == '?' || c == ':')
            return evit_cli_usage_error(prog, "unknown option or missing value: %s", argv[optind - 1]);
        for (k = 0; opts[k].name && !o; k++)
            if (c == OWN + k || (opts[k].letter && c == opts[k].letter)) o = &opts[k];
        if (!o) {
            int r = common_option(c, optarg, prog, usage, quiet, latency);
            if (r != EVIT_CLI_NEXT) return r;
            continue;
        }
        long v;
        char *end;
        switch (o->kind) {
        case EVIT_OPT_STR: *(const char **)o->dest = optarg; break;
        case EVIT_OPT_SET: *(int *)o->dest = 1; break;
        case EVIT_OPT_CLEAR: *(int *)o->dest = 0; break;
        case EVIT_OPT_INT:
        case EVIT_OPT_LONG:
            if (evit_parse_int(optarg, o->lo, o->hi, &v) < 0)
                return evit_cli_usage_error(prog, "--%s: expected %ld..%ld, got %s", o->name, o->lo, o->hi, optarg);
            if (o->kind == EVIT_OPT_INT)
                *(int *)o->dest = (int)v;
            else
                *(long *)o->dest = v;
            break;
        case EVIT_OPT_U64:
            *(unsigned long long *)o->dest = strtoull(optarg, &end, 10);
            if (*end || !*optarg) return evit_cli_usage_error(prog, "--%s: not a number: %s", o->name, optarg);
            break;
        }
    }
    *first = optind;
    return EVIT_CLI_NEXT;
}

void evit_cli_init(void)
{
    setvbuf(stderr, NULL, _IOLBF, 0);
    evit_h5_quiet();
}
