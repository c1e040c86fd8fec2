/* compare.c: see compare.h. */
#include "compare.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chart.h"
#include "json.h"
#include "util.h"

/* ---------------------------------------------------------------- reading */

static char *dup_or_empty(const char *s) { return evit_strdup(s ? s : ""); }

/* Absent or null -> NAN; a number -> its value; anything else -> error. */
static int get_number(const cJSON *root, const char *path, const char *key, double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = NAN;
    if (!it || cJSON_IsNull(it)) return EVIT_OK;
    if (!cJSON_IsNumber(it)) return evit_error("%s: %s: expected a number", path, key);
    *out = it->valuedouble;
    return EVIT_OK;
}

/* "tokens": the tokens entering each block, first and last (NAN absent). */
static int get_tokens(const cJSON *root, const char *path, double *first, double *last)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "tokens"), *v;
    *first = *last = NAN;
    if (!it || cJSON_IsNull(it)) return EVIT_OK;
    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) < 1)
        return evit_error("%s: tokens: expected an array of numbers", path);
    cJSON_ArrayForEach(v, it) if (!cJSON_IsNumber(v)) return evit_error("%s: tokens: expected an array of numbers", path);
    *first = cJSON_GetArrayItem(it, 0)->valuedouble;
    *last = cJSON_GetArrayItem(it, cJSON_GetArraySize(it) - 1)->valuedouble;
    return EVIT_OK;
}

/* Absent or null -> NULL; a string -> it (pointing into root). */
static int get_string(const cJSON *root, const char *path, const char *key, const char **out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = NULL;
    if (!it || cJSON_IsNull(it)) return EVIT_OK;
    if (!cJSON_IsString(it)) return evit_error("%s: %s: expected a string", path, key);
    *out = it->valuestring;
    return EVIT_OK;
}

static int is_report(const cJSON *root)
{
    return cJSON_IsObject(root) &&
           cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(root, "report_version")) &&
           cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "stage"));
}

int evit_compare_parse(const cJSON *root, const char *path, struct evit_compare_report *r)
{
    const char *model, *created, *dataset, *dataset_real, *parent;
    struct evit_compare_report t = {.parent = -1};
    if (!is_report(root))
        return evit_error("%s: not an evit report (no report_version or stage)", path);
    double version = cJSON_GetObjectItemCaseSensitive(root, "report_version")->valuedouble;
    if (!(version >= 1) || version != floor(version))
        return evit_error("%s: report_version: expected a positive integer", path);
    if (get_string(root, path, "model", &model) < 0 ||
        get_string(root, path, "created", &created) < 0 ||
        get_string(root, path, "dataset", &dataset) < 0 ||
        get_string(root, path, "dataset_real", &dataset_real) < 0 ||
        get_string(root, path, "parent", &parent) < 0 ||
        get_number(root, path, "top1", &t.top1) < 0 || get_number(root, path, "top5", &t.top5) < 0 ||
        get_number(root, path, "miou", &t.miou) < 0 ||
        get_number(root, path, "params", &t.params) < 0 ||
        get_number(root, path, "model_bytes", &t.model_bytes) < 0 ||
        get_number(root, path, "mflops", &t.mflops) < 0 ||
        get_number(root, path, "images_per_s", &t.images_per_s) < 0 ||
        get_number(root, path, "threads", &t.threads) < 0 ||
        get_number(root, path, "latency_ms", &t.latency_ms) < 0 ||
        get_tokens(root, path, &t.tokens_first, &t.tokens_last) < 0)
        return EVIT_ERR;
    t.path = evit_strdup(path);
    t.stage = evit_strdup(cJSON_GetObjectItemCaseSensitive(root, "stage")->valuestring);
    t.model = dup_or_empty(model);
    t.created = dup_or_empty(created);
    t.dataset = dataset ? evit_strdup(dataset) : NULL;
    t.dataset_real = dataset && dataset_real ? evit_strdup(dataset_real) : NULL;
    t.parent_field = parent && parent[0] ? evit_strdup(parent) : NULL;
    *r = t;
    return EVIT_OK;
}

static void report_free(struct evit_compare_report *r)
{
    free(r->path);
    free(r->real);
    free(r->stage);
    free(r->model);
    free(r->created);
    free(r->dataset);
    free(r->dataset_real);
    free(r->parent_field);
}

static int find_real(const struct evit_compare *c, const char *real)
{
    for (int i = 0; i < c->n_reports; i++)
        if (strcmp(c->reports[i].real, real) == 0) return i;
    return -1;
}

/* Reads path and appends it unless already there; *index gets its place.
 * skip_other: JSON that is not an evit report returns 1 instead of an error
 * (folder scans). */
