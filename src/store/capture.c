/*
 * capture.c - copying one file of a frozen working copy aside, as fast as
 * the file system allows, so that it can be read after the writers run
 * again (dm_capture_file; treebuild.c's capture mode).
 *
 * A reflink (FICLONE) when the file system has them (XFS, btrfs): the copy
 * shares the blocks and costs metadata only, whatever the size. Otherwise
 * an in-kernel copy (copy_file_range) of each data region (SEEK_DATA /
 * SEEK_HOLE), so holes stay holes and the copy is made exactly as big;
 * between two file systems that the kernel cannot copy across (EXDEV:
 * an upload into a btrfs working copy), the same regions are read and
 * written through a buffer of COPY_BUF bytes.
 *
 * Invariants: the copy is a new file (O_EXCL, mode 0600) in the capture
 * directory, never a name that existed; the source is read through the fd
 * the caller opened (no path to race with); a deadline is checked between
 * regions and every COPY_STEP bytes, so a copy never runs far past it; a
 * failed copy is removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/filedata.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

/* Bytes copied between two looks at the deadline. */
#define COPY_STEP (16u << 20)
/* The buffer of a copy the kernel cannot make. */
#define COPY_BUF (1u << 20)

static int past(int64_t deadline_ns)
{
	return deadline_ns && dm_now_monotonic_ns() > deadline_ns;
}

/* copy_range through a buffer, for files the kernel cannot copy between. */
static int copy_through(int src, int dst, uint64_t off, uint64_t len, int64_t deadline_ns,
			const char *name, struct dm_err *err)
{
	char *buf = malloc(COPY_BUF);
	int rc = 0;

	if (!buf)
		return dm_err_set(err, DM_ENOMEM, "out of memory to copy '%s'", name);
	while (len > 0 && !rc) {
		size_t step = len < COPY_BUF ? (size_t)len : COPY_BUF;
		ssize_t n = pread(src, buf, step, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (past(deadline_ns))
			rc = dm_err_set(err, DM_ETIMEOUT, "copying '%s' ran past its deadline",
					name);
		else if (n < 0)
			rc = dm_err_errno(err, errno, "cannot read '%s'", name);
		else if (n == 0) /* the file shrank: the caller's stat check sees it */
			break;
		else if (dm_pwrite_all(dst, buf, (size_t)n, (off_t)off) < 0)
			rc = dm_err_errno(err, errno, "cannot copy '%s'", name);
		off += n > 0 ? (uint64_t)n : 0;
		len -= n > 0 ? (uint64_t)n : 0;
	}
	free(buf);
	return rc;
}

/* Copies [off, off + len) of src into dst at the same offset. */
static int copy_range(int src, int dst, uint64_t off, uint64_t len, int64_t deadline_ns,
		      const char *name, struct dm_err *err)
{
	while (len > 0) {
		loff_t in = (loff_t)off, out = (loff_t)off;
		size_t step = len < COPY_STEP ? (size_t)len : COPY_STEP;
		ssize_t n;

		if (past(deadline_ns))
			return dm_err_set(err, DM_ETIMEOUT, "copying '%s' ran past its deadline",
					  name);
		n = copy_file_range(src, &in, dst, &out, step, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0 && errno == EXDEV)
			return copy_through(src, dst, off, len, deadline_ns, name, err);
		if (n < 0)
			return dm_err_errno(err, errno, "cannot copy '%s'", name);
		if (n == 0) /* the file shrank: the caller's stat check sees it */
			return 0;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

static int copy_data(int src, int dst, uint64_t size, int64_t deadline_ns, const char *name,
		     struct dm_err *err)
{
	off_t pos = 0;

	while ((uint64_t)pos < size) {
		off_t data = lseek(src, pos, SEEK_DATA), hole;
		int rc;

		if (data < 0 && errno == ENXIO) /* only a hole is left */
			break;
		if (data < 0) /* no SEEK_DATA here: copy it all */
			return copy_range(src, dst, 0, size, deadline_ns, name, err);
		hole = lseek(src, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size)
			hole = (off_t)size;
		rc = copy_range(src, dst, (uint64_t)data, (uint64_t)(hole - data), deadline_ns,
				name, err);
		if (rc)
			return rc;
		pos = hole;
	}
	if (ftruncate(dst, (off_t)size) < 0)
		return dm_err_errno(err, errno, "cannot size the copy of '%s'", name);
	return 0;
}

int dm_capture_file(int src, uint64_t size, int dirfd, const char *copy_name, int64_t deadline_ns,
		    struct dm_capture_result *res, const char *name, struct dm_err *err)
{
	int dst, rc = 0;

	res->reflinked = false;
	res->bytes_copied = 0;
	dst = openat(dirfd, copy_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (dst < 0)
		return dm_err_errno(err, errno, "cannot make the copy of '%s'", name);
	if (ioctl(dst, FICLONE, src) == 0) {
		res->reflinked = true;
	} else {
		rc = copy_data(src, dst, size, deadline_ns, name, err);
		res->bytes_copied = size;
	}
	if (close(dst) < 0 && !rc)
		rc = dm_err_errno(err, errno, "cannot write the copy of '%s'", name);
	if (rc)
		unlinkat(dirfd, copy_name, 0);
	return rc;
}
