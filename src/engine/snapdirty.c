/*
 * snapdirty.c - dirty bytes of a working copy measured against the
 * snapshot it was last equal to, from the file system's extent maps
 * instead of by hashing (the btrfs engine's dirty; DESIGN.md §5: what
 * changed since the last snapshot, as ZFS's "written").
 *
 * The working copy and the snapshot are walked side by side. A file whose
 * inode, size, mtime and ctime are the snapshot's is unchanged (a snapshot
 * keeps them all, and any write moves mtime and ctime). Otherwise its
 * changed bytes are those not on the same physical blocks at the same
 * offset as in the snapshot (dm_filedata_changed_bytes: FIEMAP), so an
 * in-place change of 1% of a file counts 1% of it, not all of it (bytes
 * a truncation cut off do not count: nothing was written); data
 * the extent maps cannot vouch for (kept inline in metadata) is compared
 * by reading both sides. An added or deleted file counts its size, a
 * replaced symlink its target's length, and a change that moves no data
 * (mode, owner when dmd is root, an empty file) one byte, so a working
 * copy that differs from its snapshot never reports 0. Directories' own
 * metadata and modification times alone do not count (as in wc.c).
 *
 * Invariants: every open is relative to a directory fd with O_NOFOLLOW, a
 * symlink is never followed, and neither side's walk leaves its file
 * system (a nested mount or subvolume in the working copy is refused, as
 * commit would). Nothing is written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/internal.h"
#include "store/filedata.h"
#include "store/tree.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

#define BLOCK 4096u

struct walk {
	uint64_t dirty, total;
	bool owners;
	dev_t dev[2]; /* the wc's and the snapshot's */
	struct dm_buf path;
	unsigned char *buf[2];
};

static const char *rel(const struct walk *w)
{
	return w->path.len ? (const char *)w->path.data : ".";
}

/* Opens subdirectory name of dfd on side (0 wc, 1 snapshot). */
static int open_dir(struct walk *w, int side, int dfd, const char *name, struct dm_err *err)
{
	return dm_wc_open_subdir(dfd, name, w->dev[side], rel(w), err);
}

static int cmp_dirs(struct walk *w, int wfd, int sfd, int depth, struct dm_err *err);

/* Entry e of one side only (the wc's: added; the snapshot's: deleted),
 * with everything under it. */
static int one_side(struct walk *w, int side, int dfd, const struct dm_wc_entry *e, int depth,
		    struct dm_err *err)
{
	int fd, rc;

	if (!S_ISDIR(e->st.st_mode)) {
		uint64_t size = (uint64_t)e->st.st_size;

		if (side == 0 && S_ISREG(e->st.st_mode))
			w->total += size;
		w->dirty += size ? size : 1;
		return 0;
	}
	if (depth >= DM_TREE_MAX_DEPTH)
		return dm_err_set(err, DM_EUNSUPPORTED, "'%s' nests more than %d deep", rel(w),
				  DM_TREE_MAX_DEPTH);
	fd = open_dir(w, side, dfd, e->name, err);
	if (fd < 0)
		return fd;
	rc = side == 0 ? cmp_dirs(w, fd, -1, depth + 1, err) : cmp_dirs(w, -1, fd, depth + 1, err);
	close(fd);
	return rc;
}

/* Bytes that differ between a and b (block by block), by reading them. */
static int read_changed(struct walk *w, int a, uint64_t asz, int b, uint64_t bsz, uint64_t *out,
			struct dm_err *err)
{
	uint64_t n = asz < bsz ? asz : bsz, changed = asz > bsz ? asz - bsz : 0;

