/* pngdir.h: PNG class folders as a dataset (evit-data import --png); the
 * images are decoded by common/pngio.c. */
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

#endif
