/*
 * dir.c - the "dir" engine: every working copy is a plain directory, on any
 * file system, with no privileges needed.
 *
 * Layout under the engine root:
 *     ROOT/<dot id>/<branch>/wc          the working copy (what containers mount)
 *     ROOT/<dot id>/<branch>/statcache   the stat cache of wc (never inside wc)
 *     ROOT/<dot id>/<branch>/capture     a commit's copies, during the commit only
 *
 * Commit is dm_tree_build of wc with the branch's stat cache, as of one
 * instant (docs/consistency.md): with writers to freeze, a read (skipped
 * with reflinks), the freeze, a capture walk that copies aside into
 * ROOT/<dot id>/<branch>/capture what the cache does not vouch for, the
 * thaw, and the copies read; without, reads checked and repeated until
 * nothing moved (at most DM_ENGINE_READS_MAX). Reset and
 * create are dm_tree_materialize onto wc with that cache; the cache is saved
 * after each of them succeeds (after the store is flushed, so it never names
 * an object the store could lose in a crash).
 *
 * Dirty and diff are wc.c's comparisons, with the branch's stat cache
 * loaded, consulted and dropped: they write nothing anywhere.
 *
 * Modes: ROOT, ROOT/<dot id> and ROOT/<dot id>/<branch> are made 0711
 * (DIR_MODE): anyone may pass through them to wc, nobody else may list them.
 * A database in wc runs as its own user (PostgreSQL refuses to run as
 * root), so it must reach wc by path; wc itself is made 0755 and its
 * contents keep the modes of the tree.
 *
 * Invariants: a dot id or branch name is a valid name part
 * ([A-Za-z0-9_-]{1,64}) before it goes into any path, so no path leaves
 * ROOT; the wc directory itself is never replaced (containers hold it as a
 * bind mount), only its contents; walks of wc never follow a symlink (every
 * open is relative to a directory fd with O_NOFOLLOW) and never enter
 * another file system. struct dm_engine is read-only after open, so calls
 * for different dots share nothing mutable.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/internal.h"
#include "store/statcache.h"
#include "store/store.h"
#include "store/tree.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

#define DIR_MODE DM_WC_DIR_MODE

struct dm_engine {
	struct dm_engine_base base;
	struct dm_store *store;
};

/* ---- open / free ---- */

static void dir_free(struct dm_engine *e)
{
	if (!e)
		return;
	free(e->base.root);
	free(e);
}

static int dir_open(struct dm_engine **out, const char *root, struct dm_store *store,
                    struct dm_err *err)
{
	struct dm_engine *e = NULL;
	char *abs = NULL;
	int rc;

	*out = NULL;
	rc = dm_mkdir_p(root, DIR_MODE, err);
	if (rc)
		return rc;
	abs = realpath(root, NULL);
	if (!abs)
		return dm_err_errno(err, errno, "cannot resolve '%s'", root);
	e = dm_xcalloc(1, sizeof(*e));
	e->base.ops = &dm_engine_dir;
	e->base.root = abs;
	e->store = store;
	*out = e;
	return 0;
}

/* ---- create, commit, reset ---- */

/* "12.3 MiB" */
static void mib(char *out, size_t size, uint64_t n)
{
	snprintf(out, size, "%.1f MiB", (double)n / (1024.0 * 1024.0));
}

/*
 * Before anything in the working copy changes: refused with DM_ENOSPC,
 * naming the file system and what is needed, when what the checkout may
 * write (dm_tree_materialize_need: every file the cache does not vouch
 * for) does not fit in the free space, less the store's reserve when the
 * store is on the same file system, and a margin of 1 MiB. So a reset, a
 * receive or a new branch that cannot fit leaves the working copy as it
 * was instead of half written.
 */
static int preflight(struct dm_engine *e, const struct dm_wc_paths *p, const dm_oid *tree,
                     const struct dm_statcache *cache, struct dm_err *err)
{
	struct dm_store_space sp;
	struct statvfs vfs;
	uint64_t need = 0, avail, reserve = 0;
	char a[32], b[32], c[32];
	const char *where = dm_wc_str(&p->wc);
	int rc;

	if (statvfs(where, &vfs) < 0) {
		where = dm_wc_str(&p->dir);
		if (statvfs(where, &vfs) < 0)
			return 0; /* nothing to say: the checkout finds out */
	}
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (!dm_store_space(e->store, &sp, NULL) && sp.fs_id == (uint64_t)vfs.f_fsid)
		reserve = sp.reserve;
	rc = dm_tree_materialize_need(e->store, tree, dm_wc_str(&p->wc), cache, &need, err);
	if (rc)
		return rc;
	if (need + reserve + (1u << 20) <= avail)
		return 0;
	mib(a, sizeof(a), need);
	mib(b, sizeof(b), avail);
	mib(c, sizeof(c), reserve);
	return dm_err_set(err, DM_ENOSPC,
	                  "no space: the working copy needs up to %s more on the file system of "
	                  "'%s', which has %s free%s%s%s; nothing was changed",
	                  a, where, b, reserve ? " (" : "", reserve ? c : "",
	                  reserve ? " of it kept in reserve for dm gc)" : "");
}

