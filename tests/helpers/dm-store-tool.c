/*
 * dm-store-tool.c - drives the object store from the shell, for tests and
 * benchmarks (like git's t/helper): commit a directory, check a tree out,
 * list a tree, verify and count the store, list the index, and make it
 * forget an object (reaching into the store's internals, as a test may).
 *
 *     dm-store-tool --store DIR [--external-root DIR] [--threads N] [--quiet]
 *                   [--no-sync] CMD ARGS
 *
 * Invariants: stdout carries only the command's result (a tree id, a
 * listing, verify's or stats' lines); statistics and errors go to stderr;
 * an error is one line `dm-store-tool: <message>` and the exit status is
 * dm_err_exit_status of its code (verify's "corrupt" is exit 1). The stat
 * cache of a directory lives in the store directory, named by the SHA-256
 * of the directory's real path, so each directory has its own.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/index.h"
#include "store/internal.h"
#include "store/store.h"
#include "store/tree.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/hash.h"
#include "util/log.h"

#include "util/banned.h"

struct tool {
	const char *store_dir;
	const char *ext_root;
	int threads;
	bool quiet;
	bool sync;
	struct dm_store *s;
};

static const char usage_text[] =
	"usage: dm-store-tool --store DIR [options] <command> [args]\n"
	"\n"
	"commands:\n"
	"  commit SRC         store directory SRC; prints its root tree id\n"
	"  checkout TREE DST  make directory DST equal to tree TREE (hex id)\n"
	"  ls TREE            list tree TREE recursively, one entry a line:\n"
	"                     type mode uid:gid size mtime_ns path [-> target]\n"
	"  verify             rehash every object and check every reference\n"
	"  stats              object counts and sizes\n"
	"  list               every indexed object: KIND ID RAW_LEN PACK OFFSET\n"
	"  forget ID          make the index forget object ID (a test of dm fsck)\n"
	"\n"
	"options:\n"
	"  --store DIR        the store directory (created when missing)\n"
	"  --external-root DIR  the directory the engine keeps files in (a btrfs\n"
	"                     dmd's DATA/dots, resolved): objects kept in its\n"
	"                     snapshots are recorded relative to it\n"
	"  --threads N        worker threads (default: one per CPU)\n"
	"  --quiet            no statistics on stderr\n"
	"  --no-sync          do not fsync when flushing (tests only)\n"
	"  -h, --help         this text\n";

static int die(int code, const char *msg)
{
	fprintf(stderr, "dm-store-tool: %s\n", msg);
	return dm_err_exit_status(code);
}

static int usage(void)
{
	fputs(usage_text, stderr);
	return 2;
}

/* Writes s with control bytes, backslashes and quotes C-escaped. */
static void put_escaped(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '"':
			fputs("\\\"", f);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(f, "\\%03o", *p);
			else
				fputc(*p, f);
		}
	}
}

static int cache_path(char *out, size_t size, const char *store_dir, const char *dir,
		      struct dm_err *err)
{
	char real[PATH_MAX], hex[DM_OID_HEXSZ + 1];
	dm_oid id;

	if (!realpath(dir, real))
		return dm_err_errno(err, errno, "cannot resolve '%s'", dir);
	dm_hash(&id, real, strlen(real));
	dm_oid_hex(hex, &id);
	if (snprintf(out, size, "%s/statcache-%s", store_dir, hex) >= (int)size)
		return dm_err_set(err, DM_ETOOBIG, "store path too long: '%s'", store_dir);
	return 0;
}

static double secs_since(int64_t t0)
{
	return (double)(dm_now_monotonic_ns() - t0) / 1e9;
}

