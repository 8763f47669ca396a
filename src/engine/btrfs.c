/*
 * btrfs.c - the "btrfs" engine: every working copy is a btrfs subvolume and
 * every commit a read-only snapshot of it, so commit, branch and reset cost
 * the same at any size (root on Linux; DESIGN.md §5).
 *
 * Layout under the engine root (which must be on btrfs):
 *     ROOT/<dot>/<branch>/wc                 the working copy, a subvolume
 *     ROOT/<dot>/<branch>/wc.new             a subvolume being swapped in (reset)
 *     ROOT/<dot>/<branch>/base               symlink: the snapshot wc was last
 *                                            equal to (taken from it, or made from it)
 *     ROOT/<dot>/<branch>/statcache          stat cache of a wc that was written
 *                                            file by file (materialised), until
 *                                            its next snapshot
 *     ROOT/<dot>/<branch>/limit              the size limit of wc, when it has one
 *                                            (a qgroup limit: engine/qgroup.h)
 *     ROOT/<dot>/.snapshots/<name>           read-only snapshot (name: commit id)
 *     ROOT/<dot>/.snapshots/<name>.statcache its stat cache, once indexed
 *     ROOT/<dot>/.snapshots/<name>.basecache the cache its index starts from
 *     ROOT/<dot>/.snapshots/<name>.base      symlink: the snapshot that cache
 *                                            describes, when it is one
 *     ROOT/<dot>/.trees/<tree hex>           symlink: a snapshot holding that tree
 *     ROOT/<dot>/.current                    symlink to <branch>/wc (wc.c)
 * Branch names have no '.', so none of these collide with a branch.
 *
 * Commits come in two steps: snapshot (a read-only snapshot of wc, named by
 * the commit id, taken at once whatever the size) and index (the snapshot
 * becomes a tree in the store). Index is dm_tree_build of the snapshot with
 * external chunks: a chunk the store lacks is recorded as bytes of the
 * snapshot's file (dm_store_put_external_hashed), never copied, so history
 * costs the pool only the blocks that changed. It starts from a stat cache
 * (the branch's materialised cache, else the cache of the snapshot wc came
 * from, else the parent's): a file whose inode, size, mtime and ctime
 * match reuses its file id unread. Snapshots keep inode numbers, so a
 * cache made from one snapshot describes the next one of the same wc. The
 * cache's entries are "seen" at the snapshot's creation time (otime), so a
 * file changed within the racy window before a snapshot is read again. A
 * changed file whose version in that earlier snapshot the cache vouches for
 * is read only where its blocks differ from it (dm_filedata_store_delta:
 * FIEMAP shows which blocks the two snapshots share), so indexing costs
 * what changed, not the size of the files that changed.
 * `commit` is both steps, with an engine-made snapshot name.
 *
 * Create and reset look the tree up in ROOT/<dot>/.trees: a tree some
 * snapshot holds becomes a writable snapshot of it (create: in place of
 * wc; reset: at wc.new, then exchanged with wc by renameat2 and the old
 * one deleted). A tree without a snapshot is materialised file by file
 * into the working copy.
 *
 * Receive (a commit from elsewhere, data the store staged for the dot):
 * the tree is materialised into wc.new, a writable snapshot of what wc was
 * made from, which then becomes the commit's read-only snapshot and is
 * exchanged with wc; the store then records the received chunks as bytes
 * of that snapshot and deletes the dot's staging packs (store.h), so what
 * arrived is on disk once. Opening the engine tells the store its root
 * (external files are recorded relative to it, so the data directory can
 * move) and turns staging on.
 *
 * A branch with a size limit (`limit`) has it on every subvolume that
 * becomes its wc, and a branch without one has none: create, reset and
 * receive apply the record to a wc made from a snapshot (whose qgroup
 * starts with the snapshot's limit) before it is the working copy.
 *
 * Dirty bytes are what changed since the snapshot wc was last equal to
 * (its base), from extent maps (snapdirty.c); a wc without a base (written
 * file by file) is compared with its head through its stat cache.
 *
 * Invariants: names are checked before they go into paths (wc.c), commit
 * ids too (a valid name part), so no path leaves ROOT. A snapshot is never
 * written to. The index names bytes of a snapshot only after the snapshot
 * exists (btrfs commits it to disk when it is taken), and the stat cache
 * and the .trees link of a snapshot are written only after the store was
 * flushed. Before a snapshot is deleted (drop_snapshot, delete_dot), the
 * store copies what other history still needs of it into packs and forgets
 * the rest (dm_store_external_release), so no object ever points into a
 * deleted snapshot. Every lookup through base or .trees checks that the
 * snapshot exists: they are hints, and a stale one costs only speed.
 * struct dm_engine is read-only after open.
 */
#include <btrfsutil.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/internal.h"
#include "engine/qgroup.h"
#include "store/statcache.h"
#include "store/store.h"
#include "store/tree.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/id.h"
#include "util/log.h"
#include "util/names.h"

#include "util/banned.h"

#define SNAPS      ".snapshots"
#define TREES      ".trees"
#define SNAPS_MODE 0700 /* history: dmd's alone */

struct dm_engine {
	struct dm_engine_base base;
	struct dm_store *store;
};

/* ---- errors and subvolumes ---- */