/* Materialises tree onto the working copy with its stat cache, syncs what
 * it wrote (once, syncfs), then saves the cache. fresh: the wc was just
 * made empty, any old cache is stale. Unless containers use it meanwhile
 * (prog->shared), existing files change in place, only where they differ,
 * under the marker of inplace.c; after an unfinished in-place write no
 * cache is trusted. */
static int materialize(struct dm_engine *e, const struct dm_wc_paths *p, const dm_oid *tree,
                       bool fresh, const struct dm_engine_progress *prog, struct dm_err *err)
{
	struct dm_materialize_opts o;
	struct dm_materialize_stats stats;
	struct dm_statcache *cache = NULL;
	struct dm_err serr = {0, ""};
	int64_t t0 = dm_now_monotonic_ns(), t1;
	bool unfinished = !fresh && dm_wc_unfinished(p);
	int rc;

	if (fresh || unfinished)
		cache = dm_statcache_new();
	else if ((rc = dm_statcache_load(&cache, dm_wc_str(&p->cache), err)))
		return rc;
	memset(&o, 0, sizeof(o));
	o.threads = 0;
	o.cache = cache;
	o.restore_owner = geteuid() == 0;
	o.strip_setid = prog && prog->strip_setid;
	o.in_place = !fresh && !(prog && prog->shared);
	o.before_in_place = dm_wc_before_in_place;
	o.ctx = p;
	rc = preflight(e, p, tree, cache, err);
	if (!rc)
		rc = dm_tree_materialize(e->store, tree, dm_wc_str(&p->wc), &o, &stats, err);
	t1 = dm_now_monotonic_ns();
	if (!rc && (stats.files_written || stats.removed || unfinished))
		rc = dm_wc_sync(dm_wc_str(&p->wc), err);
	if (!rc)
		rc = dm_wc_finish(p, err);
	if (rc)
		goto done;
	if (dm_statcache_save(cache, dm_wc_str(&p->cache), &serr))
		dm_warn("cannot save the stat cache of '%s' (the next commit reads every file): %s",
		        dm_wc_str(&p->wc), serr.msg);
	dm_debug("checkout of '%s': %llu files written (%llu in place, %llu bytes), %llu kept, "
	         "%llu removed in %lld ms, synced in %lld ms",
	         dm_wc_str(&p->wc), (unsigned long long)stats.files_written,
	         (unsigned long long)stats.files_in_place, (unsigned long long)stats.bytes_written,
	         (unsigned long long)stats.files_kept, (unsigned long long)stats.removed,
	         (long long)((t1 - t0) / 1000000), (long long)((dm_now_monotonic_ns() - t1) / 1000000));
	dm_wc_report(prog, stats.bytes_written, stats.bytes_written);
done:
	dm_statcache_free(cache);
	return rc;
}

static int dir_create(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *tree,
                      const struct dm_engine_progress *prog, struct dm_err *err)
{
	struct dm_wc_paths p;
	struct dm_err cerr = {0, ""};
	struct stat st;
	bool made = false;
	int rc;

	rc = dm_wc_paths_init(&p, e->base.root, dot, branch, err);
	if (rc)
		goto done;
	if (lstat(dm_wc_str(&p.wc), &st) == 0) {
		rc = dm_err_set(err, DM_EEXISTS,
		                "branch '%s' of dot '%s' already has a working copy", branch, dot);
		goto done;
	}
	rc = dm_wc_check_cancel(prog, "create", err);
	if (rc)
		goto done;
	dm_wc_report(prog, 0, 0);
	rc = dm_mkdir_p(dm_wc_str(&p.dir), DIR_MODE, err);
	if (rc)
		goto done;
	if (unlink(dm_wc_str(&p.cache)) < 0 && errno != ENOENT) {
		rc = dm_err_errno(err, errno, "cannot remove stale '%s'", dm_wc_str(&p.cache));
		goto done;
	}
	if (mkdir(dm_wc_str(&p.wc), 0755) < 0) {
		rc = dm_err_errno(err, errno, "cannot create directory '%s'", dm_wc_str(&p.wc));
		goto done;
	}
	made = true;
	if (tree)
		rc = materialize(e, &p, tree, true, prog, err);
	else
		dm_wc_report(prog, 0, 0);
done:
	if (rc && made && dm_remove_tree(dm_wc_str(&p.dir), &cerr))
		dm_warn("cannot clean up after a failed create: %s", cerr.msg);
	dm_wc_paths_release(&p);
	return rc;
}

