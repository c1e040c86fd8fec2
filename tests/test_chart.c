/* test_chart.c: the bitmap font puts ink where its table says, axis ticks
 * land on round numbers, and a rendered chart survives a PNG round trip. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "chart.h"
#include "pngio.h"
#include "test.h"
#include "util.h"

static const struct evit_chart_rgb white = {255, 255, 255}, black = {0, 0, 0};

static int inked(const struct evit_image *img, int x, int y)
{
    return img->px[((size_t)y * (size_t)img->w + (size_t)x) * 3] < 128;
}

static int count_ink(const struct evit_image *img)
{
    int n = 0;
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++) n += inked(img, x, y);
    return n;
}

static void every_printable_character_has_a_glyph_and_only_space_is_blank(void)
{
    for (int c = 32; c <= 126; c++) {
        const uint8_t *g = evit_chart_glyph(c);
        int bits = 0;
        for (int r = 0; r < EVIT_CHART_GLYPH_H; r++) {
            CHECK((g[r] & ~0x1F) == 0); /* 5 columns only */
            bits += g[r] != 0;
        }
        if (c == ' ')
            CHECK(bits == 0);
        else
            CHECK(bits > 0);
    }
    /* glyphs differ from each other, so text can be read back */
    for (int a = 33; a <= 126; a++)
        for (int b = a + 1; b <= 126; b++)
            CHECK(memcmp(evit_chart_glyph(a), evit_chart_glyph(b), EVIT_CHART_GLYPH_H) != 0);
    CHECK(evit_chart_glyph(200) == evit_chart_glyph('?'));
    CHECK(evit_chart_glyph(7) == evit_chart_glyph('?'));
}

static void text_puts_ink_exactly_where_the_glyph_table_says(void)
{
    struct evit_image img;
    const char *s = "Ag7";
    const int x0 = 3, y0 = 2, scale = 2;
    evit_chart_canvas(&img, 60, 30, white);
    int w = evit_chart_text(&img, x0, y0, s, scale, black);
    CHECK(w == evit_chart_text_width(s, scale));
    CHECK(w == (3 * EVIT_CHART_CELL_W - 1) * scale);
    int wrong = 0;
    for (int y = 0; y < img.h; y++)
        for (int x = 0; x < img.w; x++) {
            int want = 0;
            int cx = (x - x0) / scale, cy = (y - y0) / scale;
            if (x >= x0 && y >= y0 && cy < EVIT_CHART_GLYPH_H) {
                int ch = cx / EVIT_CHART_CELL_W, col = cx % EVIT_CHART_CELL_W;
                if (ch < 3 && col < EVIT_CHART_GLYPH_W)
                    want = (evit_chart_glyph(s[ch])[cy] >> (4 - col)) & 1;
            }
            wrong += inked(&img, x, y) != want;
        }
    CHECK(wrong == 0);
    evit_image_free(&img);
}

static void turned_text_is_the_upright_text_rotated_a_quarter_turn(void)
{
    struct evit_image up, flat;
    const char *s = "top-1 (%)";
    int w = evit_chart_text_width(s, 1), h = evit_chart_text_height(1);
    evit_chart_canvas(&flat, w, h, white);
    evit_chart_canvas(&up, h, w, white);
    evit_chart_text(&flat, 0, 0, s, 1, black);
    evit_chart_text_up(&up, 0, w - 1, s, 1, black);
    /* counter-clockwise: flat (x, y) lands on up (y, w - 1 - x) */
    int wrong = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) wrong += inked(&flat, x, y) != inked(&up, y, w - 1 - x);
    CHECK(wrong == 0);
    CHECK(count_ink(&flat) > 0 && count_ink(&flat) == count_ink(&up));
    evit_image_free(&up);
    evit_image_free(&flat);
}

static void drawing_off_the_canvas_is_clipped_not_a_crash(void)
{
    struct evit_image img;
    evit_chart_canvas(&img, 10, 10, white);
    evit_chart_text(&img, -20, -5, "clipped text", 3, black);
    evit_chart_line(&img, -50, -50, 60, 60, 3, black);
    evit_chart_fill(&img, 8, 8, 100, 100, black);
    evit_chart_text_up(&img, 5, 3, "xyz", 2, black);
    CHECK(inked(&img, 9, 9) && inked(&img, 0, 0) && inked(&img, 5, 5));
    evit_image_free(&img);
}

static void a_line_joins_its_end_points(void)
{
    struct evit_image img;
    evit_chart_canvas(&img, 20, 20, white);
    evit_chart_line(&img, 2, 3, 17, 11, 1, black);
    CHECK(inked(&img, 2, 3) && inked(&img, 17, 11));
    CHECK(count_ink(&img) == 16); /* one pixel per step of the longer axis */
    evit_image_free(&img);
}

