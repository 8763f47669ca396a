/*
 * context.c - what every dm command needs around its own work: option and
 * argument parsing with the common options, the config file, the remote and
 * its client, and the choice of the dot to act on.
 *
 * Invariants: the config is loaded at most once per run and the client made
 * at most once, both owned by struct dm_cli and freed by dm_cli_release;
 * every name that goes to the server from here was checked with
 * util/names.h first, so a bad name fails the same way without a server.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/names.h"

#include "util/banned.h"

int dm_cli_usage_error(struct dm_cli *cli, struct dm_err *err, const char *fmt, ...)
{
	char msg[DM_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return dm_err_set(err, DM_EINVAL, "%s; see 'dm %s --help'", msg,
			  cli->cmd ? cli->cmd->name : "help");
}

int dm_cli_duration_ms(const char *s, const char *what, int64_t *out, struct dm_err *err)
{
	char *end = NULL;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !(v > 0))
		goto bad;
	if (!strcmp(end, "ms"))
		v *= 1;
	else if (!strcmp(end, "s") || !*end)
		v *= 1000;
	else if (!strcmp(end, "m"))
		v *= 60000;
	else if (!strcmp(end, "h"))
		v *= 3600000;
	else if (!strcmp(end, "d"))
		v *= 86400000;
	else
		goto bad;
	if (v < 1 || v > 1e12)
		goto bad;
	*out = (int64_t)v;
	return 0;
bad:
	return dm_err_set(err, DM_EINVAL,
			  "invalid %s '%s': give a duration such as 500ms, 2s or 1m", what, s);
}

void dm_cli_warnings(json_t *result)
{
	size_t i;
	json_t *w;

	json_array_foreach(json_object_get(result, "warnings"), i, w) {
		fputs("dm: warning: ", stderr);
		dm_out_clean(stderr, json_string_value(w) ? json_string_value(w) : "");
		fputc('\n', stderr);
	}
}

static int prepare_opts(struct dm_cli *cli, const char *shortopts, const struct option *longopts,
			struct dm_err *err)
{
	static const struct option common[] = {
		{"remote", required_argument, NULL, OPT_REMOTE},
		{"verbose", no_argument, NULL, 'v'},
		{NULL, 0, NULL, 0},
	};
	size_t n = 0, max = sizeof(cli->longopts) / sizeof(cli->longopts[0]);
	int len;

	/* ':' first: a missing value is ':' rather than '?' */
	len = snprintf(cli->shortopts, sizeof(cli->shortopts), ":v%s", shortopts ? shortopts : "");
	if (len < 0 || (size_t)len >= sizeof(cli->shortopts))
		return dm_err_set(err, DM_EINTERNAL, "too many options");
	for (size_t i = 0; longopts && longopts[i].name; i++) {
		if (n + 1 >= max)
			return dm_err_set(err, DM_EINTERNAL, "too many options");
		cli->longopts[n++] = longopts[i];
	}
	for (size_t i = 0; common[i].name; i++) {
		if (n + 1 >= max)
			return dm_err_set(err, DM_EINTERNAL, "too many options");
		cli->longopts[n++] = common[i];
	}
	memset(&cli->longopts[n], 0, sizeof(cli->longopts[n]));
	cli->opts_ready = true;
	optind = 0; /* GNU: start over, with a full reinitialisation */
	opterr = 0;
	return 0;
}

/* The option that getopt just complained about, as the user wrote it. */
static void bad_option(char *buf, size_t size, int argc, char **argv)
{
	const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";

	if (optopt > 0 && optopt < 256 && !(arg[0] == '-' && arg[1] == '-'))
		snprintf(buf, size, "-%c", optopt);
	else
		snprintf(buf, size, "%.*s", (int)strcspn(arg, "="), arg);
}

