/*
 * cmd_user.c - the `dm user` group: `dm user add`, `dm user reset-key` and
 * `dm user list`, for the admin of a server (users.* in docs/api.md).
 *
 * Invariants: a new API key goes to stdout alone on its line, once, and
 * nowhere else (a note about keeping it goes to stderr, so that
 * `key=$(dm user add bob)` works); names are checked here before any
 * request.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/err.h"
#include "util/names.h"

#include "util/banned.h"

/* The one NAME argument of `dm user add/reset-key`, checked. */
static int name_arg(struct dm_cli *cli, int argc, char **argv, const char **out, struct dm_err *err)
{
	int rc;

	rc = dm_cli_args(cli, argc, argv, 1, 1, "a user name", err);
	if (rc)
		return rc;
	*out = argv[optind];
	if (!dm_name_part_valid(*out, strlen(*out)))
		return dm_err_set(err, DM_EINVAL,
				  "invalid user name '%s': use 1 to 64 letters, digits, '-' or '_'",
				  *out);
	return 0;
}

/* Prints the key of res on stdout. */
static int print_key(json_t *res, struct dm_err *err)
{
	json_t *key = json_object_get(res, "api_key");

	if (!json_is_string(key) || json_string_length(key) == 0)
		return dm_err_set(err, DM_EPROTO, "the server sent no API key");
	printf("%s\n", json_string_value(key));
	fflush(stdout);
	return 0;
}

int dm_cmd_user_add(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	const char *name;
	json_t *res = NULL;
	int rc = name_arg(cli, argc, argv, &name, err);

	if (!rc)
		rc = dm_cli_call(cli, "users.add", json_pack("{s:s}", "name", name), &res, err);
	if (rc)
		return rc;
	fprintf(stderr,
		"Created user '%s'. Its API key follows; it is shown only this once, so keep it\n"
		"safe ('dm user reset-key %s' makes a new one):\n",
		name, name);
	fflush(stderr);
	rc = print_key(res, err);
	json_decref(res);
	return rc;
}

int dm_cmd_user_reset_key(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	struct dm_config *config;
	struct dm_remote updated;
	const char *name;
	json_t *res = NULL, *key;
	bool own;
	int rc = name_arg(cli, argc, argv, &name, err);

	if (!rc)
		rc = dm_cli_call(cli, "users.reset_key", json_pack("{s:s}", "name", name), &res,
				 err);
	if (rc)
		return rc;
	key = json_object_get(res, "api_key");
	/* our own key just stopped working: the config takes the new one */
	own = !strcmp(cli->remote.user, name) && json_is_string(key);
	if (own) {
		rc = dm_cli_config(cli, &config, err);
		if (!rc) {
			updated = cli->remote;
			updated.api_key = json_string_value(key);
			rc = dm_config_set_remote(config, &updated, err);
		}
		if (!rc)
			rc = dm_config_save(config, err);
		cli->have_remote = false; /* its strings may have moved */
		if (rc) {
			/* the old key is gone: the new one must not be */
			fprintf(stderr, "New API key of user '%s', which could not be saved:\n",
				name);
			print_key(res, NULL);
			json_decref(res);
			return rc;
		}
	}
	fprintf(stderr,
		"New API key of user '%s'; the old one no longer works. It is shown only this\n"
		"once, so keep it safe%s:\n",
		name, own ? " (the config file has it already)" : "");
	fflush(stderr);
	rc = print_key(res, err);
	json_decref(res);
	return rc;
}

int dm_cmd_user_list(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	bool as_json, raw;
	struct dm_table t;
	json_t *res = NULL, *u;
	size_t i;
	int rc = dm_cli_listing_options(cli, argc, argv, &as_json, &raw, err);

	if (!rc)
		rc = dm_cli_call_view(cli, as_json, "users.list", json_object(), &res, err);
	if (rc || !res)
		return rc;
	dm_table_init(&t, 2);
	if (!raw)
		dm_table_row(&t, "USER", "ADMIN");
	json_array_foreach(json_object_get(res, "users"), i, u)
	{
		dm_table_row(&t, dm_out_str(u, "name"),
			     json_is_true(json_object_get(u, "admin")) ? "yes" : "no");
	}
	dm_table_print(&t, stdout, raw);
	dm_table_release(&t);
	json_decref(res);
	return 0;
}
