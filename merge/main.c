/* evit-merge: sets a checkpoint's Token Merging schedule (model/merge.h):
 * given, or the largest merging within an accuracy drop, or the least that
 * reaches a FLOPs budget.  The weights are unchanged: ToMe needs no
 * retraining (evit-distill fine-tunes a merged model if wanted). */
#include <stdio.h>
#include <stdlib.h>

#include "ckpt.h"
#include "cli.h"
#include "config.h"
#include "dataset.h"
#include "qmodel.h"
#include "eval.h"
#include "report.h"
#include "schedule.h"
#include "util.h"
#include "vit.h"

static const char *usage =
    "usage: evit-merge MODEL.h5 (--r R | --schedule R0,R1,... | --max-drop D --val DATA.h5 |\n"
    "                  --target-mflops M) -o OUT.h5 [--val DATA.h5] [--report R.json]\n"
    "\n"
    "Writes MODEL with a Token Merging schedule (ToMe, docs/MERGE.md): after each\n"
    "block's attention, the r most similar tokens merge into their matches, so\n"
    "later blocks see fewer tokens.  The weights are unchanged.\n"
    "\n"
    "  --r R              r in every block but the last (whose merging would change\n"
    "                     nothing the class token sees)\n"
    "  --schedule LIST    one r per block, comma-separated\n"
    "  --max-drop D       the largest uniform r whose top-1 on --val is at most D\n"
    "                     points below r = 0's (tried from r = 1 up, until one drops\n"
    "                     more)\n"
    "  --target-mflops M  the smallest uniform r whose MFLOPs per image are <= M\n"
    "  --val F            dataset for top-1 (needed by --max-drop; else reported)\n"
    "  -o, --output F     checkpoint to write\n"
    "  --report F         JSON report: schedule, tokens per block, MFLOPs, top-1\n"
    "  --latency N        also time N batch-1 inferences through libevrt (float32,\n"
    "                     1 thread, images from --val) and report latency_ms\n"
    "  -b, --batch N      evaluation batch (default 256)\n"
    "  -t, --threads N    threads (default: all cores)\n"
    "  -q, --quiet        no progress\n"
    "  -h, --help         this text\n"
    "  -V, --version      print the version\n";

struct merge_args {
    const char *model, *out, *val, *report, *schedule, *max_drop, *target;
    int r, batch, quiet, latency;
    double drop, mflops; /* --max-drop, --target-mflops as numbers */
};

/* A number >= 0, or -1. */
static double number(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    return end != s && !*end && v >= 0.0 ? v : -1.0;
}

static int parse_args(int argc, char **argv, struct merge_args *a)
{
    int first, modes;
    const struct evit_opt opts[] = {EVIT_OPT_S("output", 'o', &a->out), EVIT_OPT_S("val", 0, &a->val),
                                    EVIT_OPT_S("report", 0, &a->report), EVIT_OPT_I("r", 'r', &a->r, 0, 65536),
                                    EVIT_OPT_S("schedule", 0, &a->schedule), EVIT_OPT_S("max-drop", 0, &a->max_drop),
                                    EVIT_OPT_S("target-mflops", 0, &a->target),
                                    EVIT_OPT_I("batch", 'b', &a->batch, 1, 65536), EVIT_OPT_END};
    a->r = -1;
    a->batch = 256;
    int r = evit_cli_parse(argc, argv, "evit-merge", usage, opts, EVIT_CLI_THREADS | EVIT_CLI_LATENCY, &a->quiet,
                           &a->latency, &first);
    if (r != EVIT_CLI_NEXT) return r == EVIT_CLI_DONE ? -1 : r;
    if (first != argc - 1) return evit_cli_usage_error("evit-merge", "expected one MODEL argument");
    a->model = argv[first];
    if (!a->out) return evit_cli_usage_error("evit-merge", "missing -o OUT.h5");
    modes = (a->r >= 0) + (a->schedule != NULL) + (a->max_drop != NULL) + (a->target != NULL);
    if (modes != 1)
        return evit_cli_usage_error("evit-merge", "give one of --r, --schedule, --max-drop, --target-mflops");
    if (a->max_drop && !a->val) return evit_cli_usage_error("evit-merge", "--max-drop needs --val DATA.h5");
    if (a->max_drop && (a->drop = number(a->max_drop)) < 0)
        return evit_cli_usage_error("evit-merge", "--max-drop: expected a number of points >= 0");
    if (a->target && (a->mflops = number(a->target)) < 0)
        return evit_cli_usage_error("evit-merge", "--target-mflops: expected a number >= 0");
    return EVIT_EXIT_OK;
}

/* top-1 of m with schedule cfg on d */
static int top1_with(struct evit_vit *m, const struct evit_vit_config *cfg, const struct evit_dataset *d, int batch,
                     double *top1)
{
    struct evit_eval_result e = {0};
    struct evit_vit_config keep = m->cfg;
    m->cfg = *cfg;
    int rc = evit_eval_top1(m, d, batch, &e);
    m->cfg = keep;
    *top1 = e.top1;
    evit_eval_result_free(&e);
    return rc;
}

