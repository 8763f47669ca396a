/*
 * store.c - the content-addressed object store: packs + LMDB index.
 *
 * Invariants (see store.h for the contract):
 *   - Every object in `pending` has its record fully written to a pack at
 *     its location; pending holds exactly the objects written since the
 *     last flush. The index never points past a pack's committed length.
 *   - The index commit happens only after the packs it refers to were
 *     fsynced, so after a crash every indexed object is readable; bytes past
 *     a pack's committed length belong to no indexed object and are cut off
 *     at the next open. Packs the index does not know are removed at open.
 *   - External objects (bytes of an immutable file the engine keeps) are
 *     pending like pack records until the flush: their pending location's
 *     `pack` is the offset of their path in ext_paths. The engine made the
 *     file durable before naming it (a btrfs snapshot is on disk once
 *     taken), so the flush writes them without syncing anything.
 *   - `mu` guards pending, ext_paths, the current pack, the dirty-pack list
 *     and the read-descriptor table. Hashing and compression happen
 *     outside it.
 *   - One process at a time: DIR/lock is held with flock while open.
 */
#include "store/store.h"
#include "store/index.h"
#include "store/oidmap.h"
#include "store/pack.h"
#include "store/reach.h"
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
#include <sys/uio.h>
#include <unistd.h>
#include <zstd.h>

#include "util/banned.h"

#define AUTO_FLUSH_BYTES (256ull << 20)
#define MAX_PACKS (1u << 24)

struct dm_store {
	char *dir;
	struct dm_store_opts opts;
	struct dm_index *idx;
	int lock_fd;

	pthread_mutex_t mu;
	struct dm_oidmap pending; /* id -> struct dm_loc */
	struct dm_buf ext_paths;  /* paths of pending external objects, each NUL-ended;
				   * their loc.pack is the offset of theirs */
	size_t ext_last;          /* offset of the last path added */
	uint32_t last_pack;       /* highest pack number in use; 0: none yet */
	uint32_t cur_pack;        /* 0: none open for appending */
	int cur_fd;
	uint64_t cur_end;
	struct dm_pack_len *dirty; /* packs appended to since the last flush */
	size_t ndirty;
	uint64_t unflushed;
	int *read_fds;             /* by pack number; -1 when not open */
	size_t nread_fds;
};

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
	dm_chunker_params_default(&out->chunk);
	out->pack_size = 64ull << 20;
	out->zstd_level = 3;
	out->sync = true;
}

const struct dm_chunker_params *dm_store_chunker(const struct dm_store *s)
{
	return &s->opts.chunk;
}

static int pack_path(char *out, size_t size, const struct dm_store *s, uint32_t pack)
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

static const struct dm_pack_len *find_len(const struct dm_pack_len *lens, size_t n, uint32_t pack)
{
	for (size_t i = 0; i < n; i++)
		if (lens[i].pack == pack)
			return &lens[i];
	return NULL;
}

/*
 * Brings the packs in line with the index after a crash: cuts each pack
 * back to its committed length and removes packs the index never heard of.
 * Leaves the highest committed pack open for appending when it has room.
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
		pack_path(path, sizeof(path), s, no);
		len = find_len(lens, nlens, no);
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
	if (nlens && lens[nlens - 1].len < s->opts.pack_size) {
		pack_path(path, sizeof(path), s, s->last_pack);
		rc = dm_pack_open(&s->cur_fd, path, O_RDWR, err);
		if (rc)
			goto done;
		s->cur_pack = s->last_pack;
		s->cur_end = lens[nlens - 1].len;
	}
done:
	if (d)
		closedir(d);
	free(lens);
	return rc;
}

int dm_store_open(struct dm_store **out, const char *dir, const struct dm_store_opts *opts,
		  struct dm_err *err)
{
	struct dm_store *s = dm_xcalloc(1, sizeof(*s));
	char path[PATH_MAX];
	int rc;

	s->dir = dm_xstrdup(dir);
	s->lock_fd = -1;
	s->cur_fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	dm_oidmap_init(&s->pending, sizeof(struct dm_loc));
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
			     ? dm_err_set(err, DM_EBUSY,
					  "store '%s' is in use by another process", dir)
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
	rc = recover_packs(s, err);
	if (rc)
		goto fail;
	*out = s;
	return 0;
fail:
	dm_store_free(s);
	return rc;
}

/* Opens a new pack for appending; caller holds mu. */
static int start_pack(struct dm_store *s, struct dm_err *err)
{
	char path[PATH_MAX];
	uint32_t next;
	int rc;

	if (s->cur_fd >= 0) {
		close(s->cur_fd);
		s->cur_fd = -1;
	}
	next = s->last_pack + 1;
	if (next >= MAX_PACKS)
		return dm_err_set(err, DM_ETOOBIG, "store '%s' has too many packs", s->dir);
	pack_path(path, sizeof(path), s, next);
	rc = dm_pack_create(&s->cur_fd, path, err);
	if (rc)
		return rc;
	s->cur_pack = next;
	s->last_pack = next;
	s->cur_end = DM_PACK_HDR_LEN;
	return 0;
}

