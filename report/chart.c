/* chart.c: see chart.h.  The font is this project's own 5 x 9 bitmap,
 * drawn after the classic 5 x 7 character-LCD shapes with descenders added. */
#include "chart.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* One row per byte, top first; bit 4 is the leftmost of the 5 columns. */
static const uint8_t font[95][EVIT_CHART_GLYPH_H] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' ' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00, 0x00}, /* '!' */
    {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '"' */
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A, 0x00, 0x00}, /* '#' */
    {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04, 0x00, 0x00}, /* '$' */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00, 0x00}, /* '%' */
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D, 0x00, 0x00}, /* '&' */
    {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '\'' */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00}, /* '(' */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00}, /* ')' */
    {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00, 0x00, 0x00}, /* '*' */
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00, 0x00}, /* '+' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x04, 0x08}, /* ',' */
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '-' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00, 0x00}, /* '.' */
    {0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10, 0x00, 0x00}, /* '/' */
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00, 0x00}, /* '0' */
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00}, /* '1' */
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00}, /* '2' */
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00, 0x00}, /* '3' */
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00, 0x00}, /* '4' */
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00, 0x00}, /* '5' */
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00, 0x00}, /* '6' */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00}, /* '7' */
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00, 0x00}, /* '8' */
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00, 0x00}, /* '9' */
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00, 0x00}, /* ':' */
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x04, 0x08, 0x00}, /* ';' */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00, 0x00}, /* '<' */
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00}, /* '=' */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00}, /* '>' */
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00, 0x00}, /* '?' */
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E, 0x00, 0x00}, /* '@' */
    {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x00, 0x00}, /* 'A' */
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, 0x00, 0x00}, /* 'B' */
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, 0x00, 0x00}, /* 'C' */
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, 0x00, 0x00}, /* 'D' */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, 0x00, 0x00}, /* 'E' */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, 0x00, 0x00}, /* 'F' */
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, 0x00, 0x00}, /* 'G' */
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00, 0x00}, /* 'H' */
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00}, /* 'I' */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, 0x00, 0x00}, /* 'J' */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00, 0x00}, /* 'K' */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, 0x00, 0x00}, /* 'L' */
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00, 0x00}, /* 'M' */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00, 0x00}, /* 'N' */
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00}, /* 'O' */
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, 0x00, 0x00}, /* 'P' */
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, 0x00, 0x00}, /* 'Q' */
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, 0x00, 0x00}, /* 'R' */
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, 0x00, 0x00}, /* 'S' */
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00}, /* 'T' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00}, /* 'U' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00, 0x00}, /* 'V' */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, 0x00, 0x00}, /* 'W' */
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, 0x00, 0x00}, /* 'X' */
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x00, 0x00}, /* 'Y' */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, 0x00, 0x00}, /* 'Z' */
    {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E, 0x00, 0x00}, /* '[' */
    {0x10, 0x10, 0x08, 0x04, 0x02, 0x01, 0x01, 0x00, 0x00}, /* '\\' */
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E, 0x00, 0x00}, /* ']' */
    {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '^' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, 0x00}, /* '_' */
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '`' */
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00, 0x00}, /* 'a' */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00, 0x00}, /* 'b' */
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00, 0x00}, /* 'c' */
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00, 0x00}, /* 'd' */
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00, 0x00}, /* 'e' */
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00, 0x00}, /* 'f' */
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E}, /* 'g' */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00}, /* 'h' */
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00}, /* 'i' */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}, /* 'j' */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00}, /* 'k' */
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00}, /* 'l' */
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11, 0x00, 0x00}, /* 'm' */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00}, /* 'n' */
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00}, /* 'o' */
    {0x00, 0x00, 0x1E, 0x11, 0x11, 0x11, 0x1E, 0x10, 0x10}, /* 'p' */
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x01}, /* 'q' */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00}, /* 'r' */
    {0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E, 0x00, 0x00}, /* 's' */
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00}, /* 't' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00, 0x00}, /* 'u' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00, 0x00}, /* 'v' */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00, 0x00}, /* 'w' */
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00, 0x00}, /* 'x' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E}, /* 'y' */
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00}, /* 'z' */
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00, 0x00}, /* '{' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, /* '|' */
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00, 0x00}, /* '}' */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00, 0x00}, /* '~' */
};

