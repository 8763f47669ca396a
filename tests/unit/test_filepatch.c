/*
 * test_filepatch.c - dm_filedata_patch: an existing file brought to a file
 * object in place ends byte for byte and hole for hole as a fresh write of
 * the object (dm_filedata_write into an empty file) does, with and without
 * the base the caller's cache vouches for, touching nothing when nothing
 * differs.
 *
 * Every test works in its own mkdtemp directory under /tmp with a store of
 * its own, removed at the end. Files are sparse, a few MiB long, with data
 * at 64 KiB-aligned places (whole blocks on any file system here).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/filedata.h"
#include "store/store.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

struct fixture {
	char dir[64];
	struct dm_store *s;
	struct dm_filedata_ctx ctx;
	int befores;
};

/* A data range of a layout: len bytes at off, from seed. */
struct range {
	uint64_t off, len, seed;
};

struct layout {
	uint64_t size;
	size_t n;
	struct range r[8];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct dm_store_opts o;
	struct dm_err err;
	char p[128];

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/dm-test-patch-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(p, sizeof(p), "%s/store", fx->dir);
	dm_store_opts_default(&o);
	o.sync = false;
	if (dm_store_open(&fx->s, p, &o, &err))
		return -1;
	dm_filedata_ctx_init(&fx->ctx);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	dm_filedata_ctx_release(&fx->ctx);
	dm_store_free(fx->s);
	assert_int_equal(dm_remove_tree(fx->dir, NULL), 0);
	free(fx);
	return 0;
}

/* Makes file name (replacing any) hold layout l; its fd, open read-write. */
static int make_file(struct fixture *fx, const char *name, const struct layout *l)
{
	char p[128];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", fx->dir, name);
	unlink(p);
	fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	for (size_t i = 0; i < l->n; i++) {
		unsigned char *b = malloc(l->r[i].len);

		/* bytes that only the seed and the position decide */
		for (size_t k = 0; k < l->r[i].len; k++)
			b[k] = (unsigned char)(((k + 1) * 2654435761u + l->r[i].seed * 40503u) >>
					       11);
		assert_int_equal(dm_pwrite_all(fd, b, l->r[i].len, (off_t)l->r[i].off), 0);
		free(b);
	}
	assert_int_equal(ftruncate(fd, (off_t)l->size), 0);
	return fd;
}

/* Stores layout l as a file object and loads it into out. */
static void store_layout(struct fixture *fx, const struct layout *l, struct dm_file *out)
{
	struct dm_filedata_result res;
	struct dm_err err = {0, ""};
	struct stat st;
	dm_oid id;
	int fd = make_file(fx, "scratch", l);

	assert_int_equal(fstat(fd, &st), 0);
	if (dm_filedata_store(fx->s, &fx->ctx, &id, fd, (uint64_t)st.st_size,
			      (uint64_t)st.st_blocks, "scratch", NULL, &res, &err))
		fail_msg("store: %s", err.msg);
	close(fd);
	if (dm_filedata_load(fx->s, &fx->ctx, out, &id, &err))
		fail_msg("load: %s", err.msg);
}

/* The data regions of fd as "start-end," text (SEEK_DATA/SEEK_HOLE). */
static void data_map(int fd, char *out, size_t size)
{
	struct stat st;
	off_t pos = 0, d, h;
	size_t used = 0;

	out[0] = '\0';
	assert_int_equal(fstat(fd, &st), 0);
	while (pos < st.st_size && (d = lseek(fd, pos, SEEK_DATA)) >= 0) {
		h = lseek(fd, d, SEEK_HOLE);
		assert_true(h > d);
		used += (size_t)snprintf(out + used, size - used, "%lld-%lld,", (long long)d,
					 (long long)h);
		assert_true(used < size);
		pos = h;
	}
}

static void assert_same_files(int a, int b)
{
	struct stat sa, sb;
	char ma[512], mb[512];
	unsigned char *x, *y;

	assert_int_equal(fstat(a, &sa), 0);
	assert_int_equal(fstat(b, &sb), 0);
	assert_int_equal(sa.st_size, sb.st_size);
	x = malloc((size_t)sa.st_size + 1);
	y = malloc((size_t)sb.st_size + 1);
	assert_int_equal(dm_pread_all(a, x, (size_t)sa.st_size, 0), 0);
	assert_int_equal(dm_pread_all(b, y, (size_t)sb.st_size, 0), 0);
	assert_memory_equal(x, y, (size_t)sa.st_size);
	free(x);
	free(y);
	data_map(a, ma, sizeof(ma));
	data_map(b, mb, sizeof(mb));
	assert_string_equal(ma, mb);
}

static int count_before(void *arg, struct dm_err *err)
{
	struct fixture *fx = arg;

	(void)err;
	fx->befores++;
	return 0;
}

/* Patches a file holding old into new (with old as base or not) and checks
 * it against a fresh write of new; then patches it again, which must
 * change nothing. Returns the bytes the first patch wrote. */
