/* test_scenes.c: composed segmentation scenes are deterministic per scene,
 * their masks agree with the pasted items, and bad input is refused. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dataset.h"
#include "scenes.h"
#include "test.h"
#include "util.h"

#define SRC_N 10
#define SRC_SIDE 8
#define SRC_PLANE (SRC_SIDE * SRC_SIDE)
#define THRESHOLD 24

/* Every item is the same 8x8 picture, so any draw of an item gives the
 * same pixels: a bright block (rows 1..6, columns 2..5) with a gradient,
 * ringed by faint pixels under the threshold, 0 elsewhere. */
static uint8_t src_pixel(int y, int x)
{
    if (y >= 1 && y <= 6 && x >= 2 && x <= 5) return (uint8_t)(120 + 15 * y + 5 * x);
    if (y >= 0 && y <= 7 && x >= 1 && x <= 6) return 20;
    return 0;
}

struct source {
    struct evit_dataset d;
    uint8_t images[SRC_N * SRC_PLANE];
    int32_t labels[SRC_N];
};

/* 3 classes, of which the labels use only 0 and 2: mask value 2 (class 1
 * plus one) must never appear. */
static void make_source(struct source *s)
{
    static char n0[] = "shirt", n1[] = "shoe", n2[] = "bag", name[] = "unit source";
    static char *names[3] = {n0, n1, n2};
    memset(s, 0, sizeof *s);
    for (int i = 0; i < SRC_N; i++) {
        for (int p = 0; p < SRC_PLANE; p++)
            s->images[i * SRC_PLANE + p] = src_pixel(p / SRC_SIDE, p % SRC_SIDE);
        s->labels[i] = i % 2 ? 2 : 0;
    }
    s->d.n = SRC_N;
    s->d.h = s->d.w = SRC_SIDE;
    s->d.c = 1;
    s->d.classes = 3;
    s->d.class_names = names;
    s->d.images = s->images;
    s->d.labels = s->labels;
    s->d.ignore = -1;
    s->d.source = name;
    evit_dataset_stats(&s->d);
}

static void small_opts(struct evit_scenes_opts *o, int count, uint64_t seed)
{
    evit_scenes_defaults(o);
    o->size = 32;
    o->count = count;
    o->seed = seed;
    o->threshold = THRESHOLD;
}

static size_t plane(const struct evit_dataset *d) { return (size_t)d->h * d->w; }

static void the_same_seed_gives_the_same_scenes_and_another_seed_others(void)
{
    struct source s;
    struct evit_scenes_opts o;
    struct evit_dataset a, b, c;
    make_source(&s);
    small_opts(&o, 4, 5);
    REQUIRE(evit_scenes_make(&a, &s.d, "src.h5", &o) == EVIT_OK);
    REQUIRE(evit_scenes_make(&b, &s.d, "src.h5", &o) == EVIT_OK);
    o.seed = 6;
    REQUIRE(evit_scenes_make(&c, &s.d, "src.h5", &o) == EVIT_OK);
    size_t n = plane(&a) * 4;
    CHECK(memcmp(a.images, b.images, n) == 0);
    CHECK(memcmp(a.masks, b.masks, n) == 0);
    CHECK(memcmp(a.images, c.images, n) != 0);
    CHECK(memcmp(a.masks, c.masks, n) != 0);
    evit_dataset_free(&a);
    evit_dataset_free(&b);
    evit_dataset_free(&c);
}

static void scene_i_is_the_same_whether_count_is_3_or_5(void)
{
    struct source s;
    struct evit_scenes_opts o;
    struct evit_dataset three, five;
    make_source(&s);
    small_opts(&o, 3, 11);
    REQUIRE(evit_scenes_make(&three, &s.d, "src.h5", &o) == EVIT_OK);
    o.count = 5;
    REQUIRE(evit_scenes_make(&five, &s.d, "src.h5", &o) == EVIT_OK);
    CHECK(three.n == 3 && five.n == 5);
    CHECK(memcmp(three.images, five.images, plane(&three) * 3) == 0);
    CHECK(memcmp(three.masks, five.masks, plane(&three) * 3) == 0);
    /* and the scenes are not one scene repeated */
    CHECK(memcmp(five.images, five.images + plane(&five), plane(&five)) != 0);
    CHECK(memcmp(five.images + 3 * plane(&five), five.images + 4 * plane(&five), plane(&five)) != 0);
    evit_dataset_free(&three);
    evit_dataset_free(&five);
}