static int load(struct evit_compare *c, const char *path, int named, int skip_other, int *index)
{
    cJSON *root = NULL;
    int rc = EVIT_ERR;
    char *real = realpath(path, NULL);
    if (!real) return evit_error("%s: %s", path, strerror(errno));
    int at = find_real(c, real);
    if (at >= 0) {
        c->reports[at].named |= named;
        if (index) *index = at;
        free(real);
        return EVIT_OK;
    }
    if (evit_json_read(path, &root) < 0) goto fail;
    if (skip_other && !is_report(root)) {
        rc = 1;
        goto fail;
    }
    struct evit_compare_report r;
    if (evit_compare_parse(root, path, &r) < 0) goto fail;
    r.real = real;
    real = NULL;
    r.named = named;
    if (c->n_reports == c->cap_reports) {
        c->cap_reports = c->cap_reports ? 2 * c->cap_reports : 8;
        c->reports = realloc(c->reports, (size_t)c->cap_reports * sizeof *c->reports);
        EVIT_ASSERT(c->reports != NULL);
    }
    c->reports[c->n_reports] = r;
    if (index) *index = c->n_reports;
    c->n_reports++;
    rc = EVIT_OK;
fail:
    cJSON_Delete(root);
    free(real);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

/* dir/name; "." adds nothing, so that names read as the user typed them. */
static char *join_path(const char *dir, const char *name)
{
    if (strcmp(dir, ".") == 0 || strcmp(dir, "./") == 0) return evit_strdup(name);
    size_t n = strlen(dir);
    int slash = n > 0 && dir[n - 1] == '/';
    char *p = evit_malloc(n + strlen(name) + 2);
    sprintf(p, "%s%s%s", dir, slash ? "" : "/", name);
    return p;
}

/* Every *.json evit report in the folder, in name order. */
static int add_folder(struct evit_compare *c, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return evit_error("%s: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, found = 0, rc = EVIT_ERR;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.' || !ends_with(e->d_name, ".json")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            names = realloc(names, (size_t)cap * sizeof *names);
            EVIT_ASSERT(names != NULL);
        }
        names[n++] = evit_strdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n; i++) {
        char *p = join_path(dir, names[i]);
        int r = load(c, p, 1, 1, NULL);
        free(p);
        if (r < 0) goto fail;
        found += r == EVIT_OK;
    }
    if (!found) {
        evit_error("%s: no evit reports (*.json with report_version and stage) in this folder", dir);
        goto fail;
    }
    rc = EVIT_OK;
fail:
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int evit_compare_add(struct evit_compare *c, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return evit_error("%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return add_folder(c, path);
    return load(c, path, 1, 0, NULL) < 0 ? EVIT_ERR : EVIT_OK;
}

/* ---------------------------------------------------------------- lineage */

static void push_note(char ***notes, int *n, char *note)
{
    *notes = realloc(*notes, (size_t)(*n + 1) * sizeof **notes);
    EVIT_ASSERT(*notes != NULL);
    (*notes)[(*n)++] = note;
}

/* The file a path recorded in a report names: relative to the report's
 * folder (where pipelines keep reports together), else to the working
 * directory (what --parent was given from).  NULL when neither exists. */
static char *resolve_parent(const char *report_path, const char *field)
{
    struct stat st;
    if (field[0] != '/') {
        const char *slash = strrchr(report_path, '/');
        if (slash) {
            size_t n = (size_t)(slash - report_path);
            char *dir = evit_malloc(n + 1);
            memcpy(dir, report_path, n);
            dir[n] = '\0';
            char *p = join_path(n ? dir : "/", field);
            free(dir);
            if (stat(p, &st) == 0) return p;
            free(p);
        }
    }
    return stat(field, &st) == 0 ? evit_strdup(field) : NULL;
}

/* Datasets named alike, or the same file; a report that names none does not
 * split its chain (it makes no accuracy claim on other data). */
static int same_dataset(const char *a, const char *b)
{
    if (!a || !b || strcmp(a, b) == 0) return 1;
    char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
    int same = ra && rb && strcmp(ra, rb) == 0;
    free(ra);
    free(rb);
    return same;
}

/* The dataset file a report names, canonical: the path recorded when the
 * report was written, else (older reports) resolved here, where a relative
 * path was relative to where the evaluating command ran, which is usually
 * the report's folder or the working directory.  NULL stays NULL. */
static char *dataset_file(const struct evit_compare_report *r)
{
    const char *ds = r->dataset;
    if (!ds) return NULL;
    if (r->dataset_real) return evit_strdup(r->dataset_real);
    char *found = NULL;
    if (ds[0] != '/') {
        char *p = resolve_parent(r->path, ds);
        if (p) found = realpath(p, NULL);
        free(p);
    } else {
        found = realpath(ds, NULL);
    }
    return found ? found : evit_strdup(ds);
}

static int link_parents(struct evit_compare *c)
{
    /* reports appended while linking are linked in turn */
    for (int i = 0; i < c->n_reports; i++) {
        struct evit_compare_report *r = &c->reports[i];
        r->parent = -1;
        if (!r->parent_field) continue;
        char *p = resolve_parent(r->path, r->parent_field);
        if (!p) {
            r->parent_missing = 1;
            continue;
        }
        int at = -1;
        int rc = load(c, p, 0, 0, &at);
        free(p);
        if (rc < 0) return EVIT_ERR;
        c->reports[i].parent = at;
    }
    /* after n steps up, a walk that has not ended is inside a loop */
    for (int i = 0; i < c->n_reports; i++) {
        int j = i;
        for (int k = 0; k < c->n_reports && j >= 0; k++) j = c->reports[j].parent;
        if (j >= 0)
            return evit_error("%s: its parent fields lead back to it (a lineage loop)",
                              c->reports[j].path);
    }
    for (int i = 0; i < c->n_reports; i++) {
        struct evit_compare_report *r = &c->reports[i];
        if (r->parent < 0) continue;
        char *a = dataset_file(r);
        char *b = dataset_file(&c->reports[r->parent]);
        r->linked = same_dataset(a, b);
        free(a);
        free(b);
    }
    return EVIT_OK;
}

static int root_of(const struct evit_compare *c, int i)
{
    while (c->reports[i].linked) i = c->reports[i].parent;
    return i;
}

/* Siblings in creation order (ISO 8601 sorts as text), then by path. */
static int before(const struct evit_compare_report *a, const struct evit_compare_report *b)
{
    int d = strcmp(a->created, b->created);
    return d ? d < 0 : strcmp(a->path, b->path) < 0;
}

static void add_rows(struct evit_compare *c, struct evit_compare_chain *ch, int report,
                     int parent_row, int depth)
{
    int row = ch->n_rows++;
    ch->rows[row] = (struct evit_compare_row){.report = report, .parent_row = parent_row,
                                              .depth = depth};
    int children = 0;
    /* children one by one in order: n is small, quadratic is fine */
    for (;;) {
        int next = -1;
        for (int i = 0; i < c->n_reports; i++) {
            const struct evit_compare_report *r = &c->reports[i];
            if (!r->linked || r->parent != report) continue;
            int seen = 0;
            for (int k = 0; k < ch->n_rows; k++) seen |= ch->rows[k].report == i;
            if (seen) continue;
            if (next < 0 || before(r, &c->reports[next])) next = i;
        }
        if (next < 0) break;
        add_rows(c, ch, next, row, depth + 1);
        children++;
    }
    if (children > 1) ch->branched = 1;
}

static int chain_of(const struct evit_compare *c, int report)
{
    for (int k = 0; k < c->n_chains; k++)
        for (int i = 0; i < c->chains[k].n_rows; i++)
            if (c->chains[k].rows[i].report == report) return k;
    return -1;
}

static int positive(double v) { return isfinite(v) && v > 0; }

double evit_compare_score(const struct evit_compare_report *r) { return isfinite(r->top1) ? r->top1 : r->miou; }

/* 1 when the chain's scores are mIoU: a segmentation chain (a chain is
 * one dataset, so one task). */
static int chain_is_seg(const struct evit_compare *c, const struct evit_compare_chain *ch)
{
    int seg = 0;
    for (int i = 0; i < ch->n_rows; i++) {
        const struct evit_compare_report *r = &c->reports[ch->rows[i].report];
        if (isfinite(r->top1)) return 0;
        seg |= isfinite(r->miou);
    }
    return seg;
}

static void row_metrics(const struct evit_compare *c, struct evit_compare_chain *ch)
{
    const struct evit_compare_report *first = &c->reports[ch->rows[0].report];
    for (int i = 0; i < ch->n_rows; i++) {
        struct evit_compare_row *w = &ch->rows[i];
        const struct evit_compare_report *r = &c->reports[w->report];
        w->drop_parent = w->drop_first = NAN;
        if (w->parent_row >= 0)
            w->drop_parent = evit_compare_score(&c->reports[ch->rows[w->parent_row].report]) - evit_compare_score(r);
        if (i > 0) w->drop_first = evit_compare_score(first) - evit_compare_score(r);
        w->size_ratio = positive(first->model_bytes) && positive(r->model_bytes)
                            ? first->model_bytes / r->model_bytes
                            : (double)NAN;
        w->speed_ratio = NAN;
        w->basis = EVIT_COMPARE_NO_SPEED;
        if (positive(first->latency_ms) && positive(r->latency_ms)) {
            w->speed_ratio = first->latency_ms / r->latency_ms;
            w->basis = EVIT_COMPARE_LATENCY;
        } else if (positive(first->images_per_s) && positive(r->images_per_s)) {
            w->speed_ratio = r->images_per_s / first->images_per_s;
            w->basis = EVIT_COMPARE_THROUGHPUT;
        }
    }
}

static const char *or_none(const char *s) { return s ? s : "(none)"; }

int evit_compare_build(struct evit_compare *c)
{
    EVIT_ASSERT(c->chains == NULL);
    if (link_parents(c) < 0) return EVIT_ERR;
    /* one chain per root that some named report descends from, in the
     * order the reports were named */
    c->chains = evit_calloc((size_t)c->n_reports, sizeof *c->chains);
    for (int i = 0; i < c->n_reports; i++) {
        if (!c->reports[i].named) continue;
        int root = root_of(c, i);
        if (chain_of(c, root) >= 0) continue;
        struct evit_compare_chain *ch = &c->chains[c->n_chains++];
        ch->rows = evit_calloc((size_t)c->n_reports, sizeof *ch->rows);
        add_rows(c, ch, root, -1, 0);
        row_metrics(c, ch);
    }
    /* chains in the order their first models were made (insertion sort:
     * stable, so equal times keep the order named) */
    for (int k = 1; k < c->n_chains; k++) {
        struct evit_compare_chain t = c->chains[k];
        int j = k;
        for (; j > 0 && strcmp(c->reports[t.rows[0].report].created,
                               c->reports[c->chains[j - 1].rows[0].report].created) < 0;
             j--)
            c->chains[j] = c->chains[j - 1];
        c->chains[j] = t;
    }
    /* notes where a dataset change cut a lineage */
    for (int i = 0; i < c->n_reports; i++) {
        const struct evit_compare_report *r = &c->reports[i];
        if (r->parent < 0 || r->linked) continue;
        const struct evit_compare_report *p = &c->reports[r->parent];
        int ci = chain_of(c, i), cp = chain_of(c, r->parent);
        if (ci >= 0)
            push_note(&c->chains[ci].notes, &c->chains[ci].n_notes,
                      cp >= 0 ? evit_strfmt("%s (%s) descends from %s (%s, chain %d), evaluated on "
                                            "another dataset (%s): not compared with it",
                                            r->path, r->stage, p->path, p->stage, cp + 1,
                                            or_none(p->dataset))
                              : evit_strfmt("%s (%s) descends from %s (%s), evaluated on another "
                                            "dataset (%s): not compared with it",
                                            r->path, r->stage, p->path, p->stage,
                                            or_none(p->dataset)));
        if (cp >= 0 && ci >= 0)
            push_note(&c->chains[cp].notes, &c->chains[cp].n_notes,
                      evit_strfmt("%s (%s) continues in chain %d, on another dataset (%s)", p->path,
                                  p->stage, ci + 1, or_none(r->dataset)));
    }
    /* a parent named but not on disk: the chain starts at its child */
    for (int i = 0; i < c->n_reports; i++) {
        const struct evit_compare_report *r = &c->reports[i];
        int ci = chain_of(c, i);
        if (!r->parent_missing || ci < 0) continue;
        push_note(&c->chains[ci].notes, &c->chains[ci].n_notes,
                  evit_strfmt("%s: its parent report %s was not found; the chain starts there",
                              r->path, r->parent_field));
    }
    /* images_per_s grows with threads: a ratio between evaluations at
     * different counts measures the machine, not the model */
    for (int k = 0; k < c->n_chains; k++) {
        struct evit_compare_chain *ch = &c->chains[k];
        const struct evit_compare_report *first = &c->reports[ch->rows[0].report];
        for (int i = 1; i < ch->n_rows; i++) {
            const struct evit_compare_report *r = &c->reports[ch->rows[i].report];
            if (ch->rows[i].basis != EVIT_COMPARE_THROUGHPUT || !positive(first->threads) ||
                !positive(r->threads) || r->threads == first->threads)
                continue;
            push_note(&ch->notes, &ch->n_notes,
                      evit_strfmt("%s (%s) was evaluated at %g threads, %s (%s) at %g: its speed "
                                  "ratio compares thread counts as well as models",
                                  r->path, r->stage, r->threads, first->path, first->stage,
                                  first->threads));
        }
    }
    if (c->n_chains > 1)
        push_note(&c->notes, &c->n_notes,
                  evit_strfmt("%d separate chains: reports with no common lineage, or evaluated "
                              "on different datasets, are compared only within their chain",
                              c->n_chains));
    return EVIT_OK;
}

void evit_compare_free(struct evit_compare *c)
{
    for (int i = 0; i < c->n_reports; i++) report_free(&c->reports[i]);
    free(c->reports);
    for (int k = 0; k < c->n_chains; k++) {
        free(c->chains[k].rows);
        for (int i = 0; i < c->chains[k].n_notes; i++) free(c->chains[k].notes[i]);
        free(c->chains[k].notes);
    }
    free(c->chains);
    for (int i = 0; i < c->n_notes; i++) free(c->notes[i]);
    free(c->notes);
    memset(c, 0, sizeof *c);
}

/* ---------------------------------------------------------------- tables */

void evit_compare_ratio_text(char *buf, int n, double ratio, const char *better, const char *worse)
{
    if (!isfinite(ratio) || ratio <= 0)
        snprintf(buf, (size_t)n, "-");
    else if (fabs(ratio - 1) < 0.05)
        snprintf(buf, (size_t)n, "1.0x");
    else if (ratio > 1)
        snprintf(buf, (size_t)n, "%.1fx %s", ratio, better);
    else
        snprintf(buf, (size_t)n, "%.1fx %s", 1 / ratio, worse);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

/* 1199882 -> "1,199,882"; a fraction keeps one decimal. */
static char *grouped(double v)
{
    if (!isfinite(v)) return evit_strdup("-");
    if (v != floor(v) || fabs(v) >= 1e15) return evit_strfmt("%.1f", v);
    char digits[32], out[48];
    snprintf(digits, sizeof digits, "%.0f", fabs(v));
    int n = (int)strlen(digits), o = 0;
    if (v < 0) out[o++] = '-';
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0) out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    return evit_strdup(out);
}

static char *fixed(double v, int decimals)
{
    return isfinite(v) ? evit_strfmt("%.*f", decimals, v) : evit_strdup("-");
}

enum column { C_ROW, C_FROM, C_STAGE, C_MODEL, C_TOP1, C_DROP_P, C_DROP_F, C_PARAMS, C_BYTES,
              C_MFLOPS, C_TOKENS, C_LATENCY, C_SIZE, C_SPEED, N_COLS };

static const char *const header[N_COLS] = {"#", "from", "stage", "model", "top-1 %",
                                           "drop/parent", "drop/first", "params", "bytes",
                                           "MFLOPs", "tokens", "latency ms", "size", "speed"};
static const int left_aligned[N_COLS] = {[C_STAGE] = 1, [C_MODEL] = 1, [C_SIZE] = 1, [C_SPEED] = 1};

static int chain_bases(const struct evit_compare_chain *ch, int *latency, int *throughput)
{
    *latency = *throughput = 0;
    for (int i = 0; i < ch->n_rows; i++) {
        *latency += ch->rows[i].basis == EVIT_COMPARE_LATENCY;
        *throughput += ch->rows[i].basis == EVIT_COMPARE_THROUGHPUT;
    }
    return *latency && *throughput;
}

/* Cells of one chain, (n_rows + 1) x N_COLS, the header first. */
static char **chain_cells(const struct evit_compare *c, const struct evit_compare_chain *ch)
{
    char **cells = evit_calloc((size_t)(ch->n_rows + 1) * N_COLS, sizeof *cells);
    char buf[64];
    int lat, thr, mixed = chain_bases(ch, &lat, &thr);
    for (int j = 0; j < N_COLS; j++) cells[j] = evit_strdup(j == C_TOP1 && chain_is_seg(c, ch) ? "mIoU %" : header[j]);
    for (int i = 0; i < ch->n_rows; i++) {
        const struct evit_compare_row *w = &ch->rows[i];
        const struct evit_compare_report *r = &c->reports[w->report];
        char **row = cells + (size_t)(i + 1) * N_COLS;
        row[C_ROW] = evit_strfmt("%d", i + 1);
        row[C_FROM] = w->parent_row >= 0 ? evit_strfmt("%d", w->parent_row + 1) : evit_strdup("-");
        row[C_STAGE] = evit_strdup(r->stage);
        row[C_MODEL] = evit_strdup(r->model[0] ? base_name(r->model) : "-");
        row[C_TOP1] = fixed(evit_compare_score(r), 2);
        row[C_DROP_P] = fixed(w->drop_parent, 2);
        row[C_DROP_F] = fixed(w->drop_first, 2);
        row[C_PARAMS] = grouped(r->params);
        row[C_BYTES] = grouped(r->model_bytes);
        row[C_MFLOPS] = fixed(r->mflops, 1);
        /* "197" or, merged, "197>101": the first block's tokens and the last's */
        row[C_TOKENS] = !isfinite(r->tokens_first) ? evit_strdup("-")
                        : r->tokens_last == r->tokens_first ? evit_strfmt("%.0f", r->tokens_first)
                                                            : evit_strfmt("%.0f>%.0f", r->tokens_first, r->tokens_last);
        row[C_LATENCY] = fixed(r->latency_ms, 2);
        evit_compare_ratio_text(buf, sizeof buf, w->size_ratio, "smaller", "larger");
        row[C_SIZE] = evit_strdup(buf);
        evit_compare_ratio_text(buf, sizeof buf, w->speed_ratio, "faster", "slower");
        row[C_SPEED] = mixed && w->basis == EVIT_COMPARE_THROUGHPUT ? evit_strfmt("%s *", buf)
                                                                    : evit_strdup(buf);
    }
    return cells;
}

static void free_cells(char **cells, int n)
{
    for (int i = 0; i < n; i++) free(cells[i]);
    free(cells);
}

static const char *chain_dataset(const struct evit_compare *c, const struct evit_compare_chain *ch)
{
    for (int i = 0; i < ch->n_rows; i++)
        if (c->reports[ch->rows[i].report].dataset) return c->reports[ch->rows[i].report].dataset;
    return NULL;
}

static const char *speed_note(const struct evit_compare_chain *ch)
{
    int lat, thr;
    if (chain_bases(ch, &lat, &thr))
        return "speed: from latency_ms where both models have it; * from images_per_s "
               "(throughput measured by the evaluating command)";
    if (lat) return "speed: from latency_ms";
    if (thr)
        return "speed: from images_per_s, the throughput measured by the evaluating command "
               "(no latency_ms)";
    return NULL;
}

/* A cell for markdown: '|' would end the cell. */
static void put_md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputc('\\', out);
        fputc(*s, out);
    }
}

