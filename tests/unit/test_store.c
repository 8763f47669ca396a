/*
 * test_store.c - the object store: put/get, dedup, compression, packs,
 * reopen, concurrency, crash safety and corrupt input.
 *
 * Crash tests run the writer in a child process and kill it with SIGKILL
 * at a random moment; the parent then reopens the store and proves that
 * verify passes and that everything flushed before the kill is there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "store/index.h"
#include "store/store.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

struct fixture {
	char dir[64];
	struct dm_store *s;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/dm-test-store-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	dm_store_free(fx->s);
	dm_remove_tree(fx->dir, NULL);
	free(fx);
	return 0;
}

static struct dm_store *open_store(const char *dir, uint64_t pack_size)
{
	struct dm_store_opts o;
	struct dm_store *s = NULL;
	struct dm_err err;

	dm_store_opts_default(&o);
	if (pack_size)
		o.pack_size = pack_size;
	if (dm_store_open(&s, dir, &o, &err))
		fail_msg("open: %s", err.msg);
	return s;
}

/* Deterministic pseudo-random bytes for object n. */
static void fill(unsigned char *p, size_t len, uint64_t n)
{
	uint64_t x = n * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
}

static dm_oid put_random(struct dm_store *s, uint64_t n, size_t len)
{
	unsigned char *p = malloc(len);
	struct dm_err err;
	dm_oid id;

	fill(p, len, n);
	if (dm_store_put(s, &id, DM_OBJ_CHUNK, p, len, &err))
		fail_msg("put: %s", err.msg);
	free(p);
	return id;
}

static void expect_random(struct dm_store *s, const dm_oid *id, uint64_t n, size_t len)
{
	unsigned char *p = malloc(len);
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	int kind = 0;

	fill(p, len, n);
	if (dm_store_get(s, id, &b, &kind, &err))
		fail_msg("get: %s", err.msg);
	assert_int_equal(kind, DM_OBJ_CHUNK);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.data, p, len);
	dm_buf_release(&b);
	free(p);
}