int dm_cli_getopt(struct dm_cli *cli, int argc, char **argv, const char *shortopts,
		  const struct option *longopts, struct dm_err *err)
{
	char opt[128];
	int c, rc;

	if (!cli->opts_ready) {
		rc = prepare_opts(cli, shortopts, longopts, err);
		if (rc)
			return rc;
	}
	for (;;) {
		c = getopt_long(argc, argv, cli->shortopts, cli->longopts, NULL);
		switch (c) {
		case -1:
			cli->opts_ready = false;
			return 0;
		case 'v':
			if (!cli->verbose++)
				dm_log_setup(stderr, DM_LOG_DEBUG);
			continue;
		case OPT_REMOTE:
			cli->remote_opt = optarg;
			continue;
		case '?':
			bad_option(opt, sizeof(opt), argc, argv);
			cli->opts_ready = false;
			return dm_cli_usage_error(cli, err, "unknown option '%s' for 'dm %s'", opt,
						  cli->cmd->name);
		case ':':
			bad_option(opt, sizeof(opt), argc, argv);
			cli->opts_ready = false;
			return dm_cli_usage_error(cli, err, "option '%s' needs a value", opt);
		default:
			return c;
		}
	}
}

int dm_cli_nargs(struct dm_cli *cli, int n, int min, int max, const char *what,
		 struct dm_err *err)
{
	if (n < min)
		return dm_cli_usage_error(cli, err, "'dm %s' needs %s", cli->cmd->name, what);
	if (max >= 0 && n > max)
		return dm_cli_usage_error(cli, err, "too many arguments for 'dm %s'",
					  cli->cmd->name);
	return 0;
}

int dm_cli_args(struct dm_cli *cli, int argc, char **argv, int min, int max, const char *what,
		struct dm_err *err)
{
	int c;

	while ((c = dm_cli_getopt(cli, argc, argv, "", NULL, err)) > 0)
		;
	return c < 0 ? c : dm_cli_nargs(cli, argc - optind, min, max, what, err);
}

int dm_cli_no_options(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	return dm_cli_args(cli, argc, argv, 0, 0, "", err);
}

int dm_cli_view_options(struct dm_cli *cli, int argc, char **argv, int flags,
			struct dm_cli_view *out, struct dm_err *err)
{
	static const struct option with_dot[] = {
		{"json", no_argument, NULL, OPT_JSON},
		{"dot", required_argument, NULL, OPT_DOT},
		{NULL, 0, NULL, 0},
	};
	static const struct option json_only[] = {
		{"json", no_argument, NULL, OPT_JSON},
		{NULL, 0, NULL, 0},
	};
	const struct option *opts = flags & DM_CLI_OPT_DOT ? with_dot : json_only;
	int c;

	memset(out, 0, sizeof(*out));
	while ((c = dm_cli_getopt(cli, argc, argv, flags & DM_CLI_OPT_RAW ? "H" : "", opts,
				  err)) > 0) {
		if (c == OPT_JSON)
			out->as_json = true;
		else if (c == 'H')
			out->raw = true;
		else if (c == OPT_DOT)
			out->dot = optarg;
	}
	return c < 0 ? c : 0;
}

int dm_cli_listing_options(struct dm_cli *cli, int argc, char **argv, bool *as_json, bool *raw,
			   struct dm_err *err)
{
	struct dm_cli_view v;
	int rc = dm_cli_view_options(cli, argc, argv, DM_CLI_OPT_RAW, &v, err);

	*as_json = v.as_json;
	*raw = v.raw;
	return rc ? rc : dm_cli_nargs(cli, argc - optind, 0, 0, "", err);
}

int dm_cli_config(struct dm_cli *cli, struct dm_config **out, struct dm_err *err)
{
	char path[PATH_MAX];
	int rc;

	if (!cli->config) {
		if (cli->config_opt) {
			if (strlen(cli->config_opt) >= sizeof(path))
				return dm_err_set(err, DM_EINVAL, "config file name too long");
			snprintf(path, sizeof(path), "%s", cli->config_opt);
			rc = 0;
		} else {
			rc = dm_config_default_path(path, sizeof(path), err);
		}
		if (!rc)
			rc = dm_config_load(&cli->config, path, err);
		if (rc)
			return rc;
		dm_debug("config file '%s'%s", path,
			 dm_config_exists(cli->config) ? "" : " (does not exist)");
	}
	*out = cli->config;
	return 0;
}