static void write_table(const struct evit_compare *c, const struct evit_compare_chain *ch,
                        int markdown, FILE *out)
{
    char **cells = chain_cells(c, ch);
    int n = ch->n_rows + 1, width[N_COLS] = {0};
    for (int i = 0; i < n; i++)
        for (int j = 0; j < N_COLS; j++) {
            int len = (int)strlen(cells[(size_t)i * N_COLS + j]);
            if (len > width[j]) width[j] = len;
        }
    for (int i = 0; i < n; i++) {
        if (markdown) fputs("|", out);
        for (int j = 0, first = 1; j < N_COLS; j++) {
            if (j == C_FROM && !ch->branched) continue;
            const char *s = cells[(size_t)i * N_COLS + j];
            if (markdown) {
                fputc(' ', out);
                put_md_cell(out, s);
                fputs(" |", out);
            } else {
                /* the last column needs no padding */
                int w = j == N_COLS - 1 && left_aligned[j] ? 0 : width[j];
                fprintf(out, "%s%*s", first ? "" : "  ", left_aligned[j] ? -w : w, s);
            }
            first = 0;
        }
        fputc('\n', out);
        if (i == 0) {
            if (markdown) fputs("|", out);
            for (int j = 0, first = 1; j < N_COLS; j++) {
                if (j == C_FROM && !ch->branched) continue;
                if (markdown) {
                    fputs(left_aligned[j] ? ":---|" : "---:|", out);
                } else {
                    fputs(first ? "" : "  ", out);
                    for (int k = 0; k < width[j]; k++) fputc('-', out);
                }
                first = 0;
            }
            fputc('\n', out);
        }
    }
    free_cells(cells, n * N_COLS);
}