static void mark_dirty(struct dm_store *s)
{
	for (size_t i = 0; i < s->ndirty; i++) {
		if (s->dirty[i].pack == s->cur_pack) {
			s->dirty[i].len = s->cur_end;
			return;
		}
	}
	s->dirty = dm_xrealloc(s->dirty, (s->ndirty + 1) * sizeof(*s->dirty));
	s->dirty[s->ndirty].pack = s->cur_pack;
	s->dirty[s->ndirty].len = s->cur_end;
	s->ndirty++;
}

static int lookup(struct dm_store *s, const dm_oid *id, struct dm_loc *out,
		  struct dm_buf *path_out, struct dm_err *err)
{
	struct dm_loc *p;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
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
	return dm_index_get(s->idx, id, out, path_out, err);
}

int dm_store_has(struct dm_store *s, const dm_oid *id)
{
	struct dm_loc loc;

	return lookup(s, id, &loc, NULL, NULL) == 0;
}

int dm_store_stat(struct dm_store *s, const dm_oid *id, int *kind_out, uint64_t *len_out,
		  struct dm_err *err)
{
	struct dm_loc loc;
	int rc = lookup(s, id, &loc, NULL, err);

	if (rc)
		return rc;
	if (kind_out)
		*kind_out = loc.kind;
	if (len_out)
		*len_out = loc.raw_len;
	return 0;
}

/* Appends one record; caller holds mu. */
static int append(struct dm_store *s, const struct dm_pack_rec *rec, const void *bytes,
		  struct dm_err *err)
{
	unsigned char hdr[DM_PACK_REC_LEN];
	struct iovec iov[2];
	struct dm_loc loc;
	uint64_t need = DM_PACK_REC_LEN + (uint64_t)rec->stored_len;
	ssize_t n;
	int rc;

	if (s->cur_fd < 0 || (s->cur_end > DM_PACK_HDR_LEN && s->cur_end + need > s->opts.pack_size)) {
		rc = start_pack(s, err);
		if (rc)
			return rc;
	}
	dm_pack_rec_encode(hdr, rec);
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)(uintptr_t)bytes;
	iov[1].iov_len = rec->stored_len;
	do
		n = pwritev(s->cur_fd, iov, 2, (off_t)s->cur_end);
	while (n < 0 && errno == EINTR);
	if (n >= 0 && (uint64_t)n != need) {
		/* short write: finish it the slow way */
		if (dm_pwrite_all(s->cur_fd, hdr, sizeof(hdr), (off_t)s->cur_end) < 0 ||
		    dm_pwrite_all(s->cur_fd, bytes, rec->stored_len,
				  (off_t)(s->cur_end + sizeof(hdr))) < 0)
			n = -1;
	}
	if (n < 0)
		return dm_err_errno(err, errno, "cannot write to pack %u of store '%s'",
				    s->cur_pack, s->dir);
	loc.kind = rec->kind;
	loc.where = DM_LOC_PACK;
	loc.flags = rec->flags;
	loc.raw_len = rec->raw_len;
	loc.stored_len = rec->stored_len;
	loc.pack = s->cur_pack;
	loc.offset = s->cur_end;
	dm_oidmap_put(&s->pending, &rec->id, &loc);
	s->cur_end += need;
	s->unflushed += need;
	mark_dirty(s);
	return 0;
}

/* Appends a record unless its object is pending already, then flushes
 * when enough has been written since the last flush. */
static int store_record(struct dm_store *s, const struct dm_pack_rec *rec, const void *bytes,
			struct dm_err *err)
{
	bool flush;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	if (!dm_oidmap_get(&s->pending, &rec->id))
		rc = append(s, rec, bytes, err);
	flush = s->unflushed >= AUTO_FLUSH_BYTES;
	pthread_mutex_unlock(&s->mu);
	if (!rc && flush)
		rc = dm_store_flush(s, err);
	return rc;
}