/* A libbtrfsutil failure: the errno it left, or its own description. */
__attribute__((format(printf, 3, 4))) static int
bt_err(struct dm_err *err, enum btrfs_util_error be, const char *fmt, ...)
{
	char msg[DM_ERR_MSG_MAX];
	int e = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (e == EPERM || e == EACCES)
		return dm_err_set(err, DM_EPERM, "%s: %s (the btrfs engine needs root)", msg,
				  strerror(e));
	if (e)
		return dm_err_errno(err, e, "%s", msg);
	return dm_err_set(err, DM_EIO, "%s: %s", msg, btrfs_util_strerror(be));
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static int subvol_create(const char *path, struct dm_err *err)
{
	enum btrfs_util_error be;

	errno = 0;
	be = btrfs_util_create_subvolume(path, 0, NULL, NULL);
	if (be)
		return bt_err(err, be, "cannot create subvolume '%s'", path);
	if (chmod(path, 0755) < 0)
		return dm_err_errno(err, errno, "cannot set the mode of '%s'", path);
	return 0;
}

static int snap_create(const char *src, const char *dst, bool ro, struct dm_err *err)
{
	enum btrfs_util_error be;

	errno = 0;
	be = btrfs_util_create_snapshot(src, dst, ro ? BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY : 0,
					NULL, NULL);
	if (be)
		return bt_err(err, be, "cannot snapshot '%s' to '%s'", src, dst);
	return 0;
}

/* Deletes the subvolume at path (and any beneath it); nothing there is
 * fine, and so is a plain directory (what a crash can leave). */
static int subvol_delete(const char *path, struct dm_err *err)
{
	enum btrfs_util_error be;
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : dm_err_errno(err, errno, "cannot stat '%s'", path);
	errno = 0;
	be = btrfs_util_is_subvolume(path);
	if (be == BTRFS_UTIL_ERROR_NOT_SUBVOLUME || !S_ISDIR(st.st_mode))
		return dm_remove_tree(path, err);
	errno = 0;
	be = btrfs_util_delete_subvolume(path, BTRFS_UTIL_DELETE_SUBVOLUME_RECURSIVE);
	if (be && errno != ENOENT)
		return bt_err(err, be, "cannot delete subvolume '%s'", path);
	return 0;
}

/* ---- paths and hints ---- */

/* out = ROOT/dot/.snapshots/name[suffix]; name must be a valid name part. */
static int snap_path(struct dm_engine *e, struct dm_buf *out, const char *dot, const char *name,
		     const char *suffix, struct dm_err *err)
{
	int rc = dm_wc_check_dot(dot, err);

	if (rc)
		return rc;
	if (!name || !dm_name_part_valid(name, strlen(name)))
		return dm_err_set(err, DM_EINVAL,
				  "commit id '%s' cannot name a snapshot ([A-Za-z0-9_-], 1 to 64)",
				  name ? name : "");
	dm_buf_reset(out);
	if (dm_buf_addf(out, "%s/%s/" SNAPS "/%s%s", e->base.root, dot, name, suffix ? suffix : ""))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
}

/* Points the symlink link at target, atomically (a hint: not synced). */
static int set_link(const char *link, const char *target, struct dm_err *err)
{
	struct dm_buf tmp = DM_BUF_INIT;
	int rc = 0;

	if (dm_buf_addf(&tmp, "%s.tmp", link))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	(void)unlink(dm_wc_str(&tmp));
	if (symlink(target, dm_wc_str(&tmp)) < 0 || rename(dm_wc_str(&tmp), link) < 0) {
		rc = dm_err_errno(err, errno, "cannot point '%s' at '%s'", link, target);
		(void)unlink(dm_wc_str(&tmp));
	}
	dm_buf_release(&tmp);
	return rc;
}

/* The snapshot name a hint link holds, when that snapshot exists; "" when
 * the link or its snapshot is missing or the name is not valid. */
static void read_hint(struct dm_engine *e, const char *dot, const char *link,
		      char out[DM_NAME_PART_MAX + 1])
{
	struct dm_buf snap = DM_BUF_INIT;
	ssize_t n = readlink(link, out, DM_NAME_PART_MAX + 1);

	if (n <= 0 || n > DM_NAME_PART_MAX || !dm_name_part_valid(out, (size_t)n)) {
		out[0] = '\0';
		return;
	}
	out[n] = '\0';
	if (snap_path(e, &snap, dot, out, NULL, NULL) || !exists(dm_wc_str(&snap)))
		out[0] = '\0';
	dm_buf_release(&snap);
}

/* out = ROOT/dot/.trees/<tree hex> */
static int tree_link(struct dm_engine *e, struct dm_buf *out, const char *dot, const dm_oid *tree,
		     struct dm_err *err)
{
	char hex[DM_OID_HEXSZ + 1];
	int rc = dm_wc_make_path(out, e->base.root, dot, NULL, TREES "/", err);

	dm_oid_hex(hex, tree);
	if (!rc && dm_buf_adds(out, hex))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	return rc;
}

/* The snapshot of dot that holds tree, or "". */
static void snapshot_of_tree(struct dm_engine *e, const char *dot, const dm_oid *tree,
			     char out[DM_NAME_PART_MAX + 1])
{
	struct dm_buf link = DM_BUF_INIT;

	out[0] = '\0';
	if (!tree_link(e, &link, dot, tree, NULL))
		read_hint(e, dot, dm_wc_str(&link), out);
	dm_buf_release(&link);
}

/* Records that snapshot commit_id of dot holds tree, for snapshot_of_tree
 * (after an index, and after a receive kept as a snapshot). Only a hint: a
 * failure is warned about. */
static void record_snapshot_of_tree(struct dm_engine *e, const char *dot, const dm_oid *tree,
				    const char *commit_id)
{
	struct dm_buf link = DM_BUF_INIT, dir = DM_BUF_INIT;
	struct dm_err err;

	if (!tree_link(e, &link, dot, tree, &err) &&
	    (dm_wc_make_path(&dir, e->base.root, dot, NULL, TREES, &err) ||
	     dm_mkdir_p(dm_wc_str(&dir), SNAPS_MODE, &err) ||
	     set_link(dm_wc_str(&link), commit_id, &err)))
		dm_warn("cannot record which snapshot holds the tree of '%s': %s", commit_id,
			err.msg);
	dm_buf_release(&link);
	dm_buf_release(&dir);
}

/* Loads the cache that best describes wc: the branch's own (materialised),
 * else its base snapshot's; an empty one when neither is there. */
static int load_wc_cache(struct dm_engine *e, const struct dm_wc_paths *p, const char *dot,
			 struct dm_statcache **out, struct dm_err *err)
{
	char base[DM_NAME_PART_MAX + 1];
	struct dm_buf path = DM_BUF_INIT;
	int rc;

	if (exists(dm_wc_str(&p->cache)))
		return dm_statcache_load(out, dm_wc_str(&p->cache), err);
	read_hint(e, dot, dm_wc_str(&p->base), base);
	if (!base[0]) {
		*out = dm_statcache_new();
		return 0;
	}
	rc = snap_path(e, &path, dot, base, ".statcache", err);
	if (!rc)
		rc = dm_statcache_load(out, dm_wc_str(&path), err);
	dm_buf_release(&path);
	return rc;
}

/* ---- open / free ---- */

static void bt_free(struct dm_engine *e)
{
	if (!e)
		return;
	free(e->base.root);
	free(e);
}

static int bt_open(struct dm_engine **out, const char *root, struct dm_store *store,
		   struct dm_err *err)
{
	struct dm_engine *e = NULL;
	struct statfs sf;
	char *abs = NULL;
	int rc;

	*out = NULL;
	rc = dm_mkdir_p(root, DM_WC_DIR_MODE, err);
	if (rc)
		return rc;
	abs = realpath(root, NULL);
	if (!abs)
		return dm_err_errno(err, errno, "cannot resolve '%s'", root);
	if (statfs(abs, &sf) < 0) {
		rc = dm_err_errno(err, errno, "cannot stat the file system of '%s'", abs);
		free(abs);
		return rc;
	}
	if (sf.f_type != BTRFS_SUPER_MAGIC) {
		rc = dm_err_set(err, DM_EUNSUPPORTED,
				"'%s' is not on a btrfs file system: the btrfs engine needs one "
				"(use a btrfs pool, or the dir engine)",
				abs);
		free(abs);
		return rc;
	}
	/* the store records snapshot files relative to the root, and keeps
	 * what arrives for a dot apart until it has a snapshot to live in */
	rc = dm_store_set_external_root(store, abs, err);
	if (rc) {
		free(abs);
		return rc;
	}
	dm_store_set_staging(store, true);
	e = dm_xcalloc(1, sizeof(*e));
	e->base.ops = &dm_engine_btrfs;
	e->base.root = abs;
	e->store = store;
	*out = e;
	return 0;
}

/* ---- materialising (data that has no snapshot here) ---- */

/* Writes tree into dir file by file, starting from cache (consumed), and
 * saves the result as the stat cache at cache_path. */
static int materialize_at(struct dm_engine *e, const char *dir, const char *cache_path,
			  const dm_oid *tree, struct dm_statcache *cache,
			  const struct dm_engine_progress *prog, struct dm_err *err)
{
	struct dm_materialize_opts o;
	struct dm_materialize_stats stats;
	struct dm_err serr;
	int64_t t0 = dm_now_monotonic_ns();
	int rc;

	memset(&o, 0, sizeof(o));
	o.cache = cache;
	o.restore_owner = geteuid() == 0;
	o.strip_setid = prog && prog->strip_setid;
	rc = dm_tree_materialize(e->store, tree, dir, &o, &stats, err);
	if (rc)
		goto done;
	if (dm_statcache_save(cache, cache_path, &serr))
		dm_warn("cannot save the stat cache of '%s' (the next commit reads every file): %s",
			dir, serr.msg);
	dm_debug("materialised into '%s': %llu files written (%llu bytes), %llu kept in %lld ms",
		 dir, (unsigned long long)stats.files_written,
		 (unsigned long long)stats.bytes_written, (unsigned long long)stats.files_kept,
		 (long long)((dm_now_monotonic_ns() - t0) / 1000000));
	dm_wc_report(prog, stats.bytes_written, stats.bytes_written);
done:
	dm_statcache_free(cache);
	return rc;
}

/* The same into wc, saved as the branch's stat cache. */
static int materialize(struct dm_engine *e, const struct dm_wc_paths *p, const dm_oid *tree,
		       struct dm_statcache *cache, const struct dm_engine_progress *prog,
		       struct dm_err *err)
{
	(void)unlink(dm_wc_str(&p->base)); /* wc is no longer a snapshot's copy */
	return materialize_at(e, dm_wc_str(&p->wc), dm_wc_str(&p->cache), tree, cache, prog, err);
}

/* ---- create ---- */

static int bt_create(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *tree,
		     const struct dm_engine_progress *prog, struct dm_err *err)
{
	char snap[DM_NAME_PART_MAX + 1] = "";
	struct dm_wc_paths p;
	struct dm_buf src = DM_BUF_INIT;
	struct dm_err cerr;
	bool made = false;
	int rc;

	rc = dm_wc_paths_init(&p, e->base.root, dot, branch, err);
	if (rc)
		goto done;
	if (exists(dm_wc_str(&p.wc))) {
		rc = dm_err_set(err, DM_EEXISTS,
				"branch '%s' of dot '%s' already has a working copy", branch, dot);
		goto done;
	}
	rc = dm_wc_check_cancel(prog, "create", err);
	if (!rc)
		rc = dm_mkdir_p(dm_wc_str(&p.dir), DM_WC_DIR_MODE, err);
	if (!rc)
		rc = subvol_delete(dm_wc_str(&p.wcnew), err);
	if (rc)
		goto done;
	dm_wc_report(prog, 0, 0);
	(void)unlink(dm_wc_str(&p.base));
	(void)unlink(dm_wc_str(&p.cache));
	if (tree)
		snapshot_of_tree(e, dot, tree, snap);
	if (snap[0]) {
		rc = snap_path(e, &src, dot, snap, NULL, err);
		if (!rc)
			rc = snap_create(dm_wc_str(&src), dm_wc_str(&p.wc), false, err);
		if (rc)
			goto done;
		made = true;
		rc = dm_qgroup_reapply(dm_wc_str(&p.dir), dm_wc_str(&p.wc), err);
		if (!rc)
			rc = set_link(dm_wc_str(&p.base), snap, err);
		goto done;
	}
	rc = subvol_create(dm_wc_str(&p.wc), err);
	if (rc)
		goto done;
	made = true;
	if (tree)
		rc = materialize(e, &p, tree, dm_statcache_new(), prog, err);
done:
	if (rc && made) {
		if (subvol_delete(dm_wc_str(&p.wc), &cerr) ||
		    dm_remove_tree(dm_wc_str(&p.dir), &cerr))
			dm_warn("cannot clean up after a failed create: %s", cerr.msg);
	}
	dm_buf_release(&src);
	dm_wc_paths_release(&p);
	return rc;
}

/* ---- snapshot and index ---- */

static int bt_snapshot(struct dm_engine *e, const char *dot, const char *branch,
		       const char *commit_id, struct dm_err *err)
{
	char base[DM_NAME_PART_MAX + 1];
	struct dm_wc_paths p;
	struct dm_buf snap = DM_BUF_INIT, dir = DM_BUF_INIT, basecache = DM_BUF_INIT,
		      from = DM_BUF_INIT, baselink = DM_BUF_INIT;
	int rc;

	rc = dm_wc_paths_init(&p, e->base.root, dot, branch, err);
	if (!rc)
		rc = dm_wc_need(&p, dot, branch, err);
	if (!rc)
		rc = snap_path(e, &snap, dot, commit_id, NULL, err);
	if (!rc)
		rc = snap_path(e, &basecache, dot, commit_id, ".basecache", err);
	if (!rc)
		rc = dm_wc_make_path(&dir, e->base.root, dot, NULL, SNAPS, err);
	if (rc)
		goto done;
	if (exists(dm_wc_str(&snap))) {
		rc = dm_err_set(err, DM_EEXISTS, "dot '%s' has a snapshot '%s' already", dot,
				commit_id);
		goto done;
	}
	rc = dm_mkdir_p(dm_wc_str(&dir), SNAPS_MODE, err);
	if (!rc)
		rc = snap_create(dm_wc_str(&p.wc), dm_wc_str(&snap), true, err);
	if (rc)
		goto done;
	/* The cache the index starts from: what described wc until now. */
	(void)unlink(dm_wc_str(&basecache));
	if (exists(dm_wc_str(&p.cache))) {
		if (rename(dm_wc_str(&p.cache), dm_wc_str(&basecache)) < 0)
			dm_warn("cannot keep the stat cache of '%s': %s", dm_wc_str(&p.wc),
				strerror(errno));
	} else {
		read_hint(e, dot, dm_wc_str(&p.base), base);
		if (base[0] && !snap_path(e, &from, dot, base, ".statcache", NULL) &&
		    !snap_path(e, &baselink, dot, commit_id, ".base", NULL)) {
			if (link(dm_wc_str(&from), dm_wc_str(&basecache)) == 0)
				(void)set_link(dm_wc_str(&baselink), base, NULL);
			else if (errno != ENOENT)
				dm_warn("cannot link the stat cache of snapshot '%s': %s", base,
					strerror(errno));
		}
	}
	rc = set_link(dm_wc_str(&p.base), commit_id, err);
done:
	dm_buf_release(&snap);
	dm_buf_release(&dir);
	dm_buf_release(&basecache);
	dm_buf_release(&from);
	dm_buf_release(&baselink);
	dm_wc_paths_release(&p);
	return rc;
}

static int bt_index(struct dm_engine *e, const char *dot, const char *commit_id,
		    const char *parent_id, const dm_oid *parent_tree, dm_oid *tree_out,
		    const struct dm_engine_progress *prog, struct dm_err *err)
{
	struct btrfs_util_subvolume_info info;
	char base[DM_NAME_PART_MAX + 1] = "";
	struct dm_buf snap = DM_BUF_INIT, basecache = DM_BUF_INIT, cachepath = DM_BUF_INIT,
		      from = DM_BUF_INIT, baselink = DM_BUF_INIT, basedir = DM_BUF_INIT;
	struct dm_build_opts o;
	struct dm_build_stats stats;
	struct dm_statcache *cache = NULL;
	enum btrfs_util_error be;
	struct dm_err serr;
	int64_t t0 = dm_now_monotonic_ns();
	int rc;

	(void)parent_tree; /* the parent's stat cache carries its file ids */
	rc = snap_path(e, &snap, dot, commit_id, NULL, err);
	if (!rc)
		rc = snap_path(e, &basecache, dot, commit_id, ".basecache", err);
	if (!rc)
		rc = snap_path(e, &cachepath, dot, commit_id, ".statcache", err);
	if (!rc)
		rc = snap_path(e, &baselink, dot, commit_id, ".base", err);
	if (!rc)
		rc = dm_wc_check_cancel(prog, "index", err);
	if (rc)
		goto done;
	if (!exists(dm_wc_str(&snap))) {
		rc = dm_err_set(err, DM_ENOTFOUND, "dot '%s' has no snapshot '%s'", dot, commit_id);
		goto done;
	}
	errno = 0;
	be = btrfs_util_subvolume_info(dm_wc_str(&snap), 0, &info);
	if (be) {
		rc = bt_err(err, be, "cannot read snapshot '%s'", dm_wc_str(&snap));
		goto done;
	}
	dm_wc_report(prog, 0, 0);
	/* the cache to start from, and the snapshot it describes (if any) */
	if (exists(dm_wc_str(&basecache))) {
		rc = dm_statcache_load(&cache, dm_wc_str(&basecache), err);
		read_hint(e, dot, dm_wc_str(&baselink), base);
	} else if (parent_id && parent_id[0] &&
		   !snap_path(e, &from, dot, parent_id, ".statcache", NULL)) {
		rc = dm_statcache_load(&cache, dm_wc_str(&from), err);
		if (!rc && exists(dm_wc_str(&from)))
			snprintf(base, sizeof(base), "%s", parent_id);
	} else {
		cache = dm_statcache_new();
	}
	if (rc)
		goto done;
	memset(&o, 0, sizeof(o));
	o.cache = cache;
	o.external = true;
	o.seen_ns = (int64_t)info.otime.tv_sec * 1000000000 + info.otime.tv_nsec;
	if (base[0] && !snap_path(e, &basedir, dot, base, NULL, NULL) &&
	    exists(dm_wc_str(&basedir)))
		o.base_dir = dm_wc_str(&basedir);
	rc = dm_tree_build(e->store, tree_out, dm_wc_str(&snap), &o, &stats, err);
	if (!rc)
		rc = dm_store_flush(e->store, err);
	if (rc) {
		dm_err_prefix(err, "cannot index snapshot '%s' of dot '%s'", commit_id, dot);
		goto done;
	}
	if (dm_statcache_save(cache, dm_wc_str(&cachepath), &serr))
		dm_warn("cannot save the stat cache of snapshot '%s' (the next index reads every "
			"file): %s",
			commit_id, serr.msg);
	else
		(void)unlink(dm_wc_str(&basecache));
	(void)unlink(dm_wc_str(&baselink));
	record_snapshot_of_tree(e, dot, tree_out, commit_id);
	dm_debug("index of snapshot '%s' of dot '%s': %llu files, %llu hashed (%llu bytes), "
		 "%llu new chunks, %llu bytes in all, in %lld ms",
		 commit_id, dot, (unsigned long long)stats.files,
		 (unsigned long long)stats.files_hashed, (unsigned long long)stats.bytes_hashed,
		 (unsigned long long)stats.chunks_new, (unsigned long long)stats.bytes_total,
		 (long long)((dm_now_monotonic_ns() - t0) / 1000000));
	dm_wc_report(prog, stats.bytes_total, stats.bytes_total);
done:
	dm_statcache_free(cache);
	dm_buf_release(&snap);
	dm_buf_release(&basecache);
	dm_buf_release(&cachepath);
	dm_buf_release(&from);
	dm_buf_release(&baselink);
	dm_buf_release(&basedir);
	return rc;
}

static int bt_drop_snapshot(struct dm_engine *e, const char *dot, const char *commit_id,
			    struct dm_err *err);

static int bt_commit(struct dm_engine *e, const char *dot, const char *branch,
		     const struct dm_engine_freezer *fz, dm_oid *tree_out,
		     struct dm_engine_capture *cap, const struct dm_engine_progress *prog,
		     struct dm_err *err)
{
	char name[DM_UUID_LEN + 1], parent[DM_NAME_PART_MAX + 1];
	struct dm_wc_paths p;
	struct dm_err derr;
	int rc;

	rc = dm_wc_paths_init(&p, e->base.root, dot, branch, err);
	if (!rc)
		rc = dm_wc_need(&p, dot, branch, err);
	if (!rc)
		rc = dm_wc_check_cancel(prog, "commit", err);
	if (!rc)
		rc = dm_id_uuid7(name, dm_now_realtime_ns() / 1000000, err);
	if (rc)
		goto done;
	read_hint(e, dot, dm_wc_str(&p.base), parent);
	rc = bt_snapshot(e, dot, branch, name, err);
	if (rc)
		goto done;
	cap->kind = DM_CAPTURE_SNAPSHOT; /* one instant, whoever writes */
	rc = bt_index(e, dot, name, parent, NULL, tree_out, prog, err);
	if (rc && bt_drop_snapshot(e, dot, name, &derr))
		dm_warn("cannot remove snapshot '%s' of a failed commit: %s", name, derr.msg);
	if (rc)
		dm_err_prefix(err, "cannot commit branch '%s' of dot '%s'", branch, dot);
done:
	dm_wc_paths_release(&p);
	return rc;
}

/* ---- reset ---- */

/* Makes wc.new the working copy, with the branch's size limit: exchanged
 * with wc, the old one deleted. */
static int swap_in(const struct dm_wc_paths *p, struct dm_err *err)
{
	struct dm_err derr;

	if (dm_qgroup_reapply(dm_wc_str(&p->dir), dm_wc_str(&p->wcnew), err)) {
		if (subvol_delete(dm_wc_str(&p->wcnew), &derr))
			dm_warn("%s", derr.msg);
		return dm_err_prefix(err, "cannot keep the size limit of '%s'", dm_wc_str(&p->wc));
	}
	if (renameat2(AT_FDCWD, dm_wc_str(&p->wcnew), AT_FDCWD, dm_wc_str(&p->wc),
		      RENAME_EXCHANGE) < 0) {
		int e = errno;

		if (subvol_delete(dm_wc_str(&p->wcnew), &derr))
			dm_warn("%s", derr.msg);
		return dm_err_errno(err, e, "cannot swap in a new working copy at '%s'",
				    dm_wc_str(&p->wc));
	}
	if (subvol_delete(dm_wc_str(&p->wcnew), &derr))
		dm_warn("cannot delete the old working copy (deleted at the next reset): %s",
			derr.msg);
	return 0;
}

static int bt_reset(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *tree,
		    const struct dm_engine_progress *prog, struct dm_err *err)
{
	char snap[DM_NAME_PART_MAX + 1] = "";
	struct dm_wc_paths p;
	struct dm_buf src = DM_BUF_INIT;
	struct dm_statcache *cache = NULL;
	int rc;

	rc = dm_wc_paths_init(&p, e->base.root, dot, branch, err);
	if (!rc)
		rc = dm_wc_need(&p, dot, branch, err);
	if (!rc)
		rc = dm_wc_check_cancel(prog, "reset", err);
	if (!rc)
		rc = subvol_delete(dm_wc_str(&p.wcnew), err); /* a crash's leftover */
	if (rc)
		goto done;
	dm_wc_report(prog, 0, 0);
	if (tree)
		snapshot_of_tree(e, dot, tree, snap);
	if (snap[0]) {
		rc = snap_path(e, &src, dot, snap, NULL, err);
		if (!rc)
			rc = snap_create(dm_wc_str(&src), dm_wc_str(&p.wcnew), false, err);
		if (!rc)
			rc = swap_in(&p, err);
		if (rc)
			goto done;
		(void)unlink(dm_wc_str(&p.cache));
		rc = set_link(dm_wc_str(&p.base), snap, err);
		goto done;
	}
	if (!tree) { /* the empty tree: an empty subvolume */
		rc = subvol_create(dm_wc_str(&p.wcnew), err);
		if (!rc)
			rc = swap_in(&p, err);
		(void)unlink(dm_wc_str(&p.base));
		(void)unlink(dm_wc_str(&p.cache));
		goto done;
	}
	rc = load_wc_cache(e, &p, dot, &cache, err);
	if (!rc)
		rc = materialize(e, &p, tree, cache, prog, err);
	cache = NULL;
done:
	if (rc)
		dm_err_prefix(err, "cannot reset branch '%s' of dot '%s'", branch, dot);
	dm_statcache_free(cache);
	dm_buf_release(&src);
	dm_wc_paths_release(&p);
	return rc;
}

/* ---- receive ---- */

/*
 * A received commit whose tree has no snapshot here is written into
 * wc.new, a writable snapshot of what wc was made from (wc is clean: the
 * dot checked), so that only what differs is written (as reflinked copies
 * of the changed files: materialize.c); wc.new then becomes the commit's
 * read-only snapshot, is swapped in for wc, and the store points into the
 * snapshot for the chunks that arrived (so they are on disk once) before
 * the dot's staging packs go. A crash before the swap leaves wc as it was
 * (wc.new is a leftover the next reset or create deletes); one after the
 * snapshot leaves it for the next try to start from.
 */
static int receive_into_snapshot(struct dm_engine *e, const struct dm_wc_paths *p, const char *dot,
				 bool exists_, const char *from, const char *commit_id,
				 const dm_oid *tree, const struct dm_engine_progress *prog,
				 struct dm_err *err)
{
	char base[DM_NAME_PART_MAX + 1] = "";
	struct dm_buf snap = DM_BUF_INIT, snapcache = DM_BUF_INIT, dir = DM_BUF_INIT,
		      src = DM_BUF_INIT;
	struct dm_store_unstage_stats us;
	struct dm_statcache *cache = NULL;
	struct dm_err serr;
	bool have_snap;
	int64_t t0;
	int rc;

	rc = snap_path(e, &snap, dot, commit_id, NULL, err);
	if (!rc)
		rc = snap_path(e, &snapcache, dot, commit_id, ".statcache", err);
	if (!rc)
		rc = dm_wc_make_path(&dir, e->base.root, dot, NULL, SNAPS, err);
	if (!rc)
		rc = subvol_delete(dm_wc_str(&p->wcnew), err); /* a crash's leftover */
	if (!rc)
		rc = dm_mkdir_p(dm_wc_str(&p->dir), DM_WC_DIR_MODE, err);
	if (!rc)
		rc = dm_mkdir_p(dm_wc_str(&dir), SNAPS_MODE, err);
	if (rc)
		goto done;
	/* where wc.new starts from, and the cache that describes it */
	have_snap = exists(dm_wc_str(&snap)); /* an earlier try got that far */
	if (have_snap) {
		dm_buf_adds(&src, dm_wc_str(&snap));
		rc = dm_statcache_load(&cache, dm_wc_str(&snapcache), err);
	} else if (exists_) {
		read_hint(e, dot, dm_wc_str(&p->base), base);
		if (base[0])
			rc = snap_path(e, &src, dot, base, NULL, err);
		else
			dm_buf_adds(&src, dm_wc_str(&p->wc));
		if (!rc)
			rc = load_wc_cache(e, p, dot, &cache, err);
	} else if (from && from[0] && dm_name_part_valid(from, strlen(from)) &&
		   !snap_path(e, &src, dot, from, NULL, NULL) && exists(dm_wc_str(&src))) {
		/* a new branch: from the commit it stands on, when kept here */
		rc = snap_path(e, &snapcache, dot, from, ".statcache", err);
		if (!rc)
			rc = dm_statcache_load(&cache, dm_wc_str(&snapcache), err);
		if (!rc)
			rc = snap_path(e, &snapcache, dot, commit_id, ".statcache", err);
	} else {
		dm_buf_reset(&src);
		cache = dm_statcache_new();
	}
	if (rc)
		goto done;
	rc = src.len ? snap_create(dm_wc_str(&src), dm_wc_str(&p->wcnew), false, err)
		     : subvol_create(dm_wc_str(&p->wcnew), err);
	if (!rc)
		rc = materialize_at(e, dm_wc_str(&p->wcnew), dm_wc_str(&snapcache), tree, cache,
				    prog, err);
	cache = NULL;
	if (!rc && !have_snap)
		rc = snap_create(dm_wc_str(&p->wcnew), dm_wc_str(&snap), true, err);
	if (rc)
		goto done;
	/* wc.new becomes wc; the snapshot is what it was last equal to */
	if (exists_) {
		rc = swap_in(p, err);
	} else if ((rc = dm_qgroup_reapply(dm_wc_str(&p->dir), dm_wc_str(&p->wcnew), err))) {
		dm_err_prefix(err, "cannot set the size limit of '%s'", dm_wc_str(&p->wcnew));
	} else if (rename(dm_wc_str(&p->wcnew), dm_wc_str(&p->wc)) < 0) {
		rc = dm_err_errno(err, errno, "cannot move a new working copy to '%s'",
				  dm_wc_str(&p->wc));
	}
	if (rc)
		goto done;
	(void)unlink(dm_wc_str(&p->cache));
	if (set_link(dm_wc_str(&p->base), commit_id, &serr))
		dm_warn("%s", serr.msg);
	t0 = dm_now_monotonic_ns();
	rc = dm_store_tree_unstage(e->store, dot, tree, dm_wc_str(&snap), &us, err);
	if (rc) {
		dm_err_prefix(err, "cannot point the store into snapshot '%s' of dot '%s'",
			      commit_id, dot);
		goto done;
	}
	record_snapshot_of_tree(e, dot, tree, commit_id);
	dm_debug("received commit '%s' of dot '%s' kept as a snapshot: %llu files, %llu chunks "
		 "(%llu bytes) now read from it, in %lld ms",
		 commit_id, dot, (unsigned long long)us.files, (unsigned long long)us.chunks,
		 (unsigned long long)us.bytes, (long long)((dm_now_monotonic_ns() - t0) / 1000000));
done:
	dm_statcache_free(cache);
	if (rc && subvol_delete(dm_wc_str(&p->wcnew), &serr))
		dm_warn("%s", serr.msg);
	dm_buf_release(&snap);
	dm_buf_release(&snapcache);
	dm_buf_release(&dir);
	dm_buf_release(&src);
	return rc;
}

static int bt_receive(struct dm_engine *e, const char *dot, const char *branch, bool exists_,
		      const char *from, const char *commit_id, const dm_oid *tree,
		      const struct dm_engine_progress *prog, struct dm_err *err)
{
	char snap[DM_NAME_PART_MAX + 1] = "";
	struct dm_store_staging_stats st;
	struct dm_wc_paths p;
	int rc;

	rc = dm_wc_paths_init(&p, e->base.root, dot, branch, err);
	if (!rc)
		rc = dm_wc_check_cancel(prog, "receive", err);
	if (rc)
		goto done;
	if (tree)
		snapshot_of_tree(e, dot, tree, snap);
	if (!tree || snap[0] || !dm_name_part_valid(commit_id, strlen(commit_id))) {
		/* a snapshot holds it already, or the id cannot name one: its
		 * data stays where it is (the packs, for what arrived) */
		rc = exists_ ? bt_reset(e, dot, branch, tree, prog, err)
			     : bt_create(e, dot, branch, tree, prog, err);
	} else {
		if (exists_)
			rc = dm_wc_need(&p, dot, branch, err);
		else if (exists(dm_wc_str(&p.wc)))
			rc = dm_err_set(err, DM_EEXISTS,
					"branch '%s' of dot '%s' already has a working copy",
					branch, dot);
		if (!rc)
			rc = receive_into_snapshot(e, &p, dot, exists_, from, commit_id, tree, prog,
						   err);
	}
	if (!rc)
		rc = dm_store_staging_end(e->store, dot, &st, err);
	if (rc) {
		dm_err_prefix(err, "cannot receive commit '%s' into branch '%s' of dot '%s'",
			      commit_id, branch, dot);
		goto done;
	}
	if (st.packs)
		dm_debug("dot %s: %llu staging packs (%llu bytes) deleted, %llu objects (%llu "
			 "bytes) moved into packs",
			 dot, (unsigned long long)st.packs, (unsigned long long)st.freed_bytes,
			 (unsigned long long)st.copied, (unsigned long long)st.copied_bytes);
done:
	dm_wc_paths_release(&p);
	return rc;
}

/* ---- size limit ---- */

static int bt_limit(struct dm_engine *e, const char *dot, const char *branch, uint64_t bytes,
		    struct dm_err *err)
{
	struct dm_wc_paths p;
	int rc;

	rc = dm_wc_paths_init(&p, e->base.root, dot, branch, err);
	if (!rc)
		rc = dm_wc_need(&p, dot, branch, err);
	if (!rc)
		rc = dm_qgroup_set(dm_wc_str(&p.dir), dm_wc_str(&p.wc), bytes, err);
	if (rc)
		dm_err_prefix(err, "cannot limit branch '%s' of dot '%s' to %llu bytes", branch,
			      dot, (unsigned long long)bytes);
	dm_wc_paths_release(&p);
	return rc;
}

/* ---- dirty, diff ---- */

static int bt_dirty(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *head,
		    uint64_t *dirty_out, uint64_t *size_out, struct dm_err *err)
{
	char base[DM_NAME_PART_MAX + 1];
	struct dm_wc_paths p;
	struct dm_buf snap = DM_BUF_INIT;
	struct dm_statcache *cache = NULL;
	int rc;

	rc = dm_wc_paths_init(&p, e->base.root, dot, branch, err);
	if (!rc)
		rc = dm_wc_need(&p, dot, branch, err);
	if (rc)
		goto done;
	/* what changed since the snapshot wc was made from or last became */
	read_hint(e, dot, dm_wc_str(&p.base), base);
	if (base[0] && !snap_path(e, &snap, dot, base, NULL, NULL)) {
		rc = dm_wc_dirty_since(dm_wc_str(&p.wc), dm_wc_str(&snap), dirty_out, size_out,
				       err);
		goto done;
	}
	/* a wc written file by file: against head, through its stat cache */
	rc = load_wc_cache(e, &p, dot, &cache, err);
	if (!rc)
		rc = dm_wc_dirty(e->store, dm_wc_str(&p.wc), cache, head, dirty_out, size_out, err);
done:
	dm_statcache_free(cache);
	dm_buf_release(&snap);
	dm_wc_paths_release(&p);
	return rc;
}

static int bt_diff(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *from,
		   const dm_oid *to, struct dm_diff *out, struct dm_err *err)
{
	struct dm_wc_paths p;
	struct dm_statcache *cache = NULL;
	int rc;

	out->n = 0;
	out->changes = NULL;
	if (to) {
		int crc = dm_wc_check_dot(dot, err);

		return crc ? crc : dm_wc_diff(e->store, NULL, NULL, from, to, out, err);
	}
	rc = dm_wc_paths_init(&p, e->base.root, dot, branch, err);
	if (!rc)
		rc = dm_wc_need(&p, dot, branch, err);
	if (!rc)
		rc = load_wc_cache(e, &p, dot, &cache, err);
	if (!rc)
		rc = dm_wc_diff(e->store, dm_wc_str(&p.wc), cache, from, NULL, out, err);
	dm_statcache_free(cache);
	dm_wc_paths_release(&p);
	return rc;
}

/* ---- delete ---- */

/* Deletes the subvolumes of one branch directory, then the directory. */
static int delete_branch_dir(struct dm_engine *e, const char *dot, const char *branch,
			     struct dm_err *err)
{
	struct dm_wc_paths p;
	int rc;

	rc = dm_wc_paths_init(&p, e->base.root, dot, branch, err);
	if (!rc)
		rc = subvol_delete(dm_wc_str(&p.wcnew), err);
	if (!rc)
		rc = subvol_delete(dm_wc_str(&p.wc), err);
	if (!rc)
		rc = dm_remove_tree(dm_wc_str(&p.dir), err);
	dm_wc_paths_release(&p);
	return rc;
}

static int bt_delete_branch(struct dm_engine *e, const char *dot, const char *branch,
			    struct dm_err *err)
{
	return delete_branch_dir(e, dot, branch, err);
}

/* Removes links in dir that point at target (all of them when target is
 * NULL). */
static void unlink_links_to(const char *dir, const char *target)
{
	char buf[DM_NAME_PART_MAX + 2];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(d), de->d_name, buf, sizeof(buf) - 1);
		if (n < 0)
			continue;
		buf[n] = '\0';
		if (!target || strcmp(buf, target) == 0)
			(void)unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

static int bt_drop_snapshot(struct dm_engine *e, const char *dot, const char *commit_id,
			    struct dm_err *err)
{
	static const char *const leftovers[] = {".statcache", ".basecache", ".base"};
	struct dm_buf snap = DM_BUF_INIT, prefix = DM_BUF_INIT, trees = DM_BUF_INIT,
		      other = DM_BUF_INIT;
	int rc;

	rc = snap_path(e, &snap, dot, commit_id, NULL, err);
	if (!rc)
		rc = dm_wc_make_path(&trees, e->base.root, dot, NULL, TREES, err);
	if (rc || !exists(dm_wc_str(&snap)))
		goto done;
	if (dm_buf_addf(&prefix, "%s/", dm_wc_str(&snap))) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto done;
	}
	unlink_links_to(dm_wc_str(&trees), commit_id);
	rc = dm_store_external_release(e->store, dm_wc_str(&prefix), NULL, NULL, err);
	if (!rc)
		rc = subvol_delete(dm_wc_str(&snap), err);
	for (size_t i = 0; !rc && i < sizeof(leftovers) / sizeof(leftovers[0]); i++)
		if (!snap_path(e, &other, dot, commit_id, leftovers[i], NULL))
			(void)unlink(dm_wc_str(&other));
done:
	dm_buf_release(&snap);
	dm_buf_release(&prefix);
	dm_buf_release(&trees);
	dm_buf_release(&other);
	return rc;
}

