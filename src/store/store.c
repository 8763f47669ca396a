/*
 * store.c - the content-addressed object store: packs, the LMDB index, and
 * the core put, get and flush (store.h; the state is in internal.h).
 *
 * Invariants:
 *   - Every object in `pending` has its record fully written to a pack at
 *     its location; pending holds exactly the objects written since the
 *     last flush. The index never points past a pack's committed length.
 *   - The index commit happens only after the packs it refers to were
 *     fsynced, so after a crash every indexed object is readable; bytes past
 *     a pack's committed length belong to no indexed object and are cut off
 *     at the next open. Packs the index does not know are removed at open.
 *   - An object is appended to a staging pack only through
 *     dm_store_put_stored_to with a dot (staging.c decides when); every
 *     other write goes to the current ordinary pack, which is never a
 *     staging pack.
 *   - Hashing and compression happen outside `mu`. A read that finds its
 *     pack gone (a staging pack dropped meanwhile) looks the object up
 *     again: it moved.
 *   - One process at a time: DIR/lock is held with flock while open.
 *   - A write never leaves less free space than the reserve (except the
 *     collector's), and after a failed sync no write or flush succeeds
 *     (`failed` says why) until the store is opened again.
 */
#include "store/store.h"
#include "metrics/catalog.h"
#include "store/index.h"
#include "store/internal.h"
#include "store/oidmap.h"
#include "store/pack.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zstd.h>

#include "util/banned.h"

#define AUTO_FLUSH_BYTES (256ull << 20)
#define SPACE_CHECK_BYTES (8ull << 20)
#define RESERVE_MIN       (16ull << 20)
#define RESERVE_MAX       (1ull << 30)
#define MAX_PACKS        (1u << 24)

/* zstd contexts, one pair per thread, freed when the thread exits. */
struct zctx {
	ZSTD_CCtx *c;
	ZSTD_DCtx *d;
};

static pthread_key_t zctx_key;
static pthread_once_t zctx_once = PTHREAD_ONCE_INIT;

static void free_zctx(void *p)
{
	struct zctx *z = p;

	ZSTD_freeCCtx(z->c);
	ZSTD_freeDCtx(z->d);
	free(z);
}

static void make_zctx_key(void)
{
	pthread_key_create(&zctx_key, free_zctx);
}

static struct zctx *thread_zctx(void)
{
	struct zctx *z;

	pthread_once(&zctx_once, make_zctx_key);
	z = pthread_getspecific(zctx_key);
	if (!z) {
		z = calloc(1, sizeof(*z));
		if (z && pthread_setspecific(zctx_key, z)) {
			free(z);
			z = NULL;
		}
	}
	return z;
}

/* NULL when out of memory: callers fall back to the context-free calls. */
static ZSTD_CCtx *thread_cctx(void)
{
	struct zctx *z = thread_zctx();

	if (z && !z->c)
		z->c = ZSTD_createCCtx();
	return z ? z->c : NULL;
}

static ZSTD_DCtx *thread_dctx(void)
{
	struct zctx *z = thread_zctx();

	if (z && !z->d)
		z->d = ZSTD_createDCtx();
	return z ? z->d : NULL;
}

void dm_store_opts_default(struct dm_store_opts *out)
{
	memset(out, 0, sizeof(*out));
	dm_chunker_params_default(&out->chunk);
	out->pack_size = 64ull << 20;
	out->zstd_level = 3;
	out->sync = true;
}

const struct dm_chunker_params *dm_store_chunker(const struct dm_store *s)
{
	return &s->opts.chunk;
}

int dm_store_pack_path(char *out, size_t size, const struct dm_store *s, uint32_t pack)
{
	if (snprintf(out, size, "%s/packs/pack-%08u.pack", s->dir, pack) >= (int)size)
		return -1;
	return 0;
}

