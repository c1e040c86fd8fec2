/* schedule.h: Token Merging schedules for evit-merge: which merge_r each
 * block of a config gets (model/config.h, model/merge.h). */
#ifndef EVIT_SCHEDULE_H
#define EVIT_SCHEDULE_H

#include "config.h"

/* r in every block but the last (whose merging would change nothing the
 * head sees: the class token never merges); EVIT_ERR, naming where, when r
 * does not fit some block's tokens. */
int evit_schedule_uniform(struct evit_vit_config *c, int r, const char *where);

/* The largest r evit_schedule_uniform accepts for c's token count. */
int evit_schedule_max_uniform(const struct evit_vit_config *c);

/* "8,8,4,..." with exactly depth non-negative integers; EVIT_ERR, naming
 * where, on a malformed list or one that does not fit. */
int evit_schedule_parse(struct evit_vit_config *c, const char *list, const char *where);

#endif
