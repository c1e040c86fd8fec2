/* h5.c: see h5.h.
 *
 * Every HDF5 handle opened in a function is closed on all paths; ids start
 * at H5I_INVALID_HID so the fail: label can close whatever was opened. */
#include "h5.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

void evit_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static void close_id(hid_t id)
{
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

int evit_h5_open(const char *path, hid_t *file)
{
    struct stat st;
    evit_h5_quiet();
    if (stat(path, &st) != 0) return evit_error("%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return evit_error("%s: is a directory, not an HDF5 file", path);
    if (access(path, R_OK) != 0) return evit_error("%s: %s", path, strerror(errno));
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) return evit_error("%s: not an HDF5 file (or its header is corrupt)", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return evit_error("%s: cannot open HDF5 file (truncated or corrupt)", path);
    *file = f;
    return EVIT_OK;
}

int evit_h5_create(const char *path, hid_t *file)
{
    evit_h5_quiet();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return evit_error("%s: cannot create file (%s)", path, strerror(errno));
    *file = f;
    return EVIT_OK;
}

int evit_h5_close(hid_t file, const char *path)
{
    if (H5Fclose(file) < 0) return evit_error("%s: write failed on close (disk full?)", path);
    return EVIT_OK;
}

int evit_h5_finish(hid_t file, const char *tmp, const char *path, int ok)
{
    if (evit_h5_close(file, path) < 0) ok = 0;
    if (!ok) {
        remove(tmp);
        return EVIT_ERR;
    }
    return evit_commit_file(tmp, path);
}

/* Creates dataset name (intermediate groups too) of this shape; datasets
 * of bytes larger than 1 MiB are chunked by whole rows, about 1 MiB each,
 * and deflate-compressed.  Returns the open dataset, or H5I_INVALID_HID
 * after an error line. */
static hid_t create_set(hid_t file, const char *path, const char *name, hid_t type, int rank, const int64_t *dims)
{
    hsize_t hd[8];
    hid_t space, lcpl, dcpl, ds;
    size_t bytes = H5Tget_size(type);
    EVIT_ASSERT(rank >= 1 && rank <= 8);
    for (int i = 0; i < rank; i++) {
        hd[i] = (hsize_t)dims[i];
        bytes *= (size_t)dims[i];
    }
    space = H5Screate_simple(rank, hd, NULL);
    lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (bytes > (1u << 20) && hd[0] > 1 && H5Tget_size(type) == 1) {
        /* Images compress well; float weights and optimiser moments do not
         * (deflate would only slow every checkpoint), so only bytes are
         * compressed.  Chunks are whole rows, about 1 MiB each. */
        hsize_t chunk[8];
        size_t row = bytes / hd[0];
        chunk[0] = (1u << 20) / (row ? row : 1);
        if (chunk[0] < 1) chunk[0] = 1;
        if (chunk[0] > hd[0]) chunk[0] = hd[0];
        for (int i = 1; i < rank; i++) chunk[i] = hd[i];
        H5Pset_chunk(dcpl, rank, chunk);
        H5Pset_deflate(dcpl, 1);
    }
    ds = H5Dcreate2(file, name, type, space, lcpl, dcpl, H5P_DEFAULT);
    if (ds < 0) evit_error("%s: cannot create dataset %s", path, name);
    close_id(dcpl);
    close_id(lcpl);
    close_id(space);
    return ds;
}

int evit_h5_write(hid_t file, const char *path, const char *name, hid_t type,
                  int rank, const int64_t *dims, const void *data)
{
    hid_t ds = create_set(file, path, name, type, rank, dims);
    if (ds < 0) return EVIT_ERR;
    int rc = EVIT_OK;
    if (H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = evit_error("%s: cannot write dataset %s (disk full?)", path, name);
    close_id(ds);
    return rc;
}

int evit_h5_create_set(hid_t file, const char *path, const char *name, hid_t type, int rank, const int64_t *dims)
{
    hid_t ds = create_set(file, path, name, type, rank, dims);
    if (ds < 0) return EVIT_ERR;
    close_id(ds);
    return EVIT_OK;
}

int evit_h5_exists(hid_t file, const char *name)
{
    /* H5Lexists needs every intermediate link to exist; walk the path. */
    char buf[512];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf + 1; ; p++) {
        char saved = *p;
        if (saved == '/' || saved == '\0') {
            *p = '\0';
            if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) return 0;
            if (saved == '\0') return 1;
            *p = saved;
        }
    }
}

int evit_h5_shape(hid_t file, const char *path, const char *name, int *rank, int64_t *dims)
{
    hid_t ds = H5I_INVALID_HID, space = H5I_INVALID_HID;
    hsize_t hd[8];
    int rc = EVIT_ERR;
    if (!evit_h5_exists(file, name)) return evit_error("%s: missing dataset %s", path, name);
    ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) return evit_error("%s: %s is not a readable dataset", path, name);
    space = H5Dget_space(ds);
    int r = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    if (r < 0 || r > 8) {
        evit_error("%s: %s has an unreadable or unsupported shape", path, name);
        goto fail;
    }
    H5Sget_simple_extent_dims(space, hd, NULL);
    *rank = r;
    for (int i = 0; i < r; i++) dims[i] = (int64_t)hd[i];
    rc = EVIT_OK;
fail:
    close_id(space);
    close_id(ds);
    return rc;
}

