/* bench/forward: forward-pass throughput of the float ViT, batch 64, at 1
 * and 2 threads, for fm-tiny, fm-small and deit-tiny (or the configs given).
 *
 *   bench/forward [--batch N] [--seconds S] [CONFIG ...]
 *
 * Weights are random (evit_vit_init) and images random bytes: throughput
 * does not depend on the values. Each measurement runs one warm-up pass, then
 * repeats until S seconds (default 2) have passed and reports images/s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "rng.h"
#include "util.h"
#include "vit.h"

static double measure(const struct evit_vit *m, struct evit_vit_acts *a, const uint8_t *img,
                      int B, double seconds)
{
    evit_vit_forward(m, a, img, B); /* warm-up: page faults, BLAS buffers */
    int iters = 0;
    double t0 = evit_now(), t;
    do {
        evit_vit_forward(m, a, img, B);
        iters++;
        t = evit_now() - t0;
    } while (t < seconds);
    return (double)iters * B / t;
}

int main(int argc, char **argv)
{
    const char *defaults[] = {"fm-tiny", "fm-small", "deit-tiny"};
    const char *names[16];
    int n = 0, B = 64;
    double seconds = 2.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            puts("usage: bench/forward [--batch N] [--seconds S] [CONFIG ...]");
            return 0;
        } else if (n < 16)
            names[n++] = argv[i];
    }
    if (n == 0) {
        for (int i = 0; i < 3; i++) names[i] = defaults[i];
        n = 3;
    }
    if (B < 1) B = 64;
    printf("%-12s %6s %8s %14s %14s\n", "model", "batch", "MFLOPs", "1 thread img/s", "2 threads img/s");
    for (int k = 0; k < n; k++) {
        struct evit_vit_config cfg;
        struct evit_vit m;
        struct evit_vit_acts a;
        struct evit_rng rng;
        if (evit_config_load(names[k], &cfg) < 0) return 1;
        evit_vit_alloc(&m, &cfg);
        evit_vit_init(&m, 1);
        evit_vit_acts_alloc(&a, &cfg, B, 0);
        size_t bytes = (size_t)B * cfg.img_size * cfg.img_size * cfg.channels;
        uint8_t *img = evit_malloc(bytes);
        evit_rng_seed(&rng, 7);
        for (size_t i = 0; i < bytes; i++) img[i] = (uint8_t)evit_rng_next(&rng);
        double r[2];
        for (int t = 1; t <= 2; t++) {
            evit_set_threads(t);
            r[t - 1] = measure(&m, &a, img, B, seconds);
        }
        printf("%-12s %6d %8.1f %14.1f %14.1f\n", cfg.name, B, evit_config_mflops(&cfg), r[0], r[1]);
        fflush(stdout);
        free(img);
        evit_vit_acts_free(&a);
        evit_vit_free(&m);
    }
    return 0;
}
