/*
 * materialize.c - dm_tree_materialize: make a directory equal to a tree.
 *
 * Three phases. (1) The walk, on the calling thread, goes through the tree
 * and the directory side by side: it removes what the tree lacks, replaces
 * entries of the wrong type, creates directories and symlinks, keeps files
 * the stat cache vouches for (fixing their metadata), and pushes a job for
 * every other file onto a pool of threads. A job compares an existing file
 * of the right size with the tree's content and keeps it when equal, and
 * otherwise writes the content to a temporary name in the same directory
 * and renames it over the old name; when the stat cache vouches for what
 * the old file holds, the new one starts as a reflinked copy of it and
 * only the chunks that differ are written (dm_filedata_write_delta), so a
 * file changed in place costs only the blocks that changed on a file
 * system with reflinks. With opts->in_place (nobody has the files open),
 * an existing regular file of one link is instead changed where it
 * stands, only where it differs (dm_filedata_patch: from what the cache
 * says it holds, else by comparing), on any file system, after
 * opts->before_in_place. (2) When every job is done, each
 * directory gets its owner, mode and mtime, children before parents (its
 * mtime changes while its entries do). (3) The stat cache is updated.
 *
 * Invariants, for safety against hostile trees and hostile directories:
 *   - everything happens through directory fds, by name, with O_NOFOLLOW /
 *     AT_SYMLINK_NOFOLLOW; a symlink or file where a directory belongs is
 *     removed, never followed; phase 2 reopens directories with
 *     dm_open_beneath and checks their device and inode;
 *   - every name from a tree is checked with dm_tree_name_check first;
 *   - an inode with other hard links is never modified: without in_place
 *     new content goes to a fresh file, made with O_EXCL under its own
 *     name when nothing was there, or under a temporary name and renamed
 *     over the old one; with in_place only a regular file of one link is
 *     changed where it stands (the result is, hole for hole, what a fresh
 *     write makes); a kept file whose metadata must change but which has
 *     other hard links is rewritten instead of chmod'ed, so an inode shared
 *     with a file outside dir is never modified;
 *   - removal never crosses into another file system, and neither does the
 *     walk (a mount point inside dir is refused);
 *   - chmod comes after chown (which clears setuid and setgid bits);
 *   - with opts->strip_setid, no regular file gets a setuid or setgid bit
 *     (mode_of), whatever the tree says.
 *
 * The stat cache: an entry for a file written or checked here is recorded
 * with "seen" = the end of the materialise. Nothing else writes into the
 * directory while a checkout runs (the engine stops its containers), so
 * the content is known from the moment the file was written until then,
 * and only files whose timestamps fall within the racy window before that
 * moment are read again by the next build.
 */
#include "store/filedata.h"
#include "store/statcache.h"
#include "store/tree.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/banned.h"

/* Jobs queued ahead of the workers (each may hold a directory fd open). */
#define MAX_QUEUED 256
/* Deepest existing directory that removal walks into. */
#define REMOVE_MAX_DEPTH 1024

/* A file the workers bring up to date. */
struct job {
	struct dm_dirref *dir;
	char *name;
	char *rel;
	struct dm_tree_entry e; /* name and target unused */
	bool check;             /* an existing regular file may already be equal */
	bool has_base;          /* the cache says that the existing file, */
	dm_oid base_id;         /* as it was then (base_st), holds base_id */
	struct stat base_st;
	bool base_racy; /* ... but cannot vouch for it: check the result */
	/* results */
	bool wrote;
	bool in_place; /* written in place (opts->in_place) */
	uint64_t bytes;
	struct stat st; /* the file as left, for the cache */
	bool have_st;
};

/* A directory whose metadata phase 2 sets. */
struct fin {
	char *rel;
	dev_t dev;
	ino_t ino;
	struct dm_tree_entry e;
};

/* A file the cache should learn at the end. */
struct learn {
	char *rel;
	struct stat st;
	dm_oid id;
};

struct mat {
	struct dm_store *s;
	struct dm_statcache *cache;
	struct dm_materialize_stats *stats;
	bool restore_owner;
	bool strip_setid;
	bool root_user;
	int rootfd;
	dev_t dev;
	struct dm_buf path;
	struct dm_buf obj;
	struct dm_filepool *pool;
	struct job **jobs;
	size_t njobs, jobs_alloc;
	struct fin *fins;
	size_t nfins, fins_alloc;
	struct learn *learns;
	size_t nlearns, learns_alloc;
	atomic_uint tmp_seq;
	/* in place (opts->in_place), and what to call before each change */
	bool in_place;
	int (*before)(const void *ctx, bool first, struct dm_err *err);
	const void *before_ctx;
	pthread_mutex_t mark_mu;
	atomic_bool marked;
	/* shared with the workers */
	atomic_bool stop;
	pthread_mutex_t err_mu;
	struct dm_err *err;
	int rc;
};

static int fail(struct mat *m, int rc, const struct dm_err *e)
{
	pthread_mutex_lock(&m->err_mu);
	if (!m->rc) {
		m->rc = rc;
		if (m->err && e && e != m->err)
			*m->err = *e;
	}
	pthread_mutex_unlock(&m->err_mu);
	atomic_store(&m->stop, true);
	return rc;
}