static int cmd_commit(struct tool *t, int argc, char **argv, struct dm_err *err)
{
	struct dm_build_opts opts = {.threads = t->threads};
	struct dm_build_stats st;
	char path[PATH_MAX], hex[DM_OID_HEXSZ + 1];
	int64_t t0 = dm_now_monotonic_ns();
	dm_oid root;
	double secs;
	int rc;

	if (argc != 1)
		return dm_err_set(err, DM_EINVAL, "commit needs exactly one directory");
	rc = cache_path(path, sizeof(path), t->store_dir, argv[0], err);
	if (!rc)
		rc = dm_statcache_load(&opts.cache, path, err);
	if (!rc)
		rc = dm_tree_build(t->s, &root, argv[0], &opts, &st, err);
	if (!rc)
		rc = dm_store_flush(t->s, err);
	if (!rc)
		rc = dm_statcache_save(opts.cache, path, err);
	dm_statcache_free(opts.cache);
	if (rc)
		return rc;
	secs = secs_since(t0);
	dm_oid_hex(hex, &root);
	printf("%s\n", hex);
	if (!t->quiet)
		fprintf(stderr,
			"commit: files: %" PRIu64 ", dirs: %" PRIu64 ", symlinks: %" PRIu64
			", hashed: %" PRIu64 ", bytes: %" PRIu64 ", bytes hashed: %" PRIu64
			", new chunks: %" PRIu64 ", %.3f s, %.1f MB/s, %.0f files/s\n",
			st.files, st.dirs, st.symlinks, st.files_hashed, st.bytes_total,
			st.bytes_hashed, st.chunks_new, secs,
			secs > 0 ? (double)st.bytes_hashed / secs / 1e6 : 0.0,
			secs > 0 ? (double)st.files / secs : 0.0);
	return 0;
}

static int parse_tree_id(dm_oid *out, const char *hex, struct dm_err *err)
{
	if (dm_oid_from_hex(out, hex, strlen(hex)) < 0)
		return dm_err_set(err, DM_EINVAL, "'%s' is not an object id", hex);
	return 0;
}

static int cmd_checkout(struct tool *t, int argc, char **argv, struct dm_err *err)
{
	struct dm_materialize_opts opts = {.threads = t->threads, .restore_owner = geteuid() == 0};
	struct dm_materialize_stats st;
	char path[PATH_MAX];
	int64_t t0 = dm_now_monotonic_ns();
	dm_oid tree;
	int rc;

	if (argc != 2)
		return dm_err_set(err, DM_EINVAL, "checkout needs a tree id and a directory");
	rc = parse_tree_id(&tree, argv[0], err);
	if (rc)
		return rc;
	if (mkdir(argv[1], 0755) < 0 && errno != EEXIST)
		return dm_err_errno(err, errno, "cannot create directory '%s'", argv[1]);
	rc = cache_path(path, sizeof(path), t->store_dir, argv[1], err);
	if (!rc)
		rc = dm_statcache_load(&opts.cache, path, err);
	if (!rc)
		rc = dm_tree_materialize(t->s, &tree, argv[1], &opts, &st, err);
	if (!rc)
		rc = dm_statcache_save(opts.cache, path, err);
	dm_statcache_free(opts.cache);
	if (rc)
		return rc;
	if (!t->quiet)
		fprintf(stderr,
			"checkout: written: %" PRIu64 ", kept: %" PRIu64 ", removed: %" PRIu64
			", bytes written: %" PRIu64 ", %.3f s\n",
			st.files_written, st.files_kept, st.removed, st.bytes_written,
			secs_since(t0));
	return 0;
}

static const char *type_name(int type)
{
	switch (type) {
	case DM_ENTRY_FILE:
		return "file";
	case DM_ENTRY_DIR:
		return "dir";
	case DM_ENTRY_SYMLINK:
		return "symlink";
	default:
		return "unknown";
	}
}

static int list_tree(struct tool *t, const dm_oid *id, struct dm_buf *prefix, int depth,
		     struct dm_err *err)
{
	struct dm_buf obj;
	struct dm_tree tree = {0, NULL};
	int kind = 0, rc;