static int write_record(struct dm_store *s, const dm_oid *id, enum dm_obj_kind kind,
			const void *data, size_t len, struct dm_err *err);

int dm_store_put_hashed(struct dm_store *s, const dm_oid *id, enum dm_obj_kind kind,
			const void *data, size_t len, struct dm_err *err)
{
	if (kind < DM_OBJ_CHUNK || kind > DM_OBJ_COMMIT)
		return dm_err_set(err, DM_EINVAL, "unknown object kind %d", (int)kind);
	if (len > dm_pack_max_raw(kind))
		return dm_err_set(err, DM_ETOOBIG, "%s of %zu bytes is over the limit",
				  dm_obj_kind_name(kind), len);
	if (dm_store_has(s, id))
		return 0;
	return write_record(s, id, kind, data, len, err);
}

/* Compresses (when that pays) and appends object id to the current pack;
 * its pending location then wins over any it had. */
static int write_record(struct dm_store *s, const dm_oid *id, enum dm_obj_kind kind,
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

	rc = store_record(s, &rec, bytes, err);
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

/*
 * Records object id as the len bytes at off of the file at path, pending
 * until the next flush (which writes it into the index with the packs'
 * lengths). verify: read and hash the bytes first. An object already
 * present keeps the place it has.
 */
static int put_external(struct dm_store *s, const dm_oid *id, enum dm_obj_kind kind,
			const char *path, uint64_t off, uint32_t len, bool verify,
			struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_loc loc = {0};
	size_t plen = strlen(path);
	dm_oid got;
	int fd = -1, rc = 0;

	if (kind < DM_OBJ_CHUNK || kind > DM_OBJ_COMMIT || len > dm_pack_max_raw(kind))
		return dm_err_set(err, DM_EINVAL, "bad external %s of %u bytes",
				  dm_obj_kind_name(kind), len);
	if (path[0] != '/' || plen >= 4096 - 1)
		return dm_err_set(err, DM_EINVAL, "external object path must be absolute: '%s'",
				  path);
	if (verify) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return dm_err_errno(err, errno, "cannot open '%s'", path);
		rc = dm_buf_grow(&b, len);
		if (rc) {
			rc = dm_err_set(err, rc, "out of memory");
			goto done;
		}
		if (dm_pread_all(fd, b.data, len, (off_t)off) < 0) {
			rc = dm_err_errno(err, errno, "cannot read %u bytes at %llu of '%s'", len,
					  (unsigned long long)off, path);
			goto done;
		}
		dm_hash(&got, b.data, len);
		if (dm_oid_cmp(&got, id)) {
			rc = dm_err_set(err, DM_ECORRUPT,
					"bytes at %llu of '%s' do not match their id",
					(unsigned long long)off, path);
			goto done;
		}
	}
	if (dm_store_has(s, id))
		goto done;
	loc.kind = (uint8_t)kind;
	loc.where = DM_LOC_EXTERNAL;
	loc.raw_len = len;
	loc.stored_len = len;
	loc.offset = off;
	pthread_mutex_lock(&s->mu);
	if (!dm_oidmap_get(&s->pending, id)) {
		/* consecutive chunks of one file share its path */
		if (!s->ext_paths.len ||
		    strcmp((const char *)s->ext_paths.data + s->ext_last, path) != 0) {
			s->ext_last = s->ext_paths.len;
			if (s->ext_paths.len > UINT32_MAX - plen - 1 ||
			    dm_buf_add(&s->ext_paths, path, plen + 1))
				rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		}
		if (!rc) {
			loc.pack = (uint32_t)s->ext_last;
			dm_oidmap_put(&s->pending, id, &loc);
			s->unflushed += 64; /* what the entry costs the index, roughly */
		}
	}
	pthread_mutex_unlock(&s->mu);
done:
	if (fd >= 0)
		close(fd);
	dm_buf_release(&b);
	return rc;
}

int dm_store_put_external(struct dm_store *s, const dm_oid *id, enum dm_obj_kind kind,
			  const char *path, uint64_t off, uint32_t len, struct dm_err *err)
{
	return put_external(s, id, kind, path, off, len, true, err);
}

