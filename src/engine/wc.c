/*
 * wc.c - what the engines share about working copies: checking the names
 * that go into paths, the ROOT/<dot>/<branch>/... layout, progress and
 * cancellation, the dot's stable ".current" link, listing a working-copy
 * directory, and comparing a tree with another tree or with a working-copy
 * directory (dirty bytes, diff).
 *
 * Comparing writes nothing anywhere but, for dm_wc_dirty_settle, into the
 * stat cache it is given: otherwise a stat cache is only consulted; a file
 * the cache cannot vouch for is compared with the tree's file object by
 * hashing its extents in memory (dm_filedata_check), and a file whose
 * size, type, mode or owner differs is known changed without reading it.
 * A file hashed and found as the tree has it, whose timestamps are past
 * the racy window, is what settling puts into the cache (the entry a
 * commit could not trust, written within DM_STATCACHE_RACY_NS before it),
 * so that the next measure does not hash it again.
 *
 * What counts as a change (dirty, diff): content, type (file, symlink,
 * directory), permission bits and symlink target; owner and group too when
 * dmd runs as root (otherwise checkouts cannot restore owners, and every
 * file of a tree made by another user would look changed). Modification
 * times alone do not count, and neither do directories' own metadata;
 * fifos, sockets and devices in the working copy are ignored (commit
 * refuses them).
 *
 * Invariants: a dot id or branch name is checked ([A-Za-z0-9_-]{1,64},
 * dm_branch_name_check) before it goes into any path, so no path leaves
 * ROOT; walks of a working copy never follow a symlink (every open is
 * relative to a directory fd with O_NOFOLLOW) and never enter another file
 * system. Nothing here keeps state between calls.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/internal.h"
#include "store/filedata.h"
#include "store/object.h"
#include "store/statcache.h"
#include "store/store.h"
#include "store/tree.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/names.h"

#include "util/banned.h"

/* ---- names, paths, progress ---- */

int dm_wc_check_dot(const char *dot, struct dm_err *err)
{
	if (!dot || !dm_name_part_valid(dot, strlen(dot)))
		return dm_err_set(err, DM_EINVAL, "invalid dot id '%s'", dot ? dot : "");
	return 0;
}

int dm_wc_check_branch(const char *branch, struct dm_err *err)
{
	if (!branch)
		return dm_err_set(err, DM_EINVAL, "invalid branch name ''");
	return dm_branch_name_check(branch, err);
}

int dm_wc_need(const struct dm_wc_paths *p, const char *dot, const char *branch, struct dm_err *err)
{
	const char *wc = dm_wc_str(&p->wc);
	struct stat st;

	if (lstat(wc, &st) < 0) {
		if (errno == ENOENT)
			return dm_err_set(err, DM_ENOTFOUND,
					  "no working copy for branch '%s' of dot '%s'", branch,
					  dot);
		return dm_err_errno(err, errno, "cannot stat '%s'", wc);
	}
	if (!S_ISDIR(st.st_mode))
		return dm_err_set(err, DM_ECORRUPT, "working copy '%s' is not a directory", wc);
	return 0;
}

int dm_wc_make_path(struct dm_buf *out, const char *root, const char *dot, const char *branch,
		    const char *leaf, struct dm_err *err)
{
	int rc = dm_wc_check_dot(dot, err);

	if (!rc && branch)
		rc = dm_wc_check_branch(branch, err);
	if (rc)
		return rc;
	dm_buf_reset(out);
	if (branch && leaf)
		rc = dm_buf_addf(out, "%s/%s/%s/%s", root, dot, branch, leaf);
	else if (branch)
		rc = dm_buf_addf(out, "%s/%s/%s", root, dot, branch);
	else if (leaf)
		rc = dm_buf_addf(out, "%s/%s/%s", root, dot, leaf);
	else
		rc = dm_buf_addf(out, "%s/%s", root, dot);
	if (rc)
		return dm_err_set(err, rc, "path under '%s' too long", root);
	return 0;
}

const char *dm_wc_str(const struct dm_buf *b)
{
	return b->data ? (const char *)b->data : "";
}

