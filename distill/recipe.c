/* recipe.c: see recipe.h. */
#include "recipe.h"

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "util.h"

const char *evit_recipe_kd_name(enum evit_kd_type t)
{
    return t == EVIT_KD_SOFT ? "soft" : t == EVIT_KD_HARD ? "hard" : "none";
}

static void defaults(struct evit_recipe *r)
{
    memset(r, 0, sizeof *r);
    r->epochs = 10;
    r->batch = 128;
    r->optim = (struct evit_optim_config){.type = EVIT_OPTIM_ADAMW, .lr = 1e-3, .weight_decay = 0.05,
                                          .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .momentum = 0.9};
    r->warmup_epochs = 1.0;
    r->min_lr = 1e-5;
    r->kd = EVIT_KD_NONE;
    r->alpha = 0.5;
    r->temperature = 1.0;
}

/* Overrides dst's members with src's; objects merge one level down. */
static void merge(cJSON *dst, const cJSON *src)
{
    for (const cJSON *it = src->child; it; it = it->next) {
        cJSON *old = cJSON_GetObjectItemCaseSensitive(dst, it->string);
        if (old && cJSON_IsObject(old) && cJSON_IsObject(it)) {
            merge(old, it);
        } else {
            cJSON_DeleteItemFromObjectCaseSensitive(dst, it->string);
            cJSON_AddItemToObject(dst, it->string, cJSON_Duplicate(it, 1));
        }
    }
}

static int parse_optimizer(const cJSON *o, const char *file, struct evit_optim_config *c)
{
    static const char *const keys[] = {"type", "lr", "weight_decay", "betas", "eps", "momentum",
                                       "nesterov", NULL};
    static const char *const optim_names[] = {"adamw", "sgd", NULL};
    static const int optim_values[] = {EVIT_OPTIM_ADAMW, EVIT_OPTIM_SGD};
    int type = (int)c->type;
    if (!o) return EVIT_OK;
    if (evit_json_check_keys(o, file, "optimizer", keys) < 0 ||
        evit_json_get_choice(o, file, "optimizer", "type", optim_names, optim_values, &type) < 0 ||
        evit_json_get_double(o, file, "optimizer", "lr", 0, 0.0, 10.0, &c->lr) < 0 ||
        evit_json_get_double(o, file, "optimizer", "weight_decay", 0, 0.0, 10.0, &c->weight_decay) < 0 ||
        evit_json_get_double(o, file, "optimizer", "eps", 0, 0.0, 1.0, &c->eps) < 0 ||
        evit_json_get_double(o, file, "optimizer", "momentum", 0, 0.0, 0.999999, &c->momentum) < 0 ||
        evit_json_get_bool(o, file, "optimizer", "nesterov", 0, &c->nesterov) < 0)
        return EVIT_ERR;
    c->type = (enum evit_optim_type)type;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "betas");
    if (b) {
        if (!cJSON_IsArray(b) || cJSON_GetArraySize(b) != 2 ||
            !cJSON_IsNumber(cJSON_GetArrayItem(b, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(b, 1)))
            return evit_error("%s: optimizer.betas: must be an array of two numbers", file);
        c->beta1 = cJSON_GetArrayItem(b, 0)->valuedouble;
        c->beta2 = cJSON_GetArrayItem(b, 1)->valuedouble;
        if (c->beta1 < 0 || c->beta1 >= 1 || c->beta2 < 0 || c->beta2 >= 1)
            return evit_error("%s: optimizer.betas: each must be in [0, 1)", file);
    }
    if (c->lr <= 0.0) return evit_error("%s: optimizer.lr: must be positive", file);
    return EVIT_OK;
}

