/* json.h: strict reading of JSON configs through cJSON, and atomic writing.
 *
 * Every config in evit is read strictly: a key the reader does not know, a
 * value of the wrong type or one out of range is an error, reported as
 * "error: <file>: <key>: <what is wrong>".  Nested keys are named with dots
 * ("optimizer.lr", "blocks.0.heads"), so a user finds the line to edit.
 *
 * Ownership: evit_json_load returns a cJSON tree the caller frees with
 * cJSON_Delete; the getters never allocate except evit_json_get_string, whose
 * result points into the tree. */
#ifndef EVIT_JSON_H
#define EVIT_JSON_H

#include <cJSON.h>

/* Parses path; on a syntax error names the line and column. */
int evit_json_load(const char *path, cJSON **out);
/* The same for any JSON value, not only an object. */
int evit_json_read(const char *path, cJSON **out);

/* Fails on any member of obj whose key is not in the NULL-terminated list.
 * where is the dotted prefix ("" at top level). */
int evit_json_check_keys(const cJSON *obj, const char *file, const char *where,
                         const char *const *allowed);

/* Each getter: absent and !required -> leaves *out untouched, returns 0.
 * Absent and required, wrong type, out of [lo, hi] -> error. */
int evit_json_get_int(const cJSON *obj, const char *file, const char *where,
                      const char *key, int required, long lo, long hi, int *out);
int evit_json_get_double(const cJSON *obj, const char *file, const char *where,
                         const char *key, int required, double lo, double hi,
                         double *out);
int evit_json_get_bool(const cJSON *obj, const char *file, const char *where,
                       const char *key, int required, int *out);
int evit_json_get_string(const cJSON *obj, const char *file, const char *where,
                         const char *key, int required, const char **out);
/* A string naming one of a fixed set: names is NULL-terminated and *out
 * becomes values[i] for the matching names[i]; any other string is
 * "KEY: 'S' is not one of A, B, C". Absent: *out untouched. */
int evit_json_get_choice(const cJSON *obj, const char *file, const char *where, const char *key,
                         const char *const *names, const int *values, int *out);

/* Writes the tree, pretty-printed, to a temporary file renamed into place. */
int evit_json_save(const cJSON *root, const char *path);

#endif