static const char *relname(const struct mat *m)
{
	return m->path.len ? (const char *)m->path.data : ".";
}

static size_t path_push(struct mat *m, const char *name)
{
	size_t old = m->path.len;

	if (old)
		dm_buf_addc(&m->path, '/');
	dm_buf_adds(&m->path, name);
	return old;
}

static void path_pop(struct mat *m, size_t old)
{
	m->path.len = old;
	if (m->path.data)
		m->path.data[old] = '\0';
}

static int64_t mtime_of(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static struct timespec ts_of(int64_t ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	if (ts.tv_nsec < 0) {
		ts.tv_sec--;
		ts.tv_nsec += 1000000000;
	}
	return ts;
}

static bool owner_differs(const struct mat *m, const struct stat *st,
			  const struct dm_tree_entry *e)
{
	return m->restore_owner && (st->st_uid != e->uid || st->st_gid != e->gid);
}

/* The mode an entry gets: the tree's, but a regular file of a dot that
 * strips them never gets setuid or setgid (a directory's setgid only
 * decides the group of what is made in it, and is kept). */
static uint32_t mode_of(const struct mat *m, const struct dm_tree_entry *e)
{
	if (m->strip_setid && e->type == DM_ENTRY_FILE)
		return e->mode & ~(uint32_t)(S_ISUID | S_ISGID);
	return e->mode;
}

/* Symlinks have no mode of their own on Linux: theirs is never compared. */
static bool meta_differs(const struct mat *m, const struct stat *st,
			 const struct dm_tree_entry *e)
{
	return owner_differs(m, st, e) ||
	       (!S_ISLNK(st->st_mode) && (st->st_mode & 07777) != mode_of(m, e)) ||
	       mtime_of(st) != e->mtime_ns;
}

/* Sets owner, mode and mtime through an fd (regular files, directories). */
static int set_meta_fd(const struct mat *m, int fd, const struct stat *st,
		       const struct dm_tree_entry *e, const char *rel, struct dm_err *err)
{
	bool chowned = false;

	if (owner_differs(m, st, e)) {
		if (fchown(fd, e->uid, e->gid) < 0)
			return dm_err_errno(err, errno, "cannot change the owner of '%s'", rel);
		chowned = true;
	}
	if (chowned || (st->st_mode & 07777) != mode_of(m, e)) {
		if (fchmod(fd, mode_of(m, e)) < 0)
			return dm_err_errno(err, errno, "cannot change the mode of '%s'", rel);
	}
	if (mtime_of(st) != e->mtime_ns) {
		struct timespec t[2] = {{0, UTIME_OMIT}, ts_of(e->mtime_ns)};

		if (futimens(fd, t) < 0)
			return dm_err_errno(err, errno, "cannot set the time of '%s'", rel);
	}
	return 0;
}

/* The same by name, never following a symlink. */
static int set_meta_at(const struct mat *m, int dfd, const char *name, const struct stat *st,
		       const struct dm_tree_entry *e, bool is_link, const char *rel,
		       struct dm_err *err)
{
	bool chowned = false;

	if (owner_differs(m, st, e)) {
		if (fchownat(dfd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
			return dm_err_errno(err, errno, "cannot change the owner of '%s'", rel);
		chowned = true;
	}
	if (!is_link && (chowned || (st->st_mode & 07777) != mode_of(m, e))) {
		if (fchmodat(dfd, name, mode_of(m, e), AT_SYMLINK_NOFOLLOW) < 0)
			return dm_err_errno(err, errno, "cannot change the mode of '%s'", rel);
	}
	if (mtime_of(st) != e->mtime_ns) {
		struct timespec t[2] = {{0, UTIME_OMIT}, ts_of(e->mtime_ns)};

		if (utimensat(dfd, name, t, AT_SYMLINK_NOFOLLOW) < 0)
			return dm_err_errno(err, errno, "cannot set the time of '%s'", rel);
	}
	return 0;
}

/* ---- removal ---- */

static int remove_at(int dfd, const char *name, dev_t dev, int depth, const char *rel,
		     struct dm_err *err);

static int remove_children(int fd, dev_t dev, int depth, const char *rel, struct dm_err *err)
{
	DIR *d = dm_opendir_dup(fd);
	char **names = NULL;
	size_t n = 0, alloc = 0;
	struct dirent *de;
	int rc = 0;

	if (!d)
		return dm_err_errno(err, errno, "cannot read directory '%s'", rel);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == alloc) {
			alloc = alloc ? alloc * 2 : 16;
			names = dm_xrealloc(names, alloc * sizeof(*names));
		}
		names[n++] = dm_xstrdup(de->d_name);
	}
	closedir(d);
	for (size_t i = 0; i < n && !rc; i++)
		rc = remove_at(fd, names[i], dev, depth + 1, rel, err);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* rm -rf of name in dfd: never follows symlinks, never leaves dev. */
static int remove_at(int dfd, const char *name, dev_t dev, int depth, const char *rel,
		     struct dm_err *err)
{
	struct stat st;
	int fd, rc;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : dm_err_errno(err, errno, "cannot stat '%s'", rel);
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
			return dm_err_errno(err, errno, "cannot remove '%s'", rel);
		return 0;
	}
	if (st.st_dev != dev)
		return dm_err_set(err, DM_EBUSY,
				  "cannot remove '%s': it is a mount point of another file system",
				  rel);
	if (depth > REMOVE_MAX_DEPTH)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "cannot remove '%s': directories nest too deeply", rel);
	if (unlinkat(dfd, name, AT_REMOVEDIR) == 0)
		return 0;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES && fchmodat(dfd, name, 0700, AT_SYMLINK_NOFOLLOW) == 0)
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : dm_err_errno(err, errno, "cannot open '%s'", rel);
	if ((st.st_mode & 0700) != 0700 && geteuid() != 0)
		fchmod(fd, 0700);
	rc = remove_children(fd, dev, depth, rel, err);
	close(fd);
	if (!rc && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = dm_err_errno(err, errno, "cannot remove directory '%s'", rel);
	return rc;
}