static int parse_pack_name(const char *name, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (strncmp(name, "pack-", 5) != 0)
		return -1;
	errno = 0;
	v = strtoul(name + 5, &end, 10);
	if (errno || end != name + 13 || strcmp(end, ".pack") != 0 || v == 0 || v >= MAX_PACKS)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int load_chunker(struct dm_store *s, struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	unsigned char v[12];
	int rc = dm_index_meta_get(s->idx, "chunker", &b, err);

	if (rc == DM_ENOTFOUND) {
		rc = dm_chunker_params_check(&s->opts.chunk, err);
		if (rc)
			goto done;
		for (int i = 0; i < 4; i++) {
			v[i] = (unsigned char)(s->opts.chunk.min >> (8 * i));
			v[4 + i] = (unsigned char)(s->opts.chunk.avg >> (8 * i));
			v[8 + i] = (unsigned char)(s->opts.chunk.max >> (8 * i));
		}
		rc = dm_index_meta_put(s->idx, "chunker", v, sizeof(v), err);
		goto done;
	}
	if (rc)
		goto done;
	if (b.len != sizeof(v)) {
		rc = dm_err_set(err, DM_ECORRUPT, "store '%s': corrupt chunker settings", s->dir);
		goto done;
	}
	s->opts.chunk.min = s->opts.chunk.avg = s->opts.chunk.max = 0;
	for (int i = 3; i >= 0; i--) {
		s->opts.chunk.min = s->opts.chunk.min << 8 | b.data[i];
		s->opts.chunk.avg = s->opts.chunk.avg << 8 | b.data[4 + i];
		s->opts.chunk.max = s->opts.chunk.max << 8 | b.data[8 + i];
	}
	rc = dm_chunker_params_check(&s->opts.chunk, err);
done:
	dm_buf_release(&b);
	return rc;
}

const struct dm_pack_len *dm_store_find_len(const struct dm_pack_len *lens, size_t n, uint32_t pack)
{
	for (size_t i = 0; i < n; i++)
		if (lens[i].pack == pack)
			return &lens[i];
	return NULL;
}

/*
 * Brings the packs in line with the index after a crash: cuts each pack
 * back to its committed length and removes packs the index never heard of.
 * Leaves the highest committed ordinary pack open for appending when it is
 * the highest of all and has room (staging packs are never appended to
 * again: a new transfer starts its own).
 */
static int recover_packs(struct dm_store *s, struct dm_err *err)
{
	struct dm_pack_len *lens = NULL;
	size_t nlens = 0;
	char dir[PATH_MAX], path[PATH_MAX];
	DIR *d = NULL;
	struct dirent *de;
	int rc;

	rc = dm_index_pack_lengths(s->idx, &lens, &nlens, err);
	if (rc)
		return rc;
	snprintf(dir, sizeof(dir), "%s/packs", s->dir);
	d = opendir(dir);
	if (!d) {
		rc = dm_err_errno(err, errno, "cannot read '%s'", dir);
		goto done;
	}
	while ((de = readdir(d))) {
		const struct dm_pack_len *len;
		struct stat st;
		uint32_t no;

		if (de->d_name[0] == '.' || parse_pack_name(de->d_name, &no))
			continue;
		dm_store_pack_path(path, sizeof(path), s, no);
		len = dm_store_find_len(lens, nlens, no);
		if (!len) {
			dm_warn("store: removing pack '%s' written after the last flush", path);
			if (unlink(path) < 0) {
				rc = dm_err_errno(err, errno, "cannot remove '%s'", path);
				goto done;
			}
			continue;
		}
		if (stat(path, &st) < 0) {
			rc = dm_err_errno(err, errno, "cannot stat '%s'", path);
			goto done;
		}
		if ((uint64_t)st.st_size > len->len) {
			dm_warn("store: cutting %llu unflushed bytes from '%s'",
				(unsigned long long)((uint64_t)st.st_size - len->len), path);
			if (truncate(path, (off_t)len->len) < 0) {
				rc = dm_err_errno(err, errno, "cannot truncate '%s'", path);
				goto done;
			}
		} else if ((uint64_t)st.st_size < len->len) {
			dm_error("store: pack '%s' is shorter than the index says (%llu < %llu); "
				 "run verify",
				 path, (unsigned long long)st.st_size,
				 (unsigned long long)len->len);
		}
	}
	if (nlens)
		s->last_pack = lens[nlens - 1].pack;
	if (nlens && lens[nlens - 1].len < s->opts.pack_size &&
	    !dm_store_find_staged(s, s->last_pack)) {
		dm_store_pack_path(path, sizeof(path), s, s->last_pack);
		rc = dm_pack_open(&s->cur.fd, path, O_RDWR, err);
		if (rc)
			goto done;
		s->cur.pack = s->last_pack;
		s->cur.end = lens[nlens - 1].len;
	}
done:
	if (d)
		closedir(d);
	free(lens);
	return rc;
}

const char *dm_store_dir(const struct dm_store *s)
{
	return s->dir;
}

int dm_store_open(struct dm_store **out, const char *dir, const struct dm_store_opts *opts,
		  struct dm_err *err)
{
	struct dm_store *s = dm_xcalloc(1, sizeof(*s));
	char path[PATH_MAX];
	int rc;

	s->dir = dm_xstrdup(dir);
	s->lock_fd = -1;
	s->cur.fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_rwlock_init(&s->packs_rw, NULL);
	dm_oidmap_init(&s->pending, sizeof(struct dm_loc));
	dm_store_guard_init(s);
	dm_buf_init(&s->ext_paths, 0);
	if (opts)
		s->opts = *opts;
	else
		dm_store_opts_default(&s->opts);
	if (s->opts.zstd_level < 1 || s->opts.zstd_level > 19)
		s->opts.zstd_level = 3;
	if (s->opts.pack_size < (1u << 20))
		s->opts.pack_size = 1u << 20;

	if (snprintf(path, sizeof(path), "%s/packs", dir) >= (int)sizeof(path)) {
		rc = dm_err_set(err, DM_ETOOBIG, "store path too long: '%s'", dir);
		goto fail;
	}
	rc = dm_mkdir_p(path, 0755, err);
	if (rc)
		goto fail;
	snprintf(path, sizeof(path), "%s/lock", dir);
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (s->lock_fd < 0) {
		rc = dm_err_errno(err, errno, "cannot open '%s'", path);
		goto fail;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK
			     ? dm_err_set(err, DM_EBUSY, "store '%s' is in use by another process",
					  dir)
			     : dm_err_errno(err, errno, "cannot lock '%s'", path);
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/index", dir);
	rc = dm_index_open(&s->idx, path, s->opts.sync, err);
	if (rc)
		goto fail;
	rc = load_chunker(s, err);
	if (rc)
		goto fail;
	rc = dm_store_load_staged(s, err);
	if (rc)
		goto fail;
	rc = recover_packs(s, err);
	if (rc)
		goto fail;
	*out = s;
	return 0;
fail:
	dm_store_free(s);
	return rc;
}

/* Opens a new pack for appending through w (closing the one w had);
 * caller holds mu. */
static int start_pack(struct dm_store *s, struct writer *w, struct dm_err *err)
{
	char path[PATH_MAX];
	uint32_t next;
	int rc;

	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
		w->pack = 0;
	}
	next = s->last_pack + 1;
	if (next >= MAX_PACKS)
		return dm_err_set(err, DM_ETOOBIG, "store '%s' has too many packs", s->dir);
	dm_store_pack_path(path, sizeof(path), s, next);
	rc = dm_pack_create(&w->fd, path, err);
	if (rc)
		return rc;
	w->pack = next;
	s->last_pack = next;
	w->end = DM_PACK_HDR_LEN;
	return 0;
}

static void mark_dirty(struct dm_store *s, const struct writer *w)
{
	for (size_t i = 0; i < s->ndirty; i++) {
		if (s->dirty[i].pack == w->pack) {
			s->dirty[i].len = w->end;
			return;
		}
	}
	s->dirty = dm_xrealloc(s->dirty, (s->ndirty + 1) * sizeof(*s->dirty));
	s->dirty[s->ndirty].pack = w->pack;
	s->dirty[s->ndirty].len = w->end;
	s->ndirty++;
}

int dm_store_lookup(struct dm_store *s, const dm_oid *id, struct dm_loc *out,
		    struct dm_buf *path_out, struct dm_err *err)
{
	struct dm_loc *p;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	dm_store_guard_looked(s, id);
	p = dm_oidmap_get(&s->pending, id);
	if (p) {
		*out = *p;
		if (p->where == DM_LOC_EXTERNAL && path_out &&
		    dm_buf_adds(path_out, (const char *)s->ext_paths.data + p->pack))
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	pthread_mutex_unlock(&s->mu);
	if (p)
		return rc;
	rc = dm_index_get(s->idx, id, out, path_out, err);
	if (rc || __atomic_load_n(&s->gc.phase, __ATOMIC_ACQUIRE) != DM_GC_SWEEP)
		return rc;
	/* the collector condemned it: absent, so that whoever asks stores it again */
	pthread_mutex_lock(&s->mu);
	if (dm_store_guard_condemned(s, id, out))
		rc = DM_ENOTFOUND;
	pthread_mutex_unlock(&s->mu);
	if (rc)
		rc = dm_err_set(err, rc, "object not found");
	return rc;
}

int dm_store_has(struct dm_store *s, const dm_oid *id)
{
	struct dm_loc loc;

	return dm_store_lookup(s, id, &loc, NULL, NULL) == 0;
}

int dm_store_has_whole(struct dm_store *s, const dm_oid *id)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_commit c;
	struct dm_loc loc;
	int kind = 0, whole;

	if (dm_store_lookup(s, id, &loc, NULL, NULL))
		return 0;
	if (loc.kind != DM_OBJ_COMMIT)
		return 1;
	whole = dm_store_get(s, id, &b, &kind, NULL) == 0 &&
		dm_commit_decode(&c, b.data, b.len, NULL) == 0;
	if (whole) {
		whole = dm_store_has(s, &c.tree);
		dm_commit_release(&c);
	}
	dm_buf_release(&b);
	return whole;
}

int dm_store_stat(struct dm_store *s, const dm_oid *id, int *kind_out, uint64_t *len_out,
		  struct dm_err *err)
{
	struct dm_loc loc;
	int rc = dm_store_lookup(s, id, &loc, NULL, err);

	if (rc)
		return rc;
	if (kind_out)
		*kind_out = loc.kind;
	if (len_out)
		*len_out = loc.raw_len;
	return 0;
}

static double mib(uint64_t b)
{
	return (double)b / (1024.0 * 1024.0);
}

/* Refuses a write of need bytes that would leave less free space than the
 * reserve (store.h, "Full disks"); the collector may use the reserve.
 * Caller holds mu. */
static int check_space(struct dm_store *s, uint64_t need, struct dm_err *err)
{
	struct statvfs st;
	bool fresh = false;

	if (s->opts.reserve < 0)
		return 0;
again:
	if (!s->space_known || s->space_checked >= SPACE_CHECK_BYTES) {
		uint64_t size;

		if (statvfs(s->dir, &st) < 0)
			return 0; /* unknown: the write itself will tell */
		size = (uint64_t)st.f_blocks * st.f_frsize;
		s->space_free = (uint64_t)st.f_bavail * st.f_frsize;
		s->space_reserve = (uint64_t)s->opts.reserve;
		if (!s->opts.reserve) {
			s->space_reserve = size / 50;
			if (s->space_reserve < RESERVE_MIN)
				s->space_reserve = RESERVE_MIN;
			if (s->space_reserve > RESERVE_MAX)
				s->space_reserve = RESERVE_MAX;
		}
		s->space_known = true;
		s->space_checked = 0;
		fresh = true;
	}
	if (dm_store_guard_is_collector(s) || s->space_free >= s->space_reserve + need)
		return 0;
	/* what was counted down since the last look may be stale (space freed
	 * meanwhile): look again before refusing, and after every refusal */
	s->space_known = false;
	if (!fresh)
		goto again;
	return dm_err_set(err, DM_ENOSPC,
			  "no space: the file system of store '%s' has %.1f MiB free, and dmd "
			  "keeps %.1f MiB of it in reserve so that deletes and dm gc can run; "
			  "free some (dm dot delete, dm gc)",
			  s->dir, mib(s->space_free), mib(s->space_reserve));
}

/* Appends one record through w, a staging writer of dot stage_dot when
 * that is not NULL; caller holds mu. */
static int append(struct dm_store *s, struct writer *w, const char *stage_dot,
		  const struct dm_pack_rec *rec, const void *bytes, struct dm_err *err)
{
	unsigned char hdr[DM_PACK_REC_LEN];
	struct iovec iov[2];
	struct dm_loc loc;
	uint64_t need = DM_PACK_REC_LEN + (uint64_t)rec->stored_len;
	ssize_t n;
	int rc;

	if (s->failed[0])
		return dm_err_set(err, DM_EIO, "%s", s->failed);
	rc = check_space(s, need, err);
	if (rc)
		return rc;
	if (w->fd < 0 || (w->end > DM_PACK_HDR_LEN && w->end + need > s->opts.pack_size)) {
		rc = start_pack(s, w, err);
		if (rc)
			return rc;
		if (stage_dot)
			dm_store_add_staged_pack(s, w->pack, stage_dot);
	}
	dm_pack_rec_encode(hdr, rec);
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)(uintptr_t)bytes;
	iov[1].iov_len = rec->stored_len;
	do
		n = pwritev(w->fd, iov, 2, (off_t)w->end);
	while (n < 0 && errno == EINTR);
	if (n >= 0 && (uint64_t)n != need) {
		/* short write: finish it the slow way */
		if (dm_pwrite_all(w->fd, hdr, sizeof(hdr), (off_t)w->end) < 0 ||
		    dm_pwrite_all(w->fd, bytes, rec->stored_len, (off_t)(w->end + sizeof(hdr))) < 0)
			n = -1;
	}
	if (n < 0 && (errno == ENOSPC || errno == EDQUOT))
		return dm_err_errno(err, errno,
				    "no space: cannot write %llu bytes to pack %u of store '%s' "
				    "(its file system has %.1f MiB free)",
				    (unsigned long long)need, w->pack, s->dir,
				    mib(s->space_free));
	if (n < 0)
		return dm_err_errno(err, errno, "cannot write to pack %u of store '%s'", w->pack,
				    s->dir);
	loc.kind = rec->kind;
	loc.where = DM_LOC_PACK;
	loc.flags = rec->flags;
	loc.raw_len = rec->raw_len;
	loc.stored_len = rec->stored_len;
	loc.pack = w->pack;
	loc.offset = w->end;
	dm_oidmap_put(&s->pending, &rec->id, &loc);
	dm_store_guard_wrote(s, &rec->id);
	w->end += need;
	s->unflushed += need;
	s->space_checked += need;
	s->space_free = s->space_free > need ? s->space_free - need : 0;
	mark_dirty(s, w);
	return 0;
}

