/*
 * cmd_mount.c - `dm mount [--create] DOT[@BRANCH] PATH`: makes PATH a
 * symbolic link to the working copy of a dot's branch, wherever the server
 * keeps it (dots.path); `dm mount DOT[@COMMIT] PATH --read-only` to a
 * read-only copy of a commit (dots.mount_commit, dotmesh's MountCommit);
 * `dm unmount PATH` removes such a link.
 *
 * Invariants: dm mount only ever creates a symlink or replaces one that
 * points into the remote's data directory (one it made before); it never
 * touches a file, a directory or somebody else's link, and neither does
 * dm unmount. The replacement is atomic (a new link renamed over the old
 * one). A read-only copy is held by its link ("link:" and the link's
 * absolute path): the server keeps the copy while the link leads to it,
 * and each mount or unmount of that path tells the server to look again.
 */
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/err.h"
#include "util/log.h"
#include "util/names.h"

#include "util/banned.h"

/* true when target lies inside dir. */
static bool inside(const char *target, const char *dir)
{
	size_t len;

	if (!dir || !*dir)
		return false;
	len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--;
	return !strncmp(target, dir, len) && target[len] == '/';
}

static int make_link(struct dm_cli *cli, const char *target, const char *path,
		     struct dm_err *err)
{
	char old[PATH_MAX], tmp[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (lstat(path, &st) < 0) {
		if (errno != ENOENT)
			return dm_err_errno(err, errno, "cannot check '%s'", path);
		if (symlink(target, path) < 0)
			return dm_err_errno(err, errno, "cannot make the symlink '%s'", path);
		return 0;
	}
	if (!S_ISLNK(st.st_mode))
		return dm_err_set(err, DM_EEXISTS,
				  "'%s' already exists; dm mount makes a symlink there, so give a "
				  "path that does not exist",
				  path);
	n = readlink(path, old, sizeof(old) - 1);
	if (n < 0)
		return dm_err_errno(err, errno, "cannot read the symlink '%s'", path);
	old[n] = '\0';
	if (!strcmp(old, target))
		return 0;
	if (!inside(old, cli->remote.data_dir))
		return dm_err_set(err, DM_EEXISTS,
				  "'%s' is a symlink to '%s', which dm mount did not make; remove "
				  "it first",
				  path, old);
	if (snprintf(tmp, sizeof(tmp), "%s.dm-mount.%ld", path, (long)getpid()) >=
	    (int)sizeof(tmp))
		return dm_err_set(err, DM_ETOOBIG, "path too long: '%s'", path);
	unlink(tmp);
	if (symlink(target, tmp) < 0)
		return dm_err_errno(err, errno, "cannot make the symlink '%s'", tmp);
	if (rename(tmp, path) < 0) {
		int e = errno;

		unlink(tmp);
		return dm_err_errno(err, e, "cannot replace the symlink '%s'", path);
	}
	return 0;
}

/* "link:" and the absolute path of PATH (which need not exist; its
 * directory must): the holder of a read-only copy that PATH leads to. */
static int link_holder(char *out, size_t size, const char *path, struct dm_err *err)
{
	char a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];
	const char *base;

	if (strlen(path) >= sizeof(a))
		return dm_err_set(err, DM_ETOOBIG, "path too long: '%s'", path);
	snprintf(a, sizeof(a), "%s", path);
	snprintf(b, sizeof(b), "%s", path);
	base = basename(b);
	if (!realpath(dirname(a), dir))
		return dm_err_errno(err, errno, "cannot find the directory of '%s'", path);
	if ((size_t)snprintf(out, size, "link:%s/%s", strcmp(dir, "/") ? dir : "", base) >= size)
		return dm_err_set(err, DM_ETOOBIG, "path too long: '%s'", path);
	return 0;
}

/* Tells the server that the link holder may no longer lead to a read-only
 * copy it held (replaced or removed): it looks, and lets go when not. */
static void links_changed(struct dm_cli *cli, const char *holder)
{
	struct dm_err ignored;
	json_t *res = NULL;

	if (dm_cli_call(cli, "dots.unmount_commit", json_pack("{s:s}", "holder", holder), &res,
			&ignored))
		dm_debug("dots.unmount_commit: %s", ignored.msg);
	json_decref(res);
}