static void shape_str(char *buf, size_t n, int rank, const int64_t *dims)
{
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "(");
    for (int i = 0; i < rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)dims[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
}

/* Datasets must hold a type of the same class and size as the one we read
 * into, so a float64 or int64 tensor is refused instead of converted
 * silently.  Byte order is left to HDF5 (it converts). */
static int type_matches(hid_t ds, hid_t want)
{
    hid_t t = H5Dget_type(ds);
    if (t < 0) return 0;
    int ok = H5Tget_class(t) == H5Tget_class(want) && H5Tget_size(t) == H5Tget_size(want);
    if (ok && H5Tget_class(want) == H5T_INTEGER) ok = H5Tget_sign(t) == H5Tget_sign(want);
    H5Tclose(t);
    return ok;
}

static const char *type_name(hid_t t)
{
    if (H5Tget_class(t) == H5T_FLOAT) return H5Tget_size(t) == 4 ? "float32" : "float64";
    if (H5Tget_class(t) == H5T_INTEGER) {
        int s = H5Tget_sign(t) == H5T_SGN_NONE;
        switch (H5Tget_size(t)) {
        case 1: return s ? "uint8" : "int8";
        case 2: return s ? "uint16" : "int16";
        case 4: return s ? "uint32" : "int32";
        default: return s ? "uint64" : "int64";
        }
    }
    return "another type";
}

int evit_h5_check(hid_t file, const char *path, const char *name, hid_t type, int rank, const int64_t *dims)
{
    int r;
    int64_t d[8];
    char want[128], got[128];
    if (evit_h5_shape(file, path, name, &r, d) < 0) return EVIT_ERR;
    int same = r == rank;
    for (int i = 0; same && i < rank; i++) same = d[i] == dims[i];
    if (!same) {
        shape_str(want, sizeof want, rank, dims);
        shape_str(got, sizeof got, r, d);
        return evit_error("%s: %s has shape %s, expected %s", path, name, got, want);
    }
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) return evit_error("%s: cannot open dataset %s", path, name);
    int ok = type_matches(ds, type);
    H5Dclose(ds);
    return ok ? EVIT_OK : evit_error("%s: %s is not of type %s", path, name, type_name(type));
}

int evit_h5_read(hid_t file, const char *path, const char *name, hid_t type,
                 int rank, const int64_t *dims, void *data)
{
    if (evit_h5_check(file, path, name, type, rank, dims) < 0) return EVIT_ERR;
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) return evit_error("%s: cannot open dataset %s", path, name);
    herr_t e = H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(ds);
    if (e < 0) return evit_error("%s: cannot read dataset %s (truncated or corrupt)", path, name);
    return EVIT_OK;
}

/* Rows [start, start + count) along the first axis of dataset name, read
 * into (write != 0: written from) data as type. */
static int rows_io(hid_t file, const char *path, const char *name, hid_t type, int64_t start, int64_t count,
                   void *data, int write)
{
    hid_t ds = H5I_INVALID_HID, fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    hsize_t hd[8], off[8] = {0}, cnt[8];
    int rc = EVIT_ERR;
    ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) {
        evit_error("%s: cannot open dataset %s", path, name);
        goto fail;
    }
    fs = H5Dget_space(ds);
    int r = H5Sget_simple_extent_ndims(fs);
    EVIT_ASSERT(r >= 1 && r <= 8);
    H5Sget_simple_extent_dims(fs, hd, NULL);
    EVIT_ASSERT(start >= 0 && count >= 0 && (hsize_t)(start + count) <= hd[0]);
    off[0] = (hsize_t)start;
    cnt[0] = (hsize_t)count;
    for (int i = 1; i < r; i++) cnt[i] = hd[i];
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL);
    ms = H5Screate_simple(r, cnt, NULL);
    if (write ? H5Dwrite(ds, type, ms, fs, H5P_DEFAULT, data) < 0 : H5Dread(ds, type, ms, fs, H5P_DEFAULT, data) < 0) {
        evit_error(write ? "%s: cannot write dataset %s (disk full?)" : "%s: cannot read dataset %s (truncated or corrupt)",
                   path, name);
        goto fail;
    }
    rc = EVIT_OK;