static void test_put_get_roundtrip(void **state)
{
	struct fixture *fx = *state;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	dm_oid id, empty;
	char hex[DM_OID_HEXSZ + 1];

	fx->s = open_store(fx->dir, 0);
	id = put_random(fx->s, 1, 100000);
	assert_int_equal(dm_store_has(fx->s, &id), 1);
	expect_random(fx->s, &id, 1, 100000);
	/* the id is the SHA-256 of the bytes: the empty object has the known one */
	assert_int_equal(dm_store_put(fx->s, &empty, DM_OBJ_CHUNK, "", 0, &err), 0);
	dm_oid_hex(hex, &empty);
	assert_string_equal(hex,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(dm_store_get(fx->s, &empty, &b, NULL, &err), 0);
	assert_int_equal(b.len, 0);
	dm_buf_release(&b);
}

static void test_missing_object_not_found(void **state)
{
	struct fixture *fx = *state;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	dm_oid id;

	fx->s = open_store(fx->dir, 0);
	memset(&id, 0xab, sizeof(id));
	assert_int_equal(dm_store_has(fx->s, &id), 0);
	assert_int_equal(dm_store_get(fx->s, &id, &b, NULL, &err), DM_ENOTFOUND);
	assert_non_null(strstr(err.msg, "not found"));
	assert_non_null(strstr(err.msg, "abababab"));
}

static void test_duplicates_stored_once(void **state)
{
	struct fixture *fx = *state;
	struct dm_store_stats st;
	struct dm_err err;

	fx->s = open_store(fx->dir, 0);
	for (int i = 0; i < 5; i++)
		put_random(fx->s, 7, 50000);
	put_random(fx->s, 8, 50000);
	assert_int_equal(dm_store_stats(fx->s, &st, &err), 0);
	assert_int_equal(st.objects[DM_OBJ_CHUNK], 2);
	assert_int_equal(st.raw_bytes, 100000);
	/* random data does not compress: two records and one pack header */
	assert_int_equal(st.pack_bytes, 16 + 2 * (44 + 50000));
}

static void test_compressible_chunks_compressed(void **state)
{
	struct fixture *fx = *state;
	struct dm_store_stats st;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	char *text = malloc(200000);
	dm_oid id;

	for (size_t i = 0; i < 200000; i++)
		text[i] = "the quick brown fox jumps over the lazy dog\n"[i % 44];
	fx->s = open_store(fx->dir, 0);
	assert_int_equal(dm_store_put(fx->s, &id, DM_OBJ_CHUNK, text, 200000, &err), 0);
	assert_int_equal(dm_store_stats(fx->s, &st, &err), 0);
	assert_true(st.stored_bytes < 20000);
	assert_int_equal(dm_store_get(fx->s, &id, &b, NULL, &err), 0);
	assert_int_equal(b.len, 200000);
	assert_memory_equal(b.data, text, 200000);
	dm_buf_release(&b);
	free(text);
}

static void test_reopen_keeps_objects(void **state)
{
	struct fixture *fx = *state;
	dm_oid ids[50];

	fx->s = open_store(fx->dir, 0);
	for (int i = 0; i < 50; i++)
		ids[i] = put_random(fx->s, (uint64_t)i, 1000 + (size_t)i * 997);
	dm_store_free(fx->s);
	fx->s = open_store(fx->dir, 0);
	for (int i = 0; i < 50; i++)
		expect_random(fx->s, &ids[i], (uint64_t)i, 1000 + (size_t)i * 997);
}

/* The index records its format; one of a newer format is refused, so that
 * this dm never misreads what a newer one wrote. */
static void test_index_format_recorded_newer_refused(void **state)
{
	struct fixture *fx = *state;
	struct dm_store_opts o;
	struct dm_index *idx = NULL;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_store *s = NULL;
	struct dm_err err;
	unsigned char newer = 2;
	char path[512];

	fx->s = open_store(fx->dir, 0);
	(void)put_random(fx->s, 1, 1000);
	dm_store_free(fx->s);
	fx->s = NULL;
	snprintf(path, sizeof(path), "%s/index", fx->dir);
	assert_int_equal(dm_index_open(&idx, path, false, &err), 0);
	assert_int_equal(dm_index_meta_get(idx, "format", &b, &err), 0);
	assert_int_equal(b.len, 1);
	assert_int_equal(b.data[0], 1);
	assert_int_equal(dm_index_meta_put(idx, "format", &newer, 1, &err), 0);
	dm_index_free(idx);
	dm_buf_release(&b);
	dm_store_opts_default(&o);
	assert_int_equal(dm_store_open(&s, fx->dir, &o, &err), DM_EUNSUPPORTED);
	assert_null(s);
	assert_non_null(strstr(err.msg, "has format 2, newer than this dm reads (1)"));
}

static void test_packs_rotate(void **state)
{
	struct fixture *fx = *state;
	struct dm_store_stats st;
	struct dm_verify_report rep;
	struct dm_err err;
	dm_oid ids[40];

	fx->s = open_store(fx->dir, 1 << 20); /* the smallest pack size allowed */
	for (int i = 0; i < 40; i++)
		ids[i] = put_random(fx->s, (uint64_t)i, 200000);
	assert_int_equal(dm_store_stats(fx->s, &st, &err), 0);
	assert_true(st.packs >= 7);
	dm_store_free(fx->s);
	fx->s = open_store(fx->dir, 1 << 20);
	for (int i = 0; i < 40; i++)
		expect_random(fx->s, &ids[i], (uint64_t)i, 200000);
	/* appending after reopen continues in new space, not over old records */
	put_random(fx->s, 1000, 200000);
	assert_int_equal(dm_store_verify(fx->s, &rep, &err), 0);
	assert_int_equal(rep.objects, 41);
}

static void test_oversized_refused(void **state)
{
	struct fixture *fx = *state;
	struct dm_err err;
	size_t n = DM_CHUNK_MAX_LIMIT + 1;
	unsigned char *p = calloc(1, n);

	fx->s = open_store(fx->dir, 0);
	assert_int_equal(dm_store_put(fx->s, NULL, DM_OBJ_CHUNK, p, n, &err), DM_ETOOBIG);
	assert_non_null(strstr(err.msg, "over the limit"));
	free(p);
}

static void test_second_open_refused(void **state)
{
	struct fixture *fx = *state;
	struct dm_store *other = NULL;
	struct dm_err err;
	pid_t pid;
	int status;

	fx->s = open_store(fx->dir, 0);
	/* flock is per open file description: another process must be refused */
	pid = fork();
	if (pid == 0) {
		int rc = dm_store_open(&other, fx->dir, NULL, &err);

		_exit(rc == DM_EBUSY && strstr(err.msg, "in use by another process") ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

struct thread_arg {
	struct dm_store *s;
	int start;
};

static void *put_many(void *p)
{
	struct thread_arg *a = p;

	/* overlapping ranges: every object is put by two threads */
	for (int i = a->start; i < a->start + 400; i++)
		put_random(a->s, (uint64_t)i, 3000 + (size_t)(i % 13) * 1000);
	return NULL;
}

static void test_concurrent_puts(void **state)
{
	struct fixture *fx = *state;
	pthread_t th[4];
	struct thread_arg args[4];
	struct dm_store_stats st;
	struct dm_verify_report rep;
	struct dm_err err;

	fx->s = open_store(fx->dir, 0);
	for (int i = 0; i < 4; i++) {
		args[i].s = fx->s;
		args[i].start = (i % 2) * 200;
		pthread_create(&th[i], NULL, put_many, &args[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(dm_store_stats(fx->s, &st, &err), 0);
	assert_int_equal(st.objects[DM_OBJ_CHUNK], 600);
	assert_int_equal(dm_store_verify(fx->s, &rep, &err), 0);
	assert_int_equal(rep.objects, 600);
}

/* Child: flush after every `batch` objects, record how many are durable in
 * a side file, and go on until killed. */
static void crash_writer(const char *dir, const char *progress, int batch)
{
	struct dm_store *s = open_store(dir, 1 << 20);
	struct dm_err err;

	for (uint64_t n = 0;; n++) {
		put_random(s, n, 4096 + (size_t)(n % 50) * 1500);
		if (n % (uint64_t)batch == (uint64_t)batch - 1) {
			char line[32];
			int len;

			if (dm_store_flush(s, &err))
				_exit(3);
			len = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)(n + 1));
			dm_write_file_atomic(progress, line, (size_t)len, 0644, NULL);
		}
	}
}

static void test_sigkill_leaves_store_consistent(void **state)
{
	struct fixture *fx = *state;
	char progress[128];

	snprintf(progress, sizeof(progress), "%s.progress", fx->dir);
	dm_log_setup(NULL, DM_LOG_ERROR);
	for (int round = 0; round < 6; round++) {
		struct dm_verify_report rep;
		struct dm_buf line = DM_BUF_INIT;
		struct dm_err err;
		unsigned long long durable = 0;
		pid_t pid = fork();
		int status;

		if (pid == 0)
			crash_writer(fx->dir, progress, 7 + round);
		usleep(20000 + (useconds_t)(rand() % 150000));
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		assert_true(WIFSIGNALED(status));

		fx->s = open_store(fx->dir, 1 << 20);
		if (dm_store_verify(fx->s, &rep, &err))
			fail_msg("round %d: verify: %s", round, err.msg);
		if (dm_read_file(&line, progress, 64, NULL) == 0)
			durable = strtoull((const char *)line.data, NULL, 10);
		dm_buf_release(&line);
		/* everything flushed before the kill is there, bytes intact */
		for (uint64_t n = 0; n < durable; n++) {
			unsigned char *p = malloc(4096 + 50 * 1500);
			size_t len = 4096 + (size_t)(n % 50) * 1500;
			dm_oid id;

			fill(p, len, n);
			dm_hash(&id, p, len);
			if (!dm_store_has(fx->s, &id))
				fail_msg("round %d: object %llu of %llu lost", round,
					 (unsigned long long)n, durable);
			free(p);
		}
		dm_store_free(fx->s);
		fx->s = NULL;
	}
	unlink(progress);
	dm_log_setup(NULL, DM_LOG_INFO);
}

static void test_unflushed_tail_reclaimed(void **state)
{
	struct fixture *fx = *state;
	char path[256];
	struct stat before, after;
	struct dm_verify_report rep;
	struct dm_err err;
	pid_t pid;
	int status;

	fx->s = open_store(fx->dir, 0);
	put_random(fx->s, 1, 5000);
	dm_store_free(fx->s);
	fx->s = NULL;
	snprintf(path, sizeof(path), "%s/packs/pack-00000001.pack", fx->dir);
	assert_int_equal(stat(path, &before), 0);
	/* a writer that appends and dies before its flush */
	pid = fork();
	if (pid == 0) {
		struct dm_store *s = open_store(fx->dir, 0);

		put_random(s, 2, 5000);
		_exit(0); /* no flush, no close */
	}
	waitpid(pid, &status, 0);
	assert_int_equal(stat(path, &after), 0);
	assert_true(after.st_size > before.st_size);
	dm_log_setup(NULL, DM_LOG_ERROR);
	fx->s = open_store(fx->dir, 0);
	dm_log_setup(NULL, DM_LOG_INFO);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(after.st_size, before.st_size);
	assert_int_equal(dm_store_verify(fx->s, &rep, &err), 0);
	assert_int_equal(rep.objects, 1);
}

static void test_unknown_pack_removed(void **state)
{
	struct fixture *fx = *state;
	char path[256];

	fx->s = open_store(fx->dir, 0);
	put_random(fx->s, 1, 5000);
	dm_store_free(fx->s);
	snprintf(path, sizeof(path), "%s/packs/pack-00000002.pack", fx->dir);
	assert_int_equal(dm_write_file_atomic(path, "DMPACK\r\n\1\0\0\0\0\0\0\0", 16, 0644, NULL),
			 0);
	dm_log_setup(NULL, DM_LOG_ERROR);
	fx->s = open_store(fx->dir, 0);
	dm_log_setup(NULL, DM_LOG_INFO);
	assert_int_equal(access(path, F_OK), -1);
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x40;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void test_corrupt_pack_detected(void **state)
{
	struct fixture *fx = *state;
	struct dm_verify_report rep;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	char path[256];
	dm_oid a, c;

	fx->s = open_store(fx->dir, 0);
	a = put_random(fx->s, 1, 5000);
	c = put_random(fx->s, 2, 5000);
	dm_store_free(fx->s);
	snprintf(path, sizeof(path), "%s/packs/pack-00000001.pack", fx->dir);
	/* a data byte of the first record */
	flip_byte(path, 16 + 44 + 100);
	fx->s = open_store(fx->dir, 0);
	assert_int_equal(dm_store_get(fx->s, &a, &b, NULL, &err), DM_ECORRUPT);
	assert_non_null(strstr(err.msg, "does not match its id"));
	expect_random(fx->s, &c, 2, 5000);
	dm_log_setup(NULL, DM_LOG_ERROR);
	assert_int_equal(dm_store_verify(fx->s, &rep, &err), DM_ECORRUPT);
	assert_int_equal(rep.bad, 1);
	assert_int_equal(rep.objects, 2);
	/* a record header byte: the record no longer matches the index */
	flip_byte(path, 16 + 44 + 5000 + 12);
	assert_int_equal(dm_store_get(fx->s, &c, &b, NULL, &err), DM_ECORRUPT);
	assert_non_null(strstr(err.msg, "does not match the index"));
	dm_log_setup(NULL, DM_LOG_INFO);
	dm_buf_release(&b);
}

static void test_truncated_pack_detected(void **state)
{
	struct fixture *fx = *state;
	struct dm_verify_report rep;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	char path[256];
	dm_oid a;

	fx->s = open_store(fx->dir, 0);
	put_random(fx->s, 1, 5000);
	a = put_random(fx->s, 2, 5000);
	dm_store_free(fx->s);
	snprintf(path, sizeof(path), "%s/packs/pack-00000001.pack", fx->dir);
	assert_int_equal(truncate(path, 16 + 44 + 5000 + 44 + 10), 0);
	dm_log_setup(NULL, DM_LOG_ERROR + 1);
	fx->s = open_store(fx->dir, 0);
	assert_int_equal(dm_store_get(fx->s, &a, &b, NULL, &err), DM_ECORRUPT);
	assert_non_null(strstr(err.msg, "truncated"));
	assert_int_equal(dm_store_verify(fx->s, &rep, &err), DM_ECORRUPT);
	assert_int_equal(rep.bad, 1);
	dm_log_setup(NULL, DM_LOG_INFO);
	dm_buf_release(&b);
}

static void test_verify_finds_missing_references(void **state)
{
	struct fixture *fx = *state;
	struct dm_verify_report rep;
	struct dm_buf enc = DM_BUF_INIT;
	struct dm_err err;
	char name[] = "f";
	struct dm_tree_entry e = {name, DM_ENTRY_FILE, 0644, 0, 0, 0, 10, {{0}}, NULL};
	struct dm_tree t = {1, &e};

	memset(e.id.b, 0x11, sizeof(e.id.b)); /* no such file object */
	fx->s = open_store(fx->dir, 0);
	assert_int_equal(dm_tree_encode(&enc, &t, &err), 0);
	assert_int_equal(dm_store_put(fx->s, NULL, DM_OBJ_TREE, enc.data, enc.len, &err), 0);
	dm_log_setup(NULL, DM_LOG_ERROR);
	assert_int_equal(dm_store_verify(fx->s, &rep, &err), DM_ECORRUPT);
	dm_log_setup(NULL, DM_LOG_INFO);
	assert_non_null(strstr(err.msg, "refers to missing file 1111"));
	dm_buf_release(&enc);
}

static void test_external_objects(void **state)
{
	struct fixture *fx = *state;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_store_stats st;
	struct dm_err err;
	char path[256];
	unsigned char data[10000];
	dm_oid id, wrong;

	fill(data, sizeof(data), 42);
	snprintf(path, sizeof(path), "%s/snapshot-file", fx->dir);
	assert_int_equal(dm_write_file_atomic(path, data, sizeof(data), 0444, NULL), 0);
	fx->s = open_store(fx->dir, 0);
	dm_hash(&id, data + 1000, 3000);
	assert_int_equal(dm_store_put_external(fx->s, &id, DM_OBJ_CHUNK, path, 1000, 3000, &err),
			 0);
	assert_int_equal(dm_store_get(fx->s, &id, &b, NULL, &err), 0);
	assert_int_equal(b.len, 3000);
	assert_memory_equal(b.data, data + 1000, 3000);
	/* bytes that do not hash to the id are refused */
	dm_hash(&wrong, data, 3000);
	assert_int_equal(dm_store_put_external(fx->s, &wrong, DM_OBJ_CHUNK, path, 1, 3000, &err),
			 DM_ECORRUPT);
	assert_int_equal(dm_store_stats(fx->s, &st, &err), 0);
	assert_int_equal(st.external, 1);
	assert_int_equal(st.pack_bytes, 0);
	dm_buf_release(&b);
}

static void test_commit_index(void **state)
{
	struct fixture *fx = *state;
	struct dm_err err;
	char **ids = NULL;
	size_t n = 0;
	dm_oid a, b, got;

	fx->s = open_store(fx->dir, 0);
	a = put_random(fx->s, 1, 100);
	b = put_random(fx->s, 2, 100);
	assert_int_equal(dm_store_commit_put(fx->s, "dot1", "0192-aaaa", &a, &err), 0);
	assert_int_equal(dm_store_commit_put(fx->s, "dot1", "0192-aabb", &b, &err), 0);
	assert_int_equal(dm_store_commit_put(fx->s, "dot1", "0193-cccc", &b, &err), 0);
	assert_int_equal(dm_store_commit_put(fx->s, "dot10", "0192-aaaa", &b, &err), 0);
	assert_int_equal(dm_store_commit_get(fx->s, "dot1", "0192-aaaa", &got, &err), 0);
	assert_memory_equal(got.b, a.b, DM_OID_RAWSZ);
	assert_int_equal(dm_store_commit_get(fx->s, "dot1", "nope", &got, &err), DM_ENOTFOUND);
	assert_non_null(strstr(err.msg, "no commit 'nope'"));
	/* prefix lookup stays inside the dot: "dot10" is not "dot1" */
	assert_int_equal(dm_store_commit_find(fx->s, "dot1", "0192-aa", 10, &ids, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], "0192-aaaa");
	assert_string_equal(ids[1], "0192-aabb");
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	assert_int_equal(dm_store_commit_find(fx->s, "dot1", "", 1, &ids, &n, &err), 0);
	assert_int_equal(n, 1);
	free(ids[0]);
	free(ids);
	/* deleting one dot's commits leaves the other dot's */
	assert_int_equal(dm_store_commit_delete_dot(fx->s, "dot1", &err), 0);
	assert_int_equal(dm_store_commit_find(fx->s, "dot1", "", 10, &ids, &n, &err), 0);
	assert_int_equal(n, 0);
	free(ids);
	assert_int_equal(dm_store_commit_get(fx->s, "dot10", "0192-aaaa", &got, &err), 0);
	/* and it survives a reopen */
	dm_store_free(fx->s);
	fx->s = open_store(fx->dir, 0);
	assert_int_equal(dm_store_commit_get(fx->s, "dot10", "0192-aaaa", &got, &err), 0);
	assert_memory_equal(got.b, b.b, DM_OID_RAWSZ);
}

/* ---- stored form (transfers) ---- */

/* A second store next to the fixture's, for objects that travel. */
static struct dm_store *open_second(struct fixture *fx, char *dir, size_t size)
{
	snprintf(dir, size, "%s/second", fx->dir);
	return open_store(dir, 0);
}

static void test_stored_roundtrip(void **state)
{
	struct fixture *fx = *state;
	unsigned char *text = malloc(200000);
	struct dm_buf stored = DM_BUF_INIT, b = DM_BUF_INIT;
	struct dm_pack_rec rec;
	struct dm_store *two;
	struct dm_err err;
	char dir[128];
	dm_oid ids[2];

	fx->s = open_store(fx->dir, 0);
	two = open_second(fx, dir, sizeof(dir));
	/* one object compresses (text), one does not (random) */
	for (size_t i = 0; i < 200000; i++)
		text[i] = (unsigned char)("abcdefgh\n"[i % 9]);
	assert_int_equal(dm_store_put(fx->s, &ids[0], DM_OBJ_CHUNK, text, 200000, &err), 0);
	ids[1] = put_random(fx->s, 7, 150000);
	for (int i = 0; i < 2; i++) {
		dm_buf_reset(&stored);
		assert_int_equal(dm_store_get_stored(fx->s, &ids[i], &rec, &stored, &err), 0);
		assert_memory_equal(rec.id.b, ids[i].b, DM_OID_RAWSZ);
		assert_int_equal(rec.kind, DM_OBJ_CHUNK);
		assert_int_equal(rec.stored_len, stored.len);
		if (i == 0) {
			assert_int_equal(rec.flags, DM_PACK_F_ZSTD);
			assert_int_equal(rec.raw_len, 200000);
			assert_true(stored.len < 10000);
		} else {
			assert_int_equal(rec.flags, 0);
			assert_int_equal(rec.raw_len, 150000);
		}
		assert_int_equal(dm_store_has(two, &ids[i]), 0);
		assert_int_equal(dm_store_put_stored(two, &rec, stored.data, &err), 0);
		assert_int_equal(dm_store_has(two, &ids[i]), 1);
	}
	/* what arrived reads back the same, and was not recompressed */
	assert_int_equal(dm_store_get(two, &ids[0], &b, NULL, &err), 0);
	assert_int_equal(b.len, 200000);
	assert_memory_equal(b.data, text, 200000);
	expect_random(two, &ids[1], 7, 150000);
	dm_buf_reset(&stored);
	assert_int_equal(dm_store_get_stored(two, &ids[0], &rec, &stored, &err), 0);
	assert_int_equal(rec.flags, DM_PACK_F_ZSTD);
	/* durable: it survives a reopen of the receiving store */
	dm_store_free(two);
	two = open_store(dir, 0);
	expect_random(two, &ids[1], 7, 150000);
	assert_int_equal(dm_store_get_stored(two, &ids[1], &rec, &stored, &err), 0);
	dm_store_free(two);
	dm_buf_release(&stored);
	dm_buf_release(&b);
	free(text);
}

static void test_stored_external(void **state)
{
	struct fixture *fx = *state;
	struct dm_buf stored = DM_BUF_INIT;
	struct dm_pack_rec rec;
	struct dm_err err;
	char path[256];
	unsigned char data[5000];
	dm_oid id;

	fill(data, sizeof(data), 9);
	snprintf(path, sizeof(path), "%s/snap", fx->dir);
	assert_int_equal(dm_write_file_atomic(path, data, sizeof(data), 0444, NULL), 0);
	fx->s = open_store(fx->dir, 0);
	dm_hash(&id, data + 100, 4000);
	assert_int_equal(dm_store_put_external(fx->s, &id, DM_OBJ_CHUNK, path, 100, 4000, &err), 0);
	assert_int_equal(dm_store_get_stored(fx->s, &id, &rec, &stored, &err), 0);
	assert_int_equal(rec.flags, 0);
	assert_int_equal(rec.raw_len, 4000);
	assert_int_equal(rec.stored_len, 4000);
	assert_memory_equal(stored.data, data + 100, 4000);
	dm_buf_release(&stored);
}

/* Puts a record into a fresh second store and returns the result. */
static int put_into_fresh(struct fixture *fx, const struct dm_pack_rec *rec, const void *bytes,
			  struct dm_err *err, int *present)
{
	char dir[128];
	struct dm_store *two = open_second(fx, dir, sizeof(dir));
	int rc = dm_store_put_stored(two, rec, bytes, err);

	*present = dm_store_has(two, &rec->id);
	dm_store_free(two);
	dm_remove_tree(dir, NULL);
	return rc;
}

static void test_stored_flipped_byte_refused(void **state)
{
	struct fixture *fx = *state;
	unsigned char *text = malloc(100000);
	struct dm_buf stored = DM_BUF_INIT;
	struct dm_pack_rec rec;
	struct dm_err err;
	dm_oid ids[2];
	int present = 1;

	fx->s = open_store(fx->dir, 0);
	for (size_t i = 0; i < 100000; i++)
		text[i] = (unsigned char)(i % 7 + 'a');
	assert_int_equal(dm_store_put(fx->s, &ids[0], DM_OBJ_CHUNK, text, 100000, &err), 0);
	ids[1] = put_random(fx->s, 3, 20000);
	for (int i = 0; i < 2; i++) {
		dm_buf_reset(&stored);
		assert_int_equal(dm_store_get_stored(fx->s, &ids[i], &rec, &stored, &err), 0);
		assert_int_equal(put_into_fresh(fx, &rec, stored.data, &err, &present), 0);
		assert_int_equal(present, 1);
		/* one flipped bit anywhere: refused, nothing stored */
		stored.data[stored.len / 2] ^= 0x10;
		assert_int_equal(put_into_fresh(fx, &rec, stored.data, &err, &present),
				 DM_ECORRUPT);
		assert_int_equal(present, 0);
	}
	/* a wrong id for correct bytes, too */
	dm_buf_reset(&stored);
	assert_int_equal(dm_store_get_stored(fx->s, &ids[1], &rec, &stored, &err), 0);
	rec.id.b[0] ^= 1;
	assert_int_equal(put_into_fresh(fx, &rec, stored.data, &err, &present), DM_ECORRUPT);
	assert_non_null(strstr(err.msg, "does not match its id"));
	assert_int_equal(present, 0);
	dm_buf_release(&stored);
	free(text);
}

static void test_stored_lying_lengths_refused(void **state)
{
	struct fixture *fx = *state;
	unsigned char *text = malloc(100000);
	struct dm_buf stored = DM_BUF_INIT;
	struct dm_pack_rec rec, bad;
	struct dm_err err;
	dm_oid id, rid;
	int present = 1;

	fx->s = open_store(fx->dir, 0);
	for (size_t i = 0; i < 100000; i++)
		text[i] = (unsigned char)(i % 11 + 'a');
	assert_int_equal(dm_store_put(fx->s, &id, DM_OBJ_CHUNK, text, 100000, &err), 0);
	assert_int_equal(dm_store_get_stored(fx->s, &id, &rec, &stored, &err), 0);
	assert_int_equal(rec.flags, DM_PACK_F_ZSTD);
	/* compressed: raw_len smaller or larger than the frame holds */
	bad = rec;
	bad.raw_len = rec.raw_len - 1;
	assert_int_equal(put_into_fresh(fx, &bad, stored.data, &err, &present), DM_ECORRUPT);
	assert_int_equal(present, 0);
	bad.raw_len = rec.raw_len + 1;
	assert_int_equal(put_into_fresh(fx, &bad, stored.data, &err, &present), DM_ECORRUPT);
	assert_int_equal(present, 0);
	/* past the kind's limit: refused before anything is read */
	bad.raw_len = DM_CHUNK_MAX_LIMIT + 1;
	assert_int_equal(put_into_fresh(fx, &bad, stored.data, &err, &present), DM_ECORRUPT);
	assert_non_null(strstr(err.msg, "corrupt pack record"));
	/* uncompressed: stored_len must equal raw_len */
	rid = put_random(fx->s, 5, 1000);
	dm_buf_reset(&stored);
	assert_int_equal(dm_store_get_stored(fx->s, &rid, &rec, &stored, &err), 0);
	bad = rec;
	bad.raw_len = 999;
	assert_int_equal(put_into_fresh(fx, &bad, stored.data, &err, &present), DM_ECORRUPT);
	assert_int_equal(present, 0);
	/* unknown kinds and flags */
	bad = rec;
	bad.kind = 9;
	assert_int_equal(put_into_fresh(fx, &bad, stored.data, &err, &present), DM_ECORRUPT);
	bad = rec;
	bad.flags = 0x80;
	assert_int_equal(put_into_fresh(fx, &bad, stored.data, &err, &present), DM_ECORRUPT);
	dm_buf_release(&stored);
	free(text);
}

static void test_stored_zstd_bomb_refused(void **state)
{
	struct fixture *fx = *state;
	size_t big = 8u << 20, small = 4096;
	unsigned char *zeros = calloc(1, big);
	size_t bound = ZSTD_compressBound(big), z;
	unsigned char *frame = malloc(bound);
	struct dm_pack_rec rec;
	struct dm_err err;
	int present = 1;

	/* 8 MiB of zeros in a few hundred bytes, claiming to be 4 KiB whose id
	 * is the first 4 KiB's: only a decoder that stops at raw_len is safe */
	z = ZSTD_compress(frame, bound, zeros, big, 3);
	assert_false(ZSTD_isError(z));
	memset(&rec, 0, sizeof(rec));
	rec.kind = DM_OBJ_CHUNK;
	rec.flags = DM_PACK_F_ZSTD;
	rec.raw_len = (uint32_t)small;
	rec.stored_len = (uint32_t)z;
	dm_hash(&rec.id, zeros, small);
	fx->s = open_store(fx->dir, 0);
	assert_int_equal(put_into_fresh(fx, &rec, frame, &err, &present), DM_ECORRUPT);
	assert_int_equal(present, 0);
	/* the same without the content size in the frame header (streamed) */
	{
		ZSTD_CCtx *c = ZSTD_createCCtx();
		ZSTD_inBuffer in = {zeros, big, 0};
		ZSTD_outBuffer out = {frame, bound, 0};

		ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
		assert_int_equal(ZSTD_compressStream2(c, &out, &in, ZSTD_e_end), 0);
		assert_int_equal(ZSTD_getFrameContentSize(frame, out.pos),
				 ZSTD_CONTENTSIZE_UNKNOWN);
		rec.stored_len = (uint32_t)out.pos;
		ZSTD_freeCCtx(c);
	}
	assert_int_equal(put_into_fresh(fx, &rec, frame, &err, &present), DM_ECORRUPT);
	assert_int_equal(present, 0);
	free(frame);
	free(zeros);
}

/* ---- full disks and failed syncs ---- */

static int sync_fails; /* the injected sync fails while set */

static int flaky_sync(int fd)
{
	if (sync_fails) {
		errno = EIO;
		return -1;
	}
	return fdatasync(fd);
}

static struct dm_store *open_with(const char *dir, int64_t reserve, int (*sync_fn)(int))
{
	struct dm_store_opts o;
	struct dm_store *s = NULL;
	struct dm_err err;

	dm_store_opts_default(&o);
	o.reserve = reserve;
	o.sync_fn = sync_fn;
	if (dm_store_open(&s, dir, &o, &err))
		fail_msg("open: %s", err.msg);
	return s;
}

static void test_failed_sync_stops_writes(void **state)
{
	struct fixture *fx = *state;
	struct dm_verify_report rep;
	struct dm_err err;
	dm_oid a, b;

	fx->s = open_with(fx->dir, 0, flaky_sync);
	a = put_random(fx->s, 1, 5000);
	assert_int_equal(dm_store_flush(fx->s, &err), 0);
	b = put_random(fx->s, 2, 5000);
	sync_fails = 1;
	assert_int_equal(dm_store_flush(fx->s, &err), DM_EIO);
	assert_non_null(strstr(err.msg, "accepts no more writes: syncing pack 1 failed"));
	/* the sync works again, but the store does not pretend it did before */
	sync_fails = 0;
	assert_int_equal(dm_store_flush(fx->s, &err), DM_EIO);
	assert_non_null(strstr(err.msg, "restart dmd"));
	{
		unsigned char buf[100];

		fill(buf, sizeof(buf), 3);
		assert_int_equal(dm_store_put(fx->s, NULL, DM_OBJ_CHUNK, buf, sizeof(buf), &err),
				 DM_EIO);
	}
	/* reads go on */
	expect_random(fx->s, &a, 1, 5000);
	/* opened again: back to what was durable, and writes work */
	dm_store_free(fx->s);
	fx->s = open_with(fx->dir, 0, flaky_sync);
	expect_random(fx->s, &a, 1, 5000);
	assert_false(dm_store_has(fx->s, &b));
	b = put_random(fx->s, 2, 5000);
	assert_int_equal(dm_store_flush(fx->s, &err), 0);
	expect_random(fx->s, &b, 2, 5000);
	assert_int_equal(dm_store_verify(fx->s, &rep, &err), 0);
}

static void test_reserve_refuses_writes(void **state)
{
	struct fixture *fx = *state;
	struct dm_verify_report rep;
	struct dm_store_gc_stats st;
	unsigned char buf[5000];
	struct dm_err err;
	dm_oid a, id;

	fx->s = open_with(fx->dir, -1, NULL);
	a = put_random(fx->s, 1, 5000);
	(void)put_random(fx->s, 2, 5000); /* garbage: no commit names it */
	assert_int_equal(dm_store_flush(fx->s, &err), 0);
	dm_store_free(fx->s);
	/* a reserve larger than any disk: every new write is refused */
	fx->s = open_with(fx->dir, INT64_MAX / 4, NULL);
	fill(buf, sizeof(buf), 9);
	assert_int_equal(dm_store_put(fx->s, &id, DM_OBJ_CHUNK, buf, sizeof(buf), &err), DM_ENOSPC);
	assert_non_null(strstr(err.msg, "no space: the file system of store"));
	assert_non_null(strstr(err.msg, "in reserve"));
	assert_false(dm_store_has(fx->s, &id));
	/* an object already stored needs no space */
	fill(buf, sizeof(buf), 1);
	assert_int_equal(dm_store_put(fx->s, &id, DM_OBJ_CHUNK, buf, sizeof(buf), &err), 0);
	/* the collector may use the reserve: it rewrites the half-dead pack */
	dm_store_pin(fx->s, &a);
	assert_int_equal(dm_store_gc(fx->s, NULL, &st, &err), 0);
	assert_int_equal(st.freed, 1);
	assert_int_equal(st.packs, 1);
	expect_random(fx->s, &a, 1, 5000);
	assert_int_equal(dm_store_verify(fx->s, &rep, &err), 0);
	dm_store_free(fx->s);
	fx->s = open_with(fx->dir, -1, NULL);
	fill(buf, sizeof(buf), 9);
	assert_int_equal(dm_store_put(fx->s, &id, DM_OBJ_CHUNK, buf, sizeof(buf), &err), 0);
	expect_random(fx->s, &a, 1, 5000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_object_not_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_stored_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compressible_chunks_compressed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_objects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_format_recorded_newer_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_packs_rotate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_open_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_puts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_leaves_store_consistent, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unflushed_tail_reclaimed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_pack_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_pack_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_pack_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_finds_missing_references, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_external_objects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stored_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stored_external, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stored_flipped_byte_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stored_lying_lengths_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stored_zstd_bomb_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_sync_stops_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve_refuses_writes, setup, teardown),
	};

	srand((unsigned)time(NULL));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
