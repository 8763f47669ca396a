/*
 * cmd_dot.c - the `dm dot` group: `dm dot show` describes one dot in detail,
 * `dm dot delete` deletes one.
 *
 * Invariant: a delete runs only after a "y" typed on a terminal or with
 * --force; without a terminal and without --force it is refused, so a
 * script never deletes by accident.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/err.h"
#include "util/names.h"

#include "util/banned.h"

/* One "key: value" line, or "key<tab>value" for -H. */
static void field(bool raw, const char *key, const char *value)
{
	if (raw)
		printf("%s\t", key);
	else
		printf("%s:%*s", key, (int)(12 - strlen(key)), "");
	dm_out_clean(stdout, value);
	putchar('\n');
}

static void size_field(bool raw, const char *key, uint64_t v)
{
	char buf[32];

	if (raw)
		snprintf(buf, sizeof(buf), "%" PRIu64, v);
	else
		dm_out_size(buf, sizeof(buf), v);
	field(raw, key, buf);
}

static void show(json_t *d, bool current, bool raw)
{
	char name[2 * DM_NAME_PART_MAX + 2], buf[64], containers[1024] = "";
	const char *branch = dm_out_str(d, "branch");
	struct dm_table t;
	json_t *b, *e;
	size_t i, used = 0;
	bool paths = false;

	dm_cli_dot_display(name, sizeof(name), dm_out_str(d, "namespace"), dm_out_str(d, "name"));
	json_array_foreach(json_object_get(d, "containers"), i, e) {
		const char *s = json_is_string(e) ? json_string_value(e) : dm_out_str(e, "name");
		int n = snprintf(containers + used, sizeof(containers) - used, "%s%s",
				 used ? "," : "", s);

		if (n < 0 || (size_t)n >= sizeof(containers) - used)
			break;
		used += (size_t)n;
	}
	field(raw, "dot", name);
	field(raw, "id", dm_out_str(d, "id"));
	field(raw, "namespace", dm_out_str(d, "namespace"));
	field(raw, "state", dm_out_str(d, "state"));
	field(raw, "current", current ? "yes" : "no");
	field(raw, "server", dm_out_str(d, "server"));
	field(raw, "branch", branch);
	size_field(raw, "size", dm_out_u64(d, "size"));
	snprintf(buf, sizeof(buf), "%" PRIu64, dm_out_u64(d, "commits"));
	field(raw, "commits", buf);
	size_field(raw, "dirty", dm_out_u64(d, "dirty"));
	field(raw, "containers", *containers ? containers : raw ? "" : "none");
	field(raw, "upstream", *dm_out_str(d, "upstream") ? dm_out_str(d, "upstream")
			       : raw                       ? ""
							   : "none");

	/* the PATH column only when the server tells the paths */
	json_array_foreach(json_object_get(d, "branches"), i, b) {
		if (*dm_out_str(b, "path"))
			paths = true;
	}
	dm_table_init(&t, raw ? 7 : paths ? 6 : 5);
	if (!raw) {
		putchar('\n');
		dm_table_row(&t, "  BRANCH", "HEAD", "COMMITS", "SIZE", "DIRTY", "PATH");
	}
	json_array_foreach(json_object_get(d, "branches"), i, b) {
		char bname[DM_NAME_PART_MAX + 3], commits[32], size[32], dirty[32];
		const char *head = dm_out_str(b, "head");
		bool cur = !strcmp(dm_out_str(b, "name"), branch);

		snprintf(bname, sizeof(bname), "%s %s", cur ? "*" : " ", dm_out_str(b, "name"));
		snprintf(commits, sizeof(commits), "%" PRIu64, dm_out_u64(b, "commits"));
		if (raw) {
			snprintf(size, sizeof(size), "%" PRIu64, dm_out_u64(b, "size"));
			snprintf(dirty, sizeof(dirty), "%" PRIu64, dm_out_u64(b, "dirty"));
			dm_table_row(&t, "branch", cur ? "*" : "", bname + 2, head, commits, size,
				     dirty);
		} else {
			dm_out_size(size, sizeof(size), dm_out_u64(b, "size"));
			dm_out_size(dirty, sizeof(dirty), dm_out_u64(b, "dirty"));
			dm_table_row(&t, bname, *head ? head : "-", commits, size, dirty,
				     dm_out_str(b, "path"));
		}
	}
	dm_table_print(&t, stdout, raw);
	dm_table_release(&t);
}

