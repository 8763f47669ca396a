/*
 * s3_read.c - dotmesh's S3 reads from the store at a commit (see
 * s3_read.h): listings, a file's bytes, a directory as a tar.
 *
 * Invariants:
 *   - Paths are walked through trees only, one name at a time: a symbolic
 *     link on the way or at the end is refused, never followed.
 *   - A read streams: a file's bytes come one piece at a time (a chunk,
 *     or zeros for a hole); a tar is made by libarchive, unbuffered, one
 *     header or piece per step, into `out`, which holds no more than one
 *     step's bytes. Trees are decoded one per open directory level, at
 *     most DEPTH_MAX deep.
 *   - The object a read streams is pinned from open to free.
 */
#include "server/api/s3_read.h"

#include <archive.h>
#include <archive_entry.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/dots/s3key.h"
#include "store/store.h"
#include "util/log.h"

#include "util/banned.h"

#define DEFAULT_SUBDOT "__default__"
#define DEPTH_MAX      128
#define ZEROS          (64u * 1024)

static const unsigned char zeros[ZEROS];

/* A directory of a tar being written: its tree and the next entry. */
struct frame {
	struct dm_tree t;
	size_t i;
	char *path; /* in the tar */
};

struct dm_s3_read {
	struct dm_store *store;
	dm_oid pinned;
	bool dir;
	/* the file whose bytes go out: where, and the chunk in hand */
	bool in_file;
	struct dm_file f;
	uint64_t pos;
	size_t ext;
	struct dm_buf chunk;
	size_t chunk_ext; /* which extent chunk holds; SIZE_MAX: none */
	/* a tar */
	struct archive *a;
	struct frame stack[DEPTH_MAX];
	size_t depth;
	struct dm_buf out; /* encoded, not yet handed out, from out_off */
	size_t out_off;
	bool closed, failed;
};

/* ---- objects ---- */

static int load_tree(struct dm_tree *out, struct dm_store *s, const dm_oid *id, struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	int rc = dm_store_get(s, id, &b, NULL, err);

	memset(out, 0, sizeof(*out));
	if (!rc)
		rc = dm_tree_decode(out, b.data, b.len, err);
	dm_buf_release(&b);
	return rc;
}

static int load_file(struct dm_file *out, struct dm_store *s, const dm_oid *id, struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	int rc = dm_store_get(s, id, &b, NULL, err);

	memset(out, 0, sizeof(*out));
	if (!rc)
		rc = dm_file_decode(out, b.data, b.len, err);
	dm_buf_release(&b);
	return rc;
}

int dm_s3_commit_tree(dm_oid *out, struct dm_store *store, const char *dot_id, const char *shown,
		      const char *commit, struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_commit c;
	unsigned flags = 0;
	dm_oid id;
	int rc = dm_store_commit_info(store, dot_id, commit, &id, &flags, err);

	if (rc == DM_ENOTFOUND)
		return dm_err_set(err, DM_ENOTFOUND, "dot '%s' has no commit '%s'", shown, commit);
	if (!rc && (flags & DM_COMMIT_PRUNED))
		return dm_err_set(err, DM_ENOTFOUND,
				  "commit '%s' of dot '%s' was pruned: its files are gone", commit,
				  shown);
	if (!rc)
		rc = dm_store_get(store, &id, &b, NULL, err);
	memset(&c, 0, sizeof(c));
	if (!rc)
		rc = dm_commit_decode(&c, b.data, b.len, err);
	if (!rc)
		*out = c.tree;
	dm_commit_release(&c);
	dm_buf_release(&b);
	return rc;
}

/*
 * The entry key names under the __default__ subdot of tree (the subdot
 * itself for ""): into *e a copy of it (name not kept). Only directories
 * are entered on the way.
 */