static uint64_t check_patch(struct fixture *fx, const struct layout *old, const struct layout *new,
			    bool with_base)
{
	struct dm_file fold = {0, 0, NULL}, fnew = {0, 0, NULL};
	struct dm_err err = {0, ""};
	struct stat before, after;
	uint64_t written = 0, first;
	bool changed = false;
	int fd, ref;

	store_layout(fx, old, &fold);
	store_layout(fx, new, &fnew);
	ref = make_file(fx, "fresh", &(struct layout){0, 0, {{0, 0, 0}}});
	if (dm_filedata_write(fx->s, &fx->ctx, ref, &fnew, NULL, "fresh", &err))
		fail_msg("write: %s", err.msg);
	fd = make_file(fx, "patched", old);
	assert_int_equal(fstat(fd, &before), 0);
	fx->befores = 0;
	if (dm_filedata_patch(fx->s, &fx->ctx, fd, with_base ? &fold : NULL, &fnew, count_before,
			      fx, &written, &changed, "patched", &err))
		fail_msg("patch: %s", err.msg);
	assert_true(changed);
	assert_true(fx->befores > 0);
	first = written;
	assert_int_equal(fstat(fd, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino); /* in place */
	assert_same_files(fd, ref);
	/* again: nothing differs, nothing is touched */
	fx->befores = 0;
	if (dm_filedata_patch(fx->s, &fx->ctx, fd, with_base ? &fnew : NULL, &fnew, count_before,
			      fx, &written, &changed, "patched", &err))
		fail_msg("patch again: %s", err.msg);
	assert_false(changed);
	assert_int_equal(fx->befores, 0);
	assert_int_equal(written, 0);
	close(fd);
	close(ref);
	dm_file_release(&fold);
	dm_file_release(&fnew);
	return first;
}

/* A 16 MiB sparse file: three data regions. */
static const struct layout base_layout = {
	16 * MIB, 3, {{0, 2 * MIB, 1}, {6 * MIB, 3 * MIB, 2}, {12 * MIB, 1 * MIB, 3}}};

static void test_change_inside(void **state)
{
	/* 256 KiB rewritten in the middle of the second region */
	struct layout l = base_layout;

	l.n = 4;
	l.r[3] = (struct range){7 * MIB, 256 * KIB, 9};
	check_patch(*state, &base_layout, &l, true);
	check_patch(*state, &base_layout, &l, false);
}

static void test_data_to_hole_and_back(void **state)
{
	/* the second region goes; a new one lands in a hole */
	struct layout l = base_layout;

	l.r[1] = (struct range){3 * MIB, 512 * KIB, 5};
	check_patch(*state, &base_layout, &l, true);
	check_patch(*state, &base_layout, &l, false);
	check_patch(*state, &l, &base_layout, true);
	check_patch(*state, &l, &base_layout, false);
}

static void test_grow_and_shrink(void **state)
{
	struct layout longer = base_layout, shorter = base_layout;

	longer.size = 20 * MIB + 1000; /* ends in a hole, off a block boundary */
	longer.n = 4;
	longer.r[3] = (struct range){18 * MIB, 64 * KIB, 7};
	shorter.size = 7 * MIB + 12345; /* cuts the second region mid-block */
	shorter.n = 2;
	check_patch(*state, &base_layout, &longer, true);
	check_patch(*state, &longer, &base_layout, false);
	check_patch(*state, &base_layout, &shorter, true);
	check_patch(*state, &shorter, &base_layout, false);
}

static void test_dense_tail(void **state)
{
	/* no holes at all, the last block partial: one byte changes, and
	 * only its block is written, not its chunk */
	struct layout a = {3 * MIB + 777, 1, {{0, 3 * MIB + 777, 4}}};
	struct layout b = {3 * MIB + 777, 2, {{0, 3 * MIB + 777, 4}, {2 * MIB, 1, 8}}};

	assert_true(check_patch(*state, &a, &b, true) <= 4096);
	assert_true(check_patch(*state, &a, &b, false) <= 4096);
}

/* The caller's hook refusing stops the patch before anything changes. */
static int refuse(void *arg, struct dm_err *err)
{
	(void)arg;
	return dm_err_set(err, DM_EIO, "no marker");
}

static void test_refused_changes_nothing(void **state)
{
	struct fixture *fx = *state;
	struct dm_file fnew = {0, 0, NULL};
	struct layout l = base_layout;
	struct dm_err err = {0, ""};
	uint64_t written = 0;
	bool changed = false;
	int fd, ref;

	l.n = 4;
	l.r[3] = (struct range){7 * MIB, 256 * KIB, 9};
	store_layout(fx, &l, &fnew);
	fd = make_file(fx, "patched", &base_layout);
	ref = make_file(fx, "fresh", &base_layout);
	assert_int_equal(dm_filedata_patch(fx->s, &fx->ctx, fd, NULL, &fnew, refuse, NULL, &written,
					   &changed, "patched", &err),
			 DM_EIO);
	assert_int_equal(written, 0);
	assert_same_files(fd, ref);
	close(fd);
	close(ref);
	dm_file_release(&fnew);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_change_inside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_to_hole_and_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grow_and_shrink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dense_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_changes_nothing, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