void dm_wc_paths_release(struct dm_wc_paths *p)
{
	dm_buf_release(&p->dir);
	dm_buf_release(&p->wc);
	dm_buf_release(&p->wcnew);
	dm_buf_release(&p->base);
	dm_buf_release(&p->cache);
	dm_buf_release(&p->capture);
	dm_buf_release(&p->unfinished);
}

int dm_wc_paths_init(struct dm_wc_paths *out, const char *root, const char *dot, const char *branch,
		     struct dm_err *err)
{
	int rc;

	dm_buf_init(&out->dir, 0);
	dm_buf_init(&out->wc, 0);
	dm_buf_init(&out->wcnew, 0);
	dm_buf_init(&out->base, 0);
	dm_buf_init(&out->cache, 0);
	dm_buf_init(&out->capture, 0);
	dm_buf_init(&out->unfinished, 0);
	if (!branch)
		return dm_wc_check_branch(branch, err);
	rc = dm_wc_make_path(&out->dir, root, dot, branch, NULL, err);
	if (!rc)
		rc = dm_wc_make_path(&out->wc, root, dot, branch, "wc", err);
	if (!rc)
		rc = dm_wc_make_path(&out->wcnew, root, dot, branch, "wc.new", err);
	if (!rc)
		rc = dm_wc_make_path(&out->base, root, dot, branch, "base", err);
	if (!rc)
		rc = dm_wc_make_path(&out->cache, root, dot, branch, "statcache", err);
	if (!rc)
		rc = dm_wc_make_path(&out->capture, root, dot, branch, "capture", err);
	if (!rc)
		rc = dm_wc_make_path(&out->unfinished, root, dot, branch, "unfinished", err);
	return rc;
}

void dm_wc_report(const struct dm_engine_progress *p, uint64_t done, uint64_t total)
{
	if (p && p->report)
		p->report(p->ctx, done, total);
}

int dm_wc_check_cancel(const struct dm_engine_progress *p, const char *what, struct dm_err *err)
{
	if (p && p->cancelled && p->cancelled(p->ctx))
		return dm_err_set(err, DM_ECANCELED, "%s canceled", what);
	return 0;
}

int dm_wc_empty_tree(struct dm_store *s, dm_oid *out, struct dm_err *err)
{
	struct dm_tree t = {0, NULL};
	struct dm_buf enc;
	int rc;

	dm_buf_init(&enc, 0);
	rc = dm_tree_encode(&enc, &t, err);
	if (!rc)
		rc = dm_store_put(s, out, DM_OBJ_TREE, enc.data, enc.len, err);
	dm_buf_release(&enc);
	return rc;
}

/* ROOT/dot/.current is a symlink to "<branch>/wc"; branch names have no
 * '.', so it never collides with a branch's directory. */
#define CURRENT_LINK ".current"

int dm_wc_path(struct dm_buf *out, const char *root, const char *dot, const char *branch,
	       struct dm_err *err)
{
	if (!branch)
		return dm_wc_make_path(out, root, dot, NULL, CURRENT_LINK, err);
	return dm_wc_make_path(out, root, dot, branch, "wc", err);
}

int dm_wc_set_current(const char *root, const char *dot, const char *branch, struct dm_err *err)
{
	struct dm_buf d, link, tmp, target;
	int rc;

	dm_buf_init(&d, 0);
	dm_buf_init(&link, 0);
	dm_buf_init(&tmp, 0);
	dm_buf_init(&target, 0);
	rc = dm_wc_check_branch(branch, err);
	if (!rc)
		rc = dm_wc_make_path(&d, root, dot, NULL, NULL, err);
	if (!rc && (dm_buf_addf(&link, "%s/" CURRENT_LINK, dm_wc_str(&d)) ||
		    dm_buf_addf(&tmp, "%s/" CURRENT_LINK ".tmp", dm_wc_str(&d)) ||
		    dm_buf_addf(&target, "%s/wc", branch)))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!rc) {
		(void)unlink(dm_wc_str(&tmp));
		if (symlink(dm_wc_str(&target), dm_wc_str(&tmp)) < 0 ||
		    rename(dm_wc_str(&tmp), dm_wc_str(&link)) < 0) {
			rc = dm_err_errno(err, errno, "cannot point '%s' at branch '%s'",
					  dm_wc_str(&link), branch);
			(void)unlink(dm_wc_str(&tmp));
		}
	}
	dm_buf_release(&d);
	dm_buf_release(&link);
	dm_buf_release(&tmp);
	dm_buf_release(&target);
	return rc;
}