const uint8_t *evit_chart_glyph(int c)
{
    if (c < 32 || c > 126) c = '?';
    return font[c - 32];
}

/* ---------------------------------------------------------------- drawing */

static void put(struct evit_image *img, int x, int y, struct evit_chart_rgb c)
{
    if (x < 0 || y < 0 || x >= img->w || y >= img->h) return;
    uint8_t *p = img->px + ((size_t)y * (size_t)img->w + (size_t)x) * 3;
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
}

void evit_chart_canvas(struct evit_image *img, int w, int h, struct evit_chart_rgb bg)
{
    EVIT_ASSERT(w > 0 && h > 0);
    img->w = w;
    img->h = h;
    img->c = 3;
    img->px = evit_malloc((size_t)w * (size_t)h * 3);
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) {
        img->px[3 * i] = bg.r;
        img->px[3 * i + 1] = bg.g;
        img->px[3 * i + 2] = bg.b;
    }
}

void evit_chart_fill(struct evit_image *img, int x0, int y0, int x1, int y1,
                     struct evit_chart_rgb color)
{
    if (x0 > x1) { int t = x0; x0 = x1; x1 = t; }
    if (y0 > y1) { int t = y0; y0 = y1; y1 = t; }
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 >= img->w) x1 = img->w - 1;
    if (y1 >= img->h) y1 = img->h - 1;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) put(img, x, y, color);
}

int evit_chart_text_width(const char *s, int scale)
{
    size_t n = strlen(s);
    /* the last cell's spacing column is not ink */
    return n ? ((int)n * EVIT_CHART_CELL_W - 1) * scale : 0;
}

int evit_chart_text_height(int scale) { return EVIT_CHART_GLYPH_H * scale; }

int evit_chart_text(struct evit_image *img, int x, int y, const char *s, int scale,
                    struct evit_chart_rgb color)
{
    for (int i = 0; s[i]; i++) {
        const uint8_t *g = evit_chart_glyph((unsigned char)s[i]);
        int gx = x + i * EVIT_CHART_CELL_W * scale;
        for (int r = 0; r < EVIT_CHART_GLYPH_H; r++)
            for (int col = 0; col < EVIT_CHART_GLYPH_W; col++)
                if (g[r] & (0x10 >> col))
                    evit_chart_fill(img, gx + col * scale, y + r * scale, gx + (col + 1) * scale - 1,
                                    y + (r + 1) * scale - 1, color);
    }
    return evit_chart_text_width(s, scale);
}

/* Turning (col, row) of the upright text by 90 degrees counter-clockwise
 * sends it to (row, -col): glyph tops face left and the text reads upwards. */
void evit_chart_text_up(struct evit_image *img, int x, int y, const char *s, int scale,
                        struct evit_chart_rgb color)
{
    for (int i = 0; s[i]; i++) {
        const uint8_t *g = evit_chart_glyph((unsigned char)s[i]);
        for (int r = 0; r < EVIT_CHART_GLYPH_H; r++)
            for (int col = 0; col < EVIT_CHART_GLYPH_W; col++)
                if (g[r] & (0x10 >> col)) {
                    int along = i * EVIT_CHART_CELL_W + col;
                    evit_chart_fill(img, x + r * scale, y - (along + 1) * scale + 1,
                                    x + (r + 1) * scale - 1, y - along * scale, color);
                }
    }
}

