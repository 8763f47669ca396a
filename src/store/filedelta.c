/*
 * filedelta.c - storing a changed file by reading only what changed, when
 * an earlier version of it shares its unchanged blocks (a btrfs snapshot
 * and the next one, reflinked copies): see dm_filedata_store_delta.
 *
 * Which bytes are unchanged comes from FIEMAP: a logical range that both
 * files map to the same physical bytes (same extent, same offset in it)
 * holds the same data, since both files are frozen. The file is then
 * chunked as dm_filedata_store would, except that at a cut position where
 * the base file's object has a chunk that starts there, lies wholly in
 * unchanged bytes, and was cut by its content rather than by the end of
 * the base file (or ends exactly where the new file ends), that chunk is
 * taken as it is, unread: FastCDC's cut depends only on the bytes of the
 * chunk itself (chunker.c), so reading it would cut and hash it the same.
 * Elsewhere chunks are read and cut from the current position, which falls
 * back into step with the base's cuts shortly after a changed range.
 *
 * The same extent maps also say how many bytes of a working copy changed
 * since its snapshot (dm_filedata_changed_bytes), and the same idea the
 * other way writes a changed file as a reflinked copy of its previous
 * version with only the differing chunks rewritten (dm_filedata_write_delta).
 *
 * Invariants: the result is the file object dm_filedata_store would make
 * of the same bytes (same extents, same ids); only files without holes on
 * both sides take this path (a single data region, as filedata.c chunks
 * them), anything else - holes, inline or unknown extents, no FIEMAP -
 * falls back to dm_filedata_store. Reads never go past the new file's
 * size; a file that ends early fails (frozen files do not).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/chunker.h"
#include "store/filedata.h"
#include "store/object.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/hash.h"

#include "util/banned.h"

#define FIEMAP_BATCH 256
/* Extents flags that say nothing reliable about where the bytes are. */
#define FE_UNUSABLE                                                                                \
	(FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_DATA_INLINE |              \
	 FIEMAP_EXTENT_NOT_ALIGNED | FIEMAP_EXTENT_DATA_TAIL | FIEMAP_EXTENT_UNWRITTEN)

struct fext {
	uint64_t log, phys, len;
	uint32_t flags;
};

struct range {
	uint64_t start, end;
};

/* Every extent FIEMAP reports for fd below size; -1 when it cannot.
 * flags: FIEMAP_FLAG_SYNC to write back what is cached first (a file that
 * is still being written: until then btrfs maps an overwritten range to
 * the blocks it had). */
static int fiemap_all(int fd, uint64_t size, uint32_t flags, struct fext **out, size_t *n)
{
	size_t bytes = sizeof(struct fiemap) + FIEMAP_BATCH * sizeof(struct fiemap_extent);
	struct fiemap *fm = dm_xmalloc(bytes);
	struct fext *list = NULL;
	size_t count = 0, alloc = 0;
	uint64_t next = 0;
	bool last = false;

	while (!last && next < size) {
		memset(fm, 0, bytes);
		fm->fm_start = next;
		fm->fm_length = FIEMAP_MAX_OFFSET - next;
		fm->fm_extent_count = FIEMAP_BATCH;
		fm->fm_flags = next ? 0 : flags;
		if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
			free(fm);
			free(list);
			return -1;
		}
		if (!fm->fm_mapped_extents)
			break;
		for (uint32_t i = 0; i < fm->fm_mapped_extents; i++) {
			const struct fiemap_extent *e = &fm->fm_extents[i];

			if (count == alloc) {
				alloc = alloc ? alloc * 2 : 64;
				list = dm_xrealloc(list, alloc * sizeof(*list));
			}
			list[count].log = e->fe_logical;
			list[count].phys = e->fe_physical;
			list[count].len = e->fe_length;
			list[count].flags = e->fe_flags;
			count++;
			next = e->fe_logical + e->fe_length;
			if (e->fe_flags & FIEMAP_EXTENT_LAST)
				last = true;
		}
	}
	free(fm);
	*out = list;
	*n = count;
	return 0;
}

/* The ranges below limit that a and b map to the same physical bytes,
 * sorted and merged. */