/* ---- listing a working-copy directory ---- */

void dm_wc_dir_release(struct dm_wc_dir *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->e[i].name);
	free(d->e);
	d->e = NULL;
	d->n = 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dm_wc_entry *)a)->name, ((const struct dm_wc_entry *)b)->name);
}

int dm_wc_list_dir(struct dm_wc_dir *out, int fd, const char *rel, struct dm_err *err)
{
	size_t alloc = 0;
	struct dirent *de;
	DIR *d = dm_opendir_dup(fd);
	int rc = 0;

	out->n = 0;
	out->e = NULL;
	if (!d)
		return dm_err_errno(err, errno, "cannot read directory '%s'", rel);
	for (;;) {
		struct stat st;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				rc = dm_err_errno(err, errno, "cannot read directory '%s'", rel);
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT) /* deleted since readdir */
				continue;
			rc = dm_err_errno(err, errno, "cannot stat '%s/%s'", rel, de->d_name);
			break;
		}
		if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode) && !S_ISDIR(st.st_mode))
			continue;
		if (out->n == alloc) {
			alloc = alloc ? alloc * 2 : 16;
			out->e = dm_xrealloc(out->e, alloc * sizeof(*out->e));
		}
		out->e[out->n].name = dm_xstrdup(de->d_name);
		out->e[out->n].st = st;
		out->n++;
	}
	closedir(d);
	if (rc) {
		dm_wc_dir_release(out);
		return rc;
	}
	if (out->n > 1)
		qsort(out->e, out->n, sizeof(*out->e), entry_cmp);
	return 0;
}

int dm_wc_open_subdir(int dfd, const char *name, dev_t dev, const char *rel, struct dm_err *err)
{
	struct stat st;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return dm_err_errno(err, errno, "cannot open directory '%s'", rel);
	if (fstat(fd, &st) < 0) {
		int e = errno;

		close(fd);
		return dm_err_errno(err, e, "cannot stat '%s'", rel);
	}
	if (st.st_dev != dev) {
		close(fd);
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "'%s' is a mount point of another file system", rel);
	}
	return fd;
}

/* ---- comparing: dirty and diff ---- */

struct cmp {
	struct dm_store *s;
	struct dm_statcache *cache; /* wc side only; may be NULL; borrowed */
	struct dm_filedata_ctx fctx;
	struct dm_buf path; /* relative path of the current entry */
	bool owners;        /* compare the wc's owners with the tree's */
	bool list;          /* collect changes */
	bool settle;        /* put files found unchanged into the cache */
	size_t settled;     /* how many were put */
	dev_t dev;          /* the wc's file system */
	struct dm_change *changes;
	size_t n, alloc;
	uint64_t dirty, total;
};

static const char *relname(const struct cmp *c)
{
	return c->path.len ? (const char *)c->path.data : ".";
}

static size_t path_push(struct cmp *c, const char *name)
{
	size_t old = c->path.len;

	if (old)
		dm_buf_addc(&c->path, '/');
	dm_buf_adds(&c->path, name);
	return old;
}

static void path_pop(struct cmp *c, size_t old)
{
	c->path.len = old;
	if (c->path.data)
		c->path.data[old] = '\0';
}

/* Records a change of the entry at c->path, of size bytes. */
static void emit(struct cmp *c, int status, uint64_t size)
{
	c->dirty += size;
	if (!c->list)
		return;
	if (c->n == c->alloc) {
		c->alloc = c->alloc ? c->alloc * 2 : 64;
		c->changes = dm_xrealloc(c->changes, c->alloc * sizeof(*c->changes));
	}
	c->changes[c->n].status = status;
	c->changes[c->n].path = dm_xstrndup((const char *)c->path.data, c->path.len);
	c->n++;
}