int dm_store_evacuate_pack(struct dm_store *s, uint32_t pack, uint64_t len,
			   struct dm_evacuated *out, struct dm_err *err)
{
	struct dm_buf bytes = DM_BUF_INIT;
	uint64_t off = DM_PACK_HDR_LEN;
	int fd = -1, rc;
	char path[PATH_MAX];

	memset(out, 0, sizeof(*out));
	dm_store_pack_path(path, sizeof(path), s, pack);
	rc = dm_pack_open(&fd, path, O_RDONLY, err);
	/* a sparse pack is mostly dead records: only their headers are read */
	if (!rc)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
	while (!rc && off < len) {
		struct dm_pack_rec rec;
		struct dm_loc loc;

		rc = dm_pack_read_header(fd, off, &rec, err);
		if (rc)
			break;
		if (dm_store_lookup(s, &rec.id, &loc, NULL, NULL) == 0 &&
		    loc.where == DM_LOC_PACK && loc.pack == pack && loc.offset == off) {
			rc = dm_pack_read(fd, off, &rec, &bytes, err);
			if (!rc)
				rc = dm_store_append_record(s, &rec, bytes.data, NULL, err);
			out->records++;
			out->raw_bytes += rec.raw_len;
			out->stored_bytes += DM_PACK_REC_LEN + (uint64_t)rec.stored_len;
		}
		off += DM_PACK_REC_LEN + (uint64_t)rec.stored_len;
	}
	if (fd >= 0)
		close(fd);
	dm_buf_release(&bytes);
	return rc;
}

