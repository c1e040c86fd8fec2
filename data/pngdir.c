/* pngdir.c: see pngdir.h. */
#include "pngdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "dataset.h"
#include "pngio.h"
#include "util.h"

struct names {
    char **v;
    int n, cap;
};

static void names_push(struct names *s, const char *name)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        char **v = evit_malloc(sizeof(char *) * (size_t)cap);
        if (s->n) memcpy(v, s->v, sizeof(char *) * (size_t)s->n);
        free(s->v);
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = evit_strdup(name);
}

static void names_free(struct names *s)
{
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_names(const void *a, const void *b)
{
    /* byte order, not the locale's, so every machine sees the same labels */
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = evit_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int is_png_name(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".png") == 0;
}

/* Sorted non-hidden entries of dir: subfolders when want_dirs, otherwise
 * regular files named *.png. */
static int list_dir(const char *dir, int want_dirs, struct names *out)
{
    DIR *d = opendir(dir);
    if (!d) return evit_error("%s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (!want_dirs && !is_png_name(e->d_name)) continue;
        char *p = join_path(dir, e->d_name);
        struct stat st;
        int keep = stat(p, &st) == 0 && (want_dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
        free(p);
        if (keep) names_push(out, e->d_name);
    }
    closedir(d);
    if (out->n > 1) qsort(out->v, (size_t)out->n, sizeof(char *), cmp_names);
    return EVIT_OK;
}

/* Every image path in class then file order; image i has label k when
 * start[k] <= i < start[k + 1]. */
static int collect_files(const char *root, struct names *classes, struct names *files,
                         int **start)
{
    if (list_dir(root, 1, classes) < 0) return EVIT_ERR;
    if (classes->n == 0)
        return evit_error("%s: no class folders (expected ROOT/CLASS/*.png)", root);
    if (classes->n == 1)
        return evit_error("%s: only one class folder (%s); a classifier needs 2 or more", root,
                          classes->v[0]);
    int *st = evit_malloc(sizeof(int) * (size_t)(classes->n + 1));
    for (int k = 0; k < classes->n; k++) {
        struct names pngs = {0};
        char *dir = join_path(root, classes->v[k]);
        int rc = list_dir(dir, 0, &pngs);
        if (rc == 0 && pngs.n == 0) rc = evit_error("%s: no PNG files in class folder", dir);
        st[k] = files->n;
        for (int i = 0; rc == 0 && i < pngs.n; i++) {
            char *p = join_path(dir, pngs.v[i]);
            names_push(files, p);
            free(p);
        }
        names_free(&pngs);
        free(dir);
        if (rc < 0) {
            free(st);
            return EVIT_ERR;
        }
    }
    st[classes->n] = files->n;
    *start = st;
    return EVIT_OK;
}

/* Reads one image into its slot of the dataset, resizing when allowed. */
static int load_one(const char *path, const struct evit_dataset *d, int resize, uint8_t *dst)
{
    struct evit_image img = {0}, small = {0};
    if (evit_png_read(path, d->c, &img) < 0) return EVIT_ERR;
    if (img.w != d->w || img.h != d->h) {
        if (!resize) {
            evit_error("%s: image is %dx%d, expected %dx%d (resizing is off)", path, img.w,
                       img.h, d->w, d->h);
            evit_image_free(&img);
            return EVIT_ERR;
        }
        evit_image_resize(&small, &img, d->w, d->h);
        evit_image_free(&img);
        img = small;
    }
    memcpy(dst, img.px, (size_t)d->w * (size_t)d->h * (size_t)d->c);
    evit_image_free(&img);
    return EVIT_OK;
}

int evit_pngdir_import(const char *root, int channels, int size, int resize,
                        struct evit_dataset *out)
{
    EVIT_ASSERT(channels >= 1 && channels <= 4 && size > 0);
    struct names classes = {0}, files = {0};
    int *start = NULL;
    struct evit_dataset d = {.h = size, .w = size, .c = channels};
    if (collect_files(root, &classes, &files, &start) < 0) goto fail;
    d.n = files.n;
    d.classes = classes.n;
    size_t per = (size_t)size * (size_t)size * (size_t)channels;
    d.images = evit_malloc(per * (size_t)d.n);
    d.labels = evit_malloc(sizeof(int32_t) * (size_t)d.n);
    for (int k = 0; k < classes.n; k++)
        for (int i = start[k]; i < start[k + 1]; i++) d.labels[i] = k;
    for (int i = 0; i < d.n; i++)
        if (load_one(files.v[i], &d, resize, d.images + per * (size_t)i) < 0) goto fail;
    /* the dataset takes over the class names */
    d.class_names = classes.v;
    classes.v = NULL;
    classes.n = 0;
    d.source = evit_strdup(root);
    evit_dataset_stats(&d);
    *out = d;
    names_free(&files);
    free(start);
    return EVIT_OK;
fail:
    evit_dataset_free(&d);
    names_free(&classes);
    names_free(&files);
    free(start);
    return EVIT_ERR;
}

/* ---------------------------------------------------------------- segmentation */

/* Nearest-neighbour resize of a one-channel mask: output pixel (x, y)
 * takes input pixel (floor((x + 1/2) w / W), ...), centre to centre, in
 * integers so every machine picks the same pixel. */
static void resize_nearest(uint8_t *dst, int W, int H, const struct evit_image *in)
{
    for (int y = 0; y < H; y++) {
        int sy = (int)(((2 * (long)y + 1) * in->h) / (2 * (long)H));
        for (int x = 0; x < W; x++) {
            int sx = (int)(((2 * (long)x + 1) * in->w) / (2 * (long)W));
            dst[(size_t)y * W + x] = in->px[(size_t)sy * in->w + sx];
        }
    }
}

/* The names both folders hold, in order; one that only one folder holds
 * is an error naming it. */
static int match_pairs(const char *images_dir, const char *masks_dir, struct names *imgs, struct names *masks)
{
    if (list_dir(images_dir, 0, imgs) < 0 || list_dir(masks_dir, 0, masks) < 0) return EVIT_ERR;
    if (imgs->n == 0) return evit_error("%s: no PNG files", images_dir);
    int i = 0, m = 0;
    while (i < imgs->n || m < masks->n) {
        int c = i == imgs->n ? 1 : m == masks->n ? -1 : strcmp(imgs->v[i], masks->v[m]);
        if (c < 0) return evit_error("%s/%s: image without a mask (no %s/%s)", images_dir, imgs->v[i], masks_dir,
                                     imgs->v[i]);
        if (c > 0) return evit_error("%s/%s: mask without an image (no %s/%s)", masks_dir, masks->v[m],
                                     images_dir, masks->v[m]);
        i++, m++;
    }
    return EVIT_OK;
}

/* Pair k into its slots of d (whose h, w are set); errors name the file. */
static int load_pair(const char *img_path, const char *mask_path, const struct evit_pngdir_seg *o,
                     struct evit_dataset *d, int k)
{
    struct evit_image img = {0}, mask = {0}, small = {0};
    size_t hw = (size_t)d->h * d->w;
    int rc = EVIT_ERR;
    if (evit_png_read(img_path, d->c, &img) < 0 || evit_png_read_indices(mask_path, &mask) < 0) goto out;
    if (img.w != mask.w || img.h != mask.h) {
        evit_error("%s: mask is %dx%d, its image %s is %dx%d", mask_path, mask.w, mask.h, img_path, img.w, img.h);
        goto out;
    }
    if (!o->size && (img.w != d->w || img.h != d->h)) {
        evit_error("%s: image is %dx%d, the first pair's is %dx%d (give --size S to resize)", img_path, img.w,
                   img.h, d->w, d->h);
        goto out;
    }
    if (o->size && (img.w != d->w || img.h != d->h)) {
        evit_image_resize(&small, &img, d->w, d->h);
        memcpy(d->images + hw * d->c * (size_t)k, small.px, hw * d->c);
        resize_nearest(d->masks + hw * (size_t)k, d->w, d->h, &mask);
    } else {
        memcpy(d->images + hw * d->c * (size_t)k, img.px, hw * d->c);
        memcpy(d->masks + hw * (size_t)k, mask.px, hw);
    }
    rc = EVIT_OK;
out:
    evit_image_free(&img);
    evit_image_free(&mask);
    evit_image_free(&small);
    return rc;
}

/* The class count the masks imply (largest value that is not the ignore
 * value, plus one), or the given one, checked against every mask with
 * the file named. */
static int seg_classes(const struct evit_dataset *d, const struct evit_pngdir_seg *o, const char *masks_dir,
                       const struct names *files)
{
    size_t hw = (size_t)d->h * d->w;
    int top = -1;
    for (int k = 0; k < d->n; k++) {
        for (size_t i = 0; i < hw; i++) {
            int v = d->masks[hw * (size_t)k + i];
            if (v == o->ignore) continue;
            if (o->classes && v >= o->classes)
                return evit_error("%s/%s: mask value %d at (%zu, %zu) is outside [0, %d)%s", masks_dir, files->v[k],
                                  v, i / (size_t)d->w, i % (size_t)d->w, o->classes,
                                  o->ignore >= 0 ? " and not the ignore index" : " (--ignore V for unlabelled pixels)");
            top = v > top ? v : top;
        }
    }
    if (o->classes) return o->classes;
    if (top < 1) return evit_error("%s: the masks hold fewer than 2 classes", masks_dir);
    if (o->ignore >= 0 && o->ignore <= top)
        return evit_error("%s: --ignore %d is below the largest class index %d in the masks", masks_dir, o->ignore, top);
    return top + 1;
}

int evit_pngdir_import_seg(const char *images_dir, const char *masks_dir, const struct evit_pngdir_seg *o,
                           struct evit_dataset *out)
{
    EVIT_ASSERT(o->channels >= 1 && o->channels <= 4 && o->size >= 0);
    struct names imgs = {0}, masks = {0};
    struct evit_dataset d = {.c = o->channels, .ignore = o->ignore};
    if (match_pairs(images_dir, masks_dir, &imgs, &masks) < 0) goto fail;
    d.n = imgs.n;
    d.h = d.w = o->size;
    char *first = join_path(images_dir, imgs.v[0]);
    if (!o->size) { /* the first image sets the size */
        struct evit_image img = {0};
        int rc = evit_png_read(first, d.c, &img);
        d.w = img.w;
        d.h = img.h;
        evit_image_free(&img);
        if (rc < 0) {
            free(first);
            goto fail;
        }
    }
    free(first);
    d.images = evit_malloc((size_t)d.n * d.h * d.w * d.c);
    d.masks = evit_malloc((size_t)d.n * d.h * d.w);
    for (int k = 0; k < d.n; k++) {
        char *ip = join_path(images_dir, imgs.v[k]), *mp = join_path(masks_dir, masks.v[k]);
        int rc = load_pair(ip, mp, o, &d, k);
        free(ip);
        free(mp);
        if (rc < 0) goto fail;
    }
    if ((d.classes = seg_classes(&d, o, masks_dir, &masks)) < 0) goto fail;
    d.class_names = evit_calloc((size_t)d.classes, sizeof *d.class_names);
    for (int k = 0; k < d.classes; k++) {
        char num[16];
        snprintf(num, sizeof num, "%d", k);
        d.class_names[k] = evit_strdup(o->names ? o->names[k] : num);
    }
    d.source = evit_strdup(images_dir);
    evit_dataset_stats(&d);
    *out = d;
    names_free(&imgs);
    names_free(&masks);
    return EVIT_OK;
fail:
    evit_dataset_free(&d);
    names_free(&imgs);
    names_free(&masks);
    return EVIT_ERR;
}
