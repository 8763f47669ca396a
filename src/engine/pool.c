/*
 * pool.c - btrfs pools: checking an existing mount, and making, mounting and
 * unmounting a loop-mounted pool file (see pool.h).
 *
 * A loop pool is attached with LOOP_CONFIGURE (LOOP_SET_FD and
 * LOOP_SET_STATUS64 on kernels before 5.8) with LO_FLAGS_AUTOCLEAR, and
 * mounted with mount(2), nosuid and nodev; the loop device descriptor is closed right after,
 * so the mount holds the only reference and unmounting frees the device.
 * Formatting runs mkfs.btrfs (btrfs-progs), found in PATH or /usr/sbin,
 * /sbin; its output is kept and its last line ends up in the error.
 *
 * Invariants: dm_pool_create removes everything it made when any step
 * fails (unmounts, then deletes the image and the mount point it created);
 * nothing here changes a file system it did not mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/pool.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/program.h"

#include "util/banned.h"

#define MKFS            "mkfs.btrfs"
#define MKFS_OUTPUT_MAX (64u << 10)
#define LOOP_TRIES      8

int dm_pool_parse_size(uint64_t *out, const char *s, struct dm_err *err)
{
	static const char units[] = "KMGT";
	unsigned long long v;
	const char *u;
	char *end;
	int shift = 0;

	*out = 0;
	if (!s || !*s || *s == '-' || *s == '+')
		goto bad;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		goto bad;
	if (*end) {
		u = strchr(units, end[0] >= 'a' ? end[0] - 32 : end[0]);
		if (!u || !*u)
			goto bad;
		shift = 10 * (int)(u - units + 1);
		end++;
		if (!strcmp(end, "iB") || !strcmp(end, "B"))
			end += strlen(end);
		if (*end)
			goto bad;
	}
	if (v > (UINT64_MAX >> shift))
		goto bad;
	*out = (uint64_t)v << shift;
	return 0;
bad:
	return dm_err_set(err, DM_EINVAL, "invalid size '%s': use a number with K, M, G or T",
			  s ? s : "");
}

int dm_pool_check_dir(const char *dir, struct dm_err *err)
{
	struct statfs sf;
	struct stat st;

	if (stat(dir, &st) < 0)
		return dm_err_errno(err, errno, "cannot use '%s' as a btrfs pool", dir);
	if (!S_ISDIR(st.st_mode))
		return dm_err_set(err, DM_EINVAL,
				  "cannot use '%s' as a btrfs pool: not a directory", dir);
	if (statfs(dir, &sf) < 0)
		return dm_err_errno(err, errno, "cannot stat the file system of '%s'", dir);
	if (sf.f_type != BTRFS_SUPER_MAGIC)
		return dm_err_set(
			err, DM_EUNSUPPORTED,
			"cannot use '%s' as a btrfs pool: it is not on a btrfs file system", dir);
	return 0;
}

/* Finds the mkfs.btrfs program: PATH first, then the sbin directories a
 * non-login root shell may lack. */
static int find_mkfs(char *out, size_t size)
{
	return dm_program_find(out, size, MKFS, "/usr/sbin:/sbin:/usr/local/sbin");
}

int dm_pool_can_loop(struct dm_err *err)
{
	char mkfs[PATH_MAX];
	struct dm_buf fs = DM_BUF_INIT;
	bool btrfs = false;
	int fd, rc;

	if (geteuid() != 0)
		return dm_err_set(err, DM_EPERM,
				  "a btrfs pool needs root: dmd runs as uid %u and cannot make "
				  "loop devices or mount file systems",
				  (unsigned)geteuid());
	rc = dm_read_file(&fs, "/proc/filesystems", 1u << 20, err);
	if (rc)
		return dm_err_prefix(err, "cannot tell whether the kernel has btrfs");
	for (const char *p = (const char *)fs.data; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (len >= 5 && !memcmp(p + len - 5, "btrfs", 5) &&
		    (len == 5 || p[len - 6] == '\t' || p[len - 6] == ' '))
			btrfs = true;
		p = nl ? nl + 1 : p + len;
	}
	dm_buf_release(&fs);
	if (!btrfs)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "the kernel has no btrfs (not in /proc/filesystems; "
				  "'modprobe btrfs' may load it)");
	fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return dm_err_errno(err, errno, "no loop devices: cannot open /dev/loop-control");
	close(fd);
	if (find_mkfs(mkfs, sizeof(mkfs)))
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "cannot find " MKFS " (Debian package btrfs-progs)");
	return 0;
}