/* ---- the workers ---- */

/* Creates a fresh temporary file in dfd; its name goes into name. */
static int make_tmp(struct mat *m, int dfd, char *name, size_t size)
{
	for (int tries = 0; tries < 100; tries++) {
		unsigned seq = atomic_fetch_add(&m->tmp_seq, 1);
		int fd;

		snprintf(name, size, ".dm-tmp-%ld-%u", (long)getpid(), seq);
		fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

/* 1 when the existing file equals the job's content (and is then fixed up). */
static int keep_existing(struct mat *m, struct job *j, struct dm_filedata_ctx *ctx,
			 const struct dm_file *f, struct dm_err *err)
{
	int dfd = dm_dirref_fd(j->dir);
	struct stat st;
	bool same = false;
	int fd, rc = 0;

	fd = openat(dfd, j->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* gone, or unreadable: write it anew */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size)
		goto done;
	if (st.st_nlink > 1 && meta_differs(m, &st, &j->e))
		goto done; /* shared inode: never modify it, replace it */
	rc = dm_filedata_check(ctx, fd, f, &same, j->rel, err);
	if (rc || !same)
		goto done;
	rc = set_meta_fd(m, fd, &st, &j->e, j->rel, err);
	if (!rc && fstat(fd, &j->st) == 0)
		j->have_st = true;
done:
	close(fd);
	return rc ? rc : same;
}

/* Whether the file as fstat'ed now (st) is still as the walk saw it when
 * the cache said what it holds (the job's base). */
static bool still_base(const struct job *j, const struct stat *st)
{
	return j->has_base && S_ISREG(st->st_mode) && st->st_ino == j->base_st.st_ino &&
	       st->st_size == j->base_st.st_size &&
	       st->st_mtim.tv_sec == j->base_st.st_mtim.tv_sec &&
	       st->st_mtim.tv_nsec == j->base_st.st_mtim.tv_nsec &&
	       st->st_ctim.tv_sec == j->base_st.st_ctim.tv_sec &&
	       st->st_ctim.tv_nsec == j->base_st.st_ctim.tv_nsec;
}

/* Before every change of a file in place: the caller's hook, told the
 * first time (once per materialise, whichever worker comes first). */
static int before_change(void *arg, struct dm_err *err)
{
	struct mat *m = arg;
	int rc = 0;

	if (!m->before)
		return 0;
	if (atomic_load(&m->marked))
		return m->before(m->before_ctx, false, err);
	pthread_mutex_lock(&m->mark_mu);
	if (!atomic_load(&m->marked)) {
		rc = m->before(m->before_ctx, true, err);
		if (!rc)
			atomic_store(&m->marked, true);
	} else {
		rc = m->before(m->before_ctx, false, err);
	}
	pthread_mutex_unlock(&m->mark_mu);
	return rc;
}

/* Brings the existing file to f in place (opts->in_place), writing only
 * what differs: from what the cache says it holds when the file is still
 * as the walk saw it, else by comparing. 1 when done so (j->wrote when
 * anything changed); 0 when it cannot be (not a regular file of one link
 * open for writing) and nothing was touched; < 0 on errors. */
static int write_in_place(struct mat *m, struct job *j, struct dm_filedata_ctx *ctx,
			  const struct dm_file *f, struct dm_err *err)
{
	struct dm_file base = {0, 0, NULL};
	bool use_base = false, changed = false, again = false, same = false;
	uint64_t bytes = 0;
	struct stat st;
	int fd, rc;

	fd = openat(dm_dirref_fd(j->dir), j->name,
		    O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		close(fd);
		return 0;
	}
	use_base = still_base(j, &st) && dm_filedata_load(m->s, ctx, &base, &j->base_id, NULL) == 0;
	rc = dm_filedata_patch(m->s, ctx, fd, use_base ? &base : NULL, f, before_change, m, &bytes,
			       &changed, j->rel, err);
	if (!rc && use_base && j->base_racy) {
		/* the old file may have changed unseen: the result must be f */
		rc = dm_filedata_check(ctx, fd, f, &same, j->rel, err);
		if (!rc && !same)
			rc = dm_filedata_patch(m->s, ctx, fd, NULL, f, before_change, m, &j->bytes,
					       &again, j->rel, err);
	}
	j->bytes += bytes;
	if (!rc && fstat(fd, &st) < 0)
		rc = dm_err_errno(err, errno, "cannot stat '%s'", j->rel);
	if (!rc)
		rc = set_meta_fd(m, fd, &st, &j->e, j->rel, err);
	if (!rc && fstat(fd, &j->st) == 0)
		j->have_st = true;
	j->wrote = changed || again;
	j->in_place = j->wrote;
	dm_file_release(&base);
	close(fd);
	return rc ? rc : 1;
}

/* Writes f into fd as a reflinked copy of the existing file, when the
 * job knows what that holds and it is still as the walk saw it: 1 when
 * done so, 0 when fd is untouched. */
static int write_from_base(struct mat *m, struct job *j, struct dm_filedata_ctx *ctx, int fd,
			   const struct dm_file *f, struct dm_err *err)
{
	struct dm_file base = {0, 0, NULL};
	struct stat st;
	int bfd, rc = 0;

	if (!j->has_base)
		return 0;
	bfd = openat(dm_dirref_fd(j->dir), j->name,
		     O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (bfd < 0)
		return 0;
	if (fstat(bfd, &st) == 0 && still_base(j, &st) &&
	    dm_filedata_load(m->s, ctx, &base, &j->base_id, NULL) == 0 &&
	    base.size == (uint64_t)st.st_size)
		rc = dm_filedata_write_delta(m->s, ctx, fd, bfd, &base, f, &j->bytes, j->rel, err);
	dm_file_release(&base);
	close(bfd);
	if (rc == 1 && j->base_racy) {
		bool same = false;

		/* the old file may have changed unseen: the result must be f */
		rc = dm_filedata_check(ctx, fd, f, &same, j->rel, err);
		if (!rc && !same && ftruncate(fd, 0) < 0)
			rc = dm_err_errno(err, errno, "cannot write '%s'", j->rel);
		if (!rc)
			rc = same ? 1 : 0;
	}
	return rc;
}

static int write_new(struct mat *m, struct job *j, struct dm_filedata_ctx *ctx,
		     const struct dm_file *f, struct dm_err *err)
{
	int dfd = dm_dirref_fd(j->dir);
	char tmp[64];
	struct stat st;
	int fd = -1, rc = 0;

	tmp[0] = '\0';
	if (!j->check) /* nothing was there: create it in place, exclusively */
		fd = openat(dfd, j->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0600);
	if (fd < 0) {
		fd = make_tmp(m, dfd, tmp, sizeof(tmp));
		if (fd < 0)
			return dm_err_errno(err, errno, "cannot create a file next to '%s'",
					    j->rel);
	}
	rc = tmp[0] ? write_from_base(m, j, ctx, fd, f, err) : 0;
	if (rc == 0)
		rc = dm_filedata_write(m->s, ctx, fd, f, &j->bytes, j->rel, err);
	else if (rc == 1)
		rc = 0;
	if (rc)
		goto done;
	if (fstat(fd, &st) < 0) {
		rc = dm_err_errno(err, errno, "cannot stat '%s'", j->rel);
		goto done;
	}
	st.st_mode = S_IFREG | 0600;
	rc = set_meta_fd(m, fd, &st, &j->e, j->rel, err);
	if (rc)
		goto done;
	if (tmp[0] && renameat(dfd, tmp, dfd, j->name) < 0) {
		if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST)
			rc = dm_err_set(err, DM_ECONFLICT,
					"cannot write '%s': a directory appeared in its place",
					j->rel);
		else
			rc = dm_err_errno(err, errno, "cannot rename a new file to '%s'", j->rel);
		goto done;
	}
	tmp[0] = '\0';
	j->wrote = true;
	if (fstat(fd, &j->st) == 0)
		j->have_st = true;
done:
	close(fd);
	if (rc)
		unlinkat(dfd, tmp[0] ? tmp : j->name, 0);
	return rc;
}

static void run_job(void *job_, struct dm_filedata_ctx *ctx, void *arg)
{
	struct job *j = job_;
	struct mat *m = arg;
	struct dm_err e = {0, ""};
	struct dm_file f = {0, 0, NULL};
	int rc = 0;

	if (atomic_load(&m->stop))
		goto out;
	rc = dm_filedata_load(m->s, ctx, &f, &j->e.id, &e);
	if (rc) {
		dm_err_prefix(&e, "cannot write '%s'", j->rel);
		goto out;
	}
	if (f.size != j->e.size) {
		rc = dm_err_set(&e, DM_ECORRUPT,
				"cannot write '%s': the tree says %llu bytes, its file object %llu",
				j->rel, (unsigned long long)j->e.size, (unsigned long long)f.size);
		goto out;
	}
	if (m->in_place && j->check) {
		rc = write_in_place(m, j, ctx, &f, &e);
		if (rc) {
			rc = rc == 1 ? 0 : rc;
			goto out;
		}
	}
	if (j->check && !j->has_base) { /* with a base, the cache knows it differs */
		rc = keep_existing(m, j, ctx, &f, &e);
		if (rc < 0)
			goto out;
		if (rc == 1) {
			rc = 0;
			goto out;
		}
	}
	rc = write_new(m, j, ctx, &f, &e);
out:
	dm_file_release(&f);
	dm_dirref_put(j->dir);
	j->dir = NULL;
	if (rc)
		fail(m, rc, &e);
}

/* ---- the walk ---- */

static int load_tree(struct mat *m, const dm_oid *id, struct dm_tree *out, struct dm_err *err)
{
	char hex[DM_OID_HEXSZ + 1];
	int kind = 0, rc;

	dm_buf_reset(&m->obj);
	rc = dm_store_get(m->s, id, &m->obj, &kind, err);
	if (rc)
		return rc;
	if (kind != DM_OBJ_TREE) {
		dm_oid_hex(hex, id);
		return dm_err_set(err, DM_ECORRUPT, "object %s is a %s, not a tree", hex,
				  dm_obj_kind_name(kind));
	}
	return dm_tree_decode(out, m->obj.data, m->obj.len, err);
}

/* Checks what a tree says before anything acts on it. */
static int check_tree(struct mat *m, const struct dm_tree *t, struct dm_err *err)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct dm_tree_entry *e = &t->e[i];
		int rc = dm_tree_name_check(e->name, strlen(e->name), err);

		if (rc)
			return dm_err_prefix(err, "refusing tree entry in '%s'", relname(m));
		if (i && strcmp(t->e[i - 1].name, e->name) >= 0)
			return dm_err_set(err, DM_ECORRUPT, "tree '%s' is not sorted",
					  relname(m));
		if (e->mode & ~07777u)
			return dm_err_set(err, DM_ECORRUPT, "bad mode in tree '%s'", relname(m));
		switch (e->type) {
		case DM_ENTRY_FILE:
		case DM_ENTRY_DIR:
			break;
		case DM_ENTRY_SYMLINK:
			if (!e->target || !e->target[0] || strlen(e->target) > DM_SYMLINK_MAX)
				return dm_err_set(err, DM_ECORRUPT, "bad symlink in tree '%s'",
						  relname(m));
			break;
		default:
			return dm_err_set(err, DM_ECORRUPT, "bad entry type in tree '%s'",
					  relname(m));
		}
	}
	return 0;
}

