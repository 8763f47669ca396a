/*
 * object.c - encoding and decoding of file, tree and commit objects.
 *
 * The format (docs/internals/store.md) is: a 4-byte header 'd' 'm' KIND
 * VERSION, then fields as canonical varints, length-prefixed strings and raw
 * 32-byte ids, with no trailing bytes. Invariants: the encoder refuses what
 * the decoder would refuse, so every stored object decodes; the decoder
 * bounds every count by both a fixed limit and the bytes that remain, so no
 * input makes it allocate more than a small multiple of the input's size.
 * dm_object_each_ref is the only place that knows which fields of an object
 * name other objects, and with which kind.
 */
#include "store/object.h"
#include "store/chunker.h"
#include "store/codec.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

#define HDR_LEN 4

const char *dm_obj_kind_name(int kind)
{
	switch (kind) {
	case DM_OBJ_CHUNK:
		return "chunk";
	case DM_OBJ_FILE:
		return "file";
	case DM_OBJ_TREE:
		return "tree";
	case DM_OBJ_COMMIT:
		return "commit";
	default:
		return "unknown";
	}
}

int dm_obj_peek_kind(const void *data, size_t len)
{
	const unsigned char *p = data;

	if (len < HDR_LEN || p[0] != 'd' || p[1] != 'm' || p[3] != DM_OBJ_VERSION)
		return 0;
	if (p[2] != DM_OBJ_FILE && p[2] != DM_OBJ_TREE && p[2] != DM_OBJ_COMMIT)
		return 0;
	return p[2];
}

static int write_header(struct dm_buf *out, int kind)
{
	const unsigned char hdr[HDR_LEN] = {'d', 'm', (unsigned char)kind, DM_OBJ_VERSION};

	return dm_buf_add(out, hdr, sizeof(hdr));
}

static int read_header(struct dm_reader *r, int kind, struct dm_err *err)
{
	unsigned char hdr[HDR_LEN];

	if (dm_read_raw(r, hdr, sizeof(hdr)) || hdr[0] != 'd' || hdr[1] != 'm')
		return dm_err_set(err, DM_ECORRUPT, "corrupt %s object: bad header",
				  dm_obj_kind_name(kind));
	if (hdr[2] != kind)
		return dm_err_set(err, DM_ECORRUPT, "corrupt object: expected a %s, found a %s",
				  dm_obj_kind_name(kind), dm_obj_kind_name(hdr[2]));
	if (hdr[3] != DM_OBJ_VERSION)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "%s object has format version %u; this dm reads version %u",
				  dm_obj_kind_name(kind), hdr[3], DM_OBJ_VERSION);
	return 0;
}

static int nomem(struct dm_err *err)
{
	return dm_err_set(err, DM_ENOMEM, "out of memory encoding an object");
}

/* Copies n bytes into a fresh C string, refusing embedded NULs. */
static char *dup_text(const unsigned char *p, size_t n)
{
	if (memchr(p, '\0', n))
		return NULL;
	return dm_xstrndup((const char *)p, n);
}

/* ---- file ---- */

static int file_check(const struct dm_file *f, struct dm_err *err)
{
	uint64_t end = 0;

	if (f->size > DM_FILE_MAX_SIZE)
		return dm_err_set(err, DM_ETOOBIG, "file of %llu bytes is over the limit",
				  (unsigned long long)f->size);
	for (size_t i = 0; i < f->n; i++) {
		const struct dm_extent *x = &f->ext[i];

		if (x->len == 0 || x->len > DM_CHUNK_MAX_LIMIT)
			return dm_err_set(err, DM_ECORRUPT,
					  "corrupt file object: extent %zu has length %u", i,
					  x->len);
		if (x->offset < end || x->offset > f->size || f->size - x->offset < x->len)
			return dm_err_set(err, DM_ECORRUPT,
					  "corrupt file object: extent %zu at %llu overlaps or "
					  "lies outside the file",
					  i, (unsigned long long)x->offset);
		end = x->offset + x->len;
	}
	return 0;
}

