/*
 * treebuild.c - dm_tree_build: a directory becomes a tree of objects.
 *
 * Three phases. (1) The walk, on the calling thread, reads each directory
 * whole (names first, so a directory's entry array never moves once it is
 * filled), lstat()s every entry through the directory's fd, asks the stat
 * cache about regular files and pushes a job for every miss onto a pool of
 * threads, which read, chunk, hash and store the file while the walk goes
 * on; with a base directory (an earlier frozen copy), a changed file whose
 * earlier version the cache vouches for is stored by dm_filedata_store_delta,
 * which reads only the blocks that differ. (2) When every job is done, the
 * trees are assembled bottom-up, encoded and stored. (3) The stat cache
 * learns the files that were read and forgets the paths that are gone.
 *
 * Invariants: the walk never follows a symlink and never leaves the root's
 * file system: a mount point inside the directory is refused (not skipped,
 * so a commit never silently misses data); a worker opens its file by name
 * through the fd of the directory the walk opened (O_NOFOLLOW), so a
 * directory swapped for a symlink during the walk is never followed. A job's entry is written by one
 * worker only, and read by the calling thread only after the pool is
 * finished. Fifos, sockets and devices are refused with the path. A file
 * that disappears between the walk and its job is left out of the tree
 * (it was deleted during the commit); one that changed while it was read is
 * stored as read and not put into the cache, so the next build reads it
 * again.
 *
 * Capture mode (opts->capture; the walk runs while the directory's writers
 * are frozen): a file the cache does not vouch for is not queued to the
 * pool during the walk but copied aside at once (dm_capture_file: a reflink
 * or a copy); when the walk (and the verify) is over, walk_done lets the
 * writers go and the copies are read by the pool, each job keeping the stat
 * its file had in the walk. Verify (opts->verify): every entry remembers the
 * stat its content was read under (`ref`) and when that stat was taken; a
 * second walk compares names and stats, and counts what moved.
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

/* Jobs queued ahead of the workers. */
#define MAX_QUEUED 1024

struct bdir;

/* One entry found by the walk. */
struct bent {
	char *name;
	uint8_t type;     /* enum dm_entry_type; 0 when the entry was dropped */
	uint32_t mode, uid, gid;
	int64_t mtime_ns;
	uint64_t size;
	dm_oid id;
	char *target;     /* symlink */
	struct bdir *sub; /* directory */
	/* the stat the content was read under, and the clock just before it
	 * was taken (0: a cache hit, whose stat is old enough to trust) */
	struct dm_statcache_stat ref;
	int64_t ref_ns;
};

struct bdir {
	struct bent *e;
	size_t n;
};

/* A file to read: written by one worker, then read by the caller. */
struct job {
	struct bent *ent;
	struct dm_dirref *dir; /* the directory it is in, until the job ran */
	char *rel;
	struct stat st;    /* fstat before reading, for the cache */
	int64_t seen_ns;
	bool cacheable;
	bool failed;
	uint64_t bytes_read, chunks_new;
	int base_fd;       /* its earlier version (base_dir), or -1 */
	dm_oid base_id;    /* what the cache says that version holds */
	char copy[24];     /* capture mode: its copy in the capture directory */
};

struct build {
	struct dm_store *s;
	struct dm_statcache *cache;
	const char *dir;    /* set when chunks stay in dir's files (external) */
	int64_t seen_ns;    /* when dir was frozen; 0: the clock at read */
	int base_rootfd;    /* opts->base_dir, or -1 */
	struct dm_build_stats *stats;
	int rootfd;
	dev_t dev;
	struct dm_buf path; /* relative path of what the walk is at */
	struct dm_filepool *pool;
	const struct dm_build_capture *capture; /* NULL: files are read in place */
	int capfd;          /* capture->dir, or -1 */
	bool walk_done;     /* capture->walk_done was called */
	struct job **jobs;
	size_t njobs, jobs_alloc;
	/* shared with the workers */
	atomic_bool stop;
	pthread_mutex_t err_mu;
	struct dm_err *err;
	int rc;
};

