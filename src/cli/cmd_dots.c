/*
 * cmd_dots.c - the commands about the set of dots: `dm init`, `dm list`
 * (also `dm ls`), `dm switch`.
 *
 * Invariants: a dot name is checked here before any request; `dm switch`
 * stores a current dot only after the server showed that it exists, and
 * `dm init` only after the server made it (dotmesh's init made the new dot
 * current too). `dm list -H` prints dotmesh's seven columns first, in its
 * order (NAME BRANCH SERVER CONTAINERS SIZE COMMITS DIRTY), so that its
 * users' `cut -f 1` and `cut -f 7` go on working; dm's own columns follow.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/err.h"
#include "util/names.h"

#include "util/banned.h"

int dm_cmd_init(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	struct dm_dot_name name;
	json_t *res = NULL;
	int rc;

	rc = dm_cli_args(cli, argc, argv, 1, 1, "a dot name: dm init DOT", err);
	if (!rc)
		rc = dm_dot_name_parse(&name, argv[optind], err);
	if (!rc)
		rc = dm_cli_call(cli, "dots.create", json_pack("{s:s}", "dot", argv[optind]), &res,
				 err);
	json_decref(res);
	if (!rc)
		rc = dm_cli_set_current_dot(cli, argv[optind], err);
	return rc;
}

/* The dot that `dm list` marks: the current one, or the only one. */
static const char *marked_dot(struct dm_cli *cli, json_t *dots, char *buf, size_t size)
{
	if (cli->remote.current_dot)
		return cli->remote.current_dot;
	if (json_array_size(dots) == 1) {
		json_t *d = json_array_get(dots, 0);

		dm_cli_dot_display(buf, size, dm_out_str(d, "namespace"), dm_out_str(d, "name"));
		return buf;
	}
	return NULL;
}

int dm_cmd_list(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	bool raw, as_json;
	struct dm_table t;
	json_t *res = NULL, *dots, *d;
	char only[2 * DM_NAME_PART_MAX + 2];
	const char *marked;
	size_t i;
	int rc = dm_cli_listing_options(cli, argc, argv, &as_json, &raw, err);

	if (!rc)
		rc = dm_cli_call_view(cli, as_json, "dots.list", json_object(), &res, err);
	if (rc || !res)
		return rc;
	dots = json_object_get(res, "dots");
	marked = marked_dot(cli, dots, only, sizeof(only));
	/* -H: dotmesh's seven columns, then whether it is the current dot */
	dm_table_init(&t, raw ? 8 : 7);
	if (!raw)
		dm_table_row(&t, "  DOT", "BRANCH", "SERVER", "CONTAINERS", "SIZE", "COMMITS",
			     "DIRTY");
	json_array_foreach(dots, i, d) {
		char name[2 * DM_NAME_PART_MAX + 4], size[32], commits[32], dirty[32];
		char containers[1024];
		bool current;

		dm_cli_dot_display(name + 2, sizeof(name) - 2, dm_out_str(d, "namespace"),
				   dm_out_str(d, "name"));
		current = marked && dm_cli_same_dot(marked, name + 2);
		name[0] = current ? '*' : ' ';
		name[1] = ' ';
		dm_out_join_names(containers, sizeof(containers), json_object_get(d, "containers"));
		snprintf(commits, sizeof(commits), "%" PRIu64, dm_out_u64(d, "commits"));
		if (raw) {
			snprintf(size, sizeof(size), "%" PRIu64, dm_out_u64(d, "size"));
			snprintf(dirty, sizeof(dirty), "%" PRIu64, dm_out_u64(d, "dirty"));
			dm_table_row(&t, name + 2, dm_out_str(d, "branch"), dm_out_str(d, "server"),
				     containers, size, commits, dirty, current ? "*" : "");
		} else {
			dm_out_size(size, sizeof(size), dm_out_u64(d, "size"));
			dm_out_size(dirty, sizeof(dirty), dm_out_u64(d, "dirty"));
			dm_table_row(&t, name, dm_out_str(d, "branch"), dm_out_str(d, "server"),
				     containers, size, commits, dirty);
		}
	}
	dm_table_print(&t, stdout, raw);
	dm_table_release(&t);
	json_decref(res);
	return 0;
}

int dm_cmd_switch(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	struct dm_dot_name name;
	json_t *res = NULL;
	int rc;

	rc = dm_cli_args(cli, argc, argv, 1, 1, "a dot name: dm switch DOT", err);
	if (!rc)
		rc = dm_dot_name_parse(&name, argv[optind], err);
	if (!rc)
		rc = dm_cli_call(cli, "dots.show", json_pack("{s:s}", "dot", argv[optind]), &res,
				 err);
	json_decref(res);
	if (!rc)
		rc = dm_cli_set_current_dot(cli, argv[optind], err);
	return rc;
}