int dm_store_append_record(struct dm_store *s, const struct dm_pack_rec *rec, const void *bytes,
			   const char *stage_dot, struct dm_err *err)
{
	bool flush;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	if (!dm_oidmap_get(&s->pending, &rec->id))
		rc = append(s, stage_dot ? dm_store_stage_writer(s, stage_dot) : &s->cur, stage_dot,
			    rec, bytes, err);
	flush = s->unflushed >= AUTO_FLUSH_BYTES;
	pthread_mutex_unlock(&s->mu);
	if (!rc && flush)
		rc = dm_store_flush(s, err);
	return rc;
}

int dm_store_put_hashed(struct dm_store *s, const dm_oid *id, enum dm_obj_kind kind,
			const void *data, size_t len, struct dm_err *err)
{
	if (kind < DM_OBJ_CHUNK || kind > DM_OBJ_COMMIT)
		return dm_err_set(err, DM_EINVAL, "unknown object kind %d", (int)kind);
	if (len > dm_pack_max_raw(kind))
		return dm_err_set(err, DM_ETOOBIG, "%s of %zu bytes is over the limit",
				  dm_obj_kind_name(kind), len);
	if (dm_store_has(s, id)) {
		dm_metric_add(&dm_m_store_put_bytes, "duplicate", NULL, (int64_t)len);
		return 0;
	}
	dm_metric_add(&dm_m_store_put_bytes, "new", NULL, (int64_t)len);
	return dm_store_write_record(s, id, kind, data, len, err);
}

