/* test_compare.c: reports are linked through their parent fields into
 * chains, split where the dataset changes, and compared row by row; bad
 * inputs are refused in one line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compare.h"
#include "pngio.h"
#include "test.h"
#include "util.h"


static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) abort();
    fputs(text, f);
    fclose(f);
}

struct rep {
    const char *stage, *parent, *dataset, *created;
    double top1, bytes, ips, latency; /* latency NAN: not written */
};

/* Writes a report as evit-eval would (the fields compare reads); extra: more
 * members, each followed by a comma (fields older reports lack). */
static const char *write_report_with(const char *name, struct rep r, const char *extra)
{
    char text[2048], parent[600], dataset[600], latency[64] = "", top1[32] = "null";
    const char *path = test_path(name);
    if (r.parent)
        snprintf(parent, sizeof parent, "\"%s\"", r.parent);
    else
        snprintf(parent, sizeof parent, "null");
    snprintf(dataset, sizeof dataset, "\"%s\"", r.dataset ? r.dataset : "/data/test.h5");
    if (!isnan(r.latency)) snprintf(latency, sizeof latency, "\"latency_ms\": %.6g,", r.latency);
    if (!isnan(r.top1)) snprintf(top1, sizeof top1, "%.6g", r.top1); /* NAN: null, a segmentation report's */
    snprintf(text, sizeof text,
             "{\"report_version\": 1, \"stage\": \"%s\", \"created\": \"%s\",\n"
             " \"model\": \"/m/%s.h5\", \"dataset\": %s, \"parent\": %s, %s%s\n"
             " \"top1\": %s, \"top5\": 99, \"params\": %.0f, \"model_bytes\": %.0f,\n"
             " \"mflops\": 22.3, \"images_per_s\": %.6g}\n",
             r.stage, r.created ? r.created : "2026-01-01T00:00:00Z", name, dataset, parent,
             latency, extra, top1, r.bytes / 4, r.bytes, r.ips);
    write_text(path, text);
    return path;
}

static const char *write_report(const char *name, struct rep r) { return write_report_with(name, r, ""); }

static int build(struct evit_compare *c, const char *const *paths, int n)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < n; i++)
        if (evit_compare_add(c, paths[i]) < 0) return EVIT_ERR;
    return evit_compare_build(c);
}

/* What a format writes, as a string the caller frees. */
static char *written(const struct evit_compare *c, enum evit_compare_format fmt)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) abort();
    evit_compare_write(c, fmt, f);
    fclose(f);
    return buf;
}

static const struct evit_compare_report *row_report(const struct evit_compare *c, int chain, int row)
{
    return &c->reports[c->chains[chain].rows[row].report];
}

static void a_report_parses_and_absent_fields_are_nan(void)
{
    cJSON *j = cJSON_Parse("{\"report_version\":1,\"stage\":\"prune\",\"top1\":88.5,"
                           "\"model_bytes\":null,\"parent\":null}");
    struct evit_compare_report r;
    REQUIRE(evit_compare_parse(j, "r.json", &r) == EVIT_OK);
    CHECK(strcmp(r.stage, "prune") == 0);
    CHECK_NEAR(r.top1, 88.5, 0);
    CHECK(isnan(r.model_bytes) && isnan(r.latency_ms) && isnan(r.params));
    CHECK(r.parent_field == NULL && r.dataset == NULL);
    CHECK(strcmp(r.model, "") == 0);
    free(r.path);
    free(r.stage);
    free(r.model);
    free(r.created);
    cJSON_Delete(j);
}