static int parse_distill(const cJSON *o, const char *file, struct evit_recipe *r)
{
    static const char *const keys[] = {"type", "alpha", "temperature", NULL};
    static const char *const kd_names[] = {"soft", "hard", "none", NULL};
    static const int kd_values[] = {EVIT_KD_SOFT, EVIT_KD_HARD, EVIT_KD_NONE};
    int type = (int)r->kd;
    if (!o) return EVIT_OK;
    if (evit_json_check_keys(o, file, "distill", keys) < 0 ||
        evit_json_get_choice(o, file, "distill", "type", kd_names, kd_values, &type) < 0 ||
        evit_json_get_double(o, file, "distill", "alpha", 0, 0.0, 1.0, &r->alpha) < 0 ||
        evit_json_get_double(o, file, "distill", "temperature", 0, 0.05, 100.0, &r->temperature) < 0)
        return EVIT_ERR;
    r->kd = (enum evit_kd_type)type;
    return EVIT_OK;
}

/* key: [lo, hi] with min <= lo <= hi <= max (min < lo when open_min). */
static int get_range(const cJSON *o, const char *file, const char *where, const char *key, double min, int open_min,
                     double max, double out[2])
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return EVIT_OK;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(v, 0)) ||
        !cJSON_IsNumber(cJSON_GetArrayItem(v, 1)))
        return evit_error("%s: %s.%s: must be an array of two numbers [lo, hi]", file, where, key);
    double lo = cJSON_GetArrayItem(v, 0)->valuedouble, hi = cJSON_GetArrayItem(v, 1)->valuedouble;
    if (!(open_min ? lo > min : lo >= min) || !(lo <= hi) || !(hi <= max))
        return evit_error("%s: %s.%s: [%g, %g] must satisfy %g %s lo <= hi <= %g", file, where, key, lo, hi, min,
                          open_min ? "<" : "<=", max);
    out[0] = lo;
    out[1] = hi;
    return EVIT_OK;
}

/* "erase": {"prob": p, "area": [lo, hi], "ratio": [lo, hi]} (augment.h);
 * the ranges default to the paper's. */
static int parse_erase(const cJSON *e, const char *file, struct evit_augment_config *a)
{
    static const char *const keys[] = {"prob", "area", "ratio", NULL};
    a->erase_area[0] = EVIT_ERASE_AREA_LO;
    a->erase_area[1] = EVIT_ERASE_AREA_HI;
    a->erase_ratio[0] = EVIT_ERASE_RATIO_LO;
    a->erase_ratio[1] = EVIT_ERASE_RATIO_HI;
    if (!e) return EVIT_OK;
    if (!cJSON_IsObject(e)) return evit_error("%s: augment.erase: must be an object", file);
    if (evit_json_check_keys(e, file, "augment.erase", keys) < 0 ||
        evit_json_get_double(e, file, "augment.erase", "prob", 1, 0.0, 1.0, &a->erase_prob) < 0 ||
        get_range(e, file, "augment.erase", "area", 0.0, 1, 1.0, a->erase_area) < 0 ||
        get_range(e, file, "augment.erase", "ratio", 0.0, 1, 100.0, a->erase_ratio) < 0)
        return EVIT_ERR;
    return EVIT_OK;
}

