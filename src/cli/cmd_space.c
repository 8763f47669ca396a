/*
 * cmd_space.c - the commands about the server's disk space: dm gc.
 *
 * Invariants: they only call the server (space.* methods) and print its
 * answer; what is freed, and whether anything is, is the server's.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "util/err.h"

#include "util/banned.h"

int dm_cmd_gc(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"dry-run", no_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	bool dry = false, as_json = false;
	char freed[32], disk[32], copied[32];
	json_t *res = NULL;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0) {
		if (c == 'n')
			dry = true;
		else if (c == 'j')
			as_json = true;
	}
	if (c < 0)
		return c;
	rc = dm_cli_nargs(cli, argc - optind, 0, 0, "", err);
	if (!rc)
		rc = dm_cli_call_view(cli, as_json, "space.gc", json_pack("{s:b}", "dry_run", dry),
				      &res, err);
	if (rc || !res)
		return rc;
	dm_out_size(freed, sizeof(freed), dm_out_u64(res, "freed_object_bytes"));
	dm_out_size(disk, sizeof(disk), dm_out_u64(res, "freed_disk_bytes"));
	dm_out_size(copied, sizeof(copied), dm_out_u64(res, "copied_bytes"));
	printf("%s %llu of %llu objects (%s), rewrote %llu packs (%s copied): %s of disk "
	       "%s\n",
	       dry ? "would free" : "freed", (unsigned long long)dm_out_u64(res, "freed_objects"),
	       (unsigned long long)dm_out_u64(res, "objects"), freed,
	       (unsigned long long)dm_out_u64(res, "packs"), copied, disk,
	       dry ? "would be freed" : "freed");
	json_decref(res);
	return 0;
}
