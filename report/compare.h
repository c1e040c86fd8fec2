/* compare.h: lineage of stage reports and the comparison tables of
 * evit-report compare (docs/REPORT.md).
 *
 * Reports are read (files, or every *.json evit report in a folder), then
 * linked through their "parent" fields: a relative parent path is looked up
 * in the report's own folder first, then from the working directory, and a
 * parent that was not named but exists on disk is read too.  Files are
 * identified by their canonical path, so a report named twice counts once.
 *
 * A chain is a lineage tree evaluated on one dataset: its first model is the
 * root, rows follow depth first (siblings by creation time).  A report
 * evaluated on another dataset than its parent starts a chain of its own,
 * with a note in both, because accuracies on different data do not compare.
 *
 * Per row: drop against the parent and against the first model (top-1
 * points, positive = lost), size ratio first.model_bytes / this, speed ratio
 * first.latency_ms / this when both have latency_ms, else this.images_per_s
 * / first's.
 *
 * Ownership: everything hangs off struct evit_compare; free it with
 * evit_compare_free. */
#ifndef EVIT_COMPARE_H
#define EVIT_COMPARE_H

#include <stdio.h>

#include <cJSON.h>

enum evit_compare_format {
    EVIT_COMPARE_TEXT,
    EVIT_COMPARE_MD,
    EVIT_COMPARE_CSV,
    EVIT_COMPARE_JSON,
};

enum evit_compare_basis {
    EVIT_COMPARE_NO_SPEED,
    EVIT_COMPARE_LATENCY,    /* from latency_ms */
    EVIT_COMPARE_THROUGHPUT, /* from images_per_s */
};

struct evit_compare_report {
    char *path;    /* as named, or as found through a child's parent field */
    char *real;    /* canonical path: the report's identity */
    char *stage, *model, *created; /* model and created: "" when absent */
    char *dataset; /* NULL when the report names none */
    char *dataset_real; /* its canonical path when the report was written, or NULL (older reports) */
    char *parent_field; /* "parent" as recorded, or NULL */
    double top1, top5, params, model_bytes, mflops, images_per_s, latency_ms; /* NAN: absent */
    double miou;    /* a segmentation report's mIoU (percent); NAN: absent */
    double threads; /* the evaluation's thread count; NAN: absent (older reports) */
    double tokens_first, tokens_last; /* tokens entering the first and last block
                                         (Token Merging); NAN: absent (older reports) */
    int named;   /* named by the user (directly or in a folder), not only an ancestor */
    int parent;  /* index of the parent report, -1 when none or not found */
    int parent_missing; /* the parent field names a file that does not exist */
    int linked;  /* the parent link holds within a chain (same dataset) */
};

/* A report's score: top-1, or for a segmentation report (no top1) its
 * mIoU; drops, tables and charts compare this. */
double evit_compare_score(const struct evit_compare_report *r);

struct evit_compare_row {
    int report;     /* index in evit_compare.reports */
    int parent_row; /* row of the parent in this chain, -1 for the first */
    int depth;      /* 0 for the first model */
    double drop_parent, drop_first; /* points of the score lost (evit_compare_score); NAN when unknown */
    double size_ratio, speed_ratio; /* > 1: smaller, faster; NAN when unknown */
    enum evit_compare_basis basis;
};

struct evit_compare_chain {
    struct evit_compare_row *rows;
    int n_rows;
    int branched; /* some model has several children */
    char **notes;
    int n_notes;
};

struct evit_compare {
    struct evit_compare_report *reports;
    int n_reports, cap_reports;
    struct evit_compare_chain *chains;
    int n_chains;
    char **notes; /* about the whole comparison */
    int n_notes;
};

/* Reads one report into r (strings owned by r).  A tree without a numeric
 * report_version and a string stage is not an evit report; a field of the
 * wrong type is an error naming it.  Errors print one line naming path. */
int evit_compare_parse(const cJSON *root, const char *path, struct evit_compare_report *r);

/* Adds a report file, or every *.json evit report in a folder (other JSON
 * there is skipped; a folder with none is an error).  Prints one line and
 * returns EVIT_ERR for a missing, unreadable, unparseable or non-report
 * file. */
int evit_compare_add(struct evit_compare *c, const char *path);

/* Links parents (reading ancestors found on disk), refuses loops, splits
 * chains at dataset changes, orders rows and computes drops and ratios. */
int evit_compare_build(struct evit_compare *c);

/* The tables in a format; returns EVIT_ERR when the stream fails. */
int evit_compare_write(const struct evit_compare *c, enum evit_compare_format fmt, FILE *out);

/* The comparison as JSON (the --format json output). */
cJSON *evit_compare_to_json(const struct evit_compare *c);

/* Top-1 against model bytes, and against latency when any report has
 * latency_ms, one series per chain; EVIT_ERR when nothing can be plotted or
 * the file cannot be written. */
int evit_compare_chart(const struct evit_compare *c, const char *png_path);

/* "3.9x smaller", "1.2x larger", "1.0x"; words are {better, worse}. */
void evit_compare_ratio_text(char *buf, int n, double ratio, const char *better,
                             const char *worse);

void evit_compare_free(struct evit_compare *c);

#endif
