/*
 * cmd_commit.c - the commands about history: `dm commit`, `dm log`,
 * `dm reset --hard`, `dm diff`.
 *
 * Invariant: metadata and refs are checked here, before any request, with
 * the same words the server would use, so that a typo fails fast and the
 * same way whether or not a server runs.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/names.h"

#include "util/banned.h"

/* Adds one -d KEY=VALUE to meta; "#commit-id=ID" (dotmesh's) is the
 * commit's id instead, into *id. */
static int add_metadata(json_t *meta, const char **id, const char *arg, struct dm_err *err)
{
	const char *eq = strchr(arg, '=');
	char key[256];

	if (!eq)
		return dm_err_set(err, DM_EINVAL, "invalid metadata '%s': use key=value", arg);
	if ((size_t)(eq - arg) == strlen(DM_COMMIT_ID_META) &&
	    !strncmp(arg, DM_COMMIT_ID_META, (size_t)(eq - arg))) {
		if (*id)
			return dm_err_set(err, DM_EINVAL, "metadata key '%s' given twice",
					  DM_COMMIT_ID_META);
		*id = eq + 1;
		return dm_commit_id_check(*id, err);
	}
	if ((size_t)(eq - arg) >= sizeof(key))
		return dm_err_set(err, DM_EINVAL, "invalid metadata key '%.*s...': too long", 32,
				  arg);
	snprintf(key, sizeof(key), "%.*s", (int)(eq - arg), arg);
	if (key[0] < 'a' || key[0] > 'z')
		return dm_err_set(err, DM_EINVAL,
				  "invalid metadata key '%s': keys start with a lowercase letter",
				  key);
	for (const char *p = key; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
			return dm_err_set(err, DM_EINVAL,
					  "invalid metadata key '%s': use letters, digits, '-', "
					  "'_' or '.'",
					  key);
	if (dm_meta_key_not_reserved(key, err))
		return DM_EINVAL;
	if (json_object_get(meta, key))
		return dm_err_set(err, DM_EINVAL, "metadata key '%s' given twice", key);
	if (json_object_set_new(meta, key, json_string(eq + 1)))
		return dm_err_set(err, DM_EINVAL, "invalid metadata '%s': the value is not UTF-8",
				  arg);
	return 0;
}

int dm_cmd_commit(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"message", required_argument, NULL, 'm'},
		{"metadata", required_argument, NULL, 'd'},
		{"dot", required_argument, NULL, OPT_DOT},
		{"max-freeze", required_argument, NULL, OPT_MAX_FREEZE},
		{NULL, 0, NULL, 0},
	};
	const char *msg = NULL, *dot_opt = NULL, *dot, *id = NULL;
	json_t *meta = json_object(), *params, *res = NULL;
	int64_t max_freeze = 0;
	int c, rc = 0;

	while ((c = dm_cli_getopt(cli, argc, argv, "m:d:", opts, err)) > 0) {
		if (c == 'm')
			msg = optarg;
		else if (c == 'd' && !rc)
			rc = add_metadata(meta, &id, optarg, err);
		else if (c == OPT_DOT)
			dot_opt = optarg;
		else if (c == OPT_MAX_FREEZE && !rc)
			rc = dm_cli_duration_ms(optarg, "--max-freeze", &max_freeze, err);
	}
	if (c < 0)
		rc = c;
	if (rc)
		goto done;
	rc = dm_cli_nargs(cli, argc - optind, 0, 0, "", err);
	if (rc)
		goto done;
	if (!msg) {
		rc = dm_cli_usage_error(cli, err, "'dm commit' needs a message: -m MSG");
		goto done;
	}
	if (!*msg) {
		rc = dm_err_set(err, DM_EINVAL, "empty commit message");
		goto done;
	}
	rc = dm_cli_dot(cli, dot_opt, &dot, err);
	if (rc)
		goto done;
	params = json_pack("{s:s, s:s, s:O}", "dot", dot, "message", msg, "metadata", meta);
	if (!params) {
		rc = dm_err_set(err, DM_EINVAL, "invalid commit message: not UTF-8");
		goto done;
	}
	if (max_freeze)
		json_object_set_new(params, "max_freeze_ms", json_integer((json_int_t)max_freeze));
	if (id)
		json_object_set_new(params, "id", json_string(id));
	rc = dm_cli_call(cli, "dots.commit", params, &res, err);
	if (rc)
		goto done;
	printf("%s\n", dm_out_str(res, "id"));
	dm_cli_warnings(res);