static void add_learn(struct mat *m, const struct stat *st, const dm_oid *id)
{
	struct learn *l;

	if (!m->cache)
		return;
	if (m->nlearns == m->learns_alloc) {
		m->learns_alloc = m->learns_alloc ? m->learns_alloc * 2 : 256;
		m->learns = dm_xrealloc(m->learns, m->learns_alloc * sizeof(*m->learns));
	}
	l = &m->learns[m->nlearns++];
	l->rel = dm_xstrndup((const char *)m->path.data, m->path.len);
	l->st = *st;
	l->id = *id;
}

static int queue_file(struct mat *m, struct dm_dirref *dir, const struct dm_tree_entry *e,
		      bool check, const dm_oid *base_id, const struct stat *base_st, bool racy)
{
	struct job *j = dm_xcalloc(1, sizeof(*j));

	if (m->njobs == m->jobs_alloc) {
		m->jobs_alloc = m->jobs_alloc ? m->jobs_alloc * 2 : 256;
		m->jobs = dm_xrealloc(m->jobs, m->jobs_alloc * sizeof(*m->jobs));
	}
	m->jobs[m->njobs++] = j;
	j->dir = dm_dirref_get(dir);
	j->name = dm_xstrdup(e->name);
	j->rel = dm_xstrndup((const char *)m->path.data, m->path.len);
	j->e = *e;
	j->e.name = NULL;
	j->e.target = NULL;
	j->check = check;
	if (base_id) {
		j->has_base = true;
		j->base_id = *base_id;
		j->base_st = *base_st;
		j->base_racy = racy;
	}
	dm_filepool_push(m->pool, j);
	return 0;
}

