/* test_segmetric.c: segmentation scores on masks whose answer is worked out
 * by hand. */
#include <stdint.h>
#include <string.h>

#include "segmetric.h"
#include "test.h"
#include "util.h"

#define CONF(m, t, p) ((m).conf[(size_t)(t) * (m).classes + (p)])

static void a_three_class_example_scores_as_computed_by_hand(void)
{
    /* truth 0 0 0 0 0 1 1 1 2 2
     * pred  0 0 0 1 2 1 1 0 2 2
     * confusion (row = truth):  [3 1 1]
     *                           [1 2 0]
     *                           [0 0 2]
     * class 0: TP 3, FP = col 4 - 3 = 1, FN = row 5 - 3 = 2
     *          IoU 3/6 = 1/2, Dice 6/9 = 2/3
     * class 1: TP 2, FP = col 3 - 2 = 1, FN = row 3 - 2 = 1
     *          IoU 2/4 = 1/2, Dice 4/6 = 2/3
     * class 2: TP 2, FP = col 3 - 2 = 1, FN = row 2 - 2 = 0
     *          IoU 2/3,       Dice 4/5
     * mIoU = (1/2 + 1/2 + 2/3) / 3 = 5/9, mean Dice = (2/3 + 2/3 + 4/5) / 3
     * = 32/45, pixel accuracy = trace 7 / 10 pixels */
    const uint8_t truth[10] = {0, 0, 0, 0, 0, 1, 1, 1, 2, 2};
    const uint8_t pred[10] = {0, 0, 0, 1, 2, 1, 1, 0, 2, 2};
    const uint64_t want[9] = {3, 1, 1, 1, 2, 0, 0, 0, 2};
    struct evit_segmetric m;
    struct evit_segscore s;
    double iou[3], dice[3];
    evit_segmetric_init(&m, 3, -1);
    REQUIRE(evit_segmetric_add(&m, truth, pred, 10) == EVIT_OK);
    CHECK(memcmp(m.conf, want, sizeof want) == 0);
    CHECK(evit_segmetric_pixels(&m) == 10);
    evit_segmetric_score(&m, &s, iou, dice);
    CHECK_NEAR(iou[0], 1.0 / 2, 1e-12);
    CHECK_NEAR(iou[1], 1.0 / 2, 1e-12);
    CHECK_NEAR(iou[2], 2.0 / 3, 1e-12);
    CHECK_NEAR(dice[0], 2.0 / 3, 1e-12);
    CHECK_NEAR(dice[1], 2.0 / 3, 1e-12);
    CHECK_NEAR(dice[2], 4.0 / 5, 1e-12);
    CHECK_NEAR(s.miou, 5.0 / 9, 1e-12);
    CHECK_NEAR(s.dice, 32.0 / 45, 1e-12);
    CHECK_NEAR(s.pixel_acc, 7.0 / 10, 1e-12);
    CHECK(s.present == 3);
    evit_segmetric_free(&m);
}

static void ignored_pixels_do_not_count_and_minus_one_ignores_nothing(void)
{
    /* pixels 2 and 4 are ignored, whatever their prediction (even one out
     * of range); the rest give conf[0][0] = 1, conf[1][1] = 1, conf[1][0] = 1 */
    const uint8_t truth[5] = {0, 1, 255, 1, 255};
    const uint8_t pred[5] = {0, 1, 0, 0, 200};
    struct evit_segmetric m;
    struct evit_segscore s;
    evit_segmetric_init(&m, 3, 255);
    REQUIRE(evit_segmetric_add(&m, truth, pred, 5) == EVIT_OK);
    CHECK(evit_segmetric_pixels(&m) == 3);
    CHECK(CONF(m, 0, 0) == 1 && CONF(m, 1, 1) == 1 && CONF(m, 1, 0) == 1);
    evit_segmetric_score(&m, &s, NULL, NULL);
    CHECK_NEAR(s.pixel_acc, 2.0 / 3, 1e-12);
    evit_segmetric_free(&m);

    /* ignore = -1: every pixel counts, and 255 is just out of range */
    const uint8_t all_truth[4] = {0, 1, 2, 2};
    const uint8_t all_pred[4] = {0, 1, 2, 0};
    evit_segmetric_init(&m, 3, -1);
    REQUIRE(evit_segmetric_add(&m, all_truth, all_pred, 4) == EVIT_OK);
    CHECK(evit_segmetric_pixels(&m) == 4);
    CHECK(CONF(m, 2, 0) == 1 && CONF(m, 2, 2) == 1);
    CHECK(evit_segmetric_add(&m, truth, pred, 5) == EVIT_ERR);
    CHECK(evit_segmetric_pixels(&m) == 4);
    evit_segmetric_free(&m);
}