static int parse(const cJSON *j, const char *file, struct evit_recipe *r)
{
    static const char *const keys[] = {"model", "epochs", "batch_size", "seed", "optimizer",
                                       "schedule", "clip_grad", "label_smoothing", "augment",
                                       "distill", "profiles", "description", NULL};
    static const char *const skeys[] = {"warmup_epochs", "min_lr", NULL};
    static const char *const akeys[] = {"crop_padding", "hflip", "erase", "seed", NULL};
    double seed = 0, aseed = -1;
    const char *desc = NULL;
    if (evit_json_check_keys(j, file, "", keys) < 0 ||
        evit_json_get_string(j, file, "", "description", 0, &desc) < 0 ||
        evit_json_get_int(j, file, "", "epochs", 0, 0, 100000, &r->epochs) < 0 ||
        evit_json_get_int(j, file, "", "batch_size", 0, 1, 65536, &r->batch) < 0 ||
        evit_json_get_double(j, file, "", "seed", 0, 0, 9007199254740991.0, &seed) < 0 ||
        evit_json_get_double(j, file, "", "clip_grad", 0, 0.0, 1e6, &r->clip_grad) < 0 ||
        evit_json_get_double(j, file, "", "label_smoothing", 0, 0.0, 0.99, &r->label_smoothing) < 0 ||
        parse_optimizer(cJSON_GetObjectItemCaseSensitive(j, "optimizer"), file, &r->optim) < 0 ||
        parse_distill(cJSON_GetObjectItemCaseSensitive(j, "distill"), file, r) < 0)
        return EVIT_ERR;
    r->seed = (long long)seed;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "schedule");
    if (s && (evit_json_check_keys(s, file, "schedule", skeys) < 0 ||
              evit_json_get_double(s, file, "schedule", "warmup_epochs", 0, 0.0, 1e5, &r->warmup_epochs) < 0 ||
              evit_json_get_double(s, file, "schedule", "min_lr", 0, 0.0, 10.0, &r->min_lr) < 0))
        return EVIT_ERR;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "augment");
    if (a && (evit_json_check_keys(a, file, "augment", akeys) < 0 ||
              evit_json_get_int(a, file, "augment", "crop_padding", 0, 0, 64, &r->augment.crop_padding) < 0 ||
              evit_json_get_bool(a, file, "augment", "hflip", 0, &r->augment.hflip) < 0 ||
              parse_erase(cJSON_GetObjectItemCaseSensitive(a, "erase"), file, &r->augment) < 0 ||
              evit_json_get_double(a, file, "augment", "seed", 0, 0, 9007199254740991.0, &aseed) < 0))
        return EVIT_ERR;
    r->augment_seed_set = aseed >= 0;
    r->augment_seed = aseed >= 0 ? (long long)aseed : r->seed;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (m) {
        if (cJSON_IsString(m)) {
            if (evit_config_load(m->valuestring, &r->model) < 0) return EVIT_ERR;
        } else if (cJSON_IsObject(m)) {
            if (evit_config_from_json(m, file, "model", &r->model) < 0) return EVIT_ERR;
        } else {
            return evit_error("%s: model: must be a config name or an object", file);
        }
        r->has_model = 1;
    }
    if (r->min_lr > r->optim.lr)
        return evit_error("%s: schedule.min_lr: %g is above optimizer.lr %g", file, r->min_lr, r->optim.lr);
    return EVIT_OK;
}

int evit_recipe_load(const char *path, const char *profile, struct evit_recipe *r)
{
    cJSON *root = NULL;
    defaults(r);
    if (evit_json_load(path, &root) < 0) return EVIT_ERR;
    cJSON *profiles = cJSON_DetachItemFromObjectCaseSensitive(root, "profiles");
    if (profiles && !cJSON_IsObject(profiles)) {
        cJSON_Delete(profiles);
        cJSON_Delete(root);
        return evit_error("%s: profiles: must be an object of named overrides", path);
    }
    if (profile) {
        const cJSON *p = profiles ? cJSON_GetObjectItemCaseSensitive(profiles, profile) : NULL;
        if (!p || !cJSON_IsObject(p)) {
            evit_error("%s: profiles: has no profile '%s'", path, profile);
            cJSON_Delete(profiles);
            cJSON_Delete(root);
            return EVIT_ERR;
        }
        if (cJSON_GetObjectItemCaseSensitive(p, "profiles")) {
            cJSON_Delete(profiles);
            cJSON_Delete(root);
            return evit_error("%s: profiles.%s: a profile cannot hold profiles", path, profile);
        }
        merge(root, p);
    }
    cJSON_Delete(profiles);
    if (parse(root, path, r) < 0) {
        cJSON_Delete(root);
        return EVIT_ERR;
    }
    r->json = root;
    return EVIT_OK;
}

void evit_recipe_free(struct evit_recipe *r)
{
    cJSON_Delete(r->json);
    r->json = NULL;
}
