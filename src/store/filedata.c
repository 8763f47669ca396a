/*
 * filedata.c - a regular file's content as chunks in the store, and back.
 *
 * Storing walks the data regions of a file (SEEK_DATA/SEEK_HOLE; a file
 * whose blocks cover its size cannot have holes and is read as one region),
 * reads each region through one window buffer with large preads, cuts it
 * with the chunker, hashes and puts every chunk, and puts the file object.
 *
 * Invariants: the chunker is always given at least max bytes unless the
 * region ends inside the window, so cut points depend only on the content,
 * never on how it was read; extents are produced in offset order, never
 * overlap and lie inside the size that is stored; a region never spans a
 * hole, so a hole is always a gap between extents; a chunk never spans two
 * regions. Nothing here keeps state between calls except the caller's ctx.
 *
 * The pool: a ring of at most max_queued job pointers under one mutex,
 * filled by one producer in batches of POOL_BATCH (so a worker wakes once
 * per batch, not once per small file); "active" counts jobs queued or
 * running, and finish returns only once every batch is queued, active is
 * zero and every thread has been joined.
 */
#include "store/filedata.h"
#include "store/chunker.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/banned.h"

#define WINDOW_MIN (4u * 1024 * 1024)

void dm_filedata_ctx_init(struct dm_filedata_ctx *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	dm_buf_init(&ctx->enc, DM_OBJ_MAX_SIZE);
	dm_buf_init(&ctx->obj, 0);
}

void dm_filedata_ctx_release(struct dm_filedata_ctx *ctx)
{
	free(ctx->buf);
	ctx->buf = NULL;
	ctx->cap = 0;
	dm_buf_release(&ctx->enc);
	dm_buf_release(&ctx->obj);
}

int dm_filedata_window(struct dm_filedata_ctx *ctx, size_t need, struct dm_err *err)
{
	size_t cap = need < WINDOW_MIN ? WINDOW_MIN : need;
	unsigned char *p;

	if (ctx->cap >= cap)
		return 0;
	p = realloc(ctx->buf, cap);
	if (!p)
		return dm_err_set(err, DM_ENOMEM, "out of memory for a %zu-byte read buffer", cap);
	ctx->buf = p;
	ctx->cap = cap;
	return 0;
}

/* A growing list of extents. */
struct extlist {
	struct dm_extent *e;
	size_t n, alloc;
};

static int ext_add(struct extlist *l, uint64_t off, uint32_t len, const dm_oid *id,
		   struct dm_err *err)
{
	if (l->n == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 16;
		struct dm_extent *p = realloc(l->e, na * sizeof(*p));

		if (!p)
			return dm_err_set(err, DM_ENOMEM, "out of memory for file extents");
		l->e = p;
		l->alloc = na;
	}
	l->e[l->n].offset = off;
	l->e[l->n].len = len;
	l->e[l->n].id = *id;
	l->n++;
	return 0;
}

int dm_filedata_put_chunk(dm_oid *out, struct dm_store *s, const unsigned char *p, size_t len,
			  uint64_t off, const char *ext_path, struct dm_filedata_result *res,
			  struct dm_err *err)
{
	int rc;

	dm_hash(out, p, len);
	res->chunks++;
	if (dm_store_has(s, out) == 1)
		return 0;
	rc = ext_path ? dm_store_put_external_hashed(s, out, DM_OBJ_CHUNK, ext_path, off,
						     (uint32_t)len, err)
		      : dm_store_put_hashed(s, out, DM_OBJ_CHUNK, p, len, err);
	if (!rc)
		res->chunks_new++;
	return rc;
}

static int put_chunk(struct dm_store *s, struct extlist *l, uint64_t off, const unsigned char *p,
		     size_t len, const char *ext_path, struct dm_filedata_result *res,
		     struct dm_err *err)
{
	dm_oid id;
	int rc = dm_filedata_put_chunk(&id, s, p, len, off, ext_path, res, err);

	return rc ? rc : ext_add(l, off, (uint32_t)len, &id, err);
}

/*
 * Reads [start, end) of fd through the window and stores its chunks. Sets
 * *eof when the file ended before end (it shrank); *got is where it ended.
 */
