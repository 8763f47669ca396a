/*
 * test_object.c - the object encodings: round trips of every kind, and
 * every malformed input refused with a clear error and no crash.
 *
 * A property ties the two together: the encoding is canonical, so any bytes
 * that decode must re-encode to exactly the same bytes (one object, one id).
 * The walker of references (dm_object_refs) names exactly what each kind
 * points to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/chunker.h"
#include "store/codec.h"
#include "store/object.h"
#include "util/err.h"

#include "util/banned.h"

static dm_oid oid_of(unsigned char seed)
{
	dm_oid id;

	for (int i = 0; i < DM_OID_RAWSZ; i++)
		id.b[i] = (unsigned char)(seed * 31 + i);
	return id;
}

/* ---- builders of valid sample objects ---- */

static void sample_file(struct dm_buf *out)
{
	struct dm_extent ext[3] = {
		{0, 65536, oid_of(1)},
		{1 << 20, 100, oid_of(2)}, /* a hole before it */
		{(1 << 20) + 100, 20000, oid_of(3)},
	};
	struct dm_file f = {5u << 20, 3, ext}; /* and a hole after */
	struct dm_err err;

	assert_int_equal(dm_file_encode(out, &f, &err), 0);
}

static char name_nl[] = "new\nline";
static char name_sp[] = "with space";
static char name_uni[] = "\xc3\xa9t\xc3\xa9";
static char name_link[] = "link";
static char target[] = "../outside/target";

static void sample_tree(struct dm_buf *out)
{
	struct dm_tree_entry e[4] = {
		{name_link, DM_ENTRY_SYMLINK, 0777, 0, 0, -5, sizeof(target) - 1, {{0}}, target},
		{name_nl, DM_ENTRY_FILE, 04755, 1000, 1001, 1700000000123456789LL, 42, oid_of(7),
		 NULL},
		{name_sp, DM_ENTRY_DIR, 0700, 0, 0, 0, 0, oid_of(8), NULL},
		{name_uni, DM_ENTRY_FILE, 0, 4294967295u, 7, 1, 0, oid_of(9), NULL},
	};
	struct dm_tree t = {4, e};
	struct dm_err err;

	dm_tree_sort(&t);
	assert_int_equal(dm_tree_encode(out, &t, &err), 0);
}

static char s_dot[] = "9d0c8f0e-dot", s_commit[] = "0192f0c1-commit", s_p1[] = "parent-1",
	    s_author[] = "admin", s_msg[] = "first\nsecond line", s_k1[] = "app",
	    s_v1[] = "shop", s_k2[] = "zeta.x", s_v2[] = "";

static void sample_commit(struct dm_buf *out)
{
	char *parents[1] = {s_p1};
	struct dm_meta meta[2] = {{s_k1, s_v1}, {s_k2, s_v2}};
	struct dm_commit c = {s_dot, s_commit, 1, parents, oid_of(5), s_author,
			      1700000000000000000LL, s_msg, 2, meta};
	struct dm_err err;

	assert_int_equal(dm_commit_encode(out, &c, &err), 0);
}

/* ---- round trips ---- */

static void test_file_roundtrip(void **state)
{
	struct dm_buf a = DM_BUF_INIT, b = DM_BUF_INIT;
	struct dm_file f;
	struct dm_err err;

	(void)state;
	sample_file(&a);
	assert_int_equal(dm_obj_peek_kind(a.data, a.len), DM_OBJ_FILE);
	assert_int_equal(dm_file_decode(&f, a.data, a.len, &err), 0);
	assert_int_equal(f.size, 5u << 20);
	assert_int_equal(f.n, 3);
	assert_int_equal(f.ext[1].offset, 1 << 20);
	assert_int_equal(f.ext[2].len, 20000);
	assert_memory_equal(f.ext[2].id.b, oid_of(3).b, DM_OID_RAWSZ);
	assert_int_equal(dm_file_encode(&b, &f, &err), 0);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	dm_file_release(&f);
	dm_buf_release(&a);
	dm_buf_release(&b);
}