fail:
    close_id(ms);
    close_id(fs);
    close_id(ds);
    return rc;
}

int evit_h5_read_rows(hid_t file, const char *path, const char *name, hid_t type,
                      int64_t start, int64_t count, void *data)
{
    return rows_io(file, path, name, type, start, count, data, 0);
}

int evit_h5_write_rows(hid_t file, const char *path, const char *name, hid_t type, int64_t start, int64_t count,
                       const void *data)
{
    return rows_io(file, path, name, type, start, count, (void *)data, 1);
}

/* ---------------------------------------------------------------- attributes */

static int attr_write(hid_t file, const char *key, hid_t type, hid_t space, const void *v)
{
    if (H5Aexists(file, key) > 0) H5Adelete(file, key);
    hid_t a = H5Acreate2(file, key, type, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && H5Awrite(a, type, v) >= 0 ? EVIT_OK : EVIT_ERR;
    close_id(a);
    return rc;
}

static hid_t vlen_string_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

int evit_h5_attr_write_string(hid_t file, const char *key, const char *value)
{
    hid_t t = vlen_string_type(), s = H5Screate(H5S_SCALAR);
    int rc = attr_write(file, key, t, s, &value);
    H5Sclose(s);
    H5Tclose(t);
    return rc;
}

int evit_h5_attr_write_strings(hid_t file, const char *key, char *const *values, int n)
{
    hsize_t d = (hsize_t)n;
    hid_t t = vlen_string_type(), s = H5Screate_simple(1, &d, NULL);
    int rc = attr_write(file, key, t, s, values);
    H5Sclose(s);
    H5Tclose(t);
    return rc;
}

static int attr_write_1d(hid_t file, const char *key, hid_t type, const void *v, int n)
{
    hsize_t d = (hsize_t)n;
    hid_t s = H5Screate_simple(1, &d, NULL);
    int rc = attr_write(file, key, type, s, v);
    H5Sclose(s);
    return rc;
}

int evit_h5_attr_write_ints(hid_t file, const char *key, const int *v, int n)
{
    return attr_write_1d(file, key, H5T_NATIVE_INT, v, n);
}

int evit_h5_attr_write_floats(hid_t file, const char *key, const float *v, int n)
{
    return attr_write_1d(file, key, H5T_NATIVE_FLOAT, v, n);
}

int evit_h5_attr_write_doubles(hid_t file, const char *key, const double *v, int n)
{
    return attr_write_1d(file, key, H5T_NATIVE_DOUBLE, v, n);
}

int evit_h5_attr_write_double(hid_t file, const char *key, double v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    int rc = attr_write(file, key, H5T_NATIVE_DOUBLE, s, &v);
    H5Sclose(s);
    return rc;
}

int evit_h5_attr_exists(hid_t file, const char *key) { return H5Aexists(file, key) > 0; }

int evit_h5_attr_len(hid_t file, const char *path, const char *key, int *n)
{
    if (H5Aexists(file, key) <= 0) return evit_error("%s: missing attribute %s", path, key);
    hid_t a = H5Aopen(file, key, H5P_DEFAULT);
    if (a < 0) return evit_error("%s: cannot open attribute %s", path, key);
    hid_t s = H5Aget_space(a);
    hssize_t k = H5Sget_simple_extent_npoints(s);
    int r = H5Sget_simple_extent_ndims(s);
    H5Sclose(s);
    H5Aclose(a);
    if (k < 0 || r > 1 || k > (1 << 24))
        return evit_error("%s: attribute %s has an unsupported shape", path, key);
    *n = (int)k;
    return EVIT_OK;
}

/* Reads n strings, variable- or fixed-length, into malloc'd copies. */
static int read_strings(hid_t a, int n, char **out)
{
    hid_t ft = H5Aget_type(a);
    int rc = EVIT_ERR;
    if (H5Tget_class(ft) != H5T_STRING) goto fail;
    if (H5Tis_variable_str(ft) > 0) {
        hid_t mt = vlen_string_type();
        char **tmp = evit_calloc((size_t)n, sizeof *tmp);
        if (H5Aread(a, mt, tmp) >= 0) {
            for (int i = 0; i < n; i++) out[i] = evit_strdup(tmp[i] ? tmp[i] : "");
            hid_t s = H5Aget_space(a);
            H5Dvlen_reclaim(mt, s, H5P_DEFAULT, tmp);
            H5Sclose(s);
            rc = EVIT_OK;
        }
        free(tmp);
        H5Tclose(mt);
    } else {
        size_t len = H5Tget_size(ft);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, len);
        char *buf = evit_calloc((size_t)n, len);
        if (H5Aread(a, mt, buf) >= 0) {
            for (int i = 0; i < n; i++) {
                out[i] = evit_calloc(len + 1, 1);
                memcpy(out[i], buf + (size_t)i * len, len);
            }
            rc = EVIT_OK;
        }
        free(buf);
        H5Tclose(mt);
    }
fail:
    H5Tclose(ft);
    return rc;
}

