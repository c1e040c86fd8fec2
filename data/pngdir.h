/* pngdir.h: PNG class folders as a classification dataset (evit-data
 * import --png) and PNG image/mask folders as a segmentation dataset
 * (--seg); the images are decoded by common/pngio.c. */
#ifndef EVIT_PNGDIR_H
#define EVIT_PNGDIR_H

struct evit_dataset;

/* Imports root/<class>/<*.png> (classes sorted by name, files sorted by
 * name, byte order; entries starting with '.' skipped) into a dataset of
 * size x size x channels, source = root.  At least 2 class folders, each
 * with a PNG, are required.  An image of another size is an error naming it
 * unless resize is set.  *out is untouched on error. */
int evit_pngdir_import(const char *root, int channels, int size, int resize,
                        struct evit_dataset *out);

struct evit_pngdir_seg {
    int channels; /* 1..4 */
    int size;     /* side to resize to, or 0: every pair the first image's size */
    int ignore;   /* mask value of unlabelled pixels, or -1 */
    int classes;  /* class count, or 0: the largest mask value (not ignore) + 1 */
    char **names; /* classes names, or NULL: "0", "1", ... (copied) */
};

/* Imports images_dir/NAME.png with masks_dir/NAME.png (pairs matched by
 * file name, sorted in byte order; entries starting with '.' skipped) into
 * a segmentation dataset, source = images_dir.  A mask is one channel of
 * class indices (gray or palette PNG, up to 8 bits).  An image without its
 * mask or a mask without its image, a pair of two sizes, a pair of another
 * size than the first (size 0), and a mask value outside [0, classes) that
 * is not the ignore value are each refused in one line naming the file.
 * With size, images are resized bilinearly and masks by nearest neighbour
 * (a class index must not be averaged).  *out is untouched on error. */
int evit_pngdir_import_seg(const char *images_dir, const char *masks_dir, const struct evit_pngdir_seg *o,
                           struct evit_dataset *out);

#endif