static int lookup(struct dm_tree_entry *out, struct dm_store *s, const dm_oid *tree,
		  const char *key, struct dm_err *err)
{
	char name[DM_S3_KEY_MAX + 1];
	const char *rest = key;
	dm_oid dir = *tree;

	memset(out, 0, sizeof(*out));
	snprintf(name, sizeof(name), "%s", DEFAULT_SUBDOT);
	for (;;) {
		const struct dm_tree_entry *e;
		struct dm_tree t;
		const char *slash;
		size_t n;
		int rc = load_tree(&t, s, &dir, err);

		if (rc)
			return rc;
		e = dm_tree_find(&t, name);
		if (e) {
			out->type = e->type;
			out->mode = e->mode;
			out->uid = e->uid;
			out->gid = e->gid;
			out->mtime_ns = e->mtime_ns;
			out->size = e->size;
			out->id = e->id;
		}
		dm_tree_release(&t);
		if (!e)
			return dm_err_set(err, DM_ENOTFOUND, "no key '%s' in the commit", key);
		if (out->type == DM_ENTRY_SYMLINK)
			return dm_err_set(err, DM_EPERM,
					  "key '%s' is or goes through a symbolic link: links are "
					  "not followed",
					  key);
		if (!*rest)
			return 0;
		if (out->type != DM_ENTRY_DIR)
			return dm_err_set(err, DM_ENOTFOUND, "no key '%s' in the commit", key);
		dir = out->id;
		slash = strchr(rest, '/');
		n = slash ? (size_t)(slash - rest) : strlen(rest);
		memcpy(name, rest, n);
		name[n] = '\0';
		rest += n + (slash ? 1 : 0);
	}
}

/* ---- listings ---- */

/* RFC 3339 in UTC with the nanoseconds it has (Go's RFC3339Nano). */
static void time_text(char out[48], int64_t ns)
{
	time_t sec = (time_t)(ns / 1000000000);
	long frac = (long)(ns % 1000000000);
	struct tm tm;
	size_t n;

	if (frac < 0) {
		frac += 1000000000;
		sec--;
	}
	gmtime_r(&sec, &tm);
	n = strftime(out, 48, "%Y-%m-%dT%H:%M:%S", &tm);
	if (frac) {
		char f[16];
		size_t len;

		snprintf(f, sizeof(f), ".%09ld", frac);
		len = strlen(f);
		while (f[len - 1] == '0')
			f[--len] = '\0';
		snprintf(out + n, 48 - n, "%sZ", f);
	} else {
		snprintf(out + n, 48 - n, "Z");
	}
}

/* How XML text spells the characters it cannot hold as they are. */
static const char *xml_escape(unsigned char c)
{
	static const char *const esc[128] = {
		['<'] = "&lt;", ['>'] = "&gt;", ['&'] = "&amp;", ['"'] = "&#34;", ['\''] = "&#39;",
	};

	if (c < 0x20 && c != '\t' && c != '\n')
		return "\xef\xbf\xbd"; /* not allowed in XML 1.0: U+FFFD */
	return c < 128 ? esc[c] : NULL;
}

static int add_xml_text(struct dm_buf *b, const char *s)
{
	int rc = 0;

	for (; *s && !rc; s++) {
		const char *e = xml_escape((unsigned char)*s);

		rc = e ? dm_buf_adds(b, e) : dm_buf_addc(b, (unsigned char)*s);
	}
	return rc;
}

struct lister {
	struct dm_store *store;
	const struct dm_s3_list_opts *o;
	uint64_t total, first;
	json_t *items; /* the page, as {key, time_ns, size, dir} */
};

static void list_item(struct lister *l, const char *key, const struct dm_tree_entry *e)
{
	if (l->total >= l->first && l->total - l->first < l->o->max_keys)
		json_array_append_new(l->items,
				      json_pack("{s:s, s:I, s:I, s:b}", "key", key, "time_ns",
						(json_int_t)e->mtime_ns, "size",
						(json_int_t)(e->type == DM_ENTRY_DIR ? 0 : e->size),
						"dir", e->type == DM_ENTRY_DIR));
	l->total++;
}

/* The entries of directory tree `id`, whose keys start with prefix. */
static int list_dir(struct lister *l, const dm_oid *id, const char *prefix, unsigned depth,
		    struct dm_err *err)
{
	struct dm_buf key = DM_BUF_INIT;
	struct dm_tree t;
	int rc;

