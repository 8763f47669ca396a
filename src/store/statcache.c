/*
 * statcache.c - the stat cache: relative path -> (stat, file id, seen).
 *
 * In memory: one malloc'd entry per path (the path bytes follow the fixed
 * fields) and an open-addressing table of entry pointers with linear
 * probing, at most half full. Entries leave the table only through sweep,
 * clear or remove, each of which rebuilds the table, so probing never meets
 * a tombstone.
 *
 * On disk (little-endian):
 *     "DMSC" u32 version u64 count u64 zero
 *     count x { u32 path_len, u32 mode, u64 size, u64 ino,
 *               i64 mtime_ns, i64 ctime_ns, i64 seen_ns, id[32], path }
 *     sha256 of every byte before it
 * The loader bounds the file size, the count by the bytes present, every
 * path length by DM_STATCACHE_PATH_MAX and what remains, rejects NUL bytes
 * in paths and duplicate paths, and checks the checksum before it trusts
 * any of it; anything wrong discards the whole file with a warning.
 *
 * Saving writes a temporary file and renames it over the old one without
 * fsync (dm_write_file_atomic_flags, DM_WRITE_NO_SYNC): after a crash the
 * cache is the old one, the new one, or torn and then discarded by its
 * checksum, and any of them is safe, because an entry is only used when
 * the file's stat still matches it.
 */
#include "store/statcache.h"
#include "store/tree.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/hash.h"
#include "util/log.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/banned.h"

#define MAGIC "DMSC"
#define VERSION 1u
#define HDR_LEN 24u
#define ENT_FIXED 80u
#define TRAILER DM_OID_RAWSZ

struct ent {
	uint64_t hash;
	struct dm_statcache_stat st;
	int64_t seen_ns;
	dm_oid id;
	bool mark;
	uint32_t len;
	char path[]; /* len bytes and a NUL */
};

struct dm_statcache {
	struct ent **slots; /* cap slots, NULL when empty */
	size_t cap;         /* a power of two, or 0 */
	size_t count;
};

