/* import.c: see import.h. */
#include "import.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Name fragments of timm ViT variants evit cannot compute, and what they are. */
static const struct {
    const char *frag, *what;
} unsupported[] = {
    {"dist_token", "a distillation token (DeiT distilled)"},
    {"head_dist.", "a distillation head (DeiT distilled)"},
    {"relative_position", "relative position bias (BEiT)"},
    {".ls1.", "layer scale"},
    {".ls2.", "layer scale"},
    {"gamma_1", "layer scale"},
    {"gamma_2", "layer scale"},
    {"reg_token", "register tokens"},
    {"fc_norm.", "a norm after average pooling (global_pool='avg')"},
    {"attn_pool.", "an attention-pooling head"},
    {".q_norm.", "query/key normalisation"},
    {".k_norm.", "query/key normalisation"},
    {"attn.q_bias", "separate q/v biases (BEiT)"},
    {"attn.v_bias", "separate q/v biases (BEiT)"},
    {"norm_pre.", "a norm before the blocks (CLIP)"},
    /* the final norm is "norm.weight" at top level: only nested ones count */
    {".norm.weight", "a norm inside the attention or MLP"},
};

static const char *why_unsupported(const char *name)
{
    size_t i;
    for (i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        if (strstr(name, unsupported[i].frag)) return unsupported[i].what;
    }
    return NULL;
}

/* One line listing up to four names, then "and N more". */
static int refuse(const char *where, const char *lead, const char *const *names, int n, const char *tail)
{
    char list[512] = "";
    int i, shown = n < 4 ? n : 4;
    for (i = 0; i < shown; i++) {
        size_t at = strlen(list);
        snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", names[i]);
    }
    if (n > shown) {
        size_t at = strlen(list);
        snprintf(list + at, sizeof list - at, " and %d more", n - shown);
    }
    return evit_error("%s: %s %s%s", where, lead, list, tail);
}

static int check_supported(const struct evit_safetensors *st, const char *where)
{
    int i, n = 0, rc = EVIT_OK;
    const char *why = NULL;
    const char **names = evit_malloc(sizeof *names * (size_t)(st->n ? st->n : 1));
    for (i = 0; i < st->n; i++) {
        const char *w = why_unsupported(st->t[i].name);
        if (!w) continue;
        if (!why) why = w;
        names[n++] = st->t[i].name;
    }
    if (n) {
        char tail[160];
        snprintf(tail, sizeof tail, " (%s): evit computes timm's plain VisionTransformer", why);
        rc = refuse(where, "unsupported tensors", names, n, tail);
    }
    free(names);
    return rc;
}

static const struct evit_st_tensor *need(const struct evit_safetensors *st, const char *where, const char *name,
                                         int ndim)
{
    const struct evit_st_tensor *t = evit_safetensors_find(st, name);
    if (!t) {
        evit_error("%s: no tensor %s (not a timm VisionTransformer state_dict?)", where, name);
        return NULL;
    }
    if (t->ndim != ndim) {
        evit_error("%s: %s has %d dimensions, expected %d", where, name, t->ndim, ndim);
        return NULL;
    }
    return t;
}

static int int_dim(int64_t v, const char *where, const char *name, int *out)
{
    if (v < 1 || v > 1000000) return evit_error("%s: %s has a dimension of %lld", where, name, (long long)v);
    *out = (int)v;
    return EVIT_OK;
}

/* Per block: I from qkv (3*I, D), M from fc1 (M, D). */
static int block_widths(const struct evit_safetensors *st, const char *where, int l, int *inner, int *mlp)
{
    char name[EVIT_TENSOR_NAME_MAX];
    const struct evit_st_tensor *t;
    snprintf(name, sizeof name, "blocks.%d.attn.qkv.weight", l);
    if (!(t = need(st, where, name, 2)) || int_dim(t->shape[0], where, name, inner) < 0) return EVIT_ERR;
    if (*inner % 3) return evit_error("%s: %s has %d rows, not a multiple of 3", where, name, *inner);
    *inner /= 3;
    snprintf(name, sizeof name, "blocks.%d.mlp.fc1.weight", l);
    if (!(t = need(st, where, name, 2)) || int_dim(t->shape[0], where, name, mlp) < 0) return EVIT_ERR;
    return EVIT_OK;
}

