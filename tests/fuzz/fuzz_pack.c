/*
 * fuzz_pack.c - libFuzzer target for pack records: the input is written to
 * a temporary pack file (after a valid pack header) and read back as a
 * record at offset 16, as the store reads records it finds on disk; a
 * record that parses is then decompressed as the store would, with its
 * declared sizes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "store/pack.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char hdr[DM_PACK_HDR_LEN] = {'D', 'M', 'P', 'A', 'C', 'K', '\r',
							   '\n', 1, 0, 0, 0, 0, 0, 0, 0};
	char path[] = "/tmp/dm-fuzz-pack-XXXXXX";
	struct dm_buf stored = DM_BUF_INIT;
	struct dm_pack_rec rec;
	struct dm_err err;
	int fd = mkstemp(path);

	if (fd < 0)
		abort();
	unlink(path);
	if (dm_write_all(fd, hdr, sizeof(hdr)) || dm_write_all(fd, data, size))
		abort();
	if (dm_pack_read(fd, DM_PACK_HDR_LEN, &rec, &stored, &err) == 0) {
		if (stored.len != rec.stored_len)
			abort();
		if (rec.flags & DM_PACK_F_ZSTD) {
			unsigned char *raw = malloc(rec.raw_len ? rec.raw_len : 1);
			size_t z = ZSTD_decompress(raw, rec.raw_len, stored.data, stored.len);

			if (!ZSTD_isError(z) && z > rec.raw_len)
				abort();
			free(raw);
		}
	}
	dm_buf_release(&stored);
	close(fd);
	return 0;
}