int dm_store_write_record(struct dm_store *s, const dm_oid *id, enum dm_obj_kind kind,
			  const void *data, size_t len, struct dm_err *err)
{
	struct dm_pack_rec rec;
	void *zbuf = NULL;
	const void *bytes = data;
	int rc = 0;

	rec.kind = (uint8_t)kind;
	rec.flags = 0;
	rec.raw_len = (uint32_t)len;
	rec.stored_len = (uint32_t)len;
	rec.id = *id;
	if (len >= 64) {
		ZSTD_CCtx *cctx = thread_cctx();
		size_t bound = ZSTD_compressBound(len), z;

		zbuf = dm_xmalloc(bound);
		z = cctx ? ZSTD_compressCCtx(cctx, zbuf, bound, data, len, s->opts.zstd_level)
			 : ZSTD_compress(zbuf, bound, data, len, s->opts.zstd_level);
		/* keep the compressed form only when it saves at least 1/64 */
		if (!ZSTD_isError(z) && z < len - len / 64) {
			rec.flags = DM_PACK_F_ZSTD;
			rec.stored_len = (uint32_t)z;
			bytes = zbuf;
		}
	}

	rc = dm_store_append_record(s, &rec, bytes, NULL, err);
	free(zbuf);
	return rc;
}

int dm_store_put(struct dm_store *s, dm_oid *out, enum dm_obj_kind kind, const void *data,
		 size_t len, struct dm_err *err)
{
	dm_oid id;

	dm_hash(&id, data, len);
	if (out)
		*out = id;
	return dm_store_put_hashed(s, &id, kind, data, len, err);
}

/* A read descriptor for pack no, opened on first use. */
static int read_fd(struct dm_store *s, uint32_t pack, struct dm_err *err)
{
	char path[PATH_MAX];
	int fd = -1, rc = 0;

	pthread_mutex_lock(&s->mu);
	if (pack >= MAX_PACKS) {
		rc = dm_err_set(err, DM_ECORRUPT, "store index names pack %u", pack);
		goto done;
	}
	if (pack >= s->nread_fds) {
		size_t n = (size_t)pack + 16;

		s->read_fds = dm_xrealloc(s->read_fds, n * sizeof(int));
		for (size_t i = s->nread_fds; i < n; i++)
			s->read_fds[i] = -1;
		s->nread_fds = n;
	}
	fd = s->read_fds[pack];
	if (fd < 0) {
		dm_store_pack_path(path, sizeof(path), s, pack);
		rc = dm_pack_open(&fd, path, O_RDONLY, err);
		if (!rc)
			s->read_fds[pack] = fd;
	}
done:
	pthread_mutex_unlock(&s->mu);
	return rc ? rc : fd;
}

/*
 * Reads the record of object id at pack location loc: appends its header
 * and stored bytes to out, and decodes the header into rec, which must
 * match loc.
 */
static int read_pack_rec(struct dm_store *s, const dm_oid *id, const struct dm_loc *loc,
			 struct dm_pack_rec *rec, struct dm_buf *out, struct dm_err *err)
{
	char hex[DM_OID_HEXSZ + 1];
	size_t start = out->len;
	int fd, rc = 0;

	if (dm_buf_grow(out, DM_PACK_REC_LEN + (size_t)loc->stored_len))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	pthread_rwlock_rdlock(&s->packs_rw);
	fd = read_fd(s, loc->pack, err);
	if (fd < 0) {
		rc = fd;
	} else if (dm_pread_all(fd, out->data + start, DM_PACK_REC_LEN + (size_t)loc->stored_len,
				(off_t)loc->offset) < 0) {
		dm_oid_hex(hex, id);
		rc = dm_err_set(err, DM_ECORRUPT, "object %s: cannot read pack %u at %llu: %s", hex,
				loc->pack, (unsigned long long)loc->offset,
				errno == EIO ? "pack is truncated" : strerror(errno));
	}
	pthread_rwlock_unlock(&s->packs_rw);
	if (!rc)
		rc = dm_pack_rec_decode(rec, out->data + start, err);
	if (!rc && (dm_oid_cmp(&rec->id, id) || rec->raw_len != loc->raw_len ||
		    rec->stored_len != loc->stored_len || rec->kind != loc->kind)) {
		dm_oid_hex(hex, id);
		rc = dm_err_set(err, DM_ECORRUPT,
				"object %s: pack %u record at %llu does not match the index", hex,
				loc->pack, (unsigned long long)loc->offset);
	}
	if (!rc)
		out->len = start + DM_PACK_REC_LEN + loc->stored_len;
	return rc;
}

/*
 * Looks object id up and reads it in its stored form, appended to out:
 * a header slot and the stored bytes for a pack object, the raw bytes for
 * an external one. A pack read that fails because the object moved
 * meanwhile (a staging pack dropped) is tried again at its new place.
 */
static int read_stored(struct dm_store *s, const dm_oid *id, struct dm_loc *loc,
		       struct dm_pack_rec *rec, struct dm_buf *out, struct dm_err *err)
{
	struct dm_buf path = DM_BUF_INIT;
	char hex[DM_OID_HEXSZ + 1];
	size_t start = out->len;
	int rc;

