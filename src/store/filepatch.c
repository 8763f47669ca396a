/*
 * filepatch.c - bringing an existing regular file to the content of a file
 * object in place, changing only what differs (dm_filedata_patch).
 *
 * Three steps, in offset order of nothing but their own: a file longer
 * than the object is truncated first (nothing is written past the end
 * only to be cut off); then every extent of the object that the file does
 * not hold already is written; then every gap of the object (between
 * extents, and after the last) is cleared of the data the file has there;
 * last the size is set.
 *
 * An extent is held already when base (what the file holds, vouched for
 * by the caller's cache) has the same chunk at the same offset, or,
 * without base, when the range lies wholly in data (SEEK_HOLE) and hashes
 * to the chunk. One that is not is written whole where the file has a
 * hole under it; where it has data, only the blocks whose bytes differ
 * are (read and compared first), so the writes follow the bytes that
 * changed, not the chunks. Data found in a gap is punched out (FALLOC_FL_PUNCH_HOLE
 * with KEEP_SIZE) - unless it reads as zeros and spans no whole block of
 * its own (the tail of a block an extent ends in, which a fresh write
 * allocates too), so an unchanged file is never touched.
 *
 * Invariants: the result is, byte for byte and hole for hole, what
 * dm_filedata_write makes of the object in an empty file: data under every
 * extent, no whole block of data in any gap, the object's size. before()
 * returns 0 before every change; nothing changes after it fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/filedata.h"
#include "store/object.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

struct patch {
	struct dm_store *s;
	struct dm_filedata_ctx *ctx;
	int fd;
	uint64_t block;
	uint64_t size; /* the file's size as it is now */
	int (*before)(void *arg, struct dm_err *err);
	void *arg;
	uint64_t written;
	bool changed;
	const char *name;
};

static int change(struct patch *p, struct dm_err *err)
{
	p->changed = true;
	return p->before ? p->before(p->arg, err) : 0;
}

/* Whether [off, off + len) of the file lies wholly in data. */
static bool all_data(const struct patch *p, uint64_t off, uint64_t len)
{
	off_t h;

	if (off + len > p->size)
		return false;
	h = lseek(p->fd, (off_t)off, SEEK_HOLE);
	return h >= 0 && (uint64_t)h >= off + len;
}

/* Whether base has e (same offset, length and chunk); *j walks base's
 * extents in offset order across calls. */
static bool base_holds(const struct dm_file *base, size_t *j, const struct dm_extent *e)
{
	while (*j < base->n && base->ext[*j].offset < e->offset)
		(*j)++;
	return *j < base->n && base->ext[*j].offset == e->offset && base->ext[*j].len == e->len &&
	       !dm_oid_cmp(&base->ext[*j].id, &e->id);
}

/* Writes extent e whole (where the file has a hole, or ends, under it). */
static int write_whole(struct patch *p, const struct dm_extent *e, struct dm_err *err)
{
	int rc = change(p, err);

	if (!rc)
		rc = dm_filedata_write_extent(p->s, p->ctx, p->fd, e, p->name, err);
	if (!rc)
		p->written += e->len;
	return rc;
}

/* Writes of extent e, which lies wholly in data, only the blocks whose
 * bytes differ from the file's (a change of 64 KiB inside a 256 KiB chunk
 * writes 64 KiB): the file's bytes are read into the window, compared a
 * block at a time, and each run of differing blocks is written at once. */
static int write_blocks(struct patch *p, const struct dm_extent *e, struct dm_err *err)
{
	const unsigned char *want;
	uint64_t run = 0, pos = 0;
	bool in_run = false;
	int rc = dm_filedata_get_chunk(p->s, p->ctx, e, p->name, err);

	if (!rc)
		rc = dm_filedata_window(p->ctx, e->len, err);
	if (rc)
		return rc;
	if (dm_pread_all(p->fd, p->ctx->buf, e->len, (off_t)e->offset) < 0)
		return dm_err_errno(err, errno, "cannot read '%s'", p->name);
	want = p->ctx->obj.data;
	/* block boundaries of the file, so a run never splits a block */
	while (pos <= e->len) {
		uint64_t next = (e->offset + pos) / p->block * p->block + p->block - e->offset;
		bool differs;

		if (next > e->len)
			next = e->len;
		differs = pos < e->len && memcmp(want + pos, p->ctx->buf + pos, next - pos) != 0;
		if (differs && !in_run) {
			run = pos;
			in_run = true;
		} else if (!differs && in_run) {
			rc = change(p, err);
			if (rc)
				return rc;
			if (dm_pwrite_all(p->fd, want + run, pos - run, (off_t)(e->offset + run)) <
			    0)
				return dm_err_errno(err, errno, "cannot write '%s'", p->name);
			p->written += pos - run;
			in_run = false;
		}
		if (pos == e->len)
			break;
		pos = next;
	}
	return 0;
}

