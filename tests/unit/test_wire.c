/*
 * test_wire.c - record streams and id lists as they travel between dmds:
 * a stream fed in every possible split arrives whole and in order, error
 * records end it with their code, bounds are enforced before anything is
 * allocated, id lists are checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/chunker.h"
#include "store/object.h"
#include "sync/wire.h"
#include "util/err.h"

#include "util/banned.h"

struct seen {
	size_t n;
	struct dm_pack_rec recs[16];
	struct dm_buf bytes[16];
	int fail_at; /* the callback fails on this record (1-based); 0: never */
};

static int collect(void *ctx, const struct dm_pack_rec *rec, const unsigned char *bytes,
		   struct dm_err *err)
{
	struct seen *s = ctx;

	if (s->n == 16)
		return dm_err_set(err, DM_EINTERNAL, "too many records");
	if (s->fail_at && (int)s->n + 1 == s->fail_at)
		return dm_err_set(err, DM_ECONFLICT, "callback refused record %zu", s->n + 1);
	s->recs[s->n] = *rec;
	dm_buf_init(&s->bytes[s->n], 0);
	assert_int_equal(dm_buf_add(&s->bytes[s->n], bytes, rec->stored_len), 0);
	s->n++;
	return 0;
}

static void seen_release(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		dm_buf_release(&s->bytes[i]);
	memset(s, 0, sizeof(*s));
}

static struct dm_pack_rec make_rec(int kind, const void *data, size_t len)
{
	struct dm_pack_rec r;

	memset(&r, 0, sizeof(r));
	r.kind = (uint8_t)kind;
	r.raw_len = r.stored_len = (uint32_t)len;
	dm_hash(&r.id, data, len);
	return r;
}

/* Three records: empty, small, and 100 KB. */
static void build_stream(struct dm_buf *out, unsigned char *big, size_t big_len)
{
	struct dm_pack_rec r;

	for (size_t i = 0; i < big_len; i++)
		big[i] = (unsigned char)(i * 31 + 7);
	r = make_rec(DM_OBJ_CHUNK, "", 0);
	assert_int_equal(dm_wire_rec_add(out, &r, ""), 0);
	r = make_rec(DM_OBJ_COMMIT, "hello", 5);
	assert_int_equal(dm_wire_rec_add(out, &r, "hello"), 0);
	r = make_rec(DM_OBJ_CHUNK, big, big_len);
	assert_int_equal(dm_wire_rec_add(out, &r, big), 0);
}

static void check_three(const struct seen *s, const unsigned char *big, size_t big_len)
{
	assert_int_equal(s->n, 3);
	assert_int_equal(s->recs[0].stored_len, 0);
	assert_int_equal(s->recs[1].kind, DM_OBJ_COMMIT);
	assert_int_equal(s->bytes[1].len, 5);
	assert_memory_equal(s->bytes[1].data, "hello", 5);
	assert_int_equal(s->bytes[2].len, big_len);
	assert_memory_equal(s->bytes[2].data, big, big_len);
}

static void test_stream_any_split(void **state)
{
	size_t big_len = 100000;
	unsigned char *big = malloc(big_len);
	struct dm_buf stream = DM_BUF_INIT;
	struct dm_err err;

	build_stream(&stream, big, big_len);
	/* one piece, byte by byte, and every two-way split point */
	for (size_t piece = 1; piece <= stream.len; piece = piece < 64 ? piece + 1 : piece * 3) {
		struct dm_wire_parser p;
		struct seen s = {0};

		dm_wire_parser_init(&p);
		for (size_t off = 0; off < stream.len; off += piece) {
			size_t n = stream.len - off < piece ? stream.len - off : piece;

			assert_int_equal(
				dm_wire_parser_feed(&p, stream.data + off, n, collect, &s, &err),
				0);
		}
		assert_int_equal(dm_wire_parser_finish(&p, &err), 0);
		assert_int_equal(p.records, 3);
		check_three(&s, big, big_len);
		seen_release(&s);
		dm_wire_parser_release(&p);
	}
	for (size_t cut = 0; cut <= stream.len; cut += 997) {
		struct dm_wire_parser p;
		struct seen s = {0};

		dm_wire_parser_init(&p);
		assert_int_equal(dm_wire_parser_feed(&p, stream.data, cut, collect, &s, &err), 0);
		assert_int_equal(dm_wire_parser_feed(&p, stream.data + cut, stream.len - cut,
						     collect, &s, &err),
				 0);
		assert_int_equal(dm_wire_parser_finish(&p, &err), 0);
		check_three(&s, big, big_len);
		seen_release(&s);
		dm_wire_parser_release(&p);
	}
	dm_buf_release(&stream);
	free(big);
}