static int store_region(struct dm_store *s, struct dm_filedata_ctx *ctx, int fd, uint64_t start,
			uint64_t end, struct extlist *l, struct dm_filedata_result *res,
			uint64_t *got, const char *name, const char *ext_path, struct dm_err *err)
{
	const struct dm_chunker_params *p = dm_store_chunker(s);
	uint64_t base = start; /* file offset of ctx->buf[0] */
	size_t have = 0;
	int rc;

	for (;;) {
		bool at_end;
		size_t pos = 0;

		/* Fill the window as far as the region goes. */
		while (have < ctx->cap && base + have < end) {
			uint64_t want = end - (base + have);
			ssize_t n;

			if (want > ctx->cap - have)
				want = ctx->cap - have;
			n = pread(fd, ctx->buf + have, (size_t)want, (off_t)(base + have));
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return dm_err_errno(err, errno, "cannot read '%s'", name);
			}
			if (n == 0) { /* the file shrank under us */
				end = base + have;
				res->changed = true;
				break;
			}
			have += (size_t)n;
			res->bytes_read += (uint64_t)n;
		}
		at_end = base + have >= end;
		while (pos < have && (at_end || have - pos >= p->max)) {
			size_t c = dm_chunker_cut(p, ctx->buf + pos, have - pos);

			rc = put_chunk(s, l, base + pos, ctx->buf + pos, c, ext_path, res, err);
			if (rc)
				return rc;
			pos += c;
		}
		if (at_end && pos == have)
			break;
		memmove(ctx->buf, ctx->buf + pos, have - pos);
		base += pos;
		have -= pos;
	}
	*got = end;
	return 0;
}

int dm_filedata_store(struct dm_store *s, struct dm_filedata_ctx *ctx, dm_oid *out, int fd,
		      uint64_t size, uint64_t blocks, const char *name, const char *ext_path,
		      struct dm_filedata_result *res, struct dm_err *err)
{
	struct extlist l = {NULL, 0, 0};
	struct dm_file f;
	uint64_t off = 0, stored = size;
	bool sparse = blocks * 512 < size;
	int rc;

	memset(res, 0, sizeof(*res));
	if (size > DM_FILE_MAX_SIZE)
		return dm_err_set(err, DM_ETOOBIG, "'%s' is too large to store", name);
	rc = dm_filedata_window(ctx, 2 * (size_t)dm_store_chunker(s)->max, err);
	if (rc)
		return rc;
	if (size > ctx->cap)
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (off < size) {
		uint64_t start = off, end = size, got = 0;

		if (sparse) {
			off_t d = lseek(fd, (off_t)off, SEEK_DATA);

			if (d < 0 && errno == ENXIO) /* only a hole remains */
				break;
			if (d < 0 && errno != EINVAL && errno != EOPNOTSUPP) {
				rc = dm_err_errno(err, errno, "cannot seek in '%s'", name);
				goto done;
			}
			if (d >= 0) {
				off_t h = lseek(fd, d, SEEK_HOLE);

				start = (uint64_t)d;
				if (h >= 0 && (uint64_t)h < size)
					end = (uint64_t)h;
			} else {
				sparse = false; /* the file system cannot tell */
			}
			if (start >= size)
				break;
		}
		rc = store_region(s, ctx, fd, start, end, &l, res, &got, name, ext_path, err);
		if (rc)
			goto done;
		if (got < end) { /* the file ended early: store what there was */
			stored = got;
			break;
		}
		off = end;
	}
	f.size = stored;
	f.n = l.n;
	f.ext = l.e;
	res->size = stored;
	rc = dm_filedata_put_file(out, s, ctx, &f, name, err);
done:
	free(l.e);
	return rc;
}

int dm_filedata_put_file(dm_oid *out, struct dm_store *s, struct dm_filedata_ctx *ctx,
			 const struct dm_file *f, const char *name, struct dm_err *err)
{
	int rc;

	dm_buf_reset(&ctx->enc);
	rc = dm_file_encode(&ctx->enc, f, err);
	if (rc) {
		dm_err_prefix(err, "cannot store '%s'", name);
		return rc;
	}
	return dm_store_put(s, out, DM_OBJ_FILE, ctx->enc.data, ctx->enc.len, err);
}

int dm_filedata_load(struct dm_store *s, struct dm_filedata_ctx *ctx, struct dm_file *out,
		     const dm_oid *id, struct dm_err *err)
{
	char hex[DM_OID_HEXSZ + 1];
	int kind = 0, rc;

	dm_buf_reset(&ctx->obj);
	rc = dm_store_get(s, id, &ctx->obj, &kind, err);
	if (rc)
		return rc;
	if (kind != DM_OBJ_FILE) {
		dm_oid_hex(hex, id);
		return dm_err_set(err, DM_ECORRUPT, "object %s is a %s, not a file", hex,
				  dm_obj_kind_name(kind));
	}
	return dm_file_decode(out, ctx->obj.data, ctx->obj.len, err);
}