static void write_text(const struct evit_compare *c, int markdown, FILE *out)
{
    const char *note = markdown ? "Note: " : "note: ";
    for (int i = 0; i < c->n_notes; i++) fprintf(out, "%s%s\n%s", note, c->notes[i], markdown ? "\n" : "");
    if (c->n_notes && !markdown) fputc('\n', out);
    for (int k = 0; k < c->n_chains; k++) {
        const struct evit_compare_chain *ch = &c->chains[k];
        const char *ds = chain_dataset(c, ch);
        if (k) fputc('\n', out);
        if (markdown)
            fprintf(out, "### Chain %d: %d report%s on `%s`\n\n", k + 1, ch->n_rows,
                    ch->n_rows == 1 ? "" : "s", or_none(ds));
        else
            fprintf(out, "chain %d: %d report%s on %s\n", k + 1, ch->n_rows,
                    ch->n_rows == 1 ? "" : "s", or_none(ds));
        write_table(c, ch, markdown, out);
        const char *sn = speed_note(ch);
        if (markdown && (sn || ch->n_notes)) fputc('\n', out);
        if (sn) fprintf(out, "%s%s", markdown ? "Speed" : "speed", sn + 5);
        if (sn) fputs(markdown ? "\n\n" : "\n", out);
        for (int i = 0; i < ch->n_notes; i++)
            fprintf(out, "%s%s\n%s", note, ch->notes[i], markdown ? "\n" : "");
    }
}

