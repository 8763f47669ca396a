/*
 * cmd_version.c - `dm version`: the client's version, then the server's.
 *
 * Invariant: the client's version is printed before anything can fail, so
 * it shows even when no server answers (the command then fails).
 */
#include <jansson.h>
#include <stdio.h>

#include "cli/cli.h"
#include "util/err.h"

#include "util/banned.h"

int dm_cmd_version(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	json_t *res = NULL;
	int rc = dm_cli_no_options(cli, argc, argv, err);

	if (rc)
		return rc;
	printf("Client:\n  Version: %s\n", DM_VERSION);
	fflush(stdout);
	rc = dm_cli_call(cli, "server.version", json_object(), &res, err);
	if (rc)
		return rc; /* "cannot reach dm server at ..." */
	printf("Server:\n  Version: %s\n", dm_out_str(res, "version"));
	if (json_is_integer(json_object_get(res, "api")))
		printf("  API:     %lld\n", (long long)json_integer_value(json_object_get(res, "api")));
	printf("  Remote:  %s (%s)\n", cli->remote.name, dm_client_where(cli->client));
	json_decref(res);
	return 0;
}
