/*
 * cmd_remote.c - the `dm remote` group: list the remotes of the config file
 * (`dm remote [-v]`), add one (`dm remote add NAME USER@HOST[:PORT]`),
 * remove one (`dm remote rm NAME`) and choose the current one
 * (`dm remote switch NAME`). S3 endpoints added by `dm s3 remote add`
 * (cmd_s3.c) are listed and removed here too, and never become current.
 *
 * Invariants: a remote is saved only after its server answered server.ping
 * with the given user and key, so a remote in the config worked at least
 * once; the API key is read from $DM_API_KEY, from a standard input that
 * is not a terminal (its first line: `echo KEY | dm remote add`, as in
 * dotmesh), or typed on a terminal with echo off (never from an argument,
 * which other users could see in ps);
 * the current remote cannot be removed, so the config never names a
 * current remote that does not exist.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "client/client.h"
#include "client/config.h"
#include "client/probe.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/names.h"

#include "util/banned.h"

#define API_KEY_MAX 256

/* USER@HOST[:PORT] split and checked; host is without IPv6 brackets. */
struct address {
	char user[DM_NAME_PART_MAX + 1];
	char host[256];
	int port;
};

static int bad_address(const char *spec, const char *why, struct dm_err *err)
{
	return dm_err_set(err, DM_EINVAL, "invalid remote address '%s': %s; use USER@HOST[:PORT]",
			  spec, why);
}

static int parse_port(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 65535)
		return -1;
	*out = (int)v;
	return 0;
}

static int parse_address(struct address *out, const char *spec, struct dm_err *err)
{
	const char *at = strchr(spec, '@'), *host, *colon, *port = NULL;
	size_t host_len;

	memset(out, 0, sizeof(*out));
	out->port = DM_DEFAULT_PORT;
	if (!at)
		return bad_address(spec, "no user name", err);
	if (!dm_name_part_valid(spec, (size_t)(at - spec)))
		return bad_address(
			spec, "the user name must be 1 to 64 letters, digits, '-' or '_'", err);
	snprintf(out->user, sizeof(out->user), "%.*s", (int)(at - spec), spec);
	host = at + 1;
	if (*host == '[') { /* [v6]:port */
		const char *close = strchr(host, ']');

		if (!close || close == host + 1)
			return bad_address(spec, "unclosed '['", err);
		host++;
		host_len = (size_t)(close - host);
		if (close[1] == ':')
			port = close + 2;
		else if (close[1])
			return bad_address(spec, "unexpected text after ']'", err);
	} else {
		colon = strchr(host, ':');
		if (colon && strchr(colon + 1, ':')) { /* a bare IPv6 address, no port */
			host_len = strlen(host);
		} else {
			host_len = colon ? (size_t)(colon - host) : strlen(host);
			port = colon ? colon + 1 : NULL;
		}
	}
	if (host_len == 0)
		return bad_address(spec, "no host", err);
	if (host_len >= sizeof(out->host))
		return bad_address(spec, "host name too long", err);
	for (size_t i = 0; i < host_len; i++)
		if ((unsigned char)host[i] <= ' ' || host[i] == '/' || host[i] == '@' ||
		    host[i] == 0x7f)
			return bad_address(spec, "the host name has a character it cannot have",
					   err);
	snprintf(out->host, sizeof(out->host), "%.*s", (int)host_len, host);
	if (port && parse_port(port, &out->port))
		return bad_address(spec, "the port must be a number from 1 to 65535", err);
	return 0;
}

/* "user@host:port" (IPv6 hosts in brackets). */
static void format_address(char *buf, size_t size, const char *user, const char *host, int port)
{
	snprintf(buf, size, strchr(host, ':') ? "%s@[%s]:%d" : "%s@%s:%d", user, host, port);
}

/* Strips a trailing newline and surrounding blanks in place. */
static char *trim(char *s)
{
	size_t len;

	while (*s == ' ' || *s == '\t')
		s++;
	len = strlen(s);
	while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' ||
		       s[len - 1] == '\t'))
		s[--len] = '\0';
	return s;
}

/* Reads a line from the terminal on stdin with echo off. */
static int prompt_key(char *buf, size_t size, const char *noun, const char *what,
		      struct dm_err *err)
{
	struct termios old, quiet;
	bool restored = false;
	char *line;