int dm_file_encode(struct dm_buf *out, const struct dm_file *f, struct dm_err *err)
{
	uint64_t end = 0;
	int rc = file_check(f, err);

	if (rc)
		return rc;
	rc = write_header(out, DM_OBJ_FILE) || dm_write_uvarint(out, f->size) ||
	     dm_write_uvarint(out, f->n);
	for (size_t i = 0; !rc && i < f->n; i++) {
		rc = dm_write_uvarint(out, f->ext[i].offset - end) ||
		     dm_write_uvarint(out, f->ext[i].len) || dm_write_oid(out, &f->ext[i].id);
		end = f->ext[i].offset + f->ext[i].len;
	}
	return rc ? nomem(err) : 0;
}

int dm_file_decode(struct dm_file *out, const void *data, size_t len, struct dm_err *err)
{
	struct dm_reader r;
	uint64_t n, end = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > DM_OBJ_MAX_SIZE)
		return dm_err_set(err, DM_ETOOBIG, "file object of %zu bytes is over the limit",
				  len);
	dm_reader_init(&r, data, len);
	rc = read_header(&r, DM_OBJ_FILE, err);
	if (rc)
		return rc;
	if (dm_read_uvarint(&r, &out->size) || dm_read_uvarint(&r, &n))
		goto corrupt;
	/* each extent takes at least 34 bytes */
	if (n > r.left / (2 + DM_OID_RAWSZ))
		goto corrupt;
	out->ext = dm_xcalloc(n, sizeof(*out->ext));
	out->n = (size_t)n;
	for (size_t i = 0; i < out->n; i++) {
		uint64_t gap, xlen;

		if (dm_read_uvarint(&r, &gap) || dm_read_uvarint(&r, &xlen) ||
		    dm_read_oid(&r, &out->ext[i].id))
			goto corrupt;
		if (gap > DM_FILE_MAX_SIZE || xlen > DM_CHUNK_MAX_LIMIT)
			goto corrupt;
		out->ext[i].offset = end + gap;
		out->ext[i].len = (uint32_t)xlen;
		end = out->ext[i].offset + xlen;
	}
	if (r.left)
		goto corrupt;
	rc = file_check(out, err);
	if (rc) {
		dm_file_release(out);
		return rc;
	}
	return 0;
corrupt:
	dm_file_release(out);
	return dm_err_set(err, DM_ECORRUPT, "corrupt file object: truncated or malformed");
}

void dm_file_release(struct dm_file *f)
{
	free(f->ext);
	f->ext = NULL;
	f->n = 0;
	f->size = 0;
}

/* ---- tree ---- */

int dm_tree_name_check(const char *name, size_t len, struct dm_err *err)
{
	if (len == 0)
		return dm_err_set(err, DM_EINVAL, "empty file name");
	if (len > DM_NAME_MAX)
		return dm_err_set(err, DM_EINVAL, "file name of %zu bytes is over the limit of %u",
				  len, DM_NAME_MAX);
	if (memchr(name, '\0', len))
		return dm_err_set(err, DM_EINVAL, "file name contains a NUL byte");
	if (memchr(name, '/', len))
		return dm_err_set(err, DM_EINVAL, "file name '%.*s' contains '/'", (int)len, name);
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return dm_err_set(err, DM_EINVAL, "file name '%.*s' is not allowed", (int)len,
				  name);
	return 0;
}

static int name_cmp(const char *a, const char *b)
{
	return strcmp(a, b); /* bytewise: strcmp compares as unsigned char */
}

static int entry_cmp(const void *a, const void *b)
{
	return name_cmp(((const struct dm_tree_entry *)a)->name,
			((const struct dm_tree_entry *)b)->name);
}

void dm_tree_sort(struct dm_tree *t)
{
	if (t->n > 1)
		qsort(t->e, t->n, sizeof(*t->e), entry_cmp);
}