static void same_ranges(const struct fext *a, size_t na, const struct fext *b, size_t nb,
			uint64_t limit, struct range **out, size_t *n)
{
	struct range *r = NULL;
	size_t i = 0, j = 0, count = 0, alloc = 0;

	while (i < na && j < nb) {
		const struct fext *x = &a[i], *y = &b[j];
		uint64_t lo = x->log > y->log ? x->log : y->log;
		uint64_t hi = x->log + x->len < y->log + y->len ? x->log + x->len : y->log + y->len;
		bool same = false;

		if (hi > limit)
			hi = limit;
		if (lo < hi && !(x->flags & FE_UNUSABLE) && !(y->flags & FE_UNUSABLE)) {
			if ((x->flags | y->flags) & FIEMAP_EXTENT_ENCODED)
				same = x->log == y->log && x->phys == y->phys && x->len == y->len &&
				       (x->flags & FIEMAP_EXTENT_ENCODED) &&
				       (y->flags & FIEMAP_EXTENT_ENCODED);
			else
				same = x->phys + (lo - x->log) == y->phys + (lo - y->log);
		}
		if (same) {
			if (count && r[count - 1].end == lo) {
				r[count - 1].end = hi;
			} else {
				if (count == alloc) {
					alloc = alloc ? alloc * 2 : 32;
					r = dm_xrealloc(r, alloc * sizeof(*r));
				}
				r[count].start = lo;
				r[count].end = hi;
				count++;
			}
		}
		if (x->log + x->len <= y->log + y->len)
			i++;
		else
			j++;
	}
	*out = r;
	*n = count;
}

/* Whether [start, end) lies in one of the sorted, merged ranges r. */
static bool covered(const struct range *r, size_t n, uint64_t start, uint64_t end)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r[mid].end <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && r[lo].start <= start && end <= r[lo].end;
}

/* Whether fd (size bytes, blocks 512-byte blocks) is one data region. */
static bool dense(int fd, uint64_t size, uint64_t blocks)
{
	off_t d, h;

	if (blocks * 512 >= size)
		return true;
	d = lseek(fd, 0, SEEK_DATA);
	h = d == 0 ? lseek(fd, 0, SEEK_HOLE) : -1;
	return size == 0 || (d == 0 && h >= 0 && (uint64_t)h >= size);
}

/* Whether f's extents cover [0, f->size) with no gap. */
static bool contiguous(const struct dm_file *f)
{
	uint64_t pos = 0;

	for (size_t i = 0; i < f->n; i++) {
		if (f->ext[i].offset != pos)
			return false;
		pos += f->ext[i].len;
	}
	return pos == f->size;
}

struct out_ext {
	struct dm_extent *e;
	size_t n, alloc;
};

static void out_add(struct out_ext *o, uint64_t off, uint32_t len, const dm_oid *id)
{
	if (o->n == o->alloc) {
		o->alloc = o->alloc ? o->alloc * 2 : 64;
		o->e = dm_xrealloc(o->e, o->alloc * sizeof(*o->e));
	}
	o->e[o->n].offset = off;
	o->e[o->n].len = len;
	o->e[o->n].id = *id;
	o->n++;
}

/* The chunking walk; base and same describe what may be taken unread. */
static int delta_walk(struct dm_store *s, struct dm_filedata_ctx *ctx, int fd, uint64_t size,
		      const struct dm_file *base, const struct range *same, size_t nsame,
		      const char *name, const char *ext_path, struct out_ext *o,
		      struct dm_filedata_result *res, struct dm_err *err)
{
	const struct dm_chunker_params *p = dm_store_chunker(s);
	size_t want = 2 * (size_t)p->max, k = 0, have = 0;
	uint64_t pos = 0, wbase = 0;
	int rc;

	if (ctx->cap < want) {
		unsigned char *nb = realloc(ctx->buf, want);

		if (!nb)
			return dm_err_set(err, DM_ENOMEM, "out of memory for a read buffer");
		ctx->buf = nb;
		ctx->cap = want;
	}
	while (pos < size) {
		uint64_t need = size - pos < p->max ? size - pos : p->max;
		size_t c;
		dm_oid id;

		while (k < base->n && base->ext[k].offset < pos)
			k++;
		if (k < base->n && base->ext[k].offset == pos) {
			const struct dm_extent *e = &base->ext[k];
			uint64_t end = pos + e->len;
			bool last = k + 1 == base->n;

			if (end <= size && (!last || end == size) &&
			    covered(same, nsame, pos, end)) {
				out_add(o, pos, e->len, &e->id);
				res->chunks++;
				pos = end;
				continue;
			}
		}
		if (pos < wbase || pos + need > wbase + have) { /* refill: window from pos */
			uint64_t len = size - pos < want ? size - pos : want;
			size_t keep = 0;

			if (pos >= wbase && pos < wbase + have) { /* keep what is read already */
				keep = (size_t)(wbase + have - pos);
				memmove(ctx->buf, ctx->buf + (pos - wbase), keep);
			}
			if (dm_pread_all(fd, ctx->buf + keep, (size_t)len - keep,
					 (off_t)(pos + keep)) < 0)
				return dm_err_errno(err, errno, "cannot read '%s'", name);
			res->bytes_read += len - keep;
			wbase = pos;
			have = (size_t)len;
		}
		c = dm_chunker_cut(p, ctx->buf + (pos - wbase), (size_t)(wbase + have - pos));
		rc = dm_filedata_put_chunk(&id, s, ctx->buf + (pos - wbase), c, pos, ext_path, res,
					   err);
		if (rc)
			return rc;
		out_add(o, pos, (uint32_t)c, &id);
		pos += c;
	}
	return 0;
}

