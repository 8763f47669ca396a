/*
 * internal.h - what every engine shares with the dispatch in engine.c and
 * with the others (src/engine only).
 *
 * Each engine's struct dm_engine begins with a struct dm_engine_base, so
 * that engine.c can find the ops table of any engine it is handed. The
 * dm_wc_* helpers (wc.c) are the parts of a working copy that do not
 * depend on how it is kept: names, paths, progress, the ".current" link,
 * listing a directory, and comparing trees with trees or with a directory.
 */
#ifndef DM_ENGINE_INTERNAL_H
#define DM_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "engine/engine.h"
#include "store/tree.h"
#include "util/buf.h"

struct dm_err;

struct dm_engine_base {
	const struct dm_engine_ops *ops;
	/* Absolute, no trailing '/': the working copies are
	 * root/<dot>/<branch>/wc (owned by the engine, freed by its .free). */
	char *root;
};

/* Mode of ROOT, ROOT/<dot> and ROOT/<dot>/<branch>: anyone may pass
 * through to a working copy (a database runs as its own user), nobody
 * else may list them. */
#define DM_WC_DIR_MODE 0711

int dm_wc_check_dot(const char *dot, struct dm_err *err);
int dm_wc_check_branch(const char *branch, struct dm_err *err);
/* out = root/dot[/branch][/leaf], after checking the names (branch may be
 * NULL; leaf then goes right under the dot's directory). */
int dm_wc_make_path(struct dm_buf *out, const char *root, const char *dot, const char *branch,
		    const char *leaf, struct dm_err *err);

/* The paths of one branch: root/<dot>/<branch> and, in it, the working
 * copy, the one being made in its place, its base, its stat cache, a
 * commit's copies and the marker of an unfinished in-place write (the dir
 * engine uses all but wcnew and base). */
struct dm_wc_paths {
	struct dm_buf dir, wc, wcnew, base, cache, capture, unfinished;
};
#define DM_WC_PATHS_INIT                                                                           \
	{DM_BUF_INIT, DM_BUF_INIT, DM_BUF_INIT, DM_BUF_INIT, DM_BUF_INIT, DM_BUF_INIT, DM_BUF_INIT}
/* Fills out (always: release it even on an error) after checking the
 * names; a NULL branch is an error. */
int dm_wc_paths_init(struct dm_wc_paths *out, const char *root, const char *dot, const char *branch,
		     struct dm_err *err);
void dm_wc_paths_release(struct dm_wc_paths *p);
/* 0 when the working copy p->wc (of branch of dot) exists as a directory;
 * DM_ENOTFOUND naming them when it does not, DM_ECORRUPT when it is not a
 * directory. */
int dm_wc_need(const struct dm_wc_paths *p, const char *dot, const char *branch,
	       struct dm_err *err);
/* Writing a working copy in place (inplace.c). Whether p's marker of an
 * unfinished in-place write exists; DM_ECONFLICT saying the branch needs
 * a reset when it does; syncfs of dir's file system; removing the marker
 * (durably) once what was written is synced; and the hook to give
 * dm_materialize_opts.before_in_place, with p as its ctx (writes the
 * marker before the first change). */
bool dm_wc_unfinished(const struct dm_wc_paths *p);
int dm_wc_check_finished(const struct dm_wc_paths *p, const char *dot, const char *branch,
			 struct dm_err *err);
int dm_wc_sync(const char *dir, struct dm_err *err);
int dm_wc_finish(const struct dm_wc_paths *p, struct dm_err *err);
int dm_wc_before_in_place(const void *ctx, bool first, struct dm_err *err);
/* b's text, or "" when it has none. */
const char *dm_wc_str(const struct dm_buf *b);
void dm_wc_report(const struct dm_engine_progress *p, uint64_t done, uint64_t total);
/* DM_ECANCELED "<what> canceled" when p says stop. */
int dm_wc_check_cancel(const struct dm_engine_progress *p, const char *what, struct dm_err *err);
/* Puts the empty tree and returns its id. */
int dm_wc_empty_tree(struct dm_store *s, dm_oid *out, struct dm_err *err);

/* What dm_engine_path and dm_engine_set_current do for an engine without
 * .path and .set_current (all of them, so far): its working copies are
 * root/<dot>/<branch>/wc, with root/<dot>/.current leading to one. */
int dm_wc_path(struct dm_buf *out, const char *root, const char *dot, const char *branch,
	       struct dm_err *err);
int dm_wc_set_current(const char *root, const char *dot, const char *branch, struct dm_err *err);

/* A directory of a working copy as the walks see it: its regular files,
 * symlinks and directories (nothing else), each lstat'ed, sorted by name
 * bytewise. */
struct dm_wc_entry {
	char *name;
	struct stat st;
};
struct dm_wc_dir {
	size_t n;
	struct dm_wc_entry *e;
};
/* Lists the directory open on fd (borrowed; never followed out of it: every
 * stat is relative with AT_SYMLINK_NOFOLLOW). An entry gone since readdir
 * is left out. rel names the directory in messages. On an error out is
 * empty. */
int dm_wc_list_dir(struct dm_wc_dir *out, int fd, const char *rel, struct dm_err *err);
void dm_wc_dir_release(struct dm_wc_dir *d);
/* Opens subdirectory name of the directory open on dfd: the fd, or an
 * error for a symlink, a non-directory or a file system other than dev. rel
 * names it in messages. */
int dm_wc_open_subdir(int dfd, const char *name, dev_t dev, const char *rel, struct dm_err *err);

/*
 * Dirty bytes of the directory wc against tree head (NULL: empty), and its
 * total size; cache (may be NULL, borrowed) is trusted for wc's files.
 * dm_wc_diff lists the changes from `from` (NULL: empty) to `to`, or to wc
 * when to is NULL (wc and cache are unused otherwise). Both write nothing.
 */
int dm_wc_dirty(struct dm_store *s, const char *wc, struct dm_statcache *cache, const dm_oid *head,
		uint64_t *dirty_out, uint64_t *size_out, struct dm_err *err);
/* As dm_wc_dirty, and puts into cache (not NULL) the files it hashed and
 * found as head has them, once past the racy window (wc.c); *settled: how
 * many (the caller saves the cache when any). */
int dm_wc_dirty_settle(struct dm_store *s, const char *wc, struct dm_statcache *cache,
		       const dm_oid *head, uint64_t *dirty_out, uint64_t *size_out, size_t *settled,
		       struct dm_err *err);
int dm_wc_diff(struct dm_store *s, const char *wc, struct dm_statcache *cache, const dm_oid *from,
	       const dm_oid *to, struct dm_diff *out, struct dm_err *err);

/* Dirty bytes of the directory wc since it was a snapshot (or reflinked
 * copy) of the frozen directory snap, from extent maps (snapdirty.c), and
 * wc's total size. */
int dm_wc_dirty_since(const char *wc, const char *snap, uint64_t *dirty_out, uint64_t *size_out,
		      struct dm_err *err);

#endif