	if (tcgetattr(STDIN_FILENO, &old))
		return dm_err_errno(err, errno, "cannot read the terminal's settings");
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	/* echo off before the prompt: whatever is typed after it stays hidden */
	if (tcsetattr(STDIN_FILENO, TCSANOW, &quiet))
		return dm_err_errno(err, errno, "cannot turn the terminal's echo off");
	fprintf(stderr, "%s for %s: ", noun, what);
	fflush(stderr);
	line = fgets(buf, (int)size, stdin);
	restored = tcsetattr(STDIN_FILENO, TCSANOW, &old) == 0;
	if (!restored)
		fprintf(stderr, "dm: warning: cannot turn the terminal's echo back on\n");
	if (!line)
		return dm_err_set(err, DM_ECANCELED, "no %s typed", noun);
	if (!strchr(buf, '\n') && strlen(buf) + 1 == size)
		return dm_err_set(err, DM_EINVAL, "the %s is too long", noun);
	return 0;
}

/* The first line of a standard input that is not a terminal: a piped
 * key (`echo KEY | dm remote add ...`, as dotmesh's users do). */
static int piped_key(char *buf, size_t size, const char *env, const char *noun,
		     const char *name, struct dm_err *err)
{
	if (!fgets(buf, (int)size, stdin))
		buf[0] = '\0';
	else if (!strchr(buf, '\n') && strlen(buf) + 1 == size)
		return dm_err_set(err, DM_EINVAL, "the %s is too long", noun);
	if (!*trim(buf))
		return dm_err_set(err, DM_EINVAL,
				  "no %s for remote '%s': pipe it on standard input, set "
				  "%s, or run this on a terminal to type it",
				  noun, name, env);
	return 0;
}