	if (depth > DEPTH_MAX)
		return dm_err_set(err, DM_ETOOBIG, "directories nest deeper than %d levels",
				  DEPTH_MAX);
	rc = load_tree(&t, l->store, id, err);
	for (int pass = 0; pass < 3 && !rc; pass++) {
		for (size_t i = 0; i < t.n && !rc; i++) {
			const struct dm_tree_entry *e = &t.e[i];
			bool isdir = e->type == DM_ENTRY_DIR;

			if (e->name[0] == '.' || (pass != 1) != isdir ||
			    (pass == 0 && !l->o->directories) || (pass == 2 && !l->o->recursive))
				continue;
			dm_buf_reset(&key);
			rc = dm_buf_addf(&key, "%s%s%s", prefix, prefix[0] ? "/" : "", e->name);
			if (!rc && pass < 2)
				list_item(l, (const char *)key.data, e);
			else if (!rc)
				rc = list_dir(l, &e->id, (const char *)key.data, depth + 1, err);
		}
	}
	dm_tree_release(&t);
	dm_buf_release(&key);
	return rc;
}

static int list_xml(struct dm_buf *b, const struct lister *l)
{
	size_t i;
	json_t *it;
	int rc = dm_buf_adds(b, "<ListBucketResult><Name>");

	rc = rc ? rc : add_xml_text(b, l->o->bucket);
	rc = rc ? rc : dm_buf_adds(b, "</Name><Prefix>");
	rc = rc ? rc : add_xml_text(b, l->o->prefix);
	rc = rc ? rc : dm_buf_adds(b, "</Prefix>");
	json_array_foreach(l->items, i, it)
	{
		char when[48];

		time_text(when, (int64_t)json_integer_value(json_object_get(it, "time_ns")));
		rc = rc ? rc : dm_buf_adds(b, "<Contents><Key>");
		rc = rc ? rc : add_xml_text(b, json_string_value(json_object_get(it, "key")));
		rc = rc ? rc
			: dm_buf_addf(b,
				      "</Key><LastModified>%s</LastModified><Size>%" PRId64
				      "</Size><Directory>%s</Directory></Contents>",
				      when,
				      (int64_t)json_integer_value(json_object_get(it, "size")),
				      json_is_true(json_object_get(it, "dir")) ? "true" : "false");
	}
	rc = rc ? rc
		: dm_buf_addf(b, "<TotalResults>%" PRIu64 "</TotalResults></ListBucketResult>",
			      l->total);
	return rc;
}

static int list_json(struct dm_buf *b, const struct lister *l)
{
	json_t *contents = json_array(), *doc, *it;
	char *text;
	size_t i;
	int rc;

	json_array_foreach(l->items, i, it)
	{
		char when[48];

		time_text(when, (int64_t)json_integer_value(json_object_get(it, "time_ns")));
		json_array_append_new(contents,
				      json_pack("{s:O, s:s, s:O, s:O}", "key",
						json_object_get(it, "key"), "last_modified", when,
						"size", json_object_get(it, "size"), "directory",
						json_object_get(it, "dir")));
	}
	doc = json_pack("{s:s, s:s, s:o, s:I}", "name", l->o->bucket, "prefix", l->o->prefix,
			"contents", contents, "total_results", (json_int_t)l->total);
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!text)
		return DM_ENOMEM;
	rc = dm_buf_adds(b, text);
	free(text);
	return rc;
}

int dm_s3_list(struct dm_buf *body, struct dm_store *store, const dm_oid *tree,
	       const struct dm_s3_list_opts *o, struct dm_err *err)
{
	struct lister l = {store, o, 0, o->page * o->max_keys, json_array()};
	struct dm_tree_entry at;
	int rc = lookup(&at, store, tree, o->prefix, err);

	if (!rc && at.type != DM_ENTRY_DIR)
		rc = dm_err_set(err, DM_EINVAL, "prefix '%s' is a file, not a directory",
				o->prefix);
	if (!rc)
		rc = list_dir(&l, &at.id, o->prefix, 0, err);
	if (!rc && (o->json ? list_json(body, &l) : list_xml(body, &l)))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory for a listing");
	json_decref(l.items);
	return rc;
}

/* ---- a file's bytes, piece by piece ---- */

/* The bytes of r->f at r->pos, as far as one piece goes: *n is 0 at its
 * end. */
