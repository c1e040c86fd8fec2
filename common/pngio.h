/* pngio.h: PNG images through libpng, and PNG class folders as datasets.
 *
 * Any PNG (gray, gray+alpha, RGB, RGBA, palette, 1/2/4/8/16-bit, with or
 * without tRNS) is decoded to 8-bit and converted to the requested channel
 * count: 1 = luminance (0.299 R + 0.587 G + 0.114 B, rounded), 3 = RGB
 * (gray replicated), alpha is composited over black unless 2 or 4 channels
 * are asked for.  libpng's longjmp errors are caught and become one line
 * naming the file. */
#ifndef EVIT_PNGIO_H
#define EVIT_PNGIO_H

#include <stdint.h>

struct evit_image {
    int w, h, c;
    uint8_t *px; /* (h, w, c) */
};

/* Reads path into an image with `channels` channels (1..4). */
int evit_png_read(const char *path, int channels, struct evit_image *out);

/* Reads a mask: one channel of the samples as stored (class indices),
 * from a gray PNG of up to 8 bits or a palette PNG (its indices, not its
 * colours); RGB, alpha and 16-bit files are refused in one line. */
int evit_png_read_indices(const char *path, struct evit_image *out);

/* Writes an 8-bit gray/gray+alpha/RGB/RGBA PNG (c = 1..4) to a temporary
 * file renamed into place. */
int evit_png_write(const char *path, const struct evit_image *img);

/* Bilinear resize (area-averaging when shrinking) to w x h. */
void evit_image_resize(struct evit_image *out, const struct evit_image *in, int w, int h);

void evit_image_free(struct evit_image *img);

#endif
