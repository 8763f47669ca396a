/*
 * filedata.h - the content of one regular file as chunks in the store, and
 * back (internal to src/store: used by treebuild.c and materialize.c).
 *
 * Storing reads only the data regions of a file (SEEK_DATA/SEEK_HOLE), so a
 * hole becomes a gap between extents and costs nothing; writing pwrites each
 * extent and ftruncates to the size, so gaps become holes again.
 *
 * A struct dm_filedata_ctx is one thread's scratch space (a read buffer and
 * an encoding buffer): one per thread, never shared. dm_filepool runs file
 * jobs on a pool of threads, each with its own ctx.
 */
#ifndef DM_STORE_FILEDATA_H
#define DM_STORE_FILEDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/object.h"
#include "store/store.h"
#include "util/buf.h"

struct dm_err;

struct dm_filedata_ctx {
	unsigned char *buf; /* read window, cap bytes (allocated on first use) */
	size_t cap;
	struct dm_buf enc;  /* encoding of the file object */
	struct dm_buf obj;  /* one chunk read back from the store */
};

/* What storing one file did. */
struct dm_filedata_result {
	uint64_t size;       /* bytes the stored file object holds */
	uint64_t bytes_read; /* data bytes read (holes are not read) */
	uint64_t chunks;
	uint64_t chunks_new; /* chunks that were not in the store before */
	bool changed;        /* the file changed size while it was read */
};

void dm_filedata_ctx_init(struct dm_filedata_ctx *ctx);
void dm_filedata_ctx_release(struct dm_filedata_ctx *ctx);

/*
 * Stores the content of the regular file open on fd (size bytes, as fstat
 * said; blocks is st_blocks, used to skip hole detection for files that
 * cannot have holes) and puts its file object; out receives the object's
 * id. name is used in messages only. A file that ends early (it shrank
 * while being read) is stored as far as it was read and res->changed is set.
 * ext_path (absolute; NULL: copy chunks into packs) is the path of the
 * same file when it is immutable: new chunks are then recorded as its
 * bytes (dm_store_put_external_hashed) instead of being copied.
 */
int dm_filedata_store(struct dm_store *s, struct dm_filedata_ctx *ctx, dm_oid *out, int fd,
		      uint64_t size, uint64_t blocks, const char *name, const char *ext_path,
		      struct dm_filedata_result *res, struct dm_err *err);

/*
 * As dm_filedata_store for a frozen file whose earlier version, also
 * frozen, is open on base_fd and stored as file object base_id: the bytes
 * both map to the same physical blocks (FIEMAP; a btrfs snapshot and the
 * next, reflinked copies) are not read, and the base's chunks over them
 * are reused, so the cost follows what changed (filedelta.c). The object
 * made is exactly the one dm_filedata_store would make. Falls back to
 * dm_filedata_store when the blocks cannot be compared or either file has
 * holes.
 */
int dm_filedata_store_delta(struct dm_store *s, struct dm_filedata_ctx *ctx, dm_oid *out, int fd,
			    uint64_t size, uint64_t blocks, const char *name, const char *ext_path,
			    int base_fd, const dm_oid *base_id, struct dm_filedata_result *res,
			    struct dm_err *err);

/*
 * Encodes file object f (in ctx->enc) and puts it: out receives its id. The
 * last step of both dm_filedata_store and dm_filedata_store_delta; name is
 * used in messages only.
 */
int dm_filedata_put_file(dm_oid *out, struct dm_store *s, struct dm_filedata_ctx *ctx,
			 const struct dm_file *f, const char *name, struct dm_err *err);

/*
 * Puts the chunk p[0, len) found at offset off of the file (recorded as
 * bytes of ext_path when ext_path is not NULL, see dm_filedata_store) unless
 * the store has it; out receives its id. Counts it in res (chunks, and
 * chunks_new when it was put).
 */
int dm_filedata_put_chunk(dm_oid *out, struct dm_store *s, const unsigned char *p, size_t len,
			  uint64_t off, const char *ext_path, struct dm_filedata_result *res,
			  struct dm_err *err);