static int piece(struct dm_s3_read *r, const unsigned char **p, size_t *n, struct dm_err *err)
{
	const struct dm_extent *e;
	uint64_t gap_end;

	*n = 0;
	if (r->pos >= r->f.size)
		return 0;
	while (r->ext < r->f.n && r->f.ext[r->ext].offset + r->f.ext[r->ext].len <= r->pos)
		r->ext++;
	e = r->ext < r->f.n ? &r->f.ext[r->ext] : NULL;
	if (e && e->offset <= r->pos) {
		if (r->chunk_ext != r->ext) {
			int rc;

			dm_buf_reset(&r->chunk);
			rc = dm_store_get(r->store, &e->id, &r->chunk, NULL, err);
			if (!rc && r->chunk.len != e->len)
				rc = dm_err_set(err, DM_ECORRUPT,
						"a chunk is not the length its file says");
			if (rc)
				return rc;
			r->chunk_ext = r->ext;
		}
		*p = r->chunk.data + (r->pos - e->offset);
		*n = (size_t)(e->offset + e->len - r->pos);
		return 0;
	}
	gap_end = e ? e->offset : r->f.size;
	*p = zeros;
	*n = gap_end - r->pos < ZEROS ? (size_t)(gap_end - r->pos) : ZEROS;
	return 0;
}

static void start_file(struct dm_s3_read *r)
{
	r->in_file = r->f.size > 0;
	r->pos = 0;
	r->ext = 0;
	r->chunk_ext = SIZE_MAX;
}

/* ---- a tar, step by step ---- */

static la_ssize_t tar_out(struct archive *a, void *ctx, const void *buf, size_t len)
{
	struct dm_s3_read *r = ctx;

	(void)a;
	return dm_buf_add(&r->out, buf, len) ? -1 : (la_ssize_t)len;
}

/* Writes the header of e (at path in the tar). */
static int tar_header(struct dm_s3_read *r, const char *path, const struct dm_tree_entry *e,
		      struct dm_err *err)
{
	struct archive_entry *ae = archive_entry_new();
	int rc = 0;

	if (!ae)
		return dm_err_set(err, DM_ENOMEM, "out of memory for a tar entry");
	archive_entry_set_pathname(ae, path);
	archive_entry_set_perm(ae, e->mode & 07777);
	archive_entry_set_uid(ae, e->uid);
	archive_entry_set_gid(ae, e->gid);
	archive_entry_set_mtime(ae, (time_t)(e->mtime_ns / 1000000000), e->mtime_ns % 1000000000);
	if (e->type == DM_ENTRY_DIR) {
		archive_entry_set_filetype(ae, AE_IFDIR);
	} else if (e->type == DM_ENTRY_SYMLINK) {
		archive_entry_set_filetype(ae, AE_IFLNK);
		archive_entry_set_symlink(ae, e->target ? e->target : "");
	} else {
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_size(ae, (la_int64_t)e->size);
	}
	if (archive_write_header(r->a, ae) != ARCHIVE_OK)
		rc = dm_err_set(err, DM_EIO, "cannot write the tar header of '%s': %s", path,
				archive_error_string(r->a));
	archive_entry_free(ae);
	return rc;
}

/* Opens directory entry e (at path) as the next level of the tar. */
static int tar_push(struct dm_s3_read *r, const char *path, const dm_oid *id, struct dm_err *err)
{
	struct frame *f;
	int rc;

	if (r->depth == DEPTH_MAX)
		return dm_err_set(err, DM_ETOOBIG, "directories nest deeper than %d levels",
				  DEPTH_MAX);
	f = &r->stack[r->depth];
	rc = load_tree(&f->t, r->store, id, err);
	if (rc)
		return rc;
	f->i = 0;
	f->path = dm_xstrdup(path);
	r->depth++;
	return 0;
}

static void tar_pop(struct dm_s3_read *r)
{
	struct frame *f = &r->stack[--r->depth];

	dm_tree_release(&f->t);
	free(f->path);
	f->path = NULL;
}

/* One step of the tar into r->out: a piece of a file, a header, or the
 * end. */