int dm_store_put_external_hashed(struct dm_store *s, const dm_oid *id, enum dm_obj_kind kind,
				 const char *path, uint64_t off, uint32_t len,
				 struct dm_err *err)
{
	return put_external(s, id, kind, path, off, len, false, err);
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
		pack_path(path, sizeof(path), s, pack);
		rc = dm_pack_open(&fd, path, O_RDONLY, err);
		if (!rc)
			s->read_fds[pack] = fd;
	}
done:
	pthread_mutex_unlock(&s->mu);
	return rc ? rc : fd;
}

static int read_external(const char *path, const struct dm_loc *loc, struct dm_buf *out,
			 struct dm_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc = 0;

	if (fd < 0)
		return dm_err_errno(err, errno, "cannot open '%s'", path);
	if (dm_buf_grow(out, loc->raw_len))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	else if (dm_pread_all(fd, out->data + out->len, loc->raw_len, (off_t)loc->offset) < 0)
		rc = dm_err_errno(err, errno, "cannot read '%s'", path);
	else
		out->len += loc->raw_len;
	close(fd);
	return rc;
}

int dm_store_get(struct dm_store *s, const dm_oid *id, struct dm_buf *out, int *kind_out,
		 struct dm_err *err)
{
	struct dm_buf stored = DM_BUF_INIT, path = DM_BUF_INIT;
	struct dm_pack_rec rec;
	struct dm_loc loc;
	char hex[DM_OID_HEXSZ + 1];
	size_t start = out->len;
	dm_oid got;
	int rc, fd;

	dm_oid_hex(hex, id);
	rc = lookup(s, id, &loc, &path, err);
	if (rc == DM_ENOTFOUND)
		return dm_err_set(err, rc, "object %s not found", hex);
	if (rc)
		return rc;
	if (loc.where == DM_LOC_EXTERNAL) {
		rc = read_external((const char *)path.data, &loc, out, err);
		if (rc)
			goto done;
	} else {
		fd = read_fd(s, loc.pack, err);
		if (fd < 0) {
			rc = fd;
			goto done;
		}
		rc = dm_pack_read(fd, loc.offset, &rec, &stored, err);
		if (rc)
			goto done;
		if (dm_oid_cmp(&rec.id, id) || rec.raw_len != loc.raw_len ||
		    rec.stored_len != loc.stored_len || rec.kind != loc.kind) {
			rc = dm_err_set(err, DM_ECORRUPT,
					"object %s: pack %u record at %llu does not match the index",
					hex, loc.pack, (unsigned long long)loc.offset);
			goto done;
		}
		if (dm_buf_grow(out, rec.raw_len)) {
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
			goto done;
		}
		if (rec.flags & DM_PACK_F_ZSTD) {
			size_t z = ZSTD_decompress(out->data + out->len, rec.raw_len, stored.data,
						   stored.len);

			if (ZSTD_isError(z) || z != rec.raw_len) {
				rc = dm_err_set(err, DM_ECORRUPT,
						"object %s: cannot decompress: %s", hex,
						ZSTD_isError(z) ? ZSTD_getErrorName(z)
								: "wrong size");
				goto done;
			}
		} else {
			memcpy(out->data + out->len, stored.data, rec.raw_len);
		}
		out->len += rec.raw_len;
		out->data[out->len] = '\0';
	}
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
	dm_buf_release(&path);
	return rc;
}

int dm_store_get_stored(struct dm_store *s, const dm_oid *id, struct dm_pack_rec *rec,
			struct dm_buf *out, struct dm_err *err)
{
	struct dm_buf path = DM_BUF_INIT;
	struct dm_loc loc;
	char hex[DM_OID_HEXSZ + 1];
	size_t start = out->len;
	int rc, fd;