int evit_h5_attr_read_strings(hid_t file, const char *path, const char *key, char ***out, int *n)
{
    int k;
    if (evit_h5_attr_len(file, path, key, &k) < 0) return EVIT_ERR;
    if (*n && k != *n)
        return evit_error("%s: attribute %s has %d entries, expected %d", path, key, k, *n);
    hid_t a = H5Aopen(file, key, H5P_DEFAULT);
    char **v = evit_calloc((size_t)(k ? k : 1), sizeof *v);
    int rc = read_strings(a, k, v);
    H5Aclose(a);
    if (rc < 0) {
        free(v);
        return evit_error("%s: attribute %s is not a list of strings", path, key);
    }
    *out = v;
    *n = k;
    return EVIT_OK;
}

int evit_h5_attr_read_string(hid_t file, const char *path, const char *key, char **out)
{
    int n = 1;
    char **v = NULL;
    if (evit_h5_attr_read_strings(file, path, key, &v, &n) < 0) return EVIT_ERR;
    *out = v[0];
    free(v);
    return EVIT_OK;
}

static int attr_read_n(hid_t file, const char *path, const char *key, hid_t type,
                       void *v, int n, const char *what)
{
    int k;
    if (evit_h5_attr_len(file, path, key, &k) < 0) return EVIT_ERR;
    if (k != n) return evit_error("%s: attribute %s has %d values, expected %d", path, key, k, n);
    hid_t a = H5Aopen(file, key, H5P_DEFAULT);
    hid_t ft = H5Aget_type(a);
    int numeric = H5Tget_class(ft) == H5T_INTEGER || H5Tget_class(ft) == H5T_FLOAT;
    H5Tclose(ft);
    herr_t e = numeric ? H5Aread(a, type, v) : -1;
    H5Aclose(a);
    if (e < 0) return evit_error("%s: attribute %s is not %s", path, key, what);
    return EVIT_OK;
}

int evit_h5_attr_read_ints(hid_t file, const char *path, const char *key, int *v, int n)
{
    return attr_read_n(file, path, key, H5T_NATIVE_INT, v, n, "an integer");
}

int evit_h5_attr_read_floats(hid_t file, const char *path, const char *key, float *v, int n)
{
    return attr_read_n(file, path, key, H5T_NATIVE_FLOAT, v, n, "a number");
}

int evit_h5_attr_read_doubles(hid_t file, const char *path, const char *key, double *v, int n)
{
    return attr_read_n(file, path, key, H5T_NATIVE_DOUBLE, v, n, "a number");
}

int evit_h5_attr_read_double(hid_t file, const char *path, const char *key, double *v)
{
    return evit_h5_attr_read_doubles(file, path, key, v, 1);
}

int evit_h5_check_format(hid_t file, const char *path, const char *expect, int max_version)
{
    char *fmt = NULL;
    int version = 0;
    if (!evit_h5_attr_exists(file, "format"))
        return evit_error("%s: not an evit %s file (no 'format' attribute)", path, expect + 5);
    if (evit_h5_attr_read_string(file, path, "format", &fmt) < 0) return EVIT_ERR;
    int same = strcmp(fmt, expect) == 0;
    if (!same) {
        evit_error("%s: is a %s file, expected %s", path, fmt, expect);
        free(fmt);
        return EVIT_ERR;
    }
    free(fmt);
    if (evit_h5_attr_read_ints(file, path, "format_version", &version, 1) < 0) return EVIT_ERR;
    if (version < 1 || version > max_version)
        return evit_error("%s: format_version %d is not supported (this evit reads up to %d)",
                          path, version, max_version);
    return EVIT_OK;
}

int evit_h5_write_format(hid_t file, const char *format, int version)
{
    if (evit_h5_attr_write_string(file, "format", format) < 0) return EVIT_ERR;
    return evit_h5_attr_write_ints(file, "format_version", &version, 1);
}
