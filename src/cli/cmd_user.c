/*
 * cmd_user.c - the `dm user` group: `dm user add`, `dm user reset-key`,
 * `dm user rm` and `dm user list` (users.* in docs/api.md). Every user may
 * reset its own key; the rest is for the admins of a server.
 *
 * Invariants: a new API key goes to stdout alone on its line, once, and
 * nowhere else (a note about keeping it goes to stderr, so that
 * `key=$(dm user add bob)` works); names and --expires are checked here
 * before any request.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/err.h"
#include "util/names.h"

#include "util/banned.h"

/* --expires DURATION: "30d", "12h", "90m", "45s" or "never" (0), as
 * seconds into *out. */
static int expires_arg(const char *s, int64_t *out, struct dm_err *err)
{
	static const struct {
		char unit;
		int64_t secs;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	char *end = NULL;
	long long n;

	if (!strcmp(s, "never")) {
		*out = 0;
		return 0;
	}
	errno = 0;
	n = strtoll(s, &end, 10);
	if (!errno && end != s && n > 0 && end[0] && !end[1])
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (end[0] == units[i].unit && n <= INT64_MAX / units[i].secs) {
				*out = n * units[i].secs;
				return 0;
			}
	return dm_err_set(err, DM_EINVAL,
			  "invalid --expires '%s': give a duration such as 30d, 12h, 90m or 45s, "
			  "or never",
			  s);
}

/* The options of add and reset-key (--expires), then min..1 NAME
 * arguments, checked; *name is NULL when none was given. *lifetime is -1
 * without --expires. */
static int user_args(struct dm_cli *cli, int argc, char **argv, int min, const char **name,
		     int64_t *lifetime, struct dm_err *err)
{
	static const struct option opts[] = {
		{"expires", required_argument, NULL, OPT_EXPIRES},
		{NULL, 0, NULL, 0},
	};
	int c, rc = 0;

	*lifetime = -1;
	*name = NULL;
	while ((c = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0)
		if (c == OPT_EXPIRES && !rc)
			rc = expires_arg(optarg, lifetime, err);
	if (c < 0)
		return c;
	if (rc)
		return rc;
	rc = dm_cli_nargs(cli, argc - optind, min, 1, "a user name", err);
	if (rc || argc == optind)
		return rc;
	*name = argv[optind];
	if (!dm_name_part_valid(*name, strlen(*name)))
		return dm_err_set(err, DM_EINVAL,
				  "invalid user name '%s': use 1 to 64 letters, digits, '-' or '_'",
				  *name);
	return 0;
}

/* " It expires at TIME." for a key that does, else "". */
static void expiry_note(char *out, size_t size, json_t *res)
{
	const char *when = json_string_value(json_object_get(res, "expires"));

	snprintf(out, size, "%s%s%s", when ? " It expires at " : "", when ? when : "",
		 when ? "." : "");
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
	char note[96];
	int64_t lifetime;
	json_t *res = NULL, *params;
	int rc = user_args(cli, argc, argv, 1, &name, &lifetime, err);

	if (rc)
		return rc;
	params = json_pack("{s:s}", "name", name);
	if (params && lifetime >= 0)
		json_object_set_new(params, "expires_in", json_integer((json_int_t)lifetime));
	rc = dm_cli_call(cli, "users.add", params, &res, err);
	if (rc)
		return rc;
	expiry_note(note, sizeof(note), res);
	fprintf(stderr,
		"Created user '%s'.%s Its API key follows; it is shown only this once,\n"
		"so keep it safe ('dm user reset-key %s' makes a new one):\n",
		name, note, name);
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
	char note[96];
	int64_t lifetime;
	json_t *res = NULL, *key, *params;
	bool own;
	int rc = user_args(cli, argc, argv, 0, &name, &lifetime, err);

	if (rc)
		return rc;
	params = json_object();
	if (params && name)
		json_object_set_new(params, "name", json_string(name));
	if (params && lifetime >= 0)
		json_object_set_new(params, "expires_in", json_integer((json_int_t)lifetime));
	rc = dm_cli_call(cli, "users.reset_key", params, &res, err);
	if (rc)
		return rc;
	name = json_string_value(json_object_get(res, "name"));
	if (!name || !dm_name_part_valid(name, strlen(name))) {
		json_decref(res);
		return dm_err_set(err, DM_EPROTO, "the server did not say whose key it reset");
	}
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
	expiry_note(note, sizeof(note), res);
	fprintf(stderr,
		"New API key of user '%s'; the old one no longer works.%s It is shown only\n"
		"this once, so keep it safe%s:\n",
		name, note, own ? " (the config file has it already)" : "");
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
	dm_table_init(&t, 3);
	if (!raw)
		dm_table_row(&t, "USER", "ADMIN", "KEY EXPIRES");
	json_array_foreach(json_object_get(res, "users"), i, u)
	{
		const char *expires = dm_out_str(u, "expires");

		dm_table_row(&t, dm_out_str(u, "name"),
			     json_is_true(json_object_get(u, "admin")) ? "yes" : "no",
			     *expires ? expires : "never");
	}
	dm_table_print(&t, stdout, raw);
	dm_table_release(&t);
	json_decref(res);
	return 0;
}

int dm_cmd_user_rm(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"force", no_argument, NULL, 'f'},
		{NULL, 0, NULL, 0},
	};
	const char *name;
	json_t *res = NULL, *d;
	bool force = false;
	size_t i;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "f", opts, err)) > 0)
		force = true;
	if (c < 0)
		return c;
	rc = dm_cli_nargs(cli, argc - optind, 1, 1, "a user name", err);
	if (rc)
		return rc;
	name = argv[optind];
	if (!dm_name_part_valid(name, strlen(name)))
		return dm_err_set(err, DM_EINVAL, "invalid user name '%s'", name);
	rc = dm_cli_call(cli, "users.remove", json_pack("{s:s, s:b}", "name", name, "force", force),
			 &res, err);
	if (rc)
		return rc;
	printf("Removed user '%s'.\n", name);
	json_array_foreach(json_object_get(res, "handed_over"), i, d)
	{
		printf("Dot %s is now owned by '%s'.\n",
		       json_string_value(d) ? json_string_value(d) : "", dm_out_str(res, "to"));
	}
	json_decref(res);
	return 0;
}