void evit_chart_line(struct evit_image *img, int x0, int y0, int x1, int y1, int width,
                     struct evit_chart_rgb color)
{
    int dx = abs(x1 - x0), dy = -abs(y1 - y0);
    int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy, lo = -(width - 1) / 2, hi = width / 2;
    for (;;) {
        evit_chart_fill(img, x0 + lo, y0 + lo, x0 + hi, y0 + hi, color);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

static void disc(struct evit_image *img, int cx, int cy, int r, struct evit_chart_rgb color)
{
    /* r*r + r rounds the rim outwards, so small discs look round */
    for (int y = -r; y <= r; y++)
        for (int x = -r; x <= r; x++)
            if (x * x + y * y <= r * r + r) put(img, cx + x, cy + y, color);
}

/* ---------------------------------------------------------------- ticks */

int evit_chart_ticks_linear(double lo, double hi, int max_ticks, double *out, int cap,
                            double *step)
{
    EVIT_ASSERT(hi > lo && max_ticks >= 2);
    static const double mant[] = {1, 2, 2.5, 5};
    double s = 0;
    long first = 0, last = -1;
    /* start one decade below the step that would give max_ticks intervals */
    int k = (int)floor(log10((hi - lo) / max_ticks)) - 1;
    for (int done = 0; !done; k++) {
        for (int m = 0; m < 4 && !done; m++) {
            s = mant[m] * pow(10.0, k);
            first = (long)ceil(lo / s - 1e-9);
            last = (long)floor(hi / s + 1e-9);
            done = last - first + 1 <= max_ticks;
        }
    }
    int n = 0;
    for (long i = first; i <= last && n < cap; i++) out[n++] = (double)i * s;
    if (step) *step = s;
    return n;
}

/* Ticks m x 10^k in [lo, hi] for m in mult, every `every`-th decade. */
static int log_ticks(double lo, double hi, const int *mult, int n_mult, int every, double *out,
                     int cap)
{
    int n = 0;
    int k0 = (int)floor(log10(lo)), k1 = (int)floor(log10(hi));
    for (int k = k0; k <= k1; k++) {
        if (((k % every) + every) % every) continue;
        for (int m = 0; m < n_mult; m++) {
            double v = mult[m] * pow(10.0, k);
            if (v < lo * (1 - 1e-9) || v > hi * (1 + 1e-9)) continue;
            if (out && n < cap) out[n] = v;
            n++;
        }
    }
    return n;
}

int evit_chart_ticks_log(double lo, double hi, int max_ticks, double *out, int cap)
{
    EVIT_ASSERT(lo > 0 && hi > lo && max_ticks >= 2);
    static const int all[] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, some[] = {1, 2, 5}, one[] = {1};
    const int *sets[] = {all, some, one};
    const int sizes[] = {9, 3, 1};
    for (int s = 0; s < 3; s++) {
        int n = log_ticks(lo, hi, sets[s], sizes[s], 1, NULL, 0);
        if (n > max_ticks) continue;
        if (n < 2) break; /* too narrow for a log grid */
        n = log_ticks(lo, hi, sets[s], sizes[s], 1, out, cap);
        return n < cap ? n : cap;
    }
    int decades = log_ticks(lo, hi, one, 1, 1, NULL, 0);
    if (decades > max_ticks) {
        int every = (decades + max_ticks - 1) / max_ticks;
        int n = log_ticks(lo, hi, one, 1, every, out, cap);
        return n < cap ? n : cap;
    }
    return evit_chart_ticks_linear(lo, hi, max_ticks, out, cap, NULL);
}

/* Decimals that show every multiple of step exactly (2.5 -> 1, 0.05 -> 2). */
static int decimals_for(double step)
{
    for (int d = 0; d < 9; d++) {
        double v = step * pow(10.0, d);
        if (fabs(v - round(v)) < 1e-6 * fmax(1.0, v)) return d;
    }
    return 9;
}

void evit_chart_tick_label(char *buf, int n, double v, double step, enum evit_chart_unit unit)
{
    const char *suffix = "";
    double div = 1;
    if (unit == EVIT_CHART_BYTES) {
        static const char *const prefix[] = {" B", " kB", " MB", " GB", " TB"};
        int p = 0;
        while (p < 4 && fabs(v) >= 1000 * div) {
            div *= 1000;
            p++;
        }
        suffix = prefix[p];
    }
    if (step > 0)
        snprintf(buf, (size_t)n, "%.*f%s", decimals_for(step / div), v / div, suffix);
    else
        snprintf(buf, (size_t)n, "%.3g%s", v / div, suffix);
}

int evit_chart_place_labels(const int *x, const int *w, const int *rank, int n, int lo, int hi,
                            int gap, int *shown)
{
    int count = 0, max_rank = 0;
    for (int i = 0; i < n; i++) {
        shown[i] = 0;
        if (rank[i] > max_rank) max_rank = rank[i];
    }
    for (int r = 0; r <= max_rank; r++)
        for (int i = 0; i < n; i++) {
            if (rank[i] != r) continue;
            int l = x[i] - w[i] / 2, rt = l + w[i];
            int fits = l >= lo && rt <= hi;
            for (int j = 0; j < n && fits; j++) {
                if (!shown[j]) continue;
                int lj = x[j] - w[j] / 2, rj = lj + w[j];
                fits = rt + gap <= lj || rj + gap <= l;
            }
            if (fits) {
                shown[i] = 1;
                count++;
            }
        }
    return count;
}

int evit_chart_log_rank(double v)
{
    EVIT_ASSERT(v > 0);
    double m = v / pow(10.0, floor(log10(v)));
    long mi = lround(m);
    if (fabs(m - (double)mi) > 1e-6 * m) return 2;
    /* floor(log10) can land one decade low for an exact power of ten */
    if (mi == 1 || mi == 10) return 0;
    return mi == 2 || mi == 5 ? 1 : 2;
}

/* ---------------------------------------------------------------- plots */

#define SCALE 2       /* text scale: 12 x 22 pixel cells */
#define PANEL_W 620
#define PANEL_H 500
#define MARGIN_L 104  /* y title, tick labels */
#define MARGIN_R 28
#define MARGIN_T 52   /* panel title */
#define MARGIN_B 84   /* tick labels, x title */
#define MARKER_R 5
#define MAX_TICKS 32

static const struct evit_chart_rgb ink = {30, 30, 30}, frame = {110, 110, 110},
                                   grid = {226, 226, 226}, white = {255, 255, 255};

/* Colour-blind-safe palette (Okabe and Ito), darkened a little for text. */
static struct evit_chart_rgb series_color(int i)
{
    static const struct evit_chart_rgb pal[] = {
        {0, 102, 178}, {213, 94, 0}, {0, 140, 100}, {204, 121, 167},
        {86, 160, 220}, {180, 150, 0}, {60, 60, 60}};
    return pal[i % (int)(sizeof pal / sizeof pal[0])];
}

static int drawable(const struct evit_chart_panel *p, const struct evit_chart_point *q)
{
    return isfinite(q->x) && isfinite(q->y) && (!p->x_log || q->x > 0);
}

int evit_chart_panel_points(const struct evit_chart_panel *p)
{
    int n = 0;
    for (int s = 0; s < p->n_series; s++)
        for (int i = 0; i < p->series[s].n; i++) n += drawable(p, &p->series[s].points[i]);
    return n;
}

struct rect {
    int x0, y0, x1, y1; /* inclusive */
};

/* The plot area of a panel and the data range it shows. */
struct frame {
    struct rect r;
    double x0, x1, y0, y1; /* x in log10 on a log axis */
    int x_log;
};

static double to_px(const struct frame *f, double x)
{
    double v = f->x_log ? log10(x) : x;
    return f->r.x0 + (v - f->x0) / (f->x1 - f->x0) * (f->r.x1 - f->r.x0);
}

static double to_py(const struct frame *f, double y)
{
    return f->r.y1 - (y - f->y0) / (f->y1 - f->y0) * (f->r.y1 - f->r.y0);
}

/* Data range plus a margin for the point labels; a single value gets a
 * window around it. */
static void pad_range(double *lo, double *hi, double min_span, double frac)
{
    if (*hi - *lo < min_span) {
        double mid = 0.5 * (*lo + *hi);
        *lo = mid - 0.5 * min_span;
        *hi = mid + 0.5 * min_span;
    }
    double pad = frac * (*hi - *lo);
    *lo -= pad;
    *hi += pad;
}

static void panel_range(const struct evit_chart_panel *p, struct frame *f)
{
    double xl = INFINITY, xh = -INFINITY, yl = INFINITY, yh = -INFINITY;
    for (int s = 0; s < p->n_series; s++)
        for (int i = 0; i < p->series[s].n; i++) {
            const struct evit_chart_point *q = &p->series[s].points[i];
            if (!drawable(p, q)) continue;
            double x = p->x_log ? log10(q->x) : q->x;
            xl = fmin(xl, x);
            xh = fmax(xh, x);
            yl = fmin(yl, q->y);
            yh = fmax(yh, q->y);
        }
    if (!(xl <= xh)) { /* nothing to draw: any sane window */
        xl = 0;
        xh = 1;
        yl = 0;
        yh = 100;
    }
    /* a log axis always spans at least a factor 2, a linear one 1 unit or
     * 10% of the value, so that ticks exist and labels have room */
    pad_range(&xl, &xh, p->x_log ? log10(2.0) : fmax(1e-9, 0.1 * fabs(xh)), 0.16);
    pad_range(&yl, &yh, 1.0, 0.12);
    f->x0 = xl;
    f->x1 = xh;
    f->y0 = yl;
    f->y1 = yh;
    f->x_log = p->x_log;
}

static int overlap(struct rect a, struct rect b)
{
    int w = (a.x1 < b.x1 ? a.x1 : b.x1) - (a.x0 > b.x0 ? a.x0 : b.x0) + 1;
    int h = (a.y1 < b.y1 ? a.y1 : b.y1) - (a.y0 > b.y0 ? a.y0 : b.y0) + 1;
    return w > 0 && h > 0 ? w * h : 0;
}

static void draw_axes(struct evit_image *img, const struct evit_chart_panel *p,
                      const struct frame *f)
{
    double ticks[MAX_TICKS], step = 0;
    char label[48];
    int th = evit_chart_text_height(SCALE), pw = f->r.x1 - f->r.x0, ph = f->r.y1 - f->r.y0;

    /* y: linear */
    int n = evit_chart_ticks_linear(f->y0, f->y1, ph / 44 > 2 ? ph / 44 : 2, ticks, MAX_TICKS, &step);
    for (int i = 0; i < n; i++) {
        int y = (int)lround(to_py(f, ticks[i]));
        evit_chart_line(img, f->r.x0, y, f->r.x1, y, 1, grid);
        evit_chart_line(img, f->r.x0 - 6, y, f->r.x0, y, 1, frame);
        evit_chart_tick_label(label, sizeof label, ticks[i], step, EVIT_CHART_NUMBER);
        evit_chart_text(img, f->r.x0 - 10 - evit_chart_text_width(label, SCALE), y - th / 2 + 1,
                        label, SCALE, ink);
    }

    /* x: labels that would touch the previous one are left out (the tick
     * and grid line stay) */
    int max_x = pw / 72 > 2 ? pw / 72 : 2;
    if (f->x_log) {
        n = evit_chart_ticks_log(pow(10.0, f->x0), pow(10.0, f->x1), max_x, ticks, MAX_TICKS);
        step = 0;
        /* linear fallback ticks need fixed decimals */
        if (n >= 2 && fabs(ticks[1] - ticks[0] - (ticks[n - 1] - ticks[n - 2])) <
                          1e-9 * ticks[n - 1] && n > 2)
            step = ticks[1] - ticks[0];
    } else {
        n = evit_chart_ticks_linear(f->x0, f->x1, max_x, ticks, MAX_TICKS, &step);
    }
    int xs[MAX_TICKS] = {0}, ws[MAX_TICKS] = {0}, rank[MAX_TICKS] = {0}, shown[MAX_TICKS];
    char xlabel[MAX_TICKS][48];
    for (int i = 0; i < n; i++) {
        xs[i] = (int)lround(to_px(f, ticks[i]));
        evit_chart_line(img, xs[i], f->r.y0, xs[i], f->r.y1, 1, grid);
        evit_chart_line(img, xs[i], f->r.y1, xs[i], f->r.y1 + 6, 1, frame);
        evit_chart_tick_label(xlabel[i], sizeof xlabel[i], ticks[i], step, p->x_unit);
        ws[i] = evit_chart_text_width(xlabel[i], SCALE);
        rank[i] = f->x_log ? evit_chart_log_rank(ticks[i]) : 0;
    }
    evit_chart_place_labels(xs, ws, rank, n, f->r.x0 - MARGIN_L + 40, f->r.x1 + MARGIN_R - 2, 14,
                            shown);
    for (int i = 0; i < n; i++) {
        if (shown[i]) evit_chart_text(img, xs[i] - ws[i] / 2, f->r.y1 + 12, xlabel[i], SCALE, ink);
    }

    /* frame and titles */
    evit_chart_line(img, f->r.x0, f->r.y0, f->r.x1, f->r.y0, 1, frame);
    evit_chart_line(img, f->r.x0, f->r.y1, f->r.x1, f->r.y1, 1, frame);
    evit_chart_line(img, f->r.x0, f->r.y0, f->r.x0, f->r.y1, 1, frame);
    evit_chart_line(img, f->r.x1, f->r.y0, f->r.x1, f->r.y1, 1, frame);
    if (p->x_title) {
        int w = evit_chart_text_width(p->x_title, SCALE);
        evit_chart_text(img, (f->r.x0 + f->r.x1 - w) / 2, f->r.y1 + 12 + th + 14, p->x_title,
                        SCALE, ink);
    }
    if (p->y_title) {
        int w = evit_chart_text_width(p->y_title, SCALE);
        evit_chart_text_up(img, f->r.x0 - MARGIN_L + 12, (f->r.y0 + f->r.y1 + w) / 2, p->y_title,
                           SCALE, ink);
    }
    if (p->title) {
        int w = evit_chart_text_width(p->title, SCALE);
        int x = (f->r.x0 + f->r.x1 - w) / 2, y = f->r.y0 - th - 16;
        /* bold: the same text again one pixel to the right */
        evit_chart_text(img, x, y, p->title, SCALE, ink);
        evit_chart_text(img, x + 1, y, p->title, SCALE, ink);
    }
}

/* How bad a label rectangle is: area over other labels and markers, plus
 * chain lines crossed, plus anything outside the plot. */
static long label_cost(struct rect c, const struct rect *taken, int n_taken, const struct frame *f,
                       const struct evit_chart_panel *p)
{
    long cost = 0;
    struct rect in = f->r;
    int area = (c.x1 - c.x0 + 1) * (c.y1 - c.y0 + 1);
    cost += 100L * (area - overlap(c, in));
    for (int i = 0; i < n_taken; i++) cost += 40L * overlap(c, taken[i]);
    for (int s = 0; s < p->n_series; s++)
        for (int i = 0; i < p->series[s].n; i++) {
            const struct evit_chart_point *q = &p->series[s].points[i];
            if (q->parent < 0 || !drawable(p, q) || !drawable(p, &p->series[s].points[q->parent]))
                continue;
            const struct evit_chart_point *a = &p->series[s].points[q->parent];
            double ax = to_px(f, a->x), ay = to_py(f, a->y), bx = to_px(f, q->x), by = to_py(f, q->y);
            for (int k = 0; k <= 32; k++) {
                double t = k / 32.0;
                int x = (int)lround(ax + t * (bx - ax)), y = (int)lround(ay + t * (by - ay));
                if (x >= c.x0 && x <= c.x1 && y >= c.y0 && y <= c.y1) cost += 40;
            }
        }
    return cost;
}

static void draw_series(struct evit_image *img, const struct evit_chart_panel *p,
                        const struct frame *f)
{
    int total = 0;
    for (int s = 0; s < p->n_series; s++) total += p->series[s].n;
    struct rect *taken = evit_calloc((size_t)total * 2 + 1, sizeof *taken);
    int n_taken = 0, th = evit_chart_text_height(SCALE);

    for (int s = 0; s < p->n_series; s++) {
        const struct evit_chart_series *se = &p->series[s];
        for (int i = 0; i < se->n; i++) {
            const struct evit_chart_point *q = &se->points[i];
            if (!drawable(p, q)) continue;
            if (q->parent >= 0 && drawable(p, &se->points[q->parent])) {
                const struct evit_chart_point *a = &se->points[q->parent];
                evit_chart_line(img, (int)lround(to_px(f, a->x)), (int)lround(to_py(f, a->y)),
                                (int)lround(to_px(f, q->x)), (int)lround(to_py(f, q->y)), 2,
                                series_color(s));
            }
        }
    }
    for (int s = 0; s < p->n_series; s++)
        for (int i = 0; i < p->series[s].n; i++) {
            const struct evit_chart_point *q = &p->series[s].points[i];
            if (!drawable(p, q)) continue;
            int x = (int)lround(to_px(f, q->x)), y = (int)lround(to_py(f, q->y));
            disc(img, x, y, MARKER_R + 1, white);
            disc(img, x, y, MARKER_R, series_color(s));
            taken[n_taken++] = (struct rect){x - MARKER_R - 2, y - MARKER_R - 2, x + MARKER_R + 2,
                                             y + MARKER_R + 2};
        }
    /* labels: of eight places around the point, the least crowded */
    for (int s = 0; s < p->n_series; s++)
        for (int i = 0; i < p->series[s].n; i++) {
            const struct evit_chart_point *q = &p->series[s].points[i];
            if (!drawable(p, q) || !q->label || !q->label[0]) continue;
            int x = (int)lround(to_px(f, q->x)), y = (int)lround(to_py(f, q->y));
            int w = evit_chart_text_width(q->label, SCALE), g = MARKER_R + 5, far = g + th;
            /* near places first, then the same directions one line further */
            const int at[16][2] = {
                {x + g, y - th / 2},         {x - g - w, y - th / 2},
                {x - w / 2, y - g - th},     {x - w / 2, y + g},
                {x + g - 3, y - g - th + 3}, {x + g - 3, y + g - 3},
                {x - g - w + 3, y - g - th + 3}, {x - g - w + 3, y + g - 3},
                {x + far, y - th / 2},       {x - far - w, y - th / 2},
                {x - w / 2, y - far - th},   {x - w / 2, y + far},
                {x + g, y - far - th},       {x + g, y + far},
                {x - g - w, y - far - th},   {x - g - w, y + far}};
            int best = 0;
            long best_cost = -1;
            for (int k = 0; k < 16; k++) {
                struct rect c = {at[k][0] - 2, at[k][1] - 2, at[k][0] + w + 1, at[k][1] + th + 1};
                /* a far place must be clearly better to win */
                long cost = label_cost(c, taken, n_taken, f, p) + (k >= 8 ? 200 : 0);
                if (best_cost < 0 || cost < best_cost) {
                    best_cost = cost;
                    best = k;
                }
            }
            struct rect c = {at[best][0] - 2, at[best][1] - 2, at[best][0] + w + 1,
                             at[best][1] + th + 1};
            /* a label placed further away gets a leader to its point */
            if (best >= 8) {
                int lx = x < c.x0 ? c.x0 : x > c.x1 ? c.x1 : x;
                int ly = y < c.y0 ? c.y0 : y > c.y1 ? c.y1 : y;
                evit_chart_line(img, x, y, lx, ly, 1, series_color(s));
            }
            /* a white halo keeps the text legible over grid and lines
             * without hiding them */
            for (int d = 0; d < 8; d++) {
                static const int hx[8] = {-1, 1, 0, 0, -1, -1, 1, 1}, hy[8] = {0, 0, -1, 1, -1, 1, -1, 1};
                evit_chart_text(img, at[best][0] + hx[d], at[best][1] + hy[d], q->label, SCALE, white);
            }
            evit_chart_text(img, at[best][0], at[best][1], q->label, SCALE, series_color(s));
            taken[n_taken++] = c;
        }
    free(taken);
}

/* Legend entries flow left to right in rows under the panels. */
static int legend_height(const struct evit_chart_panel *p, int width)
{
    int th = evit_chart_text_height(SCALE), row_h = th + 12, x = 24, y = 0;
    for (int s = 0; s < p->n_series; s++) {
        const char *name = p->series[s].name ? p->series[s].name : "";
        int w = 44 + evit_chart_text_width(name, SCALE) + 32;
        if (x + w > width - 12 && x > 24) {
            x = 24;
            y += row_h;
        }
        x += w;
    }
    return y + row_h;
}

static void draw_legend(struct evit_image *img, const struct evit_chart_panel *p, int top)
{
    int th = evit_chart_text_height(SCALE), row_h = th + 12, x = 24, y = top;
    for (int s = 0; s < p->n_series; s++) {
        const char *name = p->series[s].name ? p->series[s].name : "";
        int w = 44 + evit_chart_text_width(name, SCALE) + 32;
        if (x + w > img->w - 12 && x > 24) {
            x = 24;
            y += row_h;
        }
        int cy = y + th / 2;
        evit_chart_line(img, x, cy, x + 34, cy, 2, series_color(s));
        disc(img, x + 17, cy, MARKER_R, series_color(s));
        evit_chart_text(img, x + 44, y, name, SCALE, ink);
        x += w;
    }
}

void evit_chart_render(struct evit_image *out, const struct evit_chart_panel *panels,
                       int n_panels, const char *footnote)
{
    EVIT_ASSERT(n_panels >= 1);
    int th = evit_chart_text_height(SCALE), panel_w = PANEL_W;
    /* panels widen until the longest legend entry or the footnote fits */
    int need = footnote ? evit_chart_text_width(footnote, SCALE) + 48 : 0;
    for (int s = 0; s < panels[0].n_series; s++) {
        const char *name = panels[0].series[s].name ? panels[0].series[s].name : "";
        int w = 44 + evit_chart_text_width(name, SCALE) + 48;
        if (w > need) need = w;
    }
    if (need > panel_w * n_panels) panel_w = (need + n_panels - 1) / n_panels;
    int width = panel_w * n_panels;
    int legend_h = legend_height(&panels[0], width), foot_h = footnote ? th + 12 : 0;
    evit_chart_canvas(out, width, PANEL_H + legend_h + foot_h + 16, white);
    if (footnote) evit_chart_text(out, 24, PANEL_H + legend_h + 6, footnote, SCALE, ink);
    for (int i = 0; i < n_panels; i++) {
        struct frame f;
        panel_range(&panels[i], &f);
        f.r = (struct rect){panel_w * i + MARGIN_L, MARGIN_T, panel_w * (i + 1) - MARGIN_R,
                            PANEL_H - MARGIN_B};
        draw_axes(out, &panels[i], &f);
        if (evit_chart_panel_points(&panels[i]) == 0) {
            const char *msg = "no data";
            evit_chart_text(out, (f.r.x0 + f.r.x1 - evit_chart_text_width(msg, SCALE)) / 2,
                            (f.r.y0 + f.r.y1) / 2, msg, SCALE, frame);
        }
        draw_series(out, &panels[i], &f);
    }
    draw_legend(out, &panels[0], PANEL_H);
}

int evit_chart_write_png(const char *path, const struct evit_chart_panel *panels, int n_panels,
                         const char *footnote)
{
    struct evit_image img = {0};
    evit_chart_render(&img, panels, n_panels, footnote);
    int rc = evit_png_write(path, &img);
    evit_image_free(&img);
    return rc;
}
