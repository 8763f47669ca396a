/*
 * spill.c - bytes kept in memory up to a budget, then in an unnamed file
 * (see spill.h).
 *
 * Invariant: a record is never split between memory and the file: once
 * one did not fit the budget, it and everything after it go to the file,
 * so an offset below mem.len is in memory and any other in the file at
 * offset - mem.len.
 */
#include "sync/spill.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

void dm_spill_init(struct dm_spill *s, size_t budget, const char *dir)
{
	dm_buf_init(&s->mem, 0);
	s->fd = -1;
	s->file_len = 0;
	s->budget = budget;
	s->dir = dir;
}

int dm_spill_add(struct dm_spill *s, const void *data, size_t len, uint64_t *off,
		 struct dm_err *err)
{
	if (s->fd < 0 && s->mem.len + len <= s->budget) {
		*off = s->mem.len;
		if (dm_buf_add(&s->mem, data, len))
			return dm_err_set(err, DM_ENOMEM, "out of memory holding fetched objects");
		return 0;
	}
	if (s->fd < 0) {
		s->fd = open(s->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (s->fd < 0)
			return dm_err_errno(err, errno,
					    "cannot make a temporary file in '%s' for fetched objects",
					    s->dir);
	}
	if (dm_pwrite_all(s->fd, data, len, (off_t)s->file_len) < 0)
		return dm_err_errno(err, errno, "cannot write fetched objects aside in '%s'",
				    s->dir);
	*off = s->mem.len + s->file_len;
	s->file_len += len;
	return 0;
}

int dm_spill_get(struct dm_spill *s, uint64_t off, size_t len, struct dm_buf *scratch,
		 const unsigned char **out, struct dm_err *err)
{
	if (off < s->mem.len) {
		*out = (const unsigned char *)s->mem.data + off;
		return 0;
	}
	dm_buf_reset(scratch);
	if (dm_buf_grow(scratch, len))
		return dm_err_set(err, DM_ENOMEM, "out of memory reading fetched objects back");
	if (dm_pread_all(s->fd, scratch->data, len, (off_t)(off - s->mem.len)) < 0)
		return dm_err_errno(err, errno, "cannot read fetched objects back from '%s'",
				    s->dir);
	scratch->len = len;
	*out = scratch->data;
	return 0;
}

size_t dm_spill_in_memory(const struct dm_spill *s)
{
	return s->mem.len;
}

void dm_spill_release(struct dm_spill *s)
{
	dm_buf_release(&s->mem);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->file_len = 0;
}