const struct dm_tree_entry *dm_tree_find(const struct dm_tree *t, const char *name)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = name_cmp(t->e[mid].name, name);

		if (c == 0)
			return &t->e[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Sets err's code and prefixes its message; returns code. */
static int relabel(struct dm_err *err, int code, const char *what)
{
	if (err) {
		dm_err_prefix(err, "%s", what);
		err->code = code;
	}
	return code;
}

/* Checks one entry; the message names the entry but says nothing of the
 * caller (decoder or encoder), which relabels it. */
static int entry_check(const struct dm_tree_entry *e, struct dm_err *err)
{
	int rc = dm_tree_name_check(e->name, strlen(e->name), err);

	if (rc)
		return rc;
	if (e->mode > 07777)
		return dm_err_set(err, DM_EINVAL, "'%s' has mode %o", e->name, e->mode);
	switch (e->type) {
	case DM_ENTRY_FILE:
		if (e->size > DM_FILE_MAX_SIZE)
			return dm_err_set(err, DM_EINVAL, "'%s' is too large", e->name);
		break;
	case DM_ENTRY_DIR:
		if (e->size != 0)
			return dm_err_set(err, DM_EINVAL, "directory '%s' has a size", e->name);
		break;
	case DM_ENTRY_SYMLINK:
		if (!e->target || !e->target[0] || strlen(e->target) > DM_SYMLINK_MAX ||
		    e->size != strlen(e->target))
			return dm_err_set(err, DM_EINVAL, "symlink '%s' has a bad target", e->name);
		break;
	default:
		return dm_err_set(err, DM_EINVAL, "'%s' has unknown type %u", e->name, e->type);
	}
	return 0;
}

int dm_tree_encode(struct dm_buf *out, const struct dm_tree *t, struct dm_err *err)
{
	int rc;

	if (t->n > DM_TREE_MAX_ENTRIES)
		return dm_err_set(err, DM_ETOOBIG, "directory with %zu entries is over the limit",
				  t->n);
	for (size_t i = 0; i < t->n; i++) {
		rc = entry_check(&t->e[i], err);
		if (rc)
			return relabel(err, DM_EINVAL, "cannot encode tree");
		if (i > 0 && name_cmp(t->e[i - 1].name, t->e[i].name) >= 0)
			return dm_err_set(err, DM_EINVAL,
					  "cannot encode tree: names not sorted or duplicate at '%s'",
					  t->e[i].name);
	}
	rc = write_header(out, DM_OBJ_TREE) || dm_write_uvarint(out, t->n);
	for (size_t i = 0; !rc && i < t->n; i++) {
		const struct dm_tree_entry *e = &t->e[i];

		rc = dm_write_bytes(out, e->name, strlen(e->name)) || dm_write_u8(out, e->type) ||
		     dm_write_uvarint(out, e->mode) || dm_write_uvarint(out, e->uid) ||
		     dm_write_uvarint(out, e->gid) || dm_write_svarint(out, e->mtime_ns) ||
		     dm_write_uvarint(out, e->size);
		if (rc)
			break;
		if (e->type == DM_ENTRY_SYMLINK)
			rc = dm_write_bytes(out, e->target, strlen(e->target));
		else
			rc = dm_write_oid(out, &e->id);
	}
	if (!rc && out->len > DM_OBJ_MAX_SIZE)
		return dm_err_set(err, DM_ETOOBIG, "tree object is over the size limit");
	return rc ? nomem(err) : 0;
}

int dm_tree_decode(struct dm_tree *out, const void *data, size_t len, struct dm_err *err)
{
	struct dm_reader r;
	uint64_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > DM_OBJ_MAX_SIZE)
		return dm_err_set(err, DM_ETOOBIG, "tree object of %zu bytes is over the limit",
				  len);
	dm_reader_init(&r, data, len);
	rc = read_header(&r, DM_OBJ_TREE, err);
	if (rc)
		return rc;
	if (dm_read_uvarint(&r, &n))
		goto corrupt;
	/* an entry takes at least 1+1+1+1+1+1+1+1 bytes plus a name byte */
	if (n > DM_TREE_MAX_ENTRIES || n > r.left / 9)
		goto corrupt;
	out->e = dm_xcalloc(n, sizeof(*out->e));
	for (size_t i = 0; i < (size_t)n; i++) {
		struct dm_tree_entry *e = &out->e[i];
		const unsigned char *p;
		size_t plen;
		uint64_t mode, uid, gid;

		if (dm_read_bytes(&r, &p, &plen, DM_NAME_MAX))
			goto corrupt;
		e->name = dup_text(p, plen);
		out->n = i + 1;
		if (!e->name || dm_read_u8(&r, &e->type) || dm_read_uvarint(&r, &mode) ||
		    dm_read_uvarint(&r, &uid) || dm_read_uvarint(&r, &gid) ||
		    dm_read_svarint(&r, &e->mtime_ns) || dm_read_uvarint(&r, &e->size))
			goto corrupt;
		if (mode > 07777 || uid > UINT32_MAX || gid > UINT32_MAX)
			goto corrupt;
		e->mode = (uint32_t)mode;
		e->uid = (uint32_t)uid;
		e->gid = (uint32_t)gid;
		if (e->type == DM_ENTRY_SYMLINK) {
			if (dm_read_bytes(&r, &p, &plen, DM_SYMLINK_MAX))
				goto corrupt;
			e->target = dup_text(p, plen);
			if (!e->target)
				goto corrupt;
		} else if (dm_read_oid(&r, &e->id)) {
			goto corrupt;
		}
		rc = entry_check(e, err);
		if (rc) {
			rc = relabel(err, DM_ECORRUPT, "corrupt tree object");
			goto fail;
		}
		if (i > 0 && name_cmp(out->e[i - 1].name, e->name) >= 0) {
			rc = dm_err_set(err, DM_ECORRUPT,
					"corrupt tree object: names not sorted or duplicate at '%s'",
					e->name);
			goto fail;
		}
	}
	if (r.left)
		goto corrupt;
	return 0;
corrupt:
	rc = dm_err_set(err, DM_ECORRUPT, "corrupt tree object: truncated or malformed");
fail:
	dm_tree_release(out);
	return rc;
}