/* Removes what is at name so that something of another type can go there. */
static int clear_at(struct mat *m, int dfd, const char *name, struct dm_err *err)
{
	m->stats->removed++;
	return remove_at(dfd, name, m->dev, 0, relname(m), err);
}

static int walk(struct mat *m, struct dm_dirref *dir, const struct dm_tree *t, int depth,
		struct dm_err *err);

static int do_file(struct mat *m, struct dm_dirref *dir, const struct dm_tree_entry *e,
		   struct stat *st, bool exists, struct dm_err *err)
{
	int dfd = dm_dirref_fd(dir);
	struct dm_statcache_stat cs;
	dm_oid cached;
	bool hit;
	int rc;

	if (exists && !S_ISREG(st->st_mode)) {
		rc = clear_at(m, dfd, e->name, err);
		if (rc)
			return rc;
		exists = false;
	}
	if (!exists)
		return queue_file(m, dir, e, false, NULL, NULL, false);
	dm_statcache_stat_from(&cs, st);
	hit = m->cache && dm_statcache_lookup(m->cache, relname(m), m->path.len, &cs, &cached);
	if (hit && dm_oid_cmp(&cached, &e->id) != 0) /* known, and other than the tree's */
		return queue_file(m, dir, e, true, &cached, st, false);
	/* a racy entry still tells what the file most likely holds */
	if (!hit && m->cache &&
	    dm_statcache_peek(m->cache, relname(m), m->path.len, &cs, &cached) &&
	    dm_oid_cmp(&cached, &e->id) != 0)
		return queue_file(m, dir, e, true, &cached, st, true);
	if (!hit || (uint64_t)st->st_size != e->size)
		return queue_file(m, dir, e, true, NULL, NULL, false);
	/* The cache vouches for the content. */
	if (!meta_differs(m, st, e)) {
		m->stats->files_kept++;
		return 0;
	}
	if (st->st_nlink > 1) /* shared inode: replace rather than modify */
		return queue_file(m, dir, e, false, NULL, NULL, false);
	rc = set_meta_at(m, dfd, e->name, st, e, false, relname(m), err);
	if (rc)
		return rc;
	if (fstatat(dfd, e->name, st, AT_SYMLINK_NOFOLLOW) == 0)
		add_learn(m, st, &e->id);
	m->stats->files_kept++;
	return 0;
}