int dm_filedata_get_chunk(struct dm_store *s, struct dm_filedata_ctx *ctx,
			  const struct dm_extent *e, const char *name, struct dm_err *err)
{
	char hex[DM_OID_HEXSZ + 1];
	int kind = 0;
	int rc;

	dm_buf_reset(&ctx->obj);
	rc = dm_store_get(s, &e->id, &ctx->obj, &kind, err);
	if (rc)
		return dm_err_prefix(err, "cannot write '%s'", name);
	if (kind != DM_OBJ_CHUNK || ctx->obj.len != e->len) {
		dm_oid_hex(hex, &e->id);
		return dm_err_set(err, DM_ECORRUPT, "cannot write '%s': chunk %s is not a %u-byte chunk",
				  name, hex, e->len);
	}
	return 0;
}

int dm_filedata_write_extent(struct dm_store *s, struct dm_filedata_ctx *ctx, int fd,
			     const struct dm_extent *e, const char *name, struct dm_err *err)
{
	int rc = dm_filedata_get_chunk(s, ctx, e, name, err);

	if (!rc && dm_pwrite_all(fd, ctx->obj.data, e->len, (off_t)e->offset) < 0)
		rc = dm_err_errno(err, errno, "cannot write '%s'", name);
	return rc;
}

int dm_filedata_write_over(struct dm_store *s, struct dm_filedata_ctx *ctx, int fd,
			   const struct dm_file *base, const struct dm_file *f, uint64_t *written,
			   const char *name, struct dm_err *err)
{
	uint64_t total = 0;
	size_t j = 0;
	int rc;

	for (size_t i = 0; i < f->n; i++) {
		const struct dm_extent *e = &f->ext[i];

		/* both lists are in offset order */
		while (base && j < base->n && base->ext[j].offset < e->offset)
			j++;
		if (base && j < base->n && base->ext[j].offset == e->offset &&
		    base->ext[j].len == e->len && !dm_oid_cmp(&base->ext[j].id, &e->id))
			continue; /* fd holds it already */
		rc = dm_filedata_write_extent(s, ctx, fd, e, name, err);
		if (rc)
			return rc;
		total += e->len;
	}
	if (ftruncate(fd, (off_t)f->size) < 0)
		return dm_err_errno(err, errno, "cannot set the size of '%s'", name);
	if (written)
		*written = total;
	return 0;
}

int dm_filedata_write(struct dm_store *s, struct dm_filedata_ctx *ctx, int fd,
		      const struct dm_file *f, uint64_t *written, const char *name,
		      struct dm_err *err)
{
	return dm_filedata_write_over(s, ctx, fd, NULL, f, written, name, err);
}

