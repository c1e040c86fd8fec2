/* h5.h: the HDF5 calls every evit file format needs, with errors turned
 * into one line naming the file (HDF5's own error stack is silenced).
 *
 * Paths inside a file use '/' ("blocks/0/attn/qkv/weight"); writers create
 * intermediate groups.  All readers check rank, dims and type before reading
 * a byte, so a truncated or hostile file yields EVIT_ERR, never a crash. */
#ifndef EVIT_H5_H
#define EVIT_H5_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Turns off HDF5's automatic error printing for this process. */
void evit_h5_quiet(void);

/* Opens for reading; the message says missing / not HDF5 / unreadable. */
int evit_h5_open(const char *path, hid_t *file);

/* Creates (truncating) a file for writing. */
int evit_h5_create(const char *path, hid_t *file);

/* Closes; a failed close (disk full on flush) is an error naming path. */
int evit_h5_close(hid_t file, const char *path);

/* Ends an atomic write: closes the file created at tmp, then renames tmp to
 * path when ok and the close succeeded, else removes tmp.  Returns EVIT_OK
 * only when path now holds the complete file. */
int evit_h5_finish(hid_t file, const char *tmp, const char *path, int ok);

/* Writes a dataset at a '/'-path, creating groups; type is a native HDF5
 * type (H5T_NATIVE_FLOAT, H5T_NATIVE_INT32, H5T_NATIVE_UINT8, ...).
 * Datasets larger than 1 MiB are chunked and deflate-compressed. */
int evit_h5_write(hid_t file, const char *path, const char *name, hid_t type,
                  int rank, const int64_t *dims, const void *data);

/* Creates a dataset of this shape (chunked and compressed as
 * evit_h5_write's) to be filled by evit_h5_write_rows. */
int evit_h5_create_set(hid_t file, const char *path, const char *name, hid_t type, int rank, const int64_t *dims);

/* Rank and dims of a dataset (dims has room for 8). Missing -> error. */
int evit_h5_shape(hid_t file, const char *path, const char *name, int *rank, int64_t *dims);

/* Checks the dataset has exactly this shape and holds type (its class,
 * size and sign), without reading it. */
int evit_h5_check(hid_t file, const char *path, const char *name, hid_t type, int rank, const int64_t *dims);

/* Checks the dataset has exactly this shape, then reads it as type. */
int evit_h5_read(hid_t file, const char *path, const char *name, hid_t type,
                 int rank, const int64_t *dims, void *data);

/* Rows [start, start + count) along the first axis of a dataset whose shape
 * was already checked; row_elems = product of the other dims. */
int evit_h5_read_rows(hid_t file, const char *path, const char *name, hid_t type,
                      int64_t start, int64_t count, void *data);

/* Writes rows [start, start + count) along the first axis of a dataset
 * made by evit_h5_create_set; row_elems = product of the other dims. */
int evit_h5_write_rows(hid_t file, const char *path, const char *name, hid_t type, int64_t start, int64_t count,
                       const void *data);

int evit_h5_exists(hid_t file, const char *name);

/* Attributes on the root group. */
int evit_h5_attr_write_string(hid_t file, const char *key, const char *value);
int evit_h5_attr_write_strings(hid_t file, const char *key, char *const *values, int n);
int evit_h5_attr_write_ints(hid_t file, const char *key, const int *v, int n);
int evit_h5_attr_write_floats(hid_t file, const char *key, const float *v, int n);
int evit_h5_attr_write_double(hid_t file, const char *key, double v);
int evit_h5_attr_write_doubles(hid_t file, const char *key, const double *v, int n);

int evit_h5_attr_exists(hid_t file, const char *key);
/* Reads a string; caller frees *out. Absent -> error naming path and key. */
int evit_h5_attr_read_string(hid_t file, const char *path, const char *key, char **out);
/* Reads n strings (n must match exactly unless *n is 0, which means "any",
 * then *n is set); caller frees each and the array. */
int evit_h5_attr_read_strings(hid_t file, const char *path, const char *key, char ***out, int *n);
/* Reads exactly n ints / floats. */
int evit_h5_attr_read_ints(hid_t file, const char *path, const char *key, int *v, int n);
int evit_h5_attr_read_floats(hid_t file, const char *path, const char *key, float *v, int n);
int evit_h5_attr_read_double(hid_t file, const char *path, const char *key, double *v);
int evit_h5_attr_read_doubles(hid_t file, const char *path, const char *key, double *v, int n);
/* Number of elements of a 1-D (or scalar) attribute. */
int evit_h5_attr_len(hid_t file, const char *path, const char *key, int *n);

/* Checks the root attribute "format" equals expect and format_version <= max. */
int evit_h5_check_format(hid_t file, const char *path, const char *expect, int max_version);
/* Writes format and format_version. */
int evit_h5_write_format(hid_t file, const char *format, int version);

#endif
