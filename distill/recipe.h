/* recipe.h: a training recipe (configs/fmnist/teacher.json, student.json).
 *
 *   { "model": "fm-small" | { inline model config },
 *     "epochs": 30, "batch_size": 128, "seed": 0,
 *     "optimizer": { "type": "adamw"|"sgd", "lr": 1e-3, "weight_decay": 0.05,
 *                    "betas": [0.9, 0.999], "eps": 1e-8,
 *                    "momentum": 0.9, "nesterov": false },
 *     "schedule": { "warmup_epochs": 1, "min_lr": 1e-5 },
 *     "clip_grad": 0,               0 = off, else max global L2 norm
 *     "label_smoothing": 0.1,
 *     "augment": { "crop_padding": 2, "hflip": true,
 *                  "erase": { "prob": 0.25, "area": [0.02, 0.33], "ratio": [0.3, 3.3] },
 *                  "seed": 0 },     the views' seed (evit-eval --augment); default: seed
 *     "distill": { "type": "soft"|"hard"|"none", "alpha": 0.5, "temperature": 4 },
 *     "profiles": { "full": { "epochs": 60, ... } } }
 *
 * Every key is optional except model (which --init can stand in for) and is
 * checked strictly.  A profile's keys override the top level (objects merge
 * key by key) when that profile is selected. */
#ifndef EVIT_RECIPE_H
#define EVIT_RECIPE_H

#include <cJSON.h>

#include "augment.h"
#include "config.h"
#include "optim.h"

enum evit_kd_type { EVIT_KD_NONE, EVIT_KD_SOFT, EVIT_KD_HARD };

struct evit_recipe {
    int has_model;
    struct evit_vit_config model;
    int epochs;
    int batch;
    long long seed;
    long long augment_seed; /* the seed of saved views (augment.seed, else seed) */
    int augment_seed_set;   /* 1 when augment.seed was given */
    struct evit_optim_config optim;
    double warmup_epochs;
    double min_lr;
    double clip_grad;
    double label_smoothing;
    struct evit_augment_config augment;
    enum evit_kd_type kd;
    double alpha;       /* weight of the hard-label loss */
    double temperature;
    cJSON *json;        /* the effective recipe (profile applied), for the report; owned */
};

/* Loads path with profile (NULL = none) applied. */
int evit_recipe_load(const char *path, const char *profile, struct evit_recipe *r);
void evit_recipe_free(struct evit_recipe *r);

const char *evit_recipe_kd_name(enum evit_kd_type t);

#endif