	if (depth > DM_TREE_MAX_DEPTH)
		return dm_err_set(err, DM_ECORRUPT, "trees nest more than %d deep",
				  DM_TREE_MAX_DEPTH);
	dm_buf_init(&obj, DM_OBJ_MAX_SIZE);
	rc = dm_store_get(t->s, id, &obj, &kind, err);
	if (!rc && kind != DM_OBJ_TREE)
		rc = dm_err_set(err, DM_EINVAL, "object is a %s, not a tree",
				dm_obj_kind_name(kind));
	if (!rc)
		rc = dm_tree_decode(&tree, obj.data, obj.len, err);
	dm_buf_release(&obj);
	for (size_t i = 0; !rc && i < tree.n; i++) {
		const struct dm_tree_entry *e = &tree.e[i];
		size_t old = prefix->len;

		if (old)
			dm_buf_addc(prefix, '/');
		dm_buf_adds(prefix, e->name);
		printf("%s %04o %u:%u %" PRIu64 " %" PRId64 " ", type_name(e->type),
		       (unsigned)e->mode, (unsigned)e->uid, (unsigned)e->gid, e->size,
		       e->mtime_ns);
		put_escaped(stdout, (const char *)prefix->data);
		if (e->type == DM_ENTRY_SYMLINK && e->target) {
			fputs(" -> ", stdout);
			put_escaped(stdout, e->target);
		}
		fputc('\n', stdout);
		if (e->type == DM_ENTRY_DIR)
			rc = list_tree(t, &e->id, prefix, depth + 1, err);
		prefix->len = old;
		prefix->data[old] = '\0';
	}
	dm_tree_release(&tree);
	return rc;
}

static int cmd_ls(struct tool *t, int argc, char **argv, struct dm_err *err)
{
	struct dm_buf prefix;
	dm_oid tree;
	int rc;

	if (argc != 1)
		return dm_err_set(err, DM_EINVAL, "ls needs a tree id");
	rc = parse_tree_id(&tree, argv[0], err);
	if (rc)
		return rc;
	dm_buf_init(&prefix, 0);
	dm_buf_adds(&prefix, "");
	rc = list_tree(t, &tree, &prefix, 0, err);
	dm_buf_release(&prefix);
	return rc;
}

static int cmd_verify(struct tool *t, int argc, char **argv, struct dm_err *err)
{
	struct dm_verify_report rep;
	int rc;

	if (argc != 0)
		return dm_err_set(err, DM_EINVAL, "verify takes no arguments");
	memset(&rep, 0, sizeof(rep));
	rc = dm_store_verify(t->s, &rep, err);
	if (rc == DM_ECORRUPT) {
		printf("bad: %" PRIu64 " of %" PRIu64 " objects\n", rep.bad, rep.objects);
		fprintf(stderr, "dm-store-tool: %s\n", err->msg);
		return 1;
	}
	if (rc)
		return rc;
	printf("ok: %" PRIu64 " objects, %" PRIu64 " bytes\n", rep.objects, rep.bytes);
	return 0;
}

static int cmd_stats(struct tool *t, int argc, char **argv, struct dm_err *err)
{
	struct dm_store_stats st;
	int rc;

	if (argc != 0)
		return dm_err_set(err, DM_EINVAL, "stats takes no arguments");
	rc = dm_store_stats(t->s, &st, err);
	if (rc)
		return rc;
	for (int k = DM_OBJ_CHUNK; k <= DM_OBJ_COMMIT; k++)
		printf("%ss: %" PRIu64 "\n", dm_obj_kind_name(k), st.objects[k]);
	printf("raw_bytes: %" PRIu64 "\n", st.raw_bytes);
	printf("stored_bytes: %" PRIu64 "\n", st.stored_bytes);
	printf("external: %" PRIu64 "\n", st.external);
	printf("packs: %" PRIu64 "\n", st.packs);
	printf("pack_bytes: %" PRIu64 "\n", st.pack_bytes);
	printf("staged_packs: %" PRIu64 "\n", st.staged_packs);
	printf("staged_bytes: %" PRIu64 "\n", st.staged_bytes);
	return 0;
}

/* Every indexed object: KIND HEX RAW_LEN PACK OFFSET (pack 0 offset 0 for
 * one kept in an engine's file), in id order. */
static int list_one(const dm_oid *id, const struct dm_loc *loc, void *ctx)
{
	char hex[DM_OID_HEXSZ + 1];

	(void)ctx;
	dm_oid_hex(hex, id);
	printf("%s %s %" PRIu32 " %" PRIu32 " %" PRIu64 "\n", dm_obj_kind_name(loc->kind), hex,
	       loc->raw_len, loc->where == DM_LOC_PACK ? loc->pack : 0,
	       loc->where == DM_LOC_PACK ? loc->offset : 0);
	return 0;
}

