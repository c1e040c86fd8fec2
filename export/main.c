/* evit-export: a float checkpoint or a quantized model to the flat file
 * libevrt maps (.evit, runtime/evrt.h "Model files"), or to ONNX
 * (export/onnx.h) for ONNX Runtime and TensorRT. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "export.h"
#ifdef EVIT_ONNX
#include "onnx.h"
#endif
#include "qmodel.h"
#include "report.h"
#include "util.h"

static const char *usage =
    "usage: evit-export MODEL -o OUT.evit|OUT.onnx [--format evit|onnx] [options]\n"
    "\n"
    "Writes MODEL as one flat file that evit-run and libevrt map and run in\n"
    "place: a float checkpoint as a float32 model, a quantized model (from\n"
    "evit-quantize) with its int8 layers, scales and zero points.  Or as an\n"
    "ONNX model (opset 13, dynamic batch) for ONNX Runtime and TensorRT: a\n"
    "float checkpoint as float32, a quantized model as QDQ (int8 weights with\n"
    "per-channel scales, QuantizeLinear/DequantizeLinear on activations).\n"
    "The ONNX input is float32 (batch, C, H, W) holding pixel/255; the graph\n"
    "applies the model's mean/std.  A segmentation model exports both ways:\n"
    "the .evit carries its head (format version 4 for seg_linear, 5 for\n"
    "seg_mlp, SegFormer's all-MLP decoder, whose layers sit beside the\n"
    "others); the ONNX graph has outputs logits (batch, G*G, K) per patch\n"
    "(seg_mlp: its decoder's), scores (batch, K, H, W) upsampled by Resize\n"
    "and mask (batch, H, W) by ArgMax.\n"
    "\n"
    "  MODEL                  checkpoint (.h5) or quantized model (.h5)\n"
    "  -o, --output F         file to write (atomically)\n"
    "  -f, --format FMT       evit or onnx (default: onnx when F ends in\n"
    "                         .onnx, else evit)\n"
    "  -r, --report F         also write a JSON report of the export\n"
    "  -c, --quantize-config F  the quantize config MODEL came from: its\n"
    "                         FNV-1a 64 is recorded as lineage\n"
    "  -q, --quiet            no summary line\n"
    "  -h, --help             this text\n"
    "  -V, --version          print the version\n";

struct export_args {
    const char *model, *out, *report, *qconfig;
    int quiet, onnx;
};

static int parse_args(int argc, char **argv, struct export_args *a)
{
    const char *format = NULL;
    const struct evit_opt opts[] = {EVIT_OPT_S("output", 'o', &a->out), EVIT_OPT_S("report", 'r', &a->report),
                                    EVIT_OPT_S("quantize-config", 'c', &a->qconfig),
                                    EVIT_OPT_S("format", 'f', &format), EVIT_OPT_END};
    int first, r = evit_cli_parse(argc, argv, "evit-export", usage, opts, 0, &a->quiet, NULL, &first);
    if (r != EVIT_CLI_NEXT) return r;
    if (argc - first != 1) return evit_cli_usage_error("evit-export", "expected one MODEL");
    if (!a->out) return evit_cli_usage_error("evit-export", "-o OUT.evit is required");
    size_t n = strlen(a->out);
    if (!format) format = n > 5 && !strcmp(a->out + n - 5, ".onnx") ? "onnx" : "evit";
    if (strcmp(format, "evit") && strcmp(format, "onnx"))
        return evit_cli_usage_error("evit-export", "--format: evit or onnx, not %s", format);
    a->onnx = !strcmp(format, "onnx");
#ifndef EVIT_ONNX
    if (a->onnx)
        return evit_cli_usage_error("evit-export", "this build has no ONNX output: apt-get install "
                                    "protobuf-c-compiler libprotobuf-c-dev libonnx-dev, then rebuild");
#endif
    a->model = argv[first];
    return EVIT_EXIT_OK;
}

static int file_fnv(const char *path, uint64_t *h)
{
    uint8_t *data;
    size_t n;
    if (evit_read_file(path, &data, &n) < 0) return EVIT_ERR;
    *h = evit_fnv1a64(data, n, EVIT_FNV_SEED);
    free(data);
    return EVIT_OK;
}

static int write_report(const struct export_args *a, const struct evit_qmodel *q, const char *parent,
                        const struct evit_export_info *info, size_t bytes, double t0)
{
    char hex[32];
    cJSON *r = evit_report_new("export", a->model, NULL, parent);
    evit_report_add_model(r, &q->vit.cfg, (double)evrt_model_bytes(&q->rt));
    cJSON_AddStringToObject(r, "output", a->out);
    cJSON_AddStringToObject(r, "format", a->onnx ? "onnx" : "evit");
    cJSON_AddNumberToObject(r, "file_bytes", (double)bytes);
    cJSON_AddNumberToObject(r, "tensors", evit_export_tensor_count(&q->rt));
    cJSON_AddNumberToObject(r, "int8_layers", evit_qmodel_int8_layers(q));
    cJSON_AddStringToObject(r, "precision", info->lineage.source_kind == EVRT_SOURCE_QUANTIZED ? "int8" : "float32");
    snprintf(hex, sizeof hex, "%016" PRIx64, info->lineage.source_fnv);
    cJSON_AddStringToObject(r, "source_fnv1a64", hex);
    snprintf(hex, sizeof hex, "%016" PRIx64, info->lineage.config_fnv);
    cJSON_AddStringToObject(r, "quantize_config_fnv1a64", hex);
    int rc = evit_report_save(r, a->report, evit_now() - t0);
    cJSON_Delete(r);
    return rc;
}

int main(int argc, char **argv)
{
    struct export_args a = {0};
    struct evit_vit m = {0};
    struct evit_ckpt_meta meta = {0};
    struct evit_qmodel q = {0};
    struct evit_export_info info = {0};
    size_t bytes = 0;
    int rc = EVIT_EXIT_FAIL, have_q = 0;
    double t0 = evit_now();
    evit_cli_init();
    int pa = parse_args(argc, argv, &a);
    if (pa == -1) return EVIT_EXIT_OK;
    if (pa != EVIT_EXIT_OK) return pa;

    int quantized = evit_qmodel_is_quantized(a.model);
    /* both formats take every head libevrt runs (the quantized model's
     * loader refuses any other) */
    if (quantized) {
        if (evit_qmodel_load(a.model, &q, &meta) < 0) return EVIT_EXIT_FAIL;
    } else {
        if (evit_ckpt_load_heads(a.model, &m, &meta, EVIT_HEADS_RUNTIME) < 0) return EVIT_EXIT_FAIL;
        evit_qmodel_from_vit(&q, &m); /* every layer float32 */
    }
    have_q = 1;
    info.name = q.vit.cfg.name;
    if (meta.classes == q.rt.classes) info.class_names = meta.class_names;
    info.lineage.source_kind = quantized ? EVRT_SOURCE_QUANTIZED : EVRT_SOURCE_FLOAT;
    if (file_fnv(a.model, &info.lineage.source_fnv) < 0) goto fail;
    if (a.qconfig && file_fnv(a.qconfig, &info.lineage.config_fnv) < 0) goto fail;
    if (a.onnx) {
#ifdef EVIT_ONNX
        struct evit_onnx_info oi = {.name = q.vit.cfg.name, .class_names = info.class_names, .source = a.model};
        if (evit_onnx_write(a.out, &q, &oi, &bytes) < 0) goto fail;
#endif
    } else if (evit_export_write(a.out, &q.rt, &info, &bytes) < 0) {
        goto fail;
    }
    if (!a.quiet)
        printf("%s: %s%s, %d of %d layers int8, %zu bytes (%zu of weights)\n", a.out,
               quantized ? (a.onnx ? "QDQ " : "") : "", quantized ? "int8" : "float32", evit_qmodel_int8_layers(&q), evrt_layer_count(&q.rt), bytes,
               evrt_model_bytes(&q.rt));
    if (a.report) {
        const char *parent = evit_report_parent(NULL, meta.report, meta.parent_report, a.report);
        if (write_report(&a, &q, parent, &info, bytes, t0) < 0) goto fail;
    }
    rc = EVIT_EXIT_OK;
fail:
    if (have_q) evit_qmodel_free(&q);
    evit_ckpt_meta_free(&meta);
    evit_vit_free(&m);
    return rc;
}
