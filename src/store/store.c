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
 *     `pack` is the offset of their recorded path in ext_paths. The engine
 *     made the file durable before naming it (a btrfs snapshot is on disk
 *     once taken), so the flush writes them without syncing anything. A
 *     recorded path is relative to ext_root when the file lies under it,
 *     absolute otherwise (and in records older than roots).
 *   - Staging packs hold only chunks received for one dot (put_received
 *     while staging is on). Every staging pack the index knows is in
 *     `staged` (with its dot); a new one joins the index's staging records
 *     in the flush that first records its length. No other object is ever
 *     appended to one, so once nothing points into it (dm_store_staging_end
 *     moved what did), it is dropped from the index first and deleted after:
 *     a crash in between leaves a file the next open removes as unknown.
 *   - `mu` guards pending, ext_paths, the writers (main and staging), the
 *     staged list, the dirty-pack list and the read-descriptor table.
 *     Hashing and compression happen outside it. `packs_rw` is held shared
 *     while a pack descriptor is read and exclusively while a dropped
 *     pack's descriptor is closed, so no read uses a closed descriptor; a
 *     read that finds its pack gone looks the object up again (it moved).
 *   - One process at a time: DIR/lock is held with flock while open.
 */
#include "store/store.h"
#include "store/index.h"
#include "store/oidmap.h"
#include "store/pack.h"
#include "store/gc.h"
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

/* A pack open for appending: 0 / -1 when none. */
struct writer {
	uint32_t pack;
	int fd;
	uint64_t end;
};

struct stage {
	char dot[DM_INDEX_DOT_MAX + 1];
	struct writer w;
};

struct staged_pack {
	struct dm_index_staged rec;
	bool recorded; /* in the index's staging records */
};

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
	struct writer cur;        /* the ordinary pack being appended to */
	bool staging;             /* received chunks go to staging packs */
	struct stage *stages;     /* one staging pack being appended to per dot */
	size_t nstages;
	struct staged_pack *staged; /* every staging pack */
	size_t nstaged;
	char *ext_root; /* absolute, no trailing '/'; NULL: none */
	size_t ext_root_len;
	pthread_rwlock_t packs_rw;
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

static struct staged_pack *find_staged(struct dm_store *s, uint32_t pack)
{
	for (size_t i = 0; i < s->nstaged; i++)
		if (s->staged[i].rec.pack == pack)
			return &s->staged[i];
	return NULL;
}

