/* config.c: see config.h. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "head.h"
#include "json.h"
#include "merge.h"
#include "util.h"

int evit_config_grid(const struct evit_vit_config *c) { return c->img_size / c->patch; }
int evit_config_patches(const struct evit_vit_config *c)
{
    int g = evit_config_grid(c);
    return g * g;
}
int evit_config_tokens(const struct evit_vit_config *c) { return evit_config_patches(c) + 1; }
int evit_config_patch_in(const struct evit_vit_config *c)
{
    return c->channels * c->patch * c->patch;
}
int evit_config_inner(const struct evit_vit_config *c, int l)
{
    return c->blocks[l].heads * c->blocks[l].head_dim;
}

int evit_config_tokens_at(const struct evit_vit_config *c, int l)
{
    int T = evit_config_tokens(c);
    for (int k = 0; k < l && k < c->depth; k++) T -= c->blocks[k].merge_r;
    return T;
}

int evit_config_merges(const struct evit_vit_config *c)
{
    for (int l = 0; l < c->depth; l++)
        if (c->blocks[l].merge_r) return 1;
    return 0;
}

static const char *const head_names[] = {"class", "seg_linear", "seg_mlp", NULL};
static const int head_values[] = {EVIT_HEAD_CLASS, EVIT_HEAD_SEG_LINEAR, EVIT_HEAD_SEG_MLP};

int evit_config_head_rows(const struct evit_vit_config *c)
{
    return evit_head_is_seg(c->head) ? evit_config_patches(c) : 1;
}

const char *evit_config_head_name(int head)
{
    EVIT_ASSERT(head >= 0 && head <= EVIT_HEAD_SEG_MLP);
    return head_names[head];
}

void evit_config_decoder_defaults(struct evit_vit_config *c)
{
    int L = c->depth < EVIT_DECODER_MAX_LEVELS ? c->depth : EVIT_DECODER_MAX_LEVELS;
    c->decoder_dim = c->dim / 2 > 0 ? c->dim / 2 : 1;
    c->decoder_nlevels = L;
    memset(c->decoder_levels, 0, sizeof c->decoder_levels);
    /* evenly spaced, the last block last: (i + 1) depth / L - 1 */
    for (int i = 0; i < L; i++) c->decoder_levels[i] = (i + 1) * c->depth / L - 1;
}

int evit_config_levels(const struct evit_vit_config *c, int *levels)
{
    switch (c->head) {
    case EVIT_HEAD_SEG_LINEAR: levels[0] = c->depth - 1; return 1;
    case EVIT_HEAD_SEG_MLP:
        memcpy(levels, c->decoder_levels, sizeof(int) * (size_t)c->decoder_nlevels);
        return c->decoder_nlevels;
    }
    return 0;
}

/* seg_mlp's width and levels (config.h); the other heads have none. */
static int validate_decoder(const struct evit_vit_config *c, const char *where)
{
    int L = c->decoder_nlevels;
    const int *lv = c->decoder_levels;
    if (c->head != EVIT_HEAD_SEG_MLP) {
        if (c->decoder_dim || L)
            return evit_error("%s: decoder_dim, decoder_levels: only a seg_mlp head has a decoder (this one is %s)",
                              where, evit_config_head_name(c->head));
        return EVIT_OK;
    }
    if (c->decoder_dim < 1 || c->decoder_dim > 16384)
        return evit_error("%s: decoder_dim %d out of range [1, 16384]", where, c->decoder_dim);
    if (L < 1 || L > EVIT_DECODER_MAX_LEVELS)
        return evit_error("%s: decoder_levels: %d levels, must be 1 to %d", where, L, EVIT_DECODER_MAX_LEVELS);
    for (int i = 0; i < L; i++) {
        if (lv[i] < 0 || lv[i] >= c->depth)
            return evit_error("%s: decoder_levels: %d is not a block (0 to %d)", where, lv[i], c->depth - 1);
        if (i && lv[i] <= lv[i - 1])
            return evit_error("%s: decoder_levels: %d after %d: the blocks must be strictly increasing", where,
                              lv[i], lv[i - 1]);
    }
    if (lv[L - 1] != c->depth - 1)
        return evit_error("%s: decoder_levels: the last level must be the last block, %d, not %d", where,
                          c->depth - 1, lv[L - 1]);
    return EVIT_OK;
}

int evit_config_head_parse(const char *s)
{
    for (int i = 0; head_names[i]; i++)
        if (strcmp(s, head_names[i]) == 0) return head_values[i];
    return -1;
}