/* The schedule the mode asks for, into *cfg. */
static int choose(const struct merge_args *a, struct evit_vit *m, const struct evit_dataset *val,
                  struct evit_vit_config *cfg)
{
    int rmax = evit_schedule_max_uniform(cfg);
    if (a->r >= 0) return evit_schedule_uniform(cfg, a->r, a->model);
    if (a->schedule) return evit_schedule_parse(cfg, a->schedule, a->model);
    if (a->target) {
        double v = a->mflops;
        for (int r = 0; r <= rmax; r++) {
            struct evit_vit_config t = *cfg;
            if (evit_schedule_uniform(&t, r, a->model) < 0) return EVIT_ERR;
            if (evit_config_mflops(&t) <= v) {
                *cfg = t;
                return EVIT_OK;
            }
        }
        struct evit_vit_config t = *cfg;
        evit_schedule_uniform(&t, rmax, a->model);
        return evit_error("%s: %.2f MFLOPs cannot be reached by merging: r = %d, the most its %d tokens allow, "
                          "gives %.2f", a->model, v, rmax, evit_config_tokens(cfg), evit_config_mflops(&t));
    }
    double v = a->drop;
    struct evit_vit_config best = *cfg;
    double base;
    if (evit_schedule_uniform(&best, 0, a->model) < 0 || top1_with(m, &best, val, a->batch, &base) < 0)
        return EVIT_ERR;
    if (!a->quiet) evit_info("r 0: top-1 %.2f%%, %.2f MFLOPs", base, evit_config_mflops(&best));
    for (int r = 1; r <= rmax; r++) {
        struct evit_vit_config t = *cfg;
        double top1;
        if (evit_schedule_uniform(&t, r, a->model) < 0 || top1_with(m, &t, val, a->batch, &top1) < 0)
            return EVIT_ERR;
        if (!a->quiet) evit_info("r %d: top-1 %.2f%% (%+.2f), %.2f MFLOPs", r, top1, top1 - base, evit_config_mflops(&t));
        if (top1 < base - v) break;
        best = t;
    }
    *cfg = best;
    return EVIT_OK;
}

int main(int argc, char **argv)
{
    struct merge_args a = {0};
    struct evit_vit m = {0};
    struct evit_ckpt_meta meta = {0};
    struct evit_dataset val = {0};
    struct evit_eval_result e = {0};
    cJSON *rep = NULL;
    int rc = EVIT_EXIT_FAIL, have_val = 0;
    double t0 = evit_now();
    evit_cli_init();
    int pa = parse_args(argc, argv, &a);
    if (pa == -1) return EVIT_EXIT_OK;
    if (pa != EVIT_EXIT_OK) return pa;
    if (evit_ckpt_load(a.model, &m, &meta) < 0) goto fail;
    if (a.val) {
        if (evit_dataset_load(a.val, &val) < 0 || evit_eval_check_compat(&m, a.model, &val, a.val) < 0) goto fail;
        have_val = 1;
    }
    struct evit_vit_config cfg = m.cfg;
    if (choose(&a, &m, have_val ? &val : NULL, &cfg) < 0) goto fail;
    m.cfg = cfg;
    if (have_val && evit_eval_top1(&m, &val, a.batch, &e) < 0) goto fail;
    double lat[3];
    if (a.latency && !have_val) {
        evit_error("--latency needs images to run on: give --val");
        goto fail;
    }
    if (a.latency && evit_qmodel_vit_latency(&m, &val, a.latency, a.out, lat) < 0) goto fail;
    {
        struct evit_ckpt_meta out = meta;
        out.stage = "merge";
        out.parent_report = evit_report_parent(NULL, meta.report, meta.parent_report, a.report);
        out.report = a.report;
        if (evit_ckpt_save(a.out, &m, &out) < 0) goto fail;
    }
    if (!a.quiet) {
        printf("%s: tokens", a.out);
        for (int l = 0; l <= cfg.depth; l++) printf(" %d", evit_config_tokens_at(&cfg, l));
        printf(", %.2f MFLOPs", evit_config_mflops(&cfg));
        if (have_val) printf(", top-1 %.2f%% on %s", e.top1, a.val);
        printf("\n");
    }
    if (a.report) {
        rep = evit_report_new("merge", a.out, a.val, evit_report_parent(NULL, meta.report, meta.parent_report, a.report));
        evit_report_add_model(rep, &cfg, 4.0 * (double)evit_config_params(&cfg));
        if (have_val) evit_report_add_eval(rep, &e, meta.class_names);
        if (a.latency) evit_report_add_latency(rep, lat, a.latency);
        cJSON *sch = cJSON_AddArrayToObject(rep, "merge_r"); /* "tokens" comes with the model */
        for (int l = 0; l < cfg.depth; l++) cJSON_AddItemToArray(sch, cJSON_CreateNumber(cfg.blocks[l].merge_r));
        if (evit_report_save(rep, a.report, evit_now() - t0) < 0) goto fail;
    }
    rc = EVIT_EXIT_OK;
fail:
    cJSON_Delete(rep);
    evit_eval_result_free(&e);
    if (have_val) evit_dataset_free(&val);
    evit_ckpt_meta_free(&meta);
    evit_vit_free(&m);
    return rc;
}