int dm_filedata_store_delta(struct dm_store *s, struct dm_filedata_ctx *ctx, dm_oid *out, int fd,
			    uint64_t size, uint64_t blocks, const char *name, const char *ext_path,
			    int base_fd, const dm_oid *base_id, struct dm_filedata_result *res,
			    struct dm_err *err)
{
	struct dm_file base = {0, 0, NULL}, f;
	struct fext *a = NULL, *b = NULL;
	struct range *same = NULL;
	struct out_ext o = {NULL, 0, 0};
	size_t na = 0, nb = 0, nsame = 0;
	struct stat bst;
	int rc;

	memset(res, 0, sizeof(*res));
	if (size > DM_FILE_MAX_SIZE)
		return dm_err_set(err, DM_ETOOBIG, "'%s' is too large to store", name);
	if (fstat(base_fd, &bst) < 0 || !dense(fd, size, blocks) ||
	    !dense(base_fd, (uint64_t)bst.st_size, (uint64_t)bst.st_blocks))
		goto full;
	if (dm_filedata_load(s, ctx, &base, base_id, err))
		goto full;
	if (base.size != (uint64_t)bst.st_size || !contiguous(&base))
		goto full;
	if (fiemap_all(fd, size, 0, &a, &na) || fiemap_all(base_fd, base.size, 0, &b, &nb))
		goto full;
	same_ranges(a, na, b, nb, size < base.size ? size : base.size, &same, &nsame);
	if (!nsame)
		goto full;
	rc = delta_walk(s, ctx, fd, size, &base, same, nsame, name, ext_path, &o, res, err);
	if (rc)
		goto done;
	f.size = size;
	f.n = o.n;
	f.ext = o.e;
	res->size = size;
	rc = dm_filedata_put_file(out, s, ctx, &f, name, err);
	goto done;
full:
	rc = dm_filedata_store(s, ctx, out, fd, size, blocks, name, ext_path, res, err);
done:
	dm_file_release(&base);
	free(a);
	free(b);
	free(same);
	free(o.e);
	return rc;
}

/* ---- what changed, and writing only that ---- */

int dm_filedata_changed_bytes(int fd, uint64_t size, int base_fd, uint64_t base_size, uint64_t *out)
{
	struct fext *a = NULL, *b = NULL;
	struct range *same = NULL;
	size_t na = 0, nb = 0, nsame = 0;
	uint64_t data = 0, shared = 0;
	int rc = -1;

	if (fiemap_all(fd, size, FIEMAP_FLAG_SYNC, &a, &na) ||
	    fiemap_all(base_fd, base_size, 0, &b, &nb))
		goto done;
	for (size_t i = 0; i < na + nb; i++) {
		const struct fext *x = i < na ? &a[i] : &b[i - na];

		/* bytes kept in metadata, or nowhere known yet without being new */
		if ((x->flags & FIEMAP_EXTENT_DATA_INLINE) ||
		    ((x->flags & FIEMAP_EXTENT_UNKNOWN) && !(x->flags & FIEMAP_EXTENT_DELALLOC))) {
			errno = EOPNOTSUPP;
			goto done;
		}
	}
	for (size_t i = 0; i < na; i++) {
		uint64_t end = a[i].log + a[i].len < size ? a[i].log + a[i].len : size;

		if (end > a[i].log)
			data += end - a[i].log;
	}
	same_ranges(a, na, b, nb, size < base_size ? size : base_size, &same, &nsame);
	for (size_t i = 0; i < nsame; i++)
		shared += same[i].end - same[i].start;
	*out = data > shared ? data - shared : 0;
	rc = 0;
done:
	free(a);
	free(b);
	free(same);
	return rc;
}

int dm_filedata_write_delta(struct dm_store *s, struct dm_filedata_ctx *ctx, int fd, int base_fd,
			    const struct dm_file *base, const struct dm_file *f, uint64_t *written,
			    const char *name, struct dm_err *err)
{
	int rc;

	if (!contiguous(f) || !contiguous(base) || ioctl(fd, FICLONE, base_fd) < 0)
		return 0;
	rc = dm_filedata_write_over(s, ctx, fd, base, f, written, name, err);
	return rc < 0 ? rc : 1;
}