static int cmd_list(struct tool *t, int argc, char **argv, struct dm_err *err)
{
	int rc;

	if (argc != 0)
		return dm_err_set(err, DM_EINVAL, "list takes no arguments");
	rc = dm_store_flush(t->s, err);
	return rc ? rc : dm_index_foreach(t->s->idx, list_one, NULL, err);
}

/* Makes the index forget object HEX (its bytes stay where they are): what
 * a lost index entry looks like, for dm fsck's tests. */
static int cmd_forget(struct tool *t, int argc, char **argv, struct dm_err *err)
{
	struct dm_index_entry e;
	size_t n = 0;
	int rc;

	if (argc != 1 || dm_oid_from_hex(&e.id, argv[0], strlen(argv[0])))
		return dm_err_set(err, DM_EINVAL, "forget takes one object id");
	e.path = NULL;
	rc = dm_index_get(t->s->idx, &e.id, &e.loc, NULL, err);
	if (!rc)
		rc = dm_index_delete_if(t->s->idx, &e, 1, &n, err);
	if (!rc && n != 1)
		rc = dm_err_set(err, DM_ENOTFOUND, "no object %s", argv[0]);
	return rc;
}

struct command {
	const char *name;
	int (*fn)(struct tool *t, int argc, char **argv, struct dm_err *err);
};

static const struct command commands[] = {
	{"commit", cmd_commit},
	{"checkout", cmd_checkout},
	{"ls", cmd_ls},
	{"verify", cmd_verify},
	{"stats", cmd_stats},
	{"list", cmd_list},
	{"forget", cmd_forget},
};

static int parse_int(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 1024)
		return -1;
	*out = (int)v;
	return 0;
}

int main(int argc, char **argv)
{
	struct tool t = {NULL, NULL, 0, false, true, NULL};
	struct dm_store_opts sopts;
	struct dm_err err = {0, ""};
	const struct command *cmd = NULL;
	int i, rc;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			return 0;
		} else if (!strcmp(a, "--store") && i + 1 < argc) {
			t.store_dir = argv[++i];
		} else if (!strcmp(a, "--external-root") && i + 1 < argc) {
			t.ext_root = argv[++i];
		} else if (!strcmp(a, "--threads") && i + 1 < argc) {
			if (parse_int(argv[++i], &t.threads) < 0)
				return die(DM_EINVAL, "--threads needs a number from 0 to 1024");
		} else if (!strcmp(a, "--quiet")) {
			t.quiet = true;
		} else if (!strcmp(a, "--no-sync")) {
			t.sync = false;
		} else if (!strcmp(a, "--")) {
			i++;
			break;
		} else {
			fprintf(stderr, "dm-store-tool: unknown option '%s'\n", a);
			return usage();
		}
	}
	if (i >= argc)
		return usage();
	if (!strcmp(argv[i], "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (!strcmp(commands[k].name, argv[i]))
			cmd = &commands[k];
	if (!cmd) {
		fprintf(stderr, "dm-store-tool: unknown command '%s'\n", argv[i]);
		return usage();
	}
	if (!t.store_dir)
		return die(DM_EINVAL, "--store DIR is required");
	dm_log_setup(stderr, t.quiet ? DM_LOG_ERROR : DM_LOG_WARN);
	dm_store_opts_default(&sopts);
	sopts.sync = t.sync;
	rc = dm_store_open(&t.s, t.store_dir, &sopts, &err);
	if (rc)
		return die(rc, err.msg);
	if (t.ext_root) {
		char *abs = realpath(t.ext_root, NULL);

		rc = abs ? dm_store_set_external_root(t.s, abs, &err)
			 : dm_err_errno(&err, errno, "cannot resolve '%s'", t.ext_root);
		free(abs);
		if (rc) {
			dm_store_free(t.s);
			return die(rc, err.msg);
		}
	}
	rc = cmd->fn(&t, argc - i - 1, argv + i + 1, &err);
	dm_store_free(t.s);
	if (rc < 0)
		return die(rc, err.msg);
	fflush(stdout);
	return rc;
}
