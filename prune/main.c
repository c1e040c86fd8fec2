/* evit-prune: remove attention heads and MLP channels from a checkpoint
 * (and narrow a seg_mlp decoder), ratios and per-block counts from a JSON
 * config; the output is a smaller ordinary checkpoint, to be fine-tuned
 * with evit-distill --init. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "cli.h"
#include "dataset.h"
#include "eval.h"
#include "prune.h"
#include "qmodel.h"
#include "report.h"
#include "util.h"
#include "vit.h"

static const char *usage =
    "usage: evit-prune CONFIG.json MODEL.h5 -o PRUNED.h5 --report R.json [options]\n"
    "\n"
    "Removes whole attention heads and MLP hidden channels, and a seg_mlp decoder's\n"
    "channels, ranked by importance (criterion l1, l2 or taylor), with the ratios\n"
    "and per-block counts of CONFIG (docs/PRUNE.md). PRUNED.h5 is an ordinary,\n"
    "smaller checkpoint: fine-tune it with evit-distill --init. The report lists\n"
    "what each block (and the decoder) kept and lost.\n"
    "\n"
    "  CONFIG.json          pruning config (configs/fmnist/prune-*.json)\n"
    "  MODEL.h5             checkpoint to prune\n"
    "  -o, --output F       pruned checkpoint\n"
    "  -r, --report F       JSON report\n"
    "  -d, --data F         training dataset; the taylor criterion needs it\n"
    "  -v, --val F          validation dataset: top-1 before and after pruning\n"
    EVIT_CLI_STAGE_HELP;

struct args {
    const char *config, *model, *out, *report, *data, *val;
    int quiet, latency;
};


static int parse_args(int argc, char **argv, struct args *a)
{
    const struct evit_opt opts[] = {EVIT_OPT_S("output", 'o', &a->out), EVIT_OPT_S("report", 'r', &a->report),
                                    EVIT_OPT_S("data", 'd', &a->data), EVIT_OPT_S("val", 'v', &a->val), EVIT_OPT_END};
    int first, r = evit_cli_parse(argc, argv, "evit-prune", usage, opts, EVIT_CLI_THREADS | EVIT_CLI_LATENCY,
                                  &a->quiet, &a->latency, &first);
    if (r != EVIT_CLI_NEXT) return r;
    if (argc - first != 2) return evit_cli_usage_error("evit-prune", "expected CONFIG.json and MODEL.h5");
    a->config = argv[first];
    a->model = argv[first + 1];
    if (!a->out) return evit_cli_usage_error("evit-prune", "missing -o PRUNED.h5");
    if (!a->report) return evit_cli_usage_error("evit-prune", "missing --report R.json");
    return 0;
}

/* m's score on d (top-1 or mIoU, percent); keeps the whole evaluation in
 * keep when asked. */
static int score_of(const struct evit_vit *m, const struct evit_dataset *d, struct evit_score *keep, double *value)
{
    struct evit_score e;
    if (evit_score_vit(m, d, 256, &e) < 0) return EVIT_ERR;
    *value = e.value;
    if (keep)
        *keep = e;
    else
        evit_score_free(&e);
    return EVIT_OK;
}

static int total_heads(const struct evit_vit_config *c)
{
    int n = 0;
    for (int l = 0; l < c->depth; l++) n += c->blocks[l].heads;
    return n;
}

static int total_mlp(const struct evit_vit_config *c)
{
    int n = 0;
    for (int l = 0; l < c->depth; l++) n += c->blocks[l].mlp;
    return n;
}

/* The report's "prune" section: settings, totals before and after, and per
 * block what was kept and removed. */
static cJSON *prune_section(const struct evit_prune_config *pc, const struct evit_prune_plan *plan,
                            const struct evit_vit *in, const struct evit_vit *out, const char *in_path,
                            const struct evit_score *after, double before)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "input_model", in_path);
    cJSON_AddStringToObject(o, "criterion", evit_prune_criterion_name(pc->criterion));
    cJSON_AddStringToObject(o, "scope", evit_prune_scope_name(pc->scope));
    cJSON_AddNumberToObject(o, "params_before", (double)evit_config_params(&in->cfg));
    cJSON_AddNumberToObject(o, "params_after", (double)evit_config_params(&out->cfg));
    cJSON_AddNumberToObject(o, "mflops_before", evit_config_mflops(&in->cfg));
    cJSON_AddNumberToObject(o, "mflops_after", evit_config_mflops(&out->cfg));
    cJSON_AddNumberToObject(o, "heads_before", total_heads(&in->cfg));
    cJSON_AddNumberToObject(o, "heads_after", total_heads(&out->cfg));
    cJSON_AddNumberToObject(o, "mlp_before", total_mlp(&in->cfg));
    cJSON_AddNumberToObject(o, "mlp_after", total_mlp(&out->cfg));
    if (isfinite(before)) {
        char k[32];
        snprintf(k, sizeof k, "val_%s_before", evit_score_key(after));
        cJSON_AddNumberToObject(o, k, before);
        snprintf(k, sizeof k, "val_%s_after", evit_score_key(after));
        cJSON_AddNumberToObject(o, k, after->value);
    }
    cJSON_AddItemToObject(o, "blocks", evit_prune_plan_to_json(plan, in, out));
    cJSON *dec = evit_prune_decoder_to_json(plan, in, out);
    if (dec) cJSON_AddItemToObject(o, "decoder", dec);
    return o;
}

