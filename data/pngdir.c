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
