/*
 * oidmap.c - linear-probing hash map keyed by SHA-256 ids.
 *
 * A slot is: the value (first, so it is aligned like malloc's memory), the
 * id, a used byte, padded to a multiple of 8 bytes.
 *
 * Invariants: cap is 0 or a power of two; count <= cap * 3 / 4 after every
 * put; ids are already uniformly random, so their first 8 bytes are the hash.
 */
#include "store/oidmap.h"
#include "util/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

static size_t slot_size(const struct dm_oidmap *m)
{
	return (m->value_size + DM_OID_RAWSZ + 1 + 7) & ~(size_t)7;
}

/* Offsets inside a slot. */
#define ID_AT(m)   ((m)->value_size)
#define USED_AT(m) ((m)->value_size + DM_OID_RAWSZ)

static unsigned char *slot(const struct dm_oidmap *m, size_t i)
{
	return m->slots + i * slot_size(m);
}

static size_t hash_of(const dm_oid *id)
{
	uint64_t h;

	memcpy(&h, id->b, sizeof(h));
	return (size_t)h;
}

void dm_oidmap_init(struct dm_oidmap *m, size_t value_size)
{
	memset(m, 0, sizeof(*m));
	m->value_size = value_size;
}

void dm_oidmap_release(struct dm_oidmap *m)
{
	free(m->slots);
	m->slots = NULL;
	m->cap = 0;
	m->count = 0;
}

void dm_oidmap_clear(struct dm_oidmap *m)
{
	if (m->slots)
		memset(m->slots, 0, m->cap * slot_size(m));
	m->count = 0;
}

static unsigned char *find(const struct dm_oidmap *m, const dm_oid *id)
{
	size_t mask = m->cap - 1;

	for (size_t i = hash_of(id) & mask;; i = (i + 1) & mask) {
		unsigned char *s = slot(m, i);

		if (!s[USED_AT(m)] || !memcmp(s + ID_AT(m), id->b, DM_OID_RAWSZ))
			return s;
	}
}

void *dm_oidmap_get(const struct dm_oidmap *m, const dm_oid *id)
{
	unsigned char *s;

	if (!m->cap)
		return NULL;
	s = find(m, id);
	return s[USED_AT(m)] ? s : NULL;
}

static void grow(struct dm_oidmap *m)
{
	struct dm_oidmap bigger = *m;

	bigger.cap = m->cap ? m->cap * 2 : 64;
	bigger.count = 0;
	bigger.slots = dm_xcalloc(bigger.cap, slot_size(m));
	for (size_t i = 0; i < m->cap; i++) {
		unsigned char *s = slot(m, i);

		if (s[USED_AT(m)])
			dm_oidmap_put(&bigger, (const dm_oid *)(s + ID_AT(m)), s);
	}
	free(m->slots);
	*m = bigger;
}

void dm_oidmap_put(struct dm_oidmap *m, const dm_oid *id, const void *value)
{
	unsigned char *s;

	if ((m->count + 1) * 4 > m->cap * 3)
		grow(m);
	s = find(m, id);
	if (!s[USED_AT(m)]) {
		s[USED_AT(m)] = 1;
		memcpy(s + ID_AT(m), id->b, DM_OID_RAWSZ);
		m->count++;
	}
	if (m->value_size) {
		if (value)
			memcpy(s, value, m->value_size);
		else
			memset(s, 0, m->value_size);
	}
}

int dm_oidmap_next(const struct dm_oidmap *m, size_t *iter, const dm_oid **id, void **value)
{
	for (; *iter < m->cap; (*iter)++) {
		unsigned char *s = slot(m, *iter);

		if (s[USED_AT(m)]) {
			*id = (const dm_oid *)(s + ID_AT(m));
			if (value)
				*value = s;
			(*iter)++;
			return 1;
		}
	}
	return 0;
}