/* Runs mkfs.btrfs on image; its last line of output goes into the error. */
static int run_mkfs(const char *image, struct dm_err *err)
{
	char mkfs[PATH_MAX], tmpl[] = "/tmp/dm-mkfs-XXXXXX";
	struct dm_buf out = DM_BUF_INIT;
	int fd, status = 0, rc = 0;
	pid_t pid;

	if (find_mkfs(mkfs, sizeof(mkfs)))
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "cannot find " MKFS " (Debian package btrfs-progs)");
	fd = mkstemp(tmpl);
	if (fd < 0)
		return dm_err_errno(err, errno, "cannot make a temporary file for " MKFS);
	(void)unlink(tmpl);
	pid = fork();
	if (pid < 0) {
		rc = dm_err_errno(err, errno, "cannot run '%s'", mkfs);
		goto done;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null >= 0)
			dup2(null, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execl(mkfs, mkfs, "-q", "-f", image, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			rc = dm_err_errno(err, errno, "cannot wait for '%s'", mkfs);
			goto done;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		goto done;
	{
		struct stat st;
		char *last = NULL, *p;

		if (fstat(fd, &st) == 0 && st.st_size > 0) {
			size_t n = (size_t)st.st_size < MKFS_OUTPUT_MAX ? (size_t)st.st_size
									: MKFS_OUTPUT_MAX;

			if (!dm_buf_grow(&out, n) && dm_pread_all(fd, out.data, n, 0) == 0) {
				out.len = n;
				out.data[n] = '\0';
				while (out.len && out.data[out.len - 1] == '\n')
					out.data[--out.len] = '\0';
				p = strrchr((char *)out.data, '\n');
				last = p ? p + 1 : (char *)out.data;
			}
		}
		rc = dm_err_set(err, DM_EIO, MKFS " failed on '%s' (%s %d)%s%s", image,
				WIFEXITED(status) ? "exit status" : "signal",
				WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
				last && *last ? ": " : "", last ? last : "");
	}
done:
	close(fd);
	dm_buf_release(&out);
	return rc;
}

/* Attaches image to a free loop device (auto-clearing); returns its fd and
 * name, or a negative code. */
static int loop_attach(const char *image, char *name, size_t size, struct dm_err *err)
{
	int ctl = -1, img = -1, dev = -1, rc = 0;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return dm_err_errno(err, errno, "no loop devices: cannot open /dev/loop-control");
	img = open(image, O_RDWR | O_CLOEXEC);
	if (img < 0) {
		rc = dm_err_errno(err, errno, "cannot open pool file '%s'", image);
		goto done;
	}
	for (int tries = 0; tries < LOOP_TRIES; tries++) {
		struct loop_config cfg;
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);

		if (n < 0) {
			rc = dm_err_errno(err, errno, "no free loop device");
			goto done;
		}
		snprintf(name, size, "/dev/loop%d", n);
		dev = open(name, O_RDWR | O_CLOEXEC);
		if (dev < 0) {
			rc = dm_err_errno(err, errno, "cannot open loop device '%s'", name);
			goto done;
		}
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (uint32_t)img;
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "%s", image);
		if (ioctl(dev, LOOP_CONFIGURE, &cfg) == 0)
			goto done;
		if (errno == EINVAL || errno == ENOTTY) { /* before Linux 5.8 */
			if (ioctl(dev, LOOP_SET_FD, img) == 0) {
				if (ioctl(dev, LOOP_SET_STATUS64, &cfg.info) == 0)
					goto done;
				rc = dm_err_errno(err, errno, "cannot configure '%s'", name);
				(void)ioctl(dev, LOOP_CLR_FD, 0);
				goto done;
			}
		}
		if (errno != EBUSY) {
			rc = dm_err_errno(err, errno, "cannot attach '%s' to '%s'", image, name);
			goto done;
		}
		close(dev); /* taken by someone else meanwhile: try the next */
		dev = -1;
	}
	rc = dm_err_set(err, DM_EBUSY, "no free loop device after %d tries", LOOP_TRIES);
