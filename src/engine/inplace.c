/*
 * inplace.c - what makes writing a working copy in place safe: the marker
 * of an unfinished write, the one sync at the end, and a test's stall.
 *
 * A checkout that changes files in place (dm_materialize_opts.in_place)
 * can leave a file half old if dmd dies in the middle. So before its first
 * change, ROOT/<dot>/<branch>/unfinished is written durably (file and
 * directory synced); after the last one, the working copy's file system is
 * synced once (syncfs) and only then the marker removed. While the marker
 * exists the branch is reported as needing a reset: its working copy
 * cannot be measured, compared, committed or received into (DM_ECONFLICT,
 * saying to run `dm reset --hard HEAD`), and the next checkout of it
 * trusts no stat cache (a crash may have kept the new bytes and lost the
 * times that show them) and compares every file. The head never moved:
 * the dot moves it only after the engine's call returned.
 *
 * Invariants: the marker exists from before the first in-place change
 * until every change is on disk; it is removed by nothing else. The stall
 * path is set once, before anything is served, and only by tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/internal.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

static const char marker_text[] =
	"a reset or receive was changing this working copy in place and did not finish;\n"
	"run 'dm reset --hard HEAD' on the branch to restore it\n";

bool dm_wc_unfinished(const struct dm_wc_paths *p)
{
	return access(dm_wc_str(&p->unfinished), F_OK) == 0;
}

int dm_wc_check_finished(const struct dm_wc_paths *p, const char *dot, const char *branch,
			 struct dm_err *err)
{
	if (!dm_wc_unfinished(p))
		return 0;
	return dm_err_set(err, DM_ECONFLICT,
			  "branch '%s' of dot '%s' needs a reset: a reset or receive that changed "
			  "its working copy in place did not finish, so files may be half old; "
			  "run 'dm reset --hard HEAD' on it to restore it",
			  branch, dot);
}

int dm_wc_sync(const char *dir, struct dm_err *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return dm_err_errno(err, errno, "cannot open '%s'", dir);
	if (syncfs(fd) < 0) {
		int e = errno;

		close(fd);
		return dm_err_errno(err, e, "cannot sync the file system of '%s'", dir);
	}
	close(fd);
	return 0;
}

int dm_wc_finish(const struct dm_wc_paths *p, struct dm_err *err)
{
	if (unlink(dm_wc_str(&p->unfinished)) < 0) {
		if (errno == ENOENT)
			return 0;
		return dm_err_errno(err, errno, "cannot remove '%s'", dm_wc_str(&p->unfinished));
	}
	return dm_fsync_dir(dm_wc_str(&p->dir), err);
}

/* ---- the test's stall ---- */

static char stall_path[512];

void dm_engine_set_test_stall(const char *path)
{
	snprintf(stall_path, sizeof(stall_path), "%s", path ? path : "");
}

/* Says it is here (PATH.reached), then waits while PATH exists. */
static void test_stall(void)
{
	char reached[sizeof(stall_path) + 16];
	struct timespec ts = {0, 20 * 1000 * 1000};
	int fd;

	if (!stall_path[0] || access(stall_path, F_OK) < 0)
		return;
	snprintf(reached, sizeof(reached), "%s.reached", stall_path);
	fd = open(reached, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	while (access(stall_path, F_OK) == 0)
		nanosleep(&ts, NULL);
}

int dm_wc_before_in_place(const void *ctx, bool first, struct dm_err *err)
{
	const struct dm_wc_paths *p = ctx;

	if (first)
		return dm_write_file_atomic(dm_wc_str(&p->unfinished), marker_text,
					    sizeof(marker_text) - 1, 0600, err);
	test_stall();
	return 0;
}
