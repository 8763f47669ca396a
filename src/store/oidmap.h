/*
 * oidmap.h - an open-addressing hash map from object id to a fixed-size
 * value, for sets of ids held in memory (objects not yet indexed, objects
 * seen during a walk). Not thread-safe: the owner serialises access.
 */
#ifndef DM_STORE_OIDMAP_H
#define DM_STORE_OIDMAP_H

#include <stddef.h>

#include "util/hash.h"

struct dm_oidmap {
	size_t value_size;
	size_t count;
	size_t cap;            /* a power of two, or 0 */
	unsigned char *slots;  /* cap slots of: value, id, used byte */
};

void dm_oidmap_init(struct dm_oidmap *m, size_t value_size);
void dm_oidmap_release(struct dm_oidmap *m);
void dm_oidmap_clear(struct dm_oidmap *m);
/* Returns the value slot for id (borrowed until the next put or clear), or
 * NULL when absent. */
void *dm_oidmap_get(const struct dm_oidmap *m, const dm_oid *id);
/* Inserts or overwrites; value may be NULL for a set. */
void dm_oidmap_put(struct dm_oidmap *m, const dm_oid *id, const void *value);
/* Iteration: for (i = 0; dm_oidmap_next(m, &i, &id, &value);) */
int dm_oidmap_next(const struct dm_oidmap *m, size_t *iter, const dm_oid **id, void **value);

#endif
