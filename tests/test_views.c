/* test_views.c: consistent distillation.  A view depends on (seed, epoch,
 * index) alone; the teacher logits evit-eval saves for views round-trip
 * through the logits file; and the batches evit-distill trains on replay
 * exactly the pixels and logits of those views.  A segmentation teacher's
 * views (top-k per patch, read an epoch at a time) round-trip, replay the
 * pixels and masks with the teacher's probabilities within the 16-bit
 * rounding, and a corrupt file of them is refused in one line. */
#include "test.h"
#include "fixture.h"

#include <unistd.h>

#include "augment.h"
#include "dataset.h"
#include "h5.h"
#include "eval.h"
#include "logits.h"
#include "recipe.h"
#include "train.h"

static const struct evit_augment_config aug = {
    .crop_padding = 2, .hflip = 1, .erase_prob = 0.5, .erase_area = {0.02, 0.33}, .erase_ratio = {0.3, 3.3}};

static void a_view_depends_on_seed_epoch_and_index_alone(void)
{
    struct evit_vit_config c = tiny_config();
    uint8_t *img = random_images(&c, 4, 1), a[8 * 8 * 2], b[8 * 8 * 2];
    size_t n = sizeof a;
    int differ_epoch = 0, differ_seed = 0;
    for (int i = 0; i < 4; i++) {
        evit_augment_view(a, img + i * n, 8, 8, 2, &aug, 7, 3, i);
        evit_augment_view(b, img + i * n, 8, 8, 2, &aug, 7, 3, i);
        CHECK(!memcmp(a, b, n));
        evit_augment_view(b, img + i * n, 8, 8, 2, &aug, 7, 4, i);
        differ_epoch += memcmp(a, b, n) != 0;
        evit_augment_view(b, img + i * n, 8, 8, 2, &aug, 8, 3, i);
        differ_seed += memcmp(a, b, n) != 0;
    }
    CHECK(differ_epoch > 0);
    CHECK(differ_seed > 0);
    free(img);
}

/* A dataset of N images of c's shape with labels i mod classes. */
static void make_data(struct evit_dataset *d, const struct evit_vit_config *c, int N)
{
    memset(d, 0, sizeof *d);
    d->n = N, d->h = d->w = c->img_size, d->c = c->channels, d->classes = c->classes;
    d->images = random_images(c, N, 5);
    d->labels = evit_malloc(sizeof(int32_t) * (size_t)N);
    for (int i = 0; i < N; i++) d->labels[i] = i % c->classes;
}

/* A soft-distillation recipe for c in batches of B, run seed `seed`,
 * replaying views of augmentation a seeded 11. */