done:
	json_decref(meta);
	json_decref(res);
	return rc;
}

/* How the commit was taken (dm log -v): "frozen for 37 ms (db)". */
static void print_capture(json_t *cap)
{
	const char *how = dm_out_str(cap, "how");

	if (!*how)
		return;
	printf("capture: ");
	dm_out_clean(stdout, how);
	if (!strcmp(how, "frozen") || json_object_get(cap, "freeze_ms"))
		printf(" for %" PRIu64 " ms", dm_out_u64(cap, "freeze_ms"));
	if (*dm_out_str(cap, "frozen")) {
		printf(" (");
		dm_out_clean(stdout, dm_out_str(cap, "frozen"));
		putchar(')');
	}
	putchar('\n');
	if (*dm_out_str(cap, "changed")) {
		printf("changed: ");
		dm_out_clean(stdout, dm_out_str(cap, "changed"));
		putchar('\n');
	}
	if (*dm_out_str(cap, "hooks")) {
		printf("hooks: ");
		dm_out_clean(stdout, dm_out_str(cap, "hooks"));
		putchar('\n');
	}
}

static void print_commit(json_t *commit, bool verbose)
{
	json_t *meta = json_object_get(commit, "metadata");
	const char *msg = dm_out_str(commit, "message");
	const char **keys = NULL;
	const char *key;
	json_t *v;
	size_t n = 0;
	char date[64];

	dm_out_time(date, sizeof(date), commit);
	printf("commit ");
	dm_out_clean(stdout, dm_out_str(commit, "id"));
	/* its record stays; its data is gone */
	if (json_is_true(json_object_get(commit, "pruned")))
		printf(" (pruned)");
	if (json_is_true(json_object_get(commit, "damaged")))
		printf(" (damaged: its data is missing)");
	printf("\nauthor: ");
	dm_out_clean(stdout, dm_out_str(commit, "author"));
	putchar('\n');
	printf("date: %s\n", date);
	if (verbose)
		print_capture(json_object_get(commit, "capture"));
	/* metadata in key order, whatever order the server sent */
	if (json_object_size(meta)) {
		keys = dm_xcalloc(json_object_size(meta), sizeof(*keys));
		json_object_foreach(meta, key, v) keys[n++] = key;
		for (size_t i = 1; i < n; i++)
			for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
				const char *tmp = keys[j];

				keys[j] = keys[j - 1];
				keys[j - 1] = tmp;
			}
		for (size_t i = 0; i < n; i++) {
			dm_out_clean(stdout, keys[i]);
			fputs(": ", stdout);
			dm_out_clean(stdout, dm_out_str(meta, keys[i]));
			putchar('\n');
		}
		free(keys);
	}
	putchar('\n');
	while (*msg) {
		size_t len = strcspn(msg, "\n");
		char *line = dm_xstrndup(msg, len);

		fputs("    ", stdout);
		dm_out_clean(stdout, line);
		putchar('\n');
		free(line);
		msg += len;
		if (*msg == '\n')
			msg++;
	}
	putchar('\n');
}

/* all: {"commits":[…]}, the whole log of the dot's current branch, newest
 * first, asked for a page at a time (dots.log's largest) */
static int log_all(struct dm_cli *cli, const char *dot, json_t **all, struct dm_err *err)
{
	json_t *commits = json_array(), *page = NULL, *next = NULL;
	int rc;

	do {
		json_t *params = json_pack("{s:s, s:i}", "dot", dot, "limit", 1000);

		if (next)
			json_object_set_new(params, "before", next);
		json_decref(page);
		page = NULL;
		rc = dm_cli_call(cli, "dots.log", params, &page, err);
		next = rc ? NULL : json_incref(json_object_get(page, "next"));
		if (!rc)
			json_array_extend(commits, json_object_get(page, "commits"));
	} while (!rc && json_is_string(next) && json_is_true(json_object_get(page, "more")));
	json_decref(page);
	json_decref(next);
	*all = rc ? NULL : json_pack("{s:o}", "commits", commits);
	if (rc)
		json_decref(commits);
	return rc;
}