done:
	if (ctl >= 0)
		close(ctl);
	if (img >= 0)
		close(img);
	if (rc) {
		if (dev >= 0)
			close(dev);
		return rc;
	}
	return dev;
}

bool dm_pool_is_mounted(const char *mnt)
{
	char parent[PATH_MAX];
	struct stat a, b;

	if (stat(mnt, &a) < 0 ||
	    snprintf(parent, sizeof(parent), "%s/..", mnt) >= (int)sizeof(parent) ||
	    stat(parent, &b) < 0)
		return false;
	return a.st_dev != b.st_dev;
}

int dm_pool_mount(const char *image, const char *mnt, struct dm_err *err)
{
	char dev[64];
	int fd, rc = 0;

	if (dm_pool_is_mounted(mnt))
		return dm_pool_check_dir(mnt, err);
	rc = dm_mkdir_p(mnt, 0711, err);
	if (rc)
		return rc;
	fd = loop_attach(image, dev, sizeof(dev), err);
	if (fd < 0)
		return fd;
	/* nosuid, nodev: a file in a working copy, which may have arrived
	 * from anyone's push, never raises privileges nor opens a device */
	if (mount(dev, mnt, "btrfs", MS_NOSUID | MS_NODEV, NULL) < 0)
		rc = dm_err_errno(err, errno, "cannot mount '%s' (%s) at '%s'", image, dev, mnt);
	close(fd); /* the mount keeps the device; unmounting frees it */
	if (!rc)
		dm_info("mounted btrfs pool '%s' at '%s' (%s)", image, mnt, dev);
	return rc;
}

int dm_pool_unmount(const char *mnt, struct dm_err *err)
{
	if (!dm_pool_is_mounted(mnt))
		return 0;
	if (umount2(mnt, 0) == 0) {
		dm_info("unmounted btrfs pool at '%s'", mnt);
		return 0;
	}
	if (errno != EBUSY)
		return dm_err_errno(err, errno, "cannot unmount the pool at '%s'", mnt);
	if (umount2(mnt, MNT_DETACH) < 0)
		return dm_err_errno(err, errno, "cannot unmount the pool at '%s'", mnt);
	dm_warn("the pool at '%s' is busy: detached it; its loop device is freed once the "
		"last process using it lets go",
		mnt);
	return 0;
}

int dm_pool_create(const char *image, const char *mnt, uint64_t size, struct dm_err *err)
{
	struct dm_err cerr;
	struct stat st;
	bool made_mnt = false;
	int fd, rc;

	if (size < DM_POOL_MIN_SIZE)
		return dm_err_set(err, DM_EINVAL, "a btrfs pool needs at least %llu MiB",
				  (unsigned long long)(DM_POOL_MIN_SIZE >> 20));
	rc = dm_pool_can_loop(err);
	if (rc)
		return rc;
	fd = open(image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return dm_err_errno(err, errno, "cannot create pool file '%s'", image);
	if (ftruncate(fd, (off_t)size) < 0) {
		rc = dm_err_errno(err, errno, "cannot size pool file '%s'", image);
		close(fd);
		goto fail;
	}
	close(fd);
	rc = run_mkfs(image, err);
	if (rc)
		goto fail;
	if (stat(mnt, &st) < 0)
		made_mnt = true;
	rc = dm_pool_mount(image, mnt, err);
	if (rc)
		goto fail;
	return 0;
fail:
	if (dm_pool_unmount(mnt, &cerr))
		dm_warn("%s", cerr.msg);
	if (made_mnt)
		(void)rmdir(mnt);
	(void)unlink(image);
	return rc;
}