	for (int tries = 0;; tries++) {
		struct dm_loc again;

		dm_buf_reset(&path);
		rc = dm_store_lookup(s, id, loc, &path, err);
		if (rc == DM_ENOTFOUND) {
			dm_oid_hex(hex, id);
			rc = dm_err_set(err, rc, "object %s not found", hex);
		}
		if (rc)
			break;
		if (loc->where == DM_LOC_EXTERNAL) {
			rc = dm_store_read_external(s, (const char *)path.data, loc, out, err);
			break;
		}
		rc = read_pack_rec(s, id, loc, rec, out, err);
		if (!rc || tries)
			break;
		out->len = start;
		dm_buf_reset(&path);
		if (dm_store_lookup(s, id, &again, &path, NULL) ||
		    (again.where == loc->where && again.pack == loc->pack &&
		     again.offset == loc->offset))
			break;
	}
	if (rc)
		out->len = start;
	dm_buf_release(&path);
	return rc;
}

int dm_store_get(struct dm_store *s, const dm_oid *id, struct dm_buf *out, int *kind_out,
		 struct dm_err *err)
{
	struct dm_buf stored = DM_BUF_INIT;
	struct dm_pack_rec rec;
	struct dm_loc loc;
	char hex[DM_OID_HEXSZ + 1];
	size_t start = out->len;
	dm_oid got;
	int rc;

	dm_oid_hex(hex, id);
	rc = read_stored(s, id, &loc, &rec, &stored, err);
	if (rc)
		goto done;
	if (loc.where == DM_LOC_EXTERNAL) {
		if (dm_buf_add(out, stored.data, stored.len)) {
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
			goto done;
		}
	} else {
		const unsigned char *bytes = stored.data + DM_PACK_REC_LEN;

		if (dm_buf_grow(out, rec.raw_len)) {
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
			goto done;
		}
		if (rec.flags & DM_PACK_F_ZSTD) {
			size_t z = ZSTD_decompress(out->data + out->len, rec.raw_len, bytes,
						   rec.stored_len);

			if (ZSTD_isError(z) || z != rec.raw_len) {
				rc = dm_err_set(
					err, DM_ECORRUPT, "object %s: cannot decompress: %s", hex,
					ZSTD_isError(z) ? ZSTD_getErrorName(z) : "wrong size");
				goto done;
			}
		} else {
			memcpy(out->data + out->len, bytes, rec.raw_len);
		}
		out->len += rec.raw_len;
	}
	if (out->data)
		out->data[out->len] = '\0';
	dm_hash(&got, out->data + start, out->len - start);
	if (dm_oid_cmp(&got, id)) {
		rc = dm_err_set(err, DM_ECORRUPT, "object %s: content does not match its id", hex);
		goto done;
	}
	if (kind_out)
		*kind_out = loc.kind;
done:
	if (rc) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	dm_buf_release(&stored);
	return rc;
}

int dm_store_get_stored(struct dm_store *s, const dm_oid *id, struct dm_pack_rec *rec,
			struct dm_buf *out, struct dm_err *err)
{
	struct dm_loc loc;
	size_t start = out->len;
	int rc = read_stored(s, id, &loc, rec, out, err);

	if (rc)
		goto done;
	if (loc.where == DM_LOC_EXTERNAL) {
		rec->kind = loc.kind;
		rec->flags = 0;
		rec->raw_len = loc.raw_len;
		rec->stored_len = loc.raw_len;
		rec->id = *id;
	} else {
		memmove(out->data + start, out->data + start + DM_PACK_REC_LEN, loc.stored_len);
		out->len = start + loc.stored_len;
	}
	out->data[out->len] = '\0';
done:
	if (rc) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	return rc;
}

int dm_store_put_stored_to(struct dm_store *s, const struct dm_pack_rec *rec, const void *bytes,
			   const char *stage_dot, struct dm_err *err)
{
	unsigned char hdr[DM_PACK_REC_LEN];
	struct dm_pack_rec chk;
	char hex[DM_OID_HEXSZ + 1];
	unsigned char *raw = NULL;
	const void *data = bytes;
	dm_oid got;
	int rc;

	/* the same bounds as a record read from a pack */
	dm_pack_rec_encode(hdr, rec);
	rc = dm_pack_rec_decode(&chk, hdr, err);
	if (rc)
		return rc;
	if (dm_store_has(s, &rec->id))
		return 0;
	dm_oid_hex(hex, &rec->id);
	if (rec->flags & DM_PACK_F_ZSTD) {
		ZSTD_DCtx *dctx = thread_dctx();
		unsigned long long declared = ZSTD_getFrameContentSize(bytes, rec->stored_len);
		size_t z;

		if (declared == ZSTD_CONTENTSIZE_ERROR)
			return dm_err_set(err, DM_ECORRUPT, "object %s: not a zstd frame", hex);
		/* a frame that says it holds more than raw_len is refused unread */
		if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != rec->raw_len)
			return dm_err_set(err, DM_ECORRUPT,
					  "object %s: compressed frame holds %llu bytes, not %u",
					  hex, declared, rec->raw_len);
		raw = malloc(rec->raw_len ? rec->raw_len : 1);
		if (!raw)
			return dm_err_set(err, DM_ENOMEM, "out of memory");
		z = dctx ? ZSTD_decompressDCtx(dctx, raw, rec->raw_len, bytes, rec->stored_len)
			 : ZSTD_decompress(raw, rec->raw_len, bytes, rec->stored_len);
		if (ZSTD_isError(z) || z != rec->raw_len) {
			rc = dm_err_set(err, DM_ECORRUPT, "object %s: cannot decompress: %s", hex,
					ZSTD_isError(z) ? ZSTD_getErrorName(z) : "wrong size");
			goto done;
		}
		data = raw;
	}
	dm_hash(&got, data, rec->raw_len);
	if (dm_oid_cmp(&got, &rec->id)) {
		rc = dm_err_set(err, DM_ECORRUPT, "object %s: content does not match its id", hex);
		goto done;
	}
	rc = dm_store_append_record(s, rec, bytes, stage_dot, err);