/* cfg's heads from the options: a config must agree with what the file says. */
static int set_heads(struct evit_vit_config *cfg, const int *inner, const char *where,
                     const struct evit_import_opts *o)
{
    int l;
    const struct evit_vit_config *c = o->config;
    if (c) {
        if (c->dim != cfg->dim || c->channels != cfg->channels || c->patch != cfg->patch ||
            c->img_size != cfg->img_size || c->depth != cfg->depth)
            return evit_error("%s: config %s is %dx%dx%d images, patch %d, dim %d, depth %d; the file has "
                              "%dx%dx%d, patch %d, dim %d, depth %d",
                              where, c->name, c->img_size, c->img_size, c->channels, c->patch, c->dim, c->depth,
                              cfg->img_size, cfg->img_size, cfg->channels, cfg->patch, cfg->dim, cfg->depth);
        for (l = 0; l < cfg->depth; l++) {
            if (c->blocks[l].heads * c->blocks[l].head_dim != inner[l] || c->blocks[l].mlp != cfg->blocks[l].mlp)
                return evit_error("%s: block %d: config %s has %d heads of %d and MLP %d; the file has "
                                  "attention width %d and MLP %d",
                                  where, l, c->name, c->blocks[l].heads, c->blocks[l].head_dim, c->blocks[l].mlp,
                                  inner[l], cfg->blocks[l].mlp);
            cfg->blocks[l] = c->blocks[l];
        }
        return EVIT_OK;
    }
    if (o->heads < 1)
        return evit_error("%s: the head count is not in the tensors' shapes: pass --heads H or --config", where);
    for (l = 0; l < cfg->depth; l++) {
        if (inner[l] % o->heads)
            return evit_error("%s: block %d: attention width %d does not split into %d heads", where, l, inner[l],
                              o->heads);
        cfg->blocks[l].heads = o->heads;
        cfg->blocks[l].head_dim = inner[l] / o->heads;
    }
    return EVIT_OK;
}

static int embed_shape(struct evit_vit_config *cfg, const struct evit_safetensors *st, const char *where)
{
    const struct evit_st_tensor *pe, *pos;
    int t = 0, g;
    if (!(pe = need(st, where, "patch_embed.proj.weight", 4)) || !(pos = need(st, where, "pos_embed", 3)))
        return EVIT_ERR;
    if (int_dim(pe->shape[0], where, pe->name, &cfg->dim) < 0 ||
        int_dim(pe->shape[1], where, pe->name, &cfg->channels) < 0 ||
        int_dim(pe->shape[2], where, pe->name, &cfg->patch) < 0)
        return EVIT_ERR;
    if (pe->shape[3] != pe->shape[2])
        return evit_error("%s: patch_embed.proj.weight has a %lldx%lld kernel: evit's patches are square", where,
                          (long long)pe->shape[2], (long long)pe->shape[3]);
    if (pos->shape[0] != 1 || pos->shape[2] != cfg->dim || int_dim(pos->shape[1], where, "pos_embed", &t) < 0)
        return evit_error("%s: pos_embed is not (1, T, %d)", where, cfg->dim);
    g = (int)sqrt((double)(t - 1)); /* exact for t <= 10^6 */
    if ((long)g * g != t - 1 || g == 0)
        return evit_error("%s: pos_embed has %d positions, not a class token plus a square grid", where, t);
    if ((long)g * cfg->patch > 4096) return evit_error("%s: a %d-patch grid is too large", where, g);
    cfg->img_size = g * cfg->patch;
    return EVIT_OK;
}