int evit_config_validate(const struct evit_vit_config *c, const char *where)
{
    if (c->head < EVIT_HEAD_CLASS || c->head > EVIT_HEAD_SEG_MLP)
        return evit_error("%s: unknown head %d", where, c->head);
    if (c->img_size < 1 || c->img_size > 4096)
        return evit_error("%s: img_size %d out of range [1, 4096]", where, c->img_size);
    if (c->channels < 1 || c->channels > 4)
        return evit_error("%s: channels %d out of range [1, 4]", where, c->channels);
    if (c->patch < 1 || c->patch > c->img_size || c->img_size % c->patch != 0)
        return evit_error("%s: patch %d must divide img_size %d", where, c->patch, c->img_size);
    if (c->classes < 2 || c->classes > 100000)
        return evit_error("%s: num_classes %d out of range [2, 100000]", where, c->classes);
    if (c->dim < 1 || c->dim > 16384)
        return evit_error("%s: embed_dim %d out of range [1, 16384]", where, c->dim);
    if (c->depth < 1 || c->depth > EVIT_MAX_DEPTH)
        return evit_error("%s: depth %d out of range [1, %d]", where, c->depth, EVIT_MAX_DEPTH);
    for (int l = 0; l < c->depth; l++) {
        const struct evit_block_shape *b = &c->blocks[l];
        if (b->heads < 1 || b->heads > 1024)
            return evit_error("%s: block %d: num_heads %d out of range [1, 1024]", where, l, b->heads);
        if (b->head_dim < 1 || b->head_dim > 4096)
            return evit_error("%s: block %d: head_dim %d out of range [1, 4096]", where, l, b->head_dim);
        if (b->mlp < 1 || b->mlp > 65536)
            return evit_error("%s: block %d: mlp_hidden %d out of range [1, 65536]", where, l, b->mlp);
        int T = evit_config_tokens_at(c, l);
        if (b->merge_r < 0 || b->merge_r > evit_merge_max_r(T))
            return evit_error("%s: block %d: merge_r %d does not fit its %d tokens (0 to %d)", where, l,
                              b->merge_r, T, evit_merge_max_r(T));
        if (b->merge_r && evit_head_is_seg(c->head))
            return evit_error("%s: block %d: merge_r %d: a %s head reads every patch token, so it does not "
                              "merge tokens", where, l, b->merge_r, evit_config_head_name(c->head));
    }
    return validate_decoder(c, where);
}

/* seg_mlp's "decoder_dim" and "decoder_levels" into c (whose head, depth
 * and width are read), its defaults where absent; either key beside
 * another head is an error. */
static int decoder_from_json(const cJSON *obj, const char *file, const char *where, struct evit_vit_config *c)
{
    char key[128];
    const char *dot = where && *where ? "." : "";
    const cJSON *lv = cJSON_GetObjectItemCaseSensitive(obj, "decoder_levels");
    const cJSON *dim = cJSON_GetObjectItemCaseSensitive(obj, "decoder_dim");
    if (c->head != EVIT_HEAD_SEG_MLP) {
        if (!lv && !dim) return EVIT_OK;
        snprintf(key, sizeof key, "%s%s%s", where ? where : "", dot, dim ? "decoder_dim" : "decoder_levels");
        return evit_error("%s: %s: only a seg_mlp head has a decoder (head is %s)", file, key,
                          evit_config_head_name(c->head));
    }
    evit_config_decoder_defaults(c);
    if (evit_json_get_int(obj, file, where, "decoder_dim", 0, 1, 16384, &c->decoder_dim) < 0) return EVIT_ERR;
    if (!lv) return EVIT_OK;
    snprintf(key, sizeof key, "%s%sdecoder_levels", where ? where : "", dot);
    int n = cJSON_IsArray(lv) ? cJSON_GetArraySize(lv) : -1;
    if (n < 1 || n > EVIT_DECODER_MAX_LEVELS)
        return evit_error("%s: %s: must be an array of 1 to %d block indices", file, key, EVIT_DECODER_MAX_LEVELS);
    memset(c->decoder_levels, 0, sizeof c->decoder_levels);
    c->decoder_nlevels = n;
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(lv, i);
        double d = cJSON_IsNumber(v) ? v->valuedouble : -1.0;
        if (!cJSON_IsNumber(v) || d != (double)(int)d || d < 0 || d > EVIT_MAX_DEPTH)
            return evit_error("%s: %s: item %d is not a block index (an integer from 0)", file, key, i);
        c->decoder_levels[i] = (int)d;
    }
    return EVIT_OK;
}

int evit_config_from_json(const cJSON *obj, const char *file, const char *where,
                          struct evit_vit_config *out)
{
    static const char *const keys[] = {"name", "img_size", "channels", "patch",
                                       "num_classes", "embed_dim", "depth", "num_heads",
                                       "head_dim", "mlp_hidden", "merge_r", "head", "blocks",
                                       "decoder_dim", "decoder_levels", NULL};
    static const char *const bkeys[] = {"num_heads", "head_dim", "mlp_hidden", "merge_r", NULL};
    struct evit_vit_config c;
    memset(&c, 0, sizeof c);
    const char *name = "unnamed";
    int heads = 0, head_dim = 0, mlp = 0, merge_r = 0;