static void test_empty_file_roundtrip(void **state)
{
	struct dm_buf a = DM_BUF_INIT;
	struct dm_file f = {0, 0, NULL}, g;
	struct dm_err err;

	(void)state;
	assert_int_equal(dm_file_encode(&a, &f, &err), 0);
	assert_int_equal(dm_file_decode(&g, a.data, a.len, &err), 0);
	assert_int_equal(g.size, 0);
	assert_int_equal(g.n, 0);
	dm_file_release(&g);
	dm_buf_release(&a);
}

static void test_tree_roundtrip(void **state)
{
	struct dm_buf a = DM_BUF_INIT, b = DM_BUF_INIT;
	struct dm_tree t;
	const struct dm_tree_entry *e;
	struct dm_err err;

	(void)state;
	sample_tree(&a);
	assert_int_equal(dm_tree_decode(&t, a.data, a.len, &err), 0);
	assert_int_equal(t.n, 4);
	/* bytewise order: "link" < "new\nline" < "with space" < "\xc3..." */
	assert_string_equal(t.e[0].name, "link");
	assert_string_equal(t.e[1].name, "new\nline");
	assert_string_equal(t.e[3].name, name_uni);
	e = dm_tree_find(&t, "new\nline");
	assert_non_null(e);
	assert_int_equal(e->mode, 04755);
	assert_int_equal(e->uid, 1000);
	assert_int_equal(e->gid, 1001);
	assert_true(e->mtime_ns == 1700000000123456789LL);
	assert_int_equal(e->size, 42);
	e = dm_tree_find(&t, "link");
	assert_non_null(e);
	assert_string_equal(e->target, target);
	assert_true(e->mtime_ns == -5);
	assert_int_equal(dm_tree_find(&t, name_uni)->uid, 4294967295u);
	assert_null(dm_tree_find(&t, "absent"));
	assert_int_equal(dm_tree_encode(&b, &t, &err), 0);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	dm_tree_release(&t);
	dm_buf_release(&a);
	dm_buf_release(&b);
}

static void test_commit_roundtrip(void **state)
{
	struct dm_buf a = DM_BUF_INIT, b = DM_BUF_INIT;
	struct dm_commit c;
	struct dm_err err;

	(void)state;
	sample_commit(&a);
	assert_int_equal(dm_commit_decode(&c, a.data, a.len, &err), 0);
	assert_string_equal(c.dot_id, s_dot);
	assert_string_equal(c.commit_id, s_commit);
	assert_int_equal(c.nparents, 1);
	assert_string_equal(c.parents[0], s_p1);
	assert_memory_equal(c.tree.b, oid_of(5).b, DM_OID_RAWSZ);
	assert_string_equal(c.author, "admin");
	assert_true(c.time_ns == 1700000000000000000LL);
	assert_string_equal(c.message, s_msg);
	assert_int_equal(c.nmeta, 2);
	assert_string_equal(c.meta[1].key, "zeta.x");
	assert_string_equal(c.meta[1].value, "");
	assert_int_equal(dm_commit_encode(&b, &c, &err), 0);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	dm_commit_release(&c);
	dm_buf_release(&a);
	dm_buf_release(&b);
}

static void test_varint_roundtrip(void **state)
{
	const uint64_t u[] = {0, 1, 127, 128, 300, 1ull << 32, UINT64_MAX};
	const int64_t sv[] = {0, -1, 1, -64, 64, INT64_MIN, INT64_MAX};
	struct dm_buf b = DM_BUF_INIT;
	struct dm_reader r;

	(void)state;
	for (size_t i = 0; i < 7; i++) {
		assert_int_equal(dm_write_uvarint(&b, u[i]), 0);
		assert_int_equal(dm_write_svarint(&b, sv[i]), 0);
	}
	dm_reader_init(&r, b.data, b.len);
	for (size_t i = 0; i < 7; i++) {
		uint64_t x;
		int64_t y;

		assert_int_equal(dm_read_uvarint(&r, &x), 0);
		assert_true(x == u[i]);
		assert_int_equal(dm_read_svarint(&r, &y), 0);
		assert_true(y == sv[i]);
	}
	assert_int_equal(r.left, 0);
	dm_buf_release(&b);
}