static int do_symlink(struct mat *m, int dfd, const struct dm_tree_entry *e, struct stat *st,
		      bool exists, struct dm_err *err)
{
	char target[DM_SYMLINK_MAX + 2];
	int rc;

	if (exists && S_ISLNK(st->st_mode)) {
		ssize_t n = readlinkat(dfd, e->name, target, sizeof(target) - 1);

		if (n >= 0 && (size_t)n == strlen(e->target) &&
		    memcmp(target, e->target, (size_t)n) == 0 &&
		    (st->st_nlink == 1 || !meta_differs(m, st, e)))
			return set_meta_at(m, dfd, e->name, st, e, true, relname(m), err);
	}
	if (exists) {
		rc = clear_at(m, dfd, e->name, err);
		if (rc)
			return rc;
	}
	if (symlinkat(e->target, dfd, e->name) < 0)
		return dm_err_errno(err, errno, "cannot create symlink '%s'", relname(m));
	if (fstatat(dfd, e->name, st, AT_SYMLINK_NOFOLLOW) < 0)
		return dm_err_errno(err, errno, "cannot stat '%s'", relname(m));
	return set_meta_at(m, dfd, e->name, st, e, true, relname(m), err);
}

static int do_dir(struct mat *m, int dfd, const struct dm_tree_entry *e, struct stat *st,
		  bool exists, int depth, struct dm_err *err)
{
	struct dm_tree sub = {0, NULL};
	struct dm_dirref *ref = NULL;
	struct fin *fn;
	int fd = -1, rc = 0;

	if (depth >= DM_TREE_MAX_DEPTH)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "cannot check out '%s': directories nest more than %d deep",
				  relname(m), DM_TREE_MAX_DEPTH);
	if (exists && !S_ISDIR(st->st_mode)) {
		rc = clear_at(m, dfd, e->name, err);
		if (rc)
			return rc;
		exists = false;
	}
	if (exists && st->st_dev != m->dev)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "cannot check out '%s': it is a mount point of another file system",
				  relname(m));
	if (!exists && mkdirat(dfd, e->name, 0700) < 0)
		return dm_err_errno(err, errno, "cannot create directory '%s'", relname(m));
	fd = openat(dfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES && fchmodat(dfd, e->name, 0700, AT_SYMLINK_NOFOLLOW) == 0)
		fd = openat(dfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return dm_err_errno(err, errno, "cannot open directory '%s'", relname(m));
	if (fstat(fd, st) < 0 || !S_ISDIR(st->st_mode) || st->st_dev != m->dev) {
		close(fd);
		return dm_err_set(err, DM_ECONFLICT,
				  "cannot check out '%s': it changed while being checked out",
				  relname(m));
	}
	if (!m->root_user && (st->st_mode & 0700) != 0700 && fchmod(fd, (st->st_mode & 07777) | 0700) < 0) {
		rc = dm_err_errno(err, errno, "cannot make '%s' writable", relname(m));
		close(fd);
		return rc;
	}
	ref = dm_dirref_new(fd);
	rc = load_tree(m, &e->id, &sub, err);
	if (rc) {
		dm_err_prefix(err, "cannot check out '%s'", relname(m));
		goto done;
	}
	rc = walk(m, ref, &sub, depth + 1, err);
	if (rc)
		goto done;
	if (m->nfins == m->fins_alloc) {
		m->fins_alloc = m->fins_alloc ? m->fins_alloc * 2 : 64;
		m->fins = dm_xrealloc(m->fins, m->fins_alloc * sizeof(*m->fins));
	}
	fn = &m->fins[m->nfins++];
	fn->rel = dm_xstrndup((const char *)m->path.data, m->path.len);
	fn->dev = st->st_dev;
	fn->ino = st->st_ino;
	fn->e = *e;
	fn->e.name = NULL;
	fn->e.target = NULL;
done:
	dm_tree_release(&sub);
	dm_dirref_put(ref);
	return rc;
}

static int walk(struct mat *m, struct dm_dirref *dir, const struct dm_tree *t, int depth,
		struct dm_err *err)
{
	int dfd = dm_dirref_fd(dir);
	int rc;
	struct dirent *de;
	char **extra = NULL;
	size_t nextra = 0, alloc = 0;
	DIR *d;