int dm_cli_read_secret(char *buf, size_t size, const char *env_name, const char *noun,
		       const char *name, const char *what, struct dm_err *err)
{
	const char *env = getenv(env_name);
	char *key;
	int rc;

	if (env && *env) {
		if (strlen(env) >= size)
			return dm_err_set(err, DM_EINVAL, "$%s is too long", env_name);
		snprintf(buf, size, "%s", env);
	} else if (!isatty(STDIN_FILENO)) {
		rc = piped_key(buf, size, env_name, noun, name, err);
		if (rc)
			return rc;
	} else {
		rc = prompt_key(buf, size, noun, what, err);
		if (rc)
			return rc;
	}
	key = trim(buf);
	if (!*key)
		return dm_err_set(err, DM_EINVAL, "empty %s for remote '%s'", noun, name);
	for (const char *p = key; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
			return dm_err_set(err, DM_EINVAL,
					  "the %s for remote '%s' has a character it cannot have",
					  noun, name);
	memmove(buf, key, strlen(key) + 1);
	return 0;
}

/* Checks that r answers server.ping with its credentials; data_dir
 * (size bytes, may be NULL) receives the server's data directory, which
 * dm mount's links lead into, or "". */
static int ping(const struct dm_remote *r, char *data_dir, size_t size, struct dm_err *err)
{
	struct dm_client *client = NULL;
	json_t *res = NULL;
	int rc = dm_client_new(&client, r, err);

	if (!rc)
		rc = dm_client_call(client, "server.ping", NULL, &res, err);
	if (!rc && data_dir) {
		json_decref(res);
		res = NULL;
		data_dir[0] = '\0';
		if (!dm_client_call(client, "server.version", NULL, &res, err) &&
		    json_is_string(json_object_get(res, "data_dir")) &&
		    json_string_value(json_object_get(res, "data_dir"))[0] == '/')
			snprintf(data_dir, size, "%s",
				 json_string_value(json_object_get(res, "data_dir")));
	}
	json_decref(res);
	dm_client_free(client);
	return rc;
}

int dm_cli_check_remote_name(const char *name, struct dm_err *err)
{
	if (!dm_name_part_valid(name, strlen(name)))
		return dm_err_set(
			err, DM_EINVAL,
			"invalid remote name '%s': use 1 to 64 letters, digits, '-' or '_'", name);
	return 0;
}

static bool is_loopback(const char *host)
{
	return !strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1");
}

/* Asks the terminal whether to trust a CA, as ssh does on first contact. */
static int ask_trust(const char *where, const char *fp, struct dm_err *err)
{
	char line[16];

	fprintf(stderr,
		"The authenticity of dm server at %s cannot be established.\n"
		"Its CA's fingerprint is %s.\n"
		"Compare it with the one 'dm cluster init' printed on that server.\n"
		"Trust this CA and add the remote (yes/no)? ",
		where, fp);
	fflush(stderr);
	if (!fgets(line, sizeof(line), stdin) || strcmp(trim(line), "yes") != 0)
		return dm_err_set(err, DM_ECANCELED, "not added: the server's CA was not trusted");
	return 0;
}

/*
 * What the new remote pins, into *ca_out (NULL: plain HTTP): the CA the
 * server's chain ends with, when it is the one --ca-file gives, has the
 * fingerprint --fingerprint gives, or the user says yes on a terminal.
 * Plain HTTP only from a loopback address.
 */
static int trust_server(struct dm_client_probe *p, const char **ca_out, const struct address *a,
			const char *where, const char *ca_file, const char *fingerprint,
			struct dm_err *err)
{
	char want[DM_TLS_FINGERPRINT_LEN + 1];
	int rc = dm_client_probe(p, a->host, a->port, err);

	*ca_out = NULL;
	if (rc)
		return rc;
	if (p->plain) {
		if (!is_loopback(a->host))
			return dm_err_set(err, DM_EPERM,
					  "dm server at %s speaks plain HTTP; dm talks to servers "
					  "on other hosts only over HTTPS",
					  where);
		if (ca_file || fingerprint)
			return dm_err_set(err, DM_EPERM,
					  "dm server at %s speaks plain HTTP, not HTTPS: there is no "
					  "certificate to check",
					  where);
		fprintf(stderr, "dm: note: dm server at %s speaks plain HTTP (loopback only)\n",
			where);
		return 0;
	}
	if (ca_file) {
		struct dm_buf f = DM_BUF_INIT;

		rc = dm_read_file(&f, ca_file, DM_TLS_PEM_MAX, err);
		if (!rc && dm_buf_add(&f, "", 1))
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		if (!rc)
			rc = dm_tls_fingerprint(want, (const char *)f.data, err);
		dm_buf_release(&f);
		if (rc) {
			dm_err_prefix(err, "--ca-file '%s'", ca_file);
			return rc;
		}
	} else if (fingerprint) {
		rc = dm_tls_fingerprint_parse(want, fingerprint, err);
		if (rc)
			return rc;
	} else if (isatty(STDIN_FILENO)) {
		rc = ask_trust(where, p->fingerprint, err);
		if (rc)
			return rc;
		snprintf(want, sizeof(want), "%s", p->fingerprint);
	} else {
		return dm_err_set(err, DM_EPERM,
				  "cannot verify dm server at %s: its CA's fingerprint is %s. If "
				  "that is the one 'dm cluster init' printed on that server, run "
				  "again with --fingerprint %s (or --ca-file with its ca.pem)",
				  where, p->fingerprint, p->fingerprint);
	}
	if (strcmp(want, p->fingerprint))
		return dm_err_set(err, DM_EPERM,
				  "REFUSED: dm server at %s presents a CA with fingerprint %s, not "
				  "%s. This may not be the server you meant; nothing was saved",
				  where, p->fingerprint, want);
	*ca_out = (const char *)p->ca.data;
	return 0;
}

int dm_cmd_remote_add(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	enum { OPT_CA_FILE = 1, OPT_FINGERPRINT };
	static const struct option opts[] = {
		{"ca-file", required_argument, NULL, OPT_CA_FILE},
		{"fingerprint", required_argument, NULL, OPT_FINGERPRINT},
		{NULL, 0, NULL, 0},
	};
	char key[API_KEY_MAX], where[sizeof(((struct address *)0)->host) + 96];
	char data_dir[PATH_MAX];
	const char *ca_file = NULL, *fingerprint = NULL, *ca = NULL;
	struct dm_client_probe probe;
	struct dm_config *config;
	struct dm_remote r;
	struct address a;
	const char *name;
	int c, rc;

	memset(&probe, 0, sizeof(probe));
	while ((c = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0) {
		if (c == OPT_CA_FILE)
			ca_file = optarg;
		else
			fingerprint = optarg;
	}
	if (c < 0)
		return c;
	if (ca_file && fingerprint)
		return dm_cli_usage_error(cli, err, "give --ca-file or --fingerprint, not both");
	rc = dm_cli_nargs(cli, argc - optind, 2, 2, "a name and an address: NAME USER@HOST[:PORT]",
			  err);
	if (rc)
		return rc;
	name = argv[optind];
	rc = dm_cli_check_remote_name(name, err);
	if (!rc)
		rc = parse_address(&a, argv[optind + 1], err);
	if (!rc)
		rc = dm_cli_config(cli, &config, err);
	if (rc)
		return rc;
	if (dm_config_remote_kind(config, name) != DM_REMOTE_NONE)
		return dm_err_set(
			err, DM_EEXISTS,
			"remote '%s' exists already; remove it first with 'dm remote rm %s'", name,
			name);
	format_address(where, sizeof(where), a.user, a.host, a.port);
	memset(key, 0, sizeof(key));
	rc = trust_server(&probe, &ca, &a, where, ca_file, fingerprint, err);
	if (!rc)
		rc = dm_cli_read_secret(key, sizeof(key), "DM_API_KEY", "API key", name, where,
					err);
	if (rc)
		goto done;
	memset(&r, 0, sizeof(r));
	r.name = name;
	r.user = a.user;
	r.host = a.host;
	r.port = a.port;
	r.api_key = key;
	r.ca = ca;
	/* a server on this host: where its working copies are, for dm mount */
	rc = ping(&r, is_loopback(a.host) ? data_dir : NULL, sizeof(data_dir), err);
	if (!rc && data_dir[0])
		r.data_dir = data_dir;
	if (!rc)
		rc = dm_config_set_remote(config, &r, err);
	if (!rc && !dm_config_current_remote(config))
		rc = dm_config_set_current_remote(config, name, err);
	if (!rc)
		rc = dm_config_save(config, err);
	if (!rc)
		printf("Added remote '%s': %s%s%s\n", name, where, ca ? ", CA " : "",
		       ca ? probe.fingerprint : "");
done:
	memset(key, 0, sizeof(key));
	dm_client_probe_release(&probe);
	return rc;
}

int dm_cmd_remote_list(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	struct dm_config *config;
	const char **names = NULL;
	const char *current;
	bool addresses = false, raw = false;
	struct dm_table t;
	size_t n = 0;
	int rc;

	/* `-v` is dotmesh's "show addresses" here, not the common --verbose */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
			addresses = true;
		else if (!strcmp(argv[i], "-H"))
			raw = true;
		else if (argv[i][0] == '-')
			return dm_cli_usage_error(cli, err, "unknown option '%s' for 'dm remote'",
						  argv[i]);
		else
			return dm_cli_usage_error(cli, err, "unknown command 'dm remote %s'",
						  argv[i]);
	}
	rc = dm_cli_config(cli, &config, err);
	if (rc)
		return rc;
	current = dm_config_current_remote(config);
	dm_config_remote_names(config, &names, &n);
	dm_table_init(&t, raw ? 3 : addresses ? 2 : 1);
	for (size_t i = 0; i < n; i++) {
		char mark[DM_NAME_PART_MAX + 8], where[512];
		bool cur = current && !strcmp(current, names[i]);
		struct dm_s3_remote s3;
		struct dm_remote r;

		if (!dm_config_s3_remote(&s3, config, names[i], NULL))
			snprintf(where, sizeof(where), "s3 %.64s@%.400s", s3.key_id, s3.endpoint);
		else if (!dm_config_remote(&r, config, names[i], NULL))
			format_address(where, sizeof(where), r.user, r.host, r.port);
		else
			continue;
		snprintf(mark, sizeof(mark), "%s %s", cur ? "*" : " ", names[i]);
		if (raw)
			dm_table_row(&t, cur ? "*" : "", names[i], where);
		else
			dm_table_row(&t, mark, where);
	}
	dm_table_print(&t, stdout, raw);
	dm_table_release(&t);
	free(names);
	return 0;
}

/* The one NAME argument of rm and switch: an existing remote. */
static int existing_name(struct dm_cli *cli, int argc, char **argv, struct dm_config **config,
			 const char **out, struct dm_err *err)
{
	int rc;

	rc = dm_cli_args(cli, argc, argv, 1, 1, "a remote name", err);
	if (!rc)
		rc = dm_cli_check_remote_name(argv[optind], err);
	if (!rc)
		rc = dm_cli_config(cli, config, err);
	if (rc)
		return rc;
	*out = argv[optind];
	if (dm_config_remote_kind(*config, *out) == DM_REMOTE_NONE)
		return dm_err_set(err, DM_ENOTFOUND, "no remote named '%s'; see 'dm remote'", *out);
	return 0;
}

int dm_cmd_remote_rm(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	struct dm_config *config;
	const char *name, *current;
	int rc = existing_name(cli, argc, argv, &config, &name, err);

	if (rc)
		return rc;
	current = dm_config_current_remote(config);
	if (current && !strcmp(current, name))
		return dm_err_set(err, DM_EINVAL,
				  "cannot remove remote '%s': it is the current remote; switch to "
				  "another first with 'dm remote switch NAME'",
				  name);
	rc = dm_config_remove_remote(config, name, err);
	if (!rc)
		rc = dm_config_save(config, err);
	return rc;
}

int dm_cmd_remote_switch(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	struct dm_config *config;
	const char *name;
	int rc = existing_name(cli, argc, argv, &config, &name, err);

	if (!rc)
		rc = dm_config_set_current_remote(config, name, err);
	if (!rc)
		rc = dm_config_save(config, err);
	return rc;
}