int dm_cmd_dot_show(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, OPT_JSON},
		{"dot", required_argument, NULL, OPT_DOT},
		{NULL, 0, NULL, 0},
	};
	const char *given = NULL, *dot;
	bool as_json = false, raw = false, current;
	json_t *res = NULL;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "H", opts, err)) > 0) {
		if (c == OPT_JSON)
			as_json = true;
		else if (c == 'H')
			raw = true;
		else if (c == OPT_DOT)
			given = optarg;
	}
	if (c < 0)
		return c;
	rc = dm_cli_nargs(cli, argc - optind, 0, 1, "", err);
	if (rc)
		return rc;
	if (argc - optind == 1) {
		if (given && strcmp(given, argv[optind]) != 0)
			return dm_cli_usage_error(cli, err, "two different dots: '%s' and --dot '%s'",
						  argv[optind], given);
		given = argv[optind];
	}
	rc = dm_cli_dot(cli, given, &dot, err);
	if (!rc)
		rc = dm_cli_call(cli, "dots.show", json_pack("{s:s}", "dot", dot), &res, err);
	if (rc)
		return rc;
	if (as_json) {
		rc = dm_out_json(res, err);
	} else {
		current = !given || (cli->have_remote && cli->remote.current_dot &&
				     dm_cli_same_dot(cli->remote.current_dot, dot));
		show(res, current, raw);
	}
	json_decref(res);
	return rc;
}

/* Asks on the terminal; true for "y" or "yes". */
static bool confirm(const char *dot)
{
	char line[64];

	fprintf(stderr,
		"Please confirm that you really want to delete the dot %s and all its commits "
		"[y/N] ",
		dot);
	fflush(stderr);
	if (!fgets(line, sizeof(line), stdin))
		return false;
	line[strcspn(line, "\r\n")] = '\0';
	return !strcasecmp(line, "y") || !strcasecmp(line, "yes");
}

int dm_cmd_dot_delete(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"force", no_argument, NULL, 'f'},
		{NULL, 0, NULL, 0},
	};
	struct dm_dot_name name;
	struct dm_config *config;
	bool force = false;
	const char *dot;
	json_t *res = NULL;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "f", opts, err)) > 0) {
		if (c == 'f')
			force = true;
	}
	if (c < 0)
		return c;
	rc = dm_cli_nargs(cli, argc - optind, 1, 1, "a dot name: dm dot delete [-f] DOT", err);
	if (rc)
		return rc;
	dot = argv[optind];
	rc = dm_dot_name_parse(&name, dot, err);
	if (rc)
		return rc;
	if (!force) {
		if (!isatty(STDIN_FILENO))
			return dm_err_set(err, DM_EINVAL,
					  "refusing to delete '%s' without --force when not on a "
					  "terminal",
					  dot);
		if (!confirm(dot))
			return dm_err_set(err, DM_ECANCELED, "not deleting '%s'", dot);
	}
	rc = dm_cli_call(cli, "dots.delete", json_pack("{s:s}", "dot", dot), &res, err);
	json_decref(res);
	if (rc)
		return rc;
	/* the deleted dot is no one's current dot any more */
	if (cli->remote.current_dot && dm_cli_same_dot(cli->remote.current_dot, dot)) {
		rc = dm_cli_config(cli, &config, err);
		if (!rc)
			rc = dm_config_set_current_dot(config, cli->remote.name, NULL, err);
		if (!rc)
			rc = dm_config_save(config, err);
		cli->have_remote = false;
	}
	return rc;
}