static void json_without_version_or_stage_or_with_wrong_types_is_refused(void)
{
    const char *bad[] = {"{\"stage\":\"prune\",\"top1\":1}", "{\"report_version\":1}",
                         "{\"report_version\":\"1\",\"stage\":\"x\"}",
                         "{\"report_version\":1,\"stage\":\"x\",\"top1\":\"high\"}",
                         "{\"report_version\":1,\"stage\":\"x\",\"parent\":3}",
                         "{\"report_version\":0.5,\"stage\":\"x\"}", "[1, 2]"};
    fprintf(stderr, "  (%d error lines are expected next)\n", (int)(sizeof bad / sizeof bad[0]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *j = cJSON_Parse(bad[i]);
        struct evit_compare_report r;
        REQUIRE(j != NULL);
        CHECK(evit_compare_parse(j, "bad.json", &r) == EVIT_ERR);
        cJSON_Delete(j);
    }
}

static void a_chain_links_through_relative_parents_and_gives_drops_and_ratios(void)
{
    const char *a = write_report("c1-teacher.json", (struct rep){"teacher", NULL, 0, 0, 91.0, 4.8e6, 1000, NAN});
    write_report("c1-student.json", (struct rep){"distill", "c1-teacher.json", 0, 0, 89.0, 8e5, 5000, NAN});
    const char *q = write_report("c1-int8.json", (struct rep){"quantize", "c1-student.json", 0, 0, 88.5, 2e5, 9000, NAN});
    /* named in reverse; the student in between is found through the parent
     * fields, the teacher is named */
    const char *in[] = {q, a};
    struct evit_compare c;
    REQUIRE(build(&c, in, 2) == EVIT_OK);
    REQUIRE(c.n_chains == 1);
    const struct evit_compare_chain *ch = &c.chains[0];
    REQUIRE(ch->n_rows == 3);
    CHECK(strcmp(row_report(&c, 0, 0)->stage, "teacher") == 0);
    CHECK(strcmp(row_report(&c, 0, 1)->stage, "distill") == 0);
    CHECK(strcmp(row_report(&c, 0, 2)->stage, "quantize") == 0);
    CHECK(row_report(&c, 0, 1)->named == 0 && row_report(&c, 0, 2)->named == 1);
    CHECK(ch->rows[0].parent_row == -1 && ch->rows[2].parent_row == 1);
    CHECK(!ch->branched);
    CHECK(isnan(ch->rows[0].drop_parent) && isnan(ch->rows[0].drop_first));
    CHECK_NEAR(ch->rows[1].drop_parent, 2.0, 1e-9);
    CHECK_NEAR(ch->rows[2].drop_parent, 0.5, 1e-9);
    CHECK_NEAR(ch->rows[2].drop_first, 2.5, 1e-9);
    CHECK_NEAR(ch->rows[0].size_ratio, 1.0, 1e-12);
    CHECK_NEAR(ch->rows[1].size_ratio, 6.0, 1e-12);
    CHECK_NEAR(ch->rows[2].size_ratio, 24.0, 1e-12);
    CHECK_NEAR(ch->rows[2].speed_ratio, 9.0, 1e-12);
    CHECK(ch->rows[2].basis == EVIT_COMPARE_THROUGHPUT);
    CHECK(c.n_notes == 0 && ch->n_notes == 0);
    evit_compare_free(&c);
}

static void latency_is_preferred_to_throughput_when_both_ends_have_it(void)
{
    const char *a = write_report("l-a.json", (struct rep){"distill", NULL, 0, 0, 90, 8e5, 100, 4.0});
    write_report("l-b.json", (struct rep){"prune", "l-a.json", 0, 0, 89, 4e5, 150, 1.6});
    const char *c3 = write_report("l-c.json", (struct rep){"quantize", "l-b.json", 0, 0, 88, 1e5, 300, NAN});
    const char *in[] = {a, c3};
    struct evit_compare c;
    REQUIRE(build(&c, in, 2) == EVIT_OK);
    REQUIRE(c.n_chains == 1 && c.chains[0].n_rows == 3);
    CHECK(c.chains[0].rows[1].basis == EVIT_COMPARE_LATENCY);
    CHECK_NEAR(c.chains[0].rows[1].speed_ratio, 2.5, 1e-12);
    /* no latency for the int8 model: throughput, and the table marks it */
    CHECK(c.chains[0].rows[2].basis == EVIT_COMPARE_THROUGHPUT);
    CHECK_NEAR(c.chains[0].rows[2].speed_ratio, 3.0, 1e-12);
    char *t = written(&c, EVIT_COMPARE_TEXT);
    CHECK(strstr(t, "2.5x faster") != NULL);
    CHECK(strstr(t, "3.0x faster *") != NULL);
    CHECK(strstr(t, "1.60") != NULL); /* the latency column */
    free(t);
    evit_compare_free(&c);
}

static int count_notes_with(const struct evit_compare_chain *ch, const char *needle)
{
    int n = 0;
    for (int i = 0; i < ch->n_notes; i++) n += strstr(ch->notes[i], needle) != NULL;
    return n;
}

static void a_throughput_ratio_between_unlike_thread_counts_gets_a_note(void)
{
    const char *a = write_report_with("t-a.json", (struct rep){"distill", NULL, 0, 0, 90, 8e5, 100, NAN}, "\"threads\": 2,");
    write_report_with("t-b.json", (struct rep){"prune", "t-a.json", 0, 0, 89, 4e5, 150, NAN}, "\"threads\": 2,");
    write_report_with("t-c.json", (struct rep){"finetune", "t-b.json", 0, 0, 89, 4e5, 80, NAN}, "\"threads\": 1,");
    const char *d = write_report_with("t-d.json", (struct rep){"quantize", "t-c.json", 0, 0, 89, 1e5, 300, NAN}, "");
    const char *in[] = {a, d};
    struct evit_compare c;
    REQUIRE(build(&c, in, 2) == EVIT_OK);
    REQUIRE(c.n_chains == 1 && c.chains[0].n_rows == 4);
    /* the ratio is still given; only the 1-thread row is flagged: same
     * count (prune) is like for like, and no count (an older report)
     * cannot be judged */
    CHECK_NEAR(c.chains[0].rows[2].speed_ratio, 0.8, 1e-12);
    CHECK(count_notes_with(&c.chains[0], "at 1 threads") == 1);
    CHECK(count_notes_with(&c.chains[0], "thread counts") == 1);
    CHECK(count_notes_with(&c.chains[0], "t-c.json (finetune)") == 1);
    char *t = written(&c, EVIT_COMPARE_TEXT);
    CHECK(strstr(t, "compares thread counts as well as models") != NULL);
    free(t);
    evit_compare_free(&c);
}

static void a_dataset_change_starts_a_separate_chain_with_notes_in_both(void)
{
    const char *a = write_report("d-a.json", (struct rep){"distill", NULL, "/data/a/test.h5", 0, 90, 8e5, 100, NAN});
    const char *b = write_report("d-b.json", (struct rep){"prune", "d-a.json", "/data/a/test.h5", 0, 89, 4e5, 150, NAN});
    const char *v = write_report("d-val.json", (struct rep){"eval", "d-b.json", "/data/a/val.h5", 0, 93, 4e5, 150, NAN});
    const char *in[] = {a, b, v};
    struct evit_compare c;
    REQUIRE(build(&c, in, 3) == EVIT_OK);
    REQUIRE(c.n_chains == 2);
    CHECK(c.chains[0].n_rows == 2 && c.chains[1].n_rows == 1);
    CHECK(strcmp(row_report(&c, 1, 0)->stage, "eval") == 0);
    /* never compared across the cut */
    CHECK(isnan(c.chains[1].rows[0].drop_parent) && isnan(c.chains[1].rows[0].drop_first));
    CHECK(c.chains[0].n_notes == 1 && c.chains[1].n_notes == 1);
    CHECK(c.n_notes == 1 && strstr(c.notes[0], "2 separate chains") != NULL);
    char *t = written(&c, EVIT_COMPARE_TEXT);
    CHECK(strstr(t, "chain 1: 2 reports on /data/a/test.h5") != NULL);
    CHECK(strstr(t, "chain 2: 1 report on /data/a/val.h5") != NULL);
    CHECK(strstr(t, "evaluated on another dataset") != NULL);
    free(t);
    evit_compare_free(&c);
}

static void unrelated_lineages_are_separate_chains_in_creation_order(void)
{
    const char *x = write_report("u-x.json", (struct rep){"distill", NULL, 0, "2026-02-01T00:00:00Z", 80, 8e5, 100, NAN});
    const char *y = write_report("u-y.json", (struct rep){"distill", NULL, 0, "2026-01-01T00:00:00Z", 70, 8e5, 100, NAN});
    const char *in[] = {x, y};
    struct evit_compare c;
    REQUIRE(build(&c, in, 2) == EVIT_OK);
    REQUIRE(c.n_chains == 2);
    CHECK_NEAR(row_report(&c, 0, 0)->top1, 70, 0); /* the older first */
    CHECK(c.n_notes == 1);
    evit_compare_free(&c);
}

static void siblings_follow_their_parent_in_creation_order(void)
{
    const char *r = write_report("b-root.json", (struct rep){"distill", NULL, 0, "2026-01-01T00:00:00Z", 90, 8e5, 100, NAN});
    const char *p50 = write_report("b-p50.json", (struct rep){"prune", "b-root.json", 0, "2026-01-03T00:00:00Z", 86, 4e5, 100, NAN});
    const char *p30 = write_report("b-p30.json", (struct rep){"prune", "b-root.json", 0, "2026-01-02T00:00:00Z", 88, 6e5, 100, NAN});
    const char *q = write_report("b-q.json", (struct rep){"quantize", "b-p30.json", 0, "2026-01-04T00:00:00Z", 87, 1.5e5, 100, NAN});
    const char *in[] = {p50, q, r, p30};
    struct evit_compare c;
    REQUIRE(build(&c, in, 4) == EVIT_OK);
    REQUIRE(c.n_chains == 1 && c.chains[0].n_rows == 4);
    const struct evit_compare_chain *ch = &c.chains[0];
    CHECK(ch->branched);
    /* root, p30, its child q, then p50 */
    CHECK_NEAR(row_report(&c, 0, 1)->top1, 88, 0);
    CHECK_NEAR(row_report(&c, 0, 2)->top1, 87, 0);
    CHECK_NEAR(row_report(&c, 0, 3)->top1, 86, 0);
    CHECK(ch->rows[2].parent_row == 1 && ch->rows[3].parent_row == 0);
    CHECK(ch->rows[2].depth == 2);
    CHECK_NEAR(ch->rows[3].drop_parent, 4, 1e-9);
    char *t = written(&c, EVIT_COMPARE_TEXT);
    CHECK(strstr(t, "from") != NULL); /* branched tables name each row's parent */
    free(t);
    evit_compare_free(&c);
}

static void a_missing_parent_is_a_note_and_the_chain_starts_at_its_child(void)
{
    const char *a = write_report("m-a.json", (struct rep){"prune", "gone.json", 0, 0, 88, 4e5, 100, NAN});
    const char *in[] = {a};
    struct evit_compare c;
    REQUIRE(build(&c, in, 1) == EVIT_OK);
    REQUIRE(c.n_chains == 1 && c.chains[0].n_rows == 1);
    REQUIRE(c.chains[0].n_notes == 1);
    CHECK(strstr(c.chains[0].notes[0], "gone.json was not found") != NULL);
    evit_compare_free(&c);
}

static void a_lineage_loop_is_an_error(void)
{
    const char *a = write_report("loop-a.json", (struct rep){"prune", "loop-b.json", 0, 0, 88, 4e5, 100, NAN});
    write_report("loop-b.json", (struct rep){"prune", "loop-a.json", 0, 0, 88, 4e5, 100, NAN});
    const char *self = write_report("loop-self.json", (struct rep){"prune", "loop-self.json", 0, 0, 88, 4e5, 100, NAN});
    const char *in1[] = {a}, *in2[] = {self};
    struct evit_compare c;
    fprintf(stderr, "  (2 error lines are expected next)\n");
    CHECK(build(&c, in1, 1) == EVIT_ERR);
    evit_compare_free(&c);
    CHECK(build(&c, in2, 1) == EVIT_ERR);
    evit_compare_free(&c);
}

static void a_folder_gives_its_reports_and_skips_other_json(void)
{
    const char *dir = test_path("folder");
    char p[600];
    REQUIRE(mkdir(dir, 0755) == 0);
    snprintf(p, sizeof p, "%s/recipe.json", dir);
    write_text(p, "{\"epochs\": 3}\n");
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    write_text(p, "not json\n");
    write_report("folder/f-a.json", (struct rep){"distill", NULL, 0, 0, 90, 8e5, 100, NAN});
    const char *b = write_report("folder/f-b.json", (struct rep){"prune", "f-a.json", 0, 0, 89, 4e5, 100, NAN});
    /* the same report named again, directly, counts once */
    const char *in[] = {dir, b};
    struct evit_compare c;
    REQUIRE(build(&c, in, 2) == EVIT_OK);
    CHECK(c.n_reports == 2);
    CHECK(c.n_chains == 1 && c.chains[0].n_rows == 2);
    evit_compare_free(&c);

    const char *empty = test_path("empty");
    REQUIRE(mkdir(empty, 0755) == 0);
    const char *in2[] = {empty};
    fprintf(stderr, "  (3 error lines are expected next)\n");
    CHECK(build(&c, in2, 1) == EVIT_ERR);
    evit_compare_free(&c);
    snprintf(p, sizeof p, "%s/broken.json", dir);
    write_text(p, "{\"report_version\": 1, \"stage\": ");
    const char *in3[] = {dir};
    CHECK(build(&c, in3, 1) == EVIT_ERR); /* a damaged report is not skipped */
    evit_compare_free(&c);
    snprintf(p, sizeof p, "%s/recipe.json", dir);
    const char *in4[] = {p};
    CHECK(build(&c, in4, 1) == EVIT_ERR); /* named directly: must be a report */
    evit_compare_free(&c);
}

static void a_parent_path_relative_to_the_working_directory_is_found(void)
{
    char old[1024];
    REQUIRE(getcwd(old, sizeof old) != NULL);
    const char *sub = test_path("cwd");
    REQUIRE(mkdir(sub, 0755) == 0);
    write_report("cwd/w-a.json", (struct rep){"distill", NULL, 0, 0, 90, 8e5, 100, NAN});
    /* as evit-eval --parent cwd/w-a.json records it, run from the tmpdir */
    const char *b = write_report("cwd/w-b.json", (struct rep){"prune", "cwd/w-a.json", 0, 0, 89, 4e5, 100, NAN});
    REQUIRE(chdir(test_tmpdir()) == 0);
    const char *in[] = {b};
    struct evit_compare c;
    int rc = build(&c, in, 1);
    REQUIRE(chdir(old) == 0);
    REQUIRE(rc == EVIT_OK);
    CHECK(c.n_chains == 1 && c.chains[0].n_rows == 2);
    evit_compare_free(&c);
}

static void recorded_canonical_dataset_paths_decide_the_chain_from_any_folder(void)
{
    /* one report names the dataset absolutely, its child relatively (run
     * elsewhere); neither path exists here, so only dataset_real can tell */
    const char *a = write_report_with("r-a.json", (struct rep){"distill", NULL, "/nowhere/run/test.h5", 0, 90, 8e5, 100, NAN},
                      "\"dataset_real\": \"/nowhere/run/test.h5\",");
    const char *b = write_report_with("r-b.json", (struct rep){"prune", "r-a.json", "run/test.h5", 0, 89, 4e5, 150, NAN},
                      "\"dataset_real\": \"/nowhere/run/test.h5\",");
    /* the same relative name, but another file when it was written */
    const char *c3 = write_report_with("r-c.json", (struct rep){"eval", "r-b.json", "run/test.h5", 0, 80, 4e5, 150, NAN},
                                       "\"dataset_real\": \"/elsewhere/run/test.h5\",");
    const char *in[] = {a, b, c3};
    struct evit_compare c;
    REQUIRE(build(&c, in, 3) == EVIT_OK);
    REQUIRE(c.n_chains == 2);
    CHECK(c.chains[0].n_rows == 2 && c.chains[1].n_rows == 1);
    CHECK(strcmp(row_report(&c, 0, 1)->stage, "prune") == 0);
    CHECK(strcmp(row_report(&c, 1, 0)->stage, "eval") == 0);
    evit_compare_free(&c);
}

static void every_format_carries_the_rows(void)
{
    const char *a = write_report("f-teacher.json", (struct rep){"distill", NULL, 0, 0, 91.25, 4.8e6, 1000, NAN});
    const char *b = write_report("f-int8,x.json", (struct rep){"quantize", "f-teacher.json", 0, 0, 89.5, 1.2e6, 3000, NAN});
    const char *in[] = {a, b};
    struct evit_compare c;
    REQUIRE(build(&c, in, 2) == EVIT_OK);

    char *t = written(&c, EVIT_COMPARE_TEXT);
    CHECK(strstr(t, "4.0x smaller") != NULL);
    CHECK(strstr(t, "3.0x faster") != NULL);
    CHECK(strstr(t, "4,800,000") != NULL);
    CHECK(strstr(t, "91.25") != NULL && strstr(t, "1.75") != NULL);
    free(t);

    t = written(&c, EVIT_COMPARE_MD);
    CHECK(strstr(t, "| 2 | quantize | f-int8,x.json.h5 | 89.50 | 1.75 | 1.75 |") != NULL);
    CHECK(strstr(t, "|---:|") != NULL);
    free(t);

    t = written(&c, EVIT_COMPARE_CSV);
    int lines = 0;
    for (const char *s = t; *s; s++) lines += *s == '\n';
    CHECK(lines == 3);
    CHECK(strncmp(t, "chain,row,parent_row,stage,report,", 34) == 0);
    CHECK(strstr(t, "\"/m/f-int8,x.json.h5\"") != NULL); /* a comma is quoted */
    CHECK(strstr(t, ",4,3,images_per_s,,,\n") != NULL); /* no tokens and no miou in these reports */
    free(t);

    t = written(&c, EVIT_COMPARE_JSON);
    cJSON *j = cJSON_Parse(t);
    REQUIRE(j != NULL);
    cJSON *rows = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "chains"), 0), "rows");
    CHECK(cJSON_GetArraySize(rows) == 2);
    cJSON *r2 = cJSON_GetArrayItem(rows, 1);
    CHECK_NEAR(cJSON_GetObjectItem(r2, "drop_vs_first")->valuedouble, 1.75, 1e-9);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(r2, "latency_ms")));
    CHECK(cJSON_GetObjectItem(r2, "parent_row")->valueint == 1);
    cJSON_Delete(j);
    free(t);
    evit_compare_free(&c);
}

