/* fuzz_common.h: what the file-based fuzz targets share.  The parsers they
 * fuzz read paths, so each input goes to a file on tmpfs first. */
#ifndef EVIT_FUZZ_COMMON_H
#define EVIT_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/* Writes data to /dev/shm/evit-fuzz-PID.SUFFIX (or /tmp when there is no
 * /dev/shm); path receives its name.  Returns 0, or -1 when it cannot. */
static inline int fuzz_write_file(char *path, size_t n, const char *suffix, const uint8_t *data, size_t size)
{
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, n, "%s/evit-fuzz-%d.%s", dir, (int)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

#endif
