/*
 * fsutil.c - file-system helpers shared by every module.
 *
 * Invariant: a function here either completes or reports why; a partly
 * written atomic file is never visible under its final name.
 */
#include "util/fsutil.h"
#include "util/buf.h"
#include "util/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/banned.h"

int dm_write_all(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int dm_pwrite_all(int fd, const void *data, size_t len, off_t off)
{
	const unsigned char *p = data;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

int dm_pread_all(int fd, void *data, size_t len, off_t off)
{
	unsigned char *p = data;

	while (len) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

int dm_read_file(struct dm_buf *out, const char *path, size_t max, struct dm_err *err)
{
	int fd = -1, rc = 0;
	struct stat st;
	char tmp[65536];

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dm_err_errno(err, errno, "cannot open '%s'", path);
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > max) {
		rc = dm_err_set(err, DM_ETOOBIG, "'%s' is larger than %zu bytes", path, max);
		goto done;
	}
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = dm_err_errno(err, errno, "cannot read '%s'", path);
			goto done;
		}
		if (n == 0)
			break;
		if (out->len + (size_t)n > max) {
			rc = dm_err_set(err, DM_ETOOBIG, "'%s' is larger than %zu bytes", path,
					max);
			goto done;
		}
		if (dm_buf_add(out, tmp, (size_t)n)) {
			rc = dm_err_set(err, DM_ENOMEM, "out of memory reading '%s'", path);
			goto done;
		}
	}
done:
	if (fd >= 0)
		close(fd);
	return rc;
}

static int dir_of(char *out, size_t size, const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return snprintf(out, size, ".") >= (int)size ? -1 : 0;
	if (slash == path)
		return snprintf(out, size, "/") >= (int)size ? -1 : 0;
	return snprintf(out, size, "%.*s", (int)(slash - path), path) >= (int)size ? -1 : 0;
}

int dm_fsync_dir(const char *path, struct dm_err *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return dm_err_errno(err, errno, "cannot open directory '%s'", path);
	if (fsync(fd) < 0 && errno != EINVAL) {
		int e = errno;

		close(fd);
		return dm_err_errno(err, e, "cannot sync directory '%s'", path);
	}
	close(fd);
	return 0;
}

int dm_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct dm_err *err)
{
	return dm_write_file_atomic_flags(path, data, len, mode, 0, err);
}

int dm_write_file_atomic_flags(const char *path, const void *data, size_t len, mode_t mode,
			       unsigned flags, struct dm_err *err)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	bool sync = !(flags & DM_WRITE_NO_SYNC);
	int fd = -1, rc = 0;

	/* a name of its own (mkostemp): two threads may replace one path */
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp) ||
	    dir_of(dir, sizeof(dir), path))
		return dm_err_set(err, DM_ETOOBIG, "path too long: '%s'", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return dm_err_errno(err, errno, "cannot create '%s'", tmp);
	if (fchmod(fd, mode) < 0 || dm_write_all(fd, data, len) < 0 || (sync && fsync(fd) < 0)) {
		rc = dm_err_errno(err, errno, "cannot write '%s'", tmp);
		goto done;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = dm_err_errno(err, errno, "cannot write '%s'", tmp);
		goto done;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = dm_err_errno(err, errno, "cannot rename '%s' to '%s'", tmp, path);
		goto done;
	}
	if (sync)
		rc = dm_fsync_dir(dir, err);
done:
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(tmp);
	return rc;
}

int dm_mkdir_p(const char *path, mode_t mode, struct dm_err *err)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return dm_err_set(err, DM_EINVAL, "invalid directory path '%s'", path);
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return dm_err_errno(err, errno, "cannot create directory '%s'", buf);
		buf[i] = i == len ? '\0' : '/';
	}
	return 0;
}

static int remove_at(int parent, const char *name, dev_t dev, struct dm_err *err)
{
	struct stat st;
	DIR *d = NULL;
	struct dirent *de;
	int fd, rc = 0;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : dm_err_errno(err, errno, "cannot stat '%s'", name);
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(parent, name, 0) < 0 && errno != ENOENT)
			return dm_err_errno(err, errno, "cannot remove '%s'", name);
		return 0;
	}
	if (st.st_dev != dev)
		return dm_err_set(err, DM_EBUSY, "'%s' is a mount point; not removing it", name);
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return dm_err_errno(err, errno, "cannot open '%s'", name);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return dm_err_errno(err, errno, "cannot read '%s'", name);
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		rc = remove_at(dirfd(d), de->d_name, dev, err);
		if (rc)
			break;
	}
	closedir(d);
	if (!rc && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = dm_err_errno(err, errno, "cannot remove directory '%s'", name);
	return rc;
}

DIR *dm_opendir_dup(int fd)
{
	int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *d;
	int e;

	if (dup_fd < 0)
		return NULL;
	d = fdopendir(dup_fd);
	if (!d) {
		e = errno;
		close(dup_fd);
		errno = e;
	}
	return d;
}

int dm_remove_tree(const char *path, struct dm_err *err)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : dm_err_errno(err, errno, "cannot stat '%s'", path);
	return remove_at(AT_FDCWD, path, st.st_dev, err);
}

int dm_remove_tree_at(int parent, const char *name, struct dm_err *err)
{
	struct stat st;

	if (fstat(parent, &st) < 0)
		return dm_err_errno(err, errno, "cannot stat the directory of '%s'", name);
	return remove_at(parent, name, st.st_dev, err);
}

int64_t dm_now_monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t dm_now_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void dm_close_from(int from)
{
	if (close_range((unsigned)from, ~0U, 0) == 0)
		return;
	for (long fd = from, max = sysconf(_SC_OPEN_MAX); fd < max && fd < 65536; fd++)
		close((int)fd);
}

bool dm_unix_socket_served(const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	bool served;
	int fd;

	if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode) || strlen(path) >= sizeof(sa.sun_path))
		return false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	served = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return served;
}