static void an_absent_class_is_nan_and_left_out_but_a_predicted_only_class_scores_zero(void)
{
    /* 4 classes; truth 0 0 1 1, pred 0 2 1 1
     * class 0: TP 1, FP 0, FN 1: IoU 1/2, Dice 2/3
     * class 1: TP 2, FP 0, FN 0: IoU 1,   Dice 1
     * class 2: TP 0, FP 1, FN 0: IoU 0,   Dice 0  (predicted only: counts)
     * class 3: 0/0: NaN, left out
     * mIoU = (1/2 + 1 + 0) / 3 = 1/2, Dice = (2/3 + 1 + 0) / 3 = 5/9,
     * pixel accuracy 3/4 */
    const uint8_t truth[4] = {0, 0, 1, 1};
    const uint8_t pred[4] = {0, 2, 1, 1};
    struct evit_segmetric m;
    struct evit_segscore s;
    double iou[4], dice[4];
    evit_segmetric_init(&m, 4, -1);
    REQUIRE(evit_segmetric_add(&m, truth, pred, 4) == EVIT_OK);
    evit_segmetric_score(&m, &s, iou, dice);
    CHECK(isnan(iou[3]) && isnan(dice[3]));
    CHECK(iou[2] == 0.0 && dice[2] == 0.0);
    CHECK_NEAR(iou[0], 1.0 / 2, 1e-12);
    CHECK_NEAR(dice[0], 2.0 / 3, 1e-12);
    CHECK(s.present == 3);
    CHECK_NEAR(s.miou, 1.0 / 2, 1e-12);
    CHECK_NEAR(s.dice, 5.0 / 9, 1e-12);
    CHECK_NEAR(s.pixel_acc, 3.0 / 4, 1e-12);
    evit_segmetric_free(&m);
}

static void an_empty_matrix_scores_nan_with_no_class_present(void)
{
    struct evit_segmetric m;
    struct evit_segscore s;
    double iou[2];
    evit_segmetric_init(&m, 2, -1);
    evit_segmetric_score(&m, &s, iou, NULL);
    CHECK(s.present == 0);
    CHECK(isnan(s.miou) && isnan(s.dice) && isnan(s.pixel_acc));
    CHECK(isnan(iou[0]) && isnan(iou[1]));
    evit_segmetric_free(&m);
}

static void a_perfect_prediction_scores_one_everywhere(void)
{
    uint8_t truth[100];
    for (int i = 0; i < 100; i++) truth[i] = (uint8_t)(i * 7 % 5);
    struct evit_segmetric m;
    struct evit_segscore s;
    evit_segmetric_init(&m, 6, -1);
    REQUIRE(evit_segmetric_add(&m, truth, truth, 100) == EVIT_OK);
    evit_segmetric_score(&m, &s, NULL, NULL);
    CHECK(s.miou == 1.0 && s.dice == 1.0 && s.pixel_acc == 1.0);
    CHECK(s.present == 5); /* class 5 is in neither */
    evit_segmetric_free(&m);
}

