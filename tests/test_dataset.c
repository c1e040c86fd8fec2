/* test_dataset.c: datasets (classification and segmentation) and logits
 * files round-trip and refuse mismatches. */
#include <stdio.h>
#include <string.h>

#include "dataset.h"
#include "h5.h"
#include "logits.h"
#include "test.h"
#include "util.h"

static void make_dataset(struct evit_dataset *d, int n, int classes)
{
    static char n0[] = "cat", n1[] = "dog", n2[] = "owl", n3[] = "eel", src[] = "unit test";
    static char *names[4] = {n0, n1, n2, n3};
    memset(d, 0, sizeof *d);
    d->n = n;
    d->h = 3;
    d->w = 3;
    d->c = 2;
    d->classes = classes;
    d->class_names = names;
    d->images = evit_malloc((size_t)n * 18);
    d->labels = evit_malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n * 18; i++) d->images[i] = (uint8_t)(i * 37 + 11);
    for (int i = 0; i < n; i++) d->labels[i] = i % classes;
    d->source = src;
    evit_dataset_stats(d);
}

static void release(struct evit_dataset *d)
{
    free(d->images);
    free(d->labels);
}

static void dataset_round_trip_keeps_pixels_labels_names_and_statistics(void)
{
    struct evit_dataset d, back;
    char path[512];
    make_dataset(&d, 7, 4);
    snprintf(path, sizeof path, "%s/d.h5", test_tmpdir());
    REQUIRE(evit_dataset_save(&d, path) == 0);
    REQUIRE(evit_dataset_load(path, &back) == 0);
    CHECK(back.n == 7 && back.h == 3 && back.w == 3 && back.c == 2 && back.classes == 4);
    CHECK(memcmp(back.images, d.images, 7 * 18) == 0);
    CHECK(memcmp(back.labels, d.labels, 7 * sizeof(int32_t)) == 0);
    CHECK(strcmp(back.class_names[2], "owl") == 0);
    CHECK(strcmp(back.source, "unit test") == 0);
    CHECK(back.mean[1] == d.mean[1] && back.std[0] == d.std[0]);
    CHECK(evit_dataset_fingerprint(&back) == evit_dataset_fingerprint(&d));
    evit_dataset_free(&back);
    release(&d);
}

static void statistics_are_mean_and_std_of_pixels_over_255(void)
{
    struct evit_dataset d;
    uint8_t px[4] = {0, 255, 0, 255};
    int32_t lab[2] = {0, 1};
    memset(&d, 0, sizeof d);
    d.n = 2;
    d.h = 1;
    d.w = 2;
    d.c = 1;
    d.images = px;
    d.labels = lab;
    evit_dataset_stats(&d);
    CHECK_NEAR(d.mean[0], 0.5, 1e-7);
    CHECK_NEAR(d.std[0], 0.5, 1e-7);
}

static void a_label_outside_the_classes_is_refused_on_save(void)
{
    struct evit_dataset d;
    char path[512];
    make_dataset(&d, 5, 3);
    d.labels[2] = 3;
    snprintf(path, sizeof path, "%s/bad.h5", test_tmpdir());
    CHECK(evit_dataset_save(&d, path) == EVIT_ERR);
    d.labels[2] = -1;
    CHECK(evit_dataset_save(&d, path) == EVIT_ERR);
    release(&d);
}

static void fingerprint_depends_on_label_order(void)
{
    struct evit_dataset d;
    make_dataset(&d, 6, 3);
    uint64_t a = evit_dataset_fingerprint(&d);
    int32_t t = d.labels[0];
    d.labels[0] = d.labels[1];
    d.labels[1] = t;
    CHECK(evit_dataset_fingerprint(&d) != a);
    release(&d);
}