static int load_staged(struct dm_store *s, struct dm_err *err)
{
	struct dm_index_staged *list = NULL;
	size_t n = 0;
	int rc = dm_index_staged_list(s->idx, &list, &n, err);

	if (rc)
		return rc;
	s->staged = dm_xcalloc(n ? n : 1, sizeof(*s->staged));
	for (size_t i = 0; i < n; i++) {
		s->staged[i].rec = list[i];
		s->staged[i].recorded = true;
	}
	s->nstaged = n;
	free(list);
	return 0;
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
	if (nlens && lens[nlens - 1].len < s->opts.pack_size && !find_staged(s, s->last_pack)) {
		pack_path(path, sizeof(path), s, s->last_pack);
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
	rc = load_staged(s, err);
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
	pack_path(path, sizeof(path), s, next);
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

/* The writer of dot's staging packs (made when missing); caller holds mu. */
static struct writer *stage_writer(struct dm_store *s, const char *dot)
{
	struct stage *st;

	for (size_t i = 0; i < s->nstages; i++)
		if (!strcmp(s->stages[i].dot, dot))
			return &s->stages[i].w;
	s->stages = dm_xrealloc(s->stages, (s->nstages + 1) * sizeof(*s->stages));
	st = &s->stages[s->nstages++];
	snprintf(st->dot, sizeof(st->dot), "%s", dot);
	st->w.pack = 0;
	st->w.fd = -1;
	st->w.end = 0;
	return &st->w;
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

	if (w->fd < 0 || (w->end > DM_PACK_HDR_LEN && w->end + need > s->opts.pack_size)) {
		rc = start_pack(s, w, err);
		if (rc)
			return rc;
		if (stage_dot) {
			struct staged_pack *sp;

			s->staged = dm_xrealloc(s->staged, (s->nstaged + 1) * sizeof(*s->staged));
			sp = &s->staged[s->nstaged++];
			memset(sp, 0, sizeof(*sp));
			sp->rec.pack = w->pack;
			snprintf(sp->rec.dot, sizeof(sp->rec.dot), "%s", stage_dot);
		}
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
	w->end += need;
	s->unflushed += need;
	mark_dirty(s, w);
	return 0;
}

/* Appends a record unless its object is pending already (to dot
 * stage_dot's staging pack when not NULL), then flushes when enough has
 * been written since the last flush. */
static int store_record(struct dm_store *s, const struct dm_pack_rec *rec, const void *bytes,
			const char *stage_dot, struct dm_err *err)
{
	bool flush;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	if (!dm_oidmap_get(&s->pending, &rec->id))
		rc = append(s, stage_dot ? stage_writer(s, stage_dot) : &s->cur, stage_dot, rec,
			    bytes, err);
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

	rc = store_record(s, &rec, bytes, NULL, err);
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

/* The form in which the store records the path of an external file:
 * relative to ext_root when the file lies under it, else as given. */
static const char *record_path(const struct dm_store *s, const char *path)
{
	if (s->ext_root && !strncmp(path, s->ext_root, s->ext_root_len) &&
	    path[s->ext_root_len] == '/' && path[s->ext_root_len + 1])
		return path + s->ext_root_len + 1;
	return path;
}

/* out = the file a recorded path names (replacing out's contents). */
static int resolve_path(const struct dm_store *s, const char *rec, struct dm_buf *out,
			struct dm_err *err)
{
	dm_buf_reset(out);
	if (rec[0] != '/' && !s->ext_root)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "store '%s' keeps objects in files relative to its engine's "
				  "directory ('%s'), and was not told that directory (give it "
				  "as the external root)",
				  s->dir, rec);
	if ((rec[0] != '/' && dm_buf_addf(out, "%s/%s", s->ext_root, rec)) ||
	    (rec[0] == '/' && dm_buf_adds(out, rec)))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
}

/* Reads len bytes at off of path into out (replacing its contents) and
 * sets *same to whether they hash to id. */
static int read_and_hash(const char *path, uint64_t off, uint32_t len, const dm_oid *id,
			 struct dm_buf *out, bool *same, struct dm_err *err)
{
	dm_oid got;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc = 0;

	*same = false;
	dm_buf_reset(out);
	if (fd < 0)
		return dm_err_errno(err, errno, "cannot open '%s'", path);
	if (dm_buf_grow(out, len))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	else if (dm_pread_all(fd, out->data, len, (off_t)off) < 0)
		rc = dm_err_errno(err, errno, "cannot read %u bytes at %llu of '%s'", len,
				  (unsigned long long)off, path);
	close(fd);
	if (rc)
		return rc;
	out->len = len;
	dm_hash(&got, out->data, len);
	*same = dm_oid_cmp(&got, id) == 0;
	return 0;
}

/* Makes loc (external, its path not yet set) object id's pending location,
 * with path as recorded; caller holds mu. */
static int pend_external(struct dm_store *s, const dm_oid *id, struct dm_loc *loc, const char *path,
			 struct dm_err *err)
{
	const char *rec = record_path(s, path);
	size_t rlen = strlen(rec);

	/* consecutive chunks of one file share its path */
	if (!s->ext_paths.len || strcmp((const char *)s->ext_paths.data + s->ext_last, rec) != 0) {
		if (s->ext_paths.len > UINT32_MAX - rlen - 1)
			return dm_err_set(err, DM_ENOMEM, "out of memory");
		s->ext_last = s->ext_paths.len;
		if (dm_buf_add(&s->ext_paths, rec, rlen + 1))
			return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	loc->pack = (uint32_t)s->ext_last;
	dm_oidmap_put(&s->pending, id, loc);
	s->unflushed += 64; /* what the entry costs the index, roughly */
	return 0;
}

static int check_external(enum dm_obj_kind kind, const char *path, uint32_t len, struct dm_err *err)
{
	if (kind < DM_OBJ_CHUNK || kind > DM_OBJ_COMMIT || len > dm_pack_max_raw(kind))
		return dm_err_set(err, DM_EINVAL, "bad external %s of %u bytes",
				  dm_obj_kind_name(kind), len);
	if (path[0] != '/' || strlen(path) >= 4096 - 1)
		return dm_err_set(err, DM_EINVAL, "external object path must be absolute: '%s'",
				  path);
	return 0;
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
	bool same = true;
	int rc = check_external(kind, path, len, err);

	if (rc)
		return rc;
	if (verify) {
		rc = read_and_hash(path, off, len, id, &b, &same, err);
		dm_buf_release(&b);
		if (rc)
			return rc;
		if (!same)
			return dm_err_set(err, DM_ECORRUPT,
					  "bytes at %llu of '%s' do not match their id",
					  (unsigned long long)off, path);
	}
	if (dm_store_has(s, id))
		return 0;
	loc.kind = (uint8_t)kind;
	loc.where = DM_LOC_EXTERNAL;
	loc.raw_len = len;
	loc.stored_len = len;
	loc.offset = off;
	pthread_mutex_lock(&s->mu);
	if (!dm_oidmap_get(&s->pending, id))
		rc = pend_external(s, id, &loc, path, err);
	pthread_mutex_unlock(&s->mu);
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

/* Appends the bytes of external object loc, whose recorded path is rec,
 * to out. */
static int read_external(const struct dm_store *s, const char *rec, const struct dm_loc *loc,
			 struct dm_buf *out, struct dm_err *err)
{
	struct dm_buf path = DM_BUF_INIT;
	int fd = -1, rc = resolve_path(s, rec, &path, err);

	if (rc)
		goto done;
	fd = open((const char *)path.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		rc = dm_err_errno(err, errno, "cannot open '%s'", (const char *)path.data);
	else if (dm_buf_grow(out, loc->raw_len))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	else if (dm_pread_all(fd, out->data + out->len, loc->raw_len, (off_t)loc->offset) < 0)
		rc = dm_err_errno(err, errno, "cannot read '%s'", (const char *)path.data);
	else
		out->len += loc->raw_len;
done:
	if (fd >= 0)
		close(fd);
	dm_buf_release(&path);
	return rc;
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
		rc = lookup(s, id, loc, &path, err);
		if (rc == DM_ENOTFOUND) {
			dm_oid_hex(hex, id);
			rc = dm_err_set(err, rc, "object %s not found", hex);
		}
		if (rc)
			break;
		if (loc->where == DM_LOC_EXTERNAL) {
			rc = read_external(s, (const char *)path.data, loc, out, err);
			break;
		}
		rc = read_pack_rec(s, id, loc, rec, out, err);
		if (!rc || tries)
			break;
		out->len = start;
		dm_buf_reset(&path);
		if (lookup(s, id, &again, &path, NULL) ||
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
				rc = dm_err_set(err, DM_ECORRUPT,
						"object %s: cannot decompress: %s", hex,
						ZSTD_isError(z) ? ZSTD_getErrorName(z)
								: "wrong size");
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

/* dm_store_put_stored, into dot stage_dot's staging packs when not NULL. */
static int put_stored(struct dm_store *s, const struct dm_pack_rec *rec, const void *bytes,
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
	rc = store_record(s, rec, bytes, stage_dot, err);
done:
	free(raw);
	return rc;
}

int dm_store_put_stored(struct dm_store *s, const struct dm_pack_rec *rec, const void *bytes,
			struct dm_err *err)
{
	return put_stored(s, rec, bytes, NULL, err);
}

int dm_store_put_received(struct dm_store *s, const char *dot_id, const struct dm_pack_rec *rec,
			  const void *bytes, struct dm_err *err)
{
	bool stage;

	pthread_mutex_lock(&s->mu);
	stage = s->staging;
	pthread_mutex_unlock(&s->mu);
	stage = stage && dot_id && rec->kind == DM_OBJ_CHUNK && dot_id[0] &&
		strlen(dot_id) <= DM_INDEX_DOT_MAX;
	return put_stored(s, rec, bytes, stage ? dot_id : NULL, err);
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

int dm_store_flush(struct dm_store *s, struct dm_err *err)
{
	struct dm_index_entry *entries = NULL;
	struct dm_index_staged *staged = NULL;
	const dm_oid *id;
	void *val;
	size_t n = 0, nstaged = 0, it = 0;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	if (!s->ndirty && !s->pending.count)
		goto done;
	for (size_t i = 0; i < s->ndirty && s->opts.sync; i++) {
		char path[PATH_MAX];
		int fd = writer_fd(s, s->dirty[i].pack);

		if (fd >= 0) {
			if (fdatasync(fd) < 0) {
				rc = dm_err_errno(err, errno, "cannot sync pack %u",
						  s->dirty[i].pack);
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
		if (find_staged(s, lens[i].pack)) {
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
	prefix = record_path(s, prefix);
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
		rc = read_external(s, list[i].path, &list[i].loc, &b, err);
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

/* ---- external roots ---- */

int dm_store_set_external_root(struct dm_store *s, const char *root, struct dm_err *err)
{
	struct dm_buf prefix = DM_BUF_INIT;
	size_t len = root ? strlen(root) : 0, moved = 0;
	int rc;

	while (len > 1 && root[len - 1] == '/')
		len--;
	if (!root || root[0] != '/' || len < 2 || len >= 4000)
		return dm_err_set(err, DM_EINVAL,
				  "external root must be an absolute directory: '%s'", root ? root : "");
	rc = dm_store_flush(s, err);
	if (rc)
		return rc;
	if (dm_buf_add(&prefix, root, len) || dm_buf_addc(&prefix, '/')) {
		dm_buf_release(&prefix);
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	/* records of older versions named files under the root absolutely */
	rc = dm_index_strip_external_prefix(s->idx, (const char *)prefix.data, &moved, err);
	if (!rc) {
		pthread_mutex_lock(&s->mu);
		free(s->ext_root);
		s->ext_root = dm_xstrndup(root, len);
		s->ext_root_len = len;
		pthread_mutex_unlock(&s->mu);
		if (moved)
			dm_info("store '%s': %llu objects under '%s' now recorded relative to it",
				s->dir, (unsigned long long)moved, s->ext_root);
	}
	dm_buf_release(&prefix);
	return rc;
}

/* ---- staging ---- */

void dm_store_set_staging(struct dm_store *s, bool on)
{
	pthread_mutex_lock(&s->mu);
	s->staging = on;
	pthread_mutex_unlock(&s->mu);
}

/* Whether loc lies in a staging pack of dot; caller holds mu. */
static bool staged_for(struct dm_store *s, const struct dm_loc *loc, const char *dot)
{
	const struct staged_pack *sp;

	if (loc->where != DM_LOC_PACK)
		return false;
	sp = find_staged(s, loc->pack);
	return sp && !strcmp(sp->rec.dot, dot);
}

int dm_store_unstage(struct dm_store *s, const char *dot_id, const dm_oid *id, const char *path,
		     uint64_t off, uint32_t len, struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_loc loc;
	bool staged, same = false;
	int rc = check_external(DM_OBJ_CHUNK, path, len, err);

	if (rc)
		return rc;
	if (lookup(s, id, &loc, NULL, NULL))
		return 0;
	pthread_mutex_lock(&s->mu);
	staged = staged_for(s, &loc, dot_id);
	pthread_mutex_unlock(&s->mu);
	if (!staged || loc.kind != DM_OBJ_CHUNK || loc.raw_len != len)
		return 0;
	rc = read_and_hash(path, off, len, id, &b, &same, err);
	dm_buf_release(&b);
	if (rc || !same)
		return rc; /* not those bytes (written to meanwhile): it stays put */
	pthread_mutex_lock(&s->mu);
	/* unless it moved meanwhile, its place is now the file */
	if (dm_oidmap_get(&s->pending, id) ||
	    (dm_index_get(s->idx, id, &loc, NULL, NULL) == 0 && staged_for(s, &loc, dot_id))) {
		struct dm_loc *p = dm_oidmap_get(&s->pending, id);

		if (!p || staged_for(s, p, dot_id)) {
			struct dm_loc ext = {0};

			ext.kind = DM_OBJ_CHUNK;
			ext.where = DM_LOC_EXTERNAL;
			ext.raw_len = len;
			ext.stored_len = len;
			ext.offset = off;
			rc = pend_external(s, id, &ext, path, err);
			if (!rc)
				rc = 1;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* Moves every object that still lies in staging pack `pack` (committed
 * length len) into an ordinary pack, as stored. */
static int evacuate(struct dm_store *s, uint32_t pack, uint64_t len,
		    struct dm_store_staging_stats *st, struct dm_err *err)
{
	struct dm_buf bytes = DM_BUF_INIT;
	uint64_t off = DM_PACK_HDR_LEN;
	int fd = -1, rc;
	char path[PATH_MAX];

	pack_path(path, sizeof(path), s, pack);
	rc = dm_pack_open(&fd, path, O_RDONLY, err);
	while (!rc && off < len) {
		struct dm_pack_rec rec;
		struct dm_loc loc;

		rc = dm_pack_read(fd, off, &rec, &bytes, err);
		if (rc)
			break;
		if (lookup(s, &rec.id, &loc, NULL, NULL) == 0 && loc.where == DM_LOC_PACK &&
		    loc.pack == pack && loc.offset == off) {
			rc = store_record(s, &rec, bytes.data, NULL, err);
			st->copied++;
			st->copied_bytes += rec.raw_len;
		}
		off += DM_PACK_REC_LEN + (uint64_t)rec.stored_len;
	}
	if (fd >= 0)
		close(fd);
	dm_buf_release(&bytes);
	if (rc)
		dm_err_prefix(err, "cannot empty staging pack %u", pack);
	return rc;
}

int dm_store_staging_end(struct dm_store *s, const char *dot_id, struct dm_store_staging_stats *out,
			 struct dm_err *err)
{
	struct dm_store_staging_stats local;
	struct dm_pack_len *lens = NULL;
	uint32_t *packs = NULL;
	size_t n = 0, nlens = 0;
	int rc = 0;

	if (!out)
		out = &local;
	memset(out, 0, sizeof(*out));
	/* from here on, chunks that arrive for the dot start new packs */
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->nstages; i++) {
		if (strcmp(s->stages[i].dot, dot_id))
			continue;
		if (s->stages[i].w.fd >= 0)
			close(s->stages[i].w.fd);
		s->stages[i] = s->stages[--s->nstages];
		break;
	}
	packs = dm_xmalloc((s->nstaged + 1) * sizeof(*packs));
	for (size_t i = 0; i < s->nstaged; i++)
		if (!strcmp(s->staged[i].rec.dot, dot_id))
			packs[n++] = s->staged[i].rec.pack;
	pthread_mutex_unlock(&s->mu);
	if (!n)
		goto done;
	rc = dm_store_flush(s, err);
	if (!rc)
		rc = dm_index_pack_lengths(s->idx, &lens, &nlens, err);
	for (size_t i = 0; !rc && i < n; i++) {
		const struct dm_pack_len *l = find_len(lens, nlens, packs[i]);

		if (l)
			rc = evacuate(s, packs[i], l->len, out, err);
	}
	if (!rc)
		rc = dm_store_flush(s, err);
	/* nothing points into them now: forget them, then delete them */
	if (!rc)
		rc = dm_index_drop_packs(s->idx, packs, n, err);
	if (rc)
		goto done;
	pthread_rwlock_wrlock(&s->packs_rw);
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct stat st;

		for (size_t j = 0; j < s->nstaged; j++) {
			if (s->staged[j].rec.pack == packs[i]) {
				s->staged[j] = s->staged[--s->nstaged];
				break;
			}
		}
		if (packs[i] < s->nread_fds && s->read_fds[packs[i]] >= 0) {
			close(s->read_fds[packs[i]]);
			s->read_fds[packs[i]] = -1;
		}
		pack_path(path, sizeof(path), s, packs[i]);
		if (stat(path, &st) == 0)
			out->freed_bytes += (uint64_t)st.st_size;
		if (unlink(path) < 0 && errno != ENOENT)
			dm_warn("store: cannot remove staging pack '%s' (removed at the next "
				"start): %s",
				path, strerror(errno));
		out->packs++;
	}
	pthread_mutex_unlock(&s->mu);
	pthread_rwlock_unlock(&s->packs_rw);
done:
	free(packs);
	free(lens);
	return rc;
}