static void merging_two_halves_equals_adding_everything_to_one(void)
{
    enum { N = 1000, K = 7 };
    uint8_t truth[N], pred[N];
    uint64_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        truth[i] = (uint8_t)((x >> 33) % (K + 1)); /* K: the ignored value */
        pred[i] = (uint8_t)((x >> 45) % K);
    }
    struct evit_segmetric whole, a, b;
    evit_segmetric_init(&whole, K, K);
    evit_segmetric_init(&a, K, K);
    evit_segmetric_init(&b, K, K);
    REQUIRE(evit_segmetric_add(&whole, truth, pred, N) == EVIT_OK);
    REQUIRE(evit_segmetric_add(&a, truth, pred, 400) == EVIT_OK);
    REQUIRE(evit_segmetric_add(&b, truth + 400, pred + 400, N - 400) == EVIT_OK);
    evit_segmetric_merge(&a, &b);
    CHECK(memcmp(a.conf, whole.conf, sizeof *a.conf * K * K) == 0);
    CHECK(evit_segmetric_pixels(&a) == evit_segmetric_pixels(&whole));
    CHECK(evit_segmetric_pixels(&whole) > 0 && evit_segmetric_pixels(&whole) < N);
    evit_segmetric_free(&whole);
    evit_segmetric_free(&a);
    evit_segmetric_free(&b);
}

static void an_out_of_range_value_is_an_error_and_counts_nothing(void)
{
    /* the bad value is last, after pixels that would have counted */
    const uint8_t ok_truth[4] = {0, 1, 2, 1};
    const uint8_t ok_pred[4] = {0, 2, 2, 1};
    const uint8_t bad_truth[4] = {0, 1, 2, 3};
    const uint8_t bad_pred[4] = {0, 1, 2, 3};
    struct evit_segmetric m;
    uint64_t before[9];
    evit_segmetric_init(&m, 3, 255);
    REQUIRE(evit_segmetric_add(&m, ok_truth, ok_pred, 4) == EVIT_OK);
    memcpy(before, m.conf, sizeof before);
    CHECK(evit_segmetric_add(&m, bad_truth, ok_pred, 4) == EVIT_ERR);
    CHECK(memcmp(before, m.conf, sizeof before) == 0);
    CHECK(evit_segmetric_add(&m, ok_truth, bad_pred, 4) == EVIT_ERR);
    CHECK(memcmp(before, m.conf, sizeof before) == 0);
    CHECK(evit_segmetric_pixels(&m) == 4);
    evit_segmetric_free(&m);
}

static void argmax_breaks_ties_to_the_lowest_class_and_nan_never_wins(void)
{
    const float z[6 * 3] = {
        1, 3, 3,                   /* tie: 1 */
        5, 5, 5,                   /* tie: 0 */
        NAN, 0, -1,                /* NaN first: 1 */
        2, NAN, 5,                 /* NaN between: 2 */
        NAN, -INFINITY, -INFINITY, /* -inf beats NaN: 1 */
        NAN, NAN, NAN,             /* all NaN: 0 */
    };
    const uint8_t want[6] = {1, 0, 1, 2, 1, 0};
    uint8_t pred[6];
    memset(pred, 99, sizeof pred);
    CHECK(evit_segmetric_argmax(pred, z, 6, 3) == EVIT_OK);
    CHECK(memcmp(pred, want, sizeof want) == 0);
}

int main(void)
{
    RUN(a_three_class_example_scores_as_computed_by_hand);
    RUN(ignored_pixels_do_not_count_and_minus_one_ignores_nothing);
    RUN(an_absent_class_is_nan_and_left_out_but_a_predicted_only_class_scores_zero);
    RUN(an_empty_matrix_scores_nan_with_no_class_present);
    RUN(a_perfect_prediction_scores_one_everywhere);
    RUN(merging_two_halves_equals_adding_everything_to_one);
    RUN(an_out_of_range_value_is_an_error_and_counts_nothing);
    RUN(argmax_breaks_ties_to_the_lowest_class_and_nan_never_wins);
    return test_summary();
}
