/* fuzz_png.c: libFuzzer target for the PNG reader behind evit-data import
 * --png (common/pngio.c: libpng with its longjmp errors caught).  Any file
 * must decode or be refused with an error, never crash or leak; a decoded
 * image is also resized, as an import with --resize would.  The first byte
 * picks the channel count asked for (1..4, or 0: read as a mask's class
 * indices, evit-data import --seg), the rest is the file. */
#include <stdint.h>
#include <stdio.h>

#include "fuzz_common.h"
#include "pngio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128];
    struct evit_image img = {0}, small = {0};
    if (size < 1) return 0;
    int channels = data[0] % 5;
    if (fuzz_write_file(path, sizeof path, "png", data + 1, size - 1) < 0) return 0;
    if ((channels ? evit_png_read(path, channels, &img) : evit_png_read_indices(path, &img)) == 0) {
        if ((long)img.w * img.h <= 1 << 16) {
            evit_image_resize(&small, &img, 7, 5);
            evit_image_free(&small);
        }
        evit_image_free(&img);
    }
    remove(path);
    return 0;
}
