/* chart.h: scatter charts drawn into an RGB image, for evit-report --png.
 *
 * Text comes from a built-in bitmap font: one 5 x 9 glyph per printable
 * ASCII character (32..126), 7 rows above the baseline and 2 for the
 * descenders of g, j, p, q, y and the comma.  A glyph is 9 bytes, one per
 * row from the top, bit 4 the leftmost column.  Text is drawn at an integer
 * scale (each font pixel becomes scale x scale image pixels) in cells of
 * EVIT_CHART_CELL_W x EVIT_CHART_CELL_H font pixels.
 *
 * A chart has one or more panels side by side, each a scatter plot of
 * several series sharing the y axis quantity; series i has the same colour
 * in every panel and one legend entry below the panels.  Within a series a
 * point may name a parent point, and a line joins the two (a lineage).
 *
 * Ownership: evit_chart_render allocates out->px (free with
 * evit_image_free); the panels and series are only read. */
#ifndef EVIT_CHART_H
#define EVIT_CHART_H

#include <stdint.h>

#include "pngio.h"

#define EVIT_CHART_GLYPH_W 5
#define EVIT_CHART_GLYPH_H 9
#define EVIT_CHART_CELL_W 6  /* glyph + 1 column of spacing */
#define EVIT_CHART_CELL_H 11 /* glyph + 2 rows of spacing */

struct evit_chart_rgb {
    uint8_t r, g, b;
};

/* The glyph of character c; '?' for anything outside 32..126. */
const uint8_t *evit_chart_glyph(int c);

/* ------------------------------------------------------------ drawing */

/* A w x h RGB image filled with bg. */
void evit_chart_canvas(struct evit_image *img, int w, int h, struct evit_chart_rgb bg);

/* Width and height in image pixels of s drawn at scale. */
int evit_chart_text_width(const char *s, int scale);
int evit_chart_text_height(int scale);

/* Draws s with its top-left corner at (x, y); pixels outside are clipped.
 * Returns the width drawn. */
int evit_chart_text(struct evit_image *img, int x, int y, const char *s, int scale,
                    struct evit_chart_rgb color);

/* Draws s turned 90 degrees counter-clockwise, reading upwards, its
 * bottom-left corner (the start of the first glyph's top row turned) at
 * (x, y). */
void evit_chart_text_up(struct evit_image *img, int x, int y, const char *s, int scale,
                        struct evit_chart_rgb color);

/* Inclusive rectangle, clipped. */
void evit_chart_fill(struct evit_image *img, int x0, int y0, int x1, int y1,
                     struct evit_chart_rgb color);

/* A line of the given width (Bresenham, a width x width pen). */
void evit_chart_line(struct evit_image *img, int x0, int y0, int x1, int y1, int width,
                     struct evit_chart_rgb color);

/* ------------------------------------------------------------ axes */

/* Ticks at multiples of a step from 1, 2, 2.5 or 5 x 10^k, the smallest step
 * giving at most max_ticks within [lo, hi].  Writes at most cap values to
 * out and returns how many; *step gets the step (for the label decimals). */
int evit_chart_ticks_linear(double lo, double hi, int max_ticks, double *out, int cap,
                            double *step);

/* Ticks for a log axis over [lo, hi] (0 < lo < hi): m x 10^k with m from
 * {1..9}, else {1, 2, 5}, else {1}, the densest set with at most max_ticks;
 * every d-th decade when even {1} has too many; linear ticks when fewer
 * than 2 would remain.  Returns the count. */
int evit_chart_ticks_log(double lo, double hi, int max_ticks, double *out, int cap);

enum evit_chart_unit {
    EVIT_CHART_NUMBER, /* 0.5, 12, 1500 */
    EVIT_CHART_BYTES,  /* 200 kB, 1.5 MB (SI prefixes) */
};

/* A tick label; step > 0 fixes the decimals of a linear axis, 0 means %g. */
void evit_chart_tick_label(char *buf, int n, double v, double step, enum evit_chart_unit unit);

/* Which tick labels fit on an axis: label i is centred at x[i] and w[i]
 * wide; it is shown (shown[i] = 1) when it stays inside [lo, hi] and keeps
 * gap pixels from every label shown before it.  Labels are taken by rank
 * (0 first; ties left to right), so on a log axis a power of ten is never
 * hidden by a crowding 9 x 10^k beside it.  Returns how many are shown. */
int evit_chart_place_labels(const int *x /* (n) */, const int *w /* (n) */,
                            const int *rank /* (n) */, int n, int lo, int hi, int gap,
                            int *shown /* (n) */);

/* A log-axis tick's rank for evit_chart_place_labels: 0 for 10^k, 1 for
 * 2 or 5 x 10^k, 2 for the other multiples. */
int evit_chart_log_rank(double v);

/* ------------------------------------------------------------ plots */

struct evit_chart_point {
    double x, y;       /* a point with a non-finite coordinate is not drawn */
    int parent;        /* index in the series of the point it derives from, or -1 */
    const char *label; /* drawn beside the point, or NULL */
};

struct evit_chart_series {
    const char *name; /* legend text */
    const struct evit_chart_point *points;
    int n;
};

struct evit_chart_panel {
    const char *title, *x_title, *y_title;
    int x_log;                  /* log scale on x (only x > 0 is drawn) */
    enum evit_chart_unit x_unit;
    const struct evit_chart_series *series; /* series i: colour and legend entry i */
    int n_series;
};

/* Number of points a panel can draw (finite, and x > 0 on a log axis). */
int evit_chart_panel_points(const struct evit_chart_panel *p);

/* Renders the panels side by side above a legend taken from the first
 * panel's series names, and a footnote line under it (or NULL). */
void evit_chart_render(struct evit_image *out, const struct evit_chart_panel *panels,
                       int n_panels, const char *footnote);

/* Renders and writes a PNG (atomically). */
int evit_chart_write_png(const char *path, const struct evit_chart_panel *panels, int n_panels,
                         const char *footnote);

#endif