    if (evit_json_check_keys(obj, file, where, keys) < 0) return EVIT_ERR;
    if (evit_json_get_string(obj, file, where, "name", 0, &name) < 0 ||
        evit_json_get_int(obj, file, where, "img_size", 1, 1, 4096, &c.img_size) < 0 ||
        evit_json_get_int(obj, file, where, "channels", 1, 1, 4, &c.channels) < 0 ||
        evit_json_get_int(obj, file, where, "patch", 1, 1, 4096, &c.patch) < 0 ||
        evit_json_get_int(obj, file, where, "num_classes", 1, 2, 100000, &c.classes) < 0 ||
        evit_json_get_int(obj, file, where, "embed_dim", 1, 1, 16384, &c.dim) < 0 ||
        evit_json_get_int(obj, file, where, "depth", 1, 1, EVIT_MAX_DEPTH, &c.depth) < 0)
        return EVIT_ERR;
    const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(obj, "blocks");
    int need_uniform = blocks == NULL;
    if (evit_json_get_int(obj, file, where, "num_heads", need_uniform, 1, 1024, &heads) < 0 ||
        evit_json_get_int(obj, file, where, "head_dim", 0, 1, 4096, &head_dim) < 0 ||
        evit_json_get_int(obj, file, where, "mlp_hidden", need_uniform, 1, 65536, &mlp) < 0 ||
        evit_json_get_int(obj, file, where, "merge_r", 0, 0, 65536, &merge_r) < 0 ||
        evit_json_get_choice(obj, file, where, "head", head_names, head_values, &c.head) < 0)
        return EVIT_ERR;
    if (strlen(name) >= EVIT_NAME_MAX)
        return evit_error("%s: name: longer than %d characters", file, EVIT_NAME_MAX - 1);
    snprintf(c.name, sizeof c.name, "%s", name);
    if (heads && !head_dim) {
        if (c.dim % heads != 0)
            return evit_error("%s: num_heads: %d does not divide embed_dim %d (give head_dim)",
                              file, heads, c.dim);
        head_dim = c.dim / heads;
    }
    for (int l = 0; l < c.depth; l++) {
        c.blocks[l].heads = heads;
        c.blocks[l].head_dim = head_dim;
        c.blocks[l].mlp = mlp;
        c.blocks[l].merge_r = merge_r;
    }
    if (blocks) {
        char bw[128];
        if (!cJSON_IsArray(blocks) || cJSON_GetArraySize(blocks) != c.depth)
            return evit_error("%s: blocks: must be an array of depth (%d) objects", file, c.depth);
        for (int l = 0; l < c.depth; l++) {
            const cJSON *b = cJSON_GetArrayItem(blocks, l);
            struct evit_block_shape *s = &c.blocks[l];
            snprintf(bw, sizeof bw, "%s%sblocks.%d", where ? where : "", where && *where ? "." : "", l);
            if (evit_json_check_keys(b, file, bw, bkeys) < 0 ||
                evit_json_get_int(b, file, bw, "num_heads", s->heads == 0, 1, 1024, &s->heads) < 0 ||
                evit_json_get_int(b, file, bw, "head_dim", 0, 1, 4096, &s->head_dim) < 0 ||
                evit_json_get_int(b, file, bw, "mlp_hidden", s->mlp == 0, 1, 65536, &s->mlp) < 0 ||
                evit_json_get_int(b, file, bw, "merge_r", 0, 0, 65536, &s->merge_r) < 0)
                return EVIT_ERR;
            if (!s->head_dim) {
                if (c.dim % s->heads != 0)
                    return evit_error("%s: %s.num_heads: %d does not divide embed_dim %d (give head_dim)",
                                      file, bw, s->heads, c.dim);
                s->head_dim = c.dim / s->heads;
            }
        }
    }
    if (decoder_from_json(obj, file, where, &c) < 0 || evit_config_validate(&c, file) < 0) return EVIT_ERR;
    *out = c;
    return EVIT_OK;
}