int dm_cmd_log(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	const char *dot;
	struct dm_cli_view v;
	json_t *res = NULL, *commit;
	size_t i;
	int rc = dm_cli_view_options(cli, argc, argv, DM_CLI_OPT_DOT, &v, err);

	if (!rc)
		rc = dm_cli_nargs(cli, argc - optind, 0, 0, "", err);
	if (!rc)
		rc = dm_cli_dot(cli, v.dot, &dot, err);
	if (!rc)
		rc = log_all(cli, dot, &res, err);
	if (!rc && v.as_json)
		rc = dm_out_json(res, err);
	else if (!rc)
		json_array_foreach(json_object_get(res, "commits"), i, commit)
			print_commit(commit, cli->verbose > 0);
	json_decref(res);
	return rc;
}

int dm_cmd_reset(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"hard", no_argument, NULL, OPT_HARD},
		{"dot", required_argument, NULL, OPT_DOT},
		{NULL, 0, NULL, 0},
	};
	const char *dot_opt = NULL, *dot;
	bool hard = false;
	struct dm_ref ref;
	json_t *res = NULL;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0) {
		if (c == OPT_HARD)
			hard = true;
		else if (c == OPT_DOT)
			dot_opt = optarg;
	}
	if (c < 0)
		return c;
	rc = dm_cli_nargs(cli, argc - optind, 1, 1, "a commit: dm reset --hard REF", err);
	if (rc)
		return rc;
	if (!hard)
		return dm_cli_usage_error(cli, err,
					  "'dm reset' needs --hard: the working copy is always "
					  "reset with the branch");
	rc = dm_ref_parse(&ref, argv[optind], err);
	if (!rc)
		rc = dm_cli_dot(cli, dot_opt, &dot, err);
	if (!rc)
		rc = dm_cli_call(cli, "dots.reset",
				 json_pack("{s:s, s:s}", "dot", dot, "ref", argv[optind]), &res, err);
	json_decref(res);
	return rc;
}

int dm_cmd_diff(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	const char *dot;
	struct dm_cli_view v;
	struct dm_ref ref;
	json_t *params = NULL, *res = NULL, *change;
	size_t i;
	int rc, n;

	rc = dm_cli_view_options(cli, argc, argv, DM_CLI_OPT_RAW | DM_CLI_OPT_DOT, &v, err);
	if (rc)
		return rc;
	n = argc - optind;
	rc = dm_cli_nargs(cli, n, 0, 2, "", err);
	for (int k = 0; !rc && k < n; k++)
		rc = dm_ref_parse(&ref, argv[optind + k], err);
	if (!rc)
		rc = dm_cli_dot(cli, v.dot, &dot, err);
	if (rc)
		return rc;
	params = json_pack("{s:s}", "dot", dot);
	if (params && n >= 1)
		json_object_set_new(params, "from", json_string(argv[optind]));
	if (params && n >= 2)
		json_object_set_new(params, "to", json_string(argv[optind + 1]));
	rc = dm_cli_call_view(cli, v.as_json, "dots.diff", params, &res, err);
	if (rc || !res)
		return rc;
	json_array_foreach(json_object_get(res, "changes"), i, change) {
		const char *status = dm_out_str(change, "status");
		const char *label = !strcmp(status, "added")      ? "Added:   "
				    : !strcmp(status, "modified") ? "Modified:"
				    : !strcmp(status, "deleted")  ? "Deleted: "
								  : NULL;

		if (v.raw)
			printf("%s\t", status);
		else if (label)
			printf("%s ", label);
		else
			printf("%s: ", status);
		dm_out_clean(stdout, dm_out_str(change, "path"));
		putchar('\n');
	}
	json_decref(res);
	return 0;
}