static bool all_zero(const unsigned char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

int dm_filedata_zero(struct dm_filedata_ctx *ctx, int fd, uint64_t start, uint64_t end,
		     bool *zero, const char *name, struct dm_err *err)
{
	uint64_t pos = start;
	int rc = dm_filedata_window(ctx, 0, err);

	*zero = true;
	if (rc)
		return rc;
	while (pos < end) {
		off_t d = lseek(fd, (off_t)pos, SEEK_DATA);
		uint64_t stop = end;

		if (d < 0 && errno == ENXIO)
			return 0;
		if (d >= 0) {
			off_t h;

			if ((uint64_t)d >= end)
				return 0;
			pos = (uint64_t)d;
			h = lseek(fd, d, SEEK_HOLE);
			if (h >= 0 && (uint64_t)h < end)
				stop = (uint64_t)h;
		}
		while (pos < stop) {
			size_t n = stop - pos > ctx->cap ? ctx->cap : (size_t)(stop - pos);

			if (dm_pread_all(fd, ctx->buf, n, (off_t)pos) < 0)
				return dm_err_errno(err, errno, "cannot read '%s'", name);
			if (!all_zero(ctx->buf, n)) {
				*zero = false;
				return 0;
			}
			pos += n;
		}
	}
	return 0;
}

int dm_filedata_extent_same(struct dm_filedata_ctx *ctx, int fd, const struct dm_extent *e,
			    bool *same, const char *name, struct dm_err *err)
{
	struct dm_hasher *h = NULL;
	dm_oid got;
	int rc = dm_filedata_window(ctx, 0, err);

	*same = false;
	if (rc)
		return rc;
	if (e->len <= ctx->cap) {
		if (dm_pread_all(fd, ctx->buf, e->len, (off_t)e->offset) < 0)
			return dm_err_errno(err, errno, "cannot read '%s'", name);
		dm_hash(&got, ctx->buf, e->len);
	} else {
		uint64_t o = e->offset, left = e->len;

		h = dm_hasher_new();
		while (left) {
			size_t n = left > ctx->cap ? ctx->cap : (size_t)left;

			if (dm_pread_all(fd, ctx->buf, n, (off_t)o) < 0) {
				dm_hasher_free(h);
				return dm_err_errno(err, errno, "cannot read '%s'", name);
			}
			dm_hasher_update(h, ctx->buf, n);
			o += n;
			left -= n;
		}
		dm_hasher_final(h, &got);
		dm_hasher_free(h);
	}
	*same = dm_oid_cmp(&got, &e->id) == 0;
	return 0;
}

int dm_filedata_check(struct dm_filedata_ctx *ctx, int fd, const struct dm_file *f, bool *same,
		      const char *name, struct dm_err *err)
{
	struct stat st;
	uint64_t pos = 0;
	bool zero;
	int rc = 0;

	*same = false;
	if (fstat(fd, &st) < 0)
		return dm_err_errno(err, errno, "cannot stat '%s'", name);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size)
		return 0;
	rc = dm_filedata_window(ctx, 0, err);
	if (rc)
		return rc;
	for (size_t i = 0; i <= f->n; i++) {
		uint64_t gap_end = i < f->n ? f->ext[i].offset : f->size;

		if (gap_end > pos) {
			rc = dm_filedata_zero(ctx, fd, pos, gap_end, &zero, name, err);
			if (rc || !zero)
				goto done;
		}
		if (i == f->n)
			break;
		rc = dm_filedata_extent_same(ctx, fd, &f->ext[i], &zero, name, err);
		if (rc || !zero)
			goto done;
		pos = f->ext[i].offset + f->ext[i].len;
	}
	*same = true;
done:
	return rc;
}

/* ---- opening beneath a directory ---- */

static int open_by_names(int rootfd, const char *rel, int flags)
{
	char buf[PATH_MAX];
	size_t len = strlen(rel);
	char *name = buf, *slash;
	struct stat root, st;
	int cur = rootfd, fd;

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, rel, len + 1);
	if (fstat(rootfd, &root) < 0)
		return -1;
	while ((slash = strchr(name, '/'))) {
		*slash = '\0';
		fd = openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_dev != root.st_dev)) {
			close(fd);
			fd = -1;
			errno = EXDEV;
		}
		if (cur != rootfd)
			close(cur);
		if (fd < 0)
			return -1;
		cur = fd;
		name = slash + 1;
	}
	fd = openat(cur, name, flags | O_NOFOLLOW | O_CLOEXEC);
	if (cur != rootfd) {
		int e = errno;

		close(cur);
		errno = e;
	}
	return fd;
}

int dm_open_beneath(int rootfd, const char *rel, int flags)
{
	static _Atomic int no_openat2;
	struct open_how how;
	int fd = -1;

	if (!no_openat2) {
		memset(&how, 0, sizeof(how));
		how.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC);
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV |
			      RESOLVE_NO_MAGICLINKS;
		for (int tries = 0; tries < 16; tries++) {
			fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
			if (fd >= 0 || errno != EAGAIN)
				break;
		}
		if (fd >= 0 || errno != ENOSYS)
			return fd;
		no_openat2 = 1;
	}
	return open_by_names(rootfd, rel, flags);
}

/* ---- shared directory fds ---- */

struct dm_dirref {
	int fd;
	atomic_int refs;
};

struct dm_dirref *dm_dirref_new(int fd)
{
	struct dm_dirref *d = dm_xmalloc(sizeof(*d));

	d->fd = fd;
	atomic_init(&d->refs, 1);
	return d;
}

struct dm_dirref *dm_dirref_get(struct dm_dirref *d)
{
	atomic_fetch_add(&d->refs, 1);
	return d;
}

int dm_dirref_fd(const struct dm_dirref *d)
{
	return d->fd;
}

void dm_dirref_put(struct dm_dirref *d)
{
	if (!d || atomic_fetch_sub(&d->refs, 1) != 1)
		return;
	close(d->fd);
	free(d);
}

