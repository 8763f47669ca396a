/*
 * fuzz_statcache.c - libFuzzer target for the stat cache file the dir
 * engine keeps beside each working copy (store/statcache.c: a header,
 * entries of a stat, an object id and a path, a SHA-256 trailer), which dm
 * reads back on the next commit; a crash or a full disk may leave it torn.
 * The input's first byte says what the rest is: even, the file as it is;
 * odd, the file with its trailer made right, so that mutations get past
 * the checksum to the entries.
 *
 * Whatever dm_statcache_load makes of a file must hold its promises: it
 * loads (a damaged file is an empty cache, not an error), what it holds
 * saves and loads again with the same count, and a sweep with nothing
 * marked drops every entry. The files live in a directory of their own
 * under $TMPDIR (or /tmp), removed at exit.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/tree.h"
#include "store/statcache.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/log.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256], in_path[300], out_path[300];

static void remove_dir(void)
{
	unlink(in_path);
	unlink(out_path);
	rmdir(dir);
}

static void make_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/dm-fuzz-statcache-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	snprintf(in_path, sizeof(in_path), "%s/in", dir);
	snprintf(out_path, sizeof(out_path), "%s/out", dir);
	atexit(remove_dir);
	/* a damaged file is reported as a warning: not what is fuzzed */
	dm_log_setup(NULL, DM_LOG_ERROR);
}

static void write_file(const uint8_t *data, size_t size)
{
	int fd = open(in_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dm_statcache *c = NULL, *again = NULL;
	unsigned char *file;
	struct dm_err err;
	size_t n;

	if (size < 1)
		return 0;
	if (!dir[0])
		make_dir();
	n = size - 1;
	file = malloc(n ? n : 1);
	if (!file)
		return 0;
	memcpy(file, data + 1, n);
	if ((data[0] & 1) && n >= DM_OID_RAWSZ) {
		dm_oid sum;

		dm_hash(&sum, file, n - DM_OID_RAWSZ);
		memcpy(file + n - DM_OID_RAWSZ, sum.b, DM_OID_RAWSZ);
	}
	write_file(file, n);
	free(file);
	if (dm_statcache_load(&c, in_path, &err) || !c)
		abort();
	if (dm_statcache_save(c, out_path, &err) || dm_statcache_load(&again, out_path, &err))
		abort();
	if (dm_statcache_count(again) != dm_statcache_count(c))
		abort();
	if (dm_statcache_sweep(c) != dm_statcache_count(again) || dm_statcache_count(c) != 0)
		abort();
	dm_statcache_free(again);
	dm_statcache_free(c);
	return 0;
}