void dm_tree_release(struct dm_tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->e[i].name);
		free(t->e[i].target);
	}
	free(t->e);
	t->e = NULL;
	t->n = 0;
}

/* ---- commit ---- */

int dm_meta_key_check(const char *key, struct dm_err *err)
{
	size_t len = strlen(key);

	if (len == 0 || len > DM_META_KEY_MAX)
		return dm_err_set(err, DM_EINVAL, "metadata key '%s' must be 1 to %u characters",
				  key, DM_META_KEY_MAX);
	if (key[0] < 'a' || key[0] > 'z')
		return dm_err_set(err, DM_EINVAL,
				  "metadata key '%s' must start with a lowercase letter", key);
	for (size_t i = 1; i < len; i++) {
		char c = key[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return dm_err_set(err, DM_EINVAL,
					  "metadata key '%s' may hold only letters, digits, '_', "
					  "'-' and '.'",
					  key);
	}
	return 0;
}

static int text_ok(const char *s, size_t max)
{
	return s && strlen(s) <= max;
}

static int commit_check(const struct dm_commit *c, struct dm_err *err)
{
	if (!text_ok(c->dot_id, DM_COMMIT_ID_MAX) || !c->dot_id[0])
		return dm_err_set(err, DM_EINVAL, "commit has a missing or overlong dot id");
	if (!text_ok(c->commit_id, DM_COMMIT_ID_MAX) || !c->commit_id[0])
		return dm_err_set(err, DM_EINVAL, "commit has a missing or overlong commit id");
	if (c->nparents > DM_COMMIT_MAX_PARENTS)
		return dm_err_set(err, DM_EINVAL, "commit has %zu parents; the limit is %u",
				  c->nparents, DM_COMMIT_MAX_PARENTS);
	for (size_t i = 0; i < c->nparents; i++)
		if (!text_ok(c->parents[i], DM_COMMIT_ID_MAX) || !c->parents[i][0])
			return dm_err_set(err, DM_EINVAL, "commit has a bad parent id");
	if (!text_ok(c->author, DM_COMMIT_AUTHOR_MAX))
		return dm_err_set(err, DM_EINVAL, "commit author is missing or too long");
	if (!text_ok(c->message, DM_COMMIT_MSG_MAX))
		return dm_err_set(err, DM_EINVAL, "commit message is missing or too long");
	if (c->nmeta > DM_COMMIT_MAX_META)
		return dm_err_set(err, DM_EINVAL, "commit has %zu metadata entries; the limit is %u",
				  c->nmeta, DM_COMMIT_MAX_META);
	for (size_t i = 0; i < c->nmeta; i++) {
		int rc = dm_meta_key_check(c->meta[i].key, err);

		if (rc)
			return rc;
		if (!text_ok(c->meta[i].value, DM_META_VALUE_MAX))
			return dm_err_set(err, DM_EINVAL, "metadata value of '%s' is too long",
					  c->meta[i].key);
		if (i > 0 && strcmp(c->meta[i - 1].key, c->meta[i].key) >= 0)
			return dm_err_set(err, DM_EINVAL,
					  "metadata keys not sorted or duplicate at '%s'",
					  c->meta[i].key);
	}
	return 0;
}

int dm_commit_encode(struct dm_buf *out, const struct dm_commit *c, struct dm_err *err)
{
	int rc = commit_check(c, err);

	if (rc)
		return rc;
	rc = write_header(out, DM_OBJ_COMMIT) ||
	     dm_write_bytes(out, c->dot_id, strlen(c->dot_id)) ||
	     dm_write_bytes(out, c->commit_id, strlen(c->commit_id)) ||
	     dm_write_uvarint(out, c->nparents);
	for (size_t i = 0; !rc && i < c->nparents; i++)
		rc = dm_write_bytes(out, c->parents[i], strlen(c->parents[i]));
	rc = rc || dm_write_oid(out, &c->tree) ||
	     dm_write_bytes(out, c->author, strlen(c->author)) ||
	     dm_write_svarint(out, c->time_ns) ||
	     dm_write_bytes(out, c->message, strlen(c->message)) ||
	     dm_write_uvarint(out, c->nmeta);
	for (size_t i = 0; !rc && i < c->nmeta; i++)
		rc = dm_write_bytes(out, c->meta[i].key, strlen(c->meta[i].key)) ||
		     dm_write_bytes(out, c->meta[i].value, strlen(c->meta[i].value));
	return rc ? nomem(err) : 0;
}

static int read_text(struct dm_reader *r, char **out, size_t max)
{
	const unsigned char *p;
	size_t n;

	if (dm_read_bytes(r, &p, &n, max))
		return DM_ECORRUPT;
	*out = dup_text(p, n);
	return *out ? 0 : DM_ECORRUPT;
}

int dm_commit_decode(struct dm_commit *out, const void *data, size_t len, struct dm_err *err)
{
	struct dm_reader r;
	uint64_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > DM_OBJ_MAX_SIZE)
		return dm_err_set(err, DM_ETOOBIG, "commit object of %zu bytes is over the limit",
				  len);
	dm_reader_init(&r, data, len);
	rc = read_header(&r, DM_OBJ_COMMIT, err);
	if (rc)
		return rc;
	if (read_text(&r, &out->dot_id, DM_COMMIT_ID_MAX) ||
	    read_text(&r, &out->commit_id, DM_COMMIT_ID_MAX) || dm_read_uvarint(&r, &n) ||
	    n > DM_COMMIT_MAX_PARENTS)
		goto corrupt;
	out->parents = dm_xcalloc(n, sizeof(*out->parents));
	for (size_t i = 0; i < (size_t)n; i++) {
		out->nparents = i + 1;
		if (read_text(&r, &out->parents[i], DM_COMMIT_ID_MAX))
			goto corrupt;
	}
	if (dm_read_oid(&r, &out->tree) || read_text(&r, &out->author, DM_COMMIT_AUTHOR_MAX) ||
	    dm_read_svarint(&r, &out->time_ns) ||
	    read_text(&r, &out->message, DM_COMMIT_MSG_MAX) || dm_read_uvarint(&r, &n) ||
	    n > DM_COMMIT_MAX_META || n > r.left / 2)
		goto corrupt;
	out->meta = dm_xcalloc(n, sizeof(*out->meta));
	for (size_t i = 0; i < (size_t)n; i++) {
		out->nmeta = i + 1;
		if (read_text(&r, &out->meta[i].key, DM_META_KEY_MAX) ||
		    read_text(&r, &out->meta[i].value, DM_META_VALUE_MAX))
			goto corrupt;
	}
	if (r.left)
		goto corrupt;
	rc = commit_check(out, err);
	if (rc) {
		dm_commit_release(out);
		return relabel(err, DM_ECORRUPT, "corrupt commit object");
	}
	return 0;
corrupt:
	dm_commit_release(out);
	return dm_err_set(err, DM_ECORRUPT, "corrupt commit object: truncated or malformed");
}