done:
	free(raw);
	return rc;
}

int dm_store_put_stored(struct dm_store *s, const struct dm_pack_rec *rec, const void *bytes,
			struct dm_err *err)
{
	return dm_store_put_stored_to(s, rec, bytes, NULL, err);
}

/* The descriptor a writer holds open on pack, or -1; caller holds mu. */
static int writer_fd(const struct dm_store *s, uint32_t pack)
{
	if (s->cur.fd >= 0 && s->cur.pack == pack)
		return s->cur.fd;
	for (size_t i = 0; i < s->nstages; i++)
		if (s->stages[i].w.fd >= 0 && s->stages[i].w.pack == pack)
			return s->stages[i].w.fd;
	return -1;
}

int dm_store_space(struct dm_store *s, struct dm_store_space *out, struct dm_err *err)
{
	struct dm_pack_len *lens = NULL;
	struct statvfs st;
	size_t n = 0;
	int rc = dm_index_pack_lengths(s->idx, &lens, &n, err);

	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		out->packs++;
		out->pack_bytes += lens[i].len;
		if (dm_store_find_staged(s, lens[i].pack)) {
			out->staged_packs++;
			out->staged_bytes += lens[i].len;
		}
	}
	if (statvfs(s->dir, &st) == 0) {
		out->fs_size = (uint64_t)st.f_blocks * st.f_frsize;
		out->fs_free = (uint64_t)st.f_bavail * st.f_frsize;
		out->fs_id = (uint64_t)st.f_fsid;
		s->space_known = false; /* the next write looks again */
		check_space(s, 0, NULL);
	}
	out->reserve = s->opts.reserve < 0 ? 0 : s->space_reserve;
	pthread_mutex_unlock(&s->mu);
	free(lens);
	return 0;
}

static int sync_pack(struct dm_store *s, int fd)
{
	return s->opts.sync_fn ? s->opts.sync_fn(fd) : fdatasync(fd);
}

/* After a failed sync: the data may be lost with no way to tell, so the
 * store takes no more writes until it is opened again (store.h, "Full
 * disks"). what names what failed; caller holds mu. */
static int stop_writes(struct dm_store *s, int errnum, const char *what, struct dm_err *err)
{
	snprintf(s->failed, sizeof(s->failed),
		 "store '%s' accepts no more writes: %s failed (%s), so what was written "
		 "since the last sync may be lost; restart dmd, which goes back to what was "
		 "durable",
		 s->dir, what, strerror(errnum));
	dm_error("%s", s->failed);
	return dm_err_set(err, DM_EIO, "%s", s->failed);
}

int dm_store_flush(struct dm_store *s, struct dm_err *err)
{
	struct dm_index_entry *entries = NULL;
	struct dm_index_staged *staged = NULL;
	const dm_oid *id;
	void *val;
	size_t n = 0, nstaged = 0, it = 0;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	if (s->failed[0]) {
		rc = dm_err_set(err, DM_EIO, "%s", s->failed);
		goto done;
	}
	if (!s->ndirty && !s->pending.count)
		goto done;
	for (size_t i = 0; i < s->ndirty && s->opts.sync; i++) {
		char path[PATH_MAX];
		int fd = writer_fd(s, s->dirty[i].pack), own = -1;

		if (fd < 0) {
			dm_store_pack_path(path, sizeof(path), s, s->dirty[i].pack);
			fd = own = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				rc = dm_err_errno(err, errno, "cannot sync '%s'", path);
				goto done;
			}
		}
		if (sync_pack(s, fd) < 0) {
			char what[64];

			snprintf(what, sizeof(what), "syncing pack %u", s->dirty[i].pack);
			rc = stop_writes(s, errno, what, err);
			if (own >= 0)
				close(own);
			goto done;
		}
		if (own >= 0)
			close(own);
	}
	if (s->opts.sync) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/packs", s->dir);
		rc = dm_fsync_dir(path, err);
		if (rc) {
			stop_writes(s, EIO, "syncing the directory 'packs'", NULL);
			goto done;
		}
	}
	entries = dm_xmalloc((s->pending.count + 1) * sizeof(*entries));
	while (dm_oidmap_next(&s->pending, &it, &id, &val)) {
		entries[n].id = *id;
		memcpy(&entries[n].loc, val, sizeof(struct dm_loc));
		entries[n].path = NULL;
		if (entries[n].loc.where == DM_LOC_EXTERNAL) {
			entries[n].path = (const char *)s->ext_paths.data + entries[n].loc.pack;
			entries[n].loc.pack = 0;
		}
		n++;
	}
	staged = dm_xmalloc((s->nstaged + 1) * sizeof(*staged));
	for (size_t i = 0; i < s->nstaged; i++)
		if (!s->staged[i].recorded)
			staged[nstaged++] = s->staged[i].rec;
	rc = dm_index_commit(s->idx, entries, n, s->dirty, s->ndirty, staged, nstaged, err);
	if (rc)
		goto done;
	for (size_t i = 0; i < s->nstaged; i++)
		s->staged[i].recorded = true;
	dm_oidmap_clear(&s->pending);
	dm_buf_reset(&s->ext_paths);
	s->ext_last = 0;
	s->ndirty = 0;
	s->unflushed = 0;
done:
	pthread_mutex_unlock(&s->mu);
	free(entries);
	free(staged);
	return rc;
}

