/*
 * external.c - objects kept as bytes of an immutable file the engine keeps
 * (a file in a btrfs read-only snapshot, at an offset), so that an engine
 * with snapshots never stores the data twice (store.h).
 *
 * Invariants:
 *   - External objects are pending like pack records until the flush:
 *     their pending location's `pack` is the offset of their recorded path
 *     in ext_paths. The engine made the file durable before naming it (a
 *     btrfs snapshot is on disk once taken), so the flush writes them
 *     without syncing anything.
 *   - A recorded path is relative to ext_root when the file lies under it,
 *     absolute otherwise (and in records older than roots).
 *   - Before the files under a prefix go away (dm_store_external_release),
 *     what committed history still reaches (gc.c) is copied into packs and
 *     the rest is forgotten together with everything that names it, so
 *     nothing left names a missing object.
 */
#include "store/gc.h"
#include "store/index.h"
#include "store/internal.h"
#include "store/oidmap.h"
#include "store/store.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/banned.h"

const char *dm_store_record_path(const struct dm_store *s, const char *path)
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

int dm_store_read_and_hash(const char *path, uint64_t off, uint32_t len, const dm_oid *id,
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

int dm_store_pend_external(struct dm_store *s, const dm_oid *id, struct dm_loc *loc,
			   const char *path, struct dm_err *err)
{
	const char *rec = dm_store_record_path(s, path);
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
	dm_store_guard_wrote(s, id);
	s->unflushed += 64; /* what the entry costs the index, roughly */
	return 0;
}

int dm_store_check_external(enum dm_obj_kind kind, const char *path, uint32_t len,
			    struct dm_err *err)
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
	int rc = dm_store_check_external(kind, path, len, err);

	if (rc)
		return rc;
	if (verify) {
		rc = dm_store_read_and_hash(path, off, len, id, &b, &same, err);
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
		rc = dm_store_pend_external(s, id, &loc, path, err);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int dm_store_put_external(struct dm_store *s, const dm_oid *id, enum dm_obj_kind kind,
			  const char *path, uint64_t off, uint32_t len, struct dm_err *err)
{
	return put_external(s, id, kind, path, off, len, true, err);
}

int dm_store_put_external_hashed(struct dm_store *s, const dm_oid *id, enum dm_obj_kind kind,
				 const char *path, uint64_t off, uint32_t len, struct dm_err *err)
{
	return put_external(s, id, kind, path, off, len, false, err);
}

int dm_store_read_external(const struct dm_store *s, const char *rec, const struct dm_loc *loc,
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

static int external_release_locked(struct dm_store *s, const char *prefix, const char *skip_dot,
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
	prefix = dm_store_record_path(s, prefix);
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
		rc = dm_store_read_external(s, list[i].path, &list[i].loc, &b, err);
		if (rc)
			goto done;
		dm_hash(&got, b.data, b.len);
		if (dm_oid_cmp(&got, &list[i].id)) {
			rc = dm_err_set(err, DM_ECORRUPT,
					"bytes at %llu of '%s' do not match their id",
					(unsigned long long)list[i].loc.offset, list[i].path);
			goto done;
		}
		rc = dm_store_write_record(s, &list[i].id, (enum dm_obj_kind)list[i].loc.kind,
					   b.data, b.len, err);
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

int dm_store_set_external_root(struct dm_store *s, const char *root, struct dm_err *err)
{
	struct dm_buf prefix = DM_BUF_INIT;
	size_t len = root ? strlen(root) : 0, moved = 0;
	int rc;

	while (len > 1 && root[len - 1] == '/')
		len--;
	if (!root || root[0] != '/' || len < 2 || len >= 4000)
		return dm_err_set(err, DM_EINVAL,
				  "external root must be an absolute directory: '%s'",
				  root ? root : "");
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

/* Holds maint_mu: a collection moves and forgets index entries too. */
int dm_store_external_release(struct dm_store *s, const char *prefix, const char *skip_dot,
			      struct dm_store_release_stats *out, struct dm_err *err)
{
	int rc;

	pthread_mutex_lock(&s->maint_mu);
	rc = external_release_locked(s, prefix, skip_dot, out, err);
	pthread_mutex_unlock(&s->maint_mu);
	return rc;
}