static void linear_ticks_are_round_steps_inside_the_range(void)
{
    double t[32], step;
    int n = evit_chart_ticks_linear(85.2, 91.3, 7, t, 32, &step);
    CHECK(n == 6);
    CHECK_NEAR(step, 1.0, 1e-12);
    CHECK_NEAR(t[0], 86.0, 1e-9);
    CHECK_NEAR(t[n - 1], 91.0, 1e-9);
    n = evit_chart_ticks_linear(0, 100, 6, t, 32, &step);
    CHECK(n == 6 && fabs(step - 20) < 1e-12); /* 0 20 .. 100 */
    n = evit_chart_ticks_linear(0, 100, 5, t, 32, &step);
    CHECK(n == 5 && fabs(step - 25) < 1e-12); /* 0 25 50 75 100 */
    n = evit_chart_ticks_linear(-0.013, 0.041, 8, t, 32, &step);
    CHECK_NEAR(step, 0.01, 1e-12);
    CHECK(n == 6);
    CHECK_NEAR(t[0], -0.01, 1e-12);
    for (int i = 0; i < n; i++) CHECK(t[i] >= -0.013 && t[i] <= 0.041);
}

static void log_ticks_prefer_1_2_5_and_thin_out_wide_ranges(void)
{
    double t[32];
    int n = evit_chart_ticks_log(1.5e5, 6e6, 6, t, 32);
    double want[] = {2e5, 5e5, 1e6, 2e6, 5e6};
    CHECK(n == 5);
    for (int i = 0; i < n && i < 5; i++) CHECK_NEAR(t[i] / want[i], 1, 1e-9);
    /* a narrow range gets every integer multiple */
    n = evit_chart_ticks_log(0.18, 0.75, 8, t, 32);
    CHECK(n == 6);
    CHECK_NEAR(t[0], 0.2, 1e-12);
    CHECK_NEAR(t[5], 0.7, 1e-12);
    /* thirteen powers of ten with room for 4 ticks: every fourth */
    n = evit_chart_ticks_log(1, 1e12, 4, t, 32);
    CHECK(n == 4);
    CHECK_NEAR(t[0], 1, 1e-12);
    CHECK_NEAR(t[1] / t[0], 1e4, 1e-6);
    /* inside one step of 1..9: linear ticks instead */
    n = evit_chart_ticks_log(820e3, 840e3, 5, t, 32);
    CHECK(n >= 2);
    for (int i = 0; i < n; i++) CHECK(t[i] >= 820e3 && t[i] <= 840e3);
}

static void a_crowded_log_axis_labels_its_power_of_ten_first(void)
{
    /* 0.07, 0.08, 0.09, 0.1 on a log axis: 0.09 and 0.1 sit close; left to
     * right, 0.09 would take the place and 0.1 go unlabelled */
    int x[] = {100, 170, 240, 286}, w[] = {48, 48, 48, 36}, shown[4];
    int rank[4];
    const double v[] = {0.07, 0.08, 0.09, 0.1};
    for (int i = 0; i < 4; i++) rank[i] = evit_chart_log_rank(v[i]);
    CHECK(rank[0] == 2 && rank[3] == 0);
    CHECK(evit_chart_place_labels(x, w, rank, 4, 0, 1000, 14, shown) == 3);
    CHECK(shown[0] && shown[1] && !shown[2] && shown[3]);
    /* equal ranks: left to right, as a linear axis wants */
    int flat[4] = {0, 0, 0, 0};
    CHECK(evit_chart_place_labels(x, w, flat, 4, 0, 1000, 14, shown) == 3);
    CHECK(shown[0] && shown[1] && shown[2] && !shown[3]);
    /* a label that would leave the panel is dropped */
    CHECK(evit_chart_place_labels(x, w, flat, 4, 0, 250, 14, shown) == 2);
    CHECK(!shown[2] && !shown[3]);
    CHECK(evit_chart_log_rank(1000) == 0 && evit_chart_log_rank(2e5) == 1 &&
          evit_chart_log_rank(5e-3) == 1 && evit_chart_log_rank(3e6) == 2 &&
          evit_chart_log_rank(0.25) == 2);
}