/* Loads tree id (NULL: the empty tree) into out. */
static int load_tree(struct cmp *c, const dm_oid *id, struct dm_tree *out, struct dm_err *err)
{
	char hex[DM_OID_HEXSZ + 1];
	struct dm_buf b;
	int kind = 0, rc;

	out->n = 0;
	out->e = NULL;
	if (!id)
		return 0;
	dm_buf_init(&b, DM_OBJ_MAX_SIZE);
	rc = dm_store_get(c->s, id, &b, &kind, err);
	if (!rc && kind != DM_OBJ_TREE) {
		dm_oid_hex(hex, id);
		rc = dm_err_set(err, DM_ECORRUPT, "object %s is a %s, not a tree", hex,
				dm_obj_kind_name(kind));
	}
	if (!rc)
		rc = dm_tree_decode(out, b.data, b.len, err);
	dm_buf_release(&b);
	if (rc)
		dm_err_prefix(err, "cannot read the tree of '%s'", relname(c));
	return rc;
}

/* Lists the directory open on fd (borrowed) and adds the sizes of its
 * files to c->total. */
static int list_wc(struct cmp *c, int fd, struct dm_wc_dir *out, struct dm_err *err)
{
	int rc = dm_wc_list_dir(out, fd, relname(c), err);

	for (size_t i = 0; !rc && i < out->n; i++)
		if (S_ISREG(out->e[i].st.st_mode))
			c->total += (uint64_t)out->e[i].st.st_size;
	return rc;
}

static int open_subdir(struct cmp *c, int dfd, const char *name, struct dm_err *err)
{
	return dm_wc_open_subdir(dfd, name, c->dev, relname(c), err);
}

static int tree_all(struct cmp *c, const struct dm_tree_entry *te, int status, int depth,
		    struct dm_err *err);

/* Every file and symlink of tree t, as status. */
static int tree_all_in(struct cmp *c, const struct dm_tree *t, int status, int depth,
		       struct dm_err *err)
{
	int rc = 0;

	for (size_t i = 0; i < t->n && !rc; i++) {
		size_t old = path_push(c, t->e[i].name);

		rc = tree_all(c, &t->e[i], status, depth, err);
		path_pop(c, old);
	}
	return rc;
}

/* The entry te at c->path and, for a directory, everything under it. */
static int tree_all(struct cmp *c, const struct dm_tree_entry *te, int status, int depth,
		    struct dm_err *err)
{
	struct dm_tree sub;
	int rc;

	if (te->type != DM_ENTRY_DIR) {
		emit(c, status, te->size);
		return 0;
	}
	if (depth >= DM_TREE_MAX_DEPTH)
		return dm_err_set(err, DM_EUNSUPPORTED, "'%s' nests more than %d deep", relname(c),
				  DM_TREE_MAX_DEPTH);
	rc = load_tree(c, &te->id, &sub, err);
	if (!rc)
		rc = tree_all_in(c, &sub, status, depth + 1, err);
	dm_tree_release(&sub);
	return rc;
}

static int wc_all_in(struct cmp *c, int fd, const struct dm_wc_dir *d, int depth,
		     struct dm_err *err);

/* The wc entry w at c->path (in the directory open on dfd) and everything
 * under it, as added. */
static int wc_all(struct cmp *c, int dfd, const struct dm_wc_entry *w, int depth,
		  struct dm_err *err)
{
	struct dm_wc_dir sub = {0, NULL};
	int fd, rc;

	if (!S_ISDIR(w->st.st_mode)) {
		emit(c, DM_CHANGE_ADDED, (uint64_t)w->st.st_size);
		return 0;
	}
	if (depth >= DM_TREE_MAX_DEPTH)
		return dm_err_set(err, DM_EUNSUPPORTED, "'%s' nests more than %d deep", relname(c),
				  DM_TREE_MAX_DEPTH);
	fd = open_subdir(c, dfd, w->name, err);
	if (fd < 0)
		return fd;
	rc = list_wc(c, fd, &sub, err);
	if (!rc)
		rc = wc_all_in(c, fd, &sub, depth + 1, err);
	dm_wc_dir_release(&sub);
	close(fd);
	return rc;
}

static int wc_all_in(struct cmp *c, int fd, const struct dm_wc_dir *d, int depth,
		     struct dm_err *err)
{
	int rc = 0;

	for (size_t i = 0; i < d->n && !rc; i++) {
		size_t old = path_push(c, d->e[i].name);

		rc = wc_all(c, fd, &d->e[i], depth, err);
		path_pop(c, old);
	}
	return rc;
}

