/*
 * spill.h - bytes kept for later, in memory up to a budget and past it in
 * an unnamed temporary file (O_TMPFILE) in a given directory: what a pull
 * holds between fetching objects and storing them (walk.c), so that its
 * memory stays bounded however large the trees it fetches.
 *
 * Invariants: at most budget bytes are in memory; every byte added is
 * readable at the offset dm_spill_add gave until dm_spill_release; the
 * file has no name, so nothing is left behind whatever ends the process.
 */
#ifndef DM_SYNC_SPILL_H
#define DM_SYNC_SPILL_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct dm_err;

struct dm_spill {
	struct dm_buf mem; /* offsets [0, mem.len) */
	int fd;            /* offsets from mem.len on, or -1 */
	uint64_t file_len;
	size_t budget;
	const char *dir;
};

/* Empty, keeping at most budget bytes in memory, spilling into dir. */
void dm_spill_init(struct dm_spill *s, size_t budget, const char *dir);
/* Appends len bytes; their offset into *off. */
int dm_spill_add(struct dm_spill *s, const void *data, size_t len, uint64_t *off,
		 struct dm_err *err);
/* The len bytes at off: *out points into memory, or into scratch when
 * they were spilled (read back). */
int dm_spill_get(struct dm_spill *s, uint64_t off, size_t len, struct dm_buf *scratch,
		 const unsigned char **out, struct dm_err *err);
/* Bytes in memory now. */
size_t dm_spill_in_memory(const struct dm_spill *s);
void dm_spill_release(struct dm_spill *s);

#endif