	rc = check_tree(m, t, err);
	if (rc)
		return rc;
	/* What the directory has and the tree lacks goes first. */
	d = dm_opendir_dup(dfd);
	if (!d)
		return dm_err_errno(err, errno, "cannot read directory '%s'", relname(m));
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (dm_tree_find(t, de->d_name))
			continue;
		if (nextra == alloc) {
			alloc = alloc ? alloc * 2 : 16;
			extra = dm_xrealloc(extra, alloc * sizeof(*extra));
		}
		extra[nextra++] = dm_xstrdup(de->d_name);
	}
	closedir(d);
	for (size_t i = 0; i < nextra && !rc; i++) {
		size_t old = path_push(m, extra[i]);

		rc = remove_at(dfd, extra[i], m->dev, 0, relname(m), err);
		m->stats->removed++;
		path_pop(m, old);
	}
	for (size_t i = 0; i < nextra; i++)
		free(extra[i]);
	free(extra);

	for (size_t i = 0; i < t->n && !rc; i++) {
		const struct dm_tree_entry *e = &t->e[i];
		size_t old = path_push(m, e->name);
		struct stat st;
		bool exists = true;

		if (fstatat(dfd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT) {
				rc = dm_err_errno(err, errno, "cannot stat '%s'", relname(m));
				path_pop(m, old);
				break;
			}
			exists = false;
		}
		switch (e->type) {
		case DM_ENTRY_FILE:
			rc = do_file(m, dir, e, &st, exists, err);
			break;
		case DM_ENTRY_SYMLINK:
			rc = do_symlink(m, dfd, e, &st, exists, err);
			break;
		default:
			rc = do_dir(m, dfd, e, &st, exists, depth, err);
			break;
		}
		path_pop(m, old);
		if (!rc && atomic_load(&m->stop))
			rc = m->rc;
	}
	return rc;
}

/* ---- phase 2: directory metadata, children first ---- */