static void masks_are_background_or_a_label_plus_one_over_bright_pixels(void)
{
    struct source s;
    struct evit_scenes_opts o;
    struct evit_dataset d;
    make_source(&s);
    small_opts(&o, 20, 3);
    REQUIRE(evit_scenes_make(&d, &s.d, "src.h5", &o) == EVIT_OK);
    CHECK(d.n == 20 && d.h == 32 && d.w == 32 && d.c == 1);
    CHECK(d.labels == NULL && d.masks != NULL && d.ignore == -1);
    REQUIRE(d.classes == 4);
    CHECK(strcmp(d.class_names[0], "background") == 0);
    CHECK(strcmp(d.class_names[1], "shirt") == 0);
    CHECK(strcmp(d.class_names[2], "shoe") == 0);
    CHECK(strcmp(d.class_names[3], "bag") == 0);
    CHECK(d.class_names[1] != s.d.class_names[0]); /* copies, owned by d */
    CHECK(d.source && strstr(d.source, "unit source") && strstr(d.source, "seed 3"));
    size_t count[256] = {0}, dark = 0;
    for (size_t p = 0; p < plane(&d) * (size_t)d.n; p++) {
        count[d.masks[p]]++;
        if (d.masks[p] && d.images[p] <= THRESHOLD) dark++;
    }
    /* labels 0 and 2 make mask values 1 and 3, and both occur */
    CHECK(count[1] > 0 && count[3] > 0 && count[0] > 0);
    CHECK(count[2] == 0);
    CHECK(count[0] + count[1] + count[3] == plane(&d) * (size_t)d.n);
    CHECK(dark == 0);
    CHECK(d.std[0] > 0.0f && d.mean[0] > 0.0f);
    evit_dataset_free(&d);
}

static void one_unscaled_item_covers_exactly_its_source_pixels_above_threshold(void)
{
    struct source s;
    struct evit_scenes_opts o;
    struct evit_dataset d;
    make_source(&s);
    small_opts(&o, 12, 9);
    o.min_items = o.max_items = 1;
    o.min_scale = o.max_scale = 1.0;
    REQUIRE(evit_scenes_make(&d, &s.d, "src.h5", &o) == EVIT_OK);
    size_t want = 0, want_sum = 0;
    for (int p = 0; p < SRC_PLANE; p++) {
        if (s.images[p] > THRESHOLD) {
            want++;
            want_sum += s.images[p];
        }
    }
    for (int i = 0; i < d.n; i++) {
        size_t got = 0, got_sum = 0;
        for (size_t p = 0; p < plane(&d); p++) {
            size_t q = (size_t)i * plane(&d) + p;
            if (!d.masks[q]) continue;
            got++;
            got_sum += d.images[q];
        }
        /* scale 1 samples every source pixel at its centre: values exact */
        CHECK(got == want);
        CHECK(got_sum == want_sum);
    }
    evit_dataset_free(&d);
}

static void the_background_is_a_smooth_texture_within_0_to_60(void)
{
    struct source s;
    struct evit_scenes_opts o;
    struct evit_dataset d;
    make_source(&s);
    small_opts(&o, 3, 21);
    o.size = 64;
    o.threshold = 254; /* the source's brightest pixel is 235: no item shows */
    REQUIRE(evit_scenes_make(&d, &s.d, "src.h5", &o) == EVIT_OK);
    int seen[256] = {0}, distinct = 0, hi = 0;
    size_t fg = 0, step = 0, steps = 0;
    for (int i = 0; i < d.n; i++) {
        const uint8_t *img = d.images + (size_t)i * plane(&d);
        for (int y = 0; y < d.h; y++) {
            for (int x = 0; x < d.w; x++) {
                int v = img[y * d.w + x];
                if (!seen[v]++) distinct++;
                if (v > hi) hi = v;
                if (x) {
                    step += (size_t)abs(v - img[y * d.w + x - 1]);
                    steps++;
                }
            }
        }
    }
    for (size_t p = 0; p < plane(&d) * (size_t)d.n; p++) fg += d.masks[p] != 0;
    CHECK(fg == 0);
    CHECK(hi <= 60);
    CHECK(distinct >= 30);
    /* value noise, not white noise: neighbours differ by a few levels (white
     * noise over [0, 60] would differ by about 20 on average) */
    CHECK(step < 4 * steps);
    evit_dataset_free(&d);
}