static void test_truncated_stream_refused(void **state)
{
	size_t big_len = 5000;
	unsigned char *big = malloc(big_len);
	struct dm_buf stream = DM_BUF_INIT;
	struct dm_err err;

	build_stream(&stream, big, big_len);
	/* cut inside the last header, and inside the last body */
	for (size_t back = 1; back < big_len + 44; back += 1000) {
		size_t cut = stream.len - back;
		struct dm_wire_parser p;
		struct seen s = {0};

		dm_wire_parser_init(&p);
		assert_int_equal(dm_wire_parser_feed(&p, stream.data, cut, collect, &s, &err), 0);
		assert_int_equal(dm_wire_parser_finish(&p, &err), DM_EPROTO);
		assert_non_null(strstr(err.msg, "middle of a record"));
		seen_release(&s);
		dm_wire_parser_release(&p);
	}
	dm_buf_release(&stream);
	free(big);
}

static void test_error_record_ends_stream(void **state)
{
	struct dm_buf stream = DM_BUF_INIT;
	struct dm_pack_rec r = make_rec(DM_OBJ_CHUNK, "abc", 3);
	struct dm_wire_parser p;
	struct seen s = {0};
	struct dm_err err;

	assert_int_equal(dm_wire_rec_add(&stream, &r, "abc"), 0);
	assert_int_equal(dm_wire_error_add(&stream, DM_ENOTFOUND, "object 1234 is not here"), 0);
	/* what follows an error record is never read */
	assert_int_equal(dm_wire_rec_add(&stream, &r, "abc"), 0);
	dm_wire_parser_init(&p);
	assert_int_equal(dm_wire_parser_feed(&p, stream.data, stream.len, collect, &s, &err),
			 DM_ENOTFOUND);
	assert_string_equal(err.msg, "object 1234 is not here");
	assert_int_equal(s.n, 1);
	/* the parser stays failed */
	assert_int_equal(dm_wire_parser_feed(&p, "x", 1, collect, &s, &err), DM_ENOTFOUND);
	assert_int_equal(dm_wire_parser_finish(&p, &err), DM_ENOTFOUND);
	dm_wire_parser_release(&p);
	seen_release(&s);

	/* an unknown name: a protocol error that keeps the whole text */
	dm_buf_reset(&stream);
	{
		unsigned char hdr[DM_PACK_REC_LEN] = {0};

		hdr[4] = hdr[8] = 9;
		assert_int_equal(dm_buf_add(&stream, hdr, sizeof(hdr)), 0);
		assert_int_equal(dm_buf_add(&stream, "bad\nthing", 9), 0);
	}
	dm_wire_parser_init(&p);
	assert_int_equal(dm_wire_parser_feed(&p, stream.data, stream.len, collect, &s, &err),
			 DM_EPROTO);
	assert_non_null(strstr(err.msg, "bad thing"));
	dm_wire_parser_release(&p);
	dm_buf_release(&stream);
}

static void test_long_error_message_cut(void **state)
{
	char *msg = malloc(10000);
	struct dm_buf stream = DM_BUF_INIT;
	struct dm_wire_parser p;
	struct dm_err err;

	memset(msg, 'x', 9999);
	msg[9999] = '\0';
	assert_int_equal(dm_wire_error_add(&stream, DM_EIO, msg), 0);
	assert_int_equal(stream.len, DM_PACK_REC_LEN + DM_WIRE_ERROR_MAX);
	dm_wire_parser_init(&p);
	assert_int_equal(dm_wire_parser_feed(&p, stream.data, stream.len, NULL, NULL, &err),
			 DM_EIO);
	dm_wire_parser_release(&p);
	dm_buf_release(&stream);
	free(msg);
}

