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
    "  -h, --help       this text\n"
    "  -V, --version    print the version\n";

struct report_args {
    enum evit_compare_format format;
    const char *png;
    int first_input; /* index in argv */
};

static int parse_args(int argc, char **argv, struct report_args *a)
{
    static const struct option opts[] = {{"format", required_argument, 0, 'f'},
                                         {"png", required_argument, 0, 'p'},
                                         {"help", no_argument, 0, 'h'},
                                         {"version", no_argument, 0, 'V'},
                                         {0, 0, 0, 0}};
    static const char *const formats[] = {"text", "md", "csv", "json"};
    int c;
    while ((c = getopt_long(argc, argv, "f:p:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'f': {
            int found = -1;
            for (int i = 0; i < 4; i++)
                if (strcmp(optarg, formats[i]) == 0) found = i;
            if (found < 0)
                return evit_cli_usage_error("evit-report", "--format: expected text, md, csv or json, got %s",
                                            optarg);
            a->format = (enum evit_compare_format)found;
            break;
        }
        case 'p': a->png = optarg; break;
        case 'h': fputs(usage, stdout); return -EVIT_EXIT_OK - 1;
        case 'V': puts(evit_cli_version()); return -EVIT_EXIT_OK - 1;
        default: return evit_cli_usage_error("evit-report", "unknown option");
        }
    }
    if (optind >= argc) return evit_cli_usage_error("evit-report", "expected a command: compare");
    if (strcmp(argv[optind], "compare") != 0)
        return evit_cli_usage_error("evit-report", "unknown command '%s' (expected compare)",
                                    argv[optind]);
    if (optind + 1 >= argc) return evit_cli_usage_error("evit-report", "compare: expected reports or folders");
    a->first_input = optind + 1;
    return EVIT_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct report_args a = {.format = EVIT_COMPARE_TEXT};
    struct evit_compare c = {0};
    int rc = EVIT_EXIT_FAIL;
    evit_cli_init();
    int pa = parse_args(argc, argv, &a);
    if (pa == -1) return EVIT_EXIT_OK; /* --help, --version */
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