/* Whether two non-directory tree entries differ. */
static bool entries_differ(const struct dm_tree_entry *a, const struct dm_tree_entry *b)
{
	if (a->type != b->type || a->uid != b->uid || a->gid != b->gid)
		return true;
	if (a->type == DM_ENTRY_SYMLINK)
		return strcmp(a->target ? a->target : "", b->target ? b->target : "") != 0;
	return a->mode != b->mode || a->size != b->size || dm_oid_cmp(&a->id, &b->id) != 0;
}

static int cmp_trees(struct cmp *c, const struct dm_tree *a, const struct dm_tree *b, int depth,
		     struct dm_err *err);

/* Both sides have an entry named like c->path's last component. */
static int cmp_tree_entries(struct cmp *c, const struct dm_tree_entry *a,
			    const struct dm_tree_entry *b, int depth, struct dm_err *err)
{
	struct dm_tree sa = {0, NULL}, sb = {0, NULL};
	int rc = 0;

	if (a->type == DM_ENTRY_DIR && b->type == DM_ENTRY_DIR) {
		if (dm_oid_cmp(&a->id, &b->id) == 0)
			return 0;
		if (depth >= DM_TREE_MAX_DEPTH)
			return dm_err_set(err, DM_EUNSUPPORTED, "'%s' nests more than %d deep",
					  relname(c), DM_TREE_MAX_DEPTH);
		rc = load_tree(c, &a->id, &sa, err);
		if (!rc)
			rc = load_tree(c, &b->id, &sb, err);
		if (!rc)
			rc = cmp_trees(c, &sa, &sb, depth + 1, err);
		dm_tree_release(&sa);
		dm_tree_release(&sb);
		return rc;
	}
	if (a->type == DM_ENTRY_DIR) {
		rc = tree_all(c, a, DM_CHANGE_DELETED, depth, err);
		emit(c, DM_CHANGE_ADDED, b->size);
		return rc;
	}
	if (b->type == DM_ENTRY_DIR) {
		emit(c, DM_CHANGE_DELETED, a->size);
		return tree_all(c, b, DM_CHANGE_ADDED, depth, err);
	}
	if (entries_differ(a, b))
		emit(c, DM_CHANGE_MODIFIED, b->size);
	return 0;
}

static int cmp_trees(struct cmp *c, const struct dm_tree *a, const struct dm_tree *b, int depth,
		     struct dm_err *err)
{
	size_t i = 0, j = 0;
	int rc = 0;

	while (!rc && (i < a->n || j < b->n)) {
		int d = i >= a->n ? 1 : j >= b->n ? -1 : strcmp(a->e[i].name, b->e[j].name);
		size_t old = path_push(c, d <= 0 ? a->e[i].name : b->e[j].name);

		if (d < 0)
			rc = tree_all(c, &a->e[i++], DM_CHANGE_DELETED, depth, err);
		else if (d > 0)
			rc = tree_all(c, &b->e[j++], DM_CHANGE_ADDED, depth, err);
		else
			rc = cmp_tree_entries(c, &a->e[i++], &b->e[j++], depth, err);
		path_pop(c, old);
	}
	return rc;
}

/* Sets *same to whether the regular file w (in the directory open on dfd)
 * holds a's content, using the stat cache first. */
static int same_content(struct cmp *c, int dfd, const struct dm_wc_entry *w,
			const struct dm_tree_entry *a, bool *same, struct dm_err *err)
{
	struct dm_statcache_stat cs;
	struct dm_file f = {0, 0, NULL};
	dm_oid cached;
	int64_t seen;
	int fd = -1, rc;

	*same = false;
	dm_statcache_stat_from(&cs, &w->st);
	if (c->cache &&
	    dm_statcache_lookup(c->cache, (const char *)c->path.data, c->path.len, &cs, &cached)) {
		*same = dm_oid_cmp(&cached, &a->id) == 0;
		return 0;
	}
	rc = dm_filedata_load(c->s, &c->fctx, &f, &a->id, err);
	if (rc) {
		dm_err_prefix(err, "cannot read the content of '%s'", relname(c));
		goto done;
	}
	/* before the content is read, after w's stat was taken (statcache.h) */
	seen = dm_now_realtime_ns();
	fd = openat(dfd, w->name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ELOOP) /* replaced since the listing */
			goto done;
		rc = dm_err_errno(err, errno, "cannot open '%s'", relname(c));
		goto done;
	}
	rc = dm_filedata_check(&c->fctx, fd, &f, same, relname(c), err);
	if (!rc && *same && c->settle && c->cache && cs.mtime_ns < seen - DM_STATCACHE_RACY_NS &&
	    cs.ctime_ns < seen - DM_STATCACHE_RACY_NS &&
	    dm_statcache_put(c->cache, (const char *)c->path.data, c->path.len, &cs, &a->id, seen,
			     NULL) == 0)
		c->settled++;