/*
 * Writes the content of file object f into fd, which must be open for
 * writing on an empty file: every extent is pwritten at its offset and the
 * file is then truncated to f->size, so gaps stay holes. *written (may be
 * NULL) receives the number of data bytes written.
 */
int dm_filedata_write(struct dm_store *s, struct dm_filedata_ctx *ctx, int fd,
		      const struct dm_file *f, uint64_t *written, const char *name,
		      struct dm_err *err);

/*
 * The writing both of those share: into fd, which holds exactly file object
 * base (NULL: an empty file), every extent of f that base does not hold at
 * the same offset with the same chunk is pwritten, then fd is truncated to
 * f->size. *written (may be NULL) receives the data bytes written.
 */
int dm_filedata_write_over(struct dm_store *s, struct dm_filedata_ctx *ctx, int fd,
			   const struct dm_file *base, const struct dm_file *f, uint64_t *written,
			   const char *name, struct dm_err *err);

/*
 * As dm_filedata_write, when the file open on base_fd (readable) holds
 * exactly file object base: fd first becomes a reflinked copy of it
 * (FICLONE: the blocks are shared, nothing is copied), then only the
 * extents of f that base does not hold at the same offset with the same
 * chunk are written, and the size is set; *written gets the bytes written.
 * So a file changed in place costs the blocks that changed (filedelta.c).
 * 1 when done that way; 0 when it cannot be (the file system has no
 * reflinks, either object has gaps) and fd is untouched; < 0 on errors.
 */
int dm_filedata_write_delta(struct dm_store *s, struct dm_filedata_ctx *ctx, int fd, int base_fd,
			    const struct dm_file *base, const struct dm_file *f, uint64_t *written,
			    const char *name, struct dm_err *err);

/*
 * The bytes of the file open on fd (size bytes) that changed since it was
 * an exact copy of the file open on base_fd (base_size bytes; a snapshot
 * of it, or a reflinked copy): its data that does not lie at the same
 * offset on the same physical blocks as the base's (FIEMAP, after writing
 * back what fd has cached: until then btrfs maps an overwritten range to
 * its old blocks). Bytes a truncation cut off do not count. -1 with errno
 * when FIEMAP cannot tell (no FIEMAP, data inline in metadata): compare
 * the contents instead.
 */
int dm_filedata_changed_bytes(int fd, uint64_t size, int base_fd, uint64_t base_size,
			      uint64_t *out);

/*
 * Sets *same to whether the file open on fd (readable) holds exactly the
 * content of f: same size, every extent hashes to its chunk id and every gap
 * reads as zeros (holes are skipped without reading). Needs no store.
 */
int dm_filedata_check(struct dm_filedata_ctx *ctx, int fd, const struct dm_file *f, bool *same,
		      const char *name, struct dm_err *err);

/*
 * Makes the regular file open on fd (read-write) hold exactly file object
 * f, as dm_filedata_write would have made it in an empty file - the same
 * bytes, the same holes, the same size - changing only what differs
 * (filepatch.c). base (may be NULL) is what fd holds, as a cache vouches:
 * an extent of f that base has at the same offset is then left alone
 * unread; without base each extent is read and compared. before(arg, err)
 * runs before every change (a write, a punched hole, a truncation); its
 * failure stops the patch. *written gets the data bytes written, *changed
 * whether anything changed.
 */
int dm_filedata_patch(struct dm_store *s, struct dm_filedata_ctx *ctx, int fd,
		      const struct dm_file *base, const struct dm_file *f,
		      int (*before)(void *arg, struct dm_err *err), void *arg, uint64_t *written,
		      bool *changed, const char *name, struct dm_err *err);

/* Reads the chunk of extent e from the store into ctx->obj, checked. */
int dm_filedata_get_chunk(struct dm_store *s, struct dm_filedata_ctx *ctx,
			  const struct dm_extent *e, const char *name, struct dm_err *err);