static void logits_round_trip_and_match_only_their_own_dataset(void)
{
    struct evit_dataset d, other;
    struct evit_logits l;
    char path[512];
    float z[6 * 3];
    for (int i = 0; i < 18; i++) z[i] = (float)i * 0.5f - 3.0f;
    make_dataset(&d, 6, 3);
    snprintf(path, sizeof path, "%s/l.h5", test_tmpdir());
    REQUIRE(evit_logits_save(path, z, 6, 3, evit_dataset_fingerprint(&d), "d.h5", "m.h5", 87.5) == 0);
    REQUIRE(evit_logits_load(path, &l) == 0);
    CHECK(l.n == 6 && l.k == 3 && memcmp(l.logits, z, sizeof z) == 0);
    CHECK(l.top1 == 87.5 && strcmp(l.model, "m.h5") == 0);
    CHECK(evit_logits_check(&l, path, &d, "d.h5") == 0);
    make_dataset(&other, 6, 3);
    other.labels[0] = 2;
    CHECK(evit_logits_check(&l, path, &other, "other.h5") == EVIT_ERR);
    release(&other);
    make_dataset(&other, 5, 3);
    CHECK(evit_logits_check(&l, path, &other, "other.h5") == EVIT_ERR);
    release(&other);
    make_dataset(&other, 6, 4);
    CHECK(evit_logits_check(&l, path, &other, "other.h5") == EVIT_ERR);
    release(&other);
    evit_logits_free(&l);
    release(&d);
}

static void a_checkpoint_is_not_taken_for_a_dataset(void)
{
    struct evit_dataset d, back;
    char path[512];
    float z[2 * 4] = {0};
    make_dataset(&d, 2, 4);
    snprintf(path, sizeof path, "%s/l2.h5", test_tmpdir());
    REQUIRE(evit_logits_save(path, z, 2, 4, 1, NULL, NULL, NAN) == 0);
    CHECK(evit_dataset_load(path, &back) == EVIT_ERR);
    release(&d);
}


/* A 2-image segmentation dataset of 3x4 RGB with masks in {0, 1, 2} and
 * one unlabelled pixel (255). */
static void make_seg(struct evit_dataset *d)
{
    static char n0[] = "background", n1[] = "person", n2[] = "tree", src[] = "seg test";
    static char *names[3] = {n0, n1, n2};
    memset(d, 0, sizeof *d);
    d->n = 2;
    d->h = 3;
    d->w = 4;
    d->c = 3;
    d->classes = 3;
    d->class_names = names;
    d->ignore = 255;
    d->images = evit_malloc(2 * 3 * 4 * 3);
    d->masks = evit_malloc(2 * 3 * 4);
    for (int i = 0; i < 72; i++) d->images[i] = (uint8_t)(i * 29 + 3);
    for (int i = 0; i < 24; i++) d->masks[i] = (uint8_t)(i % 3);
    d->masks[5] = 255;
    d->source = src;
    evit_dataset_stats(d);
}

static void a_segmentation_dataset_round_trips_pixel_for_pixel(void)
{
    struct evit_dataset d, back;
    char path[512];
    make_seg(&d);
    snprintf(path, sizeof path, "%s/seg.h5", test_tmpdir());
    REQUIRE(evit_dataset_save(&d, path) == 0);
    REQUIRE(evit_dataset_load_task(path, &back, EVIT_TASK_SEGMENT) == 0);
    CHECK(back.n == 2 && back.h == 3 && back.w == 4 && back.c == 3 && back.classes == 3);
    CHECK(back.labels == NULL && back.masks != NULL && back.ignore == 255);
    CHECK(evit_dataset_task(&back) == EVIT_TASK_SEGMENT);
    CHECK(memcmp(back.images, d.images, 72) == 0);
    CHECK(back.masks && memcmp(back.masks, d.masks, 24) == 0);
    CHECK(strcmp(back.class_names[1], "person") == 0);
    CHECK(evit_dataset_fingerprint(&back) == evit_dataset_fingerprint(&d));
    evit_dataset_free(&back);
    REQUIRE(evit_dataset_load_header_task(path, &back, EVIT_TASK_SEGMENT | EVIT_TASK_CLASSIFY) == 0);
    CHECK(back.masks == NULL && back.images == NULL && back.h == 3 && back.ignore == 255);
    evit_dataset_free(&back);
    free(d.images);
    free(d.masks);
}