static void test_varint_noncanonical_refused(void **state)
{
	const unsigned char padded[] = {0x81, 0x00};  /* 1 written in two bytes */
	const unsigned char overlong[] = {0xff, 0xff, 0xff, 0xff, 0xff,
					  0xff, 0xff, 0xff, 0xff, 0x7f}; /* > 64 bits */
	const unsigned char endless[] = {0x80, 0x80, 0x80};
	struct dm_reader r;
	uint64_t x;

	(void)state;
	dm_reader_init(&r, padded, sizeof(padded));
	assert_int_equal(dm_read_uvarint(&r, &x), DM_ECORRUPT);
	dm_reader_init(&r, overlong, sizeof(overlong));
	assert_int_equal(dm_read_uvarint(&r, &x), DM_ECORRUPT);
	dm_reader_init(&r, endless, sizeof(endless));
	assert_int_equal(dm_read_uvarint(&r, &x), DM_ECORRUPT);
	/* a failed reader stays failed */
	assert_int_equal(dm_read_u8(&r, (uint8_t *)&x), DM_ECORRUPT);
}

/* ---- malformed input ---- */

typedef int (*decode_fn)(const void *data, size_t len, struct dm_err *err);

static int decode_file(const void *d, size_t n, struct dm_err *err)
{
	struct dm_file f;
	int rc = dm_file_decode(&f, d, n, err);

	if (!rc)
		dm_file_release(&f);
	return rc;
}

static int decode_tree(const void *d, size_t n, struct dm_err *err)
{
	struct dm_tree t;
	int rc = dm_tree_decode(&t, d, n, err);

	if (!rc)
		dm_tree_release(&t);
	return rc;
}

static int decode_commit(const void *d, size_t n, struct dm_err *err)
{
	struct dm_commit c;
	int rc = dm_commit_decode(&c, d, n, err);

	if (!rc)
		dm_commit_release(&c);
	return rc;
}

static void every_truncation_fails(struct dm_buf *b, decode_fn fn)
{
	for (size_t n = 0; n < b->len; n++) {
		struct dm_err err;
		unsigned char *copy = malloc(n ? n : 1);

		memcpy(copy, b->data, n);
		dm_err_clear(&err);
		assert_int_not_equal(fn(copy, n, &err), 0);
		assert_true(err.msg[0] != '\0');
		free(copy);
	}
	/* and so does one trailing byte */
	{
		struct dm_err err;
		unsigned char *copy = malloc(b->len + 1);

		memcpy(copy, b->data, b->len);
		copy[b->len] = 0;
		assert_int_equal(fn(copy, b->len + 1, &err), DM_ECORRUPT);
		free(copy);
	}
}

static void test_truncated_objects_refused(void **state)
{
	struct dm_buf f = DM_BUF_INIT, t = DM_BUF_INIT, c = DM_BUF_INIT;

	(void)state;
	sample_file(&f);
	sample_tree(&t);
	sample_commit(&c);
	every_truncation_fails(&f, decode_file);
	every_truncation_fails(&t, decode_tree);
	every_truncation_fails(&c, decode_commit);
	dm_buf_release(&f);
	dm_buf_release(&t);
	dm_buf_release(&c);
}

static void test_header_checked(void **state)
{
	struct dm_buf t = DM_BUF_INIT;
	struct dm_err err;

	(void)state;
	sample_tree(&t);
	/* a tree is not a file */
	assert_int_equal(decode_file(t.data, t.len, &err), DM_ECORRUPT);
	assert_non_null(strstr(err.msg, "expected a file, found a tree"));
	/* a future version is refused as unsupported, not as corrupt */
	t.data[3] = DM_OBJ_VERSION + 1;
	assert_int_equal(decode_tree(t.data, t.len, &err), DM_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "format version"));
	t.data[3] = DM_OBJ_VERSION;
	t.data[0] = 'x';
	assert_int_equal(decode_tree(t.data, t.len, &err), DM_ECORRUPT);
	assert_int_equal(dm_obj_peek_kind(t.data, t.len), 0);
	dm_buf_release(&t);
}