	for (uint64_t off = 0; off < n; off += BLOCK) {
		size_t len = n - off < BLOCK ? (size_t)(n - off) : BLOCK;

		if (dm_pread_all(a, w->buf[0], len, (off_t)off) < 0 ||
		    dm_pread_all(b, w->buf[1], len, (off_t)off) < 0)
			return dm_err_errno(err, errno, "cannot read '%s'", rel(w));
		if (memcmp(w->buf[0], w->buf[1], len))
			changed += len;
	}
	*out = changed;
	return 0;
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* Two regular files of one name: the wc's (in wfd) and the snapshot's. */
static int cmp_files(struct walk *w, int wfd, int sfd, const struct dm_wc_entry *we,
		     const struct dm_wc_entry *se, struct dm_err *err)
{
	const struct stat *a = &we->st, *b = &se->st;
	bool meta = (a->st_mode & 07777) != (b->st_mode & 07777) ||
		    (w->owners && (a->st_uid != b->st_uid || a->st_gid != b->st_gid));
	uint64_t changed = 0;
	int fa = -1, fb = -1, rc = 0;

	w->total += (uint64_t)a->st_size;
	if (a->st_ino == b->st_ino && a->st_size == b->st_size &&
	    same_time(&a->st_mtim, &b->st_mtim) && same_time(&a->st_ctim, &b->st_ctim))
		goto done; /* untouched since the snapshot */
	fa = openat(wfd, we->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	fb = openat(sfd, se->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fa < 0 || fb < 0) {
		if (errno == ENOENT || errno == ELOOP) { /* replaced since the listing */
			changed = (uint64_t)a->st_size;
			goto done;
		}
		rc = dm_err_errno(err, errno, "cannot open '%s'", rel(w));
		goto done;
	}
	if (dm_filedata_changed_bytes(fa, (uint64_t)a->st_size, fb, (uint64_t)b->st_size,
				      &changed) < 0)
		rc = read_changed(w, fa, (uint64_t)a->st_size, fb, (uint64_t)b->st_size, &changed,
				  err);
done:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	if (!rc)
		w->dirty += changed ? changed : meta || a->st_size != b->st_size ? 1 : 0;
	return rc;
}

/* Entries of one name on both sides. */
static int cmp_entry(struct walk *w, int wfd, int sfd, const struct dm_wc_entry *we,
		     const struct dm_wc_entry *se, int depth, struct dm_err *err)
{
	mode_t a = we->st.st_mode & S_IFMT, b = se->st.st_mode & S_IFMT;

	if (a == S_IFDIR && b == S_IFDIR) {
		int fa, fb, rc;

		if (depth >= DM_TREE_MAX_DEPTH)
			return dm_err_set(err, DM_EUNSUPPORTED, "'%s' nests more than %d deep",
					  rel(w), DM_TREE_MAX_DEPTH);
		fa = open_dir(w, 0, wfd, we->name, err);
		if (fa < 0)
			return fa;
		fb = open_dir(w, 1, sfd, se->name, err);
		if (fb < 0) {
			close(fa);
			return fb;
		}
		rc = cmp_dirs(w, fa, fb, depth + 1, err);
		close(fa);
		close(fb);
		return rc;
	}
	if (a == S_IFREG && b == S_IFREG)
		return cmp_files(w, wfd, sfd, we, se, err);
	if (a == S_IFLNK && b == S_IFLNK) {
		char ta[DM_SYMLINK_MAX + 2], tb[DM_SYMLINK_MAX + 2];
		ssize_t na = readlinkat(wfd, we->name, ta, sizeof(ta));
		ssize_t nb = readlinkat(sfd, se->name, tb, sizeof(tb));
		bool owner = w->owners &&
			     (we->st.st_uid != se->st.st_uid || we->st.st_gid != se->st.st_gid);

		if (na != nb || na < 0 || memcmp(ta, tb, (size_t)na) || owner)
			w->dirty += we->st.st_size ? (uint64_t)we->st.st_size : 1;
		return 0;
	}
	/* the type changed: the old side went, the new one came */
	{
		int rc = one_side(w, 1, sfd, se, depth, err);

		return rc ? rc : one_side(w, 0, wfd, we, depth, err);
	}
}

/* Compares the directories open on wfd and sfd (either -1: that side has
 * none, so everything on the other is added or deleted). */
static int cmp_dirs(struct walk *w, int wfd, int sfd, int depth, struct dm_err *err)
{
	struct dm_wc_dir a = {0, NULL}, b = {0, NULL};
	size_t i = 0, j = 0;
	int rc = 0;

	if (wfd >= 0)
		rc = dm_wc_list_dir(&a, wfd, rel(w), err);
	if (!rc && sfd >= 0)
		rc = dm_wc_list_dir(&b, sfd, rel(w), err);
	while (!rc && (i < a.n || j < b.n)) {
		int d = i >= a.n ? 1 : j >= b.n ? -1 : strcmp(a.e[i].name, b.e[j].name);
		const char *name = d <= 0 ? a.e[i].name : b.e[j].name;
		size_t old = w->path.len;

		if (old)
			dm_buf_addc(&w->path, '/');
		dm_buf_adds(&w->path, name);
		if (d < 0)
			rc = one_side(w, 0, wfd, &a.e[i++], depth, err);
		else if (d > 0)
			rc = one_side(w, 1, sfd, &b.e[j++], depth, err);
		else
			rc = cmp_entry(w, wfd, sfd, &a.e[i++], &b.e[j++], depth, err);
		w->path.len = old;
		w->path.data[old] = '\0';
	}
	dm_wc_dir_release(&a);
	dm_wc_dir_release(&b);
	return rc;
}

int dm_wc_dirty_since(const char *wc, const char *snap, uint64_t *dirty_out, uint64_t *size_out,
		      struct dm_err *err)
{
	struct walk w;
	struct stat st;
	int wfd = -1, sfd = -1, rc = 0;

	memset(&w, 0, sizeof(w));
	w.owners = geteuid() == 0;
	dm_buf_init(&w.path, 0);
	wfd = open(wc, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (wfd < 0 || fstat(wfd, &st) < 0) {
		rc = dm_err_errno(err, errno, "cannot open directory '%s'", wc);
		goto done;
	}
	w.dev[0] = st.st_dev;
	sfd = open(snap, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0 || fstat(sfd, &st) < 0) {
		rc = dm_err_errno(err, errno, "cannot open directory '%s'", snap);
		goto done;
	}
	w.dev[1] = st.st_dev;
	w.buf[0] = dm_xmalloc(BLOCK);
	w.buf[1] = dm_xmalloc(BLOCK);
	rc = cmp_dirs(&w, wfd, sfd, 0, err);
	if (!rc) {
		if (dirty_out)
			*dirty_out = w.dirty;
		if (size_out)
			*size_out = w.total;
	}
done:
	if (wfd >= 0)
		close(wfd);
	if (sfd >= 0)
		close(sfd);
	free(w.buf[0]);
	free(w.buf[1]);
	dm_buf_release(&w.path);
	return rc;
}