static void ratios_read_as_smaller_or_larger(void)
{
    char b[32];
    evit_compare_ratio_text(b, sizeof b, 3.9, "smaller", "larger");
    CHECK(strcmp(b, "3.9x smaller") == 0);
    evit_compare_ratio_text(b, sizeof b, 0.5, "smaller", "larger");
    CHECK(strcmp(b, "2.0x larger") == 0);
    evit_compare_ratio_text(b, sizeof b, 1.01, "smaller", "larger");
    CHECK(strcmp(b, "1.0x") == 0);
    evit_compare_ratio_text(b, sizeof b, NAN, "smaller", "larger");
    CHECK(strcmp(b, "-") == 0);
}

static void the_chart_is_a_png_and_needs_something_to_plot(void)
{
    const char *a = write_report("ch-a.json", (struct rep){"distill", NULL, 0, 0, 90, 8e5, 100, 2.0});
    const char *b = write_report("ch-b.json", (struct rep){"quantize", "ch-a.json", 0, 0, 89, 2e5, 300, 0.8});
    const char *in[] = {a, b};
    struct evit_compare c;
    REQUIRE(build(&c, in, 2) == EVIT_OK);
    const char *png = test_path("ch.png");
    REQUIRE(evit_compare_chart(&c, png) == EVIT_OK);
    struct evit_image img;
    REQUIRE(evit_png_read(png, 3, &img) == EVIT_OK);
    CHECK(img.w > 1000 && img.h > 400); /* two panels: latency is known */
    evit_image_free(&img);
    evit_compare_free(&c);

    const char *n = test_path("nothing.json");
    write_text(n, "{\"report_version\": 1, \"stage\": \"export\"}\n");
    const char *in2[] = {n};
    REQUIRE(build(&c, in2, 1) == EVIT_OK);
    fprintf(stderr, "  (an error line is expected next)\n");
    CHECK(evit_compare_chart(&c, test_path("none.png")) == EVIT_ERR);
    char *t = written(&c, EVIT_COMPARE_TEXT);
    CHECK(strstr(t, "export") != NULL); /* absent numbers are "-" */
    free(t);
    evit_compare_free(&c);
}