static uint64_t path_hash(const char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

void dm_statcache_stat_from(struct dm_statcache_stat *out, const struct stat *st)
{
	out->size = (uint64_t)st->st_size;
	out->ino = (uint64_t)st->st_ino;
	out->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	out->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
	out->mode = (uint32_t)st->st_mode;
}

struct dm_statcache *dm_statcache_new(void)
{
	return dm_xcalloc(1, sizeof(struct dm_statcache));
}

void dm_statcache_clear(struct dm_statcache *c)
{
	for (size_t i = 0; i < c->cap; i++)
		free(c->slots[i]);
	free(c->slots);
	c->slots = NULL;
	c->cap = 0;
	c->count = 0;
}

void dm_statcache_free(struct dm_statcache *c)
{
	if (!c)
		return;
	dm_statcache_clear(c);
	free(c);
}

size_t dm_statcache_count(const struct dm_statcache *c)
{
	return c ? c->count : 0;
}

static void slot_insert(struct ent **slots, size_t cap, struct ent *e)
{
	size_t i = (size_t)e->hash & (cap - 1);

	while (slots[i])
		i = (i + 1) & (cap - 1);
	slots[i] = e;
}

/* Resizes the table to hold want entries at most half full. */
static int rehash(struct dm_statcache *c, size_t want)
{
	size_t cap = 16;
	struct ent **slots;

	while (cap < want * 2)
		cap *= 2;
	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -1;
	for (size_t i = 0; i < c->cap; i++)
		if (c->slots[i])
			slot_insert(slots, cap, c->slots[i]);
	free(c->slots);
	c->slots = slots;
	c->cap = cap;
	return 0;
}

static struct ent **find(const struct dm_statcache *c, const char *path, size_t len,
			 uint64_t h)
{
	size_t i;

	if (!c->cap)
		return NULL;
	for (i = (size_t)h & (c->cap - 1); c->slots[i]; i = (i + 1) & (c->cap - 1)) {
		struct ent *e = c->slots[i];

		if (e->hash == h && e->len == len && memcmp(e->path, path, len) == 0)
			return &c->slots[i];
	}
	return NULL;
}

bool dm_statcache_stat_equal(const struct dm_statcache_stat *a, const struct dm_statcache_stat *b)
{
	return a->size == b->size && a->ino == b->ino && a->mtime_ns == b->mtime_ns &&
	       a->ctime_ns == b->ctime_ns && a->mode == b->mode;
}

static bool racy(const struct ent *e)
{
	int64_t limit = e->seen_ns - DM_STATCACHE_RACY_NS;

	return e->st.mtime_ns >= limit || e->st.ctime_ns >= limit;
}

int dm_statcache_lookup(struct dm_statcache *c, const char *path, size_t len,
			const struct dm_statcache_stat *st, dm_oid *id)
{
	struct ent **slot = find(c, path, len, path_hash(path, len));

	if (!slot || !dm_statcache_stat_equal(&(*slot)->st, st) || racy(*slot))
		return 0;
	(*slot)->mark = true;
	*id = (*slot)->id;
	return 1;
}

int dm_statcache_peek(const struct dm_statcache *c, const char *path, size_t len,
		      const struct dm_statcache_stat *st, dm_oid *id)
{
	struct ent **slot = find(c, path, len, path_hash(path, len));

	if (!slot || !dm_statcache_stat_equal(&(*slot)->st, st))
		return 0;
	*id = (*slot)->id;
	return 1;
}

static struct ent *ent_new(const char *path, size_t len, uint64_t h)
{
	struct ent *e = malloc(sizeof(*e) + len + 1);

	if (!e)
		return NULL;
	e->hash = h;
	e->len = (uint32_t)len;
	memcpy(e->path, path, len);
	e->path[len] = '\0';
	return e;
}

static bool path_ok(const char *path, size_t len)
{
	return len > 0 && len <= DM_STATCACHE_PATH_MAX && !memchr(path, '\0', len);
}

int dm_statcache_put(struct dm_statcache *c, const char *path, size_t len,
		     const struct dm_statcache_stat *st, const dm_oid *id, int64_t seen_ns,
		     struct dm_err *err)
{
	uint64_t h;
	struct ent **slot;
	struct ent *e;

	if (!path_ok(path, len))
		return dm_err_set(err, DM_EINVAL, "invalid stat cache path '%.*s'", (int)len, path);
	h = path_hash(path, len);
	slot = find(c, path, len, h);
	if (slot) {
		e = *slot;
	} else {
		if ((c->count + 1) * 2 > c->cap && rehash(c, c->count + 1) < 0)
			return dm_err_set(err, DM_ENOMEM, "out of memory in the stat cache");
		e = ent_new(path, len, h);
		if (!e)
			return dm_err_set(err, DM_ENOMEM, "out of memory in the stat cache");
		slot_insert(c->slots, c->cap, e);
		c->count++;
	}
	e->st = *st;
	e->id = *id;
	e->seen_ns = seen_ns;
	e->mark = true;
	return 0;
}

/* Rebuilds the table after slots were emptied, so no probe meets a gap. */
static void compact(struct dm_statcache *c)
{
	struct ent **slots = dm_xcalloc(c->cap, sizeof(*slots));

	for (size_t i = 0; i < c->cap; i++)
		if (c->slots[i])
			slot_insert(slots, c->cap, c->slots[i]);
	free(c->slots);
	c->slots = slots;
}

void dm_statcache_remove(struct dm_statcache *c, const char *path, size_t len)
{
	struct ent **slot = find(c, path, len, path_hash(path, len));

	if (!slot)
		return;
	free(*slot);
	*slot = NULL;
	c->count--;
	compact(c);
}

size_t dm_statcache_sweep(struct dm_statcache *c)
{
	size_t dropped = 0;

	for (size_t i = 0; i < c->cap; i++) {
		struct ent *e = c->slots[i];

		if (!e)
			continue;
		if (!e->mark) {
			free(e);
			c->slots[i] = NULL;
			dropped++;
		} else {
			e->mark = false;
		}
	}
	c->count -= dropped;
	if (dropped)
		compact(c);
	return dropped;
}

/* ---- the file ---- */

static void put_u32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put_u64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

int dm_statcache_save(struct dm_statcache *c, const char *path, struct dm_err *err)
{
	size_t total = HDR_LEN + TRAILER;
	unsigned char *buf = NULL, *p;
	dm_oid sum;
	int rc;

	for (size_t i = 0; i < c->cap; i++)
		if (c->slots[i])
			total += ENT_FIXED + c->slots[i]->len;
	buf = malloc(total);
	if (!buf)
		return dm_err_set(err, DM_ENOMEM, "out of memory saving the stat cache '%s'", path);
	p = buf;
	memcpy(p, MAGIC, 4);
	put_u32(p + 4, VERSION);
	put_u64(p + 8, c->count);
	put_u64(p + 16, 0);
	p += HDR_LEN;
	for (size_t i = 0; i < c->cap; i++) {
		const struct ent *e = c->slots[i];

		if (!e)
			continue;
		put_u32(p, e->len);
		put_u32(p + 4, e->st.mode);
		put_u64(p + 8, e->st.size);
		put_u64(p + 16, e->st.ino);
		put_u64(p + 24, (uint64_t)e->st.mtime_ns);
		put_u64(p + 32, (uint64_t)e->st.ctime_ns);
		put_u64(p + 40, (uint64_t)e->seen_ns);
		memcpy(p + 48, e->id.b, DM_OID_RAWSZ);
		memcpy(p + ENT_FIXED, e->path, e->len);
		p += ENT_FIXED + e->len;
	}
	dm_hash(&sum, buf, (size_t)(p - buf));
	memcpy(p, sum.b, TRAILER);

	rc = dm_write_file_atomic_flags(path, buf, total, 0600, DM_WRITE_NO_SYNC, err);
	free(buf);
	return rc;
}

/* Parses a whole cache file into c; a message in why when it is corrupt. */
static int parse(struct dm_statcache *c, const unsigned char *data, size_t len, const char **why)
{
	const unsigned char *p = data, *end;
	uint64_t count;
	dm_oid sum;

	if (len < HDR_LEN + TRAILER || memcmp(data, MAGIC, 4) != 0) {
		*why = "not a stat cache";
		return -1;
	}
	if (get_u32(data + 4) != VERSION) {
		*why = "unknown version";
		return -1;
	}
	dm_hash(&sum, data, len - TRAILER);
	if (memcmp(sum.b, data + len - TRAILER, TRAILER) != 0) {
		*why = "bad checksum";
		return -1;
	}
	count = get_u64(data + 8);
	end = data + len - TRAILER;
	if (count > (len - HDR_LEN - TRAILER) / ENT_FIXED) {
		*why = "entry count larger than the file";
		return -1;
	}
	if (rehash(c, (size_t)count) < 0) {
		*why = "out of memory";
		return -1;
	}
	p += HDR_LEN;
	for (uint64_t i = 0; i < count; i++) {
		uint32_t plen;
		const char *path;
		uint64_t h;
		struct ent *e;

		if ((size_t)(end - p) < ENT_FIXED) {
			*why = "truncated entry";
			return -1;
		}
		plen = get_u32(p);
		path = (const char *)p + ENT_FIXED;
		if (plen > (size_t)(end - p) - ENT_FIXED || !path_ok(path, plen)) {
			*why = "bad path length";
			return -1;
		}
		h = path_hash(path, plen);
		if (find(c, path, plen, h)) {
			*why = "duplicate path";
			return -1;
		}
		e = ent_new(path, plen, h);
		if (!e) {
			*why = "out of memory";
			return -1;
		}
		e->st.mode = get_u32(p + 4);
		e->st.size = get_u64(p + 8);
		e->st.ino = get_u64(p + 16);
		e->st.mtime_ns = (int64_t)get_u64(p + 24);
		e->st.ctime_ns = (int64_t)get_u64(p + 32);
		e->seen_ns = (int64_t)get_u64(p + 40);
		memcpy(e->id.b, p + 48, DM_OID_RAWSZ);
		e->mark = false;
		slot_insert(c->slots, c->cap, e);
		c->count++;
		p += ENT_FIXED + plen;
	}
	if (p != end) {
		*why = "trailing bytes";
		return -1;
	}
	return 0;
}

int dm_statcache_load(struct dm_statcache **out, const char *path, struct dm_err *err)
{
	struct dm_statcache *c = dm_statcache_new();
	unsigned char *data = NULL;
	const char *why = NULL;
	struct stat st;
	int fd = -1, rc = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			goto done;
		rc = dm_err_errno(err, errno, "cannot open stat cache '%s'", path);
		goto done;
	}
	if (fstat(fd, &st) < 0) {
		rc = dm_err_errno(err, errno, "cannot stat '%s'", path);
		goto done;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > DM_STATCACHE_MAX_FILE) {
		why = "not a regular file of sane size";
		goto done;
	}
	data = malloc((size_t)st.st_size + 1);
	if (!data) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory loading '%s'", path);
		goto done;
	}
	if (dm_pread_all(fd, data, (size_t)st.st_size, 0) < 0) {
		rc = dm_err_errno(err, errno, "cannot read stat cache '%s'", path);
		goto done;
	}
	if (parse(c, data, (size_t)st.st_size, &why) < 0)
		dm_statcache_clear(c);
done:
	if (why) {
		dm_warn("discarding stat cache '%s': %s", path, why);
		dm_statcache_clear(c);
	}
	if (fd >= 0)
		close(fd);
	free(data);
	if (rc) {
		dm_statcache_free(c);
		return rc;
	}
	*out = c;
	return 0;
}
