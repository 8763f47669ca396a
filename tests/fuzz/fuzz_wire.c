/*
 * fuzz_wire.c - libFuzzer target for what a dmd reads from another: record
 * streams and id lists. The input is fed to the stream parser in pieces
 * whose sizes come from the input's first byte, as bytes arrive from a
 * socket; every record handed on must respect its header's bounds, and
 * the parser must agree with itself when the same input is fed whole.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/pack.h"
#include "sync/wire.h"
#include "util/err.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct tally {
	uint64_t records;
	uint64_t bytes;
};

static int check(void *ctx, const struct dm_pack_rec *rec, const unsigned char *bytes,
		 struct dm_err *err)
{
	struct tally *t = ctx;

	if (rec->kind < 1 || rec->kind > 4 || rec->raw_len > dm_pack_max_raw(rec->kind))
		abort();
	if (!(rec->flags & DM_PACK_F_ZSTD) && rec->stored_len != rec->raw_len)
		abort();
	if (rec->stored_len && !bytes)
		abort();
	t->records++;
	t->bytes += rec->stored_len;
	return 0;
}

static int run(const uint8_t *data, size_t size, size_t piece, struct tally *t, int *fin)
{
	struct dm_wire_parser p;
	struct dm_err err;
	int rc = 0;

	dm_wire_parser_init(&p);
	for (size_t off = 0; off < size && !rc; off += piece) {
		size_t n = size - off < piece ? size - off : piece;

		rc = dm_wire_parser_feed(&p, data + off, n, check, t, &err);
	}
	*fin = rc ? rc : dm_wire_parser_finish(&p, &err);
	dm_wire_parser_release(&p);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tally a = {0, 0}, b = {0, 0};
	size_t n = 0, piece;
	int fa, fb;

	if (size < 1)
		return 0;
	piece = (size_t)data[0] + 1;
	data++;
	size--;
	run(data, size, piece, &a, &fa);
	run(data, size, size ? size : 1, &b, &fb);
	if (a.records != b.records || a.bytes != b.bytes || fa != fb)
		abort();
	if (dm_wire_ids_check(size, &n, NULL) == 0 && n * 32 != size)
		abort();
	return 0;
}