	rc = lookup(s, id, &loc, &path, err);
	if (rc == DM_ENOTFOUND) {
		dm_oid_hex(hex, id);
		return dm_err_set(err, rc, "object %s not found", hex);
	}
	if (rc)
		return rc;
	if (loc.where == DM_LOC_EXTERNAL) {
		rc = read_external((const char *)path.data, &loc, out, err);
		if (rc)
			goto done;
		out->data[out->len] = '\0';
		rec->kind = loc.kind;
		rec->flags = 0;
		rec->raw_len = loc.raw_len;
		rec->stored_len = loc.raw_len;
		rec->id = *id;
		goto done;
	}
	fd = read_fd(s, loc.pack, err);
	if (fd < 0) {
		rc = fd;
		goto done;
	}
	/* header and bytes in one read, straight into out */
	if (dm_buf_grow(out, DM_PACK_REC_LEN + (size_t)loc.stored_len)) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto done;
	}
	if (dm_pread_all(fd, out->data + start, DM_PACK_REC_LEN + (size_t)loc.stored_len,
			 (off_t)loc.offset) < 0) {
		dm_oid_hex(hex, id);
		rc = dm_err_set(err, DM_ECORRUPT, "object %s: cannot read pack %u at %llu: %s", hex,
				loc.pack, (unsigned long long)loc.offset,
				errno == EIO ? "pack is truncated" : strerror(errno));
		goto done;
	}
	rc = dm_pack_rec_decode(rec, out->data + start, err);
	if (rc)
		goto done;
	if (dm_oid_cmp(&rec->id, id) || rec->raw_len != loc.raw_len ||
	    rec->stored_len != loc.stored_len || rec->kind != loc.kind) {
		dm_oid_hex(hex, id);
		rc = dm_err_set(err, DM_ECORRUPT,
				"object %s: pack %u record at %llu does not match the index", hex,
				loc.pack, (unsigned long long)loc.offset);
		goto done;
	}
	memmove(out->data + start, out->data + start + DM_PACK_REC_LEN, loc.stored_len);
	out->len = start + loc.stored_len;
	out->data[out->len] = '\0';
done:
	if (rc) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	dm_buf_release(&path);
	return rc;
}

int dm_store_put_stored(struct dm_store *s, const struct dm_pack_rec *rec, const void *bytes,
			struct dm_err *err)
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
					  "object %s: compressed frame holds %llu bytes, not %u", hex,
					  declared, rec->raw_len);
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
	rc = store_record(s, rec, bytes, err);
done:
	free(raw);
	return rc;
}

int dm_store_flush(struct dm_store *s, struct dm_err *err)
{
	struct dm_index_entry *entries = NULL;
	const dm_oid *id;
	void *val;
	size_t n = 0, it = 0;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	if (!s->ndirty && !s->pending.count)
		goto done;
	for (size_t i = 0; i < s->ndirty && s->opts.sync; i++) {
		char path[PATH_MAX];
		int fd;

		if (s->dirty[i].pack == s->cur_pack && s->cur_fd >= 0) {
			if (fdatasync(s->cur_fd) < 0) {
				rc = dm_err_errno(err, errno, "cannot sync pack %u", s->cur_pack);
				goto done;
			}
			continue;
		}
		pack_path(path, sizeof(path), s, s->dirty[i].pack);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fdatasync(fd) < 0) {
			rc = dm_err_errno(err, errno, "cannot sync '%s'", path);
			if (fd >= 0)
				close(fd);
			goto done;
		}
		close(fd);
	}
	if (s->opts.sync) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/packs", s->dir);
		rc = dm_fsync_dir(path, err);
		if (rc)
			goto done;
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
	rc = dm_index_commit(s->idx, entries, n, s->dirty, s->ndirty, err);
	if (rc)
		goto done;
	dm_oidmap_clear(&s->pending);
	dm_buf_reset(&s->ext_paths);
	s->ext_last = 0;
	s->ndirty = 0;
	s->unflushed = 0;
done:
	pthread_mutex_unlock(&s->mu);
	free(entries);
	return rc;
}

void dm_store_free(struct dm_store *s)
{
	struct dm_err err;

	if (!s)
		return;
	if (s->idx && dm_store_flush(s, &err))
		dm_error("store '%s': final flush failed: %s", s->dir, err.msg);
	if (s->cur_fd >= 0)
		close(s->cur_fd);
	for (size_t i = 0; i < s->nread_fds; i++)
		if (s->read_fds[i] >= 0)
			close(s->read_fds[i]);
	free(s->read_fds);
	free(s->dirty);
	dm_oidmap_release(&s->pending);
	dm_buf_release(&s->ext_paths);
	dm_index_free(s->idx);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	pthread_mutex_destroy(&s->mu);
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
	for (size_t i = 0; i < n; i++)
		out->pack_bytes += lens[i].len;
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

	return rc ? rc : dm_index_commit_put(s->idx, dot_id, commit_id, oid, err);
}

