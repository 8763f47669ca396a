/*
 * tree.h - turning a directory into a tree of objects and back.
 *
 * dm_tree_build walks a directory (never following symlinks and never
 * leaving its file system), stores every file's chunks and every directory's
 * tree, and returns the root tree's id. Files are chunked and hashed in
 * parallel on all cores. A stat cache makes an unchanged file cost one
 * lstat: an entry whose size, mtime, ctime, inode and mode match the cache
 * reuses the cached file id. Regular files, directories and symlinks are
 * stored; hard links become separate files; fifos, sockets and devices are
 * refused with a message that names the path. Sparse files keep their holes
 * (SEEK_DATA/SEEK_HOLE).
 *
 * dm_tree_materialize makes a directory equal to a tree: it creates, rewrites
 * or removes only what differs, restores modes, owners (when root), mtimes,
 * symlinks, empty directories and holes, and never writes outside dir: it
 * works through directory file descriptors with O_NOFOLLOW, and a symlink in
 * the way is replaced, never followed.
 */
#ifndef DM_STORE_TREE_H
#define DM_STORE_TREE_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

struct dm_err;

/* Deepest directory nesting that build and materialise accept (each level
 * holds one open directory while it is walked). */
#define DM_TREE_MAX_DEPTH 256

/* ---- stat cache ---- */

struct dm_statcache;

/* Loads the cache at path; a missing file gives an empty cache. A corrupt
 * cache is discarded (it is only a cache) with a warning in the log. */
int dm_statcache_load(struct dm_statcache **out, const char *path, struct dm_err *err);
struct dm_statcache *dm_statcache_new(void);
/* Writes the cache atomically. */
int dm_statcache_save(struct dm_statcache *c, const char *path, struct dm_err *err);
void dm_statcache_free(struct dm_statcache *c);
size_t dm_statcache_count(const struct dm_statcache *c);

/* ---- build ---- */

struct dm_build_stats {
	uint64_t files;        /* regular files seen */
	uint64_t dirs;
	uint64_t symlinks;
	uint64_t files_hashed; /* files read because the cache did not match */
	uint64_t bytes_hashed;
	uint64_t bytes_total;  /* sum of file sizes */
	uint64_t chunks_new;   /* chunks that were not in the store */
	/* capture mode: files copied aside during the walk, and the bytes
	 * those copies took (0 for reflinks) */
	uint64_t files_captured;
	uint64_t bytes_copied;
	/* verify: entries that changed while the build read them (added,
	 * removed, or their stat moved), and the first one's path */
	uint64_t changed;
	char changed_path[256];
};

/*
 * Capture mode: the one instant of a directory whose writers are frozen
 * only for the walk. The walk takes every entry's stat, uses the cache for
 * the files it vouches for, and copies every other file aside into dir (an
 * empty directory on the same file system, outside the one built: a reflink
 * where the file system has them, else a copy); then walk_done is called,
 * and the copies are read, hashed and removed while the writers run again.
 * The cache learns each file as the stat it had in the walk.
 */
struct dm_build_capture {
	const char *dir;
	/* called once, when the walk (and its verify) is over or has failed:
	 * the caller thaws the writers */
	void (*walk_done)(void *ctx);
	void *ctx;
	/* monotonic; the walk fails with DM_ETIMEOUT past it (0: none) */
	int64_t deadline_ns;
	/* may be NULL; the walk fails with DM_ECANCELED once it says true */
	bool (*cancelled)(void *ctx);
	void *cancel_ctx;
};

struct dm_build_opts {
	int threads;            /* 0: one per online CPU */
	struct dm_statcache *cache; /* may be NULL; updated to the new state */
	/* dir is frozen (a read-only snapshot) and stays: chunks are not
	 * copied into packs, the store records where they are in dir's files
	 * (dm_store_put_external); dir must then be an absolute path */
	bool external;
	/* when dir is a frozen copy: the moment it was frozen, so the cache
	 * treats files changed just before it as racy; 0: the clock at read */
	int64_t seen_ns;
	/* the earlier frozen copy of dir that cache was made from (may be
	 * NULL): a file whose stat changed but whose version there the cache
	 * describes (same stat, racy or not: the cache was made from those
	 * very files) is read only where their blocks differ
	 * (dm_filedata_store_delta) */
	const char *base_dir;
	/* after everything is read, every entry's stat is taken again and
	 * compared with the one its content was read under (a file whose
	 * timestamps are too close to its read to tell is read again):
	 * stats->changed says how many changed while the build read them, so
	 * 0 means the tree is the directory as of one instant, the end of the
	 * reads. In capture mode the check runs before walk_done (writers a
	 * freeze does not stop are what it finds). */
	bool verify;
	const struct dm_build_capture *capture; /* NULL: read the files in place */
};

int dm_tree_build(struct dm_store *s, dm_oid *out, const char *dir,
		  const struct dm_build_opts *opts, struct dm_build_stats *stats,
		  struct dm_err *err);

/* ---- materialise ---- */

struct dm_materialize_stats {
	uint64_t files_written;
	uint64_t files_kept;    /* already identical, not rewritten */
	uint64_t bytes_written;
	uint64_t removed;       /* entries deleted because the tree lacks them */
	uint64_t files_in_place; /* of files_written, changed in place (in_place) */
};

struct dm_materialize_opts {
	int threads;                /* 0: one per online CPU */
	struct dm_statcache *cache; /* may be NULL; trusted to say what dir holds,
				     * then updated to the new state */
	bool restore_owner;         /* chown entries (default: when root) */
	bool strip_setid;           /* regular files never get setuid/setgid */
	/* Nobody has dir's files open (the containers using it are stopped):
	 * an existing regular file of one link is changed in place, only
	 * where it differs (dm_filedata_patch), instead of replaced by a new
	 * file. A crash then may leave a file half old: before_in_place
	 * (may be NULL) is called before every such change, with first true
	 * exactly once, before the first (write a durable marker then); its
	 * failure stops the materialise. */
	bool in_place;
	int (*before_in_place)(const void *ctx, bool first, struct dm_err *err);
	const void *ctx;
};

int dm_tree_materialize(struct dm_store *s, const dm_oid *tree, const char *dir,
			const struct dm_materialize_opts *opts,
			struct dm_materialize_stats *stats, struct dm_err *err);

/*
 * At most how many bytes dm_tree_materialize of tree onto dir would write:
 * every file that cache (may be NULL) does not vouch holds the tree's
 * content already, in whole blocks, plus a block per directory and
 * symlink to make. What it frees (files replaced or removed) is not
 * subtracted: an upper bound of what it needs free as it goes. Writes
 * nothing; dir may not exist.
 */
int dm_tree_materialize_need(struct dm_store *s, const dm_oid *tree, const char *dir,
			     const struct dm_statcache *cache, uint64_t *need, struct dm_err *err);

#endif
