/*
 * put_job.c - dotmesh's S3 PUT and DELETE as one job of the dot
 * (DM_DOT_OP_PUT_FILE, dot.h): change one key of a branch's __default__
 * subdot, then commit the branch (dm_dot_job_commit, with its hooks and
 * freeze), so that what the caller is answered is the commit of exactly
 * its change.
 *
 * Invariants:
 *   - Every name is resolved from the subdot's directory fd, one name at a
 *     time, through dm_open_beneath (no symbolic link followed, no mount
 *     crossed); directories on the way are made with mkdirat from their
 *     parent's fd. Keys were checked by dm_s3_key_check before they got
 *     here, and so is every entry of a tar before it is extracted.
 *   - A file replaces its key atomically: it is copied (reflinked where it
 *     can be) beside it under a temporary name, then renamed over it; a
 *     tar is extracted beside its key, and takes its name only once all
 *     of it is there. A failed change leaves the key as it was.
 *   - A tar is read as plain tar only (no decompression), so what it
 *     extracts is bounded by the upload's size; only its files and
 *     directories are extracted, with their permission bits and never
 *     setuid, setgid or sticky; any other entry refuses the whole put.
 *   - Nothing is committed when the change failed.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "server/dots/dot_internal.h"
#include "server/dots/s3key.h"
#include "store/filedata.h"
#include "util/buf.h"
#include "util/fsutil.h"

#include "util/banned.h"

#define DEFAULT_SUBDOT "__default__"
#define TAR_BLOCK      (1u << 16)

/* The directory rel (a checked key, or "" for dirfd itself) under dirfd,
 * made with its parents when make: a new fd, or -1 with err filled. */
static int open_dir(int dirfd, const char *rel, bool make, const char *key, struct dm_err *err)
{
	char name[DM_S3_KEY_MAX + 1];
	const char *p = rel;
	int cur = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);

	while (cur >= 0 && *p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		int next;

		memcpy(name, p, n);
		name[n] = '\0';
		if (make && mkdirat(cur, name, 0755) < 0 && errno != EEXIST) {
			dm_err_errno(err, errno, "cannot make directory '%s' for key '%s'", name,
				     key);
			close(cur);
			return -1;
		}
		next = dm_open_beneath(cur, name, O_RDONLY | O_DIRECTORY);
		if (next < 0) {
			int e = errno;

			if (e == ENOENT)
				dm_err_set(err, DM_ENOTFOUND, "no key '%s' in the dot", key);
			else if (e == ELOOP || e == EXDEV || e == ENOTDIR)
				dm_err_set(err, DM_EPERM,
					   "key '%s' goes through '%s', which is not a directory "
					   "of the dot (a file, a symbolic link or a mount)",
					   key, name);
			else
				dm_err_errno(err, e, "cannot open '%s' for key '%s'", name, key);
			close(cur);
			return -1;
		}
		close(cur);
		cur = next;
		p += n + (slash ? 1 : 0);
	}
	if (cur < 0)
		dm_err_errno(err, errno, "cannot open the subdot for key '%s'", key);
	return cur;
}

/* Splits key into its directory (into dir, "" for none) and last name. */
static const char *split(char dir[DM_S3_KEY_MAX + 1], const char *key)
{
	const char *slash = strrchr(key, '/');

	if (!slash) {
		dir[0] = '\0';
		return key;
	}
	memcpy(dir, key, (size_t)(slash - key));
	dir[slash - key] = '\0';
	return slash + 1;
}

/* The file open on src becomes key under root. */
static int place_file(int root, const char *key, int src, struct dm_err *err)
{
	char dir[DM_S3_KEY_MAX + 1], tmp[64];
	const char *name = split(dir, key);
	struct dm_capture_result res;
	struct stat st;
	int dfd = -1, rc;

	if (fstat(src, &st) < 0)
		return dm_err_errno(err, errno, "cannot read the upload of '%s'", key);
	dfd = open_dir(root, dir, true, key, err);
	if (dfd < 0)
		return err->code;
	snprintf(tmp, sizeof(tmp), ".dm-s3-%d.tmp", (int)getpid());
	unlinkat(dfd, tmp, 0); /* what a crash left */
	rc = dm_capture_file(src, (uint64_t)st.st_size, dfd, tmp, 0, &res, key, err);
	if (!rc && fchmodat(dfd, tmp, 0644, 0) < 0)
		rc = dm_err_errno(err, errno, "cannot set the mode of '%s'", key);
	if (!rc && renameat(dfd, tmp, dfd, name) < 0) {
		rc = errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST
			     ? dm_err_set(err, DM_EEXISTS,
					  "key '%s' is a directory; delete it first, or put a tar "
					  "there with header 'Extract: true'",
					  key)
			     : dm_err_errno(err, errno, "cannot write key '%s'", key);
	}
	if (rc)
		unlinkat(dfd, tmp, 0);
	close(dfd);
	return rc;
}