void dm_store_free(struct dm_store *s)
{
	struct dm_err err;

	if (!s)
		return;
	if (s->idx && dm_store_flush(s, &err))
		dm_error("store '%s': final flush failed: %s", s->dir, err.msg);
	if (s->cur.fd >= 0)
		close(s->cur.fd);
	for (size_t i = 0; i < s->nstages; i++)
		if (s->stages[i].w.fd >= 0)
			close(s->stages[i].w.fd);
	free(s->stages);
	free(s->staged);
	free(s->ext_root);
	for (size_t i = 0; i < s->nread_fds; i++)
		if (s->read_fds[i] >= 0)
			close(s->read_fds[i]);
	free(s->read_fds);
	free(s->dirty);
	dm_oidmap_release(&s->pending);
	dm_store_guard_release(s);
	dm_buf_release(&s->ext_paths);
	dm_index_free(s->idx);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	pthread_mutex_destroy(&s->mu);
	pthread_rwlock_destroy(&s->packs_rw);
	free(s->dir);
	free(s);
}

static int count_one(const dm_oid *id, const struct dm_loc *loc, void *ctx)
{
	struct dm_store_stats *st = ctx;

	st->objects[loc->kind]++;
	st->raw_bytes += loc->raw_len;
	if (loc->where == DM_LOC_PACK)
		st->stored_bytes += DM_PACK_REC_LEN + loc->stored_len;
	else
		st->external++;
	return 0;
}

int dm_store_stats(struct dm_store *s, struct dm_store_stats *out, struct dm_err *err)
{
	struct dm_pack_len *lens = NULL;
	size_t n = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = dm_store_flush(s, err);
	if (!rc)
		rc = dm_index_foreach(s->idx, count_one, out, err);
	if (!rc)
		rc = dm_index_pack_lengths(s->idx, &lens, &n, err);
	if (rc)
		return rc;
	out->packs = n;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		out->pack_bytes += lens[i].len;
		if (dm_store_find_staged(s, lens[i].pack)) {
			out->staged_packs++;
			out->staged_bytes += lens[i].len;
		}
	}
	pthread_mutex_unlock(&s->mu);
	free(lens);
	return 0;
}

struct each_ctx {
	dm_store_each_fn fn;
	void *ctx;
};

static int each_one(const dm_oid *id, const struct dm_loc *loc, void *ctx)
{
	struct each_ctx *e = ctx;

	return e->fn(id, loc->kind, loc->raw_len, e->ctx);
}

int dm_store_foreach(struct dm_store *s, dm_store_each_fn fn, void *ctx, struct dm_err *err)
{
	struct each_ctx e = {fn, ctx};
	int rc = dm_store_flush(s, err);

	return rc ? rc : dm_index_foreach(s->idx, each_one, &e, err);
}

int dm_store_commit_put(struct dm_store *s, const char *dot_id, const char *commit_id,
			const dm_oid *oid, struct dm_err *err)
{
	int rc = dm_store_flush(s, err);

	if (!rc)
		rc = dm_index_commit_put(s->idx, dot_id, commit_id, oid, err);
	__atomic_add_fetch(&s->commit_gen, 1, __ATOMIC_RELEASE);
	return rc;
}

uint64_t dm_store_commit_generation(struct dm_store *s)
{
	return __atomic_load_n(&s->commit_gen, __ATOMIC_ACQUIRE);
}

int dm_store_commit_get(struct dm_store *s, const char *dot_id, const char *commit_id, dm_oid *out,
			struct dm_err *err)
{
	return dm_index_commit_get(s->idx, dot_id, commit_id, out, NULL, err);
}

_Static_assert(DM_COMMIT_PRUNED == DM_INDEX_COMMIT_PRUNED &&
		       DM_COMMIT_DAMAGED == DM_INDEX_COMMIT_DAMAGED,
	       "store.h's commit flags are the index's");

int dm_store_commit_info(struct dm_store *s, const char *dot_id, const char *commit_id,
			 dm_oid *out, unsigned *flags, struct dm_err *err)
{
	dm_oid oid;

	return dm_index_commit_get(s->idx, dot_id, commit_id, out ? out : &oid, flags, err);
}

int dm_store_commit_mark(struct dm_store *s, const char *dot_id, const char *const *commits,
			 size_t n, unsigned flags, size_t *changed, struct dm_err *err)
{
	int rc = dm_index_commit_set_flags(s->idx, dot_id, commits, n, flags, changed, err);

	__atomic_add_fetch(&s->commit_gen, 1, __ATOMIC_RELEASE);
	return rc;
}

int dm_store_commit_find(struct dm_store *s, const char *dot_id, const char *prefix, size_t max,
			 char ***out, size_t *n, struct dm_err *err)
{
	return dm_index_commit_find(s->idx, dot_id, prefix, max, out, n, err);
}

int dm_store_commit_delete_dot(struct dm_store *s, const char *dot_id, struct dm_err *err)
{
	int rc = dm_index_commit_delete_dot(s->idx, dot_id, err);

	__atomic_add_fetch(&s->commit_gen, 1, __ATOMIC_RELEASE);
	return rc;
}

int dm_store_commit_forget(struct dm_store *s, const char *dot_id, const char *const *commits,
			   size_t n, struct dm_err *err)
{
	int rc = dm_index_commit_forget(s->idx, dot_id, commits, n, err);

	__atomic_add_fetch(&s->commit_gen, 1, __ATOMIC_RELEASE);
	return rc;
}

int dm_store_commit_foreach(struct dm_store *s, dm_store_commit_fn fn, void *ctx,
			    struct dm_err *err)
{
	return dm_index_commit_foreach(s->idx, fn, ctx, err);
}