int evit_import_config(struct evit_vit_config *cfg, const struct evit_safetensors *st, const char *where,
                       const struct evit_import_opts *o)
{
    char name[EVIT_TENSOR_NAME_MAX];
    int inner[EVIT_MAX_DEPTH], l;
    const struct evit_st_tensor *head;
    memset(cfg, 0, sizeof *cfg);
    if (check_supported(st, where) < 0 || embed_shape(cfg, st, where) < 0) return EVIT_ERR;
    for (l = 0;; l++) {
        snprintf(name, sizeof name, "blocks.%d.norm1.weight", l);
        if (!evit_safetensors_find(st, name)) break;
        if (l == EVIT_MAX_DEPTH) return evit_error("%s: more than %d blocks", where, EVIT_MAX_DEPTH);
        if (block_widths(st, where, l, &inner[l], &cfg->blocks[l].mlp) < 0) return EVIT_ERR;
    }
    if (l == 0) return evit_error("%s: no tensor blocks.0.norm1.weight: not a ViT with blocks", where);
    cfg->depth = l;
    if (o->num_classes > 0) {
        cfg->classes = o->num_classes;
    } else {
        if (!(head = evit_safetensors_find(st, "head.weight")))
            return evit_error("%s: no classifier (head.weight): pass --num-classes K for a new one", where);
        if (head->ndim != 2 || int_dim(head->shape[0], where, "head.weight", &cfg->classes) < 0)
            return evit_error("%s: head.weight is not (K, D)", where);
    }
    if (set_heads(cfg, inner, where, o) < 0) return EVIT_ERR;
    snprintf(cfg->name, sizeof cfg->name, "%s", o->name ? o->name : o->config ? o->config->name : "imported");
    return evit_config_validate(cfg, where);
}

static int is_new_head(const char *name, const struct evit_import_opts *o)
{
    return o->num_classes > 0 && (!strcmp(name, "head.weight") || !strcmp(name, "head.bias"));
}

static int copy_tensor(const struct evit_tensor_ref *r, const struct evit_safetensors *st, const char *where)
{
    int d;
    const struct evit_st_tensor *t = evit_safetensors_find(st, r->name);
    if (!t) return evit_error("%s: no tensor %s", where, r->name);
    int same = t->ndim == r->ndim;
    for (d = 0; same && d < r->ndim; d++) same = t->shape[d] == r->shape[d];
    if (!same) {
        char want[96] = "", got[96] = "";
        for (d = 0; d < r->ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "",
                     (long long)r->shape[d]);
        for (d = 0; d < t->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        return evit_error("%s: %s has shape (%s), the model needs (%s)", where, r->name, got, want);
    }
    evit_safetensors_read(r->data, st, t);
    return EVIT_OK;
}

/* Every tensor of the file is one of the model's (or the replaced head). */
static int check_all_used(const struct evit_safetensors *st, const struct evit_tensor_ref *refs, int nref,
                          const char *where, const struct evit_import_opts *o)
{
    int i, j, n = 0, rc = EVIT_OK;
    const char **extra = evit_malloc(sizeof *extra * (size_t)(st->n ? st->n : 1));
    for (i = 0; i < st->n; i++) {
        int used = is_new_head(st->t[i].name, o);
        for (j = 0; !used && j < nref; j++) used = !strcmp(st->t[i].name, refs[j].name);
        if (!used) extra[n++] = st->t[i].name;
    }
    if (n) rc = refuse(where, "tensors evit's ViT does not have:", extra, n, "");
    free(extra);
    return rc;
}

int evit_import_model(struct evit_vit *m, const struct evit_vit_config *cfg, const struct evit_safetensors *st,
                      const char *where, const struct evit_import_opts *o)
{
    int i, n, c;
    struct evit_tensor_ref *refs;
    evit_vit_alloc(m, cfg);
    evit_vit_init(m, o->seed); /* what stays of it is a new head, if any */
    for (c = 0; c < cfg->channels; c++) {
        m->mean[c] = 0.5f;
        m->std[c] = 0.5f;
    }
    refs = evit_vit_tensor_list(&m->cfg, &m->p, &n);
    if (check_all_used(st, refs, n, where, o) < 0) goto fail;
    for (i = 0; i < n; i++) {
        if (is_new_head(refs[i].name, o)) continue;
        if (copy_tensor(&refs[i], st, where) < 0) goto fail;
    }
    free(refs);
    if (evit_vit_check_finite(m, where) == EVIT_OK) return EVIT_OK;
    evit_vit_free(m);
    return EVIT_ERR;
fail:
    free(refs);
    evit_vit_free(m);
    return EVIT_ERR;
}