int dm_cmd_mount(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"create", no_argument, NULL, OPT_CREATE},
		{"read-only", no_argument, NULL, OPT_READ_ONLY},
		{NULL, 0, NULL, 0},
	};
	char dot[2 * DM_NAME_PART_MAX + 2], path[PATH_MAX], holder[PATH_MAX + 8];
	const char *branch = NULL, *at;
	struct dm_dot_name name;
	struct dm_ref ref;
	bool create = false, read_only = false;
	json_t *res = NULL, *params;
	size_t len;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0) {
		if (c == OPT_CREATE)
			create = true;
		else if (c == OPT_READ_ONLY)
			read_only = true;
	}
	if (c < 0)
		return c;
	rc = dm_cli_nargs(cli, argc - optind, 2, 2,
			  "a dot and a path: dm mount DOT[@BRANCH] PATH, or DOT[@COMMIT] PATH "
			  "--read-only",
			  err);
	if (rc)
		return rc;
	if (create && read_only)
		return dm_cli_usage_error(cli, err, "--create makes a dot, which has no commits to "
						    "mount read-only");
	at = strchr(argv[optind], '@');
	len = at ? (size_t)(at - argv[optind]) : strlen(argv[optind]);
	if (len >= sizeof(dot))
		return dm_err_set(err, DM_EINVAL, "invalid dot name '%.*s...'", 32, argv[optind]);
	snprintf(dot, sizeof(dot), "%.*s", (int)len, argv[optind]);
	rc = dm_dot_name_parse(&name, dot, err);
	if (!rc && at) {
		branch = at + 1;
		rc = read_only ? dm_ref_parse(&ref, branch, err)
			       : dm_branch_name_check(branch, err);
	}
	if (rc)
		return rc;
	/* PATH without trailing slashes: "link/" would mean the link's target */
	len = strlen(argv[optind + 1]);
	while (len > 1 && argv[optind + 1][len - 1] == '/')
		len--;
	if (len == 0 || len >= sizeof(path))
		return dm_err_set(err, DM_EINVAL, "invalid path '%s'", argv[optind + 1]);
	snprintf(path, sizeof(path), "%.*s", (int)len, argv[optind + 1]);
	rc = link_holder(holder, sizeof(holder), path, err);
	if (rc)
		return rc;

	if (create) {
		rc = dm_cli_call(cli, "dots.show", json_pack("{s:s}", "dot", dot), &res, err);
		if (rc == DM_ENOTFOUND) {
			rc = dm_cli_call(cli, "dots.create", json_pack("{s:s}", "dot", dot), &res,
					 err);
			/* created meanwhile by someone else: as good */
			if (rc == DM_EEXISTS)
				rc = 0;
		}
		json_decref(res);
		res = NULL;
		if (rc)
			return rc;
	}
	if (read_only) {
		params = json_pack("{s:s, s:s, s:s}", "dot", dot, "commit",
				   branch ? branch : "HEAD", "holder", holder);
		rc = dm_cli_call(cli, "dots.mount_commit", params, &res, err);
	} else {
		params = json_pack("{s:s}", "dot", dot);
		if (params && branch)
			json_object_set_new(params, "branch", json_string(branch));
		rc = dm_cli_call(cli, "dots.path", params, &res, err);
	}
	if (rc)
		return rc;
	if (!*dm_out_str(res, "path"))
		rc = dm_err_set(err, DM_EPROTO, "the server gave no path for dot '%s'", dot);
	else
		rc = make_link(cli, dm_out_str(res, "path"), path, err);
	if (read_only && !rc)
		printf("%s is commit %s of '%s', read-only\n", path, dm_out_str(res, "commit"),
		       dot);
	json_decref(res);
	/* the copy this path held before, if any, or the one just made when
	 * the link could not be made, is let go of */
	links_changed(cli, holder);
	return rc;
}

int dm_cmd_unmount(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	char target[PATH_MAX], holder[PATH_MAX + 8];
	struct stat st;
	const char *path;
	ssize_t n;
	int rc = dm_cli_args(cli, argc, argv, 1, 1, "a path: dm unmount PATH", err);

	if (rc)
		return rc;
	path = argv[optind];
	rc = dm_cli_remote(cli, err);
	if (!rc)
		rc = link_holder(holder, sizeof(holder), path, err);
	if (rc)
		return rc;
	if (lstat(path, &st) < 0)
		return dm_err_errno(err, errno, "cannot check '%s'", path);
	n = S_ISLNK(st.st_mode) ? readlink(path, target, sizeof(target) - 1) : -1;
	if (n < 0 || (target[n] = '\0', !inside(target, cli->remote.data_dir)))
		return dm_err_set(err, DM_EINVAL, "'%s' is not a link that dm mount made", path);
	if (unlink(path) < 0)
		return dm_err_errno(err, errno, "cannot remove '%s'", path);
	links_changed(cli, holder);
	return 0;
}