/* Encodes a one-entry tree by hand, bypassing the encoder's checks. */
static void raw_tree(struct dm_buf *b, const char *name, size_t name_len, int count,
		     uint8_t type, uint64_t mode)
{
	dm_oid id = oid_of(1);
	const unsigned char hdr[4] = {'d', 'm', DM_OBJ_TREE, DM_OBJ_VERSION};

	dm_buf_reset(b);
	dm_buf_add(b, hdr, 4);
	dm_write_uvarint(b, (uint64_t)count);
	for (int i = 0; i < count; i++) {
		dm_write_bytes(b, name, name_len);
		dm_write_u8(b, type);
		dm_write_uvarint(b, mode);
		dm_write_uvarint(b, 0);
		dm_write_uvarint(b, 0);
		dm_write_svarint(b, 0);
		dm_write_uvarint(b, 0);
		dm_write_oid(b, &id);
	}
}

static void expect_tree_refused(struct dm_buf *b, const char *needle)
{
	struct dm_err err;

	dm_err_clear(&err);
	assert_int_equal(decode_tree(b->data, b->len, &err), DM_ECORRUPT);
	if (!strstr(err.msg, needle))
		fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

static void test_bad_tree_names_refused(void **state)
{
	struct dm_buf b = DM_BUF_INIT;
	char long_name[300];

	(void)state;
	raw_tree(&b, ".", 1, 1, DM_ENTRY_FILE, 0644);
	expect_tree_refused(&b, "'.' is not allowed");
	raw_tree(&b, "..", 2, 1, DM_ENTRY_DIR, 0755);
	expect_tree_refused(&b, "'..' is not allowed");
	raw_tree(&b, "a/b", 3, 1, DM_ENTRY_FILE, 0644);
	expect_tree_refused(&b, "contains '/'");
	raw_tree(&b, "/", 1, 1, DM_ENTRY_FILE, 0644);
	expect_tree_refused(&b, "contains '/'");
	raw_tree(&b, "a\0b", 3, 1, DM_ENTRY_FILE, 0644);
	expect_tree_refused(&b, "malformed");
	raw_tree(&b, "", 0, 1, DM_ENTRY_FILE, 0644);
	expect_tree_refused(&b, "empty file name");
	raw_tree(&b, "dup", 3, 2, DM_ENTRY_FILE, 0644);
	expect_tree_refused(&b, "duplicate");
	raw_tree(&b, "x", 1, 1, DM_ENTRY_FILE, 010000);
	expect_tree_refused(&b, "malformed");
	raw_tree(&b, "x", 1, 1, 9, 0644);
	expect_tree_refused(&b, "unknown type");
	memset(long_name, 'a', sizeof(long_name));
	raw_tree(&b, long_name, 256, 1, DM_ENTRY_FILE, 0644);
	expect_tree_refused(&b, "malformed");
	dm_buf_release(&b);
}

static void test_unsorted_tree_refused(void **state)
{
	struct dm_buf b = DM_BUF_INIT;
	const unsigned char hdr[4] = {'d', 'm', DM_OBJ_TREE, DM_OBJ_VERSION};
	dm_oid id = oid_of(2);
	const char *names[2] = {"b", "a"};
	struct dm_err err;

	(void)state;
	dm_buf_add(&b, hdr, 4);
	dm_write_uvarint(&b, 2);
	for (int i = 0; i < 2; i++) {
		dm_write_bytes(&b, names[i], 1);
		dm_write_u8(&b, DM_ENTRY_FILE);
		dm_write_uvarint(&b, 0644);
		dm_write_uvarint(&b, 0);
		dm_write_uvarint(&b, 0);
		dm_write_svarint(&b, 0);
		dm_write_uvarint(&b, 0);
		dm_write_oid(&b, &id);
	}
	assert_int_equal(decode_tree(b.data, b.len, &err), DM_ECORRUPT);
	assert_non_null(strstr(err.msg, "not sorted"));
	dm_buf_release(&b);
}

static void test_huge_counts_refused(void **state)
{
	struct dm_buf b = DM_BUF_INIT;
	const unsigned char thdr[4] = {'d', 'm', DM_OBJ_TREE, DM_OBJ_VERSION};
	const unsigned char fhdr[4] = {'d', 'm', DM_OBJ_FILE, DM_OBJ_VERSION};
	struct dm_err err;

	(void)state;
	/* a tree claiming 2^40 entries in a few bytes must not allocate for them */
	dm_buf_add(&b, thdr, 4);
	dm_write_uvarint(&b, 1ull << 40);
	assert_int_equal(decode_tree(b.data, b.len, &err), DM_ECORRUPT);
	/* a file claiming a size past the limit */
	dm_buf_reset(&b);
	dm_buf_add(&b, fhdr, 4);
	dm_write_uvarint(&b, DM_FILE_MAX_SIZE + 1);
	dm_write_uvarint(&b, 0);
	assert_int_equal(decode_file(b.data, b.len, &err), DM_ETOOBIG);
	assert_non_null(strstr(err.msg, "over the limit"));
	/* an object bigger than any object may be */
	assert_int_equal(dm_tree_decode(&(struct dm_tree){0}, b.data, DM_OBJ_MAX_SIZE + 1, &err),
			 DM_ETOOBIG);
	dm_buf_release(&b);
}

static void test_bad_file_extents_refused(void **state)
{
	struct dm_extent overlap[2] = {{0, 100, oid_of(1)}, {50, 100, oid_of(2)}};
	struct dm_extent outside[1] = {{90, 20, oid_of(1)}};
	struct dm_extent empty[1] = {{0, 0, oid_of(1)}};
	struct dm_extent huge[1] = {{0, DM_CHUNK_MAX_LIMIT + 1, oid_of(1)}};
	struct dm_file f;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;

	(void)state;
	f = (struct dm_file){200, 2, overlap};
	assert_int_equal(dm_file_encode(&b, &f, &err), DM_ECORRUPT);
	assert_non_null(strstr(err.msg, "overlaps"));
	f = (struct dm_file){100, 1, outside};
	assert_int_equal(dm_file_encode(&b, &f, &err), DM_ECORRUPT);
	f = (struct dm_file){100, 1, empty};
	assert_int_equal(dm_file_encode(&b, &f, &err), DM_ECORRUPT);
	f = (struct dm_file){DM_CHUNK_MAX_LIMIT + 1, 1, huge};
	assert_int_equal(dm_file_encode(&b, &f, &err), DM_ECORRUPT);
	assert_int_equal(b.len, 0);
	dm_buf_release(&b);
}

static void test_bad_commits_refused(void **state)
{
	char upper[] = "Key", bad[] = "a b", v[] = "v", empty[] = "";
	struct dm_meta m1 = {upper, v}, m2 = {bad, v};
	char *parents[17];
	struct dm_commit c = {s_dot, s_commit, 0, NULL, oid_of(1), s_author, 0, s_msg, 1, &m1};
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;

	(void)state;
	assert_int_equal(dm_commit_encode(&b, &c, &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "must start with a lowercase letter"));
	c.meta = &m2;
	assert_int_equal(dm_commit_encode(&b, &c, &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "may hold only"));
	c.nmeta = 0;
	c.commit_id = empty;
	assert_int_equal(dm_commit_encode(&b, &c, &err), DM_EINVAL);
	c.commit_id = s_commit;
	for (int i = 0; i < 17; i++)
		parents[i] = s_p1;
	c.parents = parents;
	c.nparents = 17;
	assert_int_equal(dm_commit_encode(&b, &c, &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "parents"));
	assert_int_equal(b.len, 0);
	dm_buf_release(&b);
}

static void test_encoder_refuses_bad_names(void **state)
{
	char dotdot[] = "..", slash[] = "a/b", a[] = "a";
	struct dm_tree_entry e1 = {dotdot, DM_ENTRY_DIR, 0755, 0, 0, 0, 0, {{0}}, NULL};
	struct dm_tree_entry e2 = {slash, DM_ENTRY_FILE, 0644, 0, 0, 0, 0, {{0}}, NULL};
	struct dm_tree_entry dup[2] = {{a, DM_ENTRY_FILE, 0644, 0, 0, 0, 0, {{0}}, NULL},
				       {a, DM_ENTRY_FILE, 0644, 0, 0, 0, 0, {{0}}, NULL}};
	struct dm_tree t = {1, &e1};
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;

	(void)state;
	assert_int_equal(dm_tree_encode(&b, &t, &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "cannot encode tree: file name '..' is not allowed"));
	t.e = &e2;
	assert_int_equal(dm_tree_encode(&b, &t, &err), DM_EINVAL);
	t = (struct dm_tree){2, dup};
	assert_int_equal(dm_tree_encode(&b, &t, &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "duplicate"));
	assert_int_equal(b.len, 0);
	dm_buf_release(&b);
}

/* Flip random bits: nothing crashes, and whatever still decodes re-encodes
 * to the very same bytes. */
static void mutate_and_check(struct dm_buf *orig, decode_fn fn, int kind, unsigned seed)
{
	srand(seed);
	for (int iter = 0; iter < 3000; iter++) {
		unsigned char *m = malloc(orig->len);
		struct dm_buf again = DM_BUF_INIT;
		struct dm_err err;
		int flips = 1 + rand() % 4, rc = 0;

		memcpy(m, orig->data, orig->len);
		for (int i = 0; i < flips; i++)
			m[(size_t)rand() % orig->len] ^= (unsigned char)(1u << (rand() % 8));
		if (fn(m, orig->len, &err) == 0) {
			if (kind == DM_OBJ_FILE) {
				struct dm_file f;

				dm_file_decode(&f, m, orig->len, &err);
				rc = dm_file_encode(&again, &f, &err);
				dm_file_release(&f);
			} else if (kind == DM_OBJ_TREE) {
				struct dm_tree t;

				dm_tree_decode(&t, m, orig->len, &err);
				rc = dm_tree_encode(&again, &t, &err);
				dm_tree_release(&t);
			} else {
				struct dm_commit c;

				dm_commit_decode(&c, m, orig->len, &err);
				rc = dm_commit_encode(&again, &c, &err);
				dm_commit_release(&c);
			}
			assert_int_equal(rc, 0);
			assert_int_equal(again.len, orig->len);
			assert_memory_equal(again.data, m, orig->len);
		}
		dm_buf_release(&again);
		free(m);
	}
}

static void test_bitflips_never_crash_and_stay_canonical(void **state)
{
	struct dm_buf f = DM_BUF_INIT, t = DM_BUF_INIT, c = DM_BUF_INIT;

	(void)state;
	sample_file(&f);
	sample_tree(&t);
	sample_commit(&c);
	mutate_and_check(&f, decode_file, DM_OBJ_FILE, 1);
	mutate_and_check(&t, decode_tree, DM_OBJ_TREE, 2);
	mutate_and_check(&c, decode_commit, DM_OBJ_COMMIT, 3);
	dm_buf_release(&f);
	dm_buf_release(&t);
	dm_buf_release(&c);
}

/* ---- what an object names ---- */

struct seen_refs {
	int n, stop_after;
	int kind[8];
	dm_oid id[8];
	uint32_t len[8];
};

static int record_ref(void *ctx, const struct dm_obj_ref *ref)
{
	struct seen_refs *r = ctx;

	assert_true(r->n < 8);
	r->kind[r->n] = ref->kind;
	r->id[r->n] = *ref->id;
	r->len[r->n] = ref->len;
	r->n++;
	return r->n == r->stop_after ? 7 : 0;
}

/* A file names its chunks with their lengths, a tree its files and
 * subtrees but not its symlinks, a commit its tree; a chunk nothing. A
 * non-zero return stops the walk, and bytes that do not decode are
 * refused before anything is named. */
static void test_refs_name_what_objects_point_to(void **state)
{
	struct dm_buf b = DM_BUF_INIT;
	struct seen_refs r;
	struct dm_err err;
	dm_oid want;

	(void)state;
	sample_file(&b);
	memset(&r, 0, sizeof(r));
	assert_int_equal(dm_object_refs(DM_OBJ_FILE, b.data, b.len, record_ref, &r, &err), 0);
	assert_int_equal(r.n, 3);
	for (int i = 0; i < 3; i++) {
		want = oid_of((unsigned char)(i + 1));
		assert_int_equal(r.kind[i], DM_OBJ_CHUNK);
		assert_memory_equal(&r.id[i], &want, sizeof(want));
	}
	assert_int_equal(r.len[0], 65536);
	assert_int_equal(r.len[1], 100);
	assert_int_equal(r.len[2], 20000);

	memset(&r, 0, sizeof(r));
	r.stop_after = 2;
	assert_int_equal(dm_object_refs(DM_OBJ_FILE, b.data, b.len, record_ref, &r, &err), 7);
	assert_int_equal(r.n, 2);

	memset(&r, 0, sizeof(r));
	assert_int_equal(dm_object_refs(DM_OBJ_TREE, b.data, b.len, record_ref, &r, &err),
			 DM_ECORRUPT);
	assert_int_equal(r.n, 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(dm_object_refs(DM_OBJ_CHUNK, b.data, b.len, record_ref, &r, &err), 0);
	assert_int_equal(r.n, 0);

	dm_buf_reset(&b);
	sample_tree(&b);
	memset(&r, 0, sizeof(r));
	assert_int_equal(dm_object_refs(DM_OBJ_TREE, b.data, b.len, record_ref, &r, &err), 0);
	assert_int_equal(r.n, 3); /* "link" is a symlink */
	assert_int_equal(r.kind[0], DM_OBJ_FILE);
	want = oid_of(7);
	assert_memory_equal(&r.id[0], &want, sizeof(want));
	assert_int_equal(r.kind[1], DM_OBJ_TREE);
	want = oid_of(8);
	assert_memory_equal(&r.id[1], &want, sizeof(want));
	assert_int_equal(r.kind[2], DM_OBJ_FILE);
	assert_int_equal(r.len[0] + r.len[1] + r.len[2], 0);

	dm_buf_reset(&b);
	sample_commit(&b);
	memset(&r, 0, sizeof(r));
	assert_int_equal(dm_object_refs(DM_OBJ_COMMIT, b.data, b.len, record_ref, &r, &err), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.kind[0], DM_OBJ_TREE);
	want = oid_of(5);
	assert_memory_equal(&r.id[0], &want, sizeof(want));
	dm_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_roundtrip),
		cmocka_unit_test(test_empty_file_roundtrip),
		cmocka_unit_test(test_tree_roundtrip),
		cmocka_unit_test(test_commit_roundtrip),
		cmocka_unit_test(test_varint_roundtrip),
		cmocka_unit_test(test_varint_noncanonical_refused),
		cmocka_unit_test(test_truncated_objects_refused),
		cmocka_unit_test(test_header_checked),
		cmocka_unit_test(test_bad_tree_names_refused),
		cmocka_unit_test(test_unsorted_tree_refused),
		cmocka_unit_test(test_huge_counts_refused),
		cmocka_unit_test(test_bad_file_extents_refused),
		cmocka_unit_test(test_bad_commits_refused),
		cmocka_unit_test(test_encoder_refuses_bad_names),
		cmocka_unit_test(test_bitflips_never_crash_and_stay_canonical),
		cmocka_unit_test(test_refs_name_what_objects_point_to),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