static int tar_step(struct dm_s3_read *r, struct dm_err *err)
{
	struct dm_buf path = DM_BUF_INIT;
	const struct dm_tree_entry *e;
	struct frame *f;
	int rc = 0;

	if (r->in_file) {
		const unsigned char *p;
		size_t n;

		rc = piece(r, &p, &n, err);
		if (!rc && archive_write_data(r->a, p, n) != (la_ssize_t)n)
			rc = dm_err_set(err, DM_EIO, "cannot write the tar: %s",
					archive_error_string(r->a));
		r->pos += n;
		if (!rc && r->pos >= r->f.size) {
			r->in_file = false;
			dm_file_release(&r->f);
		}
		return rc;
	}
	if (!r->depth) {
		if (archive_write_close(r->a) != ARCHIVE_OK)
			rc = dm_err_set(err, DM_EIO, "cannot end the tar: %s",
					archive_error_string(r->a));
		r->closed = true;
		return rc;
	}
	f = &r->stack[r->depth - 1];
	if (f->i == f->t.n) {
		tar_pop(r);
		return 0;
	}
	e = &f->t.e[f->i++];
	rc = dm_buf_addf(&path, "%s/%s", f->path, e->name);
	if (!rc)
		rc = tar_header(r, (const char *)path.data, e, err);
	if (!rc && e->type == DM_ENTRY_DIR)
		rc = tar_push(r, (const char *)path.data, &e->id, err);
	if (!rc && e->type == DM_ENTRY_FILE && !(rc = load_file(&r->f, r->store, &e->id, err)))
		start_file(r);
	dm_buf_release(&path);
	return rc;
}

/* ---- reads ---- */

int dm_s3_read_open(struct dm_s3_read **out, struct dm_store *store, const dm_oid *tree,
		    const char *key, int64_t *size, bool *dir, struct dm_err *err)
{
	struct dm_tree_entry e;
	struct dm_s3_read *r;
	const char *base;
	int rc;

	*out = NULL;
	rc = lookup(&e, store, tree, key, err);
	if (rc)
		return rc;
	r = dm_xcalloc(1, sizeof(*r));
	r->store = store;
	r->pinned = e.id;
	dm_store_pin(store, &e.id);
	dm_buf_init(&r->chunk, 0);
	dm_buf_init(&r->out, 0);
	r->chunk_ext = SIZE_MAX;
	r->dir = e.type == DM_ENTRY_DIR;
	if (!r->dir) {
		rc = load_file(&r->f, store, &e.id, err);
		if (!rc)
			start_file(r);
		*size = (int64_t)e.size;
		goto done;
	}
	*size = -1;
	r->a = archive_write_new();
	if (!r->a) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory for a tar writer");
		goto done;
	}
	base = strrchr(key, '/');
	base = base ? base + 1 : key;
	if (archive_write_set_format_pax_restricted(r->a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(r->a, 0) != ARCHIVE_OK ||
	    archive_write_open2(r->a, r, NULL, tar_out, NULL, NULL) != ARCHIVE_OK)
		rc = dm_err_set(err, DM_EIO, "cannot start a tar: %s", archive_error_string(r->a));
	if (!rc)
		rc = tar_header(r, base, &e, err);
	if (!rc)
		rc = tar_push(r, base, &e.id, err);
done:
	*dir = r->dir;
	if (rc)
		dm_s3_read_free(r);
	else
		*out = r;
	return rc;
}

ssize_t dm_s3_read_next(struct dm_s3_read *r, char *buf, size_t max)
{
	struct dm_err err;
	size_t done = 0;

	dm_err_clear(&err);
	while (done < max && !r->failed) {
		if (r->dir && r->out_off < r->out.len) {
			size_t n = r->out.len - r->out_off;

			n = n < max - done ? n : max - done;
			memcpy(buf + done, r->out.data + r->out_off, n);
			r->out_off += n;
			done += n;
			continue;
		}
		if (r->dir) {
			dm_buf_reset(&r->out);
			r->out_off = 0;
			if (r->closed)
				break;
			if (tar_step(r, &err))
				r->failed = true;
			continue;
		}
		{
			const unsigned char *p;
			size_t n;

			if (piece(r, &p, &n, &err)) {
				r->failed = true;
				break;
			}
			if (!n)
				break;
			n = n < max - done ? n : max - done;
			memcpy(buf + done, p, n);
			r->pos += n;
			done += n;
		}
	}
	if (r->failed) {
		dm_error("an S3 read was cut short: %s", err.msg[0] ? err.msg : "the tar failed");
		return done ? (ssize_t)done : -1;
	}
	return (ssize_t)done;
}

void dm_s3_read_free(struct dm_s3_read *r)
{
	if (!r)
		return;
	while (r->depth)
		tar_pop(r);
	if (r->a)
		archive_write_free(r->a);
	dm_file_release(&r->f);
	dm_buf_release(&r->chunk);
	dm_buf_release(&r->out);
	dm_store_unpin(r->store, &r->pinned);
	free(r);
}
