/* test_eval.c: accuracy bookkeeping on logits whose answer is known. */
#include <string.h>

#include "config.h"
#include "dataset.h"
#include "eval.h"
#include "test.h"
#include "fixture.h"
#include "util.h"

static void top1_top5_confusion_and_loss_follow_the_logits(void)
{
    /* 3 images, 6 classes: image 0 right, image 1 wrong but true class
     * ranked 2nd, image 2 true class ranked last */
    float z[3 * 6] = {
        5, 1, 0, 0, 0, 0,
        0, 2, 3, 0, 0, 0,
        6, 5, 4, 3, 2, 1,
    };
    int32_t y[3] = {0, 1, 5};
    struct evit_eval_result r;
    memset(&r, 0, sizeof r);
    evit_eval_score(&r, z, y, 3, 6);
    CHECK_NEAR(r.top1, 100.0 / 3, 1e-9);
    CHECK_NEAR(r.top5, 200.0 / 3, 1e-9);
    CHECK(r.confusion[0 * 6 + 0] == 1 && r.confusion[1 * 6 + 2] == 1 && r.confusion[5 * 6 + 0] == 1);
    CHECK_NEAR(r.class_acc[0], 100.0, 1e-12);
    CHECK_NEAR(r.class_acc[1], 0.0, 1e-12);
    CHECK(isnan(r.class_acc[3]));
    /* mean of -log softmax at the true class, by hand */
    double l0 = log(exp(5.0) + exp(1.0) + 4.0) - 5.0;
    double l1 = log(1.0 + exp(2.0) + exp(3.0) + 3.0) - 2.0;
    double l2 = log(exp(6.0) + exp(5.0) + exp(4.0) + exp(3.0) + exp(2.0) + exp(1.0)) - 1.0;
    CHECK_NEAR(r.loss, (l0 + l1 + l2) / 3, 1e-6);
    evit_eval_result_free(&r);
}

struct fixed_model {
    int k;
};

/* A "model" that predicts the first pixel modulo k. */
static void first_pixel_model(void *ctx, const uint8_t *images, int B, float *logits)
{
    struct fixed_model *m = ctx;
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < m->k; j++) logits[b * m->k + j] = 0.0f;
        logits[b * m->k + images[b * 4] % m->k] = 1.0f;
    }
}

static void eval_run_covers_every_image_across_partial_batches(void)
{
    enum { N = 11, K = 3 };
    uint8_t img[N * 4];
    int32_t lab[N];
    for (int i = 0; i < N; i++) {
        img[i * 4] = (uint8_t)i;
        lab[i] = i % 2 ? i % K : 0; /* right for odd i and for multiples of 3 */
    }
    struct evit_dataset d = {.n = N, .h = 2, .w = 2, .c = 1, .classes = K, .images = img, .labels = lab};
    struct fixed_model m = {K};
    struct evit_eval_result r;
    REQUIRE(evit_eval_run(first_pixel_model, &m, 4, K, &d, 1, 0, &r) == 0);
    int right = 0;
    for (int i = 0; i < N; i++) right += lab[i] == i % K;
    CHECK_NEAR(r.top1, 100.0 * right / N, 1e-9);
    CHECK(r.logits != NULL && r.logits[10 * K + 10 % K] == 1.0f);
    evit_eval_result_free(&r);
}

/* ---------------------------------------------------------------- segmentation */

/* Three 16x16 images whose masks are all class i (image i), but for one
 * unlabelled pixel; a model of 2x2 patches that predicts class pick[i]
 * for image i everywhere (its image read back from the pointer). */
struct seg_fake {
    const struct evit_dataset *d;
    int pick[3];
};

static void seg_fake_model(void *ctx, const uint8_t *images, int B, float *logits)
{
    const struct seg_fake *f = ctx;
    for (int b = 0; b < B; b++) {
        int i = (int)((images - f->d->images) / (16 * 16)) + b;
        for (int p = 0; p < 4; p++)
            for (int k = 0; k < 3; k++) logits[((size_t)b * 4 + p) * 3 + k] = k == f->pick[i] ? 5.0f : 0.0f;
    }
}

static void segmentation_scores_follow_the_upsampled_patch_logits(void)
{
    static char n0[] = "background", n1[] = "person", n2[] = "car";
    static char *names[3] = {n0, n1, n2};
    uint8_t images[3 * 256] = {0}, masks[3 * 256];
    for (int i = 0; i < 3 * 256; i++) masks[i] = (uint8_t)(i / 256);
    masks[17] = 255;
    struct evit_dataset d = {.n = 3, .h = 16, .w = 16, .c = 1, .classes = 3, .class_names = names,
                             .images = images, .masks = masks, .ignore = 255};
    static const struct evit_block_shape b[] = {{1, 4, 4, 0}};
    struct evit_vit_config c = make_config("seg", 16, 1, 8, 3, 4, 1, b);
    c.head = EVIT_HEAD_SEG_LINEAR;
    struct seg_fake f = {&d, {0, 1, 2}};
    struct evit_seg_eval r;
    /* right everywhere, in batches of 2 and 1 */
    REQUIRE(evit_eval_seg_run(seg_fake_model, &f, 2, &c, &d, 0, NULL, &r) == 0);
    CHECK(r.n == 3 && r.k == 3 && evit_segmetric_pixels(&r.conf) == 3 * 256 - 1);
    CHECK_NEAR(r.score.miou, 1.0, 1e-12);
    CHECK_NEAR(r.score.dice, 1.0, 1e-12);
    CHECK_NEAR(r.score.pixel_acc, 1.0, 1e-12);
    /* softmax of (5, 0, 0): -log(e^5 / (e^5 + 2)) */
    CHECK_NEAR(r.loss, log(1.0 + 2.0 * exp(-5.0)), 1e-6);
    evit_seg_eval_free(&r);
    /* image 2 taken for the background: background IoU 255 / (255 + 256),
     * person 1, car 0, so mIoU (255/511 + 1 + 0) / 3; accuracy 511 / 767 */
    f.pick[2] = 0;
    REQUIRE(evit_eval_seg_run(seg_fake_model, &f, 3, &c, &d, 0, NULL, &r) == 0);
    CHECK_NEAR(r.iou[0], 255.0 / 511.0, 1e-12);
    CHECK_NEAR(r.iou[2], 0.0, 1e-12);
    CHECK_NEAR(r.score.miou, (255.0 / 511.0 + 1.0) / 3.0, 1e-12);
    CHECK_NEAR(r.score.pixel_acc, 511.0 / 767.0, 1e-12);
    evit_seg_eval_free(&r);
}

int main(void)
{
    RUN(top1_top5_confusion_and_loss_follow_the_logits);
    RUN(eval_run_covers_every_image_across_partial_batches);
    RUN(segmentation_scores_follow_the_upsampled_patch_logits);
    return test_summary();
}
