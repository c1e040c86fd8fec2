/* test_eval.c: accuracy bookkeeping on logits whose answer is known. */
#include <string.h>

#include "dataset.h"
#include "eval.h"
#include "test.h"
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

int main(void)
{
    RUN(top1_top5_confusion_and_loss_follow_the_logits);
    RUN(eval_run_covers_every_image_across_partial_batches);
    return test_summary();
}
