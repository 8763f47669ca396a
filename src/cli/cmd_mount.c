/*
 * cmd_mount.c - `dm mount [--create] DOT[@BRANCH] PATH`: makes PATH a
 * symbolic link to the working copy of a dot's branch, wherever the server
 * keeps it (dots.path).
 *
 * Invariant: dm mount only ever creates a symlink or replaces one that
 * points into the remote's data directory (one it made before); it never
 * touches a file, a directory or somebody else's link. The replacement is
 * atomic (a new link renamed over the old one).
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/err.h"
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

int dm_cmd_mount(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"create", no_argument, NULL, OPT_CREATE},
		{NULL, 0, NULL, 0},
	};
	char dot[2 * DM_NAME_PART_MAX + 2], path[PATH_MAX];
	const char *branch = NULL, *at;
	struct dm_dot_name name;
	bool create = false;
	json_t *res = NULL, *params;
	size_t len;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0) {
		if (c == OPT_CREATE)
			create = true;
	}
	if (c < 0)
		return c;
	rc = dm_cli_nargs(cli, argc - optind, 2, 2, "a dot and a path: dm mount DOT[@BRANCH] PATH",
			  err);
	if (rc)
		return rc;
	at = strchr(argv[optind], '@');
	len = at ? (size_t)(at - argv[optind]) : strlen(argv[optind]);
	if (len >= sizeof(dot))
		return dm_err_set(err, DM_EINVAL, "invalid dot name '%.*s...'", 32, argv[optind]);
	snprintf(dot, sizeof(dot), "%.*s", (int)len, argv[optind]);
	rc = dm_dot_name_parse(&name, dot, err);
	if (!rc && at) {
		branch = at + 1;
		rc = dm_branch_name_check(branch, err);
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
	params = json_pack("{s:s}", "dot", dot);
	if (params && branch)
		json_object_set_new(params, "branch", json_string(branch));
	rc = dm_cli_call(cli, "dots.path", params, &res, err);
	if (rc)
		return rc;
	if (!*dm_out_str(res, "path"))
		rc = dm_err_set(err, DM_EPROTO, "the server gave no path for dot '%s'", dot);
	else
		rc = make_link(cli, dm_out_str(res, "path"), path, err);
	json_decref(res);
	return rc;
}