void dm_commit_release(struct dm_commit *c)
{
	free(c->dot_id);
	free(c->commit_id);
	for (size_t i = 0; i < c->nparents; i++)
		free(c->parents[i]);
	free(c->parents);
	free(c->author);
	free(c->message);
	for (size_t i = 0; i < c->nmeta; i++) {
		free(c->meta[i].key);
		free(c->meta[i].value);
	}
	free(c->meta);
	memset(c, 0, sizeof(*c));
}

/* ---- any object, and what it names ---- */

int dm_object_decode(struct dm_object *out, int kind, const void *data, size_t len,
		     struct dm_err *err)
{
	memset(out, 0, sizeof(*out));
	out->kind = kind;
	switch (kind) {
	case DM_OBJ_CHUNK:
		return 0;
	case DM_OBJ_FILE:
		return dm_file_decode(&out->file, data, len, err);
	case DM_OBJ_TREE:
		return dm_tree_decode(&out->tree, data, len, err);
	case DM_OBJ_COMMIT:
		return dm_commit_decode(&out->commit, data, len, err);
	default:
		out->kind = 0;
		return dm_err_set(err, DM_EINVAL, "unknown object kind %d", kind);
	}
}

void dm_object_release(struct dm_object *o)
{
	if (o->kind == DM_OBJ_FILE)
		dm_file_release(&o->file);
	else if (o->kind == DM_OBJ_TREE)
		dm_tree_release(&o->tree);
	else if (o->kind == DM_OBJ_COMMIT)
		dm_commit_release(&o->commit);
	o->kind = 0;
}