/* pwrites the chunk of extent e (dm_filedata_get_chunk) at its offset. */
int dm_filedata_write_extent(struct dm_store *s, struct dm_filedata_ctx *ctx, int fd,
			     const struct dm_extent *e, const char *name, struct dm_err *err);

/* Sets *same to whether the bytes of fd under extent e hash to its chunk. */
int dm_filedata_extent_same(struct dm_filedata_ctx *ctx, int fd, const struct dm_extent *e,
			    bool *same, const char *name, struct dm_err *err);

/* Sets *zero to whether [start, end) of fd reads as zeros, skipping holes. */
int dm_filedata_zero(struct dm_filedata_ctx *ctx, int fd, uint64_t start, uint64_t end,
		     bool *zero, const char *name, struct dm_err *err);

/* Makes ctx's read window at least need bytes (and at least its minimum). */
int dm_filedata_window(struct dm_filedata_ctx *ctx, size_t need, struct dm_err *err);

/* What capturing one file did. */
struct dm_capture_result {
	bool reflinked;        /* the copy shares the blocks (FICLONE) */
	uint64_t bytes_copied; /* otherwise, the bytes the copy took */
};

/*
 * Copies the regular file open on src (size bytes, as fstat said) to a new
 * file copy_name in the directory dirfd: a reflink where the file system
 * has them, else an in-kernel copy of its data regions that keeps holes
 * (capture.c). deadline_ns (monotonic; 0: none) is checked as the copy goes:
 * DM_ETIMEOUT past it. The copy is removed on any failure. name is for
 * messages only.
 */
int dm_capture_file(int src, uint64_t size, int dirfd, const char *copy_name,
		    int64_t deadline_ns, struct dm_capture_result *res, const char *name,
		    struct dm_err *err);

/* Reads file object id from the store and decodes it into out. */
int dm_filedata_load(struct dm_store *s, struct dm_filedata_ctx *ctx, struct dm_file *out,
		     const dm_oid *id, struct dm_err *err);

/*
 * Opens rel (a relative path of '/'-separated names) under the directory
 * rootfd without following any symlink and without leaving rootfd's file
 * system (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV,
 * or one O_NOFOLLOW openat per name on kernels without openat2). flags
 * are open flags; O_NOFOLLOW and O_CLOEXEC are added. The fd, or -1 with
 * errno (ELOOP or EXDEV for a symlink or a mount on the way).
 */
int dm_open_beneath(int rootfd, const char *rel, int flags);

/*
 * A directory fd shared by the jobs that work inside it: the last put
 * closes it. Lets a job open its file by name relative to the directory the
 * walk opened (no path resolution, nothing to race with) while the walk
 * moves on.
 */
struct dm_dirref;

/* Takes ownership of fd; one reference. */
struct dm_dirref *dm_dirref_new(int fd);
struct dm_dirref *dm_dirref_get(struct dm_dirref *d);
int dm_dirref_fd(const struct dm_dirref *d);
/* Accepts NULL. */
void dm_dirref_put(struct dm_dirref *d);

/*
 * A pool of threads that run file jobs, each thread with its own ctx. Jobs
 * are opaque pointers handed to fn in push order (any thread). One thread
 * pushes; pushed jobs are handed over in small batches (all of them by
 * finish), and push blocks while max_queued jobs wait, which bounds what
 * the producer holds open.
 * fn must not fail: it records its outcome in the job (and stops work of
 * its own accord once the producer says so through arg).
 */
typedef void (*dm_filepool_fn)(void *job, struct dm_filedata_ctx *ctx, void *arg);
struct dm_filepool;

/* threads <= 0: one per online CPU. */
int dm_filepool_threads(int threads);
int dm_filepool_start(struct dm_filepool **out, int threads, size_t max_queued,
		      dm_filepool_fn fn, void *arg, struct dm_err *err);
void dm_filepool_push(struct dm_filepool *p, void *job);
/* Waits until every pushed job has run, then stops the threads and frees p
 * (accepts NULL). */
void dm_filepool_finish(struct dm_filepool *p);

#endif