done:
	if (fd >= 0)
		close(fd);
	dm_file_release(&f);
	return rc;
}

/* a (from a tree) and w (in the wc directory open on dfd) share a name. */
static int cmp_wc_entry(struct cmp *c, int dfd, const struct dm_tree_entry *a,
			const struct dm_wc_entry *w, int depth, struct dm_err *err);

static int cmp_tree_wc(struct cmp *c, const struct dm_tree *a, int fd, const struct dm_wc_dir *b,
		       int depth, struct dm_err *err)
{
	size_t i = 0, j = 0;
	int rc = 0;

	while (!rc && (i < a->n || j < b->n)) {
		int d = i >= a->n ? 1 : j >= b->n ? -1 : strcmp(a->e[i].name, b->e[j].name);
		size_t old = path_push(c, d <= 0 ? a->e[i].name : b->e[j].name);

		if (d < 0)
			rc = tree_all(c, &a->e[i++], DM_CHANGE_DELETED, depth, err);
		else if (d > 0)
			rc = wc_all(c, fd, &b->e[j++], depth, err);
		else
			rc = cmp_wc_entry(c, fd, &a->e[i++], &b->e[j++], depth, err);
		path_pop(c, old);
	}
	return rc;
}

static int cmp_wc_entry(struct cmp *c, int dfd, const struct dm_tree_entry *a,
			const struct dm_wc_entry *w, int depth, struct dm_err *err)
{
	const struct stat *st = &w->st;
	uint64_t size = (uint64_t)st->st_size;
	bool same = true;
	int rc = 0;

	if (a->type == DM_ENTRY_DIR && S_ISDIR(st->st_mode)) {
		struct dm_tree sub = {0, NULL};
		struct dm_wc_dir wsub = {0, NULL};
		int fd;

		if (depth >= DM_TREE_MAX_DEPTH)
			return dm_err_set(err, DM_EUNSUPPORTED, "'%s' nests more than %d deep",
					  relname(c), DM_TREE_MAX_DEPTH);
		fd = open_subdir(c, dfd, w->name, err);
		if (fd < 0)
			return fd;
		rc = load_tree(c, &a->id, &sub, err);
		if (!rc)
			rc = list_wc(c, fd, &wsub, err);
		if (!rc)
			rc = cmp_tree_wc(c, &sub, fd, &wsub, depth + 1, err);
		dm_wc_dir_release(&wsub);
		dm_tree_release(&sub);
		close(fd);
		return rc;
	}
	if (a->type == DM_ENTRY_DIR) {
		rc = tree_all(c, a, DM_CHANGE_DELETED, depth, err);
		emit(c, DM_CHANGE_ADDED, size);
		return rc;
	}
	if (S_ISDIR(st->st_mode)) {
		emit(c, DM_CHANGE_DELETED, a->size);
		return wc_all(c, dfd, w, depth, err);
	}
	if (c->owners && (st->st_uid != a->uid || st->st_gid != a->gid))
		same = false;
	else if (a->type == DM_ENTRY_SYMLINK && S_ISLNK(st->st_mode)) {
		char target[DM_SYMLINK_MAX + 2];
		ssize_t n = readlinkat(dfd, w->name, target, sizeof(target) - 1);

		if (n < 0 && errno != ENOENT && errno != EINVAL)
			return dm_err_errno(err, errno, "cannot read symlink '%s'", relname(c));
		same = n >= 0 && a->target && (size_t)n == strlen(a->target) &&
		       memcmp(target, a->target, (size_t)n) == 0;
	} else if (a->type == DM_ENTRY_FILE && S_ISREG(st->st_mode)) {
		if ((st->st_mode & 07777) != a->mode || size != a->size)
			same = false;
		else
			rc = same_content(c, dfd, w, a, &same, err);
	} else {
		same = false; /* file <-> symlink */
	}
	if (!rc && !same)
		emit(c, DM_CHANGE_MODIFIED, size);
	return rc;
}