static void tick_labels_use_si_prefixes_and_enough_decimals(void)
{
    static const struct {
        double v, step;
        enum evit_chart_unit kind;
        const char *want;
    } cases[] = {
        {200000, 0, EVIT_CHART_BYTES, "200 kB"}, {1.5e6, 0, EVIT_CHART_BYTES, "1.5 MB"},
        {512, 0, EVIT_CHART_BYTES, "512 B"},     {87.5, 2.5, EVIT_CHART_NUMBER, "87.5"},
        {90, 2.5, EVIT_CHART_NUMBER, "90.0"},    {0.5, 0, EVIT_CHART_NUMBER, "0.5"},
        {1.1e6, 1e5, EVIT_CHART_BYTES, "1.1 MB"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char b[32];
        evit_chart_tick_label(b, sizeof b, cases[i].v, cases[i].step, cases[i].kind);
        CHECK(strcmp(b, cases[i].want) == 0);
    }
}

static const struct evit_chart_point chain[] = {
    {4.8e6, 91.3, -1, "teacher"}, {8.2e5, 89.1, 0, "distill"}, {5.2e5, 88.4, 1, "prune"},
    {1.3e5, 88.2, 2, "quantize"}, {NAN, 80, 3, "lost"}};

static void a_chart_survives_a_png_round_trip(void)
{
    struct evit_chart_series s = {"chain 1", chain, 5};
    struct evit_chart_panel p = {"top-1 vs model size", "model size", "top-1 (%)", 1,
                                 EVIT_CHART_BYTES, &s, 1};
    CHECK(evit_chart_panel_points(&p) == 4); /* the NaN point is left out */
    struct evit_image img, back;
    evit_chart_render(&img, &p, 1, "a footnote");
    char path[512];
    snprintf(path, sizeof path, "%s/chart.png", test_tmpdir());
    REQUIRE(evit_chart_write_png(path, &p, 1, "a footnote") == EVIT_OK);
    REQUIRE(evit_png_read(path, 3, &back) == EVIT_OK);
    CHECK(back.w == img.w && back.h == img.h && back.c == 3);
    CHECK(memcmp(back.px, img.px, (size_t)img.w * (size_t)img.h * 3) == 0);
    /* a chart is mostly paper, with some ink and some colour */
    int ink = count_ink(&img), colour = 0;
    for (size_t i = 0; i < (size_t)img.w * (size_t)img.h; i++) {
        const uint8_t *q = img.px + 3 * i;
        colour += abs(q[0] - q[2]) > 60;
    }
    CHECK(ink > 2000 && ink < img.w * img.h / 5);
    CHECK(colour > 300);
    evit_image_free(&back);
    evit_image_free(&img);
}

static void two_panels_are_twice_as_wide_and_an_empty_panel_still_renders(void)
{
    struct evit_chart_series s = {"chain 1", chain, 5}, none = {"nothing", NULL, 0};
    struct evit_chart_panel p[2] = {
        {"a", "x", "y", 1, EVIT_CHART_BYTES, &s, 1},
        {"b", "x", "y", 0, EVIT_CHART_NUMBER, &none, 1}};
    struct evit_image one, two;
    evit_chart_render(&one, p, 1, NULL);
    evit_chart_render(&two, p, 2, NULL);
    CHECK(two.w == 2 * one.w && two.h == one.h);
    CHECK(evit_chart_panel_points(&p[1]) == 0);
    evit_image_free(&one);
    evit_image_free(&two);
}

static void writing_into_a_missing_folder_fails_and_leaves_nothing(void)
{
    struct evit_chart_series s = {"chain 1", chain, 5};
    struct evit_chart_panel p = {"t", "x", "y", 1, EVIT_CHART_BYTES, &s, 1};
    char path[512];
    snprintf(path, sizeof path, "%s/no/such/dir/c.png", test_tmpdir());
    fprintf(stderr, "  (an error line is expected next)\n");
    CHECK(evit_chart_write_png(path, &p, 1, NULL) == EVIT_ERR);
    FILE *f = fopen(path, "rb");
    CHECK(f == NULL);
    if (f) fclose(f);
}

int main(void)
{
    RUN(every_printable_character_has_a_glyph_and_only_space_is_blank);
    RUN(text_puts_ink_exactly_where_the_glyph_table_says);
    RUN(turned_text_is_the_upright_text_rotated_a_quarter_turn);
    RUN(drawing_off_the_canvas_is_clipped_not_a_crash);
    RUN(a_line_joins_its_end_points);
    RUN(linear_ticks_are_round_steps_inside_the_range);
    RUN(log_ticks_prefer_1_2_5_and_thin_out_wide_ranges);
    RUN(a_crowded_log_axis_labels_its_power_of_ten_first);
    RUN(tick_labels_use_si_prefixes_and_enough_decimals);
    RUN(a_chart_survives_a_png_round_trip);
    RUN(two_panels_are_twice_as_wide_and_an_empty_panel_still_renders);
    RUN(writing_into_a_missing_folder_fails_and_leaves_nothing);
    return test_summary();
}