/* RFC 4180: quote a field holding a comma, quote or line break. */
static void put_csv(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void put_csv_number(FILE *out, double v)
{
    fputc(',', out);
    if (isfinite(v)) fprintf(out, "%.10g", v);
}

static const char *basis_name(enum evit_compare_basis b)
{
    return b == EVIT_COMPARE_LATENCY ? "latency_ms" : b == EVIT_COMPARE_THROUGHPUT ? "images_per_s" : "";
}

static void write_csv(const struct evit_compare *c, FILE *out)
{
    fputs("chain,row,parent_row,stage,report,model,dataset,top1,top5,drop_vs_parent,"
          "drop_vs_first,params,model_bytes,mflops,latency_ms,images_per_s,size_ratio,"
          "speed_ratio,speed_basis,tokens_first,tokens_last,miou\n",
          out);
    /* notes cannot go in the table: they go where people read */
    for (int i = 0; i < c->n_notes; i++) evit_info("note: %s", c->notes[i]);
    for (int k = 0; k < c->n_chains; k++) {
        const struct evit_compare_chain *ch = &c->chains[k];
        for (int i = 0; i < ch->n_notes; i++) evit_info("note: chain %d: %s", k + 1, ch->notes[i]);
        for (int i = 0; i < ch->n_rows; i++) {
            const struct evit_compare_row *w = &ch->rows[i];
            const struct evit_compare_report *r = &c->reports[w->report];
            fprintf(out, "%d,%d,", k + 1, i + 1);
            if (w->parent_row >= 0) fprintf(out, "%d", w->parent_row + 1);
            const char *text[] = {r->stage, r->path, r->model, r->dataset ? r->dataset : ""};
            for (int j = 0; j < 4; j++) {
                fputc(',', out);
                put_csv(out, text[j]);
            }
            const double num[] = {r->top1,        r->top5,      w->drop_parent,  w->drop_first,
                                  r->params,      r->model_bytes, r->mflops,     r->latency_ms,
                                  r->images_per_s, w->size_ratio, w->speed_ratio};
            for (size_t j = 0; j < sizeof num / sizeof num[0]; j++) put_csv_number(out, num[j]);
            fprintf(out, ",%s", basis_name(w->basis));
            put_csv_number(out, r->tokens_first);
            put_csv_number(out, r->tokens_last);
            put_csv_number(out, r->miou);
            fputc('\n', out);
        }
    }
}

static cJSON *number_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static cJSON *string_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

cJSON *evit_compare_to_json(const struct evit_compare *c)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *notes = cJSON_AddArrayToObject(root, "notes");
    for (int i = 0; i < c->n_notes; i++) cJSON_AddItemToArray(notes, cJSON_CreateString(c->notes[i]));
    cJSON *chains = cJSON_AddArrayToObject(root, "chains");
    for (int k = 0; k < c->n_chains; k++) {
        const struct evit_compare_chain *ch = &c->chains[k];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "chain", k + 1);
        cJSON_AddItemToObject(o, "dataset", string_or_null(chain_dataset(c, ch)));
        cJSON_AddBoolToObject(o, "branched", ch->branched);
        cJSON *cn = cJSON_AddArrayToObject(o, "notes");
        for (int i = 0; i < ch->n_notes; i++) cJSON_AddItemToArray(cn, cJSON_CreateString(ch->notes[i]));
        cJSON *rows = cJSON_AddArrayToObject(o, "rows");
        for (int i = 0; i < ch->n_rows; i++) {
            const struct evit_compare_row *w = &ch->rows[i];
            const struct evit_compare_report *r = &c->reports[w->report];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "row", i + 1);
            cJSON_AddItemToObject(x, "parent_row",
                                  w->parent_row >= 0 ? cJSON_CreateNumber(w->parent_row + 1)
                                                     : cJSON_CreateNull());
            cJSON_AddStringToObject(x, "stage", r->stage);
            cJSON_AddStringToObject(x, "report", r->path);
            cJSON_AddStringToObject(x, "model", r->model);
            cJSON_AddItemToObject(x, "dataset", string_or_null(r->dataset));
            const struct {
                const char *key;
                double v;
            } num[] = {{"top1", r->top1},
                       {"top5", r->top5},
                       {"miou", r->miou},
                       {"drop_vs_parent", w->drop_parent},
                       {"drop_vs_first", w->drop_first},
                       {"params", r->params},
                       {"model_bytes", r->model_bytes},
                       {"mflops", r->mflops},
                       {"tokens_first", r->tokens_first},
                       {"tokens_last", r->tokens_last},
                       {"latency_ms", r->latency_ms},
                       {"images_per_s", r->images_per_s},
                       {"threads", r->threads},
                       {"size_ratio", w->size_ratio},
                       {"speed_ratio", w->speed_ratio}};
            for (size_t j = 0; j < sizeof num / sizeof num[0]; j++)
                cJSON_AddItemToObject(x, num[j].key, number_or_null(num[j].v));
            cJSON_AddItemToObject(x, "speed_basis",
                                  w->basis == EVIT_COMPARE_NO_SPEED ? cJSON_CreateNull()
                                                                    : cJSON_CreateString(basis_name(w->basis)));
            cJSON_AddItemToArray(rows, x);
        }
        cJSON_AddItemToArray(chains, o);
    }
    return root;
}