static void cmp_init(struct cmp *c, struct dm_store *s, struct dm_statcache *cache, bool list)
{
	memset(c, 0, sizeof(*c));
	c->s = s;
	c->cache = cache;
	c->list = list;
	c->owners = geteuid() == 0;
	dm_filedata_ctx_init(&c->fctx);
	dm_buf_init(&c->path, 0);
}

static void cmp_release(struct cmp *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->changes[i].path);
	free(c->changes);
	dm_filedata_ctx_release(&c->fctx);
	dm_buf_release(&c->path);
}

/* Compares tree from (NULL: empty) with the directory wc. */
static int cmp_with_wc(struct cmp *c, const char *wc, const dm_oid *from, struct dm_err *err)
{
	struct dm_tree a = {0, NULL};
	struct dm_wc_dir b = {0, NULL};
	struct stat st;
	int fd, rc;

	fd = open(wc, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = dm_err_errno(err, errno, "cannot open directory '%s'", wc);
		goto done;
	}
	c->dev = st.st_dev;
	rc = load_tree(c, from, &a, err);
	if (!rc)
		rc = list_wc(c, fd, &b, err);
	if (!rc)
		rc = cmp_tree_wc(c, &a, fd, &b, 0, err);
done:
	dm_wc_dir_release(&b);
	dm_tree_release(&a);
	if (fd >= 0)
		close(fd);
	return rc;
}

static int wc_dirty(struct dm_store *s, const char *wc, struct dm_statcache *cache,
		    const dm_oid *head, uint64_t *dirty_out, uint64_t *size_out, size_t *settled,
		    struct dm_err *err)
{
	struct cmp c;
	int rc;

	cmp_init(&c, s, cache, false);
	c.settle = settled != NULL;
	rc = cmp_with_wc(&c, wc, head, err);
	if (!rc) {
		if (dirty_out)
			*dirty_out = c.dirty;
		if (size_out)
			*size_out = c.total;
	}
	if (settled)
		*settled = c.settled;
	cmp_release(&c);
	return rc;
}

int dm_wc_dirty(struct dm_store *s, const char *wc, struct dm_statcache *cache, const dm_oid *head,
		uint64_t *dirty_out, uint64_t *size_out, struct dm_err *err)
{
	return wc_dirty(s, wc, cache, head, dirty_out, size_out, NULL, err);
}

int dm_wc_dirty_settle(struct dm_store *s, const char *wc, struct dm_statcache *cache,
		       const dm_oid *head, uint64_t *dirty_out, uint64_t *size_out, size_t *settled,
		       struct dm_err *err)
{
	return wc_dirty(s, wc, cache, head, dirty_out, size_out, settled, err);
}

static int change_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dm_change *)a)->path, ((const struct dm_change *)b)->path);
}

int dm_wc_diff(struct dm_store *s, const char *wc, struct dm_statcache *cache, const dm_oid *from,
	       const dm_oid *to, struct dm_diff *out, struct dm_err *err)
{
	struct dm_tree a = {0, NULL}, b = {0, NULL};
	struct cmp c;
	int rc;

	out->n = 0;
	out->changes = NULL;
	cmp_init(&c, s, cache, true);
	if (to) {
		rc = load_tree(&c, from, &a, err);
		if (!rc)
			rc = load_tree(&c, to, &b, err);
		if (!rc && !(from && dm_oid_cmp(from, to) == 0))
			rc = cmp_trees(&c, &a, &b, 0, err);
	} else {
		rc = cmp_with_wc(&c, wc, from, err);
	}
	if (!rc) {
		if (c.n > 1)
			qsort(c.changes, c.n, sizeof(*c.changes), change_cmp);
		out->n = c.n;
		out->changes = c.changes;
		c.changes = NULL;
		c.n = 0;
	}
	dm_tree_release(&a);
	dm_tree_release(&b);
	cmp_release(&c);
	return rc;
}
