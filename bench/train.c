/* bench/train: training throughput (forward + backward + AdamW step) at
 * batch 64, 1 and 2 threads, for fm-tiny and fm-small (or the configs given).
 *
 *   bench/train [--batch N] [--seconds S] [--threads T] [CONFIG ...]
 *
 * --threads T measures T threads only (for profiling); by default 1 and 2.
 *
 * Labels-only loss (label smoothing 0.1), no augmentation: the same work as
 * one step of bench/torch_train.py, which bench/train.sh runs beside it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recipe.h"
#include "rng.h"
#include "train.h"
#include "util.h"
#include "vit.h"

static double measure(struct evit_trainer *t, const struct evit_recipe *r, const uint8_t *img, int B,
                      double seconds)
{
    evit_trainer_step(t, r, img, B, 0, 1e-4); /* warm-up */
    int iters = 0;
    double t0 = evit_now(), el;
    do {
        evit_trainer_step(t, r, img, B, 0, 1e-4);
        iters++;
        el = evit_now() - t0;
    } while (el < seconds);
    return (double)iters * B / el;
}

int main(int argc, char **argv)
{
    const char *names[16] = {"fm-tiny", "fm-small"};
    int n = 0, B = 64, only = 0;
    double seconds = 3.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            only = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            puts("usage: bench/train [--batch N] [--seconds S] [--threads T] [CONFIG ...]");
            return 0;
        } else if (n < 16)
            names[n++] = argv[i];
    }
    if (n == 0) n = 2;
    if (B < 1) B = 64;
    printf("%-10s %6s %16s %16s\n", "model", "batch", "1 thread img/s", "2 threads img/s");
    for (int k = 0; k < n; k++) {
        struct evit_recipe r;
        struct evit_vit m;
        struct evit_trainer t;
        struct evit_rng rng;
        memset(&r, 0, sizeof r);
        if (evit_config_load(names[k], &r.model) < 0) return 1;
        r.batch = B;
        r.label_smoothing = 0.1;
        r.kd = EVIT_KD_NONE;
        r.optim = (struct evit_optim_config){.type = EVIT_OPTIM_ADAMW, .lr = 1e-4, .weight_decay = 0.05,
                                             .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
        evit_vit_alloc(&m, &r.model);
        evit_vit_init(&m, 1);
        evit_trainer_init(&t, &m, &r, B);
        size_t bytes = (size_t)B * r.model.img_size * r.model.img_size * r.model.channels;
        uint8_t *img = evit_malloc(bytes);
        evit_rng_seed(&rng, 3);
        for (size_t i = 0; i < bytes; i++) img[i] = (uint8_t)evit_rng_next(&rng);
        for (int b = 0; b < B; b++) t.labels[b] = (int32_t)evit_rng_below(&rng, (uint64_t)r.model.classes);
        double ips[2] = {0.0, 0.0};
        for (int th = 1; th <= 2; th++) {
            if (only && th != only) continue;
            evit_set_threads(th);
            ips[th - 1] = measure(&t, &r, img, B, seconds);
        }
        printf("%-10s %6d %16.1f %16.1f\n", r.model.name, B, ips[0], ips[1]);
        fflush(stdout);
        free(img);
        evit_trainer_free(&t);
        evit_vit_free(&m);
    }
    return 0;
}