static struct evit_recipe views_recipe(const struct evit_vit_config *c, int B, int seed,
                                       const struct evit_augment_config *a)
{
    struct evit_recipe r;
    memset(&r, 0, sizeof r);
    r.model = *c, r.batch = B, r.seed = seed, r.augment_seed = 11, r.augment = *a, r.kd = EVIT_KD_SOFT;
    r.optim = (struct evit_optim_config){.type = EVIT_OPTIM_ADAMW, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    return r;
}

static void replayed_views_are_the_pixels_and_logits_the_teacher_saw(void)
{
    struct evit_vit_config c = tiny_config();
    struct evit_vit teacher, student;
    struct evit_dataset d;
    struct evit_vit_runner run;
    struct evit_logits l;
    struct evit_recipe r;
    struct evit_trainer t;
    const int N = 12, E = 3, B = 4, K = c.classes;
    make_data(&d, &c, N);
    evit_vit_alloc(&teacher, &c);
    evit_vit_init(&teacher, 2);
    evit_vit_runner_init(&run, &teacher, B);
    float *views = evit_malloc(sizeof(float) * (size_t)E * N * K), *plain = evit_calloc((size_t)N * K, sizeof(float));
    REQUIRE(evit_eval_views(evit_vit_runner_forward, &run, B, K, &d, &aug, 11, E, 0, views) == 0);
    struct evit_logit_views v = {.epochs = E, .topk = 0, .seed = 11, .aug = aug};
    double bytes;
    const char *path = test_path("views.h5");
    REQUIRE(evit_logits_save_views(path, plain, N, K, evit_dataset_fingerprint(&d), NULL, NULL, 50.0, views, &v,
                                   &bytes) == 0);
    CHECK(bytes == 4.0 * K);
    REQUIRE(evit_logits_load(path, &l) == 0);
    CHECK(l.views.epochs == E && l.views.seed == 11 && evit_augment_same(&l.views.aug, &aug));
    CHECK(!memcmp(l.views.logits, views, sizeof(float) * (size_t)E * N * K));

    /* the student's batches: epoch 4 replays view 1 */
    r = views_recipe(&c, B, 11, &aug);
    CHECK(evit_train_check_views(&r, &l, path, "r.json") == 0);
    evit_vit_alloc(&student, &c);
    evit_trainer_init(&t, &student, &r, N);
    for (int i = 0; i < N; i++) t.order[i] = i;
    struct evit_train_opts o = {.recipe = &r, .train = &d, .teacher = &l};
    float *z = evit_malloc(sizeof(float) * (size_t)B * K);
    int same_pixels = 1, same_logits = 1;
    for (int s = 0; s < N; s += B) {
        const uint8_t *x = evit_train_batch(&t, &o, 4, s, B);
        size_t img = (size_t)c.img_size * c.img_size * c.channels;
        for (int b = 0; b < B; b++) {
            uint8_t want[8 * 8 * 2];
            evit_augment_view(want, d.images + (size_t)(s + b) * img, 8, 8, 2, &aug, 11, 1, s + b);
            same_pixels &= !memcmp(x + (size_t)b * img, want, img);
        }
        /* the teacher on the replayed batch gives the saved view logits, bit for bit */
        evit_vit_runner_forward(&run, x, B, z);
        same_logits &= !memcmp(z, views + ((size_t)1 * N + s) * K, sizeof(float) * (size_t)B * K);
        same_logits &= !memcmp(t.tlogits, z, sizeof(float) * (size_t)B * K);
    }
    CHECK(same_pixels);
    CHECK(same_logits);
    free(z);
    evit_trainer_free(&t);
    evit_vit_free(&student);

    /* another augmentation or seed is refused */
    r.augment.crop_padding = 4;
    CHECK(evit_train_check_views(&r, &l, path, "r.json") < 0);
    r.augment = aug;
    r.augment.erase_prob = 0.25;
    CHECK(evit_train_check_views(&r, &l, path, "r.json") < 0);
    r.augment.erase_prob = 0;
    CHECK(evit_train_check_views(&r, &l, path, "r.json") < 0);
    r.augment = aug;
    r.augment.erase_area[1] = 0.4;
    CHECK(evit_train_check_views(&r, &l, path, "r.json") < 0);
    r.augment = aug;
    r.augment_seed = 12;
    CHECK(evit_train_check_views(&r, &l, path, "r.json") < 0);
    /* another run seed (initialisation, order) with the views' augment seed is fine */
    r.seed = 12;
    r.augment_seed = 11;
    CHECK(evit_train_check_views(&r, &l, path, "r.json") == 0);
    evit_logits_free(&l);
    free(views);
    free(plain);
    evit_vit_runner_free(&run);
    evit_vit_free(&teacher);
    free(d.images);
    free(d.labels);
}

static void top_k_views_take_three_bytes_a_class_and_keep_the_ranking(void)
{
    const int N = 5, E = 2, K = 10, k = 4;
    float views[2 * 5 * 10], plain[5 * 10] = {0};
    for (int i = 0; i < E * N * K; i++) views[i] = (float)((i * 7) % 11) / 3.0f;
    struct evit_logit_views v = {.epochs = E, .topk = k, .seed = 3, .aug = {.crop_padding = 1}};
    double bytes;
    struct evit_logits l;
    const char *path = test_path("topk-views.h5");
    REQUIRE(evit_logits_save_views(path, plain, N, K, 99, NULL, NULL, 50.0, views, &v, &bytes) == 0);
    CHECK(bytes == 3.0 * k);
    REQUIRE(evit_logits_load(path, &l) == 0);
    CHECK(l.views.topk == k && l.views.epochs == E);
    for (int r = 0; r < E * N; r++) {
        const float *z = views + r * K, *q = l.views.logits + r * K;
        int best = 0, qbest = 0;
        for (int j = 1; j < K; j++) {
            if (z[j] > z[best]) best = j;
            if (q[j] > q[qbest]) qbest = j;
        }
        CHECK(best == qbest);
    }
    evit_logits_free(&l);
}


/* ---------------------------------------------------------------- segmentation views */

/* A made-up model's per-patch logits of view e: distinct in every row. */
static float pattern(int e, size_t row, int j) { return (float)(3.0 * sin(1.3 * e + 0.7 * (double)row + 1.11 * j)); }

struct pattern_ctx {
    size_t rows; /* n g^2 */
    int k;
};

static int pattern_epoch(void *ctx, int e, float *out)
{
    const struct pattern_ctx *c = ctx;
    for (size_t r = 0; r < c->rows; r++)
        for (int j = 0; j < c->k; j++) out[r * c->k + j] = pattern(e, r, j);
    return EVIT_OK;
}

/* p = softmax(z) (k classes) in double, and its kk most probable classes
 * by decreasing probability (ties: the lower class), as evit-eval keeps. */
static void softmax_top(double *p, int *top, const float *z, int k, int kk)
{
    double mx = (double)z[0], sum = 0.0;
    int taken[512] = {0};
    for (int j = 1; j < k; j++) mx = (double)z[j] > mx ? (double)z[j] : mx;
    for (int j = 0; j < k; j++) sum += p[j] = exp((double)z[j] - mx);
    for (int j = 0; j < k; j++) p[j] /= sum;
    for (int t = 0; t < kk; t++) {
        int best = -1;
        for (int j = 0; j < k; j++)
            if (!taken[j] && (best < 0 || p[j] > p[best])) best = j;
        taken[best] = 1;
        top[t] = best;
    }
}

/* The stored form of that top-k: indices and round(p * 65535). */
static void expected_topk(uint16_t *idx, uint16_t *val, const float *z, int k, int kk)
{
    double p[512];
    int top[8];
    softmax_top(p, top, z, k, kk);
    for (int t = 0; t < kk; t++) {
        idx[t] = (uint16_t)top[t];
        val[t] = (uint16_t)lrint(p[top[t]] * 65535.0);
    }
}

/* n images of a g x g grid, K classes, E epochs of top-kk views into path. */
static int save_pattern_views(const char *path, int n, int g, int K, int E, int kk, double *bytes)
{
    size_t rows = (size_t)n * g * g;
    float *plain = evit_calloc(rows * (size_t)K, sizeof(float));
    struct evit_logit_views v = {.epochs = E, .topk = kk, .seed = 0x1234abcdULL, .aug = {.crop_padding = 3, .hflip = 1}};
    struct pattern_ctx c = {rows, K};
    int rc = evit_logits_save_grid_views(path, plain, n, g, K, 77, "d.h5", "m.h5", &v, pattern_epoch, &c, bytes);
    free(plain);
    return rc;
}

static void grid_views_round_trip_their_top_k_indices_values_and_attributes(void)
{
    /* 5 classes: byte indices; 300: 16-bit ones */
    const int cases[2][5] = {{3, 2, 5, 3, 2}, {2, 1, 300, 2, 3}}; /* n, g, K, E, k */
    for (int t = 0; t < 2; t++) {
        int n = cases[t][0], g = cases[t][1], K = cases[t][2], E = cases[t][3], kk = cases[t][4];
        size_t gg = (size_t)g * g, rows = (size_t)n * gg;
        const char *path = test_path(t ? "grid-views-300.h5" : "grid-views.h5");
        double bytes = 0;
        struct evit_logits l;
        REQUIRE(save_pattern_views(path, n, g, K, E, kk, &bytes) == 0);
        CHECK(bytes == (K <= 256 ? 3.0 : 4.0) * kk * (double)gg);
        hid_t f;
        REQUIRE(evit_h5_open(path, &f) == 0);
        int64_t d4[4] = {E, n, (int64_t)gg, kk};
        CHECK(evit_h5_check(f, path, "views/topk/indices", K <= 256 ? H5T_NATIVE_UINT8 : H5T_NATIVE_UINT16, 4, d4) == 0);
        CHECK(evit_h5_check(f, path, "views/topk/values", H5T_NATIVE_UINT16, 4, d4) == 0);
        CHECK(!evit_h5_exists(f, "views/logits"));
        H5Fclose(f);
        REQUIRE(evit_logits_load(path, &l) == 0);
        CHECK(l.n == n && l.k == K && l.grid == g && l.fingerprint == 77);
        CHECK(l.views.epochs == E && l.views.topk == kk && l.views.seed == 0x1234abcdULL);
        CHECK(l.views.aug.crop_padding == 3 && l.views.aug.hflip == 1 && !(l.views.aug.erase_prob > 0));
        CHECK(l.views.logits == NULL && l.views.held == 0); /* compact: one epoch, the first */
        float *row = evit_malloc(sizeof(float) * gg * (size_t)K), *z = evit_malloc(sizeof(float) * (size_t)K);
        int same = 1;
        for (int e = E - 1; e >= 0; e--) { /* backwards: every epoch is read again */
            REQUIRE(evit_logits_view_rows(&l, e, n - 1, row) == 0);
            CHECK(l.views.held == e);
            for (size_t r = 0; r < rows; r++) {
                uint16_t wi[8], wv[8];
                for (int j = 0; j < K; j++) z[j] = pattern(e, r, j);
                expected_topk(wi, wv, z, K, kk);
                same &= !memcmp(l.views.idx + r * kk, wi, sizeof(uint16_t) * kk) &&
                        !memcmp(l.views.val + r * kk, wv, sizeof(uint16_t) * kk);
            }
        }
        CHECK(same);
        free(row);
        free(z);
        evit_logits_free(&l);
    }
}

/* A segmentation dataset of N images of c's shape: pixels 1..255 (so a
 * 0 can only be padding), mask = channel 0 mod classes, ignore 255. */
static void make_seg_data(struct evit_dataset *d, const struct evit_vit_config *c, int N)
{
    size_t hw = (size_t)c->img_size * c->img_size;
    memset(d, 0, sizeof *d);
    d->n = N, d->h = d->w = c->img_size, d->c = c->channels, d->classes = c->classes, d->ignore = 255;
    d->images = random_images(c, N, 9);
    d->masks = evit_malloc(hw * (size_t)N);
    for (size_t p = 0; p < hw * (size_t)N; p++) {
        for (int ch = 0; ch < c->channels; ch++)
            if (!d->images[p * c->channels + ch]) d->images[p * c->channels + ch] = 1;
        d->masks[p] = (uint8_t)(d->images[p * c->channels] % c->classes);
    }
}

struct teacher_ctx {
    struct evit_vit_runner *run;
    const struct evit_dataset *d;
    const struct evit_logit_views *v;
    size_t row;
    int batch;
};

/* What evit-eval does for a segmentation teacher's views. */
static int teacher_epoch(void *ctx, int e, float *out)
{
    const struct teacher_ctx *t = ctx;
    return evit_eval_view_epoch(evit_vit_runner_forward, t->run, t->batch, t->row, t->d, &t->v->aug, t->v->seed, e, out);
}

static void a_segmentation_teacher_s_replayed_views_are_the_pixels_masks_and_probabilities_it_saw(void)
{
    struct evit_vit_config c = tiny_config(); /* 8x8, patch 4: a 2x2 grid, 5 classes */
    c.head = EVIT_HEAD_SEG_LINEAR;
    struct evit_dataset d;
    struct evit_vit teacher, student;
    struct evit_vit_runner run;
    struct evit_trainer t;
    struct evit_logits l;
    const int N = 12, E = 3, B = 4, K = c.classes, kk = 2, gg = 4, S = c.img_size, C = c.channels;
    const struct evit_augment_config crop = {.crop_padding = 3, .hflip = 1};
    make_seg_data(&d, &c, N);
    evit_vit_alloc(&teacher, &c);
    evit_vit_init(&teacher, 2);
    randomise_params(&teacher, 4, 0.0, 0.3, 0.1); /* opinions that differ from patch to patch */
    evit_vit_runner_init(&run, &teacher, B);
    float *plain = evit_calloc((size_t)N * gg * K, sizeof(float));
    struct evit_logit_views v = {.epochs = E, .topk = kk, .seed = 11, .aug = crop};
    struct teacher_ctx tc = {&run, &d, &v, (size_t)gg * K, B};
    double bytes;
    const char *path = test_path("seg-views.h5");
    REQUIRE(evit_logits_save_grid_views(path, plain, N, 2, K, evit_dataset_fingerprint(&d), NULL, NULL, &v,
                                        teacher_epoch, &tc, &bytes) == 0);
    CHECK(bytes == 3.0 * kk * gg);
    REQUIRE(evit_logits_load(path, &l) == 0);
    CHECK(evit_logits_check(&l, path, &d, "seg.h5") == 0);

    struct evit_recipe r = views_recipe(&c, B, 5, &crop);
    CHECK(evit_train_check_views(&r, &l, path, "r.json") == 0);
    evit_vit_alloc(&student, &c);
    evit_trainer_init(&t, &student, &r, N);
    for (int i = 0; i < N; i++) t.order[N - 1 - i] = i; /* another order than the teacher's */
    struct evit_train_opts o = {.recipe = &r, .train = &d, .teacher = &l};
    float *z = evit_malloc(sizeof(float) * (size_t)B * gg * K);
    int same_pixels = 1, masks_follow = 1, moved = 0, flipped_or_shifted = 0;
    double worst = 0.0;
    size_t img = (size_t)S * S * C, hw = (size_t)S * S;
    for (int s = 0; s < N; s += B) {
        const uint8_t *x = evit_train_batch(&t, &o, 4, s, B); /* epoch 4 replays view 1 */
        REQUIRE(x != NULL);
        for (int b = 0; b < B; b++) {
            int i = t.order[s + b];
            uint8_t want[8 * 8 * 2];
            evit_augment_view(want, d.images + (size_t)i * img, S, S, C, &crop, 11, 1, i);
            same_pixels &= !memcmp(x + (size_t)b * img, want, img);
            moved += memcmp(want, d.images + (size_t)i * img, img) != 0;
            /* the mask moved with its pixels: the class of what the pixel
             * shows, or unlabelled where the view reaches outside the image */
            for (size_t p = 0; p < hw; p++) {
                const uint8_t *px = x + (size_t)b * img + p * C;
                uint8_t m = t.masks[(size_t)b * hw + p];
                masks_follow &= px[0] == 0 ? m == 255 : m == px[0] % K;
                flipped_or_shifted += m != d.masks[(size_t)i * hw + p];
            }
        }
        /* the teacher on the replayed batch: the saved top-k, within the
         * 16-bit rounding, and the rest spread evenly */
        evit_vit_runner_forward(&run, x, B, z);
        for (size_t row = 0; row < (size_t)B * gg; row++) {
            const float *q = t.tlogits + row * K;
            double p[8], kept = 0.0;
            int top[8], is_top[8] = {0};
            softmax_top(p, top, z + row * K, K, kk);
            for (int a = 0; a < kk; a++) {
                is_top[top[a]] = 1;
                kept += p[top[a]];
            }
            for (int j = 0; j < K; j++) {
                double want = is_top[j] ? p[j] : (1.0 - kept) / (K - kk);
                double err = fabs(exp((double)q[j]) - want);
                worst = err > worst ? err : worst;
            }
        }
    }
    CHECK(same_pixels);
    CHECK(masks_follow);
    CHECK(moved > 0 && flipped_or_shifted > 0); /* the views are not the images */
    /* each kept probability is off by at most 1/131070, the rest by k/131070 over K - k */
    CHECK(worst <= 1.0 / 131070 * (1.0 + (double)kk / (K - kk)) + 1e-6);
    printf("# largest difference from the teacher's probabilities: %.2e\n", worst);
    free(z);
    evit_trainer_free(&t);
    evit_vit_free(&student);
    evit_logits_free(&l);
    free(plain);
    evit_vit_runner_free(&run);
    evit_vit_free(&teacher);
    free(d.images);
    free(d.masks);
}

/* Loads path with stderr captured: refused, with one line naming the file
 * and containing want. */
static int refused_with(const char *path, const char *want)
{
    char out[600], line[512] = "", prefix[560];
    struct evit_logits l;
    int lines = 0;
    snprintf(out, sizeof out, "%s/stderr.txt", test_tmpdir());
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(out, "w");
    if (!f || saved < 0) return 0;
    dup2(fileno(f), 2);
    int rc = evit_logits_load(path, &l);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(f);
    if (rc == 0) evit_logits_free(&l);
    f = fopen(out, "r");
    if (f) {
        char more[512];
        if (fgets(line, sizeof line, f)) lines++;
        while (fgets(more, sizeof more, f)) lines++;
        fclose(f);
    }
    snprintf(prefix, sizeof prefix, "error: %s: ", path);
    int ok = rc < 0 && lines == 1 && !strncmp(line, prefix, strlen(prefix)) && strstr(line, want);
    if (!ok) fprintf(stderr, "  %s: rc %d, %d lines, '%s', wanted '%s'\n", path, rc, lines, line, want);
    return ok;
}

/* Entry `at` of a top-k set (read and written as uint16) set to value. */
static void poke(const char *path, const char *name, size_t at, uint16_t value)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    uint16_t buf[2 * 3 * 4 * 2];
    EVIT_ASSERT(f >= 0);
    EVIT_ASSERT(evit_h5_read_rows(f, path, name, H5T_NATIVE_UINT16, 0, 2, buf) == 0);
    buf[at] = value;
    EVIT_ASSERT(evit_h5_write_rows(f, path, name, H5T_NATIVE_UINT16, 0, 2, buf) == 0);
    H5Fclose(f);
}