/* Whether files made in dir can be reflinked (FICLONE): then a freeze
 * copies nothing, and reading the working copy before it is wasted work. */
static bool has_reflinks(const char *dir)
{
	static const char block[4096];
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), a = -1, b = -1;
	bool yes = false;

	if (dfd < 0)
		return false;
	a = openat(dfd, "probe-a", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	b = openat(dfd, "probe-b", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (a >= 0 && b >= 0 && dm_write_all(a, block, sizeof(block)) == 0)
		yes = ioctl(b, FICLONE, a) == 0;
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	unlinkat(dfd, "probe-a", 0);
	unlinkat(dfd, "probe-b", 0);
	close(dfd);
	return yes;
}

/* Nothing to freeze: read, check, and read again what moved. */
static int commit_live(struct dm_engine *e, const struct dm_wc_paths *p, struct dm_build_opts *o,
                       dm_oid *tree_out, struct dm_engine_capture *cap,
                       struct dm_build_stats *stats, struct dm_err *err)
{
	o->verify = true;
	while (cap->reads < DM_ENGINE_READS_MAX) {
		int rc = dm_tree_build(e->store, tree_out, dm_wc_str(&p->wc), o, stats, err);

		cap->reads++;
		if (rc)
			return rc;
		if (!stats->changed) {
			cap->kind = DM_CAPTURE_QUIET;
			return 0;
		}
		dm_debug("commit of '%s': %llu entries changed while it was read (the first: %s)",
		         dm_wc_str(&p->wc), (unsigned long long)stats->changed, stats->changed_path);
	}
	cap->kind = DM_CAPTURE_NOT_INSTANT;
	cap->changed = stats->changed;
	snprintf(cap->changed_path, sizeof(cap->changed_path), "%s", stats->changed_path);
	return 0;
}

/*
 * Writers to freeze: (without reflinks) read the working copy while they
 * run, so that the cache knows all but what changes meanwhile; freeze; walk
 * it, copying aside what the cache does not vouch for, and check it; thaw
 * (the build's walk_done); read the copies.
 */
static int commit_frozen(struct dm_engine *e, const struct dm_wc_paths *p,
                         const struct dm_engine_freezer *fz, struct dm_build_opts *o,
                         dm_oid *tree_out, struct dm_engine_capture *cap,
                         struct dm_build_stats *stats, const struct dm_engine_progress *prog,
                         struct dm_err *err)
{
	const char *capdir = dm_wc_str(&p->capture);
	struct dm_build_capture c;
	struct dm_err cerr = {0, ""};
	int64_t start;
	int rc;

	rc = dm_remove_tree(capdir, err);
	if (rc)
		return rc;
	if (mkdir(capdir, 0700) < 0)
		return dm_err_errno(err, errno, "cannot create directory '%s'", capdir);
	if (!has_reflinks(capdir)) {
		rc = dm_tree_build(e->store, tree_out, dm_wc_str(&p->wc), o, stats, err);
		cap->reads++;
		if (rc)
			goto done;
	}
	start = dm_now_monotonic_ns();
	rc = fz->freeze(fz->ctx, err);
	if (rc) {
		dm_err_prefix(err, "cannot freeze the containers that use it");
		goto done;
	}
	memset(&c, 0, sizeof(c));
	c.dir = capdir;
	c.walk_done = fz->thaw;
	c.ctx = fz->ctx;
	c.deadline_ns = fz->max_freeze_ns ? start + fz->max_freeze_ns : 0;
	c.cancelled = prog ? prog->cancelled : NULL;
	c.cancel_ctx = prog ? prog->ctx : NULL;
	o->capture = &c;
	o->verify = true;
	rc = dm_tree_build(e->store, tree_out, dm_wc_str(&p->wc), o, stats, err);
	o->capture = NULL;
	cap->reads++;
	if (rc == DM_ETIMEOUT)
		rc = dm_err_set(err, DM_ETIMEOUT,
		                "the containers would have stayed frozen longer than %lld ms "
		                "(--max-freeze); they run again and nothing was committed. A freeze "
		                "copies the files that changed while the commit read them (%llu so "
		                "far), so a busy large file makes it long: raise --max-freeze",
		                (long long)(fz->max_freeze_ns / 1000000),
		                (unsigned long long)stats->files_captured);
	if (rc)
		goto done;
	cap->kind = stats->changed ? DM_CAPTURE_NOT_INSTANT : DM_CAPTURE_FROZEN;
	cap->changed = stats->changed;
	snprintf(cap->changed_path, sizeof(cap->changed_path), "%s", stats->changed_path);
	cap->files_captured = stats->files_captured;
	cap->bytes_copied = stats->bytes_copied;
done:
	if (dm_remove_tree(capdir, &cerr))
		dm_warn("cannot remove '%s': %s", capdir, cerr.msg);
	return rc;
}

static int dir_commit(struct dm_engine *e, const char *dot, const char *branch,
                      const struct dm_engine_freezer *fz, dm_oid *tree_out,
                      struct dm_engine_capture *cap, const struct dm_engine_progress *prog,
                      struct dm_err *err)
{
	struct dm_wc_paths p;
	struct dm_build_opts o;
	struct dm_build_stats stats;
	struct dm_statcache *cache = NULL;
	struct dm_err serr = {0, ""};
	int64_t t0 = dm_now_monotonic_ns();
	int rc;

	rc = dm_wc_paths_init(&p, e->base.root, dot, branch, err);
	if (!rc)
		rc = dm_wc_need(&p, dot, branch, err);
	if (!rc)
		rc = dm_wc_check_finished(&p, dot, branch, err);
	if (!rc)
		rc = dm_wc_check_cancel(prog, "commit", err);
	if (rc)
		goto done;
	dm_wc_report(prog, 0, 0);
	rc = dm_statcache_load(&cache, dm_wc_str(&p.cache), err);
	if (rc)
		goto done;
	memset(&o, 0, sizeof(o));
	o.threads = 0;
	o.cache = cache;
	if (fz)
		rc = commit_frozen(e, &p, fz, &o, tree_out, cap, &stats, prog, err);
	else
		rc = commit_live(e, &p, &o, tree_out, cap, &stats, err);
	if (rc) {
		dm_err_prefix(err, "cannot commit branch '%s' of dot '%s'", branch, dot);
		goto done;
	}
	rc = dm_store_flush(e->store, err);
	if (rc)
		goto done;
	if (dm_statcache_save(cache, dm_wc_str(&p.cache), &serr))
		dm_warn("cannot save the stat cache of '%s' (the next commit reads every file): %s",
		        dm_wc_str(&p.wc), serr.msg);
	dm_debug("commit of '%s': %llu files, %llu hashed (%llu bytes), %llu new chunks, "
	         "%llu bytes in all, in %lld ms; %s, %u reads, %llu files captured (%llu bytes "
	         "copied), %llu entries changed while read",
	         dm_wc_str(&p.wc), (unsigned long long)stats.files,
	         (unsigned long long)stats.files_hashed, (unsigned long long)stats.bytes_hashed,
	         (unsigned long long)stats.chunks_new, (unsigned long long)stats.bytes_total,
	         (long long)((dm_now_monotonic_ns() - t0) / 1000000), dm_capture_kind_name(cap->kind),
	         cap->reads, (unsigned long long)stats.files_captured,
	         (unsigned long long)stats.bytes_copied, (unsigned long long)stats.changed);
	dm_wc_report(prog, stats.bytes_total, stats.bytes_total);
done:
	dm_statcache_free(cache);
	dm_wc_paths_release(&p);
	return rc;
}

static int dir_reset(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *tree,
                     const struct dm_engine_progress *prog, struct dm_err *err)
{
	struct dm_wc_paths p;
	dm_oid empty;
	int rc;

	rc = dm_wc_paths_init(&p, e->base.root, dot, branch, err);
	if (!rc)
		rc = dm_wc_need(&p, dot, branch, err);
	if (!rc)
		rc = dm_wc_check_cancel(prog, "reset", err);
	if (rc)
		goto done;
	dm_wc_report(prog, 0, 0);
	if (!tree) {
		rc = dm_wc_empty_tree(e->store, &empty, err);
		if (rc)
			goto done;
		tree = &empty;
	}
	rc = materialize(e, &p, tree, false, prog, err);
	if (rc)
		dm_err_prefix(err, "cannot reset branch '%s' of dot '%s'", branch, dot);
done:
	dm_wc_paths_release(&p);
	return rc;
}

/* ---- comparing: dirty and diff ---- */

/* The working copy of (dot, branch) and its stat cache, for comparing. */
static int open_for_compare(struct dm_engine *e, struct dm_wc_paths *p,
                            struct dm_statcache **cache, const char *dot, const char *branch,
                            struct dm_err *err)
{
	int rc = dm_wc_paths_init(p, e->base.root, dot, branch, err);

	*cache = NULL;
	if (!rc)
		rc = dm_wc_need(p, dot, branch, err);
	if (!rc)
		rc = dm_wc_check_finished(p, dot, branch, err);
	if (!rc)
		rc = dm_statcache_load(cache, dm_wc_str(&p->cache), err);
	return rc;
}

static int dir_dirty(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *head,
                     uint64_t *dirty_out, uint64_t *size_out, struct dm_err *err)
{
	struct dm_wc_paths p;
	struct dm_statcache *cache = NULL;
	size_t settled = 0;
	int rc = open_for_compare(e, &p, &cache, dot, branch, err);

	if (!rc)
		rc = dm_wc_dirty_settle(e->store, dm_wc_str(&p.wc), cache, head, dirty_out, size_out,
		                        &settled, err);
	/* files the last commit could not trust (written just before it) and
	 * that this measure read: the next measure trusts them */
	if (!rc && settled) {
		struct dm_err serr = {0, ""};

		if (dm_statcache_save(cache, dm_wc_str(&p.cache), &serr))
			dm_warn("cannot save the stat cache of '%s': %s", dm_wc_str(&p.wc), serr.msg);
		else
			dm_debug("dirty of '%s': %zu files settled in the stat cache (read, unchanged)",
			         dm_wc_str(&p.wc), settled);
	}
	dm_statcache_free(cache);
	dm_wc_paths_release(&p);
	return rc;
}

static int dir_diff(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *from,
                    const dm_oid *to, struct dm_diff *out, struct dm_err *err)
{
	struct dm_wc_paths p = DM_WC_PATHS_INIT;
	struct dm_statcache *cache = NULL;
	int rc;

	out->n = 0;
	out->changes = NULL;
	if (to) {
		rc = dm_wc_diff(e->store, NULL, NULL, from, to, out, err);
	} else {
		rc = open_for_compare(e, &p, &cache, dot, branch, err);
		if (!rc)
			rc = dm_wc_diff(e->store, dm_wc_str(&p.wc), cache, from, NULL, out, err);
	}
	dm_statcache_free(cache);
	dm_wc_paths_release(&p);
	return rc;
}

/* ---- delete ---- */

static int dir_delete_branch(struct dm_engine *e, const char *dot, const char *branch,
                             struct dm_err *err)
{
	struct dm_buf p, d;
	int rc;

	dm_buf_init(&p, 0);
	dm_buf_init(&d, 0);
	rc = dm_wc_check_branch(branch, err);
	if (!rc)
		rc = dm_wc_make_path(&p, e->base.root, dot, branch, NULL, err);
	if (!rc)
		rc = dm_wc_make_path(&d, e->base.root, dot, NULL, NULL, err);
	if (!rc)
		rc = dm_remove_tree(dm_wc_str(&p), err);
	if (!rc)
		(void)rmdir(dm_wc_str(&d)); /* the dot's directory, once its last branch is gone */
	dm_buf_release(&p);
	dm_buf_release(&d);
	return rc;
}

static int dir_delete_dot(struct dm_engine *e, const char *dot, struct dm_err *err)
{
	struct dm_buf p;
	int rc;

	dm_buf_init(&p, 0);
	rc = dm_wc_make_path(&p, e->base.root, dot, NULL, NULL, err);
	if (!rc)
		rc = dm_remove_tree(dm_wc_str(&p), err);
	dm_buf_release(&p);
	return rc;
}

const struct dm_engine_ops dm_engine_dir = {
    .name = "dir",
    .open = dir_open,
    .free = dir_free,
    .create = dir_create,
    .commit = dir_commit,
    .reset = dir_reset,
    .dirty = dir_dirty,
    .diff = dir_diff,
    .delete_branch = dir_delete_branch,
    .delete_dot = dir_delete_dot,
};