/* A header that claims more than its kind allows is refused at once. */
static void test_oversized_headers_refused(void **state)
{
	struct {
		uint8_t kind, flags;
		uint32_t raw, stored;
	} bad[] = {
		{DM_OBJ_CHUNK, 0, DM_CHUNK_MAX_LIMIT + 1, DM_CHUNK_MAX_LIMIT + 1},
		{DM_OBJ_TREE, 0, DM_OBJ_MAX_SIZE + 1, DM_OBJ_MAX_SIZE + 1},
		{DM_OBJ_CHUNK, DM_PACK_F_ZSTD, 100, 0xfffffff0u},
		{DM_OBJ_CHUNK, 0, 10, 11},
		{7, 0, 1, 1},
		{DM_OBJ_FILE, 0x02, 1, 1},
		{DM_WIRE_KIND_ERROR, 0, DM_WIRE_ERROR_MAX + 1, DM_WIRE_ERROR_MAX + 1},
		{DM_WIRE_KIND_ERROR, 0, 3, 4},
		{DM_WIRE_KIND_ERROR, 1, 3, 3},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned char hdr[DM_PACK_REC_LEN] = {0};
		struct dm_pack_rec r;
		struct dm_wire_parser p;
		struct seen s = {0};
		struct dm_err err;

		memset(&r, 0, sizeof(r));
		r.kind = bad[i].kind;
		r.flags = bad[i].flags;
		r.raw_len = bad[i].raw;
		r.stored_len = bad[i].stored;
		dm_pack_rec_encode(hdr, &r);
		dm_wire_parser_init(&p);
		assert_int_equal(dm_wire_parser_feed(&p, hdr, sizeof(hdr), collect, &s, &err),
				 DM_ECORRUPT);
		/* refused before any body byte was buffered */
		assert_int_equal(p.body.alloc, 0);
		dm_wire_parser_release(&p);
	}
}

static void test_callback_error_stops(void **state)
{
	size_t big_len = 1000;
	unsigned char *big = malloc(big_len);
	struct dm_buf stream = DM_BUF_INIT;
	struct dm_wire_parser p;
	struct seen s = {0};
	struct dm_err err;

	build_stream(&stream, big, big_len);
	s.fail_at = 2;
	dm_wire_parser_init(&p);
	assert_int_equal(dm_wire_parser_feed(&p, stream.data, stream.len, collect, &s, &err),
			 DM_ECONFLICT);
	assert_string_equal(err.msg, "callback refused record 2");
	assert_int_equal(s.n, 1);
	dm_wire_parser_release(&p);
	seen_release(&s);
	dm_buf_release(&stream);
	free(big);
}

static void test_id_lists(void **state)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	dm_oid ids[3];
	size_t n = 99;

	for (int i = 0; i < 3; i++)
		dm_hash(&ids[i], &i, sizeof(i));
	assert_int_equal(dm_wire_ids_add(&b, ids, 3), 0);
	assert_int_equal(b.len, 96);
	assert_int_equal(dm_wire_ids_check(b.len, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(dm_wire_ids(b.data)[2].b, ids[2].b, DM_OID_RAWSZ);
	assert_int_equal(dm_wire_ids_check(0, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(dm_wire_ids_check(95, &n, &err), DM_EPROTO);
	assert_int_equal(dm_wire_ids_check((size_t)DM_WIRE_MAX_IDS * 32, &n, &err), 0);
	assert_int_equal(dm_wire_ids_check((size_t)(DM_WIRE_MAX_IDS + 1) * 32, &n, &err),
			 DM_ETOOBIG);
	dm_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_any_split),
		cmocka_unit_test(test_truncated_stream_refused),
		cmocka_unit_test(test_error_record_ends_stream),
		cmocka_unit_test(test_long_error_message_cut),
		cmocka_unit_test(test_oversized_headers_refused),
		cmocka_unit_test(test_callback_error_stops),
		cmocka_unit_test(test_id_lists),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