/* A segmentation chain (reports with miou, no top1): its score is the mIoU,
 * its table's column says so, its drops are mIoU points. */
static void a_segmentation_chain_compares_miou(void)
{
    const char *a = write_report_with("s1-teacher.json", (struct rep){"distill", NULL, "/data/scenes.h5", 0, NAN, 4.8e6, 100, NAN},
                                      "\"miou\": 61.5,");
    const char *b = write_report_with("s1-student.json",
                                      (struct rep){"distill", "s1-teacher.json", "/data/scenes.h5", 0, NAN, 8e5, 300, NAN},
                                      "\"miou\": 58.25,");
    const char *in[] = {b, a};
    struct evit_compare c;
    REQUIRE(build(&c, in, 2) == EVIT_OK);
    REQUIRE(c.n_chains == 1 && c.chains[0].n_rows == 2);
    CHECK(isnan(row_report(&c, 0, 1)->top1) && row_report(&c, 0, 1)->miou == 58.25);
    CHECK(evit_compare_score(row_report(&c, 0, 0)) == 61.5);
    CHECK_NEAR(c.chains[0].rows[1].drop_parent, 3.25, 1e-9);
    char *t = written(&c, EVIT_COMPARE_TEXT);
    CHECK(t && strstr(t, "mIoU %") && strstr(t, "58.25") && !strstr(t, "top-1 %"));
    free(t);
    char *csv = written(&c, EVIT_COMPARE_CSV);
    CHECK(csv && strstr(csv, ",miou\n") && strstr(csv, ",58.25\n"));
    free(csv);
    evit_compare_free(&c);
}

int main(void)
{
    RUN(a_report_parses_and_absent_fields_are_nan);
    RUN(json_without_version_or_stage_or_with_wrong_types_is_refused);
    RUN(a_chain_links_through_relative_parents_and_gives_drops_and_ratios);
    RUN(latency_is_preferred_to_throughput_when_both_ends_have_it);
    RUN(a_throughput_ratio_between_unlike_thread_counts_gets_a_note);
    RUN(a_dataset_change_starts_a_separate_chain_with_notes_in_both);
    RUN(unrelated_lineages_are_separate_chains_in_creation_order);
    RUN(siblings_follow_their_parent_in_creation_order);
    RUN(a_missing_parent_is_a_note_and_the_chain_starts_at_its_child);
    RUN(a_lineage_loop_is_an_error);
    RUN(a_folder_gives_its_reports_and_skips_other_json);
    RUN(a_parent_path_relative_to_the_working_directory_is_found);
    RUN(recorded_canonical_dataset_paths_decide_the_chain_from_any_folder);
    RUN(every_format_carries_the_rows);
    RUN(ratios_read_as_smaller_or_larger);
    RUN(the_chart_is_a_png_and_needs_something_to_plot);
    RUN(a_segmentation_chain_compares_miou);
    return test_summary();
}