int dm_cli_remote(struct dm_cli *cli, struct dm_err *err)
{
	struct dm_config *config;
	int rc;

	if (cli->have_remote)
		return 0;
	rc = dm_cli_config(cli, &config, err);
	if (rc)
		return rc;
	rc = dm_config_remote(&cli->remote, config, cli->remote_opt, err);
	if (rc)
		return rc;
	cli->have_remote = true;
	return 0;
}

int dm_cli_call(struct dm_cli *cli, const char *method, json_t *params, json_t **result,
		struct dm_err *err)
{
	int rc;

	*result = NULL;
	if (!params)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	rc = dm_cli_remote(cli, err);
	if (!rc && !cli->client)
		rc = dm_client_new(&cli->client, &cli->remote, err);
	if (!rc)
		rc = dm_client_call(cli->client, method, params, result, err);
	json_decref(params);
	return rc;
}

int dm_cli_call_view(struct dm_cli *cli, bool as_json, const char *method, json_t *params,
		     json_t **result, struct dm_err *err)
{
	int rc = dm_cli_call(cli, method, params, result, err);

	if (rc || !as_json)
		return rc;
	rc = dm_out_json(*result, err);
	json_decref(*result);
	*result = NULL;
	return rc;
}

int dm_cli_set_current_dot(struct dm_cli *cli, const char *dot, struct dm_err *err)
{
	struct dm_config *config;
	int rc = dm_cli_remote(cli, err);

	if (!rc)
		rc = dm_cli_config(cli, &config, err);
	if (!rc)
		rc = dm_config_set_current_dot(config, cli->remote.name, dot, err);
	if (!rc)
		rc = dm_config_save(config, err);
	cli->have_remote = false; /* its strings may have moved */
	return rc;
}

void dm_cli_dot_display(char *buf, size_t size, const char *ns, const char *name)
{
	if (!ns || !*ns || !strcmp(ns, DM_DEFAULT_NAMESPACE))
		snprintf(buf, size, "%s", name);
	else
		snprintf(buf, size, "%s/%s", ns, name);
}

bool dm_cli_same_dot(const char *a, const char *b)
{
	struct dm_dot_name na, nb;

	if (!a || !b || dm_dot_name_parse(&na, a, NULL) || dm_dot_name_parse(&nb, b, NULL))
		return false;
	return !strcmp(na.ns, nb.ns) && !strcmp(na.name, nb.name);
}

int dm_cli_dot(struct dm_cli *cli, const char *given, const char **out, struct dm_err *err)
{
	struct dm_dot_name parsed;
	json_t *res = NULL, *dots;
	int rc;

	*out = NULL;
	if (given) {
		rc = dm_dot_name_parse(&parsed, given, err);
		if (rc)
			return rc;
		snprintf(cli->dot, sizeof(cli->dot), "%s", given);
		*out = cli->dot;
		return 0;
	}
	rc = dm_cli_remote(cli, err);
	if (rc)
		return rc;
	if (cli->remote.current_dot) {
		rc = dm_dot_name_parse(&parsed, cli->remote.current_dot, err);
		if (rc)
			return dm_err_prefix(err, "current dot of remote '%s'", cli->remote.name);
		snprintf(cli->dot, sizeof(cli->dot), "%s", cli->remote.current_dot);
		*out = cli->dot;
		return 0;
	}
	/* none chosen: the only dot there is, if there is exactly one (its name
	 * is all we need: no measuring of dirty bytes) */
	rc = dm_cli_call(cli, "dots.list", json_pack("{s:b}", "refresh", 0), &res, err);
	if (rc)
		return rc;
	dots = json_object_get(res, "dots");
	if (json_array_size(dots) == 1) {
		json_t *d = json_array_get(dots, 0);

		dm_cli_dot_display(cli->dot, sizeof(cli->dot), dm_out_str(d, "namespace"),
				   dm_out_str(d, "name"));
		*out = cli->dot;
	} else if (json_array_size(dots) == 0) {
		rc = dm_err_set(err, DM_ENOTFOUND,
				"no current dot: there are no dots yet; create one with 'dm init DOT'");
	} else {
		rc = dm_err_set(err, DM_EINVAL, "no current dot; use 'dm switch DOT' or --dot DOT");
	}
	json_decref(res);
	return rc;
}
