/* evit-quantize: post-training INT8 whose reported accuracy is the
 * runtime's, computed by libevrt's integer kernels. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "dataset.h"
#include "eval.h"
#include "evrt.h"
#include "qmodel.h"
#include "quantize.h"
#include "report.h"
#include "rng.h"
#include "util.h"
#include "vit.h"

static const char *usage =
    "usage: evit-quantize CONFIG.json MODEL.h5 --calib TRAIN.h5 --val TEST.h5 -o OUT.q8.h5 [options]\n"
    "\n"
    "Post-training INT8: calibrates every linear layer's input range on training\n"
    "images through the runtime's float path, quantizes weights per output\n"
    "channel, then measures top-1 (mIoU for a segmentation model) with the\n"
    "runtime's integer kernels. With a max_drop budget (in points of that score),\n"
    "the layers with the largest quantization error are kept in float32, one at\n"
    "a time, until the INT8 model is within it.\n"
    "\n"
    "  CONFIG               quantize config (configs/fmnist/quantize.json)\n"
    "  MODEL                float checkpoint\n"
    "  -c, --calib F        dataset the calibration images come from (training set)\n"
    "  -v, --val F          dataset float and INT8 scores are measured on\n"
    "  -o, --output F       quantized model (format evit-quantized)\n"
    "  -r, --report F       JSON report\n"
    "  -C, --calibrator N   override the config's calibrator (minmax, percentile,\n"
    "                       entropy, mse)\n"
    "      --parent F       report this model derives from (default: the\n"
    "                       checkpoint's own report)\n"
    EVIT_CLI_STAGE_HELP;

struct args {
    const char *config, *model, *calib, *val, *out, *report, *parent, *calibrator;
    int quiet, latency;
};


static int parse_args(int argc, char **argv, struct args *a)
{
    const struct evit_opt opts[] = {EVIT_OPT_S("calib", 'c', &a->calib),   EVIT_OPT_S("val", 'v', &a->val),
                                    EVIT_OPT_S("output", 'o', &a->out),    EVIT_OPT_S("report", 'r', &a->report),
                                    EVIT_OPT_S("calibrator", 'C', &a->calibrator),
                                    EVIT_OPT_S("parent", 0, &a->parent),   EVIT_OPT_END};
    enum evit_calibrator cal;
    int first, r = evit_cli_parse(argc, argv, "evit-quantize", usage, opts, EVIT_CLI_THREADS | EVIT_CLI_LATENCY,
                                  &a->quiet, &a->latency, &first);
    if (r != EVIT_CLI_NEXT) return r;
    if (a->calibrator && evit_calibrator_parse(a->calibrator, &cal) < 0)
        return evit_cli_usage_error("evit-quantize", "--calibrator: expected minmax, percentile, entropy or mse, got %s",
                                    a->calibrator);
    if (argc - first != 2) return evit_cli_usage_error("evit-quantize", "expected CONFIG and MODEL");
    a->config = argv[first];
    a->model = argv[first + 1];
    if (!a->calib) return evit_cli_usage_error("evit-quantize", "missing --calib TRAIN.h5");
    if (!a->val) return evit_cli_usage_error("evit-quantize", "missing --val TEST.h5");
    if (!a->out) return evit_cli_usage_error("evit-quantize", "missing -o OUT.q8.h5");
    return 0;
}

/* n images drawn without replacement (seeded), copied contiguously. */
static uint8_t *pick_images(const struct evit_dataset *d, int n, int seed)
{
    size_t img = (size_t)d->h * d->w * d->c;
    int *idx = evit_malloc(sizeof(int) * (size_t)d->n);
    uint8_t *out = evit_malloc(img * (size_t)n);
    struct evit_rng r;
    evit_rng_seed(&r, (uint64_t)seed);
    for (int i = 0; i < d->n; i++) idx[i] = i;
    for (int i = 0; i < n; i++) {
        int j = i + (int)evit_rng_below(&r, (uint64_t)(d->n - i));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        memcpy(out + (size_t)i * img, d->images + (size_t)idx[i] * img, img);
    }
    free(idx);
    return out;
}