static int write_extents(struct patch *p, const struct dm_file *base, const struct dm_file *f,
			 struct dm_err *err)
{
	size_t j = 0;
	int rc;

	for (size_t i = 0; i < f->n; i++) {
		const struct dm_extent *e = &f->ext[i];
		bool same = false;

		if (base) {
			same = base_holds(base, &j, e);
		} else if (all_data(p, e->offset, e->len)) {
			rc = dm_filedata_extent_same(p->ctx, p->fd, e, &same, p->name, err);
			if (rc)
				return rc;
		}
		if (same)
			continue;
		rc = all_data(p, e->offset, e->len) ? write_blocks(p, e, err)
						    : write_whole(p, e, err);
		if (rc)
			return rc;
		if (e->offset + e->len > p->size)
			p->size = e->offset + e->len;
	}
	return 0;
}

/* Clears [start, end) (a gap of the object) of the file's data. */
static int clear_gap(struct patch *p, uint64_t start, uint64_t end, struct dm_err *err)
{
	uint64_t pos = start;
	int rc;

	if (end > p->size)
		end = p->size;
	while (pos < end) {
		off_t d = lseek(p->fd, (off_t)pos, SEEK_DATA), h;
		uint64_t stop, first_whole;
		bool zero = false;

		if (d < 0 && errno == ENXIO)
			return 0;
		if (d < 0)
			return dm_err_errno(err, errno, "cannot read '%s'", p->name);
		if ((uint64_t)d >= end)
			return 0;
		h = lseek(p->fd, d, SEEK_HOLE);
		stop = h >= 0 && (uint64_t)h < end ? (uint64_t)h : end;
		/* a whole block of data in the gap: one a fresh write leaves a hole */
		first_whole = ((uint64_t)d + p->block - 1) / p->block * p->block;
		if (first_whole + p->block > stop && !(first_whole < stop && stop == p->size)) {
			rc = dm_filedata_zero(p->ctx, p->fd, (uint64_t)d, stop, &zero, p->name,
					      err);
			if (rc)
				return rc;
		}
		if (!zero) {
			rc = change(p, err);
			if (rc)
				return rc;
			if (fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, d,
				      (off_t)(stop - (uint64_t)d)) < 0)
				return dm_err_errno(err, errno, "cannot punch a hole into '%s'",
						    p->name);
		}
		pos = stop;
	}
	return 0;
}

static int set_size(struct patch *p, uint64_t size, struct dm_err *err)
{
	int rc = change(p, err);

	if (rc)
		return rc;
	if (ftruncate(p->fd, (off_t)size) < 0)
		return dm_err_errno(err, errno, "cannot set the size of '%s'", p->name);
	p->size = size;
	return 0;
}

int dm_filedata_patch(struct dm_store *s, struct dm_filedata_ctx *ctx, int fd,
		      const struct dm_file *base, const struct dm_file *f,
		      int (*before)(void *arg, struct dm_err *err), void *arg, uint64_t *written,
		      bool *changed, const char *name, struct dm_err *err)
{
	struct patch p = {s, ctx, fd, 4096, 0, before, arg, 0, false, name};
	struct stat st;
	uint64_t pos = 0;
	int rc = 0;

	*written = 0;
	*changed = false;
	if (fstat(fd, &st) < 0)
		return dm_err_errno(err, errno, "cannot stat '%s'", name);
	if (base && base->size != (uint64_t)st.st_size)
		base = NULL; /* not what the caller thought: compare instead */
	p.size = (uint64_t)st.st_size;
	if (st.st_blksize > 0)
		p.block = (uint64_t)st.st_blksize;
	if (p.size > f->size)
		rc = set_size(&p, f->size, err);
	if (!rc)
		rc = write_extents(&p, base, f, err);
	for (size_t i = 0; !rc && i <= f->n; i++) {
		uint64_t end = i < f->n ? f->ext[i].offset : f->size;

		if (end > pos)
			rc = clear_gap(&p, pos, end, err);
		if (i < f->n)
			pos = f->ext[i].offset + f->ext[i].len;
	}
	if (!rc && p.size != f->size)
		rc = set_size(&p, f->size, err);
	*written = p.written;
	*changed = p.changed;
	return rc;
}
