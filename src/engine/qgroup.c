/*
 * qgroup.c - size limits on btrfs working copies (qgroup.h), through the
 * kernel's quota ioctls: libbtrfsutil has no call that turns quotas on or
 * sets a limit.
 *
 * Invariants: a limit is on the referenced bytes of the working copy's own
 * qgroup (0/<subvolume id>), so what a volume shares with its snapshots
 * and with the volumes made from them counts in full, as a user of the
 * volume sees it. The record (the "limit" file) is written before the
 * limit is applied, so a failure in between leaves the limit to the next
 * set or swap, never a limit without its record. A snapshot's qgroup
 * starts with the limit of its source's (the kernel copies it), so a
 * subvolume made from a snapshot gets the record's limit, or none, and
 * never a limit of another branch. Quotas are turned on only
 * when a limit is set and the file system has none (ENOTCONN); clearing a
 * limit never turns them on.
 */
#include "engine/qgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/btrfs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

#define LIMIT_FILE "limit"
#define LIMIT_MAX  32         /* bytes of the record: a decimal u64 and '\n' */
#define NO_LIMIT   UINT64_MAX /* what the kernel takes for "none" */

static int limit_path(struct dm_buf *out, const char *branch_dir, struct dm_err *err)
{
	if (dm_buf_addf(out, "%s/" LIMIT_FILE, branch_dir))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
}

/* The errno of a quota ioctl as an error: no quotas in this kernel or on
 * this file system is DM_EUNSUPPORTED, saying what still holds. */
static int quota_err(struct dm_err *err, int e, const char *what, const char *path)
{
	if (e == ENOTTY || e == EOPNOTSUPP || e == ENOSYS)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "cannot %s on '%s': this kernel has no btrfs quotas (%s); the "
				  "size is recorded, not enforced",
				  what, path, strerror(e));
	if (e == EPERM || e == EACCES)
		return dm_err_set(err, DM_EPERM,
				  "cannot %s on '%s': %s (the btrfs engine needs root)", what, path,
				  strerror(e));
	return dm_err_errno(err, e, "cannot %s on '%s'", what, path);
}

/* Turns quotas on for the file system of fd and waits for the rescan that
 * counts what is already there. */
static int quotas_on(int fd, const char *path, struct dm_err *err)
{
	struct btrfs_ioctl_quota_ctl_args ctl;
	int64_t t0 = dm_now_monotonic_ns();

	memset(&ctl, 0, sizeof(ctl));
	ctl.cmd = BTRFS_QUOTA_CTL_ENABLE;
	if (ioctl(fd, BTRFS_IOC_QUOTA_CTL, &ctl) < 0)
		return quota_err(err, errno, "turn btrfs quotas on", path);
	while (ioctl(fd, BTRFS_IOC_QUOTA_RESCAN_WAIT) < 0 && errno == EINTR)
		;
	dm_info("btrfs quotas turned on for the file system of '%s' (a working copy got a size "
		"limit), the rescan took %lld ms",
		path, (long long)((dm_now_monotonic_ns() - t0) / 1000000));
	return 0;
}

/* Sets the referenced-bytes limit of subvol's own qgroup (NO_LIMIT: none). */
static int apply(const char *subvol, uint64_t bytes, struct dm_err *err)
{
	struct btrfs_ioctl_qgroup_limit_args a;
	int fd = open(subvol, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return dm_err_errno(err, errno, "cannot open '%s'", subvol);
	memset(&a, 0, sizeof(a));
	a.qgroupid = 0; /* the subvolume fd is in */
	a.lim.flags = BTRFS_QGROUP_LIMIT_MAX_RFER;
	a.lim.max_rfer = bytes;
	if (ioctl(fd, BTRFS_IOC_QGROUP_LIMIT, &a) < 0) {
		int e = errno;

		if (e == ENOTCONN && bytes == NO_LIMIT)
			goto done; /* no quotas: no limit to clear */
		if (e == ENOTCONN)
			rc = quotas_on(fd, subvol, err);
		else
			rc = quota_err(err, e, "set a size limit", subvol);
		if (!rc && ioctl(fd, BTRFS_IOC_QGROUP_LIMIT, &a) < 0)
			rc = quota_err(err, errno, "set a size limit", subvol);
	}
done:
	close(fd);
	return rc;
}

/* The limit recorded in branch_dir into *out (0: none). */
static int load(const char *branch_dir, uint64_t *out, struct dm_err *err)
{
	struct dm_buf path = DM_BUF_INIT, text = DM_BUF_INIT;
	char *end = NULL;
	int rc;

	*out = 0;
	rc = limit_path(&path, branch_dir, err);
	if (!rc)
		rc = dm_read_file(&text, (const char *)path.data, LIMIT_MAX, err);
	if (rc == DM_ENOTFOUND) {
		rc = 0;
		goto done;
	}
	if (rc)
		goto done;
	if (dm_buf_addc(&text, '\0')) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto done;
	}
	errno = 0;
	*out = strtoull((const char *)text.data, &end, 10);
	if (errno || end == (const char *)text.data || (*end && *end != '\n')) {
		*out = 0;
		rc = dm_err_set(err, DM_ECORRUPT,
				"'%s' is not a size in bytes; set the volume's capacity again",
				(const char *)path.data);
	}
done:
	dm_buf_release(&path);
	dm_buf_release(&text);
	return rc;
}

int dm_qgroup_set(const char *branch_dir, const char *subvol, uint64_t bytes, struct dm_err *err)
{
	struct dm_buf path = DM_BUF_INIT;
	char text[LIMIT_MAX];
	int rc = limit_path(&path, branch_dir, err);

	if (rc)
		goto done;
	if (bytes) {
		int n = snprintf(text, sizeof(text), "%" PRIu64 "\n", bytes);

		rc = dm_write_file_atomic((const char *)path.data, text, (size_t)n, 0600, err);
	} else if (unlink((const char *)path.data) < 0 && errno != ENOENT) {
		rc = dm_err_errno(err, errno, "cannot remove '%s'", (const char *)path.data);
	}
	if (!rc)
		rc = apply(subvol, bytes ? bytes : NO_LIMIT, err);
done:
	dm_buf_release(&path);
	return rc;
}

int dm_qgroup_reapply(const char *branch_dir, const char *subvol, struct dm_err *err)
{
	uint64_t bytes;
	int rc = load(branch_dir, &bytes, err);

	if (!rc)
		rc = apply(subvol, bytes ? bytes : NO_LIMIT, err);
	return rc;
}