/* Records the first failure (any thread); later ones are dropped. */
static int fail(struct build *b, int rc, const struct dm_err *e)
{
	pthread_mutex_lock(&b->err_mu);
	if (!b->rc) {
		b->rc = rc;
		if (b->err && e && e != b->err)
			*b->err = *e;
	}
	pthread_mutex_unlock(&b->err_mu);
	atomic_store(&b->stop, true);
	return rc;
}

static void free_dir(struct bdir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++) {
		free(d->e[i].name);
		free(d->e[i].target);
		free_dir(d->e[i].sub);
	}
	free(d->e);
	free(d);
}

static void fill_meta(struct bent *e, const struct stat *st)
{
	e->mode = (uint32_t)st->st_mode & 07777;
	e->uid = (uint32_t)st->st_uid;
	e->gid = (uint32_t)st->st_gid;
	e->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* ---- phase 1b: the workers ---- */

/* Capture mode: reads the copy the walk made of j's file (and removes it).
 * j->st, ent's metadata and ref were set from the file in the walk. */
static void read_copy(struct build *b, struct job *j, struct dm_filedata_ctx *ctx)
{
	struct dm_filedata_result res;
	struct dm_err e = {0, ""};
	int fd = openat(b->capfd, j->copy, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd < 0) {
		fail(b, dm_err_errno(&e, errno, "cannot open the copy of '%s'", j->rel), &e);
		return;
	}
	rc = dm_filedata_store(b->s, ctx, &j->ent->id, fd, (uint64_t)j->st.st_size,
			       (uint64_t)j->st.st_blocks, j->rel, NULL, &res, &e);
	close(fd);
	unlinkat(b->capfd, j->copy, 0);
	j->copy[0] = '\0';
	if (rc) {
		fail(b, rc, &e);
		return;
	}
	j->ent->size = res.size;
	j->bytes_read = res.bytes_read;
	j->chunks_new = res.chunks_new;
	j->cacheable = j->cacheable && !res.changed;
	j->failed = false;
}

static void run_job(void *job_, struct dm_filedata_ctx *ctx, void *arg)
{
	struct job *j = job_;
	struct build *b = arg;
	struct dm_filedata_result res;
	struct dm_err e = {0, ""};
	struct stat after;
	char *ext_path = NULL;
	int fd = -1, base_fd = j->base_fd, rc = 0;

	j->failed = true;
	j->base_fd = -1;
	if (atomic_load(&b->stop)) {
		dm_dirref_put(j->dir);
		j->dir = NULL;
		if (base_fd >= 0)
			close(base_fd);
		return;
	}
	if (j->copy[0]) {
		read_copy(b, j, ctx);
		return;
	}
	j->seen_ns = b->seen_ns ? b->seen_ns : dm_now_realtime_ns();
	fd = openat(dm_dirref_fd(j->dir), j->ent->name,
		    O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
	dm_dirref_put(j->dir);
	j->dir = NULL;
	if (fd < 0) {
		if (errno == ENOENT) { /* deleted since the walk saw it */
			j->ent->type = 0;
			j->failed = false;
			return;
		}
		if (errno == ELOOP)
			rc = dm_err_set(&e, DM_ECONFLICT,
					"cannot commit '%s': it changed while it was being committed",
					j->rel);
		else
			rc = dm_err_errno(&e, errno, "cannot open '%s'", j->rel);
		goto done;
	}
	if (fstat(fd, &j->st) < 0) {
		rc = dm_err_errno(&e, errno, "cannot stat '%s'", j->rel);
		goto done;
	}
	if (!S_ISREG(j->st.st_mode)) {
		rc = dm_err_set(&e, DM_ECONFLICT,
				"cannot commit '%s': it changed while it was being committed", j->rel);
		goto done;
	}
	if (b->dir) {
		size_t n = strlen(b->dir) + strlen(j->rel) + 2;

		ext_path = dm_xmalloc(n);
		snprintf(ext_path, n, "%s/%s", b->dir, j->rel);
	}
	if (base_fd >= 0)
		rc = dm_filedata_store_delta(b->s, ctx, &j->ent->id, fd, (uint64_t)j->st.st_size,
					     (uint64_t)j->st.st_blocks, j->rel, ext_path, base_fd,
					     &j->base_id, &res, &e);
	else
		rc = dm_filedata_store(b->s, ctx, &j->ent->id, fd, (uint64_t)j->st.st_size,
				       (uint64_t)j->st.st_blocks, j->rel, ext_path, &res, &e);
	if (rc)
		goto done;
	fill_meta(j->ent, &j->st);
	dm_statcache_stat_from(&j->ent->ref, &j->st);
	j->ent->ref_ns = j->seen_ns;
	j->ent->size = res.size;
	j->bytes_read = res.bytes_read;
	j->chunks_new = res.chunks_new;
	j->cacheable = !res.changed && fstat(fd, &after) == 0 &&
		       after.st_size == j->st.st_size &&
		       after.st_mtim.tv_sec == j->st.st_mtim.tv_sec &&
		       after.st_mtim.tv_nsec == j->st.st_mtim.tv_nsec &&
		       after.st_ctim.tv_sec == j->st.st_ctim.tv_sec &&
		       after.st_ctim.tv_nsec == j->st.st_ctim.tv_nsec;
	j->failed = false;
done:
	if (fd >= 0)
		close(fd);
	if (base_fd >= 0)
		close(base_fd);
	free(ext_path);
	if (rc)
		fail(b, rc, &e);
}

/* ---- phase 1a: the walk ---- */

static const char *kind_of(mode_t m)
{
	if (S_ISFIFO(m))
		return "fifos";
	if (S_ISSOCK(m))
		return "sockets";
	if (S_ISCHR(m))
		return "character devices";
	if (S_ISBLK(m))
		return "block devices";
	return "files of this type";
}

/* Appends name to b->path; returns the old length to pop back to. */
static size_t path_push(struct build *b, const char *name)
{
	size_t old = b->path.len;

	if (old)
		dm_buf_addc(&b->path, '/');
	dm_buf_adds(&b->path, name);
	return old;
}

static void path_pop(struct build *b, size_t old)
{
	b->path.len = old;
	if (b->path.data)
		b->path.data[old] = '\0';
}

/* The earlier version of the file at rel, when the cache vouches for its
 * content: an fd for the job (or -1) and that content's id. */
static int find_base(struct build *b, const char *rel, dm_oid *id)
{
	struct dm_statcache_stat cs;
	struct stat st;
	int fd;

	if (b->base_rootfd < 0 || !b->cache)
		return -1;
	fd = dm_open_beneath(b->base_rootfd, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -1;
	}
	dm_statcache_stat_from(&cs, &st);
	if (!dm_statcache_peek(b->cache, rel, strlen(rel), &cs, id)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Whether st is still the stat ref was taken as. */
static bool ref_equal(const struct dm_statcache_stat *ref, const struct stat *st)
{
	struct dm_statcache_stat now;

	dm_statcache_stat_from(&now, st);
	return dm_statcache_stat_equal(ref, &now);
}

/* Capture mode: the walk stops at the freeze's deadline, or when the
 * caller cancels. */
static int check_deadline(struct build *b, struct dm_err *err)
{
	const struct dm_build_capture *c = b->capture;

	if (!c)
		return 0;
	if (c->deadline_ns && dm_now_monotonic_ns() > c->deadline_ns)
		return dm_err_set(err, DM_ETIMEOUT,
				  "the walk of the frozen directory ran past its deadline");
	if (c->cancelled && c->cancelled(c->cancel_ctx))
		return dm_err_set(err, DM_ECANCELED, "commit canceled");
	return 0;
}

/* Capture mode: copies j's file aside now, while the writers are frozen;
 * the pool reads the copy once they run again. */
static int capture_job(struct build *b, struct job *j, struct dm_err *err)
{
	struct dm_capture_result res;
	struct stat after;
	int64_t now = dm_now_realtime_ns();
	int fd, rc;

	fd = openat(dm_dirref_fd(j->dir), j->ent->name,
		    O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
	dm_dirref_put(j->dir);
	j->dir = NULL;
	j->failed = false;
	if (fd < 0 && errno == ENOENT) { /* deleted since the walk saw it */
		j->ent->type = 0;
		return 0;
	}
	if (fd < 0)
		return dm_err_errno(err, errno, "cannot open '%s'", j->rel);
	if (fstat(fd, &j->st) < 0 || !S_ISREG(j->st.st_mode)) {
		rc = S_ISREG(j->st.st_mode) ? dm_err_errno(err, errno, "cannot stat '%s'", j->rel)
					    : dm_err_set(err, DM_ECONFLICT,
							 "cannot commit '%s': it changed while it "
							 "was being committed",
							 j->rel);
		close(fd);
		return rc;
	}
	snprintf(j->copy, sizeof(j->copy), "%zu", b->njobs);
	rc = dm_capture_file(fd, (uint64_t)j->st.st_size, b->capfd, j->copy,
			     b->capture->deadline_ns, &res, j->rel, err);
	if (!rc) {
		j->seen_ns = now;
		fill_meta(j->ent, &j->st);
		dm_statcache_stat_from(&j->ent->ref, &j->st);
		j->ent->ref_ns = now;
		j->cacheable = fstat(fd, &after) == 0 && ref_equal(&j->ent->ref, &after);
		b->stats->files_captured++;
		b->stats->bytes_copied += res.bytes_copied;
	} else {
		j->copy[0] = '\0';
	}
	close(fd);
	return rc;
}

static int queue_job(struct build *b, struct dm_dirref *dir, struct bent *e, struct dm_err *err)
{
	struct job *j;

	if (b->njobs == b->jobs_alloc) {
		size_t na = b->jobs_alloc ? b->jobs_alloc * 2 : 256;

		b->jobs = dm_xrealloc(b->jobs, na * sizeof(*b->jobs));
		b->jobs_alloc = na;
	}
	j = dm_xcalloc(1, sizeof(*j));
	j->base_fd = -1;
	j->ent = e;
	j->dir = dm_dirref_get(dir);
	j->rel = dm_xstrndup((const char *)b->path.data, b->path.len);
	b->jobs[b->njobs++] = j;
	if (b->capture)
		return capture_job(b, j, err);
	j->base_fd = find_base(b, j->rel, &j->base_id);
	dm_filepool_push(b->pool, j);
	return 0;
}

/* Reads every name in the directory open on dir into d. */
static int read_names(struct build *b, DIR *dir, struct bdir *d, struct dm_err *err)
{
	size_t alloc = 0;
	struct dirent *de;

	for (;;) {
		errno = 0;
		de = readdir(dir);
		if (!de)
			break;
		if (de->d_name[0] == '.' &&
		    (de->d_name[1] == '\0' || (de->d_name[1] == '.' && de->d_name[2] == '\0')))
			continue;
		if (d->n == alloc) {
			alloc = alloc ? alloc * 2 : 16;
			d->e = dm_xrealloc(d->e, alloc * sizeof(*d->e));
		}
		memset(&d->e[d->n], 0, sizeof(d->e[d->n]));
		d->e[d->n].name = dm_xstrdup(de->d_name);
		d->n++;
	}
	if (errno)
		return dm_err_errno(err, errno, "cannot read directory '%s'",
				    b->path.len ? (const char *)b->path.data : ".");
	return 0;
}

static int walk(struct build *b, int dfd, struct bdir *d, int depth, struct dm_err *err);

static int visit(struct build *b, struct dm_dirref *dir, struct bent *e, int depth,
		 struct dm_err *err)
{
	const char *rel = (const char *)b->path.data;
	int dfd = dm_dirref_fd(dir);
	struct dm_statcache_stat cs;
	struct stat st;
	int64_t now = dm_now_realtime_ns();
	int rc = check_deadline(b, err);

	if (rc)
		return rc;
	if (fstatat(dfd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT) { /* deleted since readdir */
			e->type = 0;
			return 0;
		}
		return dm_err_errno(err, errno, "cannot stat '%s'", rel);
	}
	if (st.st_dev != b->dev && (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "cannot commit '%s': it is a mount point of another file system",
				  rel);
	fill_meta(e, &st);
	dm_statcache_stat_from(&e->ref, &st);
	e->ref_ns = now;
	if (S_ISREG(st.st_mode)) {
		e->type = DM_ENTRY_FILE;
		e->size = (uint64_t)st.st_size;
		b->stats->files++;
		b->stats->bytes_total += (uint64_t)st.st_size;
		dm_statcache_stat_from(&cs, &st);
		if (b->cache && dm_statcache_lookup(b->cache, rel, b->path.len, &cs, &e->id)) {
			e->ref_ns = 0;
			return 0;
		}
		return queue_job(b, dir, e, err);
	}
	if (S_ISLNK(st.st_mode)) {
		char target[DM_SYMLINK_MAX + 1];
		ssize_t n = readlinkat(dfd, e->name, target, sizeof(target));

		if (n < 0) {
			if (errno == ENOENT) {
				e->type = 0;
				return 0;
			}
			return dm_err_errno(err, errno, "cannot read symlink '%s'", rel);
		}
		if ((size_t)n > DM_SYMLINK_MAX)
			return dm_err_set(err, DM_EUNSUPPORTED,
					  "cannot commit '%s': its symlink target is longer than %u bytes",
					  rel, DM_SYMLINK_MAX);
		e->type = DM_ENTRY_SYMLINK;
		e->target = dm_xstrndup(target, (size_t)n);
		e->size = (uint64_t)n;
		b->stats->symlinks++;
		return 0;
	}
	if (S_ISDIR(st.st_mode)) {
		int fd;

		e->type = DM_ENTRY_DIR;
		if (depth >= DM_TREE_MAX_DEPTH)
			return dm_err_set(err, DM_EUNSUPPORTED,
					  "cannot commit '%s': directories nest more than %d deep",
					  rel, DM_TREE_MAX_DEPTH);
		fd = openat(dfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT) {
				e->type = 0;
				return 0;
			}
			return dm_err_errno(err, errno, "cannot open directory '%s'", rel);
		}
		e->sub = dm_xcalloc(1, sizeof(*e->sub));
		rc = walk(b, fd, e->sub, depth + 1, err); /* walk closes fd */
		return rc;
	}
	return dm_err_set(err, DM_EUNSUPPORTED, "cannot commit '%s': %s are not supported", rel,
			  kind_of(st.st_mode));
}

/* Walks the directory open on fd (and closes it) into d. */
static int walk(struct build *b, int fd, struct bdir *d, int depth, struct dm_err *err)
{
	struct dm_dirref *ref = NULL;
	int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *dir = NULL;
	int rc = 0;

	if (dup_fd < 0) {
		rc = dm_err_errno(err, errno, "cannot open directory '%s'",
				  b->path.len ? (const char *)b->path.data : ".");
		close(fd);
		return rc;
	}
	ref = dm_dirref_new(fd);
	dir = fdopendir(dup_fd);
	if (!dir) {
		rc = dm_err_errno(err, errno, "cannot read directory '%s'",
				  b->path.len ? (const char *)b->path.data : ".");
		close(dup_fd);
		dm_dirref_put(ref);
		return rc;
	}
	b->stats->dirs++;
	rc = read_names(b, dir, d, err);
	closedir(dir);
	for (size_t i = 0; !rc && i < d->n; i++) {
		size_t old = path_push(b, d->e[i].name);

		rc = visit(b, ref, &d->e[i], depth, err);
		path_pop(b, old);
		if (!rc && atomic_load(&b->stop))
			rc = b->rc;
	}
	dm_dirref_put(ref);
	return rc;
}

/* ---- the verify: did anything move while it was read? ---- */

/* How close to the moment a stat was taken a timestamp must be for a later
 * write to possibly leave it as it is (timestamps come from a clock that
 * ticks every few milliseconds). */
#define CLOCK_TICK_NS (20LL * 1000 * 1000)

static void note_changed(struct build *b, const char *name)
{
	struct dm_build_stats *st = b->stats;

	if (!st->changed++) {
		if (b->path.len && name)
			snprintf(st->changed_path, sizeof(st->changed_path), "%s/%s",
				 (const char *)b->path.data, name);
		else
			snprintf(st->changed_path, sizeof(st->changed_path), "%s",
				 name ? name : b->path.len ? (const char *)b->path.data : ".");
	}
}

/* A stat that equals ref proves nothing: a write just after ref was taken
 * may have kept the same timestamps. */
static bool uncertain(const struct bent *e)
{
	return e->ref_ns &&
	       (e->ref.mtime_ns > e->ref_ns - CLOCK_TICK_NS || e->ref.ctime_ns > e->ref_ns - CLOCK_TICK_NS);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Live mode: whether the file named e in dfd still holds e->id. */
static int same_content(struct build *b, struct dm_filedata_ctx *ctx, int dfd,
			const struct bent *e, bool *same, struct dm_err *err)
{
	struct dm_file f;
	int fd = openat(dfd, e->name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	*same = false;
	if (fd < 0)
		return 0;
	rc = dm_filedata_load(b->s, ctx, &f, &e->id, err);
	if (!rc) {
		rc = dm_filedata_check(ctx, fd, &f, same, e->name, err);
		dm_file_release(&f);
	}
	close(fd);
	return rc;
}

/* Compares the directory open on fd (closed here) with d. */
static int verify_dir(struct build *b, int fd, const struct bdir *d, struct dm_filedata_ctx *ctx,
		      struct dm_err *err)
{
	struct bdir now = {NULL, 0};
	char **had = NULL, **has = NULL;
	size_t nhad = 0, i = 0, k = 0;
	int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *dir = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	int rc = 0;

	if (!dir) {
		if (dup_fd >= 0)
			close(dup_fd);
		close(fd);
		return dm_err_errno(err, errno, "cannot read directory '%s'",
				    b->path.len ? (const char *)b->path.data : ".");
	}
	rewinddir(dir); /* a dup of the root shares the walk's offset */
	rc = read_names(b, dir, &now, err);
	closedir(dir);
	if (rc)
		goto done;
	/* the names, as they were read and as they are */
	had = dm_xcalloc(d->n + 1, sizeof(*had));
	for (size_t j = 0; j < d->n; j++) {
		if (d->e[j].type)
			had[nhad++] = d->e[j].name;
		else
			note_changed(b, d->e[j].name); /* gone during the walk */
	}
	has = dm_xcalloc(now.n + 1, sizeof(*has));
	for (size_t j = 0; j < now.n; j++)
		has[j] = now.e[j].name;
	qsort(had, nhad, sizeof(*had), cmp_name);
	qsort(has, now.n, sizeof(*has), cmp_name);
	while (i < nhad || k < now.n) {
		int c = i == nhad ? 1 : k == now.n ? -1 : strcmp(had[i], has[k]);

		if (c)
			note_changed(b, c < 0 ? had[i] : has[k]);
		i += c <= 0;
		k += c >= 0;
	}
	for (size_t j = 0; !rc && j < d->n; j++) {
		const struct bent *e = &d->e[j];
		struct stat st;

		if (!e->type)
			continue;
		rc = check_deadline(b, err);
		if (rc)
			break;
		if (e->type == DM_ENTRY_DIR) {
			/* what changed inside first, so that the path says what */
			int sub = openat(fd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			size_t old;

			if (sub >= 0) {
				old = path_push(b, e->name);
				rc = verify_dir(b, sub, e->sub, ctx, err);
				path_pop(b, old);
			}
			if (sub < 0 || fstatat(fd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !ref_equal(&e->ref, &st))
				note_changed(b, e->name);
			continue;
		}
		if (fstatat(fd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !ref_equal(&e->ref, &st)) {
			note_changed(b, e->name);
			continue;
		}
		if (uncertain(e) && e->type == DM_ENTRY_SYMLINK) {
			char target[DM_SYMLINK_MAX + 1];
			ssize_t n = readlinkat(fd, e->name, target, sizeof(target));

			if (n < 0 || (size_t)n != e->size || memcmp(target, e->target, (size_t)n))
				note_changed(b, e->name);
		} else if (uncertain(e) && e->type == DM_ENTRY_FILE && !b->capture) {
			bool same;

			rc = same_content(b, ctx, fd, e, &same, err);
			if (!rc && !same)
				note_changed(b, e->name);
		}
		/* capture mode: what runs during a freeze is not frozen; a
		 * second write within a clock tick of the first escapes it
		 * on kernels without fine-grained timestamps */
	}
done:
	for (size_t j = 0; j < now.n; j++)
		free(now.e[j].name);
	free(now.e);
	free(had);
	free(has);
	close(fd);
	return rc;
}

static int verify(struct build *b, struct bdir *root, const struct dm_statcache_stat *root_ref,
		  struct dm_err *err)
{
	struct dm_filedata_ctx ctx;
	struct stat st;
	int fd = dup(b->rootfd), rc;

	if (fd < 0)
		return dm_err_errno(err, errno, "cannot open the directory to check it");
	dm_filedata_ctx_init(&ctx);
	rc = verify_dir(b, fd, root, &ctx, err);
	dm_filedata_ctx_release(&ctx);
	if (!rc && (fstat(b->rootfd, &st) < 0 || !ref_equal(root_ref, &st)))
		note_changed(b, NULL);
	return rc;
}

/* Capture mode: lets the writers go, once. */
static void end_walk(struct build *b)
{
	if (b->capture && !b->walk_done) {
		b->walk_done = true;
		if (b->capture->walk_done)
			b->capture->walk_done(b->capture->ctx);
	}
}

/* ---- phase 2: trees, bottom-up ---- */

static int assemble(struct build *b, struct bdir *d, dm_oid *out, struct dm_buf *enc,
		    struct dm_err *err)
{
	struct dm_tree t = {0, NULL};
	int rc = 0;

	t.e = dm_xcalloc(d->n ? d->n : 1, sizeof(*t.e));
	for (size_t i = 0; i < d->n; i++) {
		struct bent *e = &d->e[i];
		struct dm_tree_entry *te;

		if (!e->type)
			continue;
		if (e->type == DM_ENTRY_DIR) {
			rc = assemble(b, e->sub, &e->id, enc, err);
			if (rc)
				goto done;
		}
		te = &t.e[t.n++];
		te->name = e->name;
		te->type = e->type;
		te->mode = e->mode;
		te->uid = e->uid;
		te->gid = e->gid;
		te->mtime_ns = e->mtime_ns;
		te->size = e->type == DM_ENTRY_DIR ? 0 : e->size;
		te->id = e->id;
		te->target = e->target;
	}
	dm_tree_sort(&t);
	dm_buf_reset(enc);
	rc = dm_tree_encode(enc, &t, err);
	if (!rc)
		rc = dm_store_put(b->s, out, DM_OBJ_TREE, enc->data, enc->len, err);
done:
	free(t.e); /* names and targets are borrowed from d */
	return rc;
}

/* ---- phase 3: the cache ---- */

static int update_cache(struct build *b, struct dm_err *err)
{
	struct dm_statcache_stat cs;
	int rc;

	for (size_t i = 0; i < b->njobs; i++) {
		struct job *j = b->jobs[i];

		if (!j->cacheable || !j->ent->type)
			continue;
		dm_statcache_stat_from(&cs, &j->st);
		rc = dm_statcache_put(b->cache, j->rel, strlen(j->rel), &cs, &j->ent->id,
				      j->seen_ns, err);
		if (rc)
			return rc;
	}
	dm_statcache_sweep(b->cache);
	return 0;
}

int dm_tree_build(struct dm_store *s, dm_oid *out, const char *dir,
		  const struct dm_build_opts *opts, struct dm_build_stats *stats,
		  struct dm_err *err)
{
	struct dm_build_stats local;
	struct build b;
	struct bdir *root = NULL;
	struct dm_err werr = {0, ""};
	struct dm_buf enc;
	struct dm_statcache_stat root_ref;
	struct stat st;
	int rc = 0, fd = -1;

	memset(&b, 0, sizeof(b));
	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	b.s = s;
	b.cache = opts ? opts->cache : NULL;
	b.dir = opts && opts->external ? dir : NULL;
	b.seen_ns = opts ? opts->seen_ns : 0;
	b.base_rootfd = -1;
	b.capture = opts && opts->capture && opts->capture->dir ? opts->capture : NULL;
	b.capfd = -1;
	b.stats = stats;
	b.rootfd = -1;
	b.err = err;
	atomic_init(&b.stop, false);
	pthread_mutex_init(&b.err_mu, NULL);
	dm_buf_init(&b.path, 0);
	dm_buf_init(&enc, DM_OBJ_MAX_SIZE);

	if (b.dir && b.dir[0] != '/') {
		rc = dm_err_set(err, DM_EINVAL, "external chunks need an absolute path, not '%s'",
				dir);
		goto done;
	}
	b.rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b.rootfd < 0) {
		rc = dm_err_errno(err, errno, "cannot open directory '%s'", dir);
		goto done;
	}
	if (opts && opts->base_dir && b.cache)
		b.base_rootfd = open(opts->base_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fstat(b.rootfd, &st) < 0) {
		rc = dm_err_errno(err, errno, "cannot stat '%s'", dir);
		goto done;
	}
	b.dev = st.st_dev;
	dm_statcache_stat_from(&root_ref, &st);
	if (b.capture) {
		b.capfd = open(b.capture->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (b.capfd < 0) {
			rc = dm_err_errno(err, errno, "cannot open directory '%s'", b.capture->dir);
			goto done;
		}
	}
	rc = dm_filepool_start(&b.pool, opts ? opts->threads : 0, MAX_QUEUED, run_job, &b, err);
	if (rc)
		goto done;
	fd = dup(b.rootfd);
	if (fd < 0) {
		rc = dm_err_errno(err, errno, "cannot open directory '%s'", dir);
		goto done;
	}
	root = dm_xcalloc(1, sizeof(*root));
	rc = walk(&b, fd, root, 0, &werr); /* closes fd */
	if (!rc && b.capture && opts->verify)
		rc = verify(&b, root, &root_ref, &werr);
	if (rc)
		fail(&b, rc, &werr);
	end_walk(&b);
	for (size_t i = 0; b.capture && !b.rc && i < b.njobs; i++)
		if (b.jobs[i]->copy[0])
			dm_filepool_push(b.pool, b.jobs[i]);
	dm_filepool_finish(b.pool);
	b.pool = NULL;
	if (!b.rc && !b.capture && opts && opts->verify) {
		rc = verify(&b, root, &root_ref, &werr);
		if (rc)
			fail(&b, rc, &werr);
	}
	if (b.rc) {
		rc = b.rc;
		goto done;
	}
	for (size_t i = 0; i < b.njobs; i++) {
		if (!b.jobs[i]->ent->type)
			continue;
		stats->files_hashed++;
		stats->bytes_hashed += b.jobs[i]->bytes_read;
		stats->chunks_new += b.jobs[i]->chunks_new;
	}
	rc = assemble(&b, root, out, &enc, err);
	if (!rc && b.cache)
		rc = update_cache(&b, err);
done:
	end_walk(&b);
	if (b.pool) {
		atomic_store(&b.stop, true);
		dm_filepool_finish(b.pool);
	}
	for (size_t i = 0; i < b.njobs; i++) {
		if (b.jobs[i]->copy[0] && b.capfd >= 0)
			unlinkat(b.capfd, b.jobs[i]->copy, 0); /* not read: a failure */
		dm_dirref_put(b.jobs[i]->dir);
		free(b.jobs[i]->rel);
		free(b.jobs[i]);
	}
	free(b.jobs);
	free_dir(root);
	if (b.rootfd >= 0)
		close(b.rootfd);
	if (b.base_rootfd >= 0)
		close(b.base_rootfd);
	if (b.capfd >= 0)
		close(b.capfd);
	dm_buf_release(&b.path);
	dm_buf_release(&enc);
	pthread_mutex_destroy(&b.err_mu);
	return rc;
}