/* The qmodel's score on the validation set through the runtime. */
static int eval_int8(const struct evit_qmodel *q, const struct evit_dataset *val, int batch,
                     int progress, const char *where, struct evit_score *e)
{
    struct evit_qmodel_runner run;
    if (evit_qmodel_runner_init(&run, q, batch, evit_get_threads(), where) < 0) return EVIT_ERR;
    int rc = evit_score_run(evit_qmodel_runner_forward, &run, batch, &q->vit.cfg, val, progress, e);
    evit_qmodel_runner_free(&run);
    return rc;
}

/* Bytes of the linear layers' weights alone (with their scales when int8). */
static double linear_weight_bytes(const struct evrt_model *m, int as_float)
{
    double b = 0;
    for (int i = 0; i < evrt_layer_count(m); i++) {
        const struct evrt_linear *L = evrt_model_layer(m, i);
        double w = (double)L->in * L->out;
        b += !as_float && L->dtype == EVRT_I8 ? w + 4.0 * L->out : 4.0 * w;
    }
    return b;
}

static cJSON *layers_json(const struct evit_qmodel *q, const struct evit_quant_layer_err *err,
                          int with_attention)
{
    cJSON *a = cJSON_CreateArray();
    char name[64];
    int nl = evrt_layer_count(&q->rt), ne = with_attention ? evit_quant_entries(q) : nl;
    for (int i = 0; i < ne; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", evit_quant_entry_name(q, i, name, sizeof name));
        cJSON_AddStringToObject(o, "dtype", evit_quant_dtype(q, i) == EVRT_I8 ? "int8" : "float32");
        if (i < nl) {
            const struct evrt_linear *L = evrt_model_layer(&q->rt, i);
            cJSON_AddNumberToObject(o, "input_scale", L->in_scale);
            cJSON_AddNumberToObject(o, "input_zero", L->in_zero);
        } else {
            const float *sc = q->rt.blocks[i - nl].attn_scale;
            cJSON_AddNumberToObject(o, "q_scale", sc[0]);
            cJSON_AddNumberToObject(o, "k_scale", sc[1]);
            cJSON_AddNumberToObject(o, "v_scale", sc[2]);
            cJSON_AddNumberToObject(o, "p_scale", sc[3]);
        }
        /* JSON has no infinity: an exact layer reports null */
        if (isfinite(err[i].sqnr_db)) cJSON_AddNumberToObject(o, "sqnr_db", err[i].sqnr_db);
        else cJSON_AddNullToObject(o, "sqnr_db");
        cJSON_AddNumberToObject(o, "cosine", err[i].cosine);
        if (isfinite(err[i].sqnr_db_model)) cJSON_AddNumberToObject(o, "sqnr_db_model", err[i].sqnr_db_model);
        else cJSON_AddNullToObject(o, "sqnr_db_model");
        cJSON_AddNumberToObject(o, "cosine_model", err[i].cosine_model);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* The int8 entry (layer or attention) with the lowest isolated SQNR, or -1. */
static int worst_int8_entry(const struct evit_qmodel *q, const struct evit_quant_layer_err *err)
{
    int worst = -1;
    for (int i = 0; i < evit_quant_entries(q); i++)
        if (evit_quant_dtype(q, i) == EVRT_I8 && (worst < 0 || err[i].sqnr_db < err[worst].sqnr_db))
            worst = i;
    return worst;
}

int main(int argc, char **argv)
{
    struct args a = {0};
    struct evit_quant_config qc = {0};
    struct evit_vit m = {0};
    struct evit_ckpt_meta meta = {0};
    struct evit_dataset calib = {0}, val = {0};
    struct evit_qmodel q = {0};
    struct evit_score ef = {0}, eq = {0};
    struct evit_quant_stats *stats = NULL;
    struct evit_quant_layer_err err[EVIT_QMODEL_MAX_ENTRIES];
    uint8_t *cimg = NULL;
    cJSON *history = NULL;
    int rc = EVIT_EXIT_FAIL, have_q = 0;
    double t0 = evit_now();
    char name[64];
    evit_cli_init();
    int pa = parse_args(argc, argv, &a);
    if (pa == -1) return EVIT_EXIT_OK;
    if (pa) return pa;

    if (evit_quant_config_load(a.config, &qc) < 0) return EVIT_EXIT_FAIL;
    if (a.calibrator) {
        evit_calibrator_parse(a.calibrator, &qc.calibrator);
        if (qc.calibrator == EVIT_CAL_ENTROPY && !qc.symmetric) {
            evit_error("%s: calibrator entropy needs symmetric ranges", a.config);
            goto fail;
        }
    }
    if (evit_ckpt_load_heads(a.model, &m, &meta, EVIT_HEADS_RUNTIME) < 0) goto fail;
    if (evit_dataset_load_task(a.calib, &calib, EVIT_TASK_CLASSIFY | EVIT_TASK_SEGMENT) < 0) goto fail;
    if (evit_eval_check_compat(&m, a.model, &calib, a.calib) < 0) goto fail;
    if (evit_dataset_load_task(a.val, &val, EVIT_TASK_CLASSIFY | EVIT_TASK_SEGMENT) < 0) goto fail;
    if (evit_eval_check_compat(&m, a.model, &val, a.val) < 0) goto fail;
    if (m.cfg.channels > EVRT_MAX_CHANNELS) {
        evit_error("%s: %d channels, the runtime takes at most %d", a.model, m.cfg.channels, EVRT_MAX_CHANNELS);
        goto fail;
    }
    int ncal = qc.calib_images < calib.n ? qc.calib_images : calib.n;
    int nmeasure = qc.measure_images < ncal ? qc.measure_images : ncal;
    cimg = pick_images(&calib, ncal, qc.seed);

    /* the float model, on the training engine (fast, threaded) */
    if (evit_score_vit(&m, &val, qc.batch, &ef) < 0) goto fail;
    const char *sname = evit_score_name(&ef), *skey = evit_score_key(&ef);
    if (!a.quiet) evit_info("float model: %s %.2f%% on %s", sname, ef.value, a.val);

    evit_qmodel_from_vit(&q, &m);
    have_q = 1;
    snprintf(q.calibrator, sizeof q.calibrator, "%s", evit_calibrator_name(qc.calibrator));
    q.percentile = qc.calibrator == EVIT_CAL_PERCENTILE ? qc.percentile : 0.0;
    q.symmetric = qc.symmetric;
    int nl = evrt_layer_count(&q.rt), ne = evit_quant_entries(&q);
    stats = evit_malloc(sizeof *stats * (size_t)evit_quant_stat_count(&q));
    if (!a.quiet) evit_info("calibrating %d layers on %d images of %s (%s)", nl, ncal, a.calib, q.calibrator);
    if (evit_quant_collect(&q, cimg, ncal, qc.batch, stats) < 0) goto fail;
    evit_quant_apply(&q, stats, &qc);
    if (evit_quant_measure(&q, cimg, nmeasure, qc.batch, err) < 0) goto fail;
    if (eval_int8(&q, &val, qc.batch, !a.quiet, a.out, &eq) < 0) goto fail;
    if (!a.quiet) evit_info("INT8 model: %s %.2f%% (drop %.2f points)", sname, eq.value, ef.value - eq.value);

    /* the accuracy budget: keep the worst layers float, one at a time */
    history = cJSON_CreateArray();
    {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddNullToObject(h, "kept_float");
        cJSON_AddNumberToObject(h, skey, eq.value);
        cJSON_AddItemToArray(history, h);
    }
    while (qc.max_drop >= 0 && ef.value - eq.value > qc.max_drop) {
        int w = worst_int8_entry(&q, err);
        if (w < 0) break;
        evit_quant_set_dtype(&q, w, EVRT_F32);
        evit_score_free(&eq);
        if (eval_int8(&q, &val, qc.batch, 0, a.out, &eq) < 0) goto fail;
        evit_quant_entry_name(&q, w, name, sizeof name);
        if (!a.quiet)
            evit_info("kept %s in float32: %s %.2f%% (drop %.2f)", name, sname, eq.value, ef.value - eq.value);
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "kept_float", name);
        cJSON_AddNumberToObject(h, skey, eq.value);
        cJSON_AddItemToArray(history, h);
    }
    if (cJSON_GetArraySize(history) > 1 && evit_quant_measure(&q, cimg, nmeasure, qc.batch, err) < 0)
        goto fail;

    const char *parent = evit_report_parent(a.parent, meta.report, meta.parent_report, a.report);
    struct evit_ckpt_meta qmeta = {.stage = "quantize", .parent_report = parent, .report = a.report,
                                   .classes = val.classes, .class_names = val.class_names};
    if (evit_qmodel_save(a.out, &q, &qmeta) < 0) goto fail;

    double fbytes = 4.0 * (double)evit_config_params(&m.cfg), qbytes = (double)evrt_model_bytes(&q.rt);
    printf("%s: float %s %.2f%%, INT8 %s %.2f%% (drop %.2f, budget %.2f), %s, %d/%d layers int8, "
           "%d/%d attentions int8, %.0f -> %.0f bytes (%.2fx)\n",
           a.out, sname, ef.value, sname, eq.value, ef.value - eq.value, qc.max_drop, q.calibrator,
           evit_qmodel_int8_layers(&q), nl, evit_qmodel_int8_attention(&q), q.rt.depth, fbytes, qbytes,
           fbytes / qbytes);
    double lat[3];
    if (a.latency && evit_qmodel_latency(&q.rt, &val, a.latency, a.out, lat) < 0) goto fail;
    if (a.report) {
        cJSON *rep = evit_report_new("quantize", a.out, a.val, parent);
        evit_report_add_model(rep, &m.cfg, qbytes);
        evit_report_add_score(rep, &eq, val.class_names);
        if (a.latency) evit_report_add_latency(rep, lat, a.latency);
        cJSON *conf = cJSON_GetObjectItemCaseSensitive(rep, "config");
        cJSON_AddItemToObject(conf, "quantize", cJSON_Duplicate(qc.json, 1));
        cJSON_AddStringToObject(conf, "quantize_file", a.config);
        cJSON_AddStringToObject(conf, "input", a.model);
        cJSON_AddStringToObject(conf, "calib_data", a.calib);
        cJSON *o = cJSON_AddObjectToObject(rep, "quantize");
        cJSON_AddStringToObject(o, "calibrator", q.calibrator);
        if (qc.calibrator == EVIT_CAL_PERCENTILE) cJSON_AddNumberToObject(o, "percentile", qc.percentile);
        cJSON_AddBoolToObject(o, "symmetric", qc.symmetric);
        cJSON_AddNumberToObject(o, "calib_images", ncal);
        cJSON_AddNumberToObject(o, "measure_images", nmeasure);
        char key[16];
        snprintf(key, sizeof key, "float_%s", skey);
        cJSON_AddNumberToObject(o, key, ef.value);
        snprintf(key, sizeof key, "int8_%s", skey);
        cJSON_AddNumberToObject(o, key, eq.value);
        cJSON_AddNumberToObject(o, "drop", ef.value - eq.value);
        cJSON_AddNumberToObject(o, "max_drop", qc.max_drop);
        cJSON_AddNumberToObject(o, "float_model_bytes", fbytes);
        cJSON_AddNumberToObject(o, "int8_model_bytes", qbytes);
        cJSON_AddNumberToObject(o, "compression", fbytes / qbytes);
        cJSON_AddNumberToObject(o, "float_linear_weight_bytes", linear_weight_bytes(&q.rt, 1));
        cJSON_AddNumberToObject(o, "int8_linear_weight_bytes", linear_weight_bytes(&q.rt, 0));
        cJSON_AddNumberToObject(o, "int8_layers", evit_qmodel_int8_layers(&q));
        cJSON_AddNumberToObject(o, "int8_attention", evit_qmodel_int8_attention(&q));
        cJSON *kf = cJSON_AddArrayToObject(o, "float_layers");
        for (int i = 0; i < (qc.quantize_attention ? ne : nl); i++)
            if (evit_quant_dtype(&q, i) == EVRT_F32)
                cJSON_AddItemToArray(kf, cJSON_CreateString(evit_quant_entry_name(&q, i, name, sizeof name)));
        cJSON_AddItemToObject(o, "budget_history", history);
        history = NULL;
        cJSON_AddItemToObject(o, "layers", layers_json(&q, err, qc.quantize_attention));
        int bad = evit_report_save(rep, a.report, evit_now() - t0) < 0;
        cJSON_Delete(rep);
        if (bad) goto fail;
    }
    rc = EVIT_EXIT_OK;
fail:
    cJSON_Delete(history);
    free(stats);
    free(cimg);
    if (have_q) evit_qmodel_free(&q);
    evit_score_free(&ef);
    evit_score_free(&eq);
    evit_dataset_free(&calib);
    evit_dataset_free(&val);
    evit_ckpt_meta_free(&meta);
    evit_vit_free(&m);
    evit_quant_config_free(&qc);
    return rc;
}
