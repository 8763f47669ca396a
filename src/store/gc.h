/*
 * gc.h - which objects the committed history still reaches (gc.c; internal
 * to src/store: dm_store_external_release uses it before an engine deletes
 * the files that external objects live in).
 */
#ifndef DM_STORE_GC_H
#define DM_STORE_GC_H

#include <stdbool.h>
#include <stddef.h>

#include "store/oidmap.h"
#include "store/store.h"

struct dm_err;

/*
 * want maps candidate ids to one byte, 0; sets it to 1 for every candidate
 * that a commit of a dot other than skip_dot (NULL: any dot) reaches
 * through its tree, subtrees, files and chunks. reached (a set, may be
 * NULL) receives every commit, tree and file object walked. Each tree and
 * file is read once; a missing one is skipped (logged), it reaches nothing.
 * A pruned commit (DM_COMMIT_PRUNED) reaches only itself.
 */
int dm_store_mark_reachable(struct dm_store *s, const char *skip_dot, struct dm_oidmap *want,
			    struct dm_oidmap *reached, struct dm_err *err);

/*
 * The collector's mark: walks every commit in the commit index (when
 * commits) and every id in roots (of any kind; one that is not stored is
 * skipped), adding every commit, tree and file walked to seen (which also
 * says what not to walk again) and calling chunk for every chunk met.
 * A pruned commit goes into seen unopened: what only its tree reaches is
 * garbage, also when a root (a pin, an id looked up meanwhile) names it.
 */
int dm_store_mark_live(struct dm_store *s, bool commits, const dm_oid *roots, size_t nroots,
		       struct dm_oidmap *seen, void (*chunk)(void *ctx, const dm_oid *id),
		       void *ctx, struct dm_err *err);

/*
 * Adds to gone (a set of ids about to be forgotten) every file, tree and
 * commit object of the store that reached does not hold and that names
 * something in gone, directly or through other objects: what would be
 * left naming a missing object.
 */
int dm_store_add_dependents(struct dm_store *s, const struct dm_oidmap *reached,
			    struct dm_oidmap *gone, struct dm_err *err);

#endif