/* Dataset name replaced by one of type and shape dims, zeros. */
static void replace(const char *path, const char *name, hid_t type, const int64_t *dims)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    int32_t zeros[2 * 3 * 4 * 3] = {0};
    EVIT_ASSERT(f >= 0);
    H5Ldelete(f, name, H5P_DEFAULT);
    EVIT_ASSERT(evit_h5_write(f, path, name, type, 4, dims, zeros) == 0);
    H5Fclose(f);
}

static void corrupt_grid_views_are_refused_in_one_line(void)
{
    /* 3 images of 2x2 patches, 5 classes, 2 epochs of top-2: rows of 2 entries */
    const size_t last = 2 * 3 * 4 * 2 - 2; /* the first entry of epoch 1's last row */
    const int64_t bad_k[4] = {2, 3, 4, 3}, bad_n[4] = {2, 2, 4, 2}, good[4] = {2, 3, 4, 2};
    double bytes;
    char *path;
    struct {
        const char *file, *want;
    } cases[] = {
        {"out-of-range.h5", "views/topk/indices row 23 holds 5: out of range or repeated"},
        {"repeated.h5", "views/topk/indices row 0 holds 1: out of range or repeated"},
        {"mass.h5", "views/topk/values row 12 sums to 2.0000, more than 1"},
        {"shape-k.h5", "views/topk/values has shape (2, 3, 4, 3), expected (2, 3, 4, 2)"},
        {"shape-n.h5", "views/topk/indices has shape (2, 2, 4, 2), expected (2, 3, 4, 2)"},
        {"type.h5", "views/topk/indices is not of type uint8"},
        {"dense.h5", "a segmentation model's views must be top-k"},
        {"erase.h5", "a segmentation model's views cannot have random erasing"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        path = test_path(cases[c].file);
        REQUIRE(save_pattern_views(path, 3, 2, 5, 2, 2, &bytes) == 0);
    }
    poke(test_path("out-of-range.h5"), "views/topk/indices", last + 1, 5);
    poke(test_path("repeated.h5"), "views/topk/indices", 0, 1);
    poke(test_path("repeated.h5"), "views/topk/indices", 1, 1);
    poke(test_path("mass.h5"), "views/topk/values", 24, 65535);
    poke(test_path("mass.h5"), "views/topk/values", 25, 65535);
    replace(test_path("shape-k.h5"), "views/topk/values", H5T_NATIVE_UINT16, bad_k);
    replace(test_path("shape-n.h5"), "views/topk/indices", H5T_NATIVE_UINT8, bad_n);
    replace(test_path("type.h5"), "views/topk/indices", H5T_NATIVE_INT32, good);
    hid_t f = H5Fopen(test_path("dense.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    int zero = 0;
    evit_h5_attr_write_ints(f, "views_topk", &zero, 1);
    H5Fclose(f);
    f = H5Fopen(test_path("erase.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    double er[5] = {0.5, 0.02, 0.33, 0.3, 3.3};
    evit_h5_attr_write_doubles(f, "views_erase", er, 5);
    H5Fclose(f);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) CHECK(refused_with(test_path(cases[c].file), cases[c].want));
}

int main(void)
{
    evit_set_threads(1);
    evit_h5_quiet();
    RUN(a_view_depends_on_seed_epoch_and_index_alone);
    RUN(replayed_views_are_the_pixels_and_logits_the_teacher_saw);
    RUN(top_k_views_take_three_bytes_a_class_and_keep_the_ranking);
    RUN(grid_views_round_trip_their_top_k_indices_values_and_attributes);
    RUN(a_segmentation_teacher_s_replayed_views_are_the_pixels_masks_and_probabilities_it_saw);
    RUN(corrupt_grid_views_are_refused_in_one_line);
    return test_summary();
}
