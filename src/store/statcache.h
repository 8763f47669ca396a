/*
 * statcache.h - the stat cache's internal interface (src/store only; the
 * public part is in tree.h).
 *
 * The cache maps a path relative to the directory it describes to the stat
 * that file had (size, mtime, ctime, inode, mode) when its content was last
 * known, the id of its file object, and when that stat was taken ("seen").
 *
 * Racy entries: a file changed again within the file system's timestamp
 * granularity after it was read keeps its mtime and ctime, so a matching
 * stat would hide the change (git's "racy clean" problem). An entry whose
 * mtime or ctime is not at least DM_STATCACHE_RACY_NS older than the moment
 * it was seen is therefore never trusted: a lookup misses, the file is read
 * again, and the entry put then is trusted once the file stays unchanged.
 *
 * Marks: lookup (on a hit) and put mark an entry; dm_statcache_sweep drops
 * every unmarked entry and clears the marks, so a walk that looks up or
 * puts every path it meets leaves exactly the paths that still exist.
 *
 * Not thread-safe: one thread at a time uses a cache.
 */
#ifndef DM_STORE_STATCACHE_H
#define DM_STORE_STATCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "store/tree.h"
#include "util/hash.h"

/* Timestamps closer than this to the moment an entry was seen are racy. */
#define DM_STATCACHE_RACY_NS (2LL * 1000 * 1000 * 1000)
/* A cache file larger than this is not loaded. */
#define DM_STATCACHE_MAX_FILE (1ull << 30)
/* Longest relative path a cache holds. */
#define DM_STATCACHE_PATH_MAX 4096u

struct dm_statcache_stat {
	uint64_t size;
	uint64_t ino;
	int64_t mtime_ns;
	int64_t ctime_ns;
	uint32_t mode; /* st_mode, type bits included */
};

void dm_statcache_stat_from(struct dm_statcache_stat *out, const struct stat *st);
/* Whether a and b are the same stat: every field equal. */
bool dm_statcache_stat_equal(const struct dm_statcache_stat *a, const struct dm_statcache_stat *b);

/*
 * 1 and *id when path has an entry whose stat equals st and which is not
 * racy (and marks it); 0 otherwise.
 */
int dm_statcache_lookup(struct dm_statcache *c, const char *path, size_t len,
			const struct dm_statcache_stat *st, dm_oid *id);
/*
 * As dm_statcache_lookup, racy entries included and nothing marked: for
 * the frozen copy the cache was made from, whose files an entry describes
 * exactly whatever their timestamps (treebuild.c's base_dir).
 */
int dm_statcache_peek(const struct dm_statcache *c, const char *path, size_t len,
		      const struct dm_statcache_stat *st, dm_oid *id);
/* Inserts or replaces path's entry, marked. seen_ns: CLOCK_REALTIME taken
 * before the content was read or written. DM_ENOMEM, DM_EINVAL (bad path). */
int dm_statcache_put(struct dm_statcache *c, const char *path, size_t len,
		     const struct dm_statcache_stat *st, const dm_oid *id, int64_t seen_ns,
		     struct dm_err *err);
/* Removes path's entry, if any. */
void dm_statcache_remove(struct dm_statcache *c, const char *path, size_t len);
/* Drops unmarked entries, clears all marks; returns how many were dropped. */
size_t dm_statcache_sweep(struct dm_statcache *c);
/* Removes every entry. */
void dm_statcache_clear(struct dm_statcache *c);

#endif