int evit_compare_write(const struct evit_compare *c, enum evit_compare_format fmt, FILE *out)
{
    switch (fmt) {
    case EVIT_COMPARE_TEXT: write_text(c, 0, out); break;
    case EVIT_COMPARE_MD: write_text(c, 1, out); break;
    case EVIT_COMPARE_CSV: write_csv(c, out); break;
    case EVIT_COMPARE_JSON: {
        cJSON *j = evit_compare_to_json(c);
        char *s = cJSON_Print(j);
        EVIT_ASSERT(s != NULL);
        fputs(s, out);
        fputc('\n', out);
        free(s);
        cJSON_Delete(j);
        break;
    }
    }
    return fflush(out) == 0 && !ferror(out) ? EVIT_OK : evit_error("standard output: write failed");
}

/* ---------------------------------------------------------------- chart */

/* The last `parts` components of path. */
static const char *last_parts(const char *path, int parts)
{
    for (const char *p = path + strlen(path); p > path; p--)
        if (p[-1] == '/' && --parts == 0) return p;
    return path;
}

/* As few last components of a dataset path as tell it from the other
 * chains' datasets ("test.h5", else "cifar/test.h5"). */
static const char *dataset_name(const struct evit_compare *c, const char *ds)
{
    for (int parts = 1;; parts++) {
        const char *tail = last_parts(ds, parts);
        int unique = 1;
        for (int j = 0; j < c->n_chains && unique; j++) {
            const char *o = chain_dataset(c, &c->chains[j]);
            if (o && strcmp(o, ds) != 0 && strcmp(last_parts(o, parts), tail) == 0) unique = 0;
        }
        if (unique || tail == ds) return tail;
    }
}

