/*
 * commitcopy.c - read-only copies of past commits, for `dm mount
 * DOT@COMMIT PATH --read-only` and the Docker volume DOT@COMMIT (dotmesh's
 * MountCommit): the same for every engine, beside the dot's branches.
 *
 * Invariants: a copy is root/<dot>/.commits/<commit id> (a name no branch
 * can have, which the engines' own walks of a dot's directory skip); it is
 * whole or absent: it is materialised under "<id>.new", which goes first,
 * and renamed into place only when complete; once in place it is never
 * written again, and it is made read-only before its path is given out: a
 * read-only bind mount of itself when dmd may mount (root), so that root
 * in a container cannot write to it either, else its write permissions
 * taken away. Only a release removes it, bind mount first.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/internal.h"
#include "store/tree.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/names.h"

#include "util/banned.h"

#define COMMITS       ".commits"
#define COMMIT_ID_MAX 128

static const char *root_of(const struct dm_engine *e)
{
	return ((const struct dm_engine_base *)e)->root;
}

/* root/<dot>/.commits[/<name>] */
static int copy_path(struct dm_buf *out, struct dm_engine *e, const char *dot, const char *name,
		     const char *suffix, struct dm_err *err)
{
	int rc = dm_wc_make_path(out, root_of(e), dot, NULL, COMMITS, err);

	if (rc)
		return rc;
	if (name && dm_buf_addf(out, "/%s%s", name, suffix ? suffix : ""))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
}

/* nftw's callbacks have no context: what to do to each entry's mode */
static __thread bool make_writable;

static int chmod_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	mode_t mode = st->st_mode & 07777;

	(void)ftw;
	if (flag == FTW_SL || S_ISLNK(st->st_mode))
		return 0;
	if (make_writable)
		mode |= S_ISDIR(st->st_mode) ? S_IWUSR | S_IXUSR : S_IWUSR;
	else
		mode &= (mode_t)~0222;
	if (mode != (st->st_mode & 07777) && chmod(path, mode) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

/* Takes the write permissions away from everything under path, or gives
 * its owner back what a removal needs. */
static int set_writable(const char *path, bool writable, struct dm_err *err)
{
	make_writable = writable;
	if (nftw(path, chmod_entry, 16, FTW_PHYS | (writable ? 0 : FTW_DEPTH)) < 0)
		return dm_err_errno(err, errno, "cannot change the permissions under '%s'", path);
	return 0;
}

/* Makes the finished copy at path read-only (see the invariants). */
static int make_read_only(const char *path, struct dm_err *err)
{
	if (geteuid() == 0 && mount(path, path, NULL, MS_BIND, NULL) == 0) {
		if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
			  NULL) == 0)
			return 0;
		dm_warn("cannot make the bind mount of '%s' read-only (%s): taking its write "
			"permissions away instead",
			path, strerror(errno));
		(void)umount2(path, MNT_DETACH);
	}
	return set_writable(path, false, err);
}