/* Copies the current entry's data into fd. */
static int tar_data(struct archive *a, int fd, const char *key, struct dm_err *err)
{
	const void *buf;
	size_t len;
	la_int64_t off;
	int r;

	while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK)
		if (dm_pwrite_all(fd, buf, len, (off_t)off) < 0)
			return dm_err_errno(err, errno, "cannot write '%s'", key);
	if (r != ARCHIVE_EOF)
		return dm_err_set(err, DM_EINVAL, "the tar is damaged at '%s': %s", key,
				  archive_error_string(a));
	return 0;
}

/* One entry of the tar into the directory open on top. */
static int tar_entry(struct archive *a, struct archive_entry *e, int top, struct dm_err *err)
{
	const char *path = archive_entry_pathname(e);
	char key[DM_S3_KEY_MAX + 1], dir[DM_S3_KEY_MAX + 1];
	mode_t type = archive_entry_filetype(e);
	mode_t mode = archive_entry_perm(e) & 0777;
	const char *name;
	int dfd, fd, rc;

	if (!path)
		return dm_err_set(err, DM_EINVAL, "the tar has an entry without a name");
	while (path[0] == '.' && path[1] == '/')
		path += 2;
	while (path[0] == '/' && path[1] == '\0')
		path++;
	if (!path[0] || !strcmp(path, "."))
		return 0; /* the directory itself */
	if (dm_s3_key_check(key, path, err))
		return dm_err_prefix(err, "tar entry refused");
	if (type == AE_IFDIR) {
		dfd = open_dir(top, key, true, key, err);
		if (dfd < 0)
			return err->code;
		fchmod(dfd, mode | 0700);
		close(dfd);
		return 0;
	}
	if (type != AE_IFREG || archive_entry_hardlink(e))
		return dm_err_set(err, DM_EINVAL,
				  "tar entry '%s' is not a file or a directory (a link, a device): "
				  "only those are extracted",
				  key);
	name = split(dir, key);
	dfd = open_dir(top, dir, true, key, err);
	if (dfd < 0)
		return err->code;
	if (dm_remove_tree_at(dfd, name, err)) {
		close(dfd);
		return err->code;
	}
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	close(dfd);
	if (fd < 0)
		return dm_err_errno(err, errno, "cannot make '%s'", key);
	rc = tar_data(a, fd, key, err);
	if (!rc && ftruncate(fd, (off_t)archive_entry_size(e)) < 0)
		rc = dm_err_errno(err, errno, "cannot size '%s'", key);
	if (!rc && fchmod(fd, mode) < 0)
		rc = dm_err_errno(err, errno, "cannot set the mode of '%s'", key);
	if (!rc && archive_entry_mtime_is_set(e)) {
		struct timespec ts[2] = {{0, UTIME_OMIT},
					 {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};

		futimens(fd, ts);
	}
	if (close(fd) < 0 && !rc)
		rc = dm_err_errno(err, errno, "cannot write '%s'", key);
	return rc;
}

/* The tar open on src, into the new directory tmp of the directory open
 * on dfd. */
static int extract_into(int dfd, const char *tmp, const char *key, int src, struct dm_err *err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	int top = -1, rc = 0, r;

	if (!a)
		return dm_err_set(err, DM_ENOMEM, "out of memory for a tar reader");
	archive_read_support_format_tar(a);
	if (mkdirat(dfd, tmp, 0755) < 0)
		rc = dm_err_errno(err, errno, "cannot make a directory for key '%s'", key);
	if (!rc && (top = open_dir(dfd, tmp, false, key, err)) < 0)
		rc = err->code;
	if (!rc && archive_read_open_fd(a, src, TAR_BLOCK) != ARCHIVE_OK)
		rc = dm_err_set(err, DM_EINVAL, "the upload of '%s' is not a tar: %s", key,
				archive_error_string(a));
	while (!rc && (r = archive_read_next_header(a, &e)) != ARCHIVE_EOF) {
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			rc = dm_err_set(err, DM_EINVAL, "the upload of '%s' is not a valid tar: %s",
					key, archive_error_string(a));
		else
			rc = tar_entry(a, e, top, err);
	}
	if (top >= 0)
		close(top);
	archive_read_free(a);
	return rc;
}

/* key under root becomes the directory that the tar open on src holds,
 * whole or not at all: it is extracted beside the key, then what the key
 * was goes (as dotmesh did) and the new directory takes its name. */
static int extract_tar(int root, const char *key, int src, struct dm_err *err)
{
	char dir[DM_S3_KEY_MAX + 1], tmp[64];
	const char *name = split(dir, key);
	struct dm_err ignored;
	int dfd = open_dir(root, dir, true, key, err);
	int rc;

	if (dfd < 0)
		return err->code;
	snprintf(tmp, sizeof(tmp), ".dm-s3-%d.tmp.d", (int)getpid());
	rc = dm_remove_tree_at(dfd, tmp, err); /* what a crash left */
	if (!rc)
		rc = extract_into(dfd, tmp, key, src, err);
	if (!rc)
		rc = dm_remove_tree_at(dfd, name, err);
	if (!rc && renameat(dfd, tmp, dfd, name) < 0)
		rc = dm_err_errno(err, errno, "cannot write key '%s'", key);
	if (rc)
		dm_remove_tree_at(dfd, tmp, &ignored);
	close(dfd);
	return rc;
}

/* key under root goes: DM_ENOTFOUND when it is not there. */
static int remove_key(int root, const char *key, struct dm_err *err)
{
	char dir[DM_S3_KEY_MAX + 1];
	const char *name = split(dir, key);
	struct stat st;
	int dfd = open_dir(root, dir, false, key, err);
	int rc;

	if (dfd < 0)
		return err->code;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		rc = errno == ENOENT ? dm_err_set(err, DM_ENOTFOUND, "no key '%s' in the dot", key)
				     : dm_err_errno(err, errno, "cannot stat key '%s'", key);
	else
		rc = dm_remove_tree_at(dfd, name, err);
	close(dfd);
	return rc;
}

/* The change itself, in the subdot's directory open on root. */
static int change(struct dm_dot_job_in *in, int root, struct dm_err *err)
{
	int src, rc;

	if (!in->src)
		return remove_key(root, in->key, err);
	src = open(in->src, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return dm_err_errno(err, errno, "cannot read the upload of '%s'", in->key);
	rc = in->extract ? extract_tar(root, in->key, src, err)
			 : place_file(root, in->key, src, err);
	close(src);
	return rc;
}

int dm_dot_job_put_file(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
			struct dm_engine_progress *p, struct dm_err *err)
{
	char shown[DM_DOT_NAME_TEXT_MAX];
	struct dm_buf path;
	int wc = -1, root = -1, rc;

	dm_dot_name_text(shown, &in->name);
	dm_buf_init(&path, 0);
	rc = dm_engine_path(in->env.engine, in->dot_id, in->branch, &path, err);
	if (!rc)
		rc = dm_dot_subdot_check((const char *)path.data, DEFAULT_SUBDOT, shown, true, err);
	if (!rc && (wc = open((const char *)path.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		rc = dm_err_errno(err, errno, "cannot open the working copy of dot '%s'", shown);
	if (!rc && (root = dm_open_beneath(wc, DEFAULT_SUBDOT, O_RDONLY | O_DIRECTORY)) < 0)
		rc = dm_err_errno(err, errno, "cannot open subdot '%s' of dot '%s'", DEFAULT_SUBDOT,
				  shown);
	if (!rc)
		rc = change(in, root, err);
	if (!rc)
		rc = dm_dot_job_commit(in, out, p, err);
	if (root >= 0)
		close(root);
	if (wc >= 0)
		close(wc);
	dm_buf_release(&path);
	return rc;
}
