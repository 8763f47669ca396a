/*
 * cmd_cluster_reset.c - `dm cluster reset [--data-dir DIR] [--yes]`:
 * tears this node down (dotmesh's `dm cluster reset`): stops its dmd,
 * lets go of what is still mounted under DIR, deletes DIR with every dot
 * and commit it held, and forgets the remotes of this config that named
 * DIR.
 *
 * Invariants: nothing is deleted unless DIR is a dm data directory (it
 * holds config.json and store/, as `dmd init` makes them) and the user
 * confirmed: on a terminal by typing DIR's path, elsewhere by --yes; a
 * dmd that does not stop leaves DIR as it was.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/fsutil.h"

#include "util/banned.h"

#define MOUNTS_MAX 4096

/* Whether dir holds what `dmd init` makes (names of server/datadir.h). */
static bool is_data_dir(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;

	if (snprintf(path, sizeof(path), "%s/config.json", dir) >= (int)sizeof(path) ||
	    stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	if (snprintf(path, sizeof(path), "%s/store", dir) >= (int)sizeof(path))
		return false;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* /proc/mounts' octal escapes (\040 for a space, ...) undone in place. */
static void unescape(char *s)
{
	char *w = s;

	for (const char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

static int by_length_desc(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);

	return la < lb ? 1 : la > lb ? -1 : 0;
}

/* Detaches every mount under dir, deepest first (a btrfs pool, read-only
 * commits, working copies bound elsewhere). */
static int unmount_under(const char *dir, struct dm_err *err)
{
	char line[PATH_MAX * 2 + 256], *paths[MOUNTS_MAX];
	size_t n = 0, len = strlen(dir);
	FILE *f = fopen("/proc/self/mounts", "re");
	int rc = 0;

	if (!f)
		return dm_err_errno(err, errno, "cannot read /proc/self/mounts");
	while (n < MOUNTS_MAX && fgets(line, sizeof(line), f)) {
		char *point = strchr(line, ' '), *end;

		if (!point || !(end = strchr(++point, ' ')))
			continue;
		*end = '\0';
		unescape(point);
		if (!strncmp(point, dir, len) && point[len] == '/')
			paths[n++] = strdup(point);
	}
	fclose(f);
	qsort(paths, n, sizeof(*paths), by_length_desc);
	for (size_t i = 0; i < n; i++) {
		if (!rc && paths[i] && umount2(paths[i], MNT_DETACH) < 0 && errno != EINVAL)
			rc = dm_err_errno(err, errno, "cannot unmount '%s' (run as root)", paths[i]);
		free(paths[i]);
	}
	return rc;
}

/* Removes the remotes of the config that name dir as their data directory. */
static int forget_remotes(struct dm_cli *cli, const char *dir, struct dm_err *err)
{
	struct dm_config *config;
	const char **names = NULL;
	char **ours;
	size_t n = 0, nours = 0;
	int rc = dm_cli_config(cli, &config, err);

	if (rc)
		return rc;
	dm_config_remote_names(config, &names, &n);
	ours = calloc(n + 1, sizeof(*ours));
	for (size_t i = 0; ours && i < n; i++) {
		struct dm_remote r;

		if (!dm_config_remote(&r, config, names[i], NULL) && r.data_dir &&
		    !strcmp(r.data_dir, dir))
			ours[nours++] = strdup(names[i]);
	}
	free(names);
	if (!ours)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	for (size_t i = 0; i < nours && !rc; i++) {
		rc = ours[i] ? dm_config_remove_remote(config, ours[i], err)
			     : dm_err_set(err, DM_ENOMEM, "out of memory");
		if (!rc)
			printf("Removed remote '%s'\n", ours[i]);
	}
	if (!rc && nours)
		rc = dm_config_save(config, err);
	for (size_t i = 0; i < nours; i++)
		free(ours[i]);
	free(ours);
	return rc;
}

/* On the terminal: the user types dir's path to go on. */
static bool confirmed(const char *dir)
{
	char line[PATH_MAX + 2];

	fprintf(stderr,
		"This deletes %s: every dot, branch and commit this node holds, its users\n"
		"and keys (and, on a cluster's only node, the cluster). Other nodes keep\n"
		"their copies. Type the path to go on: ",
		dir);
	fflush(stderr);
	if (!fgets(line, sizeof(line), stdin))
		return false;
	line[strcspn(line, "\r\n")] = '\0';
	return !strcmp(line, dir);
}

int dm_cmd_cluster_reset(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"data-dir", required_argument, NULL, OPT_DATA_DIR},
		{"yes", no_argument, NULL, 'y'},
		{NULL, 0, NULL, 0},
	};
	const char *given = NULL;
	char dir[PATH_MAX];
	bool yes = false;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "y", opts, err)) > 0) {
		if (c == OPT_DATA_DIR)
			given = optarg;
		else if (c == 'y')
			yes = true;
	}
	if (c < 0)
		return c;
	rc = dm_cli_nargs(cli, argc - optind, 0, 0, "no arguments: dm cluster reset", err);
	if (!rc)
		rc = dm_cli_cluster_data_dir(cli, given, dir, sizeof(dir), err);
	if (rc)
		return rc;
	if (!is_data_dir(dir))
		return dm_err_set(err, DM_ENOTFOUND,
				  "'%s' is not a dm data directory (no config.json and store/); "
				  "nothing deleted",
				  dir);
	if (!yes) {
		if (!isatty(STDIN_FILENO))
			return dm_err_set(err, DM_EINVAL,
					  "refusing to delete '%s' without --yes when not on a "
					  "terminal",
					  dir);
		if (!confirmed(dir))
			return dm_err_set(err, DM_ECANCELED, "not deleting '%s'", dir);
	}
	rc = dm_cli_dmd_stop(cli, dir, err);
	if (rc)
		return dm_err_prefix(err, "nothing deleted: its dmd did not stop");
	rc = unmount_under(dir, err);
	if (!rc)
		rc = dm_remove_tree(dir, err);
	if (rc)
		return rc;
	printf("Deleted the dm data directory %s\n", dir);
	return forget_remotes(cli, dir, err);
}