/* Removes the copy or leftover at path, whatever state it is in. */
static int remove_copy(const char *path, struct dm_err *err)
{
	struct stat st;
	int rc;

	/* its read-only bind mount (a bind mount of the same file system has
	 * its device: only umount itself tells); EINVAL: none (left) */
	while (geteuid() == 0 && umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
		;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : dm_err_errno(err, errno, "cannot read '%s'", path);
	rc = set_writable(path, true, err);
	return rc ? rc : dm_remove_tree(path, err);
}

int dm_engine_commit_copy(struct dm_engine *e, struct dm_store *store, const char *dot,
			  const char *commit_id, const dm_oid *tree,
			  const struct dm_engine_progress *p, struct dm_buf *out,
			  struct dm_err *err)
{
	struct dm_buf dir = DM_BUF_INIT, fresh = DM_BUF_INIT;
	struct dm_materialize_opts o;
	struct dm_materialize_stats stats;
	struct stat st;
	int rc;

	if (!*commit_id || strlen(commit_id) > COMMIT_ID_MAX ||
	    strspn(commit_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
		    strlen(commit_id))
		return dm_err_set(err, DM_EINVAL, "commit id '%s' cannot name a copy", commit_id);
	rc = copy_path(&dir, e, dot, NULL, NULL, err);
	if (!rc)
		rc = copy_path(out, e, dot, commit_id, NULL, err);
	if (!rc)
		rc = copy_path(&fresh, e, dot, commit_id, ".new", err);
	if (rc)
		goto done;
	if (lstat(dm_wc_str(out), &st) == 0)
		goto done; /* made before: whole, read-only */
	rc = dm_mkdir_p(dm_wc_str(&dir), DM_WC_DIR_MODE, err);
	if (!rc)
		rc = remove_copy(dm_wc_str(&fresh), err); /* a crash's leftover */
	if (!rc && mkdir(dm_wc_str(&fresh), 0755) < 0)
		rc = dm_err_errno(err, errno, "cannot create directory '%s'", dm_wc_str(&fresh));
	if (rc)
		goto done;
	memset(&o, 0, sizeof(o));
	o.restore_owner = geteuid() == 0;
	o.strip_setid = p && p->strip_setid;
	rc = dm_tree_materialize(store, tree, dm_wc_str(&fresh), &o, &stats, err);
	if (!rc && rename(dm_wc_str(&fresh), dm_wc_str(out)) < 0)
		rc = dm_err_errno(err, errno, "cannot rename '%s'", dm_wc_str(&fresh));
	if (!rc)
		rc = make_read_only(dm_wc_str(out), err);
	if (rc) {
		struct dm_err cerr;

		dm_err_prefix(err, "cannot make a read-only copy of commit '%s'", commit_id);
		if (remove_copy(dm_wc_str(&fresh), &cerr) || remove_copy(dm_wc_str(out), &cerr))
			dm_warn("cannot clean up after it: %s", cerr.msg);
		goto done;
	}
	dm_info("dot %s: read-only copy of commit %s made (%llu files, %llu bytes)", dot, commit_id,
		(unsigned long long)stats.files_written, (unsigned long long)stats.bytes_written);
done:
	dm_buf_release(&dir);
	dm_buf_release(&fresh);
	return rc;
}

/* Whether name is a copy to keep: one of keep[], or one being made
 * (".new": the job making it is the dot's one running job, not ours). */
static bool kept(const char *name, const char (*keep)[129], size_t nkeep)
{
	for (size_t i = 0; i < nkeep; i++)
		if (!strcmp(name, keep[i]))
			return true;
	return false;
}

int dm_engine_commit_copy_sweep(struct dm_engine *e, const char *dot, const char (*keep)[129],
				size_t nkeep, struct dm_err *err)
{
	struct dm_buf path = DM_BUF_INIT, each = DM_BUF_INIT;
	struct dirent *de;
	DIR *d = NULL;
	size_t removed = 0;
	int rc = copy_path(&path, e, dot, NULL, NULL, err);

	if (!rc) {
		d = opendir(dm_wc_str(&path));
		if (!d && errno != ENOENT)
			rc = dm_err_errno(err, errno, "cannot read '%s'", dm_wc_str(&path));
	}
	while (!rc && d && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    kept(de->d_name, keep, nkeep))
			continue;
		dm_buf_reset(&each);
		if (dm_buf_addf(&each, "%s/%s", dm_wc_str(&path), de->d_name))
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		else
			rc = remove_copy(dm_wc_str(&each), err);
		removed += !rc;
	}
	if (d)
		closedir(d);
	if (!rc && d && !nkeep)
		rc = remove_copy(dm_wc_str(&path), err);
	if (removed)
		dm_info("dot %s: %zu read-only cop%s of commits released", dot, removed,
			removed == 1 ? "y" : "ies");
	dm_buf_release(&each);
	dm_buf_release(&path);
	return rc;
}
