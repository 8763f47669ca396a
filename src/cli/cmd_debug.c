/*
 * cmd_debug.c - `dm debug METHOD [PARAMS]`: one raw JSON-RPC call to the
 * remote, its result printed as one line of JSON (dotmesh's `dm debug`).
 *
 * Invariants: PARAMS goes to the server as it is when it is JSON, and as a
 * JSON string otherwise (dotmesh sent the bare argument as a string, which
 * its methods that take an id wanted); nothing is checked here but that
 * the method name is one word, so that this command reaches every method
 * of the API, dotmesh's aliases included (docs/api.md). The result is
 * printed compact, on one line, like dotmesh's.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/err.h"

#include "util/banned.h"

int dm_cmd_debug(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"parse-json", no_argument, NULL, 'p'},
		{NULL, 0, NULL, 0},
	};
	bool must_parse = false;
	const char *method;
	json_t *params = NULL, *res = NULL;
	json_error_t jerr;
	char *text;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0)
		must_parse = true;
	if (c < 0)
		return c;
	rc = dm_cli_nargs(cli, argc - optind, 1, 2, "a method: dm debug METHOD [PARAMS]", err);
	if (rc)
		return rc;
	method = argv[optind];
	if (!*method || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				       "0123456789._-") != strlen(method))
		return dm_cli_usage_error(cli, err, "invalid method name '%s'", method);
	if (argc - optind == 2) {
		params = json_loads(argv[optind + 1], JSON_DECODE_ANY, &jerr);
		if (!params && must_parse)
			return dm_cli_usage_error(cli, err, "PARAMS is not JSON: %s", jerr.text);
		if (!params)
			params = json_string(argv[optind + 1]);
	} else {
		params = json_object();
	}
	rc = dm_cli_call(cli, method, params, &res, err); /* takes params */
	if (rc)
		return rc;
	text = json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(res);
	if (!text)
		return dm_err_set(err, DM_ENOMEM, "cannot encode the result");
	puts(text);
	free(text);
	return 0;
}