/* The bytes of a fixed draw, recorded once: every machine and libc must
 * make these same scenes (integer draws and arithmetic only), and a change
 * to the generator, which would silently change every dataset made from a
 * seed, fails here. */
static void a_fixed_seed_makes_the_recorded_bytes(void)
{
    struct source s;
    struct evit_scenes_opts o;
    struct evit_dataset d;
    make_source(&s);
    small_opts(&o, 4, 42);
    REQUIRE(evit_scenes_make(&d, &s.d, "src.h5", &o) == EVIT_OK);
    size_t n = plane(&d) * (size_t)d.n;
    uint64_t h = evit_fnv1a64(d.masks, n, evit_fnv1a64(d.images, n, EVIT_FNV_SEED));
    printf("# scenes fingerprint %016llx\n", (unsigned long long)h);
    CHECK(h == 0x7eaf2a82ed228a37ULL);
    evit_dataset_free(&d);
}

/* evit_scenes_make refuses, and leaves *out as it was. */
static int refused(const struct evit_dataset *src, const struct evit_scenes_opts *o)
{
    struct evit_dataset out;
    memset(&out, 0, sizeof out);
    out.n = 77;
    int rc = evit_scenes_make(&out, src, "src.h5", o);
    if (rc == EVIT_OK) evit_dataset_free(&out);
    return rc == EVIT_ERR && out.n == 77 && out.images == NULL;
}

static void bad_sources_are_refused(void)
{
    struct source s;
    struct evit_scenes_opts o;
    uint8_t mask[SRC_N * SRC_PLANE] = {0};
    small_opts(&o, 2, 1);

    make_source(&s);
    s.d.c = 3;
    CHECK(refused(&s.d, &o));

    make_source(&s);
    s.d.masks = mask;
    CHECK(refused(&s.d, &o));
    s.d.labels = NULL;
    CHECK(refused(&s.d, &o));
    s.d.masks = NULL; /* neither labels nor masks */
    CHECK(refused(&s.d, &o));

    /* round(8 * 1.75) = 14: a 13 px canvas is too small, 14 fits */
    make_source(&s);
    o.size = 13;
    CHECK(refused(&s.d, &o));
    o.size = 14;
    CHECK(!refused(&s.d, &o));
}

static void bad_options_are_refused(void)
{
    struct source s;
    struct evit_scenes_opts o;
    make_source(&s);
    small_opts(&o, 2, 1);
    CHECK(!refused(&s.d, &o));

#define REFUSED_WITH(field, value)                                                         \
    do {                                                                                   \
        small_opts(&o, 2, 1);                                                              \
        o.field = value;                                                                   \
        CHECK(refused(&s.d, &o));                                                          \
    } while (0)
    REFUSED_WITH(count, 0);
    REFUSED_WITH(size, 0);
    REFUSED_WITH(min_items, 0);
    REFUSED_WITH(min_items, 5); /* > max_items 4 */
    REFUSED_WITH(max_items, 17);
    REFUSED_WITH(min_scale, 0.0);
    REFUSED_WITH(min_scale, 2.0); /* > max_scale 1.75 */
    REFUSED_WITH(min_scale, NAN);
    REFUSED_WITH(max_scale, NAN);
    REFUSED_WITH(max_scale, INFINITY); /* no canvas holds it */
    REFUSED_WITH(threshold, -1);
    REFUSED_WITH(threshold, 255);
#undef REFUSED_WITH
}

int main(void)
{
    RUN(the_same_seed_gives_the_same_scenes_and_another_seed_others);
    RUN(scene_i_is_the_same_whether_count_is_3_or_5);
    RUN(masks_are_background_or_a_label_plus_one_over_bright_pixels);
    RUN(one_unscaled_item_covers_exactly_its_source_pixels_above_threshold);
    RUN(the_background_is_a_smooth_texture_within_0_to_60);
    RUN(a_fixed_seed_makes_the_recorded_bytes);
    RUN(bad_sources_are_refused);
    RUN(bad_options_are_refused);
    return test_summary();
}