static void each_task_is_refused_where_the_other_is_needed(void)
{
    struct evit_dataset seg, cls, back;
    char sp[512], cp[512];
    make_seg(&seg);
    make_dataset(&cls, 4, 2);
    snprintf(sp, sizeof sp, "%s/seg2.h5", test_tmpdir());
    snprintf(cp, sizeof cp, "%s/cls2.h5", test_tmpdir());
    REQUIRE(evit_dataset_save(&seg, sp) == 0 && evit_dataset_save(&cls, cp) == 0);
    CHECK(evit_dataset_load(sp, &back) < 0);
    CHECK(evit_dataset_load_header(sp, &back) < 0);
    CHECK(evit_dataset_load_task(cp, &back, EVIT_TASK_SEGMENT) < 0);
    REQUIRE(evit_dataset_load_task(cp, &back, EVIT_TASK_SEGMENT | EVIT_TASK_CLASSIFY) == 0);
    CHECK(back.labels != NULL && back.masks == NULL && evit_dataset_task(&back) == EVIT_TASK_CLASSIFY);
    evit_dataset_free(&back);
    free(seg.images);
    free(seg.masks);
    release(&cls);
}

static void a_mask_value_outside_the_classes_or_a_class_as_ignore_is_refused_on_save(void)
{
    struct evit_dataset d, back;
    char path[512];
    make_seg(&d);
    snprintf(path, sizeof path, "%s/badseg.h5", test_tmpdir());
    d.masks[7] = 3; /* neither a class nor the ignore value */
    CHECK(evit_dataset_save(&d, path) < 0);
    d.masks[7] = 1;
    d.ignore = -1; /* pixel 5 holds 255, now no longer an ignore value */
    CHECK(evit_dataset_save(&d, path) < 0);
    d.ignore = 2; /* a class cannot be the ignore value */
    CHECK(evit_dataset_save(&d, path) < 0);
    CHECK(evit_dataset_load_task(path, &back, EVIT_TASK_SEGMENT) < 0); /* nothing was written */
    free(d.images);
    free(d.masks);
}

static void the_fingerprint_of_a_segmentation_dataset_follows_its_masks(void)
{
    struct evit_dataset d;
    make_seg(&d);
    uint64_t a = evit_dataset_fingerprint(&d);
    d.masks[23] = (uint8_t)(d.masks[23] == 1 ? 2 : 1);
    CHECK(evit_dataset_fingerprint(&d) != a);
    free(d.images);
    free(d.masks);
}

static void per_patch_logits_round_trip_with_their_grid(void)
{
    struct evit_dataset d;
    struct evit_logits l;
    char path[512];
    make_seg(&d);
    float z[2 * 4 * 3];
    for (int i = 0; i < 24; i++) z[i] = (float)i / 7.0f - 1.0f;
    snprintf(path, sizeof path, "%s/grid.h5", test_tmpdir());
    REQUIRE(evit_logits_save_grid(path, z, 2, 2, 3, evit_dataset_fingerprint(&d), "seg.h5", "m.h5") == 0);
    REQUIRE(evit_logits_load(path, &l) == 0);
    CHECK(l.n == 2 && l.k == 3 && l.grid == 2 && l.topk == 0 && l.views.epochs == 0);
    CHECK(memcmp(l.logits, z, sizeof z) == 0);
    CHECK(evit_logits_check(&l, path, &d, "seg.h5") == 0);
    d.masks[0] = 2; /* other masks: another fingerprint */
    CHECK(evit_logits_check(&l, path, &d, "seg.h5") < 0);
    evit_logits_free(&l);
    free(d.images);
    free(d.masks);
}

int main(void)
{
    evit_h5_quiet();
    RUN(dataset_round_trip_keeps_pixels_labels_names_and_statistics);
    RUN(statistics_are_mean_and_std_of_pixels_over_255);
    RUN(a_label_outside_the_classes_is_refused_on_save);
    RUN(fingerprint_depends_on_label_order);
    RUN(logits_round_trip_and_match_only_their_own_dataset);
    RUN(a_checkpoint_is_not_taken_for_a_dataset);
    RUN(a_segmentation_dataset_round_trips_pixel_for_pixel);
    RUN(each_task_is_refused_where_the_other_is_needed);
    RUN(a_mask_value_outside_the_classes_or_a_class_as_ignore_is_refused_on_save);
    RUN(the_fingerprint_of_a_segmentation_dataset_follows_its_masks);
    RUN(per_patch_logits_round_trip_with_their_grid);
    return test_summary();
}