/* ---- the pool ---- */

/* Jobs handed over at once: one wake-up per batch, not per job. */
#define POOL_BATCH 32

struct dm_filepool {
	pthread_mutex_t mu;
	pthread_cond_t work;  /* a job was queued, or stop */
	pthread_cond_t space; /* a job was taken */
	pthread_cond_t idle;  /* a job finished */
	void **ring;
	size_t cap, head, queued;
	size_t active; /* queued + running */
	int idle_workers;   /* waiting on work */
	bool producer_waits; /* waiting on space */
	bool finisher_waits; /* waiting on idle */
	bool stop;
	dm_filepool_fn fn;
	void *arg;
	int nthreads;
	pthread_t *threads;
	/* the producer's batch, not yet queued (producer only) */
	void *batch[POOL_BATCH];
	size_t nbatch;
};

int dm_filepool_threads(int threads)
{
	long n;

	if (threads > 0)
		return threads > 256 ? 256 : threads;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	return n > 64 ? 64 : (int)n;
}

static void *pool_main(void *p_)
{
	struct dm_filepool *p = p_;
	struct dm_filedata_ctx ctx;

	dm_filedata_ctx_init(&ctx);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		void *job;

		while (!p->queued && !p->stop) {
			p->idle_workers++;
			pthread_cond_wait(&p->work, &p->mu);
			p->idle_workers--;
		}
		if (!p->queued)
			break;
		job = p->ring[p->head];
		p->head = (p->head + 1) % p->cap;
		p->queued--;
		if (p->producer_waits && p->queued <= p->cap / 2)
			pthread_cond_signal(&p->space);
		pthread_mutex_unlock(&p->mu);
		p->fn(job, &ctx, p->arg);
		pthread_mutex_lock(&p->mu);
		if (--p->active == 0 && p->finisher_waits)
			pthread_cond_broadcast(&p->idle);
	}
	pthread_mutex_unlock(&p->mu);
	dm_filedata_ctx_release(&ctx);
	return NULL;
}

int dm_filepool_start(struct dm_filepool **out, int threads, size_t max_queued,
		      dm_filepool_fn fn, void *arg, struct dm_err *err)
{
	struct dm_filepool *p = dm_xcalloc(1, sizeof(*p));
	int n = dm_filepool_threads(threads), rc;

	*out = NULL;
	p->cap = max_queued ? max_queued : 1;
	p->ring = dm_xcalloc(p->cap, sizeof(*p->ring));
	p->fn = fn;
	p->arg = arg;
	p->threads = dm_xcalloc((size_t)n, sizeof(*p->threads));
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->space, NULL);
	pthread_cond_init(&p->idle, NULL);
	for (int i = 0; i < n; i++) {
		rc = pthread_create(&p->threads[i], NULL, pool_main, p);
		if (rc) {
			dm_filepool_finish(p);
			return dm_err_errno(err, rc, "cannot start a worker thread");
		}
		p->nthreads++;
	}
	*out = p;
	return 0;
}

/* Queues the producer's batch, waiting (for half the ring) while it is full. */
static void pool_flush(struct dm_filepool *p)
{
	size_t i = 0;

	if (!p->nbatch)
		return;
	pthread_mutex_lock(&p->mu);
	while (i < p->nbatch) {
		while (p->queued == p->cap) {
			if (p->idle_workers)
				pthread_cond_broadcast(&p->work);
			p->producer_waits = true;
			pthread_cond_wait(&p->space, &p->mu);
			p->producer_waits = false;
		}
		while (i < p->nbatch && p->queued < p->cap) {
			p->ring[(p->head + p->queued) % p->cap] = p->batch[i++];
			p->queued++;
			p->active++;
		}
	}
	if (p->idle_workers)
		pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	p->nbatch = 0;
}

void dm_filepool_push(struct dm_filepool *p, void *job)
{
	p->batch[p->nbatch++] = job;
	if (p->nbatch == POOL_BATCH)
		pool_flush(p);
}

void dm_filepool_finish(struct dm_filepool *p)
{
	if (!p)
		return;
	pool_flush(p);
	pthread_mutex_lock(&p->mu);
	while (p->active) {
		p->finisher_waits = true;
		pthread_cond_wait(&p->idle, &p->mu);
	}
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->space);
	pthread_cond_destroy(&p->idle);
	free(p->threads);
	free(p->ring);
	free(p);
}