int dm_store_commit_get(struct dm_store *s, const char *dot_id, const char *commit_id,
			dm_oid *out, struct dm_err *err)
{
	return dm_index_commit_get(s->idx, dot_id, commit_id, out, err);
}

int dm_store_commit_find(struct dm_store *s, const char *dot_id, const char *prefix, size_t max,
			 char ***out, size_t *n, struct dm_err *err)
{
	return dm_index_commit_find(s->idx, dot_id, prefix, max, out, n, err);
}

int dm_store_commit_delete_dot(struct dm_store *s, const char *dot_id, struct dm_err *err)
{
	return dm_index_commit_delete_dot(s->idx, dot_id, err);
}

int dm_store_commit_foreach(struct dm_store *s, dm_store_commit_fn fn, void *ctx,
			    struct dm_err *err)
{
	return dm_index_commit_foreach(s->idx, fn, ctx, err);
}

int dm_store_external_release(struct dm_store *s, const char *prefix, const char *skip_dot,
			      struct dm_store_release_stats *out, struct dm_err *err)
{
	struct dm_index_entry *list = NULL;
	struct dm_store_release_stats local;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_oidmap want, reached, gone;
	dm_oid *ids = NULL, got;
	const dm_oid *id;
	void *val;
	size_t n = 0, nids = 0, it = 0;
	int rc;

	if (!out)
		out = &local;
	memset(out, 0, sizeof(*out));
	if (!prefix || prefix[0] != '/')
		return dm_err_set(err, DM_EINVAL, "external prefix must be absolute: '%s'",
				  prefix ? prefix : "");
	dm_oidmap_init(&want, 1);
	dm_oidmap_init(&reached, 0);
	dm_oidmap_init(&gone, 0);
	rc = dm_store_flush(s, err);
	if (!rc)
		rc = dm_index_external_under(s->idx, prefix, &list, &n, err);
	if (rc || !n)
		goto done;
	for (size_t i = 0; i < n; i++) {
		unsigned char zero = 0;

		dm_oidmap_put(&want, &list[i].id, &zero);
	}
	rc = dm_store_mark_reachable(s, skip_dot, &want, &reached, err);
	if (rc)
		goto done;
	for (size_t i = 0; i < n; i++) {
		const unsigned char *keep = dm_oidmap_get(&want, &list[i].id);

		if (!keep || !*keep) {
			dm_oidmap_put(&gone, &list[i].id, NULL);
			continue;
		}
		dm_buf_reset(&b);
		rc = read_external(list[i].path, &list[i].loc, &b, err);
		if (rc)
			goto done;
		dm_hash(&got, b.data, b.len);
		if (dm_oid_cmp(&got, &list[i].id)) {
			rc = dm_err_set(err, DM_ECORRUPT,
					"bytes at %llu of '%s' do not match their id",
					(unsigned long long)list[i].loc.offset, list[i].path);
			goto done;
		}
		rc = write_record(s, &list[i].id, (enum dm_obj_kind)list[i].loc.kind, b.data,
				  b.len, err);
		if (rc)
			goto done;
		out->copied++;
		out->copied_bytes += b.len;
	}
	rc = dm_store_flush(s, err);
	if (rc)
		goto done;
	out->forgotten = gone.count;
	if (!gone.count)
		goto done;
	/* the chunks, then what would name them: files, trees, commits */
	ids = dm_xmalloc(gone.count * sizeof(*ids));
	while (dm_oidmap_next(&gone, &it, &id, &val))
		ids[nids++] = *id;
	rc = dm_index_delete_external(s->idx, ids, nids, prefix, err);
	if (!rc)
		rc = dm_store_add_dependents(s, &reached, &gone, err);
	if (rc)
		goto done;
	nids = 0;
	it = 0;
	free(ids);
	ids = dm_xmalloc(gone.count * sizeof(*ids));
	while (dm_oidmap_next(&gone, &it, &id, &val)) {
		struct dm_loc loc;

		/* the external chunks are gone already; only objects left */
		if (dm_index_get(s->idx, id, &loc, NULL, NULL) == 0 && loc.where == DM_LOC_PACK)
			ids[nids++] = *id;
	}
	out->dependents = nids;
	rc = dm_index_delete_external(s->idx, ids, nids, NULL, err);
done:
	dm_index_entries_free(list, n);
	dm_oidmap_release(&want);
	dm_oidmap_release(&reached);
	dm_oidmap_release(&gone);
	dm_buf_release(&b);
	free(ids);
	return rc;
}