static int finish_dirs(struct mat *m, struct dm_err *err)
{
	for (size_t i = 0; i < m->nfins; i++) {
		const struct fin *f = &m->fins[i];
		struct stat st;
		int fd = dm_open_beneath(m->rootfd, f->rel, O_RDONLY | O_DIRECTORY);
		int rc;

		if (fd < 0)
			return dm_err_errno(err, errno, "cannot open directory '%s'", f->rel);
		if (fstat(fd, &st) < 0 || st.st_dev != f->dev || st.st_ino != f->ino) {
			close(fd);
			return dm_err_set(err, DM_ECONFLICT,
					  "cannot check out '%s': it changed while being checked out",
					  f->rel);
		}
		rc = set_meta_fd(m, fd, &st, &f->e, f->rel, err);
		close(fd);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- phase 3: the cache ---- */

static int update_cache(struct mat *m, struct dm_err *err)
{
	int64_t seen = dm_now_realtime_ns();
	struct dm_statcache_stat cs;
	int rc;

	for (size_t i = 0; i < m->njobs; i++) {
		struct job *j = m->jobs[i];

		if (!j->have_st)
			continue;
		dm_statcache_stat_from(&cs, &j->st);
		rc = dm_statcache_put(m->cache, j->rel, strlen(j->rel), &cs, &j->e.id, seen, err);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < m->nlearns; i++) {
		const struct learn *l = &m->learns[i];

		dm_statcache_stat_from(&cs, &l->st);
		rc = dm_statcache_put(m->cache, l->rel, strlen(l->rel), &cs, &l->id, seen, err);
		if (rc)
			return rc;
	}
	dm_statcache_sweep(m->cache);
	return 0;
}

/* ---- what it would write ---- */

#define BLOCK 4096

static uint64_t blocks(uint64_t n)
{
	return (n + BLOCK - 1) / BLOCK * BLOCK;
}

/* The bytes making the directory dfd (-1: none yet) at path rel equal to
 * tree id would write, at most. */
static int need_at(struct dm_store *s, const struct dm_statcache *cache, int dfd, dev_t dev,
		   struct dm_buf *rel, const dm_oid *id, int depth, uint64_t *need,
		   struct dm_err *err)
{
	struct dm_buf obj = DM_BUF_INIT;
	struct dm_tree t = {0, NULL};
	int kind = 0, rc;

	if (depth > DM_TREE_MAX_DEPTH)
		return dm_err_set(err, DM_EUNSUPPORTED, "directories nest more than %d deep",
				  DM_TREE_MAX_DEPTH);
	rc = dm_store_get(s, id, &obj, &kind, err);
	if (!rc && kind != DM_OBJ_TREE)
		rc = dm_err_set(err, DM_ECORRUPT, "a tree of the commit is not a tree");
	if (!rc)
		rc = dm_tree_decode(&t, obj.data, obj.len, err);
	dm_buf_release(&obj);
	for (size_t i = 0; !rc && i < t.n; i++) {
		const struct dm_tree_entry *e = &t.e[i];
		size_t old = rel->len;
		struct stat st;
		bool exists;

		if (dm_tree_name_check(e->name, strlen(e->name), NULL))
			continue; /* materialize refuses it */
		exists = dfd >= 0 && fstatat(dfd, e->name, &st, AT_SYMLINK_NOFOLLOW) == 0;
		if (rel->len)
			dm_buf_addc(rel, '/');
		dm_buf_adds(rel, e->name);
		if (e->type == DM_ENTRY_FILE) {
			struct dm_statcache_stat cs;
			dm_oid cached;

			if (exists && S_ISREG(st.st_mode) && cache) {
				dm_statcache_stat_from(&cs, &st);
				if (dm_statcache_peek(cache, (const char *)rel->data, rel->len, &cs,
						      &cached) &&
				    !dm_oid_cmp(&cached, &e->id))
					goto next; /* kept */
			}
			*need += blocks(e->size);
		} else if (e->type == DM_ENTRY_DIR) {
			int sub = -1;

			if (exists && S_ISDIR(st.st_mode) && st.st_dev == dev)
				sub = openat(dfd, e->name,
					     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0)
				*need += BLOCK;
			rc = need_at(s, cache, sub, dev, rel, &e->id, depth + 1, need, err);
			if (sub >= 0)
				close(sub);
		} else if (!exists || !S_ISLNK(st.st_mode)) {
			*need += BLOCK;
		}
next:
		rel->len = old;
		if (rel->data)
			rel->data[old] = '\0';
	}
	dm_tree_release(&t);
	return rc;
}

int dm_tree_materialize_need(struct dm_store *s, const dm_oid *tree, const char *dir,
			     const struct dm_statcache *cache, uint64_t *need, struct dm_err *err)
{
	struct dm_buf rel = DM_BUF_INIT;
	struct stat st;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	*need = 0;
	if (fd >= 0 && fstat(fd, &st) < 0) {
		close(fd);
		fd = -1;
	}
	rc = need_at(s, cache, fd, fd >= 0 ? st.st_dev : 0, &rel, tree, 0, need, err);
	if (fd >= 0)
		close(fd);
	dm_buf_release(&rel);
	return rc;
}

int dm_tree_materialize(struct dm_store *s, const dm_oid *tree, const char *dir,
			const struct dm_materialize_opts *opts,
			struct dm_materialize_stats *stats, struct dm_err *err)
{
	struct dm_materialize_stats local;
	struct dm_err werr = {0, ""};
	struct dm_tree root = {0, NULL};
	struct dm_dirref *ref = NULL;
	struct mat m;
	struct stat st;
	int rc = 0, fd;

	memset(&m, 0, sizeof(m));
	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	m.s = s;
	m.cache = opts ? opts->cache : NULL;
	m.stats = stats;
	m.root_user = geteuid() == 0;
	m.restore_owner = opts ? opts->restore_owner : m.root_user;
	m.strip_setid = opts && opts->strip_setid;
	m.in_place = opts && opts->in_place;
	m.before = opts ? opts->before_in_place : NULL;
	m.before_ctx = opts ? opts->ctx : NULL;
	m.rootfd = -1;
	m.err = err;
	atomic_init(&m.stop, false);
	atomic_init(&m.tmp_seq, 0);
	atomic_init(&m.marked, false);
	pthread_mutex_init(&m.err_mu, NULL);
	pthread_mutex_init(&m.mark_mu, NULL);
	dm_buf_init(&m.path, 0);
	dm_buf_init(&m.obj, DM_OBJ_MAX_SIZE);

	rc = load_tree(&m, tree, &root, err);
	if (rc)
		goto done;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = dm_mkdir_p(dir, 0755, err);
		if (rc)
			goto done;
	}
	m.rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m.rootfd < 0) {
		rc = dm_err_errno(err, errno, "cannot open directory '%s'", dir);
		goto done;
	}
	if (fstat(m.rootfd, &st) < 0) {
		rc = dm_err_errno(err, errno, "cannot stat '%s'", dir);
		goto done;
	}
	m.dev = st.st_dev;
	fd = fcntl(m.rootfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		rc = dm_err_errno(err, errno, "cannot open directory '%s'", dir);
		goto done;
	}
	ref = dm_dirref_new(fd);
	rc = dm_filepool_start(&m.pool, opts ? opts->threads : 0, MAX_QUEUED, run_job, &m, err);
	if (rc)
		goto done;
	rc = walk(&m, ref, &root, 0, &werr);
	if (rc)
		fail(&m, rc, &werr);
	dm_dirref_put(ref);
	ref = NULL;
	dm_filepool_finish(m.pool);
	m.pool = NULL;
	if (m.rc) {
		rc = m.rc;
		goto done;
	}
	for (size_t i = 0; i < m.njobs; i++) {
		if (m.jobs[i]->wrote) {
			stats->files_written++;
			stats->files_in_place += m.jobs[i]->in_place;
			stats->bytes_written += m.jobs[i]->bytes;
		} else {
			stats->files_kept++;
		}
	}
	rc = finish_dirs(&m, err);
	if (!rc && m.cache)
		rc = update_cache(&m, err);
done:
	if (m.pool) {
		atomic_store(&m.stop, true);
		dm_filepool_finish(m.pool);
	}
	dm_dirref_put(ref);
	for (size_t i = 0; i < m.njobs; i++) {
		free(m.jobs[i]->name);
		free(m.jobs[i]->rel);
		free(m.jobs[i]);
	}
	free(m.jobs);
	for (size_t i = 0; i < m.nfins; i++)
		free(m.fins[i].rel);
	free(m.fins);
	for (size_t i = 0; i < m.nlearns; i++)
		free(m.learns[i].rel);
	free(m.learns);
	dm_tree_release(&root);
	if (m.rootfd >= 0)
		close(m.rootfd);
	dm_buf_release(&m.path);
	dm_buf_release(&m.obj);
	pthread_mutex_destroy(&m.err_mu);
	pthread_mutex_destroy(&m.mark_mu);
	return rc;
}