int evit_config_load(const char *arg, struct evit_vit_config *out)
{
    char path[4096];
    cJSON *root = NULL;
    if (strchr(arg, '/') || strstr(arg, ".json")) {
        snprintf(path, sizeof path, "%s", arg);
    } else {
        /* A bare name: the working tree's configs first, then the installed
         * ones, so a checkout works without make install. */
        const char *env = getenv("EVIT_CONFIGS");
        const char *dirs[] = {env, "configs", EVIT_SRC_CONFIG_DIR, EVIT_CONFIG_DIR};
        path[0] = '\0';
        for (int i = 0; i < 4; i++) {
            if (!dirs[i]) continue;
            snprintf(path, sizeof path, "%s/models/%s.json", dirs[i], arg);
            if (access(path, R_OK) == 0) break;
            path[0] = '\0';
        }
        if (!path[0])
            return evit_error("%s: no such model config (looked in configs/models and %s/models)",
                              arg, EVIT_CONFIG_DIR);
    }
    if (evit_json_load(path, &root) < 0) return EVIT_ERR;
    int rc = evit_config_from_json(root, path, "", out);
    cJSON_Delete(root);
    return rc;
}

cJSON *evit_config_to_json(const struct evit_vit_config *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddNumberToObject(o, "img_size", c->img_size);
    cJSON_AddNumberToObject(o, "channels", c->channels);
    cJSON_AddNumberToObject(o, "patch", c->patch);
    cJSON_AddNumberToObject(o, "num_classes", c->classes);
    cJSON_AddNumberToObject(o, "embed_dim", c->dim);
    cJSON_AddNumberToObject(o, "depth", c->depth);
    if (c->head != EVIT_HEAD_CLASS) cJSON_AddStringToObject(o, "head", evit_config_head_name(c->head));
    if (c->head == EVIT_HEAD_SEG_MLP) {
        cJSON_AddNumberToObject(o, "decoder_dim", c->decoder_dim);
        cJSON_AddItemToObject(o, "decoder_levels", cJSON_CreateIntArray(c->decoder_levels, c->decoder_nlevels));
    }
    cJSON *arr = cJSON_AddArrayToObject(o, "blocks");
    for (int l = 0; l < c->depth; l++) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddNumberToObject(b, "num_heads", c->blocks[l].heads);
        cJSON_AddNumberToObject(b, "head_dim", c->blocks[l].head_dim);
        cJSON_AddNumberToObject(b, "mlp_hidden", c->blocks[l].mlp);
        if (evit_config_merges(c)) cJSON_AddNumberToObject(b, "merge_r", c->blocks[l].merge_r);
        cJSON_AddItemToArray(arr, b);
    }
    return o;
}

long evit_config_params(const struct evit_vit_config *c)
{
    long D = c->dim, T = evit_config_tokens(c), K = c->classes;
    long n = D * evit_config_patch_in(c) + D /* patch embed */ + D /* cls */ + T * D;
    for (int l = 0; l < c->depth; l++) {
        long I = evit_config_inner(c, l), M = c->blocks[l].mlp;
        n += 2 * D;                 /* norm1 */
        n += 3 * I * D + 3 * I;     /* qkv */
        n += D * I + D;             /* proj */
        n += 2 * D;                 /* norm2 */
        n += M * D + M + D * M + D; /* fc1, fc2 */
    }
    n += 2 * D; /* final norm */
    if (c->head == EVIT_HEAD_SEG_MLP) {
        long C = c->decoder_dim, L = c->decoder_nlevels;
        n += (L - 1) * 2 * D;       /* the earlier levels' norms */
        n += L * (C * D + C);       /* linear_c */
        n += C * L * C + C;         /* linear_fuse */
        n += K * C + K;             /* head */
    } else {
        n += K * D + K;
    }
    return n;
}

/* FLOPs = 2 x multiply-adds of the matrix products (patch embedding, qkv,
 * q k^T, att v, proj, fc1, fc2, head: once per image, or once per patch
 * for a segmentation head, seg_mlp's linear_c, linear_fuse and head);
 * norms, softmax, GELU, ReLU and a segmentation head's upsampling are
 * ignored, as is usual when quoting ViT FLOPs. */
double evit_config_mflops(const struct evit_vit_config *c)
{
    double D = c->dim, N = evit_config_patches(c);
    double macs = N * D * evit_config_patch_in(c);
    for (int l = 0; l < c->depth; l++) {
        /* merging comes after the attention: the MLP sees the fewer tokens */
        double I = evit_config_inner(c, l), M = c->blocks[l].mlp;
        double T = evit_config_tokens_at(c, l), Tm = evit_config_tokens_at(c, l + 1);
        macs += T * D * 3 * I;     /* qkv */
        macs += 2 * T * T * I;     /* q k^T and att v over all heads */
        macs += T * I * D;         /* proj */
        macs += 2 * Tm * D * M;    /* fc1 + fc2 */
    }
    if (c->head == EVIT_HEAD_SEG_MLP) {
        double C = c->decoder_dim, L = c->decoder_nlevels;
        macs += N * (L * D * C + L * C * C + C * c->classes);
    } else {
        macs += evit_config_head_rows(c) * D * c->classes;
    }
    return 2.0 * macs / 1e6;
}