static int bt_sweep_snapshots(struct dm_engine *e, const char *dot,
			      bool (*keep)(const char *commit_id, void *ctx), void *ctx,
			      struct dm_err *err)
{
	struct dm_buf dir = DM_BUF_INIT;
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d = NULL;
	int rc = dm_wc_make_path(&dir, e->base.root, dot, NULL, SNAPS, err);

	if (rc)
		goto done;
	d = opendir(dm_wc_str(&dir));
	if (!d) {
		rc = errno == ENOENT ? 0 : dm_err_errno(err, errno, "cannot read '%s'", dm_wc_str(&dir));
		goto done;
	}
	/* names first: dropping changes the directory while we read it */
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !dm_name_part_valid(de->d_name, strlen(de->d_name)) ||
		    keep(de->d_name, ctx))
			continue;
		names = dm_xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = dm_xstrdup(de->d_name);
	}
	for (size_t i = 0; !rc && i < n; i++) {
		dm_warn("dot %s: removing snapshot %s, which no commit records", dot, names[i]);
		rc = bt_drop_snapshot(e, dot, names[i], err);
	}
done:
	if (d)
		closedir(d);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	dm_buf_release(&dir);
	return rc;
}

/* Deletes every snapshot subvolume in the dot's .snapshots. */
static int delete_snapshots(const char *dir, struct dm_err *err)
{
	struct dm_buf path = DM_BUF_INIT;
	struct dirent *de;
	DIR *d = opendir(dir);
	int rc = 0;

	if (!d)
		return errno == ENOENT ? 0 : dm_err_errno(err, errno, "cannot read '%s'", dir);
	while (!rc && (de = readdir(d))) {
		if (de->d_name[0] == '.' || !dm_name_part_valid(de->d_name, strlen(de->d_name)))
			continue;
		dm_buf_reset(&path);
		if (dm_buf_addf(&path, "%s/%s", dir, de->d_name))
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		else
			rc = subvol_delete(dm_wc_str(&path), err);
	}
	closedir(d);
	dm_buf_release(&path);
	return rc;
}

