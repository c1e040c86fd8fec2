/* evit-report: compares stage reports along their lineage (docs/REPORT.md). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "compare.h"
#include "util.h"

static const char *usage =
    "usage: evit-report compare REPORT.json|FOLDER... [--format text|md|csv|json] [--png CHART.png]\n"
    "\n"
    "Follows the lineage the reports record (their \"parent\" paths) and prints one\n"
    "table per chain: stage, model, top-1, drop against the parent and the first\n"
    "model, parameters, bytes, MFLOPs, latency, size and speed against the first\n"
    "model. A folder stands for every evit report (*.json) in it; a parent report\n"
    "that was not named but exists is read too. Reports on different datasets, or\n"
    "with no common lineage, are separate chains.\n"
    "\n"
    "  -f, --format F   text (aligned table, the default), md, csv or json\n"
    "  -p, --png F      also draw top-1 against model size (and against latency\n"
    "                   when reports have latency_ms) into a PNG\n"
    "  -q, --quiet      accepted for symmetry (the table is the output)\n"
    "  -h, --help       this text\n"
    "  -V, --version    print the version\n";

struct report_args {
    enum evit_compare_format format;
    const char *png;
    int first_input; /* index in argv */
};

static int parse_args(int argc, char **argv, struct report_args *a)
{
    static const char *const formats[] = {"text", "md", "csv", "json"};
    const char *format = NULL;
    int quiet = 0, first, found = -1;
    const struct evit_opt opts[] = {EVIT_OPT_S("format", 'f', &format), EVIT_OPT_S("png", 'p', &a->png), EVIT_OPT_END};
    int r = evit_cli_parse(argc, argv, "evit-report", usage, opts, 0, &quiet, NULL, &first);
    if (r != EVIT_CLI_NEXT) return r;
    for (int i = 0; format && i < 4; i++)
        if (strcmp(format, formats[i]) == 0) found = i;
    if (format && found < 0)
        return evit_cli_usage_error("evit-report", "--format: expected text, md, csv or json, got %s", format);
    if (format) a->format = (enum evit_compare_format)found;
    if (first >= argc) return evit_cli_usage_error("evit-report", "expected a command: compare");
    if (strcmp(argv[first], "compare") != 0)
        return evit_cli_usage_error("evit-report", "unknown command '%s' (expected compare)",
                                    argv[first]);
    if (first + 1 >= argc) return evit_cli_usage_error("evit-report", "compare: expected reports or folders");
    a->first_input = first + 1;
    return EVIT_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct report_args a = {.format = EVIT_COMPARE_TEXT};
    struct evit_compare c = {0};
    int rc = EVIT_EXIT_FAIL;
    evit_cli_init();
    int pa = parse_args(argc, argv, &a);
    if (pa == EVIT_CLI_DONE) return EVIT_EXIT_OK; /* --help, --version */
    if (pa != EVIT_EXIT_OK) return pa;

    for (int i = a.first_input; i < argc; i++)
        if (evit_compare_add(&c, argv[i]) < 0) goto fail;
    if (evit_compare_build(&c) < 0) goto fail;
    /* the chart first: if it fails, nothing has been printed */
    if (a.png && evit_compare_chart(&c, a.png) < 0) goto fail;
    if (evit_compare_write(&c, a.format, stdout) < 0) goto fail;
    rc = EVIT_EXIT_OK;
fail:
    evit_compare_free(&c);
    return rc;
}