int main(int argc, char **argv)
{
    struct args a = {0};
    struct evit_prune_config pc;
    struct evit_vit m = {0}, p = {0};
    struct evit_ckpt_meta meta = {0};
    struct evit_dataset train = {0}, val = {0};
    struct evit_prune_scores s = {0};
    struct evit_prune_plan plan = {0};
    struct evit_score e = {0};
    double before = NAN, after = NAN, t0 = evit_now();
    cJSON *rep = NULL;
    int rc = EVIT_EXIT_FAIL, saved = 0;
    evit_prune_config_defaults(&pc);
    evit_cli_init();
    int pa = parse_args(argc, argv, &a);
    if (pa == -1) return EVIT_EXIT_OK;
    if (pa) return pa;

    if (evit_prune_config_load(a.config, &pc) < 0) goto fail;
    if (evit_ckpt_load_heads(a.model, &m, &meta, EVIT_HEADS_ALL) < 0) goto fail;
    if (evit_prune_config_check(&pc, a.config, &m.cfg, a.data != NULL) < 0) goto fail;
    int taylor = pc.criterion == EVIT_PRUNE_TAYLOR;
    if (taylor && (evit_dataset_load_task(a.data, &train, EVIT_TASK_CLASSIFY | EVIT_TASK_SEGMENT) < 0 ||
                   evit_eval_check_compat(&m, a.model, &train, a.data) < 0))
        goto fail;
    if (a.val && (evit_dataset_load_task(a.val, &val, EVIT_TASK_CLASSIFY | EVIT_TASK_SEGMENT) < 0 ||
                  evit_eval_check_compat(&m, a.model, &val, a.val) < 0))
        goto fail;

    evit_prune_scores_alloc(&s, &m.cfg);
    if (taylor) {
        if (!a.quiet)
            evit_info("taylor importance over %d batches of %d images of %s", pc.taylor_batches,
                      EVIT_PRUNE_TAYLOR_BATCH, a.data);
        evit_prune_taylor(&s, &m, &train, pc.taylor_batches, !a.quiet);
    } else {
        evit_prune_magnitude(&s, &m, pc.criterion);
    }
    evit_prune_select(&plan, &pc, &m.cfg, &s);
    evit_prune_apply(&p, &m, &plan);

    if (a.val) {
        if (!a.quiet) evit_info("evaluating before and after pruning on %s", a.val);
        if (score_of(&m, &val, NULL, &before) < 0 || score_of(&p, &val, &e, &after) < 0) goto fail;
    }

    const char *parent = evit_report_parent(NULL, meta.report, meta.parent_report, a.report);
    struct evit_ckpt_meta out_meta = {.stage = "prune", .parent_report = parent,
                                      .report = a.report, .classes = meta.classes,
                                      .class_names = meta.class_names};
    if (evit_ckpt_save(a.out, &p, &out_meta) < 0) goto fail;
    saved = 1;
    double lat[3];
    const struct evit_dataset *ld = a.val ? &val : &train;
    if (a.latency && !ld->images) {
        evit_error("--latency needs images to run on: give --val or --data");
        goto fail;
    }
    if (a.latency && evit_qmodel_vit_latency(&p, ld, a.latency, a.out, lat) < 0) goto fail;
    rep = evit_report_new("prune", a.out, a.val, parent);
    evit_report_add_model(rep, &p.cfg, 4.0 * (double)evit_config_params(&p.cfg));
    if (a.val) evit_report_add_score(rep, &e, val.class_names);
    if (a.latency) evit_report_add_latency(rep, lat, a.latency);
    cJSON *conf = cJSON_GetObjectItemCaseSensitive(rep, "config");
    cJSON_AddItemToObject(conf, "prune", cJSON_Duplicate(pc.json, 1));
    cJSON_AddStringToObject(conf, "prune_config_file", a.config);
    cJSON_AddStringToObject(conf, "input_model", a.model);
    if (taylor) cJSON_AddStringToObject(conf, "train_data", a.data);
    cJSON_AddItemToObject(rep, "prune", prune_section(&pc, &plan, &m, &p, a.model, &e, before));
    if (evit_report_save(rep, a.report, evit_now() - t0) < 0) goto fail;

    printf("%s: %ld -> %ld parameters, %.1f -> %.1f MFLOPs, heads %d -> %d, MLP channels %d -> %d",
           a.out, evit_config_params(&m.cfg), evit_config_params(&p.cfg), evit_config_mflops(&m.cfg),
           evit_config_mflops(&p.cfg), total_heads(&m.cfg), total_heads(&p.cfg), total_mlp(&m.cfg),
           total_mlp(&p.cfg));
    if (p.cfg.decoder_dim != m.cfg.decoder_dim)
        printf(", decoder width %d -> %d", m.cfg.decoder_dim, p.cfg.decoder_dim);
    if (a.val) printf("; %s %.2f%% -> %.2f%%", evit_score_name(&e), before, after);
    printf("\n");
    rc = EVIT_EXIT_OK;
fail:
    /* the checkpoint names its report: without the report it is not kept */
    if (rc != EVIT_EXIT_OK && saved) unlink(a.out);
    cJSON_Delete(rep);
    evit_score_free(&e);
    evit_prune_plan_free(&plan);
    evit_prune_scores_free(&s);
    evit_vit_free(&p);
    evit_vit_free(&m);
    evit_ckpt_meta_free(&meta);
    evit_dataset_free(&train);
    evit_dataset_free(&val);
    evit_prune_config_free(&pc);
    return rc;
}