static int bt_delete_dot(struct dm_engine *e, const char *dot, struct dm_err *err)
{
	struct dm_buf dir = DM_BUF_INIT, snaps = DM_BUF_INIT, prefix = DM_BUF_INIT;
	struct dm_store_release_stats st;
	struct dirent *de;
	DIR *d = NULL;
	int rc;

	rc = dm_wc_make_path(&dir, e->base.root, dot, NULL, NULL, err);
	if (!rc)
		rc = dm_wc_make_path(&snaps, e->base.root, dot, NULL, SNAPS, err);
	if (rc || !exists(dm_wc_str(&dir)))
		goto done;
	if (dm_buf_addf(&prefix, "%s/", dm_wc_str(&snaps))) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto done;
	}
	/* what arrived for it and was never received moves into packs */
	rc = dm_store_staging_end(e->store, dot, NULL, err);
	/* what other dots' history shares with this one moves into packs */
	if (!rc)
		rc = dm_store_external_release(e->store, dm_wc_str(&prefix), dot, &st, err);
	if (rc) {
		dm_err_prefix(err, "cannot delete dot '%s'", dot);
		goto done;
	}
	if (st.copied)
		dm_info("dot %s: %llu chunks (%llu bytes) other dots share were copied into the "
			"store before its snapshots were deleted",
			dot, (unsigned long long)st.copied, (unsigned long long)st.copied_bytes);
	d = opendir(dm_wc_str(&dir));
	if (!d) {
		rc = dm_err_errno(err, errno, "cannot read '%s'", dm_wc_str(&dir));
		goto done;
	}
	while (!rc && (de = readdir(d))) {
		if (de->d_name[0] == '.' || !dm_name_part_valid(de->d_name, strlen(de->d_name)))
			continue;
		rc = delete_branch_dir(e, dot, de->d_name, err);
	}
	closedir(d);
	if (!rc)
		rc = delete_snapshots(dm_wc_str(&snaps), err);
	if (!rc)
		rc = dm_remove_tree(dm_wc_str(&dir), err);
done:
	dm_buf_release(&dir);
	dm_buf_release(&snaps);
	dm_buf_release(&prefix);
	return rc;
}

const struct dm_engine_ops dm_engine_btrfs = {
	.name = "btrfs",
	.sweep_snapshots = bt_sweep_snapshots,
	.open = bt_open,
	.free = bt_free,
	.create = bt_create,
	.commit = bt_commit,
	.reset = bt_reset,
	.dirty = bt_dirty,
	.diff = bt_diff,
	.delete_branch = bt_delete_branch,
	.delete_dot = bt_delete_dot,
	.snapshot = bt_snapshot,
	.index = bt_index,
	.drop_snapshot = bt_drop_snapshot,
	.receive = bt_receive,
	.limit = bt_limit,
};
