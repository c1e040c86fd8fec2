/* schedule.c: see schedule.h. */
#include "schedule.h"

#include <errno.h>
#include <stdlib.h>

#include "util.h"

int evit_schedule_uniform(struct evit_vit_config *c, int r, const char *where)
{
    struct evit_vit_config t = *c;
    for (int l = 0; l < t.depth; l++) t.blocks[l].merge_r = l + 1 < t.depth ? r : 0;
    if (evit_config_validate(&t, where) < 0) return EVIT_ERR;
    *c = t;
    return EVIT_OK;
}

int evit_schedule_max_uniform(const struct evit_vit_config *c)
{
    /* tokens fall with r, so the fitting r form a prefix of 0, 1, 2, ... */
    struct evit_vit_config t = *c;
    int r = 0;
    for (int l = 0; l < t.depth; l++) t.blocks[l].merge_r = 0;
    for (;;) {
        int fits = 1;
        for (int l = 0; l + 1 < t.depth && fits; l++) {
            int T = evit_config_tokens(&t) - l * (r + 1);
            fits = r + 1 <= (T + 1) / 2 - 1;
        }
        if (!fits || t.depth < 2) return r;
        r++;
    }
}

int evit_schedule_parse(struct evit_vit_config *c, const char *list, const char *where)
{
    struct evit_vit_config t = *c;
    const char *s = list;
    int l = 0;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > 65536 || (*end && *end != ','))
            return evit_error("%s: --schedule: '%s' is not a comma-separated list of counts", where, list);
        if (l >= t.depth)
            return evit_error("%s: --schedule: more than the model's %d blocks", where, t.depth);
        t.blocks[l++].merge_r = (int)v;
        s = *end ? end + 1 : end;
    }
    if (l != t.depth)
        return evit_error("%s: --schedule: %d counts for the model's %d blocks", where, l, t.depth);
    if (evit_config_validate(&t, where) < 0) return EVIT_ERR;
    *c = t;
    return EVIT_OK;
}