int dm_object_each_ref(const struct dm_object *o, dm_obj_ref_fn fn, void *ctx)
{
	struct dm_obj_ref ref;
	int rc = 0;

	memset(&ref, 0, sizeof(ref));
	switch (o->kind) {
	case DM_OBJ_FILE:
		ref.kind = DM_OBJ_CHUNK;
		for (size_t i = 0; !rc && i < o->file.n; i++) {
			ref.ext = &o->file.ext[i];
			ref.id = &ref.ext->id;
			ref.len = ref.ext->len;
			rc = fn(ctx, &ref);
		}
		break;
	case DM_OBJ_TREE:
		for (size_t i = 0; !rc && i < o->tree.n; i++) {
			ref.entry = &o->tree.e[i];
			if (ref.entry->type == DM_ENTRY_FILE)
				ref.kind = DM_OBJ_FILE;
			else if (ref.entry->type == DM_ENTRY_DIR)
				ref.kind = DM_OBJ_TREE;
			else
				continue;
			ref.id = &ref.entry->id;
			rc = fn(ctx, &ref);
		}
		break;
	case DM_OBJ_COMMIT:
		ref.kind = DM_OBJ_TREE;
		ref.id = &o->commit.tree;
		rc = fn(ctx, &ref);
		break;
	default:
		break;
	}
	return rc;
}

int dm_object_refs(int kind, const void *data, size_t len, dm_obj_ref_fn fn, void *ctx,
		   struct dm_err *err)
{
	struct dm_object o;
	int rc = dm_object_decode(&o, kind, data, len, err);

	if (!rc)
		rc = dm_object_each_ref(&o, fn, ctx);
	dm_object_release(&o);
	return rc;
}