/* The stage name; a stage that occurs twice in the chain (a teacher and a
 * student both from evit-distill) adds the model's file name, so that every
 * point can be told apart without the table. */
static char *point_label(const struct evit_compare *c, const struct evit_compare_chain *ch, int row)
{
    const struct evit_compare_report *r = &c->reports[ch->rows[row].report];
    int same = 0;
    for (int i = 0; i < ch->n_rows; i++) same += !strcmp(c->reports[ch->rows[i].report].stage, r->stage);
    if (same < 2 || !r->model[0]) return evit_strdup(r->stage);
    const char *base = base_name(r->model);
    size_t n = strlen(base);
    if (n > 3 && !strcmp(base + n - 3, ".h5")) n -= 3;
    return evit_strfmt("%s (%.*s)", r->stage, (int)n, base);
}

int evit_compare_chart(const struct evit_compare *c, const char *png_path)
{
    int rc = EVIT_ERR, any_latency = 0, mixed = 0;
    struct evit_chart_series *by_bytes = evit_calloc((size_t)c->n_chains, sizeof *by_bytes);
    struct evit_chart_series *by_lat = evit_calloc((size_t)c->n_chains, sizeof *by_lat);
    char **names = evit_calloc((size_t)c->n_chains, sizeof *names);
    char ***labels = evit_calloc((size_t)c->n_chains, sizeof *labels);
    for (int k = 0; k < c->n_chains; k++) {
        const struct evit_compare_chain *ch = &c->chains[k];
        struct evit_chart_point *pb = evit_calloc((size_t)ch->n_rows, sizeof *pb);
        struct evit_chart_point *pl = evit_calloc((size_t)ch->n_rows, sizeof *pl);
        labels[k] = evit_calloc((size_t)ch->n_rows, sizeof *labels[k]);
        for (int i = 0; i < ch->n_rows; i++) {
            const struct evit_compare_report *r = &c->reports[ch->rows[i].report];
            labels[k][i] = point_label(c, ch, i);
            pb[i] = (struct evit_chart_point){r->model_bytes, evit_compare_score(r), ch->rows[i].parent_row,
                                              labels[k][i]};
            pl[i] = (struct evit_chart_point){r->latency_ms, evit_compare_score(r), ch->rows[i].parent_row,
                                              labels[k][i]};
            any_latency |= isfinite(r->latency_ms) && isfinite(evit_compare_score(r));
        }
        const char *first = c->reports[ch->rows[0].report].model;
        const char *ds = chain_dataset(c, ch);
        names[k] = evit_strfmt("chain %d: from %s on %s", k + 1, first[0] ? base_name(first) : "?",
                               ds ? dataset_name(c, ds) : "(no dataset)");
        for (int j = 0; j < k; j++) {
            const char *other = chain_dataset(c, &c->chains[j]);
            mixed |= (ds == NULL) != (other == NULL) || (ds && other && !same_dataset(ds, other));
        }
        by_bytes[k] = (struct evit_chart_series){names[k], pb, ch->n_rows};
        by_lat[k] = (struct evit_chart_series){names[k], pl, ch->n_rows};
    }
    /* every chain segmentation: mIoU on the y axis; a mix: both named */
    int seg = 0, cls = 0;
    for (int k = 0; k < c->n_chains; k++) {
        int is = chain_is_seg(c, &c->chains[k]);
        seg |= is;
        cls |= !is;
    }
    const char *what = seg && !cls ? "mIoU" : seg ? "top-1 or mIoU" : "top-1";
    char t0[64], t1[64], y[64];
    snprintf(t0, sizeof t0, "%s vs model size", what);
    snprintf(t1, sizeof t1, "%s vs latency", what);
    snprintf(y, sizeof y, seg && !cls ? "mIoU (%%)" : seg ? "top-1 accuracy or mIoU (%%)" : "top-1 accuracy (%%)");
    struct evit_chart_panel panels[2] = {
        {t0, "model size (weights, log scale)", y, 1, EVIT_CHART_BYTES, by_bytes, c->n_chains},
        {t1, "latency (ms per image, log scale)", y, 1, EVIT_CHART_NUMBER, by_lat, c->n_chains}};
    if (evit_chart_panel_points(&panels[0]) == 0) {
        evit_error("%s: no report has both top1 and model_bytes to plot", png_path);
        goto fail;
    }
    rc = evit_chart_write_png(png_path, panels, any_latency ? 2 : 1,
                              mixed ? "note: chains on different datasets; compare accuracy "
                                      "only within a chain"
                                    : NULL);
fail:
    for (int k = 0; k < c->n_chains; k++) {
        free((void *)by_bytes[k].points);
        free((void *)by_lat[k].points);
        free(names[k]);
        for (int i = 0; i < c->chains[k].n_rows; i++) free(labels[k][i]);
        free(labels[k]);
    }
    free(labels);
    free(by_bytes);
    free(by_lat);
    free(names);
    return rc;
}
