/* json.c: see json.h. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void line_col(const char *text, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

int evit_json_read(const char *path, cJSON **out)
{
    uint8_t *text = NULL;
    size_t n = 0;
    if (evit_read_file(path, &text, &n) < 0) return EVIT_ERR;
    text[n] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts((const char *)text, &end, 1);
    if (!root) {
        int line, col;
        line_col((const char *)text, end ? end : (const char *)text, &line, &col);
        free(text);
        return evit_error("%s: invalid JSON near line %d, column %d", path, line, col);
    }
    free(text);
    *out = root;
    return EVIT_OK;
}

int evit_json_load(const char *path, cJSON **out)
{
    cJSON *root;
    if (evit_json_read(path, &root) < 0) return EVIT_ERR;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return evit_error("%s: top level must be a JSON object", path);
    }
    *out = root;
    return EVIT_OK;
}

static void key_name(char *buf, size_t n, const char *where, const char *key)
{
    if (where && *where)
        snprintf(buf, n, "%s.%s", where, key);
    else
        snprintf(buf, n, "%s", key);
}

int evit_json_check_keys(const cJSON *obj, const char *file, const char *where,
                         const char *const *allowed)
{
    char name[256];
    if (!cJSON_IsObject(obj)) {
        return evit_error("%s: %s: must be an object", file, where && *where ? where : "(top)");
    }
    for (const cJSON *it = obj->child; it; it = it->next) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++) {
            if (strcmp(*a, it->string) == 0) {
                ok = 1;
                break;
            }
        }
        if (!ok) {
            key_name(name, sizeof name, where, it->string);
            return evit_error("%s: %s: unknown key", file, name);
        }
    }
    return EVIT_OK;
}

/* obj's member key into *v with its dotted name in name[256]: 1 when
 * present, 0 when absent and optional, EVIT_ERR (named) when absent and
 * required. */
static int member(const cJSON *obj, const char *file, const char *where, const char *key, int required,
                  char *name, const cJSON **v)
{
    *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    key_name(name, 256, where, key);
    if (*v) return 1;
    return required ? evit_error("%s: %s: required key is missing", file, name) : 0;
}

int evit_json_get_double(const cJSON *obj, const char *file, const char *where,
                         const char *key, int required, double lo, double hi,
                         double *out)
{
    char name[256];
    const cJSON *v;
    int rc = member(obj, file, where, key, required, name, &v);
    if (rc <= 0) return rc;
    if (!cJSON_IsNumber(v)) return evit_error("%s: %s: must be a number", file, name);
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi)
        return evit_error("%s: %s: %g is out of range [%g, %g]", file, name, d, lo, hi);
    *out = d;
    return EVIT_OK;
}

int evit_json_get_int(const cJSON *obj, const char *file, const char *where,
                      const char *key, int required, long lo, long hi, int *out)
{
    char name[256];
    const cJSON *v;
    int rc = member(obj, file, where, key, required, name, &v);
    if (rc <= 0) return rc;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return evit_error("%s: %s: must be an integer", file, name);
    double d = v->valuedouble;
    if (d < (double)lo || d > (double)hi)
        return evit_error("%s: %s: %.0f is out of range [%ld, %ld]", file, name, d, lo, hi);
    *out = (int)d;
    return EVIT_OK;
}

int evit_json_get_bool(const cJSON *obj, const char *file, const char *where,
                       const char *key, int required, int *out)
{
    char name[256];
    const cJSON *v;
    int rc = member(obj, file, where, key, required, name, &v);
    if (rc <= 0) return rc;
    if (!cJSON_IsBool(v)) return evit_error("%s: %s: must be true or false", file, name);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return EVIT_OK;
}

int evit_json_get_string(const cJSON *obj, const char *file, const char *where,
                         const char *key, int required, const char **out)
{
    char name[256];
    const cJSON *v;
    int rc = member(obj, file, where, key, required, name, &v);
    if (rc <= 0) return rc;
    if (!cJSON_IsString(v)) return evit_error("%s: %s: must be a string", file, name);
    *out = v->valuestring;
    return EVIT_OK;
}

int evit_json_get_choice(const cJSON *obj, const char *file, const char *where, const char *key,
                         const char *const *names, const int *values, int *out)
{
    const char *s = NULL;
    char list[256] = "";
    if (evit_json_get_string(obj, file, where, key, 0, &s) < 0) return EVIT_ERR;
    if (!s) return EVIT_OK;
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = values[i];
            return EVIT_OK;
        }
    /* no match: only now the list the message names */
    for (int i = 0; names[i]; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", names[i]);
    }
    return evit_error("%s: %s%s%s: '%s' is not one of %s", file, where, *where ? "." : "", key, s, list);
}

int evit_json_save(const cJSON *root, const char *path)
{
    char *text = cJSON_Print(root);
    EVIT_ASSERT(text != NULL);
    size_t n = strlen(text);
    char *line = evit_malloc(n + 2); /* the text and a final newline */
    memcpy(line, text, n);
    line[n] = '\n';
    int rc = evit_write_file(path, line, n + 1);
    free(line);
    free(text);
    return rc;
}
