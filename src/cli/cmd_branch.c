/*
 * cmd_branch.c - the commands about branches: `dm branch` lists them
 * (and deletes one with -d or -D), `dm checkout [-b]` switches to one
 * (creating it first with -b).
 *
 * Invariant: branch names are checked here before any request.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/err.h"
#include "util/names.h"

#include "util/banned.h"

/* dm branch -d|-D BRANCH: deletes it (-d only when another branch has
 * its commits). */
static int delete_branch(struct dm_cli *cli, const char *dot_opt, const char *branch, bool force,
			 struct dm_err *err)
{
	const char *dot;
	json_t *res = NULL;
	int rc = dm_branch_name_check(branch, err);

	if (!rc)
		rc = dm_cli_dot(cli, dot_opt, &dot, err);
	if (!rc)
		rc = dm_cli_call(
			cli, "dots.delete_branch",
			json_pack("{s:s, s:s, s:b}", "dot", dot, "branch", branch, "force", force),
			&res, err);
	if (rc)
		return rc;
	printf("Deleted branch %s\n", branch);
	json_decref(res);
	return 0;
}

int dm_cmd_branch(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, OPT_JSON},
		{"dot", required_argument, NULL, OPT_DOT},
		{NULL, 0, NULL, 0},
	};
	const char *dot, *current;
	struct dm_cli_view v;
	json_t *res = NULL, *b;
	int del = 0, c, rc = 0;
	size_t i;

	memset(&v, 0, sizeof(v));
	while ((c = dm_cli_getopt(cli, argc, argv, "HdD", opts, err)) > 0) {
		if (c == OPT_JSON)
			v.as_json = true;
		else if (c == 'H')
			v.raw = true;
		else if (c == OPT_DOT)
			v.dot = optarg;
		else if (c == 'd' || c == 'D')
			del = c;
	}
	if (c < 0)
		return c;
	if (del) {
		if (v.as_json || v.raw)
			return dm_cli_usage_error(cli, err, "-%c takes no -H or --json", del);
		rc = dm_cli_nargs(cli, argc - optind, 1, 1, "BRANCH", err);
		return rc ? rc : delete_branch(cli, v.dot, argv[optind], del == 'D', err);
	}
	rc = dm_cli_nargs(cli, argc - optind, 0, 0, "", err);
	if (!rc)
		rc = dm_cli_dot(cli, v.dot, &dot, err);
	if (!rc)
		rc = dm_cli_call_view(cli, v.as_json, "dots.branches",
				      json_pack("{s:s}", "dot", dot), &res, err);
	if (rc || !res)
		return rc;
	current = dm_out_str(res, "current");
	json_array_foreach(json_object_get(res, "branches"), i, b) {
		const char *name = json_is_string(b) ? json_string_value(b) : dm_out_str(b, "name");
		bool is_current = !strcmp(name, current);

		if (v.raw)
			printf("%s\t", is_current ? "*" : "");
		else
			printf("%s ", is_current ? "*" : " ");
		dm_out_clean(stdout, name);
		putchar('\n');
	}
	json_decref(res);
	return 0;
}

int dm_cmd_checkout(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"dot", required_argument, NULL, OPT_DOT},
		{NULL, 0, NULL, 0},
	};
	const char *dot_opt = NULL, *dot;
	bool create = false;
	json_t *res = NULL;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "b", opts, err)) > 0) {
		if (c == 'b')
			create = true;
		else if (c == OPT_DOT)
			dot_opt = optarg;
	}
	if (c < 0)
		return c;
	rc = dm_cli_nargs(cli, argc - optind, 1, 1, "a branch: dm checkout [-b] BRANCH", err);
	if (!rc)
		rc = dm_branch_name_check(argv[optind], err);
	if (!rc)
		rc = dm_cli_dot(cli, dot_opt, &dot, err);
	if (!rc)
		rc = dm_cli_call(cli, "dots.checkout",
				 json_pack("{s:s, s:s, s:b}", "dot", dot, "branch", argv[optind],
					   "create", create),
				 &res, err);
	json_decref(res);
	return rc;
}
